// Parser for the Jinja subset that chat templates use, producing an AST of statements and
// expressions with jinja2's grammar and precedence: if/elif/else, for (tuple targets, `if`
// filters, else, recursive), set (plain, namespace attribute, tuple, block form), macro, call
// blocks, filter blocks, with, break/continue, generation; expressions with inline if/else,
// or/and/not, chained comparisons, in / not in, is / is not tests, + - * / // % ** ~, filters,
// calls with keyword arguments, attribute and item access, slices, list/tuple/dict literals.
// Nesting deeper than a fixed limit is a dpo::Error, so hostile input cannot exhaust the stack.
#pragma once

#include "engine/chat/jinja_lexer.h"
#include "engine/chat/jinja_value.h"

#include <memory>
#include <string>
#include <vector>

namespace dpo::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
    enum class Kind {
        Const,    // value
        Name,     // name
        List,     // args
        Tuple,    // args
        DictLit,  // args: key, value, key, value ...
        GetAttr,  // args[0].name
        GetItem,  // args[0][args[1]]
        Slice,    // args[0][args[1]:args[2]:args[3]] (null entries allowed)
        Call,     // args[0](args[1..], kwargs)
        Filter,   // name: args[0] is the input (null inside a filter block), args[1..] + kwargs
        Test,     // name: args[0] is the subject, args[1..] + kwargs; negated
        Neg,
        Pos,
        Not,
        Binary,   // name: + - * / // % ** ~
        Compare,  // args[0] ops[i] args[i+1]
        And,
        Or,
        CondExpr, // args[0] if args[1] else args[2] (args[2] may be null)
    };
    Kind kind = Kind::Const;
    SourcePos pos;
    Value value;
    std::string name;
    bool negated = false;
    std::vector<ExprPtr> args;
    std::vector<std::pair<std::string, ExprPtr>> kwargs;
    ExprPtr starArgs;   // f(*xs)
    ExprPtr starKwargs; // f(**d)
    std::vector<std::string> ops;
};

struct Node;
using NodePtr = std::unique_ptr<Node>;
using NodeList = std::vector<NodePtr>;

// Assignment target: a name, a namespace attribute (name.attr), or a tuple of names.
struct Target {
    std::vector<std::string> names; // one name, or several for tuple unpacking
    std::string attr;               // set for `ns.attr`
    bool tuple = false;
};

struct MacroParam {
    std::string name;
    ExprPtr defaultValue; // may be null
};

struct Node {
    enum class Kind { Text, Output, If, For, Set, SetBlock, Macro, CallBlock, FilterBlock, With, Break, Continue, Scope };
    Kind kind = Kind::Text;
    SourcePos pos;
    std::string text;                 // Text; macro name
    ExprPtr expr;                     // Output / Set value / For iterable / CallBlock call / FilterBlock filter chain
    ExprPtr cond;                     // For filter
    std::vector<std::pair<ExprPtr, NodeList>> branches; // If: condition + body (else: null condition)
    Target target;                    // Set / For / SetBlock
    NodeList body;
    NodeList elseBody;                // For
    bool recursive = false;           // For
    std::vector<MacroParam> params;   // Macro / CallBlock
    std::vector<std::pair<Target, ExprPtr>> assignments; // With
};

struct Template {
    NodeList body;
    std::string source; // newline-normalised
};

// Parses a template; throws dpo::Error "template syntax error at line L, column C: ...".
std::shared_ptr<Template> parseTemplate(const std::string &source, const LexerOptions &opts = {});

constexpr int kMaxParseDepth = 400;

} // namespace dpo::jinja
