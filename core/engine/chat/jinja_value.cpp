// Jinja values: construction, Python truthiness, equality and ordering, str()/repr(), and
// transformers' tojson (json.dumps with ensure_ascii=False by default).
#include "engine/chat/jinja_value.h"

#include "engine/chat/jinja_pystr.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace dpo::jinja {

void throwType(const std::string &message)
{
    throw EvalError(EvalError::Kind::Type, message);
}

void throwUndefined(const std::string &message)
{
    throw EvalError(EvalError::Kind::Undefined, message);
}

void throwValue(const std::string &message)
{
    throw EvalError(EvalError::Kind::Value, message);
}

namespace {

void throwDepth()
{
    throw EvalError(EvalError::Kind::Limit,
                    "value nested deeper than " + std::to_string(kMaxValueDepth) + " levels");
}

} // namespace

Value Value::undefined(std::string hint)
{
    Value v;
    if (!hint.empty())
        v.m_ptr = std::make_shared<const std::string>(std::move(hint));
    return v;
}

Value Value::none()
{
    Value v;
    v.m_kind = Kind::None;
    return v;
}

Value Value::boolean(bool b)
{
    Value v;
    v.m_kind = Kind::Bool;
    v.m_num.b = b;
    return v;
}

Value::Value(std::string s, bool markup) : m_kind(Kind::String), m_markup(markup)
{
    m_ptr = std::make_shared<const std::string>(std::move(s));
}

Value Value::list(std::vector<Value> items, bool tuple)
{
    auto l = std::make_shared<ValueList>();
    int depth = 0;
    for (const Value &v : items)
        depth = std::max(depth, v.depth());
    if (depth + 1 > kMaxValueDepth)
        throwDepth();
    l->items = std::move(items);
    l->tuple = tuple;
    l->depth = depth + 1;
    Value v;
    v.m_kind = Kind::List;
    v.m_ptr = std::move(l);
    return v;
}

Value Value::dict(Dict d)
{
    if (d.depth() > kMaxValueDepth)
        throwDepth();
    Value v;
    v.m_kind = Kind::Dict;
    v.m_ptr = std::make_shared<const Dict>(std::move(d));
    return v;
}

Value Value::object(std::shared_ptr<Object> o)
{
    Value v;
    v.m_kind = Kind::Object;
    v.m_ptr = std::move(o);
    return v;
}

double Value::asDouble() const
{
    switch (m_kind) {
    case Kind::Bool: return m_num.b ? 1.0 : 0.0;
    case Kind::Int: return double(m_num.i);
    case Kind::Float: return m_num.f;
    default: return 0.0;
    }
}

const std::string &Value::str() const
{
    static const std::string empty;
    if (m_kind != Kind::String || !m_ptr)
        return empty;
    return *static_cast<const std::string *>(m_ptr.get());
}

const ValueList &Value::listData() const
{
    static const ValueList empty;
    if (m_kind != Kind::List)
        return empty;
    return *static_cast<const ValueList *>(m_ptr.get());
}

const Dict &Value::dictData() const
{
    static const Dict empty;
    if (m_kind != Kind::Dict)
        return empty;
    return *static_cast<const Dict *>(m_ptr.get());
}

Object *Value::object() const
{
    if (m_kind != Kind::Object)
        return nullptr;
    return const_cast<Object *>(static_cast<const Object *>(m_ptr.get()));
}

std::shared_ptr<Object> Value::objectPtr() const
{
    if (m_kind != Kind::Object)
        return nullptr;
    return std::const_pointer_cast<Object>(std::static_pointer_cast<const Object>(m_ptr));
}

std::string Value::undefinedHint() const
{
    if (m_kind == Kind::Undefined && m_ptr)
        return *static_cast<const std::string *>(m_ptr.get());
    return "value is undefined";
}

int Value::depth() const
{
    if (m_kind == Kind::List)
        return listData().depth;
    if (m_kind == Kind::Dict)
        return dictData().depth();
    return 0;
}

bool Value::truthy() const
{
    switch (m_kind) {
    case Kind::Undefined:
    case Kind::None: return false;
    case Kind::Bool: return m_num.b;
    case Kind::Int: return m_num.i != 0;
    case Kind::Float: return m_num.f != 0.0;
    case Kind::String: return !str().empty();
    case Kind::List: return !items().empty();
    case Kind::Dict: return !dictData().empty();
    case Kind::Object: return object()->truthy();
    }
    return false;
}

