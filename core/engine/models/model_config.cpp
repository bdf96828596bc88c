#include "engine/models/model_config.h"

#include "engine/error.h"
#include "engine/io/json_limits.h"
#include "engine/models/config_limits.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;

namespace dpo {

namespace {

using json = nlohmann::json;

bool isIntegral(const json &v)
{
    if (v.is_number_integer())
        return true;
    // Some writers emit 64.0 for integer fields; accept exact integers only.
    return v.is_number_float() && std::isfinite(v.get<double>()) && std::floor(v.get<double>()) == v.get<double>()
        && std::fabs(v.get<double>()) < 9.0e15;
}

// Typed, error-reporting access to one JSON object read from `source`.
class Fields {
public:
    Fields(const json &j, std::string source)
        : m_j(j)
        , m_source(std::move(source))
    {
    }

    bool has(const std::string &key) const { return m_j.contains(key) && !m_j.at(key).is_null(); }
    const json &at(const std::string &key) const { return m_j.at(key); }

    [[noreturn]] void fail(const std::string &field, const std::string &what) const
    {
        throw Error(m_source + ": field '" + field + "' " + what);
    }

    int64_t reqInt(const std::string &key) const
    {
        if (!has(key))
            fail(key, "is missing (required)");
        return toInt(key, m_j.at(key));
    }
    int64_t optInt(const std::string &key, int64_t def) const { return has(key) ? toInt(key, m_j.at(key)) : def; }
    int64_t reqPositive(const std::string &key) const { return positive(key, reqInt(key)); }
    int64_t optPositive(const std::string &key, int64_t def) const { return positive(key, optInt(key, def)); }
    int64_t positive(const std::string &key, int64_t v) const
    {
        if (v <= 0)
            fail(key, "must be positive (got " + std::to_string(v) + ")");
        return v;
    }
    double optNum(const std::string &key, double def) const
    {
        if (!has(key))
            return def;
        if (!m_j.at(key).is_number())
            fail(key, "must be a number (got " + jsonSnippet(m_j.at(key)) + ")");
        return m_j.at(key).get<double>();
    }
    double optPositiveNum(const std::string &key, double def) const
    {
        const double v = optNum(key, def);
        if (!(v > 0) || !std::isfinite(v))
            fail(key, "must be a positive number (got " + std::to_string(v) + ")");
        return v;
    }
    bool optBool(const std::string &key, bool def) const
    {
        if (!has(key))
            return def;
        if (!m_j.at(key).is_boolean())
            fail(key, "must be true or false (got " + jsonSnippet(m_j.at(key)) + ")");
        return m_j.at(key).get<bool>();
    }
    std::string optStr(const std::string &key, const std::string &def) const
    {
        if (!has(key))
            return def;
        if (!m_j.at(key).is_string())
            fail(key, "must be a string (got " + jsonSnippet(m_j.at(key)) + ")");
        return m_j.at(key).get<std::string>();
    }
    // Token id fields: an int, null, or (allowList) a list of ints.
    std::vector<int64_t> tokenIds(const std::string &key, bool allowList) const
    {
        std::vector<int64_t> out;
        if (!has(key))
            return out;
        const json &v = m_j.at(key);
        if (v.is_array() && allowList) {
            for (const auto &e : v) {
                if (!isIntegral(e))
                    fail(key, "must be an integer or a list of integers (got " + jsonSnippet(v) + ")");
                out.push_back(toInt(key, e));
            }
        } else {
            out.push_back(toInt(key, v));
        }
        return out;
    }

private:
    int64_t toInt(const std::string &key, const json &v) const
    {
        if (!isIntegral(v))
            fail(key, "must be an integer (got " + jsonSnippet(v) + ")");
        if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX))
            fail(key, "is out of range (got " + jsonSnippet(v) + ")");
        return v.is_number_float() ? int64_t(v.get<double>()) : v.get<int64_t>();
    }

    const json &m_j;
    std::string m_source;
};

// Nesting and size are bounded before parsing (json_limits.h).
json readJsonFile(const std::string &path)
{
    return readJsonFileLimited(path);
}

bool isLayerTypeKey(const std::string &k)
{
    return k == "full_attention" || k == "sliding_attention";
}

