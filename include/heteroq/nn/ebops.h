// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include "heteroq/export.h"

namespace heteroq::nn {

/**
 * A layer with a differentiable resource cost: HGQ's effective bit operations (EBOPs), the sum
 * over the layer's multiplications of the product of the operands' bit widths (docs/cost.md).
 * Layers with trainable bit widths implement it; resource regularizers (heteroq::nn::
 * EBOPsRegularizer) sum it over a model with total_ebops().
 */
class HETEROQ_API EBOPsLayer {
 public:
  virtual ~EBOPsLayer();
  /// The layer's EBOPs as a 0-dim floating-point tensor, differentiable with respect to the bit
  /// widths that produce it.
  virtual at::Tensor ebops() const = 0;
};

/// The sum of ebops() over `model` and every submodule of it that is an EBOPsLayer (a 0-dim
/// float tensor, 0 when there is none).
HETEROQ_API at::Tensor total_ebops(const torch::nn::Module& model);

}  // namespace heteroq::nn
