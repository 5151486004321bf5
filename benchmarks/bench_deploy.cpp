// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// bench_deploy: the integer engine (heteroq::deploy) on the hls4ml jet-tagging MLP (Dense
// 16-64-32-32-5, quantized_bits(6,0,alpha=1) weights and biases, quantized_relu(6,0) activations,
// a quantized_bits(8,3,alpha=1) input quantizer) against LibTorch's float forward of the same model
// (torch::nn::Linear layers holding the quantized weights, ReLU between them) and the QAT model's
// eval forward, in the same run, on one thread (at::set_num_threads(1); the engine is
// single-threaded). Inputs: standard-normal features (seed 0), the scale of standardized jet
// features. After the Google Benchmark output it prints a table of CPU time per sample and the
// throughput ratio engine / float forward for each batch size, with the engine's batched GEMM
// (batches from EngineOptions::gemm_min_batch) and without it (one sample or four at a time).
// Then the same model magnitude-pruned to 50% and 90% zero weights per layer: the engine's sparse
// kernel, its dense kernel, and LibTorch's float forward of the pruned model, in the same run.
//
//   cmake -S . -B build -DHETEROQ_BUILD_BENCHMARKS=ON && cmake --build build --target bench_deploy
//   build/bench_deploy --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <cmath>
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
  std::unique_ptr<hd::Engine> engine, no_gemm, sparse, dense;
};

