// LabelPage: the side-by-side labeling workspace. Prompt on top, the two completions (Markdown) side by
// side in the order the store chose for this annotator, verdict buttons, optional strength and
// rationale, repair, undo, a guidelines panel, progress and time on task.
//
// Durability: a verdict goes through ProjectStore::recordVerdict on the GUI thread's store, which
// commits before returning; only then is the next pair claimed and painted. Progress counts are
// refreshed on the session's StoreWorker so they never hold up the next pair.
// Keys are QActions on this page (Qt::WidgetWithChildrenShortcut), so the shortcut sheet lists exactly
// what is bound, and a focused rationale field keeps its typed characters.
// Does not pick pairs or sides: the store does (and records the order).
#pragma once

#include "ui/shell/projectsession.h"

#include <QElapsedTimer>
#include <QPointer>
#include <QWidget>

#include <optional>

class MarkdownView;
class QAction;
class QLabel;
class QLineEdit;
class QProgressBar;
class QPushButton;
class QSplitter;
class QStackedWidget;
class QTimer;
class QToolButton;
class RepairDialog;

class LabelPage : public QWidget, public ProjectPage {
    Q_OBJECT
public:
    explicit LabelPage(QWidget *parent = nullptr);
    ~LabelPage() override;

    void setProject(ProjectSession *session) override;

    // The annotator's name; empty asks on first use (remembered in QSettings "label/annotator").
    void setAnnotatorName(const QString &name);
    QString annotatorName() const { return m_annotatorName; }
    qint64 annotatorId() const { return m_annotatorId; }

    // Which queue the page serves: Label (default) or Eval (blind model comparisons of the Evaluate
    // page: verdicts are stored as kind 'eval', repair is off, the page says it is a blind evaluation).
    // Switching releases the slot on screen and shows the next pair of the new kind.
    void setJudgmentKind(dpo::JudgmentKind kind);
    dpo::JudgmentKind judgmentKind() const { return m_kind; }

    // The pair on screen (empty: none, e.g. queue exhausted or no project).
    const std::optional<dpo::ShownPair> &currentPair() const { return m_current; }
    QString progressText() const;
    bool diffEnabled() const;

    // Programmatic equivalents of the keys (the actions call these).
    bool decide(dpo::Verdict verdict, dpo::Strength strength);
    bool undo();
    bool saveRepair(bool editedLeft, const QString &text);
    void openRepair(bool left);
    void showShortcutSheet();

    // Keypress-to-paint instrumentation: milliseconds of the last verdict's record + next pair render.
    double lastRecordMs() const { return m_lastRecordMs; }
    double lastNextMs() const { return m_lastNextMs; }

    // PostgreSQL connection lost: the page says "Reconnecting…", keeps the pair on screen, and retries
    // with backoff (0.5 s doubling to 8 s) until the verdict given meanwhile is saved (under its client id,
    // so a retry never counts twice) or the next pair can be fetched. Keys are ignored meanwhile.
    bool isReconnecting() const { return m_reconnecting; }
    QString connectionMessage() const;

signals:
    void verdictRecorded(qint64 judgmentId);
    void repairSaved(qint64 pairId);
    void statusMessage(const QString &message);

protected:
    void keyPressEvent(QKeyEvent *event) override;
    void showEvent(QShowEvent *event) override;

private:
    QAction *addKeyAction(const QString &text, const QList<QKeySequence> &keys, std::function<void()> fn);
    void buildUi();
    bool ensureAnnotator(bool ask);
    void showNext();
    void showPair(const std::optional<dpo::ShownPair> &pair);
    void applyDiff();
    void refreshProgress();
    void refreshGuidelines();
    void updateClock();
    void resetInputs();
    dpo::Strength chosenStrength() const;
    void editGuidelines();
    void saveLayout() const;
    void restoreLayout();
    void startReconnecting(const QString &why);
    void retryAfterConnectionLoss();
    void stopReconnecting();

    struct PendingVerdict {
        dpo::Verdict verdict;
        dpo::Strength strength;
        QString rationale;
        QString clientId;
    };
    std::optional<PendingVerdict> m_pending; // given while the connection was lost, not saved yet
    bool m_reconnecting = false;
    int m_retryAttempt = 0;
    QTimer *m_retryTimer = nullptr;
    QLabel *m_connectionBanner = nullptr;

    ProjectSession *m_session = nullptr;
    dpo::JudgmentKind m_kind = dpo::JudgmentKind::Label;
    QString m_annotatorName;
    qint64 m_annotatorId = 0;
    std::optional<dpo::ShownPair> m_current;
    dpo::Progress m_progress;
    bool m_progressKnown = false;
    int m_progressGeneration = 0;
    bool m_progressInFlight = false;
    bool m_progressDirty = false;
    QTimer *m_progressCooldown = nullptr;

    QStackedWidget *m_stack = nullptr;
    QLabel *m_emptyLabel = nullptr;
    QPushButton *m_emptyButton = nullptr;
    QSplitter *m_outerSplit = nullptr; // work area | guidelines
    QSplitter *m_vertSplit = nullptr; // prompt / completions
    MarkdownView *m_prompt = nullptr;
    MarkdownView *m_left = nullptr;
    MarkdownView *m_right = nullptr;
    QLabel *m_pairInfo = nullptr;
    QPushButton *m_slight = nullptr;
    QPushButton *m_much = nullptr;
    QLineEdit *m_rationale = nullptr;
    QLabel *m_progressLabel = nullptr;
    QProgressBar *m_progressBar = nullptr;
    QLabel *m_clockLabel = nullptr;
    QLabel *m_annotatorLabel = nullptr;
    QWidget *m_guidePanel = nullptr;
    MarkdownView *m_guidelines = nullptr;
    QAction *m_diffAction = nullptr;
    QAction *m_guideAction = nullptr;
    QAction *m_undoAction = nullptr;
    QList<QAction *> m_keyActions;
    QPointer<RepairDialog> m_repair;
    QTimer *m_clock = nullptr;
    QElapsedTimer m_pairTimer;
    QElapsedTimer m_sessionTimer;
    qint64 m_sessionMsBefore = 0; // active time accumulated before the page was last hidden
    int m_sessionVerdicts = 0;
    double m_lastRecordMs = 0;
    double m_lastNextMs = 0;
    bool m_askedAnnotator = false;
};
