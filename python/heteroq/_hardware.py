# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""BOPs/EBOPs and the FPGA resource estimate (filled in by its issue)."""

__all__: list = []
