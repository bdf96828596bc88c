#include "engine/gpt2_model.h"

#include "engine/error.h"

#include <torch/version.h>

#include <cmath>
#include <limits>

namespace dpo {
namespace gpt2 {

namespace {

double initializerRange(const ModelConfig &c)
{
    if (c.raw.is_object() && c.raw.contains("initializer_range") && c.raw["initializer_range"].is_number())
        return c.raw["initializer_range"].get<double>();
    return 0.02;
}

// Masked scores get the most negative finite value (as HF does), not -inf, so that a query row
// with no visible key gets a uniform softmax instead of NaNs.
double lowestOf(torch::ScalarType t)
{
    switch (t) {
    case torch::kFloat16:
        return -65504.0;
    case torch::kBFloat16:
        return -3.3895313892515355e38;
    case torch::kFloat64:
        return std::numeric_limits<double>::lowest();
    default:
        return std::numeric_limits<float>::lowest();
    }
}

// HF's NewGELUActivation, written out as it is there (not torch's fused tanh gelu) so the numbers match.
torch::Tensor geluNew(const torch::Tensor &x)
{
    const double c = std::sqrt(2.0 / M_PI);
    return 0.5 * x * (1.0 + torch::tanh(c * (x + 0.044715 * torch::pow(x, 3.0))));
}

} // namespace

// ---------------------------------------------------------------------------------------------
// Building blocks

Conv1DImpl::Conv1DImpl(int64_t in, int64_t out)
{
    weight = register_parameter("weight", torch::empty({ in, out }));
    bias = register_parameter("bias", torch::zeros({ out }));
}

torch::Tensor Conv1DImpl::forward(const torch::Tensor &x)
{
    // HF: addmm(bias, x.view(-1, in), weight).view(..., out)
    auto sizes = x.sizes().vec();
    sizes.back() = weight.size(1);
    return torch::addmm(bias, x.reshape({ -1, x.size(-1) }), weight).view(sizes);
}

LayerNormImpl::LayerNormImpl(int64_t dim, double eps_)
    : eps(eps_)
{
    weight = register_parameter("weight", torch::ones({ dim }));
    bias = register_parameter("bias", torch::zeros({ dim }));
}

torch::Tensor LayerNormImpl::forward(const torch::Tensor &x)
{
    return torch::layer_norm(x, { x.size(-1) }, weight, bias, eps);
}

EmbeddingImpl::EmbeddingImpl(int64_t count, int64_t dim)
{
    weight = register_parameter("weight", torch::empty({ count, dim }));
}

torch::Tensor EmbeddingImpl::forward(const torch::Tensor &ids)
{
    return torch::embedding(weight, ids);
}

// ---------------------------------------------------------------------------------------------
// Attention

AttentionImpl::AttentionImpl(const ModelConfig &c)
    : m_heads(c.numHeads)
    , m_headDim(c.headDim)
{
    c_attn = register_module("c_attn", Conv1D(c.hiddenSize, 3 * c.hiddenSize));
    c_proj = register_module("c_proj", Conv1D(c.hiddenSize, c.hiddenSize));
}

torch::Tensor AttentionImpl::forward(
    const torch::Tensor &x, const AttentionMask &mask, torch::Tensor *cacheK, torch::Tensor *cacheV)
{
    const int64_t B = x.size(0), T = x.size(1), H = m_heads, D = m_headDim, N = H * D;

    // c_attn: [B, T, n] -> [B, T, 3n] = [q | k | v], each -> [B, H, T, D]
    auto qkv = c_attn->forward(x);
    auto q = qkv.slice(-1, 0, N).view({ B, T, H, D }).transpose(1, 2);
    auto k = qkv.slice(-1, N, 2 * N).view({ B, T, H, D }).transpose(1, 2);
    auto v = qkv.slice(-1, 2 * N, 3 * N).view({ B, T, H, D }).transpose(1, 2);

    if (cacheK) {
        if (cacheK->defined()) {
            k = torch::cat({ *cacheK, k }, 2);
            v = torch::cat({ *cacheV, v }, 2);
        }
        *cacheK = k;
        *cacheV = v;
    }
    torch::Tensor out; // [B, H, T, D]
#if TORCH_VERSION_MAJOR >= 2
    const int64_t S = k.size(2); // keys: past + new
    if (mask.additive.defined())
        out = at::scaled_dot_product_attention(q, k, v, mask.additive, 0.0, false);
    else
        out = at::scaled_dot_product_attention(q, k, v, {}, 0.0, mask.causal && S > 1);
#else
    // libtorch 1.x: HF's eager attention: scores / sqrt(D) + mask, softmax in float32.
    // [B, H, T, D] x [B, H, D, S] -> [B, H, T, S]
    auto scores = torch::matmul(q, k.transpose(2, 3));
    scores.mul_(1.0 / std::sqrt(static_cast<double>(D)));
    if (mask.additive.defined())
        scores.add_(mask.additive);
    auto probs = torch::softmax(scores, -1, torch::kFloat32).to(q.scalar_type());
    out = torch::matmul(probs, v);
#endif
    // [B, H, T, D] -> [B, T, n]
    return c_proj->forward(out.transpose(1, 2).reshape({ B, T, N }));
}

// ---------------------------------------------------------------------------------------------
// MLP, block, transformer

MlpImpl::MlpImpl(const ModelConfig &c)
    : m_tanhGelu(c.activationFunction != "gelu")
{
    c_fc = register_module("c_fc", Conv1D(c.hiddenSize, c.intermediateSize));
    c_proj = register_module("c_proj", Conv1D(c.intermediateSize, c.hiddenSize));
}

torch::Tensor MlpImpl::forward(const torch::Tensor &x)
{
    auto h = c_fc->forward(x); // [B, T, inner]
    h = m_tanhGelu ? geluNew(h) : torch::gelu(h);
    return c_proj->forward(h); // [B, T, n]
}

BlockImpl::BlockImpl(const ModelConfig &c)
{
    ln_1 = register_module("ln_1", LayerNorm(c.hiddenSize, c.layerNormEps));
    attn = register_module("attn", Attention(c));
    ln_2 = register_module("ln_2", LayerNorm(c.hiddenSize, c.layerNormEps));
    mlp = register_module("mlp", Mlp(c));
}

torch::Tensor BlockImpl::forward(
    const torch::Tensor &x, const AttentionMask &mask, torch::Tensor *cacheK, torch::Tensor *cacheV)
{
    auto h = x + attn->forward(ln_1->forward(x), mask, cacheK, cacheV);
    return h + mlp->forward(ln_2->forward(h));
}

TransformerImpl::TransformerImpl(const ModelConfig &c)
{
    wte = register_module("wte", Embedding(c.vocabSize, c.hiddenSize));
    wpe = register_module("wpe", Embedding(c.maxPositionEmbeddings, c.hiddenSize));
    h = register_module("h", torch::nn::ModuleList());
    for (int64_t i = 0; i < c.numLayers; ++i) {
        Block block(c);
        h->push_back(block);
        blocks.push_back(block);
    }
    ln_f = register_module("ln_f", LayerNorm(c.hiddenSize, c.layerNormEps));
}

} // namespace gpt2

// ---------------------------------------------------------------------------------------------
// The causal LM

namespace {

void validate(const ModelConfig &c)
{
    auto need = [](bool ok, const std::string &what) {
        if (!ok)
            throw Error("config.json: " + what);
    };
    need(c.modelType == "gpt2", "model_type '" + c.modelType + "' is not gpt2");
    need(c.vocabSize > 0, "vocab_size must be positive");
    need(c.hiddenSize > 0, "n_embd must be positive");
    need(c.intermediateSize > 0, "n_inner must be positive");
    need(c.numLayers > 0, "n_layer must be positive");
    need(c.numHeads > 0 && c.hiddenSize % c.numHeads == 0, "n_head must divide n_embd");
    need(c.maxPositionEmbeddings > 0, "n_positions must be positive");
    need(c.activationFunction == "gelu_new" || c.activationFunction == "gelu_pytorch_tanh"
            || c.activationFunction == "gelu",
        "activation_function '" + c.activationFunction + "' is not supported (gelu_new, gelu)");
    // Options that change the numbers and are not implemented: refuse rather than run a different model.
    for (const char *field : { "scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn", "add_cross_attention" })
        if (c.raw.is_object() && c.raw.contains(field) && c.raw[field].is_boolean() && c.raw[field].get<bool>())
            throw Error(std::string("config.json: ") + field + " is true, which is not supported for gpt2");
    if (c.raw.is_object() && c.raw.contains("scale_attn_weights") && c.raw["scale_attn_weights"].is_boolean()
        && !c.raw["scale_attn_weights"].get<bool>())
        throw Error("config.json: scale_attn_weights is false, which is not supported for gpt2");
}

} // namespace

Gpt2Model::Gpt2Model(ModelConfig config)
    : m_config((validate(config), std::move(config)))
{
    m_transformer = register_module("transformer", gpt2::Transformer(m_config));
    if (!m_config.tieWordEmbeddings)
        m_lmHead = register_module("lm_head", gpt2::Embedding(m_config.vocabSize, m_config.hiddenSize));

    torch::NoGradGuard noGrad;
    const double std = gpt2::initializerRange(m_config);
    const double projStd = std / std::sqrt(2.0 * double(m_config.numLayers));
    auto endsWith = [](const std::string &s, const std::string &suffix) {
        return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    for (auto &p : named_parameters()) {
        const std::string &name = p.key();
        const bool isNorm = name.find(".ln_") != std::string::npos;
        if (isNorm)
            p.value().fill_(endsWith(name, "weight") ? 1.0 : 0.0);
        else if (endsWith(name, "bias"))
            p.value().zero_();
        else if (endsWith(name, "c_proj.weight"))
            p.value().normal_(0.0, projStd);
        else
            p.value().normal_(0.0, std);
    }
}

torch::Tensor Gpt2Model::forwardHidden(
    const torch::Tensor &inputIds, const torch::Tensor &attentionMask, KVCache *cache)
{
    TORCH_CHECK(inputIds.dim() == 2, "inputIds must be [B, T]");
    const int64_t B = inputIds.size(0), T = inputIds.size(1);
    const int64_t past = cache ? cache->length() : 0;
    const int64_t S = past + T;
    const auto device = inputIds.device();
    const auto longOpts = torch::TensorOptions().dtype(torch::kInt64).device(device);
    if (S > m_config.maxPositionEmbeddings)
        throw Error("sequence of " + std::to_string(S) + " tokens is longer than the model's n_positions ("
            + std::to_string(m_config.maxPositionEmbeddings) + ")");

    auto tokens = m_transformer->wte->forward(inputIds); // [B, T, n]
    const auto dtype = tokens.scalar_type();

    // Positions and the attention mask, exactly as LlamaModel: with a padding mask, positions count
    // real tokens (cumsum - 1, as HF's generate does), which left padding needs; right padding gives
    // the real tokens 0..n-1 as usual.
    torch::Tensor positions; // [B, T]
    gpt2::AttentionMask am;
    if (attentionMask.defined()) {
        if (attentionMask.dim() != 2 || attentionMask.size(0) != B || attentionMask.size(1) != S)
            throw Error("attention mask must be [batch, past + new tokens] = [" + std::to_string(B) + ", "
                + std::to_string(S) + "], got " + c10::str(attentionMask.sizes()));
        auto m = attentionMask.to(device).to(torch::kBool);
        positions = (m.to(torch::kInt64).cumsum(1) - 1).clamp_min(0).slice(1, past, S);
        // Right padding (or none) without a cache: padded keys sit after every real query, so plain
        // causal attention gives the same outputs at real positions.
        const bool rightPadded = past == 0 && (S < 2 || !(m.slice(1, 1) & ~m.slice(1, 0, S - 1)).any().item<bool>());
        if (!rightPadded) {
            auto qpos = torch::arange(past, S, longOpts).unsqueeze(1); // [T, 1]
            auto kpos = torch::arange(0, S, longOpts).unsqueeze(0); // [1, S]
            auto visible = (kpos <= qpos).unsqueeze(0) & m.unsqueeze(1); // [B, T, S]
            am.additive = torch::zeros({ B, 1, T, S }, tokens.options())
                              .masked_fill_(visible.logical_not().unsqueeze(1), gpt2::lowestOf(dtype));
            am.causal = false;
        }
    } else {
        positions = torch::arange(past, S, longOpts).unsqueeze(0).expand({ B, T });
    }
    if (!am.additive.defined() && past > 0 && T > 1) {
        // New tokens after a cache, no padding: causal with an offset, which SDPA's is_causal
        // (top-left aligned) does not express.
        auto qpos = torch::arange(past, S, longOpts).unsqueeze(1);
        auto kpos = torch::arange(0, S, longOpts).unsqueeze(0);
        am.additive = torch::zeros({ 1, 1, T, S }, tokens.options())
                          .masked_fill_((kpos > qpos).unsqueeze(0).unsqueeze(0), gpt2::lowestOf(dtype));
        am.causal = false;
    }
    if (!am.additive.defined() && past > 0)
        am.causal = false; // one new token sees every past key
#if TORCH_VERSION_MAJOR < 2
    // The explicit attention needs the causal mask spelled out.
    if (!am.additive.defined() && am.causal && T > 1)
        am.additive = torch::full({ T, T }, gpt2::lowestOf(dtype), tokens.options()).triu_(1).view({ 1, 1, T, T });
#endif

    // Learned positions: x = wte[ids] + wpe[positions]: [B, T, n]
    auto x = tokens + m_transformer->wpe->forward(positions);

    auto &blocks = m_transformer->blocks;
    if (cache && cache->keys.size() != blocks.size()) {
        if (past > 0)
            throw Error("KV cache has " + std::to_string(cache->keys.size()) + " layers, the model "
                + std::to_string(blocks.size()));
        cache->keys.assign(blocks.size(), torch::Tensor());
        cache->values.assign(blocks.size(), torch::Tensor());
    }
    for (size_t i = 0; i < blocks.size(); ++i)
        x = blocks[i]->forward(x, am, cache ? &cache->keys[i] : nullptr, cache ? &cache->values[i] : nullptr);
    return m_transformer->ln_f->forward(x); // [B, T, n]
}

torch::Tensor Gpt2Model::lmHead(const torch::Tensor &hidden)
{
    // [..., n] -> [..., vocab]; tied: the token embedding matrix is the output projection.
    return torch::linear(hidden, m_lmHead ? m_lmHead->weight : m_transformer->wte->weight);
}

} // namespace dpo
