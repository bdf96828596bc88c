#include "ui/widgets/markdownview.h"

#include "project/conversation.h"

#include <QAbstractTextDocumentLayout>
#include <QDesktopServices>
#include <QEvent>
#include <QFontDatabase>
#include <QRegularExpression>
#include <QScrollBar>
#include <QTextBlock>
#include <QTextCursor>
#include <QTextDocument>

static QColor blend(const QColor &a, const QColor &b, double t)
{
    return QColor::fromRgbF(float(a.redF() * (1 - t) + b.redF() * t), float(a.greenF() * (1 - t) + b.greenF() * t),
        float(a.blueF() * (1 - t) + b.blueF() * t));
}

MarkdownView::MarkdownView(QWidget *parent)
    : QTextBrowser(parent)
{
    // Links are followed here: fold links switch the text, web links open in the browser, and anything
    // else (a relative link in a prompt) does nothing instead of navigating the view away from the text.
    setOpenLinks(false);
    connect(this, &QTextBrowser::anchorClicked, this, &MarkdownView::followLink);
    setReadOnly(true);
    // Keys belong to the Label page (1/2/←/→ ...): the view is read with the mouse and scrolled by
    // wheel; text stays selectable for copying.
    setFocusPolicy(Qt::NoFocus);
    setTextInteractionFlags(Qt::TextSelectableByMouse | Qt::LinksAccessibleByMouse);
    document()->setDocumentMargin(8);
}

QColor MarkdownView::diffColor(const QPalette &palette)
{
    // 35% of the selection colour over the base: visible on white and on near-black bases, and
    // never the same as an actual selection.
    return blend(palette.color(QPalette::Base), palette.color(QPalette::Highlight), 0.35);
}

QString MarkdownView::escapeBareListMarkers(const QString &markdown)
{
    // A line that is nothing but a list marker ("13.", "2)", "-") is an *empty* list item in
    // CommonMark: a completion that answers "13." would show as a bullet with no text. Escaping the
    // punctuation keeps it literal; list items with content and code blocks are left alone.
    static const QRegularExpression bare(
        QStringLiteral("^(\\s{0,3})(\\d{1,9})([.)])(\\s*)$|^(\\s{0,3})([-+*])(\\s*)$"));
    static const QRegularExpression fence(QStringLiteral("^\\s{0,3}(```|~~~)"));
    QStringList lines = markdown.split(QLatin1Char('\n'));
    bool inFence = false;
    for (QString &line : lines) {
        if (fence.match(line).hasMatch()) {
            inFence = !inFence;
            continue;
        }
        if (inFence)
            continue;
        const QRegularExpressionMatch m = bare.match(line);
        if (!m.hasMatch())
            continue;
        if (m.capturedLength(2) > 0)
            line = m.captured(1) + m.captured(2) + QLatin1Char('\\') + m.captured(3) + m.captured(4);
        else
            line = m.captured(5) + QLatin1Char('\\') + m.captured(6) + m.captured(7);
    }
    return lines.join(QLatin1Char('\n'));
}

void MarkdownView::setMarkdownText(const QString &markdown)
{
    setFoldableMarkdown(markdown, QString());
}

void MarkdownView::setFoldableMarkdown(const QString &folded, const QString &expanded)
{
    m_markdown = folded;
    m_expandedMarkdown = expanded;
    const bool was = m_expanded;
    m_expanded = false;
    render();
    if (was)
        emit expandedChanged(false);
}

void MarkdownView::setExpanded(bool expanded)
{
    expanded = expanded && isFoldable();
    if (expanded == m_expanded)
        return;
    // Keep the reader where they were: the fold sits above what they read next.
    const int scroll = verticalScrollBar()->value();
    m_expanded = expanded;
    render();
    verticalScrollBar()->setValue(scroll);
    emit expandedChanged(m_expanded);
    // The document was rebuilt: highlights (word diff) are gone.
    emit rerendered();
}

void MarkdownView::followLink(const QUrl &url)
{
    const QString u = url.toString();
    if (u == QLatin1String(dpo::kExpandHref))
        setExpanded(true);
    else if (u == QLatin1String(dpo::kCollapseHref))
        setExpanded(false);
    else if (url.scheme() == QLatin1String("http") || url.scheme() == QLatin1String("https")
        || url.scheme() == QLatin1String("mailto"))
        QDesktopServices::openUrl(url);
}

