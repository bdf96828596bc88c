#include "ui/data/datapage.h"

#include "project/conversation.h"

#include "ui/data/generatecandidatesdialog.h"
#include "ui/widgets/markdownview.h"
#include "ui/widgets/pagedtablemodel.h"

#include <QComboBox>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QLocale>
#include <QPushButton>
#include <QSettings>
#include <QSplitter>
#include <QTabBar>
#include <QTableView>
#include <QTextBrowser>
#include <QTimer>
#include <QVBoxLayout>

#include <cmath>

using namespace dpo;

namespace {

QString dataNum(double v, int decimals = 3)
{
    return std::isnan(v) ? QStringLiteral("n/a") : QString::number(v, 'f', decimals);
}

QString verdictText(Verdict v)
{
    switch (v) {
    case Verdict::Left:
        return QObject::tr("left");
    case Verdict::Right:
        return QObject::tr("right");
    case Verdict::Tie:
        return QObject::tr("tie");
    case Verdict::BothBad:
        return QObject::tr("both bad");
    case Verdict::Skip:
        return QObject::tr("skip");
    }
    return {};
}

QString strengthText(Strength s)
{
    return s == Strength::Much ? QObject::tr("much") : s == Strength::Slight ? QObject::tr("slightly") : QString();
}

// Markdown headings between texts that are Markdown themselves: a rule keeps them apart.
QString section(const QString &title, const QString &body)
{
    return QStringLiteral("#### %1\n\n%2\n\n---\n\n").arg(title, body);
}

// One row's detail in its folded and expanded forms: a conversational prompt shows its turns, with a long
// system message folded (project/conversation.h).
struct Detail {
    QString folded, expanded;
    bool foldable = false;

