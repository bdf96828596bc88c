#include "project/training_export.h"

#include "engine/error.h"

#include <QCoreApplication>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QSaveFile>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

namespace dpo {

static QString tr(const char *text, int n = -1)
{
    return QCoreApplication::translate("TrainingExport", text, nullptr, n);
}

TrainingDataResult prepareTrainingData(ProjectStore *store, const TrainingDataPlan &plan,
                                       const std::atomic<bool> *cancel,
                                       const std::function<void(const QString &)> &log)
{
    auto note = [&log](const QString &line) {
        if (log)
            log(line);
    };
    TrainingDataResult result;
    QString source = plan.sourcePath;
    if (plan.source == TrainingDataPlan::Source::Project) {
        if (!store)
            throw Error("the project's judged pairs cannot be exported: no project is open");
        source = plan.evalRatio > 0 ? QFileInfo(plan.trainPath).absoluteDir().filePath(QStringLiteral("pairs.jsonl"))
                                    : plan.trainPath;
        QDir().mkpath(QFileInfo(source).absolutePath());
        note(tr("exporting the project's judged pairs to %1").arg(source));
        ExportOptions opt;
        opt.format = ExportFormat::Trl;
        opt.minVotes = plan.minVotes;
        opt.minAgreement = plan.minAgreement;
        opt.cancel = cancel;
        const ExportResult r = exportFile(*store, source, opt);
        if (r.cancelled)
            throw Error("stopped while exporting the project's pairs");
        if (r.rows == 0)
            throw Error("option 'dataset': the project has no judged pairs that pass the export filters (min votes " +
                        std::to_string(plan.minVotes) + ", min agreement " + std::to_string(plan.minAgreement) + ")");
        result.exportedPairs = r.rows;
        note(tr("%n judged pairs exported", int(r.rows)));
    }
    if (plan.evalRatio > 0) {
        splitDataset(source, plan.evalRatio, plan.seed, plan.trainPath, plan.evalPath, &result.trainRows,
                     &result.evalRows);
        note(tr("eval split %1: %2 training rows, %3 eval rows")
                 .arg(plan.evalRatio)
                 .arg(result.trainRows)
                 .arg(result.evalRows));
    }
    return result;
}

qint64 evalSplitSize(qint64 rows, double ratio)
{
    if (ratio <= 0 || rows < 2)
        return 0;
    return std::clamp<qint64>(qint64(std::llround(double(rows) * ratio)), 1, rows - 1);
}

void splitDataset(const QString &source, double evalRatio, quint64 seed, const QString &trainOut,
                  const QString &evalOut, qint64 *trainRows, qint64 *evalRows)
{
    QFile in(source);
    if (!in.open(QIODevice::ReadOnly))
        throw Error(source.toStdString() + ": cannot open the dataset file");
    QList<QByteArray> lines;
    while (!in.atEnd()) {
        QByteArray line = in.readLine();
        if (!line.trimmed().isEmpty()) {
            if (!line.endsWith('\n'))
                line.append('\n');
            lines.append(line);
        }
    }
    const qint64 n = lines.size();
    const qint64 nEval = evalSplitSize(n, evalRatio);
    std::vector<qint64> order(static_cast<size_t>(n));
    for (qint64 i = 0; i < n; ++i)
        order[size_t(i)] = i;
    // Fisher-Yates with our own draw: std::shuffle's algorithm differs between standard libraries.
    std::mt19937_64 rng(seed * 7919ull + 17ull);
    for (qint64 i = n; i > 1; --i)
        std::swap(order[size_t(i - 1)], order[size_t(rng() % quint64(i))]);
    std::vector<bool> isEval(size_t(n), false);
    for (qint64 i = 0; i < nEval; ++i)
        isEval[size_t(order[size_t(i)])] = true;
    QSaveFile train(trainOut), eval(evalOut);
    QDir().mkpath(QFileInfo(trainOut).absolutePath());
    QDir().mkpath(QFileInfo(evalOut).absolutePath());
    if (!train.open(QIODevice::WriteOnly) || !eval.open(QIODevice::WriteOnly))
        throw Error(trainOut.toStdString() + ": cannot write the split dataset");
    for (qint64 i = 0; i < n; ++i)
        (isEval[size_t(i)] ? eval : train).write(lines[int(i)]);
    if (!train.commit() || !eval.commit())
        throw Error(trainOut.toStdString() + ": write failed (disk full?)");
    if (trainRows)
        *trainRows = n - nEval;
    if (evalRows)
        *evalRows = nEval;
}

} // namespace dpo
