// LlamaModel: every RoPE decoder of the architecture table (model_arch.h) — Llama, Mistral, Qwen2,
// Qwen3, Gemma 2, Gemma 3 (text), Phi-3, OLMo 2 — as transformers computes them: one Llama-shaped
// decoder whose few family traits are switches read from the table row and the config:
//   norms        RMSNorm | RMSNorm with the weight applied in float32 (OLMo 2) | (1 + w) RMSNorm (Gemma)
//   placement    pre-norm | pre- and post-norm, four per layer (Gemma) | post-norm only (OLMo 2)
//   attention    GQA/MQA, optional q/k/v(/o) biases, fused qkv_proj (Phi-3), q/k RMSNorm per head
//                (Qwen3, Gemma 3) or over the whole projection (OLMo 2), partial rotary (Phi-3),
//                query_pre_attn_scalar and attention-logit soft-capping (Gemma 2), sliding windows on
//                the layers the config marks, a second RoPE table for sliding layers (Gemma 3)
//   MLP          SwiGLU | GeGLU with tanh gelu (Gemma); fused gate_up_proj (Phi-3)
//   embeddings   optionally scaled by sqrt(hidden) in the weight dtype (Gemma)
//   head         tied or untied, final-logit soft-capping inside the head (Gemma 2)
// with a KV cache for generation (it keeps every past key; sliding layers mask the old ones).
// Parameters carry the HF state-dict names (model.layers.0.self_attn.q_proj.weight, ...), fused
// tensors stay fused, so loading and saving are name-for-name copies. No dropout.
#pragma once

#include "engine/models/attention_mask.h"
#include "engine/models/causal_lm.h"
#include "engine/models/lora.h"
#include "engine/models/model_config.h"
#include "engine/models/rope.h"

#include "engine/torch_api.h"

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
    std::shared_ptr<LoraLayer> lora; // set by LoraAdapter::attach (lora.h); not a registered parameter
};
TORCH_MODULE(Linear);

class EmbeddingImpl : public torch::nn::Module {
public:
    EmbeddingImpl(int64_t vocab, int64_t dim);
    torch::Tensor forward(const torch::Tensor &ids); // [B, T] int64 -> [B, T, dim]
    torch::Tensor weight; // [vocab, dim]
};
TORCH_MODULE(Embedding);

// x / sqrt(mean(x^2) + eps), normalised in float32, then scaled as the family does (NormKind):
//   RMSNorm               weight * n.to(dtype)             (Llama, Mistral, Qwen, Phi-3)
//   RMSNormWeightInFloat  (weight * n).to(dtype)           (OLMo 2)
//   RMSNormOnePlus        (n * (1 + weight.float())).to(dtype); the weight starts at 0 (Gemma)
class RMSNormImpl : public torch::nn::Module {
public:
    RMSNormImpl(int64_t dim, double eps, NormKind kind = NormKind::RMSNorm);
    torch::Tensor forward(const torch::Tensor &x); // [..., dim] -> [..., dim]
    torch::Tensor weight; // [dim]
    double eps;
    NormKind kind;
};
TORCH_MODULE(RMSNorm);

using AttentionMask = dpo::AttentionMask; // attention_mask.h

// cos/sin of one RoPE table for the positions of a forward: [B, T, rotaryDim] each.
struct RopeTables {
    torch::Tensor cos, sin;
};

class AttentionImpl : public torch::nn::Module {
public:
    AttentionImpl(const ModelConfig &c, int64_t rotaryDim);
    // x [B, T, hidden]; rope [B, T, rotaryDim]; with a cache, this step's keys/values are appended
    // to its `layer` and attention sees past + new. A packed row (mask.segments) attends per sequence.
    torch::Tensor forward(
        const torch::Tensor &x, const RopeTables &rope, const AttentionMask &mask, KVCache *cache, size_t layer);

