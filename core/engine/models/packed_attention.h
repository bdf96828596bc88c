// Attention over a padding-free batch: several sequences packed into one [1, N] row
// (collatePacked), each attending only to itself: causal, and within the sliding window on layers
// that have one. Projections, norms and RoPE are per token and run on the whole row in the model;
// this is the one step that sees the sequence boundaries.
// On CUDA in bfloat16/float16 it is one flash-attention varlen call (libtorch's own kernel, the one
// nested-tensor SDPA uses) when the build has it (flashVarlenBuilt(): libtorch >= 2.5, found by
// cmake/DpoTorchFeatures.cmake); otherwise, and for attention that kernel cannot express (soft-capped
// scores, float32, head dims it does not take), each sequence runs the model's ordinary attention.
#pragma once

#include "engine/models/attention_mask.h"

#include "engine/torch_api.h"

#include <functional>

namespace dpo {

// The model's attention for one sequence: q [1, H, len, D], k/v [1, Hkv, len, D], the sequence's
// mask (causal, or causal within the window) -> [1, H, len, D].
using SequenceAttention = std::function<torch::Tensor(
    const torch::Tensor &q, const torch::Tensor &k, const torch::Tensor &v, const AttentionMask &mask)>;

struct PackedAttentionOptions {
    double scale = 0; // scores multiplier
    bool plainSoftmax = true; // false: scores are transformed (Gemma 2's soft-cap), no fused kernel
};

// q [1, N, H, D], k/v [1, N, Hkv, D] (token-major, as projected), `packed` from
// buildPackedMaskAndPositions (window set for sliding layers) -> [1, N, H, D].
torch::Tensor attendPacked(const torch::Tensor &q, const torch::Tensor &k, const torch::Tensor &v,
    const AttentionMask &packed, const PackedAttentionOptions &options, const SequenceAttention &attend);

// Whether this build calls the flash varlen kernel, and how many packed attentions went to it in this
// process (the CUDA tests check that the kernel, not the per-sequence loop, ran).
bool flashVarlenBuilt();
int64_t flashVarlenCalls();

} // namespace dpo
