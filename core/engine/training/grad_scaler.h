// GradScaler: dynamic loss scaling for float16 training, with the rule of torch.amp.GradScaler
// (torch._amp_update_scale_): the loss is multiplied by scale() before backward so that small
// gradients survive float16; the gradients are divided by it again before clipping and the update.
// A step whose gradients hold an inf or NaN is skipped and the scale backs off (× backoffFactor);
// after growthInterval finite steps in a row it grows (× growthFactor). Powers of two keep scaling
// and unscaling exact. Disabled, scale() is 1 and update() does nothing.
// torch-free: the trainer applies the scale; this keeps the state that checkpoints store.
#pragma once

#include <cstdint>

namespace dpo {

struct GradScalerOptions {
    double initScale = 65536.0; // 2^16, torch's default
    double growthFactor = 2.0;
    double backoffFactor = 0.5;
    int64_t growthInterval = 2000;
};

class GradScaler {
public:
    explicit GradScaler(bool enabled = false, GradScalerOptions options = {});

    bool enabled() const { return m_enabled; }
    double scale() const { return m_enabled ? m_scale : 1.0; }
    int64_t growthTracker() const { return m_tracker; }
    const GradScalerOptions &options() const { return m_options; }

    // After a step's gradients are known; foundInf: that step was skipped.
    void update(bool foundInf);
    // State from a checkpoint.
    void restore(double scale, int64_t growthTracker);

private:
    bool m_enabled;
    GradScalerOptions m_options;
    double m_scale;
    int64_t m_tracker = 0;
};

} // namespace dpo
