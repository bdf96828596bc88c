// RepairDialog: edit one side of the pair on screen. Saving emits repairRequested(editedLeft, text);
// the Label page stores it through ProjectStore::repair (edited = chosen, original = rejected).
// Non-blocking (open(), not exec()) so the page and tests stay in control.
#pragma once

#include <QDialog>

class QPlainTextEdit;
class QRadioButton;
class QLabel;
class QPushButton;

class RepairDialog : public QDialog {
    Q_OBJECT
public:
    RepairDialog(const QString &leftText, const QString &rightText, bool editLeft, QWidget *parent = nullptr);

    bool editingLeft() const;
    QString text() const;
    void setText(const QString &text);
    void setEditingLeft(bool left);

signals:
    void repairRequested(bool editedLeft, const QString &text);

private:
    void load();
    void updateSave();

    QString m_original[2]; // 0 left, 1 right
    QString m_edits[2];
    int m_side = 0;
    QRadioButton *m_left;
    QRadioButton *m_right;
    QPlainTextEdit *m_edit;
    QLabel *m_hint;
    QPushButton *m_save = nullptr;
};
