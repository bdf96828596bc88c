#include "engine/error.h"
#include "engine/training/memory_estimate.h"

#include "ui/train/trainoptionsform.h"

#include "ui/train/traindata.h"
#include "ui/train/traindatapanel.h"
#include "ui/train/trainformhelpers.h"

#include <QApplication>
#include <QCheckBox>
#include <QClipboard>
#include <QComboBox>
#include <QDateTime>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QFutureWatcher>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QPushButton>
#include <QSaveFile>
#include <QScrollArea>
#include <QSpinBox>
#include <QStandardPaths>
#include <QThread>
#include <QTimer>
#include <QToolButton>
#include <QVBoxLayout>
#include <QtConcurrent>

#include <algorithm>
#include <cmath>

using trainform::formatDouble;
using trainform::newForm;
using trainform::row;

namespace {

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

// Reference handling: one choice for the user, three TrainConfig switches (+ ref_model).
enum RefMode { RefSame = 0, RefOther, RefPrecompute, RefFree, RefSync };

} // namespace

TrainOptionsForm::TrainOptionsForm(TrainDataPanel *data, QWidget *parent)
    : QWidget(parent)
    , m_data(data)
{
    m_validateTimer = new QTimer(this);
    m_validateTimer->setSingleShot(true);
    m_validateTimer->setInterval(150);
    connect(m_validateTimer, &QTimer::timeout, this, &TrainOptionsForm::validateForm);
    connect(m_data, &TrainDataPanel::changed, this, &TrainOptionsForm::scheduleValidation);

    auto *layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(buildOptions());

    // CUDA devices: asking libtorch initialises the driver, so do it off the GUI thread.
    auto *cudaWatcher = new QFutureWatcher<int>(this);
    connect(cudaWatcher, &QFutureWatcher<int>::finished, this, [this, cudaWatcher]() {
        const int n = cudaWatcher->result();
        cudaWatcher->deleteLater();
        addCudaDevices(n);
    });
    cudaWatcher->setFuture(QtConcurrent::run(cudaDeviceCount));
}

void TrainOptionsForm::addCudaDevices(int count)
{
    auto *device = qobject_cast<QComboBox *>(m_fields.value(QStringLiteral("device")));
    for (int i = 0; i < count; ++i) {
        const QString name = i == 0 ? QStringLiteral("cuda") : QStringLiteral("cuda:%1").arg(i);
        if (device->findText(name) < 0)
            device->addItem(name);
    }
    device->setToolTip(device->toolTip() + (count > 0 ? tr("\nCUDA devices found: %1.").arg(count)
                                                      : tr("\nNo CUDA device in this build / machine.")));
    if (count > 1) {
        m_devices->setRange(1, count);
        m_hardwareForm->setRowVisible(m_devices, true);
    }
}

int TrainOptionsForm::devices() const
{
    return m_hardwareForm->isRowVisible(m_devices) ? m_devices->value() : 1;
}

QLineEdit *TrainOptionsForm::addDouble(QFormLayout *form, const QString &key, const QString &label, const QString &tip)
{
    auto *e = new QLineEdit;
    e->setObjectName(QStringLiteral("opt_") + key);
    e->setToolTip(tip);
    e->setMaximumWidth(140);
    form->addRow(label, e);
    if (QWidget *l = form->labelForField(e))
        l->setToolTip(tip);
    m_fields.insert(key, e);
    connect(e, &QLineEdit::textChanged, this, &TrainOptionsForm::scheduleValidation);
    return e;
}

QSpinBox *TrainOptionsForm::addInt(QFormLayout *form, const QString &key, const QString &label, const QString &tip, int min,
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
    connect(s, &QSpinBox::valueChanged, this, &TrainOptionsForm::scheduleValidation);
    return s;
}

QComboBox *TrainOptionsForm::addCombo(QFormLayout *form, const QString &key, const QString &label, const QString &tip,
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
    connect(c, &QComboBox::currentTextChanged, this, &TrainOptionsForm::scheduleValidation);
    return c;
}


QCheckBox *TrainOptionsForm::addCheck(QFormLayout *form, const QString &key, const QString &text, const QString &tip)
{
    auto *box = new QCheckBox(text);
    box->setObjectName(QStringLiteral("opt_") + key);
    box->setToolTip(tip);
    form->addRow(QString(), box);
    m_fields.insert(key, box);
    connect(box, &QCheckBox::toggled, this, &TrainOptionsForm::scheduleValidation);
    return box;
}

