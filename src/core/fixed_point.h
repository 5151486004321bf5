// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Torch-free numerics of the fixed-point quantizers: argument checks, grid parameters and the
// per-element functions. The fused CPU kernels apply the element functions; the device-generic
// path applies the same grid parameters with ATen ops in the same order, so both give the same
// bits. Nothing here includes a torch header.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace heteroq::detail {

// ----------------------------------------------------------------------------------------------
// Argument checks: return an empty string when valid, else a message that names the argument
// and the value. The Quantizer constructors throw heteroq::InvalidArgument with it and the
// operators c10::ValueError, so both report the same text.

std::string check_quantized_bits_args(int64_t bits, int64_t integer, std::optional<double> alpha);
std::string check_quantized_relu_args(int64_t bits, int64_t integer, double negative_slope);
/// quantized_bits with alpha "auto"/"auto_po2": bits >= 2 (the scale divides by 2^(bits-1) - 1).
std::string check_quantized_bits_auto_args(int64_t bits, int64_t integer);
/// The "auto_po2" scale options: elements_per_scale (values >= 1, one per scale axis or a single
/// one), min/max_po2_exponent in [-126, 127] with min <= max.
std::string check_po2_scale_args(const char* who,
                                 const std::optional<std::vector<int64_t>>& scale_axis,
                                 const std::optional<std::vector<int64_t>>& elements_per_scale,
                                 std::optional<int64_t> min_po2_exponent,
                                 std::optional<int64_t> max_po2_exponent);
/// quantized_tanh / quantized_sigmoid: bits in [1, 32].
std::string check_activation_args(const char* who, int64_t bits);
/// quantized_po2 / quantized_relu_po2: bits in [2, 12], max_value None or > 0 and finite,
/// log2_rounding "rnd" or "floor", negative_slope (relu_po2) 0 or a power of two.
std::string check_po2_args(const char* who, int64_t bits, std::optional<double> max_value,
                           const std::string& log2_rounding, double negative_slope);
/// binary / ternary: alpha None or a finite number > 0; threshold (ternary) None or finite >= 0.
std::string check_binary_args(const char* who, std::optional<double> alpha,
                              std::optional<double> threshold);
/// qnoise_factor must be a number in [0, 1]; `who` names the quantizer in the message.
std::string check_qnoise_factor(const char* who, double qnoise_factor);

// ----------------------------------------------------------------------------------------------
// Grids.

/// quantized_bits: q(x) = step * clamp(rne(x * in_scale), lo, hi), or +-sign_value in sign mode.
struct BitsGrid {
  double in_scale;    // 2^(bits - keep_negative - integer)
  double lo, hi;      // integer code range
  double step;        // alpha * 2^(integer - bits + keep_negative)
  bool sign_mode;     // bits - keep_negative <= 0: alpha * sign(x), sign(0) = +1
  double sign_value;  // alpha
};
BitsGrid make_bits_grid(int64_t bits, int64_t integer, bool symmetric, bool keep_negative,
                        std::optional<double> alpha);

/// quantized_relu, with m = 2^nsb, nsb = bits - (slope != 0):
///   plain:   p = x * in_scale;  pos = clamp(rne(p), 0, m-1);  neg = clamp(rne(p*slope), -slope*m, 0)
///   sigmoid: p = clamp(x * inv_mi * 0.5 + 0.5, 0, 1) * m;
///            pos = clamp(2 rne(p) - m, 0, m-1);  neg = clamp(2 rne(p*slope) - slope*m, -slope*m, 0)
///   q(x) = (pos + neg) * step, step = 2^(integer - nsb)
/// STE: dq/dx = x <= top ? (x > 0 ? 1 : slope) : 0, top = 2^integer - step.
struct ReluGrid {
  double in_scale;  // m / 2^integer
  double inv_mi;    // 1 / 2^integer
  double m;         // 2^nsb
  double hi;        // m - 1
  double slope;     // negative_slope
  double neg_lo;    // -slope * m
  double step;      // 2^(integer - nsb)
  double top;       // 2^integer - step
  bool use_sigmoid;
};
ReluGrid make_relu_grid(int64_t bits, int64_t integer, bool use_sigmoid, double negative_slope);

