// Benchmark (not a test) of the Train page. Prints one JSON object per mode.
//
//   bench_train_gui [--mode latency|charts|screenshot] [--model DIR] [--data FILE] [--seconds S]
//                   [--threads N] [--batch N] [--out FILE.png] [--delay MS] [--steps N]
//
// latency     the Train page shown (1400x900) trains --model on --data for S seconds while a 5 ms QTimer
//             probes the GUI event loop: lateness = time between ticks - 5 ms. Reports the worst, p99 and
//             median lateness (target: worst < 50 ms), steps and metric lines per second, chart redraws
//             per second, and how long Stop took to return with a checkpoint.
// charts      the chart dashboard fed 100,000 metric lines (every DPO series + an eval line every 500
//             steps): time to append, points kept per series (bounded), a full redraw (graphs rebuilt
//             from the kept points) and an incremental one, against the same with every point kept.
// screenshot  the whole main window (a temporary project, Train page, a run in progress) grabbed after
//             --delay ms into --out; run it under xvfb-run to see the real window.
#include "project/project_store.h"
#include "ui/shell/mainwindow.h"
#include "ui/train/metricschart.h"
#include "ui/train/trainpage.h"

#include <QApplication>
#include <QCommandLineParser>
#include <QDir>
#include <QElapsedTimer>
#include <QEventLoop>
#include <QFile>
#include <QJsonDocument>
#include <QJsonObject>
#include <QPixmap>
#include <QScreen>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTabWidget>
#include <QTemporaryDir>
#include <QTest>
#include <QTimer>

#include <algorithm>
#include <cmath>
#include <cstdio>

static double percentile(std::vector<double> v, double p)
{
    if (v.empty())
        return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, size_t(p * double(v.size() - 1) + 0.5))];
}

// A real event loop for `ms` (QTest::qWait sleeps 10 ms between event batches, which would be measured
// as lateness by the probe).
static void spin(int ms)
{
    QEventLoop loop;
    QTimer::singleShot(ms, Qt::PreciseTimer, &loop, &QEventLoop::quit);
    loop.exec();
}

static void print(const QJsonObject &o)
{
    std::printf("%s\n", QJsonDocument(o).toJson(QJsonDocument::Indented).constData());
    std::fflush(stdout);
}

static bool configure(TrainPage &page, const QString &model, const QString &data, const QString &out, int maxSteps,
                      int threads, int batch)
{
    QSignalSpy inspected(&page, &TrainPage::modelInspected);
    page.setModelPath(model);
    if (!inspected.wait(60000) || !page.modelInfo().ok) {
        std::fprintf(stderr, "model: %s\n", qPrintable(page.modelInfo().error));
        return false;
    }
    if (!data.isEmpty())
        page.setDatasetFile(data);
    page.setOutputDir(out);
    page.setOption(QStringLiteral("max_steps"), QString::number(maxSteps));
    page.setOption(QStringLiteral("batch_size"), QString::number(batch));
    page.setOption(QStringLiteral("learning_rate"), QStringLiteral("5e-4"));
    page.setOption(QStringLiteral("warmup_ratio"), QStringLiteral("0.05"));
    page.setOption(QStringLiteral("lr_scheduler"), QStringLiteral("cosine"));
    page.setOption(QStringLiteral("save_steps"), QStringLiteral("0"));
    page.setOption(QStringLiteral("threads"), QString::number(threads));
    return true;
}

