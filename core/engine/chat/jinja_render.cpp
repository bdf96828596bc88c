// Jinja interpreter: statements, expressions, Python operators, attribute/item lookup and limits
// (see jinja_render.h).
#include "engine/chat/jinja_render.h"

#include "engine/chat/jinja_pystr.h"

#include <algorithm>
#include <climits>
#include <cmath>

namespace dpo::jinja {

namespace {

// Bounds the recursion of the interpreter (expressions inside blocks inside macro bodies ...).
struct NestingGuard {
    NestingGuard(int &n, int limit) : m_n(n)
    {
        if (++m_n > limit) {
            --m_n;
            throw EvalError(EvalError::Kind::Limit,
                            "template evaluation nested deeper than " + std::to_string(limit) + " levels");
        }
    }
    ~NestingGuard() { --m_n; }
    int &m_n;
};

[[noreturn]] void throwLimit(const std::string &message)
{
    throw EvalError(EvalError::Kind::Limit, message);
}

std::string objectTypeRepr(const Value &v)
{
    switch (v.kind()) {
    case Value::Kind::None: return "None";
    case Value::Kind::Dict: return "dict object";
    case Value::Kind::List: return v.isTuple() ? "tuple object" : "list object";
    case Value::Kind::String: return "str object";
    case Value::Kind::Int: return "int object";
    case Value::Kind::Float: return "float object";
    case Value::Kind::Bool: return "bool object";
    default: return v.typeName() + " object";
    }
}

Value missingAttr(const Value &obj, const std::string &name)
{
    return Value::undefined("'" + objectTypeRepr(obj) + "' has no attribute '" + name + "'");
}

Value missingItem(const Value &obj, const Value &key)
{
    if (key.isString())
        return missingAttr(obj, key.str());
    return Value::undefined(objectTypeRepr(obj) + " has no element " + toRepr(key));
}

// Python's slice index adjustment (PySlice_AdjustIndices).
void adjustSlice(int64_t length, const Value &startV, const Value &stopV, const Value &stepV, int64_t &start,
                 int64_t &stop, int64_t &step)
{
    auto toIndex = [](const Value &v, const char *what) -> bool {
        if (v.isNone() || v.isUndefined())
            return false;
        if (!(v.isInt() || v.isBool()))
            throwType(std::string("slice indices must be integers or None or have an __index__ method (") +
                      what + ")");
        return true;
    };
    step = 1;
    if (toIndex(stepV, "step")) {
        step = stepV.asInt();
        if (step == 0)
            throwValue("slice step cannot be zero");
    }
    const int64_t defStart = step < 0 ? length - 1 : 0;
    const int64_t defStop = step < 0 ? -1 : length;
    if (toIndex(startV, "start")) {
        start = startV.asInt();
        if (start < 0) {
            start += length;
            if (start < 0)
                start = step < 0 ? -1 : 0;
        } else if (start >= length) {
            start = step < 0 ? length - 1 : length;
        }
    } else {
        start = defStart;
    }
    if (toIndex(stopV, "stop")) {
        stop = stopV.asInt();
        if (stop < 0) {
            stop += length;
            if (stop < 0)
                stop = step < 0 ? -1 : 0;
        } else if (stop >= length) {
            stop = step < 0 ? length - 1 : length;
        }
    } else {
        stop = defStop;
    }
}

int64_t checkedMul(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_mul_overflow(a, b, &r))
        throwValue("integer overflow (values beyond 64 bits are not supported)");
    return r;
}

int64_t floorDiv(int64_t a, int64_t b)
{
    if (b == 0)
        throw EvalError(EvalError::Kind::Value, "integer division or modulo by zero");
    if (a == INT64_MIN && b == -1)
        throwValue("integer overflow (values beyond 64 bits are not supported)");
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        --q;
    return q;
}

int64_t floorMod(int64_t a, int64_t b)
{
    if (b == 0)
        throw EvalError(EvalError::Kind::Value, "integer division or modulo by zero");
    if (b == -1)
        return 0;
    int64_t m = a % b;
    if (m != 0 && ((m < 0) != (b < 0)))
        m += b;
    return m;
}

std::string htmlEscape(const std::string &s)
{
    std::string out;
    out.reserve(s.size());
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

} // namespace

// ------------------------------------------------------------------------------------------------
// Loop object

bool LoopObject::getAttr(const std::string &name, Value &out) const
{
    const int64_t len = int64_t(m_items.size());
    if (name == "index")
        out = Value(m_index0 + 1);
    else if (name == "index0")
        out = Value(m_index0);
    else if (name == "revindex")
        out = Value(len - m_index0);
    else if (name == "revindex0")
        out = Value(len - m_index0 - 1);
    else if (name == "first")
        out = Value::boolean(m_index0 == 0);
    else if (name == "last")
        out = Value::boolean(m_index0 == len - 1);
    else if (name == "length")
        out = Value(len);
    else if (name == "depth")
        out = Value(int64_t(m_depth));
    else if (name == "depth0")
        out = Value(int64_t(m_depth - 1));
    else if (name == "previtem")
        out = m_index0 > 0 ? m_items[size_t(m_index0 - 1)] : Value::undefined("there is no previous item");
    else if (name == "nextitem")
        out = m_index0 + 1 < len ? m_items[size_t(m_index0 + 1)] : Value::undefined("there is no next item");
    else if (name == "cycle") {
        const int64_t idx = m_index0;
        out = Value::object(std::make_shared<BuiltinFunction>("cycle", [idx](Renderer &, CallArgs &args) {
            if (args.positional.empty())
                throwType("no items for cycling given");
            return args.positional[size_t(idx % int64_t(args.positional.size()))];
        }));
    } else if (name == "changed") {
        auto last = m_lastChanged;
        out = Value::object(std::make_shared<BuiltinFunction>("changed", [last](Renderer &, CallArgs &args) {
            const std::vector<Value> &now = args.positional;
            bool same = last->size() == now.size() && !last->empty();
            if (same)
                for (size_t i = 0; i < now.size(); ++i)
                    if (!valuesEqual((*last)[i], now[i]))
                        same = false;
            if (last->empty() && now.empty())
                same = false;
            if (same)
                return Value::boolean(false);
            *last = now;
            return Value::boolean(true);
        }));
    } else
        return false;
    return true;
}

Value LoopObject::call(Renderer &r, CallArgs &args)
{
    if (!m_node || !m_node->recursive)
        throwType("'LoopContext' object is not callable");
    if (args.positional.size() != 1)
        throwType("loop() takes exactly one argument");
    return Value(r.renderRecursiveLoop(*this, args.positional[0]));
}

// ------------------------------------------------------------------------------------------------
// Renderer

Renderer::Renderer(std::shared_ptr<const Template> tpl, RenderLimits limits, StrftimeFn strftimeNow)
    : m_tpl(std::move(tpl)), m_limits(limits), m_strftime(std::move(strftimeNow))
{
}

Renderer::~Renderer()
{
    // Break reference cycles through namespaces ({% set ns.self = ns %}) and macro closures.
    for (auto &ns : m_namespaces)
        ns->clear();
    for (auto &scope : m_closureScopes)
        scope->vars.clear();
    if (m_scope)
        m_scope->vars.clear();
}

std::string Renderer::render(const Dict &context)
{
    m_context = &context;
    m_scope = std::make_shared<Scope>();
    m_steps = 0;
    m_iterations = 0;
    m_callDepth = 0;
    m_nesting = 0;
    std::string out;
    try {
        execList(m_tpl->body, out);
    } catch (const EvalError &e) {
        // Not attributed to a position (should not happen: eval/exec attribute them).
        throw RenderError(std::string("template error: ") + e.what(), e.kind() == EvalError::Kind::Raised);
    }
    // Break cycles created during this render.
    for (auto &ns : m_namespaces)
        ns->clear();
    m_namespaces.clear();
    for (auto &scope : m_closureScopes)
        scope->vars.clear();
    m_closureScopes.clear();
    m_scope->vars.clear();
    return out;
}

void Renderer::charge(int64_t steps)
{
    m_steps += steps;
    if (m_steps > m_limits.maxSteps)
        throwLimit("template exceeded the limit of " + std::to_string(m_limits.maxSteps) +
                   " evaluation steps (runaway loop or recursion?)");
}

void Renderer::checkSize(size_t bytes)
{
    if (bytes > m_limits.maxOutputBytes)
        throwLimit("template built a value larger than the limit of " + std::to_string(m_limits.maxOutputBytes) +
                   " bytes");
}

void Renderer::emitText(std::string &out, const std::string &text)
{
    if (out.size() + text.size() > m_limits.maxOutputBytes)
        throwLimit("template output exceeds the limit of " + std::to_string(m_limits.maxOutputBytes) + " bytes");
    out += text;
}

Value Renderer::lookup(const std::string &name)
{
    for (Scope *s = m_scope.get(); s; s = s->parent.get())
        if (Value *v = s->findLocal(name))
            return *v;
    if (m_context)
        if (const Value *v = m_context->findString(name))
            return *v;
    Value g = findGlobal(name);
    if (!g.isUndefined())
        return g;
    return Value::undefined("'" + name + "' is undefined");
}

bool Renderer::bodyUsesName(const Node &macro, const std::string &name)
{
    // Conservative scan of a macro body for a Name expression (for varargs / kwargs / caller).
    std::function<bool(const Expr *)> exprUses = [&](const Expr *e) -> bool {
        if (!e)
            return false;
        if (e->kind == Expr::Kind::Name && e->name == name)
            return true;
        for (const auto &a : e->args)
            if (exprUses(a.get()))
                return true;
        for (const auto &kv : e->kwargs)
            if (exprUses(kv.second.get()))
                return true;
        return exprUses(e->starArgs.get()) || exprUses(e->starKwargs.get());
    };
    std::function<bool(const NodeList &)> listUses;
    std::function<bool(const Node &)> nodeUses = [&](const Node &n) -> bool {
        if (exprUses(n.expr.get()) || exprUses(n.cond.get()))
            return true;
        for (const auto &b : n.branches)
            if (exprUses(b.first.get()) || listUses(b.second))
                return true;
        for (const auto &p : n.params)
            if (exprUses(p.defaultValue.get()))
                return true;
        for (const auto &a : n.assignments)
            if (exprUses(a.second.get()))
                return true;
        return listUses(n.body) || listUses(n.elseBody);
    };
    listUses = [&](const NodeList &l) -> bool {
        for (const auto &n : l)
            if (nodeUses(*n))
                return true;
        return false;
    };
    return listUses(macro.body);
}

Value Renderer::callMacro(const MacroObject &macro, CallArgs &args)
{
    if (m_callDepth >= m_limits.maxCallDepth)
        throwLimit("macro calls nested deeper than " + std::to_string(m_limits.maxCallDepth) +
                   " levels (runaway recursion?)");
    charge(1);
    const Node &node = *macro.m_node;
    auto scope = std::make_shared<Scope>();
    scope->parent = macro.m_closure;
    const auto &params = node.params;
    size_t i = 0;
    for (; i < params.size() && i < args.positional.size(); ++i)
        scope->set(params[i].name, args.positional[i]);
    std::vector<Value> extraPos;
    for (size_t k = params.size(); k < args.positional.size(); ++k)
        extraPos.push_back(args.positional[k]);
    Dict extraKw;
    Value caller;
    bool hasCaller = false;
    for (auto &kv : args.keyword) {
        bool bound = false;
        for (size_t p = 0; p < params.size(); ++p) {
            if (params[p].name == kv.first) {
                if (p < args.positional.size())
                    throwType("macro '" + macro.m_name + "' got multiple values for argument '" + kv.first + "'");
                scope->set(kv.first, kv.second);
                bound = true;
                break;
            }
        }
        if (bound)
            continue;
        if (kv.first == "caller" && !macro.m_isCaller) {
            caller = kv.second;
            hasCaller = true;
            continue;
        }
        extraKw.set(Value(kv.first), kv.second);
    }
    if (!macro.m_isCaller) {
        if (!extraPos.empty() && !bodyUsesName(node, "varargs"))
            throwType("macro '" + macro.m_name + "' takes not more than " + std::to_string(params.size()) +
                      " argument(s)");
        if (!extraKw.empty() && !bodyUsesName(node, "kwargs"))
            throwType("macro '" + macro.m_name + "' takes no keyword argument '" +
                      extraKw.items().front().first.str() + "'");
    }
    // Defaults are evaluated in the macro's scope, after the arguments before them are bound.
    auto saved = m_scope;
    m_scope = scope;
    ++m_callDepth;
    std::string out;
    try {
        for (size_t p = 0; p < params.size(); ++p) {
            if (scope->findLocal(params[p].name))
                continue;
            if (params[p].defaultValue)
                scope->set(params[p].name, eval(*params[p].defaultValue));
            else
                scope->set(params[p].name, Value::undefined("parameter '" + params[p].name + "' was not provided"));
        }
        scope->set("varargs", Value::list(extraPos, true));
        scope->set("kwargs", Value::dict(extraKw));
        if (hasCaller)
            scope->set("caller", caller);
        else if (!macro.m_isCaller && !scope->findLocal("caller"))
            scope->set("caller", Value::undefined("No caller defined"));
        execList(node.body, out);
    } catch (...) {
        --m_callDepth;
        m_scope = saved;
        throw;
    }
    --m_callDepth;
    m_scope = saved;
    return Value(std::move(out));
}

std::string Renderer::renderRecursiveLoop(const LoopObject &loop, const Value &iterable)
{
    if (m_callDepth >= m_limits.maxCallDepth)
        throwLimit("recursive loop nested deeper than " + std::to_string(m_limits.maxCallDepth) + " levels");
    auto saved = m_scope;
    m_scope = loop.m_outer;
    ++m_callDepth;
    std::string out;
    try {
        execFor(*loop.m_node, out, iterable, loop.m_depth + 1);
    } catch (...) {
        --m_callDepth;
        m_scope = saved;
        throw;
    }
    --m_callDepth;
    m_scope = saved;
    return out;
}

Renderer::Flow Renderer::execList(const NodeList &nodes, std::string &out)
{
    for (const auto &n : nodes) {
        const Flow f = exec(*n, out);
        if (f != Flow::Normal)
            return f;
    }
    return Flow::Normal;
}

Renderer::Flow Renderer::exec(const Node &node, std::string &out)
{
    try {
        NestingGuard nesting(m_nesting, m_limits.maxNesting);
        switch (node.kind) {
        case Node::Kind::Text: emitText(out, node.text); return Flow::Normal;
        case Node::Kind::Output: {
            const Value v = eval(*node.expr);
            if (v.isString())
                emitText(out, v.str());
            else
                emitText(out, toStr(v));
            return Flow::Normal;
        }
        case Node::Kind::If:
            for (const auto &b : node.branches) {
                if (!b.first || eval(*b.first).truthy())
                    return execList(b.second, out);
            }
            return Flow::Normal;
        case Node::Kind::For: return execFor(node, out, eval(*node.expr), 1);
        case Node::Kind::Set: execSet(node, eval(*node.expr)); return Flow::Normal;
        case Node::Kind::SetBlock: {
            std::string body;
            execList(node.body, body);
            Value v(std::move(body));
            if (node.expr) {
                // The filter chain's innermost input is the block's text.
                std::function<Value(const Expr &)> applyChain = [&](const Expr &f) -> Value {
                    Value input = f.args[0] ? applyChain(*f.args[0]) : v;
                    CallArgs args;
                    evalArgs(f, 1, args);
                    return applyFilter(f.name, input, args);
                };
                v = applyChain(*node.expr);
            }
            execSet(node, v);
            return Flow::Normal;
        }
        case Node::Kind::Macro: {
            auto m = std::make_shared<MacroObject>(node.text, &node, m_scope, false);
            m_closureScopes.push_back(m_scope);
            m_scope->set(node.text, Value::object(m));
            return Flow::Normal;
        }
        case Node::Kind::CallBlock: {
            auto callerObj = std::make_shared<MacroObject>("caller", &node, m_scope, true);
            const Expr &callExpr = *node.expr;
            Value callee = eval(*callExpr.args[0]);
            CallArgs args;
            evalArgs(callExpr, 1, args);
            args.keyword.emplace_back("caller", Value::object(callerObj));
            const Value r = call(callee, args);
            emitText(out, toStr(r));
            return Flow::Normal;
        }
        case Node::Kind::FilterBlock: {
            std::string body;
            execList(node.body, body);
            const Value text(std::move(body));
            std::function<Value(const Expr &)> applyChain = [&](const Expr &f) -> Value {
                Value input = f.args[0] ? applyChain(*f.args[0]) : text;
                CallArgs args;
                evalArgs(f, 1, args);
                return applyFilter(f.name, input, args);
            };
            emitText(out, toStr(applyChain(*node.expr)));
            return Flow::Normal;
        }
        case Node::Kind::With: {
            auto scope = std::make_shared<Scope>();
            scope->parent = m_scope;
            std::vector<Value> values;
            for (const auto &a : node.assignments)
                values.push_back(eval(*a.second));
            auto saved = m_scope;
            m_scope = scope;
            Flow f;
            try {
                for (size_t i = 0; i < values.size(); ++i)
                    assignTarget(node.assignments[i].first, values[i], node.pos);
                f = execList(node.body, out);
            } catch (...) {
                m_scope = saved;
                throw;
            }
            m_scope = saved;
            return f;
        }
        case Node::Kind::Scope: {
            auto scope = std::make_shared<Scope>();
            scope->parent = m_scope;
            auto saved = m_scope;
            m_scope = scope;
            Flow f;
            try {
                f = execList(node.body, out);
            } catch (...) {
                m_scope = saved;
                throw;
            }
            m_scope = saved;
            return f;
        }
        case Node::Kind::Break: return Flow::Break;
        case Node::Kind::Continue: return Flow::Continue;
        }
    } catch (const EvalError &e) {
        throw RenderError("template error at " + describePos(node.pos) + ": " + e.what(),
                          e.kind() == EvalError::Kind::Raised);
    }
    return Flow::Normal;
}

void Renderer::assignTarget(const Target &target, const Value &value, const SourcePos &pos)
{
    if (!target.attr.empty()) {
        const Value ns = lookup(target.names[0]);
        auto *obj = dynamic_cast<Namespace *>(ns.object());
        if (!obj)
            throwType("cannot assign attribute on non-namespace object");
        obj->setAttr(target.attr, value);
        return;
    }
    if (!target.tuple) {
        m_scope->set(target.names[0], value);
        return;
    }
    std::vector<Value> items = iterate(value);
    if (items.size() != target.names.size())
        throwValue(items.size() > target.names.size()
                       ? "too many values to unpack (expected " + std::to_string(target.names.size()) + ")"
                       : "not enough values to unpack (expected " + std::to_string(target.names.size()) + ", got " +
                           std::to_string(items.size()) + ")");
    for (size_t i = 0; i < items.size(); ++i)
        m_scope->set(target.names[i], items[i]);
    (void)pos;
}

void Renderer::execSet(const Node &node, Value value)
{
    assignTarget(node.target, value, node.pos);
}

Renderer::Flow Renderer::execFor(const Node &node, std::string &out, const Value &iterable, int depth)
{
    std::vector<Value> all = iterate(iterable);
    auto loop = std::make_shared<LoopObject>();
    loop->m_depth = depth;
    loop->m_node = &node;
    loop->m_outer = m_scope;
    loop->m_renderer = this;
    loop->m_lastChanged = std::make_shared<std::vector<Value>>();
    auto saved = m_scope;
    try {
        if (node.cond) {
            // `for x in xs if cond`: the condition sees the loop variables but not `loop`.
            std::vector<Value> kept;
            for (Value &item : all) {
                if (++m_iterations > m_limits.maxLoopIterations)
                    throwLimit("template exceeded the limit of " + std::to_string(m_limits.maxLoopIterations) +
                               " loop iterations");
                auto scope = std::make_shared<Scope>();
                scope->parent = saved;
                m_scope = scope;
                assignTarget(node.target, item, node.pos);
                if (eval(*node.cond).truthy())
                    kept.push_back(std::move(item));
                m_scope = saved;
            }
            all = std::move(kept);
        }
        loop->m_items = std::move(all);
        const Value loopValue = Value::object(loop);
        const size_t n = loop->m_items.size();
        for (size_t i = 0; i < n; ++i) {
            if (++m_iterations > m_limits.maxLoopIterations)
                throwLimit("template exceeded the limit of " + std::to_string(m_limits.maxLoopIterations) +
                           " loop iterations");
            loop->m_index0 = int64_t(i);
            auto scope = std::make_shared<Scope>();
            scope->parent = saved;
            m_scope = scope;
            scope->set("loop", loopValue);
            assignTarget(node.target, loop->m_items[i], node.pos);
            const Flow f = execList(node.body, out);
            m_scope = saved;
            if (f == Flow::Break)
                break;
        }
        if (n == 0 && !node.elseBody.empty()) {
            auto scope = std::make_shared<Scope>();
            scope->parent = saved;
            m_scope = scope;
            execList(node.elseBody, out);
            m_scope = saved;
        }
    } catch (...) {
        m_scope = saved;
        throw;
    }
    return Flow::Normal;
}

std::vector<Value> Renderer::iterate(const Value &v)
{
    switch (v.kind()) {
    case Value::Kind::Undefined: return {};
    case Value::Kind::List: charge(int64_t(v.items().size())); return v.items();
    case Value::Kind::Dict: {
        std::vector<Value> keys;
        keys.reserve(v.dictData().size());
        for (const auto &kv : v.dictData().items())
            keys.push_back(kv.first);
        charge(int64_t(keys.size()));
        return keys;
    }
    case Value::Kind::String: {
        std::vector<Value> chars;
        const std::string &s = v.str();
        if (isAscii(s)) {
            for (char c : s)
                chars.emplace_back(std::string(1, c));
        } else {
            for (uint32_t cp : toCodePoints(s)) {
                std::string c;
                appendCodePoint(c, cp);
                chars.emplace_back(std::move(c));
            }
        }
        charge(int64_t(chars.size()));
        return chars;
    }
    default: break;
    }
    throwType("'" + v.typeName() + "' object is not iterable");
}

bool Renderer::contains(const Value &container, const Value &item)
{
    switch (container.kind()) {
    case Value::Kind::Undefined: return false;
    case Value::Kind::String:
        if (!item.isString()) {
            if (item.isUndefined())
                throwUndefined(item.undefinedHint());
            throwType("'in <string>' requires string as left operand, not " + item.typeName());
        }
        return container.str().find(item.str()) != std::string::npos;
    case Value::Kind::List:
        charge(int64_t(container.items().size()));
        for (const Value &e : container.items())
            if (valuesEqual(e, item))
                return true;
        return false;
    case Value::Kind::Dict: return container.dictData().find(item) != nullptr;
    default: break;
    }
    throwType("argument of type '" + container.typeName() + "' is not iterable");
}

Value Renderer::getAttrOnly(const Value &obj, const std::string &name)
{
    if (obj.isUndefined())
        throwUndefined(obj.undefinedHint());
    if (obj.isObject()) {
        Value out;
        if (obj.object()->getAttr(name, out))
            return out;
        return missingAttr(obj, name);
    }
    bool unsafe = false;
    if (isMethodName(obj, name, unsafe)) {
        if (unsafe)
            return Value::undefined("access to attribute '" + name + "' of '" + obj.typeName() +
                                    "' object is unsafe.");
        const Value self = obj;
        return Value::object(std::make_shared<BuiltinFunction>(name, [self, name](Renderer &r, CallArgs &args) {
            Value result;
            callMethod(r, self, name, args, result);
            return result;
        }));
    }
    return missingAttr(obj, name);
}

Value Renderer::getAttr(const Value &obj, const std::string &name)
{
    if (obj.isUndefined())
        throwUndefined(obj.undefinedHint());
    if (obj.isObject())
        return getAttrOnly(obj, name);
    bool unsafe = false;
    if (isMethodName(obj, name, unsafe))
        return getAttrOnly(obj, name);
    if (obj.isDict())
        if (const Value *v = obj.dictData().findString(name))
            return *v;
    return missingAttr(obj, name);
}

Value Renderer::getItem(const Value &obj, const Value &key)
{
    switch (obj.kind()) {
    case Value::Kind::Undefined: throwUndefined(obj.undefinedHint());
    case Value::Kind::Dict: {
        if (key.isList() && !key.isTuple())
            break; // unhashable: falls through to the attribute lookup below
        if (key.isDict())
            break;
        if (const Value *v = obj.dictData().find(key))
            return *v;
        break;
    }
    case Value::Kind::List:
    case Value::Kind::String: {
        if (!(key.isInt() || key.isBool()))
            break;
        int64_t i = key.asInt();
        if (obj.isList()) {
            const auto &items = obj.items();
            if (i < 0)
                i += int64_t(items.size());
            if (i < 0 || i >= int64_t(items.size()))
                return missingItem(obj, key);
            return items[size_t(i)];
        }
        const std::string &s = obj.str();
        if (isAscii(s)) {
            if (i < 0)
                i += int64_t(s.size());
            if (i < 0 || i >= int64_t(s.size()))
                return missingItem(obj, key);
            return Value(std::string(1, s[size_t(i)]));
        }
        const auto cps = toCodePoints(s);
        if (i < 0)
            i += int64_t(cps.size());
        if (i < 0 || i >= int64_t(cps.size()))
            return missingItem(obj, key);
        std::string c;
        appendCodePoint(c, cps[size_t(i)]);
        return Value(std::move(c));
    }
    default: break;
    }
    if (key.isString()) {
        if (obj.isObject() || obj.isDict() || obj.isList() || obj.isString()) {
            const Value v = getAttrOnly(obj, key.str());
            return v;
        }
        return missingAttr(obj, key.str());
    }
    return missingItem(obj, key);
}

Value Renderer::resolveAttributePath(const Value &obj, const Value &path)
{
    if (!path.isString())
        return getItem(obj, path);
    const std::string dot = ".";
    Value cur = obj;
    for (const std::string &part : pySplit(path.str(), &dot, -1)) {
        const bool isInt =
            !part.empty() && part.size() < 18 && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
        cur = isInt ? getItem(cur, Value(int64_t(std::stoll(part)))) : getItem(cur, Value(part));
    }
    return cur;
}

Value Renderer::slice(const Value &obj, const Value &startV, const Value &stopV, const Value &stepV)
{
    if (obj.isUndefined())
        throwUndefined(obj.undefinedHint());
    int64_t start, stop, step;
    if (obj.isList()) {
        const auto &items = obj.items();
        adjustSlice(int64_t(items.size()), startV, stopV, stepV, start, stop, step);
        std::vector<Value> out;
        for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step)
            out.push_back(items[size_t(i)]);
        charge(int64_t(out.size()));
        return Value::list(std::move(out), obj.isTuple());
    }
    if (obj.isString()) {
        const std::string &s = obj.str();
        if (isAscii(s)) {
            adjustSlice(int64_t(s.size()), startV, stopV, stepV, start, stop, step);
            std::string out;
            for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step)
                out += s[size_t(i)];
            return Value(std::move(out));
        }
        const auto cps = toCodePoints(s);
        adjustSlice(int64_t(cps.size()), startV, stopV, stepV, start, stop, step);
        std::string out;
        for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step)
            appendCodePoint(out, cps[size_t(i)]);
        return Value(std::move(out));
    }
    if (obj.isDict() || obj.isNone() || obj.isNumber() || obj.isObject()) {
        // Python raises TypeError; jinja2 turns a failed subscript into undefined.
        return Value::undefined(objectTypeRepr(obj) + " has no element slice");
    }
    return Value::undefined("");
}

