// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// print_qstats: QKeras's operand modes, operation table and names; operation counts, weight bits,
// totals and accumulator ranges of small models against values computed here from the formulas;
// errors. tests/python/test_qstats.py checks the same models in Python and compares the numbers
// with the ones this binary writes (QStatsCrossLanguage).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "heteroq/heteroq.h"

namespace {

using heteroq::cost::AccumulatorStats;
using heteroq::cost::LayerKind;
using heteroq::cost::OperandMode;
using heteroq::cost::OperandType;
using heteroq::cost::QStats;
using namespace heteroq::nn;  // NOLINT

const char* kW6 = "quantized_bits(6,0,alpha=1)";
const char* kW4 = "quantized_bits(4,0,alpha=1)";
const char* kB8 = "quantized_bits(8,3,alpha=1)";

// ---- deterministic parameters, the same formula in tests/python/test_qstats.py ----

torch::Tensor pattern(int64_t n, int64_t a, int64_t b, int64_t m, int64_t offset, double scale,
                      double shift = 0.0) {
  const torch::Tensor f = torch::arange(n, torch::kLong);
  return ((f * a + b).remainder(m) - offset).to(torch::kFloat) / scale + shift;
}

// By the last component of the tensor's name: weights in {-6..6}/8, biases in {-3..3}/16, batch
// norm statistics positive where they must be; a recurrent layer's weight_ih_l0, bias_hh_l1, ...
// shifted by the parameter's index k, so that no two are equal.
void fill_deterministic(torch::nn::Module& model) {
  torch::NoGradGuard no_grad;
  const auto fill = [](const std::string& name, torch::Tensor& t, int64_t k) {
    const std::string role =
        name.substr(name.rfind('.') == std::string::npos ? 0 : name.rfind('.') + 1);
    const int64_t n = t.numel();
    torch::Tensor v;
    if (role == "weight") {
      v = pattern(n, 7, 3, 13, 6, 8);
    } else if (role.rfind("weight_", 0) == 0) {
      v = pattern(n, 7, 3 + k, 13, 6, 8);
    } else if (role.rfind("bias_", 0) == 0) {
      v = pattern(n, 5, 1 + k, 7, 3, 16);
    } else if (role == "bias" || role == "beta") {
      v = pattern(n, 5, 1, 7, 3, 16);
    } else if (role == "gamma") {
      v = pattern(n, 3, 0, 5, 0, 4, 0.5);
    } else if (role == "running_mean") {
      v = pattern(n, 1, 0, 5, 2, 4);
    } else if (role == "running_var") {
      v = pattern(n, 1, 0, 3, 0, 4, 0.5);
    } else {
      return;
    }
    t.copy_(v.reshape(t.sizes()));
  };
  int64_t k = 0;
  for (auto& p : model.named_parameters()) fill(p.key(), p.value(), k++);
  for (auto& b : model.named_buffers()) fill(b.key(), b.value(), 0);
}

// ---- the three models, built identically in tests/python/test_qstats.py ----

// QKeras's jet-tagging MLP 16-64-32-32-5.
torch::nn::Sequential jet_mlp() {
  torch::nn::Sequential m;
  const std::vector<std::pair<int64_t, int64_t>> sizes = {{16, 64}, {64, 32}, {32, 32}, {32, 5}};
  for (size_t i = 0; i < sizes.size(); ++i) {
    m->push_back(QDense(
        QLinearOptions(sizes[i].first, sizes[i].second).kernel_quantizer(kW6).bias_quantizer(kW6)));
    if (i + 1 < sizes.size()) m->push_back(QActivation("quantized_relu(6)"));
  }
  fill_deterministic(*m);
  return m;
}

torch::nn::Sequential small_cnn() {
  torch::nn::Sequential m(
      QConv2d(QConv2dOptions(3, 8, 3).padding(1).kernel_quantizer(kW4).bias_quantizer(kB8)),
      QBatchNorm2d(QBatchNormOptions(8)
                       .gamma_quantizer("quantized_relu_po2(6,2048)")
                       .beta_quantizer("quantized_po2(5)")),
      QActivation("quantized_relu(4,2)"),
      QDepthwiseConv2d(
          QDepthwiseConv2dOptions(8, 3).depth_multiplier(2).depthwise_quantizer(kW4).bias_quantizer(
              kB8)),
      QActivation(kW4),
      QSeparableConv2d(QSeparableConv2dOptions(16, 12, 3)
                           .depthwise_quantizer(kW4)
                           .pointwise_quantizer(kW6)
                           .bias_quantizer(kB8)),
      QActivation("quantized_relu(6,0)"),
      QAvgPool2d(QAvgPool2dOptions(2)
                     .average_quantizer("quantized_bits(8,0,alpha=1)")
                     .activation("quantized_relu(4,0)")),
      torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(2)),
      QConv2dBatchNorm(QConv2dBatchNormOptions(12, 6, 1).kernel_quantizer(kW6).bias_quantizer(
          "quantized_bits(10,4,alpha=1)")),
      QGlobalAvgPool2d(), torch::nn::Linear(6, 3));
  fill_deterministic(*m);
  return m;
}

// Powers of two, ternary and binary operands (QKeras's wx_table off the diagonal).
torch::nn::Sequential po2_mix() {
  torch::nn::Sequential m(
      QDense(QLinearOptions(8, 16)
                 .kernel_quantizer("quantized_po2(4,1)")
                 .bias_quantizer("quantized_po2(4,8)")),
      QActivation("quantized_relu_po2(4,4)"),
      QDense(QLinearOptions(16, 16).kernel_quantizer("ternary(alpha=1)")),
      QActivation("binary(alpha=1)"),
      QDense(QLinearOptions(16, 8).kernel_quantizer("binary(alpha=1)")),
      QActivation("quantized_po2(4)"),
      QDense(QLinearOptions(8, 4).kernel_quantizer("quantized_po2(4,1)")),
      QActivation("quantized_relu(1,1)"),
      QDense(QLinearOptions(4, 4).kernel_quantizer("quantized_bits(2,1,alpha=1)")),
      QActivation("quantized_bits(4,2,alpha=1)"), QDense(QLinearOptions(4, 2)));  // float weights
  fill_deterministic(*m);
  return m;
}

// The 1-D and dense variants: QConv1d, QBatchNorm1d, QSeparableConv1d, QLinearBatchNorm.
torch::nn::Sequential one_d() {
  torch::nn::Sequential m(
      QConv1d(QConv1dOptions(2, 4, 3).kernel_quantizer(kW4).bias_quantizer(kB8)),
      QBatchNorm1d(QBatchNormOptions(4).inverse_quantizer("quantized_bits(8,3,alpha=1)")),
      QActivation("quantized_relu(4,1)"),
      QSeparableConv1d(QSeparableConv1dOptions(4, 6, 3)
                           .depth_multiplier(2)
                           .depthwise_quantizer("quantized_po2(4,1)")
                           .pointwise_quantizer(kW4)),
      QActivation("ternary(alpha=1)"), torch::nn::Flatten(),
      QLinearBatchNorm(QLinearBatchNormOptions(36, 3).kernel_quantizer(kW6).bias_quantizer(kB8)));
  fill_deterministic(*m);
  return m;
}

// ---- recurrent models, built identically in tests/python/test_qstats.py (the walk passes a
// recurrent layer's output sequence on) ----

const char* kState = "quantized_bits(8,2,alpha=1)";

// QLSTM 8 -> 16 on (L, N, 8), no state quantizer: its recurrence and output are float.
torch::nn::Sequential lstm_model() {
  torch::nn::Sequential m(
      QLSTM(QLSTMOptions(8, 16).kernel_quantizer(kW6).recurrent_quantizer(kW4).bias_quantizer(kB8)),
      QActivation("quantized_relu(4)"));
  fill_deterministic(*m);
  return m;
}

// A bidirectional 2-layer QGRU 4 -> 6 (x 2) on (N, L, 4) with a state quantizer, then a head on
// every step.
torch::nn::Sequential gru_model() {
  torch::nn::Sequential m(QGRU(QGRUOptions(4, 6)
                                   .num_layers(2)
                                   .bidirectional(true)
                                   .batch_first(true)
                                   .kernel_quantizer(kW6)
                                   .recurrent_quantizer(kW4)
                                   .bias_quantizer(kB8)
                                   .state_quantizer(kState)),
                          QActivation("quantized_relu(4)"),
                          QDense(QLinearOptions(12, 3).kernel_quantizer(kW6)));
  fill_deterministic(*m);
  return m;
}

