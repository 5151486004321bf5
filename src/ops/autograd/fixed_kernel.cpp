// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// The autograd kernel of fixed_quantize: HGQ's straight-through estimator with gradients for the
// bit widths.
//
// Derivation. Write q(x; k, i, f) = 2^-f R(clip(x 2^f, L, U)) with R the rounding of the code
// (RND, RND_CONV, TRN), the code bounds U = 2^(i+f) - 1 and L = -k 2^(i+f) (SAT) or -k U
// (SAT_SYM); in value space the bounds are u = U 2^-f = 2^i - 2^-f and l = L 2^-f (-k 2^i or
// -k u). Saturating before rounding gives the same values as rounding then saturating (the bounds
// are integer codes and rounding is monotone), and it is the order HGQ2 differentiates.
//
// * x: rounding is a straight-through estimator (dR(z)/dz = 1), so dq/dx = 1 inside [l, u] and
//   0 where x is clipped (x > u or x < l). WRAP never clips: 1 everywhere.
// * f, not clipped: with z = x 2^f, q = 2^-f R(z) and dR/dz = 1,
//     dq/df = 2^-f (dz/df) - ln2 2^-f R(z) = 2^-f x 2^f ln2 - ln2 q = ln2 (x - q),
//   HGQ's surrogate (benchmarks.md §4.2): more fractional bits shrink the rounding error. For WRAP
//   q is taken before the wrap (the wrap itself passes gradient straight through).
// * f, clipped: q = u (or l), so dq/df = du/df = ln2 2^-f at the top, dl/df = -k ln2 2^-f at the
//   bottom for SAT_SYM and 0 for SAT (l = -k 2^i does not depend on f).
// * i: q depends on i only through the bounds: du/di = ln2 2^i at the top, dl/di = -k ln2 2^i at
//   the bottom, 0 inside the range (and for WRAP).
// * k: a 0/1 choice, no gradient.
// * An element with k + i + f <= 0 is 0: dq/dx = 1 (straight through, so such weights keep
//   training), dq/df = ln2 (x - 0) (the surrogate with q = 0), dq/di = 0.
//
// The forward pass computes these per-element derivatives in the same pass as the output
// (_fixed_quantize_fwd, fused on CPU); the backward multiplies them by the output gradient and
// sums the widths' gradients over the dimensions they were broadcast along.
#include <ATen/ATen.h>
#include <ATen/ExpandUtils.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <string>

#include "heteroq/ops/fixed.h"

namespace heteroq::ops {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::Tensor reduce_to(const at::Tensor& g, const at::Tensor& like) {
  at::Tensor r = at::sum_to(g, like.sizes());
  if (r.scalar_type() != like.scalar_type()) r = r.to(like.scalar_type());
  if (r.device() != like.device()) r = r.to(like.device());
  return r;
}

class FixedQuantizeFunction : public torch::autograd::Function<FixedQuantizeFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& k,
                            const at::Tensor& i, const at::Tensor& f, c10::string_view round_mode,
                            c10::string_view overflow_mode) {
    const std::string rm(round_mode.data(), round_mode.size());
    const std::string om(overflow_mode.data(), overflow_mode.size());
    at::Tensor y, dx, df, di;
    {
      at::AutoDispatchBelowADInplaceOrView guard;
      std::tie(y, dx, df, di) = fixed_quantize_fwd(x, k, i, f, rm, om);
    }
    ctx->save_for_backward({dx, df, di, i.detach(), f.detach()});
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& g = grad_outputs[0];
    at::Tensor gx, gi, gf;
    if (ctx->needs_input_grad(0)) gx = g * saved[0];
    if (ctx->needs_input_grad(3)) gf = reduce_to(g * saved[1], saved[4]);
    if (ctx->needs_input_grad(2)) gi = reduce_to(g * saved[2], saved[3]);
    return {gx, at::Tensor(), gi, gf, at::Tensor(), at::Tensor()};
  }
};

at::Tensor fixed_quantize_autograd(const at::Tensor& x, const at::Tensor& keep_negative,
                                   const at::Tensor& int_bits, const at::Tensor& frac_bits,
                                   c10::string_view round_mode, c10::string_view overflow_mode) {
  const bool grad = at::GradMode::is_enabled() &&
                    (x.requires_grad() || int_bits.requires_grad() || frac_bits.requires_grad());
  if (!grad) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return fixed_quantize(x, keep_negative, int_bits, frac_bits,
                          std::string(round_mode.data(), round_mode.size()),
                          std::string(overflow_mode.data(), overflow_mode.size()));
  }
  return FixedQuantizeFunction::apply(x, keep_negative, int_bits, frac_bits, round_mode,
                                      overflow_mode);
}

}  // namespace
}  // namespace heteroq::ops

TORCH_LIBRARY_IMPL(heteroq, Autograd, m) {
  m.impl("fixed_quantize", &heteroq::ops::fixed_quantize_autograd);
}
