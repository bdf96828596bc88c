// dpo-cli merge-adapter --adapter DIR --output DIR [--base-model DIR] [--dtype auto|float32|bfloat16|float16]
// Merges a PEFT LoRA adapter into its base: every adapted weight becomes W + s·B·A (computed in
// float32; transposed for GPT-2's Conv1D), saved in the Hugging Face layout with the base's tokenizer
// files, in the base's stored dtype unless --dtype says otherwise. Prints {"output": DIR, ...}.
#include "commands.h"

#include "engine/error.h"
#include "engine/io/safetensors.h"
#include "engine/models/adapter_io.h"
#include "engine/models/causal_lm.h"
#include "engine/models/lora.h"
#include "engine/runtime.h"

namespace {

struct MergeOptions {
    std::string adapter;
    std::string baseModel;
    std::string output;
    std::string dtype = "auto";
};

// The dtype the base's weight files store (the first floating-point tensor's).
torch::ScalarType storedDtype(const std::string &baseDir)
{
    for (const auto &kv : dpo::loadSafetensorsWeights(baseDir))
        if (at::isFloatingType(kv.second.scalar_type()))
            return kv.second.scalar_type();
    return torch::kFloat32;
}

void runMerge(const MergeOptions &o, CLI::App &app)
{
    if (!dpo::isAdapterDir(o.adapter))
        throw dpo::Error("--adapter: " + o.adapter
            + " is not a LoRA adapter folder (no adapter_config.json, or it also "
              "holds config.json)");
    const std::string base = dpo::resolveAdapterBase(o.adapter, o.baseModel);
    const torch::ScalarType dtype = o.dtype == "auto" ? storedDtype(base) : dpo::parseDtype(o.dtype);
    dpo::initRuntime(dpocli::globalThreads(app));
    torch::NoGradGuard noGrad;
    // The base is held in float32 so the merge is computed exactly there, then rounded once.
    auto model = dpo::loadCausalLM(o.adapter, torch::kCPU, torch::kFloat32, o.baseModel);
    dpo::savePretrainedMerged(*model, o.output, dpo::tokenizerDirFor(o.adapter, o.baseModel), dtype);
    dpocli::printJson({ { "output", o.output }, { "base_model", base }, { "adapter", o.adapter },
        { "dtype", dpo::dtypeName(dtype) }, { "merged_layers", model->lora->modulePaths().size() } });
}

dpocli::CommandRegistrar regMergeAdapter([](CLI::App &app) {
    auto o = std::make_shared<MergeOptions>();
    CLI::App *cmd = app.add_subcommand(
        "merge-adapter", "Merge a PEFT LoRA adapter into its base model (W + scale*B*A) and save it in HF layout");
    cmd->add_option("--adapter", o->adapter, "Adapter folder (adapter_config.json + adapter_model.safetensors)")
        ->required();
    cmd->add_option("--base-model", o->baseModel,
        "Base model folder (default: base_model_name_or_path, relative to the adapter folder)");
    cmd->add_option("--output", o->output, "Folder to write the merged model to")->required();
    cmd->add_option("--dtype", o->dtype, "auto (the base's stored dtype), float32, bfloat16 or float16")
        ->capture_default_str();
    cmd->callback([o, &app] { runMerge(*o, app); });
});

} // namespace
