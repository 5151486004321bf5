// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// The STEs of the stochastic-rounding operators: QKeras's _round_through passes the gradient
// unchanged through the (stochastic) rounding, so quantized_bits keeps its identity STE and
// quantized_relu its relu STE. The noise gets no gradient.
#include <torch/autograd.h>
#include <torch/library.h>

#include "heteroq/ops/quantize.h"
#include "ops/autograd/relu_ste.h"
#include "ops/quantize_common.h"

namespace heteroq::ops {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class BitsStochasticFunction : public torch::autograd::Function<BitsStochasticFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& noise,
                            int64_t bits, int64_t integer, bool symmetric, bool keep_negative,
                            c10::optional<double> alpha, double qnoise_factor) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return quantized_bits_stochastic(x, noise, bits, integer, symmetric, keep_negative,
                                     detail::to_std(alpha), qnoise_factor);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list out(8);
    out[0] = grads[0];
    return out;
  }
};

class ReluStochasticFunction : public torch::autograd::Function<ReluStochasticFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& noise,
                            int64_t bits, int64_t integer, bool use_sigmoid, double negative_slope,
                            double qnoise_factor) {
    detail::save_relu_ste(ctx, x, bits, integer, use_sigmoid, negative_slope);
    at::AutoDispatchBelowADInplaceOrView guard;
    return quantized_relu_stochastic(x, noise, bits, integer, use_sigmoid, negative_slope,
                                     qnoise_factor);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list out(7);
    out[0] = detail::relu_ste_backward(ctx, grads[0], "heteroq::quantized_relu_stochastic");
    return out;
  }
};

at::Tensor bits_stochastic_autograd(const at::Tensor& x, const at::Tensor& noise, int64_t bits,
                                    int64_t integer, bool symmetric, bool keep_negative,
                                    c10::optional<double> alpha, double qnoise_factor) {
  return BitsStochasticFunction::apply(x, noise, bits, integer, symmetric, keep_negative, alpha,
                                       qnoise_factor);
}

at::Tensor relu_stochastic_autograd(const at::Tensor& x, const at::Tensor& noise, int64_t bits,
                                    int64_t integer, bool use_sigmoid, double negative_slope,
                                    double qnoise_factor) {
  return ReluStochasticFunction::apply(x, noise, bits, integer, use_sigmoid, negative_slope,
                                       qnoise_factor);
}

}  // namespace
}  // namespace heteroq::ops

TORCH_LIBRARY_IMPL(heteroq, Autograd, m) {
  m.impl("quantized_bits_stochastic", &heteroq::ops::bits_stochastic_autograd);
  m.impl("quantized_relu_stochastic", &heteroq::ops::relu_stochastic_autograd);
}
