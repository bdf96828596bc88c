// ProjectStore: the labeling project, a SQLite file (default) or a PostgreSQL database (teams).
//
// What it does: keeps prompts, completions with provenance, pairs, judgments, annotators, per-annotator
// queues with an overlap k (each pair judged by k annotators), guidelines, settings and training runs;
// serves the next pair to an annotator with a recorded left/right order; records verdicts durably
// (committed before the call returns); undo, repair, progress, Data-page listings, sanity checks and
// agreement statistics. One code path for both databases (Qt Sql, QSQLITE / QPSQL), every statement
// prepared with bound values.
//
// What it does not do: no widgets, no threads of its own, no model calls (candidate generation stores
// its results through addPrompt/addCompletion/addPair). A ProjectStore owns one database connection,
// which Qt ties to the thread that opened it: work off the GUI thread (import, export, statistics on a
// large project) opens its own ProjectStore on location() inside that thread.
//
// Errors: methods throw dpo::ProjectError (a dpo::Error) with a message meant for users; open() also has
// a non-throwing overload. A QCoreApplication must exist before open() (Qt loads the SQL drivers as
// plugins).
#pragma once

#include "engine/error.h"

#include <QDateTime>
#include <QString>
#include <QStringList>
#include <QVector>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>

namespace dpo {

class ProjectError : public Error {
public:
    using Error::Error;
};

// The PostgreSQL server went away (restart, network) and could not be reached again yet. Nothing of the
// failed call was committed unless it says so; the next call reconnects first, so the caller may retry
// (recordVerdict with a client id is safe to retry even when the outcome of the lost call is unknown).
class ConnectionLostError : public ProjectError {
public:
    using ProjectError::ProjectError;
};

// What the annotator clicked, relative to the screen.
enum class Verdict { Left, Right, Tie, BothBad, Skip };
// The same verdict relative to the pair: which completion (a or b) won. Stored next to the verdict.
enum class Winner { A, B, Tie, BothBad, Skip };
// Optional strength of a left/right verdict.
enum class Strength { Unspecified = 0, Slight = 1, Much = 2 };
// 'label' judgments feed training export; 'eval' judgments (blind model comparisons) are kept apart.
enum class JudgmentKind { Label, Eval };

QString verdictName(Verdict v); // "left", "right", "tie", "both_bad", "skip"
std::optional<Verdict> verdictFromName(const QString &name);
QString winnerName(Winner w); // "a", "b", "tie", "both_bad", "skip"
std::optional<Winner> winnerFromName(const QString &name);
QString kindName(JudgmentKind k); // "label", "eval"

// Where a completion came from. sampling is a JSON object as text ("{}" when unknown).
struct Provenance {
    QString source = QStringLiteral("import"); // "import", "generated", "repair", ...
    QString modelPath;
    QString checkpoint;
    QString samplingJson = QStringLiteral("{}");
    std::optional<qint64> seed;
    qint64 parentCompletionId = 0; // for repairs: the completion that was edited
    QString modelFingerprint; // generated: the model directory's files when it ran ("" = unknown)
};

// messagesJson fields hold a conversational row's message list as imported (compact JSON, "" for plain
// text); text is then its rendering ("role:\ncontent" blocks). project/conversation.h shows them.
struct Prompt {
    qint64 id = 0;
    QString text;
    QDateTime createdAt;
    QString messagesJson; // conversational prompts: the imported list of messages as compact JSON; else empty
};

struct Completion {
    qint64 id = 0;
    qint64 promptId = 0;
    QString text;
    Provenance provenance;
    QDateTime createdAt;
    QString messagesJson;
};

struct Annotator {
    qint64 id = 0;
    QString name;
    quint64 orderSeed = 0; // seeds this annotator's left/right randomization (recorded)
    QDateTime createdAt;
};

// A pair as the Label page shows it. Model identities are not part of it on purpose: provenance stays in
// the store. left/right are already in the order this annotator sees.
struct ShownPair {
    qint64 slotId = 0; // the queue slot claimed for this annotator (0: not from a queue)
    qint64 pairId = 0;
    qint64 promptId = 0;
    QString prompt;
    Completion left;
    Completion right;
    bool leftIsA = true; // true: completion a is shown on the left
    quint64 orderSeed = 0; // the seed that chose the order (annotator seed), recorded in the slot
    QDateTime shownAt;
    JudgmentKind kind = JudgmentKind::Label;
    QString promptMessages; // the prompt's message list ("" for a plain prompt); left/right carry theirs
};

struct Judgment {
    qint64 id = 0;
    qint64 pairId = 0;
    qint64 slotId = 0;
    qint64 annotatorId = 0;
    QString annotatorName;
    qint64 leftCompletionId = 0; // which completion was shown on the left
    bool leftIsA = true;
    Verdict verdict = Verdict::Skip;
    Winner winner = Winner::Skip;
    Strength strength = Strength::Unspecified;
    QString rationale;
    QDateTime shownAt;
    QDateTime decidedAt;
    JudgmentKind kind = JudgmentKind::Label;
};

struct Progress {
    qint64 total = 0; // queue slots (pairs x overlap) of this kind
    qint64 done = 0; // slots judged by anyone
    qint64 mine = 0; // judgments by this annotator (kind given)
    qint64 available = 0; // pairs this annotator could still be served (including the one on screen)
    qint64 annotators = 0; // annotators with at least one judgment
    double myMedianSeconds = 0; // median time on task (shown -> decided) of this annotator, 0 if none
    double myTotalSeconds = 0; // total time on task of this annotator
};

// Data page listings: paged, searched (case-insensitive substring), filtered.
struct PromptRow {
    qint64 id = 0;
    QString text;
    qint64 completions = 0;
    qint64 pairs = 0;
    QString messagesJson;
};

struct PairRow {
    qint64 id = 0;
    qint64 promptId = 0;
    QString prompt;
    qint64 completionA = 0;
    qint64 completionB = 0;
    QString textA;
    QString textB;
    QString origin; // "import", "import-judged", "generated", "repair", ...
    // The current majority of the pair's latest non-skip judgment per annotator: "a", "b", "tie" (tie
    // verdicts or an even split between the top choices) or "both_bad"; without judgments, "a"/"b" for pairs
    // imported as already judged; empty for pairs nobody judged.
    QString preferred;
    qint64 judgments = 0; // non-skip judgments of the pair's kind
    JudgmentKind kind = JudgmentKind::Label;
    QString promptMessages, messagesA, messagesB; // message lists of conversational rows, else ""
};

struct JudgmentRow {
    Judgment judgment;
    QString prompt;
    QString textA;
    QString textB;
    QString promptMessages, messagesA, messagesB; // message lists of conversational rows, else ""
};

enum class JudgedFilter { Any, Judged, Unjudged };

struct ListQuery {
    QString search; // substring of prompt or completion text; empty: everything
    qint64 annotatorId = 0; // judgments only; 0: any
    std::optional<Verdict> verdict; // judgments only
    std::optional<JudgmentKind> kind; // pairs/judgments; empty: any
    JudgedFilter judged = JudgedFilter::Any; // pairs only
    QString origin; // pairs only; empty: any
    int offset = 0;
    int limit = 100;
};

template <typename Row> struct Page {
    QVector<Row> rows;
    qint64 total = 0; // rows matching the query, ignoring offset/limit
};

// Sanity checks (Data page).
struct SanityIssue {
    enum Type { ChosenEqualsRejected, DuplicatePair, OverMaxLength, LengthSkew };
    Type type = ChosenEqualsRejected;
    qint64 pairId = 0;
    qint64 otherPairId = 0; // DuplicatePair: the earlier pair with the same texts
    QString detail;
};
QString sanityTypeName(SanityIssue::Type t); // "chosen_equals_rejected", "duplicate_pair", ...

struct SanityOptions {
    int maxChars = 8000; // prompt or completion longer than this (characters)
    double maxSkew = 3.0; // longer/shorter completion length ratio above this
    int limit = 10000; // stop after this many issues
};

// Agreement and bias over non-skip judgments of one kind. Categories: a, b, tie, both_bad.
// Values are NaN where undefined (too few annotators or items, or no variation).
struct AnnotatorAgreement {
    qint64 annotatorId = 0;
    QString name;
    qint64 items = 0; // items this annotator rated that have a majority without them
    double agreementWithMajority = 0; // share of those items where they match the others' majority
};

struct PairwiseKappa {
    qint64 annotatorA = 0;
    qint64 annotatorB = 0;
    qint64 items = 0;
    double kappa = 0;
};

struct AgreementReport {
    qint64 judgments = 0; // non-skip judgments
    qint64 items = 0; // pairs with at least one
    qint64 multiRated = 0; // pairs with two or more
    qint64 raters = 0;
    double cohenKappa = 0; // exactly two annotators: their Cohen's kappa; otherwise NaN
    QVector<PairwiseKappa> pairwise; // Cohen's kappa for every pair of annotators with shared items
    double fleissKappa = 0; // over multi-rated pairs (variable raters per item allowed)
    double krippendorffAlpha = 0; // nominal
    QVector<AnnotatorAgreement> annotators;
    // Position bias: among a/b verdicts, the share whose winner was shown on the left (0.5 = none).
    qint64 leftWins = 0;
    qint64 rightWins = 0;
    double leftWinShare = 0;
    // Length bias: among a/b verdicts with completions of different length, share won by the longer.
    qint64 longerWins = 0;
    qint64 shorterWins = 0;
    double longerWinShare = 0;
};

struct Counts {
    qint64 prompts = 0, completions = 0, pairs = 0, judgments = 0, annotators = 0;
    qint64 labelSlots = 0, labelSlotsDone = 0, evalJudgments = 0, prejudgedPairs = 0;
};

// Training runs (filled by the training issue).
struct Run {
    qint64 id = 0;
    QString name;
    QString status; // "created", "running", "finished", "failed", "stopped"
    QString configJson = QStringLiteral("{}");
    QString outputDir;
    QDateTime startedAt;
    QDateTime endedAt;
    QString lastMetricsJson = QStringLiteral("{}");
};

class ProjectStore {
public:
    enum class Backend { Sqlite, Postgres };

