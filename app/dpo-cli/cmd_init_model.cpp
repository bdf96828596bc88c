// dpo-cli init-model --config CONFIG.json --tokenizer DIR --output DIR [--seed S] [--dtype float32|bfloat16]
// Creates a randomly initialised model from a Hugging Face config.json and saves it, with the
// tokenizer files of DIR, in the Hugging Face layout: the starting point of a model trained from
// scratch (the bundled demo model is made this way, then `dpo-cli sft`).
// Initialisation is Hugging Face's: normal(0, initializer_range) for linear and embedding weights
// (initializer_range from the config, 0.02 when absent), norm weights 1, biases 0, drawn from
// libtorch's CPU generator seeded with --seed in parameter-name order, so the same seed gives the
// same weights. It does not apply GPT-2's scaled residual-projection initialisation.
#include "commands.h"

#include "engine/models/causal_lm.h"
#include "engine/error.h"
#include "engine/io/json_limits.h"
#include "engine/models/model_config.h"
#include "engine/runtime.h"
#include "engine/tokenizers/tokenizer.h"

#include <ATen/CPUGeneratorImpl.h>

#include <fstream>

namespace {

struct InitModelOptions {
    std::string config;
    std::string tokenizer;
    std::string output;
    uint64_t seed = 0;
    std::string dtype = "float32";
};

// Re-initialises every parameter (the constructors already do much the same, but the seed must
// govern all of it and the rule must not depend on how a model family names its modules).
void initialiseWeights(dpo::CausalLM &model, double std, uint64_t seed)
{
    torch::NoGradGuard noGrad;
    auto gen = at::detail::createCPUGenerator(seed);
    for (auto &p : model.named_parameters()) {
        const std::string &name = p.key();
        torch::Tensor t = p.value();
        const bool isBias = name.size() >= 4 && name.compare(name.size() - 4, 4, "bias") == 0;
        if (isBias)
            t.zero_();
        else if (t.dim() == 1) // RMSNorm / LayerNorm scales are the only 1-D weights
            t.fill_(1.0);
        else
            t.normal_(0.0, std, gen);
    }
}

dpocli::CommandRegistrar regInitModel([](CLI::App &app) {
    auto o = std::make_shared<InitModelOptions>();
    CLI::App *cmd = app.add_subcommand("init-model",
        "Create a randomly initialised model from a config.json, "
        "save it with a tokenizer (HF layout)");
    cmd->add_option("--config", o->config, "Hugging Face config.json describing the model")->required();
    cmd->add_option("--tokenizer", o->tokenizer, "Folder with the tokenizer files (tokenizer.model, ...)")->required();
    cmd->add_option("--output", o->output, "Folder to write the model to")->required();
    cmd->add_option("--seed", o->seed, "Seed of the random initialisation")->capture_default_str();
    cmd->add_option("--dtype", o->dtype, "Saved weight dtype: float32 or bfloat16")->capture_default_str();
    cmd->callback([o, &app] {
        dpo::initRuntime(dpocli::globalThreads(app));
        const auto dtype = dpo::parseDtype(o->dtype);

        const nlohmann::json j = dpo::readJsonFileLimited(o->config); // nesting and size bounded
        const dpo::ModelConfig config = dpo::ModelConfig::fromJson(j, o->config);
        double std = 0.02;
        if (j.contains("initializer_range")) {
            if (!j["initializer_range"].is_number() || !(j["initializer_range"].get<double>() > 0))
                throw dpo::Error(o->config + ": field 'initializer_range' must be a positive number");
            std = j["initializer_range"].get<double>();
        }

        const auto tok = dpo::loadTokenizer(o->tokenizer);
        dpo::checkTokenizerFitsModel(*tok, config.vocabSize, o->config);

        auto model = dpo::createCausalLM(config);
        initialiseWeights(*model, std, o->seed);
        model->eval();
        dpo::savePretrained(*model, o->output, o->tokenizer, int64_t(5) << 30, dtype);
        dpocli::printJson({ { "output", o->output }, { "model_type", config.modelType },
            { "parameters", model->parameterCount() }, { "vocab_size", config.vocabSize },
            { "tokenizer_vocab_size", tok->vocabSize() }, { "seed", o->seed }, { "initializer_range", std } });
    });
});

} // namespace
