// dpo-studio: the GUI. Thin: set up the application, open the main window.
#include "ui/mainwindow.h"

#include "engine/runtime.h"

#include <QApplication>

int main(int argc, char **argv)
{
    QApplication app(argc, argv);
    QApplication::setApplicationName("DPO Studio");
    QApplication::setOrganizationName("DPO Studio");
    dpo::initRuntime();
    MainWindow window;
    window.show();
    return QApplication::exec();
}
