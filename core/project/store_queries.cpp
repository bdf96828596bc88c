// ProjectStore's Data-page listings: prompts, pairs (with each pair's current majority) and judgments,
// paged, searched (case-insensitive substring via LIKE with escaped wildcards) and filtered, and the
// judgments of one pair.
#include "project/project_store.h"

#include "project/project_store_p.h"

#include <QSqlError>

#include <algorithm>
#include <array>
#include <map>

namespace dpo {

namespace {

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
                                 "p.id), (SELECT COUNT(*) FROM pairs x WHERE x.prompt_id = p.id), p.messages_json "
                                 "FROM prompts p")
                + where + QStringLiteral(" ORDER BY p.id LIMIT ? OFFSET ?"),
            values + QVariantList { q.limit, q.offset });
    while (r.next())
        page.rows.push_back(PromptRow { r.value(0).toLongLong(), r.value(1).toString(), r.value(2).toLongLong(),
            r.value(3).toLongLong(), r.value(4).toString() });
    r.finish();
    return page;
}

// The Preferred column: for the pairs of one page, the majority of each pair's latest non-skip judgment per
// annotator (the votes the training export counts), one query for the page.
static void fillMajorities(ProjectStore::Impl &d, QVector<PairRow> &rows)
{
    if (rows.isEmpty())
        return;
    QStringList marks;
    QVariantList ids;
    QHash<qint64, int> index;
    for (int i = 0; i < rows.size(); ++i) {
        marks << QStringLiteral("?");
        ids << rows[i].id;
        index.insert(rows[i].id, i);
    }
    std::map<std::pair<qint64, qint64>, Winner> latest; // (pair, annotator) -> winner
    QSqlQuery &q = d.exec(QStringLiteral("SELECT pair_id, annotator_id, winner FROM judgments WHERE winner <> 'skip' "
                                         "AND pair_id IN (%1) ORDER BY id")
                              .arg(marks.join(QStringLiteral(", "))),
        ids);
    while (q.next()) {
        const auto w = winnerFromName(q.value(2).toString());
        if (w && *w != Winner::Skip)
            latest[{ q.value(0).toLongLong(), q.value(1).toLongLong() }] = *w;
    }
    q.finish();
    std::map<qint64, std::array<int, 4>> votes; // pair -> a, b, tie, both_bad
    for (const auto &[key, w] : latest)
        ++votes[key.first][size_t(w)];
    for (const auto &[pair, v] : votes) {
        const int best = int(std::max_element(v.begin(), v.end()) - v.begin());
        // An even split between the top choices is a tie too: neither side is preferred.
        const bool split = std::count(v.begin(), v.end(), v[size_t(best)]) > 1;
        rows[index.value(pair)].preferred = split ? winnerName(Winner::Tie) : winnerName(Winner(best));
    }
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
                       "p.kind, pr.messages_json, ca.messages_json, cb.messages_json")
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
        row.promptMessages = r.value(11).toString();
        row.messagesA = r.value(12).toString();
        row.messagesB = r.value(13).toString();
        page.rows.push_back(row);
    }
    r.finish();
    fillMajorities(*d, page.rows);
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
    QSqlQuery &r = d->exec(QStringLiteral("SELECT %1, pr.text, ca.text, cb.text, pr.messages_json, ca.messages_json, "
                                          "cb.messages_json")
                               .arg(kJudgmentColumns)
            + from + where + QStringLiteral(" ORDER BY j.id LIMIT ? OFFSET ?"),
        values + QVariantList { q.limit, q.offset });
    while (r.next()) {
        JudgmentRow row;
        row.judgment = judgmentFrom(r);
        row.prompt = r.value(14).toString();
        row.textA = r.value(15).toString();
        row.textB = r.value(16).toString();
        row.promptMessages = r.value(17).toString();
        row.messagesA = r.value(18).toString();
        row.messagesB = r.value(19).toString();
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

} // namespace dpo
