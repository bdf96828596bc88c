#include "engine/models/config_limits.h"

#include "engine/error.h"
#include "engine/models/model_config.h"

#include <filesystem>

namespace dpo {

namespace {

using L = ModelConfigLimits;

bool isGpt2(const ModelConfig &c)
{
    return c.modelType == "gpt2";
}

void atMost(const std::string &source, const char *field, int64_t value, int64_t limit)
{
    if (value > limit)
        throw Error(source + ": field '" + field + "' is " + std::to_string(value) + ", above the limit of "
            + std::to_string(limit) + " (no real model is that large; is the file corrupt?)");
}

void tokenId(const std::string &source, const char *field, int64_t id, int64_t vocab)
{
    if (id == -1)
        return; // the "no such token" convention (null in the file)
    if (id < 0 || (vocab > 0 && id >= vocab))
        throw Error(source + ": field '" + field + "' is " + std::to_string(id) + ", outside the vocabulary [0, "
            + std::to_string(vocab) + ") (use null for none)");
}

int64_t satMul(int64_t a, int64_t b)
{
    int64_t r = 0;
    if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r))
        return INT64_MAX;
    return r;
}

int64_t satAdd(int64_t a, int64_t b)
{
    int64_t r = 0;
    if (__builtin_add_overflow(a, b, &r))
        return INT64_MAX;
    return r;
}

} // namespace

void checkModelConfigTokenIds(const ModelConfig &c, const std::string &source)
{
    tokenId(source, "bos_token_id", c.bosTokenId, c.vocabSize);
    for (int64_t id : c.eosTokenIds)
        tokenId(source, "eos_token_id", id, c.vocabSize);
    tokenId(source, "pad_token_id", c.padTokenId, c.vocabSize);
}

void checkModelConfigLimits(const ModelConfig &c, const std::string &source)
{
    const bool g = isGpt2(c);
    atMost(source, "vocab_size", c.vocabSize, L::kMaxVocabSize);
    atMost(source, g ? "n_embd" : "hidden_size", c.hiddenSize, L::kMaxHiddenSize);
    atMost(source, g ? "n_inner" : "intermediate_size", c.intermediateSize, L::kMaxIntermediateSize);
    atMost(source, g ? "n_layer" : "num_hidden_layers", c.numLayers, L::kMaxLayers);
    atMost(source, g ? "n_head" : "num_attention_heads", c.numHeads, L::kMaxHeads);
    atMost(source, "num_key_value_heads", c.numKvHeads, L::kMaxHeads);
    atMost(source, "head_dim", c.headDim, L::kMaxHeadDim);
    atMost(source, g ? "n_positions" : "max_position_embeddings", c.maxPositionEmbeddings, L::kMaxPositions);
    // Each factor is bounded above, so the product cannot overflow.
    if (c.numHeads * c.headDim > L::kMaxAttentionWidth)
        throw Error(source + ": fields 'num_attention_heads' x 'head_dim' (" + std::to_string(c.numHeads) + " x "
            + std::to_string(c.headDim) + ") exceed the limit of " + std::to_string(L::kMaxAttentionWidth));
    checkModelConfigTokenIds(c, source);
}

int64_t minimumParameterCount(const ModelConfig &c)
{
    // Every supported family has a [vocab, hidden] token embedding and, per layer, a query projection
    // of hidden x (heads x head_dim) (GPT-2's fused c_attn holds three of them).
    const int64_t embedding = satMul(c.vocabSize, c.hiddenSize);
    const int64_t query = satMul(c.hiddenSize, satMul(c.numHeads, c.headDim));
    return satAdd(embedding, satMul(c.numLayers, query));
}

void checkConfigAgainstWeights(
    const ModelConfig &c, const std::map<std::string, torch::Tensor> &weights, const std::string &dir)
{
    int64_t held = 0;
    for (const auto &kv : weights)
        held = satAdd(held, kv.second.numel());
    const int64_t needed = minimumParameterCount(c);
    if (needed > held)
        throw Error((std::filesystem::path(dir) / "config.json").string() + ": describes a model of at least "
            + std::to_string(needed) + " parameters (vocab_size " + std::to_string(c.vocabSize) + ", hidden size "
            + std::to_string(c.hiddenSize) + ", " + std::to_string(c.numLayers) + " layers, "
            + std::to_string(c.numHeads) + " heads of " + std::to_string(c.headDim)
            + ") but the weight files hold only " + std::to_string(held)
            + ": config.json does not match the weights");
}

} // namespace dpo
