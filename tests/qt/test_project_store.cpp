// ProjectStore on SQLite and on PostgreSQL (DPO_TEST_PG_URL): creation and migration, queues with overlap,
// resume, undo, repair, recorded randomization, progress (its stored counters against a count of the tables,
// after random operations, after migration and under 8 concurrent annotators), listings, sanity checks,
// runs, and 8 concurrent annotator connections labeling one project; foreign databases and empty files are
// refused and left byte-identical; read-only projects; empty completions; the Data page's majority column.
#include "project/project_store.h"

#include "project_test_util.h"

#include <QFile>
#include <QProcess>
#include <QSet>
#include <QSqlDatabase>
#include <QSqlQuery>
#include <QTemporaryDir>
#include "qt_test_main.h"

#include <QTest>

#include <mutex>
#include <random>
#include <thread>

#include <unistd.h>

namespace test_project_store { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

using namespace dpo;

class TestProjectStore : public QObject {
    Q_OBJECT

private:
    QTemporaryDir m_dir;

    QString fresh(const QString &backend);
    // n pairs "prompt i" / "a i" / "b i".
    static QVector<qint64> addPairs(ProjectStore &s, int n, const QString &tag = "p");

    static void backends()
    {
        QTest::addColumn<QString>("backend");
        QTest::newRow("sqlite") << QStringLiteral("sqlite");
        QTest::newRow("postgres") << QStringLiteral("postgres");
    }

private slots:
    void initTestCase() { QVERIFY(m_dir.isValid()); }

