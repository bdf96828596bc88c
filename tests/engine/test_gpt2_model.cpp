// GPT-2 against the gpt2 fixture: logits of a right-padded batch, completion log-probs of the
// reference and the second ("other") model, greedy continuations; KV-cache and left-padding
// consistency; the HF parameter names and layout; refusal of unsupported config options.
#include "engine/models/causal_lm.h"
#include "engine/error.h"
#include "engine/generation/generation.h"
#include "engine/models/gpt2_model.h"
#include "engine/training/logprobs.h"
#include "engine/models/model_config.h"
#include "engine/io/safetensors.h"
#include "engine/tokenizers/tokenizer.h"
#include "test_util.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <unistd.h>

namespace test_gpt2_model { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const std::string kRef = "gpt2/ref";
const std::string kOther = "gpt2/other";

std::shared_ptr<dpo::CausalLM> load(const std::string &rel)
{
    auto model = dpo::loadCausalLM(dpotest::fixture(rel));
    model->eval();
    return model;
}

json expected()
{
    return dpotest::readJson(dpotest::fixture("gpt2/expected.json"));
}

std::vector<int64_t> idsOf(const json &j)
{
    return j.get<std::vector<int64_t>>();
}

// Right-padded [N, T] batch of prompt+completion rows and the completion mask, for one side.
struct Batch {
    torch::Tensor ids, attention, completion;
};

Batch buildBatch(const json &examples, const std::string &side)
{
    std::vector<std::vector<int64_t>> rows;
    std::vector<size_t> promptLens;
    size_t T = 0;
    for (const auto &ex : examples) {
        std::vector<int64_t> row = idsOf(ex["prompt_ids"]);
        promptLens.push_back(row.size());
        for (int64_t id : idsOf(ex[side + "_ids"]))
            row.push_back(id);
        T = std::max(T, row.size());
        rows.push_back(std::move(row));
    }
    const int64_t N = int64_t(rows.size());
    Batch b;
    b.ids = torch::zeros({ N, int64_t(T) }, torch::kInt64);
    b.attention = torch::zeros({ N, int64_t(T) }, torch::kInt64);
    b.completion = torch::zeros({ N, int64_t(T) }, torch::kInt64);
    for (int64_t i = 0; i < N; ++i) {
        for (size_t t = 0; t < rows[size_t(i)].size(); ++t) {
            b.ids[i][int64_t(t)] = rows[size_t(i)][t];
            b.attention[i][int64_t(t)] = 1;
            b.completion[i][int64_t(t)] = t >= promptLens[size_t(i)] ? 1 : 0;
        }
    }
    return b;
}

void expectNear(const torch::Tensor &got, const json &want, double tol, const std::string &what)
{
    ASSERT_EQ(got.numel(), int64_t(want.size())) << what;
    auto g = got.to(torch::kFloat64).contiguous();
    for (int64_t i = 0; i < got.numel(); ++i)
        EXPECT_NEAR(g[i].item<double>(), want[size_t(i)].get<double>(), tol) << what << "[" << i << "]";
}

} // namespace

TEST(Gpt2Model, ParametersCarryHuggingFaceNamesAndLayout)
{
    auto model = load(kRef);
    EXPECT_NE(dynamic_cast<dpo::Gpt2Model *>(model.get()), nullptr);
    const auto &c = model->config();
    auto params = model->named_parameters();
    const int64_t n = c.hiddenSize;
    auto shape = [&](const std::string &name) {
        auto *p = params.find(name);
        EXPECT_NE(p, nullptr) << name;
        return p ? p->sizes().vec() : std::vector<int64_t> {};
    };
    EXPECT_EQ(shape("transformer.wte.weight"), (std::vector<int64_t> { c.vocabSize, n }));
    EXPECT_EQ(shape("transformer.wpe.weight"), (std::vector<int64_t> { c.maxPositionEmbeddings, n }));
    EXPECT_EQ(shape("transformer.h.0.ln_1.weight"), (std::vector<int64_t> { n }));
    EXPECT_EQ(shape("transformer.h.0.attn.c_attn.weight"), (std::vector<int64_t> { n, 3 * n })); // Conv1D: [in, out]
    EXPECT_EQ(shape("transformer.h.0.attn.c_attn.bias"), (std::vector<int64_t> { 3 * n }));
    EXPECT_EQ(shape("transformer.h.1.attn.c_proj.weight"), (std::vector<int64_t> { n, n }));
    EXPECT_EQ(shape("transformer.h.1.ln_2.bias"), (std::vector<int64_t> { n }));
    EXPECT_EQ(shape("transformer.h.1.mlp.c_fc.weight"), (std::vector<int64_t> { n, c.intermediateSize }));
    EXPECT_EQ(shape("transformer.h.1.mlp.c_proj.weight"), (std::vector<int64_t> { c.intermediateSize, n }));
    EXPECT_EQ(shape("transformer.ln_f.weight"), (std::vector<int64_t> { n }));
    EXPECT_EQ(params.find("lm_head.weight"), nullptr); // tied to wte
    // Every tensor of the checkpoint is a parameter, and the other way round.
    auto file = dpo::SafetensorsFile::open(dpotest::fixture(kRef + "/model.safetensors"));
    for (const auto &name : file.names())
        EXPECT_NE(params.find(name), nullptr) << name;
    EXPECT_EQ(params.size(), file.names().size());
}

