// Python text rules for the Jinja engine (see jinja_pystr.h for what is and is not covered).
#include "engine/chat/jinja_pystr.h"

#include "engine/tokenizers/utf8.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace dpo::jinja {

std::vector<uint32_t> toCodePoints(std::string_view s)
{
    std::vector<uint32_t> out;
    out.reserve(s.size());
    size_t i = 0;
    const size_t n = s.size();
    while (i < n) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            out.push_back(c);
            ++i;
            continue;
        }
        int len = 0;
        uint32_t cp = 0;
        if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07;
        } else {
            out.push_back(0xFFFD);
            ++i;
            continue;
        }
        if (i + len > n) {
            out.push_back(0xFFFD);
            ++i;
            continue;
        }
        bool ok = true;
        for (int k = 1; k < len; ++k) {
            const unsigned char cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xC0) != 0x80) {
                ok = false;
                break;
            }
            cp = (cp << 6) | (cc & 0x3F);
        }
        if (!ok) {
            out.push_back(0xFFFD);
            ++i;
            continue;
        }
        out.push_back(cp);
        i += len;
    }
    return out;
}

void appendCodePoint(std::string &out, uint32_t cp)
{
    // The tokenizers' encoder: same bytes for every code point, surrogates included.
    dpo::appendUtf8(out, cp);
}

std::string fromCodePoints(const std::vector<uint32_t> &cps, size_t begin, size_t end)
{
    std::string out;
    end = std::min(end, cps.size());
    for (size_t i = begin; i < end; ++i)
        appendCodePoint(out, cps[i]);
    return out;
}

bool isAscii(std::string_view s)
{
    for (char c : s)
        if (static_cast<unsigned char>(c) >= 0x80)
            return false;
    return true;
}

size_t codePointLength(std::string_view s)
{
    size_t n = 0;
    for (char c : s)
        if ((static_cast<unsigned char>(c) & 0xC0) != 0x80)
            ++n;
    return n;
}

