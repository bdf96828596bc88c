// Shared helpers for engine tests: fixture paths, JSON loading, running dpo-cli.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <string>

namespace dpotest {

inline std::string dataDir() { return DPO_TEST_DATA_DIR; }
inline std::string fixture(const std::string &rel) { return std::string(DPO_TEST_DATA_DIR) + "/" + rel; }
#ifdef DPO_CLI_PATH
inline std::string cliPath() { return DPO_CLI_PATH; }
#endif

inline nlohmann::json readJson(const std::string &path)
{
    std::ifstream f(path);
    return nlohmann::json::parse(f);
}

struct CommandResult {
    int exitCode = -1;
    std::string out; // stdout
    std::string err; // stderr
};

// Runs `cmd` through the shell, capturing stdout and stderr separately.
CommandResult runCommand(const std::string &cmd);

} // namespace dpotest
