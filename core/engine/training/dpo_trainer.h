// DpoTrainer: the DPO (and SFT) training recipe — setup, train, save, cleanup — driven by one
// TrainConfig. It is what dpo-cli train/sft and the GUI's TrainingWorker run, shaped like TRL:
//
//     auto model = dpo::loadCausalLM("my-model");
//     auto tokenizer = dpo::loadTokenizer("my-model");
//     dpo::TrainConfig args;  args.beta = 0.1;  args.outputDir = "out";
//     dpo::DpoTrainer trainer(model, std::move(tokenizer), args, dpo::readPreferenceJsonl("pairs.jsonl"));
//     trainer.train();
//     trainer.savePretrained("out/final");
//
// Run directory (outputDir):
//   metrics.jsonl            one JSON object per optimizer step (TRL's metric names) and per eval
//   train_config.json        the effective config
//   checkpoint-N/            HF model layout + trainer_state.json + optimizer.safetensors
//                            (+ ref_model.safetensors with TR-DPO sync). Written as checkpoint-N.tmp
//                            and renamed only when complete, so a directory named checkpoint-N is
//                            always whole.
//   final/                   the trained model, HF layout (transformers loads it unchanged)
//   With method lora, checkpoint-N/ and final/ hold a PEFT adapter (adapter_config.json,
//   adapter_model.safetensors, tokenizer files) instead of the model files; merge_final also writes
//   final-merged/ (the base with the adapter merged in, HF layout, the base's dtype).
//   ref_cache/               precomputed reference log-probs keyed by reference model + data
//
// Determinism: the only randomness is the data order, a permutation drawn from (seed, epoch), so a
// resumed run replays exactly the uninterrupted trajectory on CPU. Dropout is always off.
// LoRA (method lora): only the adapter tensors have gradients and AdamW state, the base weights stay
// frozen in the run's dtype; the reference is the policy with its adapters off (no second model)
// unless ref_model is given. TR-DPO with LoRA needs an explicit full ref_model.
// Not done here: chat templates (see preference_data.h), multi-GPU, QLoRA.
#pragma once

#include "engine/training/adamw.h"
#include "engine/models/causal_lm.h"
#include "engine/training/dpo_loss.h"
#include "engine/training/grad_accumulator.h"
#include "engine/training/grad_scaler.h"
#include "engine/data/preference_data.h"
#include "engine/tokenizers/tokenizer.h"
#include "engine/training/run_folder.h" // latestCheckpoint, removeStaleCheckpointTemps
#include "engine/training/train_config.h"

#include <nlohmann/json.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace dpo {

enum class TrainingMode { Dpo, Sft };

struct TrainerCallbacks {
    // Called after every optimizer step (and every evaluation, keys prefixed "eval_") with the
    // metrics written to metrics.jsonl: step, epoch, loss, rewards/..., grad_norm, learning_rate, ...
    std::function<void(const nlohmann::json &metrics)> onMetrics;
    // Human-readable progress and notices (loading, checkpoint saved, resumed from ...).
    std::function<void(const std::string &message)> onLog;
};

struct TrainResult {
    std::string status;        // "completed" or "stopped"
    int64_t globalStep = 0;
    int64_t totalSteps = 0;
    std::string lastCheckpoint; // empty when none was written
    std::string finalModelDir;  // set when completed
};

class Communicator;

class DpoTrainer {
public:
    // Recipe form: everything (models, tokenizer, data) is loaded from the paths in `config` by setup().
    explicit DpoTrainer(TrainConfig config, TrainingMode mode = TrainingMode::Dpo);
    // Object form (the seed's API). `ref` = nullptr: a frozen copy of `model` (unless reference-free
    // or precompute_ref). Rows are tokenized with `tokenizer`.
    DpoTrainer(std::shared_ptr<CausalLM> model, std::shared_ptr<Tokenizer> tokenizer, TrainConfig config,
               std::vector<PreferenceRow> trainRows, std::shared_ptr<CausalLM> ref = nullptr,
               std::vector<PreferenceRow> evalRows = {});
    ~DpoTrainer();

    void setCallbacks(TrainerCallbacks callbacks) { m_callbacks = std::move(callbacks); }