// Which layers slide, by the family's rule (model_arch.h) or the config's explicit layer_types.
void parseLayerTypes(ModelConfig &c, const Fields &f, const json &j)
{
    const ArchInfo &a = *c.arch;
    c.slidingLayers.assign(size_t(c.numLayers), false);
    if (a.sliding == SlidingRule::None)
        return;

    // sliding_window: a number, null (no window), or absent (the config class's default).
    int64_t window = j.contains("sliding_window") ? (f.has("sliding_window") ? f.reqPositive("sliding_window") : 0)
                                                  : int64_t(a.defaultSlidingWindow);
    const bool useFlag = a.sliding == SlidingRule::QwenUseSlidingWindow || a.sliding == SlidingRule::NopeLayers;
    if (useFlag && !f.optBool("use_sliding_window", false))
        window = 0; // Qwen2/Qwen3/SmolLM3Config: the window only counts with use_sliding_window

    if (f.has("layer_types")) {
        const json &lt = j.at("layer_types");
        if (!lt.is_array() || int64_t(lt.size()) != c.numLayers)
            f.fail("layer_types", "must be a list of num_hidden_layers (" + std::to_string(c.numLayers) + ") strings");
        for (size_t i = 0; i < lt.size(); ++i) {
            const std::string t = lt[i].is_string() ? lt[i].get<std::string>() : jsonSnippet(lt[i]);
            if (t != "full_attention" && t != "sliding_attention")
                f.fail("layer_types", "has '" + t + "' at layer " + std::to_string(i)
                        + ": only full_attention and sliding_attention are supported");
            c.slidingLayers[i] = t == "sliding_attention";
        }
    } else {
        const int64_t maxWindowLayers = f.optInt("max_window_layers", 28);
        const int64_t pattern = a.sliding == SlidingRule::Pattern ? f.optPositive("sliding_window_pattern", 6) : 2;
        for (int64_t i = 0; i < c.numLayers; ++i) {
            switch (a.sliding) {
            case SlidingRule::AllLayersWhenSet:
                c.slidingLayers[size_t(i)] = true;
                break;
            case SlidingRule::QwenUseSlidingWindow:
                c.slidingLayers[size_t(i)] = i >= maxWindowLayers;
                break;
            case SlidingRule::Alternating:
            case SlidingRule::Pattern:
                c.slidingLayers[size_t(i)] = (i + 1) % pattern != 0;
                break;
            case SlidingRule::NopeLayers:
                c.slidingLayers[size_t(i)] = c.isNopeLayer(size_t(i));
                break;
            case SlidingRule::None:
                break;
            }
        }
    }
    c.slidingWindow = window;
    // Without a window every layer attends fully; only Gemma 3 keeps the layer types, which also
    // choose its RoPE table.
    if (window == 0 && !a.localRope)
        c.slidingLayers.assign(size_t(c.numLayers), false);
}

// SmolLM3Config: no_rope_layers[i] is 1 where layer i uses RoPE, 0 where it has none; absent, every
// no_rope_layer_interval-th layer (default 4) has none. The list may be longer than the layers.
void parseNopeLayers(ModelConfig &c, const Fields &f, const json &j)
{
    c.nopeLayers.assign(size_t(c.numLayers), false);
    if (f.has("no_rope_layers")) {
        const json &l = j.at("no_rope_layers");
        if (!l.is_array() || int64_t(l.size()) < c.numLayers)
            f.fail("no_rope_layers", "must be a list of at least num_hidden_layers (" + std::to_string(c.numLayers)
                    + ") 0/1 flags");
        for (size_t i = 0; i < size_t(c.numLayers); ++i) {
            const json &v = l[i];
            const bool valid = v.is_boolean() || (v.is_number_integer() && (v == 0 || v == 1));
            if (!valid)
                f.fail("no_rope_layers", "has an entry at layer " + std::to_string(i) + " that is not 0 or 1");
            c.nopeLayers[i] = v.is_boolean() ? !v.get<bool>() : v.get<int64_t>() == 0;
        }
        return;
    }
    const int64_t interval = f.optPositive("no_rope_layer_interval", 4);
    for (int64_t i = 0; i < c.numLayers; ++i)
        c.nopeLayers[size_t(i)] = (i + 1) % interval == 0;
}

