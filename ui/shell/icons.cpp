#include "ui/shell/icons.h"

#include <QApplication>
#include <QIconEngine>
#include <QPainter>
#include <QPainterPath>
#include <QPalette>

namespace {

// Paints at request time, so a palette switch (light <-> dark) repaints icons in the new colours.
class DrawnIconEngine : public QIconEngine {
public:
    explicit DrawnIconEngine(QString name)
        : m_name(std::move(name))
    {
    }
    QIconEngine *clone() const override { return new DrawnIconEngine(m_name); }
    QString key() const override { return QStringLiteral("dpo-drawn"); }

    QPixmap pixmap(const QSize &size, QIcon::Mode mode, QIcon::State state) override
    {
        QPixmap pm(size);
        pm.fill(Qt::transparent);
        QPainter p(&pm);
        paint(&p, QRect(QPoint(0, 0), size), mode, state);
        return pm;
    }

    void paint(QPainter *p, const QRect &rect, QIcon::Mode mode, QIcon::State) override
    {
        const QPalette pal = QApplication::palette();
        QColor fg = pal.color(mode == QIcon::Disabled ? QPalette::Disabled : QPalette::Active,
            mode == QIcon::Selected ? QPalette::HighlightedText : QPalette::WindowText);
        const QColor accent = mode == QIcon::Selected ? fg : pal.color(QPalette::Highlight);
        p->save();
        p->setRenderHint(QPainter::Antialiasing);
        const double s = std::min(rect.width(), rect.height()) / 24.0;
        p->translate(rect.x() + (rect.width() - 24 * s) / 2, rect.y() + (rect.height() - 24 * s) / 2);
        p->scale(s, s);
        QPen pen(fg, 1.8, Qt::SolidLine, Qt::RoundCap, Qt::RoundJoin);
        p->setPen(pen);
        p->setBrush(Qt::NoBrush);
        draw(p, fg, accent);
        p->restore();
    }

private:
    void draw(QPainter *p, const QColor &fg, const QColor &accent) const
    {
        const QString &n = m_name;
        if (n == QLatin1String("label")) {
            // Two cards side by side, the left one ticked.
            p->drawRoundedRect(QRectF(2.5, 5, 8.5, 14), 1.5, 1.5);
            p->drawRoundedRect(QRectF(13, 5, 8.5, 14), 1.5, 1.5);
            QPen a = p->pen();
            a.setColor(accent);
            a.setWidthF(2.2);
            p->setPen(a);
            QPainterPath tick;
            tick.moveTo(4.5, 12);
            tick.lineTo(6.3, 14.2);
            tick.lineTo(9.3, 9.5);
            p->drawPath(tick);
        } else if (n == QLatin1String("data")) {
            p->drawRoundedRect(QRectF(3, 4, 18, 16), 1.5, 1.5);
            p->drawLine(QPointF(3, 9), QPointF(21, 9));
            p->drawLine(QPointF(3, 14.5), QPointF(21, 14.5));
            p->drawLine(QPointF(9.5, 4), QPointF(9.5, 20));
        } else if (n == QLatin1String("train")) {
            p->drawLine(QPointF(3, 3), QPointF(3, 21));
            p->drawLine(QPointF(3, 21), QPointF(21, 21));
            QPen a = p->pen();
            a.setColor(accent);
            p->setPen(a);
            QPainterPath curve;
            curve.moveTo(5, 6);
            curve.cubicTo(8, 15, 12, 17, 20, 18);
            p->drawPath(curve);
        } else if (n == QLatin1String("evaluate")) {
            // A balance.
            p->drawLine(QPointF(12, 4), QPointF(12, 20));
            p->drawLine(QPointF(7, 20), QPointF(17, 20));
            p->drawLine(QPointF(4, 7), QPointF(20, 7));
            QPen a = p->pen();
            a.setColor(accent);
            p->setPen(a);
            QPainterPath pans;
            pans.moveTo(2, 13);
            pans.lineTo(4, 7.5);
            pans.lineTo(6, 13);
            pans.arcTo(QRectF(2, 11, 4, 4), 0, -180);
            pans.moveTo(18, 13);
            pans.lineTo(20, 7.5);
            pans.lineTo(22, 13);
            pans.arcTo(QRectF(18, 11, 4, 4), 0, -180);
            p->drawPath(pans);
        } else if (n == QLatin1String("app")) {
            p->setPen(Qt::NoPen);
            p->setBrush(accent);
            p->drawRoundedRect(QRectF(1, 1, 22, 22), 5, 5);
            QPen w(Qt::white, 2.2, Qt::SolidLine, Qt::RoundCap, Qt::RoundJoin);
            p->setPen(w);
            p->setBrush(Qt::NoBrush);
            p->drawRoundedRect(QRectF(5, 6, 6, 12), 1, 1);
            p->drawRoundedRect(QRectF(13, 6, 6, 12), 1, 1);
            p->drawLine(QPointF(6.8, 12.3), QPointF(9, 10));
        } else if (n == QLatin1String("open")) {
            QPainterPath f;
            f.moveTo(3, 19);
            f.lineTo(3, 5);
            f.lineTo(9, 5);
            f.lineTo(11, 7);
            f.lineTo(20, 7);
            f.lineTo(20, 10);
            p->drawPath(f);
            QPainterPath o;
            o.moveTo(3, 19);
            o.lineTo(6.5, 10.5);
            o.lineTo(22, 10.5);
            o.lineTo(18.5, 19);
            o.closeSubpath();
            p->drawPath(o);
        } else if (n == QLatin1String("new")) {
            QPainterPath d;
            d.moveTo(14, 3);
            d.lineTo(5, 3);
            d.lineTo(5, 21);
            d.lineTo(19, 21);
            d.lineTo(19, 8);
            d.closeSubpath();
            p->drawPath(d);
            QPen a = p->pen();
            a.setColor(accent);
            p->setPen(a);
            p->drawLine(QPointF(12, 10.5), QPointF(12, 17.5));
            p->drawLine(QPointF(8.5, 14), QPointF(15.5, 14));
        } else if (n == QLatin1String("import") || n == QLatin1String("export")) {
            p->drawLine(QPointF(4, 15), QPointF(4, 20));
            p->drawLine(QPointF(4, 20), QPointF(20, 20));
            p->drawLine(QPointF(20, 20), QPointF(20, 15));
            QPen a = p->pen();
            a.setColor(accent);
            p->setPen(a);
            p->drawLine(QPointF(12, 3), QPointF(12, 15));
            QPainterPath head;
            if (n == QLatin1String("import")) {
                head.moveTo(7.5, 10.5);
                head.lineTo(12, 15);
                head.lineTo(16.5, 10.5);
            } else {
                head.moveTo(7.5, 7.5);
                head.lineTo(12, 3);
                head.lineTo(16.5, 7.5);
            }
            p->drawPath(head);
        } else if (n == QLatin1String("undo")) {
            QPainterPath u;
            u.moveTo(8, 5);
            u.lineTo(4, 9);
            u.lineTo(8, 13);
            u.moveTo(4, 9);
            u.lineTo(14, 9);
            u.cubicTo(22, 9, 22, 20, 14, 20);
            u.lineTo(9, 20);
            p->drawPath(u);
        } else if (n == QLatin1String("edit")) {
            QPainterPath pen;
            pen.moveTo(4, 20);
            pen.lineTo(5, 15.5);
            pen.lineTo(16, 4.5);
            pen.lineTo(19.5, 8);
            pen.lineTo(8.5, 19);
            pen.closeSubpath();
            p->drawPath(pen);
            p->drawLine(QPointF(13.5, 7), QPointF(17, 10.5));
        } else if (n == QLatin1String("diff")) {
            p->drawLine(QPointF(4, 6), QPointF(20, 6));
            p->drawLine(QPointF(4, 18), QPointF(14, 18));
            p->setPen(Qt::NoPen);
            p->setBrush(accent);
            p->drawRoundedRect(QRectF(3, 10, 12, 4), 1, 1);
            p->setBrush(fg);
            p->drawRect(QRectF(16.5, 10.8, 4.5, 2.4));
        } else if (n == QLatin1String("guidelines")) {
            QPainterPath b;
            b.moveTo(12, 6);
            b.cubicTo(9, 4, 5, 4, 3, 5);
            b.lineTo(3, 19);
            b.cubicTo(5, 18, 9, 18, 12, 20);
            b.cubicTo(15, 18, 19, 18, 21, 19);
            b.lineTo(21, 5);
            b.cubicTo(19, 4, 15, 4, 12, 6);
            b.lineTo(12, 20);
            p->drawPath(b);
        } else {
            p->drawEllipse(QPointF(12, 12), 8, 8);
        }
    }

    QString m_name;
};

} // namespace

QIcon Icons::get(const QString &name)
{
    return QIcon(new DrawnIconEngine(name));
}
