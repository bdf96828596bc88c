// dpo-cli bench-dpo [--model demo|25m|DIR]... [--batch 8] [--seq-len 256] [--prompt-share 0.25] [--steps 4]
//   [--threads N] [--device cpu|cuda|auto] [--dtype float32|bfloat16] [--reference live|precomputed|none]
//   [--share-prompt on|off|both] [--adamw-state-dtype float32|weights] [--gradient-checkpointing]
// Whole DPO optimizer steps through DpoTrainer, exactly as `dpo-cli train` runs them (collate, policy
// forward+backward on chosen and rejected, reference forward, loss, grad norm, clipping, AdamW), timed
// per step, with the machine's matmul rate measured at the start of the same run. Models: "demo" (the
// bundled demo model), "25m" (a random ~25.6M-parameter Llama, the demo tokenizer), or a model directory.
// --share-prompt both runs every model with the prompt computed once per pair (the default) and with the
// concatenated batch TRL runs, in the same process. On CUDA "on" means on whichever kernel attends
// (the trainer's own default shares prompts there only with the flash varlen kernel); the result says
// how many attentions the flash varlen kernel ran and whether AdamW was torch's fused kernel.
//
// The data are synthetic rows: a prompt of about --prompt-share x --seq-len tokens (a quarter by
// default, as in the GPU baseline script and tools/baseline_dpo_cpu.py) and completions that fill every sequence to
// exactly
// --seq-len tokens after keep_start truncation. Useful FLOPs are counted per pair from the exact token
// counts, for the tokens each path computes (prompt once or twice):
//   matmul  2 * matmul_weights per computed token (matmul_weights = 2-D weights but embeddings and head)
//   head    2 * vocab * hidden per scored completion token
//   attn    4 * layers * heads * head_dim per (query, visible key) pair (causal)
// a step is 3x forward for the policy (forward + backward) plus 1x for a live reference. Tokens/s counts
// the 2 x batch x seq-len tokens of the full sequences (what TRL's num_tokens counts), whichever path.
// The first step warms up and is not counted. Prints one JSON line on stdout and a summary on stderr.
//
// --method full|lora|both: full DPO, LoRA DPO (--lora-r, alpha 2r, the attention and MLP projections;
// reference = the policy with adapters off), or both in the same process. With LoRA the frozen base
// gets no weight gradients, so its backward counts as one forward (input gradients only): a policy
// step is 2x forward (+ adapters). Memory: the peak resident set (VmHWM, reset through
// /proc/self/clear_refs before each model, freed memory returned with malloc_trim) minus the resident
// set before the model was built, per parameter, next to the README's formula of the training state:
//   full  weights + grads + 2 AdamW moments + reference copy = 4 + 4 + 8 + 4 = 20 bytes/param (float32)
//   lora  frozen weights 4 + adapter params x (4 + 4 + 8) / params bytes/param (float32)
// Activations come on top of both and are what the measured figure adds.
#include "bench_common.h"
#include "commands.h"

#include "engine/models/packed_attention.h"
#include "engine/training/adamw.h"
#include "engine/cpu_block_cache.h"
#include "engine/data/preference_data.h"
#include "engine/error.h"
#include "engine/models/causal_lm.h"
#include "engine/models/lora.h"
#include "engine/runtime.h"
#include "engine/tokenizers/tokenizer.h"
#include "engine/training/dpo_trainer.h"

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>

namespace fs = std::filesystem;

