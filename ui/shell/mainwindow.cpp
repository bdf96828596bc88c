#include "ui/shell/mainwindow.h"

#include "ui/shell/backgroundtask.h"
#include "ui/data/datapage.h"
#include "ui/evaluate/evaluatepage.h"
#include "ui/shell/icons.h"
#include "ui/label/labelpage.h"
#include "ui/label/shortcutsheet.h"
#include "ui/train/trainpage.h"

#include <QAction>
#include <QActionGroup>
#include <QApplication>
#include <QCloseEvent>
#include <QDialog>
#include <QDialogButtonBox>
#include <QDir>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QInputDialog>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QLineEdit>
#include <QLocale>
#include <QMenuBar>
#include <QMessageBox>
#include <QPushButton>
#include <QSettings>
#include <QStackedWidget>
#include <QStandardPaths>
#include <QStatusBar>
#include <QToolBar>
#include <QUrl>
#include <QVBoxLayout>

// resources.qrc is compiled into the static dpo_ui library: nothing references its initializer, so the
// linker would drop it without this explicit call (outside any namespace, as Qt requires).
static void initBundledResources()
{
    Q_INIT_RESOURCE(resources);
}

namespace {
const int maxRecent = 8;
const char *recentKey = "project/recent";
} // namespace

MainWindow::MainWindow(QWidget *parent)
    : QMainWindow(parent)
{
    setObjectName(QStringLiteral("mainWindow"));
    initBundledResources();
    setWindowIcon(Icons::get(QStringLiteral("app")));
    m_stack = new QStackedWidget;
    setCentralWidget(m_stack);

    m_sidebar = new QToolBar(tr("Pages"));
    m_sidebar->setObjectName(QStringLiteral("sidebar"));
    m_sidebar->setMovable(false);
    m_sidebar->setFloatable(false);
    m_sidebar->setToolButtonStyle(Qt::ToolButtonTextUnderIcon);
    m_sidebar->setIconSize(QSize(28, 28));
    m_sidebar->toggleViewAction()->setEnabled(false); // the sidebar is the navigation: keep it
    addToolBar(Qt::LeftToolBarArea, m_sidebar);
    m_pageGroup = new QActionGroup(this);
    m_pageGroup->setExclusive(true);

    m_projectLabel = new QLabel;
    statusBar()->addPermanentWidget(m_projectLabel);

    buildMenus();

    // The pages. Later pages register the same way, one line each.
    m_labelPage = new LabelPage;
    m_dataPage = new DataPage;
    addPage(tr("Label"), Icons::get(QStringLiteral("label")), m_labelPage);
    addPage(tr("Data"), Icons::get(QStringLiteral("data")), m_dataPage);
    auto *trainPage = new TrainPage;
    auto *evaluatePage = new EvaluatePage(this);
    addPage(tr("Train"), Icons::get(QStringLiteral("train")), trainPage);
    addPage(tr("Evaluate"), Icons::get(QStringLiteral("evaluate")), evaluatePage);
    // A run that just ended (with a final model or checkpoints) is a model to evaluate: list it now.
    connect(trainPage, &TrainPage::trainingFinished, evaluatePage, &EvaluatePage::refreshModels);

    connect(m_labelPage, &LabelPage::statusMessage, this, [this](const QString &m) { statusBar()->showMessage(m, 6000); });
    restoreSettings();
    updateTitle();
}

MainWindow::~MainWindow()
{
    // Pages drop their pointers before the session (and its worker thread) goes.
    for (const PageEntry &p : std::as_const(m_pages))
        if (auto *pp = dynamic_cast<ProjectPage *>(p.widget))
            pp->setProject(nullptr);
    m_session.reset();
}

