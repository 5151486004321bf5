// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Quantizer operators against their references on 16M float32 elements, for 1 and 2 threads
// (the benchmark argument; at::set_num_threads is called inside each benchmark):
//
//   qbits_*        heteroq::ops::quantized_bits(x, 6, 0, alpha=1)
//                    fused:   the fused CPU kernel (default)
//                    generic: FusedKernelsGuard(false), the device-generic ATen composition
//   fakequant_*    at::fake_quantize_per_tensor_affine(x, 2^-5, 0, -32, 31): same forward values
//   composite_*    at::round(x * 32).clamp(-32, 31) * 2^-5 (the plain ATen composite); its
//                  fwd+bwd uses the identity STE x + (q - x).detach()
//   qrelu_*        heteroq::ops::quantized_relu(x, 6, 0)
//   qautopo2_*     heteroq::ops::quantized_bits_auto(x.view(4096, 4096), 6, 0) (alpha="auto_po2"):
//                  one scale per row, QKeras's 5 least-squares iterations
//   qauto_*        the same with po2=False (alpha="auto": the scale is the row's maximum)
//   qbinary_auto_* heteroq::ops::binary_auto(x.view(4096, 4096)) (binary(alpha="auto_po2")): one
//                  least-squares scale per row
//   qternary_auto_* heteroq::ops::ternary_auto(x.view(4096, 4096)) (ternary(alpha="auto_po2")):
//                  one scale per row, QKeras's 5 iterations (number_of_unrolls)
//                    fused: the fused CPU kernel (default); generic: FusedKernelsGuard(false)
//   copy_clone     x.clone(): allocation + read + write, like an op producing a new tensor
//   copy_into      out.copy_(x) into a preallocated tensor: read + write only
//   copy_clone2    x.clone() and grad.clone(): the bound for a forward + backward that each
//                  produce one new tensor
//
// fwd+bwd, two ways (x is a leaf that requires grad, grad a preallocated output gradient):
//   *_fwdbwd   y = op(x); y.backward(grad): x.grad is reset to undefined every iteration
//              (zero_grad(set_to_none=True)), so AccumulateGrad stores a fresh tensor each time and
//              memory does not grow. grad stays referenced here, so a backward that returns it
//              unchanged (identity STE) makes AccumulateGrad copy it.
//   *_fwdgrad  y = op(x); torch::autograd::grad({y}, {x}, {grad}): the gradient is returned, not
//              accumulated, as for an activation inside a network; an identity STE costs nothing.
//
// Bytes processed are nominal, the same for every case of a kind: forward 8 B/element (read x,
// write y), fwd+bwd 16 B/element (also read grad, write x.grad). GB/s are thus time ratios in
// another unit; the actual traffic of the composite paths is higher (temporaries).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <torch/autograd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>

#include "heteroq/ops/quantize.h"

namespace {

constexpr int64_t kN = int64_t{16} * 1024 * 1024;

// quantized_bits(bits=6, integer=0, symmetric=False, keep_negative=True, alpha=1):
// scale = 2^(integer - bits + 1), codes in [-2^(bits-1) + symmetric, 2^(bits-1) - 1].
constexpr int64_t kBits = 6;
constexpr int64_t kInteger = 0;
constexpr bool kSymmetric = false;
const double kScale = std::ldexp(1.0, static_cast<int>(kInteger - kBits + 1));
const double kInvScale = 1.0 / kScale;
constexpr int64_t kQmin = -(int64_t{1} << (kBits - 1)) + (kSymmetric ? 1 : 0);
constexpr int64_t kQmax = (int64_t{1} << (kBits - 1)) - 1;

constexpr double kFwdBytesPerElement = 8.0;     // read x, write y
constexpr double kFwdBwdBytesPerElement = 16.0;  // + read grad, write x.grad

struct Inputs {
  at::Tensor x;     // N(0, 1): about 5% of the values saturate at +-1
  at::Tensor x_rg;  // a copy of x that requires grad (leaf)
  at::Tensor grad;  // the output gradient for backward
  at::Tensor out;   // preallocated destination for copy_
};

Inputs& inputs() {
  static Inputs in = [] {
    at::manual_seed(0);
    Inputs r;
    r.x = at::randn({kN}, at::kFloat);
    r.x_rg = r.x.clone().requires_grad_(true);
    r.grad = at::randn({kN}, at::kFloat);
    r.out = at::empty({kN}, at::kFloat);
    r.out.fill_(0);  // touch the pages once
    return r;
  }();
  return in;
}

void setup_threads(benchmark::State& state) {
  at::set_num_threads(static_cast<int>(state.range(0)));
}

void finish(benchmark::State& state, double bytes_per_element, const std::string& label = {}) {
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(bytes_per_element * static_cast<double>(kN)));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kN);
  if (!label.empty()) state.SetLabel(label);
}

