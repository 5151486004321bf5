// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Learned precision: fixed_quantize against an independent float64/long-double reference in every
// round and overflow mode, the fused CPU kernel against the ATen composition, the gradients of the
// bit widths against finite differences of the surrogate, FixedQuantizer (spec strings, equality
// with quantized_bits, errors), and the HGQ layers, their EBOPs and their conversion.
// tests/python/test_hgq.py checks the same behaviour from Python.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "heteroq/cost/hardware.h"
#include "heteroq/heteroq.h"
#include "heteroq/nn/hgq.h"
#include "heteroq/ops/fixed.h"
#include "heteroq/quantizers/fixed.h"

namespace {

using heteroq::FixedQuantizer;

const std::vector<std::string> kRound = {"RND", "RND_CONV", "TRN"};
const std::vector<std::string> kOverflow = {"SAT", "SAT_SYM", "WRAP"};

// ---- the reference: integer arithmetic on codes (widths kept small enough for int64) ----
struct Ref {
  double y, dx, df, di;
};

Ref reference(double x, double kd, double id, double fd, const std::string& rm,
              const std::string& om) {
  const int64_t k = std::llround(kd), i = std::llround(id), f = std::llround(fd);
  const int64_t b = k + i + f;
  const long double ln2 = std::log(2.0L);
  if (b <= 0) return {0.0, 1.0, static_cast<double>(ln2 * x), 0.0};
  const long double v = static_cast<long double>(x) * std::pow(2.0L, static_cast<long double>(f));
  long double c;
  if (rm == "RND") {
    c = std::floor(v + 0.5L);
  } else if (rm == "TRN") {
    c = std::floor(v);
  } else {
    c = std::floor(v);
    const long double frac = v - c;
    if (frac > 0.5L || (frac == 0.5L && std::fmod(c, 2.0L) != 0)) c += 1;
  }
  const long double scale = std::pow(2.0L, static_cast<long double>(-f));
  const long double r = c * scale;
  if (om == "WRAP") {
    const int64_t n = int64_t{1} << b;
    const int64_t off = k ? (n >> 1) : 0;
    int64_t code = static_cast<int64_t>(c);
    int64_t w = ((code + off) % n + n) % n - off;
    return {static_cast<double>(w * scale), 1.0, static_cast<double>(ln2 * (x - r)), 0.0};
  }
  const int64_t p = int64_t{1} << (i + f);
  const int64_t hi = p - 1;
  const int64_t lo = om == "SAT" ? -k * p : -k * hi;
  if (v > hi) {
    return {static_cast<double>(hi * scale), 0.0, static_cast<double>(ln2 * scale),
            static_cast<double>(ln2 * std::pow(2.0L, static_cast<long double>(i)))};
  }
  if (v < lo) {
    const double df = om == "SAT_SYM" ? static_cast<double>(-k * ln2 * scale) : 0.0;
    return {static_cast<double>(lo * scale) + 0.0, 0.0, df + 0.0,
            static_cast<double>(-k * ln2 * std::pow(2.0L, static_cast<long double>(i))) + 0.0};
  }
  return {static_cast<double>(r) + 0.0, 1.0, static_cast<double>(ln2 * (x - r)), 0.0};
}

// Inputs: random values over several binades, exact ties of the finest grid, and grid ends.
at::Tensor test_inputs(int64_t n) {
  torch::manual_seed(7);
  at::Tensor a = torch::randn({n}, torch::kDouble) *
                 torch::exp2(torch::randint(-4, 6, {n}).to(torch::kDouble));
  at::Tensor ties = (torch::randint(-400, 400, {n}, torch::kDouble) + 0.5) / 256.0;
  return torch::cat({a, ties, torch::tensor({0.0, -0.0, 1.0, -1.0, 31.999, -32.0, 1e9, -1e9})});
}

struct Widths {
  at::Tensor k, i, f;
};

Widths random_widths(int64_t n) {
  torch::manual_seed(11);
  return {torch::randint(0, 2, {n}, torch::kDouble), torch::randint(-3, 6, {n}, torch::kDouble),
          torch::randint(-2, 9, {n}, torch::kDouble)};
}

TEST(HgqFixedOp, ForwardMatchesReferenceInEveryMode) {
  const at::Tensor x = test_inputs(500);
  const int64_t n = x.numel();
  const Widths w = random_widths(n);
  for (const auto& rm : kRound) {
    for (const auto& om : kOverflow) {
      for (bool fused : {true, false}) {
        heteroq::ops::FusedKernelsGuard g(fused);
        auto [y, dx, df, di] = heteroq::ops::fixed_quantize_fwd(x, w.k, w.i, w.f, rm, om);
        const at::Tensor y2 = heteroq::ops::fixed_quantize(x, w.k, w.i, w.f, rm, om);
        ASSERT_TRUE(at::equal(y, y2)) << rm << " " << om;
        auto xa = x.accessor<double, 1>();
        for (int64_t e = 0; e < n; ++e) {
          const Ref r = reference(xa[e], w.k[e].item<double>(), w.i[e].item<double>(),
                                  w.f[e].item<double>(), rm, om);
          ASSERT_EQ(y[e].item<double>(), r.y) << rm << " " << om << " x=" << xa[e] << " e=" << e;
          ASSERT_FALSE(std::signbit(y[e].item<double>()) && y[e].item<double>() == 0);
          ASSERT_EQ(dx[e].item<double>(), r.dx) << rm << " " << om << " x=" << xa[e];
          ASSERT_NEAR(df[e].item<double>(), r.df, 1e-12 * (1 + std::fabs(r.df)))
              << rm << " " << om << " x=" << xa[e];
          ASSERT_NEAR(di[e].item<double>(), r.di, 1e-12 * (1 + std::fabs(r.di)))
              << rm << " " << om << " x=" << xa[e];
        }
        // float32: the same grid values (every width here fits float32's mantissa).
        const at::Tensor xf = x.to(torch::kFloat);
        const at::Tensor yf = heteroq::ops::fixed_quantize(xf, w.k, w.i, w.f, rm, om);
        const at::Tensor yref =
            heteroq::ops::fixed_quantize(xf.to(torch::kDouble), w.k, w.i, w.f, rm, om);
        ASSERT_TRUE(at::equal(yf.to(torch::kDouble), yref)) << rm << " " << om;
      }
    }
  }
}

TEST(HgqFixedOp, FusedEqualsGeneric) {
  torch::manual_seed(3);
  for (auto dtype : {torch::kFloat, torch::kDouble}) {
    at::Tensor x = torch::randn({7, 33, 5}, dtype) * 8;
    // Per-element, per-channel and per-tensor widths, with infinities in the input (SAT modes).
    x.index_put_({0, 0, 0}, INFINITY);
    x.index_put_({1, 0, 0}, -INFINITY);
    const at::Tensor finite = at::nan_to_num(x, 0.0, 1.0, -1.0);
    std::vector<Widths> cases = {
        {torch::randint(0, 2, {7, 33, 5}, dtype), torch::randint(-2, 5, {7, 33, 5}, dtype),
         torch::randint(-2, 10, {7, 33, 5}, dtype)},
        {torch::ones({1}, dtype), torch::randint(0, 4, {33, 1}, dtype),
         torch::randint(0, 8, {33, 1}, dtype)},
        {torch::zeros({}, dtype), torch::full({}, 2.0, dtype), torch::full({}, 3.4, dtype)}};
    for (const auto& w : cases) {
      for (const auto& rm : kRound) {
        for (const auto& om : kOverflow) {
          const at::Tensor& xx = om == "WRAP" ? finite : x;
          std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> a, b;
          {
            heteroq::ops::FusedKernelsGuard g(true);
            a = heteroq::ops::fixed_quantize_fwd(xx, w.k, w.i, w.f, rm, om);
          }
          {
            heteroq::ops::FusedKernelsGuard g(false);
            b = heteroq::ops::fixed_quantize_fwd(xx, w.k, w.i, w.f, rm, om);
          }
          EXPECT_TRUE(at::equal(std::get<0>(a), std::get<0>(b))) << rm << om;
          EXPECT_TRUE(at::equal(std::get<1>(a), std::get<1>(b))) << rm << om;
          EXPECT_TRUE(at::equal(std::get<2>(a), std::get<2>(b))) << rm << om;
          EXPECT_TRUE(at::equal(std::get<3>(a), std::get<3>(b))) << rm << om;
        }
      }
    }
  }
}

TEST(HgqFixedOp, ZeroWidthIsZeroAndNonContiguousInput) {
  const at::Tensor x = torch::randn({4, 6}, torch::kDouble).t();
  const at::Tensor y = heteroq::ops::fixed_quantize(x, torch::zeros({}), torch::full({}, -2.0),
                                                    torch::full({}, 1.0));
  EXPECT_TRUE(at::equal(y, torch::zeros_like(x)));
  const at::Tensor y2 =
      heteroq::ops::fixed_quantize(x, torch::ones({}), torch::full({}, 1.0), torch::full({}, 2.0));
  EXPECT_TRUE(
      at::equal(y2, heteroq::ops::fixed_quantize(x.contiguous(), torch::ones({}),
                                                 torch::full({}, 1.0), torch::full({}, 2.0))));
}

// The surrogate the gradients are derived from, as a smooth function of (i, f) around the
// integer widths (i0, f0): inside the range x - (x - q0) 2^-(f - f0) (the rounding error shrinks
// by half per fractional bit), at a clipped end the bound itself.
double surrogate(double x, double q0, int clip, double k, double i, double f, double f0,
                 const std::string& om) {
  if (clip > 0) return std::exp2(i) - std::exp2(-f);
  if (clip < 0) return om == "SAT_SYM" ? -k * (std::exp2(i) - std::exp2(-f)) : -k * std::exp2(i);
  return x - (x - q0) * std::exp2(-(f - f0));
}

TEST(HgqFixedOp, WidthGradientsMatchFiniteDifferencesOfTheSurrogate) {
  torch::manual_seed(5);
  const int64_t rows = 6, cols = 9;
  for (const std::string om : {"SAT", "SAT_SYM"}) {
    const at::Tensor x = torch::randn({rows, cols}, torch::kDouble) * 6;
    const at::Tensor k = torch::ones({rows, 1}, torch::kDouble);
    const at::Tensor i = torch::randint(0, 3, {rows, 1}, torch::kDouble).requires_grad_();
    const at::Tensor f = torch::randint(1, 5, {rows, 1}, torch::kDouble).requires_grad_();
    const at::Tensor xg = x.clone().requires_grad_();
    const at::Tensor gout = torch::randn({rows, cols}, torch::kDouble);
    const at::Tensor y = heteroq::ops::fixed_quantize(xg, k, i, f, "RND_CONV", om);
    (y * gout).sum().backward();
    const double h = 1e-6;
    for (int64_t r = 0; r < rows; ++r) {
      double gi = 0, gf = 0;
      const double kk = k[r][0].item<double>(), ii = i[r][0].item<double>(),
                   ff = f[r][0].item<double>();
      for (int64_t c = 0; c < cols; ++c) {
        const double xv = x[r][c].item<double>(), q0 = y[r][c].item<double>();
        const double hi = std::exp2(ii) - std::exp2(-ff);
        const double lo = om == "SAT_SYM" ? -kk * hi : -kk * std::exp2(ii);
        const int clip = xv > hi ? 1 : xv < lo ? -1 : 0;
        const double g = gout[r][c].item<double>();
        gf += g *
              (surrogate(xv, q0, clip, kk, ii, ff + h, ff, om) -
               surrogate(xv, q0, clip, kk, ii, ff - h, ff, om)) /
              (2 * h);
        gi += g *
              (surrogate(xv, q0, clip, kk, ii + h, ff, ff, om) -
               surrogate(xv, q0, clip, kk, ii - h, ff, ff, om)) /
              (2 * h);
        EXPECT_EQ(xg.grad()[r][c].item<double>(), clip ? 0.0 : g);
      }
      EXPECT_NEAR(f.grad()[r][0].item<double>(), gf, 1e-6 * (1 + std::fabs(gf))) << om;
      EXPECT_NEAR(i.grad()[r][0].item<double>(), gi, 1e-6 * (1 + std::fabs(gi))) << om;
    }
  }
}

TEST(HgqFixedOp, Errors) {
  const at::Tensor x = torch::randn({3, 4});
  const at::Tensor one = torch::ones({});
  EXPECT_THROW(heteroq::ops::fixed_quantize(x, one, one, one, "ROUND", "SAT"), c10::ValueError);
  EXPECT_THROW(heteroq::ops::fixed_quantize(x, one, one, one, "RND", "CLIP"), c10::ValueError);
  EXPECT_THROW(heteroq::ops::fixed_quantize(x, one, torch::ones({5}), one), c10::ValueError);
  EXPECT_THROW(heteroq::ops::fixed_quantize(x, one, torch::ones({2, 3, 4}), one), c10::ValueError);
  EXPECT_THROW(heteroq::ops::fixed_quantize(x, torch::full({}, 2.0), one, one), c10::ValueError);
  EXPECT_THROW(heteroq::ops::fixed_quantize(x, one, one, torch::full({}, NAN)), c10::ValueError);
  EXPECT_THROW(heteroq::ops::fixed_quantize(x, one, torch::full({}, 65.0), one), c10::ValueError);
  EXPECT_THROW(heteroq::ops::fixed_quantize(x, one, torch::ones({}, torch::kInt), one),
               c10::TypeError);
  EXPECT_THROW(heteroq::ops::fixed_quantize(torch::ones({2}, torch::kInt), one, one, one),
               c10::TypeError);
}

// ---- FixedQuantizer ----

TEST(HgqFixedQuantizer, EqualsQuantizedBitsAlpha1) {
  at::Tensor x =
      torch::cat({test_inputs(300), torch::tensor({INFINITY, -INFINITY, NAN}, torch::kDouble)});
  for (int64_t bits = 2; bits <= 12; ++bits) {
    for (int64_t integer = -2; integer <= 4; ++integer) {
      for (bool kn : {true, false}) {
        const auto fq =
            heteroq::get_quantizer("fixed(" + std::to_string(bits) + "," + std::to_string(integer) +
                                   ",keep_negative=" + (kn ? "1" : "0") + ")");
        const heteroq::QuantizedBits qb(bits, integer, false, kn, 1.0);
        for (auto dtype : {torch::kDouble, torch::kFloat}) {
          const at::Tensor xt = x.to(dtype);
          const at::Tensor a = fq->forward(xt), b = qb.forward(xt);
          ASSERT_TRUE(at::equal(at::isnan(a), at::isnan(b)));
          ASSERT_TRUE(at::equal(at::nan_to_num(a), at::nan_to_num(b)))
              << "bits=" << bits << " integer=" << integer << " keep_negative=" << kn;
          // Same sign of zero too.
          ASSERT_TRUE(at::equal(at::signbit(a), at::signbit(b)));
        }
      }
    }
  }
}

TEST(HgqFixedQuantizer, SpecStringsJsonRangeAndBounds) {
  auto q = heteroq::get_quantizer("fixed(6,2)");
  EXPECT_EQ(q->name(), "fixed");
  EXPECT_EQ(q->to_string(), "fixed(6,2)");
  EXPECT_EQ(q->bits(), 6);
  auto fq = std::dynamic_pointer_cast<FixedQuantizer>(q);
  ASSERT_TRUE(fq);
  EXPECT_EQ(fq->frac_bits().item<double>(), 3.0);
  EXPECT_EQ(fq->int_bits().item<double>(), 2.0);
  EXPECT_EQ(fq->keep_negative().item<double>(), 1.0);
  EXPECT_DOUBLE_EQ(q->max(), 4.0 - 0.125);
  EXPECT_DOUBLE_EQ(q->min(), -4.0);
  const auto r = q->range();
  ASSERT_EQ(r.size(), 64u);
  EXPECT_EQ(r[1], 0.125);
  EXPECT_EQ(r[32], -4.0);
  auto u = heteroq::get_quantizer(
      "fixed(4, 1, keep_negative=0, round_mode='TRN', overflow_mode='WRAP')");
  EXPECT_EQ(u->to_string(), "fixed(4,1,keep_negative=0,round_mode='TRN',overflow_mode='WRAP')");
  EXPECT_EQ(heteroq::get_quantizer(u->to_string())->to_string(), u->to_string());
  EXPECT_EQ(heteroq::quantizer_from_json(u->to_json())->to_string(), u->to_string());
  EXPECT_EQ(u->min(), 0.0);
  auto s = heteroq::get_quantizer("fixed(4,1,overflow_mode='SAT_SYM')");
  EXPECT_DOUBLE_EQ(s->min(), -(2.0 - 0.25));
  EXPECT_EQ(s->range().size(), 15u);
  EXPECT_THROW(heteroq::get_quantizer("fixed(4,1,round_mode='ROUND')"), heteroq::InvalidArgument);
  EXPECT_THROW(heteroq::get_quantizer("fixed(4,1,overflow_mode='SATURATE')"),
               heteroq::InvalidArgument);
  EXPECT_THROW(heteroq::get_quantizer("fixed(100,1)"), heteroq::InvalidArgument);
  EXPECT_THROW(heteroq::get_quantizer("fixed(4,1,bogus=1)"), heteroq::SpecError);
  const auto names = heteroq::quantizer_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "fixed"), names.end());
}

