#include "engine/models/lora.h"

#include "engine/error.h"
#include "engine/models/causal_lm.h"
#include "engine/models/gpt2_model.h"
#include "engine/models/llama_model.h"

#include <algorithm>
#include <cmath>
#include <regex>
#include <set>

namespace dpo {

double LoraConfig::scaling() const
{
    return useRslora ? alpha / std::sqrt(double(r)) : alpha / double(r);
}

void LoraConfig::validate() const
{
    auto fail = [](const std::string &key, const std::string &why) { throw Error("option '" + key + "': " + why); };
    if (r < 1)
        fail("lora_r", "must be >= 1");
    if (!std::isfinite(alpha) || alpha <= 0)
        fail("lora_alpha", "must be > 0");
    if (!(dropout >= 0 && dropout < 1))
        fail("lora_dropout", "must be in [0, 1)");
    for (const auto &t : targetModules)
        if (t.empty())
            fail("lora_target_modules", "a module name is empty");
    if (!targetRegex.empty()) {
        try {
            std::regex re(targetRegex);
        } catch (const std::regex_error &e) {
            fail("lora_target_modules", "'" + targetRegex + "' is not a valid regular expression (" + e.what() + ")");
        }
    }
}

torch::Tensor LoraLayer::apply(const torch::Tensor &x, const torch::Tensor &y, bool training) const
{
    if (!enabled)
        return y;
    // PEFT: x cast to the adapter's dtype, result + lora_B(lora_A(dropout(x))) * scaling, cast back.
    auto xa = x.to(A.scalar_type());
    if (training && dropout > 0)
        xa = torch::dropout(xa, dropout, /*train=*/true);
    auto delta = torch::linear(torch::linear(xa, A), B) * scaling;
    if (y.scalar_type() == delta.scalar_type())
        return y + delta;
    return (y.to(delta.scalar_type()) + delta).to(y.scalar_type());
}

torch::Tensor LoraLayer::deltaWeight() const
{
    auto d = torch::matmul(B.detach(), A.detach()) * scaling; // [out, in]
    return fanInFanOut ? d.t().contiguous() : d;
}

namespace {

// A linear layer of either family, seen through what LoRA needs.
struct LinearRef {
    std::string path;
    torch::Tensor weight;
    bool conv1d = false;
    std::shared_ptr<LoraLayer> *slot = nullptr;
    int64_t in() const { return conv1d ? weight.size(0) : weight.size(1); }
    int64_t out() const { return conv1d ? weight.size(1) : weight.size(0); }
};

std::vector<LinearRef> linearLayers(CausalLM &model)
{
    std::vector<LinearRef> out;
    for (const auto &item : model.named_modules("", /*include_self=*/false)) {
        torch::nn::Module *m = item.value().get();
        if (auto *lin = dynamic_cast<llama::LinearImpl *>(m))
            out.push_back({ item.key(), lin->weight, false, &lin->lora });
        else if (auto *conv = dynamic_cast<gpt2::Conv1DImpl *>(m))
            out.push_back({ item.key(), conv->weight, true, &conv->lora });
    }
    return out;
}

std::string lastComponent(const std::string &path)
{
    const size_t dot = path.rfind('.');
    return dot == std::string::npos ? path : path.substr(dot + 1);
}

bool isOutputHead(const std::string &path)
{
    return path == "lm_head";
}

// PEFT's check_target_module_exists for a list: exact path or a "."-bounded suffix.
bool matchesName(const std::string &path, const std::string &name)
{
    return path == name
        || (path.size() > name.size() && path.compare(path.size() - name.size(), name.size(), name) == 0
            && path[path.size() - name.size() - 1] == '.');
}

const std::set<std::string> &defaultProjections()
{
    static const std::set<std::string> names = { "q_proj", "k_proj", "v_proj", "o_proj", "qkv_proj", "gate_proj",
        "up_proj", "down_proj", "gate_up_proj", "c_attn", "c_proj", "c_fc" };
    return names;
}

bool isTargeted(const LoraConfig &c, const std::string &path, const std::regex *re)
{
    if (re)
        return std::regex_match(path, *re);
    if (c.targetModules.empty())
        return !isOutputHead(path) && defaultProjections().count(lastComponent(path));
    if (c.targetModules.size() == 1 && c.targetModules[0] == "all-linear")
        return !isOutputHead(path);
    for (const auto &name : c.targetModules)
        if (matchesName(path, name))
            return true;
    return false;
}

} // namespace

std::shared_ptr<LoraAdapter> LoraAdapter::attach(CausalLM &model, const LoraConfig &config)
{
    config.validate();
    if (model.lora)
        throw Error("LoRA: the model already carries an adapter");
    std::unique_ptr<std::regex> re;
    if (!config.targetRegex.empty())
        re = std::make_unique<std::regex>(config.targetRegex);

    std::shared_ptr<LoraAdapter> adapter(new LoraAdapter());
    adapter->m_model = &model;
    adapter->m_config = config;
    const auto layers = linearLayers(model);
    torch::NoGradGuard noGrad;
    for (const auto &lin : layers) {
        if (!isTargeted(config, lin.path, re.get()))
            continue;
        auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(lin.weight.device());
        auto layer = std::make_shared<LoraLayer>();
        layer->A = torch::empty({ config.r, lin.in() }, opts);
        // kaiming_uniform_(a = sqrt(5)) as nn.Linear and PEFT do: gain sqrt(2 / (1 + 5)), so the bound
        // sqrt(3) · gain / sqrt(fan_in) is 1 / sqrt(in); the same single uniform_ draw torch makes.
        const double bound = 1.0 / std::sqrt(double(lin.in()));
        layer->A.uniform_(-bound, bound);
        layer->B = torch::zeros({ lin.out(), config.r }, opts);
        layer->A.set_requires_grad(true);
        layer->B.set_requires_grad(true);
        layer->scaling = config.scaling();
        layer->dropout = config.dropout;
        layer->fanInFanOut = lin.conv1d;
        adapter->m_layers.emplace_back(lin.path, layer);
    }
    if (adapter->m_layers.empty()) {
        std::set<std::string> names;
        for (const auto &lin : layers)
            names.insert(isOutputHead(lin.path) ? lin.path : lastComponent(lin.path));
        std::string list;
        for (const auto &n : names)
            list += (list.empty() ? "" : ", ") + n;
        std::string wanted = config.targetRegex;
        for (const auto &t : config.targetModules)
            wanted += (wanted.empty() ? "" : ", ") + t;
        throw Error("option 'lora_target_modules': '" + wanted + "' matches no linear layer of "
            + model.config().architecture + " (its linear layers: " + list + ")");
    }
    // Only now touch the model: a refused configuration leaves it as it was.
    for (const auto &lin : layers)
        for (const auto &[path, layer] : adapter->m_layers)
            if (path == lin.path)
                *lin.slot = layer;
    for (auto &p : model.parameters())
        p.set_requires_grad(false);
    model.lora = adapter;
    return adapter;
}

void LoraAdapter::detach()
{
    if (!m_model)
        return;
    for (const auto &lin : linearLayers(*m_model))
        lin.slot->reset();
    CausalLM *model = m_model;
    m_model = nullptr;
    if (model->lora.get() == this)
        model->lora.reset(); // may destroy *this: nothing after it
}

std::vector<std::string> LoraAdapter::modulePaths() const
{
    std::vector<std::string> out;
    for (const auto &l : m_layers)
        out.push_back(l.first);
    return out;
}

std::vector<std::string> LoraAdapter::targetNames() const
{
    std::set<std::string> names;
    for (const auto &l : m_layers)
        names.insert(lastComponent(l.first));
    return std::vector<std::string>(names.begin(), names.end());
}

bool LoraAdapter::fanInFanOut() const
{
    return !m_layers.empty() && m_layers.front().second->fanInFanOut;
}

std::vector<std::pair<std::string, torch::Tensor>> LoraAdapter::namedParameters() const
{
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (const auto &[path, layer] : m_layers) {
        out.emplace_back(path + ".lora_A.weight", layer->A);
        out.emplace_back(path + ".lora_B.weight", layer->B);
    }
    return out;
}

int64_t LoraAdapter::parameterCount() const
{
    int64_t n = 0;
    for (const auto &[path, layer] : m_layers)
        n += layer->A.numel() + layer->B.numel();
    return n;
}

std::shared_ptr<LoraLayer> LoraAdapter::layer(const std::string &modulePath) const
{
    for (const auto &[path, layer] : m_layers)
        if (path == modulePath)
            return layer;
    return nullptr;
}

void LoraAdapter::setEnabled(bool enabled)
{
    m_enabled = enabled;
    for (auto &l : m_layers)
        l.second->enabled = enabled;
}

std::map<std::string, torch::Tensor> LoraAdapter::mergedStateDict() const
{
    if (!m_model)
        throw Error("LoRA: the adapter is not attached to a model");
    torch::NoGradGuard noGrad;
    auto state = m_model->stateDict();
    for (const auto &[path, layer] : m_layers) {
        auto it = state.find(path + ".weight");
        if (it == state.end())
            continue; // not saved (cannot happen for the layers this engine adapts)
        const auto &w = it->second;
        it->second = (w.to(torch::kFloat32) + layer->deltaWeight().to(w.device())).to(w.scalar_type());
    }
    return state;
}

LoraDisabledScope::LoraDisabledScope(CausalLM &model)
    : m_adapter(model.lora.get())
{
    if (m_adapter) {
        m_was = m_adapter->enabled();
        m_adapter->setEnabled(false);
    }
}

LoraDisabledScope::~LoraDisabledScope()
{
    if (m_adapter)
        m_adapter->setEnabled(m_was);
}

} // namespace dpo
