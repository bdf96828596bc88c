// Jinja builtins for chat templates: jinja2 3.1's filters and tests (those that make sense without
// HTML autoescaping, randomness or a loader), transformers' tojson / raise_exception /
// strftime_now globals, range / namespace / dict / cycler / joiner, the safe Python methods of
// str, dict and list, and Python's `%` and str.format formatting (common conversions only).
#include "engine/chat/jinja_render.h"

#include "engine/chat/jinja_pystr.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <unordered_map>

namespace dpo::jinja {

namespace {

// ------------------------------------------------------------------------------------------------
// argument helpers

const Value *arg(CallArgs &a, size_t pos, const char *name)
{
    return a.get(pos, name);
}

bool argBool(CallArgs &a, size_t pos, const char *name, bool def)
{
    const Value *v = a.get(pos, name);
    return v ? v->truthy() : def;
}

int64_t argInt(CallArgs &a, size_t pos, const char *name, int64_t def)
{
    const Value *v = a.get(pos, name);
    if (!v || v->isNone())
        return def;
    if (v->isInt() || v->isBool())
        return v->asInt();
    if (v->isFloat())
        return int64_t(v->asDouble());
    if (v->isUndefined())
        throwUndefined(v->undefinedHint());
    throwType("'" + v->typeName() + "' object cannot be interpreted as an integer");
}

std::string argStr(CallArgs &a, size_t pos, const char *name, const std::string &def)
{
    const Value *v = a.get(pos, name);
    return v ? toStr(*v) : def;
}

void requireString(const Value &v, const char *what)
{
    if (v.isUndefined())
        throwUndefined(v.undefinedHint());
    if (!v.isString())
        throwType(std::string(what) + " must be str, not " + v.typeName());
}

Value strList(const std::vector<std::string> &parts)
{
    std::vector<Value> items;
    items.reserve(parts.size());
    for (const auto &p : parts)
        items.emplace_back(p);
    return Value::list(std::move(items));
}

int64_t pyLen(Renderer &r, const Value &v)
{
    switch (v.kind()) {
    case Value::Kind::Undefined: return 0;
    case Value::Kind::String: return int64_t(codePointLength(v.str()));
    case Value::Kind::List: return int64_t(v.items().size());
    case Value::Kind::Dict: return int64_t(v.dictData().size());
    default: break;
    }
    (void)r;
    throwType("object of type '" + v.typeName() + "' has no len()");
}

// Sort key used by sort/unique/min/max/dictsort: strings lower-cased unless case-sensitive.
Value sortKey(const Value &v, bool caseSensitive)
{
    if (!caseSensitive && v.isString())
        return Value(pyLower(v.str()));
    return v;
}

std::vector<std::string> splitAttributes(const Value *attr)
{
    std::vector<std::string> out;
    if (!attr || attr->isNone())
        return out;
    if (!attr->isString())
        return { toStr(*attr) };
    const std::string comma = ",";
    for (auto &p : pySplit(attr->str(), &comma, -1))
        out.push_back(pyStrip(p, nullptr, true, true));
    return out;
}

// ------------------------------------------------------------------------------------------------
// Python formatting

struct Spec {
    char fill = ' ';
    std::string fillStr = " ";
    char align = 0;
    char sign = '-';
    bool alt = false;
    bool zero = false;
    int64_t width = -1;
    char grouping = 0;
    int64_t precision = -1;
    char type = 0;
};

Spec parseSpec(const std::string &s)
{
    Spec sp;
    size_t i = 0;
    auto isAlign = [](char c) { return c == '<' || c == '>' || c == '^' || c == '='; };
    // fill may be a multibyte code point
    std::vector<uint32_t> cps = toCodePoints(s);
    size_t ci = 0;
    if (cps.size() >= 2 && isAlign(char(cps[1])) && cps[1] < 0x80) {
        sp.fillStr.clear();
        appendCodePoint(sp.fillStr, cps[0]);
        sp.align = char(cps[1]);
        ci = 2;
    } else if (!cps.empty() && cps[0] < 0x80 && isAlign(char(cps[0]))) {
        sp.align = char(cps[0]);
        ci = 1;
    }
    std::string rest = fromCodePoints(cps, ci);
    i = 0;
    if (i < rest.size() && (rest[i] == '+' || rest[i] == '-' || rest[i] == ' '))
        sp.sign = rest[i++];
    if (i < rest.size() && rest[i] == '#') {
        sp.alt = true;
        ++i;
    }
    if (i < rest.size() && rest[i] == '0') {
        sp.zero = true;
        ++i;
    }
    int64_t w = 0;
    bool hasW = false;
    while (i < rest.size() && std::isdigit(static_cast<unsigned char>(rest[i]))) {
        w = w * 10 + (rest[i++] - '0');
        hasW = true;
        if (w > 100000)
            throwValue("format width too large");
    }
    if (hasW)
        sp.width = w;
    if (i < rest.size() && (rest[i] == ',' || rest[i] == '_'))
        sp.grouping = rest[i++];
    if (i < rest.size() && rest[i] == '.') {
        ++i;
        int64_t p = 0;
        bool hasP = false;
        while (i < rest.size() && std::isdigit(static_cast<unsigned char>(rest[i]))) {
            p = p * 10 + (rest[i++] - '0');
            hasP = true;
            if (p > 1000)
                throwValue("format precision too large");
        }
        if (!hasP)
            throwValue("Format specifier missing precision");
        sp.precision = p;
    }
    if (i < rest.size())
        sp.type = rest[i++];
    if (i != rest.size())
        throwValue("Invalid format specifier '" + s + "'");
    return sp;
}

std::string groupDigits(const std::string &digits, char sep)
{
    std::string out;
    const size_t n = digits.size();
    for (size_t i = 0; i < n; ++i) {
        out += digits[i];
        const size_t left = n - i - 1;
        if (left > 0 && left % 3 == 0)
            out += sep;
    }
    return out;
}

std::string padTo(const std::string &body, const std::string &prefix, const Spec &sp, char defAlign)
{
    const char align = sp.align ? sp.align : (sp.zero ? '=' : defAlign);
    const std::string fill = sp.zero && !sp.align ? "0" : sp.fillStr;
    const int64_t len = int64_t(codePointLength(body) + codePointLength(prefix));
    if (sp.width <= len)
        return prefix + body;
    const int64_t pad = sp.width - len;
    auto rep = [&](int64_t n) {
        std::string s;
        for (int64_t i = 0; i < n; ++i)
            s += fill;
        return s;
    };
    switch (align) {
    case '<': return prefix + body + rep(pad);
    case '^': return rep(pad / 2) + prefix + body + rep(pad - pad / 2);
    case '=': return prefix + rep(pad) + body;
    default: return rep(pad) + prefix + body;
    }
}

std::string formatFloatBody(double x, const Spec &sp, char type)
{
    char buf[512];
    const int prec = sp.precision < 0 ? 6 : int(sp.precision);
    if (std::isinf(x))
        return (type >= 'A' && type <= 'Z') ? "INF" : "inf";
    if (std::isnan(x))
        return (type >= 'A' && type <= 'Z') ? "NAN" : "nan";
    switch (type) {
    case 'f':
    case 'F': std::snprintf(buf, sizeof buf, "%.*f", prec, x); break;
    case 'e':
    case 'E': std::snprintf(buf, sizeof buf, type == 'e' ? "%.*e" : "%.*E", prec, x); break;
    case '%': std::snprintf(buf, sizeof buf, "%.*f%%", prec, x * 100); break;
    case 'g':
    case 'G':
        std::snprintf(buf, sizeof buf, sp.alt ? (type == 'g' ? "%#.*g" : "%#.*G") : (type == 'g' ? "%.*g" : "%.*G"),
                      prec == 0 ? 1 : prec, x);
        break;
    default: {
        // no type: like 'g' with at least one digit after the point; without precision, repr
        if (sp.precision < 0)
            return pyReprFloat(x);
        std::snprintf(buf, sizeof buf, "%.*g", prec == 0 ? 1 : prec, x);
        std::string s(buf);
        if (s.find_first_of(".einf") == std::string::npos)
            s += ".0";
        return s;
    }
    }
    return buf;
}

std::string formatValue(const Value &v, const std::string &specText)
{
    if (specText.empty())
        return toStr(v);
    const Spec sp = parseSpec(specText);
    char type = sp.type;
    if (v.isString() || v.isNone() || v.isList() || v.isDict() || v.isUndefined()) {
        if (!v.isString() && !v.isUndefined())
            throwType("unsupported format string passed to " + v.typeName() + ".__format__");
        if (type && type != 's')
            throwValue(std::string("Unknown format code '") + type + "' for object of type 'str'");
        std::string s = toStr(v);
        if (sp.precision >= 0) {
            auto cps = toCodePoints(s);
            if (int64_t(cps.size()) > sp.precision)
                s = fromCodePoints(cps, 0, size_t(sp.precision));
        }
        return padTo(s, "", sp, '<');
    }
    if (!v.isNumber())
        throwType("unsupported format string passed to " + v.typeName() + ".__format__");
    const bool isIntegral = v.isInt() || v.isBool();
    if (isIntegral && (type == 0 || type == 'd' || type == 'n' || type == 'x' || type == 'X' || type == 'o' ||
                       type == 'b' || type == 'c')) {
        const int64_t n = v.asInt();
        if (type == 'c') {
            std::string s;
            appendCodePoint(s, uint32_t(n));
            return padTo(s, "", sp, '<');
        }
        uint64_t mag = n < 0 ? uint64_t(0) - uint64_t(n) : uint64_t(n);
        std::string digits;
        const int base = (type == 'x' || type == 'X') ? 16 : (type == 'o' ? 8 : (type == 'b' ? 2 : 10));
        if (mag == 0)
            digits = "0";
        while (mag) {
            const int d = int(mag % uint64_t(base));
            digits.insert(digits.begin(), char(d < 10 ? '0' + d : (type == 'X' ? 'A' : 'a') + d - 10));
            mag /= uint64_t(base);
        }
        if (sp.grouping)
            digits = groupDigits(digits, sp.grouping);
        std::string prefix = n < 0 ? "-" : (sp.sign == '+' ? "+" : (sp.sign == ' ' ? " " : ""));
        if (sp.alt && base != 10)
            prefix += base == 16 ? (type == 'X' ? "0X" : "0x") : (base == 8 ? "0o" : "0b");
        return padTo(digits, prefix, sp, '>');
    }
    if (type && std::string("eEfFgG%").find(type) == std::string::npos)
        throwValue(std::string("Unknown format code '") + type + "' for object of type '" + v.typeName() + "'");
    const double x = v.asDouble();
    std::string body = formatFloatBody(std::fabs(x), sp, type ? type : (isIntegral ? 'g' : 0));
    if (isIntegral && !type)
        body = formatFloatBody(std::fabs(x), sp, 'g');
    if (sp.grouping) {
        const size_t dot = body.find_first_of(".eE%");
        body = groupDigits(body.substr(0, dot), sp.grouping) + (dot == std::string::npos ? "" : body.substr(dot));
    }
    const bool neg = std::signbit(x) && !std::isnan(x);
    const std::string prefix = neg ? "-" : (sp.sign == '+' ? "+" : (sp.sign == ' ' ? " " : ""));
    return padTo(body, prefix, sp, '>');
}

// ------------------------------------------------------------------------------------------------
// filters

Value fAbs(Renderer &, const Value &v, CallArgs &)
{
    if (v.isFloat())
        return Value(std::fabs(v.asDouble()));
    if (v.isInt() || v.isBool()) {
        if (v.asInt() == INT64_MIN)
            throwValue("integer overflow");
        return Value(int64_t(std::llabs(v.asInt())));
    }
    if (v.isUndefined())
        throwUndefined(v.undefinedHint());
    throwType("bad operand type for abs(): '" + v.typeName() + "'");
}

Value fAttr(Renderer &r, const Value &v, CallArgs &a)
{
    const Value *name = arg(a, 0, "name");
    if (!name)
        throwType("attr() missing required argument 'name'");
    return r.getAttrOnly(v, toStr(*name));
}

Value fBatch(Renderer &r, const Value &v, CallArgs &a)
{
    const int64_t n = argInt(a, 0, "linecount", 0);
    if (n <= 0)
        throwValue("batch size must be positive");
    const Value *fill = arg(a, 1, "fill_with");
    std::vector<Value> out, cur;
    for (const Value &item : r.iterate(v)) {
        if (int64_t(cur.size()) == n) {
            out.push_back(Value::list(std::move(cur)));
            cur.clear();
        }
        cur.push_back(item);
    }
    if (!cur.empty()) {
        if (fill && !fill->isNone())
            while (int64_t(cur.size()) < n)
                cur.push_back(*fill);
        out.push_back(Value::list(std::move(cur)));
    }
    return Value::list(std::move(out));
}

Value fCapitalize(Renderer &, const Value &v, CallArgs &)
{
    return Value(pyCapitalize(toStr(v)));
}

std::string centerStr(const std::string &s, int64_t width, const std::string &fill)
{
    const int64_t len = int64_t(codePointLength(s));
    if (width <= len)
        return s;
    const int64_t pad = width - len;
    const int64_t left = pad / 2 + (pad & width & 1);
    std::string out;
    for (int64_t i = 0; i < left; ++i)
        out += fill;
    out += s;
    for (int64_t i = 0; i < pad - left; ++i)
        out += fill;
    return out;
}

Value fCenter(Renderer &r, const Value &v, CallArgs &a)
{
    const int64_t width = argInt(a, 0, "width", 80);
    r.checkSize(size_t(std::max<int64_t>(0, width)));
    return Value(centerStr(toStr(v), width, " "));
}

Value fDefault(Renderer &, const Value &v, CallArgs &a)
{
    const Value *def = arg(a, 0, "default_value");
    const bool boolean = argBool(a, 1, "boolean", false);
    if (v.isUndefined() || (boolean && !v.truthy()))
        return def ? *def : Value("");
    return v;
}

Value fDictsort(Renderer &r, const Value &v, CallArgs &a)
{
    if (!v.isDict()) {
        if (v.isUndefined())
            throwUndefined(v.undefinedHint());
        throwType("'" + v.typeName() + "' object has no attribute 'items'");
    }
    const bool cs = argBool(a, 0, "case_sensitive", false);
    const std::string by = argStr(a, 1, "by", "key");
    const bool reverse = argBool(a, 2, "reverse", false);
    int pos;
    if (by == "key")
        pos = 0;
    else if (by == "value")
        pos = 1;
    else
        throwValue("You can only sort by either \"key\" or \"value\"");
    std::vector<std::pair<Value, Value>> items = v.dictData().items();
    r.charge(int64_t(items.size()));
    std::stable_sort(items.begin(), items.end(), [&](const auto &x, const auto &y) {
        const Value kx = sortKey(pos == 0 ? x.first : x.second, cs);
        const Value ky = sortKey(pos == 0 ? y.first : y.second, cs);
        const int c = compareValues(kx, ky, "<");
        return reverse ? c > 0 : c < 0;
    });
    std::vector<Value> out;
    for (auto &kv : items)
        out.push_back(Value::list({ kv.first, kv.second }, true));
    return Value::list(std::move(out));
}

std::string escapeHtml(const std::string &s)
{
    std::string out;
    for (char c : s) {
        switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&#34;"; break;
        case '\'': out += "&#39;"; break;
        default: out += c;
        }
    }
    return out;
}

Value fEscape(Renderer &, const Value &v, CallArgs &)
{
    if (v.isMarkup())
        return v;
    return Value(escapeHtml(toStr(v)), true);
}

Value fForceEscape(Renderer &, const Value &v, CallArgs &)
{
    return Value(escapeHtml(toStr(v)), true);
}

Value fFirst(Renderer &r, const Value &v, CallArgs &)
{
    if (v.isList())
        return v.items().empty() ? Value::undefined("No first item, sequence was empty.") : v.items().front();
    std::vector<Value> items = r.iterate(v);
    if (items.empty())
        return Value::undefined("No first item, sequence was empty.");
    return items.front();
}

Value fLast(Renderer &r, const Value &v, CallArgs &)
{
    if (v.isUndefined())
        throwUndefined(v.undefinedHint());
    if (v.isList())
        return v.items().empty() ? Value::undefined("No last item, sequence was empty.") : v.items().back();
    std::vector<Value> items = r.iterate(v);
    if (items.empty())
        return Value::undefined("No last item, sequence was empty.");
    return items.back();
}

bool parsePyFloat(std::string s, double &out)
{
    s = pyStrip(s, nullptr, true, true);
    std::string t;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '_') {
            if (i == 0 || i + 1 >= s.size() || !std::isdigit(static_cast<unsigned char>(s[i - 1])) ||
                !std::isdigit(static_cast<unsigned char>(s[i + 1])))
                return false;
            continue;
        }
        t += s[i];
    }
    if (t.empty())
        return false;
    std::string low = pyLower(t);
    std::string body = (low[0] == '+' || low[0] == '-') ? low.substr(1) : low;
    if (body == "inf" || body == "infinity" || body == "nan") {
        out = body == "nan" ? NAN : (low[0] == '-' ? -INFINITY : INFINITY);
        return true;
    }
    for (char c : body)
        if (!(std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == 'e' || c == '+' || c == '-'))
            return false;
    char *end = nullptr;
    errno = 0;
    out = std::strtod(t.c_str(), &end);
    return end && *end == 0;
}

