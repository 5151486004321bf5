// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
#pragma once

// Quantized recurrent layers (QSimpleRNN, QLSTM, QGRU): in progress.

namespace heteroq::nn {}  // namespace heteroq::nn
