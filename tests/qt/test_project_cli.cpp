// dpo-cli project import/export/stats as scripts call them; dpo-cli train --project (the project's judged pairs,
// the run recorded in the project); verdict durability: a real dpo-cli process labeling a project is killed
// with SIGKILL mid-session; at most the pair on screen may be lost. Read commands
#include "project/project_store.h"

#include <QElapsedTimer>
#include <QFile>
#include <QDir>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QSet>
#include <QSqlDatabase>
#include <QSqlQuery>
#include <QTemporaryDir>
#include "qt_test_main.h"

#include <QTest>

namespace test_project_cli { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

using namespace dpo;

class TestProjectCli : public QObject {
    Q_OBJECT

private:
    QTemporaryDir m_dir;
    struct Run {
        int exitCode = -1;
        QByteArray out, err;
    };
    static Run cli(const QStringList &args)
    {
        QProcess p;
        p.start(QStringLiteral(DPO_CLI_PATH), args);
        Run r;
        if (!p.waitForFinished(120000))
            return r;
        r.exitCode = p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1;
        r.out = p.readAllStandardOutput();
        r.err = p.readAllStandardError();
        return r;
    }
    QString path(const QString &name) { return m_dir.filePath(name); }
    static void write(const QString &file, const QByteArray &data)
    {
        QFile f(file);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write(data);
    }

private slots:
    void importSummary_data();
    void importSummary();
    void importRowLimits();
    void exportRoundTripAndStats();
    void killDuringLabeling();
    void readCommandsLeaveForeignFiles();
    void trainFromProject_data();
    void trainFromProject();
};

void TestProjectCli::importSummary_data()
{
    QTest::addColumn<QString>("onError");
    QTest::newRow("skip") << "skip";
    QTest::newRow("abort") << "abort";
}

void TestProjectCli::importSummary()
{
    QFETCH(QString, onError);
    write(path("rows.jsonl"),
        R"({"prompt": "p1", "chosen": "c1", "rejected": "r1"})"
        "\n"
        R"({"prompt": "p2", "chosen": "c2"})"
        "\n"
        R"(not json)"
        "\n"
        R"({"prompt": "p4", "chosen": "c4", "rejected": "r4"})"
        "\n");
    const QString project = path(QStringLiteral("cli_%1.dpoproj").arg(onError));
    const Run r = cli({ "project", "import", "--project", project, "--input", path("rows.jsonl"), "--format", "trl",
        "--on-error", onError });
    QCOMPARE(r.exitCode, onError == "abort" ? 1 : 0);
    const QJsonObject summary = QJsonDocument::fromJson(r.out).object();
    QCOMPARE(summary["imported"].toInt(), onError == "abort" ? 0 : 2);
    QCOMPARE(summary["skipped"].toInt(), 2);
    const QJsonArray errors = summary["errors"].toArray();
    QCOMPARE(errors.size(), 2);
    QCOMPARE(errors[0].toObject()["line"].toInt(), 2);
    QCOMPARE(errors[0].toObject()["file"].toString(), path("rows.jsonl"));
    QVERIFY(errors[0].toObject()["message"].toString().contains("rejected"));
    QCOMPARE(errors[1].toObject()["line"].toInt(), 3);
    if (onError == "abort")
        QVERIFY(r.err.contains("nothing imported"));
    // The project exists either way (created if absent); abort left it empty.
    const Run stats = cli({ "project", "stats", "--project", project });
    QCOMPARE(stats.exitCode, 0);
    QCOMPARE(
        QJsonDocument::fromJson(stats.out).object()["counts"].toObject()["pairs"].toInt(), onError == "abort" ? 0 : 2);
}

void TestProjectCli::importRowLimits()
{
    // --max-row-bytes, and a row nested 100,000 levels: each error names the file and the line.
    const QByteArray good = R"({"prompt": "p1", "chosen": "c1", "rejected": "r1"})";
    const QByteArray longRow = R"({"prompt": "p2", "chosen": ")" + QByteArray(200, 'x') + R"(", "rejected": "r2"})";
    const QByteArray deep = R"({"prompt": )" + QByteArray(100000, '[') + QByteArray(100000, ']') + "}";
    write(path("limits.jsonl"), good + "\n" + longRow + "\n" + deep + "\n");
    const Run r = cli({ "project", "import", "--project", path("limits.dpoproj"), "--input", path("limits.jsonl"),
        "--max-row-bytes", "150" });
    QCOMPARE(r.exitCode, 0);
    const QJsonObject summary = QJsonDocument::fromJson(r.out).object();
    QCOMPARE(summary["imported"].toInt(), 1);
    const QJsonArray errors = summary["errors"].toArray();
    QCOMPARE(errors.size(), 2);
    QCOMPARE(errors[0].toObject()["file"].toString(), path("limits.jsonl"));
    QCOMPARE(errors[0].toObject()["line"].toInt(), 2);
    QVERIFY2(errors[0].toObject()["message"].toString().contains("above the limit of 150 bytes (raise it with "
                                                                 "--max-row-bytes"),
        r.out.constData());
    // The default limit (8 MiB) lets the long row in; the nested one stays out.
    const Run d = cli({ "project", "import", "--project", path("limits2.dpoproj"), "--input", path("limits.jsonl") });
    QCOMPARE(d.exitCode, 0);
    const QJsonObject s2 = QJsonDocument::fromJson(d.out).object();
    QCOMPARE(s2["imported"].toInt(), 2);
    QCOMPARE(s2["errors"].toArray().size(), 1);
    QCOMPARE(s2["errors"][0].toObject()["line"].toInt(), 3);
    QVERIFY2(s2["errors"][0].toObject()["message"].toString().contains("JSON nested deeper than 64 levels"),
        d.out.constData());
    const Run z = cli({ "project", "import", "--project", path("limits3.dpoproj"), "--input", path("limits.jsonl"),
        "--max-row-bytes", "0" });
    QVERIFY(z.exitCode != 0);
    QVERIFY2(z.err.contains("--max-row-bytes"), z.err.constData());
}

void TestProjectCli::exportRoundTripAndStats()
{
    QByteArray rows;
    for (int i = 0; i < 20; ++i)
        rows += QStringLiteral(R"({"prompt": "prompt %1, \"q\"", "chosen": "good\n%1", "rejected": "bad %1"})")
                    .arg(i)
                    .toUtf8()
            + "\n";
    write(path("trl.jsonl"), rows);
    const QString project = path("roundtrip.dpoproj");
    Run r = cli({ "project", "import", "--project", project, "--input", path("trl.jsonl") });
    QCOMPARE(r.exitCode, 0);
    QCOMPARE(QJsonDocument::fromJson(r.out).object()["imported"].toInt(), 20);
    r = cli({ "project", "export", "--project", project, "--output", path("back.jsonl") });
    QCOMPARE(r.exitCode, 0);
    QFile in(path("trl.jsonl")), out(path("back.jsonl"));
    QVERIFY(in.open(QIODevice::ReadOnly) && out.open(QIODevice::ReadOnly));
    const QList<QByteArray> a = in.readAll().trimmed().split('\n'), b = out.readAll().trimmed().split('\n');
    QCOMPARE(b.size(), a.size());
    for (int i = 0; i < a.size(); ++i)
        QCOMPARE(QJsonDocument::fromJson(b[i]).object(), QJsonDocument::fromJson(a[i]).object());
    // "-": the rows on standard output (a pipe), the summary on standard error, no file named "-".
    for (const char *target : { "-", "/dev/stdout" }) {
        r = cli({ "project", "export", "--project", project, "--output", target });
        QCOMPARE(r.exitCode, 0);
        const QList<QByteArray> c = r.out.trimmed().split('\n');
        QCOMPARE(c.size(), a.size());
        QCOMPARE(QJsonDocument::fromJson(c[0]).object(), QJsonDocument::fromJson(a[0]).object());
        QVERIFY2(r.err.contains("\"rows\":20"), r.err.constData());
    }
    QVERIFY(!QFileInfo::exists(QDir::current().filePath(QStringLiteral("-"))));

