// ProjectStore's labeling queue: serving the next pair to an annotator (the open slot first, else the claim
// of a free slot: SKIP LOCKED on PostgreSQL), the per-annotator left/right order, recording verdicts and
// slot-less judgments, undo, releasing a slot and repairs. Every change keeps the progress counters
// (store_progress.cpp) in its own transaction.
#include "project/project_store.h"

#include "project/project_store_p.h"

#include <QSqlError>
#include <QThread>

#include <map>

namespace dpo {

namespace {

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

} // namespace

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
    QSqlQuery &q = d.exec(QStringLiteral("SELECT p.prompt_id, pr.text, p.completion_a, p.completion_b, p.kind, "
                                         "pr.messages_json FROM "
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
    s.promptMessages = q.value(5).toString();
    q.finish();
    s.leftIsA = leftIsA;
    s.left = store.completion(leftIsA ? a : b);
    s.right = store.completion(leftIsA ? b : a);
    return s;
}

std::optional<ShownPair> ProjectStore::nextPairFor(qint64 annotatorId, JudgmentKind kind)
{
    return retryDeadlocks(*d, [&]() -> std::optional<ShownPair> {
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
            } catch (const ConnectionLostError &) {
                throw; // not a race with another annotator: the caller retries once the server is back
            } catch (const ProjectError &) {
                if (attempt >= 8)
                    throw;
                QThread::msleep(5 * (attempt + 1));
            }
        }
    });
}

static qint64 insertJudgment(ProjectStore::Impl &d, qint64 pairId, qint64 slotId, qint64 annotatorId, bool leftIsA,
    Verdict verdict, Strength strength, const QString &rationale, qint64 shownAt, JudgmentKind kind,
    const QString &clientId = {})
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
    QVariantList values { pairId, slotId > 0 ? QVariant(slotId) : nullInt(), annotatorId, leftIsA ? a : b,
        leftIsA ? 1 : 0, verdictName(verdict), winnerName(winnerFor(verdict, leftIsA)), int(strength), rationale,
        shownAt, decidedAt, kindName(kind) };
    QString sql = QStringLiteral("INSERT INTO judgments (pair_id, slot_id, annotator_id, left_completion_id, "
                                 "left_is_a, verdict, winner, strength, rationale, shown_at, decided_at, kind%1) "
                                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?%2) RETURNING id");
    if (d.version >= 6) { // client_id exists from schema 6
        sql = sql.arg(QStringLiteral(", client_id"), QStringLiteral(", ?"));
        values << (clientId.isEmpty() ? nullInt() : QVariant(clientId));
    } else {
        sql = sql.arg(QString(), QString());
    }
    const qint64 id = d.insert(sql, values);
    if (hasCounters(d)) {
        if (slotId <= 0)
            applyPairChange(d, before, pairState(d, pairId));
        ProjectStore::Impl::CounterDelta &c = counterDelta(d, annotatorId, kindName(kind));
        c.judgments += 1;
        c.judgedMs += decidedAt - shownAt;
    }
    return id;
}

// The judgment already recorded under clientId, if any (inside the caller's transaction).
static std::optional<qint64> judgmentOfClientId(ProjectStore::Impl &d, const QString &clientId)
{
    if (clientId.isEmpty() || d.version < 6)
        return std::nullopt;
    const QVariant v = d.scalar(QStringLiteral("SELECT id FROM judgments WHERE client_id = ?"), { clientId });
    if (v.isNull())
        return std::nullopt;
    return v.toLongLong();
}

qint64 ProjectStore::recordVerdict(qint64 annotatorId, const ShownPair &shown, Verdict verdict, Strength strength,
    const QString &rationale, const QString &clientId)
{
    return retryDeadlocks(*d, [&]() -> qint64 {
        TxGuard tx(*d);
        if (const auto done = judgmentOfClientId(*d, clientId)) {
            tx.commit();
            return *done; // a retry of a verdict whose first attempt did commit
        }
        if (shown.slotId <= 0) {
            const qint64 id = insertJudgment(*d, shown.pairId, 0, annotatorId, shown.leftIsA, verdict, strength,
                rationale, (shown.shownAt.isValid() ? shown.shownAt : QDateTime::currentDateTimeUtc()).toMSecsSinceEpoch(),
                shown.kind, clientId);
            tx.commit();
            return id;
        }
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
        const qint64 id = insertJudgment(
            *d, pairId, shown.slotId, annotatorId, leftIsA, verdict, strength, rationale, shownAt, kind, clientId);
        d->exec(QStringLiteral("UPDATE slots SET done_at = ? WHERE id = ?"), { nowMs(), shown.slotId });
        if (hasCounters(*d))
            counterDelta(*d, 0, kindName(kind)).slotsDone += 1;
        tx.commit();
        return id;
    });
}

qint64 ProjectStore::recordJudgment(qint64 annotatorId, qint64 pairId, bool leftIsA, Verdict verdict, JudgmentKind kind,
    const QDateTime &shownAt, Strength strength, const QString &rationale)
{
    return retryDeadlocks(*d, [&]() -> qint64 {
        TxGuard tx(*d);
        const qint64 id = insertJudgment(*d, pairId, 0, annotatorId, leftIsA, verdict, strength, rationale,
            shownAt.isValid() ? shownAt.toMSecsSinceEpoch() : nowMs(), kind);
        tx.commit();
        return id;
    });
}

std::optional<ShownPair> ProjectStore::undoLastVerdict(qint64 annotatorId, JudgmentKind kind)
{
    return retryDeadlocks(*d, [&]() -> std::optional<ShownPair> {
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
    });
}

void ProjectStore::releaseSlot(qint64 annotatorId, qint64 slotId)
{
    return retryDeadlocks(*d, [&]() -> void {
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
    });
}

qint64 ProjectStore::repair(
    qint64 annotatorId, const ShownPair &shown, bool editedLeft, const QString &editedText, const QString &rationale)
{
    return retryDeadlocks(*d, [&]() -> qint64 {
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
    });
}

} // namespace dpo
