// The line rules of JSON Lines, shared by every JSONL reader in the project: preference and SFT data
// (JsonlReader), prompt sets, and the project store's import (core/project, which has no libtorch and
// uses only this header):
//  - a UTF-8 byte-order mark before the first line is ignored (some editors write one);
//  - "\r\n" ends a line like "\n", and a last line without a newline counts;
//  - lines of spaces and tabs only are skipped but counted, so line numbers are the editor's;
//  - every other line is one row, which each reader then parses as a JSON object.
// Header-only, no dependencies: the project store links no engine library.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace dpo::jsonl {

inline constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";

// Bytes a reader must allow beyond a row's limit before the rules below have stripped them: a BOM on
// the first line and a '\r' at the end of any line.
inline constexpr size_t kLineOverhead = 4;

inline bool isBlankLine(std::string_view line)
{
    for (const char c : line)
        if (c != ' ' && c != '\t' && c != '\r')
            return false;
    return true;
}

// The row text of physical line `number` (1-based): without the BOM of line 1 and a trailing '\r'.
inline std::string_view rowText(std::string_view line, int64_t number)
{
    if (number == 1 && line.substr(0, kUtf8Bom.size()) == kUtf8Bom)
        line.remove_prefix(kUtf8Bom.size());
    if (!line.empty() && line.back() == '\r')
        line.remove_suffix(1);
    return line;
}

// The rows of a JSONL text held in memory (a mapped file), blank lines skipped:
//   LineSplitter lines(data);
//   while (lines.next()) use(lines.number(), lines.text());
class LineSplitter {
public:
    explicit LineSplitter(std::string_view data)
        : m_data(data)
    {
    }
    // Advances to the next non-blank line; false at the end of the data.
    bool next()
    {
        while (m_pos < m_data.size()) {
            size_t end = m_data.find('\n', m_pos);
            if (end == std::string_view::npos)
                end = m_data.size();
            ++m_number;
            m_text = rowText(m_data.substr(m_pos, end - m_pos), m_number);
            m_pos = end + 1;
            if (!isBlankLine(m_text))
                return true;
        }
        m_pos = m_data.size();
        return false;
    }
    int64_t number() const { return m_number; }
    std::string_view text() const { return m_text; }
    // Bytes consumed so far (for progress).
    size_t offset() const { return m_pos < m_data.size() ? m_pos : m_data.size(); }

private:
    std::string_view m_data;
    std::string_view m_text;
    size_t m_pos = 0;
    int64_t m_number = 0;
};

} // namespace dpo::jsonl
