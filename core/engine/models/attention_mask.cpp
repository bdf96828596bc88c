#include "engine/models/attention_mask.h"

#include "engine/error.h"

#include <torch/version.h>

#include <algorithm>
#include <limits>

namespace dpo {

double lowestOf(torch::ScalarType t)
{
    switch (t) {
    case torch::kFloat16:
        return -65504.0;
    case torch::kBFloat16:
        return -3.3895313892515355e38;
    case torch::kFloat64:
        return std::numeric_limits<double>::lowest();
    default:
        return std::numeric_limits<float>::lowest();
    }
}

double initializerRange(const ModelConfig &c)
{
    if (c.raw.is_object() && c.raw.contains("initializer_range") && c.raw["initializer_range"].is_number())
        return c.raw["initializer_range"].get<double>();
    return 0.02;
}

MaskAndPositions buildMaskAndPositions(
    const torch::Tensor &attentionMask, int64_t B, int64_t T, int64_t past, const torch::TensorOptions &hidden)
{
    const int64_t S = past + T;
    const auto longOpts = torch::TensorOptions().dtype(torch::kInt64).device(hidden.device());
    const double lowest = lowestOf(c10::typeMetaToScalarType(hidden.dtype()));
    MaskAndPositions out;
    AttentionMask &am = out.mask;
    if (attentionMask.defined()) {
        if (attentionMask.dim() != 2 || attentionMask.size(0) != B || attentionMask.size(1) != S)
            throw Error("attention mask must be [batch, past + new tokens] = [" + std::to_string(B) + ", "
                + std::to_string(S) + "], got " + c10::str(attentionMask.sizes()));
        auto m = attentionMask.to(hidden.device()).to(torch::kBool);
        out.positions = (m.to(torch::kInt64).cumsum(1) - 1).clamp_min(0).slice(1, past, S);
        // Right padding (or none) without a cache: padded keys sit after every real query.
        const bool rightPadded = past == 0 && (S < 2 || !(m.slice(1, 1) & ~m.slice(1, 0, S - 1)).any().item<bool>());
        if (!rightPadded) {
            auto qpos = torch::arange(past, S, longOpts).unsqueeze(1); // [T, 1]
            auto kpos = torch::arange(0, S, longOpts).unsqueeze(0); // [1, S]
            auto visible = (kpos <= qpos).unsqueeze(0) & m.unsqueeze(1); // [B, T, S]
            am.additive = torch::zeros({ B, 1, T, S }, hidden).masked_fill_(visible.logical_not().unsqueeze(1), lowest);
            am.causal = false;
        }
    } else {
        out.positions = torch::arange(past, S, longOpts).unsqueeze(0).expand({ B, T });
    }
    if (!am.additive.defined() && past > 0 && T > 1) {
        // New tokens after a cache, no padding: causal with an offset, which SDPA's is_causal
        // (top-left aligned) does not express.
        auto qpos = torch::arange(past, S, longOpts).unsqueeze(1);
        auto kpos = torch::arange(0, S, longOpts).unsqueeze(0);
        am.additive
            = torch::zeros({ 1, 1, T, S }, hidden).masked_fill_((kpos > qpos).unsqueeze(0).unsqueeze(0), lowest);
        am.causal = false;
    }
    if (!am.additive.defined() && past > 0)
        am.causal = false; // one new token sees every past key
#if TORCH_VERSION_MAJOR < 2
    // The explicit attention of libtorch 1.x needs the causal mask spelled out.
    if (!am.additive.defined() && am.causal && T > 1)
        am.additive = torch::full({ T, T }, lowest, hidden).triu_(1).view({ 1, 1, T, T });
#endif
    return out;
}

AttentionMask buildSlidingWindowMask(const MaskAndPositions &full, const torch::Tensor &attentionMask, int64_t B,
    int64_t T, int64_t past, int64_t window, const torch::TensorOptions &hidden)
{
    const int64_t S = past + T;
    if (window <= 0 || S <= window)
        return full.mask; // position differences are at most S - 1 < window
    const auto longOpts = torch::TensorOptions().dtype(torch::kInt64).device(hidden.device());
    const double lowest = lowestOf(c10::typeMetaToScalarType(hidden.dtype()));
    auto qidx = torch::arange(past, S, longOpts).unsqueeze(1); // [T, 1]
    auto kidx = torch::arange(0, S, longOpts).unsqueeze(0); // [1, S]
    torch::Tensor visible; // [B|1, T, S]
    if (attentionMask.defined()) {
        auto m = attentionMask.to(hidden.device()).to(torch::kBool); // [B, S]
        auto kpos = m.to(torch::kInt64).cumsum(1) - 1; // [B, S]: position of each key among real tokens
        auto qpos = full.positions; // [B, T]
        visible = (kidx <= qidx).unsqueeze(0) & m.unsqueeze(1) & ((qpos.unsqueeze(2) - kpos.unsqueeze(1)) < window);
    } else {
        visible = ((kidx <= qidx) & ((qidx - kidx) < window)).unsqueeze(0);
    }
    AttentionMask out;
    out.causal = false;
    out.window = window;
    out.additive
        = torch::zeros({ visible.size(0), 1, T, S }, hidden).masked_fill_(visible.logical_not().unsqueeze(1), lowest);
    return out;
}

void KVCache::reserve(int64_t capacity)
{
    keys.assign(keys.size(), torch::Tensor()); // empty, the depth kept
    values.assign(values.size(), torch::Tensor());
    m_capacity = std::max<int64_t>(capacity, 0);
}

std::pair<torch::Tensor, torch::Tensor> KVCache::append(size_t layer, const torch::Tensor &k, const torch::Tensor &v)
{
    torch::Tensor &K = keys.at(layer), &V = values.at(layer);
    // A backward would need the keys the next in-place write overwrites: autograd concatenates.
    const bool autograd = torch::GradMode::is_enabled()
        && (k.requires_grad() || v.requires_grad() || (K.defined() && K.requires_grad())
            || (V.defined() && V.requires_grad()));
    if (m_capacity == 0 || autograd) {
        K = K.defined() ? torch::cat({ K, k }, 2) : k;
        V = V.defined() ? torch::cat({ V, v }, 2) : v;
        return { K, V };
    }
    if (m_keyStorage.size() <= layer) {
        m_keyStorage.resize(keys.size());
        m_valueStorage.resize(keys.size());
    }
    torch::Tensor &sk = m_keyStorage[layer], &sv = m_valueStorage[layer];
    const int64_t past = K.defined() ? K.size(2) : 0, end = past + k.size(2);
    // In place while keys/values are still the storage's prefix (a caller may have replaced them)
    // and the new positions fit; otherwise move to storage that fits, once.
    auto fits = [end](const torch::Tensor &storage, const torch::Tensor &t) {
        return storage.defined() && end <= storage.size(2) && storage.size(0) == t.size(0)
            && storage.size(1) == t.size(1) && storage.size(3) == t.size(3) && storage.scalar_type() == t.scalar_type()
            && storage.device() == t.device();
    };
    const bool inPlace
        = fits(sk, k) && fits(sv, v) && (past == 0 || (K.data_ptr() == sk.data_ptr() && V.data_ptr() == sv.data_ptr()));
    if (!inPlace) {
        auto kSizes = k.sizes().vec(), vSizes = v.sizes().vec();
        kSizes[2] = vSizes[2] = std::max(m_capacity, end);
        auto nk = torch::empty(kSizes, k.options()), nv = torch::empty(vSizes, v.options());
        if (past > 0) {
            nk.narrow(2, 0, past).copy_(K);
            nv.narrow(2, 0, past).copy_(V);
        }
        sk = nk;
        sv = nv;
    }
    sk.narrow(2, past, k.size(2)).copy_(k);
    sv.narrow(2, past, v.size(2)).copy_(v);
    K = sk.narrow(2, 0, end);
    V = sv.narrow(2, 0, end);
    return { K, V };
}

void prepareCache(KVCache *cache, size_t layers)
{
    if (!cache || cache->keys.size() == layers)
        return;
    if (cache->length() > 0)
        throw Error(
            "KV cache has " + std::to_string(cache->keys.size()) + " layers, the model " + std::to_string(layers));
    cache->keys.assign(layers, torch::Tensor());
    cache->values.assign(layers, torch::Tensor());
}

MaskAndPositions buildPackedMaskAndPositions(const std::vector<int64_t> &starts, const torch::TensorOptions &hidden)
{
    if (starts.size() < 2 || starts.front() != 0)
        throw Error("packed batch: sequence boundaries must start at 0 and hold at least one sequence");
    std::vector<int64_t> pos;
    std::vector<int32_t> cu;
    pos.reserve(size_t(starts.back()));
    int64_t longest = 0;
    for (size_t i = 0; i + 1 < starts.size(); ++i) {
        if (starts[i + 1] <= starts[i])
            throw Error(
                "packed batch: sequence " + std::to_string(i) + " is empty or the boundaries are not increasing");
        for (int64_t p = 0; p < starts[i + 1] - starts[i]; ++p)
            pos.push_back(p);
        longest = std::max(longest, starts[i + 1] - starts[i]);
        cu.push_back(int32_t(starts[i]));
    }
    cu.push_back(int32_t(starts.back()));
    MaskAndPositions out;
    out.positions = torch::tensor(pos, torch::kInt64).to(hidden.device()).unsqueeze(0); // [1, N]
    out.mask.segments = starts;
    out.mask.cuSeqlens = torch::tensor(cu, torch::kInt32).to(hidden.device());
    out.mask.maxSegment = longest;
    out.mask.causal = true;
    return out;
}

} // namespace dpo
