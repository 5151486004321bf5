# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
# QONNX export and hls4ml configuration (Python only: graph construction, no arithmetic).
heteroq_python_sources(export.py)
