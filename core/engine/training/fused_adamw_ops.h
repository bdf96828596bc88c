// torch.optim.AdamW(fused=True)'s kernel (ATen's private `_fused_adamw_`, libtorch >= 2.0 on CUDA,
// >= 2.4 on CPU) with the argument forms used here. CMake compiles this header alone against the
// libtorch at hand (cmake/DpoTorchFeatures.cmake) and defines DPO_HAVE_FUSED_ADAMW only when it
// compiles; adamw.cpp includes it only then.
#pragma once

#include <ATen/ATen.h>

#include <vector>

namespace dpo::fused_adamw_ops {

// One in-place update of `params` (and their moments) from `grads`, every list the same length, dtype
// and device. `steps`: the step count after this step, one float32 scalar tensor per parameter on its
// device (the kernel reads them). The gradients are divided by `gradScale` (undefined: not at all) in
// the kernel (GradScaler's unscale); they are written back divided.
inline void step(const std::vector<at::Tensor> &params, const std::vector<at::Tensor> &grads,
    const std::vector<at::Tensor> &expAvgs, const std::vector<at::Tensor> &expAvgSqs,
    const std::vector<at::Tensor> &steps, double lr, double beta1, double beta2, double weightDecay, double eps,
    const at::Tensor &gradScale)
{
    // An undefined tensor must arrive as no value: an optional holding it would be read by the kernel.
    const c10::optional<at::Tensor> scale = gradScale.defined() ? c10::optional<at::Tensor>(gradScale) : c10::nullopt;
    at::_fused_adamw_(params, grads, expAvgs, expAvgSqs, /*max_exp_avg_sqs=*/ {}, steps, lr, beta1, beta2, weightDecay,
        eps, /*amsgrad=*/false, /*maximize=*/false, scale, /*found_inf=*/c10::nullopt);
}

} // namespace dpo::fused_adamw_ops
