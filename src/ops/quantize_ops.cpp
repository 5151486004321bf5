// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Operator schemas (declared once), the C++ entry points (typed dispatcher handles) and the
// device-generic kernels built from ATen ops.
#include <ATen/ATen.h>
#include <ATen/MemoryOverlap.h>

#if defined(__linux__)
#include <sys/mman.h>
#endif
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>


#include "core/fixed_point.h"
#include "heteroq/ops/quantize.h"
#include "ops/quantize_common.h"

namespace heteroq::ops {

namespace {
// Per thread: read by the thread that calls an operator (before it splits work across threads), so
// a switch in one thread never changes what another computes.
thread_local bool t_fused_kernels = true;
}  // namespace

bool fused_kernels_enabled() { return t_fused_kernels; }
void set_fused_kernels_enabled(bool enabled) { t_fused_kernels = enabled; }

at::Tensor quantized_bits(const at::Tensor& x, int64_t bits, int64_t integer, bool symmetric,
                          bool keep_negative, std::optional<double> alpha, double qnoise_factor) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::quantized_bits", "")
                       .typed<at::Tensor(const at::Tensor&, int64_t, int64_t, bool, bool,
                                         c10::optional<double>, double)>();
  return op.call(x, bits, integer, symmetric, keep_negative, detail::to_c10(alpha),
                 qnoise_factor);
}

at::Tensor quantized_relu(const at::Tensor& x, int64_t bits, int64_t integer, bool use_sigmoid,
                          double negative_slope, double qnoise_factor) {
  static auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("heteroq::quantized_relu", "")
          .typed<at::Tensor(const at::Tensor&, int64_t, int64_t, bool, double, double)>();
  return op.call(x, bits, integer, use_sigmoid, negative_slope, qnoise_factor);
}

at::Tensor& quantized_bits_out(at::Tensor& out, const at::Tensor& x, int64_t bits,
                               int64_t integer, bool symmetric, bool keep_negative,
                               std::optional<double> alpha, double qnoise_factor) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::quantized_bits", "out")
                       .typed<at::Tensor&(const at::Tensor&, int64_t, int64_t, bool, bool,
                                          c10::optional<double>, double, at::Tensor&)>();
  return op.call(x, bits, integer, symmetric, keep_negative, detail::to_c10(alpha),
                 qnoise_factor, out);
}

at::Tensor& quantized_relu_out(at::Tensor& out, const at::Tensor& x, int64_t bits,
                               int64_t integer, bool use_sigmoid, double negative_slope,
                               double qnoise_factor) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::quantized_relu", "out")
                       .typed<at::Tensor&(const at::Tensor&, int64_t, int64_t, bool, double,
                                          double, at::Tensor&)>();
  return op.call(x, bits, integer, use_sigmoid, negative_slope, qnoise_factor, out);
}

at::Tensor _quantized_relu_backward(const at::Tensor& grad, const at::Tensor& x, int64_t bits,
                                    int64_t integer, bool use_sigmoid, double negative_slope) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::_quantized_relu_backward", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, int64_t, int64_t,
                                         bool, double)>();
  return op.call(grad, x, bits, integer, use_sigmoid, negative_slope);
}