// Runs fwd(x) then backward with the preallocated grad, clearing x.grad each iteration.
template <typename F>
void run_fwd_bwd(benchmark::State& state, F&& fwd) {
  Inputs& in = inputs();
  at::Tensor& x = in.x_rg;
  for (auto _ : state) {
    x.mutable_grad() = at::Tensor();
    at::Tensor y = fwd(x);
    y.backward(in.grad);
    benchmark::DoNotOptimize(x.grad().data_ptr());
  }
  x.mutable_grad() = at::Tensor();
}

// Runs fwd(x) then torch::autograd::grad: dx is returned, x.grad is not touched.
template <typename F>
void run_fwd_grad(benchmark::State& state, F&& fwd) {
  Inputs& in = inputs();
  const at::Tensor& x = in.x_rg;
  for (auto _ : state) {
    at::Tensor y = fwd(x);
    auto dx = torch::autograd::grad({y}, {x}, {in.grad});
    benchmark::DoNotOptimize(dx[0].data_ptr());
  }
}

template <typename F>
void run_fwd(benchmark::State& state, F&& fwd) {
  const at::Tensor& x = inputs().x;
  for (auto _ : state) {
    at::Tensor y = fwd(x);
    benchmark::DoNotOptimize(y.data_ptr());
  }
}

// ---------------------------------------------------------------------------------------------
// Operations.

at::Tensor qbits(const at::Tensor& x) {
  return heteroq::ops::quantized_bits(x, kBits, kInteger, kSymmetric, /*keep_negative=*/true,
                                      /*alpha=*/1.0);
}

at::Tensor qrelu(const at::Tensor& x) {
  return heteroq::ops::quantized_relu(x, kBits, kInteger, /*use_sigmoid=*/false,
                                      /*negative_slope=*/0.0);
}

at::Tensor qtanh(const at::Tensor& x) { return heteroq::ops::quantized_tanh(x, kBits); }
at::Tensor qsigmoid(const at::Tensor& x) { return heteroq::ops::quantized_sigmoid(x, kBits); }
at::Tensor qpo2(const at::Tensor& x) { return heteroq::ops::quantized_po2(x, kBits); }
at::Tensor qrelupo2(const at::Tensor& x) { return heteroq::ops::quantized_relu_po2(x, kBits); }
at::Tensor qbinary(const at::Tensor& x) { return heteroq::ops::binary(x, false, 1.0); }
at::Tensor qternary(const at::Tensor& x) { return heteroq::ops::ternary(x, 1.0, 0.5); }

// alpha="auto_po2" on a (4096, 4096) view: one scale per row (axis 0), QKeras's 5 iterations.
at::Tensor qautopo2(const at::Tensor& x) {
  return std::get<0>(heteroq::ops::quantized_bits_auto(x.view({4096, -1}), kBits, kInteger));
}

// alpha="auto": the scale is the row's maximum, no iterations.
at::Tensor qauto(const at::Tensor& x) {
  return std::get<0>(heteroq::ops::quantized_bits_auto(x.view({4096, -1}), kBits, kInteger,
                                                       /*keep_negative=*/true, /*po2=*/false));
}

// binary(alpha="auto_po2") and ternary(alpha="auto_po2") on a (4096, 4096) view: one scale per row.
at::Tensor qbinary_auto(const at::Tensor& x) {
  return std::get<0>(heteroq::ops::binary_auto(x.view({4096, -1}), /*use_01=*/false, /*po2=*/true));
}

at::Tensor qternary_auto(const at::Tensor& x) {
  return std::get<0>(heteroq::ops::ternary_auto(x.view({4096, -1}), /*po2=*/true,
                                                /*number_of_unrolls=*/5));
}

at::Tensor fakequant(const at::Tensor& x) {
  return at::fake_quantize_per_tensor_affine(x, kScale, 0, kQmin, kQmax);
}

at::Tensor composite(const at::Tensor& x) {
  return at::round(x * kInvScale).clamp(kQmin, kQmax) * kScale;
}

