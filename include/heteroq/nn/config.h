// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
#pragma once

// Model configs (to_config / from_config): in progress.

namespace heteroq::nn {}  // namespace heteroq::nn
