// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
// Tests of the AutoQ search engine core: forgiving factor, search space, storage, strategies.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>

#include "heteroq/autoq/goal.h"
#include "heteroq/autoq/search.h"
#include "heteroq/autoq/space.h"
#include "heteroq/autoq/study.h"
#include "heteroq/errors.h"

namespace aq = heteroq::autoq;
using heteroq::InvalidArgument;

namespace {

std::vector<aq::LayerDesc> mlp() {
  return {{"fc1", "Dense", "", true, 64}, {"relu1", "Activation", "relu", false, 0},
          {"fc2", "Dense", "", true, 32}, {"relu2", "Activation", "relu", false, 0},
          {"fc3", "Dense", "", true, 5},  {"softmax", "Activation", "softmax", false, 0}};
}

std::string tmp_path(const std::string& name) {
  std::string p = ::testing::TempDir() + "autoq_" + std::to_string(::getpid()) + "_" + name;
  std::remove(p.c_str());
  std::remove((p + "-wal").c_str());
  std::remove((p + "-shm").c_str());
  return p;
}

// Bits of the decoded trial: the sum of its slots' bits (a synthetic cost).
double bits_sum(const aq::TrialConfig& c) {
  double s = 0;
  for (const auto& [k, v] : c.bits) s += v;
  return s;
}

}  // namespace

// ---- forgiving factor, computed by hand --------------------------------------------------------
TEST(AutoQGoal, ForgivingFactorByHand) {
  aq::ForgivingFactor f;  // delta_p = delta_n = 8, rate 2, stress 1
  // 4x smaller: log2(4) = 2 halvings, +8% each: 0.9 * 1.16
  EXPECT_NEAR(f.delta(1000.0, 250.0), 0.16, 1e-15);
  EXPECT_NEAR(f.score(0.9, 1000.0, 250.0), 1.044, 1e-15);
  // 2x bigger: -8%
  EXPECT_NEAR(f.score(0.9, 1000.0, 2000.0), 0.828, 1e-15);
  EXPECT_EQ(f.delta(1000.0, 1000.0), 0.0);
  // delta_p = 10, delta_n = 5, rate 4: 8x smaller is log4(8) = 1.5 steps of +10%
  aq::ForgivingFactor g{10.0, 5.0, 4.0, 1.0};
  EXPECT_NEAR(g.score(0.5, 800.0, 100.0), 0.5 * 1.15, 1e-15);
  // 16x bigger: -2 steps of 5%
  EXPECT_NEAR(g.score(0.5, 100.0, 1600.0), 0.5 * 0.90, 1e-15);
  // stress 0.5: the reference becomes 500, so a trial of 1000 is 2x bigger (delta_n applies)
  aq::ForgivingFactor h{8.0, 3.0, 2.0, 0.5};
  EXPECT_NEAR(h.delta(1000.0, 1000.0), -0.03, 1e-15);
  EXPECT_NEAR(h.delta(1000.0, 125.0), 0.16, 1e-15);  // 125 vs 500: 2 halvings, delta_p
  // non-integer steps: ln(1000/300)/ln(2) * 0.08
  EXPECT_NEAR(f.delta(1000.0, 300.0), 0.08 * std::log(1000.0 / 300.0) / std::log(2.0), 1e-15);
  EXPECT_THROW(f.delta(0.0, 1.0), InvalidArgument);
  EXPECT_THROW(f.delta(1.0, -1.0), InvalidArgument);
  EXPECT_THROW((aq::ForgivingFactor{8, 8, 1.0, 1}.validate()), InvalidArgument);
  EXPECT_THROW((aq::ForgivingFactor{8, 8, 2, 0}.validate()), InvalidArgument);
}

TEST(AutoQGoal, ParseGoal) {
  const auto g = aq::parse_goal(
      R"J({"type": "energy", "params": {"delta_p": 4.0, "delta_n": 6.0, "rate": 3.0, "stress": 0.8,
          "process": "horowitz", "parameters_on_memory": ["sram", "sram"]}})J");
  EXPECT_EQ(g.type, "energy");
  EXPECT_EQ(g.factor.delta_p, 4.0);
  EXPECT_EQ(g.factor.delta_n, 6.0);
  EXPECT_EQ(g.factor.rate, 3.0);
  EXPECT_EQ(g.factor.stress, 0.8);
  const auto opts = nlohmann::json::parse(g.options);
  EXPECT_EQ(opts["process"], "horowitz");
  EXPECT_FALSE(opts.contains("delta_p"));
  EXPECT_EQ(aq::parse_goal("").type, "bits");
  EXPECT_THROW(aq::parse_goal("{\"params\": {}}"), InvalidArgument);
  EXPECT_THROW(aq::parse_goal("{\"type\": \"bits\", \"params\": {\"rate\": \"x\"}}"),
               InvalidArgument);
  EXPECT_THROW(aq::parse_goal("{\"type\": \"bits\", \"params\": {\"rate\": 1}}"), InvalidArgument);
  EXPECT_THROW(aq::parse_goal("{not json"), InvalidArgument);
}

