// Fuzz target: config.json (ModelConfig::fromDirectory) and writing it back (toJson).
#include "engine/models/model_config.h"

#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dpofuzz::writeScratch("config.json", data, size);
    dpofuzz::expectOnlyDpoErrors([&] {
        const dpo::ModelConfig c = dpo::ModelConfig::fromDirectory(dpofuzz::scratchDir().string());
        (void)c.toJson().dump();
    });
    return 0;
}
