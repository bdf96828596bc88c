// ModelConfig: what a Hugging Face config.json (+ generation_config.json) says about a causal LM
// that this engine can run: the families of the architecture table (model_arch.h: llama, mistral,
// qwen2, gpt2, qwen3, gemma2, gemma3_text, phi3, olmo2, smollm3), read through the family's row. Anything it
// cannot run faithfully (another architecture, an unsupported RoPE variant, an activation the
// family does not have) is refused with a dpo::Error naming the field, never turned into a
// silently wrong model. The original JSON is kept in `raw` so saving writes back every field users had.
#pragma once

#include "engine/models/model_arch.h"
#include "engine/models/rope_parameters.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace dpo {

struct ModelConfig {
    std::string modelType;    // a model_type of the architecture table (model_arch.h)
    std::string architecture; // architectures[0], e.g. "LlamaForCausalLM"
    const ArchInfo *arch = nullptr; // the table row of modelType

    int64_t vocabSize = 0;
    int64_t hiddenSize = 0;
    int64_t intermediateSize = 0; // gpt2: n_inner or 4 * n_embd
    int64_t numLayers = 0;
    int64_t numHeads = 0;
    int64_t numKvHeads = 0; // == numHeads for MHA, 1 for MQA
    int64_t headDim = 0;    // head_dim if given, else hiddenSize / numHeads
    int64_t maxPositionEmbeddings = 0;

    // Llama family
    double rmsNormEps = 1e-6;
    double ropeTheta = 10000.0; // top level "rope_theta" or "rope_parameters.rope_theta" (== rope.theta)
    RopeParameters rope; // full-attention layers (and every layer unless arch->localRope)
    RopeParameters ropeLocal; // sliding layers: Gemma 3's rope_local_base_freq table, else == rope
    bool attentionBias = false; // q/k/v (and o for llama's attention_bias) biases; qwen2: q/k/v only
    bool oProjBias = false;
    bool mlpBias = false;
    std::string hiddenAct = "silu"; // the activation as named in config.json (arch->activationKey)

    // Attention layout. A sliding layer's query at position i attends to keys j with
    // i - slidingWindow < j <= i (when slidingWindow > 0; without a window it attends fully).
    int64_t slidingWindow = 0; // 0 = no window
    std::vector<bool> slidingLayers; // [numLayers]: layer_types[i] == "sliding_attention"
    std::vector<bool> nopeLayers; // [numLayers] or empty: layer i has no RoPE (SmolLM3's no_rope_layers[i] == 0)
    bool isNopeLayer(size_t layer) const { return layer < nopeLayers.size() && nopeLayers[layer]; }
    double attentionScale = 0; // scores * attentionScale; 0 = headDim^-0.5 (Gemma: query_pre_attn_scalar^-0.5)
    double attnLogitSoftcapping = 0; // 0 = none; else scores = cap * tanh(scores / cap) before the mask
    double finalLogitSoftcapping = 0; // 0 = none; else logits = cap * tanh(logits / cap)
    bool anySlidingLayer() const;

    // GPT-2
    double layerNormEps = 1e-5;
    std::string activationFunction = "gelu_new";

    bool tieWordEmbeddings = false;
    int64_t bosTokenId = -1;
    std::vector<int64_t> eosTokenIds; // config.json, extended by generation_config.json
    int64_t padTokenId = -1;
    std::string torchDtype = "float32"; // "dtype" or "torch_dtype" as stored

    nlohmann::json raw; // config.json as read (a multimodal wrapper: its text_config as read)
    // Gemma3ForConditionalGeneration (model_type "gemma3"): the whole config.json as read; the text
    // model is built from its text_config and saved back inside it. Null for plain causal LMs.
    nlohmann::json wrapperRaw;
    bool isMultimodalWrapper() const { return !wrapperRaw.is_null(); }
    nlohmann::json rawGeneration; // generation_config.json as read (null when absent)

    // Parses DIR/config.json and, when present, DIR/generation_config.json.
    static ModelConfig fromDirectory(const std::string &dir);
    // `source` names the file in error messages.
    static ModelConfig fromJson(const nlohmann::json &j, const std::string &source);
    // The config.json to save: `raw` with the engine's fields and `dtype` written back.
    nlohmann::json toJson() const;

    int64_t firstEos() const { return eosTokenIds.empty() ? -1 : eosTokenIds.front(); }
    bool isEos(int64_t id) const;
};

} // namespace dpo
