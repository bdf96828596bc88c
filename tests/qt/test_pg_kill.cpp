// Labeling on PostgreSQL under kill -9 (issue 17, "Keep it that way"), on a throwaway server of this test's
// own (tests/pg/with_pg.sh with DPO_PG_OWN_SERVER=1): three annotators (`dpo-cli project simulate` processes)
// label a project with overlap 2 while, round after round, they are SIGKILLed at seeded random moments and
// every third round the server is stopped (connections cut) and started again. Then they label to the end.
// Every verdict a process reported as committed is stored, no annotator judges a pair twice, no pair gets
// more judgments than the overlap, and at the end every slot is done: nothing served twice, nothing lost.
#include "project/project_store.h"
#include "project_test_util.h"

#include <QElapsedTimer>
#include <QHash>
#include <QProcess>
#include <QRandomGenerator>
#include <QSet>
#include "qt_test_main.h"

#include <QtTest>

namespace test_pg_kill { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

using namespace dpo;

class TestPgKill : public QObject {
    Q_OBJECT
private slots:
    void initTestCase();
    void killLoopLosesNothing();

private:
    // The "judged PAIR ID" lines one annotator process printed (each after its verdict's commit).
    static void collect(const QByteArray &out, QSet<qint64> *ids)
    {
        for (const QByteArray &line : out.split('\n')) {
            const QList<QByteArray> f = line.split(' ');
            if (f.size() == 3 && f[0] == "judged")
                ids->insert(f[2].toLongLong());
        }
    }
    static bool runShell(const QByteArray &cmd)
    {
        QProcess p;
        p.start(QStringLiteral("sh"), { QStringLiteral("-c"), QString::fromLocal8Bit(cmd) });
        return p.waitForFinished(60000) && p.exitStatus() == QProcess::NormalExit && p.exitCode() == 0;
    }
};

void TestPgKill::initTestCase()
{
    if (projecttest::pgBaseUrl().isEmpty() || qEnvironmentVariableIsEmpty("DPO_TEST_PG_STOP"))
        QSKIP("needs a server of its own: run through DPO_PG_OWN_SERVER=1 tests/pg/with_pg.sh");
}

void TestPgKill::killLoopLosesNothing()
{
    const int pairs = 300, overlap = 2;
    QString error;
    const QString url = projecttest::freshPgDatabase(&error);
    QVERIFY2(error.isEmpty(), qPrintable(error));
    {
        auto store = ProjectStore::open(url);
        store->setOverlap(overlap);
        ProjectStore::Transaction tx(*store);
        for (int i = 0; i < pairs; ++i) {
            const qint64 p = store->addPrompt(QStringLiteral("Prompt %1").arg(i));
            store->addPair(p, store->addCompletion(p, QStringLiteral("a %1").arg(i)),
                store->addCompletion(p, QStringLiteral("b %1").arg(i)));
        }
        tx.commit();
    }
    const QStringList names = { "ann0", "ann1", "ann2" };
    auto start = [&](QProcess &p, const QString &name) {
        p.start(QStringLiteral(DPO_CLI_PATH),
            { "project", "simulate", "--project", url, "--annotator", name, "--delay-ms", "20" });
        return p.waitForStarted();
    };

    QRandomGenerator rng(
        qEnvironmentVariableIsSet("DPO_DURABILITY_SEED") ? qEnvironmentVariable("DPO_DURABILITY_SEED").toUInt() : 17u);
    QSet<qint64> reported;
    int kills = 0, restarts = 0;
    const int rounds = 9;
    for (int round = 0; round < rounds; ++round) {
        QProcess procs[3];
        QByteArray out[3];
        for (int a = 0; a < 3; ++a)
            QVERIFY(start(procs[a], names[a]));
        // dpo-cli takes a second or so to start: the kills are timed from the first verdict of each.
        for (int a = 0; a < 3; ++a) {
            QElapsedTimer t;
            t.start();
            while (!out[a].contains("judged") && procs[a].state() == QProcess::Running && t.elapsed() < 60000) {
                procs[a].waitForReadyRead(100);
                out[a] += procs[a].readAllStandardOutput();
            }
        }
        QTest::qWait(int(rng.bounded(50, 400)));
        if (round % 3 == 2) { // the server goes away under them; they fail (or are killed) and come back later
            QVERIFY2(runShell(qgetenv("DPO_TEST_PG_STOP")), "pg_ctl stop failed");
            QVERIFY2(runShell(qgetenv("DPO_TEST_PG_START")), "pg_ctl start failed");
            ++restarts;
        }
        for (int a = 0; a < 3; ++a) {
            QTest::qWait(int(rng.bounded(0, 100)));
            if (procs[a].state() == QProcess::Running) {
                procs[a].kill();
                ++kills;
            }
            procs[a].waitForFinished(30000);
            out[a] += procs[a].readAllStandardOutput();
            collect(out[a], &reported);
        }
    }
    const qsizetype duringRounds = reported.size();
    QVERIFY2(duringRounds >= 50, "too few verdicts between the kills: the rounds did not test labeling");
    QVERIFY2(duringRounds < pairs * overlap, "nothing left for the last run: the kills came after the work");
    // Everyone labels to the end: every slot is served, including those claimed by a killed process.
    QProcess procs[3];
    for (int a = 0; a < 3; ++a)
        QVERIFY(start(procs[a], names[a]));
    for (int a = 0; a < 3; ++a) {
        QVERIFY(procs[a].waitForFinished(120000));
        QVERIFY2(procs[a].exitStatus() == QProcess::NormalExit && procs[a].exitCode() == 0,
            procs[a].readAllStandardError().constData());
        collect(procs[a].readAllStandardOutput(), &reported);
    }
    qInfo("%d rounds, %d kills, %d server restarts, %lld verdicts reported (%lld between the kills)", rounds, kills,
        restarts, qint64(reported.size()), qint64(duringRounds));
    QVERIFY2(kills >= 12, "too few kills landed: the rounds did not test anything");

    auto store = ProjectStore::open(url);
    ListQuery q;
    q.limit = 100000;
    const auto page = store->listJudgments(q);
    QSet<qint64> stored;
    QHash<qint64, QSet<qint64>> byPair; // pair -> annotators
    for (const auto &row : page.rows) {
        stored.insert(row.judgment.id);
        QVERIFY2(!byPair[row.judgment.pairId].contains(row.judgment.annotatorId),
            qPrintable(QStringLiteral("pair %1 judged twice by annotator %2")
                           .arg(row.judgment.pairId)
                           .arg(row.judgment.annotatorId)));
        byPair[row.judgment.pairId].insert(row.judgment.annotatorId);
    }
    for (qint64 id : std::as_const(reported))
        QVERIFY2(stored.contains(id), qPrintable(QStringLiteral("reported verdict %1 lost").arg(id)));
    QCOMPARE(stored.size(), qsizetype(pairs * overlap));
    QCOMPARE(byPair.size(), qsizetype(pairs));
    for (auto it = byPair.cbegin(); it != byPair.cend(); ++it)
        QVERIFY2(it.value().size() == overlap,
            qPrintable(QStringLiteral("pair %1 has %2 judgments").arg(it.key()).arg(it.value().size())));
    const Counts c = store->counts();
    QCOMPARE(c.judgments, qint64(pairs * overlap));
    QCOMPARE(c.labelSlotsDone, qint64(pairs * overlap));
}

DPO_TEST_MAIN(TestPgKill)

} // namespace test_pg_kill

#include "test_pg_kill.moc"
