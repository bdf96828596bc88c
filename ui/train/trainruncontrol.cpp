#include "engine/training/run_folder.h"

#include "ui/train/trainruncontrol.h"

#include "ui/train/metricschart.h"
#include "ui/train/traindata.h"

#include <QDir>
#include <QFileInfo>
#include <QFontDatabase>
#include <QFutureWatcher>
#include <QHBoxLayout>
#include <QLabel>
#include <QLocale>
#include <QPlainTextEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QTime>
#include <QTimer>
#include <QVBoxLayout>
#include <QtConcurrent>

#include <algorithm>
#include <climits>
#include <memory>

namespace {

QString formatSeconds(double s)
{
    if (!(s >= 0) || s > 1e7)
        return QStringLiteral("--:--");
    const qint64 t = qint64(s + 0.5);
    if (t >= 3600)
        return QStringLiteral("%1:%2:%3").arg(t / 3600).arg((t / 60) % 60, 2, 10, QLatin1Char('0')).arg(t % 60, 2, 10, QLatin1Char('0'));
    return QStringLiteral("%1:%2").arg(t / 60, 2, 10, QLatin1Char('0')).arg(t % 60, 2, 10, QLatin1Char('0'));
}

QString formatBytes(qint64 b)
{
    if (b >= (qint64(1) << 30))
        return QStringLiteral("%1 GiB").arg(double(b) / double(qint64(1) << 30), 0, 'f', 2);
    return QStringLiteral("%1 MiB").arg(double(b) / double(1 << 20), 0, 'f', 0);
}

} // namespace

TrainRunControl::TrainRunControl(MetricsDashboard *dashboard, QWidget *parent)
    : QWidget(parent)
    , m_runner(new TrainingRunner(this))
    , m_dashboard(dashboard)
{
    m_uiTimer = new QTimer(this);
    m_uiTimer->setInterval(250); // progress labels: 4 updates per second at most
    connect(m_uiTimer, &QTimer::timeout, this, &TrainRunControl::updateProgress);

    auto *v = new QVBoxLayout(this);
    v->setContentsMargins(0, 0, 0, 0);
    auto *controls = new QHBoxLayout;
    m_startButton = new QPushButton(tr("Start"));
    m_startButton->setObjectName(QStringLiteral("startButton"));
    m_startButton->setToolTip(tr("Validate the options and start a new run in the output directory."));
    m_stopButton = new QPushButton(tr("Stop"));
    m_stopButton->setObjectName(QStringLiteral("stopButton"));
    m_stopButton->setToolTip(tr("Stop after the current optimizer step and save a checkpoint (resumable)."));
    m_resumeButton = new QPushButton(tr("Resume"));
    m_resumeButton->setObjectName(QStringLiteral("resumeButton"));
    m_resumeButton->setToolTip(tr("Continue the selected stopped or interrupted run (Runs tab), else the last "
                                  "stopped run, from its newest checkpoint."));
    m_progress = new QProgressBar;
    m_progress->setObjectName(QStringLiteral("trainProgress"));
    m_progress->setRange(0, 1);
    m_progress->setValue(0);
    m_progress->setFormat(tr("not started")); // "0 / 1 steps" would read as a plan of one step
    controls->addWidget(m_startButton);
    controls->addWidget(m_stopButton);
    controls->addWidget(m_resumeButton);
    controls->addWidget(m_progress, 1);
    v->addLayout(controls);
    m_progressLabel = new QLabel(tr("Idle."));
    m_progressLabel->setObjectName(QStringLiteral("progressLabel"));
    m_lastMetricsLabel = new QLabel;
    m_lastMetricsLabel->setObjectName(QStringLiteral("lastMetrics"));
    m_lastMetricsLabel->setTextInteractionFlags(Qt::TextSelectableByMouse);
    auto *status = new QHBoxLayout;
    status->addWidget(m_progressLabel, 1);
    status->addWidget(m_lastMetricsLabel);
    v->addLayout(status);
    connect(m_startButton, &QPushButton::clicked, this, &TrainRunControl::startClicked);
    connect(m_stopButton, &QPushButton::clicked, this, &TrainRunControl::stop);
    connect(m_resumeButton, &QPushButton::clicked, this, &TrainRunControl::resumeClicked);

    m_log = new QPlainTextEdit(this); // shown in the page's tabs (logView())
    m_log->setObjectName(QStringLiteral("trainLog"));
    m_log->setReadOnly(true);
    m_log->setMaximumBlockCount(20000);
    m_log->setLineWrapMode(QPlainTextEdit::NoWrap);
    m_log->setFont(QFontDatabase::systemFont(QFontDatabase::FixedFont));

    connect(m_runner, &TrainingRunner::metrics, this, &TrainRunControl::onMetrics);
    connect(m_runner, &TrainingRunner::logLine, this, &TrainRunControl::appendLog);
    connect(m_runner, &TrainingRunner::finished, this, &TrainRunControl::onFinished);
    connect(m_runner, &TrainingRunner::failed, this, &TrainRunControl::onFailed);
    connect(m_runner, &TrainingRunner::runRecorded, this, [this](qint64 id) {
        m_currentRunId = id;
        m_lastJob.runId = id;
        emit runRecorded(id);
    });
    connect(m_runner, &TrainingRunner::started, this, [this](const QString &dir) {
        appendLog(tr("run directory %1").arg(dir));
    });
    updateButtons(false);
}

