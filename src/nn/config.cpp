// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
#include "heteroq/nn/config.h"

namespace heteroq::nn {}  // namespace heteroq::nn
