// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Fused CPU kernels of quantized_po2 and quantized_relu_po2 (float32 and float64; the exponent
// and the power of two come from the IEEE bits, see core/fixed_point.h).
#include <torch/library.h>

#include <type_traits>

#include "core/fixed_point.h"
#include "ops/cpu/loops.h"

namespace heteroq::ops {
namespace {

namespace hd = heteroq::detail;
using namespace heteroq::ops::cpu;  // NOLINT: the shared loops (a .cpp file, not a header)

template <typename T, bool kQuadratic, bool kFloor, bool kBlend, bool kNormal, bool kSlope>
struct Po2Op {
  hd::Po2GridT<T> g;
  T q;
  T operator()(T x) const {
    const T xq = hd::quantize_po2_element<T, kQuadratic, kFloor, kNormal>(x, g);
    if constexpr (kBlend) {
      return hd::qnoise_blend(x, xq, q);
    } else {
      return xq;
    }
  }
};

template <typename T, bool kQuadratic, bool kFloor, bool kBlend, bool kNormal, bool kSlope>
struct ReluPo2Op {
  hd::Po2GridT<T> g;
  T q;
  T operator()(T x) const {
    const T xq = hd::quantize_relu_po2_element<T, kQuadratic, kFloor, kNormal, kSlope>(x, g);
    if constexpr (kBlend) {
      return hd::qnoise_blend(hd::relu_po2_reference(x, g), xq, q);
    } else {
      return xq;
    }
  }
};

// Calls run(Op<T, quadratic, floor, blend, normal, slope>{...}) with the modes as template
// arguments, so the element loop has no branches.
template <template <typename, bool, bool, bool, bool, bool> class Op, typename T, typename Run>
void run_po2(Run&& run, const hd::Po2GridT<T>& g, T q) {
  const bool normal = hd::po2_exponents_normal(g);
  const bool slope = g.slope != T(0);
  auto with = [&](auto quad, auto floor, auto blend) {
    auto emit = [&](auto norm, auto slp) {
      run(Op<T, decltype(quad)::value, decltype(floor)::value, decltype(blend)::value,
             decltype(norm)::value, decltype(slp)::value>{g, q});
    };
    auto with_normal = [&](auto slp) {
      if (normal) return emit(std::true_type{}, slp);
      emit(std::false_type{}, slp);
    };
    if (slope) return with_normal(std::true_type{});
    with_normal(std::false_type{});
  };
  auto with_blend = [&](auto quad, auto floor) {
    if (q == T(1)) return with(quad, floor, std::false_type{});
    with(quad, floor, std::true_type{});
  };
  auto with_floor = [&](auto quad) {
    if (g.floor_mode) return with_blend(quad, std::true_type{});
    with_blend(quad, std::false_type{});
  };
  if (g.quadratic) return with_floor(std::true_type{});
  with_floor(std::false_type{});
}

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
    run_po2<Po2Op>(run, hd::Po2GridT<T>(grid), T(qnoise_factor));
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
    run_po2<ReluPo2Op>(run, hd::Po2GridT<T>(grid), T(qnoise_factor));
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