/// quantized_tanh (p = 2 hσ(x) − 1, m = 2^(bits−1), codes [−m + symmetric, m − 1]) and
/// quantized_sigmoid (p = hσ(x), m = 2^bits, codes [symmetric, m − 1]), hσ(v) = clip(v/2 + 1/2, 0, 1)
/// (QKeras's default "hard" internal sigmoid): q(x) = clamp(round(p m), lo, hi) / m.
/// STE: d/dx = [lo <= round(p m) <= hi] · [0 <= x/2 + 1/2 <= 1] · slope, slope 1 (tanh) or 1/2.
struct ActivationGrid {
  double m, inv_m, lo, hi;
  double slope;  // d p / dx inside the linear part: 1 (tanh) or 0.5 (sigmoid)
  bool is_tanh;
};
ActivationGrid make_activation_grid(bool is_tanh, int64_t bits, bool symmetric);

/// quantized_po2 (relu = false) and quantized_relu_po2 (relu = true), QKeras's
/// _clip_power_of_two: for a magnitude a >= 0,
///   f = max(a, eps) capped at max_value;  f = sqrt(f) in quadratic mode;
///   e = clamp(round(log2 f) or floor(log2 f), min_exp, max_exp) * (quadratic ? 2 : 1);
///   e = min_exp when a < eps (eps = 1e-7)
/// po2:      q(x) = sign(x) 2^e(|x|), sign(0) = +1 (never 0)
/// relu_po2: q(x) = 2^e(relu(x)) for x >= 0 or slope 0 (so x <= 0 gives 2^min_exp), else
///           -2^e(relu(-x) slope).
/// Exponent range: need = (max_value is None or > 1); po2: min_exp = -2^(bits-1-need),
/// relu_po2: -2^(bits-need); max_exp = -min_exp - 1, made even in quadratic mode.
/// log2 is rounded exactly (from the float's exponent and mantissa bits: round(log2 f) is the
/// exponent plus 1 when the mantissa exceeds sqrt(2)), where QKeras's float32 log can be off by
/// an ulp next to those boundaries and at exact powers of two in floor mode.
struct Po2Grid {
  double eps;
  double max_value;  // +inf when None
  bool has_max;
  double min_exp, max_exp;
  bool quadratic, floor_mode, relu;
  double slope;
};
Po2Grid make_po2_grid(bool relu, int64_t bits, std::optional<double> max_value, bool quadratic,
                      bool floor_mode, double negative_slope);

// ----------------------------------------------------------------------------------------------
// Element functions. Compile with -ffp-contract=off and without -ffast-math: the rounding trick
// and the sigmoid's `a * b + c` must round exactly as the separate ATen ops do.

/// Round half to even, as torch.round / tf.round, in a form compilers vectorize with plain SSE2:
/// adding and subtracting 2^(digits-1) leaves |v| rounded to an integer under the default rounding
/// mode. |v| >= 2^(digits-1) is already an integer, and inf and NaN pass through: for those the
/// constant added is 0. (Selecting the constant rather than the result keeps the add unconditional,
/// which GCC if-converts and vectorizes; a conditional FP add would be a speculated trapping op.)
template <typename T>
inline T round_half_even(T v) {
  constexpr T kMagic = T(1) / std::numeric_limits<T>::epsilon();  // 2^23 or 2^52
  const T a = std::fabs(v);
  const T m = a < kMagic ? kMagic : T(0);
  return std::copysign((a + m) - m, v);
}

/// The largest |v| for which round_half_even_small is exact: 2^22 (float) or 2^51 (double).
template <typename T>
constexpr T kSmallRoundLimit = T(0.5) / std::numeric_limits<T>::epsilon();

