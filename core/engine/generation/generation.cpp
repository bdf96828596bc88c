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

torch::Tensor chooseTokens(const torch::Tensor &logits, const GenerationOptions &options, at::Generator &generator)
{
    if (logits.dim() != 2)
        throw Error("chooseTokens: logits must be [batch, vocab], got " + c10::str(logits.sizes()));
    if (options.greedy)
        return logits.argmax(-1);
    const int64_t B = logits.size(0), V = logits.size(1);
    auto probs = warpLogits(logits, options.temperature, options.topK, options.topP).softmax(-1); // removed: 0
    auto kept = probs > 0;
    // Inverse CDF with one uniform number per row, drawn on the CPU so a seed means the same numbers
    // on every device: the token is the first kept one whose cumulative probability passes u * total,
    // so each kept token owns a share of [0, total) equal to its probability. Testing `kept` as well
    // (not a searchsorted alone) keeps removed tokens out even where a parallel cumsum rounds unevenly.
    auto cdf = probs.cumsum(-1);
    auto u = torch::rand({ B, 1 }, generator, torch::TensorOptions().dtype(torch::kFloat32)).to(probs.device());
    auto hit = (cdf > u * cdf.narrow(-1, V - 1, 1)).logical_and_(kept);
    auto ids = hit.to(torch::kUInt8).argmax(-1); // argmax takes the first maximum
    // u * total may round up to the total: that is the top of the distribution, its last kept token.
    auto lastKept = (V - 1) - kept.flip(-1).to(torch::kUInt8).argmax(-1);
    ids = torch::where(hit.any(-1), ids, lastKept);
    return ids.masked_fill_(kept.any(-1).logical_not(), -1); // NaN logits: no distribution to draw from
}

namespace {

torch::Device modelDevice(CausalLM &model)
{
    auto params = model.parameters();
    return params.empty() ? torch::Device(torch::kCPU) : params.front().device();
}

// The step's chosen ids [B] (on the model's device) read back: the one device-to-host copy per token,
// which stop tokens and callbacks need.
std::vector<int64_t> readIds(const torch::Tensor &ids)
{
    auto cpu = ids.to(torch::kCPU, torch::kInt64).contiguous();
    std::vector<int64_t> out(cpu.data_ptr<int64_t>(), cpu.data_ptr<int64_t>() + cpu.numel());
    for (int64_t id : out)
        if (id < 0)
            throw Error("generate: the model's next-token scores are not a distribution (NaN logits?)");
    return out;
}

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
    const std::function<bool(int64_t)> &onToken, KVCache *cache)
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
    auto generator = at::detail::createCPUGenerator(options.seed);
    KVCache ownCache;
    KVCache &kv = cache ? *cache : ownCache;
    std::vector<int64_t> out;

    const int64_t promptLen = int64_t(promptIds.size());
    const int64_t steps = std::min<int64_t>(options.maxNewTokens, roomForNewTokens(model, promptLen));
    kv.reserve(promptLen + steps);
    auto input = torch::tensor(promptIds, longOpts).unsqueeze(0).to(device); // [1, T]
    for (int64_t step = 0; step < steps; ++step) {
        auto hidden = model.forwardHidden(input, {}, &kv); // [1, T, hidden]
        auto logits = model.lmHead(hidden.select(1, hidden.size(1) - 1)); // [1, V]
        auto next = chooseTokens(logits, options, generator); // [1], on the device
        const int64_t id = readIds(next)[0];
        out.push_back(id);
        if (onToken && !onToken(id))
            break;
        if (isStop(model, options, id))
            break;
        input = next.view({ 1, 1 });
    }
    return out;
}

std::vector<std::vector<int64_t>> generateBatch(
    CausalLM &model, const std::vector<std::vector<int64_t>> &prompts, const GenerationOptions &options, KVCache *cache)
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

    // Left padding: every row's last prompt token sits in the last column. The mask is built once
    // for every step (1 after the prompt); each step sees its first past + new columns.
    const int64_t total = int64_t(L) + steps;
    std::vector<int64_t> ids(B * L, pad), mask(B * total, 1);
    for (int64_t b = 0; b < B; ++b) {
        const size_t off = L - prompts[b].size();
        std::fill_n(mask.begin() + b * total, off, 0);
        for (size_t t = 0; t < prompts[b].size(); ++t)
            ids[b * L + off + t] = prompts[b][t];
    }

    torch::NoGradGuard noGrad;
    const auto device = modelDevice(model);
    const auto longOpts = torch::TensorOptions().dtype(torch::kInt64);
    auto input = torch::tensor(ids, longOpts).view({ B, int64_t(L) }).to(device);
    const auto fullMask = torch::tensor(mask, longOpts).view({ B, total }).to(device);
    auto generator = at::detail::createCPUGenerator(options.seed);
    KVCache ownCache;
    KVCache &kv = cache ? *cache : ownCache;
    kv.reserve(total);
    std::vector<int64_t> done(B, 0);
    torch::Tensor doneOnDevice; // [B] bool, once a row is done
    int64_t remaining = B;

    for (int64_t step = 0; step < steps && remaining > 0; ++step) {
        auto attn = fullMask.narrow(1, 0, kv.length() + input.size(1));
        auto hidden = model.forwardHidden(input, attn, &kv);
        auto next = chooseTokens(model.lmHead(hidden.select(1, hidden.size(1) - 1)), options, generator);
        const auto nextIds = readIds(next);
        bool newlyDone = false;
        for (int64_t b = 0; b < B; ++b) {
            if (done[b])
                continue;
            out[b].push_back(nextIds[b]);
            if (isStop(model, options, nextIds[b])) {
                done[b] = 1;
                newlyDone = true;
                --remaining;
            }
        }
        if (newlyDone)
            doneOnDevice = torch::tensor(done, longOpts).to(device).to(torch::kBool);
        // Finished rows keep stepping with padding; their output is closed.
        input = (doneOnDevice.defined() ? next.masked_fill(doneOnDevice, pad) : next).view({ B, 1 });
    }
    return out;
}

} // namespace dpo