bool parsePyInt(std::string s, int base, int64_t &out)
{
    s = pyStrip(s, nullptr, true, true);
    if (s.empty())
        return false;
    bool neg = false;
    size_t i = 0;
    if (s[0] == '+' || s[0] == '-') {
        neg = s[0] == '-';
        i = 1;
    }
    std::string digits;
    if (base == 0 || base == 16 || base == 8 || base == 2) {
        if (i + 1 < s.size() && s[i] == '0') {
            const char p = char(std::tolower(static_cast<unsigned char>(s[i + 1])));
            const int pb = p == 'x' ? 16 : (p == 'o' ? 8 : (p == 'b' ? 2 : 0));
            if (pb && (base == 0 || base == pb)) {
                base = pb;
                i += 2;
                if (i < s.size() && s[i] == '_')
                    ++i;
            }
        }
        if (base == 0)
            base = 10;
    }
    for (size_t k = i; k < s.size(); ++k) {
        if (s[k] == '_') {
            if (k == i || k + 1 >= s.size() || s[k + 1] == '_')
                return false;
            continue;
        }
        digits += s[k];
    }
    if (digits.empty())
        return false;
    for (char c : digits) {
        int d = std::isdigit(static_cast<unsigned char>(c)) ? c - '0'
                                                            : (std::isalpha(static_cast<unsigned char>(c))
                                                                   ? std::tolower(static_cast<unsigned char>(c)) - 'a' + 10
                                                                   : 99);
        if (d >= base)
            return false;
    }
    errno = 0;
    const unsigned long long v = std::strtoull(digits.c_str(), nullptr, base);
    if (errno || v > uint64_t(INT64_MAX))
        throwValue("integer overflow (values beyond 64 bits are not supported)");
    out = neg ? -int64_t(v) : int64_t(v);
    return true;
}

