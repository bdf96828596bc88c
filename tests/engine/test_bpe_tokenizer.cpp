// Byte-level BPE: the gpt2 fixture's reference ids (tokenizer.json and vocab.json + merges.txt),
// TRL's example tokenization, round trips of random Unicode text, special tokens inside text, and
// small Llama-3-style / Qwen2-style tokenizer.json files written here with their real regexes.
#include "engine/tokenizers/bpe_tokenizer.h"
#include "engine/error.h"
#include "engine/tokenizers/tokenizer.h"
#include "engine/tokenizers/unicode_nfc.h"
#include "engine/tokenizers/utf8.h"
#include "test_util.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

namespace test_bpe_tokenizer { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::vector<int64_t> idsOf(const json &j)
{
    return j.get<std::vector<int64_t>>();
}

// A fresh temp folder, removed at scope exit.
struct TempDir {
    fs::path path;
    TempDir()
    {
        std::random_device rd;
        path = fs::temp_directory_path() / ("dpo_bpe_test_" + std::to_string(rd()) + std::to_string(::getpid()));
        fs::create_directories(path);
    }
    ~TempDir() { fs::remove_all(path); }
};

void writeFile(const fs::path &p, const std::string &text)
{
    std::ofstream f(p, std::ios::binary);
    f << text;
}

// Random text mixing the kinds of characters that stress a byte-level BPE.
std::string randomText(std::mt19937 &rng)
{
    static const std::vector<std::string> words = { "the", "Hello", "don't", "I'm", "we'll", "12", "3.14", "naïve",
        "café", "東京", "🙂", "👍🏽", "—", "<|endo", "ftext|>", "\t", "\n" };
    std::string s;
    const int n = std::uniform_int_distribution<int>(0, 24)(rng);
    for (int i = 0; i < n; ++i) {
        switch (std::uniform_int_distribution<int>(0, 9)(rng)) {
        case 0:
            s += words[std::uniform_int_distribution<size_t>(0, words.size() - 1)(rng)];
            break;
        case 1: // whitespace runs
            s += std::string(std::uniform_int_distribution<size_t>(1, 5)(rng),
                " \t\n\r"[std::uniform_int_distribution<int>(0, 3)(rng)]);
            break;
        case 2:
            dpo::appendUtf8(s, std::uniform_int_distribution<uint32_t>(0x20, 0x7E)(rng));
            break;
        case 3: // Latin-1 and Latin Extended, combining marks
            dpo::appendUtf8(s, std::uniform_int_distribution<uint32_t>(0xA0, 0x36F)(rng));
            break;
        case 4: // CJK
            dpo::appendUtf8(s, std::uniform_int_distribution<uint32_t>(0x4E00, 0x9FFF)(rng));
            break;
        case 5: // emoji
            dpo::appendUtf8(s, std::uniform_int_distribution<uint32_t>(0x1F300, 0x1FAFF)(rng));
            break;
        case 6: // Greek, Cyrillic, Arabic, Devanagari
            dpo::appendUtf8(s, std::uniform_int_distribution<uint32_t>(0x370, 0x97F)(rng));
            break;
        case 7: // unusual spaces and punctuation
            dpo::appendUtf8(s, std::uniform_int_distribution<uint32_t>(0x2000, 0x206F)(rng));
            break;
        case 8:
            dpo::appendUtf8(s, std::uniform_int_distribution<uint32_t>('0', '9')(rng));
            break;
        default: // anything outside the surrogates
            for (;;) {
                uint32_t cp = std::uniform_int_distribution<uint32_t>(1, 0x10FFFF)(rng);
                if (cp < 0xD800 || cp > 0xDFFF) {
                    dpo::appendUtf8(s, cp);
                    break;
                }
            }
        }
    }
    return s;
}

const std::string kGpt2 = "gpt2/ref";

} // namespace