int MainWindow::addPage(const QString &name, const QIcon &icon, QWidget *page)
{
    const int index = int(m_pages.size());
    m_stack->addWidget(page);
    auto *a = new QAction(icon, name, this);
    a->setCheckable(true);
    a->setObjectName(QStringLiteral("page_%1").arg(name));
    if (index < 9) {
        a->setShortcut(QKeySequence(Qt::CTRL | Qt::Key(Qt::Key_1 + index)));
        a->setToolTip(tr("%1 (%2)").arg(name, a->shortcut().toString(QKeySequence::NativeText)));
    }
    a->setShortcutContext(Qt::ApplicationShortcut);
    ShortcutSheet::tag(a, tr("Pages"));
    m_pageGroup->addAction(a);
    m_sidebar->addAction(a);
    if (QWidget *button = m_sidebar->widgetForAction(a)) {
        button->setFocusPolicy(Qt::NoFocus);
        button->setMinimumWidth(72);
    }
    if (m_viewMenu)
        m_viewMenu->addAction(a);
    connect(a, &QAction::triggered, this, [this, index]() { setCurrentPage(index); });
    m_pages.push_back({name, page, a});
    if (auto *pp = dynamic_cast<ProjectPage *>(page))
        pp->setProject(m_session.get());
    if (index == 0)
        setCurrentPage(0);
    return index;
}

int MainWindow::pageCount() const
{
    return int(m_pages.size());
}

int MainWindow::currentPage() const
{
    return m_stack->currentIndex();
}

QWidget *MainWindow::page(int index) const
{
    return index >= 0 && index < m_pages.size() ? m_pages[index].widget : nullptr;
}

QString MainWindow::pageName(int index) const
{
    return index >= 0 && index < m_pages.size() ? m_pages[index].name : QString();
}

void MainWindow::setCurrentPage(int index)
{
    if (index < 0 || index >= m_pages.size())
        return;
    m_stack->setCurrentIndex(index);
    m_pages[index].action->setChecked(true);
    m_pages[index].widget->setFocus();
}

void MainWindow::buildMenus()
{
    QMenu *file = menuBar()->addMenu(tr("&File"));
    auto tagged = [](QAction *a) {
        ShortcutSheet::tag(a, tr("Project"));
        return a;
    };
    tagged(file->addAction(Icons::get(QStringLiteral("new")), tr("&New project…"), QKeySequence::New, this,
                           &MainWindow::newProject));
    tagged(file->addAction(Icons::get(QStringLiteral("open")), tr("&Open project…"), QKeySequence::Open, this,
                           &MainWindow::openProjectDialog));
    file->addAction(tr("Open &team project (PostgreSQL)…"), this, [this]() { openTeamProjectDialog(); });
    m_recentMenu = file->addMenu(tr("Open &recent"));
    file->addSeparator();
    QAction *imp = tagged(file->addAction(Icons::get(QStringLiteral("import")), tr("&Import…"),
                                          QKeySequence(Qt::CTRL | Qt::Key_I), this, &MainWindow::importDialog));
    QMenu *exp = file->addMenu(Icons::get(QStringLiteral("export")), tr("&Export"));
    QAction *e1 = exp->addAction(tr("Preference pairs (TRL JSONL)…"), this,
                                 [this]() { exportDialog(int(dpo::ExportFormat::Trl)); });
    QAction *e2 = exp->addAction(tr("All judgments (JSONL)…"), this,
                                 [this]() { exportDialog(int(dpo::ExportFormat::JudgmentsJsonl)); });
    QAction *e3 = exp->addAction(tr("All judgments (CSV)…"), this,
                                 [this]() { exportDialog(int(dpo::ExportFormat::JudgmentsCsv)); });
    file->addSeparator();
    QAction *closeAct = file->addAction(tr("&Close project"), this, &MainWindow::closeProject);
    file->addSeparator();
    tagged(file->addAction(tr("&Quit"), QKeySequence::Quit, this, &QWidget::close));

    QMenu *project = menuBar()->addMenu(tr("&Project"));
    QAction *ann = project->addAction(tr("Switch &annotator…"), this, &MainWindow::switchAnnotator);
    QAction *ov = project->addAction(tr("Annotations per &pair (overlap)…"), this, &MainWindow::setOverlapDialog);
    m_projectActions = {imp, exp->menuAction(), e1, e2, e3, closeAct, ann, ov};

    m_viewMenu = menuBar()->addMenu(tr("&View"));

    QMenu *help = menuBar()->addMenu(tr("&Help"));
    help->addAction(tr("&Keyboard shortcuts"), QKeySequence::HelpContents, this, &MainWindow::showShortcuts);
    help->addAction(tr("&About DPO Studio"), this, [this]() {
        QMessageBox::about(this, tr("About DPO Studio"),
                           tr("<h3>DPO Studio %1</h3><p>Label preference pairs, train with Direct Preference "
                              "Optimization, evaluate blind.</p><p>GPL-3.0-or-later.</p>")
                               .arg(QApplication::applicationVersion()));
    });
    updateRecentMenu();
}