Value fFloat(Renderer &, const Value &v, CallArgs &a)
{
    const Value *def = arg(a, 0, "default");
    const Value dflt = def ? *def : Value(0.0);
    if (v.isUndefined())
        throwUndefined(v.undefinedHint());
    if (v.isNumber())
        return Value(v.asDouble());
    if (v.isString()) {
        double d;
        if (parsePyFloat(v.str(), d))
            return Value(d);
    }
    return dflt;
}

Value fInt(Renderer &, const Value &v, CallArgs &a)
{
    const Value *def = arg(a, 0, "default");
    const Value dflt = def ? *def : Value(int64_t(0));
    const int64_t base = argInt(a, 1, "base", 10);
    if (v.isUndefined())
        throwUndefined(v.undefinedHint());
    if (v.isInt() || v.isBool())
        return Value(v.asInt());
    if (v.isFloat()) {
        const double d = v.asDouble();
        if (std::isnan(d) || std::isinf(d))
            return dflt;
        if (std::fabs(d) >= 9.2e18)
            throwValue("integer overflow (values beyond 64 bits are not supported)");
        return Value(int64_t(d));
    }
    if (v.isString()) {
        int64_t i;
        if (parsePyInt(v.str(), int(base), i))
            return Value(i);
        double d;
        if (parsePyFloat(v.str(), d) && !std::isnan(d) && !std::isinf(d) && std::fabs(d) < 9.2e18)
            return Value(int64_t(d));
    }
    return dflt;
}

Value fFormat(Renderer &r, const Value &v, CallArgs &a)
{
    if (!a.keyword.empty() && !a.positional.empty())
        throwValue("can't handle positional and keyword arguments at the same time");
    if (!a.keyword.empty()) {
        Dict d;
        for (auto &kv : a.keyword)
            d.set(Value(kv.first), kv.second);
        return Value(percentFormat(r, toStr(v), Value::dict(std::move(d))));
    }
    return Value(percentFormat(r, toStr(v), Value::list(a.positional, true)));
}

Value fIndent(Renderer &r, const Value &v, CallArgs &a)
{
    const Value *w = arg(a, 0, "width");
    std::string indention;
    if (w && w->isString())
        indention = w->str();
    else {
        const int64_t width = std::max<int64_t>(0, w ? argInt(a, 0, "width", 4) : 4);
        r.checkSize(size_t(std::min<int64_t>(width, int64_t(r.limits().maxOutputBytes) + 1)));
        indention = std::string(size_t(width), ' ');
    }
    const bool first = argBool(a, 1, "first", false);
    const bool blank = argBool(a, 2, "blank", false);
    std::string s = toStr(v) + "\n";
    const std::vector<std::string> lines = pySplitLines(s, false);
    r.charge(int64_t(lines.size()));
    r.checkSize(s.size() + lines.size() * indention.size());
    std::string rv;
    if (blank) {
        for (size_t i = 0; i < lines.size(); ++i) {
            if (i)
                rv += "\n" + indention;
            rv += lines[i];
        }
    } else if (!lines.empty()) {
        rv = lines[0];
        if (lines.size() > 1) {
            rv += "\n";
            for (size_t i = 1; i < lines.size(); ++i) {
                if (i > 1)
                    rv += "\n";
                if (!lines[i].empty())
                    rv += indention;
                rv += lines[i];
            }
        }
    }
    if (first)
        rv = indention + rv;
    return Value(std::move(rv), v.isMarkup());
}

Value fItems(Renderer &r, const Value &v, CallArgs &)
{
    if (v.isUndefined())
        return Value::list({});
    if (!v.isDict())
        throwType("Can only get item pairs from a mapping.");
    std::vector<Value> out;
    for (const auto &kv : v.dictData().items())
        out.push_back(Value::list({ kv.first, kv.second }, true));
    r.charge(int64_t(out.size()));
    return Value::list(std::move(out));
}

Value fJoin(Renderer &r, const Value &v, CallArgs &a)
{
    const std::string sep = argStr(a, 0, "d", "");
    const Value *attr = arg(a, 1, "attribute");
    std::string out;
    bool first = true;
    for (const Value &item : r.iterate(v)) {
        if (!first)
            out += sep;
        first = false;
        const Value x = (attr && !attr->isNone()) ? r.resolveAttributePath(item, *attr) : item;
        out += toStr(x);
        r.checkSize(out.size());
    }
    return Value(std::move(out));
}

Value fLength(Renderer &r, const Value &v, CallArgs &)
{
    return Value(pyLen(r, v));
}

Value fList(Renderer &r, const Value &v, CallArgs &)
{
    if (v.isList() && !v.isTuple())
        return v;
    return Value::list(r.iterate(v));
}

Value fLower(Renderer &, const Value &v, CallArgs &)
{
    return Value(pyLower(toStr(v)));
}

Value fUpper(Renderer &, const Value &v, CallArgs &)
{
    return Value(pyUpper(toStr(v)));
}

Value fMap(Renderer &r, const Value &v, CallArgs &a)
{
    std::vector<Value> out;
    const Value *attribute = a.kw("attribute");
    if (attribute) {
        const Value *def = a.kw("default");
        for (const Value &item : r.iterate(v)) {
            Value x = r.resolveAttributePath(item, *attribute);
            if (def && x.isUndefined())
                x = *def;
            out.push_back(std::move(x));
        }
        return Value::list(std::move(out));
    }
    if (a.positional.empty())
        throwType("map requires a filter argument");
    const std::string name = toStr(a.positional[0]);
    CallArgs rest;
    rest.positional.assign(a.positional.begin() + 1, a.positional.end());
    rest.keyword = a.keyword;
    for (const Value &item : r.iterate(v)) {
        CallArgs copy = rest;
        out.push_back(r.applyFilter(name, item, copy));
    }
    return Value::list(std::move(out));
}

Value minMax(Renderer &r, const Value &v, CallArgs &a, bool wantMax)
{
    const bool cs = argBool(a, 0, "case_sensitive", false);
    const Value *attr = arg(a, 1, "attribute");
    const std::vector<Value> items = r.iterate(v);
    if (items.empty())
        return Value::undefined(std::string("No aggregated item, sequence was empty."));
    size_t best = 0;
    Value bestKey;
    for (size_t i = 0; i < items.size(); ++i) {
        Value k = attr && !attr->isNone() ? r.resolveAttributePath(items[i], *attr) : items[i];
        k = sortKey(k, cs);
        if (i == 0) {
            bestKey = k;
            continue;
        }
        const int c = compareValues(k, bestKey, wantMax ? ">" : "<");
        if (wantMax ? c > 0 : c < 0) {
            best = i;
            bestKey = k;
        }
    }
    return items[best];
}

Value fMax(Renderer &r, const Value &v, CallArgs &a)
{
    return minMax(r, v, a, true);
}

Value fMin(Renderer &r, const Value &v, CallArgs &a)
{
    return minMax(r, v, a, false);
}

Value selectImpl(Renderer &r, const Value &v, CallArgs &a, bool byAttr, bool keep)
{
    size_t idx = 0;
    Value attribute;
    if (byAttr) {
        const Value *at = arg(a, 0, "attribute");
        if (!at)
            throwType("selectattr/rejectattr need an attribute name");
        attribute = *at;
        idx = 1;
    }
    std::string test;
    bool hasTest = false;
    if (a.positional.size() > idx) {
        test = toStr(a.positional[idx]);
        hasTest = true;
    }
    CallArgs testArgs;
    if (hasTest)
        testArgs.positional.assign(a.positional.begin() + long(idx) + 1, a.positional.end());
    std::vector<Value> out;
    for (const Value &item : r.iterate(v)) {
        const Value subject = byAttr ? r.resolveAttributePath(item, attribute) : item;
        bool ok;
        if (hasTest) {
            CallArgs copy = testArgs;
            ok = r.applyTest(test, subject, copy);
        } else {
            ok = subject.truthy();
        }
        if (ok == keep)
            out.push_back(item);
    }
    return Value::list(std::move(out));
}

