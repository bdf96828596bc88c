#include "ui/data/generatecandidatesdialog.h"

#include "ui/shell/bundleddemo.h"

#include "ui/shell/projectsession.h"

#include <QComboBox>
#include <QCoreApplication>
#include <QDialogButtonBox>
#include <QDir>
#include <QDoubleSpinBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QLocale>
#include <QProgressBar>
#include <QPushButton>
#include <QSettings>
#include <QSpinBox>
#include <QVBoxLayout>

#include <algorithm>
#include <limits>

namespace {

const char *modelKey = "candidates/model";

QString clock(double seconds)
{
    const qint64 s = qint64(seconds + 0.5);
    if (s < 60)
        return QObject::tr("%1 s").arg(std::max<qint64>(1, s));
    if (s >= 3600)
        return QStringLiteral("%1:%2:%3")
            .arg(s / 3600)
            .arg(s / 60 % 60, 2, 10, QLatin1Char('0'))
            .arg(s % 60, 2, 10, QLatin1Char('0'));
    return QStringLiteral("%1:%2").arg(s / 60).arg(s % 60, 2, 10, QLatin1Char('0'));
}

} // namespace

QString GenerateCandidatesDialog::demoModelDir()
{
    return bundledDemoModelDir();
}

GenerateCandidatesDialog::GenerateCandidatesDialog(ProjectSession *session, QWidget *parent)
    : QDialog(parent)
    , m_session(session)
    , m_runner(new CandidateRunner(this))
{
    setObjectName(QStringLiteral("generateCandidatesDialog"));
    setWindowTitle(tr("Generate candidates"));

    auto *intro = new QLabel(tr("For every prompt with fewer completions than wanted, a model samples the missing "
                                "candidates. They are stored with their model, settings and seed, and pairs between "
                                "them join the labeling queue."));
    intro->setWordWrap(true);

    m_model = new QLineEdit;
    m_model->setObjectName(QStringLiteral("candidateModel"));
    m_model->setPlaceholderText(tr("A Hugging Face model directory (config.json, weights, tokenizer) or a LoRA adapter folder"));
    m_browse = new QPushButton(tr("Browse…"));
    connect(m_browse, &QPushButton::clicked, this, [this]() {
        const QString dir = QFileDialog::getExistingDirectory(this, tr("Model directory"), m_model->text());
        if (!dir.isEmpty())
            m_model->setText(dir);
    });
    auto *modelRow = new QHBoxLayout;
    modelRow->addWidget(m_model, 1);
    modelRow->addWidget(m_browse);

    m_candidates = new QSpinBox;
    m_candidates->setObjectName(QStringLiteral("candidateCount"));
    m_candidates->setRange(2, 16);
    m_candidates->setValue(2);
    m_candidates->setToolTip(tr("Completions wanted per prompt. Up to 3: every two are paired; more: consecutive "
                                "ones (n−1 pairs per prompt)."));
    const dpo::SamplingSettings defaults = dpo::CandidateOptions::defaultSampling();
    m_temperature = new QDoubleSpinBox;
    m_temperature->setRange(0.05, 5.0);
    m_temperature->setSingleStep(0.05);
    m_temperature->setDecimals(2);
    m_temperature->setValue(defaults.temperature);
    m_topP = new QDoubleSpinBox;
    m_topP->setRange(0.01, 1.0);
    m_topP->setSingleStep(0.01);
    m_topP->setDecimals(2);
    m_topP->setValue(defaults.topP);
    m_topP->setToolTip(tr("Nucleus sampling: the smallest set of tokens whose probability reaches p (1 = off)."));
    m_topK = new QSpinBox;
    m_topK->setRange(0, 100000);
    m_topK->setValue(defaults.topK);
    m_topK->setSpecialValueText(tr("off"));
    m_maxNewTokens = new QSpinBox;
    m_maxNewTokens->setObjectName(QStringLiteral("candidateMaxNewTokens"));
    m_maxNewTokens->setRange(1, 8192);
    m_maxNewTokens->setValue(defaults.maxNewTokens);
    m_seed = new QSpinBox;
    m_seed->setObjectName(QStringLiteral("candidateSeed"));
    m_seed->setRange(0, std::numeric_limits<int>::max());
    m_seed->setValue(0);
    m_seed->setToolTip(tr("Each candidate's seed is derived from this seed, the prompt id and the candidate's "
                          "index: the same settings give the same texts again."));
    m_device = new QComboBox;
    m_device->addItems({ QStringLiteral("auto"), QStringLiteral("cpu"), QStringLiteral("cuda") });
    m_limit = new QSpinBox;
    m_limit->setObjectName(QStringLiteral("candidateLimit"));
    m_limit->setRange(0, std::numeric_limits<int>::max());
    m_limit->setSpecialValueText(tr("all"));
    m_limit->setToolTip(tr("Fill at most this many prompts (oldest first)."));

    auto *form = new QFormLayout;
    form->addRow(tr("Model"), modelRow);
    form->addRow(tr("Candidates per prompt"), m_candidates);
    form->addRow(tr("Temperature"), m_temperature);
    form->addRow(tr("Top-p"), m_topP);
    form->addRow(tr("Top-k"), m_topK);
    form->addRow(tr("Max new tokens"), m_maxNewTokens);
    form->addRow(tr("Seed"), m_seed);
    form->addRow(tr("Device"), m_device);
    form->addRow(tr("Prompts at most"), m_limit);

    m_backlog = new QLabel;
    m_backlog->setObjectName(QStringLiteral("candidateBacklog"));
    m_backlog->setWordWrap(true);
    m_progress = new QProgressBar;
    m_progress->setObjectName(QStringLiteral("candidateProgress"));
    m_progress->setRange(0, 1);
    m_progress->setValue(0);
    m_status = new QLabel;
    m_status->setObjectName(QStringLiteral("candidateStatus"));
    m_result = new QLabel;
    m_result->setObjectName(QStringLiteral("candidateResult"));
    m_result->setWordWrap(true);
    m_result->setTextFormat(Qt::RichText);
    m_result->setTextInteractionFlags(Qt::TextSelectableByMouse);

    auto *buttons = new QDialogButtonBox;
    m_start = buttons->addButton(tr("Generate"), QDialogButtonBox::AcceptRole);
    m_start->setObjectName(QStringLiteral("candidateStart"));
    m_cancel = buttons->addButton(tr("Cancel generation"), QDialogButtonBox::ActionRole);
    m_cancel->setObjectName(QStringLiteral("candidateCancel"));
    m_close = buttons->addButton(QDialogButtonBox::Close);
    // AcceptRole would close the dialog: Generate starts the job instead.
    disconnect(buttons, &QDialogButtonBox::accepted, this, nullptr);
    connect(m_start, &QPushButton::clicked, this, &GenerateCandidatesDialog::start);
    connect(m_cancel, &QPushButton::clicked, m_runner, &CandidateRunner::cancel);
    connect(m_close, &QPushButton::clicked, this, &GenerateCandidatesDialog::reject);

    auto *lay = new QVBoxLayout(this);
    lay->addWidget(intro);
    lay->addLayout(form);
    lay->addWidget(m_backlog);
    lay->addWidget(m_progress);
    lay->addWidget(m_status);
    lay->addWidget(m_result);
    lay->addStretch(1);
    lay->addWidget(buttons);

    connect(m_runner, &CandidateRunner::progress, this, &GenerateCandidatesDialog::onProgress);
    connect(m_runner, &CandidateRunner::finished, this, &GenerateCandidatesDialog::onFinished);
    connect(m_runner, &CandidateRunner::failed, this, &GenerateCandidatesDialog::onFailed);
    connect(m_candidates, qOverload<int>(&QSpinBox::valueChanged), this, &GenerateCandidatesDialog::refreshBacklog);
    connect(m_limit, qOverload<int>(&QSpinBox::valueChanged), this, &GenerateCandidatesDialog::refreshBacklog);

    const QString remembered = QSettings().value(QLatin1String(modelKey)).toString();
    setModelDir(!remembered.isEmpty() && dpo::isModelDirectory(remembered)
            ? remembered
            : demoModelDir());
    setRunning(false);
    refreshBacklog();
    resize(560, sizeHint().height());
}