// RoPE tables: `rope` for full-attention layers, `ropeLocal` for sliding ones.
void parseRope(ModelConfig &c, const Fields &f, const json &j, const std::string &source)
{
    const ArchInfo &a = *c.arch;
    json view = j;
    // Phi3Config always has original_max_position_embeddings (default 4096), which longrope reads.
    if (a.defaultOriginalMaxPositions > 0 && !f.has("original_max_position_embeddings"))
        view["original_max_position_embeddings"] = a.defaultOriginalMaxPositions;

    bool nested = false;
    if (f.has("rope_parameters") && j.at("rope_parameters").is_object())
        for (auto it = j.at("rope_parameters").begin(); it != j.at("rope_parameters").end(); ++it)
            nested = nested || isLayerTypeKey(it.key());
    const bool anySliding = c.anySlidingLayer();
    const bool anyFull = std::find(c.slidingLayers.begin(), c.slidingLayers.end(), false) != c.slidingLayers.end();

    if (!nested || anyFull)
        c.rope = parseRopeParameters(view, "full_attention", a.defaultRopeTheta, c.maxPositionEmbeddings, source);
    if (nested && anySliding) {
        c.ropeLocal = parseRopeParameters(view, "sliding_attention", a.defaultRopeTheta, c.maxPositionEmbeddings, source);
    } else if (a.localRope) {
        // Gemma 3's older form: sliding layers use rope_local_base_freq with plain RoPE.
        c.ropeLocal = RopeParameters {};
        c.ropeLocal.theta = f.optPositiveNum("rope_local_base_freq", 10000.0);
        c.ropeLocal.partialRotaryFactor = c.rope.partialRotaryFactor;
        c.ropeLocal.maxPositions = c.maxPositionEmbeddings;
    } else {
        c.ropeLocal = c.rope;
    }
    if (nested && !anyFull)
        c.rope = c.ropeLocal;
    c.ropeTheta = c.rope.theta;

    for (const RopeParameters *p : { &c.rope, &c.ropeLocal }) {
        const int64_t dim = int64_t(double(c.headDim) * p->partialRotaryFactor);
        if (dim < 2 || dim % 2 != 0)
            f.fail("head_dim", "times partial_rotary_factor must give an even rotary dimension (got "
                    + std::to_string(dim) + ")");
    }
}

// A softcap field: a positive number, null (none) or absent (the class default).
double parseSoftcap(const Fields &f, const json &j, const char *key, double def)
{
    if (!j.contains(key))
        return def;
    return f.has(key) ? f.optPositiveNum(key, def) : 0.0;
}

void parseLlamaFamily(ModelConfig &c, const Fields &f, const json &j, const std::string &source)
{
    const ArchInfo &a = *c.arch;
    c.vocabSize = f.reqPositive("vocab_size");
    c.hiddenSize = f.reqPositive("hidden_size");
    c.intermediateSize = f.reqPositive("intermediate_size");
    c.numLayers = f.reqPositive("num_hidden_layers");
    c.numHeads = f.reqPositive("num_attention_heads");
    c.numKvHeads = f.optPositive("num_key_value_heads", c.numHeads);
    if (c.numHeads % c.numKvHeads != 0)
        f.fail("num_key_value_heads",
            "(" + std::to_string(c.numKvHeads) + ") must divide num_attention_heads (" + std::to_string(c.numHeads)
                + ")");
    if (f.has("head_dim")) {
        c.headDim = f.reqPositive("head_dim");
    } else if (a.defaultHeadDim > 0) {
        c.headDim = a.defaultHeadDim;
    } else {
        if (c.hiddenSize % c.numHeads != 0)
            f.fail("num_attention_heads",
                "(" + std::to_string(c.numHeads) + ") must divide hidden_size (" + std::to_string(c.hiddenSize)
                    + ") when head_dim is not given");
        c.headDim = c.hiddenSize / c.numHeads;
    }

    c.maxPositionEmbeddings = f.optPositive("max_position_embeddings", a.defaultMaxPositions);
    c.rmsNormEps = f.optPositiveNum("rms_norm_eps", a.defaultNormEps);

    c.hiddenAct = f.optStr(a.activationKey, a.defaultActivation);
    if (a.mlp == MlpKind::GatedSilu && c.hiddenAct != "silu" && c.hiddenAct != "swish") // transformers maps both to SiLU
        f.fail(a.activationKey, "is '" + c.hiddenAct + "': only silu is supported for " + c.modelType);
    if (a.mlp == MlpKind::GatedGeluTanh && c.hiddenAct != "gelu_pytorch_tanh")
        f.fail(a.activationKey, "is '" + c.hiddenAct + "': only gelu_pytorch_tanh is supported for " + c.modelType);

    switch (a.bias) {
    case BiasRule::LlamaFlags:
        c.attentionBias = c.oProjBias = f.optBool("attention_bias", false);
        c.mlpBias = f.optBool("mlp_bias", false);
        break;
    case BiasRule::QkvOnly: // Qwen2Attention hard-codes bias=True on q/k/v and bias=False on o_proj.
        c.attentionBias = true;
        c.oProjBias = c.mlpBias = false;
        break;
    case BiasRule::AttentionFlag:
        c.attentionBias = c.oProjBias = f.optBool("attention_bias", false);
        c.mlpBias = false;
        break;
    case BiasRule::None:
    case BiasRule::Gpt2:
        c.attentionBias = c.oProjBias = c.mlpBias = false;
        break;
    }

    if (a.nopeLayers)
        parseNopeLayers(c, f, j);
    parseLayerTypes(c, f, j);
    parseRope(c, f, j, source);

    c.attentionScale = 1.0 / std::sqrt(double(c.headDim));
    if (a.queryPreAttnScalar)
        c.attentionScale
            = std::pow(f.optPositiveNum("query_pre_attn_scalar", a.defaultQueryPreAttnScalar), -0.5);
    if (a.softcapping) {
        c.attnLogitSoftcapping = parseSoftcap(f, j, "attn_logit_softcapping", a.defaultAttnSoftcap);
        c.finalLogitSoftcapping = parseSoftcap(f, j, "final_logit_softcapping", a.defaultFinalSoftcap);
    }
    c.tieWordEmbeddings = f.optBool("tie_word_embeddings", a.tiedDefault);
}

