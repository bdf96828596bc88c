#include "engine/training/adamw.h"

#include <algorithm>
#include <cctype>
#include <regex>

#include "engine/error.h"

#include <cmath>

namespace dpo {

bool hfDecaysParameter(const std::string &name)
{
    std::string n = name;
    std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    static const std::regex forbidden(R"(bias|layernorm|rmsnorm|(^|\.)norm($|\.)|_norm($|\.))");
    // GPT-2's LayerNorm modules (nn.LayerNorm instances in transformers, excluded by type there).
    static const std::regex gpt2LayerNorm(R"((^|\.)ln_(1|2|f)\.)");
    return !std::regex_search(n, forbidden) && !std::regex_search(n, gpt2LayerNorm);
}

AdamW::AdamW(std::vector<std::pair<std::string, torch::Tensor>> params, AdamWOptions options)
    : m_options(options)
{
    torch::NoGradGuard noGrad;
    for (auto &[name, p] : params) {
        Slot s;
        s.name = name;
        s.param = p;
        if (p.scalar_type() != torch::kFloat32)
            s.master = p.detach().to(torch::kFloat32).clone();
        s.expAvg = torch::zeros(p.sizes(), p.options().dtype(torch::kFloat32));
        s.expAvgSq = torch::zeros(p.sizes(), p.options().dtype(torch::kFloat32));
        s.decay = hfDecaysParameter(s.name);
        m_slots.push_back(std::move(s));
    }
}

void AdamW::zeroGrad()
{
    for (auto &s : m_slots) {
        auto &g = s.param.mutable_grad();
        if (g.defined())
            g = torch::Tensor();
    }
}

void AdamW::step(double lr, double gradScale)
{
    std::vector<torch::Tensor> grads;
    grads.reserve(m_slots.size());
    for (const auto &s : m_slots)
        grads.push_back(s.param.grad());
    step(lr, gradScale, grads);
}

void AdamW::step(double lr, double gradScale, const std::vector<torch::Tensor> &grads)
{
    if (grads.size() != m_slots.size())
        throw Error("AdamW::step: " + std::to_string(grads.size()) + " gradients for " +
                    std::to_string(m_slots.size()) + " parameters");
    torch::NoGradGuard noGrad;
    ++m_step;
    const double b1 = m_options.beta1, b2 = m_options.beta2;
    const double bc1 = 1.0 - std::pow(b1, double(m_step));
    const double bc2Sqrt = std::sqrt(1.0 - std::pow(b2, double(m_step)));
    const double stepSize = lr / bc1;
    for (size_t i = 0; i < m_slots.size(); ++i) {
        Slot &s = m_slots[i];
        const torch::Tensor &grad = grads[i];
        if (!grad.defined())
            continue;
        torch::Tensor g = grad.scalar_type() == torch::kFloat32 ? grad : grad.to(torch::kFloat32);
        if (gradScale != 1.0)
            g = g * gradScale;
        torch::Tensor w = s.master.defined() ? s.master : s.param;
        if (m_options.weightDecay != 0.0 && s.decay)
            w.mul_(1.0 - lr * m_options.weightDecay);
        s.expAvg.lerp_(g, 1.0 - b1);
        s.expAvgSq.mul_(b2).addcmul_(g, g, 1.0 - b2);
        torch::Tensor denom = (s.expAvgSq.sqrt() / bc2Sqrt).add_(m_options.eps);
        w.addcdiv_(s.expAvg, denom, -stepSize);
        if (s.master.defined())
            s.param.copy_(s.master);
    }
}

std::map<std::string, torch::Tensor> AdamW::stateTensors() const
{
    std::map<std::string, torch::Tensor> out;
    for (const auto &s : m_slots) {
        out["exp_avg." + s.name] = s.expAvg;
        out["exp_avg_sq." + s.name] = s.expAvgSq;
        if (s.master.defined())
            out["master." + s.name] = s.master;
    }
    return out;
}

void AdamW::loadStateTensors(const std::map<std::string, torch::Tensor> &state, int64_t step)
{
    torch::NoGradGuard noGrad;
    auto take = [&](const std::string &key, torch::Tensor &dst) {
        auto it = state.find(key);
        if (it == state.end())
            throw Error("optimizer state: tensor '" + key + "' is missing");
        if (it->second.sizes() != dst.sizes())
            throw Error("optimizer state: tensor '" + key + "' has the wrong shape");
        dst.copy_(it->second);
    };
    for (auto &s : m_slots) {
        take("exp_avg." + s.name, s.expAvg);
        take("exp_avg_sq." + s.name, s.expAvgSq);
        if (s.master.defined()) {
            // An older checkpoint saved in float32 has no master copy: the weights themselves are it.
            if (state.count("master." + s.name))
                take("master." + s.name, s.master);
            else
                s.master.copy_(s.param);
        }
    }
    m_step = step;
}

} // namespace dpo
