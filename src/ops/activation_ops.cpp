// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// quantized_tanh and quantized_sigmoid: schemas, C++ entry points and the device-generic kernels
// (ATen ops in the order of the element functions of core/fixed_point.h, so they give the fused
// kernels' bits). The fused CPU kernels are in cpu/activation_kernel.cpp, the STEs in
// autograd/activation_kernel.cpp.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include "core/fixed_point.h"
#include "heteroq/ops/quantize.h"
#include "ops/quantize_common.h"

namespace heteroq::ops {

namespace {
using ActivationOp = at::Tensor(const at::Tensor&, int64_t, bool, bool);
using ActivationBackwardOp = at::Tensor(const at::Tensor&, const at::Tensor&, int64_t, bool, bool);
}  // namespace

at::Tensor quantized_tanh(const at::Tensor& x, int64_t bits, bool symmetric, bool use_real_tanh) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::quantized_tanh", "")
                       .typed<ActivationOp>();
  return op.call(x, bits, symmetric, use_real_tanh);
}

at::Tensor quantized_sigmoid(const at::Tensor& x, int64_t bits, bool symmetric,
                             bool use_real_sigmoid) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::quantized_sigmoid", "")
                       .typed<ActivationOp>();
  return op.call(x, bits, symmetric, use_real_sigmoid);
}

at::Tensor quantized_tanh_stochastic(const at::Tensor& x, const at::Tensor& noise, int64_t bits,
                                     bool symmetric, bool use_real_tanh) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::quantized_tanh_stochastic", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, int64_t, bool,
                                         bool)>();
  return op.call(x, noise, bits, symmetric, use_real_tanh);
}

at::Tensor quantized_sigmoid_stochastic(const at::Tensor& x, const at::Tensor& noise, int64_t bits,
                                        bool symmetric, bool use_real_sigmoid) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::quantized_sigmoid_stochastic", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, int64_t, bool,
                                         bool)>();
  return op.call(x, noise, bits, symmetric, use_real_sigmoid);
}

at::Tensor _quantized_tanh_backward(const at::Tensor& grad, const at::Tensor& x, int64_t bits,
                                    bool symmetric, bool use_real_tanh) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::_quantized_tanh_backward", "")
                       .typed<ActivationBackwardOp>();
  return op.call(grad, x, bits, symmetric, use_real_tanh);
}

at::Tensor _quantized_sigmoid_backward(const at::Tensor& grad, const at::Tensor& x, int64_t bits,
                                       bool symmetric, bool use_real_sigmoid) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::_quantized_sigmoid_backward", "")
                       .typed<ActivationBackwardOp>();
  return op.call(grad, x, bits, symmetric, use_real_sigmoid);
}

