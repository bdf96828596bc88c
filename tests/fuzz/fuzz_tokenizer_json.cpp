// Fuzz target: tokenizer.json (BpeTokenizer::fromTokenizerJson), then a short encode/decode round
// with what it accepted.
#include "engine/tokenizers/bpe_tokenizer.h"

#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const std::string path = dpofuzz::writeScratch("tokenizer.json", data, size);
    dpofuzz::expectOnlyDpoErrors([&] {
        const auto tok = dpo::BpeTokenizer::fromTokenizerJson(path);
        const auto ids = tok->encode("Hello world, 123 <|endoftext|> \xC3\xA9t\xC3\xA9  x");
        (void)tok->decode(ids, false);
        (void)tok->vocabSize();
    });
    return 0;
}
