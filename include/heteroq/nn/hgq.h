// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
#pragma once

#include <torch/arg.h>
#include <torch/expanding_array.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "heteroq/export.h"
#include "heteroq/nn/ebops.h"
#include "heteroq/quantizers/fixed.h"

/// Learned precision (HGQ, Sun et al. 2024): fixed-point quantizers whose fractional bit widths
/// are trained by gradient descent, the layers built on them, and the conversion to heteroq's
/// Q layers with FixedQuantizer quantizers. docs/learned_precision.md has the formulas.
namespace heteroq::nn {

/// Options of HQuantizer.
struct HETEROQ_API HQuantizerOptions {
  /// `shape`: the shape of one sample (activations: without the batch axis) or of the weight.
  /// For "tensor" and "channel" granularity only the rank (and the channel's size) matter, so
  /// unknown sizes may be given as 1.
  explicit HQuantizerOptions(std::vector<int64_t> shape);
  TORCH_ARG(std::vector<int64_t>, shape);
  /// "tensor" (one width), "channel" (one per index of `channel_axis`) or "element" (one per
  /// element of `shape`).
  TORCH_ARG(std::string, granularity) = "element";
  /// The axis of `shape` that "channel" granularity keeps.
  TORCH_ARG(int64_t, channel_axis) = 0;
  /// A weight quantizer: integer bits (and keep_negative -1) come from the values it quantizes
  /// at each call; an activation quantizer (false) takes them from the ranges tracked in
  /// training (inputs with a leading batch axis).
  TORCH_ARG(bool, is_weight) = false;
  /// The initial fractional bits f (HGQ's init_bw).
  TORCH_ARG(double, init_bits) = 2.0;
  /// Integer bits as a trainable parameter (starting at init_integer) instead of from ranges.
  TORCH_ARG(bool, trainable_integer) = false;
  TORCH_ARG(double, init_integer) = 0.0;
  /// 1 or 0: a fixed sign bit; -1: from the observed minimum (a sign bit where it is < 0).
  TORCH_ARG(int64_t, keep_negative) = -1;
  TORCH_ARG(std::string, round_mode) = "RND_CONV";
  TORCH_ARG(std::string, overflow_mode) = "SAT";
  /// The fractional bits are clamped to [min_frac_bits, max_frac_bits] (HGQ's bw_clip).
  TORCH_ARG(double, min_frac_bits) = -16.0;
  TORCH_ARG(double, max_frac_bits) = 24.0;
};

/**
 * A fixed-point quantizer with trainable fractional bits (HGQ): `fixed_quantize(x, k, i, f)`
 * with f a parameter of shape widths_shape() ("tensor": 0-dim; "channel": ones but the channel
 * axis; "element": `shape`), the widths broadcasting over a leading batch axis.
 *
 * Integer bits i: with trainable_integer a parameter; else `floor(log2 m_q) + 1` for the largest
 * magnitude m of the group rounded to the grid, `m_q = floor(m 2^f + 1/2) 2^-f` (the smallest i
 * with m_q < 2^i; groups with m_q = 0 get width 0), where m is the running maximum of |x| over
 * the training batches seen (activations: frozen in eval mode, reset by reset_ranges()) or the
 * current values (weights). keep_negative: fixed, or 1 where the
 * observed minimum is < 0.
 *
 * Gradients: x straight through (0 where clipped), f HGQ's surrogate ln2 (x - q), see
 * heteroq::ops::fixed_quantize.
 *
 * Example:
 *   heteroq::nn::HQuantizer q(heteroq::nn::HQuantizerOptions({16}).init_bits(4));
 *   auto y = q(torch::randn({8, 16}));      // training mode: tracks the range
 *   auto bw = q->bit_widths();               // (16,), differentiable w.r.t. q->frac_bits
 */
class HETEROQ_API HQuantizerImpl : public torch::nn::Cloneable<HQuantizerImpl> {
 public:
  explicit HQuantizerImpl(const HQuantizerOptions& options);
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor forward(const torch::Tensor& x);