// The jet model; `sparsity` > 0: each layer's smallest-magnitude weights set to zero.
Models make_models(double sparsity) {
  torch::manual_seed(0);
  Models r;
  const char* q = "quantized_bits(6,0,alpha=1)";
  r.qat->push_back(hn::QActivation("quantized_bits(8,3,alpha=1)"));
  const int sizes[] = {16, 64, 32, 32, 5};
  for (int i = 0; i < 4; ++i) {
    hn::QLinear layer(hn::QLinearOptions(sizes[i], sizes[i + 1]).kernel_quantizer(q).bias_quantizer(q));
    if (sparsity > 0) {
      torch::NoGradGuard g;
      const auto k = static_cast<int64_t>(std::round(sparsity * static_cast<double>(layer->weight.numel())));
      const torch::Tensor cut = std::get<0>(layer->weight.abs().flatten().kthvalue(k));
      layer->weight.masked_fill_(layer->weight.abs() <= cut, 0.0);
    }
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
  hd::EngineOptions o;
  o.gemm_min_batch = 0;
  r.no_gemm = std::make_unique<hd::Engine>(r.engine->program(), o);
  hd::EngineOptions sparse, dense;
  sparse.sparse_min_zero_fraction = 0.0;
  dense.sparse_min_zero_fraction = 2.0;
  r.sparse = std::make_unique<hd::Engine>(r.engine->program(), sparse);
  r.dense = std::make_unique<hd::Engine>(r.engine->program(), dense);
  return r;
}

Models& models() {
  static Models m = make_models(0);
  return m;
}

Models& pruned(int64_t percent) {
  static Models m50 = make_models(0.5), m90 = make_models(0.9);
  return percent == 50 ? m50 : m90;
}

torch::Tensor inputs(int64_t batch) {
  torch::manual_seed(0);
  return torch::randn({batch, 16});
}

// The engine's float interface on `batch` inputs.
void run_engine(benchmark::State& state, const hd::Engine& e, int64_t batch) {
  at::set_num_threads(1);
  const torch::Tensor x = inputs(batch);
  std::vector<float> y(static_cast<size_t>(batch * e.output_size()));
  for (auto _ : state) {
    e.run(x.data_ptr<float>(), batch, y.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * batch);
}

// A LibTorch module's forward on `batch` inputs, under `Guard` (InferenceMode for the float
// model; NoGradGuard for the QAT model, as its eval forward runs).
template <typename Guard, typename Module>
void run_module(benchmark::State& state, Module& m, int64_t batch) {
  at::set_num_threads(1);
  const torch::Tensor x = inputs(batch);
  Guard guard;
  for (auto _ : state) {
    torch::Tensor y = m->forward(x);
    benchmark::DoNotOptimize(y.data_ptr<float>());
  }
  state.SetItemsProcessed(state.iterations() * batch);
}

void engine_float(benchmark::State& state) { run_engine(state, *models().engine, state.range(0)); }
void engine_no_gemm(benchmark::State& state) { run_engine(state, *models().no_gemm, state.range(0)); }

// The pruned models: range(0) = percent zero, range(1) = batch.
void pruned_sparse(benchmark::State& state) {
  run_engine(state, *pruned(state.range(0)).sparse, state.range(1));
}
void pruned_dense(benchmark::State& state) {
  run_engine(state, *pruned(state.range(0)).dense, state.range(1));
}
void pruned_torch(benchmark::State& state) {
  run_module<c10::InferenceMode>(state, pruned(state.range(0)).fp, state.range(1));
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
  run_module<c10::InferenceMode>(state, models().fp, state.range(0));
}
void qat_eval(benchmark::State& state) {
  run_module<torch::NoGradGuard>(state, models().qat, state.range(0));
}

void batches(benchmark::internal::Benchmark* b) {
  for (int64_t n : {1, 16, 256, 4096}) b->Arg(n);
  b->ArgName("batch");
}

void pruned_args(benchmark::internal::Benchmark* b) {
  for (int64_t p : {50, 90}) {
    for (int64_t n : {1, 256}) b->Args({p, n});
  }
  b->ArgNames({"zero", "batch"});
}

BENCHMARK(engine_float)->Apply(batches);
BENCHMARK(engine_no_gemm)->Apply(batches);
BENCHMARK(engine_codes)->Apply(batches);
BENCHMARK(torch_float)->Apply(batches);
BENCHMARK(qat_eval)->Apply(batches);
BENCHMARK(pruned_sparse)->Apply(pruned_args);
BENCHMARK(pruned_dense)->Apply(pruned_args);
BENCHMARK(pruned_torch)->Apply(pruned_args);

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
  auto per_sample = [](double t, int64_t n) {
    if (t < 0) return std::string("-");
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", t / static_cast<double>(n));
    return std::string(buf);
  };
  std::printf("\nCPU time per sample (median of the repetitions when aggregated):\n\n"
              "| batch | engine ns/sample | engine without GEMM ns/sample | engine (codes) ns/sample | "
              "LibTorch float ns/sample | QAT eval ns/sample | engine throughput / float |\n"
              "|---|---|---|---|---|---|---|\n");
  for (int64_t n : {1, 16, 256, 4096}) {
    const std::string arg = "/batch:" + std::to_string(n);
    const double ef = collector.ns("engine_float" + arg), en = collector.ns("engine_no_gemm" + arg),
                 ec = collector.ns("engine_codes" + arg), tf = collector.ns("torch_float" + arg),
                 qe = collector.ns("qat_eval" + arg);
    if (ef < 0 || tf < 0) continue;
    std::printf("| %lld | %s | %s | %s | %s | %s | %.1fx |\n", static_cast<long long>(n),
                per_sample(ef, n).c_str(), per_sample(en, n).c_str(), per_sample(ec, n).c_str(),
                per_sample(tf, n).c_str(), per_sample(qe, n).c_str(), tf / ef);
  }
  std::printf("\nPruned jet model (magnitude pruning per layer), CPU time per sample:\n\n"
              "| zero weights | batch | sparse kernel ns/sample | dense kernel ns/sample | "
              "LibTorch float ns/sample | sparse / dense throughput | sparse / float throughput |\n"
              "|---|---|---|---|---|---|---|\n");
  for (int64_t p : {50, 90}) {
    for (int64_t n : {1, 256}) {
      const std::string arg = "/zero:" + std::to_string(p) + "/batch:" + std::to_string(n);
      const double sp = collector.ns("pruned_sparse" + arg), de = collector.ns("pruned_dense" + arg),
                   tf = collector.ns("pruned_torch" + arg);
      if (sp < 0 || de < 0 || tf < 0) continue;
      std::printf("| %lld%% | %lld | %s | %s | %s | %.2fx | %.1fx |\n", static_cast<long long>(p),
                  static_cast<long long>(n), per_sample(sp, n).c_str(), per_sample(de, n).c_str(),
                  per_sample(tf, n).c_str(), de / sp, tf / sp);
    }
  }
  benchmark::Shutdown();
  return 0;
}
