#include "engine/training/logprobs.h"

#include "engine/error.h"

#include <algorithm>

namespace dpo {

namespace {

// Rows of logits materialised at once: [rows, V] float32 stays under ~128 MiB, whatever the
// vocabulary (32k vocab -> 1024 rows, 152k -> 220).
constexpr int64_t kLogitElementBudget = int64_t(32) << 20;

// Sums log p(target) per row over the flagged positions. hidden [N*W, H] are the predictor states,
// targets [N*W] the tokens they predict, flags [N*W] bool; row of position i is i / W.
torch::Tensor scoreTokens(CausalLM &model, const torch::Tensor &hidden, const torch::Tensor &targets,
    const torch::Tensor &flags, int64_t W, int64_t N)
{
    const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(hidden.device());
    auto sum = torch::zeros({ N }, f32);
    auto flatIdx = flags.nonzero().squeeze(1); // [M]
    const int64_t M = flatIdx.size(0);
    if (M == 0)
        return sum;
    auto rowOf = torch::div(flatIdx, W, "floor"); // [M]
    auto tgt = targets.index_select(0, flatIdx); // [M]
    auto h = hidden.index_select(0, flatIdx); // [M, H]
    const int64_t V = model.config().vocabSize;
    const int64_t chunk = std::max<int64_t>(1, kLogitElementBudget / std::max<int64_t>(1, V));
    std::vector<torch::Tensor> parts;
    for (int64_t start = 0; start < M; start += chunk) {
        const int64_t end = std::min(M, start + chunk);
        auto logits = model.lmHead(h.slice(0, start, end)); // [m, V] model dtype
        auto logp = torch::log_softmax(logits, -1, torch::kFloat32); // [m, V] float32
        parts.push_back(logp.gather(1, tgt.slice(0, start, end).unsqueeze(1)).squeeze(1)); // [m]
    }
    auto tokenLogps = parts.size() == 1 ? parts[0] : torch::cat(parts); // [M]
    return sum.index_add(0, rowOf, tokenLogps);
}

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
    out.count = completionMask.to(device).slice(1, 1).to(torch::kBool).sum(1).to(torch::kFloat32);
    out.sum = scoreTokens(
        model, hidden.slice(1, 0, T - 1).reshape({ -1, Hd }), inputIds.slice(1, 1).reshape({ -1 }), scored, T - 1, N);
    return out;
}

CompletionLogps sharedPromptLogps(CausalLM &model, const SharedPromptBatch &batch)
{
    const int64_t B = batch.numPairs;
    const int64_t Tc = batch.completionIds.size(1);
    const auto device = batch.completionIds.device();
    if (batch.promptIds.size(0) != B || batch.completionIds.size(0) != 2 * B)
        throw Error("sharedPromptLogps: expected " + std::to_string(B) + " prompts and " + std::to_string(2 * B)
            + " completions");

    // 1. Each prompt once: [B, Tp, hidden], its keys/values cached per layer.
    KVCache cache;
    auto promptHidden = model.forwardHidden(batch.promptIds, batch.promptMask, &cache);
    const int64_t Hd = promptHidden.size(-1);
    // 2. Both completions of a pair see the same prompt keys/values: [B, ...] -> [2B, ...].
    for (size_t l = 0; l < cache.keys.size(); ++l) {
        cache.keys[l] = torch::cat({ cache.keys[l], cache.keys[l] }, 0);
        cache.values[l] = torch::cat({ cache.values[l], cache.values[l] }, 0);
    }
    auto promptMask2 = torch::cat({ batch.promptMask, batch.promptMask }, 0).to(device);
    auto fullMask = torch::cat({ promptMask2, batch.completionMask.to(device) }, 1); // [2B, Tp + Tc]
    // Positions continue from each prompt's real length (the mask's cumsum skips prompt padding).
    auto completionHidden = model.forwardHidden(batch.completionIds, fullMask, &cache); // [2B, Tc, hidden]

    // 3. Completion token j is predicted by the hidden state before it: the prompt's last real token
    // for j = 0, completion token j-1 after that.
    auto last = promptHidden.gather(1, batch.promptLast.to(device).view({ B, 1, 1 }).expand({ B, 1, Hd })); // [B, 1, H]
    auto predictors
        = torch::cat({ torch::cat({ last, last }, 0), completionHidden.slice(1, 0, Tc - 1) }, 1); // [2B, Tc, H]

    CompletionLogps out;
    auto scored = batch.completionMask.to(device).to(torch::kBool);
    out.count = scored.sum(1).to(torch::kFloat32);
    out.sum = scoreTokens(
        model, predictors.reshape({ -1, Hd }), batch.completionIds.reshape({ -1 }), scored.reshape({ -1 }), Tc, 2 * B);
    return out;
}

} // namespace dpo
