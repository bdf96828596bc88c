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
#include <QJsonDocument>
#include <QJsonObject>

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

            dpo::DpoTrainer trainer(job.config, job.sft ? dpo::TrainingMode::Sft : dpo::TrainingMode::Dpo);
            QElapsedTimer sinceRecord;
            sinceRecord.start();
            dpo::TrainerCallbacks cb;
            cb.onLog = [this](const std::string &message) { emit logLine(QString::fromStdString(message)); };
            cb.onMetrics = [&](const nlohmann::json &m) {
                QVariantMap map;
                for (auto it = m.begin(); it != m.end(); ++it)
                    map.insert(QString::fromStdString(it.key()), toVariant(it.value()));
                record.addMetrics(QJsonObject::fromVariantMap(map));
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
            trainer.setCallbacks(cb);
            const dpo::TrainResult r = trainer.train(m_stop);
            const QString status = QString::fromStdString(r.status);
            record.finish(status == QLatin1String("completed") ? QStringLiteral("finished") : QStringLiteral("stopped"));
            record.release();
            emit finished(status, QString::fromStdString(r.lastCheckpoint), QString::fromStdString(r.finalModelDir));
        } catch (const std::exception &e) {
            const QString message = QString::fromUtf8(e.what());
            record.finish(QStringLiteral("failed"));
            record.release();
            emit failed(message);
        }
    }
    store.reset(); // its connection belongs to this thread: closed here
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
