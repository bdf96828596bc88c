// Shared pieces of the dpo-cli benchmarks (bench, bench-dpo): timers, the matmul rate that every
// model figure is compared with, and the ~25M-parameter Llama shape both benchmarks run.
#pragma once

#include "engine/models/model_config.h"
#include "engine/torch_api.h"

#include <algorithm>
#include <chrono>
#include <ctime>

namespace dpocli::bench {

inline void sync(const torch::Device &d)
{
    if (d.is_cuda())
        torch::cuda::synchronize(d.index());
}

inline double seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b)
{
    return std::chrono::duration<double>(b - a).count();
}

// Process CPU time: on a shared machine the wall clock also measures the neighbours.
inline double cpuSeconds()
{
    return double(std::clock()) / CLOCKS_PER_SEC;
}

struct Rate {
    double wall = 0; // GFLOP/s by the clock on the wall
    double cpu = 0; // GFLOP per second of process CPU time (robust to other load on the machine)
};

// Best-of-`reps` GFLOP/s of an n x n x n matmul (2 n^3 FLOPs).
inline Rate matmulGflops(int64_t n, int reps, const torch::Device &device, torch::ScalarType dtype)
{
    torch::NoGradGuard g;
    auto opts = torch::TensorOptions().dtype(dtype).device(device);
    auto a = torch::randn({ n, n }, opts), b = torch::randn({ n, n }, opts), c = torch::empty({ n, n }, opts);
    torch::mm_out(c, a, b); // warm-up
    sync(device);
    double best = 1e30, bestCpu = 1e30;
    for (int i = 0; i < reps; ++i) {
        auto t0 = std::chrono::steady_clock::now();
        const double c0 = cpuSeconds();
        torch::mm_out(c, a, b);
        sync(device);
        best = std::min(best, seconds(t0, std::chrono::steady_clock::now()));
        bestCpu = std::min(bestCpu, cpuSeconds() - c0);
    }
    const double flops = 2.0 * double(n) * n * n;
    return { flops / best / 1e9, flops / std::max(bestCpu, 1e-9) / 1e9 };
}

// The machine's float32 matmul rate: the best of 1024^2 and 2048^2.
struct MatmulRate {
    Rate r1024, r2048;
    double best() const { return std::max(r1024.wall, r2048.wall); }
    double bestCpu() const { return std::max(r1024.cpu, r2048.cpu); }
};

inline MatmulRate measureMatmul(const torch::Device &device)
{
    return { matmulGflops(1024, 10, device, torch::kFloat32), matmulGflops(2048, 5, device, torch::kFloat32) };
}

// ~25.6M parameters: Llama, GQA 8/4, untied head, vocabulary 8000.
inline dpo::ModelConfig benchConfig(int64_t seqLen)
{
    nlohmann::json j = { { "model_type", "llama" }, { "architectures", { "LlamaForCausalLM" } }, { "vocab_size", 8000 },
        { "hidden_size", 512 }, { "intermediate_size", 1376 }, { "num_hidden_layers", 6 }, { "num_attention_heads", 8 },
        { "num_key_value_heads", 4 }, { "max_position_embeddings", std::max<int64_t>(2048, seqLen) },
        { "rms_norm_eps", 1e-5 }, { "rope_theta", 10000.0 }, { "tie_word_embeddings", false } };
    return dpo::ModelConfig::fromJson(j, "bench model");
}

} // namespace dpocli::bench
