#include "engine/logprobs.h"

#include "engine/error.h"

#include <algorithm>

namespace dpo {

namespace {

// Rows of logits materialised at once: [rows, V] float32 stays under ~128 MiB, whatever the
// vocabulary (32k vocab -> 1024 rows, 152k -> 220).
constexpr int64_t kLogitElementBudget = int64_t(32) << 20;

} // namespace

CompletionLogps completionLogps(CausalLM &model, const torch::Tensor &inputIds, const torch::Tensor &attentionMask,
    const torch::Tensor &completionMask)
{
    if (inputIds.dim() != 2)
        throw Error("completionLogps: input ids must be [N, T], got " + c10::str(inputIds.sizes()));
    if (completionMask.sizes() != inputIds.sizes()
        || (attentionMask.defined() && attentionMask.sizes() != inputIds.sizes()))
        throw Error("completionLogps: input ids, attention mask and completion mask must have the same shape");
    const int64_t N = inputIds.size(0), T = inputIds.size(1);
    const auto device = inputIds.device();
    const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(device);

    // One forward pass for every row: [N, T, hidden].
    auto hidden = model.forwardHidden(inputIds, attentionMask);
    const int64_t Hd = hidden.size(-1);

    CompletionLogps out;
    out.sum = torch::zeros({ N }, f32);
    out.count = torch::zeros({ N }, f32);
    if (T < 2)
        return out;

    // Token t is scored by the logits at t-1. Only the scored positions go through the lm_head:
    // prompt and padding rows never cost a [V]-wide matmul or log-softmax.
    auto scored = completionMask.to(device).slice(1, 1).to(torch::kBool).reshape({ -1 }); // [N*(T-1)]
    auto flatIdx = scored.nonzero().squeeze(1); // [M]
    const int64_t M = flatIdx.size(0);
    out.count = completionMask.to(device).slice(1, 1).to(torch::kBool).sum(1).to(torch::kFloat32);
    if (M == 0)
        return out;
    auto rowOf = torch::div(flatIdx, T - 1, "floor"); // [M]
    auto targets = inputIds.slice(1, 1).reshape({ -1 }).index_select(0, flatIdx); // [M]
    auto h = hidden.slice(1, 0, T - 1).reshape({ -1, Hd }).index_select(0, flatIdx); // [M, hidden]

    const int64_t V = model.config().vocabSize;
    const int64_t chunk = std::max<int64_t>(1, kLogitElementBudget / std::max<int64_t>(1, V));
    std::vector<torch::Tensor> parts;
    for (int64_t start = 0; start < M; start += chunk) {
        const int64_t end = std::min(M, start + chunk);
        auto logits = model.lmHead(h.slice(0, start, end)); // [m, V] model dtype
        auto logp = torch::log_softmax(logits, -1, torch::kFloat32); // [m, V] float32
        parts.push_back(logp.gather(1, targets.slice(0, start, end).unsqueeze(1)).squeeze(1)); // [m]
    }
    auto tokenLogps = parts.size() == 1 ? parts[0] : torch::cat(parts); // [M]
    out.sum = out.sum.index_add(0, rowOf, tokenLogps);
    return out;
}

} // namespace dpo