Value fSelect(Renderer &r, const Value &v, CallArgs &a)
{
    return selectImpl(r, v, a, false, true);
}
Value fReject(Renderer &r, const Value &v, CallArgs &a)
{
    return selectImpl(r, v, a, false, false);
}
Value fSelectAttr(Renderer &r, const Value &v, CallArgs &a)
{
    return selectImpl(r, v, a, true, true);
}
Value fRejectAttr(Renderer &r, const Value &v, CallArgs &a)
{
    return selectImpl(r, v, a, true, false);
}

Value fReplace(Renderer &r, const Value &v, CallArgs &a)
{
    const Value *oldV = arg(a, 0, "old");
    const Value *newV = arg(a, 1, "new");
    if (!oldV || !newV)
        throwType("replace() needs 'old' and 'new'");
    const Value *countV = arg(a, 2, "count");
    const int64_t count = (countV && !countV->isNone()) ? (countV->asInt() ? countV->asInt() : -1) : -1;
    return Value(pyReplace(toStr(v), toStr(*oldV), toStr(*newV), count, r.limits().maxOutputBytes));
}

Value fReverse(Renderer &r, const Value &v, CallArgs &)
{
    if (v.isString()) {
        auto cps = toCodePoints(v.str());
        std::reverse(cps.begin(), cps.end());
        return Value(fromCodePoints(cps));
    }
    if (v.isUndefined())
        throwUndefined(v.undefinedHint());
    std::vector<Value> items = r.iterate(v);
    std::reverse(items.begin(), items.end());
    return Value::list(std::move(items));
}

Value fRound(Renderer &, const Value &v, CallArgs &a)
{
    const int64_t precision = argInt(a, 0, "precision", 0);
    const std::string method = argStr(a, 1, "method", "common");
    if (method != "common" && method != "ceil" && method != "floor")
        throwType("method must be 'common', 'ceil' or 'floor'");
    if (v.isUndefined())
        throwUndefined(v.undefinedHint());
    if (!v.isNumber())
        throwType("type " + v.typeName() + " doesn't define __round__ method");
    if (method == "common") {
        if (v.isInt() || v.isBool()) {
            if (precision >= 0)
                return Value(v.asInt());
            const double p = std::pow(10.0, double(-precision));
            const double q = double(v.asInt()) / p;
            double rq = std::nearbyint(q); // ties to even
            return Value(int64_t(rq * p));
        }
        const double x = v.asDouble();
        if (std::isnan(x) || std::isinf(x))
            return Value(x);
        if (precision > 300 || precision < -300)
            return Value(precision > 0 ? x : 0.0 * x);
        if (precision >= 0) {
            // correctly rounded (glibc printf rounds the exact binary value half-to-even)
            char buf[512];
            std::snprintf(buf, sizeof buf, "%.*f", int(precision), x);
            return Value(std::strtod(buf, nullptr));
        }
        const double p = std::pow(10.0, double(-precision));
        return Value(std::nearbyint(x / p) * p);
    }
    const double p = std::pow(10.0, double(precision));
    const double x = v.asDouble() * p;
    return Value((method == "ceil" ? std::ceil(x) : std::floor(x)) / p);
}

Value fSafe(Renderer &, const Value &v, CallArgs &)
{
    return Value(toStr(v), true);
}

Value fSort(Renderer &r, const Value &v, CallArgs &a)
{
    const bool reverse = argBool(a, 0, "reverse", false);
    const bool cs = argBool(a, 1, "case_sensitive", false);
    const Value *attr = arg(a, 2, "attribute");
    const std::vector<std::string> attrs = splitAttributes(attr);
    std::vector<Value> items = r.iterate(v);
    std::vector<std::pair<std::vector<Value>, size_t>> keyed;
    for (size_t i = 0; i < items.size(); ++i) {
        std::vector<Value> keys;
        if (attrs.empty())
            keys.push_back(sortKey(items[i], cs));
        else
            for (const auto &at : attrs)
                keys.push_back(sortKey(r.resolveAttributePath(items[i], Value(at)), cs));
        keyed.emplace_back(std::move(keys), i);
    }
    r.charge(int64_t(items.size()) * 8);
    std::stable_sort(keyed.begin(), keyed.end(), [&](const auto &x, const auto &y) {
        for (size_t k = 0; k < x.first.size(); ++k) {
            const int c = compareValues(x.first[k], y.first[k], "<");
            if (c != 0)
                return reverse ? c > 0 : c < 0;
        }
        return false;
    });
    std::vector<Value> out;
    for (auto &k : keyed)
        out.push_back(items[k.second]);
    return Value::list(std::move(out));
}

Value fString(Renderer &, const Value &v, CallArgs &)
{
    if (v.isString())
        return v;
    return Value(toStr(v));
}

Value fSum(Renderer &r, const Value &v, CallArgs &a)
{
    const Value *attr = arg(a, 0, "attribute");
    const Value *start = arg(a, 1, "start");
    CallArgs none;
    Value total = start ? *start : Value(int64_t(0));
    for (const Value &item : r.iterate(v)) {
        const Value x = attr && !attr->isNone() ? r.resolveAttributePath(item, *attr) : item;
        if (total.isNumber() && x.isNumber()) {
            if (total.isFloat() || x.isFloat())
                total = Value(total.asDouble() + x.asDouble());
            else {
                int64_t s;
                if (__builtin_add_overflow(total.asInt(), x.asInt(), &s))
                    throwValue("integer overflow");
                total = Value(s);
            }
        } else {
            throwType("unsupported operand type(s) for +: '" + total.typeName() + "' and '" + x.typeName() + "'");
        }
    }
    return total;
}

Value fTitle(Renderer &, const Value &v, CallArgs &)
{
    // jinja2's title: split on runs of [-\s({\[<] and capitalise each piece's first character.
    const auto cps = toCodePoints(toStr(v));
    std::string out;
    bool startOfWord = true;
    for (uint32_t cp : cps) {
        const bool sep = cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' || pyIsSpace(cp);
        if (sep) {
            appendCodePoint(out, cp);
            startOfWord = true;
        } else if (startOfWord) {
            if (cp == 0xDF)
                out += "SS";
            else
                appendCodePoint(out, pyUpperSimple(cp));
            startOfWord = false;
        } else {
            appendCodePoint(out, pyLowerSimple(cp));
        }
    }
    return Value(std::move(out));
}

Value fToJson(Renderer &, const Value &v, CallArgs &a)
{
    JsonDumpOptions o;
    o.ensureAscii = argBool(a, 0, "ensure_ascii", false);
    if (const Value *ind = arg(a, 1, "indent"); ind && !ind->isNone()) {
        o.hasIndent = true;
        if (ind->isString())
            o.indent = ind->str();
        else if (ind->isInt() || ind->isBool())
            o.indent = std::string(size_t(std::max<int64_t>(0, std::min<int64_t>(ind->asInt(), 1000))), ' ');
        else
            throwType("indent must be an int or a string");
    }
    if (const Value *sep = arg(a, 2, "separators"); sep && !sep->isNone()) {
        if (!sep->isList() || sep->items().size() != 2)
            throwValue("separators must be a (item_separator, key_separator) pair");
        o.hasSeparators = true;
        o.itemSeparator = toStr(sep->items()[0]);
        o.keySeparator = toStr(sep->items()[1]);
    }
    o.sortKeys = argBool(a, 3, "sort_keys", false);
    return Value(toJson(v, o));
}

Value fTrim(Renderer &, const Value &v, CallArgs &a)
{
    const Value *chars = arg(a, 0, "chars");
    if (chars && !chars->isNone()) {
        const std::string c = toStr(*chars);
        return Value(pyStrip(toStr(v), &c, true, true), v.isMarkup());
    }
    return Value(pyStrip(toStr(v), nullptr, true, true), v.isMarkup());
}

Value fTruncate(Renderer &, const Value &v, CallArgs &a)
{
    const std::string s = toStr(v);
    const int64_t length = argInt(a, 0, "length", 255);
    const bool killwords = argBool(a, 1, "killwords", false);
    const std::string end = argStr(a, 2, "end", "...");
    const int64_t leeway = argInt(a, 3, "leeway", 5);
    const int64_t endLen = int64_t(codePointLength(end));
    if (length < endLen)
        throwValue("expected length >= " + std::to_string(endLen) + ", got " + std::to_string(length));
    if (leeway < 0)
        throwValue("expected leeway >= 0, got " + std::to_string(leeway));
    const auto cps = toCodePoints(s);
    if (int64_t(cps.size()) <= length + leeway)
        return Value(s);
    std::string head = fromCodePoints(cps, 0, size_t(length - endLen));
    if (killwords)
        return Value(head + end);
    const std::string space = " ";
    const auto parts = pyRSplit(head, &space, 1);
    return Value(parts[0] + end);
}

