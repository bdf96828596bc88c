// JobRunner (ui/shell/jobrunner.h): the worker thread under the training, evaluation and candidate
// runners. A scripted worker that spins until cancelled shows the contract: one job at a time, work off
// the GUI thread, runningChanged around each job, cancel reaching the worker, and a destructor that
// cancels and waits for the job instead of leaving it running.
#include "ui/shell/jobrunner.h"

#include <QSignalSpy>
#include "qt_test_main.h"

#include <QTest>

#include <atomic>

namespace test_job_runner { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

namespace {

class SpinWorker : public QObject {
    Q_OBJECT
public:
    explicit SpinWorker(std::atomic<bool> *cancel)
        : m_cancel(cancel)
    {
    }
    // Spins until cancelled (or maxSpins polls), then reports how it ended.
    void run(int maxSpins)
    {
        m_ranOn.store(QThread::currentThread());
        int spins = 0;
        while (!m_cancel->load() && spins < maxSpins) {
            QThread::msleep(1);
            ++spins;
        }
        ++m_finishedJobs;
        emit done(m_cancel->load());
    }
    std::atomic<QThread *> m_ranOn { nullptr };
    static inline std::atomic<int> m_finishedJobs { 0 };

signals:
    void done(bool cancelled);

private:
    std::atomic<bool> *m_cancel;
};

class SpinRunner : public JobRunner {
    Q_OBJECT
public:
    explicit SpinRunner(QObject *parent = nullptr)
        : JobRunner(QStringLiteral("spin"), parent)
        , m_worker(new SpinWorker(cancelFlag()))
    {
        connect(m_worker, &SpinWorker::done, this, [this](bool cancelled) {
            end();
            emit done(cancelled);
        });
        adoptWorker(m_worker);
    }
    bool start(int maxSpins)
    {
        if (!begin())
            return false;
        post([w = m_worker, maxSpins]() { w->run(maxSpins); });
        return true;
    }
    SpinWorker *worker() const { return m_worker; }

signals:
    void done(bool cancelled);

private:
    SpinWorker *m_worker;
};

} // namespace

class TestJobRunner : public QObject {
    Q_OBJECT
private slots:
    void jobRunsOffTheGuiThread();
    void secondJobRefusedWhileOneRuns();
    void cancelReachesTheWorkerAndIsClearedForTheNextJob();
    void destructorCancelsAndWaits();
};

void TestJobRunner::jobRunsOffTheGuiThread()
{
    SpinRunner runner;
    QSignalSpy running(&runner, &JobRunner::runningChanged);
    QSignalSpy done(&runner, &SpinRunner::done);
    QVERIFY(!runner.isRunning());
    QVERIFY(runner.start(5));
    QVERIFY(runner.isRunning());
    QVERIFY(done.wait(5000));
    QCOMPARE(done.first().first().toBool(), false);
    QVERIFY(!runner.isRunning());
    QCOMPARE(running.count(), 2);
    QCOMPARE(running.at(0).first().toBool(), true);
    QCOMPARE(running.at(1).first().toBool(), false);
    QVERIFY(runner.worker()->m_ranOn.load() != nullptr);
    QVERIFY(runner.worker()->m_ranOn.load() != QThread::currentThread());
    QCOMPARE(runner.worker()->m_ranOn.load(), runner.workerThread());
}

void TestJobRunner::secondJobRefusedWhileOneRuns()
{
    SpinRunner runner;
    QSignalSpy done(&runner, &SpinRunner::done);
    QVERIFY(runner.start(1000000));
    QVERIFY(!runner.start(1)); // refused, and nothing queued behind the first job
    runner.cancel();
    QVERIFY(done.wait(5000));
    QTest::qWait(50);
    QCOMPARE(done.count(), 1);
    QVERIFY(runner.start(1)); // idle again: accepted
    QVERIFY(done.wait(5000));
    QCOMPARE(done.count(), 2);
}

void TestJobRunner::cancelReachesTheWorkerAndIsClearedForTheNextJob()
{
    SpinRunner runner;
    QSignalSpy done(&runner, &SpinRunner::done);
    QVERIFY(runner.start(1000000)); // ~17 minutes unless cancelled
    QTest::qWait(20);
    runner.cancel();
    QVERIFY(runner.cancelRequested());
    QVERIFY(done.wait(5000));
    QCOMPARE(done.last().first().toBool(), true);
    QVERIFY(runner.start(3)); // a fresh job does not see the old cancel
    QVERIFY(!runner.cancelRequested());
    QVERIFY(done.wait(5000));
    QCOMPARE(done.last().first().toBool(), false);
}

void TestJobRunner::destructorCancelsAndWaits()
{
    const int before = SpinWorker::m_finishedJobs.load();
    {
        SpinRunner runner;
        QVERIFY(runner.start(1000000));
        QTest::qWait(20);
    } // would block for minutes (or leave the job running) without cancel + wait
    QCOMPARE(SpinWorker::m_finishedJobs.load(), before + 1);
}

DPO_TEST_MAIN(TestJobRunner)

} // namespace test_job_runner

#include "test_job_runner.moc"
