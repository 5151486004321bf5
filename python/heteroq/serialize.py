# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""Saving quantized weights and model configs (in progress)."""
__all__ = []