// Identity STE as a user writes it with ATen ops: x + (q - x).detach().
at::Tensor composite_ste(const at::Tensor& x) {
  at::Tensor q = composite(x);
  return x + (q - x).detach();
}

// ---------------------------------------------------------------------------------------------
// quantized_bits

void BM_qbits_fused_fwd(benchmark::State& state) {
  setup_threads(state);
  run_fwd(state, qbits);
  finish(state, kFwdBytesPerElement);
}

void BM_qbits_generic_fwd(benchmark::State& state) {
  setup_threads(state);
  heteroq::ops::FusedKernelsGuard guard(false);
  run_fwd(state, qbits);
  finish(state, kFwdBytesPerElement);
}

void BM_qbits_fused_fwdbwd(benchmark::State& state) {
  setup_threads(state);
  run_fwd_bwd(state, qbits);
  finish(state, kFwdBwdBytesPerElement, "identity STE (QKeras)");
}

void BM_qbits_fused_fwdgrad(benchmark::State& state) {
  setup_threads(state);
  run_fwd_grad(state, qbits);
  finish(state, kFwdBwdBytesPerElement, "identity STE (QKeras)");
}

void BM_qbits_generic_fwdbwd(benchmark::State& state) {
  setup_threads(state);
  heteroq::ops::FusedKernelsGuard guard(false);
  run_fwd_bwd(state, qbits);
  finish(state, kFwdBwdBytesPerElement, "identity STE (QKeras)");
}

void BM_qbits_generic_fwdgrad(benchmark::State& state) {
  setup_threads(state);
  heteroq::ops::FusedKernelsGuard guard(false);
  run_fwd_grad(state, qbits);
  finish(state, kFwdBwdBytesPerElement, "identity STE (QKeras)");
}

// ---------------------------------------------------------------------------------------------
// References

void BM_fakequant_fwd(benchmark::State& state) {
  setup_threads(state);
  run_fwd(state, fakequant);
  finish(state, kFwdBytesPerElement);
}

void BM_fakequant_fwdbwd(benchmark::State& state) {
  setup_threads(state);
  run_fwd_bwd(state, fakequant);
  finish(state, kFwdBwdBytesPerElement, "masked STE (grad * in-range mask), not QKeras's");
}

void BM_fakequant_fwdgrad(benchmark::State& state) {
  setup_threads(state);
  run_fwd_grad(state, fakequant);
  finish(state, kFwdBwdBytesPerElement, "masked STE (grad * in-range mask), not QKeras's");
}

void BM_composite_fwd(benchmark::State& state) {
  setup_threads(state);
  run_fwd(state, composite);
  finish(state, kFwdBytesPerElement);
}

void BM_composite_fwdbwd(benchmark::State& state) {
  setup_threads(state);
  run_fwd_bwd(state, composite_ste);
  finish(state, kFwdBwdBytesPerElement, "identity STE x + (q - x).detach()");
}

void BM_composite_fwdgrad(benchmark::State& state) {
  setup_threads(state);
  run_fwd_grad(state, composite_ste);
  finish(state, kFwdBwdBytesPerElement, "identity STE x + (q - x).detach()");
}

// ---------------------------------------------------------------------------------------------
// Memory bounds

void BM_copy_clone(benchmark::State& state) {
  setup_threads(state);
  run_fwd(state, [](const at::Tensor& x) { return x.clone(); });
  finish(state, kFwdBytesPerElement);
}

void BM_copy_into(benchmark::State& state) {
  setup_threads(state);
  Inputs& in = inputs();
  for (auto _ : state) {
    in.out.copy_(in.x);
    benchmark::DoNotOptimize(in.out.data_ptr());
    benchmark::ClobberMemory();
  }
  finish(state, kFwdBytesPerElement);
}

void BM_copy_clone2(benchmark::State& state) {
  setup_threads(state);
  Inputs& in = inputs();
  for (auto _ : state) {
    at::Tensor y = in.x.clone();
    at::Tensor g = in.grad.clone();
    benchmark::DoNotOptimize(y.data_ptr());
    benchmark::DoNotOptimize(g.data_ptr());
  }
  finish(state, kFwdBwdBytesPerElement);
}

void BM_qtanh_fused_fwd(benchmark::State& state) {
  setup_threads(state);
  run_fwd(state, qtanh);
  finish(state, kFwdBytesPerElement);
}

