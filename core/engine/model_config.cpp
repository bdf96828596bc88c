#include "engine/model_config.h"

#include "engine/error.h"

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
            fail(key, "must be a number (got " + m_j.at(key).dump() + ")");
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
            fail(key, "must be true or false (got " + m_j.at(key).dump() + ")");
        return m_j.at(key).get<bool>();
    }
    std::string optStr(const std::string &key, const std::string &def) const
    {
        if (!has(key))
            return def;
        if (!m_j.at(key).is_string())
            fail(key, "must be a string (got " + m_j.at(key).dump() + ")");
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
                    fail(key, "must be an integer or a list of integers (got " + v.dump() + ")");
                out.push_back(e.get<int64_t>());
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
            fail(key, "must be an integer (got " + v.dump() + ")");
        return v.is_number_float() ? int64_t(v.get<double>()) : v.get<int64_t>();
    }

    const json &m_j;
    std::string m_source;
};

json readJsonFile(const std::string &path)
{
    std::ifstream in(path);
    if (!in)
        throw Error(path + ": cannot read");
    try {
        return json::parse(in);
    } catch (const json::exception &e) {
        throw Error(path + ": invalid JSON (" + e.what() + ")");
    }
}

std::string defaultArchitecture(const std::string &type)
{
    if (type == "llama")
        return "LlamaForCausalLM";
    if (type == "mistral")
        return "MistralForCausalLM";
    if (type == "qwen2")
        return "Qwen2ForCausalLM";
    return "GPT2LMHeadModel";
}

// The RoPE base, refusing every RoPE variant other than the plain one (linear/dynamic/yarn/llama3
// scaling would run but give different numbers than transformers).
double parseRope(const Fields &f, const json &j, const std::string &source)
{
    double theta = f.optPositiveNum("rope_theta", 10000.0);
    if (f.has("rope_parameters")) {
        const json &rp = j.at("rope_parameters");
        if (!rp.is_object())
            f.fail("rope_parameters", "must be an object");
        Fields r(rp, source);
        for (const char *key : { "rope_type", "type" }) {
            const std::string t = r.optStr(key, "default");
            if (t != "default")
                throw Error(source + ": field 'rope_parameters." + key + "' is '" + t
                    + "': only the default RoPE is supported (no RoPE scaling)");
        }
        if (r.has("rope_theta"))
            theta = r.optPositiveNum("rope_theta", theta);
    }
    if (f.has("rope_scaling")) {
        const json &rs = j.at("rope_scaling");
        if (!rs.is_object())
            f.fail("rope_scaling", "must be an object or null");
        Fields r(rs, source);
        std::string t = r.optStr("rope_type", r.optStr("type", ""));
        if (t.empty() && !rs.empty())
            f.fail("rope_scaling", "is set without a type: RoPE scaling is not supported");
        if (!t.empty() && t != "default")
            f.fail("rope_scaling", "has type '" + t + "': RoPE scaling is not supported (only default RoPE)");
    }
    return theta;
}

