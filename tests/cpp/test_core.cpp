// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// The torch-free numerics of src/core/fixed_point.h against the C library.
#include <gtest/gtest.h>

#include <cfenv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>

#include "core/fixed_point.h"

namespace {

namespace hd = heteroq::detail;

template <typename T>
void expect_same_value(T got, T want, T v) {
  if (std::isnan(want)) {
    EXPECT_TRUE(std::isnan(got)) << v;
  } else {
    EXPECT_EQ(got, want) << "v=" << v;  // +0 == -0: the sign of zero is normalised by the callers
  }
}

TEST(Core, RoundHalfEvenMatchesNearbyintOnEveryQuarterStepAndSpecials) {
  ASSERT_EQ(std::fegetround(), FE_TONEAREST);
  // Every multiple of 1/4 in [-2^23, 2^23]: all ties of the integer grid and their neighbours.
  for (int64_t k = -(int64_t{1} << 25); k <= (int64_t{1} << 25); k += 1) {
    const float v = static_cast<float>(k) * 0.25f;
    const float want = std::nearbyint(v);
    const float got = hd::round_half_even(v);
    if (got != want || std::signbit(got) != std::signbit(want)) {
      ADD_FAILURE() << "round_half_even(" << v << ") = " << got << ", want " << want;
      break;
    }
    if (std::fabs(v) <= hd::kSmallRoundLimit<float>) {
      const float small = hd::round_half_even_small(v);
      if (small != want) {
        ADD_FAILURE() << "round_half_even_small(" << v << ") = " << small << ", want " << want;
        break;
      }
    }
  }
  const float inf = std::numeric_limits<float>::infinity();
  for (float v : {inf, -inf, 1e30f, -1e30f, 8388609.0f, -0.0f, 0.0f, 1e-40f, -1e-40f}) {
    expect_same_value(hd::round_half_even(v), std::nearbyint(v), v);
  }
  EXPECT_TRUE(std::isnan(hd::round_half_even(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_TRUE(std::isnan(hd::round_half_even_small(std::numeric_limits<float>::quiet_NaN())));
}

TEST(Core, RoundHalfEvenDoubleRandom) {
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> scale(-60, 60);
  std::uniform_real_distribution<double> unit(-1, 1);
  for (int i = 0; i < 2000000; ++i) {
    const double v = unit(rng) * std::ldexp(1.0, static_cast<int>(scale(rng)));
    ASSERT_EQ(hd::round_half_even(v), std::nearbyint(v)) << v;
    if (std::fabs(v) <= hd::kSmallRoundLimit<double>) {
      ASSERT_EQ(hd::round_half_even_small(v), std::nearbyint(v)) << v;
    }
  }
}

TEST(Core, ClampThenRoundEqualsRoundThenClamp) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-300.0f, 300.0f);
  const float bounds[][2] = {{-32, 31}, {0, 15}, {-7, 7}, {-2, 0}, {0, 0}, {-4194304, 4194303}};
  for (auto [lo, hi] : bounds) {
    for (int i = 0; i < 200000; ++i) {
      float v = dist(rng);
      if (i % 3 == 0) v = std::round(v) + 0.5f;  // ties
      if (i % 5 == 0) v *= 20000.0f;             // far outside
      ASSERT_EQ((hd::round_clamp<float, true>(v, lo, hi)),
                (hd::round_clamp<float, false>(v, lo, hi)))
          << v << " in [" << lo << ", " << hi << "]";
    }
    const float inf = std::numeric_limits<float>::infinity();
    EXPECT_EQ((hd::round_clamp<float, true>(inf, lo, hi)), hi);
    EXPECT_EQ((hd::round_clamp<float, true>(-inf, lo, hi)), lo);
    EXPECT_TRUE(std::isnan(hd::round_clamp<float, true>(std::nanf(""), lo, hi)));
  }
}

TEST(Core, ArgumentChecksNameArgumentAndValue) {
  EXPECT_EQ(hd::check_quantized_bits_args(8, 0, std::nullopt), "");
  EXPECT_EQ(hd::check_quantized_bits_args(0, 0, std::nullopt),
            "quantized_bits: `bits` must be an integer in [1, 32], got 0");
  EXPECT_EQ(hd::check_quantized_bits_args(8, 65, std::nullopt),
            "quantized_bits: `integer` must be an integer in [-64, 64], got 65");
  EXPECT_NE(hd::check_quantized_bits_args(8, 0, std::numeric_limits<double>::infinity()), "");
  EXPECT_EQ(hd::check_quantized_relu_args(4, 0, 0.25), "");
  EXPECT_NE(hd::check_quantized_relu_args(4, 0, 0.3).find("power of two"), std::string::npos);
}

TEST(Core, Grids) {
  const auto b = hd::make_bits_grid(6, 2, false, true, std::nullopt);
  EXPECT_EQ(b.in_scale, 8.0);
  EXPECT_EQ(b.lo, -32.0);
  EXPECT_EQ(b.hi, 31.0);
  EXPECT_EQ(b.step, 0.125);
  EXPECT_FALSE(b.sign_mode);
  EXPECT_TRUE(hd::make_bits_grid(1, 0, false, true, 0.5).sign_mode);
  const auto r = hd::make_relu_grid(4, 0, false, 0.25);
  EXPECT_EQ(r.m, 8.0);
  EXPECT_EQ(r.step, 0.125);
  EXPECT_EQ(r.top, 0.875);
  EXPECT_EQ(r.neg_lo, -2.0);
  EXPECT_TRUE(hd::BitsGridT<float>(hd::make_bits_grid(23, 0, false, true, {})).small);
  EXPECT_FALSE(hd::BitsGridT<float>(hd::make_bits_grid(24, 0, false, true, {})).small);
  EXPECT_TRUE(hd::BitsGridT<double>(hd::make_bits_grid(32, 0, false, true, {})).small);
}

}  // namespace
