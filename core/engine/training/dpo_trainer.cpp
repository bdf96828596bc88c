#include "engine/training/dpo_trainer.h"

#include "engine/models/packed_attention.h"

#include "engine/distributed/communicator.h"
#include "engine/training/run_folder.h"

#include "engine/chat/chat_template.h"

#include "engine/error.h"
#include "engine/training/logprobs.h"
#include "engine/training/lr_schedule.h"
#include "engine/runtime.h"
#include "engine/io/json_limits.h"
#include "engine/io/jsonl_reader.h"
#include "engine/io/safetensors.h"
#include "engine/models/adapter_io.h"
#include "engine/models/lora.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace dpo {

struct DpoTrainer::Example {
    TokenizedPair pair;
    // Reference summed log-probs when precomputed (NaN = not computed).
    double refChosen = std::nan("");
    double refRejected = std::nan("");
};

// A micro-batch's metrics stay on the device (names[i] <-> values[i], "loss" first) until a logging
// step reads them: on a GPU a read is a host synchronisation.
struct DpoTrainer::MicroBatchResult {
    std::vector<std::string> names;
    torch::Tensor values; // [names.size()] float32, detached
    torch::Tensor lossFinite; // bool scalar
    int64_t pairs = 0;
    int64_t tokens = 0;
};

namespace {

// Writes `text` to `path` through a temporary file, fsync and rename: a crash leaves the old file or
// the new one, never half of one.
void writeFileAtomically(const std::string &path, const std::string &text)
{
    const std::string tmp = path + ".tmp";
    {
        std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
        f << text;
        f.flush();
        if (!f) {
            std::error_code ec;
            fs::remove(tmp, ec);
            throw Error(path + ": write failed (disk full or not writable)");
        }
    }
    int fd = ::open(tmp.c_str(), O_RDONLY);
    if (fd >= 0) {
        ::fsync(fd);
        ::close(fd);
    }
    std::error_code ec;
    fs::rename(tmp, path, ec);
    if (ec)
        throw Error(path + ": cannot rename into place: " + ec.message());
}

} // namespace

namespace {

uint64_t fnv1a(uint64_t h, const void *data, size_t n)
{
    const auto *p = static_cast<const unsigned char *>(data);
    for (size_t i = 0; i < n; ++i) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}
uint64_t fnv1a(uint64_t h, const std::string &s) { return fnv1a(h, s.data(), s.size()); }

std::string readWholeFile(const std::string &path)
{
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// SFT rows: {"text"} (the whole text is the completion), {"prompt","completion"}, or a preference
// row (its chosen completion is used).
std::vector<PreferenceRow> readSftJsonl(const std::string &path, const PreferenceDataLimits &limits)
{
    JsonlReader lines(path, limits.maxRowBytes, "dataset file");
    std::vector<PreferenceRow> rows;
    while (lines.next()) {
        const nlohmann::json j = lines.object();
        const std::string at = lines.where();
        auto str = [&](const char *key) -> std::string {
            const auto &v = j.at(key);
            if (!v.is_string())
                throw Error(at + ": field '" + key + "' must be a string");
            return v.get<std::string>();
        };
        PreferenceRow row;
        row.line = lines.line();
        if (j.contains("text")) {
            row.chosen = str("text");
        } else if (j.contains("completion")) {
            row.prompt = j.contains("prompt") ? str("prompt") : std::string();
            row.chosen = str("completion");
        } else if (j.contains("chosen") && j.at("chosen").is_string()) {
            row.prompt = j.contains("prompt") ? str("prompt") : std::string();
            row.chosen = str("chosen");
        } else {
            throw Error(at + ": an SFT row needs \"text\", or \"prompt\" and \"completion\", or \"chosen\"");
        }
        if (row.chosen.empty())
            throw Error(at + ": the completion text is empty");
        for (const std::string *t : {&row.prompt, &row.chosen})
            if (int64_t(t->size()) > limits.maxFieldBytes)
                throw Error(at + ": a text of " + std::to_string(t->size()) + " bytes is above the limit of "
                    + std::to_string(limits.maxFieldBytes) + " (raise it with --max-row-bytes or DPO_MAX_FIELD_BYTES)");
        row.rejected = row.chosen;
        rows.push_back(std::move(row));
    }
    if (rows.empty())
        throw Error(path + ": the dataset has no rows");
    return rows;
}

// unscale: 1 / the loss scale, applied per tensor in float32 before the norm (scaled gradients would
// overflow float32 squares long before they overflow themselves). A float32 scalar on the gradients'
// device (read it only when needed: on a GPU that is a synchronisation).
torch::Tensor totalGradNorm(const std::vector<torch::Tensor> &grads, const torch::Device &device, double unscale = 1.0)
{
    std::vector<torch::Tensor> norms;
    for (const torch::Tensor &g : grads)
        if (g.defined())
            norms.push_back(unscale == 1.0 ? g.to(torch::kFloat32).norm() : (g.to(torch::kFloat32) * unscale).norm());
    if (norms.empty())
        return torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat32).device(device));
    return torch::stack(norms).norm();
}

// names[i] -> values[i] with one device-to-host copy.
std::map<std::string, double> readMetricValues(const std::vector<std::string> &names, const torch::Tensor &values)
{
    const auto v = values.to(torch::kCPU, torch::kDouble).contiguous();
    std::map<std::string, double> out;
    for (size_t i = 0; i < names.size(); ++i)
        out[names[i]] = v.data_ptr<double>()[i];
    return out;
}

} // namespace

DpoTrainer::DpoTrainer(TrainConfig config, TrainingMode mode)
    : m_config(std::move(config))
    , m_mode(mode)
{
}

DpoTrainer::DpoTrainer(std::shared_ptr<CausalLM> model, std::shared_ptr<Tokenizer> tokenizer, TrainConfig config,
                       std::vector<PreferenceRow> trainRows, std::shared_ptr<CausalLM> ref,
                       std::vector<PreferenceRow> evalRows)
    : m_config(std::move(config))
    , m_mode(TrainingMode::Dpo)
    , m_policy(std::move(model))
    , m_ref(std::move(ref))
    , m_tokenizer(std::move(tokenizer))
    , m_trainRows(std::move(trainRows))
    , m_evalRows(std::move(evalRows))
{
    if (!m_policy || !m_tokenizer)
        throw Error("DpoTrainer: a model and a tokenizer are required");
    m_policyInMemory = true;
    m_tokenizerDir = m_tokenizer->sourceDir();
    if (m_config.model.empty())
        m_config.model = m_tokenizerDir;
    if (m_trainRows.empty())
        throw Error("DpoTrainer: the training dataset is empty");
}

DpoTrainer::~DpoTrainer() = default;

void DpoTrainer::log(const std::string &message)
{
    if (!isMainRank())
        return; // rank 0 speaks for the run; the others' failures surface as errors
    if (m_callbacks.onLog)
        m_callbacks.onLog(message);
}

int DpoTrainer::worldSize() const { return m_comm ? m_comm->worldSize() : 1; }
int DpoTrainer::rank() const { return m_comm ? m_comm->rank() : 0; }

