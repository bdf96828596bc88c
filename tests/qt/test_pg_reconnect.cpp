// PostgreSQL going away under a labeling session (issue 17, item 6), on a throwaway server of this test's
// own (tests/pg/with_pg.sh with DPO_PG_OWN_SERVER=1, which exports DPO_TEST_PG_STOP / DPO_TEST_PG_START):
// a restart between two calls is invisible (the store reconnects), a verdict given while the server is down
// fails with ConnectionLostError and is saved once when retried, a retry after an unknown outcome (same
// client id) never counts twice, and the Label page says "Reconnecting…", keeps the pair on screen and saves
// the verdict by itself when the server is back.
#include "project/project_store.h"
#include "project_test_util.h"
#include "ui/label/labelpage.h"
#include "ui/shell/projectsession.h"

#include <QLabel>
#include <QProcess>
#include <QSettings>
#include <QStandardPaths>
#include "qt_test_main.h"

#include <QtTest>

namespace test_pg_reconnect { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

using namespace dpo;

class TestPgReconnect : public QObject {
    Q_OBJECT
private slots:
    void initTestCase();
    void restartBetweenCallsIsInvisible();
    void verdictWhileDownIsSavedOnceOnRetry();
    void retryWithSameClientIdDoesNotCountTwice();
    void labelPageReconnectsAndLosesNothing();

private:
    std::unique_ptr<ProjectStore> makeProject(int pairs);
    void stopServer();
    void startServer();
    static qint64 judgmentCount(ProjectStore &store) { return store.counts().judgments; }
};

static bool runShell(const QByteArray &cmd)
{
    QProcess p;
    p.start(QStringLiteral("sh"), { QStringLiteral("-c"), QString::fromLocal8Bit(cmd) });
    return p.waitForFinished(60000) && p.exitStatus() == QProcess::NormalExit && p.exitCode() == 0;
}

void TestPgReconnect::initTestCase()
{
    if (projecttest::pgBaseUrl().isEmpty() || qEnvironmentVariableIsEmpty("DPO_TEST_PG_STOP"))
        QSKIP("needs a server of its own: run through DPO_PG_OWN_SERVER=1 tests/pg/with_pg.sh");
    QStandardPaths::setTestModeEnabled(true);
    QCoreApplication::setOrganizationName(QStringLiteral("DPO Studio Tests"));
    QCoreApplication::setApplicationName(QStringLiteral("test_pg_reconnect"));
}

void TestPgReconnect::stopServer()
{
    QVERIFY2(runShell(qgetenv("DPO_TEST_PG_STOP")), "pg_ctl stop failed");
}

void TestPgReconnect::startServer()
{
    QVERIFY2(runShell(qgetenv("DPO_TEST_PG_START")), "pg_ctl start failed");
}

std::unique_ptr<ProjectStore> TestPgReconnect::makeProject(int pairs)
{
    QString error;
    const QString url = projecttest::freshPgDatabase(&error);
    if (!error.isEmpty()) {
        qWarning("%s", qPrintable(error));
        return nullptr;
    }
    auto store = ProjectStore::open(url);
    ProjectStore::Transaction tx(*store);
    for (int i = 0; i < pairs; ++i) {
        const qint64 p = store->addPrompt(QStringLiteral("Prompt %1: what is %1 + %1?").arg(i));
        store->addPair(p, store->addCompletion(p, QStringLiteral("It is %1.").arg(2 * i)),
            store->addCompletion(p, QStringLiteral("Maybe %1.").arg(2 * i + 1)));
    }
    tx.commit();
    return store;
}

void TestPgReconnect::restartBetweenCallsIsInvisible()
{
    auto store = makeProject(3);
    QVERIFY(store);
    const qint64 alice = store->annotator(QStringLiteral("alice")).id;
    auto shown = store->nextPairFor(alice);
    QVERIFY(shown);
    stopServer();
    startServer();
    // The stale connection shows at BEGIN, before anything happened: the store reconnects and goes on.
    const qint64 id = store->recordVerdict(alice, *shown, Verdict::Left);
    QVERIFY(id > 0);
    QCOMPARE(store->reconnects(), 1);
    QVERIFY(!store->connectionLost());
    // Reads outside a transaction recover the same way.
    stopServer();
    startServer();
    QCOMPARE(judgmentCount(*store), qint64(1));
    QCOMPARE(store->reconnects(), 2);
    auto next = store->nextPairFor(alice);
    QVERIFY(next && next->pairId != shown->pairId);
}

void TestPgReconnect::verdictWhileDownIsSavedOnceOnRetry()
{
    auto store = makeProject(3);
    QVERIFY(store);
    const qint64 alice = store->annotator(QStringLiteral("alice")).id;
    auto shown = store->nextPairFor(alice);
    QVERIFY(shown);
    stopServer();
    const QString clientId = QStringLiteral("verdict-while-down");
    bool lost = false;
    for (int attempt = 0; attempt < 3; ++attempt) { // each attempt tries to reconnect and fails fast
        try {
            store->recordVerdict(alice, *shown, Verdict::Right, Strength::Unspecified, {}, clientId);
        } catch (const ConnectionLostError &e) {
            lost = true;
            QVERIFY2(QString::fromUtf8(e.what()).contains(QLatin1String("PostgreSQL")), e.what());
        }
    }
    QVERIFY(lost);
    QVERIFY(store->connectionLost());
    startServer();
    const qint64 id = store->recordVerdict(alice, *shown, Verdict::Right, Strength::Unspecified, {}, clientId);
    QVERIFY(id > 0);
    QCOMPARE(judgmentCount(*store), qint64(1));
    const auto progress = store->progress(alice);
    QCOMPARE(progress.mine, qint64(1));
    // The slot is closed and the same pair is not served again.
    auto next = store->nextPairFor(alice);
    QVERIFY(next && next->pairId != shown->pairId);
}

void TestPgReconnect::retryWithSameClientIdDoesNotCountTwice()
{
    auto store = makeProject(2);
    QVERIFY(store);
    const qint64 alice = store->annotator(QStringLiteral("alice")).id;
    auto shown = store->nextPairFor(alice);
    QVERIFY(shown);
    const qint64 first = store->recordVerdict(alice, *shown, Verdict::Tie, Strength::Unspecified, {}, "c-1");
    // The answer was lost on the way back (outcome unknown to the client): the retry finds the first one.
    QCOMPARE(store->recordVerdict(alice, *shown, Verdict::Tie, Strength::Unspecified, {}, "c-1"), first);
    QCOMPARE(judgmentCount(*store), qint64(1));
    QCOMPARE(store->progress(alice).mine, qint64(1));
    QCOMPARE(store->counts().labelSlotsDone, qint64(1));
    // A different verdict id on the closed slot is a real second verdict, which the queue refuses.
    QVERIFY_THROWS_EXCEPTION(ProjectError,
        store->recordVerdict(alice, *shown, Verdict::Tie, Strength::Unspecified, {}, "c-2"));
    QCOMPARE(judgmentCount(*store), qint64(1));
}

void TestPgReconnect::labelPageReconnectsAndLosesNothing()
{
    QSettings().clear();
    auto store = makeProject(4);
    QVERIFY(store);
    ProjectStore *raw = store.get();
    ProjectSession session(std::move(store));
    LabelPage page;
    page.resize(900, 600);
    page.setAnnotatorName(QStringLiteral("bob"));
    page.setProject(&session);
    page.show();
    QVERIFY(QTest::qWaitForWindowExposed(&page));
    page.setFocus();
    QVERIFY(page.currentPair().has_value());
    const qint64 pairOnScreen = page.currentPair()->pairId;
    QSignalSpy recorded(&page, &LabelPage::verdictRecorded);

    stopServer();
    QTest::keyClick(&page, Qt::Key_1);
    QVERIFY(page.isReconnecting());
    QVERIFY2(page.connectionMessage().contains(QLatin1String("Reconnecting")), qPrintable(page.connectionMessage()));
    QVERIFY(page.findChild<QLabel *>(QStringLiteral("connectionBanner"))->isVisible());
    QCOMPARE(page.currentPair()->pairId, pairOnScreen); // the pair stays on screen
    QCOMPARE(recorded.count(), 0);
    QTest::keyClick(&page, Qt::Key_2); // ignored while reconnecting: one verdict per pair
    QTest::qWait(1200); // at least one failed retry while the server is down
    QVERIFY(page.isReconnecting());
    QCOMPARE(page.currentPair()->pairId, pairOnScreen);

    startServer();
    QTRY_VERIFY_WITH_TIMEOUT(!page.isReconnecting(), 20000);
    QCOMPARE(recorded.count(), 1);
    QVERIFY(page.currentPair().has_value());
    QVERIFY(page.currentPair()->pairId != pairOnScreen);
    QVERIFY(!page.findChild<QLabel *>(QStringLiteral("connectionBanner"))->isVisible());
    QCOMPARE(judgmentCount(*raw), qint64(1));
    const auto judgments = raw->judgmentsOfPair(pairOnScreen);
    QCOMPARE(judgments.size(), 1);
    QCOMPARE(judgments[0].verdict, Verdict::Left); // the key pressed while the server was down
}

DPO_TEST_MAIN(TestPgReconnect)

} // namespace test_pg_reconnect

#include "test_pg_reconnect.moc"
