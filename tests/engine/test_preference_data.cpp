// Preference rows: the three TRL formats, the implicit prompt split, bad rows (file + line in every
// message), TRL 1.x's tokenization rule (fixture ids and a toy tokenizer; conversational rows
// against ids made by jinja2 + an independent Python BPE, tests/data/chat-pairs), truncation in both
// modes, the keep_start drop, and collation into the [2B, T] batch.
#include "test_util.h"

#include "engine/chat/chat_template.h"
#include "engine/error.h"
#include "engine/data/preference_data.h"
#include "engine/io/jsonl_lines.h"
#include "engine/io/jsonl_reader.h"
#include "engine/tokenizers/tokenizer.h"

#include <gtest/gtest.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <unistd.h>

namespace test_preference_data { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

namespace {

namespace fs = std::filesystem;
using Ids = std::vector<int64_t>;

// Writes `content` to a fresh file and removes it at scope exit.
class TempFile {
public:
    explicit TempFile(const std::string &content, const std::string &name = "pairs.jsonl")
    {
        static int counter = 0;
        m_dir = fs::temp_directory_path()
            / ("dpo_pref_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
        fs::create_directories(m_dir);
        m_path = (m_dir / name).string();
        std::ofstream(m_path, std::ios::binary) << content;
    }
    ~TempFile() { fs::remove_all(m_dir); }
    const std::string &path() const { return m_path; }

private:
    fs::path m_dir;
    std::string m_path;
};

// Bytes -> ids (byte + 10), with one merge "ab" -> 300 to exercise token merges across the
// prompt/completion boundary. BOS "<s>" 1, EOS "</s>" 2, matched in the text as HF matches special tokens.
class ToyTokenizer : public dpo::Tokenizer {
public:
    explicit ToyTokenizer(bool addBos = true, bool addEos = false)
    {
        m_bosId = 1;
        m_eosId = 2;
        m_padId = 0;
        m_addBos = addBos;
        m_addEos = addEos;
    }
    std::vector<int64_t> encode(const std::string &text) const override
    {
        Ids ids;
        for (size_t i = 0; i < text.size(); ++i) {
            if (text.compare(i, 4, "</s>") == 0) {
                ids.push_back(2);
                i += 3;
            } else if (text.compare(i, 3, "<s>") == 0) {
                ids.push_back(1);
                i += 2;
            } else if (text.compare(i, 2, "ab") == 0) {
                ids.push_back(300);
                ++i;
            } else {
                ids.push_back(static_cast<unsigned char>(text[i]) + 10);
            }
        }
        return ids;
    }
    std::string decode(const std::vector<int64_t> &, bool) const override { return {}; }
    int64_t vocabSize() const override { return 301; }
    int64_t tokenToId(const std::string &) const override { return -1; }
    std::string idToToken(int64_t id) const override { return id == 1 ? "<s>" : id == 2 ? "</s>" : "?"; }
    std::string kind() const override { return "toy"; }
};

Ids bytes(const std::string &s)
{
    Ids ids;
    for (unsigned char c : s)
        ids.push_back(c + 10);
    return ids;
}

Ids concat(Ids a, const Ids &b)
{
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

std::string expectError(const std::string &content, const std::string &needle)
{
    TempFile f(content);
    try {
        dpo::readPreferenceJsonl(f.path());
        ADD_FAILURE() << "no error for: " << content;
        return {};
    } catch (const dpo::Error &e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find(needle), std::string::npos) << msg;
        EXPECT_NE(msg.find(f.path()), std::string::npos) << "message does not name the file: " << msg;
        return msg;
    }
}

TEST(PreferenceData, ReadsStandardFormatAndSkipsBlankLines)
{
    TempFile f("{\"prompt\": \"Q?\", \"chosen\": \" yes\", \"rejected\": \" no\", \"extra\": 3}\n"
               "\n   \r\n"
               "{\"prompt\": \"\", \"chosen\": \"a\", \"rejected\": \"b\"}\r\n");
    const auto rows = dpo::readPreferenceJsonl(f.path());
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_EQ(rows[0].prompt, "Q?");
    EXPECT_EQ(rows[0].chosen, " yes");
    EXPECT_EQ(rows[0].rejected, " no");
    EXPECT_EQ(rows[0].line, 1);
    EXPECT_EQ(rows[1].prompt, "");
    EXPECT_EQ(rows[1].line, 4);
}

TEST(PreferenceData, FixturePairsRead)
{
    const auto expected = dpotest::readJson(dpotest::fixture("llama-gqa/expected.json"));
    const auto rows = dpo::readPreferenceJsonl(dpotest::fixture("llama-gqa/pairs.jsonl"));
    ASSERT_EQ(rows.size(), expected["examples"].size());
    for (size_t i = 0; i < rows.size(); ++i) {
        EXPECT_EQ(rows[i].prompt, expected["examples"][i]["prompt"].get<std::string>());
        EXPECT_EQ(rows[i].chosen, expected["examples"][i]["chosen"].get<std::string>());
        EXPECT_EQ(rows[i].rejected, expected["examples"][i]["rejected"].get<std::string>());
    }
}

TEST(PreferenceData, ImplicitPromptIsLongestCommonPrefix)
{
    // TRL's extract_prompt: the space before the first difference goes with the completions.
    auto r = dpo::splitImplicitPrompt("What is 3 plus 4? 7", "What is 3 plus 4? 9");
    EXPECT_EQ(r.prompt, "What is 3 plus 4?");
    EXPECT_EQ(r.chosen, " 7");
    EXPECT_EQ(r.rejected, " 9");

    r = dpo::splitImplicitPrompt("Hi there", "Hi you");
    EXPECT_EQ(r.prompt, "Hi");
    EXPECT_EQ(r.chosen, " there");
    EXPECT_EQ(r.rejected, " you");

    // Nothing in common.
    r = dpo::splitImplicitPrompt("abc", "xyz");
    EXPECT_EQ(r.prompt, "");
    EXPECT_EQ(r.chosen, "abc");

    // One is a prefix of the other: the cut falls before the shorter text's last character.
    r = dpo::splitImplicitPrompt("Say hi", "Say hi!");
    EXPECT_EQ(r.prompt, "Say h");
    EXPECT_EQ(r.chosen, "i");
    EXPECT_EQ(r.rejected, "i!");
}

TEST(PreferenceData, ImplicitPromptCutsOnCharacterBoundaries)
{
    // "é" = C3 A9 and "è" = C3 A8 share their first byte: the cut must not split the character.
    auto r = dpo::splitImplicitPrompt("caf\xC3\xA9", "caf\xC3\xA8");
    EXPECT_EQ(r.prompt, "caf");
    EXPECT_EQ(r.chosen, "\xC3\xA9");
    EXPECT_EQ(r.rejected, "\xC3\xA8");

    // 4-byte emoji differing in the last byte, and a prefix case ending in a multibyte character.
    r = dpo::splitImplicitPrompt("x \xF0\x9F\x99\x82", "x \xF0\x9F\x99\x83");
    EXPECT_EQ(r.prompt, "x");
    EXPECT_EQ(r.chosen, " \xF0\x9F\x99\x82");
    r = dpo::splitImplicitPrompt("ab\xE6\x9D\xB1", "ab\xE6\x9D\xB1\xE4\xBA\xAC");
    EXPECT_EQ(r.prompt, "ab");
    EXPECT_EQ(r.chosen, "\xE6\x9D\xB1");
    EXPECT_EQ(r.rejected, "\xE6\x9D\xB1\xE4\xBA\xAC");
}

TEST(PreferenceData, ReadsImplicitPromptRows)
{
    TempFile f("{\"chosen\": \"Q: 2+2? 4\", \"rejected\": \"Q: 2+2? 5\"}\n");
    const auto rows = dpo::readPreferenceJsonl(f.path());
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0].prompt, "Q: 2+2?");
    EXPECT_EQ(rows[0].chosen, " 4");
    EXPECT_EQ(rows[0].rejected, " 5");
}

TEST(PreferenceData, ReadsConversationalRowsKeepingTheirMessages)
{
    TempFile f(
        R"({"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}],)"
        R"( "chosen": [{"role": "assistant", "content": "4"}], "rejected": [{"role": "assistant", "content": "5"}],)"
        R"( "tools": "[{\"type\": \"function\", \"function\": {\"name\": \"add\"}}]",)"
        R"( "chat_template_kwargs": {"enable_thinking": false}})"
        "\n"
        // Implicit prompt: whole messages are compared (key order aside), so the differing "name"
        // of the second message ends the prompt there.
        R"({"chosen": [{"role": "user", "content": "Hi"}, {"content": "Hello!", "role": "assistant", "name": "a"}],)"
        R"( "rejected": [{"content": "Hi", "role": "user"}, {"role": "assistant", "content": "Hello!"}]})"
        "\n"
        // One list a prefix of the other: the cut falls before the shorter one's last message.
        R"({"chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": null, "tool_calls": []}],)"
        R"( "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": null, "tool_calls": []},)"
        R"( {"role": "assistant", "content": "more"}]})"
        "\n");
    const auto rows = dpo::readPreferenceJsonl(f.path());
    ASSERT_EQ(rows.size(), 3u);
    ASSERT_TRUE(rows[0].isConversational());
    EXPECT_EQ(rows[0].prompt, "Be brief.\n2+2?"); // the plain-text view
    EXPECT_EQ(rows[0].chosen, "\n4");
    const auto &c0 = *rows[0].conversation;
    EXPECT_EQ(c0.prompt.size(), 2u);
    EXPECT_EQ(c0.chosen.dump(), R"([{"role":"assistant","content":"4"}])");
    EXPECT_EQ(c0.tools.dump(), R"([{"type":"function","function":{"name":"add"}}])"); // the string decoded, order kept
    EXPECT_EQ(c0.templateKwargs.dump(), R"({"enable_thinking":false})");

    const auto &c1 = *rows[1].conversation;
    EXPECT_EQ(c1.prompt.dump(), R"([{"role":"user","content":"Hi"}])");
    EXPECT_EQ(c1.chosen.dump(), R"([{"content":"Hello!","role":"assistant","name":"a"}])"); // kept as given
    EXPECT_EQ(c1.rejected.dump(), R"([{"role":"assistant","content":"Hello!"}])");
    EXPECT_TRUE(c1.tools.is_null());

    const auto &c2 = *rows[2].conversation;
    EXPECT_EQ(c2.prompt.size(), 1u);
    EXPECT_EQ(c2.chosen.size(), 1u);
    EXPECT_EQ(c2.rejected.size(), 2u);
    EXPECT_EQ(rows[2].chosen, "\n"); // null content shows as nothing
}

