#include "ui/train/metricschart.h"

#include <QCheckBox>
#include <QContextMenuEvent>
#include <QElapsedTimer>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QFutureWatcher>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QJsonDocument>
#include <QLabel>
#include <QMenu>
#include <QMessageBox>
#include <QPushButton>
#include <QSaveFile>
#include <QSlider>
#include <QTextStream>
#include <QToolButton>
#include <QToolTip>
#include <QVBoxLayout>
#include <QtConcurrent>

#include <algorithm>
#include <cmath>

// ---------------------------------------------------------------- BoundedSeries

BoundedSeries::BoundedSeries(int budget)
    : m_budget(std::max(16, budget))
{
    m_x.reserve(m_budget);
    m_y.reserve(m_budget);
}

void BoundedSeries::append(double x, double y)
{
    ++m_appended;
    if (!m_x.isEmpty() && x <= m_x.last()) {
        if (x == m_x.last()) {
            m_y.last() = y;
            ++m_generation;
            return;
        }
        // The x went back: a resumed run rewrites the steps after its checkpoint. Drop them.
        while (!m_x.isEmpty() && m_x.last() >= x) {
            m_x.removeLast();
            m_y.removeLast();
        }
        ++m_generation;
    }
    m_x.append(x);
    m_y.append(y);
    if (m_x.size() >= m_budget)
        compact();
}

void BoundedSeries::clear()
{
    m_x.clear();
    m_y.clear();
    m_appended = 0;
    ++m_generation;
}

// Folds the older half into min/max buckets of 4 points: memory stays O(budget) however long the run,
// old data keeps its envelope (a loss spike at step 300 is still drawn at step 100,000), and the
// recent half stays exact. Repeated folds make resolution decay geometrically with age.
void BoundedSeries::compact()
{
    // The first point stays as it is, so the chart always starts where the run started.
    const int half = 1 + (int(m_x.size()) / 2) / 4 * 4;
    QVector<double> nx, ny;
    nx.reserve(m_budget);
    ny.reserve(m_budget);
    nx.append(m_x[0]);
    ny.append(m_y[0]);
    for (int i = 1; i < half; i += 4) {
        int lo = i, hi = i;
        for (int j = i + 1; j < i + 4; ++j) {
            if (m_y[j] < m_y[lo] || std::isnan(m_y[lo]))
                lo = j;
            if (m_y[j] > m_y[hi] || std::isnan(m_y[hi]))
                hi = j;
        }
        const int first = std::min(lo, hi), second = std::max(lo, hi);
        nx.append(m_x[first]);
        ny.append(m_y[first]);
        nx.append(m_x[second == first ? i + 3 : second]);
        ny.append(m_y[second == first ? i + 3 : second]);
    }
    for (int i = half; i < m_x.size(); ++i) {
        nx.append(m_x[i]);
        ny.append(m_y[i]);
    }
    m_x = std::move(nx);
    m_y = std::move(ny);
    ++m_generation;
}

// ---------------------------------------------------------------- MetricsRun

MetricsRun::MetricsRun(const QString &name, int budgetPerSeries)
    : m_name(name)
    , m_budget(budgetPerSeries)
{
}

BoundedSeries &MetricsRun::seriesFor(const QString &key)
{
    auto it = m_series.find(key);
    if (it == m_series.end()) {
        it = m_series.insert(key, std::make_shared<BoundedSeries>(m_budget));
        m_order.append(key);
    }
    return *it.value();
}

static bool isNumber(const QVariant &v)
{
    switch (v.typeId()) {
    case QMetaType::Double:
    case QMetaType::Float:
    case QMetaType::Int:
    case QMetaType::UInt:
    case QMetaType::LongLong:
    case QMetaType::ULongLong:
        return true;
    default:
        return false;
    }
}

void MetricsRun::addMetrics(const QVariantMap &metrics)
{
    const double step = metrics.value(QStringLiteral("step")).toDouble();
    for (auto it = metrics.constBegin(); it != metrics.constEnd(); ++it) {
        if (it.key() == QLatin1String("step") || it.key().startsWith(QLatin1Char('_')) || !isNumber(it.value()))
            continue;
        seriesFor(it.key()).append(step, it.value().toDouble());
    }
    m_lastStep = std::max(m_lastStep, step);
    if (metrics.contains(QStringLiteral("loss"))) {
        QVariantMap kept;
        for (auto it = metrics.constBegin(); it != metrics.constEnd(); ++it)
            if (!it.key().startsWith(QLatin1Char('_')))
                kept.insert(it.key(), it.value());
        m_lastTrain = QJsonObject::fromVariantMap(kept);
    }
}