void MainWindow::restoreSettings()
{
    QSettings s;
    if (!restoreGeometry(s.value(QStringLiteral("window/geometry")).toByteArray()))
        resize(1280, 820);
    restoreState(s.value(QStringLiteral("window/state")).toByteArray());
    setCurrentPage(s.value(QStringLiteral("window/page"), 0).toInt());
}

void MainWindow::saveSettings()
{
    QSettings s;
    s.setValue(QStringLiteral("window/geometry"), saveGeometry());
    s.setValue(QStringLiteral("window/state"), saveState());
    s.setValue(QStringLiteral("window/page"), currentPage());
}

void MainWindow::closeEvent(QCloseEvent *event)
{
    // Pages with work in flight (training) expose `bool canClose()`: they may ask, and close the window
    // themselves once the work has stopped cleanly.
    for (const PageEntry &p : std::as_const(m_pages))
        if (p.widget->metaObject()->indexOfMethod("canClose()") >= 0) {
            bool ok = true;
            QMetaObject::invokeMethod(p.widget, "canClose", Qt::DirectConnection, Q_RETURN_ARG(bool, ok));
            if (!ok) {
                event->ignore();
                return;
            }
        }
    saveSettings();
    QMainWindow::closeEvent(event);
}

QString MainWindow::stripPassword(const QString &pathOrUrl)
{
    if (!dpo::ProjectStore::isUrl(pathOrUrl))
        return pathOrUrl;
    QUrl u(pathOrUrl);
    u.setPassword(QString());
    return u.toString();
}

QStringList MainWindow::recentProjects() const
{
    return QSettings().value(QLatin1String(recentKey)).toStringList();
}

void MainWindow::addRecent(const QString &pathOrUrl)
{
    QString entry = stripPassword(pathOrUrl);
    if (!dpo::ProjectStore::isUrl(entry))
        entry = QFileInfo(entry).absoluteFilePath();
    QStringList list = recentProjects();
    list.removeAll(entry);
    list.prepend(entry);
    while (list.size() > maxRecent)
        list.removeLast();
    QSettings().setValue(QLatin1String(recentKey), list);
    updateRecentMenu();
}

void MainWindow::updateRecentMenu()
{
    m_recentMenu->clear();
    const QStringList list = recentProjects();
    for (const QString &p : list) {
        const QString label = dpo::ProjectStore::isUrl(p) ? p : QDir::toNativeSeparators(p);
        m_recentMenu->addAction(label, this, [this, p]() {
            if (dpo::ProjectStore::isUrl(p)) {
                QString err;
                if (!openProject(p, &err))
                    openTeamProjectDialog(p, err);
            } else {
                openProject(p);
            }
        });
    }
    if (!list.isEmpty()) {
        m_recentMenu->addSeparator();
        m_recentMenu->addAction(tr("Clear list"), this, [this]() {
            QSettings().remove(QLatin1String(recentKey));
            updateRecentMenu();
        });
    }
    m_recentMenu->setEnabled(!list.isEmpty());
}

void MainWindow::updateTitle()
{
    const QString name = m_session ? m_session->displayName() : QString();
    const bool readOnly = m_session && m_session->store().isReadOnly();
    setWindowTitle(name.isEmpty() ? tr("DPO Studio")
                   : readOnly     ? tr("%1 (read-only) — DPO Studio").arg(name)
                                  : tr("%1 — DPO Studio").arg(name));
    m_projectLabel->setText(!m_session ? tr("No project")
                            : readOnly ? tr("Project: %1 (read-only)").arg(name)
                                       : tr("Project: %1").arg(name));
    for (QAction *a : std::as_const(m_projectActions))
        a->setEnabled(m_session != nullptr);
}

