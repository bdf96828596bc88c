// Text generation from a CausalLM: greedy decoding or sampling (temperature, top-k, top-p with
// Hugging Face's semantics), for one prompt or a left-padded batch of prompts. The KV cache is
// allocated once for the prompt and every new token; choosing a token runs on the model's device
// and only the chosen ids come back to the host. Sampling takes its random numbers from a CPU
// generator seeded from the options, so the same seed draws the same numbers on any device.
// It works on token ids only: encoding and decoding text is the caller's.
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
// `cache`, when given, is the one decoded into (reserved for prompt + new tokens, left filled):
// its storage is reused when it fits, and it can be inspected.
std::vector<int64_t> generate(CausalLM &model, const std::vector<int64_t> &promptIds, const GenerationOptions &options,
    const std::function<bool(int64_t)> &onToken = {}, KVCache *cache = nullptr);

// Several prompts at once (left-padded, one KV cache). Greedy results equal generate() per prompt
// up to floating-point ties; sampled rows draw from one generator in row order, so they differ
// from one-by-one sampling with the same seed. `cache` as for generate().
std::vector<std::vector<int64_t>> generateBatch(CausalLM &model, const std::vector<std::vector<int64_t>> &prompts,
    const GenerationOptions &options, KVCache *cache = nullptr);

// The next token of each row of logits [B, V] (any device and float dtype): ids [B] int64 on the
// logits' device. Greedy: the argmax. Sampling: one draw from softmax(warpLogits(...)) per row, by
// inverting the cumulative distribution at a uniform number taken from `generator` (a CPU
// generator, one number per row in row order). A row whose scores are no distribution (NaN) gives -1.
torch::Tensor chooseTokens(const torch::Tensor &logits, const GenerationOptions &options, at::Generator &generator);

// The sampling warpers HF applies, in its order: temperature, top-k, then top-p (nucleus: keep
// the smallest set of most likely tokens whose probability reaches p, at least one). logits [V]
// or [B, V] float32; returns logits with removed tokens at -inf.
torch::Tensor warpLogits(const torch::Tensor &logits, double temperature, int topK, double topP);

} // namespace dpo
