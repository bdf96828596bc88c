// The checkpoint folders of a run directory, without libtorch (the Train page asks about them on the GUI
// thread): the newest complete checkpoint-N, and the temporary folders a kill during checkpointing or the
// final save leaves behind. The trainer writes them (dpo_trainer.cpp); this only reads and cleans up.
#pragma once

#include <string>
#include <vector>

namespace dpo {

// Newest complete checkpoint-N directory in outputDir (one with trainer_state.json), or "" (incomplete
// *.tmp ones are ignored).
std::string latestCheckpoint(const std::string &outputDir);

// Removes the temporary folders a kill left in outputDir (names as saveCheckpoint / savePretrained give
// them; a PID-tagged folder of a live process is kept) and returns their paths.
std::vector<std::string> removeStaleCheckpointTemps(const std::string &outputDir);

} // namespace dpo
