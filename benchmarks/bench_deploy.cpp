// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// bench_deploy: the integer engine (heteroq::deploy) on the hls4ml jet-tagging MLP (Dense
// 16-64-32-32-5, quantized_bits(6,0,alpha=1) weights and biases, quantized_relu(6,0) activations,
// a quantized_bits(8,3,alpha=1) input quantizer) against LibTorch's float forward of the same model
// (torch::nn::Linear layers holding the quantized weights, ReLU between them) and the QAT model's
// eval forward, in the same run, on one thread (at::set_num_threads(1); the engine is
// single-threaded). Inputs: standard-normal features (seed 0), the scale of standardized jet
// features. After the Google Benchmark output it prints a table of CPU time per sample and the
// throughput ratio engine / float forward for each batch size.
//
//   cmake -S . -B build -DHETEROQ_BUILD_BENCHMARKS=ON && cmake --build build --target bench_deploy
//   build/bench_deploy --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "heteroq/deploy/compile.h"
#include "heteroq/nn/layers.h"

namespace {

namespace hd = heteroq::deploy;
namespace hn = heteroq::nn;

struct Models {
  torch::nn::Sequential qat, fp;
  std::unique_ptr<hd::Engine> engine;
};

Models& models() {
  static Models m = [] {
    torch::manual_seed(0);
    Models r;
    const char* q = "quantized_bits(6,0,alpha=1)";
    r.qat->push_back(hn::QActivation("quantized_bits(8,3,alpha=1)"));
    const int sizes[] = {16, 64, 32, 32, 5};
    for (int i = 0; i < 4; ++i) {
      hn::QLinear layer(hn::QLinearOptions(sizes[i], sizes[i + 1]).kernel_quantizer(q).bias_quantizer(q));
      r.qat->push_back(layer);
      torch::nn::Linear fp(sizes[i], sizes[i + 1]);
      {
        torch::NoGradGuard g;
        fp->weight.copy_(layer->quantized_weight());
        fp->bias.copy_(layer->quantized_bias());
      }
      r.fp->push_back(fp);
      if (i < 3) {
        r.qat->push_back(hn::QActivation("quantized_relu(6,0)"));
        r.fp->push_back(torch::nn::ReLU());
      }
    }
    r.qat->eval();
    r.fp->eval();
    r.engine = std::make_unique<hd::Engine>(hd::compile(*r.qat));
    return r;
  }();
  return m;
}

torch::Tensor inputs(int64_t batch) {
  torch::manual_seed(0);
  return torch::randn({batch, 16});
}

void engine_float(benchmark::State& state) {
  at::set_num_threads(1);
  const int64_t batch = state.range(0);
  const hd::Engine& e = *models().engine;
  const torch::Tensor x = inputs(batch);
  std::vector<float> y(static_cast<size_t>(batch * e.output_size()));
  for (auto _ : state) {
    e.run(x.data_ptr<float>(), batch, y.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * batch);
}

void engine_codes(benchmark::State& state) {
  at::set_num_threads(1);
  const int64_t batch = state.range(0);
  const hd::Engine& e = *models().engine;
  const torch::Tensor x = inputs(batch);
  std::vector<int64_t> y(static_cast<size_t>(batch * e.output_size()));
  for (auto _ : state) {
    e.run_codes(x.data_ptr<float>(), batch, y.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * batch);
}

void torch_float(benchmark::State& state) {
  at::set_num_threads(1);
  const int64_t batch = state.range(0);
  auto& m = models().fp;
  const torch::Tensor x = inputs(batch);
  c10::InferenceMode guard;
  for (auto _ : state) {
    torch::Tensor y = m->forward(x);
    benchmark::DoNotOptimize(y.data_ptr<float>());
  }
  state.SetItemsProcessed(state.iterations() * batch);
}

void qat_eval(benchmark::State& state) {
  at::set_num_threads(1);
  const int64_t batch = state.range(0);
  auto& m = models().qat;
  const torch::Tensor x = inputs(batch);
  torch::NoGradGuard guard;
  for (auto _ : state) {
    torch::Tensor y = m->forward(x);
    benchmark::DoNotOptimize(y.data_ptr<float>());
  }
  state.SetItemsProcessed(state.iterations() * batch);
}

void batches(benchmark::internal::Benchmark* b) {
  for (int64_t n : {1, 16, 256, 4096}) b->Arg(n);
  b->ArgName("batch");
}

BENCHMARK(engine_float)->Apply(batches);
BENCHMARK(engine_codes)->Apply(batches);
BENCHMARK(torch_float)->Apply(batches);
BENCHMARK(qat_eval)->Apply(batches);

// Collects the CPU time per iteration (the median when repetitions are aggregated) for the table:
// every case runs on one thread, so CPU time is its compute time, unaffected by other processes
// on a shared machine (the console output above the table also shows real time).
class Collector : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) {
      if (r.run_type == Run::RT_Aggregate && r.aggregate_name != "median") continue;
      std::string name = r.run_name.str();
      times_[name] = r.GetAdjustedCPUTime();  // in the run's time unit
      units_[name] = benchmark::GetTimeUnitString(r.time_unit);
    }
    ConsoleReporter::ReportRuns(runs);
  }
  double ns(const std::string& name) const {
    auto it = times_.find(name);
    if (it == times_.end()) return -1;
    const std::string& u = units_.at(name);
    const double f = u == "ns" ? 1 : u == "us" ? 1e3 : u == "ms" ? 1e6 : 1e9;
    return it->second * f;
  }

 private:
  std::map<std::string, double> times_;
  std::map<std::string, std::string> units_;
};

}  // namespace

int main(int argc, char** argv) {
  at::set_num_threads(1);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const hd::Engine& e = *models().engine;
  std::printf("jet MLP 16-64-32-32-5; engine: %s, float32_exact=%d; ATen threads: %d\n",
              e.stage_info()[0].storage.c_str(), e.float32_exact() ? 1 : 0, at::get_num_threads());
  Collector collector;
  benchmark::RunSpecifiedBenchmarks(&collector);
  std::printf("\nCPU time per sample (median of the repetitions when aggregated):\n\n"
              "| batch | engine ns/sample | engine (codes) ns/sample | LibTorch float ns/sample | "
              "QAT eval ns/sample | engine throughput / float |\n|---|---|---|---|---|---|\n");
  for (int64_t n : {1, 16, 256, 4096}) {
    const std::string arg = "/batch:" + std::to_string(n);
    const double ef = collector.ns("engine_float" + arg), ec = collector.ns("engine_codes" + arg),
                 tf = collector.ns("torch_float" + arg), qe = collector.ns("qat_eval" + arg);
    if (ef < 0 || tf < 0) continue;
    const double b = static_cast<double>(n);
    auto cell = [&](double t) { return t < 0 ? std::string("-") : std::to_string(t / b).substr(0, std::to_string(t / b).find('.') + 2); };
    std::printf("| %lld | %s | %s | %s | %s | %.1fx |\n", static_cast<long long>(n), cell(ef).c_str(),
                cell(ec).c_str(), cell(tf).c_str(), cell(qe).c_str(), tf / ef);
  }
  benchmark::Shutdown();
  return 0;
}
