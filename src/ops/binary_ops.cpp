// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// binary and ternary: schemas, C++ entry points and the device-generic kernels (fixed alpha and
// the "auto"/"auto_po2" scale modes). The fused CPU kernels of the fixed modes are in
// cpu/binary_kernel.cpp, the STEs in autograd/binary_kernel.cpp.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include "core/fixed_point.h"
#include "heteroq/ops/quantize.h"
#include "ops/quantize_common.h"

namespace heteroq::ops {

at::Tensor binary(const at::Tensor& x, bool use_01, std::optional<double> alpha) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::binary", "")
                       .typed<at::Tensor(const at::Tensor&, bool, c10::optional<double>)>();
  return op.call(x, use_01, detail::to_c10(alpha));
}

at::Tensor ternary(const at::Tensor& x, std::optional<double> alpha,
                   std::optional<double> threshold) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::ternary", "")
                       .typed<at::Tensor(const at::Tensor&, c10::optional<double>,
                                         c10::optional<double>)>();
  return op.call(x, detail::to_c10(alpha), detail::to_c10(threshold));
}

std::tuple<at::Tensor, at::Tensor> binary_auto(const at::Tensor& x, bool use_01, bool po2,
                                               std::optional<std::vector<int64_t>> scale_axis) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::binary_auto", "")
                       .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, bool, bool,
                                                                 at::OptionalIntArrayRef)>();
  at::OptionalIntArrayRef axes;
  if (scale_axis) axes = at::IntArrayRef(*scale_axis);
  return op.call(x, use_01, po2, axes);
}

std::tuple<at::Tensor, at::Tensor> ternary_auto(const at::Tensor& x, bool po2,
                                                int64_t number_of_unrolls,
                                                std::optional<std::vector<int64_t>> scale_axis) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::ternary_auto", "")
                       .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, bool, int64_t,
                                                                 at::OptionalIntArrayRef)>();
  at::OptionalIntArrayRef axes;
  if (scale_axis) axes = at::IntArrayRef(*scale_axis);
  return op.call(x, po2, number_of_unrolls, axes);
}

at::Tensor _tanh_ste_backward(const at::Tensor& grad, const at::Tensor& x) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::_tanh_ste_backward", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&)>();
  return op.call(grad, x);
}