/// Round half to even for |v| <= kSmallRoundLimit<T>, in two operations: v + 1.5 * 2^(digits-1)
/// lies in the binade whose spacing is 1, so the addition rounds v to an integer (half to even,
/// since the constant is even) and the subtraction is exact. A zero result may be -0 or +0 (the
/// callers turn every zero into +0). NaN stays NaN.
template <typename T>
inline T round_half_even_small(T v) {
  constexpr T kShift = T(1.5) / std::numeric_limits<T>::epsilon();
  return (v + kShift) - kShift;
}

/// clamp that keeps NaN (a comparison with NaN is false, so NaN falls through); two selects that
/// compile to max/min instructions.
template <typename T>
inline T clamp_keep_nan(T v, T lo, T hi) {
  const T t = v < lo ? lo : v;
  return t > hi ? hi : t;
}

/// clamp(round(v), lo, hi) for integer lo <= hi. With kSmall (max(|lo|, |hi|) <=
/// kSmallRoundLimit) it clamps first and rounds after, which gives the same value: rounding is
/// monotone and lo, hi are integers, so a value below lo rounds to at most lo, and above hi to at
/// least hi. Up to the sign of a zero, which the callers normalise.
template <typename T, bool kSmall>
inline T round_clamp(T v, T lo, T hi) {
  if constexpr (kSmall) {
    return round_half_even_small(clamp_keep_nan(v, lo, hi));
  } else {
    return clamp_keep_nan(round_half_even(v), lo, hi);
  }
}

template <typename T>
inline T round_any(T v, bool small) {
  return small ? round_half_even_small(v) : round_half_even(v);
}

template <typename T>
struct BitsGridT {
  T in_scale, lo, hi, step, sign_value;
  bool sign_mode;
  bool small;  // max(|lo|, |hi|) <= kSmallRoundLimit<T>: round_clamp<T, true> applies
  explicit BitsGridT(const BitsGrid& g)
      : in_scale(T(g.in_scale)), lo(T(g.lo)), hi(T(g.hi)), step(T(g.step)),
        sign_value(T(g.sign_value)), sign_mode(g.sign_mode),
        small(std::max(-g.lo, g.hi) <= double(kSmallRoundLimit<T>)) {}
};

/// Linear-grid element (not sign mode). `+ T(0)` turns -0 into +0, as QKeras's `x + (q - x)` does.
template <typename T, bool kSmall>
inline T quantize_bits_element(T x, T in_scale, T lo, T hi, T step) {
  return round_clamp<T, kSmall>(x * in_scale, lo, hi) * step + T(0);
}

/// Sign-mode element: +a for x >= 0, -a for x < 0, NaN stays NaN.
template <typename T>
inline T quantize_sign_element(T x, T a) {
  return x < T(0) ? -a : (x >= T(0) ? a : x);
}

/// QKeras's stochastic_round (precision 1): floor(y) when frac(y) < u, else ceil(y), for a noise
/// u ~ U[0, 1); E[result] = y. NaN stays NaN, +-inf stay +-inf.
template <typename T>
inline T stochastic_round(T y, T u) {
  const T f = std::floor(y);
  return (y - f) < u ? f : std::ceil(y);
}

/// quantized_bits with stochastic rounding (training).
template <typename T>
inline T quantize_bits_stochastic_element(T x, T u, T in_scale, T lo, T hi, T step) {
  return clamp_keep_nan(stochastic_round(x * in_scale, u), lo, hi) * step + T(0);
}

