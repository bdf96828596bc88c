// Train page helpers that must not run on the GUI thread (they read models and datasets), callable from
// any thread and free of widgets:
//   inspectModel      what a Hugging Face directory holds (architecture, parameter count from the
//                     safetensors headers, stored dtype, vocabulary, tokenizer kind), without loading
//                     any weights; problems come back as a message, never as an exception.
//   summarizeDataset  the sanity summary shown before a run: pairs, lengths (tokens with the model's
//                     tokenizer, else characters), length skew between chosen and rejected, rows over
//                     max_length.
//   processRssBytes  memory read-out for the progress line (CUDA: dpo::cudaMemoryInUse).
// Not here: training (TrainingWorker), widgets (TrainPage), the eval split (core/project/training_export.h).
#pragma once

#include <QString>

struct ModelInfo {
    bool ok = false;
    QString error; // set when !ok
    QString dir;
    QString architecture; // e.g. LlamaForCausalLM
    QString modelType;    // llama, mistral, qwen2, gpt2
    qint64 parameters = 0;
    QString storedDtype; // dtype of the stored weights ("BF16", "F32", ...)
    QString configDtype; // config.json's torch_dtype
    qint64 vocabSize = 0;      // model embeddings
    qint64 tokenizerVocab = 0; // tokenizer ids (added tokens included)
    QString tokenizerKind;     // "sentencepiece" | "byte-level BPE"
    qint64 layers = 0, hidden = 0, heads = 0, kvHeads = 0, maxPositions = 0;
    qint64 intermediate = 0, headDim = 0;

    // One line for the page: "LlamaForCausalLM · 1.10 B parameters · BF16 · vocab 32,000 · sentencepiece".
    QString summary() const;
};

ModelInfo inspectModel(const QString &dir);

struct DatasetSummary {
    bool ok = false;
    QString error;
    qint64 pairs = 0;     // training rows (after the split, when there is one)
    qint64 evalPairs = 0; // eval rows (file or split)
    bool inTokens = false; // lengths counted with the model's tokenizer (else characters)
    double meanPrompt = 0, meanChosen = 0, meanRejected = 0;
    double chosenLongerShare = 0; // pairs whose chosen completion is the longer one
    qint64 skewed = 0;            // pairs whose longer completion is > 3x the shorter
    qint64 overMaxLength = 0;     // pairs with a prompt+completion sequence over max_length (truncated)
    qint64 maxLength = 0;
    qint64 longest = 0; // longest prompt+completion sequence
    qint64 conversational = 0;  // rows rendered with the chat template
    QString chatTemplate;       // where that template came from
    // Found while tokenizing as TRL 1.x does (engine/data/preference_data.h, TokenizationReport):
    QString tokenizationNotes;  // rows whose prompt is not a token prefix; rows keep_start drops
    qint64 dropped = 0;         // rows training drops (prompt alone fills max_length, keep_start)

    QString text() const; // a few lines for the page
};

struct DatasetCheckOptions {
    qint64 maxLength = 0;
    QString truncationMode = QStringLiteral("keep_start");
    QString chatTemplate; // Jinja file for conversational rows; empty = the model's own
    double evalRatio = 0; // > 0 (and no eval file): the counts are shown as the split will make them
};

// path: training JSONL; evalPath: optional eval JSONL; tokenizerDir: the model (empty: characters).
// Conversational rows need the model's chat template (or options.chatTemplate) to be counted in tokens;
// without one, and with a model, the summary is the engine's error naming the model and --chat-template.
DatasetSummary summarizeDataset(const QString &path, const QString &evalPath, const QString &tokenizerDir,
                                const DatasetCheckOptions &options);

// CUDA devices libtorch sees (0 on CPU-only builds). The first call initialises CUDA: call it off the GUI
// thread.
int cudaDeviceCount();

// Resident set size of this process (Linux /proc; 0 elsewhere).
qint64 processRssBytes();