void parseGpt2(ModelConfig &c, const Fields &f)
{
    c.vocabSize = f.reqPositive("vocab_size");
    c.hiddenSize = f.reqPositive("n_embd");
    c.numLayers = f.reqPositive("n_layer");
    c.numHeads = f.reqPositive("n_head");
    c.numKvHeads = c.numHeads;
    if (c.hiddenSize % c.numHeads != 0)
        f.fail(
            "n_head", "(" + std::to_string(c.numHeads) + ") must divide n_embd (" + std::to_string(c.hiddenSize) + ")");
    c.headDim = c.hiddenSize / c.numHeads;
    c.intermediateSize = f.optPositive("n_inner", 4 * c.hiddenSize);
    c.maxPositionEmbeddings = f.optPositive("n_positions", 1024);
    c.layerNormEps = f.optPositiveNum("layer_norm_epsilon", 1e-5);
    c.activationFunction = f.optStr("activation_function", "gelu_new");
    if (c.activationFunction != "gelu_new" && c.activationFunction != "gelu")
        f.fail("activation_function", "is '" + c.activationFunction + "': only gelu_new and gelu are supported");
    c.hiddenAct = c.activationFunction;
    // Options that change GPT-2's numbers; transformers' defaults are the only ones implemented.
    if (f.optBool("scale_attn_by_inverse_layer_idx", false))
        f.fail("scale_attn_by_inverse_layer_idx", "is true, which is not supported");
    if (!f.optBool("scale_attn_weights", true))
        f.fail("scale_attn_weights", "is false, which is not supported");
    if (f.optBool("add_cross_attention", false))
        f.fail("add_cross_attention", "is true: encoder-decoder GPT-2 is not supported");
    c.tieWordEmbeddings = f.optBool("tie_word_embeddings", true);
}

void writeTokenId(json &j, const char *key, int64_t id)
{
    if (id >= 0)
        j[key] = id;
    else if (j.contains(key))
        j[key] = nullptr;
}

} // namespace

namespace {

// Gemma3ForConditionalGeneration's config.json: the text model is text_config (a Gemma3TextConfig,
// whose defaults real checkpoints rely on: gemma-3-4b's text_config omits the head counts and the
// vocabulary), with the token ids, dtype and tie_word_embeddings the wrapper may hold at top level.
bool isGemma3Wrapper(const json &j)
{
    return j.is_object() && j.contains("model_type") && j["model_type"] == "gemma3" && j.contains("text_config")
        && j["text_config"].is_object();
}

json gemma3TextView(const json &top)
{
    json t = top["text_config"];
    // Gemma3TextConfig defaults (configuration_gemma3.py) for the keys the text model needs.
    const json defaults = { { "model_type", "gemma3_text" }, { "vocab_size", 262208 }, { "hidden_size", 2304 },
        { "intermediate_size", 9216 }, { "num_hidden_layers", 26 }, { "num_attention_heads", 8 },
        { "num_key_value_heads", 4 }, { "head_dim", 256 }, { "query_pre_attn_scalar", 256 },
        { "sliding_window", 4096 } };
    for (auto it = defaults.begin(); it != defaults.end(); ++it)
        if (!t.contains(it.key()))
            t[it.key()] = it.value();
    for (const char *key : { "bos_token_id", "eos_token_id", "pad_token_id", "dtype", "torch_dtype", "tie_word_embeddings" })
        if (!t.contains(key) && top.contains(key))
            t[key] = top[key];
    return t;
}

} // namespace

