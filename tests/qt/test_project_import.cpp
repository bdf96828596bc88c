// Import and export: TRL JSONL (standard, implicit prompt, conversational) round trip, bad rows with line
// numbers in skip and abort modes, JSONL pairs to label (completion_a/completion_b, message lists kept through
// labeling and export), CSV (RFC 4180 quoting, embedded newlines, judged and unjudged), prompts-only
// JSONL, majority/minimum-agreement export, judgments export, cancel; hostile input (lone surrogate escapes,
// invalid UTF-8 in CSV; rows nested 100,000 levels deep or above the row limit, refused before parsing, the
// good rows around them kept); atomic export (a cancel or a write error never leaves a partial file).
#include "project/evaluation.h"
#include "project/project_store.h"

#include <QDir>
#include <QElapsedTimer>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QTemporaryDir>
#include "qt_test_main.h"

#include <QTest>

#include <signal.h>
#include <sys/resource.h>

namespace test_project_import { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

using namespace dpo;

class TestProjectImport : public QObject {
    Q_OBJECT

private:
    QTemporaryDir m_dir;
    int m_n = 0;
    QString path(const QString &name) { return m_dir.filePath(name); }
    QString newProject() { return path(QStringLiteral("proj%1.dpoproj").arg(++m_n)); }
    static void write(const QString &file, const QByteArray &data)
    {
        QFile f(file);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write(data);
    }
    static QList<QJsonObject> readJsonl(const QString &file)
    {
        QFile f(file);
        if (!f.open(QIODevice::ReadOnly))
            return {};
        QList<QJsonObject> rows;
        for (const QByteArray &line : f.readAll().split('\n'))
            if (!line.trimmed().isEmpty())
                rows << QJsonDocument::fromJson(line).object();
        return rows;
    }

private slots:
    void trlRoundTrip();
    void pairsToLabel_data();
    void pairsToLabel();
    void conversationalPromptPlainCompletions();
    void badRows_data();
    void badRows();
    void csvQuoting();
    void csvBadRows();
    void promptsOnly();
    void promptsFileLineRules();
    void exportMajority_data();
    void exportMajority();
    void judgmentsExport();
    void cancel();
    void rejectLoneSurrogates();
    void csvInvalidUtf8();
    void rowLimits_data();
    void rowLimits();
    void exportCancelKeepsOldFile();
    void exportWriteErrorLeavesNoPartialFile();

private:
    // A project of n judged pairs with ~600-byte rows (about n * 600 bytes of TRL export).
    QString bigProject(int n);
    static QByteArray bytes(const QString &file)
    {
        QFile f(file);
        return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
    }
};

void TestProjectImport::trlRoundTrip()
{
    const QByteArray input =
        // standard, with escapes, unicode and newlines
        R"J({"prompt": "Write \"hello\"\nin C:", "chosen": "printf(\"hello\\n\");", "rejected": "print('hello')"})J"
        "\n"
        R"J({"prompt": "Ünïcödé — 日本語 🙂?", "chosen": "Oui 🙂", "rejected": "Non\ttab"})J"
        "\n"
        // implicit prompt (strings)
        R"J({"chosen": "The sky is blue because of Rayleigh scattering.", "rejected": "The sky is green."})J"
        "\n"
        // conversational
        R"J({"prompt": [{"role": "user", "content": "Hi!"}], "chosen": [{"role": "assistant", "content": "Hello, how can I help?"}], "rejected": [{"role": "assistant", "content": "Go away."}]})J"
        "\n"
        // conversational, implicit prompt, multi-turn
        R"J({"chosen": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}], "rejected": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "5"}]})J"
        "\n"
        // the same prompt twice: stored once
        R"J({"prompt": "Ünïcödé — 日本語 🙂?", "chosen": "Sí", "rejected": "No"})J"
        "\n";
    write(path("in.jsonl"), input);
    auto s = ProjectStore::open(newProject());
    const ImportResult r = importFile(*s, path("in.jsonl"));
    QCOMPARE(r.format, ImportFormat::Trl);
    QCOMPARE(r.skipped, 0);
    QCOMPARE(r.imported, 6);
    QCOMPARE(s->counts().prompts, 5);
    QCOMPARE(s->counts().pairs, 6);
    QCOMPARE(s->counts().prejudgedPairs, 6);
    QCOMPARE(s->counts().labelSlots, 0); // already judged: not queued
    // Rendered text for the Label page.
    const auto pairs = s->listPairs(ListQuery {});
    QCOMPARE(pairs.rows[2].prompt, QStringLiteral("The sky is"));
    QCOMPARE(pairs.rows[2].textA, QStringLiteral(" blue because of Rayleigh scattering."));
    QCOMPARE(pairs.rows[3].prompt, QStringLiteral("Hi!"));
    QCOMPARE(pairs.rows[4].prompt, QStringLiteral("system:\nBe brief.\n\nuser:\n2+2?"));
    QCOMPARE(pairs.rows[4].textB, QStringLiteral("5"));

    const ExportResult e = exportFile(*s, path("out.jsonl"));
    QCOMPARE(e.rows, 6);
    const auto in = readJsonl(path("in.jsonl")), out = readJsonl(path("out.jsonl"));
    QCOMPARE(out.size(), in.size());
    for (int i = 0; i < in.size(); ++i)
        QCOMPARE(out[i], in[i]);
    // Once labeled, the human majority decides: flip row 0.
    const qint64 a = s->annotator("h").id;
    s->recordJudgment(a, pairs.rows[0].id, true, Verdict::Right, JudgmentKind::Label, QDateTime::currentDateTimeUtc());
    exportFile(*s, path("out2.jsonl"));
    const auto flipped = readJsonl(path("out2.jsonl"));
    QCOMPARE(flipped[0]["chosen"], in[0]["rejected"]);
    QCOMPARE(flipped[0]["rejected"], in[0]["chosen"]);
}