    void add(const QString &markdown)
    {
        folded += markdown;
        expanded += markdown;
    }
    void addSection(const QString &title, const QString &messagesJson, const QString &text)
    {
        const ConversationMarkdown c = conversationMarkdown(messagesJson, text);
        folded += section(title, c.markdown);
        expanded += section(title, c.expanded.isEmpty() ? c.markdown : c.expanded);
        foldable = foldable || !c.expanded.isEmpty();
    }
    void appendTo(PagedTableModel::Chunk &c) const
    {
        c.details.push_back(folded);
        c.expandedDetails.push_back(foldable ? expanded : QString());
    }
};

struct Stats {
    Counts counts;
    QVector<SanityIssue> issues;
    AgreementReport agreement;
};

QString statsHtml(const Stats &s)
{
    const QLocale loc;
    QString h;
    const Counts &c = s.counts;
    h += QStringLiteral("<h3>%1</h3><table cellpadding='2'>").arg(QObject::tr("Project"));
    auto row = [&](const QString &k, const QString &v) {
        h += QStringLiteral("<tr><td>%1</td><td align='right'><b>%2</b></td></tr>").arg(k.toHtmlEscaped(), v);
    };
    row(QObject::tr("Prompts"), loc.toString(c.prompts));
    row(QObject::tr("Completions"), loc.toString(c.completions));
    row(QObject::tr("Pairs"), loc.toString(c.pairs));
    row(QObject::tr("Pairs imported as judged"), loc.toString(c.prejudgedPairs));
    row(QObject::tr("Label slots done"),
        QStringLiteral("%1 / %2").arg(loc.toString(c.labelSlotsDone), loc.toString(c.labelSlots)));
    row(QObject::tr("Judgments"), loc.toString(c.judgments));
    row(QObject::tr("Annotators"), loc.toString(c.annotators));
    h += QStringLiteral("</table>");

    h += QStringLiteral("<h3>%1</h3>").arg(QObject::tr("Sanity checks"));
    if (s.issues.isEmpty()) {
        h += QStringLiteral("<p>%1</p>").arg(QObject::tr("No problems found."));
    } else {
        QMap<QString, int> byType;
        for (const SanityIssue &i : s.issues)
            ++byType[sanityTypeName(i.type)];
        h += QStringLiteral("<table cellpadding='2'>");
        for (auto it = byType.begin(); it != byType.end(); ++it)
            row(QString(it.key()).replace(QLatin1Char('_'), QLatin1Char(' ')), QString::number(it.value()));
        h += QStringLiteral("</table><ul>");
        for (int i = 0; i < std::min<int>(12, int(s.issues.size())); ++i) {
            const SanityIssue &x = s.issues[i];
            QString line = QObject::tr("pair #%1: %2").arg(x.pairId).arg(x.detail.toHtmlEscaped());
            if (x.otherPairId)
                line += QObject::tr(" (same as #%1)").arg(x.otherPairId);
            h += QStringLiteral("<li>%1</li>").arg(line);
        }
        if (s.issues.size() > 12)
            h += QStringLiteral("<li>%1</li>").arg(QObject::tr("… and %1 more").arg(s.issues.size() - 12));
        h += QStringLiteral("</ul>");
    }

    const AgreementReport &a = s.agreement;
    h += QStringLiteral("<h3>%1</h3>").arg(QObject::tr("Agreement"));
    if (a.judgments == 0) {
        h += QStringLiteral("<p>%1</p>").arg(QObject::tr("No verdicts yet."));
        return h;
    }
    h += QStringLiteral("<table cellpadding='2'>");
    row(QObject::tr("Verdicts (non-skip)"), loc.toString(a.judgments));
    row(QObject::tr("Pairs judged / by 2+"),
        QStringLiteral("%1 / %2").arg(loc.toString(a.items), loc.toString(a.multiRated)));
    row(QObject::tr("Annotators"), loc.toString(a.raters));
    if (a.raters == 2)
        row(QObject::tr("Cohen's κ"), dataNum(a.cohenKappa));
    row(QObject::tr("Fleiss' κ"), dataNum(a.fleissKappa));
    row(QObject::tr("Krippendorff's α"), dataNum(a.krippendorffAlpha));
    h += QStringLiteral("</table>");
    if (!a.annotators.isEmpty()) {
        h += QStringLiteral("<p><b>%1</b></p><table cellpadding='2'>")
                 .arg(QObject::tr("Each annotator vs. the others' majority"));
        for (const AnnotatorAgreement &x : a.annotators)
            row(x.name,
                x.items ? QStringLiteral("%1% of %2").arg(dataNum(100 * x.agreementWithMajority, 0)).arg(x.items)
                        : QObject::tr("n/a"));
        h += QStringLiteral("</table>");
    }
    h += QStringLiteral("<h3>%1</h3><table cellpadding='2'>").arg(QObject::tr("Bias"));
    const qint64 lr = a.leftWins + a.rightWins;
    row(QObject::tr("Left side won"),
        lr ? QStringLiteral("%1% (%2 of %3)").arg(dataNum(100 * a.leftWinShare, 1)).arg(a.leftWins).arg(lr)
           : QObject::tr("n/a"));
    const qint64 ls = a.longerWins + a.shorterWins;
    row(QObject::tr("Longer completion won"),
        ls ? QStringLiteral("%1% (%2 of %3)").arg(dataNum(100 * a.longerWinShare, 1)).arg(a.longerWins).arg(ls)
           : QObject::tr("n/a"));
    h += QStringLiteral("</table>");
    if (lr >= 20 && std::abs(a.leftWinShare - 0.5) > 0.1)
        h += QStringLiteral("<p>%1</p>")
                 .arg(QObject::tr("The left side wins noticeably more or less often than half "
                                  "the time: check for position bias."));
    return h;
}

} // namespace