ModelConfig ModelConfig::fromJson(const nlohmann::json &j, const std::string &source)
{
    if (!j.is_object())
        throw Error(source + ": not a JSON object");
    if (isGemma3Wrapper(j)) {
        const json &arch = j.contains("architectures") ? j["architectures"] : json();
        std::string archName = "Gemma3ForConditionalGeneration";
        if (arch.is_array() && !arch.empty() && arch[0].is_string())
            archName = arch[0].get<std::string>();
        if (archName != "Gemma3ForConditionalGeneration" && archName != "Gemma3ForCausalLM")
            throw Error(source + ": architectures is '" + archName
                + "', which is not a causal language model (Gemma3ForConditionalGeneration is)");
        json text = gemma3TextView(j);
        text.erase("architectures");
        if (text["model_type"] != "gemma3_text")
            throw Error(source + ": text_config.model_type must be 'gemma3_text'");
        ModelConfig c = fromJson(text, source + " (text_config)");
        c.raw = j["text_config"];
        c.wrapperRaw = j;
        c.architecture = archName;
        return c;
    }
    Fields f(j, source);
    ModelConfig c;
    c.raw = j;
    if (!f.has("model_type"))
        f.fail("model_type", "is missing (required)");
    c.modelType = f.optStr("model_type", "");
    c.arch = findModelArch(c.modelType);
    if (!c.arch) {
        const std::string why = refusedModelTypeReason(c.modelType);
        f.fail("model_type", "is '" + c.modelType + "'" + (why.empty() ? ", which is not supported" : ": " + why)
                + " (supported: " + supportedModelTypes() + ")");
    }

    c.architecture = c.arch->architecture;
    if (f.has("architectures")) {
        const json &a = j.at("architectures");
        if (!a.is_array() || (!a.empty() && !a[0].is_string()))
            f.fail("architectures", "must be a list of class names");
        if (!a.empty())
            c.architecture = a[0].get<std::string>();
        const auto endsWith = [&](const std::string &s) {
            return c.architecture.size() >= s.size()
                && c.architecture.compare(c.architecture.size() - s.size(), s.size(), s) == 0;
        };
        // A classification or base-model head would load without an LM head (or with the wrong one).
        if (!endsWith("ForCausalLM") && !endsWith("LMHeadModel"))
            f.fail("architectures", "is '" + c.architecture + "', which is not a causal language model");
    }

    if (c.arch->impl == ArchImpl::Gpt2)
        parseGpt2(c, f);
    else
        parseLlamaFamily(c, f, j, source);

    const auto bos = f.tokenIds("bos_token_id", false);
    c.bosTokenId = bos.empty() ? -1 : bos.front();
    c.eosTokenIds = f.tokenIds("eos_token_id", true);
    const auto pad = f.tokenIds("pad_token_id", false);
    c.padTokenId = pad.empty() ? -1 : pad.front();

    // transformers >= 4.56 writes "dtype", older versions "torch_dtype".
    if (f.has("dtype") && j.at("dtype").is_string())
        c.torchDtype = j.at("dtype").get<std::string>();
    else if (f.has("torch_dtype") && j.at("torch_dtype").is_string())
        c.torchDtype = j.at("torch_dtype").get<std::string>();
    checkModelConfigLimits(c, source); // sizes and token ids, before anything is allocated from them
    return c;
}

ModelConfig ModelConfig::fromDirectory(const std::string &dir)
{
    const std::string configPath = (fs::path(dir) / "config.json").string();
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
        throw Error(dir + ": model folder not found");
    if (!fs::exists(configPath, ec))
        throw Error(configPath + ": not found (is " + dir + " a Hugging Face model folder?)");
    ModelConfig c = fromJson(readJsonFile(configPath), configPath);

    const std::string genPath = (fs::path(dir) / "generation_config.json").string();
    if (fs::exists(genPath, ec)) {
        json g = readJsonFile(genPath);
        if (!g.is_object())
            throw Error(genPath + ": not a JSON object");
        Fields f(g, genPath);
        // generate() takes bos/eos/pad from generation_config.json, so it wins where it speaks.
        const auto bos = f.tokenIds("bos_token_id", false);
        if (!bos.empty())
            c.bosTokenId = bos.front();
        for (int64_t id : f.tokenIds("eos_token_id", true))
            if (!c.isEos(id))
                c.eosTokenIds.push_back(id);
        const auto pad = f.tokenIds("pad_token_id", false);
        if (!pad.empty() && c.padTokenId < 0)
            c.padTokenId = pad.front();
        c.rawGeneration = std::move(g);
        checkModelConfigTokenIds(c, genPath);
    }
    return c;
}