    // Loads and validates everything; called by train() when not called before. Throws dpo::Error.
    void setup();
    // Runs to the end (or until *stop becomes true: then a checkpoint is saved and status is
    // "stopped"). With config.resume, continues from the newest complete checkpoint in outputDir.
    // A NaN/Inf loss or gradient throws dpo::Error naming the step; checkpoints already written stay.
    TrainResult train(const std::atomic<bool> *stop = nullptr);
    // Evaluates the eval rows (no grad); metrics prefixed "eval_". Empty when there is no eval set.
    nlohmann::json evaluate();
    void savePretrained(const std::string &dir);

    const TrainConfig &config() const { return m_config; }
    int64_t totalSteps() const { return m_totalSteps; }
    int64_t globalStep() const { return m_globalStep; }
    // Device-to-host reads of training metrics so far: one per logging step, plus one before each
    // checkpoint or evaluation that does not follow a log (with float16 loss scaling or several
    // ranks, one per step as well). Nothing else in a step reads the device.
    int64_t metricReads() const { return m_metricReads; }
    std::shared_ptr<CausalLM> model() const { return m_policy; }


private:
    struct Example;   // tokenized sequences + cached reference log-probs
    struct MicroBatchResult;

    void loadData();
    void computeSchedule();
    void precomputeReference();
    MicroBatchResult runMicroBatch(const std::vector<size_t> &indices, const std::vector<Example> &examples,
                                   bool training, double lossScale);
    std::vector<size_t> epochOrder(int64_t epoch) const;
    std::vector<size_t> microBatchIndices(int64_t microBatch) const;
    void saveCheckpoint();
    void saveChatTemplate(const std::string &dir) const;
    void restoreCheckpoint(const std::string &dir);
    void appendMetrics(const nlohmann::json &m);
    void truncateMetricsAfter(int64_t step);
    void syncReference();
    bool useSharedPrompt() const;
    void log(const std::string &message);
    // Distributed runs: ranks and files. Rank 0 alone writes (metrics, checkpoints, the final model).
    int worldSize() const;
    int rank() const;
    bool isMainRank() const { return rank() == 0; }
    void averageAcrossRanks(std::vector<torch::Tensor> &grads, std::map<std::string, double> &metrics,
                            int64_t &tokens);
    // ZeRO-1: the parameters each rank updated, sent to the others; the whole optimizer state,
    // gathered for a checkpoint (every rank takes part).
    void broadcastShardedParameters();
    std::map<std::string, torch::Tensor> gatherOptimizerState();

    TrainConfig m_config;
    TrainingMode m_mode;
    TrainerCallbacks m_callbacks;
    bool m_setupDone = false;

    torch::Device m_device{torch::kCPU};
    torch::ScalarType m_dtype = torch::kFloat32;
    std::shared_ptr<CausalLM> m_policy;
    std::shared_ptr<CausalLM> m_ref;
    std::shared_ptr<Tokenizer> m_tokenizer;
    std::string m_tokenizerDir;
    bool m_policyInMemory = false; // object form: the policy was handed over, not loaded by setup()
    std::string m_refDir;          // where the reference was loaded from; empty for a copy of the policy
    std::vector<PreferenceRow> m_trainRows, m_evalRows;
    std::vector<Example> m_train, m_eval;
    LossConfig m_loss;
    std::unique_ptr<AdamW> m_optimizer;
    GradScaler m_scaler; // enabled for float16 (loss_scaling auto) or loss_scaling dynamic
    // What the optimizer trains: every policy parameter, or (LoRA) only the adapter tensors.
    std::vector<std::pair<std::string, torch::Tensor>> m_trainable;
    GradAccumulator m_gradSums; // m_trainable's gradients over a step's micro-batches (float32 for bf16/f16)
    bool m_refIsBase = false; // LoRA: the reference is m_policy with its adapters off

    int64_t m_microBatchesPerEpoch = 0;
    int64_t m_stepsPerEpoch = 0;
    int64_t m_totalSteps = 0;
    int64_t m_warmupSteps = 0;
    int64_t m_globalStep = 0;
    int64_t m_numTokens = 0;
    int64_t m_metricReads = 0;
    std::string m_lastCheckpoint;
    // torchrun's variables found by setup(); null with one process.
    std::unique_ptr<Communicator> m_comm;
    // ZeRO-1: the rank whose AdamW updates m_trainable[i]; empty when the state is not sharded.
    std::vector<int> m_owner;
};

} // namespace dpo
