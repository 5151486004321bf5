// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// fixed_quantize (fixed point with bit widths as tensors, HGQ-style learned precision): the
// schemas, the C++ entry points, the argument checks, and the device-generic kernels composed of
// ATen ops. The fused CPU kernel (cpu/fixed_kernel.cpp) applies the same operations in the same
// order per element, so both give the same bits; the autograd kernel is autograd/fixed_kernel.cpp.
#include <ATen/ATen.h>
#include <ATen/ExpandUtils.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <cmath>
#include <limits>
#include <string>
#include <tuple>

#include "heteroq/ops/fixed.h"
#include "ops/quantize_common.h"

namespace heteroq::ops {

bool is_fixed_round_mode(const std::string& mode) {
  return mode == "RND" || mode == "RND_CONV" || mode == "TRN";
}
bool is_fixed_overflow_mode(const std::string& mode) {
  return mode == "SAT" || mode == "SAT_SYM" || mode == "WRAP";
}

at::Tensor fixed_quantize(const at::Tensor& x, const at::Tensor& keep_negative,
                          const at::Tensor& int_bits, const at::Tensor& frac_bits,
                          const std::string& round_mode, const std::string& overflow_mode) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::fixed_quantize", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                         const at::Tensor&, c10::string_view, c10::string_view)>();
  return op.call(x, keep_negative, int_bits, frac_bits, round_mode, overflow_mode);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> fixed_quantize_fwd(
    const at::Tensor& x, const at::Tensor& keep_negative, const at::Tensor& int_bits,
    const at::Tensor& frac_bits, const std::string& round_mode, const std::string& overflow_mode) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::_fixed_quantize_fwd", "")
                       .typed<std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>(
                           const at::Tensor&, const at::Tensor&, const at::Tensor&,
                           const at::Tensor&, c10::string_view, c10::string_view)>();
  return op.call(x, keep_negative, int_bits, frac_bits, round_mode, overflow_mode);
}

