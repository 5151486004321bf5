// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// The STEs of quantized_po2 and quantized_relu_po2. QKeras returns
//   x + stop_gradient(qnoise_factor (q(x) - x))            (quantized_po2: gradient 1)
//   x_r + stop_gradient(qnoise_factor (q(x) - x_r))        (quantized_relu_po2)
// with x_r = relu(x, slope), replaced by max_value where x > max_value: d x_r/dx is 1 for x > 0,
// the slope for x <= 0 (TF's leaky relu gradient at 0 is the slope, relu's is 0 = slope 0), and
// 0 above max_value.
#include <torch/autograd.h>
#include <torch/library.h>

#include "heteroq/ops/quantize.h"
#include "ops/quantize_common.h"

namespace heteroq::ops {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

std::string to_string(c10::string_view s) { return std::string(s.data(), s.size()); }

class QuantizedPo2Function : public torch::autograd::Function<QuantizedPo2Function> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, int64_t bits,
                            c10::optional<double> max_value, bool quadratic,
                            c10::string_view log2_rounding, double qnoise_factor) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return quantized_po2(x, bits, detail::to_std(max_value), quadratic, to_string(log2_rounding),
                         qnoise_factor);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    return {grad_outputs[0], at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

class QuantizedReluPo2Function : public torch::autograd::Function<QuantizedReluPo2Function> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, int64_t bits,
                            c10::optional<double> max_value, double negative_slope,
                            bool quadratic, c10::string_view log2_rounding,
                            double qnoise_factor) {
    ctx->save_for_backward({x});
    ctx->saved_data["has_max"] = max_value.has_value();
    ctx->saved_data["max_value"] = max_value.value_or(0.0);
    ctx->saved_data["negative_slope"] = negative_slope;
    at::AutoDispatchBelowADInplaceOrView guard;
    return quantized_relu_po2(x, bits, detail::to_std(max_value), negative_slope, quadratic,
                              to_string(log2_rounding), qnoise_factor);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& grad = grad_outputs[0];
    TORCH_CHECK(!grad.requires_grad(),
                "heteroq::quantized_relu_po2: double backward is not supported (do not use "
                "create_graph=True through it)");
    std::optional<double> max_value;
    if (ctx->saved_data["has_max"].toBool()) max_value = ctx->saved_data["max_value"].toDouble();
    at::Tensor dx = _quantized_relu_po2_backward(grad, saved[0], max_value,
                                                 ctx->saved_data["negative_slope"].toDouble());
    return {dx, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(),
            at::Tensor()};
  }
};

at::Tensor quantized_po2_autograd(const at::Tensor& x, int64_t bits,
                                  c10::optional<double> max_value, bool quadratic,
                                  c10::string_view log2_rounding, double qnoise_factor) {
  return QuantizedPo2Function::apply(x, bits, max_value, quadratic, log2_rounding, qnoise_factor);
}

at::Tensor quantized_relu_po2_autograd(const at::Tensor& x, int64_t bits,
                                       c10::optional<double> max_value, double negative_slope,
                                       bool quadratic, c10::string_view log2_rounding,
                                       double qnoise_factor) {
  return QuantizedReluPo2Function::apply(x, bits, max_value, negative_slope, quadratic,
                                         log2_rounding, qnoise_factor);
}

}  // namespace
}  // namespace heteroq::ops

TORCH_LIBRARY_IMPL(heteroq, Autograd, m) {
  m.impl("quantized_po2", &heteroq::ops::quantized_po2_autograd);
  m.impl("quantized_relu_po2", &heteroq::ops::quantized_relu_po2_autograd);
}
