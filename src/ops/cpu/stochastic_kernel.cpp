// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Fused CPU kernels of the stochastic-rounding operators: one pass over (x, noise).
#include <torch/library.h>

#include "core/fixed_point.h"
#include "ops/cpu/loops.h"

namespace heteroq::ops {
namespace {

namespace hd = heteroq::detail;
using namespace heteroq::ops::cpu;  // NOLINT: the shared loops (a .cpp file, not a header)

template <typename T>
struct BitsStochasticOp {
  T s, lo, hi, step, q;
  T operator()(T x, T u) const {
    const T xq = hd::quantize_bits_stochastic_element(x, u, s, lo, hi, step);
    return q == T(1) ? xq : hd::qnoise_blend(x, xq, q);
  }
};

template <typename T>
struct ReluStochasticOp {
  hd::ReluGridT<T> g;
  T q;
  T operator()(T x, T u) const {
    const T xq = hd::quantize_relu_stochastic_element(x, u, g);
    return q == T(1) ? xq : hd::qnoise_blend(hd::relu_ste_reference(x, g.top, g.slope), xq, q);
  }
};

at::Tensor quantized_bits_stochastic_cpu(const at::Tensor& x, const at::Tensor& noise,
                                         int64_t bits, int64_t integer, bool symmetric,
                                         bool keep_negative, c10::optional<double> alpha,
                                         double qnoise_factor) {
  const auto grid =
      hd::make_bits_grid(bits, integer, symmetric, keep_negative, detail::to_std(alpha));
  if (!use_fused(x) || grid.sign_mode) {
    return detail::quantized_bits_stochastic_generic(x, noise, bits, integer, symmetric,
                                                     keep_negative, alpha, qnoise_factor);
  }
  detail::check_quantized_bits(x, bits, integer, alpha, qnoise_factor);
  detail::check_noise(x, noise, "heteroq::quantized_bits_stochastic");
  return map_binary(x, noise, [&](auto tag, auto&& run) {
    using T = decltype(tag);
    const hd::BitsGridT<T> g(grid);
    run(BitsStochasticOp<T>{g.in_scale, g.lo, g.hi, g.step, T(qnoise_factor)});
  });
}

at::Tensor quantized_relu_stochastic_cpu(const at::Tensor& x, const at::Tensor& noise,
                                         int64_t bits, int64_t integer, bool use_sigmoid,
                                         double negative_slope, double qnoise_factor) {
  if (!use_fused(x)) {
    return detail::quantized_relu_stochastic_generic(x, noise, bits, integer, use_sigmoid,
                                                     negative_slope, qnoise_factor);
  }
  detail::check_quantized_relu(x, bits, integer, negative_slope, qnoise_factor);
  detail::check_noise(x, noise, "heteroq::quantized_relu_stochastic");
  const auto grid = hd::make_relu_grid(bits, integer, use_sigmoid, negative_slope);
  return map_binary(x, noise, [&](auto tag, auto&& run) {
    using T = decltype(tag);
    run(ReluStochasticOp<T>{hd::ReluGridT<T>(grid), T(qnoise_factor)});
  });
}

}  // namespace
}  // namespace heteroq::ops

TORCH_LIBRARY_IMPL(heteroq, CPU, m) {
  m.impl("quantized_bits_stochastic", &heteroq::ops::quantized_bits_stochastic_cpu);
  m.impl("quantized_relu_stochastic", &heteroq::ops::quantized_relu_stochastic_cpu);
}