// DDP's rule: gradients averaged over the ranks (each rank's loss is the mean over its own pairs, so
// the average is the gradient of the mean over the global batch), then clipped and applied by each
// rank alike. Metrics are averaged as TRL's gather + mean does; tokens are summed.
void DpoTrainer::averageAcrossRanks(std::vector<torch::Tensor> &grads, std::map<std::string, double> &metrics,
                                    int64_t &tokens)
{
    std::vector<double> values; // which parameters got a gradient here, then the metrics and tokens
    for (size_t i = 0; i < grads.size(); ++i) {
        values.push_back(grads[i].defined() ? 1.0 : 0.0);
        if (!grads[i].defined()) // no gradient here may still be one elsewhere
            grads[i] = torch::zeros_like(m_trainable[i].second, torch::kFloat32);
    }
    m_comm->averageInPlace(grads);
    for (const auto &[k, v] : metrics)
        values.push_back(v);
    values.push_back(double(tokens));
    values.push_back(double(metrics.size())); // every rank must report the same metrics
    const std::vector<double> total = m_comm->sum(values);
    if (total.back() != double(metrics.size() * size_t(worldSize())))
        throw Error("distributed run: the ranks computed different metrics at step " + std::to_string(m_globalStep + 1));
    size_t i = 0;
    for (auto &g : grads)
        if (total[i++] == 0) // no rank computed one: AdamW skips it, as it does in a single process
            g = torch::Tensor();
    for (auto &[k, v] : metrics)
        v = total[i++] / double(worldSize());
    tokens = int64_t(total[i]);
}

void DpoTrainer::broadcastShardedParameters()
{
    for (int owner = 0; owner < worldSize(); ++owner) {
        std::vector<torch::Tensor> params;
        for (size_t i = 0; i < m_trainable.size(); ++i)
            if (m_owner[i] == owner)
                params.push_back(m_trainable[i].second);
        m_comm->broadcastInPlace(params, owner);
    }
}

std::map<std::string, torch::Tensor> DpoTrainer::gatherOptimizerState()
{
    // AdamW's names and dtypes (AdamW::stateLayout), each the parameter's shape.
    const std::map<std::string, torch::Tensor> mine = m_optimizer->stateTensors();
    std::map<std::string, torch::Tensor> all;
    for (int owner = 0; owner < worldSize(); ++owner) {
        std::vector<torch::Tensor> list;
        for (size_t i = 0; i < m_trainable.size(); ++i) {
            if (m_owner[i] != owner)
                continue;
            const auto &[name, p] = m_trainable[i];
            for (const auto &[key, dtype] : m_optimizer->stateLayout(name, p)) {
                torch::Tensor t = owner == rank() ? mine.at(key).clone() : torch::empty(p.sizes(), p.options().dtype(dtype));
                all[key] = t;
                list.push_back(t);
            }
        }
        m_comm->broadcastInPlace(list, owner);
    }
    return all;
}

void DpoTrainer::setup()
{
    if (m_setupDone)
        return;
    const bool adapterModel = !m_policy && isAdapterDir(m_config.model);
    if (adapterModel && !m_config.useLora()) {
        log(m_config.model + " is a LoRA adapter: continuing to train it (method lora)");
        m_config.method = "lora";
    }
    m_config.validate(/*requireDataset=*/m_trainRows.empty());
    if (m_mode == TrainingMode::Dpo) {
        m_loss = m_config.lossConfig();
        m_loss.validate();
        if (m_config.syncRefModel && (m_config.precomputeRef || m_config.referenceFree))
            throw Error("option 'sync_ref_model': needs a live reference model (not precompute_ref or reference_free)");
    }
    if (!m_config.baseModel.empty() && !adapterModel && !m_policyInMemory)
        throw Error("option 'base_model': only used when 'model' is a LoRA adapter folder (" + m_config.model +
                    " is a full model)");
    if (m_config.useLora() && m_mode == TrainingMode::Dpo && m_config.syncRefModel && m_config.refModel.empty())
        throw Error("option 'sync_ref_model': with method lora the reference is the policy with its adapters off, "
                    "which TR-DPO cannot move; give a separate ref_model (a full copy) to synchronise");
    initRuntime(m_config.threads);
    m_device = parseDevice(m_config.device);
    if (const DistributedEnv env = distributedEnvFromEnvironment(); env.distributed()) {
        // One GPU per local rank, as torchrun intends (an explicit cuda:N is kept).
        if (m_device.is_cuda() && !m_device.has_index())
            m_device = torch::Device(torch::kCUDA, int8_t(env.localRank));
        m_comm = Communicator::connect(env, m_device, std::chrono::seconds(m_config.ddpTimeout));
        log("distributed: " + std::to_string(env.worldSize) + " ranks (" + std::to_string(env.localWorldSize) +
            " on this node), rendezvous at " + env.masterAddr + ":" + std::to_string(env.masterPort) +
            "; global batch " + std::to_string(m_config.batchSize * env.worldSize * m_config.gradAccum) +
            " pairs per step");
    }
    m_dtype = resolveDtype(m_config.dtype, m_device);
    if (m_dtype == torch::kFloat16 && !m_device.is_cuda())
        throw Error("option 'dtype': float16 trains only on CUDA (libtorch has no float16 matmul on the CPU); use "
                    "bfloat16 or float32 on " + m_device.str());
    if (m_config.dtype == "auto")
        log("dtype auto: " + dtypeName(m_dtype) + " on " + m_device.str());
    if (m_device.is_cuda())
        setAllowTf32(m_config.tf32);
    {
        GradScalerOptions so;
        so.initScale = m_config.lossScaleInit;
        so.growthInterval = m_config.lossScaleGrowthInterval;
        const bool scaling = m_config.lossScaling == "dynamic"
            || (m_config.lossScaling == "auto" && m_dtype == torch::kFloat16);
        m_scaler = GradScaler(scaling, so);
        if (scaling)
            log("dynamic loss scaling from " + std::to_string(so.initScale));
    }

    if (!m_policy) {
        log("loading model " + m_config.model);
        m_policy = loadCausalLM(m_config.model, m_device, m_dtype, m_config.baseModel);
        m_tokenizerDir = tokenizerDirFor(m_config.model, m_config.baseModel);
        m_tokenizer = std::shared_ptr<Tokenizer>(loadTokenizer(m_tokenizerDir).release());
    } else {
        m_policy->to(m_device, m_dtype);
        if (m_policy->lora) // Module::to does not see the adapter tensors
            for (auto &[name, t] : m_policy->lora->namedParameters())
                t.set_data(t.data().to(m_device));
    }
    checkTokenizerFitsModel(*m_tokenizer, m_policy->config().vocabSize, m_config.model);
    m_policy->gradientCheckpointing = m_config.gradientCheckpointing;
    if (m_config.gradientCheckpointing && m_config.sharePrompt && !m_config.paddingFree)
        log("gradient_checkpointing: each prompt is computed with its completions (the shared prompt's cache would "
            "keep every layer's activations)");
    m_policy->train();
    m_trainable.clear();
    if (m_policy->lora) {
        // Continuing an adapter: its own r, alpha, targets and scaling are the run's.
        const LoraConfig &have = m_policy->lora->config();
        m_config.method = "lora";
        m_config.loraR = have.r;
        m_config.loraAlpha = have.alpha;
        m_config.loraDropout = have.dropout;
        m_config.loraTargetModules = have.targetRegex.empty() ? have.targetModules
                                                              : std::vector<std::string>{have.targetRegex};
        m_config.useRslora = have.useRslora;
        for (auto &p : m_policy->parameters())
            p.set_requires_grad(false);
        for (auto &[name, t] : m_policy->lora->namedParameters())
            t.set_requires_grad(true);
    } else if (m_config.useLora()) {
        torch::manual_seed(m_config.seed); // the adapters' A initialisation
        auto adapter = LoraAdapter::attach(*m_policy, m_config.loraConfig());
        adapter->baseModelDir = m_policyInMemory ? std::string() : m_config.model;
        log("LoRA: r " + std::to_string(m_config.loraR) + ", scaling " + std::to_string(adapter->config().scaling()) +
            ", " + std::to_string(adapter->modulePaths().size()) + " layers, " +
            std::to_string(adapter->parameterCount()) + " trainable parameters of " +
            std::to_string(m_policy->parameterCount()) + " (base frozen)");
    } else {
        for (auto &p : m_policy->parameters())
            p.set_requires_grad(true);
    }
    if (m_policy->lora) {
        for (const auto &item : m_policy->lora->namedParameters())
            m_trainable.push_back(item);
    } else {
        for (const auto &item : m_policy->named_parameters())
            m_trainable.emplace_back(item.key(), item.value());
    }

    const bool needRef = m_mode == TrainingMode::Dpo && !m_config.referenceFree;
    // LoRA without ref_model: the reference is the policy itself with its adapters off (no second model).
    m_refIsBase = needRef && !m_ref && m_policy->lora && m_config.refModel.empty();
    if (m_refIsBase) {
        m_refDir = m_policy->lora->baseModelDir; // keys the precomputed cache ("" = hash the weights)
        log("reference: the policy with its LoRA adapters off");
    }
    if (needRef && !m_ref && !m_refIsBase) {
        // Object form (the policy was handed over in memory, maybe already changed): without
        // ref_model the reference is a frozen copy of that policy, not whatever m_config.model holds.
        const std::string refDir = !m_config.refModel.empty() ? m_config.refModel
                                   : m_policyInMemory         ? std::string()
                                                              : m_config.model;
        if (!refDir.empty()) {
            log("loading reference model " + refDir);
            m_ref = loadCausalLM(refDir, m_device, m_dtype);
            m_refDir = refDir;
            if (m_ref->lora && m_config.syncRefModel)
                throw Error("option 'sync_ref_model': the ref_model " + refDir +
                            " is a LoRA adapter; TR-DPO needs a full reference model (merge it first: dpo-cli "
                            "merge-adapter)");
        } else {
            // A copy of the policy, built in place (on the device, in the run's dtype, no random init).
            ModelBuild build;
            build.device = m_device;
            build.dtype = m_dtype;
            build.initialize = false;
            m_ref = createCausalLM(m_policy->config(), build);
            m_ref->to(m_device);
            m_ref->loadStateDict(m_policy->stateDict(), "policy");
        }
        if (m_ref->config().vocabSize != m_policy->config().vocabSize)
            throw Error("option 'ref_model': its vocabulary (" + std::to_string(m_ref->config().vocabSize) +
                        ") differs from the policy's (" + std::to_string(m_policy->config().vocabSize) + ")");
    }
    if (m_ref) {
        m_ref->eval();
        for (auto &p : m_ref->parameters())
            p.set_requires_grad(false);
    }

    loadData();
    computeSchedule();

    std::vector<std::pair<std::string, torch::Tensor>> named = m_trainable;
    if (m_config.zeroStage == 1 && worldSize() > 1) {
        // Contiguous shards of about equal size in parameter order (each parameter whole).
        int64_t total = 0, before = 0, mine = 0;
        for (const auto &[name, p] : m_trainable)
            total += p.numel();
        named.clear();
        for (const auto &[name, p] : m_trainable) {
            const int owner = int(std::min<int64_t>(worldSize() - 1, (2 * before + p.numel()) * worldSize() / (2 * total)));
            m_owner.push_back(owner);
            before += p.numel();
            if (owner == rank()) {
                named.emplace_back(name, p);
                mine += p.numel();
            }
        }
        log("ZeRO-1: the AdamW state is sharded across " + std::to_string(worldSize()) + " ranks (rank 0 holds " +
            std::to_string(mine) + " of " + std::to_string(total) + " parameters)");
    } else if (m_config.zeroStage == 1) {
        log("zero_stage 1: one rank, nothing to shard");
    }
    AdamWOptions opt;
    opt.lr = m_config.learningRate;
    opt.beta1 = m_config.adamBeta1;
    opt.beta2 = m_config.adamBeta2;
    opt.eps = m_config.adamEpsilon;
    opt.weightDecay = m_config.weightDecay;
    opt.float32State = m_config.adamwStateDtype == "float32";
    m_optimizer = std::make_unique<AdamW>(named, opt);
    std::vector<torch::Tensor> trainableTensors;
    for (const auto &[name, p] : m_trainable)
        trainableTensors.push_back(p);
    m_gradSums = GradAccumulator(trainableTensors);

    if (m_mode == TrainingMode::Dpo && m_config.precomputeRef)
        precomputeReference();
    m_setupDone = true;
}

