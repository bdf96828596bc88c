// Subcommand registry for dpo-cli: each cmd_*.cpp adds its subcommand to the CLI11 app through a
// static CommandRegistrar, so adding a command touches no shared file.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <iostream>
#include <string>
#include <vector>

namespace dpo {
struct TrainConfig;
}

namespace dpocli {

using CommandSetup = std::function<void(CLI::App &app)>;

std::vector<CommandSetup> &commandSetups();

struct CommandRegistrar {
    explicit CommandRegistrar(CommandSetup setup) { commandSetups().push_back(std::move(setup)); }
};

// `dpo-cli train` options contributed by another file, so that cmd_train.cpp builds without Qt (e.g.
// qcmd_train_project.cpp: --project). prepare() runs on the parsed config before validation and may set
// its data paths; it returns what to call around the training (members may be empty).
struct TrainRunHooks {
    std::function<void()> beforeTraining; // after validation, before the trainer reads the data
    std::function<void(const nlohmann::json &metrics)> onMetrics;
    std::function<void(const std::string &status)> afterTraining; // "completed", "stopped" or "failed"
};
struct TrainExtension {
    std::function<void(CLI::App *cmd)> addOptions;
    std::function<TrainRunHooks(dpo::TrainConfig &config)> prepare;
};
std::vector<TrainExtension> &trainExtensions();

// Registers at static initialisation, before any command is set up.
struct TrainExtensionRegistrar {
    explicit TrainExtensionRegistrar(TrainExtension extension) { trainExtensions().push_back(std::move(extension)); }
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
