// RunRecord: a training run's traces while it trains, kept the same way by the GUI's TrainingWorker and by
// `dpo-cli train --project`: its row in the project's runs table (created, or taken over on resume; set
// "running"; last metrics every few seconds; "finished", "stopped" or "failed" at the end) and the lock
// file in its output directory (pid + host), which tells a run still training from one a crash left
// "running" (isLocked). Without a store only the lock is kept. Updates after begin() never throw: a
// failure becomes a note (the training goes on).
// Qt Core only; the store must belong to the calling thread.
// Not here: the data files (training_export.h), the training (core/engine/training).
#pragma once

#include "project/project_store.h"

#include <QJsonObject>
#include <QString>

#include <exception>
#include <functional>

namespace dpo {

class RunRecord {
public:
    using Note = std::function<void(const QString &)>;
    // store: the project, or nullptr (nothing recorded); note: receives the failures of later updates.
    explicit RunRecord(ProjectStore *store, Note note = {});
    ~RunRecord(); // releases the lock

    // Creates the record (id <= 0) or continues it (a resumed run), and sets it "running". Throws what the
    // store throws. Returns the id (0 without a store).
    qint64 begin(qint64 id, const QString &name, const QString &configJson, const QString &outputDir);
    qint64 id() const { return m_id; }

    // Writes OUTPUT/.dpo-studio.lock; release() (or the destructor) removes it.
    void lock(const QString &outputDir);
    void release();

    void addMetrics(const QJsonObject &line); // merged into the last metrics
    void update(const QString &status);       // status and last metrics
    void finish(const QString &status);       // "finished", "stopped" or "failed": update + end time

    static QString lockFileName() { return QStringLiteral(".dpo-studio.lock"); }
    // True when OUTPUT/.dpo-studio.lock names a live process on this host (a run still training, possibly
    // in another window or a dpo-cli); true also for another host's lock (it cannot be told).
    static bool isLocked(const QString &outputDir);

private:
    void noteFailure(const std::exception &e) const;

    ProjectStore *m_store;
    Note m_note;
    qint64 m_id = 0;
    QJsonObject m_lastMetrics;
    QString m_lockPath;
};

} // namespace dpo
