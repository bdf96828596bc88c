// Model loading and saving in the Hugging Face layout: fixture models load tensor-for-tensor,
// savePretrained -> loadCausalLM round trips exactly (float32, bf16, sharded), GPT-2 name variants,
// and checkpoints that do not fit the config are refused naming the tensor and file.
#include "engine/models/causal_lm.h"
#include "engine/error.h"
#include "engine/io/safetensors.h"

#include "test_util.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>

namespace test_model_io { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

namespace fs = std::filesystem;

namespace {

struct TempDir {
    fs::path path;
    TempDir()
    {
        char tmpl[] = "/tmp/dpo_io_XXXXXX";
        path = mkdtemp(tmpl);
    }
    ~TempDir() { fs::remove_all(path); }
    std::string sub(const std::string &name) const { return (path / name).string(); }
};

void expectSameState(dpo::CausalLM &a, dpo::CausalLM &b)
{
    auto sa = a.stateDict();
    auto sb = b.stateDict();
    ASSERT_EQ(sa.size(), sb.size());
    for (const auto &kv : sa) {
        ASSERT_TRUE(sb.count(kv.first)) << kv.first;
        EXPECT_EQ(kv.second.scalar_type(), sb[kv.first].scalar_type()) << kv.first;
        EXPECT_TRUE(torch::equal(kv.second, sb[kv.first])) << kv.first;
    }
}

std::string errorOf(const std::function<void()> &f)
{
    try {
        f();
    } catch (const dpo::Error &e) {
        return e.what();
    }
    return {};
}

bool onlyEntryIs(const fs::path &parent, const std::string &name)
{
    for (const auto &e : fs::directory_iterator(parent))
        if (e.path().filename() != name)
            return false;
    return true;
}

} // namespace

TEST(ModelIO, LlamaFixtureLoadsTensorForTensor)
{
    const std::string dir = dpotest::fixture("llama-gqa/ref");
    auto model = dpo::loadCausalLM(dir);
    const auto file = dpo::loadSafetensorsWeights(dir);
    const auto state = model->stateDict();
    EXPECT_EQ(state.size(), file.size());
    int64_t numel = 0;
    for (const auto &kv : file) {
        ASSERT_TRUE(state.count(kv.first)) << kv.first;
        EXPECT_TRUE(torch::equal(state.at(kv.first), kv.second)) << kv.first;
        numel += kv.second.numel();
    }
    EXPECT_EQ(model->parameterCount(), numel);
    EXPECT_FALSE(model->is_training());

    // Loaded weights give the reference logits (the end-to-end proof that names map right).
    auto ref = dpo::SafetensorsFile::open(dpotest::fixture("llama-gqa/logits.safetensors"));
    const auto ids = ref.tensor("input_ids");
    const auto mask = ref.tensor("attention_mask");
    torch::NoGradGuard ng;
    const auto logits = model->forward(ids, mask);
    const auto real = mask.to(torch::kBool).unsqueeze(-1).expand_as(logits);
    const double err = (logits - ref.tensor("logits")).abs().masked_select(real).max().item<double>();
    EXPECT_LT(err, 2e-4);
}

// Loading builds the parameters in place: in the requested dtype from the start and without the random
// init the checkpoint would overwrite (no draw from the generator), for both model classes; the loaded
// weights are the file's, converted once.
TEST(ModelIO, LoadsInPlaceWithoutRandomInit)
{
    for (const char *name : { "llama-gqa/ref", "gpt2/ref" }) {
        SCOPED_TRACE(name);
        const std::string dir = dpotest::fixture(name);
        for (const auto dtype : { torch::kFloat32, torch::kBFloat16 }) {
            torch::manual_seed(11);
            const auto expectedDraw = torch::randn({ 4 });
            torch::manual_seed(11);
            auto model = dpo::loadCausalLM(dir, torch::kCPU, dtype);
            EXPECT_TRUE(torch::equal(torch::randn({ 4 }), expectedDraw)) << "loading drew random numbers";
            const auto file = dpo::loadSafetensorsWeights(dir);
            for (const auto &kv : model->stateDict()) {
                EXPECT_EQ(kv.second.scalar_type(), dtype) << kv.first;
                ASSERT_TRUE(file.count(kv.first)) << kv.first;
                EXPECT_TRUE(torch::equal(kv.second, file.at(kv.first).to(dtype))) << kv.first;
            }
        }
    }
    // A model built to be trained from scratch still gets its family's init.
    auto config = dpo::ModelConfig::fromDirectory(dpotest::fixture("llama-gqa/ref"));
    torch::manual_seed(11);
    auto fresh = dpo::createCausalLM(config);
    for (const auto &kv : fresh->stateDict())
        if (kv.first.find("proj") != std::string::npos)
            EXPECT_GT(kv.second.std().item<double>(), 0.0) << kv.first;
}

TEST(ModelIO, SavePretrainedRoundTrip)
{
    const std::string src = dpotest::fixture("llama-gqa/ref");
    auto model = dpo::loadCausalLM(src);
    TempDir tmp;
    const std::string out = tmp.sub("saved");
    dpo::savePretrained(*model, out, src);

    for (const char *f :
        { "config.json", "generation_config.json", "model.safetensors", "tokenizer.model", "tokenizer_config.json" })
        EXPECT_TRUE(fs::exists(fs::path(out) / f)) << f;
    EXPECT_TRUE(onlyEntryIs(tmp.path, "saved")) << "temporary folders left behind";
    // config.json keeps every original field and value; generation_config.json the token ids.
    const auto orig = dpotest::readJson(src + "/config.json");
    const auto saved = dpotest::readJson(out + "/config.json");
    for (auto it = orig.begin(); it != orig.end(); ++it)
        EXPECT_EQ(saved.at(it.key()), it.value()) << it.key();
    const auto gen = dpotest::readJson(out + "/generation_config.json");
    EXPECT_EQ(gen["bos_token_id"], orig["bos_token_id"]);
    EXPECT_EQ(gen["eos_token_id"], orig["eos_token_id"]);
    auto f = dpo::SafetensorsFile::open(out + "/model.safetensors");
    EXPECT_EQ(f.metadata().at("format"), "pt");

    auto again = dpo::loadCausalLM(out);
    expectSameState(*model, *again);

    // Saving again over an existing folder replaces it whole (sharded this time).
    dpo::savePretrained(*again, out, src, 100 * 1000);
    EXPECT_FALSE(fs::exists(out + "/model.safetensors"));
    EXPECT_TRUE(onlyEntryIs(tmp.path, "saved"));
}

TEST(ModelIO, ShardedSaveReloadsIdentically)
{
    const std::string src = dpotest::fixture("llama-gqa/ref");
    auto model = dpo::loadCausalLM(src);
    TempDir tmp;
    const std::string out = tmp.sub("sharded");
    const int64_t limit = 200 * 1000; // the fixture has ~876 KB of weights
    dpo::savePretrained(*model, out, {}, limit);
    EXPECT_FALSE(fs::exists(out + "/model.safetensors"));
    EXPECT_FALSE(fs::exists(out + "/tokenizer.model")) << "no tokenizer folder was given";
    const auto index = dpotest::readJson(out + "/model.safetensors.index.json");
    const auto &wm = index["weight_map"];
    EXPECT_EQ(wm.size(), model->stateDict().size());
    std::set<std::string> shards;
    for (auto it = wm.begin(); it != wm.end(); ++it)
        shards.insert(it.value().get<std::string>());
    ASSERT_GT(shards.size(), 2u);
    const std::string n = std::to_string(shards.size());
    EXPECT_EQ(*shards.begin(), "model-00001-of-0000" + n + ".safetensors");
    int64_t total = 0;
    for (const auto &s : shards) {
        ASSERT_TRUE(fs::exists(out + "/" + s)) << s;
        auto f = dpo::SafetensorsFile::open(out + "/" + s);
        int64_t bytes = 0;
        for (const auto &name : f.names())
            bytes += f.tensor(name).nbytes();
        total += bytes;
        // Only a single tensor larger than the limit may exceed it.
        if (f.names().size() > 1)
            EXPECT_LE(bytes, limit) << s;
    }
    EXPECT_EQ(index["metadata"]["total_size"].get<int64_t>(), total);
    auto again = dpo::loadCausalLM(out);
    expectSameState(*model, *again);
}

TEST(ModelIO, Bf16SaveAndLoad)
{
    const std::string src = dpotest::fixture("llama-gqa/ref");
    auto model = dpo::loadCausalLM(src);
    TempDir tmp;
    const std::string out = tmp.sub("bf16");
    dpo::savePretrained(*model, out, src, int64_t(5) << 30, torch::kBFloat16);
    EXPECT_EQ(dpotest::readJson(out + "/config.json")["dtype"], "bfloat16");
    auto f = dpo::SafetensorsFile::open(out + "/model.safetensors");
    for (const auto &name : f.names())
        EXPECT_EQ(f.entry(name).dtypeName, "BF16") << name;

    // Loaded in float32: exactly the rounded weights. Loaded in bf16: bf16 parameters.
    auto f32 = dpo::loadCausalLM(out);
    const auto orig = model->stateDict();
    for (const auto &kv : f32->stateDict()) {
        EXPECT_EQ(kv.second.scalar_type(), torch::kFloat32);
        EXPECT_TRUE(torch::equal(kv.second, orig.at(kv.first).to(torch::kBFloat16).to(torch::kFloat32))) << kv.first;
    }
    auto b16 = dpo::loadCausalLM(src, torch::kCPU, torch::kBFloat16);
    for (const auto &kv : b16->stateDict())
        EXPECT_EQ(kv.second.scalar_type(), torch::kBFloat16) << kv.first;
    // A bf16 model saves as bf16 unless told otherwise.
    const std::string out2 = tmp.sub("bf16-again");
    dpo::savePretrained(*b16, out2);
    EXPECT_EQ(dpotest::readJson(out2 + "/config.json")["dtype"], "bfloat16");
    auto again = dpo::loadCausalLM(out2, torch::kCPU, torch::kBFloat16);
    expectSameState(*b16, *again);
}

TEST(ModelIO, Gpt2TiedAndUnprefixedNames)
{
    const std::string src = dpotest::fixture("gpt2/ref");
    auto model = dpo::loadCausalLM(src);
    const auto file = dpo::loadSafetensorsWeights(src);
    auto state = model->stateDict();
    EXPECT_FALSE(state.count("lm_head.weight")) << "the tied head must not be saved";
    EXPECT_EQ(state.size(), file.size());
    for (const auto &kv : file)
        EXPECT_TRUE(state.count(kv.first) && torch::equal(state.at(kv.first), kv.second)) << kv.first;

    // GPT2Model-style names (no "transformer." prefix) and the old attention-mask buffers load too.
    std::map<std::string, torch::Tensor> bare;
    for (const auto &kv : file)
        bare[kv.first.substr(std::string("transformer.").size())] = torch::zeros_like(kv.second);
    bare["h.0.attn.bias"] = torch::ones({ 1, 1, 4, 4 });
    bare["h.0.attn.masked_bias"] = torch::tensor(-1e4);
    model->loadStateDict(bare, "bare.safetensors");
    for (const auto &kv : model->stateDict())
        EXPECT_EQ(kv.second.abs().sum().item<double>(), 0.0) << kv.first;
    model->loadStateDict(file, "file");
    expectSameState(*model, *dpo::loadCausalLM(src));

    TempDir tmp;
    dpo::savePretrained(*model, tmp.sub("gpt2"), src);
    for (const char *f : { "vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json" })
        EXPECT_TRUE(fs::exists(tmp.path / "gpt2" / f)) << f;
    expectSameState(*model, *dpo::loadCausalLM(tmp.sub("gpt2")));
}

TEST(ModelIO, TiedLlamaLoadsWithOrWithoutHead)
{
    auto config = dpo::ModelConfig::fromDirectory(dpotest::fixture("llama-gqa/ref"));
    config.tieWordEmbeddings = true;
    auto model = dpo::createCausalLM(config);
    auto weights = dpo::loadSafetensorsWeights(dpotest::fixture("llama-gqa/ref"));
    model->loadStateDict(weights, "with-head"); // a stored head is ignored when tied
    weights.erase("lm_head.weight");
    model->loadStateDict(weights, "without-head");
    const auto state = model->stateDict();
    EXPECT_FALSE(state.count("lm_head.weight"));
    EXPECT_EQ(model->parameterCount(), model->parameterCount()); // stable
    int64_t numel = 0;
    for (const auto &kv : weights)
        numel += kv.second.numel();
    EXPECT_EQ(model->parameterCount(), numel);
    // The head really is the embedding.
    torch::NoGradGuard ng;
    const auto h = torch::randn({ 1, 2, config.hiddenSize });
    EXPECT_TRUE(
        torch::allclose(model->lmHead(h), torch::matmul(h, weights.at("model.embed_tokens.weight").t()), 1e-5, 1e-5));
}

TEST(ModelIO, MismatchedCheckpointsNameTensorAndFile)
{
    const std::string src = dpotest::fixture("llama-gqa/ref");
    auto model = dpo::loadCausalLM(src);
    auto weights = dpo::loadSafetensorsWeights(src);

    auto missing = weights;
    missing.erase("model.layers.1.mlp.up_proj.weight");
    std::string msg = errorOf([&] { model->loadStateDict(missing, "ckpt.safetensors"); });
    EXPECT_NE(msg.find("model.layers.1.mlp.up_proj.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("ckpt.safetensors"), std::string::npos) << msg;

    auto wrongShape = weights;
    wrongShape["model.norm.weight"] = torch::ones({ 65 });
    msg = errorOf([&] { model->loadStateDict(wrongShape, "ckpt.safetensors"); });
    EXPECT_NE(msg.find("model.norm.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[65]"), std::string::npos) << msg;

    auto extra = weights;
    extra["model.layers.2.mlp.up_proj.weight"] = torch::ones({ 2 });
    msg = errorOf([&] { model->loadStateDict(extra, "ckpt.safetensors"); });
    EXPECT_NE(msg.find("model.layers.2.mlp.up_proj.weight"), std::string::npos) << msg;

    // Known buffers are ignored.
    auto buffers = weights;
    buffers["model.layers.0.self_attn.rotary_emb.inv_freq"] = torch::ones({ 8 });
    EXPECT_NO_THROW(model->loadStateDict(buffers, "ckpt.safetensors"));

    // A folder whose config does not match its weights fails naming the weights file.
    TempDir tmp;
    const fs::path bad = tmp.path / "bad";
    fs::create_directories(bad);
    fs::copy_file(src + "/model.safetensors", bad / "model.safetensors");
    auto cfg = dpotest::readJson(src + "/config.json");
    cfg["intermediate_size"] = 128;
    std::ofstream(bad / "config.json") << cfg.dump();
    msg = errorOf([&] { dpo::loadCausalLM(bad.string()); });
    EXPECT_NE(msg.find((bad / "model.safetensors").string()), std::string::npos) << msg;
    EXPECT_NE(msg.find("mlp"), std::string::npos) << msg;

    // Saving where the parent is a file fails cleanly.
    std::ofstream(tmp.path / "afile") << "x";
    EXPECT_THROW(dpo::savePretrained(*model, (tmp.path / "afile" / "out").string()), dpo::Error);
}

} // namespace test_model_io
