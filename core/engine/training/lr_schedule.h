// Learning-rate schedules as Hugging Face's get_scheduler defines them (what TRL uses): a factor of
// the base rate for optimizer step s (0-based: the first update uses factor(0)). Warmup ramps
// linearly from 0 for constant_with_warmup, linear and cosine; "constant" is HF's get_constant_schedule
// and has no warmup (TrainConfig::validate refuses constant with a warmup setting).
#pragma once

#include <cstdint>
#include <string>

namespace dpo {

class LrSchedule {
public:
    // kind: "constant", "constant_with_warmup", "linear", "cosine". Throws dpo::Error naming lr_scheduler for others.
    LrSchedule(const std::string &kind, int64_t warmupSteps, int64_t totalSteps);

    double factor(int64_t step) const;
    const std::string &kind() const { return m_kind; }
    int64_t warmupSteps() const { return m_warmup; }
    int64_t totalSteps() const { return m_total; }

private:
    std::string m_kind;
    int64_t m_warmup = 0;
    int64_t m_total = 0;
};

} // namespace dpo
