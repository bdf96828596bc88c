# Build speed: ccache when installed, and two precompiled headers shared by every target that can use
# them (libtorch's narrow API + nlohmann-json for engine code; Qt Widgets for GUI code). Parsing
# libtorch's headers is most of the compile time of an engine file; a shared PCH pays it once.
#
# GCC accepts a PCH only when the consumer is compiled with the same -D macros the PCH was made with
# (extra macros are fine if the headers do not test them), the same -fPIC and the same standard. So the
# PCH targets carry only the macros every consumer has, and the whole build is position independent.

option(DPO_USE_CCACHE "Compile through ccache when it is installed" ON)
option(DPO_PRECOMPILED_HEADERS "Share precompiled libtorch and Qt headers between targets" ON)
# Unity builds: each target compiles its sources in batches of 8 files per translation unit, so the
# templates every file instantiates (libtorch's tensor API, nlohmann-json, gtest, Qt) are compiled once
# per batch, not once per file; measured on 2 cores, the engine library built ~4x faster. Files keep
# their helpers in distinct names (anonymous namespaces are shared inside a batch).
option(DPO_UNITY_BUILD "Compile each target in batches of source files (CMake unity build)" ON)
if(DPO_UNITY_BUILD)
  set(CMAKE_UNITY_BUILD ON)
  set(CMAKE_UNITY_BUILD_BATCH_SIZE 8)
  # GCC warns when a class uses a type from an anonymous namespace of a file that is not the main file;
  # in a unity batch no file is, so the warning only says that the file was batched.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    add_compile_options(-Wno-subobject-linkage)
  endif()
endif()

set(CMAKE_POSITION_INDEPENDENT_CODE ON)

if(DPO_USE_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  find_program(DPO_CCACHE_PROGRAM ccache)
  if(DPO_CCACHE_PROGRAM)
    # pch_defines/time_macros: what ccache needs to cache compiles that use a PCH; BASEDIR: hits
    # across clones in other folders (paths under the source tree are hashed as relative paths).
    set(CMAKE_CXX_COMPILER_LAUNCHER
        ${CMAKE_COMMAND} -E env
        "CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime"
        "CCACHE_BASEDIR=${CMAKE_SOURCE_DIR}" ${DPO_CCACHE_PROGRAM})
    if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
      add_compile_options(-fpch-preprocess)
    endif()
    message(STATUS "Compiling through ccache: ${DPO_CCACHE_PROGRAM}")
  endif()
endif()

if(DPO_PRECOMPILED_HEADERS)
  add_library(dpo_pch_engine OBJECT ${CMAKE_CURRENT_LIST_DIR}/pch_stub.cpp)
  target_include_directories(dpo_pch_engine PRIVATE ${CMAKE_SOURCE_DIR}/core)
  target_link_libraries(dpo_pch_engine PRIVATE ${TORCH_LIBRARIES} nlohmann_json::nlohmann_json)
  target_precompile_headers(dpo_pch_engine PRIVATE
    ${CMAKE_SOURCE_DIR}/core/engine/torch_api.h <nlohmann/json.hpp>
    <algorithm> <functional> <map> <memory> <optional> <string> <unordered_map> <vector>)
  # Not CLI11 (dpo-cli's parser): its headers define validator objects at namespace scope, which every
  # file including the PCH would then compile; measured, engine files got ~8 s slower each.

  if(DPO_WITH_QT)
    # Exactly the Qt modules of the GUI library (their QT_*_LIB macros are tested by Qt's headers, so
    # every consumer must define the same set) and libtorch's macros (the GUI library links the engine;
    # _GLIBCXX_USE_CXX11_ABI is tested by the standard headers), but not libtorch's headers: most GUI
    # files never include them. No QtTest: tests add it on top.
    add_library(dpo_pch_qt OBJECT ${CMAKE_CURRENT_LIST_DIR}/pch_stub.cpp)
    target_link_libraries(dpo_pch_qt PRIVATE Qt6::Widgets Qt6::PrintSupport Qt6::Concurrent Qt6::Sql
                          QCustomPlotQt6::QCustomPlotQt6 ${TORCH_LIBRARIES})
    target_precompile_headers(dpo_pch_qt PRIVATE <QtCore> <QtGui> <QtWidgets> <QtSql> <qcustomplot.h>
      <functional> <memory> <vector>)
  endif()
endif()

# dpo_use_pch(TARGET ENGINE|QT): compile TARGET with the shared precompiled header of that kind.
function(dpo_use_pch target kind)
  if(DPO_PRECOMPILED_HEADERS)
    string(TOLOWER ${kind} kind)
    target_precompile_headers(${target} REUSE_FROM dpo_pch_${kind})
    # CMake compiles executables with -fPIE and libraries with -fPIC; GCC refuses a PCH made under the
    # other setting, and a later -fPIC alone does not undo -fPIE. Executables that share a PCH therefore
    # compile as PIC, not PIE (PIC objects link into a PIE executable as well).
    get_target_property(type ${target} TYPE)
    if(type STREQUAL "EXECUTABLE" AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
      target_compile_options(${target} PRIVATE -fno-pie -fPIC)
    endif()
  endif()
endfunction()
