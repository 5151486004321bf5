// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Fused CPU kernel of quantized_bits_auto (alpha "auto" / "auto_po2"): per-channel scales chosen
// from the data, exactly as the device-generic kernel (ops/quantize_auto.cpp) computes them, which
// it must match bit for bit (output and scale).
//
// The channels are rows: the kept axes first, the reduced axes last (a contiguous tensor with the
// default axis 0 is already (C, n); other layouts are permuted into a contiguous copy). Rows are
// split across threads; each thread takes its rows in blocks that fit in L2 (kBlockBytes): one pass
// reads the block from memory (the maxima), the auto_po2 iterations re-read it from cache (the two
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
//   - the po2 rounding 2^round(log(s + eps) / ln 2) calls at::log itself, on the block's scales
//     (at::log is element-wise: a value's logarithm does not depend on its position in the tensor),
//     so it rounds exactly where the generic kernel does (the logarithm is implementation-defined
//     to an ulp, and round() near k + 1/2 sees that ulp); exp2 of the rounded integers comes from a
//     table that at::exp2 filled once;
//   - the iteration s <- f(s) is deterministic, so a row whose scale repeats has reached a fixed
//     point and its remaining iterations are skipped (they would return the same scale).
// Rank <= 1 (one least-squares scale per element), every axis kept, and empty tensors take the
// generic path; float16/bfloat16 are computed in float32 as the generic kernel does.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <tuple>
#include <vector>

#include "ops/cpu/loops.h"

#ifdef HETEROQ_X86_DISPATCH
#include <immintrin.h>
#endif

namespace heteroq::ops {
namespace {

using namespace heteroq::ops::cpu;  // NOLINT: the shared loops (a .cpp file, not a header)

// A block of rows: the passes after the first read it from L2.
constexpr int64_t kBlockBytes = int64_t{256} << 10;
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

// max |x'| over a row; NaN if any element is NaN (at::amax propagates NaN).
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

struct F8 {
  using T = float;
  using V = __m256;
  static constexpr int kLanes = 8;
  static HETEROQ_TARGET_AVX2 V set1(T v) { return _mm256_set1_ps(v); }
  static HETEROQ_TARGET_AVX2 V load(const T* p) { return _mm256_loadu_ps(p); }
  static HETEROQ_TARGET_AVX2 void store(T* p, V v) { _mm256_storeu_ps(p, v); }
  static HETEROQ_TARGET_AVX2 V add(V a, V b) { return _mm256_add_ps(a, b); }
  static HETEROQ_TARGET_AVX2 V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static HETEROQ_TARGET_AVX2 V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static HETEROQ_TARGET_AVX2 V div(V a, V b) { return _mm256_div_ps(a, b); }
  static HETEROQ_TARGET_AVX2 V floor(V a) { return _mm256_floor_ps(a); }
  static HETEROQ_TARGET_AVX2 V min(V a, V b) { return _mm256_min_ps(a, b); }
  static HETEROQ_TARGET_AVX2 V max(V a, V b) { return _mm256_max_ps(a, b); }
  static HETEROQ_TARGET_AVX2 V abs(V a) {
    return _mm256_and_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)));
  }
  static HETEROQ_TARGET_AVX2 V unord(V a) { return _mm256_cmp_ps(a, a, _CMP_UNORD_Q); }
  static HETEROQ_TARGET_AVX2 V vor(V a, V b) { return _mm256_or_ps(a, b); }
  static HETEROQ_TARGET_AVX2 bool any(V m) { return _mm256_movemask_ps(m) != 0; }
  // (0 < v) - (v < 0), as at::sign's vector path: blend(0, 1, 0 < v) - blend(0, 1, v < 0).
  static HETEROQ_TARGET_AVX2 V sign(V v) {
    const V zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
    return _mm256_sub_ps(_mm256_and_ps(_mm256_cmp_ps(zero, v, _CMP_LT_OQ), one),
                         _mm256_and_ps(_mm256_cmp_ps(v, zero, _CMP_LT_OQ), one));
  }
  static HETEROQ_TARGET_AVX2 T hmax(V v) {
    alignas(32) T t[kLanes];
    _mm256_store_ps(t, v);
    T m = t[0];
    for (int i = 1; i < kLanes; ++i) m = t[i] > m ? t[i] : m;
    return m;
  }
  // Double accumulators: acc[0..1] += the 8 products, widened.
  static HETEROQ_TARGET_AVX2 void accumulate(__m256d* acc, V p) {
    acc[0] = _mm256_add_pd(acc[0], _mm256_cvtps_pd(_mm256_castps256_ps128(p)));
    acc[1] = _mm256_add_pd(acc[1], _mm256_cvtps_pd(_mm256_extractf128_ps(p, 1)));
  }
};

