#include "engine/models/packed_attention.h"

#include "engine/error.h"

#include <algorithm>
#include <atomic>
#include <iostream>

#ifdef DPO_HAVE_FLASH_VARLEN
#include "engine/models/flash_varlen_ops.h"

#include <torch/csrc/autograd/custom_function.h>
#endif

namespace dpo {

namespace {

std::atomic<int64_t> g_flashCalls { 0 };
std::atomic<bool> g_reference { false };
std::atomic<int64_t> g_referenceCalls { 0 };

// Causal attention of Tq queries over Tk >= Tq keys, aligned bottom-right (query i sits at key
// position i + Tk − Tq), within `window` keys when window > 0: the varlen kernel's rule.
AttentionMask bottomRightMask(int64_t Tq, int64_t Tk, int64_t window, const torch::TensorOptions &opts)
{
    if (Tq == Tk && (window <= 0 || Tk <= window))
        return buildMaskAndPositions({}, 1, Tq, 0, opts).mask; // plain causal (libtorch 1.x spells it out)
    const auto longOpts = opts.dtype(torch::kInt64);
    auto qi = torch::arange(Tk - Tq, Tk, longOpts).unsqueeze(1); // [Tq, 1]
    auto kj = torch::arange(Tk, longOpts).unsqueeze(0); // [1, Tk]
    auto hidden = kj > qi;
    if (window > 0)
        hidden = hidden.logical_or(qi - kj >= window);
    AttentionMask m;
    m.causal = false;
    m.additive = torch::zeros({ 1, 1, Tq, Tk }, opts)
                     .masked_fill_(hidden.view({ 1, 1, Tq, Tk }), lowestOf(c10::typeMetaToScalarType(opts.dtype())));
    return m;
}

#ifdef DPO_HAVE_FLASH_VARLEN
// The varlen kernel as an autograd function: its backward is the kernel's own (which recomputes the
// attention probabilities from the saved log-sum-exp), so nothing [Tq, Tk] is kept.
struct FlashVarlen : torch::autograd::Function<FlashVarlen> {
    static torch::Tensor forward(torch::autograd::AutogradContext *ctx, const torch::Tensor &q, const torch::Tensor &k,
        const torch::Tensor &v, const torch::Tensor &cuQ, const torch::Tensor &cuK, int64_t maxQ, int64_t maxK,
        double scale, int64_t windowLeft)
    {
        auto [out, lse, rng, unused, debug] = flash_ops::forward(q, k, v, cuQ, cuK, maxQ, maxK, scale, windowLeft);
        ctx->save_for_backward({ q, k, v, out, lse, cuQ, cuK, rng, unused });
        ctx->saved_data["maxQ"] = maxQ;
        ctx->saved_data["maxK"] = maxK;
        ctx->saved_data["scale"] = scale;
        ctx->saved_data["window"] = windowLeft;
        return out;
    }

