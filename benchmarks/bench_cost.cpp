// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// How long the cost models take on the jet-tagging model (Dense 16-64-32-32-5, Q6: 6-bit
// weights, biases and ReLU activations), which AutoQ calls for every trial. Target (issue 5):
// the whole cost (describe + energy + size + BOPs/EBOPs + FPGA estimate) under 1 ms. The
// baseline of the same run: the float model's batch-1 forward pass.
//
//   cmake --build build --target bench_cost
//   /usr/bin/python3 benchmarks/bench_cost.py build/benchmarks/bench_cost
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "heteroq/cost/hardware.h"
#include "heteroq/cost/qstats.h"
#include "heteroq/cost/qtools.h"
#include "heteroq/nn/layers.h"

namespace {

namespace hc = heteroq::cost;
namespace hn = heteroq::nn;

const std::vector<int64_t> kShape = {1, 16};

torch::nn::Sequential float_mlp() {
  return torch::nn::Sequential(torch::nn::Linear(16, 64), torch::nn::ReLU(),
                               torch::nn::Linear(64, 32), torch::nn::ReLU(),
                               torch::nn::Linear(32, 32), torch::nn::ReLU(),
                               torch::nn::Linear(32, 5));
}

torch::nn::Sequential q6_mlp() {
  const std::string q = "quantized_bits(6,0,alpha=1)";
  const auto dense = [&](int64_t in, int64_t out) {
    return hn::QDense(hn::QLinearOptions(in, out).kernel_quantizer(q).bias_quantizer(q));
  };
  const auto relu = [] { return hn::QActivation("quantized_relu(6,0)"); };
  return torch::nn::Sequential(dense(16, 64), relu(), dense(64, 32), relu(), dense(32, 32),
                               relu(), dense(32, 5));
}

void BM_FloatForwardBatch1(benchmark::State& state) {
  torch::manual_seed(0);
  auto model = float_mlp();
  model->eval();
  torch::NoGradGuard no_grad;
  const auto x = torch::randn(kShape);
  for (auto _ : state) benchmark::DoNotOptimize(model->forward(x));
}

void BM_Describe(benchmark::State& state) {
  torch::manual_seed(0);
  auto model = q6_mlp();
  for (auto _ : state) benchmark::DoNotOptimize(hc::describe_model(model, kShape));
}

template <typename F>
void from_layers(benchmark::State& state, F f) {
  torch::manual_seed(0);
  const auto layers = hc::describe_model(q6_mlp(), kShape);
  for (auto _ : state) benchmark::DoNotOptimize(f(layers));
}

void BM_Energy(benchmark::State& state) {
  from_layers(state, [](const auto& l) { return hc::energy(l); });
}
void BM_Size(benchmark::State& state) {
  from_layers(state, [](const auto& l) { return hc::model_size(l); });
}
void BM_Bops(benchmark::State& state) {
  from_layers(state, [](const auto& l) { return hc::bops(l); });
}
void BM_Fpga(benchmark::State& state) {
  from_layers(state, [](const auto& l) { return hc::fpga_estimate(l); });
}
void BM_QStats(benchmark::State& state) {
  from_layers(state, [](const auto& l) { return hc::qstats(l); });
}

// What a search pays per trial: describe the trained model once, then every cost model.
void BM_FullCost(benchmark::State& state) {
  torch::manual_seed(0);
  auto model = q6_mlp();
  for (auto _ : state) {
    const auto layers = hc::describe_model(model, kShape);
    benchmark::DoNotOptimize(hc::energy(layers).total);
    benchmark::DoNotOptimize(hc::model_size(layers).total_bits);
    benchmark::DoNotOptimize(hc::bops(layers).ebops);
    benchmark::DoNotOptimize(hc::fpga_estimate(layers).lut);
  }
}

BENCHMARK(BM_FloatForwardBatch1)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Describe)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_QStats)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Energy)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Size)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Bops)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Fpga)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_FullCost)->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) {
  at::set_num_threads(1);  // the cost models are serial; one thread for the baseline too
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