void DpoTrainer::loadData()
{
    if (m_trainRows.empty()) {
        const PreferenceDataLimits limits = PreferenceDataLimits::withMaxRowBytes(m_config.maxRowBytes);
        m_trainRows = m_mode == TrainingMode::Sft ? readSftJsonl(m_config.dataset, limits)
                                                  : readPreferenceJsonl(m_config.dataset, limits);
        if (!m_config.evalDataset.empty())
            m_evalRows = m_mode == TrainingMode::Sft ? readSftJsonl(m_config.evalDataset, limits)
                                                      : readPreferenceJsonl(m_config.evalDataset, limits);
    }
    TruncationOptions trunc;
    trunc.maxLength = m_config.maxLength;
    trunc.mode = m_config.truncationMode;
    trunc.validate();
    // Conversational rows are rendered with the model's chat template (or chat_template).
    const bool conversational = std::any_of(m_trainRows.begin(), m_trainRows.end(),
                                    [](const PreferenceRow &r) { return r.isConversational(); })
        || std::any_of(m_evalRows.begin(), m_evalRows.end(), [](const PreferenceRow &r) { return r.isConversational(); });
    std::optional<ModelChatTemplate> chat;
    if (conversational || !m_config.chatTemplate.empty())
        chat = loadChatTemplateFor(m_tokenizerDir, m_config.chatTemplate);
    try {
        requireChatTemplate(m_trainRows, chat ? &*chat : nullptr, m_tokenizerDir);
    } catch (const Error &e) {
        throw Error(m_config.dataset.empty() ? e.what() : m_config.dataset + ": " + e.what());
    }
    try {
        requireChatTemplate(m_evalRows, chat ? &*chat : nullptr, m_tokenizerDir);
    } catch (const Error &e) {
        throw Error(m_config.evalDataset.empty() ? e.what() : m_config.evalDataset + ": " + e.what());
    }
    // TRL drops keep_start rows whose prompt fills max_length (DPO only; SFT has no such filter here).
    const bool dropFull = m_mode != TrainingMode::Sft;
    auto tokenize = [&](const std::vector<PreferenceRow> &rows, std::vector<Example> &out, const char *what,
                        const std::string &source) {
        out.clear();
        out.reserve(rows.size());
        TokenizationReport report;
        for (const auto &row : rows) {
            Example e;
            try {
                e.pair = tokenizePair(*m_tokenizer, row, trunc, chat ? &*chat : nullptr);
            } catch (const Error &err) {
                throw Error((source.empty() ? std::string(what) + " row" : source) + ":" + std::to_string(row.line)
                    + ": " + err.what());
            }
            ++report.rows;
            report.conversational += row.isConversational() ? 1 : 0;
            if (e.pair.promptMismatch)
                report.mismatchLines.push_back(row.line);
            if (dropFull && dropsFullyTruncated(e.pair, trunc)) {
                report.droppedLines.push_back(row.line);
                continue;
            }
            out.push_back(std::move(e));
        }
        if (!report.summary().empty())
            log(std::string(what) + " data: " + report.summary());
        if (!rows.empty() && out.empty())
            throw Error(std::string("every ") + what + " row was dropped: each prompt alone fills max_length ("
                + std::to_string(trunc.maxLength) + " tokens) with keep_start truncation; raise max_length");
    };
    tokenize(m_trainRows, m_train, "training", m_config.dataset);
    tokenize(m_evalRows, m_eval, "eval", m_config.evalDataset);
    log("dataset: " + std::to_string(m_train.size()) + " training rows" +
        (m_eval.empty() ? std::string() : ", " + std::to_string(m_eval.size()) + " eval rows") +
        (conversational ? " (conversational, chat template " + chat->origin + ")" : std::string()));
}