  /// The fractional bits forward() uses: frac_bits clamped to [min_frac_bits, max_frac_bits].
  torch::Tensor used_frac_bits() const;
  /// The total widths `relu(k + i + f)` (widths_shape()), f through a straight-through round, so
  /// d/df = 1 where the width is positive (HGQ). Integer bits and keep_negative are those of the
  /// last forward() (activations in training: the tracked ranges).
  torch::Tensor bit_widths() const;
  /// HGQ's width of quantized constants: the exact bit span of each value of `q` (the bits from its
  /// highest to its lowest non-zero bit, sign excluded; 0 for 0), with gradient 1 w.r.t. f where
  /// q != 0 (q's shape). Used for the EBOPs of weights.
  torch::Tensor value_widths(const torch::Tensor& q) const;
  /// A FixedQuantizer with the current widths (rounded f; integer bits and keep_negative of the
  /// last forward(), or for a weight quantizer those of `values` when given), shaped
  /// widths_shape(): its forward equals this quantizer's in eval mode.
  std::shared_ptr<FixedQuantizer> to_fixed(const torch::Tensor& values = {}) const;
  /// forward() without changing any state: a weight quantizer takes its integer bits from `x`,
  /// an activation quantizer uses the stored ranges.
  torch::Tensor quantize(const torch::Tensor& x) const;
  /// Forgets the tracked ranges (activations).
  void reset_ranges();
  std::vector<int64_t> widths_shape() const { return widths_shape_; }

  HQuantizerOptions options;
  torch::Tensor frac_bits;      ///< parameter, widths_shape()
  torch::Tensor int_bits;       ///< parameter (trainable_integer) or buffer of the current values
  torch::Tensor keep_negative;  ///< buffer, 0/1
  torch::Tensor max_abs;        ///< buffer: running max |x| (activations)
  torch::Tensor min_value;      ///< buffer: running min x (activations)

 private:
  std::vector<int64_t> widths_shape_;
  // keep_negative and int_bits for values x (weights) or from the buffers.
  std::pair<torch::Tensor, torch::Tensor> widths_for(const torch::Tensor& x) const;
};
TORCH_MODULE(HQuantizer);

/// Options shared by the H layers (the quantizers of input, kernel and bias).
struct HETEROQ_API HLayerQuantizers {
  /// Quantize the layer's input (HGQ2: every layer quantizes its input).
  TORCH_ARG(bool, quantize_input) = true;
  /// Granularity of the input widths ("tensor", "channel", "element"), or "" for the layer's
  /// default: "element" for HDense, "channel" for convolutions (which take "element" only with
  /// input_shape).
  TORCH_ARG(std::string, input_granularity) = "";
  /// The input's sample shape (C, L) / (C, H, W) for per-element input widths of a convolution.
  TORCH_ARG(std::vector<int64_t>, input_shape) = {};
  TORCH_ARG(double, input_init_bits) = 2.0;
  TORCH_ARG(int64_t, input_keep_negative) = -1;
  TORCH_ARG(std::string, kernel_granularity) = "element";
  TORCH_ARG(double, kernel_init_bits) = 2.0;
  TORCH_ARG(std::string, bias_granularity) = "element";
  TORCH_ARG(double, bias_init_bits) = 2.0;
  TORCH_ARG(std::string, round_mode) = "RND_CONV";
  TORCH_ARG(std::string, overflow_mode) = "SAT";
};

struct HETEROQ_API HDenseOptions {
  HDenseOptions(int64_t in_features, int64_t out_features);
  TORCH_ARG(int64_t, in_features);
  TORCH_ARG(int64_t, out_features);
  TORCH_ARG(bool, bias) = true;
  TORCH_ARG(HLayerQuantizers, quantizers) = {};
};

/**
 * `y = q_b(b) + q_k(W) q_in(x)` (PyTorch Linear layout and initialisation) with HQuantizers for
 * input (per element of (in_features,) by default), kernel and bias (per element).
 * ebops() = Σ_ij bw_in[j] span(q_k(W)[i, j]) + mean_i span(q_b(b)[i]) · out_features, the input
 * widths 32 without an input quantizer (docs/learned_precision.md).
 */
class HETEROQ_API HDenseImpl : public torch::nn::Cloneable<HDenseImpl>, public EBOPsLayer {
 public:
  HDenseImpl(int64_t in_features, int64_t out_features)
      : HDenseImpl(HDenseOptions(in_features, out_features)) {}
  explicit HDenseImpl(const HDenseOptions& options);
  void reset() override;
  void reset_parameters();
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor forward(const torch::Tensor& input);
  at::Tensor ebops() const override;

