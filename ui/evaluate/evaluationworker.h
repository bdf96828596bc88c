// EvaluationWorker / EvaluationRunner: the Evaluate page's background work, off the GUI thread (a QObject
// moved to its own QThread by JobRunner, jobs posted as queued calls, results back as queued signals).
//
// Two jobs:
//   generation  for every model and prompt, the completion under the shared sampling settings and the
//               prompt's seed (seed + prompt id). Completions already in the project with the same
//               provenance (model directory, sampling JSON, seed) are reused: a model whose outputs are
//               all cached is not even loaded. New ones are stored one by one (its own ProjectStore
//               connection on the project's location), so a cancel keeps what was finished.
//   scoring     without a person: for each checkpoint of a run, on the run's held-out preference pairs,
//               the implicit-reward accuracy (share of pairs where β(πc − rc) > β(πr − rr), TRL's
//               rewards/accuracies) and the mean log-prob shift from the reference model (policy minus
//               reference summed log-prob) of the chosen and of the rejected completions.
// Cancel: cancel() sets an atomic flag polled after every generated token and between batches, so a job
// stops within a token's or a batch's time (well under a second on the models this runs on a CPU).
// Not here: widgets, statistics of judgments (evaluationresults.h), the blind session (project/evaluation.h).
#pragma once

#include "project/evaluation.h"
#include "ui/shell/jobrunner.h"

#include <QMetaType>
#include <QObject>
#include <QString>
#include <QStringList>
#include <QVector>

#include <atomic>

struct GenerationJob {
    QString projectLocation;
    QVector<dpo::EvalModel> models;
    // The prompt set, in this order: `prompts`, then the prompts of `promptsFile` (JSONL of {"prompt"},
    // see dpo::readPromptsJsonl), then the first `projectPrompts` prompts of the project. Texts are added
    // to the project (an existing prompt with the same text is reused); duplicates are dropped.
    QStringList prompts;
    QString promptsFile;
    int projectPrompts = 0;
    dpo::SamplingSettings sampling;
    QString device = QStringLiteral("auto"); // "cpu", "cuda", "auto"
};

struct GenerationSummary {
    QVector<qint64> promptIds; // the prompts of the job, in order
    int generated = 0; // completions generated now
    int cached = 0; // completions found in the project
    bool cancelled = false;
    double seconds = 0;
};

struct ScoringCheckpoint {
    QString name; // "base", "checkpoint-40", "final"
    QString path;
    qint64 step = 0;
};

struct ScoringJob {
    QString referenceModel; // the run's reference model directory
    QString dataset; // held-out preference pairs (TRL JSONL)
    QVector<ScoringCheckpoint> checkpoints;
    double beta = 0.1;
    qint64 maxLength = 1024;
    int maxPairs = 256; // the first N held-out pairs (scoring is a forward pass per pair and model)
    int batchSize = 8;
    QString device = QStringLiteral("auto");
};

struct CheckpointScore {
    QString name;
    qint64 step = 0;
    int pairs = 0;
    double accuracy = 0; // implicit-reward accuracy
    double meanMargin = 0; // mean β((πc − rc) − (πr − rr))
    double shiftChosen = 0; // mean (πc − rc), summed log-probs
    double shiftRejected = 0; // mean (πr − rr)
};

Q_DECLARE_METATYPE(GenerationSummary)
Q_DECLARE_METATYPE(CheckpointScore)

class EvaluationWorker : public QObject {
    Q_OBJECT
public:
    explicit EvaluationWorker(std::atomic<bool> *cancel);

    // Run in the worker's thread (posted by EvaluationRunner).
    void runGeneration(const GenerationJob &job);
    void runScoring(const ScoringJob &job);

signals:
    void progress(qint64 done, qint64 total, const QString &text);
    void generationFinished(const GenerationSummary &summary);
    void checkpointScored(const CheckpointScore &score);
    void scoringFinished(bool cancelled);
    void failed(const QString &message);

private:
    std::atomic<bool> *m_cancel;
};

class EvaluationRunner : public JobRunner {
    Q_OBJECT
public:
    explicit EvaluationRunner(QObject *parent = nullptr);

    // Return false (and do nothing) while a job runs.
    bool startGeneration(const GenerationJob &job);
    bool startScoring(const ScoringJob &job);

signals:
    void progress(qint64 done, qint64 total, const QString &text);
    void generationFinished(const GenerationSummary &summary);
    void checkpointScored(const CheckpointScore &score);
    void scoringFinished(bool cancelled);
    void failed(const QString &message);

private:
    EvaluationWorker *m_worker;
};
