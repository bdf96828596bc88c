// LabelPage on real widgets (offscreen) over a real SQLite project: keys drive verdicts with the right
// winner for the recorded side order, undo, repair, randomized and recorded order, progress, the
// shortcut sheet, typing in the rationale never triggers a verdict, the diff toggle, and a conversational
// pair imported from JSONL (turns under their roles, the long system message folded and opened by its
// link, tool calls, the verdict exported with the messages).
#include "markdown_test_util.h"
#include "project/conversation.h"
#include "project/project_store.h"
#include "ui/label/labelpage.h"
#include "ui/label/repairdialog.h"
#include "ui/label/shortcutsheet.h"
#include "ui/shell/projectsession.h"
#include "ui/widgets/markdownview.h"

#include <QDialogButtonBox>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QScrollBar>
#include <QSettings>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QTextBlock>
#include "qt_test_main.h"

#include <QtTest>

Q_DECLARE_METATYPE(dpo::Verdict)

namespace test_label_page { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

using namespace dpo;

class TestLabelPage : public QObject {
    Q_OBJECT
private slots:
    void initTestCase();
    void init();
    void cleanup();
    void keysDriveVerdicts_data();
    void keysDriveVerdicts();
    void strengthAndRationale();
    void typingInRationaleIsNotAVerdict();
    void undoRestoresPair();
    void repairCreatesPair();
    void orderRandomizedAndRecorded();
    void progressLabelUpdates();
    void shortcutSheetOnQuestionMark();
    void diffToggleHighlights();
    void queueExhaustedShowsMessage();
    void conversationalPair();

private:
    void makeProject(int pairs);
    std::optional<Judgment> judgmentOf(qint64 pairId) const;

