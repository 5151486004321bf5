// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// QKeras's model_quantize rules (torch-free, shared by the Python and C++ converters).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "heteroq/export.h"

namespace heteroq::nn {

/// A float layer as model_quantize sees it: its name in the model, its Keras kind ("Dense",
/// "Conv1D", "Conv2D", "DepthwiseConv2D", "Conv2DTranspose", "BatchNormalization", "Activation",
/// "AveragePooling2D", "GlobalAveragePooling2D", "SimpleRNN", "LSTM", "GRU" and, for bidirectional
/// ones, "BidirectionalSimpleRNN", "BidirectionalLSTM", "BidirectionalGRU"; with batch-norm folding
/// "Conv2DBatchnorm" or "DenseBatchnorm" for a layer followed by a batch norm), and for activations
/// their Keras name ("relu", "tanh", "sigmoid", "hard_swish", ...; for the recurrent layers the
/// float activation, "tanh" or "relu").
struct HETEROQ_API FloatLayer {
  std::string name;
  std::string kind;
  std::string activation;
};

/// What a float layer becomes: the QKeras class (e.g. "QConv2D") and a quantizer spec per slot
/// (`kernel_quantizer`, `bias_quantizer`, `depthwise_quantizer`, `gamma_quantizer`, ...,
/// `activation`, `average_quantizer`). Slots absent from the map stay unquantized. The folded
/// classes may also carry the options `folding_mode` and `ema_freeze_delay` (as text).
struct HETEROQ_API LayerPlan {
  std::string qclass;
  std::map<std::string, std::string> quantizers;
};

/**
 * QKeras's model_quantize rules, shared by the Python and C++ converters. `config_json` is a
 * QKeras quantizer config (a JSON object) keyed by layer name, by QKeras class ("QDense",
 * "QConv2D", "QDepthwiseConv2D", "QConv2DTranspose", "QConv1D", "QBatchNormalization",
 * "QActivation", "QAveragePooling2D", "QGlobalAveragePooling2D", "QSimpleRNN", "QLSTM", "QGRU",
 * and "QBidirectional" for bidirectional recurrent layers before their class; PyTorch spellings
 * such as "QLinear", "QConv2d", "QRNN" are accepted too), or "default"; the first that exists is
 * used. Values are
 * spec strings or Keras-format quantizer dicts. As QKeras: a weight layer without a
 * kernel (depthwise) quantizer and a BatchNormalization or pooling layer without an entry stay
 * float; an activation takes the entry's string, or its value for the activation's name when the
 * entry is a dict, or else `quantized_relu/tanh/sigmoid(activation_bits)` for relu/tanh/sigmoid.
 * A recurrent layer (QKeras's quantize_rnn) needs a kernel quantizer; its slots are
 * kernel_quantizer, recurrent_quantizer, bias_quantizer, state_quantizer, activation_quantizer and
 * (LSTM, GRU) recurrent_activation_quantizer; without an activation quantizer its tanh/relu becomes
 * quantized_tanh/quantized_relu(activation_bits) when activation_bits is given.
 *
 * With qkeras_compatible, the weight slots (kernel, recurrent, depthwise, pointwise, and the batch
 * norm's gamma and variance) go through qkeras_weight_quantizer(), as QKeras's layers do.
 *
 * @returns one plan per layer (nullopt: keep the float layer).
 * @throws heteroq::InvalidArgument for malformed JSON, a key that names neither a layer nor a known
 *         class, a bad quantizer spec (with the key and slot), or a quantizer that cannot serve its
 *         slot (an unsigned quantizer such as quantized_relu for weights).
 */
HETEROQ_API std::vector<std::optional<LayerPlan>> plan_model_quantize(
    const std::string& config_json, const std::vector<FloatLayer>& layers,
    std::optional<int64_t> activation_bits = std::nullopt, bool qkeras_compatible = false);

}  // namespace heteroq::nn
