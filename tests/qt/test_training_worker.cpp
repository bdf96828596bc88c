// TrainingRunner / TrainingWorker on the llama-gqa fixture: the trainer runs in the worker's own thread
// and its metrics arrive as queued signals (the same lines as metrics.jsonl, with TRL's names, plus the
// memory read-out); Stop returns within 1 s with a checkpoint, and a resumed run reaches the end with the
// same final metrics line as an uninterrupted one; failures come back as a message; the run is recorded in
// the project (export of the judged pairs + eval split prepared off the GUI thread); lock files tell a
// live run from one that died with the app.
#include "engine/training/dpo_trainer.h"

#include "ui/train/trainingworker.h"

#include "project/project_store.h"

#include <QDir>
#include <QFile>
#include <QJsonDocument>
#include <QJsonObject>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTemporaryDir>
#include "qt_test_main.h"

#include <QtTest>

namespace test_training_worker { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

class TestTrainingWorker : public QObject {
    Q_OBJECT
private slots:
    void initTestCase();
    void runsInItsThreadAndEmitsMetrics();
    void stopsWithinOneSecondAndResumes();
    void failureComesBackAsMessage();
    void recordsRunAndPreparesProjectData();
    void lockFileTellsLiveFromDead();
    void severalProcessesFollowRankZero();

private:
    dpo::TrainConfig baseConfig(const QString &out, int64_t maxSteps) const;
    static QString fixture(const QString &rel) { return QStringLiteral(DPO_TEST_DATA_DIR "/") + rel; }
    static QList<QJsonObject> readMetrics(const QString &dir);
    QTemporaryDir m_dir;
};

void TestTrainingWorker::initTestCase()
{
    QStandardPaths::setTestModeEnabled(true);
    QVERIFY(m_dir.isValid());
}

dpo::TrainConfig TestTrainingWorker::baseConfig(const QString &out, int64_t maxSteps) const
{
    dpo::TrainConfig c;
    c.model = fixture(QStringLiteral("llama-gqa/ref")).toStdString();
    c.dataset = fixture(QStringLiteral("llama-gqa/pairs.jsonl")).toStdString();
    c.outputDir = out.toStdString();
    c.maxSteps = maxSteps;
    c.batchSize = 2;
    c.learningRate = 1e-3;
    c.saveSteps = 0;
    c.threads = 1;
    return c;
}

QList<QJsonObject> TestTrainingWorker::readMetrics(const QString &dir)
{
    QList<QJsonObject> out;
    QFile f(QDir(dir).filePath(QStringLiteral("metrics.jsonl")));
    if (!f.open(QIODevice::ReadOnly))
        return out;
    while (!f.atEnd()) {
        const QJsonDocument d = QJsonDocument::fromJson(f.readLine());
        if (d.isObject())
            out.append(d.object());
    }
    return out;
}

void TestTrainingWorker::runsInItsThreadAndEmitsMetrics()
{
    TrainingRunner runner;
    QSignalSpy metrics(&runner, &TrainingRunner::metrics);
    QSignalSpy finished(&runner, &TrainingRunner::finished);
    QSignalSpy failed(&runner, &TrainingRunner::failed);
    QSignalSpy logs(&runner, &TrainingRunner::logLine);
    const QString out = m_dir.filePath(QStringLiteral("complete"));
    TrainingJob job;
    job.config = baseConfig(out, 4);
    QThread *emitter = nullptr;
    QObject probe;
    QMetaObject::Connection c = connect(
        &runner, &TrainingRunner::started, &probe, [&]() { emitter = QThread::currentThread(); });
    QVERIFY(runner.start(job));
    QVERIFY(runner.isRunning());
    QVERIFY(!runner.start(job)); // one job at a time
    QTRY_VERIFY_WITH_TIMEOUT(finished.size() + failed.size() > 0, 60000);
    disconnect(c);
    QVERIFY2(failed.isEmpty(), failed.isEmpty() ? "" : qPrintable(failed.first().first().toString()));
    QCOMPARE(finished.first().at(0).toString(), QStringLiteral("completed"));
    QVERIFY(QFileInfo::exists(finished.first().at(1).toString() + QStringLiteral("/trainer_state.json")));
    QVERIFY(QFileInfo::exists(finished.first().at(2).toString() + QStringLiteral("/model.safetensors")));
    QVERIFY(!runner.isRunning());
    QCOMPARE(emitter, QThread::currentThread()); // delivered (queued) in the receiver's thread
    QVERIFY(runner.workerThread() != QThread::currentThread());
    QVERIFY(!logs.isEmpty());

    // Every metrics.jsonl line arrived as a signal, with the same values.
    const QList<QJsonObject> lines = readMetrics(out);
    QCOMPARE(metrics.size(), lines.size());
    QCOMPARE(lines.size(), 4);
    for (int i = 0; i < lines.size(); ++i) {
        const QVariantMap m = metrics.at(i).first().toMap();
        for (const char *key : {"step", "loss", "rewards/accuracies", "rewards/margins", "rewards/chosen",
                                "rewards/rejected", "logps/chosen", "logps/rejected", "grad_norm", "learning_rate",
                                "tokens_per_second", "total_steps"}) {
            QVERIFY2(m.contains(QLatin1String(key)), key);
            QCOMPARE(m.value(QLatin1String(key)).toDouble(), lines[i].value(QLatin1String(key)).toDouble());
        }
        QVERIFY(m.value(QStringLiteral("_rss_bytes")).toLongLong() > 0);
        QVERIFY(!lines[i].contains(QStringLiteral("_rss_bytes"))); // not written to metrics.jsonl
    }
    QCOMPARE(metrics.last().first().toMap().value(QStringLiteral("step")).toInt(), 4);
    QVERIFY(!QFileInfo::exists(QDir(out).filePath(TrainingRunner::lockFileName())));
}

void TestTrainingWorker::stopsWithinOneSecondAndResumes()
{
    // Reference: the same run without interruption.
    const QString full = m_dir.filePath(QStringLiteral("uninterrupted"));
    {
        TrainingRunner runner;
        QSignalSpy finished(&runner, &TrainingRunner::finished);
        TrainingJob job;
        job.config = baseConfig(full, 30);
        QVERIFY(runner.start(job));
        QTRY_VERIFY_WITH_TIMEOUT(!finished.isEmpty(), 120000);
    }
    const QList<QJsonObject> reference = readMetrics(full);
    QCOMPARE(reference.size(), 30);

    const QString out = m_dir.filePath(QStringLiteral("stopped"));
    TrainingRunner runner;
    QSignalSpy metrics(&runner, &TrainingRunner::metrics);
    QSignalSpy finished(&runner, &TrainingRunner::finished);
    QSignalSpy failed(&runner, &TrainingRunner::failed);
    TrainingJob job;
    job.config = baseConfig(out, 30);
    QElapsedTimer t;
    int seen = 0;
    // Stop as soon as the second line arrives (the GUI's reaction time, not a polling interval).
    connect(&runner, &TrainingRunner::metrics, this, [&]() {
        if (++seen == 2) {
            t.start();
            runner.requestStop();
        }
    });
    QVERIFY(runner.start(job));
    QTRY_VERIFY_WITH_TIMEOUT(!finished.isEmpty() || !failed.isEmpty(), 60000);
    const qint64 stopMs = t.elapsed();
    qInfo("stop -> finished: %lld ms", static_cast<long long>(stopMs));
    QVERIFY2(failed.isEmpty(), failed.isEmpty() ? "" : qPrintable(failed.first().first().toString()));
    QVERIFY2(stopMs < 1000, qPrintable(QString::number(stopMs)));
    QCOMPARE(finished.first().at(0).toString(), QStringLiteral("stopped"));
    const QString checkpoint = finished.first().at(1).toString();
    QVERIFY(QFileInfo::exists(checkpoint + QStringLiteral("/trainer_state.json")));
    QCOMPARE(QString::fromStdString(dpo::latestCheckpoint(out.toStdString())), checkpoint);
    const int stoppedAt = readMetrics(out).last().value(QStringLiteral("step")).toInt();
    QVERIFY2(stoppedAt < 30, qPrintable(QString::number(stoppedAt)));

    // Resume: reaches the end, and replays exactly the uninterrupted trajectory.
    finished.clear();
    metrics.clear();
    job.config.resume = true;
    QVERIFY(runner.start(job));
    QTRY_VERIFY_WITH_TIMEOUT(!finished.isEmpty() || !failed.isEmpty(), 120000);
    QVERIFY2(failed.isEmpty(), failed.isEmpty() ? "" : qPrintable(failed.first().first().toString()));
    QCOMPARE(finished.first().at(0).toString(), QStringLiteral("completed"));
    QCOMPARE(metrics.first().first().toMap().value(QStringLiteral("step")).toInt(), stoppedAt + 1);
    const QList<QJsonObject> resumed = readMetrics(out);
    QCOMPARE(resumed.size(), 30);
    for (const char *key : {"loss", "rewards/accuracies", "rewards/margins", "logps/chosen", "grad_norm"})
        QVERIFY2(std::abs(resumed.last().value(QLatin1String(key)).toDouble() -
                          reference.last().value(QLatin1String(key)).toDouble()) < 1e-5,
                 key);
}

void TestTrainingWorker::failureComesBackAsMessage()
{
    TrainingRunner runner;
    QSignalSpy finished(&runner, &TrainingRunner::finished);
    QSignalSpy failed(&runner, &TrainingRunner::failed);
    TrainingJob job;
    job.config = baseConfig(m_dir.filePath(QStringLiteral("failing")), 2);
    job.config.dataset = m_dir.filePath(QStringLiteral("no-such-file.jsonl")).toStdString();
    QVERIFY(runner.start(job));
    QTRY_VERIFY_WITH_TIMEOUT(!failed.isEmpty(), 60000);
    QVERIFY(finished.isEmpty());
    QVERIFY2(failed.first().first().toString().contains(QStringLiteral("no-such-file.jsonl")),
             qPrintable(failed.first().first().toString()));
    QVERIFY(!runner.isRunning());
}

void TestTrainingWorker::recordsRunAndPreparesProjectData()
{
    // A project whose pairs were imported as already judged: they export as TRL rows.
    const QString project = m_dir.filePath(QStringLiteral("p.dpo"));
    {
        auto store = dpo::ProjectStore::open(project);
        QFile f(fixture(QStringLiteral("llama-gqa/pairs.jsonl")));
        QVERIFY(f.open(QIODevice::ReadOnly));
        while (!f.atEnd()) {
            const QJsonObject o = QJsonDocument::fromJson(f.readLine()).object();
            if (o.isEmpty())
                continue;
            const qint64 p = store->addPrompt(o.value(QStringLiteral("prompt")).toString());
            const qint64 a = store->addCompletion(p, o.value(QStringLiteral("chosen")).toString());
            const qint64 b = store->addCompletion(p, o.value(QStringLiteral("rejected")).toString());
            store->addPair(p, a, b, QStringLiteral("import-judged"), dpo::JudgmentKind::Label, QStringLiteral("a"));
        }
    }
    const QString out = m_dir.filePath(QStringLiteral("from-project"));
    TrainingRunner runner;
    QSignalSpy recorded(&runner, &TrainingRunner::runRecorded);
    QSignalSpy finished(&runner, &TrainingRunner::finished);
    QSignalSpy failed(&runner, &TrainingRunner::failed);
    TrainingJob job;
    job.config = baseConfig(out, 3);
    job.config.dataset = QDir(out).filePath(QStringLiteral("data/train.jsonl")).toStdString();
    job.config.evalDataset = QDir(out).filePath(QStringLiteral("data/eval.jsonl")).toStdString();
    job.source = TrainingJob::Source::Project;
    job.evalRatio = 0.25;
    job.projectLocation = project;
    job.runName = QStringLiteral("from-project");
    QVERIFY(runner.start(job));
    QTRY_VERIFY_WITH_TIMEOUT(!finished.isEmpty() || !failed.isEmpty(), 60000);
    QVERIFY2(failed.isEmpty(), failed.isEmpty() ? "" : qPrintable(failed.first().first().toString()));
    QCOMPARE(recorded.size(), 1);
    auto countLines = [](const QString &path) {
        QFile f(path);
        if (!f.open(QIODevice::ReadOnly))
            return -1;
        return int(f.readAll().count('\n'));
    };
    QCOMPARE(countLines(QDir(out).filePath(QStringLiteral("data/pairs.jsonl"))), 8);
    QCOMPARE(countLines(QDir(out).filePath(QStringLiteral("data/train.jsonl"))), 6);
    QCOMPARE(countLines(QDir(out).filePath(QStringLiteral("data/eval.jsonl"))), 2);
    // The eval set was evaluated at the end.
    bool sawEval = false;
    for (const QJsonObject &o : readMetrics(out))
        sawEval = sawEval || o.contains(QStringLiteral("eval_loss"));
    QVERIFY(sawEval);

    auto store = dpo::ProjectStore::open(project);
    const auto runs = store->runs();
    QCOMPARE(runs.size(), 1);
    QCOMPARE(runs[0].id, recorded.first().first().toLongLong());
    QCOMPARE(runs[0].name, QStringLiteral("from-project"));
    QCOMPARE(runs[0].status, QStringLiteral("finished"));
    QCOMPARE(runs[0].outputDir, out);
    QVERIFY(runs[0].endedAt.isValid());
    const QJsonObject last = QJsonDocument::fromJson(runs[0].lastMetricsJson.toUtf8()).object();
    QCOMPARE(last.value(QStringLiteral("step")).toInt(), 3);
    QVERIFY(last.contains(QStringLiteral("loss")));
    const QJsonObject cfg = QJsonDocument::fromJson(runs[0].configJson.toUtf8()).object();
    QCOMPARE(cfg.value(QStringLiteral("dataset")).toString(), QDir(out).filePath(QStringLiteral("data/train.jsonl")));
    // The stored config is the TrainConfig JSON: it round-trips.
    dpo::TrainConfig back = dpo::TrainConfig::fromJson(nlohmann::json::parse(runs[0].configJson.toStdString()), "run");
    QCOMPARE(back.maxSteps, int64_t(3));
}

void TestTrainingWorker::lockFileTellsLiveFromDead()
{
    QTemporaryDir dir;
    QVERIFY(!TrainingRunner::isRunLocked(dir.path())); // no lock
    auto write = [&](qint64 pid, const QString &host) {
        QFile f(QDir(dir.path()).filePath(TrainingRunner::lockFileName()));
        QVERIFY(f.open(QIODevice::WriteOnly | QIODevice::Truncate));
        f.write(QStringLiteral("%1\n%2\n").arg(pid).arg(host).toUtf8());
    };
    write(QCoreApplication::applicationPid(), QSysInfo::machineHostName());
    QVERIFY(TrainingRunner::isRunLocked(dir.path())); // this very process
    write(2147483000, QSysInfo::machineHostName());   // no such process: died with the app
    QVERIFY(!TrainingRunner::isRunLocked(dir.path()));
    write(12345, QStringLiteral("another-host-%1").arg(QCoreApplication::applicationPid()));
    QVERIFY(TrainingRunner::isRunLocked(dir.path())); // cannot tell: not called interrupted
}

// "Devices: N" (issue 16): the job runs as N dpo-cli ranks; rank 0's metrics.jsonl feeds the same
// signals; Stop stops every rank with one checkpoint; resume continues; a failing rank's error comes back.
// On the CPU here (Gloo on loopback); on a GPU machine each rank takes its own device.
void TestTrainingWorker::severalProcessesFollowRankZero()
{
    const QString out = m_dir.filePath(QStringLiteral("ranks"));
    TrainingRunner runner;
    QSignalSpy metrics(&runner, &TrainingRunner::metrics);
    QSignalSpy finished(&runner, &TrainingRunner::finished);
    QSignalSpy failed(&runner, &TrainingRunner::failed);
    QSignalSpy logs(&runner, &TrainingRunner::logLine);
    TrainingJob job;
    job.config = baseConfig(out, 40);
    job.processes = 2;
    int seen = 0;
    connect(&runner, &TrainingRunner::metrics, this, [&]() {
        if (++seen == 3)
            runner.requestStop();
    });
    QVERIFY(runner.start(job));
    QTRY_VERIFY_WITH_TIMEOUT(!finished.isEmpty() || !failed.isEmpty(), 120000);
    QVERIFY2(failed.isEmpty(), failed.isEmpty() ? "" : qPrintable(failed.first().first().toString()));
    QCOMPARE(finished.first().at(0).toString(), QStringLiteral("stopped"));
    const int stoppedAt = readMetrics(out).last().value(QStringLiteral("step")).toInt();
    QVERIFY2(stoppedAt >= 3 && stoppedAt < 40, qPrintable(QString::number(stoppedAt)));
    QCOMPARE(finished.first().at(1).toString(), QDir(out).filePath(QStringLiteral("checkpoint-%1").arg(stoppedAt)));
    QVERIFY(QFileInfo::exists(finished.first().at(1).toString() + QStringLiteral("/trainer_state.json")));
    bool sawRanks = false;
    for (const auto &l : logs)
        sawRanks = sawRanks || l.first().toString().contains(QStringLiteral("distributed: 2 ranks"));
    QVERIFY(sawRanks);

    // Resume (as the Runs tab does): the signals continue from the next step to the end.
    metrics.clear();
    finished.clear();
    job.config.resume = true;
    QVERIFY(runner.start(job));
    QTRY_VERIFY_WITH_TIMEOUT(!finished.isEmpty() || !failed.isEmpty(), 240000);
    QVERIFY2(failed.isEmpty(), failed.isEmpty() ? "" : qPrintable(failed.first().first().toString()));
    QCOMPARE(finished.first().at(0).toString(), QStringLiteral("completed"));
    QCOMPARE(metrics.first().first().toMap().value(QStringLiteral("step")).toInt(), stoppedAt + 1);
    QCOMPARE(metrics.last().first().toMap().value(QStringLiteral("step")).toInt(), 40);
    const QList<QJsonObject> lines = readMetrics(out);
    QCOMPARE(lines.size(), 40);
    QCOMPARE(metrics.last().first().toMap().value(QStringLiteral("loss")).toDouble(),
             lines.last().value(QStringLiteral("loss")).toDouble());
    QVERIFY(QFileInfo::exists(finished.first().at(2).toString() + QStringLiteral("/model.safetensors")));

    // A rank that fails: its message, not only an exit code.
    failed.clear();
    job.config = baseConfig(m_dir.filePath(QStringLiteral("ranks-failing")), 2);
    job.config.dataset = m_dir.filePath(QStringLiteral("no-such-file.jsonl")).toStdString();
    QVERIFY(runner.start(job));
    QTRY_VERIFY_WITH_TIMEOUT(!failed.isEmpty(), 120000);
    QVERIFY2(failed.first().first().toString().contains(QStringLiteral("no-such-file.jsonl")),
             qPrintable(failed.first().first().toString()));
}

DPO_TEST_MAIN(TestTrainingWorker)

} // namespace test_training_worker

#include "test_training_worker.moc"
