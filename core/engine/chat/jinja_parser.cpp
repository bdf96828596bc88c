// Jinja parser: recursive descent over the token stream with jinja2's grammar (see jinja_parser.h).
#include "engine/chat/jinja_parser.h"

#include "engine/error.h"

#include <set>

namespace dpo::jinja {

namespace {

using TT = Token::Type;

class Parser {
public:
    explicit Parser(std::vector<Token> tokens) : m_tokens(std::move(tokens)) {}

    NodeList parseAll()
    {
        NodeList body = subparse({});
        return body;
    }

private:
    // Counts the nodes a left-associative chain (a + b + c ..., x|f|g ...) stacks up, so that the
    // depth of the expression tree, not only the recursion of the parser, stays bounded.
    struct ChainGuard {
        explicit ChainGuard(Parser &p) : m_p(p) {}
        void step(const Token &at)
        {
            ++m_count;
            if (++m_p.m_depth > kMaxParseDepth)
                m_p.fail(at, "expression nested deeper than " + std::to_string(kMaxParseDepth) + " levels");
        }
        ~ChainGuard() { m_p.m_depth -= m_count; }
        Parser &m_p;
        int m_count = 0;
    };

    struct DepthGuard {
        DepthGuard(Parser &p, const Token &at) : m_p(p)
        {
            if (++m_p.m_depth > kMaxParseDepth)
                m_p.fail(at, "template nested deeper than " + std::to_string(kMaxParseDepth) + " levels");
        }
        ~DepthGuard() { --m_p.m_depth; }
        Parser &m_p;
    };

    const Token &cur() const { return m_tokens[m_pos]; }
    const Token &peek(size_t k = 1) const { return m_tokens[std::min(m_pos + k, m_tokens.size() - 1)]; }
    const Token &next()
    {
        const Token &t = m_tokens[m_pos];
        if (m_pos + 1 < m_tokens.size())
            ++m_pos;
        return t;
    }

    [[noreturn]] void fail(const Token &at, const std::string &msg) const
    {
        throw Error("template syntax error at " + describePos(at.pos) + ": " + msg);
    }

    static std::string describe(const Token &t)
    {
        switch (t.type) {
        case TT::Text: return "template text";
        case TT::VarBegin: return "'{{'";
        case TT::VarEnd: return "end of print statement '}}'";
        case TT::BlockBegin: return "'{%'";
        case TT::BlockEnd: return "end of statement block '%}'";
        case TT::Name: return "'" + t.text + "'";
        case TT::String: return "string";
        case TT::Integer: return "integer";
        case TT::Float: return "float";
        case TT::Operator: return "'" + t.text + "'";
        case TT::Eof: return "end of template";
        }
        return "token";
    }

    bool isOp(const char *op) const { return cur().type == TT::Operator && cur().text == op; }
    bool isName(const char *name) const { return cur().type == TT::Name && cur().text == name; }
    bool skipOp(const char *op)
    {
        if (!isOp(op))
            return false;
        next();
        return true;
    }
    bool skipName(const char *name)
    {
        if (!isName(name))
            return false;
        next();
        return true;
    }
    void expectOp(const char *op)
    {
        if (!isOp(op))
            fail(cur(), std::string("expected '") + op + "', got " + describe(cur()));
        next();
    }
    const Token &expectType(TT type, const char *what)
    {
        if (cur().type != type)
            fail(cur(), std::string("expected ") + what + ", got " + describe(cur()));
        return next();
    }
    void expectName(const char *name)
    {
        if (!isName(name))
            fail(cur(), std::string("expected '") + name + "', got " + describe(cur()));
        next();
    }
    void expectBlockEnd() { expectType(TT::BlockEnd, "end of statement block '%}'"); }

    ExprPtr make(Expr::Kind kind, const SourcePos &pos)
    {
        auto e = std::make_unique<Expr>();
        e->kind = kind;
        e->pos = pos;
        return e;
    }

    // ---------------------------------------------------------------- statements

