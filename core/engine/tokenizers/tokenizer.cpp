// Tokenizer base-class services shared by every tokenizer kind: special-token configuration
// (tokenizer_config.json, special_tokens_map.json, added_tokens.json, config fallbacks), added-token
// splitting, the loader that picks the tokenizer kind of a model folder, and the vocabulary check.
#include "engine/tokenizers/tokenizer.h"

#include "engine/tokenizers/bpe_tokenizer.h" // byte-level BPE branch of loadTokenizer
#include "engine/error.h"
#include "engine/io/json_limits.h"
#include "engine/models/adapter_io.h" // loadTokenizer of a PEFT adapter folder
#include "engine/tokenizers/sp_tokenizer.h"
#include "engine/tokenizers/utf8.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>

namespace dpo {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Parses a JSON file; nullopt when it does not exist. Malformed JSON is an error naming the file.
std::optional<json> readJsonFile(const fs::path &path)
{
    std::error_code ec;
    if (!fs::is_regular_file(path, ec))
        return std::nullopt;
    return readJsonFileLimited(path.string(), largeJsonFileLimits()); // nesting and size bounded
}

// A token id read from `file`: an integer in [0, Tokenizer::kMaxTokenId).
int64_t checkedTokenId(const json &v, const std::string &field, const fs::path &file)
{
    if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX)))
        throw Error(file.string() + ": field \"" + field + "\" must be an integer token id (got " + jsonSnippet(v) + ")");
    const int64_t id = v.get<int64_t>();
    if (id < 0 || id >= Tokenizer::kMaxTokenId)
        throw Error(file.string() + ": field \"" + field + "\": token id " + std::to_string(id) + " is outside [0, "
            + std::to_string(Tokenizer::kMaxTokenId) + ")");
    return id;
}

std::optional<bool> boolField(const json &j, const char *key, const fs::path &file)
{
    auto it = j.find(key);
    if (it == j.end() || it->is_null())
        return std::nullopt;
    if (!it->is_boolean())
        throw Error(file.string() + ": field \"" + key + "\" must be true or false");
    return it->get<bool>();
}

// A special token given as "<s>" or {"content": "<s>", ...}; nullopt when absent or null.
std::optional<std::string> tokenString(const json &v, const std::string &field, const fs::path &file)
{
    if (v.is_null())
        return std::nullopt;
    if (v.is_string())
        return v.get<std::string>();
    if (v.is_object()) {
        auto c = v.find("content");
        if (c != v.end() && c->is_string())
            return c->get<std::string>();
    }
    throw Error(file.string() + ": field \"" + field + "\" must be a string or an object with a \"content\" string");
}

// An id field of config.json / generation_config.json: an integer, null, or (eos) a list whose first
// element is used, as transformers does for generation.
std::optional<int64_t> idField(const json &j, const char *key, const fs::path &file)
{
    auto it = j.find(key);
    if (it == j.end() || it->is_null())
        return std::nullopt;
    const json *v = &*it;
    if (v->is_array()) {
        if (v->empty())
            return std::nullopt;
        v = &(*v)[0];
    }
    if (v->is_number_integer() && !v->is_number_unsigned() && v->get<int64_t>() == -1)
        return std::nullopt; // -1: "none", as null
    return checkedTokenId(*v, key, file);
}

} // namespace

std::vector<int64_t> Tokenizer::encodeWithSpecial(const std::string &text) const
{
    std::vector<int64_t> body = encode(text);
    std::vector<int64_t> ids;
    ids.reserve(body.size() + 2);
    if (m_addBos)
        ids.push_back(m_bosId);
    ids.insert(ids.end(), body.begin(), body.end());
    if (m_addEos)
        ids.push_back(m_eosId);
    return ids;
}

const std::vector<std::string> &Tokenizer::tokenizerFileNames()
{
    static const std::vector<std::string> names = { "tokenizer.model", "tokenizer.json", "tokenizer_config.json",
        "special_tokens_map.json", "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja" };
    return names;
}

bool Tokenizer::isSpecialId(int64_t id) const
{
    if (id < 0)
        return false;
    if (id == m_bosId || id == m_eosId || id == m_padId || id == m_unkId)
        return true;
    const AddedToken *t = addedToken(id);
    return t && t->special;
}

int64_t Tokenizer::addedTokenId(std::string_view content) const
{
    for (const auto &t : m_addedTokens)
        if (t.content == content)
            return t.id;
    return -1;
}