namespace detail {

// Shared with cpu/fixed_kernel.cpp (declared there).
struct FixedArgs {
  at::Tensor k, i, f;  // rounded half to even, in the compute dtype, on x's device
  int round_mode;      // 0 RND, 1 RND_CONV, 2 TRN
  int overflow_mode;   // 0 SAT, 1 SAT_SYM, 2 WRAP
};

namespace {

int parse_round(c10::string_view mode) {
  const std::string m(mode.data(), mode.size());
  if (m == "RND") return 0;
  if (m == "RND_CONV") return 1;
  if (m == "TRN") return 2;
  TORCH_CHECK_VALUE(false,
                    "heteroq::fixed_quantize: `round_mode` must be 'RND', 'RND_CONV' or "
                    "'TRN', got '",
                    m, "'");
  return -1;
}

int parse_overflow(c10::string_view mode) {
  const std::string m(mode.data(), mode.size());
  if (m == "SAT") return 0;
  if (m == "SAT_SYM") return 1;
  if (m == "WRAP") return 2;
  TORCH_CHECK_VALUE(false,
                    "heteroq::fixed_quantize: `overflow_mode` must be 'SAT', 'SAT_SYM' or "
                    "'WRAP', got '",
                    m, "'");
  return -1;
}

at::Tensor prepare_width(const at::Tensor& w, const char* name, const at::Tensor& x,
                         at::ScalarType dtype) {
  TORCH_CHECK_TYPE(w.defined(), "heteroq::fixed_quantize: `", name, "` is undefined");
  TORCH_CHECK_TYPE(at::isFloatingType(w.scalar_type()), "heteroq::fixed_quantize: `", name,
                   "` must be a floating-point tensor (integer values), got dtype ",
                   w.scalar_type());
  TORCH_CHECK_VALUE(w.device() == x.device() || (w.dim() == 0 && w.is_cpu()),
                    "heteroq::fixed_quantize: `", name, "` is on ", w.device(), ", the input on ",
                    x.device());
  bool ok = w.dim() <= x.dim();
  if (ok) {
    const auto ws = w.sizes();
    const auto xs = x.sizes();
    for (int64_t d = 0; d < w.dim(); ++d) {
      const int64_t a = ws[ws.size() - 1 - d];
      const int64_t b = xs[xs.size() - 1 - d];
      ok = ok && (a == 1 || a == b);
    }
  }
  TORCH_CHECK_VALUE(ok, "heteroq::fixed_quantize: `", name, "` of shape ", w.sizes(),
                    " does not broadcast to the input's shape ", x.sizes());
  return at::round(w.detach().to(x.device(), dtype));
}

}  // namespace

FixedArgs check_fixed(const at::Tensor& x, const at::Tensor& keep_negative,
                      const at::Tensor& int_bits, const at::Tensor& frac_bits,
                      c10::string_view round_mode, c10::string_view overflow_mode) {
  check_float_input(x, "heteroq::fixed_quantize");
  FixedArgs a;
  a.round_mode = parse_round(round_mode);
  a.overflow_mode = parse_overflow(overflow_mode);
  const at::ScalarType dtype = is_reduced_precision(x) ? at::kFloat : x.scalar_type();
  a.k = prepare_width(keep_negative, "keep_negative", x, dtype);
  a.i = prepare_width(int_bits, "int_bits", x, dtype);
  a.f = prepare_width(frac_bits, "frac_bits", x, dtype);
  if (a.k.numel() > 0) {
    TORCH_CHECK_VALUE(at::logical_or(a.k == 0, a.k == 1).all().item<bool>(),
                      "heteroq::fixed_quantize: `keep_negative` must hold 0 or 1 (after rounding)");
  }
  for (const auto& [w, name] :
       {std::pair<const at::Tensor&, const char*>{a.i, "int_bits"}, {a.f, "frac_bits"}}) {
    if (w.numel() == 0) continue;
    // NaN fails the comparison too.
    TORCH_CHECK_VALUE((w.abs() <= 64).all().item<bool>(), "heteroq::fixed_quantize: `", name,
                      "` must hold finite values in [-64, 64]");
  }
  return a;
}

namespace {

// RND (half up): floor(v) + (v - floor(v) >= 1/2). The fraction v - floor(v) is exact, unlike
// v + 1/2, which rounds (0.5 - 2^-25 + 0.5 is 1 in float32).
at::Tensor round_code(const at::Tensor& v, int mode) {
  if (mode == 1) return at::round(v);
  at::Tensor r = at::floor(v);
  if (mode == 2) return r;
  return r + ((v - r) >= 0.5).to(v.scalar_type());
}

}  // namespace

// The device-generic kernel; with `derivatives`, also d out/dx, d out/df, d out/di per element
// (see cpu/fixed_kernel.cpp for the per-element form and the derivation in
// autograd/fixed_kernel.cpp).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> fixed_quantize_generic_impl(
    const at::Tensor& x_in, const FixedArgs& a, bool derivatives) {
  const bool reduced = is_reduced_precision(x_in);
  const at::Tensor x = reduced ? x_in.to(at::kFloat) : x_in;
  const double ln2 = M_LN2;
  const at::Tensor& k = a.k;
  const at::Tensor& i = a.i;
  const at::Tensor& f = a.f;
  const at::Tensor b = k + i + f;
  const at::Tensor inv = at::exp2(-f);
  const at::Tensor v = x * at::exp2(f);
  const at::Tensor c = round_code(v, a.round_mode);
  const at::Tensor zero = at::zeros({}, x.options());
  at::Tensor y, clip_hi, clip_lo;
  if (a.overflow_mode == 2) {
    const at::Tensor n = at::exp2(b);
    const at::Tensor off = k * at::exp2(b - 1.0);
    const at::Tensor w = c - n * at::floor((c + off) / n);
    y = w * inv + 0.0;
  } else {
    const at::Tensor hi = at::exp2(i + f) - 1.0;
    const at::Tensor lo = a.overflow_mode == 0 ? -(k * at::exp2(i + f)) : -(k * hi);
    y = at::clamp(c, lo, hi) * inv + 0.0;
    if (derivatives) {
      clip_hi = v > hi;
      clip_lo = v < lo;
    }
  }
  const at::Tensor live = b > 0;
  y = at::where(live, y, zero);
  if (!derivatives) {
    return {reduced ? y.to(x_in.scalar_type()) : y, at::Tensor(), at::Tensor(), at::Tensor()};
  }
  const at::Tensor one = at::ones({}, x.options());
  const at::Tensor r = c * inv;
  at::Tensor dx, df, di;
  const at::Tensor df_in = (x - r) * ln2;
  if (a.overflow_mode == 2) {
    dx = at::ones_like(x);
    df = at::where(live, df_in, x * ln2);
    di = at::zeros_like(x);
  } else {
    const at::Tensor clipped = at::logical_and(at::logical_or(clip_hi, clip_lo), live);
    dx = at::where(clipped, zero, one);
    const at::Tensor top_f = inv * ln2;
    const at::Tensor bottom_f = a.overflow_mode == 1 ? -(k * top_f) : zero;
    const at::Tensor top_i = at::exp2(i) * ln2;
    const at::Tensor bottom_i = -(k * top_i);
    df = at::where(live, at::where(clip_hi, top_f, at::where(clip_lo, bottom_f, df_in)), x * ln2);
    di = at::where(live, at::where(clip_hi, top_i, at::where(clip_lo, bottom_i, zero)), zero);
    // where() broadcasts: give every result x's shape.
    df = df.expand(x.sizes());
    di = di.expand(x.sizes());
  }
  auto finish = [&](const at::Tensor& t) {
    at::Tensor o = t.expand(x.sizes()).contiguous();
    return reduced ? o.to(x_in.scalar_type()) : o;
  };
  return {finish(y), finish(dx), finish(df), finish(di)};
}