template <typename T>
struct ReluGridT {
  T in_scale, inv_mi, m, hi, slope, slope_m, neg_lo, step, top;
  bool use_sigmoid;
  // Every rounded value is within kSmallRoundLimit<T>, and the clamp bounds are integers (a slope
  // below 2^-nsb gives a fractional lower bound -slope*m, where clamping before rounding would
  // differ from QKeras's rounding before clamping).
  bool small;
  explicit ReluGridT(const ReluGrid& g)
      : in_scale(T(g.in_scale)), inv_mi(T(g.inv_mi)), m(T(g.m)), hi(T(g.hi)), slope(T(g.slope)),
        slope_m(T(g.slope * g.m)), neg_lo(T(g.neg_lo)), step(T(g.step)), top(T(g.top)),
        use_sigmoid(g.use_sigmoid),
        small(std::max({g.m, -g.neg_lo, g.slope * g.m}) <= double(kSmallRoundLimit<T>) &&
              std::floor(g.neg_lo) == g.neg_lo) {}
};

template <typename T, bool kSmall>
inline T quantize_relu_plain_element(T x, const ReluGridT<T>& g, bool with_slope) {
  const T p = x * g.in_scale;
  T code = round_clamp<T, kSmall>(p, T(0), g.hi);
  if (with_slope) code = code + round_clamp<T, kSmall>(p * g.slope, g.neg_lo, T(0));
  return code * g.step + T(0);
}

template <typename T, bool kSmall>
inline T quantize_relu_sigmoid_element(T x, const ReluGridT<T>& g, bool with_slope) {
  const T h = clamp_keep_nan((x * g.inv_mi) * T(0.5) + T(0.5), T(0), T(1));
  const T p = h * g.m;  // in [0, m]
  T code = clamp_keep_nan(round_any(p, kSmall) * T(2) - g.m, T(0), g.hi);
  if (with_slope) {
    code = code + clamp_keep_nan(round_any(p * g.slope, kSmall) * T(2) - g.slope_m, g.neg_lo, T(0));
  }
  return code * g.step + T(0);
}

/// QKeras's "hard" internal sigmoid clip(0.5 x + 0.5, 0, 1) (two roundings, no FMA).
template <typename T>
inline T hard_sigmoid(T x) {
  return clamp_keep_nan(x * T(0.5) + T(0.5), T(0), T(1));
}

template <typename T>
struct ActivationGridT {
  T m, inv_m, lo, hi, slope;
  bool is_tanh;
  bool small;  // m <= kSmallRoundLimit<T>
  explicit ActivationGridT(const ActivationGrid& g)
      : m(T(g.m)), inv_m(T(g.inv_m)), lo(T(g.lo)), hi(T(g.hi)), slope(T(g.slope)),
        is_tanh(g.is_tanh), small(g.m <= double(kSmallRoundLimit<T>)) {}
};

/// p of the hard activations: 2 hσ(x) − 1 (tanh) or hσ(x) (sigmoid).
template <typename T, bool kTanh>
inline T hard_activation(T x) {
  const T h = hard_sigmoid(x);
  if constexpr (kTanh) {
    return h * T(2) - T(1);
  } else {
    return h;
  }
}

template <typename T, bool kTanh, bool kSmall>
inline T quantize_hard_activation_element(T x, const ActivationGridT<T>& g) {
  return round_clamp<T, kSmall>(hard_activation<T, kTanh>(x) * g.m, g.lo, g.hi) * g.inv_m + T(0);
}

/// The STE of the hard activations (QKeras: the clip mask of the rounded value times the
/// derivative of the hard sigmoid, 1/2 on the closed interval [-1, 1], tf.clip_by_value's rule).
template <typename T, bool kTanh>
inline T hard_activation_grad(T x, const ActivationGridT<T>& g) {
  const T t = x * T(0.5) + T(0.5);
  const T r = round_half_even(hard_activation<T, kTanh>(x) * g.m);
  const bool inside = (t >= T(0)) & (t <= T(1)) & (r >= g.lo) & (r <= g.hi);
  return inside ? g.slope : T(0);
}

// ------------------------------------------------------------------------------------------------
// Exact log2 rounding and powers of two, from the IEEE bits (vectorizable integer operations).

