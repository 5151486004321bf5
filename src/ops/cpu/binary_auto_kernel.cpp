// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Fused CPU kernels of binary_auto and ternary_auto (alpha "auto" / "auto_po2"): per-channel
// least-squares scales chosen from the data, exactly as the device-generic kernels
// (ops/binary_ops.cpp: binary_auto_generic, ternary_auto_impl) compute them, which they must match
// bit for bit (output and scale).
//
// The channels are rows, split across threads in blocks that fit in L2 (the layout, the blocks and
// the entry glue are shared with cpu/quantize_auto_kernel.cpp: cpu/auto_rows.h). binary: one pass
// per block computes the least-squares sums (reading the block from memory), a second writes the
// output (reading it from cache). ternary: one pass finds the maxima, the number_of_unrolls
// iterations re-read the block from cache (the sums per row), and a last pass writes the output.
// Apart from the permuted copy, no temporary is input-sized.
//
// Bit-exactness with the generic kernels:
//   - the least-squares sums are the same double additions in the same order: 16 lanes, lane j
//     adding the row's products j, j + 16, ... from +0.0, then the fixed combining tree (see
//     auto_lsq_scale in ops/binary_ops.cpp). Here the 16 lanes are four AVX2 registers of doubles
//     (elements i..i+3, i+4..i+7, i+8..i+11, i+12..i+15 of each group of 16), the last partial
//     group is added lane by lane, and the products are the generic kernel's x q (x k) in the
//     tensor's dtype: |x| for the kept elements of ternary and for binary (x sign(x), sign(0) = 1;
//     NaN for NaN), x (x >= 0) for binary use_01 (NaN for NaN and -inf: -inf * 0). Terms that are
//     +-0 in one path and +0 in the other cannot change a sum that starts from +0.0. sum(q q) is a
//     count, exact in any order (counted in integers here);
//   - the ratio (sum(x q) / n) / (sum(q q) / n + 1e-7) is taken in double and rounded once to the
//     dtype, as the generic kernel does;
//   - the po2 rounding 2^round(log(s + eps) / ln 2) calls at::log itself, on the block's scales,
//     so it rounds exactly where detail::po2_scale does (po2_round in cpu/auto_rows.h);
//   - ternary's codes: the generic kernel keeps x where |s round(x / s)| >= s / 2. That test is
//     monotone in |x|, so for a finite s > 0 it is |x| >= a_min(s), a_min the smallest value it
//     keeps, found once per row and iteration by evaluating that same expression (same IEEE
//     division, round-half-even and product) at a few candidates near s / 2 (code_threshold).
//     For s = 0, inf or NaN it keeps nothing. Zeros are never counted (q = sign(0) = 0), hence
//     a_min >= the smallest subnormal. A row with a NaN or an infinity has s = inf or NaN from
//     the start and NaN after the first iteration (x * 0 = NaN in its sum), so the vector loops
//     see finite rows only; rows that keep nothing get their sum (0, or NaN) without a pass;
//   - the iteration s <- f(s) depends on s only through the codes: when a row's threshold repeats,
//     its codes, hence its next scales, repeat, and its remaining iterations are skipped;
//   - the outputs are s k + 0 and s q + 0 in the dtype, as in the generic kernels.
// Rank <= 1 (one scale per element), every axis kept, and empty tensors take the generic path;
// float16/bfloat16 are computed in float32 as the generic kernels do.
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <tuple>
#include <type_traits>
#include <vector>

#include "ops/cpu/auto_rows.h"

