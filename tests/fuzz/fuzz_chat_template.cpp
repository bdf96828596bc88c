// Fuzz target: a chat template (ChatTemplate::fromString), rendered with small jinja::RenderLimits so that
// a hostile template (deep nesting, huge loops, recursive macros, exploding strings) ends in a dpo::Error
// within milliseconds instead of a hang, a crash or gigabytes. The input is the template text, optionally
// followed by a NUL byte and a JSON object used as the whole context instead of the default conversation
// (hostile contexts: deep values, odd types where messages are expected).
#include "engine/chat/chat_template.h"
#include "engine/io/json_limits.h"

#include "fuzz_util.h"

#include <cstring>

namespace {

const nlohmann::ordered_json &defaultContext()
{
    static const nlohmann::ordered_json ctx = nlohmann::ordered_json::parse(R"({
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "Hi! What is 2+2?"},
            {"role": "assistant", "content": "4"},
            {"role": "user", "content": [{"type": "text", "text": "And 3+3?"}]}
        ],
        "tools": null, "documents": null, "add_generation_prompt": true,
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"
    })");
    return ctx;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = reinterpret_cast<const char *>(data);
    const char *nul = static_cast<const char *>(std::memchr(text, 0, size));
    const std::string source(text, nul ? size_t(nul - text) : size);
    nlohmann::ordered_json context = defaultContext();
    if (nul) {
        const std::string_view json(nul + 1, size - source.size() - 1);
        try {
            dpo::checkJsonNesting(json, "fuzz context"); // what every reader of user JSON does first
        } catch (const dpo::Error &) {
            return 0;
        }
        context = nlohmann::ordered_json::parse(json.begin(), json.end(), nullptr, false);
        if (context.is_discarded())
            return 0;
    }
    dpofuzz::expectOnlyDpoErrors([&] {
        const dpo::ChatTemplate tpl = dpo::ChatTemplate::fromString(source);
        dpo::ChatRenderOptions opts;
        opts.now = "2024-06-01T12:34:56";
        opts.limits.maxOutputBytes = 1 << 20;
        opts.limits.maxLoopIterations = 20000;
        opts.limits.maxSteps = 200000;
        opts.limits.maxCallDepth = 20;
        opts.limits.maxNesting = 200;
        (void)tpl.renderContext(context, opts);
        // transformers' continue_final_message: the render must contain the final message's text.
        opts.continueFinalMessage = true;
        (void)tpl.renderContext(context, opts);
    });
    return 0;
}