// QSimpleRNN 6 -> 10 on (L, N, 6) without bias: its state and output have its activation's type.
torch::nn::Sequential rnn_model() {
  torch::nn::Sequential m(QSimpleRNN(QSimpleRNNOptions(6, 10)
                                         .bias(false)
                                         .kernel_quantizer(kW6)
                                         .recurrent_quantizer(kW4)
                                         .activation("quantized_tanh(6)")),
                          QActivation("quantized_relu(4)"));
  fill_deterministic(*m);
  return m;
}

// ---- expectations from the formulas ----

// The accumulator of a layer with quantized kernel `w` (out, ...) and bias `b` for inputs in
// [lo, hi]: per output channel max = sum_{w>0} w hi + sum_{w<0} w lo + b (min symmetric), the
// input range widened to contain 0.
AccumulatorStats expected_accumulator(const torch::Tensor& w, const torch::Tensor& b, double lo,
                                      double hi) {
  lo = std::min(lo, 0.0);
  hi = std::max(hi, 0.0);
  const torch::Tensor k = w.to(torch::kDouble).reshape({w.size(0), -1});
  const torch::Tensor p = k.clamp_min(0).sum(1), n = k.clamp_max(0).sum(1);
  const torch::Tensor c = b.defined() ? b.to(torch::kDouble) : torch::zeros_like(p);
  AccumulatorStats a;
  a.max = (p * hi + n * lo + c).max().item<double>();
  a.min = (p * lo + n * hi + c).min().item<double>();
  a.bits = static_cast<int64_t>(std::ceil(std::log2(std::max(std::fabs(a.min), std::fabs(a.max)))));
  return a;
}

void expect_accumulator(const heteroq::cost::LayerStats& l, const AccumulatorStats& e) {
  ASSERT_TRUE(l.accumulator.has_value()) << l.name;
  EXPECT_DOUBLE_EQ(l.accumulator->min, e.min) << l.name;
  EXPECT_DOUBLE_EQ(l.accumulator->max, e.max) << l.name;
  EXPECT_EQ(l.accumulator->bits, e.bits) << l.name;
}

torch::Tensor q(const std::string& spec, const torch::Tensor& t) {
  return heteroq::get_quantizer(spec)->forward(t);
}

const heteroq::cost::LayerStats& layer(const QStats& s, const std::string& name) {
  for (const auto& l : s.layers) {
    if (l.name == name) return l;
  }
  throw std::runtime_error("no layer " + name);
}

