#include "project/evaluation.h"

#include "project/project_store_p.h"

#include "engine/io/jsonl_lines.h"

#include <QCryptographicHash>
#include <QDateTime>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QSet>

namespace dpo {

namespace {

const char *sessionKey = "eval/session";

QJsonObject modelToJson(const EvalModel &m)
{
    return QJsonObject { { QStringLiteral("name"), m.name }, { QStringLiteral("path"), m.path },
        { QStringLiteral("checkpoint"), m.checkpoint } };
}

EvalModel modelFromJson(const QJsonObject &o)
{
    EvalModel m;
    m.name = o.value(QStringLiteral("name")).toString();
    m.path = o.value(QStringLiteral("path")).toString();
    m.checkpoint = o.value(QStringLiteral("checkpoint")).toString();
    return m;
}

std::optional<Winner> battleWinner(const QString &w)
{
    const std::optional<Winner> v = winnerFromName(w);
    if (!v || *v == Winner::Skip)
        return std::nullopt;
    return v;
}

} // namespace

QString SamplingSettings::toJson() const
{
    QJsonObject o;
    o.insert(QStringLiteral("max_new_tokens"), maxNewTokens);
    o.insert(QStringLiteral("greedy"), greedy);
    o.insert(QStringLiteral("temperature"), greedy ? 1.0 : temperature);
    o.insert(QStringLiteral("top_k"), greedy ? 0 : topK);
    o.insert(QStringLiteral("top_p"), greedy ? 1.0 : topP);
    // QJsonObject keeps keys sorted: the text is canonical, so equal settings compare equal as text.
    return QString::fromUtf8(QJsonDocument(o).toJson(QJsonDocument::Compact));
}

SamplingSettings SamplingSettings::fromJson(const QString &json)
{
    QJsonParseError err;
    const QJsonDocument doc = QJsonDocument::fromJson(json.toUtf8(), &err);
    if (!doc.isObject())
        throw ProjectError(QStringLiteral("sampling settings: invalid JSON (%1)").arg(err.errorString()).toStdString());
    const QJsonObject o = doc.object();
    SamplingSettings s;
    s.maxNewTokens = o.value(QStringLiteral("max_new_tokens")).toInt(s.maxNewTokens);
    s.greedy = o.value(QStringLiteral("greedy")).toBool(s.greedy);
    s.temperature = o.value(QStringLiteral("temperature")).toDouble(s.temperature);
    s.topK = o.value(QStringLiteral("top_k")).toInt(s.topK);
    s.topP = o.value(QStringLiteral("top_p")).toDouble(s.topP);
    // Seeds are 64-bit: kept as a decimal string so JSON doubles cannot round them.
    const QJsonValue seed = o.value(QStringLiteral("seed"));
    if (seed.isString())
        s.seed = seed.toString().toULongLong();
    else if (seed.isDouble())
        s.seed = quint64(seed.toDouble());
    return s;
}

QString canonicalModelPath(const QString &dir)
{
    const QFileInfo fi(dir);
    QString p = fi.canonicalFilePath();
    if (p.isEmpty())
        p = QDir::cleanPath(fi.absoluteFilePath());
    while (p.size() > 1 && p.endsWith(QLatin1Char('/')))
        p.chop(1);
    return p;
}

bool isModelDirectory(const QString &dir)
{
    const QDir d(dir);
    return QFileInfo::exists(d.filePath(QStringLiteral("config.json")))
        || QFileInfo::exists(d.filePath(QStringLiteral("adapter_config.json")));
}

QString modelFingerprint(const QString &dir)
{
    QCryptographicHash h(QCryptographicHash::Sha256);
    const QDir d(dir);
    // config.json, or a LoRA adapter's adapter_config.json (its weights are the *.safetensors below).
    for (const char *name : { "config.json", "adapter_config.json" }) {
        QFile config(d.filePath(QString::fromLatin1(name)));
        if (config.open(QIODevice::ReadOnly))
            h.addData(config.readAll());
    }
    const QFileInfoList weights = d.entryInfoList(
        { QStringLiteral("*.safetensors"), QStringLiteral("*.bin"), QStringLiteral("*.safetensors.index.json") },
        QDir::Files, QDir::Name);
    for (const QFileInfo &f : weights) {
        h.addData(f.fileName().toUtf8());
        h.addData(QByteArray::number(f.size()));
        h.addData(QByteArray::number(f.lastModified().toMSecsSinceEpoch()));
    }
    return QString::fromLatin1(h.result().toHex().left(16));
}

Provenance evalProvenance(const EvalModel &model, const SamplingSettings &sampling, qint64 promptId)
{
    Provenance p;
    p.modelFingerprint = modelFingerprint(model.path);
    p.source = QStringLiteral("generated");
    p.modelPath = model.path;
    p.checkpoint = model.checkpoint;
    p.samplingJson = sampling.toJson();
    p.seed = sampling.seedFor(promptId);
    return p;
}

std::optional<qint64> findGeneratedCompletion(
    const ProjectStore &store, qint64 promptId, const EvalModel &model, const SamplingSettings &sampling)
{
    const QVariant id = store.impl().scalar(
        QStringLiteral("SELECT id FROM completions WHERE prompt_id = ? AND source = 'generated' AND model_path = ? "
                       "AND sampling_json = ? AND seed = ? AND model_fingerprint = ? ORDER BY id LIMIT 1"),
        { promptId, model.path, sampling.toJson(), sampling.seedFor(promptId), modelFingerprint(model.path) });
    if (id.isNull())
        return std::nullopt;
    return id.toLongLong();
}

QString evalStateName(EvalSession::State s)
{
    switch (s) {
    case EvalSession::State::Judging:
        return QStringLiteral("judging");
    case EvalSession::State::Ended:
        return QStringLiteral("ended");
    case EvalSession::State::None:
        break;
    }
    return QStringLiteral("none");
}

EvalSession loadEvalSession(const ProjectStore &store)
{
    EvalSession s;
    const QString text = store.setting(QString::fromLatin1(sessionKey));
    if (text.isEmpty())
        return s;
    const QJsonDocument doc = QJsonDocument::fromJson(text.toUtf8());
    if (!doc.isObject())
        return s;
    const QJsonObject o = doc.object();
    const QString state = o.value(QStringLiteral("state")).toString();
    s.state = state == QLatin1String("judging") ? EvalSession::State::Judging
        : state == QLatin1String("ended")       ? EvalSession::State::Ended
                                                : EvalSession::State::None;
    for (const QJsonValue &v : o.value(QStringLiteral("models")).toArray())
        s.models << modelFromJson(v.toObject());
    s.sampling = SamplingSettings::fromJson(QString::fromUtf8(
        QJsonDocument(o.value(QStringLiteral("sampling")).toObject()).toJson(QJsonDocument::Compact)));
    for (const QJsonValue &v : o.value(QStringLiteral("prompts")).toArray())
        s.promptIds << qint64(v.toDouble());
    if (o.contains(QStringLiteral("started_at")))
        s.startedAt = QDateTime::fromMSecsSinceEpoch(qint64(o.value(QStringLiteral("started_at")).toDouble()));
    if (o.contains(QStringLiteral("ended_at")))
        s.endedAt = QDateTime::fromMSecsSinceEpoch(qint64(o.value(QStringLiteral("ended_at")).toDouble()));
    return s;
}

void saveEvalSession(ProjectStore &store, const EvalSession &s)
{
    QJsonObject o;
    o.insert(QStringLiteral("state"), evalStateName(s.state));
    QJsonArray models;
    for (const EvalModel &m : s.models)
        models.append(modelToJson(m));
    o.insert(QStringLiteral("models"), models);
    QJsonObject sampling = QJsonDocument::fromJson(s.sampling.toJson().toUtf8()).object();
    sampling.insert(QStringLiteral("seed"), QString::number(s.sampling.seed));
    o.insert(QStringLiteral("sampling"), sampling);
    QJsonArray prompts;
    for (qint64 p : s.promptIds)
        prompts.append(double(p));
    o.insert(QStringLiteral("prompts"), prompts);
    if (s.startedAt.isValid())
        o.insert(QStringLiteral("started_at"), double(s.startedAt.toMSecsSinceEpoch()));
    if (s.endedAt.isValid())
        o.insert(QStringLiteral("ended_at"), double(s.endedAt.toMSecsSinceEpoch()));
    store.setSetting(
        QString::fromLatin1(sessionKey), QString::fromUtf8(QJsonDocument(o).toJson(QJsonDocument::Compact)));
}

EvalPairsResult startEvalSession(ProjectStore &store, const QVector<EvalModel> &models,
    const QVector<qint64> &promptIds, const SamplingSettings &sampling)
{
    if (models.size() < 2)
        throw ProjectError("an evaluation needs at least two models");
    QSet<QString> paths;
    for (const EvalModel &m : models)
        paths.insert(m.path);
    if (paths.size() != models.size())
        throw ProjectError("the same model directory is listed twice in the evaluation");
    EvalPairsResult r;
    ProjectStore::Impl &d = store.impl();
    {
        ProjectStore::Transaction tx(store);
        for (qint64 promptId : promptIds) {
            QVector<std::optional<qint64>> comp;
            for (const EvalModel &m : models)
                comp << findGeneratedCompletion(store, promptId, m, sampling);
            // Existing eval pairs of this prompt, either orientation.
            QHash<QPair<qint64, qint64>, qint64> existing;
            {
                QSqlQuery &q = d.exec(
                    QStringLiteral(
                        "SELECT id, completion_a, completion_b FROM pairs WHERE kind = 'eval' AND prompt_id = ?"),
                    { promptId });
                while (q.next()) {
                    const qint64 a = q.value(1).toLongLong(), b = q.value(2).toLongLong();
                    existing.insert({ std::min(a, b), std::max(a, b) }, q.value(0).toLongLong());
                }
                q.finish();
            }
            for (int i = 0; i < models.size(); ++i) {
                for (int j = i + 1; j < models.size(); ++j) {
                    if (!comp[i] || !comp[j]) {
                        ++r.missing;
                        continue;
                    }
                    const QPair<qint64, qint64> key { std::min(*comp[i], *comp[j]), std::max(*comp[i], *comp[j]) };
                    if (existing.contains(key)) {
                        ++r.reused;
                        continue;
                    }
                    existing.insert(
                        key, store.addPair(promptId, *comp[i], *comp[j], QStringLiteral("eval"), JudgmentKind::Eval));
                    ++r.created;
                }
            }
        }
        tx.commit();
    }
    EvalSession s;
    s.state = EvalSession::State::Judging;
    s.models = models;
    s.sampling = sampling;
    s.promptIds = promptIds;
    s.startedAt = QDateTime::currentDateTimeUtc();
    saveEvalSession(store, s);
    return r;
}

void endEvalSession(ProjectStore &store)
{
    EvalSession s = loadEvalSession(store);
    if (s.state != EvalSession::State::Judging)
        return;
    s.state = EvalSession::State::Ended;
    s.endedAt = QDateTime::currentDateTimeUtc();
    saveEvalSession(store, s);
}

QVector<EvalBattle> evalBattles(
    const ProjectStore &store, const QVector<EvalModel> &models, const SamplingSettings &sampling)
{
    QHash<QString, int> index;
    for (int i = 0; i < models.size(); ++i)
        index.insert(models[i].path, i);
    const QString samplingJson = sampling.toJson();
    QVector<EvalBattle> out;
    QSqlQuery &q = store.impl().exec(
        QStringLiteral("SELECT j.id, j.pair_id, p.prompt_id, j.winner, j.left_is_a, j.annotator_id, "
                       "ca.id, ca.source, ca.model_path, ca.sampling_json, ca.seed, "
                       "cb.id, cb.source, cb.model_path, cb.sampling_json, cb.seed "
                       "FROM judgments j JOIN pairs p ON p.id = j.pair_id "
                       "JOIN completions ca ON ca.id = p.completion_a JOIN completions cb ON cb.id = p.completion_b "
                       "WHERE j.kind = 'eval' ORDER BY j.id"));
    while (q.next()) {
        const std::optional<Winner> w = battleWinner(q.value(3).toString());
        if (!w)
            continue;
        const qint64 promptId = q.value(2).toLongLong();
        auto modelOf = [&](int col) -> int {
            if (q.value(col + 1).toString() != QLatin1String("generated") || q.value(col + 3).toString() != samplingJson
                || q.value(col + 4).isNull() || q.value(col + 4).toLongLong() != sampling.seedFor(promptId))
                return -1;
            return index.value(q.value(col + 2).toString(), -1);
        };
        const int a = modelOf(6), b = modelOf(11);
        if (a < 0 || b < 0 || a == b)
            continue;
        EvalBattle bt;
        bt.judgmentId = q.value(0).toLongLong();
        bt.pairId = q.value(1).toLongLong();
        bt.promptId = promptId;
        bt.modelA = a;
        bt.modelB = b;
        bt.winner = *w;
        bt.leftIsA = q.value(4).toInt() != 0;
        bt.annotatorId = q.value(5).toLongLong();
        bt.completionA = q.value(6).toLongLong();
        bt.completionB = q.value(11).toLongLong();
        out << bt;
    }
    q.finish();
    return out;
}

QVector<EvalOutput> evalOutputs(const ProjectStore &store, const QVector<EvalModel> &models,
    const QVector<qint64> &promptIds, const SamplingSettings &sampling)
{
    const QSet<qint64> wanted(promptIds.begin(), promptIds.end());
    const QString samplingJson = sampling.toJson();
    QVector<EvalOutput> out;
    for (int i = 0; i < models.size(); ++i) {
        QSet<qint64> seen;
        QSqlQuery &q = store.impl().exec(
            QStringLiteral("SELECT id, prompt_id, text, seed FROM completions WHERE source = 'generated' AND "
                           "model_path = ? AND sampling_json = ? ORDER BY id"),
            { models[i].path, samplingJson });
        while (q.next()) {
            const qint64 p = q.value(1).toLongLong();
            if (!wanted.contains(p) || seen.contains(p) || q.value(3).isNull()
                || q.value(3).toLongLong() != sampling.seedFor(p))
                continue;
            seen.insert(p);
            out << EvalOutput { i, p, q.value(0).toLongLong(), q.value(2).toString() };
        }
        q.finish();
    }
    return out;
}

QStringList readPromptsJsonl(const QString &path, int *skipped)
{
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly))
        throw ProjectError(QStringLiteral("cannot open prompts file %1: %2").arg(path, f.errorString()).toStdString());
    const QByteArray data = mappedContents(f);
    const qint64 limit = defaultRowLimit();
    QStringList out;
    int skip = 0;
    jsonl::LineSplitter lines(std::string_view(data.constData(), size_t(data.size())));
    while (lines.next()) {
        const qint64 lineNo = lines.number();
        const QByteArray line = QByteArray::fromRawData(lines.text().data(), qsizetype(lines.text().size()));
        if (line.size() > limit)
            throw ProjectError(QStringLiteral("%1:%2: row of %3 bytes is above the limit of %4 bytes (raise it with "
                                              "DPO_MAX_ROW_BYTES)")
                                   .arg(path)
                                   .arg(lineNo)
                                   .arg(line.size())
                                   .arg(limit)
                                   .toStdString());
        QJsonParseError err;
        const QJsonDocument doc = QJsonDocument::fromJson(line, &err);
        if (!doc.isObject())
            throw ProjectError(
                QStringLiteral("%1:%2: invalid JSON (%3)")
                    .arg(path)
                    .arg(lineNo)
                    .arg(err.error == QJsonParseError::NoError ? QStringLiteral("not an object") : err.errorString())
                    .toStdString());
        const QJsonValue v = doc.object().value(QStringLiteral("prompt"));
        QString text;
        if (v.isString()) {
            text = v.toString();
        } else if (v.isArray()) {
            QStringList parts;
            for (const QJsonValue &m : v.toArray())
                parts << m.toObject().value(QStringLiteral("content")).toString();
            text = parts.join(QLatin1Char('\n'));
        }
        if (text.isEmpty()) {
            ++skip;
            continue;
        }
        out << text;
    }
    if (skipped)
        *skipped = skip;
    return out;
}

EvalQueueCounts evalQueueCounts(const ProjectStore &store)
{
    EvalQueueCounts c;
    ProjectStore::Impl &d = store.impl();
    c.total = d.scalar(QStringLiteral("SELECT COUNT(*) FROM slots WHERE kind = 'eval'")).toLongLong();
    c.done = d.scalar(QStringLiteral("SELECT COUNT(*) FROM slots WHERE kind = 'eval' AND done_at IS NOT NULL"))
                 .toLongLong();
    return c;
}

} // namespace dpo
