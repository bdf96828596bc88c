// LoRA (low-rank adapters) as PEFT computes them, on the linear layers of any CausalLM of this engine:
// each targeted layer computes y = W·x (+ b) + s·B(A(dropout(x))) with A [r, in] (Kaiming-uniform,
// a = sqrt(5), as nn.Linear and PEFT initialise it), B [out, r] (zero), s = alpha / r, or
// alpha / sqrt(r) with rsLoRA. Adapter tensors are float32 whatever the base dtype (PEFT's
// autocast_adapter_dtype); the base weights are left as they are, frozen. The adapter can be switched
// off (the reference of LoRA DPO is the same model with adapters off) and merged (W' = W + s·B·A).
//
// GPT-2's Conv1D layers (weight [in, out]) are adapted too, as PEFT does with fan_in_fan_out = true:
// the forward is the same, only the merged delta is transposed.
//
// Not here: reading and writing PEFT's files (adapter_io.h), bias other than "none", DoRA, per-module
// ranks (rank_pattern / alpha_pattern), modules_to_save, quantised bases (QLoRA).
#pragma once

#include "engine/torch_api.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace dpo {

class CausalLM;

struct LoraConfig {
    int64_t r = 8;
    double alpha = 16.0;
    double dropout = 0.0;
    // Module names matched as PEFT does: a module is targeted when its path equals a name or ends with
    // "." + name. Empty = every attention and MLP projection of the family (q/k/v/o, gate/up/down or
    // the fused qkv_proj/gate_up_proj; c_attn, c_proj, c_fc for GPT-2). {"all-linear"}: every linear
    // layer except the output head (the same set here, as this engine's decoders have no others).
    std::vector<std::string> targetModules;
    // A regular expression over the whole module path instead (PEFT's string form of
    // target_modules, e.g. from an adapter_config.json); empty = use targetModules.
    std::string targetRegex;
    bool useRslora = false;

    double scaling() const;
    // Throws dpo::Error naming the option ("lora_r", "lora_alpha", "lora_dropout", ...).
    void validate() const;
};

// One adapted layer. A and B are leaf tensors requiring grad (they are the only trainable ones).
struct LoraLayer {
    torch::Tensor A; // [r, in]
    torch::Tensor B; // [out, r]
    double scaling = 1.0;
    double dropout = 0.0;
    bool fanInFanOut = false; // GPT-2 Conv1D: the base weight is [in, out]
    bool enabled = true;

    // base(x) = y; returns y + s·B(A(dropout(x))) computed in float32 and cast back to y's dtype.
    torch::Tensor apply(const torch::Tensor &x, const torch::Tensor &y, bool training) const;
    // s·B·A in the base weight's layout ([out, in], or [in, out] when fanInFanOut), float32.
    torch::Tensor deltaWeight() const;
};

class LoraAdapter {
public:
    // Puts fresh adapters (A Kaiming-uniform from torch's global generator, B zero) on the matching
    // layers of `model` and freezes every base parameter. Throws dpo::Error when nothing matches
    // (naming the model's linear layers) or when the model already carries an adapter.
    static std::shared_ptr<LoraAdapter> attach(CausalLM &model, const LoraConfig &config);
    // Removes the adapter from every layer (the model computes the base function again).
    void detach();

    const LoraConfig &config() const { return m_config; }
    // Module paths of the adapted layers ("model.layers.0.self_attn.q_proj"), in model order.
    std::vector<std::string> modulePaths() const;
    // Last components of the adapted paths, sorted and unique: what PEFT writes as target_modules.
    std::vector<std::string> targetNames() const;
    bool fanInFanOut() const; // true when the adapted layers are Conv1D (GPT-2)

    // "<module path>.lora_A.weight" / ".lora_B.weight" -> tensor, in model order (these names key the
    // optimizer state and, prefixed with "base_model.model.", PEFT's file).
    std::vector<std::pair<std::string, torch::Tensor>> namedParameters() const;
    int64_t parameterCount() const;
    std::shared_ptr<LoraLayer> layer(const std::string &modulePath) const;

    void setEnabled(bool enabled);
    bool enabled() const { return m_enabled; }

    // Base weights with the adapters merged in (W + s·B·A), in each base weight's dtype, under the
    // model's state-dict names; parameters without an adapter are returned as they are.
    std::map<std::string, torch::Tensor> mergedStateDict() const;

    // Where the base weights came from (for adapter_config.json's base_model_name_or_path); may be "".
    std::string baseModelDir;

private:
    LoraAdapter() = default;
    CausalLM *m_model = nullptr;
    LoraConfig m_config;
    std::vector<std::pair<std::string, std::shared_ptr<LoraLayer>>> m_layers;
    bool m_enabled = true;
};

// Switches a model's adapter off for one scope (the LoRA reference forward); no-op without one.
class LoraDisabledScope {
public:
    explicit LoraDisabledScope(CausalLM &model);
    ~LoraDisabledScope();
    LoraDisabledScope(const LoraDisabledScope &) = delete;
    LoraDisabledScope &operator=(const LoraDisabledScope &) = delete;

private:
    LoraAdapter *m_adapter = nullptr;
    bool m_was = false;
};

} // namespace dpo
