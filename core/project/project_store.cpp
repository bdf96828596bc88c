// ProjectStore, the connection: open (SQLite file or PostgreSQL URL, connection settings, where a project
// may be created and when it is read-only) and close, the Impl plumbing every other store_*.cpp file goes
// through (prepared-statement cache, exec/scalar/insert, transactions and the progress counters written at
// commit), and small shared helpers (text hashes, times, enum names). The rest of ProjectStore lives next to
// it behind project_store_p.h: store_schema.cpp (schema and migrations), store_content.cpp (settings,
// annotators, prompts, completions, pairs), store_queue.cpp (the labeling queue), store_progress.cpp
// (progress counters), store_queries.cpp (Data-page listings), store_reports.cpp (sanity checks, agreement)
// and store_runs.cpp (training runs). Times are stored as milliseconds since the epoch (UTC) in BIGINT
// columns and booleans as 0/1 INTEGERs so that one schema text serves SQLite and PostgreSQL.
#include "project/project_store.h"

#include "project/project_store_p.h"

#include <QCryptographicHash>
#include <QDir>
#include <QFileInfo>
#include <QSqlError>
#include <QUrl>
#include <QUrlQuery>

namespace dpo {

namespace {

QString maskPassword(const QString &location)
{
    if (!ProjectStore::isUrl(location))
        return location;
    QUrl url(location);
    if (!url.password().isEmpty())
        url.setPassword(QStringLiteral("****"));
    return url.toString();
}

} // namespace

// ---- small shared helpers

QString textHash(const QString &text, const QString &extra)
{
    QCryptographicHash h(QCryptographicHash::Md5);
    h.addData(text.toUtf8());
    if (!extra.isEmpty()) {
        h.addData(QByteArrayView("\0", 1));
        h.addData(extra.toUtf8());
    }
    return QString::fromLatin1(h.result().toHex());
}

qint64 nowMs()
{
    return QDateTime::currentMSecsSinceEpoch();
}

QDateTime fromMs(const QVariant &v)
{
    if (v.isNull())
        return {};
    return QDateTime::fromMSecsSinceEpoch(v.toLongLong(), Qt::UTC);
}

QVariant nullInt()
{
    return QVariant();
}

QString verdictName(Verdict v)
{
    switch (v) {
    case Verdict::Left:
        return QStringLiteral("left");
    case Verdict::Right:
        return QStringLiteral("right");
    case Verdict::Tie:
        return QStringLiteral("tie");
    case Verdict::BothBad:
        return QStringLiteral("both_bad");
    case Verdict::Skip:
        break;
    }
    return QStringLiteral("skip");
}

std::optional<Verdict> verdictFromName(const QString &name)
{
    for (Verdict v : { Verdict::Left, Verdict::Right, Verdict::Tie, Verdict::BothBad, Verdict::Skip })
        if (verdictName(v) == name)
            return v;
    return std::nullopt;
}

QString winnerName(Winner w)
{
    switch (w) {
    case Winner::A:
        return QStringLiteral("a");
    case Winner::B:
        return QStringLiteral("b");
    case Winner::Tie:
        return QStringLiteral("tie");
    case Winner::BothBad:
        return QStringLiteral("both_bad");
    case Winner::Skip:
        break;
    }
    return QStringLiteral("skip");
}

std::optional<Winner> winnerFromName(const QString &name)
{
    for (Winner w : { Winner::A, Winner::B, Winner::Tie, Winner::BothBad, Winner::Skip })
        if (winnerName(w) == name)
            return w;
    return std::nullopt;
}

QString kindName(JudgmentKind k)
{
    return k == JudgmentKind::Eval ? QStringLiteral("eval") : QStringLiteral("label");
}

JudgmentKind kindFromName(const QString &s)
{
    return s == QLatin1String("eval") ? JudgmentKind::Eval : JudgmentKind::Label;
}

// ---- Impl

QSqlQuery &ProjectStore::Impl::prepare(const QString &sql)
{
    auto it = cache.find(sql);
    if (it != cache.end())
        return **it;
    QString text = sql;
    text.replace(QLatin1String("%LOCK%"), pg() ? QLatin1String(" FOR UPDATE OF s SKIP LOCKED") : QLatin1String(""));
    text.replace(QLatin1String("%ROWLOCK%"), pg() ? QLatin1String(" FOR UPDATE") : QLatin1String(""));
    auto q = std::make_shared<QSqlQuery>(db);
    q->setForwardOnly(true); // every result is read once, in order: no client-side caching of rows
    if (!q->prepare(text))
        fail(QStringLiteral("preparing \"%1\"").arg(text.left(80)), q->lastError());
    cache.insert(sql, q);
    return *q;
}

void ProjectStore::Impl::fail(const QString &what, const QSqlError &err) const
{
    if (isConnectionError(err)) {
        lost = true;
        throw ConnectionLostError(QStringLiteral("project %1: the connection to the PostgreSQL server was lost (%2 "
                                                 "failed: %3); it is reopened on the next call")
                                      .arg(display, what, err.text().trimmed())
                                      .toStdString());
    }
    const QString message = QStringLiteral("project %1: %2 failed: %3").arg(display, what, err.text());
    if (pg() && (err.nativeErrorCode() == QLatin1String("40P01") || err.nativeErrorCode() == QLatin1String("40001")))
        throw DeadlockError(message.toStdString());
    throw ProjectError(message.toStdString());
}

bool ProjectStore::Impl::isConnectionError(const QSqlError &err) const
{
    if (!pg())
        return false;
    if (lost || !db.isOpen() || err.type() == QSqlError::ConnectionError)
        return true;
    // libpq's and the server's words for a connection that is gone (QPSQL reports them as statement or
    // transaction errors), and a server that is shutting down or still starting (SQLSTATE class 57P, 08).
    const QString code = err.nativeErrorCode();
    if (code.startsWith(QLatin1String("57P")) || code.startsWith(QLatin1String("08")))
        return true;
    static const char *const phrases[] = { "server closed the connection", "no connection to the server",
        "terminating connection", "could not send data", "could not receive data", "connection to server",
        "unable to send query", "connection not open", "the database system is", "broken pipe",
        "connection reset", "eof detected" };
    const QString text = err.text().toLower();
    for (const char *p : phrases)
        if (text.contains(QLatin1String(p)))
            return true;
    return false;
}

void ProjectStore::Impl::applySessionSettings()
{
    if (!pg())
        return;
    QSqlQuery q(db);
    q.exec(QStringLiteral("SET client_min_messages TO WARNING"));
    // No JIT: the claim query's plan is a few index lookups, but its estimated cost (the planner cannot
    // tell how soon a free slot passes the per-row checks) is above jit_above_cost, and compiling it
    // took ~100 ms per keypress on a 200,000-pair project (PostgreSQL 15). Fails harmlessly before 11.
    q.exec(QStringLiteral("SET jit = off"));
    if (readOnly)
        q.exec(QStringLiteral("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"));
}

void ProjectStore::Impl::ensureConnected()
{
    if (!pg() || !lost)
        return;
    if (txDepth > 0)
        throw ConnectionLostError(
            QStringLiteral("project %1: the connection to the PostgreSQL server was lost inside a transaction")
                .arg(display)
                .toStdString());
    cache.clear(); // prepared statements die with the old session
    db.close();
    if (!db.open())
        throw ConnectionLostError(QStringLiteral("project %1: the PostgreSQL server cannot be reached (%2); retrying")
                                      .arg(display, db.lastError().text().trimmed())
                                      .toStdString());
    applySessionSettings();
    lost = false;
    ++reconnects;
}

QSqlQuery &ProjectStore::Impl::exec(const QString &sql, const QVariantList &values)
{
    if (txDepth == 0)
        ensureConnected();
    try {
        return execOnce(sql, values);
    } catch (const ConnectionLostError &) {
        // A read outside a transaction is safe to repeat once on a fresh connection (the server may
        // have restarted since this connection's last use); writes are retried by their callers.
        if (txDepth > 0 || !sql.trimmed().startsWith(QLatin1String("SELECT"), Qt::CaseInsensitive))
            throw;
        ensureConnected();
        return execOnce(sql, values);
    }
}

QSqlQuery &ProjectStore::Impl::execOnce(const QString &sql, const QVariantList &values)
{
    QSqlQuery &q = prepare(sql);
    for (int i = 0; i < values.size(); ++i) {
        // A null QString binds as SQL NULL; text columns are NOT NULL, so a default-constructed QString
        // means "". Intended NULLs are passed as an invalid QVariant (nullValue()).
        const QVariant &v = values[i];
        if (v.typeId() == QMetaType::QString && v.toString().isNull())
            q.bindValue(i, QString(QLatin1String("")));
        else
            q.bindValue(i, v);
    }
    if (!q.exec())
        fail(QStringLiteral("\"%1\"").arg(sql.left(80)), q.lastError());
    return q;
}

QVariant ProjectStore::Impl::scalar(const QString &sql, const QVariantList &values)
{
    QSqlQuery &q = exec(sql, values);
    QVariant v;
    if (q.next())
        v = q.value(0);
    q.finish();
    return v;
}

qint64 ProjectStore::Impl::insert(const QString &sql, const QVariantList &values)
{
    QSqlQuery &q = exec(sql, values);
    if (!q.next())
        fail(QStringLiteral("\"%1\" returned no id").arg(sql.left(80)), q.lastError());
    const qint64 id = q.value(0).toLongLong();
    q.finish();
    return id;
}

void ProjectStore::Impl::execDdl(const QString &sql)
{
    QString text = sql;
    text.replace(QLatin1String("%ID%"),
        pg() ? QLatin1String("BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
             : QLatin1String("INTEGER PRIMARY KEY"));
    QSqlQuery q(db);
    if (!q.exec(text))
        fail(QStringLiteral("\"%1\"").arg(text.left(80)), q.lastError());
}

void ProjectStore::Impl::begin()
{
    if (txDepth > 0)
        throw ProjectError("project: nested transaction");
    if (readOnly) // every change opens a transaction: one clear message instead of the driver's
        throw ProjectError(QStringLiteral("project %1 is open read-only (browsing and export): it cannot be changed")
                               .arg(display)
                               .toStdString());
    if (pg()) {
        ensureConnected();
        if (!db.transaction()) {
            // BEGIN is the first statement of most calls: after a server restart it is where the stale
            // connection shows. Nothing has happened yet, so reconnect and begin once more.
            if (!isConnectionError(db.lastError()))
                fail(QStringLiteral("BEGIN"), db.lastError());
            lost = true;
            ensureConnected();
            if (!db.transaction())
                fail(QStringLiteral("BEGIN"), db.lastError());
        }
    } else {
        // IMMEDIATE takes the write lock up front: a deferred transaction that later writes can fail with
        // SQLITE_BUSY without waiting, which would turn concurrent claims into errors.
        QSqlQuery q(db);
        if (!q.exec(QStringLiteral("BEGIN IMMEDIATE")))
            fail(QStringLiteral("BEGIN IMMEDIATE"), q.lastError());
    }
    txDepth = 1;
    counterDeltas.clear();
}

void ProjectStore::Impl::commit()
{
    // Ascending (annotator, kind): every transaction locks counter rows in the same order, so concurrent
    // annotators on PostgreSQL queue on a row instead of deadlocking. n = n + delta is atomic per row.
    for (const auto &[key, c] : counterDeltas) {
        if (!c.slotTotal && !c.slotsDone && !c.freePairs && !c.judgments && !c.judgedMs && !c.touchedFree)
            continue;
        const QString update = QStringLiteral(
            "UPDATE counters SET slots = slots + ?, slots_done = slots_done + ?, free_pairs = free_pairs + ?, "
            "judgments = judgments + ?, judged_ms = judged_ms + ?, touched_free = touched_free + ? "
            "WHERE annotator_id = ? AND kind = ?");
        const QVariantList values { c.slotTotal, c.slotsDone, c.freePairs, c.judgments, c.judgedMs, c.touchedFree,
            key.first, key.second };
        if (exec(update, values).numRowsAffected() == 1)
            continue;
        // First change for this annotator and kind: create the row (another connection may race us to it).
        exec(QStringLiteral("INSERT INTO counters (annotator_id, kind) VALUES (?, ?) ON CONFLICT DO NOTHING"),
            { key.first, key.second });
        if (exec(update, values).numRowsAffected() != 1)
            throw ProjectError(QStringLiteral("project %1: progress counters of annotator %2 (%3) not found")
                                   .arg(display)
                                   .arg(key.first)
                                   .arg(key.second)
                                   .toStdString());
    }
    counterDeltas.clear();
    for (auto &q : cache)
        if (q->isActive())
            q->finish();
    if (pg()) {
        if (!db.commit())
            fail(QStringLiteral("COMMIT"), db.lastError());
    } else {
        QSqlQuery q(db);
        if (!q.exec(QStringLiteral("COMMIT")))
            fail(QStringLiteral("COMMIT"), q.lastError());
    }
    txDepth = 0;
}

void ProjectStore::Impl::rollback()
{
    txDepth = 0;
    counterDeltas.clear();
    for (auto &q : cache)
        if (q->isActive())
            q->finish();
    if (pg()) {
        db.rollback();
    } else {
        QSqlQuery q(db);
        q.exec(QStringLiteral("ROLLBACK"));
    }
}

// ---- open / close

ProjectStore::ProjectStore()
    : d(std::make_unique<Impl>())
{
}

ProjectStore::~ProjectStore()
{
    if (!d)
        return;
    if (d->txDepth > 0)
        d->rollback();
    d->cache.clear();
    const QString name = d->connName;
    d->db.close();
    d->db = QSqlDatabase();
    QSqlDatabase::removeDatabase(name);
}

bool ProjectStore::isUrl(const QString &pathOrUrl)
{
    return pathOrUrl.startsWith(QLatin1String("postgresql://")) || pathOrUrl.startsWith(QLatin1String("postgres://"));
}

std::unique_ptr<ProjectStore> ProjectStore::open(const QString &pathOrUrl, QString *error)
{
    return open(pathOrUrl, OpenMode::OpenOrCreate, error);
}

std::unique_ptr<ProjectStore> ProjectStore::open(const QString &pathOrUrl, int maxSchemaVersion)
{
    return open(pathOrUrl, OpenMode::OpenOrCreate, maxSchemaVersion);
}

std::unique_ptr<ProjectStore> ProjectStore::open(const QString &pathOrUrl, OpenMode mode, QString *error)
{
    try {
        return open(pathOrUrl, mode, -1);
    } catch (const std::exception &e) {
        if (error)
            *error = QString::fromStdString(e.what());
        return nullptr;
    }
}

std::unique_ptr<ProjectStore> ProjectStore::open(const QString &pathOrUrl, OpenMode mode, int maxSchemaVersion)
{
    static std::atomic<int> counter { 0 };
    std::unique_ptr<ProjectStore> store(new ProjectStore);
    Impl &d = *store->d;
    d.location = pathOrUrl;
    d.display = maskPassword(pathOrUrl);
    d.connName = QStringLiteral("dpo_project_%1").arg(++counter);
    d.readOnly = mode == OpenMode::ReadOnly;
    bool mayCreate = mode == OpenMode::OpenOrCreate;
    if (pathOrUrl.trimmed().isEmpty())
        throw ProjectError("project: no path or URL given");
    if (isUrl(pathOrUrl)) {
        d.backend = Backend::Postgres;
        const QUrl url(pathOrUrl);
        if (!url.isValid() || url.host().isEmpty() || url.path().size() < 2)
            throw ProjectError(QStringLiteral("project %1: expected postgresql://user[:password]@host[:port]/database")
                                   .arg(d.display)
                                   .toStdString());
        d.db = QSqlDatabase::addDatabase(QStringLiteral("QPSQL"), d.connName);
        if (!d.db.isValid())
            throw ProjectError("project: the PostgreSQL driver (QPSQL) is not available; install libqt6sql6-psql");
        d.db.setHostName(url.host());
        d.db.setPort(url.port(5432));
        d.db.setUserName(url.userName());
        d.db.setPassword(url.password());
        d.db.setDatabaseName(url.path().mid(1));
        // connect_timeout bounds how long an unreachable server can keep open() waiting (libpq's default
        // is to wait for the operating system, minutes); ?connect_timeout=N in the URL overrides it.
        QStringList options;
        const QUrlQuery query(url);
        if (!query.hasQueryItem(QStringLiteral("connect_timeout")))
            options << QStringLiteral("connect_timeout=10");
        for (const auto &item : query.queryItems())
            options << item.first + QLatin1Char('=') + item.second;
        d.db.setConnectOptions(options.join(QLatin1Char(';')));
    } else {
        d.backend = Backend::Sqlite;
        const QFileInfo info(pathOrUrl);
        if (!info.absoluteDir().exists())
            throw ProjectError(QStringLiteral("project %1: folder %2 does not exist")
                                   .arg(pathOrUrl, info.absolutePath())
                                   .toStdString());
        // Only a missing file is a new project: SQLite would otherwise turn any file it can read (another
        // program's database, an empty file) into one, adding tables and switching it to WAL.
        if (info.exists()) {
            mayCreate = false;
            // No write permission (or a read-only file system): browsing and export only.
            if (!info.isWritable())
                d.readOnly = true;
        } else if (!mayCreate) {
            throw ProjectError(QStringLiteral("no project at %1").arg(pathOrUrl).toStdString());
        }
        d.db = QSqlDatabase::addDatabase(QStringLiteral("QSQLITE"), d.connName);
        if (!d.db.isValid())
            throw ProjectError("project: the SQLite driver (QSQLITE) is not available; install libqt6sql6-sqlite");
        d.db.setDatabaseName(pathOrUrl);
        d.db.setConnectOptions(d.readOnly ? QStringLiteral("QSQLITE_BUSY_TIMEOUT=15000;QSQLITE_OPEN_READONLY")
                                          : QStringLiteral("QSQLITE_BUSY_TIMEOUT=15000"));
    }
    if (!d.db.open())
        throw ProjectError(
            QStringLiteral("project %1: cannot open: %2").arg(d.display, d.db.lastError().text()).toStdString());
    QSqlQuery q(d.db);
    if (d.pg()) {
        d.applySessionSettings();
    } else if (d.readOnly) {
        // A project is in WAL mode already; a read-only connection cannot (and need not) change that.
        q.exec(QStringLiteral("PRAGMA foreign_keys=ON"));
        q.exec(QStringLiteral("PRAGMA cache_size=-16384"));
    } else {
        // Before anything writes (the WAL switch below does): an existing file must already be a project.
        if (!mayCreate)
            checkIsProject(d, false);
        // WAL: readers do not block the writer (the GUI reads while an import writes). synchronous=FULL: a
        // committed verdict survives power loss, not just a killed process; it costs one fsync per verdict.
        if (!q.exec(QStringLiteral("PRAGMA journal_mode=WAL")) || !q.next())
            d.fail(QStringLiteral("PRAGMA journal_mode"), q.lastError());
        const QString mode = q.value(0).toString();
        q.finish();
        if (mode.compare(QLatin1String("wal"), Qt::CaseInsensitive) != 0)
            throw ProjectError(QStringLiteral("project %1: cannot switch to WAL (journal mode is %2); "
                                              "is it on a network file system?")
                                   .arg(d.display, mode)
                                   .toStdString());
        q.exec(QStringLiteral("PRAGMA foreign_keys=ON"));
        q.exec(QStringLiteral("PRAGMA synchronous=FULL"));
        // A larger page cache than the 2 MiB default: queue counts and exports touch many index pages.
        q.exec(QStringLiteral("PRAGMA cache_size=-16384")); // 16 MiB of page cache per connection
    }

    if (d.readOnly)
        readSchemaVersion(d);
    else
        migrateSchema(d, maxSchemaVersion, mayCreate);
    return store;
}

ProjectStore::Backend ProjectStore::backend() const
{
    return d->backend;
}

QString ProjectStore::location() const
{
    return d->location;
}

QString ProjectStore::displayLocation() const
{
    return d->display;
}

int ProjectStore::schemaVersion() const
{
    return d->version;
}

bool ProjectStore::isReadOnly() const
{
    return d->readOnly;
}

bool ProjectStore::connectionLost() const
{
    return d->lost;
}

int ProjectStore::reconnects() const
{
    return d->reconnects;
}

ProjectStore::Transaction::Transaction(ProjectStore &store)
    : m_store(store)
{
    m_store.d->begin();
}

ProjectStore::Transaction::~Transaction()
{
    if (!m_done) {
        try {
            m_store.d->rollback();
        } catch (...) {
        }
    }
}

void ProjectStore::Transaction::commit()
{
    if (!m_done)
        m_store.d->commit();
    m_done = true;
}

} // namespace dpo