void BM_qtanh_fused_fwdgrad(benchmark::State& state) {
  setup_threads(state);
  run_fwd_grad(state, qtanh);
  finish(state, kFwdBwdBytesPerElement, "QKeras tanh STE (fused backward op)");
}

#define HQ_FWD_CASE(name, fn)              \
  void BM_##name(benchmark::State& state) { \
    setup_threads(state);                  \
    run_fwd(state, fn);                    \
    finish(state, kFwdBytesPerElement);    \
  }
// forward + torch::autograd::grad for every other fused family (the STE each one uses); the
// auto-scale cases view x as (4096, 4096), so the output is viewed back to x's shape.
#define HQ_FWDGRAD_CASE(name, fn)              \
  void BM_##name(benchmark::State& state) {    \
    setup_threads(state);                      \
    run_fwd_grad(state, [](const at::Tensor& x) { return fn(x).view(x.sizes()); }); \
    finish(state, kFwdBwdBytesPerElement);     \
  }
HQ_FWD_CASE(qsigmoid_fused_fwd, qsigmoid)
HQ_FWD_CASE(qpo2_fused_fwd, qpo2)
HQ_FWD_CASE(qrelupo2_fused_fwd, qrelupo2)
HQ_FWD_CASE(qbinary_fused_fwd, qbinary)
HQ_FWD_CASE(qternary_fused_fwd, qternary)

HQ_FWD_CASE(qautopo2_fused_fwd, qautopo2)
HQ_FWD_CASE(qauto_fused_fwd, qauto)

void BM_qautopo2_generic_fwd(benchmark::State& state) {
  setup_threads(state);
  heteroq::ops::FusedKernelsGuard guard(false);
  run_fwd(state, qautopo2);
  finish(state, kFwdBytesPerElement);
}

void BM_qauto_generic_fwd(benchmark::State& state) {
  setup_threads(state);
  heteroq::ops::FusedKernelsGuard guard(false);
  run_fwd(state, qauto);
  finish(state, kFwdBytesPerElement);
}

HQ_FWD_CASE(qbinary_auto_fused_fwd, qbinary_auto)
HQ_FWD_CASE(qternary_auto_fused_fwd, qternary_auto)
HQ_FWDGRAD_CASE(qsigmoid_fused_fwdgrad, qsigmoid)
HQ_FWDGRAD_CASE(qpo2_fused_fwdgrad, qpo2)
HQ_FWDGRAD_CASE(qrelupo2_fused_fwdgrad, qrelupo2)
HQ_FWDGRAD_CASE(qbinary_fused_fwdgrad, qbinary)
HQ_FWDGRAD_CASE(qternary_fused_fwdgrad, qternary)
HQ_FWDGRAD_CASE(qautopo2_fused_fwdgrad, qautopo2)
HQ_FWDGRAD_CASE(qbinary_auto_fused_fwdgrad, qbinary_auto)
HQ_FWDGRAD_CASE(qternary_auto_fused_fwdgrad, qternary_auto)

void BM_qbinary_auto_generic_fwd(benchmark::State& state) {
  setup_threads(state);
  heteroq::ops::FusedKernelsGuard guard(false);
  run_fwd(state, qbinary_auto);
  finish(state, kFwdBytesPerElement);
}

void BM_qternary_auto_generic_fwd(benchmark::State& state) {
  setup_threads(state);
  heteroq::ops::FusedKernelsGuard guard(false);
  run_fwd(state, qternary_auto);
  finish(state, kFwdBytesPerElement);
}

// Forward into the preallocated output (out= variants), the like-for-like case of copy_into.
template <typename F>
void run_out(benchmark::State& state, F&& fwd_out) {
  Inputs& in = inputs();
  for (auto _ : state) {
    fwd_out(in.out, in.x);
    benchmark::DoNotOptimize(in.out.data_ptr());
    benchmark::ClobberMemory();
  }
}

void BM_qbits_fused_out(benchmark::State& state) {
  setup_threads(state);
  run_out(state, [](at::Tensor& out, const at::Tensor& x) {
    heteroq::ops::quantized_bits_out(out, x, kBits, kInteger, kSymmetric, true, 1.0);
  });
  finish(state, kFwdBytesPerElement);
}