QWidget *TrainOptionsForm::buildOptions()
{
    auto *content = new QWidget;
    auto *v = new QVBoxLayout(content);
    v->setContentsMargins(2, 2, 8, 2);
    v->setSpacing(6);

    v->addWidget(m_data);

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
    connect(m_lossTypes, &QListWidget::itemChanged, this, &TrainOptionsForm::scheduleValidation);
    m_lossWeights = new QLineEdit;
    m_lossWeights->setObjectName(QStringLiteral("opt_loss_weights"));
    m_lossWeights->setPlaceholderText(tr("1 per type (e.g. 1, 0.5)"));
    m_lossWeights->setToolTip(tr("TRL's loss_weights: one weight per checked loss type, in list order; empty = 1 each."));
    pf->addRow(tr("Loss weights"), m_lossWeights);
    connect(m_lossWeights, &QLineEdit::textChanged, this, &TrainOptionsForm::scheduleValidation);
    addDouble(pf, QStringLiteral("beta"), tr("β (beta)"),
              tr("Strength of the implicit KL penalty: higher keeps the policy closer to the reference. TRL "
                 "default 0.1."));
    addDouble(pf, QStringLiteral("label_smoothing"), tr("Label smoothing"),
              tr("ε: the assumed probability that a preference is flipped (conservative DPO, robust, exo_pair, "
                 "aot); in [0, 0.5). TRL default 0."));
    addDouble(pf, QStringLiteral("discopop_tau"), tr("DiscoPOP τ"), tr("Temperature of the discopop loss. TRL default 0.05."));
    addCombo(pf, QStringLiteral("f_divergence_type"), tr("f-divergence"),
             tr("TRL's f_divergence_type: the divergence the log-ratios are scored under. reverse_kl is standard "
                "DPO."),
             {QStringLiteral("reverse_kl"), QStringLiteral("forward_kl"), QStringLiteral("js_divergence"),
              QStringLiteral("alpha_divergence")});
    addDouble(pf, QStringLiteral("f_alpha_divergence_coef"), tr("α-divergence coef"),
              tr("α of alpha_divergence. TRL default 0.5."));
    addDouble(pf, QStringLiteral("ld_alpha"), tr("LD-DPO α"),
              tr("LD-DPO: tokens beyond the shorter completion count with weight α in [0, 1]; empty = off."));
    addCheck(pf, QStringLiteral("use_weighting"), tr("WPO weighting (use_weighting)"),
             tr("Weight each pair by the policy's own probability of it (WPO), as TRL's use_weighting."));
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
    connect(m_refModelEdit, &QLineEdit::textChanged, this, &TrainOptionsForm::scheduleValidation);
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
             tr("After warmup: linear decay to 0 (TRL default) or cosine decay; constant has no warmup (as in "
                "transformers), constant_with_warmup ramps up first."),
             {QStringLiteral("linear"), QStringLiteral("cosine"), QStringLiteral("constant"),
              QStringLiteral("constant_with_warmup")});
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
    connect(seed, &QLineEdit::textChanged, this, &TrainOptionsForm::scheduleValidation);
    addCheck(of, QStringLiteral("shuffle"), tr("Shuffle every epoch"),
             tr("Draw a new pair order each epoch from (seed, epoch)."));
    addCheck(of, QStringLiteral("share_prompt"), tr("Compute each prompt once per pair"),
             tr("Chosen and rejected start with the same prompt: run it through the model once and let "
                "both completions attend to it. Same numbers (up to float rounding), less compute: "
                "half of all prompt tokens. Off: the concatenated batch TRL runs."));
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
    connect(qobject_cast<QSpinBox *>(m_fields.value(QStringLiteral("max_length"))), &QSpinBox::valueChanged, m_data,
            &TrainDataPanel::setMaxLength);
    connect(qobject_cast<QComboBox *>(m_fields.value(QStringLiteral("truncation_mode"))), &QComboBox::currentTextChanged,
            m_data, &TrainDataPanel::setTruncationMode);
    auto *chatTemplate = new QLineEdit;
    chatTemplate->setObjectName(QStringLiteral("opt_chat_template"));
    chatTemplate->setPlaceholderText(tr("the model's own"));
    chatTemplate->setToolTip(tr("Jinja chat template for conversational rows (lists of messages), rendered as "
                                "transformers' apply_chat_template. Empty: the model's template "
                                "(chat_template.jinja or tokenizer_config.json)."));
    auto *browseTemplate = new QToolButton;
    browseTemplate->setText(tr("…"));
    sf->addRow(tr("Chat template"), row({chatTemplate, browseTemplate}));
    m_fields.insert(QStringLiteral("chat_template"), chatTemplate);
    connect(browseTemplate, &QToolButton::clicked, this, [this, chatTemplate]() {
        const QString f = QFileDialog::getOpenFileName(this, tr("Chat template"), QString(),
                                                       tr("Jinja templates (*.jinja *.j2 *.txt);;All files (*)"));
        if (!f.isEmpty())
            chatTemplate->setText(f);
    });
    connect(chatTemplate, &QLineEdit::textChanged, this, &TrainOptionsForm::scheduleValidation);
    connect(chatTemplate, &QLineEdit::textChanged, m_data,
            [this](const QString &text) { m_data->setChatTemplate(text.trimmed()); });
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
    connect(newOut, &QToolButton::clicked, this, &TrainOptionsForm::newOutputDir);
    connect(browseOut, &QToolButton::clicked, this, [this]() {
        const QString dir = QFileDialog::getExistingDirectory(this, tr("Output directory"), runsBaseDir());
        if (!dir.isEmpty())
            setOutputDir(dir);
    });
    connect(m_outputEdit, &QLineEdit::textEdited, this, [this]() { m_outputAuto = false; });
    connect(m_outputEdit, &QLineEdit::textChanged, this, &TrainOptionsForm::scheduleValidation);
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
    // Method: full fine-tuning or LoRA adapters (PEFT's format), with the memory each needs.
    auto *methodBox = new QGroupBox(tr("Method"));
    auto *mf = newForm(methodBox);
    auto *method = addCombo(mf, QStringLiteral("method"), tr("Method"),
        tr("full: every weight trains (about 20 bytes per parameter in float32, with a reference copy).\n"
           "lora: low-rank adapters train on the frozen base; the reference is the base with the adapters "
           "off (no second copy). Checkpoints are PEFT adapter folders."),
        { QStringLiteral("full"), QStringLiteral("lora") });
    addInt(mf, QStringLiteral("lora_r"), tr("LoRA rank r"), tr("Rank of each adapter (PEFT's r). Default 8."), 1, 4096);
    addDouble(mf, QStringLiteral("lora_alpha"), tr("LoRA α"),
        tr("Scaling numerator: adapters are scaled by alpha / r (alpha / sqrt(r) with rsLoRA). Default 16."));
    addDouble(mf, QStringLiteral("lora_dropout"), tr("LoRA dropout"), tr("Dropout on the adapters' input. Default 0."));
    m_loraTargets = new QLineEdit;
    m_loraTargets->setObjectName(QStringLiteral("opt_lora_target_modules"));
    m_loraTargets->setPlaceholderText(tr("attention and MLP projections"));
    m_loraTargets->setToolTip(tr("Module names to adapt, comma-separated (e.g. q_proj, v_proj), or all-linear; "
                                 "empty = every attention and MLP projection."));
    mf->addRow(tr("Target modules"), m_loraTargets);
    connect(m_loraTargets, &QLineEdit::textChanged, this, &TrainOptionsForm::scheduleValidation);
    addCheck(mf, QStringLiteral("use_rslora"), tr("rsLoRA scaling (alpha / √r)"), QString());
    m_memoryLabel = new QLabel;
    m_memoryLabel->setObjectName(QStringLiteral("memoryEstimate"));
    m_memoryLabel->setWordWrap(true);
    m_memoryLabel->setTextFormat(Qt::PlainText);
    m_memoryLabel->setToolTip(tr("Estimated before Start from the model's shape, the dtype, the batch size and the "
                                 "max length: training state by the README's formula (weights, gradients, AdamW "
                                 "moments, reference copy) plus a rough upper estimate of the activations."));
    mf->addRow(tr("Memory"), m_memoryLabel);
    connect(method, &QComboBox::currentTextChanged, this, &TrainOptionsForm::updateMethodWidgets);
    v->insertWidget(1, methodBox); // right under the model and data: the first choice a run makes

    auto *hwBox = new QGroupBox(tr("Hardware"));
    auto *hf = newForm(hwBox);
    m_hardwareForm = hf;
    addCombo(hf, QStringLiteral("device"), tr("Device"),
             tr("auto = CUDA when available, else CPU."), {QStringLiteral("auto"), QStringLiteral("cpu")});
    m_devices = new QSpinBox;
    m_devices->setObjectName(QStringLiteral("opt_devices"));
    m_devices->setRange(1, 1);
    m_devices->setToolTip(tr("GPUs to train on, one process each (data parallel: each takes batch size pairs per "
                             "micro-batch, gradients are averaged; dpo-cli train --nproc N). Shown when more "
                             "than one CUDA device is visible."));
    hf->addRow(tr("Devices"), m_devices);
    hf->setRowVisible(m_devices, false);
    connect(m_devices, qOverload<int>(&QSpinBox::valueChanged), this, &TrainOptionsForm::scheduleValidation);
    addCombo(hf, QStringLiteral("dtype"), tr("Dtype"),
             tr("Weights and compute dtype: auto = bfloat16 on a GPU that has it, else float32; float32 (exact); "
                "bfloat16 (halves memory); float16 (CUDA only, with dynamic loss scaling)."),
             {QStringLiteral("auto"), QStringLiteral("float32"), QStringLiteral("bfloat16"), QStringLiteral("float16")});
    addCombo(hf, QStringLiteral("adamw_state_dtype"), tr("AdamW state"),
             tr("float32: float32 moments and a float32 master copy of 16-bit weights (small updates are kept). "
                "weights: moments in the weights' dtype and no master copy, as torch's AdamW on a model loaded "
                "in bfloat16 (what TRL runs): 8 bytes per parameter less. Not with float16."),
             {QStringLiteral("float32"), QStringLiteral("weights")});
    addInt(hf, QStringLiteral("threads"), tr("CPU threads"), tr("libtorch intra-op threads (0 = all cores). The page's default leaves one core to the "
                "window; dpo-cli's default is all cores."),
           0, 1024);
    addCheck(hf, QStringLiteral("gradient_checkpointing"), tr("Gradient checkpointing"),
             tr("Recompute each layer's activations during backward instead of keeping them: "
                "much less memory for long sequences and big models, about a third more compute, "
                "the same gradients. Each prompt is then computed with its completions (not shared)."));
    addCheck(hf, QStringLiteral("padding_free"), tr("Padding-free batches"),
             tr("Pack each batch's sequences into one row with no padding (TRL's padding_free): no "
                "compute on padding when lengths differ a lot; the same numbers. Replaces the shared "
                "prompt; not with LD-DPO."));
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
    connect(copyCli, &QPushButton::clicked, this, &TrainOptionsForm::copyCliCommand);
    connect(defaults, &QPushButton::clicked, this, &TrainOptionsForm::resetToDefaults);
    pane->setMinimumWidth(360);
    return pane;
}