static int latencyMode(const QString &model, const QString &data, double seconds, int threads, int batch)
{
    QTemporaryDir dir;
    TrainPage page;
    page.resize(1400, 900);
    page.show();
    QTest::qWaitForWindowExposed(&page);
    if (!configure(page, model, data, dir.filePath(QStringLiteral("run")), 1000000, threads, batch))
        return 1;

    std::vector<double> lateness;
    lateness.reserve(100000);
    QElapsedTimer clock;
    QTimer probe;
    probe.setTimerType(Qt::PreciseTimer);
    probe.setInterval(5);
    qint64 last = -1;
    QObject::connect(&probe, &QTimer::timeout, [&]() {
        const qint64 now = clock.nsecsElapsed();
        if (last >= 0)
            lateness.push_back(std::max(0.0, double(now - last) / 1e6 - 5.0));
        last = now;
    });
    int lines = 0;
    qint64 firstStep = -1, lastStep = 0;
    double firstMetricAt = 0;
    QObject::connect(page.runner(), &TrainingRunner::metrics, [&](const QVariantMap &m) {
        ++lines;
        lastStep = m.value(QStringLiteral("step")).toLongLong();
        if (firstStep < 0) {
            firstStep = lastStep;
            firstMetricAt = double(clock.nsecsElapsed()) / 1e9;
        }
    });
    QString finishedStatus;
    QObject::connect(&page, &TrainPage::trainingFinished, [&](const QString &s) { finishedStatus = s; });

    clock.start();
    probe.start();
    const int redraws0 = page.dashboard()->redrawCount();
    if (!page.start()) {
        std::fprintf(stderr, "start refused: %s\n", qPrintable(page.message()));
        return 1;
    }
    // Until the first metrics line (model loading), then S seconds of training.
    while (firstStep < 0 && finishedStatus.isEmpty() && clock.elapsed() < 120000)
        spin(20);
    const double loadSeconds = firstMetricAt;
    const size_t loadSamples = lateness.size();
    QElapsedTimer train;
    train.start();
    while (train.elapsed() < qint64(seconds * 1000) && finishedStatus.isEmpty())
        spin(20);
    const double trainSeconds = double(train.elapsed()) / 1000.0;
    const int redraws = page.dashboard()->redrawCount() - redraws0;
    const int linesAtStop = lines;
    const qint64 stepAtStop = lastStep;
    QElapsedTimer stopClock;
    stopClock.start();
    page.stop();
    while (finishedStatus.isEmpty() && stopClock.elapsed() < 60000)
        spin(1);
    const double stopMs = double(stopClock.nsecsElapsed()) / 1e6;
    probe.stop();

    std::vector<double> during(lateness.begin() + long(std::min(loadSamples, lateness.size())), lateness.end());
    double chartMs = 0;
    for (MetricsChart *c : page.dashboard()->charts())
        chartMs += c->lastReplotMs();
    QJsonObject o{{"mode", "latency"},
                  {"model", model},
                  {"model_parameters", double(page.modelInfo().parameters)},
                  {"threads", threads},
                  {"batch_size", batch},
                  {"load_seconds", loadSeconds},
                  {"train_seconds", trainSeconds},
                  {"steps", double(stepAtStop - firstStep + 1)},
                  {"steps_per_second", double(stepAtStop - firstStep + 1) / trainSeconds},
                  {"metric_lines_per_second", double(linesAtStop) / trainSeconds},
                  {"chart_redraws_per_second", double(redraws) / (loadSeconds + trainSeconds)},
                  {"last_redraw_all_charts_ms", chartMs},
                  {"probe_samples", double(lateness.size())},
                  {"lateness_worst_ms_whole_run", lateness.empty() ? 0.0 : *std::max_element(lateness.begin(), lateness.end())},
                  {"lateness_worst_ms_training", during.empty() ? 0.0 : *std::max_element(during.begin(), during.end())},
                  {"lateness_p99_ms_training", percentile(during, 0.99)},
                  {"lateness_median_ms_training", percentile(during, 0.5)},
                  {"stop_to_stopped_ms", stopMs},
                  {"status", finishedStatus},
                  {"checkpoint", page.lastCheckpoint()}};
    print(o);
    return finishedStatus == QLatin1String("stopped") ? 0 : 1;
}

static QVariantMap line(int step)
{
    const double t = step;
    return QVariantMap{{"step", step},
                       {"epoch", t / 1000.0},
                       {"loss", 0.69 * std::exp(-t / 30000.0) + 0.05 * std::sin(t * 0.37)},
                       {"rewards/accuracies", std::min(1.0, 0.5 + t / 200000.0 + 0.2 * std::sin(t * 1.3))},
                       {"rewards/margins", t / 20000.0 + 0.3 * std::sin(t * 0.11)},
                       {"rewards/chosen", t / 40000.0 + 0.1 * std::cos(t)},
                       {"rewards/rejected", -t / 40000.0 + 0.1 * std::sin(t)},
                       {"logps/chosen", -40 + t / 10000.0 + std::sin(t * 0.5)},
                       {"logps/rejected", -45 - t / 10000.0 + std::cos(t * 0.5)},
                       {"learning_rate", 1e-6 * std::max(0.0, 1 - t / 100000.0)},
                       {"grad_norm", 1.0 + 0.5 * std::abs(std::sin(t * 0.05))},
                       {"tokens_per_second", 1000.0},
                       {"num_tokens", step * 512}};
}

