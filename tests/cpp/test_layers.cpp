// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <unistd.h>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "heteroq/heteroq.h"

namespace {

using heteroq::nn::QActivation;
using heteroq::nn::QLinear;
using heteroq::nn::QLinearOptions;

TEST(QLinear, ForwardEqualsLinearOfQuantizedParameters) {
  torch::manual_seed(0);
  QLinear fc(QLinearOptions(5, 3)
                 .kernel_quantizer("quantized_bits(4,0,alpha=1)")
                 .bias_quantizer(heteroq::get_quantizer("quantized_bits(6,2)")));
  const torch::Tensor x = torch::randn({7, 5});
  const torch::Tensor w = heteroq::ops::quantized_bits(fc->weight, 4, 0, false, true, 1.0);
  const torch::Tensor b = heteroq::ops::quantized_bits(fc->bias, 6, 2);
  EXPECT_TRUE(torch::equal(fc(x), torch::addmm(b, x, w.t())));
  EXPECT_TRUE(torch::equal(fc->quantized_weight(), w));
  // Values of the weight lie on the 4-bit grid.
  EXPECT_TRUE(torch::equal(w * 8, torch::round(w * 8)));
}

TEST(QLinear, UnquantizedSlotsPassTheFloatValue) {
  torch::manual_seed(0);
  QLinear fc(QLinearOptions(4, 2).bias(false));
  const torch::Tensor x = torch::randn({3, 4});
  EXPECT_FALSE(fc->bias.defined());
  EXPECT_TRUE(torch::allclose(fc(x), torch::mm(x, fc->weight.t())));
}

TEST(QLinear, GradientsReachWeightAndBias) {
  torch::manual_seed(0);
  QLinear fc(QLinearOptions(4, 2)
                 .kernel_quantizer("quantized_bits(4,0,alpha=1)")
                 .bias_quantizer("quantized_bits(4,0,alpha=1)"));
  fc(torch::randn({3, 4})).sum().backward();
  ASSERT_TRUE(fc->weight.grad().defined());
  ASSERT_TRUE(fc->bias.grad().defined());
  // STE: the gradient is the float layer's gradient (3 samples per output for the bias).
  EXPECT_TRUE(torch::equal(fc->bias.grad(), torch::full({2}, 3.0)));
}

TEST(QLinear, PrettyPrintShowsQuantizers) {
  QLinear fc(QLinearOptions(16, 64).kernel_quantizer("quantized_bits(6,0,alpha=1)"));
  std::ostringstream os;
  os << *fc;
  EXPECT_EQ(os.str(),
            "heteroq::nn::QLinear(in_features=16, out_features=64, bias=true, "
            "kernel_quantizer=quantized_bits(6,0,0,alpha=1.0))");
}

TEST(QLinear, BadArgumentsThrow) {
  EXPECT_THROW(QLinear(QLinearOptions(4, 2).kernel_quantizer("quantized_bits(4,0")),
               heteroq::SpecError);
  EXPECT_THROW(QLinear(QLinearOptions(0, 2)), heteroq::InvalidArgument);
  QLinear fc(4, 2);
  EXPECT_THROW(fc(torch::randn({3, 5})), c10::ValueError);
}

TEST(QActivation, AppliesItsQuantizer) {
  QActivation act("quantized_relu(4,2)");
  const torch::Tensor x = torch::tensor({-1.0f, 0.6f, 9.0f});
  EXPECT_TRUE(torch::equal(act(x), torch::tensor({0.0f, 0.5f, 3.75f})));
  std::ostringstream os;
  os << *act;
  EXPECT_EQ(os.str(), "heteroq::nn::QActivation(quantized_relu(4,2))");
  EXPECT_THROW(QActivation(heteroq::nn::QuantizerArg()), heteroq::InvalidArgument);
}

TEST(Training, StepsLowerTheLoss) {
  torch::manual_seed(0);
  // A separable 3-class problem.
  const torch::Tensor x = torch::randn({256, 8});
  const torch::Tensor y = torch::argmax(torch::mm(x, torch::randn({8, 3})), 1);
  torch::nn::Sequential model(
      QLinear(QLinearOptions(8, 16).kernel_quantizer("quantized_bits(6,0,alpha=1)")
                  .bias_quantizer("quantized_bits(6,0,alpha=1)")),
      QActivation("quantized_relu(6,0)"),
      QLinear(QLinearOptions(16, 3).kernel_quantizer("quantized_bits(6,0,alpha=1)")));
  torch::optim::Adam opt(model->parameters(), torch::optim::AdamOptions(1e-2));
  auto loss_of = [&] { return torch::nn::functional::cross_entropy(model->forward(x), y); };
  const double first = loss_of().item<double>();
  for (int i = 0; i < 50; ++i) {
    opt.zero_grad();
    torch::Tensor loss = loss_of();
    loss.backward();
    opt.step();
  }
  const double last = loss_of().item<double>();
  EXPECT_LT(last, 0.7 * first) << first << " -> " << last;
}

}  // namespace