GenerateCandidatesDialog::~GenerateCandidatesDialog()
{
    // m_runner (a child) cancels a running job and joins its thread in its destructor.
}

void GenerateCandidatesDialog::setModelDir(const QString &dir)
{
    m_model->setText(QDir::toNativeSeparators(dir));
}

QString GenerateCandidatesDialog::modelDir() const
{
    return QDir::fromNativeSeparators(m_model->text().trimmed());
}

CandidateJob GenerateCandidatesDialog::job() const
{
    CandidateJob j;
    j.projectLocation = m_session ? m_session->location() : QString();
    j.modelDir = modelDir();
    j.options.candidates = m_candidates->value();
    j.options.sampling.temperature = m_temperature->value();
    j.options.sampling.topP = m_topP->value();
    j.options.sampling.topK = m_topK->value();
    j.options.sampling.maxNewTokens = m_maxNewTokens->value();
    j.options.sampling.seed = quint64(m_seed->value());
    j.options.limit = m_limit->value();
    j.device = m_device->currentText();
    return j;
}

QString GenerateCandidatesDialog::resultText() const
{
    return m_result->text();
}

QString GenerateCandidatesDialog::backlogText() const
{
    return m_backlog->text();
}

void GenerateCandidatesDialog::refreshBacklog()
{
    if (!m_session) {
        m_backlog->setText(tr("No project open."));
        return;
    }
    const int n = m_candidates->value();
    const int limit = m_limit->value();
    const int request = ++m_backlogRequest;
    m_session->worker().run<dpo::CandidateBacklog>(
        this, [n, limit](dpo::ProjectStore &s) { return dpo::candidateBacklog(s, n, limit); },
        [this, request, n](dpo::CandidateBacklog b) {
            if (request != m_backlogRequest)
                return; // a newer question is on its way
            const QLocale loc;
            if (b.prompts == 0)
                m_backlog->setText(tr("Every prompt has at least %1 completions: nothing to generate.").arg(n));
            else
                m_backlog->setText(tr("%1 prompt(s) have fewer than %2 completions: %3 candidate(s) to generate.")
                                       .arg(loc.toString(b.prompts))
                                       .arg(n)
                                       .arg(loc.toString(b.candidates)));
            if (!m_runner->isRunning())
                m_start->setEnabled(b.prompts > 0);
        },
        [this](const QString &e) { m_backlog->setText(tr("Could not count the prompts: %1").arg(e)); });
}

