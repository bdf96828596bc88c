#include "ui/label/labelpage.h"

#include "project/conversation.h"

#include "ui/shell/icons.h"
#include "ui/widgets/markdownview.h"
#include "ui/label/repairdialog.h"
#include "ui/label/shortcutsheet.h"
#include "ui/widgets/worddiff.h"

#include <QAction>
#include <QDialog>
#include <QDialogButtonBox>
#include <QDir>
#include <QFrame>
#include <QHBoxLayout>
#include <QInputDialog>
#include <QKeyEvent>
#include <QLabel>
#include <QLineEdit>
#include <QMessageBox>
#include <QPlainTextEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QSettings>
#include <QSplitter>
#include <QStackedWidget>
#include <QTimer>
#include <QToolButton>
#include <QUuid>
#include <QVBoxLayout>

#include <cmath>

using dpo::Strength;
using dpo::Verdict;

namespace {

QString clockText(qint64 ms)
{
    const qint64 s = ms / 1000;
    if (s >= 3600)
        return QStringLiteral("%1:%2:%3")
            .arg(s / 3600)
            .arg((s / 60) % 60, 2, 10, QLatin1Char('0'))
            .arg(s % 60, 2, 10, QLatin1Char('0'));
    return QStringLiteral("%1:%2").arg(s / 60).arg(s % 60, 2, 10, QLatin1Char('0'));
}

// A bold caption over a view, with optional buttons on the right.
QWidget *caption(const QString &text, QLabel **labelOut = nullptr, QList<QWidget *> extras = {})
{
    auto *w = new QWidget;
    auto *h = new QHBoxLayout(w);
    h->setContentsMargins(2, 0, 2, 0);
    auto *l = new QLabel(text);
    QFont f = l->font();
    f.setBold(true);
    l->setFont(f);
    h->addWidget(l);
    h->addStretch();
    for (QWidget *e : extras)
        h->addWidget(e);
    if (labelOut)
        *labelOut = l;
    return w;
}

QToolButton *toolButton(QAction *a)
{
    auto *b = new QToolButton;
    b->setDefaultAction(a);
    b->setToolButtonStyle(Qt::ToolButtonTextBesideIcon);
    b->setAutoRaise(true);
    b->setFocusPolicy(Qt::NoFocus);
    return b;
}

} // namespace

LabelPage::LabelPage(QWidget *parent)
    : QWidget(parent)
{
    setObjectName(QStringLiteral("labelPage"));
    setFocusPolicy(Qt::StrongFocus);
    m_annotatorName = QSettings().value(QStringLiteral("label/annotator")).toString();
    buildUi();
    restoreLayout();
    m_clock = new QTimer(this);
    m_clock->setInterval(1000);
    connect(m_clock, &QTimer::timeout, this, &LabelPage::updateClock);
    m_clock->start();
    m_sessionTimer.start();
    m_progressCooldown = new QTimer(this);
    m_progressCooldown->setSingleShot(true);
    m_progressCooldown->setInterval(700);
    connect(m_progressCooldown, &QTimer::timeout, this, [this]() {
        if (m_progressDirty)
            refreshProgress();
    });
}

LabelPage::~LabelPage()
{
    saveLayout();
}

QAction *LabelPage::addKeyAction(const QString &text, const QList<QKeySequence> &keys, std::function<void()> fn)
{
    auto *a = new QAction(text, this);
    a->setShortcuts(keys);
    a->setShortcutContext(Qt::WidgetWithChildrenShortcut);
    ShortcutSheet::tag(a, tr("Labeling"));
    connect(a, &QAction::triggered, this, [fn]() { fn(); });
    addAction(a);
    m_keyActions << a;
    return a;
}

