// Completion log-probabilities: for each row of a right-padded batch, the sum (and count) of
// log p(token) over the tokens marked as completion, from ONE forward pass of the model. This is
// the quantity DPO compares; prompt and padding tokens are masked out.
#pragma once

#include "engine/causal_lm.h"

#include <torch/torch.h>

namespace dpo {

struct CompletionLogps {
    torch::Tensor sum;   // [N] float32: summed log-probs of completion tokens
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

} // namespace dpo