TEST(AutoQGoal, ParetoFront) {
  //            0    1    2    3    4     5
  std::vector<double> m = {0.9, 0.8, 0.85, 0.7, 0.9, std::nan("")};
  std::vector<double> c = {100, 50, 120, 40, 90, 1};
  // 4 dominates 0 (same metric, lower cost) and 2; front: 3 (40), 1 (50), 4 (90)
  EXPECT_EQ(aq::pareto_front(m, c), (std::vector<int64_t>{3, 1, 4}));
  const auto r = aq::pareto_ranks(m, c);
  EXPECT_EQ(r[4], 0);
  EXPECT_EQ(r[0], 1);
  EXPECT_EQ(r[2], 2);
  EXPECT_EQ(r[5], 3);
  EXPECT_THROW(aq::pareto_front({1.0}, {}), InvalidArgument);
}

// ---- search space -------------------------------------------------------------------------------
TEST(AutoQSpace, DefaultConfigAndLimit) {
  aq::SpaceOptions o;
  o.limit = R"J({"Dense": [4, 8, 4], "Activation": [4]})J";
  const auto s = aq::SearchSpace::build(mlp(), o);
  // fc1 kernel (<= 4 bits: 7 of 8), bias (3), relu1 activation (<= 4: 6), ... softmax never
  ASSERT_EQ(s.params().size(), 3u * 2 + 2);
  EXPECT_EQ(s.params()[0].name, "fc1_kernel_quantizer");
  EXPECT_EQ(s.params()[0].choices.size(), 7u);
  EXPECT_EQ(s.params()[1].name, "fc1_bias_quantizer");
  EXPECT_EQ(s.params()[1].choices.size(), 3u);
  EXPECT_EQ(s.params()[2].name, "relu1_activation_quantizer");
  EXPECT_EQ(s.params()[2].choices,
            (std::vector<std::string>{"binary", "binary(alpha='auto_po2')", "ternary",
                                      "quantized_relu(3,1)", "quantized_relu(4,2)",
                                      "quantized_relu_po2(4,4)"}));
  std::vector<int64_t> c(s.params().size(), 0);
  c[0] = 5;  // quantized_bits(4,0,1)
  const auto t = s.decode(c);
  const auto q = nlohmann::json::parse(t.quantizer_config);
  EXPECT_EQ(q["fc1"]["kernel_quantizer"], "quantized_bits(4,0,1)");
  EXPECT_EQ(q["fc1"]["bias_quantizer"], "quantized_bits(4,0,1)");
  EXPECT_EQ(q["relu1"], "binary");
  EXPECT_FALSE(q.contains("softmax"));
  EXPECT_EQ(t.bits.at("fc1/kernel"), 4.0);
  EXPECT_EQ(t.bits.at("relu1/activation"), 1.0);
  // round trip of the params
  EXPECT_EQ(s.choice_from_json(s.params_json(c)), c);
}

TEST(AutoQSpace, PaddingRegexGroupsAndLists) {
  aq::SpaceOptions o;
  // "fc[12]" groups fc1 and fc2 (one hyperparameter per field); Dense pads [2] with default 8.
  o.limit =
      R"J({"fc[12]": [["quantized_bits(4,0,1)", "ternary"], 4, 4], "Dense": [2], "default": 8})J";
  const auto s = aq::SearchSpace::build(mlp(), o);
  std::map<std::string, aq::Param> by;
  for (const auto& p : s.params()) by[p.name] = p;
  ASSERT_TRUE(by.count("fc[12]_kernel_quantizer"));
  EXPECT_EQ(by["fc[12]_kernel_quantizer"].layers, (std::vector<std::string>{"fc1", "fc2"}));
  EXPECT_EQ(by["fc[12]_kernel_quantizer"].choices,
            (std::vector<std::string>{"quantized_bits(4,0,1)", "ternary"}));
  EXPECT_EQ(by["fc[12]_bias_quantizer"].choices.size(), 2u);  // bias <= 4
  // fc3: Dense [2] padded to [2, 8, 8]
  EXPECT_EQ(by["fc3_kernel_quantizer"].choices.size(), 5u);  // 1, 1, 2, 2, 2 bits
  EXPECT_EQ(by["fc3_bias_quantizer"].choices.size(), 3u);
  EXPECT_FALSE(by.count("relu1_activation_quantizer"));  // no Activation entry: not quantized
  const auto q =
      nlohmann::json::parse(s.decode(std::vector<int64_t>(s.params().size(), 1)).quantizer_config);
  EXPECT_EQ(q["fc1"]["kernel_quantizer"], "ternary");
  EXPECT_EQ(q["fc2"]["kernel_quantizer"], "ternary");
}

TEST(AutoQSpace, TuneFiltersFrozenIndexesFixed) {
  aq::SpaceOptions o;
  o.limit = R"J({"Dense": [8, 8, 8], "Activation": [8]})J";
  o.tune_filters = "layer";
  o.tune_filters_exceptions = "^fc3";
  o.frozen_layers = {"relu2"};
  o.fixed_config = R"J({"relu2": "quantized_relu(6,0)"})J";
  auto s = aq::SearchSpace::build(mlp(), o);
  std::set<std::string> names;
  for (const auto& p : s.params()) names.insert(p.name);
  EXPECT_TRUE(names.count("network_filters_fc1"));
  EXPECT_TRUE(names.count("network_filters_fc2"));
  EXPECT_FALSE(names.count("network_filters_fc3"));
  EXPECT_FALSE(names.count("relu2_activation_quantizer"));
  std::vector<int64_t> c(s.params().size(), 0);
  const auto t = s.decode(c);
  EXPECT_EQ(t.filters.at("fc1"), 0.5);
  EXPECT_EQ(nlohmann::json::parse(t.quantizer_config)["relu2"], "quantized_relu(6,0)");
  o.tune_filters = "block";
  s = aq::SearchSpace::build(mlp(), o);
  int blocks = 0;
  for (const auto& p : s.params()) blocks += p.name == "network_filters";
  EXPECT_EQ(blocks, 1);
  o.tune_filters = "none";
  o.layer_indexes = std::vector<int64_t>{0, 1};
  o.frozen_layers = {};
  o.fixed_config = "";
  s = aq::SearchSpace::build(mlp(), o);
  EXPECT_EQ(s.params().size(), 3u);  // fc1 kernel, bias; relu1
}

