// Interpreter for parsed Jinja templates, with the semantics of jinja2 3.1's
// ImmutableSandboxedEnvironment as transformers configures it: Python operators and truthiness,
// jinja2's default Undefined (prints empty, iterates empty, raises on most other uses), attribute
// lookup that tries the Python attribute before the item, scoping (a `set` inside a loop or macro
// stays there, namespaces are shared), macros with defaults and `caller`, loop controls, the
// `loop` object, and safe Python methods on str/dict/list (mutating methods are refused as the
// sandbox refuses them). Filters, tests and globals live in jinja_builtins.cpp.
//
// Hostile templates: every loop iteration and evaluation step is counted, strings and the output are
// bounded, macro calls are bounded in depth; exceeding a limit raises dpo::Error, never hangs.
#pragma once

#include "engine/chat/jinja_parser.h"
#include "engine/chat/jinja_value.h"
#include "engine/error.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace dpo::jinja {

struct RenderLimits {
    size_t maxOutputBytes = size_t(64) << 20; // also the largest string or list a template may build
    int64_t maxLoopIterations = 1'000'000;    // all loops of one render together (and range() length)
    int64_t maxSteps = 100'000'000;           // evaluation steps + elements touched by filters
    int maxCallDepth = 100;                   // nested macro calls
    int maxNesting = 1000;                    // nested evaluations and blocks, macro bodies included
};

// A render error with the template position already in its message.
class RenderError : public Error {
public:
    RenderError(const std::string &message, bool raised) : Error(message), m_raised(raised) {}
    bool raisedByTemplate() const { return m_raised; }

private:
    bool m_raised;
};

struct Scope {
    std::shared_ptr<Scope> parent;
    std::vector<std::pair<std::string, Value>> vars;

    Value *findLocal(const std::string &name)
    {
        for (auto &kv : vars)
            if (kv.first == name)
                return &kv.second;
        return nullptr;
    }
    void set(const std::string &name, Value v)
    {
        if (Value *p = findLocal(name))
            *p = std::move(v);
        else
            vars.emplace_back(name, std::move(v));
    }
};

class Renderer {
public:
    using StrftimeFn = std::function<std::string(const std::string &format)>;

    Renderer(std::shared_ptr<const Template> tpl, RenderLimits limits, StrftimeFn strftimeNow);
    ~Renderer();

    // Renders with `context` as the template variables. Throws RenderError / dpo::Error.
    std::string render(const Dict &context);

    // Services for builtins and callables.
    Value call(const Value &callee, CallArgs &args);
    Value applyFilter(const std::string &name, const Value &input, CallArgs &args);
    bool applyTest(const std::string &name, const Value &v, CallArgs &args);
    Value getAttr(const Value &obj, const std::string &name);     // `obj.name`
    Value getItem(const Value &obj, const Value &key);            // `obj[key]`
    Value getAttrOnly(const Value &obj, const std::string &name); // the `attr` filter
    std::vector<Value> iterate(const Value &v);                   // Python iteration
    bool contains(const Value &container, const Value &item);     // `item in container`
    void charge(int64_t steps);
    void checkSize(size_t bytes);
    const RenderLimits &limits() const { return m_limits; }
    std::string strftimeNow(const std::string &format) { return m_strftime(format); }
    void trackNamespace(const std::shared_ptr<Namespace> &ns) { m_namespaces.push_back(ns); }
    // Attribute path "a.b.0" as the map/selectattr/sort filters resolve it.
    Value resolveAttributePath(const Value &obj, const Value &path);

    // Used by macro and loop objects.
    Value callMacro(const class MacroObject &macro, CallArgs &args);
    std::string renderRecursiveLoop(const class LoopObject &loop, const Value &iterable);

private:
    enum class Flow { Normal, Break, Continue };

