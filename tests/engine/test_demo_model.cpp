// The bundled demo model (resources/demo-model, made by scripts/make_demo_model.sh): it is small,
// loads, answers demo prompts recognisably, and a few DPO steps on the bundled teaching pairs
// (resources/demo/dpo_pairs.jsonl) with the GUI's preset raise the reward margin. Also covers the
// two dpo-cli commands of the recipe: init-model (seeded HF-style initialisation) and demo-eval.
#include "test_util.h"

#include "engine/models/causal_lm.h"
#include "engine/training/dpo_trainer.h"
#include "engine/generation/generation.h"
#include "engine/models/model_config.h"
#include "engine/data/preference_data.h"
#include "engine/runtime.h"
#include "engine/tokenizers/tokenizer.h"
#include "engine/training/train_config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include <unistd.h>

namespace test_demo_model { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

namespace fs = std::filesystem;

namespace {

std::string resourcesDir()
{
    return dpotest::dataDir() + "/../../resources";
}
std::string demoModelDir()
{
    return resourcesDir() + "/demo-model";
}

struct TempDir {
    fs::path path;
    explicit TempDir(const std::string &name)
        : path(fs::temp_directory_path() / (name + "-" + std::to_string(::getpid())))
    {
        fs::remove_all(path);
        fs::create_directories(path);
    }
    ~TempDir() { fs::remove_all(path); }
};

std::string greedyAnswer(dpo::CausalLM &model, const dpo::Tokenizer &tok, const std::string &prompt)
{
    dpo::GenerationOptions g;
    g.maxNewTokens = 32;
    g.greedy = true;
    g.eosTokenIds = { tok.eosId() };
    return tok.decode(dpo::generate(model, tok.encodeWithSpecial(prompt), g), true);
}

std::string trim(const std::string &s)
{
    const auto b = s.find_first_not_of(' ');
    const auto e = s.find_last_not_of(' ');
    return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

class DemoModel : public ::testing::Test {
protected:
    static void SetUpTestSuite()
    {
        // One thread: the model is tiny, and extra OpenMP threads on a busy machine only slow it down.
        dpo::initRuntime(1);
        s_model = dpo::loadCausalLM(demoModelDir());
        s_tok = dpo::loadTokenizer(demoModelDir());
    }
    static void TearDownTestSuite()
    {
        s_model.reset();
        s_tok.reset();
    }
    static std::shared_ptr<dpo::CausalLM> s_model;
    static std::shared_ptr<dpo::Tokenizer> s_tok;
};
std::shared_ptr<dpo::CausalLM> DemoModel::s_model;
std::shared_ptr<dpo::Tokenizer> DemoModel::s_tok;

TEST_F(DemoModel, IsATinyLlamaWithItsOwnSentencepieceTokenizer)
{
    uintmax_t bytes = 0;
    for (const char *f :
        { "config.json", "generation_config.json", "model.safetensors", "tokenizer.model", "tokenizer_config.json" }) {
        const fs::path p = fs::path(demoModelDir()) / f;
        ASSERT_TRUE(fs::exists(p)) << p;
        bytes += fs::file_size(p);
    }
    EXPECT_LT(bytes, uintmax_t(15) << 20);

    const auto &c = s_model->config();
    EXPECT_EQ(c.modelType, "llama");
    const int64_t params = s_model->parameterCount();
    EXPECT_GT(params, 1'000'000);
    EXPECT_LT(params, 10'000'000);
    EXPECT_EQ(s_tok->kind(), "sentencepiece");
    EXPECT_EQ(s_tok->vocabSize(), c.vocabSize);
    EXPECT_EQ(s_tok->unkId(), 0);
    EXPECT_EQ(s_tok->bosId(), 1);
    EXPECT_EQ(s_tok->eosId(), 2);
    EXPECT_TRUE(s_tok->addBos());
    // Byte fallback: text the corpus never had still round-trips.
    const std::string odd = "Grüße, 世界 🎉";
    EXPECT_EQ(s_tok->decode(s_tok->encode(odd)), odd);
}

TEST_F(DemoModel, AnswersDemoPromptsRecognisably)
{
    // A template the corpus always answers the same way.
    EXPECT_EQ(
        trim(greedyAnswer(*s_model, *s_tok, "What is the capital of France?")), "The capital of France is Paris.");
    // The two behaviours DPO changes: the SFT model may pick either variant, but nothing else.
    const std::string sum = trim(greedyAnswer(*s_model, *s_tok, "What is 4 plus 5?"));
    EXPECT_TRUE(std::regex_match(sum, std::regex("4 plus 5 is (9|10)\\."))) << sum;
    const std::string greeting = trim(greedyAnswer(*s_model, *s_tok, "Give Alice a greeting."));
    EXPECT_TRUE(greeting == "Good morning, Alice! It is lovely to see you." || greeting == "Alice. What do you want?")
        << greeting;
}

TEST_F(DemoModel, ShortDpoRunWithThePresetRaisesTheRewardMargin)
{
    TempDir out("dpo-demo-dpo");
    dpo::TrainConfig config = dpo::TrainConfig::fromFile(resourcesDir() + "/demo/dpo_preset.json");
    config.outputDir = out.path.string();
    config.maxSteps = 4;
    config.saveSteps = 0;
    config.device = "cpu";
    config.threads = 1;
    const auto rows = dpo::readPreferenceJsonl(resourcesDir() + "/demo/dpo_pairs.jsonl");
    ASSERT_GE(rows.size(), size_t(16));
    std::vector<dpo::PreferenceRow> evalRows(rows.begin(), rows.begin() + 16);

    // A private copy: training must not change the model the other tests share.
    auto policy = dpo::loadCausalLM(demoModelDir());
    dpo::DpoTrainer trainer(policy, s_tok, config, rows, nullptr, evalRows);
    std::vector<nlohmann::json> steps;
    dpo::TrainerCallbacks cb;
    cb.onMetrics = [&](const nlohmann::json &m) {
        if (m.contains("loss"))
            steps.push_back(m);
    };
    trainer.setCallbacks(cb);
    trainer.setup();
    const auto before = trainer.evaluate();
    // Policy and reference start as the same weights.
    EXPECT_NEAR(before.at("eval_rewards/margins").get<double>(), 0.0, 1e-5);

    const auto result = trainer.train();
    EXPECT_EQ(result.status, "completed");
    ASSERT_EQ(steps.size(), size_t(4));
    EXPECT_GT(steps.back().at("rewards/margins").get<double>(), steps.front().at("rewards/margins").get<double>());

    const auto after = trainer.evaluate();
    EXPECT_GT(after.at("eval_rewards/margins").get<double>(), 0.0);
    EXPECT_GT(after.at("eval_rewards/accuracies").get<double>(), 0.5);
    EXPECT_LT(after.at("eval_loss").get<double>(), before.at("eval_loss").get<double>());
}

TEST_F(DemoModel, DemoEvalCountsPreferredAndRejectedAnswers)
{
    TempDir dir("dpo-demo-eval");
    const std::string prompts = (dir.path / "prompts.jsonl").string();
    {
        std::ofstream f(prompts);
        f << R"({"prompt": "What is the capital of France?", "category": "a", "expect_contains": "Paris"})"
             "\n";
        f << R"({"prompt": "What is the capital of Italy?", "category": "b", "reject_contains": ["Rome", "Paris"]})"
             "\n";
        f << R"({"prompt": "What is the capital of Peru?", "category": "b", "expect_contains": ["Lima", "capital"]})"
             "\n";
    }
    const auto r = dpotest::runCommand(dpotest::cliPath() + " --threads 1 demo-eval --model " + demoModelDir()
        + " --prompts " + prompts + " --details");
    ASSERT_EQ(r.exitCode, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j.at("prompts"), 3);
    EXPECT_EQ(j.at("preferred"), 2);
    EXPECT_EQ(j.at("rejected"), 1);
    EXPECT_NEAR(j.at("share").get<double>(), 2.0 / 3.0, 1e-12);
    EXPECT_EQ(j.at("categories").at("b").at("prompts"), 2);
    EXPECT_EQ(j.at("categories").at("b").at("preferred"), 1);
    ASSERT_EQ(j.at("rows").size(), size_t(3));
    EXPECT_NE(j.at("rows")[1].at("answer").get<std::string>().find("Rome"), std::string::npos);

    {
        std::ofstream f(prompts);
        f << R"({"prompt": "What is the capital of France?", "expect_contains": "Paris"})"
             "\n";
        f << R"({"prompt": "What is the capital of Italy?"})"
             "\n";
    }
    const auto bad
        = dpotest::runCommand(dpotest::cliPath() + " demo-eval --model " + demoModelDir() + " --prompts " + prompts);
    EXPECT_EQ(bad.exitCode, 1);
    EXPECT_NE(bad.err.find("prompts.jsonl:2"), std::string::npos) << bad.err;
}

// init-model: same seed, same weights; HF's initialisation (normal(0, initializer_range), unit norms).
TEST(InitModel, IsSeededAndInitialisesLikeHuggingFace)
{
    TempDir dir("dpo-demo-init");
    const std::string config = demoModelDir() + "/config.json";
    auto init = [&](const std::string &name, int seed) {
        const std::string out = (dir.path / name).string();
        const auto r = dpotest::runCommand(dpotest::cliPath() + " --threads 1 init-model --config " + config
            + " --tokenizer " + demoModelDir() + " --output " + out + " --seed " + std::to_string(seed));
        EXPECT_EQ(r.exitCode, 0) << r.err;
        return out;
    };
    const auto a = init("a", 7), b = init("b", 7), c = init("c", 8);
    ASSERT_TRUE(fs::exists(fs::path(a) / "tokenizer.model"));
    auto ma = dpo::loadCausalLM(a), mb = dpo::loadCausalLM(b), mc = dpo::loadCausalLM(c);
    const auto sa = ma->stateDict(), sb = mb->stateDict(), sc = mc->stateDict();
    const double range = dpotest::readJson(config).value("initializer_range", 0.02);
    ASSERT_EQ(sa.size(), sb.size());
    for (const auto &[name, t] : sa) {
        EXPECT_TRUE(torch::equal(t, sb.at(name))) << name;
        if (t.dim() == 1) {
            EXPECT_TRUE(torch::equal(t, torch::ones_like(t))) << name;
        } else {
            EXPECT_FALSE(torch::equal(t, sc.at(name))) << name;
            EXPECT_NEAR(t.mean().item<double>(), 0.0, 0.1 * range) << name;
            EXPECT_NEAR(t.std().item<double>(), range, 0.05 * range) << name;
        }
    }
    // A tokenizer with more ids than the model has embeddings is refused.
    nlohmann::json small = dpotest::readJson(config);
    small["vocab_size"] = 100;
    const std::string smallConfig = (dir.path / "small.json").string();
    std::ofstream(smallConfig) << small.dump();
    const auto r = dpotest::runCommand(dpotest::cliPath() + " init-model --config " + smallConfig + " --tokenizer "
        + demoModelDir() + " --output " + (dir.path / "d").string());
    EXPECT_EQ(r.exitCode, 1);
    EXPECT_FALSE(fs::exists(dir.path / "d" / "model.safetensors"));
}

} // namespace

} // namespace test_demo_model
