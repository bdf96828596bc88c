// TrainPage on real widgets (offscreen) with the llama-gqa fixture: the model is inspected off-thread;
// the dataset summary counts pairs / tokens / rows over max length; invalid option values are refused
// with a message naming the option; presets round-trip as the TrainConfig JSON (and the copied dpo-cli
// command carries the options); a run started from the page delivers metrics and draws points; Stop
// returns within 1 s leaving a checkpoint, and Resume reaches the end; the project's runs list shows
// the run, a run left "running" by a crash as interrupted (and resumes it); closing during training asks
// and stops with a checkpoint.
#include "engine/training/dpo_trainer.h"

#include "ui/train/trainoptionsform.h"
#include "ui/train/trainpage.h"

#include "project/project_store.h"

#include <QAbstractButton>
#include <QApplication>
#include <QClipboard>
#include <QComboBox>
#include <QDir>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QLabel>
#include <QLineEdit>
#include <QCheckBox>
#include <QSpinBox>
#include <QMainWindow>
#include <QMessageBox>
#include <QScrollArea>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTableWidget>
#include <QTemporaryDir>
#include <QThread>
#include "qt_test_main.h"

#include <QtTest>

namespace test_train_page { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

class TestTrainPage : public QObject {
    Q_OBJECT
private slots:
    void initTestCase();
    void inspectsModelOffThread();
    void summarizesDataset();
    void invalidOptionsRefused();
    void methodChoiceShowsMemoryOfBoth();
    void trl1OptionsReachConfigAndCommand();
    void paddingFreeReachesConfigAndCommand();
    void adamwStateDtypeReachesConfigCommandAndMemory();
    void devicesOfferedWithSeveralGpus();
    void presetsRoundTrip();
    void startsWithTheDemoPreset();
    void trainStopResumeFromPage();
    void runsHistoryAndInterruptedRun();
    void closingAsksAndStops();

private:
    static QString fixture(const QString &rel) { return QStringLiteral(DPO_TEST_DATA_DIR "/") + rel; }
    void configureFixtureRun(TrainPage &page, const QString &out, int maxSteps);
    QString makeJudgedProject();
    QTemporaryDir m_dir;
};

void TestTrainPage::initTestCase()
{
    QStandardPaths::setTestModeEnabled(true);
    QCoreApplication::setOrganizationName(QStringLiteral("DPO Studio Tests"));
    QCoreApplication::setApplicationName(QStringLiteral("test_train_page"));
    QVERIFY(m_dir.isValid());
}

// Full / LoRA: the LoRA options are live only for LoRA, reach the TrainConfig and the copied command, and
// the memory line shows both methods for the inspected model (the chosen one marked, its adapter size).
void TestTrainPage::methodChoiceShowsMemoryOfBoth()
{
    TrainPage page;
    page.resize(1200, 800);
    page.show();
    page.resetToDefaults();
    page.setModelPath(QString());
    QTRY_VERIFY2(page.memoryEstimateText().contains(QLatin1String("Choose a model")),
        qPrintable(page.memoryEstimateText()));
    QSignalSpy inspected(&page, &TrainPage::modelInspected);
    page.setModelPath(fixture(QStringLiteral("llama-gqa/ref")));
    QTRY_VERIFY_WITH_TIMEOUT(!inspected.isEmpty(), 30000);
    auto *rank = page.findChild<QSpinBox *>(QStringLiteral("opt_lora_r"));
    auto *targets = page.findChild<QLineEdit *>(QStringLiteral("opt_lora_target_modules"));
    QVERIFY(rank && targets);
    QVERIFY(!rank->isEnabled());
    QTRY_VERIFY(page.memoryEstimateText().contains(QStringLiteral("▸ Full")));

    QVERIFY(page.setOption(QStringLiteral("method"), QStringLiteral("lora")));
    QVERIFY(rank->isEnabled() && targets->isEnabled());
    QVERIFY(page.setOption(QStringLiteral("lora_r"), QStringLiteral("4")));
    targets->setText(QStringLiteral("q_proj, v_proj"));
    const ModelInfo &m = page.modelInfo();
    const qint64 adapter = m.layers * 4 * ((m.hidden + m.heads * m.headDim) + (m.hidden + m.kvHeads * m.headDim));
    QTRY_VERIFY2(page.memoryEstimateText().contains(QStringLiteral("▸ LoRA"))
            && page.memoryEstimateText().contains(QLocale().toString(adapter)),
        qPrintable(page.memoryEstimateText()));

    dpo::TrainConfig c;
    QString error;
    QVERIFY2(page.buildConfig(&c, &error, false), qPrintable(error));
    QCOMPARE(c.method, std::string("lora"));
    QCOMPARE(c.loraR, int64_t(4));
    QCOMPARE(c.loraTargetModules, (std::vector<std::string> { "q_proj", "v_proj" }));
    const QString cli = page.cliCommand();
    QVERIFY2(cli.contains(QLatin1String("--method lora")) && cli.contains(QLatin1String("--lora-r 4"))
            && cli.contains(QLatin1String("--lora-target-modules q_proj,v_proj")),
        qPrintable(cli));
    // A preset with LoRA comes back as LoRA.
    page.resetToDefaults();
    QVERIFY(!rank->isEnabled());
    page.setConfig(c);
    QVERIFY(rank->isEnabled());
    QCOMPARE(targets->text(), QStringLiteral("q_proj, v_proj"));
}

// The Padding-free checkbox reaches the config and "Copy as dpo-cli"; with LD-DPO the page says why not.
void TestTrainPage::paddingFreeReachesConfigAndCommand()
{
    TrainPage page;
    page.resetToDefaults();
    auto *box = page.findChild<QCheckBox *>(QStringLiteral("opt_padding_free"));
    QVERIFY(box);
    QVERIFY(!box->isChecked());
    box->setChecked(true);
    dpo::TrainConfig c;
    QString error;
    QVERIFY2(page.buildConfig(&c, &error, false), qPrintable(error));
    QVERIFY(c.paddingFree);
    QVERIFY2(page.cliCommand().contains(QLatin1String("--padding-free")), qPrintable(page.cliCommand()));
    QVERIFY(page.setOption(QStringLiteral("ld_alpha"), QStringLiteral("0.5")));
    QVERIFY(!page.buildConfig(&c, &error, true));
    QVERIFY2(error.contains(QLatin1String("padding_free")), qPrintable(error));
    page.resetToDefaults();
    QVERIFY(!box->isChecked());
}

// AdamW state in the weights' dtype: reaches the config and the command, lowers the memory estimate
// (bf16: 18 -> 10 B/param with a live reference), and is refused with float16.
void TestTrainPage::adamwStateDtypeReachesConfigCommandAndMemory()
{
    TrainPage page;
    page.resize(1200, 800);
    page.show();
    page.resetToDefaults();
    QSignalSpy inspected(&page, &TrainPage::modelInspected);
    page.setModelPath(fixture(QStringLiteral("llama-gqa/ref")));
    QTRY_VERIFY_WITH_TIMEOUT(!inspected.isEmpty(), 30000);
    auto *combo = page.findChild<QComboBox *>(QStringLiteral("opt_adamw_state_dtype"));
    QVERIFY(combo);
    QCOMPARE(combo->currentText(), QStringLiteral("float32"));
    QVERIFY(page.setOption(QStringLiteral("dtype"), QStringLiteral("bfloat16")));
    QTRY_VERIFY2(page.memoryEstimateText().contains(QStringLiteral("18.0 B/param")), qPrintable(page.memoryEstimateText()));
    QVERIFY(page.setOption(QStringLiteral("adamw_state_dtype"), QStringLiteral("weights")));
    QTRY_VERIFY2(page.memoryEstimateText().contains(QStringLiteral("10.0 B/param")), qPrintable(page.memoryEstimateText()));
    dpo::TrainConfig c;
    QString error;
    QVERIFY2(page.buildConfig(&c, &error, false), qPrintable(error));
    QCOMPARE(QString::fromStdString(c.adamwStateDtype), QStringLiteral("weights"));
    QVERIFY2(page.cliCommand().contains(QLatin1String("--adamw-state-dtype weights")), qPrintable(page.cliCommand()));
    const QString shots = qEnvironmentVariable("DPO_SCREENSHOT_DIR"); // the Hardware box, for people to look at
    if (!shots.isEmpty()) {
        for (auto *scroll : page.findChildren<QScrollArea *>())
            if (scroll->widget() && scroll->widget()->isAncestorOf(combo))
                scroll->ensureWidgetVisible(combo);
        QApplication::processEvents();
        QVERIFY(page.grab().save(shots + QStringLiteral("/train-hardware.png")));
    }
    QVERIFY(page.setOption(QStringLiteral("dtype"), QStringLiteral("float16")));
    QVERIFY(!page.buildConfig(&c, &error, true));
    QVERIFY2(error.contains(QLatin1String("adamw_state_dtype")), qPrintable(error));
    page.resetToDefaults();
    QCOMPARE(combo->currentText(), QStringLiteral("float32"));
}

// TRL 1.x's options on the page: f-divergence, WPO weighting, LD-DPO (empty = off), constant_with_warmup.
void TestTrainPage::trl1OptionsReachConfigAndCommand()
{
    TrainPage page;
    page.resetToDefaults();
    dpo::TrainConfig c;
    QString error;
    QVERIFY2(page.buildConfig(&c, &error, false), qPrintable(error));
    QVERIFY(!c.ldAlpha.has_value());
    QVERIFY(page.setOption(QStringLiteral("f_divergence_type"), QStringLiteral("js_divergence")));
    QVERIFY(page.setOption(QStringLiteral("use_weighting"), QStringLiteral("true")));
    QVERIFY(page.setOption(QStringLiteral("ld_alpha"), QStringLiteral("0.5")));
    QVERIFY(page.setOption(QStringLiteral("lr_scheduler"), QStringLiteral("constant_with_warmup")));
    QVERIFY2(page.buildConfig(&c, &error, false), qPrintable(error));
    QCOMPARE(c.fDivergenceType, std::string("js_divergence"));
    QVERIFY(c.useWeighting);
    QVERIFY(c.ldAlpha.has_value() && *c.ldAlpha == 0.5);
    QCOMPARE(c.lrScheduler, std::string("constant_with_warmup"));
    const QString cli = page.cliCommand();
    for (const char *flag : { "--f-divergence-type js_divergence", "--use-weighting", "--ld-alpha 0.5",
             "--lr-scheduler constant_with_warmup" })
        QVERIFY2(cli.contains(QLatin1String(flag)), qPrintable(cli));
    page.resetToDefaults();
    page.setConfig(c);
    QCOMPARE(page.optionText(QStringLiteral("ld_alpha")), QStringLiteral("0.5"));
    QVERIFY(page.setOption(QStringLiteral("ld_alpha"), QString()));
    QVERIFY2(page.buildConfig(&c, &error, false), qPrintable(error));
    QVERIFY(!c.ldAlpha.has_value());
}

// "Devices" appears only when more than one CUDA device is visible (the count comes from libtorch off the
// GUI thread; given here), and reaches "Copy as dpo-cli" as --nproc.
void TestTrainPage::devicesOfferedWithSeveralGpus()
{
    TrainPage page;
    auto *form = page.findChild<TrainOptionsForm *>();
    QVERIFY(form);
    auto *devices = page.findChild<QSpinBox *>(QStringLiteral("opt_devices"));
    QVERIFY(devices);
    QCOMPARE(form->devices(), 1); // no GPU here
    form->addCudaDevices(1);
    QCOMPARE(form->devices(), 1);
    QVERIFY(!page.cliCommand().contains(QLatin1String("--nproc")));
    form->addCudaDevices(4);
    QCOMPARE(devices->maximum(), 4);
    devices->setValue(4);
    QCOMPARE(form->devices(), 4);
    QVERIFY2(page.cliCommand().contains(QLatin1String("--nproc 4")), qPrintable(page.cliCommand()));
    auto *device = page.findChild<QComboBox *>(QStringLiteral("opt_device"));
    QVERIFY(device && device->findText(QStringLiteral("cuda:3")) >= 0);
    // DPO_SCREENSHOT_DIR=DIR saves the Hardware box as a user with four GPUs sees it.
    if (const QString dir = qEnvironmentVariable("DPO_SCREENSHOT_DIR"); !dir.isEmpty()) {
        page.resize(1400, 900);
        page.show();
        QVERIFY(QTest::qWaitForWindowExposed(&page));
        if (auto *scroll = page.findChild<QScrollArea *>())
            scroll->ensureWidgetVisible(devices, 50, 200);
        QTest::qWait(200);
        QVERIFY(page.grab().save(QDir(dir).filePath(QStringLiteral("train_page_devices.png"))));
    }
}

void TestTrainPage::configureFixtureRun(TrainPage &page, const QString &out, int maxSteps)
{
    QSignalSpy inspected(&page, &TrainPage::modelInspected);
    page.setModelPath(fixture(QStringLiteral("llama-gqa/ref")));
    QTRY_VERIFY_WITH_TIMEOUT(!inspected.isEmpty(), 30000);
    QVERIFY(inspected.first().first().toBool());
    page.setDatasetFile(fixture(QStringLiteral("llama-gqa/pairs.jsonl")));
    page.setOutputDir(out);
    page.resetToDefaults(); // TRL's defaults, not the bundled demo preset a new page starts with
    QVERIFY(page.setOption(QStringLiteral("max_steps"), QString::number(maxSteps)));
    QVERIFY(page.setOption(QStringLiteral("batch_size"), QStringLiteral("2")));
    QVERIFY(page.setOption(QStringLiteral("learning_rate"), QStringLiteral("1e-3")));
    QVERIFY(page.setOption(QStringLiteral("save_steps"), QStringLiteral("0")));
    QVERIFY(page.setOption(QStringLiteral("threads"), QStringLiteral("1")));
}

QString TestTrainPage::makeJudgedProject()
{
    static int n = 0;
    const QString path = m_dir.filePath(QStringLiteral("project%1.dpo").arg(++n));
    auto store = dpo::ProjectStore::open(path);
    QFile f(fixture(QStringLiteral("llama-gqa/pairs.jsonl")));
    if (!f.open(QIODevice::ReadOnly))
        return {};
    while (!f.atEnd()) {
        const QJsonObject o = QJsonDocument::fromJson(f.readLine()).object();
        if (o.isEmpty())
            continue;
        const qint64 p = store->addPrompt(o.value(QStringLiteral("prompt")).toString());
        store->addPair(p, store->addCompletion(p, o.value(QStringLiteral("chosen")).toString()),
                       store->addCompletion(p, o.value(QStringLiteral("rejected")).toString()),
                       QStringLiteral("import-judged"), dpo::JudgmentKind::Label, QStringLiteral("a"));
    }
    return path;
}

void TestTrainPage::inspectsModelOffThread()
{
    TrainPage page;
    QSignalSpy inspected(&page, &TrainPage::modelInspected);
    page.setModelPath(fixture(QStringLiteral("llama-gqa/ref")));
    QTRY_VERIFY_WITH_TIMEOUT(!inspected.isEmpty(), 30000);
    QVERIFY(inspected.first().first().toBool());
    const ModelInfo &info = page.modelInfo();
    QVERIFY2(info.ok, qPrintable(info.error));
    QFile cfgFile(fixture(QStringLiteral("llama-gqa/ref/config.json")));
    QVERIFY(cfgFile.open(QIODevice::ReadOnly));
    const QJsonObject cfg = QJsonDocument::fromJson(cfgFile.readAll()).object();
    QCOMPARE(info.vocabSize, cfg.value(QStringLiteral("vocab_size")).toInteger());
    QCOMPARE(info.architecture, cfg.value(QStringLiteral("architectures")).toArray().first().toString());
    QCOMPARE(info.layers, cfg.value(QStringLiteral("num_hidden_layers")).toInteger());
    QCOMPARE(info.tokenizerKind, QStringLiteral("sentencepiece"));
    QVERIFY(!info.storedDtype.isEmpty());
    // Parameters from the safetensors headers: 4 bytes each for an F32 file of ~880 KB.
    if (info.storedDtype == QLatin1String("F32"))
        QVERIFY(std::abs(double(info.parameters) * 4 -
                         double(QFileInfo(fixture(QStringLiteral("llama-gqa/ref/model.safetensors"))).size())) < 20000);
    QVERIFY(page.findChild<QLabel *>(QStringLiteral("modelInfo"))->text().contains(info.architecture));

    // A LoRA adapter folder (PEFT fixture): its base's shape, marked as adapted.
    inspected.clear();
    page.setModelPath(fixture(QStringLiteral("lora-peft/adapter")));
    QTRY_VERIFY_WITH_TIMEOUT(!inspected.isEmpty(), 30000);
    QVERIFY2(page.modelInfo().ok, qPrintable(page.modelInfo().error));
    QVERIFY2(page.modelInfo().architecture.contains(QLatin1String("+ LoRA adapter (r ")),
        qPrintable(page.modelInfo().architecture));
    QVERIFY(page.modelInfo().parameters > 0 && page.modelInfo().layers > 0);

    inspected.clear();
    page.setModelPath(m_dir.filePath(QStringLiteral("not-a-model")));
    QTRY_VERIFY_WITH_TIMEOUT(!inspected.isEmpty(), 30000);
    QVERIFY(!inspected.first().first().toBool());
    QVERIFY(page.findChild<QLabel *>(QStringLiteral("modelInfo"))->text().contains(QStringLiteral("not-a-model")));
}

void TestTrainPage::summarizesDataset()
{
    TrainPage page;
    QSignalSpy inspected(&page, &TrainPage::modelInspected);
    page.setModelPath(fixture(QStringLiteral("llama-gqa/ref")));
    QTRY_VERIFY_WITH_TIMEOUT(!inspected.isEmpty(), 30000);
    QSignalSpy summarized(&page, &TrainPage::datasetSummarized);
    page.setDatasetFile(fixture(QStringLiteral("llama-gqa/pairs.jsonl")));
    page.setOption(QStringLiteral("max_length"), QStringLiteral("12"));
    page.setEvalSplit(0.25);
    page.refreshDatasetSummary();
    QTRY_VERIFY_WITH_TIMEOUT(!summarized.isEmpty(), 30000);
    const DatasetSummary &s = page.datasetSummary();
    QVERIFY2(s.ok, qPrintable(s.error));
    QCOMPARE(s.pairs + s.evalPairs, qint64(8));
    QCOMPARE(s.evalPairs, qint64(2));
    QVERIFY(s.inTokens);
    QVERIFY(s.meanChosen > 0 && s.meanRejected > 0);
    QVERIFY(s.longest > 12);
    QVERIFY(s.overMaxLength > 0);
    QVERIFY(s.overMaxLength <= 8);
    QVERIFY(s.chosenLongerShare > 0.5); // the fixture's chosen answers are the longer ones
    QVERIFY(page.findChild<QLabel *>(QStringLiteral("datasetSummary"))->text().contains(QStringLiteral("6 training pairs")));
}

void TestTrainPage::invalidOptionsRefused()
{
    TrainPage page;
    configureFixtureRun(page, m_dir.filePath(QStringLiteral("never")), 2);
    QString error;
    QVERIFY2(page.buildConfig(nullptr, &error), qPrintable(error));

    struct Case {
        const char *key;
        const char *bad;
        const char *good;
    };
    const Case cases[] = {{"beta", "0", "0.1"},
                          {"beta", "abc", "0.1"},
                          {"label_smoothing", "0.7", "0"},
                          {"learning_rate", "-1", "1e-3"},
                          {"batch_size", "0", "2"},
                          {"warmup_ratio", "1.5", "0"},
                          {"adam_beta2", "1", "0.999"},
                          {"loss_weights", "1, 2", ""},
                          {"loss_type", "", "sigmoid"}};
    for (const Case &c : cases) {
        QVERIFY(page.setOption(QLatin1String(c.key), QLatin1String(c.bad)));
        QVERIFY2(!page.start(), c.key);
        QVERIFY(!page.isTraining());
        QVERIFY2(page.message().contains(QStringLiteral("'%1'").arg(QLatin1String(c.key))),
                 qPrintable(QStringLiteral("%1: %2").arg(QLatin1String(c.key), page.message())));
        QVERIFY(page.setOption(QLatin1String(c.key), QLatin1String(c.good)));
        QVERIFY2(page.buildConfig(nullptr, &error), qPrintable(QStringLiteral("%1: %2").arg(QLatin1String(c.key), error)));
    }
    // The live check shows the message while typing, before Start.
    page.setOption(QStringLiteral("beta"), QStringLiteral("-2"));
    QTRY_VERIFY(page.message().contains(QStringLiteral("'beta'")));
    page.setOption(QStringLiteral("beta"), QStringLiteral("0.1"));
    // A model that does not load is refused too.
    QSignalSpy inspected(&page, &TrainPage::modelInspected);
    page.setModelPath(m_dir.filePath(QStringLiteral("nothing-here")));
    QTRY_VERIFY_WITH_TIMEOUT(!inspected.isEmpty(), 30000);
    QVERIFY(!page.start());
    QVERIFY2(page.message().contains(QStringLiteral("model")), qPrintable(page.message()));
    QVERIFY(!QFileInfo::exists(m_dir.filePath(QStringLiteral("never"))));
}

// A new page is ready to teach the bundled demo model: its DPO teaching pairs and its preset
// (resources/demo/dpo_preset.json), with the page's own thread default kept.
void TestTrainPage::startsWithTheDemoPreset()
{
    TrainPage page;
    dpo::TrainConfig c;
    QString error;
    QVERIFY2(page.buildConfig(&c, &error, false), qPrintable(error));
    QVERIFY2(QString::fromStdString(c.model).endsWith(QStringLiteral("resources/demo-model")), c.model.c_str());
    QVERIFY2(QString::fromStdString(c.dataset).endsWith(QStringLiteral("resources/demo/dpo_pairs.jsonl")),
             c.dataset.c_str());
    const dpo::TrainConfig preset = dpo::TrainConfig::fromFile(
        QStringLiteral(DPO_TEST_DATA_DIR "/../../resources/demo/dpo_preset.json").toStdString());
    QCOMPARE(c.lossType, preset.lossType);
    QCOMPARE(c.lossWeights, preset.lossWeights);
    QCOMPARE(c.learningRate, preset.learningRate);
    QCOMPARE(c.epochs, preset.epochs);
    QCOMPARE(c.maxLength, preset.maxLength);
    QCOMPARE(c.threads, std::max(1, QThread::idealThreadCount() - 1));
}

void TestTrainPage::presetsRoundTrip()
{
    TrainPage page;
    configureFixtureRun(page, m_dir.filePath(QStringLiteral("preset-run")), 7);
    page.setOption(QStringLiteral("beta"), QStringLiteral("0.25"));
    page.setOption(QStringLiteral("loss_type"), QStringLiteral("sigmoid,sft"));
    page.setOption(QStringLiteral("loss_weights"), QStringLiteral("1, 0.5"));
    page.setOption(QStringLiteral("lr_scheduler"), QStringLiteral("cosine"));
    page.setOption(QStringLiteral("warmup_ratio"), QStringLiteral("0.1"));
    page.setOption(QStringLiteral("grad_accum"), QStringLiteral("3"));
    page.setOption(QStringLiteral("truncation_mode"), QStringLiteral("keep_end"));
    page.setOption(QStringLiteral("max_length"), QStringLiteral("256"));
    page.setOption(QStringLiteral("seed"), QStringLiteral("1234"));
    page.setOption(QStringLiteral("shuffle"), QStringLiteral("false"));
    page.setOption(QStringLiteral("adam_epsilon"), QStringLiteral("1e-7"));
    page.setOption(QStringLiteral("dtype"), QStringLiteral("bfloat16"));
    dpo::TrainConfig before;
    QString error;
    QVERIFY2(page.buildConfig(&before, &error), qPrintable(error));

    const QString preset = m_dir.filePath(QStringLiteral("preset.json"));
    QVERIFY2(page.savePreset(preset, &error), qPrintable(error));
    // The file is exactly what dpo-cli train --config reads.
    const dpo::TrainConfig fromFile = dpo::TrainConfig::fromFile(preset.toStdString());
    QCOMPARE(QString::fromStdString(fromFile.toJson().dump()), QString::fromStdString(before.toJson().dump()));

    page.resetToDefaults();
    dpo::TrainConfig defaults;
    QVERIFY(page.buildConfig(&defaults, &error, false));
    QCOMPARE(defaults.beta, 0.1);
    QCOMPARE(defaults.lossType, std::vector<std::string>{"sigmoid"});
    QCOMPARE(defaults.learningRate, dpo::TrainConfig().learningRate);
    QCOMPARE(defaults.maxLength, int64_t(1024));

    QVERIFY2(page.loadPreset(preset, &error), qPrintable(error));
    dpo::TrainConfig after;
    QVERIFY2(page.buildConfig(&after, &error), qPrintable(error));
    QCOMPARE(QString::fromStdString(after.toJson().dump()), QString::fromStdString(before.toJson().dump()));
    QCOMPARE(after.lossType, (std::vector<std::string>{"sigmoid", "sft"}));
    QCOMPARE(after.seed, uint64_t(1234));

    // A preset with an unknown key or a bad value is refused with the option's name.
    QFile bad(m_dir.filePath(QStringLiteral("bad.json")));
    QVERIFY(bad.open(QIODevice::WriteOnly));
    bad.write("{\"beta\": 0.2, \"learning_rat\": 1e-5}");
    bad.close();
    QVERIFY(!page.loadPreset(bad.fileName(), &error));
    QVERIFY2(error.contains(QStringLiteral("learning_rat")), qPrintable(error));

    // The dpo-cli command carries the non-default options.
    page.copyCliCommand();
    const QString cmd = QApplication::clipboard()->text();
    QVERIFY2(cmd.startsWith(QStringLiteral("dpo-cli train ")), qPrintable(cmd));
    for (const char *part : {"--beta 0.25", "--loss-type sigmoid,sft", "--loss-weights 1,0.5", "--lr-scheduler cosine",
                             "--grad-accum 3", "--truncation-mode keep_end", "--max-length 256", "--seed 1234",
                             "--no-shuffle", "--adam-epsilon 1e-07", "--dtype bfloat16", "--max-steps 7",
                             "--model ", "--dataset ", "--output-dir "})
        QVERIFY2(cmd.contains(QLatin1String(part)), qPrintable(QStringLiteral("%1 in %2").arg(QLatin1String(part), cmd)));
    QVERIFY(!cmd.contains(QStringLiteral("--adam-beta1"))); // default: left out
}

void TestTrainPage::trainStopResumeFromPage()
{
    TrainPage page;
    page.resize(1400, 900);
    page.show();
    QVERIFY(QTest::qWaitForWindowExposed(&page));
    const QString out = m_dir.filePath(QStringLiteral("page-run"));
    configureFixtureRun(page, out, 40);
    QSignalSpy metrics(page.runner(), &TrainingRunner::metrics);
    QSignalSpy finished(&page, &TrainPage::trainingFinished);
    QElapsedTimer stopClock;
    int seen = 0;
    connect(page.runner(), &TrainingRunner::metrics, this, [&]() {
        if (++seen == 3) {
            stopClock.start();
            page.stop();
        }
    });
    QVERIFY2(page.start(), qPrintable(page.message()));
    QVERIFY(page.isTraining());
    QVERIFY(!page.start()); // a second start is refused while training
    QTRY_VERIFY_WITH_TIMEOUT(!finished.isEmpty(), 60000);
    const qint64 stopMs = stopClock.elapsed();
    qInfo("stop -> stopped: %lld ms", static_cast<long long>(stopMs));
    QCOMPARE(finished.first().first().toString(), QStringLiteral("stopped"));
    QVERIFY2(stopMs < 1000, qPrintable(QString::number(stopMs)));
    QVERIFY(metrics.size() >= 3);
    QVERIFY(QFileInfo::exists(page.lastCheckpoint() + QStringLiteral("/trainer_state.json")));
    MetricsChart *loss = page.dashboard()->chart(QStringLiteral("loss"));
    QTRY_VERIFY(loss->pointCount() > 0);
    QVERIFY(page.dashboard()->chart(QStringLiteral("rewards/accuracies"))->pointCount() > 0);
    QVERIFY(page.dashboard()->chart(QStringLiteral("learning_rate"))->pointCount() > 0);
    QVERIFY(page.progressText().contains(QStringLiteral("/ 40")));
    QVERIFY(page.logText().contains(QStringLiteral("checkpoint")));
    const int stoppedPoints = loss->pointCount();

    // Starting again into the same directory is refused (it holds checkpoints): Resume continues it.
    QVERIFY(!page.start());
    QVERIFY2(page.message().contains(QStringLiteral("output_dir")), qPrintable(page.message()));
    finished.clear();
    QVERIFY2(page.resume(), qPrintable(page.message()));
    QTRY_VERIFY_WITH_TIMEOUT(!finished.isEmpty(), 120000);
    QCOMPARE(finished.first().first().toString(), QStringLiteral("completed"));
    QVERIFY(QFileInfo::exists(out + QStringLiteral("/final/model.safetensors")));
    QTRY_COMPARE(loss->pointCount(), 40); // the old points re-read from metrics.jsonl + the resumed ones
    QVERIFY(loss->pointCount() > stoppedPoints);
    QVERIFY(page.progressText().contains(QStringLiteral("step 40 / 40")));
}

void TestTrainPage::runsHistoryAndInterruptedRun()
{
    const QString project = makeJudgedProject();
    ProjectSession session(dpo::ProjectStore::open(project));
    TrainPage page;
    QSignalSpy refreshed(&page, &TrainPage::runsRefreshed);
    page.setProject(&session);
    QTRY_VERIFY(!refreshed.isEmpty());
    QVERIFY(page.runs().isEmpty());

    // A run from the project's judged pairs, with an eval split, stopped after its first step.
    const QString out = m_dir.filePath(QStringLiteral("project-run"));
    configureFixtureRun(page, out, 25);
    page.setDataSource(TrainPage::DataSource::Project);
    page.setEvalSplit(0.25);
    QSignalSpy finished(&page, &TrainPage::trainingFinished);
    int seen = 0;
    connect(page.runner(), &TrainingRunner::metrics, this, [&]() {
        if (++seen == 1)
            page.stop();
    });
    QVERIFY2(page.start(), qPrintable(page.message()));
    QTRY_VERIFY_WITH_TIMEOUT(!finished.isEmpty(), 60000);
    QCOMPARE(finished.first().first().toString(), QStringLiteral("stopped"));
    QTRY_VERIFY(!page.runs().isEmpty() && page.runs().first().status == QLatin1String("stopped"));
    QVERIFY(QFileInfo::exists(out + QStringLiteral("/data/eval.jsonl")));

    // The app "dies" while the run is marked running: the list shows it as interrupted.
    const qint64 id = page.runs().first().id;
    session.store().updateRun(id, QStringLiteral("running"));
    refreshed.clear();
    page.refreshRuns();
    QTRY_VERIFY(!refreshed.isEmpty());
    QCOMPARE(page.runs().first().status, QStringLiteral("interrupted"));
    auto *table = page.findChild<QTableWidget *>(QStringLiteral("runsTable"));
    QCOMPARE(table->item(0, 1)->text(), QStringLiteral("interrupted"));

    // Resume it from the list: it reaches the end and the record says finished.
    finished.clear();
    table->selectRow(0);
    QVERIFY2(page.resume(), qPrintable(page.message()));
    QTRY_VERIFY_WITH_TIMEOUT(!finished.isEmpty(), 120000);
    QCOMPARE(finished.first().first().toString(), QStringLiteral("completed"));
    QTRY_VERIFY(page.runs().first().status == QLatin1String("finished"));
    QCOMPARE(page.runs().size(), 1);
    const QJsonObject last = QJsonDocument::fromJson(page.runs().first().lastMetricsJson.toUtf8()).object();
    QCOMPARE(last.value(QStringLiteral("step")).toInt(), 25);

    // Config diff between two runs, and re-opening a run's charts from its metrics.jsonl.
    dpo::Run other = page.runs().first();
    QJsonObject cfg = QJsonDocument::fromJson(other.configJson.toUtf8()).object();
    cfg.insert(QStringLiteral("beta"), 0.3);
    const auto diff = TrainPage::configDiff(QJsonDocument::fromJson(page.runs().first().configJson.toUtf8()).object(), cfg);
    QCOMPARE(diff.size(), 1);
    QCOMPARE(diff.first().value(0), QStringLiteral("beta"));
    QCOMPARE(diff.first().value(2), QStringLiteral("0.3"));
    QSignalSpy loaded(&page, &TrainPage::chartsLoaded);
    page.dashboard()->setPrimaryRun(nullptr);
    page.showRunCharts(page.runs().first(), false);
    QTRY_VERIFY(!loaded.isEmpty());
    page.dashboard()->redrawNow();
    QCOMPARE(page.dashboard()->chart(QStringLiteral("loss"))->pointCount(), 25 + 1); // + the final eval point
    page.setProject(nullptr);
}

void TestTrainPage::closingAsksAndStops()
{
    QMainWindow window;
    auto *page = new TrainPage;
    window.setCentralWidget(page);
    window.show();
    configureFixtureRun(*page, m_dir.filePath(QStringLiteral("closing-run")), 100000);
    QSignalSpy finished(page, &TrainPage::trainingFinished);
    QSignalSpy metrics(page->runner(), &TrainingRunner::metrics);
    QVERIFY(page->start());
    QTRY_VERIFY_WITH_TIMEOUT(!metrics.isEmpty(), 60000);
    // Cancel first: nothing happens.
    QTimer::singleShot(50, []() {
        if (auto *box = qobject_cast<QMessageBox *>(QApplication::activeModalWidget()))
            box->button(QMessageBox::Cancel)->click();
    });
    QVERIFY(!page->canClose());
    QVERIFY(page->isTraining());
    // Yes: stops with a checkpoint; the page closes the window itself afterwards.
    QTimer::singleShot(50, []() {
        if (auto *box = qobject_cast<QMessageBox *>(QApplication::activeModalWidget()))
            box->button(QMessageBox::Yes)->click();
    });
    QVERIFY(!page->canClose());
    QTRY_VERIFY_WITH_TIMEOUT(!finished.isEmpty(), 30000);
    QCOMPARE(finished.first().first().toString(), QStringLiteral("stopped"));
    QVERIFY(QFileInfo::exists(page->lastCheckpoint() + QStringLiteral("/trainer_state.json")));
    QTRY_VERIFY(!window.isVisible());
    QVERIFY(page->canClose());
}

DPO_TEST_MAIN(TestTrainPage)

} // namespace test_train_page

#include "test_train_page.moc"