    void createAndReopen_data() { backends(); }
    void createAndReopen();
    void migrateOlderSchema();
    void refuseNewerSchema();
    void queueWithOverlap_data() { backends(); }
    void queueWithOverlap();
    void resumeOpenSlot_data() { backends(); }
    void resumeOpenSlot();
    void undo_data() { backends(); }
    void undo();
    void repair_data() { backends(); }
    void repair();
    void randomizationRecorded_data() { backends(); }
    void randomizationRecorded();
    void verdictMapping_data();
    void verdictMapping();
    void progress_data() { backends(); }
    void progress();
    void progressMatchesCount_data() { backends(); }
    void progressMatchesCount();
    void progressCountedAtMigration_data() { backends(); }
    void progressCountedAtMigration();
    void progressUnderConcurrency_data() { backends(); }
    void progressUnderConcurrency();
    void listings_data() { backends(); }
    void listings();
    void sanityChecks_data() { backends(); }
    void sanityChecks();
    void runs_data() { backends(); }
    void runs();
    void concurrentAnnotators_data() { backends(); }
    void concurrentAnnotators();
    void refuseForeignFiles();
    void refuseForeignDatabase();
    void readOnlyProject_data() { backends(); }
    void readOnlyProject();
    void readOnlyFile();
    void emptyCompletion_data() { backends(); }
    void emptyCompletion();
    void preferredMajority_data() { backends(); }
    void preferredMajority();
};

QString TestProjectStore::fresh(const QString &backend)
{
    QString loc;
    [&] { DPO_FRESH_PROJECT(backend, QDir(m_dir.path()), loc); }();
    return loc;
}

QVector<qint64> TestProjectStore::addPairs(ProjectStore &s, int n, const QString &tag)
{
    QVector<qint64> ids;
    ProjectStore::Transaction tx(s);
    for (int i = 0; i < n; ++i) {
        const qint64 p = s.addPrompt(QStringLiteral("%1 prompt %2").arg(tag).arg(i));
        const qint64 a = s.addCompletion(p, QStringLiteral("%1 answer a %2").arg(tag).arg(i));
        const qint64 b = s.addCompletion(p, QStringLiteral("%1 answer b %2 longer").arg(tag).arg(i));
        ids << s.addPair(p, a, b);
    }
    tx.commit();
    return ids;
}

// A second, raw connection to the project (not through ProjectStore): the oracle for progress().
class RawDb {
public:
    explicit RawDb(const QString &loc)
        : m_name(QStringLiteral("raw_%1").arg(++s_count))
    {
        if (ProjectStore::isUrl(loc)) {
            const QUrl url(loc);
            m_db = QSqlDatabase::addDatabase(QStringLiteral("QPSQL"), m_name);
            m_db.setHostName(url.host());
            m_db.setPort(url.port(5432));
            m_db.setUserName(url.userName());
            m_db.setPassword(url.password());
            m_db.setDatabaseName(url.path().mid(1));
        } else {
            m_db = QSqlDatabase::addDatabase(QStringLiteral("QSQLITE"), m_name);
            m_db.setDatabaseName(loc);
        }
        if (!m_db.open())
            qWarning("raw connection: %s", qPrintable(m_db.lastError().text()));
    }
    ~RawDb()
    {
        m_db.close();
        m_db = QSqlDatabase();
        QSqlDatabase::removeDatabase(m_name);
    }
    // First column of the first row; -1 (and a warning) on error.
    qint64 scalar(const QString &sql, const QVariantList &values = {})
    {
        QSqlQuery q(m_db);
        q.prepare(sql);
        for (int i = 0; i < values.size(); ++i)
            q.bindValue(i, values[i]);
        if (!q.exec() || !q.next()) {
            qWarning("raw query %s: %s", qPrintable(sql), qPrintable(q.lastError().text()));
            return -1;
        }
        return q.value(0).toLongLong();
    }
    // progress() counted from the tables, the way ProjectStore did before it kept counters.
    Progress count(qint64 annotator, JudgmentKind kind)
    {
        const QString k = kindName(kind);
        Progress p;
        p.total = scalar(QStringLiteral("SELECT COUNT(*) FROM slots WHERE kind = ?"), { k });
        p.done = scalar(QStringLiteral("SELECT COUNT(*) FROM slots WHERE kind = ? AND done_at IS NOT NULL"), { k });
        p.mine = scalar(
            QStringLiteral("SELECT COUNT(*) FROM judgments WHERE annotator_id = ? AND kind = ?"), { annotator, k });
        const qint64 freePairs = scalar(
            QStringLiteral("SELECT COUNT(DISTINCT pair_id) FROM slots WHERE kind = ? AND annotator_id IS NULL"), { k });
        const qint64 touchedFree = scalar(
            QStringLiteral("SELECT COUNT(DISTINCT s.pair_id) FROM slots s WHERE s.kind = ? AND s.annotator_id IS NULL "
                           "AND s.pair_id IN (SELECT j.pair_id FROM judgments j WHERE j.annotator_id = ? UNION "
                           "SELECT t.pair_id FROM slots t WHERE t.annotator_id = ?)"),
            { k, annotator, annotator });
        const qint64 openMine = scalar(
            QStringLiteral("SELECT COUNT(*) FROM slots WHERE kind = ? AND annotator_id = ? AND done_at IS NULL"),
            { k, annotator });
        p.available = freePairs - touchedFree + openMine;
        p.annotators
            = scalar(QStringLiteral("SELECT COUNT(DISTINCT annotator_id) FROM judgments WHERE kind = ?"), { k });
        p.myTotalSeconds = scalar(QStringLiteral("SELECT COALESCE(SUM(decided_at - shown_at), 0) FROM judgments "
                                                 "WHERE annotator_id = ? AND kind = ?"),
                               { annotator, k })
            / 1000.0;
        return p;
    }

private:
    static inline int s_count = 0;
    QString m_name;
    QSqlDatabase m_db;
};

static QString describe(const Progress &p)
{
    return QStringLiteral("total %1 done %2 mine %3 available %4 annotators %5 seconds %6")
        .arg(p.total)
        .arg(p.done)
        .arg(p.mine)
        .arg(p.available)
        .arg(p.annotators)
        .arg(p.myTotalSeconds);
}

// Every field progress() keeps in counters, for every annotator and kind, equals the count of the tables.
static bool sameProgress(ProjectStore &s, RawDb &raw, const QVector<qint64> &annotators, const QString &when)
{
    for (const qint64 a : annotators)
        for (const JudgmentKind kind : { JudgmentKind::Label, JudgmentKind::Eval }) {
            const Progress got = s.progress(a, kind), want = raw.count(a, kind);
            if (got.total != want.total || got.done != want.done || got.mine != want.mine
                || got.available != want.available || got.annotators != want.annotators
                || got.myTotalSeconds != want.myTotalSeconds) {
                qWarning("%s, annotator %lld, %s:\n  progress() %s\n  counted    %s", qPrintable(when), a,
                    qPrintable(kindName(kind)), qPrintable(describe(got)), qPrintable(describe(want)));
                return false;
            }
        }
    return true;
}

#define FRESH(loc)                                                                                                     \
    QFETCH(QString, backend);                                                                                          \
    const QString loc = fresh(backend);                                                                                \
    if (QTest::currentTestFailed() || loc.isEmpty())                                                                   \
        return;

void TestProjectStore::createAndReopen()
{
    FRESH(loc);
    {
        auto s = ProjectStore::open(loc);
        QCOMPARE(s->schemaVersion(), ProjectStore::currentSchemaVersion());
        QCOMPARE(s->overlap(), 1);
        s->setGuidelines(QStringLiteral("# Rules\nPrefer *correct* answers."));
        s->setOverlap(3);
        QCOMPARE(s->annotator("ann").name, QStringLiteral("ann"));
    }
    auto s = ProjectStore::open(loc);
    QCOMPARE(s->guidelines(), QStringLiteral("# Rules\nPrefer *correct* answers."));
    QCOMPARE(s->overlap(), 3);
    QCOMPARE(s->annotators().size(), 1);
    QVERIFY_THROWS_EXCEPTION(ProjectError, s->annotator("nobody", false));
    QString error;
    QVERIFY(!ProjectStore::open(QStringLiteral("/nonexistent-dir/x.dpoproj"), &error));
    QVERIFY(error.contains("does not exist"));
}

void TestProjectStore::migrateOlderSchema()
{
    const QString loc = fresh("sqlite");
    {
        auto s = ProjectStore::open(loc, 1);
        QCOMPARE(s->schemaVersion(), 1);
        addPairs(*s, 3);
        QVERIFY_THROWS_EXCEPTION(ProjectError, s->runs()); // no runs table before version 2
    }
    auto s = ProjectStore::open(loc);
    QCOMPARE(s->schemaVersion(), ProjectStore::currentSchemaVersion());
    QVERIFY(s->schemaVersion() >= 3);
    QCOMPARE(s->counts().pairs, 3); // data survives the migration
    QVERIFY(s->runs().isEmpty());
}

void TestProjectStore::refuseNewerSchema()
{
    const QString loc = fresh("sqlite");
    ProjectStore::open(loc);
    {
        QSqlDatabase db = QSqlDatabase::addDatabase("QSQLITE", "raw");
        db.setDatabaseName(loc);
        QVERIFY(db.open());
        QSqlQuery q(db);
        QVERIFY(q.exec("UPDATE schema_version SET version = 99"));
    }
    QSqlDatabase::removeDatabase("raw");
    QString error;
    QVERIFY(!ProjectStore::open(loc, &error));
    QVERIFY2(error.contains("newer"), qPrintable(error));
}

void TestProjectStore::queueWithOverlap()
{
    FRESH(loc);
    auto s = ProjectStore::open(loc);
    s->setOverlap(2);
    const QVector<qint64> pairs = addPairs(*s, 5);
    const qint64 ids[3] = { s->annotator("a").id, s->annotator("b").id, s->annotator("c").id };
    QHash<qint64, QSet<qint64>> judgedBy; // pair -> annotators
    // Round-robin until every queue is empty.
    for (bool progress = true; progress;) {
        progress = false;
        for (qint64 a : ids) {
            auto shown = s->nextPairFor(a);
            if (!shown)
                continue;
            QVERIFY2(!judgedBy[shown->pairId].contains(a), "an annotator was served the same pair twice");
            judgedBy[shown->pairId].insert(a);
            s->recordVerdict(a, *shown, Verdict::Left);
            progress = true;
        }
    }
    QCOMPARE(judgedBy.size(), pairs.size());
    for (qint64 p : pairs)
        QCOMPARE(judgedBy[p].size(), 2);
    QCOMPARE(s->counts().judgments, 10);
    QCOMPARE(s->counts().labelSlotsDone, 10);
    // Raising the overlap adds slots for the same pairs; annotators still never see a pair twice.
    s->setOverlap(3);
    int extra = 0;
    for (qint64 a : ids)
        while (auto shown = s->nextPairFor(a)) {
            QVERIFY(!judgedBy[shown->pairId].contains(a));
            judgedBy[shown->pairId].insert(a);
            s->recordVerdict(a, *shown, Verdict::Tie);
            ++extra;
        }
    QCOMPARE(extra, 5);
    // Lowering it removes only unclaimed slots.
    s->setOverlap(1);
    QCOMPARE(s->counts().labelSlots, 15);
    QCOMPARE(s->counts().labelSlotsDone, 15);
}

void TestProjectStore::resumeOpenSlot()
{
    FRESH(loc);
    qint64 slot = 0, pair = 0;
    bool leftIsA = false;
    {
        auto s = ProjectStore::open(loc);
        addPairs(*s, 4);
        const qint64 a = s->annotator("x").id;
        auto first = s->nextPairFor(a);
        QVERIFY(first);
        auto again = s->nextPairFor(a);
        QVERIFY(again);
        QCOMPARE(again->slotId, first->slotId);
        slot = first->slotId;
        pair = first->pairId;
        leftIsA = first->leftIsA;
    }
    // A new session (after a crash) shows the same pair, same order.
    auto s = ProjectStore::open(loc);
    auto shown = s->nextPairFor(s->annotator("x").id);
    QVERIFY(shown);
    QCOMPARE(shown->slotId, slot);
    QCOMPARE(shown->pairId, pair);
    QCOMPARE(shown->leftIsA, leftIsA);
    // A verdict on a slot not claimed by this annotator is refused.
    const qint64 other = s->annotator("y").id;
    QVERIFY_THROWS_EXCEPTION(ProjectError, s->recordVerdict(other, *shown, Verdict::Left));
    s->recordVerdict(s->annotator("x").id, *shown, Verdict::Left);
    QVERIFY_THROWS_EXCEPTION(ProjectError, s->recordVerdict(s->annotator("x").id, *shown, Verdict::Left));
}

void TestProjectStore::undo()
{
    FRESH(loc);
    auto s = ProjectStore::open(loc);
    addPairs(*s, 5);
    const qint64 a = s->annotator("u").id;
    QVERIFY(!s->undoLastVerdict(a)); // nothing to undo
    QVector<ShownPair> shown;
    for (int i = 0; i < 3; ++i) {
        auto p = s->nextPairFor(a);
        QVERIFY(p);
        shown << *p;
        s->recordVerdict(a, *p, i == 2 ? Verdict::Right : Verdict::Left);
    }
    auto onScreen = s->nextPairFor(a); // the 4th pair is on screen when the user presses Ctrl+Z
    QVERIFY(onScreen);
    auto back = s->undoLastVerdict(a);
    QVERIFY(back);
    QCOMPARE(back->pairId, shown[2].pairId);
    QCOMPARE(back->slotId, shown[2].slotId);
    QCOMPARE(back->leftIsA, shown[2].leftIsA);
    QCOMPARE(back->left.id, shown[2].left.id);
    QCOMPARE(s->counts().judgments, 2);
    QCOMPARE(s->judgmentsOfPair(shown[2].pairId).size(), 0);
    // Undo again: the second verdict comes back; the third pair is free again.
    auto back2 = s->undoLastVerdict(a);
    QVERIFY(back2);
    QCOMPARE(back2->pairId, shown[1].pairId);
    QCOMPARE(s->counts().judgments, 1);
    s->recordVerdict(a, *back2, Verdict::Tie);
    const auto js = s->judgmentsOfPair(shown[1].pairId);
    QCOMPARE(js.size(), 1);
    QCOMPARE(js[0].verdict, Verdict::Tie);
    // Then labeling continues over every remaining pair exactly once.
    int rest = 0;
    while (auto p = s->nextPairFor(a)) {
        s->recordVerdict(a, *p, Verdict::Left);
        ++rest;
    }
    QCOMPARE(rest, 3);
    QCOMPARE(s->counts().judgments, 5);
}

void TestProjectStore::repair()
{
    FRESH(loc);
    auto s = ProjectStore::open(loc);
    addPairs(*s, 2);
    const qint64 a = s->annotator("r").id;
    auto shown = s->nextPairFor(a);
    QVERIFY(shown);
    const qint64 pairsBefore = s->counts().pairs;
    const qint64 newPair = s->repair(a, *shown, /*editedLeft=*/false, QStringLiteral("a much better answer"), "fixed");
    QCOMPARE(s->counts().pairs, pairsBefore + 1);
    const auto rows = s->listPairs(ListQuery { QString(), 0, {}, {}, JudgedFilter::Any, QStringLiteral("repair") });
    QCOMPARE(rows.total, 1);
    QCOMPARE(rows.rows[0].id, newPair);
    QCOMPARE(rows.rows[0].textA, QStringLiteral("a much better answer"));
    QCOMPARE(rows.rows[0].completionB, shown->right.id);
    const Completion edited = s->completion(rows.rows[0].completionA);
    QCOMPARE(edited.provenance.source, QStringLiteral("repair"));
    QCOMPARE(edited.provenance.parentCompletionId, shown->right.id);
    const auto js = s->judgmentsOfPair(newPair);
    QCOMPARE(js.size(), 1);
    QCOMPARE(js[0].winner, Winner::A);
    QCOMPARE(js[0].annotatorId, a);
    QCOMPARE(js[0].rationale, QStringLiteral("fixed"));
    // The pair on screen is still open, and a repair is not queued for anyone.
    QCOMPARE(s->nextPairFor(a)->slotId, shown->slotId);
    QCOMPARE(s->counts().labelSlots, 2);
    // Undo removes the repair (pair, completion, judgment) and keeps the shown pair.
    auto back = s->undoLastVerdict(a);
    QVERIFY(back);
    QCOMPARE(back->slotId, shown->slotId);
    QCOMPARE(s->counts().pairs, pairsBefore);
    QCOMPARE(s->counts().judgments, 0);
    QCOMPARE(s->completionsOf(shown->promptId).size(), 2);
    QVERIFY_THROWS_EXCEPTION(ProjectError, s->repair(a, *shown, true, shown->left.text));
}

void TestProjectStore::randomizationRecorded()
{
    FRESH(loc);
    auto s = ProjectStore::open(loc);
    s->setOverlap(2);
    const int n = 120;
    addPairs(*s, n);
    const Annotator x = s->annotator("x"), y = s->annotator("y");
    QVERIFY(x.orderSeed != y.orderSeed);
    QHash<qint64, bool> orderX, orderY;
    for (const Annotator &ann : { x, y }) {
        while (auto p = s->nextPairFor(ann.id)) {
            QCOMPARE(p->orderSeed, ann.orderSeed);
            QCOMPARE(p->left.id == p->right.id, false);
            (ann.id == x.id ? orderX : orderY).insert(p->pairId, p->leftIsA);
            s->recordVerdict(ann.id, *p, Verdict::Left);
        }
    }
    QCOMPARE(orderX.size(), n);
    int leftA = 0, differ = 0;
    for (auto it = orderX.begin(); it != orderX.end(); ++it) {
        leftA += it.value();
        differ += it.value() != orderY.value(it.key());
    }
    // Both orders occur (binomial(120, 0.5): 35..85 holds with probability > 0.9999) and per annotator.
    QVERIFY2(leftA > 35 && leftA < 85, qPrintable(QString::number(leftA)));
    QVERIFY2(differ > 35 && differ < 85, qPrintable(QString::number(differ)));
    // Every judgment records which completion was on the left, consistent with the verdict.
    const auto page = s->listJudgments(ListQuery { QString(), x.id, {}, {}, JudgedFilter::Any, {}, 0, 1000 });
    QCOMPARE(page.total, qint64(n));
    QHash<qint64, PairRow> pairById;
    for (const PairRow &row : s->listPairs(ListQuery { QString(), 0, {}, {}, JudgedFilter::Any, {}, 0, 1000 }).rows)
        pairById.insert(row.id, row);
    for (const JudgmentRow &r : page.rows) {
        const Judgment &j = r.judgment;
        QCOMPARE(j.leftIsA, orderX.value(j.pairId));
        QCOMPARE(j.winner, j.leftIsA ? Winner::A : Winner::B); // "left" always won
        const PairRow pr = pairById.value(j.pairId);
        QCOMPARE(j.leftCompletionId, j.leftIsA ? pr.completionA : pr.completionB);
        QVERIFY(j.shownAt.isValid() && j.decidedAt >= j.shownAt);
    }
}

void TestProjectStore::verdictMapping_data()
{
    QTest::addColumn<int>("verdict");
    QTest::addColumn<bool>("leftIsA");
    QTest::addColumn<int>("winner");
    QTest::newRow("left, a on left") << int(Verdict::Left) << true << int(Winner::A);
    QTest::newRow("left, b on left") << int(Verdict::Left) << false << int(Winner::B);
    QTest::newRow("right, a on left") << int(Verdict::Right) << true << int(Winner::B);
    QTest::newRow("right, b on left") << int(Verdict::Right) << false << int(Winner::A);
    QTest::newRow("tie") << int(Verdict::Tie) << false << int(Winner::Tie);
    QTest::newRow("both bad") << int(Verdict::BothBad) << true << int(Winner::BothBad);
    QTest::newRow("skip") << int(Verdict::Skip) << true << int(Winner::Skip);
}

void TestProjectStore::verdictMapping()
{
    QFETCH(int, verdict);
    QFETCH(bool, leftIsA);
    QFETCH(int, winner);
    const QString loc = fresh("sqlite");
    auto s = ProjectStore::open(loc);
    const qint64 pair = addPairs(*s, 1)[0];
    const qint64 a = s->annotator("m").id;
    const qint64 id = s->recordJudgment(a, pair, leftIsA, Verdict(verdict), JudgmentKind::Label,
        QDateTime::currentDateTimeUtc(), Strength::Much, "why");
    const auto js = s->judgmentsOfPair(pair);
    QCOMPARE(js.size(), 1);
    QCOMPARE(js[0].id, id);
    QCOMPARE(int(js[0].winner), winner);
    QCOMPARE(js[0].strength, Strength::Much);
    QCOMPARE(verdictFromName(verdictName(Verdict(verdict))), std::optional<Verdict>(Verdict(verdict)));
}

void TestProjectStore::progress()
{
    FRESH(loc);
    auto s = ProjectStore::open(loc);
    s->setOverlap(2);
    addPairs(*s, 6);
    const qint64 a = s->annotator("a").id, b = s->annotator("b").id;
    Progress p = s->progress(a);
    QCOMPARE(p.total, 12);
    QCOMPARE(p.done, 0);
    QCOMPARE(p.available, 6);
    for (int i = 0; i < 4; ++i) {
        auto x = s->nextPairFor(a);
        s->recordVerdict(a, *x, Verdict::Left);
    }
    for (int i = 0; i < 2; ++i) {
        auto x = s->nextPairFor(b);
        s->recordVerdict(b, *x, Verdict::Right, Strength::Slight);
    }
    p = s->progress(a);
    QCOMPARE(p.done, 6);
    QCOMPARE(p.mine, 4);
    QCOMPARE(p.available, 2);
    QCOMPARE(p.annotators, 2);
    QVERIFY(p.myMedianSeconds >= 0 && p.myTotalSeconds >= 0);
    QCOMPARE(s->progress(b).mine, 2);
    QCOMPARE(s->progress(b).available, 4);
}

void TestProjectStore::progressMatchesCount()
{
    FRESH(loc);
    auto s = ProjectStore::open(loc);
    s->setOverlap(2);
    addPairs(*s, 10);
    RawDb raw(loc);
    const QVector<qint64> ann { s->annotator("a").id, s->annotator("b").id, s->annotator("c").id };
    QVERIFY(sameProgress(*s, raw, ann, "start"));
    std::mt19937 rng(20240611); // fixed: a failure replays
    auto pick = [&](int n) { return int(rng() % unsigned(n)); };
    const Verdict verdicts[] = { Verdict::Left, Verdict::Right, Verdict::Tie, Verdict::BothBad, Verdict::Skip };
    int claims = 0, verdictCount = 0, undos = 0, releases = 0, slotless = 0, repairs = 0, overlaps = 0;
    for (int step = 0; step < 400; ++step) {
        const qint64 a = ann[pick(ann.size())];
        const JudgmentKind kind = pick(5) == 0 ? JudgmentKind::Eval : JudgmentKind::Label;
        const int op = pick(100);
        QString what;
        if (op < 40) {
            what = "verdict";
            if (auto p = s->nextPairFor(a, kind)) {
                s->recordVerdict(a, *p, verdicts[pick(5)], Strength::Unspecified);
                ++verdictCount;
            }
        } else if (op < 50) {
            what = "claim";
            claims += s->nextPairFor(a, kind) ? 1 : 0;
        } else if (op < 62) {
            what = "undo";
            undos += s->undoLastVerdict(a, kind) ? 1 : 0;
        } else if (op < 70) {
            what = "release";
            if (auto p = s->nextPairFor(a, kind)) {
                s->releaseSlot(a, p->slotId);
                ++releases;
            }
        } else if (op < 77) {
            what = "new label pairs";
            addPairs(*s, 1 + pick(3), QStringLiteral("s%1").arg(step));
        } else if (op < 81) {
            what = "new eval pair";
            const qint64 p = s->addPrompt(QStringLiteral("eval prompt %1").arg(step));
            s->addPair(p, s->addCompletion(p, "x"), s->addCompletion(p, "y"), "generated", JudgmentKind::Eval);
        } else if (op < 89) {
            what = "judgment without a slot"; // any pair, either kind: evaluation tools do this
            const qint64 pair = raw.scalar(QStringLiteral("SELECT MIN(id) FROM pairs")) + pick(12);
            if (raw.scalar(QStringLiteral("SELECT COUNT(*) FROM pairs WHERE id = ?"), { pair }) == 1) {
                s->recordJudgment(a, pair, pick(2) == 0, verdicts[pick(5)], kind,
                    QDateTime::currentDateTimeUtc().addMSecs(-pick(5000)));
                ++slotless;
            }
        } else if (op < 95) {
            what = "repair";
            if (auto p = s->nextPairFor(a, kind)) {
                s->repair(a, *p, pick(2) == 0, QStringLiteral("repaired at step %1").arg(step));
                ++repairs;
            }
        } else {
            what = "overlap";
            s->setOverlap(1 + pick(3));
            ++overlaps;
        }
        QVERIFY2(sameProgress(*s, raw, ann, QStringLiteral("step %1 (%2)").arg(step).arg(what)),
            qPrintable(QStringLiteral("progress() differs from the count after step %1: %2").arg(step).arg(what)));
    }
    // The sequence exercised every kind of change (a guard against a seed that tests little).
    QVERIFY(
        claims > 5 && verdictCount > 50 && undos > 10 && releases > 5 && slotless > 5 && repairs > 3 && overlaps > 1);
    QVERIFY(s->progress(ann[0]).total > 0);
}

void TestProjectStore::progressCountedAtMigration()
{
    // A project labeled by a version without counters: they are counted once when it is opened.
    FRESH(loc);
    QVector<qint64> ann;
    {
        auto s = ProjectStore::open(loc, 3);
        QCOMPARE(s->schemaVersion(), 3);
        s->setOverlap(2);
        addPairs(*s, 8);
        ann = { s->annotator("a").id, s->annotator("b").id };
        for (int i = 0; i < 5; ++i)
            s->recordVerdict(ann[0], *s->nextPairFor(ann[0]), Verdict::Left);
        s->recordVerdict(ann[1], *s->nextPairFor(ann[1]), Verdict::Skip);
        s->nextPairFor(ann[1]); // open on screen
        s->recordJudgment(ann[1], s->listPairs({}).rows.last().id, true, Verdict::Right, JudgmentKind::Eval,
            QDateTime::currentDateTimeUtc().addSecs(-3));
        QVERIFY_THROWS_EXCEPTION(ProjectError, s->progress(ann[0])); // no counters before version 4
    }
    auto s = ProjectStore::open(loc);
    QCOMPARE(s->schemaVersion(), ProjectStore::currentSchemaVersion());
    RawDb raw(loc);
    QVERIFY(sameProgress(*s, raw, ann, "after migration"));
    const Progress p = s->progress(ann[0]);
    QCOMPARE(p.total, 16);
    QCOMPARE(p.done, 6);
    QCOMPARE(p.mine, 5);
    QCOMPARE(p.available, 3); // 8 pairs, 5 judged by a
    // And they stay right as labeling goes on.
    s->recordVerdict(ann[1], *s->nextPairFor(ann[1]), Verdict::Left);
    s->undoLastVerdict(ann[0]);
    QVERIFY(sameProgress(*s, raw, ann, "after migration and labeling"));
}

void TestProjectStore::progressUnderConcurrency()
{
    // 8 connections label, skip, undo and give back slots at once; the counters each transaction adds to
    // must sum to the count of the tables (no lost update, no double count).
    FRESH(loc);
    const int pairs = 40, threads = 8;
    {
        auto s = ProjectStore::open(loc);
        s->setOverlap(3);
        addPairs(*s, pairs);
    }
    std::mutex mutex;
    QStringList failures;
    QVector<qint64> ann(threads);
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
            try {
                auto s = ProjectStore::open(loc);
                const qint64 me = s->annotator(QStringLiteral("worker%1").arg(t)).id;
                {
                    std::lock_guard<std::mutex> lock(mutex);
                    ann[t] = me;
                }
                std::mt19937 rng(1000 + t);
                for (int op = 0; op < 60; ++op) {
                    auto p = s->nextPairFor(me);
                    if (!p)
                        break;
                    const int r = int(rng() % 10);
                    if (r < 6)
                        s->recordVerdict(me, *p, r == 0 ? Verdict::Skip : Verdict::Left);
                    else if (r < 8)
                        s->undoLastVerdict(me);
                    else if (r < 9)
                        s->releaseSlot(me, p->slotId);
                    else
                        s->recordJudgment(
                            me, p->pairId, true, Verdict::Tie, JudgmentKind::Eval, QDateTime::currentDateTimeUtc());
                }
            } catch (const std::exception &e) {
                std::lock_guard<std::mutex> lock(mutex);
                failures << QString::fromStdString(e.what());
            }
        });
    }
    for (auto &th : pool)
        th.join();
    QVERIFY2(failures.isEmpty(), qPrintable(failures.join('\n')));
    auto s = ProjectStore::open(loc);
    RawDb raw(loc);
    QVERIFY(raw.scalar(QStringLiteral("SELECT COUNT(*) FROM judgments")) > pairs);
    QVERIFY(sameProgress(*s, raw, ann, "after 8 concurrent annotators"));
}

