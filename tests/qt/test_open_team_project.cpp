// MainWindow::openProject on a PostgreSQL server that accepts the connection and never answers (a plain
// listening socket): the window keeps handling events while it waits (the connect runs on a worker thread
// behind a cancellable progress dialog), the open fails after the URL's connect_timeout with a reason, and
// Cancel gives up without opening anything.
#include "ui/shell/mainwindow.h"

#include <QElapsedTimer>
#include <QProgressDialog>
#include <QPushButton>
#include <QSettings>
#include <QStandardPaths>
#include <QTimer>
#include "qt_test_main.h"

#include <QtTest>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace test_open_team_project { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

class TestOpenTeamProject : public QObject {
    Q_OBJECT
private slots:
    void initTestCase();
    void cleanupTestCase();
    void silentServerKeepsWindowResponsive();
    void cancelWhileConnecting();

private:
    QString silentUrl() const
    {
        return QStringLiteral("postgresql://dpo:pw@127.0.0.1:%1/labels?connect_timeout=2").arg(m_port);
    }
    int m_fd = -1;
    int m_port = 0;
};

void TestOpenTeamProject::initTestCase()
{
    QStandardPaths::setTestModeEnabled(true);
    QCoreApplication::setOrganizationName(QStringLiteral("DPO Studio Tests"));
    QCoreApplication::setApplicationName(QStringLiteral("test_open_team_project"));
    QSettings().clear();
    // The kernel completes the TCP handshake for a listening socket without accept(): libpq connects,
    // sends its startup packet and waits for an answer that never comes.
    m_fd = ::socket(AF_INET, SOCK_STREAM, 0);
    QVERIFY(m_fd >= 0);
    sockaddr_in addr {};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    QVERIFY(::bind(m_fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) == 0);
    QVERIFY(::listen(m_fd, 16) == 0);
    socklen_t len = sizeof addr;
    QVERIFY(::getsockname(m_fd, reinterpret_cast<sockaddr *>(&addr), &len) == 0);
    m_port = ntohs(addr.sin_port);
}

void TestOpenTeamProject::cleanupTestCase()
{
    if (m_fd >= 0)
        ::close(m_fd);
}

void TestOpenTeamProject::silentServerKeepsWindowResponsive()
{
    MainWindow w;
    w.show();
    QVERIFY(QTest::qWaitForWindowExposed(&w));
    int ticks = 0;
    QTimer timer;
    timer.setInterval(50);
    connect(&timer, &QTimer::timeout, this, [&ticks]() { ++ticks; });
    timer.start();
    QElapsedTimer t;
    t.start();
    QString err;
    QVERIFY(!w.openProject(silentUrl(), &err));
    const qint64 ms = t.elapsed();
    // It waited for the server (connect_timeout=2 from the URL, not the default 10)...
    QVERIFY2(ms >= 1500 && ms < 9000, qPrintable(QStringLiteral("returned after %1 ms").arg(ms)));
    // ...while the GUI thread kept running its event loop (a blocking open gives 0 ticks).
    QVERIFY2(ticks >= ms / 50 / 3, qPrintable(QStringLiteral("%1 timer ticks in %2 ms").arg(ticks).arg(ms)));
    QVERIFY2(err.contains(QStringLiteral("cannot open")), qPrintable(err));
    QVERIFY2(!err.contains(QStringLiteral("pw@")), qPrintable(err)); // the password is masked
    QVERIFY(w.windowTitle().startsWith(QStringLiteral("DPO Studio"))); // nothing opened
}

void TestOpenTeamProject::cancelWhileConnecting()
{
    MainWindow w;
    w.show();
    QVERIFY(QTest::qWaitForWindowExposed(&w));
    bool sawDialog = false;
    // The progress dialog appears after 300 ms; press its Cancel once it is there.
    QTimer cancel;
    cancel.setInterval(100);
    connect(&cancel, &QTimer::timeout, this, [&]() {
        for (QWidget *top : QApplication::topLevelWidgets())
            if (auto *dlg = qobject_cast<QProgressDialog *>(top); dlg && dlg->isVisible() && !sawDialog) {
                sawDialog = true;
                if (auto *button = dlg->findChild<QPushButton *>())
                    button->click(); // as the user would (QProgressDialog::cancel() does not emit canceled)
            }
    });
    cancel.start();
    QString err;
    QVERIFY(!w.openProject(silentUrl(), &err));
    QVERIFY(sawDialog);
    QVERIFY2(err.contains(QStringLiteral("cancelled")), qPrintable(err));
}

DPO_TEST_MAIN(TestOpenTeamProject)

} // namespace test_open_team_project

#include "test_open_team_project.moc"