TEST(BpeTokenizer, LoadsGpt2FixtureAsByteLevelBpe)
{
    auto tok = dpo::loadTokenizer(dpotest::fixture(kGpt2));
    EXPECT_EQ(tok->kind(), "byte-level BPE");
    const json expected = dpotest::readJson(dpotest::fixture("gpt2/expected.json"));
    EXPECT_EQ(tok->eosId(), expected["eos_id"].get<int64_t>());
    EXPECT_FALSE(tok->addBos()); // GPT-2 adds no BOS (expected bos_id is null)
    EXPECT_FALSE(tok->addEos());
    EXPECT_EQ(tok->vocabSize(), dpotest::readJson(dpotest::fixture(kGpt2 + "/config.json"))["vocab_size"]);
    EXPECT_EQ(tok->tokenToId("<|endoftext|>"), 0);
    EXPECT_EQ(tok->idToToken(0), "<|endoftext|>");
    EXPECT_THROW(tok->idToToken(100000), dpo::Error);
}

TEST(BpeTokenizer, TokenizerCasesFromTokenizerJson)
{
    auto tok = dpo::loadTokenizer(dpotest::fixture(kGpt2));
    const json expected = dpotest::readJson(dpotest::fixture("gpt2/expected.json"));
    ASSERT_FALSE(expected["tokenizer_cases"].empty());
    for (const auto &c : expected["tokenizer_cases"]) {
        const std::string text = c["text"];
        EXPECT_EQ(tok->encode(text), idsOf(c["ids"])) << "text: " << text;
        EXPECT_EQ(tok->decode(idsOf(c["ids"])), text);
    }
}

TEST(BpeTokenizer, TokenizerCasesFromVocabAndMerges)
{
    TempDir dir;
    for (const char *f : { "vocab.json", "merges.txt" })
        fs::copy_file(dpotest::fixture(kGpt2 + "/" + f), dir.path / f);
    auto tok = dpo::loadTokenizer(dir.path.string());
    EXPECT_EQ(tok->kind(), "byte-level BPE");
    const json expected = dpotest::readJson(dpotest::fixture("gpt2/expected.json"));
    for (const auto &c : expected["tokenizer_cases"]) {
        const std::string text = c["text"];
        EXPECT_EQ(tok->encode(text), idsOf(c["ids"])) << "text: " << text;
    }

    // With tokenizer_config.json next to them, its special strings are split out as in HF.
    fs::copy_file(dpotest::fixture(kGpt2 + "/tokenizer_config.json"), dir.path / "tokenizer_config.json");
    auto withConfig = dpo::loadTokenizer(dir.path.string());
    auto fromJson = dpo::loadTokenizer(dpotest::fixture(kGpt2));
    const std::string text = "Hello<|endoftext|> world<|endoftext|>";
    EXPECT_EQ(withConfig->encode(text), fromJson->encode(text));
    EXPECT_EQ(withConfig->eosId(), 0);
}

TEST(BpeTokenizer, ExamplesFollowTrlRule)
{
    auto tok = dpo::loadTokenizer(dpotest::fixture(kGpt2));
    const json expected = dpotest::readJson(dpotest::fixture("gpt2/expected.json"));
    const int64_t eos = expected["eos_id"];
    ASSERT_FALSE(expected["examples"].empty());
    for (const auto &ex : expected["examples"]) {
        const std::string prompt = ex["prompt"];
        const std::vector<int64_t> promptIds = tok->encodeWithSpecial(prompt);
        EXPECT_EQ(promptIds, idsOf(ex["prompt_ids"])) << prompt;
        for (const char *side : { "chosen", "rejected" }) {
            std::vector<int64_t> full = tok->encodeWithSpecial(prompt + ex[side].get<std::string>());
            ASSERT_GE(full.size(), promptIds.size());
            std::vector<int64_t> completion(full.begin() + long(promptIds.size()), full.end());
            completion.push_back(eos);
            EXPECT_EQ(completion, idsOf(ex[std::string(side) + "_ids"])) << prompt << " / " << side;
        }
    }
}