TEST(AutoQSpace, BitRanges) {
  aq::BitRanges r;
  r.kernel_min = 2;
  r.kernel_max = 6;
  r.bias_min = r.bias_max = 0;
  r.activation_min = 3;
  r.activation_max = 4;
  const auto s = aq::SearchSpace::from_bit_ranges(mlp(), r);
  ASSERT_EQ(s.params().size(), 5u);  // 3 kernels, 2 activations
  EXPECT_EQ(s.params()[0].choices.front(), "quantized_bits(2,0,1,alpha=1)");
  EXPECT_EQ(s.params()[0].bits.back(), 6.0);
  r.kernel_max = 1;
  EXPECT_THROW(aq::SearchSpace::from_bit_ranges(mlp(), r), InvalidArgument);
}

TEST(AutoQSpace, BadInput) {
  auto expect_error = [](const aq::SpaceOptions& o, const std::string& needle) {
    try {
      aq::SearchSpace::build(mlp(), o);
      FAIL() << "no error for " << needle;
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  aq::SpaceOptions o;
  o.limit = R"J({"Conv2D": [4]})J";  // covers no layer of the MLP
  expect_error(o, "empty search space");
  o.limit = R"J({"Dense": [0, 8, 8]})J";
  expect_error(o, "below every quantizer");
  o.limit = R"J({"Dense": [["quantized_bits(5,0,1)"], 8, 8]})J";
  expect_error(o, "not in quantization_config");
  o.limit = R"J({"Dense": [4, 4, 4]})J";
  o.quantization_config = R"J({"kernel": {"ternary": 2}, "bias": {}})J";
  expect_error(o, "quantization_config leaves empty");
  o.quantization_config = R"J({"kernal": {"ternary": 2}})J";
  expect_error(o, "unknown field");
  o.quantization_config = "";
  o.tune_filters = "all";
  expect_error(o, "tune_filters");
  o.tune_filters = "none";
  o.frozen_layers = {"fc9"};
  expect_error(o, "fc9");
  o.frozen_layers = {};
  o.layer_indexes = std::vector<int64_t>{7};
  expect_error(o, "out of range");
  o.layer_indexes.reset();
  o.fixed_config = R"J({"fc1": {"kernel_quantizer": "binary"}})J";
  expect_error(o, "both searched and fixed");
  o.fixed_config = "";
  o.limit = R"J({"fc(": [4]})J";
  expect_error(o, "not a valid regex");
  o.limit = "[1, 2]";
  expect_error(o, "limit must be a JSON object");
}

// ---- engine, strategies, storage ---------------------------------------------------------------
namespace {

// A toy problem with a known optimum: the metric is 1 minus the distance of each choice to a
// target choice; the cost is constant, so the best score is the target.
aq::SearchSpace toy_space() {
  aq::SpaceOptions o;
  o.limit = R"J({"Dense": [8, 8, 8], "Activation": [8]})J";
  o.quantization_config = R"J({"kernel": {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5},
                               "bias": {"a": 1, "b": 2, "c": 3},
                               "activation": {"a": 1, "b": 2, "c": 3, "d": 4}})J";
  std::vector<aq::LayerDesc> l = {{"fc1", "Dense", "", true, 8},
                                  {"r1", "Activation", "relu", false, 0},
                                  {"fc2", "Dense", "", false, 4}};
  return aq::SearchSpace::build(l, o);
}

aq::TrialOutcome toy(const aq::SearchSpace& s, const aq::TrialContext& ctx) {
  const auto c = s.choice_from_json(ctx.params);
  const std::vector<int64_t> target = {3, 1, 2, 4};
  double d = 0;
  for (size_t i = 0; i < c.size(); ++i) d += std::abs(static_cast<double>(c[i] - target[i]));
  return {1.0 - 0.05 * d, 100.0, "{}"};
}

int64_t trials_to_optimum(const std::string& strategy, uint64_t seed, int64_t budget) {
  aq::SearchOptions o;
  o.strategy = strategy;
  o.seed = seed;
  o.max_trials = budget;
  o.hyperband_max_epochs = 9;
  o.hyperband_iterations = 20;
  o.tpe_startup_trials = 5;
  const auto space = toy_space();
  aq::Search s(space, aq::Goal{}, 100.0, o);
  const auto trials = s.run([&](const aq::TrialContext& c) { return toy(space, c); });
  for (const auto& t : trials)
    if (t.status == "complete" && std::abs(t.metric - 1.0) < 1e-12) return t.number + 1;
  return budget + 1;
}

}  // namespace

TEST(AutoQSearch, FindsKnownOptimumEachStrategy) {
  // 5 * 3 * 4 * 5 = 300 configurations. Stated bounds: random finds the optimum within all 300
  // (no repeats); TPE within 120; Hyperband (which re-evaluates promoted configs) within 400.
  EXPECT_EQ(toy_space().cardinality(), 300.0);
  EXPECT_LE(trials_to_optimum("random", 1, 300), 300);
  EXPECT_LE(trials_to_optimum("bayesian", 1, 120), 120);
  EXPECT_LE(trials_to_optimum("hyperband", 1, 400), 400);
}

TEST(AutoQSearch, BayesianBeatsRandomOnAverage) {
  double tpe = 0, rnd = 0;
  const int seeds = 8;
  for (int s = 0; s < seeds; ++s) {
    tpe += static_cast<double>(trials_to_optimum("bayesian", 100 + s, 300));
    rnd += static_cast<double>(trials_to_optimum("random", 100 + s, 300));
  }
  EXPECT_LT(tpe / seeds, rnd / seeds) << "tpe " << tpe / seeds << " random " << rnd / seeds;
}

TEST(AutoQSearch, SeededAndReproducible) {
  auto params_of = [](uint64_t seed, const std::string& strategy) {
    aq::SearchOptions o;
    o.strategy = strategy;
    o.seed = seed;
    o.max_trials = 15;
    o.tpe_startup_trials = 4;
    const auto space = toy_space();
    aq::Search s(space, aq::Goal{}, 100.0, o);
    std::vector<std::string> p;
    for (const auto& t : s.run([&](const aq::TrialContext& c) { return toy(space, c); }))
      p.push_back(t.params);
    return p;
  };
  for (const char* st : {"random", "bayesian", "hyperband"}) {
    EXPECT_EQ(params_of(3, st), params_of(3, st)) << st;
    EXPECT_NE(params_of(3, st), params_of(4, st)) << st;
  }
}

TEST(AutoQSearch, ScoresFailuresAndNaN) {
  aq::SearchOptions o;
  o.max_trials = 6;
  const auto space = toy_space();
  aq::Search s(space, aq::Goal{}, 100.0, o);
  const auto trials = s.run([&](const aq::TrialContext& c) -> aq::TrialOutcome {
    if (c.number == 1) throw std::runtime_error("diverged");
    if (c.number == 2) return {std::nan(""), 10.0, "{}"};
    if (c.number == 3) return {0.5, -1.0, "{}"};
    return {0.5, 25.0, "{\"note\": 1}"};
  });
  ASSERT_EQ(trials.size(), 6u);
  EXPECT_EQ(trials[1].status, "failed");
  EXPECT_EQ(trials[1].error, "diverged");
  EXPECT_EQ(trials[2].status, "failed");
  EXPECT_NE(trials[2].error.find("metric"), std::string::npos);
  EXPECT_EQ(trials[3].status, "failed");
  EXPECT_NE(trials[3].error.find("cost"), std::string::npos);
  EXPECT_EQ(trials[0].status, "complete");
  EXPECT_NEAR(trials[0].score, 0.5 * (1 + 0.08 * 2), 1e-15);  // 4x below the reference
  EXPECT_EQ(trials[0].user_attrs, "{\"note\": 1}");
  EXPECT_TRUE(s.best().has_value());
  EXPECT_EQ(s.best()->status, "complete");
  EXPECT_GE(trials[0].overhead, 0.0);
  EXPECT_NE(aq::trials_to_csv(trials).find("diverged"), std::string::npos);
  EXPECT_EQ(nlohmann::json::parse(aq::trials_to_json(trials)).size(), 6u);
}

TEST(AutoQSearch, HyperbandPromotesOnMoreEpochs) {
  aq::SearchOptions o;
  o.strategy = "hyperband";
  o.max_trials = 100;
  o.hyperband_max_epochs = 9;
  o.hyperband_eta = 3;
  const auto space = toy_space();
  aq::Search s(space, aq::Goal{}, 100.0, o);
  const auto trials = s.run([&](const aq::TrialContext& c) {
    if (c.parent >= 0) EXPECT_GT(c.epochs, c.parent_epochs);
    return toy(space, c);
  });
  // one iteration: brackets s=2 (9@1, 3@3, 1@9), s=1 (5@3, 1@9), s=0 (3@9): 22 trials
  ASSERT_EQ(trials.size(), 22u);
  std::map<int64_t, int> per_epochs;
  for (const auto& t : trials) per_epochs[t.epochs]++;
  EXPECT_EQ(per_epochs[1], 9);
  EXPECT_EQ(per_epochs[3], 3 + 5);
  EXPECT_EQ(per_epochs[9], 1 + 1 + 3);
  // the rung-1 trials of bracket 0 are the best 3 of rung 0
  std::vector<double> r0;
  for (const auto& t : trials)
    if (t.bracket == 0 && t.rung == 0) r0.push_back(t.score);
  std::sort(r0.rbegin(), r0.rend());
  for (const auto& t : trials)
    if (t.bracket == 0 && t.rung == 1) EXPECT_GE(t.score, r0[2] - 1e-12);
}

TEST(AutoQStorage, SqliteResumeAndMeta) {
  const std::string path = tmp_path("resume.db");
  const auto space = toy_space();
  aq::SearchOptions o;
  o.max_trials = 8;
  o.storage = path;
  o.seed = 5;
  std::vector<std::string> first;
  {
    aq::Search s(space, aq::Goal{}, 100.0, o);
    // stop in the middle of trial 3: it is requeued, not recorded
    EXPECT_THROW(s.run([&](const aq::TrialContext& c) {
      if (c.number == 3) throw aq::StopSearch("stop");
      return toy(space, c);
    }),
                 aq::StopSearch);
    const auto t = s.trials();
    ASSERT_EQ(t.size(), 4u);
    EXPECT_EQ(t[3].status, "pending");
  }
  {
    aq::Search s(space, aq::Goal{}, 100.0, o);
    const auto t = s.run([&](const aq::TrialContext& c) { return toy(space, c); });
    ASSERT_EQ(t.size(), 8u);
    std::set<std::string> p;
    for (const auto& x : t) {
      EXPECT_EQ(x.status, "complete");
      p.insert(x.params);
    }
    EXPECT_EQ(p.size(), 8u);
    EXPECT_EQ(t[3].attempts, 2);
  }
  // same seed in memory: the same trials (resume changed nothing)
  {
    aq::SearchOptions m = o;
    m.storage = "";
    aq::Search s(space, aq::Goal{}, 100.0, m);
    const auto a = s.run([&](const aq::TrialContext& c) { return toy(space, c); });
    aq::Search r(space, aq::Goal{}, 100.0, o);
    const auto b = r.trials();
    for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].params, b[i].params);
  }
  // a different goal: refused unless overwrite
  aq::Goal other;
  other.factor.delta_p = 3.0;
  EXPECT_THROW(aq::Search(space, other, 100.0, o), InvalidArgument);
  o.overwrite = true;
  aq::Search fresh(space, other, 100.0, o);
  EXPECT_EQ(fresh.trials().size(), 0u);
}