TEST(Gpt2Model, LogitsMatchReference)
{
    auto model = load(kRef);
    auto ref = dpo::SafetensorsFile::open(dpotest::fixture("gpt2/logits.safetensors"));
    auto ids = ref.tensor("input_ids").to(torch::kInt64);
    auto mask = ref.tensor("attention_mask").to(torch::kInt64);
    auto want = ref.tensor("logits").to(torch::kFloat32);
    ASSERT_LT(mask.sum().item<int64_t>(), mask.numel()) << "the fixture batch should contain padding";
    torch::NoGradGuard noGrad;
    auto got = model->forward(ids, mask);
    ASSERT_EQ(got.sizes(), want.sizes());
    auto real = mask.to(torch::kBool);
    const double maxDiff = (got - want).abs().amax(-1).masked_select(real).max().item<double>();
    EXPECT_LT(maxDiff, 2e-4);
}

TEST(Gpt2Model, CompletionLogpsMatchReference)
{
    const json e = expected();
    torch::NoGradGuard noGrad;
    for (const auto &[rel, prefix] :
        { std::pair { kRef, std::string("ref") }, std::pair { kOther, std::string("policy") } }) {
        auto model = load(rel);
        for (const std::string side : { "chosen", "rejected" }) {
            Batch b = buildBatch(e["examples"], side);
            auto lp = dpo::completionLogps(*model, b.ids, b.attention, b.completion);
            expectNear(lp.sum, e["logps"][prefix + "_" + side], 2e-3, prefix + "_" + side);
            expectNear(lp.mean(), e["mean_logps"][prefix + "_" + side], 2e-3, "mean " + prefix + "_" + side);
        }
    }
}

TEST(Gpt2Model, GreedyMatchesReference)
{
    auto model = load(kRef);
    const json e = expected();
    ASSERT_FALSE(e["greedy"].empty());
    for (const auto &g : e["greedy"]) {
        dpo::GenerationOptions opts;
        opts.greedy = true;
        opts.maxNewTokens = int(g["new_ids"].size());
        opts.stopAtEos = false; // the reference treats EOS as an ordinary token
        EXPECT_EQ(dpo::generate(*model, idsOf(g["prompt_ids"]), opts), idsOf(g["new_ids"]));
    }
}

TEST(Gpt2Model, KvCacheAndLeftPaddingAgreeWithFullForward)
{
    auto model = load(kRef);
    torch::NoGradGuard noGrad;
    auto ids = torch::tensor(idsOf(expected()["examples"][1]["prompt_ids"]), torch::kInt64).unsqueeze(0); // [1, T]
    const int64_t T = ids.size(1);
    auto full = model->forward(ids); // [1, T, V]

    // Prefix, then the rest in one step with an offset, then one token at a time.
    dpo::KVCache cache;
    auto a = model->forward(ids.slice(1, 0, 2), {}, &cache);
    auto b = model->forward(ids.slice(1, 2, T - 1), {}, &cache);
    auto c = model->forward(ids.slice(1, T - 1, T), {}, &cache);
    auto stepped = torch::cat({ a, b, c }, 1);
    EXPECT_LT((stepped - full).abs().max().item<double>(), 1e-4);

    // The same prompt left-padded by 3 inside a batch: same logits at the real positions.
    auto padded = torch::cat({ torch::zeros({ 1, 3 }, torch::kInt64), ids }, 1);
    auto mask = torch::cat({ torch::zeros({ 1, 3 }, torch::kInt64), torch::ones({ 1, T }, torch::kInt64) }, 1);
    auto left = model->forward(padded, mask).slice(1, 3);
    EXPECT_LT((left - full).abs().max().item<double>(), 1e-4);
}

TEST(Gpt2Model, RefusesUnsupportedOptions)
{
    json cfg = dpotest::readJson(dpotest::fixture(kRef + "/config.json"));
    for (const char *field : { "reorder_and_upcast_attn", "scale_attn_by_inverse_layer_idx" }) {
        json c = cfg;
        c[field] = true;
        try {
            auto config = dpo::ModelConfig::fromJson(c, "config.json");
            dpo::createCausalLM(config);
            FAIL() << field << " = true was accepted";
        } catch (const dpo::Error &e) {
            EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
        }
    }
    // Longer than n_positions: a clear error, not an index failure deep in libtorch.
    auto model = load(kRef);
    torch::NoGradGuard noGrad;
    EXPECT_THROW(
        model->forward(torch::zeros({ 1, model->config().maxPositionEmbeddings + 1 }, torch::kInt64)), dpo::Error);
}

