#include "engine/error.h"
#include "engine/models/adapter_io.h"
#include "engine/models/model_config.h"
#include "engine/chat/chat_template.h"
#include "engine/data/preference_data.h"
#include "engine/io/json_limits.h"
#include "engine/io/safetensors.h"
#include "engine/tokenizers/tokenizer.h"

#include <torch/cuda.h>

#include "ui/train/traindata.h"

#include "project/training_export.h"

#include <QCoreApplication>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QLocale>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <map>
#include <optional>
#include <set>

#include <unistd.h>

static QString tr(const char *s)
{
    return QCoreApplication::translate("TrainData", s);
}

QString ModelInfo::summary() const
{
    if (!ok)
        return error;
    const QLocale loc;
    QString params;
    if (parameters >= 1000000000)
        params = tr("%1 B parameters").arg(double(parameters) / 1e9, 0, 'f', 2);
    else if (parameters >= 1000000)
        params = tr("%1 M parameters").arg(double(parameters) / 1e6, 0, 'f', 1);
    else
        params = tr("%1 parameters").arg(loc.toString(parameters));
    QString vocab = tr("vocab %1").arg(loc.toString(vocabSize));
    if (tokenizerVocab != vocabSize)
        vocab += tr(" (tokenizer %1)").arg(loc.toString(tokenizerVocab));
    return QStringLiteral("%1 · %2 · %3 · %4 · %5 tokenizer · %6 layers, hidden %7, %8/%9 heads")
        .arg(architecture, params, storedDtype.isEmpty() ? configDtype : storedDtype, vocab, tokenizerKind)
        .arg(layers)
        .arg(hidden)
        .arg(heads)
        .arg(kvHeads);
}

ModelInfo inspectModel(const QString &dirIn)
{
    ModelInfo info;
    info.dir = dirIn;
    try {
        const QString dir = QDir::cleanPath(dirIn);
        if (dir.isEmpty())
            throw dpo::Error(tr("no model directory given").toStdString());
        if (!QFileInfo(dir).isDir())
            throw dpo::Error((dir + tr(": not a directory")).toStdString());
        const std::string d = dir.toStdString();
        if (dpo::isAdapterDir(d)) {
            // A LoRA adapter folder (e.g. a LoRA run's final/): its base model's shape, said to be adapted.
            const dpo::AdapterConfig adapter = dpo::readAdapterConfig(d);
            ModelInfo base = inspectModel(QString::fromStdString(dpo::resolveAdapterBase(d)));
            base.dir = dirIn;
            if (base.ok)
                base.architecture += tr(" + LoRA adapter (r %1)").arg(adapter.lora.r);
            return base;
        }
        const dpo::ModelConfig config = dpo::ModelConfig::fromDirectory(d);
        info.architecture = QString::fromStdString(config.architecture.empty() ? config.modelType : config.architecture);
        info.modelType = QString::fromStdString(config.modelType);
        info.configDtype = QString::fromStdString(config.torchDtype);
        info.vocabSize = config.vocabSize;
        info.layers = config.numLayers;
        info.hidden = config.hiddenSize;
        info.heads = config.numHeads;
        info.kvHeads = config.numKvHeads;
        info.maxPositions = config.maxPositionEmbeddings;
        info.intermediate = config.intermediateSize;
        info.headDim = config.headDim;

        // Weights: only the headers (the files are memory-mapped, nothing is read beyond them).
        std::vector<std::string> files;
        const QString single = QDir(dir).filePath(QStringLiteral("model.safetensors"));
        const QString index = QDir(dir).filePath(QStringLiteral("model.safetensors.index.json"));
        if (QFileInfo::exists(single)) {
            files.push_back(single.toStdString());
        } else if (QFileInfo::exists(index)) {
            const nlohmann::json j = dpo::readJsonFileLimited(index.toStdString()); // size and nesting checked
            if (!j.contains("weight_map") || !j["weight_map"].is_object())
                throw dpo::Error(index.toStdString() + ": missing \"weight_map\" object");
            std::set<std::string> shards;
            for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it)
                if (it.value().is_string())
                    shards.insert(it.value().get<std::string>());
            for (const auto &s : shards)
                files.push_back(QDir(dir).filePath(QString::fromStdString(s)).toStdString());
        } else {
            throw dpo::Error(d + ": no model.safetensors or model.safetensors.index.json");
        }
        std::map<std::string, qint64> dtypeBytes;
        for (const auto &file : files) {
            const auto st = dpo::SafetensorsFile::open(file);
            for (const auto &name : st.names()) {
                const auto &e = st.entry(name);
                qint64 n = 1;
                for (int64_t s : e.shape)
                    n *= s;
                info.parameters += n;
                dtypeBytes[e.dtypeName] += qint64(e.end - e.begin);
            }
        }
        qint64 best = -1;
        for (const auto &[name, bytes] : dtypeBytes)
            if (bytes > best) {
                best = bytes;
                info.storedDtype = QString::fromStdString(name);
            }

        const auto tok = dpo::loadTokenizer(d);
        info.tokenizerKind = QString::fromStdString(tok->kind());
        info.tokenizerVocab = tok->vocabSize();
        dpo::checkTokenizerFitsModel(*tok, config.vocabSize, d);
        info.ok = true;
    } catch (const std::exception &e) {
        info.ok = false;
        info.error = QString::fromUtf8(e.what());
    }
    return info;
}

