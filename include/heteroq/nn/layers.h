// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
#pragma once

#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
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

}  // namespace heteroq::nn
