#include "ui/evaluate/evaluationreport.h"

#include <QBuffer>
#include <QFile>
#include <QPixmap>
#include <QSaveFile>
#include <QTextStream>

#include <qcustomplot.h>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace {

const QColor kBlue(0x1f, 0x77, 0xb4);
const QColor kOrange(0xff, 0x7f, 0x0e);
const QColor kGreen(0x2c, 0xa0, 0x2c);
const QColor kRed(0xd6, 0x27, 0x28);

QString reportNum(double v, int decimals)
{
    return std::isfinite(v) ? QString::number(v, 'f', decimals) : QString();
}

QString reportPct(double v)
{
    return std::isfinite(v) ? QString::number(100.0 * v, 'f', 1) + QLatin1Char('%') : QStringLiteral("–");
}

void resetPlot(QCustomPlot *plot)
{
    plot->clearPlottables();
    plot->clearItems();
    plot->legend->setVisible(false);
    plot->xAxis->setTicker(QSharedPointer<QCPAxisTicker>(new QCPAxisTicker));
    plot->xAxis->setTickLabelRotation(0);
    plot->xAxis->setLabel(QString());
    plot->yAxis->setLabel(QString());
    if (plot->plotLayout()->rowCount() > 1 && plot->plotLayout()->hasElement(0, 0)
        && qobject_cast<QCPTextElement *>(plot->plotLayout()->element(0, 0)))
        plot->plotLayout()->remove(plot->plotLayout()->element(0, 0));
    plot->plotLayout()->simplify();
}

void setTitle(QCustomPlot *plot, const QString &title)
{
    plot->plotLayout()->insertRow(0);
    auto *t = new QCPTextElement(plot, title, QFont(plot->font().family(), 10, QFont::Bold));
    plot->plotLayout()->addElement(0, 0, t);
}

void horizontalLine(QCustomPlot *plot, double y)
{
    auto *line = new QCPItemStraightLine(plot);
    line->point1->setCoords(0, y);
    line->point2->setCoords(1, y);
    line->setPen(QPen(Qt::gray, 1, Qt::DashLine));
}

// Models sorted by rating, best first (ties by name): the order of the rating chart and tables.
QVector<int> byRating(const EvaluationResults &r)
{
    QVector<int> order(r.models.size());
    std::iota(order.begin(), order.end(), 0);
    if (r.hasRatings)
        std::stable_sort(order.begin(), order.end(),
            [&](int a, int b) { return r.ratings.models[size_t(a)].rating > r.ratings.models[size_t(b)].rating; });
    return order;
}

QString winnerText(const EvaluationResults &r, const EvalBattleRow &row)
{
    switch (row.winner) {
    case dpo::Winner::A:
        return r.models.value(row.modelA);
    case dpo::Winner::B:
        return r.models.value(row.modelB);
    case dpo::Winner::BothBad:
        return QStringLiteral("both bad");
    default:
        return QStringLiteral("tie");
    }
}

QString winnerCode(dpo::Winner w)
{
    switch (w) {
    case dpo::Winner::A:
        return QStringLiteral("model_a");
    case dpo::Winner::B:
        return QStringLiteral("model_b");
    case dpo::Winner::BothBad:
        return QStringLiteral("both_bad");
    default:
        return QStringLiteral("tie");
    }
}

bool writeText(const QString &path, const QString &text, QString *error)
{
    QSaveFile f(path);
    if (!f.open(QIODevice::WriteOnly)) {
        if (error)
            *error = QObject::tr("Cannot write %1: %2").arg(path, f.errorString());
        return false;
    }
    f.write(text.toUtf8());
    if (!f.commit()) {
        if (error)
            *error = QObject::tr("Cannot write %1: %2").arg(path, f.errorString());
        return false;
    }
    return true;
}

} // namespace

QString csvField(const QString &s)
{
    if (!s.contains(QLatin1Char(',')) && !s.contains(QLatin1Char('"')) && !s.contains(QLatin1Char('\n'))
        && !s.contains(QLatin1Char('\r')))
        return s;
    QString q = s;
    q.replace(QLatin1String("\""), QLatin1String("\"\""));
    return QLatin1Char('"') + q + QLatin1Char('"');
}

