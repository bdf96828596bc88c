#include "ui/evaluate/evaluatepage.h"

#include "ui/shell/bundleddemo.h"

#include "ui/evaluate/evaluationreport.h"
#include "ui/label/labelpage.h"
#include "ui/shell/mainwindow.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDateTime>
#include <QDir>
#include <QDoubleSpinBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QLineEdit>
#include <QLocale>
#include <QMessageBox>
#include <QProgressBar>
#include <QPushButton>
#include <QRadioButton>
#include <QRegularExpression>
#include <QScrollBar>
#include <QSet>
#include <QSettings>
#include <QSpinBox>
#include <QSplitter>
#include <QTabWidget>
#include <QTableWidget>
#include <QTreeWidget>
#include <QVBoxLayout>

#include <qcustomplot.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>

namespace {

const char *extraModelsKey = "eval/extra_models";
enum ItemRole { PathRole = Qt::UserRole, NameRole, CheckpointRole };

QJsonObject jsonObject(const QString &text)
{
    return QJsonDocument::fromJson(text.toUtf8()).object();
}

bool isModelDir(const QString &dir)
{
    return dpo::isModelDirectory(dir);
}

QString fmt(double v, int decimals)
{
    return std::isfinite(v) ? QString::number(v, 'f', decimals) : QStringLiteral("–");
}

QString pct(double v)
{
    return std::isfinite(v) ? QString::number(100.0 * v, 'f', 1) + QLatin1Char('%') : QStringLiteral("–");
}

QTableWidgetItem *cell(const QString &text, bool number = false)
{
    auto *it = new QTableWidgetItem(text);
    it->setFlags(Qt::ItemIsSelectable | Qt::ItemIsEnabled);
    if (number)
        it->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
    return it;
}

QTableWidget *table(const QStringList &headers)
{
    auto *t = new QTableWidget(0, int(headers.size()));
    t->setHorizontalHeaderLabels(headers);
    t->verticalHeader()->setVisible(false);
    t->setEditTriggers(QAbstractItemView::NoEditTriggers);
    t->setSelectionBehavior(QAbstractItemView::SelectRows);
    t->setAlternatingRowColors(true);
    return t;
}

// A short table as tall as its rows (up to 12 shown), so the charts above get the room.
void fitHeight(QTableWidget *t)
{
    int h = t->horizontalHeader()->height() + 2 * t->frameWidth();
    for (int r = 0; r < std::min(t->rowCount(), 12); ++r)
        h += t->rowHeight(r);
    if (t->rowCount() > 12)
        h += t->horizontalScrollBar()->sizeHint().height();
    t->setMaximumHeight(h + 2);
}

QCustomPlot *plotWidget()
{
    auto *p = new QCustomPlot;
    p->setMinimumHeight(240);
    p->setInteraction(QCP::iRangeDrag, false);
    return p;
}

// checkpoint-N directories of a run, by N, then final/.
struct CheckpointDir {
    QString path;
    QString name;
    qint64 step = 0;
};

QVector<CheckpointDir> checkpointDirs(const QString &outputDir, qint64 finalStep)
{
    QVector<CheckpointDir> out;
    static const QRegularExpression re(QStringLiteral("^checkpoint-(\\d+)$"));
    const QDir d(outputDir);
    for (const QFileInfo &fi : d.entryInfoList(QDir::Dirs | QDir::NoDotAndDotDot)) {
        const QRegularExpressionMatch m = re.match(fi.fileName());
        if (m.hasMatch() && isModelDir(fi.filePath()))
            out.push_back({ fi.filePath(), fi.fileName(), m.captured(1).toLongLong() });
    }
    std::sort(out.begin(), out.end(), [](const CheckpointDir &a, const CheckpointDir &b) { return a.step < b.step; });
    const QString fin = d.filePath(QStringLiteral("final"));
    if (isModelDir(fin))
        out.push_back({ fin, QStringLiteral("final"), std::max(finalStep, out.isEmpty() ? 0 : out.last().step) });
    return out;
}

qint64 runFinalStep(const dpo::Run &run)
{
    return qint64(jsonObject(run.lastMetricsJson).value(QStringLiteral("step")).toDouble(0));
}

QString configPath(const dpo::Run &run, const QString &key)
{
    const QString p = jsonObject(run.configJson).value(key).toString();
    if (p.isEmpty())
        return {};
    if (QFileInfo(p).isAbsolute() || QFileInfo::exists(p))
        return p;
    const QString rel = QDir(run.outputDir).filePath(p);
    return QFileInfo::exists(rel) ? rel : p;
}

} // namespace

EvaluatePage::EvaluatePage(MainWindow *window, QWidget *parent)
    : QWidget(parent)
    , m_window(window)
    , m_runner(new EvaluationRunner(this))
{
    setObjectName(QStringLiteral("evaluatePage"));
    buildUi();
    connect(m_runner, &EvaluationRunner::progress, this, [this](qint64 done, qint64 total, const QString &text) {
        m_progress->setMaximum(int(std::max<qint64>(1, total)));
        m_progress->setValue(int(done));
        if (!text.isEmpty())
            m_progressLabel->setText(text);
    });
    connect(m_runner, &EvaluationRunner::runningChanged, this, &EvaluatePage::setBusy);
    connect(m_runner, &EvaluationRunner::generationFinished, this, [this](const GenerationSummary &s) {
        m_lastGeneration = s;
        const QString text = tr("%1 prompts: %2 completions generated, %3 found in the project (cached), %4 s%5")
                                 .arg(s.promptIds.size())
                                 .arg(s.generated)
                                 .arg(s.cached)
                                 .arg(s.seconds, 0, 'f', 1)
                                 .arg(s.cancelled ? tr(" — cancelled") : QString());
        m_setupInfo->setText(text);
        m_progressLabel->setText(text);
        m_judge->setEnabled(!s.cancelled && !s.promptIds.isEmpty());
        emit generationFinished(s);
        if (m_session)
            emit m_session->contentChanged();
    });
    connect(m_runner, &EvaluationRunner::checkpointScored, this, [this](const CheckpointScore &s) {
        m_scores << s;
        plotCheckpointScores(m_accPlot, m_shiftPlot, m_scores);
        const int row = m_scoreTable->rowCount();
        m_scoreTable->insertRow(row);
        m_scoreTable->setItem(row, 0, cell(s.name));
        m_scoreTable->setItem(row, 1, cell(QString::number(s.step), true));
        m_scoreTable->setItem(row, 2, cell(QString::number(s.pairs), true));
        m_scoreTable->setItem(row, 3, cell(pct(s.accuracy), true));
        m_scoreTable->setItem(row, 4, cell(fmt(s.meanMargin, 4), true));
        m_scoreTable->setItem(row, 5, cell(fmt(s.shiftChosen, 3), true));
        m_scoreTable->setItem(row, 6, cell(fmt(s.shiftRejected, 3), true));
    });
    connect(m_runner, &EvaluationRunner::scoringFinished, this, [this](bool cancelled) {
        m_progressLabel->setText(cancelled ? tr("Scoring cancelled.") : tr("Scoring finished."));
        emit scoringFinished(cancelled);
    });
    connect(m_runner, &EvaluationRunner::failed, this, [this](const QString &m) {
        m_progressLabel->setText(tr("Failed: %1").arg(m));
        emit jobFailed(m);
    });
    // The page's messages also show in its own footer (MainWindow does not listen to every page).
    connect(this, &EvaluatePage::statusMessage, m_progressLabel, &QLabel::setText);
}