  HDenseOptions options;
  torch::Tensor weight, bias;
  HQuantizer input_quantizer{nullptr}, kernel_quantizer{nullptr}, bias_quantizer{nullptr};
  /// Positions per sample of the last input (the product of the axes between batch and
  /// features; 1 for 2-D inputs): each weight is used that many times.
  int64_t last_positions = 1;
};
TORCH_MODULE(HDense);
using HLinear = HDense;
using HLinearImpl = HDenseImpl;

template <size_t D>
struct HETEROQ_API HConvOptions {
  HConvOptions(int64_t in_channels, int64_t out_channels, torch::ExpandingArray<D> kernel_size)
      : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size) {}
  TORCH_ARG(int64_t, in_channels);
  TORCH_ARG(int64_t, out_channels);
  TORCH_ARG(torch::ExpandingArray<D>, kernel_size);
  TORCH_ARG(torch::ExpandingArray<D>, stride) = 1;
  TORCH_ARG(torch::ExpandingArray<D>, padding) = 0;
  TORCH_ARG(torch::ExpandingArray<D>, dilation) = 1;
  TORCH_ARG(int64_t, groups) = 1;
  TORCH_ARG(bool, bias) = true;
  /// Input widths default to one per channel here.
  TORCH_ARG(HLayerQuantizers, quantizers) = {};
};

/**
 * A convolution (PyTorch layout, zero padding) with HQuantizers for input, kernel and bias.
 * ebops() sums bw_in · span(w) over every multiplication: the convolution of the input's width
 * map (the last input's spatial size; padding costs nothing) with the kernel's spans, plus
 * mean span(bias) times the output values.
 */
template <size_t D, typename Derived>
class HETEROQ_API HConvImplBase : public torch::nn::Cloneable<Derived>, public EBOPsLayer {
 public:
  explicit HConvImplBase(HConvOptions<D> options);
  void reset() override;
  void reset_parameters();
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor forward(const torch::Tensor& input);
  at::Tensor ebops() const override;

  HConvOptions<D> options;
  torch::Tensor weight, bias;
  HQuantizer input_quantizer{nullptr}, kernel_quantizer{nullptr}, bias_quantizer{nullptr};
  /// The spatial size of the last input (ebops() needs it).
  std::vector<int64_t> last_input_size;
};

class HETEROQ_API HConv1dImpl : public HConvImplBase<1, HConv1dImpl> {
 public:
  using HConvImplBase::HConvImplBase;
};
class HETEROQ_API HConv2dImpl : public HConvImplBase<2, HConv2dImpl> {
 public:
  using HConvImplBase::HConvImplBase;
};
TORCH_MODULE(HConv1d);
TORCH_MODULE(HConv2d);
using HConv1dOptions = HConvOptions<1>;
using HConv2dOptions = HConvOptions<2>;

struct HETEROQ_API HConvTranspose2dOptions {
  HConvTranspose2dOptions(int64_t in_channels, int64_t out_channels,
                          torch::ExpandingArray<2> kernel_size)
      : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size) {}
  TORCH_ARG(int64_t, in_channels);
  TORCH_ARG(int64_t, out_channels);
  TORCH_ARG(torch::ExpandingArray<2>, kernel_size);
  TORCH_ARG(torch::ExpandingArray<2>, stride) = 1;
  TORCH_ARG(torch::ExpandingArray<2>, padding) = 0;
  TORCH_ARG(torch::ExpandingArray<2>, output_padding) = 0;
  TORCH_ARG(torch::ExpandingArray<2>, dilation) = 1;
  TORCH_ARG(int64_t, groups) = 1;
  TORCH_ARG(bool, bias) = true;
  /// Input widths default to one per channel here.
  TORCH_ARG(HLayerQuantizers, quantizers) = {};
};

/**
 * A transposed 2-D convolution (torch::nn::ConvTranspose2d's layout: kernel (in, out / groups,
 * kh, kw), zero padding) with HQuantizers for input, kernel and bias. ebops() counts every
 * product of an input value with a kernel value of its group, as QTools counts a transposed
 * convolution (those that land in the cropped border included): Σ_c (Σ over the positions of
 * channel c's input widths) · (Σ of the spans of the kernel values c multiplies), plus mean
 * span(bias) times the output values.
 */