bool TrainRunControl::isTraining() const
{
    return m_runner->isRunning();
}

bool TrainRunControl::canResumeLast() const
{
    return m_haveLastJob && !dpo::latestCheckpoint(m_lastJob.config.outputDir).empty() &&
           m_lastStatus != QLatin1String("completed");
}

bool TrainRunControl::resumeLast()
{
    TrainingJob job = m_lastJob;
    job.config.resume = true;
    job.source = TrainingJob::Source::None;
    job.runId = m_currentRunId;
    return launch(job);
}

bool TrainRunControl::launch(const TrainingJob &job)
{
    const QString out = QString::fromStdString(job.config.outputDir);
    auto run = std::make_shared<MetricsRun>(job.runName.isEmpty() ? QFileInfo(out).fileName() : job.runName);
    run->setOutputDir(out);
    m_dashboard->setPrimaryRun(run);
    m_liveBuffer.clear();
    m_primaryLoading = job.config.resume;
    const int loadSeq = ++m_loadSeq;
    if (job.config.resume) {
        // The charts continue where the run was: its metrics.jsonl is read off the GUI thread (it can
        // hold 100,000 lines); live lines arriving meanwhile are replayed over it.
        const QString path = QDir(out).filePath(QStringLiteral("metrics.jsonl"));
        const QString name = run->name();
        auto *watcher = new QFutureWatcher<std::shared_ptr<MetricsRun>>(this);
        connect(watcher, &QFutureWatcher<std::shared_ptr<MetricsRun>>::finished, this, [this, watcher, loadSeq]() {
            auto loaded = watcher->result();
            watcher->deleteLater();
            if (loadSeq != m_loadSeq)
                return;
            m_primaryLoading = false;
            if (!loaded)
                return;
            for (const QVariantMap &m : std::as_const(m_liveBuffer))
                loaded->addMetrics(m);
            m_liveBuffer.clear();
            m_dashboard->setPrimaryRun(loaded);
        });
        watcher->setFuture(QtConcurrent::run([path, name]() {
            QString error;
            return MetricsRun::loadMetricsJsonl(path, name, &error);
        }));
    }
    m_latest.clear();
    m_latestTrain.clear();
    m_firstStep = -1;
    m_progress->setRange(0, 1);
    m_progress->setValue(0);
    m_progress->setFormat(tr("starting…"));
    m_lastStatus.clear();
    m_currentRunId = job.runId;
    m_lastJob = job;
    m_haveLastJob = true;
    if (!m_runner->start(job)) {
        emit message(tr("A run is in progress: stop it first."), true);
        return false;
    }
    m_elapsed.start();
    m_rateClock.start();
    m_uiTimer->start();
    appendLog(job.config.resume ? tr("resuming %1").arg(out) : tr("starting %1").arg(out));
    emit message(job.config.resume ? tr("Resuming %1…").arg(run->name()) : tr("Training %1…").arg(run->name()), false);
    emit buttonsStale();
    updateProgress();
    emit trainingStarted();
    return true;
}

void TrainRunControl::stop()
{
    if (!isTraining())
        return;
    m_runner->requestStop();
    appendLog(tr("stop requested: the trainer saves a checkpoint after the current step"));
    emit message(tr("Stopping after the current step (saving a checkpoint)…"), false);
    emit buttonsStale();
}

void TrainRunControl::onMetrics(const QVariantMap &metrics)
{
    m_dashboard->addMetrics(metrics);
    if (m_primaryLoading)
        m_liveBuffer.append(metrics);
    m_latest = metrics;
    if (metrics.contains(QStringLiteral("loss"))) {
        m_latestTrain = metrics;
        const qint64 step = metrics.value(QStringLiteral("step")).toLongLong();
        if (m_firstStep < 0) {
            m_firstStep = step;
            m_firstStepSeconds = double(m_rateClock.elapsed()) / 1000.0;
        }
    }
}

