// The CUDA path (label `cuda`; built with -DDPO_CUDA_TESTS=ON, which scripts/gpu-check.sh sets on a GPU
// machine): the numbers on the GPU are the reference's, as on the CPU.
//  - fixture log-probs and losses from `dpo-cli score --device cuda` equal transformers' (float32, the
//    fixtures' tolerances) and the CPU run's;
//  - `dpo-cli train --device cuda` follows the reference 6-step trajectory (float32, TF32 off) within
//    1e-3, as the CPU run does;
//  - bfloat16 on CUDA tracks the float32 trajectory (loss within 0.02 per step), and float16 with dynamic
//    loss scaling trains without overflow stopping it and tracks it too;
//  - the fused kernels take the work they are meant to and agree with the paths they replace: flash
//    varlen attention for padding-free rows and for completions after a shared prompt (one call per
//    layer; bf16 log-prob sums within 2% + 0.05 of the padded batch's, each parameter's gradient at
//    cosine >= 0.99 and norm within 5%), and torch's fused AdamW (float32 parameters within 1e-5 of
//    the per-tensor update after 5 steps, bf16 masters too).
#include "fixture_pairs.h"
#include "test_util.h"

#include "engine/models/packed_attention.h"
#include "engine/torch_api.h"
#include "engine/training/adamw.h"
#include "engine/training/logprobs.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

namespace test_cuda { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string tempDir(const std::string &name)
{
    auto p = fs::temp_directory_path() / ("dpo_cuda_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(p);
    fs::create_directories(p);
    return p.string();
}

std::vector<json> readMetrics(const std::string &dir)
{
    std::vector<json> out;
    std::ifstream f(fs::path(dir) / "metrics.jsonl");
    std::string line;
    while (std::getline(f, line)) {
        auto j = json::parse(line);
        if (j.contains("loss") && !j.contains("eval_loss"))
            out.push_back(j);
    }
    return out;
}

json score(const std::string &name, const std::string &device)
{
    const auto r = dpotest::runCommand(dpotest::cliPath() + " score --model " + dpotest::fixture(name + "/other")
        + " --ref-model " + dpotest::fixture(name + "/ref") + " --dataset " + dpotest::fixture(name + "/pairs.jsonl")
        + " --device " + device);
    EXPECT_EQ(r.exitCode, 0) << r.err;
    return r.exitCode == 0 ? json::parse(r.out) : json();
}

std::string train(const std::string &name, const std::string &out, const std::string &extra)
{
    const auto r = dpotest::runCommand(dpotest::cliPath() + " train --model " + dpotest::fixture(name + "/ref")
        + " --dataset " + dpotest::fixture(name + "/pairs.jsonl") + " --output-dir " + out
        + " --learning-rate 1e-3 --lr-scheduler constant --batch-size 8 --max-steps 6 --max-grad-norm 0 --beta 0.1"
          " --no-shuffle --max-length 0 --save-steps 0 "
        + extra);
    EXPECT_EQ(r.exitCode, 0) << r.err;
    return r.err;
}

} // namespace

class CudaFixture : public ::testing::TestWithParam<std::string> {
protected:
    void SetUp() override
    {
        ASSERT_TRUE(torch::cuda::is_available()) << "test_cuda runs on a machine with a CUDA device";
    }
};

TEST_P(CudaFixture, ScoreEqualsReferenceAndCpu)
{
    const std::string name = GetParam();
    const json expected = dpotest::readJson(dpotest::fixture(name + "/expected.json"));
    const json gpu = score(name, "cuda"), cpu = score(name, "cpu");
    ASSERT_FALSE(gpu.is_null());
    ASSERT_FALSE(cpu.is_null());
    const auto &logps = expected["logps"];
    ASSERT_EQ(gpu["examples"].size(), expected["examples"].size());
    for (size_t i = 0; i < gpu["examples"].size(); ++i)
        for (const char *k : { "policy_chosen", "policy_rejected", "ref_chosen", "ref_rejected" }) {
            const std::string key = std::string(k) + "_logps";
            EXPECT_NEAR(gpu["examples"][i][key].get<double>(), logps[k][i].get<double>(), 2e-3) << k << " row " << i;
            EXPECT_NEAR(gpu["examples"][i][key].get<double>(), cpu["examples"][i][key].get<double>(), 2e-3)
                << k << " row " << i;
        }
    EXPECT_NEAR(gpu["loss"].get<double>(), expected["losses"]["sigmoid/beta=0.1/ls=0.0"]["mean"].get<double>(), 1e-4);
}

TEST_P(CudaFixture, TrainFollowsTheReferenceTrajectory)
{
    const std::string name = GetParam();
    const json traj = dpotest::readJson(dpotest::fixture(name + "/expected.json")).at("train").at("trajectory");
    const std::string out = tempDir("traj_" + name);
    train(name, out, "--device cuda --dtype float32 --tf32 false");
    const auto m = readMetrics(out);
    ASSERT_EQ(m.size(), traj.size());
    for (size_t i = 0; i < traj.size(); ++i)
        for (const char *k : { "loss", "grad_norm", "rewards/chosen", "rewards/rejected", "rewards/margins" })
            EXPECT_NEAR(m[i].at(k).get<double>(), traj[i].at(k).get<double>(), 1e-3) << "step " << i + 1 << " " << k;
    fs::remove_all(out);
}

TEST_P(CudaFixture, HalfPrecisionTracksFloat32)
{
    const std::string name = GetParam();
    const std::string f32 = tempDir("f32_" + name), bf16 = tempDir("bf16_" + name), f16 = tempDir("f16_" + name);
    train(name, f32, "--device cuda --dtype float32 --tf32 false");
    train(name, bf16, "--device cuda --dtype bfloat16");
    const std::string log = train(name, f16, "--device cuda --dtype float16");
    EXPECT_NE(log.find("dynamic loss scaling"), std::string::npos) << log;
    const auto a = readMetrics(f32), b = readMetrics(bf16), c = readMetrics(f16);
    ASSERT_EQ(a.size(), b.size());
    ASSERT_EQ(a.size(), c.size());
    int updates = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        EXPECT_NEAR(b[i].at("loss").get<double>(), a[i].at("loss").get<double>(), 0.02) << "bf16 step " << i + 1;
        EXPECT_TRUE(c[i].contains("loss_scale")) << "fp16 step " << i + 1;
        updates += c[i].contains("grad_norm") ? 1 : 0;
    }
    EXPECT_GE(updates, int(a.size()) - 1) << "at most the first fp16 step may overflow at the initial scale";
    // Skipped updates shift the fp16 run by a step at most; compare its final loss loosely.
    EXPECT_NEAR(c.back().at("loss").get<double>(), a.back().at("loss").get<double>(), 0.05);
    for (const auto &d : { f32, bf16, f16 })
        fs::remove_all(d);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CudaFixture, ::testing::Values("llama-gqa", "gpt2"));

