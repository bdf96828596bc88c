// Preference data: reading TRL-format JSONL rows, tokenizing them with TRL's (>= 0.29) rule,
// max_length truncation, and collating pairs into the right-padded [2B, T] batch (chosen rows then
// rejected rows) that completionLogps() scores in one forward pass.
//
// Row formats (one JSON object per line; blank lines are skipped; other keys are ignored):
//   standard          {"prompt": str, "chosen": str, "rejected": str}
//   implicit prompt   {"chosen": str, "rejected": str}: the prompt is the longest common prefix of
//                     chosen and rejected, cut as TRL's extract_prompt cuts it (at a character, i.e.
//                     on a UTF-8 code-point boundary; a space just before the first difference goes
//                     with the completions; when one text is a prefix of the other the cut falls
//                     before the shorter text's last character, so neither completion is empty).
//   conversational    "prompt" (optional), "chosen", "rejected" are lists of {"role","content"}
//                     messages (without "prompt", the common leading messages are the prompt).
//
// What this does NOT do: apply chat templates. Conversational rows are rendered as plain text: the
// prompt is its messages' contents joined with "\n"; each completion is "\n" (when the prompt is not
// empty) followed by its messages' contents joined with "\n". Roles are checked for being strings
// but otherwise ignored. Models trained on a chat template should be given standard-format rows
// rendered with that template.
#pragma once

#include "engine/training/logprobs.h"
#include "engine/tokenizers/tokenizer.h"

#include "engine/torch_api.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dpo {

struct PreferenceRow {
    std::string prompt;
    std::string chosen;
    std::string rejected;
    int64_t line = 0; // 1-based line in the source file (0 when not read from a file)
};

// Size limits on rows, checked before a row is parsed or tokenized (tokenizing costs ~250 bytes of
// memory per byte of text: an unbounded 100 MB row would need ~24 GB). A longer row or field is an
// error naming the file, line, size and the way to raise the limit.
//   maxRowBytes    one JSONL line; default 8 MiB, environment DPO_MAX_ROW_BYTES, TrainConfig
//                  max_row_bytes / `dpo-cli train|score --max-row-bytes` (which also raise the field limit)
//   maxFieldBytes  each of prompt, chosen, rejected (as rendered); default 4 MiB, environment
//                  DPO_MAX_FIELD_BYTES
// JSON nesting is bounded as everywhere (json_limits.h).
struct PreferenceDataLimits {
    static constexpr int64_t kDefaultMaxRowBytes = int64_t(8) << 20;
    static constexpr int64_t kDefaultMaxFieldBytes = int64_t(4) << 20;
    int64_t maxRowBytes = kDefaultMaxRowBytes;
    int64_t maxFieldBytes = kDefaultMaxFieldBytes;
    // The defaults, overridden by DPO_MAX_ROW_BYTES / DPO_MAX_FIELD_BYTES when set (positive integers).
    static PreferenceDataLimits defaults();
    // defaults(), or both limits set to `maxRowBytes` when it is positive (an option's value).
    static PreferenceDataLimits withMaxRowBytes(int64_t maxRowBytes);
};

// Reads every row of a JSONL file. Throws dpo::Error naming the file and line for: a missing or
// unreadable file, invalid UTF-8, invalid JSON, a line that is not an object, a missing or
// mistyped field, an empty chosen or rejected text, a row or field above `limits`, and a file
// without any row.
std::vector<PreferenceRow> readPreferenceJsonl(
    const std::string &path, const PreferenceDataLimits &limits = PreferenceDataLimits::defaults());

// Parses one JSONL line (exposed for tests and the GUI's importers). `source` and `line` name the
// place in errors.
PreferenceRow parsePreferenceLine(const std::string &text, const std::string &source, int64_t line,
    const PreferenceDataLimits &limits = PreferenceDataLimits::defaults());

// TRL's extract_prompt on plain text: {prompt, chosen, rejected} from full chosen/rejected texts.
PreferenceRow splitImplicitPrompt(const std::string &chosen, const std::string &rejected);

