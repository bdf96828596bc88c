// ModelConfig: the fixture configs, the variants real checkpoints show (rope_theta placement,
// Qwen2 biases, MQA, generation_config.json), and configs that must be refused naming the field.
#include "engine/error.h"
#include "engine/models/model_config.h"

#include "test_util.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace test_model_config { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct TempDir {
    fs::path path;
    TempDir()
    {
        char tmpl[] = "/tmp/dpo_cfg_XXXXXX";
        path = mkdtemp(tmpl);
    }
    ~TempDir() { fs::remove_all(path); }
    std::string file(const std::string &name) const { return (path / name).string(); }
};

json llamaBase()
{
    return dpotest::readJson(dpotest::fixture("llama-gqa/ref/config.json"));
}

// Expects fromJson to throw a dpo::Error naming `field` and the source.
void expectRefused(const json &j, const std::string &field)
{
    try {
        dpo::ModelConfig::fromJson(j, "test-config.json");
        ADD_FAILURE() << "accepted a config that should be refused for " << field;
    } catch (const dpo::Error &e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find(field), std::string::npos) << "message does not name " << field << ": " << msg;
        EXPECT_NE(msg.find("test-config.json"), std::string::npos) << msg;
    }
}

} // namespace

TEST(ModelConfig, LlamaFixture)
{
    const auto raw = llamaBase();
    const auto c = dpo::ModelConfig::fromDirectory(dpotest::fixture("llama-gqa/ref"));
    EXPECT_EQ(c.modelType, "llama");
    EXPECT_EQ(c.architecture, raw["architectures"][0]);
    EXPECT_EQ(c.vocabSize, raw["vocab_size"]);
    EXPECT_EQ(c.hiddenSize, raw["hidden_size"]);
    EXPECT_EQ(c.intermediateSize, raw["intermediate_size"]);
    EXPECT_EQ(c.numLayers, raw["num_hidden_layers"]);
    EXPECT_EQ(c.numHeads, raw["num_attention_heads"]);
    EXPECT_EQ(c.numKvHeads, raw["num_key_value_heads"]);
    EXPECT_EQ(c.headDim, raw["head_dim"]);
    EXPECT_EQ(c.maxPositionEmbeddings, raw["max_position_embeddings"]);
    EXPECT_DOUBLE_EQ(c.rmsNormEps, raw["rms_norm_eps"].get<double>());
    EXPECT_DOUBLE_EQ(c.ropeTheta, raw["rope_parameters"]["rope_theta"].get<double>());
    EXPECT_FALSE(c.attentionBias);
    EXPECT_FALSE(c.oProjBias);
    EXPECT_FALSE(c.mlpBias);
    EXPECT_EQ(c.tieWordEmbeddings, raw["tie_word_embeddings"].get<bool>());
    EXPECT_EQ(c.bosTokenId, raw["bos_token_id"]);
    ASSERT_EQ(c.eosTokenIds.size(), 1u);
    EXPECT_EQ(c.firstEos(), raw["eos_token_id"]);
    EXPECT_TRUE(c.isEos(raw["eos_token_id"]));
    EXPECT_FALSE(c.isEos(raw["bos_token_id"]));
    EXPECT_EQ(c.padTokenId, -1);
    EXPECT_EQ(c.torchDtype, raw["dtype"]);
    EXPECT_TRUE(c.rawGeneration.is_object());

    // toJson writes back every original field and the same values.
    const json out = c.toJson();
    for (auto it = raw.begin(); it != raw.end(); ++it)
        EXPECT_EQ(out.at(it.key()), it.value()) << it.key();
    EXPECT_FALSE(out.contains("rope_theta")) << "rope_theta belongs inside rope_parameters here";
    const auto again = dpo::ModelConfig::fromJson(out, "roundtrip");
    EXPECT_EQ(again.numKvHeads, c.numKvHeads);
    EXPECT_DOUBLE_EQ(again.ropeTheta, c.ropeTheta);
}