DataPage::DataPage(QWidget *parent)
    : QWidget(parent)
{
    setObjectName(QStringLiteral("dataPage"));
    m_tabs = new QTabBar;
    m_tabs->addTab(tr("Prompts"));
    m_tabs->addTab(tr("Pairs"));
    m_tabs->addTab(tr("Judgments"));
    m_tabs->setDrawBase(false);
    m_search = new QLineEdit;
    m_search->setObjectName(QStringLiteral("dataSearch"));
    m_search->setPlaceholderText(tr("Search prompt and completion text…"));
    m_search->setClearButtonEnabled(true);
    m_filter = new QComboBox;
    m_annotator = new QComboBox;
    m_count = new QLabel;
    auto *refreshButton = new QPushButton(tr("Refresh"));
    connect(refreshButton, &QPushButton::clicked, this, &DataPage::refresh);
    m_generate = new QPushButton(tr("Generate candidates…"));
    m_generate->setObjectName(QStringLiteral("dataGenerate"));
    m_generate->setToolTip(tr("Sample completions with a model for prompts that have fewer than N, and queue "
                              "pairs between them for labeling."));
    m_generate->setEnabled(false);
    connect(m_generate, &QPushButton::clicked, this, &DataPage::openGenerateDialog);

    auto *bar = new QHBoxLayout;
    bar->addWidget(m_tabs);
    bar->addSpacing(12);
    bar->addWidget(m_search, 1);
    bar->addWidget(m_filter);
    bar->addWidget(m_annotator);
    bar->addWidget(refreshButton);
    bar->addWidget(m_generate);

    m_model = new PagedTableModel(this);
    m_table = new QTableView;
    m_table->setObjectName(QStringLiteral("dataTable"));
    m_table->setModel(m_model);
    m_table->setSelectionBehavior(QAbstractItemView::SelectRows);
    m_table->setSelectionMode(QAbstractItemView::SingleSelection);
    m_table->setAlternatingRowColors(true);
    m_table->setWordWrap(false);
    m_table->verticalHeader()->setVisible(false);
    m_table->verticalHeader()->setDefaultSectionSize(m_table->fontMetrics().height() + 8);
    m_table->horizontalHeader()->setStretchLastSection(false);
    m_table->horizontalHeader()->setHighlightSections(false);

    m_detail = new MarkdownView;
    m_detail->setObjectName(QStringLiteral("dataDetail"));
    m_detail->setFocusPolicy(Qt::ClickFocus);
    m_stats = new QTextBrowser;
    m_stats->setObjectName(QStringLiteral("dataStats"));

    auto *left = new QWidget;
    auto *ll = new QVBoxLayout(left);
    ll->setContentsMargins(0, 0, 0, 0);
    ll->addWidget(m_table, 1);
    ll->addWidget(m_count);
    auto *vsplit = new QSplitter(Qt::Vertical);
    vsplit->addWidget(left);
    vsplit->addWidget(m_detail);
    vsplit->setStretchFactor(0, 3);
    vsplit->setStretchFactor(1, 2);
    vsplit->setChildrenCollapsible(false);
    auto *hsplit = new QSplitter(Qt::Horizontal);
    hsplit->setObjectName(QStringLiteral("dataSplitter"));
    hsplit->addWidget(vsplit);
    hsplit->addWidget(m_stats);
    hsplit->setStretchFactor(0, 3);
    hsplit->setStretchFactor(1, 1);
    hsplit->setChildrenCollapsible(false);
    hsplit->restoreState(QSettings().value(QStringLiteral("data/splitter")).toByteArray());
    connect(hsplit, &QSplitter::splitterMoved, this,
        [hsplit]() { QSettings().setValue(QStringLiteral("data/splitter"), hsplit->saveState()); });

    auto *lay = new QVBoxLayout(this);
    lay->addLayout(bar);
    lay->addWidget(hsplit, 1);

    m_debounce = new QTimer(this);
    m_debounce->setSingleShot(true);
    m_debounce->setInterval(250);
    connect(m_debounce, &QTimer::timeout, this, &DataPage::applyQuery);
    connect(m_search, &QLineEdit::textChanged, m_debounce, qOverload<>(&QTimer::start));
    connect(m_tabs, &QTabBar::currentChanged, this, [this]() {
        updateFilters();
        applyQuery();
    });
    connect(m_filter, qOverload<int>(&QComboBox::activated), this, &DataPage::applyQuery);
    connect(m_annotator, qOverload<int>(&QComboBox::activated), this, &DataPage::applyQuery);
    connect(m_model, &PagedTableModel::chunkLoaded, this, &DataPage::updateCount);
    connect(m_model, &PagedTableModel::failed, this, [this](const QString &e) { m_count->setText(e); });
    connect(m_model, &QAbstractItemModel::modelReset, this, [this]() {
        m_detail->setMarkdownText(tr("*Select a row to see it in full.*"));
        updateCount();
    });
    connect(m_table->selectionModel(), &QItemSelectionModel::currentRowChanged, this, [this](const QModelIndex &cur) {
        m_detail->setFoldableMarkdown(m_model->detailAt(cur.row()), m_model->expandedDetailAt(cur.row()));
    });

    m_tabs->setCurrentIndex(QSettings().value(QStringLiteral("data/view"), int(Pairs)).toInt());
    updateFilters();
}

