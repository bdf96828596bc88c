// Batched, gradient-free scoring of preference pairs (see pair_scoring.h).
#include "engine/evaluation/pair_scoring.h"

#include "engine/error.h"

#include <algorithm>

namespace dpo {

std::optional<ScoredPairs> scorePairs(CausalLM &model, const std::vector<TokenizedPair> &pairs, int64_t padId,
    int64_t batchSize, torch::Device device, const LogpsOptions &options, const std::function<bool()> &afterBatch)
{
    if (batchSize < 1)
        throw Error("the scoring batch size must be at least 1");
    if (pairs.empty())
        throw Error("no preference pairs to score");
    torch::NoGradGuard noGrad;
    std::vector<torch::Tensor> cs, rs, cc, rc, cp, rp, cw, rw;
    for (size_t start = 0; start < pairs.size(); start += size_t(batchSize)) {
        const size_t end = std::min(pairs.size(), start + size_t(batchSize));
        const std::vector<TokenizedPair> slice(pairs.begin() + long(start), pairs.begin() + long(end));
        const PreferenceBatch batch = collatePairs(slice, padId, device);
        const CompletionLogps lp = completionLogps(model, batch.inputIds, batch.attentionMask, batch.completionMask, options);
        const int64_t b = batch.numPairs;
        const auto sum = lp.dpoSum().to(torch::kCPU, torch::kDouble);
        const auto plain = lp.sum.to(torch::kCPU, torch::kDouble);
        const auto count = lp.count.to(torch::kCPU, torch::kDouble);
        cs.push_back(sum.slice(0, 0, b));
        rs.push_back(sum.slice(0, b, 2 * b));
        cp.push_back(plain.slice(0, 0, b));
        rp.push_back(plain.slice(0, b, 2 * b));
        cc.push_back(count.slice(0, 0, b));
        rc.push_back(count.slice(0, b, 2 * b));
        if (options.stats) {
            const auto w = lp.wpoWeight().to(torch::kCPU, torch::kDouble);
            cw.push_back(w.slice(0, 0, b));
            rw.push_back(w.slice(0, b, 2 * b));
        }
        if (afterBatch && !afterBatch())
            return std::nullopt;
    }
    ScoredPairs out;
    out.chosenSum = torch::cat(cs);
    out.rejectedSum = torch::cat(rs);
    out.chosenPlain = torch::cat(cp);
    out.rejectedPlain = torch::cat(rp);
    out.chosenCount = torch::cat(cc);
    out.rejectedCount = torch::cat(rc);
    if (options.stats) {
        out.chosenWeight = torch::cat(cw);
        out.rejectedWeight = torch::cat(rw);
    }
    return out;
}

} // namespace dpo
