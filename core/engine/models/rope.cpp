#include "engine/models/rope.h"

#include "engine/error.h"
#include "engine/io/json_limits.h"

#include <algorithm>
#include <cmath>

namespace dpo {

namespace {

using json = nlohmann::json;

constexpr double kPi = 3.14159265358979323846;

bool has(const json &j, const char *key)
{
    return j.is_object() && j.contains(key) && !j.at(key).is_null();
}

// Fields of one RoPE dictionary, with errors naming "<where>.<key>".
struct RopeFields {
    const json &j;
    std::string where;
    const std::string &source;

    [[noreturn]] void fail(const std::string &key, const std::string &what) const
    {
        throw Error(source + ": field '" + where + (key.empty() ? "" : "." + key) + "' " + what);
    }
    bool has(const char *key) const { return dpo::has(j, key); }
    double num(const char *key, double def) const
    {
        if (!has(key))
            return def;
        if (!j.at(key).is_number())
            fail(key, "must be a number (got " + jsonSnippet(j.at(key)) + ")");
        return j.at(key).get<double>();
    }
    double reqPositive(const char *key) const
    {
        if (!has(key))
            fail(key, "is missing (required for rope_type '" + type() + "')");
        const double v = num(key, 0.0);
        if (!(v > 0) || !std::isfinite(v))
            fail(key, "must be a positive number (got " + jsonSnippet(j.at(key)) + ")");
        return v;
    }
    std::vector<double> list(const char *key) const
    {
        if (!has(key) || !j.at(key).is_array())
            fail(key, "must be a list of numbers (required for rope_type '" + type() + "')");
        std::vector<double> out;
        for (const auto &v : j.at(key)) {
            if (!v.is_number())
                fail(key, "must be a list of numbers");
            out.push_back(v.get<double>());
        }
        return out;
    }
    std::string type() const
    {
        for (const char *key : { "rope_type", "type" })
            if (has(key)) {
                if (!j.at(key).is_string())
                    fail(key, "must be a string (got " + jsonSnippet(j.at(key)) + ")");
                return j.at(key).get<std::string>();
            }
        return "default";
    }
};

bool isRopeLayerTypeKey(const std::string &k)
{
    return k == "full_attention" || k == "sliding_attention" || k == "chunked_attention" || k == "linear_attention";
}

// transformers' find_correction_dim: the dimension whose wavelength makes `rotations` turns over
// `positions` positions.
double correctionDim(double rotations, int64_t dim, double base, double positions)
{
    return (double(dim) * std::log(positions / (rotations * 2.0 * kPi))) / (2.0 * std::log(base));
}

double yarnMscale(double scale, double mscale)
{
    return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}

} // namespace

bool RopeParameters::operator==(const RopeParameters &o) const
{
    return type == o.type && theta == o.theta && partialRotaryFactor == o.partialRotaryFactor && factor == o.factor
        && lowFreqFactor == o.lowFreqFactor && highFreqFactor == o.highFreqFactor
        && originalMaxPositions == o.originalMaxPositions && maxPositions == o.maxPositions
        && attentionFactor == o.attentionFactor && betaFast == o.betaFast && betaSlow == o.betaSlow
        && mscale == o.mscale && mscaleAllDim == o.mscaleAllDim && truncate == o.truncate
        && shortFactor == o.shortFactor && longFactor == o.longFactor;
}

RopeParameters parseRopeParameters(const json &config, const std::string &layerType, double defaultTheta,
    int64_t maxPositions, const std::string &source)
{
    static const json kEmpty = json::object();
    const json *dict = &kEmpty;
    std::string where = "rope_parameters";
    bool nested = false;
    // transformers 5: `rope_parameters = rope_scaling or rope_parameters`, so a non-empty rope_scaling wins.
    const bool scaling = has(config, "rope_scaling")
        && !(config.at("rope_scaling").is_object() && config.at("rope_scaling").empty());
    if (!scaling && has(config, "rope_parameters")) {
        const json &rp = config.at("rope_parameters");
        if (!rp.is_object())
            throw Error(source + ": field 'rope_parameters' must be an object");
        for (auto it = rp.begin(); it != rp.end(); ++it)
            nested = nested || isRopeLayerTypeKey(it.key());
        if (nested) {
            where = "rope_parameters." + layerType;
            if (!has(rp, layerType.c_str()) || !rp.at(layerType).is_object())
                throw Error(source + ": field '" + where + "' is missing: rope_parameters is given per layer type and "
                    + "the model has " + layerType + " layers");
            dict = &rp.at(layerType);
        } else {
            dict = &rp;
        }
    } else if (scaling) {
        where = "rope_scaling";
        if (!config.at("rope_scaling").is_object())
            throw Error(source + ": field 'rope_scaling' must be an object or null");
        dict = &config.at("rope_scaling");
    }
    const RopeFields f { *dict, where, source };

    RopeParameters p;
    p.maxPositions = maxPositions;
    p.type = f.type();
    if (p.type == "su") // the name early Phi-3 configs use for longrope
        p.type = "longrope";

    // rope_theta and partial_rotary_factor: in the dictionary, else at the top level, else the default.
    p.theta = defaultTheta;
    if (has(config, "rope_theta")) {
        if (!config.at("rope_theta").is_number())
            throw Error(source + ": field 'rope_theta' must be a number");
        p.theta = config.at("rope_theta").get<double>();
    }
    p.theta = f.num("rope_theta", p.theta);
    if (!(p.theta > 1.0) || !std::isfinite(p.theta))
        throw Error(source + ": field '" + (f.has("rope_theta") ? where + "." : std::string()) + "rope_theta' must be "
            + "a number greater than 1 (got " + std::to_string(p.theta) + ")");
    if (has(config, "partial_rotary_factor")) {
        if (!config.at("partial_rotary_factor").is_number())
            throw Error(source + ": field 'partial_rotary_factor' must be a number");
        p.partialRotaryFactor = config.at("partial_rotary_factor").get<double>();
    }
    p.partialRotaryFactor = f.num("partial_rotary_factor", p.partialRotaryFactor);
    if (!(p.partialRotaryFactor > 0.0 && p.partialRotaryFactor <= 1.0))
        throw Error(source + ": field 'partial_rotary_factor' must be in (0, 1] (got "
            + std::to_string(p.partialRotaryFactor) + ")");

    // The pre-training context of the scaled variants. A flat config's top-level
    // original_max_position_embeddings wins (Phi-3 keeps it there), as transformers' standardisation does.
    auto originalMax = [&]() -> int64_t {
        double v = double(maxPositions);
        if (!nested && has(config, "original_max_position_embeddings")) {
            if (!config.at("original_max_position_embeddings").is_number())
                throw Error(source + ": field 'original_max_position_embeddings' must be a number");
            v = config.at("original_max_position_embeddings").get<double>();
        } else if (f.has("original_max_position_embeddings")) {
            v = f.num("original_max_position_embeddings", v);
        }
        if (!(v >= 1) || std::floor(v) != v)
            f.fail("original_max_position_embeddings", "must be a positive integer");
        return int64_t(v);
    };

    if (p.type == "default") {
        return p;
    } else if (p.type == "linear") {
        p.factor = f.reqPositive("factor");
    } else if (p.type == "llama3") {
        p.factor = f.reqPositive("factor");
        p.lowFreqFactor = f.reqPositive("low_freq_factor");
        p.highFreqFactor = f.reqPositive("high_freq_factor");
        if (!(p.highFreqFactor > p.lowFreqFactor))
            f.fail("high_freq_factor", "must be greater than low_freq_factor");
        p.originalMaxPositions = originalMax();
    } else if (p.type == "yarn") {
        p.originalMaxPositions = originalMax();
        p.factor = f.reqPositive("factor"); // required by transformers' yarn validation
        p.attentionFactor = f.num("attention_factor", 0.0);
        // transformers: `get("beta_fast") or 32`, so 0 and null both mean the default.
        p.betaFast = f.num("beta_fast", 0.0);
        p.betaFast = p.betaFast != 0.0 ? p.betaFast : 32.0;
        p.betaSlow = f.num("beta_slow", 0.0);
        p.betaSlow = p.betaSlow != 0.0 ? p.betaSlow : 1.0;
        p.mscale = f.num("mscale", 0.0);
        p.mscaleAllDim = f.num("mscale_all_dim", 0.0);
        if (f.has("truncate")) {
            if (!f.j.at("truncate").is_boolean())
                f.fail("truncate", "must be true or false");
            p.truncate = f.j.at("truncate").get<bool>();
        }
    } else if (p.type == "longrope") {
        p.originalMaxPositions = originalMax();
        p.shortFactor = f.list("short_factor");
        p.longFactor = f.list("long_factor");
        p.factor = f.has("factor") ? f.reqPositive("factor") : double(maxPositions) / double(p.originalMaxPositions);
        p.attentionFactor = f.num("attention_factor", 0.0);
    } else if (p.type == "dynamic") {
        f.fail("rope_type", "is 'dynamic': dynamic NTK scaling (frequencies that change with the sequence "
                            "length seen so far) is not supported");
    } else {
        f.fail("rope_type", "is '" + p.type + "', which is not supported (supported: default, linear, llama3, yarn, "
                                              "longrope)");
    }
    return p;
}

int64_t ropeRotaryDim(const RopeParameters &p, int64_t headDim)
{
    const int64_t dim = int64_t(double(headDim) * p.partialRotaryFactor); // Python's int(): truncation
    return 2 * ((dim + 1) / 2);
}

std::pair<torch::Tensor, double> ropeInverseFrequencies(
    const RopeParameters &p, int64_t headDim, int64_t seqLen, torch::Device device)
{
    const int64_t dim = int64_t(double(headDim) * p.partialRotaryFactor);
    if (dim < 1)
        throw Error("RoPE: rotary dimension int(head_dim * partial_rotary_factor) is " + std::to_string(dim));
    const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(device);
    const auto i64 = torch::TensorOptions().dtype(torch::kInt64).device(device);
    // base ** (arange(0, dim, 2) / dim), the base a float32 scalar as in PyTorch's scalar ** tensor.
    auto exponent = torch::arange(0, dim, 2, i64).to(torch::kFloat32) / double(dim); // [dim/2]
    auto basePow = torch::pow(torch::scalar_tensor(p.theta, f32), exponent);
    double attention = 1.0;

    if (p.type == "default")
        return { 1.0 / basePow, attention };

    if (p.type == "linear")
        return { (1.0 / basePow) / p.factor, attention };

    if (p.type == "llama3") {
        auto invFreq = 1.0 / basePow;
        const double old = double(p.originalMaxPositions);
        const double lowFreqWavelen = old / p.lowFreqFactor;
        const double highFreqWavelen = old / p.highFreqFactor;
        auto wavelen = 2 * kPi / invFreq;
        // Wavelengths longer than old / low_freq_factor are divided by factor; shorter than
        // old / high_freq_factor kept; in between a smooth blend.
        auto llama = torch::where(wavelen > lowFreqWavelen, invFreq / p.factor, invFreq);
        auto smooth = (old / wavelen - p.lowFreqFactor) / (p.highFreqFactor - p.lowFreqFactor);
        auto smoothed = (1 - smooth) * llama / p.factor + smooth * llama;
        auto medium = (wavelen < highFreqWavelen).logical_not() & (wavelen > lowFreqWavelen).logical_not();
        return { torch::where(medium, smoothed, llama), attention };
    }

    if (p.type == "yarn") {
        const double factor = p.factor;
        if (p.attentionFactor > 0)
            attention = p.attentionFactor;
        else if (p.mscale != 0 && p.mscaleAllDim != 0)
            attention = yarnMscale(factor, p.mscale) / yarnMscale(factor, p.mscaleAllDim);
        else
            attention = yarnMscale(factor, 1.0);

        auto extrapolation = 1.0 / basePow;
        auto interpolation = 1.0 / (factor * basePow);
        double low = correctionDim(p.betaFast, dim, p.theta, double(p.originalMaxPositions));
        double high = correctionDim(p.betaSlow, dim, p.theta, double(p.originalMaxPositions));
        if (p.truncate) {
            low = std::floor(low);
            high = std::ceil(high);
        }
        low = std::max(low, 0.0);
        high = std::min(high, double(dim - 1));
        if (low == high)
            high += 0.001; // transformers' guard against a zero-width ramp
        auto ramp = ((torch::arange(dim / 2, f32) - low) / (high - low)).clamp(0, 1);
        auto extrapolationFactor = 1 - ramp;
        return { interpolation * (1 - extrapolationFactor) + extrapolation * extrapolationFactor, attention };
    }

    if (p.type == "longrope") {
        const double factor = p.factor;
        if (p.attentionFactor > 0)
            attention = p.attentionFactor;
        else if (factor <= 1.0)
            attention = 1.0;
        else
            attention = std::sqrt(1.0 + std::log(factor) / std::log(double(p.originalMaxPositions)));
        const auto &ext = seqLen > p.originalMaxPositions ? p.longFactor : p.shortFactor;
        if (int64_t(ext.size()) != exponent.size(0))
            throw Error("RoPE: longrope " + std::string(seqLen > p.originalMaxPositions ? "long" : "short")
                + "_factor has " + std::to_string(ext.size()) + " entries, the rotary dimension needs "
                + std::to_string(exponent.size(0)));
        auto extFactors = torch::tensor(ext, torch::TensorOptions().dtype(torch::kFloat64)).to(f32);
        return { 1.0 / (extFactors * basePow), attention };
    }
    throw Error("RoPE: rope_type '" + p.type + "' is not supported");
}

RotaryEmbedding::RotaryEmbedding(RopeParameters params, int64_t headDim)
    : m_params(std::move(params))
    , m_headDim(headDim)
    , m_rotaryDim(ropeRotaryDim(m_params, headDim))
{
}

std::pair<torch::Tensor, torch::Tensor> RotaryEmbedding::cosSin(
    const torch::Tensor &positions, torch::ScalarType dtype) const
{
    // longrope switches to its long factors once a forward reaches past the original context.
    int64_t seqLen = 0;
    if (m_params.type == "longrope" && positions.numel() > 0)
        seqLen = positions.max().item<int64_t>() + 1;
    auto [invFreq, attention] = ropeInverseFrequencies(m_params, m_headDim, seqLen, positions.device());
    // freqs [B, T, d/2] = positions ⊗ inv_freq; emb = [freqs, freqs]: [B, T, d]
    auto freqs = positions.to(torch::kFloat32).unsqueeze(-1) * invFreq;
    auto emb = torch::cat({ freqs, freqs }, -1);
    auto cos = emb.cos(), sin = emb.sin();
    if (attention != 1.0) {
        cos = cos * attention;
        sin = sin * attention;
    }
    return { cos.to(dtype), sin.to(dtype) };
}

} // namespace dpo
