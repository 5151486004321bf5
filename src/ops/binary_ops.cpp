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

std::tuple<at::Tensor, at::Tensor> binary_stochastic(
    const at::Tensor& x, const at::Tensor& noise, bool use_01, std::optional<double> alpha,
    int64_t auto_mode, std::optional<std::vector<int64_t>> scale_axis,
    std::optional<std::vector<int64_t>> elements_per_scale, std::optional<int64_t> min_po2_exponent,
    std::optional<int64_t> max_po2_exponent) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::binary_stochastic", "")
                       .typed<std::tuple<at::Tensor, at::Tensor>(
                           const at::Tensor&, const at::Tensor&, bool, c10::optional<double>,
                           int64_t, at::OptionalIntArrayRef, at::OptionalIntArrayRef,
                           c10::optional<int64_t>, c10::optional<int64_t>)>();
  at::OptionalIntArrayRef axes, groups;
  if (scale_axis) axes = at::IntArrayRef(*scale_axis);
  if (elements_per_scale) groups = at::IntArrayRef(*elements_per_scale);
  c10::optional<int64_t> lo, hi;
  if (min_po2_exponent) lo = *min_po2_exponent;
  if (max_po2_exponent) hi = *max_po2_exponent;
  return op.call(x, noise, use_01, detail::to_c10(alpha), auto_mode, axes, groups, lo, hi);
}

std::tuple<at::Tensor, at::Tensor> ternary_stochastic(
    const at::Tensor& x, const at::Tensor& noise, bool po2, int64_t number_of_unrolls,
    std::optional<std::vector<int64_t>> scale_axis) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::ternary_stochastic", "")
                       .typed<std::tuple<at::Tensor, at::Tensor>(
                           const at::Tensor&, const at::Tensor&, bool, int64_t,
                           at::OptionalIntArrayRef)>();
  at::OptionalIntArrayRef axes;
  if (scale_axis) axes = at::IntArrayRef(*scale_axis);
  return op.call(x, noise, po2, number_of_unrolls, axes);
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

namespace {

// The least-squares scale of binary and ternary with a string alpha (QKeras's
// _get_least_squares_scale): s = mean(x q) / (mean(q q) + eps) per channel, po2-rounded for
// "auto_po2" (detail::po2_scale, in the tensor's dtype).
//
// The means are sums in double divided by the channel size n; the ratio is taken in double and
// rounded once to the tensor's dtype (QKeras: float32 means). The fused CPU kernel
// (cpu/binary_auto_kernel.cpp) must give the same bits, also for "auto", whose scale is returned
// unrounded (a float64 scale would show any difference in the summation order in its last bit,
// with probability near 1). So both paths sum in one fixed order instead of relying on the
// order-independence argument of bits_least_squares_scale:
//   - sum(x q): the channel's products x q (in the tensor's dtype, as QKeras's element-wise
//     product) in the channel's logical order (kept axes first, reduced axes last, row-major), in
//     kLsqLanes = 16 lanes: lane j adds the products j, j + 16, j + 32, ... sequentially from +0.0
//     (here at::cumsum over a (rows, n/16, 16) view, which ATen's CPU kernel runs as a sequential
//     loop in double; the zero padding of the last group changes no sum: +0.0 + y = y for every y
//     but -0.0, and a lane starting from +0.0 never holds -0.0); then the 16 lane sums are
//     combined in a fixed tree, ((L[j] + L[4+j]) + (L[8+j] + L[12+j])) for j = 0..3, then
//     (C0 + C1) + (C2 + C3); + 0.0 at the end (no -0.0 sum). The fused kernel keeps the same
//     16 lanes in four AVX2 registers of doubles and combines them in the same tree;
//   - sum(q q): a sum of zeros and ones (NaN where q is NaN), exact in double in any order.
// Channels without reduced axes (rank <= 1, or every axis kept) get per-element scales in the
// tensor's dtype: QKeras does not average there (K.mean over axis=[] reduces nothing).
// The stochastic ternary keeps least_squares_scale (float means; no fused kernel to agree with).
constexpr int64_t kLsqLanes = 16;

// The lane-ordered sum of each row of p (rows, n), float64 (see above): (rows,) float64.
at::Tensor lane_ordered_sum(const at::Tensor& p) {
  const int64_t rows = p.size(0), n = p.size(1);
  if (rows == 0 || n == 0) return at::zeros({rows}, p.options());
  const int64_t m = (n + kLsqLanes - 1) / kLsqLanes;
  const at::Tensor padded =
      n == m * kLsqLanes ? p : at::constant_pad_nd(p, {0, m * kLsqLanes - n}, 0.0);
  const at::Tensor lanes =
      at::cumsum(padded.reshape({rows, m, kLsqLanes}), 1, at::kDouble).select(1, m - 1);
  const at::Tensor c = (lanes.narrow(1, 0, 4) + lanes.narrow(1, 4, 4)) +
                       (lanes.narrow(1, 8, 4) + lanes.narrow(1, 12, 4));
  return ((c.select(1, 0) + c.select(1, 1)) + (c.select(1, 2) + c.select(1, 3))).add_(0.0);
}

at::Tensor auto_lsq_scale(const at::Tensor& x, const at::Tensor& q,
                          const std::vector<int64_t>& dims, bool po2) {
  if (x.dim() <= 1 || dims.empty()) {
    const at::Tensor s = (x * q) / (q * q + 1e-7);
    return po2 ? po2_scale(s) : s;
  }
  const int64_t rank = x.dim();
  std::vector<bool> reduced(rank, false);
  for (int64_t d : dims) reduced[d] = true;
  std::vector<int64_t> perm, scale_shape(x.sizes().begin(), x.sizes().end());
  for (int64_t d = 0; d < rank; ++d) {
    if (!reduced[d]) perm.push_back(d);
  }
  int64_t n = 1, rows = 1;
  for (int64_t d : dims) {
    perm.push_back(d);
    n *= x.size(d);
    scale_shape[d] = 1;
  }
  for (int64_t d = 0; d < rank; ++d) {
    if (!reduced[d]) rows *= x.size(d);
  }
  const double dn = static_cast<double>(n);
  const at::Tensor sx =
      lane_ordered_sum((x * q).to(at::kDouble).permute(perm).reshape({rows, n}));
  const at::Tensor qx = sx.view(scale_shape).div_(dn);
  const at::Tensor qq = at::sum(q * q, dims, true, at::kDouble).div_(dn);
  const at::Tensor s = qx.div_(qq.add_(1e-7)).to(x.scalar_type());
  return po2 ? po2_scale(s) : s;
}

}  // namespace

