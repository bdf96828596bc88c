// dpo-cli inspect --model DIR [--json]
// Says what the engine makes of a model folder without loading its weights: the architecture-table
// row (model_arch.h) config.json was recognised as, and the traits that row and the config imply
// (norms, positions and RoPE parameters, MLP, biases, q/k norm, fused projections, sliding window
// and which layers slide, soft-caps, tied head, head_dim, GQA ratio, vocabulary), the parameter
// count and stored dtype from the safetensors headers (memory-mapped, never read), and the
// tokenizer and chat template found. Human-readable by default; --json prints one JSON object.
// A config the engine refuses exits 1 with the refusal (the same message loading would give).
#include "commands.h"

#include "engine/error.h"
#include "engine/io/safetensors.h"
#include "engine/models/model_arch.h"
#include "engine/models/model_config.h"
#include "engine/tokenizers/tokenizer.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json ropeJson(const dpo::RopeParameters &r)
{
    json j { { "type", r.type }, { "theta", r.theta }, { "partial_rotary_factor", r.partialRotaryFactor } };
    if (r.type != "default")
        j["factor"] = r.factor;
    if (r.type == "llama3") {
        j["low_freq_factor"] = r.lowFreqFactor;
        j["high_freq_factor"] = r.highFreqFactor;
    }
    if (r.type == "llama3" || r.type == "yarn" || r.type == "longrope")
        j["original_max_position_embeddings"] = r.originalMaxPositions;
    if (r.type == "yarn") {
        j["attention_factor"] = r.attentionFactor;
        j["beta_fast"] = r.betaFast;
        j["beta_slow"] = r.betaSlow;
        j["truncate"] = r.truncate;
    }
    if (r.type == "longrope") {
        j["attention_factor"] = r.attentionFactor;
        j["short_factor_count"] = r.shortFactor.size();
        j["long_factor_count"] = r.longFactor.size();
    }
    return j;
}

const char *biasRuleName(dpo::BiasRule b)
{
    switch (b) {
    case dpo::BiasRule::None:
        return "none";
    case dpo::BiasRule::LlamaFlags:
        return "attention_bias / mlp_bias flags";
    case dpo::BiasRule::QkvOnly:
        return "q/k/v only";
    case dpo::BiasRule::AttentionFlag:
        return "attention_bias flag";
    case dpo::BiasRule::Gpt2:
        return "every linear and norm";
    }
    return "?";
}

// Parameter count and stored dtypes from the safetensors headers (files are mapped, not read).
json weightsJson(const std::string &dir)
{
    std::vector<std::string> files;
    const fs::path single = fs::path(dir) / "model.safetensors";
    const fs::path index = fs::path(dir) / "model.safetensors.index.json";
    std::error_code ec;
    if (fs::exists(single, ec)) {
        files.push_back(single.string());
    } else if (fs::exists(index, ec)) {
        std::ifstream in(index);
        json j = json::parse(in, nullptr, false);
        if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
            throw dpo::Error(index.string() + ": no \"weight_map\" object");
        std::set<std::string> shards;
        for (const auto &v : j["weight_map"])
            if (v.is_string())
                shards.insert(v.get<std::string>());
        for (const auto &s : shards)
            files.push_back((fs::path(dir) / s).string());
    } else {
        return json { { "files", json::array() }, { "parameters", nullptr }, { "stored_dtype", nullptr } };
    }
    std::set<std::string> seen;
    std::map<std::string, int64_t> byDtype;
    int64_t total = 0;
    for (const auto &f : files) {
        const auto st = dpo::SafetensorsFile::open(f);
        for (const auto &name : st.names()) {
            if (!seen.insert(name).second)
                continue;
            const auto &e = st.entry(name);
            int64_t n = 1;
            for (int64_t d : e.shape)
                n *= d;
            total += n;
            byDtype[e.dtypeName] += n;
        }
    }
    std::string dtypes;
    for (const auto &kv : byDtype)
        dtypes += (dtypes.empty() ? "" : ", ") + kv.first;
    json fileNames = json::array();
    for (const auto &f : files)
        fileNames.push_back(fs::path(f).filename().string());
    return json { { "files", fileNames }, { "tensors", seen.size() }, { "parameters", total },
        { "stored_dtype", dtypes } };
}