void Renderer::evalArgs(const Expr &e, size_t firstArg, CallArgs &args)
{
    for (size_t i = firstArg; i < e.args.size(); ++i)
        args.positional.push_back(eval(*e.args[i]));
    if (e.starArgs)
        for (Value &v : iterate(eval(*e.starArgs)))
            args.positional.push_back(std::move(v));
    for (const auto &kv : e.kwargs)
        args.keyword.emplace_back(kv.first, eval(*kv.second));
    if (e.starKwargs) {
        const Value d = eval(*e.starKwargs);
        if (!d.isDict())
            throwType("argument after ** must be a mapping, not " + d.typeName());
        for (const auto &kv : d.dictData().items()) {
            if (!kv.first.isString())
                throwType("keywords must be strings");
            args.keyword.emplace_back(kv.first.str(), kv.second);
        }
    }
}

Value Renderer::call(const Value &callee, CallArgs &args)
{
    if (callee.isUndefined())
        throw EvalError(callee.undefinedHint().find("unsafe") != std::string::npos ? EvalError::Kind::Security
                                                                                    : EvalError::Kind::Undefined,
                        callee.undefinedHint());
    if (callee.isObject() && callee.object()->isCallable())
        return callee.objectPtr()->call(*this, args);
    throwType("'" + callee.typeName() + "' object is not callable");
}

