// Helpers shared by the engine tests that compare two layouts of the same batch (shared prompt,
// padding-free): a fixture's preference pairs as tokenized, and a model's parameter gradients.
#pragma once

#include "test_util.h"

#include "engine/data/preference_data.h"
#include "engine/models/causal_lm.h"
#include "engine/tokenizers/tokenizer.h"

#include <map>
#include <string>
#include <vector>

namespace dpotest {

inline std::vector<dpo::TokenizedPair> tokenizedFixturePairs(
    const std::string &fixtureName, const dpo::TruncationOptions &trunc = {})
{
    auto tok = dpo::loadTokenizer(fixture(fixtureName + "/ref"));
    std::vector<dpo::TokenizedPair> out;
    for (const auto &row : dpo::readPreferenceJsonl(fixture(fixtureName + "/pairs.jsonl")))
        out.push_back(dpo::tokenizePair(*tok, row, trunc));
    return out;
}

// Copies of every parameter's .grad (parameters without one are left out).
inline std::map<std::string, torch::Tensor> parameterGradients(dpo::CausalLM &model)
{
    std::map<std::string, torch::Tensor> g;
    for (const auto &item : model.named_parameters())
        if (item.value().grad().defined())
            g[item.key()] = item.value().grad().clone();
    return g;
}

} // namespace dpotest