TEST(HgqFixedQuantizer, PerElementWidths) {
  const at::Tensor k = torch::ones({3, 1});
  const at::Tensor i = torch::tensor({0.0, 1.0, 2.0}).reshape({3, 1});
  const at::Tensor f =
      torch::tensor({{2.0, 3.0, 0.0, -1.0}, {1.0, 1.0, 1.0, 1.0}, {4.0, 4.0, 4.0, 4.0}});
  FixedQuantizer q(k, i, f);
  EXPECT_FALSE(q.is_uniform());
  EXPECT_TRUE(
      at::equal(q.bit_widths(),
                torch::tensor({{3.0, 4.0, 1.0, 0.0}, {3.0, 3.0, 3.0, 3.0}, {7.0, 7.0, 7.0, 7.0}})));
  EXPECT_EQ(q.bits(), 7);
  EXPECT_DOUBLE_EQ(q.max(), 4.0 - 1.0 / 16);
  EXPECT_DOUBLE_EQ(q.min(), -4.0);
  try {
    (void)q.to_string();
    FAIL() << "to_string of per-element widths must throw";
  } catch (const heteroq::InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("saved with the weights"), std::string::npos);
  }
  EXPECT_THROW((void)q.to_json(), heteroq::InvalidArgument);
  EXPECT_THROW((void)q.range(), heteroq::InvalidArgument);
  const at::Tensor x = torch::randn({3, 4}) * 3;
  EXPECT_TRUE(at::equal(q.forward(x), heteroq::ops::fixed_quantize(x, k, i, f)));
  // Uniform tensors behave as the spec form.
  FixedQuantizer uq(torch::ones({2, 2}), torch::full({2, 2}, 1.0), torch::full({2, 2}, 2.0));
  EXPECT_TRUE(uq.is_uniform());
  EXPECT_EQ(uq.to_string(), "fixed(4,1)");
  EXPECT_THROW(FixedQuantizer(k, torch::ones({2}), f), heteroq::InvalidArgument);
  EXPECT_THROW(FixedQuantizer(torch::full({}, 3.0), i, f), heteroq::InvalidArgument);
  EXPECT_THROW(FixedQuantizer(k, i, f, "RND", "BAD"), heteroq::InvalidArgument);
  EXPECT_THROW(FixedQuantizer(k, i.to(torch::kInt), f), heteroq::InvalidArgument);
}

