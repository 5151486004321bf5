// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Model configs (issue 4): to_config / from_config round trips for every class, the format, the
// errors. The same checks from Python, and the same JSON across languages:
// tests/python/test_config.py.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "heteroq/heteroq.h"

namespace {

using namespace heteroq::nn;  // NOLINT(build/namespaces)

const char* const kQ = "quantized_bits(6,2,alpha=1)";
const char* const kQB = "quantized_bits(8,3,alpha=1)";
const char* const kQS = "quantized_bits(8,2,alpha=1)";  // the recurrent layers' state quantizer

struct Case {
  std::string name;
  std::function<torch::nn::AnyModule()> make;
  std::vector<int64_t> shape;
};

template <typename S = torch::nn::Sequential>
S cnn() {
  S model;
  model->push_back("conv", QConv2d(QConv2dOptions(4, 6, 3).padding(1).kernel_quantizer(kQ)
                                        .bias_quantizer(kQB)));
  model->push_back("bn", QBatchNorm2d(QBatchNormOptions(6).gamma_quantizer("quantized_relu_po2(6,2048)")));
  model->push_back("act", QActivation("quantized_relu(4,1)"));
  NestedSequential block;
  block->push_back("pool", torch::nn::MaxPool2d(2));
  block->push_back("drop", torch::nn::Dropout(0.25));
  model->push_back("block", block);
  model->push_back("flat", torch::nn::Flatten());
  NestedSequential head(QLinear(QLinearOptions(54, 8).kernel_quantizer(kQ)), Hardswish(),
                        torch::nn::Linear(8, 3));
  model->push_back("head", head);
  return model;
}

template <typename M>
torch::nn::AnyModule any(M module) {
  return torch::nn::AnyModule(std::move(module));
}

// Every class the format knows, with arguments off their defaults (as test_config.py's CASES).
std::vector<Case> cases() {
  using torch::nn::AnyModule;
  return {
      {"QLinear", [] { return any(QLinear(QLinearOptions(6, 4).kernel_quantizer(kQ).bias_quantizer(kQB))); },
       {3, 6}},
      {"QLinear_nobias",
       [] { return any(QLinear(QLinearOptions(6, 4).bias(false).kernel_quantizer("binary(alpha=1)"))); },
       {3, 6}},
      {"QConv1d",
       [] {
         return any(QConv1d(QConv1dOptions(4, 6, 3).stride(2).padding(1).groups(2)
                                .kernel_quantizer(kQ).bias_quantizer(kQB)));
       },
       {2, 4, 9}},
      {"QConv2d",
       [] {
         return any(QConv2d(QConv2dOptions(4, 6, {3, 2}).stride({2, 1}).padding({1, 0})
                                .dilation({1, 2}).kernel_quantizer(kQ).bias_quantizer(kQB)));
       },
       {2, 4, 6, 6}},
      {"QConvTranspose2d",
       [] {
         return any(QConvTranspose2d(QConv2dOptions(4, 3, 3).stride(2).padding(1).output_padding(1)
                                         .kernel_quantizer(kQ).bias_quantizer(kQB)));
       },
       {2, 4, 6, 6}},
      {"QDepthwiseConv2d",
       [] {
         return any(QDepthwiseConv2d(QDepthwiseConv2dOptions(4, 3).depth_multiplier(2).padding(1)
                                         .depthwise_quantizer(kQ).bias_quantizer(kQB)));
       },
       {2, 4, 6, 6}},
      {"QSeparableConv1d",
       [] {
         return any(QSeparableConv1d(QSeparableConv1dOptions(4, 5, 3).depth_multiplier(2).padding(1)
                                         .depthwise_quantizer(kQ)
                                         .pointwise_quantizer("quantized_bits(4,0,alpha=1)")
                                         .bias_quantizer(kQB)));
       },
       {2, 4, 9}},
      {"QSeparableConv2d",
       [] {
         return any(QSeparableConv2d(QSeparableConv2dOptions(4, 5, 3).stride(2).bias(false)
                                         .depthwise_quantizer(kQ).pointwise_quantizer(kQ)));
       },
       {2, 4, 6, 6}},
      {"QActivation", [] { return any(QActivation("quantized_relu(4,1)")); }, {2, 4, 6, 6}},
      {"QAdaptiveActivation",
       [] {
         return any(QAdaptiveActivation(QAdaptiveActivationOptions("quantized_relu", 6)
                                            .current_step(3).quantization_delay(5)
                                            .ema_freeze_delay(50).ema_decay(0.9)
                                            .relu_neg_slope(0.25).relu_upper_bound(4.0)));
       },
       {2, 4, 6, 6}},
      {"QAdaptiveActivation_per_channel",
       [] {
         return any(QAdaptiveActivation(QAdaptiveActivationOptions("quantized_bits", 8)
                                            .symmetric(false).per_channel(true).num_channels(4)
                                            .po2_rounding(true)));
       },
       {2, 4, 6, 6}},
      {"QBatchNorm1d",
       [] {
         return any(QBatchNorm1d(QBatchNormOptions(4).eps(1e-3).momentum(0.01)
                                     .gamma_quantizer("quantized_relu_po2(6,2048)")
                                     .beta_quantizer("quantized_po2(5)")
                                     .mean_quantizer("quantized_po2(5)")
                                     .variance_quantizer("quantized_relu_po2(6,quadratic_approximation=True)")));
       },
       {3, 4}},
      {"QBatchNorm2d",
       [] {
         return any(QBatchNorm2d(QBatchNormOptions(4).momentum(std::nullopt).inverse_quantizer(kQB)));
       },
       {2, 4, 6, 6}},
      {"QAvgPool2d",
       [] {
         return any(QAvgPool2d(QAvgPool2dOptions(2).stride(1).padding(1).count_include_pad(false)
                                   .average_quantizer("quantized_bits(8,0,alpha=1)")
                                   .activation("quantized_relu(6,2)")));
       },
       {2, 4, 6, 6}},
      {"QGlobalAvgPool2d",
       [] {
         return any(QGlobalAvgPool2d(QGlobalAvgPool2dOptions()
                                         .average_quantizer("quantized_bits(8,0,alpha=1)")
                                         .keepdim(true)));
       },
       {2, 4, 6, 6}},
      {"QConv2dBatchNorm",
       [] {
         return any(QConv2dBatchNorm(
             QConv2dBatchNormOptions(4, 3, 3).padding(1).kernel_quantizer(kQ).bias_quantizer(kQB)
                 .folding(FoldingOptions().eps(1e-3).momentum(0.05)
                              .folding_mode("batch_stats_folding").ema_freeze_delay(100))));
       },
       {2, 4, 6, 6}},
      {"QLinearBatchNorm",
       [] {
         return any(QLinearBatchNorm(QLinearBatchNormOptions(6, 4).kernel_quantizer(kQ)
                                         .folding(FoldingOptions().momentum(std::nullopt))));
       },
       {3, 6}},
      {"QSimpleRNN",
       [] {
         return any(QSimpleRNN(QSimpleRNNOptions(6, 5).num_layers(2).dropout(0.25)
                                   .kernel_quantizer(kQ).recurrent_quantizer(kQ)
                                   .bias_quantizer(kQB).state_quantizer(kQS).activation("relu")));
       },
       {4, 3, 6}},
      {"QSimpleRNN_defaults",
       [] { return any(QSimpleRNN(QSimpleRNNOptions(6, 5).batch_first(true).bidirectional(true))); },
       {3, 4, 6}},
      {"QLSTM",
       [] {
         return any(QLSTM(QLSTMOptions(6, 5).batch_first(true).bidirectional(true)
                              .kernel_quantizer(kQ).recurrent_quantizer(kQ).state_quantizer(kQS)
                              .activation(nullptr).recurrent_activation("quantized_sigmoid(8)")
                              .unit_forget_bias(false)));
       },
       {3, 4, 6}},
      {"QLSTM_defaults",
       [] { return any(QLSTM(QLSTMOptions(6, 5).num_layers(2).dropout(0.5).bias(false))); },
       {4, 3, 6}},
      {"QGRU",
       [] {
         return any(QGRU(QGRUOptions(6, 5).kernel_quantizer(kQ).bias_quantizer(kQB)
                             .activation("quantized_tanh(6)").recurrent_activation("sigmoid")
                             .reset_after(false)));
       },
       {4, 6}},
      {"QGRU_float",
       [] {
         return any(QGRU(QGRUOptions(6, 5).num_layers(2).bidirectional(true).activation("linear")
                             .recurrent_activation(nullptr)));
       },
       {4, 3, 6}},
      {"Linear", [] { return any(torch::nn::Linear(torch::nn::LinearOptions(6, 4).bias(false))); },
       {3, 6}},
      {"Conv1d",
       [] {
         return any(torch::nn::Conv1d(
             torch::nn::Conv1dOptions(4, 5, 3).padding(torch::kSame).padding_mode(torch::kReflect)));
       },
       {2, 4, 9}},
      {"Conv2d",
       [] {
         return any(torch::nn::Conv2d(torch::nn::Conv2dOptions(4, 6, {3, 1}).stride({2, 1})
                                          .padding({1, 0}).groups(2)
                                          .padding_mode(torch::kCircular)));
       },
       {2, 4, 6, 6}},
      {"Conv2d_valid",
       [] {
         return any(torch::nn::Conv2d(
             torch::nn::Conv2dOptions(4, 2, 3).padding(torch::kValid).bias(false)));
       },
       {2, 4, 6, 6}},
      {"BatchNorm1d",
       [] { return any(torch::nn::BatchNorm1d(torch::nn::BatchNormOptions(4).affine(false))); },
       {3, 4, 5}},
      {"BatchNorm2d",
       [] {
         return any(torch::nn::BatchNorm2d(
             torch::nn::BatchNormOptions(4).eps(1e-3).momentum(c10::nullopt)));
       },
       {2, 4, 6, 6}},
      {"ReLU", [] { return any(torch::nn::ReLU(torch::nn::ReLUOptions().inplace(true))); }, {2, 4, 6, 6}},
      {"Tanh", [] { return any(torch::nn::Tanh()); }, {2, 4, 6, 6}},
      {"Sigmoid", [] { return any(torch::nn::Sigmoid()); }, {2, 4, 6, 6}},
      {"Hardswish", [] { return any(Hardswish()); }, {2, 4, 6, 6}},
      {"Flatten",
       [] { return any(torch::nn::Flatten(torch::nn::FlattenOptions().start_dim(1).end_dim(2))); },
       {2, 4, 6, 6}},
      {"Dropout", [] { return any(torch::nn::Dropout(0.25)); }, {2, 4, 6, 6}},
      {"AvgPool2d",
       [] {
         return any(torch::nn::AvgPool2d(torch::nn::AvgPool2dOptions(3).stride(2).padding(1)
                                             .ceil_mode(true).count_include_pad(false)
                                             .divisor_override(4)));
       },
       {2, 4, 6, 6}},
      {"MaxPool2d",
       [] {
         return any(torch::nn::MaxPool2d(
             torch::nn::MaxPool2dOptions(3).stride(2).padding(1).ceil_mode(true)));
       },
       {2, 4, 6, 6}},
      {"Identity", [] { return any(torch::nn::Identity()); }, {2, 4, 6, 6}},
      {"Sequential",
       [] { return any(cnn<NestedSequential>()); },
       {2, 4, 6, 6}},
      // A recurrent layer returns (output, state): as a Sequential's last member it still runs.
      {"Sequential_rnn",
       [] {
         NestedSequential seq;
         seq->push_back("act", QActivation("quantized_bits(8,2,alpha=1)"));
         seq->push_back("rnn", QLSTM(QLSTMOptions(4, 3).batch_first(true).kernel_quantizer(kQ)));
         return any(seq);
       },
       {2, 5, 4}},
      {"RecurrentOutput",
       [] {
         NestedSequential seq;
         seq->push_back("rnn", QGRU(QGRUOptions(4, 3).batch_first(true).kernel_quantizer(kQ)));
         seq->push_back("last", RecurrentOutput(false));
         seq->push_back("fc", QLinear(QLinearOptions(3, 2).kernel_quantizer(kQ)));
         return any(seq);
       },
       {2, 5, 4}},
  };
}

// The output tensors of a layer, in order: the output, or a recurrent layer's (output, h_n) /
// (output, (h_n, c_n)).
std::vector<torch::Tensor> tensors_of(torch::nn::AnyValue value) {
  using torch::Tensor;
  if (const auto* t = value.try_get<Tensor>()) return {*t};
  if (const auto* t = value.try_get<std::tuple<Tensor, Tensor>>()) {
    return {std::get<0>(*t), std::get<1>(*t)};
  }
  if (const auto* t = value.try_get<std::tuple<Tensor, std::tuple<Tensor, Tensor>>>()) {
    return {std::get<0>(*t), std::get<0>(std::get<1>(*t)), std::get<1>(std::get<1>(*t))};
  }
  ADD_FAILURE() << "unexpected output type " << value.type_info().name();
  return {};
}

// model(input): a Sequential's children in turn, whatever the last one returns (as Python's
// nn.Sequential; NestedSequential::forward returns a Tensor).
std::vector<torch::Tensor> run(torch::nn::AnyModule& model, const torch::Tensor& input) {
  if (auto* seq = model.ptr()->as<NestedSequentialImpl>()) {
    return tensors_of(seq->forward_any(torch::nn::AnyValue(input)));
  }
  return tensors_of(model.any_forward(input));
}

std::vector<std::pair<std::string, std::vector<int64_t>>> shapes(torch::nn::Module& m) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  for (const auto& p : m.named_parameters()) out.emplace_back(p.key(), p.value().sizes().vec());
  for (const auto& b : m.named_buffers()) out.emplace_back(b.key(), b.value().sizes().vec());
  return out;
}

