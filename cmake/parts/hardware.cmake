# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
# BOPs/EBOPs and the FPGA resource estimate: sources of the library, the Python bindings and modules, and the C++ tests.
target_sources(heteroq PRIVATE src/cost/hardware.cpp)
if(TARGET heteroq_python)
  target_sources(heteroq_python PRIVATE python/bindings/hardware.cpp)
endif()
heteroq_python_sources(_hardware.py)
if(TARGET heteroq_tests)
  target_sources(heteroq_tests PRIVATE tests/cpp/test_hardware.cpp)
endif()
