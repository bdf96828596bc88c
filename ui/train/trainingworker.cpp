#include "engine/training/dpo_trainer.h"
#include "engine/error.h"
#include "engine/runtime.h"

#include "ui/train/trainingworker.h"

#include "ui/train/traindata.h"

#include "project/project_store.h"
#include "project/run_record.h"
#include "project/training_export.h"

#include <QCoreApplication>
#include <QDir>
#include <QElapsedTimer>
#include <QFile>
#include <QFileInfo>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QThread>

#include <memory>

namespace {

QVariant toVariant(const nlohmann::json &v)
{
    if (v.is_number_integer())
        return QVariant::fromValue<qint64>(v.get<int64_t>());
    if (v.is_number())
        return v.get<double>();
    if (v.is_boolean())
        return v.get<bool>();
    if (v.is_string())
        return QString::fromStdString(v.get<std::string>());
    return QString::fromStdString(v.dump());
}

QString jsonText(const QJsonObject &o)
{
    return QString::fromUtf8(QJsonDocument(o).toJson(QJsonDocument::Compact));
}

} // namespace

dpo::TrainingDataPlan TrainingJob::dataPlan() const
{
    dpo::TrainingDataPlan plan;
    plan.source = source == Source::Project ? dpo::TrainingDataPlan::Source::Project : dpo::TrainingDataPlan::Source::File;
    plan.sourcePath = sourcePath;
    plan.minVotes = minVotes;
    plan.minAgreement = minAgreement;
    plan.evalRatio = evalRatio;
    plan.seed = config.seed;
    plan.trainPath = QString::fromStdString(config.dataset);
    plan.evalPath = QString::fromStdString(config.evalDataset);
    return plan;
}

TrainingWorker::TrainingWorker(std::atomic<bool> *stop)
    : m_stop(stop)
{
}