bool MainWindow::openProject(const QString &pathOrUrl, QString *error)
{
    QString err;
    std::unique_ptr<dpo::ProjectStore> store;
    bool reachable = true;
    if (dpo::ProjectStore::isUrl(pathOrUrl)) {
        // A PostgreSQL server may take up to the connect timeout to answer, and a first open by a newer
        // version migrates (and recounts) the project. Both happen here on a worker thread, on a connection
        // opened and closed there, while the window paints and offers Cancel. The store the pages use must
        // be opened on this thread (Qt SQL connections belong to the thread that opened them); that open
        // then finds a migrated project on a server that just answered.
        const auto probe = runBackgroundTask<bool>(
            this, tr("Open project"), tr("Connecting to %1…").arg(stripPassword(pathOrUrl)),
            [pathOrUrl](TaskControl &control) {
                try {
                    dpo::ProjectStore::open(pathOrUrl); // throws with the reason
                } catch (...) {
                    if (control.cancel.load()) // the user gave up before the server did
                        return false;
                    throw;
                }
                return !control.cancel.load();
            },
            &err);
        if (probe && !*probe) {
            if (error)
                *error = tr("connecting was cancelled");
            return false;
        }
        reachable = probe.has_value();
    }
    if (reachable) {
        QApplication::setOverrideCursor(Qt::WaitCursor);
        store = dpo::ProjectStore::open(pathOrUrl, &err);
        QApplication::restoreOverrideCursor();
    }
    if (!store) {
        if (error)
            *error = err;
        else
            QMessageBox::warning(this, tr("Open project"),
                                 tr("Could not open %1:\n\n%2").arg(stripPassword(pathOrUrl), err));
        return false;
    }
    closeProject();
    m_session = std::make_unique<ProjectSession>(std::move(store));
    for (const PageEntry &p : std::as_const(m_pages))
        if (auto *pp = dynamic_cast<ProjectPage *>(p.widget))
            pp->setProject(m_session.get());
    if (pathOrUrl != demoProjectPath())
        addRecent(pathOrUrl);
    updateTitle();
    if (m_session->store().isReadOnly())
        statusBar()->showMessage(tr("Opened %1 read-only (no write permission): browse and export; labeling and "
                                    "imports need a writable copy.").arg(m_session->displayName()), 15000);
    else
        statusBar()->showMessage(tr("Opened %1").arg(m_session->displayName()), 4000);
    emit projectChanged(m_session.get());
    return true;
}

void MainWindow::closeProject()
{
    if (!m_session)
        return;
    for (const PageEntry &p : std::as_const(m_pages))
        if (auto *pp = dynamic_cast<ProjectPage *>(p.widget))
            pp->setProject(nullptr);
    m_session.reset();
    updateTitle();
    emit projectChanged(nullptr);
}

QString MainWindow::demoProjectPath()
{
    return QDir(QStandardPaths::writableLocation(QStandardPaths::AppDataLocation)).filePath(QStringLiteral("demo.dpo"));
}

QString MainWindow::ensureDemoProject(QString *error)
{
    initBundledResources();
    const QString path = demoProjectPath();
    if (QFileInfo::exists(path))
        return path;
    QDir().mkpath(QFileInfo(path).absolutePath());
    // Built under a temporary name and renamed at the end: a crash never leaves a half demo behind.
    const QString tmp = path + QStringLiteral(".building");
    for (const QString &suffix : {QString(), QStringLiteral("-wal"), QStringLiteral("-shm")})
        QFile::remove(tmp + suffix);
    try {
        QFile f(QStringLiteral(":/demo/pairs.jsonl"));
        if (!f.open(QIODevice::ReadOnly))
            throw dpo::ProjectError("the bundled demo data is missing (:/demo/pairs.jsonl)");
        QFile g(QStringLiteral(":/demo/guidelines.md"));
        const QString guidelines = g.open(QIODevice::ReadOnly) ? QString::fromUtf8(g.readAll()) : QString();
        {
            auto store = dpo::ProjectStore::open(tmp);
            // The demo rows carry a known-better answer, but they are imported as open pairs (not as
            // already judged) so that the demo has something to label.
            dpo::ProjectStore::Transaction tx(*store);
            int line = 0;
            while (!f.atEnd()) {
                const QByteArray raw = f.readLine().trimmed();
                ++line;
                if (raw.isEmpty())
                    continue;
                const QJsonObject o = QJsonDocument::fromJson(raw).object();
                const QString prompt = o.value(QLatin1String("prompt")).toString();
                const QString chosen = o.value(QLatin1String("chosen")).toString();
                const QString rejected = o.value(QLatin1String("rejected")).toString();
                if (prompt.isEmpty() || chosen.isEmpty() || rejected.isEmpty())
                    throw dpo::ProjectError(QStringLiteral("demo data line %1: missing field").arg(line).toStdString());
                dpo::Provenance prov;
                prov.source = QStringLiteral("demo");
                const qint64 pid = store->addPrompt(prompt);
                const qint64 a = store->addCompletion(pid, chosen, prov);
                const qint64 b = store->addCompletion(pid, rejected, prov);
                store->addPair(pid, a, b, QStringLiteral("demo"));
            }
            tx.commit();
            store->setGuidelines(guidelines);
        }
        if (!QFile::rename(tmp, path))
            throw dpo::ProjectError(QStringLiteral("cannot create %1").arg(path).toStdString());
    } catch (const std::exception &e) {
        if (error)
            *error = QString::fromUtf8(e.what());
        return {};
    }
    return path;
}

