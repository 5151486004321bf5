// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Fused CPU kernels: one pass over the input, no temporaries, split across threads with
// at::parallel_for and written as plain loops over raw pointers that the compiler vectorizes
// (see round_half_even in core/fixed_point.h). float32 and float64 are fused; other floating
// dtypes take the device-generic path.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "core/fixed_point.h"
#include "heteroq/ops/quantize.h"
#include "ops/quantize_common.h"

namespace heteroq::ops {
namespace {

namespace hd = heteroq::detail;

// Elements per task: large enough that thread start-up is amortized.
constexpr int64_t kGrain = 32768;

bool use_fused(const at::Tensor& x) {
  return fused_kernels_enabled() &&
         (x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble);
}

template <typename F>
at::Tensor map_elements(const at::Tensor& x_in, F&& make_body) {
  const at::Tensor x = x_in.contiguous();
  at::Tensor out = at::empty_like(x, at::MemoryFormat::Contiguous);
  const int64_t n = x.numel();
  if (n == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "heteroq_cpu_kernel", [&] {
    const scalar_t* src = x.data_ptr<scalar_t>();
    scalar_t* dst = out.data_ptr<scalar_t>();
    auto body = make_body(scalar_t{});
    at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
      body(src + begin, dst + begin, end - begin);
    });
  });
  return out;
}

at::Tensor quantized_bits_cpu(const at::Tensor& x, int64_t bits, int64_t integer, bool symmetric,
                              bool keep_negative, c10::optional<double> alpha) {
  if (!use_fused(x)) {
    return detail::quantized_bits_generic(x, bits, integer, symmetric, keep_negative, alpha);
  }
  detail::check_quantized_bits(x, bits, integer, alpha);
  const auto grid = hd::make_bits_grid(bits, integer, symmetric, keep_negative, detail::to_std(alpha));
  return map_elements(x, [&](auto tag) {
    using T = decltype(tag);
    const hd::BitsGridT<T> g(grid);
    return [g](const T* __restrict src, T* __restrict dst, int64_t n) {
      if (g.sign_mode) {
        for (int64_t i = 0; i < n; ++i) dst[i] = hd::quantize_sign_element(src[i], g.sign_value);
        return;
      }
      const T s = g.in_scale, lo = g.lo, hi = g.hi, step = g.step;
      for (int64_t i = 0; i < n; ++i) dst[i] = hd::quantize_bits_element(src[i], s, lo, hi, step);
    };
  });
}

at::Tensor quantized_relu_cpu(const at::Tensor& x, int64_t bits, int64_t integer,
                              bool use_sigmoid, double negative_slope) {
  if (!use_fused(x)) {
    return detail::quantized_relu_generic(x, bits, integer, use_sigmoid, negative_slope);
  }
  detail::check_quantized_relu(x, bits, integer, negative_slope);
  const auto grid = hd::make_relu_grid(bits, integer, use_sigmoid, negative_slope);
  return map_elements(x, [&](auto tag) {
    using T = decltype(tag);
    const hd::ReluGridT<T> g(grid);
    return [g](const T* __restrict src, T* __restrict dst, int64_t n) {
      // Four specialised loops: the branches on the mode stay out of the element loop.
      if (!g.use_sigmoid) {
        if (g.slope == T(0)) {
          for (int64_t i = 0; i < n; ++i) dst[i] = hd::quantize_relu_plain_element(src[i], g, false);
        } else {
          for (int64_t i = 0; i < n; ++i) dst[i] = hd::quantize_relu_plain_element(src[i], g, true);
        }
      } else if (g.slope == T(0)) {
        for (int64_t i = 0; i < n; ++i) dst[i] = hd::quantize_relu_sigmoid_element(src[i], g, false);
      } else {
        for (int64_t i = 0; i < n; ++i) dst[i] = hd::quantize_relu_sigmoid_element(src[i], g, true);
      }
    };
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
  at::Tensor out = at::empty_like(xc, at::MemoryFormat::Contiguous);
  const int64_t n = xc.numel();
  if (n == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(xc.scalar_type(), "heteroq_quantized_relu_backward", [&] {
    const scalar_t* xs = xc.data_ptr<scalar_t>();
    const scalar_t* gs = gc.data_ptr<scalar_t>();
    scalar_t* dst = out.data_ptr<scalar_t>();
    const scalar_t top = scalar_t(grid.top), slope = scalar_t(grid.slope);
    at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
      const scalar_t* __restrict xp = xs;
      const scalar_t* __restrict gp = gs;
      scalar_t* __restrict dp = dst;
      for (int64_t i = begin; i < end; ++i) dp[i] = gp[i] * hd::relu_ste_grad(xp[i], top, slope);
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
}
