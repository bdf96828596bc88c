// The Evaluate page's charts and its report export.
//
//   plotRatings / plotWinRates / plotCheckpointScores   draw EvaluationResults and checkpoint scores into
//       a QCustomPlot (the page's widgets and the report's off-screen charts use the same code).
//   writeHtmlReport   one self-contained HTML file: the charts as base64 PNG (<img src="data:image/png;
//       base64,...">, rendered with QCustomPlot::toPixmap into a buffer), the ratings / win-rate table with
//       length statistics, the separation table, the automatic metrics over checkpoints, the per-prompt
//       table with both outputs. No external file, script or style sheet.
//   writeCsvReport    CSV (RFC 4180, UTF-8, header row): one row per model. writeBattlesCsv: one row per
//       judgment. writeCheckpointsCsv: one row per scored checkpoint.
// Needs a QApplication (QCustomPlot is a widget); runs on the GUI thread.
#pragma once

#include "ui/evaluate/evaluationresults.h"
#include "ui/evaluate/evaluationworker.h"

#include <QByteArray>
#include <QString>
#include <QVector>

class QCustomPlot;

void plotRatings(QCustomPlot *plot, const EvaluationResults &results);
void plotWinRates(QCustomPlot *plot, const EvaluationResults &results);
// Implicit-reward accuracy over steps (accuracyPlot) and mean log-prob shift of chosen and rejected
// completions over steps (shiftPlot); either may be null.
void plotCheckpointScores(QCustomPlot *accuracyPlot, QCustomPlot *shiftPlot, const QVector<CheckpointScore> &scores);

// PNG bytes of a plot rendered at width x height.
QByteArray plotPng(QCustomPlot *plot, int width, int height);

struct ReportMeta {
    QString title = QStringLiteral("DPO Studio evaluation report");
    QString project; // display name
    QString sampling; // the sampling settings JSON
    QString generatedAt; // text
    int prompts = 0;
};

bool writeHtmlReport(const QString &path, const EvaluationResults &results, const QVector<CheckpointScore> &scores,
    const ReportMeta &meta, QString *error = nullptr);
bool writeCsvReport(const QString &path, const EvaluationResults &results, QString *error = nullptr);
bool writeBattlesCsv(const QString &path, const EvaluationResults &results, QString *error = nullptr);
bool writeCheckpointsCsv(const QString &path, const QVector<CheckpointScore> &scores, QString *error = nullptr);

// One CSV field, quoted when it holds a comma, quote, CR or LF (RFC 4180).
QString csvField(const QString &s);
