// Completion log-probabilities: for each row of a right-padded batch, the sum (and count) of
// log p(token) over the tokens marked as completion, from ONE forward pass of the model. This is
// the quantity DPO compares; prompt and padding tokens are masked out.
#pragma once

#include "engine/models/causal_lm.h"

#include "engine/torch_api.h"

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace dpo {

struct PackedBatch; // preference_data.h

// What else to compute in the same pass (TRL 1.x's DPO extras).
struct LogpsOptions {
    // Per-row token statistics for TRL's metrics and WPO weights (CompletionLogps::entropySum ...).
    bool stats = false;
    // LD-DPO: rows are [chosen 0..B-1, rejected B..2B-1]; ldSum weighs the completion tokens of a row
    // beyond min(chosen length, rejected length) of its pair by this α.
    std::optional<double> ldAlpha;
    // Positions per head chunk (0: as many as keep a chunk's float32 logits near 128 MiB). In training
    // each chunk's logits are recomputed in backward, so a chunk is all the logit memory a step holds.
    int64_t chunkRows = 0;
};

struct CompletionLogps {
    torch::Tensor sum; // [N] float32: summed log-probs of completion tokens
    torch::Tensor count; // [N] float32: number of completion tokens
    torch::Tensor mean() const { return sum / count.clamp_min(1); }
    // With LogpsOptions::ldAlpha: [N] shared-part sum + α · tail sum (differentiable); else undefined.
    torch::Tensor ldSum;
    // With LogpsOptions::stats, [N] float32, detached, over each row's completion tokens:
    torch::Tensor entropySum; // Σ entropy of the predicted distribution (nats)
    torch::Tensor logitMeanSum; // Σ (mean over the vocabulary of the logits)
    torch::Tensor correct; // number of tokens whose argmax prediction is the token
    torch::Tensor wpoSum; // Σ [log p(token) − log Σ_v p(v)²]  (WPO's aligned log-prob)
    // exp(wpoSum / count): WPO's per-sequence weight.
    torch::Tensor wpoWeight() const { return torch::exp(wpoSum / count.clamp_min(1)); }
    // sum, or ldSum when LD-DPO is on.
    const torch::Tensor &dpoSum() const { return ldSum.defined() ? ldSum : sum; }
};

// TRL 1.x's token metrics of one DPO micro-batch from policy log-probs computed with stats (rows:
// B chosen, then B rejected): entropy (token mean over all completion tokens), logits/chosen and
// logits/rejected (token mean of the vocabulary-mean logit), mean_token_accuracy (chosen tokens
// only). A metric with no tokens is 0, as in TRL.
std::map<std::string, double> trlTokenMetrics(const CompletionLogps &policy);
// The same four values as a [4] float32 tensor on the log-probs' device (no host read), in the order
// of trlTokenMetricNames().
torch::Tensor trlTokenMetricValues(const CompletionLogps &policy);
const std::vector<std::string> &trlTokenMetricNames();

// LD-DPO token weights of a [2B, W] completion mask (rows: B chosen, then B rejected; a row's
// completion tokens in order): 1 for the first min(Lc, Lr) completion tokens of each row, α after
// them, 0 where the mask is 0.
torch::Tensor ldAlphaTokenWeights(const torch::Tensor &completionMask, double alpha);

// The same results as completionLogps from logits already computed: logits [N, T, V], inputIds and
// completionMask [N, T] (token t scored with the logits at t-1). For tests and tools.
CompletionLogps completionLogpsFromLogits(const torch::Tensor &logits, const torch::Tensor &inputIds,
    const torch::Tensor &completionMask, const LogpsOptions &options = {});

// inputIds [N, T] int64, attentionMask [N, T] (1 = real token), completionMask [N, T]
// (1 where the token at that position is a completion token to be scored; position 0 never is).
// Token t is scored with the logits at t-1. Log-softmax runs in float32 whatever the model dtype,
// in chunks of rows so the [N, T, V] float32 tensor never exists at once for large vocabularies.
// Differentiable: gradients flow into the model when grad mode is on.
CompletionLogps completionLogps(CausalLM &model, const torch::Tensor &inputIds, const torch::Tensor &attentionMask,
    const torch::Tensor &completionMask, const LogpsOptions &options = {});

// completionLogps of a padding-free batch (collatePacked): rows in the packed order (chosen, then
// rejected), equal to completionLogps of the padded batch up to rounding. ld_alpha is not supported
// here (an error).
CompletionLogps packedLogps(CausalLM &model, const PackedBatch &batch, const LogpsOptions &options = {});

// A DPO batch whose chosen and rejected sequences of each pair start with the same prompt, laid out so
// the prompt is computed once per pair (see collateSharedPrompt in preference_data.h).
struct SharedPromptBatch {
    torch::Tensor promptIds; // [B, Tp] int64, right-padded
    torch::Tensor promptMask; // [B, Tp] 1 = real prompt token (every prompt has at least one)
    torch::Tensor promptLast; // [B] int64: index of each prompt's last real token
    torch::Tensor completionIds; // [2B, Tc] int64: chosen completions, then rejected ones; right-padded
    torch::Tensor completionMask; // [2B, Tc] 1 = real completion token (each one is scored)
    std::vector<int64_t> promptLengths; // [B] real prompt tokens of each pair (promptMask's row sums)
    int64_t numPairs = 0;
    int64_t numTokens = 0; // real tokens of the 2B full sequences (as collatePairs counts them)
};

// The same sums and counts as completionLogps on the concatenated [2B, Tp + Tc] batch (equal up to
// float rounding), from the prompt's forward pass once per pair: its keys and values are cached and
// shared by both completions, which attend to them at the positions they would have had, and autograd
// adds both completions' gradients into the shared prompt. Saves the compute of B prompt copies, half
// of all prompt tokens. Rows: chosen 0..B-1, rejected B..2B-1.
CompletionLogps sharedPromptLogps(CausalLM &model, const SharedPromptBatch &batch, const LogpsOptions &options = {});

} // namespace dpo
