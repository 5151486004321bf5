# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""QONNX export and hls4ml configuration (filled in by its issue)."""

__all__: list = []