json tokenizerJson(const std::string &dir)
{
    json files = json::array();
    std::error_code ec;
    for (const auto &name : dpo::Tokenizer::tokenizerFileNames())
        if (fs::is_regular_file(fs::path(dir) / name, ec))
            files.push_back(name);
    json j { { "files", files } };
    try {
        const auto tok = dpo::loadTokenizer(dir);
        j["kind"] = tok->kind();
        j["vocab_size"] = tok->vocabSize();
    } catch (const dpo::Error &e) {
        j["kind"] = nullptr;
        j["error"] = e.what();
    }
    // Where transformers looks for a chat template (see engine/chat/chat_template.h).
    bool chat = fs::is_regular_file(fs::path(dir) / "chat_template.jinja", ec)
        || fs::is_regular_file(fs::path(dir) / "chat_template.json", ec);
    if (!chat) {
        std::ifstream in(fs::path(dir) / "tokenizer_config.json");
        if (in) {
            const json cfg = json::parse(in, nullptr, false);
            chat = cfg.is_object() && cfg.contains("chat_template") && !cfg["chat_template"].is_null();
        }
    }
    j["chat_template"] = chat;
    return j;
}

json inspect(const std::string &dir)
{
    const dpo::ModelConfig c = dpo::ModelConfig::fromDirectory(dir);
    const dpo::ArchInfo &a = *c.arch;
    json j;
    j["model"] = dir;
    j["model_type"] = c.modelType;
    j["architecture"] = c.architecture;
    j["family"] = a.modelType;
    j["implementation"] = a.impl == dpo::ArchImpl::Gpt2 ? "Gpt2Model" : "LlamaModel";
    j["norm"] = { { "kind", dpo::toString(a.norm) }, { "placement", dpo::toString(a.placement) },
        { "eps", a.norm == dpo::NormKind::LayerNorm ? c.layerNormEps : c.rmsNormEps } };
    if (a.positions == dpo::PositionKind::Rope) {
        j["positions"] = "rope";
        j["rope"] = ropeJson(c.rope);
        if (a.localRope)
            j["rope_sliding"] = ropeJson(c.ropeLocal);
        json nope = json::array();
        for (size_t i = 0; i < c.nopeLayers.size(); ++i)
            if (c.nopeLayers[i])
                nope.push_back(i);
        if (a.nopeLayers)
            j["no_rope_layers"] = nope;
    } else {
        j["positions"] = "learned";
    }
    j["max_position_embeddings"] = c.maxPositionEmbeddings;
    j["mlp"] = { { "kind", dpo::toString(a.mlp) },
        { "activation", a.impl == dpo::ArchImpl::Gpt2 ? c.activationFunction : c.hiddenAct } };
    j["bias"] = { { "rule", biasRuleName(a.bias) }, { "qkv", c.attentionBias || a.bias == dpo::BiasRule::Gpt2 },
        { "o_proj", c.oProjBias || a.bias == dpo::BiasRule::Gpt2 }, { "mlp", c.mlpBias || a.bias == dpo::BiasRule::Gpt2 } };
    j["qk_norm"] = dpo::toString(a.qkNorm);
    j["fused_qkv"] = a.fusedQkv;
    j["fused_gate_up"] = a.fusedGateUp;
    j["embedding_scale"] = a.embedScale;
    json sliding = json::array();
    for (size_t i = 0; i < c.slidingLayers.size(); ++i)
        if (c.slidingLayers[i])
            sliding.push_back(i);
    j["sliding_window"] = c.slidingWindow > 0 && !sliding.empty() ? json(c.slidingWindow) : json(nullptr);
    j["sliding_rule"] = dpo::toString(a.sliding);
    j["sliding_layers"] = sliding;
    j["attn_logit_softcapping"] = c.attnLogitSoftcapping > 0 ? json(c.attnLogitSoftcapping) : json(nullptr);
    j["final_logit_softcapping"] = c.finalLogitSoftcapping > 0 ? json(c.finalLogitSoftcapping) : json(nullptr);
    j["attention_scale"] = c.attentionScale > 0 ? c.attentionScale : 1.0 / std::sqrt(double(c.headDim));
    j["tied_lm_head"] = c.tieWordEmbeddings;
    j["layers"] = c.numLayers;
    j["hidden_size"] = c.hiddenSize;
    j["intermediate_size"] = c.intermediateSize;
    j["num_attention_heads"] = c.numHeads;
    j["num_key_value_heads"] = c.numKvHeads;
    j["head_dim"] = c.headDim;
    j["gqa_ratio"] = c.numKvHeads > 0 ? c.numHeads / c.numKvHeads : 0;
    j["vocab_size"] = c.vocabSize;
    j["config_dtype"] = c.torchDtype;
    j["weights"] = weightsJson(dir);
    j["tokenizer"] = tokenizerJson(dir);
    return j;
}