TEST(BpeTokenizer, SpecialTokenStringsInsideText)
{
    auto tok = dpo::loadTokenizer(dpotest::fixture(kGpt2));
    const std::vector<int64_t> hello = tok->encode("Hello");
    const std::vector<int64_t> world = tok->encode(" world");
    std::vector<int64_t> want = hello;
    want.push_back(0);
    want.insert(want.end(), world.begin(), world.end());
    want.push_back(0);
    const std::string text = "Hello<|endoftext|> world<|endoftext|>";
    EXPECT_EQ(tok->encode(text), want);
    EXPECT_EQ(tok->decode(want, /*skipSpecial=*/false), text);
    EXPECT_EQ(tok->decode(want, /*skipSpecial=*/true), "Hello world");
    // A broken special string is ordinary text.
    for (int64_t id : tok->encode("<|endoftext|"))
        EXPECT_NE(id, 0);
}

TEST(BpeTokenizer, InvalidUtf8IsAnError)
{
    auto tok = dpo::loadTokenizer(dpotest::fixture(kGpt2));
    EXPECT_THROW(tok->encode(std::string("ab\xff")), dpo::Error);
    EXPECT_THROW(tok->encode(std::string("\xc3")), dpo::Error);
    EXPECT_THROW(tok->encode(std::string("\xed\xa0\x80")), dpo::Error); // a surrogate
}

TEST(BpeTokenizer, DecodeOfSplitCharacterIsLossy)
{
    auto tok = dpo::loadTokenizer(dpotest::fixture(kGpt2));
    // The first byte of "é" alone: tokenizers' from_utf8_lossy gives U+FFFD.
    const int64_t c3 = tok->tokenToId("\xc3\x83"); // byte 0xC3's stand-in is U+00C3
    ASSERT_GE(c3, 0);
    EXPECT_EQ(tok->decode({ c3 }), "\xef\xbf\xbd");
}

TEST(BpeTokenizer, RandomUnicodeRoundTrips)
{
    auto fromJson = dpo::loadTokenizer(dpotest::fixture(kGpt2));
    TempDir dir;
    for (const char *f : { "vocab.json", "merges.txt" })
        fs::copy_file(dpotest::fixture(kGpt2 + "/" + f), dir.path / f);
    auto fromFiles = dpo::loadTokenizer(dir.path.string());
    std::mt19937 rng(1234);
    for (int i = 0; i < 3000; ++i) {
        const std::string text = randomText(rng);
        const std::vector<int64_t> ids = fromJson->encode(text);
        ASSERT_EQ(fromJson->decode(ids, false), text) << "case " << i;
        // Without tokenizer_config.json the vocab.json tokenizer has no added tokens, so it agrees
        // with tokenizer.json only on text without the special string.
        if (text.find("<|endoftext|>") == std::string::npos)
            ASSERT_EQ(fromFiles->encode(text), ids) << "case " << i;
    }
    // Long whitespace runs and repeated characters (BPE on long words, the regex lookahead).
    for (const std::string &text :
        { std::string(5000, ' ') + "x", std::string(3000, 'a'), std::string(2000, '\n'), std::string(1000, ' ') }) {
        EXPECT_EQ(fromJson->decode(fromJson->encode(text)), text);
    }
}

// ---- synthetic Llama-3 and Qwen2 tokenizer.json files ----

namespace {

const char *const kLlama3Regex
    = R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char *const kQwen2Regex
    = R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// GPT-2's bytes_to_unicode stand-in of byte b, as UTF-8.
std::string byteChar(int b)
{
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    int n = 0;
    if (!printable)
        for (int x = 0; x < b; ++x)
            if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255)))
                ++n;
    std::string s;
    dpo::appendUtf8(s, printable ? uint32_t(b) : uint32_t(256 + n));
    return s;
}

