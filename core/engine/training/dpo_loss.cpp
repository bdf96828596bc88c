#include "engine/training/dpo_loss.h"

#include "engine/error.h"

#include <algorithm>
#include <cmath>

namespace dpo {

namespace {

torch::Tensor logSigmoid(const torch::Tensor &x)
{
    return torch::log_sigmoid(x);
}

} // namespace

namespace {

// −(1−ε)·logσ(βd) − ε·logσ(−βd): the form aot and aot_unpaired keep in TRL 1.x.
torch::Tensor conservativeSigmoid(const torch::Tensor &d, double beta, double labelSmoothing)
{
    const auto z = beta * d;
    return -(1.0 - labelSmoothing) * logSigmoid(z) - labelSmoothing * logSigmoid(-z);
}

} // namespace

torch::Tensor sigmoidLoss(const torch::Tensor &delta, double beta)
{
    return -logSigmoid(beta * delta);
}

torch::Tensor hingeLoss(const torch::Tensor &delta, double beta)
{
    return torch::relu(1.0 - beta * delta);
}

torch::Tensor ipoLoss(const torch::Tensor &meanDelta, double beta)
{
    return (meanDelta - 1.0 / (2.0 * beta)).pow(2);
}

torch::Tensor robustLoss(const torch::Tensor &delta, double beta, double labelSmoothing)
{
    const auto z = beta * delta;
    return (-(1.0 - labelSmoothing) * logSigmoid(z) + labelSmoothing * logSigmoid(-z)) / (1.0 - 2.0 * labelSmoothing);
}

torch::Tensor exoPairLoss(const torch::Tensor &delta, double beta, double labelSmoothing)
{
    const auto z = beta * delta;
    return torch::sigmoid(z) * (logSigmoid(z) - std::log1p(-labelSmoothing))
        + torch::sigmoid(-z) * (logSigmoid(-z) - std::log(labelSmoothing));
}

torch::Tensor ncaPairLoss(const torch::Tensor &chosenRatio, const torch::Tensor &rejectedRatio, double beta)
{
    const auto c = beta * chosenRatio;
    const auto r = beta * rejectedRatio;
    return -logSigmoid(c) - 0.5 * logSigmoid(-c) - 0.5 * logSigmoid(-r);
}

torch::Tensor bcoPairLoss(const torch::Tensor &chosenRatio, const torch::Tensor &rejectedRatio, double beta)
{
    return -logSigmoid(beta * chosenRatio) - logSigmoid(-beta * rejectedRatio);
}

torch::Tensor sppoHardLoss(const torch::Tensor &chosenRatio, const torch::Tensor &rejectedRatio, double beta)
{
    const double half = 0.5 / beta;
    return (chosenRatio - half).pow(2) + (rejectedRatio + half).pow(2);
}

torch::Tensor aotLoss(
    const torch::Tensor &policyLogratios, const torch::Tensor &refLogratios, double beta, double labelSmoothing)
{
    const auto sortedPolicy = std::get<0>(torch::sort(policyLogratios, 0));
    const auto sortedRef = std::get<0>(torch::sort(refLogratios, 0));
    return conservativeSigmoid(sortedPolicy - sortedRef, beta, labelSmoothing);
}

torch::Tensor aotUnpairedLoss(
    const torch::Tensor &chosenRatio, const torch::Tensor &rejectedRatio, double beta, double labelSmoothing)
{
    const auto sortedChosen = std::get<0>(torch::sort(chosenRatio, 0));
    const auto sortedRejected = std::get<0>(torch::sort(rejectedRatio, 0));
    return conservativeSigmoid(sortedChosen - sortedRejected, beta, labelSmoothing);
}

torch::Tensor apoZeroLoss(const torch::Tensor &chosenRatio, const torch::Tensor &rejectedRatio, double beta)
{
    return (1.0 - torch::sigmoid(beta * chosenRatio)) + torch::sigmoid(beta * rejectedRatio);
}

torch::Tensor apoDownLoss(const torch::Tensor &chosenRatio, const torch::Tensor &delta, double beta)
{
    return torch::sigmoid(beta * chosenRatio) + (1.0 - torch::sigmoid(beta * delta));
}

torch::Tensor discopopLoss(const torch::Tensor &delta, double beta, double tau)
{
    const auto z = beta * delta;
    const auto m = torch::sigmoid(z / tau);
    return (1.0 - m) * -logSigmoid(z) + torch::exp(logSigmoid(z / tau) - z);
}

torch::Tensor sigmoidNormLoss(const torch::Tensor &meanDelta, double beta)
{
    return -logSigmoid(beta * meanDelta);
}

torch::Tensor fDivergenceScore(const torch::Tensor &logratio, const std::string &type, double alphaCoef)
{
    if (type == "reverse_kl")
        return logratio;
    if (type == "forward_kl")
        return -torch::exp(-logratio);
    if (type == "js_divergence")
        return logSigmoid(logratio);
    if (type == "alpha_divergence") {
        if (std::abs(alphaCoef - 1.0) < 1e-6)
            return logratio;
        const double clampMax = logratio.scalar_type() == torch::kHalf ? 11.0 : 80.0;
        const auto t = ((alphaCoef - 1.0) * logratio).to(torch::kFloat32).clamp_max(clampMax);
        return torch::exp(t).to(logratio.scalar_type()) * (1.0 / (alphaCoef - 1.0));
    }
    throw Error("f_divergence_type: unknown value '" + type + "'");
}

torch::Tensor sftLoss(const torch::Tensor &policyChosenSum, const torch::Tensor &chosenCount)
{
    const auto count = chosenCount.to(policyChosenSum.scalar_type()).sum().clamp_min(1.0);
    return (-policyChosenSum.sum() / count).expand({ policyChosenSum.size(0) });
}

DpoLossOutput computeDpoLoss(const LossConfig &config, const DpoInputs &in, bool readMetrics)
{
    config.validate();
    const std::pair<const char *, const torch::Tensor *> required[]
        = { { "policy chosen log-probs", &in.policyChosen }, { "policy rejected log-probs", &in.policyRejected },
              { "reference chosen log-probs", &in.refChosen }, { "reference rejected log-probs", &in.refRejected } };
    for (const auto &[name, t] : required) {
        if (!t->defined() || t->dim() != 1)
            throw Error(std::string("DPO loss: ") + name + " must be a 1-D tensor with one value per pair");
        if (t->size(0) != in.policyChosen.size(0))
            throw Error(std::string("DPO loss: ") + name + " has " + std::to_string(t->size(0)) + " values, expected "
                + std::to_string(in.policyChosen.size(0)));
    }
    const int64_t b = in.policyChosen.size(0);
    if (b == 0)
        throw Error("DPO loss: the batch is empty");

    const bool needsCounts = config.has("ipo") || config.has("sigmoid_norm") || config.has("sft");
    if (needsCounts) {
        for (const auto *t : { &in.chosenCount, &in.rejectedCount }) {
            if (!t->defined() || t->dim() != 1 || t->size(0) != b)
                throw Error("DPO loss: loss types ipo, sigmoid_norm and sft need the completion token counts of "
                            "every pair");
        }
    }
    if (config.useWeighting) {
        for (const auto *t : { &in.chosenWeight, &in.rejectedWeight }) {
            if (!t->defined() || t->dim() != 1 || t->size(0) != b)
                throw Error("DPO loss: use_weighting needs the WPO weights of every pair");
        }
    }

    const auto dtype = in.policyChosen.scalar_type();
    const torch::Tensor &pc = in.policyChosen, &pr = in.policyRejected, &rc = in.refChosen, &rr = in.refRejected;
    const auto chosenRatio = pc - rc;
    const auto rejectedRatio = pr - rr;
    const auto chosenScore = fDivergenceScore(chosenRatio, config.fDivergenceType, config.fAlphaDivergenceCoef);
    const auto rejectedScore = fDivergenceScore(rejectedRatio, config.fDivergenceType, config.fAlphaDivergenceCoef);
    const auto delta = chosenScore - rejectedScore;
    const double beta = config.beta;
    const double eps = config.labelSmoothing;
    // ipo and sigmoid_norm: the scores per completion token, in their own term only.
    auto meanDelta = [&] {
        return chosenScore / in.chosenCount.to(dtype).clamp_min(1.0)
            - rejectedScore / in.rejectedCount.to(dtype).clamp_min(1.0);
    };
    torch::Tensor pairWeight;
    if (config.useWeighting)
        pairWeight = (in.chosenWeight * in.rejectedWeight).detach().to(dtype);

    torch::Tensor perPair;
    for (size_t i = 0; i < config.types.size(); ++i) {
        const std::string &type = config.types[i];
        const double w = config.weights.empty() ? 1.0 : config.weights[i];
        torch::Tensor l;
        if (type == "sigmoid")
            l = sigmoidLoss(delta, beta);
        else if (type == "hinge")
            l = hingeLoss(delta, beta);
        else if (type == "ipo")
            l = ipoLoss(meanDelta(), beta);
        else if (type == "robust")
            l = robustLoss(delta, beta, eps);
        else if (type == "exo_pair")
            l = exoPairLoss(delta, beta, eps);
        else if (type == "nca_pair")
            l = ncaPairLoss(chosenScore, rejectedScore, beta);
        else if (type == "bco_pair")
            l = bcoPairLoss(chosenScore, rejectedScore, beta);
        else if (type == "sppo_hard")
            l = sppoHardLoss(chosenScore, rejectedScore, beta);
        else if (type == "aot")
            l = aotLoss(pc - pr, rc - rr, beta, eps);
        else if (type == "aot_unpaired")
            l = aotUnpairedLoss(chosenRatio, rejectedRatio, beta, eps);
        else if (type == "apo_zero")
            l = apoZeroLoss(chosenRatio, rejectedRatio, beta);
        else if (type == "apo_down")
            l = apoDownLoss(chosenRatio, delta, beta);
        else if (type == "discopop")
            l = discopopLoss(delta, beta, config.discopopTau);
        else if (type == "sigmoid_norm")
            l = sigmoidNormLoss(meanDelta(), beta);
        else if (type == "sft")
            l = sftLoss(in.sftChosenSum.defined() ? in.sftChosenSum : pc, in.chosenCount);
        else
            throw Error("loss_type: unknown loss type '" + type + "'"); // unreachable after validate()
        if (pairWeight.defined())
            l = l * pairWeight;
        perPair = perPair.defined() ? perPair + w * l : w * l;
    }

    DpoLossOutput out;
    out.perPair = perPair;
    out.loss = perPair.mean();
    out.chosenRewards = (beta * chosenRatio).detach();
    out.rejectedRewards = (beta * rejectedRatio).detach();

    out.metricNames = { "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen",
        "logps/rejected" };
    out.metricValues = torch::stack({ out.chosenRewards.mean(), out.rejectedRewards.mean(),
                                        (out.chosenRewards > out.rejectedRewards).to(dtype).mean(),
                                        (out.chosenRewards - out.rejectedRewards).mean(), pc.detach().mean(),
                                        pr.detach().mean() });
    if (readMetrics) { // one device-to-host copy for all of them
        const auto s = out.metricValues.to(torch::kCPU, torch::kDouble);
        const auto a = s.accessor<double, 1>();
        for (size_t i = 0; i < out.metricNames.size(); ++i)
            out.metrics[out.metricNames[i]] = a[int64_t(i)];
    }
    return out;
}

} // namespace dpo