EvaluatePage::~EvaluatePage() = default;

void EvaluatePage::buildUi()
{
    m_tabs = new QTabWidget;
    m_tabs->addTab(buildSetupTab(), tr("Setup"));
    m_tabs->addTab(buildResultsTab(), tr("Results"));
    m_tabs->addTab(buildPromptsTab(), tr("Per prompt"));
    m_tabs->addTab(buildCheckpointsTab(), tr("Checkpoints"));
    m_tabs->setCurrentIndex(QSettings().value(QStringLiteral("evaluate/tab"), 0).toInt());
    connect(m_tabs, &QTabWidget::currentChanged, this,
        [](int i) { QSettings().setValue(QStringLiteral("evaluate/tab"), i); });

    m_progress = new QProgressBar;
    m_progress->setMaximumWidth(260);
    m_progress->setValue(0);
    m_progress->setTextVisible(false);
    m_progressLabel = new QLabel;
    m_progressLabel->setObjectName(QStringLiteral("evalProgressLabel"));
    m_cancel = new QPushButton(tr("Cancel"));
    m_cancel->setEnabled(false);
    connect(m_cancel, &QPushButton::clicked, this, &EvaluatePage::cancel);
    auto *footer = new QHBoxLayout;
    footer->addWidget(m_progress);
    footer->addWidget(m_progressLabel, 1);
    footer->addWidget(m_cancel);

    auto *lay = new QVBoxLayout(this);
    lay->addWidget(m_tabs, 1);
    lay->addLayout(footer);
}

QWidget *EvaluatePage::buildSetupTab()
{
    // Models.
    m_models = new QTreeWidget;
    m_models->setObjectName(QStringLiteral("evalModels"));
    m_models->setHeaderLabels({ tr("Model or checkpoint"), tr("Directory") });
    m_models->setRootIsDecorated(true);
    m_models->header()->setSectionResizeMode(0, QHeaderView::ResizeToContents);
    auto *addDir = new QPushButton(tr("Add model directory…"));
    connect(addDir, &QPushButton::clicked, this, [this]() {
        const QString dir = QFileDialog::getExistingDirectory(this, tr("Model directory (Hugging Face layout)"));
        if (dir.isEmpty())
            return;
        QString err;
        if (!addModelDirectory(dir, &err))
            QMessageBox::warning(this, tr("Add model directory"), err);
    });
    auto *rescan = new QPushButton(tr("Rescan runs"));
    connect(rescan, &QPushButton::clicked, this, &EvaluatePage::refreshModels);
    auto *modelBox = new QGroupBox(tr("Models (check two or more; the first checked is A in every pair)"));
    auto *mb = new QVBoxLayout(modelBox);
    mb->addWidget(m_models, 1);
    auto *mbButtons = new QHBoxLayout;
    mbButtons->addWidget(addDir);
    mbButtons->addWidget(rescan);
    mbButtons->addStretch();
    mb->addLayout(mbButtons);

    // Prompt set.
    m_srcRun = new QRadioButton(tr("Held-out prompts of run"));
    m_srcProject = new QRadioButton(tr("The project's first"));
    m_srcFile = new QRadioButton(tr("JSONL file of {\"prompt\"}"));
    m_srcProject->setChecked(true);
    m_heldOutRun = new QComboBox;
    m_projectLimit = new QSpinBox;
    m_projectLimit->setRange(1, 100000);
    m_projectLimit->setValue(50);
    m_projectLimit->setSuffix(tr(" prompts"));
    m_promptFile = new QLineEdit;
    m_promptFile->setPlaceholderText(tr("prompts.jsonl"));
    auto *browse = new QPushButton(tr("Browse…"));
    connect(browse, &QPushButton::clicked, this, [this]() {
        const QString f
            = QFileDialog::getOpenFileName(this, tr("Prompts"), QString(), tr("JSON Lines (*.jsonl);;All files (*)"));
        if (!f.isEmpty())
            setPromptFile(f);
    });
    auto *promptBox = new QGroupBox(tr("Prompt set"));
    auto *pg = new QGridLayout(promptBox);
    pg->addWidget(m_srcRun, 0, 0);
    pg->addWidget(m_heldOutRun, 0, 1, 1, 2);
    pg->addWidget(m_srcProject, 1, 0);
    pg->addWidget(m_projectLimit, 1, 1);
    pg->addWidget(m_srcFile, 2, 0);
    pg->addWidget(m_promptFile, 2, 1);
    pg->addWidget(browse, 2, 2);
    pg->setColumnStretch(1, 1);

    // Sampling.
    m_greedy = new QCheckBox(tr("Greedy (argmax)"));
    m_greedy->setChecked(true);
    m_temperature = new QDoubleSpinBox;
    m_temperature->setRange(0.01, 5.0);
    m_temperature->setSingleStep(0.1);
    m_temperature->setValue(0.7);
    m_topK = new QSpinBox;
    m_topK->setRange(0, 100000);
    m_topK->setSpecialValueText(tr("off"));
    m_topP = new QDoubleSpinBox;
    m_topP->setRange(0.01, 1.0);
    m_topP->setSingleStep(0.05);
    m_topP->setValue(0.95);
    m_maxNew = new QSpinBox;
    m_maxNew->setRange(1, 8192);
    m_maxNew->setValue(128);
    m_seed = new QSpinBox;
    m_seed->setRange(0, INT_MAX);
    auto updateSampling = [this]() {
        const bool s = !m_greedy->isChecked();
        m_temperature->setEnabled(s);
        m_topK->setEnabled(s);
        m_topP->setEnabled(s);
    };
    connect(m_greedy, &QCheckBox::toggled, this, updateSampling);
    updateSampling();
    auto *samplingBox = new QGroupBox(tr("Sampling (the same for every model; prompt p uses seed + p)"));
    auto *sf = new QFormLayout(samplingBox);
    sf->addRow(m_greedy);
    sf->addRow(tr("Temperature"), m_temperature);
    sf->addRow(tr("Top-k"), m_topK);
    sf->addRow(tr("Top-p"), m_topP);
    sf->addRow(tr("Max new tokens"), m_maxNew);
    sf->addRow(tr("Seed"), m_seed);

    m_generate = new QPushButton(tr("Generate completions"));
    m_generate->setObjectName(QStringLiteral("evalGenerate"));
    connect(m_generate, &QPushButton::clicked, this, [this]() {
        QString err;
        if (!startGeneration(&err))
            QMessageBox::warning(this, tr("Generate"), err);
    });
    m_judge = new QPushButton(tr("Judge blind on the Label page"));
    m_judge->setObjectName(QStringLiteral("evalJudge"));
    m_judge->setEnabled(false);
    m_judge->setToolTip(tr("Creates a pair between every two models for each prompt; the Label page shows them "
                           "in random order without saying which model wrote what."));
    connect(m_judge, &QPushButton::clicked, this, [this]() {
        QString err;
        if (!startBlindSession(&err))
            QMessageBox::warning(this, tr("Blind evaluation"), err);
    });
    m_setupInfo = new QLabel(tr("Completions already in the project with the same model, settings and seed are "
                                "reused: nothing is generated twice."));
    m_setupInfo->setWordWrap(true);

    auto *right = new QWidget;
    auto *rl = new QVBoxLayout(right);
    rl->setContentsMargins(0, 0, 0, 0);
    rl->addWidget(promptBox);
    rl->addWidget(samplingBox);
    auto *buttons = new QHBoxLayout;
    buttons->addWidget(m_generate);
    buttons->addWidget(m_judge);
    buttons->addStretch();
    rl->addLayout(buttons);
    rl->addWidget(m_setupInfo);
    rl->addStretch();

    auto *split = new QSplitter(Qt::Horizontal);
    split->addWidget(modelBox);
    split->addWidget(right);
    split->setStretchFactor(0, 3);
    split->setStretchFactor(1, 2);
    split->setChildrenCollapsible(false);
    return split;
}

