// libdpo_spm_shim.so: sentencepiece behind a plain C interface (see sp_shim.h for why).
// No C++ exception crosses the C boundary, and ids are range-checked here because
// sentencepiece's IdToPiece/IsControl index the model's pieces without checking.
#include "sp_shim.h"

#include <sentencepiece_processor.h>

#include <cstring>
#include <exception>
#include <string>
#include <vector>

namespace {
void setErr(char *err, size_t errLen, const std::string &msg)
{
    if (!err || errLen == 0)
        return;
    std::strncpy(err, msg.c_str(), errLen - 1);
    err[errLen - 1] = '\0';
}
auto *proc(void *p)
{
    return static_cast<sentencepiece::SentencePieceProcessor *>(p);
}
} // namespace

#define DPO_EXPORT extern "C" __attribute__((visibility("default")))

DPO_EXPORT void *dpo_spm_load(const char *path, char *err, size_t errLen)
{
    try {
        auto *p = new sentencepiece::SentencePieceProcessor();
        auto status = p->Load(path);
        if (!status.ok()) {
            setErr(err, errLen, status.ToString());
            delete p;
            return nullptr;
        }
        return p;
    } catch (const std::exception &e) {
        setErr(err, errLen, e.what());
        return nullptr;
    }
}

DPO_EXPORT void dpo_spm_free(void *p)
{
    delete proc(p);
}

DPO_EXPORT long dpo_spm_encode(void *p, const char *text, size_t len, int32_t *ids, long cap, char *err, size_t errLen)
{
    try {
        std::vector<int> out;
        auto status = proc(p)->Encode(std::string(text, len), &out);
        if (!status.ok()) {
            setErr(err, errLen, status.ToString());
            return -1;
        }
        for (long i = 0; i < static_cast<long>(out.size()) && i < cap; ++i)
            ids[i] = out[i];
        return static_cast<long>(out.size());
    } catch (const std::exception &e) {
        setErr(err, errLen, e.what());
        return -1;
    }
}

DPO_EXPORT long dpo_spm_decode(void *p, const int32_t *ids, long n, char *out, long cap)
{
    const int size = proc(p)->GetPieceSize();
    for (long i = 0; i < n; ++i)
        if (ids[i] < 0 || ids[i] >= size)
            return -1;
    std::string text;
    try {
        std::vector<int> v(ids, ids + n);
        if (!proc(p)->Decode(v, &text).ok())
            return -1;
    } catch (const std::exception &) {
        return -1;
    }
    if (static_cast<long>(text.size()) <= cap)
        std::memcpy(out, text.data(), text.size());
    return static_cast<long>(text.size());
}

DPO_EXPORT int dpo_spm_vocab_size(void *p)
{
    return proc(p)->GetPieceSize();
}

DPO_EXPORT long dpo_spm_id_to_piece(void *p, int id, char *out, long cap)
{
    if (id < 0 || id >= proc(p)->GetPieceSize())
        return 0;
    const std::string &s = proc(p)->IdToPiece(id);
    if (static_cast<long>(s.size()) <= cap)
        std::memcpy(out, s.data(), s.size());
    return static_cast<long>(s.size());
}

DPO_EXPORT int dpo_spm_piece_to_id(void *p, const char *piece, size_t len)
{
    return proc(p)->PieceToId(std::string(piece, len));
}

DPO_EXPORT int dpo_spm_bos_id(void *p)
{
    return proc(p)->bos_id();
}
DPO_EXPORT int dpo_spm_eos_id(void *p)
{
    return proc(p)->eos_id();
}
DPO_EXPORT int dpo_spm_unk_id(void *p)
{
    return proc(p)->unk_id();
}
DPO_EXPORT int dpo_spm_pad_id(void *p)
{
    return proc(p)->pad_id();
}
DPO_EXPORT int dpo_spm_is_control(void *p, int id)
{
    if (id < 0 || id >= proc(p)->GetPieceSize())
        return 0;
    return proc(p)->IsControl(id) ? 1 : 0;
}
