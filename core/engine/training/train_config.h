// TrainConfig: every option of a DPO (or SFT) run, in one documented struct. The JSON form uses the
// dpo-cli flag names with '_' for '-' (e.g. "learning_rate", "loss_type"); `dpo-cli train --config`
// and the GUI's presets read and write exactly this JSON. Defaults follow TRL's DPOConfig where TRL
// has one (beta 0.1, max_grad_norm 1.0, linear schedule, lr 1e-6, max_length 1024).
#pragma once

#include "engine/training/loss_config.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dpo {

struct LoraConfig; // engine/models/lora.h (kept out of this header: it pulls in libtorch)

struct TrainConfig {
    // Paths
    std::string model;       // policy model dir (HF layout)
    std::string refModel;    // reference model dir; empty = same as model
    std::string dataset;     // JSONL preference rows (or SFT rows for sft)
    std::string evalDataset; // optional
    std::string outputDir;

    // DPO
    std::vector<std::string> lossType{"sigmoid"};
    std::vector<double> lossWeights; // empty = all 1
    double beta = 0.1;
    double labelSmoothing = 0.0; // robust, exo_pair, aot, aot_unpaired only (TRL 1.x)
    double discopopTau = 0.05;
    std::string fDivergenceType = "reverse_kl"; // reverse_kl | forward_kl | js_divergence | alpha_divergence
    double fAlphaDivergenceCoef = 0.5;          // α of alpha_divergence
    bool useWeighting = false;                  // WPO pair weights
    std::optional<double> ldAlpha;              // LD-DPO α in [0, 1]; unset (JSON null) = off
    bool precomputeRef = false;  // reference log-probs computed once and cached on disk
    bool referenceFree = false;  // reference log-probs = 0
    bool syncRefModel = false;   // TR-DPO
    double refModelMixupAlpha = 0.6;
    int64_t refModelSyncSteps = 512;
    // Chosen and rejected share their prompt: run it once per pair (sharedPromptLogps). Same numbers up
    // to float rounding; off to measure or to compare with the concatenated batch TRL runs. CPU only for
    // now: on CUDA the concatenated batch is used (see DpoTrainer::useSharedPrompt).
    bool sharePrompt = true;

    // Method: "full" trains every weight; "lora" trains low-rank adapters (PEFT's LoRA) on frozen base
    // weights, the reference being the same model with adapters off unless ref_model is given.
    // A PEFT adapter folder as `model` continues training that adapter (its r, alpha, targets win).
    std::string method = "full"; // full | lora  (JSON also accepts "use_lora": true)
    int64_t loraR = 8;
    double loraAlpha = 16.0;
    double loraDropout = 0.0;
    // Module names (PEFT's suffix match), {"all-linear"}, or empty = the attention and MLP projections.
    std::vector<std::string> loraTargetModules;
    bool useRslora = false;    // scaling alpha / sqrt(r) instead of alpha / r
    bool mergeFinal = false;   // also write final-merged/: the base with W + s·B·A, in the base's dtype
    std::string baseModel;     // base folder of an adapter `model` (default: its base_model_name_or_path)
    bool useLora() const { return method == "lora"; }

    // Optimisation
    double learningRate = 1e-6;
    // constant (no warmup, as HF's get_constant_schedule) | constant_with_warmup | linear | cosine
    std::string lrScheduler = "linear";
    int64_t warmupSteps = 0;
    double warmupRatio = 0.0; // used when warmupSteps == 0
    int64_t batchSize = 8;    // pairs per micro-batch
    int64_t gradAccum = 1;
    double maxGradNorm = 1.0; // 0 = no clipping
    double weightDecay = 0.0; // not applied to biases and norm weights (HF Trainer's rule)
    double adamBeta1 = 0.9;
    double adamBeta2 = 0.999;
    double adamEpsilon = 1e-8;
    double epochs = 1.0;
    int64_t maxSteps = 0; // > 0 overrides epochs
    uint64_t seed = 42;
    bool shuffle = true;