DataPage::~DataPage()
{
    QSettings().setValue(QStringLiteral("data/view"), m_tabs->currentIndex());
}

void DataPage::setProject(ProjectSession *session)
{
    if (m_session)
        disconnect(m_session, nullptr, this, nullptr);
    // The dialog works on the old project: closing it cancels a running job and joins its thread.
    delete m_generateDialog;
    m_session = session;
    m_generate->setEnabled(m_session != nullptr);
    if (m_session)
        connect(m_session, &ProjectSession::contentChanged, this, [this]() {
            if (isVisible())
                refresh();
        });
    updateFilters();
    applyQuery();
    if (isVisible())
        refreshStats();
}

void DataPage::showEvent(QShowEvent *event)
{
    QWidget::showEvent(event);
    // Labeling changes the numbers all the time; recompute when the user comes to look.
    refresh();
}

void DataPage::refresh()
{
    applyQuery();
    refreshStats();
}

void DataPage::setView(View v)
{
    m_tabs->setCurrentIndex(int(v));
}

DataPage::View DataPage::view() const
{
    return View(m_tabs->currentIndex());
}

void DataPage::setSearch(const QString &text)
{
    QSignalBlocker b(m_search);
    m_search->setText(text);
    applyQuery();
}

void DataPage::updateFilters()
{
    m_filter->clear();
    m_annotator->setVisible(false);
    switch (view()) {
    case Prompts:
        m_filter->setVisible(false);
        break;
    case Pairs:
        m_filter->setVisible(true);
        m_filter->addItem(tr("All pairs"), int(JudgedFilter::Any));
        m_filter->addItem(tr("Judged"), int(JudgedFilter::Judged));
        m_filter->addItem(tr("Not judged yet"), int(JudgedFilter::Unjudged));
        break;
    case Judgments:
        m_filter->setVisible(true);
        m_filter->addItem(tr("All verdicts"), -1);
        for (Verdict v : { Verdict::Left, Verdict::Right, Verdict::Tie, Verdict::BothBad, Verdict::Skip })
            m_filter->addItem(verdictText(v), int(v));
        m_annotator->setVisible(true);
        m_annotator->clear();
        m_annotator->addItem(tr("All annotators"), 0);
        if (m_session) {
            try {
                for (const Annotator &a : m_session->store().annotators())
                    m_annotator->addItem(a.name, a.id);
            } catch (const std::exception &) {
            }
        }
        break;
    }
}

