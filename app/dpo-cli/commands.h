// Subcommand registry for dpo-cli: each cmd_*.cpp adds its subcommand to the CLI11 app through a
// static CommandRegistrar, so adding a command touches no shared file.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <iostream>
#include <string>
#include <vector>

namespace dpocli {

using CommandSetup = std::function<void(CLI::App &app)>;

std::vector<CommandSetup> &commandSetups();

struct CommandRegistrar {
    explicit CommandRegistrar(CommandSetup setup) { commandSetups().push_back(std::move(setup)); }
};

// dpo-cli's global --threads (0 = all cores when not given), for the commands that set up the runtime.
inline int globalThreads(CLI::App &app)
{
    if (auto *t = app.get_option_no_throw("--threads"); t && t->count())
        return t->as<int>();
    return 0;
}

// Prints one JSON document on stdout (compact, one line) and flushes.
inline void printJson(const nlohmann::json &j)
{
    std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
}

} // namespace dpocli
