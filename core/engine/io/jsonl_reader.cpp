#include "engine/io/jsonl_reader.h"

#include "engine/error.h"
#include "engine/io/json_limits.h"
#include "engine/io/jsonl_lines.h"
#include "engine/tokenizers/utf8.h"

namespace dpo {

JsonlReader::JsonlReader(std::string path, int64_t maxRowBytes, const std::string &kind)
    : m_path(std::move(path))
    , m_maxRowBytes(maxRowBytes)
    , m_in(m_path, std::ios::binary)
{
    if (!m_in)
        throw Error(m_path + ": cannot open the " + kind);
}

bool JsonlReader::next()
{
    bool tooLong = false;
    while (readLineLimited(m_in, m_buffer, uint64_t(m_maxRowBytes) + jsonl::kLineOverhead, &tooLong)) {
        ++m_line;
        const std::string_view row = jsonl::rowText(m_buffer, m_line);
        if (tooLong || int64_t(row.size()) > m_maxRowBytes)
            throw Error(where() + ": row is longer than the limit of " + std::to_string(m_maxRowBytes)
                + " bytes (raise it with --max-row-bytes or DPO_MAX_ROW_BYTES)");
        if (jsonl::isBlankLine(row))
            continue;
        m_text.assign(row);
        requireUtf8(m_text, where());
        return true;
    }
    if (m_in.bad())
        throw Error(m_path + ": read error after line " + std::to_string(m_line));
    return false;
}

nlohmann::json JsonlReader::object() const
{
    nlohmann::json j = parseJsonLimited(m_text, where()); // "<where>: invalid JSON: ..." / nesting bounded
    if (!j.is_object())
        throw Error(where() + ": a row must be a JSON object");
    return j;
}

} // namespace dpo
