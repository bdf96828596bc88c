#include "ui/widgets/worddiff.h"

#include <algorithm>
#include <vector>

int WordDiffResult::changedLeft() const
{
    return int(std::count(leftChanged.begin(), leftChanged.end(), true));
}

int WordDiffResult::changedRight() const
{
    return int(std::count(rightChanged.begin(), rightChanged.end(), true));
}

static bool isWordChar(QChar c)
{
    return c.isLetterOrNumber() || c == QLatin1Char('_') || c.isMark();
}

QVector<WordToken> WordDiff::tokenize(const QString &text)
{
    QVector<WordToken> out;
    const int n = int(text.size());
    int i = 0;
    while (i < n) {
        const QChar c = text.at(i);
        if (c.isSpace()) {
            ++i;
            continue;
        }
        int j = i + 1;
        if (isWordChar(c)) {
            while (j < n && isWordChar(text.at(j)))
                ++j;
        } else if (c.isHighSurrogate() && j < n && text.at(j).isLowSurrogate()) {
            ++j; // keep an emoji or other astral character whole
        }
        out.push_back(WordToken { i, j - i, text.mid(i, j - i) });
        i = j;
    }
    return out;
}

void WordDiff::diffTokens(const QVector<WordToken> &a, const QVector<WordToken> &b, QVector<bool> &aChanged,
    QVector<bool> &bChanged, bool *exact)
{
    const int n = int(a.size()), m = int(b.size());
    aChanged = QVector<bool>(n, true);
    bChanged = QVector<bool>(m, true);
    if (exact)
        *exact = true;

    // Common prefix and suffix are unchanged and cost nothing: most repaired or near-identical
    // completions differ only in the middle.
    int pre = 0;
    while (pre < n && pre < m && a[pre].text == b[pre].text) {
        aChanged[pre] = bChanged[pre] = false;
        ++pre;
    }
    int suf = 0;
    while (suf < n - pre && suf < m - pre && a[n - 1 - suf].text == b[m - 1 - suf].text) {
        aChanged[n - 1 - suf] = bChanged[m - 1 - suf] = false;
        ++suf;
    }
    const int an = n - pre - suf, bm = m - pre - suf;
    if (an == 0 || bm == 0)
        return;
    if (qint64(an + 1) * qint64(bm + 1) > maxCells) {
        if (exact)
            *exact = false;
        return; // middle stays marked as changed
    }

    // Classic LCS table on the middle part (suffix form, so the walk below runs forwards).
    // Words are compared as hashes first: string compares dominate otherwise.
    std::vector<size_t> ha(static_cast<size_t>(an)), hb(static_cast<size_t>(bm));
    for (int i = 0; i < an; ++i)
        ha[size_t(i)] = qHash(a[pre + i].text);
    for (int j = 0; j < bm; ++j)
        hb[size_t(j)] = qHash(b[pre + j].text);
    const size_t W = size_t(bm) + 1;
    std::vector<uint32_t> L((size_t(an) + 1) * W, 0);
    for (int i = an - 1; i >= 0; --i) {
        for (int j = bm - 1; j >= 0; --j) {
            uint32_t &cell = L[size_t(i) * W + size_t(j)];
            if (ha[size_t(i)] == hb[size_t(j)] && a[pre + i].text == b[pre + j].text)
                cell = L[size_t(i + 1) * W + size_t(j + 1)] + 1;
            else
                cell = std::max(L[size_t(i + 1) * W + size_t(j)], L[size_t(i) * W + size_t(j + 1)]);
        }
    }
    int i = 0, j = 0;
    while (i < an && j < bm) {
        if (ha[size_t(i)] == hb[size_t(j)] && a[pre + i].text == b[pre + j].text) {
            aChanged[pre + i] = bChanged[pre + j] = false;
            ++i;
            ++j;
        } else if (L[size_t(i + 1) * W + size_t(j)] >= L[size_t(i) * W + size_t(j + 1)]) {
            ++i;
        } else {
            ++j;
        }
    }
}

WordDiffResult WordDiff::diff(const QString &left, const QString &right)
{
    WordDiffResult r;
    r.left = tokenize(left);
    r.right = tokenize(right);
    diffTokens(r.left, r.right, r.leftChanged, r.rightChanged, &r.exact);
    return r;
}