void MetricsRun::addMetrics(const QJsonObject &metrics)
{
    const double step = metrics.value(QStringLiteral("step")).toDouble();
    for (auto it = metrics.constBegin(); it != metrics.constEnd(); ++it) {
        if (it.key() == QLatin1String("step") || it.key().startsWith(QLatin1Char('_')) || !it.value().isDouble())
            continue;
        seriesFor(it.key()).append(step, it.value().toDouble());
    }
    m_lastStep = std::max(m_lastStep, step);
    if (metrics.contains(QStringLiteral("loss")))
        m_lastTrain = metrics;
}

const BoundedSeries *MetricsRun::series(const QString &key) const
{
    auto it = m_series.constFind(key);
    return it == m_series.constEnd() ? nullptr : it.value().get();
}

void MetricsRun::clear()
{
    m_series.clear();
    m_order.clear();
    m_lastStep = 0;
    m_lastTrain = {};
}

std::shared_ptr<MetricsRun> MetricsRun::loadMetricsJsonl(const QString &path, const QString &name, QString *error)
{
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly)) {
        if (error)
            *error = QObject::tr("%1: cannot open (%2)").arg(path, f.errorString());
        return nullptr;
    }
    auto run = std::make_shared<MetricsRun>(name);
    run->setOutputDir(QFileInfo(path).absolutePath());
    while (!f.atEnd()) {
        const QByteArray line = f.readLine().trimmed();
        if (line.isEmpty())
            continue;
        const QJsonDocument doc = QJsonDocument::fromJson(line);
        if (doc.isObject()) // a line cut by a kill mid-write is skipped, as the trainer does
            run->addMetrics(doc.object());
    }
    return run;
}

static QString csvValue(const QJsonValue &v)
{
    if (v.isDouble())
        return QString::number(v.toDouble(), 'g', QLocale::FloatingPointShortest);
    if (v.isBool())
        return v.toBool() ? QStringLiteral("true") : QStringLiteral("false");
    if (v.isString()) {
        QString s = v.toString();
        if (s.contains(QLatin1Char(',')) || s.contains(QLatin1Char('"')) || s.contains(QLatin1Char('\n')))
            s = QLatin1Char('"') + s.replace(QLatin1Char('"'), QStringLiteral("\"\"")) + QLatin1Char('"');
        return s;
    }
    return {};
}

bool MetricsRun::jsonlToCsv(const QString &jsonlPath, const QString &csvPath, QString *error)
{
    QFile in(jsonlPath);
    if (!in.open(QIODevice::ReadOnly)) {
        if (error)
            *error = QObject::tr("%1: cannot open (%2)").arg(jsonlPath, in.errorString());
        return false;
    }
    // Two passes keep memory flat for 100,000-line files: the columns first, then the rows.
    QStringList columns{QStringLiteral("step")};
    while (!in.atEnd()) {
        const QJsonDocument doc = QJsonDocument::fromJson(in.readLine().trimmed());
        if (!doc.isObject())
            continue;
        const QJsonObject o = doc.object();
        for (auto it = o.constBegin(); it != o.constEnd(); ++it)
            if (!columns.contains(it.key()))
                columns.append(it.key());
    }
    in.seek(0);
    QSaveFile out(csvPath);
    if (!out.open(QIODevice::WriteOnly | QIODevice::Text)) {
        if (error)
            *error = QObject::tr("%1: cannot write (%2)").arg(csvPath, out.errorString());
        return false;
    }
    QTextStream ts(&out);
    ts << columns.join(QLatin1Char(',')) << '\n';
    while (!in.atEnd()) {
        const QJsonDocument doc = QJsonDocument::fromJson(in.readLine().trimmed());
        if (!doc.isObject())
            continue;
        const QJsonObject o = doc.object();
        QStringList row;
        row.reserve(columns.size());
        for (const QString &c : std::as_const(columns))
            row.append(csvValue(o.value(c)));
        ts << row.join(QLatin1Char(',')) << '\n';
    }
    ts.flush();
    if (!out.commit()) {
        if (error)
            *error = QObject::tr("%1: write failed (%2)").arg(csvPath, out.errorString());
        return false;
    }
    return true;
}

