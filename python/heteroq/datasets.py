# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""Datasets (in progress)."""
__all__ = []
