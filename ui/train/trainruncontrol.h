// TrainRunControl: the Train page's run controls: Start / Stop (checkpoint) / Resume, the progress bar and
// line (step/total, elapsed, ETA, tokens/s, memory), the last metrics and the log. It owns the
// TrainingRunner (its own QThread; only queued signals reach the GUI thread), launches jobs the page has
// planned, feeds the live metrics to the charts and remembers the last job so that a stopped run can be
// resumed. The log view is shown by the page in its tabs (logView()).
// Not here: the options and their validation (TrainOptionsForm), the runs list (TrainRunsBrowser).
#pragma once

#include "ui/train/trainingworker.h"

#include <QElapsedTimer>
#include <QVariantMap>
#include <QVector>
#include <QWidget>

class MetricsDashboard;
class QLabel;
class QPlainTextEdit;
class QProgressBar;
class QPushButton;
class QTimer;

class TrainRunControl : public QWidget {
    Q_OBJECT
public:
    explicit TrainRunControl(MetricsDashboard *dashboard, QWidget *parent = nullptr);

    // Starts a job (a new run, or a resumed one with config.resume); the charts follow it. Returns false
    // while another job runs.
    bool launch(const TrainingJob &job);
    void stop(); // after the current optimizer step, with a checkpoint
    // The last job of this session can continue: it has a checkpoint and did not complete.
    bool canResumeLast() const;
    bool resumeLast();
    bool isTraining() const;

    // Button states; selectionResumable: a run selected in the runs list can be resumed.
    void updateButtons(bool selectionResumable);
    void appendLog(const QString &line);

    TrainingRunner *runner() const { return m_runner; }
    QPlainTextEdit *logView() const { return m_log; }
    QString lastStatus() const { return m_lastStatus; }
    QString lastCheckpoint() const { return m_lastCheckpoint; }
    qint64 currentRunId() const { return m_currentRunId; }
    QString progressText() const;
    QString logText() const;

signals:
    void startClicked();
    void resumeClicked();
    void message(const QString &text, bool error);
    void runRecorded(qint64 runId);
    void trainingStarted();
    void trainingFinished(const QString &status); // "completed", "stopped" or "failed"
    void buttonsStale(); // the page recomputes the buttons (updateButtons) with the runs list's selection

private:
    void updateProgress();
    void onMetrics(const QVariantMap &metrics);
    void onFinished(const QString &status, const QString &checkpoint, const QString &finalDir);
    void onFailed(const QString &error);

    TrainingRunner *m_runner;
    MetricsDashboard *m_dashboard;
    QPushButton *m_startButton;
    QPushButton *m_stopButton;
    QPushButton *m_resumeButton;
    QProgressBar *m_progress;
    QLabel *m_progressLabel;
    QLabel *m_lastMetricsLabel;
    QPlainTextEdit *m_log;
    QTimer *m_uiTimer;

    qint64 m_currentRunId = 0;
    TrainingJob m_lastJob;
    bool m_haveLastJob = false;
    QString m_lastStatus;
    QString m_lastCheckpoint;
    QElapsedTimer m_elapsed;
    QElapsedTimer m_rateClock;
    qint64 m_firstStep = -1;
    double m_firstStepSeconds = 0;
    QVariantMap m_latest;      // newest metrics line (train or eval)
    QVariantMap m_latestTrain; // newest training line
    bool m_primaryLoading = false;     // a resumed run's metrics.jsonl is being read
    QVector<QVariantMap> m_liveBuffer; // live lines received meanwhile
    int m_loadSeq = 0;
};
