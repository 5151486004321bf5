// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Batch norm folded into quantized weights during training (QKeras QConv2DBatchnorm).
#pragma once

#include <torch/arg.h>
#include <torch/expanding_array.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "heteroq/export.h"
#include "heteroq/nn/layers.h"

namespace heteroq::nn {

/// The batch-norm part of the folded layers' options.
struct HETEROQ_API FoldingOptions {
  TORCH_ARG(double, eps) = 1e-5;
  TORCH_ARG(std::optional<double>, momentum) = 0.1;
  /// "ema_stats_folding" (QKeras's default) or "batch_stats_folding".
  TORCH_ARG(std::string, folding_mode) = "ema_stats_folding";
  /// Training steps after which the statistics freeze (nullopt or < 0: never).
  TORCH_ARG(std::optional<int64_t>, ema_freeze_delay) = std::nullopt;
};

struct HETEROQ_API QConv2dBatchNormOptions {
  QConv2dBatchNormOptions(int64_t in_channels, int64_t out_channels,
                          torch::ExpandingArray<2> kernel_size)
      : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size) {}
  TORCH_ARG(int64_t, in_channels);
  TORCH_ARG(int64_t, out_channels);
  TORCH_ARG(torch::ExpandingArray<2>, kernel_size);
  TORCH_ARG(torch::ExpandingArray<2>, stride) = 1;
  TORCH_ARG(torch::ExpandingArray<2>, padding) = 0;
  TORCH_ARG(torch::ExpandingArray<2>, dilation) = 1;
  TORCH_ARG(int64_t, groups) = 1;
  TORCH_ARG(bool, bias) = true;
  TORCH_ARG(QuantizerArg, kernel_quantizer);
  TORCH_ARG(QuantizerArg, bias_quantizer);
  TORCH_ARG(FoldingOptions, folding);
};

struct HETEROQ_API QLinearBatchNormOptions {
  QLinearBatchNormOptions(int64_t in_features, int64_t out_features)
      : in_features_(in_features), out_features_(out_features) {}
  TORCH_ARG(int64_t, in_features);
  TORCH_ARG(int64_t, out_features);
  TORCH_ARG(bool, bias) = true;
  TORCH_ARG(QuantizerArg, kernel_quantizer);
  TORCH_ARG(QuantizerArg, bias_quantizer);
  TORCH_ARG(FoldingOptions, folding);
};

/**
 * QKeras QConv2DBatchnorm (and QLinearBatchNorm, QKeras's QDenseBatchnorm): a convolution (linear
 * layer) followed by a batch norm, folded into the quantized kernel and bias as QKeras trains
 * them. With running statistics mm, mv and the float layer's batch statistics m, v:
 *   ema_stats_folding:   y = op(x, Qk(W g/sqrt(mv+e))) sqrt(mv+e)/sqrt(v+e) + Qb(b_f(m, v))
 *   batch_stats_folding: y = op(x, Qk(W g/sqrt(v+e))) + Qb(b_f(m, v))
 *   eval / frozen:       y = op(x, Qk(W g/sqrt(mv+e))) + Qb(b_f(mm, mv))
 * with b_f(m, v) = beta + g (b - m)/sqrt(v + e). Parameters: weight, bias, gamma, beta; buffers:
 * running_mean, running_var, num_batches_tracked (the step counter of ema_freeze_delay).
 */
template <typename Options, typename Derived>
class HETEROQ_API QFoldedImplBase : public torch::nn::Cloneable<Derived> {
 public:
  explicit QFoldedImplBase(Options options);
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor forward(const torch::Tensor& input);
  /// QKeras's get_folded_weights(): {W g/sqrt(mv + e), beta + g (b - mm)/sqrt(mv + e)}.
  std::vector<torch::Tensor> get_folded_weights() const;

  Options options;
  torch::Tensor weight, bias, gamma, beta, running_mean, running_var, num_batches_tracked;

 private:
  torch::Tensor op(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) const;
};

class HETEROQ_API QConv2dBatchNormImpl
    : public QFoldedImplBase<QConv2dBatchNormOptions, QConv2dBatchNormImpl> {
 public:
  using QFoldedImplBase::QFoldedImplBase;
};
class HETEROQ_API QLinearBatchNormImpl
    : public QFoldedImplBase<QLinearBatchNormOptions, QLinearBatchNormImpl> {
 public:
  using QFoldedImplBase::QFoldedImplBase;
};
TORCH_MODULE(QConv2dBatchNorm);
TORCH_MODULE(QLinearBatchNorm);
using QConv2DBatchnorm = QConv2dBatchNorm;
using QDenseBatchnorm = QLinearBatchNorm;

}  // namespace heteroq::nn