// Vocabulary: id = byte value for the 256 byte characters, then these merges in rank order
// (ids 256..), then "xyz" (267, reachable only through ignore_merges), and the added tokens.
json syntheticModel(bool ignoreMerges)
{
    json vocab = json::object();
    for (int b = 0; b < 256; ++b)
        vocab[byteChar(b)] = b;
    const std::vector<std::pair<std::string, std::string>> merges = { { "1", "2" }, { "12", "3" }, { "4", "5" },
        { "!", "h" }, { "'", "T" }, { byteChar('\n'), byteChar('\n') }, { byteChar(' '), byteChar(' ') }, { "h", "i" },
        { byteChar(0xC3), byteChar(0xA9) }, { ".", byteChar('\n') } };
    json m = json::array();
    int id = 256;
    for (const auto &[a, b] : merges) {
        vocab[a + b] = id++;
        m.push_back(json::array({ a, b })); // the newer [a, b] form
    }
    vocab["xyz"] = 267;
    return { { "type", "BPE" }, { "dropout", nullptr }, { "unk_token", nullptr }, { "fuse_unk", false },
        { "byte_fallback", false }, { "ignore_merges", ignoreMerges }, { "vocab", vocab }, { "merges", m } };
}

json addedToken(int64_t id, const std::string &content)
{
    return { { "id", id }, { "content", content }, { "single_word", false }, { "lstrip", false }, { "rstrip", false },
        { "normalized", false }, { "special", true } };
}

json splitThenByteLevel(const char *regex)
{
    return { { "type", "Sequence" },
        { "pretokenizers",
            json::array({ { { "type", "Split" }, { "pattern", { { "Regex", regex } } }, { "behavior", "Isolated" },
                              { "invert", false } },
                { { "type", "ByteLevel" }, { "add_prefix_space", false }, { "trim_offsets", true },
                    { "use_regex", false } } }) } };
}

json byteLevel()
{
    return { { "type", "ByteLevel" }, { "add_prefix_space", true }, { "trim_offsets", true }, { "use_regex", true } };
}

std::unique_ptr<dpo::BpeTokenizer> llama3Style(const fs::path &dir)
{
    json j = { { "version", "1.0" }, { "truncation", nullptr }, { "padding", nullptr } };
    j["added_tokens"] = json::array({ addedToken(300, "<|begin_of_text|>"), addedToken(301, "<|eot_id|>") });
    j["normalizer"] = nullptr;
    j["pre_tokenizer"] = splitThenByteLevel(kLlama3Regex);
    json tp = { { "type", "TemplateProcessing" },
        { "single",
            json::array({ { { "SpecialToken", { { "id", "<|begin_of_text|>" }, { "type_id", 0 } } } },
                { { "Sequence", { { "id", "A" }, { "type_id", 0 } } } } }) },
        { "pair", json::array() },
        { "special_tokens",
            { { "<|begin_of_text|>",
                { { "id", "<|begin_of_text|>" }, { "ids", { 300 } }, { "tokens", { "<|begin_of_text|>" } } } } } } };
    j["post_processor"] = { { "type", "Sequence" }, { "processors", json::array({ byteLevel(), tp }) } };
    j["decoder"] = byteLevel();
    j["model"] = syntheticModel(true);
    writeFile(dir / "tokenizer.json", j.dump());
    return dpo::BpeTokenizer::fromTokenizerJson((dir / "tokenizer.json").string());
}

std::unique_ptr<dpo::BpeTokenizer> qwen2Style(const fs::path &dir)
{
    json j = { { "version", "1.0" }, { "truncation", nullptr }, { "padding", nullptr } };
    j["added_tokens"] = json::array(
        { addedToken(300, "<|endoftext|>"), addedToken(301, "<|im_start|>"), addedToken(302, "<|im_end|>") });
    j["normalizer"] = { { "type", "NFC" } };
    j["pre_tokenizer"] = splitThenByteLevel(kQwen2Regex);
    j["post_processor"] = byteLevel();
    j["decoder"] = byteLevel();
    j["model"] = syntheticModel(false);
    const json pairs = j["model"]["merges"];
    j["model"]["merges"] = json::array();
    for (const auto &m : pairs) // the older "a b" form
        j["model"]["merges"].push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
    writeFile(dir / "tokenizer.json", j.dump());
    return dpo::BpeTokenizer::fromTokenizerJson((dir / "tokenizer.json").string());
}

