// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "heteroq/export.h"
#include "heteroq/quantizers/quantizer.h"

namespace heteroq {

/**
 * Fixed point with integer bit widths per tensor, per channel or per element (the quantizer HGQ's
 * trained layers convert to; docs/learned_precision.md), name "fixed".
 *
 * Each element has a sign flag k (keep_negative, 0 or 1), i integer bits (sign excluded) and f
 * fractional bits, stored as floating tensors of integer values broadcastable to the inputs
 * (0-dim for one width per tensor, e.g. shape (C, 1) for one per output channel of a Linear
 * weight, the weight's shape for one per element). forward() is
 * heteroq::ops::fixed_quantize: step 2^-f, range [-k 2^i, 2^i - 2^-f] (SAT), [-k (2^i - 2^-f),
 * 2^i - 2^-f] (SAT_SYM) or a two's-complement wrap of the k + i + f-bit code (WRAP); round modes
 * RND (half up), RND_CONV (half to even), TRN (floor). An element whose width k + i + f is <= 0
 * is 0.
 *
 * Spec string (uniform widths, QKeras's convention: `bits` counts the sign bit, `integer` does
 * not, so f = bits - integer - keep_negative):
 * `fixed(bits, integer, keep_negative=1, round_mode="RND_CONV", overflow_mode="SAT")`.
 * `fixed(bits, integer)` equals `quantized_bits(bits, integer, alpha=1)` on every input for
 * bits - keep_negative >= 1 (quantized_bits with no magnitude bit is its sign mode
 * alpha * sign(x), which fixed does not have).
 *
 * min()/max() are the exact ends of the grid (the smallest lower and the largest upper end over
 * the elements; 0 for elements of width <= 0), unlike quantized_bits's constraint bounds; bits()
 * is the largest width k + i + f over the elements (at least 0).
 */
class HETEROQ_API FixedQuantizer final : public Quantizer {
 public:
  /// Uniform widths in QKeras's convention (see the class comment).
  /// @throws heteroq::InvalidArgument if bits is not in [0, 64], integer not in [-64, 64],
  ///         f = bits - integer - keep_negative not in [-64, 64], or a mode is unknown.
  explicit FixedQuantizer(int64_t bits = 8, int64_t integer = 0, bool keep_negative = true,
                          std::string round_mode = "RND_CONV", std::string overflow_mode = "SAT");
  /// Widths as tensors (copied to CPU float32, rounded half to even; broadcastable to each other).
  /// @throws heteroq::InvalidArgument for non-floating or undefined widths, shapes that do not
  ///         broadcast together, keep_negative other than 0/1, int_bits/frac_bits not finite or
  ///         outside [-64, 64], or an unknown mode.
  FixedQuantizer(const at::Tensor& keep_negative, const at::Tensor& int_bits,
                 const at::Tensor& frac_bits, std::string round_mode = "RND_CONV",
                 std::string overflow_mode = "SAT");

  std::string name() const override { return "fixed"; }
  at::Tensor forward(const at::Tensor& x) const override;
  int64_t bits() const override;
  double min() const override;
  double max() const override;
  /// `fixed(bits,integer[,keep_negative=0][,round_mode=...][,overflow_mode=...])`.
  /// @throws heteroq::InvalidArgument when the widths are not uniform (per-channel or per-element
  ///         widths are saved with the weights, not in a spec).
  std::string to_string() const override;
  /// bits, integer, keep_negative, round_mode, overflow_mode. @throws as to_string().
  SpecKeywords config() const override;
  /// Every grid value in two's-complement code order (uniform widths only; at most 2^16 values).
  std::vector<double> range() const override;

  /// The sign flags k (0/1), as given (CPU float32).
  const at::Tensor& keep_negative() const { return k_; }
  /// The integer bits i (sign excluded).
  const at::Tensor& int_bits() const { return i_; }
  /// The fractional bits f.
  const at::Tensor& frac_bits() const { return f_; }
  /// The total widths k + i + f, 0 where that is negative (the widths' broadcast shape).
  at::Tensor bit_widths() const;
  const std::string& round_mode() const { return round_mode_; }
  const std::string& overflow_mode() const { return overflow_mode_; }
  /// Whether every element has the same (k, i, f): then to_string()/config() apply.
  bool is_uniform() const { return uniform_; }

 private:
  at::Tensor k_, i_, f_;
  std::string round_mode_, overflow_mode_;
  bool uniform_ = true;
  void check_modes() const;
  void require_uniform(const char* what) const;
};

}  // namespace heteroq