bool MarkdownView::scrollToLast(const QString &label)
{
    QTextDocument *doc = document();
    for (QTextBlock b = doc->lastBlock(); b.isValid(); b = b.previous()) {
        if (!b.text().startsWith(label) || b.begin().atEnd()
            || b.begin().fragment().charFormat().fontWeight() < QFont::Bold)
            continue;
        // Lays the document out up to the block, so the scroll range is known.
        const int y = int(doc->documentLayout()->blockBoundingRect(b).top());
        verticalScrollBar()->setValue(y);
        return true;
    }
    return false;
}

void MarkdownView::render()
{
    setMarkdown(escapeBareListMarkers(markdownText()));
    polishDocument();
}

void MarkdownView::clearHighlights()
{
    render();
}

void MarkdownView::polishDocument()
{
    const QFont mono = QFontDatabase::systemFont(QFontDatabase::FixedFont);
    const QColor codeBg = blend(palette().color(QPalette::Base), palette().color(QPalette::Text), 0.07);
    QTextDocument *doc = document();
    QTextCursor cur(doc);
    cur.beginEditBlock();
    for (QTextBlock b = doc->begin(); b.isValid(); b = b.next()) {
        const QTextBlockFormat bf = b.blockFormat();
        if (bf.headingLevel() > 0) {
            // The stock sizes (h1 ~ 2x) shout in a narrow panel or a completion: keep them modest.
            static const double scale[] = { 1.0, 1.3, 1.2, 1.1, 1.05, 1.0, 1.0 };
            QTextCursor c(b);
            c.movePosition(QTextCursor::EndOfBlock, QTextCursor::KeepAnchor);
            QTextCharFormat cf;
            cf.setFontPointSize(QFontInfo(font()).pointSizeF() * scale[std::min(bf.headingLevel(), 6)]);
            cf.setFontWeight(QFont::Bold);
            cf.setProperty(QTextFormat::FontSizeAdjustment, 0); // the importer's relative size
            c.mergeCharFormat(cf);
            continue;
        }
        const bool codeBlock = bf.hasProperty(QTextFormat::BlockCodeFence) || bf.nonBreakableLines();
        if (codeBlock) {
            QTextCursor c(b);
            QTextBlockFormat nb = bf;
            nb.setBackground(codeBg);
            c.setBlockFormat(nb);
            c.movePosition(QTextCursor::EndOfBlock, QTextCursor::KeepAnchor);
            QTextCharFormat cf;
            cf.setFontFamilies(mono.families());
            cf.setFontFixedPitch(true);
            c.mergeCharFormat(cf);
            continue;
        }
        // Inline `code`: the importer marks it fixed-pitch; give it the real mono family and a tint.
        for (auto it = b.begin(); !it.atEnd(); ++it) {
            const QTextFragment f = it.fragment();
            if (!f.isValid() || !f.charFormat().fontFixedPitch())
                continue;
            QTextCursor c(doc);
            c.setPosition(f.position());
            c.setPosition(f.position() + f.length(), QTextCursor::KeepAnchor);
            QTextCharFormat cf;
            cf.setFontFamilies(mono.families());
            cf.setBackground(codeBg);
            c.mergeCharFormat(cf);
        }
    }
    cur.endEditBlock();
}

QVector<WordToken> MarkdownView::renderedTokens() const
{
    QVector<WordToken> out;
    const QTextDocument *doc = document();
    for (QTextBlock b = doc->begin(); b.isValid(); b = b.next()) {
        const QVector<WordToken> words = WordDiff::tokenize(b.text());
        const int base = b.position();
        for (WordToken t : words) {
            t.start += base;
            out.push_back(std::move(t));
        }
    }
    return out;
}

void MarkdownView::highlight(const QVector<WordToken> &tokens, const QVector<bool> &changed)
{
    QTextCharFormat fmt;
    fmt.setBackground(diffColor(palette()));
    QTextDocument *doc = document();
    QTextCursor cur(doc);
    cur.beginEditBlock();
    const int n = int(std::min(tokens.size(), changed.size()));
    int i = 0;
    while (i < n) {
        if (!changed[i]) {
            ++i;
            continue;
        }
        const QTextBlock block = doc->findBlock(tokens[i].start);
        int j = i + 1;
        while (j < n && changed[j] && block.contains(tokens[j].start))
            ++j;
        cur.setPosition(tokens[i].start);
        cur.setPosition(tokens[j - 1].start + tokens[j - 1].length, QTextCursor::KeepAnchor);
        cur.mergeCharFormat(fmt);
        i = j;
    }
    cur.endEditBlock();
}

void MarkdownView::changeEvent(QEvent *event)
{
    QTextBrowser::changeEvent(event);
    // A theme switch at run time: formats hold concrete colours, so render again from the source.
    if (event->type() == QEvent::PaletteChange && !markdownText().isEmpty()) {
        clearHighlights();
        emit rerendered();
    }
}
