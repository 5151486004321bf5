// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// The arithmetic of the quantized batch-norm and pooling layers, registered once as operators
// (CompositeImplicitAutograd: compositions of differentiable ATen ops) so that the C++ modules
// (src/nn/) and the Python modules (python/heteroq/nn.py) compute the same thing.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <vector>

#include "heteroq/ops/quantize.h"
#include "ops/quantize_common.h"

namespace heteroq::ops {

at::Tensor _bn_inverse(const at::Tensor& var, const std::optional<at::Tensor>& gamma, double eps) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::_bn_inverse", "")
                       .typed<at::Tensor(const at::Tensor&, const c10::optional<at::Tensor>&,
                                         double)>();
  c10::optional<at::Tensor> g;
  if (gamma) g = *gamma;
  return op.call(var, g, eps);
}

at::Tensor _bn_apply(const at::Tensor& x, const at::Tensor& inv, const at::Tensor& mean,
                     const std::optional<at::Tensor>& beta) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::_bn_apply", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                         const c10::optional<at::Tensor>&)>();
  c10::optional<at::Tensor> b;
  if (beta) b = *beta;
  return op.call(x, inv, mean, b);
}

at::Tensor _sum_pool2d_scaled(const at::Tensor& x, at::IntArrayRef kernel_size,
                              at::IntArrayRef stride, at::IntArrayRef padding, bool ceil_mode,
                              bool count_include_pad, const at::Tensor& factor) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::_sum_pool2d_scaled", "")
                       .typed<at::Tensor(const at::Tensor&, at::IntArrayRef, at::IntArrayRef,
                                         at::IntArrayRef, bool, bool, const at::Tensor&)>();
  return op.call(x, kernel_size, stride, padding, ceil_mode, count_include_pad, factor);
}

at::Tensor _bn_fold_weight(const at::Tensor& weight, const at::Tensor& var,
                           const std::optional<at::Tensor>& gamma, double eps) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::_bn_fold_weight", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&,
                                         const c10::optional<at::Tensor>&, double)>();
  c10::optional<at::Tensor> g;
  if (gamma) g = *gamma;
  return op.call(weight, var, g, eps);
}

at::Tensor _bn_fold_bias(const std::optional<at::Tensor>& bias, const at::Tensor& mean,
                         const at::Tensor& var, const std::optional<at::Tensor>& gamma,
                         const std::optional<at::Tensor>& beta, double eps) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::_bn_fold_bias", "")
                       .typed<at::Tensor(const c10::optional<at::Tensor>&, const at::Tensor&,
                                         const at::Tensor&, const c10::optional<at::Tensor>&,
                                         const c10::optional<at::Tensor>&, double)>();
  c10::optional<at::Tensor> b, g, be;
  if (bias) b = *bias;
  if (gamma) g = *gamma;
  if (beta) be = *beta;
  return op.call(b, mean, var, g, be, eps);
}

