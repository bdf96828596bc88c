// dpo-cli score end to end on the fixture models: token ids (exact), summed log-probs (2e-3), losses
// and metrics (1e-5 where the log-probs allow) against the reference numbers; and bad inputs, each
// of which must exit 1 with exactly one line on stderr.
#include "test_util.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <unistd.h>

namespace test_score_cli { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string quote(const std::string &s)
{
    return "'" + s + "'";
}

std::string scoreCommand(
    const std::string &model, const std::string &ref, const std::string &dataset, const std::string &extra = "")
{
    return quote(dpotest::cliPath()) + " --threads 2 score --model " + quote(model) + " --ref-model " + quote(ref)
        + " --dataset " + quote(dataset) + " " + extra;
}

class TempDir {
public:
    TempDir()
    {
        static int counter = 0;
        m_path = fs::temp_directory_path()
            / ("dpo_score_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
        fs::create_directories(m_path);
    }
    ~TempDir() { fs::remove_all(m_path); }
    std::string file(const std::string &name) const { return (m_path / name).string(); }

private:
    fs::path m_path;
};

// Runs score on a fixture folder and checks every number; skips when the model family is not
// supported yet (dpo-cli says "not supported").
// `lossTol`: the losses are computed from log-probs that legitimately differ from the reference's
// float32 sums by ~1e-5; at beta 0.1 with the sigmoid loss that moves the loss by < 1e-6, but robust
// at beta 0.5 / eps 0.2 (slope ~0.8) and ipo on means (slope ~10) amplify it past 1e-5.
void checkFixture(const std::string &name, const std::string &lossKey, const std::string &extra, double lossTol = 1e-5)
{
    const auto expected = dpotest::readJson(dpotest::fixture(name + "/expected.json"));
    const auto r = dpotest::runCommand(scoreCommand(dpotest::fixture(name + "/other"), dpotest::fixture(name + "/ref"),
        dpotest::fixture(name + "/pairs.jsonl"), extra));
    if (r.exitCode != 0 && r.err.find("not supported") != std::string::npos)
        GTEST_SKIP() << name << ": " << r.err;
    ASSERT_EQ(r.exitCode, 0) << r.err;
    const json out = json::parse(r.out);

    const auto &examples = expected["examples"];
    const auto &logps = expected["logps"];
    const auto &loss = expected["losses"][lossKey];
    ASSERT_EQ(out["examples"].size(), examples.size());
    for (size_t i = 0; i < examples.size(); ++i) {
        const auto &got = out["examples"][i];
        EXPECT_EQ(got["prompt_ids"], examples[i]["prompt_ids"]) << name << " row " << i;
        EXPECT_EQ(got["chosen_ids"], examples[i]["chosen_ids"]) << name << " row " << i;
        EXPECT_EQ(got["rejected_ids"], examples[i]["rejected_ids"]) << name << " row " << i;
        for (const char *k : { "policy_chosen", "policy_rejected", "ref_chosen", "ref_rejected" })
            EXPECT_NEAR(got[std::string(k) + "_logps"].get<double>(), logps[k][i].get<double>(), 2e-3)
                << name << " " << k << " row " << i;
        EXPECT_NEAR(got["loss"].get<double>(), loss["per_example"][i].get<double>(), lossTol)
            << name << " " << lossKey << " row " << i;
    }
    EXPECT_NEAR(out["loss"].get<double>(), loss["mean"].get<double>(), lossTol) << name << " " << lossKey;
    if (lossKey == "sigmoid/beta=0.1/ls=0.0") {
        for (const auto &[metric, value] : expected["metrics_beta_0.1"].items())
            EXPECT_NEAR(out["metrics"][metric].get<double>(), value.get<double>(), 1e-5) << name << " " << metric;
    }
}

TEST(ScoreCli, LlamaFixtureSigmoid)
{
    checkFixture("llama-gqa", "sigmoid/beta=0.1/ls=0.0", "");
}

TEST(ScoreCli, LlamaFixtureOtherLosses)
{
    checkFixture("llama-gqa", "robust/beta=0.5/ls=0.2", "--beta 0.5 --loss-type robust --label-smoothing 0.2", 1e-4);
    checkFixture("llama-gqa", "hinge/beta=0.1/ls=0.0", "--loss-type hinge --batch-size 3");
    checkFixture("llama-gqa", "ipo/beta=0.1/mean_logps", "--loss-type ipo", 1e-4);
}

TEST(ScoreCli, KeepStartTruncationEmptiesLongPromptRows)
{
    // max_length 7: rows whose prompt has >= 7 tokens keep no completion token (summed log-prob 0,
    // as in TRL); the others are scored on their first 7 - len(prompt) completion tokens only.
    const auto expected = dpotest::readJson(dpotest::fixture("llama-gqa/expected.json"));
    const auto r = dpotest::runCommand(scoreCommand(dpotest::fixture("llama-gqa/other"),
        dpotest::fixture("llama-gqa/ref"), dpotest::fixture("llama-gqa/pairs.jsonl"), "--max-length 7"));
    ASSERT_EQ(r.exitCode, 0) << r.err;
    const json out = json::parse(r.out);
    int emptied = 0, cut = 0;
    for (size_t i = 0; i < expected["examples"].size(); ++i) {
        const auto &ex = expected["examples"][i];
        const auto &got = out["examples"][i];
        EXPECT_EQ(got["chosen_ids"], ex["chosen_ids"]); // reported untruncated
        const double pc = got["policy_chosen_logps"].get<double>();
        if (ex["prompt_ids"].size() >= 7) {
            EXPECT_EQ(pc, 0.0) << "row " << i;
            ++emptied;
        } else {
            EXPECT_LT(pc, 0.0) << "row " << i;
            if (ex["prompt_ids"].size() + ex["chosen_ids"].size() > 7) {
                EXPECT_GT(pc, expected["logps"]["policy_chosen"][i].get<double>()) << "row " << i;
                ++cut;
            }
        }
    }
    EXPECT_GT(emptied, 0);
    EXPECT_GT(cut, 0);
    // Reported as the rows `train` would drop (TRL's keep_start filter); score keeps them.
    EXPECT_EQ(int(out["data"]["fully_truncated_lines"].size()), emptied);
    EXPECT_NE(r.err.find("dropped because the prompt alone fills max_length"), std::string::npos) << r.err;
}

TEST(ScoreCli, Gpt2Fixture)
{
    checkFixture("gpt2", "sigmoid/beta=0.1/ls=0.0", "");
}

void expectOneLineError(const dpotest::CommandResult &r, const std::string &needle)
{
    EXPECT_EQ(r.exitCode, 1) << r.err;
    EXPECT_TRUE(r.out.empty()) << "stdout: " << r.out;
    ASSERT_FALSE(r.err.empty());
    EXPECT_EQ(r.err.back(), '\n') << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(r.err.rfind("dpo-cli: error: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
}

TEST(ScoreCli, BadInputsExitWithOneLine)
{
    const std::string other = dpotest::fixture("llama-gqa/other");
    const std::string ref = dpotest::fixture("llama-gqa/ref");
    const std::string pairs = dpotest::fixture("llama-gqa/pairs.jsonl");
    TempDir tmp;

    // Missing dataset.
    expectOneLineError(dpotest::runCommand(scoreCommand(other, ref, tmp.file("nope.jsonl"))), tmp.file("nope.jsonl"));

    // Malformed JSONL line: the message names the file and the line.
    const std::string bad = tmp.file("bad.jsonl");
    {
        std::ifstream in(pairs);
        std::string first;
        std::getline(in, first);
        std::ofstream(bad) << first << "\n" << first << "\n{\"prompt\": \"x\", \"chosen\": \"y\",\n";
    }
    expectOneLineError(dpotest::runCommand(scoreCommand(other, ref, bad)), bad + ":3:");

    // Missing model folder.
    expectOneLineError(dpotest::runCommand(scoreCommand(tmp.file("no-model"), ref, pairs)), tmp.file("no-model"));

    // Corrupt safetensors: a copy of the reference whose header length points past the end of the file.
    const std::string corrupt = tmp.file("corrupt");
    fs::copy(ref, corrupt, fs::copy_options::recursive);
    {
        std::fstream f(corrupt + "/model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
        const unsigned char huge[8] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00 };
        f.write(reinterpret_cast<const char *>(huge), 8);
    }
    expectOneLineError(dpotest::runCommand(scoreCommand(other, corrupt, pairs)), "model.safetensors");

    // A truncated weights file.
    const std::string truncated = tmp.file("truncated");
    fs::copy(ref, truncated, fs::copy_options::recursive);
    fs::resize_file(truncated + "/model.safetensors", fs::file_size(truncated + "/model.safetensors") / 2);
    expectOneLineError(dpotest::runCommand(scoreCommand(truncated, ref, pairs)), "model.safetensors");

    // Bad options.
    expectOneLineError(dpotest::runCommand(scoreCommand(other, ref, pairs, "--loss-type sigmoid,nope")), "nope");
    expectOneLineError(
        dpotest::runCommand(scoreCommand(other, ref, pairs, "--truncation-mode keep_middle")), "keep_middle");
}

TEST(ScoreCli, ConversationalRowsUseTheChatTemplate)
{
    // The GPT-2 fixture has no chat template: conversational rows are refused until one is given, by
    // --chat-template or as the model's own chat_template.jinja; ids as in tests/data/chat-pairs.
    TempDir tmp;
    const std::string model = tmp.file("gpt2");
    fs::copy(dpotest::fixture("gpt2/ref"), model, fs::copy_options::recursive);
    const std::string pairs = dpotest::fixture("chat-pairs/pairs.jsonl");
    const auto expected = dpotest::readJson(dpotest::fixture("chat-pairs/zephyr-7b-beta/expected.json"));
    const std::string tpl = dpotest::fixture(expected["template"].get<std::string>());

    expectOneLineError(dpotest::runCommand(scoreCommand(model, model, pairs)), "--chat-template");

    auto check = [&](const dpotest::CommandResult &r) {
        ASSERT_EQ(r.exitCode, 0) << r.err;
        const json out = json::parse(r.out);
        ASSERT_EQ(out["examples"].size(), expected["rows"].size());
        for (size_t i = 0; i < out["examples"].size(); ++i) {
            const auto &got = out["examples"][i];
            const auto &ex = expected["rows"][i];
            EXPECT_EQ(got["prompt_ids"], ex["prompt_ids"]) << "row " << i;
            EXPECT_EQ(got["chosen_ids"], ex["chosen_ids"]) << "row " << i;
            EXPECT_EQ(got["rejected_ids"], ex["rejected_ids"]) << "row " << i;
            EXPECT_EQ(got["policy_chosen_logps"], got["ref_chosen_logps"]) << "row " << i; // same model
            EXPECT_LT(got["policy_chosen_logps"].get<double>(), 0.0) << "row " << i;
        }
        EXPECT_EQ(out["data"]["conversational_rows"], expected["rows"].size());
        EXPECT_NEAR(out["loss"].get<double>(), std::log(2.0), 1e-6);
    };
    check(dpotest::runCommand(scoreCommand(model, model, pairs, "--chat-template " + quote(tpl))));
    fs::copy_file(tpl, model + "/chat_template.jinja");
    check(dpotest::runCommand(scoreCommand(model, model, pairs)));

    // A template that cannot render these rows: one line naming the row and the template.
    const std::string strict = tmp.file("strict.jinja");
    std::ofstream(strict) << "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
                             "{% endif %}{{ messages[0]['content'] }}";
    expectOneLineError(dpotest::runCommand(scoreCommand(model, model, pairs, "--chat-template " + quote(strict))),
        "System role not supported");
}

} // namespace

} // namespace test_score_cli
