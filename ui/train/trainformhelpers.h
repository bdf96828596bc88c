// Small helpers shared by the Train page's panes (TrainDataPanel, TrainOptionsForm, TrainRunsBrowser): the
// compact form used in every group box, a row of widgets with one that stretches, and the shortest text
// that reads back as the same double (how options and config diffs show numbers).
// Not here: any state or behaviour of a pane.
#pragma once

#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLocale>
#include <QString>
#include <QWidget>

#include <initializer_list>

namespace trainform {

inline QString formatDouble(double v)
{
    return QString::number(v, 'g', QLocale::FloatingPointShortest);
}

inline QFormLayout *newForm(QGroupBox *box)
{
    auto *form = new QFormLayout(box);
    form->setFieldGrowthPolicy(QFormLayout::ExpandingFieldsGrow);
    form->setLabelAlignment(Qt::AlignRight);
    form->setVerticalSpacing(4);
    return form;
}

inline QWidget *row(std::initializer_list<QWidget *> widgets, int stretchIndex = 0)
{
    auto *w = new QWidget;
    auto *l = new QHBoxLayout(w);
    l->setContentsMargins(0, 0, 0, 0);
    int i = 0;
    for (QWidget *x : widgets)
        l->addWidget(x, i++ == stretchIndex ? 1 : 0);
    return w;
}

} // namespace trainform
