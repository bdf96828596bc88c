// Statistics of evaluations (engine/evaluation/statistics.h) against values derived independently: hand-worked
// Wilson intervals and Bradley–Terry fits, and a simulated league with known true strengths.
#include "engine/error.h"
#include "engine/evaluation/statistics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace test_statistics { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

using namespace dpo;

namespace {

std::vector<IndexedBattle> repeat(int a, int b, BattleOutcome o, int times, std::vector<IndexedBattle> v = {})
{
    for (int i = 0; i < times; ++i)
        v.push_back({ a, b, o });
    return v;
}

std::vector<IndexedBattle> concat(std::vector<IndexedBattle> x, const std::vector<IndexedBattle> &y)
{
    x.insert(x.end(), y.begin(), y.end());
    return x;
}

// Portable uniform double in [0, 1) (std distributions differ between standard libraries).
double uniform01(std::mt19937_64 &rng)
{
    return double(rng() >> 11) * 0x1.0p-53;
}

// Battles drawn from a Bradley–Terry model with true Elo ratings `truth`: a uniformly random pair,
// then a tie (5%) or both_bad (5%), else a decisive result with the A-win probability adjusted so
// that A's expected score (ties 1/2) is exactly the Bradley–Terry probability. The MLE that counts
// ties as half a win is then consistent for `truth`.
std::vector<IndexedBattle> simulateLeague(const std::vector<double> &truth, int n, std::uint64_t seed)
{
    std::mt19937_64 rng(seed);
    const int k = static_cast<int>(truth.size());
    std::vector<IndexedBattle> battles;
    battles.reserve(size_t(n));
    while (static_cast<int>(battles.size()) < n) {
        const int a = static_cast<int>(uniform01(rng) * k);
        const int b = static_cast<int>(uniform01(rng) * k);
        if (a == b)
            continue;
        const double p = 1.0 / (1.0 + std::pow(10.0, (truth[size_t(b)] - truth[size_t(a)]) / 400.0));
        const double u = uniform01(rng);
        BattleOutcome o;
        if (u < 0.05)
            o = BattleOutcome::Tie;
        else if (u < 0.10)
            o = BattleOutcome::BothBad;
        else
            o = uniform01(rng) < (p - 0.05) / 0.90 ? BattleOutcome::AWins : BattleOutcome::BWins;
        battles.push_back({ a, b, o });
    }
    return battles;
}

// Probability that a model rated ra scores against rb under Bradley–Terry on the Elo scale.
double eloProbability(double ra, double rb)
{
    return 1.0 / (1.0 + std::pow(10.0, (rb - ra) / 400.0));
}

} // namespace

TEST(Wilson, HandWorkedSevenOfTen)
{
    // n = 10, p = 0.7, z = 1.959964, z^2 = 3.8414588...:
    //   centre = (0.7 + z^2/20) / (1 + z^2/10) = 0.89207294 / 1.38414588 = 0.64449344
    //   half   = z / 1.38414588 * sqrt(0.021 + z^2/400) = 1.41600... * 0.17493898 = 0.24771529
    // giving [0.39677815, 0.89220873], the usual published Wilson interval for 7/10.
    const WilsonInterval w = wilson(7, 10, 1.959964);
    EXPECT_NEAR(w.estimate, 0.7, 1e-12);
    EXPECT_NEAR(w.low, 0.39677815, 1e-7);
    EXPECT_NEAR(w.high, 0.89220873, 1e-7);
    // 7 of 20 and 13 of 20 mirror each other.
    const WilsonInterval a = wilson(7, 20);
    const WilsonInterval b = wilson(13, 20);
    EXPECT_NEAR(a.low, 0.18119182, 1e-7);
    EXPECT_NEAR(a.high, 0.56714572, 1e-7);
    EXPECT_NEAR(a.low, 1 - b.high, 1e-12);
    EXPECT_NEAR(a.high, 1 - b.low, 1e-12);
}

TEST(Wilson, EdgesAndErrors)
{
    const WilsonInterval none = wilson(0, 0);
    EXPECT_TRUE(std::isnan(none.estimate));
    EXPECT_EQ(none.low, 0.0);
    EXPECT_EQ(none.high, 1.0);
    // All wins: the interval stays below 1 on the low side and reaches 1 exactly on the high side;
    // for n = 10 the lower bound is n / (n + z^2) = 10 / 13.8414588 = 0.72246...
    const WilsonInterval all = wilson(10, 10);
    EXPECT_NEAR(all.low, 10 / (10 + 1.959964 * 1.959964), 1e-12);
    EXPECT_NEAR(all.high, 1.0, 1e-12);
    EXPECT_THROW(wilson(11, 10), Error);
    EXPECT_THROW(wilson(-1, 10), Error);
    EXPECT_THROW(wilson(1, -1), Error);
}

