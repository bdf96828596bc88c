// ModelConfig: what a Hugging Face config.json (+ generation_config.json) says about a causal LM
// that this engine can run: llama, mistral, qwen2 (q/k/v biases) and gpt2. Anything it cannot run
// faithfully (another architecture, an unsupported rope_scaling type, sliding windows that matter)
// is refused with a dpo::Error naming the field, never turned into a silently wrong model.
// The original JSON is kept in `raw` so saving writes back every field users had.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace dpo {

struct ModelConfig {
    std::string modelType;    // "llama" | "mistral" | "qwen2" | "gpt2"
    std::string architecture; // architectures[0], e.g. "LlamaForCausalLM"

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
    double ropeTheta = 10000.0; // top level "rope_theta" or "rope_parameters.rope_theta"
    bool attentionBias = false; // q/k/v (and o for llama's attention_bias) biases; qwen2: q/k/v only
    bool oProjBias = false;
    bool mlpBias = false;
    std::string hiddenAct = "silu";

    // GPT-2
    double layerNormEps = 1e-5;
    std::string activationFunction = "gelu_new";

    bool tieWordEmbeddings = false;
    int64_t bosTokenId = -1;
    std::vector<int64_t> eosTokenIds; // config.json, extended by generation_config.json
    int64_t padTokenId = -1;
    std::string torchDtype = "float32"; // "dtype" or "torch_dtype" as stored

    nlohmann::json raw; // config.json as read
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
