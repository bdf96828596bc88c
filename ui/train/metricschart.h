// Live training charts (QCustomPlot): the metric store of a run, one chart, and the dashboard of
// charts the Train page shows.
//
//   BoundedSeries    (step, value) points under a fixed budget: when the budget is reached, the older
//                    half is folded into min/max buckets (4 points -> 2), so a 100,000-step run keeps
//                    its whole range at a few thousand points per series, recent steps at full
//                    resolution, spikes never averaged away.
//   MetricsRun       one run's series, keyed by TRL metric name ("loss", "rewards/accuracies", ...),
//                    fed live (addMetrics) or read from the run's metrics.jsonl (loadMetricsJsonl).
//   MetricsChart     a QCustomPlot showing some keys of one or several runs (overlay): EMA smoothing
//                    (TensorBoard's debiased form, raw points kept faint), log scale where the values
//                    are positive, hover read-out, wheel zoom / drag pan (double-click: follow again),
//                    PNG/PDF export.
//   MetricsDashboard the grid of charts + smoothing / log-scale / CSV controls. Appending data only marks
//                    the charts dirty; a QTimer coalesces redraws to at most 10 per second, a pass replots
//                    one chart per event-loop turn (no 10+ ms block of the GUI thread), and hidden charts
//                    are redrawn when they are shown.
//
// Not here: reading metrics from a trainer (TrainingWorker does that) or any engine type.
#pragma once

#include <QHash>
#include <QJsonObject>
#include <QPointer>
#include <QString>
#include <QStringList>
#include <QTimer>
#include <QVariantMap>
#include <QVector>
#include <QWidget>

#include <memory>

#include <qcustomplot.h>

class QCheckBox;
class QLabel;
class QSlider;

class BoundedSeries {
public:
    explicit BoundedSeries(int budget = 8192);

    // x must not decrease (steps); a point at the same x as the last replaces it (a resumed run
    // rewriting a step).
    void append(double x, double y);
    void clear();

    int size() const { return int(m_x.size()); }
    bool isEmpty() const { return m_x.isEmpty(); }
    const QVector<double> &xs() const { return m_x; }
    const QVector<double> &ys() const { return m_y; }
    int budget() const { return m_budget; }
    // Points ever appended (not only those kept).
    qint64 appended() const { return m_appended; }
    // Bumped whenever kept points were rewritten (compaction, replacement): views rebuild then,
    // otherwise they only add the tail.
    quint64 generation() const { return m_generation; }

private:
    void compact();

    QVector<double> m_x, m_y;
    int m_budget;
    qint64 m_appended = 0;
    quint64 m_generation = 0;
};

class MetricsRun {
public:
    explicit MetricsRun(const QString &name = {}, int budgetPerSeries = 8192);

    QString name() const { return m_name; }
    void setName(const QString &name) { m_name = name; }
    QString outputDir() const { return m_outputDir; }
    void setOutputDir(const QString &dir) { m_outputDir = dir; }

    // One metrics line: "step" is the x; every other numeric value becomes a point of its key.
    // Keys starting with '_' (the worker's memory read-outs) are ignored.
    void addMetrics(const QVariantMap &metrics);
    void addMetrics(const QJsonObject &metrics);

    const BoundedSeries *series(const QString &key) const;
    QStringList keys() const { return m_order; }
    double lastStep() const { return m_lastStep; }
    QJsonObject lastTrainMetrics() const { return m_lastTrain; }
    void clear();

    // Reads a metrics.jsonl (blank or cut lines are skipped, as the trainer does on resume).
    static std::shared_ptr<MetricsRun> loadMetricsJsonl(const QString &path, const QString &name, QString *error);
    // metrics.jsonl -> CSV (one row per line: step first, then every key met, in first-seen order).
    static bool jsonlToCsv(const QString &jsonlPath, const QString &csvPath, QString *error);
    // The kept points as CSV (used when there is no metrics.jsonl, e.g. a run not yet on disk).
    bool writeCsv(const QString &csvPath, QString *error) const;

private:
    BoundedSeries &seriesFor(const QString &key);

    QString m_name;
    QString m_outputDir;
    int m_budget;
    QHash<QString, std::shared_ptr<BoundedSeries>> m_series;
    QStringList m_order;
    double m_lastStep = 0;
    QJsonObject m_lastTrain;
};

struct ChartSpec {
    QString title;
    QStringList keys;   // e.g. {"loss", "eval_loss"}
    QStringList labels; // legend names, one per key
    bool logAllowed = false; // values are positive (loss, lr, grad norm): log scale makes sense
    bool smoothable = true;  // false for schedules (learning rate): smoothing them would only mislead
    Qt::Alignment legendAlignment = Qt::AlignTop | Qt::AlignRight; // where the curves usually are not
};