// ---- HQuantizer, layers, EBOPs, conversion ----

using namespace heteroq::nn;  // NOLINT

TEST(HgqQuantizer, TracksRangesAndWidths) {
  HQuantizer q(HQuantizerOptions({4}).init_bits(3));
  const at::Tensor x = torch::tensor({{0.5, -3.0, 0.0, 9.0}, {0.25, 1.0, 0.0, -2.0}});
  q->forward(x);
  EXPECT_TRUE(at::equal(q->max_abs, torch::tensor({0.5, 3.0, 0.0, 9.0})));
  EXPECT_TRUE(at::equal(q->keep_negative, torch::tensor({0.0, 1.0, 0.0, 1.0})));
  EXPECT_TRUE(at::equal(q->int_bits, torch::tensor({0.0, 2.0, -3.0, 4.0})));
  EXPECT_TRUE(at::equal(q->bit_widths(), torch::tensor({3.0, 6.0, 0.0, 8.0})));
  q->eval();
  q->forward(x * 100);
  EXPECT_TRUE(at::equal(q->max_abs, torch::tensor({0.5, 3.0, 0.0, 9.0})));
  q->bit_widths().sum().backward();
  EXPECT_TRUE(at::equal(q->frac_bits.grad(), torch::tensor({1.0, 1.0, 0.0, 1.0})));
  EXPECT_TRUE(at::equal(q->to_fixed()->forward(x), q->forward(x)));
  EXPECT_THROW(HQuantizer(HQuantizerOptions({4}).granularity("row")), heteroq::InvalidArgument);
  EXPECT_THROW(HQuantizer(HQuantizerOptions({4}).granularity("channel").channel_axis(3)),
               heteroq::InvalidArgument);
}

