// WordDiff: tokenization and the LCS word diff behind the Label page's "highlight differences".
#include "ui/widgets/worddiff.h"

#include "qt_test_main.h"

#include <QtTest>

namespace test_word_diff { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

class TestWordDiff : public QObject {
    Q_OBJECT
private slots:
    void tokenize_data();
    void tokenize();
    void diff_data();
    void diff();
    void tokenPositions();
    void longInputFallsBack();
};

void TestWordDiff::tokenize_data()
{
    QTest::addColumn<QString>("text");
    QTest::addColumn<QStringList>("tokens");
    QTest::newRow("empty") << QString() << QStringList {};
    QTest::newRow("spaces only") << QStringLiteral("  \n\t ") << QStringList {};
    QTest::newRow("words") << QStringLiteral("hello  world") << QStringList { "hello", "world" };
    QTest::newRow("punctuation split") << QStringLiteral("x = 42.") << QStringList { "x", "=", "42", "." };
    QTest::newRow("underscore in word") << QStringLiteral("max_of(a)") << QStringList { "max_of", "(", "a", ")" };
    QTest::newRow("accents stay in word") << QStringLiteral("café naïve") << QStringList { "café", "naïve" };
    QTest::newRow("emoji whole") << QStringLiteral("hi 🎉!") << QStringList { "hi", "🎉", "!" };
}

void TestWordDiff::tokenize()
{
    QFETCH(QString, text);
    QFETCH(QStringList, tokens);
    QStringList got;
    for (const WordToken &t : WordDiff::tokenize(text)) {
        QCOMPARE(text.mid(t.start, t.length), t.text);
        got << t.text;
    }
    QCOMPARE(got, tokens);
}

// Changed words are written as the list of changed token texts on each side.
void TestWordDiff::diff_data()
{
    QTest::addColumn<QString>("left");
    QTest::addColumn<QString>("right");
    QTest::addColumn<QStringList>("changedLeft");
    QTest::addColumn<QStringList>("changedRight");
    QTest::newRow("identical") << "the answer is 42"
                               << "the answer is 42" << QStringList {} << QStringList {};
    QTest::newRow("whitespace only differs") << "a  b\nc"
                                             << "a b c" << QStringList {} << QStringList {};
    QTest::newRow("one word replaced") << "The answer is 72."
                                       << "The answer is 81." << QStringList { "72" } << QStringList { "81" };
    QTest::newRow("insertion") << "a c"
                               << "a b c" << QStringList {} << QStringList { "b" };
    QTest::newRow("deletion") << "a b c"
                              << "a c" << QStringList { "b" } << QStringList {};
    QTest::newRow("all different") << "yes"
                                   << "no" << QStringList { "yes" } << QStringList { "no" };
    QTest::newRow("one side empty") << ""
                                    << "hello there" << QStringList {} << QStringList { "hello", "there" };
    QTest::newRow("case matters") << "Hello"
                                  << "hello" << QStringList { "Hello" } << QStringList { "hello" };
    QTest::newRow("moved word") << "a b c d"
                                << "b c d a" << QStringList { "a" } << QStringList { "a" };
    QTest::newRow("repeated words") << "x x y"
                                    << "x y y" << QStringList { "x" } << QStringList { "y" };
    QTest::newRow("code change") << "if (a[i] > m) m = a[i];"
                                 << "if (a[i] < m) m = a[i];" << QStringList { ">" } << QStringList { "<" };
}

void TestWordDiff::diff()
{
    QFETCH(QString, left);
    QFETCH(QString, right);
    QFETCH(QStringList, changedLeft);
    QFETCH(QStringList, changedRight);
    const WordDiffResult r = WordDiff::diff(left, right);
    QVERIFY(r.exact);
    QCOMPARE(r.leftChanged.size(), r.left.size());
    QCOMPARE(r.rightChanged.size(), r.right.size());
    QStringList gotL, gotR;
    for (int i = 0; i < r.left.size(); ++i)
        if (r.leftChanged[i])
            gotL << r.left[i].text;
    for (int i = 0; i < r.right.size(); ++i)
        if (r.rightChanged[i])
            gotR << r.right[i].text;
    QCOMPARE(gotL, changedLeft);
    QCOMPARE(gotR, changedRight);
    // The unchanged tokens on both sides are the same sequence (a common subsequence).
    QStringList keepL, keepR;
    for (int i = 0; i < r.left.size(); ++i)
        if (!r.leftChanged[i])
            keepL << r.left[i].text;
    for (int i = 0; i < r.right.size(); ++i)
        if (!r.rightChanged[i])
            keepR << r.right[i].text;
    QCOMPARE(keepL, keepR);
}

void TestWordDiff::tokenPositions()
{
    const QString s = QStringLiteral("ab  cd\nef");
    const auto t = WordDiff::tokenize(s);
    QCOMPARE(t.size(), 3);
    QCOMPARE(t[0].start, 0);
    QCOMPARE(t[1].start, 4);
    QCOMPARE(t[2].start, 7);
    QCOMPARE(t[2].length, 2);
}

void TestWordDiff::longInputFallsBack()
{
    // Beyond maxCells the middle is marked changed wholesale, but prefix and suffix still match.
    QStringList a, b;
    for (int i = 0; i < 2500; ++i) {
        a << QStringLiteral("a%1").arg(i);
        b << QStringLiteral("b%1").arg(i);
    }
    const QString left = QStringLiteral("same start ") + a.join(' ') + QStringLiteral(" same end");
    const QString right = QStringLiteral("same start ") + b.join(' ') + QStringLiteral(" same end");
    const WordDiffResult r = WordDiff::diff(left, right);
    QVERIFY(!r.exact);
    QVERIFY(!r.leftChanged.first());
    QVERIFY(!r.leftChanged.last());
    QCOMPARE(r.changedLeft(), 2500);
    QCOMPARE(r.changedRight(), 2500);
}

DPO_TEST_MAIN(TestWordDiff)

} // namespace test_word_diff

#include "test_word_diff.moc"