// load_state_dict: every parameter and buffer of `from` into `to`, by name.
void copy_state(torch::nn::Module& from, torch::nn::Module& to) {
  torch::NoGradGuard no_grad;
  auto params = to.named_parameters();
  auto buffers = to.named_buffers();
  for (const auto& p : from.named_parameters()) params[p.key()].copy_(p.value());
  for (const auto& b : from.named_buffers()) buffers[b.key()].copy_(b.value());
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const heteroq::InvalidArgument& e) {
    return e.what();
  }
  return "(no error)";
}

std::string with_config(const std::string& model_json) {
  return R"J({"format": "heteroq.model_config", "version": 1, )J" + model_json + "}";
}

class ConfigRoundTrip : public ::testing::TestWithParam<Case> {};

TEST_P(ConfigRoundTrip, SameStructureQuantizersAndOutputs) {
  const Case& c = GetParam();
  torch::nn::AnyModule model = c.make();
  const std::string config = to_config(*model.ptr());
  torch::nn::AnyModule copy = module_from_config(config);
  EXPECT_EQ(to_config(*copy.ptr()), config);  // same classes, arguments, quantizer specs, names
  EXPECT_EQ(to_config(*copy.ptr(), -1), to_config(*model.ptr(), -1));
  EXPECT_EQ(typeid(*copy.ptr()), typeid(*model.ptr()));
  EXPECT_EQ(shapes(*copy.ptr()), shapes(*model.ptr()));
  EXPECT_TRUE(copy.ptr()->is_training());
  copy_state(*model.ptr(), *copy.ptr());
  const torch::Tensor x = torch::randn(c.shape);
  for (const bool train : {false, true}) {
    model.ptr()->train(train);
    copy.ptr()->train(train);
    torch::manual_seed(1);
    const auto want = run(model, x.clone());
    torch::manual_seed(1);
    const auto got = run(copy, x.clone());
    ASSERT_EQ(got.size(), want.size()) << c.name;
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_TRUE(torch::equal(got[i], want[i])) << c.name << (train ? " (train)" : " (eval)");
    }
  }
  // The state the training calls changed (QAdaptiveActivation's statistics and step) is the same.
  const auto buffers = copy.ptr()->named_buffers();
  for (const auto& b : model.ptr()->named_buffers()) {
    EXPECT_TRUE(torch::equal(buffers[b.key()], b.value())) << c.name << ": " << b.key();
  }
}

