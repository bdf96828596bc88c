// safetensors reader/writer: the fixture file read byte-exactly, write/read round trips (also
// sharded folders), and hostile files refused with a dpo::Error naming the file.
#include "engine/error.h"
#include "engine/io/safetensors.h"

#include "test_util.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sys/resource.h>

namespace test_safetensors { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

namespace fs = std::filesystem;

namespace {

struct TempDir {
    fs::path path;
    TempDir()
    {
        char tmpl[] = "/tmp/dpo_st_XXXXXX";
        path = mkdtemp(tmpl);
    }
    ~TempDir() { fs::remove_all(path); }
    std::string file(const std::string &name) const { return (path / name).string(); }
};

std::string readBytes(const std::string &path)
{
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void writeBytes(const std::string &path, const std::string &bytes)
{
    std::ofstream out(path, std::ios::binary);
    out.write(bytes.data(), std::streamsize(bytes.size()));
}

std::string le64(uint64_t v)
{
    std::string s(8, '\0');
    for (int i = 0; i < 8; ++i)
        s[i] = char((v >> (8 * i)) & 0xff);
    return s;
}

// A safetensors file from a raw header text and a data area of `dataBytes` bytes.
std::string rawFile(const std::string &header, size_t dataBytes)
{
    return le64(header.size()) + header + std::string(dataBytes, '\x01');
}

// Expects opening `bytes` (written to a file) to throw dpo::Error mentioning the file and `needle`.
void expectRefused(const TempDir &dir, const std::string &name, const std::string &bytes, const std::string &needle)
{
    const std::string path = dir.file(name);
    writeBytes(path, bytes);
    try {
        dpo::SafetensorsFile::open(path);
        ADD_FAILURE() << name << ": accepted a hostile file";
    } catch (const dpo::Error &e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find(path), std::string::npos) << name << ": message does not name the file: " << msg;
        EXPECT_NE(msg.find(needle), std::string::npos) << name << ": message lacks '" << needle << "': " << msg;
    }
}

} // namespace

TEST(Safetensors, ReadsFixtureByteExactly)
{
    const std::string path = dpotest::fixture("llama-gqa/logits.safetensors");
    const std::string bytes = readBytes(path);
    ASSERT_GT(bytes.size(), 8u);
    uint64_t headerLen = 0;
    for (int i = 7; i >= 0; --i)
        headerLen = (headerLen << 8) | uint8_t(bytes[i]);
    const auto header = nlohmann::json::parse(bytes.substr(8, headerLen));

    auto f = dpo::SafetensorsFile::open(path);
    EXPECT_TRUE(f.contains("logits"));
    EXPECT_TRUE(f.contains("input_ids"));
    EXPECT_TRUE(f.contains("attention_mask"));
    EXPECT_FALSE(f.contains("nope"));
    EXPECT_EQ(f.names().size(), 3u);

    const auto ids = f.tensor("input_ids");
    const auto mask = f.tensor("attention_mask");
    const auto logits = f.tensor("logits");
    EXPECT_EQ(ids.scalar_type(), torch::kInt64);
    EXPECT_EQ(logits.scalar_type(), torch::kFloat32);
    ASSERT_EQ(ids.dim(), 2);
    EXPECT_EQ(mask.sizes(), ids.sizes());
    ASSERT_EQ(logits.dim(), 3);
    EXPECT_EQ(logits.size(0), ids.size(0));
    EXPECT_EQ(logits.size(1), ids.size(1));
    const auto config = dpotest::readJson(dpotest::fixture("llama-gqa/ref/config.json"));
    EXPECT_EQ(logits.size(2), config["vocab_size"].get<int64_t>());
    // The mask is 0/1 and every row starts with real tokens (right padding).
    EXPECT_TRUE(((mask == 0) | (mask == 1)).all().item<bool>());
    EXPECT_TRUE((mask.select(1, 0) == 1).all().item<bool>());
    EXPECT_TRUE(((ids >= 0) & (ids < logits.size(2))).all().item<bool>());

    // Every tensor's bytes are exactly the file's bytes at its offsets.
    for (const auto &name : f.names()) {
        const auto t = f.tensor(name);
        const auto &off = header[name]["data_offsets"];
        const uint64_t begin = off[0], end = off[1];
        ASSERT_EQ(uint64_t(t.nbytes()), end - begin) << name;
        EXPECT_EQ(std::memcmp(t.data_ptr(), bytes.data() + 8 + headerLen + begin, end - begin), 0) << name;
        EXPECT_EQ(f.entry(name).shape, t.sizes().vec());
    }
}

TEST(Safetensors, TensorsOutliveTheFileObjectAndNeverWriteBack)
{
    const std::string src = dpotest::fixture("llama-gqa/logits.safetensors");
    TempDir dir;
    const std::string path = dir.file("copy.safetensors");
    fs::copy_file(src, path);
    const std::string before = readBytes(path);
    torch::Tensor logits;
    torch::Tensor expected;
    {
        auto f = dpo::SafetensorsFile::open(path);
        logits = f.tensor("logits");
        expected = logits.clone();
    }
    EXPECT_TRUE(torch::equal(logits, expected));
    logits.fill_(0.0f); // copy-on-write mapping: must not crash, must not reach the file
    EXPECT_EQ(readBytes(path), before);
}

TEST(Safetensors, RoundTripAllDtypes)
{
    TempDir dir;
    torch::manual_seed(7);
    std::map<std::string, torch::Tensor> in;
    in["f32"] = torch::randn({ 3, 5 });
    in["bf16"] = torch::randn({ 4, 7 }).to(torch::kBFloat16);
    in["f16"] = torch::randn({ 9 }).to(torch::kFloat16);
    in["i64"] = torch::randint(-1000, 1000, { 2, 3, 2 }, torch::kInt64);
    in["f64"] = torch::randn({ 2 }, torch::kFloat64);
    in["u8"] = torch::randint(0, 255, { 5 }, torch::kUInt8);
    in["bool"] = torch::rand({ 3 }) > 0.5;
    in["scalar"] = torch::tensor(3.5f);
    in["empty"] = torch::zeros({ 0, 4 });
    in["transposed"] = torch::randn({ 6, 3 }).t(); // non-contiguous input
    const std::string path = dir.file("rt.safetensors");
    dpo::saveSafetensors(path, in, { { "format", "pt" } });
    EXPECT_FALSE(fs::exists(path + ".tmp"));

    const std::string bytes = readBytes(path);
    uint64_t headerLen = 0;
    for (int i = 7; i >= 0; --i)
        headerLen = (headerLen << 8) | uint8_t(bytes[i]);
    EXPECT_EQ(headerLen % 8, 0u) << "header must be padded to 8 bytes";
    const auto header = nlohmann::json::parse(bytes.substr(8, headerLen));
    EXPECT_EQ(header["__metadata__"]["format"], "pt");
    EXPECT_EQ(header["bf16"]["dtype"], "BF16");
    EXPECT_EQ(header["i64"]["dtype"], "I64");
    // The reference reader (Rust safetensors, used by transformers) also demands that the data
    // ranges tile the data area exactly, in offset order, with nothing after the last one.
    std::vector<std::pair<uint64_t, uint64_t>> ranges;
    for (auto it = header.begin(); it != header.end(); ++it)
        if (it.key() != "__metadata__")
            ranges.emplace_back(
                it.value()["data_offsets"][0].get<uint64_t>(), it.value()["data_offsets"][1].get<uint64_t>());
    std::sort(ranges.begin(), ranges.end());
    uint64_t cursor = 0;
    for (const auto &r : ranges) {
        EXPECT_EQ(r.first, cursor);
        cursor = r.second;
    }
    EXPECT_EQ(cursor, bytes.size() - 8 - headerLen);

    auto f = dpo::SafetensorsFile::open(path);
    EXPECT_EQ(f.metadata().at("format"), "pt");
    EXPECT_EQ(f.names().size(), in.size());
    for (const auto &kv : in) {
        const auto t = f.tensor(kv.first);
        EXPECT_EQ(t.scalar_type(), kv.second.scalar_type()) << kv.first;
        EXPECT_EQ(t.sizes(), kv.second.sizes()) << kv.first;
        EXPECT_TRUE(torch::equal(t, kv.second)) << kv.first;
        // Widest dtypes come first, so data is aligned for its type.
        EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data_ptr()) % t.element_size(), 0u) << kv.first;
    }
}

