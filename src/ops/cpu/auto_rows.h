// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// The machinery shared by the fused CPU kernels with per-channel scales chosen from the data
// (cpu/quantize_auto_kernel.cpp: quantized_bits_auto; cpu/binary_auto_kernel.cpp: binary_auto,
// ternary_auto):
//   - the rows layout: the kept axes first, the reduced axes last (a contiguous tensor with the
//     default axis 0 is already (C, n); other layouts are permuted into a contiguous copy), and
//     back to x's layout; the entry glue around it (generic fallback, float16/bfloat16 in float32);
//   - the rows split across threads, each thread taking its rows in blocks that fit in L2;
//   - max |x| per row (scalar and AVX2);
//   - the po2 rounding 2^round(log(s + eps) / ln 2) as detail::po2_scale computes it.
// Internal to those two kernels (compiled with the same flags: -O3, -ffp-contract=off).
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <tuple>
#include <type_traits>
#include <vector>

#include "ops/cpu/loops.h"

#ifdef HETEROQ_X86_DISPATCH
#include <immintrin.h>
#endif

namespace heteroq::ops::cpu {

// ------------------------------------------------------------------------------------------------
// Layout: the rows view of x (kept axes first, reduced axes last), and back.

struct Rows {
  std::vector<int64_t> perm, scale_shape;
  int64_t n = 1, rows = 1;
  at::Tensor src;  // contiguous (rows, n) data in x's dtype
  bool direct = false;
};

inline Rows rows_of(const at::Tensor& x, const std::vector<int64_t>& dims) {
  Rows r;
  const int64_t rank = x.dim();
  std::vector<bool> reduced(rank, false);
  for (int64_t d : dims) reduced[d] = true;
  r.scale_shape.assign(x.sizes().begin(), x.sizes().end());
  for (int64_t d = 0; d < rank; ++d) {
    if (!reduced[d]) r.perm.push_back(d);
  }
  for (int64_t d : dims) {
    r.perm.push_back(d);
    r.n *= x.size(d);
    r.scale_shape[d] = 1;
  }
  r.rows = x.numel() / r.n;
  const at::Tensor xp = x.permute(r.perm);
  r.direct = xp.is_contiguous();
  r.src = r.direct ? xp : xp.contiguous();
  return r;
}

// Back to x's axes: a view when x's permuted view was contiguous, else a copy in x's layout.
inline at::Tensor to_x_layout(const at::Tensor& dst, const Rows& r, const at::Tensor& x) {
  const int64_t rank = x.dim();
  std::vector<int64_t> inverse(rank);
  for (int64_t d = 0; d < rank; ++d) inverse[r.perm[d]] = d;
  at::Tensor out = dst.permute(inverse);
  if (!r.direct) {
    at::Tensor laid = at::empty_like(x);
    laid.copy_(out);
    out = laid;
  }
  return out;
}

// Rank <= 1 (one scale per element) and empty tensors take the generic path.
inline bool auto_fusable(const at::Tensor& x) {
  return fused_kernels_enabled() && x.dim() >= 2 && x.numel() > 0 &&
         at::isFloatingType(x.scalar_type());
}

// The fused path of an op whose argument checks have passed (x: auto_fusable): float16/bfloat16
// are computed in float32 with the output rounded to x's dtype (as the generic kernels do), every
// axis kept takes generic(x), else run_rows(src, dst, scales, rows, n) fills the (rows, n) output
// and the rows' scales (T* pointers, T = float or double).
template <typename Generic, typename RunRows>
std::tuple<at::Tensor, at::Tensor> fused_rows(const at::Tensor& x,
                                              at::OptionalIntArrayRef scale_axis,
                                              const Generic& generic, const RunRows& run_rows) {
  if (detail::is_reduced_precision(x)) {
    auto [out, scale] = fused_rows(x.to(at::kFloat), scale_axis, generic, run_rows);
    return std::make_tuple(out.to(x.scalar_type()), scale);
  }
  const std::vector<int64_t> dims = detail::reduce_dims(x, scale_axis);
  if (dims.empty()) return generic(x);
  const Rows r = rows_of(x, dims);
  at::Tensor dst = detail::empty_output(r.src);
  at::Tensor scale = at::empty(r.scale_shape, x.options());
  auto run = [&](auto zero) {
    using T = decltype(zero);
    run_rows(r.src.data_ptr<T>(), dst.data_ptr<T>(), scale.data_ptr<T>(), r.rows, r.n);
  };
  if (x.scalar_type() == at::kDouble) {
    run(double{0});
  } else {
    run(float{0});  // data_ptr<float> checks the dtype
  }
  return std::make_tuple(to_x_layout(dst, r, x), scale);
}

// ------------------------------------------------------------------------------------------------
// Rows across threads, in blocks of rows: the passes after a block's first read it from L2.

constexpr int64_t kBlockBytes = int64_t{256} << 10;

// One thread's rows [begin, end), in blocks of at most `block` rows.
struct RowBlocks {
  int64_t begin, end, block;
  // The most rows of a block (the size of per-block scratch).
  int64_t max_rows() const { return std::min(block, end - begin); }
  // f(r0, nb) for each block: rows [r0, r0 + nb), in order.
  template <typename F>
  void each(const F& f) const {
    for (int64_t r0 = begin; r0 < end; r0 += block) f(r0, std::min(block, end - r0));
  }
};

template <typename T>
class Exp2Table;

// Splits rows [0, rows) of n elements across threads (at::parallel_for) and calls
// thread_body(const RowBlocks&) once per thread. at::log (po2_round) can be called inside:
// autograd is skipped, and the exp2 table is filled here, before the parallel region.
template <typename T, typename ThreadBody>
void parallel_row_blocks(int64_t rows, int64_t n, bool po2, const ThreadBody& thread_body) {
  if (po2) Exp2Table<T>::get();
  const int64_t row_bytes = n * static_cast<int64_t>(sizeof(T));
  const int64_t block = std::max<int64_t>(1, kBlockBytes / row_bytes);
  const int64_t grain = std::max<int64_t>(1, kGrain / n);
  at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    at::AutoDispatchBelowADInplaceOrView guard;
    thread_body(RowBlocks{begin, end, block});
  });
}

