// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// heteroq::deploy: the integer engine against the QAT model's eval forward, its checks, its file
// and its generated header.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <type_traits>

#include <unistd.h>

#include "deploy/engine_internal.h"
#include "heteroq/deploy/compile.h"
#include "heteroq/nn/conv.h"
#include "heteroq/nn/folded.h"
#include "heteroq/nn/hgq.h"
#include "heteroq/nn/layers.h"
#include "heteroq/nn/norm_pool.h"
#include "heteroq/nn/rnn.h"
#include "heteroq/quantizers/fixed.h"

namespace {

namespace hd = heteroq::deploy;
namespace hn = heteroq::nn;

const char* kQ6 = "quantized_bits(6,0,alpha=1)";

torch::nn::Sequential jet_model(const std::string& kernel = kQ6) {
  torch::nn::Sequential m;
  m->push_back(hn::QActivation("quantized_bits(8,3,alpha=1)"));
  const int sizes[] = {16, 64, 32, 32, 5};
  for (int i = 0; i < 4; ++i) {
    m->push_back(hn::QLinear(hn::QLinearOptions(sizes[i], sizes[i + 1])
                                 .kernel_quantizer(kernel)
                                 .bias_quantizer(kQ6)));
    if (i < 3) m->push_back(hn::QActivation("quantized_relu(6,0)"));
  }
  m->eval();
  return m;
}

// Random values plus exact ties (k + 1/2) 2^-f of the input grids.
torch::Tensor inputs(int64_t n, int64_t features) {
  torch::Tensor x = torch::randn({n, features}) * 4;
  torch::Tensor f = torch::randint(0, 7, {n / 2, features}).to(torch::kFloat);
  torch::Tensor k = torch::randint(-40, 40, {n / 2, features}).to(torch::kFloat);
  x.slice(0, 0, n / 2).copy_((k + 0.5) * torch::pow(2.0, -f));
  return x;
}

torch::Tensor run(const hd::Engine& e, const torch::Tensor& x) {
  torch::Tensor xc = x.contiguous();
  torch::Tensor y = torch::empty({x.size(0), e.output_size()});
  e.run(xc.data_ptr<float>(), x.size(0), y.data_ptr<float>());
  return y;
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const heteroq::InvalidArgument& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(DeployRneShift, MatchesRoundHalfEvenOfTheQuotient) {
  for (int64_t s = -3; s <= 8; ++s) {
    for (int64_t a = -5000; a <= 5000; ++a) {
      const double want = std::nearbyint(std::ldexp(static_cast<double>(a), static_cast<int>(-s)));
      ASSERT_EQ(hd::rne_shift(a, s), static_cast<int64_t>(want)) << a << " >> " << s;
    }
  }
  EXPECT_EQ(hd::rne_shift((int64_t(1) << 61) + (int64_t(1) << 20), 21), (int64_t(1) << 40));
  EXPECT_EQ(hd::rne_shift((int64_t(1) << 61) + (int64_t(3) << 20), 21), (int64_t(1) << 40) + 2);
}

TEST(DeployCompile, JetModelIsBitExact) {
  torch::manual_seed(0);
  for (const char* kernel : {kQ6, "quantized_bits(6,0,alpha=\"auto_po2\")", "quantized_po2(4)",
                             "ternary(alpha=1)"}) {
    auto model = jet_model(kernel);
    const hd::Engine e = hd::compile(*model);
    EXPECT_TRUE(e.float32_exact());
    const torch::Tensor x = inputs(600, 16);
    torch::NoGradGuard g;
    EXPECT_TRUE(torch::equal(run(e, x), model->forward(x))) << kernel;
  }
}

// A model trained with learned precision and converted (hgq_convert): fixed activations with
// per-element widths as the input quantizer and between the layers, some of width <= 0; inputs far
// beyond the ranges wrap (tests/python/test_deploy_hgq.py covers conv models and every mode).
TEST(DeployCompile, HgqConvertedModelIsBitExact) {
  torch::manual_seed(5);
  const hn::HLayerQuantizers lq =
      hn::HLayerQuantizers().input_init_bits(5).kernel_init_bits(4).round_mode("RND").overflow_mode("WRAP");
  torch::nn::Sequential h(hn::HDense(hn::HDenseOptions(16, 32).quantizers(lq)),
                          hn::HActivation(hn::HActivationOptions({32}).init_bits(4).round_mode("RND")
                                              .overflow_mode("WRAP")),
                          hn::HDense(hn::HDenseOptions(32, 5).quantizers(lq)));
  const torch::Tensor xt = torch::randn({64, 16}) * 2, target = torch::randn({64, 5});
  torch::optim::Adam opt(h->parameters(), torch::optim::AdamOptions(0.02));
  for (int step = 0; step < 5; ++step) {
    opt.zero_grad();
    const torch::Tensor loss = (h->forward(xt) - target).square().mean();
    loss.backward();
    opt.step();
  }
  h->forward(xt);
  h->eval();
  {
    torch::NoGradGuard g;
    h[1]->as<hn::HActivationImpl>()->quantizer->frac_bits.view({-1}).slice(0, 0, 3).fill_(-40.0);
  }
  auto model = hn::hgq_convert(h);
  model->eval();
  auto first = model[0]->as<hn::QActivationImpl>();
  ASSERT_TRUE(first);
  auto fq = std::dynamic_pointer_cast<const heteroq::FixedQuantizer>(first->quantizer());
  ASSERT_TRUE(fq);
  EXPECT_FALSE(fq->is_uniform());
  const hd::Engine e = hd::compile(*model);
  EXPECT_EQ(e.program().input.kind, "fixed_elem");
  EXPECT_TRUE(e.float32_exact());
  const torch::Tensor x = inputs(600, 16) * torch::tensor({0.5f, 3.0f, 50.0f}).index(
                                                  {torch::randint(0, 3, {600, 16}, torch::kLong)});
  torch::NoGradGuard g;
  const torch::Tensor want = model->forward(x);
  EXPECT_TRUE(torch::equal(run(e, x), want));
  // the program survives the file
  const std::string path = ::testing::TempDir() + "hgq.engine";
  e.save(path);
  EXPECT_TRUE(torch::equal(run(hd::Engine::load(path), x), want));
  std::remove(path.c_str());
}

TEST(DeployCompile, FoldedBatchNormIsBitExact) {
  torch::manual_seed(1);
  torch::nn::Sequential m;
  m->push_back(hn::QActivation("quantized_bits(6,2,alpha=1)"));
  hn::QLinearBatchNorm bn(hn::QLinearBatchNormOptions(16, 24)
                              .kernel_quantizer("quantized_bits(8,2,alpha=1)")
                              .bias_quantizer("quantized_bits(8,3,alpha=1)"));
  {
    torch::NoGradGuard g;
    bn->running_mean.uniform_(-1, 1);
    bn->running_var.uniform_(0.5, 2);
    bn->gamma.uniform_(0.5, 1.5);
    bn->beta.uniform_(-0.5, 0.5);
  }
  m->push_back(bn);
  m->push_back(hn::QActivation("quantized_relu(6,1)"));
  m->push_back(torch::nn::Dropout(0.5));
  m->push_back(hn::QLinear(hn::QLinearOptions(24, 3).kernel_quantizer("quantized_bits(4,0,alpha=1)")));
  m->eval();
  const hd::Engine e = hd::compile(*m);
  const torch::Tensor x = inputs(500, 16);
  torch::NoGradGuard g;
  EXPECT_TRUE(torch::equal(run(e, x), m->forward(x)));
}

TEST(DeployCompile, UnsupportedModelsNameTheLayer) {
  {
    torch::nn::Sequential m(hn::QActivation("quantized_bits(8,3,alpha=1)"),
                            hn::QLinear(hn::QLinearOptions(4, 4).kernel_quantizer(kQ6)), torch::nn::ReLU());
    m->eval();
    EXPECT_NE(error_of([&] { hd::compile(*m); }).find("layer `2` (ReLU): is a float activation"),
              std::string::npos);
  }
  {
    torch::nn::Sequential m(hn::QActivation("quantized_bits(8,3,alpha=1)"),
                            hn::QLinear(hn::QLinearOptions(4, 4).kernel_quantizer("quantized_bits(6,0,alpha=\"auto\")")));
    m->eval();
    const std::string err = error_of([&] { hd::compile(*m); });
    EXPECT_NE(err.find("layer `1` (QLinear)"), std::string::npos) << err;
    EXPECT_NE(err.find("not a power of two"), std::string::npos) << err;
  }
  {
    torch::nn::Sequential m(hn::QLinear(hn::QLinearOptions(4, 4).kernel_quantizer(kQ6)));
    m->eval();
    EXPECT_NE(error_of([&] { hd::compile(*m); }).find("input is float"), std::string::npos);
    hd::CompileOptions o;
    o.input_quantizer = heteroq::get_quantizer("quantized_bits(8,3,alpha=1)");
    EXPECT_EQ(hd::compile(*m, o).output_size(), 4);
  }
  {
    auto m = jet_model();
    m->train();
    EXPECT_NE(error_of([&] { hd::compile(*m); }).find("training mode"), std::string::npos);
  }
}

TEST(DeployEngine, ValidatesPrograms) {
  hd::Program p;
  p.input_size = 2;
  p.input.kind = "fixed";
  p.input.in_scale = 4;
  p.input.lo = -8;
  p.input.hi = 7;
  hd::Stage s;
  s.kind = "dense";
  s.name = "fc";
  s.in_features = 3;
  s.out_features = 1;
  s.weight = {1, 2, 3};
  s.frac = {2};
  p.stages.push_back(s);
  EXPECT_NE(error_of([&] { hd::Engine e(p); }).find("in_features 3 does not match the 2 values"),
            std::string::npos);
  p.stages[0].in_features = 2;
  p.stages[0].weight = {int64_t(1) << 61, int64_t(1) << 61};
  EXPECT_NE(error_of([&] { hd::Engine e(p); }).find("can exceed 2^62"), std::string::npos);
  p.stages[0].weight = {3, -2};
  p.input.in_scale = 3;
  EXPECT_NE(error_of([&] { hd::Engine e(p); }).find("power of two"), std::string::npos);
  p.input.in_scale = 4;
  {
    // a negative slope's term adds to the clamped code: codes reach lo + neg_lo
    hd::Program q = p;
    hd::Stage r;
    r.kind = "requantize";
    r.requantizer.kind = "fixed";
    r.requantizer.shift = {0};
    r.requantizer.lo = -5;
    r.requantizer.hi = 7;
    r.requantizer.has_slope = true;
    r.requantizer.slope_shift = {1};
    r.requantizer.neg_lo = -3;
    r.frac = {2};
    q.stages.push_back(r);
    EXPECT_EQ(hd::Engine(q).stage_info().back().max_abs, 8);
  }
  const hd::Engine e(p);
  // x = (0.3, -1.13): codes round(1.2) = 1, round(-4.52) = -5 -> 3*1 - 2*(-5) = 13
  std::vector<int64_t> out(1);
  const float x[] = {0.3f, -1.13f};
  e.run_codes(x, 1, out.data());
  EXPECT_EQ(out[0], 13);
  EXPECT_EQ(e.stage_info()[0].max_abs, 5 * 8);
}

TEST(DeployEngine, SaveLoadAndCorruptedFiles) {
  torch::manual_seed(2);
  auto model = jet_model();
  const hd::Engine e = hd::compile(*model);
  const std::string path = testing::TempDir() + "deploy_test.engine";
  e.save(path);
  const hd::Engine back = hd::Engine::load(path);
  const torch::Tensor x = inputs(100, 16);
  EXPECT_TRUE(torch::equal(run(back, x), run(e, x)));
  std::ifstream in(path, std::ios::binary);
  std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(raw.data(), static_cast<std::streamsize>(raw.size() - 10));
  }
  const std::string err = error_of([&] { hd::Engine::load(path); });
  EXPECT_NE(err.find(path), std::string::npos) << err;
  EXPECT_NE(err.find("truncated"), std::string::npos) << err;
  {
    // one flipped bit in the last weight byte: the data section's SHA-256 refuses it
    std::string flipped = raw;
    flipped[flipped.size() - 1] = static_cast<char>(flipped.back() ^ 0x01);
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(flipped.data(), static_cast<std::streamsize>(flipped.size()));
  }
  const std::string flip = error_of([&] { hd::Engine::load(path); });
  EXPECT_NE(flip.find(path + ": corrupted data section: its SHA-256 is"), std::string::npos) << flip;
  std::remove(path.c_str());
}

TEST(DeployHeader, CompilesAndMatchesTheEngine) {
  torch::manual_seed(3);
  auto model = jet_model("quantized_bits(6,0,alpha=\"auto_po2\")");
  const hd::Engine e = hd::compile(*model);
  const std::string dir = testing::TempDir();
  {
    std::ofstream h(dir + "jet_model.h");
    h << e.generate_header("jet");
    std::ofstream m(dir + "jet_main.cpp");
    m << "#include <cstdio>\n#include \"jet_model.h\"\n"
         "int main() {\n  float in[jet::kInputSize]; float out[jet::kOutputSize];\n"
         "  while (std::fread(in, 4, jet::kInputSize, stdin) == (size_t)jet::kInputSize) {\n"
         "    if (jet::infer_float(in, out) != 0) return 3;\n"
         "    std::fwrite(out, 4, jet::kOutputSize, stdout);\n  }\n  return 0;\n}\n";
  }
  const torch::Tensor x = inputs(200, 16).contiguous();
  {
    std::ofstream f(dir + "jet_in.bin", std::ios::binary);
    f.write(reinterpret_cast<const char*>(x.data_ptr<float>()), x.numel() * 4);
  }
  const std::string cmd = std::string(HETEROQ_CXX_COMPILER) + " -std=c++17 -O2 -Wall -Werror -o " + dir +
                          "jet_main " + dir + "jet_main.cpp && " + dir + "jet_main < " + dir +
                          "jet_in.bin > " + dir + "jet_out.bin";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream f(dir + "jet_out.bin", std::ios::binary);
  std::string raw((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  ASSERT_EQ(raw.size(), static_cast<size_t>(200 * 5 * 4));
  torch::Tensor got = torch::from_blob(raw.data(), {200, 5}, torch::kFloat).clone();
  torch::NoGradGuard g;
  EXPECT_TRUE(torch::equal(got, run(e, x)));
  EXPECT_TRUE(torch::equal(got, model->forward(x)));
}

TEST(DeployCompile, ConvolutionsAreBitExact) {
  torch::manual_seed(4);
  torch::nn::Sequential m;
  m->push_back(hn::QActivation("quantized_bits(8,2,alpha=1)"));
  m->push_back(hn::QConv2d(hn::QConv2dOptions(2, 4, 3).padding(1)
                               .kernel_quantizer("quantized_bits(6,0,alpha=\"auto_po2\")")
                               .bias_quantizer(kQ6)));
  m->push_back(hn::QActivation("quantized_relu(6,1)"));
  m->push_back(hn::QDepthwiseConv2d(hn::QDepthwiseConv2dOptions(4, 3).depth_multiplier(2).stride(2)
                                        .depthwise_quantizer("ternary(alpha=1)")
                                        .bias_quantizer(kQ6)));
  m->push_back(hn::QActivation("quantized_bits(6,2,alpha=1)"));
  hn::QConv2dBatchNorm bn(hn::QConv2dBatchNormOptions(8, 6, 3).padding(1)
                              .kernel_quantizer("quantized_bits(8,2,alpha=1)")
                              .bias_quantizer("quantized_bits(8,3,alpha=1)"));
  {
    torch::NoGradGuard g;
    bn->running_mean.uniform_(-1, 1);
    bn->running_var.uniform_(0.5, 2);
  }
  m->push_back(bn);
  m->push_back(hn::QActivation("quantized_relu(4,1)"));
  m->push_back(torch::nn::Flatten());
  m->push_back(hn::QLinear(hn::QLinearOptions(6 * 5 * 5, 10).kernel_quantizer("quantized_po2(4)")));
  m->eval();
  EXPECT_NE(error_of([&] { hd::compile(*m); }).find("input_shape"), std::string::npos);
  hd::CompileOptions o;
  o.input_shape = {2, 12, 12};
  const hd::Engine e = hd::compile(*m, o);
  EXPECT_EQ(e.stage_info()[0].kind, "conv2d");
  const torch::Tensor x = inputs(32 * 288, 1).reshape({32, 2, 12, 12});
  torch::NoGradGuard g;
  EXPECT_TRUE(torch::equal(run(e, x.reshape({32, 288})), m->forward(x)));
}

TEST(DeployCompile, UnfoldedBatchNormIsBitExact) {
  torch::manual_seed(5);
  hn::QBatchNorm1d bn(hn::QBatchNormOptions(12)
                          .inverse_quantizer("quantized_po2(5)")
                          .mean_quantizer("quantized_bits(8,3,alpha=1)")
                          .beta_quantizer("quantized_bits(8,3,alpha=1)"));
  {
    torch::NoGradGuard g;
    bn->running_mean.uniform_(-2, 2);
    bn->running_var.uniform_(0.2, 4);
    bn->weight.uniform_(0.5, 1.5);
    bn->bias.uniform_(-1, 1);
  }
  torch::nn::Sequential m(hn::QActivation("quantized_bits(6,2,alpha=1)"),
                          hn::QLinear(hn::QLinearOptions(16, 12).kernel_quantizer(kQ6).bias_quantizer(kQ6)),
                          hn::QActivation("quantized_relu(6,1)"), bn,
                          hn::QActivation("quantized_bits(6,2,alpha=1)"),
                          hn::QLinear(hn::QLinearOptions(12, 3).kernel_quantizer(kQ6).bias_quantizer(kQ6)));
  m->eval();
  const hd::Engine e = hd::compile(*m);
  EXPECT_EQ(e.stage_info()[2].kind, "affine");
  EXPECT_TRUE(e.float32_exact());
  const torch::Tensor x = inputs(400, 16);
  torch::NoGradGuard g;
  EXPECT_TRUE(torch::equal(run(e, x), m->forward(x)));
  // float statistics: refused
  hn::QBatchNorm1d plain(hn::QBatchNormOptions(4));
  plain->running_var.uniform_(0.2, 4);
  torch::nn::Sequential m2(hn::QActivation("quantized_bits(6,2,alpha=1)"), plain);
  m2->eval();
  hd::CompileOptions o;
  o.input_shape = {4};
  EXPECT_NE(error_of([&] { hd::compile(*m2, o); }).find("quantize it"), std::string::npos);
}

// ------------------------------------------------------------------------------------------------
// Layers chained without an activation, separable and transposed convolutions, table activations,
// sparse kernels.

namespace {

// Every value of quantized_bits(bits, integer): its whole integer domain, one per row.
torch::Tensor every_code(int64_t bits, int64_t integer) {
  return (torch::arange(-(int64_t(1) << (bits - 1)), int64_t(1) << (bits - 1), torch::kDouble) *
          std::ldexp(1.0, static_cast<int>(integer + 1 - bits)))
      .to(torch::kFloat)
      .reshape({-1, 1});
}

// The jet model with each layer's smallest-magnitude weights zero.
torch::nn::Sequential pruned_jet_model(double sparsity) {
  torch::nn::Sequential m = jet_model();
  torch::NoGradGuard g;
  for (const auto& p : m->named_parameters()) {
    if (p.key().find("weight") == std::string::npos) continue;
    torch::Tensor w = p.value();
    const auto k = static_cast<int64_t>(std::round(sparsity * static_cast<double>(w.numel())));
    const torch::Tensor cut = std::get<0>(w.abs().flatten().kthvalue(k));
    w.masked_fill_(w.abs() <= cut, 0.0);
  }
  return m;
}

}  // namespace

TEST(DeployCompile, ChainedSeparableAndTransposedConvolutionsAreBitExact) {
  torch::manual_seed(10);
  const char* auto_po2 = "quantized_bits(6,0,alpha=\"auto_po2\")";
  torch::nn::Sequential m;
  m->push_back(hn::QActivation("quantized_bits(8,2,alpha=1)"));
  m->push_back(hn::QSeparableConv2d(hn::QSeparableConv2dOptions(2, 4, 3).depth_multiplier(2).padding(1)
                                        .depthwise_quantizer(auto_po2)
                                        .pointwise_quantizer(kQ6)
                                        .bias_quantizer("quantized_bits(8,3,alpha=1)")));
  m->push_back(hn::QActivation("quantized_bits(8,3,alpha=1)"));
  m->push_back(hn::QConvTranspose2d(hn::QConv2dOptions(4, 3, 3).stride(2).padding(1).output_padding(1)
                                        .kernel_quantizer(auto_po2)
                                        .bias_quantizer(kQ6)));
  m->push_back(hn::QActivation("quantized_tanh(6)"));
  m->push_back(hn::QConv2d(hn::QConv2dOptions(3, 2, 2).kernel_quantizer(kQ6).bias(false)));
  m->push_back(hn::QActivation("quantized_bits(8,3,alpha=1)"));
  m->push_back(torch::nn::Flatten());
  m->push_back(hn::QLinear(hn::QLinearOptions(2 * 11 * 11, 8).kernel_quantizer(auto_po2).bias_quantizer(kQ6)));
  m->push_back(hn::QLinear(hn::QLinearOptions(8, 3).kernel_quantizer("binary(alpha=1)").bias(false)));
  m->eval();
  hd::CompileOptions o;
  o.input_shape = {2, 6, 6};
  const hd::Engine e = hd::compile(*m, o);
  std::vector<std::string> kinds;
  for (const auto& s : e.stage_info()) kinds.push_back(s.kind);
  // the separable convolution's two stages chained, the transposed one as gather + conv2d, and
  // the last two dense layers chained
  EXPECT_EQ(kinds, (std::vector<std::string>{"conv2d", "conv2d", "requantize", "gather", "conv2d",
                                             "requantize", "conv2d", "requantize", "dense", "dense"}));
  EXPECT_NE(e.stage_info()[0].name.find("layer `1.depthwise`"), std::string::npos);
  EXPECT_TRUE(e.float32_exact());
  const torch::Tensor x = inputs(40 * 72, 1).reshape({40, 2, 6, 6});
  torch::NoGradGuard g;
  EXPECT_TRUE(torch::equal(run(e, x.reshape({40, 72})), m->forward(x)));
  // the file keeps every new field
  const std::string path = testing::TempDir() + "deploy_chain.engine";
  e.save(path);
  EXPECT_TRUE(torch::equal(run(hd::Engine::load(path), x.reshape({40, 72})), run(e, x.reshape({40, 72}))));
  std::remove(path.c_str());
}

TEST(DeployCompile, TableActivationsAreExactOnEveryInteger) {
  for (const char* act : {"quantized_tanh(5)", "quantized_sigmoid(6,symmetric=True)", "quantized_hswish(6,2)",
                          "quantized_ulaw(8,0)", "quantized_po2(5,2)", "quantized_relu_po2(4)",
                          "quantized_relu(6,2,use_sigmoid=1)", "quantized_relu(6,2,relu_upper_bound=2.5)"}) {
    torch::nn::Sequential m(hn::QActivation("quantized_bits(14,6,alpha=1)"), hn::QActivation(act));
    m->eval();
    hd::CompileOptions one;
    one.input_shape = {1};
    const hd::Engine e = hd::compile(*m, one);
    ASSERT_EQ(e.program().stages.size(), 1u) << act;
    EXPECT_EQ(e.program().stages[0].requantizer.kind, "table") << act;
    const torch::Tensor x = every_code(14, 6);
    torch::NoGradGuard g;
    EXPECT_TRUE(torch::equal(run(e, x), m->forward(x))) << act;
  }
  // after dense layers with per-channel scales: one table per accumulator frac
  torch::manual_seed(11);
  torch::nn::Sequential m(hn::QActivation("quantized_bits(8,3,alpha=1)"),
                          hn::QLinear(hn::QLinearOptions(16, 12).kernel_quantizer("quantized_bits(6,0,alpha=\"auto_po2\")")),
                          hn::QActivation("quantized_po2(4)"),
                          hn::QLinear(hn::QLinearOptions(12, 3).kernel_quantizer(kQ6).bias(false)));
  m->eval();
  const hd::Engine e = hd::compile(*m);
  EXPECT_GT(e.program().stages[1].requantizer.breaks.size(), 1u);
  const torch::Tensor x = inputs(1000, 16);
  torch::NoGradGuard g;
  EXPECT_TRUE(torch::equal(run(e, x), m->forward(x)));
  // not as the input quantizer, not non-monotonic on a huge domain
  torch::nn::Sequential bad(hn::QActivation("quantized_tanh(4)"), hn::QLinear(hn::QLinearOptions(2, 2).kernel_quantizer(kQ6)));
  bad->eval();
  EXPECT_NE(error_of([&] { hd::compile(*bad); }).find("input quantizer"), std::string::npos);
  torch::nn::Sequential wide(hn::QActivation("quantized_bits(24,10,alpha=1)"), hn::QActivation("quantized_hswish(6,2)"));
  wide->eval();
  hd::CompileOptions one;
  one.input_shape = {1};
  EXPECT_NE(error_of([&] { hd::compile(*wide, one); }).find("not monotonic"), std::string::npos);
}

TEST(DeployEngine, SparseKernelEqualsDenseAndModel) {
  torch::manual_seed(12);
  auto m = pruned_jet_model(0.9);
  EXPECT_EQ(hd::compile(*m).stage_info()[0].kernel, "dense");  // default: only above 97% zeros
  hd::EngineOptions at75;
  at75.sparse_min_zero_fraction = 0.75;
  const hd::Engine e(hd::compile(*m).program(), at75);
  int sparse = 0;
  for (const auto& s : e.stage_info()) sparse += s.kernel == "sparse";
  EXPECT_EQ(sparse, 4);
  hd::EngineOptions dense_only;
  dense_only.sparse_min_zero_fraction = 2.0;
  const hd::Engine d(e.program(), dense_only);
  for (const auto& s : d.stage_info()) EXPECT_NE(s.kernel, "sparse");
  torch::NoGradGuard g;
  for (int64_t batch : {1, 4, 5, 300}) {
    const torch::Tensor x = inputs(batch * 2, 16).slice(0, 0, batch);
    const torch::Tensor want = m->forward(x);
    EXPECT_TRUE(torch::equal(run(e, x), want)) << batch;
    EXPECT_TRUE(torch::equal(run(d, x), want)) << batch;
  }
  // at most 10% of the first layer's 1024 weights are nonzero (ties at the cut prune more)
  EXPECT_GT(e.stage_info()[0].nonzero_weights, 0);
  EXPECT_LE(e.stage_info()[0].nonzero_weights, 103);
}

TEST(DeployEngine, ValidatesGatherAndTableStages) {
  hd::Program p;
  p.input_size = 3;
  p.input.kind = "fixed";
  p.input.in_scale = 1;
  p.input.lo = -8;
  p.input.hi = 7;
  hd::Stage g;
  g.kind = "gather";
  g.name = "pad";
  g.in_features = 3;
  g.out_features = 4;
  g.index = {2, -1, 0, 3};
  g.frac = {0, 0, 0, 0};
  p.stages.push_back(g);
  EXPECT_NE(error_of([&] { hd::Engine e(p); }).find("index 3 at 3 is out of [-1, 3)"), std::string::npos);
  p.stages[0].index = {2, -1, 0, 1};
  hd::Stage t;
  t.kind = "requantize";
  t.name = "act";
  t.frac = {1, 1, 1, 1};
  t.requantizer.kind = "table";
  t.requantizer.table = {0, 0, 0, 0};
  t.requantizer.breaks = {{-2, 3, 3}};
  t.requantizer.codes = {{-1, 0, 1, 2}};
  p.stages.push_back(t);
  EXPECT_NE(error_of([&] { hd::Engine e(p); }).find("must increase strictly"), std::string::npos);
  p.stages[1].requantizer.breaks = {{-2, 3, 5}};
  const hd::Engine e(p);
  // x = (6, -3, 1): gathered (1, 0, 6, -3); steps at -2, 3, 5 -> codes (0, 0, 2, -1)
  const float x[] = {6.f, -3.f, 1.f};
  std::vector<int64_t> out(4);
  e.run_codes(x, 1, out.data());
  EXPECT_EQ(out, (std::vector<int64_t>{0, 0, 2, -1}));
  // a recurrent layer needs the sequence's shape
  hd::LayerDesc l;
  l.name = "rnn";
  l.class_name = "QLSTM";
  EXPECT_NE(error_of([&] { hd::compile_program({l}); })
                .find("layer `rnn` (QLSTM): a recurrent model needs its per-sample input shape"),
            std::string::npos);
}

TEST(DeployHeader, RunsTablesGathersAndSparseModels) {
  torch::manual_seed(13);
  torch::nn::Sequential m;
  m->push_back(hn::QActivation("quantized_bits(8,2,alpha=1)"));
  m->push_back(hn::QConvTranspose2d(hn::QConv2dOptions(2, 2, 3).stride(2).kernel_quantizer(kQ6).bias_quantizer(kQ6)));
  m->push_back(hn::QActivation("quantized_sigmoid(5)"));
  m->push_back(torch::nn::Flatten());
  m->push_back(hn::QLinear(hn::QLinearOptions(2 * 9 * 9, 4).kernel_quantizer("quantized_po2(4)").bias(false)));
  m->push_back(hn::QActivation("quantized_hswish(6,2)"));
  m->eval();
  hd::CompileOptions o;
  o.input_shape = {2, 4, 4};
  const hd::Engine e = hd::compile(*m, o);
  const std::string dir = testing::TempDir();
  {
    std::ofstream h(dir + "t_model.h");
    h << e.generate_header("tm");
    std::ofstream mm(dir + "t_main.cpp");
    mm << "#include <cstdio>\n#include \"t_model.h\"\n"
          "int main() {\n  float in[tm::kInputSize]; float out[tm::kOutputSize];\n"
          "  while (std::fread(in, 4, tm::kInputSize, stdin) == (size_t)tm::kInputSize) {\n"
          "    if (tm::infer_float(in, out) != 0) return 3;\n"
          "    std::fwrite(out, 4, tm::kOutputSize, stdout);\n  }\n  return 0;\n}\n";
  }
  const torch::Tensor x = inputs(100 * 32, 1).reshape({100, 32}).contiguous();
  {
    std::ofstream f(dir + "t_in.bin", std::ios::binary);
    f.write(reinterpret_cast<const char*>(x.data_ptr<float>()), x.numel() * 4);
  }
  const std::string cmd = std::string(HETEROQ_CXX_COMPILER) + " -std=c++17 -O1 -Wall -Werror -o " + dir +
                          "t_main " + dir + "t_main.cpp && " + dir + "t_main < " + dir + "t_in.bin > " +
                          dir + "t_out.bin";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream f(dir + "t_out.bin", std::ios::binary);
  std::string raw((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  ASSERT_EQ(raw.size(), static_cast<size_t>(100 * 4 * 4));
  torch::Tensor got = torch::from_blob(raw.data(), {100, 4}, torch::kFloat).clone();
  torch::NoGradGuard g;
  EXPECT_TRUE(torch::equal(got, run(e, x)));
  EXPECT_TRUE(torch::equal(got, m->forward(x.reshape({100, 2, 4, 4}))));
}

TEST(DeployCompile, AccumulatorsFitTheCostModel) {
  torch::manual_seed(14);
  for (const char* kernel : {kQ6, "quantized_bits(4,1,alpha=1)", "quantized_po2(4)", "ternary(alpha=1)",
                             "binary(alpha=1)", "quantized_bits(8,2,symmetric=1,alpha=1)"}) {
    auto m = jet_model(kernel);
    const hd::Engine e = hd::compile(*m);
    int checked = 0;
    for (const auto& s : e.stage_info()) {
      if (s.kind != "dense") continue;
      EXPECT_GT(s.cost_bits, 0) << kernel << " " << s.name;
      EXPECT_GT(s.bits_at_cost_frac, 0) << kernel << " " << s.name;
      EXPECT_LE(s.bits_at_cost_frac, s.cost_bits) << kernel << " " << s.name;
      ++checked;
    }
    EXPECT_EQ(checked, 4) << kernel;
  }
  // convolutions, a separable one (two stages, two accumulator types) and chained layers
  torch::nn::Sequential m;
  m->push_back(hn::QActivation("quantized_bits(8,2,alpha=1)"));
  m->push_back(hn::QConv2d(hn::QConv2dOptions(2, 4, 3).padding(1).kernel_quantizer(kQ6).bias_quantizer(kQ6)));
  m->push_back(hn::QActivation("quantized_relu(6,2)"));
  m->push_back(hn::QSeparableConv2d(hn::QSeparableConv2dOptions(4, 6, 3).depthwise_quantizer(kQ6)
                                        .pointwise_quantizer("ternary(alpha=1)").bias_quantizer(kQ6)));
  m->push_back(torch::nn::Flatten());
  m->push_back(hn::QLinear(hn::QLinearOptions(6 * 6 * 6, 5).kernel_quantizer(kQ6).bias_quantizer(kQ6)));
  m->eval();
  hd::CompileOptions o;
  o.input_shape = {2, 8, 8};
  const hd::Engine e = hd::compile(*m, o);
  int checked = 0;
  for (const auto& s : e.stage_info()) {
    if (s.kind != "dense" && s.kind != "conv2d") continue;
    EXPECT_GT(s.cost_bits, 0) << s.name;
    EXPECT_LE(s.bits_at_cost_frac, s.cost_bits) << s.name;
    ++checked;
  }
  EXPECT_EQ(checked, 4);
}

TEST(DeployCompile, FixedQuantizerWeightsPerElementAndActivations) {
  torch::manual_seed(15);
  // per-element widths on the first layer's kernel, per-channel on the second's, uniform
  // activation (a step table)
  const heteroq::QuantizerPtr w1 = std::make_shared<heteroq::FixedQuantizer>(
      torch::ones({6, 8}), torch::randint(-1, 2, {6, 8}).to(torch::kFloat),
      torch::randint(2, 7, {6, 8}).to(torch::kFloat), "RND", "SAT");
  const heteroq::QuantizerPtr w2 = std::make_shared<heteroq::FixedQuantizer>(
      torch::ones({}), torch::zeros({3, 1}), torch::randint(3, 6, {3, 1}).to(torch::kFloat), "TRN", "WRAP");
  const heteroq::QuantizerPtr act = std::make_shared<heteroq::FixedQuantizer>(6, 2, false, "RND_CONV", "WRAP");
  torch::nn::Sequential m(hn::QActivation("quantized_bits(8,3,alpha=1)"),
                          hn::QLinear(hn::QLinearOptions(8, 6).kernel_quantizer(w1).bias_quantizer("fixed(8,2)")),
                          hn::QActivation(act),
                          hn::QLinear(hn::QLinearOptions(6, 3).kernel_quantizer(w2).bias(false)));
  m->eval();
  const hd::Engine e = hd::compile(*m);
  EXPECT_TRUE(e.float32_exact());
  const torch::Tensor x = inputs(600, 8);
  torch::NoGradGuard g;
  EXPECT_TRUE(torch::equal(run(e, x), m->forward(x)));
}

// ------------------------------------------------------------------------------------------------
// Recurrent layers (each followed by RecurrentOutput; tests/python/test_deploy_recurrent.py has
// every option).

namespace {

// (A GRU's r (w_hn s + b_hn) carries hard_sigmoid's fraction bits: narrower weights and state keep
// it within float32's 24 bits.)
template <typename Options>
Options rnn_options(Options o, bool bidirectional) {
  const bool gru = std::is_same_v<Options, hn::QGRUOptions>;
  const char* w = gru ? "quantized_bits(4,0,alpha=1)" : kQ6;
  return o.batch_first(true)
      .bidirectional(bidirectional)
      .kernel_quantizer(w)
      .recurrent_quantizer(w)
      .bias_quantizer("quantized_bits(8,2,alpha=1)")
      .state_quantizer(gru ? "quantized_bits(5,0,alpha=1)" : "quantized_bits(8,0,alpha=1)");
}

// Compiles QActivation -> layer -> RecurrentOutput and compares the engine with the modules' own
// forward on random sequences (7 steps of 5 features).
template <typename Layer, typename Reference>
void expect_recurrent_exact(Layer layer, bool return_sequences, Reference reference) {
  torch::manual_seed(3);
  {
    torch::NoGradGuard g;
    for (auto& p : layer->parameters()) p.uniform_(-0.9, 0.9);
  }
  hn::QActivation in_q("quantized_bits(8,2,alpha=1)");
  hn::RecurrentOutput select(return_sequences);
  torch::nn::Sequential seq;
  seq->push_back(in_q);
  seq->push_back(layer);
  seq->push_back(select);
  seq->eval();
  hd::CompileOptions o;
  o.input_shape = {7, 5};
  const hd::Engine e = hd::compile(*seq, o);
  EXPECT_TRUE(e.float32_exact());
  EXPECT_EQ(e.stage_info().at(0).kind, "recurrent");
  const torch::Tensor x = torch::randn({32, 7, 5}) * 2;
  torch::Tensor ref;
  {
    torch::NoGradGuard g;
    ref = reference(in_q(x), select).reshape({32, -1});
  }
  const torch::Tensor got = run(e, x.reshape({32, 35}));
  ASSERT_EQ(got.sizes(), ref.sizes());
  EXPECT_TRUE(torch::equal(got, ref)) << (got - ref).abs().max().item<float>();
  // the file and the generated header's arithmetic reproduce it
  char path[] = "/tmp/heteroq_rnn_XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  e.save(path);
  const hd::Engine loaded = hd::Engine::load(path);
  std::remove(path);
  EXPECT_TRUE(torch::equal(run(loaded, x.reshape({32, 35})), ref));
  EXPECT_NE(e.generate_header("rnn").find("static inline void rnn0("), std::string::npos);
}

}  // namespace

TEST(DeployCompile, RecurrentLayersAreBitExact) {
  for (bool bidirectional : {false, true}) {
    for (bool ret : {false, true}) {
      SCOPED_TRACE(std::string(bidirectional ? "bidirectional" : "forward") + (ret ? ", sequences" : ", last"));
      hn::QSimpleRNN rnn(rnn_options(hn::QSimpleRNNOptions(5, 6), bidirectional));
      expect_recurrent_exact(rnn, ret, [&](const torch::Tensor& x, hn::RecurrentOutput& s) {
        auto [out, h] = rnn(x);
        return s(out, h);
      });
      hn::QLSTM lstm(rnn_options(hn::QLSTMOptions(5, 6), bidirectional));
      expect_recurrent_exact(lstm, ret, [&](const torch::Tensor& x, hn::RecurrentOutput& s) {
        auto [out, state] = lstm(x);
        return s(out, std::get<0>(state));
      });
      for (bool reset_after : {true, false}) {
        hn::QGRU gru(rnn_options(hn::QGRUOptions(5, 6), bidirectional).reset_after(reset_after));
        expect_recurrent_exact(gru, ret, [&](const torch::Tensor& x, hn::RecurrentOutput& s) {
          auto [out, h] = gru(x);
          return s(out, h);
        });
      }
    }
  }
}

TEST(DeployCompile, RecurrentRefusalsNameTheLayer) {
  hd::CompileOptions o;
  o.input_shape = {7, 5};
  auto model = [](auto layer, bool with_output) {
    torch::nn::Sequential seq;
    seq->push_back(hn::QActivation("quantized_bits(8,2,alpha=1)"));
    seq->push_back(layer);
    if (with_output) seq->push_back(hn::RecurrentOutput());
    seq->eval();
    return seq;
  };
  auto lstm = rnn_options(hn::QLSTMOptions(5, 6), false);
  EXPECT_NE(error_of([&] { hd::compile(*model(hn::QLSTM(lstm), false), o); })
                .find("layer `1` (QLSTM): must be followed by a RecurrentOutput"),
            std::string::npos);
  EXPECT_NE(error_of([&] { hd::compile(*model(hn::QLSTM(hn::QLSTMOptions(lstm).state_quantizer(nullptr)), true), o); })
                .find("layer `1` (QLSTM): has no state_quantizer"),
            std::string::npos);
  EXPECT_NE(error_of([&] { hd::compile(*model(hn::QLSTM(hn::QLSTMOptions(lstm).batch_first(false)), true), o); })
                .find("has batch_first=False"),
            std::string::npos);
  EXPECT_NE(error_of([&] { hd::compile(*model(hn::QLSTM(hn::QLSTMOptions(lstm).activation("tanh")), true), o); })
                .find("is the float function `tanh`"),
            std::string::npos);
  // an engine file whose recurrent stage lacks the state quantizer is refused on load
  hd::Program p = hd::compile(*model(hn::QGRU(rnn_options(hn::QGRUOptions(5, 6), false)), true), o).program();
  p.stages[0].recurrent.directions[0].state_h.kind = "linear";
  EXPECT_NE(error_of([&] { hd::Engine e(p); }).find("the state fed back is not quantized"), std::string::npos);
  p = hd::compile(*model(hn::QGRU(rnn_options(hn::QGRUOptions(5, 6), false)), true), o).program();
  p.stages[0].recurrent.directions[0].w_hh.pop_back();
  EXPECT_NE(error_of([&] { hd::Engine e(p); }).find("w_hh has"), std::string::npos);
}
