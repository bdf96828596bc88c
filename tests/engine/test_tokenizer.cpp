// Sentencepiece tokenizer: exact ids against the reference fixture (tokenizer cases and TRL's
// example rule), special-token configuration, bad input, dpo-cli tokenize, thread safety.
#include "test_util.h"

#include "engine/error.h"
#include "engine/tokenizers/sp_tokenizer.h"
#include "engine/tokenizers/tokenizer.h"
#include "engine/tokenizers/utf8.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

namespace test_tokenizer { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const std::string kRef = dpotest::fixture("llama-gqa/ref");

json expected()
{
    return dpotest::readJson(dpotest::fixture("llama-gqa/expected.json"));
}

std::vector<int64_t> idsOf(const json &j)
{
    return j.get<std::vector<int64_t>>();
}

// A scratch folder holding the fixture's tokenizer.model and whatever else a test writes.
struct TempModelDir {
    fs::path path;
    explicit TempModelDir(bool withModel = true)
    {
        static int counter = 0;
        path = fs::temp_directory_path()
            / ("dpo_tok_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
        fs::create_directories(path);
        if (withModel)
            fs::copy_file(fs::path(kRef) / "tokenizer.model", path / "tokenizer.model");
    }
    ~TempModelDir() { fs::remove_all(path); }
    void write(const std::string &name, const std::string &content) const
    {
        std::ofstream(path / name, std::ios::binary) << content;
    }
    std::string str() const { return path.string(); }
};

std::string shellQuote(const std::string &s)
{
    std::string out = "'";
    for (char c : s)
        out += (c == '\'') ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

// What the fixture's sentencepiece normalizer (nmt_nfkc + remove_extra_whitespaces) keeps of ASCII
// text: tabs and newlines become spaces, runs collapse, ends are trimmed. decode(encode(x)) gives
// this, as sentencepiece's own decode does; for the other cases it is x itself.
std::string spNormalized(const std::string &text)
{
    std::string out;
    bool pendingSpace = false;
    for (char c : text) {
        if (c == ' ' || c == '\t' || c == '\n') {
            pendingSpace = !out.empty();
            continue;
        }
        if (pendingSpace)
            out += ' ';
        pendingSpace = false;
        out += c;
    }
    return out;
}

template <typename F> std::string errorOf(F &&f)
{
    try {
        f();
    } catch (const dpo::Error &e) {
        return e.what();
    }
    return "<no dpo::Error thrown>";
}

} // namespace

TEST(Utf8, Validation)
{
    size_t bad = 99;
    EXPECT_TRUE(dpo::isValidUtf8(""));
    EXPECT_TRUE(dpo::isValidUtf8("Café naïve — ☕ 東京 🙂"));
    EXPECT_TRUE(dpo::isValidUtf8("\xF4\x8F\xBF\xBF")); // U+10FFFF
    EXPECT_FALSE(dpo::isValidUtf8("ab\xFF", &bad));
    EXPECT_EQ(bad, 2u);
    EXPECT_FALSE(dpo::isValidUtf8("x\xC0\xAF", &bad)); // overlong '/'
    EXPECT_EQ(bad, 1u);
    EXPECT_FALSE(dpo::isValidUtf8("\xE0\x80\xAF")); // overlong 3-byte
    EXPECT_FALSE(dpo::isValidUtf8("\xED\xA0\x80")); // surrogate U+D800
    EXPECT_FALSE(dpo::isValidUtf8("\xF4\x90\x80\x80")); // above U+10FFFF
    EXPECT_FALSE(dpo::isValidUtf8("ok\xE2\x82", &bad)); // truncated
    EXPECT_EQ(bad, 2u);
    EXPECT_FALSE(dpo::isValidUtf8("\x80")); // stray continuation byte
    EXPECT_EQ(
        errorOf([] { dpo::requireUtf8("abc\xFE", "prompt of line 3"); }), "prompt of line 3: invalid UTF-8 at byte 3");
    EXPECT_NO_THROW(dpo::requireUtf8("plain", "x"));
}

TEST(SentencePieceTokenizer, FixtureCasesExact)
{
    auto tok = dpo::loadTokenizer(kRef);
    EXPECT_EQ(tok->kind(), "sentencepiece");
    const json cases = expected()["tokenizer_cases"];
    ASSERT_GE(cases.size(), 8u);
    int exactRoundTrips = 0;
    for (const auto &c : cases) {
        const std::string text = c["text"];
        EXPECT_EQ(tok->encode(text), idsOf(c["ids"])) << "text: " << text;
        EXPECT_EQ(tok->decode(tok->encode(text)), spNormalized(text)) << "round trip of: " << text;
        exactRoundTrips += tok->decode(tok->encode(text)) == text;
    }
    EXPECT_GE(exactRoundTrips, 5); // everything but the whitespace cases comes back unchanged
}

TEST(SentencePieceTokenizer, ExamplesFollowTrlRule)
{
    auto tok = dpo::loadTokenizer(kRef);
    const json exp = expected();
    ASSERT_EQ(exp["examples"].size(), 8u);
    for (const auto &ex : exp["examples"]) {
        const std::string prompt = ex["prompt"];
        const std::vector<int64_t> promptIds = tok->encodeWithSpecial(prompt);
        EXPECT_EQ(promptIds, idsOf(ex["prompt_ids"])) << prompt;
        for (const char *side : { "chosen", "rejected" }) {
            std::vector<int64_t> full = tok->encodeWithSpecial(prompt + ex[side].get<std::string>());
            ASSERT_GE(full.size(), promptIds.size());
            ASSERT_TRUE(std::equal(promptIds.begin(), promptIds.end(), full.begin())) << prompt << " / " << side;
            std::vector<int64_t> completion(full.begin() + static_cast<long>(promptIds.size()), full.end());
            completion.push_back(tok->eosId());
            EXPECT_EQ(completion, idsOf(ex[std::string(side) + "_ids"])) << prompt << " / " << side;
        }
    }
}

TEST(SentencePieceTokenizer, SpecialTokensFromConfig)
{
    auto tok = dpo::loadTokenizer(kRef);
    const json exp = expected();
    const json cfg = dpotest::readJson(kRef + "/config.json");
    EXPECT_EQ(tok->bosId(), exp["bos_id"].get<int64_t>());
    EXPECT_EQ(tok->eosId(), exp["eos_id"].get<int64_t>());
    EXPECT_TRUE(tok->addBos());
    EXPECT_FALSE(tok->addEos());
    EXPECT_EQ(tok->vocabSize(), cfg["vocab_size"].get<int64_t>());
    EXPECT_EQ(tok->tokenToId("<s>"), tok->bosId());
    EXPECT_EQ(tok->tokenToId("</s>"), tok->eosId());
    EXPECT_EQ(tok->idToToken(tok->bosId()), "<s>");
    EXPECT_EQ(tok->tokenToId("<unk>"), tok->unkId());
    EXPECT_EQ(tok->tokenToId("no such piece at all"), -1);
    EXPECT_EQ(tok->sourceDir(), kRef);
    // Like HF, a literal special-token string in the text is that token.
    std::vector<int64_t> withBos = { tok->bosId() };
    for (int64_t id : tok->encode("Hello world"))
        withBos.push_back(id);
    EXPECT_EQ(tok->encode("<s>Hello world"), withBos);
}

TEST(SentencePieceTokenizer, DecodeSkipsSpecialTokens)
{
    auto tok = dpo::loadTokenizer(kRef);
    const std::string text = "Kofi found the sleepy harbor near the coast.";
    std::vector<int64_t> ids = tok->encodeWithSpecial(text);
    ids.push_back(tok->eosId());
    ids.push_back(tok->unkId());
    EXPECT_EQ(tok->decode(ids, true), text);
    const std::string raw = tok->decode(ids, false);
    EXPECT_EQ(raw, "<s>" + text + "</s><unk>");
    EXPECT_THROW(tok->decode({ tok->vocabSize() }), dpo::Error);
    EXPECT_THROW(tok->decode({ -1 }), dpo::Error);
    EXPECT_THROW(tok->idToToken(tok->vocabSize()), dpo::Error);
    // Byte-fallback pieces of one character are decoded together.
    EXPECT_EQ(tok->decode(tok->encode("🙂 東京")), "🙂 東京");
}

TEST(SentencePieceTokenizer, TokenizerConfigVariants)
{
    const std::string text = "Hello world";
    {
        TempModelDir d;
        d.write("tokenizer_config.json",
            R"({"add_bos_token": false, "add_eos_token": true, "bos_token": {"content": "<s>", "special": true},)"
            R"( "eos_token": {"content": "</s>"}, "pad_token": "<unk>"})");
        auto tok = dpo::loadTokenizer(d.str());
        EXPECT_FALSE(tok->addBos());
        EXPECT_TRUE(tok->addEos());
        EXPECT_EQ(tok->padId(), tok->tokenToId("<unk>"));
        std::vector<int64_t> want = tok->encode(text);
        want.push_back(tok->eosId());
        EXPECT_EQ(tok->encodeWithSpecial(text), want);
    }
    {
        // No tokenizer_config.json: LlamaTokenizer defaults, eos from generation_config (first of a list).
        TempModelDir d;
        d.write("generation_config.json", R"({"bos_token_id": 1, "eos_token_id": [7, 2]})");
        auto tok = dpo::loadTokenizer(d.str());
        EXPECT_TRUE(tok->addBos());
        EXPECT_FALSE(tok->addEos());
        EXPECT_EQ(tok->eosId(), 7);
        EXPECT_EQ(tok->encodeWithSpecial(text).front(), 1);
    }
    {
        // Nothing but tokenizer.model: the model's own ids.
        TempModelDir d;
        auto tok = dpo::loadTokenizer(d.str());
        EXPECT_EQ(tok->bosId(), 1);
        EXPECT_EQ(tok->eosId(), 2);
    }
    {
        // Added tokens beyond the sentencepiece vocabulary.
        TempModelDir d;
        d.write(
            "tokenizer_config.json", R"({"added_tokens_decoder": {"1003": {"content": "<|sep|>", "special": true}}})");
        auto tok = dpo::loadTokenizer(d.str());
        EXPECT_EQ(tok->vocabSize(), 1004);
        EXPECT_EQ(tok->tokenToId("<|sep|>"), 1003);
        std::vector<int64_t> want = tok->encode("a");
        want.push_back(1003);
        for (int64_t id : tok->encode("b"))
            want.push_back(id);
        EXPECT_EQ(tok->encode("a<|sep|>b"), want);
        // Each text segment gets sentencepiece's dummy prefix, as HF's legacy Llama tokenizer does.
        EXPECT_EQ(tok->decode(want, true), "a b");
        EXPECT_EQ(tok->decode(want, false), "a<|sep|>b");
        EXPECT_THROW(tok->decode({ 1001 }), dpo::Error); // a gap: no such token
        EXPECT_THROW(dpo::checkTokenizerFitsModel(*tok, 1000, d.str()), dpo::Error);
        EXPECT_NO_THROW(dpo::checkTokenizerFitsModel(*tok, 1004, d.str()));
    }
}

TEST(SentencePieceTokenizer, BadInputThrows)
{
    auto tok = dpo::loadTokenizer(kRef);
    EXPECT_NE(errorOf([&] { tok->encode("ok \xC3\x28 bad"); }).find("invalid UTF-8 at byte 3"), std::string::npos);

    {
        TempModelDir d;
        d.write("tokenizer_config.json", "{\"add_bos_token\": true,,}");
        EXPECT_NE(errorOf([&] { dpo::loadTokenizer(d.str()); }).find("tokenizer_config.json"), std::string::npos);
    }
    {
        TempModelDir d;
        d.write("tokenizer_config.json", R"({"add_bos_token": "yes"})");
        const std::string e = errorOf([&] { dpo::loadTokenizer(d.str()); });
        EXPECT_NE(e.find("tokenizer_config.json"), std::string::npos) << e;
        EXPECT_NE(e.find("add_bos_token"), std::string::npos) << e;
    }
    {
        TempModelDir d(false);
        const std::string e = errorOf([&] { dpo::loadTokenizer(d.str()); });
        EXPECT_NE(e.find("tokenizer.model"), std::string::npos) << e;
        EXPECT_NE(e.find(d.str()), std::string::npos) << e;
    }
    {
        const std::string missing = "/nonexistent/dpo-model-folder";
        EXPECT_NE(errorOf([&] { dpo::loadTokenizer(missing); }).find(missing), std::string::npos);
    }
    {
        TempModelDir d(false);
        std::mt19937 rng(42);
        std::string junk(4096, '\0');
        for (char &c : junk)
            c = static_cast<char>(rng() & 0xFF);
        d.write("tokenizer.model", junk);
        const std::string e = errorOf([&] { dpo::loadTokenizer(d.str()); });
        EXPECT_NE(e.find((d.path / "tokenizer.model").string()), std::string::npos) << e;
    }
}

TEST(SentencePieceTokenizer, VocabularyMustFitModel)
{
    auto tok = dpo::loadTokenizer(kRef);
    const int64_t modelVocab = dpotest::readJson(kRef + "/config.json")["vocab_size"].get<int64_t>();
    EXPECT_NO_THROW(dpo::checkTokenizerFitsModel(*tok, modelVocab, kRef));
    EXPECT_NO_THROW(dpo::checkTokenizerFitsModel(*tok, modelVocab + 24, kRef)); // padded embeddings
    const std::string e = errorOf([&] { dpo::checkTokenizerFitsModel(*tok, modelVocab - 1, "/some/model"); });
    EXPECT_NE(e.find("/some/model"), std::string::npos) << e;
    EXPECT_NE(e.find(std::to_string(modelVocab)), std::string::npos) << e;
    // An EOS id the model has no row for.
    TempModelDir d;
    d.write("config.json", R"({"eos_token_id": 5000})");
    auto bad = dpo::loadTokenizer(d.str());
    EXPECT_EQ(bad->eosId(), 5000);
    EXPECT_THROW(dpo::checkTokenizerFitsModel(*bad, modelVocab, d.str()), dpo::Error);
}

// A sentencepiece-style tokenizer.json (as converted for Llama 2 / Gemma / T5) without its
// tokenizer.model is refused by name, never read as byte-level BPE.
TEST(Tokenizer, SentencepieceStyleTokenizerJsonNeedsTokenizerModel)
{
    const nlohmann::json metaspace = { { "type", "Metaspace" }, { "replacement", "\xe2\x96\x81" },
        { "prepend_scheme", "first" }, { "split", false } };
    const nlohmann::json bpe = { { "type", "BPE" }, { "byte_fallback", true }, { "unk_token", "<unk>" },
        { "vocab", { { "<unk>", 0 }, { "<s>", 1 }, { "</s>", 2 }, { "<0x41>", 3 }, { "\xe2\x96\x81", 4 }, { "a", 5 },
                       { "\xe2\x96\x81" "a", 6 } } },
        { "merges", { "\xe2\x96\x81 a" } } };
    const nlohmann::json unigram
        = { { "type", "Unigram" }, { "unk_id", 0 }, { "vocab", { { "<unk>", 0.0 }, { "\xe2\x96\x81" "a", -1.5 } } } };
    const nlohmann::json decoderSeq = { { "type", "Sequence" },
        { "decoders", { { { "type", "Replace" }, { "pattern", { { "String", "\xe2\x96\x81" } } }, { "content", " " } },
                          { { "type", "ByteFallback" } }, { { "type", "Fuse" } } } } };
    const std::vector<std::pair<nlohmann::json, std::string>> cases = {
        { { { "model", bpe }, { "pre_tokenizer", metaspace }, { "decoder", metaspace } }, "byte_fallback" },
        { { { "model", unigram }, { "pre_tokenizer", metaspace }, { "decoder", metaspace } }, "Unigram" },
        // Llama 2's form: no pre-tokenizer, a Prepend/Replace normalizer, byte fallback in the decoder.
        { { { "model", bpe }, { "pre_tokenizer", nullptr }, { "decoder", decoderSeq } }, "byte_fallback" },
        { { { "model", { { "type", "BPE" }, { "vocab", { { "a", 0 } } }, { "merges", nlohmann::json::array() } } },
              { "pre_tokenizer", { { "type", "Sequence" }, { "pretokenizers", { metaspace } } } } },
            "Metaspace" },
    };
    for (const auto &c : cases) {
        TempModelDir d(false);
        d.write("tokenizer.json", c.first.dump());
        const std::string e = errorOf([&] { dpo::loadTokenizer(d.str()); });
        EXPECT_NE(e.find("sentencepiece-style"), std::string::npos) << e;
        EXPECT_NE(e.find(c.second), std::string::npos) << e;
        EXPECT_NE(e.find((fs::path(d.str()) / "tokenizer.model").string() + " is missing"), std::string::npos) << e;
    }
    // With the tokenizer.model next to it, the sentencepiece model is used.
    TempModelDir d;
    d.write("tokenizer.json", cases[0].first.dump());
    EXPECT_EQ(dpo::loadTokenizer(d.str())->kind(), "sentencepiece");
}

TEST(SentencePieceTokenizer, ConcurrentEncodesAgree)
{
    auto tok = dpo::loadTokenizer(kRef);
    const json cases = expected()["tokenizer_cases"];
    std::vector<std::string> texts;
    std::vector<std::vector<int64_t>> want;
    for (const auto &c : cases) {
        texts.push_back(c["text"]);
        want.push_back(idsOf(c["ids"]));
    }
    std::vector<int> mismatches(4, 0);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            for (int rep = 0; rep < 200; ++rep)
                for (size_t i = 0; i < texts.size(); ++i)
                    if (tok->encode(texts[(i + t) % texts.size()]) != want[(i + t) % texts.size()])
                        ++mismatches[t];
        });
    for (auto &th : threads)
        th.join();
    for (int t = 0; t < 4; ++t)
        EXPECT_EQ(mismatches[t], 0) << "thread " << t;
}

