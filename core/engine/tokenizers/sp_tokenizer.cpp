#include "engine/tokenizers/sp_tokenizer.h"

#include "engine/error.h"
#include "engine/tokenizers/sp_shim.h"
#include "engine/tokenizers/utf8.h"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>

// Sanitizer runtimes abort on RTLD_DEEPBIND (trap 2), so sanitized builds open the shim without it.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define DPO_SHIM_NO_DEEPBIND 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define DPO_SHIM_NO_DEEPBIND 1
#endif
#endif

namespace dpo {

namespace fs = std::filesystem;

namespace {

constexpr const char *kShimName = "libdpo_spm_shim.so";

struct ShimApi {
    std::string path;
    dpo_spm_load_fn load = nullptr;
    dpo_spm_free_fn free = nullptr;
    dpo_spm_encode_fn encode = nullptr;
    dpo_spm_decode_fn decode = nullptr;
    dpo_spm_vocab_size_fn vocabSize = nullptr;
    dpo_spm_id_to_piece_fn idToPiece = nullptr;
    dpo_spm_piece_to_id_fn pieceToId = nullptr;
    dpo_spm_special_id_fn bosId = nullptr;
    dpo_spm_special_id_fn eosId = nullptr;
    dpo_spm_special_id_fn unkId = nullptr;
    dpo_spm_special_id_fn padId = nullptr;
    dpo_spm_is_control_fn isControl = nullptr;
};

// sentencepiece's status strings end in a space; keep one-line messages tidy.
std::string trimmed(const char *s)
{
    std::string t(s);
    while (!t.empty() && (t.back() == ' ' || t.back() == '\n'))
        t.pop_back();
    return t;
}

std::string executableDir()
{
    std::error_code ec;
    fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    return ec ? std::string() : exe.parent_path().string();
}

// Opens one candidate; returns an empty string on success, else why it failed.
std::string tryOpen(const std::string &path, ShimApi &api)
{
    int flags = RTLD_NOW | RTLD_LOCAL;
#ifndef DPO_SHIM_NO_DEEPBIND
    // The shim's own dependencies (sentencepiece's bundled protobuf) must win over libtorch's.
    flags |= RTLD_DEEPBIND;
#endif
    void *h = dlopen(path.c_str(), flags);
    if (!h) {
        const char *e = dlerror();
        return e ? e : "dlopen failed";
    }
    std::string missing;
    auto sym = [&](auto &fn, const char *name) {
        fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(h, name));
        if (!fn)
            missing += std::string(missing.empty() ? "" : ", ") + name;
    };
    sym(api.load, "dpo_spm_load");
    sym(api.free, "dpo_spm_free");
    sym(api.encode, "dpo_spm_encode");
    sym(api.decode, "dpo_spm_decode");
    sym(api.vocabSize, "dpo_spm_vocab_size");
    sym(api.idToPiece, "dpo_spm_id_to_piece");
    sym(api.pieceToId, "dpo_spm_piece_to_id");
    sym(api.bosId, "dpo_spm_bos_id");
    sym(api.eosId, "dpo_spm_eos_id");
    sym(api.unkId, "dpo_spm_unk_id");
    sym(api.padId, "dpo_spm_pad_id");
    sym(api.isControl, "dpo_spm_is_control");
    if (!missing.empty()) {
        dlclose(h);
        return path + " lacks " + missing + " (a stale build of the shim?)";
    }
    api.path = path; // never dlclose'd: processors may live until exit
    return {};
}

ShimApi openShim()
{
    ShimApi api;
    if (const char *env = std::getenv("DPO_SPM_SHIM"); env && *env) {
        std::string why = tryOpen(env, api);
        if (!why.empty())
            throw Error("cannot load the sentencepiece shim named by DPO_SPM_SHIM=" + std::string(env) + ": " + why);
        return api;
    }
    std::vector<std::string> candidates;
    const std::string exeDir = executableDir();
    if (!exeDir.empty()) {
        candidates.push_back(exeDir + "/" + kShimName);
        candidates.push_back(exeDir + "/../lib/dpo-studio/" + kShimName); // relocated install
    }
#ifdef DPO_SPM_SHIM_BUILD_PATH
    candidates.push_back(DPO_SPM_SHIM_BUILD_PATH);
#endif
#ifdef DPO_SPM_SHIM_INSTALL_PATH
    candidates.push_back(DPO_SPM_SHIM_INSTALL_PATH);
#endif
    std::string failures;
    for (const auto &c : candidates) {
        std::error_code ec;
        if (!fs::exists(c, ec))
            continue;
        std::string why = tryOpen(c, api);
        if (why.empty())
            return api;
        failures += "; " + c + ": " + why;
    }
    std::string looked;
    for (const auto &c : candidates)
        looked += (looked.empty() ? "" : ", ") + c;
    throw Error(std::string("sentencepiece shim ") + kShimName + " not found or not loadable (looked in " + looked
        + failures + "; set DPO_SPM_SHIM to its path)");
}

const ShimApi &shim()
{
    static std::once_flag once;
    static ShimApi api;
    static std::string error;
    std::call_once(once, [] {
        try {
            api = openShim();
        } catch (const Error &e) {
            error = e.what();
        }
    });
    if (!error.empty())
        throw Error(error);
    return api;
}

} // namespace

