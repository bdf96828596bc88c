// The whole DPO Studio loop on the bundled demo, through the real MainWindow (offscreen):
//   train     the demo model fine-tuned with the GUI's demo preset on the bundled teaching pairs
//             (resources/demo/dpo_pairs.jsonl, the engine's DpoTrainer as the Train page runs it);
//   evaluate  the base and the fine-tuned model generate greedy answers to held-out demo prompts on the
//             Evaluate page, a blind session is judged on the Label page by a scripted annotator that
//             applies the demo's checkable rules (resources/demo/demo_eval.jsonl: the right sum, a polite
//             greeting; a tie when both or neither answer passes), then the session ends;
//   results   the fine-tuned model beats the base: win rate against the base above ½ with the Wilson
//             interval clear of ½, and a higher Bradley–Terry rating.
// DPO_SCREENSHOT_DIR=DIR saves the Evaluate page's results view as DIR/evaluate-results.png.
// libtorch first: Qt's `slots` macro would otherwise break its headers.
#include "engine/training/dpo_trainer.h"
#include "engine/runtime.h"
#include "engine/training/train_config.h"

#include "project/evaluation.h"
#include "project/project_store.h"
#include "ui/evaluate/evaluatepage.h"
#include "ui/label/labelpage.h"
#include "ui/shell/mainwindow.h"

#include <QDir>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QSettings>
#include <QStandardPaths>
#include <QTemporaryDir>
#include "qt_test_main.h"

#include <QtTest>

