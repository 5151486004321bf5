// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Fused CPU kernels of quantized_po2 and quantized_relu_po2 (float32 and float64; the exponent
// and the power of two come from the IEEE bits, see core/fixed_point.h).
#include <torch/library.h>

#include "core/fixed_point.h"
#include "ops/cpu/loops.h"

namespace heteroq::ops {
namespace detail {
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
}  // namespace detail

namespace {

namespace hd = heteroq::detail;
using namespace heteroq::ops::cpu;  // NOLINT: the shared loops (a .cpp file, not a header)

template <typename T>
struct Po2Op {
  hd::Po2GridT<T> g;
  T q;
  T operator()(T x) const {
    const T xq = hd::quantize_po2_element(x, g);
    return q == T(1) ? xq : hd::qnoise_blend(x, xq, q);
  }
};

template <typename T>
struct ReluPo2Op {
  hd::Po2GridT<T> g;
  T q;
  T operator()(T x) const {
    const T xq = hd::quantize_relu_po2_element(x, g);
    return q == T(1) ? xq : hd::qnoise_blend(hd::relu_po2_reference(x, g), xq, q);
  }
};

template <typename T>
struct ReluPo2GradOp {
  T max_value, slope;
  bool has_max;
  T operator()(T grad, T x) const { return grad * hd::relu_po2_grad(x, max_value, has_max, slope); }
};

at::Tensor quantized_po2_cpu(const at::Tensor& x, int64_t bits, c10::optional<double> max_value,
                             bool quadratic, c10::string_view log2_rounding,
                             double qnoise_factor) {
  if (!use_fused(x)) {
    return detail::quantized_po2_generic(x, bits, max_value, quadratic, log2_rounding,
                                         qnoise_factor);
  }
  const auto grid = detail::check_po2(x, false, bits, max_value, 0.0, quadratic, log2_rounding,
                                      qnoise_factor);
  return map_unary(x, [&](auto tag, auto&& run) {
    using T = decltype(tag);
    run(Po2Op<T>{hd::Po2GridT<T>(grid), T(qnoise_factor)});
  });
}

at::Tensor quantized_relu_po2_cpu(const at::Tensor& x, int64_t bits,
                                  c10::optional<double> max_value, double negative_slope,
                                  bool quadratic, c10::string_view log2_rounding,
                                  double qnoise_factor) {
  if (!use_fused(x)) {
    return detail::quantized_relu_po2_generic(x, bits, max_value, negative_slope, quadratic,
                                              log2_rounding, qnoise_factor);
  }
  const auto grid = detail::check_po2(x, true, bits, max_value, negative_slope, quadratic,
                                      log2_rounding, qnoise_factor);
  return map_unary(x, [&](auto tag, auto&& run) {
    using T = decltype(tag);
    run(ReluPo2Op<T>{hd::Po2GridT<T>(grid), T(qnoise_factor)});
  });
}

at::Tensor quantized_relu_po2_backward_cpu(const at::Tensor& grad, const at::Tensor& x,
                                           c10::optional<double> max_value,
                                           double negative_slope) {
  if (!use_fused(x) || grad.scalar_type() != x.scalar_type() || !grad.sizes().equals(x.sizes())) {
    return detail::quantized_relu_po2_backward_generic(grad, x, max_value, negative_slope);
  }
  return map_binary(grad, x, [&](auto tag, auto&& run) {
    using T = decltype(tag);
    run(ReluPo2GradOp<T>{max_value ? T(*max_value) : T(0), T(negative_slope),
                         max_value.has_value()});
  });
}

}  // namespace
}  // namespace heteroq::ops

TORCH_LIBRARY_IMPL(heteroq, CPU, m) {
  m.impl("quantized_po2", &heteroq::ops::quantized_po2_cpu);
  m.impl("quantized_relu_po2", &heteroq::ops::quantized_relu_po2_cpu);
  m.impl("_quantized_relu_po2_backward", &heteroq::ops::quantized_relu_po2_backward_cpu);
}
