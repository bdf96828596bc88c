// The two private ATen ops behind flash-attention over packed variable-length sequences (the
// kernels nested-tensor SDPA runs on CUDA), called with the argument forms of libtorch 2.5 and later.
// Nothing else includes ATen's private ops: CMake compiles this header alone against the libtorch at
// hand (cmake/DpoTorchFeatures.cmake) and defines DPO_HAVE_FLASH_VARLEN only when it compiles, so a
// libtorch whose signatures moved builds without the kernel instead of failing.
#pragma once

#include <ATen/ATen.h>

#include <tuple>

namespace dpo::flash_ops {

// q [Nq, H, D], k/v [Nk, Hkv, D]; cuQ/cuK int32 [n + 1] on the device. Causal with seqlen_q < seqlen_k
// is aligned bottom-right by these kernels. windowLeft < 0: no window.
// Returns (out [Nq, H, D], logsumexp, rng state, unused, debug mask).
inline std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> forward(const at::Tensor &q,
    const at::Tensor &k, const at::Tensor &v, const at::Tensor &cuQ, const at::Tensor &cuK, int64_t maxQ, int64_t maxK,
    double scale, int64_t windowLeft)
{
    if (windowLeft < 0)
        return at::_flash_attention_forward(q, k, v, cuQ, cuK, maxQ, maxK, 0.0, /*is_causal=*/true,
            /*return_debug_mask=*/false, scale);
    return at::_flash_attention_forward(q, k, v, cuQ, cuK, maxQ, maxK, 0.0, true, false, scale, windowLeft, int64_t(0));
}

// Gradients of q, k, v (k and v with Hkv heads: the kernel sums each group's query heads).
inline std::tuple<at::Tensor, at::Tensor, at::Tensor> backward(const at::Tensor &gradOut, const at::Tensor &q,
    const at::Tensor &k, const at::Tensor &v, const at::Tensor &out, const at::Tensor &logsumexp, const at::Tensor &cuQ,
    const at::Tensor &cuK, int64_t maxQ, int64_t maxK, const at::Tensor &rngState, const at::Tensor &unused,
    double scale, int64_t windowLeft)
{
    if (windowLeft < 0)
        return at::_flash_attention_backward(
            gradOut, q, k, v, out, logsumexp, cuQ, cuK, maxQ, maxK, 0.0, true, rngState, unused, scale);
    return at::_flash_attention_backward(gradOut, q, k, v, out, logsumexp, cuQ, cuK, maxQ, maxK, 0.0, true, rngState,
        unused, scale, windowLeft, int64_t(0));
}

} // namespace dpo::flash_ops
