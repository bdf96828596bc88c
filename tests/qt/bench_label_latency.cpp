// Benchmark (not a test): keypress-to-paint latency of the Label page on a large SQLite project.
//
//   bench_label_latency [--pairs N] [--verdicts K] [--project FILE]
//
// Builds (or reuses) a project of N pairs, shows the Label page offscreen, then K times: sends the
// key "1" and delivers the window's pending UpdateRequest at once, which paints what changed into the
// backing store; the time from the key to the end of that paint is one sample (it includes the durable
// commit of the verdict and claiming the next pair). full_repaint_ms is a whole-page repaint alone, for
// scale. progress_ms times ProjectStore::progress() on a second connection, as the page's worker calls it
// after each verdict (it competes with painting for the CPU). On a loaded machine the tail is scheduling
// noise: compare medians.
// Prints one JSON object: median / p95 / max milliseconds, the record/next split, resident memory (now and
// peak).
#include "project/project_store.h"
#include "ui/label/labelpage.h"
#include "ui/shell/projectsession.h"

#include <QApplication>
#include <QCommandLineParser>
#include <QElapsedTimer>
#include <QFile>
#include <QTemporaryDir>
#include <QTest>

#include <algorithm>
#include <cstdio>

static double percentile(std::vector<double> v, double p)
{
    if (v.empty())
        return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, size_t(p * double(v.size() - 1) + 0.5))];
}

static double rssMb(const char *field = "VmRSS:") // VmHWM: the peak
{
    QFile f(QStringLiteral("/proc/self/status"));
    if (!f.open(QIODevice::ReadOnly))
        return 0;
    for (const QByteArray &line : f.readAll().split('\n'))
        if (line.startsWith(field))
            return line.mid(int(qstrlen(field))).trimmed().split(' ').first().toDouble() / 1024.0;
    return 0;
}

int main(int argc, char **argv)
{
    if (qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM"))
        qputenv("QT_QPA_PLATFORM", "offscreen");
    QApplication app(argc, argv);
    QCommandLineParser cli;
    QCommandLineOption pairsOpt(
        QStringLiteral("pairs"), QStringLiteral("pairs"), QStringLiteral("N"), QStringLiteral("200000"));
    QCommandLineOption verdictsOpt(
        QStringLiteral("verdicts"), QStringLiteral("verdicts"), QStringLiteral("K"), QStringLiteral("300"));
    QCommandLineOption projectOpt(QStringLiteral("project"), QStringLiteral("project file"), QStringLiteral("FILE"));
    cli.addOptions({ pairsOpt, verdictsOpt, projectOpt });
    cli.process(app);
    const int pairs = cli.value(pairsOpt).toInt();
    const int verdicts = cli.value(verdictsOpt).toInt();

    QTemporaryDir dir;
    const QString path = cli.isSet(projectOpt) ? cli.value(projectOpt) : dir.filePath(QStringLiteral("bench.dpo"));
    double buildSeconds = 0;
    if (!QFile::exists(path)) {
        QElapsedTimer t;
        t.start();
        auto store = dpo::ProjectStore::open(path);
        dpo::ProjectStore::Transaction tx(*store);
        for (int i = 0; i < pairs; ++i) {
            const qint64 p
                = store->addPrompt(QStringLiteral("Prompt %1: explain why the sky is blue, briefly.").arg(i));
            const qint64 a = store->addCompletion(p,
                QStringLiteral("Sunlight scatters off air molecules; **blue** light (short wavelength) scatters "
                               "most, so the sky looks blue. Case %1.")
                    .arg(i));
            const qint64 b = store->addCompletion(
                p, QStringLiteral("Because of Rayleigh scattering:\n\n```\nI ~ 1 / lambda^4\n```\n\nCase %1.").arg(i));
            store->addPair(p, a, b);
        }
        tx.commit();
        buildSeconds = double(t.elapsed()) / 1000.0;
    }

    const double rssBefore = rssMb();
    auto session = std::make_unique<ProjectSession>(dpo::ProjectStore::open(path));
    LabelPage page;
    page.resize(1280, 800);
    page.setAnnotatorName(QStringLiteral("bench"));
    page.setProject(session.get());
    page.show();
    QTest::qWaitForWindowExposed(&page);
    page.setFocus();
    QTest::qWait(200);

    std::vector<double> total, record, next, fullPaint;
    QElapsedTimer t;
    for (int i = 0; i < 30; ++i) {
        t.start();
        page.repaint();
        fullPaint.push_back(double(t.nsecsElapsed()) / 1e6);
    }
    for (int i = 0; i < verdicts && page.currentPair(); ++i) {
        t.start();
        QTest::keyClick(&page, Qt::Key_1);
        QCoreApplication::sendPostedEvents(page.window(), QEvent::UpdateRequest); // paint the dirty region now
        total.push_back(double(t.nsecsElapsed()) / 1e6);
        record.push_back(page.lastRecordMs());
        next.push_back(page.lastNextMs());
        QCoreApplication::processEvents(); // let the progress refresh come back, as in real use
    }
    session->worker().waitForIdle();
    std::vector<double> progressMs;
    {
        auto other = dpo::ProjectStore::open(path);
        const qint64 annotator = other->annotator(QStringLiteral("bench")).id;
        for (int i = 0; i < 30; ++i) {
            t.start();
            other->progress(annotator);
            progressMs.push_back(double(t.nsecsElapsed()) / 1e6);
        }
    }
    std::printf("{\"pairs\":%d,\"verdicts\":%d,\"build_seconds\":%.2f,"
                "\"keypress_to_paint_ms\":{\"median\":%.3f,\"p95\":%.3f,\"max\":%.3f},"
                "\"record_verdict_ms\":{\"median\":%.3f,\"max\":%.3f},"
                "\"claim_and_render_next_ms\":{\"median\":%.3f,\"max\":%.3f},"
                "\"full_repaint_ms\":{\"median\":%.3f},\"progress_ms\":{\"median\":%.3f,\"max\":%.3f},"
                "\"rss_mb\":{\"before_open\":%.1f,\"after\":%.1f,\"peak\":%.1f}}\n",
        pairs, int(total.size()), buildSeconds, percentile(total, 0.5), percentile(total, 0.95), percentile(total, 1.0),
        percentile(record, 0.5), percentile(record, 1.0), percentile(next, 0.5), percentile(next, 1.0),
        percentile(fullPaint, 0.5), percentile(progressMs, 0.5), percentile(progressMs, 1.0), rssBefore, rssMb(),
        rssMb("VmHWM:"));
    page.setProject(nullptr);
    return 0;
}
