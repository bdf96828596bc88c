// ProjectStore's progress counters (schema 4): the helpers that keep them in every change's transaction
// (counter deltas, the before/after state of a pair's free slots and touchers), progress() that reads them,
// and counts(), the project's totals.
#include "project/project_store.h"

#include "project/project_store_p.h"

#include <QSqlError>

#include <algorithm>
#include <set>
#include <vector>

namespace dpo {

// ---- progress counters (schema 4)
//
// progress() reads stored counters instead of counting the queue. Every change to slots or judgments adds
// to them in its own transaction (Impl::counterDeltas, written at commit). "available" needs, per
// annotator, the number of pairs with a free slot that they already hold or judged (touched_free): a pair
// gaining or losing its last free slot changes it for everyone who touched that pair, so changes to a
// pair's slots or slot-less judgments compare the pair's state before and after (pairState) under a lock
// on the pair row (PostgreSQL; SQLite's write lock serializes anyway).

// Holds the pair row until commit, so that two connections changing one pair's slots see each other's
// result in their before/after states. NO KEY: inserting a judgment of the pair (a foreign-key check, KEY
// SHARE) does not wait for it. Counter rows are locked last, at commit, in key order.
void lockPair(ProjectStore::Impl &d, qint64 pairId)
{
    if (d.pg() && hasCounters(d))
        d.scalar(QStringLiteral("SELECT id FROM pairs WHERE id = ? FOR NO KEY UPDATE"), { pairId });
}

PairState pairState(ProjectStore::Impl &d, qint64 pairId)
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

void applyPairChange(ProjectStore::Impl &d, const PairState &before, const PairState &after)
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

} // namespace dpo