int64_t parameter_count(torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

// relu(bits, 0): values k 2^-bits, k = 0 .. 2^bits - 1.
double relu_top(int bits) { return 1.0 - std::ldexp(1.0, -bits); }

// ---------------------------------------------------------------------------------------------

TEST(QStatsModes, OperandTypesAsQKeras) {
  const std::vector<std::tuple<std::string, OperandMode, int64_t, bool>> cases = {
      {"quantized_bits(6,0,alpha=1)", OperandMode::kFixed, 6, true},
      {"quantized_bits(4,0,alpha='auto_po2')", OperandMode::kFixed, 4, true},
      {"quantized_bits(2,1)", OperandMode::kTernary, 2, true},
      {"quantized_bits(2,1,0,0)", OperandMode::kFixed, 2, false},  // keep_negative=0: unsigned
      {"quantized_bits(4,2,0,0)", OperandMode::kFixed, 4, false},
      {"quantized_relu(6)", OperandMode::kFixed, 6, false},
      {"quantized_relu(1,1)", OperandMode::kBinary01, 1, false},
      {"quantized_relu(4,0,0,0.25)", OperandMode::kFixed, 4, true},  // negative slope: signed
      {"quantized_tanh(4)", OperandMode::kFixed, 4, true},
      {"quantized_ulaw(2,1)", OperandMode::kTernary, 2, true},
      {"quantized_ulaw(8)", OperandMode::kFixed, 8, true},
      {"quantized_sigmoid(4)", OperandMode::kFixed, 4, false},
      {"quantized_hswish(5)", OperandMode::kFixed, 5, true},
      {"quantized_po2(4)", OperandMode::kPo2, 4, true},
      {"quantized_relu_po2(4)", OperandMode::kPo2, 4, false},
      {"quantized_relu_po2(4,None,0.5)", OperandMode::kPo2, 4, true},
      {"binary", OperandMode::kBinary, 1, true},
      {"binary(1)", OperandMode::kBinary01, 1, false},  // use_01
      {"stochastic_binary", OperandMode::kBinary, 1, true},
      {"bernoulli", OperandMode::kBinary01, 1, false},
      {"ternary", OperandMode::kTernary, 2, true},
      {"stochastic_ternary(alpha='auto')", OperandMode::kTernary, 2, true},
  };
  for (const auto& [spec, mode, bits, is_signed] : cases) {
    const OperandType t = heteroq::cost::operand_type(heteroq::get_quantizer(spec));
    EXPECT_EQ(t.mode, mode) << spec;
    EXPECT_EQ(t.bits, bits) << spec;
    EXPECT_EQ(t.is_signed, is_signed) << spec;
  }
  EXPECT_EQ(heteroq::cost::operand_type(nullptr), (OperandType{OperandMode::kFloat, 32, true}));
  EXPECT_STREQ(heteroq::cost::operand_mode_name(OperandMode::kBinary01), "binary01");
}

TEST(QStatsModes, OperationTypeTableIsQKeras) {
  // QKeras estimate.py, get_operation_type: wx_table[weight mode][input mode].
  const char* table[6][6] = {
      {"mult", "barrel", "mux", "mux", "mux", "fmult"},
      {"barrel", "adder", "mux", "xor", "mux", "fmult"},
      {"mux", "mux", "mux", "mux", "xor", "fmult"},
      {"mux", "xor", "mux", "xor", "xor", "fmult"},
      {"mux", "mux", "xor", "xor", "xor", "fmult"},
      {"fmult", "fmult", "fmult", "fmult", "fmult", "fmult"},
  };
  for (int w = 0; w < 6; ++w) {
    for (int x = 0; x < 6; ++x) {
      EXPECT_STREQ(heteroq::cost::op_type_name(heteroq::cost::op_type(static_cast<OperandMode>(w),
                                                                      static_cast<OperandMode>(x))),
                   table[w][x])
          << w << " " << x;
    }
  }
  EXPECT_THROW(heteroq::cost::op_type(static_cast<OperandMode>(6), OperandMode::kFixed),
               heteroq::InvalidArgument);
}

TEST(QStatsModes, OperationNames) {
  using heteroq::cost::operation_name;
  const OperandType w6{OperandMode::kFixed, 6, true}, x8{OperandMode::kFixed, 8, false};
  const OperandType u4{OperandMode::kFixed, 4, false}, po2{OperandMode::kPo2, 4, true};
  EXPECT_EQ(operation_name(w6, x8), "smult_6_8");
  EXPECT_EQ(operation_name(u4, u4), "umult_4_4");
  EXPECT_EQ(operation_name(po2, x8), "sbarrel_4_8");
  EXPECT_EQ(operation_name(w6, OperandType{}), "sfmult_6_32");
  // An unknown input: QKeras's "null" with bits -1 and sign -1 (google/qkeras#39: unull_4_-1).
  EXPECT_EQ(operation_name(OperandType{OperandMode::kFixed, 4, true}, std::nullopt), "unull_4_-1");
}

TEST(QStats, JetMlpCountsBitsAndAccumulators) {
  auto model = jet_mlp();
  const QStats s = heteroq::cost::qstats(model, {1, 16});
  ASSERT_EQ(s.layers.size(), 7u);
  // Layer i: QDense(in, out), its input the default quantized_relu(8,0), then quantized_relu(6,0).
  const std::vector<std::tuple<std::string, int64_t, int64_t, std::string>> dense = {
      {"0", 16, 64, "smult_6_8"},
      {"2", 64, 32, "smult_6_6"},
      {"4", 32, 32, "smult_6_6"},
      {"6", 32, 5, "smult_6_6"}};
  int64_t bits = 0, ops68 = 0, ops66 = 0;
  for (const auto& [name, in, out, op] : dense) {
    const auto& l = layer(s, name);
    EXPECT_EQ(l.type, "QLinear");
    EXPECT_EQ(l.kind, LayerKind::kDense);
    ASSERT_EQ(l.operations.size(), 1u);
    EXPECT_EQ(l.operations[0].name, op);
    EXPECT_EQ(l.operations[0].count, in * out);
    EXPECT_EQ(l.operations[0].type, heteroq::cost::OpType::kMult);
    ASSERT_EQ(l.weights.size(), 2u);
    EXPECT_EQ(l.weights[0].name, "weights");
    EXPECT_EQ(l.weights[0].count, in * out);
    EXPECT_EQ(l.weights[0].bits, 6);
    EXPECT_EQ(l.weights[0].quantizer, "quantized_bits(6,0,0,alpha=1.0)");
    EXPECT_EQ(l.weights[1].name, "bias");
    EXPECT_EQ(l.weights[1].count, out);
    EXPECT_EQ(l.weights[1].bits, 6);
    EXPECT_EQ(l.parameters, in * out + out);
    bits += 6 * (in * out + out);
    (op == "smult_6_8" ? ops68 : ops66) += in * out;
  }
  EXPECT_EQ(s.total_bits, bits);
  EXPECT_EQ(s.total_bits, 6 * 4389);
  EXPECT_EQ(s.total_parameters, parameter_count(*model));
  EXPECT_EQ(s.total_operations, ops68 + ops66);
  ASSERT_EQ(s.operation_totals.size(), 2u);
  EXPECT_EQ(s.operation_totals[0], std::make_pair(std::string("smult_6_6"), ops66));
  EXPECT_EQ(s.operation_totals[1], std::make_pair(std::string("smult_6_8"), ops68));
  EXPECT_EQ(ops66, 64 * 32 + 32 * 32 + 32 * 5);

  // Types propagate: activations follow each QDense, whose output is float.
  EXPECT_EQ(*layer(s, "0").input_quantizer, "quantized_relu(8,0)");
  EXPECT_EQ(*layer(s, "1").input_quantizer, "");
  EXPECT_EQ(layer(s, "1").input, OperandType{});
  EXPECT_EQ(*layer(s, "2").input_quantizer, "quantized_relu(6,0)");
  EXPECT_EQ(layer(s, "2").input, (OperandType{OperandMode::kFixed, 6, false}));
  EXPECT_EQ(layer(s, "3").quantizers.at(0),
            std::make_pair(std::string("activation"), std::string("quantized_relu(6,0)")));

  // Accumulators: inputs in [0, 255/256] (quantized_relu(8,0)), then [0, 63/64].
  for (const auto& [name, in, out, op] : dense) {
    auto fc = model[std::stoul(name)]->as<QLinearImpl>();
    const double hi = relu_top(name == "0" ? 8 : 6);
    const auto e = expected_accumulator(q(kW6, fc->weight), q(kW6, fc->bias), 0.0, hi);
    expect_accumulator(layer(s, name), e);
    // The maximum is reached: x = hi where the kernel is positive.
    const torch::Tensor qw = q(kW6, fc->weight);
    const torch::Tensor y = torch::linear(
        torch::where(qw > 0, torch::full_like(qw, hi), torch::zeros_like(qw)).view({out, 1, in}),
        qw, q(kW6, fc->bias));  // row o: the input that maximizes channel o
    const torch::Tensor diag = y.squeeze(1).diagonal();
    EXPECT_NEAR(diag.max().item<double>(), e.max, 1e-6);
  }
  EXPECT_EQ(layer(s, "0").accumulator->bits,
            static_cast<int64_t>(std::ceil(std::log2(std::max(
                std::fabs(layer(s, "0").accumulator->min), layer(s, "0").accumulator->max)))));

  // The counts are per sample, the model is left as it was.
  model->train();
  const torch::Tensor w0 = model[0]->as<QLinearImpl>()->weight.clone();
  const QStats s8 = heteroq::cost::qstats(model, {8, 16});
  EXPECT_EQ(s8.total_operations, s.total_operations);
  EXPECT_EQ(s8.total_bits, s.total_bits);
  EXPECT_TRUE(model->is_training());
  EXPECT_TRUE(model[0]->is_training());
  EXPECT_TRUE(torch::equal(model[0]->as<QLinearImpl>()->weight, w0));
}

TEST(QStats, PrintsQKerasTables) {
  auto model = jet_mlp();
  std::ostringstream os;
  const QStats s = heteroq::cost::print_qstats(model, {1, 16}, "quantized_relu(8,0)", os);
  const std::string out = os.str();
  EXPECT_EQ(out, s.to_string());
  // QKeras's layout: "    {:30}: {:5} ({})", the count as a string (left-aligned).
  EXPECT_NE(out.find("Number of operations in model:\n    0                             : 1024  "
                     "(smult_6_8)\n"),
            std::string::npos);
  EXPECT_NE(out.find("Number of operation types in model:\n    smult_6_6                     : "
                     "3232\n"),
            std::string::npos);
  EXPECT_NE(out.find("    0_weights                      : 1024  (6-bit unit)\n"),
            std::string::npos);
  EXPECT_NE(out.find("    Total Bits                     : 26334\n"), std::string::npos);
  EXPECT_NE(out.find("    Total Parameters               :  4389\n"), std::string::npos);
  EXPECT_NE(out.find("        kernel_quantizer = quantized_bits(6,0,0,alpha=1.0)\n"),
            std::string::npos);
  std::ostringstream streamed;
  streamed << s;
  EXPECT_EQ(streamed.str(), out);
}

TEST(QStats, SmallCnnConvDepthwiseSeparablePoolingFolded) {
  auto model = small_cnn();
  const QStats s = heteroq::cost::qstats(model, {2, 3, 12, 12});
  ASSERT_EQ(s.layers.size(), 12u);
  const auto op = [&](const std::string& name, size_t i = 0) {
    return layer(s, name).operations.at(i);
  };
  // QConv2d 3->8, 3x3, padding 1 on 12x12: Ho Wo Co Kh Kw Ci.
  EXPECT_EQ(op("0").name, "smult_4_8");
  EXPECT_EQ(op("0").count, 12 * 12 * 8 * 3 * 3 * 3);
  // The batch norm and the activation pass on; the depthwise conv sees quantized_relu(4,2).
  EXPECT_EQ(*layer(s, "1").input_quantizer, "");
  EXPECT_EQ(layer(s, "1").quantizers.size(), 5u);
  EXPECT_EQ(layer(s, "1").quantizers[0].second, "quantized_relu_po2(6,2048.0)");
  EXPECT_EQ(layer(s, "1").quantizers[2].second, "");
  EXPECT_TRUE(layer(s, "1").operations.empty());
  EXPECT_EQ(layer(s, "1").parameters, 16);
  // QDepthwiseConv2d 8 channels x 2, 3x3 on 12x12 -> 10x10: Kh Kw Ho Wo Ci dm.
  EXPECT_EQ(layer(s, "3").type, "QDepthwiseConv2d");
  EXPECT_EQ(layer(s, "3").quantizers[0].first, "depthwise_quantizer");
  EXPECT_EQ(op("3").name, "smult_4_4");
  EXPECT_EQ(op("3").count, 3 * 3 * 10 * 10 * 8 * 2);
  EXPECT_EQ(layer(s, "3").weights[0].count, 16 * 9);
  EXPECT_EQ(layer(s, "3").weights[1].count, 16);
  EXPECT_EQ(layer(s, "3").weights[1].bits, 8);
  // QSeparableConv2d 16 -> 12, 3x3 on 10x10 -> 8x8: depthwise Kh Kw Ho Wo Ci, pointwise
  // Ho Wo Co Ci; both take the layer's input type (QKeras).
  const auto& sep = layer(s, "5");
  ASSERT_EQ(sep.operations.size(), 2u);
  EXPECT_EQ(sep.operations[0].part, "depthwise");
  EXPECT_EQ(sep.operations[0].name, "smult_4_4");
  EXPECT_EQ(sep.operations[0].count, 3 * 3 * 8 * 8 * 16);
  EXPECT_EQ(sep.operations[1].part, "pointwise");
  EXPECT_EQ(sep.operations[1].name, "smult_6_4");
  EXPECT_EQ(sep.operations[1].count, 8 * 8 * 12 * 16);
  ASSERT_EQ(sep.weights.size(), 3u);
  EXPECT_EQ(sep.weights[0].name, "weights_0");
  EXPECT_EQ(sep.weights[0].count, 16 * 9);
  EXPECT_EQ(sep.weights[0].bits, 4);
  EXPECT_EQ(sep.weights[1].name, "weights_1");
  EXPECT_EQ(sep.weights[1].count, 12 * 16);
  EXPECT_EQ(sep.weights[1].bits, 6);
  EXPECT_EQ(sep.weights[2].count, 12);
  EXPECT_EQ(sep.parameters, 16 * 9 + 12 * 16 + 12);
  // QAvgPool2d's activation quantizer types its output, MaxPool2d passes it to the folded conv.
  EXPECT_EQ(*layer(s, "7").input_quantizer, "quantized_relu(6,0)");
  EXPECT_EQ(*layer(s, "8").input_quantizer, "quantized_relu(4,0)");
  EXPECT_EQ(layer(s, "8").type, "MaxPool2d");
  EXPECT_EQ(op("9").name, "smult_6_4");
  EXPECT_EQ(op("9").count, 2 * 2 * 6 * 12);
  EXPECT_EQ(layer(s, "9").weights[1].count, 6);  // the folded bias
  EXPECT_EQ(layer(s, "9").weights[1].bits, 10);
  EXPECT_EQ(layer(s, "9").parameters, 6 * 12 + 6 + 6 + 6);
  // The global pooling passes the folded conv's float output on to the float Linear.
  EXPECT_EQ(layer(s, "10").output_shape, (std::vector<int64_t>{2, 6}));
  EXPECT_EQ(op("11").name, "sfmult_32_32");
  EXPECT_EQ(op("11").count, 18);
  EXPECT_FALSE(layer(s, "11").accumulator.has_value());
  EXPECT_EQ(layer(s, "11").weights[0].bits, 32);

  int64_t bits = 0;
  for (const auto& l : s.layers) {
    for (const auto& w : l.weights) bits += w.count * w.bits;
  }
  EXPECT_EQ(s.total_bits, bits);
  EXPECT_EQ(s.total_bits, 216 * 4 + 8 * 8 + 144 * 4 + 16 * 8 + 144 * 4 + 192 * 6 + 12 * 8 + 72 * 6 +
                              6 * 10 + 18 * 32 + 3 * 32);
  EXPECT_EQ(s.total_parameters, parameter_count(*model));

  // Accumulators.
  auto conv = model[0]->as<QConv2dImpl>();
  expect_accumulator(layer(s, "0"), expected_accumulator(q(kW4, conv->weight), q(kB8, conv->bias),
                                                         0.0, relu_top(8)));
  auto dw = model[3]->as<QDepthwiseConv2dImpl>();
  // quantized_relu(4,2): step 2^(2-4), top 4 - 1/4.
  expect_accumulator(layer(s, "3"), expected_accumulator(q(kW4, dw->conv->weight),
                                                         q(kB8, dw->conv->bias), 0.0, 3.75));
  auto folded = model[9]->as<QConv2dBatchNormImpl>();
  const auto fw = folded->get_folded_weights();
  expect_accumulator(layer(s, "9"),
                     expected_accumulator(q(kW6, fw[0]), q("quantized_bits(10,4,alpha=1)", fw[1]),
                                          0.0, relu_top(4)));
  // Separable: each depthwise channel j lies in [lo_j, hi_j] for inputs in [-1, 7/8]
  // (quantized_bits(4,0)); the pointwise sums take each channel's extreme by the weight's sign.
  auto sp = model[5]->as<QSeparableConv2dImpl>();
  const torch::Tensor dk = q(kW4, sp->depthwise->weight).to(torch::kDouble).reshape({16, 9});
  const torch::Tensor lo_j = dk.clamp_min(0).sum(1) * -1.0 + dk.clamp_max(0).sum(1) * 0.875;
  const torch::Tensor hi_j = dk.clamp_min(0).sum(1) * 0.875 + dk.clamp_max(0).sum(1) * -1.0;
  const torch::Tensor pk = q(kW6, sp->pointwise->weight).to(torch::kDouble).reshape({12, 16});
  const torch::Tensor pb = q(kB8, sp->pointwise->bias).to(torch::kDouble);
  double mx = -1e9, mn = 1e9;
  for (int64_t o = 0; o < 12; ++o) {
    double top = pb[o].item<double>(), bottom = top;
    for (int64_t j = 0; j < 16; ++j) {
      const double w = pk[o][j].item<double>();
      top += std::max(w * hi_j[j].item<double>(), w * lo_j[j].item<double>());
      bottom += std::min(w * hi_j[j].item<double>(), w * lo_j[j].item<double>());
    }
    mx = std::max(mx, top);
    mn = std::min(mn, bottom);
  }
  ASSERT_TRUE(sep.accumulator.has_value());
  EXPECT_NEAR(sep.accumulator->max, mx, 1e-9);
  EXPECT_NEAR(sep.accumulator->min, mn, 1e-9);
  EXPECT_EQ(sep.accumulator->bits,
            static_cast<int64_t>(std::ceil(std::log2(std::max(std::fabs(mn), std::fabs(mx))))));
}

TEST(QStats, Po2TernaryBinaryMix) {
  auto model = po2_mix();
  const QStats s = heteroq::cost::qstats(model, {1, 8});
  const std::vector<std::tuple<std::string, std::string, int64_t>> ops = {
      {"0", "sbarrel_4_8", 8 * 16},  // po2 x fixed
      {"2", "smux_2_4", 16 * 16},    // ternary x po2 (relu_po2: unsigned)
      {"4", "sxor_1_1", 16 * 8},     // binary x binary
      {"6", "sadder_4_4", 8 * 4},    // po2 x po2
      {"8", "sxor_2_1", 4 * 4},      // quantized_bits(2,1) (ternary) x quantized_relu(1,1) (0/1)
      {"10", "sfmult_32_4", 4 * 2},  // float weights
  };
  for (const auto& [name, op, count] : ops) {
    ASSERT_EQ(layer(s, name).operations.size(), 1u);
    EXPECT_EQ(layer(s, name).operations[0].name, op) << name;
    EXPECT_EQ(layer(s, name).operations[0].count, count) << name;
  }
  EXPECT_EQ(layer(s, "0").weights[1].bits, 4);
  EXPECT_EQ(layer(s, "2").weights[0].bits, 2);
  EXPECT_EQ(layer(s, "2").weights[1].bits, 32);  // no bias quantizer
  EXPECT_EQ(layer(s, "4").weights[0].bits, 1);
  EXPECT_EQ(layer(s, "10").weights[0].bits, 32);
  EXPECT_EQ(s.operation_totals.size(), 6u);
  // quantized_relu_po2(4,4): values 2^e capped at 4 (its grid's codes reach 2^7).
  auto fc2 = model[2]->as<QLinearImpl>();
  expect_accumulator(layer(s, "2"),
                     expected_accumulator(q("ternary(alpha=1)", fc2->weight), fc2->bias, 0.0, 4.0));
  // binary(alpha=1) inputs: -1 or +1.
  auto fc4 = model[4]->as<QLinearImpl>();
  expect_accumulator(layer(s, "4"),
                     expected_accumulator(q("binary(alpha=1)", fc4->weight), fc4->bias, -1.0, 1.0));
  // quantized_po2(4) (max_value None): exponents up to 3.
  auto fc6 = model[6]->as<QLinearImpl>();
  expect_accumulator(layer(s, "6"), expected_accumulator(q("quantized_po2(4,1)", fc6->weight),
                                                         fc6->bias, -8.0, 8.0));
  // Float weights still bound the accumulator (inputs quantized_bits(4,2): [-4, 3.5]).
  auto fc10 = model[10]->as<QLinearImpl>();
  expect_accumulator(layer(s, "10"), expected_accumulator(fc10->weight, fc10->bias, -4.0, 3.5));
}

TEST(QStats, OneDimensionalAndFoldedDense) {
  auto model = one_d();
  const QStats s = heteroq::cost::qstats(model, {1, 2, 10});
  // QConv1d 2 -> 4, k 3 on 10 -> 8: To Co K Ci.
  EXPECT_EQ(layer(s, "0").operations[0].name, "smult_4_8");
  EXPECT_EQ(layer(s, "0").operations[0].count, 8 * 4 * 3 * 2);
  EXPECT_EQ(layer(s, "1").quantizers[4],
            std::make_pair(std::string("inverse_quantizer"),
                           std::string("quantized_bits(8,3,0,alpha=1.0)")));
  // QSeparableConv1d 4 (x 2) -> 6, k 3 on 8 -> 6: depthwise K To Ci dm, pointwise To Co Ci dm;
  // po2 weights on quantized_relu(4,1) inputs: barrel shifts, then multiplies.
  const auto& sep = layer(s, "3");
  ASSERT_EQ(sep.operations.size(), 2u);
  EXPECT_EQ(sep.operations[0].name, "sbarrel_4_4");
  EXPECT_EQ(sep.operations[0].count, 3 * 6 * 4 * 2);
  EXPECT_EQ(sep.operations[1].name, "smult_4_4");
  EXPECT_EQ(sep.operations[1].count, 6 * 6 * 4 * 2);
  EXPECT_EQ(sep.weights[0].count, 8 * 3);
  EXPECT_EQ(sep.weights[1].count, 6 * 8);
  EXPECT_EQ(sep.weights[2].count, 6);  // the pointwise bias, not quantized
  EXPECT_EQ(sep.weights[2].bits, 32);
  // QLinearBatchNorm 36 -> 3 on ternary inputs: the folded kernel and bias.
  const auto& fc = layer(s, "6");
  EXPECT_EQ(fc.kind, LayerKind::kDense);
  EXPECT_EQ(fc.operations[0].name, "smux_6_2");
  EXPECT_EQ(fc.operations[0].count, 36 * 3);
  EXPECT_EQ(fc.weights[1].count, 3);
  EXPECT_EQ(fc.weights[1].bits, 8);
  EXPECT_EQ(fc.parameters, 36 * 3 + 3 + 3 + 3);
  auto folded = model[6]->as<QLinearBatchNormImpl>();
  const auto fw = folded->get_folded_weights();
  expect_accumulator(fc, expected_accumulator(q(kW6, fw[0]), q(kB8, fw[1]), -1.0, 1.0));
  EXPECT_EQ(s.total_parameters, parameter_count(*model));
}

TEST(QStats, AdaptiveActivationTypesItsOutput) {
  QAdaptiveActivation act(
      QAdaptiveActivationOptions("quantized_relu", 6).per_channel(true).num_channels(3));
  torch::nn::Sequential m(QDense(QLinearOptions(4, 3).kernel_quantizer(kW6)), act,
                          QDense(QLinearOptions(3, 2).kernel_quantizer(kW4)));
  {
    torch::NoGradGuard no_grad;
    act->integer_bits.copy_(torch::tensor({0, 2, 1}, act->integer_bits.options()));
  }
  const QStats s = heteroq::cost::qstats(m, {1, 4});
  EXPECT_EQ(layer(s, "1").kind, LayerKind::kActivation);
  // The widest channel's quantizer: quantized_relu(6,2), values up to 4 - 2^-4.
  EXPECT_EQ(*layer(s, "2").input_quantizer, act->quantizer(1)->to_string());
  EXPECT_EQ(layer(s, "2").operations[0].name, "smult_4_6");
  auto fc = m[2]->as<QLinearImpl>();
  expect_accumulator(layer(s, "2"),
                     expected_accumulator(q(kW4, fc->weight), fc->bias, 0.0, 4.0 - 1.0 / 16));
}

TEST(QStats, FloatAndUnknownInputs) {
  torch::nn::Sequential m(QDense(QLinearOptions(4, 3).kernel_quantizer(kW6)),
                          torch::nn::Functional([](const torch::Tensor& x) { return x * 2; }),
                          QDense(QLinearOptions(3, 2).kernel_quantizer("quantized_bits(4,0)")),
                          QActivation("quantized_relu(3)"), torch::nn::Flatten(),
                          torch::nn::Dropout(0.5),
                          QDense(QLinearOptions(2, 2).kernel_quantizer(kW6)));
  // A float input (no quantizer): QKeras's mode 5.
  const QStats s = heteroq::cost::qstats(m, {1, 4}, QuantizerArg());
  EXPECT_EQ(layer(s, "0").operations[0].name, "sfmult_6_32");
  EXPECT_EQ(layer(s, "0").operations[0].type, heteroq::cost::OpType::kFmult);
  EXPECT_FALSE(layer(s, "0").accumulator.has_value());
  // After a layer heteroq does not know (no parameters), the type is unknown: "null".
  EXPECT_EQ(layer(s, "1").type, "Functional");
  EXPECT_FALSE(layer(s, "2").input.has_value());
  EXPECT_FALSE(layer(s, "2").input_quantizer.has_value());
  EXPECT_EQ(layer(s, "2").operations[0].name, "unull_4_-1");
  EXPECT_FALSE(layer(s, "2").operations[0].type.has_value());
  EXPECT_FALSE(layer(s, "2").accumulator.has_value());
  // Flatten and Dropout pass quantized_relu(3) on.
  EXPECT_EQ(layer(s, "6").operations[0].name, "smult_6_3");
  EXPECT_NE(s.to_string().find("input unknown"), std::string::npos);
  // A user-given input quantizer.
  const QStats s2 = heteroq::cost::qstats(m, {1, 4}, "quantized_bits(4,2,alpha=1)");
  EXPECT_EQ(layer(s2, "0").operations[0].name, "smult_6_4");
  expect_accumulator(layer(s2, "0"),
                     expected_accumulator(q(kW6, m[0]->as<QLinearImpl>()->weight),
                                          m[0]->as<QLinearImpl>()->bias, -4.0, 3.5));
}

struct ScaleImpl : torch::nn::Module {
  ScaleImpl() { w = register_parameter("w", torch::ones({1})); }
  torch::Tensor forward(const torch::Tensor& x) { return x * w; }
  torch::Tensor w;
};
TORCH_MODULE(Scale);

TEST(QStats, BadInputThrowsNamingTheLayer) {
  const auto message = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const heteroq::InvalidArgument& e) {
      return std::string(e.what());
    }
    return std::string("(no exception)");
  };
  torch::nn::Sequential mlp(QDense(QLinearOptions(16, 4).kernel_quantizer(kW6)), Scale());
  // A layer of unknown type with parameters.
  std::string what = message([&] { heteroq::cost::qstats(mlp, {1, 16}); });
  EXPECT_NE(what.find("layer '1' (Scale)"), std::string::npos) << what;
  EXPECT_NE(what.find("not supported"), std::string::npos) << what;
  // A wrong input shape: the forward pass fails in layer 0.
  what = message([&] { heteroq::cost::qstats(mlp, {1, 15}); });
  EXPECT_NE(what.find("layer '0' (QLinear)"), std::string::npos) << what;
  EXPECT_NE(what.find("[1, 15]"), std::string::npos) << what;
  EXPECT_NE(message([&] { heteroq::cost::qstats(mlp, {}); }).find("`input_shape`"),
            std::string::npos);
  EXPECT_NE(message([&] {
              heteroq::cost::qstats(mlp, {0, 16});
            }).find("`input_shape`"),
            std::string::npos);
  // An unbatched input to a convolution (PyTorch runs it, the counts would be wrong).
  torch::nn::Sequential conv(QConv1d(QConv1dOptions(4, 2, 3).kernel_quantizer(kW6)));
  what = message([&] { heteroq::cost::qstats(conv, {4, 20}); });
  EXPECT_NE(what.find("layer '0' (QConv1d)"), std::string::npos) << what;
  EXPECT_NE(what.find("batch"), std::string::npos) << what;
  EXPECT_THROW(heteroq::cost::qstats(torch::nn::Sequential(nullptr), {1}),
               heteroq::InvalidArgument);

  // Hand-made descriptions are checked.
  heteroq::cost::LayerInfo bad;
  bad.name = "fc";
  bad.type = "QLinear";
  bad.kind = LayerKind::kDense;
  bad.in_channels = 4;
  bad.out_channels = 2;
  bad.input_shape = {1, 5};
  bad.output_shape = {1, 2};
  what = message([&] { heteroq::cost::qstats({bad}); });
  EXPECT_NE(what.find("layer 'fc' (QLinear)"), std::string::npos) << what;
  bad.input_shape = {1, 4};
  bad.channel_sums = {{1.0, -1.0, 0.0}};  // one row for two channels
  EXPECT_NE(message([&] { heteroq::cost::qstats({bad}); }).find("channel_sums"), std::string::npos);
  bad.channel_sums.push_back({-1.0, 0.0, 0.0});  // P < 0
  EXPECT_THROW(heteroq::cost::qstats({bad}), heteroq::InvalidArgument);
  EXPECT_THROW(heteroq::cost::layer_kind_from_name("lstm"), heteroq::InvalidArgument);
}

