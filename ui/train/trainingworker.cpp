#include "engine/training/dpo_trainer.h"
#include "engine/error.h"
#include "engine/runtime.h"

#include "ui/train/trainingworker.h"

#include "ui/train/traindata.h"

#include "project/project_store.h"

#include <QCoreApplication>
#include <QDir>
#include <QElapsedTimer>
#include <QFile>
#include <QFileInfo>
#include <QJsonDocument>
#include <QJsonObject>
#include <QSysInfo>

#include <cerrno>
#include <csignal>
#include <memory>

#include <sys/types.h>
#include <unistd.h>

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

TrainingWorker::TrainingWorker(std::atomic<bool> *stop)
    : m_stop(stop)
{
}

void TrainingWorker::run(const TrainingJob &jobIn)
{
    TrainingJob job = jobIn;
    const QString out = QString::fromStdString(job.config.outputDir);
    std::unique_ptr<dpo::ProjectStore> store;
    qint64 runId = job.runId;
    QJsonObject lastMetrics;
    QString lockPath;

    auto recordMetrics = [&](const QString &status) {
        if (!store || runId <= 0)
            return;
        try {
            store->updateRun(runId, status, jsonText(lastMetrics));
        } catch (const std::exception &e) {
            emit logLine(tr("note: the run record was not updated: %1").arg(QString::fromUtf8(e.what())));
        }
    };

    try {
        if (!job.projectLocation.isEmpty()) {
            QString error;
            store = dpo::ProjectStore::open(job.projectLocation, &error);
            if (!store)
                emit logLine(tr("note: the run is not recorded in the project: %1").arg(error));
        }
        if (!QDir().mkpath(out))
            throw dpo::Error("option 'output_dir': cannot create " + job.config.outputDir);
        if (store) {
            if (runId <= 0) {
                const QJsonObject cfg =
                    QJsonDocument::fromJson(QByteArray::fromStdString(job.config.toJson().dump())).object();
                runId = store->createRun(job.runName, jsonText(cfg), out);
            }
            store->updateRun(runId, QStringLiteral("running"));
            emit runRecorded(runId);
        }

        // Data: the files the config names are written here, never on the GUI thread.
        if (!job.config.resume && job.source != TrainingJob::Source::None) {
            const QString dataset = QString::fromStdString(job.config.dataset);
            const QString evalDataset = QString::fromStdString(job.config.evalDataset);
            QString source = job.sourcePath;
            if (job.source == TrainingJob::Source::Project) {
                if (!store)
                    throw dpo::Error("the project's judged pairs cannot be exported: no project is open");
                source = job.evalRatio > 0 ? QDir(out).filePath(QStringLiteral("data/pairs.jsonl")) : dataset;
                QDir().mkpath(QFileInfo(source).absolutePath());
                emit logLine(tr("exporting the project's judged pairs to %1").arg(source));
                dpo::ExportOptions opt;
                opt.format = dpo::ExportFormat::Trl;
                opt.minVotes = job.minVotes;
                opt.minAgreement = job.minAgreement;
                opt.cancel = m_stop;
                const dpo::ExportResult r = dpo::exportFile(*store, source, opt);
                if (r.cancelled)
                    throw dpo::Error("stopped while exporting the project's pairs");
                if (r.rows == 0)
                    throw dpo::Error("option 'dataset': the project has no judged pairs that pass the export "
                                     "filters (min votes " + std::to_string(job.minVotes) + ", min agreement " +
                                     std::to_string(job.minAgreement) + ")");
                emit logLine(tr("%n judged pairs exported", nullptr, int(r.rows)));
            }
            if (job.evalRatio > 0) {
                qint64 nTrain = 0, nEval = 0;
                splitDataset(source, job.evalRatio, job.config.seed, dataset, evalDataset, &nTrain, &nEval);
                emit logLine(tr("eval split %1: %2 training rows, %3 eval rows")
                                 .arg(job.evalRatio)
                                 .arg(nTrain)
                                 .arg(nEval));
            }
        }

        lockPath = QDir(out).filePath(TrainingRunner::lockFileName());
        {
            QFile lock(lockPath);
            if (lock.open(QIODevice::WriteOnly | QIODevice::Truncate))
                lock.write(QStringLiteral("%1\n%2\n")
                               .arg(QCoreApplication::applicationPid())
                               .arg(QSysInfo::machineHostName())
                               .toUtf8());
        }
        emit started(out);

        bool onCuda = false;
        try {
            onCuda = dpo::parseDevice(job.config.device).is_cuda();
        } catch (const std::exception &) {
            // the trainer reports a bad device name itself
        }

        dpo::DpoTrainer trainer(job.config, job.sft ? dpo::TrainingMode::Sft : dpo::TrainingMode::Dpo);
        QElapsedTimer sinceRecord;
        sinceRecord.start();
        dpo::TrainerCallbacks cb;
        cb.onLog = [this](const std::string &message) { emit logLine(QString::fromStdString(message)); };
        cb.onMetrics = [&](const nlohmann::json &m) {
            QVariantMap map;
            for (auto it = m.begin(); it != m.end(); ++it)
                map.insert(QString::fromStdString(it.key()), toVariant(it.value()));
            for (auto it = map.constBegin(); it != map.constEnd(); ++it)
                lastMetrics.insert(it.key(), QJsonValue::fromVariant(it.value()));
            map.insert(QStringLiteral("_rss_bytes"), processRssBytes());
            qint64 used = 0, total = 0;
            if (onCuda && cudaMemoryInUse(&used, &total)) {
                map.insert(QStringLiteral("_gpu_used_bytes"), used);
                map.insert(QStringLiteral("_gpu_total_bytes"), total);
            }
            emit metrics(map);
            if (sinceRecord.elapsed() > 3000) {
                recordMetrics(QStringLiteral("running"));
                sinceRecord.restart();
            }
        };
        trainer.setCallbacks(cb);
        const dpo::TrainResult r = trainer.train(m_stop);
        const QString status = QString::fromStdString(r.status);
        if (store && runId > 0) {
            recordMetrics(status == QLatin1String("completed") ? QStringLiteral("finished") : QStringLiteral("stopped"));
            try {
                store->finishRun(runId, status == QLatin1String("completed") ? QStringLiteral("finished")
                                                                             : QStringLiteral("stopped"));
            } catch (const std::exception &e) {
                emit logLine(tr("note: the run record was not updated: %1").arg(QString::fromUtf8(e.what())));
            }
        }
        if (!lockPath.isEmpty())
            QFile::remove(lockPath);
        emit finished(status, QString::fromStdString(r.lastCheckpoint), QString::fromStdString(r.finalModelDir));
    } catch (const std::exception &e) {
        const QString message = QString::fromUtf8(e.what());
        if (store && runId > 0) {
            recordMetrics(QStringLiteral("failed"));
            try {
                store->finishRun(runId, QStringLiteral("failed"));
            } catch (const std::exception &) {
            }
        }
        if (!lockPath.isEmpty())
            QFile::remove(lockPath);
        emit failed(message);
    }
    store.reset(); // its connection belongs to this thread: closed here
}