namespace test_demo_loop { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

using namespace dpo;

namespace {

QString resource(const QString &rel)
{
    return QDir::cleanPath(QStringLiteral(DPO_TEST_DATA_DIR "/../../resources/") + rel);
}

struct Rule {
    QString prompt;
    QStringList expect, reject;
};

QStringList stringOrList(const QJsonValue &v)
{
    QStringList out;
    if (v.isString())
        out << v.toString();
    for (const QJsonValue &x : v.toArray())
        out << x.toString();
    return out;
}

bool passes(const Rule &r, const QString &answer)
{
    for (const QString &e : r.expect)
        if (!answer.contains(e))
            return false;
    for (const QString &x : r.reject)
        if (answer.contains(x))
            return false;
    return true;
}

} // namespace

class TestDemoLoop : public QObject {
    Q_OBJECT
private slots:
    void initTestCase();
    void trainThenEvaluateBlind();
};

void TestDemoLoop::initTestCase()
{
    QStandardPaths::setTestModeEnabled(true);
    QCoreApplication::setOrganizationName(QStringLiteral("DPO Studio Tests"));
    QCoreApplication::setApplicationName(QStringLiteral("test_demo_loop"));
    QSettings().clear();
    dpo::initRuntime();
}

void TestDemoLoop::trainThenEvaluateBlind()
{
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const QString baseModel = resource(QStringLiteral("demo-model"));
    QVERIFY2(QFile::exists(baseModel + QStringLiteral("/config.json")), qPrintable(baseModel));

    // 1. Train with the demo preset (what the Train page loads for the demo project).
    TrainConfig config = TrainConfig::fromFile(resource(QStringLiteral("demo/dpo_preset.json")).toStdString());
    config.model = baseModel.toStdString();
    config.dataset = resource(QStringLiteral("demo/dpo_pairs.jsonl")).toStdString();
    config.outputDir = dir.filePath(QStringLiteral("run")).toStdString();
    config.device = "cpu";
    DpoTrainer trainer(config);
    const TrainResult trained = trainer.train();
    QCOMPARE(QString::fromStdString(trained.status), QStringLiteral("completed"));
    const QString tuned = QString::fromStdString(trained.finalModelDir);

    // 2. Held-out prompts: every third demo_eval prompt (sums and greetings), with their rules.
    QFile rulesFile(resource(QStringLiteral("demo/demo_eval.jsonl")));
    QVERIFY(rulesFile.open(QIODevice::ReadOnly));
    QHash<QString, Rule> rules;
    QStringList promptLines;
    int line = 0;
    while (!rulesFile.atEnd()) {
        const QByteArray raw = rulesFile.readLine().trimmed();
        if (raw.isEmpty() || line++ % 3 != 0)
            continue;
        const QJsonObject o = QJsonDocument::fromJson(raw).object();
        Rule r { o.value(QStringLiteral("prompt")).toString(), stringOrList(o.value(QStringLiteral("expect_contains"))),
            stringOrList(o.value(QStringLiteral("reject_contains"))) };
        rules.insert(r.prompt, r);
        promptLines << QString::fromUtf8(
            QJsonDocument(QJsonObject { { QStringLiteral("prompt"), r.prompt } }).toJson(QJsonDocument::Compact));
    }
    QVERIFY(rules.size() >= 20);
    const QString promptsFile = dir.filePath(QStringLiteral("prompts.jsonl"));
    {
        QFile f(promptsFile);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write(promptLines.join(QLatin1Char('\n')).toUtf8());
    }

    // 3. The Evaluate page: generate for both models, then judge blind on the Label page.
    const QString project = dir.filePath(QStringLiteral("demo.dpo"));
    MainWindow w;
    w.resize(1400, 900);
    w.labelPage()->setAnnotatorName(QStringLiteral("judge"));
    w.show();
    QVERIFY(QTest::qWaitForWindowExposed(&w));
    QVERIFY(w.openProject(project));
    EvaluatePage *page = nullptr;
    int evaluateIndex = -1;
    for (int i = 0; i < w.pageCount(); ++i)
        if (auto *p = qobject_cast<EvaluatePage *>(w.page(i))) {
            page = p;
            evaluateIndex = i;
        }
    QVERIFY(page);
    QString err;
    QVERIFY2(page->addModelDirectory(baseModel, &err), qPrintable(err));
    QVERIFY2(page->addModelDirectory(tuned, &err), qPrintable(err));
    for (const EvalModel &m : page->availableModels())
        page->setModelChecked(m.path, m.path == canonicalModelPath(baseModel) || m.path == canonicalModelPath(tuned));
    QCOMPARE(page->selectedModels().size(), 2);
    SamplingSettings sampling;
    sampling.greedy = true;
    sampling.maxNewTokens = 24;
    page->setSampling(sampling);
    page->setPromptFile(promptsFile);
    QSignalSpy generated(page, &EvaluatePage::generationFinished);
    QSignalSpy failed(page, &EvaluatePage::jobFailed);
    QVERIFY2(page->startGeneration(&err), qPrintable(err));
    QVERIFY(generated.wait(300000));
    QCOMPARE(failed.count(), 0);
    QCOMPARE(page->lastGeneration().generated, 2 * rules.size());

    QVERIFY2(page->startBlindSession(&err), qPrintable(err));
    ProjectStore &store = w.session()->store();
    int judged = 0, decisive = 0;
    while (w.labelPage()->currentPair()) {
        const ShownPair shown = *w.labelPage()->currentPair();
        const Rule rule = rules.value(store.prompt(shown.promptId).text);
        QVERIFY(!rule.prompt.isEmpty());
        const bool left = passes(rule, shown.left.text), right = passes(rule, shown.right.text);
        const Verdict v = left == right ? Verdict::Tie : left ? Verdict::Left : Verdict::Right;
        decisive += left != right;
        QVERIFY(w.labelPage()->decide(v, Strength::Unspecified));
        QVERIFY(++judged <= rules.size());
    }
    QCOMPARE(judged, rules.size());

    // 4. End the session: identities and results appear.
    w.setCurrentPage(evaluateIndex);
    QSignalSpy updated(page, &EvaluatePage::resultsUpdated);
    page->endSession();
    QVERIFY(updated.count() > 0 || updated.wait(30000));
    const QVector<EvalModel> models = page->session().models;
    int base = -1, fine = -1;
    for (int i = 0; i < models.size(); ++i)
        (models[i].path == canonicalModelPath(baseModel) ? base : fine) = i;
    QVERIFY(base >= 0 && fine >= 0);
    if (page->results().baseline != base) {
        updated.clear();
        page->setBaseline(base);
        QVERIFY(updated.wait(30000));
    }
    const EvaluationResults &r = page->results();
    QVERIFY2(r.hasRatings, qPrintable(r.ratingsError));
    const ModelRating &m = r.ratings.models[size_t(fine)];
    qInfo("demo loop: %d prompts, %d decisive; fine-tuned vs base: win rate %.3f (Wilson %.3f-%.3f), "
          "Elo %.0f [%.0f, %.0f]",
        judged, decisive, m.winRate, m.wilson.low, m.wilson.high, m.rating, r.ratingLow(fine), r.ratingHigh(fine));
    QCOMPARE(m.n, judged);
    QVERIFY(m.winRate > 0.5);
    QVERIFY2(m.wilson.low > 0.5, "the fine-tuned model's win over the base is not significant");
    QVERIFY(m.rating > 1000.0);

    const QString shots = qEnvironmentVariable("DPO_SCREENSHOT_DIR");
    if (!shots.isEmpty()) {
        QDir().mkpath(shots);
        QTest::qWait(300); // let the charts paint
        QVERIFY(w.grab().save(QDir(shots).filePath(QStringLiteral("evaluate-results.png"))));
    }
}

DPO_TEST_MAIN(TestDemoLoop)

} // namespace test_demo_loop

#include "test_demo_loop.moc"