template <typename T>
struct FloatBits;
template <>
struct FloatBits<float> {
  using U = uint32_t;
  using S = int32_t;
  static constexpr int kMant = 23, kBias = 127, kMinExp = -126, kMaxExp = 127;
  // sqrt(2) = 1.0110101000001001111001100110011111110011101111001100100100..._2: mantissas above
  // this one are above sqrt(2) (no float equals it).
  static constexpr U kSqrt2Mant = 0x3504F3u;
};
template <>
struct FloatBits<double> {
  using U = uint64_t;
  using S = int64_t;
  static constexpr int kMant = 52, kBias = 1023, kMinExp = -1022, kMaxExp = 1023;
  static constexpr U kSqrt2Mant = 0x6A09E667F3BCCull;
};

/// floor(log2 f) (floor_mode) or round(log2 f) for a positive normal f (inf gives kMaxExp + 1).
template <typename T>
inline T log2_exponent(T f, bool floor_mode) {
  using B = FloatBits<T>;
  typename B::U u;
  std::memcpy(&u, &f, sizeof(T));
  const auto exp_field = static_cast<typename B::S>(u >> B::kMant);
  const typename B::U mant = u & ((typename B::U(1) << B::kMant) - 1);
  const typename B::S up = (!floor_mode && mant > B::kSqrt2Mant) ? 1 : 0;
  return static_cast<T>(exp_field - B::kBias + up);
}

/// 2^k for k in [kMinExp, kMaxExp], built from its bits.
template <typename T>
inline T pow2_normal(T k) {
  using B = FloatBits<T>;
  const auto biased = static_cast<typename B::U>(static_cast<typename B::S>(k) + B::kBias);
  const typename B::U u = biased << B::kMant;
  T r;
  std::memcpy(&r, &u, sizeof(T));
  return r;
}

/// 2^e for an integral e within +-2 (kMaxExp + 1): a product of two normal powers of two, so it
/// underflows through the subnormals to 0 and overflows to inf exactly as ldexp does.
template <typename T>
inline T exp2_integer(T e) {
  using B = FloatBits<T>;
  const T e1 = clamp_keep_nan(e, T(B::kMinExp), T(B::kMaxExp));
  const T e2 = clamp_keep_nan(e - e1, T(B::kMinExp), T(B::kMaxExp));
  return pow2_normal(e1) * pow2_normal(e2);
}

template <typename T>
struct Po2GridT {
  T eps, max_value, min_exp, max_exp, slope, factor;
  bool has_max, quadratic, floor_mode, relu;
  explicit Po2GridT(const Po2Grid& g)
      : eps(T(g.eps)), max_value(g.has_max ? T(g.max_value) : std::numeric_limits<T>::infinity()),
        min_exp(T(g.min_exp)), max_exp(T(g.max_exp)), slope(T(g.slope)),
        factor(g.quadratic ? T(2) : T(1)), has_max(g.has_max), quadratic(g.quadratic),
        floor_mode(g.floor_mode), relu(g.relu) {}
};

/// QKeras's _clip_power_of_two for a magnitude a >= 0 (NaN gives NaN). The modes are template
/// parameters so that the element loops have no branches (they vectorize).
template <typename T, bool kQuadratic, bool kFloor>
inline T po2_exponent(T a, const Po2GridT<T>& g) {
  T f = a < g.eps ? g.eps : a;
  f = f >= g.max_value ? g.max_value : f;
  if constexpr (kQuadratic) f = std::sqrt(f);
  const T e = clamp_keep_nan(log2_exponent(f, kFloor), g.min_exp, g.max_exp) * g.factor;
  const T r = a < g.eps ? g.min_exp : e;
  return a != a ? a : r;
}

/// 2^e for integral e; kNormal: every e the grid can produce is a normal exponent of T, so one
/// power built from the bits is exact (else exp2_integer's two-step product).
template <typename T, bool kNormal>
inline T po2_power(T e) {
  if constexpr (kNormal) {
    return pow2_normal(e);
  } else {
    return exp2_integer(e);
  }
}