    // What open() may do with a location that holds no project. Something that is not a DPO Studio
    // project (another program's database, an empty file) is never opened, and nothing is written to it.
    enum class OpenMode {
        OpenOrCreate, // a project, or a new one where there is none yet: no file / a database without tables
        Existing, // an existing project only (read commands: stats, export)
        ReadOnly, // an existing project, for browsing and export: every change throws (isReadOnly())
    };

    // Opens a project: a file path (SQLite) or postgresql://user[:pw]@host[:port]/db. Migrates an older
    // schema; refuses a newer one. maxSchemaVersion limits migrations (tests/tools). A project file without
    // write permission opens read-only whatever the mode (its schema must then be current).
    static std::unique_ptr<ProjectStore> open(const QString &pathOrUrl, int maxSchemaVersion = -1); // OpenOrCreate
    static std::unique_ptr<ProjectStore> open(const QString &pathOrUrl, QString *error); // OpenOrCreate
    static std::unique_ptr<ProjectStore> open(const QString &pathOrUrl, OpenMode mode, int maxSchemaVersion = -1);
    static std::unique_ptr<ProjectStore> open(const QString &pathOrUrl, OpenMode mode, QString *error);
    static bool isUrl(const QString &pathOrUrl);
    static int currentSchemaVersion();

