// dpo-cli generate --model DIR (--prompt TEXT | --messages FILE.json) [--tools FILE.json]
//   [--chat-template FILE] [--raw] [--max-new-tokens N] [--greedy | --temperature T --top-k K --top-p P --seed S]
//   [--ignore-eos] [--device cpu|cuda|auto] [--dtype float32|bfloat16]
// With a chat template (the model's, or --chat-template) the prompt is rendered as transformers' chat
// pipelines do (add_generation_prompt, no special tokens added; a --prompt text is one user message);
// --raw, or a model without a template, encodes the --prompt text with the tokenizer's special tokens
// (BOS for Llama). Generation stops at any of the model's end tokens (generation_config.json's
// eos_token_id may be a list) unless --ignore-eos. Prints {"ids":[...new tokens...],"text":"...",
// "prompt":"<the text that was tokenized>"} (new tokens decoded, special tokens skipped).
// Greedy unless a sampling option is given.
#include "commands.h"

#include "engine/chat/chat_prompt.h"
#include "engine/io/json_limits.h"
#include "engine/models/adapter_io.h"
#include "engine/models/causal_lm.h"
#include "engine/error.h"
#include "engine/generation/generation.h"
#include "engine/runtime.h"
#include "engine/tokenizers/tokenizer.h"
#include "engine/tokenizers/utf8.h"

#include <optional>

namespace {

struct GenerateOptions {
    std::string model;
    std::string baseModel;
    std::string prompt;
    std::string messagesFile;
    std::string toolsFile;
    std::string chatTemplate;
    bool raw = false;
    int maxNewTokens = 64;
    bool greedy = false;
    double temperature = 1.0;
    int topK = 0;
    double topP = 1.0;
    uint64_t seed = 0;
    bool ignoreEos = false;
    std::string device = "auto";
    std::string dtype = "float32";
};

dpocli::CommandRegistrar regGenerate([](CLI::App &app) {
    auto o = std::make_shared<GenerateOptions>();
    CLI::App *cmd = app.add_subcommand("generate", "Continue a prompt with a model (greedy or sampling), print JSON");
    cmd->add_option("--model", o->model, "Model folder (Hugging Face layout) or PEFT LoRA adapter folder")->required();
    cmd->add_option("--base-model", o->baseModel,
        "Base model folder of an adapter --model (default: its adapter_config.json's base_model_name_or_path)");
    auto *promptOpt = cmd->add_option("--prompt", o->prompt,
        "Prompt text: one user message with a chat template, else encoded with the tokenizer's special tokens");
    auto *messagesOpt = cmd->add_option("--messages", o->messagesFile,
        "JSON file: a list of {\"role\", \"content\"} messages, rendered with the chat template");
    promptOpt->excludes(messagesOpt);
    cmd->add_option("--tools", o->toolsFile, "JSON file: a list of tools for the chat template");
    cmd->add_option("--chat-template", o->chatTemplate, "Jinja chat template file (default: the model's own)");
    cmd->add_flag("--raw", o->raw, "Encode --prompt as plain text even when the model has a chat template");
    cmd->add_option("--max-new-tokens", o->maxNewTokens, "Most tokens to generate")->capture_default_str();
    cmd->add_flag("--greedy", o->greedy, "Argmax decoding (the default when no sampling option is given)");
    cmd->add_option("--temperature", o->temperature, "Sampling temperature (> 0)");
    cmd->add_option("--top-k", o->topK, "Sample among the K most likely tokens (0 = off)");
    cmd->add_option("--top-p", o->topP, "Nucleus sampling: smallest set with probability >= P (1 = off)");
    cmd->add_option("--seed", o->seed, "Sampling seed (the same random draws on any device; tokens match as far as the logits do)");
    cmd->add_flag("--ignore-eos", o->ignoreEos, "Keep going after an end-of-sequence token");
    cmd->add_option("--device", o->device, "cpu, cuda, cuda:N or auto")->capture_default_str();
    cmd->add_option("--dtype", o->dtype, "float32, bfloat16 or float16")->capture_default_str();
    cmd->callback([o, cmd, &app] {
        const bool sampling
            = cmd->count("--temperature") || cmd->count("--top-k") || cmd->count("--top-p") || cmd->count("--seed");
        if (o->greedy && sampling)
            throw dpo::Error("--greedy cannot be combined with --temperature, --top-k, --top-p or --seed");
        dpo::GenerationOptions g;
        g.maxNewTokens = o->maxNewTokens;
        g.greedy = !sampling;
        g.temperature = o->temperature;
        g.topK = o->topK;
        g.topP = o->topP;
        g.seed = o->seed;
        g.stopAtEos = !o->ignoreEos;
        g.validate(); // before loading anything: bad options fail fast
        if (o->prompt.empty() && o->messagesFile.empty())
            throw dpo::Error("generate needs --prompt TEXT or --messages FILE.json");
        if (o->raw && (!o->messagesFile.empty() || !o->chatTemplate.empty()))
            throw dpo::Error("--raw encodes --prompt as plain text; it cannot be combined with --messages or --chat-template");
        dpo::requireUtf8(o->prompt, "--prompt");
        dpo::GenerationPrompt prompt;
        prompt.text = o->prompt;
        if (!o->messagesFile.empty()) {
            // Key order kept: templates print messages and tools with tojson / items() in file order.
            auto j = dpo::readOrderedJsonFileLimited(o->messagesFile);
            if (!j.is_array() || j.empty())
                throw dpo::Error(o->messagesFile + ": must hold a non-empty JSON list of messages");
            for (size_t i = 0; i < j.size(); ++i)
                if (!j[i].is_object() || !j[i].contains("role") || !j[i]["role"].is_string())
                    throw dpo::Error(o->messagesFile + ": message " + std::to_string(i) + " needs a string \"role\"");
            prompt.messages = std::move(j);
        }
        if (!o->toolsFile.empty()) {
            prompt.tools = dpo::readOrderedJsonFileLimited(o->toolsFile);
            if (!prompt.tools.is_array())
                throw dpo::Error(o->toolsFile + ": must hold a JSON list of tools");
        }
        const auto device = dpo::parseDevice(o->device);
        const auto dtype = dpo::parseDtype(o->dtype);

        dpo::initRuntime(dpocli::globalThreads(app));

        const std::string tokDir = dpo::tokenizerDirFor(o->model, o->baseModel);
        auto tok = dpo::loadTokenizer(tokDir);
        std::optional<dpo::ModelChatTemplate> chat;
        if (!o->raw)
            chat = dpo::loadChatTemplateFor(tokDir, o->chatTemplate);
        if (!chat && !prompt.messages.is_null())
            throw dpo::Error(o->model + " has no chat template (tokenizer_config.json chat_template, chat_template.jinja "
                                        "or chat_template.json) to render --messages; give one with --chat-template FILE");
        auto model = dpo::loadCausalLM(o->model, device, dtype, o->baseModel);
        dpo::checkTokenizerFitsModel(*tok, model->config().vocabSize, o->model);
        g.eosTokenIds = dpo::generationStopIds(*tok, model->config().eosTokenIds);
        const std::string promptText = dpo::renderGenerationPrompt(chat ? &*chat : nullptr, prompt);
        const auto promptIds = dpo::encodeGenerationPrompt(*tok, chat ? &*chat : nullptr, prompt);
        const auto ids = dpo::generate(*model, promptIds, g);
        nlohmann::json out;
        out["ids"] = ids;
        out["text"] = tok->decode(ids, true);
        out["prompt"] = promptText;
        dpocli::printJson(out);
    });
});

} // namespace