    NodeList subparse(const std::set<std::string> &endTags)
    {
        DepthGuard guard(*this, cur());
        NodeList body;
        while (true) {
            const Token &t = cur();
            if (t.type == TT::Eof) {
                if (!endTags.empty()) {
                    std::string want;
                    for (const auto &e : endTags)
                        want += (want.empty() ? "'" : " or '") + e + "'";
                    fail(t, "unexpected end of template, expected " + want);
                }
                return body;
            }
            if (t.type == TT::Text) {
                auto n = std::make_unique<Node>();
                n->kind = Node::Kind::Text;
                n->pos = t.pos;
                n->text = t.text;
                body.push_back(std::move(n));
                next();
                continue;
            }
            if (t.type == TT::VarBegin) {
                next();
                auto n = std::make_unique<Node>();
                n->kind = Node::Kind::Output;
                n->pos = t.pos;
                n->expr = parseTuple(false, true, {}, false);
                expectType(TT::VarEnd, "end of print statement '}}'");
                body.push_back(std::move(n));
                continue;
            }
            if (t.type == TT::BlockBegin) {
                const Token &tag = peek();
                if (tag.type != TT::Name)
                    fail(tag, "expected a tag name, got " + describe(tag));
                if (endTags.count(tag.text)) {
                    next(); // '{%'; the caller consumes the tag name
                    return body;
                }
                next();
                body.push_back(parseStatement());
                continue;
            }
            fail(t, "unexpected " + describe(t));
        }
    }

    NodePtr parseStatement()
    {
        const Token &tag = cur();
        const std::string name = tag.text;
        auto n = std::make_unique<Node>();
        n->pos = tag.pos;
        next();
        if (name == "if")
            return parseIf(std::move(n));
        if (name == "for")
            return parseFor(std::move(n));
        if (name == "set")
            return parseSet(std::move(n));
        if (name == "macro")
            return parseMacro(std::move(n));
        if (name == "call")
            return parseCallBlock(std::move(n));
        if (name == "filter")
            return parseFilterBlock(std::move(n));
        if (name == "with")
            return parseWith(std::move(n));
        if (name == "generation") {
            expectBlockEnd();
            n->kind = Node::Kind::Scope;
            n->body = subparse({ "endgeneration" });
            next();
            expectBlockEnd();
            return n;
        }
        if (name == "break" || name == "continue") {
            if (m_loopDepth == 0)
                fail(tag, "'" + name + "' outside of a loop");
            n->kind = name == "break" ? Node::Kind::Break : Node::Kind::Continue;
            expectBlockEnd();
            return n;
        }
        fail(tag, "encountered unknown tag '" + name + "'");
    }

    NodePtr parseIf(NodePtr n)
    {
        n->kind = Node::Kind::If;
        ExprPtr cond = parseTuple(false, true, {}, false);
        expectBlockEnd();
        while (true) {
            NodeList body = subparse({ "elif", "else", "endif" });
            const std::string tag = cur().text;
            next();
            n->branches.emplace_back(std::move(cond), std::move(body));
            if (tag == "elif") {
                cond = parseTuple(false, true, {}, false);
                expectBlockEnd();
                continue;
            }
            if (tag == "else") {
                expectBlockEnd();
                NodeList elseBody = subparse({ "endif" });
                next();
                n->branches.emplace_back(nullptr, std::move(elseBody));
            }
            expectBlockEnd();
            return n;
        }
    }

    Target parseAssignTarget(bool withNamespace, const std::set<std::string> &extraEnd)
    {
        Target t;
        if (withNamespace && cur().type == TT::Name && peek().type == TT::Operator && peek().text == ".") {
            t.names.push_back(next().text);
            next();
            t.attr = expectType(TT::Name, "attribute name").text;
            return t;
        }
        bool paren = false;
        if (isOp("(")) {
            paren = true;
            next();
        }
        while (true) {
            if (!t.names.empty()) {
                if (!skipOp(","))
                    break;
                t.tuple = true;
            }
            if (cur().type != TT::Name || extraEnd.count(cur().text)) {
                if (!t.names.empty() && t.tuple)
                    break;
                fail(cur(), "expected a variable name, got " + describe(cur()));
            }
            const std::string nm = next().text;
            if (nm == "true" || nm == "false" || nm == "none" || nm == "True" || nm == "False" || nm == "None")
                fail(cur(), "cannot assign to '" + nm + "'");
            t.names.push_back(nm);
        }
        if (paren) {
            expectOp(")");
            t.tuple = true;
        }
        return t;
    }

