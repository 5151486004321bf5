// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Fused CPU kernel of quantized_bits_auto (alpha "auto" / "auto_po2"): per-channel scales chosen
// from the data, exactly as the device-generic kernel (ops/quantize_auto.cpp) computes them, which
// it must match bit for bit (output and scale).
//
// The channels are rows, split across threads in blocks that fit in L2 (the layout, the blocks and
// the entry glue are shared with cpu/binary_auto_kernel.cpp: cpu/auto_rows.h). One pass reads the
// block from memory (the maxima), the auto_po2 iterations re-read it from cache (the two
// least-squares sums per row), and a last pass writes the output (a row longer than a block is
// re-read from memory by each pass). Apart from the permuted copy, no temporary is input-sized.
//
// Bit-exactness with the generic kernel:
//   - every element operation is the same IEEE operation in the same dtype and order (no FMA:
//     -ffp-contract=off; x / 2^k and x * 2^-k are the same correctly rounded value, so divisions by
//     powers of two become multiplications);
//   - the least-squares sums are accumulated in double as the generic kernel does
//     (at::sum(..., kDouble)); the order differs, which cannot change the scale in practice (the
//     argument is at bits_least_squares_scale in ops/quantize_auto.cpp);
//   - the po2 rounding 2^round(log(s + eps) / ln 2) calls at::log itself, on the block's scales,
//     so it rounds exactly where the generic kernel does (po2_round in cpu/auto_rows.h);
//   - the iteration s <- f(s) is deterministic, so a row whose scale repeats has reached a fixed
//     point and its remaining iterations are skipped (they would return the same scale).
// Rank <= 1 (one least-squares scale per element), every axis kept, and empty tensors take the
// generic path; float16/bfloat16 are computed in float32 as the generic kernel does.
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <tuple>
#include <type_traits>
#include <vector>

#include "ops/cpu/auto_rows.h"

