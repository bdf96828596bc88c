// dpo-studio: the GUI. Thin: set up the application, parse the command line, open the main window.
//
//   dpo-studio [PROJECT]                 a .dpo file or a postgresql:// URL; default: the most recent
//                                        project, else the bundled demo project
//   --page N                             start on page N (1 = Label, 2 = Data, ...)
//   --annotator NAME                     label as NAME (otherwise asked on first use)
//   --screenshot FILE.png [--delay MS]   render the window, save it, quit (docs and visual checks)
// libtorch first: Qt's `slots` macro would otherwise break its headers.
#include "engine/runtime.h"

#include "ui/label/labelpage.h"
#include "ui/shell/mainwindow.h"

#include <QApplication>
#include <QCommandLineParser>
#include <QPixmap>
#include <QScreen>
#include <QTimer>

int main(int argc, char **argv)
{
    QApplication app(argc, argv);
    QApplication::setApplicationName("DPO Studio");
    QApplication::setOrganizationName("DPO Studio");
    QApplication::setApplicationVersion(QStringLiteral(DPO_STUDIO_VERSION));

    QCommandLineParser cli;
    cli.setApplicationDescription(QStringLiteral("Label preference pairs, train with DPO, evaluate blind."));
    cli.addHelpOption();
    cli.addVersionOption();
    cli.addPositionalArgument(QStringLiteral("project"), QStringLiteral("A .dpo project file or a postgresql:// URL."));
    QCommandLineOption page(QStringLiteral("page"), QStringLiteral("Start on page N (1-based)."), QStringLiteral("N"));
    QCommandLineOption annotator(
        QStringLiteral("annotator"), QStringLiteral("Annotator name."), QStringLiteral("NAME"));
    QCommandLineOption shot(
        QStringLiteral("screenshot"), QStringLiteral("Save the window as PNG and quit."), QStringLiteral("FILE"));
    QCommandLineOption delay(QStringLiteral("delay"), QStringLiteral("Milliseconds before --screenshot."),
        QStringLiteral("MS"), QStringLiteral("1500"));
    cli.addOptions({ page, annotator, shot, delay });
    cli.process(app);

    dpo::initRuntime();
    MainWindow window;
    if (cli.isSet(shot)) {
        // Armed before the project opens, so a dialog raised while opening shows up too: the whole
        // screen is grabbed where the platform allows it (X11), else just the window.
        QTimer::singleShot(cli.value(delay).toInt(), &window, [&]() {
            QPixmap pm;
            if (QScreen *screen = QGuiApplication::primaryScreen())
                pm = screen->grabWindow(0);
            if (pm.isNull() || QGuiApplication::platformName() == QLatin1String("offscreen"))
                pm = window.grab();
            QApplication::exit(pm.save(cli.value(shot)) ? 0 : 1);
        });
    }
    if (cli.isSet(annotator))
        window.labelPage()->setAnnotatorName(cli.value(annotator));
    // The window first, then the project: opening a team project may wait on its server (behind a
    // cancellable "Connecting…" dialog), and that dialog belongs in front of the window, not alone.
    window.show();
    const QString startup = cli.positionalArguments().value(0);
    const int startPage = cli.isSet(page) ? cli.value(page).toInt() - 1 : -1;
    QTimer::singleShot(0, &window, [&window, startup, startPage]() {
        window.openStartupProject(startup);
        if (startPage >= 0)
            window.setCurrentPage(startPage);
    });
    return QApplication::exec();
}
