#include "engine/models/llama_model.h"
#include "engine/models/activation_checkpoint.h"
#include "engine/models/packed_attention.h"
#ifdef DPO_HAVE_SDPA_GQA
#include "engine/models/sdpa_gqa_ops.h"
#endif
#include "engine/models/param_alloc.h"

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
    weight = register_parameter("weight", torch::empty({ out, in }, paramOptions()));
    if (hasBias)
        bias = register_parameter("bias", torch::zeros({ out }, paramOptions()));
}

torch::Tensor LinearImpl::forward(const torch::Tensor &x)
{
    auto y = torch::linear(x, weight, bias);
    return lora ? lora->apply(x, y, is_training()) : y;
}

EmbeddingImpl::EmbeddingImpl(int64_t vocab, int64_t dim)
{
    weight = register_parameter("weight", torch::empty({ vocab, dim }, paramOptions()));
}

torch::Tensor EmbeddingImpl::forward(const torch::Tensor &ids)
{
    return embeddingLookup(weight, ids);
}

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_, NormKind kind_)
    : eps(eps_)
    , kind(kind_)
{
    weight = register_parameter("weight",
        kind == NormKind::RMSNormOnePlus ? torch::zeros({ dim }, paramOptions())
                                         : torch::ones({ dim }, paramOptions()));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor &x)
{
    // Variance and normalisation in float32, as every family does; the weight's place differs.
    const auto dtype = x.scalar_type();
    auto h = x.to(torch::kFloat32);
    auto variance = h.pow(2).mean(-1, /*keepdim=*/true);
    h = h * torch::rsqrt(variance + eps);
    switch (kind) {
    case NormKind::RMSNormWeightInFloat:
        return (weight * h).to(dtype);
    case NormKind::RMSNormOnePlus:
        return (h * (1.0 + weight.to(torch::kFloat32))).to(dtype);
    default:
        return weight * h.to(dtype);
    }
}

// ---------------------------------------------------------------------------------------------
// Attention

AttentionImpl::AttentionImpl(const ModelConfig &c, int64_t rotaryDim)
    : m_heads(c.numHeads)
    , m_kvHeads(c.numKvHeads)
    , m_headDim(c.headDim)
    , m_rotaryDim(rotaryDim)
    , m_qkNorm(c.arch->qkNorm)
    , m_scale(c.attentionScale > 0 ? c.attentionScale : 1.0 / std::sqrt(double(c.headDim)))
    , m_softcap(c.attnLogitSoftcapping)
{
    const int64_t qDim = m_heads * m_headDim, kvDim = m_kvHeads * m_headDim;
    if (c.arch->fusedQkv) {
        qkv_proj = register_module("qkv_proj", Linear(c.hiddenSize, qDim + 2 * kvDim, c.attentionBias));
    } else {
        q_proj = register_module("q_proj", Linear(c.hiddenSize, qDim, c.attentionBias));
        k_proj = register_module("k_proj", Linear(c.hiddenSize, kvDim, c.attentionBias));
        v_proj = register_module("v_proj", Linear(c.hiddenSize, kvDim, c.attentionBias));
    }
    o_proj = register_module("o_proj", Linear(qDim, c.hiddenSize, c.oProjBias));
    if (m_qkNorm == QkNorm::PerHead) {
        q_norm = register_module("q_norm", RMSNorm(m_headDim, c.rmsNormEps, c.arch->norm));
        k_norm = register_module("k_norm", RMSNorm(m_headDim, c.rmsNormEps, c.arch->norm));
    } else if (m_qkNorm == QkNorm::FullWidth) {
        q_norm = register_module("q_norm", RMSNorm(qDim, c.rmsNormEps, c.arch->norm));
        k_norm = register_module("k_norm", RMSNorm(kvDim, c.rmsNormEps, c.arch->norm));
    }
}

namespace {

// x [B, T, heads, D] rotated on its first rope.cos.size(-1) channels (all of them unless the
// rotary is partial, Phi-3); the rest pass through.
torch::Tensor applyRotary(const torch::Tensor &x, const RopeTables &rope)
{
    auto c4 = rope.cos.unsqueeze(2), s4 = rope.sin.unsqueeze(2); // [B, T, 1, rotaryDim]
    const int64_t R = rope.cos.size(-1);
    if (R == x.size(-1))
        return x * c4 + rotateHalf(x) * s4;
    auto rot = x.slice(-1, 0, R), pass = x.slice(-1, R);
    return torch::cat({ rot * c4 + rotateHalf(rot) * s4, pass }, -1);
}

} // namespace

