// Private plumbing of ProjectStore shared with the importer/exporter of this library: the connection,
// the cache of prepared statements, the dialect, and row-level insert helpers. Not a public API.
#pragma once

#include "project/project_store.h"

#include <QHash>
#include <QSqlDatabase>
#include <QSqlQuery>
#include <QVariant>

#include <map>
#include <memory>
#include <utility>

namespace dpo {

struct ProjectStore::Impl {
    QString location;
    QString display;
    QString connName;
    Backend backend = Backend::Sqlite;
    int version = 0;
    int txDepth = 0;
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
    // First column of the first row (null QVariant when no row); finishes the statement.
    QVariant scalar(const QString &sql, const QVariantList &values = {});
    // For INSERT ... RETURNING id.
    qint64 insert(const QString &sql, const QVariantList &values);
    void execDdl(const QString &sql);

    void begin();
    void commit(); // writes counterDeltas, then COMMIT
    void rollback();

    [[noreturn]] void fail(const QString &what, const QSqlError &err) const;

    // Row helpers (join an open transaction; addPairRow opens its own when none is open).
    qint64 addPromptRow(const QString &text, const QString &messagesJson);
    std::optional<qint64> findPromptRow(const QString &text, const QString &messagesJson);
    qint64 addCompletionRow(qint64 promptId, const QString &text, const QString &messagesJson, const Provenance &p);
    qint64 addPairRow(qint64 promptId, qint64 a, qint64 b, const QString &origin, JudgmentKind kind,
        const QString &preferred, const QString &importStyle, int slotCount);
    int overlapSetting();
};

// Joins an open transaction or opens one; rolls back on destruction unless committed.
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

} // namespace dpo