namespace detail {

at::Tensor empty_output(const at::Tensor& like) {
  at::Tensor out = at::empty_like(like, at::MemoryFormat::Contiguous);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr size_t kLargeOutputBytes = size_t{32} << 20;
  constexpr uintptr_t kHuge = uintptr_t{2} << 20;
  const size_t bytes = out.nbytes();
  if (out.is_cpu() && bytes > kLargeOutputBytes) {
    const auto p = reinterpret_cast<uintptr_t>(out.data_ptr());
    const uintptr_t begin = (p + kHuge - 1) & ~(kHuge - 1);
    const uintptr_t end = (p + bytes) & ~(kHuge - 1);
    if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
  }
#endif
  return out;
}

bool is_reduced_precision(const at::Tensor& x) {
  return x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16;
}

void check_float_input(const at::Tensor& x, const char* op) {
  TORCH_CHECK_TYPE(x.defined(), op, ": the input tensor is undefined");
  TORCH_CHECK_TYPE(at::isFloatingType(x.scalar_type()), op,
                   ": expected a floating-point tensor, got a tensor of dtype ", x.scalar_type(),
                   " (convert it with .float() first)");
}

void check_quantized_bits(const at::Tensor& x, int64_t bits, int64_t integer,
                          c10::optional<double> alpha, double qnoise_factor) {
  check_float_input(x, "heteroq::quantized_bits");
  std::string err = heteroq::detail::check_quantized_bits_args(bits, integer, to_std(alpha));
  if (err.empty()) err = heteroq::detail::check_qnoise_factor("quantized_bits", qnoise_factor);
  TORCH_CHECK_VALUE(err.empty(), err);
}

void check_quantized_relu(const at::Tensor& x, int64_t bits, int64_t integer,
                          double negative_slope, double qnoise_factor) {
  check_float_input(x, "heteroq::quantized_relu");
  std::string err = heteroq::detail::check_quantized_relu_args(bits, integer, negative_slope);
  if (err.empty()) err = heteroq::detail::check_qnoise_factor("quantized_relu", qnoise_factor);
  TORCH_CHECK_VALUE(err.empty(), err);
}

void check_out(const at::Tensor& out, const at::Tensor& x, const char* op) {
  TORCH_CHECK_TYPE(out.defined(), op, ": `out` is undefined");
  TORCH_CHECK_TYPE(out.scalar_type() == x.scalar_type(), op, ": expected `out` of dtype ",
                   x.scalar_type(), " (the input's), got ", out.scalar_type());
  TORCH_CHECK_VALUE(out.device() == x.device(), op, ": expected `out` on ", x.device(),
                    " (the input's device), got ", out.device());
  at::assert_no_internal_overlap(out);
  at::assert_no_partial_overlap(out, x);
  if (!out.sizes().equals(x.sizes())) {
    TORCH_CHECK_VALUE(out.numel() == 0, op, ": `out` has shape ", out.sizes(),
                      ", expected the input's shape ", x.sizes(), " (or an empty tensor)");
    out.resize_(x.sizes());
  }
}

at::Tensor& quantized_bits_out_generic(const at::Tensor& x, int64_t bits, int64_t integer,
                                       bool symmetric, bool keep_negative,
                                       c10::optional<double> alpha, double qnoise_factor,
                                       at::Tensor& out) {
  check_out(out, x, "heteroq::quantized_bits.out");
  return out.copy_(
      quantized_bits_generic(x, bits, integer, symmetric, keep_negative, alpha, qnoise_factor));
}

at::Tensor& quantized_relu_out_generic(const at::Tensor& x, int64_t bits, int64_t integer,
                                       bool use_sigmoid, double negative_slope,
                                       double qnoise_factor, at::Tensor& out) {
  check_out(out, x, "heteroq::quantized_relu.out");
  return out.copy_(
      quantized_relu_generic(x, bits, integer, use_sigmoid, negative_slope, qnoise_factor));
}

namespace {
// x_ref + q (xq - x_ref), as heteroq::detail::qnoise_blend, operation by operation.
at::Tensor blend_generic(const at::Tensor& x_ref, const at::Tensor& xq, double q) {
  return x_ref + (xq - x_ref).mul_(q);
}
}  // namespace

// The generic kernels apply the grid of core/fixed_point.h with ATen ops, operation by operation
// in the order of the element functions there, so they match the fused kernels bit for bit.
at::Tensor quantized_bits_generic(const at::Tensor& x, int64_t bits, int64_t integer,
                                  bool symmetric, bool keep_negative, c10::optional<double> alpha,
                                  double qnoise_factor) {
  check_quantized_bits(x, bits, integer, alpha, qnoise_factor);
  if (is_reduced_precision(x)) {
    return quantized_bits_generic(x.to(at::kFloat), bits, integer, symmetric, keep_negative, alpha,
                                  qnoise_factor)
        .to(x.scalar_type());
  }
  const auto g =
      heteroq::detail::make_bits_grid(bits, integer, symmetric, keep_negative, to_std(alpha));
  at::Tensor xq;
  if (g.sign_mode) {
    const auto a = at::full({}, g.sign_value, x.options());
    xq = at::where(x < 0, -a, at::where(x >= 0, a, x));
  } else {
    xq = at::round(x * g.in_scale).clamp_(g.lo, g.hi).mul_(g.step).add_(0.0);
  }
  return qnoise_factor == 1.0 ? xq : blend_generic(x, xq, qnoise_factor);
}

at::Tensor quantized_relu_generic(const at::Tensor& x, int64_t bits, int64_t integer,
                                  bool use_sigmoid, double negative_slope, double qnoise_factor) {
  check_quantized_relu(x, bits, integer, negative_slope, qnoise_factor);
  if (is_reduced_precision(x)) {
    return quantized_relu_generic(x.to(at::kFloat), bits, integer, use_sigmoid, negative_slope,
                                  qnoise_factor)
        .to(x.scalar_type());
  }
  const auto g = heteroq::detail::make_relu_grid(bits, integer, use_sigmoid, negative_slope);
  const bool with_slope = g.slope != 0;
  at::Tensor code;
  at::Tensor p;
  if (!use_sigmoid) {
    p = x * g.in_scale;
    code = at::round(p).clamp_(0.0, g.hi);
    if (with_slope) code.add_(at::round(p * g.slope).clamp_(g.neg_lo, 0.0));
  } else {
    p = (x * g.inv_mi).mul_(0.5).add_(0.5).clamp_(0.0, 1.0).mul_(g.m);
    code = at::round(p).mul_(2.0).sub_(g.m).clamp_(0.0, g.hi);
    if (with_slope) {
      code.add_(at::round(p * g.slope).mul_(2.0).sub_(g.slope * g.m).clamp_(g.neg_lo, 0.0));
    }
  }
  code.mul_(g.step).add_(0.0);
  if (qnoise_factor == 1.0) return code;
  const auto top = at::full({}, g.top, x.options());
  const at::Tensor neg = g.slope != 0 ? x * g.slope : at::zeros({}, x.options());
  const at::Tensor x_u = at::where(x <= g.top, at::where(x > 0, x, neg), top);
  return blend_generic(x_u, code, qnoise_factor);
}

at::Tensor quantized_relu_backward_generic(const at::Tensor& grad, const at::Tensor& x,
                                           int64_t bits, int64_t integer, bool use_sigmoid,
                                           double negative_slope) {
  check_quantized_relu(x, bits, integer, negative_slope);
  if (is_reduced_precision(x) || is_reduced_precision(grad)) {
    return quantized_relu_backward_generic(grad.to(at::kFloat), x.to(at::kFloat), bits, integer,
                                           use_sigmoid, negative_slope)
        .to(grad.scalar_type());
  }
  const auto g = heteroq::detail::make_relu_grid(bits, integer, use_sigmoid, negative_slope);
  const auto one = at::ones({}, grad.options());
  const auto zero = at::zeros({}, grad.options());
  const auto slope = at::full({}, g.slope, grad.options());
  return grad * at::where(x <= g.top, at::where(x > 0, one, slope), zero);
}

}  // namespace detail
}  // namespace heteroq::ops

