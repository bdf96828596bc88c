#include "engine/training/loss_config.h"

#include "engine/error.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

namespace dpo {

namespace {

std::string formatDouble(double v)
{
    std::ostringstream s;
    s << v;
    return s.str();
}

} // namespace

const std::vector<std::string> &dpoLossTypes()
{
    static const std::vector<std::string> types { "sigmoid", "hinge", "ipo", "robust", "exo_pair", "nca_pair",
        "bco_pair", "sppo_hard", "aot", "aot_unpaired", "apo_zero", "apo_down", "discopop", "sigmoid_norm", "sft" };
    return types;
}

const std::vector<std::string> &fDivergenceTypes()
{
    static const std::vector<std::string> types { "reverse_kl", "forward_kl", "js_divergence", "alpha_divergence" };
    return types;
}

bool LossConfig::has(const std::string &type) const
{
    return std::find(types.begin(), types.end(), type) != types.end();
}

void LossConfig::validate() const
{
    if (types.empty())
        throw Error("loss_type: at least one loss type is needed");
    const auto &known = dpoLossTypes();
    std::set<std::string> seen;
    for (const auto &t : types) {
        if (std::find(known.begin(), known.end(), t) == known.end()) {
            std::string list;
            for (const auto &k : known)
                list += (list.empty() ? "" : ", ") + k;
            throw Error("loss_type: unknown loss type '" + t + "' (known: " + list + ")");
        }
        if (!seen.insert(t).second)
            throw Error("loss_type: '" + t + "' is listed twice");
    }
    if (!weights.empty() && weights.size() != types.size())
        throw Error("loss_weights: " + std::to_string(weights.size()) + " weights given for "
            + std::to_string(types.size()) + " loss types");
    for (double w : weights) {
        if (!std::isfinite(w))
            throw Error("loss_weights: every weight must be a finite number");
    }
    if (!(beta > 0.0) || !std::isfinite(beta))
        throw Error("beta must be a positive number, got " + formatDouble(beta));
    if (!(labelSmoothing >= 0.0 && labelSmoothing < 0.5))
        throw Error("label_smoothing must be in [0, 0.5), got " + formatDouble(labelSmoothing));
    if (labelSmoothing > 0.0 && !has("robust") && !has("exo_pair") && !has("aot") && !has("aot_unpaired"))
        throw Error("label_smoothing: TRL 1.x uses it only in the robust, exo_pair, aot and aot_unpaired losses "
                    "(sigmoid no longer takes it); set it to 0 or list one of those loss types");
    if (seen.count("exo_pair") && labelSmoothing == 0.0)
        throw Error("label_smoothing: loss type exo_pair needs label_smoothing > 0 (it takes log ε)");
    if (!(discopopTau > 0.0) || !std::isfinite(discopopTau))
        throw Error("discopop_tau must be a positive number, got " + formatDouble(discopopTau));
    const auto &fTypes = fDivergenceTypes();
    if (std::find(fTypes.begin(), fTypes.end(), fDivergenceType) == fTypes.end())
        throw Error("f_divergence_type: unknown value '" + fDivergenceType.substr(0, 80)
            + "' (known: reverse_kl, forward_kl, js_divergence, alpha_divergence)");
    if (!std::isfinite(fAlphaDivergenceCoef))
        throw Error("f_alpha_divergence_coef must be a finite number");
    if (useWeighting && (has("aot") || has("aot_unpaired")))
        throw Error("use_weighting: WPO weights cannot be combined with loss type aot or aot_unpaired (they sort "
                    "the pairs, which would misalign the per-pair weights; TRL refuses it too)");
    if (useWeighting && has("sft"))
        throw Error("use_weighting: WPO weights cannot be combined with loss type sft (TRL 1.x fails on it: the "
                    "batch-level SFT loss has no per-pair value to weight)");
    if (ldAlpha && !(*ldAlpha >= 0.0 && *ldAlpha <= 1.0))
        throw Error("ld_alpha must be in [0, 1], got " + formatDouble(*ldAlpha));
}

} // namespace dpo
