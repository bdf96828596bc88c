// TrainPage: launch DPO from the GUI and watch it.
//
// Left: the run's options, grouped as in TRL (model, data, DPO, optimisation, sequence, checkpoints,
// hardware), each with a tooltip and TRL's default; presets are the TrainConfig JSON that
// `dpo-cli train --config` reads; "Copy as dpo-cli command". The model is inspected off the GUI
// thread when picked (architecture, parameters, dtype, vocabulary, tokenizer kind; errors inline) and
// the dataset summarised (pairs, length skew, rows over max length) before start. Options are
// validated with TrainConfig::validate as they are typed; Start refuses an invalid set with the
// message.
// Right: Start / Stop (checkpoint) / Resume, progress (step/total, elapsed, ETA, tokens/s, memory),
// then tabs: live charts (MetricsDashboard), the log, and the project's runs (status, start/end,
// output directory, last metrics; re-open or overlay a run's charts from its metrics.jsonl; config
// diff of two runs; resume a stopped or interrupted run).
//
// Training runs in a TrainingRunner (its own QThread); the GUI thread only receives queued signals.
// Closing: MainWindow asks canClose(); during training it asks the user, stops with a checkpoint, and
// closes the window once the trainer has returned.
#pragma once

#include "ui/train/metricschart.h"
#include "ui/shell/projectsession.h"
#include "ui/train/traindata.h"
#include "ui/train/trainingworker.h"

#include "engine/training/train_config.h"

#include <QElapsedTimer>
#include <QFutureWatcher>
#include <QHash>
#include <QJsonObject>
#include <QTemporaryDir>
#include <QWidget>

#include <memory>

class QButtonGroup;
class QComboBox;
class QDoubleSpinBox;
class QFormLayout;
class QLabel;
class QLineEdit;
class QListWidget;
class QPlainTextEdit;
class QProgressBar;
class QPushButton;
class QRadioButton;
class QSpinBox;
class QTableWidget;
class QTabWidget;
class QTimer;

class TrainPage : public QWidget, public ProjectPage {
    Q_OBJECT
public:
    explicit TrainPage(QWidget *parent = nullptr);
    ~TrainPage() override;
    void setProject(ProjectSession *session) override;

    // ---- options (the form <-> TrainConfig)
    // Parses the form; validate: also TrainConfig::validate (and the page's own checks). On failure
    // returns false with a message naming the option.
    bool buildConfig(dpo::TrainConfig *config, QString *error, bool validate = true) const;
    void setConfig(const dpo::TrainConfig &config); // every option, data paths included
    void resetToDefaults();
    bool savePreset(const QString &path, QString *error = nullptr) const;
    bool loadPreset(const QString &path, QString *error = nullptr);
    // The dpo-cli command line reproducing the form (options that differ from the defaults).
    QString cliCommand(QString *error = nullptr) const;
    void copyCliCommand();
    // Sets one option by its TrainConfig key ("beta", "max_steps", "loss_type" as "sigmoid,hinge",
    // "shuffle" as "true"/"false", ...). Returns false for an unknown key.
    bool setOption(const QString &key, const QString &text);
    QString optionText(const QString &key) const;

    // ---- model and data
    void setModelPath(const QString &dir); // inspected off-thread; modelInspected() when done
    const ModelInfo &modelInfo() const { return m_modelInfo; }
    enum class DataSource { Project, File };
    void setDataSource(DataSource source);
    void setDatasetFile(const QString &path);
    void setEvalSplit(double ratio);          // 0 = none
    void setEvalFile(const QString &path);    // held-out file instead of a split
    void setOutputDir(const QString &dir);
    QString outputDir() const;
    void newOutputDir();                      // a fresh run-YYYYMMDD-HHMMSS under the runs folder
    void refreshDatasetSummary();             // datasetSummarized() when done
    const DatasetSummary &datasetSummary() const { return m_summary; }

    // ---- runs
    bool start();
    void stop();
    // Resumes the selected resumable run of the list, else the last run of this session.
    bool resume();
    bool resumeRun(const dpo::Run &run);
    bool isTraining() const;
    Q_INVOKABLE bool canClose();
    void refreshRuns(); // runsRefreshed() when done
    const QVector<dpo::Run> &runs() const { return m_runs; }
    // Opens a run's metrics.jsonl off-thread into the charts (overlay: drawn over the current run).
    void showRunCharts(const dpo::Run &run, bool overlay);
    // Keys whose values differ: key -> (a, b) as JSON text.
    static QVector<QStringList> configDiff(const QJsonObject &a, const QJsonObject &b);
    void showConfigDiff(const dpo::Run &a, const dpo::Run &b);