TEST(Wilson, TiesCountHalf)
{
    // 6 wins, 2 ties, 2 losses scores 7 of 10.
    const auto battles = concat(concat(repeat(1, 0, BattleOutcome::AWins, 6), repeat(0, 1, BattleOutcome::Tie, 2)),
        repeat(1, 0, BattleOutcome::BWins, 2));
    RatingsOptions opt;
    opt.bootstrap = 0;
    const RatingsReport r = computeRatings(2, battles, opt);
    const ModelRating &m = r.models[1];
    EXPECT_EQ(m.n, 10);
    EXPECT_EQ(m.wins, 6);
    EXPECT_EQ(m.ties, 2);
    EXPECT_EQ(m.losses, 2);
    EXPECT_NEAR(m.winRate, 0.7, 1e-12);
    EXPECT_NEAR(m.wilson.low, 0.39677815, 1e-7);
    EXPECT_NEAR(m.wilson.high, 0.89220873, 1e-7);
    EXPECT_NEAR(m.rating - 1000.0, 400 * std::log10(7.0 / 3.0), 1e-9);
}

TEST(BradleyTerry, TwoModelsSevenThree)
{
    // Model 1 beats model 0 seven times out of ten: the MLE strength ratio is 7/3.
    const auto battles = concat(repeat(1, 0, BattleOutcome::AWins, 7), repeat(0, 1, BattleOutcome::AWins, 3));
    const BradleyTerryFit fit = fitBradleyTerry(countBattles(2, battles), 0);
    EXPECT_TRUE(fit.converged);
    EXPECT_EQ(fit.prior, 0.0);
    EXPECT_EQ(fit.ratings[0], 1000.0);
    EXPECT_NEAR(fit.ratings[1] - 1000.0, 400 * std::log10(7.0 / 3.0), 1e-9); // 147.1907...
    // Asymptotic SE of the log-odds: sqrt(1/(n p (1-p))) = sqrt(1/2.1) nats.
    EXPECT_NEAR(fit.standardErrors[1], 400 / std::log(10.0) * std::sqrt(1 / 2.1), 1e-6);
    // The other baseline mirrors it.
    const BradleyTerryFit other = fitBradleyTerry(countBattles(2, battles), 1);
    EXPECT_EQ(other.ratings[1], 1000.0);
    EXPECT_NEAR(other.ratings[0], 1000.0 - 400 * std::log10(7.0 / 3.0), 1e-9);
}

TEST(BradleyTerry, TiesAndBothBadAreHalfWins)
{
    // 6 wins, 2 losses, 1 tie, 1 both_bad (sides mixed): score 7 of 10 as above.
    auto battles = repeat(1, 0, BattleOutcome::AWins, 4);
    battles = repeat(0, 1, BattleOutcome::BWins, 2, battles);
    battles = repeat(0, 1, BattleOutcome::AWins, 2, battles);
    battles = repeat(1, 0, BattleOutcome::Tie, 1, battles);
    battles = repeat(1, 0, BattleOutcome::BothBad, 1, battles);
    RatingsOptions opt;
    opt.bootstrap = 0;
    const RatingsReport r = computeRatings(2, battles, opt);
    EXPECT_NEAR(r.models[1].rating - 1000.0, 400 * std::log10(7.0 / 3.0), 1e-9);
    EXPECT_EQ(r.models[0].rating, 1000.0);
    EXPECT_EQ(r.models[1].wins, 6);
    EXPECT_EQ(r.models[1].losses, 2);
    EXPECT_EQ(r.models[1].ties, 1);
    EXPECT_EQ(r.models[1].bothBad, 1);
    EXPECT_NEAR(r.models[1].winRate, 0.7, 1e-12);
    EXPECT_TRUE(std::isnan(r.models[0].winRate)); // the baseline has no win rate against itself
    EXPECT_EQ(r.models[0].n, 0);
    EXPECT_TRUE(std::isnan(r.models[1].ratingLow)); // no bootstrap asked
}

