#include "engine/training/memory_estimate.h"

#include <algorithm>
#include <cstdio>

namespace dpo {

namespace {

struct Projection {
    const char *name;
    int64_t in, out;
};

std::vector<Projection> projections(const ModelShape &m)
{
    const int64_t q = m.heads * m.headDim, kv = m.kvHeads * m.headDim;
    return { { "q_proj", m.hidden, q }, { "k_proj", m.hidden, kv }, { "v_proj", m.hidden, kv },
        { "o_proj", q, m.hidden }, { "gate_proj", m.hidden, m.intermediate }, { "up_proj", m.hidden, m.intermediate },
        { "down_proj", m.intermediate, m.hidden } };
}

bool targeted(const std::string &name, const std::vector<std::string> &targets)
{
    if (targets.empty())
        return true;
    for (const auto &t : targets)
        if (t == "all-linear" || t == name)
            return true;
    return false;
}

} // namespace

int64_t loraParameterCount(const ModelShape &m, int64_t r, const std::vector<std::string> &targets)
{
    int64_t perLayer = 0;
    for (const auto &p : projections(m))
        if (targeted(p.name, targets))
            perLayer += r * (p.in + p.out);
    return perLayer * m.layers;
}

MemoryEstimate estimateTrainingMemory(const MemoryEstimateInput &in)
{
    const ModelShape &m = in.model;
    const double P = double(m.parameters);
    const double wb = in.dtype == "float32" ? 4.0 : 2.0; // bytes per stored weight
    MemoryEstimate e;
    if (in.method == "lora") {
        // Frozen base in its dtype; adapters in float32 with gradients and two AdamW moments; the
        // reference is the same network with the adapters off (no copy).
        const double p = double(loraParameterCount(m, in.loraR, in.loraTargets));
        e.trainable = int64_t(p);
        e.weights = wb * P + 4.0 * p;
        e.gradients = 4.0 * p;
        e.optimizer = 8.0 * p;
    } else {
        // Every weight trains: gradients in the weight dtype, two float32 moments, and a float32 master
        // copy when the weights are 16-bit (or two moments in the weights' dtype and no master);
        // a live reference is a second copy of the weights.
        e.trainable = m.parameters;
        e.weights = wb * P;
        e.gradients = wb * P;
        e.optimizer = in.float32AdamWState ? 8.0 * P + (wb < 4.0 ? 4.0 * P : 0.0) : 2.0 * wb * P;
        e.reference = in.referenceCopy ? wb * P : 0.0;
    }
    // Activations kept for backward, per sequence token: about 10 hidden-sized and 3 intermediate-sized
    // tensors per layer, the attention probabilities (heads x sequence), and the logits with their
    // float32 log-softmax over the vocabulary.
    const double tokens = 2.0 * double(in.batchPairs) * double(in.seqLen);
    const double perLayer = wb * (10.0 * m.hidden + 3.0 * m.intermediate) + 4.0 * double(m.heads) * double(in.seqLen);
    e.activations = tokens * (double(m.layers) * perLayer + (wb + 4.0) * double(m.vocab));
    e.stateBytesPerParameter = P > 0 ? (e.weights + e.gradients + e.optimizer + e.reference) / P : 0.0;
    return e;
}

std::string formatBytes(double bytes)
{
    char buf[32];
    if (bytes >= double(int64_t(1) << 30))
        std::snprintf(buf, sizeof buf, "%.1f GiB", bytes / double(int64_t(1) << 30));
    else
        std::snprintf(buf, sizeof buf, "%.0f MiB", std::max(0.0, bytes) / double(1 << 20));
    return buf;
}

} // namespace dpo
