// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Internal: quantized_relu's STE, shared by the autograd kernels of quantized_relu and
// quantized_relu_stochastic (their gradient is the same; see autograd/quantize_kernel.cpp).
#pragma once

#include <torch/autograd.h>

#include "heteroq/ops/quantize.h"

namespace heteroq::ops::detail {

/// Saves what relu_ste_backward needs.
inline void save_relu_ste(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                          int64_t bits, int64_t integer, bool use_sigmoid,
                          double negative_slope) {
  ctx->save_for_backward({x});
  ctx->saved_data["bits"] = bits;
  ctx->saved_data["integer"] = integer;
  ctx->saved_data["use_sigmoid"] = use_sigmoid;
  ctx->saved_data["negative_slope"] = negative_slope;
}

/// d quantized_relu / dx times `grad` (the fused operator _quantized_relu_backward).
inline at::Tensor relu_ste_backward(torch::autograd::AutogradContext* ctx, const at::Tensor& grad,
                                    const char* op) {
  TORCH_CHECK(!grad.requires_grad(), op,
              ": double backward is not supported (the STE's second derivative is zero almost "
              "everywhere; do not use create_graph=True through it)");
  return _quantized_relu_backward(
      grad, ctx->get_saved_variables()[0], ctx->saved_data["bits"].toInt(),
      ctx->saved_data["integer"].toInt(), ctx->saved_data["use_sigmoid"].toBool(),
      ctx->saved_data["negative_slope"].toDouble());
}

}  // namespace heteroq::ops::detail
