// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// quantized_bits with alpha "auto" / "auto_po2": the C++ entry point and the device-generic kernel
// (ATen ops; it serves every device, CPU included). The schema is declared with the others in
// quantize_ops.cpp; the autograd kernel (identity STE) is in autograd/quantize_kernel.cpp.
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

std::tuple<at::Tensor, at::Tensor> quantized_bits_auto(const at::Tensor& x, int64_t bits,
                                                       int64_t integer, bool keep_negative,
                                                       bool po2,
                                                       std::optional<std::vector<int64_t>> scale_axis,
                                                       double qnoise_factor) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::quantized_bits_auto", "")
                       .typed<std::tuple<at::Tensor, at::Tensor>(
                           const at::Tensor&, int64_t, int64_t, bool, bool,
                           at::OptionalIntArrayRef, double)>();
  at::OptionalIntArrayRef axes;
  if (scale_axis) axes = at::IntArrayRef(*scale_axis);
  return op.call(x, bits, integer, keep_negative, po2, axes, qnoise_factor);
}

namespace detail {

// The axes the statistics reduce over: every axis but the kept ones (rank > 1), or all (rank 1).
std::vector<int64_t> reduce_dims(const at::Tensor& x, at::OptionalIntArrayRef scale_axis) {
  const int64_t rank = x.dim();
  std::vector<int64_t> dims;
  if (rank <= 1) {
    for (int64_t d = 0; d < rank; ++d) dims.push_back(d);
    return dims;
  }
  std::vector<bool> kept(rank, false);
  if (scale_axis.has_value()) {
    for (int64_t a : *scale_axis) {
      TORCH_CHECK_VALUE(a >= -rank && a < rank, "heteroq::quantized_bits_auto: `scale_axis` ",
                        a, " is out of range for a tensor of ", rank, " dimensions");
      kept[at::maybe_wrap_dim(a, rank)] = true;
    }
  } else {
    kept[0] = true;  // PyTorch layout: the output channel of Linear/Conv weights
  }
  for (int64_t d = 0; d < rank; ++d) {
    if (!kept[d]) dims.push_back(d);
  }
  return dims;
}

at::Tensor po2_scale(const at::Tensor& s) {
  return at::exp2(at::round(at::log(s + 1e-7) / std::log(2.0)));
}

at::Tensor least_squares_scale(const at::Tensor& x, const at::Tensor& q,
                               const std::vector<int64_t>& dims, bool po2) {
  // Rank 1: QKeras does not average, one scale per element.
  const at::Tensor qx = x.dim() <= 1 ? x * q : (x * q).mean(dims, true);
  const at::Tensor qq = x.dim() <= 1 ? q * q : (q * q).mean(dims, true);
  const at::Tensor s = qx / (qq + 1e-7);
  return po2 ? po2_scale(s) : s;
}

namespace {

// The least-squares step of the auto_po2 loop: s = po2(mean(x' z) / (mean(z z) + eps)) per channel.
//
// The two means are sums in double of the products x' z and z z (each rounded to the tensor's
// dtype, as QKeras's element-wise products are), divided by the channel size; the ratio is taken
// in double and rounded once to the tensor's dtype before the po2 rounding (in that dtype, as
// QKeras). The fused CPU kernel (cpu/quantize_auto_kernel.cpp) computes the same sums with its own
// summation order; why that cannot change the scale in practice:
//   - every term is >= 0 (x' z = |x'| |z|), so there is no cancellation: any order of summing n
//     doubles has a relative error below (n - 1) 2^-53 (about 2^-29 for n = 2^24; typically
//     sqrt(n) 2^-53). Special values do not depend on the order (NaN if any term is NaN, else inf
//     if any is inf; there are no negative terms);
//   - sum(z z) is exact, hence order-independent, while z z < 2^24 (float32: bits <= 13) and
//     n (levels/2)^2 < 2^53;
//   - the ratio is rounded to float32 (24 bits) and then to a power of two: two summation orders
//     can give different scales only if the ratio lies within ~2^-29 (relative) of one of the
//     float32 rounding boundaries that are also po2 rounding boundaries (the one or two float32
//     values next to sqrt(2) 2^k where log(s + eps) / ln 2 rounds the other way): a relative
//     window of ~2^-29 per octave, i.e. about 1e-9 of the possible ratios. For float64 tensors the
//     window is ~n 2^-53 around the same boundaries.
// The previous float32 at::mean had the same kind of order dependence (ATen's cascade sum differs
// from TF's reduction and from NumPy's pairwise sum) with a 2^-24 window instead.
//
// Channels without reduced axes (rank <= 1, or every axis kept) get per-element scales, in the
// tensor's dtype: QKeras does not average there (K.mean over axis=[] reduces nothing).
at::Tensor bits_least_squares_scale(const at::Tensor& xs, const at::Tensor& z,
                                    const std::vector<int64_t>& dims, double n) {
  if (xs.dim() <= 1 || dims.empty()) return po2_scale((xs * z) / (z * z + 1e-7));
  const at::Tensor qx = at::sum(xs * z, dims, true, at::kDouble).div_(n);
  const at::Tensor qq = at::sum(z * z, dims, true, at::kDouble).div_(n);
  return po2_scale(qx.div_(qq.add_(1e-7)).to(xs.scalar_type()));
}

}  // namespace

// QKeras (quantizers.py, quantized_bits.__call__ with a string alpha, and
// _get_least_squares_scale), operation by operation in float of the tensor's dtype:
//   x' = x / 2^integer;  levels = 2 (2^(bits-1) - 1)
//   s = max|x'| * 2 / levels                                  (max over the reduced axes)
//   auto_po2: s = 2^round(log(s + eps) / ln 2), then 5 times:
//       z = sign(x') min(floor(|x'| / s + 0.5), levels/2);  s = po2(mean(x' z) / (mean(z z) + eps))
//     (the means: sums in double, see bits_least_squares_scale)
//   z = sign(x') min(floor(|x'| / s + 0.5), levels/2)   (with the final s: QKeras master, commit
//     78ea90f, recomputes the codes after the loop; the 2021 PyPI release kept the last loop's z)
//   scale = s m (QKeras's quantizer.scale, m = 2^(bits - keep_negative));
//   xq = scale ((2^integer z) / m)
// Deviation (a QKeras bug, documented): with "auto", an all-zero channel has s = 0 and QKeras
// computes 0/0 = NaN; here its codes are 0.
// The fused CPU kernel (cpu/quantize_auto_kernel.cpp) gives the same bits; keep the two in step.
std::tuple<at::Tensor, at::Tensor> quantized_bits_auto_generic(const at::Tensor& x, int64_t bits,
                                                               int64_t integer, bool keep_negative,
                                                               bool po2,
                                                               at::OptionalIntArrayRef scale_axis,
                                                               double qnoise_factor) {
  check_float_input(x, "heteroq::quantized_bits_auto");
  std::string err = heteroq::detail::check_quantized_bits_auto_args(bits, integer);
  if (err.empty()) err = heteroq::detail::check_qnoise_factor("quantized_bits", qnoise_factor);
  TORCH_CHECK_VALUE(err.empty(), err);
  if (is_reduced_precision(x)) {
    auto [out, scale] = quantized_bits_auto_generic(x.to(at::kFloat), bits, integer, keep_negative,
                                                    po2, scale_axis, qnoise_factor);
    return std::make_tuple(out.to(x.scalar_type()), scale);
  }
  const std::vector<int64_t> dims = reduce_dims(x, scale_axis);
  double n = 1.0;  // elements per channel
  for (int64_t d : dims) n *= static_cast<double>(x.size(d));
  const double m_i = std::ldexp(1.0, static_cast<int>(integer));
  const double m = std::ldexp(1.0, static_cast<int>(bits - (keep_negative ? 1 : 0)));
  const double levels = 2.0 * (std::ldexp(1.0, static_cast<int>(bits - 1)) - 1.0);

  const at::Tensor xs = x / m_i;
  const at::Tensor ax = xs.abs();
  const at::Tensor sign = at::sign(xs);
  auto codes = [&](const at::Tensor& s) {
    const at::Tensor safe = at::where(s == 0, at::ones_like(s), s);
    return sign * at::floor(ax / safe + 0.5).clamp_max_(levels / 2);
  };

  at::Tensor s = (x.numel() == 0 ? ax.clone() : (dims.empty() ? ax : ax.amax(dims, true)))
                     .mul(2.0)
                     .div(levels);
  at::Tensor z;
  if (po2) {
    s = po2_scale(s);
    for (int i = 0; i < 5; ++i) s = bits_least_squares_scale(xs, codes(s), dims, n);
  }
  z = codes(s);
  const at::Tensor scale = s * m;
  at::Tensor xq = (z * m_i).div_(m).mul_(scale).add_(0.0);
  if (qnoise_factor != 1.0) xq = x + (xq - x).mul_(qnoise_factor);
  return std::make_tuple(xq, scale);
}

}  // namespace detail
}  // namespace heteroq::ops

TORCH_LIBRARY_IMPL(heteroq, CompositeExplicitAutograd, m) {
  m.impl("quantized_bits_auto", &heteroq::ops::detail::quantized_bits_auto_generic);
}
