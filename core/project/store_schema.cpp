// ProjectStore's schema: the list of migrations (each a schema version and its statements, one text for
// SQLite and PostgreSQL), the recount of the progress counters (used by migration 4 and setOverlap), the
// test that a database is a DPO Studio project (schema_version) before anything is written to it, and
// migrateSchema, which open() runs to bring a project to the current version in one serialized transaction.
#include "project/project_store.h"

#include "project/project_store_p.h"

#include <QFileInfo>
#include <QSqlError>

#include <vector>

namespace dpo {

namespace {

struct Migration {
    int version;
    QStringList statements; // %ID% = the dialect's auto-increment 64-bit primary key
};

const std::vector<Migration> &migrations()
{
    static const std::vector<Migration> list = {
        { 1,
            {
                "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
                "CREATE TABLE annotators (id %ID%, name TEXT NOT NULL UNIQUE, order_seed BIGINT NOT NULL, "
                "created_at BIGINT NOT NULL)",
                "CREATE TABLE prompts (id %ID%, text TEXT NOT NULL, text_hash TEXT NOT NULL, messages_json TEXT, "
                "created_at BIGINT NOT NULL)",
                "CREATE INDEX prompts_hash ON prompts(text_hash)",
                "CREATE TABLE completions (id %ID%, prompt_id BIGINT NOT NULL REFERENCES prompts(id) ON DELETE "
                "CASCADE, "
                "text TEXT NOT NULL, text_hash TEXT NOT NULL, messages_json TEXT, source TEXT NOT NULL, "
                "model_path TEXT NOT NULL DEFAULT '', checkpoint TEXT NOT NULL DEFAULT '', "
                "sampling_json TEXT NOT NULL DEFAULT '{}', seed BIGINT, parent_id BIGINT REFERENCES completions(id), "
                "created_at BIGINT NOT NULL)",
                "CREATE INDEX completions_prompt ON completions(prompt_id)",
                "CREATE TABLE pairs (id %ID%, prompt_id BIGINT NOT NULL REFERENCES prompts(id) ON DELETE CASCADE, "
                "completion_a BIGINT NOT NULL REFERENCES completions(id), "
                "completion_b BIGINT NOT NULL REFERENCES completions(id), origin TEXT NOT NULL, "
                "kind TEXT NOT NULL DEFAULT 'label', preferred TEXT, import_style TEXT, queued INTEGER NOT NULL, "
                "created_at BIGINT NOT NULL)",
                "CREATE INDEX pairs_prompt ON pairs(prompt_id)",
                "CREATE TABLE slots (id %ID%, pair_id BIGINT NOT NULL REFERENCES pairs(id) ON DELETE CASCADE, "
                "slot_index INTEGER NOT NULL, kind TEXT NOT NULL, annotator_id BIGINT REFERENCES annotators(id), "
                "left_is_a INTEGER, order_seed BIGINT, claimed_at BIGINT, shown_at BIGINT, done_at BIGINT, "
                "UNIQUE (pair_id, slot_index))",
                // NULLs are distinct: many free slots per pair, but one slot per (pair, annotator).
                "CREATE UNIQUE INDEX slots_pair_annotator ON slots(pair_id, annotator_id)",
                "CREATE INDEX slots_queue ON slots(kind, annotator_id, pair_id)",
                "CREATE TABLE judgments (id %ID%, pair_id BIGINT NOT NULL REFERENCES pairs(id) ON DELETE CASCADE, "
                "slot_id BIGINT REFERENCES slots(id) ON DELETE SET NULL, "
                "annotator_id BIGINT NOT NULL REFERENCES annotators(id), "
                "left_completion_id BIGINT NOT NULL REFERENCES completions(id), left_is_a INTEGER NOT NULL, "
                "verdict TEXT NOT NULL, winner TEXT NOT NULL, strength INTEGER NOT NULL DEFAULT 0, "
                "rationale TEXT NOT NULL DEFAULT '', shown_at BIGINT NOT NULL, decided_at BIGINT NOT NULL, "
                "kind TEXT NOT NULL)",
                "CREATE INDEX judgments_pair ON judgments(pair_id, annotator_id)",
                "CREATE INDEX judgments_annotator ON judgments(annotator_id, kind, id)",
                "CREATE INDEX judgments_slot ON judgments(slot_id)",
            } },
        { 2,
            {
                "CREATE TABLE runs (id %ID%, name TEXT NOT NULL, status TEXT NOT NULL, config_json TEXT NOT NULL, "
                "output_dir TEXT NOT NULL, started_at BIGINT, ended_at BIGINT, "
                "last_metrics_json TEXT NOT NULL DEFAULT '{}')",
            } },
        { 3,
            {
                // progress(): count judged slots from an index range instead of a table scan.
                "CREATE INDEX slots_done ON slots(kind, done_at)",
                // An annotator's own slots (the open one on screen, the pairs they hold): without it SQLite
                // scans every free slot to find the one open slot of an annotator.
                "CREATE INDEX slots_mine ON slots(annotator_id, kind, done_at)",
            } },
        { 4,
            {
                // Keypress path, as index lookups on both databases. The open slot of an annotator, in id
                // order: PostgreSQL read slots_mine in primary-key order and filtered (O(slots claimed)).
                "CREATE INDEX slots_open ON slots(annotator_id, kind, id) WHERE done_at IS NULL",
                // Free slots in serving order: PostgreSQL sorted every free slot (60-90 ms at 200,000
                // pairs) or merge-joined whole indexes. It replaces slots_queue.
                "CREATE INDEX slots_free ON slots(kind, pair_id, id) WHERE annotator_id IS NULL",
                "DROP INDEX slots_queue",
                // progress() in O(1): counters kept in the transaction of every change (see CounterDelta).
                // annotator_id 0: the project (slots, slots_done, free_pairs = pairs with a free slot);
                // otherwise that annotator (judgments and their summed time on task by judgment kind;
                // touched_free = pairs of the kind with a free slot that the annotator holds or judged).
                "CREATE TABLE counters (annotator_id BIGINT NOT NULL, kind TEXT NOT NULL, "
                "slots BIGINT NOT NULL DEFAULT 0, slots_done BIGINT NOT NULL DEFAULT 0, "
                "free_pairs BIGINT NOT NULL DEFAULT 0, judgments BIGINT NOT NULL DEFAULT 0, "
                "judged_ms BIGINT NOT NULL DEFAULT 0, touched_free BIGINT NOT NULL DEFAULT 0, "
                "PRIMARY KEY (annotator_id, kind))",
                "%RECOUNT%", // the counters of an existing project, counted once
            } },
        { 5,
            {
                // Which weights a generated completion came from (see modelFingerprint in evaluation.h):
                // the generation cache must not serve outputs of a model directory whose files changed.
                "ALTER TABLE completions ADD COLUMN model_fingerprint TEXT NOT NULL DEFAULT ''",
            } },
        { 6,
            {
                // A verdict's id made by the client: recording it again after a lost connection (outcome
                // unknown) finds the first one instead of counting twice. NULLs are distinct.
                "ALTER TABLE judgments ADD COLUMN client_id TEXT",
                "CREATE UNIQUE INDEX judgments_client ON judgments(client_id)",
            } },
    };
    return list;
}

} // namespace

// Counts every progress counter from the tables (O(project)): at migration and after setOverlap.
const QStringList &recountStatements()
{
    static const QStringList list = {
        "DELETE FROM counters",
        "INSERT INTO counters (annotator_id, kind, slots, slots_done, free_pairs) "
        "SELECT 0, k.kind, (SELECT COUNT(*) FROM slots s WHERE s.kind = k.kind), "
        "(SELECT COUNT(*) FROM slots s WHERE s.kind = k.kind AND s.done_at IS NOT NULL), "
        "(SELECT COUNT(DISTINCT s.pair_id) FROM slots s WHERE s.kind = k.kind AND s.annotator_id IS NULL) "
        "FROM (SELECT 'label' AS kind UNION ALL SELECT 'eval') k",
        "INSERT INTO counters (annotator_id, kind, judgments, judged_ms, touched_free) "
        "SELECT a.id, k.kind, (SELECT COUNT(*) FROM judgments j WHERE j.annotator_id = a.id AND j.kind = k.kind), "
        "(SELECT COALESCE(SUM(j.decided_at - j.shown_at), 0) FROM judgments j WHERE j.annotator_id = a.id "
        "AND j.kind = k.kind), "
        "(SELECT COUNT(DISTINCT s.pair_id) FROM slots s WHERE s.kind = k.kind AND s.annotator_id IS NULL AND "
        "s.pair_id IN (SELECT j.pair_id FROM judgments j WHERE j.annotator_id = a.id UNION "
        "SELECT t.pair_id FROM slots t WHERE t.annotator_id = a.id)) "
        "FROM annotators a, (SELECT 'label' AS kind UNION ALL SELECT 'eval') k",
    };
    return list;
}

int ProjectStore::currentSchemaVersion()
{
    return migrations().back().version;
}

// The tables of the database: the SQLite file's, or those in the PostgreSQL connection's current schema.
static QStringList tableNames(ProjectStore::Impl &d)
{
    QSqlQuery q(d.db);
    const QString sql = d.pg()
        ? QStringLiteral("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
        : QStringLiteral("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' "
                         "ESCAPE '\\'");
    if (!q.exec(sql))
        throw ProjectError(
            QStringLiteral("%1 is not a DPO Studio project (%2)").arg(d.display, q.lastError().text()).toStdString());
    QStringList names;
    while (q.next())
        names << q.value(0).toString();
    names.sort();
    return names;
}

bool checkIsProject(ProjectStore::Impl &d, bool mayCreate)
{
    const QStringList tables = tableNames(d);
    if (tables.contains(QLatin1String("schema_version")))
        return true;
    if (tables.isEmpty()) {
        if (mayCreate)
            return false;
        QString what;
        if (d.pg())
            what = QStringLiteral("the database has no tables");
        else if (QFileInfo(d.location).size() == 0)
            what = QStringLiteral("an empty file");
        else
            what = QStringLiteral("an SQLite database without tables");
        throw ProjectError(QStringLiteral("%1 is not a DPO Studio project (%2); create a new project instead")
                               .arg(d.display, what)
                               .toStdString());
    }
    const QStringList shown = tables.mid(0, 5);
    throw ProjectError(QStringLiteral("%1 is not a DPO Studio project: it holds another program's tables (%2%3); "
                                      "DPO Studio leaves it as it is")
                           .arg(d.display, shown.join(QStringLiteral(", ")),
                               tables.size() > shown.size() ? QStringLiteral(", ...") : QString())
                           .toStdString());
}

void readSchemaVersion(ProjectStore::Impl &d)
{
    checkIsProject(d, false);
    const QVariant v = d.scalar(QStringLiteral("SELECT version FROM schema_version"));
    d.version = v.isNull() ? 0 : v.toInt();
    if (d.version > ProjectStore::currentSchemaVersion())
        throw ProjectError(QStringLiteral("project %1 has schema version %2, newer than this DPO Studio knows (%3)")
                               .arg(d.display)
                               .arg(d.version)
                               .arg(ProjectStore::currentSchemaVersion())
                               .toStdString());
    if (d.version < ProjectStore::currentSchemaVersion())
        throw ProjectError(QStringLiteral("project %1 has schema version %2 and is read-only: open it once with write "
                                          "permission to upgrade it to version %3")
                               .arg(d.display)
                               .arg(d.version)
                               .arg(ProjectStore::currentSchemaVersion())
                               .toStdString());
}

void migrateSchema(ProjectStore::Impl &d, int maxSchemaVersion, bool mayCreate)
{
    // Migrations: one transaction, serialized across processes (advisory lock on PostgreSQL, the write
    // lock of BEGIN IMMEDIATE on SQLite), so concurrent first opens do not race on CREATE TABLE.
    TxGuard tx(d);
    if (d.pg()) {
        QSqlQuery lock(d.db);
        if (!lock.exec(QStringLiteral("SELECT pg_advisory_xact_lock(727274001)")))
            d.fail(QStringLiteral("advisory lock"), lock.lastError());
    }
    // Inside the lock: a concurrent first open has either created the project or not started.
    checkIsProject(d, mayCreate);
    d.execDdl(QStringLiteral("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"));
    QVariant v = d.scalar(QStringLiteral("SELECT version FROM schema_version"));
    if (v.isNull())
        d.exec(QStringLiteral("INSERT INTO schema_version (version) VALUES (0)"));
    d.version = v.isNull() ? 0 : v.toInt();
    if (d.version > ProjectStore::currentSchemaVersion())
        throw ProjectError(QStringLiteral("project %1 has schema version %2, newer than this DPO Studio knows (%3)")
                               .arg(d.display)
                               .arg(d.version)
                               .arg(ProjectStore::currentSchemaVersion())
                               .toStdString());
    for (const Migration &m : migrations()) {
        if (m.version <= d.version || (maxSchemaVersion >= 0 && m.version > maxSchemaVersion))
            continue;
        for (const QString &s : m.statements) {
            if (s == QLatin1String("%RECOUNT%")) {
                for (const QString &r : recountStatements())
                    d.execDdl(r);
            } else {
                d.execDdl(s);
            }
        }
        d.exec(QStringLiteral("UPDATE schema_version SET version = ?"), { m.version });
        d.version = m.version;
    }
    tx.commit();
}

} // namespace dpo
