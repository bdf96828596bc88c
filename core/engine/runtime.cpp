#include "engine/runtime.h"

#include "engine/error.h"
#include "engine/torch_api.h"

#include <thread>

namespace dpo {

void initRuntime(int threads)
{
    if (threads <= 0)
        threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    at::set_num_threads(threads);
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