bool MetricsRun::writeCsv(const QString &csvPath, QString *error) const
{
    // Rows keyed by step over every kept series (kept points only: long runs are decimated).
    QMap<double, QHash<QString, double>> rows;
    for (const QString &key : m_order) {
        const BoundedSeries &s = *m_series.value(key);
        for (int i = 0; i < s.size(); ++i)
            rows[s.xs()[i]].insert(key, s.ys()[i]);
    }
    QSaveFile out(csvPath);
    if (!out.open(QIODevice::WriteOnly | QIODevice::Text)) {
        if (error)
            *error = QObject::tr("%1: cannot write (%2)").arg(csvPath, out.errorString());
        return false;
    }
    QTextStream ts(&out);
    ts << QStringLiteral("step");
    for (const QString &key : m_order)
        ts << ',' << key;
    ts << '\n';
    for (auto it = rows.constBegin(); it != rows.constEnd(); ++it) {
        ts << QString::number(it.key(), 'g', QLocale::FloatingPointShortest);
        for (const QString &key : m_order) {
            ts << ',';
            auto v = it.value().constFind(key);
            if (v != it.value().constEnd())
                ts << QString::number(v.value(), 'g', QLocale::FloatingPointShortest);
        }
        ts << '\n';
    }
    ts.flush();
    if (!out.commit()) {
        if (error)
            *error = QObject::tr("%1: write failed (%2)").arg(csvPath, out.errorString());
        return false;
    }
    return true;
}

// ---------------------------------------------------------------- MetricsChart

namespace {

// Colour-blind-safe-ish palette (Tableau 10).
QColor paletteColor(int i)
{
    static const QColor colors[] = {QColor(31, 119, 180), QColor(255, 127, 14), QColor(44, 160, 44),
                                    QColor(214, 39, 40),  QColor(148, 103, 189), QColor(140, 86, 75),
                                    QColor(227, 119, 194), QColor(127, 127, 127), QColor(188, 189, 34),
                                    QColor(23, 190, 207)};
    return colors[i % 10];
}

// TensorBoard's smoothing: EMA debiased for the first points, so the curve starts at the data.
struct Ema {
    double weight;
    double last = 0;
    qint64 count = 0;
    double next(double y)
    {
        if (!std::isfinite(y))
            return y;
        last = last * weight + (1 - weight) * y;
        ++count;
        const double debias = weight > 0 ? 1 - std::pow(weight, double(count)) : 1.0;
        return debias > 0 ? last / debias : y;
    }
};

} // namespace

MetricsChart::MetricsChart(const ChartSpec &spec, QWidget *parent)
    : QCustomPlot(parent)
    , m_spec(spec)
{
    setObjectName(QStringLiteral("chart_") + spec.keys.value(0));
    setMinimumSize(220, 160);
    setMouseTracking(true); // hover read-out without a button pressed
    setPlottingHint(QCP::phFastPolylines, true);
    setInteractions(QCP::iRangeDrag | QCP::iRangeZoom);
    setNoAntialiasingOnDrag(true);

    QFont small = font();
    small.setPointSizeF(std::max(7.0, small.pointSizeF() - 1.5));
    QFont titleFont = font();
    titleFont.setBold(true);
    plotLayout()->insertRow(0);
    m_title = new QCPTextElement(this, spec.title, titleFont);
    plotLayout()->addElement(0, 0, m_title);
    plotLayout()->setRowSpacing(0);
    xAxis->setTickLabelFont(small);
    yAxis->setTickLabelFont(small);
    xAxis->setLabelFont(small);
    xAxis->setLabel(tr("step"));
    xAxis->setRange(0, 1);
    yAxis->setRange(0, 1);
    axisRect()->setAutoMargins(QCP::msLeft | QCP::msBottom | QCP::msRight);
    axisRect()->setMargins(QMargins(0, 2, 0, 0));
    axisRect()->setMinimumMargins(QMargins(8, 4, 10, 4));
    legend->setFont(small);
    legend->setBrush(QColor(255, 255, 255, 210));
    legend->setBorderPen(QPen(QColor(200, 200, 200)));
    legend->setRowSpacing(-3);
    legend->setIconSize(14, 8);
    axisRect()->insetLayout()->setInsetAlignment(0, spec.legendAlignment);

    m_cursor = new QCPItemStraightLine(this);
    m_cursor->setLayer(QStringLiteral("overlay"));
    m_cursor->setPen(QPen(QColor(90, 90, 90, 160), 1, Qt::DashLine));
    m_cursor->setVisible(false);

    // Any zoom or drag by the user stops following the data until a double-click.
    connect(this, &QCustomPlot::mouseWheel, this, [this]() { m_follow = false; });
    connect(this, &QCustomPlot::mousePress, this, [this]() { m_follow = false; });
}

