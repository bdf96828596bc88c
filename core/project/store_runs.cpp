// ProjectStore's training runs: create, update status and last metrics, finish, list.
#include "project/project_store.h"

#include "project/project_store_p.h"

namespace dpo {

qint64 ProjectStore::createRun(const QString &name, const QString &configJson, const QString &outputDir)
{
    TxGuard tx(*d);
    const qint64 id = d->insert(QStringLiteral("INSERT INTO runs (name, status, config_json, output_dir, started_at, "
                                               "last_metrics_json) VALUES (?, 'created', ?, ?, ?, '{}') RETURNING id"),
        { name, configJson.isEmpty() ? QStringLiteral("{}") : configJson, outputDir, nowMs() });
    tx.commit();
    return id;
}

void ProjectStore::updateRun(qint64 id, const QString &status, const QString &lastMetricsJson)
{
    TxGuard tx(*d);
    if (lastMetricsJson.isEmpty())
        d->exec(QStringLiteral("UPDATE runs SET status = ? WHERE id = ?"), { status, id });
    else
        d->exec(QStringLiteral("UPDATE runs SET status = ?, last_metrics_json = ? WHERE id = ?"),
            { status, lastMetricsJson, id });
    tx.commit();
}

void ProjectStore::finishRun(qint64 id, const QString &status)
{
    TxGuard tx(*d);
    d->exec(QStringLiteral("UPDATE runs SET status = ?, ended_at = ? WHERE id = ?"), { status, nowMs(), id });
    tx.commit();
}

QVector<Run> ProjectStore::runs() const
{
    QVector<Run> out;
    QSqlQuery &q = d->exec(QStringLiteral("SELECT id, name, status, config_json, output_dir, started_at, ended_at, "
                                          "last_metrics_json FROM runs ORDER BY id"));
    while (q.next()) {
        Run r;
        r.id = q.value(0).toLongLong();
        r.name = q.value(1).toString();
        r.status = q.value(2).toString();
        r.configJson = q.value(3).toString();
        r.outputDir = q.value(4).toString();
        r.startedAt = fromMs(q.value(5));
        r.endedAt = fromMs(q.value(6));
        r.lastMetricsJson = q.value(7).toString();
        out.push_back(r);
    }
    q.finish();
    return out;
}

} // namespace dpo
