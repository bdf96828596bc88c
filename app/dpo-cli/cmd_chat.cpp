// dpo-cli chat render: renders a Hugging Face chat template as transformers' apply_chat_template
// (tokenize=False) does.
//   --template FILE --context FILE.json [--now ISO] [--continue-final-message]
//       prints exactly the rendered text (no newline added); the JSON object is the template's variables.
//   --template FILE --cases FILE.jsonl
//       one input line {"id", "context", "options"?} -> one output line {"id","output"} or {"id","error"};
//       exit 0 even when some cases fail (each failure is in its line).
//   --model DIR --messages FILE.json [--add-generation-prompt] [--tools FILE.json] [--template FILE]
//       uses the model's template (or --template) and the model's special tokens.
// Any other failure: a message on stderr and a non-zero exit.
#include "commands.h"

#include "engine/chat/chat_template.h"
#include "engine/error.h"
#include "engine/io/json_limits.h"

#include <fstream>
#include <sstream>

namespace {

struct ChatRenderCliOptions {
    std::string templateFile;
    std::string contextFile;
    std::string casesFile;
    std::string model;
    std::string messagesFile;
    std::string toolsFile;
    bool addGenerationPrompt = false;
    std::string now;
    bool continueFinalMessage = false;
};

std::string readText(const std::string &path)
{
    std::ifstream f(path, std::ios::binary);
    if (!f)
        throw dpo::Error("cannot read " + path);
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

nlohmann::ordered_json readJson(const std::string &path)
{
    const std::string text = readText(path);
    dpo::checkJsonNesting(text, path); // before the recursive parser sees it
    try {
        return nlohmann::ordered_json::parse(text);
    } catch (const nlohmann::json::exception &e) {
        throw dpo::Error(path + ": invalid JSON: " + dpo::jsonErrorMessage(e));
    }
}

void writeRaw(const std::string &text)
{
    std::cout.write(text.data(), std::streamsize(text.size()));
    std::cout.flush();
}

void runCases(const dpo::ChatTemplate &tpl, const ChatRenderCliOptions &o)
{
    const std::string text = readText(o.casesFile);
    size_t pos = 0, lineNo = 0;
    while (pos < text.size()) {
        size_t nl = text.find('\n', pos); // '\n' only: strings may hold U+2028
        if (nl == std::string::npos)
            nl = text.size();
        const std::string line = text.substr(pos, nl - pos);
        pos = nl + 1;
        ++lineNo;
        if (line.find_first_not_of(" \t\r") == std::string::npos)
            continue;
        nlohmann::ordered_json in;
        const std::string where = o.casesFile + ":" + std::to_string(lineNo);
        dpo::checkJsonNesting(line, where);
        try {
            in = nlohmann::ordered_json::parse(line);
        } catch (const nlohmann::json::exception &e) {
            throw dpo::Error(where + ": invalid JSON: " + dpo::jsonErrorMessage(e));
        }
        nlohmann::ordered_json out;
        out["id"] = in.contains("id") ? in["id"] : nlohmann::ordered_json(lineNo);
        try {
            dpo::ChatRenderOptions ro;
            ro.now = o.now;
            ro.continueFinalMessage = o.continueFinalMessage;
            if (in.contains("options") && in["options"].is_object()) {
                const auto &op = in["options"];
                if (op.contains("now") && op["now"].is_string())
                    ro.now = op["now"].get<std::string>();
                if (op.contains("continue_final_message"))
                    ro.continueFinalMessage = op["continue_final_message"].get<bool>();
            }
            out["output"] = tpl.renderContext(in.value("context", nlohmann::ordered_json::object()), ro);
        } catch (const std::exception &e) {
            out.erase("output");
            out["error"] = e.what();
        }
        std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
    }
    std::cout.flush();
}

dpocli::CommandRegistrar regChat([](CLI::App &app) {
    auto o = std::make_shared<ChatRenderCliOptions>();
    CLI::App *chat = nullptr; // shared with other `chat ...` commands, whichever registers first
    for (CLI::App *sub : app.get_subcommands([](CLI::App *a) { return a->get_name() == "chat"; }))
        chat = sub;
    if (!chat) {
        chat = app.add_subcommand("chat", "Chat templates");
        chat->require_subcommand(1);
    }
    CLI::App *cmd = chat->add_subcommand("render", "Render a chat template as transformers' apply_chat_template does");
    cmd->add_option("--template", o->templateFile, "Jinja chat template file (overrides the model's with --model)");
    cmd->add_option("--context", o->contextFile, "JSON object: the template's variables");
    cmd->add_option("--cases", o->casesFile, "JSONL of {\"id\",\"context\",\"options\"?}: one JSON result per line");
    cmd->add_option("--model", o->model, "Model folder: its chat template and special tokens");
    cmd->add_option("--messages", o->messagesFile, "JSON list of messages (with --model)");
    cmd->add_option("--tools", o->toolsFile, "JSON list of tool schemas (with --model)");
    cmd->add_flag("--add-generation-prompt", o->addGenerationPrompt, "Open an assistant turn (with --model)");
    cmd->add_option("--now", o->now, "Clock for strftime_now, ISO-8601 YYYY-MM-DDTHH:MM:SS (default: now)");
    cmd->add_flag("--continue-final-message", o->continueFinalMessage,
                  "Stop right after the final message's content (transformers' continue_final_message)");
    cmd->callback([o] {
        dpo::ChatRenderOptions ro;
        ro.now = o->now;
        ro.continueFinalMessage = o->continueFinalMessage;
        if (!o->model.empty()) {
            if (o->messagesFile.empty())
                throw dpo::Error("--model needs --messages FILE.json");
            dpo::ChatRequest req;
            req.messages = readJson(o->messagesFile);
            if (!req.messages.is_array())
                throw dpo::Error(o->messagesFile + ": expected a JSON list of messages");
            if (!o->toolsFile.empty())
                req.tools = readJson(o->toolsFile);
            req.addGenerationPrompt = o->addGenerationPrompt;
            req.specialTokens = dpo::loadSpecialTokens(o->model);
            dpo::ChatTemplate tpl;
            if (!o->templateFile.empty()) {
                tpl = dpo::ChatTemplate::fromFile(o->templateFile);
            } else {
                auto m = dpo::loadModelChatTemplate(o->model, {}, !req.tools.is_null());
                if (!m)
                    throw dpo::Error(o->model + " has no chat template (tokenizer_config.json chat_template, "
                                                "chat_template.jinja or chat_template.json); pass --template FILE");
                tpl = m->chatTemplate;
            }
            writeRaw(tpl.apply(req, ro));
            return;
        }
        if (o->templateFile.empty())
            throw dpo::Error("chat render needs --template FILE (with --context or --cases) or --model DIR");
        const dpo::ChatTemplate tpl = dpo::ChatTemplate::fromFile(o->templateFile);
        if (!o->casesFile.empty()) {
            runCases(tpl, *o);
            return;
        }
        if (o->contextFile.empty())
            throw dpo::Error("chat render --template needs --context FILE.json or --cases FILE.jsonl");
        writeRaw(tpl.renderContext(readJson(o->contextFile), ro));
    });
});

} // namespace
