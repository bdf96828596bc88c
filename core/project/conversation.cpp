#include "project/conversation.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLocale>
#include <QRegularExpression>
#include <QStringList>

#include <optional>

namespace dpo {

namespace {

// What the folded head of a long system message keeps.
constexpr int kHeadLines = 3;
constexpr int kHeadChars = 280;
// Tool-call arguments longer than this are cut: the call is a reminder, not the payload.
constexpr int kArgumentChars = 160;

std::optional<QJsonArray> parseMessages(const QString &messagesJson)
{
    if (messagesJson.isEmpty())
        return std::nullopt;
    const QJsonDocument doc = QJsonDocument::fromJson(messagesJson.toUtf8());
    if (!doc.isArray() || doc.array().isEmpty())
        return std::nullopt;
    return doc.array();
}

QString escapeMarkdown(const QString &s)
{
    static const QRegularExpression special(QStringLiteral("([\\\\`*_\\[\\]<>#|~!])"));
    return QString(s).replace(special, QStringLiteral("\\\\1"));
}

// Inline code that survives backticks inside: a longer backtick run around it, padded when it starts or
// ends with one (CommonMark code spans).
QString inlineCode(const QString &s)
{
    int longest = 0, run = 0;
    for (QChar c : s) {
        run = c == QLatin1Char('`') ? run + 1 : 0;
        longest = std::max(longest, run);
    }
    const QString fence(longest + 1, QLatin1Char('`'));
    const bool pad = s.startsWith(QLatin1Char('`')) || s.endsWith(QLatin1Char('`'));
    return fence + (pad ? QStringLiteral(" ") : QString()) + s + (pad ? QStringLiteral(" ") : QString()) + fence;
}

// A code fence opened in one turn and never closed would swallow every turn after it: close it here.
QString closeFences(const QString &markdown)
{
    static const QRegularExpression fenceLine(QStringLiteral("^ {0,3}(`{3,}|~{3,})"));
    QString open; // the fence that opened the current block, empty outside one
    for (const QString &line : markdown.split(QLatin1Char('\n'))) {
        const QRegularExpressionMatch m = fenceLine.match(line);
        if (!m.hasMatch())
            continue;
        const QString f = m.captured(1);
        if (open.isEmpty())
            open = f;
        else if (f[0] == open[0] && f.size() >= open.size() && line.trimmed() == f)
            open.clear();
    }
    return open.isEmpty() ? markdown : markdown + QLatin1Char('\n') + open;
}

// String content as is; content parts as their text, other parts named by type.
QString contentMarkdown(const QJsonValue &content)
{
    if (content.isString())
        return content.toString();
    if (content.isArray()) {
        QStringList parts;
        for (const QJsonValue &p : content.toArray()) {
            const QJsonObject o = p.toObject();
            if (p.isString())
                parts << p.toString();
            else if (o.value(QLatin1String("text")).isString())
                parts << o.value(QLatin1String("text")).toString();
            else if (o.value(QLatin1String("type")).isString())
                parts << QStringLiteral("*[%1]*").arg(escapeMarkdown(o.value(QLatin1String("type")).toString()));
        }
        return parts.join(QStringLiteral("\n\n"));
    }
    if (content.isObject())
        return QStringLiteral("```json\n%1\n```")
            .arg(QString::fromUtf8(QJsonDocument(content.toObject()).toJson(QJsonDocument::Indented)).trimmed());
    return {};
}

QString compactJson(const QJsonValue &v)
{
    if (v.isObject())
        return QString::fromUtf8(QJsonDocument(v.toObject()).toJson(QJsonDocument::Compact));
    if (v.isArray())
        return QString::fromUtf8(QJsonDocument(v.toArray()).toJson(QJsonDocument::Compact));
    return v.toVariant().toString();
}

// One line per call: `name({"arg":1})`. Arguments come as an object or (OpenAI style) as a JSON string.
QString toolCallsMarkdown(const QJsonArray &calls)
{
    QStringList lines;
    for (const QJsonValue &c : calls) {
        const QJsonObject call = c.toObject();
        const QJsonObject fn = call.value(QLatin1String("function")).toObject();
        QString name = fn.value(QLatin1String("name")).toString();
        if (name.isEmpty())
            name = call.value(QLatin1String("name")).toString();
        QJsonValue args = fn.contains(QLatin1String("arguments")) ? fn.value(QLatin1String("arguments"))
                                                                  : call.value(QLatin1String("arguments"));
        QString argText;
        if (args.isString()) {
            const QJsonDocument parsed = QJsonDocument::fromJson(args.toString().toUtf8());
            argText = parsed.isNull()
                ? args.toString()
                : compactJson(parsed.isObject() ? QJsonValue(parsed.object()) : QJsonValue(parsed.array()));
        } else if (!args.isUndefined() && !args.isNull()) {
            argText = compactJson(args);
        }
        argText.replace(QLatin1Char('\n'), QLatin1Char(' '));
        if (argText.size() > kArgumentChars)
            argText = argText.left(kArgumentChars) + QStringLiteral("…");
        lines << QStringLiteral("*Tool call:* %1")
                     .arg(inlineCode((name.isEmpty() ? QStringLiteral("?") : name) + QLatin1Char('(') + argText
                         + QLatin1Char(')')));
    }
    // Hard line breaks keep the calls one to a line without list bullets.
    return lines.join(QStringLiteral("  \n"));
}

QString roleLabel(const QJsonObject &m)
{
    const QString role = m.value(QLatin1String("role")).toString();
    QString label = escapeMarkdown(conversationRoleLabel(role));
    const QString name = m.value(QLatin1String("name")).toString();
    if (role == QLatin1String("tool") && !name.isEmpty())
        label += QStringLiteral(" · ") + escapeMarkdown(name);
    return QStringLiteral("**%1:**").arg(label);
}

// Whether text starts with a plain paragraph that a label may lead (not a block element, and not a line that
// the next one turns into a setext heading).
bool opensWithParagraph(const QString &text)
{
    static const QRegularExpression block(
        QStringLiteral("^( {0,3}(#{1,6}(\\s|$)|>|[*+-](\\s|$)|\\d{1,9}[.)](\\s|$)|```|~~~|\\||<)| {4,}|\\t|\\s*$)"));
    static const QRegularExpression underline(QStringLiteral("^ {0,3}(=+|-+)\\s*$"));
    const QStringList lines = text.split(QLatin1Char('\n'));
    return !block.match(lines[0]).hasMatch() && (lines.size() < 2 || !underline.match(lines[1]).hasMatch());
}

// System prompts, user messages and tool results are typed or printed line by line, and the model reads
// every line break: show them as breaks instead of joining lines into one paragraph as Markdown would.
// Assistant turns are the model's own Markdown and stay as they are, like plain completions.
QString keepLineBreaks(const QString &role, const QString &markdown)
{
    if (role == QLatin1String("assistant"))
        return markdown;
    static const QRegularExpression fenceLine(QStringLiteral("^ {0,3}(`{3,}|~{3,})"));
    QStringList lines = markdown.split(QLatin1Char('\n'));
    bool inFence = false;
    for (qsizetype i = 0; i + 1 < lines.size(); ++i) {
        if (fenceLine.match(lines[i]).hasMatch()) {
            inFence = !inFence;
            continue;
        }
        // Only a line followed by another in the same paragraph: blank lines, code and tables stay as they are.
        if (inFence || lines[i].trimmed().isEmpty() || lines[i + 1].trimmed().isEmpty()
            || lines[i].trimmed().startsWith(QLatin1Char('|')) || fenceLine.match(lines[i + 1]).hasMatch()
            || lines[i].endsWith(QLatin1String("  ")) || lines[i].endsWith(QLatin1Char('\\')))
            continue;
        lines[i] += QLatin1String("  ");
    }
    return lines.join(QLatin1Char('\n'));
}

bool foldable(const QString &role)
{
    // "developer" is the system message of newer OpenAI-style data.
    return role == QLatin1String("system") || role == QLatin1String("developer");
}

bool isLong(const QString &content)
{
    return content.size() > kFoldChars || content.count(QLatin1Char('\n')) + 1 > kFoldLines;
}

// The first lines of a long message, cut at a word when the first line alone is too long.
QString head(const QString &content)
{
    const QStringList lines = content.split(QLatin1Char('\n'));
    QStringList kept;
    int chars = 0;
    for (const QString &line : lines) {
        if (kept.size() == kHeadLines || (!kept.isEmpty() && chars + line.size() > kHeadChars))
            break;
        kept << line;
        chars += int(line.size()) + 1;
    }
    QString h = kept.join(QLatin1Char('\n'));
    if (h.size() > kHeadChars) {
        const qsizetype space = h.lastIndexOf(QLatin1Char(' '), kHeadChars);
        h = h.left(space > kHeadChars / 2 ? space : kHeadChars);
    }
    while (h.endsWith(QLatin1Char('\n')) || h.endsWith(QLatin1Char(' ')))
        h.chop(1);
    return closeFences(h + QStringLiteral(" …"));
}

QString render(const QJsonArray &messages, bool expand, bool *folded)
{
    const QLocale loc;
    QStringList blocks;
    for (const QJsonValue &v : messages) {
        if (!v.isObject())
            continue;
        const QJsonObject m = v.toObject();
        const QString role = m.value(QLatin1String("role")).toString();
        QString body = contentMarkdown(m.value(QLatin1String("content")));
        if (foldable(role) && isLong(body)) {
            *folded = true;
            const QString size = QStringLiteral("%1 lines, %2 characters")
                                     .arg(loc.toString(body.count(QLatin1Char('\n')) + 1), loc.toString(body.size()));
            if (expand)
                body = keepLineBreaks(role, closeFences(body))
                    + QStringLiteral("\n\n[Fold the system message](%1)").arg(QLatin1String(kCollapseHref));
            else
                body = keepLineBreaks(role, head(body))
                    + QStringLiteral("\n\n[Show the whole system message (%1)](%2)")
                          .arg(size, QLatin1String(kExpandHref));
        } else {
            body = keepLineBreaks(role, closeFences(body));
        }
        const QJsonArray calls = m.value(QLatin1String("tool_calls")).toArray();
        if (!calls.isEmpty())
            body += (body.trimmed().isEmpty() ? QString() : QStringLiteral("\n\n")) + toolCallsMarkdown(calls);
        if (body.trimmed().isEmpty())
            body = QStringLiteral("*(empty)*");
        // "**User:** text" reads like a transcript and keeps a short turn on one line; a turn that opens with a
        // block (list, code, heading, quote, table) starts below its label instead.
        blocks << roleLabel(m) + (opensWithParagraph(body) ? QStringLiteral(" ") : QStringLiteral("\n\n")) + body;
    }
    return blocks.join(QStringLiteral("\n\n"));
}

bool plainTurn(const QJsonArray &messages)
{
    if (messages.size() != 1)
        return false;
    const QJsonObject m = messages[0].toObject();
    const QString role = m.value(QLatin1String("role")).toString();
    return (role == QLatin1String("user") || role == QLatin1String("assistant"))
        && m.value(QLatin1String("content")).isString() && m.value(QLatin1String("tool_calls")).toArray().isEmpty();
}

} // namespace

QString conversationRoleLabel(const QString &role)
{
    if (role == QLatin1String("system"))
        return QStringLiteral("System");
    if (role == QLatin1String("user"))
        return QStringLiteral("User");
    if (role == QLatin1String("assistant"))
        return QStringLiteral("Assistant");
    if (role == QLatin1String("tool"))
        return QStringLiteral("Tool");
    return role.isEmpty() ? QStringLiteral("(no role)") : role;
}

bool isConversation(const QString &messagesJson)
{
    return conversationTurns(messagesJson) > 0;
}

int conversationTurns(const QString &messagesJson)
{
    const auto messages = parseMessages(messagesJson);
    return messages && !plainTurn(*messages) ? int(messages->size()) : 0;
}

ConversationMarkdown conversationMarkdown(const QString &messagesJson, const QString &text)
{
    const auto messages = parseMessages(messagesJson);
    if (!messages || plainTurn(*messages))
        return { text, {} };
    bool folded = false;
    ConversationMarkdown out;
    out.markdown = render(*messages, false, &folded);
    if (folded)
        out.expanded = render(*messages, true, &folded);
    return out;
}

QString conversationSummary(const QString &messagesJson, const QString &text)
{
    const auto messages = parseMessages(messagesJson);
    if (!messages || plainTurn(*messages))
        return text;
    // The last user message is what the completions answer; without one, the last message.
    QJsonObject pick = messages->last().toObject();
    for (qsizetype i = messages->size() - 1; i >= 0; --i) {
        if ((*messages)[i].toObject().value(QLatin1String("role")).toString() == QLatin1String("user")) {
            pick = (*messages)[i].toObject();
            break;
        }
    }
    const QString last = contentMarkdown(pick.value(QLatin1String("content"))).simplified();
    const qsizetype n = messages->size();
    return (n == 1 ? QStringLiteral("1 turn") : QStringLiteral("%1 turns").arg(n)) + QStringLiteral(" · ") + last;
}

} // namespace dpo