static QJsonObject chartRun(int budget, int steps)
{
    MetricsDashboard dash;
    dash.resize(1000, 760);
    dash.show();
    QTest::qWaitForWindowExposed(&dash);
    auto run = std::make_shared<MetricsRun>(QStringLiteral("bench"), budget);
    dash.setPrimaryRun(run);
    QElapsedTimer t;
    t.start();
    for (int s = 1; s <= steps; ++s) {
        run->addMetrics(line(s));
        if (s % 500 == 0)
            run->addMetrics(QVariantMap{{"step", s}, {"eval_loss", 0.6}, {"eval_rewards/accuracies", 0.7},
                                        {"eval_rewards/margins", 0.4}});
    }
    const double appendMs = double(t.nsecsElapsed()) / 1e6;
    // First redraw: every graph built from the kept points.
    t.restart();
    dash.redrawNow();
    const double firstMs = double(t.nsecsElapsed()) / 1e6;
    // Full redraws (graphs rebuilt), as when smoothing changes.
    std::vector<double> full, replotOnly, incremental;
    for (int i = 0; i < 10; ++i) {
        dash.setSmoothing(i % 2 ? 0.6 : 0.5);
        t.restart();
        dash.redrawNow();
        full.push_back(double(t.nsecsElapsed()) / 1e6);
        double sum = 0;
        for (MetricsChart *c : dash.charts())
            sum += c->lastReplotMs();
        replotOnly.push_back(sum);
    }
    // Incremental: 10 new lines per redraw (what a live run does every 100 ms).
    int s = steps;
    for (int i = 0; i < 20; ++i) {
        for (int k = 0; k < 10; ++k)
            run->addMetrics(line(++s));
        t.restart();
        dash.redrawNow();
        incremental.push_back(double(t.nsecsElapsed()) / 1e6);
    }
    const BoundedSeries *loss = run->series(QStringLiteral("loss"));
    int graphs = 0;
    for (MetricsChart *c : dash.charts())
        graphs += c->graphCount();
    return QJsonObject{{"budget_per_series", budget},
                       {"steps", steps},
                       {"series", run->keys().size()},
                       {"graphs", graphs},
                       {"points_kept_per_series", loss->size()},
                       {"append_ms_total", appendMs},
                       {"append_us_per_line", appendMs * 1000.0 / steps},
                       {"first_redraw_ms", firstMs},
                       {"full_redraw_ms_median", percentile(full, 0.5)},
                       {"replot_only_ms_median", percentile(replotOnly, 0.5)},
                       {"incremental_redraw_ms_median", percentile(incremental, 0.5)},
                       {"incremental_redraw_ms_max", percentile(incremental, 1.0)}};
}

static int chartsMode()
{
    QJsonObject o{{"mode", "charts"},
                  {"bounded", chartRun(8192, 100000)},
                  {"unbounded_all_points_kept", chartRun(250000, 100000)}};
    print(o);
    return 0;
}

static int screenshotMode(const QString &model, const QString &data, const QString &outPng, int delayMs, int threads,
                          int batch, int steps)
{
    QTemporaryDir dir;
    // A project holding the data as judged pairs, so the window looks as it does in use.
    const QString projectPath = dir.filePath(QStringLiteral("demo.dpo"));
    {
        auto store = dpo::ProjectStore::open(projectPath);
        QFile f(data);
        if (f.open(QIODevice::ReadOnly))
            while (!f.atEnd()) {
                const QJsonObject o = QJsonDocument::fromJson(f.readLine()).object();
                if (o.isEmpty())
                    continue;
                const qint64 p = store->addPrompt(o.value(QStringLiteral("prompt")).toString());
                store->addPair(p, store->addCompletion(p, o.value(QStringLiteral("chosen")).toString()),
                               store->addCompletion(p, o.value(QStringLiteral("rejected")).toString()),
                               QStringLiteral("import-judged"), dpo::JudgmentKind::Label, QStringLiteral("a"));
            }
    }
    MainWindow window;
    window.resize(1400, 900);
    QString error;
    if (!window.openProject(projectPath, &error)) {
        std::fprintf(stderr, "project: %s\n", qPrintable(error));
        return 1;
    }
    TrainPage *page = nullptr;
    for (int i = 0; i < window.pageCount(); ++i)
        if ((page = qobject_cast<TrainPage *>(window.page(i)))) {
            window.setCurrentPage(i);
            break;
        }
    if (!page)
        return 1;
    window.show();
    QTest::qWaitForWindowExposed(&window);
    if (!configure(*page, model, QString(), dir.filePath(QStringLiteral("runs/run-demo")), steps, threads, batch))
        return 1;
    page->setDataSource(TrainPage::DataSource::Project);
    page->setEvalSplit(0.25);
    page->setOption(QStringLiteral("eval_steps"), QStringLiteral("25"));
    page->refreshDatasetSummary();
    if (!page->start()) {
        std::fprintf(stderr, "start refused: %s\n", qPrintable(page->message()));
        return 1;
    }
    spin(delayMs);
    QPixmap pm;
    if (QScreen *screen = QGuiApplication::primaryScreen())
        pm = screen->grabWindow(0);
    if (pm.isNull() || QGuiApplication::platformName() == QLatin1String("offscreen"))
        pm = window.grab();
    const bool saved = pm.save(outPng);
    QString status;
    QObject::connect(page, &TrainPage::trainingFinished, [&](const QString &s) { status = s; });
    page->stop();
    QElapsedTimer t;
    t.start();
    while (status.isEmpty() && t.elapsed() < 60000)
        spin(10);
    // Second picture: the Runs tab once the stopped run is listed.
    spin(1500);
    if (auto *tabs = page->findChild<QTabWidget *>(QStringLiteral("trainTabs")))
        tabs->setCurrentIndex(2);
    spin(300);
    QString runsPng = outPng;
    runsPng.replace(QStringLiteral(".png"), QStringLiteral("-runs.png"));
    QPixmap pm2;
    if (QScreen *screen = QGuiApplication::primaryScreen())
        pm2 = screen->grabWindow(0);
    if (pm2.isNull() || QGuiApplication::platformName() == QLatin1String("offscreen"))
        pm2 = window.grab();
    pm2.save(runsPng);
    print(QJsonObject{{"mode", "screenshot"}, {"file", outPng}, {"saved", saved}, {"status", status},
                      {"progress", page->progressText()}, {"runs_file", runsPng}});
    return saved ? 0 : 1;
}

