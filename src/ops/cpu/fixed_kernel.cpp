// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// The fused CPU kernel of fixed_quantize and _fixed_quantize_fwd: one pass over x and the
// (broadcast) widths computes the output and, for the autograd kernel, the three local
// derivatives. float32 and float64 are fused; other floating dtypes, and every call while the fused
// kernels are switched off, take the device-generic path (fixed_ops.cpp), which applies the same
// IEEE operations in the same order, so both give the same bits.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/TensorIterator.h>
#include <torch/library.h>

#include <cmath>
#include <cstdint>
#include <tuple>

#include "core/fixed_point.h"
#include "heteroq/ops/fixed.h"
#include "heteroq/ops/quantize.h"
#include "ops/quantize_common.h"

namespace heteroq::ops::detail {
// Defined in fixed_ops.cpp.
struct FixedArgs {
  at::Tensor k, i, f;
  int round_mode;
  int overflow_mode;
};
FixedArgs check_fixed(const at::Tensor& x, const at::Tensor& keep_negative,
                      const at::Tensor& int_bits, const at::Tensor& frac_bits,
                      c10::string_view round_mode, c10::string_view overflow_mode);
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> fixed_quantize_generic_impl(
    const at::Tensor& x, const FixedArgs& a, bool derivatives);
}  // namespace heteroq::ops::detail

