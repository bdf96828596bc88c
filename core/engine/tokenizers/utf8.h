// UTF-8 for text that enters a tokenizer (prompts, completions, --text arguments): strict RFC 3629
// validation (rejects overlong forms, surrogates U+D800..DFFF, code points above U+10FFFF and
// truncated sequences), and the code-point walker and encoder the tokenizers and NFC share.
// It does not normalise or repair text.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace dpo {

// True when `text` is valid UTF-8. On failure, *badOffset (when given) is the byte offset of the
// first byte of the offending sequence.
bool isValidUtf8(std::string_view text, size_t *badOffset = nullptr);

// Throws dpo::Error "<what>: invalid UTF-8 at byte N" when `text` is not valid UTF-8.
void requireUtf8(std::string_view text, const std::string &what);

// Decodes the code point at s[i] and advances i past it. `s` must be valid UTF-8 (validate first):
// malformed input is not detected here.
uint32_t decodeUtf8At(std::string_view s, size_t &i);

// Appends code point `cp` (<= U+10FFFF, not a surrogate) encoded as UTF-8.
void appendUtf8(std::string &out, uint32_t cp);

} // namespace dpo
