// DPO losses: every preference loss of TRL's DPOTrainer as a small function of per-pair log-prob
// tensors, and computeDpoLoss(), which combines several of them with weights (TRL's `loss_type`
// list + `loss_weights`) and computes TRL's reward metrics.
//
// Notation (all tensors [B], one value per pair, any floating dtype and device, differentiable):
//   πc, πr   policy summed log-probs of the chosen / rejected completion (LD-DPO weighted with ld_alpha)
//   rc, rr   reference summed log-probs (0 in reference-free mode)
//   ρc = πc − rc, ρr = πr − rr          log-ratios
//   sc = f(ρc), sr = f(ρr)              scores (f from f_divergence_type; reverse_kl: f(ρ) = ρ)
//   Δs = sc − sr                        (= (πc − πr) − (rc − rr) for reverse_kl)
//   Lc, Lr   completion token counts
// Each loss function returns per-pair losses [B]; the batch loss is Σ_i w_i · mean(loss_i).
//
// The rules of TRL 1.x's DPOTrainer (_compute_loss), kept on purpose:
//   * ipo and sigmoid_norm divide the scores by the completion lengths inside their own term only:
//     Δ̄ = sc/Lc − sr/Lr (reference included). Other listed losses and the metrics stay on sums.
//   * sigmoid has no label smoothing; ε is used by robust, exo_pair, aot and aot_unpaired only.
//   * aot sorts πc − πr and rc − rr, aot_unpaired sorts ρc and ρr, apo_zero uses ρc, ρr and apo_down
//     uses ρc and Δs: these ignore f_divergence_type where TRL does.
//   * rewards/chosen = β·ρc, rewards/rejected = β·ρr, not scaled by loss weights or WPO weights.
//   * use_weighting multiplies each listed loss's per-pair values by w_c·w_r before its mean.
//   * sft is the token-mean NLL over all chosen completion tokens of the batch (TRL's cross-entropy),
//     the same value for every pair, from the plain (not LD-weighted) log-probs.
//   * bco_pair is −logσ(βsc) − logσ(−βsr), without the running reward mean of TRL's BCOTrainer.
// What this does not do: compute log-probs (see logprobs.h) or hold optimizer state.
#pragma once

#include "engine/torch_api.h"
#include "engine/training/loss_config.h"

#include <map>
#include <string>
#include <vector>