namespace heteroq::ops {
namespace {

using namespace heteroq::ops::cpu;  // NOLINT: the shared loops (a .cpp file, not a header)

// The lanes of the least-squares sums: kLsqLanes in ops/binary_ops.cpp.
constexpr int kLanes = 16;
// The AVX2 loops count in 32-bit lanes (at most 2 increments per lane and group of 16 elements);
// they flush their counters every kCountChunk elements.
constexpr int64_t kCountChunk = int64_t{1} << 30;

enum class Mode { kBinary, kBinary01, kTernary };

// ------------------------------------------------------------------------------------------------
// Scalar element functions: the reference the vector loops follow operation by operation.

// The product x q of the least-squares sum and whether q q = 1 (counted for sum(q q)).
// kTernary: q = sign(x) where |x| >= thr (thr > 0: zeros are never kept), else 0 (finite rows only).
template <Mode M, typename T>
inline T lsq_term(T x, T thr, bool* counted) {
  if constexpr (M == Mode::kBinary) {
    *counted = false;  // sum(k k) = n (or NaN with a NaN, where the sum of x k is NaN too)
    return std::abs(x);
  } else if constexpr (M == Mode::kBinary01) {
    const bool ge = x >= T(0);
    *counted = ge;
    return x * (ge ? T(1) : T(0));
  } else {
    const T a = std::abs(x);
    const bool keep = a >= thr;
    *counted = keep;
    return keep ? a : T(0);
  }
}

template <Mode M, typename T>
inline T out_element(T x, T s, T thr) {
  if constexpr (M == Mode::kTernary) {
    const T q = std::abs(x) >= thr ? std::copysign(T(1), x) : T(0);
    return s * q + T(0);
  } else {
    const T low = M == Mode::kBinary01 ? T(0) : T(-1);
    const T k = std::isnan(x) ? x : (x < T(0) ? low : T(1));
    return s * k + T(0);
  }
}

// The fixed combining tree of auto_lsq_scale (ops/binary_ops.cpp), then + 0.0.
inline double combine_lanes(const double* lane) {
  double c[4];
  for (int j = 0; j < 4; ++j) c[j] = (lane[j] + lane[4 + j]) + (lane[8 + j] + lane[12 + j]);
  return ((c[0] + c[1]) + (c[2] + c[3])) + 0.0;
}

// Adds x[0..n) (n < 16 when called after the vector loop) to the lanes 0, 1, ..., in order.
template <Mode M, typename T>
void lanes_add_scalar(double* lane, const T* x, int64_t n, T thr, int64_t* count) {
  int64_t c = 0;
  for (int64_t i = 0; i < n; ++i) {
    bool counted = false;
    lane[i % kLanes] += static_cast<double>(lsq_term<M>(x[i], thr, &counted));
    c += counted ? 1 : 0;
  }
  *count += c;
}

template <Mode M, typename T>
void row_sums_scalar(const T* x, int64_t n, T thr, double* sx, int64_t* count) {
  double lane[kLanes] = {};
  *count = 0;
  lanes_add_scalar<M>(lane, x, n, thr, count);
  *sx = combine_lanes(lane);
}

template <Mode M, typename T>
void row_out_scalar(const T* x, T* out, int64_t n, T s, T thr) {
  for (int64_t i = 0; i < n; ++i) out[i] = out_element<M>(x[i], s, thr);
}

// ------------------------------------------------------------------------------------------------
// AVX2 loops (the same operations, 8 floats or 4 doubles at a time; the tails run the scalar
// code).

#ifdef HETEROQ_X86_DISPATCH

struct F8 : VecF8 {
  static HETEROQ_TARGET_AVX2 V zero() { return _mm256_setzero_ps(); }
  static HETEROQ_TARGET_AVX2 V vand(V a, V b) { return _mm256_and_ps(a, b); }
  static HETEROQ_TARGET_AVX2 V blend(V a, V b, V m) { return _mm256_blendv_ps(a, b, m); }
  static HETEROQ_TARGET_AVX2 V signbit() {
    return _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(0x80000000u)));
  }
  static HETEROQ_TARGET_AVX2 V ge(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_GE_OQ); }
  static HETEROQ_TARGET_AVX2 V lt(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  // Vector k of a group of 16 (k = 0, 1): its 8 products widened into the lanes 8k..8k+7.
  static HETEROQ_TARGET_AVX2 void accumulate(__m256d* acc, int k, V p) {
    acc[2 * k] = _mm256_add_pd(acc[2 * k], _mm256_cvtps_pd(_mm256_castps256_ps128(p)));
    acc[2 * k + 1] = _mm256_add_pd(acc[2 * k + 1], _mm256_cvtps_pd(_mm256_extractf128_ps(p, 1)));
  }
  // Counters: a comparison mask is -1 (all ones) per counted element.
  static HETEROQ_TARGET_AVX2 __m256i count(__m256i c, V m) {
    return _mm256_sub_epi32(c, _mm256_castps_si256(m));
  }
  static HETEROQ_TARGET_AVX2 int64_t count_total(__m256i c) {
    alignas(32) int32_t t[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(t), c);
    int64_t s = 0;
    for (int i = 0; i < 8; ++i) s += t[i];
    return s;
  }
};