    NodePtr parseFor(NodePtr n)
    {
        n->kind = Node::Kind::For;
        n->target = parseAssignTarget(false, { "in" });
        expectName("in");
        n->expr = parseTuple(false, false, { "recursive" }, false);
        if (skipName("if"))
            n->cond = parseExpression(true);
        if (skipName("recursive"))
            n->recursive = true;
        expectBlockEnd();
        ++m_loopDepth;
        n->body = subparse({ "endfor", "else" });
        --m_loopDepth;
        if (cur().text == "else") {
            next();
            expectBlockEnd();
            n->elseBody = subparse({ "endfor" });
        }
        next();
        expectBlockEnd();
        return n;
    }

    NodePtr parseSet(NodePtr n)
    {
        n->target = parseAssignTarget(true, {});
        if (skipOp("=")) {
            n->kind = Node::Kind::Set;
            n->expr = parseTuple(false, true, {}, false);
            expectBlockEnd();
            return n;
        }
        n->kind = Node::Kind::SetBlock;
        if (!n->target.attr.empty() || n->target.tuple)
            fail(cur(), "a block assignment needs a single name");
        if (isOp("|"))
            n->expr = parseFilter(nullptr, false);
        expectBlockEnd();
        n->body = subparse({ "endset" });
        next();
        expectBlockEnd();
        return n;
    }

    void parseSignature(std::vector<MacroParam> &params)
    {
        expectOp("(");
        while (!isOp(")")) {
            if (!params.empty())
                expectOp(",");
            if (isOp(")"))
                break;
            MacroParam p;
            p.name = expectType(TT::Name, "a parameter name").text;
            if (skipOp("="))
                p.defaultValue = parseExpression(true);
            else if (!params.empty() && params.back().defaultValue)
                fail(cur(), "non-default argument follows default argument");
            params.push_back(std::move(p));
        }
        next();
    }

    NodePtr parseMacro(NodePtr n)
    {
        n->kind = Node::Kind::Macro;
        n->text = expectType(TT::Name, "a macro name").text;
        parseSignature(n->params);
        expectBlockEnd();
        const int savedLoop = m_loopDepth;
        m_loopDepth = 0;
        n->body = subparse({ "endmacro" });
        m_loopDepth = savedLoop;
        next();
        expectBlockEnd();
        return n;
    }

    NodePtr parseCallBlock(NodePtr n)
    {
        n->kind = Node::Kind::CallBlock;
        if (isOp("("))
            parseSignature(n->params);
        n->expr = parseExpression(true);
        if (n->expr->kind != Expr::Kind::Call)
            fail(cur(), "expected a call after 'call'");
        expectBlockEnd();
        const int savedLoop = m_loopDepth;
        m_loopDepth = 0;
        n->body = subparse({ "endcall" });
        m_loopDepth = savedLoop;
        next();
        expectBlockEnd();
        return n;
    }

    NodePtr parseFilterBlock(NodePtr n)
    {
        n->kind = Node::Kind::FilterBlock;
        n->expr = parseFilter(nullptr, true);
        expectBlockEnd();
        n->body = subparse({ "endfilter" });
        next();
        expectBlockEnd();
        return n;
    }

    NodePtr parseWith(NodePtr n)
    {
        n->kind = Node::Kind::With;
        while (cur().type != TT::BlockEnd) {
            if (!n->assignments.empty())
                expectOp(",");
            Target t = parseAssignTarget(false, {});
            expectOp("=");
            n->assignments.emplace_back(std::move(t), parseExpression(true));
        }
        expectBlockEnd();
        n->body = subparse({ "endwith" });
        next();
        expectBlockEnd();
        return n;
    }

