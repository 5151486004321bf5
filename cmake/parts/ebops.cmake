# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
# Differentiable EBOPs, resource regularizers with coefficient schedules, and pruning support:
# sources, bindings, the Python module heteroq.regularizers, and the C++ tests.
if(TARGET heteroq_python)
  target_sources(heteroq_python PRIVATE python/bindings/ebops.cpp)
endif()
heteroq_python_sources(regularizers.py)
target_sources(heteroq PRIVATE src/nn/ebops.cpp src/nn/regularizer.cpp)
if(TARGET heteroq_tests)
  target_sources(heteroq_tests PRIVATE tests/cpp/test_regularizer.cpp tests/cpp/test_pruning.cpp)
endif()
