# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""Resource regularizers (differentiable EBOPs) and their coefficient schedules."""
