#include "engine/evaluation/statistics.h"

#include "engine/error.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <limits>
#include <random>
#include <string>

namespace dpo {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// std::uniform_int_distribution differs between standard libraries; this rejection sampler gives
// the same indices for the same seed everywhere, which the reproducibility of reports relies on.
std::uint64_t uniformIndex(std::mt19937_64 &rng, std::uint64_t n)
{
    const std::uint64_t limit = UINT64_MAX - UINT64_MAX % n; // a multiple of n
    std::uint64_t x;
    do {
        x = rng();
    } while (x >= limit);
    return x % n;
}

// Decorrelates per-model seeds derived from one user seed.
std::uint64_t splitmix64(std::uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

// log(sigmoid(x)) without overflow for large |x|.
double logSigmoid(double x)
{
    return x >= 0 ? -std::log1p(std::exp(-x)) : x - std::log1p(std::exp(x));
}

double sigmoid(double x)
{
    if (x >= 0)
        return 1.0 / (1.0 + std::exp(-x));
    const double e = std::exp(x);
    return e / (1.0 + e);
}

// Solves A x = b in place (A n x n row-major, symmetric positive definite here, but partial pivoting
// costs nothing at these sizes and survives near-singular systems). Returns false when singular.
bool solveLinear(std::vector<double> a, std::vector<double> &b, int n)
{
    for (int col = 0; col < n; ++col) {
        int pivot = col;
        for (int r = col + 1; r < n; ++r)
            if (std::abs(a[size_t(r) * n + col]) > std::abs(a[size_t(pivot) * n + col]))
                pivot = r;
        if (std::abs(a[size_t(pivot) * n + col]) < 1e-300)
            return false;
        if (pivot != col) {
            for (int c = 0; c < n; ++c)
                std::swap(a[size_t(col) * n + c], a[size_t(pivot) * n + c]);
            std::swap(b[col], b[pivot]);
        }
        for (int r = col + 1; r < n; ++r) {
            const double f = a[size_t(r) * n + col] / a[size_t(col) * n + col];
            if (f == 0)
                continue;
            for (int c = col; c < n; ++c)
                a[size_t(r) * n + c] -= f * a[size_t(col) * n + c];
            b[r] -= f * b[col];
        }
    }
    for (int r = n - 1; r >= 0; --r) {
        double s = b[r];
        for (int c = r + 1; c < n; ++c)
            s -= a[size_t(r) * n + c] * b[c];
        b[r] = s / a[size_t(r) * n + r];
    }
    return true;
}

// Log-likelihood of log-strengths theta given (possibly prior-augmented) counts.
double logLikelihood(const PairCounts &c, const std::vector<double> &theta)
{
    double ll = 0;
    for (int i = 0; i < c.models; ++i)
        for (int j = 0; j < c.models; ++j)
            if (i != j && c.w(i, j) > 0)
                ll += c.w(i, j) * logSigmoid(theta[i] - theta[j]);
    return ll;
}

// Negative Hessian of the log-likelihood over all models (the observed information).
std::vector<double> information(const PairCounts &c, const std::vector<double> &theta)
{
    const int k = c.models;
    std::vector<double> info(size_t(k) * k, 0.0);
    for (int i = 0; i < k; ++i)
        for (int j = i + 1; j < k; ++j) {
            if (c.g(i, j) <= 0)
                continue;
            const double p = sigmoid(theta[i] - theta[j]);
            const double v = c.g(i, j) * p * (1 - p);
            info[size_t(i) * k + i] += v;
            info[size_t(j) * k + j] += v;
            info[size_t(i) * k + j] -= v;
            info[size_t(j) * k + i] -= v;
        }
    return info;
}

// The information matrix without the baseline's row and column (its theta is fixed at 0).
std::vector<double> reduced(const std::vector<double> &m, int k, int baseline)
{
    std::vector<double> r;
    r.reserve(size_t(k - 1) * (k - 1));
    for (int i = 0; i < k; ++i)
        for (int j = 0; j < k; ++j)
            if (i != baseline && j != baseline)
                r.push_back(m[size_t(i) * k + j]);
    return r;
}

} // namespace

WilsonInterval wilson(double successes, double n, double z)
{
    if (!(n >= 0) || !std::isfinite(n))
        throw Error("wilson: number of games must be >= 0 (got " + std::to_string(n) + ")");
    if (!(successes >= -1e-9 && successes <= n + 1e-9))
        throw Error("wilson: successes " + std::to_string(successes) + " outside [0, " + std::to_string(n) + "]");
    if (n == 0)
        return { kNaN, 0.0, 1.0 };
    const double p = std::clamp(successes / n, 0.0, 1.0);
    const double z2 = z * z;
    const double denom = 1 + z2 / n;
    const double centre = (p + z2 / (2 * n)) / denom;
    const double half = z / denom * std::sqrt(p * (1 - p) / n + z2 / (4 * n * n));
    return { p, std::max(0.0, centre - half), std::min(1.0, centre + half) };
}

int judgmentsToSeparate(double successes, double n, double z)
{
    if (!(n > 0))
        return -1;
    const double p = successes / n;
    const double d = std::abs(p - 0.5);
    if (d == 0)
        return -1;
    // 0.5 lies outside the Wilson interval of rate p on N games iff (p - 0.5)^2 > z^2 * 0.25 / N.
    const double needed = z * z / (4 * d * d);
    if (needed - n > double(INT_MAX) - 2)
        return -1;
    auto separated = [&](long long m) {
        const double total = n + double(m);
        const WilsonInterval w = wilson(p * total, total, z);
        return w.low > 0.5 || w.high < 0.5;
    };
    long long m = needed < n ? 0 : static_cast<long long>(std::floor(needed - n)) + 1;
    // The closed form can be off by one at the boundary through rounding: agree with wilson() exactly.
    while (m > 0 && separated(m - 1))
        --m;
    while (!separated(m) && m < INT_MAX)
        ++m;
    return static_cast<int>(m);
}

double percentile(std::vector<double> values, double q)
{
    if (values.empty())
        return kNaN;
    std::sort(values.begin(), values.end());
    const double pos = std::clamp(q, 0.0, 1.0) * double(values.size() - 1);
    const size_t lo = static_cast<size_t>(std::floor(pos));
    const size_t hi = std::min(lo + 1, values.size() - 1);
    const double frac = pos - double(lo);
    return values[lo] + (values[hi] - values[lo]) * frac;
}

PercentileInterval bootstrapMeanScore(const std::vector<double> &scores, int rounds, std::uint64_t seed, double level)
{
    if (scores.empty() || rounds <= 0)
        return { kNaN, kNaN };
    std::mt19937_64 rng(seed);
    std::vector<double> means(static_cast<size_t>(rounds));
    const std::uint64_t n = scores.size();
    for (int r = 0; r < rounds; ++r) {
        double sum = 0;
        for (std::uint64_t i = 0; i < n; ++i)
            sum += scores[uniformIndex(rng, n)];
        means[size_t(r)] = sum / double(n);
    }
    return { percentile(means, (1 - level) / 2), percentile(means, (1 + level) / 2) };
}

BattleOutcome parseBattleOutcome(const std::string &winner)
{
    if (winner == "model_a")
        return BattleOutcome::AWins;
    if (winner == "model_b")
        return BattleOutcome::BWins;
    if (winner == "tie")
        return BattleOutcome::Tie;
    if (winner == "both_bad")
        return BattleOutcome::BothBad;
    throw Error("unknown winner \"" + winner + "\" (expected model_a, model_b, tie or both_bad)");
}

const char *battleOutcomeName(BattleOutcome outcome)
{
    switch (outcome) {
    case BattleOutcome::AWins:
        return "model_a";
    case BattleOutcome::BWins:
        return "model_b";
    case BattleOutcome::Tie:
        return "tie";
    case BattleOutcome::BothBad:
        return "both_bad";
    }
    return "tie";
}

double scoreOfA(BattleOutcome outcome)
{
    switch (outcome) {
    case BattleOutcome::AWins:
        return 1.0;
    case BattleOutcome::BWins:
        return 0.0;
    case BattleOutcome::Tie:
    case BattleOutcome::BothBad:
        return 0.5;
    }
    return 0.5;
}

void PairCounts::add(const IndexedBattle &b)
{
    const double s = scoreOfA(b.outcome);
    w(b.a, b.b) += s;
    w(b.b, b.a) += 1 - s;
    g(b.a, b.b) += 1;
    g(b.b, b.a) += 1;
}

PairCounts countBattles(int models, const std::vector<IndexedBattle> &battles)
{
    PairCounts c(models);
    for (const IndexedBattle &b : battles) {
        if (b.a < 0 || b.a >= models || b.b < 0 || b.b >= models || b.a == b.b)
            throw Error("battle between models " + std::to_string(b.a) + " and " + std::to_string(b.b)
                + " is invalid for " + std::to_string(models) + " models");
        c.add(b);
    }
    return c;
}

bool bradleyTerryMleExists(const PairCounts &c)
{
    const int k = c.models;
    if (k <= 1)
        return k == 1;
    // Transitive closure of "i scored a point against j"; k is a handful of models.
    std::vector<char> reach(size_t(k) * k, 0);
    for (int i = 0; i < k; ++i)
        for (int j = 0; j < k; ++j)
            reach[size_t(i) * k + j] = (i == j) || c.w(i, j) > 0;
    for (int m = 0; m < k; ++m)
        for (int i = 0; i < k; ++i)
            if (reach[size_t(i) * k + m])
                for (int j = 0; j < k; ++j)
                    if (reach[size_t(m) * k + j])
                        reach[size_t(i) * k + j] = 1;
    return std::all_of(reach.begin(), reach.end(), [](char r) { return r != 0; });
}

BradleyTerryFit fitBradleyTerry(const PairCounts &counts, int baseline, double prior)
{
    const int k = counts.models;
    if (baseline < 0 || baseline >= k)
        throw Error("Bradley-Terry baseline index " + std::to_string(baseline) + " out of range");
    BradleyTerryFit fit;
    fit.theta.assign(size_t(k), 0.0);
    fit.ratings.assign(size_t(k), 1000.0);
    fit.standardErrors.assign(size_t(k), 0.0);
    if (k == 1) {
        fit.converged = true;
        return fit;
    }

    PairCounts c = counts;
    if (!bradleyTerryMleExists(counts)) {
        if (!(prior > 0))
            throw Error("Bradley-Terry fit: the maximum-likelihood estimate does not exist (a model never lost, "
                        "never won, or a group of models never met the others) and no prior was allowed");
        // Virtual ties between every pair: symmetric, so it only shrinks toward equal strengths.
        for (int i = 0; i < k; ++i)
            for (int j = 0; j < k; ++j)
                if (i != j) {
                    c.w(i, j) += prior / 2;
                    c.g(i, j) += prior;
                }
        fit.prior = prior;
    }

    std::vector<double> theta(size_t(k), 0.0);
    double ll = logLikelihood(c, theta);
    const int nFree = k - 1;
    constexpr int kMaxIterations = 500;
    for (int it = 1; it <= kMaxIterations; ++it) {
        fit.iterations = it;
        std::vector<double> grad;
        grad.reserve(size_t(nFree));
        for (int i = 0; i < k; ++i) {
            if (i == baseline)
                continue;
            double gi = 0;
            for (int j = 0; j < k; ++j)
                if (j != i && c.g(i, j) > 0)
                    gi += c.w(i, j) - c.g(i, j) * sigmoid(theta[i] - theta[j]);
            grad.push_back(gi);
        }
        std::vector<double> step = grad;
        if (!solveLinear(reduced(information(c, theta), k, baseline), step, nFree))
            break;
        // Backtracking keeps the likelihood increasing; the objective is concave, so a full Newton
        // step is accepted near the optimum and convergence is quadratic.
        double t = 1.0;
        std::vector<double> next(theta);
        double nextLl = ll;
        for (int halvings = 0; halvings < 60; ++halvings, t /= 2) {
            int f = 0;
            for (int i = 0; i < k; ++i)
                if (i != baseline)
                    next[size_t(i)] = theta[size_t(i)] + t * step[size_t(f++)];
            nextLl = logLikelihood(c, next);
            if (nextLl >= ll - 1e-12 * std::max(1.0, std::abs(ll)))
                break;
        }
        double maxStep = 0;
        for (double s : step)
            maxStep = std::max(maxStep, std::abs(t * s));
        theta = next;
        ll = nextLl;
        if (maxStep < 1e-12) {
            fit.converged = true;
            break;
        }
    }

    fit.theta = theta;
    for (int i = 0; i < k; ++i)
        fit.ratings[size_t(i)] = 1000.0 + kEloPerNat * (theta[size_t(i)] - theta[size_t(baseline)]);
    // Standard errors: diagonal of the inverse reduced information, column by column.
    const std::vector<double> info = reduced(information(c, theta), k, baseline);
    int f = 0;
    for (int i = 0; i < k; ++i) {
        if (i == baseline)
            continue;
        std::vector<double> e(size_t(nFree), 0.0);
        e[size_t(f)] = 1.0;
        if (solveLinear(info, e, nFree) && e[size_t(f)] > 0)
            fit.standardErrors[size_t(i)] = kEloPerNat * std::sqrt(e[size_t(f)]);
        else
            fit.standardErrors[size_t(i)] = kNaN;
        ++f;
    }
    return fit;
}

RatingsReport computeRatings(int models, const std::vector<IndexedBattle> &battles, const RatingsOptions &options)
{
    if (models < 1)
        throw Error("ratings: no models");
    if (battles.empty())
        throw Error("ratings: no battles");
    if (options.bootstrap < 0)
        throw Error("ratings: bootstrap rounds must be >= 0 (got " + std::to_string(options.bootstrap) + ")");
    if (options.baseline < 0 || options.baseline >= models)
        throw Error("ratings: baseline index " + std::to_string(options.baseline) + " out of range");
    const PairCounts counts = countBattles(models, battles);
    const int base = options.baseline;

    RatingsReport report;
    report.models.resize(size_t(models));
    for (const IndexedBattle &b : battles) {
        report.models[size_t(b.a)].battles++;
        report.models[size_t(b.b)].battles++;
    }
    if (report.models[size_t(base)].battles == 0)
        throw Error("ratings: the baseline has no battles");

    const BradleyTerryFit fit = fitBradleyTerry(counts, base, options.prior);
    report.prior = fit.prior;
    report.iterations = fit.iterations;

    // Bootstrap: resample whole battles, refit. Counts are accumulated directly from the drawn
    // indices, so a round costs one pass over the battles plus a k x k Newton fit.
    std::vector<std::vector<double>> samples(static_cast<size_t>(models));
    if (options.bootstrap > 0) {
        std::mt19937_64 rng(options.seed);
        const std::uint64_t n = battles.size();
        for (auto &s : samples)
            s.reserve(size_t(options.bootstrap));
        for (int r = 0; r < options.bootstrap; ++r) {
            PairCounts c(models);
            for (std::uint64_t i = 0; i < n; ++i)
                c.add(battles[uniformIndex(rng, n)]);
            const BradleyTerryFit f = fitBradleyTerry(c, base, options.prior);
            if (f.prior > 0)
                report.bootstrapRegularized++;
            for (int m = 0; m < models; ++m)
                samples[size_t(m)].push_back(f.ratings[size_t(m)]);
        }
    }

    for (int m = 0; m < models; ++m) {
        ModelRating &r = report.models[size_t(m)];
        r.index = m;
        r.rating = fit.ratings[size_t(m)];
        r.standardError = fit.standardErrors[size_t(m)];
        r.ratingLow = options.bootstrap > 0 ? percentile(samples[size_t(m)], 0.025) : kNaN;
        r.ratingHigh = options.bootstrap > 0 ? percentile(samples[size_t(m)], 0.975) : kNaN;

        r.winRate = kNaN;
        r.wilson = { kNaN, kNaN, kNaN };
        r.winBootstrap = { kNaN, kNaN };
        if (m == base)
            continue;
        std::vector<double> scores; // scores of m in its battles against the baseline
        for (const IndexedBattle &b : battles) {
            if (!((b.a == m && b.b == base) || (b.a == base && b.b == m)))
                continue;
            const double s = b.a == m ? scoreOfA(b.outcome) : 1 - scoreOfA(b.outcome);
            scores.push_back(s);
            if (b.outcome == BattleOutcome::BothBad)
                r.bothBad++;
            else if (b.outcome == BattleOutcome::Tie)
                r.ties++;
            else if (s > 0.5)
                r.wins++;
            else
                r.losses++;
        }
        r.n = static_cast<int>(scores.size());
        if (r.n == 0)
            continue;
        const double successes = r.wins + 0.5 * (r.ties + r.bothBad);
        r.winRate = successes / r.n;
        r.wilson = wilson(successes, r.n, options.z);
        r.winBootstrap = bootstrapMeanScore(scores, options.bootstrap, splitmix64(options.seed ^ std::uint64_t(m + 1)));
        r.judgmentsToSeparate = judgmentsToSeparate(successes, r.n, options.z);
    }
    return report;
}

} // namespace dpo
