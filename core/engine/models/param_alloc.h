// Where and how the model classes allocate their parameters. createCausalLM sets a ParamAllocScope for
// the duration of a model's construction; the building blocks (Linear, Embedding, norms) allocate with
// paramOptions() and the model constructors draw the random init only when paramInitEnabled().
// loadCausalLM builds with the target device and dtype and no init: weights then go from the
// safetensors mapping straight into their final tensors, without a float32 copy on the host first or a
// normal_() over every weight that the checkpoint overwrites anyway.
// A thread-local setting, so models built on other threads meanwhile are not affected.
#pragma once

#include "engine/torch_api.h"

namespace dpo {

torch::TensorOptions paramOptions(); // default: float32 on the CPU
bool paramInitEnabled(); // default: true

class ParamAllocScope {
public:
    ParamAllocScope(torch::TensorOptions options, bool initialize);
    ~ParamAllocScope();
    ParamAllocScope(const ParamAllocScope &) = delete;
    ParamAllocScope &operator=(const ParamAllocScope &) = delete;

private:
    torch::TensorOptions m_previousOptions;
    bool m_previousInit;
};

} // namespace dpo
