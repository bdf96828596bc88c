#include "engine/training/run_folder.h"

#include "ui/train/trainrunsbrowser.h"

#include "ui/train/metricschart.h"
#include "ui/train/trainformhelpers.h"
#include "ui/train/trainingworker.h"
#include "ui/train/trainruncontrol.h"

#include <QDialog>
#include <QDialogButtonBox>
#include <QDir>
#include <QFileInfo>
#include <QFutureWatcher>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QJsonArray>
#include <QJsonDocument>
#include <QLabel>
#include <QLocale>
#include <QPushButton>
#include <QSet>
#include <QTableWidget>
#include <QVBoxLayout>
#include <QtConcurrent>

#include <algorithm>

using trainform::formatDouble;

TrainRunsBrowser::TrainRunsBrowser(MetricsDashboard *dashboard, const TrainRunControl *run, QWidget *parent)
    : QWidget(parent)
    , m_dashboard(dashboard)
    , m_run(run)
{
    auto *v = new QVBoxLayout(this);
    m_runsNote = new QLabel;
    m_runsNote->setWordWrap(true);
    v->addWidget(m_runsNote);
    m_runsTable = new QTableWidget(0, 10);
    m_runsTable->setObjectName(QStringLiteral("runsTable"));
    m_runsTable->setHorizontalHeaderLabels({tr("Run"), tr("Status"), tr("Method"), tr("Started"), tr("Ended"), tr("Step"),
                                            tr("Loss"), tr("Accuracy"), tr("Margin"), tr("Output directory")});
    m_runsTable->setSelectionBehavior(QAbstractItemView::SelectRows);
    m_runsTable->setSelectionMode(QAbstractItemView::ExtendedSelection);
    m_runsTable->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_runsTable->verticalHeader()->setVisible(false);
    m_runsTable->horizontalHeader()->setStretchLastSection(true);
    m_runsTable->setAlternatingRowColors(true);
    v->addWidget(m_runsTable, 1);
    auto *buttons = new QHBoxLayout;
    auto *show = new QPushButton(tr("Show charts"));
    show->setToolTip(tr("Re-open the selected run's charts from its metrics.jsonl."));
    auto *overlay = new QPushButton(tr("Overlay"));
    overlay->setToolTip(tr("Draw the selected runs over the charts shown (each in its own colour)."));
    auto *diff = new QPushButton(tr("Compare configs"));
    diff->setToolTip(tr("The options that differ between two selected runs."));
    auto *load = new QPushButton(tr("Load config"));
    load->setToolTip(tr("Copy the selected run's options into the form (for a new run)."));
    auto *resumeSel = new QPushButton(tr("Resume"));
    resumeSel->setToolTip(tr("Continue the selected stopped, failed or interrupted run from its newest checkpoint."));
    auto *refresh = new QPushButton(tr("Refresh"));
    for (QPushButton *b : {show, overlay, diff, load, resumeSel, refresh})
        buttons->addWidget(b);
    buttons->addStretch(1);
    v->addLayout(buttons);
    connect(show, &QPushButton::clicked, this, [this]() {
        const auto sel = selectedRuns();
        if (!sel.isEmpty())
            showRunCharts(sel.first(), m_run->isTraining());
    });
    connect(overlay, &QPushButton::clicked, this, [this]() {
        for (const dpo::Run &r : selectedRuns())
            showRunCharts(r, true);
    });
    connect(diff, &QPushButton::clicked, this, [this]() {
        const auto sel = selectedRuns();
        if (sel.size() == 2)
            showConfigDiff(sel[0], sel[1]);
        else
            emit message(tr("Select two runs to compare their configs."), true);
    });
    connect(load, &QPushButton::clicked, this, [this]() {
        const auto sel = selectedRuns();
        if (!sel.isEmpty())
            emit loadConfigRequested(sel.first());
    });
    connect(resumeSel, &QPushButton::clicked, this, &TrainRunsBrowser::resumeRequested);
    connect(refresh, &QPushButton::clicked, this, &TrainRunsBrowser::refreshRuns);
    connect(m_runsTable, &QTableWidget::itemSelectionChanged, this, &TrainRunsBrowser::selectionChanged);
    connect(m_runsTable, &QTableWidget::cellDoubleClicked, this, [this](int r, int) {
        if (r >= 0 && r < m_runs.size())
            showRunCharts(m_runs[r], m_run->isTraining());
    });
}