struct D4 : VecD4 {
  static HETEROQ_TARGET_AVX2 V zero() { return _mm256_setzero_pd(); }
  static HETEROQ_TARGET_AVX2 V vand(V a, V b) { return _mm256_and_pd(a, b); }
  static HETEROQ_TARGET_AVX2 V blend(V a, V b, V m) { return _mm256_blendv_pd(a, b, m); }
  static HETEROQ_TARGET_AVX2 V signbit() {
    return _mm256_castsi256_pd(_mm256_set1_epi64x(static_cast<long long>(0x8000000000000000ull)));
  }
  static HETEROQ_TARGET_AVX2 V ge(V a, V b) { return _mm256_cmp_pd(a, b, _CMP_GE_OQ); }
  static HETEROQ_TARGET_AVX2 V lt(V a, V b) { return _mm256_cmp_pd(a, b, _CMP_LT_OQ); }
  // Vector k of a group of 16 (k = 0..3): lanes 4k..4k+3.
  static HETEROQ_TARGET_AVX2 void accumulate(__m256d* acc, int k, V p) {
    acc[k] = _mm256_add_pd(acc[k], p);
  }
  static HETEROQ_TARGET_AVX2 __m256i count(__m256i c, V m) {
    return _mm256_sub_epi64(c, _mm256_castpd_si256(m));
  }
  static HETEROQ_TARGET_AVX2 int64_t count_total(__m256i c) {
    alignas(32) int64_t t[4];
    _mm256_store_si256(reinterpret_cast<__m256i*>(t), c);
    return (t[0] + t[1]) + (t[2] + t[3]);
  }
};

// One vector of products (lsq_term) and its count mask.
template <typename S, Mode M>
HETEROQ_TARGET_AVX2 inline typename S::V lsq_term_avx2(typename S::V x, typename S::V vthr,
                                                       typename S::V* counted) {
  using V = typename S::V;
  if constexpr (M == Mode::kBinary) {
    *counted = S::zero();
    return S::abs(x);
  } else if constexpr (M == Mode::kBinary01) {
    const V ge = S::ge(x, S::zero());
    *counted = ge;
    return S::mul(x, S::vand(ge, S::set1(typename S::T(1))));
  } else {
    const V a = S::abs(x);
    const V keep = S::ge(a, vthr);
    *counted = keep;
    return S::vand(a, keep);
  }
}