    QString message() const; // the validation / status line
    QString lastStatus() const { return m_lastStatus; }
    QString lastCheckpoint() const { return m_lastCheckpoint; }
    qint64 currentRunId() const { return m_currentRunId; }
    MetricsDashboard *dashboard() const { return m_dashboard; }
    TrainingRunner *runner() const { return m_runner; }
    QString progressText() const;
    QString logText() const;

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
    QWidget *buildOptionsPane();
    QWidget *buildRunPane();
    QWidget *buildRunsTab();
    QLineEdit *addDouble(QFormLayout *form, const QString &key, const QString &label, const QString &tip);
    QSpinBox *addInt(QFormLayout *form, const QString &key, const QString &label, const QString &tip, int min,
                     int max);
    QComboBox *addCombo(QFormLayout *form, const QString &key, const QString &label, const QString &tip,
                        const QStringList &items);
    void scheduleValidation();
    void validateForm();
    void setMessage(const QString &text, bool error);
    void scheduleSummary();
    void summarizeFile(const QString &path, int seq);
    void updateReferenceWidgets();
    void updateDataWidgets();
    void updateButtons();
    void updateProgress();
    void appendLog(const QString &line);
    bool launch(const TrainingJob &job);
    TrainingJob planJob(const dpo::TrainConfig &formConfig) const;
    QString runsBaseDir() const;
    QVector<dpo::Run> selectedRuns() const;
    bool isResumable(const dpo::Run &run) const;
    void fillRunsTable();
    void onMetrics(const QVariantMap &metrics);
    void onFinished(const QString &status, const QString &checkpoint, const QString &finalDir);
    void onFailed(const QString &message);

    ProjectSession *m_session = nullptr;
    TrainingRunner *m_runner;
    MetricsDashboard *m_dashboard;

    // options
    QHash<QString, QWidget *> m_fields; // TrainConfig key -> editor (simple one-to-one options)
    QLineEdit *m_modelEdit;
    QLabel *m_modelInfoLabel;
    QRadioButton *m_projectRadio;
    QRadioButton *m_fileRadio;
    QLineEdit *m_datasetEdit;
    QSpinBox *m_minVotes;
    QLineEdit *m_minAgreement;
    QComboBox *m_evalMode;
    QDoubleSpinBox *m_evalRatio;
    QLineEdit *m_evalFileEdit;
    QLabel *m_summaryLabel;
    QListWidget *m_lossTypes;
    QLineEdit *m_lossWeights;
    QComboBox *m_refMode;
    QLineEdit *m_refModelEdit;
    QLineEdit *m_outputEdit;
    QLabel *m_messageLabel;
    QTimer *m_validateTimer;
    QTimer *m_summaryTimer;
    bool m_outputAuto = true;

    // run controls
    QPushButton *m_startButton;
    QPushButton *m_stopButton;
    QPushButton *m_resumeButton;
    QProgressBar *m_progress;
    QLabel *m_progressLabel;
    QLabel *m_lastMetricsLabel;
    QTabWidget *m_tabs;
    QPlainTextEdit *m_log;
    QTableWidget *m_runsTable;
    QLabel *m_runsNote;
    QTimer *m_uiTimer;

    // state
    ModelInfo m_modelInfo;
    int m_inspectSeq = 0;
    DatasetSummary m_summary;
    int m_summarySeq = 0;
    std::unique_ptr<QTemporaryDir> m_tempDir; // project pairs exported for the summary
    QVector<dpo::Run> m_runs;
    qint64 m_currentRunId = 0;
    TrainingJob m_lastJob;
    bool m_haveLastJob = false;
    QString m_lastStatus;
    QString m_lastCheckpoint;
    bool m_closeRequested = false;
    QElapsedTimer m_elapsed;
    QElapsedTimer m_rateClock;
    qint64 m_firstStep = -1;
    double m_firstStepSeconds = 0;
    QVariantMap m_latest;      // newest metrics line (train or eval)
    QVariantMap m_latestTrain; // newest training line
    bool m_progressDirty = false;
    bool m_primaryLoading = false;        // a resumed run's metrics.jsonl is being read
    QVector<QVariantMap> m_liveBuffer;    // live lines received meanwhile
    int m_loadSeq = 0;
};
