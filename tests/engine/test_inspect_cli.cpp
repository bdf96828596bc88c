// dpo-cli inspect on the fixture models: the family row recognised and the traits it implies
// (from config.json and the safetensors headers only), in --json and in the human-readable form;
// a refused model_type exits 1 with one line on stderr naming why.
#include "test_util.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <unistd.h>

namespace test_inspect_cli { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string quote(const std::string &s)
{
    return "'" + s + "'";
}

json inspectJson(const std::string &dir)
{
    const auto r = dpotest::runCommand(quote(dpotest::cliPath()) + " inspect --json --model " + quote(dir));
    EXPECT_EQ(r.exitCode, 0) << r.err;
    return json::parse(r.out);
}

TEST(InspectCli, Gemma2WindowOnEvenLayersAndSoftcaps)
{
    const json j = inspectJson(dpotest::fixture("gemma2/other"));
    EXPECT_EQ(j["family"], "gemma2");
    EXPECT_EQ(j["architecture"], "Gemma2ForCausalLM");
    EXPECT_EQ(j["norm"]["kind"], "RMSNorm (1 + weight)");
    EXPECT_EQ(j["norm"]["placement"], "pre- and post-norm (four per layer)");
    EXPECT_EQ(j["mlp"]["kind"], "GeGLU (tanh gelu)");
    EXPECT_EQ(j["sliding_window"], 6);
    EXPECT_EQ(j["sliding_layers"], json::array({ 0, 2 }));
    EXPECT_EQ(j["attn_logit_softcapping"], 8.0);
    EXPECT_EQ(j["final_logit_softcapping"], 5.0);
    EXPECT_EQ(j["tied_lm_head"], true);
    EXPECT_EQ(j["embedding_scale"], true);
    EXPECT_EQ(j["head_dim"], 40);
    EXPECT_EQ(j["gqa_ratio"], 2);
    EXPECT_EQ(j["vocab_size"], 1000);
    EXPECT_NEAR(j["attention_scale"].get<double>(), 1.0 / std::sqrt(32.0), 1e-12); // query_pre_attn_scalar
    EXPECT_EQ(j["rope"]["type"], "default");
    EXPECT_EQ(j["rope"]["theta"], 20000.0);
    EXPECT_EQ(j["weights"]["stored_dtype"], "F32");
    EXPECT_GT(j["weights"]["parameters"].get<int64_t>(), 0);
    EXPECT_EQ(j["tokenizer"]["kind"], "sentencepiece");
    EXPECT_EQ(j["tokenizer"]["chat_template"], false);
}

TEST(InspectCli, Phi3FusedProjectionsAndPartialRotary)
{
    const json j = inspectJson(dpotest::fixture("phi3/other"));
    EXPECT_EQ(j["family"], "phi3");
    EXPECT_EQ(j["fused_qkv"], true);
    EXPECT_EQ(j["fused_gate_up"], true);
    EXPECT_EQ(j["rope"]["partial_rotary_factor"], 0.5);
    EXPECT_EQ(j["rope"]["theta"], 25000.0);
    EXPECT_EQ(j["bias"]["qkv"], false);
    EXPECT_EQ(j["sliding_window"], 11);
    EXPECT_EQ(j["sliding_layers"], json::array({ 0, 1, 2 }));
    EXPECT_EQ(j["head_dim"], 16);
    EXPECT_EQ(j["gqa_ratio"], 5);
    EXPECT_EQ(j["tied_lm_head"], false);
    EXPECT_EQ(j["weights"]["stored_dtype"], "BF16");
}

TEST(InspectCli, Gemma3LocalRopeAndPattern)
{
    const json j = inspectJson(dpotest::fixture("gemma3-text/other"));
    EXPECT_EQ(j["family"], "gemma3_text");
    EXPECT_EQ(j["qk_norm"], "per head");
    EXPECT_EQ(j["rope"]["type"], "linear");
    EXPECT_EQ(j["rope"]["factor"], 4.0);
    EXPECT_EQ(j["rope_sliding"]["type"], "default");
    EXPECT_EQ(j["rope_sliding"]["theta"], 5000.0);
    EXPECT_EQ(j["sliding_layers"], json::array({ 0, 1, 3, 4 }));
}

TEST(InspectCli, HumanReadable)
{
    const auto r = dpotest::runCommand(
        quote(dpotest::cliPath()) + " inspect --model " + quote(dpotest::fixture("gemma2/other")));
    ASSERT_EQ(r.exitCode, 0) << r.err;
    EXPECT_NE(r.out.find("gemma2 (Gemma2ForCausalLM"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("6 on layers 0, 2"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("attention 8.0, final 5.0"), std::string::npos) << r.out;
}

TEST(InspectCli, RefusedFamilyIsOneLine)
{
    const fs::path dir = fs::temp_directory_path() / ("dpo_inspect_test_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    std::ofstream(dir / "config.json") << R"({"model_type": "mixtral", "architectures": ["MixtralForCausalLM"]})";
    const auto r = dpotest::runCommand(quote(dpotest::cliPath()) + " inspect --model " + quote(dir.string()));
    fs::remove_all(dir);
    EXPECT_EQ(r.exitCode, 1);
    EXPECT_NE(r.err.find("mixture-of-experts"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

} // namespace

} // namespace test_inspect_cli
