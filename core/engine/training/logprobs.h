// Completion log-probabilities: for each row of a right-padded batch, the sum (and count) of
// log p(token) over the tokens marked as completion, from ONE forward pass of the model. This is
// the quantity DPO compares; prompt and padding tokens are masked out.
#pragma once

#include "engine/models/causal_lm.h"

#include "engine/torch_api.h"

namespace dpo {

struct CompletionLogps {
    torch::Tensor sum; // [N] float32: summed log-probs of completion tokens
    torch::Tensor count; // [N] float32: number of completion tokens
    torch::Tensor mean() const { return sum / count.clamp_min(1); }
};

// inputIds [N, T] int64, attentionMask [N, T] (1 = real token), completionMask [N, T]
// (1 where the token at that position is a completion token to be scored; position 0 never is).
// Token t is scored with the logits at t-1. Log-softmax runs in float32 whatever the model dtype,
// in chunks of rows so the [N, T, V] float32 tensor never exists at once for large vocabularies.
// Differentiable: gradients flow into the model when grad mode is on.
CompletionLogps completionLogps(CausalLM &model, const torch::Tensor &inputIds, const torch::Tensor &attentionMask,
    const torch::Tensor &completionMask);

// A DPO batch whose chosen and rejected sequences of each pair start with the same prompt, laid out so
// the prompt is computed once per pair (see collateSharedPrompt in preference_data.h).
struct SharedPromptBatch {
    torch::Tensor promptIds; // [B, Tp] int64, right-padded
    torch::Tensor promptMask; // [B, Tp] 1 = real prompt token (every prompt has at least one)
    torch::Tensor promptLast; // [B] int64: index of each prompt's last real token
    torch::Tensor completionIds; // [2B, Tc] int64: chosen completions, then rejected ones; right-padded
    torch::Tensor completionMask; // [2B, Tc] 1 = real completion token (each one is scored)
    int64_t numPairs = 0;
    int64_t numTokens = 0; // real tokens of the 2B full sequences (as collatePairs counts them)
};

// The same sums and counts as completionLogps on the concatenated [2B, Tp + Tc] batch (equal up to
// float rounding), from the prompt's forward pass once per pair: its keys and values are cached and
// shared by both completions, which attend to them at the positions they would have had, and autograd
// adds both completions' gradients into the shared prompt. Saves the compute of B prompt copies, half
// of all prompt tokens. Rows: chosen 0..B-1, rejected B..2B-1.
CompletionLogps sharedPromptLogps(CausalLM &model, const SharedPromptBatch &batch);

} // namespace dpo
