#include "engine/models/model_arch.h"

namespace dpo {

namespace {

// Defaults are those of each family's transformers configuration class (configuration_*.py).
// clang-format off
const std::vector<ArchInfo> kTable = {
    //  model_type     architecture              impl            norm                            placement                 positions             mlp                     act key               default act          bias                     qk norm             fusedQkv fusedGU sliding rule                          window  tied   embScale softcap qpas   localRope headDim maxPos    theta       eps    qpas  attnCap finalCap origMax nope
    { "llama",       "LlamaForCausalLM",       ArchImpl::Llama, NormKind::RMSNorm,              NormPlacement::Pre,       PositionKind::Rope,   MlpKind::GatedSilu,     "hidden_act",         "silu",              BiasRule::LlamaFlags,    QkNorm::None,       false,   false,  SlidingRule::None,                    0,      false, false,   false,  false, false,    0,      2048,     10000.0,    1e-6,  0,    0,      0, 0 },
    { "mistral",     "MistralForCausalLM",     ArchImpl::Llama, NormKind::RMSNorm,              NormPlacement::Pre,       PositionKind::Rope,   MlpKind::GatedSilu,     "hidden_act",         "silu",              BiasRule::None,          QkNorm::None,       false,   false,  SlidingRule::AllLayersWhenSet,        4096,   false, false,   false,  false, false,    0,      131072,   10000.0,    1e-6,  0,    0,      0, 0 },
    { "qwen2",       "Qwen2ForCausalLM",       ArchImpl::Llama, NormKind::RMSNorm,              NormPlacement::Pre,       PositionKind::Rope,   MlpKind::GatedSilu,     "hidden_act",         "silu",              BiasRule::QkvOnly,       QkNorm::None,       false,   false,  SlidingRule::QwenUseSlidingWindow,    4096,   false, false,   false,  false, false,    0,      32768,    10000.0,    1e-6,  0,    0,      0, 0 },
    { "gpt2",        "GPT2LMHeadModel",        ArchImpl::Gpt2,  NormKind::LayerNorm,            NormPlacement::Pre,       PositionKind::Learned, MlpKind::Gelu,         "activation_function", "gelu_new",         BiasRule::Gpt2,          QkNorm::None,       false,   false,  SlidingRule::None,                    0,      true,  false,   false,  false, false,    0,      1024,     0.0,        1e-5,  0,    0,      0, 0 },
    { "qwen3",       "Qwen3ForCausalLM",       ArchImpl::Llama, NormKind::RMSNorm,              NormPlacement::Pre,       PositionKind::Rope,   MlpKind::GatedSilu,     "hidden_act",         "silu",              BiasRule::AttentionFlag, QkNorm::PerHead,    false,   false,  SlidingRule::QwenUseSlidingWindow,    4096,   false, false,   false,  false, false,    128,    32768,    10000.0,    1e-6,  0,    0,      0, 0 },
    { "gemma2",      "Gemma2ForCausalLM",      ArchImpl::Llama, NormKind::RMSNormOnePlus,       NormPlacement::Sandwich,  PositionKind::Rope,   MlpKind::GatedGeluTanh, "hidden_activation",  "gelu_pytorch_tanh", BiasRule::AttentionFlag, QkNorm::None,       false,   false,  SlidingRule::Alternating,             4096,   true,  true,    true,   true,  false,    256,    8192,     10000.0,    1e-6,  256,  50.0,   30.0, 0 },
    { "gemma3_text", "Gemma3ForCausalLM",      ArchImpl::Llama, NormKind::RMSNormOnePlus,       NormPlacement::Sandwich,  PositionKind::Rope,   MlpKind::GatedGeluTanh, "hidden_activation",  "gelu_pytorch_tanh", BiasRule::AttentionFlag, QkNorm::PerHead,    false,   false,  SlidingRule::Pattern,                 4096,   true,  true,    true,   true,  true,     256,    131072,   1000000.0,  1e-6,  256,  0,      0, 0 },
    { "phi3",        "Phi3ForCausalLM",        ArchImpl::Llama, NormKind::RMSNorm,              NormPlacement::Pre,       PositionKind::Rope,   MlpKind::GatedSilu,     "hidden_act",         "silu",              BiasRule::None,          QkNorm::None,       true,    true,   SlidingRule::AllLayersWhenSet,        0,      false, false,   false,  false, false,    0,      4096,     10000.0,    1e-5,  0,    0,      0, 4096 },
    { "olmo2",       "Olmo2ForCausalLM",       ArchImpl::Llama, NormKind::RMSNormWeightInFloat, NormPlacement::Post,      PositionKind::Rope,   MlpKind::GatedSilu,     "hidden_act",         "silu",              BiasRule::AttentionFlag, QkNorm::FullWidth,  false,   false,  SlidingRule::None,                    0,      false, false,   false,  false, false,    0,      2048,     10000.0,    1e-5,  0,    0,      0, 0 },
    { "smollm3",     "SmolLM3ForCausalLM",     ArchImpl::Llama, NormKind::RMSNorm,              NormPlacement::Pre,       PositionKind::Rope,   MlpKind::GatedSilu,     "hidden_act",         "silu",              BiasRule::LlamaFlags,    QkNorm::None,       false,   false,  SlidingRule::NopeLayers,              0,      true,  false,   false,  false, false,    0,      32768,    2000000.0,  1e-6,  0,    0,      0, 0,   true },
};
// clang-format on

} // namespace

const std::vector<ArchInfo> &modelArchTable()
{
    return kTable;
}

const ArchInfo *findModelArch(const std::string &modelType)
{
    for (const auto &a : kTable)
        if (modelType == a.modelType)
            return &a;
    return nullptr;
}

std::string supportedModelTypes()
{
    std::string out;
    for (const auto &a : kTable)
        out += (out.empty() ? "" : ", ") + std::string(a.modelType);
    return out;
}

std::string refusedModelTypeReason(const std::string &t)
{
    if (t == "gemma3")
        return "a Gemma 3 config without text_config is not supported (Gemma3ForConditionalGeneration checkpoints "
               "load their text model from text_config; text-only ones have model_type gemma3_text)";
    if (t == "mixtral" || t == "qwen2_moe" || t == "qwen3_moe" || t == "olmoe" || t == "deepseek_v3"
        || t == "phimoe" || t == "gpt_oss")
        return "mixture-of-experts models are not supported yet";
    if (t == "qwen3_next" || t == "qwen3_5" || t == "qwen3.5" || t == "jamba" || t == "falcon_h1")
        return "linear-attention / state-space hybrids are not supported yet";
    if (t == "llava" || t == "mllama" || t == "qwen2_vl" || t == "qwen2_5_vl" || t == "paligemma")
        return "vision-language models are not supported yet";
    return "";
}

const char *toString(NormKind k)
{
    switch (k) {
    case NormKind::RMSNorm:
        return "RMSNorm";
    case NormKind::RMSNormWeightInFloat:
        return "RMSNorm (weight applied in float32)";
    case NormKind::RMSNormOnePlus:
        return "RMSNorm (1 + weight)";
    case NormKind::LayerNorm:
        return "LayerNorm";
    }
    return "?";
}

const char *toString(NormPlacement p)
{
    switch (p) {
    case NormPlacement::Pre:
        return "pre-norm";
    case NormPlacement::Sandwich:
        return "pre- and post-norm (four per layer)";
    case NormPlacement::Post:
        return "post-norm (after attention and MLP)";
    }
    return "?";
}

const char *toString(MlpKind k)
{
    switch (k) {
    case MlpKind::GatedSilu:
        return "SwiGLU";
    case MlpKind::GatedGeluTanh:
        return "GeGLU (tanh gelu)";
    case MlpKind::Gelu:
        return "GELU MLP";
    }
    return "?";
}

const char *toString(QkNorm q)
{
    switch (q) {
    case QkNorm::None:
        return "none";
    case QkNorm::PerHead:
        return "per head";
    case QkNorm::FullWidth:
        return "full width";
    }
    return "?";
}

const char *toString(SlidingRule s)
{
    switch (s) {
    case SlidingRule::None:
        return "none";
    case SlidingRule::AllLayersWhenSet:
        return "every layer when sliding_window is set";
    case SlidingRule::QwenUseSlidingWindow:
        return "use_sliding_window: layers from max_window_layers on";
    case SlidingRule::Alternating:
        return "alternating (even layers)";
    case SlidingRule::Pattern:
        return "sliding_window_pattern";
    case SlidingRule::NopeLayers:
        return "use_sliding_window: the layers without RoPE";
    }
    return "?";
}

} // namespace dpo