void TestProjectStore::listings()
{
    FRESH(loc);
    auto s = ProjectStore::open(loc);
    addPairs(*s, 30, "apple");
    addPairs(*s, 20, "Banana_100%");
    const qint64 a = s->annotator("a").id;
    for (int i = 0; i < 10; ++i) {
        auto p = s->nextPairFor(a);
        s->recordVerdict(a, *p, i < 7 ? Verdict::Left : Verdict::Skip);
    }
    ListQuery q;
    q.limit = 7;
    auto prompts = s->listPrompts(q);
    QCOMPARE(prompts.total, 50);
    QCOMPARE(prompts.rows.size(), 7);
    QCOMPARE(prompts.rows[0].completions, 2);
    q.search = "banana_100%"; // case-insensitive, LIKE wildcards taken literally
    QCOMPARE(s->listPrompts(q).total, 20);
    q.search = "e_p"; // would match "apple prompt" if _ were a wildcard
    QCOMPARE(s->listPrompts(q).total, 0);
    q.search = "APPLE PROMPT 2"; // 2, 20..29
    q.offset = 0;
    q.limit = 100;
    QCOMPARE(s->listPrompts(q).total, 11);
    ListQuery pq;
    pq.judged = JudgedFilter::Judged;
    QCOMPARE(s->listPairs(pq).total, 7); // skips do not count as judged
    pq.judged = JudgedFilter::Unjudged;
    QCOMPARE(s->listPairs(pq).total, 43);
    pq.judged = JudgedFilter::Any;
    pq.search = "answer b 1";
    pq.offset = 5;
    pq.limit = 3;
    const auto pairs = s->listPairs(pq);
    QCOMPARE(pairs.total, 22); // "... answer b 1", "... 10".."19" for both tags
    QCOMPARE(pairs.rows.size(), 3);
    ListQuery jq;
    jq.annotatorId = a;
    QCOMPARE(s->listJudgments(jq).total, 10);
    jq.verdict = Verdict::Skip;
    QCOMPARE(s->listJudgments(jq).total, 3);
    jq.verdict.reset();
    jq.kind = JudgmentKind::Eval;
    QCOMPARE(s->listJudgments(jq).total, 0);
}