void LabelPage::buildUi()
{
    // --- actions (keys and buttons share them) ---
    QAction *leftAct = addKeyAction(tr("Left is better"), { QKeySequence(Qt::Key_1), QKeySequence(Qt::Key_Left) },
        [this]() { decide(Verdict::Left, chosenStrength()); });
    QAction *rightAct = addKeyAction(tr("Right is better"), { QKeySequence(Qt::Key_2), QKeySequence(Qt::Key_Right) },
        [this]() { decide(Verdict::Right, chosenStrength()); });
    addKeyAction(tr("Left is much better"), { QKeySequence(Qt::SHIFT | Qt::Key_Left) },
        [this]() { decide(Verdict::Left, Strength::Much); });
    addKeyAction(tr("Right is much better"), { QKeySequence(Qt::SHIFT | Qt::Key_Right) },
        [this]() { decide(Verdict::Right, Strength::Much); });
    QAction *tieAct = addKeyAction(
        tr("Tie"), { QKeySequence(Qt::Key_3) }, [this]() { decide(Verdict::Tie, Strength::Unspecified); });
    QAction *badAct = addKeyAction(
        tr("Both bad"), { QKeySequence(Qt::Key_4) }, [this]() { decide(Verdict::BothBad, Strength::Unspecified); });
    QAction *skipAct = addKeyAction(
        tr("Skip"), { QKeySequence(Qt::Key_S) }, [this]() { decide(Verdict::Skip, Strength::Unspecified); });
    m_undoAction = addKeyAction(tr("Undo last verdict"), { QKeySequence(Qt::CTRL | Qt::Key_Z) }, [this]() { undo(); });
    m_undoAction->setIcon(Icons::get(QStringLiteral("undo")));
    QAction *editAct
        = addKeyAction(tr("Repair (edit) a completion"), { QKeySequence(Qt::Key_E) }, [this]() { openRepair(true); });
    editAct->setIcon(Icons::get(QStringLiteral("edit")));
    addKeyAction(tr("Write a rationale"), { QKeySequence(Qt::Key_Slash) }, [this]() {
        m_rationale->setFocus();
        m_rationale->selectAll();
    });
    m_diffAction = addKeyAction(tr("Highlight differences"), { QKeySequence(Qt::Key_D) }, [this]() { applyDiff(); });
    m_diffAction->setCheckable(true);
    m_diffAction->setIcon(Icons::get(QStringLiteral("diff")));
    m_diffAction->setChecked(QSettings().value(QStringLiteral("label/diff"), false).toBool());
    m_guideAction = addKeyAction(tr("Show guidelines"), { QKeySequence(Qt::Key_G) }, [this]() {
        m_guidePanel->setVisible(m_guideAction->isChecked());
        QSettings().setValue(QStringLiteral("label/guidelinesVisible"), m_guideAction->isChecked());
    });
    m_guideAction->setCheckable(true);
    m_guideAction->setIcon(Icons::get(QStringLiteral("guidelines")));
    QAction *sheetAct
        = addKeyAction(tr("Keyboard shortcuts"), { QKeySequence(Qt::Key_Question) }, [this]() { showShortcutSheet(); });
    // Strength toggles: keys too, so a verdict can be made entirely from the keyboard.
    addKeyAction(tr("Strength: slightly better"), { QKeySequence(Qt::Key_Q) }, [this]() { m_slight->click(); });
    addKeyAction(tr("Strength: much better"), { QKeySequence(Qt::Key_W) }, [this]() { m_much->click(); });

    // --- top bar ---
    m_annotatorLabel = new QLabel;
    m_annotatorLabel->setTextFormat(Qt::PlainText);
    auto *top = new QHBoxLayout;
    top->setContentsMargins(0, 0, 0, 0);
    top->addWidget(m_annotatorLabel);
    top->addStretch();
    top->addWidget(toolButton(m_diffAction));
    top->addWidget(toolButton(m_undoAction));
    top->addWidget(toolButton(m_guideAction));
    auto *sheetButton = new QToolButton;
    sheetButton->setDefaultAction(sheetAct);
    sheetButton->setText(QStringLiteral("?"));
    sheetButton->setToolTip(tr("Keyboard shortcuts (?)"));
    sheetButton->setAutoRaise(true);
    sheetButton->setFocusPolicy(Qt::NoFocus);
    top->addWidget(sheetButton);

    // --- prompt and completions ---
    m_prompt = new MarkdownView;
    m_prompt->setObjectName(QStringLiteral("promptView"));
    m_left = new MarkdownView;
    m_left->setObjectName(QStringLiteral("leftView"));
    m_right = new MarkdownView;
    m_right->setObjectName(QStringLiteral("rightView"));
    connect(m_left, &MarkdownView::rerendered, this, &LabelPage::applyDiff);

    auto *editLeft = new QToolButton;
    editLeft->setText(tr("Edit"));
    editLeft->setIcon(Icons::get(QStringLiteral("edit")));
    editLeft->setToolButtonStyle(Qt::ToolButtonTextBesideIcon);
    editLeft->setAutoRaise(true);
    editLeft->setFocusPolicy(Qt::NoFocus);
    editLeft->setToolTip(tr("Repair the left completion (E)"));
    connect(editLeft, &QToolButton::clicked, this, [this]() { openRepair(true); });
    auto *editRight = new QToolButton;
    editRight->setText(tr("Edit"));
    editRight->setIcon(Icons::get(QStringLiteral("edit")));
    editRight->setToolButtonStyle(Qt::ToolButtonTextBesideIcon);
    editRight->setAutoRaise(true);
    editRight->setFocusPolicy(Qt::NoFocus);
    editRight->setToolTip(tr("Repair the right completion"));
    connect(editRight, &QToolButton::clicked, this, [this]() { openRepair(false); });

    auto *promptBox = new QWidget;
    auto *pv = new QVBoxLayout(promptBox);
    pv->setContentsMargins(0, 0, 0, 0);
    pv->setSpacing(2);
    pv->addWidget(caption(tr("Prompt"), &m_pairInfo));
    pv->addWidget(m_prompt);

    auto *leftBox = new QWidget;
    auto *lv = new QVBoxLayout(leftBox);
    lv->setContentsMargins(0, 0, 0, 0);
    lv->setSpacing(2);
    lv->addWidget(caption(tr("Left  ·  1 or ←"), nullptr, { editLeft }));
    lv->addWidget(m_left);
    auto *rightBox = new QWidget;
    auto *rv = new QVBoxLayout(rightBox);
    rv->setContentsMargins(0, 0, 0, 0);
    rv->setSpacing(2);
    rv->addWidget(caption(tr("Right  ·  2 or →"), nullptr, { editRight }));
    rv->addWidget(m_right);
    auto *sides = new QSplitter(Qt::Horizontal);
    sides->setObjectName(QStringLiteral("sidesSplitter"));
    sides->addWidget(leftBox);
    sides->addWidget(rightBox);
    sides->setChildrenCollapsible(false);

    m_vertSplit = new QSplitter(Qt::Vertical);
    m_vertSplit->setObjectName(QStringLiteral("promptSplitter"));
    m_vertSplit->addWidget(promptBox);
    m_vertSplit->addWidget(sides);
    m_vertSplit->setStretchFactor(0, 1);
    m_vertSplit->setStretchFactor(1, 3);
    m_vertSplit->setChildrenCollapsible(false);

    // --- verdict row ---
    auto verdictButton = [](QAction *a, const QString &text, const QString &key) {
        auto *b = new QPushButton(QStringLiteral("%1   %2").arg(text, key));
        b->setFocusPolicy(Qt::NoFocus);
        b->setToolTip(a->text());
        b->setMinimumHeight(34);
        QObject::connect(b, &QPushButton::clicked, a, &QAction::trigger);
        return b;
    };
    auto *leftButton = verdictButton(leftAct, tr("◀ Left is better"), QStringLiteral("1"));
    leftButton->setObjectName(QStringLiteral("leftButton"));
    auto *tieButton = verdictButton(tieAct, tr("Tie"), QStringLiteral("3"));
    auto *badButton = verdictButton(badAct, tr("Both bad"), QStringLiteral("4"));
    auto *skipButton = verdictButton(skipAct, tr("Skip"), QStringLiteral("S"));
    auto *rightButton = verdictButton(rightAct, tr("Right is better ▶"), QStringLiteral("2"));
    rightButton->setObjectName(QStringLiteral("rightButton"));
    auto *verdicts = new QHBoxLayout;
    verdicts->addWidget(leftButton, 3);
    verdicts->addSpacing(12);
    verdicts->addWidget(tieButton, 2);
    verdicts->addWidget(badButton, 2);
    verdicts->addWidget(skipButton, 2);
    verdicts->addSpacing(12);
    verdicts->addWidget(rightButton, 3);

    // --- strength and rationale ---
    m_slight = new QPushButton(tr("Slightly  Q"));
    m_much = new QPushButton(tr("Much  W"));
    for (QPushButton *b : { m_slight, m_much }) {
        b->setCheckable(true);
        b->setFocusPolicy(Qt::NoFocus);
    }
    m_slight->setToolTip(tr("The better side is slightly better (optional)"));
    m_much->setToolTip(tr("The better side is much better (optional)"));
    connect(m_slight, &QPushButton::toggled, this, [this](bool on) {
        if (on)
            m_much->setChecked(false);
    });
    connect(m_much, &QPushButton::toggled, this, [this](bool on) {
        if (on)
            m_slight->setChecked(false);
    });
    m_rationale = new QLineEdit;
    m_rationale->setObjectName(QStringLiteral("rationale"));
    m_rationale->setPlaceholderText(tr("Rationale (optional): press / to type, Enter or Esc to return"));
    m_rationale->setClearButtonEnabled(true);
    connect(m_rationale, &QLineEdit::returnPressed, this, [this]() { setFocus(); });
    auto *escape = new QAction(m_rationale);
    escape->setShortcut(QKeySequence(Qt::Key_Escape));
    escape->setShortcutContext(Qt::WidgetShortcut);
    connect(escape, &QAction::triggered, this, [this]() { setFocus(); });
    m_rationale->addAction(escape);
    auto *extra = new QHBoxLayout;
    extra->addWidget(new QLabel(tr("Strength:")));
    extra->addWidget(m_slight);
    extra->addWidget(m_much);
    extra->addSpacing(16);
    extra->addWidget(m_rationale, 1);

    // --- progress and time ---
    m_progressBar = new QProgressBar;
    m_progressBar->setTextVisible(false);
    m_progressBar->setMaximumHeight(8);
    m_progressBar->setMaximumWidth(220);
    m_progressLabel = new QLabel;
    m_progressLabel->setObjectName(QStringLiteral("progressLabel"));
    m_clockLabel = new QLabel;
    m_clockLabel->setObjectName(QStringLiteral("clockLabel"));
    auto *status = new QHBoxLayout;
    status->addWidget(m_progressBar);
    status->addWidget(m_progressLabel);
    status->addStretch();
    status->addWidget(m_clockLabel);

    auto *work = new QWidget;
    auto *wl = new QVBoxLayout(work);
    wl->setContentsMargins(0, 0, 0, 0);
    wl->addWidget(m_vertSplit, 1);
    wl->addLayout(verdicts);
    wl->addLayout(extra);

    // --- empty state ---
    auto *empty = new QWidget;
    auto *el = new QVBoxLayout(empty);
    m_emptyLabel = new QLabel;
    m_emptyLabel->setObjectName(QStringLiteral("emptyLabel"));
    m_emptyLabel->setAlignment(Qt::AlignCenter);
    m_emptyLabel->setWordWrap(true);
    m_emptyButton = new QPushButton(tr("Set annotator name…"));
    m_emptyButton->setVisible(false);
    connect(m_emptyButton, &QPushButton::clicked, this, [this]() {
        m_askedAnnotator = false;
        if (ensureAnnotator(true))
            showNext();
    });
    el->addStretch();
    el->addWidget(m_emptyLabel);
    el->addWidget(m_emptyButton, 0, Qt::AlignHCenter);
    el->addStretch();

    m_stack = new QStackedWidget;
    m_stack->addWidget(work);
    m_stack->addWidget(empty);

    // --- guidelines panel ---
    m_guidelines = new MarkdownView;
    m_guidelines->setObjectName(QStringLiteral("guidelinesView"));
    auto *editGuide = new QToolButton;
    editGuide->setText(tr("Edit…"));
    editGuide->setAutoRaise(true);
    editGuide->setFocusPolicy(Qt::NoFocus);
    connect(editGuide, &QToolButton::clicked, this, &LabelPage::editGuidelines);
    m_guidePanel = new QWidget;
    auto *gl = new QVBoxLayout(m_guidePanel);
    gl->setContentsMargins(0, 0, 0, 0);
    gl->setSpacing(2);
    gl->addWidget(caption(tr("Guidelines"), nullptr, { editGuide }));
    gl->addWidget(m_guidelines);

    m_outerSplit = new QSplitter(Qt::Horizontal);
    m_outerSplit->setObjectName(QStringLiteral("guidelinesSplitter"));
    m_outerSplit->addWidget(m_stack);
    m_outerSplit->addWidget(m_guidePanel);
    m_outerSplit->setStretchFactor(0, 4);
    m_outerSplit->setStretchFactor(1, 1);
    m_outerSplit->setChildrenCollapsible(false);

    auto *line = new QFrame;
    line->setFrameShape(QFrame::HLine);
    line->setFrameShadow(QFrame::Sunken);
    auto *outer = new QVBoxLayout(this);
    outer->addLayout(top);
    m_connectionBanner = new QLabel;
    m_connectionBanner->setObjectName(QStringLiteral("connectionBanner"));
    m_connectionBanner->setWordWrap(true);
    m_connectionBanner->setTextFormat(Qt::PlainText);
    m_connectionBanner->setStyleSheet(QStringLiteral(
        "QLabel { background: #fff4ce; color: #5c4400; border: 1px solid #e0c060; border-radius: 3px; padding: 4px; }"));
    m_connectionBanner->setVisible(false);
    outer->addWidget(m_connectionBanner);
    m_retryTimer = new QTimer(this);
    m_retryTimer->setSingleShot(true);
    connect(m_retryTimer, &QTimer::timeout, this, &LabelPage::retryAfterConnectionLoss);
    outer->addWidget(m_outerSplit, 1);
    outer->addWidget(line);
    outer->addLayout(status);
}

