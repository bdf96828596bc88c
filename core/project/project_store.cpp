// ProjectStore implementation: schema and migrations, the labeling queue, Data-page queries.
// Times are stored as milliseconds since the epoch (UTC) in BIGINT columns and booleans as 0/1 INTEGERs
// so that one schema text serves SQLite and PostgreSQL.
#include "project/project_store.h"

#include "project/agreement.h"
#include "project/project_store_p.h"

#include <QCryptographicHash>
#include <QDir>
#include <QFileInfo>
#include <QRandomGenerator>
#include <QSqlError>
#include <QThread>
#include <QUrl>
#include <QUrlQuery>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>

namespace dpo {

namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();

struct Migration {
    int version;
    QStringList statements; // %ID% = the dialect's auto-increment 64-bit primary key
};

const std::vector<Migration> &migrations()
{
    static const std::vector<Migration> list = {
        { 1,
            {
                "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
                "CREATE TABLE annotators (id %ID%, name TEXT NOT NULL UNIQUE, order_seed BIGINT NOT NULL, "
                "created_at BIGINT NOT NULL)",
                "CREATE TABLE prompts (id %ID%, text TEXT NOT NULL, text_hash TEXT NOT NULL, messages_json TEXT, "
                "created_at BIGINT NOT NULL)",
                "CREATE INDEX prompts_hash ON prompts(text_hash)",
                "CREATE TABLE completions (id %ID%, prompt_id BIGINT NOT NULL REFERENCES prompts(id) ON DELETE "
                "CASCADE, "
                "text TEXT NOT NULL, text_hash TEXT NOT NULL, messages_json TEXT, source TEXT NOT NULL, "
                "model_path TEXT NOT NULL DEFAULT '', checkpoint TEXT NOT NULL DEFAULT '', "
                "sampling_json TEXT NOT NULL DEFAULT '{}', seed BIGINT, parent_id BIGINT REFERENCES completions(id), "
                "created_at BIGINT NOT NULL)",
                "CREATE INDEX completions_prompt ON completions(prompt_id)",
                "CREATE TABLE pairs (id %ID%, prompt_id BIGINT NOT NULL REFERENCES prompts(id) ON DELETE CASCADE, "
                "completion_a BIGINT NOT NULL REFERENCES completions(id), "
                "completion_b BIGINT NOT NULL REFERENCES completions(id), origin TEXT NOT NULL, "
                "kind TEXT NOT NULL DEFAULT 'label', preferred TEXT, import_style TEXT, queued INTEGER NOT NULL, "
                "created_at BIGINT NOT NULL)",
                "CREATE INDEX pairs_prompt ON pairs(prompt_id)",
                "CREATE TABLE slots (id %ID%, pair_id BIGINT NOT NULL REFERENCES pairs(id) ON DELETE CASCADE, "
                "slot_index INTEGER NOT NULL, kind TEXT NOT NULL, annotator_id BIGINT REFERENCES annotators(id), "
                "left_is_a INTEGER, order_seed BIGINT, claimed_at BIGINT, shown_at BIGINT, done_at BIGINT, "
                "UNIQUE (pair_id, slot_index))",
                // NULLs are distinct: many free slots per pair, but one slot per (pair, annotator).
                "CREATE UNIQUE INDEX slots_pair_annotator ON slots(pair_id, annotator_id)",
                "CREATE INDEX slots_queue ON slots(kind, annotator_id, pair_id)",
                "CREATE TABLE judgments (id %ID%, pair_id BIGINT NOT NULL REFERENCES pairs(id) ON DELETE CASCADE, "
                "slot_id BIGINT REFERENCES slots(id) ON DELETE SET NULL, "
                "annotator_id BIGINT NOT NULL REFERENCES annotators(id), "
                "left_completion_id BIGINT NOT NULL REFERENCES completions(id), left_is_a INTEGER NOT NULL, "
                "verdict TEXT NOT NULL, winner TEXT NOT NULL, strength INTEGER NOT NULL DEFAULT 0, "
                "rationale TEXT NOT NULL DEFAULT '', shown_at BIGINT NOT NULL, decided_at BIGINT NOT NULL, "
                "kind TEXT NOT NULL)",
                "CREATE INDEX judgments_pair ON judgments(pair_id, annotator_id)",
                "CREATE INDEX judgments_annotator ON judgments(annotator_id, kind, id)",
                "CREATE INDEX judgments_slot ON judgments(slot_id)",
            } },
        { 2,
            {
                "CREATE TABLE runs (id %ID%, name TEXT NOT NULL, status TEXT NOT NULL, config_json TEXT NOT NULL, "
                "output_dir TEXT NOT NULL, started_at BIGINT, ended_at BIGINT, "
                "last_metrics_json TEXT NOT NULL DEFAULT '{}')",
            } },
        { 3,
            {
                // progress(): count judged slots from an index range instead of a table scan.
                "CREATE INDEX slots_done ON slots(kind, done_at)",
                // An annotator's own slots (the open one on screen, the pairs they hold): without it SQLite
                // scans every free slot to find the one open slot of an annotator.
                "CREATE INDEX slots_mine ON slots(annotator_id, kind, done_at)",
            } },
        { 4,
            {
                // Keypress path, as index lookups on both databases. The open slot of an annotator, in id
                // order: PostgreSQL read slots_mine in primary-key order and filtered (O(slots claimed)).
                "CREATE INDEX slots_open ON slots(annotator_id, kind, id) WHERE done_at IS NULL",
                // Free slots in serving order: PostgreSQL sorted every free slot (60-90 ms at 200,000
                // pairs) or merge-joined whole indexes. It replaces slots_queue.
                "CREATE INDEX slots_free ON slots(kind, pair_id, id) WHERE annotator_id IS NULL",
                "DROP INDEX slots_queue",
                // progress() in O(1): counters kept in the transaction of every change (see CounterDelta).
                // annotator_id 0: the project (slots, slots_done, free_pairs = pairs with a free slot);
                // otherwise that annotator (judgments and their summed time on task by judgment kind;
                // touched_free = pairs of the kind with a free slot that the annotator holds or judged).
                "CREATE TABLE counters (annotator_id BIGINT NOT NULL, kind TEXT NOT NULL, "
                "slots BIGINT NOT NULL DEFAULT 0, slots_done BIGINT NOT NULL DEFAULT 0, "
                "free_pairs BIGINT NOT NULL DEFAULT 0, judgments BIGINT NOT NULL DEFAULT 0, "
                "judged_ms BIGINT NOT NULL DEFAULT 0, touched_free BIGINT NOT NULL DEFAULT 0, "
                "PRIMARY KEY (annotator_id, kind))",
                "%RECOUNT%", // the counters of an existing project, counted once
            } },
        { 5,
            {
                // Which weights a generated completion came from (see modelFingerprint in evaluation.h):
                // the generation cache must not serve outputs of a model directory whose files changed.
                "ALTER TABLE completions ADD COLUMN model_fingerprint TEXT NOT NULL DEFAULT ''",
            } },
    };
    return list;
}

// Counts every progress counter from the tables (O(project)): at migration and after setOverlap.
const QStringList &recountStatements()
{
    static const QStringList list = {
        "DELETE FROM counters",
        "INSERT INTO counters (annotator_id, kind, slots, slots_done, free_pairs) "
        "SELECT 0, k.kind, (SELECT COUNT(*) FROM slots s WHERE s.kind = k.kind), "
        "(SELECT COUNT(*) FROM slots s WHERE s.kind = k.kind AND s.done_at IS NOT NULL), "
        "(SELECT COUNT(DISTINCT s.pair_id) FROM slots s WHERE s.kind = k.kind AND s.annotator_id IS NULL) "
        "FROM (SELECT 'label' AS kind UNION ALL SELECT 'eval') k",
        "INSERT INTO counters (annotator_id, kind, judgments, judged_ms, touched_free) "
        "SELECT a.id, k.kind, (SELECT COUNT(*) FROM judgments j WHERE j.annotator_id = a.id AND j.kind = k.kind), "
        "(SELECT COALESCE(SUM(j.decided_at - j.shown_at), 0) FROM judgments j WHERE j.annotator_id = a.id "
        "AND j.kind = k.kind), "
        "(SELECT COUNT(DISTINCT s.pair_id) FROM slots s WHERE s.kind = k.kind AND s.annotator_id IS NULL AND "
        "s.pair_id IN (SELECT j.pair_id FROM judgments j WHERE j.annotator_id = a.id UNION "
        "SELECT t.pair_id FROM slots t WHERE t.annotator_id = a.id)) "
        "FROM annotators a, (SELECT 'label' AS kind UNION ALL SELECT 'eval') k",
    };
    return list;
}

quint64 splitmix64(quint64 x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

// The per-annotator left/right order: a pure function of the annotator's recorded seed and the pair, so
// the order can be recomputed and audited.
bool leftIsAFor(quint64 seed, qint64 pairId)
{
    return (splitmix64(seed ^ splitmix64(quint64(pairId))) >> 17) & 1;
}

Winner winnerFor(Verdict v, bool leftIsA)
{
    switch (v) {
    case Verdict::Left:
        return leftIsA ? Winner::A : Winner::B;
    case Verdict::Right:
        return leftIsA ? Winner::B : Winner::A;
    case Verdict::Tie:
        return Winner::Tie;
    case Verdict::BothBad:
        return Winner::BothBad;
    case Verdict::Skip:
        break;
    }
    return Winner::Skip;
}

QString maskPassword(const QString &location)
{
    if (!ProjectStore::isUrl(location))
        return location;
    QUrl url(location);
    if (!url.password().isEmpty())
        url.setPassword(QStringLiteral("****"));
    return url.toString();
}

QString likePattern(const QString &search)
{
    QString s = search.toLower();
    s.replace(QLatin1Char('\\'), QLatin1String("\\\\"));
    s.replace(QLatin1Char('%'), QLatin1String("\\%"));
    s.replace(QLatin1Char('_'), QLatin1String("\\_"));
    return QLatin1Char('%') + s + QLatin1Char('%');
}

const char *kLike = " LIKE ? ESCAPE '\\'";

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

static JudgmentKind kindFromName(const QString &s)
{
    return s == QLatin1String("eval") ? JudgmentKind::Eval : JudgmentKind::Label;
}

QString sanityTypeName(SanityIssue::Type t)
{
    switch (t) {
    case SanityIssue::ChosenEqualsRejected:
        return QStringLiteral("chosen_equals_rejected");
    case SanityIssue::DuplicatePair:
        return QStringLiteral("duplicate_pair");
    case SanityIssue::OverMaxLength:
        return QStringLiteral("over_max_length");
    case SanityIssue::LengthSkew:
        break;
    }
    return QStringLiteral("length_skew");
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
    throw ProjectError(QStringLiteral("project %1: %2 failed: %3").arg(display, what, err.text()).toStdString());
}

QSqlQuery &ProjectStore::Impl::exec(const QString &sql, const QVariantList &values)
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
    if (pg()) {
        if (!db.transaction())
            fail(QStringLiteral("BEGIN"), db.lastError());
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

std::optional<qint64> ProjectStore::Impl::findPromptRow(const QString &text, const QString &messagesJson)
{
    QSqlQuery &q = exec(QStringLiteral("SELECT id, text, messages_json FROM prompts WHERE text_hash = ?"),
        { textHash(text, messagesJson) });
    std::optional<qint64> id;
    while (q.next()) {
        if (q.value(1).toString() == text && q.value(2).toString() == messagesJson) {
            id = q.value(0).toLongLong();
            break;
        }
    }
    q.finish();
    return id;
}

qint64 ProjectStore::Impl::addPromptRow(const QString &text, const QString &messagesJson)
{
    if (auto id = findPromptRow(text, messagesJson))
        return *id;
    return insert(QStringLiteral("INSERT INTO prompts (text, text_hash, messages_json, created_at) VALUES (?, ?, ?, ?) "
                                 "RETURNING id"),
        { text, textHash(text, messagesJson), messagesJson.isEmpty() ? nullInt() : QVariant(messagesJson), nowMs() });
}

qint64 ProjectStore::Impl::addCompletionRow(
    qint64 promptId, const QString &text, const QString &messagesJson, const Provenance &p)
{
    QVariantList values { promptId, text, textHash(text), messagesJson.isEmpty() ? nullInt() : QVariant(messagesJson),
        p.source, p.modelPath, p.checkpoint, p.samplingJson.isEmpty() ? QStringLiteral("{}") : p.samplingJson,
        p.seed ? QVariant(*p.seed) : nullInt(), p.parentCompletionId > 0 ? QVariant(p.parentCompletionId) : nullInt(),
        nowMs() };
    if (version < 5) // a store held below schema 5 (tests of migrations) has no fingerprint column
        return insert(QStringLiteral("INSERT INTO completions (prompt_id, text, text_hash, messages_json, source, "
                                     "model_path, checkpoint, sampling_json, seed, parent_id, created_at) "
                                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"),
            values);
    values << p.modelFingerprint;
    return insert(QStringLiteral("INSERT INTO completions (prompt_id, text, text_hash, messages_json, source, "
                                 "model_path, checkpoint, sampling_json, seed, parent_id, created_at, "
                                 "model_fingerprint) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"),
        values);
}

// ---- progress counters (schema 4)
//
// progress() reads stored counters instead of counting the queue. Every change to slots or judgments adds
// to them in its own transaction (Impl::counterDeltas, written at commit). "available" needs, per
// annotator, the number of pairs with a free slot that they already hold or judged (touched_free): a pair
// gaining or losing its last free slot changes it for everyone who touched that pair, so changes to a
// pair's slots or slot-less judgments compare the pair's state before and after (pairState) under a lock
// on the pair row (PostgreSQL; SQLite's write lock serializes anyway).

static bool hasCounters(const ProjectStore::Impl &d)
{
    return d.version >= 4;
}

static ProjectStore::Impl::CounterDelta &counterDelta(ProjectStore::Impl &d, qint64 annotatorId, const QString &kind)
{
    return d.counterDeltas[{ annotatorId, kind }];
}

namespace {

struct PairState {
    bool hasFree = false; // at least one unclaimed slot
    QString kind; // of the free slot (a pair's slots all have the pair's kind)
    std::set<qint64> touchers; // annotators holding a slot of it or having judged it (only if hasFree)
};

} // namespace

// Holds the pair row until commit, so that two connections changing one pair's slots see each other's
// result in their before/after states. NO KEY: inserting a judgment of the pair (a foreign-key check, KEY
// SHARE) does not wait for it. Counter rows are locked last, at commit, in key order.
static void lockPair(ProjectStore::Impl &d, qint64 pairId)
{
    if (d.pg() && hasCounters(d))
        d.scalar(QStringLiteral("SELECT id FROM pairs WHERE id = ? FOR NO KEY UPDATE"), { pairId });
}

static PairState pairState(ProjectStore::Impl &d, qint64 pairId)
{
    PairState st;
    if (!hasCounters(d))
        return st;
    const QVariant kind = d.scalar(
        QStringLiteral("SELECT kind FROM slots WHERE pair_id = ? AND annotator_id IS NULL LIMIT 1"), { pairId });
    if (kind.isNull())
        return st;
    st.hasFree = true;
    st.kind = kind.toString();
    QSqlQuery &q = d.exec(QStringLiteral("SELECT annotator_id FROM slots WHERE pair_id = ? AND annotator_id IS NOT "
                                         "NULL UNION SELECT annotator_id FROM judgments WHERE pair_id = ?"),
        { pairId, pairId });
    while (q.next())
        st.touchers.insert(q.value(0).toLongLong());
    q.finish();
    return st;
}

static void applyPairChange(ProjectStore::Impl &d, const PairState &before, const PairState &after)
{
    if (!hasCounters(d) || (!before.hasFree && !after.hasFree))
        return;
    const QString kind = after.hasFree ? after.kind : before.kind;
    counterDelta(d, 0, kind).freePairs += int(after.hasFree) - int(before.hasFree);
    std::set<qint64> everyone = before.touchers;
    everyone.insert(after.touchers.begin(), after.touchers.end());
    for (const qint64 a : everyone) {
        const int was = before.touchers.count(a) ? 1 : 0, is = after.touchers.count(a) ? 1 : 0;
        if (was != is)
            counterDelta(d, a, kind).touchedFree += is - was;
    }
}

qint64 ProjectStore::Impl::addPairRow(qint64 promptId, qint64 a, qint64 b, const QString &origin, JudgmentKind kind,
    const QString &preferred, const QString &importStyle, int slotCount)
{
    TxGuard tx(*this);
    const qint64 id
        = insert(QStringLiteral("INSERT INTO pairs (prompt_id, completion_a, completion_b, origin, kind, preferred, "
                                "import_style, queued, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"),
            { promptId, a, b, origin, kindName(kind), preferred.isEmpty() ? nullInt() : QVariant(preferred),
                importStyle.isEmpty() ? nullInt() : QVariant(importStyle), slotCount > 0 ? 1 : 0, nowMs() });
    for (int i = 0; i < slotCount; ++i)
        exec(QStringLiteral("INSERT INTO slots (pair_id, slot_index, kind) VALUES (?, ?, ?)"),
            { id, i, kindName(kind) });
    if (slotCount > 0 && hasCounters(*this)) { // a new pair: free slots, nobody touched it yet
        CounterDelta &c = counterDelta(*this, 0, kindName(kind));
        c.slotTotal += slotCount;
        c.freePairs += 1;
    }
    tx.commit();
    return id;
}

int ProjectStore::Impl::overlapSetting()
{
    const QVariant v
        = scalar(QStringLiteral("SELECT value FROM settings WHERE key = ?"), { QStringLiteral("overlap") });
    return v.isNull() ? 1 : std::max(1, v.toInt());
}

// ---- open / migrate

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

int ProjectStore::currentSchemaVersion()
{
    return migrations().back().version;
}

std::unique_ptr<ProjectStore> ProjectStore::open(const QString &pathOrUrl, QString *error)
{
    try {
        return open(pathOrUrl, -1);
    } catch (const std::exception &e) {
        if (error)
            *error = QString::fromStdString(e.what());
        return nullptr;
    }
}

std::unique_ptr<ProjectStore> ProjectStore::open(const QString &pathOrUrl, int maxSchemaVersion)
{
    static std::atomic<int> counter { 0 };
    std::unique_ptr<ProjectStore> store(new ProjectStore);
    Impl &d = *store->d;
    d.location = pathOrUrl;
    d.display = maskPassword(pathOrUrl);
    d.connName = QStringLiteral("dpo_project_%1").arg(++counter);
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
        d.db = QSqlDatabase::addDatabase(QStringLiteral("QSQLITE"), d.connName);
        if (!d.db.isValid())
            throw ProjectError("project: the SQLite driver (QSQLITE) is not available; install libqt6sql6-sqlite");
        d.db.setDatabaseName(pathOrUrl);
        d.db.setConnectOptions(QStringLiteral("QSQLITE_BUSY_TIMEOUT=15000"));
    }
    if (!d.db.open())
        throw ProjectError(
            QStringLiteral("project %1: cannot open: %2").arg(d.display, d.db.lastError().text()).toStdString());
    QSqlQuery q(d.db);
    if (d.pg()) {
        q.exec(QStringLiteral("SET client_min_messages TO WARNING"));
        // No JIT: the claim query's plan is a few index lookups, but its estimated cost (the planner cannot
        // tell how soon a free slot passes the per-row checks) is above jit_above_cost, and compiling it
        // took ~100 ms per keypress on a 200,000-pair project (PostgreSQL 15). Fails harmlessly before 11.
        q.exec(QStringLiteral("SET jit = off"));
    } else {
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

    // Migrations: one transaction, serialized across processes (advisory lock on PostgreSQL, the write
    // lock of BEGIN IMMEDIATE on SQLite), so concurrent first opens do not race on CREATE TABLE.
    TxGuard tx(d);
    if (d.pg()) {
        QSqlQuery lock(d.db);
        if (!lock.exec(QStringLiteral("SELECT pg_advisory_xact_lock(727274001)")))
            d.fail(QStringLiteral("advisory lock"), lock.lastError());
    }
    d.execDdl(QStringLiteral("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"));
    QVariant v = d.scalar(QStringLiteral("SELECT version FROM schema_version"));
    if (v.isNull())
        d.exec(QStringLiteral("INSERT INTO schema_version (version) VALUES (0)"));
    d.version = v.isNull() ? 0 : v.toInt();
    if (d.version > currentSchemaVersion())
        throw ProjectError(QStringLiteral("project %1 has schema version %2, newer than this DPO Studio knows (%3)")
                               .arg(d.display)
                               .arg(d.version)
                               .arg(currentSchemaVersion())
                               .toStdString());
    for (const Migration &m : migrations()) {
        if (m.version <= d.version || (maxSchemaVersion >= 0 && m.version > maxSchemaVersion))
            continue;
        for (const QString &s : m.statements) {
            if (s == QLatin1String("%RECOUNT%")) {
                for (const QString &r : recountStatements())
                    d.execDdl(r);
            } else {
                d.execDdl(s);
            }
        }
        d.exec(QStringLiteral("UPDATE schema_version SET version = ?"), { m.version });
        d.version = m.version;
    }
    tx.commit();
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

// ---- settings, annotators, content

QString ProjectStore::setting(const QString &key, const QString &fallback) const
{
    const QVariant v = d->scalar(QStringLiteral("SELECT value FROM settings WHERE key = ?"), { key });
    return v.isNull() ? fallback : v.toString();
}

void ProjectStore::setSetting(const QString &key, const QString &value)
{
    TxGuard tx(*d);
    QSqlQuery &q = d->exec(QStringLiteral("UPDATE settings SET value = ? WHERE key = ?"), { value, key });
    if (q.numRowsAffected() == 0)
        d->exec(QStringLiteral("INSERT INTO settings (key, value) VALUES (?, ?)"), { key, value });
    tx.commit();
}

QString ProjectStore::guidelines() const
{
    return setting(QStringLiteral("guidelines"));
}

void ProjectStore::setGuidelines(const QString &markdown)
{
    setSetting(QStringLiteral("guidelines"), markdown);
}

int ProjectStore::overlap() const
{
    return d->overlapSetting();
}

void ProjectStore::setOverlap(int k)
{
    if (k < 1 || k > 100)
        throw ProjectError(QStringLiteral("overlap must be between 1 and 100, got %1").arg(k).toStdString());
    TxGuard tx(*d);
    // The progress counters are recounted from the tables below. On PostgreSQL no other connection may
    // change slots, pairs or counters meanwhile: a change counted here and added again at its commit (or one
    // not counted and overwritten) would leave them wrong. Labeling pauses for the length of this statement.
    if (d->pg() && hasCounters(*d))
        d->execDdl(QStringLiteral("LOCK TABLE slots, pairs, counters IN EXCLUSIVE MODE")); // not preparable
    setSetting(QStringLiteral("overlap"), QString::number(k));
    for (int i = 0; i < k; ++i)
        d->exec(
            QStringLiteral(
                "INSERT INTO slots (pair_id, slot_index, kind) SELECT p.id, CAST(? AS INTEGER), p.kind FROM pairs p "
                "WHERE p.queued = 1 AND p.kind = 'label' AND NOT EXISTS "
                "(SELECT 1 FROM slots s WHERE s.pair_id = p.id AND s.slot_index = ?)"),
            { i, i });
    d->exec(
        QStringLiteral("DELETE FROM slots WHERE kind = 'label' AND slot_index >= ? AND annotator_id IS NULL"), { k });
    if (hasCounters(*d)) {
        for (const QString &sql : recountStatements())
            d->execDdl(sql);
        d->counterDeltas.clear(); // what this transaction changed before is in the recount
    }
    tx.commit();
}

static Annotator annotatorFrom(QSqlQuery &q)
{
    Annotator a;
    a.id = q.value(0).toLongLong();
    a.name = q.value(1).toString();
    a.orderSeed = quint64(q.value(2).toLongLong());
    a.createdAt = fromMs(q.value(3));
    return a;
}

Annotator ProjectStore::annotator(const QString &name, bool create)
{
    const QString trimmed = name.trimmed();
    if (trimmed.isEmpty())
        throw ProjectError("annotator name is empty");
    for (int attempt = 0; attempt < 3; ++attempt) {
        QSqlQuery &q = d->exec(
            QStringLiteral("SELECT id, name, order_seed, created_at FROM annotators WHERE name = ?"), { trimmed });
        if (q.next()) {
            Annotator a = annotatorFrom(q);
            q.finish();
            return a;
        }
        q.finish();
        if (!create)
            throw ProjectError(QStringLiteral("no annotator named \"%1\"").arg(trimmed).toStdString());
        // 62 random bits: stored in a signed BIGINT.
        const qint64 seed = qint64(QRandomGenerator::global()->generate64() >> 2);
        try {
            TxGuard tx(*d);
            d->insert(
                QStringLiteral("INSERT INTO annotators (name, order_seed, created_at) VALUES (?, ?, ?) RETURNING id"),
                { trimmed, seed, nowMs() });
            tx.commit();
        } catch (const ProjectError &) {
            // Another connection created the same name between our SELECT and INSERT: read it back.
            if (attempt == 2)
                throw;
        }
    }
    throw ProjectError("annotator: could not create");
}

QVector<Annotator> ProjectStore::annotators() const
{
    QVector<Annotator> out;
    QSqlQuery &q = d->exec(QStringLiteral("SELECT id, name, order_seed, created_at FROM annotators ORDER BY id"));
    while (q.next())
        out.push_back(annotatorFrom(q));
    q.finish();
    return out;
}

qint64 ProjectStore::addPrompt(const QString &text)
{
    if (text.isEmpty())
        throw ProjectError("prompt text is empty");
    TxGuard tx(*d);
    const qint64 id = d->addPromptRow(text, {});
    tx.commit();
    return id;
}

std::optional<qint64> ProjectStore::findPrompt(const QString &text) const
{
    return d->findPromptRow(text, {});
}

qint64 ProjectStore::addCompletion(qint64 promptId, const QString &text, const Provenance &provenance)
{
    if (text.isEmpty())
        throw ProjectError("completion text is empty");
    return d->addCompletionRow(promptId, text, {}, provenance);
}

qint64 ProjectStore::addPair(qint64 promptId, qint64 completionA, qint64 completionB, const QString &origin,
    JudgmentKind kind, const QString &preferred)
{
    if (!preferred.isEmpty() && preferred != QLatin1String("a") && preferred != QLatin1String("b"))
        throw ProjectError("preferred must be \"a\", \"b\" or empty");
    const int slotCount = !preferred.isEmpty() ? 0 : kind == JudgmentKind::Label ? d->overlapSetting() : 1;
    return d->addPairRow(promptId, completionA, completionB, origin, kind, preferred, {}, slotCount);
}

Prompt ProjectStore::prompt(qint64 id) const
{
    QSqlQuery &q = d->exec(QStringLiteral("SELECT id, text, created_at FROM prompts WHERE id = ?"), { id });
    if (!q.next()) {
        q.finish();
        throw ProjectError(QStringLiteral("no prompt with id %1").arg(id).toStdString());
    }
    Prompt p { q.value(0).toLongLong(), q.value(1).toString(), fromMs(q.value(2)) };
    q.finish();
    return p;
}

static QString completionColumns(int version)
{
    return QStringLiteral("id, prompt_id, text, source, model_path, checkpoint, sampling_json, seed, parent_id, "
                          "created_at, ")
        + (version >= 5 ? QStringLiteral("model_fingerprint") : QStringLiteral("''"));
}

static Completion completionFrom(QSqlQuery &q, int o = 0)
{
    Completion c;
    c.id = q.value(o + 0).toLongLong();
    c.promptId = q.value(o + 1).toLongLong();
    c.text = q.value(o + 2).toString();
    c.provenance.source = q.value(o + 3).toString();
    c.provenance.modelPath = q.value(o + 4).toString();
    c.provenance.checkpoint = q.value(o + 5).toString();
    c.provenance.samplingJson = q.value(o + 6).toString();
    if (!q.value(o + 7).isNull())
        c.provenance.seed = q.value(o + 7).toLongLong();
    c.provenance.parentCompletionId = q.value(o + 8).toLongLong();
    c.createdAt = fromMs(q.value(o + 9));
    c.provenance.modelFingerprint = q.value(o + 10).toString();
    return c;
}

Completion ProjectStore::completion(qint64 id) const
{
    QSqlQuery &q
        = d->exec(QStringLiteral("SELECT %1 FROM completions WHERE id = ?").arg(completionColumns(d->version)), { id });
    if (!q.next()) {
        q.finish();
        throw ProjectError(QStringLiteral("no completion with id %1").arg(id).toStdString());
    }
    Completion c = completionFrom(q);
    q.finish();
    return c;
}

QVector<Completion> ProjectStore::completionsOf(qint64 promptId) const
{
    QVector<Completion> out;
    QSqlQuery &q = d->exec(
        QStringLiteral("SELECT %1 FROM completions WHERE prompt_id = ? ORDER BY id").arg(completionColumns(d->version)),
        { promptId });
    while (q.next())
        out.push_back(completionFrom(q));
    q.finish();
    return out;
}

QVector<Prompt> ProjectStore::promptsNeedingCompletions(int minCompletions, int limit) const
{
    QVector<Prompt> out;
    QSqlQuery &q = d->exec(QStringLiteral("SELECT p.id, p.text, p.created_at FROM prompts p WHERE "
                                          "(SELECT COUNT(*) FROM completions c WHERE c.prompt_id = p.id) < ? "
                                          "ORDER BY p.id LIMIT ?"),
        { minCompletions, limit });
    while (q.next())
        out.push_back(Prompt { q.value(0).toLongLong(), q.value(1).toString(), fromMs(q.value(2)) });
    q.finish();
    return out;
}

// ---- labeling

// SQLite, outside a transaction: synchronous=NORMAL for the guard's lifetime (the connection's default is
// FULL, see open()). In WAL mode a NORMAL commit is atomic and ordered; only the fsync is left to the next
// FULL commit or checkpoint.
class LightCommit {
public:
    explicit LightCommit(ProjectStore::Impl &d)
        : m_d(d)
        , m_on(!d.pg() && d.txDepth == 0)
    {
        if (m_on)
            QSqlQuery(d.db).exec(QStringLiteral("PRAGMA synchronous=NORMAL"));
    }
    ~LightCommit()
    {
        if (m_on)
            QSqlQuery(m_d.db).exec(QStringLiteral("PRAGMA synchronous=FULL"));
    }
    LightCommit(const LightCommit &) = delete;
    LightCommit &operator=(const LightCommit &) = delete;

private:
    ProjectStore::Impl &m_d;
    bool m_on;
};

static ShownPair loadShown(ProjectStore &store, ProjectStore::Impl &d, qint64 pairId, bool leftIsA)
{
    QSqlQuery &q = d.exec(QStringLiteral("SELECT p.prompt_id, pr.text, p.completion_a, p.completion_b, p.kind FROM "
                                         "pairs p JOIN prompts pr ON pr.id = p.prompt_id WHERE p.id = ?"),
        { pairId });
    if (!q.next()) {
        q.finish();
        throw ProjectError(QStringLiteral("no pair with id %1").arg(pairId).toStdString());
    }
    ShownPair s;
    s.pairId = pairId;
    s.promptId = q.value(0).toLongLong();
    s.prompt = q.value(1).toString();
    const qint64 a = q.value(2).toLongLong(), b = q.value(3).toLongLong();
    s.kind = kindFromName(q.value(4).toString());
    q.finish();
    s.leftIsA = leftIsA;
    s.left = store.completion(leftIsA ? a : b);
    s.right = store.completion(leftIsA ? b : a);
    return s;
}

std::optional<ShownPair> ProjectStore::nextPairFor(qint64 annotatorId, JudgmentKind kind)
{
    const QVariant seedV = d->scalar(QStringLiteral("SELECT order_seed FROM annotators WHERE id = ?"), { annotatorId });
    if (seedV.isNull())
        throw ProjectError(QStringLiteral("no annotator with id %1").arg(annotatorId).toStdString());
    const quint64 seed = quint64(seedV.toLongLong());
    const QString kindStr = kindName(kind);
    // A claim need not survive power loss (the slot is served again), so on SQLite it commits without an
    // fsync; the verdict's commit right after syncs the log, claim included. One fsync per keypress, not two.
    LightCommit light(*d);
    for (int attempt = 0;; ++attempt) {
        try {
            TxGuard tx(*d);
            // The pair on screen when the program stopped (or reopened by undo) comes first.
            QSqlQuery &open = d->exec(QStringLiteral("SELECT id, pair_id, left_is_a, order_seed, shown_at FROM slots "
                                                     "WHERE annotator_id = ? AND kind = ? AND done_at IS NULL "
                                                     "ORDER BY id LIMIT 1"),
                { annotatorId, kindStr });
            if (open.next()) {
                const qint64 slotId = open.value(0).toLongLong(), pairId = open.value(1).toLongLong();
                const bool leftIsA = open.value(2).toInt() != 0;
                const quint64 orderSeed = quint64(open.value(3).toLongLong());
                const QDateTime shownAt = fromMs(open.value(4));
                open.finish();
                tx.commit();
                ShownPair s = loadShown(*this, *d, pairId, leftIsA);
                s.slotId = slotId;
                s.orderSeed = orderSeed;
                s.shownAt = shownAt;
                return s;
            }
            open.finish();
            // A free slot of a pair this annotator has neither claimed nor judged. On PostgreSQL, SKIP LOCKED
            // lets concurrent annotators pass over each other's in-flight claims instead of queueing on them;
            // the unique (pair, annotator) index makes a double claim by one annotator fail (then retry).
            // Plan: walk slots_free in serving order, two index lookups per candidate, stop at the first.
            // The checks are COUNT(*) = 0 rather than NOT EXISTS because PostgreSQL turns NOT EXISTS into an
            // anti-join that reads every slot and judgment of the annotator (or sorts all free slots).
            QSqlQuery &free = d->exec(
                QStringLiteral(
                    "SELECT s.id, s.pair_id FROM slots s WHERE s.kind = ? AND s.annotator_id IS NULL "
                    "AND (SELECT COUNT(*) FROM slots t WHERE t.pair_id = s.pair_id AND t.annotator_id = ?) = 0 "
                    "AND (SELECT COUNT(*) FROM judgments j WHERE j.pair_id = s.pair_id AND j.annotator_id = ?) = 0 "
                    "ORDER BY s.pair_id, s.id LIMIT 1%LOCK%"),
                { kindStr, annotatorId, annotatorId });
            if (!free.next()) {
                free.finish();
                tx.commit();
                return std::nullopt;
            }
            const qint64 slotId = free.value(0).toLongLong(), pairId = free.value(1).toLongLong();
            free.finish();
            const bool leftIsA = leftIsAFor(seed, pairId);
            const qint64 now = nowMs();
            lockPair(*d, pairId);
            const PairState before = pairState(*d, pairId);
            QSqlQuery &claim
                = d->exec(QStringLiteral("UPDATE slots SET annotator_id = ?, left_is_a = ?, order_seed = ?, "
                                         "claimed_at = ?, shown_at = ? WHERE id = ? AND annotator_id IS NULL"),
                    { annotatorId, leftIsA ? 1 : 0, qint64(seed), now, now, slotId });
            if (claim.numRowsAffected() != 1)
                throw ProjectError("slot claimed concurrently");
            applyPairChange(*d, before, pairState(*d, pairId));
            tx.commit();
            ShownPair s = loadShown(*this, *d, pairId, leftIsA);
            s.slotId = slotId;
            s.orderSeed = seed;
            s.shownAt = fromMs(now);
            return s;
        } catch (const ProjectError &) {
            if (attempt >= 8)
                throw;
            QThread::msleep(5 * (attempt + 1));
        }
    }
}

static qint64 insertJudgment(ProjectStore::Impl &d, qint64 pairId, qint64 slotId, qint64 annotatorId, bool leftIsA,
    Verdict verdict, Strength strength, const QString &rationale, qint64 shownAt, JudgmentKind kind)
{
    QSqlQuery &q = d.exec(QStringLiteral("SELECT completion_a, completion_b FROM pairs WHERE id = ?"), { pairId });
    if (!q.next()) {
        q.finish();
        throw ProjectError(QStringLiteral("no pair with id %1").arg(pairId).toStdString());
    }
    const qint64 a = q.value(0).toLongLong(), b = q.value(1).toLongLong();
    q.finish();
    // With a slot, the annotator holds it: the pair's touchers and free slots stay as they are. Without one,
    // the annotator may become one of its touchers.
    PairState before;
    if (slotId <= 0) {
        lockPair(d, pairId);
        before = pairState(d, pairId);
    }
    const qint64 decidedAt = nowMs();
    const qint64 id = d.insert(
        QStringLiteral("INSERT INTO judgments (pair_id, slot_id, annotator_id, left_completion_id, left_is_a, "
                       "verdict, winner, strength, rationale, shown_at, decided_at, kind) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"),
        { pairId, slotId > 0 ? QVariant(slotId) : nullInt(), annotatorId, leftIsA ? a : b, leftIsA ? 1 : 0,
            verdictName(verdict), winnerName(winnerFor(verdict, leftIsA)), int(strength), rationale, shownAt, decidedAt,
            kindName(kind) });
    if (hasCounters(d)) {
        if (slotId <= 0)
            applyPairChange(d, before, pairState(d, pairId));
        ProjectStore::Impl::CounterDelta &c = counterDelta(d, annotatorId, kindName(kind));
        c.judgments += 1;
        c.judgedMs += decidedAt - shownAt;
    }
    return id;
}

qint64 ProjectStore::recordVerdict(
    qint64 annotatorId, const ShownPair &shown, Verdict verdict, Strength strength, const QString &rationale)
{
    if (shown.slotId <= 0)
        return recordJudgment(annotatorId, shown.pairId, shown.leftIsA, verdict, shown.kind,
            shown.shownAt.isValid() ? shown.shownAt : QDateTime::currentDateTimeUtc(), strength, rationale);
    TxGuard tx(*d);
    QSqlQuery &q = d->exec(
        QStringLiteral(
            "SELECT pair_id, annotator_id, done_at, left_is_a, shown_at, kind FROM slots WHERE id = ?%ROWLOCK%"),
        { shown.slotId });
    if (!q.next()) {
        q.finish();
        throw ProjectError(QStringLiteral("no queue slot %1").arg(shown.slotId).toStdString());
    }
    const qint64 pairId = q.value(0).toLongLong();
    const bool mine = q.value(1).toLongLong() == annotatorId;
    const bool done = !q.value(2).isNull();
    const bool leftIsA = q.value(3).toInt() != 0;
    const qint64 shownAt = q.value(4).toLongLong();
    const JudgmentKind kind = kindFromName(q.value(5).toString());
    q.finish();
    if (!mine || done)
        throw ProjectError(QStringLiteral("queue slot %1 is not open for this annotator (already judged or released)")
                               .arg(shown.slotId)
                               .toStdString());
    if (leftIsA != shown.leftIsA || pairId != shown.pairId)
        throw ProjectError("the shown pair does not match its queue slot");
    const qint64 id
        = insertJudgment(*d, pairId, shown.slotId, annotatorId, leftIsA, verdict, strength, rationale, shownAt, kind);
    d->exec(QStringLiteral("UPDATE slots SET done_at = ? WHERE id = ?"), { nowMs(), shown.slotId });
    if (hasCounters(*d))
        counterDelta(*d, 0, kindName(kind)).slotsDone += 1;
    tx.commit();
    return id;
}

qint64 ProjectStore::recordJudgment(qint64 annotatorId, qint64 pairId, bool leftIsA, Verdict verdict, JudgmentKind kind,
    const QDateTime &shownAt, Strength strength, const QString &rationale)
{
    TxGuard tx(*d);
    const qint64 id = insertJudgment(*d, pairId, 0, annotatorId, leftIsA, verdict, strength, rationale,
        shownAt.isValid() ? shownAt.toMSecsSinceEpoch() : nowMs(), kind);
    tx.commit();
    return id;
}

std::optional<ShownPair> ProjectStore::undoLastVerdict(qint64 annotatorId, JudgmentKind kind)
{
    const QString kindStr = kindName(kind);
    std::optional<ShownPair> slotless;
    {
        TxGuard tx(*d);
        QSqlQuery &q
            = d->exec(QStringLiteral("SELECT j.id, j.slot_id, j.pair_id, j.left_is_a, p.origin, p.completion_a, "
                                     "j.decided_at - j.shown_at FROM judgments j JOIN pairs p ON p.id = j.pair_id "
                                     "WHERE j.annotator_id = ? AND j.kind = ? ORDER BY j.id DESC LIMIT 1"),
                { annotatorId, kindStr });
        if (!q.next()) {
            q.finish();
            return std::nullopt;
        }
        const qint64 judgmentId = q.value(0).toLongLong();
        const qint64 slotId = q.value(1).toLongLong();
        const qint64 pairId = q.value(2).toLongLong();
        const bool leftIsA = q.value(3).toInt() != 0;
        const bool isRepair = q.value(4).toString() == QLatin1String("repair");
        const qint64 editedCompletion = q.value(5).toLongLong();
        const qint64 judgedMs = q.value(6).toLongLong();
        q.finish();
        if (isRepair) {
            // A repair created its pair and completion: undo removes all three; the pair on screen stays.
            lockPair(*d, pairId);
            const PairState before = pairState(*d, pairId);
            if (hasCounters(*d)) {
                QSqlQuery &g = d->exec(QStringLiteral("SELECT annotator_id, kind, COUNT(*), "
                                                      "COALESCE(SUM(decided_at - shown_at), 0) FROM judgments "
                                                      "WHERE pair_id = ? GROUP BY annotator_id, kind"),
                    { pairId });
                while (g.next()) {
                    Impl::CounterDelta &c = counterDelta(*d, g.value(0).toLongLong(), g.value(1).toString());
                    c.judgments -= g.value(2).toLongLong();
                    c.judgedMs -= g.value(3).toLongLong();
                }
                g.finish();
            }
            d->exec(QStringLiteral("DELETE FROM judgments WHERE pair_id = ?"), { pairId });
            d->exec(QStringLiteral("DELETE FROM pairs WHERE id = ?"), { pairId });
            d->exec(QStringLiteral("DELETE FROM completions WHERE id = ? AND NOT EXISTS (SELECT 1 FROM pairs p WHERE "
                                   "p.completion_a = ? OR p.completion_b = ?)"),
                { editedCompletion, editedCompletion, editedCompletion });
            applyPairChange(*d, before, pairState(*d, pairId));
            tx.commit();
            return nextPairFor(annotatorId, kind);
        }
        // Give back the slot on screen, reopen the undone one; nextPairFor then serves it with its order.
        // The pairs whose free slots or touchers change: those of the released slots, and the judged pair
        // when the judgment had no slot (with a slot, the annotator keeps holding it). Locked in id order.
        QVector<qint64> openSlots;
        std::map<qint64, PairState> changed; // pair -> state before
        QSqlQuery &o = d->exec(
            QStringLiteral("SELECT id, pair_id FROM slots WHERE annotator_id = ? AND kind = ? AND done_at IS NULL"),
            { annotatorId, kindStr });
        while (o.next()) {
            openSlots << o.value(0).toLongLong();
            changed[o.value(1).toLongLong()];
        }
        o.finish();
        if (slotId <= 0)
            changed[pairId];
        for (auto &[pair, before] : changed) {
            lockPair(*d, pair);
            before = pairState(*d, pair);
        }
        for (const qint64 open : openSlots)
            d->exec(QStringLiteral("UPDATE slots SET annotator_id = NULL, left_is_a = NULL, order_seed = NULL, "
                                   "claimed_at = NULL, shown_at = NULL WHERE id = ? AND done_at IS NULL"),
                { open });
        d->exec(QStringLiteral("DELETE FROM judgments WHERE id = ?"), { judgmentId });
        if (hasCounters(*d)) {
            Impl::CounterDelta &c = counterDelta(*d, annotatorId, kindStr);
            c.judgments -= 1;
            c.judgedMs -= judgedMs;
        }
        if (slotId > 0) {
            QSqlQuery &reopen = d->exec(
                QStringLiteral("UPDATE slots SET done_at = NULL, shown_at = ? WHERE id = ? AND done_at IS NOT NULL"),
                { nowMs(), slotId });
            if (reopen.numRowsAffected() == 1 && hasCounters(*d))
                counterDelta(*d, 0, kindStr).slotsDone -= 1;
        } else {
            slotless = loadShown(*this, *d, pairId, leftIsA);
            slotless->shownAt = QDateTime::currentDateTimeUtc();
        }
        for (const auto &[pair, before] : changed)
            applyPairChange(*d, before, pairState(*d, pair));
        tx.commit();
    }
    if (slotless)
        return slotless;
    return nextPairFor(annotatorId, kind);
}

void ProjectStore::releaseSlot(qint64 annotatorId, qint64 slotId)
{
    TxGuard tx(*d);
    const QVariant pair
        = d->scalar(QStringLiteral("SELECT pair_id FROM slots WHERE id = ? AND annotator_id = ? AND done_at IS NULL"),
            { slotId, annotatorId });
    if (pair.isNull()) // not held by this annotator (or already judged): nothing to give back
        return;
    const qint64 pairId = pair.toLongLong();
    lockPair(*d, pairId);
    const PairState before = pairState(*d, pairId);
    d->exec(QStringLiteral("UPDATE slots SET annotator_id = NULL, left_is_a = NULL, order_seed = NULL, "
                           "claimed_at = NULL, shown_at = NULL WHERE id = ? AND annotator_id = ? AND done_at IS NULL"),
        { slotId, annotatorId });
    applyPairChange(*d, before, pairState(*d, pairId));
    tx.commit();
}

qint64 ProjectStore::repair(
    qint64 annotatorId, const ShownPair &shown, bool editedLeft, const QString &editedText, const QString &rationale)
{
    if (editedText.trimmed().isEmpty())
        throw ProjectError("the repaired completion is empty");
    const Completion &original = editedLeft ? shown.left : shown.right;
    if (editedText == original.text)
        throw ProjectError("the repaired completion is identical to the original");
    TxGuard tx(*d);
    Provenance p;
    p.source = QStringLiteral("repair");
    p.parentCompletionId = original.id;
    const qint64 edited = d->addCompletionRow(shown.promptId, editedText, {}, p);
    const qint64 pairId
        = d->addPairRow(shown.promptId, edited, original.id, QStringLiteral("repair"), shown.kind, {}, {}, 0);
    // Recorded as judged: the edited text (a) shown on the left and chosen.
    insertJudgment(*d, pairId, 0, annotatorId, true, Verdict::Left, Strength::Unspecified, rationale,
        shown.shownAt.isValid() ? shown.shownAt.toMSecsSinceEpoch() : nowMs(), shown.kind);
    tx.commit();
    return pairId;
}

Progress ProjectStore::progress(qint64 annotatorId, JudgmentKind kind) const
{
    if (!hasCounters(*d))
        throw ProjectError(QStringLiteral("project %1: progress needs schema version 4 (this is %2)")
                               .arg(d->display)
                               .arg(d->version)
                               .toStdString());
    Progress p;
    const QString k = kindName(kind);
    // One statement, so one consistent snapshot: the project row, this annotator's row (absent until their
    // first change), their open slots (slots_open), and the annotators with judgments (one row each).
    QSqlQuery &q = d->exec(
        QStringLiteral(
            "SELECT g.slots, g.slots_done, g.free_pairs, "
            "(SELECT m.judgments FROM counters m WHERE m.annotator_id = ? AND m.kind = g.kind), "
            "(SELECT m.judged_ms FROM counters m WHERE m.annotator_id = ? AND m.kind = g.kind), "
            "(SELECT m.touched_free FROM counters m WHERE m.annotator_id = ? AND m.kind = g.kind), "
            "(SELECT COUNT(*) FROM slots s WHERE s.annotator_id = ? AND s.kind = g.kind AND s.done_at IS NULL), "
            "(SELECT COUNT(*) FROM counters a WHERE a.kind = g.kind AND a.annotator_id > 0 AND a.judgments > 0) "
            "FROM counters g WHERE g.annotator_id = 0 AND g.kind = ?"),
        { annotatorId, annotatorId, annotatorId, annotatorId, k });
    if (q.next()) {
        p.total = q.value(0).toLongLong();
        p.done = q.value(1).toLongLong();
        // Pairs with a free slot, minus those this annotator already holds or judged, plus the one(s) on
        // screen (one slot per pair and annotator).
        p.available = q.value(2).toLongLong() - q.value(5).toLongLong() + q.value(6).toLongLong();
        p.mine = q.value(3).toLongLong();
        p.myTotalSeconds = double(q.value(4).toLongLong()) / 1000.0;
        p.annotators = q.value(7).toLongLong();
    }
    q.finish();
    // The median of the latest 2,000 times on task: a bounded backward walk of judgments_annotator.
    QSqlQuery &t = d->exec(QStringLiteral("SELECT decided_at - shown_at FROM judgments WHERE annotator_id = ? AND "
                                          "kind = ? ORDER BY id DESC LIMIT 2000"),
        { annotatorId, k });
    std::vector<double> secs;
    while (t.next())
        secs.push_back(std::max<qint64>(0, t.value(0).toLongLong()) / 1000.0);
    t.finish();
    if (!secs.empty()) {
        std::sort(secs.begin(), secs.end());
        const size_t n = secs.size();
        p.myMedianSeconds = n % 2 ? secs[n / 2] : 0.5 * (secs[n / 2 - 1] + secs[n / 2]);
    }
    return p;
}

Counts ProjectStore::counts() const
{
    Counts c;
    auto count = [&](const char *sql) { return d->scalar(QString::fromLatin1(sql)).toLongLong(); };
    c.prompts = count("SELECT COUNT(*) FROM prompts");
    c.completions = count("SELECT COUNT(*) FROM completions");
    c.pairs = count("SELECT COUNT(*) FROM pairs");
    c.judgments = count("SELECT COUNT(*) FROM judgments");
    c.annotators = count("SELECT COUNT(*) FROM annotators");
    c.labelSlots = count("SELECT COUNT(*) FROM slots WHERE kind = 'label'");
    c.labelSlotsDone = count("SELECT COUNT(*) FROM slots WHERE kind = 'label' AND done_at IS NOT NULL");
    c.evalJudgments = count("SELECT COUNT(*) FROM judgments WHERE kind = 'eval'");
    c.prejudgedPairs = count("SELECT COUNT(*) FROM pairs WHERE preferred IS NOT NULL");
    return c;
}

// ---- Data page

Page<PromptRow> ProjectStore::listPrompts(const ListQuery &q) const
{
    QString where = QStringLiteral(" WHERE 1 = 1");
    QVariantList values;
    if (!q.search.isEmpty()) {
        where += QStringLiteral(" AND LOWER(p.text)") + QLatin1String(kLike);
        values << likePattern(q.search);
    }
    Page<PromptRow> page;
    page.total = d->scalar(QStringLiteral("SELECT COUNT(*) FROM prompts p") + where, values).toLongLong();
    QSqlQuery &r
        = d->exec(QStringLiteral("SELECT p.id, p.text, (SELECT COUNT(*) FROM completions c WHERE c.prompt_id = "
                                 "p.id), (SELECT COUNT(*) FROM pairs x WHERE x.prompt_id = p.id) FROM prompts p")
                + where + QStringLiteral(" ORDER BY p.id LIMIT ? OFFSET ?"),
            values + QVariantList { q.limit, q.offset });
    while (r.next())
        page.rows.push_back(PromptRow {
            r.value(0).toLongLong(), r.value(1).toString(), r.value(2).toLongLong(), r.value(3).toLongLong() });
    r.finish();
    return page;
}

Page<PairRow> ProjectStore::listPairs(const ListQuery &q) const
{
    QString where = QStringLiteral(" WHERE 1 = 1");
    QVariantList values;
    if (!q.search.isEmpty()) {
        where += QStringLiteral(" AND (LOWER(pr.text)%1 OR LOWER(ca.text)%1 OR LOWER(cb.text)%1)")
                     .arg(QLatin1String(kLike));
        const QString pat = likePattern(q.search);
        values << pat << pat << pat;
    }
    if (q.kind) {
        where += QStringLiteral(" AND p.kind = ?");
        values << kindName(*q.kind);
    }
    if (!q.origin.isEmpty()) {
        where += QStringLiteral(" AND p.origin = ?");
        values << q.origin;
    }
    const QString judged = QStringLiteral("(p.preferred IS NOT NULL OR EXISTS (SELECT 1 FROM judgments j WHERE "
                                          "j.pair_id = p.id AND j.winner <> 'skip'))");
    if (q.judged == JudgedFilter::Judged)
        where += QStringLiteral(" AND ") + judged;
    else if (q.judged == JudgedFilter::Unjudged)
        where += QStringLiteral(" AND NOT ") + judged;
    const QString from = QStringLiteral(" FROM pairs p JOIN prompts pr ON pr.id = p.prompt_id JOIN completions ca ON "
                                        "ca.id = p.completion_a JOIN completions cb ON cb.id = p.completion_b");
    Page<PairRow> page;
    page.total = d->scalar(QStringLiteral("SELECT COUNT(*)") + from + where, values).toLongLong();
    QSqlQuery &r = d->exec(
        QStringLiteral("SELECT p.id, p.prompt_id, pr.text, p.completion_a, p.completion_b, ca.text, cb.text, p.origin, "
                       "p.preferred, (SELECT COUNT(*) FROM judgments j WHERE j.pair_id = p.id AND j.winner <> 'skip'), "
                       "p.kind")
            + from + where + QStringLiteral(" ORDER BY p.id LIMIT ? OFFSET ?"),
        values + QVariantList { q.limit, q.offset });
    while (r.next()) {
        PairRow row;
        row.id = r.value(0).toLongLong();
        row.promptId = r.value(1).toLongLong();
        row.prompt = r.value(2).toString();
        row.completionA = r.value(3).toLongLong();
        row.completionB = r.value(4).toLongLong();
        row.textA = r.value(5).toString();
        row.textB = r.value(6).toString();
        row.origin = r.value(7).toString();
        row.preferred = r.value(8).toString();
        row.judgments = r.value(9).toLongLong();
        row.kind = kindFromName(r.value(10).toString());
        page.rows.push_back(row);
    }
    r.finish();
    return page;
}

static const char *kJudgmentColumns
    = "j.id, j.pair_id, j.slot_id, j.annotator_id, a.name, j.left_completion_id, j.left_is_a, j.verdict, j.winner, "
      "j.strength, j.rationale, j.shown_at, j.decided_at, j.kind";

static Judgment judgmentFrom(QSqlQuery &q)
{
    Judgment j;
    j.id = q.value(0).toLongLong();
    j.pairId = q.value(1).toLongLong();
    j.slotId = q.value(2).toLongLong();
    j.annotatorId = q.value(3).toLongLong();
    j.annotatorName = q.value(4).toString();
    j.leftCompletionId = q.value(5).toLongLong();
    j.leftIsA = q.value(6).toInt() != 0;
    j.verdict = verdictFromName(q.value(7).toString()).value_or(Verdict::Skip);
    j.winner = winnerFromName(q.value(8).toString()).value_or(Winner::Skip);
    j.strength = Strength(std::clamp(q.value(9).toInt(), 0, 2));
    j.rationale = q.value(10).toString();
    j.shownAt = fromMs(q.value(11));
    j.decidedAt = fromMs(q.value(12));
    j.kind = kindFromName(q.value(13).toString());
    return j;
}

Page<JudgmentRow> ProjectStore::listJudgments(const ListQuery &q) const
{
    QString where = QStringLiteral(" WHERE 1 = 1");
    QVariantList values;
    if (!q.search.isEmpty()) {
        where
            += QStringLiteral(" AND (LOWER(pr.text)%1 OR LOWER(ca.text)%1 OR LOWER(cb.text)%1 OR LOWER(j.rationale)%1)")
                   .arg(QLatin1String(kLike));
        const QString pat = likePattern(q.search);
        values << pat << pat << pat << pat;
    }
    if (q.annotatorId > 0) {
        where += QStringLiteral(" AND j.annotator_id = ?");
        values << q.annotatorId;
    }
    if (q.verdict) {
        where += QStringLiteral(" AND j.verdict = ?");
        values << verdictName(*q.verdict);
    }
    if (q.kind) {
        where += QStringLiteral(" AND j.kind = ?");
        values << kindName(*q.kind);
    }
    const QString from = QStringLiteral(
        " FROM judgments j JOIN annotators a ON a.id = j.annotator_id JOIN pairs p ON p.id = j.pair_id JOIN prompts pr "
        "ON pr.id = p.prompt_id JOIN completions ca ON ca.id = p.completion_a JOIN completions cb ON cb.id = "
        "p.completion_b");
    Page<JudgmentRow> page;
    page.total = d->scalar(QStringLiteral("SELECT COUNT(*)") + from + where, values).toLongLong();
    QSqlQuery &r = d->exec(QStringLiteral("SELECT %1, pr.text, ca.text, cb.text").arg(kJudgmentColumns) + from + where
            + QStringLiteral(" ORDER BY j.id LIMIT ? OFFSET ?"),
        values + QVariantList { q.limit, q.offset });
    while (r.next()) {
        JudgmentRow row;
        row.judgment = judgmentFrom(r);
        row.prompt = r.value(14).toString();
        row.textA = r.value(15).toString();
        row.textB = r.value(16).toString();
        page.rows.push_back(row);
    }
    r.finish();
    return page;
}

QVector<Judgment> ProjectStore::judgmentsOfPair(qint64 pairId) const
{
    QVector<Judgment> out;
    QSqlQuery &r = d->exec(QStringLiteral("SELECT %1 FROM judgments j JOIN annotators a ON a.id = j.annotator_id "
                                          "WHERE j.pair_id = ? ORDER BY j.id")
                               .arg(kJudgmentColumns),
        { pairId });
    while (r.next())
        out.push_back(judgmentFrom(r));
    r.finish();
    return out;
}

QVector<SanityIssue> ProjectStore::sanityChecks(const SanityOptions &o) const
{
    QVector<SanityIssue> out;
    std::map<std::tuple<qint64, QString, QString>, qint64> seen;
    QSqlQuery &r = d->exec(QStringLiteral(
        "SELECT p.id, p.prompt_id, LENGTH(pr.text), LENGTH(ca.text), LENGTH(cb.text), ca.text_hash, cb.text_hash FROM "
        "pairs p JOIN prompts pr ON pr.id = p.prompt_id JOIN completions ca ON ca.id = p.completion_a JOIN completions "
        "cb ON cb.id = p.completion_b ORDER BY p.id"));
    auto add = [&](SanityIssue::Type t, qint64 pair, qint64 other, const QString &detail) {
        if (out.size() < o.limit)
            out.push_back(SanityIssue { t, pair, other, detail });
    };
    while (r.next() && out.size() < o.limit) {
        const qint64 id = r.value(0).toLongLong(), promptId = r.value(1).toLongLong();
        const qint64 lp = r.value(2).toLongLong(), la = r.value(3).toLongLong(), lb = r.value(4).toLongLong();
        const QString ha = r.value(5).toString(), hb = r.value(6).toString();
        // Equal MD5 and equal length: identical texts (a collision is not a practical concern here).
        if (ha == hb && la == lb)
            add(SanityIssue::ChosenEqualsRejected, id, 0, QStringLiteral("both completions are identical"));
        auto key = std::make_tuple(promptId, std::min(ha, hb), std::max(ha, hb));
        auto it = seen.find(key);
        if (it != seen.end())
            add(SanityIssue::DuplicatePair, id, it->second,
                QStringLiteral("same prompt and completions as pair %1").arg(it->second));
        else
            seen.emplace(key, id);
        if (lp > o.maxChars || la > o.maxChars || lb > o.maxChars)
            add(SanityIssue::OverMaxLength, id, 0,
                QStringLiteral("lengths prompt %1, a %2, b %3 characters (max %4)")
                    .arg(lp)
                    .arg(la)
                    .arg(lb)
                    .arg(o.maxChars));
        const double lo = double(std::min(la, lb)), hi = double(std::max(la, lb));
        if (lo > 0 && hi / lo > o.maxSkew)
            add(SanityIssue::LengthSkew, id, 0,
                QStringLiteral("completion lengths %1 and %2 characters (ratio %3)")
                    .arg(la)
                    .arg(lb)
                    .arg(hi / lo, 0, 'f', 1));
    }
    r.finish();
    return out;
}

AgreementReport ProjectStore::agreement(JudgmentKind kind) const
{
    AgreementReport rep;
    // Latest non-skip judgment per (pair, annotator).
    struct Row {
        int winner;
        bool leftIsA;
        qint64 la, lb;
    };
    std::map<qint64, std::map<qint64, Row>> items; // pair -> annotator -> row
    QSqlQuery &r = d->exec(
        QStringLiteral("SELECT j.pair_id, j.annotator_id, j.winner, j.left_is_a, LENGTH(ca.text), LENGTH(cb.text) "
                       "FROM judgments j JOIN pairs p ON p.id = j.pair_id JOIN completions ca ON ca.id = "
                       "p.completion_a JOIN completions cb ON cb.id = p.completion_b WHERE j.kind = ? AND "
                       "j.winner <> 'skip' ORDER BY j.id"),
        { kindName(kind) });
    while (r.next()) {
        const auto w = winnerFromName(r.value(2).toString()).value_or(Winner::Skip);
        if (w == Winner::Skip)
            continue;
        items[r.value(0).toLongLong()][r.value(1).toLongLong()]
            = Row { int(w), r.value(3).toInt() != 0, r.value(4).toLongLong(), r.value(5).toLongLong() };
    }
    r.finish();
    const int cats = 4; // a, b, tie, both_bad
    std::set<qint64> raters;
    std::vector<std::vector<int>> counts;
    for (const auto &[pair, byAnnotator] : items) {
        std::vector<int> c(cats, 0);
        for (const auto &[annotator, row] : byAnnotator) {
            raters.insert(annotator);
            ++c[row.winner];
            ++rep.judgments;
            if (row.winner == int(Winner::A) || row.winner == int(Winner::B)) {
                const bool aWon = row.winner == int(Winner::A);
                (aWon == row.leftIsA ? rep.leftWins : rep.rightWins)++;
                if (row.la != row.lb)
                    ((aWon ? row.la > row.lb : row.lb > row.la) ? rep.longerWins : rep.shorterWins)++;
            }
        }
        if (byAnnotator.size() >= 2)
            ++rep.multiRated;
        counts.push_back(std::move(c));
    }
    rep.items = qint64(items.size());
    rep.raters = qint64(raters.size());
    rep.leftWinShare = rep.leftWins + rep.rightWins ? double(rep.leftWins) / (rep.leftWins + rep.rightWins) : kNaN;
    rep.longerWinShare
        = rep.longerWins + rep.shorterWins ? double(rep.longerWins) / (rep.longerWins + rep.shorterWins) : kNaN;
    rep.fleissKappa = fleissKappa(counts);
    rep.krippendorffAlpha = krippendorffAlphaNominal(counts);

    const std::vector<qint64> ids(raters.begin(), raters.end());
    QHash<qint64, QString> names;
    for (const Annotator &a : annotators())
        names.insert(a.id, a.name);
    rep.cohenKappa = kNaN;
    for (size_t x = 0; x < ids.size(); ++x) {
        for (size_t y = x + 1; y < ids.size(); ++y) {
            std::vector<std::pair<int, int>> shared;
            for (const auto &[pair, byAnnotator] : items) {
                auto ix = byAnnotator.find(ids[x]), iy = byAnnotator.find(ids[y]);
                if (ix != byAnnotator.end() && iy != byAnnotator.end())
                    shared.emplace_back(ix->second.winner, iy->second.winner);
            }
            if (shared.empty())
                continue;
            const double k = cohenKappa(shared, cats);
            rep.pairwise.push_back(PairwiseKappa { ids[x], ids[y], qint64(shared.size()), k });
            if (ids.size() == 2)
                rep.cohenKappa = k;
        }
    }
    // Each annotator against the plurality of the others (items where that plurality is unique).
    for (qint64 id : ids) {
        AnnotatorAgreement a { id, names.value(id), 0, 0 };
        qint64 agree = 0;
        for (const auto &[pair, byAnnotator] : items) {
            auto mine = byAnnotator.find(id);
            if (mine == byAnnotator.end() || byAnnotator.size() < 2)
                continue;
            std::vector<int> c(cats, 0);
            for (const auto &[other, row] : byAnnotator)
                if (other != id)
                    ++c[row.winner];
            const int best = int(std::max_element(c.begin(), c.end()) - c.begin());
            if (std::count(c.begin(), c.end(), c[best]) > 1)
                continue;
            ++a.items;
            if (mine->second.winner == best)
                ++agree;
        }
        a.agreementWithMajority = a.items ? double(agree) / a.items : kNaN;
        rep.annotators.push_back(a);
    }
    return rep;
}

// ---- runs

qint64 ProjectStore::createRun(const QString &name, const QString &configJson, const QString &outputDir)
{
    TxGuard tx(*d);
    const qint64 id = d->insert(QStringLiteral("INSERT INTO runs (name, status, config_json, output_dir, started_at, "
                                               "last_metrics_json) VALUES (?, 'created', ?, ?, ?, '{}') RETURNING id"),
        { name, configJson.isEmpty() ? QStringLiteral("{}") : configJson, outputDir, nowMs() });
    tx.commit();
    return id;
}

void ProjectStore::updateRun(qint64 id, const QString &status, const QString &lastMetricsJson)
{
    TxGuard tx(*d);
    if (lastMetricsJson.isEmpty())
        d->exec(QStringLiteral("UPDATE runs SET status = ? WHERE id = ?"), { status, id });
    else
        d->exec(QStringLiteral("UPDATE runs SET status = ?, last_metrics_json = ? WHERE id = ?"),
            { status, lastMetricsJson, id });
    tx.commit();
}

void ProjectStore::finishRun(qint64 id, const QString &status)
{
    TxGuard tx(*d);
    d->exec(QStringLiteral("UPDATE runs SET status = ?, ended_at = ? WHERE id = ?"), { status, nowMs(), id });
    tx.commit();
}

QVector<Run> ProjectStore::runs() const
{
    QVector<Run> out;
    QSqlQuery &q = d->exec(QStringLiteral("SELECT id, name, status, config_json, output_dir, started_at, ended_at, "
                                          "last_metrics_json FROM runs ORDER BY id"));
    while (q.next()) {
        Run r;
        r.id = q.value(0).toLongLong();
        r.name = q.value(1).toString();
        r.status = q.value(2).toString();
        r.configJson = q.value(3).toString();
        r.outputDir = q.value(4).toString();
        r.startedAt = fromMs(q.value(5));
        r.endedAt = fromMs(q.value(6));
        r.lastMetricsJson = q.value(7).toString();
        out.push_back(r);
    }
    q.finish();
    return out;
}

} // namespace dpo