template <typename S, Mode M>
HETEROQ_TARGET_AVX2 void row_sums_avx2(const typename S::T* x, int64_t n, typename S::T thr,
                                       double* sx, int64_t* count) {
  using V = typename S::V;
  constexpr int L = S::kLanes;
  constexpr int kVectors = kLanes / L;  // per group of 16
  const V vthr = S::set1(thr);
  __m256d acc[4];
  for (auto& a : acc) a = _mm256_setzero_pd();
  int64_t total = 0;
  int64_t i = 0;
  const int64_t full = n - n % kLanes;
  while (i < full) {
    const int64_t stop = std::min(full, i + kCountChunk);
    __m256i cnt = _mm256_setzero_si256();
    for (; i < stop; i += kLanes) {
      for (int k = 0; k < kVectors; ++k) {
        V counted;
        const V t = lsq_term_avx2<S, M>(S::load(x + i + k * L), vthr, &counted);
        S::accumulate(acc, k, t);
        if constexpr (M != Mode::kBinary) cnt = S::count(cnt, counted);
      }
    }
    total += S::count_total(cnt);
  }
  alignas(32) double lane[kLanes];
  for (int k = 0; k < 4; ++k) _mm256_store_pd(lane + 4 * k, acc[k]);
  lanes_add_scalar<M>(lane, x + full, n - full, thr, &total);
  *sx = combine_lanes(lane);
  *count = total;
}

template <typename S, Mode M>
HETEROQ_TARGET_AVX2 void row_out_avx2(const typename S::T* x, typename S::T* out, int64_t n,
                                      typename S::T s, typename S::T thr) {
  using T = typename S::T;
  using V = typename S::V;
  constexpr int L = S::kLanes;
  const V vs = S::set1(s), vthr = S::set1(thr), vzero = S::zero(), vone = S::set1(T(1)),
          vlow = S::set1(M == Mode::kBinary01 ? T(0) : T(-1)), vsign = S::signbit();
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    const V xv = S::load(x + i);
    V q;
    if constexpr (M == Mode::kTernary) {
      q = S::vand(S::ge(S::abs(xv), vthr), S::vor(vone, S::vand(xv, vsign)));
    } else {
      q = S::blend(S::blend(vone, vlow, S::lt(xv, vzero)), xv, S::unord(xv));
    }
    S::store(out + i, S::add(S::mul(vs, q), vzero));
  }
  row_out_scalar<M>(x + i, out + i, n - i, s, thr);
}

template <typename T>
using Simd = VecFor<T, F8, D4>;

#endif  // HETEROQ_X86_DISPATCH

template <Mode M, typename T>
void row_sums(const T* x, int64_t n, T thr, double* sx, int64_t* count) {
#ifdef HETEROQ_X86_DISPATCH
  if (cpu_has_avx2()) return row_sums_avx2<Simd<T>, M>(x, n, thr, sx, count);
#endif
  row_sums_scalar<M>(x, n, thr, sx, count);
}

template <Mode M, typename T>
void row_out(const T* x, T* out, int64_t n, T s, T thr) {
#ifdef HETEROQ_X86_DISPATCH
  if (cpu_has_avx2()) return row_out_avx2<Simd<T>, M>(x, out, n, s, thr);
#endif
  row_out_scalar<M>(x, out, n, s, thr);
}

// ------------------------------------------------------------------------------------------------
// ternary's codes.

template <typename T>
struct BitsOf;
template <>
struct BitsOf<float> {
  using U = uint32_t;
};
template <>
struct BitsOf<double> {
  using U = uint64_t;
};

// The bit pattern of a non-negative value (ordered as the values), and back.
template <typename T>
int64_t to_bits(T v) {
  typename BitsOf<T>::U u;
  std::memcpy(&u, &v, sizeof u);
  return static_cast<int64_t>(u);
}
template <typename T>
T from_bits(int64_t b) {
  const auto u = static_cast<typename BitsOf<T>::U>(b);
  T v;
  std::memcpy(&v, &u, sizeof v);
  return v;
}

// The generic kernel's test for an element of magnitude a >= 0: |s round(a / s)| >= s / 2.
template <typename T>
bool keeps(T a, T s) {
  const T r = std::nearbyint(a / s);
  return std::abs(s * r) >= s / T(2);
}

