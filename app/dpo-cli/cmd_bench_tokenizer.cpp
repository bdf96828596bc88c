// dpo-cli bench-tokenizer --model DIR [--model DIR ...] [--mb 4] [--passes 2] [--chunk 4096]
// Encode throughput of each model's tokenizer (byte-level BPE or sentencepiece) on a few MB of
// deterministic mixed text (English words, whitespace runs, digits, accents, CJK, emoji), encoded
// in chunks the size of a preference row on one thread. Prints one JSON document:
// {"bytes": N, "chunks": C, "results": [{"model", "kind", "tokens", "passes": [{"seconds", "mb_per_s",
//  "cpu_seconds", "mb_per_cpu_s"}], "mb_per_s_first", "mb_per_s_best"}]}. The first pass is cold (empty
// BPE word cache). mb_per_cpu_s divides by the thread's CPU time, which a busy machine distorts less.
#include "commands.h"

#include "engine/error.h"
#include "engine/tokenizers/tokenizer.h"
#include "engine/tokenizers/utf8.h"

#include <chrono>
#include <ctime>
#include <random>

namespace {

struct TokenizerBenchOptions {
    std::vector<std::string> models;
    double mb = 4.0;
    int passes = 2;
    int chunk = 4096;
};

// Mostly English prose with the other kinds mixed in, from a fixed seed: the same bytes every run.
std::string mixedText(size_t bytes)
{
    static const char *const words[] = { "the", "of", "and", "to", "a", "in", "is", "that", "for", "it", "as", "was",
        "with", "be", "by", "on", "not", "he", "I", "this", "are", "or", "his", "from", "at", "which", "but", "have",
        "an", "had", "they", "you", "were", "their", "one", "all", "we", "can", "her", "has", "there", "been", "if",
        "more", "when", "will", "would", "who", "so", "no", "model", "preference", "chosen", "rejected", "prompt",
        "answer", "training", "reward", "language", "question", "polite", "harbor", "Ada", "Kofi", "don't", "it's",
        "we'll", "They're", "HELLO", "Optimization", "tokenizer" };
    static const char *const accented[] = { "café", "naïve", "résumé", "über", "mañana", "façade", "Ærø", "Dvořák",
        "Łódź", "São Paulo", "crème brûlée" };
    static const char *const cjk[] = { "東京", "日本語", "中文", "你好世界", "한국어", "こんにちは", "カタカナ" };
    static const char *const emoji[] = { "🙂", "👍", "🚀", "❤️", "👨‍👩‍👧", "🎉", "☕", "👍🏽" };
    std::mt19937 rng(20240611);
    auto pick = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
    std::string s;
    s.reserve(bytes + 64);
    while (s.size() < bytes) {
        const int r = std::uniform_int_distribution<int>(0, 99)(rng);
        if (r < 70) {
            s += words[pick(sizeof(words) / sizeof(words[0]))];
        } else if (r < 76) {
            s += accented[pick(sizeof(accented) / sizeof(accented[0]))];
        } else if (r < 81) {
            s += cjk[pick(sizeof(cjk) / sizeof(cjk[0]))];
        } else if (r < 84) {
            s += emoji[pick(sizeof(emoji) / sizeof(emoji[0]))];
        } else if (r < 90) {
            s += std::to_string(std::uniform_int_distribution<int>(0, 99999)(rng));
        } else if (r < 95) {
            s += ",.;:!?()\"-"[pick(10)];
        } else if (r < 98) {
            s += "\n";
        } else {
            for (int i = 0; i < 4; ++i) // a random CJK ideograph or rare letter
                dpo::appendUtf8(s, std::uniform_int_distribution<uint32_t>(0x4E00, 0x9FFF)(rng));
        }
        // Whitespace between tokens: mostly one space, sometimes runs and tabs.
        const int w = std::uniform_int_distribution<int>(0, 99)(rng);
        s += w < 90 ? " " : w < 95 ? "  " : w < 98 ? "\t" : "    ";
    }
    return s;
}

// CPU time of this thread: on a busy machine wall time measures the neighbours as much as the tokenizer.
double threadCpuSeconds()
{
    timespec ts {};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

// Splits at a character boundary at or after every `chunk` bytes.
std::vector<std::string> chunksOf(const std::string &text, size_t chunk)
{
    std::vector<std::string> out;
    size_t i = 0;
    while (i < text.size()) {
        size_t end = std::min(text.size(), i + chunk);
        while (end < text.size() && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80)
            ++end;
        out.push_back(text.substr(i, end - i));
        i = end;
    }
    return out;
}

dpocli::CommandRegistrar regBenchTokenizer([](CLI::App &app) {
    auto opts = std::make_shared<TokenizerBenchOptions>();
    CLI::App *cmd = app.add_subcommand("bench-tokenizer", "Measure tokenizer encode throughput (MB/s) on mixed text");
    cmd->add_option("--model", opts->models, "Model folder whose tokenizer to measure (repeatable)")->required();
    cmd->add_option("--mb", opts->mb, "Megabytes of text to encode per pass")->check(CLI::Range(0.01, 1024.0));
    cmd->add_option("--passes", opts->passes, "Passes over the text (the first is cold)")->check(CLI::Range(1, 100));
    cmd->add_option("--chunk", opts->chunk, "Bytes per encode call")->check(CLI::Range(16, 1 << 30));
    cmd->callback([opts] {
        const std::string text = mixedText(size_t(opts->mb * 1024 * 1024));
        const std::vector<std::string> chunks = chunksOf(text, size_t(opts->chunk));
        nlohmann::json out;
        out["bytes"] = text.size();
        out["chunks"] = chunks.size();
        out["results"] = nlohmann::json::array();
        for (const std::string &dir : opts->models) {
            auto tok = dpo::loadTokenizer(dir);
            nlohmann::json r;
            r["model"] = dir;
            r["kind"] = tok->kind();
            r["passes"] = nlohmann::json::array();
            double best = 0, first = 0;
            size_t tokens = 0;
            for (int p = 0; p < opts->passes; ++p) {
                tokens = 0;
                const auto t0 = std::chrono::steady_clock::now();
                const double c0 = threadCpuSeconds();
                for (const std::string &c : chunks)
                    tokens += tok->encode(c).size();
                const double cpu = threadCpuSeconds() - c0;
                const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                const double mb = double(text.size()) / (1024.0 * 1024.0);
                const double mbps = mb / sec;
                r["passes"].push_back(
                    { { "seconds", sec }, { "mb_per_s", mbps }, { "cpu_seconds", cpu }, { "mb_per_cpu_s", mb / cpu } });
                if (p == 0)
                    first = mbps;
                best = std::max(best, mbps);
            }
            r["tokens"] = tokens;
            r["bytes_per_token"] = tokens ? double(text.size()) / double(tokens) : 0.0;
            r["mb_per_s_first"] = first;
            r["mb_per_s_best"] = best;
            out["results"].push_back(r);
        }
        dpocli::printJson(out);
    });
});

} // namespace
