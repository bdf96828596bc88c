// dpo-cli eval: statistics of blind evaluations.
//   eval ratings --battles FILE.jsonl [--baseline NAME] [--bootstrap 1000] [--seed S]
// Each line of FILE is {"model_a":NAME,"model_b":NAME,"winner":"model_a"|"model_b"|"tie"|"both_bad"}
// (blank lines are skipped). Prints
//   {"baseline","battles","bootstrap","seed","prior","bootstrap_regularized",
//    "models":[{"name","rating","ci_low","ci_high","rating_se","win_rate_vs_baseline","win_ci_low",
//               "win_ci_high","win_boot_low","win_boot_high","n","wins","losses","ties","both_bad",
//               "judgments_to_separate","battles"}]}
// sorted by rating (descending). Ratings: Bradley–Terry MLE on the Elo scale, baseline exactly 1000,
// bootstrap 95% percentile intervals (null with --bootstrap 0; the baseline's is [1000, 1000]).
// Win rates are against the baseline only, from the battles between the two (ties and both_bad
// count 1/2, both_bad is also counted apart), with Wilson 95% intervals; n is the number of those
// battles. The baseline's own row has win rate and win intervals null and n = 0 (it never plays
// itself); so has a model that never met the baseline. judgments_to_separate: how many more
// judgments at the observed rate would make the Wilson interval exclude 0.5 (null: never).
// "prior" is 0 when the plain maximum-likelihood fit exists; otherwise the weight of the virtual
// ties per pair that keep undefeated or disconnected models finite (see engine/evaluation/statistics.h).
#include "commands.h"

#include "engine/error.h"
#include "engine/io/json_limits.h"
#include "engine/evaluation/statistics.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace {

struct RatingsArgs {
    std::string battles;
    std::string baseline;
    std::string bootstrap = "1000";
    std::string seed = "0";
};

// CLI11's own conversion errors print two lines; parsing here keeps every failure one dpo::Error.
long long parseInteger(const std::string &option, const std::string &text)
{
    size_t used = 0;
    long long v = 0;
    try {
        v = std::stoll(text, &used);
    } catch (const std::exception &) {
        used = 0;
    }
    if (used == 0 || used != text.size())
        throw dpo::Error(option + ": not an integer: \"" + text + "\"");
    return v;
}

std::string oneLine(std::string s)
{
    std::replace(s.begin(), s.end(), '\n', ' ');
    std::replace(s.begin(), s.end(), '\r', ' ');
    return s;
}

struct BattleFile {
    std::vector<std::string> names; // in order of first appearance
    std::vector<dpo::IndexedBattle> battles;
};

std::string requireName(const nlohmann::json &row, const char *field, const std::string &where)
{
    const auto it = row.find(field);
    if (it == row.end())
        throw dpo::Error(where + "missing field \"" + field + "\"");
    if (!it->is_string() || it->get<std::string>().empty())
        throw dpo::Error(where + "field \"" + field + "\" must be a non-empty string");
    return it->get<std::string>();
}

BattleFile readBattles(const std::string &path)
{
    std::ifstream in(path);
    if (!in)
        throw dpo::Error("cannot open battles file " + path);
    BattleFile file;
    std::map<std::string, int> index;
    auto indexOf = [&](const std::string &name) {
        auto [it, inserted] = index.emplace(name, static_cast<int>(file.names.size()));
        if (inserted)
            file.names.push_back(name);
        return it->second;
    };
    std::string line;
    long long lineNo = 0;
    while (std::getline(in, line)) {
        ++lineNo;
        if (line.find_first_not_of(" \t\r") == std::string::npos)
            continue;
        const std::string where = path + ":" + std::to_string(lineNo) + ": ";
        dpo::checkJsonNesting(line, where + "row"); // before anything can recurse
        nlohmann::json row;
        try {
            row = nlohmann::json::parse(line);
        } catch (const nlohmann::json::parse_error &e) {
            // nlohmann's message starts "[json.exception...] parse error at line 1, column N: "; the
            // line there is the JSON text's own, which would contradict ours, so keep only the reason.
            std::string reason = e.what();
            const size_t colon = reason.find(": ");
            if (colon != std::string::npos)
                reason = reason.substr(colon + 2);
            throw dpo::Error(where + "invalid JSON at column " + std::to_string(e.byte) + ": " + oneLine(reason));
        } catch (const nlohmann::json::exception &e) {
            throw dpo::Error(where + "invalid JSON: " + oneLine(e.what()));
        }
        if (!row.is_object())
            throw dpo::Error(where + "expected a JSON object");
        const std::string a = requireName(row, "model_a", where);
        const std::string b = requireName(row, "model_b", where);
        const auto w = row.find("winner");
        if (w == row.end())
            throw dpo::Error(where + "missing field \"winner\"");
        if (!w->is_string())
            throw dpo::Error(where + "field \"winner\" must be a string");
        if (a == b)
            throw dpo::Error(where + "model_a and model_b are the same model \"" + oneLine(a) + "\"");
        dpo::IndexedBattle battle;
        try {
            battle.outcome = dpo::parseBattleOutcome(w->get<std::string>());
        } catch (const dpo::Error &e) {
            throw dpo::Error(where + oneLine(e.what()));
        }
        battle.a = indexOf(a);
        battle.b = indexOf(b);
        file.battles.push_back(battle);
    }
    if (in.bad())
        throw dpo::Error("cannot read battles file " + path);
    if (file.battles.empty())
        throw dpo::Error(path + ": no battles");
    return file;
}

