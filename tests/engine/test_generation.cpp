// Generation: greedy ids against the reference, KV cache vs recomputation, sampling seeds,
// top-k / top-p semantics, batched (left-padded) generation, prompts formatted with a chat template
// (ids against jinja2's render, tests/data/chat-pairs) and `dpo-cli generate` with --prompt / --messages.
#include "engine/chat/chat_prompt.h"
#include "engine/models/causal_lm.h"
#include "engine/error.h"
#include "engine/generation/generation.h"
#include "test_util.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

namespace test_generation { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

using namespace dpo;

namespace {

// The rows of tests/data/chat-pairs/pairs.jsonl as JSON.
std::vector<nlohmann::json> readPreferenceJsonlMessages()
{
    std::ifstream in(dpotest::fixture("chat-pairs/pairs.jsonl"));
    std::vector<nlohmann::json> rows;
    std::string line;
    while (std::getline(in, line))
        rows.push_back(nlohmann::json::parse(line));
    return rows;
}

const nlohmann::json &expected()
{
    static nlohmann::json j = dpotest::readJson(dpotest::fixture("llama-gqa/expected.json"));
    return j;
}

std::shared_ptr<CausalLM> refModel()
{
    static auto m = loadCausalLM(dpotest::fixture("llama-gqa/ref"));
    return m;
}

GenerationOptions greedyOptions(int n)
{
    GenerationOptions o;
    o.maxNewTokens = n;
    o.greedy = true;
    o.stopAtEos = false; // the reference treats EOS as an ordinary token
    return o;
}

// Greedy decoding by recomputing the whole sequence each step (no cache).
std::vector<int64_t> greedyWithoutCache(CausalLM &model, std::vector<int64_t> ids, int n)
{
    torch::NoGradGuard g;
    std::vector<int64_t> out;
    for (int i = 0; i < n; ++i) {
        auto logits = model.forward(torch::tensor(ids, torch::kInt64).unsqueeze(0));
        const int64_t next = logits[0][logits.size(1) - 1].argmax().item<int64_t>();
        out.push_back(next);
        ids.push_back(next);
    }
    return out;
}

int lineCount(const std::string &s)
{
    int n = 0;
    std::istringstream in(s);
    for (std::string line; std::getline(in, line);)
        if (!line.empty())
            ++n;
    return n;
}

std::string q(const std::string &s)
{
    return "'" + s + "'";
}

// The GPT-2 fixture with Zephyr's chat template, and the jinja2 renders of tests/data/chat-pairs.
struct ChatFixture {
    nlohmann::json expected = dpotest::readJson(dpotest::fixture("chat-pairs/zephyr-7b-beta/expected.json"));
    std::unique_ptr<Tokenizer> tok = loadTokenizer(dpotest::fixture("gpt2/ref"));
    ModelChatTemplate chat;
    ChatFixture()
    {
        chat.chatTemplate = ChatTemplate::fromFile(dpotest::fixture(expected["template"].get<std::string>()));
        chat.specialTokens = nlohmann::ordered_json(expected["special_tokens"]);
        chat.origin = "zephyr";
    }
};

TEST(GenerationPrompt, RenderedWithTheChatTemplate)
{
    ChatFixture f;
    // Row 1's prompt is one user message: a plain --prompt text becomes exactly that.
    GenerationPrompt plain;
    plain.text = "What is 3 plus 4?";
    EXPECT_EQ(renderGenerationPrompt(&f.chat, plain), f.expected["rows"][0]["prompt_text"].get<std::string>());
    EXPECT_EQ(encodeGenerationPrompt(*f.tok, &f.chat, plain), f.expected["rows"][0]["prompt_ids"].get<std::vector<int64_t>>());
    // Row 2: a system and a user message.
    const auto rows = readPreferenceJsonlMessages();
    GenerationPrompt conv;
    conv.messages = rows[1]["prompt"];
    EXPECT_EQ(encodeGenerationPrompt(*f.tok, &f.chat, conv), f.expected["rows"][1]["prompt_ids"].get<std::vector<int64_t>>());
    // Without a template: the text with the tokenizer's own special tokens; messages as their contents.
    EXPECT_EQ(encodeGenerationPrompt(*f.tok, nullptr, plain), f.tok->encodeWithSpecial(plain.text));
    EXPECT_EQ(renderGenerationPrompt(nullptr, conv), "You answer in one short sentence.\nWhy did Omar visit the harbor?");
    GenerationPrompt empty;
    EXPECT_THROW(encodeGenerationPrompt(*f.tok, nullptr, empty), dpo::Error);
}

TEST(GenerationPrompt, StopIdsJoinConfigListAndTokenizer)
{
    ChatFixture f;
    EXPECT_EQ(generationStopIds(*f.tok, { 7, 3, 7 }), (std::vector<int64_t> { 0, 3, 7 })); // EOS <|endoftext|> = 0
}

TEST(GenerationPrompt, ModelSamplerAndCliUseTheTemplate)
{
    ChatFixture f;
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("dpo_gen_chat_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::copy(dpotest::fixture("gpt2/ref"), dir, fs::copy_options::recursive);
    fs::copy_file(dpotest::fixture(f.expected["template"].get<std::string>()), dir / "chat_template.jinja");

    GenerationOptions g = greedyOptions(6);
    g.stopAtEos = false;
    ModelSampler sampler(dir.string(), torch::kCPU);
    const auto out = sampler.complete("What is 3 plus 4?", "", g);
    ASSERT_TRUE(out.has_value());
    EXPECT_TRUE(sampler.hasChatTemplate());
    // The same as generating from the jinja2-rendered prompt's ids directly.
    auto model = loadCausalLM(dir.string());
    const auto direct = generate(*model, f.expected["rows"][0]["prompt_ids"].get<std::vector<int64_t>>(), g);
    EXPECT_EQ(out->ids, direct);

    // dpo-cli generate --messages renders them; --raw keeps the plain text; no template: a clear error.
    const std::string messages = (dir / "messages.json").string();
    std::ofstream(messages) << readPreferenceJsonlMessages()[1]["prompt"].dump();
    const std::string base = dpotest::cliPath() + " generate --device cpu --greedy --ignore-eos --max-new-tokens 6 --model "
        + q(dir.string());
    auto r = dpotest::runCommand(base + " --messages " + q(messages));
    ASSERT_EQ(r.exitCode, 0) << r.err;
    auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["prompt"], f.expected["rows"][1]["prompt_text"]);
    EXPECT_EQ(j["ids"], generate(*model, f.expected["rows"][1]["prompt_ids"].get<std::vector<int64_t>>(), g));
    r = dpotest::runCommand(base + " --raw --prompt " + q("What is 3 plus 4?"));
    ASSERT_EQ(r.exitCode, 0) << r.err;
    EXPECT_EQ(nlohmann::json::parse(r.out)["prompt"], "What is 3 plus 4?");
    fs::remove(dir / "chat_template.jinja");
    r = dpotest::runCommand(base + " --messages " + q(messages));
    EXPECT_NE(r.exitCode, 0);
    EXPECT_EQ(lineCount(r.err), 1) << r.err;
    EXPECT_NE(r.err.find("--chat-template"), std::string::npos) << r.err;
    fs::remove_all(dir);
}

} // namespace

TEST(Generation, GreedyMatchesReference)
{
    for (const auto &c : expected()["greedy"]) {
        auto prompt = c["prompt_ids"].get<std::vector<int64_t>>();
        auto want = c["new_ids"].get<std::vector<int64_t>>();
        EXPECT_EQ(generate(*refModel(), prompt, greedyOptions(int(want.size()))), want);
    }
}

TEST(Generation, CachedGreedyEqualsRecomputation)
{
    for (const auto &c : expected()["greedy"]) {
        auto prompt = c["prompt_ids"].get<std::vector<int64_t>>();
        EXPECT_EQ(generate(*refModel(), prompt, greedyOptions(20)), greedyWithoutCache(*refModel(), prompt, 20));
    }
}

TEST(Generation, BatchedLeftPaddedGreedyEqualsOneByOne)
{
    std::vector<std::vector<int64_t>> prompts;
    for (const auto &c : expected()["greedy"])
        prompts.push_back(c["prompt_ids"].get<std::vector<int64_t>>());
    prompts.push_back({ 1, 599 }); // much shorter: several columns of left padding
    auto batch = generateBatch(*refModel(), prompts, greedyOptions(12));
    ASSERT_EQ(batch.size(), prompts.size());
    for (size_t i = 0; i < prompts.size(); ++i) {
        EXPECT_EQ(batch[i], generate(*refModel(), prompts[i], greedyOptions(12))) << "prompt " << i;
        if (i < expected()["greedy"].size())
            EXPECT_EQ(batch[i], expected()["greedy"][i]["new_ids"].get<std::vector<int64_t>>());
    }
}

TEST(Generation, SamplingIsReproducibleBySeed)
{
    auto prompt = expected()["greedy"][0]["prompt_ids"].get<std::vector<int64_t>>();
    GenerationOptions o = greedyOptions(24);
    o.greedy = false;
    o.temperature = 1.0;
    o.seed = 1234;
    auto a = generate(*refModel(), prompt, o);
    auto b = generate(*refModel(), prompt, o);
    EXPECT_EQ(a.size(), 24u);
    EXPECT_EQ(a, b);
    o.seed = 1235;
    EXPECT_NE(generate(*refModel(), prompt, o), a);

    // Top-k = 1 leaves only the argmax, whatever the seed and temperature.
    o.topK = 1;
    o.temperature = 3.0;
    EXPECT_EQ(generate(*refModel(), prompt, o), generate(*refModel(), prompt, greedyOptions(24)));
    // A vanishing nucleus keeps only the most likely token too.
    o.topK = 0;
    o.topP = 1e-9;
    EXPECT_EQ(generate(*refModel(), prompt, o), generate(*refModel(), prompt, greedyOptions(24)));
}

TEST(Generation, WarpersFollowHuggingFaceSemantics)
{
    // probabilities 0.5, 0.3, 0.15, 0.05 (shuffled order)
    auto logits = torch::tensor({ 0.15, 0.5, 0.05, 0.3 }, torch::kFloat32).log();
    auto kept = [&](double t, int k, double p) {
        auto w = warpLogits(logits, t, k, p);
        std::vector<int64_t> ids;
        for (int64_t i = 0; i < w.size(0); ++i)
            if (std::isfinite(w[i].item<float>()))
                ids.push_back(i);
        return ids;
    };
    EXPECT_EQ(kept(1.0, 0, 1.0), (std::vector<int64_t> { 0, 1, 2, 3 }));
    EXPECT_EQ(kept(1.0, 2, 1.0), (std::vector<int64_t> { 1, 3 }));
    EXPECT_EQ(kept(1.0, 0, 0.75), (std::vector<int64_t> { 1, 3 })); // 0.5 + 0.3 >= 0.75
    EXPECT_EQ(kept(1.0, 0, 0.9), (std::vector<int64_t> { 0, 1, 3 })); // needs 0.15 as well
    EXPECT_EQ(kept(1.0, 0, 0.3), (std::vector<int64_t> { 1 })); // the top token reaches p alone
    EXPECT_EQ(kept(1.0, 0, 1e-12), (std::vector<int64_t> { 1 })); // never empty
    EXPECT_EQ(kept(1.0, 3, 0.75), (std::vector<int64_t> { 1, 3 })); // top-k, then top-p
    // Temperature divides the logits before the nucleus is taken.
    auto w = warpLogits(logits, 2.0, 0, 1.0);
    EXPECT_NEAR(w[1].item<float>(), std::log(0.5f) / 2.0f, 1e-6);
    // Ties at the k-th value stay (HF keeps scores >= the k-th largest).
    auto tie = warpLogits(torch::tensor({ 1.0f, 2.0f, 2.0f, 0.0f }), 1.0, 1, 1.0);
    EXPECT_EQ(torch::isfinite(tie).sum().item<int64_t>(), 2);
}

TEST(Generation, StopsAtEosAndOnCallback)
{
    auto prompt = expected()["greedy"][2]["prompt_ids"].get<std::vector<int64_t>>();
    auto want = expected()["greedy"][2]["new_ids"].get<std::vector<int64_t>>();
    // Treat the 3rd greedy token as EOS: generation ends right after emitting it.
    GenerationOptions o = greedyOptions(12);
    o.stopAtEos = true;
    o.eosTokenIds = { want[2] };
    EXPECT_EQ(generate(*refModel(), prompt, o), std::vector<int64_t>(want.begin(), want.begin() + 3));
    // ... unless EOS is ignored.
    o.stopAtEos = false;
    EXPECT_EQ(generate(*refModel(), prompt, o), want);

    std::vector<int64_t> streamed;
    auto got = generate(*refModel(), prompt, greedyOptions(12), [&](int64_t id) {
        streamed.push_back(id);
        return streamed.size() < 5;
    });
    EXPECT_EQ(got.size(), 5u);
    EXPECT_EQ(got, streamed);
    EXPECT_TRUE(generate(*refModel(), prompt, greedyOptions(0)).empty());
}

// Every family stops at its position limit (max_position_embeddings; n_positions for GPT-2), single and
// batched; a prompt that already fills it is an error naming the limit.
TEST(Generation, StopsAtThePositionLimitOfEveryFamily)
{
    for (const std::string name : { "llama-gqa", "gpt2" }) {
        auto model = dpo::loadCausalLM(dpotest::fixture(name + "/ref"), torch::kCPU, torch::kFloat32);
        const int64_t limit = model->config().maxPositionEmbeddings;
        GenerationOptions o = greedyOptions(20);
        o.stopAtEos = false;
        const std::vector<int64_t> longPrompt(size_t(limit - 6), 5);
        EXPECT_EQ(generate(*model, longPrompt, o).size(), 6u) << name;
        const auto batch = generateBatch(*model, { longPrompt, { 5, 6, 7 } }, o);
        EXPECT_EQ(batch[0].size(), 6u) << name;
        EXPECT_EQ(batch[1].size(), 6u) << name; // the batch shares the longest row's room
        EXPECT_EQ(generate(*model, { 5, 6, 7 }, o).size(), 20u) << name;
        try {
            generate(*model, std::vector<int64_t>(size_t(limit), 5), o);
            ADD_FAILURE() << name << ": a prompt filling the positions was accepted";
        } catch (const dpo::Error &e) {
            EXPECT_NE(std::string(e.what()).find(name == "gpt2" ? "n_positions is 128" : "max_position_embeddings is 256"),
                      std::string::npos)
                << e.what();
        }
    }
}

TEST(Generation, InvalidOptionsAreErrorsNamingTheOption)
{
    auto prompt = expected()["greedy"][0]["prompt_ids"].get<std::vector<int64_t>>();
    auto expectError = [&](GenerationOptions o, const std::string &name) {
        try {
            generate(*refModel(), prompt, o);
            ADD_FAILURE() << "expected an error naming " << name;
        } catch (const dpo::Error &e) {
            EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
        }
    };
    GenerationOptions s = greedyOptions(4);
    s.greedy = false;
    auto t = s;
    t.temperature = 0;
    expectError(t, "--temperature");
    auto k = s;
    k.topK = -1;
    expectError(k, "--top-k");
    auto p = s;
    p.topP = 1.5;
    expectError(p, "--top-p");
    auto p0 = s;
    p0.topP = 0;
    expectError(p0, "--top-p");
    auto n = s;
    n.maxNewTokens = -1;
    expectError(n, "--max-new-tokens");
    EXPECT_THROW(generate(*refModel(), {}, greedyOptions(2)), dpo::Error);
    EXPECT_THROW(generate(*refModel(), { 1, 100000 }, greedyOptions(2)), dpo::Error);
}

TEST(Generation, CliGenerateEndToEnd)
{
    const auto &c = expected()["greedy"][0];
    const std::string prompt = expected()["examples"][0]["prompt"];
    ASSERT_EQ(expected()["examples"][0]["prompt_ids"], c["prompt_ids"]) << "fixture prompt and greedy case differ";
    const std::string base
        = dpotest::cliPath() + " generate --model " + q(dpotest::fixture("llama-gqa/ref")) + " --prompt " + q(prompt);
    auto r = dpotest::runCommand(base + " --device cpu --max-new-tokens 12 --greedy --ignore-eos");
    ASSERT_EQ(r.exitCode, 0) << r.err;
    auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["ids"], c["new_ids"]);
    EXPECT_TRUE(j["text"].is_string());

    auto s = dpotest::runCommand(
        base + " --device cpu --max-new-tokens 8 --temperature 0.8 --top-k 50 --top-p 0.9 --seed 7");
    ASSERT_EQ(s.exitCode, 0) << s.err;
    EXPECT_LE(nlohmann::json::parse(s.out)["ids"].size(), 8u);

    // Each process costs a libtorch start-up: a few representative bad options only.
    for (const std::string bad : { "--temperature 0", "--top-p=1.5", "--top-k=-1", "--max-new-tokens=-2",
             "--greedy --temperature 0.5", "--device tpu" }) {
        auto e = dpotest::runCommand(base + " " + bad);
        EXPECT_NE(e.exitCode, 0) << bad;
        EXPECT_EQ(lineCount(e.err), 1) << bad << ": " << e.err;
        EXPECT_TRUE(e.out.empty()) << bad;
    }
    auto missing = dpotest::runCommand(dpotest::cliPath() + " generate --model /nonexistent/model --prompt hi");
    EXPECT_NE(missing.exitCode, 0);
    EXPECT_EQ(lineCount(missing.err), 1) << missing.err;
}

} // namespace test_generation