Value fUnique(Renderer &r, const Value &v, CallArgs &a)
{
    const bool cs = argBool(a, 0, "case_sensitive", false);
    const Value *attr = arg(a, 1, "attribute");
    std::vector<Value> out;
    std::vector<std::string> seen;
    std::unordered_map<std::string, bool> seenSet;
    for (const Value &item : r.iterate(v)) {
        Value k = attr && !attr->isNone() ? r.resolveAttributePath(item, *attr) : item;
        k = sortKey(k, cs);
        const std::string hk = hashKey(k);
        if (seenSet.emplace(hk, true).second)
            out.push_back(item);
    }
    return Value::list(std::move(out));
}

Value fWordcount(Renderer &, const Value &v, CallArgs &)
{
    int64_t n = 0;
    bool in = false;
    for (uint32_t cp : toCodePoints(toStr(v))) {
        const bool w = cp == '_' || pyIsAlnum(cp);
        if (w && !in)
            ++n;
        in = w;
    }
    return Value(n);
}

const std::unordered_map<std::string, FilterFn> &filterTable()
{
    static const std::unordered_map<std::string, FilterFn> table = {
        { "abs", fAbs },
        { "attr", fAttr },
        { "batch", fBatch },
        { "capitalize", fCapitalize },
        { "center", fCenter },
        { "count", fLength },
        { "d", fDefault },
        { "default", fDefault },
        { "dictsort", fDictsort },
        { "e", fEscape },
        { "escape", fEscape },
        { "first", fFirst },
        { "float", fFloat },
        { "forceescape", fForceEscape },
        { "format", fFormat },
        { "indent", fIndent },
        { "int", fInt },
        { "items", fItems },
        { "join", fJoin },
        { "last", fLast },
        { "length", fLength },
        { "list", fList },
        { "lower", fLower },
        { "map", fMap },
        { "max", fMax },
        { "min", fMin },
        { "reject", fReject },
        { "rejectattr", fRejectAttr },
        { "replace", fReplace },
        { "reverse", fReverse },
        { "round", fRound },
        { "safe", fSafe },
        { "select", fSelect },
        { "selectattr", fSelectAttr },
        { "sort", fSort },
        { "string", fString },
        { "sum", fSum },
        { "title", fTitle },
        { "tojson", fToJson },
        { "trim", fTrim },
        { "truncate", fTruncate },
        { "unique", fUnique },
        { "upper", fUpper },
        { "wordcount", fWordcount },
    };
    return table;
}

// ------------------------------------------------------------------------------------------------
// tests

const Value &testArg(CallArgs &a, const char *what)
{
    if (a.positional.empty()) {
        if (!a.keyword.empty())
            return a.keyword.front().second;
        throwType(std::string("test '") + what + "' needs an argument");
    }
    return a.positional[0];
}

bool tDefined(Renderer &, const Value &v, CallArgs &)
{
    return !v.isUndefined();
}
bool tUndefined(Renderer &, const Value &v, CallArgs &)
{
    return v.isUndefined();
}
bool tNone(Renderer &, const Value &v, CallArgs &)
{
    return v.isNone();
}
bool tBoolean(Renderer &, const Value &v, CallArgs &)
{
    return v.isBool();
}
bool tTrue(Renderer &, const Value &v, CallArgs &)
{
    return v.isBool() && v.asBool();
}
bool tFalse(Renderer &, const Value &v, CallArgs &)
{
    return v.isBool() && !v.asBool();
}
bool tString(Renderer &, const Value &v, CallArgs &)
{
    return v.isString();
}
bool tMapping(Renderer &, const Value &v, CallArgs &)
{
    return v.isDict();
}
bool tIterable(Renderer &, const Value &v, CallArgs &)
{
    return v.isUndefined() || v.isString() || v.isList() || v.isDict();
}
bool tSequence(Renderer &, const Value &v, CallArgs &)
{
    return v.isUndefined() || v.isString() || v.isList() || v.isDict();
}
bool tNumber(Renderer &, const Value &v, CallArgs &)
{
    return v.isNumber();
}
bool tInteger(Renderer &, const Value &v, CallArgs &)
{
    return v.isInt();
}
bool tFloat(Renderer &, const Value &v, CallArgs &)
{
    return v.isFloat();
}
bool tCallable(Renderer &, const Value &v, CallArgs &)
{
    return v.isObject() && v.object()->isCallable();
}
bool tEscaped(Renderer &, const Value &v, CallArgs &)
{
    return v.isMarkup();
}
bool tEq(Renderer &, const Value &v, CallArgs &a)
{
    return valuesEqual(v, testArg(a, "eq"));
}
bool tNe(Renderer &, const Value &v, CallArgs &a)
{
    return !valuesEqual(v, testArg(a, "ne"));
}
bool tLt(Renderer &, const Value &v, CallArgs &a)
{
    return compareValues(v, testArg(a, "lt"), "<") < 0;
}
bool tLe(Renderer &, const Value &v, CallArgs &a)
{
    return compareValues(v, testArg(a, "le"), "<=") <= 0;
}
bool tGt(Renderer &, const Value &v, CallArgs &a)
{
    return compareValues(v, testArg(a, "gt"), ">") > 0;
}
bool tGe(Renderer &, const Value &v, CallArgs &a)
{
    return compareValues(v, testArg(a, "ge"), ">=") >= 0;
}
bool tIn(Renderer &r, const Value &v, CallArgs &a)
{
    return r.contains(testArg(a, "in"), v);
}
bool tSameAs(Renderer &, const Value &v, CallArgs &a)
{
    const Value &o = testArg(a, "sameas");
    if (v.kind() != o.kind())
        return false;
    switch (v.kind()) {
    case Value::Kind::None:
    case Value::Kind::Undefined: return true;
    case Value::Kind::Bool: return v.asBool() == o.asBool();
    case Value::Kind::Int: return v.asInt() == o.asInt() && v.asInt() >= -5 && v.asInt() <= 256;
    case Value::Kind::Object: return v.object() == o.object();
    default: return false;
    }
}

int64_t intOperand(const Value &v, const char *what)
{
    if (v.isUndefined())
        throwUndefined(v.undefinedHint());
    if (v.isInt() || v.isBool())
        return v.asInt();
    if (v.isFloat())
        return int64_t(v.asDouble());
    throwType(std::string("unsupported operand type(s) for %: '") + v.typeName() + "' and 'int' (" + what + ")");
}

bool tOdd(Renderer &, const Value &v, CallArgs &)
{
    return intOperand(v, "odd") % 2 != 0;
}
bool tEven(Renderer &, const Value &v, CallArgs &)
{
    return intOperand(v, "even") % 2 == 0;
}
bool tDivisibleBy(Renderer &, const Value &v, CallArgs &a)
{
    const int64_t n = intOperand(testArg(a, "divisibleby"), "divisibleby");
    if (n == 0)
        throwValue("integer division or modulo by zero");
    return intOperand(v, "divisibleby") % n == 0;
}

bool hasCased(const std::string &s, bool wantLower)
{
    bool any = false;
    for (uint32_t cp : toCodePoints(s)) {
        if (!pyIsCased(cp))
            continue;
        any = true;
        const bool isUpper = pyLowerSimple(cp) != cp;
        const bool isLower = pyUpperSimple(cp) != cp || cp == 0xDF;
        if (wantLower ? isUpper : isLower)
            return false;
    }
    return any;
}

bool tLower(Renderer &, const Value &v, CallArgs &)
{
    return hasCased(toStr(v), true);
}
bool tUpper(Renderer &, const Value &v, CallArgs &)
{
    return hasCased(toStr(v), false);
}
bool tFilter(Renderer &, const Value &v, CallArgs &)
{
    return v.isString() && findFilter(v.str()) != nullptr;
}
bool tTest(Renderer &, const Value &v, CallArgs &)
{
    return v.isString() && findTest(v.str()) != nullptr;
}

const std::unordered_map<std::string, TestFn> &testTable()
{
    static const std::unordered_map<std::string, TestFn> table = {
        { "boolean", tBoolean },   { "callable", tCallable },
        { "defined", tDefined },   { "divisibleby", tDivisibleBy },
        { "eq", tEq },             { "equalto", tEq },
        { "==", tEq },             { "escaped", tEscaped },
        { "even", tEven },         { "false", tFalse },
        { "filter", tFilter },     { "float", tFloat },
        { "ge", tGe },             { ">=", tGe },
        { "gt", tGt },             { "greaterthan", tGt },
        { ">", tGt },              { "in", tIn },
        { "integer", tInteger },   { "iterable", tIterable },
        { "le", tLe },             { "<=", tLe },
        { "lower", tLower },       { "lt", tLt },
        { "lessthan", tLt },       { "<", tLt },
        { "mapping", tMapping },   { "ne", tNe },
        { "!=", tNe },             { "none", tNone },
        { "number", tNumber },     { "odd", tOdd },
        { "sameas", tSameAs },     { "sequence", tSequence },
        { "string", tString },     { "test", tTest },
        { "true", tTrue },         { "undefined", tUndefined },
        { "upper", tUpper },
    };
    return table;
}