nlohmann::json numberOrNull(double v)
{
    return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}

void runRatings(const RatingsArgs &args)
{
    if (args.battles.empty())
        throw dpo::Error("eval ratings: --battles FILE.jsonl is required");
    const long long bootstrap = parseInteger("--bootstrap", args.bootstrap);
    if (bootstrap < 0 || bootstrap > 1000000)
        throw dpo::Error("--bootstrap must be between 0 and 1000000 (got " + args.bootstrap + ")");
    if (args.seed.empty() || args.seed[0] == '-')
        throw dpo::Error("--seed must be a non-negative integer (got \"" + args.seed + "\")");
    std::uint64_t seed = 0;
    {
        size_t used = 0;
        try {
            seed = std::stoull(args.seed, &used);
        } catch (const std::exception &) {
            used = 0;
        }
        if (used == 0 || used != args.seed.size())
            throw dpo::Error("--seed must be a non-negative integer (got \"" + args.seed + "\")");
    }

    const BattleFile file = readBattles(args.battles);
    int baseline = 0;
    if (!args.baseline.empty()) {
        const auto it = std::find(file.names.begin(), file.names.end(), args.baseline);
        if (it == file.names.end())
            throw dpo::Error(
                "--baseline \"" + oneLine(args.baseline) + "\": no battle in " + args.battles + " involves this model");
        baseline = static_cast<int>(it - file.names.begin());
    }

    dpo::RatingsOptions options;
    options.baseline = baseline;
    options.bootstrap = static_cast<int>(bootstrap);
    options.seed = seed;
    const dpo::RatingsReport report = dpo::computeRatings(static_cast<int>(file.names.size()), file.battles, options);

    std::vector<dpo::ModelRating> rows = report.models;
    std::stable_sort(rows.begin(), rows.end(), [&](const dpo::ModelRating &x, const dpo::ModelRating &y) {
        if (x.rating != y.rating)
            return x.rating > y.rating;
        return file.names[size_t(x.index)] < file.names[size_t(y.index)];
    });

    nlohmann::json models = nlohmann::json::array();
    for (const dpo::ModelRating &r : rows) {
        const bool isBase = r.index == baseline;
        nlohmann::json m;
        m["name"] = file.names[size_t(r.index)];
        m["rating"] = isBase ? 1000.0 : r.rating;
        m["ci_low"] = numberOrNull(r.ratingLow);
        m["ci_high"] = numberOrNull(r.ratingHigh);
        m["rating_se"] = numberOrNull(r.standardError);
        m["win_rate_vs_baseline"] = numberOrNull(r.winRate);
        m["win_ci_low"] = numberOrNull(r.wilson.low);
        m["win_ci_high"] = numberOrNull(r.wilson.high);
        m["win_boot_low"] = numberOrNull(r.winBootstrap.low);
        m["win_boot_high"] = numberOrNull(r.winBootstrap.high);
        m["n"] = r.n;
        m["wins"] = r.wins;
        m["losses"] = r.losses;
        m["ties"] = r.ties;
        m["both_bad"] = r.bothBad;
        m["judgments_to_separate"]
            = r.judgmentsToSeparate >= 0 ? nlohmann::json(r.judgmentsToSeparate) : nlohmann::json(nullptr);
        m["battles"] = r.battles;
        models.push_back(std::move(m));
    }
    nlohmann::json out;
    out["baseline"] = file.names[size_t(baseline)];
    out["battles"] = file.battles.size();
    out["bootstrap"] = options.bootstrap;
    out["seed"] = seed;
    out["prior"] = report.prior;
    out["bootstrap_regularized"] = report.bootstrapRegularized;
    out["models"] = std::move(models);
    dpocli::printJson(out);
}

dpocli::CommandRegistrar regEval([](CLI::App &app) {
    CLI::App *eval = app.add_subcommand("eval", "Statistics of blind evaluations");
    eval->require_subcommand(1);
    auto args = std::make_shared<RatingsArgs>();
    CLI::App *ratings = eval->add_subcommand(
        "ratings", "Bradley-Terry ratings (Elo scale) and win rates against a baseline from a battles JSONL file");
    ratings->add_option("--battles", args->battles,
        "JSONL file, one {\"model_a\",\"model_b\",\"winner\"} per line "
        "(winner: model_a, model_b, tie, both_bad)");
    ratings->add_option("--baseline", args->baseline, "Model rated 1000 (default: the first model in the file)");
    ratings->add_option("--bootstrap", args->bootstrap, "Bootstrap resamples for the intervals (0 = none)")
        ->capture_default_str();
    ratings->add_option("--seed", args->seed, "Seed of the bootstrap (std::mt19937_64)")->capture_default_str();
    ratings->callback([args] { runRatings(*args); });
});

} // namespace
