#include "engine/cpu_block_cache.h"

#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include <algorithm>
#include <cstdlib>
#include <deque>
#include <mutex>

namespace dpo {

namespace {

constexpr size_t kMinCachedBytes = size_t(4) << 20;
constexpr size_t kRounding = size_t(2) << 20;

struct Block {
    void *data = nullptr;
    size_t bytes = 0;
};

class CpuBlockCache final : public c10::Allocator {
public:
    explicit CpuBlockCache(c10::Allocator *fallback)
        : m_fallback(fallback)
    {
    }

    c10::DataPtr allocate(size_t n) const override
    {
        if (n < kMinCachedBytes)
            return m_fallback->allocate(n);
        const size_t bytes = (n + kRounding - 1) / kRounding * kRounding;
        Block *block = nullptr;
        {
            std::lock_guard<std::mutex> lock(m_mutex);
            auto it = std::find_if(m_idle.begin(), m_idle.end(), [&](const Block *b) { return b->bytes == bytes; });
            if (it != m_idle.end()) {
                block = *it;
                m_idle.erase(it);
                m_stats.idleBytes -= int64_t(bytes);
                ++m_stats.hits;
            } else {
                ++m_stats.misses;
            }
            m_stats.liveBytes += int64_t(bytes);
        }
        if (!block) {
            block = new Block;
            block->bytes = bytes;
            try {
                block->data = c10::alloc_cpu(bytes);
            } catch (...) {
                // Out of memory: give the cache back to the system and try once more.
                releaseIdle(0);
                try {
                    block->data = c10::alloc_cpu(bytes);
                } catch (...) {
                    std::lock_guard<std::mutex> lock(m_mutex);
                    m_stats.liveBytes -= int64_t(bytes);
                    delete block;
                    throw;
                }
            }
        }
        return { block->data, block, &CpuBlockCache::giveBack, c10::Device(c10::DeviceType::CPU) };
    }

    c10::DeleterFnPtr raw_deleter() const override { return nullptr; }

    static void giveBack(void *ctx);

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
        std::deque<Block *> freed;
        {
            std::lock_guard<std::mutex> lock(m_mutex);
            while (!m_idle.empty() && m_stats.idleBytes > bound) {
                freed.push_back(m_idle.front());
                m_stats.idleBytes -= int64_t(m_idle.front()->bytes);
                m_idle.pop_front();
            }
        }
        for (Block *b : freed) {
            c10::free_cpu(b->data);
            delete b;
        }
    }

    void keep(Block *block) const
    {
        int64_t bound = 0;
        {
            std::lock_guard<std::mutex> lock(m_mutex);
            m_stats.liveBytes -= int64_t(block->bytes);
            m_idle.push_back(block);
            m_stats.idleBytes += int64_t(block->bytes);
            bound = m_stats.maxIdleBytes;
        }
        releaseIdle(bound);
    }

    CpuBlockCacheStats stats() const
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        return m_stats;
    }

private:
    c10::Allocator *m_fallback;
    mutable std::mutex m_mutex;
    mutable std::deque<Block *> m_idle; // oldest first
    mutable CpuBlockCacheStats m_stats;
};

// Never destroyed: tensors may be freed during static destruction.
CpuBlockCache *g_cache = nullptr;
std::once_flag g_installed;

void CpuBlockCache::giveBack(void *ctx)
{
    g_cache->keep(static_cast<Block *>(ctx));
}

} // namespace

void installCpuBlockCache(int64_t maxIdleBytes)
{
    if (const char *env = std::getenv("DPO_CPU_CACHE_MB"); env && *env)
        maxIdleBytes = int64_t(std::max(0L, std::atol(env))) << 20;
    std::call_once(g_installed, [] {
        g_cache = new CpuBlockCache(c10::GetDefaultCPUAllocator());
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
