// LlamaModel against the Hugging Face reference: logits on a padded batch, completion log-probs of
// the fixture pairs, HF parameter names, a Qwen2-style config (biases, MQA, tied head) with its
// KV cache, left padding, and bfloat16.
#include "engine/models/causal_lm.h"
#include "engine/error.h"
#include "engine/models/llama_model.h"
#include "engine/training/logprobs.h"
#include "engine/io/safetensors.h"
#include "test_util.h"

#include <gtest/gtest.h>

#include <set>

namespace test_llama_model { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

using namespace dpo;

namespace {

const nlohmann::json &expected()
{
    static nlohmann::json j = dpotest::readJson(dpotest::fixture("llama-gqa/expected.json"));
    return j;
}

// The fixture batch the reference scored: chosen rows then rejected rows, right-padded.
struct PairBatch {
    torch::Tensor ids, mask, completion;
};

PairBatch fixtureBatch()
{
    std::vector<std::vector<int64_t>> rows;
    std::vector<size_t> promptLen;
    for (const char *which : { "chosen_ids", "rejected_ids" }) {
        for (const auto &ex : expected()["examples"]) {
            auto p = ex["prompt_ids"].get<std::vector<int64_t>>();
            auto c = ex[which].get<std::vector<int64_t>>();
            promptLen.push_back(p.size());
            p.insert(p.end(), c.begin(), c.end());
            rows.push_back(p);
        }
    }
    size_t T = 0;
    for (auto &r : rows)
        T = std::max(T, r.size());
    const int64_t N = rows.size();
    PairBatch b;
    b.ids = torch::zeros({ N, int64_t(T) }, torch::kInt64);
    b.mask = torch::zeros({ N, int64_t(T) }, torch::kInt64);
    b.completion = torch::zeros({ N, int64_t(T) }, torch::kInt64);
    for (int64_t n = 0; n < N; ++n)
        for (size_t t = 0; t < rows[n].size(); ++t) {
            b.ids[n][t] = rows[n][t];
            b.mask[n][t] = 1;
            b.completion[n][t] = t >= promptLen[n] ? 1 : 0;
        }
    return b;
}

ModelConfig qwenStyleConfig()
{
    nlohmann::json j = { { "model_type", "qwen2" }, { "architectures", { "Qwen2ForCausalLM" } }, { "vocab_size", 61 },
        { "hidden_size", 32 }, { "intermediate_size", 48 }, { "num_hidden_layers", 2 }, { "num_attention_heads", 4 },
        { "num_key_value_heads", 1 }, { "max_position_embeddings", 64 }, { "rope_theta", 1000000.0 },
        { "rms_norm_eps", 1e-6 }, { "tie_word_embeddings", true }, { "initializer_range", 0.2 } };
    return ModelConfig::fromJson(j, "qwen-style config");
}

double maxAbsDiff(const torch::Tensor &a, const torch::Tensor &b)
{
    return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

} // namespace

TEST(LlamaModel, ParameterNamesAreTheHuggingFaceNames)
{
    auto config = ModelConfig::fromDirectory(dpotest::fixture("llama-gqa/ref"));
    auto model = createCausalLM(config);
    std::set<std::string> ours;
    for (const auto &p : model->named_parameters())
        ours.insert(p.key());
    std::set<std::string> theirs;
    for (const auto &[name, t] : loadSafetensorsWeights(dpotest::fixture("llama-gqa/ref")))
        theirs.insert(name);
    EXPECT_EQ(ours, theirs);
    EXPECT_TRUE(ours.count("lm_head.weight"));
    EXPECT_TRUE(ours.count("model.layers.1.self_attn.k_proj.weight"));
}

TEST(LlamaModel, LogitsMatchReferenceOnPaddedBatch)
{
    auto model = loadCausalLM(dpotest::fixture("llama-gqa/ref"));
    auto ref = SafetensorsFile::open(dpotest::fixture("llama-gqa/logits.safetensors"));
    auto ids = ref.tensor("input_ids").to(torch::kInt64);
    auto mask = ref.tensor("attention_mask").to(torch::kInt64);
    auto want = ref.tensor("logits").to(torch::kFloat32);
    ASSERT_GT((mask == 0).sum().item<int64_t>(), 0) << "the fixture batch is expected to hold padding";

    torch::NoGradGuard g;
    auto got = model->forward(ids, mask);
    ASSERT_EQ(got.sizes(), want.sizes());
    auto real = mask.to(torch::kBool);
    EXPECT_LT(maxAbsDiff(got.index({ real }), want.index({ real })), 2e-4);

    // Without a mask (all positions real) the real positions of the right-padded rows match too.
    auto noMask = model->forward(ids);
    EXPECT_LT(maxAbsDiff(noMask.index({ real }), want.index({ real })), 2e-4);
}

TEST(LlamaModel, CompletionLogpsMatchReference)
{
    const auto &e = expected();
    auto batch = fixtureBatch();
    const int64_t P = e["examples"].size();
    for (const auto &[dir, prefix] :
        { std::pair<std::string, std::string> { "ref", "ref_" }, { "other", "policy_" } }) {
        auto model = loadCausalLM(dpotest::fixture("llama-gqa/" + dir));
        torch::NoGradGuard g;
        auto lp = completionLogps(*model, batch.ids, batch.mask, batch.completion);
        auto mean = lp.mean();
        for (int64_t i = 0; i < P; ++i) {
            SCOPED_TRACE(dir + " example " + std::to_string(i));
            EXPECT_NEAR(lp.sum[i].item<double>(), e["logps"][prefix + "chosen"][i].get<double>(), 2e-3);
            EXPECT_NEAR(lp.sum[P + i].item<double>(), e["logps"][prefix + "rejected"][i].get<double>(), 2e-3);
            EXPECT_NEAR(mean[i].item<double>(), e["mean_logps"][prefix + "chosen"][i].get<double>(), 2e-3);
            EXPECT_NEAR(mean[P + i].item<double>(), e["mean_logps"][prefix + "rejected"][i].get<double>(), 2e-3);
            EXPECT_EQ(lp.count[i].item<double>(), double(e["examples"][i]["chosen_ids"].size()));
        }
    }
}

TEST(LlamaModel, CompletionLogpsEqualFullLogSoftmaxAndAreDifferentiable)
{
    auto model = loadCausalLM(dpotest::fixture("llama-gqa/other"));
    auto batch = fixtureBatch();
    auto lp = completionLogps(*model, batch.ids, batch.mask, batch.completion);

    // Independent recomputation from the full logits.
    torch::Tensor direct;
    {
        torch::NoGradGuard g;
        auto logp = torch::log_softmax(model->forward(batch.ids, batch.mask), -1);
        auto tok = logp.slice(1, 0, -1).gather(2, batch.ids.slice(1, 1).unsqueeze(2)).squeeze(2);
        direct = (tok * batch.completion.slice(1, 1).to(torch::kFloat32)).sum(1);
    }
    EXPECT_LT(maxAbsDiff(lp.sum.detach(), direct), 1e-4);

    lp.sum.sum().backward();
    for (const auto &p : model->named_parameters()) {
        ASSERT_TRUE(p.value().grad().defined()) << p.key();
        EXPECT_TRUE(torch::isfinite(p.value().grad()).all().item<bool>()) << p.key();
        EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
    }
}

// Training keeps no [tokens, V] logits for backward: each chunk's head and log-softmax are recomputed in
// backward (logprobs.cpp). The gradients must be those of the plain graph through the full logits,
// head weights (untied and tied to the embeddings) included, with and without the stats pass.
TEST(LlamaModel, RecomputedHeadGradientsEqualTheFullLogitsGraph)
{
    for (const bool tied : { false, true }) {
        for (const bool stats : { false, true }) {
            SCOPED_TRACE(std::string(tied ? "tied" : "untied") + (stats ? " stats" : ""));
            torch::manual_seed(3);
            auto config = qwenStyleConfig();
            config.tieWordEmbeddings = tied;
            auto model = createCausalLM(config);
            auto ids = torch::randint(0, config.vocabSize, { 3, 11 }, torch::kInt64);
            auto mask = torch::ones({ 3, 11 }, torch::kInt64);
            mask[2].slice(0, 8).fill_(0); // right padding on one row
            auto completion = torch::zeros({ 3, 11 }, torch::kInt64);
            completion.slice(1, 4).fill_(1);
            completion.mul_(mask);
            const auto weights = torch::tensor({ 0.7, -1.3, 2.0 }, torch::kFloat32);

            auto direct = [&] {
                model->zero_grad();
                auto logp = torch::log_softmax(model->forward(ids, mask), -1, torch::kFloat32);
                auto tok = logp.slice(1, 0, -1).gather(2, ids.slice(1, 1).unsqueeze(2)).squeeze(2);
                auto sum = (tok * completion.slice(1, 1).to(torch::kFloat32)).sum(1);
                (sum * weights).sum().backward();
                std::map<std::string, torch::Tensor> g;
                for (const auto &p : model->named_parameters())
                    g[p.key()] = p.value().grad().clone();
                return std::make_pair(sum.detach(), g);
            }();

            model->zero_grad();
            LogpsOptions options;
            options.stats = stats;
            options.chunkRows = 5; // 18 scored positions: four chunks, the last one short
            auto lp = completionLogps(*model, ids, mask, completion, options);
            EXPECT_LT(maxAbsDiff(lp.sum.detach(), direct.first), 1e-4);
            (lp.sum * weights).sum().backward();
            for (const auto &p : model->named_parameters()) {
                ASSERT_TRUE(p.value().grad().defined()) << p.key();
                const auto &want = direct.second.at(p.key());
                const double scale = std::max(1e-3, want.abs().max().item<double>());
                EXPECT_LT(maxAbsDiff(p.value().grad(), want) / scale, 1e-5) << p.key();
            }
        }
    }
}

TEST(LlamaModel, LeftPaddingGivesTheUnpaddedResult)
{
    auto model = loadCausalLM(dpotest::fixture("llama-gqa/ref"));
    torch::NoGradGuard g;
    auto prompt = expected()["examples"][0]["prompt_ids"].get<std::vector<int64_t>>();
    const int64_t n = prompt.size(), pad = 3;
    auto ids = torch::tensor(prompt, torch::kInt64).unsqueeze(0);
    auto alone = model->forward(ids); // [1, n, V]

    auto padded = torch::cat({ torch::full({ 1, pad }, 7, torch::kInt64), ids }, 1);
    auto mask = torch::cat({ torch::zeros({ 1, pad }, torch::kInt64), torch::ones({ 1, n }, torch::kInt64) }, 1);
    auto both
        = model->forward(torch::cat({ padded, torch::cat({ ids, torch::full({ 1, pad }, 7, torch::kInt64) }, 1) }),
            torch::cat({ mask, mask.flip(1) }));
    EXPECT_TRUE(torch::isfinite(both).all().item<bool>());
    EXPECT_LT(maxAbsDiff(both[0].slice(0, pad), alone[0]), 1e-4);
    EXPECT_LT(maxAbsDiff(both[1].slice(0, 0, n), alone[0]), 1e-4);
}

TEST(LlamaModel, QwenStyleBiasesMqaTiedHeadForwardBackwardAndCache)
{
    torch::manual_seed(1);
    auto config = qwenStyleConfig();
    ASSERT_TRUE(config.attentionBias);
    auto model = createCausalLM(config);

    std::set<std::string> names;
    for (const auto &p : model->named_parameters())
        names.insert(p.key());
    EXPECT_TRUE(names.count("model.layers.0.self_attn.q_proj.bias"));
    EXPECT_TRUE(names.count("model.layers.1.self_attn.v_proj.bias"));
    EXPECT_FALSE(names.count("model.layers.0.self_attn.o_proj.bias"));
    EXPECT_FALSE(names.count("lm_head.weight")) << "a tied head has no parameter of its own";
    EXPECT_EQ(model->named_parameters()["model.layers.0.self_attn.k_proj.weight"].size(0), 8) << "MQA: one kv head";
    {
        // Biases must take part: give them values so the comparison below exercises them.
        torch::NoGradGuard g;
        for (auto &p : model->named_parameters())
            if (p.key().find("bias") != std::string::npos)
                p.value().normal_(0, 0.5);
    }

    auto ids = torch::randint(0, config.vocabSize, { 2, 9 }, torch::kInt64);
    auto logits = model->forward(ids);
    ASSERT_EQ(logits.sizes(), (std::vector<int64_t> { 2, 9, config.vocabSize }));
    torch::log_softmax(logits, -1).mean().backward();
    for (const auto &p : model->named_parameters()) {
        ASSERT_TRUE(p.value().grad().defined()) << p.key();
        EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
    }

    // Incremental forward through the KV cache equals the full forward: a 4-token prefix, a
    // 2-token chunk (causal with an offset), then single tokens.
    torch::NoGradGuard g;
    auto full = model->forward(ids);
    KVCache cache;
    std::vector<torch::Tensor> parts;
    parts.push_back(model->forward(ids.slice(1, 0, 4), {}, &cache));
    parts.push_back(model->forward(ids.slice(1, 4, 6), {}, &cache));
    for (int64_t t = 6; t < 9; ++t)
        parts.push_back(model->forward(ids.slice(1, t, t + 1), {}, &cache));
    EXPECT_EQ(cache.length(), 9);
    EXPECT_LT(maxAbsDiff(torch::cat(parts, 1), full), 1e-5);

    // The same with a (trivial) mask covering past + new positions.
    KVCache cache2;
    auto a = model->forward(ids.slice(1, 0, 5), torch::ones({ 2, 5 }, torch::kInt64), &cache2);
    auto b = model->forward(ids.slice(1, 5, 9), torch::ones({ 2, 9 }, torch::kInt64), &cache2);
    EXPECT_LT(maxAbsDiff(torch::cat({ a, b }, 1), full), 1e-5);
    // A mask of the wrong width is an error, not a silent misread.
    EXPECT_THROW(model->forward(ids.slice(1, 0, 1), torch::ones({ 2, 1 }, torch::kInt64), &cache2), dpo::Error);
}

TEST(LlamaModel, Bfloat16ForwardRunsAndStaysClose)
{
    auto f32 = loadCausalLM(dpotest::fixture("llama-gqa/ref"));
    auto bf16 = loadCausalLM(dpotest::fixture("llama-gqa/ref"), torch::kCPU, torch::kBFloat16);
    for (const auto &p : bf16->parameters())
        ASSERT_EQ(p.scalar_type(), torch::kBFloat16);
    auto batch = fixtureBatch();
    torch::NoGradGuard g;
    auto lo = bf16->forward(batch.ids, batch.mask);
    EXPECT_EQ(lo.scalar_type(), torch::kBFloat16);
    EXPECT_TRUE(torch::isfinite(lo).all().item<bool>());
    auto hi = f32->forward(batch.ids, batch.mask);
    auto real = batch.mask.to(torch::kBool);
    EXPECT_LT(maxAbsDiff(lo.index({ real }), hi.index({ real })), 0.05);
    auto lp = completionLogps(*bf16, batch.ids, batch.mask, batch.completion);
    EXPECT_EQ(lp.sum.scalar_type(), torch::kFloat32);
    EXPECT_NEAR(lp.sum[0].item<double>(), expected()["logps"]["ref_chosen"][0].get<double>(), 0.1);
}

TEST(LlamaModel, UnknownModelTypeIsAnErrorNamingIt)
{
    auto config = qwenStyleConfig();
    config.modelType = "falcon";
    try {
        createCausalLM(config);
        FAIL() << "expected dpo::Error";
    } catch (const dpo::Error &e) {
        EXPECT_NE(std::string(e.what()).find("falcon"), std::string::npos) << e.what();
    }
}

} // namespace test_llama_model