void MainWindow::openStartupProject(const QString &pathOrUrl)
{
    if (!pathOrUrl.isEmpty()) {
        openProject(pathOrUrl);
        return;
    }
    const QStringList recent = recentProjects();
    if (!recent.isEmpty()) {
        const QString last = recent.first();
        QString err;
        if (dpo::ProjectStore::isUrl(last)) {
            if (!openProject(last, &err))
                openTeamProjectDialog(last, err); // usually: the password is not remembered
            return;
        }
        if (QFileInfo::exists(last) && openProject(last, &err))
            return;
        statusBar()->showMessage(tr("Could not reopen %1; opened the demo project instead.").arg(last), 8000);
    }
    QString err;
    const QString demo = ensureDemoProject(&err);
    if (demo.isEmpty()) {
        QMessageBox::warning(this, tr("Demo project"), tr("The demo project could not be created:\n\n%1").arg(err));
        return;
    }
    if (openProject(demo))
        statusBar()->showMessage(tr("This is the demo project. Open or create your own under File."), 10000);
}

void MainWindow::newProject()
{
    const QString dir = QStandardPaths::writableLocation(QStandardPaths::DocumentsLocation);
    QString path = QFileDialog::getSaveFileName(this, tr("New project"), dir, tr("DPO Studio projects (*.dpo)"));
    if (path.isEmpty())
        return;
    if (QFileInfo(path).suffix().isEmpty())
        path += QStringLiteral(".dpo");
    if (QFileInfo::exists(path)) {
        // The file dialog already asked about replacing; never delete the project that is open.
        if (m_session && QFileInfo(m_session->location()) == QFileInfo(path)) {
            QMessageBox::warning(this, tr("New project"), tr("%1 is the open project.").arg(path));
            return;
        }
        for (const QString &suffix : {QString(), QStringLiteral("-wal"), QStringLiteral("-shm")})
            QFile::remove(path + suffix);
    }
    if (openProject(path))
        statusBar()->showMessage(tr("New project created. Import pairs with File → Import…"), 8000);
}

void MainWindow::openProjectDialog()
{
    QString dir;
    const QStringList recent = recentProjects();
    for (const QString &r : recent)
        if (!dpo::ProjectStore::isUrl(r)) {
            dir = QFileInfo(r).absolutePath();
            break;
        }
    const QString path = QFileDialog::getOpenFileName(this, tr("Open project"), dir,
                                                      tr("DPO Studio projects (*.dpo);;All files (*)"));
    if (!path.isEmpty())
        openProject(path);
}

void MainWindow::openTeamProjectDialog(const QString &url, const QString &reason)
{
    QDialog dlg(this);
    dlg.setWindowTitle(tr("Open team project (PostgreSQL)"));
    auto *urlEdit = new QLineEdit(stripPassword(url));
    urlEdit->setPlaceholderText(QStringLiteral("postgresql://user@host:5432/database"));
    urlEdit->setMinimumWidth(380);
    auto *pw = new QLineEdit;
    pw->setEchoMode(QLineEdit::Password);
    const QString given = QUrl(url).password();
    pw->setText(given);
    auto *note = new QLabel(tr("The password is kept in memory for this session only. Recent projects "
                               "remember the address without it."));
    note->setWordWrap(true);
    note->setEnabled(false);
    auto *form = new QFormLayout;
    form->addRow(tr("Address:"), urlEdit);
    form->addRow(tr("Password:"), pw);
    auto *lay = new QVBoxLayout(&dlg);
    if (!reason.isEmpty()) {
        auto *r = new QLabel(tr("Could not connect: %1").arg(reason));
        r->setWordWrap(true);
        lay->addWidget(r);
    }
    lay->addLayout(form);
    lay->addWidget(note);
    auto *buttons = new QDialogButtonBox(QDialogButtonBox::Open | QDialogButtonBox::Cancel);
    connect(buttons, &QDialogButtonBox::accepted, &dlg, &QDialog::accept);
    connect(buttons, &QDialogButtonBox::rejected, &dlg, &QDialog::reject);
    lay->addWidget(buttons);
    (url.isEmpty() ? urlEdit : pw)->setFocus();
    if (dlg.exec() != QDialog::Accepted)
        return;
    QUrl u(urlEdit->text().trimmed());
    if (!dpo::ProjectStore::isUrl(u.toString())) {
        QMessageBox::warning(this, dlg.windowTitle(), tr("Not a PostgreSQL address: %1").arg(u.toString()));
        return;
    }
    if (!pw->text().isEmpty())
        u.setPassword(pw->text());
    QString err;
    if (!openProject(u.toString(), &err))
        openTeamProjectDialog(u.toString(QUrl::RemovePassword), err);
}

