// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// binary_auto and ternary_auto: the fused CPU kernels (src/ops/cpu/binary_auto_kernel.cpp) against
// the device-generic kernels, output and scale bit for bit (NaN where the other has NaN).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "auto_fused_helpers.h"
#include "heteroq/ops/quantize.h"

namespace {

using heteroq_test::Axes;
using heteroq_test::bitwise_equal;

// op: binary (arg = use_01) or ternary (arg = number_of_unrolls).
enum class Op { kBinary, kTernary };

std::tuple<at::Tensor, at::Tensor> run(bool fused, Op op, const at::Tensor& x, int64_t arg,
                                       bool po2, const Axes& axes) {
  heteroq::ops::FusedKernelsGuard g(fused);
  if (op == Op::kBinary) return heteroq::ops::binary_auto(x, arg != 0, po2, axes);
  return heteroq::ops::ternary_auto(x, po2, arg, axes);
}

void expect_same(Op op, const at::Tensor& x, int64_t arg, bool po2, const Axes& axes,
                 const std::string& what) {
  auto [out_f, scale_f] = run(true, op, x, arg, po2, axes);
  auto [out_g, scale_g] = run(false, op, x, arg, po2, axes);
  const std::string ctx = what + (op == Op::kBinary ? " binary use_01=" : " ternary unrolls=") +
                          std::to_string(arg) + " po2=" + std::to_string(po2) + " " +
                          c10::toString(x.scalar_type());
  EXPECT_TRUE(bitwise_equal(out_f, out_g)) << "output: " << ctx;
  EXPECT_TRUE(bitwise_equal(scale_f, scale_g)) << "scale: " << ctx;
}

void expect_same_all(const at::Tensor& x, bool po2, const Axes& axes, const std::string& what,
                     std::vector<int64_t> unrolls = {5}) {
  expect_same(Op::kBinary, x, 0, po2, axes, what);
  expect_same(Op::kBinary, x, 1, po2, axes, what);
  for (int64_t u : unrolls) expect_same(Op::kTernary, x, u, po2, axes, what);
}

// Rows of very different magnitudes, plus an all-zero row, a row with NaN, a row with +-inf, a
// row with huge values, exact multiples of 1/16, signed zeros, a lone -inf (binary use_01:
// -inf * 0 = NaN in its sum) and values whose double overflows (2 max|x| = inf).
at::Tensor channels_input(at::ScalarType dtype, std::vector<int64_t> shape) {
  at::Tensor x = heteroq_test::spread_channels(dtype, shape);
  if (shape[0] >= 8 && x[0].numel() >= 4) {
    const double big = (dtype == at::kFloat ? std::numeric_limits<float>::max()
                                            : std::numeric_limits<double>::max()) / 1.5;
    heteroq_test::set_special_channels(x);
    x[6].view({-1})[1] = -std::numeric_limits<double>::infinity();
    x[7].view({-1})[2] = big;
    x[7].view({-1})[0] = -big;
  }
  return x;
}

TEST(BinaryAutoFused, HasCpuKernels) {
  // Without them both runs below would take the generic path and agree trivially.
  for (const char* name : {"heteroq::binary_auto", "heteroq::ternary_auto"}) {
    const auto op = c10::Dispatcher::singleton().findSchemaOrThrow(name, "");
    EXPECT_TRUE(op.hasKernelForDispatchKey(c10::DispatchKey::CPU)) << name;
  }
}

TEST(BinaryAutoFused, EqualsGenericBitForBit) {
  at::manual_seed(2026);
  for (auto dtype : {at::kFloat, at::kDouble}) {
    // Row lengths that are not multiples of 16 (tails), one element per row, long rows.
    for (const auto& shape : std::vector<std::vector<int64_t>>{
             {64, 300}, {33, 17}, {9, 1}, {7, 3, 5, 5}, {8, 4, 2, 3}, {8, 4099}, {10, 16}}) {
      const at::Tensor x = channels_input(dtype, shape);
      for (bool po2 : {true, false}) {
        expect_same_all(x, po2, std::nullopt, "axis 0", {0, 1, 2, 5, 13});
        expect_same_all(x, po2, std::vector<int64_t>{1}, "axis 1");
        expect_same_all(x, po2, std::vector<int64_t>{-1}, "axis -1");
        if (x.dim() == 4) {
          expect_same_all(x, po2, std::vector<int64_t>{0, 2}, "axes 0, 2");
          expect_same_all(x, po2, std::vector<int64_t>{3, 1}, "axes 3, 1");
          expect_same_all(x, po2, std::vector<int64_t>{1, 1}, "axes 1, 1");
        }
        // Non-contiguous inputs: transposed (its permuted view is contiguous), strided, expanded.
        expect_same_all(x.transpose(0, 1), po2, std::nullopt, "transposed");
        expect_same_all(x.transpose(0, 1), po2, std::vector<int64_t>{1}, "transposed, axis 1");
        if (x.size(0) > 2) {
          expect_same_all(x.slice(0, 0, x.size(0), 2), po2, std::nullopt, "strided");
        }
        expect_same_all(x.narrow(0, 0, 1).expand_as(x), po2, std::nullopt, "expanded");
      }
    }
  }
}

// Subnormal scales (s / 2 rounds to 0 for the smallest one: every nonzero element is kept), scales
// that overflow (2 max|x| = inf), and rows with non-finite values.
TEST(BinaryAutoFused, ExtremeScales) {
  for (auto dtype : {at::kFloat, at::kDouble}) {
    const bool f = dtype == at::kFloat;
    const double tiny = f ? std::numeric_limits<float>::denorm_min()
                          : std::numeric_limits<double>::denorm_min();
    const double big = f ? std::numeric_limits<float>::max() : std::numeric_limits<double>::max();
    const double inf = std::numeric_limits<double>::infinity();
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const std::vector<double> v = {tiny,     0.0,       -tiny,     tiny,
                                   3 * tiny, tiny,      -2 * tiny, 0.0,
                                   7 * tiny, -5 * tiny, tiny,      3 * tiny,
                                   4 * tiny, 2 * tiny,  -2 * tiny, tiny,       // s = 3 tiny:
                                   5 * tiny, -2 * tiny, 3 * tiny,  tiny,       // s / 2 inexact
                                   big,      -big,      big / 3,   0.0,
                                   big / 2,  big / 5,   -big / 7,  1.0,
                                   0.0,      -0.0,      0.0,       -0.0,
                                   inf,      1.0,       2.0,       3.0,
                                   -inf,     -1.0,      0.0,       2.0,
                                   nan,      1.0,       -1.0,      0.0};
    const at::Tensor x = at::tensor(v, at::TensorOptions().dtype(at::kDouble)).to(dtype).view({-1, 4});
    for (bool po2 : {true, false}) {
      expect_same_all(x, po2, std::nullopt, "extreme", {0, 1, 2, 5, 30});
      expect_same_all(x.repeat({1, 9}), po2, std::nullopt, "extreme, rows of 36", {5});
    }
  }
}

// Elements within a few ulps of ternary's code boundary s / 2 (and exact ties, which round to 0).
TEST(BinaryAutoFused, TernaryCodeBoundaries) {
  for (auto dtype : {at::kFloat, at::kDouble}) {
    std::vector<double> v;
    const int64_t width = 2 + 2 * 2 * 12;
    for (double m : {1.0, 1.5, 3.0, 0.75, 1.234567, 2.718281828, 0.3}) {
      const bool f = dtype == at::kFloat;
      const double s0 = f ? static_cast<double>(static_cast<float>(2 * m) / 3.0f) : 2 * m / 3;
      v.push_back(m);
      v.push_back(-m);
      for (double base : {s0 / 2, std::exp2(std::round(std::log2(s0))) / 2}) {
        for (double b : heteroq_test::values_near(base, dtype, 6, 12)) {
          v.push_back(b);
          v.push_back(-b);
        }
      }
    }
    const at::Tensor x =
        at::tensor(v, at::TensorOptions().dtype(at::kDouble)).to(dtype).view({-1, width});
    for (bool po2 : {true, false}) {
      for (int64_t u : {1, 2, 5}) expect_same(Op::kTernary, x, u, po2, std::nullopt, "boundaries");
    }
  }
}

// The scales pass through 2^round(log(s + eps) / ln 2). Near s = sqrt(2) 2^k the rounding depends
// on the last bit of the logarithm: the fused kernels must round where at::log does. binary: a
// one-element row's scale is |x| / (1 + 1e-7); ternary: its first scale is 2 |x| / 3.
TEST(BinaryAutoFused, Po2RoundingAtTheBoundaries) {
  for (auto dtype : {at::kFloat, at::kDouble}) {
    std::vector<double> v;
    for (int k = -20; k <= 40; ++k) {
      for (double b : {std::ldexp(std::sqrt(2.0), k), 1.5 * std::ldexp(std::sqrt(2.0), k)}) {
        const std::vector<double> near = heteroq_test::values_near(b, dtype, 64, 128);
        v.insert(v.end(), near.begin(), near.end());
      }
    }
    const at::Tensor x = at::tensor(v, at::TensorOptions().dtype(at::kDouble)).to(dtype).view({-1, 1});
    expect_same_all(x, true, std::nullopt, "po2 boundaries", {0, 1, 5});
    expect_same_all(x.view({-1, 2}), true, std::nullopt, "po2 boundaries, pairs", {5});
  }
}

// Rows reach ternary's fixed point after different numbers of iterations (or not within the
// unrolls, for "auto"): rows leave the iteration at different times within a block.
TEST(BinaryAutoFused, RowsThatIterateLonger) {
  at::manual_seed(3);
  for (auto dtype : {at::kFloat, at::kDouble}) {
    at::Tensor x = at::randn({3000, 64}, at::TensorOptions().dtype(dtype));
    x.slice(0, 0, 3000, 3).pow_(3);
    for (bool po2 : {true, false}) {
      for (int64_t u : {3, 5, 40}) expect_same(Op::kTernary, x, u, po2, std::nullopt, "3000 x 64");
    }
  }
}

TEST(BinaryAutoFused, ThreadCountDoesNotChangeTheResult) {
  at::manual_seed(7);
  const int before = at::get_num_threads();
  const at::Tensor x = channels_input(at::kFloat, {512, 1000});
  for (Op op : {Op::kBinary, Op::kTernary}) {
    const int64_t arg = op == Op::kBinary ? 0 : 5;
    at::set_num_threads(1);
    auto [o1, s1] = run(true, op, x, arg, false, std::nullopt);
    at::set_num_threads(2);
    auto [o2, s2] = run(true, op, x, arg, false, std::nullopt);
    auto [og, sg] = run(false, op, x, arg, false, std::nullopt);
    EXPECT_TRUE(bitwise_equal(o1, o2));
    EXPECT_TRUE(bitwise_equal(s1, s2));
    EXPECT_TRUE(bitwise_equal(o2, og));
    EXPECT_TRUE(bitwise_equal(s2, sg));
  }
  at::set_num_threads(before);
}

TEST(BinaryAutoFused, FallbackCasesEqualGeneric) {
  at::manual_seed(11);
  for (bool po2 : {true, false}) {
    // Rank 1 (one least-squares scale per element), rank 0, empty tensors, every axis kept.
    expect_same_all(at::randn({37}), po2, std::nullopt, "rank 1");
    expect_same_all(at::randn({}), po2, std::nullopt, "rank 0");
    expect_same_all(at::randn({0, 4}), po2, std::nullopt, "empty rows");
    expect_same_all(at::randn({3, 0}), po2, std::nullopt, "empty channels");
    expect_same_all(at::randn({3, 4}), po2, std::vector<int64_t>{0, 1}, "all kept");
    // Reduced precision: both compute in float32.
    for (auto dtype : {at::kHalf, at::kBFloat16}) {
      expect_same_all(at::randn({12, 40}).to(dtype), po2, std::nullopt, "reduced");
    }
  }
}

// The output's gradient stays the identity (the Autograd kernel calls the op below autograd, which
// reaches the CPU kernel); the scale has none.
TEST(BinaryAutoFused, GradientIsTheIdentity) {
  at::manual_seed(13);
  const at::Tensor w = at::randn({16, 50});
  for (Op op : {Op::kBinary, Op::kTernary}) {
    const at::Tensor x = w.clone().requires_grad_(true);
    auto [out, scale] = run(true, op, x, op == Op::kBinary ? 1 : 5, true, std::nullopt);
    EXPECT_TRUE(out.requires_grad());
    EXPECT_FALSE(scale.requires_grad());
    const auto g = torch::autograd::grad({out}, {x}, {at::full_like(w, 3.0)});
    EXPECT_TRUE(at::equal(g[0], at::full_like(w, 3.0)));
    auto [out_g, scale_g] = run(false, op, w, op == Op::kBinary ? 1 : 5, true, std::nullopt);
    EXPECT_TRUE(bitwise_equal(out.detach(), out_g));
    EXPECT_TRUE(bitwise_equal(scale, scale_g));
  }
}

TEST(BinaryAutoFused, SameErrors) {
  const at::Tensor x = at::randn({4, 5});
  for (bool fused : {true, false}) {
    heteroq::ops::FusedKernelsGuard g(fused);
    EXPECT_THROW(heteroq::ops::binary_auto(x, false, true, std::vector<int64_t>{2}),
                 c10::ValueError);
    EXPECT_THROW(heteroq::ops::ternary_auto(x, true, 5, std::vector<int64_t>{-3}),
                 c10::ValueError);
    EXPECT_THROW(heteroq::ops::ternary_auto(x, true, 101), c10::ValueError);
    EXPECT_THROW(heteroq::ops::ternary_auto(x, true, -1), c10::ValueError);
    EXPECT_THROW(heteroq::ops::binary_auto(at::ones({4, 5}, at::kInt)), c10::TypeError);
    EXPECT_THROW(heteroq::ops::ternary_auto(at::ones({4, 5}, at::kInt)), c10::TypeError);
  }
}

}  // namespace