    // ---------------------------------------------------------------- expressions

    bool isTupleEnd(const std::set<std::string> &extraEnd) const
    {
        const Token &t = cur();
        if (t.type == TT::VarEnd || t.type == TT::BlockEnd || t.type == TT::Eof)
            return true;
        if (t.type == TT::Operator && t.text == ")")
            return true;
        return t.type == TT::Name && extraEnd.count(t.text);
    }

    ExprPtr parseTuple(bool simplified, bool withCondexpr, const std::set<std::string> &extraEnd, bool explicitParens)
    {
        const SourcePos start = cur().pos;
        std::vector<ExprPtr> args;
        bool isTuple = false;
        while (true) {
            if (!args.empty())
                expectOp(",");
            if (isTupleEnd(extraEnd))
                break;
            if (simplified)
                args.push_back(parsePrimary());
            else
                args.push_back(parseExpression(withCondexpr));
            if (isOp(","))
                isTuple = true;
            else
                break;
        }
        if (!isTuple) {
            if (!args.empty())
                return std::move(args[0]);
            if (!explicitParens)
                fail(cur(), "expected an expression, got " + describe(cur()));
        }
        auto e = make(Expr::Kind::Tuple, start);
        e->args = std::move(args);
        return e;
    }

    ExprPtr parseExpression(bool withCondexpr)
    {
        DepthGuard guard(*this, cur());
        return withCondexpr ? parseCondExpr() : parseOr();
    }

    ExprPtr parseCondExpr()
    {
        ExprPtr expr1 = parseOr();
        ChainGuard chain(*this);
        while (isName("if")) {
            chain.step(cur());
            const SourcePos pos = next().pos;
            ExprPtr cond = parseOr();
            ExprPtr otherwise;
            if (skipName("else"))
                otherwise = parseCondExpr();
            auto e = make(Expr::Kind::CondExpr, pos);
            e->args.push_back(std::move(expr1));
            e->args.push_back(std::move(cond));
            e->args.push_back(std::move(otherwise));
            expr1 = std::move(e);
        }
        return expr1;
    }

    ExprPtr binary(Expr::Kind kind, const SourcePos &pos, ExprPtr l, ExprPtr r, const std::string &op = {})
    {
        auto e = make(kind, pos);
        e->name = op;
        e->args.push_back(std::move(l));
        e->args.push_back(std::move(r));
        return e;
    }

    ExprPtr parseOr()
    {
        ExprPtr left = parseAnd();
        ChainGuard chain(*this);
        while (isName("or")) {
            chain.step(cur());
            const SourcePos pos = next().pos;
            left = binary(Expr::Kind::Or, pos, std::move(left), parseAnd());
        }
        return left;
    }

    ExprPtr parseAnd()
    {
        ExprPtr left = parseNot();
        ChainGuard chain(*this);
        while (isName("and")) {
            chain.step(cur());
            const SourcePos pos = next().pos;
            left = binary(Expr::Kind::And, pos, std::move(left), parseNot());
        }
        return left;
    }

    ExprPtr parseNot()
    {
        if (isName("not")) {
            DepthGuard guard(*this, cur());
            const SourcePos pos = next().pos;
            auto e = make(Expr::Kind::Not, pos);
            e->args.push_back(parseNot());
            return e;
        }
        return parseCompare();
    }

    ExprPtr parseCompare()
    {
        const SourcePos pos = cur().pos;
        ExprPtr expr = parseMath1();
        std::vector<std::string> ops;
        std::vector<ExprPtr> operands;
        while (true) {
            const Token &t = cur();
            if (t.type == TT::Operator &&
                (t.text == "==" || t.text == "!=" || t.text == "<" || t.text == "<=" || t.text == ">" ||
                 t.text == ">=")) {
                ops.push_back(next().text);
            } else if (isName("in")) {
                next();
                ops.push_back("in");
            } else if (isName("not") && peek().type == TT::Name && peek().text == "in") {
                next();
                next();
                ops.push_back("notin");
            } else {
                break;
            }
            operands.push_back(parseMath1());
        }
        if (ops.empty())
            return expr;
        auto e = make(Expr::Kind::Compare, pos);
        e->args.push_back(std::move(expr));
        for (auto &o : operands)
            e->args.push_back(std::move(o));
        e->ops = std::move(ops);
        return e;
    }

