#include "engine/training/grad_scaler.h"

#include <cmath>

namespace dpo {

GradScaler::GradScaler(bool enabled, GradScalerOptions options)
    : m_enabled(enabled)
    , m_options(options)
    , m_scale(options.initScale)
{
}

void GradScaler::update(bool foundInf)
{
    if (!m_enabled)
        return;
    if (foundInf) {
        m_scale *= m_options.backoffFactor;
        m_tracker = 0;
        return;
    }
    if (++m_tracker == m_options.growthInterval) {
        const double grown = m_scale * m_options.growthFactor;
        if (std::isfinite(float(grown))) // torch keeps the scale a finite float32
            m_scale = grown;
        m_tracker = 0;
    }
}

void GradScaler::restore(double scale, int64_t growthTracker)
{
    m_scale = scale;
    m_tracker = growthTracker;
}

} // namespace dpo