namespace {

// bf16 against bf16 through other kernels: sums within 2% + 0.05, gradients by direction and size.
void expectBf16Close(const dpo::CompletionLogps &a, const std::map<std::string, torch::Tensor> &ga,
    const dpo::CompletionLogps &b, const std::map<std::string, torch::Tensor> &gb, const std::string &what)
{
    const auto x = a.sum.detach().cpu().to(torch::kDouble), y = b.sum.detach().cpu().to(torch::kDouble);
    EXPECT_TRUE(((x - y).abs() <= x.abs() * 0.02 + 0.05).all().item<bool>()) << what << ": " << x << y;
    ASSERT_EQ(ga.size(), gb.size()) << what;
    for (const auto &[name, g] : ga) {
        const auto u = g.cpu().to(torch::kDouble).flatten(), v = gb.at(name).cpu().to(torch::kDouble).flatten();
        const double nu = u.norm().item<double>(), nv = v.norm().item<double>();
        if (nu < 1e-8 && nv < 1e-8)
            continue;
        EXPECT_GE(u.dot(v).item<double>() / (nu * nv), 0.99) << what << " " << name;
        EXPECT_NEAR(nv / nu, 1.0, 0.05) << what << " " << name;
    }
}

} // namespace

// Fixtures whose head dims the flash kernel takes (multiples of 8); phi3 has a sliding window that
// bites inside its sequences.
class CudaKernels : public ::testing::TestWithParam<std::string> {
protected:
    void SetUp() override
    {
        ASSERT_TRUE(torch::cuda::is_available()) << "test_cuda runs on a machine with a CUDA device";
        if (!dpo::flashVarlenBuilt())
            GTEST_SKIP() << "this libtorch has no flash varlen kernel (cmake said DPO_HAVE_FLASH_VARLEN: off)";
    }
};

