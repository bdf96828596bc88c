// Plausibility limits for model configs (config.json, generation_config.json), checked before
// anything is allocated from them, and the check of a config against its weight files' shapes.
//
// A hostile or broken config.json must fail with a dpo::Error naming the file and field, not grow
// memory for minutes (num_hidden_layers 1000000), overflow an int64 product (head_dim 2^62 giving
// libtorch's "IntArrayRef ... SymInt"), or carry token ids the embedding cannot look up.
//
// The limits sit far above every published model (largest known: vocab 262k, hidden 16384 / 25600,
// 126-160 layers, 128 heads, head_dim 256, context 10M) so no real model is refused:
//   vocab_size                 <= 16,777,216 (2^24)
//   hidden_size / n_embd       <= 131,072
//   intermediate_size / n_inner<= 1,048,576
//   num_hidden_layers / n_layer<= 1,024
//   num_attention_heads, num_key_value_heads <= 4,096; head_dim <= 8,192;
//   heads x head_dim           <= 1,048,576
//   max_position_embeddings    <= 268,435,456 (2^28)
//   bos/eos/pad token ids      -1 / null (none) or in [0, vocab_size)
#pragma once

#include "engine/torch_api.h"

#include <cstdint>
#include <map>
#include <string>

namespace dpo {

struct ModelConfig;

struct ModelConfigLimits {
    static constexpr int64_t kMaxVocabSize = int64_t(1) << 24;
    static constexpr int64_t kMaxHiddenSize = int64_t(1) << 17;
    static constexpr int64_t kMaxIntermediateSize = int64_t(1) << 20;
    static constexpr int64_t kMaxLayers = 1024;
    static constexpr int64_t kMaxHeads = 4096;
    static constexpr int64_t kMaxHeadDim = 8192;
    static constexpr int64_t kMaxAttentionWidth = int64_t(1) << 20; // heads x head_dim
    static constexpr int64_t kMaxPositions = int64_t(1) << 28;
};

// Throws dpo::Error "<source>: field 'F' ..." for a size outside the limits above or a token id
// outside [0, vocab_size) (other than -1, "none"). Called by ModelConfig::fromJson.
void checkModelConfigLimits(const ModelConfig &c, const std::string &source);
// Only the bos/eos/pad ids (after generation_config.json has been merged in; `source` names it).
void checkModelConfigTokenIds(const ModelConfig &c, const std::string &source);

// A lower bound of the parameters the config describes (token embedding plus each layer's query
// projection), saturating at INT64_MAX.
int64_t minimumParameterCount(const ModelConfig &c);

// Refuses (dpo::Error naming `dir`/config.json) a config that describes more parameters than the weight
// files hold, before the model is allocated: num_hidden_layers 1000000 next to a 2 MB model.safetensors
// fails here in microseconds instead of allocating gigabytes.
void checkConfigAgainstWeights(
    const ModelConfig &c, const std::map<std::string, torch::Tensor> &weights, const std::string &dir);

} // namespace dpo