namespace detail {
namespace {

// Batch-norm folding (QKeras QConv2DBatchnorm, get_folded_weights): the kernel scaled per output
// channel (axis 0) by gamma / sqrt(var + eps).
at::Tensor bn_fold_weight_composite(const at::Tensor& weight, const at::Tensor& var,
                                    const c10::optional<at::Tensor>& gamma, double eps) {
  TORCH_CHECK_VALUE(weight.dim() >= 1 && weight.size(0) == var.numel(),
                    "batch-norm folding: the kernel has ", weight.dim() ? weight.size(0) : 0,
                    " output channels but the statistics have ", var.numel());
  at::Tensor inv = at::rsqrt(var + eps);
  if (gamma.has_value() && gamma->defined()) inv = inv * *gamma;
  std::vector<int64_t> shape(weight.dim(), 1);
  shape[0] = weight.size(0);
  return weight * inv.reshape(shape);
}

// The folded bias: beta + gamma (bias - mean) / sqrt(var + eps).
at::Tensor bn_fold_bias_composite(const c10::optional<at::Tensor>& bias, const at::Tensor& mean,
                                  const at::Tensor& var, const c10::optional<at::Tensor>& gamma,
                                  const c10::optional<at::Tensor>& beta, double eps) {
  at::Tensor inv = at::rsqrt(var + eps);
  if (gamma.has_value() && gamma->defined()) inv = inv * *gamma;
  at::Tensor centred = -mean;
  if (bias.has_value() && bias->defined()) centred = *bias - mean;
  at::Tensor out = inv * centred;
  if (beta.has_value() && beta->defined()) out = *beta + out;
  return out;
}

// QKeras QBatchNormalization: inv = rsqrt(var + eps) * gamma.
at::Tensor bn_inverse_composite(const at::Tensor& var, const c10::optional<at::Tensor>& gamma,
                                double eps) {
  TORCH_CHECK_VALUE(eps >= 0, "QBatchNorm: `eps` must be >= 0, got ", eps);
  at::Tensor inv = at::rsqrt(var + eps);
  if (gamma.has_value() && gamma->defined()) inv = inv * *gamma;
  return inv;
}

// x * inv + (beta - mean * inv), the per-channel vectors on axis 1 of x (QKeras's order).
at::Tensor bn_apply_composite(const at::Tensor& x, const at::Tensor& inv, const at::Tensor& mean,
                              const c10::optional<at::Tensor>& beta) {
  TORCH_CHECK_VALUE(x.dim() >= 2, "QBatchNorm: expected an input with a channel axis (N, C, ...), "
                    "got shape ", x.sizes());
  const int64_t c = x.size(1);
  TORCH_CHECK_VALUE(inv.numel() == c && mean.numel() == c,
                    "QBatchNorm: the input has ", c, " channels but the statistics have ",
                    mean.numel());
  std::vector<int64_t> shape(x.dim(), 1);
  shape[1] = c;
  at::Tensor shift = -(mean * inv);
  if (beta.has_value() && beta->defined()) shift = *beta + shift;
  return x * inv.reshape(shape) + shift.reshape(shape);
}

// QKeras QAveragePooling2D with an average_quantizer: AvgPool(x * area) * Q(1 / area), `factor`
// being the quantized 1 / area (a scalar tensor).
at::Tensor sum_pool2d_scaled_composite(const at::Tensor& x, at::IntArrayRef kernel_size,
                                       at::IntArrayRef stride, at::IntArrayRef padding,
                                       bool ceil_mode, bool count_include_pad,
                                       const at::Tensor& factor) {
  TORCH_CHECK_VALUE(kernel_size.size() == 2, "QAvgPool2d: `kernel_size` must have 2 values");
  const double area = static_cast<double>(kernel_size[0] * kernel_size[1]);
  return at::avg_pool2d(x * area, kernel_size, stride, padding, ceil_mode, count_include_pad) *
         factor;
}

}  // namespace
}  // namespace detail
}  // namespace heteroq::ops

TORCH_LIBRARY_FRAGMENT(heteroq, m) {
  m.def("_bn_inverse(Tensor var, Tensor? gamma, float eps) -> Tensor");
  m.def("_bn_apply(Tensor x, Tensor inv, Tensor mean, Tensor? beta) -> Tensor");
  m.def("_bn_fold_weight(Tensor weight, Tensor var, Tensor? gamma, float eps) -> Tensor");
  m.def("_bn_fold_bias(Tensor? bias, Tensor mean, Tensor var, Tensor? gamma, Tensor? beta, "
        "float eps) -> Tensor");
  m.def("_sum_pool2d_scaled(Tensor x, int[2] kernel_size, int[2] stride, int[2] padding, "
        "bool ceil_mode, bool count_include_pad, Tensor factor) -> Tensor");
}

TORCH_LIBRARY_IMPL(heteroq, CompositeImplicitAutograd, m) {
  m.impl("_bn_inverse", &heteroq::ops::detail::bn_inverse_composite);
  m.impl("_bn_apply", &heteroq::ops::detail::bn_apply_composite);
  m.impl("_bn_fold_weight", &heteroq::ops::detail::bn_fold_weight_composite);
  m.impl("_bn_fold_bias", &heteroq::ops::detail::bn_fold_bias_composite);
  m.impl("_sum_pool2d_scaled", &heteroq::ops::detail::sum_pool2d_scaled_composite);
}
