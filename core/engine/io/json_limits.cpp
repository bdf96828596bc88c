#include "engine/io/json_limits.h"

#include "engine/error.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include <sys/stat.h>

namespace dpo {

using nlohmann::json;

JsonLimits largeJsonFileLimits()
{
    JsonLimits l;
    l.maxFileBytes = 1ull << 30;
    return l;
}

void checkJsonNesting(std::string_view text, const std::string &source, size_t maxDepth)
{
    size_t depth = 0;
    bool inString = false;
    const char *p = text.data();
    const size_t n = text.size();
    for (size_t i = 0; i < n; ++i) {
        const char c = p[i];
        if (inString) {
            if (c == '\\')
                ++i; // the escaped character cannot end the string
            else if (c == '"')
                inString = false;
            continue;
        }
        switch (c) {
        case '"':
            inString = true;
            break;
        case '[':
        case '{':
            if (++depth > maxDepth)
                throw Error(source + ": JSON nested deeper than " + std::to_string(maxDepth) + " levels (at byte "
                    + std::to_string(i) + ")");
            break;
        case ']':
        case '}':
            if (depth > 0)
                --depth;
            break;
        default:
            break;
        }
    }
}

std::string jsonErrorMessage(const std::exception &e)
{
    std::string msg = e.what();
    if (msg.rfind("[json.exception.", 0) == 0) {
        const auto close = msg.find("] ");
        if (close != std::string::npos)
            msg = msg.substr(close + 2);
    }
    return msg;
}

namespace {

template <typename Json>
Json doParse(std::string_view text, const std::string &source, const JsonLimits &limits,
    const typename Json::parser_callback_t *callback)
{
    checkJsonNesting(text, source, limits.maxDepth);
    try {
        if (callback)
            return Json::parse(text.begin(), text.end(), *callback);
        return Json::parse(text.begin(), text.end());
    } catch (const json::exception &e) {
        throw Error(source + ": invalid JSON: " + jsonErrorMessage(e));
    }
}

} // namespace

json parseJsonLimited(std::string_view text, const std::string &source, const JsonLimits &limits)
{
    return doParse<json>(text, source, limits, nullptr);
}

nlohmann::ordered_json parseOrderedJsonLimited(std::string_view text, const std::string &source, const JsonLimits &limits)
{
    return doParse<nlohmann::ordered_json>(text, source, limits, nullptr);
}

json parseJsonLimited(std::string_view text, const std::string &source, const JsonLimits &limits,
    const json::parser_callback_t &callback)
{
    return doParse<json>(text, source, limits, &callback);
}

// The bytes of a JSON file, refusing folders and files above limits.maxFileBytes.
static std::string readJsonText(const std::string &path, const JsonLimits &limits)
{
    struct stat st { };
    if (::stat(path.c_str(), &st) != 0)
        throw Error(path + ": cannot read: " + std::strerror(errno));
    if (S_ISDIR(st.st_mode))
        throw Error(path + ": is a folder, not a JSON file");
    if (limits.maxFileBytes > 0 && S_ISREG(st.st_mode) && uint64_t(st.st_size) > limits.maxFileBytes)
        throw Error(path + ": file of " + std::to_string(uint64_t(st.st_size)) + " bytes exceeds the limit of "
            + std::to_string(limits.maxFileBytes) + " bytes for this kind of JSON file");
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw Error(path + ": cannot read");
    std::string text;
    if (S_ISREG(st.st_mode))
        text.reserve(size_t(st.st_size));
    char buf[1 << 16];
    while (in.read(buf, sizeof buf) || in.gcount() > 0) {
        text.append(buf, size_t(in.gcount()));
        if (limits.maxFileBytes > 0 && text.size() > limits.maxFileBytes)
            throw Error(path + ": more than " + std::to_string(limits.maxFileBytes)
                + " bytes, the limit for this kind of JSON file");
    }
    if (in.bad())
        throw Error(path + ": read error");
    return text;
}

json readJsonFileLimited(const std::string &path, const JsonLimits &limits)
{
    return parseJsonLimited(readJsonText(path, limits), path, limits);
}

nlohmann::ordered_json readOrderedJsonFileLimited(const std::string &path, const JsonLimits &limits)
{
    return parseOrderedJsonLimited(readJsonText(path, limits), path, limits);
}

bool readLineLimited(std::istream &in, std::string &out, uint64_t maxBytes, bool *tooLong)
{
    out.clear();
    *tooLong = false;
    bool any = false;
    char buf[1 << 16];
    for (;;) {
        in.getline(buf, sizeof buf); // istream::getline scans its buffer in bulk, unlike get() per byte
        const auto got = size_t(in.gcount());
        const bool eof = in.eof();
        const bool full = in.fail() && !eof; // the buffer filled before the end of the line
        if (in.bad())
            return any;
        // Without eof or a full buffer the delimiter was extracted (and counted in gcount).
        const size_t stored = (eof || full) ? got : got - 1;
        any = any || got > 0;
        if (out.size() + stored > maxBytes) {
            out.append(buf, size_t(maxBytes - out.size()));
            *tooLong = true;
            in.clear(in.rdstate() & ~std::ios::failbit);
            return true;
        }
        out.append(buf, stored);
        if (full) {
            in.clear(in.rdstate() & ~std::ios::failbit);
            continue;
        }
        return any;
    }
}

namespace {

// A string as a JSON string literal, cut to about maxChars bytes of content.
std::string quotedPrefix(const std::string &s, size_t maxChars)
{
    const bool cut = s.size() > maxChars;
    return json(cut ? s.substr(0, maxChars) : s).dump(-1, ' ', false, json::error_handler_t::replace);
}

} // namespace

std::string jsonSnippet(const json &value, size_t maxChars)
{
    std::string out;
    struct Frame {
        const json *v;
        json::const_iterator it;
        bool first;
    };
    std::vector<Frame> stack;
    const auto open = [&](const json &x) {
        if (x.is_object()) {
            out += '{';
            stack.push_back({ &x, x.cbegin(), true });
        } else if (x.is_array()) {
            out += '[';
            stack.push_back({ &x, x.cbegin(), true });
        } else if (x.is_string()) {
            out += quotedPrefix(x.get_ref<const std::string &>(), maxChars);
        } else {
            out += x.dump(-1, ' ', false, json::error_handler_t::replace); // a scalar: no recursion
        }
    };
    try {
        open(value);
        while (!stack.empty() && out.size() <= maxChars) {
            Frame &f = stack.back();
            if (f.it == f.v->cend()) {
                out += f.v->is_object() ? '}' : ']';
                stack.pop_back();
                continue;
            }
            if (!f.first)
                out += ',';
            f.first = false;
            const json &child = *f.it;
            if (f.v->is_object())
                out += quotedPrefix(f.it.key(), maxChars) + ':';
            ++f.it; // before open(): pushing may move `f`
            open(child);
        }
    } catch (const std::exception &) {
        out += "?";
    }
    if (!stack.empty() || out.size() > maxChars) {
        size_t cut = std::min(out.size(), maxChars);
        while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80)
            --cut; // not inside a UTF-8 sequence
        out.resize(cut);
        out += "...";
    }
    return out;
}

} // namespace dpo
