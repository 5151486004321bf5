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

#include <ATen/WrapDimUtils.h>

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
                            double relu_upper_bound, const std::optional<at::Tensor>& noise) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::quantized_hswish", "")
                       .typed<at::Tensor(const at::Tensor&, int64_t, int64_t, bool,
                                         c10::optional<double>, double, double, double,
                                         const c10::optional<at::Tensor>&)>();
  c10::optional<at::Tensor> n;
  if (noise) n = *noise;
  return op.call(x, bits, integer, symmetric, detail::to_c10(alpha), qnoise_factor, relu_shift,
                 relu_upper_bound, n);
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

at::Tensor _scale_gradient(const at::Tensor& x, double factor) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::_scale_gradient", "")
                       .typed<at::Tensor(const at::Tensor&, double)>();
  return op.call(x, factor);
}

at::Tensor _relu_upper_bound(const at::Tensor& xq, const at::Tensor& x, double negative_slope,
                             std::optional<double> relu_upper_bound, double qnoise_factor) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::_relu_upper_bound", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, double,
                                         c10::optional<double>, double)>();
  return op.call(xq, x, negative_slope, detail::to_c10(relu_upper_bound), qnoise_factor);
}

at::Tensor quantized_bits_scaled(const at::Tensor& x, const at::Tensor& alpha, int64_t bits,
                                 int64_t integer, bool symmetric, bool keep_negative, int64_t axis,
                                 double qnoise_factor, const std::optional<at::Tensor>& noise) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::quantized_bits_scaled", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, int64_t, int64_t,
                                         bool, bool, int64_t, double,
                                         const c10::optional<at::Tensor>&)>();
  c10::optional<at::Tensor> n;
  if (noise) n = *noise;
  return op.call(x, alpha, bits, integer, symmetric, keep_negative, axis, qnoise_factor, n);
}

