// BpeTokenizer: byte-level BPE as Hugging Face `tokenizers` runs it for GPT-2, Llama 3, Qwen2 and
// SmolLM, loaded from tokenizer.json (model BPE + ByteLevel pre-tokenizer/decoder) or from the older
// vocab.json + merges.txt pair (GPT-2's regex). Encoding: added/special token strings are split out
// first (longest match), the rest is NFC-normalised when the file asks for it, pre-tokenized with the
// file's regexes (PCRE2, Unicode classes, JIT), mapped byte -> printable character (GPT-2's
// bytes_to_unicode), merged by merge rank and mapped to ids. Decoding inverts the byte map.
// Not supported (refused with a dpo::Error naming the field): non-byte-level BPE tokenizer.json files
// (sentencepiece-style Metaspace / byte_fallback, WordPiece, Unigram), BPE dropout, subword
// prefixes/suffixes, a post-processor that appends EOS. Special-token ids and add_bos_token come from
// tokenizer_config.json through Tokenizer::applyTokenizerConfig; a TemplateProcessing post-processor
// (Llama 3's single = [<|begin_of_text|>, $A]) makes adding BOS the default.
#pragma once

#include "engine/tokenizers/tokenizer.h"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace dpo {

class BpeTokenizer : public Tokenizer {
public:
    // DIR/tokenizer.json when present, else DIR/vocab.json + DIR/merges.txt, then the special-token
    // settings of DIR/tokenizer_config.json, special_tokens_map.json, added_tokens.json and the model's
    // config (Tokenizer::applyTokenizerConfig; BOS is added by default only when the tokenizer.json
    // post-processor adds it, as for Llama 3). What loadTokenizer returns for byte-level BPE folders.
    static std::unique_ptr<BpeTokenizer> fromDirectory(const std::string &dir);
    // The tokenizer files alone (no tokenizer_config.json): added tokens and the post-processor's
    // BOS from tokenizer.json; vocab.json + merges.txt have no added tokens.
    static std::unique_ptr<BpeTokenizer> fromTokenizerJson(const std::string &path);
    static std::unique_ptr<BpeTokenizer> fromVocabMerges(const std::string &vocabPath, const std::string &mergesPath);

    ~BpeTokenizer() override;

    std::vector<int64_t> encode(const std::string &text) const override;
    std::string decode(const std::vector<int64_t> &ids, bool skipSpecial = true) const override;
    int64_t vocabSize() const override;
    int64_t tokenToId(const std::string &token) const override;
    std::string idToToken(int64_t id) const override;
    std::string kind() const override { return "byte-level BPE"; }

    struct Impl;

private:
    BpeTokenizer();
    void rebuildAddedIndex();
    void encodeSegment(std::string_view text, std::vector<int64_t> &out) const;

    std::unique_ptr<Impl> d;
};

} // namespace dpo
