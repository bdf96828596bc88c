// Generation: greedy ids against the reference, the preallocated KV cache vs recomputation (both
// families) and its storage allocated once, sampling seeds and the on-device draw's distribution,
// top-k / top-p semantics, batched (left-padded) generation, prompts formatted with a chat template
// (ids against jinja2's render, tests/data/chat-pairs) and `dpo-cli generate` with --prompt / --messages.
#include "engine/chat/chat_prompt.h"
#include "engine/models/attention_mask.h"
#include "engine/models/causal_lm.h"
#include "engine/error.h"
#include "engine/generation/generation.h"
#include "test_util.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
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

// ---------------------------------------------------------------------------------------------
// The preallocated KV cache, for both families: llama-gqa (grouped KV heads, RoPE) and gpt2
// (learned positions, tied head).

namespace {

std::shared_ptr<CausalLM> familyModel(const std::string &dir)
{
    static std::map<std::string, std::shared_ptr<CausalLM>> models;
    auto &m = models[dir];
    if (!m)
        m = loadCausalLM(dpotest::fixture(dir + "/ref"));
    return m;
}

const nlohmann::json &familyExpected(const std::string &dir)
{
    static std::map<std::string, nlohmann::json> files;
    auto &j = files[dir];
    if (j.is_null())
        j = dpotest::readJson(dpotest::fixture(dir + "/expected.json"));
    return j;
}

std::vector<std::vector<int64_t>> greedyPrompts(const std::string &dir)
{
    std::vector<std::vector<int64_t>> prompts;
    for (const auto &c : familyExpected(dir)["greedy"])
        prompts.push_back(c["prompt_ids"].get<std::vector<int64_t>>());
    return prompts;
}

class GenerationFamily : public ::testing::TestWithParam<std::string> {
protected:
    CausalLM &model() { return *familyModel(GetParam()); }
    const nlohmann::json &cases() { return familyExpected(GetParam())["greedy"]; }
};

std::string familyName(const ::testing::TestParamInfo<std::string> &info)
{
    std::string n = info.param;
    std::replace(n.begin(), n.end(), '-', '_');
    return n;
}

} // namespace

TEST_P(GenerationFamily, PreallocatedCacheGreedyEqualsRecomputation)
{
    const int n = 20;
    for (const auto &c : cases()) {
        const auto prompt = c["prompt_ids"].get<std::vector<int64_t>>();
        KVCache cache;
        const auto got = generate(model(), prompt, greedyOptions(n), {}, &cache);
        EXPECT_EQ(got, greedyWithoutCache(model(), prompt, n));
        const auto ref = c["new_ids"].get<std::vector<int64_t>>(); // the transformers reference
        EXPECT_EQ(std::vector<int64_t>(got.begin(), got.begin() + int64_t(ref.size())), ref);
        // Decoded into reserved storage: prompt + every fed token (not the last one emitted).
        EXPECT_EQ(cache.capacity(), int64_t(prompt.size()) + n);
        EXPECT_EQ(cache.length(), int64_t(prompt.size()) + n - 1);
    }
}

TEST_P(GenerationFamily, BatchedLeftPaddedGreedyEqualsOneByOne)
{
    auto prompts = greedyPrompts(GetParam());
    prompts.push_back({ 1, 599 }); // much shorter: several columns of left padding
    auto batch = generateBatch(model(), prompts, greedyOptions(12));
    ASSERT_EQ(batch.size(), prompts.size());
    for (size_t i = 0; i < prompts.size(); ++i) {
        EXPECT_EQ(batch[i], generate(model(), prompts[i], greedyOptions(12))) << "prompt " << i;
        if (i < cases().size())
            EXPECT_EQ(batch[i], cases()[i]["new_ids"].get<std::vector<int64_t>>());
    }
    // A row that stops early (at row 0's first token, which no other row starts with) steps on with
    // padding while the others go on.
    GenerationOptions o = greedyOptions(12);
    o.stopAtEos = true;
    o.eosTokenIds = { cases()[0]["new_ids"][0].get<int64_t>() };
    batch = generateBatch(model(), prompts, o);
    EXPECT_EQ(batch[0].size(), 1u);
    EXPECT_EQ(batch[1].size(), 12u);
    for (size_t i = 0; i < prompts.size(); ++i)
        EXPECT_EQ(batch[i], generate(model(), prompts[i], o)) << "prompt " << i;
}

