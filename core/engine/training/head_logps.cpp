#include "engine/training/head_logps.h"

#include "engine/error.h"

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace dpo {

namespace {

constexpr int64_t kHeadLogitBudget = int64_t(32) << 20; // float32 logits per chunk (128 MiB)

// ---------------------------------------------------------------------------------------------
// Vector values are only passed between inlined helpers; GCC's note that their ABI would differ
// across targets does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

// Row sweeps over one row of float32 logits. GCC vector extensions (16 lanes) compile on any
// target; target_clones picks AVX-512 or AVX2 code at load time where the CPU has it.

typedef float VecF __attribute__((vector_size(64)));
typedef int32_t VecI __attribute__((vector_size(64)));
constexpr int kLanes = 16;
// Lane sums are flushed into doubles every kFlush vectors: a float32 sum of 152k terms would
// lose ~1e-5 of relative precision, more than the log-prob tolerances allow.
constexpr int kFlush = 64;

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define DPO_ROW_KERNEL __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DPO_ROW_KERNEL
#endif

inline VecF loadVec(const float *p)
{
    VecF v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
inline void storeVec(float *p, VecF v)
{
    std::memcpy(p, &v, sizeof v);
}
inline VecF splat(float f)
{
    return VecF {} + f;
}
inline double laneSum(VecF v)
{
    double s = 0;
    for (int j = 0; j < kLanes; ++j)
        s += v[j];
    return s;
}

// e^x for x <= 0 (softmax arguments once the row maximum is subtracted), relative error < 1e-7:
// x = n·ln2 + r with |r| <= ln2/2 (ln2 split in two so n·ln2 is exact), e^r by its Taylor series to
// r^7, 2^n from the exponent bits. Below -87 the result is clamped at e^-87 (float32's smallest
// normal), which no sum of softmax terms can tell from 0.
inline VecF expNonPositive(VecF x)
{
    x = x < -87.0f ? splat(-87.0f) : x;
    const VecF roundMagic = splat(12582912.0f); // 1.5·2^23: adding and subtracting it rounds to an integer
    const VecF n = (x * 1.44269504088896341f + roundMagic) - roundMagic;
    const VecF r = (x - n * 0.693145751953125f) - n * 1.428606765330187e-06f;
    VecF p = splat(1.0f / 5040.0f);
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const VecI bits = (__builtin_convertvector(n, VecI) + 127) << 23;
    return p * (VecF)bits; // the exponent bits as floats: 2^n
}
inline float expNonPositive(float x)
{
    return expNonPositive(splat(x))[0];
}

struct RowMax {
    float max = -std::numeric_limits<float>::infinity();
    int64_t argmax = 0; // first index of the maximum, as torch.argmax
    double sum = 0;
};

// Maximum, its first index and (withSum) the sum of the row.
DPO_ROW_KERNEL RowMax rowMax(const float *x, int64_t V, bool withSum)
{
    VecF best = splat(-std::numeric_limits<float>::infinity()), acc {};
    VecI idx {}, lane {};
    for (int j = 0; j < kLanes; ++j)
        lane[j] = j;
    RowMax out;
    int64_t v = 0;
    int pending = 0;
    for (; v + kLanes <= V; v += kLanes) {
        const VecF xv = loadVec(x + v);
        const VecI greater = xv > best;
        best = greater ? xv : best;
        idx = greater ? lane + int32_t(v) : idx;
        if (withSum) {
            acc += xv;
            if (++pending == kFlush) {
                out.sum += laneSum(acc);
                acc = VecF {};
                pending = 0;
            }
        }
    }
    out.sum += laneSum(acc);
    for (int j = 0; j < kLanes; ++j)
        if (best[j] > out.max || (best[j] == out.max && idx[j] < out.argmax)) {
            out.max = best[j];
            out.argmax = idx[j];
        }
    for (; v < V; ++v) {
        out.sum += withSum ? x[v] : 0.0f;
        if (x[v] > out.max) {
            out.max = x[v];
            out.argmax = v;
        }
    }
    return out;
}

struct RowExpSums {
    double s1 = 0; // Σ e,        e = exp(x − max)
    double s2 = 0; // Σ e·(x − max)
    double s3 = 0; // Σ e²
};

DPO_ROW_KERNEL RowExpSums rowExpSums(const float *x, int64_t V, float max, bool all)
{
    VecF a1 {}, a2 {}, a3 {};
    RowExpSums out;
    int64_t v = 0;
    int pending = 0;
    for (; v + kLanes <= V; v += kLanes) {
        const VecF d = loadVec(x + v) - max;
        const VecF e = expNonPositive(d);
        a1 += e;
        if (all) {
            a2 += e * d;
            a3 += e * e;
        }
        if (++pending == kFlush) {
            out.s1 += laneSum(a1);
            out.s2 += laneSum(a2);
            out.s3 += laneSum(a3);
            a1 = a2 = a3 = VecF {};
            pending = 0;
        }
    }
    out.s1 += laneSum(a1);
    out.s2 += laneSum(a2);
    out.s3 += laneSum(a3);
    for (; v < V; ++v) {
        const float d = x[v] - max;
        const float e = expNonPositive(d);
        out.s1 += e;
        out.s2 += all ? double(e) * d : 0.0;
        out.s3 += all ? double(e) * e : 0.0;
    }
    return out;
}

// x <- −g·exp(x − lse) in place: the gradient of g·log_softmax(x)[t] except at t (the caller adds g).
DPO_ROW_KERNEL void rowSoftmaxGrad(float *x, int64_t V, float lse, float g)
{
    int64_t v = 0;
    for (; v + kLanes <= V; v += kLanes)
        storeVec(x + v, expNonPositive(loadVec(x + v) - lse) * -g);
    for (; v < V; ++v)
        x[v] = -g * expNonPositive(x[v] - lse);
}

// ---------------------------------------------------------------------------------------------

// logits of rows [m, H] into the float32 buffer [m, V] (the head's matmul in its own dtype).
void chunkLogits(const torch::Tensor &rows, const torch::Tensor &weight, torch::Tensor &buffer)
{
    if (rows.scalar_type() == torch::kFloat32 && weight.scalar_type() == torch::kFloat32)
        at::mm_out(buffer, rows, weight.t());
    else
        buffer.copy_(torch::mm(rows, weight.t()));
}

// Forward of one chunk: logits into `buffer`, then per row log p(target) (and the statistics) and
// the row's log-sum-exp (kept for backward).
void forwardChunk(const torch::Tensor &rows, const torch::Tensor &weight, const int64_t *targets, torch::Tensor &buffer,
    bool stats, float *logp, float *lse, float *entropy, float *logitMean, float *correct, float *aligned)
{
    chunkLogits(rows, weight, buffer);
    const int64_t m = rows.size(0), V = buffer.size(1);
    const float *base = buffer.data_ptr<float>();
    at::parallel_for(0, m, 1, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
            const float *x = base + i * V;
            const RowMax rm = rowMax(x, V, stats);
            const RowExpSums es = rowExpSums(x, V, rm.max, stats);
            const double logS1 = std::log(es.s1);
            const double rowLse = double(rm.max) + logS1;
            const double tokenLogp = double(x[targets[i]]) - rowLse;
            logp[i] = float(tokenLogp);
            lse[i] = float(rowLse);
            if (!stats)
                continue;
            // H = lse − Σp·x = log s1 − s2/s1; log Σp² = log s3 − 2 log s1.
            entropy[i] = float(logS1 - es.s2 / es.s1);
            logitMean[i] = float(rm.sum / double(V));
            correct[i] = rm.argmax == targets[i] ? 1.0f : 0.0f;
            aligned[i] = float(tokenLogp - (std::log(es.s3) - 2.0 * logS1));
        }
    });
}

struct FusedHeadLogps : torch::autograd::Function<FusedHeadLogps> {
    static torch::autograd::variable_list forward(torch::autograd::AutogradContext *ctx, const torch::Tensor &rows,
        const torch::Tensor &weight, const torch::Tensor &targets, bool stats, int64_t chunkRows)
    {
        const int64_t M = rows.size(0), V = weight.size(0);
        const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(rows.device());
        auto logp = torch::empty({ M }, f32), lse = torch::empty({ M }, f32);
        torch::Tensor entropy, logitMean, correct, aligned;
        if (stats) {
            entropy = torch::empty({ M }, f32);
            logitMean = torch::empty({ M }, f32);
            correct = torch::empty({ M }, f32);
            aligned = torch::empty({ M }, f32);
        }
        const auto tgt = targets.to(torch::kCPU, torch::kLong).contiguous();
        if (M > 0 && (tgt.min().item<int64_t>() < 0 || tgt.max().item<int64_t>() >= V))
            throw Error("headLogpsFused: a target token id is outside the vocabulary of " + std::to_string(V));
        const int64_t chunk = headChunkRows(V, chunkRows);
        auto buffer = torch::empty({ std::min(chunk, M), V }, f32);
        for (int64_t s = 0; s < M; s += chunk) {
            const int64_t e = std::min(M, s + chunk);
            auto view = buffer.narrow(0, 0, e - s);
            auto at = [&](torch::Tensor &t) { return t.defined() ? t.data_ptr<float>() + s : nullptr; };
            forwardChunk(rows.slice(0, s, e), weight, tgt.data_ptr<int64_t>() + s, view, stats, at(logp), at(lse),
                at(entropy), at(logitMean), at(correct), at(aligned));
        }
        ctx->save_for_backward({ rows, weight, tgt, lse });
        // The parameter itself: backward adds into its .grad in place (see backward).
        ctx->saved_data["weight"] = weight;
        ctx->saved_data["chunk"] = chunk;
        if (!stats)
            return { logp };
        ctx->mark_non_differentiable({ entropy, logitMean, correct, aligned });
        return { logp, entropy, logitMean, correct, aligned };
    }

    static torch::autograd::variable_list backward(
        torch::autograd::AutogradContext *ctx, torch::autograd::variable_list grads)
    {
        const auto saved = ctx->get_saved_variables();
        const auto &rows = saved[0], &weight = saved[1], &tgt = saved[2], &lse = saved[3];
        const int64_t chunk = ctx->saved_data["chunk"].toInt();
        const int64_t M = rows.size(0), V = weight.size(0);
        const bool needRows = ctx->needs_input_grad(0), needWeight = ctx->needs_input_grad(1);
        torch::Tensor gradRows, gradWeight;
        if (!grads[0].defined() || (!needRows && !needWeight))
            return { gradRows, gradWeight, torch::Tensor(), torch::Tensor(), torch::Tensor() };
        const auto g = grads[0].to(torch::kCPU, torch::kFloat32).contiguous();
        const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(rows.device());
        if (needRows)
            gradRows = torch::empty_like(rows);
        // A float32 leaf weight (a model's head) gets its gradient added straight into .grad: autograd
        // would build a second vocabulary-sized tensor and add it there. Tied to the token embedding,
        // whose lookup (embedding_lookup.h) then adds its rows into the same .grad.
        auto param = ctx->saved_data["weight"].toTensor();
        const bool plain = rows.scalar_type() == torch::kFloat32 && weight.scalar_type() == torch::kFloat32;
        const bool intoGrad = needWeight && plain && param.is_leaf()
            && (!param.grad().defined()
                || (param.grad().is_contiguous() && param.grad().scalar_type() == torch::kFloat32));
        if (intoGrad) {
            torch::NoGradGuard noGrad;
            if (!param.grad().defined())
                param.mutable_grad() = torch::zeros(weight.sizes(), f32);
            gradWeight = param.grad();
        } else if (needWeight) {
            gradWeight = torch::zeros(weight.sizes(), f32);
        }
        auto buffer = torch::empty({ std::min(chunk, M), V }, f32);
        for (int64_t s = 0; s < M; s += chunk) {
            const int64_t e = std::min(M, s + chunk);
            auto view = buffer.narrow(0, 0, e - s);
            const auto r = rows.slice(0, s, e);
            chunkLogits(r, weight, view);
            // d logp_t / d x_v = [v == t] − softmax(x)_v, times the incoming gradient.
            float *base = view.data_ptr<float>();
            const float *gp = g.data_ptr<float>() + s, *lp = lse.data_ptr<float>() + s;
            const int64_t *tp = tgt.data_ptr<int64_t>() + s;
            at::parallel_for(0, e - s, 1, [&](int64_t begin, int64_t end) {
                for (int64_t i = begin; i < end; ++i) {
                    rowSoftmaxGrad(base + i * V, V, lp[i], gp[i]);
                    base[i * V + tp[i]] += gp[i];
                }
            });
            const auto gradLogits = plain ? view : view.to(weight.scalar_type()); // [m, V]
            if (needRows)
                gradRows.slice(0, s, e).copy_(torch::mm(gradLogits, weight)); // [m, H]
            if (needWeight) {
                if (plain)
                    gradWeight.addmm_(gradLogits.t(), r); // [V, H] += [V, m]·[m, H]
                else
                    gradWeight.add_(torch::mm(gradLogits.t(), r));
            }
        }
        if (intoGrad)
            gradWeight = torch::Tensor(); // already in .grad
        else if (gradWeight.defined() && weight.scalar_type() != torch::kFloat32)
            gradWeight = gradWeight.to(weight.scalar_type());
        return { gradRows, gradWeight, torch::Tensor(), torch::Tensor(), torch::Tensor() };
    }
};

} // namespace

int64_t headChunkRows(int64_t V, int64_t chunkRows)
{
    return chunkRows > 0 ? chunkRows : std::max<int64_t>(1, kHeadLogitBudget / std::max<int64_t>(1, V));
}

std::vector<torch::Tensor> headLogpsFused(const torch::Tensor &rows, const torch::Tensor &weight,
    const torch::Tensor &targets, const HeadLogpsOptions &options)
{
    if (rows.dim() != 2 || weight.dim() != 2 || rows.size(1) != weight.size(1) || targets.dim() != 1
        || targets.size(0) != rows.size(0))
        throw Error("headLogpsFused: expected rows [M, H], weight [V, H], targets [M]; got " + c10::str(rows.sizes())
            + ", " + c10::str(weight.sizes()) + ", " + c10::str(targets.sizes()));
    if (!rows.device().is_cpu() || !weight.device().is_cpu())
        throw Error("headLogpsFused: CPU tensors only (CUDA uses the composed head)");
    return FusedHeadLogps::apply(rows.contiguous(), weight, targets, options.stats, options.chunkRows);
}

} // namespace dpo