INSTANTIATE_TEST_SUITE_P(EveryClass, ConfigRoundTrip, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

TEST(Config, EveryClassIsCovered) {
  std::set<std::string> covered;
  for (const auto& c : cases()) {
    const std::string text = to_config(*c.make().ptr(), -1);
    for (const auto& cls : config_classes()) {
      if (text.find("\"class\":\"" + cls + "\"") != std::string::npos) covered.insert(cls);
    }
  }
  const auto all = config_classes();
  EXPECT_EQ(std::vector<std::string>(covered.begin(), covered.end()), all);
  EXPECT_EQ(all.size(), 34u);
  EXPECT_TRUE(std::is_sorted(all.begin(), all.end()));
}

TEST(Config, Format) {
  torch::nn::Sequential model;
  model->push_back("fc", QDense(QLinearOptions(4, 3).kernel_quantizer("quantized_bits(4,0,alpha=1)")));
  model->push_back("act", QActivation(heteroq::get_quantizer("quantized_relu(4,1)")));
  model->push_back("out", NestedSequential(torch::nn::Linear(3, 2)));
  EXPECT_EQ(to_config(model, -1),
            R"J({"format":"heteroq.model_config","version":1,"class":"Sequential","layers":[)J"
            R"J({"class":"QLinear","name":"fc","config":{"in_features":4,"out_features":3,)J"
            R"J("bias":true,"kernel_quantizer":"quantized_bits(4,0,0,alpha=1.0)","bias_quantizer":null}},)J"
            R"J({"class":"QActivation","name":"act","config":{"activation":"quantized_relu(4,1)"}},)J"
            R"J({"class":"Sequential","name":"out","layers":[{"class":"Linear","name":"0",)J"
            R"J("config":{"in_features":3,"out_features":2,"bias":true}}]}]})J");
  EXPECT_EQ(to_config(torch::nn::Tanh(), -1),
            R"J({"format":"heteroq.model_config","version":1,"class":"Tanh","config":{}})J");
  // Pretty-printed by default.
  EXPECT_NE(to_config(model).find("\n  \"version\": 1,\n"), std::string::npos);
  EXPECT_STREQ(kConfigFormat, "heteroq.model_config");
  EXPECT_EQ(kConfigVersion, 1);
}

TEST(Config, FromConfigGivesASequentialWithNestedNames) {
  torch::nn::Sequential model = cnn();
  torch::nn::Sequential copy = from_config(to_config(model));
  std::vector<std::string> want, got;
  for (const auto& p : model->named_parameters()) want.push_back(p.key());
  for (const auto& p : copy->named_parameters()) got.push_back(p.key());
  EXPECT_EQ(got, want);
  EXPECT_EQ(got.front(), "conv.weight");
  EXPECT_EQ(got.back(), "head.2.bias");
  EXPECT_NE(copy->named_children()["block"]->as<NestedSequentialImpl>(), nullptr);
  copy->eval();
  EXPECT_EQ(copy->forward(torch::randn({2, 4, 6, 6})).sizes(), (std::vector<int64_t>{2, 3}));
  // A single layer needs module_from_config.
  EXPECT_EQ(error_of([] { from_config(to_config(torch::nn::Tanh())); }),
            "from_config: class: the root is a Tanh, not a Sequential "
            "(heteroq::nn::module_from_config builds a single layer)");
  EXPECT_NE(module_from_config(to_config(torch::nn::Tanh())).ptr()->as<torch::nn::TanhImpl>(),
            nullptr);
}

TEST(Config, OptionalArgumentsTakeTheConstructorsDefaults) {
  auto layer = module_from_config(with_config(
      R"J("class": "QConv2d", "config": {"in_channels": 1, "out_channels": 2, "kernel_size": 3,
          "kernel_quantizer": "quantized_bits(4,0,alpha=1)"})J"));
  EXPECT_EQ(to_config(*layer.ptr()),
            to_config(QConv2d(QConv2dOptions(1, 2, 3).kernel_quantizer("quantized_bits(4,0,alpha=1)"))));
  auto pool = module_from_config(
      with_config(R"J("class": "AvgPool2d", "config": {"kernel_size": [3, 2], "stride": null})J"));
  EXPECT_NE(to_config(*pool.ptr(), -1).find(R"J("stride":[3,2])J"), std::string::npos);
}

TEST(Config, NestedSequential) {
  NestedSequential empty;
  const torch::Tensor x = torch::randn({2, 3});
  EXPECT_TRUE(torch::equal(empty->forward(x), x));  // as Python's empty nn.Sequential
  NestedSequential seq;
  seq->push_back("fc", torch::nn::Linear(3, 2));
  seq->push_back("act", Hardswish());
  auto clone = std::dynamic_pointer_cast<NestedSequentialImpl>(seq->clone());
  ASSERT_NE(clone, nullptr);
  EXPECT_EQ(clone->named_children().keys(), (std::vector<std::string>{"fc", "act"}));
  EXPECT_TRUE(torch::equal(clone->forward(x), seq->forward(x)));
  EXPECT_NE(clone->named_parameters()["fc.weight"].data_ptr(),
            seq->named_parameters()["fc.weight"].data_ptr());
  // Inside a Sequential, cloned with it.
  torch::nn::Sequential outer;
  outer->push_back("block", seq);
  EXPECT_TRUE(torch::equal(outer->forward(x), seq->forward(x)));
  auto outer_clone = outer->clone();
  auto* block = outer_clone->children().at(0)->as<NestedSequentialImpl>();
  ASSERT_NE(block, nullptr);
  EXPECT_EQ(block->named_children().keys(), (std::vector<std::string>{"fc", "act"}));
}

TEST(Config, Hardswish) {
  const torch::Tensor x = torch::linspace(-5, 5, 101);
  Hardswish h;
  EXPECT_TRUE(torch::allclose(h(x), x * torch::clamp(x + 3, 0, 6) / 6));
  torch::Tensor y = x.clone();
  Hardswish inplace(true);
  inplace(y);
  EXPECT_TRUE(torch::equal(y, h(x)));
  std::ostringstream s;
  s << *inplace;
  EXPECT_EQ(s.str(), "heteroq::nn::Hardswish(inplace=true)");
}

// Absent: the constructor's defaults (QKeras's); null: the float function PyTorch uses there,
// written as its name; a name or a spec: that function or quantizer.
TEST(Config, RecurrentActivationSlots) {
  const auto lstm = [](const std::string& config) {
    return module_from_config(
        with_config(R"J("class": "QLSTM", "config": {"input_size": 4, "hidden_size": 3)J" + config +
                    "}"));
  };
  auto by_default = lstm("");
  EXPECT_EQ(to_config(*by_default.ptr()), to_config(QLSTM(4, 3)));
  const auto& o = by_default.get<QLSTM>()->options;
  ASSERT_NE(o.activation().quantizer(), nullptr);
  EXPECT_EQ(o.activation().quantizer()->to_string(), "quantized_tanh(8)");
  EXPECT_EQ(o.recurrent_activation().function(), "hard_sigmoid");
  EXPECT_NE(to_config(*by_default.ptr(), -1)
                .find(R"J("activation":"quantized_tanh(8)","recurrent_activation":"hard_sigmoid")J"),
            std::string::npos);

  auto null = lstm(R"J(, "activation": null, "recurrent_activation": null)J");
  EXPECT_TRUE(null.get<QLSTM>()->options.activation().empty());
  EXPECT_TRUE(null.get<QLSTM>()->options.recurrent_activation().empty());
  EXPECT_NE(to_config(*null.ptr(), -1).find(R"J("activation":"tanh","recurrent_activation":"sigmoid")J"),
            std::string::npos);
  const QLSTM null_direct(QLSTMOptions(4, 3).activation(nullptr).recurrent_activation(nullptr));
  EXPECT_EQ(to_config(*null.ptr()), to_config(null_direct));

  auto named = lstm(R"J(, "activation": "quantized_tanh(6,use_real_tanh=True)", "recurrent_activation": "relu")J");
  EXPECT_EQ(named.get<QLSTM>()->options.recurrent_activation().function(), "relu");
  const QLSTM named_direct(QLSTMOptions(4, 3).activation("quantized_tanh(6,use_real_tanh=True)")
                               .recurrent_activation("relu"));
  EXPECT_EQ(to_config(*named.ptr()), to_config(named_direct));
  // The same outputs as the layers built directly (the slots act as written).
  const torch::Tensor x = torch::randn({5, 2, 4});
  for (auto [config, direct] : {std::make_pair(null, torch::nn::AnyModule(null_direct)),
                                std::make_pair(named, torch::nn::AnyModule(named_direct))}) {
    copy_state(*direct.ptr(), *config.ptr());
    const auto want = run(direct, x);
    const auto got = run(config, x);
    ASSERT_EQ(got.size(), 3u);
    for (size_t i = 0; i < got.size(); ++i) EXPECT_TRUE(torch::equal(got[i], want[i]));
  }
}

TEST(Config, AdaptiveActivationWritesItsStepCount) {
  QAdaptiveActivation act("quantized_bits", 8);
  EXPECT_NE(to_config(act, -1).find(R"J("current_step":-1,)J"), std::string::npos);
  EXPECT_NE(to_config(act, -1).find(R"J("num_channels":null,)J"), std::string::npos);
  const torch::Tensor x = torch::randn({2, 4, 3});
  for (int i = 0; i < 3; ++i) act(x);  // training calls count steps
  EXPECT_NE(to_config(act, -1).find(R"J("current_step":2,)J"), std::string::npos);
  auto copy = module_from_config(to_config(act));
  EXPECT_EQ(copy.get<QAdaptiveActivation>()->step.item<int64_t>(), 2);
  // The constructor's default (none) is the same as -1.
  auto from_null = module_from_config(with_config(R"J("class": "QAdaptiveActivation",
      "config": {"activation": "quantized_relu", "total_bits": 4, "current_step": null})J"));
  EXPECT_EQ(to_config(*from_null.ptr()), to_config(QAdaptiveActivation("quantized_relu", 4)));
}

TEST(Config, RecurrentLayerInASequential) {
  torch::nn::Sequential model;
  model->push_back("rnn", QGRU(QGRUOptions(4, 3).batch_first(true).kernel_quantizer(kQ)));
  torch::nn::Sequential copy = from_config(to_config(model));
  EXPECT_EQ(to_config(copy), to_config(model));
  EXPECT_EQ(copy->named_parameters().keys(),
            (std::vector<std::string>{"rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_ih_l0",
                                      "rnn.bias_hh_l0"}));
  copy_state(*model, *copy);
  using Out = std::tuple<torch::Tensor, torch::Tensor>;
  const torch::Tensor x = torch::randn({2, 5, 4});
  const auto want = model->forward<Out>(x);
  const auto got = copy->forward<Out>(x);
  EXPECT_TRUE(torch::equal(std::get<0>(got), std::get<0>(want)));
  EXPECT_TRUE(torch::equal(std::get<1>(got), std::get<1>(want)));
}

// ------------------------------------------------------------------------------------------------
// Errors: the messages of test_config.py (which also checks that C++ and Python agree on every one).

const std::string kBase = R"J({"format": "heteroq.model_config", "version": 1, "class": "Sequential", "layers": [
  {"class": "QLinear", "name": "fc",
   "config": {"in_features": 6, "out_features": 4, "kernel_quantizer": "quantized_bits(4,0,alpha=1)"}},
  {"class": "QActivation", "name": "act", "config": {"activation": "quantized_relu(4,1)"}},
  {"class": "Sequential", "name": "head", "layers": [
    {"class": "QConv2d", "name": "conv", "config": {"in_channels": 1, "out_channels": 2, "kernel_size": KS}}
  ]}
]})J";