QWidget *EvaluatePage::buildResultsTab()
{
    m_sessionLabel = new QLabel;
    m_sessionLabel->setObjectName(QStringLiteral("evalSessionLabel"));
    m_sessionLabel->setWordWrap(true);
    m_judgeMore = new QPushButton(tr("Continue judging"));
    connect(m_judgeMore, &QPushButton::clicked, this, [this]() {
        if (m_window && m_window->labelPage()) {
            m_window->labelPage()->setJudgmentKind(dpo::JudgmentKind::Eval);
            for (int i = 0; i < m_window->pageCount(); ++i)
                if (m_window->page(i) == m_window->labelPage())
                    m_window->setCurrentPage(i);
        }
    });
    m_endSession = new QPushButton(tr("End session and reveal"));
    m_endSession->setObjectName(QStringLiteral("evalEndSession"));
    connect(m_endSession, &QPushButton::clicked, this, [this]() {
        if (QMessageBox::question(this, tr("End the blind session"),
                tr("Reveal which model wrote what? Judgments made after this are no longer blind."))
            == QMessageBox::Yes)
            endSession();
    });
    m_baselineBox = new QComboBox;
    m_baselineBox->setObjectName(QStringLiteral("evalBaseline"));
    m_baselineBox->setSizeAdjustPolicy(QComboBox::AdjustToContents);
    connect(m_baselineBox, &QComboBox::activated, this, [this](int i) { setBaseline(i); });
    m_export = new QPushButton(tr("Export report…"));
    connect(m_export, &QPushButton::clicked, this, &EvaluatePage::exportDialog);

    auto *head = new QHBoxLayout;
    head->addWidget(m_sessionLabel, 1);
    head->addWidget(m_judgeMore);
    head->addWidget(m_endSession);
    head->addSpacing(12);
    head->addWidget(new QLabel(tr("Baseline:")));
    head->addWidget(m_baselineBox);
    head->addWidget(m_export);

    m_ratingPlot = plotWidget();
    m_ratingPlot->setObjectName(QStringLiteral("evalRatingPlot"));
    m_winPlot = plotWidget();
    m_winPlot->setObjectName(QStringLiteral("evalWinPlot"));
    auto *charts = new QSplitter(Qt::Horizontal);
    charts->addWidget(m_ratingPlot);
    charts->addWidget(m_winPlot);

    m_modelTable = table({ tr("Model"), tr("Elo"), tr("95% interval"), tr("Win rate"), tr("Wilson 95%"),
        tr("Bootstrap 95%"), tr("W / L / T"), tr("Both bad"), tr("n"), tr("More to separate"), tr("Outputs"),
        tr("Mean chars"), tr("Median chars"), tr("Mean words") });
    m_modelTable->setObjectName(QStringLiteral("evalModelTable"));
    m_sepLabel = new QLabel;
    m_sepLabel->setWordWrap(true);
    m_sepTable = table(
        { tr("Model"), tr("vs"), tr("Games"), tr("Score"), tr("Wilson 95%"), tr("More judgments to separate") });
    m_sepTable->setObjectName(QStringLiteral("evalSeparationTable"));

    m_resultsBody = new QWidget;
    auto *bl = new QVBoxLayout(m_resultsBody);
    bl->setContentsMargins(0, 0, 0, 0);
    // The tables are as tall as their rows (fitHeight); the charts take the rest.
    bl->addWidget(charts, 1);
    bl->addWidget(m_modelTable);
    bl->addWidget(m_sepLabel);
    bl->addWidget(m_sepTable);

    auto *w = new QWidget;
    auto *l = new QVBoxLayout(w);
    l->addLayout(head);
    l->addWidget(m_resultsBody, 1);
    return w;
}

