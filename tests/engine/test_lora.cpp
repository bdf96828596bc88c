// LoRA DPO: the adapters themselves (gradients only on A and B, merge, GPT-2's Conv1D), PEFT's files
// (key names and config fields as the PEFT fixture holds them, parity with the fixture's log-probs,
// save/load round trip, bad adapter folders), and the trainer (step 1 equals full DPO, reference with
// adapters off live and precomputed, stop/resume, continuing an adapter, refused combinations).
#include "test_util.h"

#include "engine/data/preference_data.h"
#include "engine/error.h"
#include "engine/io/safetensors.h"
#include "engine/models/adapter_io.h"
#include "engine/models/causal_lm.h"
#include "engine/models/lora.h"
#include "engine/tokenizers/tokenizer.h"
#include "engine/training/dpo_trainer.h"
#include "engine/training/logprobs.h"
#include "engine/training/train_config.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>

namespace test_lora { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string tempDir(const std::string &name)
{
    auto p = fs::temp_directory_path() / ("dpo_lora_" + name + "_" + std::to_string(::getpid()));
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
        if (j.contains("loss"))
            out.push_back(j);
    }
    return out;
}

// Summed completion log-probs of every row's chosen then rejected sequence: [2N] float32.
torch::Tensor rowLogps(dpo::CausalLM &model, const dpo::Tokenizer &tok, const std::string &pairsFile)
{
    torch::NoGradGuard noGrad;
    std::vector<dpo::TokenizedPair> pairs;
    for (const auto &row : dpo::readPreferenceJsonl(pairsFile))
        pairs.push_back(dpo::tokenizePair(tok, row));
    auto batch = dpo::collatePairs(pairs, tok.padId());
    return dpo::completionLogps(model, batch.inputIds, batch.attentionMask, batch.completionMask).sum;
}

// Gives every B a random value so adapters change the function (B = 0 would hide transposition errors).
void randomiseB(dpo::LoraAdapter &adapter, uint64_t seed)
{
    torch::NoGradGuard noGrad;
    torch::manual_seed(seed);
    for (auto &[name, t] : adapter.namedParameters())
        if (name.find("lora_B") != std::string::npos)
            t.copy_(torch::randn_like(t) * 0.5);
}

dpo::TrainConfig loraConfig(const std::string &fixtureName, const std::string &out)
{
    dpo::TrainConfig c;
    c.model = dpotest::fixture(fixtureName + "/ref");
    c.dataset = dpotest::fixture(fixtureName + "/pairs.jsonl");
    c.outputDir = out;
    c.method = "lora";
    c.loraR = 4;
    c.loraAlpha = 8;
    c.learningRate = 1e-2;
    c.lrScheduler = "constant";
    c.batchSize = 8;
    c.maxSteps = 4;
    c.maxGradNorm = 0;
    c.shuffle = false;
    c.maxLength = 0;
    c.saveSteps = 0;
    c.device = "cpu";
    return c;
}

} // namespace

// ---------------------------------------------------------------------------------------------
// The adapter on a model

TEST(LoraAdapter, GradientsOnlyOnAdapterTensors)
{
    auto model = dpo::loadCausalLM(dpotest::fixture("llama-gqa/ref"));
    auto tok = dpo::loadTokenizer(dpotest::fixture("llama-gqa/ref"));
    auto adapter = dpo::LoraAdapter::attach(*model, dpo::LoraConfig {});
    // Default targets: every attention and MLP projection of both layers, not the head.
    EXPECT_EQ(adapter->modulePaths().size(), 2u * 7u);
    EXPECT_EQ(adapter->targetNames(),
        (std::vector<std::string> { "down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj" }));
    randomiseB(*adapter, 1);
    model->train();
    std::vector<dpo::TokenizedPair> pairs;
    for (const auto &row : dpo::readPreferenceJsonl(dpotest::fixture("llama-gqa/pairs.jsonl")))
        pairs.push_back(dpo::tokenizePair(*tok, row));
    auto batch = dpo::collatePairs(pairs, tok->padId());
    dpo::completionLogps(*model, batch.inputIds, batch.attentionMask, batch.completionMask).sum.sum().backward();
    for (const auto &p : model->named_parameters()) {
        EXPECT_FALSE(p.value().requires_grad()) << p.key();
        EXPECT_FALSE(p.value().grad().defined()) << p.key();
    }
    for (const auto &[name, t] : adapter->namedParameters()) {
        ASSERT_TRUE(t.grad().defined()) << name;
        EXPECT_GT(t.grad().abs().sum().item<double>(), 0.0) << name;
        EXPECT_EQ(t.scalar_type(), torch::kFloat32);
    }
}

