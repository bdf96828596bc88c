#include "project/run_record.h"

#include <QCoreApplication>
#include <QDir>
#include <QFile>
#include <QJsonDocument>
#include <QSysInfo>

#include <cerrno>
#include <csignal>

#include <sys/types.h>
#include <unistd.h>

namespace dpo {

RunRecord::RunRecord(ProjectStore *store, Note note)
    : m_store(store)
    , m_note(std::move(note))
{
}

RunRecord::~RunRecord()
{
    release();
}

qint64 RunRecord::begin(qint64 id, const QString &name, const QString &configJson, const QString &outputDir)
{
    if (!m_store)
        return 0;
    m_id = id > 0 ? id : m_store->createRun(name, configJson, outputDir);
    m_store->updateRun(m_id, QStringLiteral("running"));
    return m_id;
}

void RunRecord::lock(const QString &outputDir)
{
    m_lockPath = QDir(outputDir).filePath(lockFileName());
    QFile lock(m_lockPath);
    if (lock.open(QIODevice::WriteOnly | QIODevice::Truncate))
        lock.write(QStringLiteral("%1\n%2\n")
                       .arg(QCoreApplication::applicationPid())
                       .arg(QSysInfo::machineHostName())
                       .toUtf8());
}

void RunRecord::release()
{
    if (!m_lockPath.isEmpty())
        QFile::remove(m_lockPath);
    m_lockPath.clear();
}

void RunRecord::addMetrics(const QJsonObject &line)
{
    for (auto it = line.constBegin(); it != line.constEnd(); ++it)
        m_lastMetrics.insert(it.key(), it.value());
}

void RunRecord::update(const QString &status)
{
    if (!m_store || m_id <= 0)
        return;
    try {
        m_store->updateRun(m_id, status,
                           QString::fromUtf8(QJsonDocument(m_lastMetrics).toJson(QJsonDocument::Compact)));
    } catch (const std::exception &e) {
        noteFailure(e);
    }
}

void RunRecord::finish(const QString &status)
{
    if (!m_store || m_id <= 0)
        return;
    update(status);
    try {
        m_store->finishRun(m_id, status);
    } catch (const std::exception &e) {
        noteFailure(e);
    }
}

void RunRecord::noteFailure(const std::exception &e) const
{
    if (m_note)
        m_note(QCoreApplication::translate("RunRecord", "note: the run record was not updated: %1")
                   .arg(QString::fromUtf8(e.what())));
}

bool RunRecord::isLocked(const QString &outputDir)
{
    QFile f(QDir(outputDir).filePath(lockFileName()));
    if (!f.open(QIODevice::ReadOnly))
        return false;
    const QList<QByteArray> lines = f.readAll().split('\n');
    const qint64 pid = lines.value(0).trimmed().toLongLong();
    const QString host = QString::fromUtf8(lines.value(1).trimmed());
    if (pid <= 0)
        return false;
    if (host != QSysInfo::machineHostName())
        return true; // another machine's run: we cannot tell, so do not call it interrupted
    return ::kill(pid_t(pid), 0) == 0 || errno == EPERM;
}

} // namespace dpo
