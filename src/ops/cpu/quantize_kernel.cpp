// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Fused CPU kernels of quantized_bits and quantized_relu: one pass over the input, no temporaries
// (the loops are in loops.h). float32 and float64 are fused; other floating dtypes take the
// device-generic path.
#include <torch/library.h>

#include <cstdint>
#include <type_traits>

#include "core/fixed_point.h"
#include "ops/cpu/loops.h"

namespace heteroq::ops {
namespace {

namespace hd = heteroq::detail;
using namespace heteroq::ops::cpu;  // NOLINT: the shared loops (a .cpp file, not a header)

// ------------------------------------------------------------------------------------------------
// Element functors over the core functions.

template <typename T, bool kSmall>
struct BitsOp {
  T s, lo, hi, step;
  T operator()(T x) const { return hd::quantize_bits_element<T, kSmall>(x, s, lo, hi, step); }
};
template <typename T>
struct SignOp {
  T a;
  T operator()(T x) const { return hd::quantize_sign_element(x, a); }
};
template <typename T, bool kSmall, bool kSlope>
struct ReluPlainOp {
  hd::ReluGridT<T> g;
  T operator()(T x) const { return hd::quantize_relu_plain_element<T, kSmall>(x, g, kSlope); }
};
template <typename T, bool kSmall, bool kSlope>
struct ReluSigmoidOp {
  hd::ReluGridT<T> g;
  T operator()(T x) const { return hd::quantize_relu_sigmoid_element<T, kSmall>(x, g, kSlope); }
};
// QKeras's qnoise_factor q < 1: x_ref + q (q(x) - x_ref), x_ref = x (quantized_bits) or the
// relu STE reference (quantized_relu).
template <typename T, typename Op>
struct BlendIdentityOp {
  Op op;
  T q;
  T operator()(T x) const { return hd::qnoise_blend(x, op(x), q); }
};
template <typename T, typename Op>
struct BlendReluOp {
  Op op;
  T q, top, slope;
  T operator()(T x) const { return hd::qnoise_blend(hd::relu_ste_reference(x, top, slope), op(x), q); }
};

template <typename T>
struct ReluGradOp {
  T top, slope;
  T operator()(T grad, T x) const { return grad * hd::relu_ste_grad(x, top, slope); }
};

at::Tensor quantized_bits_impl(const at::Tensor& x, int64_t bits, int64_t integer, bool symmetric,
                               bool keep_negative, c10::optional<double> alpha,
                               double qnoise_factor, const at::Tensor* out) {
  if (!use_fused(x)) {
    return to_dst(out, detail::quantized_bits_generic(x, bits, integer, symmetric, keep_negative,
                                                      alpha, qnoise_factor));
  }
  detail::check_quantized_bits(x, bits, integer, alpha, qnoise_factor);
  const auto grid =
      hd::make_bits_grid(bits, integer, symmetric, keep_negative, detail::to_std(alpha));
  return map_unary(x, [&](auto tag, auto&& run) {
    using T = decltype(tag);
    const hd::BitsGridT<T> g(grid);
    auto emit = [&](auto op) {
      if (qnoise_factor == 1.0) return run(op);
      run(BlendIdentityOp<T, decltype(op)>{op, T(qnoise_factor)});
    };
    if (g.sign_mode) return emit(SignOp<T>{g.sign_value});
    if (g.small) return emit(BitsOp<T, true>{g.in_scale, g.lo, g.hi, g.step});
    emit(BitsOp<T, false>{g.in_scale, g.lo, g.hi, g.step});
  }, out);
}

at::Tensor quantized_bits_cpu(const at::Tensor& x, int64_t bits, int64_t integer, bool symmetric,
                              bool keep_negative, c10::optional<double> alpha,
                              double qnoise_factor) {
  return quantized_bits_impl(x, bits, integer, symmetric, keep_negative, alpha, qnoise_factor,
                             nullptr);
}

at::Tensor& quantized_bits_out_cpu(const at::Tensor& x, int64_t bits, int64_t integer,
                                   bool symmetric, bool keep_negative,
                                   c10::optional<double> alpha, double qnoise_factor,
                                   at::Tensor& out) {
  return write_out(out, x, "heteroq::quantized_bits.out", [&](const at::Tensor* dst) {
    return quantized_bits_impl(x, bits, integer, symmetric, keep_negative, alpha, qnoise_factor,
                               dst);
  });
}

at::Tensor quantized_relu_impl(const at::Tensor& x, int64_t bits, int64_t integer,
                               bool use_sigmoid, double negative_slope, double qnoise_factor,
                               const at::Tensor* out) {
  if (!use_fused(x)) {
    return to_dst(out, detail::quantized_relu_generic(x, bits, integer, use_sigmoid,
                                                      negative_slope, qnoise_factor));
  }
  detail::check_quantized_relu(x, bits, integer, negative_slope, qnoise_factor);
  const auto grid = hd::make_relu_grid(bits, integer, use_sigmoid, negative_slope);
  return map_unary(x, [&](auto tag, auto&& run) {
    using T = decltype(tag);
    const hd::ReluGridT<T> g(grid);
    auto emit = [&](auto op) {
      if (qnoise_factor == 1.0) return run(op);
      run(BlendReluOp<T, decltype(op)>{op, T(qnoise_factor), g.top, g.slope});
    };
    // Specialised functors: the mode is decided once, outside the element loop.
    const bool slope = g.slope != T(0);
    auto pick = [&](auto small) {
      constexpr bool kSmall = decltype(small)::value;
      if (!g.use_sigmoid) {
        if (slope) return emit(ReluPlainOp<T, kSmall, true>{g});
        return emit(ReluPlainOp<T, kSmall, false>{g});
      }
      if (slope) return emit(ReluSigmoidOp<T, kSmall, true>{g});
      emit(ReluSigmoidOp<T, kSmall, false>{g});
    };
    if (g.small) return pick(std::true_type{});
    pick(std::false_type{});
  }, out);
}

at::Tensor quantized_relu_cpu(const at::Tensor& x, int64_t bits, int64_t integer,
                              bool use_sigmoid, double negative_slope, double qnoise_factor) {
  return quantized_relu_impl(x, bits, integer, use_sigmoid, negative_slope, qnoise_factor,
                             nullptr);
}

at::Tensor& quantized_relu_out_cpu(const at::Tensor& x, int64_t bits, int64_t integer,
                                   bool use_sigmoid, double negative_slope, double qnoise_factor,
                                   at::Tensor& out) {
  return write_out(out, x, "heteroq::quantized_relu.out", [&](const at::Tensor* dst) {
    return quantized_relu_impl(x, bits, integer, use_sigmoid, negative_slope, qnoise_factor, dst);
  });
}

at::Tensor quantized_relu_backward_cpu(const at::Tensor& grad, const at::Tensor& x, int64_t bits,
                                       int64_t integer, bool use_sigmoid, double negative_slope) {
  if (!use_fused(x) || grad.scalar_type() != x.scalar_type() || !grad.sizes().equals(x.sizes())) {
    return detail::quantized_relu_backward_generic(grad, x, bits, integer, use_sigmoid,
                                                   negative_slope);
  }
  detail::check_quantized_relu(x, bits, integer, negative_slope);
  const auto grid = hd::make_relu_grid(bits, integer, use_sigmoid, negative_slope);
  return map_binary(grad, x, [&](auto tag, auto&& run) {
    using T = decltype(tag);
    run(ReluGradOp<T>{T(grid.top), T(grid.slope)});
  });
}

}  // namespace
}  // namespace heteroq::ops

TORCH_LIBRARY_IMPL(heteroq, CPU, m) {
  m.impl("quantized_bits", &heteroq::ops::quantized_bits_cpu);
  m.impl("quantized_relu", &heteroq::ops::quantized_relu_cpu);
  m.impl("_quantized_relu_backward", &heteroq::ops::quantized_relu_backward_cpu);
  m.impl("quantized_bits.out", &heteroq::ops::quantized_bits_out_cpu);
  m.impl("quantized_relu.out", &heteroq::ops::quantized_relu_out_cpu);
}
