#include "engine/training/lr_schedule.h"

#include "engine/error.h"

#include <algorithm>
#include <cmath>

namespace dpo {

LrSchedule::LrSchedule(const std::string &kind, int64_t warmupSteps, int64_t totalSteps)
    : m_kind(kind)
    , m_warmup(std::max<int64_t>(0, warmupSteps))
    , m_total(std::max<int64_t>(1, totalSteps))
{
    if (kind != "constant" && kind != "constant_with_warmup" && kind != "linear" && kind != "cosine")
        throw Error("lr_scheduler '" + kind
            + "' is not supported (use constant, constant_with_warmup, linear or cosine)");
}

double LrSchedule::factor(int64_t step) const
{
    if (m_kind == "constant") // HF's get_constant_schedule: no warmup, whatever warmup is set to
        return 1.0;
    if (step < m_warmup)
        return double(step) / double(std::max<int64_t>(1, m_warmup));
    if (m_kind == "constant_with_warmup")
        return 1.0;
    const double progress = double(step - m_warmup) / double(std::max<int64_t>(1, m_total - m_warmup));
    if (m_kind == "linear")
        return std::max(0.0, double(m_total - step) / double(std::max<int64_t>(1, m_total - m_warmup)));
    // cosine, HF's num_cycles = 0.5
    return std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * progress)));
}

} // namespace dpo
