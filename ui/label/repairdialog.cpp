#include "ui/label/repairdialog.h"

#include <QDialogButtonBox>
#include <QFontDatabase>
#include <QHBoxLayout>
#include <QLabel>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QRadioButton>
#include <QShortcut>
#include <QVBoxLayout>

RepairDialog::RepairDialog(const QString &leftText, const QString &rightText, bool editLeft, QWidget *parent)
    : QDialog(parent)
{
    setObjectName(QStringLiteral("repairDialog"));
    setWindowTitle(tr("Repair a completion"));
    m_original[0] = m_edits[0] = leftText;
    m_original[1] = m_edits[1] = rightText;
    m_side = editLeft ? 0 : 1;

    auto *intro = new QLabel(tr("Edit the completion into one you would prefer. Saving adds a new pair: "
                                "your edit as <b>chosen</b>, the original as <b>rejected</b>. "
                                "The pair on screen stays open for your verdict."));
    intro->setWordWrap(true);
    m_left = new QRadioButton(tr("&Left completion"));
    m_right = new QRadioButton(tr("&Right completion"));
    (editLeft ? m_left : m_right)->setChecked(true);
    auto *sideRow = new QHBoxLayout;
    sideRow->addWidget(new QLabel(tr("Edit:")));
    sideRow->addWidget(m_left);
    sideRow->addWidget(m_right);
    sideRow->addStretch();

    m_edit = new QPlainTextEdit;
    m_edit->setObjectName(QStringLiteral("repairEditor"));
    m_edit->setFont(QFontDatabase::systemFont(QFontDatabase::FixedFont));
    m_edit->setTabChangesFocus(false);
    m_hint = new QLabel;
    m_hint->setEnabled(false); // the palette's disabled text colour: a quiet hint

    auto *buttons = new QDialogButtonBox(QDialogButtonBox::Save | QDialogButtonBox::Cancel);
    m_save = buttons->button(QDialogButtonBox::Save);
    m_save->setText(tr("Save repair (Ctrl+Enter)"));
    connect(buttons, &QDialogButtonBox::accepted, this, [this]() {
        emit repairRequested(editingLeft(), text());
        accept();
    });
    connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
    auto *sc = new QShortcut(QKeySequence(Qt::CTRL | Qt::Key_Return), this);
    connect(sc, &QShortcut::activated, m_save, &QPushButton::click);

    auto *lay = new QVBoxLayout(this);
    lay->addWidget(intro);
    lay->addLayout(sideRow);
    lay->addWidget(m_edit, 1);
    lay->addWidget(m_hint);
    lay->addWidget(buttons);
    resize(720, 520);

    connect(m_left, &QRadioButton::toggled, this, [this](bool on) { setEditingLeft(on); });
    connect(m_edit, &QPlainTextEdit::textChanged, this, [this]() {
        m_edits[m_side] = m_edit->toPlainText();
        updateSave();
    });
    load();
}

bool RepairDialog::editingLeft() const
{
    return m_side == 0;
}

QString RepairDialog::text() const
{
    return m_edit->toPlainText();
}

void RepairDialog::setText(const QString &text)
{
    m_edit->setPlainText(text);
}

void RepairDialog::setEditingLeft(bool left)
{
    const int side = left ? 0 : 1;
    if (side == m_side)
        return;
    m_side = side;
    (left ? m_left : m_right)->setChecked(true);
    load();
}

void RepairDialog::load()
{
    QSignalBlocker block(m_edit);
    m_edit->setPlainText(m_edits[m_side]);
    m_edit->setFocus();
    updateSave();
}

void RepairDialog::updateSave()
{
    const QString t = m_edit->toPlainText();
    const bool changed = t != m_original[m_side];
    const bool empty = t.trimmed().isEmpty();
    m_save->setEnabled(changed && !empty);
    m_hint->setText(empty ? tr("The repaired text cannot be empty.")
            : changed     ? tr("Markdown is kept as typed.")
                          : tr("Unchanged: edit the text to save a repair."));
}
