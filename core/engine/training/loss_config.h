// LossConfig: which of TRL's DPO losses a run combines (`loss_type`, `loss_weights`) and their
// hyper-parameters, with the one validation every front end uses (dpo-cli, the trainer, the Train
// page). No libtorch: the GUI checks a form without pulling in tensor headers. The losses themselves
// are in dpo_loss.h.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace dpo {

// Loss type names accepted by LossConfig, in TRL's spelling.
const std::vector<std::string> &dpoLossTypes();

struct LossConfig {
    std::vector<std::string> types { "sigmoid" };
    std::vector<double> weights; // empty = 1.0 each; otherwise one per type
    double beta = 0.1;
    // ε for robust, exo_pair, aot and aot_unpaired (TRL 1.x: sigmoid no longer takes it).
    double labelSmoothing = 0.0;
    double discopopTau = 0.05;
    // f-DPO (TRL's f_divergence_type): how a log-ratio ρ becomes the score the losses compare.
    // reverse_kl: ρ; forward_kl: −e^(−ρ); js_divergence: logσ(ρ); alpha_divergence: e^((α−1)ρ)/(α−1)
    // (α = f_alpha_divergence_coef; |α − 1| < 1e-6 falls back to ρ).
    std::string fDivergenceType = "reverse_kl";
    double fAlphaDivergenceCoef = 0.5;
    // WPO (use_weighting): every pair's loss is multiplied by w_chosen · w_rejected (detached), w the
    // policy's length-normalised aligned sequence probability (see DpoInputs::chosenWeight).
    bool useWeighting = false;
    // LD-DPO (ld_alpha): completion log-probs beyond the shorter completion of the pair count α times.
    // Applied where log-probs are summed (ldAlphaLogps in logprobs.h), not in computeDpoLoss.
    std::optional<double> ldAlpha;

    // Throws dpo::Error naming the option: no or unknown or repeated type, weights length mismatch,
    // non-finite weight, beta <= 0, ε outside [0, 0.5), ε > 0 with no loss that uses it, exo_pair
    // with ε = 0, tau <= 0, unknown f_divergence_type, non-finite f_alpha_divergence_coef,
    // use_weighting with aot/aot_unpaired/sft, ld_alpha outside [0, 1].
    void validate() const;
    bool has(const std::string &type) const;
};

// f_divergence_type values in TRL's spelling.
const std::vector<std::string> &fDivergenceTypes();

} // namespace dpo
