// LossConfig: which of TRL's DPO losses a run combines (`loss_type`, `loss_weights`) and their
// hyper-parameters, with the one validation every front end uses (dpo-cli, the trainer, the Train
// page). No libtorch: the GUI checks a form without pulling in tensor headers. The losses themselves
// are in dpo_loss.h.
#pragma once

#include <string>
#include <vector>

namespace dpo {

// Loss type names accepted by LossConfig, in TRL's spelling.
const std::vector<std::string> &dpoLossTypes();

struct LossConfig {
    std::vector<std::string> types { "sigmoid" };
    std::vector<double> weights; // empty = 1.0 each; otherwise one per type
    double beta = 0.1;
    double labelSmoothing = 0.0; // ε for sigmoid, robust, exo_pair, aot, aot_unpaired
    double discopopTau = 0.05;

    // Throws dpo::Error naming the option: no or unknown or repeated type, weights length mismatch,
    // non-finite weight, beta <= 0, ε outside [0, 0.5), exo_pair with ε = 0, tau <= 0.
    void validate() const;
    // True when TRL would replace summed log-probs by per-token means ("ipo" listed).
    bool usesMeanLogps() const;
};

} // namespace dpo
