// Statistics of blind evaluations: Wilson score intervals for win rates (ties count 1/2), the
// Bradley–Terry maximum-likelihood fit of several models on an Elo scale with bootstrap intervals,
// win rates against a baseline, and how many more judgments would separate a model from the
// baseline. Pure C++ (no libtorch, no Qt); deterministic for a given seed on every platform.
// It does not read or store battles (dpo-cli and the project store do) and knows nothing of prompts
// or lengths.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dpo {

// Two-sided 95% normal quantile.
constexpr double kZ95 = 1.959964;

struct WilsonInterval {
    double estimate = 0; // successes / n (NaN when n == 0)
    double low = 0;
    double high = 1;
};

// Wilson score interval of the proportion successes/n. successes may be fractional (a tie counts
// 1/2). n == 0 gives the uninformative [0, 1] with a NaN estimate. Throws dpo::Error when
// successes is outside [0, n] or n < 0.
WilsonInterval wilson(double successes, double n, double z = kZ95);

// How many more judgments, all at the currently observed rate successes/n, make the Wilson interval
// exclude 0.5: the smallest m >= 0 with 0.5 outside wilson(p*(n+m), n+m, z). 0 when already
// separated; -1 when it never happens (observed rate exactly 0.5, n == 0) or would need more than
// INT_MAX judgments. Uses 0.5 outside the interval <=> N > z^2 / (4 (p - 0.5)^2).
int judgmentsToSeparate(double successes, double n, double z = kZ95);

// Percentile bootstrap interval of a mean score: resamples `scores` (1 win, 0.5 tie, 0 loss) with
// replacement `rounds` times from std::mt19937_64(seed) and returns the (1-level)/2 and (1+level)/2
// percentiles (linear interpolation between order statistics). Empty scores or rounds == 0 give
// NaN bounds.
struct PercentileInterval {
    double low = 0;
    double high = 0;
};
PercentileInterval bootstrapMeanScore(
    const std::vector<double> &scores, int rounds, std::uint64_t seed, double level = 0.95);

// Linear-interpolation percentile (q in [0, 1]) of unsorted values, as numpy's default.
double percentile(std::vector<double> values, double q);

enum class BattleOutcome { AWins, BWins, Tie, BothBad };

// "model_a", "model_b", "tie", "both_bad"; throws dpo::Error naming the value otherwise.
BattleOutcome parseBattleOutcome(const std::string &winner);
const char *battleOutcomeName(BattleOutcome outcome);

// One judgment between two models given by index into a model list.
struct IndexedBattle {
    int a = 0;
    int b = 0;
    BattleOutcome outcome = BattleOutcome::Tie;
};

// Score of A in a battle: 1, 0, or 1/2 for tie and both_bad.
double scoreOfA(BattleOutcome outcome);

// Aggregated battles: wins[i][j] = score of i against j (ties 1/2 each way), games[i][j] = games
// between i and j (symmetric). The Bradley–Terry likelihood depends on the battles only through these.
struct PairCounts {
    int models = 0;
    std::vector<double> wins; // models x models, row-major
    std::vector<double> games; // models x models, row-major
    explicit PairCounts(int n = 0)
        : models(n)
        , wins(size_t(n) * n, 0.0)
        , games(size_t(n) * n, 0.0)
    {
    }
    double &w(int i, int j) { return wins[size_t(i) * models + j]; }
    double w(int i, int j) const { return wins[size_t(i) * models + j]; }
    double &g(int i, int j) { return games[size_t(i) * models + j]; }
    double g(int i, int j) const { return games[size_t(i) * models + j]; }
    void add(const IndexedBattle &b);
};

PairCounts countBattles(int models, const std::vector<IndexedBattle> &battles);

// True when the maximum-likelihood Bradley–Terry fit exists and is unique (Hunter 2004, assumption
// 1): in the graph "i scored against j" every model reaches every other. It fails for disconnected
// groups of models and for models that never lost (or never won) any point.
bool bradleyTerryMleExists(const PairCounts &counts);

struct BradleyTerryFit {
    std::vector<double> theta; // natural log-strengths, theta[baseline] == 0
    std::vector<double> ratings; // Elo scale: 1000 + 400 log10(strength / strength_baseline)
    std::vector<double> standardErrors; // asymptotic Elo standard errors relative to the baseline
                                        // (inverse observed information); 0 for the baseline
    double prior = 0; // virtual ties per pair added (0 when the MLE existed)
    int iterations = 0;
    bool converged = false;
};

// Default weight of the fallback prior: 0.01 of a game per pair, negligible against real counts.
constexpr double kDefaultBradleyTerryPrior = 0.01;

// The Elo points of one natural-log unit of strength: 400 / ln 10.
constexpr double kEloPerNat = 173.71779276130073;

// Maximum-likelihood Bradley–Terry fit by Newton's method on the concave log-likelihood in
// log-strengths (baseline fixed at 0) with backtracking, to |step| < 1e-12 nats. Ties (and
// both_bad) count as half a win each way. When the MLE does not exist (bradleyTerryMleExists false)
// it adds `prior` virtual ties between every pair of models (a symmetric shrinkage toward equal
// strengths that keeps undefeated or disconnected models finite) and reports it in fit.prior;
// otherwise no prior is used at all. Throws dpo::Error for an invalid baseline or prior <= 0 when needed.
BradleyTerryFit fitBradleyTerry(const PairCounts &counts, int baseline, double prior = kDefaultBradleyTerryPrior);

struct RatingsOptions {
    int baseline = 0; // index of the baseline model (rating 1000)
    int bootstrap = 1000; // resamples of the battles; 0 disables the intervals
    std::uint64_t seed = 0; // std::mt19937_64 seed for the bootstrap
    double z = kZ95; // Wilson quantile
    double prior = kDefaultBradleyTerryPrior; // fallback prior weight (see fitBradleyTerry)
};

struct ModelRating {
    int index = 0;
    double rating = 1000;
    double ratingLow = 0, ratingHigh = 0; // bootstrap percentile 95% interval (NaN without bootstrap)
    double standardError = 0; // asymptotic Elo standard error (relative to the baseline)
    // Against the baseline, from the battles between the two only (NaN for the baseline itself and
    // for a model that never met the baseline).
    int n = 0; // battles against the baseline
    int wins = 0, losses = 0, ties = 0, bothBad = 0;
    double winRate = 0; // (wins + (ties + bothBad)/2) / n
    WilsonInterval wilson;
    PercentileInterval winBootstrap; // bootstrap of the n battles against the baseline
    int judgmentsToSeparate = -1; // see judgmentsToSeparate()
    int battles = 0; // battles of this model against anyone
};

struct RatingsReport {
    std::vector<ModelRating> models; // same order as the model list (sort for display yourself)
    double prior = 0; // prior used by the point fit (0: plain MLE)
    int bootstrapRegularized = 0; // resamples whose fit needed the prior
    int iterations = 0; // Newton iterations of the point fit
};

// Fits Bradley–Terry, bootstraps it (resampling whole battles with replacement; the baseline stays
// at 1000 in every resample, so its interval is [1000, 1000]) and computes the win rates against the
// baseline. Throws dpo::Error on empty battles, bad indices, a baseline without battles, bootstrap < 0.
RatingsReport computeRatings(int models, const std::vector<IndexedBattle> &battles, const RatingsOptions &options);

} // namespace dpo
