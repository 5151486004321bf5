// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
#pragma once

// Saving quantized weights and model configs: in progress.

namespace heteroq::nn {}  // namespace heteroq::nn