TEST(Safetensors, ShardedFolderLoads)
{
    TempDir dir;
    std::map<std::string, torch::Tensor> a { { "w.a", torch::randn({ 4, 4 }) }, { "w.b", torch::randn({ 3 }) } };
    std::map<std::string, torch::Tensor> b { { "w.c", torch::randn({ 2, 2 }).to(torch::kBFloat16) } };
    dpo::saveSafetensors(dir.file("model-00001-of-00002.safetensors"), a, { { "format", "pt" } });
    dpo::saveSafetensors(dir.file("model-00002-of-00002.safetensors"), b, { { "format", "pt" } });
    nlohmann::json index;
    index["metadata"]["total_size"] = 4 * 16 + 4 * 3 + 2 * 4;
    index["weight_map"]["w.a"] = "model-00001-of-00002.safetensors";
    index["weight_map"]["w.b"] = "model-00001-of-00002.safetensors";
    index["weight_map"]["w.c"] = "model-00002-of-00002.safetensors";
    const std::string indexPath = dir.file("model.safetensors.index.json");
    std::ofstream(indexPath) << index.dump(2);

    auto w = dpo::loadSafetensorsWeights(dir.path.string());
    ASSERT_EQ(w.size(), 3u);
    EXPECT_TRUE(torch::equal(w["w.a"], a["w.a"]));
    EXPECT_TRUE(torch::equal(w["w.b"], a["w.b"]));
    EXPECT_TRUE(torch::equal(w["w.c"], b["w.c"]));

    // A tensor listed in the index but absent from its shard.
    index["weight_map"]["w.d"] = "model-00002-of-00002.safetensors";
    std::ofstream(indexPath) << index.dump(2);
    try {
        dpo::loadSafetensorsWeights(dir.path.string());
        ADD_FAILURE() << "missing tensor accepted";
    } catch (const dpo::Error &e) {
        EXPECT_NE(std::string(e.what()).find("w.d"), std::string::npos) << e.what();
    }
    // A missing shard.
    index["weight_map"]["w.d"] = "model-00003-of-00003.safetensors";
    std::ofstream(indexPath) << index.dump(2);
    try {
        dpo::loadSafetensorsWeights(dir.path.string());
        ADD_FAILURE() << "missing shard accepted";
    } catch (const dpo::Error &e) {
        EXPECT_NE(std::string(e.what()).find("model-00003-of-00003.safetensors"), std::string::npos) << e.what();
    }
    // A shard path escaping the folder.
    index["weight_map"]["w.d"] = "../elsewhere.safetensors";
    std::ofstream(indexPath) << index.dump(2);
    EXPECT_THROW(dpo::loadSafetensorsWeights(dir.path.string()), dpo::Error);
    // Invalid JSON in the index names the index file.
    std::ofstream(indexPath) << "{\"weight_map\": ";
    try {
        dpo::loadSafetensorsWeights(dir.path.string());
        ADD_FAILURE() << "invalid index accepted";
    } catch (const dpo::Error &e) {
        EXPECT_NE(std::string(e.what()).find(indexPath), std::string::npos) << e.what();
    }
}

