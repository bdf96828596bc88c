// Gemma3ForConditionalGeneration checkpoints: the gemma3-text fixture rewritten into the multimodal
// wrapper's layout (config nested under text_config, text weights under language_model.model.* as
// transformers < 4.52 saved them or model.language_model.* as later versions do, plus a vision
// tensor) loads the text model with the same logits as the plain gemma3_text load, and saving writes
// back the names and config it came with, the vision tensor included.
#include "engine/models/causal_lm.h"
#include "engine/error.h"
#include "engine/io/safetensors.h"

#include "test_util.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <unistd.h>

namespace test_gemma3_wrapper { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

class TempDir {
public:
    TempDir()
    {
        static int counter = 0;
        m_path = fs::temp_directory_path()
            / ("dpo_gemma3_wrapper_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
        fs::create_directories(m_path);
    }
    ~TempDir() { fs::remove_all(m_path); }
    std::string path() const { return m_path.string(); }
    std::string sub(const std::string &name) const { return (m_path / name).string(); }

private:
    fs::path m_path;
};

std::set<std::string> names(const std::map<std::string, torch::Tensor> &m)
{
    std::set<std::string> out;
    for (const auto &kv : m)
        out.insert(kv.first);
    return out;
}

// Writes the fixture as a Gemma3ForConditionalGeneration folder; returns the tensors written.
std::map<std::string, torch::Tensor> writeWrapper(const std::string &dir, bool legacyNames)
{
    const std::string src = dpotest::fixture("gemma3-text/other");
    json text = dpotest::readJson(src + "/config.json");
    text.erase("architectures");
    text.erase("torch_dtype");
    text.erase("eos_token_id");
    const json top = { { "architectures", { "Gemma3ForConditionalGeneration" } }, { "model_type", "gemma3" },
        { "text_config", text }, { "vision_config", { { "model_type", "siglip_vision_model" } } },
        { "image_token_index", 999 }, { "eos_token_id", 2 }, { "torch_dtype", "bfloat16" } };
    fs::create_directories(dir);
    std::ofstream(dir + "/config.json") << top.dump(2);
    std::map<std::string, torch::Tensor> out;
    for (const auto &kv : dpo::loadSafetensorsWeights(src)) {
        const std::string rest = kv.first.substr(std::string("model.").size());
        EXPECT_EQ(kv.first.rfind("model.", 0), 0u) << kv.first;
        out[(legacyNames ? "language_model.model." : "model.language_model.") + rest] = kv.second;
    }
    torch::manual_seed(0);
    out[legacyNames ? "vision_tower.vision_model.embeddings.patch_embedding.weight"
                    : "model.vision_tower.vision_model.embeddings.patch_embedding.weight"]
        = torch::randn({ 4, 3 }).to(torch::kBFloat16);
    dpo::saveSafetensors(dir + "/model.safetensors", out, { { "format", "pt" } });
    return out;
}

class Gemma3Wrapper : public ::testing::TestWithParam<bool> {};

TEST_P(Gemma3Wrapper, LoadsTheTextModelAndSavesBackUnchanged)
{
    const bool legacy = GetParam();
    TempDir tmp;
    const auto written = writeWrapper(tmp.sub("in"), legacy);

    auto plain = dpo::loadCausalLM(dpotest::fixture("gemma3-text/other"));
    auto wrapped = dpo::loadCausalLM(tmp.sub("in"));
    EXPECT_TRUE(wrapped->config().isMultimodalWrapper());
    EXPECT_EQ(wrapped->config().modelType, "gemma3_text");
    EXPECT_EQ(wrapped->config().architecture, "Gemma3ForConditionalGeneration");
    EXPECT_EQ(wrapped->passthroughTensors.size(), 1u);

    const auto ids = torch::tensor({ { 1, 5, 17, 300, 42, 7, 9, 11 } }, torch::kLong);
    torch::NoGradGuard noGrad;
    const auto expected = plain->forward(ids);
    EXPECT_TRUE(torch::equal(wrapped->forward(ids), expected));

    dpo::savePretrained(*wrapped, tmp.sub("out"));
    const auto saved = dpo::loadSafetensorsWeights(tmp.sub("out"));
    EXPECT_EQ(names(saved), names(written));
    for (const auto &kv : written)
        EXPECT_TRUE(torch::equal(saved.at(kv.first).to(torch::kFloat32), kv.second.to(torch::kFloat32))) << kv.first;

    const json in = dpotest::readJson(tmp.sub("in") + "/config.json");
    const json out = dpotest::readJson(tmp.sub("out") + "/config.json");
    EXPECT_EQ(out["model_type"], "gemma3");
    EXPECT_EQ(out["architectures"], in["architectures"]);
    EXPECT_EQ(out["vision_config"], in["vision_config"]);
    EXPECT_EQ(out["image_token_index"], 999);
    EXPECT_EQ(out["text_config"], in["text_config"]); // no key added, none changed
    EXPECT_EQ(out["eos_token_id"], 2);
    EXPECT_EQ(out["torch_dtype"], "float32");

    auto reloaded = dpo::loadCausalLM(tmp.sub("out"));
    EXPECT_TRUE(torch::equal(reloaded->forward(ids), expected));
    EXPECT_EQ(reloaded->checkpointLayout, wrapped->checkpointLayout);
}

INSTANTIATE_TEST_SUITE_P(Layouts, Gemma3Wrapper, ::testing::Values(true, false),
    [](const ::testing::TestParamInfo<bool> &i) { return i.param ? "LanguageModelModel" : "ModelLanguageModel"; });

TEST(Gemma3WrapperConfig, TextConfigDefaultsAndRefusals)
{
    // gemma-3-4b's text_config leaves the head counts and vocabulary to Gemma3TextConfig's defaults.
    const json top = { { "architectures", { "Gemma3ForConditionalGeneration" } }, { "model_type", "gemma3" },
        { "text_config",
            { { "hidden_size", 2560 }, { "intermediate_size", 10240 }, { "model_type", "gemma3_text" },
                { "num_hidden_layers", 34 }, { "sliding_window", 1024 } } } };
    const auto c = dpo::ModelConfig::fromJson(top, "config.json");
    EXPECT_EQ(c.numHeads, 8);
    EXPECT_EQ(c.numKvHeads, 4);
    EXPECT_EQ(c.headDim, 256);
    EXPECT_EQ(c.vocabSize, 262208);
    EXPECT_TRUE(c.tieWordEmbeddings);
    EXPECT_EQ(c.toJson()["text_config"], top["text_config"]);

    EXPECT_THROW(dpo::ModelConfig::fromJson(json { { "model_type", "gemma3" } }, "config.json"), dpo::Error);
}

} // namespace

} // namespace test_gemma3_wrapper
