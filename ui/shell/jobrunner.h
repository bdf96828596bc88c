// JobRunner: the GUI's one pattern for long engine work (gpt4all's): a QObject worker moved to a QThread
// of its own, jobs posted to it as queued calls, results back as queued signals, and cancellation through
// an atomic flag the worker polls. The training, evaluation and candidate runners derive from it and add
// only their jobs and signals. One job at a time: begin() refuses a second while one runs.
// Not here: short store queries (StoreWorker), modal import/export (runBackgroundTask).
#pragma once

#include <QObject>
#include <QString>
#include <QThread>

#include <atomic>
#include <utility>

class JobRunner : public QObject {
    Q_OBJECT
public:
    bool isRunning() const { return m_running; }
    // Asks the job in progress to stop at its next poll; no effect when idle.
    void cancel() { m_cancel.store(true); }
    bool cancelRequested() const { return m_cancel.load(); }
    QThread *workerThread() const { return m_thread; }

signals:
    void runningChanged(bool running);

protected:
    JobRunner(const QString &threadName, QObject *parent);
    // Cancels the job in progress and waits until it has returned (a trainer checkpoints first).
    ~JobRunner() override;

    // The flag workers poll; it lives as long as the thread.
    std::atomic<bool> *cancelFlag() { return &m_cancel; }
    // Moves worker to the thread (deleted there when the thread ends) and starts the thread. Once.
    void adoptWorker(QObject *worker);
    // False while a job runs; otherwise clears the cancel flag and enters the running state.
    bool begin();
    // Leaves the running state; call from the worker's finished/failed signals (GUI thread).
    void end();
    // Runs call() in the worker thread, after jobs posted before it.
    template <typename F>
    void post(F &&call)
    {
        QMetaObject::invokeMethod(m_worker, std::forward<F>(call), Qt::QueuedConnection);
    }

private:
    QThread *m_thread;
    QObject *m_worker = nullptr;
    std::atomic<bool> m_cancel { false };
    bool m_running = false;
};
