// Shared by the fuzz targets: a private scratch folder per process, and the rule every target
// enforces: bad input may only ever end in a dpo::Error. Anything else (another exception type, a
// crash, a sanitizer report, a hang) is a finding.
#pragma once

#include "engine/error.h"

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

namespace dpofuzz {

inline const std::filesystem::path &scratchDir()
{
    static const std::filesystem::path dir = [] {
        std::string tmpl = (std::filesystem::temp_directory_path() / "dpo_fuzz_XXXXXX").string();
        if (!::mkdtemp(tmpl.data()))
            std::abort();
        std::atexit([] {
            std::error_code ec;
            std::filesystem::remove_all(scratchDir(), ec);
        });
        return std::filesystem::path(tmpl);
    }();
    return dir;
}

inline std::string writeScratch(const std::string &name, const uint8_t *data, size_t size)
{
    const std::string path = (scratchDir() / name).string();
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char *>(data), std::streamsize(size));
    out.close();
    if (!out)
        std::abort();
    return path;
}

// Runs f; a dpo::Error is the expected way to refuse input, anything else escapes (and is reported).
template <typename F> void expectOnlyDpoErrors(F &&f)
{
    try {
        f();
    } catch (const dpo::Error &) {
    }
}

} // namespace dpofuzz
