// Tokenizer: the one interface the rest of the engine uses for text <-> ids, whatever the model's
// tokenizer kind (sentencepiece tokenizer.model, or byte-level BPE tokenizer.json / vocab.json +
// merges.txt). Special-token behaviour comes from tokenizer_config.json (add_bos_token,
// add_eos_token, bos/eos/pad/unk token strings, added_tokens_decoder) and added_tokens.json, and
// falls back to the model config's ids. It does not apply chat templates.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace dpo {

class Tokenizer {
public:
    virtual ~Tokenizer() = default;

    // Token ids read from files (vocabularies, added tokens, special-token ids) must be below this
    // (2^24, far above every real vocabulary, the same as ModelConfigLimits::kMaxVocabSize): an id of
    // 2^32+5 must not alias token 5, and an id of 1e8 must not size a table of 1e8 entries.
    static constexpr int64_t kMaxTokenId = int64_t(1) << 24;

    // Plain encoding: no BOS/EOS added (sentencepiece `encode`, or HF add_special_tokens=False).
    // Like HF, literal occurrences of added / special tokens ("<s>", "<|im_start|>") in the text
    // become their ids. Throws dpo::Error for text that is not valid UTF-8.
    virtual std::vector<int64_t> encode(const std::string &text) const = 0;
    // Special tokens (BOS/EOS/added special tokens) are dropped when skipSpecial is true.
    // Throws dpo::Error for an id outside the vocabulary.
    virtual std::string decode(const std::vector<int64_t> &ids, bool skipSpecial = true) const = 0;
    // Number of ids, added tokens included (HF len(tokenizer)).
    virtual int64_t vocabSize() const = 0;
    // Id of a token string (a piece or an added token), or -1.
    virtual int64_t tokenToId(const std::string &token) const = 0;
    // Piece / added-token string of an id. Throws dpo::Error for an id outside the vocabulary.
    virtual std::string idToToken(int64_t id) const = 0;
    // "sentencepiece" or "byte-level BPE"
    virtual std::string kind() const = 0;

    // Encoding with the tokenizer's own special tokens, as HF tokenizer(text) does by default:
    // [bos] if addBos(), the text, [eos] if addEos().
    std::vector<int64_t> encodeWithSpecial(const std::string &text) const;

    int64_t bosId() const { return m_bosId; }
    int64_t eosId() const { return m_eosId; }
    int64_t padId() const { return m_padId; }
    int64_t unkId() const { return m_unkId; }
    bool addBos() const { return m_addBos; }
    bool addEos() const { return m_addEos; }
    // Folder the tokenizer was loaded from; its tokenizer files are copied when a model is saved.
    const std::string &sourceDir() const { return m_sourceDir; }

    // Tokens matched literally before the model's own algorithm runs (HF "added tokens").
    struct AddedToken {
        std::string content;
        int64_t id = -1;
        bool special = false;
    };
    const std::vector<AddedToken> &addedTokens() const { return m_addedTokens; }
    // True for bos/eos/pad/unk and added special tokens: what decode(skipSpecial) drops.
    bool isSpecialId(int64_t id) const;

    // The tokenizer files save_pretrained copies (those present in sourceDir).
    static const std::vector<std::string> &tokenizerFileNames();

protected:
    // loadTokenizer may finish a tokenizer built by a factory with applyTokenizerConfig.
    friend std::unique_ptr<Tokenizer> loadTokenizer(const std::string &dir);

    // Ids the tokenizer model itself defines, used when neither tokenizer_config.json nor
    // config.json / generation_config.json name them (-1 = none).
    struct SpecialIds {
        int64_t bos = -1;
        int64_t eos = -1;
        int64_t pad = -1;
        int64_t unk = -1;
    };
    // Reads DIR/tokenizer_config.json (add_bos_token, add_eos_token, bos/eos/pad/unk tokens as
    // strings or {"content": ...} objects, added_tokens_decoder) and DIR/added_tokens.json, then
    // DIR/config.json and DIR/generation_config.json for bos/eos/pad ids it did not settle, then
    // `fallback`. Call it from the derived constructor once tokenToId() works; added tokens are
    // registered before the special token strings are resolved. Throws dpo::Error naming the file
    // and field for malformed files. Sets m_sourceDir.
    void applyTokenizerConfig(const std::string &dir, bool defaultAddBos, const SpecialIds &fallback);
    void applyTokenizerConfig(const std::string &dir, bool defaultAddBos);

    // A piece of text between added tokens (id < 0), or one added token (id >= 0, text empty).
    struct Segment {
        std::string_view text;
        int64_t id = -1;
    };
    // Splits text on the added tokens (longest match at the leftmost position, as HF's trie).
    std::vector<Segment> splitOnAddedTokens(std::string_view text) const;
    // Id of an added token with exactly this content, or -1.
    int64_t addedTokenId(std::string_view content) const;
    // Content of an added token id, or nullptr.
    const AddedToken *addedToken(int64_t id) const;
    // One past the largest added-token id (0 when there are none).
    int64_t addedTokensEnd() const;
    void addAddedToken(const std::string &content, int64_t id, bool special);

    int64_t m_bosId = -1;
    int64_t m_eosId = -1;
    int64_t m_padId = -1;
    int64_t m_unkId = -1;
    bool m_addBos = false;
    bool m_addEos = false;
    std::string m_sourceDir;
    std::vector<AddedToken> m_addedTokens;
};

// Loads DIR/tokenizer.model (sentencepiece) or DIR/tokenizer.json (byte-level BPE) or
// DIR/vocab.json + merges.txt, honouring DIR/tokenizer_config.json; config.json and
// generation_config.json supply bos/eos ids when tokenizer_config.json does not.
// Throws dpo::Error naming the file when none is usable.
std::unique_ptr<Tokenizer> loadTokenizer(const std::string &dir);

// Refuses (dpo::Error naming `modelDir`) a tokenizer that can produce ids the model has no
// embedding for: vocabSize() > modelVocabSize, or bos/eos/pad ids outside [0, modelVocabSize).
// A model vocabulary larger than the tokenizer's (padded embeddings) is fine.
void checkTokenizerFitsModel(const Tokenizer &tok, int64_t modelVocabSize, const std::string &modelDir);

} // namespace dpo
