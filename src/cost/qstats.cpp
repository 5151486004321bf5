// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
#include "heteroq/cost/qstats.h"

namespace heteroq::cost {}  // namespace heteroq::cost
