#include "project/agreement.h"

#include <cmath>
#include <limits>

namespace dpo {

static const double kNaN = std::numeric_limits<double>::quiet_NaN();

double cohenKappa(const std::vector<std::pair<int, int>> &ratings, int categories)
{
    if (ratings.empty() || categories <= 0)
        return kNaN;
    std::vector<double> rowA(categories, 0.0), rowB(categories, 0.0);
    double agree = 0;
    for (const auto &r : ratings) {
        if (r.first < 0 || r.first >= categories || r.second < 0 || r.second >= categories)
            continue;
        rowA[r.first] += 1;
        rowB[r.second] += 1;
        if (r.first == r.second)
            agree += 1;
    }
    const double n = double(ratings.size());
    const double po = agree / n;
    double pe = 0;
    for (int c = 0; c < categories; ++c)
        pe += (rowA[c] / n) * (rowB[c] / n);
    if (std::abs(1.0 - pe) < 1e-12)
        return kNaN;
    return (po - pe) / (1.0 - pe);
}

double fleissKappa(const std::vector<std::vector<int>> &counts)
{
    double sumP = 0;
    int items = 0;
    std::vector<double> catTotals;
    double allRatings = 0;
    for (const auto &row : counts) {
        double n = 0, sq = 0;
        for (int c : row) {
            n += c;
            sq += double(c) * c;
        }
        if (n < 2)
            continue;
        if (catTotals.size() < row.size())
            catTotals.resize(row.size(), 0.0);
        for (size_t c = 0; c < row.size(); ++c)
            catTotals[c] += row[c];
        allRatings += n;
        sumP += (sq - n) / (n * (n - 1));
        ++items;
    }
    if (items == 0)
        return kNaN;
    const double pBar = sumP / items;
    double pe = 0;
    for (double t : catTotals)
        pe += (t / allRatings) * (t / allRatings);
    if (std::abs(1.0 - pe) < 1e-12)
        return kNaN;
    return (pBar - pe) / (1.0 - pe);
}

double krippendorffAlphaNominal(const std::vector<std::vector<int>> &counts)
{
    // Coincidence matrix o[c][k]: each ordered pair of values within a unit counts 1/(m_u - 1).
    size_t cats = 0;
    for (const auto &row : counts)
        cats = std::max(cats, row.size());
    std::vector<std::vector<double>> o(cats, std::vector<double>(cats, 0.0));
    for (const auto &row : counts) {
        double m = 0;
        for (int c : row)
            m += c;
        if (m < 2)
            continue;
        for (size_t c = 0; c < row.size(); ++c) {
            for (size_t k = 0; k < row.size(); ++k) {
                const double pairs = c == k ? double(row[c]) * (row[c] - 1) : double(row[c]) * row[k];
                o[c][k] += pairs / (m - 1);
            }
        }
    }
    std::vector<double> nc(cats, 0.0);
    double n = 0;
    for (size_t c = 0; c < cats; ++c) {
        for (size_t k = 0; k < cats; ++k)
            nc[c] += o[c][k];
        n += nc[c];
    }
    if (n < 2)
        return kNaN;
    double observed = 0, expected = 0;
    for (size_t c = 0; c < cats; ++c) {
        for (size_t k = 0; k < cats; ++k) {
            if (c == k)
                continue;
            observed += o[c][k];
            expected += nc[c] * nc[k];
        }
    }
    if (expected <= 0)
        return kNaN;
    return 1.0 - (n - 1) * observed / expected;
}

} // namespace dpo
