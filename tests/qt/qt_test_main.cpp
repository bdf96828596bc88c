// main() of dpo_gui_tests and dpo_project_tests (see qt_test_main.h). DPO_TEST_GUI selects QApplication.
#include "qt_test_main.h"

#include "../test_source_flag.h"

#include <QtTest>
#ifdef DPO_TEST_GUI
#include <QApplication>
#endif

#include <cstdio>
#include <cstring>
#include <map>
#include <string>

namespace {

std::map<std::string, dpotest::QtTestFactory> &registry()
{
    static std::map<std::string, dpotest::QtTestFactory> tests;
    return tests;
}

} // namespace

int dpotest::registerQtTest(const char *sourceFile, QtTestFactory factory)
{
    registry()[dpotest::baseName(sourceFile)] = std::move(factory);
    return 0;
}

int main(int argc, char **argv)
{
    // --source=NAME.cpp picks the class; everything else goes to QTest::qExec.
    const std::string source = dpotest::takeSourceFlag(argc, argv);
    const auto found = registry().find(source);
    if (found == registry().end()) {
        std::fprintf(stderr, "usage: %s --source=FILE.cpp [qtest arguments]\nFILE.cpp is one of:\n", argv[0]);
        for (const auto &entry : registry())
            std::fprintf(stderr, "  %s\n", entry.first.c_str());
        return 2;
    }

    // What QTEST_MAIN / QTEST_GUILESS_MAIN do, with the application named after the test file as it was
    // when each file was its own executable.
#ifdef DPO_TEST_GUI
    QApplication app(argc, argv);
    app.setAttribute(Qt::AA_Use96Dpi, true);
#else
    QCoreApplication app(argc, argv);
#endif
    QCoreApplication::setApplicationName(
        QString::fromStdString(source.substr(0, source.size() - (source.size() > 4 ? 4 : 0))));
    const std::unique_ptr<QObject> test = found->second();
    return QTest::qExec(test.get(), argc, argv);
}
