// StoreWorker: one background thread with its own ProjectStore connection on the same project, for
// queries that may take long on a large project (Data page listings, statistics, progress counts).
// Qt ties a database connection to the thread that opened it, so the GUI thread's store cannot be
// used here; this opens a second one, lazily, inside the worker thread.
//
// run(context, job, done) executes job(store) in the worker thread, then done(result) in context's
// thread (the GUI), unless context was destroyed meanwhile. Jobs run one at a time, in order.
// Does not do writes that must be ordered with the GUI's (verdicts stay on the GUI store).
#pragma once

#include "project/project_store.h"

#include <QObject>
#include <QPointer>
#include <QThread>

#include <functional>
#include <memory>

class StoreWorker : public QObject {
    Q_OBJECT
public:
    explicit StoreWorker(const QString &location, QObject *parent = nullptr);
    ~StoreWorker() override;

    template <typename R>
    void run(QObject *context, std::function<R(dpo::ProjectStore &)> job, std::function<void(R)> done,
        std::function<void(QString)> failed = {})
    {
        QPointer<QObject> ctx(context);
        post([this, ctx, job = std::move(job), done = std::move(done), failed = std::move(failed)]() {
            QString error;
            std::shared_ptr<R> result;
            try {
                result = std::make_shared<R>(job(store()));
            } catch (const std::exception &e) {
                error = QString::fromUtf8(e.what());
            }
            if (!ctx)
                return;
            QMetaObject::invokeMethod(
                ctx.data(),
                [done, failed, result, error]() {
                    if (result)
                        done(std::move(*result));
                    else if (failed)
                        failed(error);
                },
                Qt::QueuedConnection);
        });
    }

    // Blocks until every job posted so far has finished (tests, shutdown).
    void waitForIdle();

private:
    void post(std::function<void()> fn);
    dpo::ProjectStore &store(); // worker thread only

    QString m_location;
    QThread m_thread;
    QObject *m_receiver = nullptr; // lives in m_thread; queued functors run there
    std::unique_ptr<dpo::ProjectStore> m_store;
};
