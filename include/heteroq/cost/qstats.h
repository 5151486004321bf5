// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
#pragma once

// print_qstats: per-layer quantizers, operation counts, accumulator widths: in progress.

namespace heteroq::cost {}  // namespace heteroq::cost