const Tokenizer::AddedToken *Tokenizer::addedToken(int64_t id) const
{
    for (const auto &t : m_addedTokens)
        if (t.id == id)
            return &t;
    return nullptr;
}

int64_t Tokenizer::addedTokensEnd() const
{
    int64_t end = 0;
    for (const auto &t : m_addedTokens)
        end = std::max(end, t.id + 1);
    return end;
}

void Tokenizer::addAddedToken(const std::string &content, int64_t id, bool special)
{
    if (content.empty() || id < 0)
        return;
    if (id >= kMaxTokenId) // the readers report the file and field first; this is the backstop
        throw Error("added token id " + std::to_string(id) + " is outside [0, " + std::to_string(kMaxTokenId) + ")");
    for (auto &t : m_addedTokens) {
        if (t.content == content) {
            // A later, more specific source (added_tokens_decoder) may mark it special.
            t.id = id;
            t.special = t.special || special;
            return;
        }
    }
    m_addedTokens.push_back({ content, id, special });
}

std::vector<Tokenizer::Segment> Tokenizer::splitOnAddedTokens(std::string_view text) const
{
    std::vector<Segment> out;
    if (m_addedTokens.empty()) {
        out.push_back({ text, -1 });
        return out;
    }
    // Candidates per first byte, longest first, so the first hit at a position is the longest.
    std::vector<const AddedToken *> byFirst[256];
    for (const auto &t : m_addedTokens)
        byFirst[static_cast<unsigned char>(t.content[0])].push_back(&t);
    for (auto &v : byFirst)
        std::stable_sort(v.begin(), v.end(),
            [](const AddedToken *a, const AddedToken *b) { return a->content.size() > b->content.size(); });

    size_t start = 0, i = 0;
    while (i < text.size()) {
        const AddedToken *hit = nullptr;
        for (const AddedToken *t : byFirst[static_cast<unsigned char>(text[i])]) {
            if (text.compare(i, t->content.size(), t->content) == 0) {
                hit = t;
                break;
            }
        }
        if (!hit) {
            ++i;
            continue;
        }
        if (i > start)
            out.push_back({ text.substr(start, i - start), -1 });
        out.push_back({ std::string_view(), hit->id });
        i += hit->content.size();
        start = i;
    }
    if (start < text.size() || out.empty())
        out.push_back({ text.substr(start), -1 });
    return out;
}

void Tokenizer::applyTokenizerConfig(const std::string &dir, bool defaultAddBos)
{
    applyTokenizerConfig(dir, defaultAddBos, SpecialIds());
}

