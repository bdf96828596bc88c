// TrainingWorker: drives dpo::DpoTrainer off the GUI thread (the gpt4all pattern: a QObject moved to
// its own QThread; work is posted to it as a queued call) and turns the trainer's callbacks into
// signals, which Qt queues to the receivers in the GUI thread. TrainingRunner is the GUI-side owner (a
// JobRunner): it creates the thread and the worker, starts jobs, and forwards the signals.
//
// A job, in the worker thread:
//   1. records the run in the project (its own ProjectStore connection on the project's location, so
//      the GUI's connection is never used from here) with dpo::RunRecord: createRun, or status
//      "running" when resuming;
//   2. prepares the data unless resuming (dpo::prepareTrainingData, shared with dpo-cli train
//      --project): exports the project's judged pairs (TRL format, with the export filters) and/or
//      splits off the eval rows, writing the files the config names (OUTPUT/data/...);
//   3. writes OUTPUT/.dpo-studio.lock (pid + host) so that a run left "running" by a crash can be told
//      apart from one still training (isRunLocked);
//   4. trains (in this thread, or as job.processes dpo-cli ranks: see TrainingJob::processes); every metrics line is emitted with the process RSS ("_rss_bytes") and, on CUDA, the
//      device memory in use ("_gpu_used_bytes", "_gpu_total_bytes") added; the project's run record gets
//      its last metrics every few seconds and at the end.
// Stop: requestStop() sets the runner's cancel flag (an std::atomic<bool>), which the trainer polls between optimizer steps; it then
// saves a checkpoint and returns status "stopped". No blocking call crosses threads.
#pragma once

// No libtorch header here: Qt's `slots` / `signals` macros break torch's headers when those come after
// a Qt header. Sources that need torch include it before any Qt header.
#include "engine/training/train_config.h"

#include "project/run_record.h"
#include "project/training_export.h"
#include "ui/shell/jobrunner.h"

#include <QObject>
#include <QString>
#include <QVariantMap>

#include <QJsonObject>

#include <atomic>
#include <functional>

struct TrainingJob {
    dpo::TrainConfig config; // effective: dataset / eval_dataset name the prepared files when preparing
    bool sft = false; // the SFT recipe (DpoTrainer with TrainingMode::Sft) instead of DPO
    QString runName;

    // Data preparation (skipped when config.resume).
    enum class Source { None, File, Project };
    Source source = Source::None; // None: config.dataset is used as it is
    QString sourcePath;           // File: the JSONL to split
    int minVotes = 1;             // Project: export filters
    double minAgreement = 0.0;
    double evalRatio = 0.0; // > 0: config.dataset / config.evalDataset receive the split

    // Data-parallel ranks on this machine (the Train page's "Devices" when several GPUs are visible):
    // > 1 runs `dpo-cli train --config FILE --nproc N` as a child process (processRun), whose rank 0
    // writes metrics.jsonl, which the job follows for the live charts. 1: the trainer runs in-process.
    int processes = 1;

    // Run bookkeeping: the project (empty = none) and the record to resume (0 = create one).
    QString projectLocation;
    qint64 runId = 0;

    // The preparation above for dpo::prepareTrainingData (source File or Project).
    dpo::TrainingDataPlan dataPlan() const;
};

class TrainingWorker : public QObject {
    Q_OBJECT
public:
    explicit TrainingWorker(std::atomic<bool> *stop);

    // Runs in the worker's thread (posted by TrainingRunner::start).
    void run(const TrainingJob &job);

signals:
    void runRecorded(qint64 runId);
    void started(const QString &outputDir);
    void metrics(const QVariantMap &metrics);
    void logLine(const QString &line);
    // status: "completed" or "stopped"; checkpoint: the last complete checkpoint directory.
    void finished(const QString &status, const QString &checkpoint, const QString &finalModelDir);
    void failed(const QString &message);

private:
    // processes > 1: trains through dpo-cli ranks; returns the launcher's summary (status,
    // last_checkpoint, final_model), throws dpo::Error with its last error line when it fails.
    QJsonObject processRun(const TrainingJob &job, const std::function<void(const QVariantMap &)> &onMetrics);

    std::atomic<bool> *m_stop;
};

class TrainingRunner : public JobRunner {
    Q_OBJECT
public:
    explicit TrainingRunner(QObject *parent = nullptr);

    // Returns false (and does nothing) while a job runs.
    bool start(const TrainingJob &job);
    // The trainer checkpoints, then the job finishes with status "stopped".
    void requestStop() { cancel(); }
    bool stopRequested() const { return cancelRequested(); }
    const TrainingJob &currentJob() const { return m_job; }

    // True when OUTPUT/.dpo-studio.lock names a live process on this host (a run still training,
    // possibly in another window); false for a run that died with the app. See dpo::RunRecord.
    static bool isRunLocked(const QString &outputDir) { return dpo::RunRecord::isLocked(outputDir); }
    static QString lockFileName() { return dpo::RunRecord::lockFileName(); }

signals:
    void runRecorded(qint64 runId);
    void started(const QString &outputDir);
    void metrics(const QVariantMap &metrics);
    void logLine(const QString &line);
    void finished(const QString &status, const QString &checkpoint, const QString &finalModelDir);
    void failed(const QString &message);

private:
    TrainingWorker *m_worker;
    TrainingJob m_job;
};
