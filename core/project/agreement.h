// Inter-annotator agreement statistics on nominal categories: Cohen's kappa (two raters), Fleiss' kappa
// and Krippendorff's alpha (any number of raters, missing ratings allowed). Pure functions on counts;
// the store turns judgments into these inputs (see ProjectStore::agreement).
// Not here: confidence intervals, ordinal/interval metrics, weighting.
#pragma once

#include <utility>
#include <vector>

namespace dpo {

// Cohen's kappa of two raters over items both rated; ratings are category indices in [0, categories).
// NaN when undefined (no items, or expected agreement of 1).
double cohenKappa(const std::vector<std::pair<int, int>> &ratings, int categories);

// Fleiss' kappa. counts[i][c] = how many raters put item i in category c. Items with fewer than two
// ratings are ignored; a varying number of raters per item is allowed (P_i uses each item's own n_i,
// category shares pool all ratings), which reduces to Fleiss (1971) when n is constant.
double fleissKappa(const std::vector<std::vector<int>> &counts);

// Krippendorff's alpha for nominal data, from the same per-item category counts (a unit's values are
// its ratings; units with fewer than two values are not pairable and ignored). Krippendorff (2011),
// "Computing Krippendorff's Alpha-Reliability", coincidence-matrix form.
double krippendorffAlphaNominal(const std::vector<std::vector<int>> &counts);

} // namespace dpo
