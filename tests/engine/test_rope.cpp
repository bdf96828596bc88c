// RoPE variants (rope.h) against golden inverse frequencies computed independently in float64 numpy
// (tests/data/rope/make_golden.py -> golden.json): default, partial rotary, linear, llama3, yarn
// (betas, truncation, attention factor, mscale), longrope (short and long factors), in both config
// forms and nested per layer type; the cos/sin tables; and the refusals that name the field.
#include "test_util.h"

#include "engine/error.h"
#include "engine/models/model_config.h"
#include "engine/models/rope.h"

#include <gtest/gtest.h>

#include <cmath>

namespace test_rope { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

using nlohmann::json;

namespace {

const json &golden()
{
    static const json j = dpotest::readJson(dpotest::fixture("rope/golden.json"));
    return j;
}

dpo::RopeParameters parseCase(const json &c)
{
    const json &cfg = c["config"];
    return dpo::parseRopeParameters(cfg, c["layer_type"].get<std::string>(), 10000.0,
        cfg["max_position_embeddings"].get<int64_t>(), c["name"].get<std::string>());
}

void expectRefused(const json &cfg, const std::string &field)
{
    try {
        dpo::parseRopeParameters(cfg, "full_attention", 10000.0, 4096, "config.json");
        ADD_FAILURE() << "accepted: " << cfg.dump();
    } catch (const dpo::Error &e) {
        EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
}

} // namespace

TEST(Rope, InverseFrequenciesAndAttentionScalingMatchGolden)
{
    ASSERT_GE(golden()["cases"].size(), 10u);
    for (const auto &c : golden()["cases"]) {
        SCOPED_TRACE(c["name"].get<std::string>());
        const auto p = parseCase(c);
        auto [inv, att] = dpo::ropeInverseFrequencies(p, c["head_dim"].get<int64_t>(), c["seq_len"].get<int64_t>());
        EXPECT_EQ(inv.scalar_type(), torch::kFloat32);
        const auto want = c["inv_freq"].get<std::vector<double>>();
        ASSERT_EQ(inv.numel(), int64_t(want.size()));
        EXPECT_EQ(dpo::ropeRotaryDim(p, c["head_dim"].get<int64_t>()), int64_t(2 * want.size()));
        for (size_t i = 0; i < want.size(); ++i)
            EXPECT_NEAR(inv[int64_t(i)].item<double>(), want[i], 2e-6 * want[i] + 1e-12) << "frequency " << i;
        EXPECT_NEAR(att, c["attention_scaling"].get<double>(), 1e-12);
    }
}

TEST(Rope, CosSinAreScaledTablesOfPositionTimesFrequency)
{
    for (const auto &c : golden()["cases"]) {
        SCOPED_TRACE(c["name"].get<std::string>());
        const auto p = parseCase(c);
        const int64_t headDim = c["head_dim"].get<int64_t>();
        dpo::RotaryEmbedding rope(p, headDim);
        // Positions up to seq_len - 1 select the same longrope factors as the golden case.
        const int64_t last = std::max<int64_t>(c["seq_len"].get<int64_t>(), 8) - 1;
        auto pos = torch::tensor(std::vector<int64_t> { 0, 1, last / 2, last }).view({ 1, 4 });
        auto [cos, sin] = rope.cosSin(pos, torch::kFloat32);
        const auto inv = c["inv_freq"].get<std::vector<double>>();
        const double att = c["attention_scaling"].get<double>();
        const int64_t half = int64_t(inv.size());
        ASSERT_EQ(cos.size(-1), 2 * half);
        for (int64_t t = 0; t < 4; ++t)
            for (int64_t i = 0; i < 2 * half; ++i) {
                const double angle = double(pos[0][t].item<int64_t>()) * inv[size_t(i % half)];
                EXPECT_NEAR(cos[0][t][i].item<double>(), std::cos(angle) * att, 2e-5);
                EXPECT_NEAR(sin[0][t][i].item<double>(), std::sin(angle) * att, 2e-5);
            }
    }
}

TEST(Rope, BothConfigFormsGiveTheSameParameters)
{
    json older = { { "max_position_embeddings", 131072 }, { "rope_theta", 500000.0 },
        { "rope_scaling",
            { { "rope_type", "llama3" }, { "factor", 8.0 }, { "low_freq_factor", 1.0 }, { "high_freq_factor", 4.0 },
                { "original_max_position_embeddings", 8192 } } } };
    json newer = { { "max_position_embeddings", 131072 }, { "rope_parameters", older["rope_scaling"] } };
    newer["rope_parameters"]["rope_theta"] = 500000.0;
    const auto a = dpo::parseRopeParameters(older, "full_attention", 10000.0, 131072, "a");
    const auto b = dpo::parseRopeParameters(newer, "full_attention", 10000.0, 131072, "b");
    EXPECT_TRUE(a == b);
    EXPECT_EQ(a.type, "llama3");
    EXPECT_EQ(a.originalMaxPositions, 8192);

    // A top-level original_max_position_embeddings wins for flat configs (Phi-3 keeps it there).
    json phi = { { "max_position_embeddings", 131072 }, { "original_max_position_embeddings", 4096 },
        { "rope_scaling",
            { { "type", "longrope" }, { "short_factor", json::array({ 1.0, 1.0 }) },
                { "long_factor", json::array({ 2.0, 3.0 }) } } } };
    const auto l = dpo::parseRopeParameters(phi, "full_attention", 10000.0, 131072, "phi");
    EXPECT_EQ(l.type, "longrope");
    EXPECT_EQ(l.originalMaxPositions, 4096);
    EXPECT_DOUBLE_EQ(l.factor, 32.0);
}

TEST(Rope, UnsupportedOrMalformedVariantsAreRefusedNamingTheField)
{
    expectRefused({ { "rope_scaling", { { "type", "dynamic" }, { "factor", 2.0 } } } }, "rope_scaling.rope_type");
    expectRefused({ { "rope_parameters", { { "rope_type", "mrope" } } } }, "rope_parameters.rope_type");
    expectRefused({ { "rope_scaling", { { "rope_type", "linear" } } } }, "rope_scaling.factor");
    expectRefused({ { "rope_scaling", { { "rope_type", "llama3" }, { "factor", 8.0 } } } }, "low_freq_factor");
    expectRefused({ { "rope_scaling", { { "rope_type", "longrope" }, { "short_factor", json::array({ 1.0 }) } } } },
        "long_factor");
    expectRefused({ { "rope_scaling", "linear" } }, "rope_scaling");
    expectRefused({ { "rope_theta", -1.0 } }, "rope_theta");
    try {
        dpo::parseRopeParameters({ { "rope_parameters", { { "full_attention", { { "rope_type", "default" } } } } } },
            "sliding_attention", 10000.0, 4096, "config.json");
        ADD_FAILURE() << "a missing per-layer-type table was accepted";
    } catch (const dpo::Error &e) {
        EXPECT_NE(std::string(e.what()).find("rope_parameters.sliding_attention"), std::string::npos) << e.what();
    }
}

} // namespace test_rope