// QKeras binary.__call__ with a string alpha: k = sign(x) (0 -> +1; use_01: (k + 1)/2), and
// scale = _get_least_squares_scale(alpha, x, k) per channel (auto_lsq_scale).
// The fused CPU kernel (cpu/binary_auto_kernel.cpp) gives the same bits; keep the two in step.
std::tuple<at::Tensor, at::Tensor> binary_auto_generic(const at::Tensor& x, bool use_01, bool po2,
                                                       at::OptionalIntArrayRef scale_axis) {
  check_float_input(x, "heteroq::binary_auto");
  if (!is_float_or_double(x)) {
    auto [out, scale] = binary_auto_generic(x.to(at::kFloat), use_01, po2, scale_axis);
    return std::make_tuple(out.to(x.scalar_type()), scale);
  }
  const auto dims = reduce_dims(x, scale_axis);
  const at::Tensor k = binary_codes(x, use_01);
  const at::Tensor scale = auto_lsq_scale(x, k, dims, po2);
  return std::make_tuple((scale * k).add_(0.0), scale);
}

namespace {
// QKeras ternary.__call__ with a string alpha (number_of_unrolls iterations):
//   s = 2 max|x| / 3 per channel (po2-rounded for auto_po2); then number_of_unrolls times
//   v = s round(x / s);  q = (|v| >= s/2) sign(x);  s = lsq(alpha, x, q).
// With noise (use_stochastic_rounding, training; noise[i] for iteration i), QKeras rounds x / s
// stochastically at precision 1/3: r = sround(3 x / s), v = s r / 3, so |v| >= s/2 iff |r| >= 2.
// lsq: auto_lsq_scale (sums in double in a fixed order, as the fused CPU kernel
// cpu/binary_auto_kernel.cpp, which gives the same bits: keep the two in step); with noise,
// least_squares_scale (float means) as before.
std::tuple<at::Tensor, at::Tensor> ternary_auto_impl(const at::Tensor& x, bool po2,
                                                     int64_t number_of_unrolls,
                                                     at::OptionalIntArrayRef scale_axis,
                                                     const at::Tensor* noise) {
  const auto dims = reduce_dims(x, scale_axis);
  const at::Tensor ax = x.abs();
  at::Tensor s = (x.numel() == 0 ? ax.clone() : (dims.empty() ? ax : ax.amax(dims, true)))
                     .mul(2.0)
                     .div(3.0);
  if (po2) s = po2_scale(s);
  const auto zero = at::zeros({}, x.options());
  const auto one = at::ones({}, x.options());
  const at::Tensor sgn = at::where(x < 0, -one, at::where(x > 0, one, zero));
  at::Tensor q = at::zeros_like(x);
  for (int64_t i = 0; i < number_of_unrolls; ++i) {
    const at::Tensor keep = noise ? stochastic_round(x / s * 3.0, (*noise)[i]).abs() >= 2.0
                                  : (s * at::round(x / s)).abs() >= s / 2.0;
    q = at::where(keep, sgn, zero);
    s = noise ? least_squares_scale(x, q, dims, po2) : auto_lsq_scale(x, q, dims, po2);
  }
  return std::make_tuple((s * q).add_(0.0), s);
}

void check_unrolls(int64_t number_of_unrolls) {
  TORCH_CHECK_VALUE(number_of_unrolls >= 0 && number_of_unrolls <= 100,
                    "ternary: `number_of_unrolls` must be an integer in [0, 100], got ",
                    number_of_unrolls);
}
}  // namespace

