// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Quantizers that are compositions of differentiable ATen ops and heteroq operators, registered
// once under CompositeImplicitAutograd (so they need no kernel per device and no autograd kernel
// of their own):
//   quantized_ulaw:   QKeras's u-law compander of a hard-sigmoid code (its STE is on round only)
//   quantized_hswish: QKeras's quantized_bits of the hard swish x · clip(x + shift, 0, ub) / ub
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <cmath>

#include "core/fixed_point.h"
#include "heteroq/ops/quantize.h"
#include "ops/quantize_common.h"

namespace heteroq::ops {

at::Tensor quantized_ulaw(const at::Tensor& x, int64_t bits, int64_t integer, bool symmetric,
                          double u) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::quantized_ulaw", "")
                       .typed<at::Tensor(const at::Tensor&, int64_t, int64_t, bool, double)>();
  return op.call(x, bits, integer, symmetric, u);
}

at::Tensor quantized_hswish(const at::Tensor& x, int64_t bits, int64_t integer, bool symmetric,
                            std::optional<double> alpha, double qnoise_factor, double relu_shift,
                            double relu_upper_bound) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::quantized_hswish", "")
                       .typed<at::Tensor(const at::Tensor&, int64_t, int64_t, bool,
                                         c10::optional<double>, double, double, double)>();
  return op.call(x, bits, integer, symmetric, detail::to_c10(alpha), qnoise_factor, relu_shift,
                 relu_upper_bound);
}

std::tuple<at::Tensor, at::Tensor> stochastic_binary(const at::Tensor& x, const at::Tensor& noise,
                                                     double temperature, bool use_real_sigmoid,
                                                     bool zero_one, std::optional<double> alpha,
                                                     bool automatic, bool po2) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::stochastic_binary", "")
                       .typed<std::tuple<at::Tensor, at::Tensor>(
                           const at::Tensor&, const at::Tensor&, double, bool, bool,
                           c10::optional<double>, bool, bool, at::OptionalIntArrayRef)>();
  return op.call(x, noise, temperature, use_real_sigmoid, zero_one, detail::to_c10(alpha),
                 automatic, po2, c10::nullopt);
}

std::tuple<at::Tensor, at::Tensor> stochastic_ternary(const at::Tensor& x, const at::Tensor& noise0,
                                                      const at::Tensor& noise1, double temperature,
                                                      bool use_real_sigmoid, bool po2,
                                                      int64_t number_of_unrolls) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::stochastic_ternary", "")
                       .typed<std::tuple<at::Tensor, at::Tensor>(
                           const at::Tensor&, const at::Tensor&, const at::Tensor&, double, bool,
                           bool, int64_t, at::OptionalIntArrayRef)>();
  return op.call(x, noise0, noise1, temperature, use_real_sigmoid, po2, number_of_unrolls,
                 c10::nullopt);
}

