#include "engine/training/dpo_trainer.h"
#include "engine/error.h"

#include "ui/train/trainpage.h"

#include "ui/shell/bundleddemo.h"

#include <QApplication>
#include <QButtonGroup>
#include <QCheckBox>
#include <QClipboard>
#include <QComboBox>
#include <QDateTime>
#include <QDialog>
#include <QDialogButtonBox>
#include <QDir>
#include <QDoubleSpinBox>
#include <QFile>
#include <QFontDatabase>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QJsonArray>
#include <QJsonDocument>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QLocale>
#include <QMessageBox>
#include <QPlainTextEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QRadioButton>
#include <QSaveFile>
#include <QSet>
#include <QScrollArea>
#include <QSpinBox>
#include <QSplitter>
#include <QStandardPaths>
#include <QTableWidget>
#include <QTabWidget>
#include <QThread>
#include <QTimer>
#include <QToolButton>
#include <QVBoxLayout>
#include <QtConcurrent>

#include <algorithm>
#include <climits>
#include <cmath>
#include <fstream>

namespace {

QString formatDouble(double v)
{
    return QString::number(v, 'g', QLocale::FloatingPointShortest);
}

QString formatSeconds(double s)
{
    if (!(s >= 0) || s > 1e7)
        return QStringLiteral("--:--");
    const qint64 t = qint64(s + 0.5);
    if (t >= 3600)
        return QStringLiteral("%1:%2:%3").arg(t / 3600).arg((t / 60) % 60, 2, 10, QLatin1Char('0')).arg(t % 60, 2, 10, QLatin1Char('0'));
    return QStringLiteral("%1:%2").arg(t / 60, 2, 10, QLatin1Char('0')).arg(t % 60, 2, 10, QLatin1Char('0'));
}

QString formatBytes(qint64 b)
{
    if (b >= (qint64(1) << 30))
        return QStringLiteral("%1 GiB").arg(double(b) / double(qint64(1) << 30), 0, 'f', 2);
    return QStringLiteral("%1 MiB").arg(double(b) / double(1 << 20), 0, 'f', 0);
}

QString shellQuote(const QString &s)
{
    static const QString safe = QStringLiteral(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:=,+-@%");
    bool plain = !s.isEmpty();
    for (QChar c : s)
        plain = plain && safe.contains(c);
    if (plain)
        return s;
    QString q = s;
    q.replace(QLatin1Char('\''), QStringLiteral("'\\''"));
    return QLatin1Char('\'') + q + QLatin1Char('\'');
}

QJsonObject toQJson(const nlohmann::json &j)
{
    return QJsonDocument::fromJson(QByteArray::fromStdString(j.dump())).object();
}

// Reference handling: one choice for the user, three TrainConfig switches (+ ref_model).
enum RefMode { RefSame = 0, RefOther, RefPrecompute, RefFree, RefSync };

} // namespace

// ---------------------------------------------------------------- construction

TrainPage::TrainPage(QWidget *parent)
    : QWidget(parent)
    , m_runner(new TrainingRunner(this))
    , m_dashboard(new MetricsDashboard)
{
    setObjectName(QStringLiteral("trainPage"));
    m_validateTimer = new QTimer(this);
    m_validateTimer->setSingleShot(true);
    m_validateTimer->setInterval(150);
    connect(m_validateTimer, &QTimer::timeout, this, &TrainPage::validateForm);
    m_summaryTimer = new QTimer(this);
    m_summaryTimer->setSingleShot(true);
    m_summaryTimer->setInterval(400);
    connect(m_summaryTimer, &QTimer::timeout, this, &TrainPage::refreshDatasetSummary);
    m_uiTimer = new QTimer(this);
    m_uiTimer->setInterval(250); // progress labels: 4 updates per second at most
    connect(m_uiTimer, &QTimer::timeout, this, &TrainPage::updateProgress);

    buildUi();
    resetToDefaults();
    newOutputDir();

    connect(m_runner, &TrainingRunner::metrics, this, &TrainPage::onMetrics);
    connect(m_runner, &TrainingRunner::logLine, this, &TrainPage::appendLog);
    connect(m_runner, &TrainingRunner::finished, this, &TrainPage::onFinished);
    connect(m_runner, &TrainingRunner::failed, this, &TrainPage::onFailed);
    connect(m_runner, &TrainingRunner::runRecorded, this, [this](qint64 id) {
        m_currentRunId = id;
        m_lastJob.runId = id;
        refreshRuns();
    });
    connect(m_runner, &TrainingRunner::started, this, [this](const QString &dir) {
        appendLog(tr("run directory %1").arg(dir));
    });

    // CUDA devices: asking libtorch initialises the driver, so do it off the GUI thread.
    auto *cudaWatcher = new QFutureWatcher<int>(this);
    connect(cudaWatcher, &QFutureWatcher<int>::finished, this, [this, cudaWatcher]() {
        const int n = cudaWatcher->result();
        cudaWatcher->deleteLater();
        auto *device = qobject_cast<QComboBox *>(m_fields.value(QStringLiteral("device")));
        for (int i = 0; i < n; ++i) {
            const QString name = i == 0 ? QStringLiteral("cuda") : QStringLiteral("cuda:%1").arg(i);
            if (device->findText(name) < 0)
                device->addItem(name);
        }
        device->setToolTip(device->toolTip() + (n > 0 ? tr("\nCUDA devices found: %1.").arg(n)
                                                      : tr("\nNo CUDA device in this build / machine.")));
    });
    cudaWatcher->setFuture(QtConcurrent::run(cudaDeviceCount));

    // Default: the bundled demo model with its DPO teaching pairs and preset, so that Start on a first
    // launch visibly teaches it something (correct sums, polite greetings) in a short CPU run.
    const QString demo = bundledDemoModelDir();
    if (!demo.isEmpty()) {
        setModelPath(demo);
        const QString pairs = QDir::cleanPath(demo + QStringLiteral("/../demo/dpo_pairs.jsonl"));
        if (m_datasetEdit->text().isEmpty() && QFileInfo::exists(pairs))
            m_datasetEdit->setText(pairs);
        const QString preset = QDir::cleanPath(demo + QStringLiteral("/../demo/dpo_preset.json"));
        dpo::TrainConfig current;
        if (QFileInfo::exists(preset) && buildConfig(&current, nullptr, false)) {
            try {
                dpo::TrainConfig c = dpo::TrainConfig::fromFile(preset.toStdString());
                c.model = current.model; // what the preset leaves open keeps the page's defaults
                c.dataset = current.dataset;
                c.outputDir = current.outputDir;
                c.threads = current.threads;
                c.device = current.device;
                setConfig(c);
            } catch (const std::exception &) {
                // A broken bundled preset leaves the plain defaults.
            }
        }
    }
}

TrainPage::~TrainPage()
{
    // The runner's destructor stops a job in progress (with a checkpoint) and joins its thread.
}

QLineEdit *TrainPage::addDouble(QFormLayout *form, const QString &key, const QString &label, const QString &tip)
{
    auto *e = new QLineEdit;
    e->setObjectName(QStringLiteral("opt_") + key);
    e->setToolTip(tip);
    e->setMaximumWidth(140);
    form->addRow(label, e);
    if (QWidget *l = form->labelForField(e))
        l->setToolTip(tip);
    m_fields.insert(key, e);
    connect(e, &QLineEdit::textChanged, this, &TrainPage::scheduleValidation);
    return e;
}

QSpinBox *TrainPage::addInt(QFormLayout *form, const QString &key, const QString &label, const QString &tip, int min,
                            int max)
{
    auto *s = new QSpinBox;
    s->setObjectName(QStringLiteral("opt_") + key);
    s->setRange(min, max);
    s->setToolTip(tip);
    s->setMaximumWidth(140);
    s->setGroupSeparatorShown(false);
    form->addRow(label, s);
    if (QWidget *l = form->labelForField(s))
        l->setToolTip(tip);
    m_fields.insert(key, s);
    connect(s, &QSpinBox::valueChanged, this, &TrainPage::scheduleValidation);
    return s;
}

QComboBox *TrainPage::addCombo(QFormLayout *form, const QString &key, const QString &label, const QString &tip,
                               const QStringList &items)
{
    auto *c = new QComboBox;
    c->setObjectName(QStringLiteral("opt_") + key);
    c->addItems(items);
    c->setToolTip(tip);
    form->addRow(label, c);
    if (QWidget *l = form->labelForField(c))
        l->setToolTip(tip);
    m_fields.insert(key, c);
    connect(c, &QComboBox::currentTextChanged, this, &TrainPage::scheduleValidation);
    return c;
}

static QFormLayout *newForm(QGroupBox *box)
{
    auto *form = new QFormLayout(box);
    form->setFieldGrowthPolicy(QFormLayout::ExpandingFieldsGrow);
    form->setLabelAlignment(Qt::AlignRight);
    form->setVerticalSpacing(4);
    return form;
}

static QWidget *row(std::initializer_list<QWidget *> widgets, int stretchIndex = 0)
{
    auto *w = new QWidget;
    auto *l = new QHBoxLayout(w);
    l->setContentsMargins(0, 0, 0, 0);
    int i = 0;
    for (QWidget *x : widgets)
        l->addWidget(x, i++ == stretchIndex ? 1 : 0);
    return w;
}

void TrainPage::buildUi()
{
    auto *split = new QSplitter(Qt::Horizontal);
    split->setObjectName(QStringLiteral("trainSplitter"));
    split->addWidget(buildOptionsPane());
    split->addWidget(buildRunPane());
    split->setStretchFactor(0, 0);
    split->setStretchFactor(1, 1);
    split->setSizes({430, 970});
    auto *layout = new QVBoxLayout(this);
    layout->setContentsMargins(4, 4, 4, 4);
    layout->addWidget(split);
}

QWidget *TrainPage::buildOptionsPane()
{
    auto *content = new QWidget;
    auto *v = new QVBoxLayout(content);
    v->setContentsMargins(2, 2, 8, 2);
    v->setSpacing(6);

    // Model
    auto *modelBox = new QGroupBox(tr("Model"));
    auto *mf = newForm(modelBox);
    m_modelEdit = new QLineEdit;
    m_modelEdit->setObjectName(QStringLiteral("opt_model"));
    m_modelEdit->setPlaceholderText(tr("Hugging Face model directory"));
    m_modelEdit->setToolTip(tr("The policy to fine-tune: a Hugging Face directory (config.json, safetensors "
                               "weights, tokenizer). Llama, Mistral, Qwen2 and GPT-2 families."));
    auto *browseModel = new QToolButton;
    browseModel->setText(tr("Browse…"));
    mf->addRow(tr("Directory"), row({m_modelEdit, browseModel}));
    m_modelInfoLabel = new QLabel(tr("No model chosen."));
    m_modelInfoLabel->setObjectName(QStringLiteral("modelInfo"));
    m_modelInfoLabel->setWordWrap(true);
    m_modelInfoLabel->setTextInteractionFlags(Qt::TextSelectableByMouse);
    mf->addRow(m_modelInfoLabel);
    v->addWidget(modelBox);
    connect(browseModel, &QToolButton::clicked, this, [this]() {
        const QString dir = QFileDialog::getExistingDirectory(this, tr("Model directory"), m_modelEdit->text());
        if (!dir.isEmpty())
            setModelPath(dir);
    });
    connect(m_modelEdit, &QLineEdit::editingFinished, this, [this]() {
        if (m_modelEdit->text() != m_modelInfo.dir)
            setModelPath(m_modelEdit->text());
    });
    connect(m_modelEdit, &QLineEdit::textChanged, this, &TrainPage::scheduleValidation);

    // Data
    auto *dataBox = new QGroupBox(tr("Data"));
    auto *df = newForm(dataBox);
    m_projectRadio = new QRadioButton(tr("Project's judged pairs"));
    m_projectRadio->setObjectName(QStringLiteral("dataProject"));
    m_projectRadio->setToolTip(tr("The open project's judged pairs, exported (TRL format) when the run starts, with "
                                  "the filters below. Ties, both-bad and skips are left out."));
    m_fileRadio = new QRadioButton(tr("JSONL file"));
    m_fileRadio->setObjectName(QStringLiteral("dataFile"));
    m_fileRadio->setToolTip(tr("A TRL preference file: {prompt, chosen, rejected}, implicit-prompt or "
                               "conversational rows, one JSON object per line."));
    auto *sourceGroup = new QButtonGroup(this);
    sourceGroup->addButton(m_projectRadio);
    sourceGroup->addButton(m_fileRadio);
    m_fileRadio->setChecked(true);
    df->addRow(tr("Source"), row({m_projectRadio, m_fileRadio}, 9));
    m_minVotes = new QSpinBox;
    m_minVotes->setObjectName(QStringLiteral("minVotes"));
    m_minVotes->setRange(1, 1000);
    m_minVotes->setMaximumWidth(80);
    m_minVotes->setToolTip(tr("Export filter: a pair needs at least this many non-skip votes."));
    m_minAgreement = new QLineEdit(QStringLiteral("0"));
    m_minAgreement->setObjectName(QStringLiteral("minAgreement"));
    m_minAgreement->setMaximumWidth(60);
    m_minAgreement->setToolTip(tr("Export filter: the majority's share of the votes must be at least this (0-1)."));
    df->addRow(tr("Min votes"), row({m_minVotes, new QLabel(tr("min agreement")), m_minAgreement}, 9));
    m_datasetEdit = new QLineEdit;
    m_datasetEdit->setObjectName(QStringLiteral("opt_dataset"));
    m_datasetEdit->setPlaceholderText(tr("pairs.jsonl"));
    m_datasetEdit->setToolTip(m_fileRadio->toolTip());
    auto *browseData = new QToolButton;
    browseData->setText(tr("Browse…"));
    df->addRow(tr("File"), row({m_datasetEdit, browseData}));
    m_evalMode = new QComboBox;
    m_evalMode->setObjectName(QStringLiteral("evalMode"));
    m_evalMode->addItems({tr("None"), tr("Split ratio"), tr("File")});
    m_evalMode->setToolTip(tr("Held-out pairs evaluated every eval_steps and at the end (eval_ metrics). A split is "
                              "drawn from the seed and written to OUTPUT/data/ when the run starts."));
    m_evalRatio = new QDoubleSpinBox;
    m_evalRatio->setObjectName(QStringLiteral("evalRatio"));
    m_evalRatio->setRange(0.01, 0.5);
    m_evalRatio->setSingleStep(0.05);
    m_evalRatio->setValue(0.1);
    m_evalRatio->setMaximumWidth(90);
    m_evalRatio->setToolTip(tr("Share of the pairs held out for evaluation."));
    m_evalFileEdit = new QLineEdit;
    m_evalFileEdit->setObjectName(QStringLiteral("opt_eval_dataset"));
    m_evalFileEdit->setPlaceholderText(tr("eval.jsonl"));
    auto *browseEval = new QToolButton;
    browseEval->setText(tr("…"));
    df->addRow(tr("Eval"), row({m_evalMode, m_evalRatio, m_evalFileEdit, browseEval}, 2));
    m_summaryLabel = new QLabel;
    m_summaryLabel->setObjectName(QStringLiteral("datasetSummary"));
    m_summaryLabel->setWordWrap(true);
    m_summaryLabel->setTextInteractionFlags(Qt::TextSelectableByMouse);
    auto *check = new QToolButton;
    check->setText(tr("Check"));
    check->setToolTip(tr("Recompute the dataset summary (pairs, lengths, skew, rows over max length)."));
    df->addRow(row({m_summaryLabel, check}));
    v->addWidget(dataBox);
    connect(browseData, &QToolButton::clicked, this, [this]() {
        const QString f = QFileDialog::getOpenFileName(this, tr("Preference pairs"), m_datasetEdit->text(),
                                                       tr("JSON lines (*.jsonl *.json);;All files (*)"));
        if (!f.isEmpty())
            setDatasetFile(f);
    });
    connect(browseEval, &QToolButton::clicked, this, [this]() {
        const QString f = QFileDialog::getOpenFileName(this, tr("Eval pairs"), m_evalFileEdit->text(),
                                                       tr("JSON lines (*.jsonl *.json);;All files (*)"));
        if (!f.isEmpty())
            setEvalFile(f);
    });
    connect(check, &QToolButton::clicked, this, &TrainPage::refreshDatasetSummary);
    for (QRadioButton *r : {m_projectRadio, m_fileRadio})
        connect(r, &QRadioButton::toggled, this, [this]() {
            updateDataWidgets();
            scheduleValidation();
            scheduleSummary();
        });
    connect(m_evalMode, &QComboBox::currentIndexChanged, this, [this]() {
        updateDataWidgets();
        scheduleValidation();
        scheduleSummary();
    });
    for (QLineEdit *e : {m_datasetEdit, m_evalFileEdit, m_minAgreement})
        connect(e, &QLineEdit::textChanged, this, [this]() {
            scheduleValidation();
            scheduleSummary();
        });
    connect(m_evalRatio, &QDoubleSpinBox::valueChanged, this, &TrainPage::scheduleSummary);
    connect(m_minVotes, &QSpinBox::valueChanged, this, &TrainPage::scheduleSummary);

    // DPO
    auto *dpoBox = new QGroupBox(tr("DPO"));
    auto *pf = newForm(dpoBox);
    m_lossTypes = new QListWidget;
    m_lossTypes->setObjectName(QStringLiteral("opt_loss_type"));
    m_lossTypes->setFlow(QListView::LeftToRight);
    m_lossTypes->setWrapping(true);
    m_lossTypes->setResizeMode(QListView::Adjust);
    m_lossTypes->setSpacing(1);
    m_lossTypes->setMaximumHeight(112); // every type visible without scrolling at the usual widths
    m_lossTypes->setToolTip(tr("TRL's loss_type: one or several (combined with the weights). sigmoid is DPO; "
                               "ipo, hinge, robust, exo_pair, nca_pair, bco_pair, sppo_hard, aot, aot_unpaired, "
                               "apo_zero, apo_down, discopop, sigmoid_norm (SimPO-style), sft (NLL on chosen)."));
    for (const std::string &t : dpo::dpoLossTypes()) {
        auto *item = new QListWidgetItem(QString::fromStdString(t), m_lossTypes);
        item->setFlags(Qt::ItemIsEnabled | Qt::ItemIsUserCheckable);
        item->setCheckState(Qt::Unchecked);
    }
    pf->addRow(tr("Loss types"), m_lossTypes);
    connect(m_lossTypes, &QListWidget::itemChanged, this, &TrainPage::scheduleValidation);
    m_lossWeights = new QLineEdit;
    m_lossWeights->setObjectName(QStringLiteral("opt_loss_weights"));
    m_lossWeights->setPlaceholderText(tr("1 per type (e.g. 1, 0.5)"));
    m_lossWeights->setToolTip(tr("TRL's loss_weights: one weight per checked loss type, in list order; empty = 1 each."));
    pf->addRow(tr("Loss weights"), m_lossWeights);
    connect(m_lossWeights, &QLineEdit::textChanged, this, &TrainPage::scheduleValidation);
    addDouble(pf, QStringLiteral("beta"), tr("β (beta)"),
              tr("Strength of the implicit KL penalty: higher keeps the policy closer to the reference. TRL "
                 "default 0.1."));
    addDouble(pf, QStringLiteral("label_smoothing"), tr("Label smoothing"),
              tr("ε: the assumed probability that a preference is flipped (conservative DPO, robust, exo_pair, "
                 "aot); in [0, 0.5). TRL default 0."));
    addDouble(pf, QStringLiteral("discopop_tau"), tr("DiscoPOP τ"), tr("Temperature of the discopop loss. TRL default 0.05."));
    m_refMode = new QComboBox;
    m_refMode->setObjectName(QStringLiteral("refMode"));
    m_refMode->addItems({tr("Same model (frozen copy)"), tr("Other model directory"),
                         tr("Precompute once (cached)"), tr("Reference-free"), tr("TR-DPO (synced)")});
    m_refMode->setToolTip(tr("The reference model π_ref:\n"
                             "• same model: a frozen copy of the starting policy (TRL's default)\n"
                             "• other directory: ref_model\n"
                             "• precompute: reference log-probs computed once and cached; the reference "
                             "leaves memory (precompute_ref_log_probs)\n"
                             "• reference-free: log π_ref = 0\n"
                             "• TR-DPO: the reference is mixed towards the policy every N steps "
                             "(sync_ref_model)"));
    pf->addRow(tr("Reference"), m_refMode);
    m_refModelEdit = new QLineEdit;
    m_refModelEdit->setObjectName(QStringLiteral("opt_ref_model"));
    m_refModelEdit->setPlaceholderText(tr("same as the model"));
    m_refModelEdit->setToolTip(tr("Reference model directory (empty = the policy's starting weights)."));
    auto *browseRef = new QToolButton;
    browseRef->setText(tr("…"));
    pf->addRow(tr("Reference dir"), row({m_refModelEdit, browseRef}));
    connect(browseRef, &QToolButton::clicked, this, [this]() {
        const QString dir = QFileDialog::getExistingDirectory(this, tr("Reference model directory"));
        if (!dir.isEmpty())
            m_refModelEdit->setText(dir);
    });
    connect(m_refMode, &QComboBox::currentIndexChanged, this, [this]() {
        updateReferenceWidgets();
        scheduleValidation();
    });
    connect(m_refModelEdit, &QLineEdit::textChanged, this, &TrainPage::scheduleValidation);
    addDouble(pf, QStringLiteral("ref_model_mixup_alpha"), tr("TR-DPO α"),
              tr("TR-DPO: ref ← α·policy + (1 − α)·ref at each sync. TRL default 0.6."));
    addInt(pf, QStringLiteral("ref_model_sync_steps"), tr("TR-DPO sync steps"),
           tr("TR-DPO: synchronise the reference every N optimizer steps. TRL default 512."), 1, 100000000);
    v->addWidget(dpoBox);

    // Optimisation
    auto *optBox = new QGroupBox(tr("Optimisation"));
    auto *of = newForm(optBox);
    addDouble(of, QStringLiteral("learning_rate"), tr("Learning rate"),
              tr("Peak AdamW learning rate. TRL's DPOConfig default 1e-6."));
    addCombo(of, QStringLiteral("lr_scheduler"), tr("Schedule"),
             tr("After warmup: constant, linear decay to 0 (TRL default) or cosine decay."),
             {QStringLiteral("linear"), QStringLiteral("cosine"), QStringLiteral("constant")});
    addInt(of, QStringLiteral("warmup_steps"), tr("Warmup steps"),
           tr("Linear warmup from 0 over this many steps (0 = use the warmup ratio). TRL default 0."), 0, 100000000);
    addDouble(of, QStringLiteral("warmup_ratio"), tr("Warmup ratio"),
              tr("Warmup as a share of the total steps, used when warmup steps is 0. TRL default 0."));
    addInt(of, QStringLiteral("batch_size"), tr("Batch size"),
           tr("Pairs per micro-batch (per_device_train_batch_size). TRL default 8."), 0, 1000000);
    addInt(of, QStringLiteral("grad_accum"), tr("Accumulation"),
           tr("Micro-batches per optimizer step (gradient_accumulation_steps). Effective batch = batch × "
              "accumulation. TRL default 1."),
           0, 1000000);
    addDouble(of, QStringLiteral("max_grad_norm"), tr("Clip grad norm"),
              tr("Clip the global gradient norm to this value (0 = no clipping). TRL default 1.0."));
    addDouble(of, QStringLiteral("weight_decay"), tr("Weight decay"), tr("AdamW's decoupled weight decay. TRL default 0."));
    addDouble(of, QStringLiteral("epochs"), tr("Epochs"),
              tr("Passes over the training pairs, used when max steps is 0 (fractions allowed)."));
    addInt(of, QStringLiteral("max_steps"), tr("Max steps"),
           tr("Optimizer steps to run; > 0 overrides epochs. TRL default -1 (= use epochs); here 0."), 0, 2000000000);
    auto *seed = new QLineEdit;
    seed->setObjectName(QStringLiteral("opt_seed"));
    seed->setMaximumWidth(140);
    seed->setToolTip(tr("Seed of the data order (and of the eval split). A resumed run replays the same order. "
                        "TRL default 42."));
    of->addRow(tr("Seed"), seed);
    m_fields.insert(QStringLiteral("seed"), seed);
    connect(seed, &QLineEdit::textChanged, this, &TrainPage::scheduleValidation);
    auto *shuffle = new QCheckBox(tr("Shuffle every epoch"));
    shuffle->setObjectName(QStringLiteral("opt_shuffle"));
    shuffle->setToolTip(tr("Draw a new pair order each epoch from (seed, epoch)."));
    of->addRow(QString(), shuffle);
    m_fields.insert(QStringLiteral("shuffle"), shuffle);
    connect(shuffle, &QCheckBox::toggled, this, &TrainPage::scheduleValidation);
    auto *sharePrompt = new QCheckBox(tr("Compute each prompt once per pair"));
    sharePrompt->setObjectName(QStringLiteral("opt_share_prompt"));
    sharePrompt->setToolTip(tr("Chosen and rejected start with the same prompt: run it through the model once and let "
                               "both completions attend to it. Same numbers (up to float rounding), less compute: "
                               "half of all prompt tokens. Off: the concatenated batch TRL runs."));
    of->addRow(QString(), sharePrompt);
    m_fields.insert(QStringLiteral("share_prompt"), sharePrompt);
    connect(sharePrompt, &QCheckBox::toggled, this, &TrainPage::scheduleValidation);
    addDouble(of, QStringLiteral("adam_beta1"), tr("Adam β1"), tr("AdamW β1. Default 0.9."));
    addDouble(of, QStringLiteral("adam_beta2"), tr("Adam β2"), tr("AdamW β2. Default 0.999."));
    addDouble(of, QStringLiteral("adam_epsilon"), tr("Adam ε"), tr("AdamW ε. Default 1e-8."));
    v->addWidget(optBox);

    // Sequence
    auto *seqBox = new QGroupBox(tr("Sequence"));
    auto *sf = newForm(seqBox);
    addInt(sf, QStringLiteral("max_length"), tr("Max length"),
           tr("Longest prompt + completion sequence in tokens; longer ones are truncated (0 = no "
              "truncation). TRL default 1024."),
           0, 10000000);
    addCombo(sf, QStringLiteral("truncation_mode"), tr("Truncation"),
             tr("keep_start keeps the first max_length tokens (TRL default); keep_end keeps the last ones."),
             {QStringLiteral("keep_start"), QStringLiteral("keep_end")});
    connect(qobject_cast<QSpinBox *>(m_fields.value(QStringLiteral("max_length"))), &QSpinBox::valueChanged, this,
            &TrainPage::scheduleSummary);
    v->addWidget(seqBox);

    // Checkpoints & logging
    auto *ckBox = new QGroupBox(tr("Output, checkpoints, logging"));
    auto *cf = newForm(ckBox);
    m_outputEdit = new QLineEdit;
    m_outputEdit->setObjectName(QStringLiteral("opt_output_dir"));
    m_outputEdit->setToolTip(tr("The run directory: metrics.jsonl, train_config.json, checkpoint-N/, final/. It "
                                "must not hold another run's checkpoints (use Resume for that)."));
    auto *newOut = new QToolButton;
    newOut->setText(tr("New"));
    newOut->setToolTip(tr("A fresh run directory under the project's runs folder."));
    auto *browseOut = new QToolButton;
    browseOut->setText(tr("…"));
    cf->addRow(tr("Output dir"), row({m_outputEdit, newOut, browseOut}));
    connect(newOut, &QToolButton::clicked, this, &TrainPage::newOutputDir);
    connect(browseOut, &QToolButton::clicked, this, [this]() {
        const QString dir = QFileDialog::getExistingDirectory(this, tr("Output directory"), runsBaseDir());
        if (!dir.isEmpty())
            setOutputDir(dir);
    });
    connect(m_outputEdit, &QLineEdit::textEdited, this, [this]() { m_outputAuto = false; });
    connect(m_outputEdit, &QLineEdit::textChanged, this, &TrainPage::scheduleValidation);
    addInt(cf, QStringLiteral("save_steps"), tr("Save every"),
           tr("Checkpoint every N optimizer steps (0 = only at the end). Stop always saves one. TRL default 500."),
           0, 2000000000);
    addInt(cf, QStringLiteral("save_total_limit"), tr("Keep checkpoints"),
           tr("Keep only the newest N checkpoints (0 = keep all)."), 0, 1000000);
    addInt(cf, QStringLiteral("eval_steps"), tr("Eval every"),
           tr("Evaluate the eval pairs every N steps (0 = only at the end)."), 0, 2000000000);
    addInt(cf, QStringLiteral("logging_steps"), tr("Log every"),
           tr("Write a metrics line every N optimizer steps (the charts show what is logged)."), 0, 1000000);
    v->addWidget(ckBox);

    // Hardware
    auto *hwBox = new QGroupBox(tr("Hardware"));
    auto *hf = newForm(hwBox);
    addCombo(hf, QStringLiteral("device"), tr("Device"),
             tr("auto = CUDA when available, else CPU."), {QStringLiteral("auto"), QStringLiteral("cpu")});
    addCombo(hf, QStringLiteral("dtype"), tr("Dtype"),
             tr("Weights and compute dtype: float32 (exact, CPU), bfloat16 (halves memory on recent GPUs), "
                "float16."),
             {QStringLiteral("float32"), QStringLiteral("bfloat16"), QStringLiteral("float16")});
    addInt(hf, QStringLiteral("threads"), tr("CPU threads"), tr("libtorch intra-op threads (0 = all cores). The page's default leaves one core to the "
                "window; dpo-cli's default is all cores."),
           0, 1024);
    v->addWidget(hwBox);
    v->addStretch(1);

    auto *scroll = new QScrollArea;
    scroll->setWidget(content);
    scroll->setWidgetResizable(true);
    scroll->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    scroll->setFrameShape(QFrame::NoFrame);

    auto *pane = new QWidget;
    auto *pv = new QVBoxLayout(pane);
    pv->setContentsMargins(0, 0, 0, 0);
    pv->addWidget(scroll, 1);
    m_messageLabel = new QLabel;
    m_messageLabel->setObjectName(QStringLiteral("trainMessage"));
    m_messageLabel->setWordWrap(true);
    m_messageLabel->setTextInteractionFlags(Qt::TextSelectableByMouse);
    pv->addWidget(m_messageLabel);
    auto *presetLoad = new QPushButton(tr("Load preset…"));
    presetLoad->setToolTip(tr("Load options from a JSON preset (the format dpo-cli train --config reads)."));
    auto *presetSave = new QPushButton(tr("Save preset…"));
    presetSave->setToolTip(tr("Save these options as a JSON preset (dpo-cli train --config FILE runs it)."));
    auto *copyCli = new QPushButton(tr("Copy as dpo-cli"));
    copyCli->setObjectName(QStringLiteral("copyCli"));
    copyCli->setToolTip(tr("Copy the equivalent dpo-cli train command line to the clipboard (for a GPU server)."));
    auto *defaults = new QPushButton(tr("Defaults"));
    defaults->setToolTip(tr("Reset every option to its default (TRL's where TRL has one)."));
    auto *buttons = new QHBoxLayout;
    buttons->addWidget(presetLoad);
    buttons->addWidget(presetSave);
    buttons->addWidget(copyCli);
    buttons->addWidget(defaults);
    pv->addLayout(buttons);
    connect(presetLoad, &QPushButton::clicked, this, [this]() {
        const QString f = QFileDialog::getOpenFileName(this, tr("Load preset"), runsBaseDir(), tr("JSON (*.json)"));
        QString error;
        if (!f.isEmpty() && !loadPreset(f, &error))
            setMessage(error, true);
    });
    connect(presetSave, &QPushButton::clicked, this, [this]() {
        const QString f = QFileDialog::getSaveFileName(this, tr("Save preset"), runsBaseDir() + "/preset.json",
                                                       tr("JSON (*.json)"));
        QString error;
        if (!f.isEmpty()) {
            if (savePreset(f, &error))
                setMessage(tr("Preset saved: %1").arg(f), false);
            else
                setMessage(error, true);
        }
    });
    connect(copyCli, &QPushButton::clicked, this, &TrainPage::copyCliCommand);
    connect(defaults, &QPushButton::clicked, this, &TrainPage::resetToDefaults);
    pane->setMinimumWidth(360);
    return pane;
}

QWidget *TrainPage::buildRunPane()
{
    auto *pane = new QWidget;
    auto *v = new QVBoxLayout(pane);
    v->setContentsMargins(4, 0, 0, 0);

    auto *controls = new QHBoxLayout;
    m_startButton = new QPushButton(tr("Start"));
    m_startButton->setObjectName(QStringLiteral("startButton"));
    m_startButton->setToolTip(tr("Validate the options and start a new run in the output directory."));
    m_stopButton = new QPushButton(tr("Stop"));
    m_stopButton->setObjectName(QStringLiteral("stopButton"));
    m_stopButton->setToolTip(tr("Stop after the current optimizer step and save a checkpoint (resumable)."));
    m_resumeButton = new QPushButton(tr("Resume"));
    m_resumeButton->setObjectName(QStringLiteral("resumeButton"));
    m_resumeButton->setToolTip(tr("Continue the selected stopped or interrupted run (Runs tab), else the last "
                                  "stopped run, from its newest checkpoint."));
    m_progress = new QProgressBar;
    m_progress->setObjectName(QStringLiteral("trainProgress"));
    m_progress->setRange(0, 1);
    m_progress->setValue(0);
    m_progress->setFormat(tr("not started")); // "0 / 1 steps" would read as a plan of one step
    controls->addWidget(m_startButton);
    controls->addWidget(m_stopButton);
    controls->addWidget(m_resumeButton);
    controls->addWidget(m_progress, 1);
    v->addLayout(controls);
    m_progressLabel = new QLabel(tr("Idle."));
    m_progressLabel->setObjectName(QStringLiteral("progressLabel"));
    m_lastMetricsLabel = new QLabel;
    m_lastMetricsLabel->setObjectName(QStringLiteral("lastMetrics"));
    m_lastMetricsLabel->setTextInteractionFlags(Qt::TextSelectableByMouse);
    auto *status = new QHBoxLayout;
    status->addWidget(m_progressLabel, 1);
    status->addWidget(m_lastMetricsLabel);
    v->addLayout(status);
    connect(m_startButton, &QPushButton::clicked, this, &TrainPage::start);
    connect(m_stopButton, &QPushButton::clicked, this, &TrainPage::stop);
    connect(m_resumeButton, &QPushButton::clicked, this, &TrainPage::resume);

    m_tabs = new QTabWidget;
    m_tabs->setObjectName(QStringLiteral("trainTabs"));
    m_tabs->addTab(m_dashboard, tr("Charts"));
    m_log = new QPlainTextEdit;
    m_log->setObjectName(QStringLiteral("trainLog"));
    m_log->setReadOnly(true);
    m_log->setMaximumBlockCount(20000);
    m_log->setLineWrapMode(QPlainTextEdit::NoWrap);
    m_log->setFont(QFontDatabase::systemFont(QFontDatabase::FixedFont));
    m_tabs->addTab(m_log, tr("Log"));
    m_tabs->addTab(buildRunsTab(), tr("Runs"));
    v->addWidget(m_tabs, 1);
    updateButtons();
    return pane;
}

QWidget *TrainPage::buildRunsTab()
{
    auto *w = new QWidget;
    auto *v = new QVBoxLayout(w);
    m_runsNote = new QLabel;
    m_runsNote->setWordWrap(true);
    v->addWidget(m_runsNote);
    m_runsTable = new QTableWidget(0, 9);
    m_runsTable->setObjectName(QStringLiteral("runsTable"));
    m_runsTable->setHorizontalHeaderLabels({tr("Run"), tr("Status"), tr("Started"), tr("Ended"), tr("Step"),
                                            tr("Loss"), tr("Accuracy"), tr("Margin"), tr("Output directory")});
    m_runsTable->setSelectionBehavior(QAbstractItemView::SelectRows);
    m_runsTable->setSelectionMode(QAbstractItemView::ExtendedSelection);
    m_runsTable->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_runsTable->verticalHeader()->setVisible(false);
    m_runsTable->horizontalHeader()->setStretchLastSection(true);
    m_runsTable->setAlternatingRowColors(true);
    v->addWidget(m_runsTable, 1);
    auto *buttons = new QHBoxLayout;
    auto *show = new QPushButton(tr("Show charts"));
    show->setToolTip(tr("Re-open the selected run's charts from its metrics.jsonl."));
    auto *overlay = new QPushButton(tr("Overlay"));
    overlay->setToolTip(tr("Draw the selected runs over the charts shown (each in its own colour)."));
    auto *diff = new QPushButton(tr("Compare configs"));
    diff->setToolTip(tr("The options that differ between two selected runs."));
    auto *load = new QPushButton(tr("Load config"));
    load->setToolTip(tr("Copy the selected run's options into the form (for a new run)."));
    auto *resumeSel = new QPushButton(tr("Resume"));
    resumeSel->setToolTip(tr("Continue the selected stopped, failed or interrupted run from its newest checkpoint."));
    auto *refresh = new QPushButton(tr("Refresh"));
    for (QPushButton *b : {show, overlay, diff, load, resumeSel, refresh})
        buttons->addWidget(b);
    buttons->addStretch(1);
    v->addLayout(buttons);
    connect(show, &QPushButton::clicked, this, [this]() {
        const auto sel = selectedRuns();
        if (!sel.isEmpty())
            showRunCharts(sel.first(), isTraining());
    });
    connect(overlay, &QPushButton::clicked, this, [this]() {
        for (const dpo::Run &r : selectedRuns())
            showRunCharts(r, true);
    });
    connect(diff, &QPushButton::clicked, this, [this]() {
        const auto sel = selectedRuns();
        if (sel.size() == 2)
            showConfigDiff(sel[0], sel[1]);
        else
            setMessage(tr("Select two runs to compare their configs."), true);
    });
    connect(load, &QPushButton::clicked, this, [this]() {
        const auto sel = selectedRuns();
        if (sel.isEmpty())
            return;
        try {
            auto cfg = dpo::TrainConfig::fromJson(
                nlohmann::json::parse(sel.first().configJson.toStdString()), sel.first().name.toStdString());
            cfg.resume = false;
            setConfig(cfg);
            newOutputDir();
            setMessage(tr("Options of %1 loaded; a new output directory was chosen.").arg(sel.first().name), false);
        } catch (const std::exception &e) {
            setMessage(QString::fromUtf8(e.what()), true);
        }
    });
    connect(resumeSel, &QPushButton::clicked, this, &TrainPage::resume);
    connect(refresh, &QPushButton::clicked, this, &TrainPage::refreshRuns);
    connect(m_runsTable, &QTableWidget::itemSelectionChanged, this, &TrainPage::updateButtons);
    connect(m_runsTable, &QTableWidget::cellDoubleClicked, this, [this](int r, int) {
        if (r >= 0 && r < m_runs.size())
            showRunCharts(m_runs[r], isTraining());
    });
    return w;
}

// ---------------------------------------------------------------- project

void TrainPage::setProject(ProjectSession *session)
{
    m_session = session;
    m_projectRadio->setEnabled(session != nullptr);
    if (!session && m_projectRadio->isChecked())
        m_fileRadio->setChecked(true);
    if (m_outputAuto)
        newOutputDir();
    updateDataWidgets();
    refreshRuns();
    scheduleSummary();
}

QString TrainPage::runsBaseDir() const
{
    if (m_session && !dpo::ProjectStore::isUrl(m_session->location())) {
        const QFileInfo fi(m_session->location());
        return fi.absoluteDir().filePath(fi.completeBaseName() + QStringLiteral("-runs"));
    }
    return QStandardPaths::writableLocation(QStandardPaths::AppDataLocation) + QStringLiteral("/runs");
}

void TrainPage::newOutputDir()
{
    const QString base = runsBaseDir();
    QString name = QStringLiteral("run-") + QDateTime::currentDateTime().toString(QStringLiteral("yyyyMMdd-HHmmss"));
    QString dir = QDir(base).filePath(name);
    for (int i = 2; QFileInfo::exists(dir); ++i)
        dir = QDir(base).filePath(name + QStringLiteral("-%1").arg(i));
    m_outputEdit->setText(dir);
    m_outputAuto = true;
}

void TrainPage::setOutputDir(const QString &dir)
{
    m_outputEdit->setText(dir);
    m_outputAuto = false;
}

QString TrainPage::outputDir() const
{
    return m_outputEdit->text().trimmed();
}

// ---------------------------------------------------------------- options

void TrainPage::resetToDefaults()
{
    dpo::TrainConfig defaults;
    // One core stays with the GUI: with every core computing (and OpenMP threads spinning), the window
    // stutters and, on small machines, training itself slows down (measured: bench_train_gui).
    defaults.threads = std::max(1, QThread::idealThreadCount() - 1);
    defaults.model = m_modelEdit->text().toStdString();
    defaults.dataset = m_datasetEdit->text().toStdString();
    defaults.outputDir = m_outputEdit->text().toStdString();
    setConfig(defaults);
}

void TrainPage::setConfig(const dpo::TrainConfig &config)
{
    const nlohmann::json j = config.toJson();
    for (auto it = m_fields.constBegin(); it != m_fields.constEnd(); ++it) {
        const nlohmann::json &v = j.at(it.key().toStdString());
        if (auto *e = qobject_cast<QLineEdit *>(it.value())) {
            if (v.is_number_float())
                e->setText(formatDouble(v.get<double>()));
            else if (v.is_number_unsigned())
                e->setText(QString::number(v.get<uint64_t>()));
            else if (v.is_number_integer())
                e->setText(QString::number(v.get<int64_t>()));
            else if (v.is_string())
                e->setText(QString::fromStdString(v.get<std::string>()));
        } else if (auto *s = qobject_cast<QSpinBox *>(it.value())) {
            s->setValue(int(std::clamp<int64_t>(v.get<int64_t>(), s->minimum(), s->maximum())));
        } else if (auto *c = qobject_cast<QComboBox *>(it.value())) {
            const QString text = QString::fromStdString(v.get<std::string>());
            if (c->findText(text) < 0)
                c->addItem(text); // e.g. "cuda:1" from a preset made elsewhere: validated at start
            c->setCurrentText(text);
        } else if (auto *b = qobject_cast<QCheckBox *>(it.value())) {
            b->setChecked(v.get<bool>());
        }
    }
    // Loss types + weights
    {
        QSignalBlocker block(m_lossTypes);
        QStringList unknown;
        for (int i = 0; i < m_lossTypes->count(); ++i)
            m_lossTypes->item(i)->setCheckState(Qt::Unchecked);
        // Keep the config's order: items are moved to the front in that order.
        for (int k = int(config.lossType.size()) - 1; k >= 0; --k) {
            const QString t = QString::fromStdString(config.lossType[size_t(k)]);
            const auto found = m_lossTypes->findItems(t, Qt::MatchExactly);
            QListWidgetItem *item = found.isEmpty() ? nullptr : found.first();
            if (!item) {
                item = new QListWidgetItem(t);
                item->setFlags(Qt::ItemIsEnabled | Qt::ItemIsUserCheckable);
            } else {
                m_lossTypes->takeItem(m_lossTypes->row(item));
            }
            m_lossTypes->insertItem(0, item);
            item->setCheckState(Qt::Checked);
        }
    }
    QStringList weights;
    for (double w : config.lossWeights)
        weights << formatDouble(w);
    m_lossWeights->setText(weights.join(QStringLiteral(", ")));
    // Reference handling
    int mode = RefSame;
    if (config.referenceFree)
        mode = RefFree;
    else if (config.syncRefModel)
        mode = RefSync;
    else if (config.precomputeRef)
        mode = RefPrecompute;
    else if (!config.refModel.empty())
        mode = RefOther;
    m_refMode->setCurrentIndex(mode);
    m_refModelEdit->setText(QString::fromStdString(config.refModel));
    // Paths
    if (QString::fromStdString(config.model) != m_modelEdit->text())
        setModelPath(QString::fromStdString(config.model));
    if (!config.dataset.empty()) {
        m_datasetEdit->setText(QString::fromStdString(config.dataset));
        m_fileRadio->setChecked(true);
    }
    if (!config.evalDataset.empty()) {
        m_evalFileEdit->setText(QString::fromStdString(config.evalDataset));
        m_evalMode->setCurrentIndex(2);
    } else if (m_evalMode->currentIndex() == 2) {
        m_evalMode->setCurrentIndex(0);
    }
    if (!config.outputDir.empty() && QString::fromStdString(config.outputDir) != m_outputEdit->text())
        setOutputDir(QString::fromStdString(config.outputDir));
    updateReferenceWidgets();
    updateDataWidgets();
    scheduleValidation();
}

bool TrainPage::buildConfig(dpo::TrainConfig *out, QString *error, bool validate) const
{
    nlohmann::json j = nlohmann::json::object();
    auto fail = [&](const QString &m) {
        if (error)
            *error = m;
        return false;
    };
    for (auto it = m_fields.constBegin(); it != m_fields.constEnd(); ++it) {
        const std::string key = it.key().toStdString();
        if (auto *e = qobject_cast<QLineEdit *>(it.value())) {
            const QString text = e->text().trimmed();
            bool ok = false;
            if (it.key() == QLatin1String("seed")) {
                const qulonglong v = text.toULongLong(&ok);
                if (!ok)
                    return fail(tr("option 'seed': '%1' is not a non-negative integer").arg(text));
                j[key] = uint64_t(v);
            } else {
                const double v = QLocale::c().toDouble(text, &ok);
                if (!ok || !std::isfinite(v))
                    return fail(tr("option '%1': '%2' is not a number").arg(it.key(), text));
                j[key] = v;
            }
        } else if (auto *s = qobject_cast<QSpinBox *>(it.value())) {
            j[key] = int64_t(s->value());
        } else if (auto *c = qobject_cast<QComboBox *>(it.value())) {
            j[key] = c->currentText().toStdString();
        } else if (auto *b = qobject_cast<QCheckBox *>(it.value())) {
            j[key] = b->isChecked();
        }
    }
    std::vector<std::string> types;
    for (int i = 0; i < m_lossTypes->count(); ++i)
        if (m_lossTypes->item(i)->checkState() == Qt::Checked)
            types.push_back(m_lossTypes->item(i)->text().toStdString());
    j["loss_type"] = types;
    std::vector<double> weights;
    for (const QString &w : m_lossWeights->text().split(QLatin1Char(','), Qt::SkipEmptyParts)) {
        bool ok = false;
        const double v = QLocale::c().toDouble(w.trimmed(), &ok);
        if (!ok || !std::isfinite(v))
            return fail(tr("option 'loss_weights': '%1' is not a number").arg(w.trimmed()));
        weights.push_back(v);
    }
    j["loss_weights"] = weights;
    const int mode = m_refMode->currentIndex();
    j["reference_free"] = mode == RefFree;
    j["precompute_ref"] = mode == RefPrecompute;
    j["sync_ref_model"] = mode == RefSync;
    j["ref_model"] = mode == RefSame || mode == RefFree ? std::string() : m_refModelEdit->text().trimmed().toStdString();
    j["model"] = m_modelEdit->text().trimmed().toStdString();
    const bool fromFile = m_fileRadio->isChecked();
    j["dataset"] = fromFile ? m_datasetEdit->text().trimmed().toStdString() : std::string();
    j["eval_dataset"] = m_evalMode->currentIndex() == 2 ? m_evalFileEdit->text().trimmed().toStdString() : std::string();
    j["output_dir"] = m_outputEdit->text().trimmed().toStdString();
    dpo::TrainConfig c;
    try {
        c.update(j, "Train page");
        if (validate) {
            c.validate(/*requireDataset=*/fromFile);
            c.lossConfig().validate();
            if (mode == RefOther && c.refModel.empty())
                throw dpo::Error("option 'ref_model': choose the reference model directory");
            if (!fromFile && !m_session)
                throw dpo::Error("option 'dataset': no project is open; choose a JSONL file");
            if (m_evalMode->currentIndex() == 2 && c.evalDataset.empty())
                throw dpo::Error("option 'eval_dataset': choose the eval file (or another eval mode)");
            bool ok = false;
            const double agreement = QLocale::c().toDouble(m_minAgreement->text().trimmed(), &ok);
            if (!fromFile && (!ok || agreement < 0 || agreement > 1))
                throw dpo::Error("min agreement: must be a number in [0, 1]");
        }
    } catch (const std::exception &e) {
        return fail(QString::fromUtf8(e.what()));
    }
    if (out)
        *out = c;
    return true;
}

bool TrainPage::setOption(const QString &key, const QString &text)
{
    if (QWidget *w = m_fields.value(key)) {
        if (auto *e = qobject_cast<QLineEdit *>(w))
            e->setText(text);
        else if (auto *s = qobject_cast<QSpinBox *>(w))
            s->setValue(text.toInt());
        else if (auto *c = qobject_cast<QComboBox *>(w)) {
            if (c->findText(text) < 0)
                c->addItem(text);
            c->setCurrentText(text);
        } else if (auto *b = qobject_cast<QCheckBox *>(w))
            b->setChecked(text == QLatin1String("true") || text == QLatin1String("1"));
        validateForm();
        return true;
    }
    if (key == QLatin1String("loss_type")) {
        dpo::TrainConfig c;
        if (!buildConfig(&c, nullptr, false))
            return false;
        c.lossType.clear();
        for (const QString &t : text.split(QLatin1Char(','), Qt::SkipEmptyParts))
            c.lossType.push_back(t.trimmed().toStdString());
        QSignalBlocker block(m_lossTypes);
        for (int i = 0; i < m_lossTypes->count(); ++i)
            m_lossTypes->item(i)->setCheckState(
                std::find(c.lossType.begin(), c.lossType.end(), m_lossTypes->item(i)->text().toStdString()) !=
                        c.lossType.end()
                    ? Qt::Checked
                    : Qt::Unchecked);
        validateForm();
        return true;
    }
    QLineEdit *edit = key == QLatin1String("loss_weights") ? m_lossWeights
                      : key == QLatin1String("model")      ? m_modelEdit
                      : key == QLatin1String("ref_model")  ? m_refModelEdit
                      : key == QLatin1String("dataset")    ? m_datasetEdit
                      : key == QLatin1String("eval_dataset") ? m_evalFileEdit
                      : key == QLatin1String("output_dir") ? m_outputEdit
                                                           : nullptr;
    if (!edit)
        return false;
    if (edit == m_modelEdit)
        setModelPath(text);
    else
        edit->setText(text);
    validateForm();
    return true;
}

QString TrainPage::optionText(const QString &key) const
{
    if (QWidget *w = m_fields.value(key)) {
        if (auto *e = qobject_cast<QLineEdit *>(w))
            return e->text();
        if (auto *s = qobject_cast<QSpinBox *>(w))
            return QString::number(s->value());
        if (auto *c = qobject_cast<QComboBox *>(w))
            return c->currentText();
        if (auto *b = qobject_cast<QCheckBox *>(w))
            return b->isChecked() ? QStringLiteral("true") : QStringLiteral("false");
    }
    return {};
}

bool TrainPage::savePreset(const QString &path, QString *error) const
{
    dpo::TrainConfig c;
    if (!buildConfig(&c, error, false))
        return false;
    QSaveFile f(path);
    if (!f.open(QIODevice::WriteOnly | QIODevice::Text)) {
        if (error)
            *error = tr("%1: cannot write (%2)").arg(path, f.errorString());
        return false;
    }
    f.write(QByteArray::fromStdString(c.toJson().dump(2)) + '\n');
    if (!f.commit()) {
        if (error)
            *error = tr("%1: write failed (%2)").arg(path, f.errorString());
        return false;
    }
    return true;
}

bool TrainPage::loadPreset(const QString &path, QString *error)
{
    try {
        dpo::TrainConfig c = dpo::TrainConfig::fromFile(path.toStdString());
        c.resume = false;
        setConfig(c);
        setMessage(tr("Preset loaded: %1").arg(path), false);
        return true;
    } catch (const std::exception &e) {
        if (error)
            *error = QString::fromUtf8(e.what());
        return false;
    }
}

TrainingJob TrainPage::planJob(const dpo::TrainConfig &formConfig) const
{
    TrainingJob job;
    job.config = formConfig;
    job.config.resume = false;
    const QString out = QString::fromStdString(formConfig.outputDir);
    job.runName = QFileInfo(out).fileName();
    job.projectLocation = m_session ? m_session->location() : QString();
    const bool split = m_evalMode->currentIndex() == 1;
    job.evalRatio = split ? m_evalRatio->value() : 0.0;
    const QString train = QDir(out).filePath(QStringLiteral("data/train.jsonl"));
    const QString eval = QDir(out).filePath(QStringLiteral("data/eval.jsonl"));
    if (m_projectRadio->isChecked()) {
        job.source = TrainingJob::Source::Project;
        job.minVotes = m_minVotes->value();
        job.minAgreement = QLocale::c().toDouble(m_minAgreement->text().trimmed());
        job.config.dataset = train.toStdString();
        if (split)
            job.config.evalDataset = eval.toStdString();
    } else if (split) {
        job.source = TrainingJob::Source::File;
        job.sourcePath = QFileInfo(m_datasetEdit->text().trimmed()).absoluteFilePath();
        job.config.dataset = train.toStdString();
        job.config.evalDataset = eval.toStdString();
    }
    return job;
}

QString TrainPage::cliCommand(QString *error) const
{
    dpo::TrainConfig c;
    if (!buildConfig(&c, error, false))
        return {};
    const TrainingJob job = planJob(c);
    const nlohmann::json j = job.config.toJson();
    const nlohmann::json d = dpo::TrainConfig().toJson();
    QStringList parts{QStringLiteral("dpo-cli"), QStringLiteral("train")};
    for (auto it = j.begin(); it != j.end(); ++it) {
        const std::string &key = it.key();
        const bool required = key == "model" || key == "dataset" || key == "output_dir";
        if (!required && it.value() == d.at(key))
            continue;
        if (key == "resume")
            continue;
        QString flag = QStringLiteral("--") + QString::fromStdString(key).replace(QLatin1Char('_'), QLatin1Char('-'));
        const nlohmann::json &v = it.value();
        if (v.is_boolean()) {
            if (key == "shuffle" || key == "share_prompt") {
                if (!v.get<bool>())
                    parts << QStringLiteral("--no-") + QString::fromStdString(key).replace(QLatin1Char('_'), QLatin1Char('-'));
            } else if (v.get<bool>()) {
                parts << flag;
            }
            continue;
        }
        QString value;
        if (v.is_array()) {
            QStringList items;
            for (const auto &e : v)
                items << (e.is_string() ? QString::fromStdString(e.get<std::string>()) : formatDouble(e.get<double>()));
            value = items.join(QLatin1Char(','));
        } else if (v.is_string()) {
            value = QString::fromStdString(v.get<std::string>());
        } else if (v.is_number_float()) {
            value = formatDouble(v.get<double>());
        } else {
            value = QString::fromStdString(v.dump());
        }
        if (value.isEmpty() && !required)
            continue;
        parts << flag << shellQuote(value);
    }
    QString text = parts.join(QLatin1Char(' '));
    if (job.source != TrainingJob::Source::None)
        text = tr("# the data files under %1/data are written by DPO Studio when the run starts\n")
                   .arg(QString::fromStdString(c.outputDir)) +
               text;
    return text;
}

void TrainPage::copyCliCommand()
{
    QString error;
    const QString cmd = cliCommand(&error);
    if (cmd.isEmpty()) {
        setMessage(error, true);
        return;
    }
    QApplication::clipboard()->setText(cmd);
    setMessage(tr("Copied to the clipboard:\n%1").arg(cmd), false);
}

void TrainPage::scheduleValidation()
{
    m_validateTimer->start();
}

void TrainPage::validateForm()
{
    m_validateTimer->stop();
    if (isTraining())
        return; // the line shows the run's state meanwhile
    QString error;
    if (buildConfig(nullptr, &error))
        setMessage(tr("Options valid."), false);
    else
        setMessage(error, true);
}

void TrainPage::setMessage(const QString &text, bool error)
{
    m_messageLabel->setText(text);
    m_messageLabel->setStyleSheet(error ? QStringLiteral("color: #b00020;") : QStringLiteral("color: #2e7d32;"));
    if (error)
        emit statusMessage(text);
}

QString TrainPage::message() const
{
    return m_messageLabel->text();
}

void TrainPage::updateReferenceWidgets()
{
    const int mode = m_refMode->currentIndex();
    m_refModelEdit->setEnabled(mode == RefOther || mode == RefPrecompute || mode == RefSync);
    m_refModelEdit->setPlaceholderText(mode == RefOther ? tr("required") : tr("same as the model"));
    m_fields.value(QStringLiteral("ref_model_mixup_alpha"))->setEnabled(mode == RefSync);
    m_fields.value(QStringLiteral("ref_model_sync_steps"))->setEnabled(mode == RefSync);
}

void TrainPage::updateDataWidgets()
{
    const bool file = m_fileRadio->isChecked();
    m_datasetEdit->setEnabled(file);
    m_minVotes->setEnabled(!file);
    m_minAgreement->setEnabled(!file);
    m_evalRatio->setVisible(m_evalMode->currentIndex() == 1);
    m_evalFileEdit->setVisible(m_evalMode->currentIndex() == 2);
}

// ---------------------------------------------------------------- model and data

void TrainPage::setModelPath(const QString &dir)
{
    m_modelEdit->setText(dir);
    const int seq = ++m_inspectSeq;
    m_modelInfo = ModelInfo();
    m_modelInfo.dir = dir;
    if (dir.trimmed().isEmpty()) {
        m_modelInfoLabel->setText(tr("No model chosen."));
        m_modelInfoLabel->setStyleSheet(QString());
        return;
    }
    m_modelInfoLabel->setText(tr("Checking %1…").arg(dir));
    m_modelInfoLabel->setStyleSheet(QStringLiteral("color: palette(mid);"));
    auto *watcher = new QFutureWatcher<ModelInfo>(this);
    connect(watcher, &QFutureWatcher<ModelInfo>::finished, this, [this, watcher, seq]() {
        const ModelInfo info = watcher->result();
        watcher->deleteLater();
        if (seq != m_inspectSeq)
            return; // another model was picked meanwhile
        m_modelInfo = info;
        m_modelInfoLabel->setText(info.summary());
        m_modelInfoLabel->setStyleSheet(info.ok ? QString() : QStringLiteral("color: #b00020;"));
        emit modelInspected(info.ok);
        scheduleSummary(); // lengths in tokens now
        scheduleValidation();
    });
    watcher->setFuture(QtConcurrent::run(inspectModel, dir.trimmed()));
}

void TrainPage::setDataSource(DataSource source)
{
    (source == DataSource::Project ? m_projectRadio : m_fileRadio)->setChecked(true);
    updateDataWidgets();
}

void TrainPage::setDatasetFile(const QString &path)
{
    m_fileRadio->setChecked(true);
    m_datasetEdit->setText(path);
}

void TrainPage::setEvalSplit(double ratio)
{
    if (ratio > 0) {
        m_evalRatio->setValue(ratio);
        m_evalMode->setCurrentIndex(1);
    } else {
        m_evalMode->setCurrentIndex(0);
    }
}

void TrainPage::setEvalFile(const QString &path)
{
    m_evalFileEdit->setText(path);
    m_evalMode->setCurrentIndex(path.isEmpty() ? 0 : 2);
}

void TrainPage::scheduleSummary()
{
    m_summaryTimer->start();
}

void TrainPage::refreshDatasetSummary()
{
    m_summaryTimer->stop();
    const int seq = ++m_summarySeq;
    if (m_fileRadio->isChecked()) {
        const QString path = m_datasetEdit->text().trimmed();
        if (path.isEmpty()) {
            m_summaryLabel->setText(tr("Choose a JSONL file of preference pairs."));
            return;
        }
        summarizeFile(path, seq);
        return;
    }
    if (!m_session) {
        m_summaryLabel->setText(tr("No project open."));
        return;
    }
    // The project's pairs: exported (with the filters) by the store's worker thread into a temporary
    // file, then summarised like a file.
    if (!m_tempDir)
        m_tempDir = std::make_unique<QTemporaryDir>();
    const QString path = m_tempDir->filePath(QStringLiteral("project-pairs.jsonl"));
    dpo::ExportOptions opt;
    opt.format = dpo::ExportFormat::Trl;
    opt.minVotes = m_minVotes->value();
    opt.minAgreement = QLocale::c().toDouble(m_minAgreement->text().trimmed());
    m_summaryLabel->setText(tr("Exporting the project's judged pairs…"));
    m_session->worker().run<qint64>(
        this, [path, opt](dpo::ProjectStore &store) { return dpo::exportFile(store, path, opt).rows; },
        [this, path, seq](qint64 rows) {
            if (seq != m_summarySeq)
                return;
            if (rows == 0) {
                m_summary = DatasetSummary();
                m_summary.error = tr("The project has no judged pairs that pass the export filters yet.");
                m_summaryLabel->setText(m_summary.error);
                emit datasetSummarized(false);
                return;
            }
            summarizeFile(path, seq);
        },
        [this, seq](const QString &error) {
            if (seq != m_summarySeq)
                return;
            m_summary = DatasetSummary();
            m_summary.error = error;
            m_summaryLabel->setText(error);
            emit datasetSummarized(false);
        });
}

void TrainPage::summarizeFile(const QString &path, int seq)
{
    const QString evalPath = m_evalMode->currentIndex() == 2 ? m_evalFileEdit->text().trimmed() : QString();
    const double ratio = m_evalMode->currentIndex() == 1 ? m_evalRatio->value() : 0.0;
    const QString tokDir = m_modelInfo.ok ? m_modelInfo.dir : QString();
    const qint64 maxLength = qobject_cast<QSpinBox *>(m_fields.value(QStringLiteral("max_length")))->value();
    m_summaryLabel->setText(tr("Reading %1…").arg(QFileInfo(path).fileName()));
    auto *watcher = new QFutureWatcher<DatasetSummary>(this);
    connect(watcher, &QFutureWatcher<DatasetSummary>::finished, this, [this, watcher, seq]() {
        const DatasetSummary s = watcher->result();
        watcher->deleteLater();
        if (seq != m_summarySeq)
            return;
        m_summary = s;
        m_summaryLabel->setText(s.text());
        m_summaryLabel->setStyleSheet(s.ok ? QString() : QStringLiteral("color: #b00020;"));
        emit datasetSummarized(s.ok);
    });
    watcher->setFuture(QtConcurrent::run(summarizeDataset, path, evalPath, tokDir, maxLength, ratio));
}

// ---------------------------------------------------------------- running

bool TrainPage::isTraining() const
{
    return m_runner->isRunning();
}

bool TrainPage::start()
{
    if (isTraining()) {
        setMessage(tr("A run is in progress: stop it first."), true);
        return false;
    }
    dpo::TrainConfig config;
    QString error;
    if (!buildConfig(&config, &error)) {
        setMessage(error, true);
        return false;
    }
    if (!m_modelInfo.ok && !m_modelInfo.error.isEmpty() && m_modelInfo.dir == m_modelEdit->text()) {
        setMessage(tr("option 'model': %1").arg(m_modelInfo.error), true);
        return false;
    }
    if (!dpo::DpoTrainer::latestCheckpoint(config.outputDir).empty()) {
        setMessage(tr("option 'output_dir': %1 already holds checkpoints of a run. Resume it (Runs tab) or pick "
                      "another directory (New).")
                       .arg(QString::fromStdString(config.outputDir)),
                   true);
        return false;
    }
    TrainingJob job = planJob(config);
    // A previous attempt in this directory that never checkpointed may have left its metrics.
    return launch(job);
}

bool TrainPage::launch(const TrainingJob &job)
{
    const QString out = QString::fromStdString(job.config.outputDir);
    auto run = std::make_shared<MetricsRun>(job.runName.isEmpty() ? QFileInfo(out).fileName() : job.runName);
    run->setOutputDir(out);
    m_dashboard->setPrimaryRun(run);
    m_liveBuffer.clear();
    m_primaryLoading = job.config.resume;
    const int loadSeq = ++m_loadSeq;
    if (job.config.resume) {
        // The charts continue where the run was: its metrics.jsonl is read off the GUI thread (it can
        // hold 100,000 lines); live lines arriving meanwhile are replayed over it.
        const QString path = QDir(out).filePath(QStringLiteral("metrics.jsonl"));
        const QString name = run->name();
        auto *watcher = new QFutureWatcher<std::shared_ptr<MetricsRun>>(this);
        connect(watcher, &QFutureWatcher<std::shared_ptr<MetricsRun>>::finished, this, [this, watcher, loadSeq]() {
            auto loaded = watcher->result();
            watcher->deleteLater();
            if (loadSeq != m_loadSeq)
                return;
            m_primaryLoading = false;
            if (!loaded)
                return;
            for (const QVariantMap &m : std::as_const(m_liveBuffer))
                loaded->addMetrics(m);
            m_liveBuffer.clear();
            m_dashboard->setPrimaryRun(loaded);
        });
        watcher->setFuture(QtConcurrent::run([path, name]() {
            QString error;
            return MetricsRun::loadMetricsJsonl(path, name, &error);
        }));
    }
    m_latest.clear();
    m_latestTrain.clear();
    m_firstStep = -1;
    m_progress->setRange(0, 1);
    m_progress->setValue(0);
    m_progress->setFormat(tr("starting…"));
    m_lastStatus.clear();
    m_currentRunId = job.runId;
    m_lastJob = job;
    m_haveLastJob = true;
    if (!m_runner->start(job)) {
        setMessage(tr("A run is in progress: stop it first."), true);
        return false;
    }
    m_elapsed.start();
    m_rateClock.start();
    m_uiTimer->start();
    appendLog(job.config.resume ? tr("resuming %1").arg(out) : tr("starting %1").arg(out));
    setMessage(job.config.resume ? tr("Resuming %1…").arg(run->name()) : tr("Training %1…").arg(run->name()), false);
    m_tabs->setCurrentWidget(m_dashboard);
    updateButtons();
    updateProgress();
    emit trainingStarted();
    return true;
}

void TrainPage::stop()
{
    if (!isTraining())
        return;
    m_runner->requestStop();
    appendLog(tr("stop requested: the trainer saves a checkpoint after the current step"));
    setMessage(tr("Stopping after the current step (saving a checkpoint)…"), false);
    updateButtons();
}

bool TrainPage::isResumable(const dpo::Run &run) const
{
    if (isTraining())
        return false;
    if (run.status != QLatin1String("stopped") && run.status != QLatin1String("interrupted") &&
        run.status != QLatin1String("failed"))
        return false;
    return !dpo::DpoTrainer::latestCheckpoint(run.outputDir.toStdString()).empty();
}

bool TrainPage::resume()
{
    if (isTraining()) {
        setMessage(tr("A run is in progress."), true);
        return false;
    }
    for (const dpo::Run &r : selectedRuns())
        if (isResumable(r))
            return resumeRun(r);
    if (m_haveLastJob && !dpo::DpoTrainer::latestCheckpoint(m_lastJob.config.outputDir).empty() &&
        m_lastStatus != QLatin1String("completed")) {
        TrainingJob job = m_lastJob;
        job.config.resume = true;
        job.source = TrainingJob::Source::None;
        job.runId = m_currentRunId;
        return launch(job);
    }
    setMessage(tr("Nothing to resume: select a stopped or interrupted run in the Runs tab."), true);
    return false;
}

bool TrainPage::resumeRun(const dpo::Run &run)
{
    TrainingJob job;
    try {
        job.config = dpo::TrainConfig::fromJson(nlohmann::json::parse(run.configJson.toStdString()),
                                                run.name.toStdString());
    } catch (const std::exception &e) {
        setMessage(tr("%1: its config cannot be read: %2").arg(run.name, QString::fromUtf8(e.what())), true);
        return false;
    }
    job.config.resume = true;
    job.config.outputDir = run.outputDir.toStdString();
    job.runName = run.name;
    job.runId = run.id;
    job.projectLocation = m_session ? m_session->location() : QString();
    return launch(job);
}

bool TrainPage::canClose()
{
    if (!isTraining())
        return true;
    if (!m_closeRequested) {
        const auto answer = QMessageBox::question(
            this, tr("Training in progress"),
            tr("A training run is in progress. Stop it (a checkpoint is saved, so it can be resumed) and close?"),
            QMessageBox::Yes | QMessageBox::Cancel, QMessageBox::Cancel);
        if (answer != QMessageBox::Yes)
            return false;
        m_closeRequested = true;
        stop();
    }
    return false; // the window closes once the trainer has returned (onFinished / onFailed)
}

void TrainPage::onMetrics(const QVariantMap &metrics)
{
    m_dashboard->addMetrics(metrics);
    if (m_primaryLoading)
        m_liveBuffer.append(metrics);
    m_latest = metrics;
    if (metrics.contains(QStringLiteral("loss"))) {
        m_latestTrain = metrics;
        const qint64 step = metrics.value(QStringLiteral("step")).toLongLong();
        if (m_firstStep < 0) {
            m_firstStep = step;
            m_firstStepSeconds = double(m_rateClock.elapsed()) / 1000.0;
        }
    }
    m_progressDirty = true;
}

void TrainPage::updateProgress()
{
    const bool running = isTraining();
    QStringList parts;
    const qint64 step = m_latestTrain.value(QStringLiteral("step")).toLongLong();
    const qint64 total = m_latestTrain.value(QStringLiteral("total_steps")).toLongLong();
    if (total > 0) {
        m_progress->setFormat(tr("%v / %m steps"));
        m_progress->setRange(0, int(std::min<qint64>(total, INT_MAX)));
        m_progress->setValue(int(std::min<qint64>(step, INT_MAX)));
        parts << tr("step %1 / %2").arg(step).arg(total);
    } else if (running) {
        parts << tr("loading the model and data…");
    }
    if (m_elapsed.isValid())
        parts << tr("elapsed %1").arg(formatSeconds(double(m_elapsed.elapsed()) / 1000.0));
    if (running && m_firstStep >= 0 && step > m_firstStep && total > 0) {
        const double secs = double(m_rateClock.elapsed()) / 1000.0 - m_firstStepSeconds;
        const double perStep = secs / double(step - m_firstStep);
        parts << tr("ETA %1").arg(formatSeconds(perStep * double(total - step)));
    }
    if (m_latestTrain.contains(QStringLiteral("tokens_per_second")))
        parts << tr("%1 tok/s").arg(QLocale().toString(m_latestTrain.value(QStringLiteral("tokens_per_second")).toDouble(), 'f', 0));
    if (m_latest.contains(QStringLiteral("_gpu_used_bytes")))
        parts << tr("GPU memory %1 / %2")
                     .arg(formatBytes(m_latest.value(QStringLiteral("_gpu_used_bytes")).toLongLong()),
                          formatBytes(m_latest.value(QStringLiteral("_gpu_total_bytes")).toLongLong()));
    if (m_latest.contains(QStringLiteral("_rss_bytes")))
        parts << tr("RSS %1").arg(formatBytes(m_latest.value(QStringLiteral("_rss_bytes")).toLongLong()));
    else if (running)
        parts << tr("RSS %1").arg(formatBytes(processRssBytes()));
    if (m_runner->stopRequested() && running)
        parts << tr("stopping…");
    m_progressLabel->setText(parts.isEmpty() ? tr("Idle.") : parts.join(QStringLiteral(" · ")));
    if (!m_latestTrain.isEmpty())
        m_lastMetricsLabel->setText(
            tr("loss %1 · accuracy %2 · margin %3")
                .arg(m_latestTrain.value(QStringLiteral("loss")).toDouble(), 0, 'f', 4)
                .arg(m_latestTrain.value(QStringLiteral("rewards/accuracies")).toDouble(), 0, 'f', 2)
                .arg(m_latestTrain.value(QStringLiteral("rewards/margins")).toDouble(), 0, 'f', 3));
    m_progressDirty = false;
}

QString TrainPage::progressText() const
{
    return m_progressLabel->text();
}

void TrainPage::appendLog(const QString &line)
{
    m_log->appendPlainText(QTime::currentTime().toString(QStringLiteral("HH:mm:ss  ")) + line);
}

QString TrainPage::logText() const
{
    return m_log->toPlainText();
}

void TrainPage::onFinished(const QString &status, const QString &checkpoint, const QString &finalDir)
{
    m_uiTimer->stop();
    m_dashboard->redrawNow();
    updateProgress();
    m_lastStatus = status;
    m_lastCheckpoint = checkpoint;
    if (status == QLatin1String("completed")) {
        setMessage(tr("Completed. Model saved to %1").arg(finalDir), false);
        if (m_outputAuto)
            newOutputDir(); // the next Start makes a new run
    } else {
        setMessage(tr("Stopped; checkpoint %1. Resume continues from it.").arg(checkpoint), false);
    }
    appendLog(tr("%1 (checkpoint %2)").arg(status, checkpoint));
    updateButtons();
    refreshRuns();
    emit trainingFinished(status);
    if (m_closeRequested) {
        m_closeRequested = false;
        if (QWidget *w = window(); w && w != this)
            QTimer::singleShot(0, w, &QWidget::close);
    }
}

void TrainPage::onFailed(const QString &message)
{
    m_uiTimer->stop();
    m_dashboard->redrawNow();
    updateProgress();
    m_lastStatus = QStringLiteral("failed");
    m_lastCheckpoint = QString::fromStdString(dpo::DpoTrainer::latestCheckpoint(m_lastJob.config.outputDir));
    setMessage(tr("Training failed: %1").arg(message), true);
    appendLog(tr("failed: %1").arg(message));
    updateButtons();
    refreshRuns();
    emit trainingFinished(QStringLiteral("failed"));
    if (m_closeRequested) {
        m_closeRequested = false;
        if (QWidget *w = window(); w && w != this)
            QTimer::singleShot(0, w, &QWidget::close);
    }
}

void TrainPage::updateButtons()
{
    const bool running = isTraining();
    m_startButton->setEnabled(!running);
    m_stopButton->setEnabled(running && !m_runner->stopRequested());
    bool canResume = false;
    if (!running) {
        for (const dpo::Run &r : selectedRuns())
            canResume = canResume || isResumable(r);
        canResume = canResume || (m_haveLastJob && m_lastStatus != QLatin1String("completed") && !m_lastStatus.isEmpty());
    }
    m_resumeButton->setEnabled(canResume);
}

// ---------------------------------------------------------------- runs

void TrainPage::refreshRuns()
{
    if (!m_session) {
        m_runs.clear();
        fillRunsTable();
        m_runsNote->setText(tr("Open a project to keep a history of runs. Runs still work without one."));
        emit runsRefreshed();
        return;
    }
    m_runsNote->setText(tr("Runs of this project. A run left \"running\" by a crash shows as interrupted and can "
                           "be resumed from its newest checkpoint."));
    const qint64 live = isTraining() ? m_currentRunId : 0;
    m_session->worker().run<QVector<dpo::Run>>(
        this,
        [live](dpo::ProjectStore &store) {
            QVector<dpo::Run> runs = store.runs();
            // Filesystem checks here too: they are off the GUI thread.
            for (dpo::Run &r : runs)
                if (r.status == QLatin1String("running") && r.id != live && QFileInfo(r.outputDir).isDir() &&
                    !TrainingRunner::isRunLocked(r.outputDir))
                    r.status = QStringLiteral("interrupted");
            std::reverse(runs.begin(), runs.end()); // newest first
            return runs;
        },
        [this](QVector<dpo::Run> runs) {
            m_runs = std::move(runs);
            fillRunsTable();
            updateButtons();
            emit runsRefreshed();
        },
        [this](const QString &error) { m_runsNote->setText(tr("The runs could not be read: %1").arg(error)); });
}

void TrainPage::fillRunsTable()
{
    const QSet<int> selected = [this]() {
        QSet<int> s;
        for (const auto *item : m_runsTable->selectedItems())
            s.insert(item->data(Qt::UserRole).toInt());
        return s;
    }();
    m_runsTable->setRowCount(int(m_runs.size()));
    const QLocale loc;
    for (int i = 0; i < m_runs.size(); ++i) {
        const dpo::Run &r = m_runs[i];
        const QJsonObject last = QJsonDocument::fromJson(r.lastMetricsJson.toUtf8()).object();
        auto num = [&](const char *key, int prec) {
            return last.contains(QLatin1String(key)) ? QString::number(last.value(QLatin1String(key)).toDouble(), 'f', prec)
                                                     : QString();
        };
        const QString step = last.contains(QStringLiteral("step"))
                                 ? QStringLiteral("%1 / %2")
                                       .arg(last.value(QStringLiteral("step")).toInteger())
                                       .arg(last.value(QStringLiteral("total_steps")).toInteger())
                                 : QString();
        const QStringList cells{r.name,
                                r.status,
                                r.startedAt.isValid() ? loc.toString(r.startedAt.toLocalTime(), QLocale::ShortFormat) : QString(),
                                r.endedAt.isValid() ? loc.toString(r.endedAt.toLocalTime(), QLocale::ShortFormat) : QString(),
                                step,
                                num("loss", 4),
                                num("rewards/accuracies", 2),
                                num("rewards/margins", 3),
                                r.outputDir};
        for (int c = 0; c < cells.size(); ++c) {
            auto *item = new QTableWidgetItem(cells[c]);
            item->setData(Qt::UserRole, int(r.id));
            if (c == 0)
                item->setToolTip(QString::fromUtf8(QJsonDocument::fromJson(r.configJson.toUtf8()).toJson()));
            if (c == 1 && (r.status == QLatin1String("interrupted") || r.status == QLatin1String("failed")))
                item->setForeground(QColor(176, 0, 32));
            m_runsTable->setItem(i, c, item);
        }
        if (selected.contains(int(r.id)))
            m_runsTable->selectRow(i);
    }
    m_runsTable->resizeColumnsToContents();
}

QVector<dpo::Run> TrainPage::selectedRuns() const
{
    QVector<dpo::Run> out;
    QSet<int> rows;
    for (const auto &idx : m_runsTable->selectionModel()->selectedRows())
        rows.insert(idx.row());
    QList<int> sorted(rows.begin(), rows.end());
    std::sort(sorted.begin(), sorted.end());
    for (int r : sorted)
        if (r >= 0 && r < m_runs.size())
            out.append(m_runs[r]);
    return out;
}

void TrainPage::showRunCharts(const dpo::Run &run, bool overlay)
{
    const QString path = QDir(run.outputDir).filePath(QStringLiteral("metrics.jsonl"));
    const QString name = run.name;
    auto *watcher = new QFutureWatcher<std::shared_ptr<MetricsRun>>(this);
    connect(watcher, &QFutureWatcher<std::shared_ptr<MetricsRun>>::finished, this, [this, watcher, overlay, path]() {
        auto loaded = watcher->result();
        watcher->deleteLater();
        if (!loaded) {
            setMessage(tr("%1: no metrics to show").arg(path), true);
            return;
        }
        if (overlay || isTraining())
            m_dashboard->addOverlay(loaded);
        else
            m_dashboard->setPrimaryRun(loaded);
        m_tabs->setCurrentWidget(m_dashboard);
        emit chartsLoaded();
    });
    watcher->setFuture(QtConcurrent::run([path, name]() {
        QString error;
        return MetricsRun::loadMetricsJsonl(path, name, &error);
    }));
}

QVector<QStringList> TrainPage::configDiff(const QJsonObject &a, const QJsonObject &b)
{
    QStringList keys = a.keys();
    for (const QString &k : b.keys())
        if (!keys.contains(k))
            keys.append(k);
    std::sort(keys.begin(), keys.end());
    auto text = [](const QJsonValue &v) -> QString {
        if (v.isUndefined())
            return QStringLiteral("—");
        if (v.isString())
            return v.toString();
        if (v.isDouble())
            return formatDouble(v.toDouble());
        if (v.isBool())
            return v.toBool() ? QStringLiteral("true") : QStringLiteral("false");
        return QString::fromUtf8(QJsonDocument(QJsonArray{v}).toJson(QJsonDocument::Compact)).mid(1).chopped(1);
    };
    QVector<QStringList> out;
    for (const QString &k : std::as_const(keys))
        if (a.value(k) != b.value(k))
            out.append({k, text(a.value(k)), text(b.value(k))});
    return out;
}

void TrainPage::showConfigDiff(const dpo::Run &a, const dpo::Run &b)
{
    const auto diff = configDiff(QJsonDocument::fromJson(a.configJson.toUtf8()).object(),
                                 QJsonDocument::fromJson(b.configJson.toUtf8()).object());
    auto *dlg = new QDialog(this);
    dlg->setObjectName(QStringLiteral("configDiffDialog"));
    dlg->setAttribute(Qt::WA_DeleteOnClose);
    dlg->setWindowTitle(tr("Config diff: %1 vs %2").arg(a.name, b.name));
    auto *v = new QVBoxLayout(dlg);
    auto *table = new QTableWidget(int(diff.size()), 3);
    table->setHorizontalHeaderLabels({tr("Option"), a.name, b.name});
    table->verticalHeader()->setVisible(false);
    table->setEditTriggers(QAbstractItemView::NoEditTriggers);
    for (int i = 0; i < diff.size(); ++i)
        for (int c = 0; c < 3; ++c)
            table->setItem(i, c, new QTableWidgetItem(diff[i][c]));
    table->resizeColumnsToContents();
    table->horizontalHeader()->setStretchLastSection(true);
    v->addWidget(new QLabel(diff.isEmpty() ? tr("The two configs are identical.")
                                           : tr("%n option(s) differ.", nullptr, int(diff.size()))));
    v->addWidget(table);
    auto *box = new QDialogButtonBox(QDialogButtonBox::Close);
    connect(box, &QDialogButtonBox::rejected, dlg, &QDialog::close);
    v->addWidget(box);
    dlg->resize(640, 360);
    dlg->show();
}