    // Unjudged CSV pairs, labeled through the hidden simulate command by two annotators.
    write(path("pairs.csv"), "prompt,completion_a,completion_b\nq1,x,yy\nq2,xx,y\nq3,x,y\n");
    QCOMPARE(cli({ "project", "import", "--project", project, "--input", path("pairs.csv") }).exitCode, 0);
    QCOMPARE(cli({ "project", "simulate", "--project", project, "--annotator", "one" }).exitCode, 0);
    QCOMPARE(
        cli({ "project", "simulate", "--project", project, "--annotator", "two" }).exitCode, 0); // k = 1: none left
    r = cli({ "project", "stats", "--project", project });
    QCOMPARE(r.exitCode, 0);
    const QJsonObject stats = QJsonDocument::fromJson(r.out).object();
    QCOMPARE(stats["counts"].toObject()["pairs"].toInt(), 23);
    QCOMPARE(stats["counts"].toObject()["judgments"].toInt(), 3);
    QCOMPARE(stats["counts"].toObject()["slots_done"].toInt(), 3);
    const QJsonObject pos = stats["position_bias"].toObject();
    QCOMPARE(pos["left_wins"].toInt() + pos["right_wins"].toInt(), 3);
    QVERIFY(stats["agreement"].toObject().contains("fleiss_kappa"));
    QVERIFY(stats["agreement"].toObject()["cohen_kappa"].isNull()); // one annotator: undefined

