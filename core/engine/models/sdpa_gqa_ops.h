// SDPA with grouped-query attention done by the kernel (`enable_gqa`, libtorch >= 2.5): K/V keep their
// Hkv heads instead of being repeated to H per layer (a copy the size of K and V, kept for backward in
// training and made per decoded token in generation). CMake compiles this header alone against the
// libtorch at hand (cmake/DpoTorchFeatures.cmake) and defines DPO_HAVE_SDPA_GQA only when it compiles.
#pragma once

#include <ATen/ATen.h>

namespace dpo::sdpa_gqa_ops {

// q [B, H, T, D], k/v [B, Hkv, S, D] with H a multiple of Hkv; no mask.
inline at::Tensor attend(const at::Tensor &q, const at::Tensor &k, const at::Tensor &v, double scale, bool causal)
{
    return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/ {}, 0.0, causal, scale, /*enable_gqa=*/true);
}

} // namespace dpo::sdpa_gqa_ops