QWidget *EvaluatePage::buildPromptsTab()
{
    m_promptHidden = new QLabel;
    m_promptHidden->setAlignment(Qt::AlignCenter);
    m_promptHidden->setWordWrap(true);
    m_promptTable = table({ tr("#"), tr("Prompt"), tr("Model A"), tr("Model B"), tr("Verdict"), tr("Shown left"),
        tr("Output A"), tr("Output B") });
    m_promptTable->horizontalHeader()->setStretchLastSection(true);
    m_promptTable->setObjectName(QStringLiteral("evalPromptTable"));
    m_promptTable->setWordWrap(true);
    auto *w = new QWidget;
    auto *l = new QVBoxLayout(w);
    l->addWidget(m_promptHidden);
    l->addWidget(m_promptTable, 1);
    return w;
}

QWidget *EvaluatePage::buildCheckpointsTab()
{
    m_scoreRun = new QComboBox;
    m_scorePairs = new QSpinBox;
    m_scorePairs->setRange(1, 100000);
    m_scorePairs->setValue(256);
    m_scorePairs->setPrefix(tr("first "));
    m_scorePairs->setSuffix(tr(" held-out pairs"));
    m_scoreButton = new QPushButton(tr("Score checkpoints"));
    connect(m_scoreButton, &QPushButton::clicked, this, [this]() {
        QString err;
        if (!startScoring(m_scoreRun->currentData().toLongLong(), &err))
            QMessageBox::warning(this, tr("Score checkpoints"), err);
    });
    m_scoreInfo = new QLabel(tr("Without a person: for the base model and every checkpoint of a run, the share of "
                                "held-out pairs whose implicit reward β·log(π/π_ref) ranks chosen above rejected, "
                                "and how far the checkpoint's log-probs moved from the reference model's."));
    m_scoreInfo->setWordWrap(true);
    auto *head = new QHBoxLayout;
    head->addWidget(new QLabel(tr("Run:")));
    head->addWidget(m_scoreRun, 1);
    head->addWidget(m_scorePairs);
    head->addWidget(m_scoreButton);
    m_accPlot = plotWidget();
    m_accPlot->setObjectName(QStringLiteral("evalAccuracyPlot"));
    m_shiftPlot = plotWidget();
    m_shiftPlot->setObjectName(QStringLiteral("evalShiftPlot"));
    auto *charts = new QSplitter(Qt::Horizontal);
    charts->addWidget(m_accPlot);
    charts->addWidget(m_shiftPlot);
    m_scoreTable = table({ tr("Checkpoint"), tr("Step"), tr("Pairs"), tr("Accuracy"), tr("Mean margin"),
        tr("Δ log p chosen"), tr("Δ log p rejected") });
    auto *w = new QWidget;
    auto *l = new QVBoxLayout(w);
    l->addLayout(head);
    l->addWidget(m_scoreInfo);
    auto *split = new QSplitter(Qt::Vertical);
    split->addWidget(charts);
    split->addWidget(m_scoreTable);
    split->setStretchFactor(0, 3);
    split->setStretchFactor(1, 1);
    l->addWidget(split, 1);
    plotCheckpointScores(m_accPlot, m_shiftPlot, {});
    return w;
}

void EvaluatePage::setProject(ProjectSession *session)
{
    if (m_runner->isRunning())
        m_runner->cancel();
    if (m_session)
        disconnect(m_session, nullptr, this, nullptr);
    m_session = session;
    ++m_resultsGeneration;
    m_lastGeneration = {};
    m_results = {};
    m_scores.clear();
    m_scoreTable->setRowCount(0);
    plotCheckpointScores(m_accPlot, m_shiftPlot, {});
    m_judge->setEnabled(false);
    if (m_session)
        connect(m_session, &ProjectSession::contentChanged, this, [this]() {
            if (isVisible())
                updateSessionState();
        });
    refreshModels();
    refreshRuns();
    updateSessionState();
    setEnabled(m_session != nullptr);
}

void EvaluatePage::showEvent(QShowEvent *event)
{
    QWidget::showEvent(event);
    if (m_session)
        updateSessionState();
}

void EvaluatePage::addModelItem(QTreeWidgetItem *parent, const dpo::EvalModel &m)
{
    auto *it = new QTreeWidgetItem(parent, { m.name, m.path });
    it->setData(0, PathRole, m.path);
    it->setData(0, NameRole, m.name);
    it->setData(0, CheckpointRole, m.checkpoint);
    it->setFlags(Qt::ItemIsEnabled | Qt::ItemIsSelectable | Qt::ItemIsUserCheckable);
    it->setCheckState(0, Qt::Unchecked);
    it->setToolTip(1, m.path);
}