struct D4 {
  using T = double;
  using V = __m256d;
  static constexpr int kLanes = 4;
  static HETEROQ_TARGET_AVX2 V set1(T v) { return _mm256_set1_pd(v); }
  static HETEROQ_TARGET_AVX2 V load(const T* p) { return _mm256_loadu_pd(p); }
  static HETEROQ_TARGET_AVX2 void store(T* p, V v) { _mm256_storeu_pd(p, v); }
  static HETEROQ_TARGET_AVX2 V add(V a, V b) { return _mm256_add_pd(a, b); }
  static HETEROQ_TARGET_AVX2 V sub(V a, V b) { return _mm256_sub_pd(a, b); }
  static HETEROQ_TARGET_AVX2 V mul(V a, V b) { return _mm256_mul_pd(a, b); }
  static HETEROQ_TARGET_AVX2 V div(V a, V b) { return _mm256_div_pd(a, b); }
  static HETEROQ_TARGET_AVX2 V floor(V a) { return _mm256_floor_pd(a); }
  static HETEROQ_TARGET_AVX2 V min(V a, V b) { return _mm256_min_pd(a, b); }
  static HETEROQ_TARGET_AVX2 V max(V a, V b) { return _mm256_max_pd(a, b); }
  static HETEROQ_TARGET_AVX2 V abs(V a) {
    return _mm256_and_pd(a, _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fffffffffffffffLL)));
  }
  static HETEROQ_TARGET_AVX2 V unord(V a) { return _mm256_cmp_pd(a, a, _CMP_UNORD_Q); }
  static HETEROQ_TARGET_AVX2 V vor(V a, V b) { return _mm256_or_pd(a, b); }
  static HETEROQ_TARGET_AVX2 bool any(V m) { return _mm256_movemask_pd(m) != 0; }
  static HETEROQ_TARGET_AVX2 V sign(V v) {
    const V zero = _mm256_setzero_pd(), one = _mm256_set1_pd(1.0);
    return _mm256_sub_pd(_mm256_and_pd(_mm256_cmp_pd(zero, v, _CMP_LT_OQ), one),
                         _mm256_and_pd(_mm256_cmp_pd(v, zero, _CMP_LT_OQ), one));
  }
  static HETEROQ_TARGET_AVX2 T hmax(V v) {
    alignas(32) T t[kLanes];
    _mm256_store_pd(t, v);
    T m = t[0];
    for (int i = 1; i < kLanes; ++i) m = t[i] > m ? t[i] : m;
    return m;
  }
  // acc[0] += the 4 products (acc[1] unused: the same shape as F8's).
  static HETEROQ_TARGET_AVX2 void accumulate(__m256d* acc, V p) { acc[0] = _mm256_add_pd(acc[0], p); }
};

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

inline bool use_avx2() { return cpu_has_avx2(); }

template <typename T>
struct Simd;
template <>
struct Simd<float> {
  using type = F8;
};
template <>
struct Simd<double> {
  using type = D4;
};

#endif  // HETEROQ_X86_DISPATCH

