// Fuzz target: the CSV reader of `project import` (core/project/project_io.cpp, through parseImport, which
// parses as importFile does without a project). Every record is checked as an import would check it
// (header, field count, quoting, UTF-8, empty fields, size limits); bad input may only become reported
// rows (ImportResult::errors), never a crash or an exception. A small row limit keeps huge fields cheap.
#include "project/project_store.h"

#include <cstdint>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const QByteArray bytes = QByteArray::fromRawData(reinterpret_cast<const char *>(data), qsizetype(size));
    dpo::ImportOptions opt;
    opt.format = dpo::ImportFormat::Csv;
    opt.maxRowBytes = 4096;
    opt.maxReportedErrors = 50;
    const dpo::ImportResult r = dpo::parseImport(bytes, QStringLiteral("fuzz.csv"), opt);
    // Every bad row is counted and the reported ones carry a line inside the file and a message.
    if (r.skipped < r.errors.size() || r.imported < 0)
        std::abort();
    for (const dpo::ImportIssue &e : r.errors)
        if (e.line < 1 || e.line > qint64(size) + 1 || e.message.isEmpty())
            std::abort();
    return 0;
}
