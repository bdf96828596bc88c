// C interface of libdpo_spm_shim.so, the one place sentencepiece is linked. The engine dlopen()s
// the shim with RTLD_DEEPBIND (trap 2 in the architecture notes: Debian's libsentencepiece and
// libtorch carry clashing protobuf symbols, and linking both into one executable crashes).
// The engine side lives in sp_tokenizer.cpp: it looks for the shim at $DPO_SPM_SHIM, next to the
// running executable, then at the build and install paths CMake passes in.
#pragma once

#include <cstddef>
#include <cstdint>

extern "C" {
// Returns an opaque processor, or null with a message in err (size errLen).
typedef void *(*dpo_spm_load_fn)(const char *path, char *err, size_t errLen);
typedef void (*dpo_spm_free_fn)(void *proc);
// Encodes UTF-8 text into ids. Returns the number of ids (may exceed cap: call again with more room),
// or -1 with a message in err.
typedef long (*dpo_spm_encode_fn)(
    void *proc, const char *text, size_t len, int32_t *ids, long cap, char *err, size_t errLen);
// Decodes ids; returns the byte length of the text (may exceed cap), or -1 on error.
typedef long (*dpo_spm_decode_fn)(void *proc, const int32_t *ids, long n, char *out, long cap);
typedef int (*dpo_spm_vocab_size_fn)(void *proc);
// Piece string of an id; returns its byte length (may exceed cap).
typedef long (*dpo_spm_id_to_piece_fn)(void *proc, int id, char *out, long cap);
typedef int (*dpo_spm_piece_to_id_fn)(void *proc, const char *piece, size_t len); // unk id if unknown
typedef int (*dpo_spm_special_id_fn)(void *proc); // bos/eos/unk/pad; -1 when not defined
typedef int (*dpo_spm_is_control_fn)(void *proc, int id);
}
