// The model families of the architecture table against their reference fixtures (tests/data/<family>,
// copied from the shared fixtures; see their README's "Model families"): HF parameter names, logits
// on a padded batch, completion log-probs of `ref` and `other`, the DPO losses and metrics those
// log-probs give, greedy ids through the KV cache, the 6-step DPO trajectory, and saving back
// unchanged (config fields, tensor names, fused tensors, stored dtype). Sequences run well past
// every sliding window, in scoring, training and cached generation. The measured maximum errors are
// printed so a regression shows its size, not only that a tolerance was crossed.
#include "test_util.h"

#include "engine/error.h"
#include "engine/generation/generation.h"
#include "engine/io/safetensors.h"
#include "engine/models/causal_lm.h"
#include "engine/training/dpo_loss.h"
#include "engine/training/dpo_trainer.h"
#include "engine/training/logprobs.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>

namespace test_model_families { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct Family {
    std::string dir; // tests/data/<dir>
    std::string modelType;
    torch::ScalarType storedDtype;
};

std::ostream &operator<<(std::ostream &o, const Family &f)
{
    return o << f.dir;
}

double maxAbsDiff(const torch::Tensor &a, const torch::Tensor &b)
{
    return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

struct PairBatch {
    torch::Tensor ids, mask, completion;
};

// Chosen rows then rejected rows of expected.json's examples, right-padded.
PairBatch fixtureBatch(const json &e)
{
    std::vector<std::vector<int64_t>> rows;
    std::vector<size_t> promptLen;
    for (const char *which : { "chosen_ids", "rejected_ids" })
        for (const auto &ex : e["examples"]) {
            auto p = ex["prompt_ids"].get<std::vector<int64_t>>();
            auto c = ex[which].get<std::vector<int64_t>>();
            promptLen.push_back(p.size());
            p.insert(p.end(), c.begin(), c.end());
            rows.push_back(p);
        }
    size_t T = 0;
    for (auto &r : rows)
        T = std::max(T, r.size());
    const int64_t N = int64_t(rows.size());
    PairBatch b;
    b.ids = torch::zeros({ N, int64_t(T) }, torch::kInt64);
    b.mask = torch::zeros({ N, int64_t(T) }, torch::kInt64);
    b.completion = torch::zeros({ N, int64_t(T) }, torch::kInt64);
    for (int64_t n = 0; n < N; ++n)
        for (size_t t = 0; t < rows[size_t(n)].size(); ++t) {
            b.ids[n][int64_t(t)] = rows[size_t(n)][t];
            b.mask[n][int64_t(t)] = 1;
            b.completion[n][int64_t(t)] = t >= promptLen[size_t(n)] ? 1 : 0;
        }
    return b;
}

std::string tempDir(const std::string &name)
{
    auto p = fs::temp_directory_path() / ("dpo_families_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(p);
    fs::create_directories(p);
    return p.string();
}

} // namespace

class ModelFamily : public ::testing::TestWithParam<Family> {
protected:
    std::string path(const std::string &rel) const { return dpotest::fixture(GetParam().dir + "/" + rel); }
    const json &expected()
    {
        if (m_expected.is_null())
            m_expected = dpotest::readJson(path("expected.json"));
        return m_expected;
    }
    void report(const std::string &what, double value)
    {
        std::cout << "[ family ] " << GetParam().dir << " " << what << " " << value << "\n";
        RecordProperty(what, std::to_string(value));
    }

private:
    json m_expected;
};

TEST_P(ModelFamily, ConfigIsRecognisedAndNamesAreTheCheckpointNames)
{
    auto config = dpo::ModelConfig::fromDirectory(path("ref"));
    EXPECT_EQ(config.modelType, GetParam().modelType);
    ASSERT_NE(config.arch, nullptr);
    auto model = dpo::createCausalLM(config);
    std::set<std::string> ours, theirs;
    for (const auto &[name, t] : model->stateDict())
        ours.insert(name);
    for (const auto &[name, t] : dpo::loadSafetensorsWeights(path("ref"))) {
        theirs.insert(name);
        EXPECT_EQ(t.scalar_type(), GetParam().storedDtype) << name;
    }
    EXPECT_EQ(ours, theirs);
}

TEST_P(ModelFamily, LogitsMatchReferenceOnPaddedBatch)
{
    auto model = dpo::loadCausalLM(path("ref"));
    auto ref = dpo::SafetensorsFile::open(path("logits.safetensors"));
    auto ids = ref.tensor("input_ids").to(torch::kInt64);
    auto mask = ref.tensor("attention_mask").to(torch::kInt64);
    auto want = ref.tensor("logits").to(torch::kFloat32);
    auto config = model->config();
    if (config.slidingWindow > 0 && config.anySlidingLayer())
        ASSERT_GT(ids.size(1), config.slidingWindow) << "the fixture should run past the window";

    torch::NoGradGuard g;
    auto got = model->forward(ids, mask);
    ASSERT_EQ(got.sizes(), want.sizes());
    auto real = mask.to(torch::kBool);
    const double err = maxAbsDiff(got.index({ real }), want.index({ real }));
    report("logits_max_abs_err", err);
    EXPECT_LT(err, 2e-4);
    // Without a mask the real positions of the right-padded rows are the same.
    EXPECT_LT(maxAbsDiff(model->forward(ids).index({ real }), want.index({ real })), 2e-4);
}

TEST_P(ModelFamily, CompletionLogpsLossesAndMetricsMatchReference)
{
    const auto &e = expected();
    auto batch = fixtureBatch(e);
    const int64_t P = int64_t(e["examples"].size());
    std::map<std::string, torch::Tensor> sums, means;
    double worst = 0;
    for (const auto &[dir, prefix] :
        { std::pair<std::string, std::string> { "ref", "ref_" }, { "other", "policy_" } }) {
        auto model = dpo::loadCausalLM(path(dir));
        torch::NoGradGuard g;
        auto lp = dpo::completionLogps(*model, batch.ids, batch.mask, batch.completion);
        auto mean = lp.mean();
        for (int64_t i = 0; i < P; ++i) {
            SCOPED_TRACE(dir + " example " + std::to_string(i));
            for (const auto &[col, off] : { std::pair<std::string, int64_t> { "chosen", 0 }, { "rejected", P } }) {
                const double want = e["logps"][prefix + col][size_t(i)].get<double>();
                const double got = lp.sum[i + off].item<double>();
                worst = std::max(worst, std::abs(got - want));
                EXPECT_NEAR(got, want, 2e-3) << col;
                EXPECT_NEAR(mean[i + off].item<double>(), e["mean_logps"][prefix + col][size_t(i)].get<double>(), 2e-3);
            }
        }
        sums[prefix + "chosen"] = lp.sum.slice(0, 0, P).to(torch::kDouble);
        sums[prefix + "rejected"] = lp.sum.slice(0, P).to(torch::kDouble);
        means[prefix + "chosen"] = mean.slice(0, 0, P).to(torch::kDouble);
        means[prefix + "rejected"] = mean.slice(0, P).to(torch::kDouble);
    }
    report("logps_max_abs_err", worst);

    // The losses these log-probs give, against the reference's (computed from its own log-probs).
    auto ones = torch::ones({ P }, torch::kDouble);
    double worstLoss = 0;
    int checked = 0;
    for (const auto &[key, value] : e["losses"].items()) {
        const std::string type = key.substr(0, key.find('/'));
        dpo::LossConfig cfg;
        cfg.types = { type };
        cfg.beta = std::stod(key.substr(key.find("beta=") + 5));
        const auto ls = key.find("ls=");
        cfg.labelSmoothing = ls == std::string::npos ? 0.0 : std::stod(key.substr(ls + 3));
        if (type == "sigmoid" && cfg.labelSmoothing > 0) // TRL 1.x's sigmoid has no label smoothing
            continue;
        const auto &src = type == "ipo" ? means : sums;
        dpo::DpoInputs in { src.at("policy_chosen"), src.at("policy_rejected"), src.at("ref_chosen"),
            src.at("ref_rejected"), ones, ones };
        const auto out = dpo::computeDpoLoss(cfg, in);
        const auto want = value["per_example"].get<std::vector<double>>();
        for (int64_t i = 0; i < P; ++i) {
            const double d = std::abs(out.perPair[i].item<double>() - want[size_t(i)]);
            worstLoss = std::max(worstLoss, d);
            EXPECT_LT(d, 1e-4) << key << " example " << i;
        }
        EXPECT_NEAR(out.loss.item<double>(), value["mean"].get<double>(), 1e-4) << key;
        ++checked;
    }
    EXPECT_EQ(checked, 10);
    report("loss_max_abs_err", worstLoss);

    dpo::LossConfig sigmoid;
    dpo::DpoInputs in { sums.at("policy_chosen"), sums.at("policy_rejected"), sums.at("ref_chosen"),
        sums.at("ref_rejected"), ones, ones };
    const auto out = dpo::computeDpoLoss(sigmoid, in);
    for (const auto &[name, value] : e["metrics_beta_0.1"].items()) {
        ASSERT_TRUE(out.metrics.count(name)) << name;
        EXPECT_NEAR(out.metrics.at(name), value.get<double>(), name.rfind("logps/", 0) == 0 ? 2e-3 : 1e-3) << name;
    }
}

TEST_P(ModelFamily, GreedyIdsMatchReferenceThroughTheCache)
{
    auto model = dpo::loadCausalLM(path("ref"));
    dpo::GenerationOptions o;
    o.greedy = true;
    o.stopAtEos = false;
    std::vector<std::vector<int64_t>> prompts, wants;
    for (const auto &c : expected()["greedy"]) {
        prompts.push_back(c["prompt_ids"].get<std::vector<int64_t>>());
        wants.push_back(c["new_ids"].get<std::vector<int64_t>>());
        o.maxNewTokens = int(wants.back().size());
        EXPECT_EQ(dpo::generate(*model, prompts.back(), o), wants.back());
    }
    // Left-padded batch with one cache: the same ids.
    auto batch = dpo::generateBatch(*model, prompts, o);
    ASSERT_EQ(batch.size(), wants.size());
    for (size_t i = 0; i < wants.size(); ++i)
        EXPECT_EQ(batch[i], wants[i]) << "batched prompt " << i;
}

// Incremental decoding through the KV cache equals the full forward on a sequence longer than
// every window: a prefix, a chunk (causal with an offset), then single tokens; and left padding
// gives the unpadded result.
TEST_P(ModelFamily, CacheAndLeftPaddingEqualTheFullForward)
{
    auto model = dpo::loadCausalLM(path("ref"));
    torch::manual_seed(3);
    const int64_t T = 26;
    auto ids = torch::randint(3, model->config().vocabSize, { 2, T }, torch::kInt64);
    torch::NoGradGuard g;
    auto full = model->forward(ids);
    dpo::KVCache cache;
    std::vector<torch::Tensor> parts;
    parts.push_back(model->forward(ids.slice(1, 0, 9), {}, &cache));
    parts.push_back(model->forward(ids.slice(1, 9, 14), {}, &cache));
    for (int64_t t = 14; t < T; ++t)
        parts.push_back(model->forward(ids.slice(1, t, t + 1), {}, &cache));
    EXPECT_LT(maxAbsDiff(torch::cat(parts, 1), full), 1e-4);

    const int64_t pad = 5;
    auto padded = torch::cat({ torch::full({ 1, pad }, 0, torch::kInt64), ids.slice(0, 0, 1) }, 1);
    auto mask = torch::cat({ torch::zeros({ 1, pad }, torch::kInt64), torch::ones({ 1, T }, torch::kInt64) }, 1);
    auto left = model->forward(padded, mask);
    EXPECT_LT(maxAbsDiff(left[0].slice(0, pad), full[0]), 1e-4);
}

TEST_P(ModelFamily, DpoTrajectoryMatchesReference)
{
    const auto &traj = expected().at("train").at("trajectory");
    const std::string out = tempDir("traj_" + GetParam().dir);
    dpo::TrainConfig c;
    c.model = path("ref");
    c.dataset = path("pairs.jsonl");
    c.outputDir = out;
    c.learningRate = 1e-3;
    c.lrScheduler = "constant";
    c.batchSize = int64_t(expected()["examples"].size());
    c.maxSteps = 6;
    c.maxGradNorm = 0;
    c.beta = 0.1;
    c.shuffle = false;
    c.maxLength = 0;
    c.saveSteps = 0;
    c.device = "cpu";
    {
        dpo::DpoTrainer trainer(c);
        EXPECT_EQ(trainer.train().status, "completed");
    }
    std::vector<json> metrics;
    std::ifstream f(fs::path(out) / "metrics.jsonl");
    for (std::string line; std::getline(f, line);) {
        auto j = json::parse(line);
        if (j.contains("loss"))
            metrics.push_back(j);
    }
    ASSERT_EQ(metrics.size(), traj.size());
    double worst = 0;
    for (size_t i = 0; i < traj.size(); ++i)
        for (const char *k :
            { "loss", "grad_norm", "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins" }) {
            const double d = std::abs(metrics[i].at(k).get<double>() - traj[i].at(k).get<double>());
            worst = std::max(worst, d);
            EXPECT_LT(d, 1e-3) << "step " << i + 1 << " " << k;
        }
    report("trajectory_max_abs_err", worst);
    fs::remove_all(out);
}

// Saved in the stored dtype, the model comes back unchanged: every config.json field, the tensor
// names (fused ones stay fused) and the bits of every tensor.
TEST_P(ModelFamily, SavesBackUnchanged)
{
    auto model = dpo::loadCausalLM(path("ref"));
    const std::string out = tempDir("save_" + GetParam().dir);
    dpo::savePretrained(*model, out, path("ref"), int64_t(5) << 30, GetParam().storedDtype);

    const json before = dpotest::readJson(path("ref/config.json"));
    const json after = dpotest::readJson(out + "/config.json");
    for (const auto &[key, value] : before.items()) {
        ASSERT_TRUE(after.contains(key)) << key;
        EXPECT_EQ(after[key], value) << key;
    }
    for (const auto &[key, value] : after.items())
        if (!before.contains(key))
            EXPECT_TRUE(key == "dtype" || key == "tie_word_embeddings") << "new field " << key;

    const auto a = dpo::loadSafetensorsWeights(path("ref"));
    const auto b = dpo::loadSafetensorsWeights(out);
    ASSERT_EQ(a.size(), b.size());
    for (const auto &[name, t] : a) {
        ASSERT_TRUE(b.count(name)) << name;
        EXPECT_EQ(b.at(name).scalar_type(), t.scalar_type()) << name;
        EXPECT_TRUE(torch::equal(b.at(name), t)) << name;
    }
    auto again = dpo::loadCausalLM(out);
    EXPECT_EQ(again->config().slidingLayers, model->config().slidingLayers);
    EXPECT_TRUE(again->config().rope == model->config().rope);
    fs::remove_all(out);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ModelFamily,
    ::testing::Values(Family { "llama3-rope", "llama", torch::kFloat32 },
        Family { "mistral-window", "mistral", torch::kBFloat16 }, Family { "qwen3", "qwen3", torch::kBFloat16 },
        Family { "olmo2", "olmo2", torch::kFloat32 }, Family { "phi3", "phi3", torch::kBFloat16 },
        Family { "gemma2", "gemma2", torch::kFloat32 }, Family { "gemma3-text", "gemma3_text", torch::kBFloat16 }),
    [](const ::testing::TestParamInfo<Family> &info) {
        std::string n = info.param.dir;
        for (auto &ch : n)
            if (!std::isalnum(static_cast<unsigned char>(ch)))
                ch = '_';
        return n;
    });

// ---------------------------------------------------------------------------------------------
// SmolLM3: no RoPE on every no_rope_layer_interval-th layer, and with use_sliding_window those
// NoPE layers slide. tests/data/smollm3 comes from tools/fixtures/make_smollm3_fixture.py, an
// eager PyTorch model written from transformers' modular_smollm3.py (transformers itself is not
// installable here); its batch and greedy run go past the 6-token window.

namespace {

std::string smol(const std::string &rel = "")
{
    return dpotest::fixture("smollm3" + (rel.empty() ? "" : "/" + rel));
}

json smolConfig()
{
    return dpotest::readJson(smol("config.json"));
}

} // namespace

TEST(SmolLM3, ConfigFormsGiveTheSameLayers)
{
    const auto c = dpo::ModelConfig::fromDirectory(smol());
    EXPECT_EQ(c.modelType, "smollm3");
    EXPECT_EQ(c.nopeLayers, (std::vector<bool> { false, true, false, true, false }));
    EXPECT_EQ(c.slidingLayers, c.nopeLayers) << "use_sliding_window: the NoPE layers slide";
    EXPECT_EQ(c.slidingWindow, 6);
    EXPECT_DOUBLE_EQ(c.rope.theta, 2000000.0) << "SmolLM3Config's default_theta";
    EXPECT_TRUE(c.tieWordEmbeddings);

    json j = smolConfig();
    j.erase("no_rope_layer_interval");
    j["no_rope_layers"] = { 1, 0, 1, 0, 1, 1 }; // may be longer than the layers
    EXPECT_EQ(dpo::ModelConfig::fromJson(j, "x").nopeLayers, c.nopeLayers);

    j = smolConfig();
    j.erase("no_rope_layer_interval"); // default interval 4: layer 3 only
    j["use_sliding_window"] = false;
    const auto d = dpo::ModelConfig::fromJson(j, "x");
    EXPECT_EQ(d.nopeLayers, (std::vector<bool> { false, false, false, true, false }));
    EXPECT_FALSE(d.anySlidingLayer()) << "the window counts only with use_sliding_window";

    j = smolConfig();
    j["layer_types"] = { "full_attention", "sliding_attention", "full_attention", "full_attention", "full_attention" };
    const auto e = dpo::ModelConfig::fromJson(j, "x");
    EXPECT_EQ(e.slidingLayers, (std::vector<bool> { false, true, false, false, false }));

    for (const json &bad : { json { 1, 0 }, json { 1, 0, 2, 1, 1 }, json("1010") }) {
        j = smolConfig();
        j["no_rope_layers"] = bad;
        try {
            dpo::ModelConfig::fromJson(j, "cfg.json");
            ADD_FAILURE() << "accepted no_rope_layers " << bad.dump();
        } catch (const dpo::Error &err) {
            EXPECT_NE(std::string(err.what()).find("no_rope_layers"), std::string::npos) << err.what();
        }
    }
}

TEST(SmolLM3, LogitsAndGradientsMatchReference)
{
    auto model = dpo::loadCausalLM(smol());
    auto ref = dpo::SafetensorsFile::open(smol("reference.safetensors"));
    auto ids = ref.tensor("input_ids").to(torch::kInt64);
    auto mask = ref.tensor("attention_mask").to(torch::kInt64);
    ASSERT_GT(ids.size(1), model->config().slidingWindow);

    auto logits = model->forward(ids, mask);
    auto real = mask.to(torch::kBool);
    const double err = maxAbsDiff(logits.index({ real }), ref.tensor("logits").index({ real }));
    std::cout << "[ family ] smollm3 logits_max_abs_err " << err << "\n";
    EXPECT_LT(err, 2e-4);

    // The sum of next-token log-probs over real positions, and its gradients.
    auto lp = torch::log_softmax(logits.slice(1, 0, -1), -1).gather(-1, ids.slice(1, 1).unsqueeze(-1)).squeeze(-1);
    auto total = (lp * mask.slice(1, 1)).sum();
    EXPECT_NEAR(total.item<double>(), ref.tensor("logp_sum").item<double>(), 2e-3);
    total.backward();
    const auto params = model->named_parameters(); // HF names (the backbone is registered as "model")
    int checked = 0;
    for (const auto &name : ref.names()) {
        if (name.rfind("grad/", 0) != 0)
            continue;
        const auto want = ref.tensor(name);
        const auto *p = params.find(name.substr(5));
        ASSERT_NE(p, nullptr) << name;
        ASSERT_TRUE(p->grad().defined()) << name;
        const double scale = std::max(1.0, want.abs().max().item<double>());
        EXPECT_LT(maxAbsDiff(p->grad(), want) / scale, 1e-4) << name;
        ++checked;
    }
    EXPECT_EQ(checked, 5);
}

TEST(SmolLM3, GreedyThroughTheCacheMatchesReferenceAndSavesBack)
{
    auto model = dpo::loadCausalLM(smol());
    auto ref = dpo::SafetensorsFile::open(smol("reference.safetensors"));
    auto prompt = ref.tensor("greedy_prompt").to(torch::kInt64)[0];
    auto want = ref.tensor("greedy_ids").to(torch::kInt64)[0];
    dpo::GenerationOptions o;
    o.greedy = true;
    o.stopAtEos = false;
    o.maxNewTokens = int(want.size(0));
    const std::vector<int64_t> p(prompt.data_ptr<int64_t>(), prompt.data_ptr<int64_t>() + prompt.size(0));
    const std::vector<int64_t> w(want.data_ptr<int64_t>(), want.data_ptr<int64_t>() + want.size(0));
    EXPECT_EQ(dpo::generate(*model, p, o), w);

    const std::string out = tempDir("save_smollm3");
    dpo::savePretrained(*model, out, smol(), int64_t(5) << 30, torch::kFloat32);
    const json before = smolConfig(), after = dpotest::readJson(out + "/config.json");
    for (const auto &[key, value] : before.items())
        EXPECT_EQ(after.value(key, json()), value) << key;
    auto again = dpo::loadCausalLM(out);
    EXPECT_EQ(again->config().nopeLayers, model->config().nopeLayers);
    torch::NoGradGuard g;
    auto ids = ref.tensor("input_ids").to(torch::kInt64);
    EXPECT_TRUE(torch::equal(again->forward(ids), model->forward(ids)));
    fs::remove_all(out);
}

} // namespace test_model_families
