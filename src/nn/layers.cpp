// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
#include "heteroq/nn/layers.h"

#include <torch/torch.h>

#include <cmath>

namespace heteroq::nn {

QuantizerArg::QuantizerArg(const std::string& spec) : q_(get_quantizer(spec)) {}
QuantizerArg::QuantizerArg(const char* spec) : q_(get_quantizer(spec)) {}

QLinearOptions::QLinearOptions(int64_t in_features, int64_t out_features)
    : in_features_(in_features), out_features_(out_features) {}

QLinearImpl::QLinearImpl(const QLinearOptions& options_) : options(options_) {
  if (options.in_features() <= 0 || options.out_features() <= 0) {
    throw InvalidArgument("QLinear: `in_features` and `out_features` must be > 0, got " +
                          std::to_string(options.in_features()) + " and " +
                          std::to_string(options.out_features()));
  }
  reset();
}

void QLinearImpl::reset() {
  weight = register_parameter("weight",
                              torch::empty({options.out_features(), options.in_features()}));
  if (options.bias()) {
    bias = register_parameter("bias", torch::empty(options.out_features()));
  } else {
    bias = register_parameter("bias", {}, /*requires_grad=*/false);
  }
  reset_parameters();
}

void QLinearImpl::reset_parameters() {
  // As torch::nn::Linear.
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5));
  if (bias.defined()) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(options.in_features()));
    torch::nn::init::uniform_(bias, -bound, bound);
  }
}

namespace {
// Training mode applies the quantizer's training forward (stochastic rounding where enabled).
torch::Tensor apply_quantizer(const QuantizerPtr& q, const torch::Tensor& t, bool training) {
  return training ? q->forward_train(t) : q->forward(t);
}
}  // namespace

torch::Tensor QLinearImpl::quantized_weight() const {
  const auto& q = options.kernel_quantizer().get();
  return q ? apply_quantizer(q, weight, is_training()) : weight;
}

torch::Tensor QLinearImpl::quantized_bias() const {
  const auto& q = options.bias_quantizer().get();
  return (q && bias.defined()) ? apply_quantizer(q, bias, is_training()) : bias;
}

torch::Tensor QLinearImpl::forward(const torch::Tensor& input) {
  TORCH_CHECK_VALUE(input.dim() >= 1 && input.size(-1) == options.in_features(),
                    "QLinear: expected input with last dimension ", options.in_features(),
                    ", got shape ", input.sizes());
  return torch::nn::functional::linear(input, quantized_weight(), quantized_bias());
}

void QLinearImpl::pretty_print(std::ostream& stream) const {
  stream << "heteroq::nn::QLinear(in_features=" << options.in_features()
         << ", out_features=" << options.out_features() << ", bias=" << std::boolalpha
         << options.bias();
  if (options.kernel_quantizer()) {
    stream << ", kernel_quantizer=" << options.kernel_quantizer().get()->to_string();
  }
  if (options.bias_quantizer()) {
    stream << ", bias_quantizer=" << options.bias_quantizer().get()->to_string();
  }
  stream << ")";
}

QActivationImpl::QActivationImpl(QuantizerArg quantizer) : quantizer_(quantizer.get()) {
  if (!quantizer_) throw InvalidArgument("QActivation: `quantizer` must be given");
}

torch::Tensor QActivationImpl::forward(const torch::Tensor& input) {
  return apply_quantizer(quantizer_, input, is_training());
}

void QActivationImpl::pretty_print(std::ostream& stream) const {
  stream << "heteroq::nn::QActivation(" << quantizer_->to_string() << ")";
}

}  // namespace heteroq::nn
