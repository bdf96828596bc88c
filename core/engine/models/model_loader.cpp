// Loading and saving CausalLM weights in the Hugging Face layout: the state-dict methods of
// CausalLM, loadCausalLM() and savePretrained() (causal_lm.h). Parameters are registered under
// their HF names, so loading is a name-for-name copy; the only renaming is
// normalizeStateDictNames() (GPT-2 checkpoints saved without the "transformer." prefix).
// Buffers (rotary inv_freq, GPT-2 causal masks) are recomputed by the models, never loaded or saved.
#include "engine/models/causal_lm.h"

#include "engine/error.h"
#include "engine/models/adapter_io.h"
#include "engine/models/config_limits.h"
#include "engine/models/lora.h"
#include "engine/models/model_arch.h"
#include "engine/runtime.h"
#include "engine/io/safetensors.h"
#include "engine/tokenizers/tokenizer.h"

#include <atomic>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include <fcntl.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace dpo {

namespace {
bool isGpt2(const ModelConfig &config)
{
    const ArchInfo *arch = findModelArch(config.modelType);
    return arch && arch->impl == ArchImpl::Gpt2;
}
} // namespace

// Checkpoint names -> the names this engine's modules register. GPT2Model checkpoints (and some
// old GPT2LMHeadModel ones) lack the "transformer." prefix; everything else is already HF-named.
std::map<std::string, torch::Tensor> normalizeStateDictNames(
    const ModelConfig &config, std::map<std::string, torch::Tensor> tensors)
{
    if (!isGpt2(config))
        return tensors;
    std::map<std::string, torch::Tensor> out;
    for (auto &kv : tensors) {
        const std::string &n = kv.first;
        if (n.rfind("transformer.", 0) == 0 || n.rfind("lm_head.", 0) == 0)
            out[n] = std::move(kv.second);
        else
            out["transformer." + n] = std::move(kv.second);
    }
    return out;
}

