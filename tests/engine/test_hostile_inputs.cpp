// Hostile inputs from the outside test campaign (issue 17), each generated here, small and fast:
// deep JSON nesting (safetensors header, config.json, train --config, tokenizer.json, preference rows),
// tokenizer.json Sequence recursion, unbounded allocations (vocab id 1e8, num_hidden_layers 1e6,
// a 16 MB row), token ids truncated to 32 bits, raw library messages, and the temporary folders a
// kill during checkpointing leaves. Every one must be a dpo::Error naming the file (and field), in
// well under a second, never a crash, a hang or gigabytes of memory.
#include "engine/data/preference_data.h"
#include "engine/error.h"
#include "engine/io/json_limits.h"
#include "engine/io/safetensors.h"
#include "engine/models/causal_lm.h"
#include "engine/models/config_limits.h"
#include "engine/models/model_config.h"
#include "engine/tokenizers/bpe_tokenizer.h"
#include "engine/training/dpo_trainer.h"
#include "engine/training/train_config.h"

#include "test_util.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

namespace test_hostile_inputs { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct TempDir {
    fs::path path;
    TempDir()
    {
        char tmpl[] = "/tmp/dpo_hostile_XXXXXX";
        path = mkdtemp(tmpl);
    }
    ~TempDir() { fs::remove_all(path); }
    std::string file(const std::string &name) const { return (path / name).string(); }
};

void writeText(const std::string &path, const std::string &text)
{
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
}

std::string readText(const std::string &path)
{
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string nestedArrays(size_t depth, const std::string &inner = "")
{
    return std::string(depth, '[') + inner + std::string(depth, ']');
}

// Runs f, expects a dpo::Error whose message contains every word, is short (no dumped value), has no
// raw nlohmann prefix, and came within `seconds`.
void expectError(const std::function<void()> &f, const std::vector<std::string> &words, double seconds = 1.0)
{
    const auto t0 = std::chrono::steady_clock::now();
    try {
        f();
        ADD_FAILURE() << "no error; expected one containing '" << words.front() << "'";
    } catch (const dpo::Error &e) {
        const std::string msg = e.what();
        for (const auto &w : words)
            EXPECT_NE(msg.find(w), std::string::npos) << "'" << w << "' not in: " << msg.substr(0, 400);
        EXPECT_EQ(msg.find("[json.exception"), std::string::npos) << msg.substr(0, 400);
        EXPECT_LT(msg.size(), 600u) << msg.substr(0, 400);
    }
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_LT(took, seconds) << "took " << took << " s for '" << words.front() << "'";
}

// ---- the shared helper ----------------------------------------------------------------------------

TEST(JsonLimits, NestingIsRefusedBeforeParsing)
{
    EXPECT_NO_THROW(dpo::parseJsonLimited(nestedArrays(64), "x.json"));
    expectError([] { dpo::parseJsonLimited(nestedArrays(65), "x.json"); }, { "x.json", "nested deeper than 64" });
    expectError([] { dpo::parseJsonLimited(nestedArrays(1000000), "x.json"); }, { "x.json", "nested deeper" });
    // Brackets inside strings (also after escaped quotes) are text, not nesting.
    const std::string inString = "{\"a\": \"\\\"" + std::string(5000, '[') + "\"}";
    EXPECT_NO_THROW(dpo::parseJsonLimited(inString, "x.json"));
    expectError([] { dpo::parseJsonLimited("{\"a\": 1", "x.json"); }, { "x.json: invalid JSON" });
}

TEST(JsonLimits, SnippetIsShortAndIterative)
{
    // A value nested as deep as the limit allows, and a huge flat one: both cut to ~80 characters.
    const json deep = dpo::parseJsonLimited(nestedArrays(64, "1"), "x");
    EXPECT_LE(dpo::jsonSnippet(deep).size(), 84u);
    json big = json::array();
    for (int i = 0; i < 100000; ++i)
        big.push_back(i);
    const std::string s = dpo::jsonSnippet(big);
    EXPECT_LE(s.size(), 84u);
    EXPECT_EQ(s.rfind("[0,1,2", 0), 0u);
    EXPECT_EQ(dpo::jsonSnippet(json { { "a", 1 } }), "{\"a\":1}");
    EXPECT_LE(dpo::jsonSnippet(json(std::string(1 << 20, 'x'))).size(), 90u);
    EXPECT_EQ(dpo::jsonSnippet(json(std::string("\xff"))).find("[json"), std::string::npos); // invalid UTF-8
}

TEST(JsonLimits, LineReaderHoldsAtMostTheLimit)
{
    std::istringstream in("short\n" + std::string(100000, 'x') + "\nlast");
    std::string line;
    bool tooLong = false;
    ASSERT_TRUE(dpo::readLineLimited(in, line, 1000, &tooLong));
    EXPECT_EQ(line, "short");
    EXPECT_FALSE(tooLong);
    ASSERT_TRUE(dpo::readLineLimited(in, line, 1000, &tooLong));
    EXPECT_TRUE(tooLong);
    EXPECT_EQ(line.size(), 1000u);

    std::istringstream in2("a\n\n" + std::string(70000, 'y') + "\nb");
    std::vector<std::string> lines;
    while (dpo::readLineLimited(in2, line, 1 << 20, &tooLong))
        lines.push_back(line);
    ASSERT_EQ(lines.size(), 4u);
    EXPECT_EQ(lines[1], "");
    EXPECT_EQ(lines[2].size(), 70000u);
    EXPECT_EQ(lines[3], "b");
}

// ---- safetensors --------------------------------------------------------------------------------------

void writeSafetensors(const std::string &path, const std::string &header)
{
    std::string bytes(8, '\0');
    for (int i = 0; i < 8; ++i)
        bytes[size_t(i)] = char((uint64_t(header.size()) >> (8 * i)) & 0xff);
    writeText(path, bytes + header);
}

TEST(HostileSafetensors, DeeplyNestedShapeIsRefused)
{
    // The campaign's 130 KB model.safetensors with "shape" nested ~66k levels (SIGSEGV before).
    TempDir dir;
    const std::string path = dir.file("model.safetensors");
    const std::string header
        = "{\"w\":{\"dtype\":\"F32\",\"shape\":" + nestedArrays(66000) + ",\"data_offsets\":[0,0]}}";
    ASSERT_GT(header.size(), 130000u);
    writeSafetensors(path, header);
    expectError([&] { dpo::SafetensorsFile::open(path); }, { path, "nested deeper" });
    expectError([&] { dpo::loadSafetensorsWeights(dir.path.string()); }, { path, "nested deeper" });
}

TEST(HostileSafetensors, ShapeErrorsQuoteAShortSnippet)
{
    TempDir dir;
    const std::string path = dir.file("model.safetensors");
    std::string shape = "[";
    for (int i = 0; i < 20000; ++i)
        shape += (i ? ",-1" : "-1");
    shape += "]";
    writeSafetensors(path, "{\"w\":{\"dtype\":\"F32\",\"shape\":" + shape + ",\"data_offsets\":[0,0]}}");
    expectError([&] { dpo::SafetensorsFile::open(path); }, { path, "tensor 'w'", "shape [-1,-1" });
    // Nested within the limit but not integers: the message quotes ~80 characters.
    writeSafetensors(path, "{\"w\":{\"dtype\":\"F32\",\"shape\":" + nestedArrays(60) + ",\"data_offsets\":[0,0]}}");
    expectError([&] { dpo::SafetensorsFile::open(path); }, { path, "not a list of non-negative integers" });
}

// ---- config.json ---------------------------------------------------------------------------------

std::string copyModel(const TempDir &dir, const std::string &fixture = "llama-gqa/ref")
{
    const fs::path dst = dir.path / "model";
    fs::create_directories(dst);
    for (const auto &e : fs::directory_iterator(dpotest::fixture(fixture)))
        fs::copy_file(e.path(), dst / e.path().filename());
    return dst.string();
}

void editConfig(const std::string &modelDir, const std::function<void(json &)> &edit,
    const std::string &file = "config.json")
{
    const std::string path = modelDir + "/" + file;
    json j = json::parse(readText(path));
    edit(j);
    writeText(path, j.dump(2));
}

TEST(HostileConfig, DeeplyNestedConfigJsonIsRefused)
{
    TempDir dir;
    const std::string model = copyModel(dir);
    const std::string path = model + "/config.json";
    writeText(path, "{\"model_type\": " + nestedArrays(100000) + "}");
    expectError([&] { dpo::ModelConfig::fromDirectory(model); }, { path, "nested deeper" });
    // generation_config.json too.
    fs::copy_file(dpotest::fixture("llama-gqa/ref/config.json"), path, fs::copy_options::overwrite_existing);
    const std::string gen = model + "/generation_config.json";
    writeText(gen, "{\"eos_token_id\": " + nestedArrays(100000) + "}");
    expectError([&] { dpo::ModelConfig::fromDirectory(model); }, { gen, "nested deeper" });
}

TEST(HostileConfig, WrongTypesQuoteShortValues)
{
    json j = json::parse(readText(dpotest::fixture("llama-gqa/ref/config.json")));
    j["model_type"] = dpo::parseJsonLimited(nestedArrays(60), "x");
    expectError([&] { dpo::ModelConfig::fromJson(j, "cfg.json"); }, { "cfg.json", "model_type", "must be a string" });
    j = json::parse(readText(dpotest::fixture("llama-gqa/ref/config.json")));
    j["hidden_size"] = std::string(1 << 20, 'x');
    expectError([&] { dpo::ModelConfig::fromJson(j, "cfg.json"); }, { "cfg.json", "hidden_size", "must be an integer" });
}

TEST(HostileConfig, ImplausibleSizesAreRefusedBeforeAllocating)
{
    const json base = json::parse(readText(dpotest::fixture("llama-gqa/ref/config.json")));
    const auto withField = [&](const char *key, const json &v) {
        json j = base;
        j[key] = v;
        return j;
    };
    const std::vector<std::pair<const char *, json>> cases = {
        { "num_hidden_layers", 1000000 },
        { "hidden_size", int64_t(1) << 40 },
        { "vocab_size", int64_t(1) << 40 },
        { "intermediate_size", int64_t(1) << 40 },
        { "num_attention_heads", int64_t(1) << 32 },
        { "head_dim", int64_t(1) << 62 }, // once c10's "IntArrayRef ... SymInt"
        { "max_position_embeddings", int64_t(1000000000000) },
        { "eos_token_id", int64_t(1000000000000) },
        { "bos_token_id", -7 },
        { "pad_token_id", 1000 }, // == vocab_size
        { "eos_token_id", json::array({ 2, 5000 }) },
        { "eos_token_id", uint64_t(18446744073709551615ull) }, // would wrap to -1 ("none")
    };
    for (const auto &[key, value] : cases) {
        SCOPED_TRACE(std::string(key) + " = " + value.dump());
        expectError([&, key = key, value = value] { dpo::ModelConfig::fromJson(withField(key, value), "cfg.json"); },
            { "cfg.json", key });
    }
    // -1 and null keep meaning "none".
    EXPECT_EQ(dpo::ModelConfig::fromJson(withField("pad_token_id", -1), "cfg.json").padTokenId, -1);
    EXPECT_EQ(dpo::ModelConfig::fromJson(withField("bos_token_id", nullptr), "cfg.json").bosTokenId, -1);
}

TEST(HostileConfig, GenerationConfigIdsAreChecked)
{
    TempDir dir;
    const std::string model = copyModel(dir);
    writeText(model + "/generation_config.json", "{\"eos_token_id\": 1000000000000}");
    expectError([&] { dpo::ModelConfig::fromDirectory(model); }, { model + "/generation_config.json", "eos_token_id" });
}

TEST(HostileConfig, LayersBeyondTheWeightsFailBeforeAllocation)
{
    TempDir dir;
    const std::string model = copyModel(dir);
    editConfig(model, [](json &j) { j["num_hidden_layers"] = 1000; }); // within the limit, not in the weights
    expectError([&] { dpo::loadCausalLM(model); }, { model + "/config.json", "does not match the weights" });
    editConfig(model, [](json &j) { j["num_hidden_layers"] = 1000000; });
    expectError([&] { dpo::loadCausalLM(model); }, { "config.json", "num_hidden_layers", "limit" });
    // The real config still loads.
    fs::copy_file(dpotest::fixture("llama-gqa/ref/config.json"), model + "/config.json",
        fs::copy_options::overwrite_existing);
    EXPECT_NO_THROW(dpo::loadCausalLM(model));
}

TEST(HostileConfig, MinimumParameterCountSaturates)
{
    dpo::ModelConfig c;
    c.vocabSize = INT64_MAX;
    c.hiddenSize = INT64_MAX;
    c.numLayers = 3;
    c.numHeads = 4;
    c.headDim = 5;
    EXPECT_EQ(dpo::minimumParameterCount(c), INT64_MAX);
}

// ---- train --config ----------------------------------------------------------------------------

TEST(HostileTrainConfig, NestingAndWrongTypes)
{
    TempDir dir;
    const std::string path = dir.file("preset.json");
    writeText(path, "{\"beta\": " + nestedArrays(100000) + "}");
    expectError([&] { dpo::TrainConfig::fromFile(path); }, { path, "nested deeper" });
    writeText(path, "{\"beta\": " + nestedArrays(60) + "}");
    expectError([&] { dpo::TrainConfig::fromFile(path); }, { path, "'beta'", "must be a number" });
    // nlohmann's get<> would truncate or wrap these silently.
    const std::vector<std::pair<std::string, std::string>> cases = {
        { "threads", "1099511627776" }, { "seed", "-1" }, { "batch_size", "1.5" }, { "max_steps", "1e300" },
        { "shuffle", "1" }, { "model", "[1]" }, { "batch_size", "18446744073709551615" },
    };
    for (const auto &[key, value] : cases) {
        SCOPED_TRACE(key + " = " + value);
        writeText(path, "{\"" + key + "\": " + value + "}");
        expectError([&] { dpo::TrainConfig::fromFile(path); }, { path, "'" + key + "'" });
    }
    writeText(path, "{\"batch_size\": 4.0, \"seed\": 18446744073709551615, \"max_row_bytes\": 1000}");
    const dpo::TrainConfig c = dpo::TrainConfig::fromFile(path);
    EXPECT_EQ(c.batchSize, 4);
    EXPECT_EQ(c.seed, 18446744073709551615ull);
    EXPECT_EQ(c.maxRowBytes, 1000);
}

// ---- tokenizer.json ------------------------------------------------------------------------------

std::string gpt2TokenizerDir(const TempDir &dir) { return copyModel(dir, "gpt2/ref"); }

void editTokenizer(const std::string &modelDir, const std::function<void(json &)> &edit)
{
    editConfig(modelDir, edit, "tokenizer.json");
}

// `type` Sequence nested `depth` levels around a ByteLevel step, as text (no recursion here either).
std::string nestedSequence(size_t depth, const std::string &listKey, const std::string &leaf)
{
    std::string s;
    s.reserve(depth * 48 + leaf.size());
    for (size_t i = 0; i < depth; ++i)
        s += "{\"type\":\"Sequence\",\"" + listKey + "\":[";
    s += leaf;
    for (size_t i = 0; i < depth; ++i)
        s += "]}";
    return s;
}

void replaceTokenizerField(const std::string &modelDir, const std::string &field, const std::string &valueText)
{
    // Splices raw text in (the value may be too deep for any DOM).
    json j = json::parse(readText(modelDir + "/tokenizer.json"));
    j[field] = "@@PLACEHOLDER@@";
    std::string text = j.dump();
    text.replace(text.find("\"@@PLACEHOLDER@@\""), 17, valueText);
    writeText(modelDir + "/tokenizer.json", text);
}

TEST(HostileTokenizer, SequenceRecursionIsBounded)
{
    TempDir dir;
    const std::string model = gpt2TokenizerDir(dir);
    const std::string path = model + "/tokenizer.json";
    const std::string byteLevel = "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true}";
    // Depth 100k (once 60 s+ and hundreds of MB, 300k crashed): refused by the JSON nesting limit.
    replaceTokenizerField(model, "pre_tokenizer", nestedSequence(100000, "pretokenizers", byteLevel));
    expectError([&] { dpo::BpeTokenizer::fromDirectory(model); }, { path, "nested deeper" });
    // Depth 20 fits the JSON limit and meets the Sequence limit, for every Sequence kind.
    replaceTokenizerField(model, "pre_tokenizer", nestedSequence(20, "pretokenizers", byteLevel));
    expectError([&] { dpo::BpeTokenizer::fromDirectory(model); }, { path, "pre_tokenizer", "Sequence nested deeper" });
    fs::copy_file(dpotest::fixture("gpt2/ref/tokenizer.json"), path, fs::copy_options::overwrite_existing);
    replaceTokenizerField(model, "normalizer", nestedSequence(20, "normalizers", "{\"type\":\"NFC\"}"));
    expectError([&] { dpo::BpeTokenizer::fromDirectory(model); }, { path, "normalizer", "Sequence nested deeper" });
    fs::copy_file(dpotest::fixture("gpt2/ref/tokenizer.json"), path, fs::copy_options::overwrite_existing);
    replaceTokenizerField(model, "decoder", nestedSequence(20, "decoders", "{\"type\":\"Fuse\"}"));
    expectError([&] { dpo::BpeTokenizer::fromDirectory(model); }, { path, "decoder", "Sequence nested deeper" });
    fs::copy_file(dpotest::fixture("gpt2/ref/tokenizer.json"), path, fs::copy_options::overwrite_existing);
    replaceTokenizerField(model, "post_processor", nestedSequence(20, "processors", "{\"type\":\"ByteLevel\"}"));
    expectError([&] { dpo::BpeTokenizer::fromDirectory(model); }, { path, "post_processor", "Sequence nested deeper" });
    // A legitimate two-level Sequence still loads.
    fs::copy_file(dpotest::fixture("gpt2/ref/tokenizer.json"), path, fs::copy_options::overwrite_existing);
    replaceTokenizerField(model, "pre_tokenizer", nestedSequence(2, "pretokenizers", byteLevel));
    EXPECT_NO_THROW(dpo::BpeTokenizer::fromDirectory(model));
}

TEST(HostileTokenizer, VocabIdsAreBoundedAndNeverTruncated)
{
    TempDir dir;
    const std::string model = gpt2TokenizerDir(dir);
    const std::string path = model + "/tokenizer.json";
    // 1e8 in a 36 KB file once allocated 3.2 GB; 2^32+5 silently took over token 5; 2^31 threw
    // "vector::_M_default_append"; 2e9 std::bad_alloc.
    for (const int64_t id : { int64_t(100000000), (int64_t(1) << 32) + 5, int64_t(1) << 31, int64_t(2000000000),
             int64_t(1) << 24, int64_t(-3) }) {
        SCOPED_TRACE(id);
        fs::copy_file(dpotest::fixture("gpt2/ref/tokenizer.json"), path, fs::copy_options::overwrite_existing);
        editTokenizer(model, [&](json &j) { j["model"]["vocab"]["zzz"] = id; });
        expectError([&] { dpo::BpeTokenizer::fromDirectory(model); }, { path, "model.vocab", "zzz" });
    }
    // 4096 fits neither the 746 entries (ids must stay below 2 x 746 + 1024).
    fs::copy_file(dpotest::fixture("gpt2/ref/tokenizer.json"), path, fs::copy_options::overwrite_existing);
    editTokenizer(model, [&](json &j) { j["model"]["vocab"]["zzz"] = 4096; });
    expectError([&] { dpo::BpeTokenizer::fromDirectory(model); }, { path, "does not fit a vocabulary" });
    // A dense extra id is fine.
    fs::copy_file(dpotest::fixture("gpt2/ref/tokenizer.json"), path, fs::copy_options::overwrite_existing);
    editTokenizer(model, [&](json &j) { j["model"]["vocab"]["zzz"] = 745; });
    EXPECT_EQ(dpo::BpeTokenizer::fromDirectory(model)->tokenToId("zzz"), 745);
}

TEST(HostileTokenizer, AddedTokenIdsAreBounded)
{
    TempDir dir;
    const std::string model = gpt2TokenizerDir(dir);
    const std::string path = model + "/tokenizer.json";
    const int64_t huge = (int64_t(1) << 40) + 7;
    editTokenizer(model, [&](json &j) {
        j["added_tokens"].push_back({ { "id", huge }, { "content", "<big>" }, { "special", true } });
    });
    expectError([&] { dpo::BpeTokenizer::fromDirectory(model); }, { path, "added_tokens[1]", "outside" });

    fs::copy_file(dpotest::fixture("gpt2/ref/tokenizer.json"), path, fs::copy_options::overwrite_existing);
    const std::string cfg = model + "/tokenizer_config.json";
    editConfig(model, [&](json &j) { j["added_tokens_decoder"][std::to_string(huge)] = { { "content", "<big>" } }; },
        "tokenizer_config.json");
    expectError([&] { dpo::BpeTokenizer::fromDirectory(model); }, { cfg, "added_tokens_decoder", "outside" });

    fs::copy_file(dpotest::fixture("gpt2/ref/tokenizer_config.json"), cfg, fs::copy_options::overwrite_existing);
    writeText(model + "/added_tokens.json", "{\"<big>\": 1099511627783}");
    expectError([&] { dpo::BpeTokenizer::fromDirectory(model); }, { model + "/added_tokens.json", "<big>", "outside" });
    fs::remove(model + "/added_tokens.json");

    editConfig(model, [&](json &j) { j["eos_token_id"] = huge; j["bos_token_id"] = nullptr; });
    fs::remove(model + "/generation_config.json");
    editConfig(model, [&](json &j) { j.erase("bos_token"); j.erase("eos_token"); }, "tokenizer_config.json");
    expectError([&] { dpo::BpeTokenizer::fromDirectory(model); }, { model + "/config.json", "eos_token_id" });
}

TEST(HostileTokenizer, WrongTypesNameTheFileAndField)
{
    TempDir dir;
    const std::string model = gpt2TokenizerDir(dir);
    const std::string path = model + "/tokenizer.json";
    // Once "[json.exception.type_error.302] type must be string, but is number" and nothing else.
    editTokenizer(model, [&](json &j) { j["pre_tokenizer"]["add_prefix_space"] = "yes"; });
    expectError([&] { dpo::BpeTokenizer::fromDirectory(model); }, { path, "pre_tokenizer.add_prefix_space" });
    fs::copy_file(dpotest::fixture("gpt2/ref/tokenizer.json"), path, fs::copy_options::overwrite_existing);
    editTokenizer(model, [&](json &j) { j["model"]["type"] = 5; });
    expectError([&] { dpo::BpeTokenizer::fromDirectory(model); }, { path, "model.type" });
    fs::copy_file(dpotest::fixture("gpt2/ref/tokenizer.json"), path, fs::copy_options::overwrite_existing);
    editTokenizer(model, [&](json &j) { j["model"]["dropout"] = "x"; });
    expectError([&] { dpo::BpeTokenizer::fromDirectory(model); }, { path, "model.dropout" });
    fs::copy_file(dpotest::fixture("gpt2/ref/tokenizer.json"), path, fs::copy_options::overwrite_existing);
    editTokenizer(model, [&](json &j) { j["added_tokens"][0]["special"] = 3; });
    expectError([&] { dpo::BpeTokenizer::fromDirectory(model); }, { path, "added_tokens[0].special" });
    fs::copy_file(dpotest::fixture("gpt2/ref/tokenizer.json"), path, fs::copy_options::overwrite_existing);
    writeText(model + "/tokenizer_config.json", "{\"bos_token\": " + nestedArrays(100000) + "}");
    expectError([&] { dpo::BpeTokenizer::fromDirectory(model); }, { model + "/tokenizer_config.json", "nested deeper" });
}

// ---- preference rows --------------------------------------------------------------------------------

TEST(HostileRows, HugeRowIsRefusedFastWithAClearError)
{
    // A 16 MB row once took 33 s and 3.9 GB in score/train.
    TempDir dir;
    const std::string path = dir.file("pairs.jsonl");
    {
        std::ofstream out(path, std::ios::binary);
        out << "{\"prompt\": \"p\", \"chosen\": \"a\", \"rejected\": \"b\"}\n";
        out << "{\"prompt\": \"" << std::string(16 << 20, 'x') << "\", \"chosen\": \"a\", \"rejected\": \"b\"}\n";
    }
    expectError([&] { dpo::readPreferenceJsonl(path); }, { path + ":2", "limit", "--max-row-bytes" }, 0.5);
    // A row under the limit but with a field above its own.
    dpo::PreferenceDataLimits l;
    l.maxRowBytes = 1 << 20;
    l.maxFieldBytes = 1000;
    writeText(path, "{\"prompt\": \"p\", \"chosen\": \"" + std::string(2000, 'a') + "\", \"rejected\": \"b\"}\n");
    expectError([&] { dpo::readPreferenceJsonl(path, l); }, { path + ":1", "'chosen'", "limit" });
    l.maxFieldBytes = 4000;
    EXPECT_EQ(dpo::readPreferenceJsonl(path, l).size(), 1u);
    // Raising the limit through the option works.
    EXPECT_EQ(dpo::PreferenceDataLimits::withMaxRowBytes(64 << 20).maxRowBytes, int64_t(64) << 20);
    EXPECT_EQ(dpo::PreferenceDataLimits::withMaxRowBytes(0).maxRowBytes, dpo::PreferenceDataLimits::kDefaultMaxRowBytes);
}

TEST(HostileRows, EnvironmentRaisesTheLimit)
{
    ::setenv("DPO_MAX_ROW_BYTES", "100", 1);
    expectError([] { dpo::parsePreferenceLine("{\"chosen\": \"" + std::string(200, 'a') + "\", \"rejected\": \"b\"}", "f", 1); },
        { "f:1", "limit" });
    ::setenv("DPO_MAX_ROW_BYTES", "junk", 1);
    expectError([] { dpo::PreferenceDataLimits::defaults(); }, { "DPO_MAX_ROW_BYTES" });
    ::unsetenv("DPO_MAX_ROW_BYTES");
}

TEST(HostileRows, NestedRowIsRefused)
{
    expectError([] { dpo::parsePreferenceLine("{\"chosen\": " + nestedArrays(100000) + "}", "rows.jsonl", 3); },
        { "rows.jsonl:3", "nested deeper" });
    expectError(
        [] { dpo::parsePreferenceLine("{\"chosen\": \"a\", \"rejected\": \"b\", \"meta\": " + nestedArrays(100) + "}", "r", 1); },
        { "r:1", "nested deeper" });
}

// ---- checkpoint temporaries -----------------------------------------------------------------------

TEST(CheckpointTemps, OnlyOurOwnStaleNamesAreRemoved)
{
    TempDir dir;
    const std::vector<std::string> stale = { "checkpoint-12.tmp", ".checkpoint-12.tmp.tmp-999999999-0",
        ".checkpoint-3.tmp.old-999999998-4", ".final.tmp-999999997-1" };
    const std::vector<std::string> kept = { "checkpoint-12", "final", ".final.old-999999997-0", "checkpoint-x.tmp",
        ".checkpoint-12.tmp.tmp-abc-0", "notes.tmp", ".checkpoint-12.tmp.tmp-1-0" /* pid 1 is alive */ };
    for (const auto &n : stale)
        fs::create_directories(dir.path / n / "sub");
    for (const auto &n : kept)
        fs::create_directories(dir.path / n);
    writeText(dir.file("checkpoint-7.tmp.txt"), "a file, not ours");
    const auto removed = dpo::removeStaleCheckpointTemps(dir.path.string());
    EXPECT_EQ(removed.size(), stale.size());
    for (const auto &n : stale)
        EXPECT_FALSE(fs::exists(dir.path / n)) << n;
    for (const auto &n : kept)
        EXPECT_TRUE(fs::exists(dir.path / n)) << n;
    EXPECT_TRUE(fs::exists(dir.file("checkpoint-7.tmp.txt")));
    EXPECT_TRUE(dpo::removeStaleCheckpointTemps(dir.file("missing")).empty());
}

} // namespace

// dpo-cli chat render reads --context and --cases with the nesting limit: a context nested 100,000
// levels deep (and one such line of a cases file) is an error naming the file, not a crash.
TEST(HostileChatCli, DeeplyNestedContextIsRefused)
{
    const fs::path dir = fs::temp_directory_path() / ("dpo_hostile_chat_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    const std::string deep = "{\"messages\": " + std::string(100000, '[') + std::string(100000, ']') + "}";
    std::ofstream(dir / "deep.json") << deep;
    std::ofstream(dir / "cases.jsonl") << "{\"id\": 1, \"context\": {\"messages\": []}}\n"
                                       << "{\"id\": 2, \"context\": " << deep << "}\n";
    std::ofstream(dir / "t.jinja") << "{% for m in messages %}{{ m.content }}{% endfor %}";
    const std::string base = dpotest::cliPath() + " chat render --template '" + (dir / "t.jinja").string() + "' ";
    auto r = dpotest::runCommand(base + "--context '" + (dir / "deep.json").string() + "'");
    EXPECT_EQ(r.exitCode, 1) << r.err;
    EXPECT_NE(r.err.find("deep.json"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("nested deeper"), std::string::npos) << r.err;
    r = dpotest::runCommand(base + "--cases '" + (dir / "cases.jsonl").string() + "'");
    EXPECT_NE(r.exitCode, 0);
    EXPECT_NE(r.err.find("cases.jsonl:2"), std::string::npos) << r.err;
    fs::remove_all(dir);
}

} // namespace test_hostile_inputs
