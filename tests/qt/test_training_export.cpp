// core/project/training_export + run_record: the data files a training run is given (a project's judged
// pairs exported with the filters, an eval split drawn from the seed) and the run's traces (its record in
// the project, the lock file). What TrainingWorker and `dpo-cli train --project` share.
#include "project/project_store.h"
#include "project/run_record.h"
#include "project/training_export.h"

#include "engine/error.h"

#include <QDir>
#include <QFile>
#include <QJsonDocument>
#include <QJsonObject>
#include <QSet>
#include <QTemporaryDir>
#include "qt_test_main.h"

#include <QTest>

namespace test_training_export { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

class TestTrainingExport : public QObject {
    Q_OBJECT
private slots:
    void initTestCase();
    void splitsFromTheSeed_data();
    void splitsFromTheSeed();
    void exportsProjectPairs_data();
    void exportsProjectPairs();
    void refusesAProjectWithoutJudgedPairs();
    void recordsARun();
    void lockTellsLiveFromReleased();

private:
    QString writeRows(const QString &name, int rows);
    QString judgedProject(const QString &name, int pairs);
    static QStringList lines(const QString &path);
    QTemporaryDir m_dir;
};

void TestTrainingExport::initTestCase()
{
    QVERIFY(m_dir.isValid());
}

QString TestTrainingExport::writeRows(const QString &name, int rows)
{
    const QString path = m_dir.filePath(name);
    QFile f(path);
    if (!f.open(QIODevice::WriteOnly))
        return {};
    for (int i = 0; i < rows; ++i)
        f.write(QStringLiteral("{\"prompt\":\"p%1\",\"chosen\":\"c\",\"rejected\":\"r\"}\n\n").arg(i).toUtf8());
    return path;
}

QString TestTrainingExport::judgedProject(const QString &name, int pairs)
{
    const QString path = m_dir.filePath(name);
    auto store = dpo::ProjectStore::open(path);
    for (int i = 0; i < pairs; ++i) {
        const qint64 p = store->addPrompt(QStringLiteral("prompt %1").arg(i));
        const qint64 a = store->addCompletion(p, QStringLiteral("good %1").arg(i));
        const qint64 b = store->addCompletion(p, QStringLiteral("bad %1").arg(i));
        store->addPair(p, a, b, QStringLiteral("import-judged"), dpo::JudgmentKind::Label, QStringLiteral("a"));
    }
    return path;
}

QStringList TestTrainingExport::lines(const QString &path)
{
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly))
        return {};
    return QString::fromUtf8(f.readAll()).split(QLatin1Char('\n'), Qt::SkipEmptyParts);
}

void TestTrainingExport::splitsFromTheSeed_data()
{
    QTest::addColumn<int>("rows");
    QTest::addColumn<double>("ratio");
    QTest::addColumn<int>("evalRows");
    QTest::newRow("a quarter, rounded") << 10 << 0.25 << 3;
    QTest::newRow("two rows: one each side") << 2 << 0.1 << 1;
    QTest::newRow("never every row") << 4 << 0.9 << 3;
    QTest::newRow("one row: no split") << 1 << 0.5 << 0;
    QTest::newRow("ratio 0") << 5 << 0.0 << 0;
}

void TestTrainingExport::splitsFromTheSeed()
{
    QFETCH(int, rows);
    QFETCH(double, ratio);
    QFETCH(int, evalRows);
    QCOMPARE(dpo::evalSplitSize(rows, ratio), qint64(evalRows));
    const QString source = writeRows(QStringLiteral("rows-%1.jsonl").arg(rows), rows);
    auto split = [&](quint64 seed, const QString &tag) {
        const QString train = m_dir.filePath(tag + QStringLiteral("/train.jsonl"));
        const QString eval = m_dir.filePath(tag + QStringLiteral("/eval.jsonl"));
        qint64 nTrain = -1, nEval = -1;
        dpo::splitDataset(source, ratio, seed, train, eval, &nTrain, &nEval);
        return std::make_tuple(lines(train), lines(eval), nTrain, nEval);
    };
    const auto [train, eval, nTrain, nEval] = split(7, QStringLiteral("a"));
    QCOMPARE(nEval, qint64(evalRows));
    QCOMPARE(nTrain, qint64(rows - evalRows));
    QCOMPARE(eval.size(), evalRows);
    QCOMPARE(train.size(), rows - evalRows);
    // A partition of the source's non-blank lines, each side in the source's order.
    const QStringList all = lines(source);
    QSet<QString> seen;
    for (const QStringList &side : {train, eval}) {
        qsizetype last = -1;
        for (const QString &l : side) {
            const qsizetype at = all.indexOf(l);
            QVERIFY(at > last);
            last = at;
            seen.insert(l);
        }
    }
    QCOMPARE(seen.size(), rows);
    // The same seed draws the same split.
    const auto [train2, eval2, nTrain2, nEval2] = split(7, QStringLiteral("b"));
    QCOMPARE(train2, train);
    QCOMPARE(eval2, eval);
}

void TestTrainingExport::exportsProjectPairs_data()
{
    QTest::addColumn<double>("ratio");
    QTest::addColumn<int>("trainRows");
    QTest::addColumn<int>("evalRows");
    QTest::newRow("no split: straight to the training file") << 0.0 << 8 << 0;
    QTest::newRow("split") << 0.25 << 6 << 2;
}