// The codes' threshold for the scale s: q = sign(x) where |x| >= thr, else 0. NaN (nothing kept)
// for s = 0, inf, NaN: s round(x / s) is then NaN or 0 * inf. Otherwise the smallest a >= 0 that
// keeps(a, s) holds for (it is monotone in a: a / s, round, s r and abs are; keeps(inf, s)
// holds), at least the smallest subnormal (a kept zero has q = sign(0) = 0 anyway).
template <typename T>
T code_threshold(T s) {
  if (!(s > T(0)) || !std::isfinite(s)) return std::numeric_limits<T>::quiet_NaN();
  // Non-negative values are ordered as their bit patterns; search [lo, hi] with keeps(hi) and
  // !keeps(lo) (lo = -1: below zero), starting a few values around s / 2.
  const int64_t inf_bits = to_bits(std::numeric_limits<T>::infinity());
  const int64_t c = to_bits(s / T(2));
  int64_t hi = std::min(c + 4, inf_bits);
  if (!keeps(from_bits<T>(hi), s)) hi = inf_bits;
  int64_t lo = c - 4;
  if (lo < 0 || keeps(from_bits<T>(lo), s)) lo = -1;
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (keeps(from_bits<T>(mid), s)) {
      hi = mid;
    } else {
      lo = mid;
    }
  }
  const T a_min = from_bits<T>(hi);
  const T tiny = std::numeric_limits<T>::denorm_min();
  return a_min > tiny ? a_min : tiny;
}

