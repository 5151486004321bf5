# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""Learned precision: HGQ-style fixed-point quantizers with trainable bit widths (docs/learned_precision.md)."""