int main(int argc, char **argv)
{
    const bool wantsScreen = [&]() {
        for (int i = 1; i < argc; ++i)
            if (QByteArray(argv[i]) == "screenshot")
                return true;
        return false;
    }();
    if (qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM") && (!wantsScreen || qEnvironmentVariableIsEmpty("DISPLAY")))
        qputenv("QT_QPA_PLATFORM", "offscreen");
    QApplication app(argc, argv);
    QStandardPaths::setTestModeEnabled(true);
    QApplication::setOrganizationName(QStringLiteral("DPO Studio Bench"));
    QApplication::setApplicationName(QStringLiteral("bench_train_gui"));
    QCommandLineParser cli;
    QCommandLineOption modeOpt(QStringLiteral("mode"), QStringLiteral("latency | charts | screenshot"), QStringLiteral("M"),
                               QStringLiteral("latency"));
    QCommandLineOption modelOpt(QStringLiteral("model"), QStringLiteral("model dir"), QStringLiteral("DIR"),
                                QStringLiteral(DPO_TEST_DATA_DIR "/llama-gqa/ref"));
    QCommandLineOption dataOpt(QStringLiteral("data"), QStringLiteral("pairs JSONL"), QStringLiteral("FILE"),
                               QStringLiteral(DPO_TEST_DATA_DIR "/llama-gqa/pairs.jsonl"));
    QCommandLineOption secondsOpt(QStringLiteral("seconds"), QStringLiteral("training seconds"), QStringLiteral("S"),
                                  QStringLiteral("15"));
    QCommandLineOption threadsOpt(QStringLiteral("threads"), QStringLiteral("libtorch threads (0 = all)"),
                                  QStringLiteral("N"), QStringLiteral("0"));
    QCommandLineOption batchOpt(QStringLiteral("batch"), QStringLiteral("pairs per batch"), QStringLiteral("N"),
                                QStringLiteral("4"));
    QCommandLineOption outOpt(QStringLiteral("out"), QStringLiteral("screenshot file"), QStringLiteral("FILE"),
                              QStringLiteral("train-page.png"));
    QCommandLineOption stepsOpt(QStringLiteral("steps"), QStringLiteral("max steps of the screenshot run"),
                                QStringLiteral("N"), QStringLiteral("3000"));
    QCommandLineOption delayOpt(QStringLiteral("delay"), QStringLiteral("ms before the screenshot"), QStringLiteral("MS"),
                                QStringLiteral("6000"));
    cli.addOptions({modeOpt, modelOpt, dataOpt, secondsOpt, threadsOpt, batchOpt, outOpt, delayOpt, stepsOpt});
    cli.addHelpOption();
    cli.process(app);
    const QString mode = cli.value(modeOpt);
    if (mode == QLatin1String("charts"))
        return chartsMode();
    if (mode == QLatin1String("screenshot"))
        return screenshotMode(cli.value(modelOpt), cli.value(dataOpt), cli.value(outOpt), cli.value(delayOpt).toInt(),
                              cli.value(threadsOpt).toInt(), cli.value(batchOpt).toInt(), cli.value(stepsOpt).toInt());
    return latencyMode(cli.value(modelOpt), cli.value(dataOpt), cli.value(secondsOpt).toDouble(),
                       cli.value(threadsOpt).toInt(), cli.value(batchOpt).toInt());
}