    ~ProjectStore();
    ProjectStore(const ProjectStore &) = delete;
    ProjectStore &operator=(const ProjectStore &) = delete;

    Backend backend() const;
    QString location() const; // as given to open() (may hold a password: do not show/persist)
    QString displayLocation() const; // password masked
    int schemaVersion() const;
    // Opened with OpenMode::ReadOnly or on a file without write permission: listings, statistics and export
    // work; labeling, import and every other change throw a ProjectError saying the project is read-only.
    bool isReadOnly() const;

    // RAII transaction (IMMEDIATE on SQLite). Rolls back unless commit() was called. Not reentrant:
    // the store's own methods open their own transactions, so do not call them inside one, except
    // addPrompt/addCompletion/addPair/findPrompt, which join an open transaction.
    class Transaction {
    public:
        explicit Transaction(ProjectStore &store);
        ~Transaction();
        void commit();
        Transaction(const Transaction &) = delete;
        Transaction &operator=(const Transaction &) = delete;

    private:
        ProjectStore &m_store;
        bool m_done = false;
    };

    // Settings.
    QString guidelines() const; // Markdown
    void setGuidelines(const QString &markdown);
    int overlap() const; // k: judgments wanted per label pair (default 1)
    void setOverlap(int k); // adds/removes unclaimed slots to match
    QString setting(const QString &key, const QString &fallback = {}) const;
    void setSetting(const QString &key, const QString &value);

