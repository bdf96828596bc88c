// DPO losses: the fixture values (sigmoid, hinge, robust, ipo at two betas and label smoothings,
// and TRL's metrics) and every other loss against the formula re-evaluated element by element in
// plain double arithmetic.
#include "test_util.h"

#include "engine/training/dpo_loss.h"
#include "engine/training/logprobs.h"
#include "engine/error.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>

namespace test_dpo_loss { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

namespace {

using nlohmann::json;

torch::Tensor toTensor(const std::vector<double> &v)
{
    return torch::tensor(v, torch::kDouble);
}

std::vector<double> toVector(const torch::Tensor &t)
{
    const auto c = t.detach().to(torch::kCPU, torch::kDouble).contiguous();
    return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

struct Fixture {
    json expected;
    std::vector<double> pc, pr, rc, rr; // summed
    std::vector<double> apc, apr, arc, arr; // per-token means
    std::vector<double> nc, nr; // completion token counts
};

const Fixture &fixture()
{
    static const Fixture f = [] {
        Fixture x;
        x.expected = dpotest::readJson(dpotest::fixture("llama-gqa/expected.json"));
        const auto &l = x.expected["logps"];
        const auto &m = x.expected["mean_logps"];
        x.pc = l["policy_chosen"].get<std::vector<double>>();
        x.pr = l["policy_rejected"].get<std::vector<double>>();
        x.rc = l["ref_chosen"].get<std::vector<double>>();
        x.rr = l["ref_rejected"].get<std::vector<double>>();
        x.apc = m["policy_chosen"].get<std::vector<double>>();
        x.apr = m["policy_rejected"].get<std::vector<double>>();
        x.arc = m["ref_chosen"].get<std::vector<double>>();
        x.arr = m["ref_rejected"].get<std::vector<double>>();
        for (const auto &ex : x.expected["examples"]) {
            x.nc.push_back(double(ex["chosen_ids"].size()));
            x.nr.push_back(double(ex["rejected_ids"].size()));
        }
        return x;
    }();
    return f;
}

dpo::DpoInputs sumInputs(const Fixture &f)
{
    return { toTensor(f.pc), toTensor(f.pr), toTensor(f.rc), toTensor(f.rr), toTensor(f.nc), toTensor(f.nr) };
}

// Per-token means passed as "sums over one token", so that ipo sees exactly the fixture's means.
dpo::DpoInputs meanInputs(const Fixture &f)
{
    const auto ones = torch::ones({ int64_t(f.apc.size()) }, torch::kDouble);
    return { toTensor(f.apc), toTensor(f.apr), toTensor(f.arc), toTensor(f.arr), ones, ones };
}

TEST(DpoLoss, FixtureLossesMatchReference)
{
    const Fixture &f = fixture();
    int checked = 0;
    for (const auto &[key, value] : f.expected["losses"].items()) {
        // key: "<type>/beta=<b>/ls=<e>" or "ipo/beta=<b>/mean_logps"
        const auto slash = key.find('/');
        const std::string type = key.substr(0, slash);
        const double beta = std::stod(key.substr(key.find("beta=") + 5));
        const auto lsPos = key.find("ls=");
        const double ls = lsPos == std::string::npos ? 0.0 : std::stod(key.substr(lsPos + 3));
        // The fixture predates TRL 1.x: its conservative-DPO sigmoid (label smoothing) no longer
        // exists there, and the engine refuses label_smoothing for sigmoid.
        if (type == "sigmoid" && ls > 0)
            continue;

        dpo::LossConfig cfg;
        cfg.types = { type };
        cfg.beta = beta;
        cfg.labelSmoothing = ls;
        const auto out = dpo::computeDpoLoss(cfg, type == "ipo" ? meanInputs(f) : sumInputs(f));
        const auto perPair = toVector(out.perPair);
        const auto want = value["per_example"].get<std::vector<double>>();
        ASSERT_EQ(perPair.size(), want.size()) << key;
        for (size_t i = 0; i < want.size(); ++i)
            EXPECT_NEAR(perPair[i], want[i], 1e-5) << key << " example " << i;
        EXPECT_NEAR(out.loss.item<double>(), value["mean"].get<double>(), 1e-5) << key;
        ++checked;
    }
    EXPECT_EQ(checked, 10);
}

TEST(DpoLoss, IpoFromSumsAndCountsMatchesMeans)
{
    // The fixture's means are float32 sums / counts, so a few 1e-6 differ from the double division.
    const Fixture &f = fixture();
    for (double beta : { 0.1, 0.5 }) {
        dpo::LossConfig cfg;
        cfg.types = { "ipo" };
        cfg.beta = beta;
        const auto out = dpo::computeDpoLoss(cfg, sumInputs(f));
        char key[64];
        std::snprintf(key, sizeof key, "ipo/beta=%g/mean_logps", beta);
        EXPECT_NEAR(out.loss.item<double>(), f.expected["losses"][key]["mean"].get<double>(), 1e-4);
    }
}

TEST(DpoLoss, FixtureMetricsMatchReference)
{
    const Fixture &f = fixture();
    dpo::LossConfig cfg; // sigmoid, beta 0.1
    const auto out = dpo::computeDpoLoss(cfg, sumInputs(f));
    const auto &want = f.expected["metrics_beta_0.1"];
    ASSERT_EQ(out.metrics.size(), want.size());
    for (const auto &[name, value] : want.items()) {
        ASSERT_TRUE(out.metrics.count(name)) << name;
        EXPECT_NEAR(out.metrics.at(name), value.get<double>(), 1e-5) << name;
    }
}

// TRL 1.x: ipo normalises by length inside its own term only; rewards/* and logps/* stay on the
// summed log-probs (TRL 0.x divided every log-prob by its length as soon as ipo was listed).
TEST(DpoLoss, IpoMetricsUseSummedLogpsAsTrl1)
{
    const Fixture &f = fixture();
    dpo::LossConfig cfg;
    cfg.types = { "ipo" };
    const auto out = dpo::computeDpoLoss(cfg, sumInputs(f));
    double chosen = 0, logpsChosen = 0;
    for (size_t i = 0; i < f.pc.size(); ++i) {
        chosen += 0.1 * (f.pc[i] - f.rc[i]);
        logpsChosen += f.pc[i];
    }
    EXPECT_NEAR(out.metrics.at("rewards/chosen"), chosen / f.pc.size(), 1e-9);
    EXPECT_NEAR(out.metrics.at("logps/chosen"), logpsChosen / f.pc.size(), 1e-9);
}

// ---- independent evaluation of every loss on random inputs ----

double logSig(double x)
{
    return x >= 0 ? -std::log1p(std::exp(-x)) : x - std::log1p(std::exp(x));
}
double sig(double x)
{
    return 1.0 / (1.0 + std::exp(-x));
}

struct Random {
    std::vector<double> pc, pr, rc, rr, nc, nr;
};

Random randomInputs(unsigned seed, int n)
{
    std::mt19937 gen(seed);
    std::normal_distribution<double> logp(-40.0, 15.0);
    std::uniform_int_distribution<int> len(1, 30);
    Random r;
    for (int i = 0; i < n; ++i) {
        r.pc.push_back(logp(gen));
        r.pr.push_back(logp(gen));
        r.rc.push_back(r.pc.back() + logp(gen) / 10.0 + 4.0);
        r.rr.push_back(r.pr.back() + logp(gen) / 10.0 + 4.0);
        r.nc.push_back(len(gen));
        r.nr.push_back(len(gen));
    }
    return r;
}

// Expected per-pair losses from the formulas of the issue, in plain double arithmetic.
std::vector<double> reference(const std::string &type, const Random &x, double beta, double eps, double tau)
{
    const size_t n = x.pc.size();
    std::vector<double> out(n);
    std::vector<double> polLr(n), refLr(n), rhoC(n), rhoR(n);
    for (size_t i = 0; i < n; ++i) {
        polLr[i] = x.pc[i] - x.pr[i];
        refLr[i] = x.rc[i] - x.rr[i];
        rhoC[i] = x.pc[i] - x.rc[i];
        rhoR[i] = x.pr[i] - x.rr[i];
    }
    auto sigmoidForm = [&](double d) { return -(1 - eps) * logSig(beta * d) - eps * logSig(-beta * d); };
    if (type == "aot" || type == "aot_unpaired") {
        std::vector<double> a = type == "aot" ? polLr : rhoC;
        std::vector<double> b = type == "aot" ? refLr : rhoR;
        std::sort(a.begin(), a.end());
        std::sort(b.begin(), b.end());
        for (size_t i = 0; i < n; ++i)
            out[i] = type == "aot" ? sigmoidForm(a[i] - b[i]) : sigmoidForm(a[i] - b[i]);
        return out;
    }
    double sumPc = 0, sumNc = 0;
    for (size_t i = 0; i < n; ++i) {
        sumPc += x.pc[i];
        sumNc += x.nc[i];
    }
    for (size_t i = 0; i < n; ++i) {
        const double d = polLr[i] - refLr[i];
        const double z = beta * d;
        const double c = beta * rhoC[i], r = beta * rhoR[i];
        if (type == "sigmoid")
            out[i] = sigmoidForm(d);
        else if (type == "hinge")
            out[i] = std::max(0.0, 1 - z);
        else if (type == "robust")
            out[i] = (-(1 - eps) * logSig(z) + eps * logSig(-z)) / (1 - 2 * eps);
        else if (type == "exo_pair")
            out[i] = sig(z) * (logSig(z) - std::log(1 - eps)) + sig(-z) * (logSig(-z) - std::log(eps));
        else if (type == "nca_pair")
            out[i] = -logSig(c) - 0.5 * logSig(-c) - 0.5 * logSig(-r);
        else if (type == "bco_pair")
            out[i] = -logSig(c) - logSig(-r);
        else if (type == "sppo_hard")
            out[i] = std::pow(rhoC[i] - 1 / (2 * beta), 2) + std::pow(rhoR[i] + 1 / (2 * beta), 2);
        else if (type == "apo_zero")
            out[i] = (1 - sig(c)) + sig(r);
        else if (type == "apo_down")
            out[i] = sig(c) + (1 - sig(z));
        else if (type == "discopop") {
            const double m = sig(z / tau);
            out[i] = (1 - m) * -logSig(z) + m * std::exp(-z);
        } else if (type == "sigmoid_norm")
            out[i] = -logSig(beta * (rhoC[i] / x.nc[i] - rhoR[i] / x.nr[i]));
        else if (type == "ipo") {
            const double dm = (x.pc[i] / x.nc[i] - x.pr[i] / x.nr[i]) - (x.rc[i] / x.nc[i] - x.rr[i] / x.nr[i]);
            out[i] = std::pow(dm - 1 / (2 * beta), 2);
        } else if (type == "sft")
            out[i] = -sumPc / sumNc;
        else
            ADD_FAILURE() << "no reference formula for " << type;
    }
    return out;
}

dpo::DpoInputs inputsOf(const Random &x, torch::ScalarType dtype = torch::kDouble)
{
    return { toTensor(x.pc).to(dtype), toTensor(x.pr).to(dtype), toTensor(x.rc).to(dtype), toTensor(x.rr).to(dtype),
        toTensor(x.nc).to(dtype), toTensor(x.nr).to(dtype) };
}

TEST(DpoLoss, EveryLossMatchesIndependentFormula)
{
    const Random x = randomInputs(7, 16);
    for (const auto &type : dpo::dpoLossTypes()) {
        for (double beta : { 0.1, 0.5 }) {
            for (double eps : { 0.0, 0.2 }) {
                if (type == "exo_pair" && eps == 0.0)
                    continue;
                const bool usesEps
                    = type == "robust" || type == "exo_pair" || type == "aot" || type == "aot_unpaired";
                if (!usesEps && eps > 0.0)
                    continue;
                for (double tau : { 0.05, 0.5 }) {
                    if (type != "discopop" && tau != 0.05)
                        continue;
                    dpo::LossConfig cfg;
                    cfg.types = { type };
                    cfg.beta = beta;
                    cfg.labelSmoothing = eps;
                    cfg.discopopTau = tau;
                    const auto got = toVector(dpo::computeDpoLoss(cfg, inputsOf(x)).perPair);
                    const auto want = reference(type, x, beta, eps, tau);
                    ASSERT_EQ(got.size(), want.size());
                    for (size_t i = 0; i < want.size(); ++i)
                        EXPECT_NEAR(got[i], want[i], 1e-9 * std::max(1.0, std::abs(want[i])))
                            << type << " beta=" << beta << " eps=" << eps << " tau=" << tau << " pair " << i;
                }
            }
        }
    }
}

TEST(DpoLoss, AotSortsOverTheBatch)
{
    // With a batch of one pair aot equals sigmoid; with more pairs it must not (sorting pairs them up
    // differently), which the formula test alone would not reveal if sorting were skipped on both sides.
    const Random x = randomInputs(11, 8);
    dpo::LossConfig aot, sigmoid;
    aot.types = { "aot" };
    sigmoid.types = { "sigmoid" };
    const auto a = toVector(dpo::computeDpoLoss(aot, inputsOf(x)).perPair);
    const auto s = toVector(dpo::computeDpoLoss(sigmoid, inputsOf(x)).perPair);
    double diff = 0;
    for (size_t i = 0; i < a.size(); ++i)
        diff += std::abs(a[i] - s[i]);
    EXPECT_GT(diff, 1e-3);
}

TEST(DpoLoss, WeightedLossesAndTrlRewardScaling)
{
    const Random x = randomInputs(3, 10);
    dpo::LossConfig cfg;
    cfg.types = { "sigmoid", "hinge", "sft" };
    cfg.weights = { 0.7, 0.2, 0.1 };
    cfg.beta = 0.2;
    const auto out = dpo::computeDpoLoss(cfg, inputsOf(x));
    const auto s = reference("sigmoid", x, 0.2, 0, 0.05);
    const auto h = reference("hinge", x, 0.2, 0, 0.05);
    const auto f = reference("sft", x, 0.2, 0, 0.05);
    double mean = 0, chosenReward = 0;
    const auto perPair = toVector(out.perPair);
    for (size_t i = 0; i < s.size(); ++i) {
        const double want = 0.7 * s[i] + 0.2 * h[i] + 0.1 * f[i];
        EXPECT_NEAR(perPair[i], want, 1e-9);
        mean += want / s.size();
        chosenReward += 0.2 * (x.pc[i] - x.rc[i]) / s.size();
    }
    EXPECT_NEAR(out.loss.item<double>(), mean, 1e-9);
    EXPECT_NEAR(out.metrics.at("rewards/chosen"), chosenReward, 1e-9);

    // TRL 1.x: rewards are β·log-ratio whatever the loss weights (TRL 0.x summed them per loss).
    dpo::LossConfig two;
    two.types = { "sigmoid", "hinge" };
    two.weights = { 3.0, 2.0 };
    const auto out2 = dpo::computeDpoLoss(two, inputsOf(x));
    double reward2 = 0;
    for (size_t i = 0; i < s.size(); ++i)
        reward2 += 0.1 * (x.pc[i] - x.rc[i]) / s.size();
    EXPECT_NEAR(out2.metrics.at("rewards/chosen"), reward2, 1e-9);
}

TEST(DpoLoss, DifferentiableInFloat32)
{
    const Random x = randomInputs(5, 6);
    for (const auto &type : dpo::dpoLossTypes()) {
        auto in = inputsOf(x, torch::kFloat32);
        in.policyChosen.requires_grad_(true);
        in.policyRejected.requires_grad_(true);
        dpo::LossConfig cfg;
        cfg.types = { type };
        cfg.labelSmoothing = type == "exo_pair" ? 0.1 : 0.0;
        const auto out = dpo::computeDpoLoss(cfg, in);
        EXPECT_EQ(out.loss.scalar_type(), torch::kFloat32) << type;
        out.loss.backward();
        ASSERT_TRUE(in.policyChosen.grad().defined()) << type;
        EXPECT_TRUE(torch::isfinite(in.policyChosen.grad()).all().item<bool>()) << type;
        EXPECT_GT(in.policyChosen.grad().abs().sum().item<double>(), 0.0) << type;
    }
}

TEST(DpoLoss, DiscopopStaysFiniteForLargeMargins)
{
    dpo::LossConfig cfg;
    cfg.types = { "discopop" };
    cfg.beta = 1.0;
    auto z = torch::tensor({ -2000.0, -100.0, 0.0, 100.0, 2000.0 }, torch::kFloat32);
    const auto zero = torch::zeros_like(z);
    const auto out = dpo::computeDpoLoss(cfg, { z, zero, zero, zero, {}, {} });
    EXPECT_TRUE(torch::isfinite(out.perPair).all().item<bool>()) << out.perPair;
}

TEST(DpoLoss, RunsOnCudaWhenAvailable)
{
    if (!torch::cuda::is_available())
        GTEST_SKIP() << "no CUDA device";
    const Fixture &f = fixture();
    auto in = sumInputs(f);
    for (auto *t :
        { &in.policyChosen, &in.policyRejected, &in.refChosen, &in.refRejected, &in.chosenCount, &in.rejectedCount })
        *t = t->to(torch::kCUDA, torch::kFloat32);
    const auto out = dpo::computeDpoLoss(dpo::LossConfig {}, in);
    EXPECT_NEAR(out.loss.item<double>(), f.expected["losses"]["sigmoid/beta=0.1/ls=0.0"]["mean"].get<double>(), 1e-5);
}

void expectConfigError(const std::function<void(dpo::LossConfig &)> &edit, const std::string &needle)
{
    dpo::LossConfig cfg;
    edit(cfg);
    try {
        cfg.validate();
        ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
    } catch (const dpo::Error &e) {
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
}

TEST(DpoLoss, ValidationErrorsNameTheOption)
{
    expectConfigError([](auto &c) { c.types = { "sigmoid", "nope" }; }, "unknown loss type 'nope'");
    expectConfigError([](auto &c) { c.types = {}; }, "loss_type");
    expectConfigError([](auto &c) { c.types = { "hinge", "hinge" }; }, "listed twice");
    expectConfigError([](auto &c) { c.weights = { 1.0, 2.0 }; }, "loss_weights");
    expectConfigError([](auto &c) { c.weights = { NAN }; }, "loss_weights");
    expectConfigError([](auto &c) { c.beta = 0.0; }, "beta");
    expectConfigError([](auto &c) { c.beta = -1.0; }, "beta");
    expectConfigError([](auto &c) { c.labelSmoothing = -0.1; }, "label_smoothing");
    expectConfigError([](auto &c) { c.labelSmoothing = 0.5; }, "label_smoothing");
    expectConfigError(
        [](auto &c) {
            c.types = { "robust" };
            c.labelSmoothing = 0.5;
        },
        "label_smoothing");
    expectConfigError([](auto &c) { c.types = { "exo_pair" }; }, "exo_pair");
    expectConfigError(
        [](auto &c) {
            c.types = { "discopop" };
            c.discopopTau = 0;
        },
        "discopop_tau");

    dpo::LossConfig ok;
    ok.types = { "sigmoid", "ipo", "robust" };
    ok.weights = { 0.5, 0.5, 1.0 };
    ok.labelSmoothing = 0.49;
    EXPECT_NO_THROW(ok.validate());
}

TEST(DpoLoss, InputShapeErrors)
{
    const Random x = randomInputs(1, 4);
    auto in = inputsOf(x);
    in.refRejected = in.refRejected.slice(0, 0, 3);
    EXPECT_THROW(dpo::computeDpoLoss(dpo::LossConfig {}, in), dpo::Error);
    auto noCounts = inputsOf(x);
    noCounts.chosenCount = torch::Tensor();
    dpo::LossConfig ipo;
    ipo.types = { "ipo" };
    EXPECT_THROW(dpo::computeDpoLoss(ipo, noCounts), dpo::Error);
    EXPECT_NO_THROW(dpo::computeDpoLoss(dpo::LossConfig {}, noCounts)); // sigmoid needs no counts
}

} // namespace

// ---- TRL 1.x golden values (tools/fixtures/make_trl1_loss_fixture.py, TRL's formulas in PyTorch) ----
namespace trl1 {

struct Golden {
    nlohmann::json j;
    torch::Tensor ids, completion, attention, policyLogits, refLogits;
};

torch::Tensor tensorOf(const nlohmann::json &v, torch::ScalarType dtype)
{
    std::vector<int64_t> shape;
    const nlohmann::json *cur = &v;
    while (cur->is_array()) {
        shape.push_back(int64_t(cur->size()));
        cur = &(*cur)[0];
    }
    std::vector<double> flat;
    std::function<void(const nlohmann::json &)> walk = [&](const nlohmann::json &x) {
        if (x.is_array())
            for (const auto &e : x)
                walk(e);
        else
            flat.push_back(x.get<double>());
    };
    walk(v);
    return torch::tensor(flat, torch::kDouble).reshape(shape).to(dtype);
}

const Golden &golden()
{
    static const Golden g = [] {
        Golden x;
        x.j = dpotest::readJson(dpotest::fixture("trl1-losses/trl1_losses.json"));
        x.ids = tensorOf(x.j["input_ids"], torch::kLong);
        x.completion = tensorOf(x.j["completion_mask"], torch::kLong);
        x.attention = tensorOf(x.j["attention_mask"], torch::kLong);
        x.policyLogits = tensorOf(x.j["policy_logits"], torch::kDouble);
        x.refLogits = tensorOf(x.j["ref_logits"], torch::kDouble);
        return x;
    }();
    return g;
}

} // namespace trl1

TEST(DpoLossTrl1, TokenMetricsAndWpoWeightsMatchTrl)
{
    const auto &g = trl1::golden();
    dpo::LogpsOptions opt;
    opt.stats = true;
    const auto lp = dpo::completionLogpsFromLogits(g.policyLogits, g.ids, g.completion, opt);
    const auto m = dpo::trlTokenMetrics(lp);
    const auto &want = g.j["token_metrics"];
    for (const char *name : { "entropy", "logits/chosen", "logits/rejected", "mean_token_accuracy" }) {
        ASSERT_TRUE(m.count(name)) << name;
        EXPECT_NEAR(m.at(name), want[name].get<double>(), 1e-5) << name;
    }
    EXPECT_GT(want["mean_token_accuracy"].get<double>(), 0.0);
    EXPECT_EQ(g.attention.sum().item<int64_t>(), want["num_tokens"].get<int64_t>());
    const auto w = toVector(lp.wpoWeight());
    const auto wantW = g.j["wpo_weights"].get<std::vector<double>>();
    ASSERT_EQ(w.size(), wantW.size());
    for (size_t i = 0; i < w.size(); ++i)
        EXPECT_NEAR(w[i], wantW[i], 1e-5 * std::max(1.0, std::abs(wantW[i]))) << "row " << i;
}

TEST(DpoLossTrl1, EveryRuleMatchesTrlGoldenValues)
{
    const auto &g = trl1::golden();
    int checked = 0;
    for (const auto &c : g.j["cases"]) {
        dpo::LossConfig cfg;
        cfg.types = c["loss_type"].get<std::vector<std::string>>();
        if (c.contains("loss_weights"))
            cfg.weights = c["loss_weights"].get<std::vector<double>>();
        cfg.beta = c["beta"].get<double>();
        cfg.labelSmoothing = c.value("label_smoothing", 0.0);
        cfg.fDivergenceType = c.value("f_divergence_type", std::string("reverse_kl"));
        cfg.fAlphaDivergenceCoef = c.value("f_alpha_divergence_coef", 0.5);
        cfg.useWeighting = c.value("use_weighting", false);
        if (c.contains("ld_alpha"))
            cfg.ldAlpha = c["ld_alpha"].get<double>();
        const std::string label = c.dump().substr(0, 200);
        ASSERT_NO_THROW(cfg.validate()) << label;

        dpo::LogpsOptions opt;
        opt.stats = cfg.useWeighting;
        opt.ldAlpha = cfg.ldAlpha;
        const auto pol = dpo::completionLogpsFromLogits(g.policyLogits, g.ids, g.completion, opt);
        const auto ref = dpo::completionLogpsFromLogits(g.refLogits, g.ids, g.completion, opt);
        const int64_t B = pol.sum.size(0) / 2;
        dpo::DpoInputs in;
        in.policyChosen = pol.dpoSum().slice(0, 0, B);
        in.policyRejected = pol.dpoSum().slice(0, B, 2 * B);
        in.refChosen = ref.dpoSum().slice(0, 0, B);
        in.refRejected = ref.dpoSum().slice(0, B, 2 * B);
        in.chosenCount = pol.count.slice(0, 0, B);
        in.rejectedCount = pol.count.slice(0, B, 2 * B);
        in.sftChosenSum = pol.sum.slice(0, 0, B);
        if (cfg.useWeighting) {
            in.chosenWeight = pol.wpoWeight().slice(0, 0, B);
            in.rejectedWeight = pol.wpoWeight().slice(0, B, 2 * B);
        }
        const auto out = dpo::computeDpoLoss(cfg, in);
        const auto &e = c["expected"];
        const double wantLoss = e["loss"].get<double>();
        EXPECT_NEAR(out.loss.item<double>(), wantLoss, 1e-5 * std::max(1.0, std::abs(wantLoss))) << label;
        const auto got = toVector(out.perPair);
        const auto want = e["per_pair"].get<std::vector<double>>();
        ASSERT_EQ(got.size(), want.size()) << label;
        for (size_t i = 0; i < want.size(); ++i)
            EXPECT_NEAR(got[i], want[i], 1e-5 * std::max(1.0, std::abs(want[i]))) << label << " pair " << i;
        for (const auto &[name, value] : e["metrics"].items()) {
            ASSERT_TRUE(out.metrics.count(name)) << name;
            EXPECT_NEAR(out.metrics.at(name), value.get<double>(), 1e-5 * std::max(1.0, std::abs(value.get<double>())))
                << label << " " << name;
        }
        ++checked;
    }
    EXPECT_EQ(checked, int(g.j["cases"].size()));
    EXPECT_GT(checked, 100);
}

TEST(DpoLossTrl1, LdAlphaWeightsTokensBeyondTheShorterCompletion)
{
    // chosen 3 tokens, rejected 1: only the chosen row's tokens 2 and 3 are "verbose".
    const auto mask = torch::tensor({ 0, 1, 1, 1, 0, 1, 0, 0 }, torch::kLong).view({ 2, 4 });
    const auto w = toVector(dpo::ldAlphaTokenWeights(mask, 0.25));
    const std::vector<double> want { 0, 1, 0.25, 0.25, 0, 1, 0, 0 };
    ASSERT_EQ(w.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i)
        EXPECT_DOUBLE_EQ(w[i], want[i]) << i;
}

TEST(DpoLossTrl1, InvalidCombinationsNameTheOption)
{
    expectConfigError([](auto &c) { c.labelSmoothing = 0.1; }, "label_smoothing");
    expectConfigError([](auto &c) { c.fDivergenceType = "kl"; }, "f_divergence_type");
    expectConfigError([](auto &c) { c.fAlphaDivergenceCoef = NAN; }, "f_alpha_divergence_coef");
    expectConfigError(
        [](auto &c) {
            c.types = { "aot" };
            c.useWeighting = true;
        },
        "use_weighting");
    expectConfigError(
        [](auto &c) {
            c.types = { "sigmoid", "sft" };
            c.useWeighting = true;
        },
        "use_weighting");
    expectConfigError([](auto &c) { c.ldAlpha = 1.5; }, "ld_alpha");
    expectConfigError([](auto &c) { c.ldAlpha = -0.1; }, "ld_alpha");
    dpo::LossConfig ok;
    ok.types = { "robust", "sigmoid" };
    ok.labelSmoothing = 0.2;
    ok.useWeighting = true;
    ok.ldAlpha = 0.0;
    ok.fDivergenceType = "alpha_divergence";
    EXPECT_NO_THROW(ok.validate());
}

} // namespace test_dpo_loss