void BM_qbits_generic_out(benchmark::State& state) {
  setup_threads(state);
  heteroq::ops::FusedKernelsGuard guard(false);
  run_out(state, [](at::Tensor& out, const at::Tensor& x) {
    heteroq::ops::quantized_bits_out(out, x, kBits, kInteger, kSymmetric, true, 1.0);
  });
  finish(state, kFwdBytesPerElement);
}

void BM_qrelu_fused_out(benchmark::State& state) {
  setup_threads(state);
  run_out(state, [](at::Tensor& out, const at::Tensor& x) {
    heteroq::ops::quantized_relu_out(out, x, kBits, kInteger, false, 0.0);
  });
  finish(state, kFwdBytesPerElement);
}

// ---------------------------------------------------------------------------------------------
// quantized_relu

void BM_qrelu_fused_fwd(benchmark::State& state) {
  setup_threads(state);
  run_fwd(state, qrelu);
  finish(state, kFwdBytesPerElement);
}

void BM_qrelu_generic_fwd(benchmark::State& state) {
  setup_threads(state);
  heteroq::ops::FusedKernelsGuard guard(false);
  run_fwd(state, qrelu);
  finish(state, kFwdBytesPerElement);
}

void BM_qrelu_fused_fwdbwd(benchmark::State& state) {
  setup_threads(state);
  run_fwd_bwd(state, qrelu);
  finish(state, kFwdBwdBytesPerElement, "QKeras relu STE (fused backward op)");
}

void BM_qrelu_fused_fwdgrad(benchmark::State& state) {
  setup_threads(state);
  run_fwd_grad(state, qrelu);
  finish(state, kFwdBwdBytesPerElement, "QKeras relu STE (fused backward op)");
}

void BM_qrelu_generic_fwdbwd(benchmark::State& state) {
  setup_threads(state);
  heteroq::ops::FusedKernelsGuard guard(false);
  run_fwd_bwd(state, qrelu);
  finish(state, kFwdBwdBytesPerElement, "QKeras relu STE (generic backward)");
}

void BM_qrelu_generic_fwdgrad(benchmark::State& state) {
  setup_threads(state);
  heteroq::ops::FusedKernelsGuard guard(false);
  run_fwd_grad(state, qrelu);
  finish(state, kFwdBwdBytesPerElement, "QKeras relu STE (generic backward)");
}

// Every case: threads 1 and 2, wall-clock time, medians of 5 repetitions of >= 0.4 s each.
#define HQ_BENCH(fn)                 \
  BENCHMARK(fn)                      \
      ->ArgName("threads")           \
      ->Arg(1)                       \
      ->Arg(2)                       \
      ->UseRealTime()                \
      ->MinTime(0.4)                 \
      ->Repetitions(5)               \
      ->ReportAggregatesOnly(true)   \
      ->Unit(benchmark::kMillisecond)