    std::unique_ptr<QTemporaryDir> m_dir;
    std::unique_ptr<ProjectSession> m_session;
    std::unique_ptr<LabelPage> m_page;
};

void TestLabelPage::initTestCase()
{
    QStandardPaths::setTestModeEnabled(true);
    QCoreApplication::setOrganizationName(QStringLiteral("DPO Studio Tests"));
    QCoreApplication::setApplicationName(QStringLiteral("test_label_page"));
    qRegisterMetaType<dpo::Verdict>();
}

void TestLabelPage::makeProject(int pairs)
{
    m_dir = std::make_unique<QTemporaryDir>();
    QVERIFY(m_dir->isValid());
    auto store = ProjectStore::open(m_dir->filePath(QStringLiteral("p.dpo")));
    {
        ProjectStore::Transaction tx(*store);
        for (int i = 0; i < pairs; ++i) {
            const qint64 p = store->addPrompt(QStringLiteral("Prompt number %1: what is %1 + %1?").arg(i));
            const qint64 a = store->addCompletion(p, QStringLiteral("It is **%1**.").arg(2 * i));
            const qint64 b = store->addCompletion(p, QStringLiteral("It is **%1**, I think.").arg(2 * i + 1));
            store->addPair(p, a, b);
        }
        tx.commit();
    }
    m_session = std::make_unique<ProjectSession>(std::move(store));
}

void TestLabelPage::init()
{
    QSettings().clear();
    makeProject(60);
    m_page = std::make_unique<LabelPage>();
    m_page->resize(1100, 750);
    m_page->setAnnotatorName(QStringLiteral("alice"));
    m_page->setProject(m_session.get());
    m_page->show();
    m_page->activateWindow();
    QVERIFY(QTest::qWaitForWindowExposed(m_page.get()));
    m_page->setFocus();
    QVERIFY(m_page->currentPair().has_value());
}

void TestLabelPage::cleanup()
{
    m_page.reset();
    m_session.reset();
    m_dir.reset();
}

std::optional<Judgment> TestLabelPage::judgmentOf(qint64 pairId) const
{
    for (const Judgment &j : m_session->store().judgmentsOfPair(pairId))
        if (j.annotatorId == m_page->annotatorId())
            return j;
    return std::nullopt;
}

void TestLabelPage::keysDriveVerdicts_data()
{
    QTest::addColumn<int>("key");
    QTest::addColumn<int>("modifiers");
    QTest::addColumn<dpo::Verdict>("verdict");
    QTest::addColumn<int>("strength");
    QTest::newRow("1") << int(Qt::Key_1) << 0 << Verdict::Left << int(Strength::Unspecified);
    QTest::newRow("Left") << int(Qt::Key_Left) << 0 << Verdict::Left << int(Strength::Unspecified);
    QTest::newRow("2") << int(Qt::Key_2) << 0 << Verdict::Right << int(Strength::Unspecified);
    QTest::newRow("Right") << int(Qt::Key_Right) << 0 << Verdict::Right << int(Strength::Unspecified);
    QTest::newRow("Shift+Left") << int(Qt::Key_Left) << int(Qt::ShiftModifier) << Verdict::Left << int(Strength::Much);
    QTest::newRow("3") << int(Qt::Key_3) << 0 << Verdict::Tie << int(Strength::Unspecified);
    QTest::newRow("4") << int(Qt::Key_4) << 0 << Verdict::BothBad << int(Strength::Unspecified);
    QTest::newRow("S") << int(Qt::Key_S) << 0 << Verdict::Skip << int(Strength::Unspecified);
}

void TestLabelPage::keysDriveVerdicts()
{
    QFETCH(int, key);
    QFETCH(int, modifiers);
    QFETCH(dpo::Verdict, verdict);
    QFETCH(int, strength);
    // Two pairs in a row, so both side orders are likely covered across rows.
    for (int round = 0; round < 2; ++round) {
        const ShownPair shown = *m_page->currentPair();
        QTest::keyClick(m_page.get(), Qt::Key(key), Qt::KeyboardModifiers(modifiers));
        const auto j = judgmentOf(shown.pairId);
        QVERIFY2(j.has_value(), "no judgment recorded");
        QCOMPARE(j->verdict, verdict);
        QCOMPARE(j->leftIsA, shown.leftIsA);
        QCOMPARE(j->leftCompletionId, shown.left.id);
        QCOMPARE(int(j->strength), strength);
        Winner expected = Winner::Skip;
        switch (verdict) {
        case Verdict::Left:
            expected = shown.leftIsA ? Winner::A : Winner::B;
            break;
        case Verdict::Right:
            expected = shown.leftIsA ? Winner::B : Winner::A;
            break;
        case Verdict::Tie:
            expected = Winner::Tie;
            break;
        case Verdict::BothBad:
            expected = Winner::BothBad;
            break;
        case Verdict::Skip:
            expected = Winner::Skip;
            break;
        }
        QCOMPARE(j->winner, expected);
        // Committed, and the next pair is on screen.
        QVERIFY(m_page->currentPair().has_value());
        QVERIFY(m_page->currentPair()->pairId != shown.pairId);
        const auto *left = m_page->findChild<MarkdownView *>(QStringLiteral("leftView"));
        QCOMPARE(left->markdownText(), m_page->currentPair()->left.text);
    }
}

void TestLabelPage::strengthAndRationale()
{
    const ShownPair shown = *m_page->currentPair();
    QTest::keyClick(m_page.get(), Qt::Key_W); // much better
    QTest::keyClick(m_page.get(), Qt::Key_Slash);
    auto *rationale = m_page->findChild<QLineEdit *>(QStringLiteral("rationale"));
    QVERIFY(rationale->hasFocus());
    QTest::keyClicks(rationale, QStringLiteral("correct sum"));
    QTest::keyClick(rationale, Qt::Key_Return); // back to the page
    QVERIFY(!rationale->hasFocus());
    QTest::keyClick(m_page.get(), Qt::Key_2);
    const auto j = judgmentOf(shown.pairId);
    QVERIFY(j.has_value());
    QCOMPARE(j->verdict, Verdict::Right);
    QCOMPARE(j->strength, Strength::Much);
    QCOMPARE(j->rationale, QStringLiteral("correct sum"));
    QVERIFY(rationale->text().isEmpty()); // reset for the next pair
}

void TestLabelPage::typingInRationaleIsNotAVerdict()
{
    const ShownPair shown = *m_page->currentPair();
    QTest::keyClick(m_page.get(), Qt::Key_Slash);
    auto *rationale = m_page->findChild<QLineEdit *>(QStringLiteral("rationale"));
    QVERIFY(rationale->hasFocus());
    QTest::keyClicks(rationale, QStringLiteral("1 2 3 4 s e d ?"));
    QTest::keyClick(rationale, Qt::Key_Left);
    QCOMPARE(rationale->text(), QStringLiteral("1 2 3 4 s e d ?"));
    QCOMPARE(m_page->currentPair()->pairId, shown.pairId);
    QVERIFY(!judgmentOf(shown.pairId).has_value());
}

void TestLabelPage::undoRestoresPair()
{
    const ShownPair first = *m_page->currentPair();
    QTest::keyClick(m_page.get(), Qt::Key_1);
    QVERIFY(judgmentOf(first.pairId).has_value());
    QVERIFY(m_page->currentPair()->pairId != first.pairId);
    QTest::keyClick(m_page.get(), Qt::Key_Z, Qt::ControlModifier);
    QVERIFY(m_page->currentPair().has_value());
    QCOMPARE(m_page->currentPair()->pairId, first.pairId);
    QCOMPARE(m_page->currentPair()->leftIsA, first.leftIsA); // same order as before
    QVERIFY(!judgmentOf(first.pairId).has_value());
    // Judge it again the other way: exactly one judgment remains.
    QTest::keyClick(m_page.get(), Qt::Key_2);
    const auto j = judgmentOf(first.pairId);
    QVERIFY(j.has_value());
    QCOMPARE(j->verdict, Verdict::Right);
}

void TestLabelPage::repairCreatesPair()
{
    const ShownPair shown = *m_page->currentPair();
    QTest::keyClick(m_page.get(), Qt::Key_E);
    auto *dlg = m_page->findChild<RepairDialog *>();
    QVERIFY(dlg);
    QTRY_VERIFY(dlg->isVisible());
    QVERIFY(dlg->editingLeft());
    QCOMPARE(dlg->text(), shown.left.text);
    auto *save = dlg->findChild<QDialogButtonBox *>()->button(QDialogButtonBox::Save);
    QVERIFY(!save->isEnabled()); // unchanged text cannot be saved
    dlg->setText(QStringLiteral("A repaired answer: **42**."));
    QVERIFY(save->isEnabled());
    QSignalSpy spy(m_page.get(), &LabelPage::repairSaved);
    QTest::mouseClick(save, Qt::LeftButton);
    QCOMPARE(spy.count(), 1);
    const qint64 newPair = spy.first().first().toLongLong();

    ListQuery q;
    q.origin = QStringLiteral("repair");
    const auto page = m_session->store().listPairs(q);
    QCOMPARE(page.total, 1);
    const PairRow &row = page.rows.first();
    QCOMPARE(row.id, newPair);
    QCOMPARE(row.promptId, shown.promptId);
    // edited = chosen, original = rejected
    QCOMPARE(row.textA, QStringLiteral("A repaired answer: **42**."));
    QCOMPARE(row.textB, shown.left.text);
    // ... recorded as this annotator's judgment: completion a (the edit) won.
    const auto j = judgmentOf(newPair);
    QVERIFY(j.has_value());
    QCOMPARE(j->winner, Winner::A);
    // The pair on screen stays open for a verdict.
    QCOMPARE(m_page->currentPair()->pairId, shown.pairId);
}

void TestLabelPage::orderRandomizedAndRecorded()
{
    int leftA = 0, leftB = 0;
    for (int i = 0; i < 40; ++i) {
        QVERIFY(m_page->currentPair().has_value());
        const ShownPair shown = *m_page->currentPair();
        (shown.leftIsA ? leftA : leftB)++;
        // What is on screen is what the store says is on the left.
        const auto *left = m_page->findChild<MarkdownView *>(QStringLiteral("leftView"));
        QCOMPARE(left->markdownText(), shown.left.text);
        QTest::keyClick(m_page.get(), Qt::Key_1);
        const auto j = judgmentOf(shown.pairId);
        QVERIFY(j.has_value());
        QCOMPARE(j->leftIsA, shown.leftIsA);
        QCOMPARE(j->winner, shown.leftIsA ? Winner::A : Winner::B);
    }
    QVERIFY2(
        leftA > 0 && leftB > 0, qPrintable(QStringLiteral("leftIsA %1 times, leftIsB %2 times").arg(leftA).arg(leftB)));
}

void TestLabelPage::progressLabelUpdates()
{
    auto *label = m_page->findChild<QLabel *>(QStringLiteral("progressLabel"));
    QTRY_VERIFY2(label->text().contains(QStringLiteral("Mine: 0")), qPrintable(label->text()));
    QVERIFY(label->text().contains(QStringLiteral("0 / 60")));
    QTest::keyClick(m_page.get(), Qt::Key_1);
    QTest::keyClick(m_page.get(), Qt::Key_2);
    QTRY_VERIFY2(label->text().contains(QStringLiteral("Mine: 2")), qPrintable(label->text()));
    QTRY_VERIFY2(label->text().contains(QStringLiteral("2 / 60")), qPrintable(label->text()));
    QTest::keyClick(m_page.get(), Qt::Key_Z, Qt::ControlModifier);
    QTRY_VERIFY2(label->text().contains(QStringLiteral("Mine: 1")), qPrintable(label->text()));
}

void TestLabelPage::shortcutSheetOnQuestionMark()
{
    QVERIFY(!m_page->findChild<ShortcutSheet *>());
    QTest::keyClick(m_page.get(), Qt::Key_Question);
    auto *sheet = m_page->findChild<ShortcutSheet *>();
    QVERIFY(sheet);
    QTRY_VERIFY(sheet->isVisible());
    QString all;
    for (QLabel *l : sheet->findChildren<QLabel *>())
        all += l->text();
    for (const char *s : { "Left is better", "Right is better", "Tie", "Both bad", "Skip", "Undo last verdict" })
        QVERIFY2(all.contains(QLatin1String(s)), s);
    sheet->close();
}

// Characters drawn with the word-diff highlight.
static int countHighlighted(MarkdownView *v)
{
    int n = 0;
    for (QTextBlock b = v->document()->begin(); b.isValid(); b = b.next())
        for (auto it = b.begin(); !it.atEnd(); ++it)
            if (it.fragment().charFormat().background().color() == MarkdownView::diffColor(v->palette()))
                n += it.fragment().length();
    return n;
}

void TestLabelPage::diffToggleHighlights()
{
    auto *left = m_page->findChild<MarkdownView *>(QStringLiteral("leftView"));
    QVERIFY(!m_page->diffEnabled());
    QCOMPARE(countHighlighted(left), 0);
    QTest::keyClick(m_page.get(), Qt::Key_D);
    QVERIFY(m_page->diffEnabled());
    QVERIFY(countHighlighted(left) > 0); // "**2i**" vs "**2i+1**, I think": the numbers differ
    // The next pair is highlighted too, and turning it off clears it.
    QTest::keyClick(m_page.get(), Qt::Key_1);
    QVERIFY(countHighlighted(left) > 0);
    QTest::keyClick(m_page.get(), Qt::Key_D);
    QCOMPARE(countHighlighted(left), 0);
}

void TestLabelPage::queueExhaustedShowsMessage()
{
    for (int i = 0; i < 60; ++i)
        QTest::keyClick(m_page.get(), Qt::Key_3);
    QVERIFY(!m_page->currentPair().has_value());
    auto *empty = m_page->findChild<QLabel *>(QStringLiteral("emptyLabel"));
    QVERIFY(empty->isVisible());
    QVERIFY(empty->text().contains(QStringLiteral("Nothing left")));
    // Undo brings the last pair back.
    QTest::keyClick(m_page.get(), Qt::Key_Z, Qt::ControlModifier);
    QVERIFY(m_page->currentPair().has_value());
}

void TestLabelPage::conversationalPair()
{
    const auto msg = [](const char *role, const QJsonValue &content) {
        return QJsonObject { { "role", QLatin1String(role) }, { "content", content } };
    };
    QStringList rules;
    for (int i = 1; i <= 20; ++i)
        rules << QStringLiteral("Rule %1: keep answers short and exact.").arg(i);
    QJsonObject call = msg("assistant", QJsonValue::Null);
    call.insert("tool_calls",
        QJsonArray { QJsonObject { { "type", "function" },
            { "function",
                QJsonObject { { "name", "add" }, { "arguments", QJsonObject { { "a", 3 }, { "b", 3 } } } } } } });
    const QJsonObject row {
        { "prompt",
            QJsonArray { msg("system", rules.join(QLatin1Char('\n'))), msg("user", "What is 2+2?"),
                msg("assistant", "4"), msg("user", "And 3+3?") } },
        { "completion_a", QJsonArray { msg("assistant", "It is **six**.") } },
        { "completion_b", QJsonArray { call, msg("tool", "6"), msg("assistant", "It is 6, I think.") } },
    };
    const QString input = m_dir->filePath(QStringLiteral("conversation.jsonl"));
    {
        QFile f(input);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write(QJsonDocument(row).toJson(QJsonDocument::Compact) + "\n");
    }
    auto store = ProjectStore::open(m_dir->filePath(QStringLiteral("conversation.dpo")));
    QCOMPARE(importFile(*store, input).imported, 1);
    auto session = std::make_unique<ProjectSession>(std::move(store));
    m_page->setProject(session.get());
    m_session = std::move(session);
    QVERIFY(m_page->currentPair().has_value());
    const ShownPair shown = *m_page->currentPair();
    QVERIFY(!shown.promptMessages.isEmpty());

    // The prompt as a conversation: roles as labels, the system message cut to its first lines.
    auto *prompt = m_page->findChild<MarkdownView *>(QStringLiteral("promptView"));
    QString text = prompt->toPlainText();
    for (const char *s : { "System", "Rule 1:", "User", "What is 2+2?", "Assistant", "And 3+3?" })
        QVERIFY2(text.contains(QLatin1String(s)), qPrintable(text));
    QVERIFY2(!text.contains(QLatin1String("Rule 20:")), qPrintable(text));
    QVERIFY(text.indexOf(QLatin1String("What is 2+2?")) < text.indexOf(QLatin1String("And 3+3?")));
    // The caption counts the turns, and the last user message (what the completions answer) is in view.
    bool caption = false;
    for (const QLabel *l : m_page->findChildren<QLabel *>())
        caption = caption || l->text() == QStringLiteral("Prompt  ·  4 turns");
    QVERIFY(caption);
    QVERIFY(prompt->verticalScrollBar()->maximum() > 0);
    QTextCursor last = prompt->document()->find(QStringLiteral("And 3+3?"));
    QVERIFY(!last.isNull());
    QVERIFY(prompt->viewport()->rect().contains(prompt->cursorRect(last).center()));
    QVERIFY(prompt->isFoldable());
    QVERIFY(markdowntest::clickLink(prompt, QLatin1String(kExpandHref)));
    QVERIFY(prompt->toPlainText().contains(QLatin1String("Rule 20:")));
    // DPO_SCREENSHOT_DIR=DIR saves the page with the system message unfolded.
    const QString shots = qEnvironmentVariable("DPO_SCREENSHOT_DIR");
    if (!shots.isEmpty())
        QVERIFY(m_page->grab().save(shots + QStringLiteral("/label_page_conversation_expanded.png")));

    // The tool-using completion shows its call compactly; the other is its plain text.
    auto *left = m_page->findChild<MarkdownView *>(QStringLiteral("leftView"));
    auto *right = m_page->findChild<MarkdownView *>(QStringLiteral("rightView"));
    MarkdownView *tools = shown.leftIsA ? right : left;
    MarkdownView *plain = shown.leftIsA ? left : right;
    QVERIFY2(tools->toPlainText().contains(QLatin1String("Tool call: add({\"a\":3,\"b\":3})")),
        qPrintable(tools->toPlainText()));
    QVERIFY(tools->toPlainText().contains(QLatin1String("It is 6, I think.")));
    QCOMPARE(plain->toPlainText(), QStringLiteral("It is six."));
    // The word diff works on the rendered turns: "It is" is shared, "six" and the tool call are not.
    QTest::keyClick(m_page.get(), Qt::Key_D);
    QVERIFY(m_page->diffEnabled());
    QVERIFY(countHighlighted(tools) > 0);
    QVERIFY(countHighlighted(plain) > 0);

    // The verdict is exported with the imported messages.
    QTest::keyClick(m_page.get(), Qt::Key_1);
    QVERIFY(judgmentOf(shown.pairId).has_value());
    const QString output = m_dir->filePath(QStringLiteral("labeled.jsonl"));
    QCOMPARE(exportFile(m_session->store(), output).rows, 1);
    QFile f(output);
    QVERIFY(f.open(QIODevice::ReadOnly));
    const QJsonObject out = QJsonDocument::fromJson(f.readAll()).object();
    QCOMPARE(out["prompt"], row["prompt"]);
    QCOMPARE(out["chosen"], row[shown.leftIsA ? "completion_a" : "completion_b"]);
    QCOMPARE(out["rejected"], row[shown.leftIsA ? "completion_b" : "completion_a"]);
}

DPO_TEST_MAIN(TestLabelPage)

} // namespace test_label_page

#include "test_label_page.moc"