    Flow execList(const NodeList &nodes, std::string &out);
    Flow exec(const Node &node, std::string &out);
    Flow execFor(const Node &node, std::string &out, const Value &iterable, int depth);
    void execSet(const Node &node, Value value);
    void assignTarget(const Target &target, const Value &value, const SourcePos &pos);
    Value eval(const Expr &e);
    Value evalInner(const Expr &e);
    Value evalCall(const Expr &e);
    void evalArgs(const Expr &e, size_t firstArg, CallArgs &args);
    Value binaryOp(const std::string &op, const Value &a, const Value &b);
    bool compareOp(const std::string &op, const Value &a, const Value &b);
    Value lookup(const std::string &name);
    Value slice(const Value &obj, const Value &start, const Value &stop, const Value &step);
    void emitText(std::string &out, const std::string &text);
    bool bodyUsesName(const Node &macro, const std::string &name);

    std::shared_ptr<const Template> m_tpl;
    RenderLimits m_limits;
    StrftimeFn m_strftime;
    const Dict *m_context = nullptr;
    std::shared_ptr<Scope> m_scope;
    int64_t m_steps = 0;
    int64_t m_iterations = 0;
    int m_callDepth = 0;
    int m_nesting = 0;
    std::vector<std::shared_ptr<Namespace>> m_namespaces;
    std::vector<std::shared_ptr<Scope>> m_closureScopes; // cleared after a render: macro <-> scope cycles

    friend class MacroObject;
    friend class LoopObject;
};

// Built-in callable (a global function or a bound method).
class BuiltinFunction : public Object {
public:
    using Fn = std::function<Value(Renderer &, CallArgs &)>;
    BuiltinFunction(std::string name, Fn fn) : m_name(std::move(name)), m_fn(std::move(fn)) {}
    std::string typeName() const override { return "builtin_function_or_method"; }
    std::string repr() const override { return "<built-in function " + m_name + ">"; }
    bool isCallable() const override { return true; }
    Value call(Renderer &r, CallArgs &args) override { return m_fn(r, args); }

private:
    std::string m_name;
    Fn m_fn;
};

class MacroObject : public Object {
public:
    MacroObject(std::string name, const Node *node, std::shared_ptr<Scope> closure, bool isCaller)
        : m_name(std::move(name)), m_node(node), m_closure(std::move(closure)), m_isCaller(isCaller)
    {
    }
    std::string typeName() const override { return "Macro"; }
    std::string repr() const override { return "<Macro '" + m_name + "'>"; }
    bool isCallable() const override { return true; }
    Value call(Renderer &r, CallArgs &args) override { return r.callMacro(*this, args); }

    std::string m_name;
    const Node *m_node; // Macro node, or CallBlock node for `caller`
    std::shared_ptr<Scope> m_closure;
    bool m_isCaller;
};

class LoopObject : public Object {
public:
    std::string typeName() const override { return "LoopContext"; }
    std::string repr() const override
    {
        return "<LoopContext " + std::to_string(m_index0 + 1) + "/" + std::to_string(m_items.size()) + ">";
    }
    bool getAttr(const std::string &name, Value &out) const override;
    bool isCallable() const override { return m_node && m_node->recursive; }
    Value call(Renderer &r, CallArgs &args) override;

    std::vector<Value> m_items;
    int64_t m_index0 = 0;
    int m_depth = 1;
    const Node *m_node = nullptr;
    std::shared_ptr<Scope> m_outer;
    Renderer *m_renderer = nullptr;
    std::shared_ptr<std::vector<Value>> m_lastChanged;
};

// Tables of builtins (jinja_builtins.cpp).
using FilterFn = Value (*)(Renderer &r, const Value &input, CallArgs &args);
using TestFn = bool (*)(Renderer &r, const Value &v, CallArgs &args);
FilterFn findFilter(const std::string &name);
TestFn findTest(const std::string &name);
Value findGlobal(const std::string &name);
// Methods of str / dict / list values; false when `name` is not a (safe) method of `obj`.
bool callMethod(Renderer &r, const Value &obj, const std::string &name, CallArgs &args, Value &result);
bool isMethodName(const Value &obj, const std::string &name, bool &unsafe);
// Python `%` formatting and str.format.
std::string percentFormat(Renderer &r, const std::string &fmt, const Value &args);
std::string strFormat(Renderer &r, const std::string &fmt, CallArgs &args);

} // namespace dpo::jinja
