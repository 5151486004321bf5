// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <sstream>

#include "heteroq/heteroq.h"

namespace {

using namespace heteroq::nn;  // NOLINT
const char* kQ = "quantized_bits(6,2,alpha=1)";

torch::Tensor q(const torch::Tensor& t, const std::string& spec = kQ) {
  return heteroq::get_quantizer(spec)->forward(t);
}

TEST(QConv, ForwardEqualsTorchOpsOfQuantizedParameters) {
  torch::manual_seed(0);
  const torch::Tensor x2 = torch::randn({2, 4, 9, 9});
  QConv2d c2(QConv2dOptions(4, 6, 3).stride(2).padding(1).groups(2).kernel_quantizer(kQ)
                 .bias_quantizer(kQ));
  c2->eval();
  EXPECT_TRUE(torch::equal(c2(x2), torch::conv2d(x2, q(c2->weight), q(c2->bias), 2, 1, 1, 2)));
  QConvTranspose2d ct(QConv2dOptions(4, 3, 3).stride(2).output_padding(1).kernel_quantizer(kQ));
  EXPECT_TRUE(torch::equal(ct(x2), torch::conv_transpose2d(x2, q(ct->weight), ct->bias, 2, 0, 1)));
  QDepthwiseConv2d dw(QDepthwiseConv2dOptions(4, 3).depth_multiplier(2).depthwise_quantizer(kQ));
  EXPECT_EQ(dw->conv->weight.sizes(), torch::IntArrayRef({8, 1, 3, 3}));
  EXPECT_TRUE(torch::equal(dw(x2), torch::conv2d(x2, q(dw->conv->weight), dw->conv->bias, 1, std::vector<int64_t>{0}, 1, 4)));
  QSeparableConv2d sc(QSeparableConv2dOptions(4, 5, 3).depthwise_quantizer(kQ)
                          .pointwise_quantizer(kQ).bias_quantizer(kQ));
  const torch::Tensor mid = torch::conv2d(x2, q(sc->depthwise->weight), {}, 1, std::vector<int64_t>{0}, 1, 4);
  EXPECT_TRUE(torch::equal(sc(x2), torch::conv2d(mid, q(sc->pointwise->weight), q(sc->pointwise->bias))));
  const torch::Tensor x1 = torch::randn({2, 4, 11});
  QConv1d c1(QConv1dOptions(4, 5, 3).dilation(2).kernel_quantizer(kQ));
  EXPECT_TRUE(torch::equal(c1(x1), torch::conv1d(x1, q(c1->weight), c1->bias, 1, std::vector<int64_t>{0}, 2)));
  std::ostringstream os;
  os << *c2;
  EXPECT_NE(os.str().find("kernel_quantizer=quantized_bits(6,2,0,alpha=1.0)"), std::string::npos);
}

TEST(QBatchNorm, QKerasFormulaAndRunningStats) {
  torch::manual_seed(3);
  const torch::Tensor x = torch::randn({8, 3, 4, 4}) * 2 + 1;
  QBatchNorm2d bn(QBatchNormOptions(3).gamma_quantizer("quantized_relu_po2(6,2048)")
                      .beta_quantizer("quantized_po2(5)").mean_quantizer("quantized_po2(5)"));
  {
    torch::NoGradGuard g;
    bn->weight.copy_(torch::tensor({0.7, 1.3, 2.2}));
    bn->bias.copy_(torch::tensor({0.1, -0.4, 0.3}));
  }
  const torch::Tensor y = bn(x);
  const torch::Tensor m = x.mean({0, 2, 3}), v = x.var({0, 2, 3}, false);
  const torch::Tensor inv = torch::rsqrt(v + 1e-5) * q(bn->weight, "quantized_relu_po2(6,2048)");
  const torch::Tensor shift = q(bn->bias, "quantized_po2(5)") - q(m, "quantized_po2(5)") * inv;
  EXPECT_TRUE(torch::allclose(y, x * inv.view({1, 3, 1, 1}) + shift.view({1, 3, 1, 1}), 0, 1e-6));
  EXPECT_TRUE(torch::allclose(bn->running_mean, 0.1 * m));
  EXPECT_TRUE(torch::allclose(bn->running_var, 0.9 + 0.1 * x.var({0, 2, 3}, true)));
  // Without quantizers: torch::nn::BatchNorm2d.
  torch::nn::BatchNorm2d ref(3);
  QBatchNorm2d plain(3);
  EXPECT_TRUE(torch::allclose(plain(x), ref(x), 0, 1e-5));
  plain->eval();
  ref->eval();
  EXPECT_TRUE(torch::allclose(plain(x), ref(x), 0, 1e-5));
  EXPECT_THROW(plain(torch::randn({2, 3})), c10::Error);
  EXPECT_THROW(QBatchNorm2d(QBatchNormOptions(0)), heteroq::InvalidArgument);
}

TEST(QPooling, QKerasFormula) {
  const torch::Tensor x = torch::randn({2, 3, 6, 6});
  const std::string aq = "quantized_bits(4,0,alpha=1)";
  QAvgPool2d p(QAvgPool2dOptions(3).average_quantizer(aq));
  EXPECT_TRUE(torch::equal(p(x), torch::avg_pool2d(x * 9, 3) * q(torch::tensor(1.0f / 9), aq)));
  QGlobalAvgPool2d g(QGlobalAvgPool2dOptions().average_quantizer(aq));
  EXPECT_TRUE(torch::equal(g(x), x.sum({2, 3}) * q(torch::tensor(1.0f / 36), aq)));
  EXPECT_TRUE(torch::allclose(QGlobalAvgPool2d()(x), x.mean({2, 3})));
}

TEST(QConv, SmallCnnTrainsAndGradientsReachEveryParameter) {
  torch::manual_seed(0);
  torch::nn::Sequential model(
      QConv2d(QConv2dOptions(1, 4, 3).padding(1).kernel_quantizer("quantized_bits(4,0,alpha=1)")
                  .bias_quantizer("quantized_bits(6,2,alpha=1)")),
      QBatchNorm2d(4), QActivation("quantized_relu(4,2)"),
      QAvgPool2d(QAvgPool2dOptions(2).average_quantizer("quantized_bits(8,0,alpha=1)")),
      QDepthwiseConv2d(QDepthwiseConv2dOptions(4, 3).padding(1)
                           .depthwise_quantizer("quantized_bits(4,0,alpha=1)")),
      QGlobalAvgPool2d(), QLinear(QLinearOptions(4, 2).kernel_quantizer("quantized_bits(4,0,alpha=1)")));
  const torch::Tensor x = torch::randn({64, 1, 8, 8});
  const torch::Tensor target = (x.mean({1, 2, 3}) > 0).to(torch::kLong);
  torch::optim::Adam opt(model->parameters(), torch::optim::AdamOptions(0.02));
  double first = 0, last = 0;
  for (int i = 0; i < 40; ++i) {
    opt.zero_grad();
    auto loss = torch::nn::functional::cross_entropy(model->forward(x), target);
    loss.backward();
    if (i == 0) {
      for (const auto& p : model->named_parameters()) {
        EXPECT_TRUE(p.value().grad().defined() && p.value().grad().abs().sum().item<double>() > 0)
            << p.key();
      }
      first = loss.item<double>();
    }
    last = loss.item<double>();
    opt.step();
  }
  EXPECT_LT(last, 0.8 * first);
}

TEST(QConv, BadArgumentsThrow) {
  EXPECT_THROW(QConv2d(QConv2dOptions(4, 6, 3).groups(3)), heteroq::InvalidArgument);
  EXPECT_THROW(QConv1d(QConv1dOptions(0, 6, 3)), heteroq::InvalidArgument);
  EXPECT_THROW(QConv2d(QConv2dOptions(4, 6, 3).stride(0)), heteroq::InvalidArgument);
  EXPECT_THROW(QConv2d(QConv2dOptions(4, 6, 3))(torch::randn({1, 5, 8, 8})), c10::Error);
  EXPECT_THROW(QDepthwiseConv2d(QDepthwiseConv2dOptions(3, 3).depth_multiplier(0)),
               heteroq::InvalidArgument);
}

}  // namespace

