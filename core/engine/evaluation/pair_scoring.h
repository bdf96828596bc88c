// Scoring preference pairs in batches without gradients: each pair's summed completion log-probs
// (chosen and rejected), with the extras `dpo-cli score` reports (LD-DPO-weighted sums, plain sums,
// WPO weights, token counts). What `dpo-cli score` and the Evaluate page's checkpoint scoring share;
// the trainer scores its micro-batches itself (it needs gradients and the shared-prompt layout).
#pragma once

#include "engine/data/preference_data.h"
#include "engine/models/causal_lm.h"
#include "engine/training/logprobs.h"

#include "engine/torch_api.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

namespace dpo {

struct ScoredPairs {
    // One entry per pair, in order (float64 on the CPU). Sums are LD-DPO weighted when options.ldAlpha
    // is set (dpoSum); plain* are the unweighted sums; weights are WPO's (only with options.stats).
    torch::Tensor chosenSum, rejectedSum, chosenCount, rejectedCount, chosenPlain, rejectedPlain;
    torch::Tensor chosenWeight, rejectedWeight;
    CompletionLogps chosen() const { return { chosenSum, chosenCount }; }
    CompletionLogps rejected() const { return { rejectedSum, rejectedCount }; }
};

// Scores `pairs` with `model` in batches of `batchSize` pairs (collatePairs, completionLogps).
// `afterBatch` (optional) runs after each batch; returning false stops the scoring and the result is
// std::nullopt (a cancel). Throws dpo::Error for batchSize < 1 or an empty `pairs`.
std::optional<ScoredPairs> scorePairs(CausalLM &model, const std::vector<TokenizedPair> &pairs, int64_t padId,
    int64_t batchSize, torch::Device device, const LogpsOptions &options = {},
    const std::function<bool()> &afterBatch = {});

} // namespace dpo