TEST(HgqQuantizer, TrainableIntegerBitsGetTheClipGradient) {
  HQuantizer q(
      HQuantizerOptions({3}).trainable_integer(true).init_integer(0).init_bits(2).keep_negative(1));
  const at::Tensor y = q->forward(torch::tensor({{5.0, 0.3, -7.0}}));
  EXPECT_TRUE(at::allclose(y, torch::tensor({{0.75, 0.25, -1.0}})));
  y.sum().backward();
  const double ln2 = std::log(2.0);
  EXPECT_TRUE(at::allclose(q->int_bits.grad(), torch::tensor({ln2, 0.0, -ln2}).to(torch::kFloat)));
  EXPECT_TRUE(at::allclose(q->frac_bits.grad(),
                           torch::tensor({ln2 / 4, ln2 * 0.05, 0.0}).to(torch::kFloat)));
  EXPECT_EQ(q->int_bits.sum().item<double>(), 0.0);
}

TEST(HgqQuantizer, ValueWidthsAreExactSpans) {
  HQuantizer q(HQuantizerOptions({6}).is_weight(true).init_bits(4));
  const at::Tensor bw = q->value_widths(torch::tensor({0.75, 0.625, 0.5, -4.0, 0.0, 3.0}));
  EXPECT_TRUE(at::equal(bw.detach(), torch::tensor({2.0, 3.0, 1.0, 1.0, 0.0, 2.0})));
  bw.sum().backward();
  EXPECT_TRUE(at::equal(q->frac_bits.grad(), torch::tensor({1.0, 1.0, 1.0, 1.0, 0.0, 1.0})));
}

