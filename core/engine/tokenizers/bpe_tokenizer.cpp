#include "engine/tokenizers/bpe_tokenizer.h"

#include "engine/error.h"
#include "engine/io/json_limits.h"
#include "engine/tokenizers/unicode_nfc.h"
#include "engine/tokenizers/utf8.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <queue>
#include <shared_mutex>
#include <sstream>

namespace dpo {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// GPT-2's pre-tokenizer regex (ByteLevel with use_regex true, and vocab.json + merges.txt).
const char *const kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// ---- UTF-8 helpers (input is validated before any of these run) ----

uint32_t decodeAt(std::string_view s, size_t &i)
{
    return decodeUtf8At(s, i);
}

// The code point ending just before byte `end`, and where it starts.
uint32_t decodeBefore(std::string_view s, size_t end, size_t &start)
{
    start = end - 1;
    while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80)
        --start;
    size_t i = start;
    return decodeAt(s, i);
}

// Rust's char::is_whitespace (Unicode White_Space), which lstrip/rstrip of added tokens use.
bool isWhitespace(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680
        || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F
        || cp == 0x3000;
}

bool isWordChar(uint32_t cp)
{
    if (cp < 0x80)
        return std::isalnum(int(cp)) || cp == '_';
    return !isWhitespace(cp);
}

// Bytes -> text the way Rust's String::from_utf8_lossy does: each maximal invalid subsequence
// becomes one U+FFFD (decoding may cut a multi-byte character between tokens).
std::string utf8Lossy(const std::string &bytes)
{
    if (isValidUtf8(bytes))
        return bytes;
    std::string out;
    out.reserve(bytes.size() + 8);
    const auto *s = reinterpret_cast<const unsigned char *>(bytes.data());
    const size_t n = bytes.size();
    size_t i = 0;
    while (i < n) {
        const unsigned char c = s[i];
        if (c < 0x80) {
            out += char(c);
            ++i;
            continue;
        }
        size_t len = 0;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            lo = c == 0xE0 ? 0xA0 : 0x80;
            hi = c == 0xED ? 0x9F : 0xBF;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            lo = c == 0xF0 ? 0x90 : 0x80;
            hi = c == 0xF4 ? 0x8F : 0xBF;
        }
        if (len == 0) {
            out += "\xEF\xBF\xBD";
            ++i;
            continue;
        }
        size_t k = 1;
        while (k < len && i + k < n) {
            const unsigned char b = s[i + k];
            const bool ok = k == 1 ? (b >= lo && b <= hi) : (b & 0xC0) == 0x80;
            if (!ok)
                break;
            ++k;
        }
        if (k == len) {
            out.append(bytes, i, len);
        } else {
            out += "\xEF\xBF\xBD";
        }
        i += k;
    }
    return out;
}

std::string readFile(const std::string &path)
{
    std::ifstream f(path, std::ios::binary);
    if (!f)
        throw Error(path + ": cannot open file");
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// Nesting and size are bounded before parsing (json_limits.h).
json readTokenizerJsonFile(const std::string &path)
{
    return readJsonFileLimited(path, largeJsonFileLimits());
}

// Typed fields of tokenizer.json objects: a wrong type is an error naming the field, never
// nlohmann's "[json.exception.type_error.302] ..." without a file name.
std::string strField(const json &j, const char *key, const std::string &def, const std::string &where)
{
    if (!j.is_object())
        throw Error(where + ": must be an object (got " + jsonSnippet(j) + ")");
    auto it = j.find(key);
    if (it == j.end() || it->is_null())
        return def;
    if (!it->is_string())
        throw Error(where + "." + key + ": must be a string (got " + jsonSnippet(*it) + ")");
    return it->get<std::string>();
}

bool boolField(const json &j, const char *key, bool def, const std::string &where)
{
    if (!j.is_object())
        throw Error(where + ": must be an object (got " + jsonSnippet(j) + ")");
    auto it = j.find(key);
    if (it == j.end() || it->is_null())
        return def;
    if (!it->is_boolean())
        throw Error(where + "." + key + ": must be true or false (got " + jsonSnippet(*it) + ")");
    return it->get<bool>();
}

// A list field (missing or null: empty).
const json &listField(const json &j, const char *key, const std::string &where)
{
    static const json empty = json::array();
    if (!j.is_object())
        throw Error(where + ": must be an object (got " + jsonSnippet(j) + ")");
    auto it = j.find(key);
    if (it == j.end() || it->is_null())
        return empty;
    if (!it->is_array())
        throw Error(where + "." + key + ": must be a list (got " + jsonSnippet(*it) + ")");
    return *it;
}

// Sequence pre-tokenizers / normalizers / decoders / post-processors nested deeper than this are
// refused (real files nest 1 or 2); each level is two JSON levels, so the JSON limit bounds it too.
constexpr int kMaxSequenceDepth = 16;

[[noreturn]] void tooDeep(const std::string &where)
{
    throw Error(where + ": Sequence nested deeper than " + std::to_string(kMaxSequenceDepth) + " levels");
}

// A token id from tokenizer.json / vocab.json: an integer in [0, Tokenizer::kMaxTokenId).
int64_t tokenIdValue(const json &v, const std::string &where)
{
    if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX)))
        throw Error(where + ": token id must be an integer (got " + jsonSnippet(v) + ")");
    const int64_t id = v.get<int64_t>();
    if (id < 0 || id >= Tokenizer::kMaxTokenId)
        throw Error(where + ": token id " + std::to_string(id) + " is outside [0, "
            + std::to_string(Tokenizer::kMaxTokenId) + ")");
    return id;
}