    ExprPtr parseMath1()
    {
        ExprPtr left = parseConcat();
        ChainGuard chain(*this);
        while (isOp("+") || isOp("-")) {
            chain.step(cur());
            const Token &t = next();
            left = binary(Expr::Kind::Binary, t.pos, std::move(left), parseConcat(), t.text);
        }
        return left;
    }

    ExprPtr parseConcat()
    {
        ExprPtr left = parseMath2();
        ChainGuard chain(*this);
        while (isOp("~")) {
            chain.step(cur());
            const Token &t = next();
            left = binary(Expr::Kind::Binary, t.pos, std::move(left), parseMath2(), "~");
        }
        return left;
    }

    ExprPtr parseMath2()
    {
        ExprPtr left = parsePow();
        ChainGuard chain(*this);
        while (isOp("*") || isOp("/") || isOp("//") || isOp("%")) {
            chain.step(cur());
            const Token &t = next();
            left = binary(Expr::Kind::Binary, t.pos, std::move(left), parsePow(), t.text);
        }
        return left;
    }

    ExprPtr parsePow()
    {
        ExprPtr left = parseUnary(true);
        ChainGuard chain(*this);
        while (isOp("**")) {
            chain.step(cur());
            const Token &t = next();
            left = binary(Expr::Kind::Binary, t.pos, std::move(left), parseUnary(true), "**");
        }
        return left;
    }

    ExprPtr parseUnary(bool withFilter)
    {
        DepthGuard guard(*this, cur());
        ExprPtr node;
        if (isOp("-") || isOp("+")) {
            const Token &t = next();
            node = make(t.text == "-" ? Expr::Kind::Neg : Expr::Kind::Pos, t.pos);
            node->args.push_back(parseUnary(false));
        } else {
            node = parsePrimary();
        }
        node = parsePostfix(std::move(node));
        if (withFilter)
            node = parseFilterExpr(std::move(node));
        return node;
    }

    ExprPtr parsePrimary()
    {
        DepthGuard guard(*this, cur());
        const Token &t = cur();
        switch (t.type) {
        case TT::Name: {
            next();
            auto e = make(Expr::Kind::Const, t.pos);
            if (t.text == "true" || t.text == "True")
                e->value = Value::boolean(true);
            else if (t.text == "false" || t.text == "False")
                e->value = Value::boolean(false);
            else if (t.text == "none" || t.text == "None")
                e->value = Value::none();
            else {
                e->kind = Expr::Kind::Name;
                e->name = t.text;
            }
            return e;
        }
        case TT::String: {
            std::string s;
            const SourcePos pos = t.pos;
            while (cur().type == TT::String)
                s += next().text;
            auto e = make(Expr::Kind::Const, pos);
            e->value = Value(std::move(s));
            return e;
        }
        case TT::Integer: {
            next();
            auto e = make(Expr::Kind::Const, t.pos);
            e->value = Value(t.intValue);
            return e;
        }
        case TT::Float: {
            next();
            auto e = make(Expr::Kind::Const, t.pos);
            e->value = Value(t.floatValue);
            return e;
        }
        case TT::Operator:
            if (t.text == "(") {
                next();
                ExprPtr e = parseTuple(false, true, {}, true);
                expectOp(")");
                return e;
            }
            if (t.text == "[") {
                next();
                auto e = make(Expr::Kind::List, t.pos);
                while (!isOp("]")) {
                    if (!e->args.empty())
                        expectOp(",");
                    if (isOp("]"))
                        break;
                    e->args.push_back(parseExpression(true));
                }
                next();
                return e;
            }
            if (t.text == "{") {
                next();
                auto e = make(Expr::Kind::DictLit, t.pos);
                while (!isOp("}")) {
                    if (!e->args.empty())
                        expectOp(",");
                    if (isOp("}"))
                        break;
                    e->args.push_back(parseExpression(true));
                    expectOp(":");
                    e->args.push_back(parseExpression(true));
                }
                next();
                return e;
            }
            break;
        default: break;
        }
        fail(t, "unexpected " + describe(t));
    }