torch::Tensor AttentionImpl::forward(
    const torch::Tensor &x, const RopeTables &rope, const AttentionMask &mask, KVCache *cache, size_t layer)
{
    const int64_t B = x.size(0), T = x.size(1), H = m_heads, Hkv = m_kvHeads, D = m_headDim;

    // Projections: [B, T, H*D], [B, T, Hkv*D] x2.
    torch::Tensor q, k, v;
    if (qkv_proj) {
        auto qkv = qkv_proj->forward(x);
        q = qkv.slice(-1, 0, H * D);
        k = qkv.slice(-1, H * D, (H + Hkv) * D);
        v = qkv.slice(-1, (H + Hkv) * D);
    } else {
        q = q_proj->forward(x);
        k = k_proj->forward(x);
        v = v_proj->forward(x);
    }
    if (m_qkNorm == QkNorm::FullWidth) { // OLMo 2: over the whole projection, before the heads split
        q = q_norm->forward(q);
        k = k_norm->forward(k);
    }
    q = q.reshape({ B, T, H, D });
    k = k.reshape({ B, T, Hkv, D });
    v = v.reshape({ B, T, Hkv, D });
    if (m_qkNorm == QkNorm::PerHead) { // Qwen3, Gemma 3: each head over head_dim
        q = q_norm->forward(q);
        k = k_norm->forward(k);
    }
    // RoPE in [B, T, heads, D] layout (cos/sin broadcast over heads); none on SmolLM3's NoPE layers.
    if (m_rotaryDim > 0) {
        q = applyRotary(q, rope);
        k = applyRotary(k, rope);
    }
    const auto out = attendTokens(q, k, v, mask, cache, layer, { m_scale, m_softcap == 0 },
        [this](const torch::Tensor &qs, const torch::Tensor &ks, const torch::Tensor &vs, const AttentionMask &m) {
            return attend(qs, ks, vs, m);
        }); // [B, T, H, D]
    // [B, T, H, D] -> [B, T, H*D] -> [B, T, hidden]
    return o_proj->forward(out.reshape({ B, T, H * D }));
}