void DpoTrainer::computeSchedule()
{
    // A micro-batch is global: batch_size pairs on each of the world's ranks (TRL counts the same).
    const int64_t n = int64_t(m_train.size());
    const int64_t global = m_config.batchSize * worldSize();
    m_microBatchesPerEpoch = (n + global - 1) / global;
    m_stepsPerEpoch = std::max<int64_t>(1, (m_microBatchesPerEpoch + m_config.gradAccum - 1) / m_config.gradAccum);
    m_totalSteps = m_config.maxSteps > 0 ? m_config.maxSteps
                                         : std::max<int64_t>(1, int64_t(std::ceil(m_config.epochs * m_stepsPerEpoch)));
    m_warmupSteps = m_config.warmupSteps > 0 ? m_config.warmupSteps
                                             : int64_t(std::ceil(m_config.warmupRatio * double(m_totalSteps)));
}

std::vector<size_t> DpoTrainer::epochOrder(int64_t epoch) const
{
    std::vector<size_t> order(m_train.size());
    for (size_t i = 0; i < order.size(); ++i)
        order[i] = i;
    if (!m_config.shuffle)
        return order;
    // Fisher-Yates with our own draw (std::shuffle's algorithm is implementation-defined).
    std::mt19937_64 rng(m_config.seed * 1000003ull + uint64_t(epoch));
    for (size_t i = order.size(); i > 1; --i) {
        const size_t j = size_t(rng() % i);
        std::swap(order[i - 1], order[j]);
    }
    return order;
}

// Micro-batches of optimizer step s: step s of epoch s / stepsPerEpoch covers micro-batches
// [k*accum, min(mbPerEpoch, (k+1)*accum)) of that epoch's order. With W ranks a micro-batch is W
// consecutive batches of the order and rank r takes the r-th (accelerate's batch sharding); every rank
// gets a full batch, the last ones wrapping to the epoch's start (accelerate's even_batches).
std::vector<size_t> DpoTrainer::microBatchIndices(int64_t microBatch) const
{
    const int64_t epoch = microBatch / m_microBatchesPerEpoch;
    const int64_t pos = microBatch % m_microBatchesPerEpoch;
    const auto order = epochOrder(epoch);
    if (worldSize() > 1) {
        std::vector<size_t> out;
        const size_t first = size_t((pos * worldSize() + rank()) * m_config.batchSize);
        for (size_t k = 0; k < size_t(m_config.batchSize); ++k)
            out.push_back(order[(first + k) % order.size()]);
        return out;
    }
    const size_t begin = size_t(pos * m_config.batchSize);
    const size_t end = std::min(order.size(), size_t((pos + 1) * m_config.batchSize));
    return std::vector<size_t>(order.begin() + begin, order.begin() + end);
}

DpoTrainer::MicroBatchResult DpoTrainer::runMicroBatch(const std::vector<size_t> &indices,
                                                       const std::vector<Example> &examples, bool training,
                                                       double lossScale)
{
    MicroBatchResult r;
    r.pairs = int64_t(indices.size());
    const int64_t padId = m_tokenizer->padId() >= 0 ? m_tokenizer->padId() : 0;

    if (m_mode == TrainingMode::Sft) {
        std::vector<const ModelSequence *> seqs;
        for (size_t i : indices)
            seqs.push_back(&examples[i].pair.chosen);
        const PreferenceBatch batch = collateSequences(seqs, padId, m_device);
        r.tokens = batch.numTokens;
        // Collated batches are right-padded: no mask gives the same outputs at every real position and
        // spares the per-forward host read that tells right padding from left (attention_mask.cpp).
        auto lp = completionLogps(*m_policy, batch.inputIds, torch::Tensor(), batch.completionMask);
        torch::Tensor loss = sftLoss(lp.sum, lp.count).mean();
        if (training)
            (loss * lossScale).backward();
        r.names = { "loss" };
        r.values = loss.detach().to(torch::kFloat32).reshape({ 1 });
        r.lossFinite = torch::isfinite(loss.detach());
        return r;
    }

    std::vector<TokenizedPair> pairs;
    pairs.reserve(indices.size());
    for (size_t i : indices)
        pairs.push_back(examples[i].pair);
    // Chosen and rejected share their prompt: computed once per pair when every pair allows it.
    // padding_free packs the sequences instead.
    const std::optional<SharedPromptBatch> shared = useSharedPrompt() && !m_config.paddingFree
        ? collateSharedPrompt(pairs, padId, m_device)
        : std::nullopt;
    PreferenceBatch batch;
    PackedBatch packed;
    if (m_config.paddingFree)
        packed = collatePacked(pairs, m_device);
    else if (!shared)
        batch = collatePairs(pairs, padId, m_device);
    // TRL 1.x: token metrics and WPO weights from the policy's logits; LD-DPO sums for both models.
    LogpsOptions policyOptions;
    policyOptions.stats = true;
    policyOptions.ldAlpha = m_loss.ldAlpha;
    LogpsOptions refOptions;
    refOptions.ldAlpha = m_loss.ldAlpha;
    auto logps = [&](CausalLM &model, const LogpsOptions &options) {
        if (m_config.paddingFree)
            return packedLogps(model, packed, options);
        return shared ? sharedPromptLogps(model, *shared, options)
                      : completionLogps(model, batch.inputIds, torch::Tensor(), batch.completionMask, options); // right-padded
    };
    r.tokens = m_config.paddingFree ? packed.numTokens : shared ? shared->numTokens : batch.numTokens;
    const int64_t B = int64_t(pairs.size());

    CompletionLogps policy = logps(*m_policy, policyOptions);
    torch::Tensor refSum;
    if (m_config.referenceFree) {
        refSum = torch::zeros({2 * B}, torch::TensorOptions().dtype(torch::kFloat32).device(m_device));
    } else if (!std::isnan(examples[indices[0]].refChosen)) {
        std::vector<float> v(size_t(2 * B));
        for (int64_t i = 0; i < B; ++i) {
            v[size_t(i)] = float(examples[indices[size_t(i)]].refChosen);
            v[size_t(B + i)] = float(examples[indices[size_t(i)]].refRejected);
        }
        refSum = torch::tensor(v, torch::kFloat32).to(m_device);
    } else if (m_refIsBase) {
        torch::NoGradGuard noGrad;
        LoraDisabledScope adaptersOff(*m_policy);
        refSum = logps(*m_policy, refOptions).dpoSum();
    } else {
        torch::NoGradGuard noGrad;
        refSum = logps(*m_ref, refOptions).dpoSum();
    }
    DpoInputs in;
    in.policyChosen = policy.dpoSum().slice(0, 0, B);
    in.policyRejected = policy.dpoSum().slice(0, B, 2 * B);
    in.sftChosenSum = policy.sum.slice(0, 0, B);
    if (m_loss.useWeighting) {
        const auto w = policy.wpoWeight();
        in.chosenWeight = w.slice(0, 0, B);
        in.rejectedWeight = w.slice(0, B, 2 * B);
    }
    in.refChosen = refSum.slice(0, 0, B);
    in.refRejected = refSum.slice(0, B, 2 * B);
    in.chosenCount = policy.count.slice(0, 0, B);
    in.rejectedCount = policy.count.slice(0, B, 2 * B);
    DpoLossOutput out = computeDpoLoss(m_loss, in, /*readMetrics=*/false);
    if (training)
        (out.loss * lossScale).backward();
    r.names = { "loss" };
    r.names.insert(r.names.end(), out.metricNames.begin(), out.metricNames.end());
    r.names.insert(r.names.end(), trlTokenMetricNames().begin(), trlTokenMetricNames().end());
    const auto loss = out.loss.detach().to(torch::kFloat32).reshape({ 1 });
    r.values = torch::cat({ loss, out.metricValues.to(torch::kFloat32), trlTokenMetricValues(policy) });
    r.lossFinite = torch::isfinite(loss[0]);
    return r;
}