void MetricsChart::setRuns(const QVector<MetricsRun *> &runs)
{
    m_runs = runs;
    rebuildGraphs();
}

void MetricsChart::rebuildGraphs()
{
    clearGraphs();
    m_bindings.clear();
    for (MetricsRun *run : std::as_const(m_runs)) {
        for (int k = 0; k < m_spec.keys.size(); ++k) {
            Binding b;
            b.run = run;
            b.key = m_spec.keys[k];
            b.sparse = b.key.startsWith(QLatin1String("eval_"));
            b.raw = addGraph();
            b.smooth = b.sparse || !m_spec.smoothable ? nullptr : addGraph();
            const QString label = m_spec.labels.value(k, b.key);
            const QString name = m_runs.size() > 1 ? run->name() + QStringLiteral(" · ") + label : label;
            b.raw->setName(name);
            if (b.smooth)
                b.smooth->setName(name);
            m_bindings.append(b);
        }
    }
    applyStyles();
}

void MetricsChart::applyStyles()
{
    const bool multi = m_runs.size() > 1;
    const bool smoothing = m_smoothing > 0;
    for (int i = 0; i < m_bindings.size(); ++i) {
        Binding &b = m_bindings[i];
        const int runIndex = int(m_runs.indexOf(b.run));
        const int keyIndex = int(m_spec.keys.indexOf(b.key));
        QColor c = multi ? paletteColor(runIndex) : paletteColor(keyIndex);
        const Qt::PenStyle style = !multi ? Qt::SolidLine : keyIndex == 0 ? Qt::SolidLine
                                                           : keyIndex == 1 ? Qt::DashLine
                                                                           : Qt::DotLine;
        if (b.sparse) {
            b.raw->setPen(QPen(c, 1.2, style));
            b.raw->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssDisc, c, c, 5));
            b.raw->addToLegend();
            continue;
        }
        if (!b.smooth) {
            b.raw->setPen(QPen(c, 1.4, style));
            b.raw->addToLegend();
            continue;
        }
        QColor faint = c;
        faint.setAlpha(55);
        b.raw->setPen(QPen(smoothing ? faint : c, smoothing ? 1.0 : 1.4, style));
        b.smooth->setPen(QPen(c, 1.6, style));
        b.smooth->setVisible(smoothing);
        if (smoothing) {
            b.raw->removeFromLegend();
            b.smooth->addToLegend();
        } else {
            b.smooth->removeFromLegend();
            b.raw->addToLegend();
        }
    }
    legend->setVisible(legend->itemCount() > 1);
}

void MetricsChart::setSmoothing(double weight)
{
    weight = std::clamp(weight, 0.0, 0.999);
    if (weight == m_smoothing)
        return;
    m_smoothing = weight;
    applyStyles();
}

void MetricsChart::setLogScale(bool on)
{
    on = on && m_spec.logAllowed;
    if (on == m_log)
        return;
    m_log = on;
    if (on) {
        yAxis->setScaleType(QCPAxis::stLogarithmic);
        yAxis->setTicker(QSharedPointer<QCPAxisTickerLog>(new QCPAxisTickerLog));
    } else {
        yAxis->setScaleType(QCPAxis::stLinear);
        yAxis->setTicker(QSharedPointer<QCPAxisTicker>(new QCPAxisTicker));
    }
    m_follow = true;
}

