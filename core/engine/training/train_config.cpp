#include "engine/training/train_config.h"

#include "engine/error.h"
#include "engine/io/json_limits.h"
#include "engine/models/lora.h"

#include <cmath>
#include <fstream>
#include <limits>
#include <type_traits>
#include <functional>
#include <map>
#include <sstream>

namespace dpo {

namespace {

[[noreturn]] void wrongType(const nlohmann::json &v, const std::string &key, const std::string &source, const char *want)
{
    throw Error(source + ": option '" + key + "' must be " + want + " (got " + jsonSnippet(v) + ")");
}

// Strict typed access: nlohmann's get<> would silently truncate 2^40 into an int, wrap -1 into a
// uint64_t or cut 1.5 to 1; here each of those is an error naming the option.
template <typename T>
T get(const nlohmann::json &v, const std::string &key, const std::string &source)
{
    if constexpr (std::is_same_v<T, bool>) {
        if (!v.is_boolean())
            wrongType(v, key, source, "true or false");
        return v.get<bool>();
    } else if constexpr (std::is_same_v<T, std::string>) {
        if (!v.is_string())
            wrongType(v, key, source, "a string");
        return v.get<std::string>();
    } else if constexpr (std::is_floating_point_v<T>) {
        if (!v.is_number())
            wrongType(v, key, source, "a number");
        return v.get<T>();
    } else {
        static_assert(std::is_integral_v<T>, "unsupported option type");
        if (v.is_number_float()) {
            const double d = v.get<double>();
            if (!(std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9.0e15))
                wrongType(v, key, source, "an integer");
            if (d < double(std::numeric_limits<T>::min()) || d > double(std::numeric_limits<T>::max()))
                wrongType(v, key, source, "an integer in range");
            return T(d);
        }
        if (v.is_number_unsigned()) {
            if (v.get<uint64_t>() > uint64_t(std::numeric_limits<T>::max()))
                wrongType(v, key, source, "an integer in range");
            return T(v.get<uint64_t>());
        }
        if (v.is_number_integer()) {
            const int64_t i = v.get<int64_t>();
            if (i < 0 && std::is_unsigned_v<T>)
                wrongType(v, key, source, "a non-negative integer");
            if (!std::is_unsigned_v<T> && (i < int64_t(std::numeric_limits<T>::min()) || i > int64_t(std::numeric_limits<T>::max())))
                wrongType(v, key, source, "an integer in range");
            return T(i);
        }
        wrongType(v, key, source, "an integer");
    }
}

std::vector<std::string> splitList(const nlohmann::json &v, const std::string &key, const std::string &source)
{
    std::vector<std::string> out;
    if (v.is_string()) {
        std::stringstream ss(v.get<std::string>());
        std::string item;
        while (std::getline(ss, item, ','))
            if (!item.empty())
                out.push_back(item);
        return out;
    }
    if (v.is_array()) {
        for (const auto &e : v)
            out.push_back(get<std::string>(e, key, source));
        return out;
    }
    throw Error(source + ": option '" + key + "' must be a string or a list of strings (got " + jsonSnippet(v) + ")");
}

std::vector<double> doubleList(const nlohmann::json &v, const std::string &key, const std::string &source)
{
    std::vector<double> out;
    if (v.is_array()) {
        for (const auto &e : v)
            out.push_back(get<double>(e, key, source));
        return out;
    }
    if (v.is_number())
        return {v.get<double>()};
    if (v.is_string()) {
        std::stringstream ss(v.get<std::string>());
        std::string item;
        while (std::getline(ss, item, ',')) {
            try {
                out.push_back(std::stod(item));
            } catch (const std::exception &) {
                throw Error(source + ": option '" + key + "': '" + item.substr(0, 80) + "' is not a number");
            }
        }
        return out;
    }
    throw Error(source + ": option '" + key + "' must be a list of numbers (got " + jsonSnippet(v) + ")");
}

} // namespace

void TrainConfig::update(const nlohmann::json &j, const std::string &source)
{
    if (!j.is_object())
        throw Error(source + ": a training config must be a JSON object");
    using Setter = std::function<void(const nlohmann::json &, const std::string &)>;
    const std::map<std::string, Setter> setters = {
        {"model", [&](auto &v, auto &k) { model = get<std::string>(v, k, source); }},
        {"ref_model", [&](auto &v, auto &k) { refModel = get<std::string>(v, k, source); }},
        {"dataset", [&](auto &v, auto &k) { dataset = get<std::string>(v, k, source); }},
        {"eval_dataset", [&](auto &v, auto &k) { evalDataset = get<std::string>(v, k, source); }},
        {"output_dir", [&](auto &v, auto &k) { outputDir = get<std::string>(v, k, source); }},
        {"loss_type", [&](auto &v, auto &k) { lossType = splitList(v, k, source); }},
        {"loss_weights", [&](auto &v, auto &k) { lossWeights = doubleList(v, k, source); }},
        {"beta", [&](auto &v, auto &k) { beta = get<double>(v, k, source); }},
        {"label_smoothing", [&](auto &v, auto &k) { labelSmoothing = get<double>(v, k, source); }},
        {"discopop_tau", [&](auto &v, auto &k) { discopopTau = get<double>(v, k, source); }},
        {"f_divergence_type", [&](auto &v, auto &k) { fDivergenceType = get<std::string>(v, k, source); }},
        {"f_alpha_divergence_coef", [&](auto &v, auto &k) { fAlphaDivergenceCoef = get<double>(v, k, source); }},
        {"use_weighting", [&](auto &v, auto &k) { useWeighting = get<bool>(v, k, source); }},
        {"ld_alpha",
            [&](auto &v, auto &k) {
                if (v.is_null())
                    ldAlpha.reset();
                else
                    ldAlpha = get<double>(v, k, source);
            }},
        {"precompute_ref", [&](auto &v, auto &k) { precomputeRef = get<bool>(v, k, source); }},
        {"reference_free", [&](auto &v, auto &k) { referenceFree = get<bool>(v, k, source); }},
        {"sync_ref_model", [&](auto &v, auto &k) { syncRefModel = get<bool>(v, k, source); }},
        {"share_prompt", [&](auto &v, auto &k) { sharePrompt = get<bool>(v, k, source); }},
        {"ref_model_mixup_alpha", [&](auto &v, auto &k) { refModelMixupAlpha = get<double>(v, k, source); }},
        {"ref_model_sync_steps", [&](auto &v, auto &k) { refModelSyncSteps = get<int64_t>(v, k, source); }},
        {"method", [&](auto &v, auto &k) { method = get<std::string>(v, k, source); }},
        {"use_lora", [&](auto &v, auto &k) { method = get<bool>(v, k, source) ? "lora" : "full"; }},
        {"lora_r", [&](auto &v, auto &k) { loraR = get<int64_t>(v, k, source); }},
        {"lora_alpha", [&](auto &v, auto &k) { loraAlpha = get<double>(v, k, source); }},
        {"lora_dropout", [&](auto &v, auto &k) { loraDropout = get<double>(v, k, source); }},
        {"lora_target_modules", [&](auto &v, auto &k) { loraTargetModules = splitList(v, k, source); }},
        {"use_rslora", [&](auto &v, auto &k) { useRslora = get<bool>(v, k, source); }},
        {"merge_final", [&](auto &v, auto &k) { mergeFinal = get<bool>(v, k, source); }},
        {"base_model", [&](auto &v, auto &k) { baseModel = get<std::string>(v, k, source); }},
        {"learning_rate", [&](auto &v, auto &k) { learningRate = get<double>(v, k, source); }},
        {"lr_scheduler", [&](auto &v, auto &k) { lrScheduler = get<std::string>(v, k, source); }},
        {"warmup_steps", [&](auto &v, auto &k) { warmupSteps = get<int64_t>(v, k, source); }},
        {"warmup_ratio", [&](auto &v, auto &k) { warmupRatio = get<double>(v, k, source); }},
        {"batch_size", [&](auto &v, auto &k) { batchSize = get<int64_t>(v, k, source); }},
        {"grad_accum", [&](auto &v, auto &k) { gradAccum = get<int64_t>(v, k, source); }},
        {"max_grad_norm", [&](auto &v, auto &k) { maxGradNorm = get<double>(v, k, source); }},
        {"weight_decay", [&](auto &v, auto &k) { weightDecay = get<double>(v, k, source); }},
        {"adam_beta1", [&](auto &v, auto &k) { adamBeta1 = get<double>(v, k, source); }},
        {"adam_beta2", [&](auto &v, auto &k) { adamBeta2 = get<double>(v, k, source); }},
        {"adam_epsilon", [&](auto &v, auto &k) { adamEpsilon = get<double>(v, k, source); }},
        {"epochs", [&](auto &v, auto &k) { epochs = get<double>(v, k, source); }},
        {"max_steps", [&](auto &v, auto &k) { maxSteps = get<int64_t>(v, k, source); }},
        {"seed", [&](auto &v, auto &k) { seed = get<uint64_t>(v, k, source); }},
        {"shuffle", [&](auto &v, auto &k) { shuffle = get<bool>(v, k, source); }},
        {"max_length", [&](auto &v, auto &k) { maxLength = get<int64_t>(v, k, source); }},
        {"truncation_mode", [&](auto &v, auto &k) { truncationMode = get<std::string>(v, k, source); }},
        {"max_row_bytes", [&](auto &v, auto &k) { maxRowBytes = get<int64_t>(v, k, source); }},
        {"chat_template", [&](auto &v, auto &k) { chatTemplate = get<std::string>(v, k, source); }},
        {"save_steps", [&](auto &v, auto &k) { saveSteps = get<int64_t>(v, k, source); }},
        {"save_total_limit", [&](auto &v, auto &k) { saveTotalLimit = get<int64_t>(v, k, source); }},
        {"eval_steps", [&](auto &v, auto &k) { evalSteps = get<int64_t>(v, k, source); }},
        {"logging_steps", [&](auto &v, auto &k) { loggingSteps = get<int64_t>(v, k, source); }},
        {"resume", [&](auto &v, auto &k) { resume = get<bool>(v, k, source); }},
        {"device", [&](auto &v, auto &k) { device = get<std::string>(v, k, source); }},
        {"dtype", [&](auto &v, auto &k) { dtype = get<std::string>(v, k, source); }},
        {"loss_scaling", [&](auto &v, auto &k) { lossScaling = get<std::string>(v, k, source); }},
        {"adamw_state_dtype", [&](auto &v, auto &k) { adamwStateDtype = get<std::string>(v, k, source); }},
        {"loss_scale_init", [&](auto &v, auto &k) { lossScaleInit = get<double>(v, k, source); }},
        {"loss_scale_growth_interval", [&](auto &v, auto &k) { lossScaleGrowthInterval = get<int64_t>(v, k, source); }},
        {"ddp_timeout", [&](auto &v, auto &k) { ddpTimeout = get<int64_t>(v, k, source); }},
        {"zero_stage", [&](auto &v, auto &k) { zeroStage = get<int64_t>(v, k, source); }},
        {"tf32", [&](auto &v, auto &k) { tf32 = get<bool>(v, k, source); }},
        {"gradient_checkpointing", [&](auto &v, auto &k) { gradientCheckpointing = get<bool>(v, k, source); }},
        {"padding_free", [&](auto &v, auto &k) { paddingFree = get<bool>(v, k, source); }},
        {"threads", [&](auto &v, auto &k) { threads = get<int>(v, k, source); }},
    };
    for (auto it = j.begin(); it != j.end(); ++it) {
        std::string key = it.key();
        for (auto &c : key)
            if (c == '-')
                c = '_';
        auto s = setters.find(key);
        if (s == setters.end())
            throw Error(source + ": unknown option '" + it.key().substr(0, 80) + "'");
        s->second(it.value(), key);
    }
}

TrainConfig TrainConfig::fromJson(const nlohmann::json &j, const std::string &source)
{
    TrainConfig c;
    c.update(j, source);
    return c;
}

TrainConfig TrainConfig::fromFile(const std::string &path)
{
    // Nesting and size are bounded before parsing (json_limits.h).
    return fromJson(readJsonFileLimited(path), path);
}

nlohmann::json TrainConfig::toJson() const
{
    return {
        {"model", model},
        {"ref_model", refModel},
        {"dataset", dataset},
        {"eval_dataset", evalDataset},
        {"output_dir", outputDir},
        {"loss_type", lossType},
        {"loss_weights", lossWeights},
        {"beta", beta},
        {"label_smoothing", labelSmoothing},
        {"discopop_tau", discopopTau},
        {"f_divergence_type", fDivergenceType},
        {"f_alpha_divergence_coef", fAlphaDivergenceCoef},
        {"use_weighting", useWeighting},
        {"ld_alpha", ldAlpha ? nlohmann::json(*ldAlpha) : nlohmann::json(nullptr)},
        {"precompute_ref", precomputeRef},
        {"reference_free", referenceFree},
        {"sync_ref_model", syncRefModel},
        {"share_prompt", sharePrompt},
        {"ref_model_mixup_alpha", refModelMixupAlpha},
        {"ref_model_sync_steps", refModelSyncSteps},
        {"method", method},
        {"lora_r", loraR},
        {"lora_alpha", loraAlpha},
        {"lora_dropout", loraDropout},
        {"lora_target_modules", loraTargetModules},
        {"use_rslora", useRslora},
        {"merge_final", mergeFinal},
        {"base_model", baseModel},
        {"learning_rate", learningRate},
        {"lr_scheduler", lrScheduler},
        {"warmup_steps", warmupSteps},
        {"warmup_ratio", warmupRatio},
        {"batch_size", batchSize},
        {"grad_accum", gradAccum},
        {"max_grad_norm", maxGradNorm},
        {"weight_decay", weightDecay},
        {"adam_beta1", adamBeta1},
        {"adam_beta2", adamBeta2},
        {"adam_epsilon", adamEpsilon},
        {"epochs", epochs},
        {"max_steps", maxSteps},
        {"seed", seed},
        {"shuffle", shuffle},
        {"max_length", maxLength},
        {"truncation_mode", truncationMode},
        {"max_row_bytes", maxRowBytes},
        {"chat_template", chatTemplate},
        {"save_steps", saveSteps},
        {"save_total_limit", saveTotalLimit},
        {"eval_steps", evalSteps},
        {"logging_steps", loggingSteps},
        {"resume", resume},
        {"device", device},
        {"dtype", dtype},
        {"loss_scaling", lossScaling},
        {"adamw_state_dtype", adamwStateDtype},
        {"loss_scale_init", lossScaleInit},
        {"loss_scale_growth_interval", lossScaleGrowthInterval},
        {"ddp_timeout", ddpTimeout},
        {"zero_stage", zeroStage},
        {"tf32", tf32},
        {"gradient_checkpointing", gradientCheckpointing},
        {"padding_free", paddingFree},
        {"threads", threads},
    };
}

LoraConfig TrainConfig::loraConfig() const
{
    LoraConfig lora;
    lora.r = loraR;
    lora.alpha = loraAlpha;
    lora.dropout = loraDropout;
    lora.targetModules = loraTargetModules;
    lora.useRslora = useRslora;
    return lora;
}

LossConfig TrainConfig::lossConfig() const
{
    LossConfig loss;
    loss.types = lossType;
    loss.weights = lossWeights;
    loss.beta = beta;
    loss.labelSmoothing = labelSmoothing;
    loss.discopopTau = discopopTau;
    loss.fDivergenceType = fDivergenceType;
    loss.fAlphaDivergenceCoef = fAlphaDivergenceCoef;
    loss.useWeighting = useWeighting;
    loss.ldAlpha = ldAlpha;
    return loss;
}

void TrainConfig::validate(bool requireDataset) const
{
    auto fail = [](const std::string &key, const std::string &why) { throw Error("option '" + key + "': " + why); };
    if (model.empty())
        fail("model", "a model directory is required");
    if (requireDataset && dataset.empty())
        fail("dataset", "a dataset file is required");
    if (outputDir.empty())
        fail("output_dir", "an output directory is required");
    if (!(beta > 0))
        fail("beta", "must be > 0");
    if (labelSmoothing < 0 || labelSmoothing >= 0.5)
        fail("label_smoothing", "must be in [0, 0.5)");
    if (lossType.empty())
        fail("loss_type", "at least one loss type is required");
    if (!lossWeights.empty() && lossWeights.size() != lossType.size())
        fail("loss_weights", "needs one weight per loss type (" + std::to_string(lossType.size()) + ")");
    if (!(learningRate >= 0))
        fail("learning_rate", "must be >= 0");
    if (lrScheduler != "constant" && lrScheduler != "constant_with_warmup" && lrScheduler != "linear"
        && lrScheduler != "cosine")
        fail("lr_scheduler", "must be constant, constant_with_warmup, linear or cosine");
    if (lrScheduler == "constant" && (warmupSteps > 0 || warmupRatio > 0))
        fail("lr_scheduler", "constant has no warmup (as in transformers); use constant_with_warmup with "
                             "warmup_steps/warmup_ratio");
    if (warmupSteps < 0)
        fail("warmup_steps", "must be >= 0");
    if (warmupRatio < 0 || warmupRatio > 1)
        fail("warmup_ratio", "must be in [0, 1]");
    if (batchSize < 1)
        fail("batch_size", "must be >= 1");
    if (gradAccum < 1)
        fail("grad_accum", "must be >= 1");
    if (maxGradNorm < 0)
        fail("max_grad_norm", "must be >= 0 (0 turns clipping off)");
    if (weightDecay < 0)
        fail("weight_decay", "must be >= 0");
    if (adamBeta1 < 0 || adamBeta1 >= 1)
        fail("adam_beta1", "must be in [0, 1)");
    if (adamBeta2 < 0 || adamBeta2 >= 1)
        fail("adam_beta2", "must be in [0, 1)");
    if (!(adamEpsilon > 0))
        fail("adam_epsilon", "must be > 0");
    if (maxSteps < 0)
        fail("max_steps", "must be >= 0");
    if (maxSteps == 0 && !(epochs > 0))
        fail("epochs", "must be > 0 when max_steps is not set");
    if (maxLength < 0)
        fail("max_length", "must be >= 0 (0 = no truncation)");
    if (maxRowBytes < 0)
        fail("max_row_bytes", "must be >= 0 (0 = the default limit)");
    if (truncationMode != "keep_start" && truncationMode != "keep_end")
        fail("truncation_mode", "must be keep_start or keep_end");
    if (saveSteps < 0)
        fail("save_steps", "must be >= 0");
    if (saveTotalLimit < 0)
        fail("save_total_limit", "must be >= 0");
    if (evalSteps < 0)
        fail("eval_steps", "must be >= 0");
    if (loggingSteps < 1)
        fail("logging_steps", "must be >= 1");
    if (refModelMixupAlpha < 0 || refModelMixupAlpha > 1)
        fail("ref_model_mixup_alpha", "must be in [0, 1]");
    if (refModelSyncSteps < 1)
        fail("ref_model_sync_steps", "must be >= 1");
    if (precomputeRef && referenceFree)
        fail("precompute_ref", "cannot be combined with reference_free");
    if (dtype != "auto" && dtype != "float32" && dtype != "bfloat16" && dtype != "float16")
        fail("dtype", "must be auto, float32, bfloat16 or float16");
    if (dtype == "float16" && device == "cpu")
        fail("dtype", "float16 trains only on CUDA (libtorch has no float16 matmul on the CPU); use bfloat16 or "
                      "float32 on the CPU");
    if (adamwStateDtype != "float32" && adamwStateDtype != "weights")
        fail("adamw_state_dtype", "must be float32 or weights");
    if (adamwStateDtype == "weights" && dtype == "float16")
        fail("adamw_state_dtype", "weights with dtype float16: float16 gradients cannot be unscaled in float16 "
                                  "(torch's GradScaler refuses them); use float32 or dtype bfloat16");
    if (lossScaling != "auto" && lossScaling != "dynamic" && lossScaling != "none")
        fail("loss_scaling", "must be auto, dynamic or none");
    if (dtype == "float16" && lossScaling == "none")
        fail("loss_scaling", "none with dtype float16: float16 gradients underflow without loss scaling (use auto "
                             "or dynamic, or bfloat16)");
    if (!(lossScaleInit > 0) || !std::isfinite(lossScaleInit))
        fail("loss_scale_init", "must be a positive number");
    if (lossScaleGrowthInterval < 1)
        fail("loss_scale_growth_interval", "must be >= 1");
    if (ddpTimeout < 1)
        fail("ddp_timeout", "must be >= 1 (seconds)");
    if (zeroStage != 0 && zeroStage != 1)
        fail("zero_stage", "must be 0 (off) or 1 (optimizer state sharded across ranks); stages 2 and 3 are not "
                           "implemented");
    if (method != "full" && method != "lora")
        fail("method", "must be full or lora");
    if (useLora()) {
        LoraConfig lora = loraConfig();
        lora.validate();
    } else if (mergeFinal) {
        fail("merge_final", "needs method lora (a full run's final model is already merged)");
    }
    if (threads < 0)
        fail("threads", "must be >= 0");
    if (paddingFree && ldAlpha)
        fail("padding_free", "cannot be combined with ld_alpha (its token weights need the padded layout)");
    lossConfig().validate(); // loss options and their combinations (TRL 1.x's rules), naming the option
}

} // namespace dpo
