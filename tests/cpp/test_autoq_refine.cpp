// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
// Search, then refine (heteroq/autoq/refine.h): AutoQ's Pareto trials refined with learned
// precision under an EBOPs regularizer; the same checks as tests/python/test_autoq_refine.py.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <set>

#include "heteroq/autoq/refine.h"
#include "heteroq/cost/hardware.h"
#include "heteroq/errors.h"
#include "heteroq/nn/ebops.h"
#include "heteroq/nn/hgq.h"

namespace aq = heteroq::autoq;
using heteroq::InvalidArgument;

namespace {

constexpr const char* kConfig =
    R"J({"kernel": {"quantized_bits(3,0,1,alpha=1)": 3, "quantized_bits(6,0,1,alpha=1)": 6},
    "bias": {"quantized_bits(8,3,1,alpha=1)": 8},
    "activation": {"quantized_relu(3,1)": 3, "quantized_relu(6,2)": 6}})J";

struct Data {
  aq::Batches train, val;
};

Data toy_data() {
  auto g = at::make_generator<at::CPUGeneratorImpl>(0);
  const auto x = at::randn({256, 6}, g);
  const auto y = (x.select(1, 0) > 0).to(torch::kLong) + (x.select(1, 1) > 0.5).to(torch::kLong);
  Data d;
  for (int64_t i = 0; i < 256; i += 64) d.train.emplace_back(x.slice(0, i, i + 64), y.slice(0, i, i + 64));
  d.val.emplace_back(x, y);
  return d;
}

aq::OptimizerFactory adam(double lr) {
  return [lr](std::vector<torch::Tensor> p) -> std::unique_ptr<torch::optim::Optimizer> {
    return std::make_unique<torch::optim::Adam>(std::move(p), torch::optim::AdamOptions(lr));
  };
}

aq::LossFn ce() {
  return [](const torch::Tensor& out, const torch::Tensor& y) {
    return torch::nn::functional::cross_entropy(out, y);
  };
}

std::unique_ptr<aq::ModelSearch> fitted_search(const std::string& keep) {
  torch::manual_seed(0);
  torch::nn::Sequential model(torch::nn::Linear(6, 12), torch::nn::ReLU(), torch::nn::Linear(12, 3));
  aq::ModelSearchOptions o;
  o.space.limit = R"J({"Dense": [8, 8, 8], "Activation": [6]})J";
  o.space.quantization_config = kConfig;
  o.search.max_trials = 4;
  o.search.epochs = 2;
  o.search.seed = 3;
  o.keep_models = keep;
  auto s = std::make_unique<aq::ModelSearch>(model, R"J({"type": "bits"})J", std::vector<int64_t>{1, 6}, o);
  const Data d = toy_data();
  s->run(aq::make_trainer(d.train, d.val, ce(), adam(1e-2)));
  return s;
}

aq::Refiner refiner(heteroq::nn::EBOPsRegularizer reg, int64_t epochs, double lr) {
  const Data d = toy_data();
  return aq::make_refiner(d.train, d.val, ce(), std::move(reg), epochs, {1, 6}, adam(lr));
}

}  // namespace

TEST(AutoQRefine, PointsFrontsAndCosts) {
  auto s = fitted_search("pareto");
  const auto front = s->search().pareto();
  const auto points =
      aq::refine(*s, refiner(heteroq::nn::EBOPsRegularizer::constant(1e-4), 3, 1e-2), {1, 6});
  std::multiset<int64_t> autoq_trials, front_trials, refined_trials;
  for (const auto& t : front) front_trials.insert(t.number);
  const Data d = toy_data();
  for (auto p : points) {  // a copy: eval() is not const
    if (p.stage == "autoq") {
      autoq_trials.insert(p.trial);
      EXPECT_EQ(p.epoch, 0);
    } else {
      ASSERT_EQ(p.stage, "refine");
      refined_trials.insert(p.trial);
      // only fixed quantizers: no H layer is left
      for (const auto& m : p.model->modules())
        EXPECT_EQ(m->as<heteroq::nn::HDenseImpl>(), nullptr);
    }
    // each point's EBOPs are the cost model's of its model, its metric the model's accuracy
    torch::NoGradGuard ng;
    EXPECT_EQ(p.ebops, heteroq::cost::bops(p.model, {1, 6}).ebops);
    p.model->eval();
    const auto& [x, y] = d.val[0];
    EXPECT_NEAR(p.model->forward(x).argmax(-1).eq(y).to(torch::kDouble).mean().item<double>(),
                p.metric, 1e-12);
  }
  EXPECT_EQ(autoq_trials, front_trials);
  EXPECT_EQ(refined_trials.size(), 3 * front.size());
  for (int64_t i : aq::front_of(points))
    for (const auto& q : points)
      EXPECT_FALSE(q.metric >= points[i].metric && q.ebops <= points[i].ebops &&
                   (q.metric > points[i].metric || q.ebops < points[i].ebops));
}

TEST(AutoQRefine, PenaltyLowersEbops) {
  auto s = fitted_search("pareto");
  const int64_t best = s->search().best()->number;
  // Adam moves a bit width by about lr per step: 6 epochs of 4 batches at lr 0.1
  const auto free = aq::refine(*s, refiner(heteroq::nn::EBOPsRegularizer::constant(0.0), 6, 0.1),
                               {1, 6}, {best});
  const auto tight = aq::refine(*s, refiner(heteroq::nn::EBOPsRegularizer::constant(3e-2), 6, 0.1),
                                {1, 6}, {best});
  EXPECT_LT(tight.back().ebops, free.back().ebops);
  EXPECT_DOUBLE_EQ(tight.back().beta, 3e-2);
}

