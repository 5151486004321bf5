// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// The STEs of binary and ternary. QKeras returns x' + stop_gradient(scale q - x') with
// x' = tanh(x) when alpha is None (so dq/dx = 1 - tanh²(x)) and x' = x otherwise (gradient 1,
// also in the "auto"/"auto_po2" modes, whose scale is not differentiable).
#include <torch/autograd.h>
#include <torch/library.h>

#include "heteroq/ops/quantize.h"
#include "ops/quantize_common.h"

namespace heteroq::ops {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Gradient through tanh when alpha is None, identity otherwise.
variable_list fixed_alpha_backward(AutogradContext* ctx, const at::Tensor& grad, size_t n_args) {
  variable_list out(n_args);
  if (ctx->saved_data["tanh"].toBool()) {
    TORCH_CHECK(!grad.requires_grad(), "heteroq::binary/ternary: double backward is not supported");
    out[0] = _tanh_ste_backward(grad, ctx->get_saved_variables()[0]);
  } else {
    out[0] = grad;
  }
  return out;
}

class BinaryFunction : public torch::autograd::Function<BinaryFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, bool use_01,
                            c10::optional<double> alpha) {
    ctx->saved_data["tanh"] = !alpha.has_value();
    if (!alpha.has_value()) ctx->save_for_backward({x});
    at::AutoDispatchBelowADInplaceOrView guard;
    return binary(x, use_01, detail::to_std(alpha));
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return fixed_alpha_backward(ctx, grads[0], 3);
  }
};

class TernaryFunction : public torch::autograd::Function<TernaryFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x,
                            c10::optional<double> alpha, c10::optional<double> threshold) {
    ctx->saved_data["tanh"] = !alpha.has_value();
    if (!alpha.has_value()) ctx->save_for_backward({x});
    at::AutoDispatchBelowADInplaceOrView guard;
    return ternary(x, detail::to_std(alpha), detail::to_std(threshold));
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return fixed_alpha_backward(ctx, grads[0], 3);
  }
};

// The auto modes: identity for the output, no gradient for the scale.
template <bool kTernary>
class AutoFunction : public torch::autograd::Function<AutoFunction<kTernary>> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, bool flag, bool po2,
                               int64_t unrolls, at::OptionalIntArrayRef scale_axis) {
    std::optional<std::vector<int64_t>> axes;
    if (scale_axis.has_value()) axes = scale_axis->vec();
    at::Tensor out, scale;
    {
      at::AutoDispatchBelowADInplaceOrView guard;
      std::tie(out, scale) = kTernary ? ternary_auto(x, po2, unrolls, axes)
                                      : binary_auto(x, flag, po2, axes);
    }
    ctx->mark_non_differentiable({scale});
    return {out, scale};
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {grads[0], at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor binary_autograd(const at::Tensor& x, bool use_01, c10::optional<double> alpha) {
  return BinaryFunction::apply(x, use_01, alpha);
}
at::Tensor ternary_autograd(const at::Tensor& x, c10::optional<double> alpha,
                            c10::optional<double> threshold) {
  return TernaryFunction::apply(x, alpha, threshold);
}
std::tuple<at::Tensor, at::Tensor> binary_auto_autograd(const at::Tensor& x, bool use_01, bool po2,
                                                        at::OptionalIntArrayRef scale_axis) {
  auto r = AutoFunction<false>::apply(x, use_01, po2, int64_t{0}, scale_axis);
  return std::make_tuple(r[0], r[1]);
}
std::tuple<at::Tensor, at::Tensor> ternary_auto_autograd(const at::Tensor& x, bool po2,
                                                         int64_t unrolls,
                                                         at::OptionalIntArrayRef scale_axis) {
  auto r = AutoFunction<true>::apply(x, false, po2, unrolls, scale_axis);
  return std::make_tuple(r[0], r[1]);
}

}  // namespace
}  // namespace heteroq::ops

TORCH_LIBRARY_IMPL(heteroq, Autograd, m) {
  m.impl("binary", &heteroq::ops::binary_autograd);
  m.impl("ternary", &heteroq::ops::ternary_autograd);
  m.impl("binary_auto", &heteroq::ops::binary_auto_autograd);
  m.impl("ternary_auto", &heteroq::ops::ternary_auto_autograd);
}