TEST_P(GenerationFamily, CacheStorageIsAllocatedOnce)
{
    const auto prompt = cases()[0]["prompt_ids"].get<std::vector<int64_t>>();
    const int64_t P = int64_t(prompt.size()), n = 15;
    KVCache cache;
    std::vector<const void *> storage;
    std::vector<int64_t> lengths;
    generate(
        model(), prompt, greedyOptions(int(n)),
        [&](int64_t) {
            storage.push_back(cache.keyStorage(0).data_ptr());
            lengths.push_back(cache.length());
            return true;
        },
        &cache);
    ASSERT_EQ(int64_t(storage.size()), n);
    for (int64_t i = 0; i < n; ++i) {
        EXPECT_EQ(storage[size_t(i)], storage[0]) << "step " << i;
        EXPECT_EQ(lengths[size_t(i)], P + i) << "step " << i;
    }
    EXPECT_EQ(cache.capacity(), P + n);
    EXPECT_EQ(cache.keyStorage(0).size(0), 1);
    for (size_t l = 0; l < cache.keys.size(); ++l) { // every layer's keys/values are views of its storage
        EXPECT_EQ(cache.keys[l].data_ptr(), cache.keyStorage(l).data_ptr()) << "layer " << l;
        EXPECT_EQ(cache.keys[l].size(2), P + n - 1) << "layer " << l;
    }

    // A second, shorter generation into the same cache reuses the storage.
    generate(model(), std::vector<int64_t>(prompt.begin(), prompt.begin() + 2), greedyOptions(5), {}, &cache);
    EXPECT_EQ(cache.keyStorage(0).data_ptr(), storage[0]);
    EXPECT_EQ(cache.length(), 2 + 5 - 1);

    // Capped at the position limit, as the number of new tokens is.
    const int64_t limit = model().config().maxPositionEmbeddings;
    KVCache capped;
    EXPECT_EQ(generate(model(), std::vector<int64_t>(size_t(limit - 6), 5), greedyOptions(20), {}, &capped).size(), 6u);
    EXPECT_EQ(capped.capacity(), limit);

    // Batched: one storage for all rows, the longest prompt + the new tokens.
    auto prompts = greedyPrompts(GetParam());
    size_t L = 0;
    for (const auto &p : prompts)
        L = std::max(L, p.size());
    KVCache batched;
    generateBatch(model(), prompts, greedyOptions(10), &batched);
    EXPECT_EQ(batched.capacity(), int64_t(L) + 10);
    EXPECT_EQ(batched.keyStorage(0).size(0), int64_t(prompts.size()));
    EXPECT_EQ(batched.keys[0].data_ptr(), batched.keyStorage(0).data_ptr());
}

INSTANTIATE_TEST_SUITE_P(Families, GenerationFamily, ::testing::Values("llama-gqa", "gpt2"), familyName);

