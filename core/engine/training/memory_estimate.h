// Memory a DPO run needs, estimated before it starts from the model's shape (config.json and the
// weight headers) and the run's settings: the Train page shows it next to the Full / LoRA choice.
// Training state follows the formula in the README ("Memory of full and LoRA DPO"); activations are a
// rough upper estimate of what the backward pass keeps (per-layer tensors, attention scores, logits and
// their float32 log-softmax). No libtorch: the GUI includes it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dpo {

struct ModelShape {
    int64_t parameters = 0; // all weights, as stored
    int64_t layers = 0, hidden = 0, intermediate = 0, heads = 0, kvHeads = 0, headDim = 0, vocab = 0;
};

struct MemoryEstimateInput {
    ModelShape model;
    std::string method = "full"; // full | lora
    int64_t loraR = 8;
    // LoRA targets by module name; empty = the attention and MLP projections, "all-linear" = the same set
    // (the decoders here have no other linear layers). Other names count when they are one of q_proj,
    // k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj.
    std::vector<std::string> loraTargets;
    std::string dtype = "float32"; // float32 | bfloat16 | float16
    bool float32AdamWState = true; // false: adamw_state_dtype weights (moments in the weights' dtype, no master)
    bool referenceCopy = true; // full DPO with a live reference model (not reference-free or precomputed)
    int64_t batchPairs = 1; // pairs per micro-batch (chosen + rejected = 2 sequences each)
    int64_t seqLen = 512; // tokens per sequence
};

struct MemoryEstimate {
    int64_t trainable = 0; // parameters with gradients and AdamW state
    double weights = 0, gradients = 0, optimizer = 0, reference = 0, activations = 0; // bytes
    double total() const { return weights + gradients + optimizer + reference + activations; }
    double stateBytesPerParameter = 0; // (weights + gradients + optimizer + reference) / parameters
};

// Adapter parameters LoRA of rank r adds on the given targets: r * (in + out) per adapted projection.
int64_t loraParameterCount(const ModelShape &m, int64_t r, const std::vector<std::string> &targets);

MemoryEstimate estimateTrainingMemory(const MemoryEstimateInput &in);

// "3.2 GiB", "512 MiB".
std::string formatBytes(double bytes);

} // namespace dpo
