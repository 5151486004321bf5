// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// EBOPsLayer / total_ebops and EBOPsRegularizer: the schedules' formulas, the penalty's gradient,
// the controller's convergence to a budget on a toy problem, state save/restore, errors.
// tests/python/test_regularizers.py checks the same in Python.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <map>
#include <string>

#include "heteroq/errors.h"
#include "heteroq/nn/ebops.h"
#include "heteroq/nn/hgq.h"
#include "heteroq/nn/regularizer.h"

namespace {

using heteroq::InvalidArgument;
using heteroq::nn::EBOPsLayer;
using heteroq::nn::EBOPsRegularizer;
using heteroq::nn::total_ebops;

// A toy layer with trainable widths b (softplus of a parameter) on n inputs of 8 bits:
// EBOPs = 8 * sum(b). Its "task loss" is sum(k / b): more bits, less error.
struct ToyImpl : torch::nn::Module, EBOPsLayer {
  explicit ToyImpl(int64_t n, double init = 2.0) {
    raw = register_parameter("raw", torch::full({n}, std::log(std::expm1(init))));
  }
  torch::Tensor widths() const { return torch::nn::functional::softplus(raw); }
  at::Tensor ebops() const override { return 8.0 * widths().sum(); }
  torch::Tensor forward(const torch::Tensor& x) { return x; }
  torch::Tensor raw;
};
TORCH_MODULE(Toy);

TEST(EBOPs, TotalSumsEveryLayerOnce) {
  Toy a(4, 2.0), b(2, 3.0);
  // a, an inner Sequential holding b, a Linear, and b again (shared: counted once)
  torch::nn::Module model;
  model.register_module("a", a);
  model.register_module("inner", torch::nn::Sequential(b, torch::nn::ReLU()));
  model.register_module("fc", torch::nn::Linear(2, 2));
  model.register_module("b", b);
  const auto e = total_ebops(model);
  EXPECT_EQ(e.dim(), 0);
  EXPECT_NEAR(e.item<double>(), 8 * (4 * 2.0 + 2 * 3.0), 1e-4);
  e.backward();
  ASSERT_TRUE(a->raw.grad().defined());
  // d/draw 8 softplus(raw) = 8 sigmoid(raw)
  EXPECT_TRUE(torch::allclose(a->raw.grad(), 8 * torch::sigmoid(a->raw.detach())));
  // The model itself may be a layer.
  EXPECT_NEAR(total_ebops(*a).item<double>(), 64.0, 1e-4);
  // No layer: 0.
  torch::nn::Sequential plain(torch::nn::Linear(2, 2));
  EXPECT_EQ(total_ebops(*plain).item<double>(), 0.0);
}

// The H layers (heteroq/nn/hgq.h) are EBOPsLayers: total_ebops sums them, and the regularizer's
// gradient reaches their bit widths.
TEST(EBOPs, TotalOfHLayersAndPenaltyGradient) {
  torch::manual_seed(0);
  heteroq::nn::HDense fc1(4, 6), fc2(6, 3);
  torch::nn::Sequential model(fc1, torch::nn::ReLU(), fc2);
  model->forward(torch::randn({16, 4}));
  const auto e = total_ebops(*model);
  EXPECT_NEAR(e.item<double>(), (fc1->ebops() + fc2->ebops()).item<double>(), 1e-6);
  EXPECT_GT(e.item<double>(), 0.0);
  auto reg = EBOPsRegularizer::constant(1e-3);
  reg.penalty(*model, 0).backward();
  bool some_width_gradient = false;
  for (const auto& p : model->named_parameters()) {
    if (p.key().find("frac_bits") != std::string::npos && p.value().grad().defined() &&
        p.value().grad().abs().sum().item<double>() > 0) {
      some_width_gradient = true;
    }
  }
  EXPECT_TRUE(some_width_gradient) << "no gradient reached a bit width";
}

struct BadImpl : torch::nn::Module, EBOPsLayer {
  at::Tensor ebops() const override { return torch::ones({3}); }
  torch::Tensor forward(const torch::Tensor& x) { return x; }
};
TORCH_MODULE(Bad);

TEST(EBOPs, TotalRejectsNonScalar) {
  torch::nn::Sequential model(Bad{});
  try {
    total_ebops(*model);
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("module '0'"), std::string::npos) << e.what();
  }
}

