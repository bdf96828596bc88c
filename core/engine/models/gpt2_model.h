// Gpt2Model: GPT-2 (model_type gpt2) as Hugging Face's GPT2LMHeadModel computes it: learned token
// and position embeddings, pre-norm blocks with LayerNorm, fused q/k/v projection (c_attn), gelu_new
// MLP, final LayerNorm and a head tied to the token embeddings (untied when tie_word_embeddings is
// false). Linear layers are GPT-2's Conv1D: weights stored [in, out] and applied as x @ W + b, so the
// HF state dict loads and saves unchanged under its own names (transformer.h.0.attn.c_attn.weight,
// ...). KV cache, attention mask and positions follow LlamaModel exactly. It does not implement
// dropout, cross-attention, scale_attn_by_inverse_layer_idx or reorder_and_upcast_attn (refused).
#pragma once

#include "engine/models/attention_mask.h"
#include "engine/models/causal_lm.h"
#include "engine/models/lora.h"
#include "engine/models/model_config.h"

#include "engine/torch_api.h"

#include <vector>

namespace dpo {
namespace gpt2 {

// GPT-2's Conv1D: y = x @ weight + bias with weight [in, out] (the transpose of nn.Linear's).
class Conv1DImpl : public torch::nn::Module {
public:
    Conv1DImpl(int64_t in, int64_t out);
    torch::Tensor forward(const torch::Tensor &x); // [..., in] -> [..., out]
    torch::Tensor weight; // [in, out]
    torch::Tensor bias; // [out]
    std::shared_ptr<LoraLayer> lora; // set by LoraAdapter::attach (lora.h); not a registered parameter
};
TORCH_MODULE(Conv1D);

class LayerNormImpl : public torch::nn::Module {
public:
    LayerNormImpl(int64_t dim, double eps);
    torch::Tensor forward(const torch::Tensor &x); // [..., dim] -> [..., dim]
    torch::Tensor weight; // [dim]
    torch::Tensor bias; // [dim]
    double eps;
};
TORCH_MODULE(LayerNorm);

class EmbeddingImpl : public torch::nn::Module {
public:
    EmbeddingImpl(int64_t count, int64_t dim);
    torch::Tensor forward(const torch::Tensor &ids); // [B, T] int64 -> [B, T, dim]
    torch::Tensor weight; // [count, dim]
};
TORCH_MODULE(Embedding);

using AttentionMask = dpo::AttentionMask; // attention_mask.h

// Multi-head self-attention: c_attn [n, 3n] -> q, k, v; softmax(q k^T / sqrt(d) + mask) v; c_proj.
class AttentionImpl : public torch::nn::Module {
public:
    explicit AttentionImpl(const ModelConfig &c);
    // x [B, T, n]; with a cache, this step's keys/values are appended to its `layer` and attention
    // sees past + new. A packed row (mask.segments) attends per sequence.
    torch::Tensor forward(const torch::Tensor &x, const AttentionMask &mask, KVCache *cache, size_t layer);
    Conv1D c_attn { nullptr }, c_proj { nullptr };

private:
    torch::Tensor attend(
        const torch::Tensor &q, const torch::Tensor &k, const torch::Tensor &v, const AttentionMask &mask) const;

    int64_t m_heads, m_headDim;
};
TORCH_MODULE(Attention);

// c_proj(act(c_fc(x))): [B, T, n] -> [B, T, inner] -> [B, T, n]; act is gelu_new (tanh) or gelu (erf).
class MlpImpl : public torch::nn::Module {
public:
    explicit MlpImpl(const ModelConfig &c);
    torch::Tensor forward(const torch::Tensor &x);
    Conv1D c_fc { nullptr }, c_proj { nullptr };

private:
    bool m_tanhGelu;
};
TORCH_MODULE(Mlp);

// Pre-norm block: x + attn(ln_1(x)), then x + mlp(ln_2(x)).
class BlockImpl : public torch::nn::Module {
public:
    explicit BlockImpl(const ModelConfig &c);
    torch::Tensor forward(const torch::Tensor &x, const AttentionMask &mask, KVCache *cache, size_t layer);
    LayerNorm ln_1 { nullptr }, ln_2 { nullptr };
    Attention attn { nullptr };
    Mlp mlp { nullptr };
};
TORCH_MODULE(Block);

// The "transformer." prefix of the HF names.
class TransformerImpl : public torch::nn::Module {
public:
    explicit TransformerImpl(const ModelConfig &c);
    Embedding wte { nullptr }, wpe { nullptr };
    torch::nn::ModuleList h { nullptr };
    std::vector<Block> blocks; // the same modules, typed
    LayerNorm ln_f { nullptr };
};
TORCH_MODULE(Transformer);

} // namespace gpt2

class Gpt2Model : public CausalLM {
public:
    // Parameters are created in float32 on the CPU with HF's initialisation (normal(0,
    // initializer_range), c_proj scaled by 1/sqrt(2 n_layer), zero biases, unit norms).
    explicit Gpt2Model(ModelConfig config);

    torch::Tensor forwardHidden(
        const torch::Tensor &inputIds, const torch::Tensor &attentionMask = {}, KVCache *cache = nullptr) override;
    torch::Tensor lmHead(const torch::Tensor &hidden) override;
    torch::Tensor plainHeadWeight() override;
    torch::Tensor forwardHiddenPacked(const torch::Tensor &inputIds, const std::vector<int64_t> &starts) override;
    const ModelConfig &config() const override { return m_config; }

private:
    torch::Tensor decode(const torch::Tensor &tokens, const MaskAndPositions &mp, KVCache *cache);
    ModelConfig m_config;
    gpt2::Transformer m_transformer { nullptr };
    // "lm_head.weight" [vocab, n] when not tied to wte (a module holding just that weight); else null.
    gpt2::Embedding m_lmHead { nullptr };
};

} // namespace dpo
