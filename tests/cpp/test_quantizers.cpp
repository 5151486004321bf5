// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "heteroq/errors.h"
#include "heteroq/nn/layers.h"
#include "heteroq/ops/quantize.h"
#include "heteroq/quantizers/quantizer.h"

namespace {

using heteroq::get_quantizer;

at::Tensor t(std::vector<float> v) { return at::tensor(v, at::kFloat); }

std::vector<float> vec(const at::Tensor& x) {
  at::Tensor c = x.contiguous().to(at::kFloat);
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

void expect_values(const std::string& spec, std::vector<float> in, std::vector<float> expected) {
  const auto q = get_quantizer(spec);
  const auto out = vec(q->forward(t(in)));
  ASSERT_EQ(out.size(), expected.size());
  for (size_t i = 0; i < out.size(); ++i) {
    EXPECT_EQ(out[i], expected[i]) << spec << " at x=" << in[i];
  }
}

// Hand-computed from QKeras's formula (reference: qkeras-semantics.md 1.1), with
// m = 2^(bits-keep_negative), step = alpha*2^integer/m, codes clipped to [-m+symmetric, m-1].
TEST(QuantizedBits, HandComputedValues) {
  // step 1/8, codes [-8, 7]; 0.0625*8 = 0.5 ties to 0, 0.1875*8 = 1.5 ties to 2.
  expect_values("quantized_bits(4,0)", {0.3f, -1.2f, 0.99f, 0.0625f, 0.1875f, -1.0f, 2.0f},
                {0.25f, -1.0f, 0.875f, 0.0f, 0.25f, -1.0f, 0.875f});
  // symmetric drops the most negative code.
  expect_values("quantized_bits(4,0,1)", {-1.2f, -0.9f, 1.2f}, {-0.875f, -0.875f, 0.875f});
  // unsigned: m = 16, step 1/16, codes [0, 15].
  expect_values("quantized_bits(4,0,0,keep_negative=False)", {-0.5f, 0.5f, 0.97f, 2.0f},
                {0.0f, 0.5f, 0.9375f, 0.9375f});
  // integer bits: step 2^(2-5) = 1/8, range [-4, 3.875].
  expect_values("quantized_bits(6,2)", {1.3f, 5.0f, -5.0f, 0.0625f, 1e7f},
                {1.25f, 3.875f, -4.0f, 0.0f, 3.875f});
  // alpha multiplies the output, the input is not divided: q(x) = alpha * Q(x).
  expect_values("quantized_bits(4,0,alpha=0.5)", {0.3f, -2.0f}, {0.125f, -0.5f});
  expect_values("quantized_bits(4,0,alpha=1)", {0.3f}, {0.25f});
  // 2 bits: codes [-2, 1], step 1/2.
  expect_values("quantized_bits(2,0)", {0.3f, 0.8f, -0.3f, -2.0f}, {0.5f, 0.5f, -0.5f, -1.0f});
  // 1 bit signed: sign(x) with sign(0) = +1, times alpha.
  expect_values("quantized_bits(1,0)", {-0.2f, 0.0f, 0.7f}, {-1.0f, 1.0f, 1.0f});
  expect_values("quantized_bits(1,0,alpha=0.5)", {-0.2f, 0.0f, 0.7f}, {-0.5f, 0.5f, 0.5f});
  // negative integer bits: step 2^(-2-3) = 1/32, range [-1/4, 7/32].
  expect_values("quantized_bits(4,-2)", {0.05f, 1.0f, -1.0f}, {0.0625f, 0.21875f, -0.25f});
}

TEST(QuantizedBits, QnoiseFactorBlends) {
  // x + q (q(x) - x) in float32, q(x) exactly at q = 1.
  const at::Tensor x = t({0.3f, -1.2f, 5.0f});
  const at::Tensor xq = t({0.25f, -1.0f, 0.875f});
  for (float q : {0.0f, 0.25f, 0.5f}) {
    const auto out = heteroq::QuantizedBits(4, 0, false, true, std::nullopt, q).forward(x);
    EXPECT_TRUE(at::equal(out, x + (xq - x) * q)) << q;
  }
  EXPECT_EQ(heteroq::QuantizedBits(4, 0, false, true, std::nullopt, 0.5).to_string(),
            "quantized_bits(4,0,0,qnoise_factor=0.5)");
  EXPECT_THROW(heteroq::QuantizedBits(4, 0, false, true, std::nullopt, 1.5),
               heteroq::InvalidArgument);
  // quantized_relu: x_u = relu(x, 1/4) capped at 7/8.
  const at::Tensor xr = t({-1.0f, 0.3f, 2.0f});
  const at::Tensor x_u = t({-0.25f, 0.3f, 0.875f});
  const at::Tensor rq = heteroq::ops::quantized_relu(xr, 4, 0, false, 0.25);
  EXPECT_TRUE(at::equal(heteroq::ops::quantized_relu(xr, 4, 0, false, 0.25, 0.5),
                        x_u + (rq - x_u) * 0.5f));
}

// Hand-computed from QKeras's auto_po2 iteration (qkeras-semantics.md 1.1), bits 4: levels 14,
// m = 8. Channel 0 (row 0): max 0.9 -> s = 0.9*2/14 -> 2^round(log2 s) = 1/8; codes [2, -7];
// least squares (0.6 + 6.3)/2 / ((4 + 49)/2) = 0.130 -> 1/8 again. Channel 1: max 2 -> 1/4;
// codes [7, 0]; 7 / 24.5 = 0.286 -> 1/4. scale = s * m.
TEST(QuantizedBits, AutoPo2HandComputed) {
  const at::Tensor x = at::tensor({0.3f, -0.9f, 2.0f, 0.1f}).view({2, 2});
  auto [out, scale] = heteroq::ops::quantized_bits_auto(x, 4, 0, true, true);
  EXPECT_EQ(vec(out), (std::vector<float>{0.25f, -0.875f, 1.75f, 0.0f}));
  EXPECT_EQ(scale.sizes(), (at::IntArrayRef{2, 1}));
  EXPECT_EQ(vec(scale), (std::vector<float>{1.0f, 2.0f}));
  // Rank 1: one scale from the maximum (1/4), then per-element least squares, all 1/4 here.
  auto [o1, s1] = heteroq::ops::quantized_bits_auto(at::tensor({0.3f, -0.9f, 2.0f}), 4, 0);
  EXPECT_EQ(vec(o1), (std::vector<float>{0.25f, -1.0f, 1.75f}));
  EXPECT_EQ(vec(s1), (std::vector<float>{2.0f, 2.0f, 2.0f}));
  // The quantizer object keeps the last scale; scale_axis picks the channel axis.
  auto q = std::dynamic_pointer_cast<heteroq::QuantizedBits>(
      get_quantizer("quantized_bits(4,0,alpha='auto_po2')"));
  EXPECT_FALSE(q->scale().defined());
  EXPECT_TRUE(at::equal(q->forward(x), out));
  EXPECT_TRUE(at::equal(q->scale(), scale));
  EXPECT_EQ(q->to_string(), "quantized_bits(4,0,1,alpha='auto_po2')");
  auto q1 = get_quantizer("quantized_bits(4,0,alpha='auto_po2',scale_axis=1)");
  EXPECT_EQ(q1->to_string(), "quantized_bits(4,0,1,alpha='auto_po2',scale_axis=[1])");
  EXPECT_TRUE(at::equal(q1->forward(x), std::get<0>(heteroq::ops::quantized_bits_auto(x.t(), 4, 0)).t()));
  // Gradient: identity.
  at::Tensor xg = x.clone().set_requires_grad(true);
  q->forward(xg).sum().backward();
  EXPECT_TRUE(at::equal(xg.grad(), at::ones_like(x)));
  EXPECT_THROW(get_quantizer("quantized_bits(1,0,alpha='auto')"), heteroq::InvalidArgument);
  EXPECT_THROW(get_quantizer("quantized_bits(4,0,alpha='po2')"), heteroq::InvalidArgument);
  EXPECT_THROW(get_quantizer("quantized_bits(4,0,scale_axis=1)"), heteroq::InvalidArgument);
  EXPECT_THROW(heteroq::ops::quantized_bits_auto(x, 4, 0, true, true, std::vector<int64_t>{3}),
               c10::ValueError);
}

TEST(QuantizedBits, Bounds) {
  EXPECT_EQ(get_quantizer("quantized_bits(8,0,0,keep_negative=False)")->max(), 1.0);
  EXPECT_EQ(get_quantizer("quantized_bits(8,0,0,keep_negative=False)")->min(), 0.0);
  EXPECT_EQ(get_quantizer("quantized_bits(6,2)")->max(), 4.0);
  EXPECT_EQ(get_quantizer("quantized_bits(6,2)")->min(), -4.0);
  EXPECT_EQ(get_quantizer("quantized_bits(6,-2)")->max(), 1.0);
  EXPECT_EQ(get_quantizer("quantized_bits(1,0)")->max(), 1.0);
  EXPECT_EQ(get_quantizer("quantized_bits(6,2)")->bits(), 6);
}

TEST(QuantizedBits, NanInfAndSignedZero) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const auto out = vec(get_quantizer("quantized_bits(6,2)")->forward(t({nan, inf, -inf, -0.01f})));
  EXPECT_TRUE(std::isnan(out[0]));
  EXPECT_EQ(out[1], 3.875f);
  EXPECT_EQ(out[2], -4.0f);
  EXPECT_EQ(out[3], 0.0f);
  EXPECT_FALSE(std::signbit(out[3])) << "zero is +0.0";
  const auto s = vec(get_quantizer("quantized_bits(1,0)")->forward(t({nan})));
  EXPECT_TRUE(std::isnan(s[0]));
}

TEST(QuantizedRelu, HandComputedValues) {
  // nsb = 4, step 1/16, top 15/16.
  expect_values("quantized_relu(4,0)", {-1.0f, 0.03f, 0.5f, 0.97f, 2.0f},
                {0.0f, 0.0f, 0.5f, 0.9375f, 0.9375f});
  // step 2^(2-4) = 1/4, top 3.75.
  expect_values("quantized_relu(4,2)", {-1.0f, 0.6f, 9.0f}, {0.0f, 0.5f, 3.75f});
  // slope 1/4: nsb = 3, step 1/8; negative codes clamp(round(8x/4), -2, 0).
  expect_values("quantized_relu(4,0,0,0.25)", {-1.0f, -0.5f, -0.3f, 0.5f, 2.0f, -4.0f},
                {-0.25f, -0.125f, -0.125f, 0.5f, 0.875f, -0.25f});
  // hard sigmoid: p = clip(x/2 + 1/2, 0, 1) * 16, code = clip(2 round(p) - 16, 0, 15), step 1/16.
  expect_values("quantized_relu(4,0,1)", {0.5f, 0.3f, -0.5f, 1.0f, 0.1f},
                {0.5f, 0.25f, 0.0f, 0.9375f, 0.125f});
  // sigmoid with slope 1/2: nsb 3, m 8, step 1/8; x = -0.5: p = 0.25*8 = 2, neg code
  // clip(2 round(1) - 4, -4, 0) = -2 -> -0.25; x = 0.5: p = 6, code 2*6-8 = 4 -> 0.5.
  expect_values("quantized_relu(4,0,1,0.5)", {-0.5f, 0.5f, -3.0f}, {-0.25f, 0.5f, -0.5f});
}

TEST(QuantizedRelu, Bounds) {
  EXPECT_EQ(get_quantizer("quantized_relu(4,2)")->max(), 4.0);
  EXPECT_EQ(get_quantizer("quantized_relu(4,2)")->min(), 0.0);
  EXPECT_EQ(get_quantizer("quantized_relu(4,0,0,0.25)")->min(), -0.25);
  EXPECT_EQ(get_quantizer("quantized_relu(4,-1)")->max(), 1.0);
}

std::vector<float> grad_of(const std::string& spec, std::vector<float> in) {
  at::Tensor x = t(in).set_requires_grad(true);
  at::Tensor y = get_quantizer(spec)->forward(x);
  y.backward(at::ones_like(y));
  return vec(x.grad());
}

TEST(QuantizedTanhSigmoid, HandComputedValuesAndGradients) {
  // tanh(3): m = 4, codes [-4, 3], p = 2 clip(x/2 + 1/2, 0, 1) - 1.
  const std::vector<float> x = {-2.0f, -1.0f, -0.3f, 0.0f, 0.2f, 0.9f, 1.0f, 3.0f};
  expect_values("quantized_tanh(3)", x, {-1.0f, -1.0f, -0.25f, 0.0f, 0.25f, 0.75f, 0.75f, 0.75f});
  expect_values("quantized_tanh(3,0,1)", {-2.0f}, {-0.75f});
  // sigmoid(3): m = 8, codes [0, 7].
  expect_values("quantized_sigmoid(3)", x,
                {0.0f, 0.0f, 0.375f, 0.5f, 0.625f, 0.875f, 0.875f, 0.875f});
  EXPECT_EQ(grad_of("quantized_tanh(3)", x), (std::vector<float>{0, 1, 1, 1, 1, 0, 0, 0}));
  EXPECT_EQ(grad_of("quantized_sigmoid(3)", x),
            (std::vector<float>{0, 0.5f, 0.5f, 0.5f, 0.5f, 0, 0, 0}));
  EXPECT_EQ(get_quantizer("quantized_tanh(4)")->max(), 0.875);
  EXPECT_EQ(get_quantizer("quantized_sigmoid(4,1)")->min(), 0.0625);
  EXPECT_EQ(get_quantizer("quantized_tanh(6, symmetric=1)")->to_string(), "quantized_tanh(6,0,1)");
  EXPECT_THROW(get_quantizer("quantized_tanh(0)"), heteroq::InvalidArgument);
}

TEST(Po2, HandComputedValuesAndGradients) {
  // bits 4: exponents [-4, 3]; round(log2 0.3) = -2; 0 gives +2^-4; 100 clips to 2^3.
  expect_values("quantized_po2(4)", {0.0f, 0.3f, -0.3f, 0.7f, 1.4142f, 1.4143f, -5.0f, 100.0f},
                {0.0625f, 0.25f, -0.25f, 0.5f, 1.0f, 2.0f, -4.0f, 8.0f});
  expect_values("quantized_po2(4,log2_rounding='floor')", {1.4143f, 3.0f}, {1.0f, 2.0f});
  // relu_po2 bits 4: exponents [-8, 7]; slope 1/2: -5 -> -2^round(log2 2.5) = -2.
  expect_values("quantized_relu_po2(4,None,0.5)", {-5.0f, -0.3f, 0.0f, 3.0f},
                {-2.0f, -0.125f, 0.00390625f, 4.0f});
  EXPECT_EQ(grad_of("quantized_po2(4)", {-2.0f, 0.0f, 5.0f}), (std::vector<float>{1, 1, 1}));
  EXPECT_EQ(grad_of("quantized_relu_po2(4,2.0,0.25)", {-2.0f, 0.0f, 0.5f, 3.0f}),
            (std::vector<float>{0.25f, 0.25f, 1, 0}));
  EXPECT_EQ(get_quantizer("quantized_po2(4)")->max(), 8.0);
  EXPECT_EQ(get_quantizer("quantized_relu_po2(4)")->min(), 0.00390625);
  EXPECT_THROW(get_quantizer("quantized_po2(1)"), heteroq::InvalidArgument);
  EXPECT_THROW(get_quantizer("quantized_po2(4,log2_rounding='ceil')"), heteroq::InvalidArgument);
}

TEST(BinaryTernary, HandComputedValuesAndGradients) {
  const std::vector<float> x = {-2.0f, -0.3f, 0.0f, 0.2f, 0.5f};
  expect_values("binary", x, {-1, -1, 1, 1, 1});
  expect_values("binary(use_01=1,alpha=0.5)", x, {0, 0, 0.5f, 0.5f, 0.5f});
  expect_values("ternary", x, {-1, 0, 0, 0, 1});
  expect_values("ternary(alpha=0.5,threshold=0.25)", x, {-0.5f, -0.5f, 0, 0, 0.5f});
  EXPECT_EQ(grad_of("binary(alpha=0.5)", {-2.0f, 1.0f}), (std::vector<float>{1, 1}));
  const auto g = grad_of("ternary", {0.5f});
  EXPECT_FLOAT_EQ(g[0], 1.0f - std::tanh(0.5f) * std::tanh(0.5f));
  // auto_po2 binary on rows: row 0 = [0.3, -0.9] -> mean(|x|) = 0.6 -> 2^round(log2 0.6) = 0.5.
  auto q = std::dynamic_pointer_cast<heteroq::Binary>(get_quantizer("binary(alpha='auto_po2')"));
  EXPECT_EQ(vec(q->forward(at::tensor({0.3f, -0.9f, 2.0f, 3.0f}).view({2, 2}))),
            (std::vector<float>{0.5f, -0.5f, 2.0f, 2.0f}));
  EXPECT_EQ(vec(q->scale()), (std::vector<float>{0.5f, 2.0f}));
  EXPECT_THROW(get_quantizer("ternary(alpha='auto',threshold=0.2)"), heteroq::InvalidArgument);
}

TEST(UlawHswish, ValuesAndGradients) {
  // ulaw(4): m = 8; x = 0: p = 4, rp = 0 -> 0; x = 2: p = 8, rp = 1 -> clip at 1 - 1/8.
  expect_values("quantized_ulaw(4)", {0.0f, 2.0f, -2.0f}, {0.0f, 0.875f, -1.0f});
  // hswish(6,2): x = 1: 1 * min(relu(4), 6) / 6 = 2/3 -> step 1/8 -> 0.625; x = -4: 0.
  expect_values("quantized_hswish(6,2)", {1.0f, -4.0f, 5.0f}, {0.625f, 0.0f, 3.875f});
  // Gradient of the hard swish: (2x + shift) / ub inside, 1 above ub - shift, 0 below -shift.
  EXPECT_EQ(grad_of("quantized_hswish(6,2)", {0.0f, 4.0f, -4.0f}),
            (std::vector<float>{0.5f, 1.0f, 0.0f}));
  EXPECT_EQ(get_quantizer("quantized_hswish(6,2)")->min(), -0.375);
  EXPECT_THROW(get_quantizer("quantized_ulaw(4,0,0,0)"), heteroq::InvalidArgument);
}

TEST(Stochastic, TrainingRoundsToANeighbourWithoutBias) {
  const auto q = get_quantizer("quantized_bits(4,0,use_stochastic_rounding=1)");
  const at::Tensor x = at::full({100000}, 0.3f);
  // Eval: nearest (0.25); training: 0.25 or 0.375 with mean 0.3.
  EXPECT_TRUE(at::equal(q->forward(x), at::full({100000}, 0.25f)));
  at::manual_seed(3);
  const at::Tensor y = q->forward_train(x);
  EXPECT_TRUE(at::logical_or(y == 0.25f, y == 0.375f).all().item<bool>());
  EXPECT_NEAR(y.mean().item<double>(), 0.3, 0.003);
  at::manual_seed(3);
  EXPECT_TRUE(at::equal(q->forward_train(x), y));  // reproducible under manual_seed
  // Layers call forward_train while training.
  heteroq::nn::QActivation act("quantized_relu(4,0,use_stochastic_rounding=1)");
  const at::Tensor a = act(at::full({1000}, 0.3f));
  EXPECT_FALSE(at::equal(a, at::full({1000}, 0.3125f)));
  act->eval();
  EXPECT_TRUE(at::equal(act(at::full({1000}, 0.3f)), at::full({1000}, 0.3125f)));
}

TEST(Stochastic, BernoulliAndStochasticBinary) {
  at::manual_seed(5);
  const at::Tensor x = at::full({100000}, 0.1f);
  const auto b = get_quantizer("bernoulli");
  const at::Tensor y = b->forward(x);  // stochastic even outside training
  EXPECT_TRUE(at::logical_or(y == 0.0f, y == 1.0f).all().item<bool>());
  EXPECT_NEAR(y.mean().item<double>(), 1.0 / (1.0 + std::exp(-0.6)), 0.01);
  const auto s = get_quantizer("stochastic_binary(alpha=0.5)");
  EXPECT_TRUE(at::equal(s->forward(t({-0.2f, 0.3f})), t({-0.5f, 0.5f})));  // binary(alpha)
  EXPECT_NEAR(s->forward_train(x).mean().item<double>(),
              0.5 * (2.0 / (1.0 + std::exp(-0.6)) - 1.0), 0.01);
}

TEST(Stochastic, StochasticTernary) {
  at::manual_seed(2);
  const at::Tensor w = at::randn({4, 50});
  const auto q = get_quantizer("stochastic_ternary(alpha='auto_po2')");
  const at::Tensor y = q->forward_train(w);
  const at::Tensor levels = std::get<0>(at::_unique(y.abs()));  // 0 and the channel scales
  EXPECT_LE(levels.numel(), 1 + 4);
  EXPECT_TRUE(at::equal(q->forward(w), get_quantizer("ternary(alpha='auto_po2')")->forward(w)));
  EXPECT_THROW(get_quantizer("stochastic_ternary")->forward_train(w), heteroq::InvalidArgument);
}

TEST(Autograd, QuantizedBitsIsIdentityEverywhere) {
  EXPECT_EQ(grad_of("quantized_bits(4,0)", {-5.0f, -0.3f, 0.0f, 0.4f, 7.0f}),
            std::vector<float>(5, 1.0f));
  at::Tensor x = t({0.3f, 9.0f}).set_requires_grad(true);
  at::Tensor y = heteroq::ops::quantized_bits(x, 4, 0);
  (y * t({2.0f, 3.0f})).sum().backward();
  EXPECT_EQ(vec(x.grad()), (std::vector<float>{2.0f, 3.0f}));
}

TEST(Autograd, QuantizedReluSte) {
  // top = 15/16: 1 on (0, top], 0 above, 0 (the slope) for x <= 0.
  EXPECT_EQ(grad_of("quantized_relu(4,0)", {-1.0f, 0.0f, 0.5f, 0.9375f, 0.95f}),
            (std::vector<float>{0, 0, 1, 1, 0}));
  // slope 1/4, top = 7/8: the slope for x <= 0.
  EXPECT_EQ(grad_of("quantized_relu(4,0,0,0.25)", {-1.0f, 0.0f, 0.5f, 0.875f, 0.9f}),
            (std::vector<float>{0.25f, 0.25f, 1, 1, 0}));
  EXPECT_EQ(grad_of("quantized_relu(4,0,1)", {-1.0f, 0.5f, 2.0f}), (std::vector<float>{0, 1, 0}));
}

TEST(Autograd, ReluDoubleBackwardIsRejected) {
  at::Tensor x = t({0.5f}).set_requires_grad(true);
  at::Tensor w = t({2.0f}).set_requires_grad(true);
  at::Tensor y = (heteroq::ops::quantized_relu(x, 4, 0) * w).sum();
  EXPECT_THROW(torch::autograd::grad({y}, {x}, {}, /*retain_graph=*/true, /*create_graph=*/true),
               c10::Error);
  auto g = torch::autograd::grad({y}, {x});
  EXPECT_EQ(vec(g[0]), std::vector<float>{2.0f});
  // quantized_bits passes the graph through: its double backward is exact (zero).
  at::Tensor z = heteroq::ops::quantized_bits(x, 4, 0);
  auto gz = torch::autograd::grad({(z * z).sum()}, {x}, {}, true, true);
  EXPECT_TRUE(gz[0].requires_grad());
}

TEST(Errors, OperatorsRejectIntegerTensorsAndBadParameters) {
  EXPECT_THROW(heteroq::ops::quantized_bits(at::arange(3), 4, 0), c10::TypeError);
  EXPECT_THROW(heteroq::ops::quantized_relu(at::arange(3), 4, 0), c10::TypeError);
  EXPECT_THROW(heteroq::ops::quantized_bits(t({1.0f}), 0, 0), c10::ValueError);
  EXPECT_THROW(heteroq::ops::quantized_bits(t({1.0f}), 4, 0, false, true, -1.0), c10::ValueError);
  EXPECT_THROW(heteroq::ops::quantized_relu(t({1.0f}), 4, 0, false, 0.3), c10::ValueError);
  EXPECT_THROW(heteroq::QuantizedBits(40), heteroq::InvalidArgument);
  EXPECT_THROW(heteroq::QuantizedRelu(4, 0, false, 3.0), heteroq::InvalidArgument);
  try {
    heteroq::ops::quantized_bits(t({1.0f}), 0, 0);
  } catch (const c10::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("`bits` must be an integer in [1, 32], got 0"),
              std::string::npos);
  }
}

