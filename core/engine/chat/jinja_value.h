// Values of the Jinja engine, modelled on the Python objects that jinja2 manipulates when
// transformers renders a chat template: Undefined, None, bool, int (64-bit; overflow is an error,
// not a big integer), float, str (UTF-8, optionally marked "safe" like markupsafe.Markup), list and
// tuple, dict (insertion-ordered, hashable keys), and objects (namespace, loop, callables).
// Lists and dicts are immutable once built, as in transformers' ImmutableSandboxedEnvironment;
// namespaces are the one mutable, shared value. Printing follows Python's str() and repr().
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace dpo::jinja {

class Value;
class Dict;
class Object;
class Renderer;

struct ValueList {
    std::vector<Value> items;
    bool tuple = false;
    int depth = 1;
};

// An error raised while evaluating: the renderer adds the template position.
class EvalError : public std::exception {
public:
    enum class Kind { Type, Undefined, Value, Security, Raised, Limit };
    EvalError(Kind kind, std::string message) : m_kind(kind), m_message(std::move(message)) {}
    const char *what() const noexcept override { return m_message.c_str(); }
    Kind kind() const { return m_kind; }

private:
    Kind m_kind;
    std::string m_message;
};

[[noreturn]] void throwType(const std::string &message);
[[noreturn]] void throwUndefined(const std::string &message);
[[noreturn]] void throwValue(const std::string &message);

class Value {
public:
    enum class Kind : uint8_t { Undefined, None, Bool, Int, Float, String, List, Dict, Object };

    Value() = default; // Undefined
    static Value undefined(std::string hint);
    static Value none();
    static Value boolean(bool b);
    Value(int64_t i) : m_kind(Kind::Int) { m_num.i = i; }
    Value(int i) : Value(int64_t(i)) {}
    Value(double f) : m_kind(Kind::Float) { m_num.f = f; }
    Value(std::string s, bool markup = false);
    Value(const char *s) : Value(std::string(s)) {}
    static Value list(std::vector<Value> items, bool tuple = false);
    static Value dict(Dict d);
    static Value object(std::shared_ptr<Object> o);

    Kind kind() const { return m_kind; }
    bool isUndefined() const { return m_kind == Kind::Undefined; }
    bool isNone() const { return m_kind == Kind::None; }
    bool isBool() const { return m_kind == Kind::Bool; }
    bool isInt() const { return m_kind == Kind::Int; }
    bool isFloat() const { return m_kind == Kind::Float; }
    bool isNumber() const { return m_kind == Kind::Int || m_kind == Kind::Float || m_kind == Kind::Bool; }
    bool isString() const { return m_kind == Kind::String; }
    bool isList() const { return m_kind == Kind::List; }
    bool isTuple() const { return m_kind == Kind::List && listData().tuple; }
    bool isDict() const { return m_kind == Kind::Dict; }
    bool isObject() const { return m_kind == Kind::Object; }
    bool isMarkup() const { return m_kind == Kind::String && m_markup; }

    bool asBool() const { return m_num.b; }
    int64_t asInt() const { return m_kind == Kind::Bool ? int64_t(m_num.b) : m_num.i; }
    double asDouble() const;
    const std::string &str() const;
    const std::vector<Value> &items() const { return listData().items; }
    const ValueList &listData() const;
    const Dict &dictData() const;
    Object *object() const;
    std::shared_ptr<Object> objectPtr() const;
    // For Undefined: the message an operation on it reports ("'x' is undefined").
    std::string undefinedHint() const;
    int depth() const;

    // Python truthiness.
    bool truthy() const;
    // Python type name, for error messages ('str', 'int', 'NoneType', 'dict', ...).
    std::string typeName() const;

private:
    Kind m_kind = Kind::Undefined;
    bool m_markup = false;
    union {
        bool b;
        int64_t i;
        double f;
    } m_num{};
    std::shared_ptr<const void> m_ptr;
};

// Insertion-ordered dict with Python key equality (1 == 1.0 == True; unhashable keys rejected).
class Dict {
public:
    void set(const Value &key, Value value);
    const Value *find(const Value &key) const;
    const Value *findString(const std::string &key) const;
    size_t size() const { return m_items.size(); }
    bool empty() const { return m_items.empty(); }
    const std::vector<std::pair<Value, Value>> &items() const { return m_items; }
    int depth() const { return m_depth; }

private:
    std::vector<std::pair<Value, Value>> m_items;
    std::unordered_map<std::string, size_t> m_index;
    int m_depth = 1;
};

// Hash key of a value, as Python's hash/equality groups them. Throws EvalError for unhashables.
std::string hashKey(const Value &v);

struct CallArgs {
    std::vector<Value> positional;
    std::vector<std::pair<std::string, Value>> keyword;

    const Value *kw(const std::string &name) const;
    // Positional index `pos` or keyword `name`, or nullptr.
    const Value *get(size_t pos, const std::string &name) const;
};

class Object {
public:
    virtual ~Object() = default;
    virtual std::string typeName() const = 0;
    virtual std::string repr() const = 0;
    // Attribute lookup: false when absent.
    virtual bool getAttr(const std::string &name, Value &out) const
    {
        (void)name;
        (void)out;
        return false;
    }
    virtual bool isCallable() const { return false; }
    virtual Value call(Renderer &r, CallArgs &args);
    virtual bool truthy() const { return true; }
};

// jinja2's namespace(): attributes settable with {% set ns.x = ... %}.
class Namespace : public Object {
public:
    std::string typeName() const override { return "Namespace"; }
    std::string repr() const override;
    bool getAttr(const std::string &name, Value &out) const override;
    void setAttr(const std::string &name, Value v) { m_attrs.set(Value(name), std::move(v)); }
    void clear() { m_attrs = Dict(); }
    const Dict &attrs() const { return m_attrs; }

private:
    Dict m_attrs;
};

// Python str() and repr() of a value.
std::string toStr(const Value &v);
std::string toRepr(const Value &v);

// transformers' tojson: json.dumps(x, ensure_ascii, indent, separators, sort_keys).
struct JsonDumpOptions {
    bool ensureAscii = false;
    bool hasIndent = false;
    std::string indent; // the indent unit (an int N becomes N spaces)
    bool hasSeparators = false;
    std::string itemSeparator;
    std::string keySeparator;
    bool sortKeys = false;
};
std::string toJson(const Value &v, const JsonDumpOptions &opts);

// Python ==, and <, <= ... (throws EvalError for unorderable types).
bool valuesEqual(const Value &a, const Value &b);
// Negative, zero, positive, as Python's ordering. Throws EvalError for unorderable types.
int compareValues(const Value &a, const Value &b, const char *op);

// JSON (from the caller) to Value: null -> None, ints stay ints, decimals floats, object order kept.
Value fromJson(const nlohmann::ordered_json &j, int depth = 0);

constexpr int kMaxValueDepth = 512;

} // namespace dpo::jinja
