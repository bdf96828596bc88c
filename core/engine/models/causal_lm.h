// CausalLM: the interface every decoder-only model implements (Llama family, GPT-2), so that
// log-probs, training, generation and saving never need to know which family a model is.
// Parameters are registered under the Hugging Face state-dict names (model.layers.0.self_attn...,
// transformer.h.0.attn...), so loading and saving is a name-for-name copy.
#pragma once

#include "engine/models/model_config.h"

#include "engine/torch_api.h"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace dpo {

class LoraAdapter; // lora.h
struct PrefixLayout; // packed_attention.h

// Keys and values of past positions, per layer: [B, numKvHeads, T_past, headDim].
// By default append() concatenates, so autograd flows through the cache (the shared-prompt
// training forward) and callers may replace keys/values (e.g. repeat them along the batch).
// After reserve() it writes in place into per-layer storage allocated once for `capacity`
// positions, and keys/values are views of its filled prefix: no reallocation per decoded token.
// That is for no-grad decoding: appends that autograd records concatenate even then.
struct KVCache {
    std::vector<torch::Tensor> keys;
    std::vector<torch::Tensor> values;
    // Set when the cached rows are right-padded prompts that completions follow (sharedPromptLogps):
    // which keys are real, so attention can take the varlen kernel instead of a mask.
    std::shared_ptr<const PrefixLayout> prefix;
    int64_t length() const { return keys.empty() || !keys[0].defined() ? 0 : keys[0].size(2); }
    void clear()
    {
        keys.clear();
        values.clear();
        prefix.reset();
        m_keyStorage.clear();
        m_valueStorage.clear();
        m_capacity = 0;
    }
    // Empties the cache (its depth kept); later appends write into storage of `capacity` positions
    // per layer (0 = concatenate), allocated on a layer's first append in its keys' batch size, dtype
    // and device, or kept from earlier use when it fits. An append past it moves to storage that fits.
    void reserve(int64_t capacity);
    // Adds this step's k/v [B, kvHeads, T, headDim] to `layer` and returns its keys and values,
    // past + new: [B, kvHeads, T_past + T, headDim].
    std::pair<torch::Tensor, torch::Tensor> append(size_t layer, const torch::Tensor &k, const torch::Tensor &v);
    // Positions the storage of layer 0 holds; 0 for a concatenating cache or before the first append.
    int64_t capacity() const
    {
        return m_keyStorage.empty() || !m_keyStorage[0].defined() ? 0 : m_keyStorage[0].size(2);
    }
    const torch::Tensor &keyStorage(size_t layer) const { return m_keyStorage.at(layer); } // once allocated

private:
    int64_t m_capacity = 0; // reserved positions; 0 = concatenate
    std::vector<torch::Tensor> m_keyStorage, m_valueStorage; // [B, kvHeads, capacity, headDim]
};

class CausalLM : public torch::nn::Module {
public:
    ~CausalLM() override = default;

    // inputIds [B, T] int64. attentionMask [B, T] (1 = real token) or undefined (all real).
    // Positions are counted from cache->length() (0 without a cache). Padding is on the right, or
    // on the left for batched generation (the mask then also shifts positions).
    // Returns the final hidden states after the last norm: [B, T, hidden].
    virtual torch::Tensor forwardHidden(const torch::Tensor &inputIds, const torch::Tensor &attentionMask = {},
                                        KVCache *cache = nullptr) = 0;
    // Padding-free input: inputIds [1, N] packs several sequences, sequence i at positions
    // [starts[i], starts[i+1]) (starts: 0 first, N last). Positions restart at each sequence and
    // attention stays inside it, so each sequence's hidden states equal those of its own unpadded
    // forward. Returns [1, N, hidden]. No KV cache.
    virtual torch::Tensor forwardHiddenPacked(const torch::Tensor &inputIds, const std::vector<int64_t> &starts) = 0;
    // hidden [..., hidden] -> logits [..., vocab] (the lm_head, tied or not).
    virtual torch::Tensor lmHead(const torch::Tensor &hidden) = 0;
    // W [vocab, hidden] when lmHead(h) is exactly h·Wᵀ (tied or not; no soft-cap, bias or adapter),
    // so fused head kernels (head_logps.h) may take the weight; undefined otherwise.
    virtual torch::Tensor plainHeadWeight() { return {}; }

