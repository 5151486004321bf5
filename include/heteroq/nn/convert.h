// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// model_quantize: converts float layers to quantized ones from a QKeras-format config.
#pragma once

#include <torch/nn/modules/container/sequential.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "heteroq/export.h"
#include "heteroq/nn/plan.h"

namespace heteroq::nn {

/**
 * QKeras model_quantize for a torch::nn::Sequential: returns a new Sequential in which Linear,
 * Conv1d, Conv2d (depthwise when groups == in_channels > 1), ConvTranspose2d, BatchNorm1d/2d,
 * ReLU/Tanh/Sigmoid/LeakyReLU, AvgPool2d, AdaptiveAvgPool2d(1) and RNN/LSTM/GRU (QSimpleRNN,
 * QLSTM, QGRU; not LSTMs with proj_size) children are replaced by their quantized versions per
 * plan_model_quantize (layer names are the child indices "0",
 * "1", ...). With transfer_weights the parameters and running statistics are copied. With
 * enable_bn_folding a Conv2d (Linear) directly followed by a matching BatchNorm2d (BatchNorm1d)
 * becomes QConv2dBatchNorm (QLinearBatchNorm) and the batch norm an Identity, as in Python.
 * qkeras_compatible applies QKeras's implicit alpha="auto_po2" to weight quantizers
 * (heteroq::qkeras_weight_quantizer).
 * @throws heteroq::InvalidArgument as plan_model_quantize, or for a configured layer heteroq cannot
 *         convert.
 */
HETEROQ_API torch::nn::Sequential model_quantize(const torch::nn::Sequential& model,
                                                 const std::string& config_json,
                                                 std::optional<int64_t> activation_bits = std::nullopt,
                                                 bool transfer_weights = false,
                                                 bool enable_bn_folding = false,
                                                 bool qkeras_compatible = false);

}  // namespace heteroq::nn
