// dpo-cli project import|export|stats|bench: the project store from the command line (Qt Core + Qt Sql, no
// GUI). A hidden `project simulate` labels pairs one by one, printing each committed verdict; the durability
// test kills it with SIGKILL mid-session.
#include "commands.h"

#include "project/project_store.h"

#include <QCoreApplication>
#include <QDir>
#include <QElapsedTimer>
#include <QFile>
#include <QFileInfo>
#include <QRandomGenerator>
#include <QTemporaryDir>
#include <QThread>

#include <time.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <memory>

namespace {

using nlohmann::json;

// Qt loads the SQL drivers as plugins, which needs an application object.
std::unique_ptr<QCoreApplication> ensureApp()
{
    if (QCoreApplication::instance())
        return nullptr;
    static int argc = 1;
    static char name[] = "dpo-cli";
    static char *argv[] = { name, nullptr };
    return std::make_unique<QCoreApplication>(argc, argv);
}

// Read commands never create a project, nor touch a file or database that is not one.
std::unique_ptr<dpo::ProjectStore> openExisting(const std::string &location)
{
    return dpo::ProjectStore::open(QString::fromStdString(location), dpo::ProjectStore::OpenMode::Existing);
}

json num(double v)
{
    return std::isfinite(v) ? json(v) : json(nullptr);
}

json statsJson(dpo::ProjectStore &store)
{
    const dpo::Counts c = store.counts();
    json j;
    j["project"] = store.displayLocation().toStdString();
    j["schema_version"] = store.schemaVersion();
    j["counts"] = { { "prompts", c.prompts }, { "completions", c.completions }, { "pairs", c.pairs },
        { "prejudged_pairs", c.prejudgedPairs }, { "judgments", c.judgments }, { "eval_judgments", c.evalJudgments },
        { "annotators", c.annotators }, { "slots", c.labelSlots }, { "slots_done", c.labelSlotsDone } };
    j["overlap"] = store.overlap();
    const dpo::AgreementReport a = store.agreement(dpo::JudgmentKind::Label);
    json pairwise = json::array();
    for (const auto &p : a.pairwise)
        pairwise.push_back({ { "annotator_a", p.annotatorA }, { "annotator_b", p.annotatorB }, { "items", p.items },
            { "cohen_kappa", num(p.kappa) } });
    json vsMajority = json::array();
    for (const auto &x : a.annotators)
        vsMajority.push_back({ { "annotator", x.name.toStdString() }, { "items", x.items },
            { "agreement", num(x.agreementWithMajority) } });
    j["agreement"] = { { "judgments", a.judgments }, { "items", a.items }, { "multi_rated_items", a.multiRated },
        { "annotators", a.raters }, { "cohen_kappa", num(a.cohenKappa) }, { "pairwise_cohen_kappa", pairwise },
        { "fleiss_kappa", num(a.fleissKappa) }, { "krippendorff_alpha", num(a.krippendorffAlpha) },
        { "annotator_vs_majority", vsMajority } };
    j["position_bias"]
        = { { "left_wins", a.leftWins }, { "right_wins", a.rightWins }, { "left_win_share", num(a.leftWinShare) } };
    j["length_bias"] = { { "longer_wins", a.longerWins }, { "shorter_wins", a.shorterWins },
        { "longer_win_share", num(a.longerWinShare) } };
    json issues = json::object();
    for (const auto &i : store.sanityChecks()) {
        const std::string key = dpo::sanityTypeName(i.type).toStdString();
        issues[key] = issues.value(key, 0) + 1;
    }
    j["sanity"] = issues;
    return j;
}

long rssKb(const char *field)
{
    std::ifstream f("/proc/self/status");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind(field, 0) == 0)
            return std::stol(line.substr(std::string(field).size()));
    return -1;
}