// ---- PCRE2 ----

struct MatchScratch {
    pcre2_match_data *data = nullptr;
    pcre2_match_context *context = nullptr;
    pcre2_jit_stack *stack = nullptr;
    MatchScratch()
    {
        data = pcre2_match_data_create(1, nullptr);
        context = pcre2_match_context_create(nullptr);
        // Long whitespace runs against \s+(?!\S) need more than the default 32 KiB JIT stack.
        stack = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, nullptr);
        if (context && stack)
            pcre2_jit_stack_assign(context, nullptr, stack);
    }
    ~MatchScratch()
    {
        pcre2_match_data_free(data);
        pcre2_match_context_free(context);
        pcre2_jit_stack_free(stack);
    }
};

MatchScratch &scratch()
{
    thread_local MatchScratch s;
    return s;
}

class Regex {
public:
    Regex(const std::string &pattern, bool literal, const std::string &where)
    {
        int err = 0;
        PCRE2_SIZE errOffset = 0;
        uint32_t flags = PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK | (literal ? PCRE2_LITERAL : 0);
        m_code = pcre2_compile(
            reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), flags, &err, &errOffset, nullptr);
        if (!m_code) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(err, msg, sizeof(msg));
            throw Error(where + ": cannot compile regex at offset " + std::to_string(errOffset) + ": "
                + reinterpret_cast<char *>(msg));
        }
        pcre2_jit_compile(m_code, PCRE2_JIT_COMPLETE); // falls back to the interpreter when JIT is missing
    }
    ~Regex() { pcre2_code_free(m_code); }
    Regex(const Regex &) = delete;
    Regex &operator=(const Regex &) = delete;

    // Calls f(start, end) for each non-overlapping match in `s`, left to right.
    template <typename F> void forEachMatch(std::string_view s, F &&f) const
    {
        MatchScratch &m = scratch();
        size_t offset = 0;
        while (offset <= s.size()) {
            int rc = pcre2_match(m_code, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), offset, PCRE2_NO_UTF_CHECK,
                m.data, m.context);
            if (rc == PCRE2_ERROR_NOMATCH)
                return;
            if (rc < 0) {
                PCRE2_UCHAR msg[256];
                pcre2_get_error_message(rc, msg, sizeof(msg));
                throw Error(std::string("tokenizer regex failed: ") + reinterpret_cast<char *>(msg));
            }
            const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(m.data);
            const size_t start = ov[0], end = ov[1];
            if (end > start) {
                f(start, end);
                offset = end;
            } else { // empty match: step over one character
                if (start >= s.size())
                    return;
                size_t i = start;
                decodeAt(s, i);
                offset = i;
            }
        }
    }

private:
    pcre2_code *m_code = nullptr;
};

// ---- byte-level alphabet (GPT-2's bytes_to_unicode) ----

struct ByteAlphabet {
    std::string byteToText[256]; // UTF-8 of the printable stand-in of each byte
    int16_t charToByte[512]; // stand-in code point -> byte, -1 when not a stand-in
    ByteAlphabet()
    {
        std::fill(std::begin(charToByte), std::end(charToByte), int16_t(-1));
        int next = 0;
        for (int b = 0; b < 256; ++b) {
            const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
            const uint32_t cp = printable ? uint32_t(b) : uint32_t(256 + next++);
            appendUtf8(byteToText[b], cp);
            charToByte[cp] = int16_t(b);
        }
    }
};

const ByteAlphabet &alphabet()
{
    static const ByteAlphabet a;
    return a;
}

// Bytes of one token string through the ByteLevel decoder: every character a byte stand-in, or
// else the token's own UTF-8 (as tokenizers does for added tokens such as "<|endoftext|>").
void appendTokenBytes(const std::string &token, std::string &out)
{
    const ByteAlphabet &a = alphabet();
    const size_t mark = out.size();
    for (size_t i = 0; i < token.size();) {
        const uint32_t cp = decodeAt(token, i);
        if (cp >= 512 || a.charToByte[cp] < 0) {
            out.resize(mark);
            out += token;
            return;
        }
        out += char(a.charToByte[cp]);
    }
}