using Ids = std::vector<int64_t>;

} // namespace

TEST(BpeTokenizer, Llama3StyleTokenizerJson)
{
    TempDir dir;
    auto tok = llama3Style(dir.path);
    EXPECT_EQ(tok->encode("12345"), (Ids { 257, 258 })); // \p{N}{1,3}: "123" "45"
    EXPECT_EQ(tok->encode("!hi"), (Ids { 259, 'i' })); // one piece: "!h" merges first (rank 3 < 7)
    EXPECT_EQ(tok->encode("DON'T"), (Ids { 'D', 'O', 'N', 260 })); // (?i:'t) isolates "'T"
    EXPECT_EQ(tok->encode("a.\n\nb"), (Ids { 'a', '.', 261, 'b' })); // ".\n\n" is one piece
    EXPECT_EQ(tok->encode("xyz"), (Ids { 267 })); // ignore_merges: a whole-word token
    EXPECT_EQ(tok->encode("e\xcc\x81"), (Ids { 'e', 0xCC, 0x81 })); // no normalizer
    EXPECT_EQ(tok->encode("<|begin_of_text|>hi<|eot_id|>"), (Ids { 300, 263, 301 }));
    EXPECT_TRUE(tok->addBos());
    EXPECT_EQ(tok->bosId(), 300);
    EXPECT_EQ(tok->encodeWithSpecial("hi"), (Ids { 300, 263 }));
    EXPECT_EQ(tok->decode({ 300, 263, 301 }), "hi");
    EXPECT_EQ(tok->decode({ 300, 263, 301 }, false), "<|begin_of_text|>hi<|eot_id|>");
    std::mt19937 rng(7);
    for (int i = 0; i < 1000; ++i) {
        const std::string text = randomText(rng);
        ASSERT_EQ(tok->decode(tok->encode(text), false), text) << "case " << i;
    }
}

TEST(BpeTokenizer, Qwen2StyleTokenizerJson)
{
    TempDir dir;
    auto tok = qwen2Style(dir.path);
    EXPECT_EQ(tok->encode("12345"), (Ids { '1', '2', '3', '4', '5' })); // \p{N}: one digit per piece
    EXPECT_EQ(tok->encode("!hi"), (Ids { 259, 'i' }));
    EXPECT_EQ(tok->encode("xyz"), (Ids { 'x', 'y', 'z' })); // merges only
    EXPECT_EQ(tok->encode("e\xcc\x81"), (Ids { 264 })); // NFC: e + U+0301 -> U+00E9
    EXPECT_EQ(tok->encode("<|im_start|>user\nhi<|im_end|>"), (Ids { 301, 'u', 's', 'e', 'r', '\n', 263, 302 }));
    EXPECT_FALSE(tok->addBos());
    EXPECT_EQ(tok->encodeWithSpecial("hi"), (Ids { 263 }));
    std::mt19937 rng(11);
    for (int i = 0; i < 1000; ++i) {
        const std::string text = randomText(rng);
        ASSERT_EQ(tok->decode(tok->encode(text), false), dpo::toNfc(text)) << "case " << i;
    }
}