namespace detail {

void check_activation(const at::Tensor& x, bool is_tanh, int64_t bits) {
  check_float_input(x, is_tanh ? "heteroq::quantized_tanh" : "heteroq::quantized_sigmoid");
  const std::string err = heteroq::detail::check_activation_args(
      is_tanh ? "quantized_tanh" : "quantized_sigmoid", bits);
  TORCH_CHECK_VALUE(err.empty(), err);
}

namespace {
// p = 2 hσ(x) − 1 / hσ(x), or the real tanh / sigmoid.
at::Tensor activation_p(const at::Tensor& x, bool is_tanh, bool use_real) {
  if (use_real) return is_tanh ? at::tanh(x) : at::sigmoid(x);
  at::Tensor h = (x * 0.5).add_(0.5).clamp_(0.0, 1.0);
  return is_tanh ? h.mul_(2.0).sub_(1.0) : h;
}
}  // namespace

at::Tensor quantized_activation_generic(const at::Tensor& x, bool is_tanh, int64_t bits,
                                        bool symmetric, bool use_real) {
  check_activation(x, is_tanh, bits);
  if (is_reduced_precision(x)) {
    return quantized_activation_generic(x.to(at::kFloat), is_tanh, bits, symmetric, use_real)
        .to(x.scalar_type());
  }
  const auto g = heteroq::detail::make_activation_grid(is_tanh, bits, symmetric);
  return at::round(activation_p(x, is_tanh, use_real).mul_(g.m))
      .clamp_(g.lo, g.hi)
      .mul_(g.inv_m)
      .add_(0.0);
}

at::Tensor quantized_activation_backward_generic(const at::Tensor& grad, const at::Tensor& x,
                                                 bool is_tanh, int64_t bits, bool symmetric,
                                                 bool use_real) {
  check_activation(x, is_tanh, bits);
  if (is_reduced_precision(x) || is_reduced_precision(grad)) {
    return quantized_activation_backward_generic(grad.to(at::kFloat), x.to(at::kFloat), is_tanh,
                                                 bits, symmetric, use_real)
        .to(grad.scalar_type());
  }
  const auto g = heteroq::detail::make_activation_grid(is_tanh, bits, symmetric);
  const at::Tensor p = activation_p(x, is_tanh, use_real);
  const at::Tensor r = at::round(p * g.m);
  const at::Tensor in_grid = (r >= g.lo).logical_and_(r <= g.hi);
  at::Tensor dpdx;
  if (use_real) {
    // d tanh = 1 − tanh²; d sigmoid = σ (1 − σ).
    dpdx = is_tanh ? 1.0 - p * p : p * (1.0 - p);
  } else {
    const at::Tensor t = (x * 0.5).add_(0.5);
    const at::Tensor inside = (t >= 0.0).logical_and_(t <= 1.0);
    dpdx = at::where(inside, at::full({}, g.slope, x.options()), at::zeros({}, x.options()));
  }
  return grad * at::where(in_grid, dpdx, at::zeros({}, x.options()));
}

// QKeras quantized_tanh / quantized_sigmoid with use_stochastic_rounding, in training: p as above,
// rounded stochastically (floor or ceil, E = p m), clamp(sround(p m), lo, hi) / m. Deviation
// (documented): QKeras's _round_through rounds at precision 0.5 here, so its stochastic codes
// land on half steps, between the grid points; heteroq rounds onto the grid (as for
// quantized_relu), so the output is always a representable value. Gradient: the deterministic
// quantizer's STE (clip mask times dp/dx).
at::Tensor quantized_activation_stochastic(const at::Tensor& x, const at::Tensor& noise,
                                           bool is_tanh, int64_t bits, bool symmetric,
                                           bool use_real) {
  check_activation(x, is_tanh, bits);
  check_noise(x, noise, is_tanh ? "heteroq::quantized_tanh_stochastic"
                                : "heteroq::quantized_sigmoid_stochastic");
  const at::Tensor xd = x.detach();
  at::Tensor value;
  if (is_reduced_precision(x)) {
    value = quantized_activation_stochastic(xd.to(at::kFloat), noise.to(at::kFloat), is_tanh, bits,
                                            symmetric, use_real)
                .to(x.scalar_type());
  } else {
    const auto g = heteroq::detail::make_activation_grid(is_tanh, bits, symmetric);
    value = stochastic_round(activation_p(xd, is_tanh, use_real).mul_(g.m), noise)
                .clamp_(g.lo, g.hi)
                .mul_(g.inv_m)
                .add_(0.0);
  }
  const at::Tensor ref = is_tanh ? heteroq::ops::quantized_tanh(x, bits, symmetric, use_real)
                                 : heteroq::ops::quantized_sigmoid(x, bits, symmetric, use_real);
  return with_gradient_of(value, ref);
}

at::Tensor quantized_tanh_stochastic(const at::Tensor& x, const at::Tensor& noise, int64_t bits,
                                     bool symmetric, bool use_real_tanh) {
  return quantized_activation_stochastic(x, noise, true, bits, symmetric, use_real_tanh);
}
at::Tensor quantized_sigmoid_stochastic(const at::Tensor& x, const at::Tensor& noise, int64_t bits,
                                        bool symmetric, bool use_real_sigmoid) {
  return quantized_activation_stochastic(x, noise, false, bits, symmetric, use_real_sigmoid);
}

at::Tensor quantized_tanh_generic(const at::Tensor& x, int64_t bits, bool symmetric,
                                  bool use_real_tanh) {
  return quantized_activation_generic(x, true, bits, symmetric, use_real_tanh);
}
at::Tensor quantized_sigmoid_generic(const at::Tensor& x, int64_t bits, bool symmetric,
                                     bool use_real_sigmoid) {
  return quantized_activation_generic(x, false, bits, symmetric, use_real_sigmoid);
}
at::Tensor quantized_tanh_backward_generic(const at::Tensor& grad, const at::Tensor& x,
                                           int64_t bits, bool symmetric, bool use_real_tanh) {
  return quantized_activation_backward_generic(grad, x, true, bits, symmetric, use_real_tanh);
}
at::Tensor quantized_sigmoid_backward_generic(const at::Tensor& grad, const at::Tensor& x,
                                              int64_t bits, bool symmetric,
                                              bool use_real_sigmoid) {
  return quantized_activation_backward_generic(grad, x, false, bits, symmetric, use_real_sigmoid);
}

}  // namespace detail
}  // namespace heteroq::ops

TORCH_LIBRARY_FRAGMENT(heteroq, m) {
  m.def("quantized_tanh(Tensor x, int bits=8, bool symmetric=False, bool use_real_tanh=False) "
        "-> Tensor");
  m.def("quantized_sigmoid(Tensor x, int bits=8, bool symmetric=False, "
        "bool use_real_sigmoid=False) -> Tensor");
  m.def("quantized_tanh_stochastic(Tensor x, Tensor noise, int bits=8, bool symmetric=False, "
        "bool use_real_tanh=False) -> Tensor");
  m.def("quantized_sigmoid_stochastic(Tensor x, Tensor noise, int bits=8, bool symmetric=False, "
        "bool use_real_sigmoid=False) -> Tensor");
  m.def("_quantized_tanh_backward(Tensor grad, Tensor x, int bits, bool symmetric, "
        "bool use_real_tanh) -> Tensor");
  m.def("_quantized_sigmoid_backward(Tensor grad, Tensor x, int bits, bool symmetric, "
        "bool use_real_sigmoid) -> Tensor");
}

TORCH_LIBRARY_IMPL(heteroq, CompositeExplicitAutograd, m) {
  m.impl("quantized_tanh", &heteroq::ops::detail::quantized_tanh_generic);
  m.impl("quantized_sigmoid", &heteroq::ops::detail::quantized_sigmoid_generic);
  m.impl("_quantized_tanh_backward", &heteroq::ops::detail::quantized_tanh_backward_generic);
  m.impl("_quantized_sigmoid_backward", &heteroq::ops::detail::quantized_sigmoid_backward_generic);
}

TORCH_LIBRARY_IMPL(heteroq, CompositeImplicitAutograd, m) {
  m.impl("quantized_tanh_stochastic", &heteroq::ops::detail::quantized_tanh_stochastic);
  m.impl("quantized_sigmoid_stochastic", &heteroq::ops::detail::quantized_sigmoid_stochastic);
}
