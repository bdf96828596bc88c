// PEFT LoRA adapter folders in and out: adapter_config.json + adapter_model.safetensors with PEFT's
// key names ("base_model.model.<module path>.lora_A.weight" [r, in], "….lora_B.weight" [out, r]; the
// adapter name "default" is not part of the saved names), so PEFT's PeftModel.from_pretrained loads
// what is written here and this engine loads what PEFT writes. An adapter folder names its base model
// in base_model_name_or_path: an absolute path, or one relative to the adapter folder (not to the
// working directory); a caller may give the base explicitly instead.
//
// loadCausalLM (causal_lm.h) calls loadAdapterModel for an adapter folder, so every place that loads a
// model folder (score, generate, train, --ref-model, the GUI's Evaluate page) accepts one.
// Refused with a dpo::Error naming the file and field: other peft_types, DoRA, LoRA biases, bias other
// than "none", rank/alpha patterns, modules_to_save, layer selection, adapter_model.bin, missing or
// mis-shaped tensors, tensors for modules the base does not have.
#pragma once

#include "engine/models/lora.h"
#include "engine/torch_api.h"

#include <memory>
#include <string>

namespace dpo {

class CausalLM;

// DIR holds adapter_config.json and no config.json.
bool isAdapterDir(const std::string &dir);

struct AdapterConfig {
    std::string path; // the adapter_config.json read
    LoraConfig lora;
    std::string baseModelNameOrPath; // as written (may be empty)
    bool fanInFanOut = false;
};

// Reads and validates DIR/adapter_config.json.
AdapterConfig readAdapterConfig(const std::string &dir);

// The base model folder of the adapter in `adapterDir`: `baseOverride` when given, else
// base_model_name_or_path (absolute, or relative to the adapter folder). Throws when it is missing or
// is not a model folder, naming both paths.
std::string resolveAdapterBase(const std::string &adapterDir, const std::string &baseOverride = {});

// Where a model folder's tokenizer lives: DIR itself, or, for an adapter folder without tokenizer
// files, its base model's folder.
std::string tokenizerDirFor(const std::string &dir, const std::string &baseOverride = {});

// The base model loaded from its folder, the adapter attached and its weights read (float32).
std::shared_ptr<CausalLM> loadAdapterModel(
    const std::string &adapterDir, torch::Device device, torch::ScalarType dtype, const std::string &baseOverride = {});

// Copies PEFT-named tensors into an attached adapter. Every adapted layer needs both tensors with
// the right shapes; extra tensors are an error. `source` names the file in messages, `baseDir` the base.
void loadAdapterTensors(LoraAdapter &adapter, const std::map<std::string, torch::Tensor> &tensors,
    const std::string &source, const std::string &baseDir);

// PEFT's saved name of an adapter parameter ("model.layers.0.self_attn.q_proj.lora_A.weight" ->
// "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight").
std::string peftKey(const std::string &parameterName);

// Writes DIR (through a temporary folder renamed into place): adapter_config.json,
// adapter_model.safetensors (float32), and the tokenizer files of `tokenizerDir` when given.
// base_model_name_or_path is the adapter's baseModelDir made absolute (or `baseModelPath` when given).
void saveAdapter(const CausalLM &model, const std::string &dir, const std::string &tokenizerDir = {},
    const std::string &baseModelPath = {});

} // namespace dpo