bool MainWindow::importFile(const QString &path, int formatValue)
{
    if (!m_session)
        return false;
    const QString location = m_session->location();
    const auto format = dpo::ImportFormat(formatValue);
    auto run = [&](dpo::OnError onError, QString *err) {
        return runBackgroundTask<dpo::ImportResult>(
            this, tr("Import"), tr("Importing %1…").arg(QFileInfo(path).fileName()),
            [location, path, format, onError](TaskControl &c) {
                // Qt ties a connection to its thread: the import opens its own on the same project.
                auto store = dpo::ProjectStore::open(location);
                dpo::ImportOptions o;
                o.format = format;
                o.onError = onError;
                o.cancel = &c.cancel;
                o.progress = [&c](qint64 done, qint64 total) {
                    c.done = done;
                    c.total = total;
                };
                return dpo::importFile(*store, path, o);
            },
            err);
    };
    // First pass all-or-nothing: a clean file is imported in one go; a file with bad rows imports
    // nothing until the user has seen the rows and chosen.
    QString err;
    std::optional<dpo::ImportResult> r = run(dpo::OnError::Abort, &err);
    if (!r) {
        QMessageBox::warning(this, tr("Import"), tr("Import failed:\n\n%1").arg(err));
        return false;
    }
    if (r->cancelled) {
        statusBar()->showMessage(tr("Import cancelled: nothing was imported."), 6000);
        return false;
    }
    if (r->aborted) {
        QStringList lines;
        for (const dpo::ImportIssue &i : std::as_const(r->errors))
            lines << tr("line %1: %2").arg(i.line).arg(i.message);
        QMessageBox box(QMessageBox::Warning, tr("Import: bad rows"),
                        tr("%n row(s) of %1 cannot be imported.", nullptr, int(r->skipped))
                            .arg(QFileInfo(path).fileName()),
                        QMessageBox::NoButton, this);
        QStringList head = lines.mid(0, 8);
        if (lines.size() > 8)
            head << tr("… (all of them under Show Details)");
        box.setInformativeText(head.join(QLatin1Char('\n')) +
                               tr("\n\nSkip them and import the good rows, or abort and import nothing?"));
        box.setDetailedText(lines.join(QLatin1Char('\n')));
        QPushButton *skip = box.addButton(tr("Skip bad rows"), QMessageBox::AcceptRole);
        box.addButton(tr("Abort import"), QMessageBox::RejectRole);
        box.setDefaultButton(skip);
        box.exec();
        if (box.clickedButton() != static_cast<QAbstractButton *>(skip)) {
            statusBar()->showMessage(tr("Import aborted: nothing was imported."), 6000);
            return false;
        }
        r = run(dpo::OnError::Skip, &err);
        if (!r) {
            QMessageBox::warning(this, tr("Import"), tr("Import failed:\n\n%1").arg(err));
            return false;
        }
        if (r->cancelled) {
            statusBar()->showMessage(tr("Import cancelled: nothing was imported."), 6000);
            return false;
        }
    }
    statusBar()->showMessage(tr("Imported %1 rows from %2 (%3 skipped).")
                                 .arg(QLocale().toString(r->imported), QFileInfo(path).fileName())
                                 .arg(r->skipped),
                             8000);
    emit m_session->contentChanged();
    return true;
}

