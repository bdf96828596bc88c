// Python's text rules that chat templates depend on, for UTF-8 std::string: code-point length,
// indexing and slicing, str.isspace / strip / split / splitlines, case mapping (ASCII, Latin-1,
// Latin Extended-A, Greek, Cyrillic and fullwidth letters only; other scripts are left as they are),
// repr() of strings (quote choice and escapes; "printable" is approximated by a fixed table) and
// repr() of floats (shortest round-trip digits, Python's switch to exponent notation).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dpo::jinja {

// Decodes UTF-8 leniently (an invalid byte becomes U+FFFD) into code points.
std::vector<uint32_t> toCodePoints(std::string_view s);
std::string fromCodePoints(const std::vector<uint32_t> &cps, size_t begin = 0, size_t end = SIZE_MAX);
void appendCodePoint(std::string &out, uint32_t cp);
bool isAscii(std::string_view s);
// Number of code points (Python len()).
size_t codePointLength(std::string_view s);
// True when `s` is valid UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
bool isValidUtf8Text(std::string_view s);

bool pyIsSpace(uint32_t cp);
bool pyIsLineBreak(uint32_t cp);
uint32_t pyUpperSimple(uint32_t cp);
uint32_t pyLowerSimple(uint32_t cp);
bool pyIsCased(uint32_t cp);
bool pyIsAlnum(uint32_t cp);
bool pyIsDigit(uint32_t cp);
bool pyIsAlpha(uint32_t cp);

std::string pyUpper(std::string_view s);
std::string pyLower(std::string_view s);
std::string pyTitle(std::string_view s);      // str.title()
std::string pyCapitalize(std::string_view s); // str.capitalize()
std::string pySwapCase(std::string_view s);

// strip family: chars == nullptr strips Python whitespace, else any code point of *chars.
std::string pyStrip(std::string_view s, const std::string *chars, bool left, bool right);
// str.split(sep, maxsplit): sep == nullptr splits on whitespace runs. Throws std::invalid_argument
// for an empty separator.
std::vector<std::string> pySplit(std::string_view s, const std::string *sep, long long maxsplit);
std::vector<std::string> pyRSplit(std::string_view s, const std::string *sep, long long maxsplit);
std::vector<std::string> pySplitLines(std::string_view s, bool keepEnds);
std::string pyReplace(std::string_view s, std::string_view from, std::string_view to, long long count,
                      size_t maxBytes);
long long pyCount(std::string_view s, std::string_view sub);
// Code-point index of the first / last occurrence, or -1.
long long pyFind(std::string_view s, std::string_view sub, bool last);

std::string pyReprString(std::string_view s);
std::string pyReprFloat(double v);
// json.dumps' float text: repr, with Infinity / -Infinity / NaN.
std::string jsonFloat(double v);

} // namespace dpo::jinja