void Tokenizer::applyTokenizerConfig(const std::string &dir, bool defaultAddBos, const SpecialIds &fallback)
try {
    m_sourceDir = dir;
    const fs::path root(dir);
    const fs::path cfgPath = root / "tokenizer_config.json";
    const fs::path mapPath = root / "special_tokens_map.json";
    const fs::path addedPath = root / "added_tokens.json";

    const std::optional<json> cfg = readJsonFile(cfgPath);
    if (cfg && !cfg->is_object())
        throw Error(cfgPath.string() + ": expected a JSON object");
    const std::optional<json> map = readJsonFile(mapPath);
    if (map && !map->is_object())
        throw Error(mapPath.string() + ": expected a JSON object");

    // Added tokens first: special token strings may name them.
    if (auto added = readJsonFile(addedPath)) {
        if (!added->is_object())
            throw Error(addedPath.string() + ": expected an object mapping token strings to ids");
        for (auto it = added->begin(); it != added->end(); ++it) {
            const int64_t id = checkedTokenId(it.value(), it.key().substr(0, 80), addedPath);
            requireUtf8(it.key(), addedPath.string());
            addAddedToken(it.key(), id, false);
        }
    }
    if (cfg && cfg->contains("added_tokens_decoder")) {
        const json &dec = (*cfg)["added_tokens_decoder"];
        if (!dec.is_object())
            throw Error(cfgPath.string() + ": field \"added_tokens_decoder\" must be an object");
        for (auto it = dec.begin(); it != dec.end(); ++it) {
            const std::string field = "added_tokens_decoder." + it.key().substr(0, 80);
            int64_t id = -1;
            try {
                size_t used = 0;
                id = std::stoll(it.key(), &used);
                if (used != it.key().size())
                    id = -1;
            } catch (const std::exception &) {
                id = -1;
            }
            if (id < 0)
                throw Error(cfgPath.string() + ": field \"" + field + "\": key must be a non-negative token id");
            if (id >= kMaxTokenId)
                throw Error(cfgPath.string() + ": field \"" + field + "\": token id " + std::to_string(id)
                    + " is outside [0, " + std::to_string(kMaxTokenId) + ")");
            const json &v = it.value();
            auto content = v.is_object() ? tokenString(v, field, cfgPath) : std::nullopt;
            if (!content)
                throw Error(cfgPath.string() + ": field \"" + field + "\" must be an object with a \"content\" string");
            requireUtf8(*content, cfgPath.string() + ": " + field);
            bool special = false;
            if (auto s = boolField(v, "special", cfgPath))
                special = *s;
            addAddedToken(*content, id, special);
        }
    }

    m_addBos = defaultAddBos;
    m_addEos = false;
    bool addBosGiven = false;
    if (cfg) {
        if (auto b = boolField(*cfg, "add_bos_token", cfgPath)) {
            m_addBos = *b;
            addBosGiven = true;
        }
        if (auto e = boolField(*cfg, "add_eos_token", cfgPath))
            m_addEos = *e;
    }

    // transformers lets special_tokens_map.json override tokenizer_config.json.
    auto specialString = [&](const char *key) -> std::optional<std::string> {
        std::optional<std::string> s;
        if (cfg && cfg->contains(key))
            s = tokenString((*cfg)[key], key, cfgPath);
        if (map && map->contains(key) && !(*map)[key].is_null())
            s = tokenString((*map)[key], key, mapPath);
        return s;
    };
    auto resolve = [&](const char *key, int64_t &slot) {
        if (auto s = specialString(key)) {
            int64_t id = tokenToId(*s);
            if (id >= 0) {
                slot = id;
                addAddedToken(*s, id, true);
            }
        }
    };
    m_bosId = m_eosId = m_padId = m_unkId = -1;
    resolve("bos_token", m_bosId);
    resolve("eos_token", m_eosId);
    resolve("pad_token", m_padId);
    resolve("unk_token", m_unkId);

    auto additional = [&](const std::optional<json> &j, const fs::path &file) {
        if (!j || !j->contains("additional_special_tokens"))
            return;
        const json &list = (*j)["additional_special_tokens"];
        if (list.is_null())
            return;
        if (!list.is_array())
            throw Error(file.string() + ": field \"additional_special_tokens\" must be a list");
        for (const auto &v : list)
            if (auto s = tokenString(v, "additional_special_tokens", file)) {
                int64_t id = tokenToId(*s);
                if (id >= 0)
                    addAddedToken(*s, id, true);
            }
    };
    additional(cfg, cfgPath);
    additional(map, mapPath);

    // Ids the tokenizer files did not settle: the model's config, then its generation config.
    for (const char *name : { "config.json", "generation_config.json" }) {
        const fs::path p = root / name;
        std::optional<json> j = readJsonFile(p);
        if (!j || !j->is_object())
            continue;
        if (m_bosId < 0)
            if (auto v = idField(*j, "bos_token_id", p))
                m_bosId = *v;
        if (m_eosId < 0)
            if (auto v = idField(*j, "eos_token_id", p))
                m_eosId = *v;
        if (m_padId < 0)
            if (auto v = idField(*j, "pad_token_id", p))
                m_padId = *v;
    }
    if (m_bosId < 0)
        m_bosId = fallback.bos;
    if (m_eosId < 0)
        m_eosId = fallback.eos;
    if (m_padId < 0)
        m_padId = fallback.pad;
    if (m_unkId < 0)
        m_unkId = fallback.unk;

    if (m_addBos && m_bosId < 0) {
        if (addBosGiven)
            throw Error(cfgPath.string() + ": add_bos_token is true but no BOS token is defined");
        m_addBos = false; // only the default asked for it; the model has none
    }
    if (m_addEos && m_eosId < 0)
        throw Error(cfgPath.string() + ": add_eos_token is true but no EOS token is defined");
} catch (const json::exception &e) { // a shape the checks above missed: still name the folder
    throw Error(dir + ": tokenizer configuration: " + jsonErrorMessage(e));
}

namespace {

// ---- byte-level BPE: wired in by the BPE tokenizer (core/engine/tokenizers/bpe_tokenizer.h) ----------------
std::unique_ptr<Tokenizer> loadBpeTokenizer(const std::string &dir)
{
    return BpeTokenizer::fromDirectory(dir); // applies tokenizer_config.json itself
}
// -------------------------------------------------------------------------------------------------

} // namespace