QString TrainOptionsForm::runsBaseDir() const
{
    const ProjectSession *session = m_data->session();
    if (session && !dpo::ProjectStore::isUrl(session->location())) {
        const QFileInfo fi(session->location());
        return fi.absoluteDir().filePath(fi.completeBaseName() + QStringLiteral("-runs"));
    }
    return QStandardPaths::writableLocation(QStandardPaths::AppDataLocation) + QStringLiteral("/runs");
}

void TrainOptionsForm::newOutputDir()
{
    const QString base = runsBaseDir();
    QString name = QStringLiteral("run-") + QDateTime::currentDateTime().toString(QStringLiteral("yyyyMMdd-HHmmss"));
    QString dir = QDir(base).filePath(name);
    for (int i = 2; QFileInfo::exists(dir); ++i)
        dir = QDir(base).filePath(name + QStringLiteral("-%1").arg(i));
    m_outputEdit->setText(dir);
    m_outputAuto = true;
}

void TrainOptionsForm::setOutputDir(const QString &dir)
{
    m_outputEdit->setText(dir);
    m_outputAuto = false;
}

QString TrainOptionsForm::outputDir() const
{
    return m_outputEdit->text().trimmed();
}

// ---------------------------------------------------------------- options

void TrainOptionsForm::resetToDefaults()
{
    dpo::TrainConfig defaults;
    // One core stays with the GUI: with every core computing (and OpenMP threads spinning), the window
    // stutters and, on small machines, training itself slows down (measured: bench_train_gui).
    defaults.threads = std::max(1, QThread::idealThreadCount() - 1);
    defaults.model = m_data->modelPath().toStdString();
    defaults.dataset = m_data->datasetFile().toStdString();
    defaults.outputDir = m_outputEdit->text().toStdString();
    setConfig(defaults);
}

