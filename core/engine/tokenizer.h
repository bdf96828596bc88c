// Tokenizer: the one interface the rest of the engine uses for text <-> ids, whatever the model's
// tokenizer kind (sentencepiece tokenizer.model, or byte-level BPE tokenizer.json / vocab.json +
// merges.txt). Special-token behaviour comes from tokenizer_config.json (add_bos_token,
// add_eos_token, bos/eos/pad/unk token strings) and falls back to the model config's ids.
// It does not apply chat templates.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace dpo {

class Tokenizer {
public:
    virtual ~Tokenizer() = default;

    // Plain encoding: no BOS/EOS added (sentencepiece `encode`, or HF add_special_tokens=False).
    // Throws dpo::Error for text that is not valid UTF-8.
    virtual std::vector<int64_t> encode(const std::string &text) const = 0;
    // Special tokens (BOS/EOS/added special tokens) are dropped when skipSpecial is true.
    virtual std::string decode(const std::vector<int64_t> &ids, bool skipSpecial = true) const = 0;
    virtual int64_t vocabSize() const = 0;
    // Id of a token string (a piece or an added token), or -1.
    virtual int64_t tokenToId(const std::string &token) const = 0;
    virtual std::string idToToken(int64_t id) const = 0;
    // "sentencepiece" or "byte-level BPE"
    virtual std::string kind() const = 0;

    // Encoding with the tokenizer's own special tokens, as HF tokenizer(text) does by default:
    // [bos] if addBos(), the text, [eos] if addEos().
    std::vector<int64_t> encodeWithSpecial(const std::string &text) const;

    int64_t bosId() const { return m_bosId; }
    int64_t eosId() const { return m_eosId; }
    int64_t padId() const { return m_padId; }
    bool addBos() const { return m_addBos; }
    bool addEos() const { return m_addEos; }
    // Folder the tokenizer was loaded from; its tokenizer files are copied when a model is saved.
    const std::string &sourceDir() const { return m_sourceDir; }

    // The tokenizer files save_pretrained copies (those present in sourceDir).
    static const std::vector<std::string> &tokenizerFileNames();

protected:
    int64_t m_bosId = -1;
    int64_t m_eosId = -1;
    int64_t m_padId = -1;
    bool m_addBos = false;
    bool m_addEos = false;
    std::string m_sourceDir;
};

// Loads DIR/tokenizer.model (sentencepiece) or DIR/tokenizer.json (byte-level BPE) or
// DIR/vocab.json + merges.txt, honouring DIR/tokenizer_config.json; config.json and
// generation_config.json supply bos/eos ids when tokenizer_config.json does not.
// Throws dpo::Error naming the file when none is usable.
std::unique_ptr<Tokenizer> loadTokenizer(const std::string &dir);

} // namespace dpo
