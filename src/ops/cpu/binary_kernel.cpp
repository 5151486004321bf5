// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Fused CPU kernels of binary and ternary with a fixed alpha (float32 and float64).
#include <torch/library.h>

#include "core/fixed_point.h"
#include "ops/cpu/loops.h"

namespace heteroq::ops {
namespace {

namespace hd = heteroq::detail;
using namespace heteroq::ops::cpu;  // NOLINT: the shared loops (a .cpp file, not a header)

template <typename T>
struct BinaryOp {
  T low, scale;
  T operator()(T x) const { return hd::binary_element(x, low, scale); }
};

template <typename T>
struct TernaryOp {
  T t, scale;
  T operator()(T x) const { return hd::ternary_element(x, t, scale); }
};

at::Tensor binary_cpu(const at::Tensor& x, bool use_01, c10::optional<double> alpha) {
  if (!use_fused(x)) return detail::binary_generic(x, use_01, alpha);
  detail::check_binary(x, alpha);
  return map_unary(x, [&](auto tag, auto&& run) {
    using T = decltype(tag);
    run(BinaryOp<T>{use_01 ? T(0) : T(-1), T(alpha.value_or(1.0))});
  });
}

at::Tensor ternary_cpu(const at::Tensor& x, c10::optional<double> alpha,
                       c10::optional<double> threshold) {
  if (!use_fused(x)) return detail::ternary_generic(x, alpha, threshold);
  detail::check_ternary(x, alpha, threshold);
  return map_unary(x, [&](auto tag, auto&& run) {
    using T = decltype(tag);
    run(TernaryOp<T>{T(threshold.value_or(0.33)), T(alpha.value_or(1.0))});
  });
}

}  // namespace
}  // namespace heteroq::ops

TORCH_LIBRARY_IMPL(heteroq, CPU, m) {
  m.impl("binary", &heteroq::ops::binary_cpu);
  m.impl("ternary", &heteroq::ops::ternary_cpu);
}
