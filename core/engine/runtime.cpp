#include "engine/runtime.h"

#include "engine/cpu_block_cache.h"
#include "engine/error.h"
#include "engine/torch_api.h"

#include <dlfcn.h>

#include <cstdlib>
#include <thread>

namespace dpo {

namespace {
// Idle large blocks kept for reuse (cpu_block_cache.h); DPO_CPU_CACHE_MB overrides.
constexpr int64_t kDefaultCpuCacheBytes = int64_t(256) << 20;
} // namespace

void initRuntime(int threads)
{
    if (threads <= 0) {
        // All cores, shared between the ranks of a distributed run on this machine; OMP_NUM_THREADS
        // (which torchrun and `dpo-cli train --nproc` set) wins.
        threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
        if (const char *local = std::getenv("LOCAL_WORLD_SIZE"); local && std::atoi(local) > 1)
            threads = std::max(1, threads / std::atoi(local));
        if (const char *omp = std::getenv("OMP_NUM_THREADS"); omp && std::atoi(omp) > 0)
            threads = std::atoi(omp);
    }
    at::set_num_threads(threads);
    // Large CPU blocks are kept for the next step instead of being page-faulted in again each time.
    installCpuBlockCache(kDefaultCpuCacheBytes);
}

torch::Device parseDevice(const std::string &name)
{
    if (name.empty() || name == "auto")
        return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
    if (name == "cpu")
        return torch::Device(torch::kCPU);
    if (name.rfind("cuda", 0) == 0) {
        if (!torch::cuda::is_available())
            throw Error("device '" + name + "': CUDA is not available in this build or on this machine");
        try {
            return torch::Device(name);
        } catch (const std::exception &) {
            throw Error("device '" + name + "' is not a valid device name (use cpu, cuda or cuda:N)");
        }
    }
    throw Error("device '" + name + "' is not a valid device name (use cpu, cuda, cuda:N or auto)");
}

torch::ScalarType parseDtype(const std::string &name)
{
    if (name == "float32" || name == "fp32" || name == "float")
        return torch::kFloat32;
    if (name == "bfloat16" || name == "bf16")
        return torch::kBFloat16;
    if (name == "float16" || name == "fp16" || name == "half")
        return torch::kFloat16;
    throw Error("dtype '" + name + "' is not supported (use float32, bfloat16 or float16)");
}

torch::ScalarType resolveDtype(const std::string &name, const torch::Device &device)
{
    if (name != "auto")
        return parseDtype(name);
    if (!device.is_cuda())
        return torch::kFloat32;
    try {
        const auto x = torch::ones({ 8, 8 }, torch::TensorOptions().dtype(torch::kBFloat16).device(device));
        const bool ok = x.matmul(x).to(torch::kFloat32).sum().item<float>() == 512.0f;
        return ok ? torch::kBFloat16 : torch::kFloat32;
    } catch (const std::exception &) {
        return torch::kFloat32;
    }
}

void setAllowTf32(bool allow)
{
    at::globalContext().setAllowTF32CuBLAS(allow);
    at::globalContext().setAllowTF32CuDNN(allow);
}

bool cudaMemoryInUse(int64_t *used, int64_t *total)
{
    using MemGetInfo = int (*)(size_t *, size_t *);
    // The CUDA runtime is already loaded by a CUDA libtorch (a dependency of libc10_cuda); a CPU build
    // has none and this returns false without touching anything.
    static const MemGetInfo fn = reinterpret_cast<MemGetInfo>(dlsym(RTLD_DEFAULT, "cudaMemGetInfo"));
    if (!fn)
        return false;
    size_t freeBytes = 0, totalBytes = 0;
    if (fn(&freeBytes, &totalBytes) != 0)
        return false;
    if (used)
        *used = int64_t(totalBytes - freeBytes);
    if (total)
        *total = int64_t(totalBytes);
    return true;
}

std::string dtypeName(torch::ScalarType t)
{
    switch (t) {
    case torch::kFloat32:
        return "float32";
    case torch::kBFloat16:
        return "bfloat16";
    case torch::kFloat16:
        return "float16";
    default:
        return c10::toString(t);
    }
}

} // namespace dpo
