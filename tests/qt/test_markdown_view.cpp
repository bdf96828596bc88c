// MarkdownView: completions are shown as Markdown, but a line that is only a list marker ("13.", "2)",
// "-") must stay visible text instead of turning into an empty list item; real lists and code blocks
// keep their meaning.
#include "ui/widgets/markdownview.h"

#include <QTextBlock>
#include <QTextDocument>
#include <QTextList>
#include <QtTest>

class TestMarkdownView : public QObject {
    Q_OBJECT
private slots:
    void rendersText_data();
    void rendersText();
    void escapeLeavesOtherLinesAlone();
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

QTEST_MAIN(TestMarkdownView)
#include "test_markdown_view.moc"