Value Renderer::evalCall(const Expr &e)
{
    const Expr &fn = *e.args[0];
    CallArgs args;
    if (fn.kind == Expr::Kind::GetAttr) {
        const Value obj = eval(*fn.args[0]);
        if (obj.isUndefined())
            throwUndefined(obj.undefinedHint());
        if (!obj.isObject()) {
            bool unsafe = false;
            if (isMethodName(obj, fn.name, unsafe)) {
                if (unsafe)
                    throw EvalError(EvalError::Kind::Security, "access to attribute '" + fn.name + "' of '" +
                                                                   obj.typeName() + "' object is unsafe.");
                evalArgs(e, 1, args);
                Value result;
                callMethod(*this, obj, fn.name, args, result);
                return result;
            }
        }
        const Value callee = getAttr(obj, fn.name);
        evalArgs(e, 1, args);
        return call(callee, args);
    }
    const Value callee = eval(fn);
    evalArgs(e, 1, args);
    return call(callee, args);
}

Value Renderer::applyFilter(const std::string &name, const Value &input, CallArgs &args)
{
    FilterFn f = findFilter(name);
    if (!f)
        throw EvalError(EvalError::Kind::Type, "no filter named '" + name + "'");
    charge(1);
    Value v = f(*this, input, args);
    if (v.isString())
        checkSize(v.str().size());
    return v;
}