void DpoTrainer::precomputeReference()
{
    const std::string refDir = m_refDir.empty() ? std::string("(in-memory copy of the policy)") : m_refDir;
    // Key: the reference model's files (config text, weight file names, sizes, mtimes) — or, for a
    // reference copied from an in-memory policy, its weights' bytes — and every token id of the data
    // as tokenized (so max_length and truncation are part of it).
    uint64_t h = 1469598103934665603ull;
    if (!m_refDir.empty()) {
        h = fnv1a(h, readWholeFile((fs::path(m_refDir) / "config.json").string()));
        std::vector<fs::path> weightFiles;
        if (fs::is_directory(m_refDir))
            for (const auto &e : fs::directory_iterator(m_refDir))
                if (e.path().extension() == ".safetensors")
                    weightFiles.push_back(e.path());
        std::sort(weightFiles.begin(), weightFiles.end());
        for (const auto &p : weightFiles) {
            h = fnv1a(h, p.filename().string());
            const auto size = fs::file_size(p);
            const auto mtime = fs::last_write_time(p).time_since_epoch().count();
            h = fnv1a(h, &size, sizeof size);
            h = fnv1a(h, &mtime, sizeof mtime);
        }
    } else {
        for (const auto &[name, t] : (m_refIsBase ? m_policy : m_ref)->stateDict()) {
            const auto c = t.to(torch::kCPU).contiguous();
            h = fnv1a(h, name);
            h = fnv1a(h, c.data_ptr(), size_t(c.numel()) * c.element_size());
        }
    }
    h = fnv1a(h, dtypeName(m_dtype));
    // LD-DPO changes the reference sums (ld_alpha weighs the tokens beyond the shorter completion).
    LogpsOptions refOptions;
    refOptions.ldAlpha = m_loss.ldAlpha;
    if (m_loss.ldAlpha)
        h = fnv1a(h, "ld_alpha=" + std::to_string(*m_loss.ldAlpha));
    auto hashExamples = [&](const std::vector<Example> &ex) {
        for (const auto &e : ex) {
            for (const auto *s : {&e.pair.chosen, &e.pair.rejected}) {
                h = fnv1a(h, s->ids.data(), s->ids.size() * sizeof(int64_t));
                h = fnv1a(h, &s->promptLength, sizeof s->promptLength);
            }
        }
        h = fnv1a(h, "|");
    };
    hashExamples(m_train);
    hashExamples(m_eval);
    char key[17];
    std::snprintf(key, sizeof key, "%016llx", static_cast<unsigned long long>(h));
    const fs::path cacheDir = fs::path(m_config.outputDir) / "ref_cache";
    const fs::path cacheFile = cacheDir / (std::string(key) + ".safetensors");

    const size_t nTrain = m_train.size(), nEval = m_eval.size();
    torch::Tensor chosen, rejected;
    if (fs::exists(cacheFile)) {
        auto f = SafetensorsFile::open(cacheFile.string());
        chosen = f.tensor("chosen").clone();
        rejected = f.tensor("rejected").clone();
        if (chosen.numel() != int64_t(nTrain + nEval) || rejected.numel() != int64_t(nTrain + nEval))
            throw Error(cacheFile.string() + ": the cached reference log-probs do not match the dataset");
        log("reference log-probs loaded from " + cacheFile.string());
    } else {
        log("precomputing reference log-probs for " + std::to_string(nTrain + nEval) + " rows");
        std::vector<Example *> all;
        for (auto &e : m_train)
            all.push_back(&e);
        for (auto &e : m_eval)
            all.push_back(&e);
        chosen = torch::zeros({int64_t(all.size())}, torch::kFloat32);
        rejected = torch::zeros({int64_t(all.size())}, torch::kFloat32);
        torch::NoGradGuard noGrad;
        CausalLM &ref = m_refIsBase ? *m_policy : *m_ref;
        std::optional<LoraDisabledScope> adaptersOff; // the reference is the policy's base
        if (m_refIsBase)
            adaptersOff.emplace(*m_policy);
        const int64_t padId = m_tokenizer->padId() >= 0 ? m_tokenizer->padId() : 0;
        for (size_t begin = 0; begin < all.size(); begin += size_t(m_config.batchSize)) {
            const size_t end = std::min(all.size(), begin + size_t(m_config.batchSize));
            std::vector<TokenizedPair> pairs;
            for (size_t i = begin; i < end; ++i)
                pairs.push_back(all[i]->pair);
            const auto shared = useSharedPrompt() ? collateSharedPrompt(pairs, padId, m_device) : std::nullopt;
            torch::Tensor lp;
            if (shared) {
                lp = sharedPromptLogps(ref, *shared, refOptions).dpoSum().cpu();
            } else {
                auto batch = collatePairs(pairs, padId, m_device);
                lp = completionLogps(ref, batch.inputIds, batch.attentionMask, batch.completionMask, refOptions)
                         .dpoSum()
                         .cpu();
            }
            const int64_t B = int64_t(end - begin);
            chosen.slice(0, int64_t(begin), int64_t(end)).copy_(lp.slice(0, 0, B));
            rejected.slice(0, int64_t(begin), int64_t(end)).copy_(lp.slice(0, B, 2 * B));
        }
        if (isMainRank()) { // the other ranks computed the same numbers
            fs::create_directories(cacheDir);
            saveSafetensors(cacheFile.string(), {{"chosen", chosen}, {"rejected", rejected}},
                            {{"ref_model", refDir}, {"key", key}});
            log("reference log-probs cached in " + cacheFile.string());
        }
    }
    auto c = chosen.accessor<float, 1>();
    auto r = rejected.accessor<float, 1>();
    for (size_t i = 0; i < nTrain; ++i) {
        m_train[i].refChosen = c[int64_t(i)];
        m_train[i].refRejected = r[int64_t(i)];
    }
    for (size_t i = 0; i < nEval; ++i) {
        m_eval[i].refChosen = c[int64_t(nTrain + i)];
        m_eval[i].refRejected = r[int64_t(nTrain + i)];
    }
    m_ref.reset(); // the point of precomputing: the reference need not stay in memory
}

nlohmann::json DpoTrainer::evaluate()
{
    if (m_eval.empty())
        return {};
    const bool wasTraining = m_policy->is_training();
    m_policy->eval();
    torch::NoGradGuard noGrad;
    std::map<std::string, double> sums;
    int64_t pairs = 0;
    for (size_t begin = 0; begin < m_eval.size(); begin += size_t(m_config.batchSize)) {
        std::vector<size_t> idx;
        for (size_t i = begin; i < std::min(m_eval.size(), begin + size_t(m_config.batchSize)); ++i)
            idx.push_back(i);
        auto r = runMicroBatch(idx, m_eval, false, 1.0);
        const auto metrics = readMetricValues(r.names, r.values);
        if (!std::isfinite(metrics.at("loss")))
            throw Error("step " + std::to_string(m_globalStep) + ": the evaluation loss is NaN/Inf");
        for (const auto &[k, v] : metrics)
            sums[k] += v * double(r.pairs);
        pairs += r.pairs;
    }
    if (wasTraining)
        m_policy->train();
    nlohmann::json out;
    out["step"] = m_globalStep;
    out["epoch"] = double(m_globalStep) / double(m_stepsPerEpoch);
    for (const auto &[k, v] : sums)
        out["eval_" + k] = v / double(pairs);
    return out;
}

