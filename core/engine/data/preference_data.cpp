#include "engine/data/preference_data.h"

#include "engine/error.h"
#include "engine/io/json_limits.h"
#include "engine/tokenizers/utf8.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <fstream>

namespace dpo {

namespace {

using nlohmann::json;

std::string where(const std::string &source, int64_t line)
{
    return line > 0 ? source + ":" + std::to_string(line) : source;
}

int64_t envLimit(const char *name, int64_t def)
{
    const char *v = std::getenv(name);
    if (!v || !*v)
        return def;
    char *end = nullptr;
    const long long n = std::strtoll(v, &end, 10);
    if (*end != '\0' || n <= 0)
        throw Error(std::string("environment variable ") + name + "='" + v + "' is not a positive number of bytes");
    return int64_t(n);
}

void checkFieldSize(const std::string &text, const char *field, const std::string &at, const PreferenceDataLimits &l)
{
    if (int64_t(text.size()) > l.maxFieldBytes)
        throw Error(at + ": field '" + field + "' is " + std::to_string(text.size()) + " bytes, above the limit of "
            + std::to_string(l.maxFieldBytes) + " (raise it with --max-row-bytes or DPO_MAX_FIELD_BYTES)");
}

bool isBlank(const std::string &s)
{
    return std::all_of(
        s.begin(), s.end(), [](unsigned char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; });
}

bool isContinuationByte(char c)
{
    return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

struct Message {
    std::string role;
    std::string content;
};

std::vector<Message> parseMessages(const json &value, const std::string &field, const std::string &at)
{
    std::vector<Message> out;
    for (size_t i = 0; i < value.size(); ++i) {
        const json &m = value[i];
        const std::string name = "'" + field + "[" + std::to_string(i) + "]'";
        if (!m.is_object())
            throw Error(at + ": " + name + " must be an object with \"role\" and \"content\"");
        const auto role = m.find("role");
        const auto content = m.find("content");
        if (role == m.end() || !role->is_string())
            throw Error(at + ": " + name + " needs a string \"role\"");
        if (content == m.end() || !content->is_string())
            throw Error(at + ": " + name + " needs a string \"content\"");
        out.push_back({ role->get<std::string>(), content->get<std::string>() });
    }
    return out;
}

std::string joinContents(const std::vector<Message> &messages, size_t begin, size_t end)
{
    std::string text;
    for (size_t i = begin; i < end; ++i) {
        if (i > begin)
            text += '\n';
        text += messages[i].content;
    }
    return text;
}

bool sameMessage(const Message &a, const Message &b)
{
    return a.role == b.role && a.content == b.content;
}

PreferenceRow parseConversational(const json &j, const std::string &at)
{
    const json &chosenJ = j.at("chosen");
    const json &rejectedJ = j.at("rejected");
    if (!rejectedJ.is_array())
        throw Error(at + ": field 'rejected' must be a list of messages like 'chosen'");
    const auto chosen = parseMessages(chosenJ, "chosen", at);
    const auto rejected = parseMessages(rejectedJ, "rejected", at);
    if (chosen.empty())
        throw Error(at + ": field 'chosen' is empty");
    if (rejected.empty())
        throw Error(at + ": field 'rejected' is empty");

    std::vector<Message> prompt;
    size_t chosenStart = 0;
    size_t rejectedStart = 0;
    const auto promptIt = j.find("prompt");
    if (promptIt != j.end()) {
        if (!promptIt->is_array())
            throw Error(at + ": field 'prompt' must be a list of messages like 'chosen'");
        prompt = parseMessages(*promptIt, "prompt", at);
    } else {
        // TRL's extract_prompt on message lists: the prompt is the common leading messages; when
        // one list is a prefix of the other the cut falls before the shorter one's last message.
        const size_t n = std::min(chosen.size(), rejected.size());
        size_t idx = 0;
        while (idx < n && sameMessage(chosen[idx], rejected[idx]))
            ++idx;
        if (idx == n)
            idx = n - 1;
        prompt.assign(chosen.begin(), chosen.begin() + idx);
        chosenStart = rejectedStart = idx;
    }

    PreferenceRow row;
    row.prompt = joinContents(prompt, 0, prompt.size());
    const std::string lead = row.prompt.empty() ? "" : "\n";
    row.chosen = lead + joinContents(chosen, chosenStart, chosen.size());
    row.rejected = lead + joinContents(rejected, rejectedStart, rejected.size());
    return row;
}

} // namespace

PreferenceRow splitImplicitPrompt(const std::string &chosen, const std::string &rejected)
{
    // TRL compares characters; here bytes are compared and the cut is moved back to the start of
    // the code point, which gives the same character index for valid UTF-8.
    const size_t n = std::min(chosen.size(), rejected.size());
    size_t i = 0;
    while (i < n && chosen[i] == rejected[i])
        ++i;
    size_t cut;
    if (i < n) {
        cut = i;
        while (cut > 0 && isContinuationByte(chosen[cut]))
            --cut;
        if (cut > 0 && chosen[cut - 1] == ' ')
            --cut; // the space belongs to the completions
    } else {
        // No differing character: Python's loop variable stays at the shorter text's last index.
        cut = n == 0 ? 0 : n - 1;
        while (cut > 0 && isContinuationByte(chosen[cut]))
            --cut;
    }
    PreferenceRow row;
    row.prompt = chosen.substr(0, cut);
    row.chosen = chosen.substr(cut);
    row.rejected = rejected.substr(cut);
    return row;
}

PreferenceDataLimits PreferenceDataLimits::defaults()
{
    PreferenceDataLimits l;
    l.maxRowBytes = envLimit("DPO_MAX_ROW_BYTES", kDefaultMaxRowBytes);
    l.maxFieldBytes = envLimit("DPO_MAX_FIELD_BYTES", kDefaultMaxFieldBytes);
    return l;
}

PreferenceDataLimits PreferenceDataLimits::withMaxRowBytes(int64_t maxRowBytes)
{
    PreferenceDataLimits l = defaults();
    if (maxRowBytes > 0)
        l.maxRowBytes = l.maxFieldBytes = maxRowBytes;
    return l;
}

PreferenceRow parsePreferenceLine(
    const std::string &text, const std::string &source, int64_t line, const PreferenceDataLimits &limits)
{
    const std::string at = where(source, line);
    if (int64_t(text.size()) > limits.maxRowBytes)
        throw Error(at + ": row of " + std::to_string(text.size()) + " bytes is above the limit of "
            + std::to_string(limits.maxRowBytes) + " (raise it with --max-row-bytes or DPO_MAX_ROW_BYTES)");
    requireUtf8(text, at);
    const json j = parseJsonLimited(text, at); // "<at>: invalid JSON: ..." / nesting bounded
    if (!j.is_object())
        throw Error(at + ": a preference row must be a JSON object");

    for (const char *field : { "chosen", "rejected" }) {
        if (!j.contains(field))
            throw Error(at + ": missing field '" + field + "'");
    }

    PreferenceRow row;
    if (j.at("chosen").is_array()) {
        row = parseConversational(j, at);
    } else {
        for (const char *field : { "prompt", "chosen", "rejected" }) {
            const auto it = j.find(field);
            if (it != j.end() && !it->is_string())
                throw Error(at + ": field '" + field + "' must be a string (or, in every field, a list of messages)");
        }
        const std::string chosen = j.at("chosen").get<std::string>();
        const std::string rejected = j.at("rejected").get<std::string>();
        if (chosen.empty())
            throw Error(at + ": field 'chosen' is empty");
        if (rejected.empty())
            throw Error(at + ": field 'rejected' is empty");
        if (j.contains("prompt")) {
            row.prompt = j.at("prompt").get<std::string>();
            row.chosen = chosen;
            row.rejected = rejected;
        } else {
            row = splitImplicitPrompt(chosen, rejected);
        }
    }
    checkFieldSize(row.prompt, "prompt", at, limits);
    checkFieldSize(row.chosen, "chosen", at, limits);
    checkFieldSize(row.rejected, "rejected", at, limits);
    row.line = line;
    return row;
}

std::vector<PreferenceRow> readPreferenceJsonl(const std::string &path, const PreferenceDataLimits &limits)
{
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw Error(path + ": cannot open preference data file");
    std::vector<PreferenceRow> rows;
    std::string text;
    int64_t line = 0;
    bool tooLong = false;
    // +4: a BOM (3 bytes) and a '\r' are stripped below; what is left is checked by parsePreferenceLine.
    while (readLineLimited(in, text, uint64_t(limits.maxRowBytes) + 4, &tooLong)) {
        ++line;
        if (tooLong)
            throw Error(path + ":" + std::to_string(line) + ": row is longer than the limit of "
                + std::to_string(limits.maxRowBytes) + " bytes (raise it with --max-row-bytes or DPO_MAX_ROW_BYTES)");
        if (line == 1 && text.rfind("\xEF\xBB\xBF", 0) == 0)
            text.erase(0, 3); // UTF-8 byte-order mark left by some editors
        if (!text.empty() && text.back() == '\r')
            text.pop_back();
        if (isBlank(text))
            continue;
        rows.push_back(parsePreferenceLine(text, path, line, limits));
    }
    if (in.bad())
        throw Error(path + ": read error after line " + std::to_string(line));
    if (rows.empty())
        throw Error(path + ": no preference rows (the file is empty)");
    return rows;
}

void TruncationOptions::validate() const
{
    if (mode != "keep_start" && mode != "keep_end")
        throw Error("truncation mode '" + mode + "' is unknown (use keep_start or keep_end)");
    if (maxLength < 0)
        throw Error("max_length must be 0 (no truncation) or positive, got " + std::to_string(maxLength));
}

ModelSequence truncateSequence(const std::vector<int64_t> &promptIds, const std::vector<int64_t> &completionIds,
    const TruncationOptions &truncation)
{
    truncation.validate();
    ModelSequence seq;
    seq.ids = promptIds;
    seq.ids.insert(seq.ids.end(), completionIds.begin(), completionIds.end());
    seq.promptLength = int64_t(promptIds.size());
    const int64_t total = int64_t(seq.ids.size());
    const int64_t limit = truncation.maxLength;
    if (limit <= 0 || total <= limit)
        return seq;
    if (truncation.mode == "keep_start") {
        seq.ids.resize(size_t(limit));
        seq.promptLength = std::min(seq.promptLength, limit);
    } else {
        const int64_t drop = total - limit;
        seq.ids.erase(seq.ids.begin(), seq.ids.begin() + drop);
        seq.promptLength = std::max<int64_t>(0, seq.promptLength - drop);
    }
    return seq;
}

TokenizedPair tokenizePair(const Tokenizer &tok, const PreferenceRow &row, const TruncationOptions &truncation)
{
    truncation.validate();
    const int64_t eos = tok.eosId();
    if (eos < 0)
        throw Error("the tokenizer has no EOS token, which DPO appends to every completion");

    TokenizedPair pair;
    pair.promptIds = tok.encodeWithSpecial(row.prompt);
    const auto &promptIds = pair.promptIds;

    auto completionIds = [&](const std::string &completion) {
        const std::vector<int64_t> full = tok.encodeWithSpecial(row.prompt + completion);
        std::vector<int64_t> ids;
        if (full.size() >= promptIds.size() && std::equal(promptIds.begin(), promptIds.end(), full.begin())) {
            ids.assign(full.begin() + promptIds.size(), full.end());
        } else {
            ids = tok.encodeWithSpecial(completion);
            if (tok.addBos() && !ids.empty() && ids.front() == tok.bosId())
                ids.erase(ids.begin());
        }
        if (!(tok.addEos() && !ids.empty() && ids.back() == eos))
            ids.push_back(eos);
        return ids;
    };
    pair.chosenIds = completionIds(row.chosen);
    pair.rejectedIds = completionIds(row.rejected);
    pair.chosen = truncateSequence(promptIds, pair.chosenIds, truncation);
    pair.rejected = truncateSequence(promptIds, pair.rejectedIds, truncation);
    return pair;
}

PreferenceBatch collatePairs(const std::vector<TokenizedPair> &pairs, int64_t padId, torch::Device device)
{
    if (pairs.empty())
        throw Error("cannot collate an empty list of preference pairs");
    const int64_t b = int64_t(pairs.size());
    std::vector<const ModelSequence *> seqs;
    seqs.reserve(size_t(2 * b));
    for (const auto &p : pairs)
        seqs.push_back(&p.chosen);
    for (const auto &p : pairs)
        seqs.push_back(&p.rejected);

    int64_t t = 1;
    for (const auto *s : seqs)
        t = std::max<int64_t>(t, int64_t(s->ids.size()));

    const int64_t pad = padId >= 0 ? padId : 0;
    auto ids = torch::full({ 2 * b, t }, pad, torch::kLong);
    auto attention = torch::zeros({ 2 * b, t }, torch::kLong);
    auto completion = torch::zeros({ 2 * b, t }, torch::kLong);
    auto idsA = ids.accessor<int64_t, 2>();
    auto attA = attention.accessor<int64_t, 2>();
    auto compA = completion.accessor<int64_t, 2>();
    int64_t numTokens = 0;
    for (int64_t r = 0; r < 2 * b; ++r) {
        const ModelSequence &s = *seqs[size_t(r)];
        const int64_t len = int64_t(s.ids.size());
        numTokens += len;
        for (int64_t k = 0; k < len; ++k) {
            idsA[r][k] = s.ids[size_t(k)];
            attA[r][k] = 1;
            // Token k is scored from the logits at k-1, so position 0 can never be a scored token.
            compA[r][k] = (k >= s.promptLength && k > 0) ? 1 : 0;
        }
    }

    PreferenceBatch batch;
    batch.inputIds = ids.to(device);
    batch.attentionMask = attention.to(device);
    batch.completionMask = completion.to(device);
    batch.numPairs = b;
    batch.numTokens = numTokens;
    return batch;
}

std::optional<SharedPromptBatch> collateSharedPrompt(
    const std::vector<TokenizedPair> &pairs, int64_t padId, torch::Device device)
{
    if (pairs.empty())
        throw Error("collateSharedPrompt: no pairs");
    const int64_t b = int64_t(pairs.size());
    int64_t tp = 1, tc = 1, numTokens = 0;
    for (const auto &p : pairs) {
        const int64_t lp = p.chosen.promptLength;
        if (lp < 1 || p.rejected.promptLength != lp
            || !std::equal(p.chosen.ids.begin(), p.chosen.ids.begin() + lp, p.rejected.ids.begin()))
            return std::nullopt;
        tp = std::max(tp, lp);
        tc = std::max({ tc, p.chosen.completionLength(), p.rejected.completionLength() });
        numTokens += int64_t(p.chosen.ids.size() + p.rejected.ids.size());
    }
    const int64_t pad = padId >= 0 ? padId : 0;
    auto promptIds = torch::full({ b, tp }, pad, torch::kLong);
    auto promptMask = torch::zeros({ b, tp }, torch::kLong);
    auto promptLast = torch::zeros({ b }, torch::kLong);
    auto compIds = torch::full({ 2 * b, tc }, pad, torch::kLong);
    auto compMask = torch::zeros({ 2 * b, tc }, torch::kLong);
    auto pi = promptIds.accessor<int64_t, 2>();
    auto pm = promptMask.accessor<int64_t, 2>();
    auto pl = promptLast.accessor<int64_t, 1>();
    auto ci = compIds.accessor<int64_t, 2>();
    auto cm = compMask.accessor<int64_t, 2>();
    for (int64_t r = 0; r < b; ++r) {
        const TokenizedPair &p = pairs[size_t(r)];
        const int64_t lp = p.chosen.promptLength;
        for (int64_t k = 0; k < lp; ++k) {
            pi[r][k] = p.chosen.ids[size_t(k)];
            pm[r][k] = 1;
        }
        pl[r] = lp - 1;
        for (int side = 0; side < 2; ++side) {
            const ModelSequence &s = side == 0 ? p.chosen : p.rejected;
            const int64_t row = side * b + r;
            for (int64_t k = lp; k < int64_t(s.ids.size()); ++k) {
                ci[row][k - lp] = s.ids[size_t(k)];
                cm[row][k - lp] = 1;
            }
        }
    }
    SharedPromptBatch batch;
    batch.promptIds = promptIds.to(device);
    batch.promptMask = promptMask.to(device);
    batch.promptLast = promptLast.to(device);
    batch.completionIds = compIds.to(device);
    batch.completionMask = compMask.to(device);
    batch.numPairs = b;
    batch.numTokens = numTokens;
    return batch;
}

} // namespace dpo