class MetricsChart : public QCustomPlot {
    Q_OBJECT
public:
    explicit MetricsChart(const ChartSpec &spec, QWidget *parent = nullptr);

    const ChartSpec &spec() const { return m_spec; }
    // Runs shown, the first being the live/primary one. Pointers stay owned by the dashboard.
    void setRuns(const QVector<MetricsRun *> &runs);
    void setSmoothing(double weight); // 0 = off, up to 0.999
    void setLogScale(bool on);        // ignored where !spec.logAllowed
    // Syncs the graphs with the runs' series (incrementally where possible) and replots.
    void refresh();
    // Back to following the data (after a zoom or pan).
    void resetView();
    // Points in the graphs of the first run (raw graphs), summed over keys: what tests check.
    int pointCount() const;
    // PNG or PDF by suffix. Returns false (and *error) when it cannot write.
    bool exportImage(const QString &path, QString *error = nullptr);
    // Milliseconds of the last replot.
    double lastReplotMs() const { return m_lastReplotMs; }

protected:
    void mouseMoveEvent(QMouseEvent *event) override;
    void leaveEvent(QEvent *event) override;
    void mouseDoubleClickEvent(QMouseEvent *event) override;
    void contextMenuEvent(QContextMenuEvent *event) override;

private:
    struct Binding {
        MetricsRun *run = nullptr;
        QString key;
        QCPGraph *raw = nullptr;
        QCPGraph *smooth = nullptr;
        bool sparse = false; // eval series: dots, no smoothing
        qint64 syncedAppended = -1;
        quint64 syncedGeneration = 0;
        double syncedSmoothing = -1;
        double emaLast = 0;
        qint64 emaCount = 0;
    };
    void rebuildGraphs();
    void syncBinding(Binding &b);
    void applyStyles();

    ChartSpec m_spec;
    QVector<MetricsRun *> m_runs;
    QVector<Binding> m_bindings;
    QCPTextElement *m_title = nullptr;
    QCPItemStraightLine *m_cursor = nullptr;
    double m_smoothing = 0;
    bool m_log = false;
    bool m_follow = true;
    double m_lastReplotMs = 0;
};

class MetricsDashboard : public QWidget {
    Q_OBJECT
public:
    explicit MetricsDashboard(QWidget *parent = nullptr);
    ~MetricsDashboard() override;

    // The live (or re-opened) run: replaces what is shown; overlays stay.
    MetricsRun *setPrimaryRun(std::shared_ptr<MetricsRun> run);
    MetricsRun *primaryRun() const { return m_primary.get(); }
    // Another run drawn over the primary one (its own colour). Replaces an overlay with the same name.
    void addOverlay(std::shared_ptr<MetricsRun> run);
    void clearOverlays();
    int overlayCount() const { return int(m_overlays.size()); }

    // Live metrics of the primary run: stored now, drawn at the next coalesced redraw.
    void addMetrics(const QVariantMap &metrics);

    void setSmoothing(double weight);
    double smoothing() const { return m_smoothingValue; }
    void setLogScale(bool on);
    QVector<MetricsChart *> charts() const { return m_charts; }
    MetricsChart *chart(const QString &firstKey) const;
    // Redraws done so far (coalesced); tests check the rate.
    int redrawCount() const { return m_redraws; }
    // Redraws now (tests, benchmarks).
    void redrawNow();
    // Exports the primary run's metrics as CSV (from its metrics.jsonl when it has one).
    bool exportCsv(const QString &path, QString *error = nullptr);

    // The standard DPO chart set: loss, reward accuracy, margin, rewards, log-probs, learning rate, grad
    // norm, throughput.
    static QVector<ChartSpec> dpoChartSpecs();

protected:
    void showEvent(QShowEvent *event) override;

private:
    void scheduleRedraw();
    void redrawStep();
    void updateRuns();
    void exportCsvDialog();

    QVector<MetricsChart *> m_charts;
    std::shared_ptr<MetricsRun> m_primary;
    QVector<std::shared_ptr<MetricsRun>> m_overlays;
    QTimer m_redrawTimer;
    bool m_dirty = false;
    int m_stage = -1; // next chart of a timed redraw pass, -1 between passes
    int m_redraws = 0;
    double m_smoothingValue = 0.6;
    QSlider *m_smoothingSlider;
    QLabel *m_smoothingLabel;
    QCheckBox *m_logBox;
    QLabel *m_overlayLabel;
};
