// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Internal: shared by the operator files (schemas, CPU kernels, autograd kernels).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/OptionalArrayRef.h>
#include <c10/util/Optional.h>
#include <c10/util/string_view.h>

#include <tuple>

#include <cstdint>
#include <optional>
#include <vector>

#include "core/fixed_point.h"

namespace heteroq::ops::detail {

/// Checks a caller's tensor: floating point (c10::TypeError otherwise) and the parameters
/// (c10::ValueError with the same message the Quantizer constructors use).
void check_float_input(const at::Tensor& x, const char* op);
/// float16 / bfloat16: the generic kernels compute in float32 (QKeras's precision) and round the
/// result to the tensor's dtype.
bool is_reduced_precision(const at::Tensor& x);
void check_quantized_bits(const at::Tensor& x, int64_t bits, int64_t integer,
                          c10::optional<double> alpha, double qnoise_factor);
void check_quantized_relu(const at::Tensor& x, int64_t bits, int64_t integer,
                          double negative_slope, double qnoise_factor = 1.0);

/// Checks `out` for an out= variant against the input: same dtype (c10::TypeError) and device,
/// same shape or empty (then resized to x's shape; c10::ValueError otherwise).
void check_out(const at::Tensor& out, const at::Tensor& x, const char* op);

/// A new contiguous tensor shaped like `like`. On CPU, outputs above 32 MiB get
/// madvise(MADV_HUGEPAGE) before their first write: a fresh 64 MiB output otherwise costs 16,384
/// page faults, as long as the arithmetic itself. glibc's malloc serves every allocation above
/// 32 MiB (its largest mmap threshold on 64-bit Linux) with a fresh mmap, unmapped on free, so the
/// advice never reaches memory the allocator reuses for other objects. Advice only: nothing
/// changes where transparent huge pages are unavailable.
at::Tensor empty_output(const at::Tensor& like);

/// The device-generic kernels: compositions of ATen ops (CompositeExplicitAutograd). The CPU
/// kernels call them for dtypes they do not fuse and when fused kernels are switched off.
at::Tensor quantized_bits_generic(const at::Tensor& x, int64_t bits, int64_t integer,
                                  bool symmetric, bool keep_negative, c10::optional<double> alpha,
                                  double qnoise_factor);
at::Tensor quantized_relu_generic(const at::Tensor& x, int64_t bits, int64_t integer,
                                  bool use_sigmoid, double negative_slope, double qnoise_factor);
at::Tensor& quantized_bits_out_generic(const at::Tensor& x, int64_t bits, int64_t integer,
                                       bool symmetric, bool keep_negative,
                                       c10::optional<double> alpha, double qnoise_factor,
                                       at::Tensor& out);
at::Tensor& quantized_relu_out_generic(const at::Tensor& x, int64_t bits, int64_t integer,
                                       bool use_sigmoid, double negative_slope,
                                       double qnoise_factor, at::Tensor& out);
/// The axes per-channel statistics reduce over: every axis but `scale_axis` (default: axis 0),
/// or every axis of a rank-0/1 tensor.
std::vector<int64_t> reduce_dims(const at::Tensor& x, at::OptionalIntArrayRef scale_axis);
/// QKeras's _get_least_squares_scale: mean(x q) / (mean(q q) + eps) over `dims` (per element for
/// rank <= 1), rounded to a power of two 2^round(log(s + eps) / ln 2) when po2.
at::Tensor least_squares_scale(const at::Tensor& x, const at::Tensor& q,
                               const std::vector<int64_t>& dims, bool po2);
/// 2^round(log(s + eps) / ln 2), eps = 1e-7 (QKeras's po2 rounding of a scale).
at::Tensor po2_scale(const at::Tensor& s);
/// least_squares_scale with QKeras's options (quantize_auto_grouped.cpp): the means also run over
/// groups of `elements_per_scale` consecutive channels of each kept axis (rank > 1), and a po2
/// scale is clipped to [2^min_po2_exponent, 2^max_po2_exponent].
at::Tensor least_squares_scale_grouped(const at::Tensor& x, const at::Tensor& q,
                                       at::OptionalIntArrayRef scale_axis,
                                       at::OptionalIntArrayRef elements_per_scale, bool po2,
                                       c10::optional<int64_t> min_po2_exponent,
                                       c10::optional<int64_t> max_po2_exponent);

std::tuple<at::Tensor, at::Tensor> quantized_bits_auto_generic(
    const at::Tensor& x, int64_t bits, int64_t integer, bool keep_negative, bool po2,
    at::OptionalIntArrayRef scale_axis, double qnoise_factor);
at::Tensor quantized_relu_backward_generic(const at::Tensor& grad, const at::Tensor& x,
                                           int64_t bits, int64_t integer, bool use_sigmoid,
                                           double negative_slope);

}  // namespace heteroq::ops::detail

