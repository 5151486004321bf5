// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Quantized convolutions: PyTorch's Conv1d/Conv2d/ConvTranspose2d with quantized kernels and
// biases, and QKeras's depthwise and separable convolutions, in NCHW layout.
#pragma once

#include <torch/arg.h>
#include <torch/expanding_array.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>

#include "heteroq/export.h"
#include "heteroq/nn/layers.h"

namespace heteroq::nn {

/// Options of QConv1d / QConv2d / QConvTranspose2d: torch::nn::ConvOptions's names plus the
/// quantizer slots (QKeras: kernel_quantizer, bias_quantizer).
template <size_t D>
struct HETEROQ_API QConvOptions {
  QConvOptions(int64_t in_channels, int64_t out_channels, torch::ExpandingArray<D> kernel_size)
      : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size) {}
  TORCH_ARG(int64_t, in_channels);
  TORCH_ARG(int64_t, out_channels);
  TORCH_ARG(torch::ExpandingArray<D>, kernel_size);
  TORCH_ARG(torch::ExpandingArray<D>, stride) = 1;
  TORCH_ARG(torch::ExpandingArray<D>, padding) = 0;
  /// Transposed convolutions only.
  TORCH_ARG(torch::ExpandingArray<D>, output_padding) = 0;
  TORCH_ARG(torch::ExpandingArray<D>, dilation) = 1;
  TORCH_ARG(int64_t, groups) = 1;
  TORCH_ARG(bool, bias) = true;
  TORCH_ARG(QuantizerArg, kernel_quantizer);
  TORCH_ARG(QuantizerArg, bias_quantizer);
};

/**
 * A convolution with a quantized kernel and bias: `conv(x, q_k(W)) + q_b(b)`, with PyTorch's
 * layout (`W`: (out, in/groups, k...) or, transposed, (in, out/groups, k...)) and
 * initialisation. `Transposed` selects ConvTranspose.
 */
template <size_t D, bool Transposed, typename Derived>
class HETEROQ_API QConvImplBase : public torch::nn::Cloneable<Derived> {
 public:
  explicit QConvImplBase(QConvOptions<D> options);
  void reset() override;
  void reset_parameters();
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor forward(const torch::Tensor& input);
  /// The kernel and bias as the forward pass uses them (quantized).
  torch::Tensor quantized_weight() const;
  torch::Tensor quantized_bias() const;

  QConvOptions<D> options;
  torch::Tensor weight;
  torch::Tensor bias;
};

class HETEROQ_API QConv1dImpl : public QConvImplBase<1, false, QConv1dImpl> {
 public:
  using QConvImplBase::QConvImplBase;
};
class HETEROQ_API QConv2dImpl : public QConvImplBase<2, false, QConv2dImpl> {
 public:
  using QConvImplBase::QConvImplBase;
};
class HETEROQ_API QConvTranspose2dImpl : public QConvImplBase<2, true, QConvTranspose2dImpl> {
 public:
  using QConvImplBase::QConvImplBase;
};
TORCH_MODULE(QConv1d);
TORCH_MODULE(QConv2d);
TORCH_MODULE(QConvTranspose2d);
using QConv1D = QConv1d;
using QConv2D = QConv2d;
using QConv2DTranspose = QConvTranspose2d;
using QConv1dOptions = QConvOptions<1>;
using QConv2dOptions = QConvOptions<2>;

/// Options of QDepthwiseConv2d (QKeras QDepthwiseConv2D: `depth_multiplier` kernels per input
/// channel, `depthwise_quantizer`).
struct HETEROQ_API QDepthwiseConv2dOptions {
  QDepthwiseConv2dOptions(int64_t in_channels, torch::ExpandingArray<2> kernel_size)
      : in_channels_(in_channels), kernel_size_(kernel_size) {}
  TORCH_ARG(int64_t, in_channels);
  TORCH_ARG(torch::ExpandingArray<2>, kernel_size);
  TORCH_ARG(int64_t, depth_multiplier) = 1;
  TORCH_ARG(torch::ExpandingArray<2>, stride) = 1;
  TORCH_ARG(torch::ExpandingArray<2>, padding) = 0;
  TORCH_ARG(torch::ExpandingArray<2>, dilation) = 1;
  TORCH_ARG(bool, bias) = true;
  TORCH_ARG(QuantizerArg, depthwise_quantizer);
  TORCH_ARG(QuantizerArg, bias_quantizer);
};