TEST(QStats, TransposedConvAndTorchLayers) {
  // (1, 4, 5, 5) -> transposed 3x3 stride 2 -> (1, 6, 11, 11) -> 3x3 -> (1, 5, 9, 9).
  torch::nn::Sequential t(
      QConvTranspose2d(QConv2dOptions(4, 6, 3).stride(2).groups(2).kernel_quantizer(kW4)),
      QActivation("quantized_relu(4)"),
      torch::nn::Conv2d(torch::nn::Conv2dOptions(6, 5, 3).groups(1)),
      QActivation("quantized_relu(3)"), torch::nn::Flatten(), torch::nn::Linear(5 * 9 * 9, 3));
  fill_deterministic(*t);
  const QStats s = heteroq::cost::qstats(t, {1, 4, 5, 5});
  // Transposed: every input value times (out / groups) * Kh * Kw kernel values.
  EXPECT_EQ(layer(s, "0").kind, LayerKind::kConvTranspose);
  EXPECT_EQ(layer(s, "0").output_shape, (std::vector<int64_t>{1, 6, 11, 11}));
  EXPECT_EQ(layer(s, "0").operations[0].count, 5 * 5 * 4 * (6 / 2) * 9);
  EXPECT_EQ(layer(s, "0").weights[0].count, 4 * 3 * 9);
  EXPECT_EQ(layer(s, "2").operations[0].name, "sfmult_32_4");
  EXPECT_EQ(layer(s, "2").operations[0].count, 9 * 9 * 5 * 6 * 9);
  EXPECT_EQ(layer(s, "4").type, "Flatten");
  EXPECT_EQ(layer(s, "5").operations[0].name, "sfmult_32_3");  // Flatten passes relu(3) on
  EXPECT_EQ(layer(s, "5").operations[0].count, 5 * 9 * 9 * 3);
  // The transposed conv's accumulator: output channel o of group g sums kernel[i, o % 3] over
  // the group's 2 input channels i (an upper bound: not every output sees every tap).
  auto ct = t[0]->as<QConvTranspose2dImpl>();
  const torch::Tensor k = q(kW4, ct->weight);  // (4, 3, 3, 3)
  const torch::Tensor per_out =
      torch::cat({k.slice(0, 0, 2).transpose(0, 1), k.slice(0, 2, 4).transpose(0, 1)}, 0);
  expect_accumulator(layer(s, "0"), expected_accumulator(per_out, ct->bias, 0.0, relu_top(8)));
}