void LabelPage::saveLayout() const
{
    QSettings s;
    s.setValue(QStringLiteral("label/promptSplitter"), m_vertSplit->saveState());
    s.setValue(QStringLiteral("label/guidelinesSplitter"), m_outerSplit->saveState());
}

void LabelPage::restoreLayout()
{
    QSettings s;
    if (!m_vertSplit->restoreState(s.value(QStringLiteral("label/promptSplitter")).toByteArray()))
        m_vertSplit->setSizes({ 150, 600 });
    if (!m_outerSplit->restoreState(s.value(QStringLiteral("label/guidelinesSplitter")).toByteArray()))
        m_outerSplit->setSizes({ 900, 300 });
    const bool guide = s.value(QStringLiteral("label/guidelinesVisible"), true).toBool();
    m_guideAction->setChecked(guide);
    m_guidePanel->setVisible(guide);
}

void LabelPage::setAnnotatorName(const QString &name)
{
    if (name == m_annotatorName && (m_annotatorId || !m_session))
        return;
    if (m_session && m_current && m_annotatorId) {
        try {
            m_session->store().releaseSlot(m_annotatorId, m_current->slotId);
        } catch (const std::exception &) {
        }
    }
    m_annotatorName = name.trimmed();
    m_annotatorId = 0;
    m_current.reset();
    if (!m_annotatorName.isEmpty())
        QSettings().setValue(QStringLiteral("label/annotator"), m_annotatorName);
    if (m_session) {
        ensureAnnotator(false);
        showNext();
    }
}