namespace heteroq::ops {
namespace {

// One element: k, i, f already rounded. kRound: 0 RND, 1 RND_CONV, 2 TRN; kOverflow: 0 SAT,
// 1 SAT_SYM, 2 WRAP. The operations and their order are those of fixed_quantize_generic_impl.
template <typename T, int kRound, int kOverflow, bool kDeriv>
inline void fixed_element(T x, T k, T i, T f, T* y, T* dx, T* df, T* di) {
  const T ln2 = T(M_LN2);
  const T b = (k + i) + f;
  const T inv = std::exp2(-f);
  const T v = x * std::exp2(f);
  T c;
  if constexpr (kRound == 1) {
    c = heteroq::detail::round_half_even(v);
  } else if constexpr (kRound == 2) {
    c = std::floor(v);
  } else {
    const T r = std::floor(v);
    c = r + ((v - r) >= T(0.5) ? T(1) : T(0));
  }
  const bool live = b > T(0);
  bool clip_hi = false, clip_lo = false;
  T out;
  if constexpr (kOverflow == 2) {
    const T n = std::exp2(b);
    const T off = k * std::exp2(b - T(1));
    const T w = c - n * std::floor((c + off) / n);
    out = w * inv + T(0);
  } else {
    const T p = std::exp2(i + f);
    const T hi = p - T(1);
    const T lo = kOverflow == 0 ? -(k * p) : -(k * hi);
    out = heteroq::detail::clamp_keep_nan(c, lo, hi) * inv + T(0);
    clip_hi = v > hi;
    clip_lo = v < lo;
  }
  *y = live ? out : T(0);
  if constexpr (kDeriv) {
    const T r = c * inv;
    const T df_in = (x - r) * ln2;
    if (!live) {
      *dx = T(1);
      *df = x * ln2;
      *di = T(0);
    } else if constexpr (kOverflow == 2) {
      *dx = T(1);
      *df = df_in;
      *di = T(0);
    } else {
      const T top_f = inv * ln2;
      const T top_i = std::exp2(i) * ln2;
      *dx = (clip_hi || clip_lo) ? T(0) : T(1);
      if (clip_hi) {
        *df = top_f;
        *di = top_i;
      } else if (clip_lo) {
        *df = kOverflow == 1 ? -(k * top_f) : T(0);
        *di = -(k * top_i);
      } else {
        *df = df_in;
        *di = T(0);
      }
    }
  }
}

template <typename T, int kRound, int kOverflow, bool kDeriv>
void run(at::TensorIterator& iter) {
  constexpr int kOut = kDeriv ? 4 : 1;
  iter.for_each(
      [](char** data, const int64_t* strides, int64_t n0, int64_t n1) {
        constexpr int nt = kOut + 4;
        for (int64_t j = 0; j < n1; ++j) {
          char* p[nt];
          for (int t = 0; t < nt; ++t) p[t] = data[t] + j * strides[nt + t];
          for (int64_t e = 0; e < n0; ++e) {
            auto at = [&](int t) { return reinterpret_cast<T*>(p[t] + e * strides[t]); };
            T dummy;
            fixed_element<T, kRound, kOverflow, kDeriv>(
                *at(kOut), *at(kOut + 1), *at(kOut + 2), *at(kOut + 3), at(0),
                kDeriv ? at(1) : &dummy, kDeriv ? at(2) : &dummy, kDeriv ? at(3) : &dummy);
          }
        }
      },
      32768);
}

template <typename T, bool kDeriv>
void dispatch_modes(at::TensorIterator& iter, int round_mode, int overflow_mode) {
  auto with_round = [&](auto r) {
    constexpr int R = decltype(r)::value;
    if (overflow_mode == 0) return run<T, R, 0, kDeriv>(iter);
    if (overflow_mode == 1) return run<T, R, 1, kDeriv>(iter);
    run<T, R, 2, kDeriv>(iter);
  };
  if (round_mode == 0) return with_round(std::integral_constant<int, 0>{});
  if (round_mode == 1) return with_round(std::integral_constant<int, 1>{});
  with_round(std::integral_constant<int, 2>{});
}

bool fused(const at::Tensor& x) {
  return fused_kernels_enabled() &&
         (x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> fixed_cpu_impl(
    const at::Tensor& x_in, const at::Tensor& keep_negative, const at::Tensor& int_bits,
    const at::Tensor& frac_bits, c10::string_view round_mode, c10::string_view overflow_mode,
    bool derivatives) {
  const detail::FixedArgs a =
      detail::check_fixed(x_in, keep_negative, int_bits, frac_bits, round_mode, overflow_mode);
  if (!fused(x_in)) {
    auto r = detail::fixed_quantize_generic_impl(x_in, a, derivatives);
    std::get<0>(r) = std::get<0>(r).expand(x_in.sizes()).contiguous();
    return r;
  }
  const at::Tensor x = x_in.contiguous();
  at::Tensor y = detail::empty_output(x);
  at::Tensor dx, df, di;
  auto config = at::TensorIteratorConfig();
  config.add_output(y);
  if (derivatives) {
    dx = at::empty_like(x, at::MemoryFormat::Contiguous);
    df = at::empty_like(x, at::MemoryFormat::Contiguous);
    di = at::empty_like(x, at::MemoryFormat::Contiguous);
    config.add_output(dx).add_output(df).add_output(di);
  }
  if (x.numel() == 0) return {y, dx, df, di};
  config.add_input(x).add_input(a.k).add_input(a.i).add_input(a.f);
  config.check_all_same_dtype(true).resize_outputs(false);
  at::TensorIterator iter = config.build();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "heteroq_fixed_quantize", [&] {
    if (derivatives) {
      dispatch_modes<scalar_t, true>(iter, a.round_mode, a.overflow_mode);
    } else {
      dispatch_modes<scalar_t, false>(iter, a.round_mode, a.overflow_mode);
    }
  });
  return {y, dx, df, di};
}

at::Tensor fixed_quantize_cpu(const at::Tensor& x, const at::Tensor& keep_negative,
                              const at::Tensor& int_bits, const at::Tensor& frac_bits,
                              c10::string_view round_mode, c10::string_view overflow_mode) {
  return std::get<0>(
      fixed_cpu_impl(x, keep_negative, int_bits, frac_bits, round_mode, overflow_mode, false));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> fixed_quantize_fwd_cpu(
    const at::Tensor& x, const at::Tensor& keep_negative, const at::Tensor& int_bits,
    const at::Tensor& frac_bits, c10::string_view round_mode, c10::string_view overflow_mode) {
  return fixed_cpu_impl(x, keep_negative, int_bits, frac_bits, round_mode, overflow_mode, true);
}

}  // namespace
}  // namespace heteroq::ops

TORCH_LIBRARY_IMPL(heteroq, CPU, m) {
  m.impl("fixed_quantize", &heteroq::ops::fixed_quantize_cpu);
  m.impl("_fixed_quantize_fwd", &heteroq::ops::fixed_quantize_fwd_cpu);
}
