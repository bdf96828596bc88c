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
    if (seen.count("exo_pair") && labelSmoothing == 0.0)
        throw Error("label_smoothing: loss type exo_pair needs label_smoothing > 0 (it takes log ε)");
    if (!(discopopTau > 0.0) || !std::isfinite(discopopTau))
        throw Error("discopop_tau must be a positive number, got " + formatDouble(discopopTau));
}

bool LossConfig::usesMeanLogps() const
{
    return std::find(types.begin(), types.end(), "ipo") != types.end();
}

} // namespace dpo
