// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// quantized_po2 and quantized_relu_po2: schemas, C++ entry points and the device-generic kernels.
// The exponent comes from the IEEE bits (integer tensor ops), exactly as the element functions of
// core/fixed_point.h compute it, so the fused CPU kernels (cpu/po2_kernel.cpp) give the same bits.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <limits>
#include <string>

#include "core/fixed_point.h"
#include "heteroq/ops/quantize.h"
#include "ops/quantize_common.h"

namespace heteroq::ops {

at::Tensor quantized_po2(const at::Tensor& x, int64_t bits, std::optional<double> max_value,
                         bool quadratic_approximation, const std::string& log2_rounding,
                         double qnoise_factor) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::quantized_po2", "")
                       .typed<at::Tensor(const at::Tensor&, int64_t, c10::optional<double>, bool,
                                         c10::string_view, double)>();
  return op.call(x, bits, detail::to_c10(max_value), quadratic_approximation, log2_rounding,
                 qnoise_factor);
}

at::Tensor quantized_relu_po2(const at::Tensor& x, int64_t bits, std::optional<double> max_value,
                              double negative_slope, bool quadratic_approximation,
                              const std::string& log2_rounding, double qnoise_factor) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::quantized_relu_po2", "")
                       .typed<at::Tensor(const at::Tensor&, int64_t, c10::optional<double>,
                                         double, bool, c10::string_view, double)>();
  return op.call(x, bits, detail::to_c10(max_value), negative_slope, quadratic_approximation,
                 log2_rounding, qnoise_factor);
}

at::Tensor quantized_po2_stochastic(const at::Tensor& x, const at::Tensor& noise, int64_t bits,
                                    std::optional<double> max_value, bool quadratic_approximation,
                                    double qnoise_factor) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::quantized_po2_stochastic", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, int64_t,
                                         c10::optional<double>, bool, double)>();
  return op.call(x, noise, bits, detail::to_c10(max_value), quadratic_approximation,
                 qnoise_factor);
}

at::Tensor quantized_relu_po2_stochastic(const at::Tensor& x, const at::Tensor& noise,
                                         int64_t bits, std::optional<double> max_value,
                                         double negative_slope, bool quadratic_approximation,
                                         double qnoise_factor) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::quantized_relu_po2_stochastic", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, int64_t,
                                         c10::optional<double>, double, bool, double)>();
  return op.call(x, noise, bits, detail::to_c10(max_value), negative_slope,
                 quadratic_approximation, qnoise_factor);
}

at::Tensor _quantized_relu_po2_backward(const at::Tensor& grad, const at::Tensor& x,
                                        std::optional<double> max_value, double negative_slope) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::_quantized_relu_po2_backward", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&,
                                         c10::optional<double>, double)>();
  return op.call(grad, x, detail::to_c10(max_value), negative_slope);
}

