#include "engine/models/embedding_lookup.h"

#include <torch/csrc/autograd/custom_function.h>

namespace dpo {

namespace {

struct EmbeddingLookup : torch::autograd::Function<EmbeddingLookup> {
    static torch::Tensor forward(
        torch::autograd::AutogradContext *ctx, const torch::Tensor &weight, const torch::Tensor &ids)
    {
        ctx->save_for_backward({ ids });
        // The parameter itself (not a saved copy): backward adds into its .grad.
        ctx->saved_data["weight"] = weight;
        return torch::embedding(weight, ids);
    }

    static torch::autograd::variable_list backward(
        torch::autograd::AutogradContext *ctx, torch::autograd::variable_list grads)
    {
        const auto ids = ctx->get_saved_variables()[0].reshape({ -1 });
        auto weight = ctx->saved_data["weight"].toTensor();
        const auto rows = grads[0].reshape({ ids.size(0), -1 }).to(weight.scalar_type());
        auto &grad = weight.mutable_grad();
        if (grad.defined() && grad.is_contiguous() && !grad.is_sparse()) {
            torch::NoGradGuard noGrad;
            grad.index_add_(0, ids, rows);
            return { torch::Tensor(), torch::Tensor() };
        }
        return { torch::zeros_like(weight).index_add_(0, ids, rows), torch::Tensor() };
    }
};

} // namespace

torch::Tensor embeddingLookup(const torch::Tensor &weight, const torch::Tensor &ids)
{
    if (!torch::GradMode::is_enabled() || !weight.requires_grad())
        return torch::embedding(weight, ids);
    return EmbeddingLookup::apply(weight, ids);
}

} // namespace dpo