namespace detail {
namespace {

// round(v) with a straight-through gradient: v + (round(v) - v).detach() is exactly round(v)
// here (v >= 0 and |round(v) - v| <= 1/2, so the difference and the sum are exact).
at::Tensor round_through(const at::Tensor& v) { return v + (at::round(v) - v).detach(); }

// QKeras quantized_ulaw.__call__:
//   m = 2^(bits-1); p = hσ(x / 2^integer) m; rp = 2 round(p) / m - 1
//   q = 2^integer clip(sign(rp) log(1 + u |rp|) / log(1 + u), -1 + symmetric/m, 1 - 1/m)
// Gradient: through every op, round's being the identity (QKeras's _round_through).
at::Tensor quantized_ulaw_composite(const at::Tensor& x, int64_t bits, int64_t integer,
                                    bool symmetric, double u) {
  check_float_input(x, "heteroq::quantized_ulaw");
  std::string err = heteroq::detail::check_activation_args("quantized_ulaw", bits);
  if (err.empty() && (integer < -64 || integer > 64)) {
    err = "quantized_ulaw: `integer` must be an integer in [-64, 64], got " + std::to_string(integer);
  }
  if (err.empty() && !(std::isfinite(u) && u > 0)) {
    err = "quantized_ulaw: `u` must be a finite number > 0, got " + std::to_string(u);
  }
  TORCH_CHECK_VALUE(err.empty(), err);
  const double m = std::ldexp(1.0, static_cast<int>(bits - 1));
  const double m_i = std::ldexp(1.0, static_cast<int>(integer));
  const at::Tensor p = (x / m_i * 0.5 + 0.5).clamp(0.0, 1.0) * m;
  const at::Tensor rp = round_through(p) / m * 2.0 - 1.0;
  const at::Tensor law = at::sign(rp) * at::log1p(rp.abs() * u) / std::log1p(u);
  return law.clamp(-1.0 + (symmetric ? 1.0 : 0.0) / m, 1.0 - 1.0 / m) * m_i;
}

// QKeras quantized_hswish.__call__: quantized_bits (signed) of x · relu(x + shift, max=ub) / ub.
// Gradient: d hswish/dx (quantized_bits's STE is the identity).
at::Tensor quantized_hswish_composite(const at::Tensor& x, int64_t bits, int64_t integer,
                                      bool symmetric, c10::optional<double> alpha,
                                      double qnoise_factor, double relu_shift,
                                      double relu_upper_bound) {
  check_float_input(x, "heteroq::quantized_hswish");
  TORCH_CHECK_VALUE(std::isfinite(relu_upper_bound) && relu_upper_bound > 0,
                    "quantized_hswish: `relu_upper_bound` must be a finite number > 0, got ",
                    relu_upper_bound);
  TORCH_CHECK_VALUE(std::isfinite(relu_shift) && relu_shift > 0,
                    "quantized_hswish: `relu_shift` must be a finite number > 0, got ", relu_shift);
  // As QKeras: where(x + shift <= ub, relu(x + shift), ub), then (x * that) / ub.
  const at::Tensor s = x + relu_shift;
  const at::Tensor r = at::where(s <= relu_upper_bound, at::relu(s),
                                 at::full({}, relu_upper_bound, x.options()));
  const at::Tensor h = x * r / relu_upper_bound;
  return quantized_bits(h, bits, integer, symmetric, /*keep_negative=*/true, to_std(alpha),
                        qnoise_factor);
}

// QKeras stochastic_binary (training) and bernoulli (zero_one): with s = std(x) + eps per channel
// for a string alpha (else 1), p = sigmoid(temperature x / s) (or the hard sigmoid),
// q = sign(p - noise) with sign(0) = +1 (bernoulli: (q + 1) / 2), and the scale
// lsq(alpha, x, q*) of the deterministic codes q* = sign(x) (0 -> +1; bernoulli: (q* + 1) / 2),
// or alpha, or 1. Output scale * q, exactly; gradient: identity (QKeras: x + sg(scale q - x)).
std::tuple<at::Tensor, at::Tensor> stochastic_binary_composite(
    const at::Tensor& x, const at::Tensor& noise, double temperature, bool use_real_sigmoid,
    bool zero_one, c10::optional<double> alpha, bool automatic, bool po2,
    at::OptionalIntArrayRef scale_axis) {
  check_float_input(x, zero_one ? "heteroq::bernoulli" : "heteroq::stochastic_binary");
  TORCH_CHECK_VALUE(noise.sizes().equals(x.sizes()) && noise.scalar_type() == x.scalar_type(),
                    "stochastic_binary/bernoulli: `noise` must have the input's shape and dtype");
  TORCH_CHECK_VALUE(std::isfinite(temperature) && temperature > 0,
                    "stochastic_binary/bernoulli: `temperature` must be a finite number > 0, got ",
                    temperature);
  TORCH_CHECK_VALUE(!alpha || (std::isfinite(*alpha) && *alpha > 0),
                    "stochastic_binary/bernoulli: `alpha` must be None, a finite number > 0, "
                    "'auto' or 'auto_po2'");
  const at::Tensor xd = x.detach();
  const auto dims = reduce_dims(xd, scale_axis);
  at::Tensor t = xd * temperature;
  if (automatic) {
    const at::Tensor sd = dims.empty() ? xd.std(/*unbiased=*/false) : xd.std(dims, false, true);
    t = t / (sd + 1e-7);
  }
  const at::Tensor p = use_real_sigmoid ? at::sigmoid(t) : (t * 0.5 + 0.5).clamp(0.0, 1.0);
  const auto one = at::ones({}, x.options());
  auto sign_pos = [&](const at::Tensor& v) { return at::where(v < 0, -one, one); };
  at::Tensor q = sign_pos(p - noise);
  at::Tensor q_det = sign_pos(xd);
  if (zero_one) {
    q = (q + 1.0) / 2.0;
    q_det = (q_det + 1.0) / 2.0;
  }
  const at::Tensor scale = automatic ? least_squares_scale(xd, q_det, dims, po2)
                                     : at::full({}, alpha.value_or(1.0), x.options());
  // scale * q exactly in the forward, the identity in the backward.
  const at::Tensor out = (scale * q).add_(0.0) + (x - xd);
  return std::make_tuple(out, scale);
}

// QKeras stochastic_ternary in training (alpha "auto"/"auto_po2"): per channel, s = 2 max|x| / 3
// (po2-rounded), then number_of_unrolls times q* = [|x| >= s/2] sign(x), s = lsq(x, q*); then with
// sd = std(x) + eps, xn = x / sd and T = s / (2 sd): q = (sign(σ(t(xn - T)) - u0) +
// sign(σ(t(xn + T)) - u1)) / 2 with sign(0) = +1, in {-1, 0, 1}; output s q; gradient: identity.
std::tuple<at::Tensor, at::Tensor> stochastic_ternary_composite(
    const at::Tensor& x, const at::Tensor& noise0, const at::Tensor& noise1, double temperature,
    bool use_real_sigmoid, bool po2, int64_t number_of_unrolls,
    at::OptionalIntArrayRef scale_axis) {
  check_float_input(x, "heteroq::stochastic_ternary");
  TORCH_CHECK_VALUE(noise0.sizes().equals(x.sizes()) && noise1.sizes().equals(x.sizes()) &&
                        noise0.scalar_type() == x.scalar_type() &&
                        noise1.scalar_type() == x.scalar_type(),
                    "stochastic_ternary: the noises must have the input's shape and dtype");
  TORCH_CHECK_VALUE(std::isfinite(temperature) && temperature > 0,
                    "stochastic_ternary: `temperature` must be a finite number > 0, got ",
                    temperature);
  TORCH_CHECK_VALUE(number_of_unrolls >= 0 && number_of_unrolls <= 100,
                    "stochastic_ternary: `number_of_unrolls` must be an integer in [0, 100], got ",
                    number_of_unrolls);
  const at::Tensor xd = x.detach();
  const auto dims = reduce_dims(xd, scale_axis);
  const at::Tensor ax = xd.abs();
  const auto zero = at::zeros({}, x.options());
  const auto one = at::ones({}, x.options());
  const at::Tensor sgn = at::where(xd < 0, -one, at::where(xd > 0, one, zero));
  at::Tensor s = (dims.empty() ? ax : ax.amax(dims, true)).mul(2.0).div(3.0);
  if (po2) s = po2_scale(s);
  for (int64_t i = 0; i < number_of_unrolls; ++i) {
    const at::Tensor q_det = at::where(ax >= s / 2.0, sgn, zero);
    s = least_squares_scale(xd, q_det, dims, po2);
  }
  const at::Tensor sd = (dims.empty() ? xd.std(false) : xd.std(dims, false, true)) + 1e-7;
  const at::Tensor xn = xd / sd;
  const at::Tensor t = s / (sd * 2.0);
  auto sigma = [&](const at::Tensor& v) {
    return use_real_sigmoid ? at::sigmoid(v) : (v * 0.5 + 0.5).clamp(0.0, 1.0);
  };
  auto sign_pos = [&](const at::Tensor& v) { return at::where(v < 0, -one, one); };
  const at::Tensor q0 = sign_pos(sigma((xn - t) * temperature) - noise0);
  const at::Tensor q1 = sign_pos(sigma((xn + t) * temperature) - noise1);
  const at::Tensor q = (q0 + q1) / 2.0;
  const at::Tensor out = (s * q).add_(0.0) + (x - xd);
  return std::make_tuple(out, s);
}

}  // namespace
}  // namespace detail
}  // namespace heteroq::ops