void EvaluatePage::refreshModels()
{
    // Checked state survives a rescan.
    QSet<QString> checked;
    for (const dpo::EvalModel &m : selectedModels())
        checked.insert(m.path);
    m_models->clear();
    if (!m_session)
        return;
    QSet<QString> seen, names;
    auto unique = [&](QString name) {
        const QString base = name;
        for (int k = 2; names.contains(name); ++k)
            name = QStringLiteral("%1 (%2)").arg(base).arg(k);
        names.insert(name);
        return name;
    };
    auto *bases = new QTreeWidgetItem(m_models, { tr("Base models") });
    QVector<dpo::Run> runs;
    try {
        runs = m_session->store().runs();
    } catch (const std::exception &e) {
        emit statusMessage(QString::fromUtf8(e.what()));
    }
    for (const dpo::Run &run : std::as_const(runs)) {
        for (const QString &key : { QStringLiteral("model"), QStringLiteral("ref_model") }) {
            const QString p = configPath(run, key);
            if (p.isEmpty() || !isModelDir(p))
                continue;
            const QString c = dpo::canonicalModelPath(p);
            if (seen.contains(c))
                continue;
            seen.insert(c);
            addModelItem(bases, { unique(QStringLiteral("base: %1").arg(QFileInfo(c).fileName())), c, QString() });
        }
    }
    // The bundled demo model, so the demo project can compare it with its fine-tuned runs out of the box.
    if (const QString demo = bundledDemoModelDir(); !demo.isEmpty()) {
        const QString c = dpo::canonicalModelPath(demo);
        if (!seen.contains(c)) {
            seen.insert(c);
            addModelItem(bases, { unique(QStringLiteral("base: %1").arg(QFileInfo(c).fileName())), c, QString() });
        }
    }
    for (const dpo::Run &run : std::as_const(runs)) {
        const QVector<CheckpointDir> dirs = checkpointDirs(run.outputDir, runFinalStep(run));
        if (dirs.isEmpty())
            continue;
        auto *group = new QTreeWidgetItem(m_models, { tr("Run %1 (%2)").arg(run.name, run.status) });
        for (const CheckpointDir &d : dirs) {
            const QString c = dpo::canonicalModelPath(d.path);
            if (seen.contains(c))
                continue;
            seen.insert(c);
            addModelItem(group, { unique(QStringLiteral("%1/%2").arg(run.name, d.name)), c, d.name });
        }
    }
    auto *extra = new QTreeWidgetItem(m_models, { tr("Added directories") });
    const QJsonArray dirs
        = QJsonDocument::fromJson(m_session->store().setting(QString::fromLatin1(extraModelsKey)).toUtf8()).array();
    for (const QJsonValue &v : dirs) {
        const QString c = dpo::canonicalModelPath(v.toString());
        if (c.isEmpty() || seen.contains(c) || !isModelDir(c))
            continue;
        seen.insert(c);
        const QFileInfo fi(c);
        const bool ckpt
            = fi.fileName().startsWith(QLatin1String("checkpoint-")) || fi.fileName() == QLatin1String("final");
        addModelItem(extra,
            { unique(ckpt ? QStringLiteral("%1/%2").arg(fi.dir().dirName(), fi.fileName()) : fi.fileName()), c,
                ckpt ? fi.fileName() : QString() });
    }
    for (int i = m_models->topLevelItemCount() - 1; i >= 0; --i)
        if (m_models->topLevelItem(i)->childCount() == 0)
            delete m_models->takeTopLevelItem(i);
    if (m_models->topLevelItemCount() == 0)
        new QTreeWidgetItem(
            m_models, { tr("No models yet: add a model directory, or train a run on the Train page.") });
    for (int i = 0; i < m_models->topLevelItemCount(); ++i) {
        QTreeWidgetItem *g = m_models->topLevelItem(i);
        g->setFlags(Qt::ItemIsEnabled);
        g->setExpanded(true);
        for (int k = 0; k < g->childCount(); ++k)
            if (checked.contains(g->child(k)->data(0, PathRole).toString()))
                g->child(k)->setCheckState(0, Qt::Checked);
    }
}

QVector<dpo::EvalModel> EvaluatePage::availableModels() const
{
    QVector<dpo::EvalModel> out;
    for (int i = 0; i < m_models->topLevelItemCount(); ++i) {
        QTreeWidgetItem *g = m_models->topLevelItem(i);
        for (int k = 0; k < g->childCount(); ++k) {
            QTreeWidgetItem *it = g->child(k);
            out.push_back({ it->data(0, NameRole).toString(), it->data(0, PathRole).toString(),
                it->data(0, CheckpointRole).toString() });
        }
    }
    return out;
}

QVector<dpo::EvalModel> EvaluatePage::selectedModels() const
{
    QVector<dpo::EvalModel> out;
    for (int i = 0; i < m_models->topLevelItemCount(); ++i) {
        QTreeWidgetItem *g = m_models->topLevelItem(i);
        for (int k = 0; k < g->childCount(); ++k) {
            QTreeWidgetItem *it = g->child(k);
            if (it->checkState(0) == Qt::Checked)
                out.push_back({ it->data(0, NameRole).toString(), it->data(0, PathRole).toString(),
                    it->data(0, CheckpointRole).toString() });
        }
    }
    return out;
}

bool EvaluatePage::addModelDirectory(const QString &dir, QString *error)
{
    if (!m_session) {
        if (error)
            *error = tr("No project is open.");
        return false;
    }
    if (!isModelDir(dir)) {
        if (error)
            *error = tr("%1 has neither config.json nor adapter_config.json: not a model or LoRA adapter directory in the Hugging Face layout.").arg(dir);
        return false;
    }
    const QString c = dpo::canonicalModelPath(dir);
    try {
        QJsonArray dirs
            = QJsonDocument::fromJson(m_session->store().setting(QString::fromLatin1(extraModelsKey)).toUtf8()).array();
        if (!dirs.contains(c)) {
            dirs.append(c);
            m_session->store().setSetting(QString::fromLatin1(extraModelsKey),
                QString::fromUtf8(QJsonDocument(dirs).toJson(QJsonDocument::Compact)));
        }
    } catch (const std::exception &e) {
        if (error)
            *error = QString::fromUtf8(e.what());
        return false;
    }
    refreshModels();
    setModelChecked(c, true);
    return true;
}

void EvaluatePage::setModelChecked(const QString &path, bool checked)
{
    const QString c = dpo::canonicalModelPath(path);
    for (int i = 0; i < m_models->topLevelItemCount(); ++i) {
        QTreeWidgetItem *g = m_models->topLevelItem(i);
        for (int k = 0; k < g->childCount(); ++k)
            if (g->child(k)->data(0, PathRole).toString() == c)
                g->child(k)->setCheckState(0, checked ? Qt::Checked : Qt::Unchecked);
    }
}

void EvaluatePage::refreshRuns()
{
    m_heldOutRun->clear();
    m_scoreRun->clear();
    if (!m_session)
        return;
    QVector<dpo::Run> runs;
    try {
        runs = m_session->store().runs();
    } catch (const std::exception &) {
    }
    for (const dpo::Run &run : std::as_const(runs)) {
        const QString label = tr("%1 (%2)").arg(run.name, run.status);
        const bool heldOut = !heldOutFile(run.id).isEmpty();
        m_heldOutRun->addItem(heldOut ? label : tr("%1 — no held-out split").arg(label), run.id);
        m_scoreRun->addItem(heldOut ? label : tr("%1 — no held-out split").arg(label), run.id);
    }
    m_srcRun->setEnabled(!runs.isEmpty());
}

