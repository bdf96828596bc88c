// Jinja lexer: splits template text from tags and tokenises expressions inside tags. It follows
// jinja2 3.1's rules for whitespace control (see jinja_lexer.h).
#include "engine/chat/jinja_lexer.h"

#include "engine/chat/jinja_pystr.h"
#include "engine/error.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace dpo::jinja {

std::string describePos(const SourcePos &pos)
{
    return "line " + std::to_string(pos.line) + ", column " + std::to_string(pos.column);
}

std::string normalizeTemplateSource(const std::string &source, const LexerOptions &opts)
{
    std::string out;
    out.reserve(source.size());
    for (size_t i = 0; i < source.size(); ++i) {
        const char c = source[i];
        if (c == '\r') {
            out += '\n';
            if (i + 1 < source.size() && source[i + 1] == '\n')
                ++i;
        } else {
            out += c;
        }
    }
    if (!opts.keepTrailingNewline && !out.empty() && out.back() == '\n')
        out.pop_back();
    return out;
}

namespace {

class Lexer {
public:
    Lexer(const std::string &src, const LexerOptions &opts) : m_src(src), m_opts(opts)
    {
        m_lineStarts.push_back(0);
        for (size_t i = 0; i < src.size(); ++i)
            if (src[i] == '\n')
                m_lineStarts.push_back(i + 1);
    }

    std::vector<Token> run();

private:
    // Line and column (1-based, in code points) of a byte offset. Offsets mostly grow, so the column
    // is counted on from the previous answer when it lies on the same line (no quadratic cost on
    // a long single-line template).
    SourcePos posOf(size_t offset) const
    {
        auto it = std::upper_bound(m_lineStarts.begin(), m_lineStarts.end(), offset);
        const size_t line = size_t(it - m_lineStarts.begin()); // 1-based
        const size_t start = m_lineStarts[line - 1];
        SourcePos p;
        p.line = int(line);
        if (m_cacheLine == line && m_cacheOffset <= offset) {
            p.column = m_cacheColumn +
                int(codePointLength(std::string_view(m_src).substr(m_cacheOffset, offset - m_cacheOffset)));
        } else {
            p.column = int(codePointLength(std::string_view(m_src).substr(start, offset - start))) + 1;
        }
        m_cacheLine = line;
        m_cacheOffset = offset;
        m_cacheColumn = p.column;
        return p;
    }

    [[noreturn]] void fail(size_t offset, const std::string &msg) const
    {
        throw Error("template syntax error at " + describePos(posOf(offset)) + ": " + msg);
    }

    bool startsWith(size_t pos, const char *s) const
    {
        const size_t len = std::strlen(s);
        return pos + len <= m_src.size() && m_src.compare(pos, len, s) == 0;
    }

    // Python whitespace (str.isspace) at byte offset `pos`; sets `len` to its byte length.
    bool spaceAt(size_t pos, size_t &len) const
    {
        const unsigned char c = static_cast<unsigned char>(m_src[pos]);
        if (c < 0x80) {
            len = 1;
            return pyIsSpace(c);
        }
        size_t i = pos;
        std::string_view rest = std::string_view(m_src).substr(pos, 4);
        auto cps = toCodePoints(rest);
        if (cps.empty())
            return false;
        std::string enc;
        appendCodePoint(enc, cps[0]);
        len = enc.size();
        (void)i;
        return pyIsSpace(cps[0]);
    }

    size_t skipSpaces(size_t pos) const
    {
        size_t len = 0;
        while (pos < m_src.size() && spaceAt(pos, len))
            pos += len;
        return pos;
    }

    void addText(std::string text, size_t offset)
    {
        if (text.empty())
            return;
        Token t;
        t.type = Token::Type::Text;
        t.text = std::move(text);
        t.pos = posOf(offset);
        m_tokens.push_back(std::move(t));
    }

    // Applies `{%-` (strip all trailing whitespace) or lstrip_blocks to the text before a tag.
    std::string stripBefore(std::string text, char kind, char mod) const
    {
        if (mod == '-')
            return pyStrip(text, nullptr, false, true);
        if (kind == '{' || mod == '+' || !m_opts.lstripBlocks)
            return text;
        const size_t nl = text.rfind('\n');
        const size_t lpos = nl == std::string::npos ? 0 : nl + 1;
        if (lpos > 0 || m_lineStarting) {
            for (size_t i = lpos; i < text.size(); ++i)
                if (text[i] != ' ' && text[i] != '\t')
                    return text;
            text.resize(lpos);
        }
        return text;
    }

