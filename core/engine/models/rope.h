// Rotary position embeddings: the RoPE variants of transformers' modeling_rope_utils.py — default,
// linear, llama3, yarn and longrope — as (1) RopeParameters, read from either config form (the older
// top-level rope_theta + rope_scaling, or transformers 5's rope_parameters, flat or nested per layer
// type as Gemma 3 writes it), (2) ropeInverseFrequencies(), the float32 inverse frequencies and the
// attention scaling applied to cos/sin, computed in transformers' order of operations, and (3)
// RotaryEmbedding, the cos/sin tables for given positions. Variants whose frequencies depend on the
// history of calls (dynamic NTK) are refused by the parser rather than approximated.
#pragma once

#include "engine/models/rope_parameters.h"

#include "engine/torch_api.h"

#include <utility>

namespace dpo {

// Inverse frequencies [rotaryDim / 2] (float32, on `device`) and the factor cos/sin are multiplied
// by, for `headDim`. `seqLen` (the largest position + 1 of a forward) selects longrope's long factors.
std::pair<torch::Tensor, double> ropeInverseFrequencies(
    const RopeParameters &p, int64_t headDim, int64_t seqLen = 0, torch::Device device = torch::kCPU);

// The rotary width of a head: 2 * (number of inverse frequencies) = int(headDim * partial) rounded up to even.
int64_t ropeRotaryDim(const RopeParameters &p, int64_t headDim);

class RotaryEmbedding {
public:
    RotaryEmbedding() = default;
    RotaryEmbedding(RopeParameters params, int64_t headDim);
    // positions [B, T] int64 -> {cos, sin}, each [B, T, rotaryDim] in `dtype` (scaled by the
    // variant's attention factor), computed in float32 as transformers does.
    std::pair<torch::Tensor, torch::Tensor> cosSin(const torch::Tensor &positions, torch::ScalarType dtype) const;
    int64_t rotaryDim() const { return m_rotaryDim; }
    const RopeParameters &params() const { return m_params; }

private:
    RopeParameters m_params;
    int64_t m_headDim = 0;
    int64_t m_rotaryDim = 0;
};

} // namespace dpo