QString EvaluatePage::heldOutFile(qint64 runId) const
{
    if (!m_session)
        return {};
    try {
        for (const dpo::Run &run : m_session->store().runs()) {
            if (run.id != runId)
                continue;
            const QString p = configPath(run, QStringLiteral("eval_dataset"));
            return !p.isEmpty() && QFileInfo::exists(p) ? p : QString();
        }
    } catch (const std::exception &) {
    }
    return {};
}

void EvaluatePage::setPromptSource(PromptSource source)
{
    (source == PromptSource::RunHeldOut    ? m_srcRun
            : source == PromptSource::File ? m_srcFile
                                           : m_srcProject)
        ->setChecked(true);
}

void EvaluatePage::setPromptFile(const QString &path)
{
    m_promptFile->setText(path);
    m_srcFile->setChecked(true);
}

void EvaluatePage::setProjectPromptLimit(int n)
{
    m_projectLimit->setValue(n);
    m_srcProject->setChecked(true);
}

dpo::SamplingSettings EvaluatePage::sampling() const
{
    dpo::SamplingSettings s;
    s.greedy = m_greedy->isChecked();
    s.temperature = m_temperature->value();
    s.topK = m_topK->value();
    s.topP = m_topP->value();
    s.maxNewTokens = m_maxNew->value();
    s.seed = quint64(m_seed->value());
    return s;
}

void EvaluatePage::setSampling(const dpo::SamplingSettings &s)
{
    m_greedy->setChecked(s.greedy);
    m_temperature->setValue(s.temperature);
    m_topK->setValue(s.topK);
    m_topP->setValue(s.topP);
    m_maxNew->setValue(s.maxNewTokens);
    m_seed->setValue(int(std::min<quint64>(s.seed, INT_MAX)));
}

bool EvaluatePage::isBusy() const
{
    return m_runner->isRunning();
}

void EvaluatePage::setBusy(bool busy)
{
    m_generate->setEnabled(!busy);
    m_scoreButton->setEnabled(!busy);
    m_cancel->setEnabled(busy);
    m_progress->setTextVisible(busy);
    if (busy) {
        m_judge->setEnabled(false);
        m_progress->setValue(0);
    }
}

void EvaluatePage::cancel()
{
    m_runner->cancel();
    m_progressLabel->setText(tr("Cancelling…"));
}

bool EvaluatePage::startGeneration(QString *error)
{
    auto fail = [error](const QString &m) {
        if (error)
            *error = m;
        return false;
    };
    if (!m_session)
        return fail(tr("No project is open."));
    if (m_runner->isRunning())
        return fail(tr("A job is running."));
    GenerationJob job;
    job.projectLocation = m_session->location();
    job.models = selectedModels();
    if (job.models.size() < 2)
        return fail(tr("Check two or more models."));
    job.sampling = sampling();
    if (m_srcFile->isChecked()) {
        job.promptsFile = m_promptFile->text().trimmed();
        if (job.promptsFile.isEmpty() || !QFileInfo::exists(job.promptsFile))
            return fail(tr("Choose a JSONL file of prompts."));
    } else if (m_srcRun->isChecked()) {
        job.promptsFile = heldOutFile(m_heldOutRun->currentData().toLongLong());
        if (job.promptsFile.isEmpty())
            return fail(tr("This run has no held-out split (train with an eval ratio to get one)."));
    } else {
        job.projectPrompts = m_projectLimit->value();
    }
    m_lastGeneration = {};
    m_progressLabel->setText(tr("Generating…"));
    return m_runner->startGeneration(job);
}

bool EvaluatePage::startScoring(qint64 runId, QString *error)
{
    auto fail = [error](const QString &m) {
        if (error)
            *error = m;
        return false;
    };
    if (!m_session)
        return fail(tr("No project is open."));
    if (m_runner->isRunning())
        return fail(tr("A job is running."));
    std::optional<dpo::Run> run;
    for (const dpo::Run &r : m_session->store().runs())
        if (r.id == runId)
            run = r;
    if (!run)
        return fail(tr("Choose a run."));
    ScoringJob job;
    job.dataset = heldOutFile(runId);
    if (job.dataset.isEmpty())
        return fail(tr("Run %1 has no held-out split to score on.").arg(run->name));
    const QJsonObject cfg = jsonObject(run->configJson);
    const QString model = configPath(*run, QStringLiteral("model"));
    const QString ref = configPath(*run, QStringLiteral("ref_model"));
    job.referenceModel = ref.isEmpty() ? model : ref;
    if (job.referenceModel.isEmpty() || !isModelDir(job.referenceModel))
        return fail(tr("The reference model of run %1 is missing.").arg(run->name));
    job.beta = cfg.value(QStringLiteral("beta")).toDouble(0.1);
    job.maxLength = qint64(cfg.value(QStringLiteral("max_length")).toDouble(1024));
    job.maxPairs = m_scorePairs->value();
    job.batchSize = int(std::max<double>(1, cfg.value(QStringLiteral("batch_size")).toDouble(8)));
    if (isModelDir(model))
        job.checkpoints.push_back({ QStringLiteral("base"), model, 0 });
    for (const CheckpointDir &d : checkpointDirs(run->outputDir, runFinalStep(*run)))
        job.checkpoints.push_back({ d.name, d.path, d.step });
    if (job.checkpoints.isEmpty())
        return fail(tr("Run %1 has no checkpoint yet.").arg(run->name));
    m_scores.clear();
    m_scoreTable->setRowCount(0);
    plotCheckpointScores(m_accPlot, m_shiftPlot, {});
    m_progressLabel->setText(tr("Scoring %n checkpoint(s)…", nullptr, int(job.checkpoints.size())));
    return m_runner->startScoring(job);
}