namespace {

TEST(QFolded, MatchesFloatConvBatchNormAndFreezes) {
  torch::manual_seed(5);
  const torch::Tensor x = torch::randn({16, 3, 6, 6});
  const std::string fine = "quantized_bits(24,4,alpha=1)";
  QConv2dBatchNorm f(QConv2dBatchNormOptions(3, 4, 3).kernel_quantizer(fine));
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(3, 4, 3));
  torch::nn::BatchNorm2d bn(4);
  {
    torch::NoGradGuard g;
    conv->weight.copy_(f->weight);
    conv->bias.copy_(f->bias);
  }
  EXPECT_TRUE(torch::allclose(f(x), bn(conv(x)), 0, 1e-4));
  EXPECT_TRUE(torch::allclose(f->running_var, bn->running_var));
  f->eval();
  bn->eval();
  EXPECT_TRUE(torch::allclose(f(x), bn(conv(x)), 0, 1e-4));
  const auto folded = f->get_folded_weights();
  EXPECT_TRUE(torch::allclose(
      folded[0], f->weight * (f->gamma / torch::sqrt(f->running_var + 1e-5)).view({4, 1, 1, 1})));
  QConv2dBatchNorm g(QConv2dBatchNormOptions(3, 4, 3).kernel_quantizer(fine).folding(
      FoldingOptions().ema_freeze_delay(2)));
  g(x);
  g(x);
  const torch::Tensor frozen = g->running_mean.clone();
  g(x * 3);
  EXPECT_TRUE(torch::equal(g->running_mean, frozen));
  QLinearBatchNorm lin(QLinearBatchNormOptions(5, 3).kernel_quantizer(fine));
  lin(torch::randn({8, 5})).sum().backward();
  for (const auto& p : lin->parameters()) EXPECT_TRUE(p.grad().defined());
  EXPECT_THROW(QConv2dBatchNorm(QConv2dBatchNormOptions(3, 4, 3).folding(
                   FoldingOptions().folding_mode("fold"))),
               heteroq::InvalidArgument);
}

