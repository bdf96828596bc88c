// RopeParameters: what a config.json says about its rotary position embeddings, in either form
// (top-level rope_theta + rope_scaling, or transformers 5's rope_parameters, flat or nested per
// layer type). Kept free of libtorch so configs can be read without it; rope.h computes the tables.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace dpo {

struct RopeParameters {
    std::string type = "default"; // default | linear | llama3 | yarn | longrope
    double theta = 10000.0;
    double partialRotaryFactor = 1.0; // rotary dim = int(head_dim * factor)
    double factor = 1.0; // linear, llama3, yarn, longrope (longrope: 0 = from max/original positions)
    // llama3
    double lowFreqFactor = 1.0, highFreqFactor = 4.0;
    // llama3, yarn, longrope: the pre-training context
    int64_t originalMaxPositions = 0;
    int64_t maxPositions = 0; // config.max_position_embeddings (yarn/longrope defaults)
    // yarn
    double attentionFactor = 0.0; // 0 = the variant's default
    double betaFast = 32.0, betaSlow = 1.0;
    double mscale = 0.0, mscaleAllDim = 0.0;
    bool truncate = true;
    // longrope: one factor per frequency (rotary dim / 2)
    std::vector<double> shortFactor, longFactor;

    bool operator==(const RopeParameters &o) const;
};

// Reads the RoPE parameters of `config` (a config.json object) for the layers of `layerType`
// ("full_attention" or "sliding_attention"; flat configs give the same answer for both).
// `defaultTheta` is the config class's rope_theta default, `maxPositions` its
// max_position_embeddings. Throws dpo::Error naming the field for unsupported or malformed values.
RopeParameters parseRopeParameters(const nlohmann::json &config, const std::string &layerType, double defaultTheta,
    int64_t maxPositions, const std::string &source);

} // namespace dpo
