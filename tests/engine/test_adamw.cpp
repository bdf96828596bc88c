// AdamW against torch.optim.AdamW's update written out independently in double precision, and the
// bfloat16 path: the float32 master copy follows the float32 trajectory exactly, the bf16 parameter is
// always the master rounded, and updates far below a bf16 ulp are kept instead of lost.
#include "engine/error.h"
#include "engine/training/adamw.h"
#include "engine/training/grad_accumulator.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace test_adamw { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

namespace {

// torch.optim.AdamW (amsgrad=False, maximize=False) on one scalar, in double.
struct ScalarAdamW {
    double p, m = 0, v = 0;
    int t = 0;
    void step(double g, double lr, double b1, double b2, double eps, double wd)
    {
        ++t;
        p *= 1.0 - lr * wd;
        m = b1 * m + (1.0 - b1) * g;
        v = b2 * v + (1.0 - b2) * g * g;
        const double bc1 = 1.0 - std::pow(b1, t), bc2 = 1.0 - std::pow(b2, t);
        p -= lr / bc1 * m / (std::sqrt(v) / std::sqrt(bc2) + eps);
    }
};

// A deterministic gradient sequence with changing signs and scales.
double gradAt(int step, int i)
{
    return std::sin(0.7 * step + 1.3 * i) * (1.0 + 0.1 * i) + 0.05 * (i % 3);
}

} // namespace

struct AdamWCase {
    double lr, wd;
    dpo::AdamWKernel kernel = dpo::AdamWKernel::PerTensor;
};

class AdamWFormula : public ::testing::TestWithParam<AdamWCase> { };

TEST_P(AdamWFormula, Float32MatchesTorchFormula)
{
    const auto [lr, wd, kernel] = GetParam();
    const int n = 7;
    std::vector<float> init(n);
    for (int i = 0; i < n; ++i)
        init[size_t(i)] = 0.3f * float(i) - 1.0f;
    auto p = torch::tensor(init).requires_grad_(true);
    dpo::AdamWOptions o;
    o.weightDecay = wd;
    o.beta1 = 0.9;
    o.beta2 = 0.95;
    o.eps = 1e-6;
    o.kernel = kernel;
    dpo::AdamW opt({ { "w", p } }, o);
    std::vector<ScalarAdamW> ref;
    for (float x : init)
        ref.push_back({ double(x) });
    for (int step = 1; step <= 25; ++step) {
        std::vector<float> g(n);
        for (int i = 0; i < n; ++i) {
            g[size_t(i)] = float(gradAt(step, i));
            ref[size_t(i)].step(double(g[size_t(i)]), lr, o.beta1, o.beta2, o.eps, wd);
        }
        p.mutable_grad() = torch::tensor(g);
        opt.step(lr);
    }
    EXPECT_EQ(opt.stepCount(), 25);
    for (int i = 0; i < n; ++i)
        EXPECT_NEAR(p[i].item<double>(), ref[size_t(i)].p, 2e-6 * std::max(1.0, std::abs(ref[size_t(i)].p))) << i;
}

INSTANTIATE_TEST_SUITE_P(Settings, AdamWFormula,
    ::testing::Values(AdamWCase { 1e-3, 0.0 }, AdamWCase { 1e-2, 0.1 }, AdamWCase { 3e-4, 0.01 },
        AdamWCase { 1e-3, 0.0, dpo::AdamWKernel::MultiTensor },
        AdamWCase { 1e-2, 0.1, dpo::AdamWKernel::MultiTensor }));

