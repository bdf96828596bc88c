#include "project/candidates.h"

#include "project/project_store_p.h"

#include <QElapsedTimer>
#include <QHash>
#include <QSet>

#include <algorithm>
#include <cmath>
#include <limits>

namespace dpo {

namespace {

quint64 splitmix64(quint64 x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

// What counts as "the same text" for a pair: surrounding whitespace does not make two candidates different.
QString sameKey(const QString &text)
{
    return text.trimmed();
}

int effectiveLimit(int limit)
{
    return limit > 0 ? limit : std::numeric_limits<int>::max();
}

} // namespace

SamplingSettings CandidateOptions::defaultSampling()
{
    SamplingSettings s;
    s.greedy = false;
    s.temperature = 0.8;
    s.topP = 0.95;
    s.topK = 0;
    s.maxNewTokens = 128;
    s.seed = 0;
    return s;
}

void CandidateOptions::validate() const
{
    if (candidates < 2 || candidates > 16)
        throw ProjectError("candidates per prompt must be between 2 and 16 (got " + std::to_string(candidates) + ")");
    if (sampling.greedy)
        throw ProjectError("greedy decoding gives every candidate the same text: use sampling (temperature > 0)");
    if (!(sampling.temperature > 0) || !std::isfinite(sampling.temperature))
        throw ProjectError("temperature must be > 0");
    if (sampling.topK < 0)
        throw ProjectError("top-k must be >= 0 (0 = off)");
    if (!(sampling.topP > 0 && sampling.topP <= 1))
        throw ProjectError("top-p must be in (0, 1]");
    if (sampling.maxNewTokens < 1)
        throw ProjectError("max new tokens must be >= 1");
    if (limit < 0)
        throw ProjectError("the prompt limit must be >= 0 (0 = all)");
    if (maxAttempts < 1)
        throw ProjectError("max attempts must be >= 1");
}

quint64 candidateSeed(quint64 baseSeed, qint64 promptId, int slot, int attempt)
{
    quint64 h = splitmix64(baseSeed);
    h = splitmix64(h ^ quint64(promptId));
    h = splitmix64(h ^ quint64(slot));
    h = splitmix64(h ^ quint64(attempt));
    return h & ((quint64(1) << 53) - 1);
}

CandidateBacklog candidateBacklog(const ProjectStore &store, int candidates, int limit)
{
    ProjectStore::Impl &d = store.impl();
    QSqlQuery &q
        = d.exec(QStringLiteral("SELECT COUNT(*), COALESCE(SUM(? - n), 0) FROM (SELECT id, n FROM (SELECT p.id "
                                "AS id, (SELECT COUNT(*) FROM completions c WHERE c.prompt_id = p.id) AS n "
                                "FROM prompts p) x WHERE n < ? ORDER BY id LIMIT ?) t"),
            { candidates, candidates, effectiveLimit(limit) });
    CandidateBacklog b;
    if (q.next()) {
        b.prompts = q.value(0).toLongLong();
        b.candidates = q.value(1).toLongLong();
    }
    q.finish();
    return b;
}

QVector<QPair<int, int>> candidatePairPlan(int n)
{
    QVector<QPair<int, int>> plan;
    if (n <= 3) {
        for (int i = 0; i < n; ++i)
            for (int j = i + 1; j < n; ++j)
                plan.push_back({ i, j });
    } else {
        for (int i = 0; i + 1 < n; ++i)
            plan.push_back({ i, i + 1 });
    }
    return plan;
}

CandidateSummary generateCandidates(ProjectStore &store, const QString &modelPath, const CandidateOptions &options,
    const CandidateSampler &sample, const std::atomic<bool> *cancel,
    const std::function<void(const CandidateProgress &)> &progress)
{
    options.validate();
    if (!sample)
        throw ProjectError("no sampler given");
    QElapsedTimer timer;
    timer.start();
    auto cancelled = [cancel]() { return cancel && cancel->load(); };

    const int n = options.candidates;
    const CandidateBacklog backlog = candidateBacklog(store, n, options.limit);
    Provenance prov;
    prov.source = QStringLiteral("generated");
    prov.modelPath = canonicalModelPath(modelPath);
    prov.modelFingerprint = modelFingerprint(prov.modelPath);
    prov.samplingJson = options.sampling.toJson();

    CandidateSummary summary;
    CandidateProgress p;
    p.total = backlog.candidates;
    p.promptsTotal = backlog.prompts;
    const qint64 wanted = backlog.prompts;
    QSet<qint64> seen, skipped;
    ProjectStore::Impl &d = store.impl();

    while (!cancelled() && p.promptsDone < wanted) {
        // Finished prompts leave the "needing" set, so each batch is the next one. Skipped prompts stay in it:
        // the batch is that much larger, and `seen` keeps them from being tried twice in this run (a batch of
        // only seen prompts ends the run rather than looping).
        const int batchSize = int(std::min<qint64>(256, wanted - p.promptsDone));
        QVector<Prompt> batch = store.promptsNeedingCompletions(n, batchSize + int(skipped.size()));
        batch.erase(std::remove_if(batch.begin(), batch.end(), [&](const Prompt &x) { return seen.contains(x.id); }),
            batch.end());
        if (batch.isEmpty())
            break;
        for (const Prompt &prompt : std::as_const(batch)) {
            if (cancelled() || p.promptsDone >= wanted)
                break;
            seen.insert(prompt.id);
            p.promptId = prompt.id;
            const QVector<Completion> before = store.completionsOf(prompt.id);
            const int need = n - int(before.size());
            if (need <= 0)
                continue;
            QSet<QString> texts;
            for (const Completion &c : before)
                texts.insert(sameKey(c.text));

            struct Sampled {
                QString text;
                quint64 seed = 0;
            };
            QVector<Sampled> fresh;
            int keptDuplicates = 0;
            bool empty = false;
            for (int i = 0; i < need && !empty; ++i) {
                const int slot = int(before.size()) + i;
                for (int attempt = 0; attempt < options.maxAttempts; ++attempt) {
                    const quint64 seed = candidateSeed(options.sampling.seed, prompt.id, slot, attempt);
                    const std::optional<QString> text = sample(prompt, seed);
                    if (!text || cancelled()) {
                        // Half a prompt is never written: what was sampled for this one is dropped.
                        summary.cancelled = true;
                        summary.seconds = double(timer.elapsed()) / 1000.0;
                        return summary;
                    }
                    if (sameKey(*text).isEmpty()) {
                        // The model stopped at once (an end-of-sequence token first): nothing to label.
                        if (attempt + 1 < options.maxAttempts) {
                            ++summary.retries;
                            continue;
                        }
                        empty = true;
                        break;
                    }
                    const bool repeat = texts.contains(sameKey(*text));
                    if (repeat && attempt + 1 < options.maxAttempts) {
                        ++summary.retries;
                        continue;
                    }
                    if (repeat)
                        ++keptDuplicates;
                    texts.insert(sameKey(*text));
                    fresh.push_back({ *text, seed });
                    break;
                }
                p.done += empty ? need - i : 1;
                if (progress)
                    progress(p);
            }
            if (empty) {
                // Writing the other candidates would leave half a prompt: the prompt is skipped whole.
                ++summary.skipped;
                skipped.insert(prompt.id);
                summary.notes << QStringLiteral("prompt #%1: skipped, the model gave only empty completions in %2 "
                                                "tries")
                                     .arg(prompt.id)
                                     .arg(options.maxAttempts);
                ++p.promptsDone;
                if (progress)
                    progress(p);
                continue;
            }

            ProjectStore::Transaction tx(store);
            // Another writer (a second generator, an import) may have filled the prompt meanwhile: write only
            // what is still missing. On PostgreSQL the row lock serialises two generators on one prompt.
            d.exec(QStringLiteral("SELECT id FROM prompts WHERE id = ?%ROWLOCK%"), { prompt.id }).finish();
            QVector<Completion> all = store.completionsOf(prompt.id);
            const int still = std::min(int(fresh.size()), n - int(all.size()));
            int written = 0;
            for (int i = 0; i < still; ++i) {
                Provenance pv = prov;
                pv.seed = qint64(fresh[i].seed);
                Completion c;
                c.id = store.addCompletion(prompt.id, fresh[i].text, pv);
                c.promptId = prompt.id;
                c.text = fresh[i].text;
                all.push_back(c);
                ++written;
            }
            // Pairs are planned over the prompt's distinct texts (the first completion of each): a kept repeat
            // neither makes a pair of identical texts nor a second pair of two texts already paired.
            QHash<qint64, QString> textOf;
            QVector<Completion> distinct;
            QSet<QString> distinctTexts;
            for (const Completion &c : std::as_const(all)) {
                textOf.insert(c.id, sameKey(c.text));
                if (!distinctTexts.contains(sameKey(c.text))) {
                    distinctTexts.insert(sameKey(c.text));
                    distinct.push_back(c);
                }
            }
            auto textPair
                = [](const QString &x, const QString &y) { return x < y ? qMakePair(x, y) : qMakePair(y, x); };
            QSet<QPair<QString, QString>> paired;
            QSqlQuery &q = d.exec(QStringLiteral("SELECT completion_a, completion_b FROM pairs WHERE prompt_id = ? AND "
                                                 "kind = ?"),
                { prompt.id, kindName(JudgmentKind::Label) });
            while (q.next())
                paired.insert(textPair(textOf.value(q.value(0).toLongLong()), textOf.value(q.value(1).toLongLong())));
            q.finish();
            int pairs = 0;
            for (const auto &[i, j] : candidatePairPlan(int(distinct.size()))) {
                const Completion &a = distinct[i];
                const Completion &b = distinct[j];
                if (paired.contains(textPair(sameKey(a.text), sameKey(b.text))))
                    continue;
                store.addPair(prompt.id, a.id, b.id, QStringLiteral("generated"), JudgmentKind::Label);
                ++pairs;
            }
            tx.commit();

            summary.generated += written;
            summary.pairs += pairs;
            ++summary.prompts;
            if (keptDuplicates > 0) {
                summary.duplicates += keptDuplicates;
                summary.notes << QStringLiteral("prompt #%1: %2 candidate(s) repeat another text after %3 tries "
                                                "(kept, no pair between identical texts)")
                                     .arg(prompt.id)
                                     .arg(keptDuplicates)
                                     .arg(options.maxAttempts);
            }
            ++p.promptsDone;
            if (progress)
                progress(p);
        }
    }
    summary.cancelled = cancelled();
    summary.seconds = double(timer.elapsed()) / 1000.0;
    return summary;
}

} // namespace dpo