    torch::Tensor forward(const torch::Tensor &inputIds, const torch::Tensor &attentionMask = {},
                          KVCache *cache = nullptr)
    {
        return lmHead(forwardHidden(inputIds, attentionMask, cache));
    }

    virtual const ModelConfig &config() const = 0;

    // Hugging Face names -> tensors as they should be saved (tied head not duplicated).
    virtual std::map<std::string, torch::Tensor> stateDict();
    // Copies tensors in by HF name (converting dtype/layout as needed). Every parameter must be
    // present, shapes must match; unknown names are an error unless they are known buffers
    // (rotary inv_freq, gpt2 attn.bias/masked_bias). `source` names the file in errors.
    virtual void loadStateDict(const std::map<std::string, torch::Tensor> &tensors, const std::string &source);

    int64_t parameterCount();

    // A multimodal wrapper's checkpoint (ModelConfig::isMultimodalWrapper, Gemma3ForConditionalGeneration):
    // the tensors outside the text model (vision tower, projector), carried through unchanged and
    // saved back; and how the text model's names were written there (see model_loader.cpp).
    enum class CheckpointLayout {
        Plain, // model.* / lm_head.weight
        LanguageModelFirst, // language_model.model.*, language_model.lm_head.weight (transformers < 4.52)
        ModelLanguageModel, // model.language_model.*, lm_head.weight (transformers >= 4.52)
    };
    CheckpointLayout checkpointLayout = CheckpointLayout::Plain;
    std::map<std::string, torch::Tensor> passthroughTensors;

    // Activation checkpointing per decoder layer while training (activation_checkpoint.h): less memory
    // for one more forward per step; the gradients are unchanged.
    bool gradientCheckpointing = false;

    // The LoRA adapter on this model's linear layers (lora.h), or null. Its tensors are not module
    // parameters: stateDict(), loadStateDict() and parameters() see the base weights only.
    std::shared_ptr<LoraAdapter> lora;
};

// How createCausalLM allocates the parameters (param_alloc.h): on `device`, in `dtype`, with the
// family's random init or, for a model whose weights are loaded next, uninitialised.
struct ModelBuild {
    torch::Device device = torch::kCPU;
    torch::ScalarType dtype = torch::kFloat32;
    bool initialize = true;
};

// Builds the model the config describes (no weights loaded).
std::shared_ptr<CausalLM> createCausalLM(const ModelConfig &config, const ModelBuild &build = {});

// Reads DIR/config.json and the weights (model.safetensors or a sharded index), returns the model
// on `device` in `dtype`, in eval mode, dropout off. DIR may also be a PEFT LoRA adapter folder
// (adapter_io.h): its base model (`baseModel`, or the folder its adapter_config.json names) is loaded
// in `dtype` with the adapter attached (float32) and enabled; `baseModel` is ignored otherwise.
std::shared_ptr<CausalLM> loadCausalLM(const std::string &dir, torch::Device device = torch::kCPU,
                                       torch::ScalarType dtype = torch::kFloat32, const std::string &baseModel = {});

// Writes DIR in the Hugging Face layout transformers loads unchanged (a model carrying a LoRA adapter
// is refused: save the adapter with saveAdapter, or its merge with LoraAdapter::mergedStateDict): config.json,
// generation_config.json, model.safetensors (sharded past `maxShardBytes`), and the tokenizer
// files copied from `tokenizerDir` (when non-empty). Files are written under temporary names and
// renamed into place. `dtype` of the saved weights: the model's own unless given.
void savePretrained(CausalLM &model, const std::string &dir, const std::string &tokenizerDir = {},
                    int64_t maxShardBytes = int64_t(5) << 30,
                    std::optional<torch::ScalarType> dtype = std::nullopt);

// savePretrained of a model carrying a LoRA adapter with the adapter merged in (W + s·B·A per adapted
// layer, computed in float32), in `dtype` or the base weights' own dtype; the model is not changed.
void savePretrainedMerged(CausalLM &model, const std::string &dir, const std::string &tokenizerDir = {},
                          std::optional<torch::ScalarType> dtype = std::nullopt);

} // namespace dpo