struct TruncationOptions {
    int64_t maxLength = 0; // 0 = no truncation; otherwise the longest prompt+completion sequence
    std::string mode = "keep_start"; // "keep_start" | "keep_end"
    // Throws dpo::Error for an unknown mode or a negative maxLength.
    void validate() const;
};

// One side of a pair as the model sees it: prompt tokens followed by completion tokens.
struct ModelSequence {
    std::vector<int64_t> ids;
    int64_t promptLength = 0; // ids[0, promptLength) are prompt, the rest is completion
    int64_t completionLength() const { return int64_t(ids.size()) - promptLength; }
};

struct TokenizedPair {
    // The row as tokenized, before truncation (what `dpo-cli score` reports).
    std::vector<int64_t> promptIds; // tok.encodeWithSpecial(prompt)
    std::vector<int64_t> chosenIds; // completion tokens + EOS
    std::vector<int64_t> rejectedIds; // completion tokens + EOS
    // The two sequences after max_length truncation. TRL truncates each sequence on its own, so with
    // keep_end the chosen and rejected sequences can keep different parts of the prompt.
    ModelSequence chosen;
    ModelSequence rejected;
};

// TRL's (>= 0.29) rule:
//   prompt_ids   = tok.encodeWithSpecial(prompt)
//   chosen_ids   = tok.encodeWithSpecial(prompt + chosen)[len(prompt_ids):] + [eos]
//   rejected_ids likewise.
// When the encoding of prompt + completion does not start with prompt_ids (a token merged across
// the boundary, or add_eos_token puts EOS after the prompt), the completion is encoded on its own
// with encodeWithSpecial minus the leading BOS. EOS is appended unless the ids already end with it
// (add_eos_token). A tokenizer without an EOS id is an error.
//
// Truncation (TRL's concatenated_forward), applied to each prompt+completion sequence on its own
// when its length exceeds maxLength:
//   keep_start  keeps the first maxLength tokens: the completion is cut at its end; a prompt of
//               maxLength tokens or more leaves an empty completion.
//   keep_end    keeps the last maxLength tokens: the prompt loses its start first; a completion
//               longer than maxLength loses its start too and no prompt token is left.
// As in TRL, a row whose completion is emptied is kept: it contributes a summed log-prob of 0 over
// 0 tokens (and, with no prompt token left, its first completion token cannot be scored because
// nothing precedes it).
TokenizedPair tokenizePair(const Tokenizer &tok, const PreferenceRow &row, const TruncationOptions &truncation = {});

// Applies truncation to one prompt+completion sequence (exposed for tests).
ModelSequence truncateSequence(const std::vector<int64_t> &promptIds, const std::vector<int64_t> &completionIds,
    const TruncationOptions &truncation);

struct PreferenceBatch {
    // [2B, T] int64, right-padded: rows 0..B-1 are the chosen sequences, rows B..2B-1 the rejected
    // ones in the same order.
    torch::Tensor inputIds; // padding = padId
    torch::Tensor attentionMask; // 1 = real token, 0 = padding
    torch::Tensor completionMask; // 1 = completion token to score (never position 0)
    int64_t numPairs = 0;
    int64_t numTokens = 0; // real (unpadded) tokens in the batch
};

// Collates pairs into one batch on `device`. A negative padId (tokenizers without a pad token) pads
// with 0; padded positions are masked anyway. Throws dpo::Error when `pairs` is empty.
PreferenceBatch collatePairs(
    const std::vector<TokenizedPair> &pairs, int64_t padId, torch::Device device = torch::kCPU);

// The same pairs laid out for sharedPromptLogps (logprobs.h): each pair's prompt once, then its chosen
// and rejected completions. Only when every pair's two sequences start with the same prompt of at least
// one token (keep_end truncation can cut them differently, and an empty prompt leaves nothing to
// share); otherwise std::nullopt and the caller uses collatePairs. Throws dpo::Error when `pairs` is empty.
std::optional<SharedPromptBatch> collateSharedPrompt(
    const std::vector<TokenizedPair> &pairs, int64_t padId, torch::Device device = torch::kCPU);

} // namespace dpo