void MetricsChart::syncBinding(Binding &b)
{
    const BoundedSeries *s = b.run->series(b.key);
    if (!s) {
        if (b.raw->dataCount() > 0) {
            b.raw->data()->clear();
            if (b.smooth)
                b.smooth->data()->clear();
        }
        b.syncedAppended = -1;
        return;
    }
    const double smoothing = b.smooth ? m_smoothing : 0;
    const bool rebuild = b.syncedAppended < 0 || s->generation() != b.syncedGeneration ||
                         smoothing != b.syncedSmoothing || s->appended() < b.syncedAppended;
    if (!rebuild && s->appended() == b.syncedAppended)
        return;
    Ema ema{smoothing};
    int from = 0;
    if (rebuild) {
        b.raw->setData(s->xs(), s->ys(), true);
        if (b.smooth)
            b.smooth->data()->clear();
    } else {
        from = std::max(0, s->size() - int(s->appended() - b.syncedAppended));
        ema.last = b.emaLast;
        ema.count = b.emaCount;
        QVector<double> x(s->xs().mid(from)), y(s->ys().mid(from));
        b.raw->addData(x, y, true);
    }
    if (b.smooth && smoothing > 0) {
        QVector<double> x, y;
        x.reserve(s->size() - from);
        y.reserve(s->size() - from);
        for (int i = from; i < s->size(); ++i) {
            x.append(s->xs()[i]);
            y.append(ema.next(s->ys()[i]));
        }
        b.smooth->addData(x, y, true);
    }
    b.emaLast = ema.last;
    b.emaCount = ema.count;
    b.syncedAppended = s->appended();
    b.syncedGeneration = s->generation();
    b.syncedSmoothing = smoothing;
}

void MetricsChart::refresh()
{
    for (Binding &b : m_bindings)
        syncBinding(b);
    if (m_follow) {
        bool any = false;
        for (const Binding &b : std::as_const(m_bindings))
            any = any || b.raw->dataCount() > 0;
        if (any) {
            rescaleAxes(true);
            const QCPRange r = yAxis->range();
            if (m_log)
                yAxis->setRange(r.lower / 1.15, r.upper * 1.15);
            else {
                const double pad = std::max(r.size() * 0.06, std::abs(r.center()) * 1e-3 + 1e-12);
                yAxis->setRange(r.lower - pad, r.upper + pad);
            }
            const QCPRange xr = xAxis->range();
            if (xr.size() <= 0)
                xAxis->setRange(xr.lower - 1, xr.upper + 1);
        }
    }
    if (!isVisible())
        return; // drawn when shown
    QElapsedTimer t;
    t.start();
    replot();
    m_lastReplotMs = double(t.nsecsElapsed()) / 1e6;
}

void MetricsChart::resetView()
{
    m_follow = true;
    refresh();
}

int MetricsChart::pointCount() const
{
    int n = 0;
    for (const Binding &b : m_bindings)
        if (!m_runs.isEmpty() && b.run == m_runs.first())
            n += b.raw->dataCount();
    return n;
}

bool MetricsChart::exportImage(const QString &path, QString *error)
{
    const int w = std::max(width(), 640), h = std::max(height(), 400);
    bool ok;
    if (path.endsWith(QLatin1String(".pdf"), Qt::CaseInsensitive))
        ok = savePdf(path, w, h);
    else
        ok = savePng(path, w, h, 2.0);
    if (!ok && error)
        *error = tr("%1: could not write the image").arg(path);
    return ok;
}

void MetricsChart::mouseMoveEvent(QMouseEvent *event)
{
    QCustomPlot::mouseMoveEvent(event);
    if (event->buttons() != Qt::NoButton || !axisRect()->rect().contains(event->pos())) {
        if (m_cursor->visible()) {
            m_cursor->setVisible(false);
            layer(QStringLiteral("overlay"))->replot();
        }
        return;
    }
    const double x = xAxis->pixelToCoord(event->pos().x());
    // Nearest logged step over the visible graphs, then every graph's value at (or next to) it.
    double best = std::nan("");
    auto nearestIn = [](const QCPGraph *g, double x) -> const QCPGraphData * {
        const auto &d = *g->data();
        if (d.isEmpty())
            return nullptr;
        auto it = std::lower_bound(d.constBegin(), d.constEnd(), x,
                                   [](const QCPGraphData &p, double k) { return p.key < k; });
        if (it == d.constEnd())
            return &*(it - 1);
        if (it != d.constBegin() && x - (it - 1)->key < it->key - x)
            return &*(it - 1);
        return &*it;
    };
    for (const Binding &b : std::as_const(m_bindings))
        if (const QCPGraphData *p = nearestIn(b.raw, x))
            if (std::isnan(best) || std::abs(p->key - x) < std::abs(best - x))
                best = p->key;
    if (std::isnan(best))
        return;
    QStringList lines{tr("step %1").arg(best, 0, 'f', 0)};
    for (const Binding &b : std::as_const(m_bindings)) {
        const QCPGraphData *p = nearestIn(b.raw, best);
        if (!p || std::abs(p->key - best) > std::max(1.0, std::abs(best) * 0.01))
            continue;
        QString text = QStringLiteral("%1: %2").arg(b.raw->name(), QString::number(p->value, 'g', 5));
        if (b.smooth && b.smooth->visible())
            if (const QCPGraphData *s = nearestIn(b.smooth, best))
                text += tr(" (smoothed %1)").arg(QString::number(s->value, 'g', 5));
        lines.append(text);
    }
    m_cursor->point1->setCoords(best, m_log ? 1 : 0);
    m_cursor->point2->setCoords(best, m_log ? 10 : 1);
    m_cursor->setVisible(true);
    layer(QStringLiteral("overlay"))->replot();
    QToolTip::showText(event->globalPosition().toPoint(), lines.join(QLatin1Char('\n')), this);
}