void TestProjectImport::pairsToLabel_data()
{
    QTest::addColumn<QByteArray>("row");
    QTest::addColumn<QString>("textB"); // the stored text of completion_b
    QTest::newRow("conversational")
        << QByteArray(
               R"J({"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}, )J"
               R"J({"role": "assistant", "content": "4"}, {"role": "user", "content": "And 3+3?"}], )J"
               R"J("completion_a": [{"role": "assistant", "content": "6"}], )J"
               R"J("completion_b": [{"role": "assistant", "content": null, "tool_calls": [{"type": "function", )J"
               R"J("function": {"name": "add", "arguments": {"a": 3, "b": 3}}}]}, {"role": "tool", "content": "6"}, )J"
               R"J({"role": "assistant", "content": "It is 6."}]})J")
        << QStringLiteral("assistant:\ntool call: add({\"a\":3,\"b\":3})\n\ntool:\n6\n\nassistant:\nIt is 6.");
    QTest::newRow("strings") << QByteArray(R"J({"prompt": "2+2?", "completion_a": "4", "completion_b": "5"})J")
                             << QStringLiteral("5");
}

// JSONL rows with completion_a/completion_b (CSV's unjudged columns) are queued for labeling; the Label page
// gets the message lists, and once judged the export gives the rows back as TRL rows with the same messages.
void TestProjectImport::pairsToLabel()
{
    QFETCH(QByteArray, row);
    QFETCH(QString, textB);
    write(path("label.jsonl"), row + "\n");
    auto s = ProjectStore::open(newProject());
    s->setOverlap(2);
    const ImportResult r = importFile(*s, path("label.jsonl"));
    QCOMPARE(r.format, ImportFormat::Trl);
    QCOMPARE(r.skipped, 0);
    QCOMPARE(r.imported, 1);
    QCOMPARE(s->counts().prejudgedPairs, 0);
    QCOMPARE(s->counts().labelSlots, 2);
    const QJsonObject in = QJsonDocument::fromJson(row).object();
    const auto compact = [](const QJsonValue &v) {
        return v.isArray() ? QString::fromUtf8(QJsonDocument(v.toArray()).toJson(QJsonDocument::Compact)) : QString();
    };

    const qint64 annotator = s->annotator(QStringLiteral("alice")).id;
    const std::optional<ShownPair> shown = s->nextPairFor(annotator);
    QVERIFY(shown);
    QCOMPARE(shown->promptMessages, compact(in["prompt"]));
    const QJsonValue leftIn = in[shown->leftIsA ? "completion_a" : "completion_b"];
    const QJsonValue rightIn = in[shown->leftIsA ? "completion_b" : "completion_a"];
    QCOMPARE(shown->left.messagesJson, compact(leftIn));
    QCOMPARE(shown->right.messagesJson, compact(rightIn));
    QCOMPARE(s->prompt(shown->promptId).messagesJson, compact(in["prompt"]));
    const auto pairs = s->listPairs(ListQuery {});
    QCOMPARE(pairs.rows.size(), 1);
    QCOMPARE(pairs.rows[0].promptMessages, compact(in["prompt"]));
    QCOMPARE(pairs.rows[0].messagesA, compact(in["completion_a"]));
    QCOMPARE(pairs.rows[0].messagesB, compact(in["completion_b"]));
    QCOMPARE(pairs.rows[0].textB, textB);
    QCOMPARE(s->listPrompts(ListQuery {}).rows[0].messagesJson, compact(in["prompt"]));

    s->recordVerdict(annotator, *shown, Verdict::Left);
    const auto judgments = s->listJudgments(ListQuery {});
    QCOMPARE(judgments.rows.size(), 1);
    QCOMPARE(judgments.rows[0].promptMessages, compact(in["prompt"]));
    QCOMPARE(judgments.rows[0].messagesA, compact(in["completion_a"]));
    // The judgments export carries the message lists of conversational rows, and only of those.
    ExportOptions jo;
    jo.format = ExportFormat::JudgmentsJsonl;
    QCOMPARE(exportFile(*s, path("judgments.jsonl"), jo).rows, 1);
    const QJsonObject j = readJsonl(path("judgments.jsonl")).value(0);
    QCOMPARE(j["prompt"].toString(), pairs.rows[0].prompt);
    QCOMPARE(j.contains("prompt_messages"), in["prompt"].isArray());
    if (in["prompt"].isArray()) {
        QCOMPARE(j["prompt_messages"], in["prompt"]);
        QCOMPARE(j["completion_a_messages"], in["completion_a"]);
        QCOMPARE(j["completion_b_messages"], in["completion_b"]);
    }
    QCOMPARE(exportFile(*s, path("labeled.jsonl")).rows, 1);
    const auto out = readJsonl(path("labeled.jsonl"));
    QCOMPARE(out.size(), 1);
    QCOMPARE(out[0]["prompt"], in["prompt"]);
    QCOMPARE(out[0]["chosen"], leftIn);
    QCOMPARE(out[0]["rejected"], rightIn);
}