// q [B, H, T, D], k/v [B, Hkv, S, D] (S = past + T) -> [B, H, T, D].
torch::Tensor AttentionImpl::attend(
    const torch::Tensor &q, const torch::Tensor &k, const torch::Tensor &v, const AttentionMask &mask) const
{
    const int64_t B = q.size(0), T = q.size(2), H = m_heads, Hkv = m_kvHeads, D = m_headDim;
    const int64_t G = H / Hkv; // query heads per key/value head
    const int64_t S = k.size(2); // keys: past + new
    torch::Tensor out; // [B, H, T, D]
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
    const bool fused = m_softcap == 0; // SDPA cannot soft-cap scores (transformers trains Gemma 2 eagerly too)
#else
    const bool fused = false;
#endif
#ifdef DPO_HAVE_SDPA_GQA
    // Flash attention takes grouped K/V as they are: unmasked bf16 (so an sm80+ GPU) with a head dim
    // every sm80+ flash build trains. Elsewhere SDPA would leave grouped K/V to its unfused math
    // kernel (the memory-efficient one takes none), so the repeat below stays.
    if (fused && G > 1 && !mask.additive.defined() && q.is_cuda() && q.scalar_type() == torch::kBFloat16
        && D % 8 == 0 && D <= 128)
        return sdpa_gqa_ops::attend(q, k, v, m_scale, mask.causal && S > 1);
#endif
    if (fused) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
        // SDPA picks a fused kernel (flash / memory-efficient / CPU flash) when it can. K/V are
        // repeated per query group elsewhere: the memory-efficient kernel (masks, float32) takes no
        // grouped K/V, and without the repeat SDPA would fall back to its unfused math.
        auto kx = k, vx = v;
        if (G > 1) {
            kx = k.unsqueeze(2).expand({ B, Hkv, G, S, D }).reshape({ B, H, S, D });
            vx = v.unsqueeze(2).expand({ B, Hkv, G, S, D }).reshape({ B, H, S, D });
        }
        if (mask.additive.defined())
            out = at::scaled_dot_product_attention(q, kx, vx, mask.additive, 0.0, false, m_scale);
        else
            out = at::scaled_dot_product_attention(q, kx, vx, {}, 0.0, mask.causal && S > 1, m_scale);
#endif
    } else {
        // Explicit attention, HF's eager recipe (scores * scale, optional soft-cap, + mask, softmax
        // in float32). Query heads are grouped per key/value head so K/V are never repeated:
        // [B*Hkv, G*T, D] x [B*Hkv, D, S] -> [B*Hkv, G*T, S].
        auto qg = q.reshape({ B * Hkv, G * T, D });
        auto kt = k.reshape({ B * Hkv, S, D }).transpose(1, 2);
        torch::Tensor grouped; // the additive mask in the grouped layout, or undefined
        torch::Tensor causal;
        if (mask.additive.defined()) {
            const auto &m = mask.additive; // [B|1, 1, T, S]
            grouped = m.size(0) == 1
                ? m.view({ T, S }).repeat({ G, 1 }).unsqueeze(0) // [1, G*T, S]
                : m.view({ B, 1, 1, T, S }).expand({ B, Hkv, G, T, S }).reshape({ B * Hkv, G * T, S });
        } else if (mask.causal && S > 1) {
            const double lowest = lowestOf(q.scalar_type());
            grouped = torch::full({ T, S }, lowest, q.options()).triu_(S - T + 1).repeat({ G, 1 }).unsqueeze(0);
        }
        torch::Tensor scores;
        if (m_softcap > 0) {
            scores = torch::bmm(qg, kt) * m_scale;
            scores = torch::tanh(scores / m_softcap) * m_softcap;
            if (grouped.defined())
                scores = scores + grouped;
        } else if (grouped.defined()) {
            // The scale and mask fused into one baddbmm (no in-place ops that autograd would copy).
            scores = torch::baddbmm(grouped, qg, kt, /*beta=*/1.0, /*alpha=*/m_scale);
        } else {
            scores = torch::bmm(qg, kt) * m_scale;
        }
        auto probs = torch::softmax(scores, -1, torch::kFloat32).to(q.scalar_type());
        out = torch::bmm(probs, v.reshape({ B * Hkv, S, D })).view({ B, H, T, D });
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// MLP, decoder layer, backbone

MlpImpl::MlpImpl(const ModelConfig &c)
    : m_intermediate(c.intermediateSize)
    , m_gelu(c.arch->mlp == MlpKind::GatedGeluTanh)
{
    if (c.arch->fusedGateUp) {
        gate_up_proj = register_module("gate_up_proj", Linear(c.hiddenSize, 2 * c.intermediateSize, c.mlpBias));
    } else {
        gate_proj = register_module("gate_proj", Linear(c.hiddenSize, c.intermediateSize, c.mlpBias));
        up_proj = register_module("up_proj", Linear(c.hiddenSize, c.intermediateSize, c.mlpBias));
    }
    down_proj = register_module("down_proj", Linear(c.intermediateSize, c.hiddenSize, c.mlpBias));
}

torch::Tensor MlpImpl::forward(const torch::Tensor &x)
{
    torch::Tensor gate, up; // [B, T, intermediate]
    if (gate_up_proj) {
        auto gu = gate_up_proj->forward(x);
        gate = gu.slice(-1, 0, m_intermediate);
        up = gu.slice(-1, m_intermediate);
    } else {
        gate = gate_proj->forward(x);
        up = up_proj->forward(x);
    }
    auto act = m_gelu ? torch::gelu(gate, "tanh") : torch::silu(gate);
    return down_proj->forward(act * up);
}

DecoderLayerImpl::DecoderLayerImpl(const ModelConfig &c, int64_t rotaryDim)
    : m_placement(c.arch->placement)
{
    const NormKind nk = c.arch->norm;
    self_attn = register_module("self_attn", Attention(c, rotaryDim));
    mlp = register_module("mlp", Mlp(c));
    if (m_placement != NormPlacement::Post)
        input_layernorm = register_module("input_layernorm", RMSNorm(c.hiddenSize, c.rmsNormEps, nk));
    post_attention_layernorm = register_module("post_attention_layernorm", RMSNorm(c.hiddenSize, c.rmsNormEps, nk));
    if (m_placement == NormPlacement::Sandwich)
        pre_feedforward_layernorm
            = register_module("pre_feedforward_layernorm", RMSNorm(c.hiddenSize, c.rmsNormEps, nk));
    if (m_placement != NormPlacement::Pre)
        post_feedforward_layernorm
            = register_module("post_feedforward_layernorm", RMSNorm(c.hiddenSize, c.rmsNormEps, nk));
}

torch::Tensor DecoderLayerImpl::forward(
    const torch::Tensor &x, const RopeTables &rope, const AttentionMask &mask, KVCache *cache, size_t layer)
{
    switch (m_placement) {
    case NormPlacement::Sandwich: {
        auto h = x
            + post_attention_layernorm->forward(
                self_attn->forward(input_layernorm->forward(x), rope, mask, cache, layer));
        return h + post_feedforward_layernorm->forward(mlp->forward(pre_feedforward_layernorm->forward(h)));
    }
    case NormPlacement::Post: {
        auto h = x + post_attention_layernorm->forward(self_attn->forward(x, rope, mask, cache, layer));
        return h + post_feedforward_layernorm->forward(mlp->forward(h));
    }
    case NormPlacement::Pre:
        break;
    }
    auto h = x + self_attn->forward(input_layernorm->forward(x), rope, mask, cache, layer);
    return h + mlp->forward(post_attention_layernorm->forward(h));
}

BackboneImpl::BackboneImpl(const ModelConfig &c, const std::vector<int64_t> &rotaryDims)
{
    embed_tokens = register_module("embed_tokens", Embedding(c.vocabSize, c.hiddenSize));
    layers = register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < c.numLayers; ++i) {
        DecoderLayer layer(c, rotaryDims[size_t(i)]);
        layers->push_back(layer);
        layerList.push_back(layer);
    }
    norm = register_module("norm", RMSNorm(c.hiddenSize, c.rmsNormEps, c.arch->norm));
}

} // namespace llama

