// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Helpers shared by the tests of the fused auto-scale CPU kernels (test_auto_fused.cpp,
// test_binary_auto_fused.cpp): bit-for-bit comparison and the inputs both build.
#pragma once

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

namespace heteroq_test {

using Axes = std::optional<std::vector<int64_t>>;

inline at::Tensor bits_of(const at::Tensor& x) {
  const at::Tensor c = x.contiguous();
  switch (c.scalar_type()) {
    case at::kDouble: return c.view(at::kLong);
    case at::kFloat: return c.view(at::kInt);
    default: return c.view(at::kShort);
  }
}

// Same shape, dtype, NaN positions and bits elsewhere.
inline ::testing::AssertionResult bitwise_equal(const at::Tensor& a, const at::Tensor& b) {
  if (a.sizes() != b.sizes()) {
    return ::testing::AssertionFailure() << "shapes " << a.sizes() << " vs " << b.sizes();
  }
  if (a.scalar_type() != b.scalar_type()) return ::testing::AssertionFailure() << "dtypes differ";
  const at::Tensor nan_a = at::isnan(a), nan_b = at::isnan(b);
  if (!at::equal(nan_a, nan_b)) return ::testing::AssertionFailure() << "NaN positions differ";
  const at::Tensor keep = at::logical_not(nan_a).contiguous();
  const at::Tensor ba = bits_of(a).masked_select(keep);
  const at::Tensor bb = bits_of(b).masked_select(keep);
  const at::Tensor diff = ba.ne(bb);
  const int64_t n = diff.sum().item<int64_t>();
  if (n != 0) {
    const int64_t i = diff.nonzero()[0][0].item<int64_t>();
    const at::Tensor va = a.masked_select(keep).flatten(), vb = b.masked_select(keep).flatten();
    return ::testing::AssertionFailure()
           << n << " of " << ba.numel() << " values differ, first: " << va[i].item<double>()
           << " vs " << vb[i].item<double>();
  }
  return ::testing::AssertionSuccess();
}

// N(0, 1) values, each channel (axis 0) scaled by its own 10^k, k in [-4, 4).
inline at::Tensor spread_channels(at::ScalarType dtype, const std::vector<int64_t>& shape) {
  const auto opts = at::TensorOptions().dtype(dtype);
  at::Tensor x = at::randn(shape, opts);
  const int64_t c = shape[0];
  at::Tensor mag = at::pow(10.0, at::randint(-4, 4, {c}, opts));
  std::vector<int64_t> bshape(shape.size(), 1);
  bshape[0] = c;
  return x * mag.view(bshape);
}

// Channels 0..5 (x has at least 6, of at least 4 elements): all zero, a NaN, +-inf, huge values,
// exact multiples of 1/16 (ties of the code rounding) and signed zeros.
inline void set_special_channels(at::Tensor& x) {
  x[0].zero_();
  x[1].view({-1})[3] = std::numeric_limits<double>::quiet_NaN();
  x[2].view({-1})[0] = std::numeric_limits<double>::infinity();
  x[2].view({-1})[1] = -std::numeric_limits<double>::infinity();
  x[3].mul_(1e30);
  x[4].copy_(at::round(x[4] * 16) / 16);
  x[5].view({-1})[0] = -0.0;
  x[5].view({-1})[1] = 0.0;
}

// `count` consecutive values of dtype (float or double), upwards from `below` values under b
// (b rounded to dtype), as doubles.
inline std::vector<double> values_near(double b, at::ScalarType dtype, int below, int count) {
  std::vector<double> v;
  if (dtype == at::kFloat) {
    float f = static_cast<float>(b);
    for (int i = 0; i < below; ++i) f = std::nextafter(f, 0.0f);
    for (int i = 0; i < count; ++i, f = std::nextafter(f, 1e30f)) v.push_back(f);
  } else {
    double d = b;
    for (int i = 0; i < below; ++i) d = std::nextafter(d, 0.0);
    for (int i = 0; i < count; ++i, d = std::nextafter(d, 1e300)) v.push_back(d);
  }
  return v;
}

}  // namespace heteroq_test
