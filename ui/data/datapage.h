// DataPage: browse, search and filter the project's prompts, pairs and judgments (a paged table fed by
// the StoreWorker), preview the selected row, and read the store's sanity checks and agreement /
// position-bias summary. Everything here is read-only and computed off the GUI thread, except
// "Generate candidates…", which opens GenerateCandidatesDialog (its own worker thread writes the samples).
#pragma once

#include "ui/shell/projectsession.h"

#include <QPointer>
#include <QWidget>

class GenerateCandidatesDialog;
class MarkdownView;
class PagedTableModel;
class QComboBox;
class QLabel;
class QLineEdit;
class QPushButton;
class QTabBar;
class QTableView;
class QTextBrowser;
class QTimer;

class DataPage : public QWidget, public ProjectPage {
    Q_OBJECT
public:
    enum View { Prompts = 0, Pairs = 1, Judgments = 2 };

    explicit DataPage(QWidget *parent = nullptr);
    ~DataPage() override;
    void setProject(ProjectSession *session) override;

    void setView(View v);
    View view() const;
    void setSearch(const QString &text); // applies at once (no debounce)
    PagedTableModel *model() const { return m_model; }
    QString summaryText() const; // the statistics panel as plain text (tests)
    // Opens (or raises) the candidate generation dialog; nullptr without a project.
    GenerateCandidatesDialog *openGenerateDialog();

public slots:
    void refresh();

protected:
    void showEvent(QShowEvent *event) override;

private:
    void applyQuery();
    void refreshStats();
    void updateFilters();
    void updateCount();
    void fitColumns();

    ProjectSession *m_session = nullptr;
    QTabBar *m_tabs;
    QLineEdit *m_search;
    QComboBox *m_filter;
    QComboBox *m_annotator;
    QLabel *m_count;
    QPushButton *m_generate;
    QPointer<GenerateCandidatesDialog> m_generateDialog;
    QTableView *m_table;
    PagedTableModel *m_model;
    MarkdownView *m_detail;
    QTextBrowser *m_stats;
    QTimer *m_debounce;
    bool m_fitPending = false;
};
