// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// quantized_bits(alpha="auto_po2") with QKeras's scale options elements_per_scale and
// min/max_po2_exponent: a composition of ATen ops (CompositeImplicitAutograd: one kernel for every
// device, the identity STE through with_gradient_of). The plain auto modes have their own operator
// (quantize_auto.cpp) with a fused CPU kernel.
#include <ATen/ATen.h>
#include <ATen/WrapDimUtils.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <cmath>
#include <vector>

#include "core/fixed_point.h"
#include "heteroq/ops/quantize.h"
#include "ops/quantize_common.h"

namespace heteroq::ops {

std::tuple<at::Tensor, at::Tensor> quantized_bits_auto_po2_grouped(
    const at::Tensor& x, int64_t bits, int64_t integer, bool keep_negative,
    std::optional<std::vector<int64_t>> scale_axis, double qnoise_factor,
    std::optional<std::vector<int64_t>> elements_per_scale, std::optional<int64_t> min_po2_exponent,
    std::optional<int64_t> max_po2_exponent) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::quantized_bits_auto_po2_grouped", "")
                       .typed<std::tuple<at::Tensor, at::Tensor>(
                           const at::Tensor&, int64_t, int64_t, bool, at::OptionalIntArrayRef,
                           double, at::OptionalIntArrayRef, c10::optional<int64_t>,
                           c10::optional<int64_t>)>();
  at::OptionalIntArrayRef axes, groups;
  if (scale_axis) axes = at::IntArrayRef(*scale_axis);
  if (elements_per_scale) groups = at::IntArrayRef(*elements_per_scale);
  c10::optional<int64_t> lo, hi;
  if (min_po2_exponent) lo = *min_po2_exponent;
  if (max_po2_exponent) hi = *max_po2_exponent;
  return op.call(x, bits, integer, keep_negative, axes, qnoise_factor, groups, lo, hi);
}

std::tuple<at::Tensor, at::Tensor> binary_auto_grouped(
    const at::Tensor& x, bool use_01, bool po2, std::optional<std::vector<int64_t>> scale_axis,
    std::optional<std::vector<int64_t>> elements_per_scale, std::optional<int64_t> min_po2_exponent,
    std::optional<int64_t> max_po2_exponent) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::binary_auto_grouped", "")
                       .typed<std::tuple<at::Tensor, at::Tensor>(
                           const at::Tensor&, bool, bool, at::OptionalIntArrayRef,
                           at::OptionalIntArrayRef, c10::optional<int64_t>,
                           c10::optional<int64_t>)>();
  at::OptionalIntArrayRef axes, groups;
  if (scale_axis) axes = at::IntArrayRef(*scale_axis);
  if (elements_per_scale) groups = at::IntArrayRef(*elements_per_scale);
  c10::optional<int64_t> lo, hi;
  if (min_po2_exponent) lo = *min_po2_exponent;
  if (max_po2_exponent) hi = *max_po2_exponent;
  return op.call(x, use_01, po2, axes, groups, lo, hi);
}