// Candidates generated for a conversational prompt, and repairs, are plain text: exported, each is one
// assistant turn, so the row stays conversational throughout as TRL requires.
void TestProjectImport::conversationalPromptPlainCompletions()
{
    const QByteArray prompt = R"J([{"role":"system","content":"Be brief."},{"role":"user","content":"2+2?"}])J";
    write(path("conv_prompts.jsonl"), "{\"prompt\": " + prompt + "}\n");
    auto s = ProjectStore::open(newProject());
    QCOMPARE(importFile(*s, path("conv_prompts.jsonl")).imported, 1);
    const QVector<Prompt> prompts = s->promptsNeedingCompletions(2);
    QCOMPARE(prompts.size(), 1);
    const QJsonArray promptArray = QJsonDocument::fromJson(prompt).array();
    QCOMPARE(QJsonDocument::fromJson(prompts[0].messagesJson.toUtf8()).array(), promptArray);
    Provenance generated;
    generated.source = QStringLiteral("generated");
    const qint64 a = s->addCompletion(prompts[0].id, QStringLiteral("4"), generated);
    const qint64 b = s->addCompletion(prompts[0].id, QStringLiteral("5"), generated);
    s->addPair(prompts[0].id, a, b, QStringLiteral("generated"));
    const qint64 annotator = s->annotator(QStringLiteral("alice")).id;
    const std::optional<ShownPair> shown = s->nextPairFor(annotator);
    QVERIFY(shown);
    QCOMPARE(QJsonDocument::fromJson(shown->promptMessages.toUtf8()).array(), promptArray);
    QVERIFY(shown->left.messagesJson.isEmpty());
    s->repair(annotator, *shown, true, QStringLiteral("Four."));
    s->recordVerdict(annotator, *shown, Verdict::Left);

    QCOMPARE(exportFile(*s, path("conv_out.jsonl")).rows, 2);
    const auto out = readJsonl(path("conv_out.jsonl"));
    const auto turn = [](const QString &text) {
        return QJsonValue(QJsonArray { QJsonObject { { "role", "assistant" }, { "content", text } } });
    };
    const QJsonValue promptValue = promptArray;
    QCOMPARE(out[0]["prompt"], promptValue);
    QCOMPARE(out[0]["chosen"], turn(shown->left.text));
    QCOMPARE(out[0]["rejected"], turn(shown->right.text));
    QCOMPARE(out[1]["prompt"], promptValue);
    QCOMPARE(out[1]["chosen"], turn(QStringLiteral("Four.")));
    QCOMPARE(out[1]["rejected"], turn(shown->left.text));
}

void TestProjectImport::badRows_data()
{
    QTest::addColumn<bool>("abort");
    QTest::newRow("skip") << false;
    QTest::newRow("abort") << true;
}

void TestProjectImport::badRows()
{
    QFETCH(bool, abort);
    QByteArray input;
    input += R"J({"prompt": "p1", "chosen": "c1", "rejected": "r1"})J"
             "\n"; // 1 good
    input += R"J({"prompt": "p2", "chosen": "c2", "rejected": )J"
             "\n"; // 2 invalid JSON
    input += R"J({"prompt": "p3", "chosen": "c3"})J"
             "\n"; // 3 missing rejected
    input += R"J({"prompt": "p4", "chosen": "   ", "rejected": "r4"})J"
             "\n"; // 4 empty text
    input += QByteArray(R"J({"prompt": "p5 )J") + "\xff\xfe"
        + R"J(", "chosen": "c5", "rejected": "r5"})J"
          "\n"; // 5 UTF-8
    input += "\n"; // 6 blank: ignored
    input += R"J([1, 2, 3])J"
             "\r\n"; // 7 not an object
    input += R"J({"prompt": "p8", "chosen": 8, "rejected": "r8"})J"
             "\n"; // 8 wrong type
    input += R"J({"prompt": "p9", "chosen": "c9", "rejected": "r9"})J"; // 9 good, no final newline
    write(path("bad.jsonl"), input);
    auto s = ProjectStore::open(newProject());
    ImportOptions o;
    o.onError = abort ? OnError::Abort : OnError::Skip;
    const ImportResult r = importFile(*s, path("bad.jsonl"), o);
    QCOMPARE(r.skipped, 6);
    QCOMPARE(r.errors.size(), 6);
    const QList<qint64> lines = { 2, 3, 4, 5, 7, 8 };
    const QStringList words = { "invalid JSON", "missing field \"rejected\"", "\"chosen\" is empty", "invalid UTF-8",
        "JSON object", "\"chosen\" must be" };
    for (int i = 0; i < lines.size(); ++i) {
        QCOMPARE(r.errors[i].line, lines[i]);
        QVERIFY2(r.errors[i].message.contains(words[i]), qPrintable(r.errors[i].message));
    }
    QCOMPARE(r.aborted, abort);
    QCOMPARE(r.imported, abort ? 0 : 2);
    QCOMPARE(s->counts().pairs, abort ? 0 : 2);
    QCOMPARE(s->counts().prompts, abort ? 0 : 2);
}

