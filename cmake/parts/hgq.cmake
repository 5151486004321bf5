# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
# Learned precision (HGQ-style trainable bit widths): the fixed-point operator, quantizers and
# layers, their bindings, the Python module heteroq.hgq, and the C++ tests.
if(TARGET heteroq_python)
  target_sources(heteroq_python PRIVATE python/bindings/hgq.cpp)
endif()
heteroq_python_sources(hgq.py)