// The cache itself: reserved appends give what concatenation gives, in one storage; appends past the
// capacity or after the caller replaced keys/values (sharedPromptLogps repeats them along the batch)
// still give the right keys; without reserve() autograd flows through it.
TEST(KVCache, ReservedAppendMatchesConcatenation)
{
    torch::manual_seed(11);
    KVCache grown, reserved;
    prepareCache(&grown, 2);
    prepareCache(&reserved, 2);
    reserved.reserve(7);
    auto check = [&](int64_t T, const std::string &what) {
        for (size_t l = 0; l < 2; ++l) {
            auto k = torch::randn({ 2, 3, T, 4 }), v = torch::randn({ 2, 3, T, 4 });
            auto [gk, gv] = grown.append(l, k, v);
            auto [rk, rv] = reserved.append(l, k.transpose(2, 3).contiguous().transpose(2, 3), v); // any strides
            EXPECT_TRUE(torch::equal(gk, rk)) << what << ", layer " << l;
            EXPECT_TRUE(torch::equal(gv, rv)) << what << ", layer " << l;
            EXPECT_EQ(rk.data_ptr(), reserved.keyStorage(l).data_ptr()) << what;
        }
        EXPECT_EQ(grown.length(), reserved.length()) << what;
    };
    check(3, "prompt");
    const void *storage = reserved.keyStorage(0).data_ptr();
    check(2, "chunk");
    check(1, "token");
    check(1, "token");
    EXPECT_EQ(reserved.keyStorage(0).data_ptr(), storage);
    EXPECT_EQ(reserved.capacity(), 7);
    EXPECT_EQ(grown.capacity(), 0);
    check(2, "past the capacity"); // 9 > 7: moved once to storage that fits
    EXPECT_EQ(reserved.capacity(), 9);
    for (auto *c : { &grown, &reserved })
        for (size_t l = 0; l < 2; ++l) {
            c->keys[l] = torch::cat({ c->keys[l], c->keys[l] }, 0);
            c->values[l] = torch::cat({ c->values[l], c->values[l] }, 0);
        }
    for (size_t l = 0; l < 2; ++l) { // [4, ...] now
        auto k = torch::randn({ 4, 3, 1, 4 }), v = torch::randn({ 4, 3, 1, 4 });
        EXPECT_TRUE(torch::equal(grown.append(l, k, v).first, reserved.append(l, k, v).first)) << "layer " << l;
    }

    // Gradients reach the appended keys, reserved or not (a reserved cache concatenates then).
    for (bool reserve : { false, true }) {
        KVCache training;
        prepareCache(&training, 1);
        if (reserve)
            training.reserve(8);
        auto k = torch::randn({ 1, 1, 2, 2 }, torch::requires_grad()), v = torch::randn({ 1, 1, 2, 2 });
        training.append(0, k, v);
        auto kAll = training.append(0, torch::randn({ 1, 1, 1, 2 }), torch::randn({ 1, 1, 1, 2 })).first;
        auto squares = kAll * kAll; // keeps kAll for the backward, across the next append
        training.append(0, torch::randn({ 1, 1, 1, 2 }), torch::randn({ 1, 1, 1, 2 }));
        squares.sum().backward();
        ASSERT_TRUE(k.grad().defined()) << "reserve " << reserve;
        EXPECT_TRUE(torch::allclose(k.grad(), 2 * k)) << "reserve " << reserve;
    }
}

// ---------------------------------------------------------------------------------------------
// Choosing tokens on the device

namespace {

// Token frequencies of `n` draws against `want` (probabilities): removed tokens (0) never drawn,
// the others within 4.5 standard errors.
void expectFrequencies(const torch::Tensor &ids, const std::vector<double> &want, const std::string &what)
{
    const int64_t n = ids.numel();
    ASSERT_EQ(ids.scalar_type(), torch::kInt64) << what;
    ASSERT_GE(ids.min().item<int64_t>(), 0) << what;
    auto counts = torch::bincount(ids.to(torch::kCPU), {}, int64_t(want.size()));
    ASSERT_EQ(counts.numel(), int64_t(want.size())) << what;
    for (size_t i = 0; i < want.size(); ++i) {
        const int64_t c = counts[int64_t(i)].item<int64_t>();
        if (want[i] == 0) {
            EXPECT_EQ(c, 0) << what << ": removed token " << i << " was drawn";
            continue;
        }
        const double f = double(c) / double(n), se = std::sqrt(want[i] * (1 - want[i]) / double(n));
        EXPECT_LT(std::abs(f - want[i]), 4.5 * se) << what << ": token " << i << " drawn " << f << ", want " << want[i];
    }
}

std::vector<double> normalized(std::vector<double> w)
{
    const double sum = std::accumulate(w.begin(), w.end(), 0.0);
    for (auto &x : w)
        x /= sum;
    return w;
}

} // namespace

