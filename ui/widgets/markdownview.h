// A read-only Markdown view for prompts and completions: QTextBrowser::setMarkdown plus what the
// stock renderer lacks here: code blocks and inline code in the system fixed-pitch font on a
// palette-derived background, and word-level highlights (from WordDiff) drawn with a colour blended
// from the current palette so they read in light and dark themes alike.
// Shows a folded text (project/conversation.h: a long system message cut to its first lines) and
// switches to its expanded form and back when the fold links are clicked; other links open in the
// browser only when they are http(s) or mailto.
// Does not compute diffs itself: the Label page pairs two views and calls highlight().
#pragma once

#include "ui/widgets/worddiff.h"

#include <QTextBrowser>

class MarkdownView : public QTextBrowser {
    Q_OBJECT
public:
    explicit MarkdownView(QWidget *parent = nullptr);

    void setMarkdownText(const QString &markdown);
    // A text with folds: shown folded; the links to dpo::kExpandHref / kCollapseHref switch between the two.
    // An empty expanded is plain setMarkdownText.
    void setFoldableMarkdown(const QString &folded, const QString &expanded);
    bool isExpanded() const { return m_expanded; }
    bool isFoldable() const { return !m_expandedMarkdown.isEmpty(); }
    void setExpanded(bool expanded);
    // The Markdown shown now (the folded or the expanded form).
    const QString &markdownText() const { return m_expanded ? m_expandedMarkdown : m_markdown; }
    // Scrolls so the last paragraph that opens with text in bold (a conversation's role label, "User:") is at
    // the top, as far as the document allows; false when there is none.
    bool scrollToLast(const QString &label);
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
    void expandedChanged(bool expanded);

protected:
    void changeEvent(QEvent *event) override;

private:
    void polishDocument();
    void render();
    void followLink(const QUrl &url);

    QString m_markdown;
    QString m_expandedMarkdown; // empty: nothing to fold
    bool m_expanded = false;
};