bool EvaluatePage::startBlindSession(QString *error)
{
    auto fail = [error](const QString &m) {
        if (error)
            *error = m;
        return false;
    };
    if (!m_session)
        return fail(tr("No project is open."));
    const QVector<dpo::EvalModel> models = selectedModels();
    if (models.size() < 2)
        return fail(tr("Check two or more models."));
    if (m_lastGeneration.promptIds.isEmpty())
        return fail(tr("Generate the completions first (cached ones are found again at once)."));
    dpo::EvalPairsResult r;
    try {
        r = dpo::startEvalSession(m_session->store(), models, m_lastGeneration.promptIds, sampling());
    } catch (const std::exception &e) {
        return fail(QString::fromUtf8(e.what()));
    }
    if (r.missing > 0)
        emit statusMessage(
            tr("%1 model pairs had no completion (generate again with these models and settings).").arg(r.missing));
    emit statusMessage(tr("Blind session started: %1 new pairs, %2 from before.").arg(r.created).arg(r.reused));
    m_results = {};
    emit m_session->contentChanged();
    updateSessionState();
    if (m_window && m_window->labelPage()) {
        m_window->labelPage()->setJudgmentKind(dpo::JudgmentKind::Eval);
        for (int i = 0; i < m_window->pageCount(); ++i)
            if (m_window->page(i) == m_window->labelPage())
                m_window->setCurrentPage(i);
    }
    return true;
}

void EvaluatePage::endSession()
{
    if (!m_session)
        return;
    try {
        dpo::endEvalSession(m_session->store());
    } catch (const std::exception &e) {
        emit statusMessage(QString::fromUtf8(e.what()));
        return;
    }
    if (m_window && m_window->labelPage())
        m_window->labelPage()->setJudgmentKind(dpo::JudgmentKind::Label);
    emit statusMessage(tr("Session ended: model identities revealed, results computed from the judgments."));
    updateSessionState();
    m_tabs->setCurrentIndex(1);
}

dpo::EvalSession EvaluatePage::session() const
{
    if (!m_session)
        return {};
    try {
        return dpo::loadEvalSession(m_session->store());
    } catch (const std::exception &) {
        return {};
    }
}

bool EvaluatePage::resultsVisible() const
{
    return session().state == dpo::EvalSession::State::Ended;
}

void EvaluatePage::updateSessionState()
{
    const dpo::EvalSession s = session();
    const bool visible = s.state == dpo::EvalSession::State::Ended;
    m_resultsBody->setVisible(visible);
    m_promptTable->setVisible(visible);
    m_promptHidden->setVisible(!visible);
    m_endSession->setVisible(s.state == dpo::EvalSession::State::Judging);
    m_judgeMore->setVisible(s.state == dpo::EvalSession::State::Judging && m_window);
    m_baselineBox->setEnabled(visible);
    m_export->setEnabled(s.state != dpo::EvalSession::State::Judging);
    if (s.state == dpo::EvalSession::State::None) {
        const QString t = tr("No blind session yet. On Setup, pick models and prompts, generate, then judge blind.");
        m_sessionLabel->setText(t);
        m_promptHidden->setText(t);
        return;
    }
    if (s.state == dpo::EvalSession::State::Judging) {
        const QString hidden = tr("Blind session in progress with %1 models over %2 prompts. Which model wrote what, "
                                  "and every result, stay hidden until you end the session.")
                                   .arg(s.models.size())
                                   .arg(s.promptIds.size());
        m_sessionLabel->setText(hidden);
        m_promptHidden->setText(hidden);
        if (m_session) {
            const int gen = m_resultsGeneration;
            m_session->worker().run<dpo::EvalQueueCounts>(
                this, [](dpo::ProjectStore &st) { return dpo::evalQueueCounts(st); },
                [this, gen, hidden](dpo::EvalQueueCounts c) {
                    if (gen == m_resultsGeneration)
                        m_sessionLabel->setText(
                            tr("%1\n%2 of %3 blind pairs judged.").arg(hidden).arg(c.done).arg(c.total));
                });
        }
        return;
    }
    m_sessionLabel->setText(tr("Session ended %1: %2 models, %3 prompts.")
                                .arg(QLocale().toString(s.endedAt.toLocalTime(), QLocale::ShortFormat))
                                .arg(s.models.size())
                                .arg(s.promptIds.size()));
    if (m_baseline >= s.models.size())
        m_baseline = 0;
    refreshResults();
}

void EvaluatePage::setBaseline(int modelIndex)
{
    if (modelIndex < 0)
        return;
    m_baseline = modelIndex;
    refreshResults();
}

void EvaluatePage::refreshResults()
{
    if (!m_session)
        return;
    const dpo::EvalSession s = session();
    if (s.state != dpo::EvalSession::State::Ended)
        return;
    const int gen = ++m_resultsGeneration;
    const int baseline = std::min<int>(m_baseline, std::max<int>(0, int(s.models.size()) - 1));
    m_session->worker().run<EvaluationResults>(
        this, [s, baseline](dpo::ProjectStore &st) { return loadEvaluationResults(st, s, baseline, 1000, 0); },
        [this, gen](EvaluationResults r) {
            if (gen != m_resultsGeneration)
                return;
            m_results = std::move(r);
            showResults();
            emit resultsUpdated();
        },
        [this](const QString &err) { emit statusMessage(tr("Results: %1").arg(err)); });
}