void DataPage::applyQuery()
{
    m_debounce->stop();
    if (!m_session) {
        m_model->clear();
        return;
    }
    ListQuery q;
    q.search = m_search->text().trimmed();
    q.limit = m_model->pageSize();
    PagedTableModel::Fetcher f;
    QStringList headers;
    switch (view()) {
    case Prompts:
        headers = { tr("#"), tr("Prompt"), tr("Completions"), tr("Pairs") };
        f = [q](ProjectStore &s, int offset, int limit) {
            ListQuery x = q;
            x.offset = offset;
            x.limit = limit;
            const auto page = s.listPrompts(x);
            PagedTableModel::Chunk c;
            c.total = page.total;
            for (const PromptRow &r : page.rows) {
                c.cells.push_back({ r.id, conversationSummary(r.messagesJson, r.text), r.completions, r.pairs });
                c.ids.push_back(r.id);
                // The prompt with its completions and where each came from (import, generated by which
                // model and seed, repair), so generated candidates can be checked before labeling.
                Detail details;
                details.addSection(QObject::tr("Prompt #%1").arg(r.id), r.messagesJson, r.text);
                if (r.completions > 0) {
                    const QVector<Completion> completions = s.completionsOf(r.id);
                    for (int k = 0; k < completions.size() && k < 16; ++k) {
                        const Provenance &p = completions[k].provenance;
                        QStringList from { p.source };
                        if (!p.modelPath.isEmpty())
                            from << QStringLiteral("`%1`").arg(QFileInfo(p.modelPath).fileName());
                        if (p.seed)
                            from << QObject::tr("seed %1").arg(*p.seed);
                        details.addSection(
                            QObject::tr("Completion %1 — %2").arg(k + 1).arg(from.join(QStringLiteral(", "))),
                            completions[k].messagesJson, completions[k].text);
                    }
                    if (completions.size() > 16)
                        details.add(QObject::tr("… and %1 more.").arg(completions.size() - 16));
                }
                details.appendTo(c);
            }
            return c;
        };
        break;
    case Pairs:
        q.judged = JudgedFilter(m_filter->currentData().toInt());
        headers = { tr("#"), tr("Prompt"), tr("Completion A"), tr("Completion B"), tr("Origin"), tr("Preferred"),
            tr("Verdicts") };
        f = [q](ProjectStore &s, int offset, int limit) {
            ListQuery x = q;
            x.offset = offset;
            x.limit = limit;
            const auto page = s.listPairs(x);
            PagedTableModel::Chunk c;
            c.total = page.total;
            for (const PairRow &r : page.rows) {
                c.cells.push_back(
                    { r.id, conversationSummary(r.promptMessages, r.prompt), conversationSummary(r.messagesA, r.textA),
                        conversationSummary(r.messagesB, r.textB), r.origin, r.preferred.toUpper(), r.judgments });
                c.ids.push_back(r.id);
                const QString pa = r.preferred == QLatin1String("a") ? QObject::tr(" (preferred)") : QString();
                const QString pb = r.preferred == QLatin1String("b") ? QObject::tr(" (preferred)") : QString();
                Detail details;
                details.addSection(QObject::tr("Prompt"), r.promptMessages, r.prompt);
                details.addSection(QObject::tr("Completion A%1").arg(pa), r.messagesA, r.textA);
                details.addSection(QObject::tr("Completion B%1").arg(pb), r.messagesB, r.textB);
                details.appendTo(c);
            }
            return c;
        };
        break;
    case Judgments: {
        const int v = m_filter->currentData().toInt();
        if (v >= 0)
            q.verdict = Verdict(v);
        q.annotatorId = m_annotator->currentData().toLongLong();
        headers = { tr("#"), tr("Annotator"), tr("Verdict"), tr("Winner"), tr("Strength"), tr("Shown left"),
            tr("Seconds"), tr("Prompt"), tr("Rationale"), tr("Decided") };
        f = [q](ProjectStore &s, int offset, int limit) {
            ListQuery x = q;
            x.offset = offset;
            x.limit = limit;
            const auto page = s.listJudgments(x);
            PagedTableModel::Chunk c;
            c.total = page.total;
            for (const JudgmentRow &r : page.rows) {
                const Judgment &j = r.judgment;
                const double secs = j.shownAt.isValid() && j.decidedAt.isValid()
                    ? double(j.shownAt.msecsTo(j.decidedAt)) / 1000.0
                    : 0.0;
                c.cells.push_back({ j.id, j.annotatorName, verdictText(j.verdict), winnerName(j.winner).toUpper(),
                    strengthText(j.strength), j.leftIsA ? QStringLiteral("A") : QStringLiteral("B"),
                    QString::number(secs, 'f', 1), conversationSummary(r.promptMessages, r.prompt), j.rationale,
                    QLocale().toString(j.decidedAt.toLocalTime(), QLocale::ShortFormat) });
                c.ids.push_back(j.id);
                QString head = QObject::tr("**%1** judged pair #%2: **%3**%4, winner **%5**.")
                                   .arg(j.annotatorName)
                                   .arg(j.pairId)
                                   .arg(verdictText(j.verdict),
                                       j.strength != Strength::Unspecified
                                           ? QStringLiteral(" (%1)").arg(strengthText(j.strength))
                                           : QString(),
                                       winnerName(j.winner).toUpper());
                if (!j.rationale.isEmpty())
                    head += QStringLiteral("\n\n> %1").arg(j.rationale);
                Detail details;
                details.add(head + QStringLiteral("\n\n---\n\n"));
                details.addSection(QObject::tr("Prompt"), r.promptMessages, r.prompt);
                details.addSection(QObject::tr("Completion A"), r.messagesA, r.textA);
                details.addSection(QObject::tr("Completion B"), r.messagesB, r.textB);
                details.appendTo(c);
            }
            return c;
        };
        break;
    }
    }
    m_fitPending = true;
    m_model->setQuery(m_session, headers, f);
    m_count->setText(tr("Loading…"));
}