void parseLlamaFamily(ModelConfig &c, const Fields &f, const json &j, const std::string &source)
{
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
    } else {
        if (c.hiddenSize % c.numHeads != 0)
            f.fail("num_attention_heads",
                "(" + std::to_string(c.numHeads) + ") must divide hidden_size (" + std::to_string(c.hiddenSize)
                    + ") when head_dim is not given");
        c.headDim = c.hiddenSize / c.numHeads;
    }
    if (c.headDim % 2 != 0)
        f.fail("head_dim", "must be even for RoPE (got " + std::to_string(c.headDim) + ")");

    const int64_t defaultMaxPos = c.modelType == "llama" ? 2048 : c.modelType == "mistral" ? 4096 * 32 : 32768;
    c.maxPositionEmbeddings = f.optPositive("max_position_embeddings", defaultMaxPos);
    c.rmsNormEps = f.optPositiveNum("rms_norm_eps", 1e-6);
    c.ropeTheta = parseRope(f, j, source);

    c.hiddenAct = f.optStr("hidden_act", "silu");
    if (c.hiddenAct != "silu" && c.hiddenAct != "swish") // transformers maps both to SiLU
        f.fail("hidden_act", "is '" + c.hiddenAct + "': only silu is supported for " + c.modelType);

    if (c.modelType == "llama") {
        c.attentionBias = f.optBool("attention_bias", false);
        c.oProjBias = c.attentionBias;
        c.mlpBias = f.optBool("mlp_bias", false);
    } else if (c.modelType == "qwen2") {
        // Qwen2Attention hard-codes bias=True on q/k/v and bias=False on o_proj.
        c.attentionBias = true;
        c.oProjBias = false;
        c.mlpBias = false;
    } else { // mistral: no biases anywhere
        c.attentionBias = c.oProjBias = c.mlpBias = false;
    }

    // Sliding-window attention changes results only when the window is shorter than the
    // sequences the model can see; refuse those configs rather than run full attention.
    if (c.modelType == "mistral") {
        const int64_t window = f.has("sliding_window") ? f.reqPositive("sliding_window")
            : j.contains("sliding_window")             ? -1 // explicit null: no window
                                                       : 4096; // MistralConfig's default when the field is absent
        if (window > 0 && window < c.maxPositionEmbeddings)
            f.fail("sliding_window",
                "is " + std::to_string(window) + ", shorter than max_position_embeddings ("
                    + std::to_string(c.maxPositionEmbeddings) + "): sliding-window attention is not supported");
    } else if (c.modelType == "qwen2") {
        const bool use = f.optBool("use_sliding_window", false);
        const int64_t window = f.optInt("sliding_window", 4096);
        const int64_t fullLayers = f.optInt("max_window_layers", 28);
        bool slidingLayer = use && fullLayers < c.numLayers;
        if (f.has("layer_types") && j.at("layer_types").is_array())
            for (const auto &t : j.at("layer_types"))
                if (t == "sliding_attention")
                    slidingLayer = true;
        if (slidingLayer && window > 0 && window < c.maxPositionEmbeddings)
            f.fail(use ? "use_sliding_window" : "layer_types",
                "enables sliding-window attention (window " + std::to_string(window) + " < max_position_embeddings "
                    + std::to_string(c.maxPositionEmbeddings) + "), which is not supported");
    }
    c.tieWordEmbeddings = f.optBool("tie_word_embeddings", false);
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

ModelConfig ModelConfig::fromJson(const nlohmann::json &j, const std::string &source)
{
    if (!j.is_object())
        throw Error(source + ": not a JSON object");
    Fields f(j, source);
    ModelConfig c;
    c.raw = j;
    if (!f.has("model_type"))
        f.fail("model_type", "is missing (required)");
    c.modelType = f.optStr("model_type", "");
    if (c.modelType != "llama" && c.modelType != "mistral" && c.modelType != "qwen2" && c.modelType != "gpt2")
        f.fail(
            "model_type", "is '" + c.modelType + "', which is not supported (supported: llama, mistral, qwen2, gpt2)");

    c.architecture = defaultArchitecture(c.modelType);
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

    if (c.modelType == "gpt2")
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
    }
    return c;
}

nlohmann::json ModelConfig::toJson() const
{
    json j = raw.is_object() ? raw : json::object();
    j["model_type"] = modelType;
    if (!j.contains("architectures") || !j["architectures"].is_array() || j["architectures"].empty())
        j["architectures"] = json::array({ architecture });
    j["vocab_size"] = vocabSize;
    if (modelType == "gpt2") {
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
        j["hidden_act"] = hiddenAct;
        if (j.contains("rope_parameters") && j["rope_parameters"].is_object())
            j["rope_parameters"]["rope_theta"] = ropeTheta;
        else
            j["rope_theta"] = ropeTheta;
        if (modelType == "llama") {
            j["attention_bias"] = attentionBias;
            j["mlp_bias"] = mlpBias;
        }
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

bool ModelConfig::isEos(int64_t id) const
{
    return std::find(eosTokenIds.begin(), eosTokenIds.end(), id) != eosTokenIds.end();
}

} // namespace dpo
