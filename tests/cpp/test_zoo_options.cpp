// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// QKeras's remaining quantizer options from C++ (the Python tests check the same behaviour
// against NumPy transcriptions; tests/python/test_cross_language.py checks both languages agree).
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>
#include <ATen/Context.h>

#include <cmath>
#include <string>
#include <vector>

#include "heteroq/errors.h"
#include "heteroq/ops/quantize.h"
#include "heteroq/quantizers/quantizer.h"

namespace {

using heteroq::get_quantizer;

at::Tensor grad_of(const heteroq::Quantizer& q, const at::Tensor& x, bool train = false) {
  at::Tensor v = x.clone().requires_grad_(true);
  at::Tensor y = train ? q.forward_train(v) : q.forward(v);
  return torch::autograd::grad({y.sum()}, {v})[0];
}

TEST(ZooOptions, UseSteFalseKeepsValueAndScalesGradient) {
  const at::Tensor x = at::linspace(-3, 3, 61);
  for (const std::string base : {"quantized_bits(4,1,alpha=1", "quantized_relu(4,1",
                                 "quantized_po2(4", "quantized_relu_po2(4,2.0"}) {
    for (double q : {1.0, 0.25}) {
      const std::string qn = ",qnoise_factor=" + std::to_string(q);
      const auto ste = get_quantizer(base + qn + ")");
      const auto no = get_quantizer(base + qn + ",use_ste=0)");
      EXPECT_TRUE(at::equal(no->forward(x), ste->forward(x))) << base;
      EXPECT_TRUE(at::allclose(grad_of(*no, x), grad_of(*ste, x) * (1 - q))) << base;
      EXPECT_EQ(get_quantizer(no->to_string())->to_string(), no->to_string());
    }
  }
}

TEST(ZooOptions, ReluUpperBoundWithoutQuantizedClip) {
  const at::Tensor x = at::tensor({-1.0f, 0.3f, 1.2f, 1.9f, 2.4f, 3.0f, 5.0f, 9.0f});
  const auto plain = get_quantizer("quantized_relu(4,2)");
  const auto q = get_quantizer("quantized_relu(4,2,relu_upper_bound=2.0,is_quantized_clip=0)");
  EXPECT_TRUE(at::equal(q->forward(x), at::minimum(plain->forward(x), at::scalar_tensor(2.0))));
  EXPECT_TRUE(at::equal(grad_of(*q, x), at::tensor({0.0f, 1.f, 1.f, 1.f, 0.f, 0.f, 0.f, 0.f})));
  const auto unbounded = get_quantizer("quantized_relu(4,2,is_quantized_clip=0)");
  EXPECT_TRUE(at::equal(grad_of(*unbounded, x), (x > 0).to(at::kFloat)));
  const auto fast = get_quantizer("quantized_relu(4,2,0,0.5,enable_fast_inference=1)");
  EXPECT_TRUE(at::equal(fast->forward(x), get_quantizer("quantized_bits(4,2,keep_negative=0)")
                                              ->forward(x)));
}

TEST(ZooOptions, PerChannelAlpha) {
  const at::Tensor w = at::randn({3, 5});
  const heteroq::QuantizedBits q(4, 0, false, true, std::vector<double>{0.5, 1.0, 4.0});
  const at::Tensor base = get_quantizer("quantized_bits(4,0)")->forward(w);
  EXPECT_TRUE(at::equal(q.forward(w), base * at::tensor({0.5f, 1.0f, 4.0f}).view({3, 1})));
  EXPECT_TRUE(at::equal(grad_of(q, w), at::ones_like(w)));
  EXPECT_EQ(q.to_string(), "quantized_bits(4,0,0,alpha=[0.5 1.0 4.0])");
  EXPECT_EQ(get_quantizer(q.to_string())->to_string(), q.to_string());
  EXPECT_EQ(heteroq::quantizer_from_json(q.to_json())->to_string(), q.to_string());
  try {
    q.forward(at::randn({4, 2}));
    FAIL() << "no error for 4 channels";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("3 values"), std::string::npos) << e.what();
  }
  EXPECT_THROW(get_quantizer("quantized_bits(4,0,alpha=[1 -1])"), heteroq::InvalidArgument);
}