// ------------------------------------------------------------------------------------------------
// globals

Value gRange(Renderer &r, CallArgs &a)
{
    if (!a.keyword.empty())
        throwType("range() takes no keyword arguments");
    int64_t start = 0, stop, step = 1;
    auto asInt = [](const Value &v) {
        if (v.isUndefined())
            throwUndefined(v.undefinedHint());
        if (!(v.isInt() || v.isBool()))
            throwType("'" + v.typeName() + "' object cannot be interpreted as an integer");
        return v.asInt();
    };
    if (a.positional.size() == 1) {
        stop = asInt(a.positional[0]);
    } else if (a.positional.size() == 2 || a.positional.size() == 3) {
        start = asInt(a.positional[0]);
        stop = asInt(a.positional[1]);
        if (a.positional.size() == 3)
            step = asInt(a.positional[2]);
    } else {
        throwType("range expected 1 to 3 arguments");
    }
    if (step == 0)
        throwValue("range() arg 3 must not be zero");
    long double count = 0;
    if (step > 0 && stop > start)
        count = std::ceil((long double)(stop - (long double)start) / step);
    else if (step < 0 && stop < start)
        count = std::ceil(((long double)start - stop) / (long double)(-step));
    if (count > (long double)r.limits().maxLoopIterations)
        throw EvalError(EvalError::Kind::Limit, "range() of " + std::to_string((long long)count) +
                                                    " items exceeds the limit of " +
                                                    std::to_string(r.limits().maxLoopIterations) + " loop iterations");
    std::vector<Value> out;
    out.reserve(size_t(count));
    for (int64_t i = 0; i < int64_t(count); ++i)
        out.emplace_back(start + i * step);
    r.charge(int64_t(count));
    return Value::list(std::move(out));
}

Value gNamespace(Renderer &r, CallArgs &a)
{
    auto ns = std::make_shared<Namespace>();
    for (const Value &p : a.positional) {
        if (!p.isDict())
            throwType("namespace() positional argument must be a mapping");
        for (const auto &kv : p.dictData().items())
            ns->setAttr(toStr(kv.first), kv.second);
    }
    for (const auto &kv : a.keyword)
        ns->setAttr(kv.first, kv.second);
    r.trackNamespace(ns);
    return Value::object(ns);
}

Value gDict(Renderer &, CallArgs &a)
{
    Dict d;
    for (const Value &p : a.positional) {
        if (p.isDict()) {
            for (const auto &kv : p.dictData().items())
                d.set(kv.first, kv.second);
        } else {
            throwType("dict() positional argument must be a mapping");
        }
    }
    for (const auto &kv : a.keyword)
        d.set(Value(kv.first), kv.second);
    return Value::dict(std::move(d));
}

Value gRaiseException(Renderer &, CallArgs &a)
{
    const std::string msg = a.positional.empty() ? std::string() : toStr(a.positional[0]);
    throw EvalError(EvalError::Kind::Raised, msg);
}

Value gStrftimeNow(Renderer &r, CallArgs &a)
{
    if (a.positional.empty())
        throwType("strftime_now() missing required argument 'format'");
    if (!a.positional[0].isString())
        throwType("strftime() argument 1 must be str, not " + a.positional[0].typeName());
    return Value(r.strftimeNow(a.positional[0].str()));
}

class CyclerObject : public Object {
public:
    std::string typeName() const override { return "Cycler"; }
    std::string repr() const override { return "<Cycler>"; }
    bool getAttr(const std::string &name, Value &out) const override
    {
        if (name == "current") {
            out = m_items.empty() ? Value::none() : m_items[m_pos];
            return true;
        }
        auto self = const_cast<CyclerObject *>(this);
        if (name == "next") {
            out = Value::object(std::make_shared<BuiltinFunction>("next", [self](Renderer &, CallArgs &) {
                const Value v = self->m_items[self->m_pos];
                self->m_pos = (self->m_pos + 1) % self->m_items.size();
                return v;
            }));
            return true;
        }
        if (name == "reset") {
            out = Value::object(std::make_shared<BuiltinFunction>("reset", [self](Renderer &, CallArgs &) {
                self->m_pos = 0;
                return Value::none();
            }));
            return true;
        }
        return false;
    }
    std::vector<Value> m_items;
    size_t m_pos = 0;
};

Value gCycler(Renderer &, CallArgs &a)
{
    if (a.positional.empty())
        throwType("at least one item has to be provided");
    auto c = std::make_shared<CyclerObject>();
    c->m_items = a.positional;
    return Value::object(c);
}

Value gJoiner(Renderer &, CallArgs &a)
{
    const std::string sep = a.positional.empty() ? ", " : toStr(a.positional[0]);
    auto used = std::make_shared<bool>(false);
    return Value::object(std::make_shared<BuiltinFunction>("joiner", [sep, used](Renderer &, CallArgs &) {
        if (!*used) {
            *used = true;
            return Value("");
        }
        return Value(sep);
    }));
}

// ------------------------------------------------------------------------------------------------
// methods

bool startsEnds(Renderer &r, const std::string &s, CallArgs &a, bool ends)
{
    const Value *pv = arg(a, 0, "prefix");
    if (!pv)
        throwType(std::string(ends ? "endswith" : "startswith") + "() takes at least 1 argument (0 given)");
    // optional start/end in code points
    std::string sub = s;
    const Value *startV = arg(a, 1, "start");
    const Value *endV = arg(a, 2, "end");
    if ((startV && !startV->isNone()) || (endV && !endV->isNone())) {
        auto cps = toCodePoints(s);
        int64_t n = int64_t(cps.size());
        int64_t b = startV && !startV->isNone() ? startV->asInt() : 0;
        int64_t e = endV && !endV->isNone() ? endV->asInt() : n;
        if (b < 0)
            b = std::max<int64_t>(0, b + n);
        if (e < 0)
            e = std::max<int64_t>(0, e + n);
        b = std::min(b, n);
        e = std::min(e, n);
        if (b > e)
            return false;
        sub = fromCodePoints(cps, size_t(b), size_t(e));
    }
    auto test = [&](const Value &p) {
        if (!p.isString())
            throwType(std::string(ends ? "endswith" : "startswith") +
                      " first arg must be str or a tuple of str, not " + p.typeName());
        const std::string &x = p.str();
        if (x.size() > sub.size())
            return false;
        return ends ? sub.compare(sub.size() - x.size(), x.size(), x) == 0 : sub.compare(0, x.size(), x) == 0;
    };
    if (pv->isTuple()) {
        for (const Value &p : pv->items())
            if (test(p))
                return true;
        return false;
    }
    return test(*pv);
}

const std::string *optChars(CallArgs &a, std::string &store)
{
    const Value *c = arg(a, 0, "chars");
    if (!c || c->isNone())
        return nullptr;
    requireString(*c, "strip arg");
    store = c->str();
    return &store;
}