void TestProjectImport::csvQuoting()
{
    // Unjudged pairs: commas, doubled quotes, CRLF and LF newlines inside quoted fields.
    const QByteArray unjudged = "prompt,completion_a,completion_b\r\n"
                                "\"Say \"\"hi\"\", twice\",\"hi, hi\",\"hi\r\nhi\"\r\n"
                                "plain prompt,plain a,plain b\r\n"
                                "\"multi\nline\nprompt\",a,\"b with \"\"quotes\"\"\"\n";
    write(path("pairs.csv"), unjudged);
    auto s = ProjectStore::open(newProject());
    s->setOverlap(2);
    ImportResult r = importFile(*s, path("pairs.csv"));
    QCOMPARE(r.format, ImportFormat::Csv);
    QCOMPARE(r.skipped, 0);
    QCOMPARE(r.imported, 3);
    QCOMPARE(s->counts().labelSlots, 6); // unjudged pairs are queued k times
    const auto rows = s->listPairs(ListQuery {});
    QCOMPARE(rows.rows[0].prompt, QStringLiteral("Say \"hi\", twice"));
    QCOMPARE(rows.rows[0].textA, QStringLiteral("hi, hi"));
    QCOMPARE(rows.rows[0].textB, QStringLiteral("hi\r\nhi"));
    QCOMPARE(rows.rows[2].prompt, QStringLiteral("multi\nline\nprompt"));
    QCOMPARE(rows.rows[2].textB, QStringLiteral("b with \"quotes\""));
    // Unjudged pairs do not export until someone judges them.
    QCOMPARE(exportFile(*s, path("none.jsonl")).rows, 0);

    // Already judged (the seed's tuples): preferred / dispreferred export back as chosen / rejected.
    const QByteArray judged = "prompt,preferred,dispreferred\n"
                              "\"2+2, please\",4,\"5\"\"?\"\n"
                              "capital of France,Paris,\"Lyon\nor Nice\"\n";
    write(path("judged.csv"), judged);
    auto t = ProjectStore::open(newProject());
    r = importFile(*t, path("judged.csv"));
    QCOMPARE(r.imported, 2);
    QCOMPARE(exportFile(*t, path("judged.jsonl")).rows, 2);
    const auto out = readJsonl(path("judged.jsonl"));
    QCOMPARE(out[0]["prompt"].toString(), QStringLiteral("2+2, please"));
    QCOMPARE(out[0]["chosen"].toString(), QStringLiteral("4"));
    QCOMPARE(out[0]["rejected"].toString(), QStringLiteral("5\"?"));
    QCOMPARE(out[1]["rejected"].toString(), QStringLiteral("Lyon\nor Nice"));
}

void TestProjectImport::csvBadRows()
{
    const QByteArray csv = "prompt,completion_a,completion_b\n" // line 1
                           "\"p\n2\",a,b\n" // lines 2-3 good
                           "p4,only two\n" // line 4: field count
                           "p5,,b\n" // line 5: empty
                           "p6,\"a\n\n\",b\n" // lines 6-8 good (a has text)
                           "p9,\xc3\x28,b\n" // line 9: invalid UTF-8
                           "p10,a,b\n" // line 10 good
                           "\"p11,a,b\n"; // line 11: unterminated quote
    write(path("bad.csv"), csv);
    auto s = ProjectStore::open(newProject());
    const ImportResult r = importFile(*s, path("bad.csv"));
    QCOMPARE(r.imported, 3);
    QCOMPARE(r.skipped, 4);
    QCOMPARE(r.errors.size(), 4);
    QCOMPARE(r.errors[0].line, 4);
    QVERIFY(r.errors[0].message.contains("expected 3 fields"));
    QCOMPARE(r.errors[1].line, 5);
    QVERIFY(r.errors[1].message.contains("completion_a"));
    QCOMPARE(r.errors[2].line, 9);
    QVERIFY(r.errors[2].message.contains("UTF-8"));
    QCOMPARE(r.errors[3].line, 11);
    QVERIFY(r.errors[3].message.contains("unterminated"));

    write(path("header.csv"), "question,answer\nq,a\n");
    const ImportResult h = importFile(*s, path("header.csv"));
    QCOMPARE(h.imported, 0);
    QCOMPARE(h.errors.size(), 1);
    QCOMPARE(h.errors[0].line, 1);
}

void TestProjectImport::promptsOnly()
{
    write(path("prompts.jsonl"),
        R"J({"prompt": "first"})J"
        "\n"
        R"J({"prompt": "second"})J"
        "\n"
        R"J({"prompt": "first"})J"
        "\n"
        R"J({"prompt": ""})J"
        "\n"
        R"J({"prompt": [{"role": "user", "content": "third"}]})J"
        "\n");
    auto s = ProjectStore::open(newProject());
    const ImportResult r = importFile(*s, path("prompts.jsonl"));
    QCOMPARE(r.format, ImportFormat::Prompts);
    QCOMPARE(r.imported, 4);
    QCOMPARE(r.skipped, 1);
    QCOMPARE(r.errors[0].line, 4);
    QCOMPARE(s->counts().prompts, 3);
    QCOMPARE(s->counts().pairs, 0);
    const auto need = s->promptsNeedingCompletions(2);
    QCOMPARE(need.size(), 3);
    QCOMPARE(need[2].text, QStringLiteral("third"));
    // Generated candidates with provenance.
    Provenance p;
    p.source = "generated";
    p.modelPath = "/models/tiny";
    p.samplingJson = R"J({"temperature":0.7})J";
    p.seed = 42;
    const qint64 c = s->addCompletion(need[0].id, "candidate", p);
    const Completion back = s->completion(c);
    QCOMPARE(back.provenance.source, QStringLiteral("generated"));
    QCOMPARE(back.provenance.seed, std::optional<qint64>(42));
    QCOMPARE(back.provenance.samplingJson, p.samplingJson);
}

