#include "engine/models/param_alloc.h"

namespace dpo {

namespace {
thread_local torch::TensorOptions t_options = torch::TensorOptions().dtype(torch::kFloat32).device(torch::kCPU);
thread_local bool t_init = true;
} // namespace

torch::TensorOptions paramOptions()
{
    return t_options;
}

bool paramInitEnabled()
{
    return t_init;
}

ParamAllocScope::ParamAllocScope(torch::TensorOptions options, bool initialize)
    : m_previousOptions(t_options)
    , m_previousInit(t_init)
{
    t_options = options;
    t_init = initialize;
}

ParamAllocScope::~ParamAllocScope()
{
    t_options = m_previousOptions;
    t_init = m_previousInit;
}

} // namespace dpo