std::string base(const std::string& from, const std::string& to) {
  std::string s = kBase;
  if (from.empty()) return s;
  const auto at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return s.replace(at, from.size(), to);
}

std::string valid(const std::string& from = "", const std::string& to = "") {
  std::string s = base(from, to);
  const auto ks = s.find("KS");
  return ks == std::string::npos ? s : s.replace(ks, 2, "3");
}

TEST(ConfigErrors, NameTheJsonPath) {
  EXPECT_NO_THROW(from_config(valid()));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {valid(R"J("format": "heteroq.model_config", )J", ""),
       R"J(format: missing (expected "heteroq.model_config"))J"},
      {valid(R"J("format": "heteroq.model_config")J", R"J("format": "keras")J"),
       R"J(format: expected "heteroq.model_config", got "keras")J"},
      {valid(R"J("version": 1, )J", ""), "version: missing (expected 1)"},
      {valid(R"J("version": 1)J", R"J("version": "1")J"), R"J(version: expected an integer, got "1")J"},
      {valid(R"J("version": 1)J", R"J("version": 1.0)J"), "version: expected an integer, got 1.0"},
      {valid(R"J("version": 1)J", R"J("version": 2)J"),
       "version: unsupported version 2 (this heteroq reads version 1)"},
      {valid(R"J("class": "Sequential", "layers": [)J", R"J("layers": [)J"), "class: missing"},
      {valid(R"J("version": 1, )J", R"J("version": 1, "name": "net", )J"),
       "name: unexpected key (expected format, version, class, layers)"},
      {valid(R"J("class": "QLinear")J", R"J("class": "QDense")J"),
       R"J(layers[0].class: unknown class "QDense" (known: AvgPool2d, BatchNorm1d, BatchNorm2d, )J"
       R"J(Conv1d, Conv2d, Dropout, Flatten, Hardswish, Identity, Linear, MaxPool2d, QActivation, )J"
       R"J(QAdaptiveActivation, QAvgPool2d, QBatchNorm1d, QBatchNorm2d, QConv1d, QConv2d, )J"
       R"J(QConv2dBatchNorm, QConvTranspose2d, QDepthwiseConv2d, QGRU, QGlobalAvgPool2d, QLSTM, )J"
       R"J(QLinear, QLinearBatchNorm, QSeparableConv1d, QSeparableConv2d, QSimpleRNN, ReLU, )J"
       R"J(RecurrentOutput, Sequential, Sigmoid, Tanh))J"},
      {valid(R"J("class": "QLinear")J", R"J("class": 5)J"), "layers[0].class: expected a string, got 5"},
      {valid(R"J({"class": "QActivation", "name": "act", "config": {"activation": "quantized_relu(4,1)"}})J", "3"),
       "layers[1]: expected a layer (a JSON object), got 3"},
      {valid(R"J("name": "fc",)J", R"J("name": "fc", "weights": [],)J"),
       "layers[0].weights: unexpected key (expected class, name, config)"},
      {valid(R"J("name": "fc",)J", ""), "layers[0].name: missing"},
      {valid(R"J("name": "fc",)J", R"J("name": "a.b",)J"),
       R"J(layers[0].name: "a.b" is not a valid module name (it must be non-empty and contain no "."))J"},
      {valid(R"J("name": "act")J", R"J("name": "fc")J"),
       R"J(layers[1].name: "fc" is also the name of layers[0])J"},
      {valid(R"J("config": {"activation": "quantized_relu(4,1)"})J", R"J("config": [])J"),
       "layers[1].config: expected an object, got []"},
      {valid(R"J("in_features": 6, )J", ""), "layers[0].config.in_features: missing (QLinear requires it)"},
      {valid(R"J("in_features": 6, )J", R"J("in_features": 6, "units": 4, )J"),
       "layers[0].config.units: unexpected argument (QLinear takes in_features, out_features, bias, "
       "kernel_quantizer, bias_quantizer)"},
      {valid(R"J("in_features": 6)J", R"J("in_features": "6")J"),
       R"J(layers[0].config.in_features: expected an integer >= 1, got "6")J"},
      {valid(R"J("in_features": 6)J", R"J("in_features": 0)J"),
       "layers[0].config.in_features: expected an integer >= 1, got 0"},
      {valid(R"J("in_features": 6)J", R"J("in_features": 9223372036854775808)J"),
       "layers[0].config.in_features: expected an integer >= 1, got 9223372036854775808"},
      {valid(R"J("in_features": 6)J", R"J("in_features": 6, "bias": 1)J"),
       "layers[0].config.bias: expected true or false, got 1"},
      {valid(R"J("kernel_quantizer": "quantized_bits(4,0,alpha=1)")J", R"J("kernel_quantizer": 4)J"),
       "layers[0].config.kernel_quantizer: expected a quantizer spec string or null, got 4"},
      {valid(R"J("activation": "quantized_relu(4,1)")J", R"J("activation": null)J"),
       "layers[1].config.activation: expected a quantizer spec string, got null"},
      {base("KS", "[3]"),
       "layers[2].layers[0].config.kernel_size: expected an integer >= 1 or a list of 2 integers "
       ">= 1, got [3]"},
      {base("KS", R"J(3, "padding": "full")J"),
       R"J(layers[2].layers[0].config.padding: expected an integer >= 0, a list of 2 integers >= 0, )J"
       R"J("same" or "valid", got "full")J"},
      {base("KS", R"J(3, "padding_mode": "mirror")J"),
       R"J(layers[2].layers[0].config.padding_mode: expected one of "zeros", "reflect", )J"
       R"J("replicate", "circular", got "mirror")J"},
      {valid(R"J("class": "QActivation", "name": "act", "config": {"activation": "quantized_relu(4,1)"})J",
             R"J("class": "Dropout", "name": "act", "config": {"p": 1.5})J"),
       "layers[1].config.p: expected a number in [0, 1], got 1.5"},
      {valid(R"J("class": "QActivation", "name": "act", "config": {"activation": "quantized_relu(4,1)"})J",
             R"J("class": "BatchNorm1d", "name": "act", "config": {"num_features": 2, "momentum": "0.1"})J"),
       R"J(layers[1].config.momentum: expected a number in [0, 1] or null, got "0.1")J"},
      {valid(R"J("class": "QActivation", "name": "act", "config": {"activation": "quantized_relu(4,1)"})J",
             R"J("class": "Tanh", "name": "act", "config": {"inplace": false})J"),
       "layers[1].config.inplace: unexpected argument (Tanh takes no arguments)"},
      {valid(R"J("class": "QActivation", "name": "act", "config": {"activation": "quantized_relu(4,1)"})J",
             R"J("class": "QLinearBatchNorm", "name": "act", "config": {"in_features": 4,
                 "out_features": 4, "ema_freeze_delay": 1.5})J"),
       "layers[1].config.ema_freeze_delay: expected an integer or null, got 1.5"},
      {valid(R"J("layers": [)J", R"J("layers": {}, "x": [)J"),
       "x: unexpected key (expected format, version, class, layers)"},
      {"[1,2]", "the config must be a JSON object, got [1,2]"},
      {R"J({"format": "heteroq.model_config", "version": 1, "version": 1})J",
       R"J(malformed JSON: duplicate key "version")J"},
  };
  for (const auto& [text, message] : cases) {
    EXPECT_EQ(error_of([&] { module_from_config(text); }), "from_config: " + message) << text;
  }
}

