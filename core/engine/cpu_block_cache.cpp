#include "engine/cpu_block_cache.h"

#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <unordered_map>

namespace dpo {

namespace {

constexpr size_t kMinCachedBytes = size_t(4) << 20;
constexpr size_t kRounding = size_t(2) << 20;

class CpuBlockCache final : public c10::Allocator {
public:
    // Every block is allocated with c10::alloc_cpu (as libtorch's default CPU allocator does) and its
    // DataPtr context is the data pointer itself, so raw_allocate/raw_deallocate work too; large
    // blocks are remembered by address.
    // libtorch changed this interface in 2.x (allocate no longer const, copy_data pure virtual): both
    // forms are declared without `override`, so whichever the base class has is the one overridden.
    c10::DataPtr allocate(size_t n) { return allocateBlock(n); }
    c10::DataPtr allocate(size_t n) const { return allocateBlock(n); }
    void copy_data(void *dest, const void *src, std::size_t count) const { std::memcpy(dest, src, count); }

    c10::DataPtr allocateBlock(size_t n) const
    {
        if (n < kMinCachedBytes) {
            void *p = c10::alloc_cpu(n);
            return { p, p, &CpuBlockCache::release, c10::Device(c10::DeviceType::CPU) };
        }
        const size_t bytes = (n + kRounding - 1) / kRounding * kRounding;
        void *p = nullptr;
        {
            std::lock_guard<std::mutex> lock(m_mutex);
            auto it = std::find_if(m_idle.begin(), m_idle.end(), [&](const Idle &b) { return b.bytes == bytes; });
            if (it != m_idle.end()) {
                p = it->data;
                m_idle.erase(it);
                m_stats.idleBytes -= int64_t(bytes);
                ++m_stats.hits;
            } else {
                ++m_stats.misses;
            }
        }
        if (!p) {
            try {
                p = c10::alloc_cpu(bytes);
            } catch (...) {
                // Out of memory: give the idle blocks back to the system and try once more.
                releaseIdle(0);
                p = c10::alloc_cpu(bytes);
            }
        }
        {
            std::lock_guard<std::mutex> lock(m_mutex);
            m_live[p] = bytes;
            m_stats.liveBytes += int64_t(bytes);
        }
        return { p, p, &CpuBlockCache::release, c10::Device(c10::DeviceType::CPU) };
    }

    c10::DeleterFnPtr raw_deleter() const override { return &CpuBlockCache::release; }

    static void release(void *p);

    void setMaxIdle(int64_t bytes)
    {
        bytes = std::max<int64_t>(0, bytes);
        {
            std::lock_guard<std::mutex> lock(m_mutex);
            m_stats.maxIdleBytes = bytes;
        }
        releaseIdle(bytes);
    }

    // Frees the oldest idle blocks until at most `bound` idle bytes remain.
    void releaseIdle(int64_t bound) const
    {
        std::deque<Idle> freed;
        {
            std::lock_guard<std::mutex> lock(m_mutex);
            while (!m_idle.empty() && m_stats.idleBytes > bound) {
                freed.push_back(m_idle.front());
                m_stats.idleBytes -= int64_t(m_idle.front().bytes);
                m_idle.pop_front();
            }
        }
        for (const Idle &b : freed)
            c10::free_cpu(b.data);
    }

    // A freed block: kept when it is a large one, released otherwise.
    void giveBack(void *p) const
    {
        int64_t bound = -1;
        {
            std::lock_guard<std::mutex> lock(m_mutex);
            auto it = m_live.find(p);
            if (it != m_live.end()) {
                m_idle.push_back({ p, it->second });
                m_stats.liveBytes -= int64_t(it->second);
                m_stats.idleBytes += int64_t(it->second);
                m_live.erase(it);
                bound = m_stats.maxIdleBytes;
            }
        }
        if (bound < 0)
            c10::free_cpu(p);
        else
            releaseIdle(bound);
    }

    CpuBlockCacheStats stats() const
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        return m_stats;
    }

private:
    struct Idle {
        void *data;
        size_t bytes;
    };
    mutable std::mutex m_mutex;
    mutable std::unordered_map<void *, size_t> m_live; // large blocks in use -> their size
    mutable std::deque<Idle> m_idle; // oldest first
    mutable CpuBlockCacheStats m_stats;
};

// Never destroyed: tensors may be freed during static destruction.
CpuBlockCache *g_cache = nullptr;
std::once_flag g_installed;

void CpuBlockCache::release(void *p)
{
    g_cache->giveBack(p);
}

} // namespace

void installCpuBlockCache(int64_t maxIdleBytes)
{
    if (const char *env = std::getenv("DPO_CPU_CACHE_MB"); env && *env)
        maxIdleBytes = int64_t(std::max(0L, std::atol(env))) << 20;
    std::call_once(g_installed, [] {
        g_cache = new CpuBlockCache();
        c10::SetCPUAllocator(g_cache, /*priority=*/1);
    });
    g_cache->setMaxIdle(maxIdleBytes);
}

CpuBlockCacheStats cpuBlockCacheStats()
{
    return g_cache ? g_cache->stats() : CpuBlockCacheStats {};
}

void releaseCpuBlockCache()
{
    if (g_cache)
        g_cache->releaseIdle(0);
}

} // namespace dpo