// ------------------------------------------------------------------------------------------------
// The fused CPU kernels against the device-generic ATen path, bit for bit.

at::Tensor bits_of(const at::Tensor& x) {
  return x.scalar_type() == at::kFloat ? x.contiguous().view(at::kInt)
                                       : x.contiguous().view(at::kLong);
}

void expect_bitwise_equal(const at::Tensor& a, const at::Tensor& b, const std::string& what) {
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  ASSERT_EQ(a.scalar_type(), b.scalar_type()) << what;
  const at::Tensor nan_a = at::isnan(a), nan_b = at::isnan(b);
  EXPECT_TRUE(at::equal(nan_a, nan_b)) << what;
  const at::Tensor keep = at::logical_not(nan_a);
  EXPECT_TRUE(at::equal(bits_of(a).masked_select(keep), bits_of(b).masked_select(keep))) << what;
}

at::Tensor random_input(at::ScalarType dtype, int64_t n) {
  at::Tensor x = at::randn({n}, at::TensorOptions().dtype(dtype)) * 3.0;
  // Exact ties on several grids, huge values, infinities, NaN and signed zeros.
  at::Tensor special = at::tensor({0.5, -0.5, 1.5, -2.5, 0.0625, 0.1875, -0.03125, 1e30, -1e30,
                                   std::numeric_limits<double>::infinity(),
                                   -std::numeric_limits<double>::infinity(),
                                   std::numeric_limits<double>::quiet_NaN(), 0.0, -0.0},
                                  at::TensorOptions().dtype(dtype));
  return at::cat({x, special});
}

