// Durability under kill -9 (issue 17), as bounded trials at seeded random moments (label slow; about a
// minute or two). DPO_DURABILITY_SEED=N replays other moments; every kill is logged with its delay.
// - Training: `dpo-cli train` with a checkpoint at every step, killed (SIGKILL) up to three times per trial
//   and resumed with --resume until it completes. final/model.safetensors must be byte-identical to an
//   uninterrupted run's, and so must metrics.jsonl but for its two wall-clock fields (step_seconds,
//   tokens_per_second); no checkpoint temporary may be left behind.
// - Export: `dpo-cli project export` over a good file, killed at random moments: the target is always the
//   old file, whole, or the complete new one (never a truncated file under the final name).
#include "project/project_store.h"

#include <QCryptographicHash>
#include <QDir>
#include <QDirIterator>
#include <QElapsedTimer>
#include <QFile>
#include <QProcess>
#include <QRandomGenerator>
#include <QRegularExpression>
#include <QTemporaryDir>
#include "qt_test_main.h"

#include <QTest>

namespace test_durability { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

using namespace dpo;

class TestDurability : public QObject {
    Q_OBJECT

private:
    QTemporaryDir m_dir;
    QRandomGenerator m_rng;
    QString path(const QString &name) const { return m_dir.filePath(name); }
    static QByteArray bytes(const QString &file)
    {
        QFile f(file);
        return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
    }
    // metrics.jsonl without the fields that measure time, which differ between any two runs.
    static QByteArray withoutTimings(const QByteArray &metrics)
    {
        static const QRegularExpression timing(QStringLiteral(R"re(,?"(step_seconds|tokens_per_second)":[^,}]*)re"));
        return QString::fromUtf8(metrics).remove(timing).toUtf8();
    }
    static QByteArray digest(const QByteArray &b)
    {
        return QCryptographicHash::hash(b, QCryptographicHash::Sha256).toHex().left(12);
    }
    // Runs dpo-cli to its end; the exit code, or -1 when it crashed or timed out (stderr in *err).
    static int cli(const QStringList &args, QByteArray *err = nullptr)
    {
        QProcess p;
        p.start(QStringLiteral(DPO_CLI_PATH), args);
        if (!p.waitForFinished(300000)) {
            p.kill();
            p.waitForFinished();
            return -1;
        }
        if (err)
            *err = p.readAllStandardError();
        return p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1;
    }
    // Bytes the process has passed to write() so far (Linux /proc/PID/io "wchar"), -1 if unknown.
    static qint64 bytesWritten(qint64 pid)
    {
        QFile io(QStringLiteral("/proc/%1/io").arg(pid));
        if (!io.open(QIODevice::ReadOnly))
            return -1;
        for (const QByteArray &line : io.readAll().split('\n'))
            if (line.startsWith("wchar:"))
                return line.mid(6).trimmed().toLongLong();
        return -1;
    }
    // Starts dpo-cli and SIGKILLs it once delayMs have passed or, when killAtBytes >= 0, once it has written
    // that many bytes, unless it ends first. True when it was killed (*written: what it had written by then);
    // when it ended by itself, *exitCode holds its code.
    static bool runAndKill(
        const QStringList &args, int delayMs, qint64 killAtBytes, int *exitCode, QByteArray *err, qint64 *written)
    {
        QProcess p;
        p.setStandardOutputFile(QProcess::nullDevice());
        p.start(QStringLiteral(DPO_CLI_PATH), args);
        if (!p.waitForStarted())
            return false;
        QElapsedTimer timer;
        timer.start();
        for (;;) {
            const int step = killAtBytes >= 0 ? 1 : qMax(0, delayMs - int(timer.elapsed()));
            if (p.waitForFinished(step)) {
                *exitCode = p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1;
                *err = p.readAllStandardError();
                return false;
            }
            *written = bytesWritten(p.processId());
            if (timer.elapsed() >= delayMs || (killAtBytes >= 0 && *written >= killAtBytes))
                break;
        }
        p.kill();
        p.waitForFinished(30000);
        return true;
    }

private slots:
    void initTestCase();
    void trainingResumesByteIdentical();
    void exportIsAtomic();
};

void TestDurability::initTestCase()
{
    QVERIFY(m_dir.isValid());
    bool ok = false;
    const quint32 seed = qEnvironmentVariable("DPO_DURABILITY_SEED").toUInt(&ok);
    m_rng.seed(ok ? seed : 17u);
    qInfo("seed %u (DPO_DURABILITY_SEED)", ok ? seed : 17u);
}

void TestDurability::trainingResumesByteIdentical()
{
    const QString data = QStringLiteral(DPO_TEST_DATA_DIR);
    auto args = [&](const QString &out) {
        return QStringList { "train", "--model", data + "/llama-gqa/ref", "--dataset", data + "/llama-gqa/pairs.jsonl",
            "--learning-rate", "1e-3", "--batch-size", "2", "--max-steps", "24", "--save-steps", "1", "--seed", "7",
            "--device", "cpu", "--threads", "1", "--output-dir", out };
    };
    const QString full = path("train-full");
    QElapsedTimer timer;
    timer.start();
    QByteArray err;
    QVERIFY2(cli(args(full), &err) == 0, err.constData());
    const int fullMs = int(timer.elapsed());
    const QByteArray metrics = withoutTimings(bytes(full + "/metrics.jsonl"));
    const QByteArray weights = bytes(full + "/final/model.safetensors");
    QCOMPARE(metrics.count('\n'), 24);
    QVERIFY(metrics.contains("\"loss\":") && !metrics.contains("step_seconds"));
    QVERIFY(weights.size() > 1000);
    qInfo("uninterrupted run: %d ms, metrics %s, weights %s", fullMs, digest(metrics).constData(),
        digest(weights).constData());

    // Kills land anywhere in a run's life (start-up, steps, checkpoint writing, the final save): delays
    // uniform over an uninterrupted run's duration.
    const int trials = 8;
    int kills = 0, finishedEarly = 0, inCheckpoints = 0;
    for (int t = 0; t < trials; ++t) {
        const QString out = path(QStringLiteral("train-%1").arg(t));
        bool done = false;
        for (int k = 0; k < 4 && !done; ++k) {
            QStringList a = args(out);
            if (k > 0)
                a << "--resume";
            if (k == 3) { // the last attempt runs to the end
                QVERIFY2(cli(a, &err) == 0, err.constData());
                done = true;
                break;
            }
            const int delay = int(m_rng.bounded(fullMs));
            int code = -1;
            qint64 written = 0;
            if (runAndKill(a, delay, -1, &code, &err, &written)) {
                ++kills;
                // A checkpoint being written is a .tmp folder until its rename: the kill landed inside it.
                const bool inCheckpoint = !QDir(out).entryList({ "*.tmp*" }, QDir::AllEntries | QDir::Hidden).isEmpty();
                inCheckpoints += inCheckpoint ? 1 : 0;
                qInfo("trial %d: killed after %d ms%s", t, delay, inCheckpoint ? " (inside checkpoint writing)" : "");
            } else {
                QVERIFY2(code == 0, err.constData());
                ++finishedEarly;
                done = true;
            }
        }
        const QByteArray trialMetrics = withoutTimings(bytes(out + "/metrics.jsonl"));
        QVERIFY2(trialMetrics == metrics,
            qPrintable(QStringLiteral("trial %1: metrics.jsonl differs (%2 lines, %3)")
                           .arg(t)
                           .arg(trialMetrics.count('\n'))
                           .arg(QString::fromLatin1(digest(trialMetrics)))));
        QVERIFY2(bytes(out + "/final/model.safetensors") == weights,
            qPrintable(QStringLiteral("trial %1: final weights differ").arg(t)));
        QDirIterator it(out, QDir::AllEntries | QDir::Hidden | QDir::NoDotAndDotDot);
        while (it.hasNext()) {
            const QString name = it.next().section(QLatin1Char('/'), -1);
            QVERIFY2(!name.contains(QLatin1String(".tmp")), qPrintable(out + ": left behind: " + name));
        }
        QDir(out).removeRecursively();
    }
    qInfo("training: %d trials, %d kills (%d inside checkpoint writing), %d attempts finished before their kill",
        trials, kills, inCheckpoints, finishedEarly);
    QVERIFY2(kills >= trials, "too few kills landed: the trials did not test anything");
}

void TestDurability::exportIsAtomic()
{
    // About 12 MB of TRL rows, so that an export lasts long enough to be killed while writing.
    auto makeRows = [](int from, int to) {
        QByteArray rows;
        const QByteArray pad(560, 'x');
        for (int i = from; i < to; ++i)
            rows += QStringLiteral(R"({"prompt": "p%1", "chosen": "c%1 )").arg(i).toUtf8() + pad
                + QStringLiteral(R"(", "rejected": "r%1"})").arg(i).toUtf8() + '\n';
        return rows;
    };
    const QString project = path("export.dpoproj");
    {
        auto s = ProjectStore::open(project);
        QFile f(path("rows.jsonl"));
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write(makeRows(0, 10000));
        f.close();
        QCOMPARE(importFile(*s, path("rows.jsonl")).imported, qint64(10000));
    }
    const QString target = path("out/train.jsonl");
    QVERIFY(QDir().mkpath(path("out")));
    QCOMPARE(cli({ "project", "export", "--project", project, "--output", target }), 0);
    const QByteArray oldFile = bytes(target);
    {
        auto s = ProjectStore::open(project);
        QFile f(path("more.jsonl"));
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write(makeRows(10000, 20000));
        f.close();
        QCOMPARE(importFile(*s, path("more.jsonl")).imported, qint64(10000));
    }
    QElapsedTimer timer;
    timer.start();
    QCOMPARE(cli({ "project", "export", "--project", project, "--output", path("out/new.jsonl") }), 0);
    const int fullMs = int(timer.elapsed());
    const QByteArray newFile = bytes(path("out/new.jsonl"));
    QVERIFY(newFile.size() > oldFile.size() + 1000000);
    QVERIFY(QFile::remove(path("out/new.jsonl")));
    qInfo("export of %lld bytes: %d ms", qint64(newFile.size()), fullMs);

