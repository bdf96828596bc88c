// TrainRunsBrowser: the Train page's "Runs" tab: the project's runs (status, start/end, step, last metrics,
// output directory), newest first. A run left "running" by a crash shows as interrupted (its output
// directory holds no live lock). From here a run's charts are re-opened or overlaid from its metrics.jsonl
// (read off the GUI thread), two runs' configs compared, a run's options loaded into the form, or a
// stopped run resumed (the page does those two: loadConfigRequested, resumeRequested).
// Not here: the runs' records themselves (core/project, written by TrainingWorker).
#pragma once

#include "ui/shell/projectsession.h"

#include <QJsonObject>
#include <QStringList>
#include <QVector>
#include <QWidget>

class MetricsDashboard;
class QLabel;
class QTableWidget;
class TrainRunControl;

class TrainRunsBrowser : public QWidget {
    Q_OBJECT
public:
    // run: asked whether a run is in progress (which one is live, whether charts overlay it).
    TrainRunsBrowser(MetricsDashboard *dashboard, const TrainRunControl *run, QWidget *parent = nullptr);

    void setProject(ProjectSession *session);
    void refreshRuns(); // runsRefreshed() when done
    const QVector<dpo::Run> &runs() const { return m_runs; }
    QVector<dpo::Run> selectedRuns() const;
    // Stopped, failed or interrupted, with a checkpoint, and nothing training now.
    bool isResumable(const dpo::Run &run) const;
    bool selectionResumable() const;

    // Opens a run's metrics.jsonl off-thread into the charts (overlay: drawn over the current run).
    void showRunCharts(const dpo::Run &run, bool overlay);
    // Keys whose values differ: key -> (a, b) as JSON text.
    static QVector<QStringList> configDiff(const QJsonObject &a, const QJsonObject &b);
    void showConfigDiff(const dpo::Run &a, const dpo::Run &b);

signals:
    void runsRefreshed();
    void selectionChanged();
    void chartsLoaded();
    void resumeRequested();
    void loadConfigRequested(const dpo::Run &run);
    void message(const QString &text, bool error);

private:
    void fillRunsTable();

    MetricsDashboard *m_dashboard;
    const TrainRunControl *m_run;
    ProjectSession *m_session = nullptr;
    QTableWidget *m_runsTable;
    QLabel *m_runsNote;
    QVector<dpo::Run> m_runs;
};
