// The Qt test classes are linked into two executables, dpo_project_tests (QCoreApplication) and
// dpo_gui_tests (QApplication), so their files compile in unity batches and link once. A file ends with
// DPO_TEST_MAIN(TestClass) instead of QTEST_MAIN; `dpo_gui_tests --source=test_label_page.cpp [qtest
// arguments]` runs that file's class as QTEST_MAIN would (CTest runs each file so, under its name).
#pragma once

#include <QObject>

#include <functional>
#include <memory>

namespace dpotest {

using QtTestFactory = std::function<std::unique_ptr<QObject>()>;

// Registers the test class of `sourceFile` (__FILE__); returns a dummy for static initialization.
int registerQtTest(const char *sourceFile, QtTestFactory factory);

} // namespace dpotest

#define DPO_TEST_MAIN(TestObject)                                                                                      \
    static const int dpoQtTestRegistered_##TestObject                                                                  \
        = dpotest::registerQtTest(__FILE__, [] { return std::unique_ptr<QObject>(new TestObject); });