TEST(Generation, OnDeviceSamplingDrawsTheWarpedDistribution)
{
    // probabilities 0.15, 0.5, 0.05, 0.3: the distributions below are worked out by hand from them.
    const std::vector<double> base { 0.15, 0.5, 0.05, 0.3 };
    // 64 tokens of distinct weights 1..64 (shuffled): top-k 10 keeps the weights 55..64.
    std::vector<double> weights(64), top10(64, 0.0);
    for (int64_t i = 0; i < 64; ++i) {
        weights[size_t(i)] = double((i * 37) % 64 + 1);
        if (weights[size_t(i)] > 54)
            top10[size_t(i)] = weights[size_t(i)];
    }
    struct Case {
        std::string name;
        std::vector<double> probs; // the model's distribution (logits = log probs)
        double temperature;
        int topK;
        double topP;
        std::vector<double> want;
    };
    const std::vector<Case> cases {
        { "plain", base, 1.0, 0, 1.0, base },
        { "temperature 2: p^(1/2)", base, 2.0, 0, 1.0,
            normalized({ std::sqrt(0.15), std::sqrt(0.5), std::sqrt(0.05), std::sqrt(0.3) }) },
        { "top-k 2", base, 1.0, 2, 1.0, { 0, 0.5 / 0.8, 0, 0.3 / 0.8 } },
        { "top-p 0.9", base, 1.0, 0, 0.9, { 0.15 / 0.95, 0.5 / 0.95, 0, 0.3 / 0.95 } },
        { "top-k 3, top-p 0.75", base, 1.0, 3, 0.75, { 0, 0.5 / 0.8, 0, 0.3 / 0.8 } },
        { "temperature 0.5 (p^2), top-k 3", base, 0.5, 3, 1.0, normalized({ 0.0225, 0.25, 0, 0.09 }) },
        { "64 tokens", normalized(weights), 1.0, 0, 1.0, normalized(weights) },
        { "64 tokens, top-k 10", normalized(weights), 1.0, 10, 1.0, normalized(top10) },
    };
    const int64_t n = 40000;
    for (const auto &c : cases) {
        GenerationOptions o;
        o.greedy = false;
        o.temperature = c.temperature;
        o.topK = c.topK;
        o.topP = c.topP;
        auto logits = torch::tensor(c.probs, torch::kFloat64).log().to(torch::kFloat32).unsqueeze(0).repeat({ n, 1 });
        auto gen = at::detail::createCPUGenerator(99);
        auto ids = chooseTokens(logits, o, gen); // n independent rows, one generator
        EXPECT_EQ(ids.device(), logits.device()) << c.name;
        EXPECT_EQ(ids.sizes(), torch::IntArrayRef({ n })) << c.name;
        expectFrequencies(ids, c.want, c.name);
    }

    // One row, a fresh generator per seed (as generate() has): the seeds' draws follow the
    // distribution too, and a seed always gives the same token.
    GenerationOptions o;
    o.greedy = false;
    auto row = torch::tensor(base, torch::kFloat64).log().to(torch::kFloat32).unsqueeze(0);
    std::vector<int64_t> bySeed;
    for (uint64_t seed = 0; seed < 4000; ++seed) {
        auto gen = at::detail::createCPUGenerator(seed);
        bySeed.push_back(chooseTokens(row, o, gen).item<int64_t>());
    }
    expectFrequencies(torch::tensor(bySeed, torch::kInt64), base, "one draw per seed");
    for (uint64_t seed = 0; seed < 50; ++seed) {
        auto gen = at::detail::createCPUGenerator(seed);
        EXPECT_EQ(chooseTokens(row, o, gen).item<int64_t>(), bySeed[seed]) << "seed " << seed;
    }

    // Greedy is the argmax; a row without a distribution (NaN scores) is -1, which generate() reports.
    auto gen = at::detail::createCPUGenerator(0);
    EXPECT_EQ(chooseTokens(row, greedyOptions(1), gen).item<int64_t>(), 1);
    auto nan = torch::cat({ row, torch::full({ 1, 4 }, std::nanf("")) });
    EXPECT_EQ(chooseTokens(nan, o, gen)[1].item<int64_t>(), -1);
}

// On a GPU (skipped without one): the same greedy tokens as the reference, the cache on the device,
// and a seed's sampled tokens reproducible there.
TEST(Generation, RunsOnCudaWhenAvailable)
{
    if (!torch::cuda::is_available())
        GTEST_SKIP() << "no CUDA device";
    auto model = loadCausalLM(dpotest::fixture("llama-gqa/ref"), torch::Device(torch::kCUDA, 0));
    for (const auto &c : expected()["greedy"]) {
        const auto prompt = c["prompt_ids"].get<std::vector<int64_t>>();
        const auto want = c["new_ids"].get<std::vector<int64_t>>();
        KVCache cache;
        EXPECT_EQ(generate(*model, prompt, greedyOptions(int(want.size())), {}, &cache), want);
        EXPECT_TRUE(cache.keyStorage(0).is_cuda());
    }
    auto prompt = expected()["greedy"][0]["prompt_ids"].get<std::vector<int64_t>>();
    GenerationOptions o = greedyOptions(24);
    o.greedy = false;
    o.topK = 50;
    o.topP = 0.9;
    o.seed = 5;
    EXPECT_EQ(generate(*model, prompt, o), generate(*model, prompt, o));
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