void TrainingWorker::run(const TrainingJob &jobIn)
{
    TrainingJob job = jobIn;
    const QString out = QString::fromStdString(job.config.outputDir);
    std::unique_ptr<dpo::ProjectStore> store;
    if (!job.projectLocation.isEmpty()) {
        QString error;
        try {
            store = dpo::ProjectStore::open(job.projectLocation, &error);
        } catch (const std::exception &e) {
            error = QString::fromUtf8(e.what());
        }
        if (!store)
            emit logLine(tr("note: the run is not recorded in the project: %1").arg(error));
    }
    {
        dpo::RunRecord record(store.get(), [this](const QString &note) { emit logLine(note); });
        try {
            if (!QDir().mkpath(out))
                throw dpo::Error("option 'output_dir': cannot create " + job.config.outputDir);
            if (store) {
                const QJsonObject cfg =
                    QJsonDocument::fromJson(QByteArray::fromStdString(job.config.toJson().dump())).object();
                emit runRecorded(record.begin(job.runId, job.runName, jsonText(cfg), out));
            }

            // Data: the files the config names are written here, never on the GUI thread.
            if (!job.config.resume && job.source != TrainingJob::Source::None)
                dpo::prepareTrainingData(store.get(), job.dataPlan(), m_stop,
                                         [this](const QString &line) { emit logLine(line); });

            record.lock(out);
            emit started(out);

            bool onCuda = false;
            try {
                onCuda = dpo::parseDevice(job.config.device).is_cuda();
            } catch (const std::exception &) {
                // the trainer reports a bad device name itself
            }

            QElapsedTimer sinceRecord;
            sinceRecord.start();
            // A metrics line of the trainer (or of rank 0's metrics.jsonl) to the record and the charts.
            auto onMetrics = [&](QVariantMap map, bool inProcess) {
                record.addMetrics(QJsonObject::fromVariantMap(map));
                if (inProcess) // the ranks' memory is theirs, not this process's
                    map.insert(QStringLiteral("_rss_bytes"), processRssBytes());
                int64_t used = 0, total = 0;
                if (onCuda && dpo::cudaMemoryInUse(&used, &total)) {
                    map.insert(QStringLiteral("_gpu_used_bytes"), qint64(used));
                    map.insert(QStringLiteral("_gpu_total_bytes"), qint64(total));
                }
                emit metrics(map);
                if (sinceRecord.elapsed() > 3000) {
                    record.update(QStringLiteral("running"));
                    sinceRecord.restart();
                }
            };
            QString status, lastCheckpoint, finalModelDir;
            if (job.processes > 1) {
                const QJsonObject r = processRun(job, [&](const QVariantMap &m) { onMetrics(m, false); });
                status = r.value(QStringLiteral("status")).toString();
                lastCheckpoint = r.value(QStringLiteral("last_checkpoint")).toString();
                finalModelDir = r.value(QStringLiteral("final_model")).toString();
            } else {
                dpo::DpoTrainer trainer(job.config, job.sft ? dpo::TrainingMode::Sft : dpo::TrainingMode::Dpo);
                dpo::TrainerCallbacks cb;
                cb.onLog = [this](const std::string &message) { emit logLine(QString::fromStdString(message)); };
                cb.onMetrics = [&](const nlohmann::json &m) {
                    QVariantMap map;
                    for (auto it = m.begin(); it != m.end(); ++it)
                        map.insert(QString::fromStdString(it.key()), toVariant(it.value()));
                    onMetrics(map, true);
                };
                trainer.setCallbacks(cb);
                const dpo::TrainResult r = trainer.train(m_stop);
                status = QString::fromStdString(r.status);
                lastCheckpoint = QString::fromStdString(r.lastCheckpoint);
                finalModelDir = QString::fromStdString(r.finalModelDir);
            }
            record.finish(status == QLatin1String("completed") ? QStringLiteral("finished") : QStringLiteral("stopped"));
            record.release();
            emit finished(status, lastCheckpoint, finalModelDir);
        } catch (const std::exception &e) {
            const QString message = QString::fromUtf8(e.what());
            record.finish(QStringLiteral("failed"));
            record.release();
            emit failed(message);
        }
    }
    store.reset(); // its connection belongs to this thread: closed here
}