void plotRatings(QCustomPlot *plot, const EvaluationResults &r)
{
    resetPlot(plot);
    setTitle(plot, QObject::tr("Bradley–Terry rating, 95% bootstrap interval"));
    if (!r.hasRatings) {
        plot->replot();
        return;
    }
    const QVector<int> order = byRating(r);
    QVector<double> x, y, minus, plus;
    QSharedPointer<QCPAxisTickerText> ticker(new QCPAxisTickerText);
    double lo = 1000, hi = 1000;
    for (int k = 0; k < order.size(); ++k) {
        const int i = order[k];
        const double rating = r.ratings.models[size_t(i)].rating;
        const double l = r.ratingLow(i), h = r.ratingHigh(i);
        x << k + 1;
        y << rating;
        minus << (std::isfinite(l) ? rating - l : 0);
        plus << (std::isfinite(h) ? h - rating : 0);
        lo = std::min(lo, std::isfinite(l) ? l : rating);
        hi = std::max(hi, std::isfinite(h) ? h : rating);
        ticker->addTick(k + 1, r.models[i]);
    }
    QCPGraph *g = plot->addGraph();
    g->setLineStyle(QCPGraph::lsNone);
    g->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssDisc, kBlue, kBlue, 9));
    g->setData(x, y);
    auto *bars = new QCPErrorBars(plot->xAxis, plot->yAxis);
    bars->setDataPlottable(g);
    bars->setData(minus, plus);
    bars->setPen(QPen(kBlue, 1.5));
    bars->setWhiskerWidth(10);
    horizontalLine(plot, 1000);
    plot->xAxis->setTicker(ticker);
    plot->xAxis->setTickLabelRotation(order.size() > 4 ? 20 : 0);
    plot->xAxis->setRange(0.4, order.size() + 0.6);
    const double pad = std::max(20.0, 0.1 * (hi - lo));
    plot->yAxis->setRange(lo - pad, hi + pad);
    plot->yAxis->setLabel(QObject::tr("Elo (%1 = 1000)").arg(r.models.value(r.baseline)));
    plot->replot();
}

void plotWinRates(QCustomPlot *plot, const EvaluationResults &r)
{
    resetPlot(plot);
    setTitle(plot, QObject::tr("Win rate vs %1 (ties ½), Wilson 95% interval").arg(r.models.value(r.baseline)));
    QSharedPointer<QCPAxisTickerText> ticker(new QCPAxisTickerText);
    QVector<double> x, y, minus, plus;
    if (r.hasRatings) {
        int k = 0;
        for (int i : byRating(r)) {
            const dpo::ModelRating &m = r.ratings.models[size_t(i)];
            if (i == r.baseline || m.n == 0)
                continue;
            ++k;
            x << k;
            y << m.winRate;
            minus << m.winRate - m.wilson.low;
            plus << m.wilson.high - m.winRate;
            ticker->addTick(k, QStringLiteral("%1\n(n=%2)").arg(r.models[i]).arg(m.n));
        }
    }
    auto *bars = new QCPBars(plot->xAxis, plot->yAxis);
    bars->setWidth(0.6);
    bars->setPen(QPen(kBlue.darker(120)));
    bars->setBrush(QColor(kBlue.red(), kBlue.green(), kBlue.blue(), 150));
    bars->setData(x, y);
    auto *err = new QCPErrorBars(plot->xAxis, plot->yAxis);
    err->setDataPlottable(bars);
    err->setData(minus, plus);
    err->setPen(QPen(Qt::black, 1.2));
    err->setWhiskerWidth(10);
    horizontalLine(plot, 0.5);
    plot->xAxis->setTicker(ticker);
    plot->xAxis->setRange(0.4, std::max<qsizetype>(1, x.size()) + 0.6);
    plot->yAxis->setRange(0, 1);
    plot->yAxis->setLabel(QObject::tr("win rate"));
    plot->replot();
}