void TestProjectStore::sanityChecks()
{
    FRESH(loc);
    auto s = ProjectStore::open(loc);
    const qint64 p = s->addPrompt("prompt");
    const qint64 x = s->addCompletion(p, "same text"), y = s->addCompletion(p, "same text");
    const qint64 same = s->addPair(p, x, y);
    const qint64 u = s->addCompletion(p, "short"), v = s->addCompletion(p, QString(40, 'v'));
    const qint64 skew = s->addPair(p, u, v);
    const qint64 dupOf = s->addPair(p, s->addCompletion(p, "one answer"), s->addCompletion(p, "another answer"));
    const qint64 dup = s->addPair(p, s->addCompletion(p, "another answer"), s->addCompletion(p, "one answer"));
    const qint64 longP = s->addPrompt(QString(120, 'p'));
    const qint64 tooLong = s->addPair(longP, s->addCompletion(longP, "fine one"), s->addCompletion(longP, "fine two"));
    SanityOptions o;
    o.maxChars = 100;
    o.maxSkew = 3.0;
    QHash<int, QSet<qint64>> found;
    for (const SanityIssue &i : s->sanityChecks(o)) {
        found[i.type].insert(i.pairId);
        if (i.type == SanityIssue::DuplicatePair)
            QCOMPARE(i.otherPairId, dupOf);
    }
    QCOMPARE(found[SanityIssue::ChosenEqualsRejected], QSet<qint64> { same });
    QCOMPARE(found[SanityIssue::LengthSkew], QSet<qint64> { skew });
    QCOMPARE(found[SanityIssue::DuplicatePair], QSet<qint64> { dup });
    QCOMPARE(found[SanityIssue::OverMaxLength], QSet<qint64> { tooLong });
}