std::string filler(int i, int len, const char *tag)
{
    std::string s = std::string(tag) + " " + std::to_string(i) + ":";
    static const char *words[] = { "alpha", "beta", "gamma", "delta", "model", "answer", "because", "the", "of", "x" };
    quint64 x = quint64(i) * 2654435761ULL + std::hash<std::string> {}(tag);
    while (int(s.size()) < len) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        s += " ";
        s += words[(x >> 33) % 10];
    }
    return s;
}

std::string csvQuote(const std::string &s)
{
    std::string q = "\"";
    for (char c : s)
        q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
}

// CPU seconds of this process: the shared build machines are often loaded, so wall time alone misleads.
double cpuSeconds()
{
    timespec ts {};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + ts.tv_nsec / 1e9;
}

void bench(const std::string &dirArg, int rows, int labels)
{
    QTemporaryDir tmp;
    const QString dir = dirArg.empty() ? tmp.path() : QString::fromStdString(dirArg);
    QDir().mkpath(dir);
    const QString trl = dir + "/bench_trl.jsonl", csv = dir + "/bench_pairs.csv", db = dir + "/bench.dpoproj";
    QFile::remove(db);
    QFile::remove(db + "-wal");
    QFile::remove(db + "-shm");
    {
        std::ofstream t(trl.toStdString()), c(csv.toStdString());
        c << "prompt,completion_a,completion_b\n";
        for (int i = 0; i < rows; ++i) {
            t << json { { "prompt", filler(i, 200, "prompt") }, { "chosen", filler(i, 400, "chosen") },
                { "rejected", filler(i, 300, "rejected") } }
                     .dump()
              << "\n";
            c << csvQuote(filler(i, 200, "question")) << "," << csvQuote(filler(i, 350, "first, \"quoted\",\nline"))
              << "," << csvQuote(filler(i, 350, "second")) << "\n";
        }
    }
    json out;
    out["rows_per_file"] = rows;
    auto store = dpo::ProjectStore::open(db);
    QElapsedTimer t;
    double cpu = cpuSeconds();
    auto lap = [&](const char *name) {
        out[std::string(name) + "_s"] = t.elapsed() / 1000.0;
        out[std::string(name) + "_cpu_s"] = cpuSeconds() - cpu;
        t.restart();
        cpu = cpuSeconds();
    };
    t.start();
    auto r1 = dpo::importFile(*store, trl);
    lap("import_trl");
    out["import_trl_rows"] = r1.imported;
    auto r2 = dpo::importFile(*store, csv);
    lap("import_csv");
    out["import_csv_rows"] = r2.imported;
    out["pairs"] = store->counts().pairs;

    const auto annotator = store->annotator("bench");
    std::vector<double> ms, cpuMs, progressMs;
    QElapsedTimer lat;
    auto current = store->nextPairFor(annotator.id);
    for (int i = 0; i < labels && current; ++i) {
        lat.start();
        const double c0 = cpuSeconds();
        // The verdict on the pair on screen, then the next pair: what a keypress costs in the store.
        store->recordVerdict(annotator.id, *current, (i % 3) ? dpo::Verdict::Left : dpo::Verdict::Right);
        current = store->nextPairFor(annotator.id);
        ms.push_back(lat.nsecsElapsed() / 1e6);
        cpuMs.push_back((cpuSeconds() - c0) * 1e3);
        lat.start();
        store->progress(annotator.id);
        progressMs.push_back(lat.nsecsElapsed() / 1e6);
    }
    auto summary = [](std::vector<double> v) {
        if (v.empty())
            return json(nullptr);
        std::sort(v.begin(), v.end());
        return json { { "median_ms", v[v.size() / 2] }, { "p99_ms", v[std::min(v.size() - 1, v.size() * 99 / 100)] },
            { "worst_ms", v.back() }, { "n", v.size() } };
    };
    out["verdict_plus_next_pair"] = summary(ms);
    out["verdict_plus_next_pair_cpu"] = summary(cpuMs);
    out["progress_query"] = summary(progressMs);

    t.restart();
    cpu = cpuSeconds();
    auto e1 = dpo::exportFile(*store, dir + "/bench_export.jsonl");
    lap("export_trl");
    out["export_trl_rows"] = e1.rows;
    dpo::ExportOptions jo;
    jo.format = dpo::ExportFormat::JudgmentsJsonl;
    auto e2 = dpo::exportFile(*store, dir + "/bench_judgments.jsonl", jo);
    lap("export_judgments");
    out["export_judgments_rows"] = e2.rows;
    store->agreement();
    lap("agreement");
    store->sanityChecks();
    lap("sanity_checks");
    dpo::ListQuery lq;
    lq.search = "gamma delta";
    lq.limit = 100;
    store->listPairs(lq);
    lap("list_pairs_search");
    out["rss_mb"] = rssKb("VmRSS:") / 1024.0;
    out["peak_rss_mb"] = rssKb("VmHWM:") / 1024.0;
    out["db_mb"] = QFileInfo(db).size() / 1048576.0;
    dpocli::printJson(out);
}