void plotCheckpointScores(QCustomPlot *accuracyPlot, QCustomPlot *shiftPlot, const QVector<CheckpointScore> &scores)
{
    QVector<CheckpointScore> sorted = scores;
    std::stable_sort(sorted.begin(), sorted.end(),
        [](const CheckpointScore &a, const CheckpointScore &b) { return a.step < b.step; });
    QVector<double> steps, acc, sc, sr;
    for (const CheckpointScore &s : sorted) {
        steps << double(s.step);
        acc << s.accuracy;
        sc << s.shiftChosen;
        sr << s.shiftRejected;
    }
    double xlo = steps.isEmpty() ? 0 : steps.first(), xhi = steps.isEmpty() ? 1 : steps.last();
    if (xhi <= xlo)
        xhi = xlo + 1;
    const double xpad = 0.05 * (xhi - xlo);
    if (accuracyPlot) {
        resetPlot(accuracyPlot);
        setTitle(accuracyPlot, QObject::tr("Implicit-reward accuracy on held-out pairs"));
        QCPGraph *g = accuracyPlot->addGraph();
        g->setPen(QPen(kGreen, 2));
        g->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssDisc, kGreen, kGreen, 7));
        g->setData(steps, acc, true);
        horizontalLine(accuracyPlot, 0.5);
        accuracyPlot->xAxis->setRange(xlo - xpad, xhi + xpad);
        accuracyPlot->yAxis->setRange(0, 1.05);
        accuracyPlot->xAxis->setLabel(QObject::tr("step"));
        accuracyPlot->yAxis->setLabel(QObject::tr("accuracy"));
        accuracyPlot->replot();
    }
    if (shiftPlot) {
        resetPlot(shiftPlot);
        setTitle(shiftPlot, QObject::tr("Mean log-prob shift from the reference (held-out completions)"));
        QCPGraph *c = shiftPlot->addGraph();
        c->setName(QObject::tr("chosen"));
        c->setPen(QPen(kBlue, 2));
        c->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssDisc, kBlue, kBlue, 7));
        c->setData(steps, sc, true);
        QCPGraph *rj = shiftPlot->addGraph();
        rj->setName(QObject::tr("rejected"));
        rj->setPen(QPen(kRed, 2));
        rj->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssSquare, kRed, kRed, 7));
        rj->setData(steps, sr, true);
        horizontalLine(shiftPlot, 0);
        double lo = 0, hi = 0;
        for (double v : sc + sr) {
            lo = std::min(lo, v);
            hi = std::max(hi, v);
        }
        const double pad = std::max(0.1, 0.1 * (hi - lo));
        shiftPlot->xAxis->setRange(xlo - xpad, xhi + xpad);
        shiftPlot->yAxis->setRange(lo - pad, hi + pad);
        shiftPlot->xAxis->setLabel(QObject::tr("step"));
        shiftPlot->yAxis->setLabel(QObject::tr("Δ log p (nats, summed)"));
        shiftPlot->legend->setVisible(true);
        shiftPlot->axisRect()->insetLayout()->setInsetAlignment(0, Qt::AlignLeft | Qt::AlignBottom);
        shiftPlot->replot();
    }
}

QByteArray plotPng(QCustomPlot *plot, int width, int height)
{
    const QPixmap pm = plot->toPixmap(width, height, 1.0);
    QByteArray bytes;
    QBuffer buf(&bytes);
    buf.open(QIODevice::WriteOnly);
    pm.save(&buf, "PNG");
    return bytes;
}

