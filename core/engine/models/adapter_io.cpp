#include "engine/models/adapter_io.h"

#include "engine/error.h"
#include "engine/io/json_limits.h"
#include "engine/io/safetensors.h"
#include "engine/models/causal_lm.h"
#include "engine/tokenizers/tokenizer.h"

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include <unistd.h>

namespace fs = std::filesystem;

namespace dpo {

namespace {

const char *kPrefix = "base_model.model.";

std::string shapeString(at::IntArrayRef s)
{
    std::string out = "[";
    for (size_t i = 0; i < s.size(); ++i)
        out += (i ? ", " : "") + std::to_string(s[i]);
    return out + "]";
}

bool hasTokenizerFiles(const fs::path &dir)
{
    std::error_code ec;
    for (const auto &name : Tokenizer::tokenizerFileNames())
        if ((name == "tokenizer.model" || name == "tokenizer.json" || name == "vocab.json")
            && fs::exists(dir / name, ec))
            return true;
    return false;
}

} // namespace

bool isAdapterDir(const std::string &dir)
{
    std::error_code ec;
    return fs::is_regular_file(fs::path(dir) / "adapter_config.json", ec)
        && !fs::exists(fs::path(dir) / "config.json", ec);
}

AdapterConfig readAdapterConfig(const std::string &dir)
{
    AdapterConfig out;
    out.path = (fs::path(dir) / "adapter_config.json").string();
    const nlohmann::json j = readJsonFileLimited(out.path);
    const std::string &where = out.path;
    if (!j.is_object())
        throw Error(where + ": must be a JSON object");
    auto fail = [&](const std::string &key, const std::string &why) -> void {
        throw Error(where + ": field '" + key + "' " + why);
    };
    auto isUnset = [&](const char *key) {
        if (!j.contains(key))
            return true;
        const auto &v = j[key];
        return v.is_null() || (v.is_boolean() && !v.get<bool>()) || ((v.is_object() || v.is_array()) && v.empty());
    };

    if (!j.contains("peft_type") || !j["peft_type"].is_string())
        fail("peft_type", "is missing (expected \"LORA\")");
    if (j["peft_type"] != "LORA")
        fail("peft_type", "is " + jsonSnippet(j["peft_type"]) + "; only LORA adapters are supported");
    if (j.contains("task_type") && !j["task_type"].is_null() && j["task_type"] != "CAUSAL_LM")
        fail("task_type", "is " + jsonSnippet(j["task_type"]) + "; only CAUSAL_LM adapters are supported");

    if (!j.contains("r") || !j["r"].is_number_integer() || j["r"].get<int64_t>() < 1)
        fail("r", "must be a positive integer (got " + (j.contains("r") ? jsonSnippet(j["r"]) : "nothing") + ")");
    out.lora.r = j["r"].get<int64_t>();
    if (!j.contains("lora_alpha") || !j["lora_alpha"].is_number() || !(j["lora_alpha"].get<double>() > 0))
        fail("lora_alpha", "must be a positive number");
    out.lora.alpha = j["lora_alpha"].get<double>();
    if (j.contains("lora_dropout") && !j["lora_dropout"].is_null()) {
        if (!j["lora_dropout"].is_number())
            fail("lora_dropout", "must be a number");
        out.lora.dropout = j["lora_dropout"].get<double>();
        if (!(out.lora.dropout >= 0 && out.lora.dropout < 1))
            fail("lora_dropout", "must be in [0, 1)");
    }
    if (j.contains("use_rslora") && !j["use_rslora"].is_null()) {
        if (!j["use_rslora"].is_boolean())
            fail("use_rslora", "must be true or false");
        out.lora.useRslora = j["use_rslora"].get<bool>();
    }
    if (!j.contains("target_modules") || j["target_modules"].is_null())
        fail("target_modules", "is missing (list the adapted modules, e.g. [\"q_proj\", \"v_proj\"])");
    const auto &t = j["target_modules"];
    if (t.is_string()) {
        if (t.get<std::string>() == "all-linear")
            out.lora.targetModules = { "all-linear" };
        else
            out.lora.targetRegex = t.get<std::string>();
    } else if (t.is_array() && !t.empty()) {
        for (const auto &e : t) {
            if (!e.is_string() || e.get<std::string>().empty())
                fail("target_modules", "must list module names as strings (got " + jsonSnippet(e) + ")");
            out.lora.targetModules.push_back(e.get<std::string>());
        }
    } else {
        fail("target_modules", "must be a list of module names or a regular expression (got " + jsonSnippet(t) + ")");
    }
    if (j.contains("bias") && !j["bias"].is_null() && j["bias"] != "none")
        fail("bias", "is " + jsonSnippet(j["bias"]) + "; only \"none\" is supported");
    if (j.contains("fan_in_fan_out") && !j["fan_in_fan_out"].is_null()) {
        if (!j["fan_in_fan_out"].is_boolean())
            fail("fan_in_fan_out", "must be true or false");
        out.fanInFanOut = j["fan_in_fan_out"].get<bool>();
    }
    for (const char *key : { "use_dora", "lora_bias", "modules_to_save", "rank_pattern", "alpha_pattern",
             "layers_to_transform", "layers_pattern", "layer_replication", "exclude_modules", "target_parameters",
             "trainable_token_indices", "use_qalora" })
        if (!isUnset(key))
            fail(key, "is set (" + jsonSnippet(j[key]) + "); this engine supports plain LoRA only");
    if (j.contains("base_model_name_or_path") && !j["base_model_name_or_path"].is_null()) {
        if (!j["base_model_name_or_path"].is_string())
            fail("base_model_name_or_path", "must be a string");
        out.baseModelNameOrPath = j["base_model_name_or_path"].get<std::string>();
    }
    try {
        out.lora.validate();
    } catch (const Error &e) {
        throw Error(where + ": " + e.what());
    }
    return out;
}

std::string resolveAdapterBase(const std::string &adapterDir, const std::string &baseOverride)
{
    std::string base = baseOverride;
    std::string how = "given as the base model";
    if (base.empty()) {
        const AdapterConfig cfg = readAdapterConfig(adapterDir);
        if (cfg.baseModelNameOrPath.empty())
            throw Error(
                cfg.path + ": field 'base_model_name_or_path' is empty; give the base model folder (--base-model)");
        const fs::path p(cfg.baseModelNameOrPath);
        base = p.is_absolute() ? p.string() : (fs::path(adapterDir) / p).lexically_normal().string();
        how = "named by " + cfg.path + " ('" + cfg.baseModelNameOrPath + "')";
    }
    std::error_code ec;
    if (!fs::is_regular_file(fs::path(base) / "config.json", ec))
        throw Error("adapter " + adapterDir + ": its base model " + base + " (" + how
            + ") is not a model folder (no config.json); give the base model folder (--base-model)");
    return base;
}

std::string tokenizerDirFor(const std::string &dir, const std::string &baseOverride)
{
    if (!isAdapterDir(dir) || hasTokenizerFiles(dir))
        return dir;
    return resolveAdapterBase(dir, baseOverride);
}

std::string peftKey(const std::string &parameterName)
{
    return kPrefix + parameterName;
}

void loadAdapterTensors(LoraAdapter &adapter, const std::map<std::string, torch::Tensor> &tensors,
    const std::string &source, const std::string &baseDir)
{
    torch::NoGradGuard noGrad;
    std::set<std::string> used;
    for (const auto &[name, param] : adapter.namedParameters()) {
        const std::string key = peftKey(name);
        // PEFT strips the adapter name when saving; a state dict taken from a live PeftModel keeps it.
        std::string alt = key;
        alt.replace(alt.rfind(".weight"), 7, ".default.weight");
        auto it = tensors.find(key);
        if (it == tensors.end())
            it = tensors.find(alt);
        if (it == tensors.end())
            throw Error(source + ": tensor '" + key + "' is missing (adapter_config.json targets "
                + name.substr(0, name.rfind(".lora_")) + " of the base model " + baseDir + ")");
        const auto &src = it->second;
        if (src.sizes() != param.sizes())
            throw Error(source + ": tensor '" + it->first + "' has shape " + shapeString(src.sizes())
                + ", the base model " + baseDir + " with r " + std::to_string(adapter.config().r) + " needs "
                + shapeString(param.sizes()) + " (is it the adapter's base model?)");
        if (!at::isFloatingType(src.scalar_type()))
            throw Error(source + ": tensor '" + it->first + "' has dtype " + c10::toString(src.scalar_type())
                + ", expected a floating-point type");
        param.copy_(src);
        used.insert(it->first);
    }
    for (const auto &kv : tensors) {
        if (used.count(kv.first))
            continue;
        throw Error(source + ": unexpected tensor '" + kv.first + "' (no adapted layer of the base model " + baseDir
            + " has that name: is it the adapter's base model, and does target_modules match the file?)");
    }
}

std::shared_ptr<CausalLM> loadAdapterModel(
    const std::string &adapterDir, torch::Device device, torch::ScalarType dtype, const std::string &baseOverride)
{
    const AdapterConfig cfg = readAdapterConfig(adapterDir);
    const std::string base = resolveAdapterBase(adapterDir, baseOverride);
    const fs::path weights = fs::path(adapterDir) / "adapter_model.safetensors";
    std::error_code ec;
    if (!fs::is_regular_file(weights, ec)) {
        if (fs::exists(fs::path(adapterDir) / "adapter_model.bin", ec))
            throw Error((fs::path(adapterDir) / "adapter_model.bin").string()
                + ": pickle weights are not read; save the adapter with safe_serialization "
                  "(adapter_model.safetensors)");
        throw Error(weights.string() + ": missing (an adapter folder needs adapter_model.safetensors)");
    }
    auto file = SafetensorsFile::open(weights.string()); // header validated before the base is loaded
    if (isAdapterDir(base))
        throw Error("adapter " + adapterDir + ": its base " + base + " is itself an adapter; merge it first");
    std::shared_ptr<CausalLM> model;
    try {
        model = loadCausalLM(base, device, dtype);
    } catch (const Error &e) {
        throw Error("adapter " + adapterDir + ": cannot load its base model " + base + ": " + e.what());
    }
    std::shared_ptr<LoraAdapter> adapter;
    try {
        adapter = LoraAdapter::attach(*model, cfg.lora);
    } catch (const Error &e) {
        throw Error(cfg.path + " with base model " + base + ": " + e.what());
    }
    adapter->baseModelDir = base;
    std::map<std::string, torch::Tensor> tensors;
    for (const auto &name : file.names())
        tensors[name] = file.tensor(name);
    loadAdapterTensors(*adapter, tensors, weights.string(), base);
    model->eval();
    return model;
}

void saveAdapter(
    const CausalLM &model, const std::string &dirIn, const std::string &tokenizerDir, const std::string &baseModelPath)
{
    if (!model.lora)
        throw Error("saveAdapter: the model carries no LoRA adapter");
    const LoraAdapter &adapter = *model.lora;
    const LoraConfig &c = adapter.config();
    fs::path dir = fs::absolute(fs::path(dirIn)).lexically_normal();
    if (dir.filename().empty())
        dir = dir.parent_path();
    std::error_code ec;
    fs::create_directories(dir.parent_path(), ec);
    static std::atomic<int> counter { 0 };
    const fs::path tmp = dir.parent_path()
        / ("." + dir.filename().string() + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(tmp, ec);
    fs::create_directory(tmp, ec);
    if (ec)
        throw Error(tmp.string() + ": cannot create folder: " + ec.message());
    try {
        std::string base = baseModelPath;
        if (base.empty() && !adapter.baseModelDir.empty())
            base = fs::absolute(adapter.baseModelDir).lexically_normal().string();
        nlohmann::json target;
        if (!c.targetRegex.empty())
            target = c.targetRegex;
        else
            target = adapter.targetNames();
        nlohmann::json alpha;
        if (std::floor(c.alpha) == c.alpha && std::fabs(c.alpha) < 1e15)
            alpha = int64_t(c.alpha);
        else
            alpha = c.alpha;
        // The fields and values PEFT's LoraConfig.save_pretrained writes for a plain LoRA adapter.
        const nlohmann::json j = {
            { "alpha_pattern", nlohmann::json::object() },
            { "auto_mapping", nullptr },
            { "base_model_name_or_path", base.empty() ? nlohmann::json(nullptr) : nlohmann::json(base) },
            { "bias", "none" },
            { "corda_config", nullptr },
            { "eva_config", nullptr },
            { "exclude_modules", nullptr },
            { "fan_in_fan_out", adapter.fanInFanOut() },
            { "inference_mode", true },
            { "init_lora_weights", true },
            { "layer_replication", nullptr },
            { "layers_pattern", nullptr },
            { "layers_to_transform", nullptr },
            { "loftq_config", nlohmann::json::object() },
            { "lora_alpha", alpha },
            { "lora_bias", false },
            { "lora_dropout", c.dropout },
            { "megatron_config", nullptr },
            { "megatron_core", "megatron.core" },
            { "modules_to_save", nullptr },
            { "peft_type", "LORA" },
            { "qalora_group_size", 16 },
            { "r", c.r },
            { "rank_pattern", nlohmann::json::object() },
            { "revision", nullptr },
            { "target_modules", target },
            { "target_parameters", nullptr },
            { "task_type", "CAUSAL_LM" },
            { "trainable_token_indices", nullptr },
            { "use_dora", false },
            { "use_qalora", false },
            { "use_rslora", c.useRslora },
        };
        {
            std::ofstream f(tmp / "adapter_config.json", std::ios::binary);
            f << j.dump(2) << "\n";
            if (!f)
                throw Error((tmp / "adapter_config.json").string() + ": cannot write");
        }
        std::map<std::string, torch::Tensor> tensors;
        for (const auto &[name, t] : adapter.namedParameters())
            tensors[peftKey(name)] = t.detach().to(torch::kFloat32);
        saveSafetensors((tmp / "adapter_model.safetensors").string(), tensors, { { "format", "pt" } });
        if (!tokenizerDir.empty()) {
            for (const auto &name : Tokenizer::tokenizerFileNames()) {
                const fs::path src = fs::path(tokenizerDir) / name;
                if (!fs::is_regular_file(src, ec))
                    continue;
                fs::copy_file(src, tmp / name, fs::copy_options::overwrite_existing, ec);
                if (ec)
                    throw Error(src.string() + ": cannot copy into " + tmp.string() + ": " + ec.message());
            }
        }
        fs::remove_all(dir, ec);
        fs::rename(tmp, dir, ec);
        if (ec)
            throw Error(dir.string() + ": cannot move the saved adapter into place: " + ec.message());
    } catch (...) {
        fs::remove_all(tmp, ec);
        throw;
    }
}

} // namespace dpo
