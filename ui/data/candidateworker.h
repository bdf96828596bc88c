// CandidateWorker / CandidateRunner: candidate generation for prompts without (enough) completions, off
// the GUI thread, through JobRunner (a worker moved to its own QThread, jobs posted as queued calls,
// progress and the result back as queued signals).
//
// The worker opens its own ProjectStore on the project's location in its thread, loads the model and
// tokenizer once (lazily: a project with nothing to generate does not load the model) and hands
// dpo::generateCandidates (project/candidates.h) a sampler wrapping dpo::generate. That function does
// the bookkeeping: seeds, retries of repeated texts, provenance, one transaction per prompt, pairs.
// Cancel: cancel() sets an atomic flag polled after every generated token, so a job stops within a
// token's time; the prompt being sampled is dropped whole, finished prompts stay.
// Not here: widgets (GenerateCandidatesDialog), the store's SQL.
#pragma once

#include "project/candidates.h"
#include "ui/shell/jobrunner.h"

#include <QMetaType>
#include <QObject>
#include <QString>

#include <atomic>

struct CandidateJob {
    QString projectLocation;
    QString modelDir; // Hugging Face layout (config.json, weights, tokenizer)
    dpo::CandidateOptions options;
    QString device = QStringLiteral("auto"); // "cpu", "cuda", "cuda:N", "auto"
};

Q_DECLARE_METATYPE(dpo::CandidateSummary)

class CandidateWorker : public QObject {
    Q_OBJECT
public:
    explicit CandidateWorker(std::atomic<bool> *cancel);

    // Runs in the worker's thread (posted by CandidateRunner).
    void run(const CandidateJob &job);

signals:
    // done/total: candidates sampled / expected; text: what happens now ("Loading model…", "prompt #12").
    void progress(qint64 done, qint64 total, const QString &text);
    void finished(const dpo::CandidateSummary &summary);
    void failed(const QString &message);

private:
    std::atomic<bool> *m_cancel;
};

class CandidateRunner : public JobRunner {
    Q_OBJECT
public:
    explicit CandidateRunner(QObject *parent = nullptr);

    // Returns false (and does nothing) while a job runs.
    bool start(const CandidateJob &job);

signals:
    void progress(qint64 done, qint64 total, const QString &text);
    void finished(const dpo::CandidateSummary &summary);
    void failed(const QString &message);

private:
    CandidateWorker *m_worker;
};
