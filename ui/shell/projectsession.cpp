#include "ui/shell/projectsession.h"

#include <QFileInfo>

ProjectSession::ProjectSession(std::unique_ptr<dpo::ProjectStore> store, QObject *parent)
    : QObject(parent)
    , m_store(std::move(store))
    , m_location(m_store->location())
    , m_worker(std::make_unique<StoreWorker>(m_location))
{
}

ProjectSession::~ProjectSession()
{
    m_worker.reset(); // joins the worker thread before the GUI store goes
}

QString ProjectSession::displayName() const
{
    if (dpo::ProjectStore::isUrl(m_location))
        return m_store->displayLocation();
    return QFileInfo(m_location).fileName();
}