TEST(ModelConfig, Gpt2Fixture)
{
    const auto raw = dpotest::readJson(dpotest::fixture("gpt2/ref/config.json"));
    const auto c = dpo::ModelConfig::fromDirectory(dpotest::fixture("gpt2/ref"));
    EXPECT_EQ(c.modelType, "gpt2");
    EXPECT_EQ(c.architecture, "GPT2LMHeadModel");
    EXPECT_EQ(c.vocabSize, raw["vocab_size"]);
    EXPECT_EQ(c.hiddenSize, raw["n_embd"]);
    EXPECT_EQ(c.numLayers, raw["n_layer"]);
    EXPECT_EQ(c.numHeads, raw["n_head"]);
    EXPECT_EQ(c.numKvHeads, c.numHeads);
    EXPECT_EQ(c.headDim, raw["n_embd"].get<int64_t>() / raw["n_head"].get<int64_t>());
    EXPECT_TRUE(raw["n_inner"].is_null());
    EXPECT_EQ(c.intermediateSize, 4 * c.hiddenSize);
    EXPECT_EQ(c.maxPositionEmbeddings, raw["n_positions"]);
    EXPECT_DOUBLE_EQ(c.layerNormEps, raw["layer_norm_epsilon"].get<double>());
    EXPECT_EQ(c.activationFunction, raw["activation_function"]);
    EXPECT_TRUE(c.tieWordEmbeddings);
    EXPECT_EQ(c.firstEos(), raw["eos_token_id"]);

    const json out = c.toJson();
    for (auto it = raw.begin(); it != raw.end(); ++it)
        EXPECT_EQ(out.at(it.key()), it.value()) << it.key();
}

TEST(ModelConfig, RopeThetaTopLevelOrRopeParameters)
{
    json top = llamaBase();
    top.erase("rope_parameters");
    top["rope_theta"] = 500000.0;
    const auto a = dpo::ModelConfig::fromJson(top, "top.json");
    EXPECT_DOUBLE_EQ(a.ropeTheta, 500000.0);
    EXPECT_DOUBLE_EQ(a.toJson()["rope_theta"].get<double>(), 500000.0);
    EXPECT_FALSE(a.toJson().contains("rope_parameters"));

    json nested = llamaBase();
    nested["rope_parameters"]["rope_theta"] = 1000000.0;
    EXPECT_DOUBLE_EQ(dpo::ModelConfig::fromJson(nested, "nested.json").ropeTheta, 1000000.0);

    json none = llamaBase();
    none.erase("rope_parameters");
    EXPECT_DOUBLE_EQ(dpo::ModelConfig::fromJson(none, "none.json").ropeTheta, 10000.0);

    json nullScaling = top;
    nullScaling["rope_scaling"] = nullptr;
    EXPECT_NO_THROW(dpo::ModelConfig::fromJson(nullScaling, "null.json"));
    nullScaling["rope_scaling"] = { { "rope_type", "default" } };
    EXPECT_NO_THROW(dpo::ModelConfig::fromJson(nullScaling, "default.json"));
}