    static torch::autograd::variable_list backward(
        torch::autograd::AutogradContext *ctx, torch::autograd::variable_list grads)
    {
        const auto s = ctx->get_saved_variables();
        auto [dq, dk, dv] = flash_ops::backward(grads[0].contiguous(), s[0], s[1], s[2], s[3], s[4], s[5], s[6],
            ctx->saved_data["maxQ"].toInt(), ctx->saved_data["maxK"].toInt(), s[7], s[8],
            ctx->saved_data["scale"].toDouble(), ctx->saved_data["window"].toInt());
        return { dq, dk, dv, {}, {}, {}, {}, {}, {} };
    }
};

// Cleared the first time the kernel refuses its input (a GPU older than sm80, for one): the process
// then takes the fallbacks, having said why once.
std::atomic<bool> g_flashUsable { true };
#endif

bool flashTakes(const torch::Tensor &q, const PackedAttentionOptions &o)
{
#ifdef DPO_HAVE_FLASH_VARLEN
    const auto t = q.scalar_type();
    const int64_t d = q.size(-1);
    return g_flashUsable && o.plainSoftmax && q.is_cuda() && (t == torch::kBFloat16 || t == torch::kFloat16)
        && d % 8 == 0 && d <= 256;
#else
    return false;
#endif
}

// The kernel's contract: q [Nq, H, D], k/v [Nk, Hkv, D], sequence i's queries at [cuQ[i], cuQ[i+1])
// and keys at [cuK[i], cuK[i+1]) -> [Nq, H, D]. Undefined when it refused (then never tried again).
torch::Tensor flashVarlen(const torch::Tensor &q, const torch::Tensor &k, const torch::Tensor &v,
    const torch::Tensor &cuQ, const torch::Tensor &cuK, int64_t maxQ, int64_t maxK, const PackedAttentionOptions &o)
{
#ifdef DPO_HAVE_FLASH_VARLEN
    try {
        auto out = FlashVarlen::apply(q.contiguous(), k.contiguous(), v.contiguous(), cuQ, cuK, maxQ, maxK, o.scale,
            o.window > 0 ? o.window - 1 : int64_t(-1));
        ++g_flashCalls;
        return out;
    } catch (const c10::OutOfMemoryError &) {
        throw; // not a refusal: the per-sequence path would need more memory, not less
    } catch (const c10::Error &e) {
        g_flashUsable = false;
        std::cerr << "dpo: the flash-attention varlen kernel refused (" << e.what_without_backtrace()
                  << "); attending without it\n";
    }
#endif
    return {};
}

// What the kernel computes, one sequence at a time through the model's attention.
torch::Tensor varlenReference(const torch::Tensor &q, const torch::Tensor &k, const torch::Tensor &v,
    const std::vector<int64_t> &qStarts, const std::vector<int64_t> &kStarts, const PackedAttentionOptions &o,
    const SequenceAttention &attend)
{
    std::vector<torch::Tensor> outs;
    outs.reserve(qStarts.size() - 1);
    for (size_t i = 0; i + 1 < qStarts.size(); ++i) {
        const int64_t q0 = qStarts[i], tq = qStarts[i + 1] - q0, k0 = kStarts[i], tk = kStarts[i + 1] - k0;
        auto heads = [](const torch::Tensor &t, int64_t start, int64_t len) { // [N, h, D] -> [1, h, len, D]
            return t.narrow(0, start, len).transpose(0, 1).unsqueeze(0);
        };
        const auto m = bottomRightMask(tq, tk, o.window, q.options());
        outs.push_back(attend(heads(q, q0, tq), heads(k, k0, tk), heads(v, k0, tk), m)[0].transpose(0, 1));
    }
    return outs.size() == 1 ? outs[0] : torch::cat(outs, 0); // [Nq, H, D]
}

} // namespace

bool flashVarlenBuilt()
{
#ifdef DPO_HAVE_FLASH_VARLEN
    return true;
#else
    return false;
#endif
}

int64_t flashVarlenCalls()
{
    return g_flashCalls;
}

void setVarlenReferenceForTests(bool on)
{
    g_reference = on;
}

int64_t varlenReferenceCalls()
{
    return g_referenceCalls;
}

torch::Tensor attendPacked(const torch::Tensor &q, const torch::Tensor &k, const torch::Tensor &v,
    const AttentionMask &packed, const PackedAttentionOptions &options, const SequenceAttention &attend)
{
    const auto &seg = packed.segments;
    if (seg.size() < 2 || seg.back() != q.size(1))
        throw Error("packed batch: the sequence boundaries end at " + std::to_string(seg.empty() ? 0 : seg.back())
            + ", the row has " + std::to_string(q.size(1)) + " tokens");
    PackedAttentionOptions o = options;
    o.window = packed.window;
    if (flashTakes(q, o) && packed.cuSeqlens.defined()) {
        auto out = flashVarlen(
            q[0], k[0], v[0], packed.cuSeqlens, packed.cuSeqlens, packed.maxSegment, packed.maxSegment, o);
        if (out.defined())
            return out.unsqueeze(0);
    }
    // Without the kernel: each sequence through the model's attention (what the kernel computes).
    return varlenReference(q[0], k[0], v[0], seg, seg, o, attend).unsqueeze(0);
}

torch::Tensor attendTokens(const torch::Tensor &q, torch::Tensor k, torch::Tensor v, const AttentionMask &mask,
    KVCache *cache, size_t layer, PackedAttentionOptions options, const SequenceAttention &attend)
{
    if (!mask.segments.empty()) { // a packed row: each sequence attends to itself
        if (cache)
            throw Error("packed batches do not use a KV cache");
        return attendPacked(q, k, v, mask, options, attend);
    }
    k = k.transpose(1, 2); // [B, Hkv, T, D]
    v = v.transpose(1, 2);
    if (cache)
        std::tie(k, v) = cache->append(layer, k, v);
    if (cache && cache->prefix) { // completions after a shared prompt
        options.window = mask.window;
        auto out = attendAfterPrefix(q, k, v, *cache->prefix, options, attend);
        if (out.defined())
            return out;
    }
    return attend(q.transpose(1, 2), k, v, mask).transpose(1, 2);
}

bool prefixLayoutUsable(torch::Device device)
{
    return (flashVarlenBuilt() && device.is_cuda()) || g_reference;
}

std::shared_ptr<const PrefixLayout> buildPrefixLayout(
    const std::vector<int64_t> &promptLengths, int64_t promptWidth, int64_t completionWidth, torch::Device device)
{
    auto layout = std::make_shared<PrefixLayout>();
    const int64_t rows = int64_t(promptLengths.size()), Tp = promptWidth, Tc = completionWidth, S = Tp + Tc;
    layout->rows = rows;
    layout->promptWidth = Tp;
    layout->completionWidth = Tc;
    std::vector<int64_t> index;
    std::vector<int32_t> cuQ { 0 }, cuK { 0 };
    layout->keyStarts.push_back(0);
    for (int64_t r = 0; r < rows; ++r) {
        const int64_t lp = promptLengths[size_t(r)];
        if (lp < 1 || lp > Tp)
            throw Error("shared prompt: row " + std::to_string(r) + " has " + std::to_string(lp)
                + " prompt tokens, the cache " + std::to_string(Tp));
        for (int64_t j = 0; j < lp; ++j)
            index.push_back(r * S + j);
        for (int64_t j = 0; j < Tc; ++j)
            index.push_back(r * S + Tp + j);
        layout->keyStarts.push_back(int64_t(index.size()));
        cuQ.push_back(int32_t((r + 1) * Tc));
        cuK.push_back(int32_t(index.size()));
        layout->maxK = std::max(layout->maxK, lp + Tc);
    }
    layout->keyIndex = torch::tensor(index, torch::kInt64).to(device);
    layout->cuQ = torch::tensor(cuQ, torch::kInt32).to(device);
    layout->cuK = torch::tensor(cuK, torch::kInt32).to(device);
    return layout;
}

torch::Tensor attendAfterPrefix(const torch::Tensor &q, const torch::Tensor &k, const torch::Tensor &v,
    const PrefixLayout &layout, const PackedAttentionOptions &options, const SequenceAttention &attend)
{
    const int64_t R = layout.rows, Tc = layout.completionWidth, S = layout.promptWidth + Tc;
    const bool flash = flashTakes(q, options);
    if (!flash && !g_reference)
        return {};
    if (q.size(0) != R || q.size(1) != Tc || k.size(0) != R || k.size(2) != S)
        throw Error("shared prompt: queries " + c10::str(q.sizes()) + " and keys " + c10::str(k.sizes())
            + " do not match the prompt layout");
    const int64_t H = q.size(2), D = q.size(3), Hkv = k.size(1);
    auto qf = q.reshape({ R * Tc, H, D });
    // [rows, Hkv, S, D] -> [rows * S, Hkv, D] -> the real keys, packed row after row.
    auto gather = [&](const torch::Tensor &t) {
        return t.transpose(1, 2).reshape({ R * S, Hkv, D }).index_select(0, layout.keyIndex);
    };
    const auto kf = gather(k), vf = gather(v);
    torch::Tensor out;
    if (flash)
        out = flashVarlen(qf, kf, vf, layout.cuQ, layout.cuK, Tc, layout.maxK, options);
    if (!out.defined()) {
        if (!g_reference)
            return {};
        std::vector<int64_t> qStarts;
        for (int64_t r = 0; r <= R; ++r)
            qStarts.push_back(r * Tc);
        out = varlenReference(qf, kf, vf, qStarts, layout.keyStarts, options, attend);
        ++g_referenceCalls;
    }
    return out.view({ R, Tc, H, D });
}

} // namespace dpo
