// EvaluatePage in the real MainWindow (offscreen) over a real SQLite project:
//   blindFlow            generation served from the cache (the model directories hold no weights at all),
//                        eval pairs judged on the Label page in eval mode with no model identity on screen
//                        and no results shown until the session ends; sides randomized and recorded; verdicts
//                        stored as kind 'eval' and left out of the TRL export; results and report after the end.
//   generationCaching    two tiny fixture models (llama-gqa ref/other), 8 new tokens: the first request
//                        generates one completion per model and prompt with full provenance, the second
//                        generates nothing.
//   cancelWithinASecond  cancel during generation: the job ends within a second, nothing cut off is stored.
//   scoringMatchesFixture implicit-reward accuracy and log-prob shifts of a run's checkpoint on held-out pairs
//                        equal the fixture's reference numbers (policy = other, reference = ref).
// libtorch first: Qt's `slots` macro would otherwise break its headers.
#include "engine/runtime.h"

#include "engine/evaluation/statistics.h"
#include "project/evaluation.h"
#include "project/project_store.h"
#include "ui/evaluate/evaluatepage.h"
#include "ui/label/labelpage.h"
#include "ui/shell/mainwindow.h"

#include <QDateTime>
#include <QDir>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QProgressBar>
#include <QSettings>
#include <QStandardPaths>
#include <QTableWidget>
#include <QTemporaryDir>
#include <QTextEdit>
#include "qt_test_main.h"

#include <QtTest>

#include <cmath>