// ------------------------------------------------------------------------------------------------
// max |x * inv_mi| over a row; NaN if any element is NaN (at::amax propagates NaN).

template <typename T>
T row_absmax_scalar(const T* x, int64_t n, T inv_mi) {
  T m = T(0);
  bool nan = false;
  for (int64_t i = 0; i < n; ++i) {
    const T a = std::abs(x[i] * inv_mi);
    nan |= std::isnan(a);
    m = a > m ? a : m;
  }
  return nan ? std::numeric_limits<T>::quiet_NaN() : m;
}

#ifdef HETEROQ_X86_DISPATCH

// The AVX2 operations both kernels use, 8 floats or 4 doubles at a time; each kernel extends
// these with its own.
struct VecF8 {
  using T = float;
  using V = __m256;
  static constexpr int kLanes = 8;
  static HETEROQ_TARGET_AVX2 V set1(T v) { return _mm256_set1_ps(v); }
  static HETEROQ_TARGET_AVX2 V load(const T* p) { return _mm256_loadu_ps(p); }
  static HETEROQ_TARGET_AVX2 void store(T* p, V v) { _mm256_storeu_ps(p, v); }
  static HETEROQ_TARGET_AVX2 V add(V a, V b) { return _mm256_add_ps(a, b); }
  static HETEROQ_TARGET_AVX2 V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static HETEROQ_TARGET_AVX2 V max(V a, V b) { return _mm256_max_ps(a, b); }
  static HETEROQ_TARGET_AVX2 V vor(V a, V b) { return _mm256_or_ps(a, b); }
  static HETEROQ_TARGET_AVX2 V abs(V a) {
    return _mm256_and_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)));
  }
  static HETEROQ_TARGET_AVX2 V unord(V a) { return _mm256_cmp_ps(a, a, _CMP_UNORD_Q); }
  static HETEROQ_TARGET_AVX2 bool any(V m) { return _mm256_movemask_ps(m) != 0; }
  static HETEROQ_TARGET_AVX2 T hmax(V v) {
    alignas(32) T t[kLanes];
    _mm256_store_ps(t, v);
    T m = t[0];
    for (int i = 1; i < kLanes; ++i) m = t[i] > m ? t[i] : m;
    return m;
  }
};

struct VecD4 {
  using T = double;
  using V = __m256d;
  static constexpr int kLanes = 4;
  static HETEROQ_TARGET_AVX2 V set1(T v) { return _mm256_set1_pd(v); }
  static HETEROQ_TARGET_AVX2 V load(const T* p) { return _mm256_loadu_pd(p); }
  static HETEROQ_TARGET_AVX2 void store(T* p, V v) { _mm256_storeu_pd(p, v); }
  static HETEROQ_TARGET_AVX2 V add(V a, V b) { return _mm256_add_pd(a, b); }
  static HETEROQ_TARGET_AVX2 V mul(V a, V b) { return _mm256_mul_pd(a, b); }
  static HETEROQ_TARGET_AVX2 V max(V a, V b) { return _mm256_max_pd(a, b); }
  static HETEROQ_TARGET_AVX2 V vor(V a, V b) { return _mm256_or_pd(a, b); }
  static HETEROQ_TARGET_AVX2 V abs(V a) {
    return _mm256_and_pd(a, _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fffffffffffffffLL)));
  }
  static HETEROQ_TARGET_AVX2 V unord(V a) { return _mm256_cmp_pd(a, a, _CMP_UNORD_Q); }
  static HETEROQ_TARGET_AVX2 bool any(V m) { return _mm256_movemask_pd(m) != 0; }
  static HETEROQ_TARGET_AVX2 T hmax(V v) {
    alignas(32) T t[kLanes];
    _mm256_store_pd(t, v);
    T m = t[0];
    for (int i = 1; i < kLanes; ++i) m = t[i] > m ? t[i] : m;
    return m;
  }
};