TEST(TokenizeCli, PrintsExactIds)
{
    // Start-up of dpo-cli costs a moment: the plain, the byte-fallback and the empty case.
    const json cases = expected()["tokenizer_cases"];
    int ran = 0;
    for (const auto &c : cases) {
        const std::string text = c["text"];
        if (!(text.empty() || text == "Hello world" || text.find("\xF0\x9F\x99\x82") != std::string::npos))
            continue;
        auto r = dpotest::runCommand(
            dpotest::cliPath() + " tokenize --model " + shellQuote(kRef) + " --text " + shellQuote(text));
        ASSERT_EQ(r.exitCode, 0) << r.err;
        const json out = json::parse(r.out);
        EXPECT_EQ(idsOf(out["ids"]), idsOf(c["ids"])) << text;
        EXPECT_FALSE(out.contains("text"));
        ++ran;
    }
    EXPECT_EQ(ran, 3);
    auto r = dpotest::runCommand(dpotest::cliPath() + " tokenize --special --decode --model " + shellQuote(kRef)
        + " --text " + shellQuote("Hello world"));
    ASSERT_EQ(r.exitCode, 0) << r.err;
    const json out = json::parse(r.out);
    EXPECT_EQ(out["ids"][0].get<int64_t>(), expected()["bos_id"].get<int64_t>());
    EXPECT_EQ(out["text"], "Hello world");
}

