// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Model configs: the JSON that rebuilds a model's architecture (layer classes, constructor
// arguments, quantizers, names; no weights), shared with Python (heteroq.config). The format is
// documented in docs/config.md.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "heteroq/export.h"

namespace heteroq::nn {

/// The `format` every model config carries.
inline constexpr const char* kConfigFormat = "heteroq.model_config";
/// The `version` this heteroq writes and reads.
inline constexpr int64_t kConfigVersion = 1;

/**
 * A torch::nn::Sequential that can itself be a child of a Sequential. LibTorch's Sequential has a
 * template forward(), which keeps it out of AnyModule (and so out of another Sequential);
 * this one adds a plain `forward(Tensor)`. Its children are registered as a Sequential's ("0",
 * "1", ... or the names given), so parameter names are those of Python's nested nn.Sequential.
 * from_config() builds nested Sequentials as NestedSequential; to_config() writes both as
 * "Sequential".
 *
 * Example:
 *   torch::nn::Sequential model;
 *   heteroq::nn::NestedSequential block;
 *   block->push_back("fc", torch::nn::Linear(4, 4));
 *   block->push_back("act", torch::nn::ReLU());
 *   model->push_back("block", block);
 */
class HETEROQ_API NestedSequentialImpl : public torch::nn::SequentialImpl {
 public:
  using torch::nn::SequentialImpl::SequentialImpl;
  /// The children in order, each given what the previous one returned, as Python's nn.Sequential
  /// (a RecurrentOutput takes the recurrent layer's (output, state) tuple before it); returns what
  /// the last one returns (an empty NestedSequential returns its input).
  /// @throws heteroq::InvalidArgument when a RecurrentOutput does not follow a recurrent layer.
  torch::nn::AnyValue forward_any(torch::nn::AnyValue input);
  /// forward_any's result as a tensor.
  torch::Tensor forward(const torch::Tensor& input);
  /// A deep copy that keeps the children's names and the NestedSequential type (LibTorch's
  /// Sequential::clone renames the children "0", "1", ...).
  std::shared_ptr<torch::nn::Module> clone(
      const c10::optional<torch::Device>& device = c10::nullopt) const override;
};
TORCH_MODULE(NestedSequential);

/**
 * torch.nn.Hardswish for C++ (LibTorch has no Hardswish module): `x * relu6(x + 3) / 6`
 * (at::hardswish), so that configs with a Hardswish build in both languages.
 */
class HETEROQ_API HardswishImpl : public torch::nn::Cloneable<HardswishImpl> {
 public:
  explicit HardswishImpl(bool inplace = false) : inplace(inplace) {}
  void reset() override {}
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor forward(torch::Tensor input);
  /// Overwrites the input (as torch.nn.Hardswish(inplace=True)).
  bool inplace;
};
TORCH_MODULE(Hardswish);

/**
 * The model config of `model` (JSON text): `{"format": "heteroq.model_config", "version": 1,
 * "class": ..., ...}` with, for a Sequential, its children under "layers" (each with its "name")
 * and, for a layer, its constructor arguments under "config" with PyTorch's names; quantizers are
 * their spec strings (Quantizer::to_string()), empty slots null. No weights: from_config() gives
 * a new model with fresh parameters, to be loaded with the original's state (torch::load, or a
 * copy by parameter name).
 *
 * Supported: heteroq's layers (QLinear, QConv1d, QConv2d, QConvTranspose2d, QDepthwiseConv2d,
 * QSeparableConv1d/2d, QActivation, QAdaptiveActivation, QBatchNorm1d/2d, QAvgPool2d,
 * QGlobalAvgPool2d, QConv2dBatchNorm, QLinearBatchNorm, QSimpleRNN, QLSTM, QGRU), LibTorch's
 * Linear, Conv1d/2d, BatchNorm1d/2d, ReLU, Tanh, Sigmoid, Flatten, Dropout, AvgPool2d, MaxPool2d,
 * Identity, heteroq::nn::Hardswish, and torch::nn::Sequential / NestedSequential trees of them
 * (config_classes()). The recurrent layers return (output, state), so a Sequential holding one
 * does not chain; a config still describes them, as the root or as a Sequential's member. The
 * activation slots of the recurrent layers are written as their quantizer's spec or their float
 * function's name ("tanh", "hard_sigmoid", ...); QAdaptiveActivation's current_step as its step
 * count at the time (the `step` buffer).
 *
 * Example:
 *   std::string text = heteroq::nn::to_config(*model);
 *   torch::nn::Sequential copy = heteroq::nn::from_config(text);
 *
 * @param indent JSON indentation (-1: one line).
 * @throws heteroq::InvalidArgument for any other module (the message names its path in the model
 *         and its class), a module registered twice (configs cannot express sharing), or a value
 *         the format cannot hold.
 */
HETEROQ_API std::string to_config(const torch::nn::Module& model, int indent = 2);

/// to_config() of a module holder (`to_config(model)` for a torch::nn::Sequential, QLinear, ...).
template <typename ModuleType>
std::string to_config(const torch::nn::ModuleHolder<ModuleType>& model, int indent = 2) {
  return to_config(*model, indent);
}

/**
 * Builds the model a config describes, with freshly initialised parameters, in training mode
 * (float32, CPU). The root must be a Sequential (use module_from_config() for a single layer);
 * nested Sequentials become NestedSequential.
 *
 * @throws heteroq::InvalidArgument for malformed JSON, a wrong `format` or `version`, an unknown
 *         class, a missing, unexpected or ill-typed argument, a bad quantizer spec, or a value the
 *         layer rejects; the message names the JSON path, e.g.
 *         `from_config: layers[3].config.kernel_size: expected an integer >= 1 or a list of 2
 *         integers >= 1, got "3"`. Nothing is built unless the whole config is valid.
 */
HETEROQ_API torch::nn::Sequential from_config(const std::string& config_json);

/// As from_config(), for any root (a single layer or a Sequential, which becomes a
/// NestedSequential).
HETEROQ_API torch::nn::AnyModule module_from_config(const std::string& config_json);

/// The classes a config may name ("Sequential" and every layer class), sorted.
HETEROQ_API std::vector<std::string> config_classes();

}  // namespace heteroq::nn