bool Renderer::applyTest(const std::string &name, const Value &v, CallArgs &args)
{
    TestFn t = findTest(name);
    if (!t)
        throw EvalError(EvalError::Kind::Type, "no test named '" + name + "'");
    return t(*this, v, args);
}

Value Renderer::eval(const Expr &e)
{
    try {
        NestingGuard nesting(m_nesting, m_limits.maxNesting);
        charge(1);
        return evalInner(e);
    } catch (const EvalError &err) {
        throw RenderError("template error at " + describePos(e.pos) + ": " + err.what(),
                          err.kind() == EvalError::Kind::Raised);
    } catch (const std::length_error &) {
        throw RenderError("template error at " + describePos(e.pos) + ": value larger than the limit of " +
                              std::to_string(m_limits.maxOutputBytes) + " bytes",
                          false);
    }
}

Value Renderer::evalInner(const Expr &e)
{
    switch (e.kind) {
    case Expr::Kind::Const: return e.value;
    case Expr::Kind::Name: return lookup(e.name);
    case Expr::Kind::List:
    case Expr::Kind::Tuple: {
        std::vector<Value> items;
        items.reserve(e.args.size());
        for (const auto &a : e.args)
            items.push_back(eval(*a));
        return Value::list(std::move(items), e.kind == Expr::Kind::Tuple);
    }
    case Expr::Kind::DictLit: {
        Dict d;
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
            Value k = eval(*e.args[i]);
            d.set(k, eval(*e.args[i + 1]));
        }
        return Value::dict(std::move(d));
    }
    case Expr::Kind::GetAttr: return getAttr(eval(*e.args[0]), e.name);
    case Expr::Kind::GetItem: return getItem(eval(*e.args[0]), eval(*e.args[1]));
    case Expr::Kind::Slice: {
        const Value obj = eval(*e.args[0]);
        const Value a = e.args[1] ? eval(*e.args[1]) : Value::none();
        const Value b = e.args[2] ? eval(*e.args[2]) : Value::none();
        const Value c = e.args[3] ? eval(*e.args[3]) : Value::none();
        return slice(obj, a, b, c);
    }
    case Expr::Kind::Call: return evalCall(e);
    case Expr::Kind::Filter: {
        const Value input = eval(*e.args[0]);
        CallArgs args;
        evalArgs(e, 1, args);
        return applyFilter(e.name, input, args);
    }
    case Expr::Kind::Test: {
        const Value subject = eval(*e.args[0]);
        CallArgs args;
        evalArgs(e, 1, args);
        const bool r = applyTest(e.name, subject, args);
        return Value::boolean(e.negated ? !r : r);
    }
    case Expr::Kind::Neg:
    case Expr::Kind::Pos: {
        const Value v = eval(*e.args[0]);
        if (v.isUndefined())
            throwUndefined(v.undefinedHint());
        if (v.isFloat())
            return Value(e.kind == Expr::Kind::Neg ? -v.asDouble() : v.asDouble());
        if (v.isInt() || v.isBool()) {
            if (e.kind == Expr::Kind::Pos)
                return Value(v.asInt());
            if (v.asInt() == INT64_MIN)
                throwValue("integer overflow (values beyond 64 bits are not supported)");
            return Value(-v.asInt());
        }
        throwType(std::string("bad operand type for unary ") + (e.kind == Expr::Kind::Neg ? "-" : "+") + ": '" +
                  v.typeName() + "'");
    }
    case Expr::Kind::Not: return Value::boolean(!eval(*e.args[0]).truthy());
    case Expr::Kind::And: {
        Value l = eval(*e.args[0]);
        if (!l.truthy())
            return l;
        return eval(*e.args[1]);
    }
    case Expr::Kind::Or: {
        Value l = eval(*e.args[0]);
        if (l.truthy())
            return l;
        return eval(*e.args[1]);
    }
    case Expr::Kind::CondExpr: {
        if (eval(*e.args[1]).truthy())
            return eval(*e.args[0]);
        if (e.args[2])
            return eval(*e.args[2]);
        return Value::undefined("the inline if-expression on " + describePos(e.pos) +
                                " evaluated to false and no else section was defined.");
    }
    case Expr::Kind::Binary: {
        const Value a = eval(*e.args[0]);
        const Value b = eval(*e.args[1]);
        Value r = binaryOp(e.name, a, b);
        if (r.isString())
            checkSize(r.str().size());
        return r;
    }
    case Expr::Kind::Compare: {
        Value left = eval(*e.args[0]);
        for (size_t i = 0; i < e.ops.size(); ++i) {
            Value right = eval(*e.args[i + 1]);
            if (!compareOp(e.ops[i], left, right))
                return Value::boolean(false);
            left = std::move(right);
        }
        return Value::boolean(true);
    }
    }
    return Value();
}

