// dpo-cli project generate --project PATH_OR_URL --model DIR [--candidates 2] [--temperature 0.8] [--top-p 0.95]
//   [--top-k 0] [--max-new-tokens 128] [--seed 0] [--limit N] [--device auto] [--chat-template FILE]
// Prompts are formatted with the model's chat template when it has one (a plain prompt as one user
// message; an imported conversation as its messages), else encoded as text (engine/chat/chat_prompt.h).
// Candidate generation for scripts: samples the missing completions of every prompt with fewer than
// --candidates, stores them with provenance and queues label pairs (the bookkeeping is
// dpo::generateCandidates in project/candidates.h, shared with the GUI's Data page). Prints
// {"prompts":P,"generated":G,"pairs":K,"retries":R,"duplicates":D,"skipped":X,"notes":[...],"seconds":S}.
// Interrupting it (Ctrl+C) loses at most the prompt being sampled: each prompt is written in one transaction.
#include "commands.h"

#include "engine/chat/chat_prompt.h"
#include "engine/error.h"
#include "engine/runtime.h"

#include "project/candidates.h"

#include <QCoreApplication>
#include <QElapsedTimer>
#include <QFileInfo>

#include <memory>

namespace {

struct GenerateArgs {
    std::string project, model, device = "auto", chatTemplate;
    int candidates = 2, topK = 0, maxNewTokens = 128, limit = 0;
    double temperature = 0.8, topP = 0.95;
    uint64_t seed = 0;
};

// The "project" subcommand, whichever of the qcmd_*.cpp files registers first creates it.
CLI::App *projectCommand(CLI::App &app)
{
    try {
        return app.get_subcommand("project");
    } catch (const CLI::OptionNotFound &) {
        auto *project = app.add_subcommand("project", "Labeling projects: import, export, statistics");
        project->require_subcommand(1);
        return project;
    }
}

void run(const GenerateArgs &a, int threads)
{
    dpo::CandidateOptions o;
    o.candidates = a.candidates;
    o.sampling.temperature = a.temperature;
    o.sampling.topP = a.topP;
    o.sampling.topK = a.topK;
    o.sampling.maxNewTokens = a.maxNewTokens;
    o.sampling.seed = a.seed;
    o.limit = a.limit;
    o.validate(); // bad options fail before anything is opened or loaded
    if (!QFileInfo(QString::fromStdString(a.model)).isDir())
        throw dpo::Error("model directory not found: " + a.model);
    const torch::Device device = dpo::parseDevice(a.device);

    int argc = 1;
    char name[] = "dpo-cli";
    char *argv[] = { name, nullptr };
    std::unique_ptr<QCoreApplication> app;
    if (!QCoreApplication::instance()) // Qt loads the SQL drivers as plugins
        app = std::make_unique<QCoreApplication>(argc, argv);
    const QString loc = QString::fromStdString(a.project);
    if (!dpo::ProjectStore::isUrl(loc) && !QFileInfo::exists(loc))
        throw dpo::Error("no project at " + a.project);
    auto store = dpo::ProjectStore::open(loc);

    dpo::GenerationOptions g;
    g.maxNewTokens = a.maxNewTokens;
    g.greedy = false;
    g.temperature = a.temperature;
    g.topK = a.topK;
    g.topP = a.topP;
    g.validate();
    dpo::ModelSampler model(a.model, device, a.chatTemplate);
    const dpo::CandidateSampler sample = [&](const dpo::Prompt &prompt, quint64 seed) -> std::optional<QString> {
        if (!model.loaded()) // loaded on the first sample: a complete project does not load the model
            dpo::initRuntime(threads);
        g.seed = seed;
        const auto out = model.complete(prompt.text.toStdString(), prompt.messagesJson.toStdString(), g);
        return QString::fromStdString(out->text);
    };
    // Progress on stderr (stdout carries only the JSON), at most every 5 seconds.
    QElapsedTimer sinceReport;
    sinceReport.start();
    const auto report = [&sinceReport](const dpo::CandidateProgress &p) {
        if (sinceReport.elapsed() < 5000)
            return;
        sinceReport.restart();
        std::cerr << "dpo-cli: prompts " << p.promptsDone << "/" << p.promptsTotal << ", candidates " << p.done << "/"
                  << p.total << std::endl;
    };
    const dpo::CandidateSummary s
        = dpo::generateCandidates(*store, QString::fromStdString(a.model), o, sample, nullptr, report);
    nlohmann::json notes = nlohmann::json::array();
    for (const QString &n : s.notes)
        notes.push_back(n.toStdString());
    dpocli::printJson(
        { { "prompts", s.prompts }, { "generated", s.generated }, { "pairs", s.pairs }, { "retries", s.retries },
            { "duplicates", s.duplicates }, { "skipped", s.skipped }, { "notes", notes }, { "seconds", s.seconds } });
}

dpocli::CommandRegistrar regProjectGenerate([](CLI::App &app) {
    auto a = std::make_shared<GenerateArgs>();
    auto *cmd = projectCommand(app)->add_subcommand(
        "generate", "Sample candidate completions for prompts with fewer than N and queue label pairs (JSON)");
    cmd->add_option("--project", a->project, "Project file or postgresql:// URL")->required();
    cmd->add_option("--model", a->model, "Model folder (Hugging Face layout)")->required();
    cmd->add_option("--candidates", a->candidates, "Completions wanted per prompt (2..16)")->capture_default_str();
    cmd->add_option("--temperature", a->temperature, "Sampling temperature (> 0)")->capture_default_str();
    cmd->add_option("--top-p", a->topP, "Nucleus sampling: smallest set with probability >= P (1 = off)")
        ->capture_default_str();
    cmd->add_option("--top-k", a->topK, "Sample among the K most likely tokens (0 = off)")->capture_default_str();
    cmd->add_option("--max-new-tokens", a->maxNewTokens, "Most tokens per candidate")->capture_default_str();
    cmd->add_option("--seed", a->seed, "Base seed; each candidate's seed derives from it, the prompt id and its index")
        ->capture_default_str();
    cmd->add_option("--limit", a->limit, "Fill at most N prompts, oldest first (0 = all)")->capture_default_str();
    cmd->add_option("--device", a->device, "cpu, cuda, cuda:N or auto")->capture_default_str();
    cmd->add_option("--chat-template", a->chatTemplate, "Jinja chat template file (default: the model's own)");
    cmd->callback([a, &app] {
        run(*a, dpocli::globalThreads(app));
    });
});

} // namespace