namespace {

bool hasComponentType(const json &c, const char *type, int depth = 0)
{
    if (depth > 8 || !c.is_object())
        return false;
    if (c.contains("type") && c["type"] == type)
        return true;
    for (const char *list : { "pretokenizers", "decoders", "normalizers" })
        if (c.contains(list) && c[list].is_array())
            for (const auto &sub : c[list])
                if (hasComponentType(sub, type, depth + 1))
                    return true;
    return false;
}

// What makes a tokenizer.json a sentencepiece model converted to the tokenizers format (Llama 2,
// Gemma, Mistral, T5): a Unigram model, a BPE with byte_fallback, or a Metaspace pre-tokenizer /
// decoder / normalizer. The engine runs those from tokenizer.model; "" when `j` is none of these.
std::string sentencepieceStyle(const json &j)
{
    if (!j.is_object() || !j.contains("model") || !j["model"].is_object())
        return "";
    const json &m = j["model"];
    if (m.contains("type") && m["type"] == "Unigram")
        return "a Unigram model";
    if (m.contains("byte_fallback") && m["byte_fallback"] == true)
        return "a BPE model with byte_fallback";
    for (const char *key : { "pre_tokenizer", "decoder", "normalizer" })
        if (j.contains(key) && hasComponentType(j[key], "Metaspace"))
            return std::string("a Metaspace ") + key;
    return "";
}

} // namespace

std::unique_ptr<Tokenizer> loadTokenizer(const std::string &dir)
{
    const fs::path root(dir);
    std::error_code ec;
    if (!fs::is_directory(root, ec))
        throw Error(dir + ": model folder not found (looking for its tokenizer)");
    if (isAdapterDir(dir)) { // a PEFT adapter folder without tokenizer files: its base model's tokenizer
        const std::string tokDir = tokenizerDirFor(dir);
        if (tokDir != dir)
            return loadTokenizer(tokDir);
    }
    const bool hasSp = fs::exists(root / "tokenizer.model", ec);
    const bool hasBpe = fs::exists(root / "tokenizer.json", ec)
        || (fs::exists(root / "vocab.json", ec) && fs::exists(root / "merges.txt", ec));
    if (hasSp) {
        try {
            return std::make_unique<SentencePieceTokenizer>(dir);
        } catch (const Error &) {
            // Some folders carry a stray tokenizer.model (e.g. tiktoken's) next to a usable
            // tokenizer.json; without one the sentencepiece error is the useful message.
            if (!hasBpe)
                throw;
        }
    }
    if (!hasSp && fs::exists(root / "tokenizer.json", ec)) {
        // A sentencepiece-style tokenizer.json without its tokenizer.model: refused by name rather
        // than read approximately (its normalisation and byte fallback are not byte-level BPE's).
        const std::string path = (root / "tokenizer.json").string();
        const std::string style = sentencepieceStyle(readJsonFileLimited(path, largeJsonFileLimits()));
        if (!style.empty())
            throw Error(path + " is a sentencepiece-style tokenizer (" + style
                + "), which this engine reads from tokenizer.model; " + (root / "tokenizer.model").string()
                + " is missing (copy it from the original model repository)");
    }
    if (hasBpe)
        return loadBpeTokenizer(dir);
    throw Error(dir + ": no tokenizer found (looked for tokenizer.model, tokenizer.json, vocab.json + merges.txt)");
}

void checkTokenizerFitsModel(const Tokenizer &tok, int64_t modelVocabSize, const std::string &modelDir)
{
    const std::string where = modelDir + "/config.json";
    if (tok.vocabSize() > modelVocabSize)
        throw Error(where + ": the tokenizer has " + std::to_string(tok.vocabSize())
            + " tokens but the model's vocab_size is " + std::to_string(modelVocabSize) + " (tokenizer from "
            + tok.sourceDir() + ")");
    auto check = [&](const char *name, int64_t id) {
        if (id >= modelVocabSize)
            throw Error(where + ": the tokenizer's " + name + " token id " + std::to_string(id)
                + " is outside the model's vocabulary (vocab_size " + std::to_string(modelVocabSize) + ")");
    };
    check("BOS", tok.bosId());
    check("EOS", tok.eosId());
    check("padding", tok.padId());
}

} // namespace dpo
