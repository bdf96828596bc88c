// dpo::Error: the one exception type the engine throws for bad input (files, rows, settings).
// Its message is meant for users: it names the file, line or field at fault. Callers (dpo-cli,
// the GUI) print it as one line; nothing else in the engine should terminate the process.
#pragma once

#include <stdexcept>
#include <string>

namespace dpo {

class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

} // namespace dpo
