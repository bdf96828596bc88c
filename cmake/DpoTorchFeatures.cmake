# Optional libtorch kernels that the engine reaches through private ATen ops, whose signatures move
# between releases. Each is compiled alone against the libtorch at hand; the engine uses it only when
# that compiles, so a libtorch without it (or with another signature) builds without it:
#   DPO_HAVE_FLASH_VARLEN  engine/models/flash_varlen_ops.h   flash-attention over packed sequences
#                                                           (padding-free batches on CUDA)
#   DPO_HAVE_FUSED_ADAMW   engine/training/fused_adamw_ops.h  torch.optim.AdamW(fused=True)'s kernel
#   DPO_HAVE_SDPA_GQA      engine/models/sdpa_gqa_ops.h       SDPA's enable_gqa (no K/V repeat)
# libtorch 1.x has neither: no probe runs. -DDPO_TORCH_PROBES=OFF skips them anywhere.
option(DPO_TORCH_PROBES "Probe libtorch for the optional kernels (flash varlen, fused AdamW, SDPA GQA)" ON)

include(CheckCXXSourceCompiles)

set(DPO_TORCH_FEATURE_DEFINITIONS "")
function(dpo_probe_torch_op VAR HEADER)
  if(NOT DPO_TORCH_PROBES OR (DEFINED Torch_VERSION AND Torch_VERSION VERSION_LESS 2.0))
    message(STATUS "${VAR}: off (libtorch ${Torch_VERSION})")
    return()
  endif()
  set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY) # headers only: nothing to link
  set(CMAKE_REQUIRED_INCLUDES ${TORCH_INCLUDE_DIRS} ${CMAKE_SOURCE_DIR}/core)
  set(CMAKE_REQUIRED_FLAGS "${TORCH_CXX_FLAGS} -std=c++17")
  set(CMAKE_REQUIRED_QUIET ON)
  check_cxx_source_compiles("#include \"${HEADER}\"\nint dpoTorchProbe() { return 0; }\nint main() { return 0; }" ${VAR})
  if(${VAR})
    message(STATUS "${VAR}: on (libtorch ${Torch_VERSION})")
    set(DPO_TORCH_FEATURE_DEFINITIONS ${DPO_TORCH_FEATURE_DEFINITIONS} ${VAR}=1 PARENT_SCOPE)
  else()
    message(STATUS "${VAR}: off (libtorch ${Torch_VERSION}: ${HEADER} does not compile against it)")
  endif()
endfunction()

dpo_probe_torch_op(DPO_HAVE_FLASH_VARLEN engine/models/flash_varlen_ops.h)
dpo_probe_torch_op(DPO_HAVE_FUSED_ADAMW engine/training/fused_adamw_ops.h)
dpo_probe_torch_op(DPO_HAVE_SDPA_GQA engine/models/sdpa_gqa_ops.h)
