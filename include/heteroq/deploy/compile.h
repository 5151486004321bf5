// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// The compile step of the integer inference engine: a trained quantized model -> Program/Engine
// (docs/deploy_engine.md). Part of the main library (it evaluates the quantizers with LibTorch);
// the Engine it returns is torch-free (heteroq/deploy/engine.h, library heteroq_deploy).
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "heteroq/deploy/engine.h"
#include "heteroq/errors.h"
#include "heteroq/export.h"
#include "heteroq/quantizers/quantizer.h"

namespace torch::nn {
class SequentialImpl;
}  // namespace torch::nn

namespace heteroq::deploy {

struct HETEROQ_API CompileOptions {
  /// The input quantizer for a model whose first layer is not a QActivation. The engine applies
  /// it to the float input, so its output equals model(input_quantizer(x)): for inputs already on
  /// its grid (e.g. integer features), model(x). (With a leading QActivation too, that one then
  /// requantizes the input quantizer's output.)
  QuantizerPtr input_quantizer;
  /// The per-sample input shape, needed by models with convolutions: (C, H, W) for QConv2d,
  /// (C, L) for QConv1d. Empty: the first dense layer's in_features.
  std::vector<int64_t> input_shape;
};

/// A layer as both languages' walkers describe it (plain data).
struct HETEROQ_API LayerDesc {
  /// The module path ("fc1", "2") and class ("QLinear", "QLinearBatchNorm", "QActivation",
  /// "Flatten", "Dropout", "Identity", or any other, which is refused).
  std::string name, class_name;
  /// Dense layers: the tensors the kernel and bias quantizers take, (out, in) and (out) float32
  /// (QLinearBatchNorm: QKeras's get_folded_weights(), folded with the running statistics).
  at::Tensor weight, bias;
  QuantizerPtr kernel_quantizer, bias_quantizer;
  /// Convolutions ("QConv1d", "QConv2d", "QDepthwiseConv2d", "QConv2dBatchNorm"; weight
  /// (out, in/groups, k...); "QConvTranspose2d" with `transposed`: weight (in, out/groups, kh, kw)):
  /// one value per spatial axis. `padding` is the padding before the input, `padding_end` after
  /// it (empty: as `padding`; PyTorch's padding="same" with an even kernel pads one more after);
  /// padding_mode "zeros" (or empty), "reflect", "replicate", "circular".
  std::vector<int64_t> stride, padding, padding_end, dilation, output_padding;
  int64_t groups = 1;
  std::string padding_mode;
  bool transposed = false;
  /// "QAvgPool2d" (kernel_size, stride, padding, ceil_mode; kernel_quantizer: its
  /// average_quantizer; activation: its activation) and "QGlobalAvgPool2d" (keepdim).
  std::vector<int64_t> kernel_size;
  bool ceil_mode = false, keepdim = false, count_include_pad = true;
  /// "QBatchNorm1d"/"QBatchNorm2d" (eval: y = x inv + beta - mean inv per channel, as the layer):
  /// weight = the inverse before the inverse_quantizer (kernel_quantizer), or the float inverse
  /// computed from the quantized variance and gamma when there is no inverse_quantizer; mean = the
  /// running mean with its mean_quantizer; bias = beta with its beta_quantizer (bias_quantizer).
  at::Tensor mean;
  QuantizerPtr mean_quantizer;
  /// QActivation: its quantizer.
  QuantizerPtr activation;
  /// Dense and convolution layers: the accumulator type the cost model assigns (QTools's data
  /// types: width with the sign, 0: unknown, and frac), copied to the stage.
  int64_t cost_bits = 0, cost_frac = 0;
  /// Recurrent layers ("QSimpleRNN", "QLSTM", "QGRU"), per layer and direction k = layer *
  /// directions + d: PyTorch's weight_ih_l{layer}[_reverse], weight_hh, bias_ih, bias_hh (the biases
  /// undefined without bias). kernel_quantizer (weight_ih's), bias_quantizer and activation as for
  /// the other layers; recurrent_quantizer (weight_hh's), state_quantizer and
  /// recurrent_activation; where an activation slot has no quantizer, its float function by name
  /// ("tanh", "sigmoid", "hard_sigmoid", "relu", "linear").
  std::vector<at::Tensor> weights_ih, weights_hh, biases_ih, biases_hh;
  int64_t hidden_size = 0, num_layers = 1;
  bool bidirectional = false, batch_first = false, reset_after = true;
  QuantizerPtr recurrent_quantizer, state_quantizer, recurrent_activation;
  std::string activation_name, recurrent_activation_name;
  /// "RecurrentOutput" (which must follow a recurrent layer): whether the layer's whole output
  /// sequence (true) or its last state (Keras's return_sequences=False) is passed on.
  bool return_sequences = false;
  /// Whether the module is in training mode (refused: the engine reproduces eval mode).
  bool training = false;
};

/**
 * Compiles a model described layer by layer (see LayerDesc) into a Program: weights as integer
 * codes with power-of-two scales folded into per-channel fracs, biases aligned to the
 * accumulators' fracs, activations as integer requantizations with the quantizer's rounding and
 * saturation.
 * @throws heteroq::InvalidArgument naming the layer and why the engine cannot make it exact
 *         (a float layer or activation, a non-power-of-two scale such as alpha="auto", a
 *         stochastic quantizer, an unsupported quantizer or layer, a missing input quantizer).
 */
HETEROQ_API Program compile_program(const std::vector<LayerDesc>& layers,
                                    const CompileOptions& options = {});

/**
 * Compiles a torch::nn::Sequential of heteroq layers (QLinear, QLinearBatchNorm, QConv1d,
 * QConv2d, QDepthwiseConv2d, QSeparableConv1d/2d, QConvTranspose2d, QConv2dBatchNorm,
 * QAvgPool2d, QGlobalAvgPool2d, QBatchNorm1d/2d, QSimpleRNN/QLSTM/QGRU each followed by
 * RecurrentOutput (input_shape (steps, features)), QActivation; Flatten, Dropout, Identity) (nested
 * Sequentials are walked; a layer may follow another without an activation) into an
 * Engine, whose output equals the model's eval-mode forward bit for bit wherever
 * Engine::float32_exact() (docs/deploy_engine.md).
 *
 * Example:
 *   auto engine = heteroq::deploy::compile(*model);
 *   std::vector<float> y = engine(x);   // x: batch * 16 floats
 */
HETEROQ_API Engine compile(const torch::nn::SequentialImpl& model, const CompileOptions& options = {});

}  // namespace heteroq::deploy
