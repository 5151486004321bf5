// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "heteroq/heteroq.h"

namespace {

torch::nn::Sequential float_cnn() {
  torch::manual_seed(0);
  return torch::nn::Sequential(
      torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 4, 3).padding(1)), torch::nn::BatchNorm2d(4),
      torch::nn::ReLU(), torch::nn::AvgPool2d(2),
      torch::nn::Conv2d(torch::nn::Conv2dOptions(4, 8, 3).groups(4)), torch::nn::Tanh(),
      torch::nn::AdaptiveAvgPool2d(1), torch::nn::Flatten(), torch::nn::Linear(8, 3));
}

const char* kConfig = R"J({
  "QConv2D": {"kernel_quantizer": "quantized_bits(4,0,alpha=1)"},
  "QDepthwiseConv2D": {"depthwise_quantizer": "quantized_bits(3,0,alpha=1)"},
  "QBatchNormalization": {"gamma_quantizer": "quantized_relu_po2(6,2048)"},
  "8": {"kernel_quantizer": "quantized_bits(6,0,alpha=1)"},
  "QGlobalAveragePooling2D": {"average_quantizer": "quantized_bits(8,0,alpha=1)"},
  "QActivation": {"relu": "quantized_relu(4,1)"}
})J";

TEST(ModelQuantize, ConvertsSequentialAsPlanned) {
  auto f = float_cnn();
  f->eval();
  auto q = heteroq::nn::model_quantize(f, kConfig, 5, /*transfer_weights=*/true);
  q->eval();
  EXPECT_TRUE(q[0]->as<heteroq::nn::QConv2d>());
  EXPECT_TRUE(q[1]->as<heteroq::nn::QBatchNorm2d>());
  EXPECT_TRUE(q[2]->as<heteroq::nn::QActivation>());
  EXPECT_EQ(q[2]->as<heteroq::nn::QActivation>()->quantizer()->to_string(), "quantized_relu(4,1)");
  EXPECT_TRUE(q[3]->as<torch::nn::AvgPool2d>());  // no QAveragePooling2D entry
  EXPECT_TRUE(q[4]->as<heteroq::nn::QDepthwiseConv2d>());
  EXPECT_EQ(q[5]->as<heteroq::nn::QActivation>()->quantizer()->to_string(), "quantized_tanh(5)");
  EXPECT_TRUE(q[6]->as<heteroq::nn::QGlobalAvgPool2d>());
  EXPECT_TRUE(q[8]->as<heteroq::nn::QLinear>());
  // Weights transferred: the first layer is the float conv of the quantized kernel.
  const torch::Tensor x = torch::randn({2, 1, 8, 8});
  auto* c = q[0]->as<heteroq::nn::QConv2d>();
  auto* fc = f[0]->as<torch::nn::Conv2d>();
  EXPECT_TRUE(torch::equal(c->weight, fc->weight));
  EXPECT_TRUE(torch::equal(c->forward(x),
                           torch::conv2d(x, heteroq::ops::quantized_bits(fc->weight, 4, 0, false,
                                                                         true, 1.0),
                                         fc->bias, 1, torch::IntArrayRef{1, 1})));
  EXPECT_TRUE(torch::equal(q[4]->as<heteroq::nn::QDepthwiseConv2d>()->conv->weight,
                           f[4]->as<torch::nn::Conv2d>()->weight));
  EXPECT_EQ(q->forward(x).sizes(), torch::IntArrayRef({2, 3}));
}

