// Candidate generation (issue 4): for prompts without completions, the bundled demo model samples N
// candidates per prompt on a worker thread; they are stored with provenance, pairs between them are
// queued for labeling, a rerun finds nothing to do, the same seed gives the same texts, a cancel keeps only
// whole prompts, a missing model is a clear failure; the bookkeeping's seeds, pair plan and repeat
// handling with a scripted sampler; the Data page's dialog end to end; `dpo-cli project generate`'s JSON.
// libtorch first: Qt's `slots` macro would otherwise break its headers.
#include "engine/runtime.h"

#include "ui/data/candidateworker.h"
#include "ui/data/datapage.h"
#include "ui/data/generatecandidatesdialog.h"
#include "ui/widgets/markdownview.h"
#include "ui/widgets/pagedtablemodel.h"
#include "ui/shell/projectsession.h"

#include "project/candidates.h"

#include "project_test_util.h"

#include <QDir>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QProcess>
#include <QPushButton>
#include <QSettings>
#include <QSignalSpy>
#include <QSpinBox>
#include <QStandardPaths>
#include <QTableView>
#include <QTemporaryDir>
#include "qt_test_main.h"

#include <QTest>

#include <memory>

namespace test_candidate_generation { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

using namespace dpo;

namespace {

QString demoModel()
{
    return QDir::cleanPath(QStringLiteral(DPO_TEST_DATA_DIR "/../../resources/demo-model"));
}

// Prompts of the kind the demo model was trained on (resources/demo), so it answers rather than stopping at once.
const QStringList kPrompts { QStringLiteral("What is 3 plus 5?"), QStringLiteral("Give Frank a greeting."),
    QStringLiteral("What is 2 plus 4?") };

QString freshProject(const QTemporaryDir &dir, const QString &name, const QStringList &prompts = kPrompts)
{
    const QString path = dir.filePath(name);
    auto store = ProjectStore::open(path);
    for (const QString &p : prompts)
        store->addPrompt(p);
    return path;
}

CandidateJob smallJob(const QString &project, quint64 seed = 7, int maxNewTokens = 8)
{
    CandidateJob job;
    job.projectLocation = project;
    job.modelDir = demoModel();
    job.options.candidates = 2;
    job.options.sampling.temperature = 1.0;
    job.options.sampling.topP = 1.0;
    job.options.sampling.maxNewTokens = maxNewTokens;
    job.options.sampling.seed = seed;
    job.device = QStringLiteral("cpu");
    return job;
}

// Runs a job to its end on a CandidateRunner; fails the test on failed().
CandidateSummary runJob(const CandidateJob &job)
{
    CandidateRunner runner;
    QSignalSpy finished(&runner, &CandidateRunner::finished);
    QSignalSpy failed(&runner, &CandidateRunner::failed);
    if (!runner.start(job))
        return {};
    if (!finished.wait(120000) || !failed.isEmpty()) {
        qWarning() << "job failed:"
                   << (failed.isEmpty() ? QStringLiteral("timeout") : failed.first().first().toString());
        return { -1 };
    }
    return finished.first().first().value<CandidateSummary>();
}

// Prompt text -> candidate texts, in id order.
QMap<QString, QStringList> textsByPrompt(ProjectStore &store)
{
    QMap<QString, QStringList> out;
    ListQuery q;
    q.limit = 1000;
    for (const PromptRow &r : store.listPrompts(q).rows)
        for (const Completion &c : store.completionsOf(r.id))
            out[r.text] << c.text;
    return out;
}

} // namespace

class TestCandidateGeneration : public QObject {
    Q_OBJECT
private slots:
    void initTestCase();
    void init();
    void seedsAndPairPlan();
    void repeatedTextsAreRetriedThenKept_data();
    void repeatedTextsAreRetriedThenKept();
    void cancelInsideAPromptKeepsWholePrompts_data();
    void cancelInsideAPromptKeepsWholePrompts();
    void generatesCandidatesWithProvenance();
    void sameSeedSameTexts();
    void runnerCancelStopsEarly();
    void missingModelFails();
    void dialogFromDataPage();
    void cliGenerate();

private:
    std::unique_ptr<QTemporaryDir> m_dir;
};

void TestCandidateGeneration::initTestCase()
{
    QStandardPaths::setTestModeEnabled(true);
    QCoreApplication::setOrganizationName(QStringLiteral("DPO Studio Tests"));
    QCoreApplication::setApplicationName(QStringLiteral("test_candidate_generation"));
    dpo::initRuntime();
    QVERIFY2(QFileInfo::exists(demoModel() + QStringLiteral("/config.json")), qPrintable(demoModel()));
}

void TestCandidateGeneration::init()
{
    QSettings().clear();
    m_dir = std::make_unique<QTemporaryDir>();
    QVERIFY(m_dir->isValid());
}

void TestCandidateGeneration::seedsAndPairPlan()
{
    QCOMPARE(candidateSeed(7, 3, 1, 0), candidateSeed(7, 3, 1, 0));
    QSet<quint64> seeds;
    for (int slot = 0; slot < 4; ++slot)
        for (int attempt = 0; attempt < 4; ++attempt)
            for (qint64 prompt = 1; prompt < 5; ++prompt)
                seeds.insert(candidateSeed(7, prompt, slot, attempt));
    QCOMPARE(seeds.size(), 64); // every (prompt, slot, attempt) its own stream
    QVERIFY(candidateSeed(7, 1, 0, 0) != candidateSeed(8, 1, 0, 0));
    QVERIFY(candidateSeed(~quint64(0), 99, 15, 3) < (quint64(1) << 53));

    using P = QPair<int, int>;
    QCOMPARE(candidatePairPlan(1), QVector<P> {});
    QCOMPARE(candidatePairPlan(2), (QVector<P> { { 0, 1 } }));
    QCOMPARE(candidatePairPlan(3), (QVector<P> { { 0, 1 }, { 0, 2 }, { 1, 2 } }));
    QCOMPARE(candidatePairPlan(5), (QVector<P> { { 0, 1 }, { 1, 2 }, { 2, 3 }, { 3, 4 } }));

    CandidateOptions bad;
    bad.sampling.greedy = true;
    QVERIFY_THROWS_EXCEPTION(ProjectError, bad.validate());
    bad = {};
    bad.candidates = 1;
    QVERIFY_THROWS_EXCEPTION(ProjectError, bad.validate());
    bad = {};
    bad.sampling.topP = 0;
    QVERIFY_THROWS_EXCEPTION(ProjectError, bad.validate());
}

// The bookkeeping's SQL runs on both databases (PostgreSQL rows QSKIP without tests/pg/with_pg.sh).
static void backends()
{
    QTest::addColumn<QString>("backend");
    QTest::newRow("sqlite") << QStringLiteral("sqlite");
    QTest::newRow("postgres") << QStringLiteral("postgres");
}

void TestCandidateGeneration::repeatedTextsAreRetriedThenKept_data()
{
    backends();
}

void TestCandidateGeneration::repeatedTextsAreRetriedThenKept()
{
    QFETCH(QString, backend);
    QString location;
    DPO_FRESH_PROJECT(backend, *m_dir, location);
    auto store = ProjectStore::open(location);
    const qint64 p1 = store->addPrompt(QStringLiteral("one"));
    const qint64 p2 = store->addPrompt(QStringLiteral("two"));
    // p3 already has an imported completion: two candidates join it, and all three are paired.
    const qint64 p3 = store->addPrompt(QStringLiteral("three"));
    store->addCompletion(p3, QStringLiteral("imported answer"));
    // p4 has two imported completions already paired: the new one is paired with both, the old pair stays.
    const qint64 p4 = store->addPrompt(QStringLiteral("four"));
    const qint64 p4a = store->addCompletion(p4, QStringLiteral("P"));
    const qint64 p4b = store->addCompletion(p4, QStringLiteral("Q"));
    store->addPair(p4, p4a, p4b);
    // p5 has "A" and "B"; its candidate repeats "A" and is kept: still one pair, A-B (not a second B-A).
    const qint64 p5 = store->addPrompt(QStringLiteral("five"));
    store->addCompletion(p5, QStringLiteral("A"));
    store->addCompletion(p5, QStringLiteral("B"));
    // p6: the model only ever stops at once: skipped whole.
    const qint64 p6 = store->addPrompt(QStringLiteral("six"));

    // "one": the second sample repeats the first (with extra spaces), the retry differs.
    // "two": always the same text: kept after maxAttempts, noted, no pair between the identical texts.
    QMap<QString, QStringList> script { { QStringLiteral("one"), { "A", " A ", "B", "C" } },
        { QStringLiteral("two"), { "same", "same", "same", "same", "same", "same", "same" } },
        { QStringLiteral("three"), { "x", "y" } }, { QStringLiteral("four"), { "R" } },
        { QStringLiteral("five"), { "A", "A", "A" } }, { QStringLiteral("six"), { "", " ", "" } } };
    QVector<quint64> seedsOfOne;
    const CandidateSampler sampler = [&](const Prompt &prompt, quint64 seed) -> std::optional<QString> {
        if (prompt.text == QLatin1String("one"))
            seedsOfOne << seed;
        return script[prompt.text].takeFirst();
    };
    CandidateOptions o;
    o.candidates = 3;
    o.maxAttempts = 3;
    o.sampling.seed = 5;
    const CandidateSummary s = generateCandidates(*store, QStringLiteral("/models/fake"), o, sampler);
    for (const QStringList &left : std::as_const(script))
        QVERIFY(left.isEmpty()); // every scripted sample was drawn, no more
    QCOMPARE(s.prompts, 5);
    QCOMPARE(s.skipped, 1);
    QCOMPARE(s.generated, 3 + 3 + 2 + 1 + 1);
    // one: " A " once; two: twice for each of its 2nd and 3rd candidates; five: twice; six: twice (then skipped)
    QCOMPARE(s.retries, 1 + 4 + 2 + 2);
    QCOMPARE(s.duplicates, 2 + 1);
    QCOMPARE(s.notes.size(), 3);
    QVERIFY(s.notes[0].contains(QStringLiteral("#%1:").arg(p2)));
    QVERIFY(s.notes[1].contains(QStringLiteral("#%1:").arg(p5)));
    QVERIFY(s.notes[2].contains(QStringLiteral("#%1: skipped").arg(p6)));
    QVERIFY(store->completionsOf(p6).isEmpty());

    QStringList one;
    for (const Completion &c : store->completionsOf(p1))
        one << c.text;
    QCOMPARE(one, (QStringList { "A", "B", "C" }));
    // The retry used the next attempt's seed of the same slot.
    QCOMPARE(seedsOfOne,
        (QVector<quint64> { candidateSeed(5, p1, 0, 0), candidateSeed(5, p1, 1, 0), candidateSeed(5, p1, 1, 1),
            candidateSeed(5, p1, 2, 0) }));
    QCOMPARE(*store->completionsOf(p1)[1].provenance.seed, qint64(candidateSeed(5, p1, 1, 1)));
    QCOMPARE(store->completionsOf(p1)[1].provenance.modelPath, canonicalModelPath(QStringLiteral("/models/fake")));

    // Pairs: one 3 (all pairs), two 0 (all identical), three 3 (imported + x + y), four 2 (P-Q existed),
    // five 1 (A-B; the repeated A adds none), six 0.
    QCOMPARE(s.pairs, 3 + 0 + 3 + 2 + 1);
    ListQuery q;
    q.origin = QStringLiteral("generated");
    q.limit = 100;
    QCOMPARE(store->listPairs(q).total, 9);
    QMap<qint64, int> perPrompt;
    for (const PairRow &r : store->listPairs(q).rows) {
        ++perPrompt[r.promptId];
        QVERIFY(r.textA.trimmed() != r.textB.trimmed());
    }
    QCOMPARE(perPrompt, (QMap<qint64, int> { { p1, 3 }, { p3, 3 }, { p4, 2 }, { p5, 1 } }));
    for (const SanityIssue &i : store->sanityChecks())
        QVERIFY2(
            i.type != SanityIssue::DuplicatePair && i.type != SanityIssue::ChosenEqualsRejected, qPrintable(i.detail));

    // Nothing left to do but the skipped prompt, which is tried again (and skipped again).
    const CandidateSummary again = generateCandidates(
        *store, QStringLiteral("/models/fake"), o, [](const Prompt &prompt, quint64) -> std::optional<QString> {
            if (prompt.text == QLatin1String("six"))
                return QString();
            throw Error("only the skipped prompt may be sampled");
        });
    QCOMPARE(again.generated, 0);
    QCOMPARE(again.prompts, 0);
    QCOMPARE(again.skipped, 1);
    QCOMPARE(candidateBacklog(*store, 3).prompts, 1);
    QCOMPARE(candidateBacklog(*store, 4).candidates, 5 + 4); // one more for each filled prompt, four for six
    QCOMPARE(candidateBacklog(*store, 4, 2).prompts, 2);
}

void TestCandidateGeneration::cancelInsideAPromptKeepsWholePrompts_data()
{
    backends();
}

void TestCandidateGeneration::cancelInsideAPromptKeepsWholePrompts()
{
    QFETCH(QString, backend);
    QString location;
    DPO_FRESH_PROJECT(backend, *m_dir, location);
    auto store = ProjectStore::open(location);
    for (int i = 0; i < 4; ++i)
        store->addPrompt(QStringLiteral("prompt %1").arg(i));
    std::atomic<bool> cancel { false };
    int calls = 0;
    // The user cancels during the fourth sample (the second candidate of the second prompt).
    const CandidateSampler sampler = [&](const Prompt &, quint64 seed) -> std::optional<QString> {
        if (++calls == 4) {
            cancel.store(true);
            return std::nullopt;
        }
        return QString::number(seed);
    };
    const CandidateSummary s = generateCandidates(*store, QStringLiteral("/m"), CandidateOptions {}, sampler, &cancel);
    QVERIFY(s.cancelled);
    QCOMPARE(s.prompts, 1);
    QCOMPARE(s.generated, 2);
    QCOMPARE(store->counts().completions, 2);
    QCOMPARE(store->counts().pairs, 1);
    QCOMPARE(candidateBacklog(*store, 2).prompts, 3);
}

void TestCandidateGeneration::generatesCandidatesWithProvenance()
{
    const QString project = freshProject(*m_dir, QStringLiteral("gen.dpoproj"));
    const CandidateJob job = smallJob(project);
    const CandidateSummary s = runJob(job);
    QCOMPARE(s.prompts, 3);
    QCOMPARE(s.generated, 6);
    QCOMPARE(s.pairs, 3 - s.notes.size()); // a pair per prompt unless its two texts stayed identical
    QVERIFY(!s.cancelled);
    QVERIFY(s.seconds > 0);

    auto store = ProjectStore::open(project);
    const QString modelPath = canonicalModelPath(demoModel());
    for (const Prompt &p : store->promptsNeedingCompletions(100)) {
        const QVector<Completion> cs = store->completionsOf(p.id);
        QCOMPARE(cs.size(), 2);
        for (int j = 0; j < 2; ++j) {
            const Provenance &pv = cs[j].provenance;
            QCOMPARE(pv.source, QStringLiteral("generated"));
            QCOMPARE(pv.modelPath, modelPath);
            QVERIFY(pv.seed.has_value());
            bool known = false;
            for (int a = 0; a < job.options.maxAttempts; ++a)
                known = known || *pv.seed == qint64(candidateSeed(7, p.id, j, a));
            QVERIFY2(known, "the seed is the candidate's derived seed");
            const QJsonObject sampling = QJsonDocument::fromJson(pv.samplingJson.toUtf8()).object();
            QCOMPARE(sampling.value("greedy").toBool(true), false);
            QCOMPARE(sampling.value("temperature").toDouble(), 1.0);
            QCOMPARE(sampling.value("max_new_tokens").toInt(), 8);
            QCOMPARE(sampling.value("top_p").toDouble(), 1.0);
        }
    }
    QCOMPARE(store->counts().completions, 6);
    ListQuery q;
    q.origin = QStringLiteral("generated");
    QCOMPARE(store->listPairs(q).total, qint64(s.pairs));
    const Annotator ann = store->annotator(QStringLiteral("alice"));
    const std::optional<ShownPair> shown = store->nextPairFor(ann.id);
    QVERIFY(shown.has_value());
    QCOMPARE(shown->left.provenance.source, QStringLiteral("generated"));
    QVERIFY(shown->left.text != shown->right.text);

    // Rerun: every prompt is complete, nothing new.
    const CandidateSummary again = runJob(job);
    QCOMPARE(again.prompts, 0);
    QCOMPARE(again.generated, 0);
    QCOMPARE(again.pairs, 0);
    QCOMPARE(store->counts().completions, 6);
}

void TestCandidateGeneration::sameSeedSameTexts()
{
    const QString a = freshProject(*m_dir, QStringLiteral("a.dpoproj"));
    const QString b = freshProject(*m_dir, QStringLiteral("b.dpoproj"));
    QCOMPARE(runJob(smallJob(a, 11)).generated, 6);
    QCOMPARE(runJob(smallJob(b, 11)).generated, 6);
    auto sa = ProjectStore::open(a);
    auto sb = ProjectStore::open(b);
    const auto ta = textsByPrompt(*sa);
    QCOMPARE(ta.size(), 3);
    QCOMPARE(textsByPrompt(*sb), ta);
}

void TestCandidateGeneration::runnerCancelStopsEarly()
{
    QStringList prompts;
    for (int i = 0; i < 12; ++i)
        prompts << (i % 2 ? QStringLiteral("Give person %1 a greeting.").arg(i)
                          : QStringLiteral("What is %1 plus 7?").arg(i));
    const QString project = freshProject(*m_dir, QStringLiteral("cancel.dpoproj"), prompts);
    CandidateJob job = smallJob(project, 3, 48);
    CandidateRunner runner;
    QSignalSpy finished(&runner, &CandidateRunner::finished);
    QSignalSpy failed(&runner, &CandidateRunner::failed);
    // Cancel as soon as the first prompt is written: the worker is then inside the second or a later one.
    connect(&runner, &CandidateRunner::progress, &runner, [&runner](qint64 done, qint64, const QString &) {
        if (done >= 2)
            runner.cancel();
    });
    QVERIFY(runner.start(job));
    QVERIFY(!runner.start(job)); // one job at a time
    QVERIFY(finished.wait(120000));
    QVERIFY(failed.isEmpty());
    const auto s = finished.first().first().value<CandidateSummary>();
    QVERIFY(s.cancelled);
    QVERIFY2(s.prompts < 12, "the cancel stopped the job early");
    QVERIFY(!runner.isRunning());
    auto store = ProjectStore::open(project);
    int complete = 0;
    ListQuery q;
    q.limit = 100;
    for (const PromptRow &r : store->listPrompts(q).rows) {
        QVERIFY2(r.completions == 0 || r.completions == 2, "never half a prompt");
        complete += r.completions == 2 ? 1 : 0;
    }
    QCOMPARE(complete, s.prompts);
    QCOMPARE(store->counts().completions, qint64(s.generated));
}

void TestCandidateGeneration::missingModelFails()
{
    const QString project = freshProject(*m_dir, QStringLiteral("missing.dpoproj"));
    CandidateJob job = smallJob(project);
    job.modelDir = m_dir->filePath(QStringLiteral("no-such-model"));
    CandidateRunner runner;
    QSignalSpy finished(&runner, &CandidateRunner::finished);
    QSignalSpy failed(&runner, &CandidateRunner::failed);
    QVERIFY(runner.start(job));
    QVERIFY(failed.wait(30000));
    QVERIFY(finished.isEmpty());
    const QString message = failed.first().first().toString();
    QVERIFY2(message.contains(QStringLiteral("model directory not found")) && message.contains(job.modelDir),
        qPrintable(message));
    QVERIFY(!runner.isRunning());
    // A directory without config.json is named as such.
    QDir().mkpath(job.modelDir);
    QVERIFY(runner.start(job));
    QVERIFY(failed.wait(30000));
    QVERIFY2(failed.last().first().toString().contains(QStringLiteral("no config.json")),
        qPrintable(failed.last().first().toString()));
    QCOMPARE(ProjectStore::open(project)->counts().completions, 0);
}

void TestCandidateGeneration::dialogFromDataPage()
{
    const QString project = freshProject(*m_dir, QStringLiteral("dialog.dpoproj"));
    ProjectSession session(ProjectStore::open(project));
    DataPage page;
    page.resize(1100, 650);
    QVERIFY(!page.findChild<QPushButton *>(QStringLiteral("dataGenerate"))->isEnabled());
    QVERIFY(!page.openGenerateDialog());
    page.setProject(&session);
    page.setView(DataPage::Prompts);
    page.show();
    QVERIFY(QTest::qWaitForWindowExposed(&page));
    auto *button = page.findChild<QPushButton *>(QStringLiteral("dataGenerate"));
    QVERIFY(button->isEnabled());
    button->click();
    GenerateCandidatesDialog *dlg = page.findChild<GenerateCandidatesDialog *>();
    QVERIFY(dlg);
    QVERIFY(dlg->isVisible());
    // The bundled demo model is the default.
    QCOMPARE(QFileInfo(dlg->modelDir()).canonicalFilePath(), QFileInfo(demoModel()).canonicalFilePath());
    QTRY_VERIFY(dlg->backlogText().contains(QStringLiteral("3 prompt(s)")));
    QVERIFY2(dlg->backlogText().contains(QStringLiteral("6 candidate(s)")), qPrintable(dlg->backlogText()));
    dlg->findChild<QSpinBox *>(QStringLiteral("candidateMaxNewTokens"))->setValue(8);
    dlg->findChild<QSpinBox *>(QStringLiteral("candidateSeed"))->setValue(3);

    QSignalSpy done(dlg, &GenerateCandidatesDialog::generationFinished);
    QSignalSpy changed(&session, &ProjectSession::contentChanged);
    // Connected after the dialog's own handler: sees the status line the dialog just wrote.
    QStringList statusLines;
    auto *status = dlg->findChild<QLabel *>(QStringLiteral("candidateStatus"));
    const QString shots = qEnvironmentVariable("DPO_SCREENSHOT_DIR", m_dir->path());
    connect(dlg->runner(), &CandidateRunner::progress, this, [&](qint64 done, qint64, const QString &) {
        statusLines << status->text();
        if (done == 3) // mid-run, with an ETA (a picture for people)
            dlg->grab().save(shots + QStringLiteral("/generate_candidates_running.png"));
    });
    dlg->findChild<QPushButton *>(QStringLiteral("candidateStart"))->click();
    QVERIFY(dlg->runner()->isRunning());
    QVERIFY(dlg->findChild<QPushButton *>(QStringLiteral("candidateCancel"))->isEnabled());
    QVERIFY(done.wait(120000));
    QCOMPARE(changed.count(), 1);
    // Once a candidate's time is known, the status line counts down (the model's loading is not in the rate).
    QVERIFY2(statusLines.filter(QStringLiteral("of 6 candidates, about")).size() >= 1,
        qPrintable(statusLines.join(QLatin1Char('\n'))));
    QVERIFY2(dlg->resultText().contains(QStringLiteral("Generated 6 completion(s) for 3 prompt(s)")),
        qPrintable(dlg->resultText()));
    QVERIFY2(dlg->resultText().contains(QStringLiteral("queued for labeling")), qPrintable(dlg->resultText()));
    QTRY_VERIFY(dlg->backlogText().contains(QStringLiteral("nothing to generate")));
    QVERIFY(!dlg->findChild<QPushButton *>(QStringLiteral("candidateStart"))->isEnabled());
    // The page refreshed: the prompts table shows two completions each.
    QTRY_COMPARE(page.model()->rowCount(), 3);
    QTRY_COMPARE(page.model()->index(0, 2).data().toLongLong(), 2);
    // A prompt's detail shows its candidates with where they came from.
    page.findChild<QTableView *>(QStringLiteral("dataTable"))->selectRow(0);
    auto *detail = page.findChild<MarkdownView *>(QStringLiteral("dataDetail"));
    QVERIFY(detail);
    QTRY_VERIFY2(detail->toPlainText().contains(QStringLiteral("Completion 2 — generated, demo-model, seed ")),
        qPrintable(detail->toPlainText()));

    // Pictures for people to look at (DPO_SCREENSHOT_DIR=folder), else into the test's temp folder.
    QVERIFY(dlg->grab().save(shots + QStringLiteral("/generate_candidates_dialog.png")));
    QVERIFY(page.grab().save(shots + QStringLiteral("/generate_candidates_datapage.png")));

    dlg->reject();
    QTRY_VERIFY(!page.findChild<GenerateCandidatesDialog *>());
}

void TestCandidateGeneration::cliGenerate()
{
    const QString project = freshProject(*m_dir, QStringLiteral("cli.dpoproj"));
    auto cli = [](const QStringList &args) {
        QProcess p;
        p.start(QStringLiteral(DPO_CLI_PATH), args);
        p.waitForFinished(120000);
        return std::make_tuple(p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1, p.readAllStandardOutput(),
            p.readAllStandardError());
    };
    const QStringList args { "project", "generate", "--project", project, "--model", demoModel(), "--candidates", "3",
        "--max-new-tokens", "8", "--temperature", "1.0", "--seed", "9", "--device", "cpu", "--limit", "2" };
    auto [code, out, err] = cli(args);
    QVERIFY2(code == 0, err.constData());
    const QJsonObject j = QJsonDocument::fromJson(out).object();
    QCOMPARE(j.value("prompts").toInt(), 2);
    QCOMPARE(j.value("generated").toInt(), 6);
    // Three completions per prompt: all three pairs, unless a candidate stayed identical to another.
    const int pairs = j.value("pairs").toInt();
    QVERIFY(pairs <= 6 && pairs >= 6 - 3 * int(j.value("notes").toArray().size()));
    QVERIFY(j.value("seconds").toDouble() > 0);
    auto store = ProjectStore::open(project);
    QCOMPARE(store->counts().completions, 6);
    QCOMPARE(candidateBacklog(*store, 3).prompts, 1); // --limit 2 left the third prompt
    QCOMPARE(store->counts().pairs, qint64(pairs));
    store.reset();

    // The rest, then nothing.
    auto [code2, out2, err2] = cli(args);
    QVERIFY2(code2 == 0, err2.constData());
    QCOMPARE(QJsonDocument::fromJson(out2).object().value("generated").toInt(), 3);
    auto [code3, out3, err3] = cli(args);
    QVERIFY2(code3 == 0, err3.constData());
    QCOMPARE(QJsonDocument::fromJson(out3).object().value("generated").toInt(), 0);

    // Bad input: a clear error, non-zero exit.
    auto [code4, out4, err4]
        = cli({ "project", "generate", "--project", project, "--model", demoModel(), "--temperature", "0" });
    QCOMPARE(code4, 1);
    QVERIFY2(err4.contains("temperature must be > 0"), err4.constData());
    auto [code5, out5, err5]
        = cli({ "project", "generate", "--project", m_dir->filePath("nope.dpoproj"), "--model", demoModel() });
    QCOMPARE(code5, 1);
    QVERIFY2(err5.contains("no project at"), err5.constData());
}

DPO_TEST_MAIN(TestCandidateGeneration)

} // namespace test_candidate_generation

#include "test_candidate_generation.moc"
