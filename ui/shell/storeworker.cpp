#include "ui/shell/storeworker.h"

StoreWorker::StoreWorker(const QString &location, QObject *parent)
    : QObject(parent)
    , m_location(location)
{
    m_thread.setObjectName(QStringLiteral("dpo-store-worker"));
    m_receiver = new QObject;
    m_receiver->moveToThread(&m_thread);
    connect(&m_thread, &QThread::finished, m_receiver, &QObject::deleteLater);
    m_thread.start();
}

StoreWorker::~StoreWorker()
{
    // Close the connection in the thread that opened it, then stop the thread.
    QMetaObject::invokeMethod(
        m_receiver, [this]() { m_store.reset(); }, Qt::BlockingQueuedConnection);
    m_thread.quit();
    m_thread.wait();
}

void StoreWorker::post(std::function<void()> fn)
{
    QMetaObject::invokeMethod(m_receiver, std::move(fn), Qt::QueuedConnection);
}

void StoreWorker::waitForIdle()
{
    QMetaObject::invokeMethod(
        m_receiver, []() {}, Qt::BlockingQueuedConnection);
}

dpo::ProjectStore &StoreWorker::store()
{
    if (!m_store)
        m_store = dpo::ProjectStore::open(m_location);
    return *m_store;
}