void TrainOptionsForm::setConfig(const dpo::TrainConfig &config)
{
    const nlohmann::json j = config.toJson();
    for (auto it = m_fields.constBegin(); it != m_fields.constEnd(); ++it) {
        const nlohmann::json &v = j.at(it.key().toStdString());
        if (auto *e = qobject_cast<QLineEdit *>(it.value())) {
            if (v.is_null())
                e->clear(); // an optional value that is off (ld_alpha)
            else if (v.is_number_float())
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
    QStringList targets;
    for (const auto &t : config.loraTargetModules)
        targets << QString::fromStdString(t);
    m_loraTargets->setText(targets.join(QStringLiteral(", ")));
    updateMethodWidgets();
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
    m_data->applyConfigPaths(config);
    if (!config.outputDir.empty() && QString::fromStdString(config.outputDir) != m_outputEdit->text())
        setOutputDir(QString::fromStdString(config.outputDir));
    updateReferenceWidgets();
    scheduleValidation();
}

bool TrainOptionsForm::buildConfig(dpo::TrainConfig *out, QString *error, bool validate) const
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
            if (text.isEmpty() && it.key() == QLatin1String("ld_alpha")) {
                j[key] = nullptr; // off
            } else if (it.key() == QLatin1String("chat_template")) {
                j[key] = text.toStdString(); // a path; empty = the model's own
            } else if (it.key() == QLatin1String("seed")) {
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
    std::vector<std::string> loraTargets;
    for (const QString &t : m_loraTargets->text().split(QLatin1Char(','), Qt::SkipEmptyParts))
        if (!t.trimmed().isEmpty())
            loraTargets.push_back(t.trimmed().toStdString());
    j["lora_target_modules"] = loraTargets;
    const int mode = m_refMode->currentIndex();
    j["reference_free"] = mode == RefFree;
    j["precompute_ref"] = mode == RefPrecompute;
    j["sync_ref_model"] = mode == RefSync;
    j["ref_model"] = mode == RefSame || mode == RefFree ? std::string() : m_refModelEdit->text().trimmed().toStdString();
    m_data->writeConfigPaths(&j);
    const bool fromFile = m_data->fromFile();
    j["output_dir"] = m_outputEdit->text().trimmed().toStdString();
    dpo::TrainConfig c;
    try {
        c.update(j, "Train page");
        if (validate) {
            c.validate(/*requireDataset=*/fromFile);
            c.lossConfig().validate();
            if (mode == RefOther && c.refModel.empty())
                throw dpo::Error("option 'ref_model': choose the reference model directory");
            m_data->validate(c);
        }
    } catch (const std::exception &e) {
        return fail(QString::fromUtf8(e.what()));
    }
    if (out)
        *out = c;
    return true;
}

bool TrainOptionsForm::setOption(const QString &key, const QString &text)
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
                      : key == QLatin1String("ref_model")  ? m_refModelEdit
                      : key == QLatin1String("output_dir") ? m_outputEdit
                                                           : nullptr;
    if (edit)
        edit->setText(text);
    else if (!m_data->setPathOption(key, text))
        return false;
    validateForm();
    return true;
}

QString TrainOptionsForm::optionText(const QString &key) const
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

bool TrainOptionsForm::savePreset(const QString &path, QString *error) const
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

bool TrainOptionsForm::loadPreset(const QString &path, QString *error)
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


QString TrainOptionsForm::cliCommand(QString *error) const
{
    dpo::TrainConfig c;
    if (!buildConfig(&c, error, false))
        return {};
    const TrainingJob job = m_data->planJob(c);
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
            if (key == "tf32") { // on by default: a value flag, not a switch
                parts << flag << QString::fromLatin1(v.get<bool>() ? "true" : "false");
                continue;
            }
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
    if (devices() > 1)
        parts << QStringLiteral("--nproc") << QString::number(devices());
    QString text = parts.join(QLatin1Char(' '));
    if (job.source != TrainingJob::Source::None)
        text = tr("# the data files under %1/data are written by DPO Studio when the run starts\n")
                   .arg(QString::fromStdString(c.outputDir)) +
               text;
    return text;
}

void TrainOptionsForm::copyCliCommand()
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

void TrainOptionsForm::scheduleValidation()
{
    m_validateTimer->start();
}

void TrainOptionsForm::updateMethodWidgets()
{
    const bool lora = qobject_cast<QComboBox *>(m_fields.value(QStringLiteral("method")))->currentText()
        == QLatin1String("lora");
    for (const char *key : { "lora_r", "lora_alpha", "lora_dropout", "use_rslora" })
        m_fields.value(QString::fromLatin1(key))->setEnabled(lora);
    m_loraTargets->setEnabled(lora);
    scheduleValidation();
}

QString TrainOptionsForm::memoryEstimateText() const
{
    return m_memoryLabel->text();
}

void TrainOptionsForm::updateMemoryEstimate()
{
    const ModelInfo &info = m_data->modelInfo();
    dpo::TrainConfig c;
    if (!info.ok || info.parameters <= 0 || !buildConfig(&c, nullptr, false)) {
        m_memoryLabel->setText(info.ok ? tr("(fix the options above for an estimate)")
                                       : tr("Choose a model to see the memory each method needs."));
        return;
    }
    dpo::MemoryEstimateInput in;
    in.model.parameters = info.parameters;
    in.model.layers = info.layers;
    in.model.hidden = info.hidden;
    in.model.intermediate = info.intermediate;
    in.model.heads = info.heads;
    in.model.kvHeads = info.kvHeads;
    in.model.headDim = info.headDim;
    in.model.vocab = info.vocabSize;
    in.loraR = c.loraR;
    in.loraTargets = c.loraTargetModules;
    in.dtype = c.dtype == "auto" ? "float32" : c.dtype;
    in.float32AdamWState = c.adamwStateDtype == "float32";
    in.referenceCopy = !c.referenceFree && !c.precomputeRef;
    in.batchPairs = std::max<int64_t>(1, c.batchSize);
    in.seqLen = c.maxLength > 0 ? std::min<int64_t>(c.maxLength, std::max<qint64>(1, info.maxPositions))
                                : std::max<qint64>(1, info.maxPositions);
    auto line = [&](const char *method) {
        in.method = method;
        const dpo::MemoryEstimate e = dpo::estimateTrainingMemory(in);
        return tr("%1 (state %2 = %3 B/param, activations %4); %5 trainable")
            .arg(QString::fromStdString(dpo::formatBytes(e.total())),
                QString::fromStdString(dpo::formatBytes(e.total() - e.activations)))
            .arg(e.stateBytesPerParameter, 0, 'f', 1)
            .arg(QString::fromStdString(dpo::formatBytes(e.activations)), QLocale().toString(qlonglong(e.trainable)));
    };
    const bool lora = c.useLora();
    // Both methods, the chosen one marked, so the choice can be made from the numbers.
    const QString full = line("full"), adapters = line("lora");
    m_memoryLabel->setText(tr("%1 Full: %2\n%3 LoRA: %4\nfor %5 pairs × %6 tokens in %7")
                               .arg(lora ? QStringLiteral("  ") : QStringLiteral("▸"), full,
                                   lora ? QStringLiteral("▸") : QStringLiteral("  "), adapters)
                               .arg(in.batchPairs)
                               .arg(in.seqLen)
                               .arg(QString::fromStdString(in.dtype)));
}

void TrainOptionsForm::validateForm()
{
    m_validateTimer->stop();
    updateMemoryEstimate();
    if (m_busy)
        return; // the line shows the run's state meanwhile
    QString error;
    if (buildConfig(nullptr, &error))
        setMessage(tr("Options valid."), false);
    else
        setMessage(error, true);
}

void TrainOptionsForm::setMessage(const QString &text, bool error)
{
    m_messageLabel->setText(text);
    m_messageLabel->setStyleSheet(error ? QStringLiteral("color: #b00020;") : QStringLiteral("color: #2e7d32;"));
    if (error)
        emit errorShown(text);
}

QString TrainOptionsForm::message() const
{
    return m_messageLabel->text();
}

void TrainOptionsForm::updateReferenceWidgets()
{
    const int mode = m_refMode->currentIndex();
    m_refModelEdit->setEnabled(mode == RefOther || mode == RefPrecompute || mode == RefSync);
    m_refModelEdit->setPlaceholderText(mode == RefOther ? tr("required") : tr("same as the model"));
    m_fields.value(QStringLiteral("ref_model_mixup_alpha"))->setEnabled(mode == RefSync);
    m_fields.value(QStringLiteral("ref_model_sync_steps"))->setEnabled(mode == RefSync);
}


void TrainOptionsForm::loadRunConfig(const dpo::Run &run)
{
    try {
        auto cfg = dpo::TrainConfig::fromJson(nlohmann::json::parse(run.configJson.toStdString()),
                                              run.name.toStdString());
        cfg.resume = false;
        setConfig(cfg);
        newOutputDir();
        setMessage(tr("Options of %1 loaded; a new output directory was chosen.").arg(run.name), false);
    } catch (const std::exception &e) {
        setMessage(QString::fromUtf8(e.what()), true);
    }
}