void LabelPage::setJudgmentKind(dpo::JudgmentKind kind)
{
    if (kind == m_kind)
        return;
    if (m_session && m_current && m_annotatorId) {
        try {
            m_session->store().releaseSlot(m_annotatorId, m_current->slotId);
        } catch (const std::exception &) {
        }
    }
    m_kind = kind;
    m_current.reset();
    m_progressKnown = false;
    if (m_repair)
        m_repair->close();
    if (m_session && ensureAnnotator(false))
        showNext();
    else
        showPair(std::nullopt);
}

bool LabelPage::ensureAnnotator(bool ask)
{
    if (!m_session)
        return false;
    if (m_annotatorName.isEmpty() && ask && !m_askedAnnotator) {
        m_askedAnnotator = true;
        bool ok = false;
        const QString suggestion
            = qEnvironmentVariable("USER", qEnvironmentVariable("USERNAME", QDir::home().dirName()));
        const QString name = QInputDialog::getText(this, tr("Who is labeling?"),
            tr("Your annotator name. It is stored with every verdict and decides your own\n"
               "left/right order. You can change it later under Project → Switch annotator."),
            QLineEdit::Normal, suggestion, &ok);
        if (ok && !name.trimmed().isEmpty()) {
            m_annotatorName = name.trimmed();
            QSettings().setValue(QStringLiteral("label/annotator"), m_annotatorName);
        }
    }
    if (m_annotatorName.isEmpty())
        return false;
    if (!m_annotatorId) {
        try {
            m_annotatorId = m_session->store().annotator(m_annotatorName, true).id;
        } catch (const std::exception &e) {
            emit statusMessage(QString::fromUtf8(e.what()));
            return false;
        }
    }
    m_annotatorLabel->setText(m_kind == dpo::JudgmentKind::Eval
            ? tr("Blind evaluation as %1 in %2  ·  model identities hidden until the session ends")
                  .arg(m_annotatorName, m_session->displayName())
            : tr("Labeling as %1 in %2").arg(m_annotatorName, m_session->displayName()));
    return true;
}