    // Handles the end of a block/comment tag at `pos` (pointing at `-`, `+` or `%`/`#`).
    size_t afterTagEnd(size_t pos, size_t delimLen, bool blockLike)
    {
        const char c = m_src[pos];
        size_t end;
        if (c == '-') {
            end = skipSpaces(pos + 1 + delimLen);
        } else if (c == '+') {
            end = pos + 1 + delimLen;
        } else {
            end = pos + delimLen;
            if (blockLike && m_opts.trimBlocks && end < m_src.size() && m_src[end] == '\n')
                ++end;
        }
        m_lineStarting = end > 0 && m_src[end - 1] == '\n';
        return end;
    }

    bool matchRaw(size_t k, const char *word, size_t &contentStart, char &modBegin, char &modEnd) const;
    size_t lexTag(size_t pos, bool isBlock);
    size_t lexNumber(size_t pos);
    size_t lexString(size_t pos);

    const std::string &m_src;
    LexerOptions m_opts;
    std::vector<size_t> m_lineStarts;
    std::vector<Token> m_tokens;
    bool m_lineStarting = true;
    mutable size_t m_cacheLine = 0;
    mutable size_t m_cacheOffset = 0;
    mutable int m_cacheColumn = 1;
};

// Matches `{%[-+]?\s*WORD\s*[-+]?%}` at k; returns the offset after it.
bool Lexer::matchRaw(size_t k, const char *word, size_t &after, char &modBegin, char &modEnd) const
{
    if (!startsWith(k, "{%"))
        return false;
    size_t p = k + 2;
    modBegin = 0;
    if (p < m_src.size() && (m_src[p] == '-' || m_src[p] == '+'))
        modBegin = m_src[p++];
    p = skipSpaces(p);
    if (!startsWith(p, word))
        return false;
    p += std::strlen(word);
    if (p < m_src.size() && (std::isalnum(static_cast<unsigned char>(m_src[p])) || m_src[p] == '_'))
        return false;
    p = skipSpaces(p);
    modEnd = 0;
    if (p < m_src.size() && (m_src[p] == '-' || m_src[p] == '+'))
        modEnd = m_src[p++];
    if (!startsWith(p, "%}"))
        return false;
    after = p + 2;
    return true;
}

std::vector<Token> Lexer::run()
{
    size_t pos = 0;
    const size_t n = m_src.size();
    while (pos < n) {
        size_t k = pos;
        while (true) {
            k = m_src.find('{', k);
            if (k == std::string::npos || (k + 1 < n && (m_src[k + 1] == '{' || m_src[k + 1] == '%' ||
                                                           m_src[k + 1] == '#')))
                break;
            ++k;
        }
        if (k == std::string::npos) {
            addText(m_src.substr(pos), pos);
            break;
        }
        const char kind = m_src[k + 1];
        const char mod = k + 2 < n ? m_src[k + 2] : 0;
        std::string text = stripBefore(m_src.substr(pos, k - pos), kind, mod);
        addText(std::move(text), pos);

        size_t after = 0;
        char mb = 0, me = 0;
        if (kind == '%' && matchRaw(k, "raw", after, mb, me)) {
            size_t contentStart = after;
            if (me == '-')
                contentStart = skipSpaces(after);
            // find the endraw tag
            size_t search = contentStart;
            size_t endTag = std::string::npos, endAfter = 0;
            char eb = 0, ee = 0;
            while ((search = m_src.find("{%", search)) != std::string::npos) {
                if (matchRaw(search, "endraw", endAfter, eb, ee)) {
                    endTag = search;
                    break;
                }
                search += 2;
            }
            if (endTag == std::string::npos)
                fail(k, "missing end of raw directive");
            m_lineStarting = false;
            std::string raw = stripBefore(m_src.substr(contentStart, endTag - contentStart), '%', eb);
            addText(std::move(raw), contentStart);
            size_t end = endAfter;
            if (ee == '-')
                end = skipSpaces(endAfter);
            else if (ee != '+' && m_opts.trimBlocks && end < n && m_src[end] == '\n')
                ++end;
            m_lineStarting = end > 0 && m_src[end - 1] == '\n';
            pos = end;
            continue;
        }

        if (kind == '#') {
            const size_t e = m_src.find("#}", k + 2);
            if (e == std::string::npos)
                fail(k, "missing end of comment tag");
            size_t at = e;
            if (e > k + 2 && (m_src[e - 1] == '-' || m_src[e - 1] == '+'))
                at = e - 1;
            pos = afterTagEnd(at, 2, true);
            continue;
        }

        Token begin;
        begin.type = kind == '%' ? Token::Type::BlockBegin : Token::Type::VarBegin;
        begin.pos = posOf(k);
        m_tokens.push_back(begin);
        size_t p = k + 2;
        if (mod == '-' || mod == '+')
            ++p;
        pos = lexTag(p, kind == '%');
    }
    Token eof;
    eof.type = Token::Type::Eof;
    eof.pos = posOf(n);
    m_tokens.push_back(eof);
    return std::move(m_tokens);
}

size_t Lexer::lexTag(size_t pos, bool isBlock)
{
    const size_t n = m_src.size();
    std::vector<char> balance;
    const size_t tagStart = pos;
    while (true) {
        pos = skipSpaces(pos);
        if (pos >= n)
            fail(tagStart, std::string("unexpected end of template, expected end of ") +
                     (isBlock ? "block tag '%}'" : "print tag '}}'"));
        if (balance.empty()) {
            if (isBlock) {
                if (startsWith(pos, "-%}") || startsWith(pos, "+%}") || startsWith(pos, "%}")) {
                    Token t;
                    t.type = Token::Type::BlockEnd;
                    t.pos = posOf(pos);
                    m_tokens.push_back(t);
                    return afterTagEnd(pos, 2, true);
                }
            } else if (startsWith(pos, "-}}") || startsWith(pos, "}}")) {
                Token t;
                t.type = Token::Type::VarEnd;
                t.pos = posOf(pos);
                m_tokens.push_back(t);
                return afterTagEnd(pos, 2, false);
            }
        }
        const char c = m_src[pos];
        if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
            size_t e = pos + 1;
            while (e < n && (std::isalnum(static_cast<unsigned char>(m_src[e])) || m_src[e] == '_'))
                ++e;
            Token t;
            t.type = Token::Type::Name;
            t.text = m_src.substr(pos, e - pos);
            t.pos = posOf(pos);
            m_tokens.push_back(std::move(t));
            pos = e;
            continue;
        }
        if (std::isdigit(static_cast<unsigned char>(c))) {
            pos = lexNumber(pos);
            continue;
        }
        if (c == '\'' || c == '"') {
            pos = lexString(pos);
            continue;
        }
        static const char *ops[] = { "//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">",
                                     "=", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|", ";" };
        const char *found = nullptr;
        for (const char *op : ops)
            if (startsWith(pos, op)) {
                found = op;
                break;
            }
        if (!found)
            fail(pos, std::string("unexpected character '") + c + "'");
        const char f = found[0];
        if (f == '(' || f == '[' || f == '{') {
            balance.push_back(f == '(' ? ')' : (f == '[' ? ']' : '}'));
        } else if (f == ')' || f == ']' || f == '}') {
            if (balance.empty())
                fail(pos, std::string("unexpected '") + f + "'");
            if (balance.back() != f)
                fail(pos, std::string("unexpected '") + f + "', expected '" + balance.back() + "'");
            balance.pop_back();
        }
        Token t;
        t.type = Token::Type::Operator;
        t.text = found;
        t.pos = posOf(pos);
        m_tokens.push_back(std::move(t));
        pos += std::strlen(found);
    }
}

size_t Lexer::lexNumber(size_t pos)
{
    const size_t n = m_src.size();
    auto digitsRun = [&](size_t p, auto isDigit) {
        // (\d+_)*\d+ : digits with single underscores between
        size_t e = p;
        if (e >= n || !isDigit(m_src[e]))
            return p;
        while (e < n) {
            if (isDigit(m_src[e])) {
                ++e;
            } else if (m_src[e] == '_' && e + 1 < n && isDigit(m_src[e + 1])) {
                ++e;
            } else {
                break;
            }
        }
        return e;
    };
    auto dec = [](char ch) { return ch >= '0' && ch <= '9'; };
    Token t;
    t.pos = posOf(pos);
    if (m_src[pos] == '0' && pos + 1 < n && std::strchr("bBoOxX", m_src[pos + 1]) && m_src[pos + 1] != 0) {
        const char base = char(std::tolower(static_cast<unsigned char>(m_src[pos + 1])));
        auto isD = [base](char ch) {
            if (base == 'b')
                return ch == '0' || ch == '1';
            if (base == 'o')
                return ch >= '0' && ch <= '7';
            return std::isxdigit(static_cast<unsigned char>(ch)) != 0;
        };
        size_t p = pos + 2;
        if (p < n && m_src[p] == '_')
            ++p;
        const size_t e = digitsRun(p, isD);
        if (e == p)
            fail(pos, "invalid number literal");
        std::string digits;
        for (size_t i = p; i < e; ++i)
            if (m_src[i] != '_')
                digits += m_src[i];
        errno = 0;
        const unsigned long long v = std::strtoull(digits.c_str(), nullptr, base == 'b' ? 2 : (base == 'o' ? 8 : 16));
        if (errno || v > uint64_t(INT64_MAX))
            fail(pos, "integer literal too large");
        t.type = Token::Type::Integer;
        t.intValue = int64_t(v);
        m_tokens.push_back(t);
        return e;
    }
    size_t e = digitsRun(pos, dec);
    bool isFloat = false;
    if (e + 1 < n && m_src[e] == '.' && dec(m_src[e + 1])) {
        e = digitsRun(e + 1, dec);
        isFloat = true;
    }
    if (e < n && (m_src[e] == 'e' || m_src[e] == 'E')) {
        size_t p = e + 1;
        if (p < n && (m_src[p] == '+' || m_src[p] == '-'))
            ++p;
        const size_t ee = digitsRun(p, dec);
        if (ee > p) {
            e = ee;
            isFloat = true;
        }
    }
    std::string digits;
    for (size_t i = pos; i < e; ++i)
        if (m_src[i] != '_')
            digits += m_src[i];
    if (isFloat) {
        t.type = Token::Type::Float;
        t.floatValue = std::strtod(digits.c_str(), nullptr);
    } else {
        errno = 0;
        const unsigned long long v = std::strtoull(digits.c_str(), nullptr, 10);
        if (errno || v > uint64_t(INT64_MAX))
            fail(pos, "integer literal too large");
        t.type = Token::Type::Integer;
        t.intValue = int64_t(v);
    }
    m_tokens.push_back(t);
    return e;
}

// String literal with Python's "unicode-escape" decoding, as jinja2 applies.
size_t Lexer::lexString(size_t pos)
{
    const char quote = m_src[pos];
    const size_t n = m_src.size();
    std::string out;
    size_t p = pos + 1;
    auto hexVal = [&](size_t at, int count, uint32_t &v) {
        v = 0;
        if (at + count > n)
            return false;
        for (int i = 0; i < count; ++i) {
            const char ch = m_src[at + i];
            if (!std::isxdigit(static_cast<unsigned char>(ch)))
                return false;
            v = v * 16 + uint32_t(std::isdigit(static_cast<unsigned char>(ch)) ? ch - '0' : (std::tolower(ch) - 'a' + 10));
        }
        return true;
    };
    while (true) {
        if (p >= n)
            fail(pos, "unterminated string literal");
        const char c = m_src[p];
        if (c == quote) {
            ++p;
            break;
        }
        if (c != '\\') {
            out += c;
            ++p;
            continue;
        }
        if (p + 1 >= n)
            fail(pos, "unterminated string literal");
        const char e = m_src[p + 1];
        uint32_t v = 0;
        switch (e) {
        case '\n': p += 2; break;
        case '\\': out += '\\'; p += 2; break;
        case '\'': out += '\''; p += 2; break;
        case '"': out += '"'; p += 2; break;
        case 'a': out += '\a'; p += 2; break;
        case 'b': out += '\b'; p += 2; break;
        case 'f': out += '\f'; p += 2; break;
        case 'n': out += '\n'; p += 2; break;
        case 'r': out += '\r'; p += 2; break;
        case 't': out += '\t'; p += 2; break;
        case 'v': out += '\v'; p += 2; break;
        case 'x':
            if (!hexVal(p + 2, 2, v))
                fail(p, "truncated \\xXX escape");
            appendCodePoint(out, v);
            p += 4;
            break;
        case 'u':
            if (!hexVal(p + 2, 4, v))
                fail(p, "truncated \\uXXXX escape");
            if (v >= 0xD800 && v <= 0xDFFF)
                fail(p, "surrogate escapes are not supported");
            appendCodePoint(out, v);
            p += 6;
            break;
        case 'U':
            if (!hexVal(p + 2, 8, v) || v > 0x10FFFF)
                fail(p, "truncated or invalid \\UXXXXXXXX escape");
            if (v >= 0xD800 && v <= 0xDFFF)
                fail(p, "surrogate escapes are not supported");
            appendCodePoint(out, v);
            p += 10;
            break;
        default:
            if (e >= '0' && e <= '7') {
                size_t q = p + 1;
                v = 0;
                for (int i = 0; i < 3 && q < n && m_src[q] >= '0' && m_src[q] <= '7'; ++i, ++q)
                    v = v * 8 + uint32_t(m_src[q] - '0');
                appendCodePoint(out, v);
                p = q;
            } else {
                out += '\\'; // unknown escapes stay as written
                ++p;
            }
        }
    }
    Token t;
    t.type = Token::Type::String;
    t.text = std::move(out);
    t.pos = posOf(pos);
    m_tokens.push_back(std::move(t));
    return p;
}

} // namespace

std::vector<Token> tokenize(const std::string &normalizedSource, const LexerOptions &opts)
{
    Lexer lexer(normalizedSource, opts);
    return lexer.run();
}

} // namespace dpo::jinja
