// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Fused CPU kernels: one pass over the input, no temporaries, split across threads with
// at::parallel_for. Each element function (core/fixed_point.h) is applied by a plain loop over raw
// pointers that the compiler vectorizes; on x86-64 the loop is compiled twice, for the baseline
// (SSE2) and for AVX2, and picked at run time. The IEEE operations and their order are the same
// in both (-ffp-contract=off: no FMA), so both give the same bits as the device-generic kernel.
// float32 and float64 are fused; other floating dtypes take the device-generic path.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include <cstdint>
#include <type_traits>

#include "core/fixed_point.h"
#include "heteroq/ops/quantize.h"
#include "ops/quantize_common.h"

#if defined(__GNUC__) && defined(__x86_64__)
#define HETEROQ_X86_DISPATCH 1
#define HETEROQ_TARGET_AVX2 __attribute__((target("avx2")))
#endif

namespace heteroq::ops {
namespace {

namespace hd = heteroq::detail;

// Elements per task: large enough that thread start-up is amortized.
constexpr int64_t kGrain = 32768;

bool use_fused(const at::Tensor& x) {
  return fused_kernels_enabled() &&
         (x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble);
}

// ------------------------------------------------------------------------------------------------
// Loops. `F` is a small functor with the grid in its fields (copied by value: the fields live in
// registers inside the loop).

template <typename T, typename F>
inline __attribute__((always_inline)) void unary_loop(const T* __restrict src, T* __restrict dst,
                                                      int64_t n, const F f) {
  for (int64_t i = 0; i < n; ++i) dst[i] = f(src[i]);
}

template <typename T, typename F>
inline __attribute__((always_inline)) void binary_loop(const T* __restrict a,
                                                       const T* __restrict b, T* __restrict dst,
                                                       int64_t n, const F f) {
  for (int64_t i = 0; i < n; ++i) dst[i] = f(a[i], b[i]);
}

// The same loops compiled for the x86-64 baseline and for AVX2, picked at run time.
template <typename T, typename F>
void unary_default(const T* src, T* dst, int64_t n, F f) { unary_loop(src, dst, n, f); }
template <typename T, typename F>
void binary_default(const T* a, const T* b, T* dst, int64_t n, F f) { binary_loop(a, b, dst, n, f); }

#ifdef HETEROQ_X86_DISPATCH
template <typename T, typename F>
HETEROQ_TARGET_AVX2 void unary_avx2(const T* src, T* dst, int64_t n, F f) {
  unary_loop(src, dst, n, f);
}
template <typename T, typename F>
HETEROQ_TARGET_AVX2 void binary_avx2(const T* a, const T* b, T* dst, int64_t n, F f) {
  binary_loop(a, b, dst, n, f);
}
bool cpu_has_avx2() {
  static const bool has = __builtin_cpu_supports("avx2");
  return has;
}
#endif

template <typename T, typename F>
void run_unary(const T* src, T* dst, int64_t n, F f) {
#ifdef HETEROQ_X86_DISPATCH
  if (cpu_has_avx2()) return unary_avx2(src, dst, n, f);
#endif
  unary_default(src, dst, n, f);
}

template <typename T, typename F>
void run_binary(const T* a, const T* b, T* dst, int64_t n, F f) {
#ifdef HETEROQ_X86_DISPATCH
  if (cpu_has_avx2()) return binary_avx2(a, b, dst, n, f);
#endif
  binary_default(a, b, dst, n, f);
}

// ------------------------------------------------------------------------------------------------
// Element functors over the core functions.

template <typename T, bool kSmall>
struct BitsOp {
  T s, lo, hi, step;
  T operator()(T x) const { return hd::quantize_bits_element<T, kSmall>(x, s, lo, hi, step); }
};
template <typename T>
struct SignOp {
  T a;
  T operator()(T x) const { return hd::quantize_sign_element(x, a); }
};
template <typename T, bool kSmall, bool kSlope>
struct ReluPlainOp {
  hd::ReluGridT<T> g;
  T operator()(T x) const { return hd::quantize_relu_plain_element<T, kSmall>(x, g, kSlope); }
};
template <typename T, bool kSmall, bool kSlope>
struct ReluSigmoidOp {
  hd::ReluGridT<T> g;
  T operator()(T x) const { return hd::quantize_relu_sigmoid_element<T, kSmall>(x, g, kSlope); }
};
// QKeras's qnoise_factor q < 1: x_ref + q (q(x) - x_ref), x_ref = x (quantized_bits) or the
// relu STE reference (quantized_relu).
template <typename T, typename Op>
struct BlendIdentityOp {
  Op op;
  T q;
  T operator()(T x) const { return hd::qnoise_blend(x, op(x), q); }
};
template <typename T, typename Op>
struct BlendReluOp {
  Op op;
  T q, top, slope;
  T operator()(T x) const { return hd::qnoise_blend(hd::relu_ste_reference(x, top, slope), op(x), q); }
};

template <typename T>
struct ReluGradOp {
  T top, slope;
  T operator()(T grad, T x) const { return grad * hd::relu_ste_grad(x, top, slope); }
};

// ------------------------------------------------------------------------------------------------
// Outputs of at least this many bytes get the huge-page advice.
constexpr size_t kLargeOutputBytes = size_t{8} << 20;

// Output allocation. A fresh output of many megabytes costs a page fault per 4 KiB page on first
// write, as much time as the arithmetic; asking Linux for transparent huge pages on it (advice
// only: nothing changes where they are unavailable) removes most of those faults.
at::Tensor empty_output(const at::Tensor& like) {
  at::Tensor out = at::empty_like(like, at::MemoryFormat::Contiguous);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t{2} << 20;
  const size_t bytes = out.nbytes();
  if (bytes >= kLargeOutputBytes) {
    const auto p = reinterpret_cast<uintptr_t>(out.data_ptr());
    const uintptr_t begin = (p + kHuge - 1) & ~(kHuge - 1);
    const uintptr_t end = (p + bytes) & ~(kHuge - 1);
    if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
  }
#endif
  return out;
}

// Applies the functor make_op gives to every element of x_in, into `out` when it is contiguous
// (out= variants), else into a new tensor that is returned.
template <typename MakeOp>
at::Tensor map_unary(const at::Tensor& x_in, MakeOp&& make_op, const at::Tensor* out_in = nullptr) {
  const at::Tensor x = x_in.contiguous();
  at::Tensor out = (out_in && out_in->is_contiguous()) ? *out_in : empty_output(x);
  const int64_t n = x.numel();
  if (n == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "heteroq_cpu_unary", [&] {
    const scalar_t* src = x.data_ptr<scalar_t>();
    scalar_t* dst = out.data_ptr<scalar_t>();
    make_op(scalar_t{}, [&](auto op) {
      at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
        run_unary(src + begin, dst + begin, end - begin, op);
      });
    });
  });
  return out;
}