bool stringMethod(Renderer &r, const Value &obj, const std::string &name, CallArgs &a, Value &out)
{
    const std::string &s = obj.str();
    std::string store;
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
        const std::string *chars = optChars(a, store);
        out = Value(pyStrip(s, chars, name != "rstrip", name != "lstrip"));
        return true;
    }
    if (name == "split" || name == "rsplit") {
        const Value *sepV = arg(a, 0, "sep");
        const int64_t maxsplit = argInt(a, 1, "maxsplit", -1);
        const std::string *sep = nullptr;
        if (sepV && !sepV->isNone()) {
            requireString(*sepV, "separator");
            store = sepV->str();
            sep = &store;
            if (store.empty())
                throwValue("empty separator");
        }
        out = strList(name == "split" ? pySplit(s, sep, maxsplit) : pyRSplit(s, sep, maxsplit));
        r.charge(int64_t(out.items().size()));
        return true;
    }
    if (name == "splitlines") {
        out = strList(pySplitLines(s, argBool(a, 0, "keepends", false)));
        return true;
    }
    if (name == "startswith" || name == "endswith") {
        out = Value::boolean(startsEnds(r, s, a, name == "endswith"));
        return true;
    }
    if (name == "replace") {
        const Value *o = arg(a, 0, "old");
        const Value *n = arg(a, 1, "new");
        if (!o || !n)
            throwType("replace() takes at least 2 arguments");
        requireString(*o, "replace() argument 1");
        requireString(*n, "replace() argument 2");
        out = Value(pyReplace(s, o->str(), n->str(), argInt(a, 2, "count", -1), r.limits().maxOutputBytes));
        return true;
    }
    if (name == "upper") {
        out = Value(pyUpper(s));
        return true;
    }
    if (name == "lower" || name == "casefold") {
        out = Value(pyLower(s));
        return true;
    }
    if (name == "title") {
        out = Value(pyTitle(s));
        return true;
    }
    if (name == "capitalize") {
        out = Value(pyCapitalize(s));
        return true;
    }
    if (name == "swapcase") {
        out = Value(pySwapCase(s));
        return true;
    }
    if (name == "count") {
        const Value *sub = arg(a, 0, "sub");
        if (!sub)
            throwType("count() takes at least 1 argument (0 given)");
        requireString(*sub, "count() argument");
        out = Value(int64_t(pyCount(s, sub->str())));
        return true;
    }
    if (name == "find" || name == "rfind" || name == "index" || name == "rindex") {
        const Value *sub = arg(a, 0, "sub");
        if (!sub)
            throwType(name + "() takes at least 1 argument (0 given)");
        requireString(*sub, "must be str");
        const long long k = pyFind(s, sub->str(), name[0] == 'r');
        if (k < 0 && (name == "index" || name == "rindex"))
            throwValue("substring not found");
        out = Value(int64_t(k));
        return true;
    }
    if (name == "join") {
        const Value *it = arg(a, 0, "iterable");
        if (!it)
            throwType("join() takes exactly one argument (0 given)");
        std::string res;
        bool first = true;
        for (const Value &v : r.iterate(*it)) {
            if (!v.isString())
                throwType("sequence item: expected str instance, " + v.typeName() + " found");
            if (!first)
                res += s;
            first = false;
            res += v.str();
            r.checkSize(res.size());
        }
        out = Value(std::move(res));
        return true;
    }
    if (name == "format") {
        out = Value(strFormat(r, s, a));
        return true;
    }
    if (name == "center" || name == "ljust" || name == "rjust" || name == "zfill") {
        const int64_t width = argInt(a, 0, "width", 0);
        r.checkSize(size_t(std::max<int64_t>(0, width)));
        const std::string fill = name == "zfill" ? "0" : argStr(a, 1, "fillchar", " ");
        const int64_t len = int64_t(codePointLength(s));
        if (width <= len) {
            out = Value(s);
            return true;
        }
        std::string pad;
        for (int64_t i = 0; i < width - len; ++i)
            pad += fill;
        if (name == "center")
            out = Value(centerStr(s, width, fill));
        else if (name == "ljust")
            out = Value(s + pad);
        else if (name == "rjust")
            out = Value(pad + s);
        else if (!s.empty() && (s[0] == '+' || s[0] == '-'))
            out = Value(s.substr(0, 1) + pad + s.substr(1));
        else
            out = Value(pad + s);
        return true;
    }
    if (name == "removeprefix" || name == "removesuffix") {
        const Value *x = arg(a, 0, "prefix");
        if (!x)
            throwType(name + "() takes exactly one argument (0 given)");
        requireString(*x, name.c_str());
        const std::string &p = x->str();
        if (name == "removeprefix")
            out = Value(s.compare(0, p.size(), p) == 0 && p.size() <= s.size() ? s.substr(p.size()) : s);
        else
            out = Value(p.size() <= s.size() && s.compare(s.size() - p.size(), p.size(), p) == 0
                            ? s.substr(0, s.size() - p.size())
                            : s);
        return true;
    }
    if (name == "partition" || name == "rpartition") {
        const Value *x = arg(a, 0, "sep");
        if (!x)
            throwType(name + "() takes exactly one argument (0 given)");
        requireString(*x, name.c_str());
        if (x->str().empty())
            throwValue("empty separator");
        const size_t k = name == "partition" ? s.find(x->str()) : s.rfind(x->str());
        if (k == std::string::npos)
            out = name == "partition" ? Value::list({ Value(s), Value(""), Value("") }, true)
                                      : Value::list({ Value(""), Value(""), Value(s) }, true);
        else
            out = Value::list({ Value(s.substr(0, k)), Value(x->str()), Value(s.substr(k + x->str().size())) }, true);
        return true;
    }
    auto allOf = [&](auto pred) {
        const auto cps = toCodePoints(s);
        if (cps.empty())
            return false;
        for (uint32_t cp : cps)
            if (!pred(cp))
                return false;
        return true;
    };
    if (name == "isdigit" || name == "isnumeric" || name == "isdecimal") {
        out = Value::boolean(allOf(pyIsDigit));
        return true;
    }
    if (name == "isalpha") {
        out = Value::boolean(allOf(pyIsAlpha));
        return true;
    }
    if (name == "isalnum") {
        out = Value::boolean(allOf(pyIsAlnum));
        return true;
    }
    if (name == "isspace") {
        out = Value::boolean(allOf(pyIsSpace));
        return true;
    }
    if (name == "islower" || name == "isupper") {
        out = Value::boolean(hasCased(s, name == "islower"));
        return true;
    }
    return false;
}

bool dictMethod(Renderer &r, const Value &obj, const std::string &name, CallArgs &a, Value &out)
{
    const Dict &d = obj.dictData();
    if (name == "items") {
        CallArgs none;
        out = fItems(r, obj, none);
        return true;
    }
    if (name == "keys" || name == "values") {
        std::vector<Value> v;
        for (const auto &kv : d.items())
            v.push_back(name == "keys" ? kv.first : kv.second);
        r.charge(int64_t(v.size()));
        out = Value::list(std::move(v));
        return true;
    }
    if (name == "get") {
        if (a.positional.empty())
            throwType("get expected at least 1 argument, got 0");
        const Value *v = d.find(a.positional[0]);
        out = v ? *v : (a.positional.size() > 1 ? a.positional[1] : Value::none());
        return true;
    }
    if (name == "copy") {
        out = obj;
        return true;
    }
    return false;
}

bool listMethod(Renderer &r, const Value &obj, const std::string &name, CallArgs &a, Value &out)
{
    if (name == "index") {
        if (a.positional.empty())
            throwType("index expected at least 1 argument, got 0");
        const auto &items = obj.items();
        r.charge(int64_t(items.size()));
        for (size_t i = 0; i < items.size(); ++i)
            if (valuesEqual(items[i], a.positional[0])) {
                out = Value(int64_t(i));
                return true;
            }
        throwValue(toRepr(a.positional[0]) + " is not in list");
    }
    if (name == "count") {
        if (a.positional.empty())
            throwType("count() takes exactly one argument (0 given)");
        int64_t n = 0;
        for (const Value &v : obj.items())
            if (valuesEqual(v, a.positional[0]))
                ++n;
        out = Value(n);
        return true;
    }
    if (name == "copy" && !obj.isTuple()) {
        out = obj;
        return true;
    }
    return false;
}

const char *const kStringMethods[] = { "strip", "lstrip", "rstrip", "split", "rsplit", "splitlines", "startswith",
                                       "endswith", "replace", "upper", "lower", "casefold", "title", "capitalize",
                                       "swapcase", "count", "find", "rfind", "index", "rindex", "join", "format",
                                       "center", "ljust", "rjust", "zfill", "removeprefix", "removesuffix",
                                       "partition", "rpartition", "isdigit", "isnumeric", "isdecimal", "isalpha",
                                       "isalnum", "isspace", "islower", "isupper" };
const char *const kDictMethods[] = { "items", "keys", "values", "get", "copy" };
const char *const kDictUnsafe[] = { "pop", "popitem", "clear", "update", "setdefault" };
const char *const kListMethods[] = { "index", "count", "copy" };
const char *const kListUnsafe[] = { "append", "extend", "insert", "pop", "remove", "reverse", "sort", "clear" };

template <size_t N>
bool inList(const char *const (&list)[N], const std::string &name)
{
    for (const char *s : list)
        if (name == s)
            return true;
    return false;
}

} // namespace

FilterFn findFilter(const std::string &name)
{
    const auto &t = filterTable();
    auto it = t.find(name);
    return it == t.end() ? nullptr : it->second;
}

TestFn findTest(const std::string &name)
{
    const auto &t = testTable();
    auto it = t.find(name);
    return it == t.end() ? nullptr : it->second;
}

Value findGlobal(const std::string &name)
{
    static const std::unordered_map<std::string, Value> globals = [] {
        std::unordered_map<std::string, Value> g;
        auto add = [&](const char *n, BuiltinFunction::Fn fn) {
            g.emplace(n, Value::object(std::make_shared<BuiltinFunction>(n, std::move(fn))));
        };
        add("range", gRange);
        add("namespace", gNamespace);
        add("dict", gDict);
        add("raise_exception", gRaiseException);
        add("strftime_now", gStrftimeNow);
        add("cycler", gCycler);
        add("joiner", gJoiner);
        return g;
    }();
    auto it = globals.find(name);
    return it == globals.end() ? Value() : it->second;
}

bool isMethodName(const Value &obj, const std::string &name, bool &unsafe)
{
    unsafe = false;
    if (obj.isString())
        return inList(kStringMethods, name);
    if (obj.isDict()) {
        if (inList(kDictUnsafe, name)) {
            unsafe = true;
            return true;
        }
        return inList(kDictMethods, name);
    }
    if (obj.isList()) {
        if (!obj.isTuple() && inList(kListUnsafe, name)) {
            unsafe = true;
            return true;
        }
        return inList(kListMethods, name) && !(obj.isTuple() && name == "copy");
    }
    return false;
}

