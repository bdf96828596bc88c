#include "engine/training/run_folder.h"

#include "ui/train/trainpage.h"

#include "ui/shell/bundleddemo.h"

#include <QDir>
#include <QFileInfo>
#include <QMessageBox>
#include <QSplitter>
#include <QTabWidget>
#include <QTimer>
#include <QVBoxLayout>

TrainPage::TrainPage(QWidget *parent)
    : QWidget(parent)
    , m_dashboard(new MetricsDashboard)
    , m_data(new TrainDataPanel)
    , m_options(new TrainOptionsForm(m_data))
    , m_run(new TrainRunControl(m_dashboard))
    , m_runs(new TrainRunsBrowser(m_dashboard, m_run))
{
    setObjectName(QStringLiteral("trainPage"));
    buildUi();
    connectParts();
    resetToDefaults();
    newOutputDir();
    useBundledDemo();
}

TrainPage::~TrainPage()
{
    // The runner's destructor stops a job in progress (with a checkpoint) and joins its thread.
}

void TrainPage::buildUi()
{
    auto *runPane = new QWidget;
    auto *v = new QVBoxLayout(runPane);
    v->setContentsMargins(4, 0, 0, 0);
    v->addWidget(m_run);
    m_tabs = new QTabWidget;
    m_tabs->setObjectName(QStringLiteral("trainTabs"));
    m_tabs->addTab(m_dashboard, tr("Charts"));
    m_tabs->addTab(m_run->logView(), tr("Log"));
    m_tabs->addTab(m_runs, tr("Runs"));
    v->addWidget(m_tabs, 1);

    m_options->setMinimumWidth(360);
    auto *split = new QSplitter(Qt::Horizontal);
    split->setObjectName(QStringLiteral("trainSplitter"));
    split->addWidget(m_options);
    split->addWidget(runPane);
    split->setStretchFactor(0, 0);
    split->setStretchFactor(1, 1);
    split->setSizes({430, 970});
    auto *layout = new QVBoxLayout(this);
    layout->setContentsMargins(4, 4, 4, 4);
    layout->addWidget(split);
}

void TrainPage::connectParts()
{
    connect(m_data, &TrainDataPanel::modelInspected, this, &TrainPage::modelInspected);
    connect(m_data, &TrainDataPanel::datasetSummarized, this, &TrainPage::datasetSummarized);
    connect(m_options, &TrainOptionsForm::errorShown, this, &TrainPage::statusMessage);
    // The message line under the form reports the runs too; validation leaves it alone while training.
    connect(m_run, &TrainRunControl::message, m_options, &TrainOptionsForm::setMessage);
    connect(m_runs, &TrainRunsBrowser::message, m_options, &TrainOptionsForm::setMessage);
    connect(m_run->runner(), &TrainingRunner::runningChanged, m_options, &TrainOptionsForm::setBusy);

    connect(m_run, &TrainRunControl::startClicked, this, &TrainPage::start);
    connect(m_run, &TrainRunControl::resumeClicked, this, &TrainPage::resume);
    connect(m_run, &TrainRunControl::buttonsStale, this, &TrainPage::updateButtons);
    connect(m_run, &TrainRunControl::runRecorded, this, &TrainPage::refreshRuns);
    connect(m_run, &TrainRunControl::trainingStarted, this, [this]() {
        m_tabs->setCurrentWidget(m_dashboard);
        emit trainingStarted();
    });
    connect(m_run, &TrainRunControl::trainingFinished, this, &TrainPage::onTrainingFinished);

    connect(m_runs, &TrainRunsBrowser::selectionChanged, this, &TrainPage::updateButtons);
    connect(m_runs, &TrainRunsBrowser::runsRefreshed, this, [this]() {
        updateButtons();
        emit runsRefreshed();
    });
    connect(m_runs, &TrainRunsBrowser::chartsLoaded, this, [this]() {
        m_tabs->setCurrentWidget(m_dashboard);
        emit chartsLoaded();
    });
    connect(m_runs, &TrainRunsBrowser::resumeRequested, this, &TrainPage::resume);
    connect(m_runs, &TrainRunsBrowser::loadConfigRequested, m_options, &TrainOptionsForm::loadRunConfig);
}