at::Tensor fixed_quantize_generic(const at::Tensor& x, const at::Tensor& keep_negative,
                                  const at::Tensor& int_bits, const at::Tensor& frac_bits,
                                  c10::string_view round_mode, c10::string_view overflow_mode) {
  const FixedArgs a = check_fixed(x, keep_negative, int_bits, frac_bits, round_mode, overflow_mode);
  at::Tensor y = std::get<0>(fixed_quantize_generic_impl(x, a, false));
  return y.expand(x.sizes()).contiguous();
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> fixed_quantize_fwd_generic(
    const at::Tensor& x, const at::Tensor& keep_negative, const at::Tensor& int_bits,
    const at::Tensor& frac_bits, c10::string_view round_mode, c10::string_view overflow_mode) {
  const FixedArgs a = check_fixed(x, keep_negative, int_bits, frac_bits, round_mode, overflow_mode);
  return fixed_quantize_generic_impl(x, a, true);
}

}  // namespace detail
}  // namespace heteroq::ops

TORCH_LIBRARY_FRAGMENT(heteroq, m) {
  m.def(
      "fixed_quantize(Tensor x, Tensor keep_negative, Tensor int_bits, Tensor frac_bits, "
      "str round_mode=\"RND_CONV\", str overflow_mode=\"SAT\") -> Tensor");
  m.def(
      "_fixed_quantize_fwd(Tensor x, Tensor keep_negative, Tensor int_bits, Tensor frac_bits, "
      "str round_mode=\"RND_CONV\", str overflow_mode=\"SAT\") -> (Tensor, Tensor, Tensor, "
      "Tensor)");
}

TORCH_LIBRARY_IMPL(heteroq, CompositeExplicitAutograd, m) {
  m.impl("fixed_quantize", &heteroq::ops::detail::fixed_quantize_generic);
  m.impl("_fixed_quantize_fwd", &heteroq::ops::detail::fixed_quantize_fwd_generic);
}
