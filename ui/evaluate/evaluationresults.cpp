#include "ui/evaluate/evaluationresults.h"

#include "project/conversation.h"

#include <QRegularExpression>

#include <algorithm>
#include <cmath>

namespace {

double median(std::vector<double> v)
{
    if (v.empty())
        return std::nan("");
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

} // namespace

double EvaluationResults::ratingLow(int i) const
{
    const dpo::ModelRating &m = ratings.models[size_t(i)];
    return std::isfinite(m.ratingLow) && bootstrap > 0 ? m.ratingLow : m.rating - dpo::kZ95 * m.standardError;
}

double EvaluationResults::ratingHigh(int i) const
{
    const dpo::ModelRating &m = ratings.models[size_t(i)];
    return std::isfinite(m.ratingHigh) && bootstrap > 0 ? m.ratingHigh : m.rating + dpo::kZ95 * m.standardError;
}

dpo::BattleOutcome battleOutcome(dpo::Winner w)
{
    switch (w) {
    case dpo::Winner::A:
        return dpo::BattleOutcome::AWins;
    case dpo::Winner::B:
        return dpo::BattleOutcome::BWins;
    case dpo::Winner::BothBad:
        return dpo::BattleOutcome::BothBad;
    case dpo::Winner::Tie:
    case dpo::Winner::Skip:
        break;
    }
    return dpo::BattleOutcome::Tie;
}

ModelLengthStats lengthStats(const QStringList &texts)
{
    ModelLengthStats s;
    s.outputs = int(texts.size());
    std::vector<double> chars, words;
    static const QRegularExpression space(QStringLiteral("\\s+"));
    for (const QString &t : texts) {
        chars.push_back(double(t.toUcs4().size()));
        words.push_back(double(t.split(space, Qt::SkipEmptyParts).size()));
    }
    auto mean = [](const std::vector<double> &v) {
        double sum = 0;
        for (double x : v)
            sum += x;
        return v.empty() ? std::nan("") : sum / double(v.size());
    };
    s.meanChars = mean(chars);
    s.medianChars = median(chars);
    s.meanWords = mean(words);
    s.medianWords = median(words);
    return s;
}

EvaluationResults computeEvaluationResults(const QStringList &models, const QVector<dpo::EvalBattle> &battles,
    const QVector<dpo::EvalOutput> &outputs, const QHash<qint64, QString> &promptTexts, int baseline, int bootstrap,
    quint64 seed)
{
    EvaluationResults r;
    r.models = models;
    r.baseline = baseline;
    r.bootstrap = bootstrap;
    r.seed = seed;
    const int m = int(models.size());

    QVector<QStringList> texts(m);
    QHash<qint64, QString> textOf;
    for (const dpo::EvalOutput &o : outputs) {
        if (o.model >= 0 && o.model < m)
            texts[o.model] << o.text;
        textOf.insert(o.completionId, o.text);
    }
    for (int i = 0; i < m; ++i)
        r.lengths << lengthStats(texts[i]);

    for (const dpo::EvalBattle &b : battles) {
        r.battles.push_back({ b.modelA, b.modelB, battleOutcome(b.winner) });
        if (b.winner == dpo::Winner::BothBad)
            ++r.bothBad;
        EvalBattleRow row;
        row.judgmentId = b.judgmentId;
        row.pairId = b.pairId;
        row.promptId = b.promptId;
        row.prompt = promptTexts.value(b.promptId);
        row.promptSummary = row.prompt;
        row.modelA = b.modelA;
        row.modelB = b.modelB;
        row.textA = textOf.value(b.completionA);
        row.textB = textOf.value(b.completionB);
        row.winner = b.winner;
        row.leftIsA = b.leftIsA;
        r.rows << row;
    }

    if (m < 2) {
        r.ratingsError = QObject::tr("An evaluation needs two or more models.");
        return r;
    }
    if (r.battles.empty()) {
        r.ratingsError = QObject::tr("No blind judgments yet.");
        return r;
    }
    try {
        dpo::RatingsOptions opt;
        opt.baseline = baseline;
        opt.bootstrap = bootstrap;
        opt.seed = seed;
        r.ratings = dpo::computeRatings(m, r.battles, opt);
        r.hasRatings = true;
    } catch (const std::exception &e) {
        r.ratingsError = QString::fromUtf8(e.what());
        return r;
    }

    // Model pairs whose intervals overlap: how many more head-to-head judgments would separate them.
    const dpo::PairCounts counts = dpo::countBattles(m, r.battles);
    for (int i = 0; i < m; ++i) {
        for (int j = i + 1; j < m; ++j) {
            const bool overlap = r.ratingLow(i) <= r.ratingHigh(j) && r.ratingLow(j) <= r.ratingHigh(i);
            if (!overlap)
                continue;
            SeparationRow s;
            s.a = i;
            s.b = j;
            s.games = int(std::lround(counts.g(i, j)));
            s.score = counts.w(i, j);
            s.wilson = dpo::wilson(s.score, double(s.games));
            s.moreJudgments = s.games > 0 ? dpo::judgmentsToSeparate(s.score, double(s.games)) : -1;
            r.separation << s;
        }
    }
    return r;
}

EvaluationResults loadEvaluationResults(
    const dpo::ProjectStore &store, const dpo::EvalSession &session, int baseline, int bootstrap, quint64 seed)
{
    QStringList names;
    for (const dpo::EvalModel &m : session.models)
        names << m.name;
    const QVector<dpo::EvalBattle> battles = dpo::evalBattles(store, session.models, session.sampling);
    // The session's prompts, and those of earlier judgments between the same models and settings.
    QVector<qint64> promptIds = session.promptIds;
    QHash<qint64, QString> prompts, summaries;
    auto remember = [&](qint64 id) {
        const dpo::Prompt p = store.prompt(id);
        prompts.insert(id, p.text);
        summaries.insert(id, dpo::conversationSummary(p.messagesJson, p.text));
    };
    for (qint64 id : session.promptIds)
        remember(id);
    for (const dpo::EvalBattle &b : battles) {
        if (!prompts.contains(b.promptId)) {
            remember(b.promptId);
            promptIds << b.promptId;
        }
    }
    const QVector<dpo::EvalOutput> outputs = dpo::evalOutputs(store, session.models, promptIds, session.sampling);
    EvaluationResults r = computeEvaluationResults(names, battles, outputs, prompts, baseline, bootstrap, seed);
    for (EvalBattleRow &row : r.rows)
        row.promptSummary = summaries.value(row.promptId, row.prompt);
    return r;
}
