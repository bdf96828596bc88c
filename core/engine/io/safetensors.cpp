#include "engine/io/safetensors.h"

#include "engine/error.h"
#include "engine/io/json_limits.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace dpo {

namespace {

// The reference implementation refuses headers above 100 MB; so do we (a hostile length field
// must not make us allocate gigabytes before the JSON is even looked at).
constexpr uint64_t kMaxHeaderBytes = 100ull * 1024 * 1024;

struct DtypeInfo {
    const char *name;
    torch::ScalarType type;
    uint64_t itemSize;
};

const DtypeInfo kDtypes[] = {
    { "F64", torch::kFloat64, 8 },
    { "F32", torch::kFloat32, 4 },
    { "F16", torch::kFloat16, 2 },
    { "BF16", torch::kBFloat16, 2 },
    { "I64", torch::kInt64, 8 },
    { "I32", torch::kInt32, 4 },
    { "I16", torch::kInt16, 2 },
    { "I8", torch::kInt8, 1 },
    { "U8", torch::kUInt8, 1 },
    { "BOOL", torch::kBool, 1 },
};

const DtypeInfo *dtypeByName(const std::string &name)
{
    for (const auto &d : kDtypes)
        if (name == d.name)
            return &d;
    return nullptr;
}

const DtypeInfo *dtypeByType(torch::ScalarType t)
{
    for (const auto &d : kDtypes)
        if (t == d.type)
            return &d;
    return nullptr;
}

std::string sysError(const std::string &what, const std::string &path)
{
    return path + ": " + what + ": " + std::strerror(errno);
}

// Names quoted in errors are cut: a header may hold a 100 MB tensor name.
std::string shortName(const std::string &name)
{
    return name.size() <= 120 ? name : name.substr(0, 120) + "...";
}

std::string shapeString(const std::vector<int64_t> &shape)
{
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i)
        s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

bool isNonNegativeInt(const nlohmann::json &v)
{
    return v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0);
}

uint64_t readLe64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i)
        v = (v << 8) | p[i];
    return v;
}

void writeAll(int fd, const void *data, size_t n, const std::string &path)
{
    const auto *p = static_cast<const char *>(data);
    while (n > 0) {
        ssize_t w = ::write(fd, p, std::min<size_t>(n, size_t(1) << 30));
        if (w < 0) {
            if (errno == EINTR)
                continue;
            throw Error(sysError("cannot write", path));
        }
        if (w == 0) {
            errno = ENOSPC;
            throw Error(sysError("cannot write", path));
        }
        p += w;
        n -= size_t(w);
    }
}

} // namespace

struct SafetensorsFile::Mapping {
    void *addr = MAP_FAILED;
    size_t size = 0;
    ~Mapping()
    {
        if (addr != MAP_FAILED)
            ::munmap(addr, size);
    }
};