TEST(LoraAdapter, InitialisationIsPeftsAndBZeroKeepsTheBase)
{
    auto model = dpo::loadCausalLM(dpotest::fixture("llama-gqa/ref"));
    auto tok = dpo::loadTokenizer(dpotest::fixture("llama-gqa/ref"));
    const auto before = rowLogps(*model, *tok, dpotest::fixture("llama-gqa/pairs.jsonl"));
    dpo::LoraConfig cfg;
    cfg.r = 16;
    auto adapter = dpo::LoraAdapter::attach(*model, cfg);
    for (const auto &[name, t] : adapter->namedParameters()) {
        if (name.find("lora_B") != std::string::npos) {
            EXPECT_EQ(t.abs().max().item<double>(), 0.0) << name;
        } else { // kaiming_uniform_(a = sqrt(5)): U(-1/sqrt(in), 1/sqrt(in)), variance 1/(3 in)
            const double bound = 1.0 / std::sqrt(double(t.size(1)));
            EXPECT_LE(t.abs().max().item<double>(), bound) << name;
            EXPECT_GT(t.abs().max().item<double>(), 0.8 * bound) << name;
            EXPECT_NEAR(t.var().item<double>(), bound * bound / 3.0, 0.3 * bound * bound / 3.0) << name;
        }
    }
    const auto after = rowLogps(*model, *tok, dpotest::fixture("llama-gqa/pairs.jsonl"));
    EXPECT_TRUE(torch::equal(before, after));
}

// Activation checkpointing recomputes each layer in backward; with LoRA dropout the recomputation must
// draw the same masks (the forward's random state is restored), or the adapters' gradients would be
// those of another mask. Gradients with and without checkpointing are equal.
TEST(LoraAdapter, GradientCheckpointingKeepsDropoutMasksAndGradients)
{
    auto grads = [](bool checkpoint) {
        auto model = dpo::loadCausalLM(dpotest::fixture("llama-gqa/ref"));
        dpo::LoraConfig cfg;
        cfg.r = 4;
        cfg.dropout = 0.3;
        torch::manual_seed(5);
        auto adapter = dpo::LoraAdapter::attach(*model, cfg);
        {
            torch::NoGradGuard g; // B = 0 would make A's gradient 0: give B values
            for (auto &[name, t] : adapter->namedParameters())
                if (name.find("lora_B") != std::string::npos)
                    t.normal_(0, 0.1);
        }
        model->train();
        model->gradientCheckpointing = checkpoint;
        torch::manual_seed(9); // the dropout masks of this forward
        auto ids = torch::randint(0, model->config().vocabSize, { 2, 12 }, torch::kInt64);
        auto logp = torch::log_softmax(model->forward(ids), -1);
        logp.slice(1, 0, -1).gather(2, ids.slice(1, 1).unsqueeze(2)).sum().backward();
        std::map<std::string, torch::Tensor> out;
        for (const auto &[name, t] : adapter->namedParameters())
            out[name] = t.grad().clone();
        return out;
    };
    const auto plain = grads(false), recomputed = grads(true);
    ASSERT_FALSE(plain.empty());
    for (const auto &[name, g] : plain) {
        const double scale = std::max(1e-6, g.abs().max().item<double>());
        EXPECT_GT(g.abs().max().item<double>(), 0.0) << name;
        EXPECT_LT((recomputed.at(name) - g).abs().max().item<double>() / scale, 1e-5) << name;
    }
}