std::tuple<at::Tensor, at::Tensor> ternary_auto_generic(const at::Tensor& x, bool po2,
                                                        int64_t number_of_unrolls,
                                                        at::OptionalIntArrayRef scale_axis) {
  check_float_input(x, "heteroq::ternary_auto");
  check_unrolls(number_of_unrolls);
  if (!is_float_or_double(x)) {
    auto [out, scale] = ternary_auto_generic(x.to(at::kFloat), po2, number_of_unrolls, scale_axis);
    return std::make_tuple(out.to(x.scalar_type()), scale);
  }
  return ternary_auto_impl(x, po2, number_of_unrolls, scale_axis, nullptr);
}

// ternary(alpha='auto'/'auto_po2', use_stochastic_rounding=True) in training: noise holds
// number_of_unrolls draws of U[0, 1) shaped like x (noise[i] for iteration i). Output s q;
// gradient: identity (QKeras: x + sg(s q - x)).
std::tuple<at::Tensor, at::Tensor> ternary_stochastic_composite(const at::Tensor& x,
                                                                const at::Tensor& noise, bool po2,
                                                                int64_t number_of_unrolls,
                                                                at::OptionalIntArrayRef scale_axis) {
  check_float_input(x, "heteroq::ternary_stochastic");
  check_unrolls(number_of_unrolls);
  std::vector<int64_t> shape{number_of_unrolls};
  shape.insert(shape.end(), x.sizes().begin(), x.sizes().end());
  TORCH_CHECK_VALUE(noise.sizes().equals(shape) && noise.scalar_type() == x.scalar_type(),
                    "heteroq::ternary_stochastic: `noise` must have shape (number_of_unrolls, "
                    "*x.shape) = ", at::IntArrayRef(shape), " and the input's dtype, got ",
                    noise.sizes(), " ", noise.scalar_type());
  const at::Tensor xd = x.detach();
  at::Tensor out, scale;
  if (!is_float_or_double(x)) {
    const at::Tensor nf = noise.to(at::kFloat);
    std::tie(out, scale) =
        ternary_auto_impl(xd.to(at::kFloat), po2, number_of_unrolls, scale_axis, &nf);
    out = out.to(x.scalar_type());
  } else {
    std::tie(out, scale) = ternary_auto_impl(xd, po2, number_of_unrolls, scale_axis, &noise);
  }
  return std::make_tuple(with_gradient_of(out, x), scale);
}