    // Data
    int64_t maxLength = 1024; // 0 = no truncation
    std::string truncationMode = "keep_start"; // keep_start | keep_end
    // Jinja chat template file for conversational rows (and generation); empty = the model's own.
    std::string chatTemplate;
    // Longest dataset row (and text field) accepted, in bytes; 0 = the default (8 MiB per row, 4 MiB
    // per field, or DPO_MAX_ROW_BYTES / DPO_MAX_FIELD_BYTES). See PreferenceDataLimits.
    int64_t maxRowBytes = 0;

    // Checkpoints, evaluation, logging
    int64_t saveSteps = 500; // 0 = only at the end
    int64_t saveTotalLimit = 0; // 0 = keep all checkpoints
    int64_t evalSteps = 0;   // 0 = only at the end (when an eval dataset is given)
    int64_t loggingSteps = 1;
    bool resume = false;

    // Hardware
    std::string device = "auto"; // cpu | cuda | cuda:N | auto
    // auto: bfloat16 on a CUDA device that computes in it, else float32. float16 trains only on CUDA,
    // with dynamic loss scaling (CPU libtorch has no float16 matmul).
    std::string dtype = "auto"; // auto | float32 | bfloat16 | float16
    // Loss scaling (torch.amp.GradScaler's rule, see grad_scaler.h): auto = dynamic for float16, none
    // otherwise; dynamic forces it on (any dtype; exact in float32, where it changes nothing).
    std::string lossScaling = "auto"; // auto | dynamic | none
    double lossScaleInit = 65536.0;
    int64_t lossScaleGrowthInterval = 2000;
    bool tf32 = true; // CUDA: TF32 tensor cores for float32 matmuls (torch's "high" matmul precision)
    // AdamW's state: float32 moments and a float32 master copy of 16-bit weights (float32), or moments
    // in the weights' dtype and the update applied to the weights themselves (weights: torch.optim.AdamW
    // on a model loaded in bfloat16, as TRL runs it; 8 bytes per parameter less). Not with float16
    // weights (GradScaler does not unscale float16 gradients).
    std::string adamwStateDtype = "float32"; // float32 | weights
    // Recompute each decoder layer's activations in backward instead of keeping them (HF's
    // gradient_checkpointing): less memory, one more forward per step, the same gradients. Applies to
    // the concatenated batch and padding-free rows; it turns the shared prompt off (its cache keeps
    // every layer's activations).
    bool gradientCheckpointing = false;
    // TRL's padding_free: each micro-batch's sequences packed into one row with no padding, positions
    // restarting per sequence and attention kept inside each sequence (one flash varlen call per layer
    // on CUDA when the build has it, else per sequence: packed_attention.h). Replaces the
    // shared-prompt layout when on. Same log-probs and gradients as the padded batch; not with ld_alpha.
    bool paddingFree = false;
    int threads = 0; // 0 = all cores
    // Distributed runs (torchrun's variables or `dpo-cli train --nproc`, see distributed/communicator.h):
    // seconds a rank waits for the others at a collective before the run fails (HF's ddp_timeout).
    int64_t ddpTimeout = 1800;
    // 1: ZeRO stage 1, each rank keeps the AdamW state (moments, float32 master weights) of its shard of
    // the parameters only and sends the parameters it updated to the others; 0: every rank keeps all.
    int64_t zeroStage = 0;

    // JSON with the keys above (snake_case). Unknown keys are an error naming the key, so a typo in
    // a preset never silently falls back to a default.
    static TrainConfig fromJson(const nlohmann::json &j, const std::string &source);
    static TrainConfig fromFile(const std::string &path);
    // Applies the keys present in j over this config.
    void update(const nlohmann::json &j, const std::string &source);
    nlohmann::json toJson() const;
    // Throws dpo::Error naming the first invalid option.
    void validate(bool requireDataset = true) const;
    // The loss part of this config (loss_type, loss_weights, beta, label_smoothing, discopop_tau).
    LossConfig lossConfig() const;
    // The LoRA part (lora_r, lora_alpha, lora_dropout, lora_target_modules, use_rslora).
    LoraConfig loraConfig() const;
};

} // namespace dpo
