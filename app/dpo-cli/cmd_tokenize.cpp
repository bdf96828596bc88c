// dpo-cli tokenize --model DIR --text TEXT [--special] [--decode]
// Prints {"ids":[...]} (plain encoding unless --special adds the tokenizer's BOS/EOS) and, with
// --decode, "text": the ids decoded back (special tokens skipped).
#include "commands.h"

#include "engine/tokenizers/tokenizer.h"
#include "engine/tokenizers/utf8.h"

namespace {

struct TokenizeOptions {
    std::string model;
    std::string text;
    bool special = false;
    bool decode = false;
};

dpocli::CommandRegistrar regTokenize([](CLI::App &app) {
    auto opts = std::make_shared<TokenizeOptions>();
    CLI::App *cmd = app.add_subcommand("tokenize", "Encode text with a model's tokenizer and print the ids as JSON");
    cmd->add_option("--model", opts->model, "Model folder (tokenizer.model or tokenizer.json)")->required();
    cmd->add_option("--text", opts->text, "UTF-8 text to encode")->required();
    cmd->add_flag("--special", opts->special, "Add the tokenizer's special tokens (BOS/EOS), as HF tokenizer(text)");
    cmd->add_flag("--decode", opts->decode, "Also print the ids decoded back to text");
    cmd->callback([opts] {
        // Checked before loading so that bad input fails fast whatever the model folder holds.
        dpo::requireUtf8(opts->text, "--text");
        auto tok = dpo::loadTokenizer(opts->model);
        const std::vector<int64_t> ids = opts->special ? tok->encodeWithSpecial(opts->text) : tok->encode(opts->text);
        nlohmann::json out;
        out["ids"] = ids;
        if (opts->decode)
            out["text"] = tok->decode(ids, true);
        dpocli::printJson(out);
    });
});

} // namespace