bool writeHtmlReport(const QString &path, const EvaluationResults &r, const QVector<CheckpointScore> &scores,
    const ReportMeta &meta, QString *error)
{
    auto esc = [](const QString &s) { return s.toHtmlEscaped(); };
    auto img = [](QCustomPlot *plot, const QString &alt) {
        return QStringLiteral("<img alt=\"%1\" src=\"data:image/png;base64,%2\">\n")
            .arg(alt.toHtmlEscaped(), QString::fromLatin1(plotPng(plot, 760, 340).toBase64()));
    };
    QString h;
    QTextStream out(&h);
    out << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>" << esc(meta.title)
        << "</title>\n<style>\n"
           "body{font-family:sans-serif;margin:2em;max-width:1200px;color:#222}\n"
           "table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;"
           "vertical-align:top}th{background:#f0f0f0}td.n{text-align:right;font-variant-numeric:tabular-nums}\n"
           "pre{white-space:pre-wrap;margin:0;font-size:90%;max-width:420px}img{max-width:100%;display:block;"
           "margin:1em 0}.note{color:#666;font-size:90%}\n</style></head><body>\n";
    out << "<h1>" << esc(meta.title) << "</h1>\n<p class=\"note\">";
    if (!meta.project.isEmpty())
        out << "Project: " << esc(meta.project) << "<br>";
    if (!meta.generatedAt.isEmpty())
        out << "Written: " << esc(meta.generatedAt) << "<br>";
    out << "Prompts: " << meta.prompts << " · blind judgments: " << int(r.battles.size()) << " (both bad: " << r.bothBad
        << ") · bootstrap: " << r.bootstrap << " resamples, seed " << r.seed;
    if (!meta.sampling.isEmpty())
        out << "<br>Sampling: <code>" << esc(meta.sampling) << "</code>";
    out << "</p>\n";

    // Charts: rendered off screen by the same code as the page.
    QCustomPlot plot;
    plot.resize(760, 340);
    out << "<h2>Ratings and win rates</h2>\n";
    if (r.hasRatings) {
        plotRatings(&plot, r);
        out << img(&plot, QStringLiteral("Bradley–Terry ratings"));
        plotWinRates(&plot, r);
        out << img(&plot, QStringLiteral("Win rates against the baseline"));
    } else {
        out << "<p>" << esc(r.ratingsError) << "</p>\n";
    }

    out << "<table id=\"models\"><tr><th>Model</th><th>Elo</th><th>95% interval</th><th>Win rate vs "
        << esc(r.models.value(r.baseline))
        << "</th><th>Wilson 95%</th><th>Bootstrap 95%</th><th>W / L / T / both bad</th><th>n</th>"
           "<th>More judgments to separate</th><th>Outputs</th><th>Mean chars</th><th>Median chars</th>"
           "<th>Mean words</th></tr>\n";
    for (int i : byRating(r)) {
        out << "<tr><td>" << esc(r.models[i]) << (i == r.baseline ? " (baseline)" : "") << "</td>";
        if (r.hasRatings) {
            const dpo::ModelRating &m = r.ratings.models[size_t(i)];
            out << "<td class=\"n\">" << reportNum(m.rating, 0) << "</td><td class=\"n\">" << reportNum(r.ratingLow(i), 0) << " – "
                << reportNum(r.ratingHigh(i), 0) << "</td>";
            if (i != r.baseline && m.n > 0)
                out << "<td class=\"n\">" << reportPct(m.winRate) << "</td><td class=\"n\">" << reportPct(m.wilson.low) << " – "
                    << reportPct(m.wilson.high) << "</td><td class=\"n\">" << reportPct(m.winBootstrap.low) << " – "
                    << reportPct(m.winBootstrap.high) << "</td><td class=\"n\">" << m.wins << " / " << m.losses << " / "
                    << m.ties << " / " << m.bothBad << "</td><td class=\"n\">" << m.n << "</td><td class=\"n\">"
                    << (m.judgmentsToSeparate < 0 ? QStringLiteral("never at this rate")
                                                  : QString::number(m.judgmentsToSeparate))
                    << "</td>";
            else
                out << "<td>–</td><td>–</td><td>–</td><td>–</td><td class=\"n\">" << m.n << "</td><td>–</td>";
        } else {
            out << "<td>–</td><td>–</td><td>–</td><td>–</td><td>–</td><td>–</td><td>–</td><td>–</td>";
        }
        const ModelLengthStats &l = r.lengths.value(i);
        out << "<td class=\"n\">" << l.outputs << "</td><td class=\"n\">" << reportNum(l.meanChars, 1)
            << "</td><td class=\"n\">" << reportNum(l.medianChars, 1) << "</td><td class=\"n\">" << reportNum(l.meanWords, 1)
            << "</td></tr>\n";
    }
    out << "</table>\n";

    if (!r.separation.isEmpty()) {
        out << "<h2>Models whose intervals overlap</h2>\n<table id=\"separation\"><tr><th>Model</th><th>vs</th>"
               "<th>Head-to-head games</th><th>Score</th><th>Wilson 95%</th><th>More judgments to separate</th></tr>\n";
        for (const SeparationRow &s : r.separation)
            out << "<tr><td>" << esc(r.models[s.a]) << "</td><td>" << esc(r.models[s.b]) << "</td><td class=\"n\">"
                << s.games << "</td><td class=\"n\">" << reportNum(s.score, 1) << "</td><td class=\"n\">" << reportPct(s.wilson.low)
                << " – " << reportPct(s.wilson.high) << "</td><td class=\"n\">"
                << (s.moreJudgments < 0 ? QStringLiteral("never at this rate") : QString::number(s.moreJudgments))
                << "</td></tr>\n";
        out << "</table>\n";
    }

    if (!scores.isEmpty()) {
        out << "<h2>Without a person: checkpoints on held-out pairs</h2>\n";
        QCustomPlot acc, shift;
        acc.resize(760, 300);
        shift.resize(760, 300);
        plotCheckpointScores(&acc, &shift, scores);
        out << img(&acc, QStringLiteral("Implicit-reward accuracy")) << img(&shift, QStringLiteral("Log-prob shift"));
        out << "<table id=\"checkpoints\"><tr><th>Checkpoint</th><th>Step</th><th>Pairs</th><th>Accuracy</th>"
               "<th>Mean margin</th><th>Δ log p chosen</th><th>Δ log p rejected</th></tr>\n";
        for (const CheckpointScore &s : scores)
            out << "<tr><td>" << esc(s.name) << "</td><td class=\"n\">" << s.step << "</td><td class=\"n\">" << s.pairs
                << "</td><td class=\"n\">" << reportPct(s.accuracy) << "</td><td class=\"n\">" << reportNum(s.meanMargin, 4)
                << "</td><td class=\"n\">" << reportNum(s.shiftChosen, 3) << "</td><td class=\"n\">"
                << reportNum(s.shiftRejected, 3) << "</td></tr>\n";
        out << "</table>\n";
    }

    out << "<h2>Per prompt</h2>\n<table id=\"prompts\"><tr><th>#</th><th>Prompt</th><th>Model A</th><th>Output A</th>"
           "<th>Model B</th><th>Output B</th><th>Verdict</th><th>Shown left</th></tr>\n";
    for (const EvalBattleRow &row : r.rows)
        out << "<tr><td class=\"n\">" << row.promptId << "</td><td><pre>" << esc(row.prompt) << "</pre></td><td>"
            << esc(r.models.value(row.modelA)) << "</td><td><pre>" << esc(row.textA) << "</pre></td><td>"
            << esc(r.models.value(row.modelB)) << "</td><td><pre>" << esc(row.textB) << "</pre></td><td>"
            << esc(winnerText(r, row)) << "</td><td>" << (row.leftIsA ? "A" : "B") << "</td></tr>\n";
    out << "</table>\n</body></html>\n";
    out.flush();
    return writeText(path, h, error);
}

