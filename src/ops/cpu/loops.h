// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Internal: the machinery every fused CPU kernel shares. An element function (a small functor) is
// applied by a plain loop over raw pointers that the compiler vectorizes; on x86-64 the loop is
// compiled twice, for the baseline (SSE2) and for AVX2, and picked at run time. The IEEE
// operations and their order are the same in both (-ffp-contract=off: no FMA), so both give the
// same bits as the device-generic kernels. Work is split across threads with at::parallel_for.
// Include only from src/ops/cpu/*.cpp (compiled with -O3 -fno-trapping-math).
#pragma once

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <cstdint>

#include "heteroq/ops/quantize.h"
#include "ops/quantize_common.h"

#if defined(__GNUC__) && defined(__x86_64__)
#define HETEROQ_X86_DISPATCH 1
#define HETEROQ_TARGET_AVX2 __attribute__((target("avx2")))
#endif

namespace heteroq::ops::cpu {

// Elements per task: large enough that thread start-up is amortized.
constexpr int64_t kGrain = 32768;

inline bool use_fused(const at::Tensor& x) {
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
inline bool cpu_has_avx2() {
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
// Output allocation: detail::empty_output (quantize_common.h), with huge pages for large outputs.
using detail::empty_output;

// Applies the functor make_op gives to every element of x_in, into `out` when it is contiguous
// (out= variants), else into a new tensor that is returned.
template <typename MakeOp>
at::Tensor map_unary(const at::Tensor& x_in, MakeOp&& make_op, const at::Tensor* out_in = nullptr) {
  const at::Tensor x = x_in.contiguous();
  // An `out` sharing memory with x gets a temporary (the loops assume no aliasing).
  const bool direct = out_in && out_in->is_contiguous() && !out_in->is_alias_of(x);
  at::Tensor out = direct ? *out_in : empty_output(x);
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
  const at::Tensor r = compute(out.is_contiguous() ? &out : nullptr);
  if (!r.is_same(out)) out.copy_(r);  // not contiguous, or sharing memory with x
  return out;
}

// A result computed by the generic path, into *dst when given.
inline at::Tensor to_dst(const at::Tensor* dst, const at::Tensor& r) {
  if (!dst) return r;
  at::Tensor d = *dst;
  d.copy_(r);
  return d;
}


// Applies `op(grad, x)` to two tensors of the same shape and dtype, into a new tensor.
template <typename MakeOp>
at::Tensor map_binary(const at::Tensor& a_in, const at::Tensor& b_in, MakeOp&& make_op) {
  const at::Tensor a = a_in.contiguous();
  const at::Tensor b = b_in.contiguous();
  at::Tensor out = empty_output(b);
  const int64_t n = b.numel();
  if (n == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(b.scalar_type(), "heteroq_cpu_binary", [&] {
    const scalar_t* pa = a.data_ptr<scalar_t>();
    const scalar_t* pb = b.data_ptr<scalar_t>();
    scalar_t* dst = out.data_ptr<scalar_t>();
    make_op(scalar_t{}, [&](auto op) {
      at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
        run_binary(pa + begin, pb + begin, dst + begin, end - begin, op);
      });
    });
  });
  return out;
}

}  // namespace heteroq::ops::cpu
