# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""Model configs: to_config / from_config (in progress)."""
__all__ = []
