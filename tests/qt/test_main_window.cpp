// MainWindow on real widgets (offscreen): opening a project hands it to the pages, Ctrl+N switches
// pages, settings (geometry, page, recent projects) persist without passwords, the demo project is
// created on first start, import runs in the background with the skip-or-abort choice, export writes.
#include "project/project_store.h"
#include "ui/data/datapage.h"
#include "ui/label/labelpage.h"
#include "ui/shell/mainwindow.h"
#include "ui/widgets/pagedtablemodel.h"

#include <QAbstractButton>
#include <QFile>
#include <QMessageBox>
#include <QSettings>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QTimer>
#include "qt_test_main.h"

#include <QtTest>

namespace test_main_window { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

using namespace dpo;

class TestMainWindow : public QObject {
    Q_OBJECT
private slots:
    void initTestCase();
    void init();
    void opensProjectAndSwitchesPages();
    void settingsPersisted();
    void passwordNeverPersisted();
    void demoProjectOnFirstStart();
    void importWithBadRowsSkip();
    void importWithBadRowsAbort();
    void exportTrl();
    void dataPageListsAndSearches();

private:
    QString makeProject(int pairs);
    QString writeFile(const QString &name, const QByteArray &content);
    std::unique_ptr<QTemporaryDir> m_dir;
};

void TestMainWindow::initTestCase()
{
    QStandardPaths::setTestModeEnabled(true);
    QCoreApplication::setOrganizationName(QStringLiteral("DPO Studio Tests"));
    QCoreApplication::setApplicationName(QStringLiteral("test_main_window"));
}

void TestMainWindow::init()
{
    QSettings().clear();
    QSettings().setValue(QStringLiteral("label/annotator"), QStringLiteral("tester"));
    m_dir = std::make_unique<QTemporaryDir>();
    QVERIFY(m_dir->isValid());
}

QString TestMainWindow::makeProject(int pairs)
{
    const QString path = m_dir->filePath(QStringLiteral("p%1.dpo").arg(pairs));
    auto store = ProjectStore::open(path);
    ProjectStore::Transaction tx(*store);
    for (int i = 0; i < pairs; ++i) {
        const qint64 p = store->addPrompt(QStringLiteral("prompt %1").arg(i));
        store->addPair(p, store->addCompletion(p, QStringLiteral("good %1").arg(i)),
            store->addCompletion(p, QStringLiteral("bad %1").arg(i)));
    }
    tx.commit();
    return path;
}

QString TestMainWindow::writeFile(const QString &name, const QByteArray &content)
{
    const QString path = m_dir->filePath(name);
    QFile f(path);
    if (!f.open(QIODevice::WriteOnly))
        return {};
    f.write(content);
    return path;
}

void TestMainWindow::opensProjectAndSwitchesPages()
{
    const QString path = makeProject(5);
    MainWindow w;
    w.show();
    w.activateWindow();
    QVERIFY(QTest::qWaitForWindowActive(&w));
    QVERIFY(!w.session());
    QVERIFY(w.openProject(path));
    QVERIFY(w.session());
    QVERIFY(w.windowTitle().contains(QStringLiteral("p5.dpo")));
    QVERIFY(w.labelPage()->currentPair().has_value());
    QVERIFY(w.pageCount() >= 2); // Label and Data; later issues register more
    QCOMPARE(w.pageName(0), QStringLiteral("Label"));
    QCOMPARE(w.currentPage(), 0);

    QTest::keyClick(&w, Qt::Key_2, Qt::ControlModifier);
    QCOMPARE(w.currentPage(), 1);
    QCOMPARE(w.pageName(1), QStringLiteral("Data"));
    QTest::keyClick(&w, Qt::Key_1, Qt::ControlModifier);
    QCOMPARE(w.currentPage(), 0);
    // A key on the Label page reaches it through the window.
    const qint64 pair = w.labelPage()->currentPair()->pairId;
    QTest::keyClick(w.labelPage(), Qt::Key_1);
    QCOMPARE(w.session()->store().judgmentsOfPair(pair).size(), 1);
    // Registering another page gives it the next shortcut.
    const int n = w.pageCount();
    QVERIFY(n < 9);
    auto *extra = new QWidget;
    QCOMPARE(w.addPage(QStringLiteral("Extra"), QIcon(), extra), n);
    QTest::keyClick(&w, Qt::Key(Qt::Key_1 + n), Qt::ControlModifier);
    QCOMPARE(w.currentPage(), n);
    QCOMPARE(w.page(n), extra);
    // A failing open keeps the current project.
    QString err;
    QVERIFY(!w.openProject(m_dir->filePath(QStringLiteral("no/such/dir/x.dpo")), &err));
    QVERIFY(!err.isEmpty());
    QVERIFY(w.session());
}

void TestMainWindow::settingsPersisted()
{
    const QString path = makeProject(3);
    QSize size;
    {
        MainWindow w;
        w.show();
        QVERIFY(QTest::qWaitForWindowExposed(&w));
        w.resize(1310, 707); // not the default; pages' minimum sizes may widen it
        size = w.size();
        QVERIFY(size != QSize(1280, 820));
        QVERIFY(w.openProject(path));
        w.setCurrentPage(1);
        w.close();
    }
    MainWindow w2;
    QCOMPARE(w2.currentPage(), 1);
    QCOMPARE(w2.size(), size);
    QCOMPARE(w2.recentProjects().value(0), QFileInfo(path).absoluteFilePath());
    // Start-up reopens the most recent project.
    w2.openStartupProject();
    QVERIFY(w2.session());
    QCOMPARE(QFileInfo(w2.session()->location()).absoluteFilePath(), QFileInfo(path).absoluteFilePath());
    QCOMPARE(w2.labelPage()->annotatorName(), QStringLiteral("tester"));
}

void TestMainWindow::passwordNeverPersisted()
{
    QCOMPARE(MainWindow::stripPassword(QStringLiteral("postgresql://bob:s3cret@db.example:5432/labels")),
        QStringLiteral("postgresql://bob@db.example:5432/labels"));
    QCOMPARE(MainWindow::stripPassword(QStringLiteral("/tmp/a.dpo")), QStringLiteral("/tmp/a.dpo"));
    MainWindow w;
    // The open fails (no server), and nothing with the password lands in the settings file.
    QString err;
    QVERIFY(!w.openProject(QStringLiteral("postgresql://bob:s3cret@127.0.0.1:1/labels"), &err));
    w.close();
    QSettings s;
    s.sync();
    QFile f(s.fileName());
    if (f.open(QIODevice::ReadOnly))
        QVERIFY(!f.readAll().contains("s3cret"));
}

void TestMainWindow::demoProjectOnFirstStart()
{
    QFile::remove(MainWindow::demoProjectPath());
    MainWindow w;
    w.openStartupProject(); // no recent projects: the demo
    QVERIFY(w.session());
    QCOMPARE(w.session()->location(), MainWindow::demoProjectPath());
    QVERIFY(w.session()->location().startsWith(QStandardPaths::writableLocation(QStandardPaths::AppDataLocation)));
    const Counts c = w.session()->store().counts();
    QVERIFY2(c.pairs >= 30, qPrintable(QString::number(c.pairs)));
    QCOMPARE(c.labelSlots, c.pairs); // open pairs, ready to label
    QVERIFY(!w.session()->store().guidelines().isEmpty());
    QVERIFY(w.labelPage()->currentPair().has_value());
    QVERIFY(w.recentProjects().isEmpty()); // the demo is not a "recent project"
}

static const QByteArray badTrl = "{\"prompt\":\"p1\",\"chosen\":\"c1\",\"rejected\":\"r1\"}\n"
                                 "{not json\n"
                                 "{\"prompt\":\"p2\",\"chosen\":\"c2\",\"rejected\":\"r2\"}\n"
                                 "{\"prompt\":\"p3\",\"chosen\":\"\",\"rejected\":\"r3\"}\n";

// Answers the bad-rows question box with the button whose text starts with `which`.
static void answerBadRows(const QString &which, QString *seenText)
{
    QTimer::singleShot(50, [which, seenText]() {
        auto *box = qobject_cast<QMessageBox *>(QApplication::activeModalWidget());
        if (!box) {
            answerBadRows(which, seenText);
            return;
        }
        *seenText = box->text() + QLatin1Char('\n') + box->informativeText();
        for (QAbstractButton *b : box->buttons())
            if (b->text().startsWith(which))
                b->click();
    });
}

void TestMainWindow::importWithBadRowsSkip()
{
    MainWindow w;
    w.show();
    QVERIFY(w.openProject(makeProject(2)));
    const QString path = writeFile(QStringLiteral("bad.jsonl"), badTrl);
    QString seen;
    answerBadRows(QStringLiteral("Skip"), &seen);
    QVERIFY(w.importFile(path, int(ImportFormat::Trl)));
    QVERIFY2(seen.contains(QStringLiteral("line 2")), qPrintable(seen));
    QVERIFY2(seen.contains(QStringLiteral("line 4")), qPrintable(seen));
    const Counts c = w.session()->store().counts();
    QCOMPARE(c.prejudgedPairs, 2); // p1 and p2
}

void TestMainWindow::importWithBadRowsAbort()
{
    MainWindow w;
    w.show();
    QVERIFY(w.openProject(makeProject(2)));
    const Counts before = w.session()->store().counts();
    const QString path = writeFile(QStringLiteral("bad.jsonl"), badTrl);
    QString seen;
    answerBadRows(QStringLiteral("Abort"), &seen);
    QVERIFY(!w.importFile(path, int(ImportFormat::Trl)));
    QVERIFY(seen.contains(QStringLiteral("line 2")));
    const Counts after = w.session()->store().counts();
    QCOMPARE(after.pairs, before.pairs); // nothing half-imported
    QCOMPARE(after.prompts, before.prompts);
}

void TestMainWindow::exportTrl()
{
    MainWindow w;
    w.show();
    QVERIFY(w.openProject(makeProject(0)));
    const QString in = writeFile(QStringLiteral("good.jsonl"),
        "{\"prompt\":\"p1\",\"chosen\":\"c1\",\"rejected\":\"r1\"}\n"
        "{\"prompt\":\"p2\",\"chosen\":\"c2\",\"rejected\":\"r2\"}\n");
    QVERIFY(w.importFile(in, int(ImportFormat::Auto)));
    const QString out = m_dir->filePath(QStringLiteral("out.jsonl"));
    QVERIFY(w.exportFile(out, int(ExportFormat::Trl)));
    QFile f(out);
    QVERIFY(f.open(QIODevice::ReadOnly));
    const QList<QByteArray> lines = f.readAll().trimmed().split('\n');
    QCOMPARE(lines.size(), 2);
    QVERIFY(lines[0].contains("\"chosen\"") && lines[0].contains("c1"));
}

void TestMainWindow::dataPageListsAndSearches()
{
    MainWindow w;
    w.show();
    QVERIFY(w.openProject(makeProject(30)));
    w.setCurrentPage(1);
    DataPage *d = w.dataPage();
    d->setView(DataPage::Pairs);
    QTRY_COMPARE(d->model()->total(), 30);
    d->setSearch(QStringLiteral("prompt 2")); // "prompt 2", "prompt 20".."prompt 29"
    QTRY_COMPARE(d->model()->total(), 11);
    QTRY_VERIFY(d->summaryText().contains(QStringLiteral("Sanity checks")));
    d->setView(DataPage::Prompts);
    QTRY_COMPARE(d->model()->total(), 11);
}

DPO_TEST_MAIN(TestMainWindow)

} // namespace test_main_window

#include "test_main_window.moc"
