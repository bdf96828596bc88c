#include "engine/tokenizers/unicode_nfc.h"

#include "engine/tokenizers/unicode_nfc_data.h"
#include "engine/tokenizers/utf8.h"

#include <algorithm>
#include <cstdint>
#include <vector>

namespace dpo {
namespace {

constexpr uint32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr uint32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

// Decodes one code point of valid UTF-8 at s[i], advancing i.
uint32_t nextCodePoint(std::string_view s, size_t &i)
{
    return decodeUtf8At(s, i);
}

// Tables hold triples / pairs sorted by their first element.
template <size_t Stride, size_t N> const uint32_t *findRange(const uint32_t (&table)[N], uint32_t cp)
{
    size_t lo = 0, hi = N / Stride;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const uint32_t *row = table + mid * Stride;
        if (cp < row[0])
            hi = mid;
        else if (cp > row[1])
            lo = mid + 1;
        else
            return row;
    }
    return nullptr;
}

int combiningClass(uint32_t cp)
{
    if (cp < 0x300)
        return 0;
    const uint32_t *row = findRange<3>(nfc_data::kCccRanges, cp);
    return row ? int(row[2]) : 0;
}

bool isUnsafe(uint32_t cp)
{
    return cp >= 0x300 && findRange<2>(nfc_data::kUnsafeRanges, cp) != nullptr;
}

void decompose(uint32_t cp, std::vector<uint32_t> &out)
{
    if (cp >= kSBase && cp < kSBase + kSCount) {
        const uint32_t s = cp - kSBase;
        out.push_back(kLBase + s / kNCount);
        out.push_back(kVBase + (s % kNCount) / kTCount);
        if (s % kTCount)
            out.push_back(kTBase + s % kTCount);
        return;
    }
    const auto &idx = nfc_data::kDecompIndex;
    constexpr size_t n = sizeof(idx) / sizeof(idx[0]) / 3;
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (idx[mid * 3] < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < n && idx[lo * 3] == cp) {
        const uint32_t *d = nfc_data::kDecompData + idx[lo * 3 + 1];
        out.insert(out.end(), d, d + idx[lo * 3 + 2]);
    } else {
        out.push_back(cp);
    }
}

// The primary composite of (a, b), or 0.
uint32_t compose(uint32_t a, uint32_t b)
{
    if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
        return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
    if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase && b < kTBase + kTCount)
        return a + (b - kTBase);
    const auto &t = nfc_data::kCompose;
    constexpr size_t n = sizeof(t) / sizeof(t[0]) / 3;
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (t[mid * 3] < a || (t[mid * 3] == a && t[mid * 3 + 1] < b))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && t[lo * 3] == a && t[lo * 3 + 1] == b ? t[lo * 3 + 2] : 0;
}

} // namespace

bool isQuickNfc(std::string_view text)
{
    for (size_t i = 0; i < text.size();) {
        if (static_cast<unsigned char>(text[i]) < 0xCC) { // every code point below U+0300 is safe
            i += static_cast<unsigned char>(text[i]) < 0x80 ? 1 : 2;
            continue;
        }
        if (isUnsafe(nextCodePoint(text, i)))
            return false;
    }
    return true;
}

std::string toNfc(std::string_view text)
{
    if (isQuickNfc(text))
        return std::string(text);
    // Canonical decomposition.
    std::vector<uint32_t> cps;
    cps.reserve(text.size());
    for (size_t i = 0; i < text.size();)
        decompose(nextCodePoint(text, i), cps);
    // Canonical ordering: stable sort of each run of non-starters by combining class.
    for (size_t i = 0; i < cps.size();) {
        if (combiningClass(cps[i]) == 0) {
            ++i;
            continue;
        }
        size_t j = i;
        while (j < cps.size() && combiningClass(cps[j]) != 0)
            ++j;
        std::stable_sort(cps.begin() + i, cps.begin() + j,
            [](uint32_t a, uint32_t b) { return combiningClass(a) < combiningClass(b); });
        i = j;
    }
    // Canonical composition: a character joins the last starter unless blocked by one in between
    // of the same or higher class (or by a starter).
    std::vector<uint32_t> out;
    out.reserve(cps.size());
    long starter = -1;
    int lastClass = -1;
    for (uint32_t cp : cps) {
        const int cc = combiningClass(cp);
        if (starter >= 0 && (lastClass < cc || (lastClass == 0 && long(out.size()) - 1 == starter))) {
            if (uint32_t c = compose(out[starter], cp)) {
                out[starter] = c;
                continue;
            }
        }
        if (cc == 0) {
            starter = long(out.size());
            lastClass = 0;
        } else {
            lastClass = cc;
        }
        out.push_back(cp);
    }
    std::string result;
    result.reserve(text.size());
    for (uint32_t cp : out)
        appendUtf8(result, cp);
    return result;
}

} // namespace dpo