// The Evaluate page's prompts file (readPromptsJsonl) and the prompts import read lines by the same rules
// (engine/io/jsonl_lines.h): a BOM, CRLF, blank lines counted in the line numbers, no final newline.
void TestProjectImport::promptsFileLineRules()
{
    const QByteArray text = "\xEF\xBB\xBF{\"prompt\": \"first\"}\r\n"
                            "\r\n"
                            " \t\n"
                            "{\"prompt\": \"\"}\n"
                            "{\"prompt\": [{\"role\": \"user\", \"content\": \"second\"}]}";
    write(path("bom.jsonl"), text);
    int skipped = -1;
    QCOMPARE(readPromptsJsonl(path("bom.jsonl"), &skipped), (QStringList { QStringLiteral("first"), QStringLiteral("second") }));
    QCOMPARE(skipped, 1);
    auto s = ProjectStore::open(newProject());
    ImportOptions opt;
    opt.format = ImportFormat::Prompts;
    const ImportResult r = importFile(*s, path("bom.jsonl"), opt);
    QCOMPARE(r.imported, 2);
    QCOMPARE(r.skipped, 1);
    QCOMPARE(r.errors[0].line, 4); // blank lines 2 and 3 counted
    QCOMPARE(s->counts().prompts, 2);

    // Errors name the file and the line; a line above the row limit is refused before parsing.
    write(path("bad.jsonl"), "{\"prompt\": \"a\"}\n\n[1]\n");
    try {
        readPromptsJsonl(path("bad.jsonl"));
        QFAIL("no error");
    } catch (const std::exception &e) {
        QVERIFY2(QString::fromUtf8(e.what()).contains(path("bad.jsonl") + QStringLiteral(":3: invalid JSON")), e.what());
    }
    qputenv("DPO_MAX_ROW_BYTES", "64");
    write(path("long.jsonl"), "{\"prompt\": \"a\"}\n{\"prompt\": \"" + QByteArray(100, 'x') + "\"}\n");
    try {
        readPromptsJsonl(path("long.jsonl"));
        qunsetenv("DPO_MAX_ROW_BYTES");
        QFAIL("no error");
    } catch (const std::exception &e) {
        qunsetenv("DPO_MAX_ROW_BYTES");
        QVERIFY2(QString::fromUtf8(e.what()).contains(QStringLiteral(":2: row of 114 bytes is above the limit of 64 bytes")),
            e.what());
    }
}

void TestProjectImport::exportMajority_data()
{
    QTest::addColumn<int>("minVotes");
    QTest::addColumn<double>("minAgreement");
    QTest::addColumn<QStringList>("expected"); // prompts exported, in order
    // Pairs: q0 votes a,a,b (2/3 a); q1 a,b (no majority); q2 tie,tie,a (tie wins: out); q3 b (1 vote);
    // q4 both_bad,a,a (2/3 a); q5 only skips; q6 eval judgments only.
    QTest::newRow("plain majority") << 1 << 0.0 << QStringList { "q0", "q3", "q4" };
    QTest::newRow("min votes 2") << 2 << 0.0 << QStringList { "q0", "q4" };
    QTest::newRow("min agreement 0.7") << 1 << 0.7 << QStringList { "q3" };
}

void TestProjectImport::exportMajority()
{
    QFETCH(int, minVotes);
    QFETCH(double, minAgreement);
    QFETCH(QStringList, expected);
    auto s = ProjectStore::open(newProject());
    const QVector<qint64> ann = { s->annotator("x").id, s->annotator("y").id, s->annotator("z").id };
    QVector<qint64> pairs;
    for (int i = 0; i < 7; ++i) {
        const qint64 p = s->addPrompt(QStringLiteral("q%1").arg(i));
        pairs << s->addPair(p, s->addCompletion(p, "A"), s->addCompletion(p, "B"), "import",
            i == 6 ? JudgmentKind::Eval : JudgmentKind::Label);
    }
    const QDateTime t = QDateTime::currentDateTimeUtc();
    auto vote = [&](int pair, const QList<Verdict> &vs, JudgmentKind kind = JudgmentKind::Label) {
        for (int i = 0; i < vs.size(); ++i)
            s->recordJudgment(ann[i], pairs[pair], /*leftIsA=*/i % 2 == 0,
                // express "a wins" independent of side: Left when a is on the left
                vs[i], kind, t);
    };
    // With leftIsA alternating (x: a left, y: b left, z: a left), pick verdicts that give the winners above.
    vote(0, { Verdict::Left, Verdict::Right, Verdict::Right }); // a, a, b
    vote(1, { Verdict::Left, Verdict::Left }); // a, b
    vote(2, { Verdict::Tie, Verdict::Tie, Verdict::Left }); // tie, tie, a
    vote(3, { Verdict::Right }); // b
    vote(4, { Verdict::BothBad, Verdict::Right, Verdict::Left }); // both_bad, a, a
    vote(5, { Verdict::Skip, Verdict::Skip });
    vote(6, { Verdict::Left, Verdict::Left }, JudgmentKind::Eval);
    ExportOptions o;
    o.minVotes = minVotes;
    o.minAgreement = minAgreement;
    const ExportResult r = exportFile(*s, path("maj.jsonl"), o);
    const auto rows = readJsonl(path("maj.jsonl"));
    QCOMPARE(r.rows, qint64(expected.size()));
    QStringList got;
    for (const auto &row : rows) {
        got << row["prompt"].toString();
        const bool aWins = row["prompt"].toString() != QLatin1String("q3");
        QCOMPARE(row["chosen"].toString(), aWins ? QStringLiteral("A") : QStringLiteral("B"));
    }
    QCOMPARE(got, expected);
}

