// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Stochastic rounding (QKeras's use_stochastic_rounding, in training) of quantized_bits and
// quantized_relu. The noise u ~ U[0, 1) is an input tensor that the caller draws (the quantizer
// classes use rand_like, so runs are reproducible under torch.manual_seed): the operators are
// then deterministic functions, the same on every device, and the fused CPU kernels
// (cpu/stochastic_kernel.cpp) give the generic kernels' bits.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include "core/fixed_point.h"
#include "heteroq/ops/quantize.h"
#include "ops/quantize_common.h"

namespace heteroq::ops {

at::Tensor quantized_bits_stochastic(const at::Tensor& x, const at::Tensor& noise, int64_t bits,
                                     int64_t integer, bool symmetric, bool keep_negative,
                                     std::optional<double> alpha, double qnoise_factor) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::quantized_bits_stochastic", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, int64_t, int64_t,
                                         bool, bool, c10::optional<double>, double)>();
  return op.call(x, noise, bits, integer, symmetric, keep_negative, detail::to_c10(alpha),
                 qnoise_factor);
}

at::Tensor quantized_relu_stochastic(const at::Tensor& x, const at::Tensor& noise, int64_t bits,
                                     int64_t integer, bool use_sigmoid, double negative_slope,
                                     double qnoise_factor) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::quantized_relu_stochastic", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, int64_t, int64_t,
                                         bool, double, double)>();
  return op.call(x, noise, bits, integer, use_sigmoid, negative_slope, qnoise_factor);
}

namespace detail {

at::Tensor stochastic_round(const at::Tensor& y, const at::Tensor& noise) {
  const at::Tensor f = at::floor(y);
  return at::where((y - f) < noise, f, at::ceil(y));
}

at::Tensor with_gradient_of(const at::Tensor& value, const at::Tensor& ref) {
  const at::Tensor v = value.detach();
  if (!ref.requires_grad()) return v;
  const at::Tensor d = ref - ref.detach();
  return v + at::where(at::isfinite(ref.detach()), d, at::zeros({}, d.options()));
}

void check_noise(const at::Tensor& x, const at::Tensor& noise, const char* op) {
  TORCH_CHECK_TYPE(noise.defined() && noise.scalar_type() == x.scalar_type(), op,
                   ": `noise` must have the input's dtype ", x.scalar_type());
  TORCH_CHECK_VALUE(noise.sizes().equals(x.sizes()), op, ": `noise` has shape ", noise.sizes(),
                    ", expected the input's shape ", x.sizes());
  TORCH_CHECK_VALUE(noise.device() == x.device(), op, ": `noise` must be on ", x.device());
}

at::Tensor quantized_bits_stochastic_generic(const at::Tensor& x, const at::Tensor& noise,
                                             int64_t bits, int64_t integer, bool symmetric,
                                             bool keep_negative, c10::optional<double> alpha,
                                             double qnoise_factor) {
  check_quantized_bits(x, bits, integer, alpha, qnoise_factor);
  check_noise(x, noise, "heteroq::quantized_bits_stochastic");
  if (is_reduced_precision(x)) {
    return quantized_bits_stochastic_generic(x.to(at::kFloat), noise.to(at::kFloat), bits, integer,
                                             symmetric, keep_negative, alpha, qnoise_factor)
        .to(x.scalar_type());
  }
  const auto g =
      heteroq::detail::make_bits_grid(bits, integer, symmetric, keep_negative, to_std(alpha));
  if (g.sign_mode) {  // QKeras's 1-bit sign path does not round
    return quantized_bits_generic(x, bits, integer, symmetric, keep_negative, alpha,
                                  qnoise_factor);
  }
  const at::Tensor xq =
      stochastic_round(x * g.in_scale, noise).clamp_(g.lo, g.hi).mul_(g.step).add_(0.0);
  return qnoise_factor == 1.0 ? xq : x + (xq - x).mul_(qnoise_factor);
}

at::Tensor quantized_relu_stochastic_generic(const at::Tensor& x, const at::Tensor& noise,
                                             int64_t bits, int64_t integer, bool use_sigmoid,
                                             double negative_slope, double qnoise_factor) {
  check_quantized_relu(x, bits, integer, negative_slope, qnoise_factor);
  check_noise(x, noise, "heteroq::quantized_relu_stochastic");
  if (is_reduced_precision(x)) {
    return quantized_relu_stochastic_generic(x.to(at::kFloat), noise.to(at::kFloat), bits,
                                             integer, use_sigmoid, negative_slope, qnoise_factor)
        .to(x.scalar_type());
  }
  const auto g = heteroq::detail::make_relu_grid(bits, integer, use_sigmoid, negative_slope);
  auto sround = [&](const at::Tensor& y) { return stochastic_round(y, noise); };
  at::Tensor code;
  if (!use_sigmoid) {
    const at::Tensor p = x * g.in_scale;
    code = sround(p).clamp_(0.0, g.hi);
    if (g.slope != 0) code.add_(sround(p * g.slope).clamp_(g.neg_lo, 0.0));
  } else {
    const at::Tensor p = (x * g.inv_mi).mul_(0.5).add_(0.5).clamp_(0.0, 1.0).mul_(g.m);
    code = sround(p).mul_(2.0).sub_(g.m).clamp_(0.0, g.hi);
    if (g.slope != 0) {
      code.add_(sround(p * g.slope).mul_(2.0).sub_(g.slope * g.m).clamp_(g.neg_lo, 0.0));
    }
  }
  code.mul_(g.step).add_(0.0);
  if (qnoise_factor == 1.0) return code;
  const at::Tensor neg = g.slope != 0 ? x * g.slope : at::zeros({}, x.options());
  const at::Tensor x_u =
      at::where(x <= g.top, at::where(x > 0, x, neg), at::full({}, g.top, x.options()));
  return x_u + (code - x_u).mul_(qnoise_factor);
}

}  // namespace detail
}  // namespace heteroq::ops

TORCH_LIBRARY_FRAGMENT(heteroq, m) {
  m.def("quantized_bits_stochastic(Tensor x, Tensor noise, int bits=8, int integer=0, "
        "bool symmetric=False, bool keep_negative=True, float? alpha=None, "
        "float qnoise_factor=1.0) -> Tensor");
  m.def("quantized_relu_stochastic(Tensor x, Tensor noise, int bits=8, int integer=0, "
        "bool use_sigmoid=False, float negative_slope=0.0, float qnoise_factor=1.0) -> Tensor");
}

TORCH_LIBRARY_IMPL(heteroq, CompositeExplicitAutograd, m) {
  m.impl("quantized_bits_stochastic", &heteroq::ops::detail::quantized_bits_stochastic_generic);
  m.impl("quantized_relu_stochastic", &heteroq::ops::detail::quantized_relu_stochastic_generic);
}