TEST(QStats, ChannelSumsOperatorComposesStages) {
  torch::manual_seed(1);
  // A depthwise stage (3 input channels, 2 outputs each: groups = 3), then a pointwise one.
  const torch::Tensor dw = torch::randn({6, 1, 3, 3}), pw = torch::randn({4, 6, 1, 1});
  const torch::Tensor pb = torch::randn({4});
  const torch::Tensor first = heteroq::cost::accumulator_channel_sums(dw, std::nullopt, 3, false);
  ASSERT_EQ(first.sizes(), torch::IntArrayRef({6, 3}));
  EXPECT_EQ(first.scalar_type(), torch::kDouble);
  const torch::Tensor sums = heteroq::cost::accumulator_channel_sums(pw, pb, 1, false, first);
  // Random inputs in [lo, hi] stay within the composed bounds.
  const double lo = -0.5, hi = 1.5;
  const torch::Tensor x = torch::rand({200, 3, 5, 5}) * (hi - lo) + lo;
  const torch::Tensor y =
      torch::conv2d(torch::conv2d(x, dw, {}, 1, std::vector<int64_t>{0}, 1, 3), pw, pb);
  const torch::Tensor p = sums.select(1, 0), n = sums.select(1, 1), c = sums.select(1, 2);
  const torch::Tensor top = (p * hi + n * lo + c).view({1, 4, 1, 1});
  const torch::Tensor bottom = (p * lo + n * hi + c).view({1, 4, 1, 1});
  EXPECT_TRUE((y.to(torch::kDouble) <= top + 1e-5).all().item<bool>());
  EXPECT_TRUE((y.to(torch::kDouble) >= bottom - 1e-5).all().item<bool>());
  // The first stage has no bias: c is the pointwise bias.
  EXPECT_TRUE(torch::allclose(c, pb.to(torch::kDouble)));
  // Errors name the argument.
  EXPECT_THROW(heteroq::cost::accumulator_channel_sums(torch::randn({4}), std::nullopt, 1, false),
               c10::Error);
  EXPECT_THROW(heteroq::cost::accumulator_channel_sums(dw, torch::randn({5}), 3, false),
               c10::Error);
  EXPECT_THROW(heteroq::cost::accumulator_channel_sums(pw, std::nullopt, 1, false,
                                                       torch::zeros({5, 3}, torch::kDouble)),
               c10::Error);
  EXPECT_THROW(heteroq::cost::accumulator_channel_sums(dw, std::nullopt, 4, false), c10::Error);
}

