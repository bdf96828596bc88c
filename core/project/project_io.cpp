// Import (TRL JSONL, CSV, prompts-only JSONL) and export (TRL JSONL, judgments JSONL/CSV) of a project.
// Import parses the whole file first and then writes every good row in one transaction: OnError::Abort
// can refuse the file before anything is written, and a cancel or a failure leaves the project as it was.
// No widgets and no threads here: callers run it on a worker thread with that thread's own ProjectStore.
#include "project/project_store.h"
#include "project/project_store_p.h"

#include "engine/io/jsonl_lines.h"

#include <QFile>
#include <cstdio>
#include <memory>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QSaveFile>
#include <QSqlError>
#include <QSqlQuery>

#include <algorithm>
#include <array>
#include <functional>
#include <map>

namespace dpo {

QByteArray mappedContents(QFile &file)
{
    if (file.size() <= 0)
        return {};
    if (uchar *p = file.map(0, file.size()))
        return QByteArray::fromRawData(reinterpret_cast<const char *>(p), file.size());
    return file.readAll();
}

qint64 defaultRowLimit()
{
    bool ok = false;
    const qint64 env = qEnvironmentVariable("DPO_MAX_ROW_BYTES").toLongLong(&ok);
    return ok && env > 0 ? env : qint64(8) << 20;
}

namespace {

bool validUtf8(const char *s, qsizetype n)
{
    const auto *p = reinterpret_cast<const unsigned char *>(s);
    const auto *end = p + n;
    while (p < end) {
        const unsigned char c = *p;
        if (c < 0x80) {
            ++p;
            continue;
        }
        int len;
        quint32 cp;
        if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (end - p < len)
            return false;
        for (int i = 1; i < len; ++i) {
            if ((p[i] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        // Overlong forms, surrogates and values past U+10FFFF are invalid UTF-8.
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF
            || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        p += len;
    }
    return true;
}

// A JSON "\ud800" escape decodes to an unpaired UTF-16 surrogate (QJsonDocument keeps it), which has no
// UTF-8 form: stored, it became the invalid bytes ED A0 80 that readers and de-duplication then trip on.
bool hasLoneSurrogate(const QString &s)
{
    for (qsizetype i = 0; i < s.size(); ++i) {
        if (s[i].isHighSurrogate() && i + 1 < s.size() && s[i + 1].isLowSurrogate())
            ++i;
        else if (s[i].isSurrogate())
            return true;
    }
    return false;
}

// Every string and key of a parsed value (its depth was bounded before parsing: tooDeepAt).
bool validUnicode(const QJsonValue &v)
{
    if (v.isString())
        return !hasLoneSurrogate(v.toString());
    if (v.isArray()) {
        for (const QJsonValue &x : v.toArray())
            if (!validUnicode(x))
                return false;
    } else if (v.isObject()) {
        const QJsonObject o = v.toObject();
        for (auto it = o.begin(); it != o.end(); ++it)
            if (hasLoneSurrogate(it.key()) || !validUnicode(it.value()))
                return false;
    }
    return true;
}

// One row ready to insert. *Messages hold the original conversational JSON (compact) so export can give
// the same structure back; the text fields hold what the Label page shows.
struct Row {
    qint64 line = 0;
    QString prompt, promptMessages;
    QString a, aMessages;
    QString b, bMessages;
    QString preferred; // "a" for already judged rows (a = chosen), empty for unjudged
    QString style; // "implicit" for TRL rows without a prompt
    bool promptOnly = false;
};

using RowSink = std::function<void(Row &&)>;

struct Parsed {
    QVector<ImportIssue> errors;
    qint64 bad = 0;
    bool cancelled = false;
};

void addError(Parsed &p, qint64 line, const QString &message, int max)
{
    ++p.bad;
    if (p.errors.size() < max)
        p.errors.push_back(ImportIssue { line, message });
}

QString contentText(const QJsonValue &content, bool *ok)
{
    if (content.isString())
        return content.toString();
    if (content.isArray()) { // content parts: [{"type":"text","text":...}, ...]
        QStringList parts;
        for (const QJsonValue &part : content.toArray()) {
            if (part.isString())
                parts << part.toString();
            else if (part.isObject() && part.toObject().value(QLatin1String("text")).isString())
                parts << part.toObject().value(QLatin1String("text")).toString();
            else {
                *ok = false;
                return {};
            }
        }
        return parts.join(QLatin1Char('\n'));
    }
    *ok = false;
    return {};
}

// An assistant message's tool calls as text lines, "tool call: name({...})" (arguments as given: an object,
// or OpenAI's JSON string). Empty when there are none.
QString toolCallsText(const QJsonObject &message)
{
    QStringList lines;
    for (const QJsonValue &c : message.value(QLatin1String("tool_calls")).toArray()) {
        const QJsonObject fn = c.toObject().value(QLatin1String("function")).toObject();
        const QJsonValue args = fn.value(QLatin1String("arguments"));
        const QString argText = args.isString() ? args.toString()
            : args.isObject() ? QString::fromUtf8(QJsonDocument(args.toObject()).toJson(QJsonDocument::Compact))
                              : QString();
        lines << QStringLiteral("tool call: %1(%2)").arg(fn.value(QLatin1String("name")).toString(), argText);
    }
    return lines.join(QLatin1Char('\n'));
}

// Renders a list of {"role","content"} messages as text: a single message is its content; several are
// "role:\ncontent" blocks separated by blank lines. An assistant message that calls tools may have no content
// (null or absent, as TRL's tool-use data has it); its calls are rendered after the content.
bool renderMessages(const QJsonArray &messages, QString *text, QString *error)
{
    if (messages.isEmpty()) {
        *error = QStringLiteral("is an empty message list");
        return false;
    }
    QStringList blocks;
    for (const QJsonValue &m : messages) {
        const QJsonObject o = m.toObject();
        bool ok = m.isObject() && o.value(QLatin1String("role")).isString();
        const QString calls = ok ? toolCallsText(o) : QString();
        const QJsonValue contentValue = o.value(QLatin1String("content"));
        QString content;
        if (ok && !calls.isEmpty() && (contentValue.isNull() || contentValue.isUndefined()))
            content = calls;
        else if (ok) {
            content = contentText(contentValue, &ok);
            if (ok && !calls.isEmpty())
                content += QLatin1Char('\n') + calls;
        }
        if (!ok) {
            *error = QStringLiteral("must be a list of {\"role\", \"content\"} messages");
            return false;
        }
        blocks << (messages.size() == 1 ? content
                                        : o.value(QLatin1String("role")).toString() + QStringLiteral(":\n") + content);
    }
    *text = blocks.join(QStringLiteral("\n\n"));
    return true;
}

QString compact(const QJsonArray &a)
{
    return QString::fromUtf8(QJsonDocument(a).toJson(QJsonDocument::Compact));
}

// A TRL field: a string, or a message list (text rendered, JSON kept).
bool readField(const QJsonObject &o, const char *name, QString *text, QString *messages, QString *error)
{
    const QJsonValue v = o.value(QLatin1String(name));
    if (v.isUndefined() || v.isNull()) {
        *error = QStringLiteral("missing field \"%1\"").arg(QLatin1String(name));
        return false;
    }
    if (v.isString()) {
        *text = v.toString();
        messages->clear();
    } else if (v.isArray()) {
        QString why;
        if (!renderMessages(v.toArray(), text, &why)) {
            *error = QStringLiteral("field \"%1\" %2").arg(QLatin1String(name), why);
            return false;
        }
        *messages = compact(v.toArray());
    } else {
        *error = QStringLiteral("field \"%1\" must be a string or a list of messages").arg(QLatin1String(name));
        return false;
    }
    if (text->trimmed().isEmpty()) {
        *error = QStringLiteral("field \"%1\" is empty").arg(QLatin1String(name));
        return false;
    }
    return true;
}

// TRL's implicit prompt: the longest common prefix of chosen and rejected (messages for conversational rows;
// characters for strings, backing off a trailing space as TRL's extract_prompt does).
bool splitImplicit(const QJsonObject &o, Row &row, QString *error)
{
    const QJsonValue c = o.value(QLatin1String("chosen")), r = o.value(QLatin1String("rejected"));
    if (c.isString() && r.isString()) {
        const QString cs = c.toString(), rs = r.toString();
        qsizetype i = 0;
        const qsizetype n = std::min(cs.size(), rs.size());
        while (i < n && cs[i] == rs[i])
            ++i;
        if (i > 0 && i < n && cs[i - 1] == QLatin1Char(' '))
            --i;
        row.prompt = cs.left(i);
        row.a = cs.mid(i);
        row.b = rs.mid(i);
    } else if (c.isArray() && r.isArray()) {
        const QJsonArray ca = c.toArray(), ra = r.toArray();
        qsizetype i = 0;
        while (i < ca.size() && i < ra.size() && ca[i] == ra[i])
            ++i;
        QJsonArray p, a, b;
        for (qsizetype k = 0; k < ca.size(); ++k)
            (k < i ? p : a).append(ca[k]);
        for (qsizetype k = i; k < ra.size(); ++k)
            b.append(ra[k]);
        QString why;
        if (p.isEmpty()) {
            *error = QStringLiteral("no \"prompt\" and no common prefix between \"chosen\" and \"rejected\"");
            return false;
        }
        if (a.isEmpty() || b.isEmpty()) {
            *error = QStringLiteral("\"chosen\" and \"rejected\" have nothing after their common prefix");
            return false;
        }
        if (!renderMessages(p, &row.prompt, &why) || !renderMessages(a, &row.a, &why)
            || !renderMessages(b, &row.b, &why)) {
            *error = QStringLiteral("messages %1").arg(why);
            return false;
        }
        row.promptMessages = compact(p);
        row.aMessages = compact(a);
        row.bMessages = compact(b);
    } else {
        QString t, m;
        if (!readField(o, "chosen", &t, &m, error) || !readField(o, "rejected", &t, &m, error))
            return false;
        *error = QStringLiteral("\"chosen\" and \"rejected\" must both be strings or both be message lists");
        return false;
    }
    if (row.prompt.trimmed().isEmpty()) {
        *error = QStringLiteral("no \"prompt\" and no common prefix between \"chosen\" and \"rejected\"");
        return false;
    }
    if (row.a.trimmed().isEmpty() || row.b.trimmed().isEmpty()) {
        *error = QStringLiteral("\"chosen\" or \"rejected\" is empty after the common prompt prefix");
        return false;
    }
    row.style = QStringLiteral("implicit");
    return true;
}

bool cancelled(const ImportOptions &o)
{
    return o.cancel && o.cancel->load(std::memory_order_relaxed);
}

qint64 maxRowBytes(const ImportOptions &o)
{
    return o.maxRowBytes > 0 ? o.maxRowBytes : defaultRowLimit();
}

QString rowTooLong(qint64 bytes, qint64 limit)
{
    return QStringLiteral("row of %1 bytes is above the limit of %2 bytes (raise it with --max-row-bytes or "
                          "DPO_MAX_ROW_BYTES)")
        .arg(bytes)
        .arg(limit);
}

// The 0-based offset where `s` nests arrays/objects deeper than maxDepth, or -1. One iterative pass over
// the text (brackets in strings ignored), as the engine's checkJsonNesting: Qt's parser recurses, and
// everything after it (validUnicode, the field readers) walks the value recursively too.
qsizetype tooDeepAt(const char *s, qsizetype n, int maxDepth)
{
    int depth = 0;
    bool inString = false;
    for (qsizetype i = 0; i < n; ++i) {
        const char c = s[i];
        if (inString) {
            if (c == '\\')
                ++i;
            else if (c == '"')
                inString = false;
        } else if (c == '"') {
            inString = true;
        } else if (c == '[' || c == '{') {
            if (++depth > maxDepth)
                return i;
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
    return -1;
}

QString tooDeep(qsizetype at, int maxDepth)
{
    return QStringLiteral("JSON nested deeper than %1 levels (at column %2)").arg(maxDepth).arg(at + 1);
}

// Good rows go to sink as they are parsed (nothing is held in memory but the current row).
void parseJsonl(const QByteArray &data, ImportFormat format, const ImportOptions &opt, Parsed &out, const RowSink &sink)
{
    const qint64 maxBytes = maxRowBytes(opt);
    jsonl::LineSplitter lines(std::string_view(data.constData(), size_t(data.size())));
    qint64 rows = 0;
    while (lines.next()) {
        const qint64 line = lines.number();
        const char *s = lines.text().data();
        const qsizetype len = qsizetype(lines.text().size());
        if ((++rows & 1023) == 0) {
            if (cancelled(opt)) {
                out.cancelled = true;
                return;
            }
            if (opt.progress)
                opt.progress(qint64(lines.offset()), data.size());
        }
        if (len > maxBytes) {
            addError(out, line, rowTooLong(len, maxBytes), opt.maxReportedErrors);
            continue;
        }
        if (!validUtf8(s, len)) {
            addError(out, line, QStringLiteral("invalid UTF-8"), opt.maxReportedErrors);
            continue;
        }
        if (const qsizetype at = tooDeepAt(s, len, opt.maxJsonDepth); at >= 0) {
            addError(out, line, tooDeep(at, opt.maxJsonDepth), opt.maxReportedErrors);
            continue;
        }
        QJsonParseError perr;
        const QJsonDocument doc = QJsonDocument::fromJson(QByteArray::fromRawData(s, len), &perr);
        if (perr.error != QJsonParseError::NoError) {
            addError(out, line,
                QStringLiteral("invalid JSON: %1 at column %2").arg(perr.errorString()).arg(perr.offset + 1),
                opt.maxReportedErrors);
            continue;
        }
        if (!doc.isObject()) {
            addError(out, line, QStringLiteral("expected a JSON object"), opt.maxReportedErrors);
            continue;
        }
        const QJsonObject o = doc.object();
        if (!validUnicode(o)) {
            addError(out, line,
                QStringLiteral("invalid Unicode: a \\u escape of an unpaired surrogate (D800-DFFF), which has no "
                               "UTF-8 form"),
                opt.maxReportedErrors);
            continue;
        }
        Row row;
        row.line = line;
        QString err;
        bool ok;
        if (format == ImportFormat::Prompts) {
            row.promptOnly = true;
            ok = readField(o, "prompt", &row.prompt, &row.promptMessages, &err);
        } else if (!o.contains(QLatin1String("prompt"))) {
            ok = o.contains(QLatin1String("chosen")) && o.contains(QLatin1String("rejected"));
            if (!ok)
                err = QStringLiteral("missing field \"%1\"")
                          .arg(o.contains(QLatin1String("chosen")) ? QStringLiteral("rejected")
                                                                   : QStringLiteral("chosen"));
            else
                ok = splitImplicit(o, row, &err);
            row.preferred = QStringLiteral("a");
        } else if (!o.contains(QLatin1String("chosen")) && !o.contains(QLatin1String("rejected"))
            && (o.contains(QLatin1String("completion_a")) || o.contains(QLatin1String("completion_b")))) {
            // A pair to label (the CSV importer's prompt,completion_a,completion_b as JSON, where each field may
            // also be a message list): queued, no preferred side.
            ok = readField(o, "prompt", &row.prompt, &row.promptMessages, &err)
                && readField(o, "completion_a", &row.a, &row.aMessages, &err)
                && readField(o, "completion_b", &row.b, &row.bMessages, &err);
        } else {
            ok = readField(o, "prompt", &row.prompt, &row.promptMessages, &err)
                && readField(o, "chosen", &row.a, &row.aMessages, &err)
                && readField(o, "rejected", &row.b, &row.bMessages, &err);
            row.preferred = QStringLiteral("a");
        }
        if (!ok) {
            addError(out, line, err, opt.maxReportedErrors);
            continue;
        }
        sink(std::move(row));
    }
    return;
}

// RFC 4180: fields separated by commas, records by CRLF or LF, quoted fields may hold commas, newlines and
// doubled quotes. Each record keeps the line it starts on; the first record is the header. A record longer
// than the row limit is scanned to its end but not kept, and at most kMaxCsvFields fields of a record are
// kept, so a huge field or a line of a million commas costs no memory.
void parseCsv(const QByteArray &data, const ImportOptions &opt, Parsed &out, const RowSink &sink)
{
    constexpr qsizetype kMaxCsvFields = 1024;
    const qint64 maxBytes = maxRowBytes(opt);
    struct Record {
        qint64 line = 0;
        QList<QByteArray> fields; // the first kMaxCsvFields
        qsizetype fieldCount = 0;
        qsizetype bytes = 0; // from its first byte to its end, the record separator excluded
        bool unterminated = false;
        bool tooLong = false;
    };
    // Header state.
    bool haveHeader = false, headerOk = false, judged = false, promptOnly = false;
    int prompt = -1, a = -1, b = -1, width = 0;
    QString aName = QStringLiteral("completion_a"), bName = QStringLiteral("completion_b");

    auto header = [&](const Record &rec) {
        if (rec.tooLong || rec.fieldCount > kMaxCsvFields) {
            addError(out, rec.line,
                rec.tooLong
                    ? QStringLiteral("CSV header: ") + rowTooLong(rec.bytes, maxBytes)
                    : QStringLiteral("CSV header has %1 columns, more than %2").arg(rec.fieldCount).arg(kMaxCsvFields),
                opt.maxReportedErrors);
            return;
        }
        QHash<QString, int> col;
        for (int c = 0; c < rec.fields.size(); ++c)
            col.insert(QString::fromUtf8(rec.fields[c]).trimmed().toLower(), c);
        width = int(rec.fields.size());
        prompt = col.value(QStringLiteral("prompt"), -1);
        a = col.value(QStringLiteral("completion_a"), -1);
        b = col.value(QStringLiteral("completion_b"), -1);
        if (a < 0 || b < 0) {
            for (auto names : { std::make_pair("preferred", "dispreferred"), std::make_pair("chosen", "rejected") }) {
                a = col.value(QLatin1String(names.first), -1);
                b = col.value(QLatin1String(names.second), -1);
                if (a >= 0 && b >= 0) {
                    judged = true;
                    aName = QLatin1String(names.first);
                    bName = QLatin1String(names.second);
                    break;
                }
            }
        }
        promptOnly = prompt >= 0 && (a < 0 || b < 0) && width == 1;
        headerOk = prompt >= 0 && (promptOnly || (a >= 0 && b >= 0));
        if (!headerOk)
            addError(out, rec.line,
                QStringLiteral("CSV header must name prompt,completion_a,completion_b or "
                               "prompt,preferred,dispreferred (or prompt,chosen,rejected)"),
                opt.maxReportedErrors);
    };

    auto record = [&](const Record &rec) {
        if (!headerOk) {
            ++out.bad; // reported once, on the header
            return;
        }
        if (rec.unterminated) {
            addError(out, rec.line, QStringLiteral("unterminated quoted field"), opt.maxReportedErrors);
            return;
        }
        if (rec.tooLong) {
            addError(out, rec.line, rowTooLong(rec.bytes, maxBytes), opt.maxReportedErrors);
            return;
        }
        if (rec.fieldCount != width) {
            addError(out, rec.line, QStringLiteral("expected %1 fields, found %2").arg(width).arg(rec.fieldCount),
                opt.maxReportedErrors);
            return;
        }
        for (const QByteArray &f : rec.fields) {
            if (!validUtf8(f.constData(), f.size())) {
                addError(out, rec.line, QStringLiteral("invalid UTF-8"), opt.maxReportedErrors);
                return;
            }
        }
        Row row;
        row.line = rec.line;
        row.prompt = QString::fromUtf8(rec.fields[prompt]);
        row.promptOnly = promptOnly;
        if (!promptOnly) {
            row.a = QString::fromUtf8(rec.fields[a]);
            row.b = QString::fromUtf8(rec.fields[b]);
            if (judged)
                row.preferred = QStringLiteral("a");
        }
        QString emptyField;
        if (row.prompt.trimmed().isEmpty())
            emptyField = QStringLiteral("prompt");
        else if (!promptOnly && row.a.trimmed().isEmpty())
            emptyField = aName;
        else if (!promptOnly && row.b.trimmed().isEmpty())
            emptyField = bName;
        if (!emptyField.isEmpty()) {
            addError(out, rec.line, QStringLiteral("field \"%1\" is empty").arg(emptyField), opt.maxReportedErrors);
            return;
        }
        sink(std::move(row));
    };

    qsizetype i = data.startsWith("\xEF\xBB\xBF") ? 3 : 0;
    const qsizetype n = data.size();
    qint64 line = 1, count = 0;
    while (i < n) {
        Record rec;
        rec.line = line;
        const qsizetype start = i;
        QByteArray field;
        // Bytes past the row limit are scanned, not kept (the record is refused anyway).
        const auto keep = [&](char c) {
            if (field.size() < maxBytes)
                field += c;
        };
        bool recordDone = false;
        while (!recordDone) {
            field.clear();
            if (i < n && data[i] == '"') {
                ++i;
                bool closed = false;
                while (i < n) {
                    const char c = data[i];
                    if (c == '"') {
                        if (i + 1 < n && data[i + 1] == '"') {
                            keep('"');
                            i += 2;
                            continue;
                        }
                        ++i;
                        closed = true;
                        break;
                    }
                    if (c == '\n')
                        ++line;
                    keep(c);
                    ++i;
                }
                if (!closed)
                    rec.unterminated = true;
                // Anything between the closing quote and the separator is kept (lenient).
                while (i < n && data[i] != ',' && data[i] != '\n' && data[i] != '\r')
                    keep(data[i++]);
            } else {
                while (i < n && data[i] != ',' && data[i] != '\n' && data[i] != '\r')
                    keep(data[i++]);
            }
            rec.bytes = i - start;
            rec.tooLong = rec.tooLong || rec.bytes > maxBytes;
            if (++rec.fieldCount <= kMaxCsvFields && !rec.tooLong)
                rec.fields.push_back(field);
            if (i < n && data[i] == ',') {
                ++i;
                continue;
            }
            if (i < n && data[i] == '\r')
                ++i;
            if (i < n && data[i] == '\n') {
                ++i;
                ++line;
            }
            recordDone = true;
        }
        const bool empty
            = rec.fieldCount == 1 && rec.fields.size() == 1 && rec.fields[0].trimmed().isEmpty() && !rec.unterminated;
        if (empty)
            continue;
        if (!haveHeader) {
            haveHeader = true;
            header(rec);
        } else {
            record(rec);
        }
        if ((++count & 1023) == 0) {
            if (cancelled(opt)) {
                out.cancelled = true;
                return;
            }
            if (opt.progress)
                opt.progress(i, n);
        }
    }
    if (!haveHeader)
        addError(out, 1, QStringLiteral("empty CSV file: expected a header row"), opt.maxReportedErrors);
    return;
}

ImportFormat detectFormat(const QString &path, const QByteArray &data, const ImportOptions &opt)
{
    const QString suffix = QFileInfo(path).suffix().toLower();
    if (suffix == QLatin1String("csv"))
        return ImportFormat::Csv;
    // JSON Lines: the first line that parses as an object decides (lines above the limits are left to the
    // parse, which reports them).
    const qint64 maxBytes = maxRowBytes(opt);
    jsonl::LineSplitter lines(std::string_view(data.constData(), size_t(data.size())));
    for (int tries = 0; tries < 50 && lines.next(); ++tries) {
        const char *s = lines.text().data();
        const qsizetype len = qsizetype(lines.text().size());
        if (len > maxBytes || tooDeepAt(s, len, opt.maxJsonDepth) >= 0)
            continue;
        const QJsonDocument doc = QJsonDocument::fromJson(QByteArray::fromRawData(s, len));
        if (!doc.isObject())
            continue;
        const QJsonObject o = doc.object();
        if (o.contains(QLatin1String("chosen")) || o.contains(QLatin1String("rejected"))
            || o.contains(QLatin1String("completion_a")) || o.contains(QLatin1String("completion_b")))
            return ImportFormat::Trl;
        if (o.contains(QLatin1String("prompt")))
            return ImportFormat::Prompts;
        return ImportFormat::Trl;
    }
    return ImportFormat::Trl;
}

// Parses `data` into `sink` and fills everything of `result` but `imported` (the sink counts those);
// returns false when nothing may be kept (cancelled, or OnError::Abort with a bad row).
bool parseInto(
    const QByteArray &data, const ImportOptions &opt, ImportResult &result, Parsed &parsed, const RowSink &sink)
{
    if (result.format == ImportFormat::Csv)
        parseCsv(data, opt, parsed, sink);
    else
        parseJsonl(data, result.format, opt, parsed, sink);
    result.errors = parsed.errors;
    result.skipped = parsed.bad;
    if (parsed.cancelled) {
        result.cancelled = true;
        result.imported = 0;
        return false;
    }
    if (opt.onError == OnError::Abort && parsed.bad > 0) {
        result.aborted = true;
        result.imported = 0;
        return false;
    }
    return true;
}

} // namespace

ImportResult importFile(ProjectStore &store, const QString &path, const ImportOptions &opt)
{
    QFile file(path);
    if (!file.open(QIODevice::ReadOnly))
        throw ProjectError(QStringLiteral("%1: cannot read: %2").arg(path, file.errorString()).toStdString());
    const QByteArray data = mappedContents(file);

    ImportResult result;
    result.format = opt.format == ImportFormat::Auto ? detectFormat(path, data, opt) : opt.format;

    // One transaction for the whole file, rows written as they are parsed. With OnError::Abort the first
    // bad row stops the writing (parsing goes on to report every bad line) and everything is rolled back.
    ProjectStore::Impl &d = store.impl();
    TxGuard tx(d);
    const int k = d.overlapSetting();
    Provenance prov;
    prov.source = QStringLiteral("import");
    Parsed parsed;
    const RowSink sink = [&](Row &&row) {
        if (opt.onError == OnError::Abort && parsed.bad > 0)
            return;
        const qint64 promptId = d.addPromptRow(row.prompt, row.promptMessages);
        if (!row.promptOnly) {
            const qint64 a = d.addCompletionRow(promptId, row.a, row.aMessages, prov);
            const qint64 b = d.addCompletionRow(promptId, row.b, row.bMessages, prov);
            const bool judged = !row.preferred.isEmpty();
            d.addPairRow(promptId, a, b, judged ? QStringLiteral("import-judged") : QStringLiteral("import"),
                JudgmentKind::Label, row.preferred, row.style, judged ? 0 : k);
        }
        ++result.imported;
    };
    if (!parseInto(data, opt, result, parsed, sink))
        return result; // rolled back
    tx.commit();
    if (opt.progress)
        opt.progress(data.size(), data.size());
    return result;
}

ImportResult parseImport(const QByteArray &data, const QString &path, const ImportOptions &opt)
{
    ImportResult result;
    result.format = opt.format == ImportFormat::Auto ? detectFormat(path, data, opt) : opt.format;
    Parsed parsed;
    const RowSink sink = [&](Row &&) {
        if (opt.onError == OnError::Skip || parsed.bad == 0)
            ++result.imported;
    };
    parseInto(data, opt, result, parsed, sink);
    return result;
}

// ---- export

namespace {

void appendJsonString(QByteArray &out, const QString &s)
{
    const QByteArray u = s.toUtf8();
    out += '"';
    for (char ch : u) {
        const auto c = static_cast<unsigned char>(ch);
        switch (c) {
        case '"':
            out += "\\\"";
            break;
        case '\\':
            out += "\\\\";
            break;
        case '\n':
            out += "\\n";
            break;
        case '\r':
            out += "\\r";
            break;
        case '\t':
            out += "\\t";
            break;
        case '\b':
            out += "\\b";
            break;
        case '\f':
            out += "\\f";
            break;
        default:
            if (c < 0x20) {
                char buf[8];
                snprintf(buf, sizeof buf, "\\u%04x", c);
                out += buf;
            } else {
                out += ch;
            }
        }
    }
    out += '"';
}

// A TRL value: the original message list when the row was conversational, else the text.
void appendValue(QByteArray &out, const QString &text, const QString &messages)
{
    if (messages.isEmpty())
        appendJsonString(out, text);
    else
        out += messages.toUtf8();
}

QJsonArray parseArray(const QString &s)
{
    return QJsonDocument::fromJson(s.toUtf8()).array();
}

// A completion of a conversational prompt that has no message list of its own (generated candidates, repairs)
// is one assistant turn: TRL wants prompt and completions both conversational or both strings.
QString completionMessages(const QString &promptMessages, const QString &text, const QString &messages)
{
    if (promptMessages.isEmpty() || !messages.isEmpty())
        return messages;
    return compact(QJsonArray {
        QJsonObject { { QStringLiteral("role"), QStringLiteral("assistant") }, { QStringLiteral("content"), text } } });
}

void appendCsvField(QByteArray &out, const QString &s)
{
    const QByteArray u = s.toUtf8();
    if (u.contains(',') || u.contains('"') || u.contains('\n') || u.contains('\r')) {
        QByteArray q = u;
        q.replace("\"", "\"\"");
        out += '"' + q + '"';
    } else {
        out += u;
    }
}

// Writes the export atomically: QSaveFile writes a temporary file in the target's folder and, on commit,
// flushes, fsyncs and renames it over the target. Until then the target keeps its old contents; a cancel,
// an error or an exception (the destructor) removes the temporary file. "-" (standard output) and targets
// that are not regular files (/dev/stdout on a pipe or terminal, a FIFO) are streams: written directly,
// as nothing can be renamed over them.
class Writer {
public:
    Writer(const QString &path)
    {
        const QFileInfo info(path);
        if (path == QLatin1String("-") || (info.exists() && !info.isFile() && !info.isDir())) {
            m_stream = std::make_unique<QFile>();
            const bool ok = path == QLatin1String("-") ? m_stream->open(stdout, QIODevice::WriteOnly)
                                                       : (m_stream->setFileName(path), m_stream->open(QIODevice::WriteOnly));
            if (!ok)
                throw ProjectError(
                    QStringLiteral("%1: cannot write: %2").arg(path, m_stream->errorString()).toStdString());
            return;
        }
        m_file.setFileName(path);
        if (!m_file.open(QIODevice::WriteOnly))
            throw ProjectError(QStringLiteral("%1: cannot write: %2").arg(path, m_file.errorString()).toStdString());
    }
    void flushIfBig()
    {
        if (buf.size() > (1 << 20))
            flush();
    }
    void flush()
    {
        QIODevice &out = m_stream ? static_cast<QIODevice &>(*m_stream) : m_file;
        if (out.write(buf) != buf.size())
            fail();
        buf.clear();
    }
    void finish()
    {
        flush();
        if (m_stream ? !m_stream->flush() : !m_file.commit())
            fail();
    }
    void discard()
    {
        if (!m_stream)
            m_file.cancelWriting(); // a stream keeps what was written: nothing to take back
    }
    QByteArray buf;

private:
    [[noreturn]] void fail()
    {
        const QString why = m_stream ? m_stream->errorString() : m_file.errorString();
        const QString name = m_stream ? (m_stream->fileName().isEmpty() ? QStringLiteral("standard output")
                                                                         : m_stream->fileName())
                                      : m_file.fileName();
        if (!m_stream)
            m_file.cancelWriting();
        throw ProjectError(QStringLiteral("%1: write failed: %2").arg(name, why).toStdString());
    }
    QSaveFile m_file;
    std::unique_ptr<QFile> m_stream; // "-" or a non-regular target
};

QString iso(const QVariant &ms)
{
    return ms.isNull() ? QString() : fromMs(ms).toString(Qt::ISODateWithMs);
}

} // namespace

ExportResult exportFile(ProjectStore &store, const QString &path, const ExportOptions &opt)
{
    ProjectStore::Impl &d = store.impl();
    ExportResult result;
    Writer w(path);
    // Every 1024 rows: a cancel discards the temporary file (the target stays as it was), else progress.
    auto cancelledAt = [&](QSqlQuery &q, qint64 seen, qint64 total) {
        if ((seen & 1023) != 0)
            return false;
        if (opt.cancel && opt.cancel->load(std::memory_order_relaxed)) {
            q.finish();
            w.discard();
            result.cancelled = true;
            result.rows = 0;
            return true;
        }
        if (opt.progress)
            opt.progress(seen, total);
        return false;
    };

    if (opt.format == ExportFormat::Trl) {
        // Votes per pair (latest label judgment per annotator, skips left out).
        std::map<qint64, std::array<int, 4>> votes;
        {
            std::map<std::pair<qint64, qint64>, int> latest;
            QSqlQuery &q = d.exec(QStringLiteral("SELECT pair_id, annotator_id, winner FROM judgments WHERE kind = "
                                                 "'label' AND winner <> 'skip' ORDER BY id"));
            while (q.next()) {
                const auto win = winnerFromName(q.value(2).toString());
                if (win && *win != Winner::Skip)
                    latest[{ q.value(0).toLongLong(), q.value(1).toLongLong() }] = int(*win);
            }
            q.finish();
            for (const auto &[key, win] : latest) {
                ++votes[key.first][size_t(win)];
            }
        }
        const qint64 total = d.scalar(QStringLiteral("SELECT COUNT(*) FROM pairs WHERE kind = 'label'")).toLongLong();
        QSqlQuery &q = d.exec(QStringLiteral(
            "SELECT p.id, p.preferred, p.import_style, pr.text, pr.messages_json, ca.text, ca.messages_json, cb.text, "
            "cb.messages_json FROM pairs p JOIN prompts pr ON pr.id = p.prompt_id JOIN completions ca ON ca.id = "
            "p.completion_a JOIN completions cb ON cb.id = p.completion_b WHERE p.kind = 'label' ORDER BY p.id"));
        qint64 seen = 0;
        while (q.next()) {
            if (cancelledAt(q, ++seen, total))
                return result;
            const qint64 id = q.value(0).toLongLong();
            bool aChosen;
            auto it = votes.find(id);
            if (it != votes.end()) {
                const auto &v = it->second;
                const int sum = v[0] + v[1] + v[2] + v[3];
                const int best = int(std::max_element(v.begin(), v.end()) - v.begin());
                if (std::count(v.begin(), v.end(), v[size_t(best)]) > 1)
                    continue; // no single majority
                if (best != int(Winner::A) && best != int(Winner::B))
                    continue; // tie or both bad
                if (sum < opt.minVotes || double(v[size_t(best)]) / sum < opt.minAgreement)
                    continue;
                aChosen = best == int(Winner::A);
            } else {
                const QString pref = q.value(1).toString();
                if (pref != QLatin1String("a") && pref != QLatin1String("b"))
                    continue;
                aChosen = pref == QLatin1String("a");
            }
            const QString promptText = q.value(3).toString(), promptMsgs = q.value(4).toString();
            const QString chosen = q.value(aChosen ? 5 : 7).toString(),
                          chosenMsgs = q.value(aChosen ? 6 : 8).toString();
            const QString rejected = q.value(aChosen ? 7 : 5).toString(),
                          rejectedMsgs = q.value(aChosen ? 8 : 6).toString();
            QByteArray &o = w.buf;
            if (q.value(2).toString() == QLatin1String("implicit")) {
                // Give back TRL's implicit-prompt shape: the prompt prefix glued onto both answers.
                o += "{\"chosen\":";
                if (!promptMsgs.isEmpty() && !chosenMsgs.isEmpty()) {
                    QJsonArray c = parseArray(promptMsgs), r = parseArray(promptMsgs);
                    for (const auto &m : parseArray(chosenMsgs))
                        c.append(m);
                    for (const auto &m : parseArray(rejectedMsgs))
                        r.append(m);
                    o += compact(c).toUtf8();
                    o += ",\"rejected\":";
                    o += compact(r).toUtf8();
                } else {
                    appendJsonString(o, promptText + chosen);
                    o += ",\"rejected\":";
                    appendJsonString(o, promptText + rejected);
                }
                o += "}\n";
            } else {
                o += "{\"prompt\":";
                appendValue(o, promptText, promptMsgs);
                o += ",\"chosen\":";
                appendValue(o, chosen, completionMessages(promptMsgs, chosen, chosenMsgs));
                o += ",\"rejected\":";
                appendValue(o, rejected, completionMessages(promptMsgs, rejected, rejectedMsgs));
                o += "}\n";
            }
            ++result.rows;
            w.flushIfBig();
        }
        q.finish();
        w.finish();
        if (opt.progress)
            opt.progress(total, total);
        return result;
    }

    // Judgments, every field.
    QString where;
    QVariantList values;
    if (opt.kind) {
        where = QStringLiteral(" WHERE j.kind = ?");
        values << kindName(*opt.kind);
    }
    const qint64 total = d.scalar(QStringLiteral("SELECT COUNT(*) FROM judgments j") + where, values).toLongLong();
    QSqlQuery &q = d.exec(
        QStringLiteral(
            "SELECT j.id, j.kind, j.pair_id, p.origin, a.name, j.left_is_a, j.verdict, j.winner, j.strength, "
            "j.rationale, j.shown_at, j.decided_at, pr.text, ca.id, ca.text, ca.source, ca.model_path, ca.checkpoint, "
            "ca.sampling_json, ca.seed, cb.id, cb.text, cb.source, cb.model_path, cb.checkpoint, cb.sampling_json, "
            "cb.seed, j.slot_id, pr.messages_json, ca.messages_json, cb.messages_json FROM judgments j JOIN annotators "
            "a ON a.id = j.annotator_id JOIN pairs p ON p.id = "
            "j.pair_id JOIN prompts pr ON pr.id = p.prompt_id JOIN completions ca ON ca.id = p.completion_a JOIN "
            "completions cb ON cb.id = p.completion_b")
            + where + QStringLiteral(" ORDER BY j.id"),
        values);
    static const QStringList columns = { "judgment_id", "kind", "pair_id", "origin", "annotator", "shown_left",
        "verdict", "winner", "strength", "rationale", "shown_at", "decided_at", "seconds", "prompt", "completion_a_id",
        "completion_a", "source_a", "model_a", "checkpoint_a", "sampling_a", "seed_a", "completion_b_id",
        "completion_b", "source_b", "model_b", "checkpoint_b", "sampling_b", "seed_b", "slot_id" };
    const bool csv = opt.format == ExportFormat::JudgmentsCsv;
    if (csv)
        w.buf += columns.join(QLatin1Char(',')).toUtf8() + "\r\n";
    qint64 seen = 0;
    while (q.next()) {
        if (cancelledAt(q, ++seen, total))
            return result;
        const int strength = q.value(8).toInt();
        const QVariantList v = {
            q.value(0).toLongLong(),
            q.value(1).toString(),
            q.value(2).toLongLong(),
            q.value(3).toString(),
            q.value(4).toString(),
            q.value(5).toInt() ? QStringLiteral("a") : QStringLiteral("b"),
            q.value(6).toString(),
            q.value(7).toString(),
            strength == 2       ? QStringLiteral("much")
                : strength == 1 ? QStringLiteral("slight")
                                : QString(),
            q.value(9).toString(),
            iso(q.value(10)),
            iso(q.value(11)),
            (q.value(11).toLongLong() - q.value(10).toLongLong()) / 1000.0,
            q.value(12).toString(),
            q.value(13).toLongLong(),
            q.value(14).toString(),
            q.value(15).toString(),
            q.value(16).toString(),
            q.value(17).toString(),
            q.value(18).toString(),
            q.value(19),
            q.value(20).toLongLong(),
            q.value(21).toString(),
            q.value(22).toString(),
            q.value(23).toString(),
            q.value(24).toString(),
            q.value(25).toString(),
            q.value(26),
            q.value(27),
        };
        if (csv) {
            for (int c = 0; c < v.size(); ++c) {
                if (c)
                    w.buf += ',';
                appendCsvField(w.buf, v[c].isNull() ? QString() : v[c].toString());
            }
            w.buf += "\r\n";
        } else {
            QJsonObject o;
            for (int c = 0; c < v.size(); ++c) {
                const QVariant &x = v[c];
                if (columns[c] == QLatin1String("sampling_a") || columns[c] == QLatin1String("sampling_b"))
                    o.insert(columns[c], QJsonDocument::fromJson(x.toString().toUtf8()).object());
                else if (x.isNull())
                    o.insert(columns[c], QJsonValue::Null);
                else if (x.typeId() == QMetaType::QString)
                    o.insert(columns[c], x.toString());
                else if (x.typeId() == QMetaType::Double)
                    o.insert(columns[c], x.toDouble());
                else
                    o.insert(columns[c], x.toLongLong());
            }
            // Conversational rows also carry their message lists (prompt, completion_a, completion_b are their
            // text renderings); the CSV keeps its fixed columns.
            static const char *const messageKeys[]
                = { "prompt_messages", "completion_a_messages", "completion_b_messages" };
            for (int m = 0; m < 3; ++m) {
                const QString json = q.value(28 + m).toString();
                if (!json.isEmpty())
                    o.insert(QLatin1String(messageKeys[m]), parseArray(json));
            }
            w.buf += QJsonDocument(o).toJson(QJsonDocument::Compact) + '\n';
        }
        ++result.rows;
        w.flushIfBig();
    }
    q.finish();
    w.finish();
    if (opt.progress)
        opt.progress(total, total);
    return result;
}

} // namespace dpo
