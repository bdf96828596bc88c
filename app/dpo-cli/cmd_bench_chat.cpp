// dpo-cli bench-chat --model DIR [--rows 100000] [--chat-template FILE] [--write FILE.jsonl]
// Data preparation throughput of conversational rows on one thread, as `train` does it: parse the
// JSONL line, render prompt and prompt + completion with the chat template (three renders per row),
// tokenize, slice (TRL 1.x's rule, engine/data/preference_data.h). The rows are synthetic and
// deterministic: a user question, a system message in every third row, a prior exchange in every fifth,
// completions of 10-60 words. Baseline in the same run: the same rows as standard text rows (EOS as
// text, no template), so the template's cost is visible. Prints JSON: {"rows", "conversational":
// {"seconds", "rows_per_s", "tokens"}, "standard": {...}, "parse_and_two_renders": {...}}. --write also saves the
// conversational rows (for timing `dpo-cli project import` on them).
#include "commands.h"

#include "engine/chat/chat_template.h"
#include "engine/data/preference_data.h"
#include "engine/error.h"
#include "engine/tokenizers/tokenizer.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>
#include <random>

namespace {

struct BenchChatOptions {
    std::string model;
    std::string chatTemplate;
    std::string write;
    int64_t rows = 100000;
};

std::string words(std::mt19937 &rng, int n)
{
    static const char *const vocab[] = { "the", "model", "answer", "question", "harbor", "violin", "polite", "quickly",
        "because", "seven", "blue", "boats", "morning", "gentle", "bright", "number", "plus", "is", "and", "of", "a",
        "to", "we", "they", "sees", "lovely", "again", "please", "short", "sentence" };
    std::string s;
    for (int i = 0; i < n; ++i) {
        if (i)
            s += ' ';
        s += vocab[rng() % (sizeof(vocab) / sizeof(vocab[0]))];
    }
    s[0] = char(std::toupper(static_cast<unsigned char>(s[0])));
    return s + ".";
}

// Row i: conversational JSON line, and the same texts as a standard row.
std::pair<std::string, std::string> makeRow(std::mt19937 &rng, int64_t i)
{
    using json = nlohmann::ordered_json;
    json prompt = json::array();
    if (i % 3 == 0)
        prompt.push_back({ { "role", "system" }, { "content", "You are a helpful assistant. " + words(rng, 20) } });
    if (i % 5 == 0) {
        prompt.push_back({ { "role", "user" }, { "content", words(rng, 12) } });
        prompt.push_back({ { "role", "assistant" }, { "content", words(rng, 25) } });
    }
    prompt.push_back({ { "role", "user" }, { "content", words(rng, 8 + int(rng() % 20)) + "?" } });
    const std::string chosen = words(rng, 10 + int(rng() % 50));
    const std::string rejected = words(rng, 10 + int(rng() % 50));
    json conv
        = { { "prompt", prompt }, { "chosen", json::array({ { { "role", "assistant" }, { "content", chosen } } }) },
              { "rejected", json::array({ { { "role", "assistant" }, { "content", rejected } } }) } };
    std::string promptText;
    for (const auto &m : prompt)
        promptText += m["content"].get<std::string>() + "\n";
    json standard = { { "prompt", promptText }, { "chosen", chosen }, { "rejected", rejected } };
    return { conv.dump(), standard.dump() };
}

dpocli::CommandRegistrar regBenchChat([](CLI::App &app) {
    auto o = std::make_shared<BenchChatOptions>();
    CLI::App *cmd = app.add_subcommand("bench-chat",
        "Conversational rows: parse + chat-template render + tokenize rows/s on one thread, vs standard rows");
    cmd->add_option("--model", o->model, "Model folder with a tokenizer (and a chat template)")->required();
    cmd->add_option("--chat-template", o->chatTemplate, "Jinja chat template file (default: the model's own)");
    cmd->add_option("--rows", o->rows, "Rows to prepare")->capture_default_str();
    cmd->add_option("--write", o->write, "Also write the conversational rows to this JSONL file");
    cmd->callback([o] {
        if (o->rows < 1)
            throw dpo::Error("--rows must be at least 1");
        const auto tok = dpo::loadTokenizer(o->model);
        const auto chat = dpo::loadChatTemplateFor(o->model, o->chatTemplate);
        if (!chat)
            throw dpo::Error(o->model + " has no chat template; give one with --chat-template FILE");
        std::mt19937 rng(1234);
        std::vector<std::string> conv, standard;
        conv.reserve(size_t(o->rows));
        standard.reserve(size_t(o->rows));
        for (int64_t i = 0; i < o->rows; ++i) {
            auto [c, s] = makeRow(rng, i);
            conv.push_back(std::move(c));
            standard.push_back(std::move(s));
        }
        if (!o->write.empty()) {
            std::ofstream out(o->write, std::ios::binary);
            for (const auto &line : conv)
                out << line << '\n';
            if (!out)
                throw dpo::Error(o->write + ": cannot write");
        }
        auto run = [&](const std::vector<std::string> &lines, bool renderOnly) {
            const auto t0 = std::chrono::steady_clock::now();
            int64_t tokens = 0;
            size_t chars = 0;
            for (size_t i = 0; i < lines.size(); ++i) {
                const dpo::PreferenceRow row = dpo::parsePreferenceLine(lines[i], "bench", int64_t(i + 1));
                if (renderOnly) {
                    dpo::ChatRequest req;
                    req.messages = row.conversation->prompt;
                    req.specialTokens = chat->specialTokens;
                    req.addGenerationPrompt = true;
                    chars += chat->chatTemplate.apply(req).size();
                    req.addGenerationPrompt = false;
                    for (const auto &m : row.conversation->chosen)
                        req.messages.push_back(m);
                    chars += chat->chatTemplate.apply(req).size();
                    continue;
                }
                const auto pair = dpo::tokenizePair(*tok, row, {}, &*chat);
                tokens += int64_t(pair.promptIds.size() + pair.chosenIds.size() + pair.rejectedIds.size());
            }
            const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            return nlohmann::json { { "seconds", s }, { "rows_per_s", double(lines.size()) / s }, { "tokens", tokens },
                { "rendered_bytes", chars } };
        };
        nlohmann::json out;
        out["rows"] = o->rows;
        out["chat_template"] = chat->origin;
        out["conversational"] = run(conv, false);
        out["standard"] = run(standard, false);
        // Parsing plus two of the three renders of each row (prompt, prompt + chosen), without tokenizing.
        out["parse_and_two_renders"] = run(conv, true);
        dpocli::printJson(out);
    });
});

} // namespace