class HETEROQ_API HConvTranspose2dImpl : public torch::nn::Cloneable<HConvTranspose2dImpl>,
                                         public EBOPsLayer {
 public:
  explicit HConvTranspose2dImpl(HConvTranspose2dOptions options);
  void reset() override;
  void reset_parameters();
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor forward(const torch::Tensor& input);
  at::Tensor ebops() const override;

  HConvTranspose2dOptions options;
  torch::Tensor weight, bias;
  HQuantizer input_quantizer{nullptr}, kernel_quantizer{nullptr}, bias_quantizer{nullptr};
  /// The spatial size of the last input and of its output (ebops() needs them).
  std::vector<int64_t> last_input_size, last_output_size;
};
TORCH_MODULE(HConvTranspose2d);

struct HETEROQ_API HActivationOptions {
  /// `shape`: one sample's shape (for "channel"/"tensor" granularity only the rank matters).
  explicit HActivationOptions(std::vector<int64_t> shape);
  TORCH_ARG(std::vector<int64_t>, shape);
  /// A ReLU before the quantizer (then keep_negative is 0 and the overflow mode SAT/SAT_SYM, so
  /// that the converted QActivation, without ReLU, computes the same values).
  TORCH_ARG(bool, relu) = false;
  TORCH_ARG(std::string, granularity) = "element";
  TORCH_ARG(int64_t, channel_axis) = 0;
  TORCH_ARG(double, init_bits) = 2.0;
  TORCH_ARG(int64_t, keep_negative) = -1;
  TORCH_ARG(std::string, round_mode) = "RND_CONV";
  TORCH_ARG(std::string, overflow_mode) = "SAT";
};

/// An activation quantizer (HGQ's HQuantize / HActivation): `q(relu(x))` or `q(x)`. No
/// multiplications: ebops() is 0.
class HETEROQ_API HActivationImpl : public torch::nn::Cloneable<HActivationImpl>,
                                    public EBOPsLayer {
 public:
  explicit HActivationImpl(const HActivationOptions& options);
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor forward(const torch::Tensor& input);
  at::Tensor ebops() const override;

  HActivationOptions options;
  HQuantizer quantizer{nullptr};
};
TORCH_MODULE(HActivation);

/**
 * Converts a model with H layers into heteroq's Q layers with FixedQuantizer quantizers of the
 * current (per-element) widths: HDense -> Sequential(QActivation(input), QDense), HConv1d/2d ->
 * Sequential(QActivation(input), QConv1d/2d), HConvTranspose2d -> Sequential(QActivation(input),
 * QConvTranspose2d), HActivation -> QActivation; other modules are
 * cloned (nested Sequentials are not supported by LibTorch's Sequential). In eval mode the result
 * computes exactly the same outputs as `model` in eval mode.
 */
HETEROQ_API torch::nn::Sequential hgq_convert(const torch::nn::Sequential& model);

/**
 * The reverse start: a model of Q layers whose quantizers are quantized_bits/quantized_relu with a
 * fixed alpha (e.g. AutoQ's best model) becomes H layers that start from its widths: QDense ->
 * HDense, QConv1d/2d and QDepthwiseConv2d (a grouped HConv2d) -> HDense, HConv1d/2d (kernel and
 * bias f = bits - integer - keep_negative, the input quantizer's f that of the preceding
 * QActivation, else `default_input_bits`), QSeparableConv1d/2d -> its depthwise and pointwise
 * convolutions as two H convolutions (the pointwise one learns the precision of the depthwise
 * result, starting at `default_input_bits`), QLinearBatchNorm/QConv2dBatchNorm -> HDense/HConv2d
 * holding the folded kernel and bias (get_folded_weights(): the running statistics folded in),
 * QConvTranspose2d -> HConvTranspose2d, QActivation -> HActivation (quantized_relu: with ReLU).
 * Weights are copied; other modules are
 * cloned.
 * @throws heteroq::InvalidArgument for a quantizer of another kind (its name and the layer's
 * index).
 */
HETEROQ_API torch::nn::Sequential hgq_from_quantized(const torch::nn::Sequential& model,
                                                     double default_input_bits = 8.0);

}  // namespace heteroq::nn