namespace detail {
namespace {

// QKeras's use_ste=False: the forward value unchanged, the gradient times `factor` ((1 - q) for
// qnoise_factor q: QKeras returns (1 - q) x_ref + sg(q xq)).
at::Tensor scale_gradient_composite(const at::Tensor& x, double factor) {
  TORCH_CHECK_VALUE(std::isfinite(factor), "heteroq::_scale_gradient: `factor` must be finite, got ",
                    factor);
  return with_gradient_of(x, x * factor);
}

// QKeras quantized_relu with is_quantized_clip=False. `xq` is the quantized_relu output at
// qnoise_factor 1 (rounded to nearest or stochastically); x the input. QKeras then:
//   x_u = relu(x, slope), capped at relu_upper_bound when it is set (else not capped at all);
//   xq = min(xq, relu_upper_bound) when it is set;
//   output x_u + sg(q (xq - x_u)): the value xq (q = 1) or the blend, the gradient d x_u/dx.
at::Tensor relu_upper_bound_composite(const at::Tensor& xq, const at::Tensor& x,
                                      double negative_slope, c10::optional<double> bound,
                                      double qnoise_factor) {
  check_float_input(x, "heteroq::_relu_upper_bound");
  TORCH_CHECK_VALUE(xq.sizes().equals(x.sizes()),
                    "heteroq::_relu_upper_bound: `xq` and `x` must have the same shape, got ",
                    xq.sizes(), " and ", x.sizes());
  TORCH_CHECK_VALUE(!bound || (std::isfinite(*bound) && *bound > 0),
                    "quantized_relu: `relu_upper_bound` must be None or a finite number > 0, got ",
                    bound.value_or(0.0));
  const auto opts = x.options();
  at::Tensor x_u = at::where(x > 0, x, x * negative_slope);
  at::Tensor value = xq.detach();
  if (bound) {
    const auto b = at::full({}, *bound, opts);
    x_u = at::where(x <= *bound, x_u, b);
    value = at::minimum(value, b);  // NaN stays NaN
  }
  if (qnoise_factor != 1.0) {
    const at::Tensor xu = x_u.detach();
    value = xu + (value - xu) * qnoise_factor;
  }
  return with_gradient_of(value.add(0.0), x_u);
}

// quantized_bits with a per-channel alpha tensor (QKeras: an ndarray alpha, q(x) = alpha Q(x)):
// alpha holds one value per index of `axis` (or a single value). The codes are quantized_bits's
// with alpha 1 (rounded to nearest, or stochastically with `noise`), each times its channel's
// alpha: code (2^integer / m) alpha, the same rounding as a scalar alpha's code (alpha 2^integer
// / m). qnoise_factor blends as x + q (xq - x). Gradient: identity (QKeras's STE).
at::Tensor quantized_bits_scaled_composite(const at::Tensor& x, const at::Tensor& alpha,
                                           int64_t bits, int64_t integer, bool symmetric,
                                           bool keep_negative, int64_t axis, double qnoise_factor,
                                           const c10::optional<at::Tensor>& noise) {
  check_float_input(x, "heteroq::quantized_bits_scaled");
  TORCH_CHECK_TYPE(alpha.is_floating_point(),
                   "quantized_bits: a tensor `alpha` must be floating point, got ",
                   alpha.scalar_type());
  const int64_t rank = x.dim();
  const int64_t channels = rank == 0 ? 1 : x.size(at::maybe_wrap_dim(axis, rank));
  TORCH_CHECK_VALUE(alpha.dim() <= 1 && (alpha.numel() == channels || alpha.numel() == 1),
                    "quantized_bits: `alpha` has ", alpha.numel(), " values (shape ",
                    alpha.sizes(), ") but the input has ", channels,
                    " channels on axis ", axis, " (input shape ", x.sizes(),
                    "); give one alpha per channel");
  {
    const at::Tensor a = alpha.detach().to(at::kDouble);
    TORCH_CHECK_VALUE(at::isfinite(a).all().item<bool>() && (a > 0).all().item<bool>(),
                      "quantized_bits: every `alpha` value must be a finite number > 0");
  }
  const at::Tensor xd = x.detach();
  const at::Tensor codes =
      noise ? quantized_bits_stochastic(xd, *noise, bits, integer, symmetric, keep_negative,
                                        std::nullopt, 1.0)
            : quantized_bits(xd, bits, integer, symmetric, keep_negative, std::nullopt, 1.0);
  std::vector<int64_t> shape(std::max<int64_t>(rank, 1), 1);
  if (rank > 0 && alpha.numel() > 1) shape[at::maybe_wrap_dim(axis, rank)] = channels;
  at::Tensor a = alpha.detach().to(codes.scalar_type()).reshape(shape);
  if (rank == 0) a = a.reshape({});
  at::Tensor value = (codes * a).add_(0.0);
  if (qnoise_factor != 1.0) value = xd + (value - xd) * qnoise_factor;
  return with_gradient_of(value, x);
}

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

// QKeras quantized_hswish.__call__: quantized_bits (signed) of x · relu(x + shift, max=ub) / ub,
// rounded stochastically when `noise` is given (use_stochastic_rounding in training).
// Gradient: d hswish/dx (quantized_bits's STE is the identity).
at::Tensor quantized_hswish_composite(const at::Tensor& x, int64_t bits, int64_t integer,
                                      bool symmetric, c10::optional<double> alpha,
                                      double qnoise_factor, double relu_shift,
                                      double relu_upper_bound,
                                      const c10::optional<at::Tensor>& noise) {
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
  if (noise.has_value() && noise->defined()) {
    return quantized_bits_stochastic(h, *noise, bits, integer, symmetric, /*keep_negative=*/true,
                                     to_std(alpha), qnoise_factor);
  }
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
  m.def("_scale_gradient(Tensor x, float factor) -> Tensor");
  m.def("_relu_upper_bound(Tensor xq, Tensor x, float negative_slope=0.0, "
        "float? relu_upper_bound=None, float qnoise_factor=1.0) -> Tensor");
  m.def("quantized_bits_scaled(Tensor x, Tensor alpha, int bits=8, int integer=0, "
        "bool symmetric=False, bool keep_negative=True, int axis=0, float qnoise_factor=1.0, "
        "Tensor? noise=None) -> Tensor");
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
        "float relu_upper_bound=6.0, Tensor? noise=None) -> Tensor");
}

TORCH_LIBRARY_IMPL(heteroq, CompositeImplicitAutograd, m) {
  m.impl("quantized_ulaw", &heteroq::ops::detail::quantized_ulaw_composite);
  m.impl("_scale_gradient", &heteroq::ops::detail::scale_gradient_composite);
  m.impl("_relu_upper_bound", &heteroq::ops::detail::relu_upper_bound_composite);
  m.impl("quantized_bits_scaled", &heteroq::ops::detail::quantized_bits_scaled_composite);
  m.impl("quantized_hswish", &heteroq::ops::detail::quantized_hswish_composite);
  m.impl("stochastic_binary", &heteroq::ops::detail::stochastic_binary_composite);
  m.impl("stochastic_ternary", &heteroq::ops::detail::stochastic_ternary_composite);
}