// ---- pre-tokenizer steps ----

enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

struct PreStep {
    enum Type { Split, ByteLevel } type = Split;
    std::shared_ptr<Regex> regex;
    SplitBehavior behavior = SplitBehavior::Isolated;
    bool invert = false;
    bool addPrefixSpace = false; // ByteLevel
};

// A piece of text being pre-tokenized: a view into the segment, or into owned storage when a
// prefix space was added.
using Pieces = std::vector<std::string_view>;

void applySplit(const PreStep &step, std::string_view piece, Pieces &out)
{
    struct Span {
        size_t start, end;
        bool match;
    };
    std::vector<Span> spans;
    size_t last = 0;
    step.regex->forEachMatch(piece, [&](size_t s, size_t e) {
        if (s > last)
            spans.push_back({ last, s, false });
        spans.push_back({ s, e, true });
        last = e;
    });
    if (last < piece.size())
        spans.push_back({ last, piece.size(), false });
    if (step.invert)
        for (auto &sp : spans)
            sp.match = !sp.match;

    auto emit = [&](size_t s, size_t e) {
        if (e > s)
            out.push_back(piece.substr(s, e - s));
    };
    switch (step.behavior) {
    case SplitBehavior::Removed:
        for (const auto &sp : spans)
            if (!sp.match)
                emit(sp.start, sp.end);
        break;
    case SplitBehavior::Isolated:
        for (const auto &sp : spans)
            emit(sp.start, sp.end);
        break;
    case SplitBehavior::Contiguous: {
        size_t i = 0;
        while (i < spans.size()) {
            size_t j = i + 1;
            if (spans[i].match)
                while (j < spans.size() && spans[j].match)
                    ++j;
            emit(spans[i].start, spans[j - 1].end);
            i = j;
        }
        break;
    }
    case SplitBehavior::MergedWithPrevious: {
        size_t start = 0;
        for (const auto &sp : spans)
            if (sp.match) {
                emit(start, sp.end);
                start = sp.end;
            }
        emit(start, piece.size());
        break;
    }
    case SplitBehavior::MergedWithNext: {
        size_t start = 0;
        for (const auto &sp : spans)
            if (sp.match) {
                emit(start, sp.start);
                start = sp.start;
            }
        emit(start, piece.size());
        break;
    }
    }
}

SplitBehavior parseBehavior(const json &j, const std::string &where)
{
    const std::string b = j.is_string() ? j.get<std::string>() : "";
    if (b == "Removed")
        return SplitBehavior::Removed;
    if (b == "Isolated")
        return SplitBehavior::Isolated;
    if (b == "MergedWithPrevious")
        return SplitBehavior::MergedWithPrevious;
    if (b == "MergedWithNext")
        return SplitBehavior::MergedWithNext;
    if (b == "Contiguous")
        return SplitBehavior::Contiguous;
    throw Error(where + ".behavior: unsupported value '" + b + "'");
}

} // namespace

// ---- the tokenizer state ----

struct BpeTokenizer::Impl {
    std::string source; // file named in errors

    std::unordered_map<std::string, int32_t> vocab;
    std::vector<std::string> idToToken; // model vocabulary and added tokens
    // (left id << 32 | right id) -> (rank, merged id)
    std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges;
    int32_t byteId[256];
    int32_t unkId = -1;
    bool ignoreMerges = false;

    bool nfc = false;
    std::vector<PreStep> steps;

    // Added-token matching flags from tokenizer.json (the base class keeps content, id, special).
    struct AddedFlags {
        bool lstrip = false; // the match swallows whitespace on its left
        bool rstrip = false; // ... and on its right
        bool singleWord = false; // matches only when not inside a word
    };
    std::unordered_map<std::string, AddedFlags> addedFlags;
    // Index into m_addedTokens by first byte, longest first: the split that runs before anything else.
    std::vector<int> addedByFirstByte[256];
    std::unordered_map<int64_t, int> addedById; // id -> index into m_addedTokens
    // The BOS a TemplateProcessing post-processor adds (-1 when none).
    int64_t postProcessorBos = -1;

    mutable std::shared_mutex cacheMutex;
    mutable std::unordered_map<std::string, std::vector<int32_t>> cache;
    static constexpr size_t kCacheCapacity = 200000;
    static constexpr size_t kCacheMaxWordBytes = 128;

    std::shared_ptr<Regex> gpt2Regex()
    {
        static std::shared_ptr<Regex> r = std::make_shared<Regex>(kGpt2Pattern, false, "GPT-2 pre-tokenizer");
        return r;
    }

