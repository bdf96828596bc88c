// main() of dpo_engine_tests, the one executable that holds every engine test file. The files compile
// in unity batches (one libtorch/gtest template instantiation per batch, not per file) and link once;
// CTest still runs each file as its own test: `dpo_engine_tests --source=test_lora.cpp` keeps only the
// tests defined in test_lora.cpp. Without --source every test runs; --gtest_filter works as usual and
// narrows --source further.
#include <gtest/gtest.h>

#include <cstring>
#include <iostream>
#include <string>

namespace {

std::string baseName(const char *path)
{
    const char *slash = std::strrchr(path, '/');
    return slash ? slash + 1 : path;
}

// Removes --source=NAME from argv; returns NAME ("" when absent).
std::string takeSourceFlag(int &argc, char **argv)
{
    static const char flag[] = "--source=";
    std::string source;
    int out = 1;
    for (int i = 1; i < argc; ++i) {
        if (std::strncmp(argv[i], flag, sizeof flag - 1) == 0)
            source = argv[i] + sizeof flag - 1;
        else
            argv[out++] = argv[i];
    }
    argc = out;
    argv[argc] = nullptr;
    return source;
}

} // namespace

int main(int argc, char **argv)
{
    const std::string source = takeSourceFlag(argc, argv);
    ::testing::InitGoogleTest(&argc, argv);
    if (source.empty())
        return RUN_ALL_TESTS();

    // A negative filter of every test defined elsewhere, appended to the user's filter, so both apply.
    const ::testing::UnitTest &unit = *::testing::UnitTest::GetInstance();
    std::string others;
    int mine = 0;
    for (int s = 0; s < unit.total_test_suite_count(); ++s) {
        const ::testing::TestSuite &suite = *unit.GetTestSuite(s);
        for (int t = 0; t < suite.total_test_count(); ++t) {
            const ::testing::TestInfo &info = *suite.GetTestInfo(t);
            if (baseName(info.file()) == source) {
                ++mine;
            } else {
                others += others.empty() ? "" : ":";
                others += std::string(info.test_suite_name()) + "." + info.name();
            }
        }
    }
    if (mine == 0) {
        std::cerr << "dpo_engine_tests: no test is defined in " << source << '\n';
        return 2;
    }
    std::string filter = ::testing::GTEST_FLAG(filter);
    if (!others.empty())
        filter += (filter.find('-') == std::string::npos ? "-" : ":") + others;
    ::testing::GTEST_FLAG(filter) = filter;
    return RUN_ALL_TESTS();
}
