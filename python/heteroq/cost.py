# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""Cost models: print_qstats (in progress)."""
__all__ = []