// A tensor above the 4M-element block of the per-tensor kernel, and several tensors through the
// multi-tensor kernel (some decayed, some not, one bf16 with a master copy), against torch's formula
// in float64 tensors.
TEST(AdamW, EveryKernelMatchesTheFormula)
{
    std::vector<dpo::AdamWKernel> kernels = { dpo::AdamWKernel::PerTensor, dpo::AdamWKernel::MultiTensor };
    if (dpo::adamWFusedBuilt()) // torch's own fused kernel (CPU since libtorch 2.4)
        kernels.push_back(dpo::AdamWKernel::Fused);
    for (const auto kernel : kernels) {
        const char *what = kernel == dpo::AdamWKernel::MultiTensor ? " multi"
            : kernel == dpo::AdamWKernel::Fused                    ? " fused"
                                                                   : " per tensor";
        torch::manual_seed(5);
        const int64_t big = (int64_t(4) << 20) + 37;
        std::vector<std::pair<std::string, torch::Tensor>> params
            = { { "model.embed_tokens.weight", torch::randn({ big }) }, { "model.norm.weight", torch::randn({ 5, 3 }) },
                  { "lm_head.weight", torch::randn({ 6, 4 }).to(torch::kBFloat16) } };
        std::vector<torch::Tensor> ref, m, v;
        for (auto &[n, p] : params) {
            ref.push_back(p.to(torch::kDouble));
            m.push_back(torch::zeros_like(ref.back()));
            v.push_back(torch::zeros_like(ref.back()));
        }
        dpo::AdamWOptions o;
        o.weightDecay = 0.1;
        o.kernel = kernel;
        dpo::AdamW opt(params, o);
        const double lr = 1e-2, clip = 0.75;
        for (int step = 1; step <= 3; ++step) {
            std::vector<torch::Tensor> grads;
            for (size_t i = 0; i < params.size(); ++i) {
                grads.push_back(torch::randn(params[i].second.sizes()));
                const auto g = grads.back().to(torch::kDouble) * double(float(clip));
                if (dpo::hfDecaysParameter(params[i].first))
                    ref[i] *= 1.0 - lr * o.weightDecay;
                m[i] = o.beta1 * m[i] + (1.0 - o.beta1) * g;
                v[i] = o.beta2 * v[i] + (1.0 - o.beta2) * g * g;
                const double bc1 = 1.0 - std::pow(o.beta1, step), bc2 = 1.0 - std::pow(o.beta2, step);
                ref[i] -= lr / bc1 * m[i] / (v[i].sqrt() / std::sqrt(bc2) + o.eps);
            }
            opt.step(lr, torch::tensor(float(clip)), grads); // the clip factor as a device scalar
        }
        for (size_t i = 0; i < params.size(); ++i) {
            const double tol = params[i].second.scalar_type() == torch::kBFloat16 ? 1e-2 : 1e-5;
            const double err = (params[i].second.to(torch::kDouble) - ref[i]).abs().max().item<double>();
            EXPECT_LT(err, tol) << params[i].first << what;
        }
        // The bf16 parameter's float32 master follows the formula at float32 precision.
        const auto master = opt.stateTensors().at("master.lm_head.weight");
        EXPECT_LT((master.to(torch::kDouble) - ref[2]).abs().max().item<double>(), 1e-5) << what;
    }
}

