// Chat templates as transformers applies them (see chat_template.h).
#include "engine/chat/chat_template.h"

#include "engine/chat/jinja_pystr.h"
#include "engine/error.h"
#include "engine/io/json_limits.h"

#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace dpo {

namespace fs = std::filesystem;

namespace {

const char *const kContinueTag = "CONTINUE_FINAL_MESSAGE_TAG";

std::string readFile(const std::string &path)
{
    std::ifstream f(path, std::ios::binary);
    if (!f)
        throw Error("cannot read " + path);
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

nlohmann::ordered_json readTemplateJsonFile(const std::string &path)
{
    const std::string text = readFile(path);
    checkJsonNesting(text, path); // before anything can recurse (engine/io/json_limits.h)
    try {
        return nlohmann::ordered_json::parse(text);
    } catch (const nlohmann::json::exception &e) {
        throw Error(path + ": invalid JSON: " + e.what());
    }
}

// ------------------------------------------------------------------------------------------------
// strftime

struct CivilTime {
    int year = 1970, month = 1, day = 1, hour = 0, minute = 0, second = 0, micro = 0;
};

int64_t daysFromCivil(int y, int m, int d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const int64_t yoe = y - era * 400;
    const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

bool isLeap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

CivilTime parseIso(const std::string &iso)
{
    CivilTime t;
    if (iso.empty()) {
        std::time_t now = std::time(nullptr);
        std::tm tm{};
        localtime_r(&now, &tm);
        t.year = tm.tm_year + 1900;
        t.month = tm.tm_mon + 1;
        t.day = tm.tm_mday;
        t.hour = tm.tm_hour;
        t.minute = tm.tm_min;
        t.second = tm.tm_sec;
        return t;
    }
    int n = 0;
    char sep = 0;
    double secs = 0;
    const int got = std::sscanf(iso.c_str(), "%d-%d-%d%c%d:%d:%lf%n", &t.year, &t.month, &t.day, &sep, &t.hour,
                                &t.minute, &secs, &n);
    if (got == 3) {
        secs = 0;
    } else if (got == 6) {
        secs = 0;
    } else if (got != 7 || (sep != 'T' && sep != ' ')) {
        throw Error("invalid time '" + iso + "': expected YYYY-MM-DDTHH:MM:SS");
    }
    if (t.month < 1 || t.month > 12 || t.day < 1 || t.day > 31 || t.hour < 0 || t.hour > 23 || t.minute < 0 ||
        t.minute > 59 || secs < 0 || secs >= 61)
        throw Error("invalid time '" + iso + "'");
    t.second = int(secs);
    t.micro = int((secs - t.second) * 1e6 + 0.5);
    return t;
}

} // namespace

std::string pyStrftime(const std::string &format, const std::string &isoTime)
{
    static const char *const days[] = { "Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday" };
    static const char *const months[] = { "January", "February", "March",     "April",   "May",      "June",
                                          "July",    "August",   "September", "October", "November", "December" };
    const CivilTime t = parseIso(isoTime);
    const int64_t dn = daysFromCivil(t.year, t.month, t.day);
    const int wday = int(((dn % 7) + 7 + 4) % 7); // 1970-01-01 was a Thursday
    const int yday = int(dn - daysFromCivil(t.year, 1, 1));
    // ISO week: week = (ordinal - weekday + 10) / 7, moved into the neighbouring year when out of range.
    const int isoWday = wday == 0 ? 7 : wday;
    auto weeksIn = [](int y) {
        const int jan1 = int(((daysFromCivil(y, 1, 1) % 7) + 7 + 4) % 7); // 0 = Sunday
        return (jan1 == 4 || (isLeap(y) && jan1 == 3)) ? 53 : 52;
    };
    int isoYear = t.year;
    int isoWeek = (yday + 1 - isoWday + 10) / 7;
    if (isoWeek < 1) {
        --isoYear;
        isoWeek = weeksIn(isoYear);
    } else if (isoWeek > weeksIn(t.year)) {
        ++isoYear;
        isoWeek = 1;
    }
    std::string out;
    char buf[64];
    for (size_t i = 0; i < format.size(); ++i) {
        if (format[i] != '%' || i + 1 >= format.size()) {
            out += format[i];
            continue;
        }
        char c = format[++i];
        char flag = 0;
        if ((c == '-' || c == '_' || c == '0') && i + 1 < format.size()) {
            flag = c;
            c = format[++i];
        }
        auto num = [&](int v, int width) {
            if (flag == '-')
                std::snprintf(buf, sizeof buf, "%d", v);
            else if (flag == '_')
                std::snprintf(buf, sizeof buf, "%*d", width, v);
            else
                std::snprintf(buf, sizeof buf, "%0*d", width, v);
            out += buf;
        };
        const int hour12 = t.hour % 12 == 0 ? 12 : t.hour % 12;
        switch (c) {
        case 'a': out += std::string(days[wday]).substr(0, 3); break;
        case 'A': out += days[wday]; break;
        case 'b':
        case 'h': out += std::string(months[t.month - 1]).substr(0, 3); break;
        case 'B': out += months[t.month - 1]; break;
        case 'c':
            std::snprintf(buf, sizeof buf, "%.3s %.3s %2d %02d:%02d:%02d %d", days[wday], months[t.month - 1], t.day,
                          t.hour, t.minute, t.second, t.year);
            out += buf;
            break;
        case 'C': num(t.year / 100, 2); break;
        case 'd': num(t.day, 2); break;
        case 'D':
            std::snprintf(buf, sizeof buf, "%02d/%02d/%02d", t.month, t.day, t.year % 100);
            out += buf;
            break;
        case 'e':
            if (flag == '-')
                num(t.day, 2);
            else {
                std::snprintf(buf, sizeof buf, "%2d", t.day);
                out += buf;
            }
            break;
        case 'f': std::snprintf(buf, sizeof buf, "%06d", t.micro); out += buf; break;
        case 'F':
            std::snprintf(buf, sizeof buf, "%d-%02d-%02d", t.year, t.month, t.day);
            out += buf;
            break;
        case 'g': num(isoYear % 100, 2); break;
        case 'G': num(isoYear, 1); break;
        case 'H': num(t.hour, 2); break;
        case 'I': num(hour12, 2); break;
        case 'j': num(yday + 1, 3); break;
        case 'k': std::snprintf(buf, sizeof buf, "%2d", t.hour); out += buf; break;
        case 'l': std::snprintf(buf, sizeof buf, "%2d", hour12); out += buf; break;
        case 'm': num(t.month, 2); break;
        case 'M': num(t.minute, 2); break;
        case 'n': out += '\n'; break;
        case 'p': out += t.hour < 12 ? "AM" : "PM"; break;
        case 'P': out += t.hour < 12 ? "am" : "pm"; break;
        case 'r':
            std::snprintf(buf, sizeof buf, "%02d:%02d:%02d %s", hour12, t.minute, t.second, t.hour < 12 ? "AM" : "PM");
            out += buf;
            break;
        case 'R': std::snprintf(buf, sizeof buf, "%02d:%02d", t.hour, t.minute); out += buf; break;
        case 'S': num(t.second, 2); break;
        case 't': out += '\t'; break;
        case 'T':
        case 'X':
            std::snprintf(buf, sizeof buf, "%02d:%02d:%02d", t.hour, t.minute, t.second);
            out += buf;
            break;
        case 'u': num(isoWday, 1); break;
        case 'U': num((yday + 7 - wday) / 7, 2); break;
        case 'V': num(isoWeek, 2); break;
        case 'w': num(wday, 1); break;
        case 'W': num((yday + 7 - (wday + 6) % 7) / 7, 2); break;
        case 'x':
            std::snprintf(buf, sizeof buf, "%02d/%02d/%02d", t.month, t.day, t.year % 100);
            out += buf;
            break;
        case 'y': num(t.year % 100, 2); break;
        case 'Y': num(t.year, 1); break;
        case 'z':
        case 'Z': break; // naive datetime: empty
        case '%': out += '%'; break;
        default:
            out += '%';
            if (flag)
                out += flag;
            out += c;
        }
    }
    return out;
}

// ------------------------------------------------------------------------------------------------

ChatTemplate ChatTemplate::fromString(const std::string &source)
{
    if (!jinja::isValidUtf8Text(source))
        throw Error("chat template is not valid UTF-8");
    ChatTemplate t;
    t.m_source = source;
    t.m_tpl = jinja::parseTemplate(source);
    return t;
}

ChatTemplate ChatTemplate::fromFile(const std::string &path)
{
    try {
        return fromString(readFile(path));
    } catch (const Error &e) {
        throw Error(path + ": " + e.what());
    }
}

std::string ChatTemplate::renderContext(const nlohmann::ordered_json &context, const ChatRenderOptions &opts) const
{
    if (!m_tpl)
        throw Error("no chat template");
    if (!context.is_object())
        throw Error("chat template context must be a JSON object");
    nlohmann::ordered_json ctx = context;
    if (opts.continueFinalMessage) {
        auto &msgs = ctx["messages"];
        if (!msgs.is_array() || msgs.empty())
            throw Error("continue_final_message needs at least one message");
        auto &last = msgs.back();
        if (!last.is_object() || !last.contains("content"))
            throw Error("continue_final_message: the final message has no content");
        auto &content = last["content"];
        const std::string tag = std::string(kContinueTag) + " ";
        if (content.is_string()) {
            content = content.get<std::string>() + tag;
        } else if (content.is_array()) {
            bool done = false;
            for (auto it = content.rbegin(); it != content.rend(); ++it) {
                if (it->is_object() && it->contains("text") && (*it)["text"].is_string()) {
                    (*it)["text"] = (*it)["text"].get<std::string>() + tag;
                    done = true;
                    break;
                }
            }
            if (!done)
                throw Error("continue_final_message is set but the final message has no text to continue");
        } else {
            throw Error("continue_final_message: the final message's content is not text");
        }
    }
    jinja::Dict vars;
    try {
        for (auto it = ctx.begin(); it != ctx.end(); ++it)
            vars.set(jinja::Value(it.key()), jinja::fromJson(it.value()));
    } catch (const jinja::EvalError &e) {
        throw Error(std::string("chat template context: ") + e.what());
    }
    const std::string now = opts.now;
    if (!now.empty())
        parseIso(now); // validate up front
    jinja::Renderer renderer(m_tpl, opts.limits, [now](const std::string &fmt) { return pyStrftime(fmt, now); });
    std::string out = renderer.render(vars);
    if (opts.continueFinalMessage) {
        const size_t k = out.rfind(kContinueTag);
        if (k == std::string::npos)
            throw Error("continue_final_message is set but the final message does not appear in the rendered chat "
                        "(the template drops or rewrites it)");
        const bool exact = out.compare(k, std::strlen(kContinueTag) + 1, std::string(kContinueTag) + " ") == 0;
        out.resize(k);
        if (!exact)
            out = jinja::pyStrip(out, nullptr, false, true);
    }
    return out;
}

std::string ChatTemplate::apply(const ChatRequest &request, const ChatRenderOptions &opts) const
{
    if (opts.continueFinalMessage && request.addGenerationPrompt)
        throw Error("continue_final_message and add_generation_prompt are not compatible");
    nlohmann::ordered_json ctx = nlohmann::ordered_json::object();
    if (request.specialTokens.is_object())
        for (auto it = request.specialTokens.begin(); it != request.specialTokens.end(); ++it)
            ctx[it.key()] = it.value();
    if (request.extraKwargs.is_object())
        for (auto it = request.extraKwargs.begin(); it != request.extraKwargs.end(); ++it)
            ctx[it.key()] = it.value();
    ctx["messages"] = request.messages;
    ctx["tools"] = request.tools;
    ctx["documents"] = request.documents;
    ctx["add_generation_prompt"] = request.addGenerationPrompt;
    return renderContext(ctx, opts);
}

nlohmann::ordered_json loadSpecialTokens(const std::string &modelDir)
{
    nlohmann::ordered_json out = nlohmann::ordered_json::object();
    static const char *const keys[] = { "bos_token", "eos_token", "unk_token", "sep_token",
                                        "pad_token", "cls_token", "mask_token" };
    auto tokenText = [](const nlohmann::ordered_json &v) -> std::optional<std::string> {
        if (v.is_string())
            return v.get<std::string>();
        if (v.is_object() && v.contains("content") && v["content"].is_string())
            return v["content"].get<std::string>();
        return std::nullopt;
    };
    auto absorb = [&](const nlohmann::ordered_json &cfg) {
        if (!cfg.is_object())
            return;
        for (const char *k : keys) {
            if (out.contains(k) || !cfg.contains(k))
                continue;
            if (auto s = tokenText(cfg[k]))
                out[k] = *s;
        }
        if (!out.contains("additional_special_tokens") && cfg.contains("additional_special_tokens") &&
            cfg["additional_special_tokens"].is_array() && !cfg["additional_special_tokens"].empty()) {
            nlohmann::ordered_json list = nlohmann::ordered_json::array();
            for (const auto &t : cfg["additional_special_tokens"])
                if (auto s = tokenText(t))
                    list.push_back(*s);
            out["additional_special_tokens"] = list;
        }
    };
    const fs::path dir(modelDir);
    if (fs::exists(dir / "tokenizer_config.json"))
        absorb(readTemplateJsonFile((dir / "tokenizer_config.json").string()));
    if (fs::exists(dir / "special_tokens_map.json"))
        absorb(readTemplateJsonFile((dir / "special_tokens_map.json").string()));
    return out;
}

std::optional<ModelChatTemplate> loadModelChatTemplate(const std::string &modelDir, const std::string &name,
                                                       bool withTools)
{
    const fs::path dir(modelDir);
    std::string source, origin, toolUseSource;
    auto pickNamed = [&](const nlohmann::ordered_json &list, const std::string &file) {
        std::string want = name;
        std::map<std::string, std::string> byName;
        for (const auto &e : list) {
            if (!e.is_object() || !e.contains("name") || !e.contains("template") || !e["name"].is_string() ||
                !e["template"].is_string())
                throw Error(file + ": chat_template list entries need 'name' and 'template' strings");
            byName[e["name"].get<std::string>()] = e["template"].get<std::string>();
        }
        if (want.empty())
            want = (withTools && byName.count("tool_use")) ? "tool_use" : "default";
        auto it = byName.find(want);
        if (it == byName.end())
            throw Error(file + ": no chat template named '" + want + "'");
        source = it->second;
        origin = file + " (template '" + want + "')";
        if (name.empty() && want != "tool_use" && byName.count("tool_use"))
            toolUseSource = byName["tool_use"];
    };
    const fs::path jinjaFile = dir / "chat_template.jinja";
    const fs::path jsonFile = dir / "chat_template.json";
    const fs::path cfgFile = dir / "tokenizer_config.json";
    if (!name.empty() && name != "default" && fs::exists(dir / "additional_chat_templates" / (name + ".jinja"))) {
        source = readFile((dir / "additional_chat_templates" / (name + ".jinja")).string());
        origin = (dir / "additional_chat_templates" / (name + ".jinja")).string();
    } else if (fs::exists(jinjaFile)) {
        source = readFile(jinjaFile.string());
        origin = jinjaFile.string();
    } else if (fs::exists(jsonFile)) {
        const auto j = readTemplateJsonFile(jsonFile.string());
        if (j.contains("chat_template") && j["chat_template"].is_string()) {
            source = j["chat_template"].get<std::string>();
            origin = jsonFile.string();
        } else if (j.contains("chat_template") && j["chat_template"].is_array()) {
            pickNamed(j["chat_template"], jsonFile.string());
        }
    }
    if (origin.empty() && fs::exists(cfgFile)) {
        const auto j = readTemplateJsonFile(cfgFile.string());
        if (j.is_object() && j.contains("chat_template")) {
            const auto &ct = j["chat_template"];
            if (ct.is_string()) {
                source = ct.get<std::string>();
                origin = cfgFile.string();
            } else if (ct.is_array()) {
                pickNamed(ct, cfgFile.string());
            } else if (!ct.is_null()) {
                throw Error(cfgFile.string() + ": chat_template must be a string or a list of named templates");
            }
        }
    }
    if (origin.empty())
        return std::nullopt;
    ModelChatTemplate m;
    try {
        m.chatTemplate = ChatTemplate::fromString(source);
    } catch (const Error &e) {
        throw Error(origin + ": " + e.what());
    }
    if (!toolUseSource.empty()) {
        try {
            m.toolUseTemplate = ChatTemplate::fromString(toolUseSource);
        } catch (const Error &e) {
            throw Error(origin + " (template 'tool_use'): " + e.what());
        }
    }
    m.origin = origin;
    m.specialTokens = loadSpecialTokens(modelDir);
    return m;
}

std::optional<ModelChatTemplate> loadChatTemplateFor(const std::string &modelDir, const std::string &overrideFile)
{
    if (overrideFile.empty())
        return loadModelChatTemplate(modelDir);
    ModelChatTemplate m;
    m.chatTemplate = ChatTemplate::fromFile(overrideFile); // errors name the file
    m.origin = overrideFile;
    m.specialTokens = loadSpecialTokens(modelDir);
    return m;
}

} // namespace dpo
