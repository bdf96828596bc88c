// Positions and attention masking shared by every decoder in the engine (LlamaModel, Gpt2Model):
// decided once per forward from the padding mask and the KV-cache length, so both families treat
// right padding, left padding (batched generation) and cached decoding identically.
// Also the two small facts both need: the lowest finite value used for hidden scores, and the
// config's initializer_range. It does not run attention itself.
#pragma once

#include "engine/models/causal_lm.h"
#include "engine/models/model_config.h"

#include "engine/torch_api.h"

#include <vector>

namespace dpo {

struct AttentionMask {
    // Used when defined: [B|1, 1, T, S] in the model dtype, 0 = visible, lowest finite = hidden.
    torch::Tensor additive;
    // Otherwise: true = plain causal attention (no cache, no padding that matters),
    // false = every key is visible (one new token after a cache).
    bool causal = true;
    // Padding-free batches: a [1, N] row packing several sequences, sequence i at positions
    // [segments[i], segments[i+1]); attention stays causal inside each one. Empty for ordinary batches.
    std::vector<int64_t> segments;
    torch::Tensor cuSeqlens; // the same boundaries as int32 on the model's device (the varlen kernel's input)
    int64_t maxSegment = 0; // the longest sequence
    // Sliding layers whose window bites: a query sees the `window` keys ending at its own position
    // (the additive mask says the same for padded rows; packed rows and the varlen kernel use this).
    int64_t window = 0;
};

// Masked scores get the most negative finite value (as HF does), not -inf, so that a query row with
// no visible key gets a uniform softmax instead of NaNs.
double lowestOf(torch::ScalarType t);

// config.json's initializer_range (HF's default 0.02 when absent).
double initializerRange(const ModelConfig &c);

struct MaskAndPositions {
    torch::Tensor positions; // [B, T] int64
    AttentionMask mask;
};

// attentionMask [B, past + T] (1 = real) or undefined. With a padding mask, positions count real
// tokens (cumsum - 1, as HF's generate does), which left padding needs; right padding without a
// cache keeps plain causal attention, which gives the same outputs at real positions.
// `hidden` supplies the dtype/device of the additive mask. Throws dpo::Error for a mis-shaped mask.
MaskAndPositions buildMaskAndPositions(
    const torch::Tensor &attentionMask, int64_t B, int64_t T, int64_t past, const torch::TensorOptions &hidden);

// The mask of a sliding-window layer: the same padding and causality as `full`, and query position
// i sees key position j only when i - j < window. Positions count real tokens (as `full.positions`
// does), so a padded prompt followed by its completion (the shared-prompt forward) windows exactly
// like the unpadded sequence; for right or left padding this equals transformers' index-based
// window. Returns full.mask itself when no query can reach past its window (past + T <= window).
AttentionMask buildSlidingWindowMask(const MaskAndPositions &full, const torch::Tensor &attentionMask, int64_t B,
    int64_t T, int64_t past, int64_t window, const torch::TensorOptions &hidden);

// A packed row's positions (restarting at 0 at each sequence start) and its mask: `starts` holds the
// sequence boundaries, 0 first and the row's length N last. Throws dpo::Error for bad boundaries.
MaskAndPositions buildPackedMaskAndPositions(const std::vector<int64_t> &starts, const torch::TensorOptions &hidden);

// Sizes an empty cache to `layers`; a non-empty cache of another depth is an error.
void prepareCache(KVCache *cache, size_t layers);

} // namespace dpo