template <typename T>
bool same_bits(T a, T b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

// ------------------------------------------------------------------------------------------------
// The drivers: rows [0, rows) of n elements each, src/dst contiguous (rows x n), scales[rows].

template <typename T>
T lsq_ratio(double sx, int64_t count, double dn) {
  return static_cast<T>((sx / dn) / (static_cast<double>(count) / dn + 1e-7));
}

template <Mode M, typename T>
void binary_rows(const T* src, T* dst, T* scales, int64_t rows, int64_t n, bool po2) {
  const double dn = static_cast<double>(n);
  parallel_row_blocks<T>(rows, n, po2, [&](const RowBlocks& blocks) {
    Po2Scratch<T> scratch(blocks.max_rows());
    std::vector<T> s(blocks.max_rows());
    blocks.each([&](int64_t r0, int64_t nb) {
      for (int64_t j = 0; j < nb; ++j) {
        double sx = 0.0;
        int64_t count = 0;
        row_sums<M>(src + (r0 + j) * n, n, T(0), &sx, &count);
        s[j] = lsq_ratio<T>(sx, M == Mode::kBinary ? n : count, dn);
      }
      if (po2) po2_round(s.data(), nb, scratch);
      for (int64_t j = 0; j < nb; ++j) {
        row_out<M>(src + (r0 + j) * n, dst + (r0 + j) * n, n, s[j], T(0));
        scales[r0 + j] = s[j];
      }
    });
  });
}

template <typename T>
void ternary_rows(const T* src, T* dst, T* scales, int64_t rows, int64_t n, bool po2,
                  int64_t unrolls) {
  const double dn = static_cast<double>(n);
  const T none = std::numeric_limits<T>::quiet_NaN();
  parallel_row_blocks<T>(rows, n, po2, [&](const RowBlocks& blocks) {
    const int64_t cap_rows = blocks.max_rows();
    Po2Scratch<T> scratch(cap_rows);
    std::vector<T> s(cap_rows), thr(cap_rows), next(cap_rows);
    std::vector<char> finite(cap_rows);
    std::vector<int64_t> active(cap_rows);
    blocks.each([&](int64_t r0, int64_t nb) {
      for (int64_t j = 0; j < nb; ++j) {
        const T mx = row_absmax(src + (r0 + j) * n, n, T(1));  // x * 1 is x
        finite[j] = std::isfinite(mx);
        s[j] = (mx * T(2)) / T(3);
      }
      if (po2) po2_round(s.data(), nb, scratch);
      // thr[j]: the codes of the current iteration (from the previous scale); NaN: all zero.
      for (int64_t j = 0; j < nb; ++j) thr[j] = unrolls > 0 ? code_threshold(s[j]) : none;
      int64_t na = unrolls > 0 ? nb : 0;
      for (int64_t j = 0; j < na; ++j) active[j] = j;
      for (int64_t it = 0; it < unrolls && na > 0; ++it) {
        for (int64_t a = 0; a < na; ++a) {
          const int64_t j = active[a];
          double sx = 0.0;
          int64_t count = 0;
          if (std::isnan(thr[j])) {
            // q = 0: the sum of x * 0 is +0, or NaN with a NaN or an infinity.
            sx = finite[j] ? 0.0 : std::numeric_limits<double>::quiet_NaN();
          } else {
            row_sums<Mode::kTernary>(src + (r0 + j) * n, n, thr[j], &sx, &count);
          }
          next[a] = lsq_ratio<T>(sx, count, dn);
        }
        if (po2) po2_round(next.data(), na, scratch);
        const bool last = it + 1 == unrolls;
        int64_t still = 0;
        for (int64_t a = 0; a < na; ++a) {
          const int64_t j = active[a];
          s[j] = next[a];
          if (last) continue;
          // Same threshold: same codes, so the next scale is s[j] again (a fixed point).
          const T t = code_threshold(s[j]);
          if (!same_bits(t, thr[j])) {
            thr[j] = t;
            active[still++] = j;
          }
        }
        na = still;
      }
      for (int64_t j = 0; j < nb; ++j) {
        T* out = dst + (r0 + j) * n;
        if (std::isnan(thr[j])) {
          std::fill(out, out + n, s[j] * T(0) + T(0));  // q = 0: +0, or NaN for s = inf, NaN
        } else {
          row_out<Mode::kTernary>(src + (r0 + j) * n, out, n, s[j], thr[j]);
        }
        scales[r0 + j] = s[j];
      }
    });
  });
}

std::tuple<at::Tensor, at::Tensor> binary_auto_cpu(const at::Tensor& x, bool use_01, bool po2,
                                                   at::OptionalIntArrayRef scale_axis) {
  auto generic = [&](const at::Tensor& t) {
    return detail::binary_auto_generic(t, use_01, po2, scale_axis);
  };
  if (!auto_fusable(x)) return generic(x);
  detail::check_float_input(x, "heteroq::binary_auto");
  return fused_rows(x, scale_axis, generic,
                    [&](auto* src, auto* dst, auto* scales, int64_t rows, int64_t n) {
                      using T = std::remove_pointer_t<decltype(dst)>;
                      if (use_01) {
                        binary_rows<Mode::kBinary01, T>(src, dst, scales, rows, n, po2);
                      } else {
                        binary_rows<Mode::kBinary, T>(src, dst, scales, rows, n, po2);
                      }
                    });
}

std::tuple<at::Tensor, at::Tensor> ternary_auto_cpu(const at::Tensor& x, bool po2,
                                                    int64_t number_of_unrolls,
                                                    at::OptionalIntArrayRef scale_axis) {
  auto generic = [&](const at::Tensor& t) {
    return detail::ternary_auto_generic(t, po2, number_of_unrolls, scale_axis);  // or its error
  };
  if (!auto_fusable(x) || number_of_unrolls < 0 || number_of_unrolls > 100) return generic(x);
  detail::check_float_input(x, "heteroq::ternary_auto");
  return fused_rows(x, scale_axis, generic,
                    [&](auto* src, auto* dst, auto* scales, int64_t rows, int64_t n) {
                      using T = std::remove_pointer_t<decltype(dst)>;
                      ternary_rows<T>(src, dst, scales, rows, n, po2, number_of_unrolls);
                    });
}

}  // namespace
}  // namespace heteroq::ops

TORCH_LIBRARY_IMPL(heteroq, CPU, m) {
  m.impl("binary_auto", &heteroq::ops::binary_auto_cpu);
  m.impl("ternary_auto", &heteroq::ops::ternary_auto_cpu);
}