/// Whether every exponent of the grid (and min_exp, doubled in quadratic mode) is normal for T.
template <typename T>
inline bool po2_exponents_normal(const Po2GridT<T>& g) {
  const T lo = std::min(g.min_exp, g.min_exp * g.factor);
  const T hi = g.max_exp * g.factor;
  return lo >= T(FloatBits<T>::kMinExp) && hi <= T(FloatBits<T>::kMaxExp);
}

/// 2^e(a) for a magnitude a >= 0 (po2_power(po2_exponent(a))) when every exponent of the grid is
/// normal, in the integer domain: the exponent from the bits of f, clamped as an integer, the
/// power assembled as bits. The same values as the floating-point formulation (tested bit for bit
/// against the generic kernels), without int <-> float conversions, so the loops vectorize into
/// integer lanes. NaN gives garbage: the callers return x for NaN.
template <typename T, bool kQuadratic, bool kFloor>
inline T po2_magnitude_normal(T a, const Po2GridT<T>& g) {
  using B = FloatBits<T>;
  using U = typename B::U;
  using S = typename B::S;
  T f = a < g.eps ? g.eps : a;
  f = f >= g.max_value ? g.max_value : f;
  if constexpr (kQuadratic) f = std::sqrt(f);
  U u;
  std::memcpy(&u, &f, sizeof(T));
  if constexpr (!kFloor) {
    // Rounding: adding 2^kMant - 1 - kSqrt2Mant carries into the exponent field exactly when the
    // mantissa exceeds sqrt(2)'s (one add instead of a compare and a select).
    u += (U(1) << B::kMant) - 1 - B::kSqrt2Mant;
  }
  S e = static_cast<S>(u >> B::kMant) - B::kBias;
  const S lo = static_cast<S>(g.min_exp), hi = static_cast<S>(g.max_exp);
  e = e < lo ? lo : (e > hi ? hi : e);
  if constexpr (kQuadratic) e *= 2;
  e = a < g.eps ? lo : e;
  const U bits = static_cast<U>(e + B::kBias) << B::kMant;
  T q;
  std::memcpy(&q, &bits, sizeof(T));
  return q;
}

/// 2^e(a) for a >= 0: the integer-domain form for normal grids, else the floating-point one.
template <typename T, bool kQuadratic, bool kFloor, bool kNormal>
inline T po2_magnitude(T a, const Po2GridT<T>& g) {
  if constexpr (kNormal) {
    return po2_magnitude_normal<T, kQuadratic, kFloor>(a, g);
  } else {
    return po2_power<T, kNormal>(po2_exponent<T, kQuadratic, kFloor>(a, g));
  }
}

template <typename T, bool kQuadratic, bool kFloor, bool kNormal>
inline T quantize_po2_element(T x, const Po2GridT<T>& g) {
  const T mag = po2_magnitude<T, kQuadratic, kFloor, kNormal>(std::fabs(x), g);
  T q;
  if constexpr (kNormal) {  // the sign as a bit: integer lanes throughout
    using U = typename FloatBits<T>::U;
    U bits;
    std::memcpy(&bits, &mag, sizeof(T));
    bits |= x < T(0) ? (U(1) << (sizeof(T) * 8 - 1)) : U(0);
    std::memcpy(&q, &bits, sizeof(T));
  } else {
    q = x < T(0) ? -mag : mag;
  }
  return x != x ? x : q;
}

template <typename T, bool kQuadratic, bool kFloor, bool kNormal, bool kSlope>
inline T quantize_relu_po2_element(T x, const Po2GridT<T>& g) {
  const T pos = po2_magnitude<T, kQuadratic, kFloor, kNormal>(x > T(0) ? x : T(0), g);
  if constexpr (!kSlope) {
    return x != x ? x : pos;  // x <= 0 gives 2^e(0) = 2^min_exp
  } else {
    const T neg =
        -po2_magnitude<T, kQuadratic, kFloor, kNormal>((x < T(0) ? -x : T(0)) * g.slope, g);
    const T q = x >= T(0) ? pos : neg;
    return x != x ? x : q;
  }
}