TEST(ConfigErrors, QuantizerSpecsAndLayerValues) {
  const std::string spec_error =
      error_of([] { heteroq::get_quantizer("quantized_bits(4,0"); });
  EXPECT_EQ(error_of([] {
              from_config(valid(R"J("quantized_bits(4,0,alpha=1)")J", R"J("quantized_bits(4,0")J"));
            }),
            "from_config: layers[0].config.kernel_quantizer: " + spec_error);
  // The layer's own checks, after the path and class.
  const std::string groups = error_of([] {
    from_config(base("KS", R"J(3, "groups": 2)J"));
  });
  EXPECT_EQ(groups.rfind("from_config: layers[2].layers[0] (QConv2d): QConv2d: `groups`", 0), 0u)
      << groups;
  const std::string same_stride = error_of([] {
    module_from_config(with_config(R"J("class": "Conv2d", "config": {"in_channels": 1,
        "out_channels": 1, "kernel_size": 3, "stride": 2, "padding": "same"})J"));
  });
  EXPECT_EQ(same_stride.rfind("from_config: Conv2d: ", 0), 0u) << same_stride;
  EXPECT_EQ(same_stride.find("Exception raised from"), std::string::npos);  // no backtrace
  // Malformed JSON.
  EXPECT_EQ(error_of([] { from_config(R"J({"format": )J"); }).rfind("from_config: malformed JSON: ", 0),
            0u);
}

TEST(ConfigErrors, CppConvolutionsPadWithIntegerZeros) {
  EXPECT_EQ(error_of([] {
              module_from_config(with_config(R"J("class": "QConv2d", "config": {"in_channels": 2,
                  "out_channels": 2, "kernel_size": 3, "padding": "same"})J"));
            }),
            R"J(from_config: config.padding: "same" padding is not supported by the C++ QConv2d (use integers))J");
  EXPECT_EQ(error_of([] {
              from_config(base("KS", R"J(3, "padding_mode": "reflect")J"));
            }),
            R"J(from_config: layers[2].layers[0].config.padding_mode: "reflect" is not supported by )J"
            R"J(the C++ QConv2d (only "zeros"))J");
  // LibTorch's own Conv2d takes every padding.
  EXPECT_NO_THROW(module_from_config(with_config(R"J("class": "Conv2d", "config": {"in_channels": 2,
      "out_channels": 2, "kernel_size": 3, "padding": "same", "padding_mode": "reflect"})J")));
}

// The recurrent layers and QAdaptiveActivation: the messages of test_config.py's ERRORS and
// SPEC_ERRORS (there on layers[3] and layers[4] of its BASE).
TEST(ConfigErrors, RecurrentAndAdaptiveLayers) {
  const std::string lstm = R"J("class": "QLSTM", "config": {"input_size": 4, "hidden_size": 3)J";
  const std::string adapt =
      R"J("class": "QAdaptiveActivation", "config": {"activation": "quantized_relu", "total_bits": 8)J";
  const std::string names = R"J("tanh", "sigmoid", "hard_sigmoid", "relu", "linear")J";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"J("class": "QLSTM", "config": {"input_size": 4})J",
       "config.hidden_size: missing (QLSTM requires it)"},
      {lstm + R"J(, "reset_after": true})J",
       "config.reset_after: unexpected argument (QLSTM takes input_size, hidden_size, num_layers, "
       "bias, batch_first, dropout, bidirectional, kernel_quantizer, recurrent_quantizer, "
       "bias_quantizer, state_quantizer, activation, recurrent_activation, unit_forget_bias)"},
      {lstm + R"J(, "num_layers": 0})J", "config.num_layers: expected an integer >= 1, got 0"},
      {lstm + R"J(, "dropout": 2})J", "config.dropout: expected a number in [0, 1], got 2"},
      {lstm + R"J(, "unit_forget_bias": "yes"})J",
       R"J(config.unit_forget_bias: expected true or false, got "yes")J"},
      {lstm + R"J(, "activation": 3})J",
       "config.activation: expected a float activation (" + names +
           "), a quantizer spec string or null, got 3"},
      {lstm + R"J(, "recurrent_activation": ["sigmoid"]})J",
       "config.recurrent_activation: expected a float activation (" + names +
           R"J(), a quantizer spec string or null, got ["sigmoid"])J"},
      {R"J("class": "QAdaptiveActivation", "config": {"total_bits": 8})J",
       "config.activation: missing (QAdaptiveActivation requires it)"},
      {R"J("class": "QAdaptiveActivation", "config": {"activation": "quantized_relu(8,2)", "total_bits": 8})J",
       R"J(config.activation: expected one of "quantized_bits", "quantized_relu", got "quantized_relu(8,2)")J"},
      {R"J("class": "QAdaptiveActivation", "config": {"activation": "quantized_relu", "total_bits": 0})J",
       "config.total_bits: expected an integer >= 1, got 0"},
      {adapt + R"J(, "current_step": 1.5})J", "config.current_step: expected an integer or null, got 1.5"},
      {adapt + R"J(, "quantization_delay": -1})J",
       "config.quantization_delay: expected an integer >= 0, got -1"},
      {adapt + R"J(, "ema_decay": 1.5})J", "config.ema_decay: expected a number in [0, 1], got 1.5"},
      {adapt + R"J(, "num_channels": 0})J", "config.num_channels: expected an integer >= 1 or null, got 0"},
      {adapt + R"J(, "relu_neg_slope": null})J", "config.relu_neg_slope: expected a number, got null"},
      {adapt + R"J(, "relu_upper_bound": "6"})J",
       R"J(config.relu_upper_bound: expected a number or null, got "6")J"},
  };
  for (const auto& [text, message] : cases) {
    EXPECT_EQ(error_of([&] { module_from_config(with_config(text)); }), "from_config: " + message)
        << text;
  }
  // A string that is neither a float activation nor a valid spec: the parser's words follow.
  for (const std::string spec : {"tanhh", "quantized_sigmoid(0)", "quantized_tanh(8"}) {
    std::string parser;
    try {
      heteroq::get_quantizer(spec);
    } catch (const std::invalid_argument& e) {
      parser = e.what();
    }
    ASSERT_FALSE(parser.empty()) << spec;
    const std::string quoted = "\"" + spec + "\"";
    EXPECT_EQ(error_of([&] { module_from_config(with_config(lstm + R"J(, "activation": )J" + quoted + "}")); }),
              "from_config: config.activation: " + quoted + " is neither a float activation (" +
                  names + ") nor a quantizer spec: " + parser);
    EXPECT_EQ(error_of([&] {
                module_from_config(with_config(lstm + R"J(, "recurrent_activation": )J" + quoted + "}"));
              }),
              "from_config: config.recurrent_activation: " + quoted +
                  " is neither a float activation (" + names + ") nor a quantizer spec: " + parser);
  }
  // The layers' own checks, after the class.
  const std::string weights = error_of([&] {
    module_from_config(with_config(lstm + R"J(, "kernel_quantizer": "quantized_relu(4,0)"})J"));
  });
  EXPECT_EQ(weights.rfind("from_config: QLSTM: QLSTM: `kernel_quantizer` = quantized_relu(4,0) "
                          "cannot hold negative weights",
                          0),
            0u)
      << weights;
  const std::string channels =
      error_of([&] { module_from_config(with_config(adapt + R"J(, "per_channel": true})J")); });
  EXPECT_EQ(channels.rfind("from_config: QAdaptiveActivation: QAdaptiveActivation: per_channel=", 0),
            0u)
      << channels;
}