namespace {

bool startsWith(const std::string &s, const std::string &prefix)
{
    return s.compare(0, prefix.size(), prefix) == 0;
}

// Gemma3ForConditionalGeneration's names for the text model, as transformers'
// _checkpoint_conversion_mapping reads them: "^language_model.model" -> "model.language_model",
// "^language_model.lm_head" -> "lm_head" (older checkpoints), else model.language_model.* and
// lm_head.weight (what transformers >= 4.52 saves). Everything else (vision_tower,
// multi_modal_projector, with or without "model.") is the part this engine carries through.
struct WrapperSplit {
    CausalLM::CheckpointLayout layout = CausalLM::CheckpointLayout::Plain;
    std::map<std::string, torch::Tensor> text, passthrough;
};

WrapperSplit splitWrapperTensors(std::map<std::string, torch::Tensor> tensors)
{
    using L = CausalLM::CheckpointLayout;
    WrapperSplit out;
    out.layout = L::ModelLanguageModel;
    for (const auto &kv : tensors)
        if (startsWith(kv.first, "language_model."))
            out.layout = L::LanguageModelFirst;
    for (auto &kv : tensors) {
        const std::string &n = kv.first;
        std::string name;
        if (out.layout == L::LanguageModelFirst && startsWith(n, "language_model.model."))
            name = "model." + n.substr(std::strlen("language_model.model."));
        else if (out.layout == L::LanguageModelFirst && n == "language_model.lm_head.weight")
            name = "lm_head.weight";
        else if (out.layout == L::ModelLanguageModel && startsWith(n, "model.language_model."))
            name = "model." + n.substr(std::strlen("model.language_model."));
        else if (out.layout == L::ModelLanguageModel && n == "lm_head.weight")
            name = n;
        if (name.empty())
            out.passthrough[n] = std::move(kv.second);
        else
            out.text[name] = std::move(kv.second);
    }
    return out;
}

// The engine's names -> the checkpoint's (the inverse of splitWrapperTensors).
std::string wrapperName(CausalLM::CheckpointLayout layout, const std::string &n)
{
    using L = CausalLM::CheckpointLayout;
    if (layout == L::LanguageModelFirst)
        return n == "lm_head.weight" ? "language_model.lm_head.weight" : "language_model." + n;
    if (startsWith(n, "model.")) // ModelLanguageModel, and what a wrapper built from its config saves
        return "model.language_model." + n.substr(std::strlen("model."));
    return n;
}

bool endsWith(const std::string &s, const std::string &suffix)
{
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Buffers some checkpoints carry that the models recompute instead.
bool isKnownBuffer(const ModelConfig &config, const std::string &name)
{
    if (endsWith(name, "rotary_emb.inv_freq"))
        return true;
    return isGpt2(config) && (endsWith(name, ".attn.bias") || endsWith(name, ".attn.masked_bias"));
}

std::string embeddingName(const ModelConfig &config)
{
    return isGpt2(config) ? "transformer.wte.weight" : "model.embed_tokens.weight";
}

std::string shapeString(at::IntArrayRef s)
{
    std::string out = "[";
    for (size_t i = 0; i < s.size(); ++i)
        out += (i ? ", " : "") + std::to_string(s[i]);
    return out + "]";
}

std::string weightSource(const std::string &dir)
{
    const fs::path single = fs::path(dir) / "model.safetensors";
    std::error_code ec;
    return fs::exists(single, ec) ? single.string() : (fs::path(dir) / "model.safetensors.index.json").string();
}

void syncPath(const fs::path &p, bool directory)
{
    int fd = ::open(p.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
    if (fd >= 0) {
        ::fsync(fd);
        ::close(fd);
    }
}

void writeTextFile(const fs::path &path, const std::string &text)
{
    {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out << text;
        out.flush();
        if (!out)
            throw Error(path.string() + ": cannot write");
    }
    syncPath(path, false);
}

nlohmann::json generationConfigJson(const ModelConfig &c)
{
    nlohmann::json g
        = c.rawGeneration.is_object() ? c.rawGeneration : nlohmann::json { { "_from_model_config", true } };
    if (c.bosTokenId >= 0)
        g["bos_token_id"] = c.bosTokenId;
    if (c.eosTokenIds.size() == 1)
        g["eos_token_id"] = c.eosTokenIds.front();
    else if (c.eosTokenIds.size() > 1)
        g["eos_token_id"] = c.eosTokenIds;
    if (c.padTokenId >= 0)
        g["pad_token_id"] = c.padTokenId;
    return g;
}

std::string shardName(size_t i, size_t n)
{
    char buf[64];
    std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", i + 1, n);
    return buf;
}

// Writes the weights into `dir`: one model.safetensors, or shards + index past maxShardBytes
// (greedy in name order, as transformers' splitter: a tensor larger than the limit gets its own shard).
void writeWeights(const fs::path &dir, const std::map<std::string, torch::Tensor> &tensors, int64_t maxShardBytes,
    int64_t parameterTotal)
{
    const std::map<std::string, std::string> meta { { "format", "pt" } };
    int64_t total = 0;
    std::vector<std::map<std::string, torch::Tensor>> shards(1);
    int64_t current = 0;
    for (const auto &kv : tensors) {
        const int64_t bytes = kv.second.numel() * int64_t(kv.second.element_size());
        if (current > 0 && current + bytes > maxShardBytes) {
            shards.emplace_back();
            current = 0;
        }
        shards.back().emplace(kv.first, kv.second);
        current += bytes;
        total += bytes;
    }
    if (shards.size() == 1) {
        saveSafetensors((dir / "model.safetensors").string(), tensors, meta);
        return;
    }
    nlohmann::json index;
    index["metadata"]["total_size"] = total;
    index["metadata"]["total_parameters"] = parameterTotal;
    index["weight_map"] = nlohmann::json::object();
    for (size_t i = 0; i < shards.size(); ++i) {
        const std::string name = shardName(i, shards.size());
        saveSafetensors((dir / name).string(), shards[i], meta);
        for (const auto &kv : shards[i])
            index["weight_map"][kv.first] = name;
    }
    writeTextFile(dir / "model.safetensors.index.json", index.dump(2) + "\n");
}

} // namespace

std::map<std::string, torch::Tensor> CausalLM::stateDict()
{
    std::map<std::string, torch::Tensor> out;
    for (const auto &p : named_parameters(/*recurse=*/true))
        out[p.key()] = p.value().detach();
    // transformers re-ties the head on load; saving it would only duplicate the embedding.
    if (config().tieWordEmbeddings)
        out.erase("lm_head.weight");
    return out;
}

void CausalLM::loadStateDict(const std::map<std::string, torch::Tensor> &tensorsIn, const std::string &source)
{
    torch::NoGradGuard noGrad;
    const ModelConfig &cfg = config();
    std::map<std::string, torch::Tensor> tensors;
    if (cfg.isMultimodalWrapper()) {
        WrapperSplit split = splitWrapperTensors(tensorsIn);
        tensors = std::move(split.text);
        checkpointLayout = split.layout;
        passthroughTensors = std::move(split.passthrough);
    } else {
        tensors = normalizeStateDictNames(cfg, tensorsIn);
    }
    const auto params = named_parameters(/*recurse=*/true);
    std::set<std::string> buffers;
    for (const auto &b : named_buffers(/*recurse=*/true))
        buffers.insert(b.key());

    for (const auto &p : params) {
        const std::string &name = p.key();
        torch::Tensor param = p.value();
        auto it = tensors.find(name);
        torch::Tensor src;
        if (it != tensors.end()) {
            src = it->second;
        } else if (name == "lm_head.weight" && cfg.tieWordEmbeddings) {
            // A model that keeps a separate head tensor while tied: fill it from the embedding.
            auto emb = tensors.find(embeddingName(cfg));
            if (emb == tensors.end())
                throw Error(source + ": tensor '" + embeddingName(cfg) + "' is missing");
            src = emb->second;
        } else {
            throw Error(source + ": tensor '" + name + "' is missing");
        }
        if (src.sizes() != param.sizes())
            throw Error(source + ": tensor '" + name + "' has shape " + shapeString(src.sizes())
                + ", the model expects " + shapeString(param.sizes()) + " (does config.json match the weights?)");
        if (!at::isFloatingType(src.scalar_type()))
            throw Error(source + ": tensor '" + name + "' has dtype " + c10::toString(src.scalar_type())
                + ", expected a floating-point type");
        if (src.data_ptr() != param.data_ptr())
            param.copy_(src);
    }

    for (const auto &kv : tensors) {
        const std::string &name = kv.first;
        if (params.contains(name) || buffers.count(name) || isKnownBuffer(cfg, name))
            continue;
        if (name == "lm_head.weight" && cfg.tieWordEmbeddings)
            continue; // some tied checkpoints still store the head; transformers ties it to the embedding
        throw Error(source + ": unexpected tensor '" + name + "' (not a parameter of " + cfg.architecture
            + "; does config.json match the weights?)");
    }
}

int64_t CausalLM::parameterCount()
{
    std::set<const void *> seen; // a tied head shares the embedding's storage: count it once
    int64_t n = 0;
    for (const auto &p : parameters(/*recurse=*/true))
        if (seen.insert(p.data_ptr()).second)
            n += p.numel();
    return n;
}

std::shared_ptr<CausalLM> loadCausalLM(
    const std::string &dir, torch::Device device, torch::ScalarType dtype, const std::string &baseModel)
{
    if (!at::isFloatingType(dtype))
        throw Error("model dtype must be floating point, not " + std::string(c10::toString(dtype)));
    if (isAdapterDir(dir))
        return loadAdapterModel(dir, device, dtype, baseModel);
    const ModelConfig config = ModelConfig::fromDirectory(dir);
    const auto weights = loadSafetensorsWeights(dir);
    checkConfigAgainstWeights(config, weights, dir); // before allocating what config.json claims
    std::shared_ptr<CausalLM> model;
    try {
        // In place: parameters allocated on the device in the target dtype, no random init; each
        // weight is then copied once from the file's mapping into its tensor (converted on the way).
        ModelBuild build;
        build.device = device;
        build.dtype = dtype;
        build.initialize = false;
        model = createCausalLM(config, build);
    } catch (const c10::Error &e) { // never libtorch's raw message without the file
        throw Error((fs::path(dir) / "config.json").string() + ": cannot build the model: " + e.what_without_backtrace());
    } catch (const std::bad_alloc &) {
        throw Error((fs::path(dir) / "config.json").string() + ": not enough memory for the model it describes");
    }
    torch::NoGradGuard noGrad;
    model->to(device); // helper buffers (RoPE tables) keep their dtype
    model->loadStateDict(weights, weightSource(dir));
    model->eval();
    return model;
}

namespace {
void saveWithState(CausalLM &model, std::map<std::string, torch::Tensor> state, const std::string &dirIn,
    const std::string &tokenizerDir, int64_t maxShardBytes, std::optional<torch::ScalarType> dtype);
} // namespace

void savePretrained(CausalLM &model, const std::string &dirIn, const std::string &tokenizerDir, int64_t maxShardBytes,
    std::optional<torch::ScalarType> dtype)
{
    if (model.lora)
        throw Error(dirIn + ": the model carries a LoRA adapter; save the adapter (saveAdapter) or merge it first");
    saveWithState(model, model.stateDict(), dirIn, tokenizerDir, maxShardBytes, dtype);
}

void savePretrainedMerged(
    CausalLM &model, const std::string &dirIn, const std::string &tokenizerDir, std::optional<torch::ScalarType> dtype)
{
    if (!model.lora)
        throw Error(dirIn + ": savePretrainedMerged needs a model carrying a LoRA adapter");
    saveWithState(model, model.lora->mergedStateDict(), dirIn, tokenizerDir, int64_t(5) << 30, dtype);
}

namespace {

void saveWithState(CausalLM &model, std::map<std::string, torch::Tensor> state, const std::string &dirIn,
    const std::string &tokenizerDir, int64_t maxShardBytes, std::optional<torch::ScalarType> dtype)
{
    if (maxShardBytes <= 0)
        throw Error("savePretrained: maxShardBytes must be positive");
    if (dtype && !at::isFloatingType(*dtype))
        throw Error("savePretrained: dtype must be floating point, not " + std::string(c10::toString(*dtype)));
    fs::path dir = fs::absolute(fs::path(dirIn)).lexically_normal();
    if (dir.filename().empty())
        dir = dir.parent_path();
    std::error_code ec;
    if (fs::exists(dir, ec) && !fs::is_directory(dir, ec))
        throw Error(dir.string() + ": exists and is not a folder");
    const fs::path parent = dir.parent_path();
    fs::create_directories(parent, ec);
    if (ec)
        throw Error(parent.string() + ": cannot create folder: " + ec.message());

    static std::atomic<int> counter { 0 };
    const std::string tag = std::to_string(::getpid()) + "-" + std::to_string(counter++);
    const fs::path tmp = parent / ("." + dir.filename().string() + ".tmp-" + tag);
    const fs::path old = parent / ("." + dir.filename().string() + ".old-" + tag);
    fs::create_directory(tmp, ec);
    if (ec)
        throw Error(tmp.string() + ": cannot create folder: " + ec.message());

    try {
        torch::ScalarType saveType = torch::kFloat32;
        if (dtype) {
            saveType = *dtype;
        } else {
            for (const auto &kv : state)
                if (at::isFloatingType(kv.second.scalar_type())) {
                    saveType = kv.second.scalar_type();
                    break;
                }
        }
        {
            torch::NoGradGuard noGrad;
            for (auto &kv : state)
                if (at::isFloatingType(kv.second.scalar_type()) && kv.second.scalar_type() != saveType)
                    kv.second = kv.second.to(saveType);
        }

        if (model.config().isMultimodalWrapper()) {
            // Back under the names the checkpoint came with, the carried-through tensors alongside.
            std::map<std::string, torch::Tensor> renamed;
            for (auto &kv : state)
                renamed[wrapperName(model.checkpointLayout, kv.first)] = std::move(kv.second);
            torch::NoGradGuard noGrad;
            for (const auto &kv : model.passthroughTensors)
                renamed[kv.first] = at::isFloatingType(kv.second.scalar_type()) ? kv.second.to(saveType) : kv.second;
            state = std::move(renamed);
        }
        ModelConfig cfg = model.config();
        cfg.torchDtype = dtypeName(saveType);
        writeTextFile(tmp / "config.json", cfg.toJson().dump(2) + "\n");
        writeTextFile(tmp / "generation_config.json", generationConfigJson(cfg).dump(2) + "\n");
        writeWeights(tmp, state, maxShardBytes, model.parameterCount());

        if (!tokenizerDir.empty()) {
            for (const auto &name : Tokenizer::tokenizerFileNames()) {
                const fs::path src = fs::path(tokenizerDir) / name;
                if (!fs::is_regular_file(src, ec))
                    continue;
                fs::copy_file(src, tmp / name, fs::copy_options::overwrite_existing, ec);
                if (ec)
                    throw Error(src.string() + ": cannot copy into " + tmp.string() + ": " + ec.message());
                syncPath(tmp / name, false);
            }
        }
        syncPath(tmp, true);

        // Swap folders: the old one is moved aside first so a failure can put it back.
        const bool hadOld = fs::exists(dir, ec);
        if (hadOld) {
            fs::rename(dir, old, ec);
            if (ec)
                throw Error(dir.string() + ": cannot move the existing folder aside: " + ec.message());
        }
        fs::rename(tmp, dir, ec);
        if (ec) {
            const std::string why = ec.message();
            if (hadOld)
                fs::rename(old, dir, ec);
            throw Error(dir.string() + ": cannot move the saved model into place: " + why);
        }
        syncPath(parent, true);
        if (hadOld)
            fs::remove_all(old, ec);
    } catch (...) {
        fs::remove_all(tmp, ec);
        throw;
    }
}

} // namespace

} // namespace dpo
