#include "engine/models/gpt2_model.h"
#include "engine/models/activation_checkpoint.h"
#include "engine/models/packed_attention.h"
#include "engine/models/param_alloc.h"

#include "engine/error.h"

#include <torch/version.h>

#include <cmath>
#include <limits>

namespace dpo {
namespace gpt2 {

namespace {

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
    weight = register_parameter("weight", torch::empty({ in, out }, paramOptions()));
    bias = register_parameter("bias", torch::zeros({ out }, paramOptions()));
}

torch::Tensor Conv1DImpl::forward(const torch::Tensor &x)
{
    // HF: addmm(bias, x.view(-1, in), weight).view(..., out)
    auto sizes = x.sizes().vec();
    sizes.back() = weight.size(1);
    auto y = torch::addmm(bias, x.reshape({ -1, x.size(-1) }), weight).view(sizes);
    return lora ? lora->apply(x, y, is_training()) : y;
}

LayerNormImpl::LayerNormImpl(int64_t dim, double eps_)
    : eps(eps_)
{
    weight = register_parameter("weight", torch::ones({ dim }, paramOptions()));
    bias = register_parameter("bias", torch::zeros({ dim }, paramOptions()));
}

torch::Tensor LayerNormImpl::forward(const torch::Tensor &x)
{
    return torch::layer_norm(x, { x.size(-1) }, weight, bias, eps);
}

EmbeddingImpl::EmbeddingImpl(int64_t count, int64_t dim)
{
    weight = register_parameter("weight", torch::empty({ count, dim }, paramOptions()));
}

torch::Tensor EmbeddingImpl::forward(const torch::Tensor &ids)
{
    return embeddingLookup(weight, ids);
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

torch::Tensor AttentionImpl::forward(const torch::Tensor &x, const AttentionMask &mask, KVCache *cache, size_t layer)
{
    const int64_t B = x.size(0), T = x.size(1), H = m_heads, D = m_headDim, N = H * D;

    // c_attn: [B, T, n] -> [B, T, 3n] = [q | k | v], each -> [B, T, H, D]
    auto qkv = c_attn->forward(x);
    auto q = qkv.slice(-1, 0, N).view({ B, T, H, D });
    auto k = qkv.slice(-1, N, 2 * N).view({ B, T, H, D });
    auto v = qkv.slice(-1, 2 * N, 3 * N).view({ B, T, H, D });

    const auto out = attendTokens(q, k, v, mask, cache, layer, { 1.0 / std::sqrt(double(D)), true },
        [this](const torch::Tensor &qs, const torch::Tensor &ks, const torch::Tensor &vs, const AttentionMask &m) {
            return attend(qs, ks, vs, m);
        }); // [B, T, H, D]
    // [B, T, H, D] -> [B, T, n]
    return c_proj->forward(out.reshape({ B, T, N }));
}

// q [B, H, T, D], k/v [B, H, S, D] (S = past + T) -> [B, H, T, D].
torch::Tensor AttentionImpl::attend(
    const torch::Tensor &q, const torch::Tensor &k, const torch::Tensor &v, const AttentionMask &mask) const
{
    torch::Tensor out;
#if TORCH_VERSION_MAJOR >= 2
    const int64_t S = k.size(2);
    if (mask.additive.defined())
        out = at::scaled_dot_product_attention(q, k, v, mask.additive, 0.0, false);
    else
        out = at::scaled_dot_product_attention(q, k, v, {}, 0.0, mask.causal && S > 1);
#else
    // libtorch 1.x: HF's eager attention: scores / sqrt(D) + mask, softmax in float32.
    // [B, H, T, D] x [B, H, D, S] -> [B, H, T, S]
    auto scores = torch::matmul(q, k.transpose(2, 3));
    scores.mul_(1.0 / std::sqrt(static_cast<double>(m_headDim)));
    if (mask.additive.defined())
        scores.add_(mask.additive);
    auto probs = torch::softmax(scores, -1, torch::kFloat32).to(q.scalar_type());
    out = torch::matmul(probs, v);
#endif
    return out;
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

torch::Tensor BlockImpl::forward(const torch::Tensor &x, const AttentionMask &mask, KVCache *cache, size_t layer)
{
    auto h = x + attn->forward(ln_1->forward(x), mask, cache, layer);
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

void validateGpt2Config(const ModelConfig &c)
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
    : m_config((validateGpt2Config(config), std::move(config)))
{
    m_transformer = register_module("transformer", gpt2::Transformer(m_config));
    if (!m_config.tieWordEmbeddings)
        m_lmHead = register_module("lm_head", gpt2::Embedding(m_config.vocabSize, m_config.hiddenSize));

    if (!paramInitEnabled())
        return; // weights come from a checkpoint next (loadCausalLM)
    torch::NoGradGuard noGrad;
    const double std = initializerRange(m_config);
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
    if (S > m_config.maxPositionEmbeddings)
        throw Error("sequence of " + std::to_string(S) + " tokens is longer than the model's n_positions ("
            + std::to_string(m_config.maxPositionEmbeddings) + ")");

    auto tokens = m_transformer->wte->forward(inputIds); // [B, T, n]
    return decode(tokens, buildMaskAndPositions(attentionMask, B, T, past, tokens.options()), cache);
}

torch::Tensor Gpt2Model::forwardHiddenPacked(const torch::Tensor &inputIds, const std::vector<int64_t> &starts)
{
    TORCH_CHECK(inputIds.dim() == 2 && inputIds.size(0) == 1, "a packed row must be [1, N]");
    int64_t longest = 0;
    for (size_t i = 0; i + 1 < starts.size(); ++i)
        longest = std::max(longest, starts[i + 1] - starts[i]);
    if (longest > m_config.maxPositionEmbeddings)
        throw Error("sequence of " + std::to_string(longest) + " tokens is longer than the model's n_positions ("
            + std::to_string(m_config.maxPositionEmbeddings) + ")");
    auto tokens = m_transformer->wte->forward(inputIds); // [1, N, n]
    return decode(tokens, buildPackedMaskAndPositions(starts, tokens.options()), nullptr);
}

torch::Tensor Gpt2Model::decode(const torch::Tensor &tokens, const MaskAndPositions &mp, KVCache *cache)
{
    const auto &positions = mp.positions;
    const auto &am = mp.mask;
    // Learned positions: x = wte[ids] + wpe[positions]: [B, T, n]
    auto x = tokens + m_transformer->wpe->forward(positions);

    auto &blocks = m_transformer->blocks;
    prepareCache(cache, blocks.size());
    const bool checkpoint = gradientCheckpointing && is_training() && !cache;
    for (size_t i = 0; i < blocks.size(); ++i) {
        if (checkpoint)
            x = checkpointed([block = blocks[i], mask = am](
                                 const torch::Tensor &h) mutable { return block->forward(h, mask, nullptr, 0); },
                x);
        else
            x = blocks[i]->forward(x, am, cache, i);
    }
    return m_transformer->ln_f->forward(x); // [B, T, n]
}

torch::Tensor Gpt2Model::lmHead(const torch::Tensor &hidden)
{
    // [..., n] -> [..., vocab]; tied: the token embedding matrix is the output projection.
    return torch::linear(hidden, m_lmHead ? m_lmHead->weight : m_transformer->wte->weight);
}

torch::Tensor Gpt2Model::plainHeadWeight()
{
    return m_lmHead ? m_lmHead->weight : m_transformer->wte->weight;
}

} // namespace dpo
