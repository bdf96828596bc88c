#include "engine/training/adamw.h"

#include <algorithm>
#include <cctype>
#include <regex>

#include "engine/error.h"

#ifdef DPO_HAVE_FUSED_ADAMW
#include "engine/training/fused_adamw_ops.h"
#endif

#include <cmath>
#include <map>

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

bool adamWFusedBuilt()
{
#ifdef DPO_HAVE_FUSED_ADAMW
    return true;
#else
    return false;
#endif
}

AdamW::AdamW(std::vector<std::pair<std::string, torch::Tensor>> params, AdamWOptions options)
    : m_options(options)
{
    torch::NoGradGuard noGrad;
    for (auto &[name, p] : params) {
        Slot s;
        s.name = name;
        s.param = p;
        const auto stateType = options.float32State ? torch::kFloat32 : p.scalar_type();
        if (p.scalar_type() != stateType)
            s.master = p.detach().to(torch::kFloat32).contiguous().clone(); // the fused kernel wants like strides
        s.expAvg = torch::zeros(p.sizes(), p.options().dtype(stateType));
        s.expAvgSq = torch::zeros(p.sizes(), p.options().dtype(stateType));
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
    update(lr, gradScale, torch::Tensor(), grads);
}

void AdamW::step(double lr, const torch::Tensor &gradScale, const std::vector<torch::Tensor> &grads)
{
    update(lr, 1.0, gradScale, grads);
}

AdamW::BiasCorrection AdamW::nextStep(double lr)
{
    ++m_step;
    BiasCorrection bc;
    bc.bc2Sqrt = std::sqrt(1.0 - std::pow(m_options.beta2, double(m_step)));
    bc.stepSize = lr / (1.0 - std::pow(m_options.beta1, double(m_step)));
    return bc;
}

void AdamW::update(
    double lr, double scalarScale, const torch::Tensor &tensorScale, const std::vector<torch::Tensor> &grads)
{
    if (grads.size() != m_slots.size())
        throw Error("AdamW::step: " + std::to_string(grads.size()) + " gradients for " + std::to_string(m_slots.size())
            + " parameters");
    const bool onCuda = !m_slots.empty() && m_slots.front().param.is_cuda();
    AdamWKernel kernel = m_options.kernel;
    if (kernel == AdamWKernel::Auto)
        kernel = !onCuda ? AdamWKernel::PerTensor : adamWFusedBuilt() ? AdamWKernel::Fused : AdamWKernel::MultiTensor;
    if (kernel == AdamWKernel::Fused)
        return updateFused(lr, scalarScale, tensorScale, grads);
    if (kernel == AdamWKernel::MultiTensor)
        return updateMultiTensor(lr, scalarScale, tensorScale, grads);
    torch::NoGradGuard noGrad;
    const BiasCorrection bc = nextStep(lr);
    const double b1 = m_options.beta1, b2 = m_options.beta2, bc2Sqrt = bc.bc2Sqrt, stepSize = bc.stepSize;
    // Elementwise ops only: a tensor updated in blocks gives the same bits as updated whole.
    constexpr int64_t kBlock = int64_t(4) << 20;
    for (size_t i = 0; i < m_slots.size(); ++i) {
        Slot &s = m_slots[i];
        if (!grads[i].defined())
            continue;
        const auto gradFlat = grads[i].reshape({ -1 });
        const auto wFlat = (s.master.defined() ? s.master : s.param).view({ -1 });
        const auto mFlat = s.expAvg.view({ -1 }), vFlat = s.expAvgSq.view({ -1 });
        const int64_t n = wFlat.numel();
        for (int64_t off = 0; off < n; off += kBlock) {
            const int64_t len = std::min(kBlock, n - off);
            torch::Tensor g = gradFlat.narrow(0, off, len);
            if (g.scalar_type() != s.expAvg.scalar_type()) // float32, or the parameter's dtype
                g = g.to(s.expAvg.scalar_type());
            if (scalarScale != 1.0)
                g = g * scalarScale;
            if (tensorScale.defined()) // as clip_grad_norm_ scales: the factor in the gradient's dtype
                g = g * tensorScale.to(g.scalar_type());
            auto w = wFlat.narrow(0, off, len), m = mFlat.narrow(0, off, len), v = vFlat.narrow(0, off, len);
            if (m_options.weightDecay != 0.0 && s.decay)
                w.mul_(1.0 - lr * m_options.weightDecay);
            m.lerp_(g, 1.0 - b1);
            v.mul_(b2).addcmul_(g, g, 1.0 - b2);
            torch::Tensor denom = (v.sqrt() / bc2Sqrt).add_(m_options.eps);
            w.addcdiv_(m, denom, -stepSize);
        }
        if (s.master.defined())
            s.param.copy_(s.master);
    }
}

// torch.optim.AdamW(foreach=True)'s sequence (_multi_tensor_adamw): each op over every tensor at once,
// but the first moment's lerp, which runs per tensor (libtorch 1.13 has no _foreach_lerp_): the same
// numbers as torch 2.x's foreach update, and as the per-tensor one.
void AdamW::updateMultiTensor(
    double lr, double scalarScale, const torch::Tensor &tensorScale, const std::vector<torch::Tensor> &grads)
{
    torch::NoGradGuard noGrad;
    const BiasCorrection bc = nextStep(lr);
    const double b1 = m_options.beta1, b2 = m_options.beta2, bc2Sqrt = bc.bc2Sqrt, stepSize = bc.stepSize;
    std::vector<torch::Tensor> w, wDecay, g, m, v;
    std::vector<Slot *> withMaster;
    for (size_t i = 0; i < m_slots.size(); ++i) {
        Slot &s = m_slots[i];
        if (!grads[i].defined())
            continue;
        const auto stateType = s.expAvg.scalar_type();
        torch::Tensor gi = grads[i].scalar_type() == stateType ? grads[i] : grads[i].to(stateType);
        if (scalarScale != 1.0)
            gi = gi * scalarScale;
        if (tensorScale.defined())
            gi = gi * tensorScale.to(stateType);
        const auto &wi = s.master.defined() ? s.master : s.param;
        w.push_back(wi);
        if (m_options.weightDecay != 0.0 && s.decay)
            wDecay.push_back(wi);
        g.push_back(gi.reshape(wi.sizes()));
        m.push_back(s.expAvg);
        v.push_back(s.expAvgSq);
        if (s.master.defined())
            withMaster.push_back(&s);
    }
    if (w.empty())
        return;
    if (!wDecay.empty())
        at::_foreach_mul_(wDecay, 1.0 - lr * m_options.weightDecay);
    for (size_t i = 0; i < m.size(); ++i) // torch >= 2.0's _foreach_lerp_, one tensor at a time (1.13 has none)
        m[i].lerp_(g[i], 1.0 - b1);
    at::_foreach_mul_(v, b2);
    at::_foreach_addcmul_(v, g, g, 1.0 - b2);
    auto denom = at::_foreach_sqrt(v);
    at::_foreach_div_(denom, bc2Sqrt);
    at::_foreach_add_(denom, m_options.eps);
    at::_foreach_addcdiv_(w, m, denom, -stepSize);
    for (Slot *s : withMaster)
        s->param.copy_(s->master);
}

// torch.optim.AdamW(fused=True): the kernel applies decay, both moments, the bias corrections and the
// update in one pass per tensor (in float32 whatever the dtype). It divides the gradients by a scale
// tensor (so the clip factor goes in as its reciprocal; the divided gradients are written back into
// the gradients it was given).
void AdamW::updateFused(
    double lr, double scalarScale, const torch::Tensor &tensorScale, const std::vector<torch::Tensor> &grads)
{
#ifdef DPO_HAVE_FUSED_ADAMW
    torch::NoGradGuard noGrad;
    nextStep(lr);
    // One call per (weight decay, dtype): the kernel takes one decay and one dtype per call.
    struct Group {
        std::vector<torch::Tensor> w, g, m, v;
    };
    std::map<std::pair<bool, torch::ScalarType>, Group> groups;
    std::vector<Slot *> withMaster;
    for (size_t i = 0; i < m_slots.size(); ++i) {
        Slot &s = m_slots[i];
        if (!grads[i].defined())
            continue;
        const auto &wi = s.master.defined() ? s.master : s.param;
        Group &grp = groups[{ m_options.weightDecay != 0.0 && s.decay, wi.scalar_type() }];
        grp.w.push_back(wi);
        grp.g.push_back(grads[i].to(s.expAvg.scalar_type()).reshape(wi.sizes()).contiguous());
        grp.m.push_back(s.expAvg);
        grp.v.push_back(s.expAvgSq);
        if (s.master.defined())
            withMaster.push_back(&s);
    }
    if (groups.empty())
        return;
    const auto f32 = m_slots.front().expAvg.options().dtype(torch::kFloat32);
    if (!m_deviceStep.defined())
        m_deviceStep = torch::empty({}, f32);
    m_deviceStep.fill_(double(m_step)); // a kernel launch, not a read
    torch::Tensor divisor; // undefined: the gradients as they are
    if (tensorScale.defined())
        divisor = (tensorScale.to(f32) * scalarScale).reciprocal();
    else if (scalarScale != 1.0)
        divisor = torch::full({}, 1.0 / scalarScale, f32);
    for (auto &[key, grp] : groups) {
        const std::vector<torch::Tensor> steps(grp.w.size(), m_deviceStep);
        fused_adamw_ops::step(grp.w, grp.g, grp.m, grp.v, steps, lr, m_options.beta1, m_options.beta2,
            key.first ? m_options.weightDecay : 0.0, m_options.eps, divisor);
    }
    for (Slot *s : withMaster)
        s->param.copy_(s->master);
#else
    throw Error("the fused AdamW kernel is not in this build (its libtorch has no _fused_adamw_: libtorch >= 2.0 "
                "on CUDA, >= 2.4 on CPU)");
#endif
}

std::vector<std::pair<std::string, torch::ScalarType>> AdamW::stateLayout(
    const std::string &name, const torch::Tensor &param) const
{
    const auto stateType = m_options.float32State ? torch::kFloat32 : param.scalar_type();
    std::vector<std::pair<std::string, torch::ScalarType>> out
        = { { "exp_avg." + name, stateType }, { "exp_avg_sq." + name, stateType } };
    if (param.scalar_type() != stateType)
        out.emplace_back("master." + name, torch::kFloat32);
    return out;
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
