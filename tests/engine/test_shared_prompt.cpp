// sharedPromptLogps: the prompt computed once per pair gives the same summed completion log-probs and
// the same gradients as the concatenated batch (completionLogps), on both model families of the
// fixtures, with prompts of different lengths in one batch; collateSharedPrompt refuses pairs whose
// two sequences do not share their prompt (keep_end truncation) so the caller falls back.
#include "fixture_pairs.h"
#include "test_util.h"

#include "engine/models/causal_lm.h"
#include "engine/models/packed_attention.h"
#include "engine/error.h"
#include "engine/training/logprobs.h"
#include "engine/data/preference_data.h"
#include "engine/tokenizers/tokenizer.h"

#include <gtest/gtest.h>

#include <set>

namespace test_shared_prompt { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

// Both ways completions attend to the cached prompt: the padded layout with its mask (CPU), and the
// varlen kernel's layout (real prompt keys gathered, then the completion's, causal aligned
// bottom-right) run through the per-sequence reference of the kernel.
class SharedPrompt : public ::testing::TestWithParam<std::tuple<std::string, bool>> {
protected:
    void TearDown() override { dpo::setVarlenReferenceForTests(false); }
};

TEST_P(SharedPrompt, SameLogpsAndGradientsAsTheConcatenatedBatch)
{
    const std::string family = std::get<0>(GetParam());
    const bool varlenLayout = std::get<1>(GetParam());
    dpo::setVarlenReferenceForTests(varlenLayout);
    const int64_t referenceCallsBefore = dpo::varlenReferenceCalls();
    auto model = dpo::loadCausalLM(dpotest::fixture(family + "/other"));
    auto pairs = dpotest::tokenizedFixturePairs(family);
    ASSERT_GE(pairs.size(), 4u);
    std::set<int64_t> promptLengths;
    for (const auto &p : pairs)
        promptLengths.insert(p.chosen.promptLength);
    ASSERT_GT(promptLengths.size(), 1u)
        << "the fixture should mix prompt lengths (padding between prompt and completion)";

    const auto plain = dpo::collatePairs(pairs, 0);
    const auto shared = dpo::collateSharedPrompt(pairs, 0);
    ASSERT_TRUE(shared.has_value());
    EXPECT_EQ(shared->numTokens, plain.numTokens);
    EXPECT_EQ(shared->numPairs, plain.numPairs);

    // A loss that weighs rows differently, so every row's gradient matters.
    auto weights = torch::linspace(0.5, 1.5, int64_t(2 * pairs.size()));
    model->zero_grad();
    auto a = dpo::completionLogps(*model, plain.inputIds, plain.attentionMask, plain.completionMask);
    (a.sum * weights).sum().backward();
    const auto ga = dpotest::parameterGradients(*model);
    model->zero_grad();
    auto b = dpo::sharedPromptLogps(*model, *shared);
    (b.sum * weights).sum().backward();
    const auto gb = dpotest::parameterGradients(*model);
    // Every layer's completion attention went through the varlen layout, or none.
    EXPECT_EQ(dpo::varlenReferenceCalls() - referenceCallsBefore, varlenLayout ? model->config().numLayers : 0);

    EXPECT_TRUE(torch::equal(a.count, b.count)) << a.count << b.count;
    EXPECT_TRUE(torch::allclose(a.sum.detach(), b.sum.detach(), 1e-5, 1e-4))
        << (a.sum - b.sum).abs().max().item<double>();
    ASSERT_EQ(ga.size(), gb.size());
    for (const auto &[name, g] : ga) {
        const double scale = std::max(1e-3, g.abs().max().item<double>());
        EXPECT_LT((g - gb.at(name)).abs().max().item<double>() / scale, 1e-4) << name;
    }
}

// The families with sliding windows (mistral-window, phi3, gemma2, gemma3-text) run their long rows
// past the window with prompt padding in between: windows count real-token positions.
INSTANTIATE_TEST_SUITE_P(Fixtures, SharedPrompt,
    ::testing::Combine(::testing::Values("llama-gqa", "gpt2", "llama3-rope", "mistral-window", "qwen3", "olmo2",
                           "phi3", "gemma2", "gemma3-text"),
        ::testing::Bool()),
    [](const ::testing::TestParamInfo<std::tuple<std::string, bool>> &info) {
        std::string n = std::get<0>(info.param);
        for (auto &ch : n)
            if (!std::isalnum(static_cast<unsigned char>(ch)))
                ch = '_';
        return n + (std::get<1>(info.param) ? "_varlen_layout" : "_mask");
    });

TEST(SharedPromptCollate, RefusesPairsWhosePromptsDiffer)
{
    // keep_end cuts chosen and rejected on their own: with completions of different lengths the two
    // sequences keep different parts of the prompt.
    dpo::TruncationOptions trunc;
    trunc.maxLength = 10;
    trunc.mode = "keep_end";
    auto pairs = dpotest::tokenizedFixturePairs("llama-gqa", trunc);
    bool differs = false;
    for (const auto &p : pairs)
        differs = differs || p.chosen.promptLength != p.rejected.promptLength
            || !std::equal(p.chosen.ids.begin(), p.chosen.ids.begin() + p.chosen.promptLength, p.rejected.ids.begin());
    ASSERT_TRUE(differs);
    EXPECT_FALSE(dpo::collateSharedPrompt(pairs, 0).has_value());
    EXPECT_THROW(dpo::collateSharedPrompt({}, 0), dpo::Error);

    // An empty prompt (nothing to share, and nothing before the first completion token) is refused too.
    auto one = dpotest::tokenizedFixturePairs("llama-gqa");
    one[0].chosen.promptLength = one[0].rejected.promptLength = 0;
    EXPECT_FALSE(dpo::collateSharedPrompt(one, 0).has_value());
}

} // namespace test_shared_prompt
