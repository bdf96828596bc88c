// AdamW exactly as torch.optim.AdamW computes it (decoupled weight decay, bias correction, eps added
// after the bias-corrected sqrt), with state we own so checkpoints can store and restore it
// bit-for-bit. By default the moments are float32 and bfloat16/float16 parameters get a float32
// master copy that receives the update (the parameter gets it rounded), so small updates are not lost
// to bf16 rounding. With float32State off the moments take the parameter's dtype and the update goes
// to the parameter itself: torch.optim.AdamW on 16-bit parameters (what TRL runs on a model loaded in
// bfloat16), 8 bytes per parameter less.
#pragma once

#include "engine/torch_api.h"

#include <map>
#include <string>
#include <vector>

namespace dpo {

// The HF Trainer's weight-decay rule (transformers' get_decay_parameter_names): no decay for
// parameters of LayerNorm modules or whose lower-cased name contains "bias", "layernorm", "rmsnorm",
// a ".norm." segment or "_norm." (RMSNorm weights of Llama-family models, GPT-2's ln_1/ln_2/ln_f).
bool hfDecaysParameter(const std::string &name);

// How the update runs: one set of ops per tensor (in blocks of at most 4M elements, so a
// vocabulary-sized tensor never gets vocabulary-sized temporaries), torch's multi-tensor `_foreach_`
// kernels over every tensor at once (a few kernel launches per step on a GPU, where per-tensor
// launches dominate), or torch's fused kernel (`_fused_adamw_`: one pass over each tensor's memory,
// torch.optim.AdamW(fused=True); only in builds whose libtorch has it: adamWFusedBuilt()).
// Auto: fused on CUDA when built, else multi-tensor on CUDA; per tensor elsewhere.
enum class AdamWKernel { Auto, PerTensor, MultiTensor, Fused };

bool adamWFusedBuilt();

struct AdamWOptions {
    double lr = 1e-3;
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    double weightDecay = 0.0; // applied only where hfDecaysParameter(name)
    AdamWKernel kernel = AdamWKernel::Auto;
    bool float32State = true; // false: moments in the parameter's dtype, no master copy
};

class AdamW {
public:
    // `params`: name -> parameter (HF names; names key the saved state).
    AdamW(std::vector<std::pair<std::string, torch::Tensor>> params, AdamWOptions options);

    // One update with learning rate `lr` (the schedule's value for this step). The gradients are
    // multiplied by gradScale in float32 first (loss-scale removal and clipping for float16 gradients,
    // which would underflow if scaled in place).
    void step(double lr, double gradScale = 1.0);
    // The same with the gradients given, one per parameter in the constructor's order (undefined: no
    // update, as for a parameter without .grad); any floating dtype (GradAccumulator's float32 sums).
    void step(double lr, double gradScale, const std::vector<torch::Tensor> &grads);
    // The same with the factor as a float32 scalar tensor (undefined: 1) that stays on the device:
    // gradient clipping without reading the norm back to the host.
    void step(double lr, const torch::Tensor &gradScale, const std::vector<torch::Tensor> &grads);
    void zeroGrad();

    int64_t stepCount() const { return m_step; }
    const AdamWOptions &options() const { return m_options; }

    // State as named tensors ("exp_avg.<name>", "exp_avg_sq.<name>", "master.<name>"; float32, or the
    // parameter's dtype without float32State) plus the step count, for checkpoints.
    std::map<std::string, torch::Tensor> stateTensors() const;
    // The names and dtypes stateTensors() gives for one parameter (a rank that does not own it knows).
    std::vector<std::pair<std::string, torch::ScalarType>> stateLayout(
        const std::string &name, const torch::Tensor &param) const;
    // Throws dpo::Error naming the missing or mis-shaped tensor; converts dtypes (a checkpoint written
    // with the other state dtype resumes, rounded).
    void loadStateTensors(const std::map<std::string, torch::Tensor> &state, int64_t step);

private:
    struct BiasCorrection {
        double bc2Sqrt; // sqrt(1 − β2^t)
        double stepSize; // lr / (1 − β1^t)
    };
    BiasCorrection nextStep(double lr); // counts the step
    void update(
        double lr, double scalarScale, const torch::Tensor &tensorScale, const std::vector<torch::Tensor> &grads);
    void updateMultiTensor(
        double lr, double scalarScale, const torch::Tensor &tensorScale, const std::vector<torch::Tensor> &grads);
    void updateFused(
        double lr, double scalarScale, const torch::Tensor &tensorScale, const std::vector<torch::Tensor> &grads);

    struct Slot {
        std::string name;
        torch::Tensor param;
        torch::Tensor master; // float32 copy when param is not float32, else undefined
        torch::Tensor expAvg;
        torch::Tensor expAvgSq;
        bool decay = true; // hfDecaysParameter(name)
    };
    std::vector<Slot> m_slots;
    AdamWOptions m_options;
    int64_t m_step = 0;
    torch::Tensor m_deviceStep; // the fused kernel's step count: a float32 scalar on the parameters' device
};

} // namespace dpo