TEST(HgqLayers, DenseEbopsDefinition) {
  torch::manual_seed(1);
  HDense layer(HDenseOptions(5, 3).quantizers(
      HLayerQuantizers().input_granularity("tensor").input_init_bits(3)));
  layer->forward(torch::randn({16, 5}));
  const at::Tensor e = layer->ebops();
  const at::Tensor qw = layer->kernel_quantizer->quantize(layer->weight);
  const at::Tensor qb = layer->bias_quantizer->quantize(layer->bias);
  const double bx = layer->input_quantizer->bit_widths().item<double>();
  const double expect = bx * layer->kernel_quantizer->value_widths(qw).sum().item<double>() +
                        layer->bias_quantizer->value_widths(qb).mean().item<double>() * 3;
  EXPECT_NEAR(e.item<double>(), expect, 1e-4);
  e.backward();
  EXPECT_GT(layer->kernel_quantizer->frac_bits.grad().abs().sum().item<double>(), 0);
  EXPECT_GT(layer->input_quantizer->frac_bits.grad().abs().sum().item<double>(), 0);
  EXPECT_NEAR(total_ebops(*layer).item<double>(), e.item<double>(), 1e-4);
}

TEST(HgqLayers, ConvEbopsIsAConvolutionOfWidthMaps) {
  torch::manual_seed(2);
  HConv2d conv(HConv2dOptions(2, 3, 3).quantizers(
      HLayerQuantizers().input_granularity("tensor").input_init_bits(4)));
  EXPECT_THROW(conv->ebops(), heteroq::InvalidArgument);
  conv->forward(torch::randn({1, 2, 6, 6}));
  const at::Tensor spans =
      conv->kernel_quantizer->value_widths(conv->kernel_quantizer->quantize(conv->weight));
  const double bx = conv->input_quantizer->bit_widths().item<double>();
  const double bias = conv->bias_quantizer->value_widths(conv->bias_quantizer->quantize(conv->bias))
                          .mean()
                          .item<double>() *
                      3 * 16;
  EXPECT_NEAR(conv->ebops().item<double>(), bx * spans.sum().item<double>() * 16 + bias, 1e-3);
}

namespace {
// A toy regression: a student HDense starting at the teacher's weights with 2 fractional bits.
std::pair<double, double> toy_run(double beta, int steps = 60) {
  torch::manual_seed(0);
  const at::Tensor teacher = torch::randn({1, 8});
  HDense model(HDenseOptions(8, 1).bias(false).quantizers(
      HLayerQuantizers().input_init_bits(2).kernel_init_bits(2)));
  {
    torch::NoGradGuard g;
    model->weight.copy_(teacher);
  }
  torch::optim::Adam opt(model->parameters(), torch::optim::AdamOptions(0.05));
  const at::Tensor x = torch::randn({256, 8});
  const at::Tensor t = x.matmul(teacher.t());
  for (int s = 0; s < steps; ++s) {
    opt.zero_grad();
    const at::Tensor loss = (model->forward(x) - t).square().mean() + beta * model->ebops();
    loss.backward();
    opt.step();
  }
  return {model->input_quantizer->frac_bits.mean().item<double>(),
          model->kernel_quantizer->frac_bits.mean().item<double>()};
}
}  // namespace

TEST(HgqLayers, BitsGrowWithoutPenaltyAndShrinkWithIt) {
  const auto free_run = toy_run(0.0);
  const auto penalised = toy_run(1e-2);
  EXPECT_GT(free_run.first, 2.5);
  EXPECT_LT(penalised.first, 1.5);
  EXPECT_LT(penalised.second, 1.5);
}

namespace {
torch::nn::Sequential h_model() {
  torch::manual_seed(3);
  return torch::nn::Sequential(
      HConv2d(HConv2dOptions(2, 4, 3).padding(1).quantizers(HLayerQuantizers().input_init_bits(5))),
      HActivation(HActivationOptions({4, 6, 6}).relu(true).init_bits(3)), torch::nn::Flatten(),
      HDense(HDenseOptions(4 * 36, 5).quantizers(HLayerQuantizers().kernel_init_bits(3))));
}
}  // namespace

