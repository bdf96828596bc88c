// createCausalLM: model_type -> the class that implements it. Loading weights is model_loader.cpp's job.
#include "engine/causal_lm.h"

#include "engine/error.h"
#include "engine/gpt2_model.h"
#include "engine/llama_model.h"

namespace dpo {

std::shared_ptr<CausalLM> createCausalLM(const ModelConfig &config)
{
    const std::string &t = config.modelType;
    if (t == "llama" || t == "mistral" || t == "qwen2")
        return std::make_shared<LlamaModel>(config);

    // GPT-2 family (gpt2_model.h).
    if (t == "gpt2")
        return std::make_shared<Gpt2Model>(config);

    throw Error("config.json: model_type '" + t + "' is not supported (supported: llama, mistral, qwen2, gpt2)");
}

} // namespace dpo