void MainWindow::importDialog()
{
    if (!m_session)
        return;
    const QStringList filters = {tr("Any supported file (*.jsonl *.json *.csv)"),
                                 tr("TRL preference pairs (*.jsonl *.json)"), tr("CSV pairs (*.csv)"),
                                 tr("Prompts only (*.jsonl *.json)")};
    QString selected = filters.first();
    QSettings s;
    const QString path = QFileDialog::getOpenFileName(this, tr("Import"), s.value(QStringLiteral("import/dir")).toString(),
                                                      filters.join(QStringLiteral(";;")), &selected);
    if (path.isEmpty())
        return;
    s.setValue(QStringLiteral("import/dir"), QFileInfo(path).absolutePath());
    const dpo::ImportFormat fmt[] = {dpo::ImportFormat::Auto, dpo::ImportFormat::Trl, dpo::ImportFormat::Csv,
                                     dpo::ImportFormat::Prompts};
    importFile(path, int(fmt[std::max<qsizetype>(0, filters.indexOf(selected))]));
}

bool MainWindow::exportFile(const QString &path, int formatValue)
{
    if (!m_session)
        return false;
    const QString location = m_session->location();
    const auto format = dpo::ExportFormat(formatValue);
    QString err;
    auto r = runBackgroundTask<dpo::ExportResult>(
        this, tr("Export"), tr("Exporting to %1…").arg(QFileInfo(path).fileName()),
        [location, path, format](TaskControl &c) {
            auto store = dpo::ProjectStore::open(location);
            dpo::ExportOptions o;
            o.format = format;
            o.cancel = &c.cancel;
            o.progress = [&c](qint64 done, qint64 total) {
                c.done = done;
                c.total = total;
            };
            return dpo::exportFile(*store, path, o);
        },
        &err);
    if (!r) {
        QMessageBox::warning(this, tr("Export"), tr("Export failed:\n\n%1").arg(err));
        return false;
    }
    if (r->cancelled) {
        statusBar()->showMessage(tr("Export cancelled."), 6000);
        return false;
    }
    statusBar()->showMessage(tr("Exported %1 rows to %2.").arg(QLocale().toString(r->rows), path), 8000);
    return true;
}

void MainWindow::exportDialog(int format)
{
    if (!m_session)
        return;
    const bool csv = dpo::ExportFormat(format) == dpo::ExportFormat::JudgmentsCsv;
    const bool trl = dpo::ExportFormat(format) == dpo::ExportFormat::Trl;
    QSettings s;
    const QString dir = s.value(QStringLiteral("export/dir"),
                                QStandardPaths::writableLocation(QStandardPaths::DocumentsLocation))
                            .toString();
    const QString base = trl ? QStringLiteral("preferences.jsonl") : csv ? QStringLiteral("judgments.csv")
                                                                          : QStringLiteral("judgments.jsonl");
    QString path = QFileDialog::getSaveFileName(this, tr("Export"), QDir(dir).filePath(base),
                                                csv ? tr("CSV (*.csv)") : tr("JSON Lines (*.jsonl)"));
    if (path.isEmpty())
        return;
    s.setValue(QStringLiteral("export/dir"), QFileInfo(path).absolutePath());
    exportFile(path, format);
}

void MainWindow::switchAnnotator()
{
    bool ok = false;
    const QString name = QInputDialog::getText(this, tr("Switch annotator"), tr("Annotator name:"), QLineEdit::Normal,
                                               m_labelPage->annotatorName(), &ok);
    if (ok && !name.trimmed().isEmpty())
        m_labelPage->setAnnotatorName(name);
}

void MainWindow::setOverlapDialog()
{
    if (!m_session)
        return;
    bool ok = false;
    const int k = QInputDialog::getInt(this, tr("Annotations per pair"),
                                       tr("How many different annotators should judge each pair?\n"
                                          "(2 or more lets DPO Studio measure agreement.)"),
                                       m_session->store().overlap(), 1, 20, 1, &ok);
    if (!ok)
        return;
    try {
        m_session->store().setOverlap(k);
        emit m_session->contentChanged();
    } catch (const std::exception &e) {
        QMessageBox::warning(this, tr("Annotations per pair"), QString::fromUtf8(e.what()));
    }
}

void MainWindow::showShortcuts()
{
    auto *sheet = new ShortcutSheet(ShortcutSheet::collect(this), this);
    sheet->setAttribute(Qt::WA_DeleteOnClose);
    sheet->open();
}