void DpoTrainer::appendMetrics(const nlohmann::json &m)
{
    if (!isMainRank())
        return;
    const fs::path path = fs::path(m_config.outputDir) / "metrics.jsonl";
    FILE *f = std::fopen(path.c_str(), "ab");
    if (!f)
        throw Error(path.string() + ": cannot append metrics");
    const std::string line = m.dump() + "\n";
    const bool ok = std::fwrite(line.data(), 1, line.size(), f) == line.size();
    std::fflush(f);
    std::fclose(f);
    if (!ok)
        throw Error(path.string() + ": write failed (disk full?)");
    if (m_callbacks.onMetrics)
        m_callbacks.onMetrics(m);
}

void DpoTrainer::truncateMetricsAfter(int64_t step)
{
    if (!isMainRank())
        return;
    const fs::path path = fs::path(m_config.outputDir) / "metrics.jsonl";
    if (!fs::exists(path))
        return;
    std::ifstream in(path);
    std::string line, kept;
    while (std::getline(in, line)) {
        try {
            auto j = parseJsonLimited(line, path.string());
            if (j.is_object() && j.value("step", int64_t(0)) <= step)
                kept += line + "\n";
        } catch (const std::exception &) {
            // A line cut by a kill mid-write: dropped.
        }
    }
    in.close();
    writeFileAtomically(path.string(), kept);
}

bool DpoTrainer::useSharedPrompt() const
{
    // On CUDA the completions attend to the cached prompt through the flash varlen kernel
    // (attendAfterPrefix) when the build has it and the weights are bf16/fp16. Without it they would
    // attend with an explicit mask, which keeps SDPA off its flash kernels: then off unless
    // DPO_SHARE_PROMPT_CUDA=1 (bench-dpo --share-prompt both measures either way; =0 turns it off).
    // Gradient checkpointing is asked for to save memory; the shared prompt's cache keeps every layer's
    // activations for backward, so checkpointing takes the concatenated batch (said once in setup).
    if (!m_config.sharePrompt || m_config.gradientCheckpointing)
        return false;
    if (!m_device.is_cuda())
        return true;
    if (const char *env = std::getenv("DPO_SHARE_PROMPT_CUDA"))
        return std::string(env) != "0";
    return flashVarlenBuilt() && (m_dtype == torch::kBFloat16 || m_dtype == torch::kFloat16);
}

void DpoTrainer::syncReference()
{
    torch::NoGradGuard noGrad;
    const double a = m_config.refModelMixupAlpha;
    auto refParams = m_ref->named_parameters();
    if (m_policy->lora) { // the policy's function is W + s·B·A
        for (const auto &[name, value] : m_policy->lora->mergedStateDict())
            if (auto *r = refParams.find(name))
                r->mul_(1.0 - a).add_(value.to(r->scalar_type()), a);
    } else {
        for (const auto &item : m_policy->named_parameters()) {
            auto *r = refParams.find(item.key());
            if (r)
                r->mul_(1.0 - a).add_(item.value().detach().to(r->scalar_type()), a);
        }
    }
    log("reference model synchronised (TR-DPO, alpha " + std::to_string(a) + ") at step " +
        std::to_string(m_globalStep));
}

void DpoTrainer::saveCheckpoint()
{
    const fs::path dir = fs::path(m_config.outputDir) / ("checkpoint-" + std::to_string(m_globalStep));
    // A checkpoint holds the whole optimizer state whatever the sharding, so it resumes on any world size.
    const std::map<std::string, torch::Tensor> optimizerState =
        m_owner.empty() ? m_optimizer->stateTensors() : gatherOptimizerState();
    if (!isMainRank()) { // the ranks hold the same weights and optimizer state: rank 0 writes them
        m_lastCheckpoint = dir.string();
        return;
    }
    const fs::path tmp = dir.string() + ".tmp";
    std::error_code ec;
    fs::remove_all(tmp, ec);
    if (m_policy->lora)
        saveAdapter(*m_policy, tmp.string(), m_tokenizerDir);
    else
        dpo::savePretrained(*m_policy, tmp.string(), m_tokenizerDir);
    saveChatTemplate(tmp.string());
    saveSafetensors((tmp / "optimizer.safetensors").string(), optimizerState, {{"format", "pt"}});
    if (m_config.syncRefModel && m_ref)
        saveSafetensors((tmp / "ref_model.safetensors").string(), m_ref->stateDict(), {{"format", "pt"}});
    nlohmann::json state = {
        {"global_step", m_globalStep},
        {"total_steps", m_totalSteps},
        {"epoch", double(m_globalStep) / double(m_stepsPerEpoch)},
        {"optimizer_step", m_optimizer->stepCount()},
        {"num_tokens", m_numTokens},
        {"data_order", {{"seed", m_config.seed}, {"shuffle", m_config.shuffle},
                        {"micro_batches_consumed", m_globalStep * m_config.gradAccum}}},
        {"scheduler", {{"type", m_config.lrScheduler}, {"warmup_steps", m_warmupSteps}, {"total_steps", m_totalSteps}}},
        {"mode", m_mode == TrainingMode::Sft ? "sft" : "dpo"},
        {"config", m_config.toJson()},
    };
    if (m_scaler.enabled())
        state["grad_scaler"] = { { "scale", m_scaler.scale() }, { "growth_tracker", m_scaler.growthTracker() } };
    // Written last: a checkpoint directory without it is incomplete by definition.
    writeFileAtomically((tmp / "trainer_state.json").string(), state.dump(1));
    fs::remove_all(dir, ec);
    fs::rename(tmp, dir, ec);
    if (ec)
        throw Error(dir.string() + ": cannot rename the checkpoint into place: " + ec.message());
    m_lastCheckpoint = dir.string();
    log("checkpoint saved: " + dir.string());

    if (m_config.saveTotalLimit > 0) {
        std::vector<std::pair<int64_t, fs::path>> all;
        for (const auto &e : fs::directory_iterator(m_config.outputDir)) {
            const std::string name = e.path().filename().string();
            if (e.is_directory() && name.rfind("checkpoint-", 0) == 0 && name.find(".tmp") == std::string::npos)
                all.emplace_back(std::atoll(name.c_str() + 11), e.path());
        }
        std::sort(all.begin(), all.end());
        while (int64_t(all.size()) > m_config.saveTotalLimit) {
            fs::remove_all(all.front().second, ec);
            all.erase(all.begin());
        }
    }
}