TEST(FusedKernel, EqualsGenericPathBitForBit) {
  at::manual_seed(1234);
  const char* specs[] = {"quantized_bits(6,0,alpha=1)", "quantized_bits(4,2,1)",
                         "quantized_bits(8,0,0,keep_negative=False)", "quantized_bits(1,0)",
                         "quantized_bits(5,1,alpha=0.3)", "quantized_bits(16,3)",
                         "quantized_bits(3,-2,alpha=0.75)", "quantized_relu(6,0)",
                         "quantized_relu(4,2)", "quantized_relu(4,0,0,0.25)",
                         "quantized_relu(6,1,1)", "quantized_relu(5,0,1,0.5)",
                         // Grids wider than 2^22 codes take the general rounding path in float32.
                         "quantized_bits(24,3)", "quantized_bits(32,0,0,keep_negative=False)",
                         "quantized_bits(23,0,1)", "quantized_relu(26,1)",
                         "quantized_relu(24,0,1,0.5)", "quantized_relu(23,2,0,0.5)",
                         // QKeras's quantization-noise blend.
                         "quantized_bits(6,0,alpha=1,qnoise_factor=0.3)",
                         "quantized_relu(4,0,0,0.25,qnoise_factor=0.7)",
                         "quantized_relu(6,1,1,qnoise_factor=0.5)",
                         "quantized_relu(4,0,0,0.0625)", "quantized_relu(2,0,0,0.25)",
                         "quantized_tanh(4)", "quantized_tanh(8,0,1)", "quantized_tanh(26)",
                         "quantized_sigmoid(4)", "quantized_sigmoid(7,1)", "quantized_sigmoid(25)",
                         "quantized_po2(4)", "quantized_po2(8,0.5,quadratic_approximation=1)",
                         "quantized_po2(12,log2_rounding='floor')", "quantized_relu_po2(4)",
                         "quantized_relu_po2(6,4.0,0.25,qnoise_factor=0.5)",
                         "binary", "binary(use_01=1,alpha=0.75)", "ternary",
                         "ternary(alpha=0.3,threshold=0.5)"};
  for (auto dtype : {at::kFloat, at::kDouble}) {
    const at::Tensor x = random_input(dtype, 100003);
    const at::Tensor x2d = random_input(dtype, 4078).view({62, 66});
    for (const char* spec : specs) {
      const auto q = get_quantizer(spec);
      for (const at::Tensor& in : {x, x2d.t(), x.slice(0, 1, x.numel(), 3), x.narrow(0, 0, 0)}) {
        at::Tensor fused, generic;
        {
          heteroq::ops::FusedKernelsGuard g(true);
          fused = q->forward(in);
        }
        {
          heteroq::ops::FusedKernelsGuard g(false);
          generic = q->forward(in);
        }
        expect_bitwise_equal(fused, generic, std::string(spec) + " " + c10::toString(dtype));
      }
    }
    // The relu backward kernel too.
    for (const char* spec : {"quantized_relu(4,0)", "quantized_relu(4,0,0,0.25)"}) {
      const auto r = std::dynamic_pointer_cast<heteroq::QuantizedRelu>(get_quantizer(spec));
      const at::Tensor grad = at::randn_like(x);
      at::Tensor fused, generic;
      {
        heteroq::ops::FusedKernelsGuard g(true);
        fused = heteroq::ops::_quantized_relu_backward(grad, x, r->bits(), r->integer(),
                                                      r->use_sigmoid(), r->negative_slope());
      }
      {
        heteroq::ops::FusedKernelsGuard g(false);
        generic = heteroq::ops::_quantized_relu_backward(grad, x, r->bits(), r->integer(),
                                                        r->use_sigmoid(), r->negative_slope());
      }
      expect_bitwise_equal(fused, generic, std::string("backward ") + spec);
    }
  }
}

