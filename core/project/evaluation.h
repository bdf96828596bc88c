// Evaluation bookkeeping in the project store: which models take part in a blind comparison, the
// sampling settings and seeds their completions were generated with (the generation cache key), the
// eval pairs between the models' completions, the blind session's state, and the battles read back
// from the 'eval' judgments.
//
// What it does: keys generated completions by provenance (source "generated", model directory,
// sampling JSON, seed) so a completion is generated once; creates one 'eval' pair per prompt and pair
// of models (reusing an existing one), which the store queues and serves blind with a per-annotator
// randomized, recorded left/right order; keeps the session ("judging" -> "ended") in the settings
// table so identities stay hidden until the user ends it; reads battles and outputs back.
// What it does not do: run models (the GUI's EvaluationWorker does), or statistics (engine/evaluation/statistics.h
// is called by the GUI, which links the engine; this library stays Qt Core + Sql only).
#pragma once

#include "project/project_store.h"

#include <QDateTime>
#include <QHash>
#include <QString>
#include <QStringList>
#include <QVector>

#include <optional>

namespace dpo {

// A model taking part in an evaluation: a Hugging Face directory.
struct EvalModel {
    QString name; // the display name, revealed when the session ends ("base", "run 2 / checkpoint-40")
    QString path; // absolute, canonical directory (see canonicalModelPath)
    QString checkpoint; // "checkpoint-40", "final", or empty for a base model
};

// The generation settings every model of an evaluation shares. The prompt with id p is sampled with
// seed seedFor(p) = seed + p for every model, so two models see the same random stream per prompt.
struct SamplingSettings {
    int maxNewTokens = 64;
    bool greedy = true;
    double temperature = 1.0;
    int topK = 0;
    double topP = 1.0;
    quint64 seed = 0;

    // Canonical compact JSON without the seed (the seed has its own provenance column):
    // {"greedy":true,"max_new_tokens":64,"temperature":1,"top_k":0,"top_p":1}. Greedy decoding ignores
    // the sampling knobs, so greedy settings always write temperature 1, top_k 0, top_p 1 (one cache
    // entry however the unused fields were set).
    QString toJson() const;
    // Reads toJson()'s form (and a "seed" key when present). Throws ProjectError for invalid JSON.
    static SamplingSettings fromJson(const QString &json);
    qint64 seedFor(qint64 promptId) const { return qint64(seed) + promptId; }
};

// A Hugging Face model folder (config.json) or a PEFT LoRA adapter folder (adapter_config.json), which
// the engine loads on its base: what the GUI accepts wherever it asks for a model.
bool isModelDirectory(const QString &dir);

// Absolute path with symlinks and ".." resolved (the directory as given when it does not exist), no
// trailing slash: with modelFingerprint, the cache key of a model.
QString canonicalModelPath(const QString &dir);

// What the weights in `dir` are, cheaply: a hash of config.json's bytes and of the name, size and
// modification time of every weight file (*.safetensors, *.bin, the shard index). Retraining into the
// same directory, or replacing its weights, changes it, so cached outputs of the old weights are not
// served for the new ones. 16 hex digits. (Contents are not hashed: a multi-GB checkpoint would take
// seconds; a copy that keeps size and mtime is taken for the same weights.)
QString modelFingerprint(const QString &dir);

// The provenance a completion generated for an evaluation carries.
Provenance evalProvenance(const EvalModel &model, const SamplingSettings &sampling, qint64 promptId);

// The cached completion of `model` for a prompt under these settings, if one was generated before.
std::optional<qint64> findGeneratedCompletion(
    const ProjectStore &store, qint64 promptId, const EvalModel &model, const SamplingSettings &sampling);

// The blind session, kept as JSON in the setting "eval/session".
struct EvalSession {
    enum class State { None, Judging, Ended };
    State state = State::None;
    QVector<EvalModel> models;
    SamplingSettings sampling;
    QVector<qint64> promptIds;
    QDateTime startedAt;
    QDateTime endedAt;
};
QString evalStateName(EvalSession::State s); // "none", "judging", "ended"

EvalSession loadEvalSession(const ProjectStore &store);
void saveEvalSession(ProjectStore &store, const EvalSession &session);

struct EvalPairsResult {
    int created = 0; // new eval pairs (each queued for one blind judgment)
    int reused = 0; // pairs that already existed (their judgments count again)
    int missing = 0; // prompt x model pairs without a generated completion (skipped)
};

// Starts a blind session over `models` (two or more) and `promptIds`: for every prompt and every two
// models, one eval pair between their generated completions (A = the model listed first). Identical
// texts make a pair too (a tie is a legitimate outcome). Throws ProjectError with fewer than two models.
// One transaction.
EvalPairsResult startEvalSession(ProjectStore &store, const QVector<EvalModel> &models,
    const QVector<qint64> &promptIds, const SamplingSettings &sampling);
// Ends the session (identities may be shown from now on). No-op without a session.
void endEvalSession(ProjectStore &store);

// One non-skip eval judgment between two models of a session.
struct EvalBattle {
    qint64 judgmentId = 0;
    qint64 pairId = 0;
    qint64 promptId = 0;
    int modelA = 0; // index into the session's models: the model of the pair's completion a
    int modelB = 0;
    Winner winner = Winner::Tie; // A, B, Tie or BothBad
    bool leftIsA = true; // the side order the annotator saw
    qint64 completionA = 0;
    qint64 completionB = 0;
    qint64 annotatorId = 0;
};

// Every non-skip eval judgment whose two completions were generated by two different models of
// `models` with these sampling settings, in judgment order.
QVector<EvalBattle> evalBattles(
    const ProjectStore &store, const QVector<EvalModel> &models, const SamplingSettings &sampling);

// The generated completions of `models` (same settings) for `promptIds`: key (model index, prompt id).
struct EvalOutput {
    int model = 0;
    qint64 promptId = 0;
    qint64 completionId = 0;
    QString text;
};
QVector<EvalOutput> evalOutputs(const ProjectStore &store, const QVector<EvalModel> &models,
    const QVector<qint64> &promptIds, const SamplingSettings &sampling);

// Prompts of a JSONL file, one object per line with a "prompt" that is a string or a list of
// {"role","content"} messages (joined with "\n", as preference_data.h renders them). Rows without a
// prompt (TRL's implicit-prompt rows) are skipped and counted in *skipped; blank lines are ignored.
// Throws ProjectError naming the file and line for unreadable files and invalid JSON.
QStringList readPromptsJsonl(const QString &path, int *skipped = nullptr);

// Eval progress of the session's queue: slots of kind eval and how many are judged.
struct EvalQueueCounts {
    qint64 total = 0;
    qint64 done = 0;
};
EvalQueueCounts evalQueueCounts(const ProjectStore &store);

} // namespace dpo
