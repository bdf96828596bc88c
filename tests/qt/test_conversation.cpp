// Conversation rendering (project/conversation.h): message lists as role-labelled Markdown (multi-turn, tool
// calls, content parts, other roles, a code fence left open), plain text and single plain turns unchanged,
// a long system message folded to its head plus a link and given back whole when expanded, and the one-line
// summary of the Data page's table.
#include "project/conversation.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLocale>
#include <QRegularExpression>
#include "qt_test_main.h"

#include <QtTest>

namespace test_conversation { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

using namespace dpo;

class TestConversation : public QObject {
    Q_OBJECT
private slots:
    void rendersTurns_data();
    void rendersTurns();
    void foldsLongSystemMessage_data();
    void foldsLongSystemMessage();
    void summary_data();
    void summary();
};

namespace {

QString json(const QJsonArray &messages)
{
    return QString::fromUtf8(QJsonDocument(messages).toJson(QJsonDocument::Compact));
}

QJsonObject msg(const QString &role, const QJsonValue &content)
{
    return QJsonObject { { QStringLiteral("role"), role }, { QStringLiteral("content"), content } };
}

// n lines of about 60 characters each.
QString lines(int n)
{
    QStringList out;
    for (int i = 1; i <= n; ++i)
        out << QStringLiteral("Rule %1: answer in the voice of a patient teacher, briefly.").arg(i);
    return out.join(QLatin1Char('\n'));
}

} // namespace

void TestConversation::rendersTurns_data()
{
    QTest::addColumn<QString>("messages");
    QTest::addColumn<QString>("text"); // the stored text of the row
    QTest::addColumn<QString>("markdown");

    QTest::newRow("plain text") << QString() << QStringLiteral("Hello *world*\n\n13.")
                                << QStringLiteral("Hello *world*\n\n13.");
    QTest::newRow("single user turn") << json({ msg("user", "Hi!") }) << QStringLiteral("Hi!") << QStringLiteral("Hi!");
    QTest::newRow("single assistant turn") << json({ msg("assistant", "It is **4**.") })
                                           << QStringLiteral("It is **4**.") << QStringLiteral("It is **4**.");
    QTest::newRow("not a list") << QStringLiteral("{\"role\":\"user\"}") << QStringLiteral("text")
                                << QStringLiteral("text");
    QTest::newRow("multi-turn") << json(
        { msg("system", "Be brief."), msg("user", "2+2?"), msg("assistant", "4"), msg("user", "And 3+3?") })
                                << QStringLiteral("system:\nBe brief.\n\n...")
                                << QStringLiteral("**System:** Be brief.\n\n**User:** 2+2?\n\n**Assistant:** 4"
                                                  "\n\n**User:** And 3+3?");
    QJsonObject call { { "type", "function" },
        { "function", QJsonObject { { "name", "get_weather" }, { "arguments", "{\"city\": \"Paris\"}" } } } };
    QJsonObject callObjectArgs { { "type", "function" },
        { "function", QJsonObject { { "name", "get_time" }, { "arguments", QJsonObject { { "tz", "CET" } } } } } };
    QJsonObject assistantCalls = msg("assistant", QJsonValue::Null);
    assistantCalls.insert("tool_calls", QJsonArray { call, callObjectArgs });
    QJsonObject tool = msg("tool", "18 °C");
    tool.insert("name", "get_weather");
    QTest::newRow("tool calls") << json({ msg("user", "Weather in Paris?"), assistantCalls, tool }) << QString()
                                << QStringLiteral("**User:** Weather in Paris?\n\n**Assistant:** "
                                                  "*Tool call:* `get_weather({\"city\":\"Paris\"})`  \n"
                                                  "*Tool call:* `get_time({\"tz\":\"CET\"})`\n\n"
                                                  "**Tool · get\\_weather:** 18 °C");
    QJsonObject textAndCall = msg("assistant", "Let me check.");
    textAndCall.insert("tool_calls", QJsonArray { call });
    QTest::newRow("single assistant turn with a tool call")
        << json({ textAndCall }) << QStringLiteral("Let me check.")
        << QStringLiteral("**Assistant:** Let me check.\n\n*Tool call:* `get_weather({\"city\":\"Paris\"})`");
    QTest::newRow("content parts") << json(
        { msg("user",
              QJsonArray { QJsonObject { { "type", "text" }, { "text", "What is this?" } },
                  QJsonObject { { "type", "image" } } }),
            msg("assistant", "A cat.") })
                                   << QString()
                                   << QStringLiteral("**User:** What is this?\n\n*[image]*\n\n**Assistant:** A cat.");
    QTest::newRow("other role, escaped") << json({ msg("critic_*1*", "x"), msg("user", "y") }) << QString()
                                         << QStringLiteral("**critic\\_\\*1\\*:** x\n\n**User:** y");
    QTest::newRow("open fence closed in its turn")
        << json({ msg("user", "```py\nprint(1)"), msg("assistant", "ok") }) << QString()
        << QStringLiteral("**User:**\n\n```py\nprint(1)\n```\n\n**Assistant:** ok");
    QTest::newRow("blocks start below the label")
        << json({ msg("user", "- one\n- two"), msg("assistant", "Title\n===\nbody"), msg("user", "    code"),
               msg("assistant", "13. thirteen") })
        << QString()
        << QStringLiteral(
               "**User:**\n\n- one  \n- two\n\n**Assistant:**\n\nTitle\n===\nbody\n\n**User:**\n\n    code\n\n"
               "**Assistant:**\n\n13. thirteen");
    QTest::newRow("line breaks kept outside assistant turns")
        << json({ msg("system", "One.\nTwo.\n\nThree."), msg("user", "a\n```\nx\ny\n```\n| t |\n|---|"),
               msg("assistant", "p\nq") })
        << QString()
        << QStringLiteral("**System:** One.  \nTwo.\n\nThree.\n\n**User:** a\n```\nx\ny\n```\n| t |\n|---|\n\n"
                          "**Assistant:** p\nq");
    QTest::newRow("empty turn") << json({ msg("user", "Say nothing."), msg("assistant", "") }) << QString()
                                << QStringLiteral("**User:** Say nothing.\n\n**Assistant:** *(empty)*");
}

void TestConversation::rendersTurns()
{
    QFETCH(QString, messages);
    QFETCH(QString, text);
    QFETCH(QString, markdown);
    const ConversationMarkdown md = conversationMarkdown(messages, text);
    QCOMPARE(md.markdown, markdown);
    QVERIFY(md.expanded.isEmpty()); // nothing to fold
    QCOMPARE(isConversation(messages), markdown != text);
}

void TestConversation::foldsLongSystemMessage_data()
{
    QTest::addColumn<QString>("system");
    QTest::addColumn<bool>("folded");
    QTest::addColumn<QString>("head"); // shown while folded ("" when not folded)

    QTest::newRow("short") << QStringLiteral("Be brief.") << false << QString();
    QTest::newRow("six lines") << lines(6) << false << QString();
    QTest::newRow("seven lines") << lines(7) << true << lines(3);
    QTest::newRow("exactly 400 characters") << QString(400, QLatin1Char('x')) << false << QString();
    // One long paragraph: cut at a word.
    QString words;
    while (words.size() <= 600)
        words += QStringLiteral("lorem ipsum ");
    words = words.trimmed();
    QTest::newRow("one long line") << words << true << words.left(words.lastIndexOf(QLatin1Char(' '), 280));
    // A fence opened in the head is closed before the link.
    QTest::newRow("fence in the head") << QStringLiteral("```json\n") + lines(9) + QStringLiteral("\n```") << true
                                       << QStringLiteral("```json\n") + lines(2);
    QTest::newRow("developer role folds too") << lines(10) << true << lines(3);
}

void TestConversation::foldsLongSystemMessage()
{
    QFETCH(QString, system);
    QFETCH(bool, folded);
    QFETCH(QString, head);
    const QString role = QString::fromLatin1(QTest::currentDataTag()).startsWith(QLatin1String("developer"))
        ? QStringLiteral("developer")
        : QStringLiteral("system");
    const QString messages = json({ msg(role, system), msg("user", "Hello?") });
    const ConversationMarkdown md = conversationMarkdown(messages, QString());
    QVERIFY(md.markdown.endsWith(QLatin1String("**User:** Hello?")));
    // System lines end in hard breaks: compare without them.
    const QString shown = QString(md.markdown).replace(QLatin1String("  \n"), QLatin1String("\n"));
    const QString expanded = QString(md.expanded).replace(QLatin1String("  \n"), QLatin1String("\n"));
    if (!folded) {
        QVERIFY(md.expanded.isEmpty());
        QVERIFY(shown.contains(system));
        QVERIFY(!md.markdown.contains(QLatin1String(kExpandHref)));
        return;
    }
    // Folded: the head, an ellipsis and a link that says how much is hidden; the tail is not there.
    QVERIFY2(shown.contains(head + QStringLiteral(" …")), qPrintable(md.markdown));
    QVERIFY(!shown.contains(system));
    QVERIFY(md.markdown.contains(
        QStringLiteral("%1 characters)](%2)").arg(QLocale().toString(system.size()), QLatin1String(kExpandHref))));
    const qsizetype fences = md.markdown.count(QRegularExpression(QStringLiteral("(^|\\n)```")));
    QCOMPARE(fences % 2, 0);
    // Expanded: everything, and a link to fold it again.
    QVERIFY(expanded.contains(system));
    QVERIFY(md.expanded.contains(QStringLiteral("](%1)").arg(QLatin1String(kCollapseHref))));
    QVERIFY(!md.expanded.contains(QLatin1String(kExpandHref)));
    QVERIFY(md.expanded.endsWith(QLatin1String("**User:** Hello?")));
}

void TestConversation::summary_data()
{
    QTest::addColumn<QString>("messages");
    QTest::addColumn<QString>("text");
    QTest::addColumn<QString>("summary");
    QTest::addColumn<int>("turns");
    QTest::newRow("plain") << QString() << QStringLiteral("What is 2+2?") << QStringLiteral("What is 2+2?") << 0;
    QTest::newRow("single turn") << json({ msg("user", "Hi!") }) << QStringLiteral("Hi!") << QStringLiteral("Hi!") << 0;
    QTest::newRow("last user message") << json(
        { msg("system", lines(20)), msg("user", "2+2?"), msg("assistant", "4"), msg("user", "And\n3+3?") })
                                       << QString() << QStringLiteral("4 turns · And 3+3?") << 4;
    QTest::newRow("no user message") << json({ msg("system", "Be brief."), msg("assistant", "Hello.") }) << QString()
                                     << QStringLiteral("2 turns · Hello.") << 2;
}

void TestConversation::summary()
{
    QFETCH(QString, messages);
    QFETCH(QString, text);
    QFETCH(QString, summary);
    QFETCH(int, turns);
    QCOMPARE(conversationSummary(messages, text), summary);
    QCOMPARE(conversationTurns(messages), turns);
}

DPO_TEST_MAIN(TestConversation)

} // namespace test_conversation

#include "test_conversation.moc"