    int32_t idOf(const std::string &token) const
    {
        auto it = vocab.find(token);
        return it == vocab.end() ? -1 : it->second;
    }

    void setVocab(const json &v, const std::string &where)
    {
        if (!v.is_object())
            throw Error(where + ": vocab must be an object of token -> id");
        vocab.reserve(v.size());
        // Ids are dense in real vocabularies; allowing twice the entry count (plus slack) keeps the
        // id -> token table proportional to the file: a 36 KB file must not size a table of 1e8.
        const int64_t maxId = std::min<int64_t>(Tokenizer::kMaxTokenId, 2 * int64_t(v.size()) + 1024);
        for (auto it = v.begin(); it != v.end(); ++it) {
            const std::string entry = where + ": vocab entry '" + it.key().substr(0, 80) + "'";
            const int64_t id64 = tokenIdValue(it.value(), entry);
            if (id64 >= maxId)
                throw Error(entry + ": id " + std::to_string(id64) + " does not fit a vocabulary of "
                    + std::to_string(v.size()) + " entries (ids must be below " + std::to_string(maxId) + ")");
            const int32_t id = int32_t(id64);
            vocab[it.key()] = id;
            if (size_t(id) >= idToToken.size())
                idToToken.resize(size_t(id) + 1);
            idToToken[size_t(id)] = it.key();
        }
        const ByteAlphabet &a = alphabet();
        for (int b = 0; b < 256; ++b)
            byteId[b] = idOf(a.byteToText[b]);
    }

    void addMerge(const std::string &left, const std::string &right, int32_t rank, const std::string &where)
    {
        const int32_t l = idOf(left), r = idOf(right), m = idOf(left + right);
        if (l < 0 || r < 0 || m < 0)
            throw Error(where + ": merge '" + left + " " + right + "' (rank " + std::to_string(rank)
                + ") uses a token missing from the vocabulary");
        merges.emplace((uint64_t(uint32_t(l)) << 32) | uint32_t(r), std::make_pair(rank, m));
    }

    const std::pair<int32_t, int32_t> *findMerge(int32_t l, int32_t r) const
    {
        auto it = merges.find((uint64_t(uint32_t(l)) << 32) | uint32_t(r));
        return it == merges.end() ? nullptr : &it->second;
    }

    // BPE of one pre-tokenized word (raw bytes), appending ids.
    void bpeWord(std::string_view word, std::vector<int64_t> &out) const
    {
        if (word.size() == 1) { // punctuation, single spaces: no merge possible
            const int32_t id = byteId[static_cast<unsigned char>(word[0])];
            if (id >= 0)
                out.push_back(id);
            else if (unkId >= 0)
                out.push_back(unkId);
            return;
        }
        const bool cacheable = word.size() <= kCacheMaxWordBytes;
        std::string key;
        if (cacheable) {
            key.assign(word);
            std::shared_lock lock(cacheMutex);
            auto it = cache.find(key);
            if (it != cache.end()) {
                out.insert(out.end(), it->second.begin(), it->second.end());
                return;
            }
        }
        std::vector<int32_t> ids;
        mergeWord(word, ids);
        out.insert(out.end(), ids.begin(), ids.end());
        if (cacheable) {
            std::unique_lock lock(cacheMutex);
            if (cache.size() < kCacheCapacity)
                cache.emplace(std::move(key), std::move(ids));
        }
    }

    void mergeWord(std::string_view word, std::vector<int32_t> &ids) const
    {
        const ByteAlphabet &a = alphabet();
        if (ignoreMerges) { // Llama 3: a word that is itself a token is taken whole
            std::string mapped;
            for (unsigned char c : word)
                mapped += a.byteToText[c];
            const int32_t id = idOf(mapped);
            if (id >= 0) {
                ids.push_back(id);
                return;
            }
        }
        struct Symbol {
            int32_t id;
            int32_t prev, next;
            bool alive;
        };
        std::vector<Symbol> sym;
        sym.reserve(word.size());
        for (unsigned char c : word) {
            int32_t id = byteId[c];
            if (id < 0) {
                if (unkId < 0)
                    continue; // tokenizers drops characters it cannot map when there is no unk token
                id = unkId;
            }
            const int32_t n = int32_t(sym.size());
            sym.push_back({ id, n - 1, n + 1, true });
        }
        if (sym.empty())
            return;
        sym.back().next = -1;

        struct Candidate {
            int32_t rank, pos, merged;
            bool operator<(const Candidate &o) const // min-heap on (rank, pos)
            {
                return rank != o.rank ? rank > o.rank : pos > o.pos;
            }
        };
        std::priority_queue<Candidate> heap;
        for (int32_t i = 0; i + 1 < int32_t(sym.size()); ++i)
            if (auto *m = findMerge(sym[i].id, sym[i + 1].id))
                heap.push({ m->first, i, m->second });
        while (!heap.empty()) {
            const Candidate c = heap.top();
            heap.pop();
            Symbol &left = sym[size_t(c.pos)];
            if (!left.alive || left.next < 0)
                continue;
            Symbol &right = sym[size_t(left.next)];
            const auto *m = findMerge(left.id, right.id);
            if (!m || m->second != c.merged)
                continue; // stale: a neighbour merged since this pair was queued
            left.id = c.merged;
            right.alive = false;
            left.next = right.next;
            if (right.next >= 0)
                sym[size_t(right.next)].prev = c.pos;
            if (left.prev >= 0)
                if (auto *pm = findMerge(sym[size_t(left.prev)].id, left.id))
                    heap.push({ pm->first, left.prev, pm->second });
            if (left.next >= 0)
                if (auto *nm = findMerge(left.id, sym[size_t(left.next)].id))
                    heap.push({ nm->first, c.pos, nm->second });
        }
        for (int32_t i = 0; i >= 0; i = sym[size_t(i)].next)
            ids.push_back(sym[size_t(i)].id);
    }
};