bool TrainRunsBrowser::isResumable(const dpo::Run &run) const
{
    if (m_run->isTraining())
        return false;
    if (run.status != QLatin1String("stopped") && run.status != QLatin1String("interrupted") &&
        run.status != QLatin1String("failed"))
        return false;
    return !dpo::latestCheckpoint(run.outputDir.toStdString()).empty();
}

bool TrainRunsBrowser::selectionResumable() const
{
    for (const dpo::Run &r : selectedRuns())
        if (isResumable(r))
            return true;
    return false;
}

void TrainRunsBrowser::setProject(ProjectSession *session)
{
    m_session = session;
    refreshRuns();
}

void TrainRunsBrowser::refreshRuns()
{
    if (!m_session) {
        m_runs.clear();
        fillRunsTable();
        m_runsNote->setText(tr("Open a project to keep a history of runs. Runs still work without one."));
        emit runsRefreshed();
        return;
    }
    m_runsNote->setText(tr("Runs of this project. A run left \"running\" by a crash shows as interrupted and can "
                           "be resumed from its newest checkpoint."));
    const qint64 live = m_run->isTraining() ? m_run->currentRunId() : 0;
    m_session->worker().run<QVector<dpo::Run>>(
        this,
        [live](dpo::ProjectStore &store) {
            QVector<dpo::Run> runs = store.runs();
            // Filesystem checks here too: they are off the GUI thread.
            for (dpo::Run &r : runs)
                if (r.status == QLatin1String("running") && r.id != live && QFileInfo(r.outputDir).isDir() &&
                    !TrainingRunner::isRunLocked(r.outputDir))
                    r.status = QStringLiteral("interrupted");
            std::reverse(runs.begin(), runs.end()); // newest first
            return runs;
        },
        [this](QVector<dpo::Run> runs) {
            m_runs = std::move(runs);
            fillRunsTable();
            emit runsRefreshed();
        },
        [this](const QString &error) { m_runsNote->setText(tr("The runs could not be read: %1").arg(error)); });
}

void TrainRunsBrowser::fillRunsTable()
{
    const QSet<int> selected = [this]() {
        QSet<int> s;
        for (const auto *item : m_runsTable->selectedItems())
            s.insert(item->data(Qt::UserRole).toInt());
        return s;
    }();
    m_runsTable->setRowCount(int(m_runs.size()));
    const QLocale loc;
    for (int i = 0; i < m_runs.size(); ++i) {
        const dpo::Run &r = m_runs[i];
        const QJsonObject last = QJsonDocument::fromJson(r.lastMetricsJson.toUtf8()).object();
        auto num = [&](const char *key, int prec) {
            return last.contains(QLatin1String(key)) ? QString::number(last.value(QLatin1String(key)).toDouble(), 'f', prec)
                                                     : QString();
        };
        const QString step = last.contains(QStringLiteral("step"))
                                 ? QStringLiteral("%1 / %2")
                                       .arg(last.value(QStringLiteral("step")).toInteger())
                                       .arg(last.value(QStringLiteral("total_steps")).toInteger())
                                 : QString();
        // Full fine-tuning, or LoRA with its rank (the run's saved options).
        const QJsonObject config = QJsonDocument::fromJson(r.configJson.toUtf8()).object();
        const QString method = config.value(QStringLiteral("method")).toString() == QLatin1String("lora")
            ? tr("LoRA r%1").arg(config.value(QStringLiteral("lora_r")).toInteger())
            : tr("full");
        const QStringList cells{r.name,
                                r.status,
                                method,
                                r.startedAt.isValid() ? loc.toString(r.startedAt.toLocalTime(), QLocale::ShortFormat) : QString(),
                                r.endedAt.isValid() ? loc.toString(r.endedAt.toLocalTime(), QLocale::ShortFormat) : QString(),
                                step,
                                num("loss", 4),
                                num("rewards/accuracies", 2),
                                num("rewards/margins", 3),
                                r.outputDir};
        for (int c = 0; c < cells.size(); ++c) {
            auto *item = new QTableWidgetItem(cells[c]);
            item->setData(Qt::UserRole, int(r.id));
            if (c == 0)
                item->setToolTip(QString::fromUtf8(QJsonDocument::fromJson(r.configJson.toUtf8()).toJson()));
            if (c == 1 && (r.status == QLatin1String("interrupted") || r.status == QLatin1String("failed")))
                item->setForeground(QColor(176, 0, 32));
            m_runsTable->setItem(i, c, item);
        }
        if (selected.contains(int(r.id)))
            m_runsTable->selectRow(i);
    }
    m_runsTable->resizeColumnsToContents();
}