TEST(QFolded, ModelQuantizeFoldsBatchNorm) {
  torch::manual_seed(6);
  torch::nn::Sequential m(torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 4, 3)),
                          torch::nn::BatchNorm2d(4), torch::nn::ReLU(), torch::nn::Flatten(),
                          torch::nn::Linear(144, 5), torch::nn::BatchNorm1d(5));
  const torch::Tensor x = torch::randn({16, 1, 8, 8});
  m->forward(x);
  m->eval();
  auto q = heteroq::nn::model_quantize(
      m,
      R"J({"QConv2D": {"kernel_quantizer": "quantized_bits(24,4,alpha=1)"},
           "QDenseBatchnorm": {"kernel_quantizer": "quantized_bits(24,4,alpha=1)",
                               "folding_mode": "batch_stats_folding"}})J",
      std::nullopt, /*transfer_weights=*/true, /*enable_bn_folding=*/true);
  EXPECT_TRUE(q[0]->as<QConv2dBatchNorm>());
  EXPECT_TRUE(q[1]->as<torch::nn::Identity>());
  EXPECT_TRUE(q[4]->as<QLinearBatchNorm>());
  EXPECT_EQ(q[4]->as<QLinearBatchNorm>()->options.folding().folding_mode(), "batch_stats_folding");
  q->eval();
  EXPECT_TRUE(torch::allclose(q->forward(x), m->forward(x), 0, 1e-4));
}

}  // namespace
