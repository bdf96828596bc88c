#include "engine/generation/generation.h"

#include "engine/error.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

namespace dpo {

namespace {

std::string num(double v)
{
    std::ostringstream s;
    s << v;
    return s.str();
}

} // namespace

void GenerationOptions::validate() const
{
    if (maxNewTokens < 0)
        throw Error("--max-new-tokens must be >= 0, got " + std::to_string(maxNewTokens));
    if (!greedy) {
        if (!(temperature > 0) || !std::isfinite(temperature))
            throw Error("--temperature must be > 0, got " + num(temperature));
        if (topK < 0)
            throw Error("--top-k must be >= 0 (0 = off), got " + std::to_string(topK));
        if (!(topP > 0 && topP <= 1))
            throw Error("--top-p must be in (0, 1], got " + num(topP));
    }
}

torch::Tensor warpLogits(const torch::Tensor &logits, double temperature, int topK, double topP)
{
    const double negInf = -std::numeric_limits<double>::infinity();
    auto scores = logits.to(torch::kFloat32);
    if (temperature != 1.0)
        scores = scores / temperature;
    const int64_t V = scores.size(-1);
    if (topK > 0 && topK < V) {
        // Everything below the k-th largest value goes (ties at the k-th value stay, as in HF).
        auto kth = std::get<0>(scores.topk(topK, -1)).narrow(-1, topK - 1, 1);
        scores = scores.masked_fill(scores < kth, negInf);
    }
    if (topP < 1.0) {
        // HF: sort ascending, drop tokens whose cumulative probability is <= 1 - p, keep the last.
        auto [sorted, order] = scores.sort(-1, /*descending=*/false);
        auto cum = sorted.softmax(-1).cumsum(-1);
        auto remove = cum <= (1.0 - topP);
        remove.narrow(-1, V - 1, 1).fill_(false);
        scores = scores.masked_fill(remove.scatter(-1, order, remove), negInf);
    }
    return scores;
}

namespace {

torch::Device modelDevice(CausalLM &model)
{
    auto params = model.parameters();
    return params.empty() ? torch::Device(torch::kCPU) : params.front().device();
}

class TokenChooser {
public:
    explicit TokenChooser(const GenerationOptions &o)
        : m_opts(o)
        , m_gen(at::detail::createCPUGenerator(o.seed))
    {
    }

