// A CPU allocator for libtorch that keeps freed large blocks (>= 4 MiB) for reuse instead of
// returning them to the system.
//
// Why: glibc serves blocks above its mmap threshold (<= 32 MiB) with mmap and unmaps them on free,
// so every large tensor of a training step (a chunk of logits, a vocabulary-sized weight gradient,
// an optimizer temporary) is page-faulted in again, zero-filled by the kernel, at every step. On a
// virtual machine that cost most of a step (82 s of which ~20 s in page faults on the 152k-vocabulary
// benchmark; README, "CPU speed"). Steps allocate the same sizes again and again, so a small cache of
// exact (2 MiB-rounded) sizes removes nearly all of it, the way PyTorch's CUDA caching allocator does
// on the device. Idle cached bytes are bounded; the oldest idle blocks are released past the bound.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dpo {

struct CpuBlockCacheStats {
    int64_t idleBytes = 0; // cached, free for reuse
    int64_t liveBytes = 0; // handed out, still in use
    int64_t hits = 0; // allocations served from the cache
    int64_t misses = 0; // large allocations that went to the system
    int64_t maxIdleBytes = 0;
};

// Makes the cache libtorch's CPU allocator (once per process; later calls only change the bound).
// maxIdleBytes 0 turns caching off (blocks are released on free). DPO_CPU_CACHE_MB in the
// environment overrides the bound given by initRuntime.
void installCpuBlockCache(int64_t maxIdleBytes);
CpuBlockCacheStats cpuBlockCacheStats();
// Releases every idle block (the trainer calls it when a run ends).
void releaseCpuBlockCache();

} // namespace dpo
