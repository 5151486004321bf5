// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Autograd kernels in C++, so C++ users get the same gradients as Python users. Each forward
// re-calls the operator below autograd; each backward holds QKeras's straight-through estimator.
#include <torch/autograd.h>
#include <torch/library.h>

#include "heteroq/ops/quantize.h"
#include "ops/autograd/relu_ste.h"
#include "ops/quantize_common.h"

namespace heteroq::ops {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The identity STE's gradient: the incoming gradient itself, unless something else holds it (e.g.
// the caller of y.backward(grad)). Then AccumulateGrad would copy it into x.grad without huge
// pages; a copy made here (with them, for large tensors) is taken over instead. Values are the same
// either way.
at::Tensor identity_ste(const at::Tensor& grad) {
  if (grad.use_count() <= 1 || !grad.is_cpu() || grad.nbytes() <= (size_t{32} << 20)) return grad;
  return detail::empty_output(grad).copy_(grad);
}

// quantized_bits: QKeras returns x + stop_gradient(qnoise_factor * (q(x) - x)), so dq/dx = 1
// everywhere, including where the value saturates (no clipping mask, unlike
// torch.fake_quantize_*), whatever qnoise_factor is. The gradient is passed through unchanged, and
// double backward is exact (the second derivative is 0).
class QuantizedBitsFunction : public torch::autograd::Function<QuantizedBitsFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, int64_t bits,
                            int64_t integer, bool symmetric, bool keep_negative,
                            c10::optional<double> alpha, double qnoise_factor) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return quantized_bits(x, bits, integer, symmetric, keep_negative, detail::to_std(alpha),
                          qnoise_factor);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    return {identity_ste(grad_outputs[0]), at::Tensor(), at::Tensor(), at::Tensor(),
            at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// quantized_bits with alpha "auto"/"auto_po2": QKeras returns x + stop_gradient(q(x) - x) here
// too (the scale is computed from x without a gradient path), so dq/dx = 1; the scale output is
// not differentiable.
class QuantizedBitsAutoFunction : public torch::autograd::Function<QuantizedBitsAutoFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, int64_t bits,
                               int64_t integer, bool keep_negative, bool po2,
                               at::OptionalIntArrayRef scale_axis, double qnoise_factor) {
    std::optional<std::vector<int64_t>> axes;
    if (scale_axis.has_value()) axes = scale_axis->vec();
    at::Tensor out, scale;
    {
      at::AutoDispatchBelowADInplaceOrView guard;
      std::tie(out, scale) =
          quantized_bits_auto(x, bits, integer, keep_negative, po2, axes, qnoise_factor);
    }
    ctx->mark_non_differentiable({scale});
    return {out, scale};
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    return {grad_outputs[0], at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(),
            at::Tensor()};
  }
};

// quantized_relu: QKeras returns x_u + stop_gradient(qnoise_factor * (q(x) - x_u)) with
// x_u = where(x <= top, relu(x, slope), top), top = 2^integer - 2^(integer - nsb), so
// dq/dx = d x_u/dx = 1 for 0 < x <= top, slope for x <= 0 (TF's leaky-relu gradient at 0 is the
// slope), 0 above top. The backward is the fused operator _quantized_relu_backward.
class QuantizedReluFunction : public torch::autograd::Function<QuantizedReluFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, int64_t bits,
                            int64_t integer, bool use_sigmoid, double negative_slope,
                            double qnoise_factor) {
    detail::save_relu_ste(ctx, x, bits, integer, use_sigmoid, negative_slope);
    at::AutoDispatchBelowADInplaceOrView guard;
    return quantized_relu(x, bits, integer, use_sigmoid, negative_slope, qnoise_factor);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    at::Tensor dx = detail::relu_ste_backward(ctx, grad_outputs[0], "heteroq::quantized_relu");
    return {dx, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor quantized_bits_autograd(const at::Tensor& x, int64_t bits, int64_t integer,
                                   bool symmetric, bool keep_negative,
                                   c10::optional<double> alpha, double qnoise_factor) {
  return QuantizedBitsFunction::apply(x, bits, integer, symmetric, keep_negative, alpha,
                                      qnoise_factor);
}

std::tuple<at::Tensor, at::Tensor> quantized_bits_auto_autograd(
    const at::Tensor& x, int64_t bits, int64_t integer, bool keep_negative, bool po2,
    at::OptionalIntArrayRef scale_axis, double qnoise_factor) {
  auto r = QuantizedBitsAutoFunction::apply(x, bits, integer, keep_negative, po2, scale_axis,
                                            qnoise_factor);
  return std::make_tuple(r[0], r[1]);
}

at::Tensor quantized_relu_autograd(const at::Tensor& x, int64_t bits, int64_t integer,
                                   bool use_sigmoid, double negative_slope,
                                   double qnoise_factor) {
  return QuantizedReluFunction::apply(x, bits, integer, use_sigmoid, negative_slope,
                                      qnoise_factor);
}

// out= variants are not differentiable (as ATen's): refuse rather than silently drop the graph.
void check_no_grad(const at::Tensor& x, const at::Tensor& out, const char* op) {
  TORCH_CHECK(!(at::GradMode::is_enabled() && x.requires_grad()), op,
              ": out= does not support automatic differentiation (the input requires grad); "
              "use the functional form, or call it under torch.no_grad()");
  TORCH_CHECK(!(at::GradMode::is_enabled() && out.requires_grad()), op,
              ": `out` requires grad (a parameter, or part of a graph); writing into it would "
              "corrupt gradients: use the functional form, or call it under torch.no_grad()");
}

at::Tensor& quantized_bits_out_autograd(const at::Tensor& x, int64_t bits, int64_t integer,
                                        bool symmetric, bool keep_negative,
                                        c10::optional<double> alpha, double qnoise_factor,
                                        at::Tensor& out) {
  check_no_grad(x, out, "heteroq::quantized_bits.out");
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    quantized_bits_out(out, x, bits, integer, symmetric, keep_negative, detail::to_std(alpha),
                       qnoise_factor);
  }
  torch::autograd::impl::bump_version(out);
  return out;
}

at::Tensor& quantized_relu_out_autograd(const at::Tensor& x, int64_t bits, int64_t integer,
                                        bool use_sigmoid, double negative_slope,
                                        double qnoise_factor, at::Tensor& out) {
  check_no_grad(x, out, "heteroq::quantized_relu.out");
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    quantized_relu_out(out, x, bits, integer, use_sigmoid, negative_slope, qnoise_factor);
  }
  torch::autograd::impl::bump_version(out);
  return out;
}

}  // namespace
}  // namespace heteroq::ops

TORCH_LIBRARY_IMPL(heteroq, Autograd, m) {
  m.impl("quantized_bits.out", &heteroq::ops::quantized_bits_out_autograd);
  m.impl("quantized_relu.out", &heteroq::ops::quantized_relu_out_autograd);
  m.impl("quantized_bits", &heteroq::ops::quantized_bits_autograd);
  m.impl("quantized_relu", &heteroq::ops::quantized_relu_autograd);
  m.impl("quantized_bits_auto", &heteroq::ops::quantized_bits_auto_autograd);
}