namespace detail {

void check_binary(const at::Tensor& x, c10::optional<double> alpha) {
  check_float_input(x, "heteroq::binary");
  const std::string err = heteroq::detail::check_binary_args("binary", to_std(alpha), std::nullopt);
  TORCH_CHECK_VALUE(err.empty(), err);
}

void check_ternary(const at::Tensor& x, c10::optional<double> alpha,
                   c10::optional<double> threshold) {
  check_float_input(x, "heteroq::ternary");
  const std::string err =
      heteroq::detail::check_binary_args("ternary", to_std(alpha), to_std(threshold));
  TORCH_CHECK_VALUE(err.empty(), err);
}

namespace {
bool is_float_or_double(const at::Tensor& x) {
  return x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble;
}
// k = sign(x) with sign(0) = +1 (use_01: 0 / 1); NaN stays NaN.
at::Tensor binary_codes(const at::Tensor& x, bool use_01) {
  const auto one = at::ones({}, x.options());
  const auto low = use_01 ? at::zeros({}, x.options()) : -one;
  return at::where(at::isnan(x), x, at::where(x < 0, low, one));
}
// q = sign(x) where |x| >= t, else 0 (sign(0) = 0); NaN stays NaN.
at::Tensor ternary_codes(const at::Tensor& x, const at::Tensor& t) {
  const auto zero = at::zeros({}, x.options());
  const auto one = at::ones({}, x.options());
  const at::Tensor s = at::where(x < 0, -one, at::where(x > 0, one, zero));
  return at::where(at::isnan(x), x, at::where(x.abs() >= t, s, zero));
}
}  // namespace

at::Tensor binary_generic(const at::Tensor& x, bool use_01, c10::optional<double> alpha) {
  check_binary(x, alpha);
  if (!is_float_or_double(x)) return binary_generic(x.to(at::kFloat), use_01, alpha).to(x.scalar_type());
  return binary_codes(x, use_01).mul_(alpha.value_or(1.0)).add_(0.0);
}

at::Tensor ternary_generic(const at::Tensor& x, c10::optional<double> alpha,
                           c10::optional<double> threshold) {
  check_ternary(x, alpha, threshold);
  if (!is_float_or_double(x)) {
    return ternary_generic(x.to(at::kFloat), alpha, threshold).to(x.scalar_type());
  }
  const auto t = at::full({}, threshold.value_or(0.33), x.options());
  return ternary_codes(x, t).mul_(alpha.value_or(1.0)).add_(0.0);
}

// QKeras binary.__call__ with a string alpha: k = sign(x) (0 -> +1; use_01: (k + 1)/2), and
// scale = _get_least_squares_scale(alpha, x, k) per channel.
std::tuple<at::Tensor, at::Tensor> binary_auto_generic(const at::Tensor& x, bool use_01, bool po2,
                                                       at::OptionalIntArrayRef scale_axis) {
  check_float_input(x, "heteroq::binary_auto");
  if (!is_float_or_double(x)) {
    auto [out, scale] = binary_auto_generic(x.to(at::kFloat), use_01, po2, scale_axis);
    return std::make_tuple(out.to(x.scalar_type()), scale);
  }
  const auto dims = reduce_dims(x, scale_axis);
  const at::Tensor k = binary_codes(x, use_01);
  const at::Tensor scale = least_squares_scale(x, k, dims, po2);
  return std::make_tuple((scale * k).add_(0.0), scale);
}

// QKeras ternary.__call__ with a string alpha (number_of_unrolls iterations):
//   s = 2 max|x| / 3 per channel (po2-rounded for auto_po2); then number_of_unrolls times
//   v = s round(x / s);  q = (|v| >= s/2) sign(x);  s = lsq(alpha, x, q).
std::tuple<at::Tensor, at::Tensor> ternary_auto_generic(const at::Tensor& x, bool po2,
                                                        int64_t number_of_unrolls,
                                                        at::OptionalIntArrayRef scale_axis) {
  check_float_input(x, "heteroq::ternary_auto");
  TORCH_CHECK_VALUE(number_of_unrolls >= 0 && number_of_unrolls <= 100,
                    "ternary: `number_of_unrolls` must be an integer in [0, 100], got ",
                    number_of_unrolls);
  if (!is_float_or_double(x)) {
    auto [out, scale] = ternary_auto_generic(x.to(at::kFloat), po2, number_of_unrolls, scale_axis);
    return std::make_tuple(out.to(x.scalar_type()), scale);
  }
  const auto dims = reduce_dims(x, scale_axis);
  const at::Tensor ax = x.abs();
  at::Tensor s = (x.numel() == 0 ? ax.clone() : (dims.empty() ? ax : ax.amax(dims, true)))
                     .mul(2.0)
                     .div(3.0);
  if (po2) s = po2_scale(s);
  const auto zero = at::zeros({}, x.options());
  const auto one = at::ones({}, x.options());
  at::Tensor q = at::zeros_like(x);
  for (int64_t i = 0; i < number_of_unrolls; ++i) {
    const at::Tensor v = s * at::round(x / s);
    q = at::where(v.abs() >= s / 2.0, at::where(x < 0, -one, at::where(x > 0, one, zero)), zero);
    s = least_squares_scale(x, q, dims, po2);
  }
  return std::make_tuple((s * q).add_(0.0), s);
}

at::Tensor tanh_ste_backward_generic(const at::Tensor& grad, const at::Tensor& x) {
  const at::Tensor t = at::tanh(x);
  return grad * (1.0 - t * t);
}

}  // namespace detail
}  // namespace heteroq::ops

TORCH_LIBRARY_FRAGMENT(heteroq, m) {
  m.def("binary(Tensor x, bool use_01=False, float? alpha=None) -> Tensor");
  m.def("ternary(Tensor x, float? alpha=None, float? threshold=None) -> Tensor");
  m.def("binary_auto(Tensor x, bool use_01=False, bool po2=True, int[]? scale_axis=None) "
        "-> (Tensor, Tensor)");
  m.def("ternary_auto(Tensor x, bool po2=True, int number_of_unrolls=5, "
        "int[]? scale_axis=None) -> (Tensor, Tensor)");
  m.def("_tanh_ste_backward(Tensor grad, Tensor x) -> Tensor");
}

TORCH_LIBRARY_IMPL(heteroq, CompositeExplicitAutograd, m) {
  m.impl("binary", &heteroq::ops::detail::binary_generic);
  m.impl("ternary", &heteroq::ops::detail::ternary_generic);
  m.impl("binary_auto", &heteroq::ops::detail::binary_auto_generic);
  m.impl("ternary_auto", &heteroq::ops::detail::ternary_auto_generic);
  m.impl("_tanh_ste_backward", &heteroq::ops::detail::tanh_ste_backward_generic);
}
