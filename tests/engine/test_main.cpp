// main() of dpo_engine_tests, the one executable that holds every engine test file. The files compile
// in unity batches (one libtorch/gtest template instantiation per batch, not per file) and link once;
// CTest still runs each file as its own test: `dpo_engine_tests --source=test_lora.cpp` keeps only the
// tests defined in test_lora.cpp. Without --source every test runs; --gtest_filter works as usual and
// narrows --source further.
#include "../test_source_flag.h"

#include <gtest/gtest.h>

#include <cstring>
#include <iostream>
#include <string>
#include <tuple>
#include <vector>

using dpotest::baseName;

int main(int argc, char **argv)
{
    const std::string source = dpotest::takeSourceFlag(argc, argv);
    ::testing::InitGoogleTest(&argc, argv);
    if (source.empty())
        return RUN_ALL_TESTS();

    // The file's tests as a filter: "Suite.*" for a suite wholly in the file, names otherwise (a suite's
    // name may be shared by files). A user's --gtest_filter is kept, minus the other files' tests.
    const ::testing::UnitTest &unit = *::testing::UnitTest::GetInstance();
    std::string mine, others;
    auto add = [](std::string &list, const std::string &pattern) { list += (list.empty() ? "" : ":") + pattern; };
    for (int s = 0; s < unit.total_test_suite_count(); ++s) {
        const ::testing::TestSuite &suite = *unit.GetTestSuite(s);
        std::vector<std::string> in, out;
        for (int t = 0; t < suite.total_test_count(); ++t) {
            const ::testing::TestInfo &info = *suite.GetTestInfo(t);
            (baseName(info.file()) == source ? in : out).push_back(std::string(suite.name()) + "." + info.name());
        }
        for (auto [names, other, list] : { std::tuple(&in, &out, &mine), std::tuple(&out, &in, &others) }) {
            if (names->empty())
                continue;
            if (other->empty())
                add(*list, std::string(suite.name()) + ".*");
            else
                for (const auto &name : *names)
                    add(*list, name);
        }
    }
    if (mine.empty()) {
        std::cerr << "dpo_engine_tests: no test is defined in " << source << '\n';
        return 2;
    }
    std::string filter = ::testing::GTEST_FLAG(filter);
    if (filter == "*")
        filter = mine;
    else if (!others.empty())
        filter += (filter.find('-') == std::string::npos ? "-" : ":") + others;
    ::testing::GTEST_FLAG(filter) = filter;
    return RUN_ALL_TESTS();
}
