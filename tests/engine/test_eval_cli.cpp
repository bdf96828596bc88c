// dpo-cli eval ratings end to end: battles files written here, JSON read back, and every kind of bad
// input exits 1 with exactly one stderr line naming the file line or the option at fault.
#include "test_util.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <unistd.h>

namespace test_eval_cli { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

namespace {

namespace fs = std::filesystem;

class EvalCli : public ::testing::Test {
protected:
    void SetUp() override
    {
        m_dir = fs::temp_directory_path() / ("dpo_eval_cli_" + std::to_string(getpid()));
        fs::create_directories(m_dir);
    }
    void TearDown() override { fs::remove_all(m_dir); }

    std::string write(const std::string &name, const std::string &text)
    {
        const fs::path p = m_dir / name;
        std::ofstream(p) << text;
        return p.string();
    }

    static std::string battle(const std::string &a, const std::string &b, const std::string &winner)
    {
        return R"({"model_a":")" + a + R"(","model_b":")" + b + R"(","winner":")" + winner + "\"}\n";
    }

    static dpotest::CommandResult ratings(const std::string &args)
    {
        return dpotest::runCommand("'" + dpotest::cliPath() + "' eval ratings " + args);
    }

    static const nlohmann::json *model(const nlohmann::json &out, const std::string &name)
    {
        for (const auto &m : out.at("models"))
            if (m.at("name") == name)
                return &m;
        return nullptr;
    }

    // One line on stderr, exit 1, and the line mentions every needle.
    static void expectOneLineError(const dpotest::CommandResult &r, std::initializer_list<std::string> needles)
    {
        EXPECT_EQ(r.exitCode, 1) << r.err;
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
        for (const std::string &needle : needles)
            EXPECT_NE(r.err.find(needle), std::string::npos) << "expected \"" << needle << "\" in: " << r.err;
        EXPECT_TRUE(r.out.empty()) << r.out;
    }

    fs::path m_dir;
};

// "base" loses 7 of 10 to "tuned" (on both sides): tuned = 1000 + 400 log10(7/3) = 1147.19 with
// the Wilson interval of 7/10, [0.39677815, 0.89220873] (worked out in test_statistics.cpp).
// "base" is seen first, so it is the default baseline.
std::string sevenThree()
{
    std::string s;
    for (int i = 0; i < 4; ++i)
        s += R"({"model_a":"base","model_b":"tuned","winner":"model_b"})"
             "\n";
    for (int i = 0; i < 3; ++i)
        s += R"({"model_a":"tuned","model_b":"base","winner":"model_a"})"
             "\n";
    s += "\n"; // blank lines are skipped
    for (int i = 0; i < 3; ++i)
        s += R"({"model_a":"tuned","model_b":"base","winner":"model_b"})"
             "\n";
    return s;
}

} // namespace

TEST_F(EvalCli, SevenThreeHandChecked)
{
    const std::string file = write("73.jsonl", sevenThree());
    const auto r = ratings("--battles '" + file + "' --bootstrap 200 --seed 3");
    ASSERT_EQ(r.exitCode, 0) << r.err;
    const auto out = nlohmann::json::parse(r.out);
    ASSERT_EQ(out.at("models").size(), 2u);
    EXPECT_EQ(out.at("baseline"), "base");
    EXPECT_EQ(out.at("prior"), 0.0);
    // Sorted by rating, descending.
    EXPECT_EQ(out["models"][0]["name"], "tuned");
    EXPECT_EQ(out["models"][1]["name"], "base");
    const auto &tuned = *model(out, "tuned");
    const auto &base = *model(out, "base");
    EXPECT_NEAR(tuned["rating"].get<double>(), 1000 + 400 * std::log10(7.0 / 3.0), 1e-6);
    EXPECT_EQ(base["rating"].get<double>(), 1000.0);
    EXPECT_NEAR(tuned["win_rate_vs_baseline"].get<double>(), 0.7, 1e-12);
    EXPECT_NEAR(tuned["win_ci_low"].get<double>(), 0.39677815, 1e-7);
    EXPECT_NEAR(tuned["win_ci_high"].get<double>(), 0.89220873, 1e-7);
    EXPECT_EQ(tuned["n"], 10);
    EXPECT_EQ(tuned["wins"], 7);
    EXPECT_EQ(tuned["losses"], 3);
    // The rating interval brackets the estimate; the baseline's is the point 1000.
    EXPECT_LE(tuned["ci_low"].get<double>(), tuned["rating"].get<double>());
    EXPECT_GE(tuned["ci_high"].get<double>(), tuned["rating"].get<double>());
    EXPECT_EQ(base["ci_low"].get<double>(), 1000.0);
    EXPECT_EQ(base["ci_high"].get<double>(), 1000.0);
    // The baseline does not play itself: null win rate, n = 0.
    EXPECT_TRUE(base["win_rate_vs_baseline"].is_null());
    EXPECT_TRUE(base["win_ci_low"].is_null());
    EXPECT_EQ(base["n"], 0);
    // 7/10 separates from 0.5 at 25 games (test_statistics.cpp): 15 more.
    EXPECT_EQ(tuned["judgments_to_separate"], 15);
}

