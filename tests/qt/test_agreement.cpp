// Agreement statistics against published worked examples, and the store's agreement/bias report on a
// project built to reproduce one of them.
//  - Cohen's kappa: Wikipedia "Cohen's kappa" worked examples (kappa = 0.4; 0.1304; 0.2593).
//  - Fleiss' kappa: Wikipedia "Fleiss' kappa" worked example (10 subjects, 14 raters, 5 categories): 0.210.
//  - Krippendorff's alpha: Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the nominal
//    example with 4 observers, 12 units and missing values: 0.743.
#include "project/agreement.h"
#include "project/project_store.h"

#include <QTemporaryDir>
#include "qt_test_main.h"

#include <QTest>

#include <cmath>

namespace test_agreement { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

using namespace dpo;

class TestAgreement : public QObject {
    Q_OBJECT

private slots:
    void cohen_data();
    void cohen();
    void fleissWikipedia();
    void krippendorffNominal();
    void perfectAndOppositeRatings();
    void undefinedIsNaN();
    void storeReport();
};

void TestAgreement::cohen_data()
{
    // 2x2 table: both yes, A yes/B no, A no/B yes, both no.
    QTest::addColumn<int>("yy");
    QTest::addColumn<int>("yn");
    QTest::addColumn<int>("ny");
    QTest::addColumn<int>("nn");
    QTest::addColumn<double>("kappa");
    QTest::newRow("wikipedia 50 proposals") << 20 << 5 << 10 << 15 << 0.4;
    QTest::newRow("wikipedia same po, case 1") << 45 << 15 << 25 << 15 << 0.1304;
    QTest::newRow("wikipedia same po, case 2") << 25 << 35 << 5 << 35 << 0.2593;
}

void TestAgreement::cohen()
{
    QFETCH(int, yy);
    QFETCH(int, yn);
    QFETCH(int, ny);
    QFETCH(int, nn);
    QFETCH(double, kappa);
    std::vector<std::pair<int, int>> r;
    r.insert(r.end(), yy, { 0, 0 });
    r.insert(r.end(), yn, { 0, 1 });
    r.insert(r.end(), ny, { 1, 0 });
    r.insert(r.end(), nn, { 1, 1 });
    QVERIFY2(std::abs(cohenKappa(r, 2) - kappa) < 5e-5, qPrintable(QString::number(cohenKappa(r, 2), 'f', 6)));
}

void TestAgreement::fleissWikipedia()
{
    const std::vector<std::vector<int>> counts = {
        { 0, 0, 0, 0, 14 },
        { 0, 2, 6, 4, 2 },
        { 0, 0, 3, 5, 6 },
        { 0, 3, 9, 2, 0 },
        { 2, 2, 8, 1, 1 },
        { 7, 7, 0, 0, 0 },
        { 3, 2, 6, 3, 0 },
        { 2, 5, 3, 2, 2 },
        { 6, 5, 2, 1, 0 },
        { 0, 2, 2, 3, 7 },
    };
    const double k = fleissKappa(counts);
    QVERIFY2(std::abs(k - 0.210) < 5e-4, qPrintable(QString::number(k, 'f', 6)));
}

void TestAgreement::krippendorffNominal()
{
    // Reliability data (rows: observers A-D; 0 = missing), values 1..5.
    const int data[4][12] = {
        { 1, 2, 3, 3, 2, 1, 4, 1, 2, 0, 0, 0 },
        { 1, 2, 3, 3, 2, 2, 4, 1, 2, 5, 0, 3 },
        { 0, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, 0 },
        { 1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, 0 },
    };
    std::vector<std::vector<int>> counts(12, std::vector<int>(5, 0));
    for (const auto &observer : data)
        for (int u = 0; u < 12; ++u)
            if (observer[u] > 0)
                ++counts[size_t(u)][size_t(observer[u] - 1)];
    const double a = krippendorffAlphaNominal(counts);
    QVERIFY2(std::abs(a - 0.743) < 5e-4, qPrintable(QString::number(a, 'f', 6)));
}

void TestAgreement::perfectAndOppositeRatings()
{
    // Perfect agreement gives exactly 1; two raters who always disagree give a negative value.
    std::vector<std::vector<int>> perfect = { { 2, 0 }, { 0, 2 }, { 2, 0 }, { 0, 2 } };
    QCOMPARE(krippendorffAlphaNominal(perfect), 1.0);
    QCOMPARE(fleissKappa(perfect), 1.0);
    std::vector<std::vector<int>> opposite = { { 1, 1 }, { 1, 1 }, { 1, 1 }, { 1, 1 } };
    QVERIFY(krippendorffAlphaNominal(opposite) < 0);
    QVERIFY(fleissKappa(opposite) < 0);
}

void TestAgreement::undefinedIsNaN()
{
    QVERIFY(std::isnan(cohenKappa({}, 2)));
    QVERIFY(std::isnan(cohenKappa({ { 0, 0 }, { 0, 0 } }, 2))); // no variation: pe = 1
    QVERIFY(std::isnan(fleissKappa({ { 1, 0 }, { 0, 1 } }))); // no item rated twice
    QVERIFY(std::isnan(krippendorffAlphaNominal({ { 1, 0 } })));
}

void TestAgreement::storeReport()
{
    // Two annotators on 50 pairs reproducing Cohen's 20/5/10/15 table (a = "yes", b = "no"): kappa 0.4.
    QTemporaryDir dir;
    auto s = ProjectStore::open(dir.filePath("agree.dpoproj"));
    const qint64 x = s->annotator("x").id, y = s->annotator("y").id;
    QVector<qint64> pairs;
    {
        ProjectStore::Transaction tx(*s);
        for (int i = 0; i < 50; ++i) {
            const qint64 p = s->addPrompt(QStringLiteral("q%1").arg(i));
            // a is longer than b on every pair, so length bias = share of a wins.
            pairs << s->addPair(p, s->addCompletion(p, QStringLiteral("long answer %1").arg(i)),
                s->addCompletion(p, QStringLiteral("b%1").arg(i)));
        }
        tx.commit();
    }
    const QDateTime t = QDateTime::currentDateTimeUtc();
    int i = 0;
    auto judge = [&](int n, bool xA, bool yA) {
        for (int k = 0; k < n; ++k, ++i) {
            // x always sees a on the left, y always on the right: position bias is then computable by hand.
            s->recordJudgment(x, pairs[i], true, xA ? Verdict::Left : Verdict::Right, JudgmentKind::Label, t);
            s->recordJudgment(y, pairs[i], false, yA ? Verdict::Right : Verdict::Left, JudgmentKind::Label, t);
        }
    };
    judge(20, true, true);
    judge(5, true, false);
    judge(10, false, true);
    judge(15, false, false);
    // A skip and an eval judgment change nothing.
    s->recordJudgment(x, pairs[0], true, Verdict::Skip, JudgmentKind::Label, t.addSecs(-10));
    s->recordJudgment(x, pairs[1], true, Verdict::Right, JudgmentKind::Eval, t);

    const AgreementReport r = s->agreement();
    QCOMPARE(r.raters, 2);
    QCOMPARE(r.items, 50);
    QCOMPARE(r.multiRated, 50);
    QVERIFY2(std::abs(r.cohenKappa - 0.4) < 1e-9, qPrintable(QString::number(r.cohenKappa)));
    QCOMPARE(r.pairwise.size(), 1);
    // Fleiss by hand from the table: p_a = (25 + 30) / 100 = 0.55, pe = 0.55^2 + 0.45^2 = 0.505,
    // P = 35 / 50 = 0.7, kappa = (0.7 - 0.505) / 0.495.
    QVERIFY(std::abs(r.fleissKappa - (0.7 - 0.505) / 0.495) < 1e-9);
    // Krippendorff: alpha = 1 - (n - 1) * Do / De with n = 100: 1 - 99 * 30 / (2 * 55 * 45).
    QVERIFY(std::abs(r.krippendorffAlpha - (1.0 - 99.0 * 30.0 / (2 * 55 * 45))) < 1e-9);
    // Each annotator against the other: 35 of 50 agree.
    QCOMPARE(r.annotators.size(), 2);
    for (const auto &a : r.annotators) {
        QCOMPARE(a.items, 50);
        QVERIFY(std::abs(a.agreementWithMajority - 0.7) < 1e-9);
    }
    // Position: x chose a (left for x) 25 times, b (right) 25 times; y chose a (right for y) 30, b (left) 20.
    QCOMPARE(r.leftWins, 25 + 20);
    QCOMPARE(r.rightWins, 25 + 30);
    QVERIFY(std::abs(r.leftWinShare - 0.45) < 1e-9);
    // Length: a is the longer one: 25 + 30 a wins of 100.
    QCOMPARE(r.longerWins, 55);
    QCOMPARE(r.shorterWins, 45);
    // Eval judgments are reported apart.
    QCOMPARE(s->agreement(JudgmentKind::Eval).judgments, 1);
}

DPO_TEST_MAIN(TestAgreement)

} // namespace test_agreement

#include "test_agreement.moc"