void TestProjectStore::runs()
{
    FRESH(loc);
    auto s = ProjectStore::open(loc);
    const qint64 id = s->createRun("first", R"({"beta":0.1})", "/tmp/out");
    s->updateRun(id, "running", R"({"loss":0.69})");
    s->finishRun(id, "finished");
    const auto rs = s->runs();
    QCOMPARE(rs.size(), 1);
    QCOMPARE(rs[0].status, QStringLiteral("finished"));
    QCOMPARE(rs[0].configJson, QStringLiteral(R"({"beta":0.1})"));
    QCOMPARE(rs[0].lastMetricsJson, QStringLiteral(R"({"loss":0.69})"));
    QVERIFY(rs[0].endedAt.isValid());
}

void TestProjectStore::concurrentAnnotators()
{
    FRESH(loc);
    const int pairs = 60, k = 3, threads = 8;
    {
        auto s = ProjectStore::open(loc);
        s->setOverlap(k);
        addPairs(*s, pairs);
    }
    std::mutex mutex;
    QStringList failures;
    QVector<QPair<qint64, qint64>> served; // (slot, annotator) as reported by nextPairFor
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
            try {
                auto s = ProjectStore::open(loc); // its own connection, in this thread
                const qint64 me = s->annotator(QStringLiteral("worker%1").arg(t)).id;
                while (auto p = s->nextPairFor(me)) {
                    {
                        std::lock_guard<std::mutex> lock(mutex);
                        served.push_back({ p->slotId, me });
                    }
                    s->recordVerdict(me, *p, (p->pairId + t) % 2 ? Verdict::Left : Verdict::Right);
                }
            } catch (const std::exception &e) {
                std::lock_guard<std::mutex> lock(mutex);
                failures << QString::fromStdString(e.what());
            }
        });
    }
    for (auto &th : pool)
        th.join();
    QVERIFY2(failures.isEmpty(), qPrintable(failures.join('\n')));
    QCOMPARE(served.size(), pairs * k);
    QSet<qint64> servedSlots;
    for (const auto &sv : served) {
        QVERIFY2(!servedSlots.contains(sv.first), "a slot was served twice");
        servedSlots.insert(sv.first);
    }
    auto s = ProjectStore::open(loc);
    const Counts c = s->counts();
    QCOMPARE(c.judgments, qint64(pairs * k));
    QCOMPARE(c.labelSlotsDone, qint64(pairs * k));
    ListQuery q;
    q.limit = 1000;
    const auto all = s->listJudgments(q);
    QCOMPARE(all.total, qint64(pairs * k));
    QSet<QPair<qint64, qint64>> pairAnnotator;
    QSet<qint64> judgedSlots;
    QHash<qint64, int> perPair;
    for (const JudgmentRow &r : all.rows) {
        const auto key = qMakePair(r.judgment.pairId, r.judgment.annotatorId);
        QVERIFY2(!pairAnnotator.contains(key), "one annotator judged a pair twice");
        pairAnnotator.insert(key);
        QVERIFY2(!judgedSlots.contains(r.judgment.slotId), "a slot holds two verdicts");
        judgedSlots.insert(r.judgment.slotId);
        ++perPair[r.judgment.pairId];
    }
    QCOMPARE(perPair.size(), pairs);
    for (int n : perPair)
        QCOMPARE(n, k);
}

