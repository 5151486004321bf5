// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
#include "heteroq/nn/layers.h"

#include <torch/torch.h>

#include <cmath>
#include <string>
#include <utility>

#include "heteroq/ops/quantize.h"

namespace heteroq::nn {

QuantizerArg::QuantizerArg(const std::string& spec) : q_(get_quantizer(spec)) {}
// (a null pointer, e.g. `.state_quantizer(nullptr)`, is an empty slot)
QuantizerArg::QuantizerArg(const char* spec) : q_(spec ? get_quantizer(spec) : nullptr) {}

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

QAdaptiveActivationOptions::QAdaptiveActivationOptions(std::string activation, int64_t total_bits)
    : activation_(std::move(activation)), total_bits_(total_bits) {}

QAdaptiveActivationImpl::QAdaptiveActivationImpl(const QAdaptiveActivationOptions& options_)
    : options(options_) {
  const std::string& a = options.activation();
  if (a != "quantized_bits" && a != "quantized_relu") {
    throw InvalidArgument("QAdaptiveActivation: `activation` must be \"quantized_bits\" or "
                          "\"quantized_relu\" without arguments (the layer sets them), got \"" +
                          a + "\"");
  }
  if (options.per_channel() && options.num_channels() <= 0) {
    throw InvalidArgument("QAdaptiveActivation: per_channel=true needs `num_channels` > 0, got " +
                          std::to_string(options.num_channels()));
  }
  if (!(options.ema_decay() >= 0.0 && options.ema_decay() <= 1.0)) {
    throw InvalidArgument("QAdaptiveActivation: `ema_decay` must be in [0, 1], got " +
                          std::to_string(options.ema_decay()));
  }
  if (options.quantization_delay() < 0) {
    throw InvalidArgument("QAdaptiveActivation: `quantization_delay` must be >= 0, got " +
                          std::to_string(options.quantization_delay()));
  }
  // Checks total_bits, the slope and the bound now rather than at the first call.
  quantizer();
  reset();
}

void QAdaptiveActivationImpl::reset() {
  const int64_t n = options.per_channel() ? options.num_channels() : 1;
  ema_min = register_buffer("ema_min", torch::zeros({n}));
  ema_max = register_buffer("ema_max", torch::zeros({n}));
  integer_bits = register_buffer("integer_bits", torch::zeros({n}, torch::kInt));
  step = register_buffer("step", torch::full({}, options.current_step().value_or(-1), torch::kLong));
}

QuantizerPtr QAdaptiveActivationImpl::quantizer(int64_t channel) const {
  const int64_t integer = integer_bits.defined() ? integer_bits[channel].item<int64_t>() : 0;
  if (options.activation() == "quantized_bits") {
    return std::make_shared<QuantizedBits>(options.total_bits(), integer, options.symmetric(),
                                           /*keep_negative=*/true, /*alpha=*/1.0);
  }
  return std::make_shared<QuantizedRelu>(options.total_bits(), integer, /*use_sigmoid=*/false,
                                         options.relu_neg_slope(), /*qnoise_factor=*/1.0,
                                         /*use_stochastic_rounding=*/false,
                                         options.relu_upper_bound(), /*is_quantized_clip=*/false);
}

torch::Tensor QAdaptiveActivationImpl::forward(const torch::Tensor& input) {
  const bool training = is_training();
  if (training) step.add_(1);
  const int64_t s = step.item<int64_t>();
  const double qnoise = (!training || s >= options.quantization_delay()) ? 1.0 : 0.0;
  torch::Tensor out = ops::adaptive_activation(
      input, integer_bits, options.activation(), options.total_bits(), options.symmetric(),
      options.relu_neg_slope(), options.relu_upper_bound(), qnoise);
  const auto& freeze = options.ema_freeze_delay();
  if (training && (!freeze || s <= *freeze)) {
    ops::_adaptive_ema_update(input, ema_min, ema_max, integer_bits, options.activation(),
                              options.total_bits(), options.symmetric(), options.relu_neg_slope(),
                              options.relu_upper_bound(), options.ema_decay(),
                              options.po2_rounding());
  }
  return out;
}

void QAdaptiveActivationImpl::pretty_print(std::ostream& stream) const {
  stream << "heteroq::nn::QAdaptiveActivation(activation=" << options.activation()
         << ", total_bits=" << options.total_bits() << ", symmetric=" << std::boolalpha
         << options.symmetric() << ", quantization_delay=" << options.quantization_delay();
  if (options.ema_freeze_delay()) stream << ", ema_freeze_delay=" << *options.ema_freeze_delay();
  stream << ", ema_decay=" << options.ema_decay() << ", per_channel=" << options.per_channel();
  if (options.per_channel()) stream << ", num_channels=" << options.num_channels();
  stream << ", po2_rounding=" << options.po2_rounding();
  if (options.relu_neg_slope() != 0.0) stream << ", relu_neg_slope=" << options.relu_neg_slope();
  if (options.relu_upper_bound()) stream << ", relu_upper_bound=" << *options.relu_upper_bound();
  stream << ")";
}

}  // namespace heteroq::nn