TEST(LoraAdapter, TargetsAllLinearAndRefusesUnknownNames)
{
    auto model = dpo::loadCausalLM(dpotest::fixture("phi3/ref"));
    dpo::LoraConfig cfg;
    cfg.targetModules = { "all-linear" };
    auto adapter = dpo::LoraAdapter::attach(*model, cfg);
    EXPECT_EQ(adapter->targetNames(), (std::vector<std::string> { "down_proj", "gate_up_proj", "o_proj", "qkv_proj" }));
    for (const auto &p : adapter->modulePaths())
        EXPECT_NE(p, "lm_head");
    adapter->detach();
    EXPECT_EQ(model->lora, nullptr);

    cfg.targetModules = { "query_key_value" };
    try {
        dpo::LoraAdapter::attach(*model, cfg);
        FAIL() << "an unknown module name was accepted";
    } catch (const dpo::Error &e) {
        EXPECT_NE(std::string(e.what()).find("query_key_value"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("qkv_proj"), std::string::npos) << e.what();
    }
}

// The merged model computes what the adapter-applied one does; GPT-2 checks the Conv1D transpose
// (fan_in_fan_out), Phi-3 the fused projections.
class LoraMerge : public ::testing::TestWithParam<std::string> { };

TEST_P(LoraMerge, MergedLogpsEqualAdapterLogps)
{
    const std::string dir = dpotest::fixture(GetParam() + "/ref");
    auto model = dpo::loadCausalLM(dir);
    auto tok = dpo::loadTokenizer(dir);
    dpo::LoraConfig cfg;
    cfg.r = 4;
    cfg.alpha = 6;
    auto adapter = dpo::LoraAdapter::attach(*model, cfg);
    randomiseB(*adapter, 7);
    EXPECT_EQ(adapter->fanInFanOut(), GetParam() == "gpt2");
    const auto pairsFile = dpotest::fixture(GetParam() + "/pairs.jsonl");
    const auto withAdapter = rowLogps(*model, *tok, pairsFile);
    {
        dpo::LoraDisabledScope off(*model);
        EXPECT_GT((rowLogps(*model, *tok, pairsFile) - withAdapter).abs().max().item<double>(), 0.05)
            << "the adapter does not change the function: the test would prove nothing";
    }
    const std::string out = tempDir("merge_" + GetParam());
    dpo::savePretrainedMerged(*model, out + "/merged", dir);
    auto merged = dpo::loadCausalLM(out + "/merged");
    EXPECT_EQ(merged->lora, nullptr);
    const auto mergedLogps = rowLogps(*merged, *tok, pairsFile);
    EXPECT_LT((mergedLogps - withAdapter).abs().max().item<double>(), 2e-3);
    fs::remove_all(out);
}

INSTANTIATE_TEST_SUITE_P(Families, LoraMerge, ::testing::Values("llama-gqa", "gpt2", "phi3"));

// ---------------------------------------------------------------------------------------------
// PEFT's files

// The fixture adapter was written by PEFT: ours, for the same base and targets, has exactly its tensor
// names, shapes and config fields.
TEST(AdapterIo, KeyNamesAndConfigFieldsAsPeftWritesThem)
{
    const std::string base = dpotest::fixture("lora-peft/base");
    auto model = dpo::loadCausalLM(base);
    dpo::LoraConfig cfg;
    cfg.r = 4;
    cfg.alpha = 6;
    cfg.useRslora = true;
    cfg.targetModules = { "q_proj", "v_proj" };
    auto adapter = dpo::LoraAdapter::attach(*model, cfg);
    adapter->baseModelDir = base;
    const std::string out = tempDir("keys");
    dpo::saveAdapter(*model, out + "/adapter");

    auto ours = dpo::SafetensorsFile::open(out + "/adapter/adapter_model.safetensors");
    auto peft = dpo::SafetensorsFile::open(dpotest::fixture("lora-peft/adapter/adapter_model.safetensors"));
    auto sorted = [](std::vector<std::string> v) {
        std::sort(v.begin(), v.end());
        return v;
    };
    ASSERT_EQ(sorted(ours.names()), sorted(peft.names()));
    for (const auto &name : peft.names())
        EXPECT_EQ(ours.entry(name).shape, peft.entry(name).shape) << name;
    EXPECT_TRUE(ours.contains("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"));

    const json mine = dpotest::readJson(out + "/adapter/adapter_config.json");
    const json theirs = dpotest::readJson(dpotest::fixture("lora-peft/adapter/adapter_config.json"));
    std::set<std::string> mineKeys, theirKeys;
    for (auto it = mine.begin(); it != mine.end(); ++it)
        mineKeys.insert(it.key());
    for (auto it = theirs.begin(); it != theirs.end(); ++it)
        theirKeys.insert(it.key());
    EXPECT_EQ(mineKeys, theirKeys);
    for (const char *k : { "peft_type", "task_type", "r", "lora_alpha", "lora_dropout", "target_modules", "bias",
             "use_rslora", "fan_in_fan_out", "modules_to_save", "init_lora_weights", "use_dora", "inference_mode" })
        EXPECT_EQ(mine.at(k), theirs.at(k)) << k;
    EXPECT_EQ(mine.at("base_model_name_or_path"), fs::absolute(base).lexically_normal().string());
    fs::remove_all(out);
}

TEST(AdapterIo, Gpt2AdapterUsesConv1DNamesAndFanInFanOut)
{
    auto model = dpo::loadCausalLM(dpotest::fixture("gpt2/ref"));
    auto adapter = dpo::LoraAdapter::attach(*model, dpo::LoraConfig {});
    const std::string out = tempDir("gpt2keys");
    dpo::saveAdapter(*model, out + "/a");
    const json cfg = dpotest::readJson(out + "/a/adapter_config.json");
    EXPECT_EQ(cfg.at("fan_in_fan_out"), true);
    EXPECT_EQ(cfg.at("target_modules"), json({ "c_attn", "c_fc", "c_proj" }));
    auto f = dpo::SafetensorsFile::open(out + "/a/adapter_model.safetensors");
    // c_attn: Conv1D [64, 192] (in, out) -> lora_A [r, 64], lora_B [192, r], as PEFT's nn.Linear pair.
    EXPECT_EQ(
        f.entry("base_model.model.transformer.h.0.attn.c_attn.lora_A.weight").shape, (std::vector<int64_t> { 8, 64 }));
    EXPECT_EQ(
        f.entry("base_model.model.transformer.h.0.attn.c_attn.lora_B.weight").shape, (std::vector<int64_t> { 192, 8 }));
    EXPECT_EQ(f.names().size(), 2u * 2u * 4u);
    fs::remove_all(out);
}

// PEFT's adapter on its base: log-probs equal the fixture's (policy = adapter on, reference = off).
TEST(AdapterIo, PeftFixtureParity)
{
    const std::string adapterDir = dpotest::fixture("lora-peft/adapter");
    const json expected = dpotest::readJson(dpotest::fixture("lora-peft/expected.json"));
    ASSERT_TRUE(dpo::isAdapterDir(adapterDir));
    auto model = dpo::loadCausalLM(adapterDir); // base found from "../base", relative to the adapter folder
    ASSERT_NE(model->lora, nullptr);
    EXPECT_DOUBLE_EQ(model->lora->config().scaling(), 3.0);
    auto tok = dpo::loadTokenizer(adapterDir); // the base's tokenizer
    const std::string pairsFile = dpotest::fixture("lora-peft/pairs.jsonl");
    const auto policy = rowLogps(*model, *tok, pairsFile);
    torch::Tensor ref;
    {
        dpo::LoraDisabledScope off(*model);
        ref = rowLogps(*model, *tok, pairsFile);
    }
    const int64_t n = policy.size(0) / 2;
    ASSERT_EQ(n, int64_t(expected["logps"]["policy_chosen"].size()));
    for (int64_t i = 0; i < n; ++i) {
        EXPECT_NEAR(policy[i].item<double>(), expected["logps"]["policy_chosen"][size_t(i)].get<double>(), 2e-3) << i;
        EXPECT_NEAR(policy[n + i].item<double>(), expected["logps"]["policy_rejected"][size_t(i)].get<double>(), 2e-3);
        EXPECT_NEAR(ref[i].item<double>(), expected["logps"]["ref_chosen"][size_t(i)].get<double>(), 2e-3) << i;
        EXPECT_NEAR(ref[n + i].item<double>(), expected["logps"]["ref_rejected"][size_t(i)].get<double>(), 2e-3);
    }
}

// dpo-cli score on the adapter folder, as the fixture's README runs it, and with the reference left to
// the default (the same model, adapters off): the fixture's losses either way.
TEST(AdapterIo, ScoreCliOnAdapterFolder)
{
    const json expected = dpotest::readJson(dpotest::fixture("lora-peft/expected.json"));
    const double loss = expected["losses"]["sigmoid/beta=0.1/ls=0.0"]["mean"].get<double>();
    for (const std::string ref : { " --ref-model " + dpotest::fixture("lora-peft/base"), std::string() }) {
        const auto r = dpotest::runCommand(dpotest::cliPath() + " score --model "
            + dpotest::fixture("lora-peft/adapter") + ref + " --dataset " + dpotest::fixture("lora-peft/pairs.jsonl"));
        ASSERT_EQ(r.exitCode, 0) << r.err;
        const json out = json::parse(r.out);
        EXPECT_NEAR(out.at("loss").get<double>(), loss, 1e-5) << ref;
        for (size_t i = 0; i < out["examples"].size(); ++i)
            EXPECT_NEAR(out["examples"][i]["loss"].get<double>(),
                expected["losses"]["sigmoid/beta=0.1/ls=0.0"]["per_example"][i].get<double>(), 1e-5);
    }
}

TEST(AdapterIo, GreedyWithTheAdapterMatchesTheFixture)
{
    const json expected = dpotest::readJson(dpotest::fixture("lora-peft/expected.json"));
    const auto &g = expected["greedy"][0];
    const auto r = dpotest::runCommand(dpotest::cliPath() + " generate --device cpu --greedy --ignore-eos --model "
        + dpotest::fixture("lora-peft/adapter") + " --max-new-tokens " + std::to_string(g["new_ids"].size())
        + " --prompt 'What is 3 plus 4?'");
    ASSERT_EQ(r.exitCode, 0) << r.err;
    EXPECT_EQ(json::parse(r.out).at("ids"), g["new_ids"]);
}

TEST(AdapterIo, SavedThenLoadedScoresIdentically)
{
    const std::string base = dpotest::fixture("llama-gqa/ref");
    auto model = dpo::loadCausalLM(base);
    auto tok = dpo::loadTokenizer(base);
    dpo::LoraConfig cfg;
    cfg.r = 3;
    cfg.alpha = 5;
    cfg.targetModules = { "q_proj", "down_proj" };
    auto adapter = dpo::LoraAdapter::attach(*model, cfg);
    adapter->baseModelDir = base;
    randomiseB(*adapter, 3);
    const std::string out = tempDir("roundtrip");
    dpo::saveAdapter(*model, out + "/a");
    EXPECT_FALSE(fs::exists(out + "/a/tokenizer.model")); // no tokenizer dir given: none copied
    auto loaded = dpo::loadCausalLM(out + "/a");
    const auto pairsFile = dpotest::fixture("llama-gqa/pairs.jsonl");
    EXPECT_TRUE(
        torch::equal(rowLogps(*model, *tok, pairsFile), rowLogps(*loaded, *dpo::loadTokenizer(out + "/a"), pairsFile)));
    // savePretrained refuses a model with an adapter (it would silently drop it).
    EXPECT_THROW(dpo::savePretrained(*loaded, out + "/full"), dpo::Error);
    fs::remove_all(out);
}

// Bad adapter folders: one clear dpo::Error naming the file and the field or tensor, never a crash.
struct BadAdapterCase {
    const char *name;
    std::function<void(const fs::path &dir, json &config)> spoil;
    const char *expect1;
    const char *expect2;
};

class AdapterIoBad : public ::testing::TestWithParam<BadAdapterCase> { };

TEST_P(AdapterIoBad, ClearError)
{
    const auto &c = GetParam();
    const fs::path dir = fs::path(tempDir(std::string("bad_") + c.name)) / "adapter";
    fs::create_directories(dir);
    fs::copy_file(dpotest::fixture("lora-peft/adapter/adapter_model.safetensors"), dir / "adapter_model.safetensors");
    json config = dpotest::readJson(dpotest::fixture("lora-peft/adapter/adapter_config.json"));
    config["base_model_name_or_path"] = fs::absolute(dpotest::fixture("lora-peft/base")).string();
    c.spoil(dir, config);
    if (!config.is_null())
        std::ofstream(dir / "adapter_config.json") << config.dump();
    try {
        dpo::loadCausalLM(dir.string());
        FAIL() << c.name << " was accepted";
    } catch (const dpo::Error &e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find(c.expect1), std::string::npos) << msg;
        EXPECT_NE(msg.find(c.expect2), std::string::npos) << msg;
    }
    fs::remove_all(dir.parent_path());
}

