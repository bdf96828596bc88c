// ProjectStore's Data-page reports: sanity checks over all pairs (identical sides, duplicates, lengths,
// length skew) and the agreement and bias report over judgments (the statistics are in agreement.cpp).
#include "project/project_store.h"

#include "project/agreement.h"
#include "project/project_store_p.h"

#include <QSqlError>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <tuple>

namespace dpo {

namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();

} // namespace

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

} // namespace dpo
