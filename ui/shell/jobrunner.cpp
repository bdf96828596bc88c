#include "ui/shell/jobrunner.h"

JobRunner::JobRunner(const QString &threadName, QObject *parent)
    : QObject(parent)
    , m_thread(new QThread(this))
{
    m_thread->setObjectName(threadName);
}

JobRunner::~JobRunner()
{
    m_cancel.store(true);
    m_thread->quit(); // handled once the job in progress has returned
    m_thread->wait();
}

void JobRunner::adoptWorker(QObject *worker)
{
    Q_ASSERT(!m_worker);
    m_worker = worker;
    worker->moveToThread(m_thread);
    connect(m_thread, &QThread::finished, worker, &QObject::deleteLater);
    m_thread->start();
}

bool JobRunner::begin()
{
    if (m_running)
        return false;
    m_cancel.store(false);
    m_running = true;
    emit runningChanged(true);
    return true;
}

void JobRunner::end()
{
    m_running = false;
    emit runningChanged(false);
}
