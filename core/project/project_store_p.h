// Private plumbing of ProjectStore, shared by its store_*.cpp files and the importer/exporter of this
// library: the connection, the cache of prepared statements, the dialect, row-level insert helpers, the
// schema entry points and the progress-counter helpers. Not a public API.
#pragma once

#include "project/project_store.h"

#include <QFile>
#include <QHash>
#include <QSqlDatabase>
#include <QSqlQuery>
#include <QVariant>

#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <thread>
#include <utility>

namespace dpo {

struct ProjectStore::Impl {
    QString location;
    QString display;
    QString connName;
    Backend backend = Backend::Sqlite;
    int version = 0;
    int txDepth = 0;
    bool readOnly = false; // OpenMode::ReadOnly or no write permission: begin() refuses
    mutable bool lost = false; // PostgreSQL: a call failed because the server connection is gone
    int reconnects = 0;
    QSqlDatabase db;
    QHash<QString, std::shared_ptr<QSqlQuery>> cache;

    // Changes to the progress counters (table counters, schema 4) made by the open transaction, keyed by
    // (annotator id, kind), annotator 0 = the whole project. commit() adds them to the stored rows in key
    // order just before COMMIT: one UPDATE per row and transaction, a fixed lock order on PostgreSQL, and no
    // row updated 100,000 times inside one import. begin()/rollback() drop them.
    struct CounterDelta {
        qint64 slotTotal = 0, slotsDone = 0, freePairs = 0; // annotator 0 (slots: a Qt macro)
        qint64 judgments = 0, judgedMs = 0, touchedFree = 0; // per annotator
    };
    std::map<std::pair<qint64, QString>, CounterDelta> counterDeltas;

    bool pg() const { return backend == Backend::Postgres; }

    // A prepared statement for sql (cached by its text). Dialect markers: %LOCK% becomes
    // " FOR UPDATE OF s SKIP LOCKED" and %ROWLOCK% " FOR UPDATE" on PostgreSQL, nothing on SQLite.
    QSqlQuery &prepare(const QString &sql);
    // Prepares, binds values positionally and executes; throws ProjectError naming the statement.
    QSqlQuery &exec(const QString &sql, const QVariantList &values = {});
    QSqlQuery &execOnce(const QString &sql, const QVariantList &values);
    // First column of the first row (null QVariant when no row); finishes the statement.
    QVariant scalar(const QString &sql, const QVariantList &values = {});
    // For INSERT ... RETURNING id.
    qint64 insert(const QString &sql, const QVariantList &values);
    void execDdl(const QString &sql);

    void begin();
    void commit(); // writes counterDeltas, then COMMIT
    void rollback();

    // Throws ConnectionLostError (and marks the connection lost) when err or the connection says the
    // server is gone, else ProjectError.
    [[noreturn]] void fail(const QString &what, const QSqlError &err) const;
    bool isConnectionError(const QSqlError &err) const;
    // PostgreSQL, outside a transaction: a lost connection is opened again (prepared statements are
    // dropped, session settings applied again); throws ConnectionLostError while the server is unreachable.
    void ensureConnected();
    void applySessionSettings();