QJsonObject TrainingWorker::processRun(const TrainingJob &job, const std::function<void(const QVariantMap &)> &onMetrics)
{
    const QString out = QString::fromStdString(job.config.outputDir);
    // The effective options as a config file (what "Copy as dpo-cli" spells as flags).
    const QString configPath = QDir(out).filePath(QStringLiteral(".dpo-studio-ranks.json"));
    {
        QFile f(configPath);
        dpo::TrainConfig cfg = job.config;
        if (cfg.device.rfind("cuda:", 0) == 0)
            cfg.device = "cuda"; // one GPU per rank (cuda:LOCAL_RANK), not every rank on the chosen one
        const std::string text = cfg.toJson().dump(1);
        if (!f.open(QIODevice::WriteOnly | QIODevice::Truncate) || f.write(text.data(), qint64(text.size())) != qint64(text.size()))
            throw dpo::Error(configPath.toStdString() + ": cannot write the run's options");
    }
    const QString cli = QDir(QCoreApplication::applicationDirPath()).filePath(QStringLiteral("dpo-cli"));
    if (!QFileInfo(cli).isExecutable())
        throw dpo::Error("several devices: " + cli.toStdString() + " (dpo-cli, next to this program) is missing");

    // Rank 0 truncates metrics.jsonl to the resumed step, then appends: follow from the current end,
    // and from the new end when the file shrinks.
    const QString metricsPath = QDir(out).filePath(QStringLiteral("metrics.jsonl"));
    qint64 offset = QFileInfo(metricsPath).size();
    QByteArray pending;
    auto followMetrics = [&]() {
        QFile f(metricsPath);
        if (!f.open(QIODevice::ReadOnly))
            return;
        if (f.size() < offset) {
            offset = 0;
            pending.clear();
        }
        f.seek(offset);
        pending += f.readAll();
        offset = f.pos();
        for (qsizetype nl; (nl = pending.indexOf('\n')) >= 0;) {
            const QJsonObject m = QJsonDocument::fromJson(pending.left(nl)).object();
            pending.remove(0, nl + 1);
            if (!m.isEmpty())
                onMetrics(m.toVariantMap());
        }
    };

    QProcess ranks;
    ranks.setProgram(cli);
    ranks.setArguments({ job.sft ? QStringLiteral("sft") : QStringLiteral("train"), QStringLiteral("--config"), configPath,
                         QStringLiteral("--nproc"), QString::number(job.processes) });
    ranks.start();
    if (!ranks.waitForStarted(30000))
        throw dpo::Error("cannot start " + cli.toStdString() + ": " + ranks.errorString().toStdString());
    emit logLine(tr("training as %1 processes: %2 %3").arg(job.processes).arg(cli, ranks.arguments().join(QLatin1Char(' '))));
    QByteArray errText;
    QString firstError; // "dpo-cli: error: ..." of the rank that failed first, or of the launcher
    bool stopSent = false;
    auto drainLog = [&]() {
        errText += ranks.readAllStandardError();
        for (qsizetype nl; (nl = errText.indexOf('\n')) >= 0;) {
            const QString line = QString::fromUtf8(errText.left(nl)).trimmed();
            errText.remove(0, nl + 1);
            if (line.startsWith(QLatin1String("dpo-cli: error: ")) && firstError.isEmpty())
                firstError = line.mid(16);
            if (!line.isEmpty())
                emit logLine(line);
        }
    };
    while (!ranks.waitForFinished(200)) {
        if (m_stop->load() && !stopSent) {
            ranks.terminate(); // SIGTERM: the launcher passes it on; the ranks stop together and checkpoint
            stopSent = true;
        }
        drainLog();
        followMetrics();
    }
    drainLog();
    followMetrics();
    if (ranks.exitStatus() != QProcess::NormalExit || ranks.exitCode() != 0) {
        if (!errText.trimmed().isEmpty())
            emit logLine(QString::fromUtf8(errText).trimmed());
        throw dpo::Error(firstError.isEmpty()
                ? "the training processes failed (exit code " + std::to_string(ranks.exitCode()) + ")"
                : firstError.toStdString());
    }
    const QJsonObject summary = QJsonDocument::fromJson(ranks.readAllStandardOutput().trimmed()).object();
    if (summary.isEmpty())
        throw dpo::Error("the training processes ended without a summary");
    QFile::remove(configPath);
    return summary;
}

// ---------------------------------------------------------------- TrainingRunner

TrainingRunner::TrainingRunner(QObject *parent)
    : JobRunner(QStringLiteral("training"), parent)
    , m_worker(new TrainingWorker(cancelFlag()))
{
    // Cross-thread connections: queued, delivered in this (GUI) thread.
    connect(m_worker, &TrainingWorker::runRecorded, this, &TrainingRunner::runRecorded);
    connect(m_worker, &TrainingWorker::started, this, &TrainingRunner::started);
    connect(m_worker, &TrainingWorker::metrics, this, &TrainingRunner::metrics);
    connect(m_worker, &TrainingWorker::logLine, this, &TrainingRunner::logLine);
    connect(m_worker, &TrainingWorker::finished, this,
            [this](const QString &status, const QString &checkpoint, const QString &finalDir) {
                end();
                emit finished(status, checkpoint, finalDir);
            });
    connect(m_worker, &TrainingWorker::failed, this, [this](const QString &message) {
        end();
        emit failed(message);
    });
    adoptWorker(m_worker);
}

bool TrainingRunner::start(const TrainingJob &job)
{
    if (isRunning())
        return false;
    m_job = job; // before runningChanged(true): its receivers read currentJob()
    begin();
    post([worker = m_worker, job]() { worker->run(job); });
    return true;
}
