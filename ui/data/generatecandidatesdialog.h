// GenerateCandidatesDialog: the Data page's "Generate candidates…" dialog. The user picks a model directory
// (the bundled demo model by default), N candidates per prompt and the sampling settings, sees how many
// prompts lack completions, starts the job, watches a progress bar with an ETA, may cancel, and reads a
// result line (completions generated, pairs queued, seconds). The work runs on a CandidateRunner thread;
// the dialog only formats. When something was written it emits the session's contentChanged(), so the
// Data and Label pages pick the new completions and queued pairs up.
// Closing while a job runs cancels it (finished prompts stay) and closes once the worker has stopped.
#pragma once

#include "ui/data/candidateworker.h"

#include <QDialog>
#include <QElapsedTimer>

class ProjectSession;
class QComboBox;
class QDialogButtonBox;
class QDoubleSpinBox;
class QLabel;
class QLineEdit;
class QProgressBar;
class QPushButton;
class QSpinBox;

class GenerateCandidatesDialog : public QDialog {
    Q_OBJECT
public:
    explicit GenerateCandidatesDialog(ProjectSession *session, QWidget *parent = nullptr);
    ~GenerateCandidatesDialog() override;

    // The bundled demo model (resources/demo-model) next to the executable or in the source tree, or empty.
    static QString demoModelDir();

    void setModelDir(const QString &dir);
    QString modelDir() const;
    CandidateJob job() const; // the job the form describes
    CandidateRunner *runner() const { return m_runner; }
    QString resultText() const; // the result line (tests)
    QString backlogText() const; // "3 prompts need completions …" (tests)

public slots:
    void start();
    void refreshBacklog();
    // Close, Escape: cancels a running job first and closes when the worker has stopped.
    void reject() override;

signals:
    void generationFinished(const dpo::CandidateSummary &summary);

private:
    void setRunning(bool running);
    void onProgress(qint64 done, qint64 total, const QString &text);
    void onFinished(const dpo::CandidateSummary &s);
    void onFailed(const QString &message);

    ProjectSession *m_session;
    CandidateRunner *m_runner;
    QLineEdit *m_model;
    QPushButton *m_browse;
    QSpinBox *m_candidates;
    QDoubleSpinBox *m_temperature;
    QDoubleSpinBox *m_topP;
    QSpinBox *m_topK;
    QSpinBox *m_maxNewTokens;
    QSpinBox *m_seed;
    QComboBox *m_device;
    QSpinBox *m_limit;
    QLabel *m_backlog;
    QProgressBar *m_progress;
    QLabel *m_status;
    QLabel *m_result;
    QPushButton *m_start;
    QPushButton *m_cancel;
    QPushButton *m_close;
    QElapsedTimer m_timer;
    qint64 m_firstDone = -1; // candidates done when the first one after loading arrived (ETA baseline)
    qint64 m_firstMs = 0;
    bool m_closeWhenDone = false;
    int m_backlogRequest = 0;
};