bool writeCsvReport(const QString &path, const EvaluationResults &r, QString *error)
{
    QString s = QStringLiteral(
        "model,baseline,rating,ci_low,ci_high,rating_se,win_rate_vs_baseline,win_ci_low,win_ci_high,win_boot_low,"
        "win_boot_high,n,wins,losses,ties,both_bad,judgments_to_separate,battles,outputs,mean_chars,median_chars,"
        "mean_words,median_words\r\n");
    for (int i : byRating(r)) {
        QStringList f { csvField(r.models[i]), i == r.baseline ? QStringLiteral("1") : QStringLiteral("0") };
        if (r.hasRatings) {
            const dpo::ModelRating &m = r.ratings.models[size_t(i)];
            const bool vs = i != r.baseline && m.n > 0;
            f << reportNum(m.rating, 3) << reportNum(r.ratingLow(i), 3) << reportNum(r.ratingHigh(i), 3) << reportNum(m.standardError, 3)
              << (vs ? reportNum(m.winRate, 6) : QString()) << (vs ? reportNum(m.wilson.low, 6) : QString())
              << (vs ? reportNum(m.wilson.high, 6) : QString()) << (vs ? reportNum(m.winBootstrap.low, 6) : QString())
              << (vs ? reportNum(m.winBootstrap.high, 6) : QString()) << QString::number(m.n) << QString::number(m.wins)
              << QString::number(m.losses) << QString::number(m.ties) << QString::number(m.bothBad)
              << (vs && m.judgmentsToSeparate >= 0 ? QString::number(m.judgmentsToSeparate) : QString())
              << QString::number(m.battles);
        } else {
            for (int k = 0; k < 16; ++k)
                f << QString();
        }
        const ModelLengthStats &l = r.lengths.value(i);
        f << QString::number(l.outputs) << reportNum(l.meanChars, 3) << reportNum(l.medianChars, 3) << reportNum(l.meanWords, 3)
          << reportNum(l.medianWords, 3);
        s += f.join(QLatin1Char(',')) + QStringLiteral("\r\n");
    }
    return writeText(path, s, error);
}

bool writeBattlesCsv(const QString &path, const EvaluationResults &r, QString *error)
{
    QString s = QStringLiteral(
        "judgment_id,pair_id,prompt_id,prompt,model_a,model_b,winner,shown_left,output_a,output_b\r\n");
    for (const EvalBattleRow &row : r.rows)
        s += QStringList { QString::number(row.judgmentId), QString::number(row.pairId), QString::number(row.promptId),
            csvField(row.prompt), csvField(r.models.value(row.modelA)), csvField(r.models.value(row.modelB)),
            winnerCode(row.winner), row.leftIsA ? QStringLiteral("a") : QStringLiteral("b"), csvField(row.textA),
            csvField(row.textB) }
                 .join(QLatin1Char(','))
            + QStringLiteral("\r\n");
    return writeText(path, s, error);
}

bool writeCheckpointsCsv(const QString &path, const QVector<CheckpointScore> &scores, QString *error)
{
    QString s = QStringLiteral("checkpoint,step,pairs,accuracy,mean_margin,logp_shift_chosen,logp_shift_rejected\r\n");
    for (const CheckpointScore &c : scores)
        s += QStringList { csvField(c.name), QString::number(c.step), QString::number(c.pairs), reportNum(c.accuracy, 6),
            reportNum(c.meanMargin, 6), reportNum(c.shiftChosen, 6), reportNum(c.shiftRejected, 6) }
                 .join(QLatin1Char(','))
            + QStringLiteral("\r\n");
    return writeText(path, s, error);
}