// ---- recurrent layers ----

using OpRow = std::tuple<std::string, std::string, int64_t>;  // part, name, count

std::vector<OpRow> ops_of(const heteroq::cost::LayerStats& l) {
  std::vector<OpRow> out;
  for (const auto& op : l.operations) out.emplace_back(op.part, op.name, op.count);
  return out;
}

using WeightRow = std::tuple<std::string, int64_t, int64_t>;  // name, count, bits

std::vector<WeightRow> weights_of(const heteroq::cost::LayerStats& l) {
  std::vector<WeightRow> out;
  for (const auto& w : l.weights) out.emplace_back(w.name, w.count, w.bits);
  return out;
}

torch::Tensor param(torch::nn::Module& m, const std::string& name) {
  return m.named_parameters()[name];
}

TEST(QStatsRecurrent, LstmCountsBitsTypesAndAccumulator) {
  auto model = lstm_model();
  const QStats s = heteroq::cost::qstats(model, {5, 2, 8});  // L = 5, N = 2
  ASSERT_EQ(s.layers.size(), 2u);
  const auto& l = layer(s, "0");
  EXPECT_EQ(l.type, "QLSTM");
  EXPECT_EQ(l.kind, LayerKind::kRecurrent);
  EXPECT_EQ(l.output_shape, (std::vector<int64_t>{5, 2, 16}));
  // T = 5, G = 4, H = 16, I = 8: the input kernel T G H I on quantized_relu(8,0); the recurrent
  // kernel T G H H on the previous h = o act(c), not quantized (no state quantizer).
  const int64_t t = 5, g = 4, h = 16, i = 8;
  EXPECT_EQ(ops_of(l), (std::vector<OpRow>{{"kernel", "smult_6_8", t * g * h * i},
                                           {"recurrent", "sfmult_4_32", t * g * h * h}}));
  EXPECT_EQ(l.operations[1].type, heteroq::cost::OpType::kFmult);
  // Weights G H I at 6 bits, G H H at 4, bias_ih and bias_hh G H each at 8.
  EXPECT_EQ(weights_of(l),
            (std::vector<WeightRow>{
                {"kernel", g * h * i, 6}, {"recurrent", g * h * h, 4}, {"bias", 2 * g * h, 8}}));
  EXPECT_EQ(l.weights[0].quantizer, "quantized_bits(6,0,0,alpha=1.0)");
  EXPECT_EQ(l.parameters, g * h * i + g * h * h + 2 * g * h);
  EXPECT_EQ(s.total_bits, 6 * g * h * i + 4 * g * h * h + 8 * 2 * g * h);
  EXPECT_EQ(s.total_bits, 8192);
  EXPECT_EQ(s.total_parameters, parameter_count(*model));
  // Slots in QKeras's order; the float hard_sigmoid is an empty slot.
  std::vector<std::string> slots;
  for (const auto& [slot, spec] : l.quantizers) slots.push_back(slot);
  EXPECT_EQ(slots,
            (std::vector<std::string>{"kernel_quantizer", "recurrent_quantizer", "bias_quantizer",
                                      "state_quantizer", "activation", "recurrent_activation"}));
  EXPECT_EQ(l.quantizers[4].second, heteroq::get_quantizer("quantized_tanh")->to_string());
  EXPECT_EQ(l.quantizers[5].second, "");
  // The output is float.
  EXPECT_EQ(*layer(s, "1").input_quantizer, "");
  EXPECT_EQ(layer(s, "1").input, OperandType{});
  // The accumulator of the input projection x W_ih^T + b_ih, inputs in [0, 255/256].
  auto lstm = model[0]->as<QLSTMImpl>();
  const torch::Tensor w = q(kW6, param(*lstm, "weight_ih_l0"));
  const torch::Tensor b = q(kB8, param(*lstm, "bias_ih_l0"));
  const auto e = expected_accumulator(w, b, 0.0, relu_top(8));
  expect_accumulator(l, e);
  // ... reached: x = hi where row o of the kernel is positive.
  const torch::Tensor x =
      torch::where(w > 0, torch::full_like(w, relu_top(8)), torch::zeros_like(w));
  EXPECT_NEAR(torch::linear(x, w, b).diagonal().max().item<double>(), e.max, 1e-6);
  EXPECT_NE(s.to_string().find("    0.kernel                       : " + std::to_string(e.bits) +
                               " bits"),
            std::string::npos)
      << s.to_string();
  EXPECT_NE(s.to_string().find("    0_recurrent                    : 1024  (4-bit unit)\n"),
            std::string::npos);
  // The counts are per sequence, whatever the batch.
  const QStats s9 = heteroq::cost::qstats(model, {5, 9, 8});
  EXPECT_EQ(s9.operation_totals, s.operation_totals);
}