nlohmann::json ModelConfig::toJson() const
{
    if (isMultimodalWrapper()) {
        // Written back as it came: the text model's fields inside text_config (only the keys that
        // were there: absent ones keep their class defaults), token ids and dtype where they were.
        ModelConfig text = *this;
        text.wrapperRaw = nullptr;
        json t = text.toJson();
        json top = wrapperRaw;
        for (auto it = t.begin(); it != t.end();) {
            if (raw.contains(it.key())) {
                ++it;
                continue;
            }
            if (top.contains(it.key()) || it.key() == "dtype")
                top[it.key()] = it.value();
            it = t.erase(it);
        }
        if (top.contains("torch_dtype"))
            top["torch_dtype"] = torchDtype;
        top["text_config"] = t;
        return top;
    }
    json j = raw.is_object() ? raw : json::object();
    j["model_type"] = modelType;
    if (!j.contains("architectures") || !j["architectures"].is_array() || j["architectures"].empty())
        j["architectures"] = json::array({ architecture });
    j["vocab_size"] = vocabSize;
    if (arch && arch->impl == ArchImpl::Gpt2) {
        j["n_embd"] = hiddenSize;
        j["n_layer"] = numLayers;
        j["n_head"] = numHeads;
        j["n_positions"] = maxPositionEmbeddings;
        if ((j.contains("n_inner") && !j["n_inner"].is_null()) || intermediateSize != 4 * hiddenSize)
            j["n_inner"] = intermediateSize;
        j["layer_norm_epsilon"] = layerNormEps;
        j["activation_function"] = activationFunction;
    } else {
        j["hidden_size"] = hiddenSize;
        j["intermediate_size"] = intermediateSize;
        j["num_hidden_layers"] = numLayers;
        j["num_attention_heads"] = numHeads;
        j["num_key_value_heads"] = numKvHeads;
        if (j.contains("head_dim") || (numHeads > 0 && headDim != hiddenSize / numHeads))
            j["head_dim"] = headDim;
        j["max_position_embeddings"] = maxPositionEmbeddings;
        j["rms_norm_eps"] = rmsNormEps;
        j[arch ? arch->activationKey : "hidden_act"] = hiddenAct;
        bool nested = false; // rope_parameters per layer type: written back as read
        if (j.contains("rope_parameters") && j["rope_parameters"].is_object())
            for (auto it = j["rope_parameters"].begin(); it != j["rope_parameters"].end(); ++it)
                nested = nested || isLayerTypeKey(it.key());
        if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) {
            if (!nested)
                j["rope_parameters"]["rope_theta"] = ropeTheta;
        } else {
            j["rope_theta"] = ropeTheta;
        }
        if (arch && (arch->bias == BiasRule::LlamaFlags || arch->bias == BiasRule::AttentionFlag))
            j["attention_bias"] = attentionBias;
        if (arch && arch->bias == BiasRule::LlamaFlags)
            j["mlp_bias"] = mlpBias;
    }
    j["tie_word_embeddings"] = tieWordEmbeddings;
    writeTokenId(j, "bos_token_id", bosTokenId);
    if (eosTokenIds.size() == 1)
        j["eos_token_id"] = eosTokenIds.front();
    else if (eosTokenIds.size() > 1)
        j["eos_token_id"] = eosTokenIds;
    else if (j.contains("eos_token_id"))
        j["eos_token_id"] = nullptr;
    writeTokenId(j, "pad_token_id", padTokenId);
    j["dtype"] = torchDtype;
    if (j.contains("torch_dtype"))
        j["torch_dtype"] = torchDtype;
    return j;
}

bool ModelConfig::anySlidingLayer() const
{
    return std::find(slidingLayers.begin(), slidingLayers.end(), true) != slidingLayers.end();
}

bool ModelConfig::isEos(int64_t id) const
{
    return std::find(eosTokenIds.begin(), eosTokenIds.end(), id) != eosTokenIds.end();
}

} // namespace dpo
