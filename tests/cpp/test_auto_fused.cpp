// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// quantized_bits_auto: the fused CPU kernel (src/ops/cpu/quantize_auto_kernel.cpp) against the
// device-generic kernel, output and scale bit for bit (NaN where the other has NaN).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <gtest/gtest.h>

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

std::tuple<at::Tensor, at::Tensor> run(bool fused, const at::Tensor& x, int64_t bits,
                                       int64_t integer, bool keep_negative, bool po2,
                                       const Axes& axes, double q) {
  heteroq::ops::FusedKernelsGuard g(fused);
  return heteroq::ops::quantized_bits_auto(x, bits, integer, keep_negative, po2, axes, q);
}

void expect_same(const at::Tensor& x, int64_t bits, int64_t integer, bool keep_negative, bool po2,
                 const Axes& axes, double q, const std::string& what) {
  auto [out_f, scale_f] = run(true, x, bits, integer, keep_negative, po2, axes, q);
  auto [out_g, scale_g] = run(false, x, bits, integer, keep_negative, po2, axes, q);
  const std::string ctx = what + " bits=" + std::to_string(bits) + " integer=" +
                          std::to_string(integer) + " keep_negative=" +
                          std::to_string(keep_negative) + " po2=" + std::to_string(po2) +
                          " q=" + std::to_string(q) + " " + c10::toString(x.scalar_type());
  EXPECT_TRUE(bitwise_equal(out_f, out_g)) << "output: " << ctx;
  EXPECT_TRUE(bitwise_equal(scale_f, scale_g)) << "scale: " << ctx;
}

// Rows of very different magnitudes, plus an all-zero row, a row with NaN, a row with +-inf, a
// row with huge values, exact ties of the code rounding and signed zeros.
at::Tensor channels_input(at::ScalarType dtype, std::vector<int64_t> shape) {
  at::Tensor x = heteroq_test::spread_channels(dtype, shape);
  if (shape[0] >= 6 && x[0].numel() >= 4) heteroq_test::set_special_channels(x);
  return x;
}

TEST(QuantizedBitsAutoFused, HasACpuKernel) {
  // Without it both runs below would take the generic path and agree trivially.
  const auto op = c10::Dispatcher::singleton().findSchemaOrThrow("heteroq::quantized_bits_auto", "");
  EXPECT_TRUE(op.hasKernelForDispatchKey(c10::DispatchKey::CPU));
}

TEST(QuantizedBitsAutoFused, EqualsGenericBitForBit) {
  at::manual_seed(2026);
  for (auto dtype : {at::kFloat, at::kDouble}) {
    // Row lengths that are not multiples of the vector width (tails), one element per row, long rows.
    for (const auto& shape : std::vector<std::vector<int64_t>>{
             {64, 300}, {33, 17}, {9, 1}, {7, 3, 5, 5}, {6, 4, 2, 3}, {8, 4099}}) {
      const at::Tensor x = channels_input(dtype, shape);
      for (bool po2 : {true, false}) {
        for (int64_t bits : {2, 3, 4, 6, 8, 12, 16, 24, 32}) {
          expect_same(x, bits, 0, true, po2, std::nullopt, 1.0, "axis 0");
        }
        for (int64_t integer : {-3, 2, 64, -64}) {
          expect_same(x, 6, integer, false, po2, std::nullopt, 1.0, "integer");
        }
        expect_same(x, 5, 1, true, po2, std::nullopt, 0.5, "qnoise 0.5");
        expect_same(x, 5, 0, true, po2, std::nullopt, 0.0, "qnoise 0");
        expect_same(x, 4, 0, true, po2, std::vector<int64_t>{1}, 1.0, "axis 1");
        expect_same(x, 4, 0, true, po2, std::vector<int64_t>{-1}, 1.0, "axis -1");
        if (x.dim() == 4) {
          expect_same(x, 4, 0, true, po2, std::vector<int64_t>{0, 2}, 1.0, "axes 0, 2");
          expect_same(x, 7, 1, true, po2, std::vector<int64_t>{3, 1}, 0.25, "axes 3, 1");
          expect_same(x, 7, 0, true, po2, std::vector<int64_t>{1, 1}, 1.0, "axes 1, 1");
        }
        // Non-contiguous inputs: transposed (its permuted view is contiguous), strided.
        expect_same(x.transpose(0, 1), 6, 0, true, po2, std::nullopt, 1.0, "transposed");
        expect_same(x.transpose(0, 1), 6, 0, true, po2, std::vector<int64_t>{1}, 1.0,
                    "transposed, axis 1");
        if (x.size(0) > 2) {
          expect_same(x.slice(0, 0, x.size(0), 2), 6, 0, true, po2, std::nullopt, 1.0, "strided");
        }
        expect_same(x.narrow(0, 0, 1).expand_as(x), 6, 0, true, po2, std::nullopt, 1.0,
                    "expanded");
      }
    }
  }
}