struct MyBlockImpl : torch::nn::Cloneable<MyBlockImpl> {
  void reset() override {}
  torch::Tensor forward(const torch::Tensor& x) { return x; }
};
TORCH_MODULE(MyBlock);

struct MyLinearImpl : QLinearImpl {  // a subclass may change forward(): not a QLinear
  using QLinearImpl::QLinearImpl;
};

TEST(ConfigErrors, ToConfigNamesTheModule) {
  torch::nn::Sequential model;
  model->push_back("fc", QLinear(2, 2));
  model->push_back("body", NestedSequential(torch::nn::ReLU(), MyBlock()));
  const std::string error = error_of([&] { to_config(model); });
  EXPECT_EQ(error.rfind("to_config: module 'body.1' has class ", 0), 0u) << error;
  EXPECT_NE(error.find("MyBlockImpl, which heteroq's model config does not describe (supported: "
                       "heteroq::nn::config_classes())"),
            std::string::npos)
      << error;
  EXPECT_EQ(error_of([] { to_config(MyBlock()); }).rfind("to_config: the model has class ", 0), 0u);
  EXPECT_EQ(error_of([] { to_config(*std::make_shared<MyLinearImpl>(2, 2)); })
                .rfind("to_config: the model has class ", 0),
            0u);
  EXPECT_EQ(error_of([] { to_config(torch::nn::ModuleList(torch::nn::ReLU())); })
                .rfind("to_config: the model has class torch::nn::ModuleList", 0),
            0u);
}

TEST(ConfigErrors, ToConfigRejectsSharedModules) {
  torch::nn::Linear fc(2, 2);
  torch::nn::Sequential model;
  model->push_back("a", fc);
  model->push_back("b", NestedSequential(fc));
  EXPECT_EQ(error_of([&] { to_config(model); }),
            "to_config: module 'b.0' is the same module as 'a': a config cannot express shared "
            "modules");
}

TEST(ConfigErrors, ToConfigRejectsValuesTheFormatCannotHold) {
  torch::nn::Dropout d(0.5);
  d->options.p(std::nan(""));
  EXPECT_EQ(error_of([&] { to_config(d); }),
            "to_config: the model (Dropout): p: expected a number in [0, 1], got null");
}

}  // namespace
