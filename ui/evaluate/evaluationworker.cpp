// libtorch first: Qt's `slots` macro would otherwise break its headers.
#include "engine/models/causal_lm.h"
#include "engine/error.h"
#include "engine/evaluation/pair_scoring.h"
#include "engine/generation/generation.h"
#include "engine/training/logprobs.h"
#include "engine/chat/chat_prompt.h"
#include "engine/chat/chat_template.h"
#include "engine/data/preference_data.h"
#include "engine/runtime.h"
#include "engine/tokenizers/tokenizer.h"

#include "ui/evaluate/evaluationworker.h"

#include <QElapsedTimer>

#include <algorithm>
#include <optional>

#include <algorithm>

namespace {

struct SideLogps {
    std::vector<double> chosen;
    std::vector<double> rejected;
};

std::vector<double> toVector(const torch::Tensor &t)
{
    const torch::Tensor c = t.to(torch::kCPU, torch::kDouble).contiguous();
    return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

// Summed completion log-probs of every pair's chosen and rejected side (engine/evaluation/pair_scoring.h);
// false when cancelled.
bool scoreSides(dpo::CausalLM &model, const std::vector<dpo::TokenizedPair> &pairs, int64_t padId, torch::Device device,
    int batchSize, const std::atomic<bool> &cancel, const std::function<void()> &batchDone, SideLogps &out)
{
    if (cancel.load())
        return false;
    const auto scored = dpo::scorePairs(model, pairs, padId, batchSize, device, {}, [&]() {
        batchDone();
        return !cancel.load();
    });
    if (!scored)
        return false;
    out.chosen = toVector(scored->chosenSum);
    out.rejected = toVector(scored->rejectedSum);
    return true;
}

} // namespace

EvaluationWorker::EvaluationWorker(std::atomic<bool> *cancel)
    : m_cancel(cancel)
{
}

void EvaluationWorker::runGeneration(const GenerationJob &job)
{
    try {
        QElapsedTimer timer;
        timer.start();
        GenerationSummary summary;
        auto store = dpo::ProjectStore::open(job.projectLocation);
        QStringList texts = job.prompts;
        if (!job.promptsFile.isEmpty())
            texts += dpo::readPromptsJsonl(job.promptsFile);
        // The project's own prompts are used by id: a conversational prompt keeps its messages.
        QVector<qint64> projectIds;
        if (job.projectPrompts > 0) {
            dpo::ListQuery q;
            q.limit = job.projectPrompts;
            for (const dpo::PromptRow &row : store->listPrompts(q).rows)
                projectIds << row.id;
        }
        {
            dpo::ProjectStore::Transaction tx(*store);
            for (const QString &text : std::as_const(texts)) {
                if (text.trimmed().isEmpty())
                    continue;
                const qint64 id = store->addPrompt(text);
                if (summary.promptIds.contains(id))
                    continue;
                summary.promptIds << id;
            }
            tx.commit();
        }
        for (qint64 id : std::as_const(projectIds))
            if (!summary.promptIds.contains(id))
                summary.promptIds << id;
        if (summary.promptIds.isEmpty())
            throw dpo::Error("the prompt set is empty");
        dpo::GenerationOptions options;
        options.maxNewTokens = job.sampling.maxNewTokens;
        options.greedy = job.sampling.greedy;
        options.temperature = job.sampling.temperature;
        options.topK = job.sampling.topK;
        options.topP = job.sampling.topP;
        options.validate();
        const torch::Device device = dpo::parseDevice(job.device.toStdString());

        const qint64 total = qint64(job.models.size()) * summary.promptIds.size();
        qint64 done = 0;
        emit progress(0, total, tr("Looking up cached completions…"));
        for (const dpo::EvalModel &model : job.models) {
            if (m_cancel->load())
                break;
            QVector<int> todo;
            for (int i = 0; i < summary.promptIds.size(); ++i) {
                if (dpo::findGeneratedCompletion(*store, summary.promptIds[i], model, job.sampling)) {
                    ++summary.cached;
                    ++done;
                } else {
                    todo << i;
                }
            }
            emit progress(done, total,
                tr("%1: %2 cached, %3 to generate")
                    .arg(model.name)
                    .arg(summary.promptIds.size() - todo.size())
                    .arg(todo.size()));
            if (todo.isEmpty())
                continue; // everything cached: the model is not even loaded
            emit progress(done, total, tr("Loading %1…").arg(model.name));
            // The model's chat template formats the prompt when it has one (engine/chat/chat_prompt.h).
            dpo::ModelSampler sampler(model.path.toStdString(), device);
            sampler.load();
            dpo::GenerationOptions g = options;
            for (int i : todo) {
                if (m_cancel->load())
                    break;
                const qint64 promptId = summary.promptIds[i];
                const dpo::Prompt prompt = store->prompt(promptId);
                g.seed = quint64(job.sampling.seedFor(promptId));
                const auto out = sampler.complete(prompt.text.toStdString(), prompt.messagesJson.toStdString(), g, m_cancel);
                if (!out)
                    break; // a cut-off completion is not a sample of the model: not stored
                const QString text = QString::fromStdString(out->text);
                store->addCompletion(promptId, text, dpo::evalProvenance(model, job.sampling, promptId));
                ++summary.generated;
                ++done;
                emit progress(
                    done, total, tr("%1: prompt %2 of %3").arg(model.name).arg(i + 1).arg(summary.promptIds.size()));
            }
        }
        summary.cancelled = m_cancel->load();
        summary.seconds = double(timer.elapsed()) / 1000.0;
        emit generationFinished(summary);
    } catch (const std::exception &e) {
        emit failed(QString::fromUtf8(e.what()));
    }
}

void EvaluationWorker::runScoring(const ScoringJob &job)
{
    try {
        const torch::Device device = dpo::parseDevice(job.device.toStdString());
        std::vector<dpo::PreferenceRow> rows = dpo::readPreferenceJsonl(job.dataset.toStdString());
        if (job.maxPairs > 0 && rows.size() > size_t(job.maxPairs))
            rows.resize(size_t(job.maxPairs));
        const std::string refDir = job.referenceModel.toStdString();
        std::unique_ptr<dpo::Tokenizer> tok = dpo::loadTokenizer(refDir);
        dpo::TruncationOptions trunc;
        trunc.maxLength = job.maxLength;
        // Conversational rows: the reference model's chat template, as training renders them.
        std::optional<dpo::ModelChatTemplate> chat;
        if (std::any_of(rows.begin(), rows.end(), [](const dpo::PreferenceRow &r) { return r.isConversational(); }))
            chat = dpo::loadModelChatTemplate(refDir);
        dpo::requireChatTemplate(rows, chat ? &*chat : nullptr, refDir);
        std::vector<dpo::TokenizedPair> pairs;
        pairs.reserve(rows.size());
        for (const dpo::PreferenceRow &r : rows) {
            try {
                pairs.push_back(dpo::tokenizePair(*tok, r, trunc, chat ? &*chat : nullptr));
            } catch (const dpo::Error &e) {
                throw dpo::Error(job.dataset.toStdString() + ":" + std::to_string(r.line) + ": " + e.what());
            }
        }
        const int batch = std::max(1, job.batchSize);
        const qint64 batches = qint64((pairs.size() + size_t(batch) - 1) / size_t(batch));
        const qint64 total = batches * (1 + job.checkpoints.size());
        qint64 done = 0;
        auto tick = [&]() {
            ++done;
            emit progress(done, total, QString());
        };

        emit progress(0, total, tr("Scoring the reference model…"));
        SideLogps ref;
        {
            std::shared_ptr<dpo::CausalLM> model = dpo::loadCausalLM(refDir, device);
            if (!scoreSides(*model, pairs, tok->padId(), device, batch, *m_cancel, tick, ref)) {
                emit scoringFinished(true);
                return;
            }
        }
        const QString refCanonical = dpo::canonicalModelPath(job.referenceModel);
        for (const ScoringCheckpoint &c : job.checkpoints) {
            if (m_cancel->load()) {
                emit scoringFinished(true);
                return;
            }
            emit progress(done, total, tr("Scoring %1…").arg(c.name));
            SideLogps pol;
            if (dpo::canonicalModelPath(c.path) == refCanonical) {
                pol = ref; // the reference against itself: no second pass
                done += batches;
            } else {
                std::shared_ptr<dpo::CausalLM> model = dpo::loadCausalLM(c.path.toStdString(), device);
                if (!scoreSides(*model, pairs, tok->padId(), device, batch, *m_cancel, tick, pol)) {
                    emit scoringFinished(true);
                    return;
                }
            }
            CheckpointScore s;
            s.name = c.name;
            s.step = c.step;
            s.pairs = int(pairs.size());
            int correct = 0;
            double margin = 0, sc = 0, sr = 0;
            for (size_t i = 0; i < pairs.size(); ++i) {
                const double rc = pol.chosen[i] - ref.chosen[i];
                const double rr = pol.rejected[i] - ref.rejected[i];
                correct += (job.beta * rc > job.beta * rr) ? 1 : 0;
                margin += job.beta * (rc - rr);
                sc += rc;
                sr += rr;
            }
            const double n = std::max<double>(1.0, double(pairs.size()));
            s.accuracy = correct / n;
            s.meanMargin = margin / n;
            s.shiftChosen = sc / n;
            s.shiftRejected = sr / n;
            emit checkpointScored(s);
        }
        emit scoringFinished(false);
    } catch (const std::exception &e) {
        emit failed(QString::fromUtf8(e.what()));
    }
}

EvaluationRunner::EvaluationRunner(QObject *parent)
    : JobRunner(QStringLiteral("evaluation"), parent)
    , m_worker(new EvaluationWorker(cancelFlag()))
{
    qRegisterMetaType<GenerationSummary>();
    qRegisterMetaType<CheckpointScore>();
    connect(m_worker, &EvaluationWorker::progress, this, &EvaluationRunner::progress);
    connect(m_worker, &EvaluationWorker::checkpointScored, this, &EvaluationRunner::checkpointScored);
    connect(m_worker, &EvaluationWorker::generationFinished, this, [this](const GenerationSummary &s) {
        end();
        emit generationFinished(s);
    });
    connect(m_worker, &EvaluationWorker::scoringFinished, this, [this](bool cancelled) {
        end();
        emit scoringFinished(cancelled);
    });
    connect(m_worker, &EvaluationWorker::failed, this, [this](const QString &m) {
        end();
        emit failed(m);
    });
    adoptWorker(m_worker);
}

bool EvaluationRunner::startGeneration(const GenerationJob &job)
{
    if (!begin())
        return false;
    post([w = m_worker, job]() { w->runGeneration(job); });
    return true;
}

bool EvaluationRunner::startScoring(const ScoringJob &job)
{
    if (!begin())
        return false;
    post([w = m_worker, job]() { w->runScoring(job); });
    return true;
}