    ExprPtr parsePostfix(ExprPtr node)
    {
        ChainGuard chain(*this);
        while (true) {
            chain.step(cur());
            if (isOp(".") || isOp("["))
                node = parseSubscript(std::move(node));
            else if (isOp("("))
                node = parseCall(std::move(node));
            else
                return node;
        }
    }

    ExprPtr parseFilterExpr(ExprPtr node)
    {
        ChainGuard chain(*this);
        while (true) {
            chain.step(cur());
            if (isOp("|"))
                node = parseFilter(std::move(node), false);
            else if (isName("is"))
                node = parseTest(std::move(node));
            else if (isOp("("))
                node = parseCall(std::move(node));
            else
                return node;
        }
    }

    ExprPtr parseSubscript(ExprPtr node)
    {
        DepthGuard guard(*this, cur());
        const Token &t = next();
        if (t.text == ".") {
            const Token &attr = cur();
            if (attr.type == TT::Name) {
                next();
                auto e = make(Expr::Kind::GetAttr, t.pos);
                e->name = attr.text;
                e->args.push_back(std::move(node));
                return e;
            }
            if (attr.type == TT::Integer) {
                next();
                auto e = make(Expr::Kind::GetItem, t.pos);
                e->args.push_back(std::move(node));
                auto c = make(Expr::Kind::Const, attr.pos);
                c->value = Value(attr.intValue);
                e->args.push_back(std::move(c));
                return e;
            }
            fail(attr, "expected name or number after '.'");
        }
        // '['
        std::vector<ExprPtr> args;
        while (!isOp("]")) {
            if (!args.empty())
                expectOp(",");
            args.push_back(parseSubscribed());
        }
        next();
        if (args.empty())
            fail(t, "expected a subscript");
        // x[:, 1]: jinja2 emits Python that does not compile; here the slice would be evaluated without its
        // object (found by fuzz_chat_template).
        if (args.size() > 1)
            for (const auto &a : args)
                if (a->kind == Expr::Kind::Slice)
                    fail(t, "a slice cannot be combined with other subscripts");
        if (args.size() == 1 && args[0]->kind == Expr::Kind::Slice) {
            args[0]->args[0] = std::move(node);
            return std::move(args[0]);
        }
        auto e = make(Expr::Kind::GetItem, t.pos);
        e->args.push_back(std::move(node));
        if (args.size() == 1) {
            e->args.push_back(std::move(args[0]));
        } else {
            auto tup = make(Expr::Kind::Tuple, t.pos);
            tup->args = std::move(args);
            e->args.push_back(std::move(tup));
        }
        return e;
    }

    // Returns an expression, or a Slice node whose args[0] is left for the caller to fill.
    ExprPtr parseSubscribed()
    {
        const SourcePos pos = cur().pos;
        std::vector<ExprPtr> parts;
        if (isOp(":")) {
            next();
            parts.push_back(nullptr);
        } else {
            ExprPtr e = parseExpression(true);
            if (!isOp(":"))
                return e;
            next();
            parts.push_back(std::move(e));
        }
        if (isOp(":") || isOp("]") || isOp(","))
            parts.push_back(nullptr);
        else
            parts.push_back(parseExpression(true));
        if (isOp(":")) {
            next();
            if (isOp("]") || isOp(","))
                parts.push_back(nullptr);
            else
                parts.push_back(parseExpression(true));
        } else {
            parts.push_back(nullptr);
        }
        auto s = make(Expr::Kind::Slice, pos);
        s->args.push_back(nullptr);
        for (auto &p : parts)
            s->args.push_back(std::move(p));
        return s;
    }