std::string Value::typeName() const
{
    switch (m_kind) {
    case Kind::Undefined: return "Undefined";
    case Kind::None: return "NoneType";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::String: return m_markup ? "Markup" : "str";
    case Kind::List: return listData().tuple ? "tuple" : "list";
    case Kind::Dict: return "dict";
    case Kind::Object: return object()->typeName();
    }
    return "object";
}

std::string hashKey(const Value &v)
{
    switch (v.kind()) {
    case Value::Kind::String: return "s" + v.str();
    case Value::Kind::Bool:
    case Value::Kind::Int: return "i" + std::to_string(v.asInt());
    case Value::Kind::Float: {
        const double f = v.asDouble();
        if (std::floor(f) == f && std::fabs(f) < 9.0e18)
            return "i" + std::to_string(int64_t(f));
        return "f" + pyReprFloat(f);
    }
    case Value::Kind::None: return "N";
    case Value::Kind::Undefined: return "U";
    case Value::Kind::List:
        if (v.isTuple()) {
            std::string k = "t";
            for (const Value &e : v.items()) {
                const std::string ek = hashKey(e);
                k += std::to_string(ek.size()) + ":" + ek;
            }
            return k;
        }
        break;
    case Value::Kind::Object: {
        char buf[32];
        std::snprintf(buf, sizeof buf, "o%p", static_cast<void *>(v.object()));
        return buf;
    }
    default: break;
    }
    throwType("unhashable type: '" + v.typeName() + "'");
}

void Dict::set(const Value &key, Value value)
{
    const std::string k = hashKey(key);
    m_depth = std::max(m_depth, value.depth() + 1);
    auto it = m_index.find(k);
    if (it != m_index.end()) {
        m_items[it->second].second = std::move(value);
        return;
    }
    m_index.emplace(k, m_items.size());
    m_items.emplace_back(key, std::move(value));
}

const Value *Dict::find(const Value &key) const
{
    auto it = m_index.find(hashKey(key));
    return it == m_index.end() ? nullptr : &m_items[it->second].second;
}

const Value *Dict::findString(const std::string &key) const
{
    auto it = m_index.find("s" + key);
    return it == m_index.end() ? nullptr : &m_items[it->second].second;
}

const Value *CallArgs::kw(const std::string &name) const
{
    for (const auto &p : keyword)
        if (p.first == name)
            return &p.second;
    return nullptr;
}

const Value *CallArgs::get(size_t pos, const std::string &name) const
{
    if (pos < positional.size())
        return &positional[pos];
    return kw(name);
}

Value Object::call(Renderer &, CallArgs &)
{
    throwType("'" + typeName() + "' object is not callable");
}

std::string Namespace::repr() const
{
    std::string s = "<Namespace {";
    bool first = true;
    for (const auto &kv : m_attrs.items()) {
        if (!first)
            s += ", ";
        first = false;
        s += toRepr(kv.first) + ": " + toRepr(kv.second);
    }
    return s + "}>";
}

bool Namespace::getAttr(const std::string &name, Value &out) const
{
    const Value *v = m_attrs.findString(name);
    if (!v)
        return false;
    out = *v;
    return true;
}

