// MarkdownView: completions are shown as Markdown, but a line that is only a list marker ("13.", "2)",
// "-") must stay visible text instead of turning into an empty list item; real lists and code blocks
// keep their meaning. A folded text (a long system message) opens and closes again from its links, and a
// relative link in a prompt leaves the view's text alone.
#include "ui/widgets/markdownview.h"

#include "markdown_test_util.h"
#include "project/conversation.h"

#include <QSignalSpy>
#include <QTextBlock>
#include <QTextDocument>
#include <QTextList>
#include "qt_test_main.h"

#include <QtTest>

namespace test_markdown_view { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

class TestMarkdownView : public QObject {
    Q_OBJECT
private slots:
    void rendersText_data();
    void rendersText();
    void escapeLeavesOtherLinesAlone();
    void foldLinksSwitchText();
    void relativeLinkStaysPut();
};

void TestMarkdownView::rendersText_data()
{
    QTest::addColumn<QString>("markdown");
    QTest::addColumn<QString>("visible"); // must appear in the rendered plain text
    QTest::addColumn<int>("lists"); // list blocks in the document

    QTest::newRow("bare number") << QStringLiteral("13.") << QStringLiteral("13.") << 0;
    QTest::newRow("bare paren number") << QStringLiteral("2)") << QStringLiteral("2)") << 0;
    QTest::newRow("bare dash") << QStringLiteral("-") << QStringLiteral("-") << 0;
    QTest::newRow("after a paragraph") << QStringLiteral("The sum is\n\n13.") << QStringLiteral("13.") << 0;
    QTest::newRow("indented") << QStringLiteral("  7. ") << QStringLiteral("7.") << 0;
    QTest::newRow("real list") << QStringLiteral("1. first\n2. second") << QStringLiteral("second") << 2;
    QTest::newRow("bullet list") << QStringLiteral("- a\n- b") << QStringLiteral("b") << 2;
    QTest::newRow("in code") << QStringLiteral("```\n13.\n```") << QStringLiteral("13.") << 0;
}

void TestMarkdownView::rendersText()
{
    QFETCH(QString, markdown);
    QFETCH(QString, visible);
    QFETCH(int, lists);
    MarkdownView view;
    view.setMarkdownText(markdown);
    QCOMPARE(view.markdownText(), markdown); // the original is kept (edits, diffs, exports use it)
    QVERIFY2(view.toPlainText().contains(visible), qPrintable(view.toPlainText()));
    int listBlocks = 0;
    for (QTextBlock b = view.document()->begin(); b.isValid(); b = b.next())
        listBlocks += b.textList() ? 1 : 0;
    QCOMPARE(listBlocks, lists);
}

void TestMarkdownView::escapeLeavesOtherLinesAlone()
{
    QCOMPARE(MarkdownView::escapeBareListMarkers(QStringLiteral("a\n13.\nb")), QStringLiteral("a\n13\\.\nb"));
    QCOMPARE(MarkdownView::escapeBareListMarkers(QStringLiteral("1. x")), QStringLiteral("1. x"));
    QCOMPARE(MarkdownView::escapeBareListMarkers(QStringLiteral("---")), QStringLiteral("---"));
    QCOMPARE(MarkdownView::escapeBareListMarkers(QStringLiteral("~~~\n-\n~~~\n-")), QStringLiteral("~~~\n-\n~~~\n\\-"));
}

void TestMarkdownView::foldLinksSwitchText()
{
    QString system;
    for (int i = 1; i <= 30; ++i)
        system += QStringLiteral("Rule %1 of the house style.\n").arg(i);
    const QString messages = QStringLiteral("[{\"role\":\"system\",\"content\":\"%1\"},{\"role\":\"user\",\"content\":"
                                            "\"Write a haiku.\"}]")
                                 .arg(system.trimmed().replace(QLatin1Char('\n'), QLatin1String("\\n")));
    const dpo::ConversationMarkdown md = dpo::conversationMarkdown(messages, QString());
    QVERIFY(!md.expanded.isEmpty());
    MarkdownView view;
    view.resize(600, 400);
    view.show();
    QVERIFY(QTest::qWaitForWindowExposed(&view));
    QSignalSpy expanded(&view, &MarkdownView::expandedChanged);
    QSignalSpy rerendered(&view, &MarkdownView::rerendered);
    view.setFoldableMarkdown(md.markdown, md.expanded);
    QVERIFY(view.isFoldable());
    QVERIFY(!view.isExpanded());
    QVERIFY(view.toPlainText().contains(QLatin1String("Rule 1 of")));
    QVERIFY(!view.toPlainText().contains(QLatin1String("Rule 30 of")));
    QVERIFY(view.toPlainText().contains(QLatin1String("Write a haiku.")));

    QVERIFY(markdowntest::clickLink(&view, QLatin1String(dpo::kExpandHref)));
    QCOMPARE(expanded.count(), 1);
    QCOMPARE(expanded.last().at(0).toBool(), true);
    QCOMPARE(rerendered.count(), 1); // the word diff hangs on this
    QVERIFY(view.isExpanded());
    QCOMPARE(view.markdownText(), md.expanded);
    QVERIFY(view.toPlainText().contains(QLatin1String("Rule 30 of")));

    QVERIFY(markdowntest::clickLink(&view, QLatin1String(dpo::kCollapseHref)));
    QCOMPARE(expanded.count(), 2);
    QCOMPARE(expanded.last().at(0).toBool(), false);
    QVERIFY(!view.toPlainText().contains(QLatin1String("Rule 30 of")));

    // A new text starts folded; a text without folds has no expanded form.
    QVERIFY(markdowntest::clickLink(&view, QLatin1String(dpo::kExpandHref)));
    view.setFoldableMarkdown(md.markdown, md.expanded);
    QVERIFY(!view.isExpanded());
    view.setMarkdownText(QStringLiteral("plain"));
    QVERIFY(!view.isFoldable());
    view.setExpanded(true);
    QVERIFY(!view.isExpanded());
    QCOMPARE(view.markdownText(), QStringLiteral("plain"));
}

void TestMarkdownView::relativeLinkStaysPut()
{
    MarkdownView view;
    view.resize(400, 200);
    view.show();
    QVERIFY(QTest::qWaitForWindowExposed(&view));
    view.setMarkdownText(QStringLiteral("See [the notes](notes.md) first."));
    QVERIFY(markdowntest::clickLink(&view, QStringLiteral("notes.md")));
    QCOMPARE(view.toPlainText(), QStringLiteral("See the notes first."));
    QVERIFY(view.source().isEmpty());
}

DPO_TEST_MAIN(TestMarkdownView)

} // namespace test_markdown_view

#include "test_markdown_view.moc"