INSTANTIATE_TEST_SUITE_P(Cases, AdapterIoBad,
    ::testing::Values(BadAdapterCase { "corrupt_json",
                          [](const fs::path &d, json &c) {
                              std::ofstream(d / "adapter_config.json") << "{\"r\": 4,";
                              c = nullptr;
                          },
                          "adapter_config.json", "" },
        BadAdapterCase { "missing_r", [](const fs::path &, json &c) { c.erase("r"); }, "adapter_config.json", "'r'" },
        BadAdapterCase {
            "not_lora", [](const fs::path &, json &c) { c["peft_type"] = "IA3"; }, "adapter_config.json", "peft_type" },
        BadAdapterCase {
            "dora", [](const fs::path &, json &c) { c["use_dora"] = true; }, "adapter_config.json", "use_dora" },
        BadAdapterCase {
            "bias", [](const fs::path &, json &c) { c["bias"] = "all"; }, "adapter_config.json", "'bias'" },
        BadAdapterCase { "more_targets",
            [](const fs::path &, json &c) {
                c["target_modules"] = { "q_proj", "v_proj", "k_proj" };
            },
            "adapter_model.safetensors", "k_proj.lora_A.weight" },
        BadAdapterCase { "fewer_targets", [](const fs::path &, json &c) { c["target_modules"] = { "q_proj" }; },
            "adapter_model.safetensors", "unexpected tensor" },
        BadAdapterCase {
            "wrong_rank", [](const fs::path &, json &c) { c["r"] = 8; }, "adapter_model.safetensors", "shape" },
        BadAdapterCase { "wrong_base",
            [](const fs::path &, json &c) {
                c["base_model_name_or_path"] = fs::absolute(dpotest::fixture("llama-gqa/ref")).string();
            },
            "shape", "llama-gqa/ref" },
        BadAdapterCase { "missing_base", [](const fs::path &, json &c) { c["base_model_name_or_path"] = "../nowhere"; },
            "nowhere", "base model" },
        BadAdapterCase { "missing_weights",
            [](const fs::path &d, json &) { fs::remove(d / "adapter_model.safetensors"); }, "adapter_model.safetensors",
            "missing" },
        BadAdapterCase { "truncated_weights",
            [](const fs::path &d, json &) { fs::resize_file(d / "adapter_model.safetensors", 100); },
            "adapter_model.safetensors", "" }),
    [](const ::testing::TestParamInfo<BadAdapterCase> &info) { return std::string(info.param.name); });