// QKeras binary with use_stochastic_rounding, in training:
//   f = 2 min(max|x|, 1) per channel (the statistics axes of the auto modes; rank <= 1: all),
//   x' = f sround(8 x / f) / 8  (stochastic rounding at precision 1/8, noise[0]; x' = x where f = 0,
//        where QKeras computes 0/0),
//   k = sign(x'), a zero becoming -1 or +1 at random (+1 when noise[1] > 1/2: QKeras's
//       2 round(u) - 1), (k + 1)/2 with use_01;
//   scale = 1 (alpha None), alpha, or lsq(alpha, x', k) ("auto"/"auto_po2", auto_mode 1/2);
//   output scale k exactly; gradient: the STE of x' = x + sg(x' - x) (identity), through tanh for
//   alpha None (QKeras's x + sg(scale k - x) with x = tanh(x')).
std::tuple<at::Tensor, at::Tensor> binary_stochastic_composite(
    const at::Tensor& x, const at::Tensor& noise, bool use_01, c10::optional<double> alpha,
    int64_t auto_mode, at::OptionalIntArrayRef scale_axis,
    at::OptionalIntArrayRef elements_per_scale, c10::optional<int64_t> min_po2_exponent,
    c10::optional<int64_t> max_po2_exponent) {
  check_binary(x, alpha);
  TORCH_CHECK_VALUE(auto_mode >= 0 && auto_mode <= 2,
                    "heteroq::binary_stochastic: `auto_mode` must be 0 (fixed alpha), 1 ('auto') "
                    "or 2 ('auto_po2'), got ", auto_mode);
  std::vector<int64_t> shape{2};
  shape.insert(shape.end(), x.sizes().begin(), x.sizes().end());
  TORCH_CHECK_VALUE(noise.sizes().equals(shape) && noise.scalar_type() == x.scalar_type(),
                    "heteroq::binary_stochastic: `noise` must have shape (2, *x.shape) = ",
                    at::IntArrayRef(shape), " and the input's dtype, got ", noise.sizes(), " ",
                    noise.scalar_type());
  if (!is_float_or_double(x)) {
    auto [out, scale] =
        binary_stochastic_composite(x.to(at::kFloat), noise.to(at::kFloat), use_01, alpha,
                                    auto_mode, scale_axis, elements_per_scale, min_po2_exponent,
                                    max_po2_exponent);
    return std::make_tuple(out.to(x.scalar_type()), scale);
  }
  const at::Tensor xd = x.detach();
  const auto dims = reduce_dims(xd, scale_axis);
  const at::Tensor ax = xd.abs();
  const at::Tensor m = (xd.numel() == 0 ? ax.clone() : (dims.empty() ? ax : ax.amax(dims, true)))
                           .clamp_max(1.0);
  const at::Tensor f = m * 2.0;
  const at::Tensor safe = at::where(f == 0, at::ones_like(f), f);
  const at::Tensor rounded = stochastic_round(xd / safe * 8.0, noise[0]).div_(8.0).mul_(safe);
  const at::Tensor xs = at::where(f == 0, xd, rounded);
  const auto one = at::ones({}, x.options());
  const at::Tensor zero_sign = at::where(noise[1] > 0.5, one, -one);
  at::Tensor k = at::where(xs > 0, one, at::where(xs < 0, -one, zero_sign));
  k = at::where(at::isnan(xs), xs, k);
  if (use_01) k = (k + 1.0) / 2.0;
  const at::Tensor x_ste = with_gradient_of(xs, x);
  const at::Tensor ref = alpha.has_value() || auto_mode != 0 ? x_ste : at::tanh(x_ste);
  at::Tensor scale;
  if (auto_mode != 0) {
    scale = least_squares_scale_grouped(xs, k, scale_axis, elements_per_scale, auto_mode == 2,
                                        min_po2_exponent, max_po2_exponent);
  } else {
    scale = at::full({}, alpha.value_or(1.0), x.options());
  }
  return std::make_tuple(with_gradient_of((scale * k).add_(0.0), ref), scale);
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
  m.def("binary_stochastic(Tensor x, Tensor noise, bool use_01=False, float? alpha=None, "
        "int auto_mode=0, int[]? scale_axis=None, int[]? elements_per_scale=None, "
        "int? min_po2_exponent=None, int? max_po2_exponent=None) -> (Tensor, Tensor)");
  m.def("ternary_stochastic(Tensor x, Tensor noise, bool po2=True, int number_of_unrolls=5, "
        "int[]? scale_axis=None) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(heteroq, CompositeExplicitAutograd, m) {
  m.impl("binary", &heteroq::ops::detail::binary_generic);
  m.impl("ternary", &heteroq::ops::detail::ternary_generic);
  m.impl("binary_auto", &heteroq::ops::detail::binary_auto_generic);
  m.impl("ternary_auto", &heteroq::ops::detail::ternary_auto_generic);
  m.impl("_tanh_ste_backward", &heteroq::ops::detail::tanh_ste_backward_generic);
}

TORCH_LIBRARY_IMPL(heteroq, CompositeImplicitAutograd, m) {
  m.impl("binary_stochastic", &heteroq::ops::detail::binary_stochastic_composite);
  m.impl("ternary_stochastic", &heteroq::ops::detail::ternary_stochastic_composite);
}
