// Hugging Face chat templates, rendered as transformers' apply_chat_template(tokenize=False) does:
// the template's own Jinja engine (engine/chat/jinja_*), the variables transformers passes
// (messages, tools, documents, add_generation_prompt, the tokenizer's special tokens, extra keyword
// arguments), a settable clock for strftime_now, and continue_final_message. Also finds a model
// folder's template: chat_template.jinja, chat_template.json, or `chat_template` in
// tokenizer_config.json (a string, or a list of {name, template} where "default" is used, or
// "tool_use" when tools are given and the model has one).
//
// Not covered: transformers' assistant-token masks (return_assistant_tokens_mask) and its opt-in
// special-token sanitisation.
#pragma once

#include "engine/chat/jinja_render.h"

#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <string>

namespace dpo {

struct ChatRenderOptions {
    // Fixed clock for strftime_now, ISO-8601 "YYYY-MM-DDTHH:MM:SS" (naive local time); empty = now.
    std::string now;
    // transformers' continue_final_message: the render stops right after the final message's content.
    bool continueFinalMessage = false;
    jinja::RenderLimits limits;
};

// What transformers' apply_chat_template receives.
struct ChatRequest {
    nlohmann::ordered_json messages = nlohmann::ordered_json::array();
    bool addGenerationPrompt = false;
    nlohmann::ordered_json tools;         // null, or a list of JSON-schema tool dicts
    nlohmann::ordered_json documents;     // null, or a list of documents
    nlohmann::ordered_json specialTokens = nlohmann::ordered_json::object(); // bos_token, eos_token, ...
    nlohmann::ordered_json extraKwargs = nlohmann::ordered_json::object();   // enable_thinking, ...
};

class ChatTemplate {
public:
    ChatTemplate() = default;
    // Parses the template; throws dpo::Error (syntax errors name line and column).
    static ChatTemplate fromString(const std::string &source);
    static ChatTemplate fromFile(const std::string &path);

    bool isNull() const { return !m_tpl; }
    const std::string &source() const { return m_source; }

    // Renders with `context` (a JSON object) as exactly the template's variables.
    // Throws dpo::Error (jinja::RenderError) naming the template line and column.
    std::string renderContext(const nlohmann::ordered_json &context, const ChatRenderOptions &opts = {}) const;

    // Builds transformers' variables from `request` and renders.
    std::string apply(const ChatRequest &request, const ChatRenderOptions &opts = {}) const;

private:
    std::shared_ptr<const jinja::Template> m_tpl;
    std::string m_source;
};

// A model folder's chat template and the special tokens transformers passes to it.
struct ModelChatTemplate {
    ChatTemplate chatTemplate;
    // The "tool_use" named template, when the model has named templates with one and no name was
    // asked for: transformers uses it for requests with tools.
    ChatTemplate toolUseTemplate;
    nlohmann::ordered_json specialTokens = nlohmann::ordered_json::object();
    std::string origin; // file the template came from (and the template name, for named templates)
    const ChatTemplate &select(bool withTools) const
    {
        return withTools && !toolUseTemplate.isNull() ? toolUseTemplate : chatTemplate;
    }
};

// Finds the model's template. `name` picks a named template ("" = "tool_use" when `withTools` and
// present, else "default"). Returns nullopt when the folder has no chat template; throws dpo::Error
// for unreadable or malformed files or a template that does not parse.
std::optional<ModelChatTemplate> loadModelChatTemplate(const std::string &modelDir, const std::string &name = {},
                                                       bool withTools = false);

// The template a model's data is rendered with: `overrideFile` (a Jinja file, e.g. --chat-template)
// when given, else the model folder's own (loadModelChatTemplate); special tokens from the model folder
// either way. nullopt when neither exists.
std::optional<ModelChatTemplate> loadChatTemplateFor(const std::string &modelDir, const std::string &overrideFile);

// The special tokens of a model folder (tokenizer_config.json, then special_tokens_map.json): every
// one of bos/eos/unk/sep/pad/cls/mask_token that is set, as strings, and additional_special_tokens.
nlohmann::ordered_json loadSpecialTokens(const std::string &modelDir);

// Python's datetime.strftime for a naive time, with C-locale English names.
std::string pyStrftime(const std::string &format, const std::string &isoTime);

} // namespace dpo