// ---------------------------------------------------------------------------------------------
// The causal LM

namespace {

void validateLlamaConfig(const ModelConfig &c)
{
    auto need = [](bool ok, const std::string &what) {
        if (!ok)
            throw Error("config.json: " + what);
    };
    need(
        c.arch && c.arch->impl == ArchImpl::Llama, "model_type '" + c.modelType + "' is not implemented by LlamaModel");
    need(c.vocabSize > 0, "vocab_size must be positive");
    need(c.hiddenSize > 0, "hidden_size must be positive");
    need(c.intermediateSize > 0, "intermediate_size must be positive");
    need(c.numLayers > 0, "num_hidden_layers must be positive");
    need(c.numHeads > 0, "num_attention_heads must be positive");
    need(c.numKvHeads > 0 && c.numHeads % c.numKvHeads == 0,
        "num_key_value_heads (" + std::to_string(c.numKvHeads) + ") must divide num_attention_heads ("
            + std::to_string(c.numHeads) + ")");
    need(c.headDim > 0, "head_dim must be positive");
    need(
        int64_t(c.slidingLayers.size()) == c.numLayers || c.slidingLayers.empty(), "layer_types must name every layer");
    if (c.arch->mlp == MlpKind::GatedSilu)
        need(c.hiddenAct == "silu" || c.hiddenAct == "swish",
            "hidden_act '" + c.hiddenAct + "' is not supported for " + c.modelType + " (only silu)");
    for (const RopeParameters *p : { &c.rope, &c.ropeLocal }) {
        const int64_t r = ropeRotaryDim(*p, c.headDim);
        need(r >= 2 && r <= c.headDim, "the rotary dimension must be even and at most head_dim");
    }
}

bool isSliding(const ModelConfig &c, size_t layer)
{
    return layer < c.slidingLayers.size() && c.slidingLayers[layer];
}

} // namespace

