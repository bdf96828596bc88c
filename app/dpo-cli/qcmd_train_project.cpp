// dpo-cli train --project FILE_OR_URL: DPO on a project's judged pairs, as the GUI's Train page runs it.
// The pairs are exported (TRL format; --min-votes, --min-agreement filters) with an optional --eval-split
// drawn from the seed, into OUTPUT/data/ (core/project/training_export, the function the GUI uses), and
// the run is recorded in the project (RunRecord: its row in the runs table with the last metrics, the
// output directory's lock file), so the Train page's Runs tab lists it. --resume continues the run
// recorded for the output directory and reuses its data files.
// A TrainExtension of cmd_train.cpp: this file needs Qt, cmd_train.cpp does not.
#include "commands.h"

#include "engine/error.h"
#include "engine/training/train_config.h"

#include "project/project_store.h"
#include "project/run_record.h"
#include "project/training_export.h"

#include <QCoreApplication>
#include <QDir>
#include <QFileInfo>
#include <QJsonDocument>
#include <QJsonObject>

#include <cstdio>
#include <memory>

namespace {

struct ProjectArgs {
    std::string project;
    int minVotes = 1;
    double minAgreement = 0.0;
    double evalSplit = 0.0;
};

// What lives from before the training to after it: the application object (Qt loads the SQL drivers as
// plugins), the project's connection and the run's record.
struct ProjectRun {
    std::unique_ptr<QCoreApplication> app;
    std::unique_ptr<dpo::ProjectStore> store;
    std::unique_ptr<dpo::RunRecord> record;
};

QJsonObject toQJson(const nlohmann::json &j)
{
    return QJsonDocument::fromJson(QByteArray::fromStdString(j.dump())).object();
}

void note(const QString &line)
{
    std::fprintf(stderr, "%s\n", line.toUtf8().constData());
}

dpocli::TrainRunHooks prepare(const std::shared_ptr<ProjectArgs> &args, dpo::TrainConfig &config)
{
    if (args->project.empty())
        return {};
    if (!config.dataset.empty())
        throw dpo::Error("option --project: give either --project or --dataset");
    if (config.outputDir.empty())
        throw dpo::Error("option --output-dir: required with --project (the pairs are written to OUTPUT/data/)");
    if (args->minAgreement < 0 || args->minAgreement > 1)
        throw dpo::Error("option --min-agreement: must be a number in [0, 1]");
    if (args->evalSplit < 0 || args->evalSplit >= 1)
        throw dpo::Error("option --eval-split: must be in [0, 1)");
    // The paths the Train page plans for a project run.
    // Absolute, as the GUI records it: the Runs tab finds the run from any working directory.
    const QString out = QFileInfo(QString::fromStdString(config.outputDir)).absoluteFilePath();
    dpo::TrainingDataPlan plan;
    plan.source = dpo::TrainingDataPlan::Source::Project;
    plan.minVotes = args->minVotes;
    plan.minAgreement = args->minAgreement;
    plan.evalRatio = args->evalSplit;
    plan.seed = config.seed;
    plan.trainPath = QDir(out).filePath(QStringLiteral("data/train.jsonl"));
    plan.evalPath = QDir(out).filePath(QStringLiteral("data/eval.jsonl"));
    config.dataset = plan.trainPath.toStdString();
    if (plan.evalRatio > 0)
        config.evalDataset = plan.evalPath.toStdString();

    auto run = std::make_shared<ProjectRun>();
    const dpo::TrainConfig recorded = config;
    dpocli::TrainRunHooks hooks;
    hooks.beforeTraining = [args, run, plan, recorded, out]() {
        if (!QCoreApplication::instance()) {
            static int argc = 1;
            static char name[] = "dpo-cli";
            static char *argv[] = {name, nullptr};
            run->app = std::make_unique<QCoreApplication>(argc, argv);
        }
        const QString location = QString::fromStdString(args->project);
        if (!dpo::ProjectStore::isUrl(location) && !QFileInfo::exists(location))
            throw dpo::Error("no project at " + args->project);
        run->store = dpo::ProjectStore::open(location, dpo::ProjectStore::OpenMode::Existing);
        if (!QDir().mkpath(out))
            throw dpo::Error("option 'output_dir': cannot create " + recorded.outputDir);
        qint64 runId = 0;
        if (recorded.resume) {
            // The newest run recorded for this output directory (the data files are already there).
            for (const dpo::Run &r : run->store->runs())
                if (QDir::cleanPath(r.outputDir) == QDir::cleanPath(out))
                    runId = r.id;
        }
        dpo::TrainConfig cfg = recorded;
        cfg.resume = false; // the record holds the run's options, as the GUI records them
        run->record = std::make_unique<dpo::RunRecord>(run->store.get(), note);
        run->record->begin(runId, QFileInfo(out).fileName(),
                           QString::fromUtf8(QJsonDocument(toQJson(cfg.toJson())).toJson(QJsonDocument::Compact)),
                           out);
        if (!recorded.resume)
            dpo::prepareTrainingData(run->store.get(), plan, nullptr, note);
        run->record->lock(out);
    };
    hooks.onMetrics = [run](const nlohmann::json &m) {
        if (run->record)
            run->record->addMetrics(toQJson(m));
    };
    hooks.afterTraining = [run](const std::string &status) {
        if (!run->record)
            return;
        run->record->finish(status == "completed" ? QStringLiteral("finished")
                            : status == "stopped" ? QStringLiteral("stopped")
                                                  : QStringLiteral("failed"));
        run->record->release();
        run->record.reset();
        run->store.reset();
    };
    return hooks;
}

dpocli::TrainExtension projectExtension()
{
    auto args = std::make_shared<ProjectArgs>();
    dpocli::TrainExtension ext;
    ext.addOptions = [args](CLI::App *cmd) {
        cmd->add_option("--project", args->project,
                        "Train on this project's judged pairs (SQLite file or postgresql:// URL) instead of --dataset; "
                        "the run is recorded in the project");
        cmd->add_option("--min-votes", args->minVotes, "With --project: non-skip votes a pair needs (default 1)");
        cmd->add_option("--min-agreement", args->minAgreement,
                        "With --project: the majority's share of the votes a pair needs, 0-1 (default 0)");
        cmd->add_option("--eval-split", args->evalSplit,
                        "With --project: share of the pairs held out for evaluation, drawn from the seed (default 0)");
    };
    ext.prepare = [args](dpo::TrainConfig &config) { return prepare(args, config); };
    return ext;
}

dpocli::TrainExtensionRegistrar regTrainProject(projectExtension());

} // namespace