TEST(AutoQStorage, CorruptedFile) {
  const std::string path = tmp_path("corrupt.db");
  {
    std::ofstream f(path, std::ios::binary);
    f << std::string(4096, 'x');
  }
  try {
    aq::sqlite_storage(path);
    FAIL() << "no error";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(AutoQSearch, BadOptions) {
  const auto space = toy_space();
  aq::SearchOptions o;
  o.strategy = "grid";
  EXPECT_THROW(aq::Search(space, aq::Goal{}, 1.0, o), InvalidArgument);
  o.strategy = "random";
  EXPECT_THROW(aq::Search(space, aq::Goal{}, 0.0, o), InvalidArgument);
  o.max_trials = 0;
  EXPECT_THROW(aq::Search(space, aq::Goal{}, 1.0, o), InvalidArgument);
  EXPECT_NE(aq::progress_line(3, 10, 0.5, 30).find("ETA 0:01:10"), std::string::npos);
}

// ---- ModelSearch: the C++ API over a Sequential -------------------------------------------------
#include <torch/torch.h>

#include "heteroq/autoq/model.h"
#include "heteroq/cost/qstats.h"

namespace {

torch::nn::Sequential tiny_mlp() {
  torch::manual_seed(0);
  return torch::nn::Sequential(torch::nn::Linear(6, 12), torch::nn::ReLU(),
                               torch::nn::Linear(12, 3));
}

// The weight bits of a model (QKeras's print_qstats "Total Bits"), float weights as 32 bits.
double weight_bits(const torch::nn::Sequential& m, bool) {
  return static_cast<double>(heteroq::cost::qstats(m, {1, 6}).total_bits);
}

}  // namespace

TEST(AutoQModel, DescribeAndScaleWidths) {
  const auto layers = aq::describe_sequential(tiny_mlp());
  ASSERT_EQ(layers.size(), 3u);
  EXPECT_EQ(layers[0].kind, "Dense");
  EXPECT_EQ(layers[0].width, 12);
  EXPECT_TRUE(layers[0].has_bias);
  EXPECT_EQ(layers[1].kind, "Activation");
  EXPECT_EQ(layers[1].activation, "relu");
  auto m = aq::scale_widths(tiny_mlp(), {{"0", 0.5}});
  EXPECT_EQ(m[0]->as<torch::nn::Linear>()->options.out_features(), 6);
  EXPECT_EQ(m[2]->as<torch::nn::Linear>()->options.in_features(), 6);
  EXPECT_EQ(m->forward(torch::randn({2, 6})).sizes(), (std::vector<int64_t>{2, 3}));
  EXPECT_THROW(aq::scale_widths(tiny_mlp(), {{"7", 0.5}}), InvalidArgument);
}

TEST(AutoQModel, SearchTrainsBuildsAndSaves) {
  torch::manual_seed(1);
  const auto x = torch::randn({64, 6});
  const auto y = (x.select(1, 0) > 0).to(torch::kLong);
  aq::ModelSearchOptions o;
  o.space.limit = R"J({"Dense": [8, 8, 8], "Activation": [8]})J";
  // (the default config's stochastic_ternary needs qkeras_compatible's implicit alpha to train)
  o.space.quantization_config =
      R"J({"kernel": {"quantized_bits(4,0,1)": 4, "quantized_bits(6,0,1)": 6,
      "quantized_po2(4,1)": 4}, "bias": {"quantized_bits(8,3,1)": 8}, "activation": {"quantized_relu(4,2)": 4,
      "quantized_relu(8,2)": 8}})J";
  o.search.strategy = "bayesian";
  o.search.max_trials = 4;
  o.search.tpe_startup_trials = 2;
  o.search.epochs = 2;
  aq::ModelSearch s(tiny_mlp(), aq::Goal{}, weight_bits, o);
  int calls = 0;
  const auto trials =
      s.run([&](torch::nn::Sequential& m, int64_t epochs, const aq::TrialContext& t) {
        ++calls;
        EXPECT_EQ(epochs, 2);
        torch::optim::Adam opt(m->parameters(), torch::optim::AdamOptions(1e-2));
        for (int64_t e = 0; e < epochs; ++e) {
          opt.zero_grad();
          auto loss = torch::nn::functional::cross_entropy(m->forward(x), y);
          loss.backward();
          opt.step();
        }
        torch::NoGradGuard ng;
        return m->forward(x).argmax(1).eq(y).to(torch::kDouble).mean().item<double>();
      });
  EXPECT_EQ(calls, 4);
  ASSERT_EQ(trials.size(), 4u);
  for (const auto& t : trials) {
    EXPECT_EQ(t.status, "complete") << t.error;
    EXPECT_LT(t.cost, s.search().reference_cost());  // <= 8-bit quantizers vs 32-bit floats
    EXPECT_NEAR(t.score, aq::ForgivingFactor{}.score(t.metric, s.search().reference_cost(), t.cost),
                1e-12);
  }
  auto best = s.best_model();
  ASSERT_TRUE(best.has_value());
  EXPECT_NE(best->ptr()->children()[0]->name().find("Q"), std::string::npos);
  const std::string path = tmp_path("best.safetensors");
  s.save_best(path);
  EXPECT_TRUE(std::ifstream(path).good());
  // a freshly built model of the best trial has the trial's quantizers
  const auto rebuilt = s.build(*s.search().best());
  EXPECT_EQ(rebuilt->size(), 3u);
}

