// A read-only Markdown view for prompts and completions: QTextBrowser::setMarkdown plus what the
// stock renderer lacks here: code blocks and inline code in the system fixed-pitch font on a
// palette-derived background, and word-level highlights (from WordDiff) drawn with a colour blended
// from the current palette so they read in light and dark themes alike.
// Does not compute diffs itself: the Label page pairs two views and calls highlight().
#pragma once

#include "ui/widgets/worddiff.h"

#include <QTextBrowser>

class MarkdownView : public QTextBrowser {
    Q_OBJECT
public:
    explicit MarkdownView(QWidget *parent = nullptr);

    void setMarkdownText(const QString &markdown);
    const QString &markdownText() const { return m_markdown; }
    // The text as given to the Markdown importer: lines that are only a list marker ("13.", "-")
    // escaped so they stay literal instead of rendering as empty list items.
    static QString escapeBareListMarkers(const QString &markdown);

    // Words of the rendered document (not of the Markdown source), with document positions, so
    // markup like ``` or ** never counts as a difference.
    QVector<WordToken> renderedTokens() const;
    // Highlights tokens[i] where changed[i]; consecutive changed tokens in one block are joined.
    void highlight(const QVector<WordToken> &tokens, const QVector<bool> &changed);
    // Re-renders without highlights.
    void clearHighlights();

    static QColor diffColor(const QPalette &palette);

signals:
    // The document was rebuilt after a palette change (highlights are gone: re-apply them).
    void rerendered();

protected:
    void changeEvent(QEvent *event) override;

private:
    void polishDocument();

    QString m_markdown;
};
