// Fuzz target: one preference row (parsePreferenceLine), then TRL tokenization and truncation of
// what it accepted with the GPT-2 test tokenizer.
#include "engine/data/preference_data.h"
#include "engine/tokenizers/tokenizer.h"

#include "fuzz_util.h"

#include <memory>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const std::unique_ptr<dpo::Tokenizer> tok = dpo::loadTokenizer(std::string(DPO_TEST_DATA_DIR) + "/gpt2/ref");
    const std::string text(reinterpret_cast<const char *>(data), size);
    dpofuzz::expectOnlyDpoErrors([&] {
        const dpo::PreferenceRow row = dpo::parsePreferenceLine(text, "fuzz.jsonl", 1);
        dpo::TruncationOptions trunc;
        trunc.maxLength = 48;
        trunc.mode = (size % 2) ? "keep_end" : "keep_start";
        const dpo::TokenizedPair pair = dpo::tokenizePair(*tok, row, trunc);
        (void)pair.chosen.ids.size();
    });
    return 0;
}