bool isValidUtf8Text(std::string_view s)
{
    size_t i = 0;
    const size_t n = s.size();
    while (i < n) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            ++i;
            continue;
        }
        int len;
        uint32_t cp, minCp;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            cp = c & 0x1F;
            minCp = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
            minCp = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            cp = c & 0x07;
            minCp = 0x10000;
        } else {
            return false;
        }
        if (i + len > n)
            return false;
        for (int k = 1; k < len; ++k) {
            const unsigned char cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (cc & 0x3F);
        }
        if (cp < minCp || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

bool pyIsSpace(uint32_t cp)
{
    if (cp < 0x80)
        return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20);
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
        cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

bool pyIsLineBreak(uint32_t cp)
{
    return cp == '\n' || cp == '\r' || cp == 0x0B || cp == 0x0C || cp == 0x1C || cp == 0x1D || cp == 0x1E ||
        cp == 0x85 || cp == 0x2028 || cp == 0x2029;
}

uint32_t pyUpperSimple(uint32_t cp)
{
    if (cp < 0x80)
        return (cp >= 'a' && cp <= 'z') ? cp - 32 : cp;
    if (cp == 0xB5)
        return 0x39C;
    if ((cp >= 0xE0 && cp <= 0xFE && cp != 0xF7))
        return cp - 32;
    if (cp == 0xFF)
        return 0x178;
    if (cp >= 0x100 && cp <= 0x17F) {
        if (cp == 0x131)
            return 'I';
        if (cp == 0x17F)
            return 'S';
        if (cp == 0x130 || cp == 0x138 || cp == 0x149 || cp == 0x178)
            return cp;
        if ((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17E))
            return (cp % 2 == 0) ? cp - 1 : cp;
        return (cp % 2 == 1) ? cp - 1 : cp;
    }
    if (cp >= 0x3B1 && cp <= 0x3C9 && cp != 0x3C2)
        return cp - 32;
    if (cp == 0x3C2)
        return 0x3A3;
    if (cp >= 0x3AC && cp <= 0x3AF) {
        static const uint32_t map[] = { 0x386, 0x388, 0x389, 0x38A };
        return map[cp - 0x3AC];
    }
    if (cp == 0x3CC)
        return 0x38C;
    if (cp == 0x3CD || cp == 0x3CE)
        return cp - 0x3CD + 0x38E;
    if (cp >= 0x430 && cp <= 0x44F)
        return cp - 32;
    if (cp >= 0x450 && cp <= 0x45F)
        return cp - 80;
    if (cp >= 0x460 && cp <= 0x4FF && cp != 0x482 && !(cp >= 0x483 && cp <= 0x489))
        return (cp % 2 == 1) ? cp - 1 : cp; // approximate: paired Cyrillic supplement letters
    if (cp >= 0xFF41 && cp <= 0xFF5A)
        return cp - 32;
    return cp;
}

uint32_t pyLowerSimple(uint32_t cp)
{
    if (cp < 0x80)
        return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
    if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7)
        return cp + 32;
    if (cp == 0x178)
        return 0xFF;
    if (cp >= 0x100 && cp <= 0x17F) {
        if (cp == 0x130)
            return 'i'; // Python gives "i̇" (two code points); approximated
        if (cp == 0x131 || cp == 0x138 || cp == 0x149 || cp == 0x17F)
            return cp;
        if ((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17E))
            return (cp % 2 == 1) ? cp + 1 : cp;
        return (cp % 2 == 0) ? cp + 1 : cp;
    }
    if (cp >= 0x391 && cp <= 0x3A9 && cp != 0x3A2)
        return cp + 32;
    if (cp == 0x386)
        return 0x3AC;
    if (cp >= 0x388 && cp <= 0x38A)
        return cp - 0x388 + 0x3AD;
    if (cp == 0x38C)
        return 0x3CC;
    if (cp == 0x38E || cp == 0x38F)
        return cp - 0x38E + 0x3CD;
    if (cp >= 0x410 && cp <= 0x42F)
        return cp + 32;
    if (cp >= 0x400 && cp <= 0x40F)
        return cp + 80;
    if (cp >= 0x460 && cp <= 0x4FF && cp != 0x482 && !(cp >= 0x483 && cp <= 0x489))
        return (cp % 2 == 0) ? cp + 1 : cp;
    if (cp >= 0xFF21 && cp <= 0xFF3A)
        return cp + 32;
    return cp;
}

bool pyIsCased(uint32_t cp)
{
    return pyUpperSimple(cp) != cp || pyLowerSimple(cp) != cp || cp == 0xDF;
}

bool pyIsDigit(uint32_t cp)
{
    return (cp >= '0' && cp <= '9') || (cp >= 0x660 && cp <= 0x669) || (cp >= 0xFF10 && cp <= 0xFF19);
}

bool pyIsAlpha(uint32_t cp)
{
    if (cp < 0x80)
        return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
    if (pyIsCased(cp))
        return true;
    // Letters of uncased scripts (CJK, kana, Hangul, Arabic, Hebrew, Indic ...): approximated by range.
    return (cp >= 0xAA && cp != 0xD7 && cp != 0xF7 && cp >= 0xC0 && cp < 0x2000) || (cp >= 0x3040 && cp <= 0x9FFF) ||
        (cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0x20000 && cp <= 0x3134F) || cp == 0xAA || cp == 0xBA;
}

bool pyIsAlnum(uint32_t cp)
{
    return pyIsAlpha(cp) || pyIsDigit(cp);
}

namespace {

template <typename F>
std::string mapCodePoints(std::string_view s, F f)
{
    std::string out;
    out.reserve(s.size());
    if (isAscii(s)) {
        for (char c : s)
            out += char(f(uint32_t(static_cast<unsigned char>(c))));
        return out;
    }
    for (uint32_t cp : toCodePoints(s))
        appendCodePoint(out, f(cp));
    return out;
}

void appendUpper(std::string &out, uint32_t cp)
{
    if (cp == 0xDF) { // ß -> SS, as Python's full case mapping
        out += "SS";
        return;
    }
    appendCodePoint(out, pyUpperSimple(cp));
}

} // namespace