TORCH_LIBRARY(heteroq, m) {
  m.def(
      "quantized_bits(Tensor x, int bits=8, int integer=0, bool symmetric=False, "
      "bool keep_negative=True, float? alpha=None, float qnoise_factor=1.0) -> Tensor");
  m.def(
      "quantized_relu(Tensor x, int bits=8, int integer=0, bool use_sigmoid=False, "
      "float negative_slope=0.0, float qnoise_factor=1.0) -> Tensor");
  m.def(
      "quantized_bits.out(Tensor x, int bits=8, int integer=0, bool symmetric=False, "
      "bool keep_negative=True, float? alpha=None, float qnoise_factor=1.0, *, "
      "Tensor(a!) out) -> Tensor(a!)");
  m.def(
      "quantized_relu.out(Tensor x, int bits=8, int integer=0, bool use_sigmoid=False, "
      "float negative_slope=0.0, float qnoise_factor=1.0, *, Tensor(a!) out) -> Tensor(a!)");
  m.def(
      "quantized_bits_auto(Tensor x, int bits=8, int integer=0, bool keep_negative=True, "
      "bool po2=True, int[]? scale_axis=None, float qnoise_factor=1.0) -> (Tensor, Tensor)");
  m.def(
      "_quantized_relu_backward(Tensor grad, Tensor x, int bits, int integer, bool use_sigmoid, "
      "float negative_slope) -> Tensor");
}

TORCH_LIBRARY_IMPL(heteroq, CompositeExplicitAutograd, m) {
  m.impl("quantized_bits", &heteroq::ops::detail::quantized_bits_generic);
  m.impl("quantized_relu", &heteroq::ops::detail::quantized_relu_generic);
  m.impl("_quantized_relu_backward", &heteroq::ops::detail::quantized_relu_backward_generic);
  m.impl("quantized_bits.out", &heteroq::ops::detail::quantized_bits_out_generic);
  m.impl("quantized_relu.out", &heteroq::ops::detail::quantized_relu_out_generic);
}