bool Renderer::compareOp(const std::string &op, const Value &a, const Value &b)
{
    if (op == "==")
        return valuesEqual(a, b);
    if (op == "!=")
        return !valuesEqual(a, b);
    if (op == "in")
        return contains(b, a);
    if (op == "notin")
        return !contains(b, a);
    const int c = compareValues(a, b, op.c_str());
    if (op == "<")
        return c < 0;
    if (op == "<=")
        return c <= 0;
    if (op == ">")
        return c > 0;
    return c >= 0;
}

Value Renderer::binaryOp(const std::string &op, const Value &a, const Value &b)
{
    if (op == "~") {
        std::string s = toStr(a);
        const std::string t = toStr(b);
        checkSize(s.size() + t.size());
        s += t;
        return Value(std::move(s));
    }
    if (a.isUndefined())
        throwUndefined(a.undefinedHint());
    if (b.isUndefined())
        throwUndefined(b.undefinedHint());
    auto unsupported = [&]() -> Value {
        throwType("unsupported operand type(s) for " + op + ": '" + a.typeName() + "' and '" + b.typeName() + "'");
    };
    const bool numeric = a.isNumber() && b.isNumber();
    const bool anyFloat = a.isFloat() || b.isFloat();
    if (op == "+") {
        if (numeric) {
            if (anyFloat)
                return Value(a.asDouble() + b.asDouble());
            int64_t r;
            if (__builtin_add_overflow(a.asInt(), b.asInt(), &r))
                throwValue("integer overflow (values beyond 64 bits are not supported)");
            return Value(r);
        }
        if (a.isString() && b.isString()) {
            checkSize(a.str().size() + b.str().size());
            if (a.isMarkup() || b.isMarkup()) {
                const std::string l = a.isMarkup() ? a.str() : htmlEscape(a.str());
                const std::string r = b.isMarkup() ? b.str() : htmlEscape(b.str());
                return Value(l + r, true);
            }
            return Value(a.str() + b.str());
        }
        if (a.isList() && b.isList() && a.isTuple() == b.isTuple()) {
            checkSize((a.items().size() + b.items().size()) * sizeof(Value));
            std::vector<Value> items = a.items();
            items.insert(items.end(), b.items().begin(), b.items().end());
            charge(int64_t(items.size()));
            return Value::list(std::move(items), a.isTuple());
        }
        if (a.isString())
            throwType("can only concatenate str (not \"" + b.typeName() + "\") to str");
        if (a.isList())
            throwType("can only concatenate " + a.typeName() + " (not \"" + b.typeName() + "\") to " + a.typeName());
        return unsupported();
    }
    if (op == "-") {
        if (!numeric)
            return unsupported();
        if (anyFloat)
            return Value(a.asDouble() - b.asDouble());
        int64_t r;
        if (__builtin_sub_overflow(a.asInt(), b.asInt(), &r))
            throwValue("integer overflow (values beyond 64 bits are not supported)");
        return Value(r);
    }
    if (op == "*") {
        if (numeric) {
            if (anyFloat)
                return Value(a.asDouble() * b.asDouble());
            return Value(checkedMul(a.asInt(), b.asInt()));
        }
        const Value *seq = nullptr, *count = nullptr;
        if ((a.isString() || a.isList()) && (b.isInt() || b.isBool())) {
            seq = &a;
            count = &b;
        } else if ((b.isString() || b.isList()) && (a.isInt() || a.isBool())) {
            seq = &b;
            count = &a;
        }
        if (!seq) {
            if (a.isString() || b.isString() || a.isList() || b.isList())
                throwType("can't multiply sequence by non-int of type '" +
                          (a.isString() || a.isList() ? b : a).typeName() + "'");
            return unsupported();
        }
        const int64_t n = std::max<int64_t>(0, count->asInt());
        if (seq->isString()) {
            const size_t unit = seq->str().size();
            if (unit && n > 0 && (uint64_t(n) > m_limits.maxOutputBytes / unit))
                checkSize(m_limits.maxOutputBytes + 1);
            std::string out;
            out.reserve(unit * size_t(n));
            for (int64_t i = 0; i < n; ++i)
                out += seq->str();
            return Value(std::move(out), seq->isMarkup());
        }
        const size_t unit = seq->items().size();
        if (unit && n > 0 && uint64_t(n) > (m_limits.maxOutputBytes / sizeof(Value)) / unit)
            checkSize(m_limits.maxOutputBytes + 1);
        charge(int64_t(unit) * n);
        std::vector<Value> out;
        for (int64_t i = 0; i < n; ++i)
            out.insert(out.end(), seq->items().begin(), seq->items().end());
        return Value::list(std::move(out), seq->isTuple());
    }
    if (op == "/") {
        if (!numeric)
            return unsupported();
        if (b.asDouble() == 0.0)
            throwValue("division by zero");
        return Value(a.asDouble() / b.asDouble());
    }
    if (op == "//") {
        if (!numeric)
            return unsupported();
        if (anyFloat) {
            if (b.asDouble() == 0.0)
                throwValue("float floor division by zero");
            return Value(std::floor(a.asDouble() / b.asDouble()));
        }
        return Value(floorDiv(a.asInt(), b.asInt()));
    }
    if (op == "%") {
        if (a.isString())
            return Value(percentFormat(*this, a.str(), b));
        if (!numeric)
            return unsupported();
        if (anyFloat) {
            const double x = a.asDouble(), y = b.asDouble();
            if (y == 0.0)
                throwValue("float modulo");
            double m = std::fmod(x, y);
            if (m != 0 && ((m < 0) != (y < 0)))
                m += y;
            return Value(m);
        }
        return Value(floorMod(a.asInt(), b.asInt()));
    }
    if (op == "**") {
        if (!numeric)
            return unsupported();
        if (!anyFloat && b.asInt() >= 0) {
            int64_t base = a.asInt(), exp = b.asInt(), result = 1;
            while (exp > 0) {
                if (exp & 1)
                    result = checkedMul(result, base);
                exp >>= 1;
                if (exp)
                    base = checkedMul(base, base);
            }
            return Value(result);
        }
        const double x = a.asDouble(), y = b.asDouble();
        if (x == 0.0 && y < 0)
            throwValue("0.0 cannot be raised to a negative power");
        if (x < 0 && std::floor(y) != y)
            throwValue("negative number cannot be raised to a fractional power (complex results are not supported)");
        return Value(std::pow(x, y));
    }
    return unsupported();
}

} // namespace dpo::jinja