namespace {

std::string reprImpl(const Value &v, int depth);

std::string strImpl(const Value &v, int depth)
{
    switch (v.kind()) {
    case Value::Kind::Undefined: return "";
    case Value::Kind::String: return v.str();
    default: return reprImpl(v, depth);
    }
}

// Depth of reprs in progress on this thread: namespaces print their attributes through
// Object::repr, which does not see the caller's depth.
thread_local int t_reprDepth = 0;

std::string reprImpl(const Value &v, int depth)
{
    struct Guard {
        Guard()
        {
            if (++t_reprDepth > kMaxValueDepth) {
                --t_reprDepth;
                throwDepth();
            }
        }
        ~Guard() { --t_reprDepth; }
    } guard;
    if (depth > kMaxValueDepth)
        throwDepth();
    switch (v.kind()) {
    case Value::Kind::Undefined: return "Undefined";
    case Value::Kind::None: return "None";
    case Value::Kind::Bool: return v.asBool() ? "True" : "False";
    case Value::Kind::Int: return std::to_string(v.asInt());
    case Value::Kind::Float: return pyReprFloat(v.asDouble());
    case Value::Kind::String:
        if (v.isMarkup())
            return "Markup(" + pyReprString(v.str()) + ")";
        return pyReprString(v.str());
    case Value::Kind::List: {
        const bool tuple = v.isTuple();
        std::string s = tuple ? "(" : "[";
        const auto &items = v.items();
        for (size_t i = 0; i < items.size(); ++i) {
            if (i)
                s += ", ";
            s += reprImpl(items[i], depth + 1);
        }
        if (tuple && items.size() == 1)
            s += ",";
        s += tuple ? ")" : "]";
        return s;
    }
    case Value::Kind::Dict: {
        std::string s = "{";
        bool first = true;
        for (const auto &kv : v.dictData().items()) {
            if (!first)
                s += ", ";
            first = false;
            s += reprImpl(kv.first, depth + 1) + ": " + reprImpl(kv.second, depth + 1);
        }
        return s + "}";
    }
    case Value::Kind::Object: return v.object()->repr();
    }
    return "";
}

void jsonString(std::string &out, const std::string &s, bool ensureAscii)
{
    out += '"';
    char buf[16];
    auto escapeCp = [&](uint32_t cp) {
        switch (cp) {
        case '"': out += "\\\""; return;
        case '\\': out += "\\\\"; return;
        case '\n': out += "\\n"; return;
        case '\r': out += "\\r"; return;
        case '\t': out += "\\t"; return;
        case '\b': out += "\\b"; return;
        case '\f': out += "\\f"; return;
        default: break;
        }
        if (cp < 0x20) {
            std::snprintf(buf, sizeof buf, "\\u%04x", cp);
            out += buf;
        } else if (ensureAscii && cp >= 0x7F) {
            if (cp >= 0x10000) {
                const uint32_t c = cp - 0x10000;
                std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", 0xD800 + (c >> 10), 0xDC00 + (c & 0x3FF));
            } else {
                std::snprintf(buf, sizeof buf, "\\u%04x", cp);
            }
            out += buf;
        } else {
            appendCodePoint(out, cp);
        }
    };
    if (!ensureAscii) {
        for (char c : s) {
            const unsigned char u = static_cast<unsigned char>(c);
            if (u < 0x20 || c == '"' || c == '\\')
                escapeCp(u);
            else
                out += c;
        }
    } else {
        for (uint32_t cp : toCodePoints(s))
            escapeCp(cp);
    }
    out += '"';
}

std::string jsonKey(const Value &k)
{
    switch (k.kind()) {
    case Value::Kind::String: return k.str();
    case Value::Kind::Bool: return k.asBool() ? "true" : "false";
    case Value::Kind::Int: return std::to_string(k.asInt());
    case Value::Kind::Float: return jsonFloat(k.asDouble());
    case Value::Kind::None: return "null";
    default: break;
    }
    throwType("keys must be str, int, float, bool or None, not " + k.typeName());
}

void jsonImpl(std::string &out, const Value &v, const JsonDumpOptions &o, int level)
{
    if (level > kMaxValueDepth)
        throwDepth();
    const std::string itemSep = o.hasSeparators ? o.itemSeparator : (o.hasIndent ? "," : ", ");
    const std::string keySep = o.hasSeparators ? o.keySeparator : ": ";
    auto newline = [&](int lvl) {
        out += '\n';
        for (int i = 0; i < lvl; ++i)
            out += o.indent;
    };
    switch (v.kind()) {
    case Value::Kind::None: out += "null"; return;
    case Value::Kind::Bool: out += v.asBool() ? "true" : "false"; return;
    case Value::Kind::Int: out += std::to_string(v.asInt()); return;
    case Value::Kind::Float: out += jsonFloat(v.asDouble()); return;
    case Value::Kind::String: jsonString(out, v.str(), o.ensureAscii); return;
    case Value::Kind::List: {
        const auto &items = v.items();
        if (items.empty()) {
            out += "[]";
            return;
        }
        out += '[';
        for (size_t i = 0; i < items.size(); ++i) {
            if (i)
                out += itemSep;
            if (o.hasIndent)
                newline(level + 1);
            jsonImpl(out, items[i], o, level + 1);
        }
        if (o.hasIndent)
            newline(level);
        out += ']';
        return;
    }
    case Value::Kind::Dict: {
        const auto &src = v.dictData().items();
        if (src.empty()) {
            out += "{}";
            return;
        }
        std::vector<const std::pair<Value, Value> *> items;
        for (const auto &kv : src)
            items.push_back(&kv);
        if (o.sortKeys)
            std::stable_sort(items.begin(), items.end(), [](const auto *a, const auto *b) {
                return compareValues(a->first, b->first, "<") < 0;
            });
        out += '{';
        bool first = true;
        for (const auto *kv : items) {
            if (!first)
                out += itemSep;
            first = false;
            if (o.hasIndent)
                newline(level + 1);
            jsonString(out, jsonKey(kv->first), o.ensureAscii);
            out += keySep;
            jsonImpl(out, kv->second, o, level + 1);
        }
        if (o.hasIndent)
            newline(level);
        out += '}';
        return;
    }
    default: break;
    }
    throwType("Object of type " + v.typeName() + " is not JSON serializable");
}

bool sameListKind(const Value &a, const Value &b)
{
    return a.isTuple() == b.isTuple();
}

} // namespace