HQ_BENCH(BM_copy_clone);
HQ_BENCH(BM_copy_into);
HQ_BENCH(BM_copy_clone2);
HQ_BENCH(BM_qbits_fused_fwd);
HQ_BENCH(BM_qbits_generic_fwd);
HQ_BENCH(BM_fakequant_fwd);
HQ_BENCH(BM_composite_fwd);
HQ_BENCH(BM_qbits_fused_fwdbwd);
HQ_BENCH(BM_qbits_fused_fwdgrad);
HQ_BENCH(BM_qbits_generic_fwdbwd);
HQ_BENCH(BM_qbits_generic_fwdgrad);
HQ_BENCH(BM_fakequant_fwdbwd);
HQ_BENCH(BM_fakequant_fwdgrad);
HQ_BENCH(BM_composite_fwdbwd);
HQ_BENCH(BM_composite_fwdgrad);
HQ_BENCH(BM_qrelu_fused_fwd);
HQ_BENCH(BM_qrelu_generic_fwd);
HQ_BENCH(BM_qrelu_fused_fwdbwd);
HQ_BENCH(BM_qrelu_fused_fwdgrad);
HQ_BENCH(BM_qrelu_generic_fwdbwd);
HQ_BENCH(BM_qrelu_generic_fwdgrad);
HQ_BENCH(BM_qtanh_fused_fwd);
HQ_BENCH(BM_qtanh_fused_fwdgrad);
HQ_BENCH(BM_qautopo2_fused_fwd);
HQ_BENCH(BM_qautopo2_generic_fwd);
HQ_BENCH(BM_qauto_fused_fwd);
HQ_BENCH(BM_qauto_generic_fwd);
HQ_BENCH(BM_qbinary_auto_fused_fwd);
HQ_BENCH(BM_qbinary_auto_generic_fwd);
HQ_BENCH(BM_qternary_auto_fused_fwd);
HQ_BENCH(BM_qternary_auto_generic_fwd);
HQ_BENCH(BM_qsigmoid_fused_fwd);
HQ_BENCH(BM_qpo2_fused_fwd);
HQ_BENCH(BM_qrelupo2_fused_fwd);
HQ_BENCH(BM_qbinary_fused_fwd);
HQ_BENCH(BM_qternary_fused_fwd);
HQ_BENCH(BM_qsigmoid_fused_fwdgrad);
HQ_BENCH(BM_qpo2_fused_fwdgrad);
HQ_BENCH(BM_qrelupo2_fused_fwdgrad);
HQ_BENCH(BM_qbinary_fused_fwdgrad);
HQ_BENCH(BM_qternary_fused_fwdgrad);
HQ_BENCH(BM_qautopo2_fused_fwdgrad);
HQ_BENCH(BM_qbinary_auto_fused_fwdgrad);
HQ_BENCH(BM_qternary_auto_fused_fwdgrad);
HQ_BENCH(BM_qbits_fused_out);
HQ_BENCH(BM_qbits_generic_out);
HQ_BENCH(BM_qrelu_fused_out);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("elements", std::to_string(kN));
  benchmark::AddCustomContext("dtype", "float32");
  benchmark::AddCustomContext("aten_default_num_threads", std::to_string(at::get_num_threads()));
  benchmark::AddCustomContext("quantizer", "quantized_bits(6, 0, alpha=1) / quantized_relu(6, 0)");
  // Allocate and fill once, outside every timing, and check that the compared forwards agree.
  const at::Tensor& x = inputs().x;
  const at::Tensor q = qbits(x);
  const bool same = at::equal(q, fakequant(x)) && at::equal(q, composite(x));
  benchmark::AddCustomContext("forward_values_match", same ? "yes" : "NO");
  if (!same) {
    std::fprintf(stderr, "bench_quantizers: quantized_bits, fake_quantize_per_tensor_affine and "
                         "the composite disagree on the input\n");
    return 1;
  }
  // The fused and generic auto-scale kernels agree (output and scale) on the input.
  bool auto_same = true;
  for (bool po2 : {true, false}) {
    const at::Tensor v = x.view({4096, -1});
    const auto fused = heteroq::ops::quantized_bits_auto(v, kBits, kInteger, true, po2);
    heteroq::ops::FusedKernelsGuard guard(false);
    const auto generic = heteroq::ops::quantized_bits_auto(v, kBits, kInteger, true, po2);
    auto_same = auto_same && at::equal(std::get<0>(fused), std::get<0>(generic)) &&
                at::equal(std::get<1>(fused), std::get<1>(generic));
  }
  benchmark::AddCustomContext("auto_fused_matches_generic", auto_same ? "yes" : "NO");
  if (!auto_same) {
    std::fprintf(stderr, "bench_quantizers: the fused and generic quantized_bits_auto disagree\n");
    return 1;
  }
  // The same for binary_auto and ternary_auto ("auto" and "auto_po2").
  bool binary_same = true;
  for (bool po2 : {true, false}) {
    const at::Tensor v = x.view({4096, -1});
    const auto fused_b = heteroq::ops::binary_auto(v, false, po2);
    const auto fused_t = heteroq::ops::ternary_auto(v, po2, 5);
    heteroq::ops::FusedKernelsGuard guard(false);
    const auto generic_b = heteroq::ops::binary_auto(v, false, po2);
    const auto generic_t = heteroq::ops::ternary_auto(v, po2, 5);
    binary_same = binary_same && at::equal(std::get<0>(fused_b), std::get<0>(generic_b)) &&
                  at::equal(std::get<1>(fused_b), std::get<1>(generic_b)) &&
                  at::equal(std::get<0>(fused_t), std::get<0>(generic_t)) &&
                  at::equal(std::get<1>(fused_t), std::get<1>(generic_t));
  }
  benchmark::AddCustomContext("binary_auto_fused_matches_generic", binary_same ? "yes" : "NO");
  if (!binary_same) {
    std::fprintf(stderr, "bench_quantizers: the fused and generic binary_auto/ternary_auto "
                         "disagree\n");
    return 1;
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