void DataPage::updateCount()
{
    if (!m_session) {
        m_count->setText(tr("No project open."));
        return;
    }
    if (m_model->isLoading() && m_model->rowCount() == 0) {
        m_count->setText(tr("Loading…"));
        return;
    }
    const QLocale loc;
    m_count->setText(tr("%1 rows (%2 loaded; more load as you scroll)")
                         .arg(loc.toString(m_model->total()), loc.toString(m_model->rowCount())));
    if (m_model->rowCount() >= m_model->total())
        m_count->setText(tr("%n row(s)", nullptr, int(m_model->total())));
    if (m_fitPending && m_model->rowCount() > 0) {
        m_fitPending = false;
        fitColumns();
        m_table->selectRow(0); // the preview shows something useful right away
    }
}

void DataPage::fitColumns()
{
    // Short columns (ids, counts, names) fit their contents; long-text columns share what is left.
    const int n = m_model->columnCount();
    QVector<int> wide;
    int used = 0;
    for (int c = 0; c < n; ++c) {
        m_table->resizeColumnToContents(c);
        const int w = m_table->columnWidth(c);
        if (w > 170)
            wide << c;
        else
            used += std::max(w, 40);
    }
    if (wide.isEmpty())
        return;
    const int avail = m_table->viewport()->width() - used - 4;
    const int each = std::max(160, avail / int(wide.size()));
    for (int c : std::as_const(wide))
        m_table->setColumnWidth(c, each);
}

void DataPage::refreshStats()
{
    if (!m_session) {
        m_stats->setHtml(QStringLiteral("<p>%1</p>").arg(tr("No project open.")));
        return;
    }
    if (m_stats->toPlainText().isEmpty())
        m_stats->setHtml(QStringLiteral("<p>%1</p>").arg(tr("Computing statistics…")));
    m_session->worker().run<Stats>(
        this,
        [](ProjectStore &s) {
            Stats st;
            st.counts = s.counts();
            st.issues = s.sanityChecks();
            st.agreement = s.agreement();
            return st;
        },
        [this](Stats st) { m_stats->setHtml(statsHtml(st)); },
        [this](const QString &e) { m_stats->setPlainText(tr("Statistics unavailable: %1").arg(e)); });
}

GenerateCandidatesDialog *DataPage::openGenerateDialog()
{
    if (!m_session)
        return nullptr;
    if (!m_generateDialog) {
        m_generateDialog = new GenerateCandidatesDialog(m_session, this);
        m_generateDialog->setAttribute(Qt::WA_DeleteOnClose);
        // No refresh wiring here: the dialog emits the session's contentChanged(), which refreshes this page
        // when it is visible (and showEvent refreshes it otherwise).
    }
    m_generateDialog->show();
    m_generateDialog->raise();
    m_generateDialog->activateWindow();
    return m_generateDialog;
}

QString DataPage::summaryText() const
{
    return m_stats->toPlainText();
}
