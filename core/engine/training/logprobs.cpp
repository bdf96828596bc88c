#include "engine/training/logprobs.h"

#include "engine/data/preference_data.h"
#include "engine/error.h"
#include "engine/models/packed_attention.h"
#include "engine/training/head_logps.h"

#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <functional>

namespace dpo {

namespace {

// Rows of logits materialised at once: [rows, V] float32 stays under ~128 MiB, whatever the
// vocabulary (32k vocab -> 1024 rows, 152k -> 220).
constexpr int64_t kLogitElementBudget = int64_t(32) << 20;

// log p(target) of m rows through the model's head ([m, H] -> [m, V] logits -> float32 log-softmax; no
// model: the rows are logits already), and with stats the per-token statistics of the same logits (no
// gradient): {logp, entropy, logit mean, argmax correct, WPO aligned log-prob}.
std::vector<torch::Tensor> headLogps(CausalLM *model, const torch::Tensor &rows, const torch::Tensor &targets,
    bool stats)
{
    auto logits = model ? model->lmHead(rows) : rows; // [m, V] model dtype
    auto logp = torch::log_softmax(logits, -1, torch::kFloat32); // [m, V] float32
    auto tokenLogp = logp.gather(1, targets.unsqueeze(1)).squeeze(1); // [m]
    if (!stats)
        return { tokenLogp };
    torch::NoGradGuard noGrad;
    const auto lp = logp.detach();
    return { tokenLogp, -(lp.exp() * lp).sum(-1), logits.detach().to(torch::kFloat32).mean(-1),
        logits.detach().argmax(-1).eq(targets).to(torch::kFloat32),
        // log Σ_v p(v)² = logsumexp(2 log p)
        tokenLogp.detach() - torch::logsumexp(2.0 * lp, -1) };
}

// headLogps for training without keeping anything [m, V]-sized for backward: autograd would keep each
// chunk's logits and float32 log-softmax (tokens × vocabulary × 6-8 bytes, most of a step's memory
// with a 152k vocabulary). Backward recomputes the chunk's logits from the saved rows, back-propagates
// through them (head weights get their .grad as from an ordinary backward) and returns the rows'
// gradient. Costs one more head forward per chunk.
struct RecomputedHeadLogps : torch::autograd::Function<RecomputedHeadLogps> {
    static torch::autograd::variable_list forward(torch::autograd::AutogradContext *ctx, const torch::Tensor &rows,
        const torch::Tensor &targets, CausalLM *model, bool stats)
    {
        ctx->save_for_backward({ rows, targets });
        // The model outlives the graph (the trainer owns it); a pointer is all backward needs.
        ctx->saved_data["model"] = static_cast<int64_t>(reinterpret_cast<intptr_t>(model));
        auto out = headLogps(model, rows, targets, stats);
        for (size_t i = 1; i < out.size(); ++i)
            ctx->mark_non_differentiable({ out[i] });
        return out;
    }

