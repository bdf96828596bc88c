// The --source=FILE.cpp flag of the merged test executables (engine/test_main.cpp,
// qt/qt_test_main.cpp): CTest runs one test file's tests by naming the file.
#pragma once

#include <cstring>
#include <string>

namespace dpotest {

inline std::string baseName(const char *path)
{
    const char *slash = std::strrchr(path, '/');
    return slash ? slash + 1 : path;
}

// Removes --source=NAME from argv (argc shrinks); returns NAME, "" when absent.
inline std::string takeSourceFlag(int &argc, char **argv)
{
    static const char flag[] = "--source=";
    std::string source;
    int kept = 1;
    for (int i = 1; i < argc; ++i) {
        if (std::strncmp(argv[i], flag, sizeof flag - 1) == 0)
            source = argv[i] + sizeof flag - 1;
        else
            argv[kept++] = argv[i];
    }
    argc = kept;
    argv[argc] = nullptr;
    return source;
}

} // namespace dpotest
