// Fuzz target: the safetensors header (SafetensorsFile::open). The input is the header JSON; the file
// is the 8-byte little-endian length, the header and 256 bytes of data, so offsets can be valid and
// every tensor the header describes is also handed out (tensor()).
#include "engine/io/safetensors.h"

#include "fuzz_util.h"

#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    std::string bytes(8, '\0');
    for (int i = 0; i < 8; ++i)
        bytes[size_t(i)] = char((uint64_t(size) >> (8 * i)) & 0xff);
    bytes.append(reinterpret_cast<const char *>(data), size);
    bytes.append(256, '\x01');
    const std::string path = dpofuzz::writeScratch("model.safetensors",
        reinterpret_cast<const uint8_t *>(bytes.data()), bytes.size());
    dpofuzz::expectOnlyDpoErrors([&] {
        const dpo::SafetensorsFile f = dpo::SafetensorsFile::open(path);
        for (const auto &name : f.names()) {
            const torch::Tensor t = f.tensor(name);
            (void)t.numel();
        }
        (void)f.metadata();
    });
    return 0;
}
