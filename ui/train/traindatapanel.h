// TrainDataPanel: the Train page's "Model" and "Data" boxes. It holds the policy model directory (inspected
// off the GUI thread when picked: architecture, parameters, dtype, vocabulary, tokenizer kind; errors
// inline) and the training data: the open project's judged pairs (with the export filters) or a TRL JSONL
// file, plus an optional eval split or eval file. It summarises the dataset off-thread (pairs, length
// skew, rows over max length) and turns these choices into a TrainingJob's data preparation (planJob).
// Not here: the other options and their validation (TrainOptionsForm), running (TrainRunControl).
#pragma once

#include "ui/shell/projectsession.h"
#include "ui/train/traindata.h"
#include "ui/train/trainingworker.h"

#include "engine/training/train_config.h"

#include <QWidget>

#include <memory>

class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QLineEdit;
class QRadioButton;
class QSpinBox;
class QTemporaryDir;
class QTimer;

class TrainDataPanel : public QWidget {
    Q_OBJECT
public:
    explicit TrainDataPanel(QWidget *parent = nullptr);
    ~TrainDataPanel() override;

    void setProject(ProjectSession *session);
    ProjectSession *session() const { return m_session; }

    void setModelPath(const QString &dir); // inspected off-thread; modelInspected() when done
    QString modelPath() const;             // as typed
    const ModelInfo &modelInfo() const { return m_modelInfo; }

    enum class DataSource { Project, File };
    void setDataSource(DataSource source);
    bool fromFile() const;
    void setDatasetFile(const QString &path); // also chooses the file source
    QString datasetFile() const;              // as typed
    void setEvalSplit(double ratio);          // 0 = none
    void setEvalFile(const QString &path);    // held-out file instead of a split

    // The TrainConfig paths this panel owns ("model", "dataset", "eval_dataset"): written into the form's
    // JSON, read from a config (a non-empty dataset chooses the file source), set one by one.
    void writeConfigPaths(nlohmann::json *j) const;
    void applyConfigPaths(const dpo::TrainConfig &config);
    bool setPathOption(const QString &key, const QString &text); // false: not one of the three keys
    // The data choices' own checks; throws dpo::Error naming the option.
    void validate(const dpo::TrainConfig &config) const;
    // A job for the form's config: where the data comes from and which files the run writes under
    // OUTPUT/data/ (a project export, an eval split).
    TrainingJob planJob(const dpo::TrainConfig &formConfig) const;

    void setMaxLength(qint64 maxLength); // for the summary's "over max length" count
    void setTruncationMode(const QString &mode); // keep_start drops rows whose prompt fills max length
    void setChatTemplate(const QString &file);   // conversational rows; empty = the model's own
    void refreshDatasetSummary();        // datasetSummarized() when done
    const DatasetSummary &datasetSummary() const { return m_summary; }

signals:
    void modelInspected(bool ok);
    void datasetSummarized(bool ok);
    void changed(); // a choice the options' validation depends on

private:
    void scheduleSummary();
    void summarizeFile(const QString &path, int seq);
    void updateDataWidgets();
    int evalMode() const; // 0 none, 1 split, 2 file

    ProjectSession *m_session = nullptr;
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
    QTimer *m_summaryTimer;

    ModelInfo m_modelInfo;
    int m_inspectSeq = 0;
    DatasetSummary m_summary;
    int m_summarySeq = 0;
    qint64 m_maxLength = 0;
    QString m_truncationMode = QStringLiteral("keep_start");
    QString m_chatTemplate;
    std::unique_ptr<QTemporaryDir> m_tempDir; // project pairs exported for the summary
};