    // logits [B, V] (any device, any dtype) -> next ids [B] on the CPU.
    std::vector<int64_t> choose(const torch::Tensor &logits)
    {
        std::vector<int64_t> ids;
        if (m_opts.greedy) {
            auto a = logits.argmax(-1).to(torch::kCPU);
            for (int64_t b = 0; b < a.size(0); ++b)
                ids.push_back(a[b].item<int64_t>());
            return ids;
        }
        // Sampling on the CPU in float32: the same seed gives the same tokens on any device.
        auto scores = warpLogits(logits.to(torch::kCPU, torch::kFloat32), m_opts.temperature, m_opts.topK, m_opts.topP);
        auto probs = scores.softmax(-1);
        auto picked = torch::multinomial(probs, 1, false, m_gen).squeeze(1);
        for (int64_t b = 0; b < picked.size(0); ++b)
            ids.push_back(picked[b].item<int64_t>());
        return ids;
    }

private:
    const GenerationOptions &m_opts;
    at::Generator m_gen;
};

// New tokens that fit after a prompt of promptLen tokens: every family stops at its position limit
// (max_position_embeddings; n_positions for GPT-2), as HF's max_length stops generate(). Beyond it GPT-2
// has no position embedding and RoPE models were never trained; a prompt that fills it is an error.
int64_t roomForNewTokens(const CausalLM &model, int64_t promptLen)
{
    const int64_t limit = model.config().maxPositionEmbeddings;
    if (limit <= 0)
        return std::numeric_limits<int64_t>::max();
    if (promptLen >= limit)
        throw Error("generate: the prompt has " + std::to_string(promptLen) + " tokens and the model's "
            + (model.config().modelType == "gpt2" ? "n_positions" : "max_position_embeddings") + " is "
            + std::to_string(limit) + ": no position is left for a new token (shorten the prompt)");
    return limit - promptLen;
}

bool isStop(const CausalLM &model, const GenerationOptions &o, int64_t id)
{
    if (!o.stopAtEos)
        return false;
    return model.config().isEos(id) || std::find(o.eosTokenIds.begin(), o.eosTokenIds.end(), id) != o.eosTokenIds.end();
}

} // namespace

std::vector<int64_t> generate(CausalLM &model, const std::vector<int64_t> &promptIds, const GenerationOptions &options,
    const std::function<bool(int64_t)> &onToken)
{
    options.validate();
    if (promptIds.empty())
        throw Error("generate: the prompt is empty (it needs at least one token)");
    const int64_t V = model.config().vocabSize;
    for (auto id : promptIds)
        if (id < 0 || id >= V)
            throw Error("generate: prompt token id " + std::to_string(id) + " is outside the vocabulary (size "
                + std::to_string(V) + ")");

    torch::NoGradGuard noGrad;
    const auto device = modelDevice(model);
    const auto longOpts = torch::TensorOptions().dtype(torch::kInt64);
    TokenChooser chooser(options);
    KVCache cache;
    std::vector<int64_t> out;

    const int64_t steps = std::min<int64_t>(options.maxNewTokens, roomForNewTokens(model, int64_t(promptIds.size())));
    auto input = torch::tensor(promptIds, longOpts).unsqueeze(0).to(device); // [1, T]
    for (int64_t step = 0; step < steps; ++step) {
        auto hidden = model.forwardHidden(input, {}, &cache); // [1, T, hidden]
        auto logits = model.lmHead(hidden.select(1, hidden.size(1) - 1)); // [1, V]
        const int64_t id = chooser.choose(logits)[0];
        out.push_back(id);
        if (onToken && !onToken(id))
            break;
        if (isStop(model, options, id))
            break;
        input = torch::full({ 1, 1 }, id, longOpts).to(device);
    }
    return out;
}

std::vector<std::vector<int64_t>> generateBatch(
    CausalLM &model, const std::vector<std::vector<int64_t>> &prompts, const GenerationOptions &options)
{
    options.validate();
    const int64_t B = static_cast<int64_t>(prompts.size());
    std::vector<std::vector<int64_t>> out(B);
    if (B == 0 || options.maxNewTokens == 0)
        return out;
    size_t L = 0;
    for (const auto &p : prompts) {
        if (p.empty())
            throw Error("generate: a prompt is empty (each needs at least one token)");
        L = std::max(L, p.size());
    }
    const auto &cfg = model.config();
    // Left-padded rows take positions from their own length; the longest reaches the limit first.
    const int64_t steps = std::min<int64_t>(options.maxNewTokens, roomForNewTokens(model, int64_t(L)));
    const int64_t pad = cfg.padTokenId >= 0 ? cfg.padTokenId : std::max<int64_t>(0, cfg.firstEos());

    // Left padding: every row's last prompt token sits in the last column.
    std::vector<int64_t> ids(B * L, pad), mask(B * L, 0);
    for (int64_t b = 0; b < B; ++b) {
        const size_t off = L - prompts[b].size();
        for (size_t t = 0; t < prompts[b].size(); ++t) {
            ids[b * L + off + t] = prompts[b][t];
            mask[b * L + off + t] = 1;
        }
    }

    torch::NoGradGuard noGrad;
    const auto device = modelDevice(model);
    const auto longOpts = torch::TensorOptions().dtype(torch::kInt64);
    auto input = torch::tensor(ids, longOpts).view({ B, int64_t(L) }).to(device);
    auto attn = torch::tensor(mask, longOpts).view({ B, int64_t(L) }).to(device);
    TokenChooser chooser(options);
    KVCache cache;
    std::vector<bool> done(B, false);
    int64_t remaining = B;

    for (int64_t step = 0; step < steps && remaining > 0; ++step) {
        auto hidden = model.forwardHidden(input, attn, &cache);
        auto next = chooser.choose(model.lmHead(hidden.select(1, hidden.size(1) - 1)));
        for (int64_t b = 0; b < B; ++b) {
            if (done[b]) {
                next[b] = pad; // finished rows keep stepping with padding; their output is closed
                continue;
            }
            out[b].push_back(next[b]);
            if (isStop(model, options, next[b])) {
                done[b] = true;
                --remaining;
            }
        }
        input = torch::tensor(next, longOpts).view({ B, 1 }).to(device);
        attn = torch::cat({ attn, torch::ones({ B, 1 }, attn.options()) }, 1);
    }
    return out;
}

} // namespace dpo