void MetricsChart::leaveEvent(QEvent *event)
{
    QCustomPlot::leaveEvent(event);
    if (m_cursor->visible()) {
        m_cursor->setVisible(false);
        layer(QStringLiteral("overlay"))->replot();
    }
}

void MetricsChart::mouseDoubleClickEvent(QMouseEvent *event)
{
    QCustomPlot::mouseDoubleClickEvent(event);
    resetView();
}

void MetricsChart::contextMenuEvent(QContextMenuEvent *event)
{
    QMenu menu(this);
    menu.addAction(tr("Follow the data (reset zoom)"), this, [this]() { resetView(); });
    menu.addAction(tr("Export chart as PNG or PDF…"), this, [this]() {
        const QString path = QFileDialog::getSaveFileName(
            this, tr("Export chart"), m_spec.title.toLower().replace(QLatin1Char(' '), QLatin1Char('-')) + ".png",
            tr("PNG image (*.png);;PDF document (*.pdf)"));
        QString error;
        if (!path.isEmpty() && !exportImage(path, &error))
            QMessageBox::warning(this, tr("Export chart"), error);
    });
    menu.exec(event->globalPos());
}

// ---------------------------------------------------------------- MetricsDashboard

QVector<ChartSpec> MetricsDashboard::dpoChartSpecs()
{
    return {
        {tr("Loss"), {"loss", "eval_loss"}, {tr("train"), tr("eval")}, true},
        {tr("Reward accuracy"), {"rewards/accuracies", "eval_rewards/accuracies"}, {tr("train"), tr("eval")}, false,
         true, Qt::AlignBottom | Qt::AlignRight},
        {tr("Reward margin"), {"rewards/margins", "eval_rewards/margins"}, {tr("train"), tr("eval")}, false, true,
         Qt::AlignTop | Qt::AlignLeft},
        {tr("Rewards"), {"rewards/chosen", "rewards/rejected"}, {tr("chosen"), tr("rejected")}, false, true,
         Qt::AlignTop | Qt::AlignLeft},
        {tr("Log-probs"), {"logps/chosen", "logps/rejected"}, {tr("chosen"), tr("rejected")}, false, true,
         Qt::AlignBottom | Qt::AlignRight},
        {tr("Learning rate"), {"learning_rate"}, {tr("lr")}, true, false},
        {tr("Grad norm"), {"grad_norm"}, {tr("grad norm")}, true},
        {tr("Throughput (tokens/s)"), {"tokens_per_second"}, {tr("tokens/s")}, true},
    };
}