// ---------------------------------------------------------------------------------------------
// Training

// With B = 0 the policy is the base, so LoRA's first step sees exactly full DPO's step-1 numbers;
// llama-gqa's policy `other` against `ref` gives the fixture's loss and metrics.
TEST(LoraTrainer, FirstStepEqualsFullDpo)
{
    const json expected = dpotest::readJson(dpotest::fixture("llama-gqa/expected.json"));
    std::vector<json> steps[2];
    for (int lora = 0; lora < 2; ++lora) {
        const std::string out = tempDir(lora ? "first_lora" : "first_full");
        auto c = loraConfig("llama-gqa", out);
        c.model = dpotest::fixture("llama-gqa/other");
        c.refModel = dpotest::fixture("llama-gqa/ref");
        c.method = lora ? "lora" : "full";
        c.maxSteps = 1;
        dpo::DpoTrainer t(c);
        t.train();
        steps[lora] = readMetrics(out);
        ASSERT_EQ(steps[lora].size(), 1u);
        fs::remove_all(out);
    }
    EXPECT_NEAR(
        steps[1][0]["loss"].get<double>(), expected["losses"]["sigmoid/beta=0.1/ls=0.0"]["mean"].get<double>(), 1e-5);
    for (const char *k : { "loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies" })
        EXPECT_NEAR(steps[1][0][k].get<double>(), steps[0][0][k].get<double>(), 1e-6) << k;
    EXPECT_NEAR(steps[1][0]["rewards/margins"].get<double>(),
        expected["metrics_beta_0.1"]["rewards/margins"].get<double>(), 1e-5);
}

