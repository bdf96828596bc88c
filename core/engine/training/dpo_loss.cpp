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

torch::Tensor sigmoidLoss(const torch::Tensor &delta, double beta, double labelSmoothing)
{
    const auto z = beta * delta;
    return -(1.0 - labelSmoothing) * logSigmoid(z) - labelSmoothing * logSigmoid(-z);
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
    return torch::sigmoid(z) * (logSigmoid(z) - std::log(1.0 - labelSmoothing))
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
    return sigmoidLoss(sortedPolicy - sortedRef, beta, labelSmoothing);
}

torch::Tensor aotUnpairedLoss(
    const torch::Tensor &chosenRatio, const torch::Tensor &rejectedRatio, double beta, double labelSmoothing)
{
    const auto sortedChosen = std::get<0>(torch::sort(chosenRatio, 0));
    const auto sortedRejected = std::get<0>(torch::sort(rejectedRatio, 0));
    return sigmoidLoss(sortedChosen - sortedRejected, beta, labelSmoothing);
}

torch::Tensor apoZeroLoss(const torch::Tensor &chosenRatio, const torch::Tensor &rejectedRatio, double beta)
{
    return (1.0 - torch::sigmoid(beta * chosenRatio)) + torch::sigmoid(beta * rejectedRatio);
}

torch::Tensor apoDownLoss(const torch::Tensor &chosenRatio, const torch::Tensor &rejectedRatio, double beta)
{
    return torch::sigmoid(beta * chosenRatio) + (1.0 - torch::sigmoid(beta * (chosenRatio - rejectedRatio)));
}

torch::Tensor discopopLoss(const torch::Tensor &delta, double beta, double tau)
{
    const auto z = beta * delta;
    const auto m = torch::sigmoid(z / tau);
    return (1.0 - m) * -logSigmoid(z) + torch::exp(logSigmoid(z / tau) - z);
}

torch::Tensor sigmoidNormLoss(
    const torch::Tensor &policyChosenMean, const torch::Tensor &policyRejectedMean, double beta)
{
    return -logSigmoid(beta * (policyChosenMean - policyRejectedMean));
}

torch::Tensor sftLoss(const torch::Tensor &policyChosenSum, const torch::Tensor &chosenCount)
{
    const auto count = chosenCount.to(policyChosenSum.scalar_type()).sum().clamp_min(1.0);
    return (-policyChosenSum.sum() / count).expand({ policyChosenSum.size(0) });
}

DpoLossOutput computeDpoLoss(const LossConfig &config, const DpoInputs &in)
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

    const bool needsCounts = config.usesMeanLogps()
        || std::any_of(config.types.begin(), config.types.end(),
            [](const std::string &t) { return t == "sigmoid_norm" || t == "sft"; });
    if (needsCounts) {
        for (const auto *t : { &in.chosenCount, &in.rejectedCount }) {
            if (!t->defined() || t->dim() != 1 || t->size(0) != b)
                throw Error("DPO loss: loss types ipo, sigmoid_norm and sft need the completion token counts of "
                            "every pair");
        }
    }

    const auto dtype = in.policyChosen.scalar_type();
    auto meanOf
        = [&](const torch::Tensor &sum, const torch::Tensor &count) { return sum / count.to(dtype).clamp_min(1.0); };

    // TRL divides all log-probs by their lengths as soon as "ipo" is listed.
    torch::Tensor pc = in.policyChosen, pr = in.policyRejected, rc = in.refChosen, rr = in.refRejected;
    if (config.usesMeanLogps()) {
        pc = meanOf(pc, in.chosenCount);
        pr = meanOf(pr, in.rejectedCount);
        rc = meanOf(rc, in.chosenCount);
        rr = meanOf(rr, in.rejectedCount);
    }
    const auto chosenRatio = pc - rc;
    const auto rejectedRatio = pr - rr;
    const auto policyLogratios = pc - pr;
    const auto refLogratios = rc - rr;
    const auto delta = policyLogratios - refLogratios;
    const double beta = config.beta;
    const double eps = config.labelSmoothing;

    torch::Tensor perPair;
    double weightSum = 0.0;
    for (size_t i = 0; i < config.types.size(); ++i) {
        const std::string &type = config.types[i];
        const double w = config.weights.empty() ? 1.0 : config.weights[i];
        torch::Tensor l;
        if (type == "sigmoid")
            l = sigmoidLoss(delta, beta, eps);
        else if (type == "hinge")
            l = hingeLoss(delta, beta);
        else if (type == "ipo")
            l = ipoLoss(delta, beta); // delta already holds per-token means here
        else if (type == "robust")
            l = robustLoss(delta, beta, eps);
        else if (type == "exo_pair")
            l = exoPairLoss(delta, beta, eps);
        else if (type == "nca_pair")
            l = ncaPairLoss(chosenRatio, rejectedRatio, beta);
        else if (type == "bco_pair")
            l = bcoPairLoss(chosenRatio, rejectedRatio, beta);
        else if (type == "sppo_hard")
            l = sppoHardLoss(chosenRatio, rejectedRatio, beta);
        else if (type == "aot")
            l = aotLoss(policyLogratios, refLogratios, beta, eps);
        else if (type == "aot_unpaired")
            l = aotUnpairedLoss(chosenRatio, rejectedRatio, beta, eps);
        else if (type == "apo_zero")
            l = apoZeroLoss(chosenRatio, rejectedRatio, beta);
        else if (type == "apo_down")
            l = apoDownLoss(chosenRatio, rejectedRatio, beta);
        else if (type == "discopop")
            l = discopopLoss(delta, beta, config.discopopTau);
        else if (type == "sigmoid_norm")
            l = sigmoidNormLoss(
                meanOf(in.policyChosen, in.chosenCount), meanOf(in.policyRejected, in.rejectedCount), beta);
        else if (type == "sft")
            l = sftLoss(in.policyChosen, in.chosenCount);
        else
            throw Error("loss_type: unknown loss type '" + type + "'"); // unreachable after validate()
        perPair = perPair.defined() ? perPair + w * l : w * l;
        weightSum += w;
    }

    DpoLossOutput out;
    out.perPair = perPair;
    out.loss = perPair.mean();
    out.chosenRewards = (weightSum * beta * chosenRatio).detach();
    out.rejectedRewards = (weightSum * beta * rejectedRatio).detach();

    // One device-to-host copy for all metrics.
    const auto stats
        = torch::stack({ out.chosenRewards.mean(), out.rejectedRewards.mean(),
                           (out.chosenRewards > out.rejectedRewards).to(dtype).mean(),
                           (out.chosenRewards - out.rejectedRewards).mean(), pc.detach().mean(), pr.detach().mean() })
              .to(torch::kCPU, torch::kDouble);
    const auto s = stats.accessor<double, 1>();
    out.metrics = { { "rewards/chosen", s[0] }, { "rewards/rejected", s[1] }, { "rewards/accuracies", s[2] },
        { "rewards/margins", s[3] }, { "logps/chosen", s[4] }, { "logps/rejected", s[5] } };
    return out;
}

} // namespace dpo