// The scales pass through 2^round(log(s + eps) / ln 2) up to six times. Near s = sqrt(2) 2^k the
// rounding depends on the last bit of the logarithm, which differs between libm and ATen's
// vectorized log: the fused kernel must round where the generic kernel (at::log) does. With
// bits = 2 the first scale of a one-element row is the element itself.
TEST(QuantizedBitsAutoFused, Po2RoundingAtTheBoundaries) {
  for (auto dtype : {at::kFloat, at::kDouble}) {
    std::vector<double> v;
    for (int k = -20; k <= 40; ++k) {
      const std::vector<double> near =
          heteroq_test::values_near(std::ldexp(std::sqrt(2.0), k), dtype, 64, 128);
      v.insert(v.end(), near.begin(), near.end());
    }
    const at::Tensor x = at::tensor(v, at::TensorOptions().dtype(dtype)).view({-1, 1});
    expect_same(x, 2, 0, true, true, std::nullopt, 1.0, "po2 boundaries, one element per row");
    expect_same(x.view({-1, 2}), 2, 0, true, true, std::nullopt, 1.0, "po2 boundaries, pairs");
    expect_same(x, 3, 0, true, true, std::nullopt, 1.0, "po2 boundaries, bits 3");
  }
}

// With 2 bits, rows of 64 N(0, 1) values reach the fixed point of the auto_po2 iteration after 1,
// 2 or 3 iterations: rows leave the iteration at different times within a block.
TEST(QuantizedBitsAutoFused, RowsThatIterateLonger) {
  at::manual_seed(3);
  for (auto dtype : {at::kFloat, at::kDouble}) {
    const at::Tensor x = at::randn({3000, 64}, at::TensorOptions().dtype(dtype));
    expect_same(x, 2, 0, true, true, std::nullopt, 1.0, "3000 x 64");
    expect_same(x, 2, 1, false, true, std::nullopt, 0.5, "3000 x 64, qnoise");
  }
}

TEST(QuantizedBitsAutoFused, ThreadCountDoesNotChangeTheResult) {
  at::manual_seed(7);
  const int before = at::get_num_threads();
  const at::Tensor x = channels_input(at::kFloat, {512, 1000});
  at::set_num_threads(1);
  auto [o1, s1] = run(true, x, 6, 0, true, true, std::nullopt, 1.0);
  at::set_num_threads(2);
  auto [o2, s2] = run(true, x, 6, 0, true, true, std::nullopt, 1.0);
  auto [og, sg] = run(false, x, 6, 0, true, true, std::nullopt, 1.0);
  at::set_num_threads(before);
  EXPECT_TRUE(bitwise_equal(o1, o2));
  EXPECT_TRUE(bitwise_equal(s1, s2));
  EXPECT_TRUE(bitwise_equal(o2, og));
  EXPECT_TRUE(bitwise_equal(s2, sg));
}

TEST(QuantizedBitsAutoFused, FallbackCasesEqualGeneric) {
  at::manual_seed(11);
  for (bool po2 : {true, false}) {
    // Rank 1 (one least-squares scale per element), rank 0, empty tensors, every axis kept.
    expect_same(at::randn({37}), 4, 0, true, po2, std::nullopt, 1.0, "rank 1");
    expect_same(at::randn({}), 4, 0, true, po2, std::nullopt, 1.0, "rank 0");
    expect_same(at::randn({0, 4}), 4, 0, true, po2, std::nullopt, 1.0, "empty rows");
    expect_same(at::randn({3, 0}), 4, 0, true, po2, std::nullopt, 1.0, "empty channels");
    expect_same(at::randn({3, 4}), 4, 0, true, po2, std::vector<int64_t>{0, 1}, 1.0, "all kept");
    // Reduced precision: both compute in float32.
    for (auto dtype : {at::kHalf, at::kBFloat16}) {
      expect_same(at::randn({12, 40}).to(dtype), 5, 0, true, po2, std::nullopt, 0.5, "reduced");
    }
  }
}

// QKeras's K.max and K.mean over axis=[] reduce nothing: with every axis kept, each element is its
// own channel, as in a column of one-element rows.
TEST(QuantizedBitsAutoFused, EveryAxisKeptGivesPerElementScales) {
  const at::Tensor x = at::tensor({0.3f, -0.9f, 2.0f, 0.1f}).view({2, 2});
  for (bool fused : {true, false}) {
    auto [out, scale] = run(fused, x, 4, 0, true, true, std::vector<int64_t>{0, 1}, 1.0);
    auto [out1, scale1] = run(fused, x.reshape({4, 1}), 4, 0, true, true, std::nullopt, 1.0);
    EXPECT_EQ(scale.sizes(), x.sizes());
    EXPECT_TRUE(bitwise_equal(out.flatten(), out1.flatten()));
    EXPECT_TRUE(bitwise_equal(scale.flatten(), scale1.flatten()));
  }
}

TEST(QuantizedBitsAutoFused, SameErrors) {
  const at::Tensor x = at::randn({4, 5});
  for (bool fused : {true, false}) {
    heteroq::ops::FusedKernelsGuard g(fused);
    EXPECT_THROW(heteroq::ops::quantized_bits_auto(x, 1, 0), c10::ValueError);
    EXPECT_THROW(heteroq::ops::quantized_bits_auto(x, 4, 0, true, true, std::vector<int64_t>{2}),
                 c10::ValueError);
    EXPECT_THROW(heteroq::ops::quantized_bits_auto(x, 4, 0, true, true, std::nullopt, 1.5),
                 c10::ValueError);
    EXPECT_THROW(heteroq::ops::quantized_bits_auto(at::ones({4, 5}, at::kInt), 4, 0),
                 c10::TypeError);
  }
}

}  // namespace
