// The architecture table: one row per supported Hugging Face model_type, saying what each family is
// (what llama.cpp's llama-arch is to that project). ModelConfig reads a config.json through its row,
// createCausalLM picks the implementation from it, the loader takes tensor-name rules from it, and
// LlamaModel switches its norms, MLP, attention extras and window pattern on it. Adding a family
// that is "Llama with a twist" is one row here plus, at most, the module it really adds.
// Not here: per-checkpoint values (sizes, windows, RoPE parameters); those are ModelConfig's.
#pragma once

#include <string>
#include <vector>

namespace dpo {

enum class ArchImpl {
    Llama, // LlamaModel (llama_model.h): every RoPE decoder below
    Gpt2, // Gpt2Model (gpt2_model.h)
};

enum class NormKind {
    RMSNorm, // weight * (x / rms(x)) with the normalisation in float32, cast back before the weight (Llama)
    RMSNormWeightInFloat, // (weight * (x / rms(x))).to(dtype): the weight multiplies in float32 (OLMo 2)
    RMSNormOnePlus, // (1 + weight) * (x / rms(x)), all in float32, then cast (Gemma); weights start at 0
    LayerNorm, // GPT-2
};

enum class NormPlacement {
    Pre, // x + attn(norm(x)); x + mlp(norm(x))                       (input_layernorm, post_attention_layernorm)
    Sandwich, // x + norm(attn(norm(x))); x + norm(mlp(norm(x)))      (Gemma 2/3: four norms per layer)
    Post, // x + norm(attn(x)); x + norm(mlp(x))                      (OLMo 2: no input norms)
};

enum class PositionKind { Rope, Learned };

enum class MlpKind {
    GatedSilu, // down(silu(gate(x)) * up(x))          (SwiGLU)
    GatedGeluTanh, // down(gelu_tanh(gate(x)) * up(x)) (GeGLU, Gemma)
    Gelu, // GPT-2's c_fc / c_proj
};

enum class BiasRule {
    None, // no biases anywhere (Mistral, Phi-3)
    LlamaFlags, // attention_bias on q/k/v/o, mlp_bias on the MLP (Llama)
    QkvOnly, // q/k/v biases always, none on o_proj or the MLP (Qwen2)
    AttentionFlag, // attention_bias on q/k/v/o, MLP without (Qwen3, OLMo 2, Gemma)
    Gpt2, // GPT-2: every linear and norm has one
};

enum class QkNorm {
    None,
    PerHead, // RMSNorm of each head's q and k over head_dim, before RoPE (Qwen3, Gemma 3)
    FullWidth, // RMSNorm over the whole projection (heads * head_dim), before the heads split (OLMo 2)
};

// Which layers use sliding-window attention, and when (see ModelConfig::layerTypes).
enum class SlidingRule {
    None, // never
    AllLayersWhenSet, // every layer when sliding_window is not null (Mistral, Phi-3)
    QwenUseSlidingWindow, // use_sliding_window true: layers >= max_window_layers (Qwen2, Qwen3)
    Alternating, // layer i slides when (i + 1) % 2 != 0, i.e. 0, 2, 4, ... (Gemma 2)
    Pattern, // layer i slides unless (i + 1) % sliding_window_pattern == 0 (Gemma 3)
    NopeLayers, // use_sliding_window: the layers without RoPE slide (SmolLM3)
};

struct ArchInfo {
    const char *modelType; // config.json "model_type"
    const char *architecture; // the HF class a causal LM of this family is, e.g. "LlamaForCausalLM"
    ArchImpl impl;
    NormKind norm;
    NormPlacement placement;
    PositionKind positions;
    MlpKind mlp;
    const char *activationKey; // where config.json names the activation
    const char *defaultActivation;
    BiasRule bias;
    QkNorm qkNorm;
    bool fusedQkv; // one qkv_proj (rows q, k, v) instead of q_proj/k_proj/v_proj (Phi-3)
    bool fusedGateUp; // one gate_up_proj (first half gate) instead of gate_proj/up_proj (Phi-3)
    SlidingRule sliding;
    long long defaultSlidingWindow; // the config class's default when the key is absent (0 = none)
    bool tiedDefault; // tie_word_embeddings when the key is absent
    bool embedScale; // embeddings * sqrt(hidden_size), the constant cast to the weight dtype (Gemma)
    bool softcapping; // reads attn_logit_softcapping / final_logit_softcapping (Gemma 2, Gemma 3)
    bool queryPreAttnScalar; // attention scale query_pre_attn_scalar^-0.5 instead of head_dim^-0.5 (Gemma)
    bool localRope; // sliding layers use their own RoPE (rope_local_base_freq, no scaling) (Gemma 3)
    long long defaultHeadDim; // head_dim when the key is absent (0 = hidden_size / num_attention_heads)
    long long defaultMaxPositions;
    double defaultRopeTheta;
    double defaultNormEps;
    double defaultQueryPreAttnScalar; // when the key is absent (Gemma: 256)
    double defaultAttnSoftcap; // when the key is absent (0 = none; Gemma 2: 50)
    double defaultFinalSoftcap; // when the key is absent (0 = none; Gemma 2: 30)
    long long defaultOriginalMaxPositions; // a top-level original_max_position_embeddings the class always has (Phi-3: 4096; 0 = none)
    bool nopeLayers = false; // reads no_rope_layers / no_rope_layer_interval: some layers have no RoPE (SmolLM3)
};

// Every supported family, in the order the README lists them.
const std::vector<ArchInfo> &modelArchTable();
// The row for a model_type, or nullptr.
const ArchInfo *findModelArch(const std::string &modelType);
// "llama, mistral, qwen2, ..." for error messages.
std::string supportedModelTypes();
// Why a known-but-unsupported model_type is refused ("" when it is simply unknown), e.g. the
// multimodal Gemma 3 wrapper or mixture-of-experts families.
std::string refusedModelTypeReason(const std::string &modelType);

const char *toString(NormKind k);
const char *toString(NormPlacement p);
const char *toString(MlpKind k);
const char *toString(QkNorm q);
const char *toString(SlidingRule s);

} // namespace dpo