std::string str(const json &v)
{
    if (v.is_null())
        return "none";
    if (v.is_string())
        return v.get<std::string>();
    if (v.is_boolean())
        return v.get<bool>() ? "yes" : "no";
    return v.dump();
}

std::string ropeLine(const json &r)
{
    std::string s = r["type"].get<std::string>();
    for (const auto &kv : r.items())
        if (kv.key() != "type")
            s += " " + kv.key() + "=" + str(kv.value());
    return s;
}

void printHuman(const json &j)
{
    std::ostringstream o;
    auto line = [&](const std::string &k, const std::string &v) { o << "  " << k << std::string(k.size() < 22 ? 22 - k.size() : 1, ' ') << v << "\n"; };
    o << j["model"].get<std::string>() << "\n";
    line("family", str(j["family"]) + " (" + str(j["architecture"]) + ", " + str(j["implementation"]) + ")");
    line("norm", str(j["norm"]["kind"]) + ", " + str(j["norm"]["placement"]) + ", eps " + str(j["norm"]["eps"]));
    if (j["positions"] == "rope") {
        line("positions", "RoPE " + ropeLine(j["rope"]));
        if (j.contains("rope_sliding"))
            line("positions (sliding)", "RoPE " + ropeLine(j["rope_sliding"]));
        if (j.contains("no_rope_layers")) {
            std::string layers;
            for (const auto &l : j["no_rope_layers"])
                layers += (layers.empty() ? "" : " ") + l.dump();
            line("no RoPE on layers", layers.empty() ? "none" : layers);
        }
    } else {
        line("positions", "learned");
    }
    line("max positions", str(j["max_position_embeddings"]));
    line("mlp", str(j["mlp"]["kind"]) + " (" + str(j["mlp"]["activation"]) + ")");
    line("biases", str(j["bias"]["rule"]) + ": qkv " + str(j["bias"]["qkv"]) + ", o_proj " + str(j["bias"]["o_proj"])
            + ", mlp " + str(j["bias"]["mlp"]));
    line("q/k norm", str(j["qk_norm"]));
    line("fused projections", std::string("qkv ") + str(j["fused_qkv"]) + ", gate_up " + str(j["fused_gate_up"]));
    line("embedding scale", str(j["embedding_scale"]));
    std::string layers;
    for (const auto &l : j["sliding_layers"])
        layers += (layers.empty() ? "" : ", ") + l.dump();
    line("sliding window", j["sliding_window"].is_null() ? "none (" + str(j["sliding_rule"]) + ")"
            : str(j["sliding_window"]) + " on layers " + layers + " (" + str(j["sliding_rule"]) + ")");
    line("soft-caps", "attention " + str(j["attn_logit_softcapping"]) + ", final " + str(j["final_logit_softcapping"]));
    line("attention scale", str(j["attention_scale"]));
    line("tied lm_head", str(j["tied_lm_head"]));
    line("layers", str(j["layers"]) + " (hidden " + str(j["hidden_size"]) + ", intermediate " + str(j["intermediate_size"]) + ")");
    line("heads", str(j["num_attention_heads"]) + " query, " + str(j["num_key_value_heads"]) + " key/value (GQA ratio "
            + str(j["gqa_ratio"]) + "), head_dim " + str(j["head_dim"]));
    line("vocab", str(j["vocab_size"]));
    const json &w = j["weights"];
    line("parameters", w["parameters"].is_null() ? "no weights found" : str(w["parameters"]));
    line("stored dtype", str(w["stored_dtype"]) + " (config: " + str(j["config_dtype"]) + ")");
    const json &t = j["tokenizer"];
    line("tokenizer", t["kind"].is_null() ? "not usable: " + str(t["error"]) : str(t["kind"]) + ", " + str(t["vocab_size"]) + " ids");
    line("chat template", t["chat_template"].get<bool>() ? "present" : "absent");
    std::cout << o.str() << std::flush;
}

dpocli::CommandRegistrar regInspect([](CLI::App &app) {
    auto model = std::make_shared<std::string>();
    auto asJson = std::make_shared<bool>(false);
    CLI::App *cmd = app.add_subcommand("inspect",
        "Show the model family and traits the engine recognises in a model folder (config and headers only)");
    cmd->add_option("--model", *model, "Model folder (Hugging Face layout)")->required();
    cmd->add_flag("--json", *asJson, "Print one JSON object instead of text");
    cmd->callback([model, asJson] {
        const json j = inspect(*model);
        if (*asJson)
            dpocli::printJson(j);
        else
            printHuman(j);
    });
});

} // namespace