TEST(AutoQModel, NamedGoalsRegistry) {
  try {
    aq::named_cost("latency", {6}, "{}");
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("unknown goal \"latency\""), std::string::npos);
  }
  aq::register_cost(
      "test_bits", [](const std::vector<int64_t>& shape, const std::string&) -> aq::CostFn {
        return [shape](const torch::nn::Sequential& m, bool r) { return weight_bits(m, r); };
      });
  aq::ModelSearchOptions o;
  o.space.limit = R"J({"Dense": [4, 4, 4]})J";
  o.search.max_trials = 2;
  aq::ModelSearch s(tiny_mlp(), R"J({"type": "test_bits", "params": {"delta_p": 4}})J", {6}, o);
  EXPECT_EQ(s.search().goal().factor.delta_p, 4.0);
  s.run([](torch::nn::Sequential&, int64_t, const aq::TrialContext&) { return 0.5; });
  EXPECT_EQ(s.search().trials().size(), 2u);
}

TEST(AutoQSpace, PlanBlocks) {
  // costs: fc1 100, fc2 300, fc3 50 (reference 450)
  const std::map<std::string, double> costs = {{"fc1", 100}, {"fc2", 300}, {"fc3", 50}};
  const std::string limit = R"J({"Dense": [4], "Activation": [4], "relu.*": [3]})J";
  auto plan =
      aq::plan_blocks(mlp(), {"fc1|relu1", "fc2|relu2", "fc3"}, costs, "cost", 45, 450.0, limit);
  ASSERT_EQ(plan.size(), 3u);
  EXPECT_EQ(plan[0].pattern, "fc2|relu2");
  EXPECT_EQ(plan[0].layers, (std::vector<std::string>{"fc2", "relu2"}));
  EXPECT_EQ(plan[0].cost, 300.0);
  EXPECT_EQ(plan[0].max_trials, 30);  // int(max(10, 45 * 300 / 450))
  EXPECT_EQ(plan[2].max_trials, 10);
  // Dense padded from default 8; the relu regex key regrouped to the block's layers
  EXPECT_EQ(nlohmann::json::parse(plan[0].limit),
            nlohmann::json::parse(R"J({"^(fc2)$": [4, 8, 8], "^(relu2)$": [3]})J"));
  plan = aq::plan_blocks(mlp(), {"fc1|relu1", "fc2|relu2"}, costs, "sequential", 45, 450.0, limit);
  EXPECT_EQ(plan[0].pattern, "fc1|relu1");
  EXPECT_THROW(aq::plan_blocks(mlp(), {"conv"}, costs, "cost", 45, 450.0, limit), InvalidArgument);
  EXPECT_THROW(aq::plan_blocks(mlp(), {}, costs, "cost", 45, 450.0, limit), InvalidArgument);
  EXPECT_THROW(aq::plan_blocks(mlp(), {"fc1"}, costs, "random", 45, 450.0, limit), InvalidArgument);
  // the re-keyed limit builds a space of the block's layers only
  aq::SpaceOptions o;
  o.limit = plan[1].limit;
  const auto s = aq::SearchSpace::build(mlp(), o);
  for (const auto& p : s.params())
    for (const auto& l : p.layers) EXPECT_TRUE(l == "fc2" || l == "relu2") << l;
}