    // Half the kills at random moments of the whole run (start-up and the query included), half at a random
    // point of the output: once the process has handed that many bytes to write(), which lands them inside
    // the writing and around the final commit and rename.
    const int trials = 24;
    int keptOld = 0, complete = 0, kills = 0, midWrite = 0;
    for (int t = 0; t < trials; ++t) {
        QFile::remove(target);
        {
            QFile f(target);
            QVERIFY(f.open(QIODevice::WriteOnly));
            QCOMPARE(f.write(oldFile), oldFile.size());
        }
        const bool byBytes = t % 2 == 1;
        const int delay = byBytes ? 60000 : int(m_rng.bounded(fullMs));
        const qint64 atBytes = byBytes ? qint64(m_rng.bounded(quint32(newFile.size() + (1 << 20)))) : -1;
        int code = -1;
        qint64 written = 0;
        QByteArray err;
        if (runAndKill({ "project", "export", "--project", project, "--output", target }, delay, atBytes, &code, &err,
                &written)) {
            ++kills;
            // Rows go to write() in 1 MiB pieces: past the first, the kill cut an export short.
            midWrite += written >= (1 << 20) ? 1 : 0;
            if (byBytes)
                qInfo("trial %d: killed at %lld bytes written (aimed at %lld)", t, written, atBytes);
            else
                qInfo("trial %d: killed after %d ms, %lld bytes written", t, delay, written);
        } else {
            QVERIFY2(code == 0, err.constData());
        }
        const QByteArray now = bytes(target);
        if (now == oldFile)
            ++keptOld;
        else if (now == newFile)
            ++complete;
        else
            QFAIL(
                qPrintable(QStringLiteral("trial %1: %2 holds %3 bytes, neither the old file (%4) nor the new one (%5)")
                               .arg(t)
                               .arg(target)
                               .arg(now.size())
                               .arg(oldFile.size())
                               .arg(newFile.size())));
        // A kill may leave QSaveFile's temporary file next to the target (where Qt cannot keep it unnamed with
        // O_TMPFILE), never under the target's name: tidy up.
        for (const QString &name : QDir(path("out")).entryList(QDir::Files | QDir::Hidden))
            if (name != QLatin1String("train.jsonl"))
                QVERIFY(QFile::remove(path("out/") + name));
    }
    qInfo("export: %d trials, %d kills (%d while writing); the target held the old file %d times, the new one %d "
          "times",
        trials, kills, midWrite, keptOld, complete);
    QVERIFY2(midWrite >= trials / 4, "too few kills landed while the export was writing: the trials did not test it");
}

DPO_TEST_MAIN(TestDurability)

} // namespace test_durability

#include "test_durability.moc"