TEST(QStatsRecurrent, BidirectionalTwoLayerGruWithStateQuantizer) {
  auto model = gru_model();
  const QStats s = heteroq::cost::qstats(model, {3, 7, 4});  // batch_first: N = 3, L = 7
  const auto& l = layer(s, "0");
  EXPECT_EQ(l.type, "QGRU");
  EXPECT_EQ(l.output_shape, (std::vector<int64_t>{3, 7, 12}));
  // D = 2, T = 7, G = 3, H = 6, I = 4; layer 1 reads both directions of layer 0 (D H = 12
  // features, float: the GRU's output); every recurrence reads Qs(h), quantized_bits(8,2).
  const int64_t d = 2, t = 7, g = 3, h = 6, i = 4;
  EXPECT_EQ(ops_of(l), (std::vector<OpRow>{{"kernel_l0", "smult_6_8", d * t * g * h * i},
                                           {"recurrent_l0", "smult_4_8", d * t * g * h * h},
                                           {"kernel_l1", "sfmult_6_32", d * t * g * h * d * h},
                                           {"recurrent_l1", "smult_4_8", d * t * g * h * h}}));
  EXPECT_EQ(weights_of(l), (std::vector<WeightRow>{{"kernel_l0", d * g * h * i, 6},
                                                   {"recurrent_l0", d * g * h * h, 4},
                                                   {"kernel_l1", d * g * h * d * h, 6},
                                                   {"recurrent_l1", d * g * h * h, 4},
                                                   {"bias", 2 * d * 2 * g * h, 8}}));
  EXPECT_EQ(l.parameters, parameter_count(*model[0]));
  EXPECT_EQ(l.parameters, 144 + 216 + 432 + 216 + 144);
  // The head: 7 steps x 12 x 3 on quantized_relu(4,0).
  EXPECT_EQ(ops_of(layer(s, "2")), (std::vector<OpRow>{{"", "smult_6_4", 7 * 12 * 3}}));
  EXPECT_EQ(layer(s, "1").input, OperandType{});
  EXPECT_EQ(s.total_bits, 6 * (144 + 432) + 4 * (216 + 216) + 8 * 144 + 6 * 36 + 32 * 3);
  EXPECT_EQ(s.total_operations, 1008 + 1512 + 3024 + 1512 + 252);
  // The accumulator: both directions' input projections, forward then reverse rows.
  auto gru = model[0]->as<QGRUImpl>();
  const torch::Tensor w = torch::cat(
      {q(kW6, param(*gru, "weight_ih_l0")), q(kW6, param(*gru, "weight_ih_l0_reverse"))});
  const torch::Tensor b =
      torch::cat({q(kB8, param(*gru, "bias_ih_l0")), q(kB8, param(*gru, "bias_ih_l0_reverse"))});
  ASSERT_EQ(w.size(0), d * g * h);
  expect_accumulator(l, expected_accumulator(w, b, 0.0, relu_top(8)));
  EXPECT_NE(s.to_string().find("    0.kernel_l0                    : "), std::string::npos);
  const QStats s1 = heteroq::cost::qstats(model, {1, 7, 4});
  EXPECT_EQ(s1.operation_totals, s.operation_totals);
  // The sequence length is the input's: 2 steps.
  const QStats s2 = heteroq::cost::qstats(model, {3, 2, 4});
  EXPECT_EQ(layer(s2, "0").operations[1].count, d * 2 * g * h * h);

  // Keras's reset_after = false: the candidate's H rows multiply r h (float); the recurrent
  // kernel's G H H values stay one group.
  torch::nn::Sequential keras(QGRU(QGRUOptions(4, 6)
                                       .reset_after(false)
                                       .kernel_quantizer(kW6)
                                       .recurrent_quantizer(kW4)
                                       .state_quantizer(kState)));
  const QStats k = heteroq::cost::qstats(keras, {7, 1, 4});
  EXPECT_EQ(ops_of(layer(k, "0")), (std::vector<OpRow>{{"kernel", "smult_6_8", 7 * 18 * 4},
                                                       {"recurrent", "smult_4_8", 7 * 12 * 6},
                                                       {"recurrent_n", "sfmult_4_32", 7 * 6 * 6}}));
  EXPECT_EQ(weights_of(layer(k, "0")),
            (std::vector<WeightRow>{{"kernel", 72, 6}, {"recurrent", 108, 4}, {"bias", 36, 32}}));
}

TEST(QStatsRecurrent, SimpleRnnStateAndOutputHaveItsActivationType) {
  auto model = rnn_model();
  const QStats s = heteroq::cost::qstats(model, {4, 2, 6});  // L = 4, N = 2
  const auto& l = layer(s, "0");
  EXPECT_EQ(l.type, "QSimpleRNN");
  // h = act(.) on the grid of quantized_tanh(6): the recurrence multiplies 6-bit signed values.
  EXPECT_EQ(ops_of(l), (std::vector<OpRow>{{"kernel", "smult_6_8", 4 * 10 * 6},
                                           {"recurrent", "smult_4_6", 4 * 10 * 10}}));
  EXPECT_EQ(weights_of(l),
            (std::vector<WeightRow>{{"kernel", 60, 6}, {"recurrent", 100, 4}, {"bias", 0, 32}}));
  EXPECT_EQ(l.quantizers.size(), 5u);  // no recurrent_activation
  const std::string tanh6 = heteroq::get_quantizer("quantized_tanh(6)")->to_string();
  EXPECT_EQ(*layer(s, "1").input_quantizer, tanh6);
  EXPECT_EQ(layer(s, "1").input, (OperandType{OperandMode::kFixed, 6, true}));
  auto rnn = model[0]->as<QSimpleRNNImpl>();
  expect_accumulator(
      l, expected_accumulator(q(kW6, param(*rnn, "weight_ih_l0")), {}, 0.0, relu_top(8)));

  // A float activation: float state and output.
  torch::nn::Sequential relu(QSimpleRNN(QSimpleRNNOptions(6, 10)
                                            .batch_first(true)
                                            .kernel_quantizer(kW6)
                                            .recurrent_quantizer(kW4)
                                            .activation("relu")),
                             QDense(QLinearOptions(10, 2).kernel_quantizer(kW4)));
  const QStats r = heteroq::cost::qstats(relu, {1, 3, 6}, "quantized_bits(4,2,alpha=1)");
  EXPECT_EQ(ops_of(layer(r, "0")), (std::vector<OpRow>{{"kernel", "smult_6_4", 3 * 10 * 6},
                                                       {"recurrent", "sfmult_4_32", 3 * 10 * 10}}));
  EXPECT_EQ(weights_of(layer(r, "0"))[2], (WeightRow{"bias", 20, 32}));
  EXPECT_EQ(layer(r, "0").quantizers[4].second, "");  // "relu": an empty slot
  EXPECT_EQ(ops_of(layer(r, "1")), (std::vector<OpRow>{{"", "sfmult_4_32", 3 * 10 * 2}}));
  // A state quantizer types the recurrence (not the output).
  torch::nn::Sequential sq(QSimpleRNN(
      QSimpleRNNOptions(6, 10).kernel_quantizer(kW6).recurrent_quantizer(kW4).state_quantizer(
          "quantized_bits(3,0,alpha=1)")));
  const QStats t = heteroq::cost::qstats(sq, {2, 1, 6});
  EXPECT_EQ(layer(t, "0").operations[1].name, "smult_4_3");
}

