// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
#pragma once

#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <optional>
#include <string>

#include "heteroq/export.h"
#include "heteroq/quantizers/quantizer.h"

namespace heteroq::nn {

/// A quantizer slot of a layer: a quantizer object, a QKeras spec string, or empty (no
/// quantization: the float value passes through).
class HETEROQ_API QuantizerArg {
 public:
  QuantizerArg() = default;
  QuantizerArg(QuantizerPtr q) : q_(std::move(q)) {}  // NOLINT(runtime/explicit)
  QuantizerArg(const std::string& spec);             // NOLINT(runtime/explicit)
  QuantizerArg(const char* spec);                    // NOLINT(runtime/explicit)
  const QuantizerPtr& get() const { return q_; }
  explicit operator bool() const { return static_cast<bool>(q_); }

 private:
  QuantizerPtr q_;
};

struct HETEROQ_API QLinearOptions {
  QLinearOptions(int64_t in_features, int64_t out_features);
  TORCH_ARG(int64_t, in_features);
  TORCH_ARG(int64_t, out_features);
  TORCH_ARG(bool, bias) = true;
  /// Quantizer of the weight (QKeras: kernel_quantizer).
  TORCH_ARG(QuantizerArg, kernel_quantizer);
  TORCH_ARG(QuantizerArg, bias_quantizer);
};

/**
 * A linear layer with quantized weight and bias: `y = x q_k(W)^T + q_b(b)`, with PyTorch's
 * `Linear` layout and initialisation. The quantizers are applied exactly as given (QKeras's
 * implicit switch of weight quantizers to alpha="auto_po2" is not applied).
 *
 * Example:
 *   heteroq::nn::QLinear fc(heteroq::nn::QLinearOptions(16, 64)
 *                               .kernel_quantizer("quantized_bits(6,0,alpha=1)")
 *                               .bias_quantizer("quantized_bits(6,0,alpha=1)"));
 *   torch::Tensor y = fc(torch::randn({8, 16}));
 */
class HETEROQ_API QLinearImpl : public torch::nn::Cloneable<QLinearImpl> {
 public:
  QLinearImpl(int64_t in_features, int64_t out_features)
      : QLinearImpl(QLinearOptions(in_features, out_features)) {}
  explicit QLinearImpl(const QLinearOptions& options);

  void reset() override;
  void reset_parameters();
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor forward(const torch::Tensor& input);
  /// The weight and bias as the forward pass uses them (quantized).
  torch::Tensor quantized_weight() const;
  torch::Tensor quantized_bias() const;

  QLinearOptions options;
  torch::Tensor weight;
  torch::Tensor bias;
};
TORCH_MODULE(QLinear);
using QDense = QLinear;
using QDenseImpl = QLinearImpl;

/**
 * Applies a quantizer as an activation, e.g. `QActivation("quantized_relu(6,0)")`.
 * An empty quantizer slot is rejected.
 */
class HETEROQ_API QActivationImpl : public torch::nn::Cloneable<QActivationImpl> {
 public:
  explicit QActivationImpl(QuantizerArg quantizer);
  void reset() override {}
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor forward(const torch::Tensor& input);
  const QuantizerPtr& quantizer() const { return quantizer_; }

 private:
  QuantizerPtr quantizer_;
};
TORCH_MODULE(QActivation);

struct HETEROQ_API QAdaptiveActivationOptions {
  QAdaptiveActivationOptions(std::string activation, int64_t total_bits);
  /// "quantized_bits" or "quantized_relu", without arguments (the layer sets them).
  TORCH_ARG(std::string, activation);
  TORCH_ARG(int64_t, total_bits);
  /// The initial step count (default -1: the first training call is step 0).
  TORCH_ARG(std::optional<int64_t>, current_step) = std::nullopt;
  TORCH_ARG(bool, symmetric) = true;
  /// Training calls with step < quantization_delay pass the unquantized activation.
  TORCH_ARG(int64_t, quantization_delay) = 0;
  /// The moving min/max are updated while step <= ema_freeze_delay (None: always).
  TORCH_ARG(std::optional<int64_t>, ema_freeze_delay) = std::nullopt;
  TORCH_ARG(double, ema_decay) = 0.9999;
  /// One integer-bit value per channel (axis 1) instead of one for the tensor; needs num_channels.
  TORCH_ARG(bool, per_channel) = false;
  TORCH_ARG(int64_t, num_channels) = 0;
  /// Integer bits from round(log2) of the moving range (true) or ceil(log2) (false).
  TORCH_ARG(bool, po2_rounding) = false;
  TORCH_ARG(double, relu_neg_slope) = 0.0;
  TORCH_ARG(std::optional<double>, relu_upper_bound) = std::nullopt;
};

/**
 * QKeras's QAdaptiveActivation: a quantized_bits or quantized_relu activation with `total_bits`
 * bits whose integer bits follow an exponential moving average of the unquantized activation's
 * min and max (QKeras's _get_integer_bits). Buffers: `ema_min`, `ema_max`, `integer_bits` (one
 * value, or one per channel) and `step`. Each training call counts a step, quantizes with the
 * current integer bits (not at all while step < quantization_delay), then updates the moving
 * statistics and the integer bits. Evaluation calls quantize and change nothing (QKeras also
 * updates the statistics in inference calls while an ema_freeze_delay is set: not copied).
 *
 * Example:
 *   heteroq::nn::QAdaptiveActivation act(
 *       heteroq::nn::QAdaptiveActivationOptions("quantized_relu", 8).quantization_delay(100));
 */
class HETEROQ_API QAdaptiveActivationImpl
    : public torch::nn::Cloneable<QAdaptiveActivationImpl> {
 public:
  QAdaptiveActivationImpl(std::string activation, int64_t total_bits)
      : QAdaptiveActivationImpl(QAdaptiveActivationOptions(std::move(activation), total_bits)) {}
  explicit QAdaptiveActivationImpl(const QAdaptiveActivationOptions& options);
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor forward(const torch::Tensor& input);
  /// The quantizer the next call applies (one per tensor; per channel: channel c's).
  QuantizerPtr quantizer(int64_t channel = 0) const;

  QAdaptiveActivationOptions options;
  torch::Tensor ema_min, ema_max, integer_bits, step;
};
TORCH_MODULE(QAdaptiveActivation);

}  // namespace heteroq::nn
