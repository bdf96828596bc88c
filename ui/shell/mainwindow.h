// MainWindow: the application frame. A sidebar of pages (a registry: addPage(name, icon, widget) gives
// the page a sidebar button, a View-menu entry and Ctrl+N), the File menu (new / open / open team
// project / recent / import / export), the open project (a ProjectSession handed to every page that
// implements ProjectPage), and persisted window geometry, state, current page and recent projects.
//
// Passwords: a PostgreSQL URL's password lives only in the open session; recent projects and every
// other setting store the URL without it, and reopening asks again.
// Does not own page logic: pages are separate widgets (LabelPage, DataPage, and later pages).
#pragma once

#include "ui/shell/projectsession.h"

#include <QMainWindow>
#include <QPointer>

#include <memory>

class DataPage;
class LabelPage;
class QActionGroup;
class QLabel;
class QMenu;
class QStackedWidget;
class QToolBar;

class MainWindow : public QMainWindow {
    Q_OBJECT
public:
    explicit MainWindow(QWidget *parent = nullptr);
    ~MainWindow() override;

    // The page registry. Returns the page index; its shortcut is Ctrl+(index+1) for the first nine.
    int addPage(const QString &name, const QIcon &icon, QWidget *page);
    int pageCount() const;
    int currentPage() const;
    QWidget *page(int index) const;
    QString pageName(int index) const;
    void setCurrentPage(int index);

    // Opens a project (file path or postgresql:// URL). On failure shows nothing when error is given
    // (it receives the message), else a message box. The previous project closes only on success.
    bool openProject(const QString &pathOrUrl, QString *error = nullptr);
    void closeProject();
    // Start-up: the given project, else the most recent one, else the bundled demo project.
    void openStartupProject(const QString &pathOrUrl = {});
    // Creates (first time) and returns the demo project's path under AppDataLocation.
    static QString ensureDemoProject(QString *error = nullptr);
    static QString demoProjectPath();

    ProjectSession *session() const { return m_session.get(); }
    LabelPage *labelPage() const { return m_labelPage; }
    DataPage *dataPage() const { return m_dataPage; }
    QStringList recentProjects() const;

    // Import / export with progress and cancel (also used by the menu actions).
    bool importFile(const QString &path, int format /* dpo::ImportFormat */);
    bool exportFile(const QString &path, int format /* dpo::ExportFormat */);

    static QString stripPassword(const QString &pathOrUrl);

signals:
    void projectChanged(ProjectSession *session);

protected:
    void closeEvent(QCloseEvent *event) override;

private:
    void buildMenus();
    void restoreSettings();
    void saveSettings();
    void addRecent(const QString &pathOrUrl);
    void updateRecentMenu();
    void updateTitle();
    void newProject();
    void openProjectDialog();
    void openTeamProjectDialog(const QString &url = {}, const QString &reason = {});
    void importDialog();
    void exportDialog(int format);
    void switchAnnotator();
    void setOverlapDialog();
    void showShortcuts();

    struct PageEntry {
        QString name;
        QWidget *widget;
        QAction *action;
    };
    QVector<PageEntry> m_pages;
    QStackedWidget *m_stack;
    QToolBar *m_sidebar;
    QActionGroup *m_pageGroup;
    QMenu *m_viewMenu = nullptr;
    QMenu *m_recentMenu = nullptr;
    QList<QAction *> m_projectActions; // enabled only with a project open
    QLabel *m_projectLabel;
    std::unique_ptr<ProjectSession> m_session;
    LabelPage *m_labelPage = nullptr;
    DataPage *m_dataPage = nullptr;
};