TEST(OutVariants, WriteIntoOutAndCheckIt) {
  at::manual_seed(5);
  const at::Tensor x = at::randn({4000}) * 2;
  at::Tensor out = at::empty({4000});
  at::Tensor& r = heteroq::ops::quantized_bits_out(out, x, 6, 1, false, true, 0.5);
  EXPECT_EQ(&r, &out);
  EXPECT_TRUE(at::equal(out, heteroq::ops::quantized_bits(x, 6, 1, false, true, 0.5)));
  at::Tensor empty = at::empty({0});
  heteroq::ops::quantized_relu_out(empty, x.view({40, 100}), 4, 0, false, 0.25);
  EXPECT_TRUE(at::equal(empty, heteroq::ops::quantized_relu(x.view({40, 100}), 4, 0, false, 0.25)));
  at::Tensor strided = at::empty({40, 200}).slice(1, 0, 200, 2);
  heteroq::ops::quantized_bits_out(strided, x.view({40, 100}), 4, 0);
  EXPECT_TRUE(at::equal(strided, heteroq::ops::quantized_bits(x.view({40, 100}), 4, 0)));
  at::Tensor small = at::empty({5});
  EXPECT_THROW(heteroq::ops::quantized_bits_out(small, x, 4, 0), c10::ValueError);
  at::Tensor wrong = at::empty({4000}, at::kDouble);
  EXPECT_THROW(heteroq::ops::quantized_bits_out(wrong, x, 4, 0), c10::TypeError);
  const at::Tensor xg = x.clone().set_requires_grad(true);
  EXPECT_THROW(heteroq::ops::quantized_bits_out(out, xg, 4, 0), c10::Error);
}