void DpoTrainer::restoreCheckpoint(const std::string &dir)
{
    const std::string statePath = (fs::path(dir) / "trainer_state.json").string();
    const nlohmann::json state = readJsonFileLimited(statePath);
    int64_t optimizerStep = 0, globalStep = 0, numTokens = 0, savedTotal = m_totalSteps;
    try {
        optimizerStep = state.at("optimizer_step").get<int64_t>();
        globalStep = state.at("global_step").get<int64_t>();
        numTokens = state.value("num_tokens", int64_t(0));
        savedTotal = state.value("total_steps", m_totalSteps);
    } catch (const nlohmann::json::exception &e) {
        throw Error(statePath + ": " + jsonErrorMessage(e));
    }
    if (m_policy->lora) {
        const std::string file = (fs::path(dir) / "adapter_model.safetensors").string();
        auto f = SafetensorsFile::open(file);
        std::map<std::string, torch::Tensor> w;
        for (const auto &name : f.names())
            w[name] = f.tensor(name);
        loadAdapterTensors(*m_policy->lora, w, file, m_policy->lora->baseModelDir);
    } else {
        m_policy->loadStateDict(loadSafetensorsWeights(dir), dir);
    }
    auto opt = SafetensorsFile::open((fs::path(dir) / "optimizer.safetensors").string());
    std::map<std::string, torch::Tensor> optState;
    for (const auto &name : opt.names())
        optState[name] = opt.tensor(name);
    m_optimizer->loadStateTensors(optState, optimizerStep);
    if (m_config.syncRefModel && m_ref && fs::exists(fs::path(dir) / "ref_model.safetensors")) {
        auto rf = SafetensorsFile::open((fs::path(dir) / "ref_model.safetensors").string());
        std::map<std::string, torch::Tensor> w;
        for (const auto &name : rf.names())
            w[name] = rf.tensor(name);
        m_ref->loadStateDict(w, rf.path());
    }
    if (m_scaler.enabled() && state.contains("grad_scaler")) {
        try {
            m_scaler.restore(state.at("grad_scaler").at("scale").get<double>(),
                state.at("grad_scaler").at("growth_tracker").get<int64_t>());
        } catch (const nlohmann::json::exception &e) {
            throw Error(statePath + ": grad_scaler: " + jsonErrorMessage(e));
        }
    }
    m_globalStep = globalStep;
    m_numTokens = numTokens;
    if (savedTotal != m_totalSteps)
        log("note: the checkpoint was written for " + std::to_string(savedTotal) + " total steps; now " +
            std::to_string(m_totalSteps));
    m_lastCheckpoint = dir;
    log("resumed from " + dir + " at step " + std::to_string(m_globalStep));
}