    void parseCallArgs(Expr &e)
    {
        expectOp("(");
        bool first = true;
        while (!isOp(")")) {
            if (!first)
                expectOp(",");
            first = false;
            if (isOp(")"))
                break;
            if (isOp("*")) {
                next();
                if (e.starArgs || e.starKwargs)
                    fail(cur(), "only one '*' argument is allowed, before any '**' argument");
                e.starArgs = parseExpression(true);
                continue;
            }
            if (isOp("**")) {
                next();
                if (e.starKwargs)
                    fail(cur(), "only one '**' argument is allowed");
                e.starKwargs = parseExpression(true);
                continue;
            }
            if (e.starKwargs)
                fail(cur(), "arguments cannot follow '**' arguments");
            if (cur().type == TT::Name && peek().type == TT::Operator && peek().text == "=") {
                const std::string key = next().text;
                next();
                e.kwargs.emplace_back(key, parseExpression(true));
            } else {
                if (!e.kwargs.empty() || e.starArgs)
                    fail(cur(), "positional argument follows keyword or '*' argument");
                e.args.push_back(parseExpression(true));
            }
        }
        next();
    }

    ExprPtr parseCall(ExprPtr node)
    {
        DepthGuard guard(*this, cur());
        auto e = make(Expr::Kind::Call, cur().pos);
        e->args.push_back(std::move(node));
        parseCallArgs(*e);
        return e;
    }

    ExprPtr parseFilter(ExprPtr node, bool startInline)
    {
        ChainGuard chain(*this);
        while (isOp("|") || startInline) {
            chain.step(cur());
            if (!startInline)
                next();
            startInline = false;
            const Token &nameTok = expectType(TT::Name, "a filter name");
            std::string name = nameTok.text;
            while (isOp(".")) {
                next();
                name += "." + expectType(TT::Name, "a filter name").text;
            }
            auto e = make(Expr::Kind::Filter, nameTok.pos);
            e->name = name;
            e->args.push_back(std::move(node));
            if (isOp("("))
                parseCallArgs(*e);
            node = std::move(e);
        }
        return node;
    }

    ExprPtr parseTest(ExprPtr node)
    {
        const SourcePos pos = next().pos; // 'is'
        bool negated = false;
        if (skipName("not"))
            negated = true;
        const Token &nameTok = expectType(TT::Name, "a test name");
        std::string name = nameTok.text;
        while (isOp(".")) {
            next();
            name += "." + expectType(TT::Name, "a test name").text;
        }
        auto e = make(Expr::Kind::Test, pos);
        e->name = name;
        e->negated = negated;
        e->args.push_back(std::move(node));
        const Token &t = cur();
        if (isOp("(")) {
            parseCallArgs(*e);
        } else if ((t.type == TT::Name || t.type == TT::String || t.type == TT::Integer || t.type == TT::Float ||
                    (t.type == TT::Operator && (t.text == "(" || t.text == "[" || t.text == "{"))) &&
                   !(t.type == TT::Name && (t.text == "else" || t.text == "or" || t.text == "and"))) {
            if (t.type == TT::Name && t.text == "is")
                fail(t, "you cannot chain multiple tests with 'is'");
            ExprPtr arg = parsePrimary();
            arg = parsePostfix(std::move(arg));
            e->args.push_back(std::move(arg));
        }
        return e;
    }

    std::vector<Token> m_tokens;
    size_t m_pos = 0;
    int m_depth = 0;
    int m_loopDepth = 0;
};

} // namespace

std::shared_ptr<Template> parseTemplate(const std::string &source, const LexerOptions &opts)
{
    auto tpl = std::make_shared<Template>();
    tpl->source = normalizeTemplateSource(source, opts);
    Parser parser(tokenize(tpl->source, opts));
    tpl->body = parser.parseAll();
    return tpl;
}

} // namespace dpo::jinja
