// Padding-free batches (padding_free, collatePacked + packedLogps): every sequence of the micro-batch
// in one [1, N] row. Log-probs, TRL's token statistics and gradients equal those of the padded
// batch (completionLogps) on every model family of the fixtures, sliding windows included; the
// trainer follows the padded trajectory; ld_alpha is refused.
#include "fixture_pairs.h"
#include "test_util.h"

#include "engine/data/preference_data.h"
#include "engine/error.h"
#include "engine/models/causal_lm.h"
#include "engine/tokenizers/tokenizer.h"
#include "engine/training/dpo_trainer.h"
#include "engine/training/logprobs.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace test_padding_free {

namespace fs = std::filesystem;

class PaddingFree : public ::testing::TestWithParam<std::string> { };

TEST_P(PaddingFree, SameLogpsStatsAndGradientsAsThePaddedBatch)
{
    auto model = dpo::loadCausalLM(dpotest::fixture(GetParam() + "/other"));
    auto pairs = dpotest::tokenizedFixturePairs(GetParam());
    ASSERT_GE(pairs.size(), 4u);
    const auto padded = dpo::collatePairs(pairs, 0);
    const auto packed = dpo::collatePacked(pairs);
    EXPECT_EQ(packed.numTokens, padded.numTokens); // nothing but real tokens
    EXPECT_EQ(packed.inputIds.size(1), padded.numTokens);
    ASSERT_EQ(packed.starts.size(), 2 * pairs.size() + 1);
    EXPECT_LT(packed.numTokens, padded.inputIds.numel()) << "the fixture should have padding to remove";

    dpo::LogpsOptions options;
    options.stats = true;
    auto weights = torch::linspace(0.5, 1.5, int64_t(2 * pairs.size()));
    model->zero_grad();
    auto a = dpo::completionLogps(*model, padded.inputIds, padded.attentionMask, padded.completionMask, options);
    (a.sum * weights).sum().backward();
    const auto ga = dpotest::parameterGradients(*model);
    model->zero_grad();
    auto b = dpo::packedLogps(*model, packed, options);
    (b.sum * weights).sum().backward();
    const auto gb = dpotest::parameterGradients(*model);

    EXPECT_TRUE(torch::equal(a.count, b.count)) << a.count << b.count;
    auto close = [](const torch::Tensor &x, const torch::Tensor &y, const char *what) {
        EXPECT_TRUE(torch::allclose(x.detach(), y.detach(), 1e-5, 1e-4))
            << what << ": " << (x - y).abs().max().item<double>();
    };
    close(a.sum, b.sum, "sum");
    close(a.entropySum, b.entropySum, "entropy");
    close(a.logitMeanSum, b.logitMeanSum, "logit mean");
    close(a.wpoSum, b.wpoSum, "wpo");
    EXPECT_TRUE(torch::equal(a.correct, b.correct));
    ASSERT_EQ(ga.size(), gb.size());
    for (const auto &[name, g] : ga) {
        const double scale = std::max(1e-3, g.abs().max().item<double>());
        EXPECT_LT((g - gb.at(name)).abs().max().item<double>() / scale, 1e-4) << name;
    }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, PaddingFree,
    ::testing::Values(
        "llama-gqa", "gpt2", "llama3-rope", "mistral-window", "qwen3", "olmo2", "phi3", "gemma2", "gemma3-text"),
    [](const ::testing::TestParamInfo<std::string> &info) {
        std::string n = info.param;
        for (auto &c : n)
            if (c == '-')
                c = '_';
        return n;
    });

TEST(PaddingFreeWindow, SlidingWindowBitesInsideEachSequence)
{
    // A window shorter than the sequences: the packed row must window each sequence on its own
    // positions (a window over the packed row would see the previous sequence).
    auto model = dpo::loadCausalLM(dpotest::fixture("mistral-window/other"));
    ASSERT_GT(model->config().slidingWindow, 0);
    auto pairs = dpotest::tokenizedFixturePairs("mistral-window");
    int64_t longest = 0;
    for (const auto &p : pairs)
        longest = std::max<int64_t>(longest, int64_t(p.chosen.ids.size()));
    ASSERT_GT(longest, model->config().slidingWindow) << "the fixture's window should bite";
    torch::NoGradGuard noGrad;
    const auto padded = dpo::collatePairs(pairs, 0);
    auto a = dpo::completionLogps(*model, padded.inputIds, padded.attentionMask, padded.completionMask);
    auto b = dpo::packedLogps(*model, dpo::collatePacked(pairs));
    EXPECT_TRUE(torch::allclose(a.sum, b.sum, 1e-5, 1e-4)) << (a.sum - b.sum).abs().max().item<double>();
}

TEST(PaddingFreeTrainer, FollowsThePaddedTrajectory)
{
    auto run = [](const std::string &name, bool paddingFree) {
        const std::string out = (fs::temp_directory_path() / ("dpo_pf_" + name + std::to_string(::getpid()))).string();
        fs::remove_all(out);
        dpo::TrainConfig c;
        c.model = dpotest::fixture("llama-gqa/ref");
        c.dataset = dpotest::fixture("llama-gqa/pairs.jsonl");
        c.outputDir = out;
        c.learningRate = 1e-3;
        c.lrScheduler = "constant";
        c.batchSize = 4;
        c.maxSteps = 3;
        c.shuffle = false;
        c.saveSteps = 0;
        c.device = "cpu";
        c.sharePrompt = false;
        c.paddingFree = paddingFree;
        dpo::DpoTrainer(c).train();
        std::vector<nlohmann::json> m;
        std::ifstream f(fs::path(out) / "metrics.jsonl");
        for (std::string line; std::getline(f, line);)
            if (line.find("\"loss\"") != std::string::npos)
                m.push_back(nlohmann::json::parse(line));
        fs::remove_all(out);
        return m;
    };
    const auto padded = run("padded", false), packed = run("packed", true);
    ASSERT_EQ(padded.size(), 3u);
    ASSERT_EQ(packed.size(), 3u);
    for (size_t i = 0; i < 3; ++i) {
        for (const char *k : { "loss", "grad_norm", "rewards/margins", "logps/chosen", "entropy" })
            EXPECT_NEAR(packed[i][k].get<double>(), padded[i][k].get<double>(),
                1e-5 * std::max(1.0, std::abs(padded[i][k].get<double>())))
                << k << " at step " << i + 1;
        EXPECT_EQ(packed[i]["num_tokens"], padded[i]["num_tokens"]);
    }
}

TEST(PaddingFreeTrainer, LdAlphaIsRefusedNamingTheOption)
{
    dpo::TrainConfig c;
    c.model = "m";
    c.dataset = "d";
    c.outputDir = "o";
    c.paddingFree = true;
    c.ldAlpha = 0.5;
    try {
        c.validate();
        FAIL() << "expected an error";
    } catch (const dpo::Error &e) {
        EXPECT_NE(std::string(e.what()).find("padding_free"), std::string::npos) << e.what();
    }
}

} // namespace test_padding_free