TEST(ModelConfig, Qwen2WithBiasesAndMqa)
{
    json q = {
        { "architectures", { "Qwen2ForCausalLM" } },
        { "model_type", "qwen2" },
        { "vocab_size", 151936 },
        { "hidden_size", 896 },
        { "intermediate_size", 4864 },
        { "num_hidden_layers", 24 },
        { "num_attention_heads", 14 },
        { "num_key_value_heads", 2 },
        { "max_position_embeddings", 32768 },
        { "max_window_layers", 21 },
        { "rms_norm_eps", 1e-6 },
        { "rope_theta", 1000000.0 },
        { "sliding_window", 32768 },
        { "use_sliding_window", false },
        { "tie_word_embeddings", true },
        { "hidden_act", "silu" },
        { "bos_token_id", 151643 },
        { "eos_token_id", 151643 },
        { "torch_dtype", "bfloat16" },
    };
    const auto c = dpo::ModelConfig::fromJson(q, "qwen2.json");
    EXPECT_EQ(c.modelType, "qwen2");
    EXPECT_TRUE(c.attentionBias);
    EXPECT_FALSE(c.oProjBias);
    EXPECT_FALSE(c.mlpBias);
    EXPECT_EQ(c.headDim, 896 / 14);
    EXPECT_EQ(c.numKvHeads, 2);
    EXPECT_TRUE(c.tieWordEmbeddings);
    EXPECT_DOUBLE_EQ(c.ropeTheta, 1e6);
    EXPECT_EQ(c.torchDtype, "bfloat16");
    const json out = c.toJson();
    EXPECT_EQ(out["dtype"], "bfloat16");
    EXPECT_EQ(out["torch_dtype"], "bfloat16");
    EXPECT_FALSE(out.contains("head_dim")) << "head_dim was not in the file and equals the default";

    // MQA: one KV head; and num_key_value_heads defaults to num_attention_heads.
    json mqa = llamaBase();
    mqa["num_key_value_heads"] = 1;
    EXPECT_EQ(dpo::ModelConfig::fromJson(mqa, "mqa.json").numKvHeads, 1);
    json mha = llamaBase();
    mha.erase("num_key_value_heads");
    mha.erase("head_dim");
    const auto m = dpo::ModelConfig::fromJson(mha, "mha.json");
    EXPECT_EQ(m.numKvHeads, m.numHeads);
    EXPECT_EQ(m.headDim, m.hiddenSize / m.numHeads);

    // Qwen2's window is off unless use_sliding_window; then it covers layers from max_window_layers on.
    EXPECT_EQ(c.slidingWindow, 0);
    EXPECT_FALSE(c.anySlidingLayer());
    json sw = q;
    sw["use_sliding_window"] = true;
    sw["sliding_window"] = 4096;
    sw["max_window_layers"] = 1;
    sw["num_hidden_layers"] = 2;
    const auto s = dpo::ModelConfig::fromJson(sw, "sw.json");
    EXPECT_EQ(s.slidingWindow, 4096);
    EXPECT_EQ(s.slidingLayers, std::vector<bool>({ false, true }));
    // Mistral: a null window means none, an absent one MistralConfig's 4096, on every layer.
    json mistral = llamaBase();
    mistral["model_type"] = "mistral";
    mistral["architectures"] = { "MistralForCausalLM" };
    mistral["sliding_window"] = nullptr;
    EXPECT_EQ(dpo::ModelConfig::fromJson(mistral, "mistral.json").slidingWindow, 0);
    EXPECT_FALSE(dpo::ModelConfig::fromJson(mistral, "mistral.json").anySlidingLayer());
    mistral.erase("sliding_window");
    const auto m4096 = dpo::ModelConfig::fromJson(mistral, "mistral.json");
    EXPECT_EQ(m4096.slidingWindow, 4096);
    EXPECT_EQ(m4096.slidingLayers, std::vector<bool>(size_t(m4096.numLayers), true));
    mistral["sliding_window"] = 0;
    expectRefused(mistral, "sliding_window");
    mistral["sliding_window"] = 16;
    mistral["layer_types"] = { "full_attention", "moe_attention" };
    expectRefused(mistral, "layer_types");

    // Llama attention_bias covers q/k/v and o.
    json lb = llamaBase();
    lb["attention_bias"] = true;
    const auto l = dpo::ModelConfig::fromJson(lb, "lb.json");
    EXPECT_TRUE(l.attentionBias);
    EXPECT_TRUE(l.oProjBias);
}

TEST(ModelConfig, EosListsAndGenerationConfig)
{
    TempDir dir;
    json c = llamaBase();
    c["eos_token_id"] = json::array({ 2, 5 });
    std::ofstream(dir.file("config.json")) << c.dump();
    std::ofstream(dir.file("generation_config.json"))
        << json { { "bos_token_id", 1 }, { "eos_token_id", json::array({ 5, 7 }) }, { "pad_token_id", 0 } }.dump();
    const auto cfg = dpo::ModelConfig::fromDirectory(dir.path.string());
    EXPECT_EQ(cfg.eosTokenIds, (std::vector<int64_t> { 2, 5, 7 }));
    EXPECT_EQ(cfg.firstEos(), 2);
    EXPECT_TRUE(cfg.isEos(7));
    EXPECT_EQ(cfg.padTokenId, 0);
    EXPECT_EQ(cfg.rawGeneration["pad_token_id"], 0);

    // Invalid generation_config.json names that file.
    std::ofstream(dir.file("generation_config.json")) << "{\"eos_token_id\": [1,";
    try {
        dpo::ModelConfig::fromDirectory(dir.path.string());
        ADD_FAILURE() << "invalid generation_config.json accepted";
    } catch (const dpo::Error &e) {
        EXPECT_NE(std::string(e.what()).find("generation_config.json"), std::string::npos) << e.what();
    }
    std::ofstream(dir.file("generation_config.json")) << "{\"eos_token_id\": \"two\"}";
    try {
        dpo::ModelConfig::fromDirectory(dir.path.string());
        ADD_FAILURE() << "string eos accepted";
    } catch (const dpo::Error &e) {
        EXPECT_NE(std::string(e.what()).find("eos_token_id"), std::string::npos) << e.what();
    }
}