void LabelPage::setProject(ProjectSession *session)
{
    if (m_session && m_current && m_annotatorId) {
        try {
            m_session->store().releaseSlot(m_annotatorId, m_current->slotId);
        } catch (const std::exception &) {
        }
    }
    if (m_session)
        disconnect(m_session, nullptr, this, nullptr);
    m_session = session;
    m_annotatorId = 0;
    m_current.reset();
    m_pending.reset();
    stopReconnecting();
    m_progressKnown = false;
    if (m_repair)
        m_repair->close();
    if (m_session)
        connect(m_session, &ProjectSession::contentChanged, this, [this]() {
            if (!m_current)
                showNext();
            refreshProgress();
        });
    refreshGuidelines();
    // Ask for a name only once the page is on screen (not while a window is being built).
    ensureAnnotator(isVisible());
    showNext();
}

void LabelPage::showEvent(QShowEvent *event)
{
    QWidget::showEvent(event);
    setFocus();
    if (m_session && !m_annotatorId) {
        QTimer::singleShot(0, this, [this]() {
            if (m_session && !m_annotatorId && isVisible() && ensureAnnotator(true))
                showNext();
        });
    }
}

void LabelPage::refreshGuidelines()
{
    QString md;
    if (m_session) {
        try {
            md = m_session->store().guidelines();
        } catch (const std::exception &) {
        }
    }
    if (md.trimmed().isEmpty())
        md = tr("*No guidelines yet.* Use **Edit…** to write them for this project (Markdown).");
    m_guidelines->setMarkdownText(md);
}

void LabelPage::editGuidelines()
{
    if (!m_session)
        return;
    QDialog dlg(this);
    dlg.setWindowTitle(tr("Edit guidelines"));
    auto *edit = new QPlainTextEdit;
    edit->setPlainText(m_session->store().guidelines());
    auto *buttons = new QDialogButtonBox(QDialogButtonBox::Save | QDialogButtonBox::Cancel);
    connect(buttons, &QDialogButtonBox::accepted, &dlg, &QDialog::accept);
    connect(buttons, &QDialogButtonBox::rejected, &dlg, &QDialog::reject);
    auto *lay = new QVBoxLayout(&dlg);
    lay->addWidget(new QLabel(tr("Guidelines for everyone labeling this project (Markdown):")));
    lay->addWidget(edit);
    lay->addWidget(buttons);
    dlg.resize(640, 480);
    if (dlg.exec() != QDialog::Accepted)
        return;
    try {
        m_session->store().setGuidelines(edit->toPlainText());
    } catch (const std::exception &e) {
        QMessageBox::warning(this, tr("Guidelines"), QString::fromUtf8(e.what()));
    }
    refreshGuidelines();
}

void LabelPage::showNext()
{
    std::optional<dpo::ShownPair> next;
    if (m_session && m_annotatorId) {
        try {
            next = m_session->store().nextPairFor(m_annotatorId, m_kind);
        } catch (const dpo::ConnectionLostError &e) {
            // Not "nothing left to label": the queue is unknown until the server is back.
            startReconnecting(QString::fromUtf8(e.what()));
            return;
        } catch (const std::exception &e) {
            emit statusMessage(QString::fromUtf8(e.what()));
        }
    }
    showPair(next);
    refreshProgress();
}

