// The data files of a training run, prepared from a project or a JSONL file: the project's judged pairs
// exported in TRL format (with the export filters) and/or a held-out eval split drawn from the seed.
// Shared by the GUI's TrainingWorker and `dpo-cli train --project`, so that both train on the same rows.
// Qt Core only, callable from any thread (the store must belong to the calling thread). Errors throw
// dpo::Error naming the option at fault.
// Not here: training itself (core/engine/training), the run's record in the project (RunRecord).
#pragma once

#include "project/project_store.h"

#include <QString>

#include <atomic>
#include <functional>

namespace dpo {

struct TrainingDataPlan {
    enum class Source { File, Project };
    Source source = Source::File;
    QString sourcePath;        // File: the JSONL to split
    int minVotes = 1;          // Project: export filters
    double minAgreement = 0.0;
    double evalRatio = 0.0;    // > 0: trainPath / evalPath receive a split drawn from seed
    quint64 seed = 42;
    QString trainPath;         // the training rows (a project export without a split goes here directly)
    QString evalPath;          // the eval rows (evalRatio > 0)
};

struct TrainingDataResult {
    qint64 exportedPairs = 0; // Project: judged pairs that passed the filters
    qint64 trainRows = 0;     // with a split
    qint64 evalRows = 0;
};

// Writes the plan's files. A project export with a split goes first to pairs.jsonl next to trainPath.
// store: needed for Source::Project; cancel: polled by the export; log: one line per step (may be empty).
TrainingDataResult prepareTrainingData(ProjectStore *store, const TrainingDataPlan &plan,
                                       const std::atomic<bool> *cancel = nullptr,
                                       const std::function<void(const QString &)> &log = {});

// Rows an eval split of `rows` rows holds: at least one on each side when ratio > 0 and rows >= 2.
qint64 evalSplitSize(qint64 rows, double ratio);

// Splits the non-blank lines of `source` into trainOut / evalOut (order kept inside each). The same seed
// gives the same split.
void splitDataset(const QString &source, double evalRatio, quint64 seed, const QString &trainOut,
                  const QString &evalOut, qint64 *trainRows = nullptr, qint64 *evalRows = nullptr);

} // namespace dpo
