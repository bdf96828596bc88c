// Evaluation results and report on a real SQLite project with eval judgments (no model runs): the results
// equal dpo::computeRatings on the battles rebuilt independently from the store's judgments, length
// statistics equal a direct count, the HTML report is self-contained (tables + embedded PNG charts that
// decode) and the CSV files parse (RFC 4180) with one row per model / judgment.
#include "engine/evaluation/statistics.h"
#include "project/evaluation.h"
#include "project/project_store.h"
#include "ui/evaluate/evaluationreport.h"
#include "ui/evaluate/evaluationresults.h"

#include <QFile>
#include <QImage>
#include <QRegularExpression>
#include <QTemporaryDir>
#include "qt_test_main.h"

#include <QtTest>

#include <cmath>
#include <random>

namespace test_evaluation_report { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

using namespace dpo;

namespace {

// RFC 4180 parser: quoted fields may hold commas, quotes ("") and line breaks.
QVector<QStringList> parseCsv(const QString &text, bool *ok)
{
    QVector<QStringList> rows;
    QStringList row;
    QString field;
    bool quoted = false, fieldStarted = false;
    *ok = true;
    for (int i = 0; i < text.size(); ++i) {
        const QChar c = text[i];
        if (quoted) {
            if (c == QLatin1Char('"')) {
                if (i + 1 < text.size() && text[i + 1] == QLatin1Char('"')) {
                    field += QLatin1Char('"');
                    ++i;
                } else {
                    quoted = false;
                }
            } else {
                field += c;
            }
            continue;
        }
        if (c == QLatin1Char('"')) {
            if (fieldStarted && !field.isEmpty())
                *ok = false; // a quote inside an unquoted field
            quoted = true;
            fieldStarted = true;
        } else if (c == QLatin1Char(',')) {
            row << field;
            field.clear();
            fieldStarted = false;
        } else if (c == QLatin1Char('\r')) {
            // part of CRLF
        } else if (c == QLatin1Char('\n')) {
            row << field;
            rows << row;
            row.clear();
            field.clear();
            fieldStarted = false;
        } else {
            field += c;
            fieldStarted = true;
        }
    }
    if (quoted)
        *ok = false;
    if (fieldStarted || !row.isEmpty()) {
        row << field;
        rows << row;
    }
    return rows;
}

} // namespace

class TestEvaluationReport : public QObject {
    Q_OBJECT
private slots:
    void init();
    void cleanup();
    void resultsEqualComputeRatings();
    void baselineChangesWinRates();
    void htmlReportIsSelfContained();
    void csvParses();
    void hiddenOutsideSessionModels();

private:
    std::unique_ptr<QTemporaryDir> m_dir;
    std::unique_ptr<ProjectStore> m_store;
    QVector<EvalModel> m_models;
    SamplingSettings m_sampling;
    QVector<qint64> m_prompts;
    EvalSession m_session;
};

void TestEvaluationReport::init()
{
    m_dir = std::make_unique<QTemporaryDir>();
    QVERIFY(m_dir->isValid());
    m_store = ProjectStore::open(m_dir->filePath(QStringLiteral("p.dpo")));
    m_models = { { QStringLiteral("base"), QStringLiteral("/models/base"), QString() },
        { QStringLiteral("run/checkpoint-10"), QStringLiteral("/runs/r/checkpoint-10"),
            QStringLiteral("checkpoint-10") },
        { QStringLiteral("run/final"), QStringLiteral("/runs/r/final"), QStringLiteral("final") } };
    m_sampling.greedy = false;
    m_sampling.temperature = 0.7;
    m_sampling.maxNewTokens = 32;
    m_sampling.seed = 11;
    // 12 prompts; model i answers with i+1 sentences (different lengths), one text with CSV-hostile characters.
    m_prompts.clear();
    for (int p = 0; p < 12; ++p) {
        const qint64 pid = m_store->addPrompt(QStringLiteral("Prompt %1, with \"quotes\"\nand a line break").arg(p));
        m_prompts << pid;
        for (int i = 0; i < m_models.size(); ++i) {
            QStringList words;
            for (int k = 0; k <= i; ++k)
                words << QStringLiteral("Sentence %1 of model %2, prompt %3.").arg(k).arg(i).arg(p);
            m_store->addCompletion(pid, words.join(QLatin1Char(' ')), evalProvenance(m_models[i], m_sampling, pid));
        }
    }
    // A label pair that must not be affected.
    const qint64 lp = m_store->addPrompt(QStringLiteral("label prompt"));
    m_store->addPair(
        lp, m_store->addCompletion(lp, QStringLiteral("x")), m_store->addCompletion(lp, QStringLiteral("y")));

    const EvalPairsResult r = startEvalSession(*m_store, m_models, m_prompts, m_sampling);
    QCOMPARE(r.created, 12 * 3);
    QCOMPARE(r.missing, 0);
    // Judge every eval pair: a skewed but mixed pattern (later models win more), some ties and both-bad.
    const qint64 ann = m_store->annotator(QStringLiteral("judge")).id;
    std::mt19937 rng(5);
    int n = 0;
    while (auto shown = m_store->nextPairFor(ann, JudgmentKind::Eval)) {
        QCOMPARE(shown->kind, JudgmentKind::Eval);
        const Completion a = shown->leftIsA ? shown->left : shown->right;
        const Completion b = shown->leftIsA ? shown->right : shown->left;
        const int ma = int(a.text.count(QLatin1String("Sentence"))) - 1;
        const int mb = int(b.text.count(QLatin1String("Sentence"))) - 1;
        const int u = int(rng() % 10);
        Verdict v;
        if (u == 0)
            v = Verdict::Tie;
        else if (u == 1)
            v = Verdict::BothBad;
        else {
            const bool aWins = (u < 8) == (ma > mb); // the longer one wins 6 times in 8
            v = (aWins == shown->leftIsA) ? Verdict::Left : Verdict::Right;
        }
        m_store->recordVerdict(ann, *shown, v);
        ++n;
    }
    QCOMPARE(n, 36);
    endEvalSession(*m_store);
    m_session = loadEvalSession(*m_store);
    QCOMPARE(m_session.state, EvalSession::State::Ended);
    QCOMPARE(m_session.models.size(), 3);
    QCOMPARE(m_session.sampling.toJson(), m_sampling.toJson());
    QCOMPARE(m_session.sampling.seed, m_sampling.seed);
}

void TestEvaluationReport::cleanup()
{
    m_store.reset();
    m_dir.reset();
}

void TestEvaluationReport::resultsEqualComputeRatings()
{
    const EvaluationResults res = loadEvaluationResults(*m_store, m_session, 0, 500, 3);
    QVERIFY2(res.hasRatings, qPrintable(res.ratingsError));
    QCOMPARE(int(res.battles.size()), 36);
    for (const EvalBattleRow &row : res.rows) // plain prompts: the table shows the text itself
        QCOMPARE(row.promptSummary, m_store->prompt(row.promptId).text);

    // The same battles rebuilt independently: every eval judgment, models by provenance path.
    std::vector<IndexedBattle> battles;
    int bothBad = 0;
    ListQuery q;
    q.kind = JudgmentKind::Eval;
    q.limit = 1000;
    const Page<JudgmentRow> page = m_store->listJudgments(q);
    QVector<JudgmentRow> rows = page.rows;
    std::sort(rows.begin(), rows.end(),
        [](const JudgmentRow &a, const JudgmentRow &b) { return a.judgment.id < b.judgment.id; });
    ListQuery pq;
    pq.kind = JudgmentKind::Eval;
    pq.limit = 1000;
    const Page<PairRow> pr = m_store->listPairs(pq);
    QCOMPARE(pr.total, 36);
    for (const JudgmentRow &row : rows) {
        const Judgment &j = row.judgment;
        QCOMPARE(j.kind, JudgmentKind::Eval);
        qint64 ca = 0, cb = 0;
        for (const PairRow &p : pr.rows)
            if (p.id == j.pairId) {
                ca = p.completionA;
                cb = p.completionB;
            }
        auto indexOf = [&](qint64 completion) {
            const QString path = m_store->completion(completion).provenance.modelPath;
            for (int i = 0; i < m_models.size(); ++i)
                if (m_models[i].path == path)
                    return i;
            return -1;
        };
        IndexedBattle b;
        b.a = indexOf(ca);
        b.b = indexOf(cb);
        QVERIFY(b.a >= 0 && b.b >= 0);
        b.outcome = j.winner == Winner::A ? BattleOutcome::AWins
            : j.winner == Winner::B       ? BattleOutcome::BWins
            : j.winner == Winner::BothBad ? BattleOutcome::BothBad
                                          : BattleOutcome::Tie;
        bothBad += j.winner == Winner::BothBad;
        battles.push_back(b);
    }
    QCOMPARE(int(battles.size()), 36);
    RatingsOptions opt;
    opt.baseline = 0;
    opt.bootstrap = 500;
    opt.seed = 3;
    const RatingsReport expected = computeRatings(3, battles, opt);
    QCOMPARE(res.bothBad, bothBad);
    QVERIFY(bothBad > 0);
    for (int i = 0; i < 3; ++i) {
        const ModelRating &e = expected.models[size_t(i)];
        const ModelRating &g = res.ratings.models[size_t(i)];
        QCOMPARE(g.rating, e.rating);
        QCOMPARE(g.ratingLow, e.ratingLow);
        QCOMPARE(g.ratingHigh, e.ratingHigh);
        QCOMPARE(g.n, e.n);
        QCOMPARE(g.wins, e.wins);
        QCOMPARE(g.losses, e.losses);
        QCOMPARE(g.ties, e.ties);
        QCOMPARE(g.bothBad, e.bothBad);
        if (i != 0) {
            QCOMPARE(g.winRate, e.winRate);
            QCOMPARE(g.wilson.low, e.wilson.low);
            QCOMPARE(g.wilson.high, e.wilson.high);
            QCOMPARE(g.winBootstrap.low, e.winBootstrap.low);
            QCOMPARE(g.winBootstrap.high, e.winBootstrap.high);
            QCOMPARE(g.judgmentsToSeparate, e.judgmentsToSeparate);
        }
    }
    // The longer models were preferred 6 in 8: final above checkpoint-10 above base.
    QVERIFY(res.ratings.models[2].rating > res.ratings.models[1].rating);
    QVERIFY(res.ratings.models[1].rating > 1000.0);

    // Length statistics: model i writes i+1 sentences of 7 words.
    for (int i = 0; i < 3; ++i) {
        QCOMPARE(res.lengths[i].outputs, 12);
        QCOMPARE(res.lengths[i].meanWords, 7.0 * (i + 1));
        QCOMPARE(res.lengths[i].medianWords, 7.0 * (i + 1));
        double chars = 0;
        for (qint64 p : m_prompts)
            for (const Completion &c : m_store->completionsOf(p))
                if (c.provenance.modelPath == m_models[i].path)
                    chars += c.text.size();
        QCOMPARE(res.lengths[i].meanChars, chars / 12.0);
    }

    // Separation rows: exactly the model pairs whose intervals overlap, with judgmentsToSeparate of the head-to-head.
    for (int i = 0; i < 3; ++i)
        for (int j = i + 1; j < 3; ++j) {
            const bool overlap = res.ratingLow(i) <= res.ratingHigh(j) && res.ratingLow(j) <= res.ratingHigh(i);
            const auto it = std::find_if(res.separation.begin(), res.separation.end(),
                [&](const SeparationRow &s) { return s.a == i && s.b == j; });
            QCOMPARE(it != res.separation.end(), overlap);
            if (overlap) {
                double score = 0;
                int games = 0;
                for (const IndexedBattle &b : battles) {
                    if ((b.a == i && b.b == j) || (b.a == j && b.b == i)) {
                        ++games;
                        const double s = scoreOfA(b.outcome);
                        score += b.a == i ? s : 1.0 - s;
                    }
                }
                QCOMPARE(it->games, games);
                QCOMPARE(it->score, score);
                QCOMPARE(it->moreJudgments, judgmentsToSeparate(score, games));
            }
        }
    // Per-prompt rows carry both outputs.
    QCOMPARE(res.rows.size(), 36);
    for (const EvalBattleRow &r : res.rows) {
        QVERIFY(r.textA.contains(QStringLiteral("model %1").arg(r.modelA)));
        QVERIFY(r.textB.contains(QStringLiteral("model %1").arg(r.modelB)));
        QVERIFY(r.prompt.startsWith(QLatin1String("Prompt ")));
    }
}

void TestEvaluationReport::baselineChangesWinRates()
{
    const EvaluationResults res = loadEvaluationResults(*m_store, m_session, 2, 0, 0);
    QVERIFY(res.hasRatings);
    QCOMPARE(res.ratings.models[2].rating, 1000.0);
    QVERIFY(res.ratings.models[0].rating < 1000.0);
    QCOMPARE(res.ratings.models[0].n, 12);
    QVERIFY(res.ratings.models[0].winRate < 0.5);
    // Without a bootstrap the interval is ±1.96 standard errors.
    QCOMPARE(res.ratingLow(0), res.ratings.models[0].rating - kZ95 * res.ratings.models[0].standardError);
}

void TestEvaluationReport::htmlReportIsSelfContained()
{
    const EvaluationResults res = loadEvaluationResults(*m_store, m_session, 0, 200, 0);
    QVector<CheckpointScore> scores;
    scores << CheckpointScore { QStringLiteral("base"), 0, 8, 0.0, 0.0, 0.0, 0.0 }
           << CheckpointScore { QStringLiteral("checkpoint-10"), 10, 8, 0.625, 0.05, 0.4, -0.3 }
           << CheckpointScore { QStringLiteral("final"), 20, 8, 0.75, 0.09, 0.5, -0.8 };
    ReportMeta meta;
    meta.project = QStringLiteral("p.dpo");
    meta.sampling = m_sampling.toJson();
    meta.prompts = 12;
    const QString path = m_dir->filePath(QStringLiteral("report.html"));
    QString err;
    QVERIFY2(writeHtmlReport(path, res, scores, meta, &err), qPrintable(err));
    QFile f(path);
    QVERIFY(f.open(QIODevice::ReadOnly));
    const QString html = QString::fromUtf8(f.readAll());
    QVERIFY(html.startsWith(QLatin1String("<!DOCTYPE html>")));
    QVERIFY(html.contains(QLatin1String("<table id=\"models\">")));
    QVERIFY(html.contains(QLatin1String("<table id=\"prompts\">")));
    QVERIFY(html.contains(QLatin1String("<table id=\"checkpoints\">")));
    // Self-contained: no external references.
    QVERIFY(!html.contains(QLatin1String("src=\"http")));
    QVERIFY(!html.contains(QLatin1String("<link")));
    QVERIFY(!html.contains(QLatin1String("<script")));
    // Four charts, each a PNG that decodes at the rendered size.
    static const QRegularExpression img(QStringLiteral("src=\"data:image/png;base64,([A-Za-z0-9+/=]+)\""));
    int charts = 0;
    for (auto it = img.globalMatch(html); it.hasNext();) {
        const QByteArray png = QByteArray::fromBase64(it.next().captured(1).toLatin1());
        QImage image;
        QVERIFY(image.loadFromData(png, "PNG"));
        QCOMPARE(image.width(), 760);
        // Not blank: a chart has many colours.
        QSet<QRgb> colours;
        for (int y = 0; y < image.height(); y += 7)
            for (int x = 0; x < image.width(); x += 7)
                colours.insert(image.pixel(x, y));
        QVERIFY(colours.size() > 3);
        ++charts;
    }
    QCOMPARE(charts, 4);
    // Every model row, the escaped prompt text, each judgment row.
    for (const EvalModel &m : m_models)
        QVERIFY(html.contains(m.name.toHtmlEscaped()));
    QVERIFY(html.contains(QLatin1String("Prompt 3, with &quot;quotes&quot;")));
    QCOMPARE(int(html.count(QLatin1String("<tr>"))),
        1 + 3 + (res.separation.isEmpty() ? 0 : 1 + int(res.separation.size())) + 1 + 3 + 1 + 36);
}

void TestEvaluationReport::csvParses()
{
    const EvaluationResults res = loadEvaluationResults(*m_store, m_session, 0, 200, 0);
    const QString models = m_dir->filePath(QStringLiteral("report.csv"));
    const QString judgments = m_dir->filePath(QStringLiteral("report-judgments.csv"));
    const QString ckpts = m_dir->filePath(QStringLiteral("report-checkpoints.csv"));
    QVERIFY(writeCsvReport(models, res));
    QVERIFY(writeBattlesCsv(judgments, res));
    QVERIFY(writeCheckpointsCsv(ckpts, { CheckpointScore { QStringLiteral("a,b"), 3, 8, 0.5, 0.1, 0.2, -0.1 } }));

    auto read = [](const QString &p) {
        QFile f(p);
        f.open(QIODevice::ReadOnly);
        return QString::fromUtf8(f.readAll());
    };
    bool ok = false;
    const QVector<QStringList> m = parseCsv(read(models), &ok);
    QVERIFY(ok);
    QCOMPARE(m.size(), 1 + 3);
    const QStringList header = m[0];
    QVERIFY(header.contains(QStringLiteral("rating")));
    for (const QStringList &row : m)
        QCOMPARE(row.size(), header.size());
    const int nameCol = int(header.indexOf(QStringLiteral("model")));
    const int rateCol = int(header.indexOf(QStringLiteral("win_rate_vs_baseline")));
    const int ratingCol = int(header.indexOf(QStringLiteral("rating")));
    const int wordsCol = int(header.indexOf(QStringLiteral("mean_words")));
    for (int r = 1; r < m.size(); ++r) {
        int i = -1;
        for (int k = 0; k < m_models.size(); ++k)
            if (m_models[k].name == m[r][nameCol])
                i = k;
        QVERIFY(i >= 0);
        QVERIFY(std::abs(m[r][ratingCol].toDouble() - res.ratings.models[size_t(i)].rating) < 1e-3);
        QCOMPARE(m[r][wordsCol].toDouble(), 7.0 * (i + 1));
        if (i == 0)
            QVERIFY(m[r][rateCol].isEmpty()); // the baseline has no win rate against itself
        else
            QVERIFY(std::abs(m[r][rateCol].toDouble() - res.ratings.models[size_t(i)].winRate) < 1e-6);
    }

    const QVector<QStringList> j = parseCsv(read(judgments), &ok);
    QVERIFY(ok);
    QCOMPARE(j.size(), 1 + 36);
    for (const QStringList &row : j)
        QCOMPARE(row.size(), j[0].size());
    const int promptCol = int(j[0].indexOf(QStringLiteral("prompt")));
    QVERIFY(j[1][promptCol].contains(QLatin1String("\"quotes\"\nand a line break")));
    const int winnerCol = int(j[0].indexOf(QStringLiteral("winner")));
    for (int r = 1; r < j.size(); ++r)
        QVERIFY(QStringList({ "model_a", "model_b", "tie", "both_bad" }).contains(j[r][winnerCol]));

    const QVector<QStringList> c = parseCsv(read(ckpts), &ok);
    QVERIFY(ok);
    QCOMPARE(c.size(), 2);
    QCOMPARE(c[1][0], QStringLiteral("a,b"));
    QCOMPARE(c[1].size(), c[0].size());
}

void TestEvaluationReport::hiddenOutsideSessionModels()
{
    // Judgments between models outside the session, or with other sampling settings, do not count.
    SamplingSettings other = m_sampling;
    other.temperature = 1.3;
    const EvaluationResults res = loadEvaluationResults(
        *m_store,
        [&] {
            EvalSession s = m_session;
            s.sampling = other;
            return s;
        }(),
        0, 0, 0);
    QVERIFY(!res.hasRatings);
    QCOMPARE(int(res.battles.size()), 0);
    // A cache lookup keys on the settings and the prompt's seed.
    QVERIFY(findGeneratedCompletion(*m_store, m_prompts[0], m_models[0], m_sampling).has_value());
    QVERIFY(!findGeneratedCompletion(*m_store, m_prompts[0], m_models[0], other).has_value());
    SamplingSettings seed2 = m_sampling;
    seed2.seed = 12;
    QVERIFY(!findGeneratedCompletion(*m_store, m_prompts[0], m_models[0], seed2).has_value());
    // Greedy settings ignore the sampling knobs: one cache key.
    SamplingSettings g1, g2;
    g2.temperature = 0.3;
    g2.topK = 5;
    QCOMPARE(g1.toJson(), g2.toJson());
}

DPO_TEST_MAIN(TestEvaluationReport)

} // namespace test_evaluation_report

#include "test_evaluation_report.moc"
