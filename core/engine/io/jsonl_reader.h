// JsonlReader: a JSON Lines file read row by row in bounded memory, with the rules of jsonl_lines.h and
// one set of checks, each an error naming "FILE:LINE": a row above the byte limit (the rest of the line
// is not read), invalid UTF-8, JSON nested too deep or malformed, a row that is not an object.
// Used by the preference and SFT data readers and dpo-cli's prompt sets; what a row must contain is the
// caller's business.
//
//   JsonlReader rows(path, limits.maxRowBytes, "preference data file");
//   while (rows.next()) { const auto j = rows.object(); ... rows.where() ... }
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <fstream>
#include <string>

namespace dpo {

class JsonlReader {
public:
    // Throws dpo::Error "<path>: cannot open the <kind>" when the file cannot be read.
    JsonlReader(std::string path, int64_t maxRowBytes, const std::string &kind = "JSONL file");

    // Advances to the next non-blank row (too long or invalid UTF-8: dpo::Error); false at the end.
    bool next();
    // The row's text (BOM and '\r' stripped) and its position.
    const std::string &text() const { return m_text; }
    int64_t line() const { return m_line; }
    std::string where() const { return m_path + ":" + std::to_string(m_line); }
    const std::string &path() const { return m_path; }

    // The row parsed (nesting bounded); dpo::Error when it is not valid JSON or not an object.
    nlohmann::json object() const;

private:
    std::string m_path;
    int64_t m_maxRowBytes;
    std::ifstream m_in;
    std::string m_buffer;
    std::string m_text;
    int64_t m_line = 0;
};

} // namespace dpo