// ---- construction ----

BpeTokenizer::BpeTokenizer()
    : d(std::make_unique<Impl>())
{
}
BpeTokenizer::~BpeTokenizer() = default;

std::unique_ptr<BpeTokenizer> BpeTokenizer::fromDirectory(const std::string &dir)
{
    std::unique_ptr<BpeTokenizer> t;
    const fs::path p(dir);
    if (fs::exists(p / "tokenizer.json"))
        t = fromTokenizerJson((p / "tokenizer.json").string());
    else if (fs::exists(p / "vocab.json") && fs::exists(p / "merges.txt"))
        t = fromVocabMerges((p / "vocab.json").string(), (p / "merges.txt").string());
    else
        throw Error(dir + ": no tokenizer.json and no vocab.json + merges.txt");
    SpecialIds fallback;
    fallback.bos = t->d->postProcessorBos;
    t->applyTokenizerConfig(dir, /*defaultAddBos=*/t->d->postProcessorBos >= 0, fallback);
    t->rebuildAddedIndex();
    return t;
}

namespace {

void parsePreTokenizer(const json &j, const std::string &where, std::vector<PreStep> &steps,
    const std::function<std::shared_ptr<Regex>()> &gpt2, int depth = 0)
{
    if (j.is_null())
        return;
    if (depth > kMaxSequenceDepth)
        tooDeep(where);
    const std::string type = strField(j, "type", "", where);
    if (type == "Sequence") {
        const json &list = listField(j, "pretokenizers", where);
        for (size_t i = 0; i < list.size(); ++i)
            parsePreTokenizer(list[i], where + ".pretokenizers[" + std::to_string(i) + "]", steps, gpt2, depth + 1);
    } else if (type == "ByteLevel") {
        PreStep s;
        s.type = PreStep::ByteLevel;
        s.addPrefixSpace = boolField(j, "add_prefix_space", false, where);
        if (boolField(j, "use_regex", true, where))
            s.regex = gpt2();
        steps.push_back(std::move(s));
    } else if (type == "Split") {
        PreStep s;
        static const json noPattern = json::object();
        const json &pat = j.contains("pattern") && j["pattern"].is_object() ? j["pattern"] : noPattern;
        if (pat.contains("Regex") && pat["Regex"].is_string())
            s.regex = std::make_shared<Regex>(pat["Regex"].get<std::string>(), false, where + ".pattern.Regex");
        else if (pat.contains("String") && pat["String"].is_string())
            s.regex = std::make_shared<Regex>(pat["String"].get<std::string>(), true, where + ".pattern.String");
        else
            throw Error(where + ".pattern: expected {\"Regex\": ...} or {\"String\": ...}");
        s.behavior = parseBehavior(j.contains("behavior") ? j["behavior"] : json(), where);
        s.invert = boolField(j, "invert", false, where);
        steps.push_back(std::move(s));
    } else if (type == "Digits") {
        PreStep s;
        s.regex = std::make_shared<Regex>(
            boolField(j, "individual_digits", false, where) ? "\\p{N}" : "\\p{N}+", false, where);
        s.behavior = SplitBehavior::Isolated;
        steps.push_back(std::move(s));
    } else {
        throw Error(where + ".type: unsupported pre-tokenizer '" + type.substr(0, 80)
            + "' (byte-level BPE supports Sequence, "
              "Split, ByteLevel, Digits)");
    }
}

bool parseNormalizer(const json &j, const std::string &where, int depth = 0)
{
    if (j.is_null())
        return false;
    if (depth > kMaxSequenceDepth)
        tooDeep(where);
    const std::string type = strField(j, "type", "", where);
    if (type == "NFC")
        return true;
    if (type == "Sequence") {
        bool nfc = false;
        const json &list = listField(j, "normalizers", where);
        for (size_t i = 0; i < list.size(); ++i)
            nfc = parseNormalizer(list[i], where + ".normalizers[" + std::to_string(i) + "]", depth + 1) || nfc;
        return nfc;
    }
    throw Error(where + ".type: unsupported normalizer '" + type.substr(0, 80) + "' (byte-level BPE supports NFC)");
}

// `where` is built only for the error: no location string per level.
bool hasByteLevel(const json &j, const std::string &where, int depth = 0)
{
    if (!j.is_object())
        return false;
    if (depth > kMaxSequenceDepth)
        tooDeep(where);
    auto type = j.find("type");
    if (type != j.end() && type->is_string() && type->get_ref<const std::string &>() == "ByteLevel")
        return true;
    for (const char *key : { "decoders", "pretokenizers", "processors" })
        if (j.contains(key) && j[key].is_array())
            for (const auto &sub : j[key])
                if (hasByteLevel(sub, where, depth + 1))
                    return true;
    return false;
}

} // namespace