/// quantized_relu_po2's STE reference: relu(x, slope), capped at max_value when it is set (QKeras:
/// where(x <= max_value, relu(x, slope), max_value)).
template <typename T>
inline T relu_po2_reference(T x, const Po2GridT<T>& g) {
  const T r = x > T(0) ? x : (g.slope != T(0) ? x * g.slope : T(0));
  return (!g.has_max || x <= g.max_value) ? r : g.max_value;
}

/// d quantized_relu_po2 / dx: 1 for x > 0, slope for x <= 0, 0 above max_value (NaN: 0 when a
/// max_value is set, else the slope).
template <typename T>
inline T relu_po2_grad(T x, T max_value, bool has_max, T slope) {
  const T inside = x > T(0) ? T(1) : slope;
  return (!has_max || x <= max_value) ? inside : T(0);
}

/// binary: alpha * (x < 0 ? low : 1), low = -1 (or 0 with use_01); NaN stays NaN.
template <typename T>
inline T binary_element(T x, T low, T scale) {
  const T k = x < T(0) ? low : T(1);
  return x != x ? x : k * scale + T(0);
}

/// ternary: alpha * sign(x) where |x| >= t, else 0 (sign(0) = 0); NaN stays NaN.
template <typename T>
inline T ternary_element(T x, T t, T scale) {
  const T s = x < T(0) ? T(-1) : (x > T(0) ? T(1) : T(0));
  const T q = std::fabs(x) >= t ? s : T(0);
  return x != x ? x : q * scale + T(0);
}

/// QKeras's quantization-noise blend `x_ref + q (xq - x_ref)` (0 <= q <= 1). At q = 1 the
/// operators return xq itself instead (heteroq's exact output).
template <typename T>
inline T qnoise_blend(T x_ref, T xq, T q) {
  return x_ref + (xq - x_ref) * q;
}

/// quantized_relu's STE reference x_u = relu(x, slope) capped at `top` (QKeras's
/// `where(x <= top, relu(x, slope), top)`; NaN gives top).
template <typename T>
inline T relu_ste_reference(T x, T top, T slope) {
  // relu(x) for slope 0 (tf.nn.relu: 0 for every x <= 0, -inf included), leaky relu otherwise.
  const T neg = slope != T(0) ? x * slope : T(0);
  const T r = x > T(0) ? x : neg;
  return x <= top ? r : top;
}

/// quantized_relu with stochastic rounding (training). QKeras rounds relu's codes with precision
/// 1/2 (its _round_through default), which puts them between grid points; heteroq rounds to the
/// grid (precision 1).
template <typename T>
inline T quantize_relu_stochastic_element(T x, T u, const ReluGridT<T>& g) {
  T code;
  if (!g.use_sigmoid) {
    const T p = x * g.in_scale;
    code = clamp_keep_nan(stochastic_round(p, u), T(0), g.hi);
    if (g.slope != T(0)) {
      code = code + clamp_keep_nan(stochastic_round(p * g.slope, u), g.neg_lo, T(0));
    }
  } else {
    const T p = clamp_keep_nan((x * g.inv_mi) * T(0.5) + T(0.5), T(0), T(1)) * g.m;
    code = clamp_keep_nan(stochastic_round(p, u) * T(2) - g.m, T(0), g.hi);
    if (g.slope != T(0)) {
      code = code + clamp_keep_nan(stochastic_round(p * g.slope, u) * T(2) - g.slope_m, g.neg_lo,
                                   T(0));
    }
  }
  return code * g.step + T(0);
}

/// d quantized_relu / dx (QKeras's STE through relu(x, slope) capped at `top`; NaN gives 0).
template <typename T>
inline T relu_ste_grad(T x, T top, T slope) {
  const T inside = x > T(0) ? T(1) : slope;  // both comparisons unconditional: vectorizes
  return x <= top ? inside : T(0);
}

}  // namespace heteroq::detail
