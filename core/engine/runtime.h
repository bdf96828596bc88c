// Process-wide libtorch settings the engine relies on: intra-op threads = core count (libtorch's
// Debian default is 1), and helpers to parse device / dtype names given by users.
#pragma once

// Only the two small c10 value types: GUI and CLI files that parse a device name need no libtorch headers.
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <string>

namespace dpo {

// Sets libtorch's intra-op thread count (0 = all cores) and installs the CPU block cache
// (cpu_block_cache.h). Safe to call more than once.
void initRuntime(int threads = 0);

// "cpu", "cuda", "cuda:1", "auto" (CUDA when available). Throws dpo::Error naming the value.
c10::Device parseDevice(const std::string &name);
// "float32", "bfloat16", "float16" (also "fp32", "bf16", "fp16"). Throws dpo::Error.
c10::ScalarType parseDtype(const std::string &name);
std::string dtypeName(c10::ScalarType t);
// parseDtype, and "auto": bfloat16 on a CUDA device that computes a bfloat16 matmul (what
// torch.cuda.is_bf16_supported() reports, emulation included), else float32.
c10::ScalarType resolveDtype(const std::string &name, const c10::Device &device);
// float32 matmuls on CUDA use TF32 tensor cores when allowed (torch.backends.cuda.matmul.allow_tf32 and
// cudnn.allow_tf32; torch's "high" float32 matmul precision). No effect on the CPU.
void setAllowTf32(bool allow);
// Memory in use on the current CUDA device (total - free, as nvidia-smi counts it: the CUDA context and
// everything the caching allocator holds), found at run time in the CUDA runtime a CUDA libtorch loads:
// no link-time CUDA dependency, false on CPU-only builds.
bool cudaMemoryInUse(int64_t *used, int64_t *total);

} // namespace dpo