    // Annotators.
    Annotator annotator(const QString &name, bool create = true); // throws if absent and !create
    QVector<Annotator> annotators() const;

    // Content. addPrompt reuses an existing prompt with the same text. addCompletion accepts an empty text:
    // a model that answers with end-of-sequence at once gave a real (empty) answer, to be judged like any
    // other. addPair creates k queue slots for a label pair without a preferred side (pairs imported as
    // already judged are not queued).
    qint64 addPrompt(const QString &text);
    std::optional<qint64> findPrompt(const QString &text) const;
    qint64 addCompletion(qint64 promptId, const QString &text, const Provenance &provenance = {});
    qint64 addPair(qint64 promptId, qint64 completionA, qint64 completionB, const QString &origin = "import",
        JudgmentKind kind = JudgmentKind::Label, const QString &preferred = {});
    Prompt prompt(qint64 id) const;
    Completion completion(qint64 id) const;
    QVector<Completion> completionsOf(qint64 promptId) const;
    // Prompts with fewer than minCompletions completions (for candidate generation), oldest first.
    QVector<Prompt> promptsNeedingCompletions(int minCompletions, int limit = 1000) const;

    // Labeling. nextPairFor returns the annotator's open slot if one is claimed (the pair on screen
    // after a crash), else atomically claims a free slot of a pair this annotator has not judged; empty
    // when the queue is exhausted for them. Both are index lookups; on SQLite the claim commits without an
    // fsync (the verdict's commit syncs it), so a keypress costs one fsync. recordVerdict commits before it
    // returns and gives the judgment id. undoLastVerdict deletes the annotator's latest judgment of that
    // kind, reopens its slot (releasing the slot currently on screen) and returns the pair to show again.
    std::optional<ShownPair> nextPairFor(qint64 annotatorId, JudgmentKind kind = JudgmentKind::Label);
    // clientId (optional, unique per verdict, e.g. a UUID made when the key was pressed) makes the call
    // idempotent: repeated with the same id, it returns the judgment already recorded instead of a second one.
    qint64 recordVerdict(qint64 annotatorId, const ShownPair &shown, Verdict verdict,
        Strength strength = Strength::Unspecified, const QString &rationale = {}, const QString &clientId = {});
    // PostgreSQL: whether the last call found the connection lost (the next call reconnects first), and how
    // many times this store has reconnected. Always false / 0 on SQLite.
    bool connectionLost() const;
    int reconnects() const;
    std::optional<ShownPair> undoLastVerdict(qint64 annotatorId, JudgmentKind kind = JudgmentKind::Label);
    void releaseSlot(qint64 annotatorId, qint64 slotId); // give a claimed slot back (e.g. on logout)
    // Repair: the annotator edited one side; store the text as a new completion (source "repair") and a
    // new pair edited = chosen (a), original = rejected (b), recorded as judged by this annotator. The
    // shown pair itself stays open (the caller may still record a verdict on it). Returns the new pair id.
    qint64 repair(qint64 annotatorId, const ShownPair &shown, bool editedLeft, const QString &editedText,
        const QString &rationale = {});
    // Records a judgment without a queue slot (e.g. evaluation tools that pick pairs themselves).
    qint64 recordJudgment(qint64 annotatorId, qint64 pairId, bool leftIsA, Verdict verdict, JudgmentKind kind,
        const QDateTime &shownAt, Strength strength = Strength::Unspecified, const QString &rationale = {});

    // Reads counters that every change keeps in its own transaction (schema 4; an older project is counted
    // once when open() migrates it): O(annotators) plus the latest 2,000 times on task for the median,
    // about 0.1 ms on a 200,000-pair SQLite project whatever its size. Throws on a store opened below
    // schema 4 (maxSchemaVersion).
    Progress progress(qint64 annotatorId, JudgmentKind kind = JudgmentKind::Label) const;
    Counts counts() const;

