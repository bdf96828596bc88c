// Log-probabilities of target tokens through a plain linear output head (logits = rows · Wᵀ), in
// chunks of rows, with the softmax statistics fused into two sweeps over each row of logits.
//
// Why its own unit: with a 152k-token vocabulary the [tokens × V] float32 logits are what a DPO
// step spends its time and memory on. Composed torch ops make ~14 passes over them (log-softmax,
// exp, products, logsumexp, argmax, mean), allocate a fresh [rows, V] tensor per op, and autograd
// allocates one [V, H] weight gradient per chunk. Here a chunk's logits live in one reused float32
// buffer; forward reads them twice (max/argmax/sum, then Σe, Σe·x, Σe²), backward recomputes them
// (nothing [rows, V]-sized is kept for backward), turns them into the logits' gradient in place and
// accumulates the weight gradient in one float32 buffer with addmm.
#pragma once

#include "engine/torch_api.h"

#include <vector>

namespace dpo {

struct HeadLogpsOptions {
    bool stats = false; // also the per-token statistics (no gradient), see headLogpsFused
    int64_t chunkRows = 0; // 0: as many rows as keep a chunk's float32 logits near 128 MiB
};

// rows [M, H] (any float dtype, differentiable), weight [V, H] (differentiable), targets [M] int64.
// Returns {log p(target) [M] float32} and with stats also, [M] float32 and detached:
// {entropy, mean logit, argmax == target (0/1), log p(target) − log Σ_v p(v)²}.
// Gradients flow to rows and weight (equal to log_softmax(rows · Wᵀ).gather(target) up to rounding).
std::vector<torch::Tensor> headLogpsFused(const torch::Tensor &rows, const torch::Tensor &weight,
    const torch::Tensor &targets, const HeadLogpsOptions &options = {});

// Rows of a chunk for a vocabulary of V (the 128 MiB float32 budget), or `chunkRows` when > 0.
int64_t headChunkRows(int64_t V, int64_t chunkRows = 0);

} // namespace dpo