std::string pyUpper(std::string_view s)
{
    if (isAscii(s))
        return mapCodePoints(s, pyUpperSimple);
    std::string out;
    for (uint32_t cp : toCodePoints(s))
        appendUpper(out, cp);
    return out;
}

std::string pyLower(std::string_view s)
{
    return mapCodePoints(s, pyLowerSimple);
}

std::string pySwapCase(std::string_view s)
{
    std::string out;
    for (uint32_t cp : toCodePoints(s)) {
        if (pyUpperSimple(cp) != cp)
            appendUpper(out, cp);
        else
            appendCodePoint(out, pyLowerSimple(cp));
    }
    return out;
}

std::string pyTitle(std::string_view s)
{
    std::string out;
    bool prevCased = false;
    for (uint32_t cp : toCodePoints(s)) {
        const bool cased = pyIsCased(cp);
        if (cased) {
            if (prevCased)
                appendCodePoint(out, pyLowerSimple(cp));
            else if (cp == 0xDF)
                out += "Ss";
            else
                appendCodePoint(out, pyUpperSimple(cp));
        } else {
            appendCodePoint(out, cp);
        }
        prevCased = cased;
    }
    return out;
}

std::string pyCapitalize(std::string_view s)
{
    std::string out;
    bool first = true;
    for (uint32_t cp : toCodePoints(s)) {
        if (first) {
            if (cp == 0xDF)
                out += "Ss";
            else
                appendCodePoint(out, pyUpperSimple(cp));
            first = false;
        } else {
            appendCodePoint(out, pyLowerSimple(cp));
        }
    }
    return out;
}

std::string pyStrip(std::string_view s, const std::string *chars, bool left, bool right)
{
    std::vector<uint32_t> strip;
    if (chars)
        strip = toCodePoints(*chars);
    auto isStrip = [&](uint32_t cp) {
        if (!chars)
            return pyIsSpace(cp);
        for (uint32_t c : strip)
            if (c == cp)
                return true;
        return false;
    };
    if (isAscii(s) && (!chars || isAscii(*chars))) {
        size_t b = 0, e = s.size();
        if (left)
            while (b < e && isStrip(static_cast<unsigned char>(s[b])))
                ++b;
        if (right)
            while (e > b && isStrip(static_cast<unsigned char>(s[e - 1])))
                --e;
        return std::string(s.substr(b, e - b));
    }
    const std::vector<uint32_t> cps = toCodePoints(s);
    size_t b = 0, e = cps.size();
    if (left)
        while (b < e && isStrip(cps[b]))
            ++b;
    if (right)
        while (e > b && isStrip(cps[e - 1]))
            --e;
    return fromCodePoints(cps, b, e);
}

std::vector<std::string> pySplit(std::string_view s, const std::string *sep, long long maxsplit)
{
    std::vector<std::string> out;
    if (sep) {
        if (sep->empty())
            throw std::invalid_argument("empty separator");
        size_t pos = 0;
        while (maxsplit < 0 || (long long)out.size() < maxsplit) {
            const size_t k = s.find(*sep, pos);
            if (k == std::string_view::npos)
                break;
            out.emplace_back(s.substr(pos, k - pos));
            pos = k + sep->size();
        }
        out.emplace_back(s.substr(pos));
        return out;
    }
    const std::vector<uint32_t> cps = toCodePoints(s);
    size_t i = 0;
    const size_t n = cps.size();
    while (true) {
        while (i < n && pyIsSpace(cps[i]))
            ++i;
        if (i >= n)
            break;
        if (maxsplit >= 0 && (long long)out.size() == maxsplit) {
            size_t e = n;
            while (e > i && pyIsSpace(cps[e - 1]))
                --e;
            out.push_back(fromCodePoints(cps, i, e));
            break;
        }
        size_t j = i;
        while (j < n && !pyIsSpace(cps[j]))
            ++j;
        out.push_back(fromCodePoints(cps, i, j));
        i = j;
    }
    return out;
}

