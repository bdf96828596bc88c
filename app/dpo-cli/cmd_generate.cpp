// dpo-cli generate --model DIR --prompt TEXT [--max-new-tokens N] [--greedy | --temperature T
//   --top-k K --top-p P --seed S] [--ignore-eos] [--device cpu|cuda|auto] [--dtype float32|bfloat16]
// Encodes the prompt with the tokenizer's special tokens (BOS for Llama), continues it and prints
// {"ids":[...new tokens...],"text":"..."} (the new tokens decoded, special tokens skipped).
// Greedy unless a sampling option is given.
#include "commands.h"

#include "engine/models/adapter_io.h"
#include "engine/models/causal_lm.h"
#include "engine/error.h"
#include "engine/generation/generation.h"
#include "engine/runtime.h"
#include "engine/tokenizers/tokenizer.h"
#include "engine/tokenizers/utf8.h"

namespace {

struct GenerateOptions {
    std::string model;
    std::string baseModel;
    std::string prompt;
    int maxNewTokens = 64;
    bool greedy = false;
    double temperature = 1.0;
    int topK = 0;
    double topP = 1.0;
    uint64_t seed = 0;
    bool ignoreEos = false;
    std::string device = "auto";
    std::string dtype = "float32";
};

dpocli::CommandRegistrar reg([](CLI::App &app) {
    auto o = std::make_shared<GenerateOptions>();
    CLI::App *cmd = app.add_subcommand("generate", "Continue a prompt with a model (greedy or sampling), print JSON");
    cmd->add_option("--model", o->model, "Model folder (Hugging Face layout) or PEFT LoRA adapter folder")->required();
    cmd->add_option("--base-model", o->baseModel,
        "Base model folder of an adapter --model (default: its adapter_config.json's base_model_name_or_path)");
    cmd->add_option("--prompt", o->prompt, "Prompt text (encoded with the tokenizer's special tokens)")->required();
    cmd->add_option("--max-new-tokens", o->maxNewTokens, "Most tokens to generate")->capture_default_str();
    cmd->add_flag("--greedy", o->greedy, "Argmax decoding (the default when no sampling option is given)");
    cmd->add_option("--temperature", o->temperature, "Sampling temperature (> 0)");
    cmd->add_option("--top-k", o->topK, "Sample among the K most likely tokens (0 = off)");
    cmd->add_option("--top-p", o->topP, "Nucleus sampling: smallest set with probability >= P (1 = off)");
    cmd->add_option("--seed", o->seed, "Sampling seed (same seed, same tokens, on any device)");
    cmd->add_flag("--ignore-eos", o->ignoreEos, "Keep going after an end-of-sequence token");
    cmd->add_option("--device", o->device, "cpu, cuda, cuda:N or auto")->capture_default_str();
    cmd->add_option("--dtype", o->dtype, "float32, bfloat16 or float16")->capture_default_str();
    cmd->callback([o, cmd, &app] {
        const bool sampling
            = cmd->count("--temperature") || cmd->count("--top-k") || cmd->count("--top-p") || cmd->count("--seed");
        if (o->greedy && sampling)
            throw dpo::Error("--greedy cannot be combined with --temperature, --top-k, --top-p or --seed");
        dpo::GenerationOptions g;
        g.maxNewTokens = o->maxNewTokens;
        g.greedy = !sampling;
        g.temperature = o->temperature;
        g.topK = o->topK;
        g.topP = o->topP;
        g.seed = o->seed;
        g.stopAtEos = !o->ignoreEos;
        g.validate(); // before loading anything: bad options fail fast
        dpo::requireUtf8(o->prompt, "--prompt");
        const auto device = dpo::parseDevice(o->device);
        const auto dtype = dpo::parseDtype(o->dtype);

        dpo::initRuntime(dpocli::globalThreads(app));

        auto tok = dpo::loadTokenizer(dpo::tokenizerDirFor(o->model, o->baseModel));
        auto model = dpo::loadCausalLM(o->model, device, dtype, o->baseModel);
        if (tok->eosId() >= 0)
            g.eosTokenIds.push_back(tok->eosId());
        const auto promptIds = tok->encodeWithSpecial(o->prompt);
        const auto ids = dpo::generate(*model, promptIds, g);
        nlohmann::json out;
        out["ids"] = ids;
        out["text"] = tok->decode(ids, true);
        dpocli::printJson(out);
    });
});

} // namespace