static QByteArray fileBytes(const QString &path)
{
    QFile f(path);
    return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray("<unreadable>");
}

// Every way of opening: none may succeed on a file that is not a project, nor change it.
static QStringList openErrors(const QString &loc)
{
    QStringList errors;
    for (const auto mode :
        { ProjectStore::OpenMode::OpenOrCreate, ProjectStore::OpenMode::Existing, ProjectStore::OpenMode::ReadOnly }) {
        QString error;
        if (ProjectStore::open(loc, mode, &error))
            errors << QStringLiteral("opened");
        else
            errors << error;
    }
    QString error;
    errors << (ProjectStore::open(loc, &error) ? QStringLiteral("opened") : error);
    return errors;
}

void TestProjectStore::refuseForeignFiles()
{
    QDir dir(m_dir.filePath("foreign"));
    QVERIFY(dir.mkpath("."));
    // Another program's SQLite database with one table (rollback journal, as sqlite3 makes them).
    const QString foreign = dir.filePath("other.sqlite");
    {
        QSqlDatabase db = QSqlDatabase::addDatabase("QSQLITE", "foreign");
        db.setDatabaseName(foreign);
        QVERIFY(db.open());
        QSqlQuery q(db);
        QVERIFY(q.exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"));
        QVERIFY(q.exec("INSERT INTO notes (body) VALUES ('keep me')"));
    }
    QSqlDatabase::removeDatabase("foreign");
    const QString empty = dir.filePath("empty.dpo");
    QVERIFY(QFile(empty).open(QIODevice::WriteOnly));
    const QString text = dir.filePath("text.dpo");
    {
        QFile f(text);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write(QByteArray(2000, 'x'));
    }
    const QStringList before = dir.entryList(QDir::Files | QDir::Hidden);
    for (const QString &path : { foreign, empty, text }) {
        const QByteArray bytes = fileBytes(path);
        for (const QString &error : openErrors(path))
            QVERIFY2(error.contains("is not a DPO Studio project"), qPrintable(path + ": " + error));
        QCOMPARE(fileBytes(path), bytes); // byte-identical: no tables added, not switched to WAL
    }
    QCOMPARE(dir.entryList(QDir::Files | QDir::Hidden), before); // no -wal, -shm or -journal left behind
    QString error;
    QVERIFY(!ProjectStore::open(empty, &error));
    QVERIFY2(error.contains("empty file"), qPrintable(error));
    QVERIFY(!ProjectStore::open(foreign, &error));
    QVERIFY2(error.contains("notes"), qPrintable(error)); // names what it found

    // A missing file is a new project only when the caller may create one.
    const QString missing = dir.filePath("missing.dpo");
    for (const auto mode : { ProjectStore::OpenMode::Existing, ProjectStore::OpenMode::ReadOnly }) {
        QVERIFY(!ProjectStore::open(missing, mode, &error));
        QVERIFY2(error.contains("no project at"), qPrintable(error));
        QVERIFY(!QFileInfo::exists(missing));
    }
    QVERIFY(ProjectStore::open(missing, ProjectStore::OpenMode::OpenOrCreate));
    QCOMPARE(ProjectStore::open(missing, ProjectStore::OpenMode::Existing)->schemaVersion(),
        ProjectStore::currentSchemaVersion());
}

void TestProjectStore::refuseForeignDatabase()
{
    QString loc;
    [&] { DPO_FRESH_PROJECT(QStringLiteral("postgres"), QDir(m_dir.path()), loc); }();
    if (QTest::currentTestFailed() || loc.isEmpty())
        return;
    // An empty database: a new project only where the caller may create one.
    QString error;
    QVERIFY(!ProjectStore::open(loc, ProjectStore::OpenMode::Existing, &error));
    QVERIFY2(error.contains("is not a DPO Studio project"), qPrintable(error));
    {
        RawDb raw(loc);
        QCOMPARE(raw.scalar("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema()"), 0);
    }
    {
        const QUrl url(loc);
        QSqlDatabase db = QSqlDatabase::addDatabase("QPSQL", "foreign_pg");
        db.setHostName(url.host());
        db.setPort(url.port(5432));
        db.setUserName(url.userName());
        db.setDatabaseName(url.path().mid(1));
        QVERIFY(db.open());
        QSqlQuery q(db);
        QVERIFY(q.exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"));
    }
    QSqlDatabase::removeDatabase("foreign_pg");
    for (const QString &e : openErrors(loc))
        QVERIFY2(e.contains("is not a DPO Studio project") && e.contains("notes"), qPrintable(e));
    RawDb raw(loc);
    QCOMPARE(raw.scalar("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema()"), 1);
}

void TestProjectStore::readOnlyProject()
{
    FRESH(loc);
    qint64 pairId = 0;
    {
        auto s = ProjectStore::open(loc);
        pairId = addPairs(*s, 3).first();
        const qint64 a = s->annotator("ann").id;
        s->recordVerdict(a, *s->nextPairFor(a), Verdict::Left);
    }
    const QByteArray bytes = backend == "sqlite" ? fileBytes(loc) : QByteArray();
    auto s = ProjectStore::open(loc, ProjectStore::OpenMode::ReadOnly);
    QVERIFY(s->isReadOnly());
    QVERIFY(!ProjectStore::open(loc)->isReadOnly());
    // Browsing and export work.
    QCOMPARE(s->counts().pairs, 3);
    QCOMPARE(s->listPairs({}).total, 3);
    QCOMPARE(s->judgmentsOfPair(pairId).size(), 1);
    QCOMPARE(s->annotator("ann", false).name, QStringLiteral("ann"));
    QCOMPARE(s->progress(s->annotator("ann", false).id).mine, 1);
    QCOMPARE(exportFile(*s, m_dir.filePath("readonly-export.jsonl")).rows, 1);
    // Every change says why it cannot be made.
    const qint64 ann = s->annotator("ann", false).id;
    auto expectReadOnly = [](const std::function<void()> &f) {
        try {
            f();
        } catch (const ProjectError &e) {
            return QString::fromStdString(e.what()).contains("read-only");
        }
        return false;
    };
    QVERIFY(expectReadOnly([&] { s->annotator("newcomer"); }));
    QVERIFY(expectReadOnly([&] { s->nextPairFor(ann); }));
    QVERIFY(expectReadOnly([&] { s->addPrompt("new prompt"); }));
    QVERIFY(expectReadOnly([&] { s->setGuidelines("changed"); }));
    QVERIFY(expectReadOnly([&] { ProjectStore::Transaction tx(*s); }));
    QCOMPARE(s->annotators().size(), 1);
    s.reset();
    if (backend == "sqlite")
        QCOMPARE(fileBytes(loc), bytes);
}

void TestProjectStore::readOnlyFile()
{
    // A project file without write permission opens read-only by itself (the GUI asks isReadOnly()).
    const QString loc = fresh("sqlite");
    {
        auto s = ProjectStore::open(loc);
        addPairs(*s, 2);
    }
    const QByteArray bytes = fileBytes(loc);
    bool immutable = false;
    if (geteuid() == 0) {
        // root writes through permission bits: the immutable attribute (ext4 and others) binds root too.
        immutable = QProcess::execute("chattr", { "+i", loc }) == 0;
        if (!immutable)
            QSKIP("running as root without chattr +i: a read-only file cannot be made");
    } else {
        QVERIFY(QFile::setPermissions(loc, QFileDevice::ReadOwner | QFileDevice::ReadGroup));
    }
    QString error;
    auto s = ProjectStore::open(loc, &error);
    QStringList failures;
    if (!s) {
        failures << "open: " + error;
    } else {
        if (!s->isReadOnly())
            failures << "not read-only";
        if (s->listPairs({}).total != 2)
            failures << "listing";
        try {
            s->annotator("ann");
            failures << "annotator created";
        } catch (const ProjectError &e) {
            if (!QString::fromStdString(e.what()).contains("read-only"))
                failures << QString::fromStdString(e.what());
        }
        s.reset();
    }
    if (immutable)
        QProcess::execute("chattr", { "-i", loc });
    else
        QFile::setPermissions(loc, QFileDevice::ReadOwner | QFileDevice::WriteOwner);
    QVERIFY2(failures.isEmpty(), qPrintable(failures.join("; ")));
    QCOMPARE(fileBytes(loc), bytes);
}

void TestProjectStore::emptyCompletion()
{
    // A model that answers with end-of-sequence at once gave a real answer: it is stored and judged.
    FRESH(loc);
    auto s = ProjectStore::open(loc);
    const qint64 p = s->addPrompt("Say nothing.");
    Provenance gen;
    gen.source = "generated";
    gen.modelPath = "/models/base";
    const qint64 empty = s->addCompletion(p, QString(), gen);
    const qint64 other = s->addCompletion(p, "Something.", gen);
    QCOMPARE(s->completion(empty).text, QString(""));
    QCOMPARE(s->completionsOf(p).size(), 2);
    s->addPair(p, empty, other, "eval", JudgmentKind::Eval);
    const qint64 judge = s->annotator("judge").id;
    auto shown = s->nextPairFor(judge, JudgmentKind::Eval);
    QVERIFY(shown);
    QVERIFY((shown->left.text.isEmpty()) != (shown->right.text.isEmpty()));
    s->recordVerdict(judge, *shown, shown->left.text.isEmpty() ? Verdict::Right : Verdict::Left);
    const auto js = s->judgmentsOfPair(shown->pairId);
    QCOMPARE(js.size(), 1);
    QCOMPARE(js[0].winner, Winner::B); // the non-empty answer (b) won
}

void TestProjectStore::preferredMajority()
{
    FRESH(loc);
    auto s = ProjectStore::open(loc);
    const QVector<qint64> pairs = addPairs(*s, 7);
    const qint64 p = s->addPrompt("judged before import");
    const qint64 imported
        = s->addPair(p, s->addCompletion(p, "x"), s->addCompletion(p, "y"), "import-judged", JudgmentKind::Label, "b");
    const qint64 importedAgain = s->addPair(
        p, s->addCompletion(p, "x2"), s->addCompletion(p, "y2"), "import-judged", JudgmentKind::Label, "b");
    QVector<qint64> ann;
    for (int i = 0; i < 3; ++i)
        ann << s->annotator(QStringLiteral("ann%1").arg(i)).id;
    const QDateTime now = QDateTime::currentDateTimeUtc();
    // left with leftIsA = true: a wins; right: b wins.
    auto vote = [&](int who, qint64 pair, Verdict v) {
        s->recordJudgment(ann[who], pair, true, v, JudgmentKind::Label, now);
    };
    vote(0, pairs[0], Verdict::Left); // a
    vote(0, pairs[1], Verdict::Left); // a, b: an even split
    vote(1, pairs[1], Verdict::Right);
    vote(0, pairs[2], Verdict::Right); // b, b, a
    vote(1, pairs[2], Verdict::Right);
    vote(2, pairs[2], Verdict::Left);
    vote(0, pairs[3], Verdict::Tie); // tie verdicts
    vote(0, pairs[4], Verdict::BothBad);
    vote(0, pairs[5], Verdict::Right); // ann0 changes their mind: the latest counts
    vote(0, pairs[5], Verdict::Left);
    vote(1, pairs[5], Verdict::Skip); // skips do not vote
    // pairs[6] nobody judged
    vote(0, importedAgain, Verdict::Left); // a judgment outvotes the imported preference
    QHash<qint64, QString> preferred;
    ListQuery q;
    q.limit = 4; // across pages
    for (q.offset = 0; q.offset < 20; q.offset += q.limit)
        for (const PairRow &row : s->listPairs(q).rows)
            preferred.insert(row.id, row.preferred);
    QCOMPARE(preferred.size(), 9);
    QCOMPARE(preferred[pairs[0]], QString("a"));
    QCOMPARE(preferred[pairs[1]], QString("tie"));
    QCOMPARE(preferred[pairs[2]], QString("b"));
    QCOMPARE(preferred[pairs[3]], QString("tie"));
    QCOMPARE(preferred[pairs[4]], QString("both_bad"));
    QCOMPARE(preferred[pairs[5]], QString("a"));
    QCOMPARE(preferred[pairs[6]], QString(""));
    QCOMPARE(preferred[imported], QString("b"));
    QCOMPARE(preferred[importedAgain], QString("a"));
}

DPO_TEST_MAIN(TestProjectStore)

} // namespace test_project_store

#include "test_project_store.moc"