TEST(HgqConvert, BitExact) {
  auto model = h_model();
  model->forward(torch::randn({8, 2, 6, 6}) * 2);
  {
    torch::NoGradGuard g;
    for (auto& p : model->parameters()) p.add_(0.01);
  }
  model->eval();
  auto q = hgq_convert(model);
  ASSERT_EQ(q->size(), 6u);
  EXPECT_TRUE(q[0]->as<QActivationImpl>());
  EXPECT_TRUE(q[1]->as<QConv2dImpl>());
  EXPECT_TRUE(q[2]->as<QActivationImpl>());
  EXPECT_TRUE(q[4]->as<QActivationImpl>());
  auto dense = q[5]->as<QLinearImpl>();
  ASSERT_TRUE(dense);
  auto kq = std::dynamic_pointer_cast<FixedQuantizer>(dense->options.kernel_quantizer().get());
  ASSERT_TRUE(kq);
  EXPECT_FALSE(kq->is_uniform());
  q->eval();
  const at::Tensor x = torch::randn({8, 2, 6, 6}) * 2;
  EXPECT_TRUE(at::equal(model->forward(x), q->forward(x)));
}

TEST(HgqConvert, EbopsAgreeWithTheCostModel) {
  torch::manual_seed(0);
  // Per-element input widths of dense layers, per-tensor ones of an unpadded convolution.
  torch::nn::Sequential dense(
      HDense(HDenseOptions(6, 4).quantizers(HLayerQuantizers().kernel_init_bits(3))),
      HActivation(HActivationOptions({4}).relu(true).init_bits(2)),
      HDense(HDenseOptions(4, 3).quantizers(HLayerQuantizers().kernel_init_bits(2))));
  torch::nn::Sequential conv(HConv2d(HConv2dOptions(2, 3, 3).quantizers(
      HLayerQuantizers().input_granularity("tensor").input_init_bits(3))));
  for (auto& [model, shape] : std::vector<std::pair<torch::nn::Sequential, std::vector<int64_t>>>{
           {dense, {1, 6}}, {conv, {1, 2, 6, 6}}}) {
    std::vector<int64_t> batch = shape;
    batch[0] = 32;
    model->forward(torch::randn(batch));
    model->eval();
    const double hgq_total = total_ebops(*model).item<double>();
    EXPECT_GT(hgq_total, 0);
    EXPECT_DOUBLE_EQ(heteroq::cost::bops(hgq_convert(model), shape).ebops, hgq_total);
  }
}

TEST(HgqConvert, Conv1d) {
  torch::manual_seed(4);
  torch::nn::Sequential model(
      HConv1d(HConv1dOptions(3, 4, 3).padding(1).stride(2).quantizers(
          HLayerQuantizers().kernel_init_bits(3))),
      HActivation(HActivationOptions({4, 1}).granularity("channel").init_bits(4)));
  const at::Tensor x = torch::randn({5, 3, 11});
  model->forward(x);
  model->eval();
  auto q = hgq_convert(model);
  ASSERT_EQ(q->size(), 3u);
  EXPECT_TRUE(q[1]->as<QConv1dImpl>());
  q->eval();
  EXPECT_TRUE(at::equal(q->forward(x), model->forward(x)));
  torch::nn::Sequential qm(
      QConv1d(QConv1dOptions(3, 4, 3).kernel_quantizer("quantized_bits(5,1,alpha=1)")));
  auto h = hgq_from_quantized(qm);
  ASSERT_TRUE(h[0]->as<HConv1dImpl>());
  EXPECT_TRUE((h[0]->as<HConv1dImpl>()->kernel_quantizer->frac_bits == 3).all().item<bool>());
}

TEST(HgqConvert, FromQuantizedDepthwiseSeparableAndFolded) {
  // as test_hgq.py's test_from_quantized_depthwise_separable_and_folded
  torch::manual_seed(5);
  torch::nn::Sequential qm(
      QConv2dBatchNorm(QConv2dBatchNormOptions(2, 4, 3)
                           .padding(1)
                           .kernel_quantizer("quantized_bits(6,1,alpha=1)")
                           .bias_quantizer("quantized_bits(8,3,alpha=1)")),
      QActivation("quantized_relu(6,2)"),
      QDepthwiseConv2d(QDepthwiseConv2dOptions(4, 3)
                           .depth_multiplier(2)
                           .stride(2)
                           .padding(1)
                           .depthwise_quantizer("quantized_bits(5,0,alpha=1)")
                           .bias_quantizer("quantized_bits(8,3,alpha=1)")),
      QActivation("quantized_relu(5,2)"),
      QSeparableConv2d(QSeparableConv2dOptions(8, 3, 3)
                           .depthwise_quantizer("quantized_bits(4,0,alpha=1)")
                           .pointwise_quantizer("quantized_bits(6,0,alpha=1)")
                           .bias_quantizer("quantized_bits(8,3,alpha=1)")),
      torch::nn::Flatten(),
      QLinearBatchNorm(QLinearBatchNormOptions(3 * 4 * 4, 5)
                           .kernel_quantizer("quantized_bits(6,0,alpha=1)")));
  const at::Tensor x = torch::randn({64, 2, 12, 12});
  for (int i = 0; i < 3; ++i) qm->forward(x);  // batch statistics away from their initial values
  qm->eval();
  auto h = hgq_from_quantized(qm, 7);
  ASSERT_EQ(h->size(), 8u);
  auto c0 = h[0]->as<HConv2dImpl>();
  auto c2 = h[2]->as<HConv2dImpl>();
  auto c4 = h[4]->as<HConv2dImpl>();
  auto c5 = h[5]->as<HConv2dImpl>();
  auto d7 = h[7]->as<HDenseImpl>();
  ASSERT_TRUE(c0 && h[1]->as<HActivationImpl>() && c2 && c4 && c5 && d7);
  const auto folded = qm[0]->as<QConv2dBatchNormImpl>()->get_folded_weights();
  EXPECT_TRUE(at::equal(c0->weight, folded[0]) && at::equal(c0->bias, folded[1]));
  EXPECT_TRUE((c0->kernel_quantizer->frac_bits == 4).all().item<bool>());
  EXPECT_TRUE((c0->input_quantizer->frac_bits == 7).all().item<bool>());
  EXPECT_EQ(c2->options.groups(), 4);
  EXPECT_TRUE(at::equal(c2->weight, qm[2]->as<QDepthwiseConv2dImpl>()->conv->weight));
  EXPECT_TRUE((c2->input_quantizer->frac_bits == 4).all().item<bool>());
  EXPECT_EQ(c4->options.groups(), 8);
  EXPECT_FALSE(c4->options.bias());
  EXPECT_TRUE((c4->input_quantizer->frac_bits == 3).all().item<bool>());
  EXPECT_TRUE((c5->input_quantizer->frac_bits == 7).all().item<bool>());
  EXPECT_TRUE((c5->kernel_quantizer->frac_bits == 5).all().item<bool>());
  const auto folded_dense = qm[6]->as<QLinearBatchNormImpl>()->get_folded_weights();
  EXPECT_TRUE(at::equal(d7->weight, folded_dense[0]) && at::equal(d7->bias, folded_dense[1]));
  // the H model converts bit for bit and its EBOPs are the cost model's (zero padding free)
  h->train();
  h->forward(x);
  h->eval();
  auto q = hgq_convert(h);
  q->eval();
  torch::NoGradGuard ng;
  EXPECT_TRUE(at::equal(q->forward(x), h->forward(x)));
  EXPECT_EQ(heteroq::cost::bops(q, {1, 2, 12, 12}).ebops, total_ebops(*h).item<double>());
}