QString DatasetSummary::text() const
{
    if (!ok)
        return error;
    const QLocale loc;
    const QString unit = inTokens ? tr("tokens") : tr("characters");
    QStringList lines;
    lines << tr("%1 training pairs, %2 eval pairs").arg(loc.toString(pairs), loc.toString(evalPairs));
    lines << tr("mean length (%1): prompt %2, chosen %3, rejected %4; longest sequence %5")
                 .arg(unit)
                 .arg(meanPrompt, 0, 'f', 0)
                 .arg(meanChosen, 0, 'f', 0)
                 .arg(meanRejected, 0, 'f', 0)
                 .arg(loc.toString(longest));
    lines << tr("length skew: chosen is the longer completion in %1% of pairs; %2 pairs differ more than 3×")
                 .arg(chosenLongerShare * 100, 0, 'f', 0)
                 .arg(loc.toString(skewed));
    if (maxLength > 0)
        lines << (inTokens ? tr("%1 pairs exceed max length %2 (they will be truncated)")
                                 .arg(loc.toString(overMaxLength), loc.toString(maxLength))
                           : tr("pick a model to count tokens over max length %1").arg(loc.toString(maxLength)));
    if (conversational > 0)
        lines << (chatTemplate.isEmpty()
                      ? tr("%1 conversational pairs (pick a model to render them with its chat template)")
                            .arg(loc.toString(conversational))
                      : tr("%1 conversational pairs, rendered with the chat template of %2")
                            .arg(loc.toString(conversational), chatTemplate));
    if (!tokenizationNotes.isEmpty())
        lines << tokenizationNotes;
    return lines.join(QLatin1Char('\n'));
}

static qint64 countRows(const QString &path)
{
    std::ifstream f(path.toStdString(), std::ios::binary);
    if (!f)
        throw dpo::Error(path.toStdString() + ": cannot open the dataset file");
    qint64 n = 0;
    std::string line;
    while (std::getline(f, line))
        if (line.find_first_not_of(" \t\r\n") != std::string::npos)
            ++n;
    return n;
}

