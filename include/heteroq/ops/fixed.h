// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <tuple>

#include "heteroq/export.h"

/// The fixed-point operator with bit widths as tensors (HGQ-style learned precision;
/// docs/learned_precision.md). Callable from C++ here and from Python as
/// `torch.ops.heteroq.fixed_quantize`.
namespace heteroq::ops {

/**
 * `heteroq::fixed_quantize(Tensor x, Tensor keep_negative, Tensor int_bits, Tensor frac_bits,
 * str round_mode="RND_CONV", str overflow_mode="SAT") -> Tensor`
 *
 * Fixed point with per-element widths. keep_negative k (0 or 1), int_bits i (integer bits, sign
 * excluded) and frac_bits f are floating tensors broadcastable to x (0-dim allowed); the forward
 * pass uses them rounded half to even. With `v = x 2^f`, the code is `c = RND: floor(v + 1/2)`,
 * `RND_CONV: round_half_even(v)` or `TRN: floor(v)`, and the output `c' 2^-f` where c' is c
 * clamped to `[-k 2^(i+f), 2^(i+f) - 1]` (SAT), to `[-k (2^(i+f) - 1), 2^(i+f) - 1]` (SAT_SYM), or
 * wrapped to the two's-complement (k = 1) or unsigned (k = 0) code of `b = k + i + f` bits (WRAP).
 * An element with `b <= 0` is 0. Zero is +0.0, NaN stays NaN; WRAP maps +-inf to NaN.
 *
 * Gradients (C++ autograd): x: 1 (straight through), 0 where SAT/SAT_SYM clipped (x outside the
 * range); frac_bits: HGQ's surrogate `ln2 (x - r)` (r the rounded value before any wrap) where not
 * clipped, the derivative of the clip bound where clipped (`ln2 2^-f` at the top, `-k ln2 2^-f` at
 * the bottom for SAT_SYM, 0 for SAT); int_bits: `ln2 2^i` (top) or `-k ln2 2^i` (bottom) on
 * clipped elements, 0 elsewhere; keep_negative: none. Gradients of the widths are summed over the
 * dimensions they are broadcast along. Elements with b <= 0: x gradient 1, frac_bits `ln2 x`,
 * int_bits 0.
 *
 * @throws c10::TypeError (Python TypeError) for a non-floating x or width;
 *         c10::ValueError (Python ValueError) for an unknown mode, widths not broadcastable to x's
 *         shape, keep_negative not 0/1, or int_bits/frac_bits not finite or outside [-64, 64].
 */
HETEROQ_API at::Tensor fixed_quantize(const at::Tensor& x, const at::Tensor& keep_negative,
                                      const at::Tensor& int_bits, const at::Tensor& frac_bits,
                                      const std::string& round_mode = "RND_CONV",
                                      const std::string& overflow_mode = "SAT");

/**
 * `heteroq::_fixed_quantize_fwd(Tensor x, Tensor keep_negative, Tensor int_bits,
 * Tensor frac_bits, str round_mode="RND_CONV", str overflow_mode="SAT")
 * -> (Tensor, Tensor, Tensor, Tensor)`: the output of fixed_quantize and its local derivatives
 * (d out/dx, d out/d frac_bits, d out/d int_bits per element, each with x's shape and dtype),
 * computed in one pass; the autograd kernel of fixed_quantize saves them. Not differentiable.
 */
HETEROQ_API std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> fixed_quantize_fwd(
    const at::Tensor& x, const at::Tensor& keep_negative, const at::Tensor& int_bits,
    const at::Tensor& frac_bits, const std::string& round_mode = "RND_CONV",
    const std::string& overflow_mode = "SAT");

/// The round modes fixed_quantize accepts: "RND", "RND_CONV", "TRN".
HETEROQ_API bool is_fixed_round_mode(const std::string& mode);
/// The overflow modes fixed_quantize accepts: "SAT", "SAT_SYM", "WRAP".
HETEROQ_API bool is_fixed_overflow_mode(const std::string& mode);

}  // namespace heteroq::ops