    // Data page.
    Page<PromptRow> listPrompts(const ListQuery &q) const;
    Page<PairRow> listPairs(const ListQuery &q) const;
    Page<JudgmentRow> listJudgments(const ListQuery &q) const;
    QVector<Judgment> judgmentsOfPair(qint64 pairId) const;
    QVector<SanityIssue> sanityChecks(const SanityOptions &options = {}) const;
    AgreementReport agreement(JudgmentKind kind = JudgmentKind::Label) const;

    // Runs.
    qint64 createRun(const QString &name, const QString &configJson, const QString &outputDir);
    void updateRun(qint64 id, const QString &status, const QString &lastMetricsJson = {});
    void finishRun(qint64 id, const QString &status);
    QVector<Run> runs() const;

    // Internal plumbing for the importer/exporter in this library.
    struct Impl;
    Impl &impl() const { return *d; }

private:
    ProjectStore();
    std::unique_ptr<Impl> d;
};

// ---- Import / export (project_io.cpp). Callable from any thread with that thread's own ProjectStore.

enum class ImportFormat { Auto, Trl, Csv, Prompts };
enum class OnError { Skip, Abort };

struct ImportIssue {
    qint64 line = 0; // 1-based line where the bad row starts
    QString message;
};

struct ImportOptions {
    ImportFormat format = ImportFormat::Auto;
    OnError onError = OnError::Skip;
    // Called from the importing thread; done/total is the fraction finished (parse, then write phase).
    std::function<void(qint64 done, qint64 total)> progress;
    const std::atomic<bool> *cancel = nullptr; // set to stop; nothing is imported then
    int maxReportedErrors = 1000;
    // Checked before a row is parsed, so a hostile file costs neither time nor memory: a JSONL line or CSV
    // record longer than maxRowBytes, or a JSON row nested deeper than maxJsonDepth, is a bad row whose error
    // names its line. maxRowBytes 0 = the default: DPO_MAX_ROW_BYTES when set, else 8 MiB, the limit training
    // puts on a row (`dpo-cli project import --max-row-bytes`). Real rows nest 4 levels (conversational).
    qint64 maxRowBytes = 0;
    int maxJsonDepth = 64;
};

struct ImportResult {
    qint64 imported = 0; // rows imported
    qint64 skipped = 0; // bad rows
    QVector<ImportIssue> errors;
    bool aborted = false; // OnError::Abort and at least one bad row: nothing imported
    bool cancelled = false; // nothing imported
    ImportFormat format = ImportFormat::Auto; // the format used
};

// Reads the whole file in one transaction. Throws ProjectError when the file cannot be read.
ImportResult importFile(ProjectStore &store, const QString &path, const ImportOptions &options = {});
// Parses `data` as importFile parses a file at `path` (its suffix picks the format under Auto) and reports
// what importFile would do, writing nothing: `imported` counts the rows it would import. For previews and the
// import fuzz target (tests/fuzz).
ImportResult parseImport(const QByteArray &data, const QString &path, const ImportOptions &options = {});

enum class ExportFormat { Trl, JudgmentsJsonl, JudgmentsCsv };

struct ExportOptions {
    ExportFormat format = ExportFormat::Trl;
    // Trl: a pair is exported when its majority winner is a or b, with at least minVotes non-skip votes
    // and a majority share >= minAgreement. Pairs imported as already judged and never judged since
    // export their imported preference. Ties, both-bad and skips are left out; eval judgments never go.
    int minVotes = 1;
    double minAgreement = 0.0;
    std::optional<JudgmentKind> kind; // judgments export: empty = both kinds
    std::function<void(qint64 done, qint64 total)> progress;
    const std::atomic<bool> *cancel = nullptr;
};

struct ExportResult {
    qint64 rows = 0;
    bool cancelled = false; // nothing written: a file already at the path is left as it was
};

// Atomic: written to a temporary file in the same folder, synced, then renamed over path. A cancel or an
// error (thrown) leaves no partial file and a file already at path as it was.
ExportResult exportFile(ProjectStore &store, const QString &path, const ExportOptions &options = {});

} // namespace dpo