namespace heteroq::ops {
namespace {

using namespace heteroq::ops::cpu;  // NOLINT: the shared loops (a .cpp file, not a header)

constexpr int kIterations = 5;  // QKeras's fixed count

// ------------------------------------------------------------------------------------------------
// Per-row parameters.

template <typename T>
struct Grid {
  T inv_mi;  // 2^-integer: x' = x * inv_mi (exact, = x / 2^integer)
  T cap;     // levels / 2, the largest code magnitude
  T two;     // 2
  T levels;  // 2 (2^(bits-1) - 1), rounded to T as ATen rounds the scalar
  T m_i;     // 2^integer
  T inv_m;   // 2^-(bits - keep_negative) (exact)
  T m;       // 2^(bits - keep_negative)
  T q;       // qnoise_factor
  bool blend;
};

// The divisor of |x'| for the codes: the generic kernel divides by s (1 where s == 0). A power of
// two with an exact reciprocal (and 0, inf, NaN) becomes a multiplication by that reciprocal:
// a / s and a * (1/s) are then the same IEEE result (for s = inf: a / inf = a * 0 = 0 for finite
// a, NaN for a = inf, as inf * 0).
template <typename T>
struct Divisor {
  T d;
  bool divide;
};

template <typename T>
Divisor<T> divisor_of(T s) {
  if (s == T(0)) return {T(1), false};
  if (std::isnan(s)) return {s, false};
  if (std::isinf(s)) return {T(0), false};
  int e = 0;
  const T mant = std::frexp(s, &e);
  const T inv = T(1) / s;
  if (mant == T(0.5) && std::isfinite(inv) && inv * s == T(1) && std::frexp(inv, &e) == T(0.5)) {
    return {inv, false};
  }
  return {s, true};
}

// ------------------------------------------------------------------------------------------------
// Element functions (scalar): the reference the vector loops follow operation by operation.

template <typename T, bool kDivide>
inline T code_magnitude(T a, T d, T cap) {
  T t = kDivide ? a / d : a * d;
  t = std::floor(t + T(0.5));
  return cap < t ? cap : t;  // ATen's clamp_max: NaN propagates
}

template <typename T>
inline T sign_of(T v) {
  return static_cast<T>((T(0) < v) - (v < T(0)));  // at::sign: 0 for +-0 and NaN
}

template <typename T, bool kDivide>
inline T output_element(T xv, T d, T scale, const Grid<T>& g) {
  const T xs = xv * g.inv_mi;
  const T z = sign_of(xs) * code_magnitude<T, kDivide>(std::abs(xs), d, g.cap);
  T o = ((z * g.m_i) * g.inv_m) * scale + T(0);
  if (g.blend) o = xv + (o - xv) * g.q;
  return o;
}

template <typename T, bool kDivide>
void row_sums_scalar(const T* x, int64_t n, T inv_mi, T d, T cap, double* sx, double* sz) {
  double px = 0.0, pz = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const T a = std::abs(x[i] * inv_mi);
    const T c = code_magnitude<T, kDivide>(a, d, cap);
    px += static_cast<double>(a * c);
    pz += static_cast<double>(c * c);
  }
  *sx = px;
  *sz = pz;
}

template <typename T, bool kDivide>
void row_out_scalar(const T* x, T* out, int64_t n, T d, T scale, const Grid<T>& g) {
  for (int64_t i = 0; i < n; ++i) out[i] = output_element<T, kDivide>(x[i], d, scale, g);
}

// ------------------------------------------------------------------------------------------------
// AVX2 loops (the same operations, 8 floats or 4 doubles at a time; the tails run the scalar
// code). x86 MIN(cap, t) returns t when t is NaN, i.e. cap < t ? cap : t as in code_magnitude.

#ifdef HETEROQ_X86_DISPATCH

struct F8 : VecF8 {
  static HETEROQ_TARGET_AVX2 V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static HETEROQ_TARGET_AVX2 V div(V a, V b) { return _mm256_div_ps(a, b); }
  static HETEROQ_TARGET_AVX2 V floor(V a) { return _mm256_floor_ps(a); }
  static HETEROQ_TARGET_AVX2 V min(V a, V b) { return _mm256_min_ps(a, b); }
  // (0 < v) - (v < 0), as at::sign's vector path: blend(0, 1, 0 < v) - blend(0, 1, v < 0).
  static HETEROQ_TARGET_AVX2 V sign(V v) {
    const V zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
    return _mm256_sub_ps(_mm256_and_ps(_mm256_cmp_ps(zero, v, _CMP_LT_OQ), one),
                         _mm256_and_ps(_mm256_cmp_ps(v, zero, _CMP_LT_OQ), one));
  }
  // Double accumulators: acc[0..1] += the 8 products, widened.
  static HETEROQ_TARGET_AVX2 void accumulate(__m256d* acc, V p) {
    acc[0] = _mm256_add_pd(acc[0], _mm256_cvtps_pd(_mm256_castps256_ps128(p)));
    acc[1] = _mm256_add_pd(acc[1], _mm256_cvtps_pd(_mm256_extractf128_ps(p, 1)));
  }
};

struct D4 : VecD4 {
  static HETEROQ_TARGET_AVX2 V sub(V a, V b) { return _mm256_sub_pd(a, b); }
  static HETEROQ_TARGET_AVX2 V div(V a, V b) { return _mm256_div_pd(a, b); }
  static HETEROQ_TARGET_AVX2 V floor(V a) { return _mm256_floor_pd(a); }
  static HETEROQ_TARGET_AVX2 V min(V a, V b) { return _mm256_min_pd(a, b); }
  static HETEROQ_TARGET_AVX2 V sign(V v) {
    const V zero = _mm256_setzero_pd(), one = _mm256_set1_pd(1.0);
    return _mm256_sub_pd(_mm256_and_pd(_mm256_cmp_pd(zero, v, _CMP_LT_OQ), one),
                         _mm256_and_pd(_mm256_cmp_pd(v, zero, _CMP_LT_OQ), one));
  }
  // acc[0] += the 4 products (acc[1] unused: the same shape as F8's).
  static HETEROQ_TARGET_AVX2 void accumulate(__m256d* acc, V p) { acc[0] = _mm256_add_pd(acc[0], p); }
};

template <typename S, bool kDivide>
HETEROQ_TARGET_AVX2 void row_sums_avx2(const typename S::T* x, int64_t n, typename S::T inv_mi,
                                       typename S::T d, typename S::T cap, double* sx,
                                       double* sz) {
  using T = typename S::T;
  using V = typename S::V;
  constexpr int L = S::kLanes;
  const V vinv = S::set1(inv_mi), vd = S::set1(d), vcap = S::set1(cap), vhalf = S::set1(T(0.5));
  // Two independent groups of accumulators (x' z and z z, 2 x 2 vectors each) hide the latency
  // of the additions.
  __m256d ax[4], az[4];
  for (int k = 0; k < 4; ++k) ax[k] = az[k] = _mm256_setzero_pd();
  auto step = [&](const T* p, __m256d* accx, __m256d* accz) HETEROQ_TARGET_AVX2 {
    const V a = S::abs(S::mul(S::load(p), vinv));
    const V t = kDivide ? S::div(a, vd) : S::mul(a, vd);
    const V c = S::min(vcap, S::floor(S::add(t, vhalf)));
    S::accumulate(accx, S::mul(a, c));
    S::accumulate(accz, S::mul(c, c));
  };
  int64_t i = 0;
  for (; i + 2 * L <= n; i += 2 * L) {
    step(x + i, ax, az);
    step(x + i + L, ax + 2, az + 2);
  }
  double tx = 0.0, tz = 0.0;
  row_sums_scalar<T, kDivide>(x + i, n - i, inv_mi, d, cap, &tx, &tz);
  const __m256d vx = _mm256_add_pd(_mm256_add_pd(ax[0], ax[2]), _mm256_add_pd(ax[1], ax[3]));
  const __m256d vz = _mm256_add_pd(_mm256_add_pd(az[0], az[2]), _mm256_add_pd(az[1], az[3]));
  alignas(32) double bx[4], bz[4];
  _mm256_store_pd(bx, vx);
  _mm256_store_pd(bz, vz);
  *sx = ((bx[0] + bx[1]) + (bx[2] + bx[3])) + tx;
  *sz = ((bz[0] + bz[1]) + (bz[2] + bz[3])) + tz;
}

template <typename S, bool kDivide>
HETEROQ_TARGET_AVX2 void row_out_avx2(const typename S::T* x, typename S::T* out, int64_t n,
                                      typename S::T d, typename S::T scale,
                                      const Grid<typename S::T>& g) {
  using T = typename S::T;
  using V = typename S::V;
  constexpr int L = S::kLanes;
  const V vinv = S::set1(g.inv_mi), vd = S::set1(d), vcap = S::set1(g.cap),
          vhalf = S::set1(T(0.5)), vmi = S::set1(g.m_i), vinvm = S::set1(g.inv_m),
          vscale = S::set1(scale), vzero = S::set1(T(0)), vq = S::set1(g.q);
  int64_t i = 0;
  auto element = [&](V xv) HETEROQ_TARGET_AVX2 {
    const V xs = S::mul(xv, vinv);
    const V a = S::abs(xs);
    const V t = kDivide ? S::div(a, vd) : S::mul(a, vd);
    const V z = S::mul(S::sign(xs), S::min(vcap, S::floor(S::add(t, vhalf))));
    return S::add(S::mul(S::mul(S::mul(z, vmi), vinvm), vscale), vzero);
  };
  if (g.blend) {
    for (; i + L <= n; i += L) {
      const V xv = S::load(x + i);
      S::store(out + i, S::add(xv, S::mul(S::sub(element(xv), xv), vq)));
    }
  } else {
    for (; i + L <= n; i += L) S::store(out + i, element(S::load(x + i)));
  }
  row_out_scalar<T, kDivide>(x + i, out + i, n - i, d, scale, g);
}

template <typename T>
using Simd = VecFor<T, F8, D4>;

#endif  // HETEROQ_X86_DISPATCH

template <typename T>
void row_sums(const T* x, int64_t n, T inv_mi, Divisor<T> dv, T cap, double* sx, double* sz) {
#ifdef HETEROQ_X86_DISPATCH
  if (cpu_has_avx2()) {
    using S = Simd<T>;
    if (dv.divide) return row_sums_avx2<S, true>(x, n, inv_mi, dv.d, cap, sx, sz);
    return row_sums_avx2<S, false>(x, n, inv_mi, dv.d, cap, sx, sz);
  }
#endif
  if (dv.divide) return row_sums_scalar<T, true>(x, n, inv_mi, dv.d, cap, sx, sz);
  row_sums_scalar<T, false>(x, n, inv_mi, dv.d, cap, sx, sz);
}

template <typename T>
void row_out(const T* x, T* out, int64_t n, Divisor<T> dv, T scale, const Grid<T>& g) {
#ifdef HETEROQ_X86_DISPATCH
  if (cpu_has_avx2()) {
    using S = Simd<T>;
    if (dv.divide) return row_out_avx2<S, true>(x, out, n, dv.d, scale, g);
    return row_out_avx2<S, false>(x, out, n, dv.d, scale, g);
  }
#endif
  if (dv.divide) return row_out_scalar<T, true>(x, out, n, dv.d, scale, g);
  row_out_scalar<T, false>(x, out, n, dv.d, scale, g);
}

// ------------------------------------------------------------------------------------------------
// The driver: rows [0, rows) of n elements each, src/dst contiguous (rows x n), scales[rows].

template <typename T>
void quantize_rows(const T* src, T* dst, T* scales, int64_t rows, int64_t n, bool po2,
                   const Grid<T>& g) {
  const double dn = static_cast<double>(n);
  parallel_row_blocks<T>(rows, n, po2, [&](const RowBlocks& blocks) {
    const int64_t cap_rows = blocks.max_rows();
    Po2Scratch<T> scratch(cap_rows);
    std::vector<T> s(cap_rows), next(cap_rows);
    std::vector<int64_t> active(cap_rows);
    blocks.each([&](int64_t r0, int64_t nb) {
      for (int64_t j = 0; j < nb; ++j) {
        const T mx = row_absmax(src + (r0 + j) * n, n, g.inv_mi);
        s[j] = (mx * g.two) / g.levels;
      }
      if (po2) {
        po2_round(s.data(), nb, scratch);
        int64_t na = nb;
        for (int64_t j = 0; j < nb; ++j) active[j] = j;
        for (int it = 0; it < kIterations && na > 0; ++it) {
          for (int64_t a = 0; a < na; ++a) {
            const int64_t j = active[a];
            double sx = 0.0, sz = 0.0;
            row_sums(src + (r0 + j) * n, n, g.inv_mi, divisor_of(s[j]), g.cap, &sx, &sz);
            next[a] = static_cast<T>((sx / dn) / (sz / dn + 1e-7));
          }
          po2_round(next.data(), na, scratch);
          int64_t still = 0;
          for (int64_t a = 0; a < na; ++a) {
            const int64_t j = active[a];
            // A repeated scale is a fixed point of the iteration (NaN never repeats, harmlessly).
            const bool fixed = next[a] == s[j];
            s[j] = next[a];
            if (!fixed) active[still++] = j;
          }
          na = still;
        }
      }
      for (int64_t j = 0; j < nb; ++j) {
        const T scale = s[j] * g.m;
        row_out(src + (r0 + j) * n, dst + (r0 + j) * n, n, divisor_of(s[j]), scale, g);
        scales[r0 + j] = scale;
      }
    });
  });
}

std::tuple<at::Tensor, at::Tensor> quantized_bits_auto_cpu(const at::Tensor& x, int64_t bits,
                                                           int64_t integer, bool keep_negative,
                                                           bool po2,
                                                           at::OptionalIntArrayRef scale_axis,
                                                           double qnoise_factor) {
  auto generic = [&](const at::Tensor& t) {
    return detail::quantized_bits_auto_generic(t, bits, integer, keep_negative, po2, scale_axis,
                                               qnoise_factor);
  };
  if (!auto_fusable(x)) return generic(x);
  // The generic kernel's checks, in its order (same errors).
  detail::check_float_input(x, "heteroq::quantized_bits_auto");
  std::string err = heteroq::detail::check_quantized_bits_auto_args(bits, integer);
  if (err.empty()) err = heteroq::detail::check_qnoise_factor("quantized_bits", qnoise_factor);
  TORCH_CHECK_VALUE(err.empty(), err);
  const double levels = 2.0 * (std::ldexp(1.0, static_cast<int>(bits - 1)) - 1.0);
  const int ub = static_cast<int>(bits - (keep_negative ? 1 : 0));
  return fused_rows(x, scale_axis, generic,
                    [&](auto* src, auto* dst, auto* scales, int64_t rows, int64_t n) {
                      using T = std::remove_pointer_t<decltype(dst)>;
                      Grid<T> g{};
                      g.inv_mi = static_cast<T>(std::ldexp(1.0, -static_cast<int>(integer)));
                      g.cap = static_cast<T>(levels / 2);
                      g.two = T(2);
                      g.levels = static_cast<T>(levels);
                      g.m_i = static_cast<T>(std::ldexp(1.0, static_cast<int>(integer)));
                      g.inv_m = static_cast<T>(std::ldexp(1.0, -ub));
                      g.m = static_cast<T>(std::ldexp(1.0, ub));
                      g.q = static_cast<T>(qnoise_factor);
                      g.blend = qnoise_factor != 1.0;
                      quantize_rows<T>(src, dst, scales, rows, n, po2, g);
                    });
}

}  // namespace
}  // namespace heteroq::ops

TORCH_LIBRARY_IMPL(heteroq, CPU, m) {
  m.impl("quantized_bits_auto", &heteroq::ops::quantized_bits_auto_cpu);
}
