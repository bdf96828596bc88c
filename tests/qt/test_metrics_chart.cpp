// MetricsChart / MetricsDashboard / BoundedSeries (offscreen): memory stays bounded for 100,000-step
// runs while spikes survive decimation; rewritten steps replace old ones; EMA smoothing matches
// TensorBoard's debiased form; metrics.jsonl loads (cut lines skipped) and converts to CSV; live updates
// are redrawn at most 10 times per second; overlays, log scale, hover read-out and PNG/PDF export work.
#include "ui/train/metricschart.h"

#include <QFile>
#include <QJsonDocument>
#include <QTemporaryDir>
#include <QToolTip>
#include "qt_test_main.h"

#include <QtTest>

#include <cmath>

namespace test_metrics_chart { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

class TestMetricsChart : public QObject {
    Q_OBJECT
private slots:
    void boundedSeriesKeepsBudgetAndEnvelope();
    void rewrittenStepsReplaceOldOnes();
    void emaSmoothingMatchesTensorBoard();
    void loadsJsonlAndWritesCsv();
    void liveRedrawsAreCoalesced();
    void overlayLogScaleAndExport();
    void hoverShowsValues();
};

void TestMetricsChart::boundedSeriesKeepsBudgetAndEnvelope()
{
    BoundedSeries s(4096);
    for (int i = 1; i <= 100000; ++i) {
        double y = std::sin(i * 0.01);
        if (i == 500)
            y = 100.0; // a spike early in the run
        if (i == 777)
            y = -50.0;
        s.append(i, y);
    }
    QCOMPARE(s.appended(), qint64(100000));
    QVERIFY2(s.size() < 4096, qPrintable(QString::number(s.size())));
    QVERIFY(s.size() > 1000);
    QCOMPARE(s.xs().first(), 1.0);
    QCOMPARE(s.xs().last(), 100000.0);
    QCOMPARE(*std::max_element(s.ys().begin(), s.ys().end()), 100.0);
    QCOMPARE(*std::min_element(s.ys().begin(), s.ys().end()), -50.0);
    for (int i = 1; i < s.size(); ++i)
        QVERIFY(s.xs()[i] > s.xs()[i - 1]);
    // The recent part keeps full resolution.
    QCOMPARE(s.xs()[s.size() - 2], 99999.0);
}

void TestMetricsChart::rewrittenStepsReplaceOldOnes()
{
    BoundedSeries s(64);
    for (int i = 1; i <= 10; ++i)
        s.append(i, i);
    const quint64 g = s.generation();
    s.append(10, -1); // same step again: replaced
    QCOMPARE(s.size(), 10);
    QCOMPARE(s.ys().last(), -1.0);
    s.append(5, 42); // a resumed run rewrites from step 5
    QCOMPARE(s.size(), 5);
    QCOMPARE(s.xs().last(), 5.0);
    QCOMPARE(s.ys().last(), 42.0);
    QVERIFY(s.generation() > g);
}

void TestMetricsChart::emaSmoothingMatchesTensorBoard()
{
    MetricsRun run(QStringLiteral("r"));
    const QVector<double> values{1.0, 3.0, 2.0, 5.0, 4.0};
    for (int i = 0; i < values.size(); ++i)
        run.addMetrics(QVariantMap{{"step", i + 1}, {"loss", values[i]}});
    ChartSpec spec{QStringLiteral("Loss"), {QStringLiteral("loss")}, {QStringLiteral("train")}, true};
    MetricsChart chart(spec);
    chart.setRuns({&run});
    chart.setSmoothing(0.5);
    chart.refresh();
    QCOMPARE(chart.graphCount(), 2); // raw + smoothed
    QCPGraph *smooth = chart.graph(1);
    QCOMPARE(smooth->dataCount(), values.size());
    double last = 0;
    for (int i = 0; i < values.size(); ++i) {
        last = last * 0.5 + 0.5 * values[i];
        const double expected = last / (1 - std::pow(0.5, i + 1));
        QVERIFY2(std::abs(smooth->data()->at(i)->value - expected) < 1e-12, qPrintable(QString::number(i)));
    }
    // Incremental sync gives the same values as a rebuild.
    run.addMetrics(QVariantMap{{"step", 6}, {"loss", 10.0}});
    chart.refresh();
    last = last * 0.5 + 0.5 * 10.0;
    QVERIFY(std::abs(smooth->data()->at(5)->value - last / (1 - std::pow(0.5, 6))) < 1e-12);
    QCOMPARE(chart.pointCount(), 6);
}

void TestMetricsChart::loadsJsonlAndWritesCsv()
{
    QTemporaryDir dir;
    const QString path = dir.filePath(QStringLiteral("metrics.jsonl"));
    {
        QFile f(path);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write("{\"step\":1,\"epoch\":0.5,\"loss\":0.69,\"rewards/accuracies\":0.5,\"learning_rate\":1e-6}\n");
        f.write("{\"step\":2,\"epoch\":1.0,\"loss\":0.6,\"rewards/accuracies\":1.0,\"learning_rate\":5e-7}\n");
        f.write("\n");
        f.write("{\"step\":2,\"epoch\":1.0,\"eval_loss\":0.65}\n");
        f.write("{\"step\":3,\"loss\":0.5"); // cut by a kill mid-write
    }
    QString error;
    auto run = MetricsRun::loadMetricsJsonl(path, QStringLiteral("run-a"), &error);
    QVERIFY2(run, qPrintable(error));
    QCOMPARE(run->series(QStringLiteral("loss"))->size(), 2);
    QCOMPARE(run->series(QStringLiteral("eval_loss"))->size(), 1);
    QCOMPARE(run->lastStep(), 2.0);
    QCOMPARE(run->lastTrainMetrics().value(QStringLiteral("loss")).toDouble(), 0.6);
    QCOMPARE(run->outputDir(), dir.path());

    const QString csv = dir.filePath(QStringLiteral("m.csv"));
    QVERIFY2(MetricsRun::jsonlToCsv(path, csv, &error), qPrintable(error));
    QFile f(csv);
    QVERIFY(f.open(QIODevice::ReadOnly));
    const QStringList lines = QString::fromUtf8(f.readAll()).split(QLatin1Char('\n'), Qt::SkipEmptyParts);
    QCOMPARE(lines.size(), 4); // header + 3 complete lines
    QVERIFY(lines[0].startsWith(QStringLiteral("step,")));
    QVERIFY(lines[0].contains(QStringLiteral("eval_loss")));
    QVERIFY(lines[1].startsWith(QStringLiteral("1,")));
    QVERIFY(lines[1].contains(QStringLiteral("1e-06")));

    // The dashboard's CSV export goes through the run's metrics.jsonl.
    MetricsDashboard dash;
    dash.setPrimaryRun(run);
    const QString csv2 = dir.filePath(QStringLiteral("d.csv"));
    QVERIFY2(dash.exportCsv(csv2, &error), qPrintable(error));
    QVERIFY(QFileInfo(csv2).size() > 0);

    QVERIFY(!MetricsRun::loadMetricsJsonl(dir.filePath(QStringLiteral("missing.jsonl")), {}, &error));
    QVERIFY(error.contains(QStringLiteral("missing.jsonl")));
}

void TestMetricsChart::liveRedrawsAreCoalesced()
{
    MetricsDashboard dash;
    dash.resize(1000, 700);
    dash.show();
    QVERIFY(QTest::qWaitForWindowExposed(&dash));
    dash.redrawNow();
    const int before = dash.redrawCount();
    QElapsedTimer t;
    t.start();
    int step = 0;
    // ~2,000 metric lines per second for one second: far more than the redraw budget.
    while (t.elapsed() < 1000) {
        for (int i = 0; i < 10; ++i) {
            ++step;
            dash.addMetrics(QVariantMap{{"step", step},
                                        {"loss", 0.7 - step * 1e-4},
                                        {"rewards/accuracies", 0.5},
                                        {"rewards/margins", step * 1e-3},
                                        {"rewards/chosen", 0.1},
                                        {"rewards/rejected", -0.1},
                                        {"logps/chosen", -20.0},
                                        {"logps/rejected", -25.0},
                                        {"learning_rate", 1e-6},
                                        {"grad_norm", 1.5},
                                        {"tokens_per_second", 900.0},
                                        {"_rss_bytes", 123}});
        }
        QCoreApplication::processEvents(QEventLoop::AllEvents, 5);
        QTest::qWait(5);
    }
    const double seconds = double(t.elapsed()) / 1000.0;
    QCoreApplication::processEvents();
    QTest::qWait(150);
    const int redraws = dash.redrawCount() - before;
    QVERIFY2(redraws >= 3, qPrintable(QString::number(redraws)));
    QVERIFY2(redraws <= int(10 * seconds + 3), qPrintable(QStringLiteral("%1 redraws in %2 s").arg(redraws).arg(seconds)));
    for (MetricsChart *c : dash.charts())
        QVERIFY2(c->pointCount() > 0, qPrintable(c->spec().title));
    QCOMPARE(dash.chart(QStringLiteral("loss"))->pointCount(), step);
    QVERIFY(!dash.primaryRun()->series(QStringLiteral("_rss_bytes"))); // read-outs are not charted
}

void TestMetricsChart::overlayLogScaleAndExport()
{
    MetricsDashboard dash;
    auto a = std::make_shared<MetricsRun>(QStringLiteral("a"));
    auto b = std::make_shared<MetricsRun>(QStringLiteral("b"));
    for (int i = 1; i <= 50; ++i) {
        a->addMetrics(QVariantMap{{"step", i}, {"loss", 1.0 / i}, {"rewards/chosen", -0.5 + i * 0.01}});
        b->addMetrics(QVariantMap{{"step", i}, {"loss", 2.0 / i}, {"rewards/chosen", -0.2}});
    }
    dash.setPrimaryRun(a);
    MetricsChart *loss = dash.chart(QStringLiteral("loss"));
    const int single = loss->graphCount();
    dash.addOverlay(b);
    QCOMPARE(dash.overlayCount(), 1);
    QCOMPARE(loss->graphCount(), 2 * single);
    dash.addOverlay(b); // same name: replaced, not added twice
    QCOMPARE(dash.overlayCount(), 1);
    dash.redrawNow();
    QCOMPARE(loss->pointCount(), 50); // first run's points only

    dash.setLogScale(true);
    QCOMPARE(loss->yAxis->scaleType(), QCPAxis::stLogarithmic);
    QCOMPARE(dash.chart(QStringLiteral("rewards/chosen"))->yAxis->scaleType(), QCPAxis::stLinear);
    dash.setLogScale(false);
    QCOMPARE(loss->yAxis->scaleType(), QCPAxis::stLinear);

    dash.resize(900, 600);
    dash.show();
    QVERIFY(QTest::qWaitForWindowExposed(&dash));
    dash.redrawNow();
    QTemporaryDir dir;
    QString error;
    const QString png = dir.filePath(QStringLiteral("loss.png"));
    const QString pdf = dir.filePath(QStringLiteral("loss.pdf"));
    QVERIFY2(loss->exportImage(png, &error), qPrintable(error));
    QVERIFY2(loss->exportImage(pdf, &error), qPrintable(error));
    QVERIFY(QFileInfo(png).size() > 1000);
    QVERIFY(QFileInfo(pdf).size() > 500);
    QImage img(png);
    QVERIFY(!img.isNull());
    dash.clearOverlays();
    QCOMPARE(loss->graphCount(), single);
}

void TestMetricsChart::hoverShowsValues()
{
    ChartSpec spec{QStringLiteral("Loss"), {QStringLiteral("loss")}, {QStringLiteral("train")}, true};
    MetricsRun run(QStringLiteral("r"));
    for (int i = 1; i <= 100; ++i)
        run.addMetrics(QVariantMap{{"step", i}, {"loss", 0.5 + i * 0.001}});
    MetricsChart chart(spec);
    chart.setRuns({&run});
    chart.setSmoothing(0);
    chart.resize(500, 300);
    chart.show();
    QVERIFY(QTest::qWaitForWindowExposed(&chart));
    chart.refresh();
    const QRect r = chart.axisRect()->rect();
    const int x = int(chart.xAxis->coordToPixel(40));
    QTest::mouseMove(&chart, QPoint(x, r.center().y()));
    QTRY_VERIFY(QToolTip::isVisible());
    QVERIFY2(QToolTip::text().contains(QStringLiteral("step 40")), qPrintable(QToolTip::text()));
    QVERIFY2(QToolTip::text().contains(QStringLiteral("0.54")), qPrintable(QToolTip::text()));
}

DPO_TEST_MAIN(TestMetricsChart)

} // namespace test_metrics_chart

#include "test_metrics_chart.moc"
