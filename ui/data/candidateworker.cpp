// libtorch first: Qt's `slots` macro would otherwise break its headers.
#include "engine/chat/chat_prompt.h"
#include "engine/error.h"
#include "engine/runtime.h"

#include "ui/data/candidateworker.h"

#include <QFileInfo>

#include <memory>

CandidateWorker::CandidateWorker(std::atomic<bool> *cancel)
    : m_cancel(cancel)
{
}

void CandidateWorker::run(const CandidateJob &job)
{
    try {
        job.options.validate(); // bad settings fail before anything is opened or loaded
        const QFileInfo dir(job.modelDir);
        if (job.modelDir.isEmpty() || !dir.isDir())
            throw dpo::Error("model directory not found: " + job.modelDir.toStdString());
        if (!dpo::isModelDirectory(job.modelDir))
            throw dpo::Error("not a model directory (no config.json, nor a LoRA adapter_config.json): "
                + job.modelDir.toStdString());
        const torch::Device device = dpo::parseDevice(job.device.toStdString());
        auto store = dpo::ProjectStore::open(job.projectLocation);

        dpo::GenerationOptions g;
        g.maxNewTokens = job.options.sampling.maxNewTokens;
        g.greedy = false;
        g.temperature = job.options.sampling.temperature;
        g.topK = job.options.sampling.topK;
        g.topP = job.options.sampling.topP;
        g.validate();

        dpo::ModelSampler model(job.modelDir.toStdString(), device);
        const dpo::CandidateBacklog backlog = dpo::candidateBacklog(*store, job.options.candidates, job.options.limit);
        qint64 done = 0;
        emit progress(0, backlog.candidates,
            tr("%n prompt(s) need %1 candidate(s)", nullptr, int(backlog.prompts)).arg(backlog.candidates));
        const dpo::CandidateSampler sample = [&](const dpo::Prompt &prompt, quint64 seed) -> std::optional<QString> {
            if (!model.loaded()) {
                emit progress(done, backlog.candidates, tr("Loading %1…").arg(QFileInfo(job.modelDir).fileName()));
                model.load();
            }
            g.seed = seed;
            const auto out = model.complete(prompt.text.toStdString(), prompt.messagesJson.toStdString(), g, m_cancel);
            if (!out)
                return std::nullopt;
            return QString::fromStdString(out->text);
        };
        const dpo::CandidateSummary summary = dpo::generateCandidates(
            *store, job.modelDir, job.options, sample, m_cancel, [&](const dpo::CandidateProgress &p) {
                done = p.done;
                emit progress(p.done, p.total,
                    tr("Prompt %1 of %2 (#%3)").arg(p.promptsDone + 1).arg(p.promptsTotal).arg(p.promptId));
            });
        emit finished(summary);
    } catch (const std::exception &e) {
        emit failed(QString::fromUtf8(e.what()));
    }
}

CandidateRunner::CandidateRunner(QObject *parent)
    : JobRunner(QStringLiteral("candidates"), parent)
    , m_worker(new CandidateWorker(cancelFlag()))
{
    qRegisterMetaType<dpo::CandidateSummary>();
    connect(m_worker, &CandidateWorker::progress, this, &CandidateRunner::progress);
    connect(m_worker, &CandidateWorker::finished, this, [this](const dpo::CandidateSummary &s) {
        end();
        emit finished(s);
    });
    connect(m_worker, &CandidateWorker::failed, this, [this](const QString &m) {
        end();
        emit failed(m);
    });
    adoptWorker(m_worker);
}

bool CandidateRunner::start(const CandidateJob &job)
{
    if (!begin())
        return false;
    post([w = m_worker, job]() { w->run(job); });
    return true;
}
