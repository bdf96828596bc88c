// DataPage with a conversational pair imported from JSONL next to a plain one: in the Prompts, Pairs and
// Judgments views the table's prompt cell is a one-line summary ("4 turns · <last user message>") while the
// plain prompt stays as it is, and the detail pane shows the whole conversation with the long system message
// folded until its link is clicked. DPO_SCREENSHOT_DIR=DIR saves each view with the conversation selected.
#include "markdown_test_util.h"
#include "project/conversation.h"
#include "project/project_store.h"
#include "ui/data/datapage.h"
#include "ui/shell/projectsession.h"
#include "ui/widgets/markdownview.h"
#include "ui/widgets/pagedtablemodel.h"

#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QSettings>
#include <QStandardPaths>
#include <QTableView>
#include <QTemporaryDir>
#include "qt_test_main.h"

#include <QtTest>

namespace test_data_page { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

using namespace dpo;

class TestDataPage : public QObject {
    Q_OBJECT
private slots:
    void initTestCase();
    void conversationInEveryView_data();
    void conversationInEveryView();

private:
    QTemporaryDir m_dir;
    std::unique_ptr<ProjectSession> m_session;
};

void TestDataPage::initTestCase()
{
    QStandardPaths::setTestModeEnabled(true);
    QCoreApplication::setOrganizationName(QStringLiteral("DPO Studio Tests"));
    QCoreApplication::setApplicationName(QStringLiteral("test_data_page"));
    QSettings().clear();
    QVERIFY(m_dir.isValid());

    const auto msg = [](const char *role, const char *content) {
        return QJsonObject { { "role", QLatin1String(role) }, { "content", QLatin1String(content) } };
    };
    QStringList rules;
    for (int i = 1; i <= 20; ++i)
        rules << QStringLiteral("Rule %1: keep answers short and exact.").arg(i);
    QJsonArray prompt { QJsonObject { { "role", "system" }, { "content", rules.join(QLatin1Char('\n')) } },
        msg("user", "What is 2+2?"), msg("assistant", "4"), msg("user", "And 3+3?") };
    const QJsonObject conversational { { "prompt", prompt }, { "completion_a", QJsonArray { msg("assistant", "6") } },
        { "completion_b", QJsonArray { msg("assistant", "7") } } };
    const QJsonObject plain { { "prompt", "Plain prompt?" }, { "completion_a", "yes" }, { "completion_b", "no" } };
    const QString input = m_dir.filePath(QStringLiteral("rows.jsonl"));
    QFile f(input);
    QVERIFY(f.open(QIODevice::WriteOnly));
    f.write(QJsonDocument(conversational).toJson(QJsonDocument::Compact) + "\n"
        + QJsonDocument(plain).toJson(QJsonDocument::Compact) + "\n");
    f.close();

    auto store = ProjectStore::open(m_dir.filePath(QStringLiteral("p.dpo")));
    QCOMPARE(importFile(*store, input).imported, 2);
    // One verdict per pair, the conversational one first, for the Judgments view.
    const qint64 alice = store->annotator(QStringLiteral("alice")).id;
    for (int i = 0; i < 2; ++i) {
        const auto shown = store->nextPairFor(alice);
        QVERIFY(shown);
        store->recordVerdict(alice, *shown, Verdict::Left);
    }
    m_session = std::make_unique<ProjectSession>(std::move(store));
}

void TestDataPage::conversationInEveryView_data()
{
    QTest::addColumn<int>("view");
    QTest::addColumn<int>("promptColumn");
    QTest::addColumn<int>("conversationRow");
    QTest::newRow("prompts") << int(DataPage::Prompts) << 1 << 0;
    QTest::newRow("pairs") << int(DataPage::Pairs) << 1 << 0;
    QTest::newRow("judgments") << int(DataPage::Judgments) << 7 << -1; // row of the conversational pair's verdict
}

void TestDataPage::conversationInEveryView()
{
    QFETCH(int, view);
    QFETCH(int, promptColumn);
    QFETCH(int, conversationRow);
    DataPage page;
    page.resize(1200, 800);
    page.setProject(m_session.get());
    page.show();
    QVERIFY(QTest::qWaitForWindowExposed(&page));
    page.setView(DataPage::View(view));
    PagedTableModel *model = page.model();
    QTRY_COMPARE(model->rowCount(), 2);
    if (conversationRow < 0) // the queue served the pairs in an order of its own
        conversationRow = model->index(0, promptColumn).data().toString().startsWith(QLatin1String("4 turns")) ? 0 : 1;
    const int plainRow = 1 - conversationRow;
    QCOMPARE(model->index(conversationRow, promptColumn).data().toString(), QStringLiteral("4 turns · And 3+3?"));
    QCOMPARE(model->index(plainRow, promptColumn).data().toString(), QStringLiteral("Plain prompt?"));

    auto *table = page.findChild<QTableView *>(QStringLiteral("dataTable"));
    auto *detail = page.findChild<MarkdownView *>(QStringLiteral("dataDetail"));
    table->setCurrentIndex(model->index(conversationRow, 0));
    QString text = detail->toPlainText();
    for (const char *s : { "System", "Rule 1:", "User", "What is 2+2?", "Assistant", "And 3+3?" })
        QVERIFY2(text.contains(QLatin1String(s)), qPrintable(text));
    QVERIFY2(!text.contains(QLatin1String("Rule 20:")), qPrintable(text));
    QVERIFY(detail->isFoldable());
    const QString shots = qEnvironmentVariable("DPO_SCREENSHOT_DIR");
    if (!shots.isEmpty())
        QVERIFY(
            page.grab().save(QStringLiteral("%1/data_page_%2.png").arg(shots, QLatin1String(QTest::currentDataTag()))));
    QVERIFY(markdowntest::clickLink(detail, QLatin1String(kExpandHref)));
    QVERIFY(detail->toPlainText().contains(QLatin1String("Rule 20:")));

    table->setCurrentIndex(model->index(plainRow, 0));
    QVERIFY(!detail->isFoldable());
    QVERIFY(detail->toPlainText().contains(QLatin1String("Plain prompt?")));
    QVERIFY(!detail->toPlainText().contains(QLatin1String("User")));
    page.setProject(nullptr);
}

DPO_TEST_MAIN(TestDataPage)

} // namespace test_data_page

#include "test_data_page.moc"