namespace {

using namespace dpocli::bench;

struct BenchDpoOptions {
    std::vector<std::string> models { "demo", "25m" };
    int64_t batch = 8;
    int64_t seqLen = 256;
    int steps = 4;
    int threads = 0;
    std::string device = "auto";
    std::string dtype = "float32";
    std::string reference = "live";
    double promptShare = 0.25;
    std::string sharePrompt = "both";
    std::string method = "full";
    int64_t loraR = 8;
    std::string adamwStateDtype = "float32";
    bool gradientCheckpointing = false;
};

// The bundled demo model next to the executable (build tree: bin/../../resources; install:
// bin/../share/dpo-studio).
std::string demoModelDir()
{
    std::error_code ec;
    const fs::path exe = fs::canonical("/proc/self/exe", ec);
    for (const fs::path &c : { exe.parent_path() / "../../resources/demo-model",
             exe.parent_path() / "../share/dpo-studio/demo-model", fs::path("resources/demo-model") })
        if (fs::exists(c / "config.json"))
            return fs::weakly_canonical(c).string();
    throw dpo::Error("--model demo: the bundled demo model (resources/demo-model) was not found next to dpo-cli");
}

double statusMb(const char *key)
{
    std::ifstream f("/proc/self/status");
    std::string line;
    const size_t n = std::strlen(key);
    while (std::getline(f, line))
        if (line.compare(0, n, key) == 0)
            return std::stod(line.substr(n)) / 1024.0;
    return 0;
}
double peakRssMb()
{
    return statusMb("VmHWM:");
}
double rssMb()
{
    return statusMb("VmRSS:");
}

// Returns freed heap to the system and restarts the peak (VmHWM) at the current resident set, so each
// model's peak is its own (Linux >= 4.0; where clear_refs is not writable the peak stays process-wide).
bool resetPeakRss()
{
    dpo::releaseCpuBlockCache();
    malloc_trim(0);
    std::ofstream f("/proc/self/clear_refs");
    f << "5";
    f.flush();
    return bool(f);
}

// Rows whose prompt + completion is longer than T tokens for any tokenizer that gives a word at least
// one token: T words per completion, `promptWords` (+2) in the prompt. Chosen and rejected differ from
// their first word on.
std::vector<dpo::PreferenceRow> syntheticRows(int64_t n, int64_t T, int64_t promptWords, uint64_t seed)
{
    static const char *words[] = { "the", "model", "answer", "is", "two", "plus", "three", "five", "hello", "friend",
        "please", "thank", "you", "good", "morning", "sum", "of", "numbers", "a", "small", "story", "about", "cat",
        "dog", "and", "then", "it", "was", "very", "happy", "water", "tree", "blue", "red", "green", "seven" };
    const size_t nWords = sizeof words / sizeof *words;
    std::mt19937_64 rng(seed);
    auto text = [&](int64_t count) {
        std::string s;
        for (int64_t i = 0; i < count; ++i) {
            if (i)
                s += ' ';
            s += words[rng() % nWords];
        }
        return s;
    };
    std::vector<dpo::PreferenceRow> rows;
    for (int64_t i = 0; i < n; ++i) {
        dpo::PreferenceRow r;
        r.prompt = "Question " + std::to_string(i) + ": " + text(promptWords);
        r.chosen = " yes " + text(T);
        r.rejected = " no " + text(T);
        r.line = i + 1;
        rows.push_back(std::move(r));
    }
    return rows;
}

struct ModelUnderTest {
    std::string name;
    std::shared_ptr<dpo::CausalLM> model;
    std::shared_ptr<dpo::Tokenizer> tokenizer;
};

ModelUnderTest loadModel(const std::string &spec, int64_t seqLen)
{
    ModelUnderTest m;
    m.name = spec;
    if (spec == "25m") {
        torch::manual_seed(0);
        m.model = dpo::createCausalLM(benchConfig(seqLen));
        m.tokenizer = std::shared_ptr<dpo::Tokenizer>(dpo::loadTokenizer(demoModelDir()).release());
        return m;
    }
    const std::string dir = spec == "demo" ? demoModelDir() : spec;
    m.model = dpo::loadCausalLM(dir);
    m.tokenizer = std::shared_ptr<dpo::Tokenizer>(dpo::loadTokenizer(dir).release());
    return m;
}

nlohmann::json benchOne(
    const BenchDpoOptions &o, const std::string &spec, bool sharePrompt, bool lora, const MatmulRate &mm)
{
    const bool peakReset = resetPeakRss();
    const double rssBefore = rssMb();
    ModelUnderTest mut = loadModel(spec, o.seqLen);
    const dpo::ModelConfig &cfg = mut.model->config();
    const int64_t T = std::min<int64_t>(o.seqLen, cfg.maxPositionEmbeddings > 0 ? cfg.maxPositionEmbeddings : o.seqLen);
    const int64_t B = o.batch;
    const int64_t totalSteps = o.steps + 1;
    // Words per prompt so that the prompt is about promptShare x T tokens with this tokenizer.
    double tokensPerWord = 1.0;
    {
        const auto sample = syntheticRows(1, 200, 200, 99).front().prompt;
        tokensPerWord = std::max(1.0, double(mut.tokenizer->encode(sample).size()) / 202.0);
    }
    const int64_t promptWords = std::max<int64_t>(0, int64_t(o.promptShare * double(T) / tokensPerWord) - 2);
    auto rows = syntheticRows(B * totalSteps, T, promptWords, 1234);

    // Every sequence must be exactly T tokens; the prompt lengths give the exact work per pair.
    dpo::TruncationOptions trunc;
    trunc.maxLength = T;
    std::vector<int64_t> promptLen; // per pair (chosen and rejected share it: keep_start, same prompt)
    for (const auto &row : rows) {
        const auto pair = dpo::tokenizePair(*mut.tokenizer, row, trunc);
        for (const auto *seq : { &pair.chosen, &pair.rejected })
            if (int64_t(seq->ids.size()) != T || seq->promptLength >= T || seq->promptLength < 1)
                throw dpo::Error("bench-dpo: a synthetic row tokenized to " + std::to_string(seq->ids.size())
                    + " tokens with a prompt of " + std::to_string(seq->promptLength) + " instead of "
                    + std::to_string(T) + " tokens with a shorter prompt (tokenizer of " + spec
                    + "; lower --prompt-share)");
        promptLen.push_back(pair.chosen.promptLength);
    }

    int64_t matmulWeights = 0;
    for (const auto &item : mut.model->named_parameters()) {
        const std::string &n = item.key();
        if (item.value().dim() == 2 && n.find("embed_tokens") == std::string::npos && n.find("wte") == std::string::npos
            && n.find("wpe") == std::string::npos && n.find("lm_head") == std::string::npos)
            matmulWeights += item.value().numel();
    }
    const int64_t params = mut.model->parameterCount();
    const bool liveRef = o.reference == "live";
    const double passes = (lora ? 2.0 : 3.0) + (liveRef ? 1.0 : 0.0);
    const double attnUnit = 4.0 * double(cfg.numLayers) * cfg.numHeads * cfg.headDim;
    auto causalPairs = [](double q) { return q * (q + 1) / 2; }; // (query, visible key) pairs of q tokens
    // Steps take rows in order (no shuffle): step k uses rows [kB, (k+1)B).
    auto stepFlops = [&](int64_t step) {
        double f = 0;
        for (int64_t i = step * B; i < (step + 1) * B; ++i) {
            const double lp = double(promptLen[size_t(i)]), lc = double(T) - lp;
            const double tokens = sharePrompt ? lp + 2 * lc : 2.0 * T;
            const double attn = sharePrompt ? causalPairs(lp) + 2 * (lc * lp + causalPairs(lc)) : 2 * causalPairs(T);
            f += passes
                * (2.0 * double(matmulWeights) * tokens + attnUnit * attn
                    + 2.0 * double(cfg.vocabSize) * cfg.hiddenSize * 2 * lc);
        }
        return f;
    };

    const auto tmp = fs::temp_directory_path() / ("dpo_bench_dpo_" + std::to_string(::getpid()));
    fs::remove_all(tmp);
    dpo::TrainConfig c;
    c.outputDir = tmp.string();
    c.batchSize = B;
    c.gradAccum = 1;
    c.maxSteps = totalSteps;
    c.maxLength = T;
    c.learningRate = 1e-6;
    c.lrScheduler = "constant";
    c.shuffle = false;
    c.saveSteps = 0;
    c.loggingSteps = 1;
    c.device = o.device;
    c.dtype = o.dtype;
    c.threads = o.threads;
    c.precomputeRef = o.reference == "precomputed";
    c.referenceFree = o.reference == "none";
    c.sharePrompt = sharePrompt;
    c.adamwStateDtype = o.adamwStateDtype;
    c.gradientCheckpointing = o.gradientCheckpointing;
    if (lora) {
        c.method = "lora";
        c.loraR = o.loraR;
        c.loraAlpha = 2.0 * double(o.loraR);
    }

    std::vector<double> wall, cpu, flops;
    double lastCpu = 0;
    // CUDA: device memory in use after each step (the caching allocator keeps a step's peak reserved),
    // over what was in use before the trainer moved the model there (the CUDA context): an upper bound of
    // PyTorch's max_memory_allocated, which the GPU baseline reports.
    int64_t cudaBefore = 0, cudaPeak = 0;
    const bool onCuda = dpo::parseDevice(o.device).is_cuda() && dpo::cudaMemoryInUse(&cudaBefore, nullptr);
    // "on" and "off" are what they say on CUDA too (the trainer's default there depends on the kernel).
    if (dpo::parseDevice(o.device).is_cuda())
        ::setenv("DPO_SHARE_PROMPT_CUDA", sharePrompt ? "1" : "0", 1);
    const int64_t flashBefore = dpo::flashVarlenCalls();
    dpo::DpoTrainer trainer(mut.model, mut.tokenizer, c, rows);
    dpo::TrainerCallbacks cb;
    cb.onMetrics = [&](const nlohmann::json &m) {
        if (!m.contains("step_seconds"))
            return;
        const int64_t step = m.at("step").get<int64_t>();
        const double now = cpuSeconds();
        int64_t used = 0;
        if (onCuda && dpo::cudaMemoryInUse(&used, nullptr))
            cudaPeak = std::max(cudaPeak, used);
        if (step >= 2) { // step 1 warms up (allocator, kernels, first-touch pages)
            wall.push_back(m.at("step_seconds").get<double>());
            cpu.push_back(now - lastCpu);
            flops.push_back(stepFlops(step - 1));
        }
        lastCpu = now;
    };
    trainer.setCallbacks(cb);
    const auto s0 = std::chrono::steady_clock::now();
    trainer.setup(); // includes the reference pass when precomputed
    const double setupSeconds = seconds(s0, std::chrono::steady_clock::now());
    lastCpu = cpuSeconds();
    trainer.train();
    std::error_code ec;
    fs::remove_all(tmp, ec);

    auto sum = [](const std::vector<double> &v) { return std::accumulate(v.begin(), v.end(), 0.0); };
    const double wallSum = sum(wall), cpuSum = sum(cpu), flopSum = sum(flops);
    const double tokensPerStep = double(2 * B * T);
    const double gflops = flopSum / wallSum / 1e9;
    nlohmann::json r;
    r["model"] = spec;
    r["params"] = params;
    r["params_matmul"] = matmulWeights + cfg.vocabSize * cfg.hiddenSize;
    r["vocab"] = cfg.vocabSize;
    r["layers"] = cfg.numLayers;
    r["hidden"] = cfg.hiddenSize;
    r["batch_pairs"] = B;
    r["seq_len"] = T;
    r["reference"] = o.reference;
    r["share_prompt"] = sharePrompt;
    r["adamw_state_dtype"] = o.adamwStateDtype;
    r["gradient_checkpointing"] = o.gradientCheckpointing;
    r["flash_varlen_calls"] = dpo::flashVarlenCalls() - flashBefore;
    r["fused_adamw"] = onCuda && dpo::adamWFusedBuilt();
    r["prompt_tokens_mean"]
        = double(std::accumulate(promptLen.begin(), promptLen.end(), int64_t(0))) / promptLen.size();
    r["timed_steps"] = int64_t(wall.size());
    r["setup_seconds"] = setupSeconds;
    r["step_ms"]
        = { { "mean", wallSum / wall.size() * 1e3 }, { "best", *std::min_element(wall.begin(), wall.end()) * 1e3 } };
    r["steps_per_s"] = wall.size() / wallSum;
    r["tokens_per_s"] = tokensPerStep * wall.size() / wallSum;
    r["flops_per_step"] = flopSum / wall.size();
    r["gflops"] = gflops;
    r["ratio_to_matmul"] = gflops / mm.best();
    // The GPU baseline's figure of merit (tools/bench/baseline_dpo_gpu.py): 8 x params FLOPs per token
    // against an H100/H200's 989 dense bf16 TFLOP/s.
    r["mfu_8n_989tf"] = 8.0 * double(params) * tokensPerStep * wall.size() / wallSum / 989e12 * 100.0;
    if (onCuda)
        r["cuda_used_peak_gib"] = double(cudaPeak - cudaBefore) / double(int64_t(1) << 30);
    if (dpo::parseDevice(o.device).is_cpu()) {
        const double gflopsCpu = flopSum / cpuSum / 1e9;
        r["per_cpu_second"] = { { "gflops", gflopsCpu }, { "ratio_to_matmul", gflopsCpu / mm.bestCpu() } };
    }
    const double peak = peakRssMb();
    r["method"] = lora ? "lora" : "full";
    const int64_t trainable = lora && mut.model->lora ? mut.model->lora->parameterCount() : params;
    r["trainable_params"] = trainable;
    r["peak_rss_mb"] = peak;
    r["rss_before_mb"] = rssBefore;
    r["peak_is_per_model"] = peakReset;
    // Bytes per parameter of the whole model: measured (peak over the resident set before the model) and
    // the formula of the training state without activations (README, "Memory of full and LoRA DPO").
    const int64_t w = dpo::parseDtype(o.dtype) == torch::kFloat32 ? 4 : 2;
    const double formula = lora ? double(w) + double(trainable) * 16.0 / double(params)
                                : double(w) + double(w) + 8.0 + (liveRef ? double(w) : 0.0) + (w == 4 ? 0.0 : 4.0);
    r["bytes_per_param"] = { { "measured", (peak - rssBefore) * 1048576.0 / double(params) }, { "formula", formula } };
    return r;
}

void runBenchDpo(const BenchDpoOptions &o)
{
    if (o.batch < 1)
        throw dpo::Error("--batch must be >= 1, got " + std::to_string(o.batch));
    if (o.seqLen < 8)
        throw dpo::Error("--seq-len must be >= 8, got " + std::to_string(o.seqLen));
    if (o.steps < 1)
        throw dpo::Error("--steps must be >= 1, got " + std::to_string(o.steps));
    if (o.promptShare <= 0 || o.promptShare >= 0.9)
        throw dpo::Error("--prompt-share must be in (0, 0.9), got " + std::to_string(o.promptShare));
    if (o.sharePrompt != "on" && o.sharePrompt != "off" && o.sharePrompt != "both")
        throw dpo::Error("--share-prompt must be on, off or both, got '" + o.sharePrompt + "'");
    if (o.method != "full" && o.method != "lora" && o.method != "both")
        throw dpo::Error("--method must be full, lora or both, got '" + o.method + "'");
    if (o.loraR < 1)
        throw dpo::Error("--lora-r must be >= 1, got " + std::to_string(o.loraR));
    if (o.reference != "live" && o.reference != "precomputed" && o.reference != "none")
        throw dpo::Error("--reference must be live, precomputed or none, got '" + o.reference + "'");
    const auto device = dpo::parseDevice(o.device);
    dpo::parseDtype(o.dtype);
    dpo::initRuntime(o.threads);

    const MatmulRate mm = measureMatmul(device);
    nlohmann::json out;
    out["device"] = device.str();
    out["dtype"] = o.dtype;
    out["threads"] = at::get_num_threads();
    out["matmul_gflops"] = { { "1024", mm.r1024.wall }, { "2048", mm.r2048.wall }, { "best", mm.best() } };
    if (device.is_cpu())
        out["matmul_gflops_per_cpu_second"] = mm.bestCpu();
    out["models"] = nlohmann::json::array();
    std::vector<bool> modes;
    if (o.sharePrompt != "off")
        modes.push_back(true);
    if (o.sharePrompt != "on")
        modes.push_back(false);
    std::vector<bool> methods;
    if (o.method != "lora")
        methods.push_back(false);
    if (o.method != "full")
        methods.push_back(true);
    for (const auto &spec : o.models) {
        for (const bool lora : methods) {
            for (const bool share : modes) {
                BenchDpoOptions run = o;
                run.device = device.str();
                auto r = benchOne(run, spec, share, lora, mm);
                char line[900];
                std::snprintf(line, sizeof line,
                    "bench-dpo: %s %s (%.2fM params) %s %s, %d threads, %lld pairs x %lld tokens (prompt %.0f), %s "
                    "reference, "
                    "prompt %s: %.1f ms/step = %.2f steps/s = %.0f tokens/s = %.1f GFLOP/s = %.0f%% of matmul (%.1f "
                    "GFLOP/s); peak RSS %.0f MB (+%.0f MB = %.1f bytes/param; formula %.1f)",
                    r["method"].get<std::string>().c_str(), spec.c_str(), r["params"].get<double>() / 1e6,
                    device.str().c_str(), o.dtype.c_str(), at::get_num_threads(), (long long)o.batch,
                    (long long)r["seq_len"].get<int64_t>(), r["prompt_tokens_mean"].get<double>(), o.reference.c_str(),
                    share ? "shared" : "repeated", r["step_ms"]["mean"].get<double>(), r["steps_per_s"].get<double>(),
                    r["tokens_per_s"].get<double>(), r["gflops"].get<double>(),
                    r["ratio_to_matmul"].get<double>() * 100, mm.best(), r["peak_rss_mb"].get<double>(),
                    r["peak_rss_mb"].get<double>() - r["rss_before_mb"].get<double>(),
                    r["bytes_per_param"]["measured"].get<double>(), r["bytes_per_param"]["formula"].get<double>());
                std::cerr << line << std::endl;
                out["models"].push_back(std::move(r));
            }
        }
    }
    dpocli::printJson(out);
}

dpocli::CommandRegistrar regBenchDpo([](CLI::App &app) {
    auto o = std::make_shared<BenchDpoOptions>();
    CLI::App *cmd = app.add_subcommand(
        "bench-dpo", "Measure whole DPO training steps (policy fwd+bwd, reference fwd, AdamW) against the matmul rate");
    cmd->add_option("--model", o->models, "demo, 25m or a model directory (repeatable)")->capture_default_str();
    cmd->add_option("--batch", o->batch, "Pairs per step")->capture_default_str();
    cmd->add_option("--seq-len", o->seqLen, "Tokens per sequence (capped by the model's positions)")
        ->capture_default_str();
    cmd->add_option("--steps", o->steps, "Timed steps (after one warm-up step)")->capture_default_str();
    cmd->add_option("--device", o->device, "cpu, cuda, cuda:N or auto")->capture_default_str();
    cmd->add_option("--dtype", o->dtype, "float32 or bfloat16")->capture_default_str();
    cmd->add_option("--reference", o->reference, "live, precomputed or none")->capture_default_str();
    cmd->add_option("--prompt-share", o->promptShare, "Share of each sequence that is prompt")->capture_default_str();
    cmd->add_option("--share-prompt", o->sharePrompt, "on, off or both (A/B in one run)")->capture_default_str();
    cmd->add_option("--method", o->method, "full, lora or both (full and LoRA DPO in one run)")->capture_default_str();
    cmd->add_option("--lora-r", o->loraR, "LoRA rank with --method lora|both (alpha 2r)")->capture_default_str();
    cmd->add_option("--adamw-state-dtype", o->adamwStateDtype, "float32 or weights (see dpo-cli train)")
        ->capture_default_str();
    cmd->add_flag("--gradient-checkpointing", o->gradientCheckpointing,
        "Recompute each layer's activations in backward (the concatenated batch)");
    cmd->callback([o, cmd, &app] {
        BenchDpoOptions run = *o;
        run.threads = dpocli::globalThreads(app);
        runBenchDpo(run);
    });
});

} // namespace