SafetensorsFile SafetensorsFile::open(const std::string &path)
{
    static_assert(sizeof(void *) == 8, "64-bit platform expected");
    {
        const uint16_t probe = 1;
        if (*reinterpret_cast<const uint8_t *>(&probe) != 1)
            throw Error(path + ": safetensors data is little-endian; this machine is not");
    }

    SafetensorsFile f;
    f.m_path = path;

    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        throw Error(sysError("cannot open safetensors file", path));
    struct stat st { };
    if (::fstat(fd, &st) != 0) {
        ::close(fd);
        throw Error(sysError("cannot stat", path));
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        throw Error(path + ": not a regular file");
    }
    const uint64_t fileSize = uint64_t(st.st_size);
    if (fileSize < 8) {
        ::close(fd);
        throw Error(path + ": truncated safetensors file (" + std::to_string(fileSize)
            + " bytes, not even the 8-byte header length)");
    }
    auto mapping = std::make_shared<Mapping>();
    // MAP_PRIVATE + PROT_WRITE: copy-on-write, so in-place edits of a returned tensor are safe and
    // never reach the file; untouched pages cost nothing.
    mapping->addr = ::mmap(nullptr, fileSize, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    ::close(fd);
    if (mapping->addr == MAP_FAILED)
        throw Error(sysError("cannot memory-map", path));
    mapping->size = fileSize;
    f.m_mapping = mapping;
    const auto *base = static_cast<const uint8_t *>(mapping->addr);

    const uint64_t headerLen = readLe64(base);
    if (headerLen > fileSize - 8)
        throw Error(path + ": corrupt safetensors file: header length " + std::to_string(headerLen)
            + " goes past the end of the file (" + std::to_string(fileSize) + " bytes)");
    if (headerLen > kMaxHeaderBytes)
        throw Error(path + ": corrupt safetensors file: header length " + std::to_string(headerLen)
            + " exceeds the 100 MB limit");
    if (headerLen < 2)
        throw Error(path + ": corrupt safetensors file: header of " + std::to_string(headerLen) + " bytes");
    const uint64_t dataSize = fileSize - 8 - headerLen;
    f.m_data = base + 8 + headerLen;

    // Duplicate top-level keys would silently shadow each other in the parsed object.
    std::string duplicate;
    std::set<std::string> seen;
    nlohmann::json::parser_callback_t cb = [&](int depth, nlohmann::json::parse_event_t ev, nlohmann::json &v) {
        if (ev == nlohmann::json::parse_event_t::key && depth == 1 && v.is_string()) {
            if (!seen.insert(v.get<std::string>()).second && duplicate.empty())
                duplicate = v.get<std::string>();
        }
        return true;
    };
    // Nesting is bounded before parsing: a 130 KB header nested 66k levels deep would otherwise
    // overflow the stack in nlohmann's recursive dump/copy (json_limits.h).
    const nlohmann::json header = parseJsonLimited(
        std::string_view(reinterpret_cast<const char *>(base + 8), size_t(headerLen)),
        path + ": corrupt safetensors header", JsonLimits(), cb);
    if (!header.is_object())
        throw Error(path + ": corrupt safetensors header: not a JSON object");
    if (!duplicate.empty())
        throw Error(path + ": corrupt safetensors header: tensor '" + shortName(duplicate) + "' is listed twice");

    std::vector<std::pair<const std::string *, const Entry *>> byOffset;
    for (auto it = header.begin(); it != header.end(); ++it) {
        const std::string &name = it.key();
        const nlohmann::json &v = it.value();
        if (name == "__metadata__") {
            if (v.is_null())
                continue;
            if (!v.is_object())
                throw Error(path + ": corrupt safetensors header: __metadata__ is not an object");
            for (auto m = v.begin(); m != v.end(); ++m) {
                if (!m.value().is_string())
                    throw Error(path + ": corrupt safetensors header: __metadata__." + shortName(m.key()) + " is not a string");
                f.m_metadata[m.key()] = m.value().get<std::string>();
            }
            continue;
        }
        const std::string where = path + ": corrupt safetensors header: tensor '" + shortName(name) + "'";
        if (!v.is_object())
            throw Error(where + " is not an object");
        if (!v.contains("dtype") || !v["dtype"].is_string())
            throw Error(where + ": missing or non-string dtype");
        const std::string dtypeName = v["dtype"].get<std::string>();
        const DtypeInfo *dt = dtypeByName(dtypeName);
        if (!dt)
            throw Error(
                where + ": unsupported dtype '" + shortName(dtypeName) + "' (supported: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL)");
        if (!v.contains("shape") || !v["shape"].is_array())
            throw Error(where + ": missing or non-array shape");
        Entry e;
        e.dtype = dt->type;
        e.dtypeName = dtypeName;
        uint64_t numel = 1;
        bool overflow = false;
        for (const auto &d : v["shape"]) {
            if (!isNonNegativeInt(d))
                throw Error(where + ": shape " + jsonSnippet(v["shape"]) + " is not a list of non-negative integers");
            const uint64_t n = d.get<uint64_t>();
            if (n > uint64_t(INT64_MAX) || __builtin_mul_overflow(numel, n, &numel))
                overflow = true;
            e.shape.push_back(int64_t(std::min<uint64_t>(n, uint64_t(INT64_MAX))));
        }
        uint64_t nbytes = 0;
        if (overflow || __builtin_mul_overflow(numel, dt->itemSize, &nbytes))
            throw Error(where + ": shape " + jsonSnippet(v["shape"]) + " is too large");
        if (!v.contains("data_offsets") || !v["data_offsets"].is_array() || v["data_offsets"].size() != 2
            || !isNonNegativeInt(v["data_offsets"][0]) || !isNonNegativeInt(v["data_offsets"][1]))
            throw Error(where + ": data_offsets must be [begin, end] with non-negative integers");
        e.begin = v["data_offsets"][0].get<uint64_t>();
        e.end = v["data_offsets"][1].get<uint64_t>();
        if (e.begin > e.end || e.end > dataSize)
            throw Error(where + ": data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end)
                + "] lie outside the data area of " + std::to_string(dataSize) + " bytes");
        if (e.end - e.begin != nbytes)
            throw Error(where + ": data_offsets span " + std::to_string(e.end - e.begin) + " bytes but " + dtypeName
                + " " + shapeString(e.shape) + " needs " + std::to_string(nbytes));
        f.m_entries.emplace(name, std::move(e));
    }

    for (const auto &kv : f.m_entries)
        byOffset.emplace_back(&kv.first, &kv.second);
    std::sort(byOffset.begin(), byOffset.end(), [](const auto &a, const auto &b) {
        return a.second->begin != b.second->begin ? a.second->begin < b.second->begin : a.second->end < b.second->end;
    });
    for (size_t i = 1; i < byOffset.size(); ++i) {
        const Entry &prev = *byOffset[i - 1].second;
        const Entry &cur = *byOffset[i].second;
        if (cur.begin < prev.end)
            throw Error(path + ": corrupt safetensors header: tensors '" + shortName(*byOffset[i - 1].first)
                + "' and '" + shortName(*byOffset[i].first) + "' overlap");
    }
    return f;
}

std::vector<std::string> SafetensorsFile::names() const
{
    std::vector<std::pair<uint64_t, std::string>> order;
    for (const auto &kv : m_entries)
        order.emplace_back(kv.second.begin, kv.first);
    std::sort(order.begin(), order.end());
    std::vector<std::string> out;
    for (auto &o : order)
        out.push_back(std::move(o.second));
    return out;
}

const SafetensorsFile::Entry &SafetensorsFile::entry(const std::string &name) const
{
    auto it = m_entries.find(name);
    if (it == m_entries.end())
        throw Error(m_path + ": no tensor named '" + name + "'");
    return it->second;
}

torch::Tensor SafetensorsFile::tensor(const std::string &name) const
{
    const Entry &e = entry(name);
    auto opts = torch::TensorOptions().dtype(e.dtype).device(torch::kCPU);
    if (e.end == e.begin)
        return torch::empty(e.shape, opts);
    void *ptr = const_cast<uint8_t *>(m_data + e.begin);
    const auto item = uint64_t(c10::elementSize(e.dtype));
    if (reinterpret_cast<uintptr_t>(ptr) % item != 0) // foreign writers may not align data
        return torch::from_blob(ptr, e.shape, opts).clone();
    std::shared_ptr<Mapping> keep = m_mapping;
    return torch::from_blob(
        ptr, e.shape, [keep](void *) mutable { keep.reset(); }, opts);
}

std::map<std::string, torch::Tensor> loadSafetensorsWeights(const std::string &dir)
{
    const fs::path single = fs::path(dir) / "model.safetensors";
    const fs::path index = fs::path(dir) / "model.safetensors.index.json";
    std::map<std::string, torch::Tensor> out;
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
        throw Error(dir + ": model folder not found");
    if (fs::exists(single, ec)) {
        SafetensorsFile f = SafetensorsFile::open(single.string());
        for (const auto &n : f.names())
            out.emplace(n, f.tensor(n));
        return out;
    }
    if (!fs::exists(index, ec))
        throw Error(dir
            + ": no model.safetensors or model.safetensors.index.json (only safetensors weights are "
              "supported, not pytorch_model.bin)");

    const std::string indexPath = index.string();
    const nlohmann::json j = readJsonFileLimited(indexPath, largeJsonFileLimits());
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
        throw Error(indexPath + ": missing \"weight_map\" object");
    std::map<std::string, SafetensorsFile> shards;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
        if (!it.value().is_string())
            throw Error(indexPath + ": weight_map." + shortName(it.key()) + " is not a file name");
        const std::string shard = it.value().get<std::string>();
        // Shards live next to the index: a path component would let an index read anywhere.
        if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == "..")
            throw Error(indexPath + ": weight_map." + shortName(it.key()) + ": '" + shortName(shard) + "' is not a file name in the folder");
        auto s = shards.find(shard);
        if (s == shards.end()) {
            const fs::path p = fs::path(dir) / shard;
            if (!fs::exists(p, ec))
                throw Error(indexPath + ": shard '" + shard + "' (for tensor '" + it.key() + "') not found in " + dir);
            s = shards.emplace(shard, SafetensorsFile::open(p.string())).first;
        }
        if (!s->second.contains(it.key()))
            throw Error(
                s->second.path() + ": tensor '" + it.key() + "' listed in " + indexPath + " is not in this shard");
        out.emplace(it.key(), s->second.tensor(it.key()));
    }
    if (out.empty())
        throw Error(indexPath + ": weight_map is empty");
    return out;
}