void LabelPage::showPair(const std::optional<dpo::ShownPair> &pair)
{
    m_current = pair;
    resetInputs();
    m_emptyButton->setVisible(false);
    if (!m_current) {
        m_prompt->setMarkdownText(QString());
        m_left->setMarkdownText(QString());
        m_right->setMarkdownText(QString());
        if (!m_session)
            m_emptyLabel->setText(tr("No project is open.\nUse File → Open project or File → New project."));
        else if (!m_annotatorId) {
            m_emptyLabel->setText(tr("Tell DPO Studio who is labeling to start."));
            m_emptyButton->setVisible(true);
        } else if (m_kind == dpo::JudgmentKind::Eval)
            m_emptyLabel->setText(tr("Blind evaluation: nothing left to judge for %1.\n\nEnd the session on the "
                                     "Evaluate page to reveal which model wrote what.")
                                      .arg(m_annotatorName));
        else
            m_emptyLabel->setText(tr("Nothing left to label for %1.\n\nEvery pair in your queue has a verdict. "
                                     "Import more pairs (File → Import…) or raise the overlap "
                                     "(Project → Annotations per pair…).")
                                      .arg(m_annotatorName));
        m_stack->setCurrentIndex(1);
        m_undoAction->setEnabled(m_annotatorId != 0);
        return;
    }
    m_stack->setCurrentIndex(0);
    m_undoAction->setEnabled(true);
    // A conversational prompt as its turns (a long system message folded); plain text as it is.
    const dpo::ConversationMarkdown prompt = dpo::conversationMarkdown(m_current->promptMessages, m_current->prompt);
    m_prompt->setFoldableMarkdown(prompt.markdown, prompt.expanded);
    const int turns = dpo::conversationTurns(m_current->promptMessages);
    // The completions answer the last user message: bring it into view; earlier turns are a scroll up.
    if (turns > 0)
        m_prompt->scrollToLast(dpo::conversationRoleLabel(QStringLiteral("user")) + QLatin1Char(':'));
    // A model that answers with EOS at once gave a real (empty) answer: say so instead of a blank pane.
    const auto shown = [this](const dpo::Completion &c) {
        if (c.text.isEmpty() && c.messagesJson.isEmpty())
            return QStringLiteral("*") + tr("(empty answer)") + QStringLiteral("*");
        // Completions are one assistant turn (shown as its text) or, with tool calls, a short conversation.
        const dpo::ConversationMarkdown md = dpo::conversationMarkdown(c.messagesJson, c.text);
        return md.expanded.isEmpty() ? md.markdown : md.expanded;
    };
    m_left->setMarkdownText(shown(m_current->left));
    m_right->setMarkdownText(shown(m_current->right));
    m_pairInfo->setText(turns == 0 ? tr("Prompt")
            : turns == 1           ? tr("Prompt  ·  1 turn")
                                   : tr("Prompt  ·  %1 turns").arg(turns));
    m_pairInfo->setToolTip(tr("Pair #%1").arg(m_current->pairId));
    if (m_diffAction->isChecked())
        applyDiff();
    m_pairTimer.start();
    updateClock();
}

void LabelPage::applyDiff()
{
    QSettings().setValue(QStringLiteral("label/diff"), m_diffAction->isChecked());
    if (!m_current)
        return;
    if (!m_diffAction->isChecked()) {
        m_left->clearHighlights();
        m_right->clearHighlights();
        return;
    }
    m_left->clearHighlights();
    m_right->clearHighlights();
    const QVector<WordToken> a = m_left->renderedTokens();
    const QVector<WordToken> b = m_right->renderedTokens();
    QVector<bool> ca, cb;
    WordDiff::diffTokens(a, b, ca, cb);
    m_left->highlight(a, ca);
    m_right->highlight(b, cb);
}

void LabelPage::resetInputs()
{
    m_slight->setChecked(false);
    m_much->setChecked(false);
    m_rationale->clear();
    if (m_rationale->hasFocus())
        setFocus();
}

Strength LabelPage::chosenStrength() const
{
    if (m_much->isChecked())
        return Strength::Much;
    if (m_slight->isChecked())
        return Strength::Slight;
    return Strength::Unspecified;
}

bool LabelPage::diffEnabled() const
{
    return m_diffAction->isChecked();
}

bool LabelPage::decide(Verdict verdict, Strength strength)
{
    if (!m_session || !m_current || !m_annotatorId)
        return false;
    if (m_reconnecting) {
        emit statusMessage(tr("Reconnecting to the server: the pair stays on screen until its verdict is saved."));
        return false;
    }
    if (verdict != Verdict::Left && verdict != Verdict::Right)
        strength = Strength::Unspecified;
    QElapsedTimer t;
    t.start();
    qint64 id = 0;
    // The verdict's own id: if the connection drops before the answer arrives, the retry finds the
    // judgment the server may already have committed instead of recording it twice.
    const QString clientId = QUuid::createUuid().toString(QUuid::WithoutBraces);
    try {
        // Committed when this returns: only then may the next pair appear.
        id = m_session->store().recordVerdict(
            m_annotatorId, *m_current, verdict, strength, m_rationale->text().trimmed(), clientId);
    } catch (const dpo::ConnectionLostError &e) {
        m_pending = PendingVerdict { verdict, strength, m_rationale->text().trimmed(), clientId };
        startReconnecting(QString::fromUtf8(e.what()));
        return false;
    } catch (const std::exception &e) {
        QMessageBox::warning(this, tr("Verdict not saved"),
            tr("The verdict could not be saved; the pair stays on screen.\n\n%1").arg(QString::fromUtf8(e.what())));
        return false;
    }
    m_lastRecordMs = double(t.nsecsElapsed()) / 1e6;
    ++m_sessionVerdicts;
    if (m_progressKnown) { // optimistic until the worker's count arrives
        ++m_progress.mine;
        ++m_progress.done; // a skip also closes its slot (the store counts it as done)
    }
    emit verdictRecorded(id);
    t.restart();
    showNext();
    m_lastNextMs = double(t.nsecsElapsed()) / 1e6;
    return true;
}

