// Prompts for generation, with or without the model's chat template (see chat_prompt.h).
#include "engine/chat/chat_prompt.h"

#include "engine/error.h"
#include "engine/io/json_limits.h"
#include "engine/models/adapter_io.h"

#include <algorithm>

namespace dpo {

std::string renderGenerationPrompt(const ModelChatTemplate *chat, const GenerationPrompt &prompt)
{
    if (!chat) {
        if (prompt.messages.is_null())
            return prompt.text;
        std::string text;
        for (const auto &m : prompt.messages) {
            if (!text.empty())
                text += '\n';
            const auto c = m.find("content");
            if (c != m.end() && c->is_string())
                text += c->get<std::string>();
        }
        return text;
    }
    ChatRequest req;
    if (prompt.messages.is_null())
        req.messages.push_back({ { "role", "user" }, { "content", prompt.text } });
    else
        req.messages = prompt.messages;
    req.addGenerationPrompt = true;
    req.tools = prompt.tools;
    req.specialTokens = chat->specialTokens;
    req.extraKwargs = prompt.templateKwargs;
    try {
        return chat->select(prompt.tools.is_array()).apply(req);
    } catch (const Error &e) {
        throw Error("chat template (" + chat->origin + "): " + e.what());
    }
}

std::vector<int64_t> encodeGenerationPrompt(
    const Tokenizer &tok, const ModelChatTemplate *chat, const GenerationPrompt &prompt)
{
    const std::string text = renderGenerationPrompt(chat, prompt);
    std::vector<int64_t> ids = chat ? tok.encode(text) : tok.encodeWithSpecial(text);
    if (ids.empty())
        throw Error("the prompt encodes to no tokens");
    return ids;
}

std::vector<int64_t> generationStopIds(const Tokenizer &tok, const std::vector<int64_t> &configEosIds)
{
    std::vector<int64_t> ids = configEosIds;
    if (tok.eosId() >= 0)
        ids.push_back(tok.eosId());
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    return ids;
}

ModelSampler::ModelSampler(std::string modelDir, torch::Device device, std::string chatTemplateFile)
    : m_modelDir(std::move(modelDir))
    , m_device(device)
    , m_chatTemplateFile(std::move(chatTemplateFile))
{
}

void ModelSampler::load()
{
    if (m_model)
        return;
    const std::string tokDir = tokenizerDirFor(m_modelDir, {});
    auto model = loadCausalLM(m_modelDir, m_device);
    auto tok = loadTokenizer(tokDir);
    checkTokenizerFitsModel(*tok, model->config().vocabSize, m_modelDir);
    m_chat = loadChatTemplateFor(tokDir, m_chatTemplateFile);
    m_stopIds = generationStopIds(*tok, model->config().eosTokenIds);
    m_tokenizer = std::move(tok);
    m_model = std::move(model);
}

std::optional<ModelSampler::Result> ModelSampler::complete(const std::string &text, const std::string &messagesJson,
    GenerationOptions options, const std::atomic<bool> *cancel)
{
    load();
    GenerationPrompt prompt;
    prompt.text = text;
    if (!messagesJson.empty()) {
        prompt.messages = parseOrderedJsonLimited(messagesJson, "prompt messages");
        if (!prompt.messages.is_array())
            throw Error("prompt messages must be a JSON list");
    }
    std::vector<int64_t> ids;
    try {
        ids = encodeGenerationPrompt(*m_tokenizer, m_chat ? &*m_chat : nullptr, prompt);
    } catch (const Error &e) {
        throw Error(m_modelDir + ": " + e.what());
    }
    options.eosTokenIds.insert(options.eosTokenIds.end(), m_stopIds.begin(), m_stopIds.end());
    bool stopped = false;
    Result r;
    r.ids = generate(*m_model, ids, options, [&](int64_t) {
        stopped = cancel && cancel->load();
        return !stopped;
    });
    if (stopped)
        return std::nullopt;
    r.text = m_tokenizer->decode(r.ids, true);
    return r;
}

} // namespace dpo