TEST(Regularizer, ConstantAndRamps) {
  auto c = EBOPsRegularizer::constant(2e-6);
  EXPECT_EQ(c.beta(0), 2e-6);
  EXPECT_EQ(c.beta(100000), 2e-6);

  auto lin = EBOPsRegularizer::ramp(1e-6, 3e-6, 100, 300, /*log=*/false);
  EXPECT_DOUBLE_EQ(lin.beta(0), 1e-6);
  EXPECT_DOUBLE_EQ(lin.beta(100), 1e-6);
  EXPECT_DOUBLE_EQ(lin.beta(200), 2e-6);
  EXPECT_DOUBLE_EQ(lin.beta(250), 2.5e-6);
  EXPECT_DOUBLE_EQ(lin.beta(300), 3e-6);
  EXPECT_DOUBLE_EQ(lin.beta(10000), 3e-6);

  // HGQ's log ramp: 1e-6 -> 1e-2 over 4 decades, one decade per 100 steps.
  auto lg = EBOPsRegularizer::ramp(1e-6, 1e-2, 0, 400, /*log=*/true);
  for (int k = 0; k <= 4; ++k) EXPECT_NEAR(lg.beta(100 * k) / std::pow(10.0, k - 6), 1.0, 1e-12);
  EXPECT_NEAR(lg.beta(50) / std::sqrt(1e-6 * 1e-5), 1.0, 1e-12);  // geometric mean
  EXPECT_EQ(lg.to_string(), "ramp(log, 1e-06@0 -> 0.01@400)");

  // HGQ-demos' jet recipe: 5e-7 to step 5000, then log from 1e-6 to 2e-3 (knots just after).
  auto pw = EBOPsRegularizer::piecewise({{5000, 5e-7}, {5001, 1e-6}, {20000, 2e-3}}, true);
  EXPECT_EQ(pw.beta(10), 5e-7);
  EXPECT_DOUBLE_EQ(pw.beta(5001), 1e-6);
  EXPECT_DOUBLE_EQ(pw.beta(20000), 2e-3);
  EXPECT_GT(pw.beta(12000), 1e-6);
  EXPECT_LT(pw.beta(12000), 2e-3);
}

TEST(Regularizer, PenaltyIsBetaTimesEbopsWithGradient) {
  Toy toy(3, 2.0);
  auto reg = EBOPsRegularizer::ramp(0.0, 1.0, 0, 10, false);
  auto p = reg.penalty(*toy, 5);
  EXPECT_NEAR(p.item<double>(), 0.5 * 48.0, 1e-4);
  p.backward();
  EXPECT_TRUE(torch::allclose(toy->raw.grad(), 0.5 * 8 * torch::sigmoid(toy->raw.detach())));
  // A tensor of any shape for the schedules; differentiable.
  auto x = torch::ones({2, 2}, torch::requires_grad());
  auto q = reg.penalty(x, 10);
  EXPECT_TRUE(torch::equal(q.detach(), torch::ones({2, 2})));
}

// The controller on the toy problem: loss = sum(k / b) + beta * 8 sum(b) has its minimum at
// b = sqrt(k / (8 beta)); the controller finds the beta at which the EBOPs meet the budget.
TEST(Regularizer, ControllerConvergesToBudget) {
  torch::manual_seed(0);
  const int64_t n = 16;
  Toy toy(n, 2.0);
  const double target = 8.0 * n * 4.0;  // 4 bits per input on average
  auto reg = EBOPsRegularizer::controller(target, 1e-4, 0.05, 1e-8, 10.0);
  torch::optim::Adam opt(toy->parameters(), torch::optim::AdamOptions(0.05));
  const auto k = torch::linspace(1.0, 4.0, n);
  double e = 0;
  for (int64_t step = 0; step < 3000; ++step) {
    opt.zero_grad();
    auto loss = (k / toy->widths()).sum() + reg.penalty(*toy, step);
    loss.backward();
    opt.step();
    e = toy->ebops().item<double>();
  }
  EXPECT_NEAR(e / target, 1.0, 0.03) << reg.to_string();
  // At equilibrium beta = sum(sqrt(k))^2 / (8 * (target / 8)^2) (from b_i = sqrt(k_i / (8 beta))).
  const double beta_eq = std::pow(torch::sqrt(k).sum().item<double>(), 2) * 8.0 / (target * target);
  EXPECT_NEAR(reg.beta(0) / beta_eq, 1.0, 0.1) << reg.to_string();
}