TEST(BradleyTerry, ThreeModelsExactlyConsistent)
{
    // Strengths 4 : 2 : 1. A-B 4-2 (2/3), B-C 4-2 (2/3), A-C 8-2 (4/5) are exactly the BT
    // probabilities, and the score equations hold at (4, 2, 1): A expects 6*2/3 + 10*4/5 = 12 and
    // scored 12; B expects 6*1/3 + 6*2/3 = 6 and scored 6. So the MLE is B = 1000 - 400 log10 2,
    // C = 1000 - 400 log10 4 with A as baseline.
    auto battles = repeat(0, 1, BattleOutcome::AWins, 4);
    battles = repeat(0, 1, BattleOutcome::BWins, 2, battles);
    battles = repeat(1, 2, BattleOutcome::AWins, 4, battles);
    battles = repeat(2, 1, BattleOutcome::AWins, 2, battles);
    battles = repeat(2, 0, BattleOutcome::BWins, 8, battles);
    battles = repeat(0, 2, BattleOutcome::BWins, 2, battles);
    const BradleyTerryFit fit = fitBradleyTerry(countBattles(3, battles), 0);
    EXPECT_TRUE(fit.converged);
    EXPECT_NEAR(fit.ratings[1], 1000 - 400 * std::log10(2.0), 1e-9);
    EXPECT_NEAR(fit.ratings[2], 1000 - 400 * std::log10(4.0), 1e-9);
    // A cycle (A > B > C > A, each 2-1) makes everyone equal.
    auto cycle = repeat(0, 1, BattleOutcome::AWins, 2);
    cycle = repeat(1, 0, BattleOutcome::AWins, 1, cycle);
    cycle = repeat(1, 2, BattleOutcome::AWins, 2, cycle);
    cycle = repeat(2, 1, BattleOutcome::AWins, 1, cycle);
    cycle = repeat(2, 0, BattleOutcome::AWins, 2, cycle);
    cycle = repeat(0, 2, BattleOutcome::AWins, 1, cycle);
    const BradleyTerryFit eq = fitBradleyTerry(countBattles(3, cycle), 2);
    for (double r : eq.ratings)
        EXPECT_NEAR(r, 1000.0, 1e-9);
}

TEST(BradleyTerry, PriorOnlyWhenTheMleDoesNotExist)
{
    // Undefeated: 5-0. No finite MLE; the fallback prior keeps it finite and is reported.
    const auto undefeated = repeat(1, 0, BattleOutcome::AWins, 5);
    EXPECT_FALSE(bradleyTerryMleExists(countBattles(2, undefeated)));
    const BradleyTerryFit u = fitBradleyTerry(countBattles(2, undefeated), 0);
    EXPECT_EQ(u.prior, kDefaultBradleyTerryPrior);
    EXPECT_TRUE(u.converged);
    // With 0.01 virtual games split as ties: ratio (5.005 / 0.005) exactly.
    EXPECT_NEAR(u.ratings[1] - 1000, 400 * std::log10(5.005 / 0.005), 1e-6);
    EXPECT_THROW(fitBradleyTerry(countBattles(2, undefeated), 0, 0.0), Error);

    // Two groups that never met: finite, and within each group the order is kept.
    auto groups = concat(repeat(0, 1, BattleOutcome::AWins, 3), repeat(1, 0, BattleOutcome::AWins, 2));
    groups = concat(groups, concat(repeat(2, 3, BattleOutcome::AWins, 3), repeat(3, 2, BattleOutcome::AWins, 2)));
    EXPECT_FALSE(bradleyTerryMleExists(countBattles(4, groups)));
    const BradleyTerryFit g = fitBradleyTerry(countBattles(4, groups), 0);
    EXPECT_GT(g.prior, 0.0);
    EXPECT_TRUE(g.converged);
    for (double r : g.ratings)
        EXPECT_TRUE(std::isfinite(r));
    EXPECT_LT(g.ratings[1], g.ratings[0]);
    EXPECT_LT(g.ratings[3], g.ratings[2]);

    // A tie alone is enough for existence (half a point each way).
    EXPECT_TRUE(bradleyTerryMleExists(countBattles(2, repeat(0, 1, BattleOutcome::Tie, 1))));
}

