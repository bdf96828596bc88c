// DPO losses: every preference loss of TRL's DPOTrainer as a small function of per-pair log-prob
// tensors, and computeDpoLoss(), which combines several of them with weights (TRL's `loss_type`
// list + `loss_weights`) and computes TRL's reward metrics.
//
// Notation (all tensors [B], one value per pair, any floating dtype and device, differentiable):
//   πc, πr   policy summed log-probs of the chosen / rejected completion
//   rc, rr   reference summed log-probs (0 in reference-free mode)
//   Δ = (πc − πr) − (rc − rr),   ρc = πc − rc,   ρr = πr − rr
// Each loss function returns per-pair losses [B]; the batch loss is their mean.
//
// TRL semantics kept on purpose (and worth knowing when comparing runs):
//   * When "ipo" is among the loss types, TRL divides every log-prob by its completion length before
//     any loss or metric is computed, so every listed loss and the metrics then use per-token means.
//   * With several losses, the per-pair loss is Σ w_i·loss_i, and the reward metrics are scaled by
//     Σ w_i (TRL adds each loss's rewards times its weight).
//   * sft is the token-mean NLL over all chosen completion tokens of the batch (TRL's nll_loss), the
//     same value for every pair.
//   * bco_pair is the form −logσ(βρc) − logσ(−βρr), without TRL's running reward mean δ.
// What this does not do: compute log-probs (see logprobs.h) or hold optimizer state.
#pragma once

#include "engine/torch_api.h"
#include "engine/training/loss_config.h"

#include <map>
#include <string>
#include <vector>

namespace dpo {

// ---- single losses: per-pair values [B] ----
// sigmoid, conservative form with label smoothing ε: −(1−ε)·logσ(βΔ) − ε·logσ(−βΔ)
torch::Tensor sigmoidLoss(const torch::Tensor &delta, double beta, double labelSmoothing = 0.0);
// relu(1 − βΔ)
torch::Tensor hingeLoss(const torch::Tensor &delta, double beta);
// (Δ̄ − 1/(2β))², Δ̄ built from per-token mean log-probs
torch::Tensor ipoLoss(const torch::Tensor &meanDelta, double beta);
// [−(1−ε)·logσ(βΔ) + ε·logσ(−βΔ)] / (1 − 2ε), ε < 0.5
torch::Tensor robustLoss(const torch::Tensor &delta, double beta, double labelSmoothing);
// σ(βΔ)(logσ(βΔ) − log(1−ε)) + σ(−βΔ)(logσ(−βΔ) − log ε), ε > 0
torch::Tensor exoPairLoss(const torch::Tensor &delta, double beta, double labelSmoothing);
// −logσ(βρc) − ½logσ(−βρc) − ½logσ(−βρr)
torch::Tensor ncaPairLoss(const torch::Tensor &chosenRatio, const torch::Tensor &rejectedRatio, double beta);
// −logσ(βρc) − logσ(−βρr)
torch::Tensor bcoPairLoss(const torch::Tensor &chosenRatio, const torch::Tensor &rejectedRatio, double beta);
// (ρc − 1/(2β))² + (ρr + 1/(2β))²
torch::Tensor sppoHardLoss(const torch::Tensor &chosenRatio, const torch::Tensor &rejectedRatio, double beta);
// sigmoid form on sort(πc − πr) − sort(rc − rr) (sorted over the batch)
torch::Tensor aotLoss(
    const torch::Tensor &policyLogratios, const torch::Tensor &refLogratios, double beta, double labelSmoothing = 0.0);
// sigmoid form on sort(ρc) − sort(ρr)
torch::Tensor aotUnpairedLoss(
    const torch::Tensor &chosenRatio, const torch::Tensor &rejectedRatio, double beta, double labelSmoothing = 0.0);
// (1 − σ(βρc)) + σ(βρr)
torch::Tensor apoZeroLoss(const torch::Tensor &chosenRatio, const torch::Tensor &rejectedRatio, double beta);
// σ(βρc) + (1 − σ(β(ρc − ρr)))
torch::Tensor apoDownLoss(const torch::Tensor &chosenRatio, const torch::Tensor &rejectedRatio, double beta);
// z = βΔ, m = σ(z/τ): (1−m)·(−logσ z) + m·e^(−z); m·e^(−z) is evaluated as exp(logσ(z/τ) − z) so
// that it stays finite where e^(−z) alone would overflow.
torch::Tensor discopopLoss(const torch::Tensor &delta, double beta, double tau = 0.05);
// −logσ(β(π̄c − π̄r)) on per-token mean policy log-probs; no reference (SimPO-style)
torch::Tensor sigmoidNormLoss(
    const torch::Tensor &policyChosenMean, const torch::Tensor &policyRejectedMean, double beta);
// −Σπc / Σ(chosen token counts), broadcast to [B]
torch::Tensor sftLoss(const torch::Tensor &policyChosenSum, const torch::Tensor &chosenCount);

// Per-pair inputs. Sums are needed always; counts whenever a loss needs means (ipo, sigmoid_norm)
// or sft. Reference tensors may be zeros (reference-free).
struct DpoInputs {
    torch::Tensor policyChosen; // [B] summed log-probs
    torch::Tensor policyRejected; // [B]
    torch::Tensor refChosen; // [B]
    torch::Tensor refRejected; // [B]
    torch::Tensor chosenCount; // [B] completion token counts (float or int)
    torch::Tensor rejectedCount; // [B]
};

struct DpoLossOutput {
    torch::Tensor loss; // scalar: Σ_i w_i · mean(loss_i), differentiable
    torch::Tensor perPair; // [B]: Σ_i w_i · loss_i (its mean is `loss`)
    torch::Tensor chosenRewards; // [B] detached: (Σw)·β(πc − rc)
    torch::Tensor rejectedRewards; // [B] detached
    // TRL's names: rewards/chosen, rewards/rejected, rewards/accuracies, rewards/margins,
    // logps/chosen, logps/rejected (batch means).
    std::map<std::string, double> metrics;
};

// Throws dpo::Error on an invalid config, mismatched shapes, or missing counts that a loss needs.
DpoLossOutput computeDpoLoss(const LossConfig &config, const DpoInputs &inputs);

} // namespace dpo
