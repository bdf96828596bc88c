// dpo-cli demo-eval --model DIR --prompts FILE.jsonl [--max-new-tokens N] [--details]
// Measures how often a model's greedy answer has a wanted property: the figure the demo model's
// "before and after DPO" claim rests on. Each JSONL row is
//   {"prompt": str, "expect_contains": str | [str], "reject_contains": str | [str], "category": str}
// (expect/reject optional, at least one present). An answer is *preferred* when it contains every
// expect_contains string and none of the reject_contains strings. Prints one JSON object: counts
// and share overall and per category (+ every prompt's answer with --details).
// It is a substring check on greedy decoding, not a general evaluation harness.
#include "commands.h"

#include "engine/models/causal_lm.h"
#include "engine/error.h"
#include "engine/data/preference_data.h"
#include "engine/io/json_limits.h"
#include "engine/io/jsonl_reader.h"
#include "engine/generation/generation.h"
#include "engine/runtime.h"
#include "engine/tokenizers/tokenizer.h"
#include "engine/tokenizers/utf8.h"

#include <fstream>
#include <map>

namespace {

struct DemoEvalOptions {
    std::string model;
    std::string prompts;
    int maxNewTokens = 32;
    bool details = false;
    std::string device = "auto";
    std::string dtype = "float32";
};

struct EvalRow {
    std::string prompt;
    std::string category;
    std::vector<std::string> expect;
    std::vector<std::string> reject;
};

std::vector<std::string> stringList(const nlohmann::json &j, const char *key, const std::string &where)
{
    if (!j.contains(key) || j[key].is_null())
        return {};
    const auto &v = j[key];
    if (v.is_string())
        return { v.get<std::string>() };
    if (v.is_array()) {
        std::vector<std::string> out;
        for (const auto &e : v) {
            if (!e.is_string())
                throw dpo::Error(where + ": field '" + key + "' must be a string or a list of strings");
            out.push_back(e.get<std::string>());
        }
        return out;
    }
    throw dpo::Error(where + ": field '" + key + "' must be a string or a list of strings");
}

std::vector<EvalRow> readEvalRows(const std::string &path)
{
    dpo::JsonlReader lines(path, dpo::PreferenceDataLimits::defaults().maxRowBytes, "prompts file");
    std::vector<EvalRow> rows;
    while (lines.next()) {
        const std::string where = lines.where();
        const nlohmann::json j = lines.object();
        if (!j.contains("prompt") || !j["prompt"].is_string() || j["prompt"].get<std::string>().empty())
            throw dpo::Error(where + ": field 'prompt' must be a non-empty string");
        EvalRow row;
        row.prompt = j["prompt"].get<std::string>();
        if (j.contains("category")) {
            if (!j["category"].is_string())
                throw dpo::Error(where + ": field 'category' must be a string");
            row.category = j["category"].get<std::string>();
        }
        row.expect = stringList(j, "expect_contains", where);
        row.reject = stringList(j, "reject_contains", where);
        if (row.expect.empty() && row.reject.empty())
            throw dpo::Error(where + ": a row needs 'expect_contains' or 'reject_contains'");
        rows.push_back(std::move(row));
    }
    if (rows.empty())
        throw dpo::Error(path + ": the prompts file has no rows");
    return rows;
}

bool containsAny(const std::string &text, const std::vector<std::string> &needles)
{
    for (const auto &n : needles)
        if (text.find(n) != std::string::npos)
            return true;
    return false;
}

bool containsAll(const std::string &text, const std::vector<std::string> &needles)
{
    for (const auto &n : needles)
        if (text.find(n) == std::string::npos)
            return false;
    return true;
}

struct Tally {
    int64_t prompts = 0, preferred = 0, rejected = 0;
    nlohmann::json toJson() const
    {
        return { { "prompts", prompts }, { "preferred", preferred }, { "rejected", rejected },
            { "share", prompts ? double(preferred) / double(prompts) : 0.0 } };
    }
};

dpocli::CommandRegistrar regDemoEval([](CLI::App &app) {
    auto o = std::make_shared<DemoEvalOptions>();
    CLI::App *cmd = app.add_subcommand("demo-eval",
        "Share of prompts whose greedy answer has the preferred "
        "property (expect_contains / reject_contains), as JSON");
    cmd->add_option("--model", o->model, "Model folder (Hugging Face layout)")->required();
    cmd->add_option("--prompts", o->prompts, "JSONL rows {prompt, expect_contains, reject_contains, category}")
        ->required();
    cmd->add_option("--max-new-tokens", o->maxNewTokens, "Most tokens per answer")->capture_default_str();
    cmd->add_flag("--details", o->details, "Also list every prompt with its answer");
    cmd->add_option("--device", o->device, "cpu, cuda, cuda:N or auto")->capture_default_str();
    cmd->add_option("--dtype", o->dtype, "float32, bfloat16 or float16")->capture_default_str();
    cmd->callback([o, &app] {
        if (o->maxNewTokens < 1)
            throw dpo::Error("--max-new-tokens must be at least 1");
        const auto rows = readEvalRows(o->prompts);
        const auto device = dpo::parseDevice(o->device);
        const auto dtype = dpo::parseDtype(o->dtype);
        dpo::initRuntime(dpocli::globalThreads(app));

        auto tok = dpo::loadTokenizer(o->model);
        auto model = dpo::loadCausalLM(o->model, device, dtype);
        dpo::checkTokenizerFitsModel(*tok, model->config().vocabSize, o->model);
        dpo::GenerationOptions g;
        g.maxNewTokens = o->maxNewTokens;
        g.greedy = true;
        if (tok->eosId() >= 0)
            g.eosTokenIds.push_back(tok->eosId());

        Tally total;
        std::map<std::string, Tally> byCategory;
        nlohmann::json details = nlohmann::json::array();
        for (const auto &row : rows) {
            const auto ids = dpo::generate(*model, tok->encodeWithSpecial(row.prompt), g);
            const std::string answer = tok->decode(ids, true);
            const bool rejected = containsAny(answer, row.reject);
            const bool preferred = !rejected && containsAll(answer, row.expect);
            for (Tally *t : { &total, &byCategory[row.category] }) {
                ++t->prompts;
                t->preferred += preferred ? 1 : 0;
                t->rejected += rejected ? 1 : 0;
            }
            if (o->details)
                details.push_back({ { "prompt", row.prompt }, { "category", row.category }, { "answer", answer },
                    { "preferred", preferred }, { "rejected", rejected } });
        }
        nlohmann::json out = total.toJson();
        out["model"] = o->model;
        nlohmann::json cats = nlohmann::json::object();
        for (const auto &[name, t] : byCategory)
            cats[name] = t.toJson();
        out["categories"] = cats;
        if (o->details)
            out["rows"] = details;
        dpocli::printJson(out);
    });
});

} // namespace