void TrainRunControl::updateProgress()
{
    const bool running = isTraining();
    QStringList parts;
    const qint64 step = m_latestTrain.value(QStringLiteral("step")).toLongLong();
    const qint64 total = m_latestTrain.value(QStringLiteral("total_steps")).toLongLong();
    if (total > 0) {
        m_progress->setFormat(tr("%v / %m steps"));
        m_progress->setRange(0, int(std::min<qint64>(total, INT_MAX)));
        m_progress->setValue(int(std::min<qint64>(step, INT_MAX)));
        parts << tr("step %1 / %2").arg(step).arg(total);
    } else if (running) {
        parts << tr("loading the model and data…");
    }
    if (m_elapsed.isValid())
        parts << tr("elapsed %1").arg(formatSeconds(double(m_elapsed.elapsed()) / 1000.0));
    if (running && m_firstStep >= 0 && step > m_firstStep && total > 0) {
        const double secs = double(m_rateClock.elapsed()) / 1000.0 - m_firstStepSeconds;
        const double perStep = secs / double(step - m_firstStep);
        parts << tr("ETA %1").arg(formatSeconds(perStep * double(total - step)));
    }
    if (m_latestTrain.contains(QStringLiteral("tokens_per_second")))
        parts << tr("%1 tok/s").arg(QLocale().toString(m_latestTrain.value(QStringLiteral("tokens_per_second")).toDouble(), 'f', 0));
    if (m_latest.contains(QStringLiteral("_gpu_used_bytes")))
        parts << tr("GPU memory %1 / %2")
                     .arg(formatBytes(m_latest.value(QStringLiteral("_gpu_used_bytes")).toLongLong()),
                          formatBytes(m_latest.value(QStringLiteral("_gpu_total_bytes")).toLongLong()));
    if (m_latest.contains(QStringLiteral("_rss_bytes")))
        parts << tr("RSS %1").arg(formatBytes(m_latest.value(QStringLiteral("_rss_bytes")).toLongLong()));
    else if (running)
        parts << tr("RSS %1").arg(formatBytes(processRssBytes()));
    if (m_runner->stopRequested() && running)
        parts << tr("stopping…");
    m_progressLabel->setText(parts.isEmpty() ? tr("Idle.") : parts.join(QStringLiteral(" · ")));
    if (!m_latestTrain.isEmpty())
        m_lastMetricsLabel->setText(
            tr("loss %1 · accuracy %2 · margin %3")
                .arg(m_latestTrain.value(QStringLiteral("loss")).toDouble(), 0, 'f', 4)
                .arg(m_latestTrain.value(QStringLiteral("rewards/accuracies")).toDouble(), 0, 'f', 2)
                .arg(m_latestTrain.value(QStringLiteral("rewards/margins")).toDouble(), 0, 'f', 3));
}

QString TrainRunControl::progressText() const
{
    return m_progressLabel->text();
}

void TrainRunControl::appendLog(const QString &line)
{
    m_log->appendPlainText(QTime::currentTime().toString(QStringLiteral("HH:mm:ss  ")) + line);
}

QString TrainRunControl::logText() const
{
    return m_log->toPlainText();
}

void TrainRunControl::onFinished(const QString &status, const QString &checkpoint, const QString &finalDir)
{
    m_uiTimer->stop();
    m_dashboard->redrawNow();
    updateProgress();
    m_lastStatus = status;
    m_lastCheckpoint = checkpoint;
    if (status == QLatin1String("completed")) {
        emit message(tr("Completed. Model saved to %1").arg(finalDir), false);
    } else {
        emit message(tr("Stopped; checkpoint %1. Resume continues from it.").arg(checkpoint), false);
    }
    appendLog(tr("%1 (checkpoint %2)").arg(status, checkpoint));
    emit buttonsStale();
    emit trainingFinished(status);
}

void TrainRunControl::onFailed(const QString &error)
{
    m_uiTimer->stop();
    m_dashboard->redrawNow();
    updateProgress();
    m_lastStatus = QStringLiteral("failed");
    m_lastCheckpoint = QString::fromStdString(dpo::latestCheckpoint(m_lastJob.config.outputDir));
    emit message(tr("Training failed: %1").arg(error), true);
    appendLog(tr("failed: %1").arg(error));
    emit buttonsStale();
    emit trainingFinished(QStringLiteral("failed"));
}

void TrainRunControl::updateButtons(bool selectionResumable)
{
    const bool running = isTraining();
    m_startButton->setEnabled(!running);
    m_stopButton->setEnabled(running && !m_runner->stopRequested());
    const bool canResume =
        !running && (selectionResumable ||
                     (m_haveLastJob && m_lastStatus != QLatin1String("completed") && !m_lastStatus.isEmpty()));
    m_resumeButton->setEnabled(canResume);
}