std::string safetensorsDtypeName(torch::ScalarType dtype)
{
    const DtypeInfo *d = dtypeByType(dtype);
    if (!d)
        throw Error(std::string("dtype ") + c10::toString(dtype) + " cannot be stored in safetensors here");
    return d->name;
}

void saveSafetensors(const std::string &path, const std::map<std::string, torch::Tensor> &tensors,
    const std::map<std::string, std::string> &metadata)
{
    // Streamed: the header needs only shapes and dtypes; each tensor is brought to host memory (a no-op
    // for contiguous CPU tensors) when its bytes are written, so a checkpoint of GPU tensors holds one
    // tensor on the host at a time, not the whole state.
    struct Item {
        std::string name;
        const torch::Tensor *t;
        uint64_t itemSize;
        uint64_t nbytes;
    };
    std::vector<Item> items;
    for (const auto &kv : tensors) {
        if (kv.first == "__metadata__" || kv.first.empty())
            throw Error(path + ": invalid tensor name '" + kv.first + "'");
        if (!kv.second.defined())
            throw Error(path + ": tensor '" + kv.first + "' is undefined");
        const DtypeInfo *d = dtypeByType(kv.second.scalar_type());
        if (!d)
            throw Error(path + ": tensor '" + kv.first + "' has dtype " + c10::toString(kv.second.scalar_type())
                + ", which safetensors cannot hold here");
        items.push_back({ kv.first, &kv.second, d->itemSize, uint64_t(kv.second.numel()) * d->itemSize });
    }
    // Widest dtypes first so every tensor starts aligned for its type (the reference writer's order).
    std::stable_sort(items.begin(), items.end(), [](const Item &a, const Item &b) {
        return a.itemSize != b.itemSize ? a.itemSize > b.itemSize : a.name < b.name;
    });

    nlohmann::json header = nlohmann::json::object();
    uint64_t offset = 0;
    for (const auto &it : items) {
        nlohmann::json e;
        e["dtype"] = safetensorsDtypeName(it.t->scalar_type());
        e["shape"] = it.t->sizes().vec();
        e["data_offsets"] = { offset, offset + it.nbytes };
        header[it.name] = std::move(e);
        offset += it.nbytes;
    }
    if (!metadata.empty())
        header["__metadata__"] = metadata;
    std::string headerText = header.dump();
    headerText.append((8 - headerText.size() % 8) % 8, ' ');
    uint8_t lenBytes[8];
    for (int i = 0; i < 8; ++i)
        lenBytes[i] = uint8_t((uint64_t(headerText.size()) >> (8 * i)) & 0xff);

    const std::string tmp = path + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        throw Error(sysError("cannot create", tmp));
    try {
        writeAll(fd, lenBytes, 8, tmp);
        writeAll(fd, headerText.data(), headerText.size(), tmp);
        for (const auto &it : items) {
            if (!it.nbytes)
                continue;
            const torch::Tensor host = it.t->detach().to(torch::kCPU).contiguous();
            writeAll(fd, host.data_ptr(), it.nbytes, tmp);
        }
        if (::fsync(fd) != 0)
            throw Error(sysError("cannot sync", tmp));
        const int rc = ::close(fd);
        fd = -1;
        if (rc != 0)
            throw Error(sysError("cannot close", tmp));
        if (::rename(tmp.c_str(), path.c_str()) != 0)
            throw Error(sysError("cannot rename " + tmp + " to", path));
    } catch (...) {
        if (fd >= 0)
            ::close(fd);
        ::unlink(tmp.c_str());
        throw;
    }
    // Make the rename itself durable; failing here leaves a complete file, so it is not an error.
    const std::string parent = fs::path(path).parent_path().empty() ? "." : fs::path(path).parent_path().string();
    int dfd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
}

} // namespace dpo