TEST(QStatsRecurrent, DescribeLayerAndHandMadeDescriptions) {
  auto model = lstm_model();
  model->eval();
  torch::NoGradGuard no_grad;
  const heteroq::cost::LayerInfo info =
      heteroq::cost::describe_layer(*model[0], "lstm", {5, 2, 8}, {5, 2, 16});
  EXPECT_EQ(info.kind, LayerKind::kRecurrent);
  EXPECT_EQ(info.type, "QLSTM");
  EXPECT_EQ(info.in_channels, 8);
  EXPECT_EQ(info.out_channels, 16);
  EXPECT_EQ(info.gates, 4);
  EXPECT_EQ(info.num_layers, 1);
  EXPECT_FALSE(info.bidirectional);
  EXPECT_FALSE(info.batch_first);
  EXPECT_TRUE(info.bias);
  EXPECT_EQ(info.channel_sums.size(), 64u);
  const QStats s = heteroq::cost::qstats({info});
  const QStats walked = heteroq::cost::qstats(model, {5, 2, 8});
  EXPECT_EQ(ops_of(s.layers[0]), ops_of(walked.layers[0]));
  EXPECT_EQ(s.layers[0].accumulator->max, walked.layers[0].accumulator->max);
  EXPECT_EQ(heteroq::cost::layer_kind_from_name("recurrent"), LayerKind::kRecurrent);
  EXPECT_STREQ(heteroq::cost::layer_kind_name(LayerKind::kRecurrent), "recurrent");

  // By hand: a GRU layer of 2 x 3 x 5 rows.
  heteroq::cost::LayerInfo gru;
  gru.name = "enc";
  gru.type = "MyGRU";
  gru.kind = LayerKind::kRecurrent;
  gru.in_channels = 3;
  gru.out_channels = 5;
  gru.gates = 3;
  gru.bidirectional = true;
  gru.batch_first = true;
  gru.input_shape = {1, 4, 3};
  gru.output_shape = {1, 4, 10};
  gru.quantizers = {{"kernel_quantizer", heteroq::get_quantizer(kW4)}};
  const QStats g = heteroq::cost::qstats({gru});
  EXPECT_EQ(ops_of(g.layers[0]),
            (std::vector<OpRow>{{"kernel", "smult_4_8", 2 * 4 * 15 * 3},
                                {"recurrent", "sfmult_32_32", 2 * 4 * 15 * 5}}));
  EXPECT_FALSE(g.layers[0].accumulator.has_value());  // no channel sums
  const auto message = [](const heteroq::cost::LayerInfo& l) {
    try {
      heteroq::cost::qstats({l});
    } catch (const heteroq::InvalidArgument& e) {
      return std::string(e.what());
    }
    return std::string("(no exception)");
  };
  auto bad = gru;
  bad.gates = 2;
  EXPECT_NE(message(bad).find("layer 'enc' (MyGRU): `gates`"), std::string::npos) << message(bad);
  bad = gru;
  bad.output_shape = {1, 4, 5};  // one direction's features
  EXPECT_NE(message(bad).find("hidden_size 5, bidirectional"), std::string::npos) << message(bad);
  bad = gru;
  bad.input_shape = {4, 3};
  bad.output_shape = {4, 10};
  EXPECT_NE(message(bad).find("batched input of rank 3"), std::string::npos) << message(bad);
  bad = gru;
  bad.num_layers = 0;
  EXPECT_NE(message(bad).find("`num_layers`"), std::string::npos);
  bad = gru;
  bad.channel_sums = std::vector<std::array<double, 3>>(15, {1.0, -1.0, 0.0});  // one direction
  EXPECT_NE(message(bad).find("expected one per output channel (30"), std::string::npos)
      << message(bad);
  // An unbatched input, which the layer accepts, is refused (the counts would be wrong).
  torch::nn::Sequential one(QLSTM(QLSTMOptions(8, 16)));
  try {
    heteroq::cost::qstats(one, {5, 8});
    ADD_FAILURE() << "no exception";
  } catch (const heteroq::InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("layer '0' (QLSTM)"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("batched input of rank 3"), std::string::npos);
  }
}

TEST(QStatsRecurrent, TorchRecurrentLayersAreFloat) {
  torch::nn::Sequential m(torch::nn::GRU(torch::nn::GRUOptions(3, 5).num_layers(2)),
                          torch::nn::RNN(torch::nn::RNNOptions(5, 4).batch_first(false)),
                          torch::nn::LSTM(torch::nn::LSTMOptions(4, 2).bias(false)));
  fill_deterministic(*m);
  const QStats s = heteroq::cost::qstats(m, {6, 2, 3});
  EXPECT_EQ(ops_of(layer(s, "0")),
            (std::vector<OpRow>{{"kernel_l0", "sfmult_32_8", 6 * 15 * 3},
                                {"recurrent_l0", "sfmult_32_32", 6 * 15 * 5},
                                {"kernel_l1", "sfmult_32_32", 6 * 15 * 5},
                                {"recurrent_l1", "sfmult_32_32", 6 * 15 * 5}}));
  EXPECT_EQ(ops_of(layer(s, "1")), (std::vector<OpRow>{{"kernel", "sfmult_32_32", 6 * 4 * 5},
                                                       {"recurrent", "sfmult_32_32", 6 * 4 * 4}}));
  EXPECT_EQ(ops_of(layer(s, "2")), (std::vector<OpRow>{{"kernel", "sfmult_32_32", 6 * 8 * 4},
                                                       {"recurrent", "sfmult_32_32", 6 * 8 * 2}}));
  EXPECT_EQ(layer(s, "2").weights[2].count, 0);
  EXPECT_EQ(s.total_parameters, parameter_count(*m));
  EXPECT_EQ(s.total_bits, 32 * s.total_parameters);
  auto gru = m[0]->as<torch::nn::GRUImpl>();
  expect_accumulator(layer(s, "0"),
                     expected_accumulator(param(*gru, "weight_ih_l0"), param(*gru, "bias_ih_l0"),
                                          0.0, relu_top(8)));
  EXPECT_FALSE(layer(s, "1").accumulator.has_value());  // a float input
  torch::nn::Sequential proj(torch::nn::LSTM(torch::nn::LSTMOptions(4, 3).proj_size(2)));
  try {
    heteroq::cost::qstats(proj, {2, 1, 4});
    ADD_FAILURE() << "no exception";
  } catch (const heteroq::InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("layer '0' (LSTM): `proj_size`"), std::string::npos)
        << e.what();
  }
}

// Writes the statistics of the three models for tests/python/test_qstats.py when
// HETEROQ_QSTATS_JSON names a file; always checks that the JSON holds the totals.
TEST(QStatsCrossLanguage, WritesStatsForPython) {
  nlohmann::json out;
  const std::vector<std::tuple<std::string, torch::nn::Sequential, std::vector<int64_t>>> models = {
      {"jet", jet_mlp(), {1, 16}},       {"cnn", small_cnn(), {2, 3, 12, 12}},
      {"mix", po2_mix(), {1, 8}},        {"one_d", one_d(), {1, 2, 10}},
      {"lstm", lstm_model(), {5, 2, 8}}, {"gru", gru_model(), {3, 7, 4}},
      {"rnn", rnn_model(), {4, 2, 6}}};
  for (const auto& [name, model, shape] : models) {
    const QStats s = heteroq::cost::qstats(model, shape);
    const auto j = nlohmann::json::parse(s.to_json());
    EXPECT_EQ(j["total_bits"].get<int64_t>(), s.total_bits);
    EXPECT_EQ(j["total_operations"].get<int64_t>(), s.total_operations);
    EXPECT_EQ(j["layers"].size(), s.layers.size());
    out[name] = {{"json", s.to_json()}, {"table", s.to_string()}};
  }
  if (const char* path = std::getenv("HETEROQ_QSTATS_JSON")) {
    std::ofstream(path) << out.dump();
  }
}

}  // namespace