    // Row helpers (join an open transaction; addPairRow opens its own when none is open).
    qint64 addPromptRow(const QString &text, const QString &messagesJson);
    std::optional<qint64> findPromptRow(const QString &text, const QString &messagesJson);
    qint64 addCompletionRow(qint64 promptId, const QString &text, const QString &messagesJson, const Provenance &p);
    qint64 addPairRow(qint64 promptId, qint64 a, qint64 b, const QString &origin, JudgmentKind kind,
        const QString &preferred, const QString &importStyle, int slotCount);
    int overlapSetting();
};

// Joins an open transaction or opens one; rolls back on destruction unless committed.
// PostgreSQL ends one of two transactions that wait for each other's rows (SQLSTATE 40P01 deadlock,
// 40001 serialization failure) and expects the application to run it again.
class DeadlockError : public ProjectError {
public:
    using ProjectError::ProjectError;
};

// Runs a labeling call's transaction, again (up to 5 times, after a short pause) when PostgreSQL chose it
// as a deadlock's victim: its rollback undid everything, the counter deltas included, so the call is
// simply repeated. Inside an outer transaction the error goes up to the outermost call, which retries.
template <class Body>
auto retryDeadlocks(ProjectStore::Impl &d, Body body) -> decltype(body())
{
    for (int attempt = 1;; ++attempt) {
        try {
            return body();
        } catch (const DeadlockError &e) {
            if (d.txDepth > 0)
                throw;
            if (attempt == 5) // a plain error: no enclosing call may run its committed part again
                throw ProjectError(e.what());
            std::this_thread::sleep_for(std::chrono::milliseconds(5 * attempt));
        }
    }
}

class TxGuard {
public:
    explicit TxGuard(ProjectStore::Impl &d)
        : m_d(d)
        , m_own(d.txDepth == 0)
    {
        if (m_own)
            m_d.begin();
    }
    ~TxGuard()
    {
        if (m_own && !m_done) {
            try {
                m_d.rollback();
            } catch (...) {
            }
        }
    }
    void commit()
    {
        if (m_own && !m_done)
            m_d.commit();
        m_done = true;
    }
    TxGuard(const TxGuard &) = delete;
    TxGuard &operator=(const TxGuard &) = delete;

private:
    ProjectStore::Impl &m_d;
    bool m_own;
    bool m_done = false;
};

QString textHash(const QString &text, const QString &extra = {});
qint64 nowMs();
QDateTime fromMs(const QVariant &v);
QVariant nullInt();
JudgmentKind kindFromName(const QString &s); // "eval" -> Eval, anything else -> Label

// ---- schema (store_schema.cpp)

// Creates or migrates the schema in one transaction serialized across processes (maxSchemaVersion < 0:
// the current version). Called by open() once the connection is set up. Without mayCreate, a database
// without DPO Studio's schema_version table is refused before anything is written.
void migrateSchema(ProjectStore::Impl &d, int maxSchemaVersion, bool mayCreate);
// Read-only connections: the schema version, which must be the current one (no migration is possible).
void readSchemaVersion(ProjectStore::Impl &d);
// True when the database is a project; false when it has no tables and mayCreate; throws otherwise (another
// program's tables, an empty file). Reads only.
bool checkIsProject(ProjectStore::Impl &d, bool mayCreate);
// Counts every progress counter from the tables (O(project)): at migration 4 and after setOverlap.
const QStringList &recountStatements();

// ---- content rows (store_content.cpp)

QString completionColumns(int version); // SELECT list for completionFrom (schema-version aware)
Completion completionFrom(QSqlQuery &q, int o = 0); // from the columns above, starting at column o

// ---- progress counters (store_progress.cpp)

inline bool hasCounters(const ProjectStore::Impl &d)
{
    return d.version >= 4;
}

inline ProjectStore::Impl::CounterDelta &counterDelta(ProjectStore::Impl &d, qint64 annotatorId, const QString &kind)
{
    return d.counterDeltas[{ annotatorId, kind }];
}

struct PairState {
    bool hasFree = false; // at least one unclaimed slot
    QString kind; // of the free slot (a pair's slots all have the pair's kind)
    std::set<qint64> touchers; // annotators holding a slot of it or having judged it (only if hasFree)
};

// Locks the pair row until commit (PostgreSQL with counters; SQLite's write lock serializes anyway).
void lockPair(ProjectStore::Impl &d, qint64 pairId);
PairState pairState(ProjectStore::Impl &d, qint64 pairId);
// Adds the change of a pair's free-slot state and touchers between before and after to the counter deltas.
void applyPairChange(ProjectStore::Impl &d, const PairState &before, const PairState &after);

// An open file's bytes, mapped rather than read (its pages stay in the page cache instead of a private
// copy on the heap); read when it cannot be mapped. Valid while `file` stays open.
QByteArray mappedContents(QFile &file);

// The byte limit of one imported row or JSONL line: DPO_MAX_ROW_BYTES when set, else 8 MiB (the limit
// training applies to the same rows).
qint64 defaultRowLimit();

} // namespace dpo