void TestProjectImport::judgmentsExport()
{
    auto s = ProjectStore::open(newProject());
    const qint64 p = s->addPrompt("prompt, with comma");
    Provenance prov;
    prov.source = "generated";
    prov.modelPath = "/m";
    prov.seed = 7;
    const qint64 pair = s->addPair(p, s->addCompletion(p, "A", prov), s->addCompletion(p, "B\n\"quoted\""));
    const qint64 a = s->annotator("ann").id;
    auto shown = s->nextPairFor(a);
    QVERIFY(shown);
    s->recordVerdict(a, *shown, Verdict::Left, Strength::Much, "he said \"hi\", then\nleft");
    s->recordJudgment(a, pair, true, Verdict::Tie, JudgmentKind::Eval, QDateTime::currentDateTimeUtc());

    ExportOptions o;
    o.format = ExportFormat::JudgmentsJsonl;
    QCOMPARE(exportFile(*s, path("j.jsonl"), o).rows, 2);
    const auto rows = readJsonl(path("j.jsonl"));
    QCOMPARE(rows[0]["annotator"].toString(), QStringLiteral("ann"));
    QCOMPARE(rows[0]["verdict"].toString(), QStringLiteral("left"));
    QCOMPARE(rows[0]["winner"].toString(), shown->leftIsA ? QStringLiteral("a") : QStringLiteral("b"));
    QCOMPARE(rows[0]["shown_left"].toString(), shown->leftIsA ? QStringLiteral("a") : QStringLiteral("b"));
    QCOMPARE(rows[0]["strength"].toString(), QStringLiteral("much"));
    QCOMPARE(rows[0]["rationale"].toString(), QStringLiteral("he said \"hi\", then\nleft"));
    QCOMPARE(rows[0]["model_a"].toString(), QStringLiteral("/m"));
    QCOMPARE(rows[0]["seed_a"].toInt(), 7);
    QVERIFY(rows[0]["seed_b"].isNull());
    QCOMPARE(rows[0]["kind"].toString(), QStringLiteral("label"));
    QCOMPARE(rows[1]["kind"].toString(), QStringLiteral("eval"));
    QVERIFY(!rows[0]["shown_at"].toString().isEmpty());

    o.kind = JudgmentKind::Label;
    o.format = ExportFormat::JudgmentsCsv;
    QCOMPARE(exportFile(*s, path("j.csv"), o).rows, 1);
    QFile f(path("j.csv"));
    QVERIFY(f.open(QIODevice::ReadOnly));
    const QByteArray csv = f.readAll();
    QVERIFY(csv.startsWith("judgment_id,kind,pair_id,"));
    QVERIFY(csv.contains(",\"he said \"\"hi\"\", then\nleft\","));
    QVERIFY(csv.contains(",\"prompt, with comma\","));
    QVERIFY(csv.contains(",\"B\n\"\"quoted\"\"\","));
    // The CSV reads back through the importer's RFC 4180 parser: one header + one record.
    QCOMPARE(csv.count("\r\n"), 2);
}

void TestProjectImport::cancel()
{
    QByteArray input;
    for (int i = 0; i < 5000; ++i)
        input += QStringLiteral(R"J({"prompt": "p%1", "chosen": "c", "rejected": "r"})J").arg(i).toUtf8() + "\n";
    write(path("many.jsonl"), input);
    auto s = ProjectStore::open(newProject());
    std::atomic<bool> stop { false };
    ImportOptions o;
    qint64 calls = 0, lastDone = 0, lastTotal = 0;
    o.progress = [&](qint64 done, qint64 total) {
        ++calls;
        QVERIFY(done >= lastDone);
        lastDone = done;
        lastTotal = total;
        if (done > total / 2)
            stop = true; // cancel midway: rows already written in the transaction are rolled back
    };
    o.cancel = &stop;
    const ImportResult r = importFile(*s, path("many.jsonl"), o);
    QVERIFY(r.cancelled);
    QVERIFY(calls > 2);
    QVERIFY(lastTotal > 0);
    QCOMPARE(s->counts().pairs, 0);
    QCOMPARE(s->counts().prompts, 0);
    // Without cancel everything goes in.
    o.cancel = nullptr;
    o.progress = {};
    QCOMPARE(importFile(*s, path("many.jsonl"), o).imported, 5000);
}

void TestProjectImport::rejectLoneSurrogates()
{
    // "\ud800" alone has no UTF-8 form: it was stored as the bytes ED A0 80. A proper pair (an emoji) is fine.
    const QByteArray input
        = R"J({"prompt": "good", "chosen": "c1", "rejected": "r1"})J"
          "\n"
          R"J({"prompt": "p2", "chosen": "bad \ud800 here", "rejected": "r2"})J"
          "\n"
          R"J({"prompt": [{"role": "user", "content": "low \udc00"}], "chosen": "c3", "rejected": "r3"})J"
          "\n"
          R"J({"prompt": "p4", "chosen": "c4", "rejected": "r4", "\udbff": 1})J"
          "\n"
          R"J({"prompt": "emoji \ud83d\ude00", "chosen": "c5", "rejected": "r5"})J"
          "\n";
    write(path("surrogates.jsonl"), input);
    auto s = ProjectStore::open(newProject());
    const ImportResult r = importFile(*s, path("surrogates.jsonl"));
    QCOMPARE(r.imported, 2);
    QCOMPARE(r.errors.size(), 3);
    const QList<qint64> lines = { 2, 3, 4 };
    for (int i = 0; i < lines.size(); ++i) {
        QCOMPARE(r.errors[i].line, lines[i]);
        QVERIFY2(r.errors[i].message.contains("unpaired surrogate"), qPrintable(r.errors[i].message));
    }
    QCOMPARE(s->counts().prompts, 2);
    QVERIFY(s->findPrompt(QString::fromUtf8("emoji \xF0\x9F\x98\x80")));
    // Nothing stored holds the invalid bytes; a re-import de-duplicates the prompts as before.
    const QByteArray out = path("surrogates-out.jsonl").toUtf8();
    exportFile(*s, QString::fromUtf8(out));
    QVERIFY(!bytes(QString::fromUtf8(out)).contains("\xED\xA0\x80"));
    QCOMPARE(importFile(*s, path("surrogates.jsonl")).imported, 2);
    QCOMPARE(s->counts().prompts, 2);
}

