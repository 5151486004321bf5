// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
// QAdaptiveActivation in C++: the same behaviour as tests/python/test_adaptive.py checks.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "heteroq/heteroq.h"

namespace {

using heteroq::nn::QAdaptiveActivation;
using heteroq::nn::QAdaptiveActivationOptions;

TEST(QAdaptiveActivation, DelayFreezeAndEval) {
  const torch::Tensor x = torch::linspace(-1, 5, 13);
  QAdaptiveActivation layer(QAdaptiveActivationOptions("quantized_relu", 6)
                                .quantization_delay(2)
                                .ema_decay(0.5)
                                .ema_freeze_delay(3));
  // Steps 0 and 1: the unquantized relu.
  EXPECT_TRUE(torch::equal(layer(x), torch::relu(x)));
  EXPECT_TRUE(torch::equal(layer(x), torch::relu(x)));
  // Moving max after steps 0 and 1: 0 -> 2.5 -> 3.75 <= 4 - 2^(2-6), so 2 integer bits (relu's
  // min is 0); step 2 moves it to 4.375, so 3.
  const torch::Tensor y = layer(x);  // step 2, quantized with 2 integer bits
  EXPECT_TRUE(torch::equal(y, heteroq::get_quantizer("quantized_relu(6,2,is_quantized_clip=0)")
                                  ->forward(x)));
  EXPECT_EQ(layer->integer_bits.item<int>(), 3);
  layer(x);  // step 3: the last update
  const torch::Tensor mx = layer->ema_max.clone();
  layer(x * 100);  // step 4: frozen
  EXPECT_TRUE(torch::equal(mx, layer->ema_max));
  EXPECT_EQ(layer->integer_bits.item<int>(), 3);
  layer->eval();
  const torch::Tensor step = layer->step.clone();
  const torch::Tensor out = layer(x * 100);
  EXPECT_TRUE(torch::equal(step, layer->step));
  EXPECT_TRUE(torch::equal(out, layer->quantizer()->forward(x * 100)));
  EXPECT_EQ(layer->quantizer()->to_string(), "quantized_relu(6,3,is_quantized_clip=0)");
}

TEST(QAdaptiveActivation, PerChannelMatchesPerChannelQuantizers) {
  torch::manual_seed(1);
  const torch::Tensor x =
      torch::randn({8, 3, 4, 4}) * torch::tensor({0.1f, 3.0f, 40.0f}).view({1, 3, 1, 1});
  QAdaptiveActivation layer(QAdaptiveActivationOptions("quantized_bits", 8)
                                .per_channel(true)
                                .num_channels(3)
                                .ema_decay(0.0));
  layer(x);
  const torch::Tensor rows = x.transpose(0, 1).reshape({3, -1});
  EXPECT_TRUE(torch::equal(layer->ema_min, std::get<0>(rows.min(1))));
  EXPECT_TRUE(torch::equal(layer->ema_max, std::get<0>(rows.max(1))));
  // |x| < 1, about 9 and about 120: 0, 4 and 7 integer bits (7 = 8 bits less the sign).
  EXPECT_EQ(layer->integer_bits[0].item<int>(), 0);
  EXPECT_EQ(layer->integer_bits[2].item<int>(), 7);
  layer->eval();
  const torch::Tensor y = layer(x);
  for (int64_t c = 0; c < 3; ++c) {
    EXPECT_TRUE(torch::equal(y.select(1, c), layer->quantizer(c)->forward(x.select(1, c))));
  }
}

TEST(QAdaptiveActivation, GradientAndIntegerBitsOperator) {
  QAdaptiveActivation layer(QAdaptiveActivationOptions("quantized_relu", 4).ema_decay(0.5));
  const torch::Tensor x = torch::linspace(-2, 2, 9).requires_grad_(true);
  layer(x.detach());
  layer(x).sum().backward();
  EXPECT_TRUE(torch::equal(x.grad(), (x.detach() > 0).to(torch::kFloat)));
  // QKeras's _get_integer_bits on a few hand-checked ranges (8 bits, signed: 7 unsigned bits).
  const torch::Tensor lo = torch::tensor({0.0f, -1.0f, -0.5f, 0.0f, -300.0f});
  const torch::Tensor hi = torch::tensor({0.0f, 0.99f, 1.0f, 5.0f, 1.0f});
  const torch::Tensor bits =
      heteroq::ops::_adaptive_integer_bits(lo, hi, 8, /*symmetric=*/true, /*keep_negative=*/true,
                                           /*is_clipping=*/false);
  // 0.99 <= 1 - 2^-7 keeps 0 bits but -1 < -1 + 2^-7 needs 1; 1.0 > 1 - 2^-7 needs 1; 5 -> 3;
  // 300 -> 9 bits, capped at 7.
  EXPECT_TRUE(torch::equal(bits, torch::tensor({0, 1, 1, 3, 7}, torch::kInt)));
}

TEST(QAdaptiveActivation, BadArguments) {
  EXPECT_THROW(QAdaptiveActivation("quantized_relu(8)", 8), heteroq::InvalidArgument);
  EXPECT_THROW(QAdaptiveActivation("quantized_tanh", 8), heteroq::InvalidArgument);
  EXPECT_THROW(QAdaptiveActivation(QAdaptiveActivationOptions("quantized_relu", 8).per_channel(true)),
               heteroq::InvalidArgument);
  EXPECT_THROW(QAdaptiveActivation(QAdaptiveActivationOptions("quantized_relu", 8).ema_decay(2)),
               heteroq::InvalidArgument);
  EXPECT_THROW(QAdaptiveActivation("quantized_relu", 0), heteroq::InvalidArgument);
  EXPECT_THROW(
      QAdaptiveActivation(QAdaptiveActivationOptions("quantized_relu", 8).relu_neg_slope(0.3)),
      heteroq::InvalidArgument);
  QAdaptiveActivation layer(
      QAdaptiveActivationOptions("quantized_bits", 8).per_channel(true).num_channels(3));
  EXPECT_THROW(layer(torch::randn({2, 4})), c10::ValueError);
}

}  // namespace
