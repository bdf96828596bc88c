// The CPU block cache (cpu_block_cache.h): large blocks come back for the same size, small ones and
// other sizes do not, idle bytes stay within the bound, and tensors keep their contents.
#include "engine/cpu_block_cache.h"

#include "engine/torch_api.h"

#include <gtest/gtest.h>

namespace test_cpu_block_cache {

constexpr int64_t kMiB = int64_t(1) << 20;

class CpuBlockCache : public ::testing::Test {
protected:
    void SetUp() override
    {
        dpo::installCpuBlockCache(64 * kMiB);
        dpo::releaseCpuBlockCache();
    }
    void TearDown() override { dpo::installCpuBlockCache(256 * kMiB); }
};

TEST_F(CpuBlockCache, LargeBlockOfTheSameSizeIsReused)
{
    void *first = nullptr;
    {
        auto t = torch::ones({ 8 * kMiB / 4 }); // 8 MiB
        first = t.data_ptr();
    }
    const auto before = dpo::cpuBlockCacheStats();
    EXPECT_GE(before.idleBytes, 8 * kMiB);
    auto again = torch::empty({ 8 * kMiB / 4 });
    EXPECT_EQ(again.data_ptr(), first);
    EXPECT_EQ(dpo::cpuBlockCacheStats().hits, before.hits + 1);
    // A reused block is not zeroed for `empty`, but factory functions still fill it.
    auto zeros = torch::zeros({ 8 * kMiB / 4 });
    EXPECT_EQ(zeros.sum().item<float>(), 0.0f);
}

TEST_F(CpuBlockCache, SmallAllocationsBypassTheCache)
{
    const auto before = dpo::cpuBlockCacheStats();
    {
        auto t = torch::ones({ 1024 });
    }
    const auto after = dpo::cpuBlockCacheStats();
    EXPECT_EQ(after.hits + after.misses, before.hits + before.misses);
    EXPECT_EQ(after.idleBytes, before.idleBytes);
}

TEST_F(CpuBlockCache, IdleBytesStayWithinTheBound)
{
    // Ten distinct sizes of 10-19 MiB: 145 MiB freed, at most 64 MiB kept.
    for (int i = 0; i < 10; ++i) {
        auto t = torch::empty({ (10 + i) * kMiB / 4 });
        t.fill_(1.0f);
    }
    const auto s = dpo::cpuBlockCacheStats();
    EXPECT_LE(s.idleBytes, 64 * kMiB);
    EXPECT_GT(s.idleBytes, 0);
    dpo::releaseCpuBlockCache();
    EXPECT_EQ(dpo::cpuBlockCacheStats().idleBytes, 0);
}

TEST_F(CpuBlockCache, ZeroBoundReleasesOnFree)
{
    dpo::installCpuBlockCache(0);
    {
        auto t = torch::ones({ 6 * kMiB / 4 });
        EXPECT_GE(dpo::cpuBlockCacheStats().liveBytes, 6 * kMiB);
    }
    EXPECT_EQ(dpo::cpuBlockCacheStats().idleBytes, 0);
}

} // namespace test_cpu_block_cache
