// createCausalLM: model_type -> the class that implements it. Loading weights is model_loader.cpp's job.
#include "engine/models/causal_lm.h"

#include "engine/error.h"
#include "engine/models/gpt2_model.h"
#include "engine/models/llama_model.h"
#include "engine/models/model_arch.h"
#include "engine/models/param_alloc.h"

namespace dpo {

std::shared_ptr<CausalLM> createCausalLM(const ModelConfig &config, const ModelBuild &build)
{
    const ParamAllocScope scope(torch::TensorOptions().device(build.device).dtype(build.dtype), build.initialize);
    // The architecture table (model_arch.h) names the implementation of every supported model_type.
    const ArchInfo *arch = findModelArch(config.modelType);
    if (arch && arch->impl == ArchImpl::Llama)
        return std::make_shared<LlamaModel>(config);
    if (arch && arch->impl == ArchImpl::Gpt2)
        return std::make_shared<Gpt2Model>(config);
    throw Error("config.json: model_type '" + config.modelType + "' is not supported (supported: "
        + supportedModelTypes() + ")");
}

} // namespace dpo
