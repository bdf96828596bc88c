// Helpers for tests that read MarkdownView: click a link the way a user does (a mouse click on the
// rendered anchor, not a synthetic anchorClicked signal).
#pragma once

#include "ui/widgets/markdownview.h"

#include <QTest>
#include <QTextBlock>
#include <QTextCursor>
#include <QTextDocument>

namespace markdowntest {

// Clicks the first link to href; false when the document has none.
inline bool clickLink(MarkdownView *view, const QString &href)
{
    const QTextDocument *doc = view->document();
    for (QTextBlock b = doc->begin(); b.isValid(); b = b.next()) {
        for (auto it = b.begin(); !it.atEnd(); ++it) {
            const QTextFragment f = it.fragment();
            if (!f.isValid() || !f.charFormat().isAnchor() || f.charFormat().anchorHref() != href)
                continue;
            QTextCursor c(view->document());
            c.setPosition(f.position() + f.length() / 2);
            view->setTextCursor(c);
            view->ensureCursorVisible();
            const QPoint at = view->cursorRect(c).center();
            QTest::mouseClick(view->viewport(), Qt::LeftButton, {}, at);
            return true;
        }
    }
    return false;
}

} // namespace markdowntest