void TrainPage::useBundledDemo()
{
    // Default: the bundled demo model with its DPO teaching pairs and preset, so that Start on a first
    // launch visibly teaches it something (correct sums, polite greetings) in a short CPU run.
    const QString demo = bundledDemoModelDir();
    if (demo.isEmpty())
        return;
    setModelPath(demo);
    const QString pairs = QDir::cleanPath(demo + QStringLiteral("/../demo/dpo_pairs.jsonl"));
    if (m_data->datasetFile().isEmpty() && QFileInfo::exists(pairs))
        setDatasetFile(pairs);
    const QString preset = QDir::cleanPath(demo + QStringLiteral("/../demo/dpo_preset.json"));
    dpo::TrainConfig current;
    if (QFileInfo::exists(preset) && buildConfig(&current, nullptr, false)) {
        try {
            dpo::TrainConfig c = dpo::TrainConfig::fromFile(preset.toStdString());
            c.model = current.model; // what the preset leaves open keeps the page's defaults
            c.dataset = current.dataset;
            c.outputDir = current.outputDir;
            c.threads = current.threads;
            c.device = current.device;
            setConfig(c);
        } catch (const std::exception &) {
            // A broken bundled preset leaves the plain defaults.
        }
    }
}

void TrainPage::setProject(ProjectSession *session)
{
    m_data->setProject(session);
    if (m_options->outputDirIsAuto())
        newOutputDir(); // under the new project's runs folder
    m_runs->setProject(session);
}

// ---------------------------------------------------------------- running

bool TrainPage::start()
{
    if (isTraining()) {
        m_options->setMessage(tr("A run is in progress: stop it first."), true);
        return false;
    }
    dpo::TrainConfig config;
    QString error;
    if (!buildConfig(&config, &error)) {
        m_options->setMessage(error, true);
        return false;
    }
    const ModelInfo &model = m_data->modelInfo();
    if (!model.ok && !model.error.isEmpty() && model.dir == m_data->modelPath()) {
        m_options->setMessage(tr("option 'model': %1").arg(model.error), true);
        return false;
    }
    if (!dpo::latestCheckpoint(config.outputDir).empty()) {
        m_options->setMessage(
            tr("option 'output_dir': %1 already holds checkpoints of a run. Resume it (Runs tab) or pick "
               "another directory (New).")
                .arg(QString::fromStdString(config.outputDir)),
            true);
        return false;
    }
    // A previous attempt in this directory that never checkpointed may have left its metrics.
    TrainingJob job = m_data->planJob(config);
    job.processes = m_options->devices();
    return m_run->launch(job);
}

bool TrainPage::resume()
{
    if (isTraining()) {
        m_options->setMessage(tr("A run is in progress."), true);
        return false;
    }
    for (const dpo::Run &r : m_runs->selectedRuns())
        if (m_runs->isResumable(r))
            return resumeRun(r);
    if (m_run->canResumeLast())
        return m_run->resumeLast();
    m_options->setMessage(tr("Nothing to resume: select a stopped or interrupted run in the Runs tab."), true);
    return false;
}

bool TrainPage::resumeRun(const dpo::Run &run)
{
    TrainingJob job;
    try {
        job.config = dpo::TrainConfig::fromJson(nlohmann::json::parse(run.configJson.toStdString()),
                                                run.name.toStdString());
    } catch (const std::exception &e) {
        m_options->setMessage(tr("%1: its config cannot be read: %2").arg(run.name, QString::fromUtf8(e.what())),
                              true);
        return false;
    }
    job.config.resume = true;
    job.config.outputDir = run.outputDir.toStdString();
    job.runName = run.name;
    job.runId = run.id;
    job.projectLocation = m_data->session() ? m_data->session()->location() : QString();
    job.processes = m_options->devices();
    return m_run->launch(job);
}

bool TrainPage::canClose()
{
    if (!isTraining())
        return true;
    if (!m_closeRequested) {
        const auto answer = QMessageBox::question(
            this, tr("Training in progress"),
            tr("A training run is in progress. Stop it (a checkpoint is saved, so it can be resumed) and close?"),
            QMessageBox::Yes | QMessageBox::Cancel, QMessageBox::Cancel);
        if (answer != QMessageBox::Yes)
            return false;
        m_closeRequested = true;
        stop();
    }
    return false; // the window closes once the trainer has returned (onTrainingFinished)
}

void TrainPage::updateButtons()
{
    m_run->updateButtons(m_runs->selectionResumable());
}

void TrainPage::onTrainingFinished(const QString &status)
{
    if (status == QLatin1String("completed") && m_options->outputDirIsAuto())
        newOutputDir(); // the next Start makes a new run
    refreshRuns();
    emit trainingFinished(status);
    if (m_closeRequested) {
        m_closeRequested = false;
        if (QWidget *w = window(); w && w != this)
            QTimer::singleShot(0, w, &QWidget::close);
    }
}
