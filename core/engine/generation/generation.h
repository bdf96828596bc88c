// Text generation from a CausalLM: greedy decoding or sampling (temperature, top-k, top-p with
// Hugging Face's semantics), KV-cached, for one prompt or a left-padded batch of prompts.
// Sampling draws from a CPU generator seeded from the options, so the same seed gives the same
// tokens on any device. It works on token ids only: encoding and decoding text is the caller's.
#pragma once

#include "engine/models/causal_lm.h"

#include "engine/torch_api.h"

#include <cstdint>
#include <functional>
#include <vector>

namespace dpo {

struct GenerationOptions {
    int maxNewTokens = 64;
    bool greedy = true; // argmax; the sampling fields below are ignored
    double temperature = 1.0; // > 0
    int topK = 0; // 0 = off
    double topP = 1.0; // (0, 1]; 1 = off
    uint64_t seed = 0;
    bool stopAtEos = true; // stop after emitting an EOS token (config eos ids + eosTokenIds)
    std::vector<int64_t> eosTokenIds; // more ids treated as EOS, e.g. the tokenizer's eos

    // Throws dpo::Error naming the first invalid option (--temperature, --top-k, ...).
    void validate() const;
};

// Continues `promptIds` (non-empty) and returns only the new tokens (an EOS that stopped it is
// included). `onToken` sees each new token as it is produced; returning false stops generation
// after that token (cancellation, streaming). Runs without gradients on the model's device.
std::vector<int64_t> generate(CausalLM &model, const std::vector<int64_t> &promptIds, const GenerationOptions &options,
    const std::function<bool(int64_t)> &onToken = {});

// Several prompts at once (left-padded, one KV cache). Greedy results equal generate() per prompt
// up to floating-point ties; sampled rows draw from one generator in row order, so they differ
// from one-by-one sampling with the same seed.
std::vector<std::vector<int64_t>> generateBatch(
    CausalLM &model, const std::vector<std::vector<int64_t>> &prompts, const GenerationOptions &options);

// The sampling warpers HF applies, in its order: temperature, top-k, then top-p (nucleus: keep
// the smallest set of most likely tokens whose probability reaches p, at least one). logits [V]
// or [B, V] float32; returns logits with removed tokens at -inf.
torch::Tensor warpLogits(const torch::Tensor &logits, double temperature, int topK, double topP);

} // namespace dpo