MetricsDashboard::MetricsDashboard(QWidget *parent)
    : QWidget(parent)
{
    auto *layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    auto *bar = new QHBoxLayout;
    bar->addWidget(new QLabel(tr("Smoothing")));
    m_smoothingSlider = new QSlider(Qt::Horizontal);
    m_smoothingSlider->setObjectName(QStringLiteral("smoothingSlider"));
    m_smoothingSlider->setRange(0, 99);
    m_smoothingSlider->setMaximumWidth(160);
    m_smoothingSlider->setToolTip(tr("Exponential moving average weight (as in TensorBoard). The raw points "
                                     "stay drawn faintly behind the smoothed line."));
    bar->addWidget(m_smoothingSlider);
    m_smoothingLabel = new QLabel;
    m_smoothingLabel->setMinimumWidth(32);
    bar->addWidget(m_smoothingLabel);
    m_logBox = new QCheckBox(tr("Log scale"));
    m_logBox->setObjectName(QStringLiteral("logScale"));
    m_logBox->setToolTip(tr("Logarithmic y axis for the charts whose values are positive (loss, learning rate, "
                            "grad norm)."));
    bar->addWidget(m_logBox);
    bar->addSpacing(12);
    m_overlayLabel = new QLabel;
    m_overlayLabel->setTextFormat(Qt::PlainText);
    bar->addWidget(m_overlayLabel, 1);
    auto *clear = new QToolButton;
    clear->setText(tr("Clear overlays"));
    clear->setToolTip(tr("Remove the runs drawn over the current one (add them from the Runs tab)."));
    bar->addWidget(clear);
    auto *reset = new QToolButton;
    reset->setText(tr("Reset zoom"));
    reset->setToolTip(tr("Follow the data again (also: double-click a chart). Wheel zooms, drag pans."));
    bar->addWidget(reset);
    auto *csv = new QToolButton;
    csv->setText(tr("Export CSV…"));
    csv->setToolTip(tr("All metrics of the shown run as CSV (from its metrics.jsonl). Right-click a chart to "
                       "export it as PNG or PDF."));
    bar->addWidget(csv);
    layout->addLayout(bar);

    auto *grid = new QGridLayout;
    grid->setSpacing(2);
    const auto specs = dpoChartSpecs();
    for (int i = 0; i < specs.size(); ++i) {
        auto *chart = new MetricsChart(specs[i]);
        m_charts.append(chart);
    }
    // Loss gets two cells; the other seven fill a 3-column grid.
    grid->addWidget(m_charts[0], 0, 0, 1, 2);
    grid->addWidget(m_charts[1], 0, 2);
    for (int i = 2; i < m_charts.size(); ++i)
        grid->addWidget(m_charts[i], 1 + (i - 2) / 3, (i - 2) % 3);
    layout->addLayout(grid, 1);

    m_redrawTimer.setSingleShot(true);
    m_redrawTimer.setInterval(100); // at most 10 redraws per second, whatever the step rate
    connect(&m_redrawTimer, &QTimer::timeout, this, &MetricsDashboard::redrawStep);
    connect(m_smoothingSlider, &QSlider::valueChanged, this, [this](int v) { setSmoothing(v / 100.0); });
    connect(m_logBox, &QCheckBox::toggled, this, &MetricsDashboard::setLogScale);
    connect(clear, &QToolButton::clicked, this, &MetricsDashboard::clearOverlays);
    connect(reset, &QToolButton::clicked, this, [this]() {
        for (MetricsChart *c : std::as_const(m_charts))
            c->resetView();
    });
    connect(csv, &QToolButton::clicked, this, &MetricsDashboard::exportCsvDialog);

    m_primary = std::make_shared<MetricsRun>(tr("current"));
    m_smoothingSlider->setValue(int(std::lround(m_smoothingValue * 100)));
    setSmoothing(m_smoothingValue);
    updateRuns();
}

MetricsDashboard::~MetricsDashboard() = default;

MetricsRun *MetricsDashboard::setPrimaryRun(std::shared_ptr<MetricsRun> run)
{
    m_primary = run ? std::move(run) : std::make_shared<MetricsRun>(tr("current"));
    for (int i = int(m_overlays.size()) - 1; i >= 0; --i)
        if (m_overlays[i]->name() == m_primary->name())
            m_overlays.removeAt(i);
    updateRuns();
    return m_primary.get();
}

void MetricsDashboard::addOverlay(std::shared_ptr<MetricsRun> run)
{
    if (!run || run->name() == m_primary->name())
        return;
    for (int i = int(m_overlays.size()) - 1; i >= 0; --i)
        if (m_overlays[i]->name() == run->name())
            m_overlays.removeAt(i);
    m_overlays.append(std::move(run));
    updateRuns();
}

void MetricsDashboard::clearOverlays()
{
    m_overlays.clear();
    updateRuns();
}

void MetricsDashboard::updateRuns()
{
    QVector<MetricsRun *> runs{m_primary.get()};
    QStringList names;
    for (const auto &o : std::as_const(m_overlays)) {
        runs.append(o.get());
        names.append(o->name());
    }
    for (MetricsChart *c : std::as_const(m_charts))
        c->setRuns(runs);
    m_overlayLabel->setText(names.isEmpty() ? QString() : tr("Overlaid: %1").arg(names.join(QStringLiteral(", "))));
    scheduleRedraw();
}

