// safetensors: reading (memory-mapped, zero-copy) and writing the Hugging Face weight format, and
// loading a model folder's weights (model.safetensors or shards listed by
// model.safetensors.index.json). The header of every file is validated before any tensor is
// handed out: header length inside the file, a JSON object, known dtypes, non-negative shapes,
// offsets inside the data area, sizes equal to numel x itemsize, no overlapping ranges. A corrupt
// or hostile file is refused with a dpo::Error naming the file and the tensor or field.
// It does not know about models: names are whatever the file says (see causal_lm.h for mapping).
#pragma once

#include "engine/torch_api.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace dpo {

class SafetensorsFile {
public:
    struct Entry {
        torch::ScalarType dtype;
        std::string dtypeName; // as written in the file: "F32", "BF16", ...
        std::vector<int64_t> shape;
        uint64_t begin = 0; // byte offsets inside the data area
        uint64_t end = 0;
    };

    // Maps `path` read-only (copy-on-write: writing to a returned tensor never touches the file)
    // and validates its header. Throws dpo::Error naming the file.
    static SafetensorsFile open(const std::string &path);

    const std::string &path() const { return m_path; }
    // Tensor names in file order of their data (ascending offsets).
    std::vector<std::string> names() const;
    bool contains(const std::string &name) const { return m_entries.count(name) != 0; }
    const Entry &entry(const std::string &name) const;
    // A CPU tensor viewing the mapping; the mapping stays alive as long as any such tensor does.
    // Data that is not aligned for its dtype is copied instead. Throws dpo::Error for an unknown name.
    torch::Tensor tensor(const std::string &name) const;
    // The header's "__metadata__" (string -> string), empty when absent.
    const std::map<std::string, std::string> &metadata() const { return m_metadata; }

private:
    struct Mapping;
    std::string m_path;
    std::shared_ptr<Mapping> m_mapping;
    const uint8_t *m_data = nullptr; // start of the data area (after the header)
    std::map<std::string, Entry> m_entries;
    std::map<std::string, std::string> m_metadata;
};

// Weights of a Hugging Face model folder: DIR/model.safetensors, or the shards named by
// DIR/model.safetensors.index.json ("weight_map"), each listed tensor checked to exist in its
// shard. The tensors view the memory-mapped files (zero-copy, CPU).
std::map<std::string, torch::Tensor> loadSafetensorsWeights(const std::string &dir);

// Writes `tensors` (moved to CPU, made contiguous) to `path` as the reference writer does: sorted
// names, header padded with spaces to a multiple of 8, data ordered so every tensor is aligned.
// The file is written to `path + ".tmp"`, fsync'ed and renamed into place; on any failure (full
// disk, unsupported dtype) it throws dpo::Error and leaves no file at `path` nor the .tmp.
void saveSafetensors(const std::string &path, const std::map<std::string, torch::Tensor> &tensors,
    const std::map<std::string, std::string> &metadata = {});

// "F32", "BF16", ... for a dtype; throws dpo::Error for dtypes safetensors cannot hold here.
std::string safetensorsDtypeName(torch::ScalarType dtype);

} // namespace dpo