namespace test_evaluate_page { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

using namespace dpo;

namespace {

QString fixture(const QString &rel)
{
    return QDir(QStringLiteral(DPO_TEST_DATA_DIR)).filePath(rel);
}

QJsonObject readJson(const QString &path)
{
    QFile f(path);
    f.open(QIODevice::ReadOnly);
    return QJsonDocument::fromJson(f.readAll()).object();
}

void writeLines(const QString &path, const QStringList &lines)
{
    QFile f(path);
    QVERIFY(f.open(QIODevice::WriteOnly));
    f.write(lines.join(QLatin1Char('\n')).toUtf8());
}

QString promptLine(const QString &text)
{
    return QString::fromUtf8(
        QJsonDocument(QJsonObject { { QStringLiteral("prompt"), text } }).toJson(QJsonDocument::Compact));
}

EvaluatePage *evaluatePage(MainWindow &w)
{
    for (int i = 0; i < w.pageCount(); ++i)
        if (auto *p = qobject_cast<EvaluatePage *>(w.page(i)))
            return p;
    return nullptr;
}

int labelIndex(MainWindow &w)
{
    for (int i = 0; i < w.pageCount(); ++i)
        if (w.page(i) == w.labelPage())
            return i;
    return -1;
}

// Everything the Label page shows as text: labels, buttons' text is fixed, the three Markdown views.
QString visibleText(QWidget *page)
{
    QStringList parts;
    for (QLabel *l : page->findChildren<QLabel *>())
        parts << l->text() << l->toolTip();
    for (QTextEdit *t : page->findChildren<QTextEdit *>())
        parts << t->toPlainText();
    return parts.join(QLatin1Char('\n'));
}

bool waitFor(QSignalSpy &spy, int ms)
{
    return spy.count() > 0 || spy.wait(ms);
}

} // namespace

class TestEvaluatePage : public QObject {
    Q_OBJECT
private slots:
    void initTestCase();
    void init();
    void cleanup();
    void blindFlow();
    void generationCaching();
    void cancelWithinASecond();
    void scoringMatchesFixture();
    void loraRunAdaptersAreListedAndScored();

private:
    std::unique_ptr<QTemporaryDir> m_dir;
};

void TestEvaluatePage::initTestCase()
{
    QStandardPaths::setTestModeEnabled(true);
    QCoreApplication::setOrganizationName(QStringLiteral("DPO Studio Tests"));
    QCoreApplication::setApplicationName(QStringLiteral("test_evaluate_page"));
    dpo::initRuntime();
}

void TestEvaluatePage::init()
{
    QSettings().clear();
    m_dir = std::make_unique<QTemporaryDir>();
    QVERIFY(m_dir->isValid());
}

void TestEvaluatePage::cleanup()
{
    m_dir.reset();
}

void TestEvaluatePage::blindFlow()
{
    // Three "models" that are only directories with a config.json: everything they need is cached, so the
    // generation job must never load them.
    const QStringList names { QStringLiteral("alphamodel"), QStringLiteral("betamodel"), QStringLiteral("gammamodel") };
    QVector<EvalModel> models;
    for (const QString &n : names) {
        const QString dir = m_dir->filePath(n);
        QVERIFY(QDir().mkpath(dir));
        writeLines(QDir(dir).filePath(QStringLiteral("config.json")), { QStringLiteral("{}") });
        models.push_back({ n, canonicalModelPath(dir), QString() });
    }
    SamplingSettings sampling;
    sampling.greedy = false;
    sampling.temperature = 0.8;
    sampling.topP = 0.9;
    sampling.maxNewTokens = 16;
    sampling.seed = 7;

    const QString path = m_dir->filePath(QStringLiteral("p.dpo"));
    QStringList promptTexts, promptLines;
    {
        auto store = ProjectStore::open(path);
        for (int p = 0; p < 8; ++p) {
            const QString text = QStringLiteral("Question %1: name a colour.").arg(p);
            promptTexts << text;
            promptLines << promptLine(text);
            const qint64 pid = store->addPrompt(text);
            for (int i = 0; i < models.size(); ++i)
                store->addCompletion(pid, QStringLiteral("Answer %1 to question %2.").arg(QChar('A' + i)).arg(p),
                    evalProvenance(models[i], sampling, pid));
        }
        // One label pair, judged: the TRL export must contain exactly it.
        const qint64 lp = store->addPrompt(QStringLiteral("label prompt"));
        store->addPair(lp, store->addCompletion(lp, QStringLiteral("label chosen")),
            store->addCompletion(lp, QStringLiteral("label rejected")));
        const qint64 bob = store->annotator(QStringLiteral("bob")).id;
        auto shown = store->nextPairFor(bob);
        QVERIFY(shown);
        store->recordVerdict(bob, *shown, shown->leftIsA ? Verdict::Left : Verdict::Right);
    }
    const QString promptsFile = m_dir->filePath(QStringLiteral("prompts.jsonl"));
    writeLines(promptsFile, promptLines);

    MainWindow w;
    w.resize(1280, 860);
    w.labelPage()->setAnnotatorName(QStringLiteral("alice"));
    w.show();
    QVERIFY(QTest::qWaitForWindowExposed(&w));
    QVERIFY(w.openProject(path));
    EvaluatePage *page = evaluatePage(w);
    QVERIFY(page);
    ProjectStore &store = w.session()->store();

    for (const EvalModel &m : models)
        QVERIFY(page->addModelDirectory(m.path));
    QCOMPARE(page->selectedModels().size(), 3);
    page->setSampling(sampling);
    page->setPromptFile(promptsFile);
    QCOMPARE(page->sampling().toJson(), sampling.toJson());

    QSignalSpy generated(page, &EvaluatePage::generationFinished);
    QSignalSpy failed(page, &EvaluatePage::jobFailed);
    QString err;
    QVERIFY2(page->startGeneration(&err), qPrintable(err));
    QVERIFY(generated.wait(10000));
    QCOMPARE(failed.count(), 0);
    const GenerationSummary sum = page->lastGeneration();
    QCOMPARE(sum.generated, 0);
    QCOMPARE(sum.cached, 3 * 8);
    QCOMPARE(sum.promptIds.size(), 8);
    QVERIFY(!sum.cancelled);

    // Nothing to see before a session.
    QVERIFY(!page->resultsVisible());

    QVERIFY2(page->startBlindSession(&err), qPrintable(err));
    QCOMPARE(page->session().state, EvalSession::State::Judging);
    QCOMPARE(w.labelPage()->judgmentKind(), JudgmentKind::Eval);
    QCOMPARE(w.currentPage(), labelIndex(w));
    QCOMPARE(store.counts().pairs, 1 + 8 * 3);

    auto *modelTable = page->findChild<QTableWidget *>(QStringLiteral("evalModelTable"));
    auto *promptTable = page->findChild<QTableWidget *>(QStringLiteral("evalPromptTable"));
    QVERIFY(modelTable && promptTable);
    QSet<bool> sides;
    int judged = 0;
    while (w.labelPage()->currentPair()) {
        const ShownPair shown = *w.labelPage()->currentPair();
        QCOMPARE(shown.kind, JudgmentKind::Eval);
        // Blind: no model name or directory anywhere on the Label page.
        const QString text = visibleText(w.labelPage());
        QVERIFY(text.contains(shown.left.text));
        for (const EvalModel &m : models) {
            QVERIFY2(!text.contains(m.name), qPrintable(m.name));
            QVERIFY(!text.contains(m.path));
        }
        QVERIFY(text.contains(QLatin1String("identities hidden")));
        // Results stay hidden while judging.
        QVERIFY(!page->resultsVisible());
        QCOMPARE(modelTable->rowCount(), 0);
        QCOMPARE(promptTable->rowCount(), 0);
        QVERIFY(page->results().rows.isEmpty());
        sides.insert(shown.leftIsA);
        QVERIFY(w.labelPage()->decide(Verdict::Left, Strength::Unspecified));
        ++judged;
        // Recorded as judged: the side order the annotator saw and the winner relative to the pair.
        const QVector<Judgment> js = store.judgmentsOfPair(shown.pairId);
        QCOMPARE(js.size(), 1);
        const Judgment &j = js[0];
        QCOMPARE(j.kind, JudgmentKind::Eval);
        QCOMPARE(j.leftIsA, shown.leftIsA);
        QCOMPARE(j.leftCompletionId, shown.left.id);
        QCOMPARE(j.winner, shown.leftIsA ? Winner::A : Winner::B);
        QVERIFY(judged <= 24);
    }
    QCOMPARE(judged, 24);
    QCOMPARE(sides.size(), 2); // randomized: both orders occur (all 24 alike has probability 2^-23)
    QVERIFY(visibleText(w.labelPage()).contains(QLatin1String("End the session on the Evaluate page")));
    QCOMPARE(store.counts().evalJudgments, 24);

    // The report would name the models: refused while the session is open.
    QVERIFY(!page->exportReport(m_dir->filePath(QStringLiteral("early.html")), &err));
    QVERIFY(!QFile::exists(m_dir->filePath(QStringLiteral("early.html"))));

    // Eval verdicts never reach the training export.
    ExportOptions eo;
    const QString trl = m_dir->filePath(QStringLiteral("train.jsonl"));
    QCOMPARE(exportFile(store, trl, eo).rows, 1);
    QFile tf(trl);
    QVERIFY(tf.open(QIODevice::ReadOnly));
    const QString exported = QString::fromUtf8(tf.readAll());
    QVERIFY(exported.contains(QLatin1String("label chosen")));
    QVERIFY(!exported.contains(QLatin1String("Answer ")));

    // End of the session: identities and results appear; the Label page goes back to labeling.
    QSignalSpy updated(page, &EvaluatePage::resultsUpdated);
    for (int i = 0; i < w.pageCount(); ++i)
        if (w.page(i) == page)
            w.setCurrentPage(i);
    page->endSession();
    QCOMPARE(w.labelPage()->judgmentKind(), JudgmentKind::Label);
    QVERIFY(page->resultsVisible());
    QVERIFY(waitFor(updated, 10000));
    const EvaluationResults &r = page->results();
    QVERIFY2(r.hasRatings, qPrintable(r.ratingsError));
    QCOMPARE(int(r.battles.size()), 24);
    QCOMPARE(r.models, names);
    QCOMPARE(modelTable->rowCount(), 3);
    QCOMPARE(promptTable->rowCount(), 24);
    // The page's numbers are computeRatings' on the same battles.
    RatingsOptions opt;
    opt.baseline = 0;
    opt.bootstrap = 1000;
    opt.seed = 0;
    const RatingsReport expected = computeRatings(3, r.battles, opt);
    for (int i = 0; i < 3; ++i) {
        QCOMPARE(r.ratings.models[size_t(i)].rating, expected.models[size_t(i)].rating);
        QCOMPARE(r.ratings.models[size_t(i)].ratingLow, expected.models[size_t(i)].ratingLow);
        QCOMPARE(r.ratings.models[size_t(i)].ratingHigh, expected.models[size_t(i)].ratingHigh);
    }
    QString shown;
    for (int row = 0; row < modelTable->rowCount(); ++row)
        shown += modelTable->item(row, 0)->text() + QLatin1Char('\n');
    for (const QString &n : names)
        QVERIFY(shown.contains(n));
    // A different baseline recomputes.
    updated.clear();
    page->setBaseline(2);
    QVERIFY(waitFor(updated, 10000));
    QCOMPARE(page->results().baseline, 2);
    QCOMPARE(page->results().ratings.models[2].rating, 1000.0);

    // Report.
    const QString html = m_dir->filePath(QStringLiteral("report.html"));
    QVERIFY2(page->exportReport(html, &err), qPrintable(err));
    QFile hf(html);
    QVERIFY(hf.open(QIODevice::ReadOnly));
    const QString report = QString::fromUtf8(hf.readAll());
    QVERIFY(report.contains(QLatin1String("data:image/png;base64,")));
    QVERIFY(report.contains(QLatin1String("<table id=\"models\">")));
    QVERIFY(report.contains(QLatin1String("<table id=\"prompts\">")));
    QVERIFY(QFile::exists(m_dir->filePath(QStringLiteral("report.csv"))));
    QVERIFY(QFile::exists(m_dir->filePath(QStringLiteral("report-judgments.csv"))));

    // Visual checks: DPO_EVAL_KEEP_PROJECT=DIR keeps a copy of this project (open it with dpo-studio) and report.
    const QString keep = qEnvironmentVariable("DPO_EVAL_KEEP_PROJECT");
    if (!keep.isEmpty()) {
        QDir().mkpath(keep);
        QFile::remove(QDir(keep).filePath(QStringLiteral("report.html")));
        QVERIFY(QFile::copy(html, QDir(keep).filePath(QStringLiteral("report.html"))));
        for (const QString &suffix : { QString(), QStringLiteral("-wal") }) { // WAL mode: the log holds recent commits
            const QString to = QDir(keep).filePath(QStringLiteral("eval-demo.dpo") + suffix);
            QFile::remove(to);
            if (QFile::exists(path + suffix))
                QVERIFY(QFile::copy(path + suffix, to));
        }
    }
}

void TestEvaluatePage::generationCaching()
{
    const QString path = m_dir->filePath(QStringLiteral("g.dpo"));
    ProjectStore::open(path).reset();
    const QString promptsFile = m_dir->filePath(QStringLiteral("prompts.jsonl"));
    writeLines(promptsFile,
        { promptLine(QStringLiteral("What is 3 plus 4?")), promptLine(QStringLiteral("Describe a golden violin.")),
            promptLine(QStringLiteral("What is 3 plus 4?")) }); // duplicate: one prompt

    MainWindow w;
    QVERIFY(w.openProject(path));
    EvaluatePage *page = evaluatePage(w);
    QVERIFY(page);
    const QString ref = canonicalModelPath(fixture(QStringLiteral("llama-gqa/ref")));
    // "other" is a copy, so the test can replace its weights.
    const QString otherCopy = m_dir->filePath(QStringLiteral("other"));
    QVERIFY(QDir().mkpath(otherCopy));
    for (const QString &f : QDir(fixture(QStringLiteral("llama-gqa/other"))).entryList(QDir::Files))
        QVERIFY(QFile::copy(fixture(QStringLiteral("llama-gqa/other/") + f), QDir(otherCopy).filePath(f)));
    const QString other = canonicalModelPath(otherCopy);
    QVERIFY(page->addModelDirectory(ref));
    QVERIFY(page->addModelDirectory(other));
    SamplingSettings s;
    s.greedy = true;
    s.maxNewTokens = 8;
    s.seed = 3;
    page->setSampling(s);
    page->setPromptFile(promptsFile);

    QSignalSpy done(page, &EvaluatePage::generationFinished);
    QSignalSpy failed(page, &EvaluatePage::jobFailed);
    QString err;
    QVERIFY2(page->startGeneration(&err), qPrintable(err));
    QVERIFY(page->isBusy());
    QVERIFY(!page->startGeneration(&err)); // one job at a time
    QVERIFY(done.wait(60000));
    QVERIFY2(failed.isEmpty(), failed.isEmpty() ? "" : qPrintable(failed.first().first().toString()));
    GenerationSummary first = page->lastGeneration();
    QCOMPARE(first.promptIds.size(), 2);
    QCOMPARE(first.generated, 4);
    QCOMPARE(first.cached, 0);

    ProjectStore &store = w.session()->store();
    const qint64 completions = store.counts().completions;
    QCOMPARE(completions, 4);
    for (qint64 pid : first.promptIds) {
        const QVector<Completion> cs = store.completionsOf(pid);
        QCOMPARE(cs.size(), 2);
        QSet<QString> paths;
        for (const Completion &c : cs) {
            QCOMPARE(c.provenance.source, QStringLiteral("generated"));
            QCOMPARE(c.provenance.samplingJson, s.toJson());
            QVERIFY(c.provenance.seed.has_value());
            QCOMPARE(*c.provenance.seed, qint64(3) + pid); // the same seed for both models
            QVERIFY(!c.text.isEmpty());
            paths.insert(c.provenance.modelPath);
        }
        QCOMPARE(paths, (QSet<QString> { ref, other }));
    }

    // Second request: everything is cached, nothing generated, no new rows.
    done.clear();
    QVERIFY2(page->startGeneration(&err), qPrintable(err));
    QVERIFY(done.wait(60000));
    const GenerationSummary second = page->lastGeneration();
    QCOMPARE(second.generated, 0);
    QCOMPARE(second.cached, 4);
    QCOMPARE(second.promptIds, first.promptIds);
    QCOMPARE(store.counts().completions, completions);

    // New weights in the same directory (a run retrained into it): its outputs are generated again, the
    // other model's stay cached.
    const QString weights = QDir(other).filePath(QStringLiteral("model.safetensors"));
    const QString fingerprintBefore = modelFingerprint(other);
    QVERIFY(QFile::remove(weights));
    QVERIFY(QFile::copy(fixture(QStringLiteral("llama-gqa/ref/model.safetensors")), weights));
    {
        QFile f(weights);
        QVERIFY(f.open(QIODevice::ReadWrite));
        QVERIFY(f.setFileTime(QDateTime::currentDateTime().addSecs(5), QFileDevice::FileModificationTime));
    }
    QVERIFY(modelFingerprint(other) != fingerprintBefore);
    done.clear();
    QVERIFY2(page->startGeneration(&err), qPrintable(err));
    QVERIFY(done.wait(60000));
    QCOMPARE(page->lastGeneration().generated, 2);
    QCOMPARE(page->lastGeneration().cached, 2);
    QCOMPARE(store.counts().completions, completions + 2);
    for (qint64 pid : first.promptIds)
        for (const Completion &c : store.completionsOf(pid))
            if (c.provenance.modelPath == other && c.id > 4)
                QCOMPARE(c.provenance.modelFingerprint, modelFingerprint(other));

    // Other settings are another cache entry.
    s.maxNewTokens = 4;
    page->setSampling(s);
    done.clear();
    QVERIFY(page->startGeneration(&err));
    QVERIFY(done.wait(60000));
    QCOMPARE(page->lastGeneration().generated, 4);
    QCOMPARE(store.counts().completions, completions + 2 + 4);
}

void TestEvaluatePage::cancelWithinASecond()
{
    const QString path = m_dir->filePath(QStringLiteral("c.dpo"));
    ProjectStore::open(path).reset();
    QStringList lines;
    for (int i = 0; i < 60; ++i)
        lines << promptLine(QStringLiteral("Tell a long story about the number %1.").arg(i));
    const QString promptsFile = m_dir->filePath(QStringLiteral("prompts.jsonl"));
    writeLines(promptsFile, lines);

    MainWindow w;
    QVERIFY(w.openProject(path));
    EvaluatePage *page = evaluatePage(w);
    QVERIFY(page->addModelDirectory(fixture(QStringLiteral("llama-gqa/ref"))));
    QVERIFY(page->addModelDirectory(fixture(QStringLiteral("llama-gqa/other"))));
    SamplingSettings s;
    s.greedy = true;
    s.maxNewTokens = 200;
    page->setSampling(s);
    page->setPromptFile(promptsFile);
    auto *bar = page->findChild<QProgressBar *>();
    QVERIFY(bar);
    QSignalSpy done(page, &EvaluatePage::generationFinished);
    QVERIFY(page->startGeneration());
    QTRY_VERIFY_WITH_TIMEOUT(bar->value() >= 1 || !done.isEmpty(), 60000);
    QVERIFY2(done.isEmpty(), "generation finished before it could be cancelled");
    QElapsedTimer t;
    t.start();
    page->cancel();
    QVERIFY(done.wait(5000));
    const qint64 ms = t.elapsed();
    QVERIFY2(ms < 1000, qPrintable(QStringLiteral("cancel took %1 ms").arg(ms)));
    const GenerationSummary sum = page->lastGeneration();
    qInfo("cancelled after %d of 120 completions; the job ended %lld ms after cancel()", sum.generated, ms);
    QVERIFY(sum.cancelled);
    QVERIFY(sum.generated < 120);
    // Only finished completions were stored.
    QCOMPARE(w.session()->store().counts().completions, qint64(sum.generated));
    QVERIFY(!page->isBusy());
}

void TestEvaluatePage::scoringMatchesFixture()
{
    // A run whose checkpoint-1 is the fixture's "other" model, reference "ref", held-out = pairs.jsonl.
    const QString out = m_dir->filePath(QStringLiteral("run"));
    const QString ckpt = QDir(out).filePath(QStringLiteral("checkpoint-1"));
    QVERIFY(QDir().mkpath(ckpt));
    const QDir otherDir(fixture(QStringLiteral("llama-gqa/other")));
    for (const QString &f : otherDir.entryList(QDir::Files))
        QVERIFY(QFile::copy(otherDir.filePath(f), QDir(ckpt).filePath(f)));
    const QString path = m_dir->filePath(QStringLiteral("s.dpo"));
    qint64 runId = 0;
    {
        auto store = ProjectStore::open(path);
        const QJsonObject cfg { { QStringLiteral("model"), fixture(QStringLiteral("llama-gqa/ref")) },
            { QStringLiteral("eval_dataset"), fixture(QStringLiteral("llama-gqa/pairs.jsonl")) },
            { QStringLiteral("beta"), 0.1 }, { QStringLiteral("max_length"), 1024 },
            { QStringLiteral("batch_size"), 3 } };
        runId = store->createRun(QStringLiteral("r1"), QString::fromUtf8(QJsonDocument(cfg).toJson()), out);
        store->finishRun(runId, QStringLiteral("finished"));
    }
    MainWindow w;
    QVERIFY(w.openProject(path));
    EvaluatePage *page = evaluatePage(w);
    // The run's base model and checkpoint are offered as models.
    QStringList available;
    for (const EvalModel &m : page->availableModels())
        available << m.name;
    QVERIFY2(available.contains(QStringLiteral("base: ref")), qPrintable(available.join(", ")));
    QVERIFY2(available.contains(QStringLiteral("r1/checkpoint-1")), qPrintable(available.join(", ")));

    QSignalSpy done(page, &EvaluatePage::scoringFinished);
    QSignalSpy failed(page, &EvaluatePage::jobFailed);
    QString err;
    QVERIFY2(page->startScoring(runId, &err), qPrintable(err));
    QVERIFY(done.wait(60000));
    QVERIFY2(failed.isEmpty(), failed.isEmpty() ? "" : qPrintable(failed.first().first().toString()));
    QCOMPARE(done.first().first().toBool(), false);
    const QVector<CheckpointScore> &scores = page->scores();
    QCOMPARE(scores.size(), 2);
    QCOMPARE(scores[0].name, QStringLiteral("base"));
    QCOMPARE(scores[0].step, 0);
    QCOMPARE(scores[0].accuracy, 0.0); // rewards are exactly 0: never strictly above
    QCOMPARE(scores[0].shiftChosen, 0.0);

    const QJsonObject expected = readJson(fixture(QStringLiteral("llama-gqa/expected.json")));
    const QJsonObject logps = expected.value(QStringLiteral("logps")).toObject();
    const QJsonObject metrics = expected.value(QStringLiteral("metrics_beta_0.1")).toObject();
    auto meanDiff = [&](const char *a, const char *b) {
        const QJsonArray x = logps.value(QLatin1String(a)).toArray(), y = logps.value(QLatin1String(b)).toArray();
        double s = 0;
        for (int i = 0; i < x.size(); ++i)
            s += x[i].toDouble() - y[i].toDouble();
        return s / x.size();
    };
    const CheckpointScore &c = scores[1];
    QCOMPARE(c.name, QStringLiteral("checkpoint-1"));
    QCOMPARE(c.step, 1);
    QCOMPARE(c.pairs, 8);
    QCOMPARE(c.accuracy, metrics.value(QStringLiteral("rewards/accuracies")).toDouble());
    QVERIFY(std::abs(c.meanMargin - metrics.value(QStringLiteral("rewards/margins")).toDouble()) < 1e-3);
    QVERIFY(std::abs(c.shiftChosen - meanDiff("policy_chosen", "ref_chosen")) < 2e-3);
    QVERIFY(std::abs(c.shiftRejected - meanDiff("policy_rejected", "ref_rejected")) < 2e-3);
}

// A LoRA run: its checkpoints are PEFT adapter folders (no config.json). The page offers them like any
// checkpoint and scores them on their base, matching the PEFT fixture's log-probs.
void TestEvaluatePage::loraRunAdaptersAreListedAndScored()
{
    const QString out = m_dir->filePath(QStringLiteral("lora-run"));
    const QString ckpt = QDir(out).filePath(QStringLiteral("checkpoint-1"));
    QVERIFY(QDir().mkpath(ckpt));
    const QDir adapterDir(fixture(QStringLiteral("lora-peft/adapter")));
    for (const QString &f : adapterDir.entryList(QDir::Files))
        QVERIFY(QFile::copy(adapterDir.filePath(f), QDir(ckpt).filePath(f)));
    // The fixture names its base relative to itself; the copy names it absolutely.
    QJsonObject adapterConfig = readJson(QDir(ckpt).filePath(QStringLiteral("adapter_config.json")));
    adapterConfig[QStringLiteral("base_model_name_or_path")] = fixture(QStringLiteral("lora-peft/base"));
    {
        QFile f(QDir(ckpt).filePath(QStringLiteral("adapter_config.json")));
        QVERIFY(f.open(QIODevice::WriteOnly | QIODevice::Truncate));
        f.write(QJsonDocument(adapterConfig).toJson());
    }
    const QString path = m_dir->filePath(QStringLiteral("lora.dpo"));
    qint64 runId = 0;
    {
        auto store = ProjectStore::open(path);
        const QJsonObject cfg { { QStringLiteral("model"), fixture(QStringLiteral("lora-peft/base")) },
            { QStringLiteral("eval_dataset"), fixture(QStringLiteral("lora-peft/pairs.jsonl")) },
            { QStringLiteral("beta"), 0.1 }, { QStringLiteral("max_length"), 1024 },
            { QStringLiteral("batch_size"), 3 }, { QStringLiteral("method"), QStringLiteral("lora") } };
        runId = store->createRun(QStringLiteral("lora1"), QString::fromUtf8(QJsonDocument(cfg).toJson()), out);
        store->finishRun(runId, QStringLiteral("finished"));
    }
    MainWindow w;
    QVERIFY(w.openProject(path));
    EvaluatePage *page = evaluatePage(w);
    QStringList available;
    for (const EvalModel &m : page->availableModels())
        available << m.name;
    QVERIFY2(available.contains(QStringLiteral("lora1/checkpoint-1")), qPrintable(available.join(", ")));

    QSignalSpy done(page, &EvaluatePage::scoringFinished);
    QSignalSpy failed(page, &EvaluatePage::jobFailed);
    QString err;
    QVERIFY2(page->startScoring(runId, &err), qPrintable(err));
    QVERIFY(done.wait(60000));
    QVERIFY2(failed.isEmpty(), failed.isEmpty() ? "" : qPrintable(failed.first().first().toString()));
    const QVector<CheckpointScore> &scores = page->scores();
    QCOMPARE(scores.size(), 2);
    const QJsonObject logps = readJson(fixture(QStringLiteral("lora-peft/expected.json")))
                                  .value(QStringLiteral("logps"))
                                  .toObject();
    auto meanDiff = [&](const char *a, const char *b) {
        const QJsonArray x = logps.value(QLatin1String(a)).toArray(), y = logps.value(QLatin1String(b)).toArray();
        double s = 0;
        for (int i = 0; i < x.size(); ++i)
            s += x[i].toDouble() - y[i].toDouble();
        return s / x.size();
    };
    const CheckpointScore &c = scores[1];
    QCOMPARE(c.name, QStringLiteral("checkpoint-1"));
    QCOMPARE(c.pairs, logps.value(QStringLiteral("policy_chosen")).toArray().size());
    QVERIFY2(std::abs(c.shiftChosen - meanDiff("policy_chosen", "ref_chosen")) < 2e-3,
        qPrintable(QString::number(c.shiftChosen)));
    QVERIFY(std::abs(c.shiftRejected - meanDiff("policy_rejected", "ref_rejected")) < 2e-3);
}

DPO_TEST_MAIN(TestEvaluatePage)

} // namespace test_evaluate_page

#include "test_evaluate_page.moc"
