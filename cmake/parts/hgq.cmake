# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
# Learned precision (HGQ-style trainable bit widths): the fixed-point operator, quantizers and
# layers, their bindings, the Python module heteroq.hgq, and the C++ tests.
target_sources(heteroq PRIVATE
  src/ops/fixed_ops.cpp
  src/ops/cpu/fixed_kernel.cpp
  src/ops/autograd/fixed_kernel.cpp
  src/quantizers/fixed.cpp
  src/nn/hgq.cpp)
set_source_files_properties(src/ops/cpu/fixed_kernel.cpp PROPERTIES COMPILE_OPTIONS
  "$<$<CXX_COMPILER_ID:GNU,Clang>:-O3>;$<$<CXX_COMPILER_ID:GNU,Clang>:-fno-trapping-math>;$<$<CXX_COMPILER_ID:GNU,Clang>:-fno-math-errno>")
if(TARGET heteroq_python)
  target_sources(heteroq_python PRIVATE python/bindings/hgq.cpp)
endif()
heteroq_python_sources(hgq.py)
if(TARGET heteroq_tests)
  target_sources(heteroq_tests PRIVATE tests/cpp/test_hgq.cpp)
endif()
