// Limits on the JSON the engine reads from users (safetensors headers, config.json,
// generation_config.json, tokenizer.json, tokenizer_config.json, added_tokens.json,
// special_tokens_map.json, `train --config` files, preference and SFT rows, trainer_state.json).
//
// nlohmann::json builds, copies, compares and dump()s values recursively: a file nested 100k levels
// deep overflows the stack (SIGSEGV) before any field is even looked at. Every reader therefore goes
// through parseJsonLimited()/readJsonFileLimited(), which first runs an iterative scan of the text
// (brackets inside strings ignored) and refuses nesting deeper than JsonLimits::maxDepth with a
// dpo::Error naming the source, before the parser allocates anything. Real files nest a handful of
// levels (tokenizer.json about 6, config.json about 4), so the default of 64 is generous.
//
// Error messages must never dump a whole value (a 16 MB string, a 100k-element vocabulary):
// jsonSnippet() renders at most ~80 characters of any value, iteratively.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <istream>
#include <string>
#include <string_view>

namespace dpo {

struct JsonLimits {
    static constexpr size_t kDefaultMaxDepth = 64;
    // Arrays and objects nested deeper than this are refused (the top-level value is depth 1).
    size_t maxDepth = kDefaultMaxDepth;
    // Files larger than this are refused before they are read (readJsonFileLimited only; 0 = no limit).
    uint64_t maxFileBytes = 64ull << 20;
};

// Limits for big files: tokenizer.json (a 256k-token vocabulary with merges is ~35 MB).
JsonLimits largeJsonFileLimits();

// Throws dpo::Error "<source>: JSON nested deeper than N levels (at byte K)" when `text` nests arrays or
// objects deeper than maxDepth. Iterative, one pass, no allocation. Text that is not valid JSON is not
// reported here (the parser does that); the scan is conservative for it.
void checkJsonNesting(std::string_view text, const std::string &source, size_t maxDepth = JsonLimits::kDefaultMaxDepth);

// checkJsonNesting, then nlohmann::json::parse. Syntax errors become dpo::Error
// "<source>: invalid JSON: <parser message without nlohmann's [json.exception...] prefix>".
nlohmann::json parseJsonLimited(std::string_view text, const std::string &source, const JsonLimits &limits = {});
// The same with a parser callback (e.g. to spot duplicate keys).
nlohmann::json parseJsonLimited(std::string_view text, const std::string &source, const JsonLimits &limits,
    const nlohmann::json::parser_callback_t &callback);

// The same keeping object key order (what chat templates see: tojson, items() and printing follow it).
nlohmann::ordered_json parseOrderedJsonLimited(std::string_view text, const std::string &source,
    const JsonLimits &limits = {});

// Reads `path` (refusing files above limits.maxFileBytes) and parses it with parseJsonLimited.
// Errors name the path.
nlohmann::json readJsonFileLimited(const std::string &path, const JsonLimits &limits = {});
// The same keeping object key order.
nlohmann::ordered_json readOrderedJsonFileLimited(const std::string &path, const JsonLimits &limits = {});

// At most about maxChars characters of `value` as compact JSON, "..." appended when cut. Never
// recurses (safe on any value) and never throws (invalid UTF-8 in strings is replaced).
std::string jsonSnippet(const nlohmann::json &value, size_t maxChars = 80);

// One line of a JSONL file, without its '\n', read in bounded memory: at most maxBytes bytes are ever
// held. Returns false at the end of the input when nothing was read. When the line is longer than
// maxBytes, *tooLong is set and `out` holds only its first maxBytes bytes (the rest is not read: the
// caller reports the error and stops).
bool readLineLimited(std::istream &in, std::string &out, uint64_t maxBytes, bool *tooLong);

// An nlohmann exception's message without its "[json.exception.type_error.302] " prefix.
std::string jsonErrorMessage(const std::exception &e);

} // namespace dpo