// The vector type of T: F (8 floats) for float, D (4 doubles) for double.
template <typename T, typename F, typename D>
using VecFor = std::conditional_t<std::is_same_v<T, float>, F, D>;

template <typename S>
HETEROQ_TARGET_AVX2 typename S::T row_absmax_avx2(const typename S::T* x, int64_t n,
                                                  typename S::T inv_mi) {
  using T = typename S::T;
  using V = typename S::V;
  constexpr int L = S::kLanes;
  const V vinv = S::set1(inv_mi);
  V m0 = S::set1(T(0)), m1 = m0, nan = m0;
  int64_t i = 0;
  for (; i + 2 * L <= n; i += 2 * L) {
    const V a0 = S::abs(S::mul(S::load(x + i), vinv));
    const V a1 = S::abs(S::mul(S::load(x + i + L), vinv));
    nan = S::vor(nan, S::vor(S::unord(a0), S::unord(a1)));
    m0 = S::max(m0, a0);
    m1 = S::max(m1, a1);
  }
  if (S::any(nan)) return std::numeric_limits<T>::quiet_NaN();
  const T head = S::hmax(S::max(m0, m1));
  const T tail = row_absmax_scalar(x + i, n - i, inv_mi);
  if (std::isnan(tail)) return tail;
  return tail > head ? tail : head;
}

#endif  // HETEROQ_X86_DISPATCH

template <typename T>
T row_absmax(const T* x, int64_t n, T inv_mi) {
#ifdef HETEROQ_X86_DISPATCH
  if (cpu_has_avx2()) return row_absmax_avx2<VecFor<T, VecF8, VecD4>>(x, n, inv_mi);
#endif
  return row_absmax_scalar(x, n, inv_mi);
}

// ------------------------------------------------------------------------------------------------
// po2 rounding, as detail::po2_scale computes it: exp2(round(log(s + 1e-7) / ln 2)) in T. It
// calls at::log itself, on a block's scales (at::log is element-wise: a value's logarithm does
// not depend on its position in the tensor), so it rounds exactly where the generic kernels do
// (the logarithm is implementation-defined to an ulp, and round() near k + 1/2 sees that ulp);
// exp2 of the rounded integers comes from a table that at::exp2 filled once.

// at::exp2 of every integer a rounded logarithm can be (|log2| of a finite double is < 1100), and
// of +-inf; filled once per dtype.
template <typename T>
class Exp2Table {
 public:
  static constexpr int kMin = -1100, kMax = 1100;
  static const Exp2Table& get() {
    static const Exp2Table table;
    return table;
  }
  T operator()(T r) const {
    if (std::isnan(r)) return r;  // exp2(NaN) is NaN
    if (r == std::numeric_limits<T>::infinity()) return pos_inf_;
    if (r == -std::numeric_limits<T>::infinity()) return neg_inf_;
    if (r >= T(kMin) && r <= T(kMax)) return values_[static_cast<int>(r) - kMin];
    return at::exp2(at::full({}, r, at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value)))
        .template item<T>();  // unreachable for the scales here (s + 1e-7 is in [1e-7, inf])
  }

 private:
  Exp2Table() {
    at::AutoDispatchBelowADInplaceOrView guard;
    const auto opts = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
    const at::Tensor e = at::exp2(at::arange(kMin, kMax + 1, opts)).contiguous();
    values_.assign(e.data_ptr<T>(), e.data_ptr<T>() + e.numel());
    const T inf = std::numeric_limits<T>::infinity();
    const at::Tensor special = at::exp2(at::tensor(std::vector<T>{inf, -inf}, opts));
    pos_inf_ = special[0].template item<T>();
    neg_inf_ = special[1].template item<T>();
  }
  std::vector<T> values_;
  T pos_inf_{}, neg_inf_{};
};

// Scratch tensors of po2_round for up to k scales at a time (one per thread).
template <typename T>
struct Po2Scratch {
  at::Tensor u, lg;
  explicit Po2Scratch(int64_t k) {
    const auto opts = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
    u = at::empty({k}, opts);
    lg = at::empty({k}, opts);
  }
};

// Rounds s[0..k) to powers of two in place (k <= the scratch's size).
template <typename T>
void po2_round(T* s, int64_t k, Po2Scratch<T>& scratch) {
  if (k == 0) return;
  T* pu = scratch.u.template data_ptr<T>();
  for (int64_t i = 0; i < k; ++i) pu[i] = s[i] + T(1e-7);
  at::Tensor lgk = scratch.lg.narrow(0, 0, k);
  at::log_out(lgk, scratch.u.narrow(0, 0, k));
  const T* pl = lgk.template data_ptr<T>();
  const T ln2 = static_cast<T>(std::log(2.0));
  const Exp2Table<T>& exp2 = Exp2Table<T>::get();
  for (int64_t i = 0; i < k; ++i) s[i] = exp2(std::nearbyint(pl[i] / ln2));
}

}  // namespace heteroq::ops::cpu