void EvaluatePage::showResults()
{
    const EvaluationResults &r = m_results;
    m_baselineBox->clear();
    m_baselineBox->addItems(r.models);
    m_baselineBox->setCurrentIndex(r.baseline);
    plotRatings(m_ratingPlot, r);
    plotWinRates(m_winPlot, r);

    QVector<int> order(r.models.size());
    std::iota(order.begin(), order.end(), 0);
    if (r.hasRatings)
        std::stable_sort(order.begin(), order.end(),
            [&](int a, int b) { return r.ratings.models[size_t(a)].rating > r.ratings.models[size_t(b)].rating; });
    m_modelTable->setRowCount(int(order.size()));
    for (int row = 0; row < order.size(); ++row) {
        const int i = order[row];
        m_modelTable->setItem(row, 0, cell(r.models[i] + (i == r.baseline ? tr(" (baseline)") : QString())));
        QStringList v(13, QStringLiteral("–"));
        if (r.hasRatings) {
            const dpo::ModelRating &m = r.ratings.models[size_t(i)];
            v[0] = fmt(m.rating, 0);
            v[1] = QStringLiteral("%1 – %2").arg(fmt(r.ratingLow(i), 0), fmt(r.ratingHigh(i), 0));
            if (i != r.baseline && m.n > 0) {
                v[2] = pct(m.winRate);
                v[3] = QStringLiteral("%1 – %2").arg(pct(m.wilson.low), pct(m.wilson.high));
                v[4] = QStringLiteral("%1 – %2").arg(pct(m.winBootstrap.low), pct(m.winBootstrap.high));
                v[5] = QStringLiteral("%1 / %2 / %3").arg(m.wins).arg(m.losses).arg(m.ties);
                v[6] = QString::number(m.bothBad);
                v[8] = m.judgmentsToSeparate == 0 ? tr("separated")
                    : m.judgmentsToSeparate < 0   ? tr("never at this rate")
                                                  : QString::number(m.judgmentsToSeparate);
            }
            v[7] = QString::number(m.n);
        }
        const ModelLengthStats &l = r.lengths.value(i);
        v[9] = QString::number(l.outputs);
        v[10] = fmt(l.meanChars, 1);
        v[11] = fmt(l.medianChars, 1);
        v[12] = fmt(l.meanWords, 1);
        for (int c = 0; c < v.size(); ++c)
            m_modelTable->setItem(row, c + 1, cell(v[c], true));
    }
    m_modelTable->resizeColumnsToContents();
    fitHeight(m_modelTable);

    if (!r.hasRatings)
        m_sepLabel->setText(r.ratingsError);
    else if (r.separation.isEmpty())
        m_sepLabel->setText(tr("Every two models are separated: their 95% rating intervals do not overlap."));
    else
        m_sepLabel->setText(tr("Models whose 95% rating intervals overlap, and how many more head-to-head judgments "
                               "at the observed rate would separate them:"));
    m_sepTable->setVisible(!r.separation.isEmpty());
    m_sepTable->setRowCount(int(r.separation.size()));
    for (int row = 0; row < r.separation.size(); ++row) {
        const SeparationRow &s = r.separation[row];
        m_sepTable->setItem(row, 0, cell(r.models[s.a]));
        m_sepTable->setItem(row, 1, cell(r.models[s.b]));
        m_sepTable->setItem(row, 2, cell(QString::number(s.games), true));
        m_sepTable->setItem(row, 3, cell(fmt(s.score, 1), true));
        m_sepTable->setItem(row, 4, cell(QStringLiteral("%1 – %2").arg(pct(s.wilson.low), pct(s.wilson.high)), true));
        m_sepTable->setItem(
            row, 5, cell(s.moreJudgments < 0 ? tr("never at this rate") : QString::number(s.moreJudgments), true));
    }
    m_sepTable->resizeColumnsToContents();
    fitHeight(m_sepTable);

    m_promptTable->setRowCount(int(r.rows.size()));
    for (int row = 0; row < r.rows.size(); ++row) {
        const EvalBattleRow &b = r.rows[row];
        QString verdict;
        switch (b.winner) {
        case dpo::Winner::A:
            verdict = r.models.value(b.modelA);
            break;
        case dpo::Winner::B:
            verdict = r.models.value(b.modelB);
            break;
        case dpo::Winner::BothBad:
            verdict = tr("both bad");
            break;
        default:
            verdict = tr("tie");
        }
        m_promptTable->setItem(row, 0, cell(QString::number(b.promptId), true));
        QTableWidgetItem *promptCell = cell(b.promptSummary);
        promptCell->setToolTip(b.prompt);
        m_promptTable->setItem(row, 1, promptCell);
        m_promptTable->setItem(row, 2, cell(r.models.value(b.modelA)));
        m_promptTable->setItem(row, 3, cell(r.models.value(b.modelB)));
        m_promptTable->setItem(row, 4, cell(verdict));
        m_promptTable->setItem(row, 5, cell(b.leftIsA ? tr("A") : tr("B")));
        m_promptTable->setItem(row, 6, cell(b.textA));
        m_promptTable->setItem(row, 7, cell(b.textB));
    }
    // Outputs get the room: the short columns fit their contents, the prompt and output A a fixed share.
    for (int c : { 0, 2, 3, 4, 5 })
        m_promptTable->resizeColumnToContents(c);
    const int rest = std::max(600,
        m_promptTable->viewport()->width() - m_promptTable->columnWidth(0) - m_promptTable->columnWidth(2)
            - m_promptTable->columnWidth(3) - m_promptTable->columnWidth(4) - m_promptTable->columnWidth(5));
    m_promptTable->setColumnWidth(1, rest / 5);
    m_promptTable->setColumnWidth(6, 2 * rest / 5);
    if (r.rows.size() <= 500)
        m_promptTable->resizeRowsToContents();
}

bool EvaluatePage::exportReport(const QString &htmlPath, QString *error)
{
    if (session().state == dpo::EvalSession::State::Judging) {
        if (error)
            *error = tr("End the blind session first: the report names the models.");
        return false;
    }
    ReportMeta meta;
    meta.project = m_session ? m_session->displayName() : QString();
    meta.generatedAt = QDateTime::currentDateTime().toString(Qt::ISODate);
    const dpo::EvalSession s = session();
    meta.sampling = s.sampling.toJson();
    meta.prompts = int(s.promptIds.size());
    const QFileInfo fi(htmlPath);
    const QString base = fi.dir().filePath(fi.completeBaseName());
    if (!writeHtmlReport(htmlPath, m_results, m_scores, meta, error))
        return false;
    if (!writeCsvReport(base + QStringLiteral(".csv"), m_results, error))
        return false;
    if (!writeBattlesCsv(base + QStringLiteral("-judgments.csv"), m_results, error))
        return false;
    if (!m_scores.isEmpty() && !writeCheckpointsCsv(base + QStringLiteral("-checkpoints.csv"), m_scores, error))
        return false;
    return true;
}

void EvaluatePage::exportDialog()
{
    const QString path = QFileDialog::getSaveFileName(
        this, tr("Export evaluation report"), QStringLiteral("evaluation-report.html"), tr("HTML report (*.html)"));
    if (path.isEmpty())
        return;
    QString err;
    if (!exportReport(path, &err))
        QMessageBox::warning(this, tr("Export report"), err);
    else
        emit statusMessage(tr("Report written to %1 (+ CSV beside it).").arg(path));
}
