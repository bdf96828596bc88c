#include "engine/models/packed_attention.h"

#include "engine/error.h"

#include <atomic>
#include <iostream>

#ifdef DPO_HAVE_FLASH_VARLEN
#include "engine/models/flash_varlen_ops.h"

#include <torch/csrc/autograd/custom_function.h>
#endif

namespace dpo {

namespace {

std::atomic<int64_t> g_flashCalls { 0 };

#ifdef DPO_HAVE_FLASH_VARLEN
// The varlen kernel as an autograd function: its backward is the kernel's own backward (which
// recomputes the attention probabilities from the saved log-sum-exp), so nothing [len, len] is kept.
struct FlashVarlen : torch::autograd::Function<FlashVarlen> {
    static torch::Tensor forward(torch::autograd::AutogradContext *ctx, const torch::Tensor &q, const torch::Tensor &k,
        const torch::Tensor &v, const torch::Tensor &cu, int64_t maxLen, double scale, int64_t windowLeft)
    {
        auto [out, lse, rng, unused, debug] = flash_ops::forward(q, k, v, cu, cu, maxLen, maxLen, scale, windowLeft);
        ctx->save_for_backward({ q, k, v, out, lse, cu, rng, unused });
        ctx->saved_data["max"] = maxLen;
        ctx->saved_data["scale"] = scale;
        ctx->saved_data["window"] = windowLeft;
        return out;
    }

    static torch::autograd::variable_list backward(
        torch::autograd::AutogradContext *ctx, torch::autograd::variable_list grads)
    {
        const auto s = ctx->get_saved_variables();
        const int64_t maxLen = ctx->saved_data["max"].toInt();
        auto [dq, dk, dv] = flash_ops::backward(grads[0].contiguous(), s[0], s[1], s[2], s[3], s[4], s[5], s[5], maxLen,
            maxLen, s[6], s[7], ctx->saved_data["scale"].toDouble(), ctx->saved_data["window"].toInt());
        return { dq, dk, dv, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor() };
    }
};

// Cleared the first time the kernel refuses its input (a GPU older than sm80, for one): the process
// then attends per sequence, having said why once.
std::atomic<bool> g_flashUsable { true };

bool flashTakes(const torch::Tensor &q, const PackedAttentionOptions &o)
{
    const auto t = q.scalar_type();
    const int64_t d = q.size(-1);
    return g_flashUsable && o.plainSoftmax && q.is_cuda() && (t == torch::kBFloat16 || t == torch::kFloat16)
        && d % 8 == 0 && d <= 256;
}
#endif

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

torch::Tensor attendPacked(const torch::Tensor &q, const torch::Tensor &k, const torch::Tensor &v,
    const AttentionMask &packed, const PackedAttentionOptions &options, const SequenceAttention &attend)
{
    const auto &seg = packed.segments;
    if (seg.size() < 2 || seg.back() != q.size(1))
        throw Error("packed batch: the sequence boundaries end at " + std::to_string(seg.empty() ? 0 : seg.back())
            + ", the row has " + std::to_string(q.size(1)) + " tokens");
#ifdef DPO_HAVE_FLASH_VARLEN
    if (flashTakes(q, options) && packed.cuSeqlens.defined()) {
        try {
            // [1, N, heads, D] -> [N, heads, D]: the kernel's layout, last dim contiguous.
            auto out = FlashVarlen::apply(q[0].contiguous(), k[0].contiguous(), v[0].contiguous(), packed.cuSeqlens,
                packed.maxSegment, options.scale, packed.window > 0 ? packed.window - 1 : int64_t(-1));
            ++g_flashCalls;
            return out.unsqueeze(0);
        } catch (const c10::Error &e) {
            g_flashUsable = false;
            std::cerr << "dpo: flash-attention varlen kernel unavailable, attending per sequence: "
                      << e.what_without_backtrace() << "\n";
        }
    }
#endif
    std::vector<torch::Tensor> outs;
    outs.reserve(seg.size() - 1);
    const auto longOpts = q.options().dtype(torch::kInt64);
    for (size_t i = 0; i + 1 < seg.size(); ++i) {
        const int64_t start = seg[i], len = seg[i + 1] - seg[i];
        // Causal inside the sequence, exactly as for the sequence alone (libtorch 1.x spells it out).
        AttentionMask m = buildMaskAndPositions({}, 1, len, 0, q.options()).mask;
        if (packed.window > 0 && len > packed.window) {
            // Query i sees key j when j <= i and i − j < window.
            auto qi = torch::arange(len, longOpts).unsqueeze(1);
            auto kj = torch::arange(len, longOpts).unsqueeze(0);
            const auto hidden = (kj > qi).logical_or(qi - kj >= packed.window);
            m.additive = torch::zeros({ 1, 1, len, len }, q.options())
                             .masked_fill_(hidden.view({ 1, 1, len, len }), lowestOf(q.scalar_type()));
            m.causal = false;
        }
        auto slice = [&](const torch::Tensor &t) { return t.narrow(1, start, len).transpose(1, 2); };
        outs.push_back(attend(slice(q), slice(k), slice(v), m).transpose(1, 2)); // [1, len, H, D]
    }
    return outs.size() == 1 ? outs[0] : torch::cat(outs, 1);
}

} // namespace dpo