std::string toStr(const Value &v)
{
    return strImpl(v, 0);
}

std::string toRepr(const Value &v)
{
    return reprImpl(v, 0);
}

std::string toJson(const Value &v, const JsonDumpOptions &opts)
{
    std::string out;
    jsonImpl(out, v, opts, 0);
    return out;
}

bool valuesEqual(const Value &a, const Value &b)
{
    if (a.isNumber() && b.isNumber()) {
        if (a.isFloat() || b.isFloat())
            return a.asDouble() == b.asDouble();
        return a.asInt() == b.asInt();
    }
    if (a.kind() != b.kind())
        return false;
    switch (a.kind()) {
    case Value::Kind::Undefined:
    case Value::Kind::None: return true;
    case Value::Kind::String: return a.str() == b.str();
    case Value::Kind::List: {
        if (!sameListKind(a, b))
            return false;
        const auto &x = a.items();
        const auto &y = b.items();
        if (x.size() != y.size())
            return false;
        for (size_t i = 0; i < x.size(); ++i)
            if (!valuesEqual(x[i], y[i]))
                return false;
        return true;
    }
    case Value::Kind::Dict: {
        const Dict &x = a.dictData();
        const Dict &y = b.dictData();
        if (x.size() != y.size())
            return false;
        for (const auto &kv : x.items()) {
            const Value *o = y.find(kv.first);
            if (!o || !valuesEqual(kv.second, *o))
                return false;
        }
        return true;
    }
    case Value::Kind::Object: return a.object() == b.object();
    default: return false;
    }
}

int compareValues(const Value &a, const Value &b, const char *op)
{
    if (a.isNumber() && b.isNumber()) {
        if (a.isFloat() || b.isFloat()) {
            const double x = a.asDouble(), y = b.asDouble();
            return x < y ? -1 : (x > y ? 1 : 0);
        }
        const int64_t x = a.asInt(), y = b.asInt();
        return x < y ? -1 : (x > y ? 1 : 0);
    }
    if (a.isString() && b.isString()) {
        const int c = a.str().compare(b.str());
        return c < 0 ? -1 : (c > 0 ? 1 : 0);
    }
    if (a.isList() && b.isList() && sameListKind(a, b)) {
        const auto &x = a.items();
        const auto &y = b.items();
        for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
            if (valuesEqual(x[i], y[i]))
                continue;
            return compareValues(x[i], y[i], op);
        }
        return x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0);
    }
    if (a.isUndefined() || b.isUndefined())
        throwUndefined((a.isUndefined() ? a : b).undefinedHint());
    throwType(std::string("'") + op + "' not supported between instances of '" + a.typeName() + "' and '" +
              b.typeName() + "'");
}

Value fromJson(const nlohmann::ordered_json &j, int depth)
{
    if (depth > kMaxValueDepth)
        throwDepth();
    switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return Value::none();
    case nlohmann::ordered_json::value_t::boolean: return Value::boolean(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer: return Value(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
        const uint64_t u = j.get<uint64_t>();
        if (u > uint64_t(INT64_MAX))
            return Value(double(u));
        return Value(int64_t(u));
    }
    case nlohmann::ordered_json::value_t::number_float: return Value(j.get<double>());
    case nlohmann::ordered_json::value_t::string: return Value(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
        std::vector<Value> items;
        items.reserve(j.size());
        for (const auto &e : j)
            items.push_back(fromJson(e, depth + 1));
        return Value::list(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
        Dict d;
        for (auto it = j.begin(); it != j.end(); ++it)
            d.set(Value(it.key()), fromJson(it.value(), depth + 1));
        return Value::dict(std::move(d));
    }
    default: break;
    }
    return Value::none();
}

} // namespace dpo::jinja