TEST(AutoQRefine, EachModelStartsFromTheRegularizerAsGiven) {
  // A controller changes its beta while training; refining the same trial twice with one refiner
  // must give the same checkpoints (the second model does not inherit the first one's beta).
  auto s = fitted_search("pareto");
  const int64_t best = s->search().best()->number;
  const auto reg = heteroq::nn::EBOPsRegularizer::controller(1.0, 1e-4, 0.5);
  const auto points = aq::refine(*s, refiner(reg, 2, 1e-2), {1, 6}, {best, best});
  ASSERT_EQ(points.size(), 6u);
  EXPECT_NE(points[2].beta, 1e-4);  // the controller moved
  for (size_t i = 1; i < 3; ++i) {
    EXPECT_EQ(points[i].beta, points[i + 3].beta) << i;
    EXPECT_EQ(points[i].ebops, points[i + 3].ebops) << i;
    EXPECT_EQ(points[i].metric, points[i + 3].metric) << i;
  }
}

TEST(AutoQRefine, RegularizerPerModel) {
  // a budget of half each model's starting EBOPs, made for each model from the model
  auto s = fitted_search("pareto");
  const auto front = s->search().pareto();
  std::vector<double> targets;
  aq::RegularizerFactory half = [&targets](torch::nn::Sequential& hmodel) {
    bool has_h = false;
    for (const auto& m : hmodel->modules()) has_h |= m->as<heteroq::nn::HDenseImpl>() != nullptr;
    EXPECT_TRUE(has_h) << "the factory gets the H model";
    targets.push_back(0.5 * heteroq::nn::total_ebops(*hmodel).item<double>());
    return heteroq::nn::EBOPsRegularizer::controller(targets.back(), 1e-3, 0.5);
  };
  const Data d = toy_data();
  const auto points =
      aq::refine(*s, aq::make_refiner(d.train, d.val, ce(), half, 6, {1, 6}, adam(0.1)), {1, 6});
  ASSERT_EQ(targets.size(), front.size());
  // every model ends cheaper than it started under its budget's pressure
  double start = 0;
  for (const auto& p : points) {
    if (p.stage == "autoq") start = p.ebops;
    if (p.stage == "refine" && p.epoch == 6) EXPECT_LT(p.ebops, start) << "trial " << p.trial;
  }
  aq::RegularizerFactory empty;
  EXPECT_THROW(aq::make_refiner(d.train, d.val, ce(), empty, 1, {1, 6}), InvalidArgument);
}

TEST(AutoQRefine, WidthLearningRate) {
  // at a weight-sized learning rate the widths barely move in 2 epochs; their own Adam at 0.1
  // moves them under the same penalty
  auto s = fitted_search("pareto");
  const int64_t best = s->search().best()->number;
  const Data d = toy_data();
  const auto reg = heteroq::nn::EBOPsRegularizer::constant(3e-2);
  const auto slow = aq::refine(
      *s, aq::make_refiner(d.train, d.val, ce(), reg, 2, {1, 6}, adam(1e-3)), {1, 6}, {best});
  const auto fast = aq::refine(
      *s, aq::make_refiner(d.train, d.val, ce(), reg, 2, {1, 6}, adam(1e-3), 1, 0.1), {1, 6}, {best});
  EXPECT_LT(fast.back().ebops, slow.back().ebops);
  EXPECT_THROW(aq::make_refiner(d.train, d.val, ce(), reg, 2, {1, 6}, adam(1e-3), 1, -1.0),
               InvalidArgument);
}

TEST(AutoQRefine, Errors) {
  auto s = fitted_search("best");
  const auto reg = heteroq::nn::EBOPsRegularizer::constant(1e-4);
  EXPECT_THROW(aq::refine(*s, refiner(reg, 1, 1e-2), {1, 6}, {999}), InvalidArgument);
  EXPECT_THROW(aq::refine(*s, refiner(reg, 1, 1e-2), {}, {}), InvalidArgument);
  for (const auto& t : s->search().pareto())
    if (t.number != s->search().best()->number) {
      try {
        aq::refine(*s, refiner(reg, 1, 1e-2), {1, 6}, {t.number});
        ADD_FAILURE() << "no error for a trial whose model is not kept";
      } catch (const InvalidArgument& e) {
        EXPECT_NE(std::string(e.what()).find("not in this process"), std::string::npos) << e.what();
      }
    }
  const Data d = toy_data();
  EXPECT_THROW(aq::make_refiner(d.train, d.val, ce(), reg, 0, {1, 6}), InvalidArgument);
  EXPECT_THROW(aq::make_refiner({}, d.val, ce(), reg, 1, {1, 6}), InvalidArgument);
  EXPECT_THROW(aq::make_refiner(d.train, d.val, ce(), reg, 1, {}), InvalidArgument);
  aq::ModelSearchOptions o;
  o.keep_models = "some";
  torch::nn::Sequential m(torch::nn::Linear(2, 2));
  aq::ModelSearch bad(m, R"J({"type": "bits"})J", std::vector<int64_t>{1, 2}, o);
  EXPECT_THROW(bad.run(aq::make_trainer(d.train, d.val, ce())), InvalidArgument);
}
