// Word-level difference between two texts, for the Label page's "highlight differences" toggle.
// Tokenizes into words (runs of letters/digits/underscore) and single punctuation marks, skips
// whitespace, and marks every token that is not part of a longest common subsequence of the two
// token lists. Does not render anything: callers map the token ranges onto their own documents.
#pragma once

#include <QString>
#include <QVector>

struct WordToken {
    int start = 0; // offset in the tokenized string
    int length = 0; // in QChars
    QString text;
};

struct WordDiffResult {
    QVector<WordToken> left;
    QVector<WordToken> right;
    QVector<bool> leftChanged; // leftChanged[i]: left[i] is not in the common subsequence
    QVector<bool> rightChanged; // same for right
    bool exact = true; // false when the texts were too long for a full LCS (see maxCells)
    int changedLeft() const;
    int changedRight() const;
};

class WordDiff {
public:
    // Above this many DP cells (after trimming the common prefix and suffix) the middle part is
    // marked changed wholesale instead: a 2000x2000-word LCS costs ~4M cells, about 10 ms here.
    static constexpr qint64 maxCells = 4'000'000;

    static QVector<WordToken> tokenize(const QString &text);
    static WordDiffResult diff(const QString &left, const QString &right);
    // Token-level LCS on already tokenized input (exposed for tests and for callers that tokenize
    // per paragraph).
    static void diffTokens(const QVector<WordToken> &a, const QVector<WordToken> &b, QVector<bool> &aChanged,
        QVector<bool> &bChanged, bool *exact = nullptr);
};
