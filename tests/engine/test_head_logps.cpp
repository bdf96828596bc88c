// The fused head kernel (head_logps.h) against the same quantities composed from plain torch ops:
// log_softmax + gather, entropy, mean logit, argmax, log Σp², and autograd's gradients of them.
#include "engine/error.h"
#include "engine/training/head_logps.h"

#include <gtest/gtest.h>

namespace test_head_logps {

using dpo::headLogpsFused;
using dpo::HeadLogpsOptions;

struct Case {
    const char *name;
    int64_t rows, hidden, vocab, chunkRows;
    double logitScale; // spread of the logits
};

class HeadLogps : public ::testing::TestWithParam<Case> { };

// Reference: the composed torch graph in float64 (exp/log from libm, autograd's softmax gradients).
struct Reference {
    torch::Tensor logp, entropy, logitMean, correct, aligned, gradRows, gradWeight;
};
Reference reference(
    const torch::Tensor &rows, const torch::Tensor &weight, const torch::Tensor &targets, const torch::Tensor &upstream)
{
    auto r = rows.to(torch::kDouble).detach().requires_grad_(true);
    auto w = weight.to(torch::kDouble).detach().requires_grad_(true);
    auto logits = torch::mm(r, w.t());
    auto lp = torch::log_softmax(logits, -1);
    auto logp = lp.gather(1, targets.unsqueeze(1)).squeeze(1);
    (logp * upstream.to(torch::kDouble)).sum().backward();
    Reference ref;
    ref.logp = logp.detach();
    const auto l = lp.detach();
    ref.entropy = -(l.exp() * l).sum(-1);
    ref.logitMean = logits.detach().mean(-1);
    ref.correct = logits.detach().argmax(-1).eq(targets).to(torch::kDouble);
    ref.aligned = ref.logp - torch::logsumexp(2.0 * l, -1);
    ref.gradRows = r.grad();
    ref.gradWeight = w.grad();
    return ref;
}

void expectClose(const torch::Tensor &got, const torch::Tensor &want, double atol, double rtol, const char *what)
{
    const auto g = got.to(torch::kDouble), w = want.to(torch::kDouble);
    const double err = ((g - w).abs() - rtol * w.abs()).max().item<double>();
    EXPECT_LE(err, atol) << what << ": max |got - want| beyond tolerance; max abs diff "
                         << (g - w).abs().max().item<double>();
}

TEST_P(HeadLogps, EqualsComposedTorchOpsWithGradients)
{
    const Case c = GetParam();
    torch::manual_seed(7);
    auto rows = (torch::randn({ c.rows, c.hidden }) * c.logitScale / std::sqrt(double(c.hidden))).requires_grad_(true);
    auto weight = torch::randn({ c.vocab, c.hidden }).requires_grad_(true);
    auto targets = torch::randint(0, c.vocab, { c.rows }, torch::kLong);
    // Make one target the argmax so `correct` is not all zero.
    {
        torch::NoGradGuard noGrad;
        targets[0] = torch::mm(rows.slice(0, 0, 1), weight.t()).argmax(-1).item<int64_t>();
    }
    auto upstream = torch::randn({ c.rows });
    const Reference ref = reference(rows, weight, targets, upstream);

    HeadLogpsOptions options;
    options.stats = true;
    options.chunkRows = c.chunkRows;
    auto out = headLogpsFused(rows, weight, targets, options);
    ASSERT_EQ(out.size(), 5u);
    expectClose(out[0], ref.logp, 2e-5, 1e-6, "log p(target)");
    expectClose(out[1], ref.entropy, 2e-5, 1e-5, "entropy");
    expectClose(out[2], ref.logitMean, 1e-5, 1e-5, "mean logit");
    expectClose(out[3], ref.correct, 0, 0, "argmax == target");
    EXPECT_EQ(out[3][0].item<float>(), 1.0f);
    expectClose(out[4], ref.aligned, 5e-5, 1e-5, "log p − log Σp²");
    EXPECT_FALSE(out[1].requires_grad());

    (out[0] * upstream).sum().backward();
    const double gScale = ref.gradWeight.abs().max().item<double>();
    expectClose(rows.grad(), ref.gradRows, 1e-5 * std::max(1.0, ref.gradRows.abs().max().item<double>()), 1e-5,
        "rows gradient");
    expectClose(weight.grad(), ref.gradWeight, 1e-5 * std::max(1.0, gScale), 1e-5, "weight gradient");
}

INSTANTIATE_TEST_SUITE_P(Shapes, HeadLogps,
    ::testing::Values(Case { "tinyVocabTail", 6, 8, 37, 0, 3.0 }, // V not a multiple of the 16 lanes
        Case { "chunkedShortLast", 11, 16, 1000, 4, 5.0 }, // 3 chunks, the last one short
        Case { "qwenVocab", 5, 32, 151936, 2, 8.0 }, // 152k: the lane sums must not lose precision
        Case { "peakedLogits", 4, 8, 257, 0, 400.0 }), // most exp() terms underflow to the clamp
    [](const ::testing::TestParamInfo<Case> &info) { return std::string(info.param.name); });

TEST(HeadLogpsTies, ArgmaxTakesTheFirstMaximumAsTorchDoes)
{
    // Logits equal across the vocabulary except where the rows make them larger: with weight rows 3
    // and 20 identical, both score the same maximum; torch.argmax returns 3.
    auto weight = torch::zeros({ 40, 2 });
    weight[3][0] = 1.0;
    weight[20][0] = 1.0;
    auto rows = torch::tensor({ { 2.0f, 0.0f } });
    HeadLogpsOptions options;
    options.stats = true;
    EXPECT_EQ(torch::mm(rows, weight.t()).argmax(-1).item<int64_t>(), 3);
    auto hit = headLogpsFused(rows, weight, torch::tensor({ int64_t(3) }), options);
    auto miss = headLogpsFused(rows, weight, torch::tensor({ int64_t(20) }), options);
    EXPECT_EQ(hit[3].item<float>(), 1.0f);
    EXPECT_EQ(miss[3].item<float>(), 0.0f);
}

TEST(HeadLogpsTies, BfloatWeightsMatchTheFloatPathAtBfloatPrecision)
{
    torch::manual_seed(3);
    auto rows = torch::randn({ 7, 16 }).to(torch::kBFloat16);
    auto weight = torch::randn({ 300, 16 }).to(torch::kBFloat16).requires_grad_(true);
    auto targets = torch::randint(0, 300, { 7 }, torch::kLong);
    auto out = headLogpsFused(rows, weight, targets);
    // The head's matmul in bf16 (as the model computes it), log-softmax in float32.
    auto want = torch::log_softmax(torch::mm(rows, weight.t()), -1, torch::kFloat32)
                    .gather(1, targets.unsqueeze(1))
                    .squeeze(1);
    expectClose(out[0], want.detach(), 1e-4, 1e-5, "bf16 log p(target)");
    out[0].sum().backward();
    ASSERT_TRUE(weight.grad().defined());
    EXPECT_EQ(weight.grad().scalar_type(), torch::kBFloat16);
}

TEST(HeadLogpsTies, OutOfVocabularyTargetIsAnError)
{
    auto rows = torch::randn({ 2, 4 });
    auto weight = torch::randn({ 10, 4 });
    EXPECT_THROW(headLogpsFused(rows, weight, torch::tensor({ int64_t(1), int64_t(10) })), dpo::Error);
    EXPECT_THROW(headLogpsFused(rows, weight, torch::tensor({ int64_t(-1), int64_t(0) })), dpo::Error);
    EXPECT_THROW(headLogpsFused(rows, weight, torch::tensor({ int64_t(1) })), dpo::Error); // 2 rows, 1 target
}

} // namespace test_head_logps