// The reference is the policy with adapters off: step 1 is ln 2, later steps move away from it, the
// base weights never change, and precomputing that reference gives the same trajectory.
TEST(LoraTrainer, ReferenceIsTheBaseLiveOrPrecomputed)
{
    std::vector<json> runs[2];
    for (int pre = 0; pre < 2; ++pre) {
        const std::string out = tempDir(pre ? "ref_pre" : "ref_live");
        auto c = loraConfig("llama-gqa", out);
        c.precomputeRef = pre == 1;
        dpo::DpoTrainer t(c);
        t.setup();
        std::map<std::string, torch::Tensor> before;
        for (const auto &[k, v] : t.model()->stateDict())
            before[k] = v.clone();
        EXPECT_EQ(t.train().status, "completed");
        for (const auto &[k, v] : t.model()->stateDict())
            EXPECT_TRUE(torch::equal(before.at(k), v)) << k << " changed";
        runs[pre] = readMetrics(out);
        // Only adapter tensors have optimizer state.
        auto opt = dpo::SafetensorsFile::open(out + "/checkpoint-4/optimizer.safetensors");
        for (const auto &name : opt.names())
            EXPECT_NE(name.find(".lora_"), std::string::npos) << name;
        EXPECT_TRUE(fs::exists(out + "/final/adapter_model.safetensors"));
        EXPECT_TRUE(fs::exists(out + "/final/tokenizer.model"));
        EXPECT_FALSE(fs::exists(out + "/final/model.safetensors"));
        fs::remove_all(out);
    }
    ASSERT_EQ(runs[0].size(), 4u);
    EXPECT_NEAR(runs[0][0]["loss"].get<double>(), std::log(2.0), 1e-6);
    EXPECT_LT(runs[0][3]["loss"].get<double>(), runs[0][0]["loss"].get<double>() - 1e-3);
    for (size_t i = 0; i < runs[0].size(); ++i)
        EXPECT_NEAR(runs[0][i]["loss"].get<double>(), runs[1][i]["loss"].get<double>(), 1e-5) << i;
}

