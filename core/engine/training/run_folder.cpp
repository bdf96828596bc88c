// The checkpoint folders of a run directory (see run_folder.h).
#include "engine/training/run_folder.h"

#include <cstdlib>
#include <filesystem>

#include <signal.h>
#include <unistd.h>

namespace dpo {

namespace fs = std::filesystem;

namespace {

bool allDigits(const std::string &s, size_t begin, size_t end)
{
    if (begin >= end || end > s.size())
        return false;
    for (size_t i = begin; i < end; ++i)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

// "<prefix><digits>-<digits>" (savePretrained's "-PID-K" tag); *pid gets the first number.
bool hasPidTag(const std::string &name, const std::string &prefix, long *pid)
{
    if (name.rfind(prefix, 0) != 0)
        return false;
    const size_t a = prefix.size();
    const size_t dash = name.find('-', a);
    if (dash == std::string::npos || !allDigits(name, a, dash) || !allDigits(name, dash + 1, name.size()))
        return false;
    *pid = std::strtol(name.c_str() + a, nullptr, 10);
    return true;
}

} // namespace

// The temporary folders a kill during checkpointing (or the final save) leaves in an output folder,
// recognised by exactly the names saveCheckpoint and savePretrained give them:
//   checkpoint-N.tmp                      a checkpoint being assembled
//   .checkpoint-N.tmp.tmp-PID-K           savePretrained's folder inside that
//   .checkpoint-N.tmp.old-PID-K           savePretrained's moved-aside previous folder
//   .final.tmp-PID-K                      the final model being written
// Nothing else is touched (not .final.old-*, which may hold the only copy of an earlier final model),
// and a PID-tagged folder whose process is still alive (another writer) is left alone.
std::vector<std::string> removeStaleCheckpointTemps(const std::string &outputDir)
{
    std::vector<std::string> removed;
    std::error_code ec;
    if (!fs::is_directory(outputDir, ec))
        return removed;
    for (fs::directory_iterator it(outputDir, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (!it->is_directory(ec) || it->is_symlink(ec))
            continue;
        bool ours = false;
        long pid = -1;
        if (name.rfind("checkpoint-", 0) == 0 && name.size() > 15 && name.compare(name.size() - 4, 4, ".tmp") == 0) {
            ours = allDigits(name, 11, name.size() - 4);
        } else if (name.rfind(".checkpoint-", 0) == 0) {
            const size_t dot = name.find(".tmp.", 12);
            if (dot != std::string::npos && allDigits(name, 12, dot)) {
                const std::string rest = name.substr(dot + 5); // "tmp-PID-K" or "old-PID-K"
                ours = hasPidTag(rest, "tmp-", &pid) || hasPidTag(rest, "old-", &pid);
            }
        } else {
            ours = hasPidTag(name, ".final.tmp-", &pid);
        }
        if (!ours)
            continue;
        if (pid > 0 && pid != long(::getpid()) && ::kill(pid_t(pid), 0) == 0)
            continue; // a live process may still be writing it
        std::error_code rec;
        fs::remove_all(it->path(), rec);
        if (!rec)
            removed.push_back(it->path().string());
    }
    return removed;
}

std::string latestCheckpoint(const std::string &outputDir)
{
    if (!fs::is_directory(outputDir))
        return {};
    int64_t best = -1;
    std::string bestDir;
    for (const auto &e : fs::directory_iterator(outputDir)) {
        const std::string name = e.path().filename().string();
        if (!e.is_directory() || name.rfind("checkpoint-", 0) != 0 || name.find(".tmp") != std::string::npos)
            continue;
        if (!fs::exists(e.path() / "trainer_state.json"))
            continue;
        const int64_t step = std::atoll(name.c_str() + 11);
        if (step > best) {
            best = step;
            bestDir = e.path().string();
        }
    }
    return bestDir;
}

} // namespace dpo