// out= variants: write in place when `out` is contiguous, else through a temporary.
template <typename Compute>
at::Tensor& write_out(at::Tensor& out, const at::Tensor& x, const char* op, Compute&& compute) {
  detail::check_out(out, x, op);
  if (out.is_contiguous()) {
    compute(&out);
  } else {
    out.copy_(compute(nullptr));
  }
  return out;
}

// A result computed by the generic path, into *dst when given.
at::Tensor to_dst(const at::Tensor* dst, const at::Tensor& r) {
  if (!dst) return r;
  at::Tensor d = *dst;
  d.copy_(r);
  return d;
}

at::Tensor quantized_bits_impl(const at::Tensor& x, int64_t bits, int64_t integer, bool symmetric,
                               bool keep_negative, c10::optional<double> alpha,
                               double qnoise_factor, const at::Tensor* out) {
  if (!use_fused(x)) {
    return to_dst(out, detail::quantized_bits_generic(x, bits, integer, symmetric, keep_negative,
                                                      alpha, qnoise_factor));
  }
  detail::check_quantized_bits(x, bits, integer, alpha, qnoise_factor);
  const auto grid =
      hd::make_bits_grid(bits, integer, symmetric, keep_negative, detail::to_std(alpha));
  return map_unary(x, [&](auto tag, auto&& run) {
    using T = decltype(tag);
    const hd::BitsGridT<T> g(grid);
    auto emit = [&](auto op) {
      if (qnoise_factor == 1.0) return run(op);
      run(BlendIdentityOp<T, decltype(op)>{op, T(qnoise_factor)});
    };
    if (g.sign_mode) return emit(SignOp<T>{g.sign_value});
    if (g.small) return emit(BitsOp<T, true>{g.in_scale, g.lo, g.hi, g.step});
    emit(BitsOp<T, false>{g.in_scale, g.lo, g.hi, g.step});
  }, out);
}

at::Tensor quantized_bits_cpu(const at::Tensor& x, int64_t bits, int64_t integer, bool symmetric,
                              bool keep_negative, c10::optional<double> alpha,
                              double qnoise_factor) {
  return quantized_bits_impl(x, bits, integer, symmetric, keep_negative, alpha, qnoise_factor,
                             nullptr);
}