TEST(BradleyTerry, SimulatedLeagueRecoversTruth)
{
    const std::vector<double> truth = { 1000, 1080, 940, 1180, 1030 };
    const auto battles = simulateLeague(truth, 20000, 20240611);
    RatingsOptions opt;
    opt.baseline = 0;
    opt.bootstrap = 1000;
    opt.seed = 7;
    const RatingsReport r = computeRatings(5, battles, opt);
    EXPECT_EQ(r.prior, 0.0);
    EXPECT_EQ(r.bootstrapRegularized, 0);

    // The fit satisfies the score equations: each model's points equal its expected points.
    const PairCounts c = countBattles(5, battles);
    for (int i = 0; i < 5; ++i) {
        double observed = 0, expected = 0;
        for (int j = 0; j < 5; ++j) {
            if (j == i)
                continue;
            observed += c.w(i, j);
            expected += c.g(i, j) * eloProbability(r.models[size_t(i)].rating, r.models[size_t(j)].rating);
        }
        EXPECT_NEAR(observed, expected, 1e-6) << "model " << i;
    }

    for (int i = 0; i < 5; ++i) {
        const ModelRating &m = r.models[size_t(i)];
        if (i == 0) {
            EXPECT_EQ(m.rating, 1000.0);
            EXPECT_EQ(m.ratingLow, 1000.0);
            EXPECT_EQ(m.ratingHigh, 1000.0);
            continue;
        }
        // About 2000 games per pair: the asymptotic SE is ~5 Elo. Within 4 SE, and well under 25.
        EXPECT_GT(m.standardError, 2.0);
        EXPECT_LT(m.standardError, 10.0);
        EXPECT_NEAR(m.rating, truth[size_t(i)], 4 * m.standardError) << "model " << i;
        // The bootstrap interval covers the truth and has the width the asymptotics predict.
        EXPECT_LE(m.ratingLow, truth[size_t(i)]) << "model " << i;
        EXPECT_GE(m.ratingHigh, truth[size_t(i)]) << "model " << i;
        const double width = m.ratingHigh - m.ratingLow;
        EXPECT_NEAR(width, 2 * kZ95 * m.standardError, 0.2 * width) << "model " << i;
        // Win rate against the baseline: its Wilson interval covers the true expected score.
        const double p = eloProbability(truth[size_t(i)], truth[0]);
        EXPECT_GT(m.n, 800);
        EXPECT_LE(m.wilson.low, p) << "model " << i;
        EXPECT_GE(m.wilson.high, p) << "model " << i;
        EXPECT_NEAR(m.winBootstrap.low, m.wilson.low, 0.01);
        EXPECT_NEAR(m.winBootstrap.high, m.wilson.high, 0.01);
    }
}

TEST(BradleyTerry, BootstrapCoverageOverManyLeagues)
{
    // 40 independent small leagues (1500 battles, 4 models): the fraction of 95% intervals
    // (bootstrap ratings and Wilson win rates) that cover the truth must be near 0.95. With 120
    // intervals the binomial SD is 0.02, so 0.87 is four SDs below.
    const std::vector<double> truth = { 1000, 1060, 910, 1130 };
    int ratingCovered = 0, wilsonCovered = 0, total = 0;
    for (int league = 0; league < 40; ++league) {
        RatingsOptions opt;
        opt.bootstrap = 200;
        opt.seed = 1000 + league;
        const RatingsReport r = computeRatings(4, simulateLeague(truth, 1500, 500 + league), opt);
        for (int i = 1; i < 4; ++i) {
            const ModelRating &m = r.models[size_t(i)];
            ++total;
            ratingCovered += m.ratingLow <= truth[size_t(i)] && truth[size_t(i)] <= m.ratingHigh;
            const double p = eloProbability(truth[size_t(i)], truth[0]);
            wilsonCovered += m.wilson.low <= p && p <= m.wilson.high;
        }
    }
    EXPECT_GE(double(ratingCovered) / total, 0.87);
    EXPECT_GE(double(wilsonCovered) / total, 0.87);
    // ... and not trivially wide.
    EXPECT_LE(double(ratingCovered) / total, 0.995);
}

