#include "engine/llama_model.h"

#include "engine/error.h"

#include <torch/version.h>

#include <cmath>
#include <limits>

namespace dpo {
namespace llama {

namespace {

// HF's rotate_half: [x1, x2] -> [-x2, x1] on the last dimension.
torch::Tensor rotateHalf(const torch::Tensor &x)
{
    const int64_t half = x.size(-1) / 2;
    return torch::cat({ -x.slice(-1, half), x.slice(-1, 0, half) }, -1);
}

} // namespace

// ---------------------------------------------------------------------------------------------
// Building blocks

LinearImpl::LinearImpl(int64_t in, int64_t out, bool hasBias)
{
    weight = register_parameter("weight", torch::empty({ out, in }));
    if (hasBias)
        bias = register_parameter("bias", torch::zeros({ out }));
}

torch::Tensor LinearImpl::forward(const torch::Tensor &x)
{
    return torch::linear(x, weight, bias);
}

EmbeddingImpl::EmbeddingImpl(int64_t vocab, int64_t dim)
{
    weight = register_parameter("weight", torch::empty({ vocab, dim }));
}

torch::Tensor EmbeddingImpl::forward(const torch::Tensor &ids)
{
    return torch::embedding(weight, ids);
}

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_)
    : eps(eps_)
{
    weight = register_parameter("weight", torch::ones({ dim }));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor &x)
{
    // HF: variance in float32, normalise in float32, cast back, then scale by the weight.
    const auto dtype = x.scalar_type();
    auto h = x.to(torch::kFloat32);
    auto variance = h.pow(2).mean(-1, /*keepdim=*/true);
    h = h * torch::rsqrt(variance + eps);
    return weight * h.to(dtype);
}

RotaryEmbedding::RotaryEmbedding(int64_t headDim, double theta)
    : m_headDim(headDim)
    , m_theta(theta)
{
}

std::pair<torch::Tensor, torch::Tensor> RotaryEmbedding::cosSin(
    const torch::Tensor &positions, torch::ScalarType dtype) const
{
    const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(positions.device());
    // inv_freq = 1 / theta^(2i / d), in float32 exactly as HF computes it: [d/2]
    auto exponent
        = torch::arange(0, m_headDim, 2, torch::TensorOptions().dtype(torch::kInt64).device(positions.device()))
              .to(torch::kFloat32)
        / static_cast<double>(m_headDim);
    auto invFreq = 1.0 / torch::pow(torch::scalar_tensor(m_theta, f32), exponent);
    // freqs [B, T, d/2] = positions ⊗ inv_freq; emb = [freqs, freqs]: [B, T, d]
    auto freqs = positions.to(torch::kFloat32).unsqueeze(-1) * invFreq;
    auto emb = torch::cat({ freqs, freqs }, -1);
    return { emb.cos().to(dtype), emb.sin().to(dtype) };
}

// ---------------------------------------------------------------------------------------------
// Attention

AttentionImpl::AttentionImpl(const ModelConfig &c)
    : m_heads(c.numHeads)
    , m_kvHeads(c.numKvHeads)
    , m_headDim(c.headDim)
{
    q_proj = register_module("q_proj", Linear(c.hiddenSize, m_heads * m_headDim, c.attentionBias));
    k_proj = register_module("k_proj", Linear(c.hiddenSize, m_kvHeads * m_headDim, c.attentionBias));
    v_proj = register_module("v_proj", Linear(c.hiddenSize, m_kvHeads * m_headDim, c.attentionBias));
    o_proj = register_module("o_proj", Linear(m_heads * m_headDim, c.hiddenSize, c.oProjBias));
}

torch::Tensor AttentionImpl::forward(const torch::Tensor &x, const torch::Tensor &cos, const torch::Tensor &sin,
    const AttentionMask &mask, torch::Tensor *cacheK, torch::Tensor *cacheV)
{
    const int64_t B = x.size(0), T = x.size(1), H = m_heads, Hkv = m_kvHeads, D = m_headDim;
    const int64_t G = H / Hkv; // query heads per key/value head

    // Projections, rotated in [B, T, heads, D] layout (cos/sin broadcast over heads).
    auto c4 = cos.unsqueeze(2), s4 = sin.unsqueeze(2); // [B, T, 1, D]
    auto q = q_proj->forward(x).view({ B, T, H, D });
    auto k = k_proj->forward(x).view({ B, T, Hkv, D });
    auto v = v_proj->forward(x).view({ B, T, Hkv, D });
    q = (q * c4 + rotateHalf(q) * s4).transpose(1, 2); // [B, H, T, D]
    k = (k * c4 + rotateHalf(k) * s4).transpose(1, 2); // [B, Hkv, T, D]
    v = v.transpose(1, 2); // [B, Hkv, T, D]

    if (cacheK) {
        if (cacheK->defined()) {
            k = torch::cat({ *cacheK, k }, 2);
            v = torch::cat({ *cacheV, v }, 2);
        }
        *cacheK = k;
        *cacheV = v;
    }
    const int64_t S = k.size(2); // keys: past + new

    torch::Tensor out; // [B, H, T, D]
#if TORCH_VERSION_MAJOR >= 2
    // SDPA picks a fused kernel (flash / memory-efficient / CPU flash) when it can. K/V are
    // repeated per query group: portable across 2.x versions (enable_gqa is 2.5+) and it keeps
    // the fused kernels eligible.
    auto kx = k, vx = v;
    if (G > 1) {
        kx = k.unsqueeze(2).expand({ B, Hkv, G, S, D }).reshape({ B, H, S, D });
        vx = v.unsqueeze(2).expand({ B, Hkv, G, S, D }).reshape({ B, H, S, D });
    }
    if (mask.additive.defined())
        out = at::scaled_dot_product_attention(q, kx, vx, mask.additive, 0.0, false);
    else
        out = at::scaled_dot_product_attention(q, kx, vx, {}, 0.0, mask.causal && S > 1);
#else
    // libtorch 1.x: explicit attention, HF's eager recipe (scores * D^-0.5 + mask, softmax in
    // float32). Query heads are grouped per key/value head so K/V are never repeated, and the
    // scale and mask are fused into one baddbmm (no in-place ops that autograd would copy):
    // [B*Hkv, G*T, D] x [B*Hkv, D, S] -> [B*Hkv, G*T, S].
    const double scale = 1.0 / std::sqrt(static_cast<double>(D));
    auto qg = q.reshape({ B * Hkv, G * T, D });
    auto kt = k.reshape({ B * Hkv, S, D }).transpose(1, 2);
    torch::Tensor scores;
    if (mask.additive.defined()) {
        const auto &m = mask.additive; // [B|1, 1, T, S]
        auto grouped = m.size(0) == 1
            ? m.view({ T, S }).repeat({ G, 1 }).unsqueeze(0) // [1, G*T, S]
            : m.view({ B, 1, 1, T, S }).expand({ B, Hkv, G, T, S }).reshape({ B * Hkv, G * T, S });
        scores = torch::baddbmm(grouped, qg, kt, /*beta=*/1.0, /*alpha=*/scale);
    } else {
        scores = torch::bmm(qg, kt) * scale;
    }
    auto probs = torch::softmax(scores, -1, torch::kFloat32).to(q.scalar_type());
    out = torch::bmm(probs, v.reshape({ B * Hkv, S, D })).view({ B, H, T, D });
#endif
    // [B, H, T, D] -> [B, T, H*D] -> [B, T, hidden]
    return o_proj->forward(out.transpose(1, 2).reshape({ B, T, H * D }));
}

// ---------------------------------------------------------------------------------------------
// MLP, decoder layer, backbone

MlpImpl::MlpImpl(const ModelConfig &c)
{
    gate_proj = register_module("gate_proj", Linear(c.hiddenSize, c.intermediateSize, c.mlpBias));
    up_proj = register_module("up_proj", Linear(c.hiddenSize, c.intermediateSize, c.mlpBias));
    down_proj = register_module("down_proj", Linear(c.intermediateSize, c.hiddenSize, c.mlpBias));
}

torch::Tensor MlpImpl::forward(const torch::Tensor &x)
{
    return down_proj->forward(torch::silu(gate_proj->forward(x)) * up_proj->forward(x));
}

DecoderLayerImpl::DecoderLayerImpl(const ModelConfig &c)
{
    self_attn = register_module("self_attn", Attention(c));
    mlp = register_module("mlp", Mlp(c));
    input_layernorm = register_module("input_layernorm", RMSNorm(c.hiddenSize, c.rmsNormEps));
    post_attention_layernorm = register_module("post_attention_layernorm", RMSNorm(c.hiddenSize, c.rmsNormEps));
}

torch::Tensor DecoderLayerImpl::forward(const torch::Tensor &x, const torch::Tensor &cos, const torch::Tensor &sin,
    const AttentionMask &mask, torch::Tensor *cacheK, torch::Tensor *cacheV)
{
    auto h = x + self_attn->forward(input_layernorm->forward(x), cos, sin, mask, cacheK, cacheV);
    return h + mlp->forward(post_attention_layernorm->forward(h));
}

BackboneImpl::BackboneImpl(const ModelConfig &c)
{
    embed_tokens = register_module("embed_tokens", Embedding(c.vocabSize, c.hiddenSize));
    layers = register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < c.numLayers; ++i) {
        DecoderLayer layer(c);
        layers->push_back(layer);
        layerList.push_back(layer);
    }
    norm = register_module("norm", RMSNorm(c.hiddenSize, c.rmsNormEps));
}

} // namespace llama

