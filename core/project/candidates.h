// Candidate generation bookkeeping: for prompts that have fewer than N completions, sample the missing
// candidates, store them with provenance and queue label pairs between them, one prompt at a time.
//
// What it does: picks the prompts (ProjectStore::promptsNeedingCompletions, oldest first), derives a
// deterministic seed per candidate (so a rerun on the same data reproduces the same texts), retries a
// sample that repeats a text the prompt already has (a pair of identical texts teaches nothing) and
// keeps it with a note after `maxAttempts` tries (an empty or blank sample is retried too; a prompt that
// only ever gets empty ones is skipped whole, with a note), then writes the prompt's candidates and its new label
// pairs in one transaction: a cancel or an error keeps every finished prompt and never half of one.
// Pairing, over the prompt's distinct texts (the first completion of each, in id order): with up to 3,
// every two of them (1 or 3 pairs, a full ranking); with 4 or more, consecutive ones (n-1 pairs: labeling
// cost grows linearly while every candidate still joins one ranking). Two identical texts are never
// paired, nor two texts that already have a label pair. Pairs get origin "generated" and the project's
// overlap of queue slots.
// What it does not do: run a model. The caller passes a CandidateSampler (the GUI's CandidateWorker and
// `dpo-cli project generate` wrap dpo::generate); this library stays Qt Core + Sql, without libtorch.
// It uses one ProjectStore, on the calling thread.
#pragma once

#include "project/evaluation.h"
#include "project/project_store.h"

#include <QPair>
#include <QString>
#include <QStringList>
#include <QVector>

#include <atomic>
#include <functional>
#include <optional>

namespace dpo {

struct CandidateOptions {
    int candidates = 2; // completions wanted per prompt, 2..16
    // Sampling knobs and the base seed (sampling.seed). Greedy decoding would give N identical
    // candidates, so it is refused.
    SamplingSettings sampling = defaultSampling();
    int limit = 0; // at most this many prompts; 0 = all that need completions
    int maxAttempts = 4; // samples tried per candidate while it repeats a text the prompt already has

    static SamplingSettings defaultSampling();
    // Throws ProjectError naming the first invalid field.
    void validate() const;
};

// The seed of candidate slot `slot` (0-based index among the prompt's completions) of prompt `promptId`
// at retry `attempt`: a SplitMix64 mix of the four, cut to 53 bits (exact in JSON numbers). Distinct
// slots and attempts get unrelated streams; the same inputs always give the same seed.
quint64 candidateSeed(quint64 baseSeed, qint64 promptId, int slot, int attempt);

// How much work a run would do: prompts with fewer than `candidates` completions (at most `limit`, 0 = all)
// and the completions they are missing.
struct CandidateBacklog {
    qint64 prompts = 0;
    qint64 candidates = 0;
};
CandidateBacklog candidateBacklog(const ProjectStore &store, int candidates, int limit = 0);

// The label pairs planned between n distinct texts (indices in id order), see the header comment.
QVector<QPair<int, int>> candidatePairPlan(int n);

// Samples one completion of `prompt` with `seed`. Returns std::nullopt when cancelled mid-way (the
// partial text is not a sample of the model and is dropped). Throws on errors (the run stops).
// Samples one completion of `prompt` (its text, or its messages for conversational prompts).
using CandidateSampler = std::function<std::optional<QString>(const Prompt &prompt, quint64 seed)>;

struct CandidateProgress {
    qint64 done = 0; // candidates sampled so far (retries not counted)
    qint64 total = 0; // candidates the run expects to sample
    qint64 promptsDone = 0;
    qint64 promptsTotal = 0;
    qint64 promptId = 0; // the prompt being worked on
};

struct CandidateSummary {
    int prompts = 0; // prompts whose candidates were written
    int generated = 0; // completions stored
    int pairs = 0; // label pairs queued
    int retries = 0; // samples dropped because they repeated a text of the prompt or were empty
    int duplicates = 0; // completions kept although they repeat a text (after maxAttempts)
    int skipped = 0; // prompts left without candidates: every try of one candidate came back empty
    QStringList notes; // one line per prompt with something worth knowing (kept duplicates, skipped prompts)
    bool cancelled = false;
    double seconds = 0;
};

// Generates the missing candidates of every prompt that needs some (see the header comment). Provenance
// of each completion: source "generated", canonicalModelPath(modelPath), options.sampling.toJson() and
// the candidate's seed. `cancel` is polled between samples (the sampler polls it per token);
// `progress` is called after every sample, on this thread. Throws ProjectError for invalid options and
// whatever the sampler throws; the prompts finished before stay written.
CandidateSummary generateCandidates(ProjectStore &store, const QString &modelPath, const CandidateOptions &options,
    const CandidateSampler &sample, const std::atomic<bool> *cancel = nullptr,
    const std::function<void(const CandidateProgress &)> &progress = {});

} // namespace dpo