void MetricsDashboard::addMetrics(const QVariantMap &metrics)
{
    m_primary->addMetrics(metrics);
    scheduleRedraw();
}

void MetricsDashboard::scheduleRedraw()
{
    m_dirty = true;
    if (!m_redrawTimer.isActive() && m_stage < 0)
        m_redrawTimer.start();
}

void MetricsDashboard::redrawNow()
{
    m_dirty = false;
    m_stage = -1;
    m_redrawTimer.stop();
    for (MetricsChart *c : std::as_const(m_charts))
        c->refresh();
    ++m_redraws;
}

// A timed redraw goes one chart per event-loop turn: a chart replots in 1-2 ms, all of them in ~10-15 ms,
// so input and paint events get in between instead of waiting for the whole pass.
void MetricsDashboard::redrawStep()
{
    if (m_stage < 0) {
        m_dirty = false;
        m_stage = 0;
    }
    if (m_stage < m_charts.size())
        m_charts[m_stage++]->refresh();
    if (m_stage < m_charts.size()) {
        QTimer::singleShot(0, this, &MetricsDashboard::redrawStep);
        return;
    }
    m_stage = -1;
    ++m_redraws;
    if (m_dirty) // data came in during the pass: next pass after the interval
        m_redrawTimer.start();
}

void MetricsDashboard::showEvent(QShowEvent *event)
{
    QWidget::showEvent(event);
    scheduleRedraw(); // charts skip replotting while hidden
}

void MetricsDashboard::setSmoothing(double weight)
{
    m_smoothingValue = std::clamp(weight, 0.0, 0.99);
    m_smoothingLabel->setText(QString::number(m_smoothingValue, 'f', 2));
    const int v = int(std::lround(m_smoothingValue * 100));
    if (m_smoothingSlider->value() != v) {
        QSignalBlocker block(m_smoothingSlider);
        m_smoothingSlider->setValue(v);
    }
    for (MetricsChart *c : std::as_const(m_charts))
        c->setSmoothing(m_smoothingValue);
    scheduleRedraw();
}

void MetricsDashboard::setLogScale(bool on)
{
    if (m_logBox->isChecked() != on) {
        QSignalBlocker block(m_logBox);
        m_logBox->setChecked(on);
    }
    for (MetricsChart *c : std::as_const(m_charts))
        c->setLogScale(on);
    scheduleRedraw();
}

MetricsChart *MetricsDashboard::chart(const QString &firstKey) const
{
    for (MetricsChart *c : m_charts)
        if (c->spec().keys.value(0) == firstKey)
            return c;
    return nullptr;
}

bool MetricsDashboard::exportCsv(const QString &path, QString *error)
{
    const QString jsonl = m_primary->outputDir().isEmpty()
                              ? QString()
                              : QDir(m_primary->outputDir()).filePath(QStringLiteral("metrics.jsonl"));
    if (!jsonl.isEmpty() && QFileInfo::exists(jsonl))
        return MetricsRun::jsonlToCsv(jsonl, path, error);
    return m_primary->writeCsv(path, error);
}

void MetricsDashboard::exportCsvDialog()
{
    const QString path = QFileDialog::getSaveFileName(this, tr("Export metrics"), QStringLiteral("metrics.csv"),
                                                      tr("CSV (*.csv)"));
    if (path.isEmpty())
        return;
    // A 100,000-line metrics.jsonl takes a moment: convert it off the GUI thread.
    auto *watcher = new QFutureWatcher<QString>(this);
    const QString jsonl = m_primary->outputDir().isEmpty()
                              ? QString()
                              : QDir(m_primary->outputDir()).filePath(QStringLiteral("metrics.jsonl"));
    if (jsonl.isEmpty() || !QFileInfo::exists(jsonl)) {
        QString error;
        if (!m_primary->writeCsv(path, &error))
            QMessageBox::warning(this, tr("Export metrics"), error);
        delete watcher;
        return;
    }
    connect(watcher, &QFutureWatcher<QString>::finished, this, [this, watcher]() {
        const QString error = watcher->result();
        watcher->deleteLater();
        if (!error.isEmpty())
            QMessageBox::warning(this, tr("Export metrics"), error);
    });
    watcher->setFuture(QtConcurrent::run([jsonl, path]() {
        QString error;
        MetricsRun::jsonlToCsv(jsonl, path, &error);
        return error;
    }));
}