namespace heteroq::ops::detail {

// activation (the generic kernels and checks the fused CPU kernels fall back to)
at::Tensor quantized_activation_generic(const at::Tensor& x, bool is_tanh, int64_t bits,
                                        bool symmetric, bool use_real);
at::Tensor quantized_activation_backward_generic(const at::Tensor& grad, const at::Tensor& x,
                                                 bool is_tanh, int64_t bits, bool symmetric,
                                                 bool use_real);
void check_activation(const at::Tensor& x, bool is_tanh, int64_t bits);

// po2 (the generic kernels and checks the fused CPU kernels fall back to)
heteroq::detail::Po2Grid check_po2(const at::Tensor& x, bool relu, int64_t bits,
                                   c10::optional<double> max_value, double negative_slope,
                                   bool quadratic, c10::string_view log2_rounding,
                                   double qnoise_factor);
at::Tensor quantized_po2_generic(const at::Tensor& x, int64_t bits, c10::optional<double> max_value,
                                 bool quadratic, c10::string_view log2_rounding,
                                 double qnoise_factor);
at::Tensor quantized_relu_po2_generic(const at::Tensor& x, int64_t bits,
                                      c10::optional<double> max_value, double negative_slope,
                                      bool quadratic, c10::string_view log2_rounding,
                                      double qnoise_factor);
at::Tensor quantized_relu_po2_backward_generic(const at::Tensor& grad, const at::Tensor& x,
                                               c10::optional<double> max_value,
                                               double negative_slope);

// binary (the generic kernels and checks the fused CPU kernels fall back to)
void check_binary(const at::Tensor& x, c10::optional<double> alpha);
void check_ternary(const at::Tensor& x, c10::optional<double> alpha,
                   c10::optional<double> threshold);
at::Tensor binary_generic(const at::Tensor& x, bool use_01, c10::optional<double> alpha);
at::Tensor ternary_generic(const at::Tensor& x, c10::optional<double> alpha,
                           c10::optional<double> threshold);
/// binary / ternary with alpha "auto" / "auto_po2": the generic kernels, which the fused CPU
/// kernels (cpu/binary_auto_kernel.cpp) fall back to and agree with bit for bit.
std::tuple<at::Tensor, at::Tensor> binary_auto_generic(const at::Tensor& x, bool use_01, bool po2,
                                                       at::OptionalIntArrayRef scale_axis);
std::tuple<at::Tensor, at::Tensor> ternary_auto_generic(const at::Tensor& x, bool po2,
                                                        int64_t number_of_unrolls,
                                                        at::OptionalIntArrayRef scale_axis);

// stochastic (the generic kernels and checks the fused CPU kernels fall back to)
void check_noise(const at::Tensor& x, const at::Tensor& noise, const char* op);
at::Tensor quantized_bits_stochastic_generic(const at::Tensor& x, const at::Tensor& noise,
                                             int64_t bits, int64_t integer, bool symmetric,
                                             bool keep_negative, c10::optional<double> alpha,
                                             double qnoise_factor);
at::Tensor quantized_relu_stochastic_generic(const at::Tensor& x, const at::Tensor& noise,
                                             int64_t bits, int64_t integer, bool use_sigmoid,
                                             double negative_slope, double qnoise_factor);
/// Stochastic rounding of y to floor(y) or ceil(y): floor when frac(y) < noise (QKeras's
/// stochastic_round at precision 1; E = y for noise ~ U[0, 1)).
at::Tensor stochastic_round(const at::Tensor& y, const at::Tensor& noise);

/// For CompositeImplicitAutograd compositions: `value` (taken as a constant) in the forward pass,
/// `ref`'s gradient in the backward pass. Computed as value + (ref - ref.detach()), where the
/// difference is exactly 0 for finite ref (so the value is exact) and taken as 0 where ref is
/// infinite or NaN.
at::Tensor with_gradient_of(const at::Tensor& value, const at::Tensor& ref);

}  // namespace heteroq::ops::detail

namespace heteroq::ops::detail {
/// c10::optional and std::optional are distinct types in LibTorch 1.13 (aliases in 2.x).
inline std::optional<double> to_std(const c10::optional<double>& v) {
  return v.has_value() ? std::optional<double>(*v) : std::nullopt;
}
inline c10::optional<double> to_c10(const std::optional<double>& v) {
  return v.has_value() ? c10::optional<double>(*v) : c10::nullopt;
}
}  // namespace heteroq::ops::detail
