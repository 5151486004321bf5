// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Quantized batch normalization and average pooling (QKeras QBatchNormalization,
// QAveragePooling2D, QGlobalAveragePooling2D), NCHW.
#pragma once

#include <torch/arg.h>
#include <torch/expanding_array.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <optional>

#include "heteroq/export.h"
#include "heteroq/nn/layers.h"

namespace heteroq::nn {

/// Options of QBatchNorm1d/2d: torch::nn::BatchNormOptions's names (eps 1e-5, momentum 0.1:
/// PyTorch's conventions, Keras's momentum 0.99 is PyTorch's 0.01) plus QKeras's quantizers.
struct HETEROQ_API QBatchNormOptions {
  /* implicit */ QBatchNormOptions(int64_t num_features) : num_features_(num_features) {}
  TORCH_ARG(int64_t, num_features);
  TORCH_ARG(double, eps) = 1e-5;
  /// Weight of the new batch statistics in the running averages; nullopt: cumulative average.
  TORCH_ARG(std::optional<double>, momentum) = 0.1;
  TORCH_ARG(bool, affine) = true;
  TORCH_ARG(bool, track_running_stats) = true;
  TORCH_ARG(QuantizerArg, gamma_quantizer);
  TORCH_ARG(QuantizerArg, beta_quantizer);
  TORCH_ARG(QuantizerArg, mean_quantizer);
  TORCH_ARG(QuantizerArg, variance_quantizer);
  /// Quantizes gamma * rsqrt(var + eps) as a whole (then the gamma and variance quantizers are
  /// not applied, as in QKeras).
  TORCH_ARG(QuantizerArg, inverse_quantizer);
};

/**
 * QKeras QBatchNormalization in PyTorch's layout: with m, v the batch statistics (training) or
 * the running ones (eval), `inv = rsqrt(Qv(v) + eps) Qg(gamma)` (or `Qinv(rsqrt(v + eps) gamma)`
 * with an inverse quantizer) and `y = x inv + (Qb(beta) - Qm(m) inv)` per channel (axis 1).
 * Training normalizes with the quantized batch moments and updates the running statistics with
 * the unquantized ones (as QKeras), with PyTorch's momentum convention and unbiased running
 * variance. `D` = 1 takes (N, C) or (N, C, L), `D` = 2 takes (N, C, H, W).
 */
template <size_t D, typename Derived>
class HETEROQ_API QBatchNormImplBase : public torch::nn::Cloneable<Derived> {
 public:
  explicit QBatchNormImplBase(QBatchNormOptions options);
  void reset() override;
  void reset_running_stats();
  void reset_parameters();
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor forward(const torch::Tensor& input);

  QBatchNormOptions options;
  torch::Tensor weight, bias, running_mean, running_var, num_batches_tracked;
};
class HETEROQ_API QBatchNorm1dImpl : public QBatchNormImplBase<1, QBatchNorm1dImpl> {
 public:
  using QBatchNormImplBase::QBatchNormImplBase;
};
class HETEROQ_API QBatchNorm2dImpl : public QBatchNormImplBase<2, QBatchNorm2dImpl> {
 public:
  using QBatchNormImplBase::QBatchNormImplBase;
};
TORCH_MODULE(QBatchNorm1d);
TORCH_MODULE(QBatchNorm2d);
using QBatchNormalization = QBatchNorm2d;

/// Options of QAvgPool2d (torch::nn::AvgPool2dOptions's names plus QKeras's quantizers).
struct HETEROQ_API QAvgPool2dOptions {
  /* implicit */ QAvgPool2dOptions(torch::ExpandingArray<2> kernel_size)
      : kernel_size_(kernel_size), stride_(kernel_size) {}
  TORCH_ARG(torch::ExpandingArray<2>, kernel_size);
  TORCH_ARG(torch::ExpandingArray<2>, stride);
  TORCH_ARG(torch::ExpandingArray<2>, padding) = 0;
  TORCH_ARG(bool, ceil_mode) = false;
  TORCH_ARG(bool, count_include_pad) = true;
  /// Quantizes the constant 1 / (kh kw) that the window sum is multiplied by (QKeras).
  TORCH_ARG(QuantizerArg, average_quantizer);
  /// Applied to the output (QKeras's `activation`).
  TORCH_ARG(QuantizerArg, activation);
};

/**
 * QKeras QAveragePooling2D: `AvgPool(x kh kw) Q(1 / (kh kw))`, then `activation`; without an
 * average quantizer, PyTorch's AvgPool2d.
 */
class HETEROQ_API QAvgPool2dImpl : public torch::nn::Cloneable<QAvgPool2dImpl> {
 public:
  explicit QAvgPool2dImpl(QAvgPool2dOptions options);
  void reset() override {}
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor forward(const torch::Tensor& input);
  QAvgPool2dOptions options;
};
TORCH_MODULE(QAvgPool2d);
using QAveragePooling2D = QAvgPool2d;

struct HETEROQ_API QGlobalAvgPool2dOptions {
  TORCH_ARG(QuantizerArg, average_quantizer);
  TORCH_ARG(QuantizerArg, activation);
  /// Output (N, C, 1, 1) instead of Keras's (N, C).
  TORCH_ARG(bool, keepdim) = false;
};

/**
 * QKeras QGlobalAveragePooling2D: `sum_{H,W}(x) Q(1 / (H W))` (the mean without an average
 * quantizer), then `activation`; output (N, C) as Keras (keepdim: (N, C, 1, 1)).
 */
class HETEROQ_API QGlobalAvgPool2dImpl : public torch::nn::Cloneable<QGlobalAvgPool2dImpl> {
 public:
  explicit QGlobalAvgPool2dImpl(QGlobalAvgPool2dOptions options = {});
  void reset() override {}
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor forward(const torch::Tensor& input);
  QGlobalAvgPool2dOptions options;
};
TORCH_MODULE(QGlobalAvgPool2d);
using QGlobalAveragePooling2D = QGlobalAvgPool2d;

}  // namespace heteroq::nn
