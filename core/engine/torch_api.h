// The part of libtorch the engine uses: tensors and their factories, autograd guards, nn::Module,
// CUDA queries. Included instead of <torch/torch.h>, which also pulls in optimizers, data loaders,
// serialization and JIT that the engine never uses, and costs twice the parse time in every file.
// This header is also what the build precompiles (see cmake/DpoPrecompiledHeaders.cmake).
#pragma once

// Qt's `slots` keyword macro (defined when a Qt header came first, as in GUI files) breaks libtorch's
// IValue::slots(); hide it while libtorch is parsed.
#pragma push_macro("slots")
#undef slots
#include <torch/cuda.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/types.h>
#include <torch/utils.h>
#pragma pop_macro("slots")