#include "heteroq/cost/hardware.h"
#include "heteroq/cost/qtools.h"

TEST(AutoQModel, NamedGoalsUseTheCostModels) {
  const std::string goal =
      R"J({"type": "energy", "params": {"delta_p": 8.0, "delta_n": 8.0, "rate": 2.0,
      "stress": 1.0, "process": "horowitz", "parameters_on_memory": ["sram", "sram"],
      "activations_on_memory": ["sram", "sram"], "rd_wr_on_io": [false, false], "min_sram_size": [0, 0],
      "source_quantizers": ["int8"], "reference_internal": "int8", "reference_accumulator": "int32"}})J";
  aq::ModelSearchOptions o;
  o.space.limit = R"J({"Dense": [8, 8, 8], "Activation": [8]})J";
  o.search.max_trials = 2;
  const auto model = tiny_mlp();
  aq::ModelSearch s(model, goal, {1, 6}, o);
  heteroq::cost::QToolsOptions q;
  q.weights_on_memory = q.activations_on_memory = "sram";
  q.rd_wr_on_io = false;
  q.reference_internal = q.source_quantizer = q.keras_quantizer = "int8";
  q.reference_accumulator = q.keras_accumulator = "int32";
  auto ref = q;
  ref.for_reference = true;
  const double reference = heteroq::cost::energy(model, {1, 6}, ref).total;
  EXPECT_DOUBLE_EQ(s.search().reference_cost(), reference);
  s.run([](torch::nn::Sequential&, int64_t, const aq::TrialContext&) { return 0.8; });
  for (const auto& t : s.search().trials()) {
    if (t.status != "complete") continue;
    const double e = heteroq::cost::energy(s.build(t), {1, 6}, q).total;
    EXPECT_DOUBLE_EQ(t.cost, e);
    EXPECT_DOUBLE_EQ(t.score, aq::ForgivingFactor{}.score(0.8, reference, e));
  }
  // bits, ebops, fpga
  const auto bits = aq::named_cost("bits", {1, 6}, "{}");
  EXPECT_EQ(bits(model, true), heteroq::cost::model_size(model, {1, 6}).reference_total_bits);
  const auto ebops = aq::named_cost("ebops", {1, 6}, "{}");
  EXPECT_EQ(ebops(model, false), heteroq::cost::bops(model, {1, 6}).ebops);
  const auto fpga = aq::named_cost("fpga", {1, 6}, "{}");
  const auto est = heteroq::cost::fpga_estimate(model, {1, 6});
  EXPECT_EQ(fpga(model, false), static_cast<double>(est.lut + est.dsp));
  EXPECT_THROW(aq::named_cost("energy", {1, 6}, R"J({"parameters_in_memory": "sram"})J"),
               InvalidArgument);
  EXPECT_THROW(aq::named_cost("bits", {1, 6}, R"J({"config": {"Dense": ["parameters"]}})J"),
               InvalidArgument);
}

