// SentencePieceTokenizer: a model's tokenizer.model (Llama, Mistral, ...) behind the Tokenizer
// interface, with HF LlamaTokenizer's special-token handling from tokenizer_config.json.
// sentencepiece itself is reached only through the dlopen'ed libdpo_spm_shim.so (trap 2 of the
// architecture notes); this class never links it. Encode/decode are safe to call from several
// threads at once (sentencepiece's processor is const for both).
#pragma once

#include "engine/tokenizers/tokenizer.h"

#include <memory>
#include <string>

namespace dpo {

class SentencePieceTokenizer : public Tokenizer {
public:
    // Loads DIR/tokenizer.model and DIR's special-token configuration. Throws dpo::Error naming
    // the file when it is missing or not a sentencepiece model, or when the shim cannot be loaded.
    explicit SentencePieceTokenizer(const std::string &dir);
    ~SentencePieceTokenizer() override;

    std::vector<int64_t> encode(const std::string &text) const override;
    std::string decode(const std::vector<int64_t> &ids, bool skipSpecial = true) const override;
    int64_t vocabSize() const override;
    int64_t tokenToId(const std::string &token) const override;
    std::string idToToken(int64_t id) const override;
    std::string kind() const override { return "sentencepiece"; }

    // Number of pieces in tokenizer.model (vocabSize() also counts added tokens past it).
    int64_t pieceCount() const { return m_pieceCount; }

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
    int64_t m_pieceCount = 0;
    std::string m_modelPath;
};

// Path of the sentencepiece shim that was (or would be) loaded; loads it on first call.
// Throws dpo::Error listing where it looked when it cannot be found or loaded.
std::string sentencePieceShimPath();

} // namespace dpo
