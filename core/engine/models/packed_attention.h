// Attention over sequences laid end to end instead of padded, in two layouts:
//  - a padding-free batch: several sequences packed into one [1, N] row (collatePacked), each
//    attending only to itself: causal, and within the sliding window on layers that have one;
//  - completions after a shared prompt cache (sharedPromptLogps): row r's completion queries see its
//    prompt's real keys (the cache is right-padded) and the completion's own keys causally, aligned
//    bottom-right: [prompt; completion] keys, no mask.
// Projections, norms and RoPE are per token and run on whole rows in the model; this is the one step
// that sees the sequence boundaries.
// On CUDA in bfloat16/float16 each layout is one flash-attention varlen call (libtorch's own kernel,
// the one nested-tensor SDPA uses) when the build has it (flashVarlenBuilt(): libtorch >= 2.5, found
// by cmake/DpoTorchFeatures.cmake). Otherwise, and for attention that kernel cannot express
// (soft-capped scores, float32, head dims it does not take): a packed row runs the model's ordinary
// attention per sequence, and completions keep the padded layout with its mask.
#pragma once

#include "engine/models/attention_mask.h"

#include "engine/torch_api.h"

#include <functional>
#include <memory>
#include <vector>

namespace dpo {

// The model's attention for one sequence: q [1, H, Tq, D], k/v [1, Hkv, Tk, D], its mask -> [1, H, Tq, D].
using SequenceAttention = std::function<torch::Tensor(
    const torch::Tensor &q, const torch::Tensor &k, const torch::Tensor &v, const AttentionMask &mask)>;

struct PackedAttentionOptions {
    double scale = 0; // scores multiplier
    bool plainSoftmax = true; // false: scores are transformed (Gemma 2's soft-cap), no fused kernel
    int64_t window = 0; // sliding layers: a query sees the `window` keys ending at its own position
};

// The attention step of a decoder layer, given q [B, T, H, D] and k/v [B, T, Hkv, D] as projected
// (token-major): a packed row per sequence (attendPacked); otherwise k/v appended to `cache` when
// given, completions after a shared prompt through the varlen kernel when it applies
// (attendAfterPrefix), else `attend` over [B, heads, T, D] with `mask`. -> [B, T, H, D].
torch::Tensor attendTokens(const torch::Tensor &q, torch::Tensor k, torch::Tensor v, const AttentionMask &mask,
    KVCache *cache, size_t layer, PackedAttentionOptions options, const SequenceAttention &attend);

// q [1, N, H, D], k/v [1, N, Hkv, D] (token-major, as projected), `packed` from
// buildPackedMaskAndPositions -> [1, N, H, D]. options.window is taken from packed.window.
torch::Tensor attendPacked(const torch::Tensor &q, const torch::Tensor &k, const torch::Tensor &v,
    const AttentionMask &packed, const PackedAttentionOptions &options, const SequenceAttention &attend);

// Which keys of a [rows, Hkv, Tp + Tc, D] cache-plus-completion tensor are real, packed per row:
// the row's first promptLength keys, then all Tc completion keys (padded completion positions come
// after every real one, so causality hides them from real queries).
struct PrefixLayout {
    int64_t rows = 0, promptWidth = 0, completionWidth = 0; // rows, Tp, Tc
    std::vector<int64_t> keyStarts; // [rows + 1]: row r's keys in the packed order
    torch::Tensor keyIndex; // int64 [keys]: their rows in the flattened [rows * (Tp + Tc)] keys
    torch::Tensor cuQ, cuK; // int32 [rows + 1] on the device: the kernel's boundaries
    int64_t maxK = 0;
};

// Whether attendAfterPrefix can use a layout on `device` (the kernel is built and it is CUDA, or the
// tests' reference is on): elsewhere building one is wasted work.
bool prefixLayoutUsable(torch::Device device);

// promptLengths[r]: real prompt tokens of row r (1..Tp).
std::shared_ptr<const PrefixLayout> buildPrefixLayout(
    const std::vector<int64_t> &promptLengths, int64_t promptWidth, int64_t completionWidth, torch::Device device);

// q [rows, Tc, H, D] (token-major), k/v [rows, Hkv, Tp + Tc, D] (cache + new) -> [rows, Tc, H, D]; or
// undefined when the kernel does not apply (the caller attends with its mask instead).
torch::Tensor attendAfterPrefix(const torch::Tensor &q, const torch::Tensor &k, const torch::Tensor &v,
    const PrefixLayout &layout, const PackedAttentionOptions &options, const SequenceAttention &attend);

// Whether this build calls the flash varlen kernel, and how many attentions went to it in this
// process (the CUDA tests check that the kernel, not a fallback, ran).
bool flashVarlenBuilt();
int64_t flashVarlenCalls();

// Tests only: run the shared-prompt layout through the per-sequence reference of what the kernel
// computes wherever the kernel does not apply (so its boundaries, key gathering and bottom-right
// alignment are checked on any device), and count those runs.
void setVarlenReferenceForTests(bool on);
int64_t varlenReferenceCalls();

} // namespace dpo