    // Either q_proj/k_proj/v_proj or (Phi-3) one qkv_proj whose rows are q, then k, then v.
    Linear q_proj { nullptr }, k_proj { nullptr }, v_proj { nullptr }, qkv_proj { nullptr }, o_proj { nullptr };
    RMSNorm q_norm { nullptr }, k_norm { nullptr }; // QkNorm::PerHead: [headDim]; FullWidth: [heads * headDim]

private:
    torch::Tensor attend(
        const torch::Tensor &q, const torch::Tensor &k, const torch::Tensor &v, const AttentionMask &mask) const;

    int64_t m_heads, m_kvHeads, m_headDim, m_rotaryDim;
    QkNorm m_qkNorm;
    double m_scale; // scores multiplier
    double m_softcap; // 0 = none
};
TORCH_MODULE(Attention);

// Gated MLP: down(act(gate(x)) * up(x)), act = silu (SwiGLU) or tanh gelu (GeGLU); Phi-3 keeps
// gate and up in one gate_up_proj (first half gate).
class MlpImpl : public torch::nn::Module {
public:
    explicit MlpImpl(const ModelConfig &c);
    torch::Tensor forward(const torch::Tensor &x); // [B, T, hidden] -> [B, T, hidden]
    Linear gate_proj { nullptr }, up_proj { nullptr }, gate_up_proj { nullptr }, down_proj { nullptr };

private:
    int64_t m_intermediate;
    bool m_gelu;
};
TORCH_MODULE(Mlp);

// One block. Pre:      h = x + attn(input_ln(x));  out = h + mlp(post_attention_ln(h))
//            Sandwich: h = x + post_attention_ln(attn(input_ln(x)));
//                      out = h + post_feedforward_ln(mlp(pre_feedforward_ln(h)))
//            Post:     h = x + post_attention_ln(attn(x));  out = h + post_feedforward_ln(mlp(h))
class DecoderLayerImpl : public torch::nn::Module {
public:
    DecoderLayerImpl(const ModelConfig &c, int64_t rotaryDim);
    torch::Tensor forward(
        const torch::Tensor &x, const RopeTables &rope, const AttentionMask &mask, KVCache *cache, size_t layer);
    Attention self_attn { nullptr };
    Mlp mlp { nullptr };
    RMSNorm input_layernorm { nullptr }, post_attention_layernorm { nullptr };
    RMSNorm pre_feedforward_layernorm { nullptr }, post_feedforward_layernorm { nullptr };

private:
    NormPlacement m_placement;
};
TORCH_MODULE(DecoderLayer);

// The "model." prefix of the HF names: embeddings, layers, final norm.
class BackboneImpl : public torch::nn::Module {
public:
    BackboneImpl(const ModelConfig &c, const std::vector<int64_t> &rotaryDims);
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
    // initializer_range), zero biases, unit norms — zero for (1 + w) norms); loading overwrites them.
    explicit LlamaModel(ModelConfig config);

    torch::Tensor forwardHidden(
        const torch::Tensor &inputIds, const torch::Tensor &attentionMask = {}, KVCache *cache = nullptr) override;
    torch::Tensor lmHead(const torch::Tensor &hidden) override;
    torch::Tensor plainHeadWeight() override;
    torch::Tensor forwardHiddenPacked(const torch::Tensor &inputIds, const std::vector<int64_t> &starts) override;
    const ModelConfig &config() const override { return m_config; }

private:
    torch::Tensor decode(torch::Tensor x, const MaskAndPositions &mp, const AttentionMask &slidingMask, KVCache *cache);
    ModelConfig m_config;
    RotaryEmbedding m_rotary; // full-attention layers
    RotaryEmbedding m_rotaryLocal; // sliding layers (Gemma 3's local table; otherwise the same as m_rotary)
    bool m_localDiffers = false;
    llama::Backbone m_model { nullptr };
    llama::Linear m_lmHead { nullptr }; // null when tied to model.embed_tokens.weight
};

} // namespace dpo
