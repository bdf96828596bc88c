// Fuzz target: the JSON Lines reader of `project import` (TRL rows, through parseImport): the row limits
// checked before Qt's JSON parser (size, nesting), UTF-8 and lone-surrogate checks, and the readers of
// standard, implicit-prompt and conversational rows. Bad input may only become reported rows (with a line
// inside the file), never a crash or an exception. The first byte picks TRL or prompts-only rows.
#include "project/project_store.h"

#include <cstdint>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const QByteArray bytes = QByteArray::fromRawData(reinterpret_cast<const char *>(data) + 1, qsizetype(size - 1));
    dpo::ImportOptions opt;
    opt.format = (data[0] & 1) ? dpo::ImportFormat::Prompts : dpo::ImportFormat::Trl;
    opt.maxRowBytes = 4096;
    opt.maxReportedErrors = 50;
    const dpo::ImportResult r = dpo::parseImport(bytes, QStringLiteral("fuzz.jsonl"), opt);
    if (r.skipped < r.errors.size() || r.imported < 0)
        std::abort();
    for (const dpo::ImportIssue &e : r.errors)
        if (e.line < 1 || e.line > qint64(size) || e.message.isEmpty())
            std::abort();
    return 0;
}