TEST(ModelConfig, RefusedConfigsNameTheField)
{
    json j = llamaBase();
    j["model_type"] = "bert";
    expectRefused(j, "model_type");
    j = llamaBase();
    j.erase("model_type");
    expectRefused(j, "model_type");

    j["model_type"] = "mixtral";
    expectRefused(j, "mixture-of-experts");
    j["model_type"] = "gemma3";
    expectRefused(j, "gemma3_text");

    // RoPE variants the engine does not implement, or without their required fields.
    j = llamaBase();
    j["rope_scaling"] = { { "rope_type", "llama3" }, { "factor", 8.0 } };
    expectRefused(j, "rope_scaling.low_freq_factor");
    j = llamaBase();
    j["rope_scaling"] = { { "type", "dynamic" }, { "factor", 2.0 } };
    expectRefused(j, "rope_scaling.rope_type");
    j = llamaBase();
    j["rope_parameters"]["rope_type"] = "yarn";
    expectRefused(j, "rope_parameters.factor");
    j = llamaBase();
    j["rope_parameters"]["rope_type"] = "mrope";
    expectRefused(j, "rope_parameters.rope_type");

    j = llamaBase();
    j["hidden_act"] = "gelu";
    expectRefused(j, "hidden_act");
    j = llamaBase();
    j.erase("hidden_size");
    expectRefused(j, "hidden_size");
    j = llamaBase();
    j["num_hidden_layers"] = 0;
    expectRefused(j, "num_hidden_layers");
    j = llamaBase();
    j["vocab_size"] = "1000";
    expectRefused(j, "vocab_size");
    j = llamaBase();
    j["num_key_value_heads"] = 3;
    expectRefused(j, "num_key_value_heads");
    j = llamaBase();
    j.erase("head_dim");
    j["num_attention_heads"] = 5;
    j["num_key_value_heads"] = 5;
    expectRefused(j, "num_attention_heads");
    j = llamaBase();
    j["architectures"] = { "LlamaForSequenceClassification" };
    expectRefused(j, "architectures");
    j = llamaBase();
    j["eos_token_id"] = "</s>";
    expectRefused(j, "eos_token_id");

    json g = dpotest::readJson(dpotest::fixture("gpt2/ref/config.json"));
    g["activation_function"] = "relu";
    expectRefused(g, "activation_function");
    g = dpotest::readJson(dpotest::fixture("gpt2/ref/config.json"));
    g["n_head"] = 5;
    expectRefused(g, "n_head");
    g = dpotest::readJson(dpotest::fixture("gpt2/ref/config.json"));
    g["scale_attn_by_inverse_layer_idx"] = true;
    expectRefused(g, "scale_attn_by_inverse_layer_idx");

    EXPECT_THROW(dpo::ModelConfig::fromJson(json::array(), "x.json"), dpo::Error);
}

TEST(ModelConfig, MissingOrInvalidFilesNameTheFile)
{
    TempDir dir;
    try {
        dpo::ModelConfig::fromDirectory(dir.path.string());
        ADD_FAILURE() << "folder without config.json accepted";
    } catch (const dpo::Error &e) {
        EXPECT_NE(std::string(e.what()).find("config.json"), std::string::npos) << e.what();
    }
    std::ofstream(dir.file("config.json")) << "{\"model_type\": \"llama\",\n \"hidden_size\": }";
    try {
        dpo::ModelConfig::fromDirectory(dir.path.string());
        ADD_FAILURE() << "invalid JSON accepted";
    } catch (const dpo::Error &e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find(dir.file("config.json")), std::string::npos) << msg;
        EXPECT_NE(msg.find("line 2"), std::string::npos) << msg;
    }
    EXPECT_THROW(dpo::ModelConfig::fromDirectory(dir.file("nope")), dpo::Error);
}

// A wrong-typed value is quoted in the error only as a short snippet: a 100,000-element list in a RoPE or
// layer_types field gives a message of bounded size (no dump of the whole value).
TEST(ModelConfig, WrongValuesAreQuotedBriefly)
{
    const json big = json(std::vector<int>(100000, 7));
    for (const char *where : { "rope_theta", "rope_type", "layer_types" }) {
        json j = llamaBase();
        if (std::string(where) == "rope_type") {
            j["rope_scaling"] = { { "rope_type", big } };
        } else if (std::string(where) == "layer_types") {
            j["model_type"] = "mistral";
            j["sliding_window"] = 4;
            j["layer_types"] = json::array();
            for (int i = 0; i < j["num_hidden_layers"].get<int>(); ++i)
                j["layer_types"].push_back(big);
        } else {
            j[where] = big;
        }
        try {
            dpo::ModelConfig::fromJson(j, "test-config.json");
            ADD_FAILURE() << "accepted a list as " << where;
        } catch (const dpo::Error &e) {
            const std::string msg = e.what();
            EXPECT_LT(msg.size(), 400u) << where << ": " << msg.substr(0, 200);
            EXPECT_NE(msg.find("test-config.json"), std::string::npos) << msg.substr(0, 200);
        }
    }
}

} // namespace test_model_config
