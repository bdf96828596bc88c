// dpo-cli bench [--threads N] [--seq-len 256] [--batch 8] [--steps 5] [--device cpu|cuda|auto]
//   [--dtype float32|bfloat16]
// Measures, in one run: the machine's matmul rate (1024^2 and 2048^2, best of several), then one
// forward+backward completion-log-prob pass (what a DPO step does per model) of a ~25M-parameter
// Llama-shaped random model, as tokens/s and achieved GFLOP/s, and the ratio of the two rates.
// Prints one JSON line on stdout and a human summary on stderr. It is a measurement, not a test.
#include "bench_common.h"
#include "commands.h"

#include "engine/models/causal_lm.h"
#include "engine/error.h"
#include "engine/training/logprobs.h"
#include "engine/models/model_config.h"
#include "engine/runtime.h"

#include <torch/cuda.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <numeric>

namespace {

using namespace dpocli::bench;

struct BenchOptions {
    int threads = 0;
    int64_t seqLen = 256;
    int64_t batch = 8;
    int steps = 5;
    std::string device = "auto";
    std::string dtype = "float32";
};

void runBench(const BenchOptions &o)
{
    if (o.seqLen < 2)
        throw dpo::Error("--seq-len must be >= 2, got " + std::to_string(o.seqLen));
    if (o.batch < 1)
        throw dpo::Error("--batch must be >= 1, got " + std::to_string(o.batch));
    if (o.steps < 1)
        throw dpo::Error("--steps must be >= 1, got " + std::to_string(o.steps));
    const auto device = dpo::parseDevice(o.device);
    const auto dtype = dpo::parseDtype(o.dtype);
    dpo::initRuntime(o.threads);

    // 1. The matmul rate this machine reaches (in float32: the figure the issue asks for).
    const Rate r1024 = matmulGflops(1024, 10, device, torch::kFloat32);
    const Rate r2048 = matmulGflops(2048, 5, device, torch::kFloat32);
    const double mm1024 = r1024.wall, mm2048 = r2048.wall;
    const double mmBest = std::max(mm1024, mm2048);
    const double mmBestCpu = std::max(r1024.cpu, r2048.cpu);

    // 2. A ~25M-parameter Llama-shaped model, random weights, training mode.
    const auto cfg = benchConfig(o.seqLen);
    torch::manual_seed(0);
    auto model = dpo::createCausalLM(cfg);
    model->to(device, dtype);
    model->train();
    const int64_t params = model->parameterCount();
    const int64_t embedParams = cfg.vocabSize * cfg.hiddenSize;
    const int64_t matmulParams = params - embedParams; // the embedding is a lookup, not a matmul

    const int64_t B = o.batch, T = o.seqLen;
    auto longOpts = torch::TensorOptions().dtype(torch::kInt64).device(device);
    auto ids = torch::randint(0, cfg.vocabSize, { B, T }, longOpts);
    auto mask = torch::ones({ B, T }, longOpts);
    auto completion = torch::ones({ B, T }, longOpts);
    completion.select(1, 0).zero_(); // position 0 is never scored: every other token is

    std::vector<double> fwd, bwd, total, cpu;
    for (int step = -1; step < o.steps; ++step) { // step -1 warms up
        model->zero_grad();
        sync(device);
        auto t0 = std::chrono::steady_clock::now();
        const double c0 = cpuSeconds();
        auto lp = dpo::completionLogps(*model, ids, mask, completion);
        auto loss = -(lp.sum / lp.count).mean();
        sync(device);
        auto t1 = std::chrono::steady_clock::now();
        loss.backward();
        sync(device);
        auto t2 = std::chrono::steady_clock::now();
        if (step >= 0) {
            fwd.push_back(seconds(t0, t1));
            bwd.push_back(seconds(t1, t2));
            total.push_back(seconds(t0, t2));
            cpu.push_back(cpuSeconds() - c0);
        }
    }
    auto mean = [](const std::vector<double> &v) { return std::accumulate(v.begin(), v.end(), 0.0) / v.size(); };
    const double stepMean = mean(total), stepBest = *std::min_element(total.begin(), total.end());

    // FLOPs of one forward+backward: 6 per matmul weight per token (2 forward, 4 backward), the
    // lm_head only on the B*(T-1) scored positions, and attention's two T x T matmuls per head
    // (computed in full, as the kernels do), also x3 for forward + backward.
    const int64_t tokens = B * T, scored = B * (T - 1);
    const double headParams = double(cfg.vocabSize) * cfg.hiddenSize;
    const double bodyParams = double(matmulParams) - headParams;
    const double flops = 6.0 * bodyParams * tokens + 6.0 * headParams * scored
        + 12.0 * cfg.numLayers * B * double(T) * T * cfg.numHeads * cfg.headDim;
    const double gflops = flops / stepMean / 1e9;
    const double ratio = gflops / mmBest;

    nlohmann::json out;
    out["device"] = device.str();
    out["dtype"] = dpo::dtypeName(dtype);
    out["threads"] = at::get_num_threads();
    out["matmul_gflops"] = { { "1024", mm1024 }, { "2048", mm2048 }, { "best", mmBest } };
    out["model"] = { { "vocab", cfg.vocabSize }, { "hidden", cfg.hiddenSize }, { "layers", cfg.numLayers },
        { "heads", cfg.numHeads }, { "kv_heads", cfg.numKvHeads }, { "intermediate", cfg.intermediateSize },
        { "params", params }, { "params_matmul", matmulParams } };
    out["batch"] = B;
    out["seq_len"] = T;
    out["steps"] = o.steps;
    out["step_ms"] = { { "mean", stepMean * 1e3 }, { "best", stepBest * 1e3 }, { "forward_mean", mean(fwd) * 1e3 },
        { "backward_mean", mean(bwd) * 1e3 } };
    out["tokens_per_s"] = tokens / stepMean;
    out["flops_per_step"] = flops;
    out["flops_formula"] = "6*(params_matmul - vocab*hidden)*batch*seq + 6*vocab*hidden*batch*(seq-1) + "
                           "12*layers*batch*seq^2*heads*head_dim  (params_matmul = all parameters but the input "
                           "embedding; forward+backward = 3x forward)";
    out["model_gflops"] = gflops;
    out["ratio_to_matmul"] = ratio;
    if (device.is_cpu()) {
        // On a shared machine the wall clock also measures the neighbours; per CPU-second rates
        // compare the model with the matmul on the work actually done (exact with --threads 1).
        const double modelCpu = flops / mean(cpu) / 1e9;
        out["per_cpu_second"] = { { "matmul_gflops", mmBestCpu }, { "model_gflops", modelCpu },
            { "ratio_to_matmul", modelCpu / mmBestCpu } };
    }
    dpocli::printJson(out);

    char line[512];
    std::snprintf(line, sizeof line,
        "bench: %s %s, %d threads: matmul %.1f GFLOP/s (1024^2 %.1f, 2048^2 %.1f); %.2fM-param Llama, "
        "%lldx%lld tokens fwd+bwd log-probs %.1f ms/step = %.0f tokens/s = %.1f GFLOP/s = %.0f%% of matmul",
        device.str().c_str(), dpo::dtypeName(dtype).c_str(), at::get_num_threads(), mmBest, mm1024, mm2048,
        params / 1e6, (long long)B, (long long)T, stepMean * 1e3, tokens / stepMean, gflops, ratio * 100);
    std::cerr << line << std::endl;
}

dpocli::CommandRegistrar regBench([](CLI::App &app) {
    auto o = std::make_shared<BenchOptions>();
    CLI::App *cmd = app.add_subcommand("bench", "Measure matmul GFLOP/s and a ~25M-parameter model's fwd+bwd rate");
    cmd->add_option("--threads", o->threads, "CPU threads (0 = all cores)");
    cmd->add_option("--seq-len", o->seqLen, "Tokens per row")->capture_default_str();
    cmd->add_option("--batch", o->batch, "Rows per step")->capture_default_str();
    cmd->add_option("--steps", o->steps, "Timed steps (after one warm-up)")->capture_default_str();
    cmd->add_option("--device", o->device, "cpu, cuda, cuda:N or auto")->capture_default_str();
    cmd->add_option("--dtype", o->dtype, "Model dtype: float32 or bfloat16")->capture_default_str();
    cmd->callback([o, cmd, &app] {
        BenchOptions run = *o;
        if (!cmd->count("--threads"))
            run.threads = dpocli::globalThreads(app);
        runBench(run);
    });
});

} // namespace
