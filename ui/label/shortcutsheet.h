// ShortcutSheet: the "?" dialog listing keyboard shortcuts. Built from live QActions, so the sheet can
// never disagree with what the keys do: every action whose "sheetSection" property is set is listed
// under that section, in creation order, with all of its shortcuts.
#pragma once

#include <QDialog>

class QAction;

class ShortcutSheet : public QDialog {
    Q_OBJECT
public:
    struct Section {
        QString title;
        QList<QAction *> actions;
    };
    ShortcutSheet(const QVector<Section> &sections, QWidget *parent = nullptr);

    // Sections from every action under root's window that has a "sheetSection" property.
    static QVector<Section> collect(QWidget *root);
    static void tag(QAction *action, const QString &section); // sets the property
};