TEST(ZooOptions, GroupedAutoPo2) {
  const at::Tensor x = at::randn({8, 6}) * at::logspace(-2, 1, 8).view({8, 1});
  const auto plain = get_quantizer("quantized_bits(4,0,alpha='auto_po2')");
  const auto one = get_quantizer("quantized_bits(4,0,alpha='auto_po2',elements_per_scale=1)");
  EXPECT_TRUE(at::equal(one->forward(x), plain->forward(x)));
  // Groups of 4 channels share one scale.
  const auto grouped = std::dynamic_pointer_cast<heteroq::QuantizedBits>(
      get_quantizer("quantized_bits(4,0,alpha='auto_po2',elements_per_scale=4)"));
  grouped->forward(x);
  const at::Tensor s = grouped->scale().flatten();
  EXPECT_TRUE(at::equal(s.slice(0, 0, 4), s[0].expand({4})));
  EXPECT_TRUE(at::equal(s.slice(0, 4, 8), s[4].expand({4})));
  // The exponent clip bounds the scale (scale() is s * m, m = 8).
  const auto clipped = std::dynamic_pointer_cast<heteroq::QuantizedBits>(
      get_quantizer("quantized_bits(4,0,alpha='auto_po2',max_po2_exponent=-4)"));
  clipped->forward(x * 10);
  EXPECT_TRUE((clipped->scale() <= std::ldexp(8.0, -4)).all().item<bool>());
  EXPECT_THROW(get_quantizer("quantized_bits(4,0,alpha='auto_po2',elements_per_scale=5)")
                   ->forward(x),
               c10::Error);
}

TEST(ZooOptions, StochasticRoundingInTrainingOnly) {
  const at::Tensor x = at::linspace(-3, 3, 201);
  for (const std::string spec :
       {"quantized_po2(4,None,1)", "quantized_relu_po2(4,None,0.5,1)", "quantized_tanh(4,1)",
        "quantized_sigmoid(4,0,0,1)", "binary(use_stochastic_rounding=1)",
        "binary(alpha='auto_po2',use_stochastic_rounding=1)",
        "ternary(alpha='auto',use_stochastic_rounding=1)"}) {
    const auto q = get_quantizer(spec);
    at::manual_seed(4);
    const at::Tensor a = q->forward_train(x.view({1, -1}));
    at::manual_seed(4);
    EXPECT_TRUE(at::equal(a, q->forward_train(x.view({1, -1})))) << spec;  // reproducible
    at::manual_seed(5);
    EXPECT_FALSE(at::equal(a, q->forward_train(x.view({1, -1})))) << spec;  // stochastic
    EXPECT_TRUE(at::equal(q->forward(x), q->forward(x))) << spec;          // eval: deterministic
    EXPECT_EQ(get_quantizer(q->to_string())->to_string(), q->to_string()) << spec;
  }
  EXPECT_THROW(get_quantizer("ternary(alpha=1,use_stochastic_rounding=1)"),
               heteroq::InvalidArgument);
}

TEST(ZooOptions, StochasticPo2IsMeanPreserving) {
  const auto q = get_quantizer("quantized_po2(6,None,1)");
  const at::Tensor x = at::full({200000}, 0.3f);
  at::manual_seed(0);
  const at::Tensor y = q->forward_train(x);
  // Every draw is 0.25 or 0.5; P(0.5) = 0.3 / 0.25 - 1 = 0.2, so the mean is 0.3.
  EXPECT_TRUE(((y == 0.25f) | (y == 0.5f)).all().item<bool>());
  const double se = 0.125 / std::sqrt(200000.0);
  EXPECT_NEAR(y.mean().item<double>(), 0.3, 4 * se);
}

}  // namespace