TEST(Regularizer, ControllerUpdateRuleAndState) {
  auto reg = EBOPsRegularizer::controller(100.0, 1e-3, 0.5, 1e-6, 1e-1, /*interval=*/2);
  // The penalty uses the current beta, then the update happens.
  auto p = reg.penalty(torch::tensor(200.0), 0);
  EXPECT_NEAR(p.item<double>(), 0.2, 1e-7);
  EXPECT_NEAR(reg.beta(0), 1e-3 * std::exp(0.5), 1e-15);
  // The same step, and the next one (interval 2): no update.
  reg.observe(1000.0, 0);
  reg.observe(1000.0, 1);
  EXPECT_NEAR(reg.beta(0), 1e-3 * std::exp(0.5), 1e-15);
  // Step 2: EBOPs 50 -> factor exp(0.5 * -0.5).
  EXPECT_NEAR(reg.observe(50.0, 2), 1e-3 * std::exp(0.5), 1e-15);
  EXPECT_NEAR(reg.beta(0), 1e-3 * std::exp(0.25), 1e-15);
  // The exponent is clipped at max_log_step (1): a huge EBOPs moves beta by e at most,
  // and beta stays in [beta_min, beta_max].
  reg.observe(1e12, 4);
  EXPECT_NEAR(reg.beta(0), 1e-3 * std::exp(1.25), 1e-15);
  for (int64_t s = 6; s < 40; s += 2) reg.observe(1e12, s);
  EXPECT_EQ(reg.beta(0), 1e-1);
  for (int64_t s = 40; s < 200; s += 2) reg.observe(0.0, s);
  EXPECT_EQ(reg.beta(0), 1e-6);

  // Save and restore: a fresh controller continues where the saved one stopped.
  reg.observe(300.0, 200);
  const auto state = reg.state_dict();
  EXPECT_EQ(state.at("last_step"), 200);
  EXPECT_EQ(state.at("last_ebops"), 300);
  auto fresh = EBOPsRegularizer::controller(100.0, 1e-3, 0.5, 1e-6, 1e-1, 2);
  fresh.load_state_dict(state);
  EXPECT_EQ(fresh.beta(0), reg.beta(0));
  EXPECT_EQ(fresh.observe(80.0, 201), reg.observe(80.0, 201));  // no update (interval)
  EXPECT_EQ(fresh.observe(80.0, 202), reg.observe(80.0, 202));
  EXPECT_EQ(fresh.beta(0), reg.beta(0));
  EXPECT_EQ(fresh.state_dict(), reg.state_dict());
}

template <typename F>
void expect_error(F f, const std::string& needle) {
  try {
    f();
    FAIL() << "no error; expected one naming " << needle;
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(Regularizer, Errors) {
  expect_error([] { EBOPsRegularizer::constant(-1.0); }, "`beta`");
  expect_error([] { EBOPsRegularizer::constant(NAN); }, "`beta`");
  expect_error([] { EBOPsRegularizer::ramp(1e-6, 1e-3, 10, 10); }, "`end_step`");
  expect_error([] { EBOPsRegularizer::ramp(0.0, 1e-3, 0, 10, true); }, "logarithmic");
  expect_error([] { EBOPsRegularizer::piecewise({}); }, "no knot");
  expect_error([] { EBOPsRegularizer::piecewise({{5, 1.0}, {5, 2.0}}); }, "increase");
  expect_error([] { EBOPsRegularizer::controller(0.0, 1e-3); }, "`target`");
  expect_error([] { EBOPsRegularizer::controller(10.0, 1e-3, -1.0); }, "`gain`");
  expect_error([] { EBOPsRegularizer::controller(10.0, 2.0, 0.1, 1e-6, 1.0); }, "`beta0`");
  expect_error([] { EBOPsRegularizer::controller(10.0, 1e-3, 0.1, 1e-2, 1e-3); }, "`beta_max`");
  expect_error([] { EBOPsRegularizer::controller(10.0, 1e-3, 0.1, 1e-6, 1.0, 0); }, "`interval`");
  auto reg = EBOPsRegularizer::controller(10.0, 1e-3);
  expect_error([&] { reg.penalty(torch::ones({2}), 0); }, "one EBOPs value");
  expect_error([&] { reg.penalty(torch::tensor(-1.0), 0); }, ">= 0");
  expect_error([&] { reg.penalty(torch::tensor(NAN), 0); }, "finite");
  expect_error([&] { reg.penalty(torch::tensor(1.0), -1); }, "`step`");
  expect_error([&] { reg.penalty(torch::tensor(3), 0); }, "floating-point");
  expect_error([&] { reg.penalty(at::Tensor(), 0); }, "undefined");
  expect_error([&] { reg.load_state_dict({{"beta", 1e-3}}); }, "missing key");
  expect_error([&] { reg.load_state_dict({{"beta", 5.0}, {"last_step", 0}, {"last_ebops", 0}}); },
               "'beta'");
  expect_error(
      [&] { reg.load_state_dict({{"beta", 1e-3}, {"last_step", 0}, {"last_ebops", 0}, {"x", 1}}); },
      "unknown key 'x'");
  // A failed load changes nothing.
  EXPECT_EQ(reg.beta(0), 1e-3);
  EXPECT_EQ(reg.state_dict().at("last_step"), -1);
}

}  // namespace