TEST(ModelQuantize, BadConfigsThrow) {
  auto f = float_cnn();
  auto expect_error = [&](const std::string& cfg, const std::string& needle) {
    try {
      heteroq::nn::model_quantize(f, cfg);
      ADD_FAILURE() << "no error for " << cfg;
    } catch (const heteroq::InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error(R"J({"QConv3D": {}})J", "names no layer of the model and no known class");
  expect_error(R"J({"QDense": {"kernel_quantizer": "quantized_relu(4,0)"}})J",
               "cannot quantize weights");
  expect_error(R"J({"QDense": {"kernel_quantizer": "quantized_bits(4"}})J", "'QDense'.kernel_quantizer");
  expect_error(R"J({"7": {"kernel_quantizer": "quantized_bits(4)"}})J", "cannot convert this kind");
  expect_error("{", "not valid JSON");
  // The planner is the one Python uses: same decisions for the same layers.
  const auto plans = heteroq::nn::plan_model_quantize(
      R"J({"default": {"kernel_quantizer": "quantized_bits(4,0,alpha=1)"}})J",
      {{"a", "Dense", ""}, {"b", "BatchNormalization", ""}, {"c", "Activation", "relu"}}, 3);
  ASSERT_EQ(plans.size(), 3u);
  EXPECT_EQ(plans[0]->qclass, "QDense");
  EXPECT_FALSE(plans[1].has_value());
  EXPECT_EQ(plans[2]->quantizers.at("activation"), "quantized_relu(3,0)");
}

}  // namespace

namespace {
TEST(ModelQuantize, QKerasCompatibleWeightQuantizers) {
  EXPECT_EQ(heteroq::qkeras_weight_quantizer(heteroq::get_quantizer("quantized_bits(4,0)"))
                ->to_string(),
            "quantized_bits(4,0,1,alpha='auto_po2')");
  const auto kept = heteroq::get_quantizer("quantized_bits(4,0,alpha=1)");
  EXPECT_EQ(heteroq::qkeras_weight_quantizer(kept), kept);
  torch::nn::Sequential m(torch::nn::Linear(4, 3));
  auto q = heteroq::nn::model_quantize(
      m, R"J({"QDense": {"kernel_quantizer": "quantized_bits(4,0)", "bias_quantizer": "quantized_bits(4,0)"}})J",
      std::nullopt, false, false, /*qkeras_compatible=*/true);
  const auto& o = q[0]->as<heteroq::nn::QLinear>()->options;
  EXPECT_EQ(o.kernel_quantizer().get()->to_string(), "quantized_bits(4,0,1,alpha='auto_po2')");
  EXPECT_EQ(o.bias_quantizer().get()->to_string(), "quantized_bits(4,0,0)");
}
}  // namespace

namespace {
TEST(ModelQuantize, CopiesFloatLayersMatchesDtypeAndRefusesPaddingModes) {
  torch::nn::Sequential m(torch::nn::Linear(3, 3), torch::nn::BatchNorm1d(3));
  auto q = heteroq::nn::model_quantize(
      m, R"J({"QDense": {"kernel_quantizer": "quantized_bits(4,0,alpha=1)"}})J");
  q->train();
  q->forward(torch::randn({8, 3}) + 2);
  // The unconverted batch norm is a copy: the original's statistics did not move.
  EXPECT_TRUE(torch::equal(m[1]->as<torch::nn::BatchNorm1d>()->running_mean, torch::zeros({3})));
  torch::nn::Sequential d(torch::nn::Linear(3, 2));
  d->to(torch::kDouble);
  auto qd = heteroq::nn::model_quantize(
      d, R"J({"QDense": {"kernel_quantizer": "quantized_bits(8,2,alpha=1)"}})J", std::nullopt, true);
  EXPECT_EQ(qd->forward(torch::randn({4, 3}, torch::kDouble)).scalar_type(), torch::kDouble);
  torch::nn::Sequential r(torch::nn::Conv2d(
      torch::nn::Conv2dOptions(2, 3, 3).padding(1).padding_mode(torch::kReflect)));
  EXPECT_THROW(heteroq::nn::model_quantize(
                   r, R"J({"QConv2D": {"kernel_quantizer": "quantized_bits(4,0,alpha=1)"}})J"),
               heteroq::InvalidArgument);
}
}  // namespace

namespace {
// Recurrent layers: QKeras's quantize_rnn slots, QBidirectional first for bidirectional layers,
// the float layer's activations without activation quantizers, weights transferred.
TEST(ModelQuantize, ConvertsRecurrentLayers) {
  torch::manual_seed(0);
  torch::nn::Sequential m(
      torch::nn::LSTM(torch::nn::LSTMOptions(3, 4).num_layers(2).bidirectional(true)),
      torch::nn::GRU(torch::nn::GRUOptions(8, 4).batch_first(true)),
      torch::nn::RNN(torch::nn::RNNOptions(4, 4).nonlinearity(torch::kReLU)),
      torch::nn::LSTM(torch::nn::LSTMOptions(3, 4)));
  m->eval();
  auto q = heteroq::nn::model_quantize(m, R"J({
    "QBidirectional": {"kernel_quantizer": "quantized_bits(4,0,alpha=1)",
                       "recurrent_activation_quantizer": "hard_sigmoid"},
    "QLSTM": {"kernel_quantizer": "quantized_bits(8,0,alpha=1)"},
    "QGRU": {"kernel_quantizer": "quantized_bits(4,0,alpha=1)",
             "recurrent_quantizer": "quantized_bits(5,0,alpha=1)",
             "recurrent_activation_quantizer": "quantized_sigmoid(6)"},
    "2": {"kernel_quantizer": "quantized_bits(4,0,alpha=1)"}
  })J", 6, /*transfer_weights=*/true);
  auto* lstm = q[0]->as<heteroq::nn::QLSTM>();
  auto* gru = q[1]->as<heteroq::nn::QGRU>();
  auto* rnn = q[2]->as<heteroq::nn::QSimpleRNN>();
  auto* plain = q[3]->as<heteroq::nn::QLSTM>();
  ASSERT_TRUE(lstm && gru && rnn && plain);
  EXPECT_EQ(lstm->options.kernel_quantizer().get()->bits(), 4);  // QBidirectional's
  EXPECT_EQ(lstm->options.recurrent_activation().function(), "hard_sigmoid");
  EXPECT_EQ(lstm->options.activation().quantizer()->to_string(), "quantized_tanh(6)");
  EXPECT_TRUE(lstm->options.bidirectional() && lstm->options.num_layers() == 2);
  EXPECT_EQ(plain->options.kernel_quantizer().get()->bits(), 8);  // QLSTM's
  EXPECT_EQ(plain->options.recurrent_activation().function(), "sigmoid");  // the float layer's
  EXPECT_EQ(gru->options.recurrent_activation().quantizer()->to_string(), "quantized_sigmoid(6)");
  EXPECT_TRUE(gru->options.batch_first());
  EXPECT_EQ(rnn->options.activation().quantizer()->to_string(), "quantized_relu(6,0)");
  // Weights transferred: the converted GRU is the hand-built one with the float weights.
  heteroq::nn::QGRU by_hand(heteroq::nn::QGRUOptions(8, 4).batch_first(true)
                                .kernel_quantizer("quantized_bits(4,0,alpha=1)")
                                .recurrent_quantizer("quantized_bits(5,0,alpha=1)")
                                .recurrent_activation("quantized_sigmoid(6)")
                                .activation("quantized_tanh(6)"));
  {
    torch::NoGradGuard no_grad;
    auto src = m[1]->named_parameters();
    for (auto& p : by_hand->named_parameters()) p.value().copy_(src[p.key()]);
    for (auto& p : src) EXPECT_TRUE(torch::equal(gru->named_parameters()[p.key()], p.value()));
  }
  by_hand->eval();
  const torch::Tensor x = torch::randn({2, 5, 8});
  EXPECT_TRUE(torch::equal(std::get<0>(gru->forward(x)), std::get<0>(by_hand->forward(x))));
}

TEST(ModelQuantize, RecurrentLayerChecks) {
  torch::nn::Sequential m(torch::nn::GRU(torch::nn::GRUOptions(3, 4)),
                          torch::nn::LSTM(torch::nn::LSTMOptions(3, 4).proj_size(2)),
                          torch::nn::RNN(torch::nn::RNNOptions(3, 4)));
  auto expect_error = [&](const std::string& cfg, const std::string& needle) {
    try {
      heteroq::nn::model_quantize(m, cfg);
      ADD_FAILURE() << "no error for " << cfg;
    } catch (const heteroq::InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error(R"J({"QGRU": {"kernel_quantizer": "quantized_bits(4,0,alpha=1)",
                              "recurrent_quantizer": "quantized_relu(4,0)"}})J",
               "'QGRU'.recurrent_quantizer = quantized_relu(4,0) cannot quantize weights");
  expect_error(R"J({"QLSTM": {"kernel_quantizer": "quantized_bits(4,0,alpha=1)"}})J",
               "proj_size");
  expect_error(R"J({"QSimpleRNN": {"kernel_quantizer": "quantized_bits(4,0,alpha=1)",
                                    "recurrent_activation_quantizer": "hard_sigmoid"}})J",
               "has no slot 'recurrent_activation_quantizer'");
  // Without a kernel quantizer the layer stays float; without activation_bits its tanh stays.
  auto q = heteroq::nn::model_quantize(
      m, R"J({"QRNN": {"kernel_quantizer": "quantized_bits(4,0)"},
              "QGRU": {"recurrent_quantizer": "quantized_bits(4,0)"}})J",
      std::nullopt, false, false, /*qkeras_compatible=*/true);
  EXPECT_TRUE(q[0]->as<torch::nn::GRU>());
  auto* rnn = q[2]->as<heteroq::nn::QSimpleRNN>();
  ASSERT_TRUE(rnn);
  EXPECT_EQ(rnn->options.activation().function(), "tanh");
  EXPECT_EQ(rnn->options.kernel_quantizer().get()->to_string(),
            "quantized_bits(4,0,1,alpha='auto_po2')");  // qkeras_compatible
  // The planner is the one Python uses.
  const auto plans = heteroq::nn::plan_model_quantize(
      R"J({"QBidirectional": {"kernel_quantizer": "quantized_bits(4,0,alpha=1)"}})J",
      {{"a", "BidirectionalGRU", "tanh"}, {"b", "GRU", "tanh"}}, 3);
  EXPECT_EQ(plans[0]->qclass, "QGRU");
  EXPECT_EQ(plans[0]->quantizers.at("activation"), "quantized_tanh(3)");
  EXPECT_FALSE(plans[1].has_value());
}
}  // namespace