// adamw_state_dtype weights: torch's AdamW on bfloat16 parameters, op for op in bf16 (golden values from
// tests/data/adamw-bf16/make_golden.py, checked there against torch.optim.AdamW): the per-tensor and
// multi-tensor updates bit-exact, torch's fused kernel (float32 inside) within a bf16 step.
TEST(AdamW, Bfloat16StateFollowsTorchOnBfloat16Parameters)
{
    const auto golden = dpotest::readJson(dpotest::fixture("adamw-bf16/golden.json"));
    auto tensor = [](const nlohmann::json &values, const nlohmann::json &shape) {
        return torch::tensor(values.get<std::vector<double>>(), torch::kDouble)
            .view(shape.get<std::vector<int64_t>>())
            .to(torch::kBFloat16);
    };
    std::vector<dpo::AdamWKernel> kernels = { dpo::AdamWKernel::PerTensor, dpo::AdamWKernel::MultiTensor };
    if (dpo::adamWFusedBuilt())
        kernels.push_back(dpo::AdamWKernel::Fused);
    for (const auto kernel : kernels) {
        std::vector<std::pair<std::string, torch::Tensor>> params;
        for (size_t i = 0; i < golden["names"].size(); ++i)
            params.emplace_back(
                golden["names"][i].get<std::string>(), tensor(golden["params"][i], golden["shapes"][i]));
        dpo::AdamWOptions o;
        o.lr = golden["lr"];
        o.beta1 = golden["beta1"];
        o.beta2 = golden["beta2"];
        o.eps = golden["eps"];
        o.weightDecay = golden["weight_decay"];
        o.kernel = kernel;
        o.float32State = false;
        dpo::AdamW opt(params, o);
        for (int step = 0; step < golden["steps"].get<int>(); ++step) {
            std::vector<torch::Tensor> grads;
            for (size_t i = 0; i < params.size(); ++i)
                grads.push_back(tensor(golden["grads"][size_t(step)][i], golden["shapes"][i]));
            opt.step(o.lr, torch::tensor(golden["clip"].get<float>()), grads);
        }
        const auto state = opt.stateTensors();
        EXPECT_EQ(state.count("master." + params[0].first), 0u) << "no master copy";
        for (size_t i = 0; i < params.size(); ++i) {
            const auto &name = params[i].first;
            const std::pair<torch::Tensor, const char *> checks[] = { { params[i].second, "final" },
                { state.at("exp_avg." + name), "exp_avg" }, { state.at("exp_avg_sq." + name), "exp_avg_sq" } };
            for (const auto &[got, key] : checks) {
                ASSERT_EQ(got.scalar_type(), torch::kBFloat16) << key;
                const auto want = tensor(golden[key][i], golden["shapes"][i]);
                if (kernel != dpo::AdamWKernel::Fused) {
                    EXPECT_TRUE(torch::equal(got, want)) << name << " " << key << "\n" << got << want;
                } else { // float32 inside, one rounding per tensor write: within a bf16 step of the largest value
                    const double err = (got.to(torch::kDouble) - want.to(torch::kDouble)).abs().max().item<double>();
                    EXPECT_LE(err, want.to(torch::kDouble).abs().max().item<double>() / 128) << name << " " << key;
                }
            }
        }
    }
}

TEST(AdamW, FusedKernelAbsentFromTheBuildIsAClearError)
{
    if (dpo::adamWFusedBuilt())
        GTEST_SKIP() << "this libtorch has _fused_adamw_ (EveryKernelMatchesTheFormula runs it)";
    dpo::AdamWOptions o;
    o.kernel = dpo::AdamWKernel::Fused;
    auto p = torch::zeros({ 3 });
    dpo::AdamW opt({ { "w", p } }, o);
    try {
        opt.step(1e-3, 1.0, { torch::ones({ 3 }) });
        FAIL() << "expected an error";
    } catch (const dpo::Error &e) {
        EXPECT_NE(std::string(e.what()).find("_fused_adamw_"), std::string::npos) << e.what();
    }
    EXPECT_TRUE(torch::equal(p, torch::zeros({ 3 }))) << "nothing may change";
}

// A clip factor given as a tensor gives the same bits as the same factor given as a double.
TEST(AdamW, TensorScaleEqualsScalarScale)
{
    torch::manual_seed(4);
    torch::Tensor a = torch::randn({ 9, 5 }), b = a.clone();
    dpo::AdamWOptions o;
    o.weightDecay = 0.01;
    dpo::AdamW byDouble({ { "w", a } }, o), byTensor({ { "w", b } }, o);
    for (int step = 0; step < 4; ++step) {
        const auto g = torch::randn({ 9, 5 });
        byDouble.step(1e-2, double(0.3f), { g });
        byTensor.step(1e-2, torch::tensor(0.3f), { g });
    }
    EXPECT_TRUE(torch::equal(a, b));
}

