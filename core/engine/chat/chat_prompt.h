// Prompting a model for generation as transformers' chat pipelines do: when the model has a chat
// template, the conversation is rendered with add_generation_prompt=True and tokenized without adding
// special tokens (the template has them); a plain-text prompt is then one user message. Without a
// template, the text is encoded with the tokenizer's own special tokens (BOS for Llama), as before.
// Used by `dpo-cli generate`, candidate generation and the Evaluate page, so a chat model is prompted
// with the text it was trained on (training renders conversational rows the same way).
#pragma once

#include "engine/chat/chat_template.h"
#include "engine/generation/generation.h"
#include "engine/tokenizers/tokenizer.h"

#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace dpo {

struct GenerationPrompt {
    std::string text; // a plain prompt (used when `messages` is null)
    nlohmann::ordered_json messages; // null, or a list of {"role", "content", ...} messages
    nlohmann::ordered_json tools; // null, or a list of tools for the template
    nlohmann::ordered_json templateKwargs = nlohmann::ordered_json::object(); // enable_thinking, ...
};

// The ids to continue. `chat` null: the text (or, for messages, their contents joined with "\n") with the
// tokenizer's special tokens. Throws dpo::Error for a template error (naming the template) or a prompt
// that encodes to no tokens.
std::vector<int64_t> encodeGenerationPrompt(
    const Tokenizer &tok, const ModelChatTemplate *chat, const GenerationPrompt &prompt);

// The text encodeGenerationPrompt tokenizes (for logs and `dpo-cli generate --show-prompt`).
std::string renderGenerationPrompt(const ModelChatTemplate *chat, const GenerationPrompt &prompt);

// Every id generation should stop at: the model config's eos_token_id (config.json and
// generation_config.json; a list in many, e.g. Llama 3's <|eot_id|> and <|end_of_text|>, Qwen2.5's
// <|im_end|> and <|endoftext|>), plus the tokenizer's EOS. Sorted, without repeats.
std::vector<int64_t> generationStopIds(const Tokenizer &tok, const std::vector<int64_t> &configEosIds);

// One model that completes prompts: loaded on first use (a job with nothing to do never loads it),
// prompted through encodeGenerationPrompt with the model's chat template (or `chatTemplateFile`), stopping
// at generationStopIds. What candidate generation (GUI and `dpo-cli project generate`) and the Evaluate page
// share. Not thread-safe: one sampler per thread.
class ModelSampler {
public:
    ModelSampler(std::string modelDir, torch::Device device, std::string chatTemplateFile = {});
    // Loads the model now (also done by the first complete()). Throws dpo::Error.
    void load();
    bool loaded() const { return m_model != nullptr; }
    bool hasChatTemplate() const { return m_chat.has_value(); }
    // The completion's text (special tokens dropped) and its ids, or nullopt when `cancel` was set
    // during generation. `messagesJson`: a conversational prompt's messages as JSON text (empty = use `text`).
    struct Result {
        std::string text;
        std::vector<int64_t> ids;
    };
    std::optional<Result> complete(const std::string &text, const std::string &messagesJson, GenerationOptions options,
        const std::atomic<bool> *cancel = nullptr);
    const std::string &modelDir() const { return m_modelDir; }

private:
    std::string m_modelDir;
    torch::Device m_device;
    std::string m_chatTemplateFile;
    std::shared_ptr<CausalLM> m_model;
    std::unique_ptr<Tokenizer> m_tokenizer;
    std::optional<ModelChatTemplate> m_chat;
    std::vector<int64_t> m_stopIds;
};

} // namespace dpo