std::string sentencePieceShimPath()
{
    return shim().path;
}

struct SentencePieceTokenizer::Impl {
    const ShimApi *api = nullptr;
    void *proc = nullptr;
    int64_t spUnkId = -1;
    std::vector<bool> control; // per piece: CONTROL type (bos/eos/pad in most models)

    ~Impl()
    {
        if (proc)
            api->free(proc);
    }
    std::string piece(int64_t id) const
    {
        std::string s(32, '\0');
        long n = api->idToPiece(proc, static_cast<int>(id), s.data(), static_cast<long>(s.size()));
        if (n > static_cast<long>(s.size())) {
            s.resize(static_cast<size_t>(n));
            n = api->idToPiece(proc, static_cast<int>(id), s.data(), n);
        }
        s.resize(static_cast<size_t>(std::max(0L, n)));
        return s;
    }
};

SentencePieceTokenizer::SentencePieceTokenizer(const std::string &dir)
    : m_impl(std::make_unique<Impl>())
    , m_modelPath((fs::path(dir) / "tokenizer.model").string())
{
    std::error_code ec;
    if (!fs::is_regular_file(m_modelPath, ec))
        throw Error(m_modelPath + ": not found");
    const ShimApi &api = shim();
    m_impl->api = &api;
    char err[1024] = { 0 };
    m_impl->proc = api.load(m_modelPath.c_str(), err, sizeof err);
    if (!m_impl->proc)
        throw Error(m_modelPath + ": not a valid sentencepiece model (" + trimmed(err) + ")");
    m_pieceCount = api.vocabSize(m_impl->proc);
    if (m_pieceCount <= 0)
        throw Error(m_modelPath + ": the sentencepiece model has no pieces");
    m_impl->control.resize(static_cast<size_t>(m_pieceCount));
    for (int64_t i = 0; i < m_pieceCount; ++i)
        m_impl->control[static_cast<size_t>(i)] = api.isControl(m_impl->proc, static_cast<int>(i)) != 0;
    m_impl->spUnkId = api.unkId(m_impl->proc);

    SpecialIds own;
    own.bos = api.bosId(m_impl->proc);
    own.eos = api.eosId(m_impl->proc);
    own.pad = api.padId(m_impl->proc);
    own.unk = m_impl->spUnkId;
    // LlamaTokenizer's defaults: BOS added, EOS not.
    applyTokenizerConfig(dir, /*defaultAddBos=*/true, own);
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::vector<int64_t> SentencePieceTokenizer::encode(const std::string &text) const
{
    requireUtf8(text, "text to tokenize");
    std::vector<int64_t> ids;
    std::vector<int32_t> buf;
    char err[512];
    for (const Segment &seg : splitOnAddedTokens(text)) {
        if (seg.id >= 0) {
            ids.push_back(seg.id);
            continue;
        }
        if (seg.text.empty())
            continue;
        // One id per byte (byte fallback) plus the dummy prefix is the usual worst case.
        buf.resize(seg.text.size() + 8);
        long n = 0;
        for (int attempt = 0; attempt < 2; ++attempt) {
            err[0] = '\0';
            n = m_impl->api->encode(m_impl->proc, seg.text.data(), seg.text.size(), buf.data(),
                static_cast<long>(buf.size()), err, sizeof err);
            if (n < 0)
                throw Error(m_modelPath + ": sentencepiece could not encode the text (" + trimmed(err) + ")");
            if (n <= static_cast<long>(buf.size()))
                break;
            buf.resize(static_cast<size_t>(n));
        }
        ids.insert(ids.end(), buf.begin(), buf.begin() + n);
    }
    return ids;
}

std::string SentencePieceTokenizer::decode(const std::vector<int64_t> &ids, bool skipSpecial) const
{
    const int64_t vocab = vocabSize();
    std::string out;
    std::vector<int32_t> run; // ordinary pieces decoded together, so byte-fallback bytes rejoin
    auto flush = [&] {
        if (run.empty())
            return;
        std::string text(run.size() * 4 + 16, '\0');
        long n = m_impl->api->decode(
            m_impl->proc, run.data(), static_cast<long>(run.size()), text.data(), static_cast<long>(text.size()));
        if (n > static_cast<long>(text.size())) {
            text.resize(static_cast<size_t>(n));
            n = m_impl->api->decode(m_impl->proc, run.data(), static_cast<long>(run.size()), text.data(), n);
        }
        if (n < 0)
            throw Error(m_modelPath + ": sentencepiece could not decode the ids");
        out.append(text.data(), static_cast<size_t>(n));
        run.clear();
    };
    for (int64_t id : ids) {
        if (id < 0 || id >= vocab)
            throw Error("token id " + std::to_string(id) + " is outside the tokenizer's vocabulary (size "
                + std::to_string(vocab) + ", " + m_modelPath + ")");
        if (id >= m_pieceCount) {
            const AddedToken *t = addedToken(id);
            if (!t)
                throw Error(
                    "token id " + std::to_string(id) + " is not defined by " + m_modelPath + " or its added tokens");
            if (skipSpecial && (t->special || isSpecialId(id)))
                continue;
            flush();
            out += t->content;
            continue;
        }
        const bool special = isSpecialId(id) || m_impl->control[static_cast<size_t>(id)];
        if (special) {
            if (skipSpecial)
                continue;
            flush();
            out += m_impl->piece(id);
            continue;
        }
        run.push_back(static_cast<int32_t>(id));
    }
    flush();
    return out;
}

int64_t SentencePieceTokenizer::vocabSize() const
{
    return std::max(m_pieceCount, addedTokensEnd());
}

int64_t SentencePieceTokenizer::tokenToId(const std::string &token) const
{
    if (int64_t id = addedTokenId(token); id >= 0)
        return id;
    const int id = m_impl->api->pieceToId(m_impl->proc, token.data(), token.size());
    if (id < 0)
        return -1;
    // sentencepiece answers unk_id for unknown pieces: only "<unk>" itself maps there.
    if (id == m_impl->spUnkId && m_impl->piece(id) != token)
        return -1;
    return id;
}

std::string SentencePieceTokenizer::idToToken(int64_t id) const
{
    if (id >= 0 && id < m_pieceCount)
        return m_impl->piece(id);
    if (const AddedToken *t = addedToken(id))
        return t->content;
    throw Error("token id " + std::to_string(id) + " is outside the tokenizer's vocabulary (size "
        + std::to_string(vocabSize()) + ", " + m_modelPath + ")");
}

} // namespace dpo