std::unique_ptr<BpeTokenizer> BpeTokenizer::fromTokenizerJson(const std::string &path)
try {
    std::unique_ptr<BpeTokenizer> t(new BpeTokenizer());
    Impl &d = *t->d;
    d.source = path;
    const json j = readTokenizerJsonFile(path);
    if (!j.is_object() || !j.contains("model") || !j["model"].is_object())
        throw Error(path + ": no \"model\" object");
    const json &model = j["model"];
    const std::string type = strField(model, "type", "BPE", path + ": model");
    if (type != "BPE")
        throw Error(path + ": model.type '" + type.substr(0, 80) + "' is not supported (only byte-level BPE)");
    const json none;
    const json &decoder = j.contains("decoder") ? j["decoder"] : none;
    const json &preTokenizer = j.contains("pre_tokenizer") ? j["pre_tokenizer"] : none;
    if (!hasByteLevel(decoder, path + ": decoder") || !hasByteLevel(preTokenizer, path + ": pre_tokenizer"))
        throw Error(path
            + ": pre_tokenizer/decoder is not ByteLevel; only byte-level BPE tokenizer.json files are "
              "supported (sentencepiece-style models need tokenizer.model)");
    if (model.contains("dropout") && !model["dropout"].is_null()) {
        if (!model["dropout"].is_number())
            throw Error(path + ": model.dropout must be a number or null (got " + jsonSnippet(model["dropout"]) + ")");
        if (model["dropout"].get<double>() > 0)
            throw Error(path + ": model.dropout (BPE dropout) is not supported");
    }
    for (const char *key : { "continuing_subword_prefix", "end_of_word_suffix" })
        if (model.contains(key) && model[key].is_string() && !model[key].get<std::string>().empty())
            throw Error(path + ": model." + key + " is not supported for byte-level BPE");

    d.setVocab(model.contains("vocab") ? model["vocab"] : none, path + ": model.vocab");
    const json &merges = listField(model, "merges", path + ": model");
    for (size_t i = 0; i < merges.size(); ++i) {
        const json &m = merges[i];
        std::string left, right;
        if (m.is_string()) {
            const std::string s = m.get<std::string>();
            const size_t sp = s.find(' ', 1);
            if (sp == std::string::npos)
                throw Error(path + ": model.merges[" + std::to_string(i) + "] is not \"a b\"");
            left = s.substr(0, sp);
            right = s.substr(sp + 1);
        } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
            left = m[0].get<std::string>();
            right = m[1].get<std::string>();
        } else {
            throw Error(path + ": model.merges[" + std::to_string(i) + "] is neither \"a b\" nor [a, b]");
        }
        d.addMerge(left, right, int32_t(i), path + ": model.merges[" + std::to_string(i) + "]");
    }
    d.ignoreMerges = boolField(model, "ignore_merges", false, path + ": model");
    if (model.contains("unk_token") && model["unk_token"].is_string())
        d.unkId = d.idOf(model["unk_token"].get<std::string>());

    d.nfc = parseNormalizer(j.contains("normalizer") ? j["normalizer"] : none, path + ": normalizer");
    parsePreTokenizer(preTokenizer, path + ": pre_tokenizer", d.steps, [&d] { return d.gpt2Regex(); });

    const json &added = listField(j, "added_tokens", path);
    for (size_t i = 0; i < added.size(); ++i) {
        const json &a = added[i];
        if (!a.is_object() || !a.contains("content") || !a.contains("id"))
            throw Error(path + ": added_tokens[" + std::to_string(i) + "] needs content and id");
        const std::string at = path + ": added_tokens[" + std::to_string(i) + "]";
        const std::string content = a["content"].is_string() ? a["content"].get<std::string>() : std::string();
        if (content.empty())
            throw Error(at + " needs a non-empty content and an id >= 0");
        const int64_t id = tokenIdValue(a["id"], at + ".id");
        requireUtf8(content, at);
        t->addAddedToken(content, id, boolField(a, "special", false, at));
        Impl::AddedFlags f;
        f.lstrip = boolField(a, "lstrip", false, at);
        f.rstrip = boolField(a, "rstrip", false, at);
        f.singleWord = boolField(a, "single_word", false, at);
        d.addedFlags[content] = f;
    }

    // TemplateProcessing (Llama 3: single = [<|begin_of_text|>, $A]) decides what
    // add_special_tokens=True adds.
    const std::string postWhere = path + ": post_processor";
    std::function<void(const json &, int)> post = [&](const json &p, int depth) {
        if (!p.is_object())
            return;
        if (depth > kMaxSequenceDepth)
            tooDeep(postWhere);
        const std::string ptype = strField(p, "type", "", postWhere);
        if (ptype == "Sequence") {
            for (const auto &sub : listField(p, "processors", postWhere))
                post(sub, depth + 1);
            return;
        }
        if (ptype != "TemplateProcessing")
            return;
        bool seenSequence = false;
        for (const auto &item : listField(p, "single", postWhere)) {
            if (item.contains("Sequence")) {
                seenSequence = true;
                continue;
            }
            if (!item.contains("SpecialToken"))
                continue;
            const std::string name = strField(item["SpecialToken"], "id", "", postWhere + ".single.SpecialToken");
            int64_t id = t->tokenToId(name);
            const json &sp = p.contains("special_tokens") && p["special_tokens"].is_object()
                ? p["special_tokens"]
                : none;
            if (sp.is_object() && sp.contains(name) && sp[name].is_object() && sp[name].contains("ids")
                && sp[name]["ids"].is_array() && !sp[name]["ids"].empty())
                id = tokenIdValue(sp[name]["ids"][0], postWhere + ".special_tokens." + name.substr(0, 80) + ".ids[0]");
            if (id < 0)
                throw Error(path + ": post_processor names unknown special token '" + name.substr(0, 80) + "'");
            if (seenSequence)
                throw Error(path + ": post_processor appends '" + name
                    + "' after the text; post-processors that "
                      "add tokens after the text are not supported");
            d.postProcessorBos = id;
        }
    };
    post(j.contains("post_processor") ? j["post_processor"] : none, 0);
    if (d.postProcessorBos >= 0) {
        t->m_addBos = true;
        t->m_bosId = d.postProcessorBos;
    }
    t->rebuildAddedIndex();
    return t;
} catch (const json::exception &e) { // a shape the checks above missed: still name the file
    throw Error(path + ": unexpected content: " + jsonErrorMessage(e));
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::fromVocabMerges(const std::string &vocabPath, const std::string &mergesPath)
{
    std::unique_ptr<BpeTokenizer> t(new BpeTokenizer());
    Impl &d = *t->d;
    d.source = vocabPath;
    d.setVocab(readTokenizerJsonFile(vocabPath), vocabPath);
    std::istringstream in(readFile(mergesPath));
    std::string line;
    int lineNo = 0;
    int32_t rank = 0;
    while (std::getline(in, line)) {
        ++lineNo;
        if (!line.empty() && line.back() == '\r')
            line.pop_back();
        if (line.empty() || (lineNo == 1 && line.rfind("#version", 0) == 0))
            continue;
        const size_t sp = line.find(' ', 1);
        if (sp == std::string::npos || line.find(' ', sp + 1) != std::string::npos)
            throw Error(mergesPath + ":" + std::to_string(lineNo) + ": expected two tokens separated by a space");
        d.addMerge(line.substr(0, sp), line.substr(sp + 1), rank++, mergesPath + ":" + std::to_string(lineNo));
    }
    PreStep s;
    s.type = PreStep::ByteLevel;
    s.regex = d.gpt2Regex();
    d.steps.push_back(std::move(s));
    t->rebuildAddedIndex();
    return t;
}

void BpeTokenizer::rebuildAddedIndex()
{
    for (auto &bucket : d->addedByFirstByte)
        bucket.clear();
    d->addedById.clear();
    for (size_t i = 0; i < m_addedTokens.size(); ++i) {
        const AddedToken &t = m_addedTokens[i];
        d->addedById[t.id] = int(i);
        d->addedByFirstByte[static_cast<unsigned char>(t.content[0])].push_back(int(i));
    }
    for (auto &bucket : d->addedByFirstByte)
        std::stable_sort(bucket.begin(), bucket.end(), [this](int a, int b) {
            return m_addedTokens[size_t(a)].content.size() > m_addedTokens[size_t(b)].content.size();
        });
}

// ---- encode / decode ----

void BpeTokenizer::encodeSegment(std::string_view text, std::vector<int64_t> &out) const
{
    if (text.empty())
        return;
    std::string normalized;
    if (d->nfc && !isQuickNfc(text)) {
        normalized = toNfc(text);
        text = normalized;
    }
    // Pieces point into `text` or into `owned` (pieces that got a prefix space).
    std::deque<std::string> owned;
    Pieces pieces { text }, next;
    for (const PreStep &step : d->steps) {
        next.clear();
        if (step.type == PreStep::Split) {
            for (std::string_view p : pieces)
                applySplit(step, p, next);
        } else {
            if (step.addPrefixSpace) {
                for (auto &p : pieces)
                    if (p.empty() || p[0] != ' ') {
                        owned.push_back(" " + std::string(p));
                        p = owned.back();
                    }
            }
            if (!step.regex) {
                next = pieces;
            } else {
                for (std::string_view p : pieces)
                    step.regex->forEachMatch(p, [&](size_t s, size_t e) { next.push_back(p.substr(s, e - s)); });
            }
        }
        pieces.swap(next);
    }
    for (std::string_view word : pieces)
        d->bpeWord(word, out);
}

std::vector<int64_t> BpeTokenizer::encode(const std::string &text) const
{
    requireUtf8(text, "text to tokenize");
    std::vector<int64_t> out;
    out.reserve(text.size() / 3 + 4);
    const std::string_view s(text);
    size_t segStart = 0; // start of the text not yet encoded
    size_t i = 0;
    while (i < s.size()) {
        const auto &bucket = d->addedByFirstByte[static_cast<unsigned char>(s[i])];
        const AddedToken *hit = nullptr;
        Impl::AddedFlags flags;
        for (int idx : bucket) {
            const AddedToken &a = m_addedTokens[size_t(idx)];
            if (s.compare(i, a.content.size(), a.content) != 0)
                continue;
            auto f = d->addedFlags.find(a.content);
            flags = f == d->addedFlags.end() ? Impl::AddedFlags() : f->second;
            if (flags.singleWord) {
                size_t before = 0;
                const size_t end = i + a.content.size();
                size_t after = end;
                if ((i > 0 && isWordChar(decodeBefore(s, i, before)))
                    || (end < s.size() && isWordChar(decodeAt(s, after))))
                    continue;
            }
            hit = &a;
            break;
        }
        if (!hit) {
            ++i;
            continue;
        }
        size_t start = i, end = i + hit->content.size();
        if (flags.lstrip)
            while (start > segStart) {
                size_t prev = 0;
                if (!isWhitespace(decodeBefore(s, start, prev)))
                    break;
                start = prev;
            }
        if (flags.rstrip)
            while (end < s.size()) {
                size_t nextPos = end;
                if (!isWhitespace(decodeAt(s, nextPos)))
                    break;
                end = nextPos;
            }
        encodeSegment(s.substr(segStart, start - segStart), out);
        out.push_back(hit->id);
        segStart = i = end;
    }
    encodeSegment(s.substr(segStart), out);
    return out;
}

std::string BpeTokenizer::decode(const std::vector<int64_t> &ids, bool skipSpecial) const
{
    std::string bytes;
    bytes.reserve(ids.size() * 4);
    for (int64_t id : ids) {
        if (skipSpecial && isSpecialId(id))
            continue;
        // Added tokens go through the ByteLevel decoder too, as in tokenizers (ASCII ones map to
        // themselves, others fall back to their own UTF-8).
        appendTokenBytes(idToToken(id), bytes);
    }
    return utf8Lossy(bytes);
}

int64_t BpeTokenizer::vocabSize() const
{
    return std::max<int64_t>(int64_t(d->idToToken.size()), addedTokensEnd());
}

int64_t BpeTokenizer::tokenToId(const std::string &token) const
{
    const int64_t added = addedTokenId(token);
    return added >= 0 ? added : d->idOf(token);
}

std::string BpeTokenizer::idToToken(int64_t id) const
{
    auto a = d->addedById.find(id);
    if (a != d->addedById.end())
        return m_addedTokens[size_t(a->second)].content;
    if (id >= 0 && size_t(id) < d->idToToken.size() && !d->idToToken[size_t(id)].empty())
        return d->idToToken[size_t(id)];
    if (const AddedToken *t = addedToken(id)) // registered after the index was built
        return t->content;
    throw Error("token id " + std::to_string(id) + " is outside the vocabulary of " + d->source);
}

} // namespace dpo
