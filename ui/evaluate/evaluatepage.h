// EvaluatePage: is the fine-tuned model better? Four tabs:
//   Setup        pick two or more models (base models and every checkpoint-N/ and final/ of the project's
//                runs, plus any directory added with "Add model directory…"), a prompt set (a run's held-out
//                split, the project's prompts, or a JSONL file of {"prompt"}), the shared sampling settings
//                and seed; generate in the background (EvaluationRunner: progress, cancel) with completions
//                cached in the project by provenance; then start a blind session: eval pairs between every
//                two models per prompt, judged on the Label page in its eval mode (sides randomized and
//                recorded by the store, no identities shown, verdicts stored as kind 'eval').
//   Results      hidden while the blind session is open; after "End session": Bradley–Terry Elo ratings
//                with bootstrap intervals, win rate of each model against a chosen baseline (Wilson and
//                bootstrap intervals, ties ½, both-bad counted apart), output lengths beside them, and
//                how many more judgments would separate models whose intervals overlap.
//   Per prompt   every judgment with the prompt, both outputs, the models and the verdict.
//   Checkpoints  without a person: implicit-reward accuracy and mean log-prob shift from the reference of
//                every checkpoint of a run on its held-out pairs, computed in the background, as charts.
// "Export report…" writes a self-contained HTML file (charts as embedded PNG, tables) and CSV files.
// Statistics are computed on the session's StoreWorker thread; nothing heavy runs on the GUI thread.
#pragma once

#include "ui/evaluate/evaluationresults.h"
#include "ui/evaluate/evaluationworker.h"
#include "ui/shell/projectsession.h"

#include <QPointer>
#include <QWidget>

class MainWindow;
class QCheckBox;
class QComboBox;
class QCustomPlot;
class QDoubleSpinBox;
class QLabel;
class QLineEdit;
class QProgressBar;
class QPushButton;
class QRadioButton;
class QSpinBox;
class QTabWidget;
class QTableWidget;
class QTreeWidget;
class QTreeWidgetItem;

class EvaluatePage : public QWidget, public ProjectPage {
    Q_OBJECT
public:
    // window (optional) gives access to the Label page for blind judging.
    explicit EvaluatePage(MainWindow *window = nullptr, QWidget *parent = nullptr);
    ~EvaluatePage() override;

    void setProject(ProjectSession *session) override;

    // --- models ---
    QVector<dpo::EvalModel> availableModels() const;
    QVector<dpo::EvalModel> selectedModels() const;
    // Lists a directory (kept in the project's setting "eval/extra_models") and checks it. Returns false
    // (with a message) when it has no config.json.
    bool addModelDirectory(const QString &dir, QString *error = nullptr);
    void setModelChecked(const QString &path, bool checked);
    void refreshModels();

    // --- prompt set ---
    enum class PromptSource { RunHeldOut, Project, File };
    void setPromptSource(PromptSource source);
    void setPromptFile(const QString &path);
    void setProjectPromptLimit(int n);

    // --- sampling ---
    dpo::SamplingSettings sampling() const;
    void setSampling(const dpo::SamplingSettings &s);

    // --- background jobs ---
    bool startGeneration(QString *error = nullptr);
    bool startScoring(qint64 runId, QString *error = nullptr);
    void cancel();
    bool isBusy() const;
    const GenerationSummary &lastGeneration() const { return m_lastGeneration; }
    const QVector<CheckpointScore> &scores() const { return m_scores; }

    // --- blind session ---
    // Creates the eval pairs for the selected models over the last generation's prompts and sends the
    // Label page (when there is a window) into eval mode.
    bool startBlindSession(QString *error = nullptr);
    // Ends the session: identities and results are shown from now on; the Label page returns to labeling.
    void endSession();
    dpo::EvalSession session() const;
    bool resultsVisible() const; // false while a session is being judged (or none exists)

    // --- results ---
    void setBaseline(int modelIndex);
    int baseline() const { return m_baseline; }
    void refreshResults(); // recomputes on the worker; resultsUpdated() when done
    const EvaluationResults &results() const { return m_results; }
    bool exportReport(const QString &htmlPath, QString *error = nullptr); // + .csv files beside it

    QTabWidget *tabs() const { return m_tabs; }

signals:
    void generationFinished(const GenerationSummary &summary);
    void scoringFinished(bool cancelled);
    void resultsUpdated();
    void jobFailed(const QString &message);
    void statusMessage(const QString &message);

protected:
    void showEvent(QShowEvent *event) override;

private:
    void buildUi();
    QWidget *buildSetupTab();
    QWidget *buildResultsTab();
    QWidget *buildPromptsTab();
    QWidget *buildCheckpointsTab();
    void addModelItem(QTreeWidgetItem *parent, const dpo::EvalModel &m);
    void refreshRuns();
    void updateSessionState();
    void showResults();
    void setBusy(bool busy);
    void exportDialog();
    QString heldOutFile(qint64 runId) const;

    MainWindow *m_window;
    ProjectSession *m_session = nullptr;
    EvaluationRunner *m_runner;
    GenerationSummary m_lastGeneration;
    QVector<CheckpointScore> m_scores;
    EvaluationResults m_results;
    int m_baseline = 0;
    int m_resultsGeneration = 0;

    QTabWidget *m_tabs = nullptr;
    // setup
    QTreeWidget *m_models = nullptr;
    QRadioButton *m_srcRun = nullptr;
    QRadioButton *m_srcProject = nullptr;
    QRadioButton *m_srcFile = nullptr;
    QComboBox *m_heldOutRun = nullptr;
    QSpinBox *m_projectLimit = nullptr;
    QLineEdit *m_promptFile = nullptr;
    QCheckBox *m_greedy = nullptr;
    QDoubleSpinBox *m_temperature = nullptr;
    QSpinBox *m_topK = nullptr;
    QDoubleSpinBox *m_topP = nullptr;
    QSpinBox *m_maxNew = nullptr;
    QSpinBox *m_seed = nullptr;
    QPushButton *m_generate = nullptr;
    QPushButton *m_judge = nullptr;
    QLabel *m_setupInfo = nullptr;
    // results
    QLabel *m_sessionLabel = nullptr;
    QPushButton *m_endSession = nullptr;
    QPushButton *m_judgeMore = nullptr;
    QComboBox *m_baselineBox = nullptr;
    QCustomPlot *m_ratingPlot = nullptr;
    QCustomPlot *m_winPlot = nullptr;
    QTableWidget *m_modelTable = nullptr;
    QTableWidget *m_sepTable = nullptr;
    QLabel *m_sepLabel = nullptr;
    QWidget *m_resultsBody = nullptr;
    // per prompt
    QTableWidget *m_promptTable = nullptr;
    QLabel *m_promptHidden = nullptr;
    // checkpoints
    QComboBox *m_scoreRun = nullptr;
    QSpinBox *m_scorePairs = nullptr;
    QPushButton *m_scoreButton = nullptr;
    QCustomPlot *m_accPlot = nullptr;
    QCustomPlot *m_shiftPlot = nullptr;
    QTableWidget *m_scoreTable = nullptr;
    QLabel *m_scoreInfo = nullptr;
    // footer
    QProgressBar *m_progress = nullptr;
    QLabel *m_progressLabel = nullptr;
    QPushButton *m_cancel = nullptr;
    QPushButton *m_export = nullptr;
};