TEST(PreferenceData, BadRowsNameFileAndLine)
{
    const std::string good = "{\"prompt\": \"p\", \"chosen\": \"a\", \"rejected\": \"b\"}\n";
    expectError(good + "{\"prompt\": \"p\", \"chosen\": \"a\"\n", ":2: invalid JSON");
    expectError(good + "\n" + "[1, 2]\n", ":3: a preference row must be a JSON object");
    expectError(good + "{\"prompt\": \"p\", \"chosen\": \"a\"}\n", ":2: missing field 'rejected'");
    expectError("{\"prompt\": \"p\", \"rejected\": \"a\"}\n", ":1: missing field 'chosen'");
    expectError("{\"prompt\": 3, \"chosen\": \"a\", \"rejected\": \"b\"}\n", ":1: field 'prompt' must be a string");
    expectError("{\"prompt\": \"p\", \"chosen\": null, \"rejected\": \"b\"}\n", ":1: field 'chosen' must be a string");
    expectError(
        good + good + "{\"prompt\": \"p\", \"chosen\": \"\", \"rejected\": \"b\"}\n", ":3: field 'chosen' is empty");
    expectError("{\"prompt\": \"p\", \"chosen\": \"a\", \"rejected\": \"\"}\n", ":1: field 'rejected' is empty");
    expectError(good + "{\"prompt\": \"p\xC3\", \"chosen\": \"a\", \"rejected\": \"b\"}\n", ":2: invalid UTF-8");
    expectError(good + "{\"prompt\": \"\\ud800\", \"chosen\": \"a\", \"rejected\": \"b\"}\n", ":2: invalid JSON");
    expectError(R"({"chosen": [{"content": "x"}], "rejected": [{"role": "assistant", "content": "x"}]})"
                "\n",
        ":1: 'chosen[0]' needs a string \"role\"");
    expectError(R"({"chosen": [{"role": "assistant", "content": "x"}], "rejected": [3]})"
                "\n",
        ":1: 'rejected[0]' must be an object");
    const std::string conv = R"({"chosen": [{"role": "assistant", "content": "x"}], )"
                             R"("rejected": [{"role": "assistant", "content": "y"}])";
    expectError(conv + R"(, "tools": "[{\"type\": "})" + "\n", ":1: field 'tools': invalid JSON");
    expectError(conv + R"(, "tools": {"type": "function"}})" + "\n", ":1: field 'tools' must be a list");
    expectError(conv + R"(, "chat_template_kwargs": [1]})" + "\n", ":1: field 'chat_template_kwargs' must be an object");
    expectError(good + conv + "}\n", ":2: a conversational row after standard rows (line 1)");
    expectError(conv + "}\n" + good, ":2: a standard row after conversational rows (line 1)");
    expectError(R"({"chosen": [], "rejected": [{"role": "assistant", "content": "x"}]})"
                "\n",
        ":1: field 'chosen' is empty");
    expectError(R"({"chosen": [{"role": "assistant", "content": "x"}], "rejected": "y"})"
                "\n",
        ":1: field 'rejected' must be a list of messages");
    expectError("", "no preference rows");
    expectError("\n  \n", "no preference rows");
}

// One set of JSONL line rules (engine/io/jsonl_lines.h) for the file reader and the in-memory splitter the
// project import uses: BOM, CRLF, blank lines counted but skipped, a last line without '\n'.
TEST(JsonlReader, LineRulesAgreeForFileAndMemory)
{
    const std::string text = "\xEF\xBB\xBF{\"a\": 1}\r\n"
                             "\r\n"
                             "  \t\n"
                             "{\"a\": 2}\n"
                             "\n"
                             "{\"a\": 3}"; // no final newline
    const std::vector<std::pair<int64_t, int>> expected { { 1, 1 }, { 4, 2 }, { 6, 3 } };

    TempFile f(text);
    dpo::JsonlReader reader(f.path(), 100);
    std::vector<std::pair<int64_t, int>> fromFile;
    while (reader.next())
        fromFile.emplace_back(reader.line(), reader.object().at("a").get<int>());
    EXPECT_EQ(fromFile, expected);

    dpo::jsonl::LineSplitter lines(text);
    std::vector<std::pair<int64_t, std::string>> fromMemory;
    while (lines.next())
        fromMemory.emplace_back(lines.number(), std::string(lines.text()));
    ASSERT_EQ(fromMemory.size(), 3u);
    EXPECT_EQ(fromMemory[0], std::make_pair(int64_t(1), std::string("{\"a\": 1}")));
    EXPECT_EQ(fromMemory[1], std::make_pair(int64_t(4), std::string("{\"a\": 2}")));
    EXPECT_EQ(fromMemory[2], std::make_pair(int64_t(6), std::string("{\"a\": 3}")));
    EXPECT_EQ(lines.offset(), text.size());

    // A BOM is stripped on line 1 only: elsewhere it is the row's text (and then not valid JSON).
    dpo::jsonl::LineSplitter late("{}\n\xEF\xBB\xBF{}\n");
    ASSERT_TRUE(late.next());
    ASSERT_TRUE(late.next());
    EXPECT_EQ(late.text(), "\xEF\xBB\xBF{}");
}

TEST(JsonlReader, BadRowsNameFileAndLine)
{
    struct Case {
        std::string text;
        int64_t limit;
        std::string error;
    };
    const std::vector<Case> cases {
        { "{}\n" + std::string(200, ' ') + "{}\n", 100, ":2: row is longer than the limit of 100 bytes" },
        { "{}\n{\"a\": \"" + std::string(5000, 'x') + "\"}\n", 100, ":2: row is longer than the limit of 100 bytes" },
        { "{}\n\n{\"a\": \"\xC3\"}\n", 100, ":3: invalid UTF-8" },
        { "{}\n[1]\n", 100, ":2: a row must be a JSON object" },
        { "{}\n{\"a\": \n", 100, ":2: invalid JSON" },
        { "{}\n" + std::string(100, '[') + std::string(100, ']') + "\n", 1000, ":2: JSON nested deeper than" },
    };
    for (const Case &c : cases) {
        TempFile f(c.text);
        try {
            dpo::JsonlReader reader(f.path(), c.limit);
            while (reader.next())
                reader.object();
            ADD_FAILURE() << "no error for: " << c.error;
        } catch (const dpo::Error &e) {
            const std::string msg = e.what();
            EXPECT_NE(msg.find(f.path() + c.error), std::string::npos) << msg;
        }
    }
    // Exactly at the limit (the '\r' of CRLF and a BOM do not count): accepted.
    const std::string row = "{\"a\": \"" + std::string(90, 'x') + "\"}";
    TempFile atLimit("\xEF\xBB\xBF" + row + "\r\n" + row + "\r\n");
    dpo::JsonlReader reader(atLimit.path(), int64_t(row.size()));
    int n = 0;
    while (reader.next()) {
        EXPECT_EQ(reader.text(), row);
        ++n;
    }
    EXPECT_EQ(n, 2);
    try {
        dpo::JsonlReader missing("/nonexistent/x.jsonl", 100, "prompts file");
        ADD_FAILURE() << "no error";
    } catch (const dpo::Error &e) {
        EXPECT_NE(std::string(e.what()).find("/nonexistent/x.jsonl: cannot open the prompts file"), std::string::npos)
            << e.what();
    }
}

TEST(PreferenceData, MissingFileIsAnError)
{
    try {
        dpo::readPreferenceJsonl("/nonexistent/pairs.jsonl");
        FAIL() << "no error";
    } catch (const dpo::Error &e) {
        EXPECT_NE(std::string(e.what()).find("/nonexistent/pairs.jsonl"), std::string::npos);
    }
}

TEST(PreferenceData, TrlTokenizationRuleOnToyTokenizer)
{
    ToyTokenizer tok;
    dpo::PreferenceRow row { "Q", " yes", " no", 1 };
    const auto pair = dpo::tokenizePair(tok, row);
    EXPECT_EQ(pair.promptIds, concat({ 1 }, bytes("Q")));
    EXPECT_EQ(pair.chosenIds, concat(bytes(" yes"), { 2 }));
    EXPECT_EQ(pair.rejectedIds, concat(bytes(" no"), { 2 }));
    EXPECT_EQ(pair.chosen.ids, concat(pair.promptIds, pair.chosenIds));
    EXPECT_EQ(pair.chosen.promptLength, 2);
    EXPECT_FALSE(pair.promptMismatch);

    // EOS is appended as text, so a completion that already ends with "</s>" does not get a second one.
    const auto ended = dpo::tokenizePair(tok, { "Q", " yes</s>", " no", 1 });
    EXPECT_EQ(ended.chosenIds, concat(bytes(" yes"), { 2 }));

    // "xa" + "b" merges into "ab" across the boundary: the prompt is no prefix of the full encoding.
    // TRL 1.x warns and slices anyway: the completion keeps what follows len(prompt_ids) tokens.
    const auto merged = dpo::tokenizePair(tok, { "xa", "b", "c", 1 });
    EXPECT_EQ(merged.promptIds, (Ids { 1, 'x' + 10, 'a' + 10 }));
    EXPECT_EQ(merged.chosenIds, (Ids { 2 })); // full: BOS x "ab" EOS
    EXPECT_EQ(merged.rejectedIds, (Ids { 'c' + 10, 2 }));
    EXPECT_TRUE(merged.promptMismatch);

    // add_eos_token: the tokenizer's EOS goes after the prompt too, so the prompt is no prefix of
    // prompt+completion; TRL 1.x slices literally (its tokenizer call adds EOS to both).
    ToyTokenizer eosTok(true, true);
    const auto withEos = dpo::tokenizePair(eosTok, row);
    EXPECT_EQ(withEos.promptIds, (Ids { 1, 'Q' + 10, 2 }));
    EXPECT_EQ(withEos.chosenIds, concat(bytes("yes"), { 2, 2 }));
    EXPECT_TRUE(withEos.promptMismatch);

    // No BOS (GPT-2 style).
    ToyTokenizer noBos(false, false);
    EXPECT_EQ(dpo::tokenizePair(noBos, row).promptIds, bytes("Q"));
}

TEST(PreferenceData, KeepStartDropsRowsWhosePromptFillsMaxLength)
{
    ToyTokenizer tok;
    dpo::TruncationOptions t;
    t.maxLength = 4;
    // BOS + "abc" -> [1, 300, c]: 3 tokens < 4, kept; BOS + "four" = 5 tokens >= 4, dropped.
    EXPECT_FALSE(dpo::dropsFullyTruncated(dpo::tokenizePair(tok, { "abc", "x", "y", 1 }, t), t));
    EXPECT_TRUE(dpo::dropsFullyTruncated(dpo::tokenizePair(tok, { "four", "x", "y", 2 }, t), t));
    EXPECT_TRUE(dpo::dropsFullyTruncated(dpo::tokenizePair(tok, { "xyz", "x", "y", 3 }, t), t)); // exactly 4
    t.mode = "keep_end"; // keeps the completion's end: nothing dropped
    EXPECT_FALSE(dpo::dropsFullyTruncated(dpo::tokenizePair(tok, { "four", "x", "y", 2 }, t), t));
    t.mode = "keep_start";
    t.maxLength = 0;
    EXPECT_FALSE(dpo::dropsFullyTruncated(dpo::tokenizePair(tok, { "four", "x", "y", 2 }, t), t));

    dpo::TokenizationReport report;
    report.mismatchLines = { 4, 9 };
    report.droppedLines = { 2 };
    const std::string s = report.summary();
    EXPECT_NE(s.find("2 row(s) whose prompt tokens are not a prefix"), std::string::npos) << s;
    EXPECT_NE(s.find("lines 4, 9"), std::string::npos) << s;
    EXPECT_NE(s.find("1 row(s) dropped"), std::string::npos) << s;
    EXPECT_TRUE(dpo::TokenizationReport().summary().empty());
}

TEST(PreferenceData, TrlTokenizationMatchesFixtureIds)
{
    std::unique_ptr<dpo::Tokenizer> tok;
    try {
        tok = dpo::loadTokenizer(dpotest::fixture("llama-gqa/ref"));
    } catch (const dpo::Error &e) {
        GTEST_SKIP() << "tokenizer not available: " << e.what();
    }
    const auto expected = dpotest::readJson(dpotest::fixture("llama-gqa/expected.json"));
    const auto rows = dpo::readPreferenceJsonl(dpotest::fixture("llama-gqa/pairs.jsonl"));
    for (size_t i = 0; i < rows.size(); ++i) {
        const auto &ex = expected["examples"][i];
        const auto pair = dpo::tokenizePair(*tok, rows[i]);
        EXPECT_EQ(pair.promptIds, ex["prompt_ids"].get<Ids>()) << "row " << i;
        EXPECT_EQ(pair.chosenIds, ex["chosen_ids"].get<Ids>()) << "row " << i;
        EXPECT_EQ(pair.rejectedIds, ex["rejected_ids"].get<Ids>()) << "row " << i;
    }
}

TEST(PreferenceData, TruncationKeepStart)
{
    const Ids prompt { 1, 2, 3, 4 };
    const Ids completion { 5, 6, 7 };
    dpo::TruncationOptions t;
    t.maxLength = 5;
    auto s = dpo::truncateSequence(prompt, completion, t);
    EXPECT_EQ(s.ids, (Ids { 1, 2, 3, 4, 5 }));
    EXPECT_EQ(s.promptLength, 4);
    // A prompt at least max_length long leaves an empty completion (the row is kept, as in TRL).
    t.maxLength = 3;
    s = dpo::truncateSequence(prompt, completion, t);
    EXPECT_EQ(s.ids, (Ids { 1, 2, 3 }));
    EXPECT_EQ(s.promptLength, 3);
    EXPECT_EQ(s.completionLength(), 0);
    // Short enough: untouched.
    t.maxLength = 7;
    s = dpo::truncateSequence(prompt, completion, t);
    EXPECT_EQ(s.ids, (Ids { 1, 2, 3, 4, 5, 6, 7 }));
    t.maxLength = 0;
    EXPECT_EQ(dpo::truncateSequence(prompt, completion, t).ids.size(), 7u);
}

TEST(PreferenceData, TruncationKeepEnd)
{
    const Ids prompt { 1, 2, 3, 4 };
    const Ids completion { 5, 6, 7 };
    dpo::TruncationOptions t;
    t.mode = "keep_end";
    t.maxLength = 5;
    auto s = dpo::truncateSequence(prompt, completion, t);
    EXPECT_EQ(s.ids, (Ids { 3, 4, 5, 6, 7 }));
    EXPECT_EQ(s.promptLength, 2);
    t.maxLength = 2;
    s = dpo::truncateSequence(prompt, completion, t);
    EXPECT_EQ(s.ids, (Ids { 6, 7 }));
    EXPECT_EQ(s.promptLength, 0);

    // Each side is cut on its own: different completion lengths keep different prompt suffixes.
    ToyTokenizer tok;
    t.maxLength = 6;
    const auto pair = dpo::tokenizePair(tok, { "PROMPT", "ab", "xyz", 1 }, t);
    EXPECT_EQ(pair.chosen.ids.size(), 6u);
    EXPECT_EQ(pair.rejected.ids.size(), 6u);
    EXPECT_EQ(pair.chosen.completionLength(), 2); // "ab" merged + EOS
    EXPECT_EQ(pair.rejected.completionLength(), 4); // x y z EOS
    // [BOS P R O M P T] + [ab EOS]: 3 tokens dropped; + [x y z EOS]: 5 dropped.
    EXPECT_EQ(pair.chosen.ids, (Ids { 'O' + 10, 'M' + 10, 'P' + 10, 'T' + 10, 300, 2 }));
    EXPECT_EQ(pair.chosen.promptLength, 4);
    EXPECT_EQ(pair.rejected.ids, (Ids { 'P' + 10, 'T' + 10, 'x' + 10, 'y' + 10, 'z' + 10, 2 }));
    EXPECT_EQ(pair.rejected.promptLength, 2);
    // The untruncated tokenization is kept for reporting.
    EXPECT_EQ(pair.promptIds.size(), 7u);
}

TEST(PreferenceData, TruncationModeValidated)
{
    dpo::TruncationOptions t;
    t.mode = "keep_middle";
    EXPECT_THROW(t.validate(), dpo::Error);
    t.mode = "keep_end";
    t.maxLength = -1;
    EXPECT_THROW(t.validate(), dpo::Error);
}

TEST(PreferenceData, CollateShapesAndMasks)
{
    ToyTokenizer tok;
    std::vector<dpo::TokenizedPair> pairs { dpo::tokenizePair(tok, { "Q", " yes", " no", 1 }),
        dpo::tokenizePair(tok, { "Long prompt", " ok", " fine!", 2 }) };
    const auto batch = dpo::collatePairs(pairs, /*padId=*/0);
    const int64_t t = 1 + 11 + 6 + 1; // BOS + "Long prompt" + " fine!" + EOS
    ASSERT_EQ(batch.inputIds.sizes(), (std::vector<int64_t> { 4, t }));
    EXPECT_EQ(batch.attentionMask.sizes(), batch.inputIds.sizes());
    EXPECT_EQ(batch.completionMask.sizes(), batch.inputIds.sizes());
    EXPECT_EQ(batch.inputIds.scalar_type(), torch::kLong);
    EXPECT_EQ(batch.numPairs, 2);

    // Rows: chosen 0, chosen 1, rejected 0, rejected 1.
    const std::vector<const dpo::ModelSequence *> order { &pairs[0].chosen, &pairs[1].chosen, &pairs[0].rejected,
        &pairs[1].rejected };
    int64_t tokens = 0;
    for (int64_t r = 0; r < 4; ++r) {
        const auto &s = *order[size_t(r)];
        const int64_t len = int64_t(s.ids.size());
        tokens += len;
        for (int64_t k = 0; k < t; ++k) {
            const bool real = k < len;
            EXPECT_EQ(batch.attentionMask[r][k].item<int64_t>(), real ? 1 : 0) << r << "," << k;
            EXPECT_EQ(batch.inputIds[r][k].item<int64_t>(), real ? s.ids[size_t(k)] : 0) << r << "," << k;
            EXPECT_EQ(batch.completionMask[r][k].item<int64_t>(), (real && k >= s.promptLength) ? 1 : 0)
                << r << "," << k;
        }
    }
    EXPECT_EQ(batch.numTokens, tokens);
    EXPECT_EQ(batch.completionMask.sum().item<int64_t>(),
        int64_t(pairs[0].chosenIds.size() + pairs[1].chosenIds.size() + pairs[0].rejectedIds.size()
            + pairs[1].rejectedIds.size()));

    // Without a prompt token the first completion token cannot be scored; padding id < 0 pads with 0.
    ToyTokenizer noBos(false, false);
    const auto b2 = dpo::collatePairs({ dpo::tokenizePair(noBos, { "", "xy", "z", 1 }) }, -1);
    EXPECT_EQ(b2.completionMask[0][0].item<int64_t>(), 0);
    EXPECT_EQ(b2.completionMask[0][1].item<int64_t>(), 1);
    EXPECT_EQ(b2.inputIds[1][2].item<int64_t>(), 0);

    EXPECT_THROW(dpo::collatePairs({}, 0), dpo::Error);
}

// Conversational rows rendered with real chat templates and tokenized by TRL 1.x's rule, against
// tools/fixtures/make_chat_pairs_fixture.py (jinja2 in transformers' environment + a Python byte-level
// BPE checked against the tokenizers library's ids). "assistant-space" is a template whose generation
// prompt ends with a space that BPE merges into the answer's first token: TRL slices anyway.
class ConversationalRows : public ::testing::TestWithParam<std::string> { };

TEST_P(ConversationalRows, MatchTrlTokenIds)
{
    const auto expected = dpotest::readJson(dpotest::fixture("chat-pairs/" + GetParam() + "/expected.json"));
    const auto tok = dpo::loadTokenizer(dpotest::fixture(expected["tokenizer"].get<std::string>()));
    dpo::ModelChatTemplate chat;
    chat.chatTemplate = dpo::ChatTemplate::fromFile(dpotest::fixture(expected["template"].get<std::string>()));
    chat.specialTokens = nlohmann::ordered_json(expected["special_tokens"]);
    chat.origin = GetParam();
    const auto rows = dpo::readPreferenceJsonl(dpotest::fixture("chat-pairs/pairs.jsonl"));
    ASSERT_EQ(rows.size(), expected["rows"].size());
    int mismatches = 0;
    for (size_t i = 0; i < rows.size(); ++i) {
        const auto &ex = expected["rows"][i];
        ASSERT_TRUE(rows[i].isConversational());
        EXPECT_EQ(rows[i].line, ex["line"].get<int64_t>());
        const auto pair = dpo::tokenizePair(*tok, rows[i], {}, &chat);
        EXPECT_EQ(pair.promptIds, ex["prompt_ids"].get<Ids>()) << GetParam() << " line " << rows[i].line;
        EXPECT_EQ(pair.chosenIds, ex["chosen_ids"].get<Ids>()) << GetParam() << " line " << rows[i].line;
        EXPECT_EQ(pair.rejectedIds, ex["rejected_ids"].get<Ids>()) << GetParam() << " line " << rows[i].line;
        EXPECT_EQ(pair.promptMismatch, ex["prompt_mismatch"].get<bool>()) << GetParam() << " line " << rows[i].line;
        mismatches += pair.promptMismatch ? 1 : 0;
        // The rendered prompt is what the tokens say (the template closes turns itself: no EOS added).
        EXPECT_EQ(tok->decode(pair.promptIds, false), ex["prompt_text"].get<std::string>());
    }
    if (GetParam() == "assistant-space")
        EXPECT_GT(mismatches, 0);
}

INSTANTIATE_TEST_SUITE_P(Templates, ConversationalRows,
    ::testing::Values("zephyr-7b-beta", "hermes-3-llama-3.1", "qwen3.5-4b", "assistant-space"),
    [](const ::testing::TestParamInfo<std::string> &info) {
        std::string name;
        for (char c : info.param)
            name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
        return name;
    });

TEST(ConversationalRowsErrors, NeedAChatTemplate)
{
    const auto rows = dpo::readPreferenceJsonl(dpotest::fixture("chat-pairs/pairs.jsonl"));
    try {
        dpo::requireChatTemplate(rows, nullptr, "/models/base-7b");
        FAIL() << "no error";
    } catch (const dpo::Error &e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("/models/base-7b"), std::string::npos) << msg;
        EXPECT_NE(msg.find("--chat-template"), std::string::npos) << msg;
        EXPECT_NE(msg.find("line 1"), std::string::npos) << msg;
    }
    ToyTokenizer tok;
    EXPECT_THROW(dpo::tokenizePair(tok, rows[0]), dpo::Error);
    // A template error names the template (callers add the file and line).
    dpo::ModelChatTemplate chat;
    chat.chatTemplate = dpo::ChatTemplate::fromString("{{ raise_exception('no system role here') }}");
    chat.origin = "strict.jinja";
    try {
        dpo::tokenizePair(tok, rows[1], {}, &chat);
        FAIL() << "no error";
    } catch (const dpo::Error &e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("strict.jinja"), std::string::npos) << msg;
        EXPECT_NE(msg.find("no system role here"), std::string::npos) << msg;
    }
    // Standard rows ignore a template.
    EXPECT_NO_THROW(dpo::requireChatTemplate({ { "p", "a", "b", 1 } }, nullptr, "m"));
}

} // namespace

} // namespace test_preference_data