void TestProjectImport::csvInvalidUtf8()
{
    // Raw invalid bytes in CSV fields: an encoded surrogate (ED A0 80), a lone continuation byte, an overlong
    // slash; each names its line, the good rows go in.
    const QByteArray csv = "prompt,completion_a,completion_b\n"
                           "good,a,b\n"
                           "p3,\xED\xA0\x80,b\n"
                           "p4,a,\x80\n"
                           "\xC0\xAF,a,b\n"
                           "good too,a,b\n";
    write(path("bad-utf8.csv"), csv);
    auto s = ProjectStore::open(newProject());
    const ImportResult r = importFile(*s, path("bad-utf8.csv"));
    QCOMPARE(r.imported, 2);
    QCOMPARE(r.errors.size(), 3);
    for (int i = 0; i < 3; ++i) {
        QCOMPARE(r.errors[i].line, qint64(i + 3));
        QVERIFY2(r.errors[i].message.contains("invalid UTF-8"), qPrintable(r.errors[i].message));
    }
}

void TestProjectImport::rowLimits_data()
{
    QTest::addColumn<QString>("file");
    QTest::addColumn<QByteArray>("input");
    QTest::addColumn<qint64>("maxRowBytes"); // 0: the default (8 MiB)
    QTest::addColumn<qint64>("imported");
    QTest::addColumn<qint64>("skipped");
    QTest::addColumn<QList<qint64>>("lines"); // of the reported errors
    QTest::addColumn<QStringList>("messages");

    const auto nested = [](int depth) { return QByteArray(depth, '[') + QByteArray(depth, ']'); };
    const QByteArray good1 = R"J({"prompt": "p1", "chosen": "c1", "rejected": "r1"})J";
    const QByteArray good3 = R"J({"prompt": "p3", "chosen": "c3", "rejected": "r3", "meta": )J" + nested(60) + "}";
    const QString deep = QStringLiteral("JSON nested deeper than 64 levels (at column %1)");
    // The first line is hostile too: format detection skips it and the parse reports it. Column: the 65th
    // opening bracket (the row's own '{' is level 1).
    QTest::newRow("jsonl nested 100,000 levels")
        << "nested.jsonl"
        << R"J({"prompt": "p0", "chosen": )J" + nested(100000) + R"J(, "rejected": "r0"})J" + "\n" + good1 + "\n"
            + R"J({"prompt": )J" + QByteArray(100000, '{') + "\n" + good3 + "\n"
        << qint64(0) << qint64(2) << qint64(2) << QList<qint64> { 1, 3 }
        << QStringList { deep.arg(28 + 63), deep.arg(12 + 63) };
    // Brackets inside strings do not count.
    QTest::newRow("jsonl brackets in strings")
        << "strings.jsonl"
        << good1 + "\n" + R"J({"prompt": "[[{{\"", "chosen": ")J" + QByteArray(100000, '[') + R"J(", "rejected": "r"})J"
        << qint64(0) << qint64(2) << qint64(0) << QList<qint64> {} << QStringList {};
    const QByteArray huge
        = R"J({"prompt": "p2", "chosen": ")J" + QByteArray(9 << 20, 'x') + R"J(", "rejected": "r2"})J";
    QTest::newRow("jsonl row above the 8 MiB default")
        << "huge.jsonl" << good1 + "\n" + huge + "\n" + good3 << qint64(0) << qint64(2) << qint64(1)
        << QList<qint64> { 2 }
        << QStringList { QStringLiteral("row of %1 bytes is above the limit of 8388608 bytes (raise it with "
                                        "--max-row-bytes or DPO_MAX_ROW_BYTES)")
                             .arg(huge.size()) };
    const QByteArray long3 = R"J({"prompt": "p3", "chosen": ")J" + QByteArray(200, 'x') + "\"}";
    QTest::newRow("jsonl row above a set limit")
        << "small.jsonl" << good1 + "\n\n" + long3 + "\n" + good1 << qint64(100) << qint64(2) << qint64(1)
        << QList<qint64> { 3 }
        << QStringList { QStringLiteral("row of %1 bytes is above the limit of 100 bytes").arg(long3.size()) };
    // A quoted field spanning lines 3-5, too long: refused, and the lines after it still counted right.
    const QByteArray record3 = "p2,\"" + QByteArray(300, 'x') + "\n\n" + QByteArray(300, 'y') + "\",b";
    QTest::newRow("csv record above a set limit")
        << "huge.csv"
        << "prompt,completion_a,completion_b\np1,a,b\n" + record3 + "\np6,a,b\np7,a,\n"
        << qint64(500) << qint64(2) << qint64(2) << QList<qint64> { 3, 7 }
        << QStringList { QStringLiteral("row of %1 bytes is above the limit of 500 bytes").arg(record3.size()),
               "field \"completion_b\" is empty" };
    QTest::newRow("csv row of 100,000 fields")
        << "wide.csv"
        << "prompt,completion_a,completion_b\n" + QByteArray(99999, ',') + "\np,a,b\n"
        << qint64(0) << qint64(1) << qint64(1) << QList<qint64> { 2 }
        << QStringList { "expected 3 fields, found 100000" };
    // A refused header is reported once; the rows under it count as bad.
    const QByteArray header = "prompt,completion_a," + QByteArray(100, 'b');
    QTest::newRow("csv header above a set limit")
        << "header.csv" << header + "\np,a,b\n"
        << qint64(50) << qint64(0) << qint64(2) << QList<qint64> { 1 }
        << QStringList { QStringLiteral("CSV header: row of %1 bytes is above the limit of 50").arg(header.size()) };
}

void TestProjectImport::rowLimits()
{
    QFETCH(QString, file);
    QFETCH(QByteArray, input);
    QFETCH(qint64, maxRowBytes);
    QFETCH(qint64, imported);
    QFETCH(qint64, skipped);
    QFETCH(QList<qint64>, lines);
    QFETCH(QStringList, messages);
    write(path(file), input);
    auto s = ProjectStore::open(newProject());
    ImportOptions o;
    o.maxRowBytes = maxRowBytes;
    QElapsedTimer t;
    t.start();
    const ImportResult r = importFile(*s, path(file), o);
    QVERIFY2(t.elapsed() < 10000, "hostile rows must be refused quickly");
    QCOMPARE(r.format, file.endsWith(".csv") ? ImportFormat::Csv : ImportFormat::Trl);
    QCOMPARE(r.imported, imported);
    QCOMPARE(s->counts().pairs, imported);
    QCOMPARE(r.skipped, skipped);
    QCOMPARE(r.errors.size(), lines.size());
    for (int i = 0; i < lines.size(); ++i) {
        QCOMPARE(r.errors[i].line, lines[i]);
        QVERIFY2(r.errors[i].message.contains(messages[i]), qPrintable(r.errors[i].message));
    }
    // parseImport reports the same without a project.
    const ImportResult dry = parseImport(input, path(file), o);
    QCOMPARE(dry.imported, r.imported);
    QCOMPARE(dry.skipped, r.skipped);
    QCOMPARE(dry.errors.size(), r.errors.size());
}

QString TestProjectImport::bigProject(int n)
{
    QByteArray input;
    const QString pad(560, QLatin1Char('x'));
    for (int i = 0; i < n; ++i)
        input += QStringLiteral(R"J({"prompt": "p%1", "chosen": "c%1 %2", "rejected": "r"})J").arg(i).arg(pad).toUtf8()
            + "\n";
    write(path("big.jsonl"), input);
    const QString project = newProject();
    auto s = ProjectStore::open(project);
    [&] { QCOMPARE(importFile(*s, path("big.jsonl")).imported, qint64(n)); }();
    return project;
}

void TestProjectImport::exportCancelKeepsOldFile()
{
    auto s = ProjectStore::open(bigProject(5000));
    QDir dir(path("atomic"));
    QVERIFY(dir.mkpath("."));
    const QString out = dir.filePath("train.jsonl");
    QCOMPARE(exportFile(*s, out).rows, 5000);
    const QByteArray good = bytes(out);
    QVERIFY(good.size() > 3000000);

    // Re-export over the good file, cancelled midway (after more than one 1 MiB buffer went to disk).
    std::atomic<bool> stop { false };
    ExportOptions o;
    qint64 calls = 0;
    o.progress = [&](qint64 done, qint64) {
        ++calls;
        if (done >= 3072)
            stop = true;
    };
    o.cancel = &stop;
    const ExportResult r = exportFile(*s, out, o);
    QVERIFY(r.cancelled);
    QVERIFY(calls >= 3);
    QCOMPARE(bytes(out), good); // byte-identical
    QCOMPARE(dir.entryList(QDir::Files | QDir::Hidden | QDir::System), QStringList { "train.jsonl" });

    // A cancelled fresh export leaves no file at all.
    stop = false;
    QVERIFY(exportFile(*s, dir.filePath("fresh.jsonl"), o).cancelled);
    QCOMPARE(dir.entryList(QDir::Files | QDir::Hidden | QDir::System), QStringList { "train.jsonl" });
}

void TestProjectImport::exportWriteErrorLeavesNoPartialFile()
{
    // A full disk, made real: a file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored) makes write() fail with EFBIG
    // once the export's temporary file reaches 1.5 MiB, in the middle of a 3 MB export.
    auto s = ProjectStore::open(bigProject(5000));
    QDir dir(path("werror"));
    QVERIFY(dir.mkpath("."));
    const QString old = dir.filePath("old.jsonl");
    write(old, "{\"prompt\": \"p\", \"chosen\": \"c\", \"rejected\": \"r\"}\n");
    const QByteArray oldBytes = bytes(old);

    struct rlimit saved;
    QCOMPARE(getrlimit(RLIMIT_FSIZE, &saved), 0);
    auto *previous = signal(SIGXFSZ, SIG_IGN);
    struct rlimit limited = saved;
    limited.rlim_cur = 1536 * 1024;
    QCOMPARE(setrlimit(RLIMIT_FSIZE, &limited), 0);
    QString errorOld, errorNew;
    for (auto [target, error] :
        { std::make_pair(old, &errorOld), std::make_pair(dir.filePath("new.jsonl"), &errorNew) }) {
        try {
            exportFile(*s, target);
        } catch (const ProjectError &e) {
            *error = QString::fromStdString(e.what());
        }
    }
    setrlimit(RLIMIT_FSIZE, &saved);
    signal(SIGXFSZ, previous);

    QVERIFY2(errorOld.contains("write failed"), qPrintable(errorOld));
    QVERIFY2(errorNew.contains("write failed"), qPrintable(errorNew));
    QCOMPARE(bytes(old), oldBytes); // the old file as it was
    QCOMPARE(dir.entryList(QDir::Files | QDir::Hidden | QDir::System), QStringList { "old.jsonl" }); // no partial file
    // And with room again, the export goes through.
    QCOMPARE(exportFile(*s, dir.filePath("new.jsonl")).rows, 5000);
}

DPO_TEST_MAIN(TestProjectImport)

} // namespace test_project_import

#include "test_project_import.moc"