TEST(AutoQSearch, ParetoObjectiveRanksByDomination) {
  aq::SearchOptions o;
  o.strategy = "hyperband";
  o.objective = "pareto";
  o.max_trials = 9 + 3;
  o.seed = 2;
  const auto space = toy_space();
  aq::Search s(space, aq::Goal{}, 100.0, o);
  // metric grows with choice 0, cost with choice 0 and 1: a front of trade-offs
  const auto trials = s.run([&](const aq::TrialContext& c) {
    const auto x = space.choice_from_json(c.params);
    return aq::TrialOutcome{
        0.2 + 0.1 * static_cast<double>(x[0]) + 0.01 * static_cast<double>(x[2]),
        10.0 + 10.0 * static_cast<double>(x[0]) + 3.0 * static_cast<double>(x[1]), "{}"};
  });
  std::vector<double> m, c;
  std::vector<int64_t> numbers;
  for (const auto& t : trials)
    if (t.bracket == 0 && t.rung == 0) {
      m.push_back(t.metric);
      c.push_back(t.cost);
      numbers.push_back(t.number);
    }
  ASSERT_EQ(m.size(), 9u);
  const auto rank = aq::pareto_ranks(m, c);
  std::set<int64_t> promoted;
  for (const auto& t : trials)
    if (t.rung == 1) promoted.insert(t.parent);
  ASSERT_EQ(promoted.size(), 3u);
  int64_t worst_promoted = 0, best_other = 1 << 20;
  for (size_t i = 0; i < numbers.size(); ++i)
    (promoted.count(numbers[i]) ? worst_promoted : best_other) =
        promoted.count(numbers[i]) ? std::max(worst_promoted, rank[i])
                                   : std::min(best_other, rank[i]);
  EXPECT_LE(worst_promoted, best_other);
  // the front the engine reports is non-dominated
  const auto front = s.pareto();
  for (const auto& a : front)
    for (const auto& b : trials)
      if (b.status == "complete")
        EXPECT_FALSE(b.metric >= a.metric && b.cost <= a.cost &&
                     (b.metric > a.metric || b.cost < a.cost));
}