namespace {

// The README's C++ usage, verbatim (so it keeps compiling and running).
TEST(Readme, CppUsageSnippet) {
  auto q = heteroq::get_quantizer("quantized_bits(4,0,alpha=1)");
  torch::Tensor y = q->forward(torch::tensor({0.3f, -1.2f, 0.99f}));  // {0.25, -1, 0.875}
  EXPECT_TRUE(torch::equal(y, torch::tensor({0.25f, -1.0f, 0.875f})));

  torch::nn::Sequential model(
      heteroq::nn::QDense(heteroq::nn::QLinearOptions(16, 64)
                              .kernel_quantizer("quantized_bits(6,0,alpha=1)")
                              .bias_quantizer("quantized_bits(6,0,alpha=1)")),
      heteroq::nn::QActivation("quantized_relu(6,0)"),
      heteroq::nn::QDense(heteroq::nn::QLinearOptions(64, 5)
                              .kernel_quantizer("quantized_bits(6,0,alpha=1)")));
  model->forward(torch::randn({8, 16})).sum().backward();  // C++ autograd kernels
  for (const auto& p : model->parameters()) EXPECT_TRUE(p.grad().defined());

  torch::nn::Sequential cnn(torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 8, 3)),
                            torch::nn::BatchNorm2d(8), torch::nn::ReLU());
  auto qcnn = heteroq::nn::model_quantize(  // the same config, as JSON
      cnn, R"J({"QConv2D": {"kernel_quantizer": "quantized_bits(4,0,alpha=1)"}})J", 4,
      /*transfer_weights=*/true, /*enable_bn_folding=*/true);
  qcnn->forward(torch::randn({2, 1, 28, 28}));
  EXPECT_TRUE(qcnn[0]->as<heteroq::nn::QConv2dBatchNorm>());
  EXPECT_TRUE(qcnn[2]->as<heteroq::nn::QActivation>());

  const auto dir = std::filesystem::temp_directory_path() /
                   ("heteroq_readme_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string file = (dir / "model.safetensors").string();
  std::ostringstream table;
  heteroq::cost::print_qstats(model, {1, 16}, "quantized_relu(8,0)", table);  // the same table
  EXPECT_NE(table.str().find("smult_6_8"), std::string::npos);
  model->eval();
  const torch::Tensor x = torch::randn({3, 16});
  const torch::Tensor before = model->forward(x);
  heteroq::nn::save_quantized_weights(*model, file);  // the same file format
  heteroq::nn::load_quantized_weights(*model, file);
  EXPECT_TRUE(torch::equal(model->forward(x), before));
  torch::nn::Sequential rebuilt = heteroq::nn::from_config(heteroq::nn::to_config(*model));
  EXPECT_EQ(heteroq::nn::to_config(*rebuilt), heteroq::nn::to_config(*model));
  std::filesystem::remove_all(dir);

  heteroq::nn::QLSTM lstm(heteroq::nn::QLSTMOptions(16, 32)
                              .kernel_quantizer("quantized_bits(6,0,alpha=1)")
                              .recurrent_quantizer("quantized_bits(6,0,alpha=1)"));
  auto [out, state] = lstm(torch::randn({10, 4, 16}));
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{10, 4, 32}));
  EXPECT_EQ(std::get<1>(state).sizes(), (std::vector<int64_t>{1, 4, 32}));

  auto energy = heteroq::cost::energy(model, {1, 16});      // the same cost models
  auto fpga = heteroq::cost::fpga_estimate(model, {1, 16});  // fpga.lut, fpga.dsp, ...
  EXPECT_GT(energy.total, 0);
  EXPECT_GT(fpga.lut, 0);
  model->eval();
  heteroq::deploy::CompileOptions options;
  options.input_quantizer = heteroq::get_quantizer("quantized_bits(8,3,alpha=1)");
  heteroq::deploy::Engine engine = heteroq::deploy::compile(*model, options);
  std::vector<float> scores = engine(std::vector<float>(16, 0.5f));  // integer inference
  std::string header = engine.generate_header("jet");                // a standalone C++ header
  torch::NoGradGuard no_grad;
  const torch::Tensor expected =
      model->forward(options.input_quantizer->forward(torch::full({1, 16}, 0.5f)));
  ASSERT_EQ(scores.size(), 5u);
  for (int64_t i = 0; i < 5; ++i) EXPECT_EQ(scores[i], expected[0][i].item<float>());
  EXPECT_NE(header.find("int infer(const float"), std::string::npos);
}

}  // namespace
