// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Integer helpers shared by the engine's kernels and its file reader (torch-free).
#pragma once

#include <cstdint>

namespace heteroq::deploy {

/// a / 2^s rounded half to even (s > 0: QKeras's K.round of the exact quotient), a * 2^-s (s <= 0).
/// |s| <= 62; the caller guarantees that a * 2^-s fits (the engine's bound analysis).
inline int64_t rne_shift(int64_t a, int64_t s) {
  if (s <= 0) return a * (int64_t(1) << (-s));
  const int64_t q = a >> s;  // floor (arithmetic shift)
  const int64_t r = a - q * (int64_t(1) << s);
  const int64_t half = int64_t(1) << (s - 1);
  return q + ((r + (q & 1)) > half ? 1 : 0);
}

/// code * 2^-frac as float32, rounded once (exact for |code| < 2^24); `scale` = 2^-frac (double).
inline float code_to_float(int64_t code, double scale) {
  return static_cast<float>(static_cast<double>(code) * scale);
}

/// The bits of a signed integer type holding [-max_abs, max_abs].
int64_t bits_for(int64_t max_abs);

}  // namespace heteroq::deploy