template <typename T>
T row_absmax(const T* x, int64_t n, T inv_mi) {
#ifdef HETEROQ_X86_DISPATCH
  if (use_avx2()) return row_absmax_avx2<typename Simd<T>::type>(x, n, inv_mi);
#endif
  return row_absmax_scalar(x, n, inv_mi);
}

template <typename T>
void row_sums(const T* x, int64_t n, T inv_mi, Divisor<T> dv, T cap, double* sx, double* sz) {
#ifdef HETEROQ_X86_DISPATCH
  if (use_avx2()) {
    using S = typename Simd<T>::type;
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
  if (use_avx2()) {
    using S = typename Simd<T>::type;
    if (dv.divide) return row_out_avx2<S, true>(x, out, n, dv.d, scale, g);
    return row_out_avx2<S, false>(x, out, n, dv.d, scale, g);
  }
#endif
  if (dv.divide) return row_out_scalar<T, true>(x, out, n, dv.d, scale, g);
  row_out_scalar<T, false>(x, out, n, dv.d, scale, g);
}

// ------------------------------------------------------------------------------------------------
// po2 rounding, as detail::po2_scale computes it: exp2(round(log(s + 1e-7) / ln 2)) in T.

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

// Rounds s[0..k) to powers of two in place; u and lg are scratch tensors of at least k elements.
template <typename T>
void po2_round(T* s, int64_t k, at::Tensor& u, at::Tensor& lg) {
  if (k == 0) return;
  T* pu = u.data_ptr<T>();
  for (int64_t i = 0; i < k; ++i) pu[i] = s[i] + T(1e-7);
  at::Tensor lgk = lg.narrow(0, 0, k);
  at::log_out(lgk, u.narrow(0, 0, k));
  const T* pl = lgk.data_ptr<T>();
  const T ln2 = static_cast<T>(std::log(2.0));
  const Exp2Table<T>& exp2 = Exp2Table<T>::get();
  for (int64_t i = 0; i < k; ++i) s[i] = exp2(std::nearbyint(pl[i] / ln2));
}

// ------------------------------------------------------------------------------------------------
// The driver: rows [0, rows) of n elements each, src/dst contiguous (rows x n), scales[rows].

template <typename T>
void quantize_rows(const T* src, T* dst, T* scales, int64_t rows, int64_t n, bool po2,
                   const Grid<T>& g) {
  if (po2) Exp2Table<T>::get();  // filled here, not inside the parallel region
  const int64_t row_bytes = n * static_cast<int64_t>(sizeof(T));
  const int64_t block = std::max<int64_t>(1, kBlockBytes / row_bytes);
  const int64_t grain = std::max<int64_t>(1, kGrain / n);
  const double dn = static_cast<double>(n);
  at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    at::AutoDispatchBelowADInplaceOrView guard;  // the at::log calls below skip autograd
    const int64_t cap_rows = std::min(block, end - begin);
    const auto opts = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
    at::Tensor u = at::empty({cap_rows}, opts);
    at::Tensor lg = at::empty({cap_rows}, opts);
    std::vector<T> s(cap_rows), next(cap_rows);
    std::vector<int64_t> active(cap_rows);
    for (int64_t r0 = begin; r0 < end; r0 += block) {
      const int64_t nb = std::min(block, end - r0);
      for (int64_t j = 0; j < nb; ++j) {
        const T mx = row_absmax(src + (r0 + j) * n, n, g.inv_mi);
        s[j] = (mx * g.two) / g.levels;
      }
      if (po2) {
        po2_round(s.data(), nb, u, lg);
        int64_t na = nb;
        for (int64_t j = 0; j < nb; ++j) active[j] = j;
        for (int it = 0; it < kIterations && na > 0; ++it) {
          for (int64_t a = 0; a < na; ++a) {
            const int64_t j = active[a];
            double sx = 0.0, sz = 0.0;
            row_sums(src + (r0 + j) * n, n, g.inv_mi, divisor_of(s[j]), g.cap, &sx, &sz);
            next[a] = static_cast<T>((sx / dn) / (sz / dn + 1e-7));
          }
          po2_round(next.data(), na, u, lg);
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
    }
  });
}

std::tuple<at::Tensor, at::Tensor> quantized_bits_auto_cpu(const at::Tensor& x, int64_t bits,
                                                           int64_t integer, bool keep_negative,
                                                           bool po2,
                                                           at::OptionalIntArrayRef scale_axis,
                                                           double qnoise_factor) {
  if (!fused_kernels_enabled() || x.dim() < 2 || x.numel() == 0 ||
      !at::isFloatingType(x.scalar_type())) {
    return detail::quantized_bits_auto_generic(x, bits, integer, keep_negative, po2, scale_axis,
                                               qnoise_factor);
  }
  // The generic kernel's checks, in its order (same errors).
  detail::check_float_input(x, "heteroq::quantized_bits_auto");
  std::string err = heteroq::detail::check_quantized_bits_auto_args(bits, integer);
  if (err.empty()) err = heteroq::detail::check_qnoise_factor("quantized_bits", qnoise_factor);
  TORCH_CHECK_VALUE(err.empty(), err);
  if (detail::is_reduced_precision(x)) {
    // As the generic kernel: computed in float32, the output rounded to x's dtype.
    auto [out, scale] = quantized_bits_auto_cpu(x.to(at::kFloat), bits, integer, keep_negative,
                                                po2, scale_axis, qnoise_factor);
    return std::make_tuple(out.to(x.scalar_type()), scale);
  }
  const std::vector<int64_t> dims = detail::reduce_dims(x, scale_axis);
  if (dims.empty()) {
    return detail::quantized_bits_auto_generic(x, bits, integer, keep_negative, po2, scale_axis,
                                               qnoise_factor);
  }
  const int64_t rank = x.dim();
  std::vector<bool> reduced(rank, false);
  for (int64_t d : dims) reduced[d] = true;
  std::vector<int64_t> perm, scale_shape(x.sizes().begin(), x.sizes().end());
  for (int64_t d = 0; d < rank; ++d) {
    if (!reduced[d]) perm.push_back(d);
  }
  int64_t n = 1;
  for (int64_t d : dims) {
    perm.push_back(d);
    n *= x.size(d);
    scale_shape[d] = 1;
  }
  const int64_t rows = x.numel() / n;
  const at::Tensor xp = x.permute(perm);
  const bool direct = xp.is_contiguous();
  const at::Tensor src = direct ? xp : xp.contiguous();
  at::Tensor dst = detail::empty_output(src);
  at::Tensor scale = at::empty(scale_shape, x.options());

  const double levels = 2.0 * (std::ldexp(1.0, static_cast<int>(bits - 1)) - 1.0);
  const int ub = static_cast<int>(bits - (keep_negative ? 1 : 0));
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "heteroq_quantized_bits_auto", [&] {
    using T = scalar_t;
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
    quantize_rows<T>(src.data_ptr<T>(), dst.data_ptr<T>(), scale.data_ptr<T>(), rows, n, po2, g);
  });

  // Back to x's axes: a view when x's permuted view was contiguous, else a copy in x's layout.
  std::vector<int64_t> inverse(rank);
  for (int64_t d = 0; d < rank; ++d) inverse[perm[d]] = d;
  at::Tensor out = dst.permute(inverse);
  if (!direct) {
    at::Tensor laid = at::empty_like(x);
    laid.copy_(out);
    out = laid;
  }
  return std::make_tuple(out, scale);
}

}  // namespace
}  // namespace heteroq::ops

TORCH_LIBRARY_IMPL(heteroq, CPU, m) {
  m.impl("quantized_bits_auto", &heteroq::ops::quantized_bits_auto_cpu);
}