/**
 * QKeras QDepthwiseConv2D: a Conv2d with groups = in_channels and out_channels =
 * in_channels * depth_multiplier; the kernel (in*dm, 1, kh, kw) is quantized by
 * `depthwise_quantizer`.
 */
class HETEROQ_API QDepthwiseConv2dImpl : public torch::nn::Cloneable<QDepthwiseConv2dImpl> {
 public:
  explicit QDepthwiseConv2dImpl(QDepthwiseConv2dOptions options);
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor forward(const torch::Tensor& input) { return conv->forward(input); }
  torch::Tensor quantized_weight() const { return conv->quantized_weight(); }

  QDepthwiseConv2dOptions options;
  QConv2d conv{nullptr};
};
TORCH_MODULE(QDepthwiseConv2d);
using QDepthwiseConv2D = QDepthwiseConv2d;

/// Options of QSeparableConv1d / QSeparableConv2d (QKeras QSeparableConv1D/2D).
template <size_t D>
struct HETEROQ_API QSeparableConvOptions {
  QSeparableConvOptions(int64_t in_channels, int64_t out_channels,
                        torch::ExpandingArray<D> kernel_size)
      : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size) {}
  TORCH_ARG(int64_t, in_channels);
  TORCH_ARG(int64_t, out_channels);
  TORCH_ARG(torch::ExpandingArray<D>, kernel_size);
  TORCH_ARG(int64_t, depth_multiplier) = 1;
  TORCH_ARG(torch::ExpandingArray<D>, stride) = 1;
  TORCH_ARG(torch::ExpandingArray<D>, padding) = 0;
  TORCH_ARG(torch::ExpandingArray<D>, dilation) = 1;
  TORCH_ARG(bool, bias) = true;
  TORCH_ARG(QuantizerArg, depthwise_quantizer);
  TORCH_ARG(QuantizerArg, pointwise_quantizer);
  TORCH_ARG(QuantizerArg, bias_quantizer);
};

/**
 * QKeras QSeparableConv1D/2D: a depthwise convolution (groups = in_channels, no bias, kernel
 * quantized by `depthwise_quantizer`) followed directly (no activation, as QKeras) by a 1x1
 * pointwise convolution (`pointwise_quantizer`, bias with `bias_quantizer`).
 */
template <size_t D, typename Derived>
class HETEROQ_API QSeparableConvImplBase : public torch::nn::Cloneable<Derived> {
 public:
  explicit QSeparableConvImplBase(QSeparableConvOptions<D> options);
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor forward(const torch::Tensor& input);

  QSeparableConvOptions<D> options;
  std::shared_ptr<std::conditional_t<D == 1, QConv1dImpl, QConv2dImpl>> depthwise, pointwise;
};

class HETEROQ_API QSeparableConv1dImpl : public QSeparableConvImplBase<1, QSeparableConv1dImpl> {
 public:
  using QSeparableConvImplBase::QSeparableConvImplBase;
};
class HETEROQ_API QSeparableConv2dImpl : public QSeparableConvImplBase<2, QSeparableConv2dImpl> {
 public:
  using QSeparableConvImplBase::QSeparableConvImplBase;
};
TORCH_MODULE(QSeparableConv1d);
TORCH_MODULE(QSeparableConv2d);
using QSeparableConv1D = QSeparableConv1d;
using QSeparableConv2D = QSeparableConv2d;
using QSeparableConv1dOptions = QSeparableConvOptions<1>;
using QSeparableConv2dOptions = QSeparableConvOptions<2>;

}  // namespace heteroq::nn
