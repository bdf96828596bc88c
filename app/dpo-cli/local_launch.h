// `dpo-cli train --nproc N`: starts N ranks of the same command on this machine, as
// `torchrun --standalone --nproc-per-node N` would (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
// MASTER_ADDR=127.0.0.1 and a free MASTER_PORT), and supervises them.
#pragma once

#include <string>
#include <vector>

namespace dpocli {

// The process's own command line (main() records it), for relaunching ranks.
void setCommandLine(int argc, char **argv);
const std::vector<std::string> &commandLine();

// `args` without the options named in `drop` (with their values: "--opt V" or "--opt=V").
std::vector<std::string> withoutOption(const std::vector<std::string> &args, const std::string &option);

// Runs `args` (argv[0] is replaced by this executable) as `nproc` ranks and waits for them. SIGINT or
// SIGTERM to this process is passed on to every rank (they stop together with one checkpoint). When a
// rank fails, the others get `graceSeconds` to stop on their own (their collectives fail), then
// SIGTERM, then SIGKILL. Returns 0 when every rank succeeded, else the first failure's exit code (128 +
// signal for a killed rank), after one line on stderr naming the rank.
int launchLocalRanks(int nproc, const std::vector<std::string> &args, int graceSeconds);

} // namespace dpocli