TEST_P(CudaKernels, FlashVarlenRunsAndMatchesThePaddedBatch)
{
    const torch::Device cuda(torch::kCUDA);
    auto model = dpo::loadCausalLM(dpotest::fixture(GetParam() + "/other"), cuda, torch::kBFloat16);
    const int64_t layers = model->config().numLayers;
    auto pairs = dpotest::tokenizedFixturePairs(GetParam());
    auto weights = torch::linspace(0.5, 1.5, int64_t(2 * pairs.size())).to(cuda);
    auto run = [&](const std::function<dpo::CompletionLogps()> &f) {
        model->zero_grad();
        auto r = f();
        (r.sum * weights).sum().backward();
        return std::make_pair(r, dpotest::parameterGradients(*model));
    };
    const auto padded = dpo::collatePairs(pairs, 0, cuda);
    const auto [a, ga] = run([&] {
        return dpo::completionLogps(*model, padded.inputIds, padded.attentionMask, padded.completionMask);
    });

    int64_t before = dpo::flashVarlenCalls();
    const auto packed = dpo::collatePacked(pairs, cuda);
    const auto [b, gb] = run([&] { return dpo::packedLogps(*model, packed); });
    EXPECT_EQ(dpo::flashVarlenCalls() - before, layers) << "padding-free: one kernel call per layer";
    expectBf16Close(a, ga, b, gb, "padding-free");

    before = dpo::flashVarlenCalls();
    const auto shared = dpo::collateSharedPrompt(pairs, 0, cuda);
    ASSERT_TRUE(shared.has_value());
    const auto [c, gc] = run([&] { return dpo::sharedPromptLogps(*model, *shared); });
    EXPECT_EQ(dpo::flashVarlenCalls() - before, layers) << "shared prompt: one kernel call per layer";
    expectBf16Close(a, ga, c, gc, "shared prompt");
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CudaKernels, ::testing::Values("llama-gqa", "gpt2", "qwen3", "phi3", "olmo2"));

// Both state dtypes: float32 (with masters) and the weights' (adamw_state_dtype weights, bf16 moments).
class CudaAdamW : public ::testing::TestWithParam<bool> { };

TEST_P(CudaAdamW, FusedFollowsThePerTensorUpdate)
{
    ASSERT_TRUE(torch::cuda::is_available());
    if (!dpo::adamWFusedBuilt())
        GTEST_SKIP() << "this libtorch has no _fused_adamw_ (cmake said DPO_HAVE_FUSED_ADAMW: off)";
    const bool float32State = GetParam();
    const torch::Device cuda(torch::kCUDA);
    std::map<dpo::AdamWKernel, std::vector<torch::Tensor>> results;
    for (const auto kernel : { dpo::AdamWKernel::PerTensor, dpo::AdamWKernel::MultiTensor, dpo::AdamWKernel::Fused }) {
        torch::manual_seed(11);
        std::vector<std::pair<std::string, torch::Tensor>> params = {
            { "model.layers.0.mlp.up_proj.weight", torch::randn({ 300, 37 }).to(cuda) },
            { "model.norm.weight", torch::randn({ 37 }).to(cuda) }, // no decay
            { "lm_head.weight", torch::randn({ 64, 8 }).to(cuda).to(torch::kBFloat16) },
        };
        dpo::AdamWOptions o;
        o.weightDecay = 0.1;
        o.kernel = kernel;
        o.float32State = float32State;
        dpo::AdamW opt(params, o);
        for (int step = 0; step < 5; ++step) {
            std::vector<torch::Tensor> grads;
            for (auto &[n, p] : params)
                grads.push_back(torch::randn(p.sizes()).to(cuda));
            opt.step(1e-2, torch::tensor(0.6f).to(cuda), grads);
        }
        for (auto &[n, p] : params)
            results[kernel].push_back(p.cpu().to(torch::kDouble));
        const auto state = opt.stateTensors();
        if (state.count("master.lm_head.weight"))
            results[kernel].push_back(state.at("master.lm_head.weight").cpu().to(torch::kDouble));
    }
    const auto &ref = results[dpo::AdamWKernel::PerTensor];
    EXPECT_EQ(ref.size(), float32State ? 4u : 3u) << "a float32 master of the bf16 weight only with float32 state";
    for (const auto kernel : { dpo::AdamWKernel::MultiTensor, dpo::AdamWKernel::Fused })
        for (size_t i = 0; i < ref.size(); ++i) {
            // [2] is the bf16 parameter (one bf16 step of the largest value), [3] its float32 master.
            const double tol = i == 2 ? ref[i].abs().max().item<double>() / 128 : 1e-5;
            EXPECT_LT((results[kernel][i] - ref[i]).abs().max().item<double>(), tol)
                << (kernel == dpo::AdamWKernel::Fused ? "fused" : "multi-tensor") << " tensor " << i;
        }
}

INSTANTIATE_TEST_SUITE_P(StateDtype, CudaAdamW, ::testing::Bool());

} // namespace test_cuda