// bf16 parameters: the master copy is float32 and follows exactly the trajectory of the same optimizer
// on float32 parameters; the parameter itself is the master rounded to bf16 after every step.
TEST(AdamW, BFloat16KeepsFloat32MasterOnTheFloat32Trajectory)
{
    torch::manual_seed(3);
    auto init = torch::randn({ 4, 5 });
    auto p32 = init.clone().requires_grad_(true);
    auto p16 = init.to(torch::kBFloat16).requires_grad_(true);
    // Start both from the same values: the bf16-rounded ones.
    {
        torch::NoGradGuard g;
        p32.copy_(p16.to(torch::kFloat32));
    }
    dpo::AdamWOptions o;
    o.weightDecay = 0.05;
    dpo::AdamW a32({ { "w", p32 } }, o), a16({ { "w", p16 } }, o);
    for (int step = 1; step <= 10; ++step) {
        auto g = torch::randn({ 4, 5 });
        p32.mutable_grad() = g.clone();
        p16.mutable_grad() = g.to(torch::kBFloat16); // the backward pass of a bf16 model yields bf16 grads
        // The float32 run sees the same (bf16-rounded) gradient.
        p32.mutable_grad() = p16.grad().to(torch::kFloat32);
        a32.step(1e-3);
        a16.step(1e-3);
    }
    const auto state = a16.stateTensors();
    ASSERT_TRUE(state.count("master.w"));
    ASSERT_FALSE(a32.stateTensors().count("master.w")) << "float32 parameters need no master copy";
    const auto &master = state.at("master.w");
    EXPECT_EQ(master.scalar_type(), torch::kFloat32);
    EXPECT_EQ(state.at("exp_avg.w").scalar_type(), torch::kFloat32);
    EXPECT_EQ(state.at("exp_avg_sq.w").scalar_type(), torch::kFloat32);
    EXPECT_TRUE(torch::allclose(master, p32.detach(), 0, 1e-7)) << (master - p32).abs().max().item<double>();
    EXPECT_TRUE(torch::equal(p16.detach(), master.to(torch::kBFloat16)));
}

// Updates of 1e-5 on weights near 1 are ~1/800 of a bf16 ulp (2^-7): applied to bf16 weights directly
// they vanish; with the master copy they accumulate until the bf16 weight moves.
TEST(AdamW, BFloat16SmallUpdatesAccumulateInTheMaster)
{
    auto p = torch::ones({ 3 }, torch::kBFloat16).requires_grad_(true);
    dpo::AdamW opt({ { "w", p } }, dpo::AdamWOptions {});
    const double lr = 1e-5;
    // Without a master: one step's update rounds away.
    {
        auto naive = torch::ones({ 3 }, torch::kBFloat16);
        naive.sub_(torch::full({ 3 }, lr, torch::kBFloat16));
        ASSERT_TRUE(torch::equal(naive, torch::ones({ 3 }, torch::kBFloat16)));
    }
    for (int step = 0; step < 2000; ++step) {
        p.mutable_grad() = torch::ones({ 3 }, torch::kBFloat16); // Adam's step is then ~lr per step
        opt.step(lr);
    }
    const auto master = opt.stateTensors().at("master.w");
    EXPECT_NEAR(master[0].item<double>(), 1.0 - 2000 * lr, 1e-4);
    EXPECT_LT(p[0].item<double>(), 1.0) << "the bf16 weight moved once the master drifted past half an ulp";
    EXPECT_TRUE(torch::equal(p.detach(), master.to(torch::kBFloat16)));
}

