// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// The STEs of quantized_tanh and quantized_sigmoid. QKeras computes
//   clip(round_through(p(x) m) / m, lo/m, hi/m),  round_through(v) = v + stop_gradient(round(v) − v)
// so d q/dx = [lo <= round(p m) <= hi] · dp/dx: tf.clip_by_value passes the gradient on the closed
// interval, round_through passes it unchanged. dp/dx is the hard sigmoid's slope (1/2, times 2
// for tanh = 2 hσ − 1) on the closed interval −1 <= x <= 1 and 0 outside (again clip_by_value's
// rule), or 1 − tanh² and σ (1 − σ) for the real functions. The backward is a fused operator.
#include <torch/autograd.h>
#include <torch/library.h>

#include "heteroq/ops/quantize.h"
#include "ops/quantize_common.h"

namespace heteroq::ops {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

template <bool kTanh>
class QuantizedActivationFunction
    : public torch::autograd::Function<QuantizedActivationFunction<kTanh>> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, int64_t bits,
                            bool symmetric, bool use_real) {
    ctx->save_for_backward({x});
    ctx->saved_data["bits"] = bits;
    ctx->saved_data["symmetric"] = symmetric;
    ctx->saved_data["use_real"] = use_real;
    at::AutoDispatchBelowADInplaceOrView guard;
    return kTanh ? quantized_tanh(x, bits, symmetric, use_real)
                 : quantized_sigmoid(x, bits, symmetric, use_real);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& grad = grad_outputs[0];
    TORCH_CHECK(!grad.requires_grad(), kTanh ? "heteroq::quantized_tanh" : "heteroq::quantized_sigmoid",
                ": double backward is not supported (do not use create_graph=True through it)");
    const int64_t bits = ctx->saved_data["bits"].toInt();
    const bool symmetric = ctx->saved_data["symmetric"].toBool();
    const bool use_real = ctx->saved_data["use_real"].toBool();
    at::Tensor dx = kTanh ? _quantized_tanh_backward(grad, saved[0], bits, symmetric, use_real)
                          : _quantized_sigmoid_backward(grad, saved[0], bits, symmetric, use_real);
    return {dx, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor quantized_tanh_autograd(const at::Tensor& x, int64_t bits, bool symmetric, bool real) {
  return QuantizedActivationFunction<true>::apply(x, bits, symmetric, real);
}
at::Tensor quantized_sigmoid_autograd(const at::Tensor& x, int64_t bits, bool symmetric,
                                      bool real) {
  return QuantizedActivationFunction<false>::apply(x, bits, symmetric, real);
}

}  // namespace
}  // namespace heteroq::ops

TORCH_LIBRARY_IMPL(heteroq, Autograd, m) {
  m.impl("quantized_tanh", &heteroq::ops::quantized_tanh_autograd);
  m.impl("quantized_sigmoid", &heteroq::ops::quantized_sigmoid_autograd);
}