// Driven by tests/python/test_autoq.py::test_cpp_resumes_a_python_study (skipped otherwise): the
// C++ engine continues a study the Python API started, with the same trial function.
TEST(AutoQCross, ResumesAPythonStudy) {
  const char* path = std::getenv("HETEROQ_AUTOQ_STUDY");
  const char* reference = std::getenv("HETEROQ_AUTOQ_REFERENCE");
  if (!path || !reference) GTEST_SKIP() << "run by tests/python/test_autoq.py";
  aq::SpaceOptions so;
  so.limit = R"J({"Dense": [8, 8, 8], "Activation": [8]})J";
  so.quantization_config = R"J({"kernel": {"quantized_bits(4,0,1)": 4, "quantized_bits(6,0,1)": 6,
      "quantized_po2(4,1)": 4}, "bias": {"quantized_bits(8,3,1)": 8}, "activation": {"quantized_relu(4,2)": 4,
      "quantized_relu(8,2)": 8}})J";
  const auto space = aq::SearchSpace::build(aq::describe_sequential(tiny_mlp()), so);
  aq::Goal goal;
  goal.type = "custom";
  goal.options = "{}";
  aq::SearchOptions o;
  o.strategy = "bayesian";
  o.seed = 11;
  o.max_trials = 6;
  o.tpe_startup_trials = 2;
  o.storage = path;
  aq::Search s(space, goal, std::stod(reference), o);
  s.run([&](const aq::TrialContext& c) {
    // the Python test's metric (a function of the params text) and model_bits cost
    int64_t sum = 0;
    for (unsigned char ch : c.params) sum += ch;
    const auto& b = c.config.bits;
    const double bits =
        b.at("0/kernel") * 72 + b.at("0/bias") * 12 + b.at("2/kernel") * 36 + b.at("2/bias") * 3;
    return aq::TrialOutcome{0.3 + 0.001 * static_cast<double>(sum % 97), bits, "{}"};
  });
  EXPECT_EQ(s.trials().size(), 6u);
}

TEST(AutoQModel, SchedulerBlocks) {
  torch::manual_seed(0);
  torch::nn::Sequential model(torch::nn::Linear(6, 40), torch::nn::ReLU(),
                              torch::nn::Linear(40, 12), torch::nn::ReLU(),
                              torch::nn::Linear(12, 3));
  aq::ModelSearchOptions o;
  o.space.limit = R"J({"Dense": [8, 8, 8], "Activation": [8]})J";
  o.search.max_trials = 30;
  o.search.storage = tmp_path("blocks.db");
  aq::ModelScheduler sched(model, aq::Goal{}, weight_bits, o, {"^[01]$", "^[234]$"}, "cost");
  ASSERT_EQ(sched.plan().size(), 2u);
  EXPECT_EQ(sched.plan()[0].layers, (std::vector<std::string>{"2", "3", "4"}));
  std::vector<std::string> configs;
  std::map<int64_t, int> calls;
  const auto trials = sched.run([&](torch::nn::Sequential& m, int64_t, const aq::TrialContext& t) {
    configs.push_back(t.config.quantizer_config);
    return 0.5;
  });
  ASSERT_EQ(trials.size(), 2u);
  EXPECT_EQ(trials[1].size(), 10u);
  // the first block searched layers 2-4 only; the second kept its best and searched 0-1
  const auto first = nlohmann::json::parse(configs.front());
  EXPECT_FALSE(first.contains("0"));
  EXPECT_TRUE(first.contains("2"));
  const auto best = nlohmann::json::parse(sched.best_config());
  for (const char* l : {"0", "1", "2", "3", "4"}) EXPECT_TRUE(best.contains(l)) << l;
  const auto last = nlohmann::json::parse(configs.back());
  for (const char* l : {"2", "3", "4"}) EXPECT_EQ(last[l], best[l]) << l;
  EXPECT_TRUE(sched.best_model().has_value());
  // resumed: nothing runs again
  aq::ModelScheduler again(model, aq::Goal{}, weight_bits, o, {"^[01]$", "^[234]$"}, "cost");
  int n = 0;
  again.run([&](torch::nn::Sequential&, int64_t, const aq::TrialContext&) { return ++n, 0.5; });
  EXPECT_EQ(n, 0);
  EXPECT_EQ(again.best_config(), sched.best_config());
}

TEST(AutoQSearch, TextBar) {
  std::ostringstream out;
  {
    aq::TextBar bar("epochs", 4, &out);
    bar.update(1, "loss 0.5");
    EXPECT_NE(bar.line().find("epochs 1/4 [======"), std::string::npos) << bar.line();
    EXPECT_NE(bar.line().find("ETA"), std::string::npos);
    EXPECT_NE(bar.line().find("loss 0.5"), std::string::npos);
    bar.update(3);
    EXPECT_EQ(bar.line().find("ETA"), std::string::npos);  // done
  }
  EXPECT_EQ(out.str().back(), '\n');
  EXPECT_THROW(aq::TextBar("x", -1, &out), InvalidArgument);
}

TEST(AutoQModel, BuiltInTrainer) {
  torch::manual_seed(3);
  const auto x = torch::randn({128, 6});
  const auto y = (x.select(1, 0) > 0).to(torch::kLong);
  aq::Batches train = {{x.slice(0, 0, 64), y.slice(0, 0, 64)}, {x.slice(0, 64), y.slice(0, 64)}};
  auto fn = aq::make_trainer(
      train, {{x, y}},
      [](const torch::Tensor& o, const torch::Tensor& t) {
        return torch::nn::functional::cross_entropy(o, t);
      },
      [](std::vector<torch::Tensor> p) -> std::unique_ptr<torch::optim::Optimizer> {
        return std::make_unique<torch::optim::Adam>(std::move(p), torch::optim::AdamOptions(3e-2));
      });
  auto model = tiny_mlp();
  const double before = fn(model, 0, aq::TrialContext{});
  const double after = fn(model, 30, aq::TrialContext{});
  EXPECT_GT(after, 0.9);
  EXPECT_GT(after, before);
  EXPECT_THROW(aq::make_trainer({}, {{x, y}}, nullptr), InvalidArgument);
}
