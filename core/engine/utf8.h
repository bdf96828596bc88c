// UTF-8 validation for text that enters a tokenizer (prompts, completions, --text arguments).
// Strict RFC 3629: rejects overlong forms, surrogates (U+D800..DFFF), code points above U+10FFFF
// and truncated sequences. It does not normalise or repair text.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace dpo {

// True when `text` is valid UTF-8. On failure, *badOffset (when given) is the byte offset of the
// first byte of the offending sequence.
bool isValidUtf8(std::string_view text, size_t *badOffset = nullptr);

// Throws dpo::Error "<what>: invalid UTF-8 at byte N" when `text` is not valid UTF-8.
void requireUtf8(std::string_view text, const std::string &what);

} // namespace dpo
