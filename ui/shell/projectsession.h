// ProjectSession: the open project as the pages see it: the GUI thread's ProjectStore (for writes that
// must be ordered, like verdicts), a StoreWorker (second connection, background thread) for slow
// reads, and the location (held in memory only: a PostgreSQL URL may carry a password).
//
// ProjectPage: the interface a page implements to be told when a project opens or closes; MainWindow
// calls it for every registered page that implements it. Pages that need no project skip it.
#pragma once

#include "project/project_store.h"
#include "ui/shell/storeworker.h"

#include <QObject>

#include <memory>

class ProjectSession : public QObject {
    Q_OBJECT
public:
    explicit ProjectSession(std::unique_ptr<dpo::ProjectStore> store, QObject *parent = nullptr);
    ~ProjectSession() override;

    dpo::ProjectStore &store() { return *m_store; }
    StoreWorker &worker() { return *m_worker; }
    QString location() const { return m_location; } // may hold a password: never persist or show
    QString displayName() const; // file name, or the URL with the password masked

signals:
    // Something changed the project's contents outside the Label page (an import, a repair): pages
    // showing counts or listings refresh.
    void contentChanged();

private:
    std::unique_ptr<dpo::ProjectStore> m_store;
    QString m_location;
    std::unique_ptr<StoreWorker> m_worker;
};

class ProjectPage {
public:
    virtual ~ProjectPage() = default;
    // session is nullptr when the project is closed; it outlives the call until the next one.
    virtual void setProject(ProjectSession *session) = 0;
};
