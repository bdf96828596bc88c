#include "engine/models/activation_checkpoint.h"

#include <ATen/core/Generator.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>

namespace dpo {

namespace {

// The backward node of a checkpointed call: owns fn (and what it captured), the input and the random
// state, released after use.
class RecomputeBackward : public torch::autograd::Node {
public:
    std::function<torch::Tensor(const torch::Tensor &)> fn;
    torch::Tensor input; // detached
    at::Generator generator;
    torch::Tensor rngState;

    torch::autograd::variable_list apply(torch::autograd::variable_list &&grads) override
    {
        auto x = input.detach().requires_grad_(true);
        torch::Tensor out;
        {
            torch::AutoGradMode enable(true);
            torch::Tensor current;
            if (generator.defined()) {
                current = generator.get_state();
                generator.set_state(rngState);
            }
            out = fn(x);
            if (generator.defined())
                generator.set_state(current);
        }
        if (out.requires_grad() && grads[0].defined())
            torch::autograd::backward({ out }, { grads[0] });
        return { x.grad() };
    }

    void release_variables() override
    {
        fn = nullptr;
        input.reset();
        rngState.reset();
    }
};

} // namespace

torch::Tensor checkpointed(std::function<torch::Tensor(const torch::Tensor &)> fn, const torch::Tensor &x)
{
    if (!torch::GradMode::is_enabled() || !x.requires_grad())
        return fn(x);
    auto node = std::shared_ptr<RecomputeBackward>(new RecomputeBackward(), torch::autograd::deleteNode);
    node->generator = at::globalContext().defaultGenerator(x.device());
    node->rngState = node->generator.get_state();
    torch::Tensor out;
    {
        torch::NoGradGuard noGrad;
        out = fn(x);
    }
    node->fn = std::move(fn);
    node->input = x.detach();
    node->set_next_edges(torch::autograd::collect_next_edges(x));
    torch::autograd::set_history(out, node);
    return out;
}

} // namespace dpo
