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

#include "deploy/engine_internal.h"
#include "heteroq/deploy/compile.h"
#include "heteroq/nn/conv.h"
#include "heteroq/nn/folded.h"
#include "heteroq/nn/layers.h"
#include "heteroq/nn/norm_pool.h"

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