    static torch::autograd::variable_list backward(
        torch::autograd::AutogradContext *ctx, torch::autograd::variable_list grads)
    {
        const auto saved = ctx->get_saved_variables();
        auto *model = reinterpret_cast<CausalLM *>(static_cast<intptr_t>(ctx->saved_data["model"].toInt()));
        auto rows = saved[0].detach().requires_grad_(saved[0].requires_grad());
        torch::Tensor tokenLogp;
        {
            torch::AutoGradMode enable(true);
            tokenLogp = headLogps(model, rows, saved[1], false)[0];
        }
        if (tokenLogp.requires_grad())
            torch::autograd::backward({ tokenLogp }, { grads[0] });
        return { rows.requires_grad() ? rows.grad() : torch::Tensor(), torch::Tensor(), torch::Tensor(),
            torch::Tensor() };
    }
};

// Scores the flagged positions of an [N, W] grid: flags [N*W] bool (row of position i is i / W),
// targets [N*W] the tokens they predict, rowsOf(flatIdx) the [m, H] rows of those positions (hidden
// states for model's head; logits when model is null). Fills out.sum (and ldSum, stats as options ask);
// out.count is set by the caller.
void scoreTokens(const std::function<torch::Tensor(const torch::Tensor &)> &rowsOf, CausalLM *model, int64_t V,
    const torch::Tensor &targets, const torch::Tensor &flags, int64_t W, int64_t N, const LogpsOptions &options,
    CompletionLogps &out, const torch::Tensor &rowIds = {})
{
    const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(targets.device());
    out.sum = torch::zeros({ N }, f32);
    if (options.ldAlpha)
        out.ldSum = torch::zeros({ N }, f32);
    if (options.stats) {
        out.entropySum = torch::zeros({ N }, f32);
        out.logitMeanSum = torch::zeros({ N }, f32);
        out.correct = torch::zeros({ N }, f32);
        out.wpoSum = torch::zeros({ N }, f32);
    }
    auto flatIdx = flags.nonzero().squeeze(1); // [M]
    const int64_t M = flatIdx.size(0);
    if (M == 0)
        return;
    auto rowOf = rowIds.defined() ? rowIds.index_select(0, flatIdx) : torch::div(flatIdx, W, "floor"); // [M]
    auto tgt = targets.index_select(0, flatIdx); // [M]
    const int64_t chunk = options.chunkRows > 0 ? options.chunkRows
                                                : std::max<int64_t>(1, kLogitElementBudget / std::max<int64_t>(1, V));
    std::vector<torch::Tensor> parts, entropy, logitMean, correct, aligned;
    auto keep = [&](const std::vector<torch::Tensor> &r) { // {logp[, entropy, logit mean, correct, aligned]}
        parts.push_back(r[0]);
        if (options.stats) {
            entropy.push_back(r[1]);
            logitMean.push_back(r[2]);
            correct.push_back(r[3]);
            aligned.push_back(r[4]);
        }
    };
    const auto plainWeight = model && targets.device().is_cpu() ? model->plainHeadWeight() : torch::Tensor();
    if (plainWeight.defined()) {
        // CPU, plain head: every position in one call, chunked and fused inside (head_logps.h).
        HeadLogpsOptions headOptions;
        headOptions.stats = options.stats;
        headOptions.chunkRows = options.chunkRows;
        keep(headLogpsFused(rowsOf(flatIdx), plainWeight, tgt, headOptions));
    }
    for (int64_t start = 0; start < M && !plainWeight.defined(); start += chunk) {
        const int64_t end = std::min(M, start + chunk);
        const auto rows = rowsOf(flatIdx.slice(0, start, end)); // [m, H]
        const auto t = tgt.slice(0, start, end);
        const auto r = torch::GradMode::is_enabled() && rows.requires_grad()
            ? RecomputedHeadLogps::apply(rows, t, model, options.stats)
            : headLogps(model, rows, t, options.stats);
        keep(r);
    }
    auto cat = [](std::vector<torch::Tensor> &v) { return v.size() == 1 ? v[0] : torch::cat(v); };
    auto tokenLogps = cat(parts); // [M]
    out.sum = out.sum.index_add(0, rowOf, tokenLogps);
    if (options.ldAlpha) {
        const auto weights = ldAlphaTokenWeights(flags.view({ N, W }), *options.ldAlpha).reshape({ -1 });
        out.ldSum = out.ldSum.index_add(0, rowOf, tokenLogps * weights.index_select(0, flatIdx));
    }
    if (options.stats) {
        out.entropySum = out.entropySum.index_add(0, rowOf, cat(entropy));
        out.logitMeanSum = out.logitMeanSum.index_add(0, rowOf, cat(logitMean));
        out.correct = out.correct.index_add(0, rowOf, cat(correct));
        out.wpoSum = out.wpoSum.index_add(0, rowOf, cat(aligned));
    }
}

} // namespace

const std::vector<std::string> &trlTokenMetricNames()
{
    static const std::vector<std::string> names = { "entropy", "logits/chosen", "logits/rejected", "mean_token_accuracy" };
    return names;
}

torch::Tensor trlTokenMetricValues(const CompletionLogps &p)
{
    if (!p.entropySum.defined())
        throw Error("trlTokenMetrics: the log-probs were computed without stats");
    const int64_t B = p.count.size(0) / 2;
    auto half = [&](const torch::Tensor &t, int which) { return t.slice(0, which * B, (which + 1) * B).sum(); };
    const auto x = torch::stack({ p.entropySum.sum(), half(p.logitMeanSum, 0), half(p.logitMeanSum, 1), half(p.correct, 0) });
    const auto n = torch::stack({ p.count.sum(), half(p.count, 0), half(p.count, 1), half(p.count, 0) });
    // A metric with no tokens is 0, as in TRL.
    return torch::where(n > 0, x / n.clamp_min(1), torch::zeros_like(x)).to(torch::kFloat32);
}

std::map<std::string, double> trlTokenMetrics(const CompletionLogps &p)
{
    const auto v = trlTokenMetricValues(p).to(torch::kCPU, torch::kDouble);
    const auto a = v.accessor<double, 1>();
    std::map<std::string, double> out;
    for (size_t i = 0; i < trlTokenMetricNames().size(); ++i)
        out[trlTokenMetricNames()[i]] = a[int64_t(i)];
    return out;
}

torch::Tensor ldAlphaTokenWeights(const torch::Tensor &completionMask, double alpha)
{
    if (completionMask.dim() != 2 || completionMask.size(0) % 2 != 0)
        throw Error("ld_alpha: needs [2B, W] completion masks (B chosen rows, then B rejected rows)");
    const int64_t B = completionMask.size(0) / 2;
    const auto mask = completionMask.to(torch::kFloat32);
    const auto pos = mask.cumsum(1); // 1-based position among the row's completion tokens
    const auto lens = mask.sum(1);
    const auto shared = torch::minimum(lens.slice(0, 0, B), lens.slice(0, B, 2 * B)).repeat({ 2 }).unsqueeze(1);
    return torch::where(pos <= shared, torch::ones_like(pos), torch::full_like(pos, alpha)) * mask;
}

CompletionLogps completionLogpsFromLogits(const torch::Tensor &logits, const torch::Tensor &inputIds,
    const torch::Tensor &completionMask, const LogpsOptions &options)
{
    if (logits.dim() != 3 || inputIds.sizes() != logits.sizes().slice(0, 2) || completionMask.sizes() != inputIds.sizes())
        throw Error("completionLogpsFromLogits: expected logits [N, T, V] and ids, mask [N, T]");
    const int64_t N = inputIds.size(0), T = inputIds.size(1), V = logits.size(2);
    CompletionLogps out;
    const auto scoredGrid = completionMask.slice(1, 1).to(torch::kBool);
    out.count = scoredGrid.sum(1).to(torch::kFloat32);
    const auto flatLogits = logits.slice(1, 0, T - 1).reshape({ -1, V });
    scoreTokens([&](const torch::Tensor &idx) { return flatLogits.index_select(0, idx); },
        nullptr, V,
        inputIds.slice(1, 1).reshape({ -1 }), scoredGrid.reshape({ -1 }), T - 1, N, options, out);
    return out;
}

CompletionLogps completionLogps(CausalLM &model, const torch::Tensor &inputIds, const torch::Tensor &attentionMask,
    const torch::Tensor &completionMask, const LogpsOptions &options)
{
    if (inputIds.dim() != 2)
        throw Error("completionLogps: input ids must be [N, T], got " + c10::str(inputIds.sizes()));
    if (completionMask.sizes() != inputIds.sizes()
        || (attentionMask.defined() && attentionMask.sizes() != inputIds.sizes()))
        throw Error("completionLogps: input ids, attention mask and completion mask must have the same shape");
    const int64_t N = inputIds.size(0), T = inputIds.size(1);
    const auto device = inputIds.device();
    const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(device);

    // One forward pass for every row: [N, T, hidden].
    auto hidden = model.forwardHidden(inputIds, attentionMask);
    const int64_t Hd = hidden.size(-1);

    CompletionLogps out;
    out.sum = torch::zeros({ N }, f32);
    out.count = torch::zeros({ N }, f32);
    if (T < 2)
        return out;

    // Token t is scored by the logits at t-1. Only the scored positions go through the lm_head:
    // prompt and padding rows never cost a [V]-wide matmul or log-softmax.
    auto scored = completionMask.to(device).slice(1, 1).to(torch::kBool).reshape({ -1 }); // [N*(T-1)]
    out.count = completionMask.to(device).slice(1, 1).to(torch::kBool).sum(1).to(torch::kFloat32);
    const auto flatHidden = hidden.slice(1, 0, T - 1).reshape({ -1, Hd });
    scoreTokens([&](const torch::Tensor &idx) { return flatHidden.index_select(0, idx); },
        &model, model.config().vocabSize, inputIds.slice(1, 1).reshape({ -1 }), scored, T - 1, N, options, out);
    return out;
}

CompletionLogps sharedPromptLogps(CausalLM &model, const SharedPromptBatch &batch, const LogpsOptions &options)
{
    const int64_t B = batch.numPairs;
    const int64_t Tc = batch.completionIds.size(1);
    const auto device = batch.completionIds.device();
    if (batch.promptIds.size(0) != B || batch.completionIds.size(0) != 2 * B)
        throw Error("sharedPromptLogps: expected " + std::to_string(B) + " prompts and " + std::to_string(2 * B)
            + " completions");

    // 1. Each prompt once: [B, Tp, hidden], its keys/values cached per layer.
    KVCache cache;
    auto promptHidden = model.forwardHidden(batch.promptIds, batch.promptMask, &cache);
    const int64_t Hd = promptHidden.size(-1);
    // 2. Both completions of a pair see the same prompt keys/values: [B, ...] -> [2B, ...].
    for (size_t l = 0; l < cache.keys.size(); ++l) {
        cache.keys[l] = torch::cat({ cache.keys[l], cache.keys[l] }, 0);
        cache.values[l] = torch::cat({ cache.values[l], cache.values[l] }, 0);
    }
    // Which cached keys are real: lets attention take the varlen kernel (CUDA) instead of the mask.
    std::vector<int64_t> rowPromptLengths = batch.promptLengths;
    rowPromptLengths.insert(rowPromptLengths.end(), batch.promptLengths.begin(), batch.promptLengths.end());
    if (int64_t(rowPromptLengths.size()) == 2 * B && prefixLayoutUsable(device))
        cache.prefix = buildPrefixLayout(rowPromptLengths, batch.promptIds.size(1), Tc, device);
    auto promptMask2 = torch::cat({ batch.promptMask, batch.promptMask }, 0).to(device);
    auto fullMask = torch::cat({ promptMask2, batch.completionMask.to(device) }, 1); // [2B, Tp + Tc]
    // Positions continue from each prompt's real length (the mask's cumsum skips prompt padding).
    auto completionHidden = model.forwardHidden(batch.completionIds, fullMask, &cache); // [2B, Tc, hidden]

    // 3. Completion token j is predicted by the hidden state before it: the prompt's last real token
    // for j = 0, completion token j-1 after that.
    auto last = promptHidden.gather(1, batch.promptLast.to(device).view({ B, 1, 1 }).expand({ B, 1, Hd })); // [B, 1, H]
    auto predictors
        = torch::cat({ torch::cat({ last, last }, 0), completionHidden.slice(1, 0, Tc - 1) }, 1); // [2B, Tc, H]

    CompletionLogps out;
    auto scored = batch.completionMask.to(device).to(torch::kBool);
    out.count = scored.sum(1).to(torch::kFloat32);
    const auto flatPredictors = predictors.reshape({ -1, Hd });
    scoreTokens([&](const torch::Tensor &idx) { return flatPredictors.index_select(0, idx); },
        &model, model.config().vocabSize, batch.completionIds.reshape({ -1 }), scored.reshape({ -1 }), Tc, 2 * B, options, out);
    return out;
}

CompletionLogps packedLogps(CausalLM &model, const PackedBatch &batch, const LogpsOptions &options)
{
    if (options.ldAlpha)
        throw Error("ld_alpha is not supported with padding_free batches; turn one of them off");
    const int64_t N = batch.inputIds.size(1), rows = int64_t(batch.starts.size()) - 1;
    const auto device = batch.inputIds.device();
    const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(device);
    auto hidden = model.forwardHiddenPacked(batch.inputIds, batch.starts); // [1, N, hidden]
    const auto completion = batch.completionMask.view({ -1 });
    CompletionLogps out;
    out.count = torch::zeros({ rows }, f32).index_add(0, batch.rowOfToken, completion.to(torch::kFloat32));
    out.sum = torch::zeros({ rows }, f32);
    if (N < 2)
        return out;
    // Position p predicts token p + 1, a completion token of the same sequence when flagged (a
    // sequence's first token never is, so no position predicts across a boundary).
    const auto flatHidden = hidden[0].slice(0, 0, N - 1);
    scoreTokens([&](const torch::Tensor &idx) { return flatHidden.index_select(0, idx); }, &model,
        model.config().vocabSize, batch.inputIds.view({ -1 }).slice(0, 1), completion.slice(0, 1).to(torch::kBool), 0,
        rows, options, out, batch.rowOfToken.slice(0, 1));
    return out;
}

} // namespace dpo
