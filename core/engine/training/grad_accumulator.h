// GradAccumulator: the gradients of one optimizer step, summed over its micro-batches. float32
// parameters accumulate in their .grad as autograd does. For bfloat16/float16 parameters each
// micro-batch's gradient is moved into a float32 sum and the low-precision .grad is cleared, so 8 bits
// of mantissa do not round away the later micro-batches' contributions (with bf16, 1 + 3·2^-9 summed in
// .grad stays 1). The step then clips, averages across ranks and applies these float32 sums.
#pragma once

#include "engine/torch_api.h"

#include <vector>

namespace dpo {

class GradAccumulator {
public:
    GradAccumulator() = default;
    explicit GradAccumulator(std::vector<torch::Tensor> params);

    // After each micro-batch's backward. onlyContribution: this micro-batch is the step's only one
    // (and no other rank adds to it): its low-precision .grad stays where it is, with nothing to sum
    // (a float32 copy would be 4 more bytes per parameter for the same numbers).
    void collect(bool onlyContribution = false);
    // One tensor per parameter, in order: its .grad (float32 parameters, or an only contribution) or
    // the float32 sum; undefined when no micro-batch produced a gradient for it.
    std::vector<torch::Tensor> gradients() const;
    // Before the next step's micro-batches (the parameters' .grad are cleared by the optimizer).
    void clear();

private:
    std::vector<torch::Tensor> m_params;
    std::vector<torch::Tensor> m_sums; // float32; undefined for float32 parameters
};

} // namespace dpo
