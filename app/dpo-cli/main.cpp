// dpo-cli: thin command-line user of the engine. Every failure is one line on stderr
// ("dpo-cli: error: ...") and a non-zero exit; results go to stdout as JSON.
#include "commands.h"
#include "local_launch.h"

#include "engine/error.h"
#include "engine/runtime.h"

#include <cstdlib>

namespace dpocli {
std::vector<CommandSetup> &commandSetups()
{
    static std::vector<CommandSetup> setups;
    return setups;
}

std::vector<TrainExtension> &trainExtensions()
{
    static std::vector<TrainExtension> extensions;
    return extensions;
}
} // namespace dpocli

int main(int argc, char **argv)
{
    dpocli::setCommandLine(argc, argv);
    CLI::App app{"dpo-cli: Direct Preference Optimization from the command line (DPO Studio)"};
    app.require_subcommand(1);
    app.set_version_flag("--version", std::string("dpo-cli ") + DPO_STUDIO_VERSION);
    int threads = 0;
    app.add_option("--threads", threads, "CPU threads for libtorch (0 = all cores)");
    for (auto &setup : dpocli::commandSetups())
        setup(app);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError &e) {
        return app.exit(e);
    } catch (const dpo::Error &e) {
        std::cerr << "dpo-cli: error: " << e.what() << std::endl;
        return 1;
    } catch (const c10::Error &e) {
        std::cerr << "dpo-cli: error: " << e.what_without_backtrace() << std::endl;
        return 1;
    } catch (const std::exception &e) {
        std::cerr << "dpo-cli: error: " << e.what() << std::endl;
        return 1;
    }
    return 0;
}
