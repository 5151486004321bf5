// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Fused CPU kernels of quantized_tanh and quantized_sigmoid with QKeras's hard internal sigmoid
// (the default). The use_real_* modes call the C library's / ATen's tanh and sigmoid, whose last
// bits differ between implementations: they take the device-generic path on every device, so the
// CPU and the generic results stay identical.
#include <torch/library.h>

#include <type_traits>

#include "core/fixed_point.h"
#include "ops/cpu/loops.h"

namespace heteroq::ops {
namespace {

namespace hd = heteroq::detail;
using namespace heteroq::ops::cpu;  // NOLINT: the shared loops (a .cpp file, not a header)

template <typename T, bool kTanh, bool kSmall>
struct HardActivationOp {
  hd::ActivationGridT<T> g;
  T operator()(T x) const { return hd::quantize_hard_activation_element<T, kTanh, kSmall>(x, g); }
};

template <typename T, bool kTanh>
struct HardActivationGradOp {
  hd::ActivationGridT<T> g;
  T operator()(T grad, T x) const { return grad * hd::hard_activation_grad<T, kTanh>(x, g); }
};

at::Tensor activation_cpu(const at::Tensor& x, bool is_tanh, int64_t bits, bool symmetric,
                          bool use_real) {
  if (use_real || !use_fused(x)) {
    return detail::quantized_activation_generic(x, is_tanh, bits, symmetric, use_real);
  }
  detail::check_activation(x, is_tanh, bits);
  const auto grid = hd::make_activation_grid(is_tanh, bits, symmetric);
  return map_unary(x, [&](auto tag, auto&& run) {
    using T = decltype(tag);
    const hd::ActivationGridT<T> g(grid);
    if (g.is_tanh) {
      if (g.small) return run(HardActivationOp<T, true, true>{g});
      return run(HardActivationOp<T, true, false>{g});
    }
    if (g.small) return run(HardActivationOp<T, false, true>{g});
    run(HardActivationOp<T, false, false>{g});
  });
}

at::Tensor activation_backward_cpu(const at::Tensor& grad, const at::Tensor& x, bool is_tanh,
                                   int64_t bits, bool symmetric, bool use_real) {
  if (use_real || !use_fused(x) || grad.scalar_type() != x.scalar_type() ||
      !grad.sizes().equals(x.sizes())) {
    return detail::quantized_activation_backward_generic(grad, x, is_tanh, bits, symmetric,
                                                         use_real);
  }
  detail::check_activation(x, is_tanh, bits);
  const auto grid = hd::make_activation_grid(is_tanh, bits, symmetric);
  return map_binary(grad, x, [&](auto tag, auto&& run) {
    using T = decltype(tag);
    const hd::ActivationGridT<T> g(grid);
    if (g.is_tanh) return run(HardActivationGradOp<T, true>{g});
    run(HardActivationGradOp<T, false>{g});
  });
}

at::Tensor quantized_tanh_cpu(const at::Tensor& x, int64_t bits, bool symmetric, bool real) {
  return activation_cpu(x, true, bits, symmetric, real);
}
at::Tensor quantized_sigmoid_cpu(const at::Tensor& x, int64_t bits, bool symmetric, bool real) {
  return activation_cpu(x, false, bits, symmetric, real);
}
at::Tensor quantized_tanh_backward_cpu(const at::Tensor& grad, const at::Tensor& x, int64_t bits,
                                       bool symmetric, bool real) {
  return activation_backward_cpu(grad, x, true, bits, symmetric, real);
}
at::Tensor quantized_sigmoid_backward_cpu(const at::Tensor& grad, const at::Tensor& x,
                                          int64_t bits, bool symmetric, bool real) {
  return activation_backward_cpu(grad, x, false, bits, symmetric, real);
}

}  // namespace
}  // namespace heteroq::ops

TORCH_LIBRARY_IMPL(heteroq, CPU, m) {
  m.impl("quantized_tanh", &heteroq::ops::quantized_tanh_cpu);
  m.impl("quantized_sigmoid", &heteroq::ops::quantized_sigmoid_cpu);
  m.impl("_quantized_tanh_backward", &heteroq::ops::quantized_tanh_backward_cpu);
  m.impl("_quantized_sigmoid_backward", &heteroq::ops::quantized_sigmoid_backward_cpu);
}
