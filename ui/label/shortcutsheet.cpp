#include "ui/label/shortcutsheet.h"

#include <QAction>
#include <QDialogButtonBox>
#include <QLabel>
#include <QScreen>
#include <QScrollArea>
#include <QVBoxLayout>

static const char *sectionProperty = "sheetSection";

void ShortcutSheet::tag(QAction *action, const QString &section)
{
    action->setProperty(sectionProperty, section);
}

QVector<ShortcutSheet::Section> ShortcutSheet::collect(QWidget *root)
{
    QVector<Section> out;
    QWidget *top = root->window();
    QList<QAction *> all = top->findChildren<QAction *>();
    for (QAction *a : all) {
        const QString s = a->property(sectionProperty).toString();
        if (s.isEmpty() || a->shortcuts().isEmpty())
            continue;
        auto it = std::find_if(out.begin(), out.end(), [&](const Section &x) { return x.title == s; });
        if (it == out.end()) {
            out.push_back({ s, {} });
            it = out.end() - 1;
        }
        it->actions.push_back(a);
    }
    // The page's own keys first, then navigation, then the rest in discovery order.
    const QStringList order = { tr("Labeling"), tr("Pages"), tr("Project") };
    std::stable_sort(out.begin(), out.end(), [&](const Section &a, const Section &b) {
        auto rank = [&](const QString &t) {
            const qsizetype i = order.indexOf(t);
            return i < 0 ? order.size() : i;
        };
        return rank(a.title) < rank(b.title);
    });
    return out;
}

ShortcutSheet::ShortcutSheet(const QVector<Section> &sections, QWidget *parent)
    : QDialog(parent)
{
    setWindowTitle(tr("Keyboard shortcuts"));
    setObjectName(QStringLiteral("shortcutSheet"));
    // Plain HTML with no colours of its own: the palette of the dialog decides.
    QString html = QStringLiteral("<table cellspacing='0' cellpadding='4'>");
    for (const Section &s : sections) {
        html += QStringLiteral("<tr><td colspan='2'><br><b>%1</b></td></tr>").arg(s.title.toHtmlEscaped());
        for (QAction *a : s.actions) {
            QStringList keys;
            for (const QKeySequence &k : a->shortcuts())
                keys << QStringLiteral("<code>%1</code>").arg(k.toString(QKeySequence::NativeText).toHtmlEscaped());
            QString text = a->text();
            text.remove(QLatin1Char('&'));
            html += QStringLiteral("<tr><td align='right' style='padding-right:16px'>%1</td><td>%2</td></tr>")
                        .arg(keys.join(QStringLiteral(" or ")), text.toHtmlEscaped());
        }
    }
    html += QStringLiteral("</table>");
    auto *label = new QLabel(html);
    label->setTextFormat(Qt::RichText);
    label->setAlignment(Qt::AlignTop | Qt::AlignLeft);
    label->setMargin(8);
    auto *scroll = new QScrollArea;
    scroll->setWidget(label);
    scroll->setWidgetResizable(true);
    scroll->setFrameShape(QFrame::NoFrame);
    auto *buttons = new QDialogButtonBox(QDialogButtonBox::Close);
    connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
    auto *lay = new QVBoxLayout(this);
    lay->addWidget(scroll);
    lay->addWidget(buttons);
    // Tall enough to show everything without scrolling where the screen allows.
    const QSize content = label->sizeHint();
    const int maxH = screen() ? screen()->availableGeometry().height() * 85 / 100 : 800;
    resize(std::max(420, content.width() + 48), std::min(maxH, content.height() + 90));
}
