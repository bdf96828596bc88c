// Lexer for Jinja templates with jinja2's default delimiters and the whitespace settings that
// transformers uses: trim_blocks (drop one newline after a block or comment tag), lstrip_blocks
// (drop spaces and tabs before a block or comment tag that starts a line), `-`/`+` modifiers,
// `{# comments #}`, `{% raw %}` blocks, keep_trailing_newline=False, and newline normalisation
// (\r\n and \r become \n). Errors are dpo::Error naming the line and column.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dpo::jinja {

struct SourcePos {
    int line = 0;
    int column = 0;
};

struct Token {
    enum class Type { Text, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Integer, Float, Operator, Eof };
    Type type = Type::Eof;
    std::string text; // Text data, name, decoded string literal, or operator
    int64_t intValue = 0;
    double floatValue = 0;
    SourcePos pos;
};

struct LexerOptions {
    bool trimBlocks = true;
    bool lstripBlocks = true;
    bool keepTrailingNewline = false;
};

// Newline-normalised source (what the positions refer to).
std::string normalizeTemplateSource(const std::string &source, const LexerOptions &opts);
std::vector<Token> tokenize(const std::string &normalizedSource, const LexerOptions &opts = {});

// Formats "line L, column C".
std::string describePos(const SourcePos &pos);

} // namespace dpo::jinja