namespace detail {

heteroq::detail::Po2Grid check_po2(const at::Tensor& x, bool relu, int64_t bits,
                                   c10::optional<double> max_value, double negative_slope,
                                   bool quadratic, c10::string_view log2_rounding,
                                   double qnoise_factor) {
  const char* who = relu ? "quantized_relu_po2" : "quantized_po2";
  check_float_input(x, relu ? "heteroq::quantized_relu_po2" : "heteroq::quantized_po2");
  const std::string rounding(log2_rounding.data(), log2_rounding.size());
  std::string err =
      heteroq::detail::check_po2_args(who, bits, to_std(max_value), rounding, negative_slope);
  if (err.empty()) err = heteroq::detail::check_qnoise_factor(who, qnoise_factor);
  TORCH_CHECK_VALUE(err.empty(), err);
  return heteroq::detail::make_po2_grid(relu, bits, to_std(max_value), quadratic,
                                        rounding == "floor", negative_slope);
}

namespace {

struct Layout {
  at::ScalarType int_type;
  int mant, bias, min_exp, max_exp;
  int64_t sqrt2_mant;
};

Layout layout_of(const at::Tensor& x) {
  if (x.scalar_type() == at::kFloat) return {at::kInt, 23, 127, -126, 127, 0x3504F3};
  return {at::kLong, 52, 1023, -1022, 1023, 0x6A09E667F3BCCll};
}

// log2_exponent of core/fixed_point.h: the exponent field, plus 1 above sqrt(2) when rounding.
at::Tensor log2_exponent(const at::Tensor& f, bool floor_mode) {
  const Layout l = layout_of(f);
  const at::Tensor u = f.contiguous().view(l.int_type);
  at::Tensor e = u.bitwise_right_shift(l.mant).sub_(l.bias);
  if (!floor_mode) {
    const at::Tensor mant = u.bitwise_and((int64_t{1} << l.mant) - 1);
    e.add_((mant > l.sqrt2_mant).to(l.int_type));
  }
  return e.to(f.scalar_type());
}

at::Tensor pow2_normal(const at::Tensor& k, const Layout& l, at::ScalarType type) {
  return k.to(l.int_type).add_(l.bias).bitwise_left_shift_(l.mant).view(type);
}

// exp2_integer: a product of two normal powers of two.
at::Tensor exp2_integer(const at::Tensor& e) {
  const Layout l = layout_of(e);
  const at::Tensor e1 = e.clamp(l.min_exp, l.max_exp);
  const at::Tensor e2 = (e - e1).clamp_(l.min_exp, l.max_exp);
  return pow2_normal(e1, l, e.scalar_type()) * pow2_normal(e2, l, e.scalar_type());
}

// po2_exponent: QKeras's _clip_power_of_two for magnitudes a >= 0.
at::Tensor po2_exponent(const at::Tensor& a, const heteroq::detail::Po2Grid& g) {
  const auto eps = at::full({}, g.eps, a.options());
  at::Tensor f = at::where(a < g.eps, eps, a);
  if (g.has_max) f = at::where(f >= g.max_value, at::full({}, g.max_value, a.options()), f);
  if (g.quadratic) f = f.sqrt();
  at::Tensor e = log2_exponent(f, g.floor_mode).clamp_(g.min_exp, g.max_exp);
  if (g.quadratic) e.mul_(2.0);
  e = at::where(a < g.eps, at::full({}, g.min_exp, a.options()), e);
  return at::where(at::isnan(a), a, e);
}

// The exponent with QKeras's stochastic_round_po2 (training, use_stochastic_rounding, "rnd" mode)
// in place of rounding: with f as in po2_exponent, lo = floor(log2 f) (exact, from the bits) and
// p = f / 2^lo - 1 in [0, 1), it is lo when p < u, else lo + 1. QKeras draws v ~ U[2^lo, 2^(lo+1))
// and keeps lo when f < v: the same event, so E[2^e] = f (mean preserving). Then clipped as
// po2_exponent. (QKeras finds lo from round(log2(f + eps)); for f >= eps the bracket is the same.)
at::Tensor po2_exponent_stochastic(const at::Tensor& a, const at::Tensor& noise,
                                   const heteroq::detail::Po2Grid& g) {
  const auto eps = at::full({}, g.eps, a.options());
  at::Tensor f = at::where(a < g.eps, eps, a);
  if (g.has_max) f = at::where(f >= g.max_value, at::full({}, g.max_value, a.options()), f);
  if (g.quadratic) f = f.sqrt();
  const at::Tensor lo = log2_exponent(f, /*floor_mode=*/true);
  const at::Tensor p = f / exp2_integer(lo) - 1.0;
  at::Tensor e = (p >= noise).to(f.scalar_type()).add_(lo).clamp_(g.min_exp, g.max_exp);
  if (g.quadratic) e.mul_(2.0);
  e = at::where(a < g.eps, at::full({}, g.min_exp, a.options()), e);
  return at::where(at::isnan(a), a, e);
}

at::Tensor blend(const at::Tensor& x_ref, const at::Tensor& xq, double q) {
  return q == 1.0 ? xq : x_ref + (xq - x_ref).mul_(q);
}

at::Tensor relu_po2_reference(const at::Tensor& x, const heteroq::detail::Po2Grid& g) {
  const at::Tensor neg = g.slope != 0 ? x * g.slope : at::zeros({}, x.options());
  at::Tensor r = at::where(x > 0, x, neg);
  if (g.has_max) r = at::where(x <= g.max_value, r, at::full({}, g.max_value, x.options()));
  return r;
}

}  // namespace

at::Tensor quantized_po2_generic(const at::Tensor& x, int64_t bits, c10::optional<double> max_value,
                                 bool quadratic, c10::string_view log2_rounding,
                                 double qnoise_factor) {
  const auto g = check_po2(x, false, bits, max_value, 0.0, quadratic, log2_rounding, qnoise_factor);
  if (x.scalar_type() != at::kFloat && x.scalar_type() != at::kDouble) {
    return quantized_po2_generic(x.to(at::kFloat), bits, max_value, quadratic, log2_rounding,
                                 qnoise_factor)
        .to(x.scalar_type());
  }
  const at::Tensor mag = exp2_integer(po2_exponent(x.abs(), g));
  const at::Tensor q = at::where(at::isnan(x), x, at::where(x < 0, -mag, mag));
  return blend(x, q, qnoise_factor);
}

at::Tensor quantized_relu_po2_generic(const at::Tensor& x, int64_t bits,
                                      c10::optional<double> max_value, double negative_slope,
                                      bool quadratic, c10::string_view log2_rounding,
                                      double qnoise_factor) {
  const auto g = check_po2(x, true, bits, max_value, negative_slope, quadratic, log2_rounding,
                           qnoise_factor);
  if (x.scalar_type() != at::kFloat && x.scalar_type() != at::kDouble) {
    return quantized_relu_po2_generic(x.to(at::kFloat), bits, max_value, negative_slope, quadratic,
                                      log2_rounding, qnoise_factor)
        .to(x.scalar_type());
  }
  const auto zero = at::zeros({}, x.options());
  const at::Tensor pos = exp2_integer(po2_exponent(at::where(x > 0, x, zero), g));
  const at::Tensor neg = exp2_integer(po2_exponent(at::where(x < 0, -x, zero) * g.slope, g)).neg_();
  const at::Tensor take_pos = (x >= 0).logical_or_(at::full({}, g.slope == 0, x.options().dtype(at::kBool)));
  const at::Tensor q = at::where(at::isnan(x), x, at::where(take_pos, pos, neg));
  return blend(relu_po2_reference(x, g), q, qnoise_factor);
}

// quantized_po2 / quantized_relu_po2 with use_stochastic_rounding in training (QKeras's
// stochastic_round_po2 for the exponent; "floor" mode takes precedence, as in QKeras, so the
// classes call these only with "rnd"). Value from detached ops; gradient: the deterministic
// quantizer's STE (identity / d relu_po2 reference).
at::Tensor quantized_po2_stochastic(const at::Tensor& x, const at::Tensor& noise, int64_t bits,
                                    c10::optional<double> max_value, bool quadratic,
                                    double qnoise_factor) {
  const auto g = check_po2(x, false, bits, max_value, 0.0, quadratic, "rnd", qnoise_factor);
  check_noise(x, noise, "heteroq::quantized_po2_stochastic");
  if (x.scalar_type() != at::kFloat && x.scalar_type() != at::kDouble) {
    const at::Tensor v = quantized_po2_stochastic(x.detach().to(at::kFloat), noise.to(at::kFloat),
                                                  bits, max_value, quadratic, qnoise_factor);
    return with_gradient_of(v.to(x.scalar_type()), x);
  }
  const at::Tensor xd = x.detach();
  const at::Tensor mag = exp2_integer(po2_exponent_stochastic(xd.abs(), noise, g));
  const at::Tensor q = at::where(at::isnan(xd), xd, at::where(xd < 0, -mag, mag));
  return with_gradient_of(blend(xd, q, qnoise_factor), x);
}

at::Tensor quantized_relu_po2_stochastic(const at::Tensor& x, const at::Tensor& noise,
                                         int64_t bits, c10::optional<double> max_value,
                                         double negative_slope, bool quadratic,
                                         double qnoise_factor) {
  const auto g =
      check_po2(x, true, bits, max_value, negative_slope, quadratic, "rnd", qnoise_factor);
  check_noise(x, noise, "heteroq::quantized_relu_po2_stochastic");
  const at::Tensor ref = heteroq::ops::quantized_relu_po2(x, bits, to_std(max_value),
                                                          negative_slope, quadratic, "rnd", 1.0);
  if (x.scalar_type() != at::kFloat && x.scalar_type() != at::kDouble) {
    const at::Tensor v =
        quantized_relu_po2_stochastic(x.detach().to(at::kFloat), noise.to(at::kFloat), bits,
                                      max_value, negative_slope, quadratic, qnoise_factor);
    return with_gradient_of(v.to(x.scalar_type()), ref);
  }
  const at::Tensor xd = x.detach();
  const auto zero = at::zeros({}, x.options());
  const at::Tensor pos =
      exp2_integer(po2_exponent_stochastic(at::where(xd > 0, xd, zero), noise, g));
  const at::Tensor neg =
      exp2_integer(po2_exponent_stochastic(at::where(xd < 0, -xd, zero) * g.slope, noise, g))
          .neg_();
  const at::Tensor take_pos =
      (xd >= 0).logical_or_(at::full({}, g.slope == 0, x.options().dtype(at::kBool)));
  const at::Tensor q = at::where(at::isnan(xd), xd, at::where(take_pos, pos, neg));
  return with_gradient_of(blend(relu_po2_reference(xd, g), q, qnoise_factor), ref);
}

at::Tensor quantized_relu_po2_backward_generic(const at::Tensor& grad, const at::Tensor& x,
                                               c10::optional<double> max_value,
                                               double negative_slope) {
  check_float_input(x, "heteroq::quantized_relu_po2");
  if (x.scalar_type() != at::kFloat && x.scalar_type() != at::kDouble) {
    return quantized_relu_po2_backward_generic(grad.to(at::kFloat), x.to(at::kFloat), max_value,
                                               negative_slope)
        .to(grad.scalar_type());
  }
  const auto one = at::ones({}, grad.options());
  const auto zero = at::zeros({}, grad.options());
  at::Tensor d = at::where(x > 0, one, at::full({}, negative_slope, grad.options()));
  if (max_value) d = at::where(x <= *max_value, d, zero);
  return grad * d;
}

}  // namespace detail
}  // namespace heteroq::ops