namespace {

struct TempDir {
    fs::path path;
    TempDir()
    {
        path = fs::temp_directory_path()
            / ("dpo_gpt2_test_" + std::to_string(::getpid()) + "_" + std::to_string(std::rand()));
        fs::create_directories(path);
    }
    ~TempDir() { fs::remove_all(path); }
};

torch::Tensor fixtureLogits(dpo::CausalLM &model)
{
    auto ref = dpo::SafetensorsFile::open(dpotest::fixture("gpt2/logits.safetensors"));
    torch::NoGradGuard noGrad;
    return model.forward(ref.tensor("input_ids").to(torch::kInt64), ref.tensor("attention_mask").to(torch::kInt64));
}

} // namespace

TEST(Gpt2Model, SavePretrainedRoundTripReloadsIdentically)
{
    auto model = load(kOther);
    TempDir dir;
    dpo::savePretrained(*model, dir.path.string(), dpotest::fixture(kOther));
    // Same tensor names and shapes as the transformers checkpoint (Conv1D layout kept, head not duplicated).
    auto src = dpo::SafetensorsFile::open(dpotest::fixture(kOther + "/model.safetensors"));
    auto saved = dpo::SafetensorsFile::open((dir.path / "model.safetensors").string());
    EXPECT_EQ(saved.names().size(), src.names().size());
    for (const auto &name : src.names()) {
        ASSERT_TRUE(saved.contains(name)) << name;
        EXPECT_EQ(saved.entry(name).shape, src.entry(name).shape) << name;
        EXPECT_TRUE(torch::equal(saved.tensor(name), src.tensor(name))) << name;
    }
    const json cfg = dpotest::readJson((dir.path / "config.json").string());
    EXPECT_EQ(cfg["model_type"], "gpt2");
    EXPECT_EQ(cfg["n_embd"], model->config().hiddenSize);
    auto reloaded = dpo::loadCausalLM(dir.path.string());
    reloaded->eval();
    EXPECT_TRUE(torch::equal(fixtureLogits(*reloaded), fixtureLogits(*model)));
    auto tok = dpo::loadTokenizer(dir.path.string());
    EXPECT_EQ(tok->kind(), "byte-level BPE");
}

TEST(Gpt2Model, LoadsCheckpointWithoutTransformerPrefix)
{
    // The original gpt2 on the Hub: GPT2Model names ("h.0.attn.c_attn.weight", "wte.weight") plus
    // the causal-mask buffers "h.N.attn.bias".
    TempDir dir;
    auto src = dpo::SafetensorsFile::open(dpotest::fixture(kRef + "/model.safetensors"));
    std::map<std::string, torch::Tensor> stripped;
    const std::string prefix = "transformer.";
    for (const auto &name : src.names())
        stripped[name.rfind(prefix, 0) == 0 ? name.substr(prefix.size()) : name] = src.tensor(name);
    const json cfgJson = dpotest::readJson(dpotest::fixture(kRef + "/config.json"));
    const int64_t P = cfgJson["n_positions"];
    for (int i = 0; i < int(cfgJson["n_layer"]); ++i)
        stripped["h." + std::to_string(i) + ".attn.bias"] = torch::ones({ P, P }).tril().view({ 1, 1, P, P });
    dpo::saveSafetensors((dir.path / "model.safetensors").string(), stripped);
    fs::copy_file(dpotest::fixture(kRef + "/config.json"), dir.path / "config.json");
    auto model = dpo::loadCausalLM(dir.path.string());
    model->eval();
    EXPECT_TRUE(torch::equal(fixtureLogits(*model), fixtureLogits(*load(kRef))));
}

TEST(Gpt2Model, DpoCliGenerateMatchesGreedyReference)
{
    const json e = expected();
    // greedy[0] continues examples[0]'s prompt.
    ASSERT_EQ(e["greedy"][0]["prompt_ids"], e["examples"][0]["prompt_ids"]);
    const std::string cmd = dpotest::cliPath() + " generate --model '" + dpotest::fixture(kRef) + "' --prompt '"
        + e["examples"][0]["prompt"].get<std::string>() + "' --greedy --ignore-eos --max-new-tokens "
        + std::to_string(e["greedy"][0]["new_ids"].size()) + " --device cpu";
    const auto r = dpotest::runCommand(cmd);
    ASSERT_EQ(r.exitCode, 0) << r.err;
    const json out = json::parse(r.out);
    EXPECT_EQ(out["ids"], e["greedy"][0]["new_ids"]);
    auto tok = dpo::loadTokenizer(dpotest::fixture(kRef));
    EXPECT_EQ(out["text"], tok->decode(idsOf(e["greedy"][0]["new_ids"])));
}

} // namespace test_gpt2_model