// Stop at step 3 and --resume: the uninterrupted trajectory, LoRA dropout masks included.
TEST(LoraTrainer, StopAndResumeReplaysTheTrajectory)
{
    auto config = [](const std::string &out) {
        auto c = loraConfig("llama-gqa", out);
        c.batchSize = 4;
        c.shuffle = true;
        c.maxSteps = 6;
        c.loraDropout = 0.1;
        c.maxGradNorm = 1.0;
        c.lrScheduler = "cosine";
        return c;
    };
    const std::string full = tempDir("resume_full");
    {
        dpo::DpoTrainer t(config(full));
        EXPECT_EQ(t.train().status, "completed");
    }
    const std::string part = tempDir("resume_part");
    {
        std::atomic<bool> stop { false };
        dpo::DpoTrainer t(config(part));
        dpo::TrainerCallbacks cb;
        cb.onMetrics = [&](const json &m) {
            if (m.value("step", 0) == 3)
                stop = true;
        };
        t.setCallbacks(cb);
        EXPECT_EQ(t.train(&stop).status, "stopped");
        EXPECT_TRUE(fs::exists(fs::path(part) / "checkpoint-3" / "adapter_config.json"));
    }
    {
        auto c = config(part);
        c.resume = true;
        dpo::DpoTrainer t(c);
        EXPECT_EQ(t.train().status, "completed");
    }
    const auto a = readMetrics(full), b = readMetrics(part);
    ASSERT_EQ(a.size(), 6u);
    ASSERT_EQ(b.size(), 6u);
    for (size_t i = 0; i < a.size(); ++i)
        for (const char *k : { "loss", "grad_norm", "rewards/margins" })
            EXPECT_NEAR(a[i][k].get<double>(), b[i][k].get<double>(), 1e-6) << "step " << i + 1 << " " << k;
    // The final adapters are the same tensors.
    auto fa = dpo::SafetensorsFile::open(full + "/final/adapter_model.safetensors");
    auto fb = dpo::SafetensorsFile::open(part + "/final/adapter_model.safetensors");
    for (const auto &name : fa.names())
        EXPECT_LT((fa.tensor(name) - fb.tensor(name)).abs().max().item<double>(), 1e-6) << name;
    fs::remove_all(full);
    fs::remove_all(part);
}

// An adapter folder as the model continues that adapter with its own settings (rsLoRA here, though
// the second config leaves it off); merge_final writes a merged model that scores as the adapter does.
TEST(LoraTrainer, ContinuesAnAdapterWithItsOwnSettingsAndMergesFinal)
{
    const std::string b = tempDir("cont_b");
    {
        auto c = loraConfig("llama-gqa", b);
        c.maxSteps = 2;
        c.useRslora = true;
        c.mergeFinal = true;
        dpo::DpoTrainer t(c);
        t.train();
    }
    const std::string b2 = tempDir("cont_b2");
    {
        auto c = loraConfig("llama-gqa", b2);
        c.model = b + "/final";
        c.method = "full"; // an adapter folder makes it LoRA
        c.maxSteps = 1;
        dpo::DpoTrainer t(c);
        t.train();
        EXPECT_EQ(t.config().method, "lora");
        EXPECT_TRUE(t.config().useRslora);
    }
    EXPECT_EQ(dpotest::readJson(b + "/final/adapter_config.json").at("use_rslora"), true);
    EXPECT_EQ(dpotest::readJson(b2 + "/final/adapter_config.json").at("use_rslora"), true);
    ASSERT_TRUE(fs::exists(b + "/final-merged/model.safetensors"));
    auto tok = dpo::loadTokenizer(b + "/final");
    auto adapterModel = dpo::loadCausalLM(b + "/final");
    auto merged = dpo::loadCausalLM(b + "/final-merged");
    const auto pairsFile = dpotest::fixture("llama-gqa/pairs.jsonl");
    const auto withAdapter = rowLogps(*adapterModel, *tok, pairsFile);
    EXPECT_LT((withAdapter - rowLogps(*merged, *tok, pairsFile)).abs().max().item<double>(), 2e-3);
    {
        dpo::LoraDisabledScope off(*adapterModel);
        EXPECT_GT((withAdapter - rowLogps(*adapterModel, *tok, pairsFile)).abs().max().item<double>(), 1e-3);
    }
    fs::remove_all(b);
    fs::remove_all(b2);
}