bool callMethod(Renderer &r, const Value &obj, const std::string &name, CallArgs &args, Value &result)
{
    if (obj.isString())
        return stringMethod(r, obj, name, args, result);
    if (obj.isDict())
        return dictMethod(r, obj, name, args, result);
    if (obj.isList())
        return listMethod(r, obj, name, args, result);
    return false;
}

std::string percentFormat(Renderer &r, const std::string &fmt, const Value &args)
{
    std::vector<Value> positional;
    const Value *mapping = nullptr;
    if (args.isTuple())
        positional = args.items();
    else if (args.isDict())
        mapping = &args;
    else
        positional.push_back(args);
    if (args.isDict())
        positional.push_back(args);
    size_t next = 0;
    bool usedMapping = false;
    std::string out;
    for (size_t i = 0; i < fmt.size(); ++i) {
        if (fmt[i] != '%') {
            out += fmt[i];
            continue;
        }
        ++i;
        if (i >= fmt.size())
            throwValue("incomplete format");
        Value value;
        bool haveValue = false;
        if (fmt[i] == '(') {
            const size_t close = fmt.find(')', i);
            if (close == std::string::npos)
                throwValue("incomplete format key");
            if (!mapping)
                throwType("format requires a mapping");
            const Value *v = mapping->dictData().find(Value(fmt.substr(i + 1, close - i - 1)));
            if (!v)
                throwValue("KeyError: '" + fmt.substr(i + 1, close - i - 1) + "'");
            value = *v;
            haveValue = true;
            usedMapping = true;
            i = close + 1;
        }
        std::string flags;
        while (i < fmt.size() && std::string("-+ #0").find(fmt[i]) != std::string::npos)
            flags += fmt[i++];
        std::string width, prec;
        while (i < fmt.size() && std::isdigit(static_cast<unsigned char>(fmt[i])))
            width += fmt[i++];
        if (i < fmt.size() && fmt[i] == '.') {
            ++i;
            prec = "";
            while (i < fmt.size() && std::isdigit(static_cast<unsigned char>(fmt[i])))
                prec += fmt[i++];
            if (prec.empty())
                prec = "0";
        }
        if (i >= fmt.size())
            throwValue("incomplete format");
        const char type = fmt[i];
        if (type == '%') {
            out += '%';
            continue;
        }
        if (!haveValue) {
            if (next >= positional.size() || (mapping && !args.isTuple() && next > 0))
                throwType("not enough arguments for format string");
            value = positional[next++];
        }
        Spec sp;
        if (!width.empty()) {
            if (width.size() > 6)
                throwValue("format width too large");
            sp.width = std::stoll(width);
        }
        if (flags.find('-') != std::string::npos)
            sp.align = '<';
        else if (flags.find('0') != std::string::npos && type != 's' && type != 'r')
            sp.zero = true;
        if (flags.find('+') != std::string::npos)
            sp.sign = '+';
        else if (flags.find(' ') != std::string::npos)
            sp.sign = ' ';
        std::string piece;
        switch (type) {
        case 's':
        case 'r':
        case 'a': {
            std::string s = type == 's' ? toStr(value) : toRepr(value);
            if (!prec.empty()) {
                auto cps = toCodePoints(s);
                s = fromCodePoints(cps, 0, size_t(std::stoll(prec)));
            }
            piece = padTo(s, "", sp, '>');
            break;
        }
        case 'd':
        case 'i':
        case 'u':
        case 'x':
        case 'X':
        case 'o': {
            if (!value.isNumber())
                throwType(std::string("%") + type + " format: a real number is required, not " + value.typeName());
            const Value iv(value.isFloat() ? int64_t(value.asDouble()) : value.asInt());
            sp.type = (type == 'd' || type == 'i' || type == 'u') ? 'd' : type;
            sp.alt = flags.find('#') != std::string::npos;
            piece = formatValue(iv, "");
            {
                // reuse the integer formatter through a spec
                Spec s2 = sp;
                std::string body;
                int64_t n = iv.asInt();
                uint64_t mag = n < 0 ? uint64_t(0) - uint64_t(n) : uint64_t(n);
                const int base = (type == 'x' || type == 'X') ? 16 : (type == 'o' ? 8 : 10);
                if (mag == 0)
                    body = "0";
                while (mag) {
                    const int dgt = int(mag % uint64_t(base));
                    body.insert(body.begin(), char(dgt < 10 ? '0' + dgt : (type == 'X' ? 'A' : 'a') + dgt - 10));
                    mag /= uint64_t(base);
                }
                std::string prefix = n < 0 ? "-" : (s2.sign == '+' ? "+" : (s2.sign == ' ' ? " " : ""));
                if (s2.alt && base != 10)
                    prefix += base == 16 ? (type == 'X' ? "0X" : "0x") : "0o";
                piece = padTo(body, prefix, s2, '>');
            }
            break;
        }
        case 'f':
        case 'F':
        case 'e':
        case 'E':
        case 'g':
        case 'G': {
            if (!value.isNumber())
                throwType("must be real number, not " + value.typeName());
            sp.precision = prec.empty() ? 6 : std::stoll(prec);
            const double x = value.asDouble();
            std::string body = formatFloatBody(std::fabs(x), sp, type);
            const std::string prefix = std::signbit(x) ? "-" : (sp.sign == '+' ? "+" : (sp.sign == ' ' ? " " : ""));
            piece = padTo(body, prefix, sp, '>');
            break;
        }
        case 'c': {
            if (value.isString())
                piece = value.str();
            else
                appendCodePoint(piece, uint32_t(value.asInt()));
            piece = padTo(piece, "", sp, '>');
            break;
        }
        default: throwValue(std::string("unsupported format character '") + type + "'");
        }
        out += piece;
        r.checkSize(out.size());
    }
    if (!usedMapping && !mapping && next < positional.size())
        throwType("not all arguments converted during string formatting");
    return out;
}

std::string strFormat(Renderer &r, const std::string &fmt, CallArgs &args)
{
    std::string out;
    size_t autoIndex = 0;
    for (size_t i = 0; i < fmt.size(); ++i) {
        const char c = fmt[i];
        if (c == '}') {
            if (i + 1 < fmt.size() && fmt[i + 1] == '}') {
                out += '}';
                ++i;
                continue;
            }
            throwValue("Single '}' encountered in format string");
        }
        if (c != '{') {
            out += c;
            continue;
        }
        if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
            out += '{';
            ++i;
            continue;
        }
        // find matching '}' (nested braces in the spec are not supported)
        const size_t close = fmt.find('}', i + 1);
        if (close == std::string::npos)
            throwValue("Single '{' encountered in format string");
        std::string field = fmt.substr(i + 1, close - i - 1);
        i = close;
        std::string spec, conv;
        const size_t colon = field.find(':');
        if (colon != std::string::npos) {
            spec = field.substr(colon + 1);
            field = field.substr(0, colon);
        }
        const size_t bang = field.find('!');
        if (bang != std::string::npos) {
            conv = field.substr(bang + 1);
            field = field.substr(0, bang);
        }
        // field: name or index, then .attr / [key] parts
        size_t p = 0;
        while (p < field.size() && field[p] != '.' && field[p] != '[')
            ++p;
        const std::string head = field.substr(0, p);
        Value v;
        if (head.empty()) {
            if (autoIndex >= args.positional.size())
                throw EvalError(EvalError::Kind::Value,
                                "Replacement index " + std::to_string(autoIndex) + " out of range for positional args tuple");
            v = args.positional[autoIndex++];
        } else if (std::all_of(head.begin(), head.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) {
            const size_t idx = size_t(std::stoull(head));
            if (idx >= args.positional.size())
                throwValue("Replacement index " + head + " out of range for positional args tuple");
            v = args.positional[idx];
        } else {
            const Value *kv = args.kw(head);
            if (!kv)
                throwValue("KeyError: '" + head + "'");
            v = *kv;
        }
        while (p < field.size()) {
            if (field[p] == '.') {
                size_t e = p + 1;
                while (e < field.size() && field[e] != '.' && field[e] != '[')
                    ++e;
                v = r.getAttr(v, field.substr(p + 1, e - p - 1));
                p = e;
            } else {
                const size_t e = field.find(']', p);
                if (e == std::string::npos)
                    throwValue("Missing ']' in format string");
                const std::string key = field.substr(p + 1, e - p - 1);
                const bool isNum = !key.empty() && std::all_of(key.begin(), key.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
                v = r.getItem(v, isNum ? Value(int64_t(std::stoll(key))) : Value(key));
                p = e + 1;
            }
        }
        if (conv == "r" || conv == "a")
            v = Value(toRepr(v));
        else if (conv == "s")
            v = Value(toStr(v));
        else if (!conv.empty())
            throwValue("Unknown conversion specifier " + conv);
        out += formatValue(v, spec);
        r.checkSize(out.size());
    }
    return out;
}

} // namespace dpo::jinja
