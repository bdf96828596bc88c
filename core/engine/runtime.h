// Process-wide libtorch settings the engine relies on: intra-op threads = core count (libtorch's
// Debian default is 1), and helpers to parse device / dtype names given by users.
#pragma once

// Only the two small c10 value types: GUI and CLI files that parse a device name need no libtorch headers.
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <string>

namespace dpo {

// Sets libtorch's intra-op thread count (0 = all cores). Safe to call more than once.
void initRuntime(int threads = 0);

// "cpu", "cuda", "cuda:1", "auto" (CUDA when available). Throws dpo::Error naming the value.
c10::Device parseDevice(const std::string &name);
// "float32", "bfloat16", "float16" (also "fp32", "bf16", "fp16"). Throws dpo::Error.
c10::ScalarType parseDtype(const std::string &name);
std::string dtypeName(c10::ScalarType t);

} // namespace dpo
