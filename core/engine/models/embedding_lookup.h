// Token embedding lookup (weight[ids]) whose backward adds into weight.grad in place.
//
// Why: autograd's embedding backward builds a dense [vocab, hidden] gradient and then adds it to
// .grad. With a tied head the head's gradient is already there by then (backward reaches the
// embedding last), so a 152k-vocabulary step briefly holds two vocabulary-sized gradients. Here the
// rows are index_add-ed straight into the existing .grad; where there is none yet (an untied head,
// the first contribution) the dense gradient is returned to autograd as usual. Same sums either way.
#pragma once

#include "engine/torch_api.h"

namespace dpo {

// weight [V, H], ids any shape of int64 -> [..., H].
torch::Tensor embeddingLookup(const torch::Tensor &weight, const torch::Tensor &ids);

} // namespace dpo
