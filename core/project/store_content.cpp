// ProjectStore's content: settings (guidelines, overlap k, which re-sizes the queue), annotators, and the
// rows a project is made of (prompts de-duplicated by text hash, completions with provenance, pairs with
// their queue slots), both the public add/get methods and the Impl row helpers the importer shares.
#include "project/project_store.h"

#include "project/project_store_p.h"

#include <QRandomGenerator>
#include <QSqlError>

#include <algorithm>

namespace dpo {

// ---- Impl row helpers (shared with the importer)

std::optional<qint64> ProjectStore::Impl::findPromptRow(const QString &text, const QString &messagesJson)
{
    QSqlQuery &q = exec(QStringLiteral("SELECT id, text, messages_json FROM prompts WHERE text_hash = ?"),
        { textHash(text, messagesJson) });
    std::optional<qint64> id;
    while (q.next()) {
        if (q.value(1).toString() == text && q.value(2).toString() == messagesJson) {
            id = q.value(0).toLongLong();
            break;
        }
    }
    q.finish();
    return id;
}

qint64 ProjectStore::Impl::addPromptRow(const QString &text, const QString &messagesJson)
{
    if (auto id = findPromptRow(text, messagesJson))
        return *id;
    return insert(QStringLiteral("INSERT INTO prompts (text, text_hash, messages_json, created_at) VALUES (?, ?, ?, ?) "
                                 "RETURNING id"),
        { text, textHash(text, messagesJson), messagesJson.isEmpty() ? nullInt() : QVariant(messagesJson), nowMs() });
}

qint64 ProjectStore::Impl::addCompletionRow(
    qint64 promptId, const QString &text, const QString &messagesJson, const Provenance &p)
{
    QVariantList values { promptId, text, textHash(text), messagesJson.isEmpty() ? nullInt() : QVariant(messagesJson),
        p.source, p.modelPath, p.checkpoint, p.samplingJson.isEmpty() ? QStringLiteral("{}") : p.samplingJson,
        p.seed ? QVariant(*p.seed) : nullInt(), p.parentCompletionId > 0 ? QVariant(p.parentCompletionId) : nullInt(),
        nowMs() };
    if (version < 5) // a store held below schema 5 (tests of migrations) has no fingerprint column
        return insert(QStringLiteral("INSERT INTO completions (prompt_id, text, text_hash, messages_json, source, "
                                     "model_path, checkpoint, sampling_json, seed, parent_id, created_at) "
                                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"),
            values);
    values << p.modelFingerprint;
    return insert(QStringLiteral("INSERT INTO completions (prompt_id, text, text_hash, messages_json, source, "
                                 "model_path, checkpoint, sampling_json, seed, parent_id, created_at, "
                                 "model_fingerprint) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"),
        values);
}

qint64 ProjectStore::Impl::addPairRow(qint64 promptId, qint64 a, qint64 b, const QString &origin, JudgmentKind kind,
    const QString &preferred, const QString &importStyle, int slotCount)
{
    TxGuard tx(*this);
    const qint64 id
        = insert(QStringLiteral("INSERT INTO pairs (prompt_id, completion_a, completion_b, origin, kind, preferred, "
                                "import_style, queued, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"),
            { promptId, a, b, origin, kindName(kind), preferred.isEmpty() ? nullInt() : QVariant(preferred),
                importStyle.isEmpty() ? nullInt() : QVariant(importStyle), slotCount > 0 ? 1 : 0, nowMs() });
    for (int i = 0; i < slotCount; ++i)
        exec(QStringLiteral("INSERT INTO slots (pair_id, slot_index, kind) VALUES (?, ?, ?)"),
            { id, i, kindName(kind) });
    if (slotCount > 0 && hasCounters(*this)) { // a new pair: free slots, nobody touched it yet
        CounterDelta &c = counterDelta(*this, 0, kindName(kind));
        c.slotTotal += slotCount;
        c.freePairs += 1;
    }
    tx.commit();
    return id;
}

int ProjectStore::Impl::overlapSetting()
{
    const QVariant v
        = scalar(QStringLiteral("SELECT value FROM settings WHERE key = ?"), { QStringLiteral("overlap") });
    return v.isNull() ? 1 : std::max(1, v.toInt());
}

// ---- settings, annotators, content

QString ProjectStore::setting(const QString &key, const QString &fallback) const
{
    const QVariant v = d->scalar(QStringLiteral("SELECT value FROM settings WHERE key = ?"), { key });
    return v.isNull() ? fallback : v.toString();
}

void ProjectStore::setSetting(const QString &key, const QString &value)
{
    TxGuard tx(*d);
    QSqlQuery &q = d->exec(QStringLiteral("UPDATE settings SET value = ? WHERE key = ?"), { value, key });
    if (q.numRowsAffected() == 0)
        d->exec(QStringLiteral("INSERT INTO settings (key, value) VALUES (?, ?)"), { key, value });
    tx.commit();
}

QString ProjectStore::guidelines() const
{
    return setting(QStringLiteral("guidelines"));
}

void ProjectStore::setGuidelines(const QString &markdown)
{
    setSetting(QStringLiteral("guidelines"), markdown);
}

int ProjectStore::overlap() const
{
    return d->overlapSetting();
}

void ProjectStore::setOverlap(int k)
{
    if (k < 1 || k > 100)
        throw ProjectError(QStringLiteral("overlap must be between 1 and 100, got %1").arg(k).toStdString());
    TxGuard tx(*d);
    // The progress counters are recounted from the tables below. On PostgreSQL no other connection may
    // change slots, pairs or counters meanwhile: a change counted here and added again at its commit (or one
    // not counted and overwritten) would leave them wrong. Labeling pauses for the length of this statement.
    if (d->pg() && hasCounters(*d))
        d->execDdl(QStringLiteral("LOCK TABLE slots, pairs, counters IN EXCLUSIVE MODE")); // not preparable
    setSetting(QStringLiteral("overlap"), QString::number(k));
    for (int i = 0; i < k; ++i)
        d->exec(
            QStringLiteral(
                "INSERT INTO slots (pair_id, slot_index, kind) SELECT p.id, CAST(? AS INTEGER), p.kind FROM pairs p "
                "WHERE p.queued = 1 AND p.kind = 'label' AND NOT EXISTS "
                "(SELECT 1 FROM slots s WHERE s.pair_id = p.id AND s.slot_index = ?)"),
            { i, i });
    d->exec(
        QStringLiteral("DELETE FROM slots WHERE kind = 'label' AND slot_index >= ? AND annotator_id IS NULL"), { k });
    if (hasCounters(*d)) {
        for (const QString &sql : recountStatements())
            d->execDdl(sql);
        d->counterDeltas.clear(); // what this transaction changed before is in the recount
    }
    tx.commit();
}

static Annotator annotatorFrom(QSqlQuery &q)
{
    Annotator a;
    a.id = q.value(0).toLongLong();
    a.name = q.value(1).toString();
    a.orderSeed = quint64(q.value(2).toLongLong());
    a.createdAt = fromMs(q.value(3));
    return a;
}

Annotator ProjectStore::annotator(const QString &name, bool create)
{
    const QString trimmed = name.trimmed();
    if (trimmed.isEmpty())
        throw ProjectError("annotator name is empty");
    for (int attempt = 0; attempt < 3; ++attempt) {
        QSqlQuery &q = d->exec(
            QStringLiteral("SELECT id, name, order_seed, created_at FROM annotators WHERE name = ?"), { trimmed });
        if (q.next()) {
            Annotator a = annotatorFrom(q);
            q.finish();
            return a;
        }
        q.finish();
        if (!create)
            throw ProjectError(QStringLiteral("no annotator named \"%1\"").arg(trimmed).toStdString());
        // 62 random bits: stored in a signed BIGINT.
        const qint64 seed = qint64(QRandomGenerator::global()->generate64() >> 2);
        try {
            TxGuard tx(*d);
            d->insert(
                QStringLiteral("INSERT INTO annotators (name, order_seed, created_at) VALUES (?, ?, ?) RETURNING id"),
                { trimmed, seed, nowMs() });
            tx.commit();
        } catch (const ProjectError &) {
            // Another connection created the same name between our SELECT and INSERT: read it back.
            if (attempt == 2)
                throw;
        }
    }
    throw ProjectError("annotator: could not create");
}

QVector<Annotator> ProjectStore::annotators() const
{
    QVector<Annotator> out;
    QSqlQuery &q = d->exec(QStringLiteral("SELECT id, name, order_seed, created_at FROM annotators ORDER BY id"));
    while (q.next())
        out.push_back(annotatorFrom(q));
    q.finish();
    return out;
}

qint64 ProjectStore::addPrompt(const QString &text)
{
    if (text.isEmpty())
        throw ProjectError("prompt text is empty");
    TxGuard tx(*d);
    const qint64 id = d->addPromptRow(text, {});
    tx.commit();
    return id;
}

std::optional<qint64> ProjectStore::findPrompt(const QString &text) const
{
    return d->findPromptRow(text, {});
}

qint64 ProjectStore::addCompletion(qint64 promptId, const QString &text, const Provenance &provenance)
{
    return d->addCompletionRow(promptId, text, {}, provenance);
}

qint64 ProjectStore::addPair(qint64 promptId, qint64 completionA, qint64 completionB, const QString &origin,
    JudgmentKind kind, const QString &preferred)
{
    if (!preferred.isEmpty() && preferred != QLatin1String("a") && preferred != QLatin1String("b"))
        throw ProjectError("preferred must be \"a\", \"b\" or empty");
    const int slotCount = !preferred.isEmpty() ? 0 : kind == JudgmentKind::Label ? d->overlapSetting() : 1;
    return d->addPairRow(promptId, completionA, completionB, origin, kind, preferred, {}, slotCount);
}

Prompt ProjectStore::prompt(qint64 id) const
{
    QSqlQuery &q
        = d->exec(QStringLiteral("SELECT id, text, created_at, messages_json FROM prompts WHERE id = ?"), { id });
    if (!q.next()) {
        q.finish();
        throw ProjectError(QStringLiteral("no prompt with id %1").arg(id).toStdString());
    }
    Prompt p { q.value(0).toLongLong(), q.value(1).toString(), fromMs(q.value(2)), q.value(3).toString() };
    q.finish();
    return p;
}

QString completionColumns(int version)
{
    return QStringLiteral("id, prompt_id, text, source, model_path, checkpoint, sampling_json, seed, parent_id, "
                          "created_at, ")
        + (version >= 5 ? QStringLiteral("model_fingerprint") : QStringLiteral("''"))
        + QStringLiteral(", messages_json");
}

Completion completionFrom(QSqlQuery &q, int o)
{
    Completion c;
    c.id = q.value(o + 0).toLongLong();
    c.promptId = q.value(o + 1).toLongLong();
    c.text = q.value(o + 2).toString();
    c.provenance.source = q.value(o + 3).toString();
    c.provenance.modelPath = q.value(o + 4).toString();
    c.provenance.checkpoint = q.value(o + 5).toString();
    c.provenance.samplingJson = q.value(o + 6).toString();
    if (!q.value(o + 7).isNull())
        c.provenance.seed = q.value(o + 7).toLongLong();
    c.provenance.parentCompletionId = q.value(o + 8).toLongLong();
    c.createdAt = fromMs(q.value(o + 9));
    c.provenance.modelFingerprint = q.value(o + 10).toString();
    c.messagesJson = q.value(o + 11).toString();
    return c;
}

Completion ProjectStore::completion(qint64 id) const
{
    QSqlQuery &q
        = d->exec(QStringLiteral("SELECT %1 FROM completions WHERE id = ?").arg(completionColumns(d->version)), { id });
    if (!q.next()) {
        q.finish();
        throw ProjectError(QStringLiteral("no completion with id %1").arg(id).toStdString());
    }
    Completion c = completionFrom(q);
    q.finish();
    return c;
}

QVector<Completion> ProjectStore::completionsOf(qint64 promptId) const
{
    QVector<Completion> out;
    QSqlQuery &q = d->exec(
        QStringLiteral("SELECT %1 FROM completions WHERE prompt_id = ? ORDER BY id").arg(completionColumns(d->version)),
        { promptId });
    while (q.next())
        out.push_back(completionFrom(q));
    q.finish();
    return out;
}

QVector<Prompt> ProjectStore::promptsNeedingCompletions(int minCompletions, int limit) const
{
    QVector<Prompt> out;
    QSqlQuery &q = d->exec(QStringLiteral("SELECT p.id, p.text, p.created_at, p.messages_json FROM prompts p WHERE "
                                          "(SELECT COUNT(*) FROM completions c WHERE c.prompt_id = p.id) < ? "
                                          "ORDER BY p.id LIMIT ?"),
        { minCompletions, limit });
    while (q.next())
        out.push_back(
            Prompt { q.value(0).toLongLong(), q.value(1).toString(), fromMs(q.value(2)), q.value(3).toString() });
    q.finish();
    return out;
}

} // namespace dpo