    r = cli(
        { "project", "export", "--project", project, "--output", path("judgments.jsonl"), "--format", "judgments" });
    QCOMPARE(r.exitCode, 0);
    QCOMPARE(QJsonDocument::fromJson(r.out).object()["rows"].toInt(), 3);
    r = cli({ "project", "export", "--project", path("missing.dpoproj"), "--output", path("x.jsonl") });
    QCOMPARE(r.exitCode, 1);
    QVERIFY(r.err.startsWith("dpo-cli: error: no project"));
}

void TestProjectCli::killDuringLabeling()
{
    QByteArray csv = "prompt,completion_a,completion_b\n";
    for (int i = 0; i < 400; ++i)
        csv += QStringLiteral("prompt %1,answer a %1,answer b %1\n").arg(i).toUtf8();
    write(path("kill.csv"), csv);
    const QString project = path("kill.dpoproj");
    QCOMPARE(cli({ "project", "import", "--project", project, "--input", path("kill.csv") }).exitCode, 0);

    QProcess p;
    p.start(QStringLiteral(DPO_CLI_PATH), { "project", "simulate", "--project", project, "--annotator", "victim" });
    QVERIFY(p.waitForStarted());
    // Read what the child reports as committed, then kill it without warning somewhere mid-stream.
    QList<qint64> judgedIds, judgedPairs;
    QByteArray pending;
    QElapsedTimer timer;
    timer.start();
    while (judgedIds.size() < 40 && timer.elapsed() < 60000 && p.state() == QProcess::Running) {
        p.waitForReadyRead(1000);
        pending += p.readAllStandardOutput();
        int nl;
        while ((nl = pending.indexOf('\n')) >= 0) {
            const QList<QByteArray> f = pending.left(nl).split(' ');
            pending.remove(0, nl + 1);
            if (f.size() == 3 && f[0] == "judged") {
                judgedPairs << f[1].toLongLong();
                judgedIds << f[2].toLongLong();
            }
        }
    }
    QVERIFY2(judgedIds.size() >= 40, "the child did not label 40 pairs in time");
    p.kill(); // SIGKILL
    QVERIFY(p.waitForFinished(10000));
    QCOMPARE(p.exitStatus(), QProcess::CrashExit);

    auto s = ProjectStore::open(project);
    const Annotator victim = s->annotator("victim", false);
    ListQuery q;
    q.annotatorId = victim.id;
    q.limit = 1000;
    const auto page = s->listJudgments(q);
    QSet<qint64> stored;
    for (const auto &row : page.rows)
        stored.insert(row.judgment.id);
    // Every verdict the child reported is in the database...
    for (qint64 id : judgedIds)
        QVERIFY2(stored.contains(id), qPrintable(QStringLiteral("judgment %1 lost").arg(id)));
    // ... and whatever it did after the last line we read is consistent: every claimed slot is either judged
    // or the single open one (the pair on screen), which the next session serves again.
    const Counts c = s->counts();
    QCOMPARE(c.judgments, page.total);
    QCOMPARE(c.labelSlotsDone, page.total);
    const Progress pr = s->progress(victim.id);
    QCOMPARE(pr.mine, page.total);
    auto next = s->nextPairFor(victim.id);
    QVERIFY(next);
    for (const auto &row : page.rows)
        QVERIFY(row.judgment.pairId != next->pairId);
    QCOMPARE(pr.available, 400 - page.total);
}