TEST(BpeTokenizer, Gpt2RegexDiffersFromLlama3)
{
    // The same vocabulary behind GPT-2's ByteLevel(use_regex) pre-tokenizer.
    TempDir dir;
    json j = { { "version", "1.0" }, { "added_tokens", json::array() }, { "normalizer", nullptr } };
    j["pre_tokenizer"] = byteLevel();
    j["pre_tokenizer"]["add_prefix_space"] = false;
    j["post_processor"] = byteLevel();
    j["decoder"] = byteLevel();
    j["model"] = syntheticModel(false);
    writeFile(dir.path / "tokenizer.json", j.dump());
    auto tok = dpo::BpeTokenizer::fromTokenizerJson((dir.path / "tokenizer.json").string());
    EXPECT_EQ(tok->encode("!hi"), (Ids { '!', 263 })); // "!" and "hi" are separate words
    EXPECT_EQ(tok->encode("DON'T"), (Ids { 'D', 'O', 'N', '\'', 'T' })); // contractions are case-sensitive
    EXPECT_EQ(tok->encode("a.\n\nb"), (Ids { 'a', '.', '\n', '\n', 'b' })); // \s+(?!\S) leaves one "\n"

    // add_prefix_space: a space is prepended to the text.
    j["pre_tokenizer"]["add_prefix_space"] = true;
    writeFile(dir.path / "tokenizer.json", j.dump());
    auto prefixed = dpo::BpeTokenizer::fromTokenizerJson((dir.path / "tokenizer.json").string());
    EXPECT_EQ(prefixed->encode("hi"), (Ids { ' ', 263 }));
    EXPECT_EQ(prefixed->encode(" hi"), (Ids { ' ', 263 }));
}

TEST(BpeTokenizer, RefusesWhatItCannotRun)
{
    TempDir dir;
    json j = { { "version", "1.0" }, { "added_tokens", json::array() }, { "normalizer", nullptr } };
    j["pre_tokenizer"] = { { "type", "Metaspace" }, { "replacement", "\xe2\x96\x81" } };
    j["decoder"] = { { "type", "Metaspace" } };
    j["model"] = syntheticModel(false);
    writeFile(dir.path / "tokenizer.json", j.dump());
    EXPECT_THROW(dpo::BpeTokenizer::fromTokenizerJson((dir.path / "tokenizer.json").string()), dpo::Error);

    j["pre_tokenizer"] = byteLevel();
    j["decoder"] = byteLevel();
    j["model"]["merges"].push_back(json::array({ "q", "nope" }));
    writeFile(dir.path / "tokenizer.json", j.dump());
    try {
        dpo::BpeTokenizer::fromTokenizerJson((dir.path / "tokenizer.json").string());
        FAIL() << "a merge of unknown tokens was accepted";
    } catch (const dpo::Error &e) {
        EXPECT_NE(std::string(e.what()).find("merges"), std::string::npos) << e.what();
    }
}

TEST(BpeTokenizer, NfcMatchesKnownCompositions)
{
    EXPECT_EQ(dpo::toNfc("e\xcc\x81"), "\xc3\xa9"); // e + acute -> é
    EXPECT_EQ(dpo::toNfc("\xe2\x84\xab"), "\xc3\x85"); // ANGSTROM SIGN -> Å
    EXPECT_EQ(dpo::toNfc("\xe1\x84\x80\xe1\x85\xa1"), "\xea\xb0\x80"); // Hangul L + V -> 가
    EXPECT_EQ(dpo::toNfc("a\xcc\xa3\xcc\x87"), "\xe1\xba\xa1\xcc\x87"); // a + dot below + dot above -> ạ + dot above
    EXPECT_EQ(dpo::toNfc("plain ascii"), "plain ascii");
    EXPECT_TRUE(dpo::isQuickNfc("caf\xc3\xa9 \xe6\x9d\xb1"));
    EXPECT_FALSE(dpo::isQuickNfc("e\xcc\x81"));
}

TEST(BpeTokenizer, DpoCliTokenizeWorksOnGpt2)
{
    const json expected = dpotest::readJson(dpotest::fixture("gpt2/expected.json"));
    const json &c = expected["tokenizer_cases"][0];
    const std::string cmd = dpotest::cliPath() + " tokenize --model '" + dpotest::fixture(kGpt2) + "' --text '"
        + c["text"].get<std::string>() + "' --decode";
    const auto r = dpotest::runCommand(cmd);
    ASSERT_EQ(r.exitCode, 0) << r.err;
    const json out = json::parse(r.out);
    EXPECT_EQ(out["ids"], c["ids"]);
    EXPECT_EQ(out["text"], c["text"]);
}

} // namespace test_bpe_tokenizer