dpocli::CommandRegistrar regProject([](CLI::App &app) {
    // qcmd_generate.cpp adds "project generate": whichever file registers first creates the subcommand.
    CLI::App *project = nullptr;
    try {
        project = app.get_subcommand("project");
    } catch (const CLI::OptionNotFound &) {
        project = app.add_subcommand("project", "Labeling projects: import, export, statistics");
        project->require_subcommand(1);
    }

    struct ImportArgs {
        std::string project, input, format = "auto", onError = "skip";
        int64_t maxRowBytes = 0;
    };
    auto ia = std::make_shared<ImportArgs>();
    auto *imp = project->add_subcommand("import", "Import pairs or prompts (creates the project if absent)");
    imp->add_option("--project", ia->project, "Project file or postgresql:// URL")->required();
    imp->add_option("--input", ia->input, "TRL JSONL, CSV or prompts-only JSONL")->required();
    imp->add_option("--format", ia->format, "auto|trl|csv|prompts")
        ->check(CLI::IsMember({ "auto", "trl", "csv", "prompts" }));
    imp->add_option("--on-error", ia->onError, "skip: import the good rows; abort: import nothing if a row is bad")
        ->check(CLI::IsMember({ "skip", "abort" }));
    imp->add_option("--max-row-bytes", ia->maxRowBytes,
           "Longest JSONL line or CSV record accepted (default: DPO_MAX_ROW_BYTES or 8 MiB, as training)")
        ->check(CLI::PositiveNumber);
    imp->callback([ia] {
        auto app = ensureApp();
        auto store = dpo::ProjectStore::open(QString::fromStdString(ia->project));
        dpo::ImportOptions o;
        o.format = ia->format == "trl" ? dpo::ImportFormat::Trl
            : ia->format == "csv"      ? dpo::ImportFormat::Csv
            : ia->format == "prompts"  ? dpo::ImportFormat::Prompts
                                       : dpo::ImportFormat::Auto;
        o.onError = ia->onError == "abort" ? dpo::OnError::Abort : dpo::OnError::Skip;
        o.maxRowBytes = ia->maxRowBytes;
        const dpo::ImportResult r = dpo::importFile(*store, QString::fromStdString(ia->input), o);
        json errors = json::array();
        for (const auto &e : r.errors)
            errors.push_back({ { "file", ia->input }, { "line", e.line }, { "message", e.message.toStdString() } });
        dpocli::printJson({ { "imported", r.imported }, { "skipped", r.skipped }, { "errors", errors } });
        if (r.aborted)
            throw dpo::Error(
                ia->input + ": " + std::to_string(r.skipped) + " bad row(s); nothing imported (--on-error abort)");
    });

    struct ExportArgs {
        std::string project, output, format = "trl";
        int minVotes = 1;
        double minAgreement = 0;
    };
    auto ea = std::make_shared<ExportArgs>();
    auto *exp = project->add_subcommand("export", "Export TRL preference rows or every judgment");
    exp->add_option("--project", ea->project, "Project file or postgresql:// URL")->required();
    exp->add_option("--output", ea->output, "Output file (.jsonl; .csv for judgments as CSV); - for standard output")
        ->required();
    exp->add_option("--format", ea->format, "trl|judgments|judgments-csv")
        ->check(CLI::IsMember({ "trl", "judgments", "judgments-csv" }));
    exp->add_option("--min-votes", ea->minVotes, "trl: minimum non-skip votes per exported pair");
    exp->add_option("--min-agreement", ea->minAgreement, "trl: minimum share of votes for the majority (0..1)");
    exp->callback([ea] {
        auto app = ensureApp();
        auto store = openExisting(ea->project);
        dpo::ExportOptions o;
        const bool csv = QString::fromStdString(ea->output).endsWith(".csv", Qt::CaseInsensitive);
        o.format = ea->format == "trl"               ? dpo::ExportFormat::Trl
            : (ea->format == "judgments-csv" || csv) ? dpo::ExportFormat::JudgmentsCsv
                                                     : dpo::ExportFormat::JudgmentsJsonl;
        o.minVotes = ea->minVotes;
        o.minAgreement = ea->minAgreement;
        const dpo::ExportResult r = dpo::exportFile(*store, QString::fromStdString(ea->output), o);
        const nlohmann::json summary { { "rows", r.rows }, { "output", ea->output } };
        if (ea->output == "-" || ea->output == "/dev/stdout")
            std::cerr << summary.dump() << "\n"; // stdout carries the rows
        else
            dpocli::printJson(summary);
    });

    auto statsProject = std::make_shared<std::string>();
    auto *stats = project->add_subcommand("stats", "Counts, agreement, position and length bias (JSON)");
    stats->add_option("--project", *statsProject, "Project file or postgresql:// URL")->required();
    stats->callback([statsProject] {
        auto app = ensureApp();
        auto store = openExisting(*statsProject);
        dpocli::printJson(statsJson(*store));
    });

    struct SimArgs {
        std::string project, annotator = "sim";
        int count = 1000000, delayMs = 0;
    };
    auto sa = std::make_shared<SimArgs>();
    auto *sim = project->add_subcommand("simulate", "Label pairs automatically (tests)");
    sim->group(""); // hidden
    sim->add_option("--project", sa->project)->required();
    sim->add_option("--annotator", sa->annotator);
    sim->add_option("--count", sa->count);
    sim->add_option("--delay-ms", sa->delayMs);
    sim->callback([sa] {
        auto app = ensureApp();
        auto store = openExisting(sa->project);
        const auto a = store->annotator(QString::fromStdString(sa->annotator));
        for (int i = 0; i < sa->count; ++i) {
            auto shown = store->nextPairFor(a.id);
            if (!shown)
                break;
            std::cout << "shown " << shown->pairId << std::endl;
            if (sa->delayMs > 0)
                QThread::msleep(sa->delayMs);
            const qint64 id = store->recordVerdict(a.id, *shown, i % 2 ? dpo::Verdict::Left : dpo::Verdict::Right);
            std::cout << "judged " << shown->pairId << " " << id << std::endl;
        }
    });

    struct BenchArgs {
        std::string dir;
        int rows = 100000, labels = 2000;
    };
    auto ba = std::make_shared<BenchArgs>();
    auto *b = project->add_subcommand("bench", "Benchmark: 2 x ROWS imported pairs, labeling latency, export");
    b->add_option("--dir", ba->dir, "Work folder (default: a temporary one)");
    b->add_option("--rows", ba->rows, "Rows per imported file (TRL judged + CSV unjudged)");
    b->add_option("--labels", ba->labels, "Verdicts to time");
    b->callback([ba] {
        auto app = ensureApp();
        bench(ba->dir, ba->rows, ba->labels);
    });
});

} // namespace