TEST(LoraTrainer, ContinuedRunStartsWhereTheFirstStopped)
{
    const std::string a = tempDir("cont3");
    {
        auto c = loraConfig("llama-gqa", a);
        c.maxSteps = 3;
        dpo::DpoTrainer t(c);
        t.train();
    }
    const std::string b = tempDir("cont2");
    {
        auto c = loraConfig("llama-gqa", b);
        c.maxSteps = 2;
        dpo::DpoTrainer t(c);
        t.train();
    }
    const std::string b2 = tempDir("cont2b");
    {
        auto c = loraConfig("llama-gqa", b2);
        c.model = b + "/final";
        c.maxSteps = 1;
        dpo::DpoTrainer t(c);
        t.train();
    }
    const auto ma = readMetrics(a), mb = readMetrics(b2);
    ASSERT_EQ(ma.size(), 3u);
    ASSERT_EQ(mb.size(), 1u);
    for (const char *k : { "loss", "rewards/chosen", "rewards/rejected", "grad_norm" })
        EXPECT_NEAR(mb[0][k].get<double>(), ma[2][k].get<double>(), 1e-5) << k;
    fs::remove_all(a);
    fs::remove_all(b);
    fs::remove_all(b2);
}

TEST(LoraTrainer, RefusedCombinationsSaySo)
{
    struct Case {
        std::function<void(dpo::TrainConfig &)> set;
        const char *expect;
    };
    const std::vector<Case> cases = {
        { [](dpo::TrainConfig &c) { c.syncRefModel = true; }, "sync_ref_model" },
        { [](dpo::TrainConfig &c) { c.method = "qlora"; }, "method" },
        { [](dpo::TrainConfig &c) { c.loraR = 0; }, "lora_r" },
        { [](dpo::TrainConfig &c) { c.loraDropout = 1.0; }, "lora_dropout" },
        { [](dpo::TrainConfig &c) { c.loraTargetModules = { "attn" }; }, "lora_target_modules" },
        { [](dpo::TrainConfig &c) {
             c.method = "full";
             c.mergeFinal = true;
         },
            "merge_final" },
        { [](dpo::TrainConfig &c) { c.baseModel = dpotest::fixture("llama-gqa/ref"); }, "base_model" },
    };
    for (const auto &k : cases) {
        const std::string out = tempDir("refused");
        auto c = loraConfig("llama-gqa", out);
        k.set(c);
        dpo::DpoTrainer t(c);
        try {
            t.train();
            ADD_FAILURE() << k.expect << " was accepted";
        } catch (const dpo::Error &e) {
            EXPECT_NE(std::string(e.what()).find(k.expect), std::string::npos) << e.what();
        }
        fs::remove_all(out);
    }
}

TEST(LoraTrainer, TrDpoWithAnExplicitReferenceSyncsTheMergedPolicy)
{
    const std::string out = tempDir("trdpo");
    auto c = loraConfig("llama-gqa", out);
    c.refModel = dpotest::fixture("llama-gqa/ref");
    c.syncRefModel = true;
    c.refModelSyncSteps = 2;
    c.refModelMixupAlpha = 1.0;
    dpo::DpoTrainer t(c);
    EXPECT_EQ(t.train().status, "completed");
    // Alpha 1: after the step-4 sync the reference is the merged policy of step 4.
    auto ref = dpo::SafetensorsFile::open(out + "/checkpoint-4/ref_model.safetensors");
    auto policy = dpo::loadCausalLM(out + "/final");
    const auto merged = policy->lora->mergedStateDict();
    for (const auto &[name, w] : merged)
        EXPECT_LT((ref.tensor(name) - w).abs().max().item<double>(), 1e-6) << name;
    fs::remove_all(out);
}

TEST(TrainConfig, LoraKeysRoundTripThroughJson)
{
    const json j = { { "model", "m" }, { "dataset", "d" }, { "output_dir", "o" }, { "use_lora", true },
        { "lora_r", 16 }, { "lora_alpha", 32 }, { "lora_dropout", 0.05 }, { "lora_target_modules", "q_proj,v_proj" },
        { "use_rslora", true }, { "merge_final", true } };
    auto c = dpo::TrainConfig::fromJson(j, "preset.json");
    EXPECT_TRUE(c.useLora());
    EXPECT_EQ(c.loraR, 16);
    EXPECT_EQ(c.loraTargetModules, (std::vector<std::string> { "q_proj", "v_proj" }));
    c.validate();
    auto back = dpo::TrainConfig::fromJson(c.toJson(), "round trip");
    EXPECT_EQ(back.toJson(), c.toJson());
    EXPECT_DOUBLE_EQ(back.loraConfig().scaling(), 32.0 / std::sqrt(16.0)); // rsLoRA
}

} // namespace test_lora