TEST_F(EvalCli, BaselineOptionTiesAndBothBad)
{
    // a vs b: a wins 6, loses 2, 1 tie, 1 both_bad -> a scores 7/10. c only played b (3-1).
    std::string s;
    for (int i = 0; i < 6; ++i)
        s += battle(i % 2 ? "a" : "b", i % 2 ? "b" : "a", i % 2 ? "model_a" : "model_b");
    s += battle("a", "b", "model_b") + battle("b", "a", "model_a");
    s += battle("a", "b", "tie") + battle("b", "a", "both_bad");
    s += battle("c", "b", "model_a") + battle("b", "c", "model_b") + battle("c", "b", "model_a");
    s += battle("b", "c", "model_a");
    const std::string file = write("tb.jsonl", s);
    const auto r = ratings("--battles " + file + " --baseline b --bootstrap 0");
    ASSERT_EQ(r.exitCode, 0) << r.err;
    const auto out = nlohmann::json::parse(r.out);
    EXPECT_EQ(out.at("baseline"), "b");
    const auto &a = *model(out, "a");
    const auto &b = *model(out, "b");
    const auto &c = *model(out, "c");
    EXPECT_EQ(b["rating"].get<double>(), 1000.0);
    // Only a-b and b-c battles: the fit decouples, a/b = 7/3 and c/b = 3/1.
    EXPECT_NEAR(a["rating"].get<double>(), 1000 + 400 * std::log10(7.0 / 3.0), 1e-6);
    EXPECT_NEAR(c["rating"].get<double>(), 1000 + 400 * std::log10(3.0), 1e-6);
    EXPECT_NEAR(a["win_rate_vs_baseline"].get<double>(), 0.7, 1e-12);
    EXPECT_EQ(a["ties"], 1);
    EXPECT_EQ(a["both_bad"], 1);
    EXPECT_EQ(a["n"], 10);
    EXPECT_EQ(c["n"], 4);
    EXPECT_NEAR(c["win_rate_vs_baseline"].get<double>(), 0.75, 1e-12);
    EXPECT_TRUE(a["ci_low"].is_null()); // --bootstrap 0: no rating intervals
    EXPECT_EQ(out["models"][0]["name"], "c");
    EXPECT_EQ(out["models"][2]["name"], "b");
}

TEST_F(EvalCli, BootstrapDeterministicFromSeed)
{
    std::string s;
    const char *pairs[][2] = { { "m0", "m1" }, { "m1", "m2" }, { "m2", "m0" } };
    const char *winners[] = { "model_a", "model_b", "tie", "model_a", "both_bad", "model_b", "model_a" };
    for (int i = 0; i < 120; ++i)
        s += battle(pairs[i % 3][0], pairs[i % 3][1], winners[(i * 5) % 7]);
    const std::string file = write("det.jsonl", s);
    const auto a = ratings("--battles " + file + " --bootstrap 300 --seed 11");
    const auto b = ratings("--battles " + file + " --bootstrap 300 --seed 11");
    const auto c = ratings("--battles " + file + " --bootstrap 300 --seed 12");
    ASSERT_EQ(a.exitCode, 0) << a.err;
    EXPECT_EQ(a.out, b.out);
    EXPECT_NE(a.out, c.out);
}

TEST_F(EvalCli, BadInputIsOneLineNamingTheLine)
{
    const std::string good = battle("x", "y", "model_a") + battle("y", "x", "tie");
    // Each dpo-cli start loads libtorch (~0.5 s CPU), so one run per kind of fault.
    expectOneLineError(ratings("--battles " + (m_dir / "missing.jsonl").string()), { "missing.jsonl" });

    const std::string badJson = write("badjson.jsonl", good + "{\"model_a\": \"x\", \n");
    expectOneLineError(ratings("--battles " + badJson), { badJson + ":3:", "invalid JSON" });

    const std::string noField = write("nofield.jsonl",
        good + good
            + R"({"model_a":"x","winner":"tie"})"
              "\n");
    expectOneLineError(ratings("--battles " + noField), { noField + ":5:", "model_b" });

    const std::string badWinner = write("badwinner.jsonl", battle("x", "y", "draw") + good);
    expectOneLineError(ratings("--battles " + badWinner), { badWinner + ":1:", "draw" });

    const std::string same = write("same.jsonl", good + battle("x", "x", "tie"));
    expectOneLineError(ratings("--battles " + same), { same + ":3:", "same model" });

    const std::string notObject = write("array.jsonl", "[1, 2]\n");
    expectOneLineError(ratings("--battles " + notObject), { notObject + ":1:" });

    const std::string empty = write("empty.jsonl", "\n\n");
    expectOneLineError(ratings("--battles " + empty), { empty, "no battles" });

    const std::string ok = write("ok.jsonl", good);
    expectOneLineError(ratings("--battles " + ok + " --baseline z"), { "--baseline", "\"z\"" });
    expectOneLineError(ratings("--battles " + ok + " --bootstrap -5"), { "--bootstrap", "-5" });
    expectOneLineError(ratings("--battles " + ok + " --bootstrap many"), { "--bootstrap" });
    expectOneLineError(ratings("--battles " + ok + " --seed -1"), { "--seed" });
    expectOneLineError(ratings(""), { "--battles" });
}

} // namespace test_eval_cli