std::vector<std::string> pyRSplit(std::string_view s, const std::string *sep, long long maxsplit)
{
    if (maxsplit < 0)
        return pySplit(s, sep, maxsplit);
    std::vector<std::string> out;
    if (sep) {
        if (sep->empty())
            throw std::invalid_argument("empty separator");
        size_t end = s.size();
        while ((long long)out.size() < maxsplit) {
            if (end < sep->size())
                break;
            const size_t k = s.rfind(*sep, end - sep->size());
            if (k == std::string_view::npos)
                break;
            out.emplace_back(s.substr(k + sep->size(), end - k - sep->size()));
            end = k;
        }
        out.emplace_back(s.substr(0, end));
        return std::vector<std::string>(out.rbegin(), out.rend());
    }
    const std::vector<uint32_t> cps = toCodePoints(s);
    long long e = (long long)cps.size();
    while (true) {
        while (e > 0 && pyIsSpace(cps[e - 1]))
            --e;
        if (e <= 0)
            break;
        if ((long long)out.size() == maxsplit) {
            size_t b = 0;
            while ((long long)b < e && pyIsSpace(cps[b]))
                ++b;
            out.push_back(fromCodePoints(cps, b, e));
            break;
        }
        long long j = e;
        while (j > 0 && !pyIsSpace(cps[j - 1]))
            --j;
        out.push_back(fromCodePoints(cps, j, e));
        e = j;
    }
    return std::vector<std::string>(out.rbegin(), out.rend());
}

std::vector<std::string> pySplitLines(std::string_view s, bool keepEnds)
{
    std::vector<std::string> out;
    const std::vector<uint32_t> cps = toCodePoints(s);
    size_t i = 0, start = 0;
    const size_t n = cps.size();
    while (i < n) {
        if (pyIsLineBreak(cps[i])) {
            size_t eol = i + 1;
            if (cps[i] == '\r' && i + 1 < n && cps[i + 1] == '\n')
                eol = i + 2;
            out.push_back(fromCodePoints(cps, start, keepEnds ? eol : i));
            start = i = eol;
        } else {
            ++i;
        }
    }
    if (start < n)
        out.push_back(fromCodePoints(cps, start, n));
    return out;
}

std::string pyReplace(std::string_view s, std::string_view from, std::string_view to, long long count,
                      size_t maxBytes)
{
    std::string out;
    auto check = [&] {
        if (out.size() > maxBytes)
            throw std::length_error("string too long");
    };
    if (from.empty()) {
        // Python inserts `to` between every code point and at both ends.
        const std::vector<uint32_t> cps = toCodePoints(s);
        long long done = 0;
        for (size_t i = 0; i <= cps.size(); ++i) {
            if (count < 0 || done < count) {
                out += to;
                ++done;
            }
            if (i < cps.size())
                appendCodePoint(out, cps[i]);
            check();
        }
        return out;
    }
    size_t pos = 0;
    long long done = 0;
    while (count < 0 || done < count) {
        const size_t k = s.find(from, pos);
        if (k == std::string_view::npos)
            break;
        out.append(s.substr(pos, k - pos));
        out.append(to);
        check();
        pos = k + from.size();
        ++done;
    }
    out.append(s.substr(pos));
    check();
    return out;
}

long long pyCount(std::string_view s, std::string_view sub)
{
    if (sub.empty())
        return (long long)codePointLength(s) + 1;
    long long n = 0;
    size_t pos = 0;
    while ((pos = s.find(sub, pos)) != std::string_view::npos) {
        ++n;
        pos += sub.size();
    }
    return n;
}

long long pyFind(std::string_view s, std::string_view sub, bool last)
{
    const size_t k = last ? s.rfind(sub) : s.find(sub);
    if (k == std::string_view::npos)
        return -1;
    return (long long)codePointLength(s.substr(0, k));
}

