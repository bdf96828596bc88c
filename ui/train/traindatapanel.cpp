#include "engine/error.h"

#include "ui/train/traindatapanel.h"

#include "ui/train/trainformhelpers.h"

#include <QButtonGroup>
#include <QComboBox>
#include <QDir>
#include <QDoubleSpinBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QFutureWatcher>
#include <QLabel>
#include <QLineEdit>
#include <QRadioButton>
#include <QSpinBox>
#include <QTemporaryDir>
#include <QTimer>
#include <QToolButton>
#include <QVBoxLayout>
#include <QtConcurrent>

using trainform::newForm;
using trainform::row;

TrainDataPanel::TrainDataPanel(QWidget *parent)
    : QWidget(parent)
{
    m_summaryTimer = new QTimer(this);
    m_summaryTimer->setSingleShot(true);
    m_summaryTimer->setInterval(400);
    connect(m_summaryTimer, &QTimer::timeout, this, &TrainDataPanel::refreshDatasetSummary);

    auto *v = new QVBoxLayout(this);
    v->setContentsMargins(0, 0, 0, 0);
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
    connect(m_modelEdit, &QLineEdit::textChanged, this, &TrainDataPanel::changed);

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
    connect(check, &QToolButton::clicked, this, &TrainDataPanel::refreshDatasetSummary);
    auto sourceChanged = [this]() {
        updateDataWidgets();
        emit changed();
        scheduleSummary();
    };
    for (QRadioButton *r : {m_projectRadio, m_fileRadio})
        connect(r, &QRadioButton::toggled, this, sourceChanged);
    connect(m_evalMode, &QComboBox::currentIndexChanged, this, sourceChanged);
    for (QLineEdit *e : {m_datasetEdit, m_evalFileEdit, m_minAgreement})
        connect(e, &QLineEdit::textChanged, this, [this]() {
            emit changed();
            scheduleSummary();
        });
    connect(m_evalRatio, &QDoubleSpinBox::valueChanged, this, &TrainDataPanel::scheduleSummary);
    connect(m_minVotes, &QSpinBox::valueChanged, this, &TrainDataPanel::scheduleSummary);
    updateDataWidgets();
}

TrainDataPanel::~TrainDataPanel() = default;

void TrainDataPanel::setProject(ProjectSession *session)
{
    m_session = session;
    m_projectRadio->setEnabled(session != nullptr);
    if (!session && m_projectRadio->isChecked())
        m_fileRadio->setChecked(true);
    updateDataWidgets();
    scheduleSummary();
}

// ---------------------------------------------------------------- model

void TrainDataPanel::setModelPath(const QString &dir)
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
        emit changed();
    });
    watcher->setFuture(QtConcurrent::run(inspectModel, dir.trimmed()));
}

QString TrainDataPanel::modelPath() const
{
    return m_modelEdit->text();
}

// ---------------------------------------------------------------- data choices

void TrainDataPanel::setDataSource(DataSource source)
{
    (source == DataSource::Project ? m_projectRadio : m_fileRadio)->setChecked(true);
    updateDataWidgets();
}

bool TrainDataPanel::fromFile() const
{
    return m_fileRadio->isChecked();
}

void TrainDataPanel::setDatasetFile(const QString &path)
{
    m_fileRadio->setChecked(true);
    m_datasetEdit->setText(path);
}

QString TrainDataPanel::datasetFile() const
{
    return m_datasetEdit->text();
}

void TrainDataPanel::setEvalSplit(double ratio)
{
    if (ratio > 0) {
        m_evalRatio->setValue(ratio);
        m_evalMode->setCurrentIndex(1);
    } else {
        m_evalMode->setCurrentIndex(0);
    }
}

void TrainDataPanel::setEvalFile(const QString &path)
{
    m_evalFileEdit->setText(path);
    m_evalMode->setCurrentIndex(path.isEmpty() ? 0 : 2);
}

int TrainDataPanel::evalMode() const
{
    return m_evalMode->currentIndex();
}