namespace detail {
namespace {

// QKeras's _get_scale_mean with elements_per_scale (rank > 1): channel c of kept axis a shares its
// scale with the channels of its group c / e_a. The mean of v over the reduced axes and the group,
// shaped like the per-channel statistics (1 on reduced axes, the channel count on kept axes).
at::Tensor grouped_mean(const at::Tensor& v, const std::vector<bool>& kept,
                        const std::vector<int64_t>& groups) {
  std::vector<int64_t> split, reduce, expanded;
  for (int64_t d = 0; d < v.dim(); ++d) {
    if (kept[d]) {
      split.push_back(v.size(d) / groups[d]);
      split.push_back(groups[d]);
      reduce.push_back(static_cast<int64_t>(split.size()) - 1);
      expanded.push_back(v.size(d) / groups[d]);
      expanded.push_back(groups[d]);
    } else {
      split.push_back(v.size(d));
      reduce.push_back(static_cast<int64_t>(split.size()) - 1);
      expanded.push_back(1);
    }
  }
  std::vector<int64_t> out_shape;
  for (int64_t d = 0; d < v.dim(); ++d) out_shape.push_back(kept[d] ? v.size(d) : 1);
  // Summed in double, as the ungrouped kernels (quantize_auto.cpp, bits_least_squares_scale), so
  // elements_per_scale = 1 gives quantized_bits_auto's scales.
  const at::Tensor sum = v.reshape(split).sum(reduce, /*keepdim=*/true, at::kDouble);
  return sum.div_(static_cast<double>(v.numel()) / static_cast<double>(sum.numel()))
      .expand(expanded)
      .reshape(out_shape);
}

// The kept axes and their group sizes (QKeras pairs elements_per_scale with the scale_axis
// entries in their order); checks divisibility.
void kept_groups(const at::Tensor& x, at::OptionalIntArrayRef scale_axis,
                 at::OptionalIntArrayRef elements_per_scale, std::vector<bool>& kept,
                 std::vector<int64_t>& groups) {
  const int64_t rank = x.dim();
  kept.assign(rank, false);
  groups.assign(rank, 1);
  for (int64_t d = 0; d < rank; ++d) kept[d] = true;
  for (int64_t d : reduce_dims(x, scale_axis)) kept[d] = false;
  if (!elements_per_scale || rank <= 1) return;
  const std::vector<int64_t> axes = scale_axis ? scale_axis->vec() : std::vector<int64_t>{0};
  TORCH_CHECK_VALUE(elements_per_scale->size() == 1 || elements_per_scale->size() == axes.size(),
                    "`elements_per_scale` must be one integer or one per `scale_axis` entry (",
                    axes.size(), "), got ", elements_per_scale->size(), " values");
  for (size_t i = 0; i < axes.size(); ++i) {
    const int64_t d = at::maybe_wrap_dim(axes[i], rank);
    const int64_t e =
        elements_per_scale->size() == 1 ? (*elements_per_scale)[0] : (*elements_per_scale)[i];
    TORCH_CHECK_VALUE(e >= 1 && x.size(d) % e == 0, "the scale axis ", d, " has ", x.size(d),
                      " channels, not divisible by elements_per_scale ", e, " (input shape ",
                      x.sizes(), ")");
    groups[d] = e;
  }
}

}  // namespace

at::Tensor least_squares_scale_grouped(const at::Tensor& x, const at::Tensor& q,
                                       at::OptionalIntArrayRef scale_axis,
                                       at::OptionalIntArrayRef elements_per_scale, bool po2,
                                       c10::optional<int64_t> min_po2_exponent,
                                       c10::optional<int64_t> max_po2_exponent) {
  at::Tensor qx, qq;
  if (x.dim() <= 1) {  // QKeras: one scale per element at rank <= 1
    qx = x * q;
    qq = q * q;
  } else {
    std::vector<bool> kept;
    std::vector<int64_t> groups;
    kept_groups(x, scale_axis, elements_per_scale, kept, groups);
    qx = grouped_mean(x * q, kept, groups);
    qq = grouped_mean(q * q, kept, groups);
  }
  at::Tensor s = (qx / (qq + 1e-7)).to(x.scalar_type());
  if (!po2) return s;
  s = po2_scale(s);
  if (min_po2_exponent) s = s.clamp_min(std::ldexp(1.0, static_cast<int>(*min_po2_exponent)));
  if (max_po2_exponent) s = s.clamp_max(std::ldexp(1.0, static_cast<int>(*max_po2_exponent)));
  return s;
}

namespace {

// As quantized_bits_auto_generic (quantize_auto.cpp) for "auto_po2", with QKeras's
// _get_least_squares_scale options inside the 5 iterations: the means run per group of
// elements_per_scale channels (rank > 1; QKeras keeps one scale per element at rank 1), and the
// po2 scale is clipped to [2^min_po2_exponent, 2^max_po2_exponent]. The first scale (from max|x|)
// stays per channel and unclipped, as in QKeras.
std::tuple<at::Tensor, at::Tensor> grouped_composite(
    const at::Tensor& x, int64_t bits, int64_t integer, bool keep_negative,
    at::OptionalIntArrayRef scale_axis, double qnoise_factor,
    at::OptionalIntArrayRef elements_per_scale, c10::optional<int64_t> min_po2_exponent,
    c10::optional<int64_t> max_po2_exponent) {
  check_float_input(x, "heteroq::quantized_bits_auto_po2_grouped");
  std::string err = heteroq::detail::check_quantized_bits_auto_args(bits, integer);
  if (err.empty()) err = heteroq::detail::check_qnoise_factor("quantized_bits", qnoise_factor);
  std::optional<std::vector<int64_t>> axes_v, groups_v;
  if (scale_axis) axes_v = scale_axis->vec();
  if (elements_per_scale) groups_v = elements_per_scale->vec();
  std::optional<int64_t> lo, hi;
  if (min_po2_exponent) lo = *min_po2_exponent;
  if (max_po2_exponent) hi = *max_po2_exponent;
  if (err.empty()) err = heteroq::detail::check_po2_scale_args("quantized_bits", axes_v, groups_v, lo, hi);
  TORCH_CHECK_VALUE(err.empty(), err);
  const at::Tensor xd0 = x.detach();
  const at::Tensor xd = is_reduced_precision(xd0) ? xd0.to(at::kFloat) : xd0;
  const std::vector<int64_t> dims = reduce_dims(xd, scale_axis);
  {  // check the groups before computing
    std::vector<bool> kept;
    std::vector<int64_t> groups;
    if (xd.dim() > 1) kept_groups(xd, scale_axis, elements_per_scale, kept, groups);
  }
  const double m_i = std::ldexp(1.0, static_cast<int>(integer));
  const double m = std::ldexp(1.0, static_cast<int>(bits - (keep_negative ? 1 : 0)));
  const double levels = 2.0 * (std::ldexp(1.0, static_cast<int>(bits - 1)) - 1.0);
  const at::Tensor xs = xd / m_i;
  const at::Tensor ax = xs.abs();
  const at::Tensor sign = at::sign(xs);
  auto codes = [&](const at::Tensor& s) {
    const at::Tensor safe = at::where(s == 0, at::ones_like(s), s);
    return sign * at::floor(ax / safe + 0.5).clamp_max_(levels / 2);
  };
  at::Tensor s = (xd.numel() == 0 ? ax.clone() : (dims.empty() ? ax : ax.amax(dims, true)))
                     .mul(2.0)
                     .div(levels);
  s = po2_scale(s);
  for (int i = 0; i < 5; ++i) {
    s = least_squares_scale_grouped(xs, codes(s), scale_axis, elements_per_scale, true,
                                    min_po2_exponent, max_po2_exponent);
  }
  const at::Tensor z = codes(s);
  const at::Tensor scale = s * m;
  at::Tensor xq = (z * m_i).div_(m).mul_(scale).add_(0.0);
  if (qnoise_factor != 1.0) xq = xd + (xq - xd).mul_(qnoise_factor);
  return std::make_tuple(with_gradient_of(xq.to(x.scalar_type()), x), scale);
}

// binary with a string alpha and QKeras's scale options: k = sign(x) (0 -> +1; use_01:
// (k + 1)/2), scale = lsq(alpha, x, k) with elements_per_scale groups (rank > 1) and, for
// "auto_po2", the exponent clip. Output scale k exactly; gradient: identity.
std::tuple<at::Tensor, at::Tensor> binary_grouped_composite(
    const at::Tensor& x, bool use_01, bool po2, at::OptionalIntArrayRef scale_axis,
    at::OptionalIntArrayRef elements_per_scale, c10::optional<int64_t> min_po2_exponent,
    c10::optional<int64_t> max_po2_exponent) {
  check_float_input(x, "heteroq::binary_auto_grouped");
  const at::Tensor xd0 = x.detach();
  const at::Tensor xd = is_reduced_precision(xd0) ? xd0.to(at::kFloat) : xd0;
  const auto one = at::ones({}, xd.options());
  at::Tensor k = at::where(at::isnan(xd), xd, at::where(xd < 0, use_01 ? at::zeros_like(one) : -one, one));
  const at::Tensor scale = least_squares_scale_grouped(xd, k, scale_axis, elements_per_scale, po2,
                                                       min_po2_exponent, max_po2_exponent);
  return std::make_tuple(with_gradient_of((scale * k).add_(0.0).to(x.scalar_type()), x), scale);
}

}  // namespace
}  // namespace detail
}  // namespace heteroq::ops

TORCH_LIBRARY_FRAGMENT(heteroq, m) {
  m.def("binary_auto_grouped(Tensor x, bool use_01=False, bool po2=True, int[]? scale_axis=None, "
        "int[]? elements_per_scale=None, int? min_po2_exponent=None, int? max_po2_exponent=None) "
        "-> (Tensor, Tensor)");
  m.def("quantized_bits_auto_po2_grouped(Tensor x, int bits=8, int integer=0, "
        "bool keep_negative=True, int[]? scale_axis=None, float qnoise_factor=1.0, "
        "int[]? elements_per_scale=None, int? min_po2_exponent=None, "
        "int? max_po2_exponent=None) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(heteroq, CompositeImplicitAutograd, m) {
  m.impl("quantized_bits_auto_po2_grouped", &heteroq::ops::detail::grouped_composite);
  m.impl("binary_auto_grouped", &heteroq::ops::detail::binary_grouped_composite);
}