void TestTrainingExport::exportsProjectPairs()
{
    QFETCH(double, ratio);
    QFETCH(int, trainRows);
    QFETCH(int, evalRows);
    const QString tag = QString::number(ratio);
    auto store = dpo::ProjectStore::open(judgedProject(QStringLiteral("judged-%1.dpo").arg(tag), 8));
    QVERIFY(store);
    const QString data = m_dir.filePath(QStringLiteral("out-%1/data").arg(tag));
    dpo::TrainingDataPlan plan;
    plan.source = dpo::TrainingDataPlan::Source::Project;
    plan.evalRatio = ratio;
    plan.trainPath = QDir(data).filePath(QStringLiteral("train.jsonl"));
    plan.evalPath = QDir(data).filePath(QStringLiteral("eval.jsonl"));
    QStringList log;
    const dpo::TrainingDataResult r =
        dpo::prepareTrainingData(store.get(), plan, nullptr, [&log](const QString &line) { log << line; });
    QCOMPARE(r.exportedPairs, qint64(8));
    QCOMPARE(lines(plan.trainPath).size(), trainRows);
    QCOMPARE(lines(plan.evalPath).size(), evalRows);
    QCOMPARE(QFile::exists(QDir(data).filePath(QStringLiteral("pairs.jsonl"))), ratio > 0);
    QCOMPARE(log.size(), ratio > 0 ? 3 : 2); // export, count, split
    const QJsonObject row = QJsonDocument::fromJson(lines(plan.trainPath).first().toUtf8()).object();
    QVERIFY(row.value(QStringLiteral("chosen")).toString().startsWith(QStringLiteral("good")));
    QVERIFY(row.value(QStringLiteral("rejected")).toString().startsWith(QStringLiteral("bad")));
}

void TestTrainingExport::refusesAProjectWithoutJudgedPairs()
{
    auto store = dpo::ProjectStore::open(judgedProject(QStringLiteral("empty.dpo"), 0));
    QVERIFY(store);
    dpo::TrainingDataPlan plan;
    plan.source = dpo::TrainingDataPlan::Source::Project;
    plan.trainPath = m_dir.filePath(QStringLiteral("empty-out/data/train.jsonl"));
    try {
        dpo::prepareTrainingData(store.get(), plan);
        QFAIL("an empty project was exported");
    } catch (const dpo::Error &e) {
        QVERIFY2(QString::fromUtf8(e.what()).contains(QStringLiteral("option 'dataset'")), e.what());
    }
    plan.source = dpo::TrainingDataPlan::Source::Project;
    QVERIFY_THROWS_EXCEPTION(dpo::Error, dpo::prepareTrainingData(nullptr, plan)); // no project open
}

void TestTrainingExport::recordsARun()
{
    auto store = dpo::ProjectStore::open(m_dir.filePath(QStringLiteral("runs.dpo")));
    QVERIFY(store);
    const QString out = m_dir.filePath(QStringLiteral("run-1"));
    qint64 id = 0;
    {
        dpo::RunRecord record(store.get());
        id = record.begin(0, QStringLiteral("run-1"), QStringLiteral("{\"beta\":0.1}"), out);
        QVERIFY(id > 0);
        QCOMPARE(store->runs().first().status, QStringLiteral("running"));
        record.addMetrics(QJsonObject{{QStringLiteral("step"), 1}, {QStringLiteral("loss"), 0.7}});
        record.addMetrics(QJsonObject{{QStringLiteral("step"), 2}});
        record.finish(QStringLiteral("stopped"));
    }
    dpo::Run run = store->runs().first();
    QCOMPARE(run.status, QStringLiteral("stopped"));
    QVERIFY(run.endedAt.isValid());
    const QJsonObject last = QJsonDocument::fromJson(run.lastMetricsJson.toUtf8()).object();
    QCOMPARE(last.value(QStringLiteral("step")).toInt(), 2);
    QCOMPARE(last.value(QStringLiteral("loss")).toDouble(), 0.7);
    {
        dpo::RunRecord resumed(store.get());
        QCOMPARE(resumed.begin(id, QString(), QString(), out), id); // a resume takes the record over
        QCOMPARE(store->runs().first().status, QStringLiteral("running"));
        resumed.finish(QStringLiteral("finished"));
    }
    QCOMPARE(store->runs().size(), 1);
    QCOMPARE(store->runs().first().status, QStringLiteral("finished"));
    dpo::RunRecord none(nullptr); // no project: nothing recorded, nothing thrown
    QCOMPARE(none.begin(0, QStringLiteral("x"), QString(), out), qint64(0));
    none.finish(QStringLiteral("finished"));
}

void TestTrainingExport::lockTellsLiveFromReleased()
{
    const QString out = m_dir.filePath(QStringLiteral("locked"));
    QVERIFY(QDir().mkpath(out));
    QVERIFY(!dpo::RunRecord::isLocked(out));
    {
        dpo::RunRecord record(nullptr);
        record.lock(out);
        QVERIFY(dpo::RunRecord::isLocked(out)); // this very process
        record.release();
        QVERIFY(!dpo::RunRecord::isLocked(out));
        record.lock(out);
    }
    QVERIFY(!QFile::exists(QDir(out).filePath(dpo::RunRecord::lockFileName()))); // the destructor releases
}

DPO_TEST_MAIN(TestTrainingExport)

} // namespace test_training_export

#include "test_training_export.moc"