TORCH_LIBRARY_FRAGMENT(heteroq, m) {
  m.def("quantized_po2(Tensor x, int bits=8, float? max_value=None, "
        "bool quadratic_approximation=False, str log2_rounding=\"rnd\", "
        "float qnoise_factor=1.0) -> Tensor");
  m.def("quantized_relu_po2(Tensor x, int bits=8, float? max_value=None, "
        "float negative_slope=0.0, bool quadratic_approximation=False, "
        "str log2_rounding=\"rnd\", float qnoise_factor=1.0) -> Tensor");
  m.def("quantized_po2_stochastic(Tensor x, Tensor noise, int bits=8, float? max_value=None, "
        "bool quadratic_approximation=False, float qnoise_factor=1.0) -> Tensor");
  m.def("quantized_relu_po2_stochastic(Tensor x, Tensor noise, int bits=8, "
        "float? max_value=None, float negative_slope=0.0, bool quadratic_approximation=False, "
        "float qnoise_factor=1.0) -> Tensor");
  m.def("_quantized_relu_po2_backward(Tensor grad, Tensor x, float? max_value, "
        "float negative_slope) -> Tensor");
}

TORCH_LIBRARY_IMPL(heteroq, CompositeExplicitAutograd, m) {
  m.impl("quantized_po2", &heteroq::ops::detail::quantized_po2_generic);
  m.impl("quantized_relu_po2", &heteroq::ops::detail::quantized_relu_po2_generic);
  m.impl("_quantized_relu_po2_backward",
         &heteroq::ops::detail::quantized_relu_po2_backward_generic);
}

TORCH_LIBRARY_IMPL(heteroq, CompositeImplicitAutograd, m) {
  m.impl("quantized_po2_stochastic", &heteroq::ops::detail::quantized_po2_stochastic);
  m.impl("quantized_relu_po2_stochastic", &heteroq::ops::detail::quantized_relu_po2_stochastic);
}