void GenerateCandidatesDialog::setRunning(bool running)
{
    for (QWidget *w : std::initializer_list<QWidget *> { m_model, m_browse, m_candidates, m_temperature, m_topP, m_topK,
             m_maxNewTokens, m_seed, m_device, m_limit })
        w->setEnabled(!running);
    m_start->setEnabled(!running && m_session);
    m_cancel->setEnabled(running);
    m_cancel->setVisible(running);
    m_close->setEnabled(true);
}

void GenerateCandidatesDialog::start()
{
    if (!m_session || m_runner->isRunning())
        return;
    const CandidateJob j = job();
    if (!dpo::isModelDirectory(j.modelDir)) {
        m_result->setText(tr("<b>Not a model directory</b> (no config.json or LoRA adapter_config.json): %1")
                              .arg(j.modelDir.toHtmlEscaped()));
        return;
    }
    QSettings().setValue(QLatin1String(modelKey), j.modelDir);
    m_result->clear();
    m_status->setText(tr("Starting…"));
    m_progress->setRange(0, 0); // busy until the first count arrives
    m_timer.start();
    m_firstDone = -1;
    setRunning(true);
    m_runner->start(j);
}

void GenerateCandidatesDialog::onProgress(qint64 done, qint64 total, const QString &text)
{
    if (total > 0) {
        m_progress->setRange(0, int(std::min<qint64>(total, std::numeric_limits<int>::max())));
        m_progress->setValue(int(std::min<qint64>(done, total)));
    }
    QString line = text;
    // The ETA counts from the first candidate, so the model's loading time does not skew the rate.
    if (done > 0 && m_firstDone < 0) {
        m_firstDone = done;
        m_firstMs = m_timer.elapsed();
    } else if (m_firstDone >= 0 && done > m_firstDone && total > done) {
        const double perItem = double(m_timer.elapsed() - m_firstMs) / 1000.0 / double(done - m_firstDone);
        line += tr(" — %1 of %2 candidates, about %3 left")
                    .arg(done)
                    .arg(total)
                    .arg(clock(perItem * double(total - done)));
    }
    m_status->setText(line);
}

void GenerateCandidatesDialog::onFinished(const dpo::CandidateSummary &s)
{
    setRunning(false);
    m_progress->setRange(0, 1);
    m_progress->setValue(s.cancelled ? 0 : 1);
    m_status->setText(s.cancelled ? tr("Cancelled: the prompts finished before stay in the project.") : tr("Done."));
    QString line = tr("Generated %n completion(s)", nullptr, s.generated) + tr(" for %n prompt(s)", nullptr, s.prompts)
        + tr(", %n pair(s) queued for labeling", nullptr, s.pairs)
        + tr(", %1 s.").arg(QLocale().toString(s.seconds, 'f', 1));
    if (s.retries > 0)
        line += tr(" %n repeated or empty sample(s) were drawn again.", nullptr, s.retries);
    if (s.skipped > 0)
        line += tr(" %n prompt(s) skipped: the model gave only empty completions.", nullptr, s.skipped);
    for (int i = 0; i < std::min<int>(5, int(s.notes.size())); ++i)
        line += QStringLiteral("<br>") + s.notes[i].toHtmlEscaped();
    if (s.notes.size() > 5)
        line += QStringLiteral("<br>") + tr("… and %1 more").arg(s.notes.size() - 5);
    m_result->setText(line);
    if (s.generated > 0 && m_session)
        emit m_session->contentChanged();
    emit generationFinished(s);
    refreshBacklog();
    if (m_closeWhenDone)
        QDialog::reject();
}

void GenerateCandidatesDialog::onFailed(const QString &message)
{
    setRunning(false);
    m_progress->setRange(0, 1);
    m_progress->setValue(0);
    m_status->setText(tr("Failed."));
    m_result->setText(tr("<b>Generation failed:</b> %1").arg(message.toHtmlEscaped()));
    // Prompts finished before the failure are in the project.
    if (m_session)
        emit m_session->contentChanged();
    refreshBacklog();
    if (m_closeWhenDone)
        QDialog::reject();
}

void GenerateCandidatesDialog::reject()
{
    if (m_runner->isRunning()) {
        m_closeWhenDone = true;
        m_status->setText(tr("Stopping…"));
        m_runner->cancel();
        return;
    }
    QDialog::reject();
}
