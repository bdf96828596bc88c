// The Train page's memory estimate (engine/training/memory_estimate.h): the adapter parameters it counts
// equal those LoraAdapter really creates on fixture models (several target sets), and the training state
// per parameter is the README's formula (full 20 bytes in float32, 18 in bfloat16; LoRA 4 + 16·p/P).
#include "test_util.h"

#include "engine/models/causal_lm.h"
#include "engine/models/lora.h"
#include "engine/models/model_config.h"
#include "engine/training/memory_estimate.h"

#include <gtest/gtest.h>

namespace test_memory_estimate { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

namespace {

dpo::ModelShape shapeOf(const dpo::ModelConfig &c, int64_t parameters)
{
    dpo::ModelShape s;
    s.parameters = parameters;
    s.layers = c.numLayers;
    s.hidden = c.hiddenSize;
    s.intermediate = c.intermediateSize;
    s.heads = c.numHeads;
    s.kvHeads = c.numKvHeads;
    s.headDim = c.headDim;
    s.vocab = c.vocabSize;
    return s;
}

} // namespace

class AdapterCount : public ::testing::TestWithParam<std::tuple<std::string, std::vector<std::string>, int64_t>> {
};

TEST_P(AdapterCount, EqualsTheAdapterLoraAdapterCreates)
{
    const auto &[dir, targets, r] = GetParam();
    auto model = dpo::loadCausalLM(dpotest::fixture(dir));
    dpo::LoraConfig cfg;
    cfg.r = r;
    cfg.targetModules = targets;
    auto adapter = dpo::LoraAdapter::attach(*model, cfg);
    const auto shape = shapeOf(model->config(), model->parameterCount());
    EXPECT_EQ(dpo::loraParameterCount(shape, r, targets), adapter->parameterCount());
}

INSTANTIATE_TEST_SUITE_P(Fixtures, AdapterCount,
    ::testing::Values(std::make_tuple(std::string("llama-gqa/ref"), std::vector<std::string> {}, int64_t(8)),
        std::make_tuple(std::string("llama-gqa/ref"), std::vector<std::string> { "q_proj", "v_proj" }, int64_t(4)),
        std::make_tuple(std::string("llama-gqa/ref"), std::vector<std::string> { "all-linear" }, int64_t(16)),
        std::make_tuple(std::string("qwen3/ref"), std::vector<std::string> {}, int64_t(8)),
        std::make_tuple(std::string("qwen3/ref"), std::vector<std::string> { "down_proj" }, int64_t(2))));

TEST(MemoryEstimate, TrainingStateFollowsTheReadmeFormula)
{
    dpo::ModelShape m; // Qwen2.5-0.5B's shape
    m.parameters = 494032768;
    m.layers = 24;
    m.hidden = 896;
    m.intermediate = 4864;
    m.heads = 14;
    m.kvHeads = 2;
    m.headDim = 64;
    m.vocab = 151936;
    dpo::MemoryEstimateInput in;
    in.model = m;
    EXPECT_DOUBLE_EQ(dpo::estimateTrainingMemory(in).stateBytesPerParameter, 20.0);
    in.dtype = "bfloat16";
    EXPECT_DOUBLE_EQ(dpo::estimateTrainingMemory(in).stateBytesPerParameter, 18.0);
    in.referenceCopy = false;
    EXPECT_DOUBLE_EQ(dpo::estimateTrainingMemory(in).stateBytesPerParameter, 16.0);
    in.float32AdamWState = false; // bf16 weights, gradients and moments, no master
    EXPECT_DOUBLE_EQ(dpo::estimateTrainingMemory(in).stateBytesPerParameter, 8.0);
    in.float32AdamWState = true;

    in.method = "lora";
    in.dtype = "float32";
    const auto lora = dpo::estimateTrainingMemory(in);
    EXPECT_EQ(lora.trainable, 4399104); // what bench-dpo --method lora counted on this shape (README)
    EXPECT_NEAR(lora.stateBytesPerParameter, 4.0 + 16.0 * 4399104.0 / 494032768.0, 1e-12);
    EXPECT_EQ(lora.reference, 0.0);

    // Activations grow with the batch and the sequence; the state does not.
    in.batchPairs = 2;
    const auto twice = dpo::estimateTrainingMemory(in);
    EXPECT_NEAR(twice.activations, 2 * lora.activations, 1e-6 * lora.activations);
    EXPECT_EQ(twice.weights, lora.weights);
    EXPECT_EQ(dpo::formatBytes(3.5 * (int64_t(1) << 30)), "3.5 GiB");
    EXPECT_EQ(dpo::formatBytes(512.0 * (1 << 20)), "512 MiB");
}

} // namespace test_memory_estimate