namespace dpo {

// ---- single losses: per-pair values [B] ----
// −logσ(βΔs)
torch::Tensor sigmoidLoss(const torch::Tensor &delta, double beta);
// relu(1 − βΔs)
torch::Tensor hingeLoss(const torch::Tensor &delta, double beta);
// (Δ̄ − 1/(2β))², Δ̄ = sc/Lc − sr/Lr
torch::Tensor ipoLoss(const torch::Tensor &meanDelta, double beta);
// [−(1−ε)·logσ(βΔs) + ε·logσ(−βΔs)] / (1 − 2ε), ε < 0.5
torch::Tensor robustLoss(const torch::Tensor &delta, double beta, double labelSmoothing);
// σ(βΔs)(logσ(βΔs) − log(1−ε)) + σ(−βΔs)(logσ(−βΔs) − log ε), ε > 0
torch::Tensor exoPairLoss(const torch::Tensor &delta, double beta, double labelSmoothing);
// −logσ(βsc) − ½logσ(−βsc) − ½logσ(−βsr)
torch::Tensor ncaPairLoss(const torch::Tensor &chosenScore, const torch::Tensor &rejectedScore, double beta);
// −logσ(βsc) − logσ(−βsr)
torch::Tensor bcoPairLoss(const torch::Tensor &chosenScore, const torch::Tensor &rejectedScore, double beta);
// (sc − 1/(2β))² + (sr + 1/(2β))²
torch::Tensor sppoHardLoss(const torch::Tensor &chosenScore, const torch::Tensor &rejectedScore, double beta);
// conservative sigmoid form −(1−ε)logσ(βd) − ε·logσ(−βd) on d = sort(πc − πr) − sort(rc − rr)
torch::Tensor aotLoss(
    const torch::Tensor &policyLogratios, const torch::Tensor &refLogratios, double beta, double labelSmoothing = 0.0);
// the same form on d = sort(ρc) − sort(ρr)
torch::Tensor aotUnpairedLoss(
    const torch::Tensor &chosenRatio, const torch::Tensor &rejectedRatio, double beta, double labelSmoothing = 0.0);
// (1 − σ(βρc)) + σ(βρr)
torch::Tensor apoZeroLoss(const torch::Tensor &chosenRatio, const torch::Tensor &rejectedRatio, double beta);
// σ(βρc) + (1 − σ(βΔs))
torch::Tensor apoDownLoss(const torch::Tensor &chosenRatio, const torch::Tensor &delta, double beta);
// z = βΔs, m = σ(z/τ): (1−m)·(−logσ z) + m·e^(−z); m·e^(−z) is evaluated as exp(logσ(z/τ) − z) so
// that it stays finite where e^(−z) alone would overflow.
torch::Tensor discopopLoss(const torch::Tensor &delta, double beta, double tau = 0.05);
// −logσ(βΔ̄), Δ̄ = sc/Lc − sr/Lr
torch::Tensor sigmoidNormLoss(const torch::Tensor &meanDelta, double beta);
// −Σπc / Σ(chosen token counts), broadcast to [B]
torch::Tensor sftLoss(const torch::Tensor &policyChosenSum, const torch::Tensor &chosenCount);
// The f-DPO score of log-ratios (see LossConfig::fDivergenceType). alpha_divergence clamps (α−1)ρ at
// 80 (11 in float16) before exp, as TRL does.
torch::Tensor fDivergenceScore(const torch::Tensor &logratio, const std::string &type, double alphaCoef);

// Per-pair inputs. Sums are needed always; counts whenever a loss needs them (ipo, sigmoid_norm,
// sft). Reference tensors may be zeros (reference-free).
struct DpoInputs {
    torch::Tensor policyChosen; // [B] summed log-probs (LD-DPO weighted when ld_alpha is set)
    torch::Tensor policyRejected; // [B]
    torch::Tensor refChosen; // [B]
    torch::Tensor refRejected; // [B]
    torch::Tensor chosenCount; // [B] completion token counts (float or int)
    torch::Tensor rejectedCount; // [B]
    // Optional: [B] plain summed chosen log-probs for sft when policyChosen is LD-weighted
    // (undefined: policyChosen).
    torch::Tensor sftChosenSum;
    // WPO weights [B] (needed with use_weighting): exp of the mean over completion tokens of
    // log p(token) − log Σ_v p(v)², from the policy's logits (wpoWeights in logprobs.h). Detached.
    torch::Tensor chosenWeight;
    torch::Tensor rejectedWeight;
};

struct DpoLossOutput {
    torch::Tensor loss; // scalar: Σ_i w_i · mean(loss_i), differentiable
    torch::Tensor perPair; // [B]: Σ_i w_i · loss_i (its mean is `loss`)
    torch::Tensor chosenRewards; // [B] detached: β(πc − rc)
    torch::Tensor rejectedRewards; // [B] detached
    // TRL's names: rewards/chosen, rewards/rejected, rewards/accuracies, rewards/margins,
    // logps/chosen, logps/rejected (batch means). Filled only when computeDpoLoss reads them back.
    std::map<std::string, double> metrics;
    // The same values on the loss's device ([6] in the log-probs' dtype, detached), in metricNames' order: what the
    // trainer accumulates without a host read.
    std::vector<std::string> metricNames;
    torch::Tensor metricValues;
};

// Throws dpo::Error on an invalid config, mismatched shapes, or missing counts that a loss needs.
// readMetrics false leaves `metrics` empty (no device-to-host copy).
DpoLossOutput computeDpoLoss(const LossConfig &config, const DpoInputs &inputs, bool readMetrics = true);

} // namespace dpo