QString LabelPage::connectionMessage() const
{
    return m_connectionBanner->isVisible() ? m_connectionBanner->text() : QString();
}

void LabelPage::startReconnecting(const QString &why)
{
    if (!m_reconnecting)
        m_retryAttempt = 0;
    m_reconnecting = true;
    const int delayMs = std::min(8000, 500 << std::min(m_retryAttempt, 4));
    ++m_retryAttempt;
    m_connectionBanner->setText(
        (m_pending ? tr("Reconnecting to the project server… Your verdict on this pair is kept and will be saved "
                        "as soon as the server answers.")
                   : tr("Reconnecting to the project server… The next pair appears when the server answers."))
        + QLatin1Char(' ') + tr("(attempt %1, next in %2 s)").arg(m_retryAttempt).arg(delayMs / 1000.0));
    m_connectionBanner->setToolTip(why);
    m_connectionBanner->setVisible(true);
    m_retryTimer->start(delayMs);
}

void LabelPage::stopReconnecting()
{
    m_reconnecting = false;
    m_retryAttempt = 0;
    m_retryTimer->stop();
    m_connectionBanner->setVisible(false);
}

void LabelPage::retryAfterConnectionLoss()
{
    if (!m_session || !m_annotatorId) {
        m_pending.reset();
        stopReconnecting();
        return;
    }
    if (m_pending && m_current) {
        qint64 id = 0;
        try {
            id = m_session->store().recordVerdict(m_annotatorId, *m_current, m_pending->verdict, m_pending->strength,
                m_pending->rationale, m_pending->clientId);
        } catch (const dpo::ConnectionLostError &e) {
            startReconnecting(QString::fromUtf8(e.what()));
            return;
        } catch (const std::exception &e) {
            m_pending.reset();
            stopReconnecting();
            QMessageBox::warning(this, tr("Verdict not saved"),
                tr("The verdict could not be saved; the pair stays on screen.\n\n%1").arg(QString::fromUtf8(e.what())));
            return;
        }
        m_pending.reset();
        ++m_sessionVerdicts;
        emit verdictRecorded(id);
    }
    stopReconnecting();
    emit statusMessage(tr("Reconnected to the project server."));
    showNext(); // starts reconnecting again if the server went away once more
}

bool LabelPage::undo()
{
    if (!m_session || !m_annotatorId || m_reconnecting)
        return false;
    std::optional<dpo::ShownPair> again;
    try {
        again = m_session->store().undoLastVerdict(m_annotatorId, m_kind);
    } catch (const std::exception &e) {
        emit statusMessage(tr("Undo failed: %1").arg(QString::fromUtf8(e.what())));
        return false;
    }
    if (!again) {
        emit statusMessage(tr("Nothing to undo."));
        return false;
    }
    showPair(again);
    refreshProgress();
    emit statusMessage(tr("Verdict undone: the pair is back on screen."));
    return true;
}

void LabelPage::openRepair(bool left)
{
    if (!m_current || m_kind == dpo::JudgmentKind::Eval) // model outputs are judged as they are
        return;
    if (m_repair) {
        m_repair->setEditingLeft(left);
        m_repair->raise();
        m_repair->activateWindow();
        return;
    }
    m_repair = new RepairDialog(m_current->left.text, m_current->right.text, left, this);
    m_repair->setAttribute(Qt::WA_DeleteOnClose);
    const qint64 pairId = m_current->pairId;
    connect(m_repair, &RepairDialog::repairRequested, this, [this, pairId](bool editedLeft, const QString &text) {
        if (m_current && m_current->pairId == pairId)
            saveRepair(editedLeft, text);
    });
    m_repair->open();
}

bool LabelPage::saveRepair(bool editedLeft, const QString &text)
{
    if (!m_session || !m_current || !m_annotatorId || text.trimmed().isEmpty() || m_kind == dpo::JudgmentKind::Eval)
        return false;
    try {
        const qint64 pairId
            = m_session->store().repair(m_annotatorId, *m_current, editedLeft, text, m_rationale->text().trimmed());
        emit repairSaved(pairId);
        emit statusMessage(tr("Repair saved as pair #%1 (your edit preferred over the original). "
                              "Now give your verdict on the pair on screen.")
                               .arg(pairId));
        emit m_session->contentChanged();
    } catch (const std::exception &e) {
        QMessageBox::warning(this, tr("Repair not saved"), QString::fromUtf8(e.what()));
        return false;
    }
    return true;
}