QVector<dpo::Run> TrainRunsBrowser::selectedRuns() const
{
    QVector<dpo::Run> out;
    QSet<int> rows;
    for (const auto &idx : m_runsTable->selectionModel()->selectedRows())
        rows.insert(idx.row());
    QList<int> sorted(rows.begin(), rows.end());
    std::sort(sorted.begin(), sorted.end());
    for (int r : sorted)
        if (r >= 0 && r < m_runs.size())
            out.append(m_runs[r]);
    return out;
}

void TrainRunsBrowser::showRunCharts(const dpo::Run &run, bool overlay)
{
    const QString path = QDir(run.outputDir).filePath(QStringLiteral("metrics.jsonl"));
    const QString name = run.name;
    auto *watcher = new QFutureWatcher<std::shared_ptr<MetricsRun>>(this);
    connect(watcher, &QFutureWatcher<std::shared_ptr<MetricsRun>>::finished, this, [this, watcher, overlay, path]() {
        auto loaded = watcher->result();
        watcher->deleteLater();
        if (!loaded) {
            emit message(tr("%1: no metrics to show").arg(path), true);
            return;
        }
        if (overlay || m_run->isTraining())
            m_dashboard->addOverlay(loaded);
        else
            m_dashboard->setPrimaryRun(loaded);
        emit chartsLoaded();
    });
    watcher->setFuture(QtConcurrent::run([path, name]() {
        QString error;
        return MetricsRun::loadMetricsJsonl(path, name, &error);
    }));
}

QVector<QStringList> TrainRunsBrowser::configDiff(const QJsonObject &a, const QJsonObject &b)
{
    QStringList keys = a.keys();
    for (const QString &k : b.keys())
        if (!keys.contains(k))
            keys.append(k);
    std::sort(keys.begin(), keys.end());
    auto text = [](const QJsonValue &v) -> QString {
        if (v.isUndefined())
            return QStringLiteral("—");
        if (v.isString())
            return v.toString();
        if (v.isDouble())
            return formatDouble(v.toDouble());
        if (v.isBool())
            return v.toBool() ? QStringLiteral("true") : QStringLiteral("false");
        return QString::fromUtf8(QJsonDocument(QJsonArray{v}).toJson(QJsonDocument::Compact)).mid(1).chopped(1);
    };
    QVector<QStringList> out;
    for (const QString &k : std::as_const(keys))
        if (a.value(k) != b.value(k))
            out.append({k, text(a.value(k)), text(b.value(k))});
    return out;
}

void TrainRunsBrowser::showConfigDiff(const dpo::Run &a, const dpo::Run &b)
{
    const auto diff = configDiff(QJsonDocument::fromJson(a.configJson.toUtf8()).object(),
                                 QJsonDocument::fromJson(b.configJson.toUtf8()).object());
    auto *dlg = new QDialog(this);
    dlg->setObjectName(QStringLiteral("configDiffDialog"));
    dlg->setAttribute(Qt::WA_DeleteOnClose);
    dlg->setWindowTitle(tr("Config diff: %1 vs %2").arg(a.name, b.name));
    auto *v = new QVBoxLayout(dlg);
    auto *table = new QTableWidget(int(diff.size()), 3);
    table->setHorizontalHeaderLabels({tr("Option"), a.name, b.name});
    table->verticalHeader()->setVisible(false);
    table->setEditTriggers(QAbstractItemView::NoEditTriggers);
    for (int i = 0; i < diff.size(); ++i)
        for (int c = 0; c < 3; ++c)
            table->setItem(i, c, new QTableWidgetItem(diff[i][c]));
    table->resizeColumnsToContents();
    table->horizontalHeader()->setStretchLastSection(true);
    v->addWidget(new QLabel(diff.isEmpty() ? tr("The two configs are identical.")
                                           : tr("%n option(s) differ.", nullptr, int(diff.size()))));
    v->addWidget(table);
    auto *box = new QDialogButtonBox(QDialogButtonBox::Close);
    connect(box, &QDialogButtonBox::rejected, dlg, &QDialog::close);
    v->addWidget(box);
    dlg->resize(640, 360);
    dlg->show();
}
