#include "engine/training/grad_accumulator.h"

namespace dpo {

GradAccumulator::GradAccumulator(std::vector<torch::Tensor> params)
    : m_params(std::move(params))
    , m_sums(m_params.size())
{
}

void GradAccumulator::collect(bool onlyContribution)
{
    torch::NoGradGuard noGrad;
    for (size_t i = 0; i < m_params.size(); ++i) {
        torch::Tensor &p = m_params[i];
        if (p.scalar_type() == torch::kFloat32 || p.scalar_type() == torch::kFloat64 || !p.grad().defined())
            continue;
        if (onlyContribution && !m_sums[i].defined())
            continue;
        if (m_sums[i].defined())
            m_sums[i].add_(p.grad());
        else
            m_sums[i] = p.grad().to(torch::kFloat32);
        p.mutable_grad() = torch::Tensor();
    }
}

std::vector<torch::Tensor> GradAccumulator::gradients() const
{
    std::vector<torch::Tensor> out(m_params.size());
    for (size_t i = 0; i < m_params.size(); ++i)
        out[i] = m_sums[i].defined() ? m_sums[i] : m_params[i].grad();
    return out;
}

void GradAccumulator::clear()
{
    for (auto &s : m_sums)
        s = torch::Tensor();
}

} // namespace dpo
