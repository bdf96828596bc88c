// EvaluationResults: the numbers of the Evaluate page's Results view, computed from a blind session's
// battles and outputs: Bradley–Terry Elo ratings with bootstrap intervals, win rates against a chosen
// baseline (ties and both-bad count 1/2, both-bad also counted apart) with Wilson and bootstrap 95%
// intervals and the judgments still needed to separate from the baseline (all from
// dpo::computeRatings, unchanged), the length statistics of each model's outputs, the model pairs whose
// rating intervals overlap with the judgments that would separate them, and the per-prompt rows.
// Pure computation plus one loader that reads a ProjectStore (callable on any thread with that thread's
// store). No widgets.
#pragma once

#include "engine/evaluation/statistics.h"
#include "project/evaluation.h"

#include <QHash>
#include <QString>
#include <QStringList>
#include <QVector>

#include <vector>

struct ModelLengthStats {
    int outputs = 0;
    double meanChars = 0, medianChars = 0; // Unicode code points
    double meanWords = 0, medianWords = 0; // whitespace-separated words
};

struct EvalBattleRow {
    qint64 judgmentId = 0;
    qint64 pairId = 0;
    qint64 promptId = 0;
    QString prompt;
    QString promptSummary; // one line for tables: "3 turns · <last user message>" for a conversation, else the text
    int modelA = 0;
    int modelB = 0;
    QString textA;
    QString textB;
    dpo::Winner winner = dpo::Winner::Tie;
    bool leftIsA = true; // the order the annotator saw (recorded by the store)
};

// Two models whose 95% rating intervals overlap, and what would separate them head to head.
struct SeparationRow {
    int a = 0;
    int b = 0;
    int games = 0; // battles between the two
    double score = 0; // a's score in them (ties 1/2)
    dpo::WilsonInterval wilson; // of a's win rate against b
    int moreJudgments = -1; // dpo::judgmentsToSeparate; -1: never at the observed rate (or no games)
};

struct EvaluationResults {
    QStringList models;
    int baseline = 0;
    int bootstrap = 1000;
    quint64 seed = 0;
    std::vector<dpo::IndexedBattle> battles; // what computeRatings saw
    bool hasRatings = false;
    QString ratingsError; // why there are no ratings (no battles, baseline never judged, ...)
    dpo::RatingsReport ratings;
    QVector<ModelLengthStats> lengths;
    QVector<EvalBattleRow> rows;
    QVector<SeparationRow> separation;
    int bothBad = 0; // battles judged both bad (counted as ties in the ratings)

    // Rating interval of model i: the bootstrap percentile interval, or ±1.96 standard errors without
    // a bootstrap.
    double ratingLow(int i) const;
    double ratingHigh(int i) const;
};

dpo::BattleOutcome battleOutcome(dpo::Winner w); // A -> AWins, B -> BWins, Tie, BothBad (Skip: Tie)
ModelLengthStats lengthStats(const QStringList &texts);

// Everything above from battles, outputs and prompt texts. Throws nothing: statistics errors land in
// ratingsError.
EvaluationResults computeEvaluationResults(const QStringList &models, const QVector<dpo::EvalBattle> &battles,
    const QVector<dpo::EvalOutput> &outputs, const QHash<qint64, QString> &promptTexts, int baseline,
    int bootstrap = 1000, quint64 seed = 0);

// Reads the session's battles, outputs and prompts from `store` and computes the results.
EvaluationResults loadEvaluationResults(const dpo::ProjectStore &store, const dpo::EvalSession &session, int baseline,
    int bootstrap = 1000, quint64 seed = 0);
