// Helpers shared by the project-store Qt tests: a fresh project location per test, on SQLite (a file in a
// temporary folder) or on PostgreSQL (a new database on the server named by DPO_TEST_PG_URL, which
// tests/pg/with_pg.sh sets; PostgreSQL rows QSKIP when it is unset).
#pragma once

#include <QCoreApplication>
#include <QDateTime>
#include <QSqlDatabase>
#include <QSqlError>
#include <QSqlQuery>
#include <QTemporaryDir>
#include <QTest>
#include <QUrl>

#include <atomic>

namespace projecttest {

inline QString pgBaseUrl()
{
    return qEnvironmentVariable("DPO_TEST_PG_URL");
}

// A new, empty PostgreSQL database on the test server; returns its URL (empty + message on failure).
inline QString freshPgDatabase(QString *error)
{
    static std::atomic<int> counter { 0 };
    const QUrl base(pgBaseUrl());
    const QString name = QStringLiteral("dpo_test_%1_%2_%3")
                             .arg(QCoreApplication::applicationPid())
                             .arg(QDateTime::currentMSecsSinceEpoch() % 100000000)
                             .arg(++counter);
    const QString conn = QStringLiteral("projecttest_admin_%1").arg(name);
    {
        QSqlDatabase db = QSqlDatabase::addDatabase(QStringLiteral("QPSQL"), conn);
        db.setHostName(base.host());
        db.setPort(base.port(5432));
        db.setUserName(base.userName());
        db.setPassword(base.password());
        db.setDatabaseName(base.path().mid(1));
        if (!db.open()) {
            *error = db.lastError().text();
        } else {
            QSqlQuery q(db);
            if (!q.exec(QStringLiteral("CREATE DATABASE ") + name))
                *error = q.lastError().text();
        }
    }
    QSqlDatabase::removeDatabase(conn);
    if (!error->isEmpty())
        return {};
    QUrl url = base;
    url.setPath(QLatin1Char('/') + name);
    return url.toString();
}

// "sqlite" or "postgres": a location for a brand-new project. QSKIPs the PostgreSQL row without a server.
#define DPO_FRESH_PROJECT(backend, dir, out)                                                                           \
    do {                                                                                                               \
        if ((backend) == QLatin1String("postgres")) {                                                                  \
            if (projecttest::pgBaseUrl().isEmpty())                                                                    \
                QSKIP("DPO_TEST_PG_URL is not set (run through tests/pg/with_pg.sh)");                                 \
            QString pgError;                                                                                           \
            out = projecttest::freshPgDatabase(&pgError);                                                              \
            QVERIFY2(pgError.isEmpty(), qPrintable(pgError));                                                          \
        } else {                                                                                                       \
            static int n = 0;                                                                                          \
            out = (dir).filePath(QStringLiteral("p%1.dpoproj").arg(++n));                                              \
        }                                                                                                              \
    } while (0)

} // namespace projecttest
