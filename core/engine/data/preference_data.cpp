#include "engine/data/preference_data.h"

#include "engine/chat/chat_template.h"
#include "engine/error.h"
#include "engine/io/json_limits.h"
#include "engine/io/jsonl_reader.h"
#include "engine/tokenizers/utf8.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <fstream>

namespace dpo {

namespace {

using OrderedJson = nlohmann::ordered_json;

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

bool isContinuationByte(char c)
{
    return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

// A message list: objects with a string "role"; everything else is the template's business.
void checkMessages(const OrderedJson &value, const std::string &field, const std::string &at)
{
    if (!value.is_array())
        throw Error(at + ": field '" + field + "' must be a list of messages like 'chosen'");
    for (size_t i = 0; i < value.size(); ++i) {
        const OrderedJson &m = value[i];
        const std::string name = "'" + field + "[" + std::to_string(i) + "]'";
        if (!m.is_object())
            throw Error(at + ": " + name + " must be an object with \"role\" and \"content\"");
        const auto role = m.find("role");
        if (role == m.end() || !role->is_string())
            throw Error(at + ": " + name + " needs a string \"role\"");
    }
}

std::string contentText(const OrderedJson &message)
{
    const auto c = message.find("content");
    if (c == message.end() || c->is_null())
        return {};
    return c->is_string() ? c->get<std::string>() : c->dump();
}

std::string joinContents(const OrderedJson &messages, size_t begin, size_t end)
{
    std::string text;
    for (size_t i = begin; i < end; ++i) {
        if (i > begin)
            text += '\n';
        text += contentText(messages[i]);
    }
    return text;
}

// Python's dict equality, which TRL's extract_prompt uses: key order does not matter.
bool sameMessage(const OrderedJson &a, const OrderedJson &b)
{
    return nlohmann::json(a) == nlohmann::json(b);
}

OrderedJson sliceMessages(const OrderedJson &messages, size_t begin, size_t end)
{
    OrderedJson out = OrderedJson::array();
    for (size_t i = begin; i < end; ++i)
        out.push_back(messages[i]);
    return out;
}

PreferenceRow parseConversational(const OrderedJson &j, const std::string &at)
{
    const OrderedJson &chosen = j.at("chosen");
    const OrderedJson &rejected = j.at("rejected");
    checkMessages(chosen, "chosen", at);
    checkMessages(rejected, "rejected", at);
    if (chosen.empty())
        throw Error(at + ": field 'chosen' is empty");
    if (rejected.empty())
        throw Error(at + ": field 'rejected' is empty");

    auto conv = std::make_shared<Conversation>();
    size_t start = 0;
    const auto promptIt = j.find("prompt");
    if (promptIt != j.end()) {
        checkMessages(*promptIt, "prompt", at);
        conv->prompt = *promptIt;
    } else {
        // TRL's extract_prompt on message lists: the prompt is the common leading messages; when
        // one list is a prefix of the other the cut falls before the shorter one's last message.
        const size_t n = std::min(chosen.size(), rejected.size());
        while (start < n && sameMessage(chosen[start], rejected[start]))
            ++start;
        if (start == n)
            start = n - 1;
        conv->prompt = sliceMessages(chosen, 0, start);
    }
    conv->chosen = sliceMessages(chosen, start, chosen.size());
    conv->rejected = sliceMessages(rejected, start, rejected.size());

    // TRL: tools = json.loads(tools) if it is a string.
    if (const auto t = j.find("tools"); t != j.end() && !t->is_null()) {
        OrderedJson tools = *t;
        if (tools.is_string()) {
            try {
                tools = parseOrderedJsonLimited(tools.get<std::string>(), at + ": field 'tools'");
            } catch (const Error &e) {
                throw Error(std::string(e.what()) + " (a JSON string must hold a list of tools)");
            }
        }
        if (!tools.is_array())
            throw Error(at + ": field 'tools' must be a list of tools (or that list as a JSON string)");
        conv->tools = tools;
    }
    if (const auto k = j.find("chat_template_kwargs"); k != j.end() && !k->is_null()) {
        if (!k->is_object())
            throw Error(at + ": field 'chat_template_kwargs' must be an object");
        conv->templateKwargs = *k;
    }

    PreferenceRow row;
    row.prompt = joinContents(conv->prompt, 0, conv->prompt.size());
    const std::string lead = row.prompt.empty() ? "" : "\n";
    row.chosen = lead + joinContents(conv->chosen, 0, conv->chosen.size());
    row.rejected = lead + joinContents(conv->rejected, 0, conv->rejected.size());
    row.conversation = std::move(conv);
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
    const OrderedJson j = parseOrderedJsonLimited(text, at); // "<at>: invalid JSON: ..." / nesting bounded
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
    // Conversational rows: the message lists' contents (the row limit bounds the rest).
    checkFieldSize(row.prompt, "prompt", at, limits);
    checkFieldSize(row.chosen, "chosen", at, limits);
    checkFieldSize(row.rejected, "rejected", at, limits);
    row.line = line;
    return row;
}

std::vector<PreferenceRow> readPreferenceJsonl(const std::string &path, const PreferenceDataLimits &limits)
{
    JsonlReader lines(path, limits.maxRowBytes, "preference data file");
    std::vector<PreferenceRow> rows;
    while (lines.next()) {
        rows.push_back(parsePreferenceLine(lines.text(), path, lines.line(), limits));
        if (rows.back().isConversational() != rows.front().isConversational()) {
            auto kind = [](const PreferenceRow &r) { return r.isConversational() ? "conversational" : "standard"; };
            throw Error(lines.where() + ": a " + kind(rows.back()) + " row after " + kind(rows.front())
                + " rows (line " + std::to_string(rows.front().line) + "); a data file holds one format");
        }
    }
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

TokenizedPair tokenizePair(
    const Tokenizer &tok, const PreferenceRow &row, const TruncationOptions &truncation, const ModelChatTemplate *chat)
{
    truncation.validate();
    const int64_t eos = tok.eosId();
    if (eos < 0)
        throw Error("the tokenizer has no EOS token, which DPO appends to every completion");

    TokenizedPair pair;
    std::vector<int64_t> fullChosen, fullRejected;
    if (row.isConversational()) {
        if (!chat)
            throw Error("a conversational row needs a chat template, and none was given");
        const Conversation &c = *row.conversation;
        const bool withTools = c.tools.is_array();
        auto render = [&](const OrderedJson &completion) {
            ChatRequest req;
            req.messages = c.prompt;
            for (const auto &m : completion)
                req.messages.push_back(m);
            req.addGenerationPrompt = completion.is_null();
            req.tools = c.tools;
            req.specialTokens = chat->specialTokens;
            req.extraKwargs = c.templateKwargs;
            try {
                return chat->select(withTools).apply(req);
            } catch (const Error &e) {
                throw Error("chat template (" + chat->origin + "): " + e.what());
            }
        };
        pair.promptIds = tok.encode(render(OrderedJson()));
        fullChosen = tok.encode(render(c.chosen));
        fullRejected = tok.encode(render(c.rejected));
    } else {
        const std::string eosText = tok.idToToken(eos);
        auto withEos = [&](const std::string &text) {
            const bool ends = text.size() >= eosText.size()
                && text.compare(text.size() - eosText.size(), eosText.size(), eosText) == 0;
            return ends ? text : text + eosText;
        };
        pair.promptIds = tok.encodeWithSpecial(row.prompt);
        fullChosen = tok.encodeWithSpecial(row.prompt + withEos(row.chosen));
        fullRejected = tok.encodeWithSpecial(row.prompt + withEos(row.rejected));
    }

    const auto &promptIds = pair.promptIds;
    auto completion = [&](const std::vector<int64_t> &full) {
        if (!(full.size() >= promptIds.size() && std::equal(promptIds.begin(), promptIds.end(), full.begin())))
            pair.promptMismatch = true;
        return std::vector<int64_t>(full.begin() + std::min(full.size(), promptIds.size()), full.end());
    };
    pair.chosenIds = completion(fullChosen);
    pair.rejectedIds = completion(fullRejected);
    pair.chosen = truncateSequence(promptIds, pair.chosenIds, truncation);
    pair.rejected = truncateSequence(promptIds, pair.rejectedIds, truncation);
    return pair;
}

bool dropsFullyTruncated(const TokenizedPair &pair, const TruncationOptions &truncation)
{
    return truncation.maxLength > 0 && truncation.mode == "keep_start"
        && int64_t(pair.promptIds.size()) >= truncation.maxLength;
}

std::string TokenizationReport::summary() const
{
    auto lines = [](const std::vector<int64_t> &v) {
        std::string s;
        const size_t shown = std::min<size_t>(v.size(), 10);
        for (size_t i = 0; i < shown; ++i)
            s += (i ? ", " : "") + std::to_string(v[i]);
        if (v.size() > shown)
            s += ", ... (" + std::to_string(v.size() - shown) + " more)";
        return s;
    };
    std::string out;
    if (!mismatchLines.empty())
        out += std::to_string(mismatchLines.size()) + " row(s) whose prompt tokens are not a prefix of "
            + "prompt+completion, sliced anyway as TRL does (lines " + lines(mismatchLines) + ")";
    if (!droppedLines.empty())
        out += std::string(out.empty() ? "" : "; ") + std::to_string(droppedLines.size())
            + " row(s) dropped because the prompt alone fills max_length with keep_start (lines "
            + lines(droppedLines) + ")";
    return out;
}

void requireChatTemplate(const std::vector<PreferenceRow> &rows, const ModelChatTemplate *chat,
    const std::string &modelDir)
{
    if (chat)
        return;
    for (const auto &r : rows)
        if (r.isConversational())
            throw Error("line " + std::to_string(r.line) + " is a conversational row (lists of messages), but the model "
                + modelDir + " has no chat template (tokenizer_config.json chat_template, chat_template.jinja or "
                + "chat_template.json); give one with --chat-template FILE (TrainConfig chat_template)");
}

PreferenceBatch collateSequences(const std::vector<const ModelSequence *> &seqs, int64_t padId, torch::Device device)
{
    if (seqs.empty())
        throw Error("cannot collate an empty list of sequences");
    const int64_t n = int64_t(seqs.size());
    int64_t t = 1;
    for (const auto *s : seqs)
        t = std::max<int64_t>(t, int64_t(s->ids.size()));

    const int64_t pad = padId >= 0 ? padId : 0;
    auto ids = torch::full({ n, t }, pad, torch::kLong);
    auto attention = torch::zeros({ n, t }, torch::kLong);
    auto completion = torch::zeros({ n, t }, torch::kLong);
    auto idsA = ids.accessor<int64_t, 2>();
    auto attA = attention.accessor<int64_t, 2>();
    auto compA = completion.accessor<int64_t, 2>();
    int64_t numTokens = 0;
    for (int64_t r = 0; r < n; ++r) {
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
    batch.numTokens = numTokens;
    return batch;
}

PackedBatch collatePacked(const std::vector<TokenizedPair> &pairs, torch::Device device)
{
    if (pairs.empty())
        throw Error("cannot collate an empty list of preference pairs");
    std::vector<const ModelSequence *> seqs;
    for (const auto &p : pairs)
        seqs.push_back(&p.chosen);
    for (const auto &p : pairs)
        seqs.push_back(&p.rejected);
    PackedBatch batch;
    batch.numPairs = int64_t(pairs.size());
    std::vector<int64_t> ids, completion, rows;
    batch.starts.push_back(0);
    for (size_t r = 0; r < seqs.size(); ++r) {
        const ModelSequence &s = *seqs[r];
        if (s.ids.empty())
            throw Error("cannot pack an empty sequence");
        for (size_t k = 0; k < s.ids.size(); ++k) {
            ids.push_back(s.ids[k]);
            // As in collateSequences: a sequence's first token has no predictor inside the sequence.
            completion.push_back(int64_t(k) >= s.promptLength && k > 0 ? 1 : 0);
            rows.push_back(int64_t(r));
        }
        batch.starts.push_back(int64_t(ids.size()));
    }
    batch.numTokens = int64_t(ids.size());
    batch.inputIds = torch::tensor(ids, torch::kLong).unsqueeze(0).to(device);
    batch.completionMask = torch::tensor(completion, torch::kLong).unsqueeze(0).to(device);
    batch.rowOfToken = torch::tensor(rows, torch::kLong).to(device);
    return batch;
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
    PreferenceBatch batch = collateSequences(seqs, padId, device);
    batch.numPairs = b;
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
    SharedPromptBatch batch;
    for (int64_t r = 0; r < b; ++r) {
        const TokenizedPair &p = pairs[size_t(r)];
        const int64_t lp = p.chosen.promptLength;
        for (int64_t k = 0; k < lp; ++k) {
            pi[r][k] = p.chosen.ids[size_t(k)];
            pm[r][k] = 1;
        }
        pl[r] = lp - 1;
        batch.promptLengths.push_back(lp);
        for (int side = 0; side < 2; ++side) {
            const ModelSequence &s = side == 0 ? p.chosen : p.rejected;
            const int64_t row = side * b + r;
            for (int64_t k = lp; k < int64_t(s.ids.size()); ++k) {
                ci[row][k - lp] = s.ids[size_t(k)];
                cm[row][k - lp] = 1;
            }
        }
    }
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
