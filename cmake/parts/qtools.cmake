# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
# QTools-equivalent data types, energy and size: sources of the library, the Python bindings and modules, and the C++ tests.
target_sources(heteroq PRIVATE src/cost/qtools.cpp)
if(TARGET heteroq_python)
  target_sources(heteroq_python PRIVATE python/bindings/qtools.cpp)
endif()
heteroq_python_sources(_qtools.py)
if(TARGET heteroq_tests)
  target_sources(heteroq_tests PRIVATE tests/cpp/test_qtools.cpp)
endif()