// ---------------------------------------------------------------------------------------------
// The causal LM

namespace {

void validate(const ModelConfig &c)
{
    auto need = [](bool ok, const std::string &what) {
        if (!ok)
            throw Error("config.json: " + what);
    };
    need(c.vocabSize > 0, "vocab_size must be positive");
    need(c.hiddenSize > 0, "hidden_size must be positive");
    need(c.intermediateSize > 0, "intermediate_size must be positive");
    need(c.numLayers > 0, "num_hidden_layers must be positive");
    need(c.numHeads > 0, "num_attention_heads must be positive");
    need(c.numKvHeads > 0 && c.numHeads % c.numKvHeads == 0,
        "num_key_value_heads (" + std::to_string(c.numKvHeads) + ") must divide num_attention_heads ("
            + std::to_string(c.numHeads) + ")");
    need(c.headDim > 0 && c.headDim % 2 == 0, "head_dim must be positive and even (rotary embeddings)");
    need(c.hiddenAct == "silu" || c.hiddenAct == "swish",
        "hidden_act '" + c.hiddenAct + "' is not supported for " + c.modelType + " (only silu)");
}

} // namespace

LlamaModel::LlamaModel(ModelConfig config)
    : m_config((validate(config), std::move(config)))
    , m_rotary(m_config.headDim, m_config.ropeTheta)
{
    m_model = register_module("model", llama::Backbone(m_config));
    if (!m_config.tieWordEmbeddings)
        m_lmHead = register_module("lm_head", llama::Linear(m_config.hiddenSize, m_config.vocabSize, false));

    torch::NoGradGuard noGrad;
    const double std = initializerRange(m_config);
    for (auto &p : named_parameters()) {
        const auto &name = p.key();
        if (name.size() >= 4 && name.compare(name.size() - 4, 4, "bias") == 0)
            p.value().zero_();
        else if (name.find("norm") != std::string::npos)
            p.value().fill_(1.0);
        else
            p.value().normal_(0.0, std);
    }
}