TEST(AdamW, StateRoundTripAndErrors)
{
    auto p = torch::zeros({ 2, 2 }, torch::kBFloat16).requires_grad_(true);
    dpo::AdamW opt({ { "w", p } }, dpo::AdamWOptions {});
    p.mutable_grad() = torch::ones({ 2, 2 }, torch::kBFloat16);
    opt.step(1e-2);
    auto state = opt.stateTensors();
    std::map<std::string, torch::Tensor> copy;
    for (const auto &[k, v] : state)
        copy[k] = v.clone();

    auto q = torch::zeros({ 2, 2 }, torch::kBFloat16).requires_grad_(true);
    dpo::AdamW restored({ { "w", q } }, dpo::AdamWOptions {});
    restored.loadStateTensors(copy, opt.stepCount());
    EXPECT_EQ(restored.stepCount(), 1);
    for (const auto &[k, v] : restored.stateTensors())
        EXPECT_TRUE(torch::equal(v, state.at(k))) << k;

    auto missing = copy;
    missing.erase("exp_avg_sq.w");
    try {
        restored.loadStateTensors(missing, 1);
        FAIL() << "expected an error";
    } catch (const dpo::Error &e) {
        EXPECT_NE(std::string(e.what()).find("exp_avg_sq.w"), std::string::npos) << e.what();
    }
    auto wrongShape = copy;
    wrongShape["exp_avg.w"] = torch::zeros({ 3 });
    EXPECT_THROW(restored.loadStateTensors(wrongShape, 1), dpo::Error);
}

// Micro-batch gradients of a bfloat16 parameter: autograd's own accumulation in .grad rounds
// 1 + 2^-9 + 2^-9 + 2^-9 back to 1 (bf16 keeps 8 bits: the spacing at 1 is 2^-7); the accumulator keeps
// the float32 sum 1.005859375 (worked by hand). float32 parameters keep autograd's .grad.
TEST(GradAccumulator, Bfloat16MicroBatchesSumInFloat32)
{
    torch::Tensor w = torch::zeros({ 2 }, torch::kBFloat16).requires_grad_(true);
    torch::Tensor v = torch::zeros({ 2 }, torch::kFloat32).requires_grad_(true);
    const std::vector<double> parts = { 1.0, 1.0 / 512, 1.0 / 512, 1.0 / 512 };

    for (double c : parts) // autograd alone: the bf16 .grad
        (w * c).sum().backward();
    EXPECT_EQ(w.grad()[0].item<float>(), 1.0f);
    w.mutable_grad() = torch::Tensor();

    dpo::GradAccumulator acc({ w, v });
    for (double c : parts) {
        ((w * c).sum() + (v * c).sum()).backward();
        acc.collect();
    }
    const std::vector<torch::Tensor> g = acc.gradients();
    ASSERT_EQ(g.size(), 2u);
    EXPECT_EQ(g[0].scalar_type(), torch::kFloat32);
    EXPECT_EQ(g[0][0].item<float>(), 1.005859375f);
    EXPECT_FALSE(w.grad().defined()); // moved out of the bf16 .grad
    EXPECT_TRUE(g[1].is_same(v.grad()));
    EXPECT_FLOAT_EQ(g[1][1].item<float>(), 1.005859375f);
    acc.clear();
    EXPECT_FALSE(acc.gradients()[0].defined());

    // A step's only micro-batch: its bf16 gradient is used where it is (nothing to sum).
    (w * 3.0).sum().backward();
    acc.collect(/*onlyContribution=*/true);
    const auto only = acc.gradients()[0];
    EXPECT_TRUE(only.is_same(w.grad()));
    EXPECT_EQ(only.scalar_type(), torch::kBFloat16);
    EXPECT_EQ(only[0].item<float>(), 3.0f);
}

// step() with the gradients given equals step() reading .grad, bit for bit.
TEST(AdamW, ExplicitGradientsEqualGradFields)
{
    torch::manual_seed(3);
    torch::Tensor a = torch::randn({ 4, 3 }).requires_grad_(true), b = a.detach().clone().requires_grad_(true);
    torch::Tensor ga = torch::randn({ 4, 3 });
    dpo::AdamWOptions o;
    o.weightDecay = 0.1;
    dpo::AdamW byField({ { "w", a } }, o), byList({ { "w", b } }, o);
    for (int step = 0; step < 3; ++step) {
        a.mutable_grad() = ga * double(step + 1);
        byField.step(1e-2, 0.5);
        byList.step(1e-2, 0.5, { ga * double(step + 1) });
    }
    EXPECT_TRUE(torch::equal(a, b));
    EXPECT_THROW(byList.step(1e-2, 1.0, {}), dpo::Error);
}

} // namespace test_adamw