// ---------------------------------------------------------------- TrainingRunner

TrainingRunner::TrainingRunner(QObject *parent)
    : QObject(parent)
    , m_thread(new QThread(this))
    , m_worker(new TrainingWorker(&m_stop))
{
    m_thread->setObjectName(QStringLiteral("training"));
    m_worker->moveToThread(m_thread);
    connect(m_thread, &QThread::finished, m_worker, &QObject::deleteLater);
    // Cross-thread connections: queued, delivered in this (GUI) thread.
    connect(m_worker, &TrainingWorker::runRecorded, this, &TrainingRunner::runRecorded);
    connect(m_worker, &TrainingWorker::started, this, &TrainingRunner::started);
    connect(m_worker, &TrainingWorker::metrics, this, &TrainingRunner::metrics);
    connect(m_worker, &TrainingWorker::logLine, this, &TrainingRunner::logLine);
    connect(m_worker, &TrainingWorker::finished, this,
            [this](const QString &status, const QString &checkpoint, const QString &finalDir) {
                m_running = false;
                emit runningChanged(false);
                emit finished(status, checkpoint, finalDir);
            });
    connect(m_worker, &TrainingWorker::failed, this, [this](const QString &message) {
        m_running = false;
        emit runningChanged(false);
        emit failed(message);
    });
    m_thread->start();
}

TrainingRunner::~TrainingRunner()
{
    m_stop.store(true);
    m_thread->quit(); // handled once the job in progress has returned (after its checkpoint)
    m_thread->wait();
}

bool TrainingRunner::start(const TrainingJob &job)
{
    if (m_running)
        return false;
    m_stop.store(false);
    m_running = true;
    m_job = job;
    TrainingWorker *worker = m_worker;
    QMetaObject::invokeMethod(worker, [worker, job]() { worker->run(job); }, Qt::QueuedConnection);
    emit runningChanged(true);
    return true;
}

bool TrainingRunner::isRunLocked(const QString &outputDir)
{
    QFile f(QDir(outputDir).filePath(lockFileName()));
    if (!f.open(QIODevice::ReadOnly))
        return false;
    const QList<QByteArray> lines = f.readAll().split('\n');
    const qint64 pid = lines.value(0).trimmed().toLongLong();
    const QString host = QString::fromUtf8(lines.value(1).trimmed());
    if (pid <= 0)
        return false;
    if (host != QSysInfo::machineHostName())
        return true; // another machine's run: we cannot tell, so do not call it interrupted
    return ::kill(pid_t(pid), 0) == 0 || errno == EPERM;
}