LlamaModel::LlamaModel(ModelConfig config)
    : m_config((validateLlamaConfig(config), std::move(config)))
    , m_rotary(m_config.rope, m_config.headDim)
    , m_rotaryLocal(m_config.ropeLocal, m_config.headDim)
    , m_localDiffers(!(m_config.rope == m_config.ropeLocal))
{
    std::vector<int64_t> rotaryDims;
    for (size_t i = 0; i < size_t(m_config.numLayers); ++i)
        rotaryDims.push_back(m_config.isNopeLayer(i) ? 0
                : isSliding(m_config, i)             ? m_rotaryLocal.rotaryDim()
                                                     : m_rotary.rotaryDim());
    m_model = register_module("model", llama::Backbone(m_config, rotaryDims));
    if (!m_config.tieWordEmbeddings)
        m_lmHead = register_module("lm_head", llama::Linear(m_config.hiddenSize, m_config.vocabSize, false));

    if (!paramInitEnabled())
        return; // weights come from a checkpoint next (loadCausalLM)
    torch::NoGradGuard noGrad;
    const double std = initializerRange(m_config);
    const double normInit = m_config.arch->norm == NormKind::RMSNormOnePlus ? 0.0 : 1.0;
    for (auto &p : named_parameters()) {
        const auto &name = p.key();
        if (name.size() >= 4 && name.compare(name.size() - 4, 4, "bias") == 0)
            p.value().zero_();
        else if (name.find("norm") != std::string::npos)
            p.value().fill_(normInit);
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
    if (m_config.arch->embedScale) // Gemma: * sqrt(hidden), the constant rounded to the weight dtype
        x = x * torch::scalar_tensor(std::sqrt(double(m_config.hiddenSize)), x.options());

    // Masks: one for full-attention layers, one for sliding layers (the same when no window bites).
    auto mp = buildMaskAndPositions(attentionMask, B, T, past, x.options());
    AttentionMask slidingMask = mp.mask;
    if (m_config.anySlidingLayer() && m_config.slidingWindow > 0)
        slidingMask = buildSlidingWindowMask(mp, attentionMask, B, T, past, m_config.slidingWindow, x.options());
    return decode(x, mp, slidingMask, cache);
}

torch::Tensor LlamaModel::forwardHiddenPacked(const torch::Tensor &inputIds, const std::vector<int64_t> &starts)
{
    TORCH_CHECK(inputIds.dim() == 2 && inputIds.size(0) == 1, "a packed row must be [1, N]");
    auto x = m_model->embed_tokens->forward(inputIds); // [1, N, hidden]
    if (m_config.arch->embedScale)
        x = x * torch::scalar_tensor(std::sqrt(double(m_config.hiddenSize)), x.options());
    auto mp = buildPackedMaskAndPositions(starts, x.options());
    AttentionMask slidingMask = mp.mask;
    if (m_config.anySlidingLayer() && m_config.slidingWindow > 0)
        slidingMask.window = m_config.slidingWindow;
    return decode(x, mp, slidingMask, nullptr);
}

// The decoder layers and the final norm over embedded tokens x [B, T, hidden].
torch::Tensor LlamaModel::decode(
    torch::Tensor x, const MaskAndPositions &mp, const AttentionMask &slidingMask, KVCache *cache)
{
    const auto dtype = x.scalar_type();
    // RoPE tables [B, T, rotaryDim]: the global one, and Gemma 3's local one for sliding layers.
    llama::RopeTables global, local;
    std::tie(global.cos, global.sin) = m_rotary.cosSin(mp.positions, dtype);
    if (m_localDiffers && m_config.anySlidingLayer())
        std::tie(local.cos, local.sin) = m_rotaryLocal.cosSin(mp.positions, dtype);
    else
        local = global;

    auto &layers = m_model->layerList;
    prepareCache(cache, layers.size());
    const bool checkpoint = gradientCheckpointing && is_training() && !cache;
    for (size_t i = 0; i < layers.size(); ++i) {
        const bool sliding = isSliding(m_config, i);
        if (checkpoint) {
            x = checkpointed(
                [layer = layers[i], rope = sliding ? local : global, mask = sliding ? slidingMask : mp.mask](
                    const torch::Tensor &h) mutable { return layer->forward(h, rope, mask, nullptr, 0); },
                x);
            continue;
        }
        x = layers[i]->forward(x, sliding ? local : global, sliding ? slidingMask : mp.mask, cache, i);
    }
    return m_model->norm->forward(x); // [B, T, hidden]
}

torch::Tensor LlamaModel::lmHead(const torch::Tensor &hidden)
{
    auto logits = m_lmHead ? m_lmHead->forward(hidden) : torch::linear(hidden, m_model->embed_tokens->weight);
    const double cap = m_config.finalLogitSoftcapping;
    if (cap > 0) // Gemma 2: inside the head, so log-probs see it
        logits = torch::tanh(logits / cap) * cap;
    return logits; // [..., vocab]
}

torch::Tensor LlamaModel::plainHeadWeight()
{
    if (m_config.finalLogitSoftcapping > 0 || (m_lmHead && m_lmHead->lora))
        return {};
    return m_lmHead ? m_lmHead->weight : m_model->embed_tokens->weight;
}

} // namespace dpo