TEST(Safetensors, SingleFileFolderAndMissingWeights)
{
    auto w = dpo::loadSafetensorsWeights(dpotest::fixture("llama-gqa/ref"));
    const auto config = dpotest::readJson(dpotest::fixture("llama-gqa/ref/config.json"));
    ASSERT_TRUE(w.count("model.embed_tokens.weight"));
    EXPECT_EQ(w["model.embed_tokens.weight"].size(0), config["vocab_size"].get<int64_t>());
    EXPECT_EQ(w["model.embed_tokens.weight"].size(1), config["hidden_size"].get<int64_t>());

    TempDir dir;
    try {
        dpo::loadSafetensorsWeights(dir.path.string());
        ADD_FAILURE() << "empty folder accepted";
    } catch (const dpo::Error &e) {
        EXPECT_NE(std::string(e.what()).find(dir.path.string()), std::string::npos) << e.what();
    }
    EXPECT_THROW(dpo::loadSafetensorsWeights(dir.file("does-not-exist")), dpo::Error);
    EXPECT_THROW(dpo::SafetensorsFile::open(dir.file("nope.safetensors")), dpo::Error);
}

TEST(Safetensors, HostileFilesAreRefused)
{
    TempDir dir;
    const std::string good = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";

    const std::string valid = readBytes(dpotest::fixture("llama-gqa/logits.safetensors"));
    expectRefused(dir, "truncated.safetensors", valid.substr(0, valid.size() / 2), "logits");
    expectRefused(dir, "tiny.safetensors", valid.substr(0, 5), "truncated");
    expectRefused(dir, "empty.safetensors", "", "truncated");
    expectRefused(dir, "headerlen.safetensors", le64(1u << 20) + good, "header length");
    expectRefused(dir, "hugeheaderlen.safetensors", le64(~0ull) + good, "header length");
    expectRefused(dir, "overlap.safetensors",
        rawFile(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
            12),
        "overlap");
    expectRefused(
        dir, "size.safetensors", rawFile(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 12), "'a'");
    expectRefused(
        dir, "past.safetensors", rawFile(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8), "'a'");
    expectRefused(
        dir, "dtype.safetensors", rawFile(R"({"a":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})", 8), "Q4");
    expectRefused(dir, "json.safetensors", rawFile(R"({"a":{"dtype":"F32",)", 8), "JSON");
    expectRefused(dir, "array.safetensors", rawFile("[1, 2, 3]", 8), "object");
    expectRefused(
        dir, "negshape.safetensors", rawFile(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8), "shape");
    expectRefused(dir, "floatshape.safetensors",
        rawFile(R"({"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", 8), "shape");
    expectRefused(
        dir, "reversed.safetensors", rawFile(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", 8), "'a'");
    expectRefused(dir, "overflow.safetensors",
        rawFile(R"({"a":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8), "'a'");
    expectRefused(dir, "nooffsets.safetensors", rawFile(R"({"a":{"dtype":"F32","shape":[2]}})", 8), "data_offsets");
    expectRefused(dir, "meta.safetensors", rawFile(R"({"__metadata__":{"format":1}})", 0), "__metadata__");
    expectRefused(dir, "dup.safetensors",
        rawFile(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                R"("a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
            16),
        "twice");

    // The same shapes with correct offsets are fine (the checks above are not over-eager).
    const std::string ok = dir.file("ok.safetensors");
    writeBytes(ok,
        rawFile(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},"__metadata__":{"k":"v"}})",
            12));
    auto f = dpo::SafetensorsFile::open(ok);
    EXPECT_EQ(f.tensor("b").numel(), 1);
    EXPECT_EQ(f.metadata().at("k"), "v");
    EXPECT_THROW(f.tensor("c"), dpo::Error);
}

TEST(Safetensors, FailedWriteLeavesNoFile)
{
    TempDir dir;
    std::map<std::string, torch::Tensor> big { { "w", torch::randn({ 512, 512 }) } }; // 1 MiB
    // Unwritable location.
    const std::string nowhere = dir.file("missing-dir/x.safetensors");
    EXPECT_THROW(dpo::saveSafetensors(nowhere, big), dpo::Error);
    EXPECT_FALSE(fs::exists(nowhere));

    // A "full disk": the file size limit makes write() fail part-way (EFBIG) once 64 KiB are written.
    const std::string path = dir.file("full.safetensors");
    struct rlimit old { };
    ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
    auto oldHandler = std::signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = old;
    lim.rlim_cur = 64 * 1024;
    ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &lim), 0);
    bool threw = false;
    std::string msg;
    try {
        dpo::saveSafetensors(path, big);
    } catch (const dpo::Error &e) {
        threw = true;
        msg = e.what();
    }
    setrlimit(RLIMIT_FSIZE, &old);
    std::signal(SIGXFSZ, oldHandler);
    EXPECT_TRUE(threw);
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_FALSE(fs::exists(path));
    EXPECT_FALSE(fs::exists(path + ".tmp"));

    // An unsupported dtype is refused before anything is written.
    std::map<std::string, torch::Tensor> complexT { { "c", torch::zeros({ 2 }, torch::kComplexFloat) } };
    EXPECT_THROW(dpo::saveSafetensors(path, complexT), dpo::Error);
    EXPECT_FALSE(fs::exists(path));
}

} // namespace test_safetensors