void TestProjectCli::readCommandsLeaveForeignFiles()
{
    const QString foreign = path("other-program.db");
    {
        QSqlDatabase db = QSqlDatabase::addDatabase("QSQLITE", "foreign");
        db.setDatabaseName(foreign);
        QVERIFY(db.open());
        QSqlQuery q(db);
        QVERIFY(q.exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"));
        QVERIFY(q.exec("INSERT INTO notes (body) VALUES ('keep me')"));
    }
    QSqlDatabase::removeDatabase("foreign");
    const QString empty = path("empty.dpo");
    write(empty, QByteArray());
    auto bytes = [](const QString &file) {
        QFile f(file);
        return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray("<unreadable>");
    };
    for (const QString &file : { foreign, empty }) {
        const QByteArray before = bytes(file);
        for (const QStringList &args : { QStringList { "project", "stats", "--project", file },
                 QStringList { "project", "export", "--project", file, "--output", path("never.jsonl") } }) {
            const Run r = cli(args);
            QVERIFY2(r.exitCode != 0, r.out.constData());
            QVERIFY2(r.err.contains("is not a DPO Studio project"), r.err.constData());
        }
        QCOMPARE(bytes(file), before);
        QVERIFY(!QFile::exists(file + "-wal"));
        QVERIFY(!QFile::exists(path("never.jsonl")));
    }
    const Run missing = cli({ "project", "stats", "--project", path("missing.dpo") });
    QVERIFY(missing.exitCode != 0);
    QVERIFY2(missing.err.contains("no project at"), missing.err.constData());
    QVERIFY(!QFile::exists(path("missing.dpo")));
}

void TestProjectCli::trainFromProject_data()
{
    QTest::addColumn<QString>("name");
    QTest::addColumn<QString>("evalSplit");
    QTest::addColumn<int>("trainRows");
    QTest::addColumn<int>("evalRows");
    QTest::addColumn<QStringList>("extra");
    QTest::newRow("no split") << "nosplit" << "0" << 8 << 0 << QStringList();
    QTest::newRow("eval split") << "split" << "0.25" << 6 << 2 << QStringList();
    // Rank 0 exports and records; rank 1 trains on the files rank 0 wrote (issue 16).
    QTest::newRow("two ranks") << "ranks" << "0.25" << 6 << 2 << QStringList { "--nproc", "2" };
}

// dpo-cli train --project: the project's judged pairs exported as the Train page exports them, and the run
// recorded in the project like a GUI run.
void TestProjectCli::trainFromProject()
{
    QFETCH(QString, name);
    QFETCH(QString, evalSplit);
    QFETCH(int, trainRows);
    QFETCH(int, evalRows);
    QFETCH(QStringList, extra);
    const QString data = QStringLiteral(DPO_TEST_DATA_DIR);
    const QString project = path(QStringLiteral("train_%1.dpoproj").arg(name));
    QCOMPARE(cli({ "project", "import", "--project", project, "--input", data + "/llama-gqa/pairs.jsonl", "--format",
                 "trl" })
                 .exitCode,
        0);
    const QString out = path(QStringLiteral("train_out_%1").arg(name));
    const QStringList common { "train", "--project", project, "--model", data + "/llama-gqa/ref", "--output-dir", out,
        "--max-steps", "2", "--batch-size", "2", "--save-steps", "0", "--threads", "1" };
    const Run both = cli(QStringList(common) << "--dataset" << data + "/llama-gqa/pairs.jsonl");
    QCOMPARE(both.exitCode, 1);
    QVERIFY2(both.err.contains("--project"), both.err.constData());
    QVERIFY(!QFile::exists(out)); // refused before anything was written

    const Run r = cli(QStringList(common) << "--eval-split" << evalSplit << extra);
    QVERIFY2(r.exitCode == 0, r.err.constData());
    QCOMPARE(QJsonDocument::fromJson(r.out).object().value("status").toString(), QStringLiteral("completed"));
    auto lines = [](const QString &file) {
        QFile f(file);
        return f.open(QIODevice::ReadOnly) ? int(f.readAll().count('\n')) : -1;
    };
    QCOMPARE(lines(out + "/data/train.jsonl"), trainRows);
    QCOMPARE(lines(out + "/data/eval.jsonl"), evalRows > 0 ? evalRows : -1);
    QVERIFY(!QFile::exists(out + "/.dpo-studio.lock"));

    auto store = ProjectStore::open(project, ProjectStore::OpenMode::Existing);
    const QVector<dpo::Run> runs = store->runs();
    QCOMPARE(runs.size(), 1);
    QCOMPARE(runs[0].status, QStringLiteral("finished"));
    QCOMPARE(runs[0].outputDir, out);
    QCOMPARE(runs[0].name, QFileInfo(out).fileName());
    QVERIFY(runs[0].endedAt.isValid());
    const QJsonObject last = QJsonDocument::fromJson(runs[0].lastMetricsJson.toUtf8()).object();
    QCOMPARE(last.value("step").toInt(), 2);
    QVERIFY(last.contains("loss"));
    const QJsonObject config = QJsonDocument::fromJson(runs[0].configJson.toUtf8()).object();
    QCOMPARE(config.value("dataset").toString(), out + "/data/train.jsonl");
}

DPO_TEST_MAIN(TestProjectCli)

} // namespace test_project_cli

#include "test_project_cli.moc"
