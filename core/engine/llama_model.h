// LlamaModel: the Llama-family decoder (model_type llama, mistral, qwen2) as Hugging Face's
// LlamaForCausalLM / MistralForCausalLM / Qwen2ForCausalLM compute it: RMSNorm, rotary position
// embeddings (rotate_half convention), grouped-query attention (GQA/MQA), SwiGLU MLP, optional
// q/k/v (and o) biases, tied or untied lm_head, with a KV cache for generation.
// Parameters carry the HF state-dict names (model.layers.0.self_attn.q_proj.weight, ...), so
// loading and saving are name-for-name copies. It does not implement rope scaling variants,
// sliding-window attention or dropout (ModelConfig refuses configs where those would matter).
#pragma once

#include "engine/attention_mask.h"
#include "engine/causal_lm.h"
#include "engine/model_config.h"

#include <torch/torch.h>

#include <vector>

namespace dpo {
namespace llama {

// A bias-optional linear layer with HF parameter names ("weight" [out, in], "bias" [out]).
// torch::nn::Linear is not used because it registers an undefined "bias" when there is none.
class LinearImpl : public torch::nn::Module {
public:
    LinearImpl(int64_t in, int64_t out, bool bias);
    torch::Tensor forward(const torch::Tensor &x); // [..., in] -> [..., out]
    torch::Tensor weight;
    torch::Tensor bias; // undefined when there is none
};
TORCH_MODULE(Linear);

class EmbeddingImpl : public torch::nn::Module {
public:
    EmbeddingImpl(int64_t vocab, int64_t dim);
    torch::Tensor forward(const torch::Tensor &ids); // [B, T] int64 -> [B, T, dim]
    torch::Tensor weight; // [vocab, dim]
};
TORCH_MODULE(Embedding);

// y = weight * (x / sqrt(mean(x^2) + eps)), normalised in float32 then cast back (as HF does).
class RMSNormImpl : public torch::nn::Module {
public:
    RMSNormImpl(int64_t dim, double eps);
    torch::Tensor forward(const torch::Tensor &x); // [..., dim] -> [..., dim]
    torch::Tensor weight; // [dim]
    double eps;
};
TORCH_MODULE(RMSNorm);

// Rotary position embeddings: cos/sin tables for given positions. inv_freq is computed in float32
// from rope_theta (it is not a parameter; HF does not save it either).
class RotaryEmbedding {
public:
    RotaryEmbedding(int64_t headDim, double theta);
    // positions [B, T] int64 -> {cos, sin}, each [B, T, headDim] in `dtype`.
    std::pair<torch::Tensor, torch::Tensor> cosSin(const torch::Tensor &positions, torch::ScalarType dtype) const;

private:
    int64_t m_headDim;
    double m_theta;
};

using AttentionMask = dpo::AttentionMask; // attention_mask.h

class AttentionImpl : public torch::nn::Module {
public:
    explicit AttentionImpl(const ModelConfig &c);
    // x [B, T, hidden]; cos/sin [B, T, headDim]; cacheK/cacheV [B, kvHeads, T_past, headDim] or
    // undefined, replaced by the concatenation with this step's keys/values when non-null.
    torch::Tensor forward(const torch::Tensor &x, const torch::Tensor &cos, const torch::Tensor &sin,
        const AttentionMask &mask, torch::Tensor *cacheK, torch::Tensor *cacheV);

    Linear q_proj { nullptr }, k_proj { nullptr }, v_proj { nullptr }, o_proj { nullptr };

private:
    int64_t m_heads, m_kvHeads, m_headDim;
};
TORCH_MODULE(Attention);

// SwiGLU: down(silu(gate(x)) * up(x)).
class MlpImpl : public torch::nn::Module {
public:
    explicit MlpImpl(const ModelConfig &c);
    torch::Tensor forward(const torch::Tensor &x); // [B, T, hidden] -> [B, T, hidden]
    Linear gate_proj { nullptr }, up_proj { nullptr }, down_proj { nullptr };
};
TORCH_MODULE(Mlp);

// Pre-norm block: x + attn(norm(x)), then x + mlp(norm(x)).
class DecoderLayerImpl : public torch::nn::Module {
public:
    explicit DecoderLayerImpl(const ModelConfig &c);
    torch::Tensor forward(const torch::Tensor &x, const torch::Tensor &cos, const torch::Tensor &sin,
        const AttentionMask &mask, torch::Tensor *cacheK, torch::Tensor *cacheV);
    Attention self_attn { nullptr };
    Mlp mlp { nullptr };
    RMSNorm input_layernorm { nullptr }, post_attention_layernorm { nullptr };
};
TORCH_MODULE(DecoderLayer);

// The "model." prefix of the HF names: embeddings, layers, final norm.
class BackboneImpl : public torch::nn::Module {
public:
    explicit BackboneImpl(const ModelConfig &c);
    Embedding embed_tokens { nullptr };
    torch::nn::ModuleList layers { nullptr };
    std::vector<DecoderLayer> layerList; // the same modules, typed
    RMSNorm norm { nullptr };
};
TORCH_MODULE(Backbone);

} // namespace llama

class LlamaModel : public CausalLM {
public:
    // Parameters are created in float32 on the CPU with HF's initialisation (normal(0,
    // initializer_range), zero biases, unit norms); loading overwrites them.
    explicit LlamaModel(ModelConfig config);

    torch::Tensor forwardHidden(
        const torch::Tensor &inputIds, const torch::Tensor &attentionMask = {}, KVCache *cache = nullptr) override;
    torch::Tensor lmHead(const torch::Tensor &hidden) override;
    const ModelConfig &config() const override { return m_config; }

private:
    ModelConfig m_config;
    llama::Backbone m_model { nullptr };
    llama::Linear m_lmHead { nullptr }; // null when tied to model.embed_tokens.weight
    llama::RotaryEmbedding m_rotary;
};

} // namespace dpo