TrainResult DpoTrainer::train(const std::atomic<bool> *stop)
{
    setup();
    fs::create_directories(m_config.outputDir);
    if (isMainRank())
        for (const std::string &path : removeStaleCheckpointTemps(m_config.outputDir))
            log("removed " + path + " (left by an interrupted checkpoint)");
    TrainResult result;
    result.totalSteps = m_totalSteps;

    if (m_config.resume) {
        const std::string ckpt = latestCheckpoint(m_config.outputDir);
        if (!ckpt.empty()) {
            restoreCheckpoint(ckpt);
            truncateMetricsAfter(m_globalStep);
        } else {
            log("no complete checkpoint in " + m_config.outputDir + "; starting from step 0");
            truncateMetricsAfter(0);
        }
    } else if (!latestCheckpoint(m_config.outputDir).empty()) {
        throw Error("option 'output_dir': " + m_config.outputDir +
                    " already holds checkpoints of a run; pass resume to continue it or choose another directory");
    } else {
        truncateMetricsAfter(-1);
    }
    if (isMainRank())
        writeFileAtomically((fs::path(m_config.outputDir) / "train_config.json").string(), m_config.toJson().dump(1));

    const LrSchedule schedule(m_config.lrScheduler, m_warmupSteps, m_totalSteps);
    log("training: " + std::to_string(m_totalSteps) + " steps, " + std::to_string(m_stepsPerEpoch) +
        " per epoch, device " + m_device.str() + ", " + dtypeName(m_dtype));
    bool savedAtThisStep = false;
    // The steps since the last log: their metrics summed on the device, read once when logged.
    struct MetricWindow {
        std::vector<std::string> names;
        torch::Tensor sums, gradNorm;
        int64_t steps = 0, tokens = 0;
        std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
        double commSeconds = 0;
        int64_t commBytes = 0;
    } window;
    auto resetWindow = [&] {
        window = MetricWindow();
        if (m_comm) {
            window.commSeconds = m_comm->secondsWaiting();
            window.commBytes = m_comm->bytesReduced();
        }
    };
    resetWindow();
    bool readAtThisStep = false; // the last step's metrics were read (logged)
    // First step (1-based) whose loss or gradient norm was NaN/Inf, 0 while there is none; on the device.
    torch::Tensor firstBadStep = torch::zeros({}, torch::TensorOptions().dtype(torch::kLong).device(m_device));
    auto throwIfBad = [&](int64_t step) {
        if (step > 0)
            throw Error("step " + std::to_string(step)
                + ": the loss or the gradient norm is NaN/Inf; training stopped, the last good checkpoint is kept"
                + (m_lastCheckpoint.empty() ? std::string() : " (" + m_lastCheckpoint + ")"));
    };
    // Before anything is saved or evaluated (justRead: the logging read of this step already checked).
    auto checkFinite = [&](bool justRead) {
        if (justRead || m_scaler.enabled())
            return;
        ++m_metricReads;
        throwIfBad(firstBadStep.item<int64_t>());
    };
    while (m_globalStep < m_totalSteps) {
        // Every rank stops at the same step (a signal may reach only one of them).
        bool stopNow = stop && stop->load();
        if (m_comm)
            stopNow = m_comm->any(stopNow);
        if (stopNow) {
            checkFinite(readAtThisStep);
            if (!savedAtThisStep)
                saveCheckpoint();
            result.status = "stopped";
            result.globalStep = m_globalStep;
            result.lastCheckpoint = m_lastCheckpoint;
            log("stopped at step " + std::to_string(m_globalStep));
            return result;
        }
        const int64_t stepInEpoch = m_globalStep % m_stepsPerEpoch;
        const int64_t epoch = m_globalStep / m_stepsPerEpoch;
        const int64_t firstMb = stepInEpoch * m_config.gradAccum;
        const int64_t lastMb = std::min(m_microBatchesPerEpoch, firstMb + m_config.gradAccum);
        std::vector<std::vector<size_t>> micro;
        for (int64_t mb = firstMb; mb < lastMb; ++mb) {
            micro.push_back(microBatchIndices(epoch * m_microBatchesPerEpoch + mb));
        }
        m_optimizer->zeroGrad();
        m_gradSums.clear();
        if (!m_owner.empty()) // the optimizer clears only its shard's gradients
            for (auto &[name, p] : m_trainable)
                if (p.grad().defined())
                    p.mutable_grad() = torch::Tensor();
        if (m_policy->lora && m_config.loraDropout > 0) // LoRA dropout masks drawn per step: a resume replays them
            torch::manual_seed(m_config.seed * 1000003ull + uint64_t(m_globalStep) + 1);
        int64_t stepTokens = 0;
        const double lossScale = m_scaler.scale(); // 1 without loss scaling
        torch::Tensor stepValues, lossFinite;
        for (const auto &idx : micro) {
            // HF Trainer: each micro-batch's mean loss is divided by the number of micro-batches of this
            // update (fewer in a short last window of the epoch), whatever its number of pairs.
            const double share = 1.0 / double(micro.size());
            auto r = runMicroBatch(idx, m_train, true, share * lossScale);
            stepValues = stepValues.defined() ? stepValues + r.values * share : r.values * share;
            lossFinite = lossFinite.defined() ? lossFinite.logical_and(r.lossFinite) : r.lossFinite;
            window.names = r.names;
            stepTokens += r.tokens;
            m_gradSums.collect(/*onlyContribution=*/micro.size() == 1 && !m_comm);
        }
        std::vector<torch::Tensor> grads = m_gradSums.gradients(); // aligned with m_trainable
        if (m_comm) { // collectives synchronise anyway: the metrics travel as host values
            auto sums = readMetricValues(window.names, stepValues);
            ++m_metricReads;
            averageAcrossRanks(grads, sums, stepTokens);
            std::vector<double> averaged;
            for (const auto &n : window.names)
                averaged.push_back(sums.at(n));
            stepValues = torch::tensor(averaged, torch::kDouble).to(torch::kFloat32).to(m_device);
        }
        const torch::Tensor gradNorm = totalGradNorm(grads, m_device, 1.0 / lossScale);
        // The optimizer's share of them (all, unless ZeRO-1 gave it a shard), in its order.
        std::vector<torch::Tensor> optimizerGrads;
        for (size_t i = 0; i < grads.size(); ++i)
            if (m_owner.empty() || m_owner[i] == rank())
                optimizerGrads.push_back(grads[i]);
        const double lr = m_config.learningRate * schedule.factor(m_globalStep);
        bool overflow = false;
        if (m_scaler.enabled()) {
            // GradScaler decides on the host whether to skip (torch's GradScaler reads found_inf too).
            const double norm = gradNorm.item<double>();
            overflow = !std::isfinite(norm);
            if (overflow) {
                // The update is skipped, the step still counts (as in the HF Trainer).
                log("step " + std::to_string(m_globalStep + 1) + ": gradients overflowed at loss scale "
                    + std::to_string(lossScale) + "; update skipped");
            } else {
                // Unscaling and clipping in one float32 factor, applied inside the update.
                double factor = 1.0 / lossScale;
                if (m_config.maxGradNorm > 0)
                    factor *= std::min(1.0, m_config.maxGradNorm / (norm + 1e-6));
                m_optimizer->step(lr, factor, optimizerGrads);
            }
        } else {
            // Clipping as a device scalar (×1 exactly when the norm is within bounds): no host read. A
            // NaN/Inf loss or norm is recorded on the device and stops the run at the next read, before
            // anything is logged or saved.
            torch::Tensor coef;
            if (m_config.maxGradNorm > 0)
                coef = (m_config.maxGradNorm / (gradNorm + 1e-6)).clamp_max(1.0);
            m_optimizer->step(lr, coef, optimizerGrads);
            const auto bad = torch::isfinite(gradNorm).logical_and(lossFinite).logical_not();
            firstBadStep = torch::where(bad.logical_and(firstBadStep == 0),
                torch::full_like(firstBadStep, m_globalStep + 1), firstBadStep);
        }
        if (!m_owner.empty() && !overflow)
            broadcastShardedParameters();
        m_scaler.update(overflow);
        ++m_globalStep;
        m_numTokens += stepTokens;
        savedAtThisStep = false;

        window.sums = window.sums.defined() ? window.sums + stepValues : stepValues;
        window.gradNorm = overflow ? torch::Tensor() : gradNorm;
        window.steps += 1;
        window.tokens += stepTokens;
        const bool logNow = m_globalStep % m_config.loggingSteps == 0 || m_globalStep == m_totalSteps;
        readAtThisStep = logNow;
        if (logNow) {
            // One read for the window: its mean metrics (HF/TRL average a logging window), the last grad
            // norm and the NaN/Inf record.
            std::vector<torch::Tensor> parts { window.sums / double(window.steps) };
            parts.push_back((window.gradNorm.defined() ? window.gradNorm : torch::zeros_like(gradNorm)).reshape({ 1 }));
            parts.push_back(firstBadStep.to(torch::kFloat32).reshape({ 1 }));
            auto names = window.names;
            names.push_back("grad_norm");
            names.push_back("#first_bad_step");
            auto values = readMetricValues(names, torch::cat(parts));
            ++m_metricReads;
            throwIfBad(int64_t(values.at("#first_bad_step")));
            values.erase("#first_bad_step");
            if (!window.gradNorm.defined())
                values.erase("grad_norm");
            const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - window.start).count();
            nlohmann::json m;
            m["step"] = m_globalStep;
            m["epoch"] = double(m_globalStep) / double(m_stepsPerEpoch);
            for (const auto &[k, v] : values)
                m[k] = v;
            if (m_scaler.enabled())
                m["loss_scale"] = lossScale;
            m["learning_rate"] = lr;
            m["num_tokens"] = m_numTokens;
            m["tokens_per_second"] = seconds > 0 ? double(window.tokens) / seconds : 0.0;
            m["step_seconds"] = seconds / double(window.steps); // mean over the logging window
            if (m_comm) { // rank 0's view: time inside collectives (waiting for the slowest rank included)
                m["dist/allreduce_seconds"] = (m_comm->secondsWaiting() - window.commSeconds) / double(window.steps);
                m["dist/allreduce_mb"] = double(m_comm->bytesReduced() - window.commBytes) / 1e6 / double(window.steps);
            }
            m["total_steps"] = m_totalSteps;
            appendMetrics(m);
            resetWindow();
        }

        if (m_config.syncRefModel && m_ref && m_globalStep % m_config.refModelSyncSteps == 0)
            syncReference();
        if (!m_eval.empty() && m_config.evalSteps > 0 && m_globalStep % m_config.evalSteps == 0 &&
            m_globalStep != m_totalSteps) {
            checkFinite(logNow);
            appendMetrics(evaluate());
        }
        if (m_config.saveSteps > 0 && m_globalStep % m_config.saveSteps == 0 && m_globalStep != m_totalSteps) {
            checkFinite(logNow);
            saveCheckpoint();
            savedAtThisStep = true;
        }
    }
    checkFinite(readAtThisStep);
    if (!m_eval.empty())
        appendMetrics(evaluate());
    if (!savedAtThisStep && m_lastCheckpoint != (fs::path(m_config.outputDir) /
                                                 ("checkpoint-" + std::to_string(m_globalStep))).string())
        saveCheckpoint();
    const std::string finalDir = (fs::path(m_config.outputDir) / "final").string();
    if (isMainRank())
        savePretrained(finalDir);
    result.status = "completed";
    result.globalStep = m_globalStep;
    result.lastCheckpoint = m_lastCheckpoint;
    result.finalModelDir = finalDir;
    log("training completed: " + std::to_string(m_globalStep) + " steps; model saved to " + finalDir);
    return result;
}

// A chat_template given for the run is the template the model was trained with: saved models carry it
// as chat_template.jinja (which transformers and this engine prefer over tokenizer_config.json's).
void DpoTrainer::saveChatTemplate(const std::string &dir) const
{
    if (m_config.chatTemplate.empty())
        return;
    const fs::path target = fs::path(dir) / "chat_template.jinja";
    const fs::path tmp = target.string() + ".tmp";
    std::error_code ec;
    fs::copy_file(m_config.chatTemplate, tmp, fs::copy_options::overwrite_existing, ec);
    if (!ec)
        fs::rename(tmp, target, ec);
    if (ec)
        throw Error(target.string() + ": cannot write the chat template: " + ec.message());
}

void DpoTrainer::savePretrained(const std::string &dir)
{
    if (!m_policy)
        throw Error("savePretrained: no model (call setup() or train() first)");
    if (!m_policy->lora) {
        dpo::savePretrained(*m_policy, dir, m_tokenizerDir);
        saveChatTemplate(dir);
        return;
    }
    saveAdapter(*m_policy, dir, m_tokenizerDir);
    saveChatTemplate(dir);
    if (m_config.mergeFinal) {
        const std::string merged = (fs::path(dir).parent_path() / (fs::path(dir).filename().string() + "-merged")).string();
        savePretrainedMerged(*m_policy, merged, m_tokenizerDir);
        saveChatTemplate(merged);
        log("merged model (base + adapter) saved to " + merged);
    }
}

} // namespace dpo