DatasetSummary summarizeDataset(const QString &path, const QString &evalPath, const QString &tokenizerDir,
                                const DatasetCheckOptions &options)
{
    const qint64 maxLength = options.maxLength;
    const double evalRatio = options.evalRatio;
    DatasetSummary s;
    s.maxLength = maxLength;
    try {
        if (path.isEmpty())
            throw dpo::Error(tr("no dataset file given").toStdString());
        const auto rows = dpo::readPreferenceJsonl(path.toStdString());
        std::unique_ptr<dpo::Tokenizer> tok;
        if (!tokenizerDir.isEmpty()) {
            try {
                tok = dpo::loadTokenizer(tokenizerDir.toStdString());
            } catch (const std::exception &) {
                tok.reset(); // the model box shows that error; count characters here
            }
        }
        s.inTokens = tok != nullptr;
        for (const auto &row : rows)
            s.conversational += row.isConversational() ? 1 : 0;
        std::optional<dpo::ModelChatTemplate> chat;
        if (tok && (s.conversational > 0 || !options.chatTemplate.isEmpty())) {
            chat = dpo::loadChatTemplateFor(tokenizerDir.toStdString(), options.chatTemplate.toStdString());
            try {
                dpo::requireChatTemplate(rows, chat ? &*chat : nullptr, tokenizerDir.toStdString());
            } catch (const dpo::Error &e) {
                throw dpo::Error(path.toStdString() + ": " + e.what());
            }
            if (chat)
                s.chatTemplate = QString::fromStdString(chat->origin);
        }
        dpo::TruncationOptions untruncated; // lengths before truncation
        dpo::TruncationOptions trunc;
        trunc.maxLength = maxLength;
        trunc.mode = options.truncationMode.toStdString();
        dpo::TokenizationReport report;
        double sp = 0, sc = 0, sr = 0;
        qint64 chosenLonger = 0, differing = 0;
        for (const auto &row : rows) {
            qint64 p, c, r;
            if (tok) {
                dpo::TokenizedPair t;
                try {
                    t = dpo::tokenizePair(*tok, row, untruncated, chat ? &*chat : nullptr);
                } catch (const dpo::Error &e) {
                    throw dpo::Error(path.toStdString() + ":" + std::to_string(row.line) + ": " + e.what());
                }
                if (t.promptMismatch)
                    report.mismatchLines.push_back(row.line);
                if (maxLength > 0 && trunc.mode == "keep_start" && qint64(t.promptIds.size()) >= maxLength)
                    report.droppedLines.push_back(row.line);
                p = qint64(t.promptIds.size());
                c = qint64(t.chosenIds.size());
                r = qint64(t.rejectedIds.size());
            } else {
                p = QString::fromStdString(row.prompt).size();
                c = QString::fromStdString(row.chosen).size();
                r = QString::fromStdString(row.rejected).size();
            }
            sp += double(p);
            sc += double(c);
            sr += double(r);
            if (c != r) {
                ++differing;
                if (c > r)
                    ++chosenLonger;
            }
            const qint64 lo = std::max<qint64>(1, std::min(c, r)), hi = std::max(c, r);
            if (double(hi) > 3.0 * double(lo))
                ++s.skewed;
            const qint64 longest = p + std::max(c, r);
            s.longest = std::max(s.longest, longest);
            if (tok && maxLength > 0 && longest > maxLength)
                ++s.overMaxLength;
        }
        const double n = double(std::max<size_t>(1, rows.size()));
        s.meanPrompt = sp / n;
        s.meanChosen = sc / n;
        s.meanRejected = sr / n;
        s.chosenLongerShare = differing > 0 ? double(chosenLonger) / double(differing) : 0.0;
        s.pairs = qint64(rows.size());
        s.tokenizationNotes = QString::fromStdString(report.summary());
        s.dropped = qint64(report.droppedLines.size());
        if (!evalPath.isEmpty()) {
            s.evalPairs = countRows(evalPath);
        } else if (evalRatio > 0) {
            s.evalPairs = dpo::evalSplitSize(s.pairs, evalRatio);
            s.pairs -= s.evalPairs;
        }
        s.ok = true;
    } catch (const std::exception &e) {
        s.ok = false;
        s.error = QString::fromUtf8(e.what());
    }
    return s;
}

int cudaDeviceCount()
{
    try {
        return torch::cuda::is_available() ? int(torch::cuda::device_count()) : 0;
    } catch (const std::exception &) {
        return 0;
    }
}

qint64 processRssBytes()
{
    QFile f(QStringLiteral("/proc/self/statm"));
    if (!f.open(QIODevice::ReadOnly))
        return 0;
    const QList<QByteArray> parts = f.readAll().split(' ');
    if (parts.size() < 2)
        return 0;
    return parts[1].toLongLong() * qint64(sysconf(_SC_PAGESIZE));
}
