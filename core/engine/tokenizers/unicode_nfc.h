// Unicode NFC normalisation of UTF-8 text, for tokenizer.json files whose normalizer is NFC (Qwen2).
// Self-contained tables generated from Unicode 14 (scripts/gen_unicode_nfc.py), so the engine needs
// no ICU. Text that is already NFC (all ASCII, most real text) is detected cheaply and returned as is.
// Input must be valid UTF-8 (callers validate first); it does no other normalisation form.
#pragma once

#include <string>
#include <string_view>

namespace dpo {

// True when `text` is certainly NFC (no code point that decomposition or composition could change).
bool isQuickNfc(std::string_view text);
std::string toNfc(std::string_view text);

} // namespace dpo
