// Preference data: reading TRL-format JSONL rows, tokenizing them with TRL 1.x's rule (trl 1.10,
// DPOTrainer._prepare_dataset), max_length truncation, and collating pairs into the right-padded
// [2B, T] batch (chosen rows then rejected rows) that completionLogps() scores in one forward pass.
//
// Row formats (one JSON object per line; blank lines are skipped; other keys are ignored):
//   standard          {"prompt": str, "chosen": str, "rejected": str}
//   implicit prompt   {"chosen": str, "rejected": str}: the prompt is the longest common prefix of
//                     chosen and rejected, cut as TRL's extract_prompt cuts it (at a character, i.e.
//                     on a UTF-8 code-point boundary; a space just before the first difference goes
//                     with the completions; when one text is a prefix of the other the cut falls
//                     before the shorter text's last character, so neither completion is empty).
//   conversational    "prompt" (optional), "chosen", "rejected" are lists of messages (objects with a
//                     string "role"; "content", "tool_calls", ... are passed to the chat template as
//                     they are). Without "prompt", the common leading messages are the prompt (whole
//                     messages compared, as TRL's extract_prompt does). Optional per-row columns:
//                     "tools" (a list of JSON-schema tools, or that list as a JSON string) and
//                     "chat_template_kwargs" (an object of extra template variables).
// A file holds one format: a conversational row after a standard one (or the reverse) is an error,
// as a Hugging Face dataset cannot mix them either.
#pragma once

#include "engine/training/logprobs.h"
#include "engine/tokenizers/tokenizer.h"

#include "engine/torch_api.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace dpo {

struct ModelChatTemplate; // engine/chat/chat_template.h

// A conversational row's message lists after prompt extraction, and its per-row template inputs.
struct Conversation {
    nlohmann::ordered_json prompt = nlohmann::ordered_json::array();
    nlohmann::ordered_json chosen = nlohmann::ordered_json::array();
    nlohmann::ordered_json rejected = nlohmann::ordered_json::array();
    nlohmann::ordered_json tools; // null, or the row's list of tools
    nlohmann::ordered_json templateKwargs = nlohmann::ordered_json::object(); // chat_template_kwargs
};

struct PreferenceRow {
    // Standard rows: the texts. Conversational rows: a plain-text view for logs and listings (the
    // messages' contents joined with "\n"; each completion starts with "\n" when the prompt is not
    // empty); the model sees the template's rendering of `conversation` instead.
    std::string prompt;
    std::string chosen;
    std::string rejected;
    int64_t line = 0; // 1-based line in the source file (0 when not read from a file)
    std::shared_ptr<const Conversation> conversation; // set for conversational rows only
    bool isConversational() const { return conversation != nullptr; }
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
// mistyped field, an empty chosen or rejected text or message list, a row or field above `limits`,
// a row whose format (standard or conversational) differs from the first row's, and a file
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
    std::vector<int64_t> promptIds;
    std::vector<int64_t> chosenIds; // completion tokens (EOS included)
    std::vector<int64_t> rejectedIds;
    // The tokens of prompt + completion did not start with promptIds for chosen or rejected (TRL
    // warns and slices anyway; the data check counts these rows).
    bool promptMismatch = false;
    // The two sequences after max_length truncation. TRL truncates each sequence on its own, so with
    // keep_end the chosen and rejected sequences can keep different parts of the prompt.
    ModelSequence chosen;
    ModelSequence rejected;
};

// TRL 1.x's rule (DPOTrainer._prepare_dataset).
//   standard rows: EOS is appended to chosen and rejected as text (the tokenizer's EOS token string)
//     unless the text already ends with it; then
//       prompt_ids   = tok.encodeWithSpecial(prompt)          (the tokenizer's own BOS/EOS settings)
//       chosen_ids   = tok.encodeWithSpecial(prompt + chosen)[len(prompt_ids):]
//   conversational rows (needs `chat`): rendered with the chat template as transformers'
//     apply_chat_template does, then tokenized without adding special tokens (the template has them):
//       prompt_ids   = tok.encode(render(prompt, add_generation_prompt=True))
//       chosen_ids   = tok.encode(render(prompt + chosen))[len(prompt_ids):]
//     No EOS is appended: the template closes the turn. The row's tools and chat_template_kwargs are
//     template variables.
//   rejected_ids likewise. When the longer encoding does not start with prompt_ids, the slice is
//   taken anyway (as TRL does) and promptMismatch is set.
// A tokenizer without an EOS token, and a conversational row without `chat`, are errors.
//
// Truncation (TRL's collator), applied to each prompt+completion sequence on its own when its
// length exceeds maxLength:
//   keep_start  keeps the first maxLength tokens: the completion is cut at its end. TRL drops rows
//               whose prompt alone has maxLength tokens or more before batching (see
//               dropsFullyTruncated); a row given here anyway gets an empty completion.
//   keep_end    keeps the last maxLength tokens: the prompt loses its start first; a completion
//               longer than maxLength loses its start too and no prompt token is left.
TokenizedPair tokenizePair(const Tokenizer &tok, const PreferenceRow &row, const TruncationOptions &truncation = {},
    const ModelChatTemplate *chat = nullptr);

// TRL's filter in _prepare_dataset: with keep_start truncation and a max_length, a row whose prompt
// alone fills max_length has no completion token left and is dropped from the data set.
bool dropsFullyTruncated(const TokenizedPair &pair, const TruncationOptions &truncation);

// What tokenizing a data set found, for logs and the Train page's data check.
struct TokenizationReport {
    int64_t rows = 0;
    int64_t conversational = 0;
    std::vector<int64_t> mismatchLines; // rows with promptMismatch (their source lines)
    std::vector<int64_t> droppedLines;  // rows dropped by dropsFullyTruncated
    // One line for a log, e.g. "2 rows whose prompt tokens are not a prefix of prompt+completion
    // (lines 4, 9); ..."; empty when there is nothing to report.
    std::string summary() const;
};

// Throws dpo::Error when `rows` holds a conversational row and `chat` is null: names `modelDir`, the
// row's file line, and the --chat-template option.
void requireChatTemplate(const std::vector<PreferenceRow> &rows, const ModelChatTemplate *chat,
    const std::string &modelDir);

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

// A padding-free batch (TRL's padding_free): the 2B sequences of collatePairs (chosen, then
// rejected) back to back in one [1, N] row with no padding; CausalLM::forwardHiddenPacked keeps
// each sequence to itself.
struct PackedBatch {
    torch::Tensor inputIds; // [1, N] int64
    torch::Tensor completionMask; // [1, N] 1 = completion token to score (never a sequence's first token)
    torch::Tensor rowOfToken; // [N] int64: the sequence (row of the padded batch) each token belongs to
    std::vector<int64_t> starts; // 2B + 1 boundaries: 0, ..., N
    int64_t numPairs = 0;
    int64_t numTokens = 0; // N
};

PackedBatch collatePacked(const std::vector<TokenizedPair> &pairs, torch::Device device = torch::kCPU);

// Right-pads single sequences into an [N, T] batch on `device` (numPairs stays 0): what SFT trains on,
// and what collatePairs lays out for chosen then rejected. Throws dpo::Error when `seqs` is empty.
PreferenceBatch collateSequences(const std::vector<const ModelSequence *> &seqs, int64_t padId,
    torch::Device device = torch::kCPU);

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