TORCH_LIBRARY_FRAGMENT(heteroq, m) {
  m.def("stochastic_ternary(Tensor x, Tensor noise0, Tensor noise1, float temperature=8.0, "
        "bool use_real_sigmoid=True, bool po2=True, int number_of_unrolls=5, "
        "int[]? scale_axis=None) -> (Tensor, Tensor)");
  m.def("stochastic_binary(Tensor x, Tensor noise, float temperature=6.0, "
        "bool use_real_sigmoid=True, bool zero_one=False, float? alpha=None, "
        "bool automatic=False, bool po2=False, int[]? scale_axis=None) -> (Tensor, Tensor)");
  m.def("quantized_ulaw(Tensor x, int bits=8, int integer=0, bool symmetric=False, "
        "float u=255.0) -> Tensor");
  m.def("quantized_hswish(Tensor x, int bits=8, int integer=0, bool symmetric=False, "
        "float? alpha=None, float qnoise_factor=1.0, float relu_shift=3.0, "
        "float relu_upper_bound=6.0) -> Tensor");
}

TORCH_LIBRARY_IMPL(heteroq, CompositeImplicitAutograd, m) {
  m.impl("quantized_ulaw", &heteroq::ops::detail::quantized_ulaw_composite);
  m.impl("quantized_hswish", &heteroq::ops::detail::quantized_hswish_composite);
  m.impl("stochastic_binary", &heteroq::ops::detail::stochastic_binary_composite);
  m.impl("stochastic_ternary", &heteroq::ops::detail::stochastic_ternary_composite);
}