TEST(TokenizeCli, BadInputExitsWithOneLine)
{
    auto oneErrorLine = [](const dpotest::CommandResult &r) {
        EXPECT_EQ(r.exitCode, 1);
        EXPECT_TRUE(r.out.empty()) << r.out;
        ASSERT_FALSE(r.err.empty());
        EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
        EXPECT_EQ(r.err.rfind("dpo-cli: error: ", 0), 0u) << r.err;
    };
    auto r = dpotest::runCommand(dpotest::cliPath() + " tokenize --model /nonexistent/dpo-model --text hi");
    oneErrorLine(r);
    EXPECT_NE(r.err.find("/nonexistent/dpo-model"), std::string::npos);
    // printf's octal escape works in every /bin/sh.
    r = dpotest::runCommand(
        dpotest::cliPath() + " tokenize --model " + shellQuote(kRef) + " --text \"$(printf 'ab\\377')\"");
    oneErrorLine(r);
    EXPECT_NE(r.err.find("invalid UTF-8 at byte 2"), std::string::npos) << r.err;
    // A shim named by DPO_SPM_SHIM that does not exist is reported, not silently replaced.
    r = dpotest::runCommand("DPO_SPM_SHIM=/nonexistent/libdpo_spm_shim.so " + dpotest::cliPath() + " tokenize --model "
        + shellQuote(kRef) + " --text hi");
    oneErrorLine(r);
    EXPECT_NE(r.err.find("DPO_SPM_SHIM"), std::string::npos) << r.err;
}

} // namespace test_tokenizer