void LabelPage::showShortcutSheet()
{
    auto *existing = findChild<ShortcutSheet *>();
    if (existing) {
        existing->raise();
        return;
    }
    QVector<ShortcutSheet::Section> sections = ShortcutSheet::collect(this);
    auto *sheet = new ShortcutSheet(sections, this);
    sheet->setAttribute(Qt::WA_DeleteOnClose);
    sheet->open();
}

void LabelPage::refreshProgress()
{
    if (!m_session || !m_annotatorId) {
        m_progressKnown = false;
        m_progressLabel->setText(!m_session                       ? QString()
                                 : m_session->store().isReadOnly() ? tr("Read-only project: browsing and export only")
                                                                   : tr("No annotator set"));
        m_progressBar->setValue(0);
        ++m_progressGeneration; // an answer still on its way is for another project or annotator
        m_progressInFlight = false;
        m_progressDirty = false;
        m_progressCooldown->stop();
        return;
    }
    // Shown right away from the local count, replaced by the store's count from the worker thread.
    if (m_progressKnown) {
        m_progressLabel->setText(progressText());
        m_progressBar->setValue(int(std::min<qint64>(m_progress.done, INT_MAX)));
    }
    // One count in flight at a time and at most one per cooldown: on a 200k-pair project a count
    // costs a few hundred ms of CPU, more than a fast labeler spends per pair, and it would compete
    // with painting the next pair. Requests made meanwhile collapse into one follow-up; the label
    // stays current from the local count in between.
    if (m_progressInFlight || m_progressCooldown->isActive()) {
        m_progressDirty = true;
        return;
    }
    m_progressInFlight = true;
    m_progressDirty = false;
    const int gen = ++m_progressGeneration;
    const qint64 annotator = m_annotatorId;
    const dpo::JudgmentKind kind = m_kind;
    m_session->worker().run<dpo::Progress>(
        this, [annotator, kind](dpo::ProjectStore &s) { return s.progress(annotator, kind); },
        [this, gen](dpo::Progress p) {
            m_progressInFlight = false;
            m_progressCooldown->start();
            if (gen == m_progressGeneration && !m_progressDirty) {
                m_progress = p;
                m_progressKnown = true;
                m_progressLabel->setText(progressText());
                m_progressBar->setMaximum(int(std::min<qint64>(p.total, INT_MAX)));
                m_progressBar->setValue(int(std::min<qint64>(p.done, INT_MAX)));
                updateClock();
            }
        },
        [this](const QString &err) {
            m_progressInFlight = false;
            m_progressLabel->setText(tr("Progress unavailable: %1").arg(err));
        });
}

QString LabelPage::progressText() const
{
    if (!m_progressKnown)
        return tr("Counting…");
    const dpo::Progress &p = m_progress;
    const double pct = p.total ? 100.0 * double(p.done) / double(p.total) : 0.0;
    return tr("Everyone: %1 / %2 judged (%3%)  ·  Mine: %4  ·  Left for me: %5")
        .arg(p.done)
        .arg(p.total)
        .arg(pct, 0, 'f', pct < 10 ? 1 : 0)
        .arg(p.mine)
        .arg(p.available);
}

void LabelPage::updateClock()
{
    if (!m_session || !m_annotatorId) {
        m_clockLabel->clear();
        return;
    }
    QStringList parts;
    if (m_current && m_pairTimer.isValid())
        parts << tr("This pair %1").arg(clockText(m_pairTimer.elapsed()));
    parts << tr("Session %1 (%2 verdicts)").arg(clockText(m_sessionTimer.elapsed())).arg(m_sessionVerdicts);
    if (m_progressKnown && m_progress.myMedianSeconds > 0)
        parts << tr("Median %1 s/pair").arg(m_progress.myMedianSeconds, 0, 'f', 1);
    m_clockLabel->setText(parts.join(QStringLiteral("  ·  ")));
}

void LabelPage::keyPressEvent(QKeyEvent *event)
{
    // Fallback for when the shortcut map did not match (e.g. the window is not active yet): the
    // same actions, so keys behave identically either way.
    // "?" arrives as Shift+? on most layouts: also try without Shift for non-letter keys.
    QList<QKeySequence> candidates { QKeySequence(event->keyCombination()) };
    if (event->modifiers() == Qt::ShiftModifier && !(event->key() >= Qt::Key_A && event->key() <= Qt::Key_Z)
        && event->key() != Qt::Key_Left && event->key() != Qt::Key_Right)
        candidates << QKeySequence(event->key());
    for (const QKeySequence &seq : std::as_const(candidates)) {
        for (QAction *a : std::as_const(m_keyActions)) {
            if (!a->isEnabled())
                continue;
            for (const QKeySequence &k : a->shortcuts()) {
                if (k.matches(seq) == QKeySequence::ExactMatch) {
                    a->trigger();
                    event->accept();
                    return;
                }
            }
        }
    }
    QWidget::keyPressEvent(event);
}
