// dpo-cli score --model DIR [--base-model DIR] [--ref-model DIR] --dataset FILE.jsonl [--beta 0.1] [--loss-type a,b]
//               [--loss-weights x,y] [--label-smoothing 0] [--discopop-tau 0.05] [--max-length N]
//               [--truncation-mode keep_start|keep_end] [--device cpu] [--dtype float32] [--batch-size 8]
// Scores preference pairs without training: per pair the TRL token ids, the summed completion
// log-probs under the policy (--model) and the reference (--ref-model, default: the same folder),
// and the DPO loss; then the mean loss and TRL's metrics, as one JSON object on stdout.
// The losses are computed once over the whole dataset, so batch-wise losses (aot, sft) see every pair.
#include "commands.h"

#include "engine/models/adapter_io.h"
#include "engine/models/causal_lm.h"
#include "engine/models/lora.h"
#include "engine/training/dpo_loss.h"
#include "engine/error.h"
#include "engine/evaluation/pair_scoring.h"
#include "engine/training/logprobs.h"
#include "engine/chat/chat_template.h"
#include "engine/data/preference_data.h"
#include "engine/runtime.h"
#include "engine/tokenizers/tokenizer.h"

#include <algorithm>
#include <cstdio>
#include <optional>
#include <sstream>

namespace {

struct ScoreOptions {
    std::string model;
    std::string baseModel;
    std::string refModel;
    std::string dataset;
    double beta = 0.1;
    std::string lossType = "sigmoid";
    std::string lossWeights;
    double labelSmoothing = 0.0;
    double discopopTau = 0.05;
    std::string fDivergenceType = "reverse_kl";
    double fAlphaDivergenceCoef = 0.5;
    bool useWeighting = false;
    std::optional<double> ldAlpha;
    int64_t maxLength = 0;
    int64_t maxRowBytes = 0; // 0 = PreferenceDataLimits::defaults()
    std::string truncationMode = "keep_start";
    std::string chatTemplate;
    std::string device = "cpu";
    std::string dtype = "float32";
    int64_t batchSize = 8;
};

std::vector<std::string> splitList(const std::string &text)
{
    std::vector<std::string> items;
    std::stringstream in(text);
    std::string item;
    while (std::getline(in, item, ',')) {
        const auto b = item.find_first_not_of(" \t");
        const auto e = item.find_last_not_of(" \t");
        items.push_back(b == std::string::npos ? std::string() : item.substr(b, e - b + 1));
    }
    return items;
}

std::vector<double> parseWeights(const std::string &text)
{
    std::vector<double> weights;
    if (text.empty())
        return weights;
    for (const auto &item : splitList(text)) {
        try {
            size_t used = 0;
            weights.push_back(std::stod(item, &used));
            if (used != item.size())
                throw std::invalid_argument(item);
        } catch (const std::exception &) {
            throw dpo::Error("--loss-weights: '" + item + "' is not a number");
        }
    }
    return weights;
}

// Summed log-probs and completion token counts of every chosen and rejected sequence.
std::vector<double> toVector(const torch::Tensor &t)
{
    const auto c = t.to(torch::kCPU, torch::kDouble).contiguous();
    return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

void runScore(const ScoreOptions &o)
{
    // Every option and the dataset are checked before any model is loaded, so bad input fails fast.
    dpo::LossConfig loss;
    loss.types = splitList(o.lossType);
    loss.weights = parseWeights(o.lossWeights);
    loss.beta = o.beta;
    loss.labelSmoothing = o.labelSmoothing;
    loss.discopopTau = o.discopopTau;
    loss.fDivergenceType = o.fDivergenceType;
    loss.fAlphaDivergenceCoef = o.fAlphaDivergenceCoef;
    loss.useWeighting = o.useWeighting;
    loss.ldAlpha = o.ldAlpha;
    loss.validate();
    dpo::LogpsOptions policyOptions, refOptions;
    policyOptions.stats = loss.useWeighting;
    policyOptions.ldAlpha = refOptions.ldAlpha = loss.ldAlpha;
    dpo::TruncationOptions truncation;
    truncation.maxLength = o.maxLength;
    truncation.mode = o.truncationMode;
    truncation.validate();
    if (o.batchSize < 1)
        throw dpo::Error("--batch-size must be at least 1");
    const torch::Device device = dpo::parseDevice(o.device);
    const torch::ScalarType dtype = dpo::parseDtype(o.dtype);

    if (o.maxRowBytes < 0)
        throw dpo::Error("--max-row-bytes must be >= 0 (0 = the default limit)");
    const auto rows = dpo::readPreferenceJsonl(o.dataset, dpo::PreferenceDataLimits::withMaxRowBytes(o.maxRowBytes));

    dpo::initRuntime();
    torch::NoGradGuard noGrad;
    auto tok = dpo::loadTokenizer(dpo::tokenizerDirFor(o.model, o.baseModel));
    auto policy = dpo::loadCausalLM(o.model, device, dtype, o.baseModel);
    dpo::checkTokenizerFitsModel(*tok, policy->config().vocabSize, o.model);
    const std::string refDir = o.refModel.empty() ? o.model : o.refModel;
    // An adapter policy without --ref-model: the reference is the same model with its adapters off.
    const bool refIsBase = o.refModel.empty() && policy->lora;

    // Conversational rows are rendered with the model's chat template (or --chat-template).
    const std::string tokDir = dpo::tokenizerDirFor(o.model, o.baseModel);
    std::optional<dpo::ModelChatTemplate> chat;
    if (!o.chatTemplate.empty()
        || std::any_of(rows.begin(), rows.end(), [](const dpo::PreferenceRow &r) { return r.isConversational(); }))
        chat = dpo::loadChatTemplateFor(tokDir, o.chatTemplate);
    try {
        dpo::requireChatTemplate(rows, chat ? &*chat : nullptr, tokDir);
    } catch (const dpo::Error &e) {
        throw dpo::Error(o.dataset + ": " + e.what());
    }

    // Every row is scored as given; what TRL's data preparation would do differently (warn about a
    // prompt that is not a token prefix, drop a keep_start prompt that fills max_length) is reported.
    std::vector<dpo::TokenizedPair> pairs;
    pairs.reserve(rows.size());
    dpo::TokenizationReport report;
    for (const auto &row : rows) {
        try {
            pairs.push_back(dpo::tokenizePair(*tok, row, truncation, chat ? &*chat : nullptr));
        } catch (const dpo::Error &e) {
            throw dpo::Error(o.dataset + ":" + std::to_string(row.line) + ": " + e.what());
        }
        ++report.rows;
        report.conversational += row.isConversational() ? 1 : 0;
        if (pairs.back().promptMismatch)
            report.mismatchLines.push_back(row.line);
        if (dpo::dropsFullyTruncated(pairs.back(), truncation))
            report.droppedLines.push_back(row.line);
    }
    if (!report.summary().empty())
        std::fprintf(stderr, "%s: %s (train drops those rows; score keeps them)\n", o.dataset.c_str(),
            report.summary().c_str());

    const dpo::ScoredPairs pol = *dpo::scorePairs(*policy, pairs, tok->padId(), o.batchSize, device, policyOptions);
    dpo::ScoredPairs ref;
    if (refIsBase) {
        dpo::LoraDisabledScope adaptersOff(*policy);
        ref = *dpo::scorePairs(*policy, pairs, tok->padId(), o.batchSize, device, refOptions);
    }
    policy.reset(); // the reference need not share memory with the policy
    if (!refIsBase) {
        auto refModel = dpo::loadCausalLM(refDir, device, dtype);
        dpo::checkTokenizerFitsModel(*tok, refModel->config().vocabSize, refDir);
        ref = *dpo::scorePairs(*refModel, pairs, tok->padId(), o.batchSize, device, refOptions);
    }

    const auto pc = pol.chosen(), pr = pol.rejected(), rc = ref.chosen(), rr = ref.rejected();
    dpo::DpoInputs inputs { pc.sum, pr.sum, rc.sum, rr.sum, pc.count, pr.count };
    inputs.sftChosenSum = pol.chosenPlain;
    if (loss.useWeighting) {
        inputs.chosenWeight = pol.chosenWeight;
        inputs.rejectedWeight = pol.rejectedWeight;
    }
    const auto result = dpo::computeDpoLoss(loss, inputs);

    const auto vpc = toVector(pc.sum), vpr = toVector(pr.sum), vrc = toVector(rc.sum), vrr = toVector(rr.sum);
    const auto vloss = toVector(result.perPair);
    nlohmann::json examples = nlohmann::json::array();
    for (size_t i = 0; i < pairs.size(); ++i) {
        examples.push_back({ { "prompt_ids", pairs[i].promptIds }, { "chosen_ids", pairs[i].chosenIds },
            { "rejected_ids", pairs[i].rejectedIds }, { "policy_chosen_logps", vpc[i] },
            { "policy_rejected_logps", vpr[i] }, { "ref_chosen_logps", vrc[i] }, { "ref_rejected_logps", vrr[i] },
            { "loss", vloss[i] }, { "line", rows[i].line }, { "prompt_mismatch", pairs[i].promptMismatch } });
    }
    nlohmann::json metrics = nlohmann::json::object();
    for (const auto &[name, value] : result.metrics)
        metrics[name] = value;
    nlohmann::json out;
    out["examples"] = std::move(examples);
    out["loss"] = result.loss.item<double>();
    out["metrics"] = std::move(metrics);
    out["data"] = { { "rows", report.rows }, { "conversational_rows", report.conversational },
        { "prompt_mismatch_lines", report.mismatchLines }, { "fully_truncated_lines", report.droppedLines },
        { "chat_template", chat ? chat->origin : std::string() } };
    dpocli::printJson(out);
}

dpocli::CommandRegistrar regScore([](CLI::App &app) {
    auto o = std::make_shared<ScoreOptions>();
    CLI::App *cmd = app.add_subcommand(
        "score", "Score preference pairs: token ids, policy/reference log-probs, DPO loss and metrics as JSON");
    cmd->add_option("--model", o->model,
           "Policy model folder (Hugging Face layout) or PEFT LoRA adapter folder; its tokenizer is used")
        ->required();
    cmd->add_option("--base-model", o->baseModel,
        "Base model folder of an adapter --model (default: its adapter_config.json's base_model_name_or_path)");
    cmd->add_option("--ref-model", o->refModel,
        "Reference model or adapter folder (default: the policy folder; for an adapter, its base with the adapter off)");
    cmd->add_option("--dataset", o->dataset, "Preference pairs, JSONL in TRL's formats")->required();
    cmd->add_option("--chat-template", o->chatTemplate,
        "Jinja chat template file for conversational rows (default: the model's own)");
    cmd->add_option("--beta", o->beta, "DPO beta")->capture_default_str();
    cmd->add_option("--loss-type", o->lossType, "Loss type, or a comma-separated list (TRL names)")
        ->capture_default_str();
    cmd->add_option("--loss-weights", o->lossWeights, "Comma-separated weights, one per loss type (default 1 each)");
    cmd->add_option("--label-smoothing", o->labelSmoothing,
           "Label smoothing epsilon in [0, 0.5): robust, exo_pair, aot and aot_unpaired only (TRL 1.x)")
        ->capture_default_str();
    cmd->add_option("--f-divergence-type", o->fDivergenceType,
           "f-DPO regularizer: reverse_kl, forward_kl, js_divergence or alpha_divergence")
        ->capture_default_str();
    cmd->add_option("--f-alpha-divergence-coef", o->fAlphaDivergenceCoef, "alpha of alpha_divergence")
        ->capture_default_str();
    cmd->add_flag("--use-weighting", o->useWeighting, "WPO: weight each pair by the policy's aligned probabilities");
    cmd->add_option_function<double>(
        "--ld-alpha", [o](double v) { o->ldAlpha = v; },
        "LD-DPO: weight in [0, 1] of completion tokens beyond the pair's shorter completion (default: off)");
    cmd->add_option("--discopop-tau", o->discopopTau, "Temperature of the discopop loss")->capture_default_str();
    cmd->add_option("--max-row-bytes", o->maxRowBytes,
        "Longest dataset row and text field accepted, in bytes (0 = default: 8 MiB per row, 4 MiB per field)");
    cmd->add_option("--max-length", o->maxLength, "Truncate prompt+completion sequences to N tokens (0 = off)")
        ->capture_default_str();
    cmd->add_option("--truncation-mode", o->truncationMode, "keep_start or keep_end")->capture_default_str();
    cmd->add_option("--device", o->device, "cpu, cuda, cuda:N or auto")->capture_default_str();
    cmd->add_option("--dtype", o->dtype, "float32 or bfloat16")->capture_default_str();
    cmd->add_option("--batch-size", o->batchSize, "Pairs per forward pass")->capture_default_str();
    cmd->callback([o] { runScore(*o); });
});

} // namespace
