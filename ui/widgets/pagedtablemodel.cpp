#include "ui/widgets/pagedtablemodel.h"

PagedTableModel::PagedTableModel(QObject *parent)
    : QAbstractTableModel(parent)
{
}

void PagedTableModel::setQuery(ProjectSession *session, const QStringList &headers, Fetcher fetcher)
{
    beginResetModel();
    m_session = session;
    m_headers = headers;
    m_fetcher = std::move(fetcher);
    m_cells.clear();
    m_ids.clear();
    m_details.clear();
    m_expandedDetails.clear();
    m_total = 0;
    m_loading = false;
    ++m_generation;
    endResetModel();
    if (m_session && m_fetcher)
        request(0);
}

void PagedTableModel::reload()
{
    setQuery(m_session, m_headers, m_fetcher);
}

void PagedTableModel::clear()
{
    setQuery(nullptr, m_headers, {});
}

void PagedTableModel::request(int offset)
{
    if (!m_session || !m_fetcher)
        return;
    m_loading = true;
    const int gen = m_generation;
    const int limit = m_pageSize;
    Fetcher f = m_fetcher;
    m_session->worker().run<Chunk>(
        this, [f, offset, limit](dpo::ProjectStore &s) { return f(s, offset, limit); },
        [this, gen](Chunk c) {
            if (gen != m_generation)
                return;
            m_loading = false;
            m_total = c.total;
            if (!c.cells.isEmpty()) {
                const int first = int(m_cells.size());
                beginInsertRows({}, first, first + int(c.cells.size()) - 1);
                m_cells += c.cells;
                m_ids += c.ids;
                m_details += c.details;
                // A fetcher that folds nothing leaves expandedDetails empty: keep the two lists aligned.
                c.expandedDetails.resize(c.details.size());
                m_expandedDetails += c.expandedDetails;
                endInsertRows();
            }
            emit chunkLoaded();
        },
        [this, gen](const QString &err) {
            if (gen != m_generation)
                return;
            m_loading = false;
            emit failed(err);
        });
}

qint64 PagedTableModel::idAt(int row) const
{
    return row >= 0 && row < m_ids.size() ? m_ids[row] : 0;
}

QString PagedTableModel::detailAt(int row) const
{
    return row >= 0 && row < m_details.size() ? m_details[row] : QString();
}

QString PagedTableModel::expandedDetailAt(int row) const
{
    return row >= 0 && row < m_expandedDetails.size() ? m_expandedDetails[row] : QString();
}

int PagedTableModel::rowCount(const QModelIndex &parent) const
{
    return parent.isValid() ? 0 : int(m_cells.size());
}

int PagedTableModel::columnCount(const QModelIndex &parent) const
{
    return parent.isValid() ? 0 : int(m_headers.size());
}

QVariant PagedTableModel::data(const QModelIndex &index, int role) const
{
    if (!index.isValid() || index.row() >= m_cells.size())
        return {};
    const QVector<QVariant> &row = m_cells[index.row()];
    if (index.column() >= row.size())
        return {};
    const QVariant &v = row[index.column()];
    if (role == Qt::DisplayRole) {
        if (v.typeId() != QMetaType::QString)
            return v;
        QString s = v.toString();
        if (s.size() > 240)
            s = s.left(240) + QStringLiteral("…");
        s.replace(QLatin1Char('\n'), QStringLiteral(" ⏎ "));
        return s;
    }
    if (role == Qt::ToolTipRole && v.typeId() == QMetaType::QString) {
        QString s = v.toString();
        if (s.size() > 1500)
            s = s.left(1500) + QStringLiteral("…");
        return s;
    }
    if (role == Qt::TextAlignmentRole && v.typeId() != QMetaType::QString)
        return int(Qt::AlignRight | Qt::AlignVCenter);
    return {};
}

QVariant PagedTableModel::headerData(int section, Qt::Orientation orientation, int role) const
{
    if (orientation == Qt::Horizontal && role == Qt::DisplayRole && section < m_headers.size())
        return m_headers[section];
    return QAbstractTableModel::headerData(section, orientation, role);
}

bool PagedTableModel::canFetchMore(const QModelIndex &parent) const
{
    return !parent.isValid() && !m_loading && m_session && m_cells.size() < m_total;
}

void PagedTableModel::fetchMore(const QModelIndex &parent)
{
    if (canFetchMore(parent))
        request(int(m_cells.size()));
}
