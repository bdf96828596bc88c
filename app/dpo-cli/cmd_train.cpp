// dpo-cli train / sft: run the DpoTrainer recipe headless. Options map 1:1 onto TrainConfig keys
// (--learning-rate -> "learning_rate"); --config FILE.json gives the same keys, flags win over it.
// SIGINT/SIGTERM stop cleanly with a checkpoint; a progress bar with ETA goes to stderr on a terminal,
// metrics.jsonl is always written in the output directory.
#include "commands.h"

#include "local_launch.h"

#include "engine/distributed/communicator.h"
#include "engine/training/dpo_trainer.h"
#include "engine/error.h"

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <map>
#include <memory>
#include <unistd.h>

namespace {

std::atomic<bool> g_stop{false};
void onSignal(int) { g_stop.store(true); }

struct TrainArgs {
    std::string config;
    int nproc = 1;
    std::map<std::string, std::string> values; // snake_case key -> raw text
    std::map<std::string, bool> flags;
};

std::string formatSeconds(double s)
{
    if (!(s >= 0) || s > 1e7)
        return "--:--";
    const long t = long(s + 0.5);
    char buf[32];
    if (t >= 3600)
        std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    else
        std::snprintf(buf, sizeof buf, "%02ld:%02ld", t / 60, t % 60);
    return buf;
}

// Help of the options that say more than their TrainConfig key.
const std::map<std::string, std::string> &optionHelp()
{
    static const std::map<std::string, std::string> help = {
        {"model", "Policy model folder (HF layout), or a PEFT LoRA adapter folder to continue training it"},
        {"ref_model", "Reference model folder or adapter folder (default: the policy; with LoRA the policy with "
                      "its adapters off)"},
        {"method", "full (train every weight) or lora (train low-rank adapters on the frozen base)"},
        {"lora_r", "LoRA rank r (default 8)"},
        {"lora_alpha", "LoRA alpha; the adapter output is scaled by alpha/r, or alpha/sqrt(r) with --use-rslora "
                       "(default 16)"},
        {"lora_dropout", "Dropout on the adapters' input while training, in [0, 1) (default 0)"},
        {"lora_target_modules", "Comma-separated module names (PEFT suffix match, e.g. q_proj,v_proj) or all-linear "
                                "(default: every attention and MLP projection)"},
        {"base_model", "Base model folder of an adapter --model (default: its base_model_name_or_path, relative "
                       "to the adapter folder)"},
        {"label_smoothing", "Label smoothing epsilon in [0, 0.5): robust, exo_pair, aot and aot_unpaired only (TRL 1.x)"},
        {"f_divergence_type", "f-DPO regularizer: reverse_kl (default, standard DPO), forward_kl, js_divergence or "
                              "alpha_divergence"},
        {"f_alpha_divergence_coef", "alpha of --f-divergence-type alpha_divergence (default 0.5)"},
        {"ld_alpha", "LD-DPO: weight in [0, 1] of the completion tokens beyond the pair's shorter completion "
                     "(default: off)"},
        {"lr_scheduler", "linear, cosine, constant (no warmup) or constant_with_warmup"},
        {"weight_decay", "AdamW decoupled weight decay; biases and norm weights are exempt (HF Trainer's rule)"},
        {"dtype", "auto (bfloat16 on a CUDA GPU that has it, else float32), float32, bfloat16 or float16 (CUDA "
                  "only, with loss scaling): the weights' dtype in memory (with LoRA the frozen base's; adapters "
                  "stay float32)"},
        {"loss_scaling", "auto (dynamic for float16, else none), dynamic or none: torch.amp.GradScaler's rule"},
        {"adamw_state_dtype", "float32 (moments and a master copy of 16-bit weights in float32) or weights (moments "
                              "in the weights' dtype, no master: torch's AdamW on a bf16 model, 8 bytes/param less)"},
        {"loss_scale_init", "initial loss scale of dynamic loss scaling (default 65536)"},
        {"loss_scale_growth_interval", "finite steps in a row before the loss scale doubles (default 2000)"},
        {"zero_stage", "distributed runs: 1 shards the AdamW state across the ranks (ZeRO stage 1), 0 keeps it "
                       "whole on every rank (default 0)"},
        {"ddp_timeout", "distributed runs: seconds a rank waits for the others before the run fails (default 1800)"},
        {"tf32", "true/false: TF32 tensor cores for float32 matmuls on CUDA (default true)"},
    };
    return help;
}

// Options whose value is a number / bool in the JSON config.
const std::map<std::string, char> &optionKinds()
{
    // 'd' double, 'i' integer, 's' string, 'l' list
    static const std::map<std::string, char> kinds = {
        {"model", 's'},         {"ref_model", 's'},       {"dataset", 's'},       {"eval_dataset", 's'},
        {"output_dir", 's'},    {"loss_type", 'l'},       {"loss_weights", 'l'},  {"beta", 'd'},
        {"label_smoothing", 'd'}, {"discopop_tau", 'd'},  {"ref_model_mixup_alpha", 'd'},
        {"f_divergence_type", 's'}, {"f_alpha_divergence_coef", 'd'}, {"ld_alpha", 'd'},
        {"ref_model_sync_steps", 'i'}, {"learning_rate", 'd'}, {"lr_scheduler", 's'}, {"warmup_steps", 'i'},
        {"warmup_ratio", 'd'},  {"batch_size", 'i'},      {"grad_accum", 'i'},    {"max_grad_norm", 'd'},
        {"weight_decay", 'd'},  {"adam_beta1", 'd'},      {"adam_beta2", 'd'},    {"adam_epsilon", 'd'},
        {"epochs", 'd'},        {"max_steps", 'i'},       {"seed", 'i'},          {"max_length", 'i'},
        {"truncation_mode", 's'}, {"max_row_bytes", 'i'}, {"chat_template", 's'}, {"save_steps", 'i'},    {"save_total_limit", 'i'}, {"eval_steps", 'i'},
        {"logging_steps", 'i'}, {"device", 's'},          {"dtype", 's'},         {"threads", 'i'},
        {"method", 's'},        {"lora_r", 'i'},          {"lora_alpha", 'd'},    {"lora_dropout", 'd'},
        {"lora_target_modules", 'l'}, {"base_model", 's'}, {"loss_scaling", 's'}, {"adamw_state_dtype", 's'}, {"loss_scale_init", 'd'},
        {"loss_scale_growth_interval", 'i'}, {"tf32", 'b'}, {"ddp_timeout", 'i'}, {"zero_stage", 'i'},
    };
    return kinds;
}

nlohmann::json toJsonValue(const std::string &key, char kind, const std::string &text)
{
    try {
        size_t used = 0;
        switch (kind) {
        case 'd': {
            double v = std::stod(text, &used);
            if (used != text.size())
                break;
            return v;
        }
        case 'i': {
            long long v = std::stoll(text, &used);
            if (used != text.size())
                break;
            return v;
        }
        case 'b':
            if (text == "true" || text == "1" || text == "on")
                return true;
            if (text == "false" || text == "0" || text == "off")
                return false;
            break;
        default:
            return text;
        }
    } catch (const std::exception &) {
    }
    std::string flag = key;
    for (auto &c : flag)
        if (c == '_')
            c = '-';
    throw dpo::Error("option --" + flag + ": '" + text + "' is not a valid "
        + (kind == 'b' ? "switch (use true or false)" : "number"));
}

// Tells the extensions' hooks how the run ended, "failed" when training throws.
struct HooksEnd {
    const std::vector<dpocli::TrainRunHooks> &hooks;
    std::string status = "failed";
    ~HooksEnd()
    {
        for (const auto &h : hooks)
            if (h.afterTraining)
                h.afterTraining(status);
    }
};

void addTrainCommand(CLI::App &app, const std::string &name, dpo::TrainingMode mode)
{
    auto args = std::make_shared<TrainArgs>();
    auto *cmd = app.add_subcommand(name, mode == dpo::TrainingMode::Dpo
                                             ? "Fine-tune a model with DPO on preference pairs (JSONL)"
                                             : "Supervised fine-tuning on prompt/completion or text rows (JSONL)");
    cmd->add_option("--config", args->config, "JSON file with the same keys as the options (flags override it)");
    cmd->add_option("--nproc", args->nproc,
                        "Data-parallel ranks to start on this machine (torchrun's --nproc-per-node; default 1). "
                        "Under torchrun or Slurm leave it out: RANK, WORLD_SIZE, MASTER_ADDR... are read")
            ->check(CLI::Range(1, 1024));
    for (const auto &[key, kind] : optionKinds()) {
        std::string flag = "--" + key;
        for (auto &c : flag)
            if (c == '_')
                c = '-';
        const auto help = optionHelp().find(key);
        cmd->add_option_function<std::string>(
            flag, [args, key = key](const std::string &v) { args->values[key] = v; },
            help != optionHelp().end() ? help->second : "see TrainConfig (" + key + ")");
    }
    for (const std::string key : {"precompute_ref", "reference_free", "sync_ref_model", "resume", "no_shuffle",
             "no_share_prompt", "use_weighting", "gradient_checkpointing", "padding_free"}) {
        std::string flag = "--" + key;
        for (auto &c : flag)
            if (c == '_')
                c = '-';
        cmd->add_flag_function(flag, [args, key](int64_t) { args->flags[key] = true; });
    }
    cmd->add_flag_function("--lora", [args](int64_t) { args->flags["lora"] = true; }, "Same as --method lora");
    cmd->add_flag_function("--use-rslora", [args](int64_t) { args->flags["use_rslora"] = true; },
        "rsLoRA: scale the adapters by alpha/sqrt(r) instead of alpha/r");
    cmd->add_flag_function("--merge-final", [args](int64_t) { args->flags["merge_final"] = true; },
        "With LoRA, also write final-merged/: the base with the adapter merged in (HF layout, the base's dtype)");
    if (mode == dpo::TrainingMode::Dpo)
        for (const auto &ext : dpocli::trainExtensions())
            ext.addOptions(cmd);
    cmd->callback([args, mode]() {
        dpo::TrainConfig config;
        if (!args->config.empty())
            config = dpo::TrainConfig::fromFile(args->config);
        nlohmann::json overrides = nlohmann::json::object();
        for (const auto &[key, text] : args->values) {
            const char kind = optionKinds().at(key);
            if (kind == 'l') {
                overrides[key] = text; // comma-separated, parsed by TrainConfig
            } else {
                overrides[key] = toJsonValue(key, kind, text);
            }
        }
        for (const auto &[key, on] : args->flags) {
            if (key == "no_shuffle")
                overrides["shuffle"] = !on;
            else if (key == "no_share_prompt")
                overrides["share_prompt"] = !on;
            else if (key == "lora")
                overrides["method"] = "lora";
            else
                overrides[key] = on;
        }
        config.update(overrides, "command line");
        if (mode == dpo::TrainingMode::Sft && !args->values.count("loss_type"))
            config.lossType = {"sft"};
        std::vector<dpocli::TrainRunHooks> hooks;
        if (mode == dpo::TrainingMode::Dpo)
            for (const auto &ext : dpocli::trainExtensions())
                hooks.push_back(ext.prepare(config));
        config.validate();
        const dpo::DistributedEnv dist = dpo::distributedEnvFromEnvironment();
        if (args->nproc > 1) {
            if (dist.distributed())
                throw dpo::Error("--nproc: this process is already rank " + std::to_string(dist.rank) + " of " +
                                 std::to_string(dist.worldSize) + " (RANK/WORLD_SIZE are set); leave --nproc out");
            std::fflush(stdout);
            std::exit(dpocli::launchLocalRanks(args->nproc, dpocli::withoutOption(dpocli::commandLine(), "--nproc"),
                                               int(std::min<int64_t>(config.ddpTimeout, 60))));
        }
        // --project in a distributed run: rank 0 exports the pairs (before it joins the group, so the other
        // ranks, which wait for it there, read complete files), records the run and its metrics.
        if (dist.distributed() && !dist.isMain())
            hooks.clear();
        HooksEnd end{hooks};
        for (const auto &h : hooks)
            if (h.beforeTraining)
                h.beforeTraining();

        dpo::DpoTrainer trainer(config, mode);
        const bool tty = isatty(STDERR_FILENO);
        const auto start = std::chrono::steady_clock::now();
        dpo::TrainerCallbacks cb;
        cb.onLog = [](const std::string &msg) { std::fprintf(stderr, "%s\n", msg.c_str()); };
        cb.onMetrics = [&](const nlohmann::json &m) {
            for (const auto &h : hooks)
                if (h.onMetrics)
                    h.onMetrics(m);
            if (!m.contains("loss"))
                return; // eval line
            const int64_t step = m.value("step", int64_t(0));
            const int64_t total = m.value("total_steps", int64_t(1));
            const double elapsed =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            const double eta = step > 0 ? elapsed / double(step) * double(total - step) : -1;
            const int width = 30;
            const int filled = int(double(width) * double(step) / double(std::max<int64_t>(1, total)));
            std::string bar(size_t(filled), '#');
            bar += std::string(size_t(width - filled), '.');
            char line[256];
            std::snprintf(line, sizeof line, "[%s] %lld/%lld loss %.4f acc %.2f %.0f tok/s elapsed %s eta %s",
                          bar.c_str(), static_cast<long long>(step), static_cast<long long>(total),
                          m.value("loss", 0.0), m.value("rewards/accuracies", 0.0),
                          m.value("tokens_per_second", 0.0), formatSeconds(elapsed).c_str(), formatSeconds(eta).c_str());
            if (tty)
                std::fprintf(stderr, "\r%s%s", line, step == total ? "\n" : "");
        };
        trainer.setCallbacks(cb);
        std::signal(SIGINT, onSignal);
        std::signal(SIGTERM, onSignal);
        dpo::TrainResult r = trainer.train(&g_stop);
        end.status = r.status;
        if (dist.isMain())
            dpocli::printJson({{"status", r.status},
                           {"global_step", r.globalStep},
                           {"total_steps", r.totalSteps},
                           {"last_checkpoint", r.lastCheckpoint},
                           {"final_model", r.finalModelDir},
                           {"output_dir", config.outputDir}});
    });
}

dpocli::CommandRegistrar regTrain([](CLI::App &app) { addTrainCommand(app, "train", dpo::TrainingMode::Dpo); });
dpocli::CommandRegistrar regSft([](CLI::App &app) { addTrainCommand(app, "sft", dpo::TrainingMode::Sft); });

} // namespace
