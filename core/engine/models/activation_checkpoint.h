// Activation checkpointing per decoder layer (HF's gradient_checkpointing, torch.utils.checkpoint in
// its reentrant form): checkpointed(fn, x) runs fn(x) keeping none of fn's intermediate activations,
// only x. Backward runs fn(x) again with grad on and back-propagates through it: the parameters fn uses
// get their .grad from that inner backward, x gets its gradient. The random state of x's device at
// forward time is restored for the recomputation (LoRA dropout draws the same masks), so gradients
// equal those of the plain graph. Costs one more forward of fn per step. When grad mode is off or x
// needs no gradient, fn(x) is called plainly.
#pragma once

#include "engine/torch_api.h"

#include <functional>

namespace dpo {

torch::Tensor checkpointed(std::function<torch::Tensor(const torch::Tensor &)> fn, const torch::Tensor &x);

} // namespace dpo