TEST(Bootstrap, DeterministicFromSeed)
{
    const std::vector<double> truth = { 1000, 1050, 980 };
    const auto battles = simulateLeague(truth, 3000, 99);
    RatingsOptions opt;
    opt.bootstrap = 300;
    opt.seed = 42;
    const RatingsReport a = computeRatings(3, battles, opt);
    const RatingsReport b = computeRatings(3, battles, opt);
    opt.seed = 43;
    const RatingsReport c = computeRatings(3, battles, opt);
    bool differs = false;
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(a.models[size_t(i)].ratingLow, b.models[size_t(i)].ratingLow);
        EXPECT_EQ(a.models[size_t(i)].ratingHigh, b.models[size_t(i)].ratingHigh);
        if (i > 0) {
            EXPECT_EQ(a.models[size_t(i)].winBootstrap.low, b.models[size_t(i)].winBootstrap.low);
            EXPECT_EQ(a.models[size_t(i)].winBootstrap.high, b.models[size_t(i)].winBootstrap.high);
        }
        EXPECT_EQ(a.models[size_t(i)].rating, c.models[size_t(i)].rating); // the point fit has no randomness
        differs = differs || a.models[size_t(i)].ratingLow != c.models[size_t(i)].ratingLow;
    }
    EXPECT_TRUE(differs);
}

TEST(Bootstrap, MeanScoreInterval)
{
    // 70 wins of 100: a resampled mean is Binomial(100, 0.7) / 100, whose 2.5% and 97.5% quantiles
    // are 61 and 79 (P(X <= 60) = 0.021, P(X <= 61) = 0.034, P(X <= 78) = 0.971, P(X <= 79) = 0.984).
    // With 20000 rounds the order statistics at those ranks are these integers.
    std::vector<double> scores(100, 0.0);
    for (int i = 0; i < 70; ++i)
        scores[size_t(i)] = 1.0;
    const PercentileInterval a = bootstrapMeanScore(scores, 20000, 5);
    const PercentileInterval b = bootstrapMeanScore(scores, 20000, 5);
    EXPECT_EQ(a.low, b.low);
    EXPECT_EQ(a.high, b.high);
    EXPECT_NEAR(a.low, 0.61, 1e-9);
    EXPECT_NEAR(a.high, 0.79, 1e-9);
    EXPECT_TRUE(std::isnan(bootstrapMeanScore({}, 10, 1).low));
    // numpy.percentile([1, 2, 3, 4], 25) == 1.75
    EXPECT_DOUBLE_EQ(percentile({ 4, 1, 3, 2 }, 0.25), 1.75);
    EXPECT_DOUBLE_EQ(percentile({ 4, 1, 3, 2 }, 0.5), 2.5);
}

TEST(JudgmentsToSeparate, Sanity)
{
    // 7 of 10: 0.5 leaves the interval once N > z^2 / (4 * 0.2^2) = 3.8414588 / 0.16 = 24.009,
    // i.e. at 25 games: 15 more.
    EXPECT_EQ(judgmentsToSeparate(7, 10), 15);
    EXPECT_EQ(judgmentsToSeparate(3, 10), 15);
    const WilsonInterval at25 = wilson(0.7 * 25, 25);
    const WilsonInterval at24 = wilson(0.7 * 24, 24);
    EXPECT_GT(at25.low, 0.5);
    EXPECT_LT(at24.low, 0.5);
    EXPECT_EQ(judgmentsToSeparate(90, 100), 0); // already separated
    EXPECT_EQ(judgmentsToSeparate(5, 10), -1); // exactly even never separates
    EXPECT_EQ(judgmentsToSeparate(0, 0), -1);
    // 55% needs N > 3.8414588 / (4 * 0.0025) = 384.1 games.
    EXPECT_EQ(judgmentsToSeparate(55, 100), 285);
    // Monotone: a closer race needs more judgments.
    EXPECT_GT(judgmentsToSeparate(52, 100), judgmentsToSeparate(55, 100));
}

TEST(Ratings, BadInput)
{
    RatingsOptions opt;
    EXPECT_THROW(computeRatings(2, {}, opt), Error);
    EXPECT_THROW(computeRatings(2, { { 0, 0, BattleOutcome::Tie } }, opt), Error);
    EXPECT_THROW(computeRatings(2, { { 0, 2, BattleOutcome::Tie } }, opt), Error);
    opt.baseline = 2;
    EXPECT_THROW(computeRatings(3, { { 0, 1, BattleOutcome::Tie } }, opt), Error); // baseline never played
    opt.baseline = 0;
    opt.bootstrap = -1;
    EXPECT_THROW(computeRatings(2, { { 0, 1, BattleOutcome::Tie } }, opt), Error);
    EXPECT_THROW(parseBattleOutcome("draw"), Error);
    EXPECT_EQ(parseBattleOutcome("both_bad"), BattleOutcome::BothBad);
}

} // namespace test_statistics