TEST(FusedKernel, ThreadCountDoesNotChangeResults) {
  at::manual_seed(7);
  const at::Tensor x = at::randn({1 << 20});
  const int before = at::get_num_threads();
  at::set_num_threads(1);
  const at::Tensor one = heteroq::ops::quantized_bits(x, 6, 1);
  at::set_num_threads(2);
  const at::Tensor two = heteroq::ops::quantized_bits(x, 6, 1);
  at::set_num_threads(before);
  expect_bitwise_equal(one, two, "threads");
}

TEST(FusedKernel, OtherFloatingDtypesUseTheGenericPath) {
  const at::Tensor x = at::tensor({0.3, -1.2, 0.99}).to(at::kBFloat16);
  const at::Tensor y = heteroq::ops::quantized_bits(x, 4, 0);
  EXPECT_EQ(y.scalar_type(), at::kBFloat16);
  EXPECT_EQ(vec(y), (std::vector<float>{0.25f, -1.0f, 0.875f}));
}

TEST(FusedKernel, OutputsLieOnTheGrid) {
  at::manual_seed(3);
  const at::Tensor x = at::randn({50000}) * 4;
  const at::Tensor y = heteroq::ops::quantized_bits(x, 5, 1);
  const double step = std::ldexp(1.0, 1 - 5 + 1);
  const at::Tensor codes = y / step;
  EXPECT_TRUE(at::equal(codes, at::round(codes)));
  EXPECT_LE(y.max().item<float>(), 2.0 - step);
  EXPECT_GE(y.min().item<float>(), -2.0);
  // Idempotent.
  EXPECT_TRUE(at::equal(heteroq::ops::quantized_bits(y, 5, 1), y));
}

}  // namespace
