// PagedTableModel: a read-only table over a store listing that may hold hundreds of thousands of rows.
// Rows arrive a page at a time from the session's StoreWorker (never on the GUI thread) as the view
// scrolls (canFetchMore/fetchMore). Changing the query resets the model; answers to an older query
// are dropped by a generation counter. Cells are shown on one line (newlines as ⏎, long text elided);
// the full text of each row is kept as a Markdown "detail" for a preview pane.
#pragma once

#include "ui/shell/projectsession.h"

#include <QAbstractTableModel>
#include <QPointer>

#include <functional>

class PagedTableModel : public QAbstractTableModel {
    Q_OBJECT
public:
    struct Chunk {
        QVector<QVector<QVariant>> cells;
        QVector<qint64> ids;
        QVector<QString> details; // Markdown
        // The same with its folds open (MarkdownView::setFoldableMarkdown); "" or missing: nothing folded.
        QVector<QString> expandedDetails;
        qint64 total = 0;
    };
    // Runs in the worker thread.
    using Fetcher = std::function<Chunk(dpo::ProjectStore &, int offset, int limit)>;

    explicit PagedTableModel(QObject *parent = nullptr);

    void setQuery(ProjectSession *session, const QStringList &headers, Fetcher fetcher);
    void reload(); // same query, from the top
    void clear();

    qint64 total() const { return m_total; }
    bool isLoading() const { return m_loading; }
    qint64 idAt(int row) const;
    QString detailAt(int row) const;
    QString expandedDetailAt(int row) const;
    int pageSize() const { return m_pageSize; }
    void setPageSize(int n) { m_pageSize = n; }

    int rowCount(const QModelIndex &parent = {}) const override;
    int columnCount(const QModelIndex &parent = {}) const override;
    QVariant data(const QModelIndex &index, int role) const override;
    QVariant headerData(int section, Qt::Orientation orientation, int role) const override;
    bool canFetchMore(const QModelIndex &parent) const override;
    void fetchMore(const QModelIndex &parent) override;

signals:
    void chunkLoaded();
    void failed(const QString &message);

private:
    void request(int offset);

    QPointer<ProjectSession> m_session;
    QStringList m_headers;
    Fetcher m_fetcher;
    QVector<QVector<QVariant>> m_cells;
    QVector<qint64> m_ids;
    QVector<QString> m_details;
    QVector<QString> m_expandedDetails;
    qint64 m_total = 0;
    bool m_loading = false;
    int m_generation = 0;
    int m_pageSize = 200;
};
