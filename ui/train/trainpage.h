// TrainPage: launch DPO from the GUI and watch it. The composition of the page's parts:
//
// Left: TrainOptionsForm, the run's options grouped as in TRL with presets and "Copy as dpo-cli", with
// TrainDataPanel (the model, inspected off the GUI thread, and the data: the project's judged pairs or a
// JSONL file, eval split or file, dataset summary) at its top.
// Right: TrainRunControl (Start / Stop / Resume, progress, log), then tabs: live charts
// (MetricsDashboard), the log, and TrainRunsBrowser (the project's runs, their charts, config diff).
//
// The page ties them: Start validates the form, plans the job from the data choices and launches it;
// Resume picks the selected resumable run, else the last run of this session. The public API below is
// what MainWindow and the tests use; most of it forwards to one part.
// Closing: MainWindow asks canClose(); during training it asks the user, stops with a checkpoint, and
// closes the window once the trainer has returned.
#pragma once

#include "ui/shell/projectsession.h"
#include "ui/train/metricschart.h"
#include "ui/train/traindatapanel.h"
#include "ui/train/trainoptionsform.h"
#include "ui/train/trainruncontrol.h"
#include "ui/train/trainrunsbrowser.h"

#include "engine/training/train_config.h"

#include <QWidget>

class QTabWidget;

class TrainPage : public QWidget, public ProjectPage {
    Q_OBJECT
public:
    explicit TrainPage(QWidget *parent = nullptr);
    ~TrainPage() override;
    void setProject(ProjectSession *session) override;

    // ---- options (TrainOptionsForm)
    bool buildConfig(dpo::TrainConfig *config, QString *error, bool validate = true) const
    {
        return m_options->buildConfig(config, error, validate);
    }
    void setConfig(const dpo::TrainConfig &config) { m_options->setConfig(config); }
    void resetToDefaults() { m_options->resetToDefaults(); }
    bool savePreset(const QString &path, QString *error = nullptr) const { return m_options->savePreset(path, error); }
    bool loadPreset(const QString &path, QString *error = nullptr) { return m_options->loadPreset(path, error); }
    QString cliCommand(QString *error = nullptr) const { return m_options->cliCommand(error); }
    void copyCliCommand() { m_options->copyCliCommand(); }
    bool setOption(const QString &key, const QString &text) { return m_options->setOption(key, text); }
    QString optionText(const QString &key) const { return m_options->optionText(key); }
    void setOutputDir(const QString &dir) { m_options->setOutputDir(dir); }
    QString outputDir() const { return m_options->outputDir(); }
    void newOutputDir() { m_options->newOutputDir(); }
    QString message() const { return m_options->message(); } // the validation / status line
    // Full and LoRA memory for the chosen model and options (empty model: a hint instead).
    QString memoryEstimateText() const { return m_options->memoryEstimateText(); }

    // ---- model and data (TrainDataPanel)
    using DataSource = TrainDataPanel::DataSource;
    void setModelPath(const QString &dir) { m_data->setModelPath(dir); } // modelInspected() when done
    const ModelInfo &modelInfo() const { return m_data->modelInfo(); }
    void setDataSource(DataSource source) { m_data->setDataSource(source); }
    void setDatasetFile(const QString &path) { m_data->setDatasetFile(path); }
    void setEvalSplit(double ratio) { m_data->setEvalSplit(ratio); }       // 0 = none
    void setEvalFile(const QString &path) { m_data->setEvalFile(path); }   // held-out file instead of a split
    void refreshDatasetSummary() { m_data->refreshDatasetSummary(); }    // datasetSummarized() when done
    const DatasetSummary &datasetSummary() const { return m_data->datasetSummary(); }

    // ---- runs (TrainRunControl, TrainRunsBrowser)
    bool start();
    void stop() { m_run->stop(); }
    // Resumes the selected resumable run of the list, else the last run of this session.
    bool resume();
    bool resumeRun(const dpo::Run &run);
    bool isTraining() const { return m_run->isTraining(); }
    Q_INVOKABLE bool canClose();
    void refreshRuns() { m_runs->refreshRuns(); } // runsRefreshed() when done
    const QVector<dpo::Run> &runs() const { return m_runs->runs(); }
    void showRunCharts(const dpo::Run &run, bool overlay) { m_runs->showRunCharts(run, overlay); }
    static QVector<QStringList> configDiff(const QJsonObject &a, const QJsonObject &b)
    {
        return TrainRunsBrowser::configDiff(a, b);
    }
    void showConfigDiff(const dpo::Run &a, const dpo::Run &b) { m_runs->showConfigDiff(a, b); }

    QString lastStatus() const { return m_run->lastStatus(); }
    QString lastCheckpoint() const { return m_run->lastCheckpoint(); }
    qint64 currentRunId() const { return m_run->currentRunId(); }
    MetricsDashboard *dashboard() const { return m_dashboard; }
    TrainingRunner *runner() const { return m_run->runner(); }
    QString progressText() const { return m_run->progressText(); }
    QString logText() const { return m_run->logText(); }

signals:
    void modelInspected(bool ok);
    void datasetSummarized(bool ok);
    void runsRefreshed();
    void trainingStarted();
    void trainingFinished(const QString &status); // "completed", "stopped" or "failed"
    void statusMessage(const QString &message);
    void chartsLoaded();

private:
    void buildUi();
    void connectParts();
    void useBundledDemo();
    void updateButtons();
    void onTrainingFinished(const QString &status);

    MetricsDashboard *m_dashboard;
    TrainDataPanel *m_data;
    TrainOptionsForm *m_options;
    TrainRunControl *m_run;
    TrainRunsBrowser *m_runs;
    QTabWidget *m_tabs = nullptr;
    bool m_closeRequested = false;
};