namespace {

bool pyPrintable(uint32_t cp)
{
    if (cp < 0x20 || cp == 0x7F)
        return false;
    if (cp < 0x80)
        return true;
    if (cp <= 0xA0 || cp == 0xAD)
        return false;
    if ((cp >= 0x600 && cp <= 0x605) || cp == 0x61C || cp == 0x6DD || cp == 0x70F || cp == 0x180E)
        return false;
    if (cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202F) ||
        (cp >= 0x205F && cp <= 0x206F) || cp == 0x3000)
        return false;
    if ((cp >= 0xD800 && cp <= 0xF8FF) || cp == 0xFEFF || (cp >= 0xFFF0 && cp <= 0xFFFB) || cp == 0xFFFE ||
        cp == 0xFFFF)
        return false;
    if (cp >= 0xE0000 || (cp >= 0x1D173 && cp <= 0x1D17A) || cp == 0x110BD || cp == 0x110CD)
        return false;
    return true;
}

} // namespace

std::string pyReprString(std::string_view s)
{
    const bool hasSingle = s.find('\'') != std::string_view::npos;
    const bool hasDouble = s.find('"') != std::string_view::npos;
    const char quote = (hasSingle && !hasDouble) ? '"' : '\'';
    std::string out;
    out.reserve(s.size() + 2);
    out += quote;
    char buf[16];
    for (uint32_t cp : toCodePoints(s)) {
        if (cp == uint32_t(quote) || cp == '\\') {
            out += '\\';
            out += char(cp);
        } else if (cp == '\n') {
            out += "\\n";
        } else if (cp == '\r') {
            out += "\\r";
        } else if (cp == '\t') {
            out += "\\t";
        } else if (pyPrintable(cp)) {
            appendCodePoint(out, cp);
        } else if (cp < 0x100) {
            std::snprintf(buf, sizeof buf, "\\x%02x", cp);
            out += buf;
        } else if (cp < 0x10000) {
            std::snprintf(buf, sizeof buf, "\\u%04x", cp);
            out += buf;
        } else {
            std::snprintf(buf, sizeof buf, "\\U%08x", cp);
            out += buf;
        }
    }
    out += quote;
    return out;
}

std::string pyReprFloat(double v)
{
    if (std::isnan(v))
        return "nan";
    if (std::isinf(v))
        return v < 0 ? "-inf" : "inf";
    if (v == 0)
        return std::signbit(v) ? "-0.0" : "0.0";
    // Shortest digit string that reads back to the same double.
    char buf[64];
    int prec = 1;
    for (; prec <= 17; ++prec) {
        std::snprintf(buf, sizeof buf, "%.*e", prec - 1, v);
        if (std::strtod(buf, nullptr) == v)
            break;
    }
    // buf: [-]d[.ddd]e[+-]XX
    std::string text(buf);
    const bool neg = text[0] == '-';
    if (neg)
        text.erase(0, 1);
    const size_t ePos = text.find('e');
    std::string digits;
    for (size_t i = 0; i < ePos; ++i)
        if (text[i] != '.')
            digits += text[i];
    while (digits.size() > 1 && digits.back() == '0')
        digits.pop_back();
    const int exp10 = std::atoi(text.c_str() + ePos + 1);
    const int decpt = exp10 + 1; // value = 0.DIGITS * 10^decpt
    std::string out = neg ? "-" : "";
    if (decpt > 16 || decpt < -3) {
        out += digits[0];
        if (digits.size() > 1) {
            out += '.';
            out += digits.substr(1);
        }
        std::snprintf(buf, sizeof buf, "e%c%02d", exp10 < 0 ? '-' : '+', std::abs(exp10));
        out += buf;
    } else if (decpt <= 0) {
        out += "0.";
        out.append(size_t(-decpt), '0');
        out += digits;
    } else if (size_t(decpt) >= digits.size()) {
        out += digits;
        out.append(size_t(decpt) - digits.size(), '0');
        out += ".0";
    } else {
        out += digits.substr(0, size_t(decpt));
        out += '.';
        out += digits.substr(size_t(decpt));
    }
    return out;
}

std::string jsonFloat(double v)
{
    if (std::isnan(v))
        return "NaN";
    if (std::isinf(v))
        return v < 0 ? "-Infinity" : "Infinity";
    return pyReprFloat(v);
}

} // namespace dpo::jinja