at::Tensor& quantized_bits_out_cpu(const at::Tensor& x, int64_t bits, int64_t integer,
                                   bool symmetric, bool keep_negative,
                                   c10::optional<double> alpha, double qnoise_factor,
                                   at::Tensor& out) {
  return write_out(out, x, "heteroq::quantized_bits.out", [&](const at::Tensor* dst) {
    return quantized_bits_impl(x, bits, integer, symmetric, keep_negative, alpha, qnoise_factor,
                               dst);
  });
}

at::Tensor quantized_relu_impl(const at::Tensor& x, int64_t bits, int64_t integer,
                               bool use_sigmoid, double negative_slope, double qnoise_factor,
                               const at::Tensor* out) {
  if (!use_fused(x)) {
    return to_dst(out, detail::quantized_relu_generic(x, bits, integer, use_sigmoid,
                                                      negative_slope, qnoise_factor));
  }
  detail::check_quantized_relu(x, bits, integer, negative_slope, qnoise_factor);
  const auto grid = hd::make_relu_grid(bits, integer, use_sigmoid, negative_slope);
  return map_unary(x, [&](auto tag, auto&& run) {
    using T = decltype(tag);
    const hd::ReluGridT<T> g(grid);
    auto emit = [&](auto op) {
      if (qnoise_factor == 1.0) return run(op);
      run(BlendReluOp<T, decltype(op)>{op, T(qnoise_factor), g.top, g.slope});
    };
    // Specialised functors: the mode is decided once, outside the element loop.
    const bool slope = g.slope != T(0);
    auto pick = [&](auto small) {
      constexpr bool kSmall = decltype(small)::value;
      if (!g.use_sigmoid) {
        if (slope) return emit(ReluPlainOp<T, kSmall, true>{g});
        return emit(ReluPlainOp<T, kSmall, false>{g});
      }
      if (slope) return emit(ReluSigmoidOp<T, kSmall, true>{g});
      emit(ReluSigmoidOp<T, kSmall, false>{g});
    };
    if (g.small) return pick(std::true_type{});
    pick(std::false_type{});
  }, out);
}

at::Tensor quantized_relu_cpu(const at::Tensor& x, int64_t bits, int64_t integer,
                              bool use_sigmoid, double negative_slope, double qnoise_factor) {
  return quantized_relu_impl(x, bits, integer, use_sigmoid, negative_slope, qnoise_factor,
                             nullptr);
}

at::Tensor& quantized_relu_out_cpu(const at::Tensor& x, int64_t bits, int64_t integer,
                                   bool use_sigmoid, double negative_slope, double qnoise_factor,
                                   at::Tensor& out) {
  return write_out(out, x, "heteroq::quantized_relu.out", [&](const at::Tensor* dst) {
    return quantized_relu_impl(x, bits, integer, use_sigmoid, negative_slope, qnoise_factor, dst);
  });
}

at::Tensor quantized_relu_backward_cpu(const at::Tensor& grad, const at::Tensor& x, int64_t bits,
                                       int64_t integer, bool use_sigmoid, double negative_slope) {
  if (!use_fused(x) || grad.scalar_type() != x.scalar_type() || !grad.sizes().equals(x.sizes())) {
    return detail::quantized_relu_backward_generic(grad, x, bits, integer, use_sigmoid,
                                                   negative_slope);
  }
  detail::check_quantized_relu(x, bits, integer, negative_slope);
  const auto grid = hd::make_relu_grid(bits, integer, use_sigmoid, negative_slope);
  const at::Tensor xc = x.contiguous();
  const at::Tensor gc = grad.contiguous();
  at::Tensor out = empty_output(xc);
  const int64_t n = xc.numel();
  if (n == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(xc.scalar_type(), "heteroq_quantized_relu_backward", [&] {
    const scalar_t* xs = xc.data_ptr<scalar_t>();
    const scalar_t* gs = gc.data_ptr<scalar_t>();
    scalar_t* dst = out.data_ptr<scalar_t>();
    const ReluGradOp<scalar_t> op{scalar_t(grid.top), scalar_t(grid.slope)};
    at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
      run_binary(gs + begin, xs + begin, dst + begin, end - begin, op);
    });
  });
  return out;
}

}  // namespace
}  // namespace heteroq::ops

TORCH_LIBRARY_IMPL(heteroq, CPU, m) {
  m.impl("quantized_bits", &heteroq::ops::quantized_bits_cpu);
  m.impl("quantized_relu", &heteroq::ops::quantized_relu_cpu);
  m.impl("_quantized_relu_backward", &heteroq::ops::quantized_relu_backward_cpu);
  m.impl("quantized_bits.out", &heteroq::ops::quantized_bits_out_cpu);
  m.impl("quantized_relu.out", &heteroq::ops::quantized_relu_out_cpu);
}