torch::Tensor LlamaModel::forwardHidden(
    const torch::Tensor &inputIds, const torch::Tensor &attentionMask, KVCache *cache)
{
    TORCH_CHECK(inputIds.dim() == 2, "inputIds must be [B, T]");
    const int64_t B = inputIds.size(0), T = inputIds.size(1);
    const int64_t past = cache ? cache->length() : 0;


    auto x = m_model->embed_tokens->forward(inputIds); // [B, T, hidden]
    const auto dtype = x.scalar_type();

    auto [positions, am] = buildMaskAndPositions(attentionMask, B, T, past, x.options());

    auto [cos, sin] = m_rotary.cosSin(positions, dtype); // [B, T, headDim]

    auto &layers = m_model->layerList;
    prepareCache(cache, layers.size());
    for (size_t i = 0; i < layers.size(); ++i) {
        x = layers[i]->forward(x, cos, sin, am, cache ? &cache->keys[i] : nullptr, cache ? &cache->values[i] : nullptr);
    }
    return m_model->norm->forward(x);
}

torch::Tensor LlamaModel::lmHead(const torch::Tensor &hidden)
{
    if (m_lmHead)
        return m_lmHead->forward(hidden);
    return torch::linear(hidden, m_model->embed_tokens->weight);
}

} // namespace dpo