void TrainDataPanel::updateDataWidgets()
{
    const bool file = m_fileRadio->isChecked();
    m_datasetEdit->setEnabled(file);
    m_minVotes->setEnabled(!file);
    m_minAgreement->setEnabled(!file);
    m_evalRatio->setVisible(evalMode() == 1);
    m_evalFileEdit->setVisible(evalMode() == 2);
}

// ---------------------------------------------------------------- the config's paths

void TrainDataPanel::writeConfigPaths(nlohmann::json *j) const
{
    (*j)["model"] = m_modelEdit->text().trimmed().toStdString();
    (*j)["dataset"] = fromFile() ? m_datasetEdit->text().trimmed().toStdString() : std::string();
    (*j)["eval_dataset"] = evalMode() == 2 ? m_evalFileEdit->text().trimmed().toStdString() : std::string();
}

void TrainDataPanel::applyConfigPaths(const dpo::TrainConfig &config)
{
    if (QString::fromStdString(config.model) != m_modelEdit->text())
        setModelPath(QString::fromStdString(config.model));
    if (!config.dataset.empty()) {
        m_datasetEdit->setText(QString::fromStdString(config.dataset));
        m_fileRadio->setChecked(true);
    }
    if (!config.evalDataset.empty()) {
        m_evalFileEdit->setText(QString::fromStdString(config.evalDataset));
        m_evalMode->setCurrentIndex(2);
    } else if (evalMode() == 2) {
        m_evalMode->setCurrentIndex(0);
    }
    updateDataWidgets();
}

bool TrainDataPanel::setPathOption(const QString &key, const QString &text)
{
    if (key == QLatin1String("model"))
        setModelPath(text);
    else if (key == QLatin1String("dataset"))
        m_datasetEdit->setText(text);
    else if (key == QLatin1String("eval_dataset"))
        m_evalFileEdit->setText(text);
    else
        return false;
    return true;
}

void TrainDataPanel::validate(const dpo::TrainConfig &config) const
{
    const bool file = fromFile();
    if (!file && !m_session)
        throw dpo::Error("option 'dataset': no project is open; choose a JSONL file");
    if (evalMode() == 2 && config.evalDataset.empty())
        throw dpo::Error("option 'eval_dataset': choose the eval file (or another eval mode)");
    bool ok = false;
    const double agreement = QLocale::c().toDouble(m_minAgreement->text().trimmed(), &ok);
    if (!file && (!ok || agreement < 0 || agreement > 1))
        throw dpo::Error("min agreement: must be a number in [0, 1]");
}

TrainingJob TrainDataPanel::planJob(const dpo::TrainConfig &formConfig) const
{
    TrainingJob job;
    job.config = formConfig;
    job.config.resume = false;
    const QString out = QString::fromStdString(formConfig.outputDir);
    job.runName = QFileInfo(out).fileName();
    job.projectLocation = m_session ? m_session->location() : QString();
    const bool split = evalMode() == 1;
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

// ---------------------------------------------------------------- summary

void TrainDataPanel::setMaxLength(qint64 maxLength)
{
    m_maxLength = maxLength;
    scheduleSummary();
}

void TrainDataPanel::setTruncationMode(const QString &mode)
{
    m_truncationMode = mode;
    scheduleSummary();
}

void TrainDataPanel::setChatTemplate(const QString &file)
{
    m_chatTemplate = file;
    scheduleSummary();
}

void TrainDataPanel::scheduleSummary()
{
    m_summaryTimer->start();
}

void TrainDataPanel::refreshDatasetSummary()
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

void TrainDataPanel::summarizeFile(const QString &path, int seq)
{
    const QString evalPath = evalMode() == 2 ? m_evalFileEdit->text().trimmed() : QString();
    const double ratio = evalMode() == 1 ? m_evalRatio->value() : 0.0;
    const QString tokDir = m_modelInfo.ok ? m_modelInfo.dir : QString();
    DatasetCheckOptions options;
    options.maxLength = m_maxLength;
    options.truncationMode = m_truncationMode;
    options.chatTemplate = m_chatTemplate;
    options.evalRatio = ratio;
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
    watcher->setFuture(QtConcurrent::run(summarizeDataset, path, evalPath, tokDir, options));
}