TEST(HgqConvert, FromQuantized) {
  torch::nn::Sequential qm(
      QDense(QLinearOptions(4, 8)
                 .kernel_quantizer("quantized_bits(6,0,alpha=1)")
                 .bias_quantizer("quantized_bits(8,3,alpha=1)")),
      QActivation("quantized_relu(5,2)"),
      QDense(QLinearOptions(8, 2).kernel_quantizer("quantized_bits(4,1,alpha=1)")));
  auto h = hgq_from_quantized(qm, 7);
  auto d0 = h[0]->as<HDenseImpl>();
  auto a1 = h[1]->as<HActivationImpl>();
  auto d2 = h[2]->as<HDenseImpl>();
  ASSERT_TRUE(d0 && a1 && d2);
  EXPECT_TRUE((d0->kernel_quantizer->frac_bits == 5).all().item<bool>());
  EXPECT_TRUE((d0->bias_quantizer->frac_bits == 4).all().item<bool>());
  EXPECT_TRUE((d0->input_quantizer->frac_bits == 7).all().item<bool>());
  EXPECT_EQ(a1->quantizer->frac_bits.item<double>(), 3.0);
  EXPECT_TRUE(a1->options.relu());
  EXPECT_TRUE((d2->input_quantizer->frac_bits == 3).all().item<bool>());
  EXPECT_TRUE((d2->kernel_quantizer->frac_bits == 2).all().item<bool>());
  auto q0 = qm[0]->as<QLinearImpl>();
  EXPECT_TRUE(at::equal(d0->weight, q0->weight));
  EXPECT_TRUE(at::equal(d0->kernel_quantizer->forward(d0->weight), q0->quantized_weight()));
  torch::nn::Sequential bad(
      QDense(QLinearOptions(4, 2).kernel_quantizer("quantized_bits(4,0,alpha='auto_po2')")));
  EXPECT_THROW(hgq_from_quantized(bad), heteroq::InvalidArgument);
}

TEST(HgqLayers, Errors) {
  EXPECT_THROW(
      HConv2d(HConv2dOptions(2, 3, 3).quantizers(HLayerQuantizers().input_granularity("element"))),
      heteroq::InvalidArgument);
  EXPECT_THROW(HActivation(HActivationOptions({4}).relu(true).overflow_mode("WRAP")),
               heteroq::InvalidArgument);
  EXPECT_THROW(HDense(4, 2)->forward(torch::randn({3, 5})), c10::ValueError);
  EXPECT_THROW(HActivation(HActivationOptions({4}))->forward(torch::randn({3, 5})),
               c10::ValueError);
}

// Writes the outputs tests/python/test_hgq.py compares with Python's (HETEROQ_HGQ_JSON).
TEST(HgqCrossLanguage, WriteOutputs) {
  HDense dense(HDenseOptions(6, 4).quantizers(
      HLayerQuantizers().input_init_bits(3).kernel_init_bits(4).bias_init_bits(5)));
  HConv2d conv(HConv2dOptions(2, 3, 3).padding(1).quantizers(
      HLayerQuantizers().input_init_bits(4).kernel_init_bits(3)));
  {
    torch::NoGradGuard g;
    dense->weight.copy_(torch::sin(torch::arange(24.0) * 1.3).reshape({4, 6}));
    dense->bias.copy_(torch::cos(torch::arange(4.0)));
    dense->kernel_quantizer->frac_bits.copy_(
        torch::remainder(torch::arange(24.0), 5).reshape({4, 6}));
    conv->weight.copy_(torch::sin(torch::arange(54.0) * 0.9).reshape({3, 2, 3, 3}));
    conv->bias.copy_(torch::cos(torch::arange(3.0)) * 0.5);
  }
  const at::Tensor xd = torch::sin(torch::arange(30.0) * 0.7).reshape({5, 6}) * 3;
  const at::Tensor xc = torch::sin(torch::arange(100.0) * 0.3).reshape({2, 2, 5, 5}) * 2;
  dense->forward(xd);
  conv->forward(xc);
  dense->eval();
  conv->eval();
  const at::Tensor yd = dense->forward(xd * 1.1).reshape({-1}).to(torch::kDouble);
  const at::Tensor yc = conv->forward(xc * 1.1).reshape({-1}).to(torch::kDouble);
  EXPECT_TRUE(at::isfinite(yd).all().item<bool>());
  const char* path = std::getenv("HETEROQ_HGQ_JSON");
  nlohmann::json j;
  j["dense_y"] = std::vector<double>(yd.data_ptr<double>(), yd.data_ptr<double>() + yd.numel());
  j["conv_y"] = std::vector<double>(yc.data_ptr<double>(), yc.data_ptr<double>() + yc.numel());
  j["dense_ebops"] = dense->ebops().item<double>();
  j["conv_ebops"] = conv->ebops().item<double>();
  // the transposed convolution (tests/python/test_hgq.py _cross_transposed)
  HConvTranspose2d ct(HConvTranspose2dOptions(4, 2, 3).stride(2).padding(1).output_padding(1).groups(2).dilation(2)
                          .quantizers(HLayerQuantizers().input_init_bits(3).kernel_init_bits(4)));
  {
    torch::NoGradGuard g;
    ct->weight.copy_(torch::sin(torch::arange(36.0) * 0.8).reshape({4, 1, 3, 3}));
    ct->bias.copy_(torch::cos(torch::arange(2.0)) * 0.5);
  }
  const at::Tensor xt = torch::sin(torch::arange(128.0) * 0.4).reshape({2, 4, 4, 4}) * 2;
  ct->forward(xt);
  ct->eval();
  const at::Tensor yt = ct->forward(xt * 1.1).reshape({-1}).to(torch::kDouble);
  j["transposed_y"] = std::vector<double>(yt.data_ptr<double>(), yt.data_ptr<double>() + yt.numel());
  j["transposed_ebops"] = ct->ebops().item<double>();
  EXPECT_TRUE(at::isfinite(yt).all().item<bool>());
  if (path) std::ofstream(path) << j.dump();
}

}  // namespace

TEST(HgqConvert, ConvTranspose2d) {
  torch::manual_seed(7);
  // from a Q model: widths from its quantizers, weights copied
  torch::nn::Sequential qm(
      QActivation("quantized_bits(8,3,alpha=1)"),
      QConvTranspose2d(QConv2dOptions(3, 4, 3)
                           .stride(2)
                           .padding(1)
                           .output_padding(1)
                           .kernel_quantizer("quantized_bits(6,1,alpha=1)")
                           .bias_quantizer("quantized_bits(8,3,alpha=1)")),
      QActivation("quantized_relu(6,2)"),
      QConvTranspose2d(QConv2dOptions(4, 2, 2).stride(2).groups(2).bias(false).kernel_quantizer(
          "quantized_bits(5,0,alpha=1)")));
  qm->eval();
  auto h = hgq_from_quantized(qm);
  auto t1 = h[1]->as<HConvTranspose2dImpl>();
  auto t3 = h[3]->as<HConvTranspose2dImpl>();
  ASSERT_TRUE(t1 && t3);
  EXPECT_TRUE((t1->kernel_quantizer->frac_bits == 4).all().item<bool>());
  EXPECT_TRUE((t1->input_quantizer->frac_bits == 4).all().item<bool>());
  EXPECT_TRUE((t3->input_quantizer->frac_bits == 4).all().item<bool>());
  EXPECT_FALSE(t3->bias.defined());
  auto q1 = qm[1]->as<QConvTranspose2dImpl>();
  EXPECT_TRUE(at::equal(t1->weight, q1->weight));
  // EBOPs: every input value times every kernel value of its channel, plus the bias term
  const torch::Tensor x = torch::randn({16, 3, 5, 5});
  h->forward(x);
  const at::Tensor spans = t1->kernel_quantizer->value_widths(t1->kernel_quantizer->quantize(t1->weight));
  const at::Tensor bx = t1->input_quantizer->bit_widths().reshape({-1});
  double want = 0;
  for (int64_t c = 0; c < 3; ++c) want += bx[c].item<double>() * 25 * spans[c].sum().item<double>();
  want += t1->bias_quantizer->value_widths(t1->bias_quantizer->quantize(t1->bias)).mean().item<double>() * 4 * 100;
  EXPECT_NEAR(t1->ebops().item<double>(), want, 1e-9 * want);
  // convert: bit-exact, and the cost model's EBOPs (per-channel input widths) equal the H model's
  h->eval();
  auto q = hgq_convert(h);
  q->eval();
  EXPECT_TRUE(torch::equal(q->forward(x), h->forward(x)));
  const double total = total_ebops(*h).item<double>();
  EXPECT_NEAR(heteroq::cost::bops(q, {1, 3, 5, 5}).ebops, total, 1e-12 * total);
  EXPECT_THROW(HConvTranspose2d(HConvTranspose2dOptions(2, 2, 3).output_padding(1)), heteroq::InvalidArgument);
  EXPECT_THROW(HConvTranspose2d(HConvTranspose2dOptions(2, 2, 3).stride(0)), heteroq::InvalidArgument);
}
