// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// BOPs/EBOPs and the FPGA estimate: hand-computed numbers for small models (a 2-layer MLP, a
// convolution, a po2 and a ternary layer, a batch norm) written out from the formulas of
// heteroq/cost/hardware.h; invariants (lowering a bit width never raises BOPs, EBOPs or LUT +
// 55 DSP); bad input. tests/python/test_hardware.py checks the same numbers in Python and compares
// the reports of the models below with the ones this binary writes (HardwareCrossLanguage).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>
#include <vector>

#include "heteroq/cost/hardware.h"
#include "heteroq/cost/qtools.h"
#include "heteroq/heteroq.h"
#include "heteroq/quantizers/fixed.h"

namespace {

using heteroq::cost::BopsOptions;
using heteroq::cost::BopsReport;
using heteroq::cost::FpgaEstimate;
using heteroq::cost::FpgaOptions;
using heteroq::cost::LayerInfo;
using heteroq::cost::LayerKind;
using namespace heteroq::nn;  // NOLINT

// ---- the models of tests/cpp/test_qstats.cpp (built identically in tests/python/test_qstats.py,
// which tests/python/test_hardware.py imports) ----

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

// ---- hand-computed models (built identically in tests/python/test_hardware.py) ----

void set(torch::Tensor& t, const std::vector<float>& values) {
  torch::NoGradGuard no_grad;
  t.copy_(torch::tensor(values).reshape(t.sizes()));
}

// QDense(3, 2) (4-bit kernel and bias) -> quantized_relu(3,0) -> QDense(2, 1, no bias).
torch::nn::Sequential two_layer_mlp() {
  QDense fc1(QLinearOptions(3, 2).kernel_quantizer(kW4).bias_quantizer(kW4));
  QDense fc2(QLinearOptions(2, 1).bias(false).kernel_quantizer(kW4));
  set(fc1->weight, {0.5f, -0.375f, 0.0f, 0.125f, 0.75f, -0.625f});
  set(fc1->bias, {0.25f, -0.875f});
  set(fc2->weight, {0.375f, -0.25f});
  return torch::nn::Sequential(fc1, QActivation("quantized_relu(3,0)"), fc2);
}

// QConv2d(1 -> 2, 2x2) on 3x3: 4 output positions.
torch::nn::Sequential conv_layer() {
  QConv2d conv(QConv2dOptions(1, 2, 2).kernel_quantizer(kW4).bias_quantizer(kW4));
  set(conv->weight, {0.5f, 0.0f, 0.75f, -0.125f, 0.0f, 0.0f, 0.0f, 0.625f});
  set(conv->bias, {0.5f, 0.0f});
  return torch::nn::Sequential(conv);
}

torch::nn::Sequential po2_layer() {
  QDense fc(QLinearOptions(2, 2).bias(false).kernel_quantizer("quantized_po2(4)"));
  set(fc->weight, {0.5f, -0.25f, 0.125f, -0.0625f});
  return torch::nn::Sequential(fc);
}

torch::nn::Sequential ternary_layer() {
  QDense fc(QLinearOptions(3, 2).bias(false).kernel_quantizer("ternary(alpha=1)"));
  set(fc->weight, {1.0f, 0.0f, -1.0f, 0.0f, 0.0f, 1.0f});
  return torch::nn::Sequential(fc);
}

// torch BatchNorm1d(2), eps 0: scale gamma / sqrt(var) = {0.75, 1}, shift beta - mean scale =
// {-0.125, 0.125}.
torch::nn::Sequential batch_norm_layer() {
  torch::nn::BatchNorm1d bn(torch::nn::BatchNorm1dOptions(2).eps(0));
  set(bn->weight, {0.375f, 0.5f});
  set(bn->bias, {0.25f, 0.125f});
  set(bn->running_mean, {0.5f, 0.0f});
  set(bn->running_var, {0.25f, 0.25f});
  bn->eval();
  return torch::nn::Sequential(bn);
}

BopsOptions bops_input(const char* spec) {
  BopsOptions o;
  o.input_quantizer = spec;
  return o;
}

TEST(HardwareBitSpan, ExactSpans) {
  using heteroq::cost::bit_span;
  EXPECT_EQ(bit_span(0.0), 0);
  EXPECT_EQ(bit_span(-0.0), 0);
  EXPECT_EQ(bit_span(0.5), 1);
  EXPECT_EQ(bit_span(-4.0), 1);
  EXPECT_EQ(bit_span(0.75), 2);     // 0.11b
  EXPECT_EQ(bit_span(0.625), 3);    // 0.101b
  EXPECT_EQ(bit_span(-0.875), 3);   // 0.111b
  EXPECT_EQ(bit_span(0.78125), 5);  // 0.11001b
  EXPECT_EQ(bit_span(5.5), 4);      // 101.1b: "001xx1000" counts its span
  EXPECT_EQ(bit_span(1.0 / 3.0), 53);
  EXPECT_THROW(bit_span(std::numeric_limits<double>::infinity()), heteroq::InvalidArgument);
  EXPECT_THROW(bit_span(std::nan("")), heteroq::InvalidArgument);
}

TEST(HardwareBops, TwoLayerMlpByHand) {
  const BopsReport r = heteroq::cost::bops(two_layer_mlp(), {1, 3});
  ASSERT_EQ(r.layers.size(), 3u);
  // fc1: input quantized_relu(8,0) (8 bits), kernel 4 bits; weights 0.5 -0.375 0 0.125 0.75
  // -0.625 have spans 1 2 0 1 2 3; biases 0.25 -0.875 spans 1 3, 2 outputs.
  EXPECT_EQ(r.layers[0].multiplications, 5);
  EXPECT_EQ(r.layers[0].bops, 5 * 8 * 4);
  EXPECT_DOUBLE_EQ(r.layers[0].bias_ebops, (1 + 3) / 2.0 * 2);
  EXPECT_DOUBLE_EQ(r.layers[0].ebops, 8 * (1 + 2 + 0 + 1 + 2 + 3) + 4.0);
  EXPECT_EQ(r.layers[1].bops, 0);
  EXPECT_DOUBLE_EQ(r.layers[1].ebops, 0.0);
  // fc2: input quantized_relu(3,0) (3 bits); weights 0.375 -0.25 spans 2 1; no bias.
  EXPECT_EQ(r.layers[2].bops, 2 * 3 * 4);
  EXPECT_DOUBLE_EQ(r.layers[2].ebops, 3 * (2 + 1));
  EXPECT_EQ(r.bops, 160 + 24);
  EXPECT_DOUBLE_EQ(r.ebops, 76 + 9);
  EXPECT_EQ(r.multiplications, 7);
  EXPECT_TRUE(r.layers[0].exact);
  EXPECT_TRUE(r.zero_cost_layers.empty());
}

TEST(HardwareBops, ConvByHand) {
  const BopsReport r = heteroq::cost::bops(conv_layer(), {1, 1, 3, 3});
  // 4 output positions; channel 0: 0.5 0 0.75 -0.125 (spans 1 0 2 1), channel 1: 0 0 0 0.625
  // (span 3); biases 0.5 0 (spans 1 0), 2 x 2 x 2 = 8 output values.
  EXPECT_EQ(r.multiplications, 4 * 4);
  EXPECT_EQ(r.bops, 4 * 4 * 8 * 4);
  EXPECT_DOUBLE_EQ(r.layers[0].bias_ebops, 0.5 * 8);
  EXPECT_DOUBLE_EQ(r.ebops, 4 * 8 * (1 + 2 + 1 + 3) + 4.0);
}

TEST(HardwareBops, Po2AndTernaryByHand) {
  // po2 weights: span 1 each, width 4; a po2 input quantized_po2(5): 5 bits.
  const BopsReport p = heteroq::cost::bops(po2_layer(), {1, 2}, bops_input("quantized_po2(5)"));
  EXPECT_EQ(p.bops, 4 * 5 * 4);
  EXPECT_DOUBLE_EQ(p.ebops, 4 * 5 * 1);
  // ternary weights: 3 non-zero, width 2, span 1; input quantized_relu(4,0).
  const BopsReport t =
      heteroq::cost::bops(ternary_layer(), {1, 3}, bops_input("quantized_relu(4,0)"));
  EXPECT_EQ(t.multiplications, 3);
  EXPECT_EQ(t.bops, 3 * 4 * 2);
  EXPECT_DOUBLE_EQ(t.ebops, 3 * 4 * 1);
  // A ternary input (2 bits) and a binary one (1 bit).
  EXPECT_EQ(heteroq::cost::bops(ternary_layer(), {1, 3}, bops_input("ternary(alpha=1)")).bops,
            3 * 2 * 2);
  EXPECT_EQ(heteroq::cost::bops(po2_layer(), {1, 2}, bops_input("binary(alpha=1)")).bops,
            4 * 1 * 4);
}

TEST(HardwareBops, BatchNormByHand) {
  // scale {0.75, 1} (spans 2 1, float: 32 bits), shift {-0.125, 0.125} (spans 1 1); input 4 bits.
  const BopsReport r =
      heteroq::cost::bops(batch_norm_layer(), {1, 2}, bops_input("quantized_relu(4,0)"));
  EXPECT_EQ(r.multiplications, 2);
  EXPECT_EQ(r.bops, 2 * 4 * 32);
  EXPECT_DOUBLE_EQ(r.layers[0].bias_ebops, 1.0 * 2);
  EXPECT_DOUBLE_EQ(r.ebops, 4 * (2 + 1) + 2.0);
}

TEST(HardwareBops, FloatInputAndUnknownValues) {
  // A float input is 32 bits wide.
  BopsOptions o;
  o.input_quantizer = QuantizerArg();
  EXPECT_EQ(heteroq::cost::bops(po2_layer(), {1, 2}, o).bops, 4 * 32 * 4);
  // Without values: every weight non-zero at the quantizer's width, biases at theirs.
  std::vector<LayerInfo> layers = heteroq::cost::describe_model(two_layer_mlp(), {1, 3});
  for (auto& l : layers) l.values.clear();
  const BopsReport r = heteroq::cost::bops(layers);
  EXPECT_FALSE(r.layers[0].exact);
  EXPECT_EQ(r.layers[0].bops, 6 * 8 * 4);
  EXPECT_DOUBLE_EQ(r.layers[0].ebops, 6 * 8 * 4 + 4.0 * 2);
  EXPECT_NE(r.to_string().find("~ weight values unknown"), std::string::npos);
}

TEST(HardwareFpga, TwoLayerMlpByHand) {
  const FpgaEstimate e = heteroq::cost::fpga_estimate(two_layer_mlp(), {1, 3});
  ASSERT_EQ(e.layers.size(), 3u);
  // fc1 (input 8 bits < 10: no DSP): 0.5 and 0.125 free; 0.375, 0.75 (span 2): 1 adder of 8 + 2
  // bits; -0.625 (span 3): 1 adder of 8 + 3 bits.
  const auto& fc1 = e.layers[0];
  EXPECT_EQ(fc1.products_free, 2);
  EXPECT_EQ(fc1.products_lut, 3);
  EXPECT_EQ(fc1.lut_multipliers, 10 + 10 + 11);
  // Accumulator: max |sum| 0.625 (255/256) + 0.875 = 1.4976 -> 1 integer bit, a sign, 8 + 3
  // fractional bits = 13; 5 products + 2 biases into 2 sums: ceil(5 / 2) = 3 ternary adders.
  EXPECT_EQ(fc1.accumulator_bits, 13);
  EXPECT_EQ(fc1.lut_adders, 3 * 13);
  // 1 cycle of products + ceil(ceil(log3(7 / 2)) x 1 ns / 5 ns) = 1 cycle of adders.
  EXPECT_EQ(fc1.latency_cycles, 2);
  EXPECT_EQ(fc1.ff, 2 * 2 * 13);
  // The activation: 2 outputs x 3 bits.
  EXPECT_EQ(e.layers[1].lut_activations, 6);
  EXPECT_EQ(e.layers[1].ff, 6);
  EXPECT_EQ(e.layers[1].latency_cycles, 1);
  // fc2: input 3 bits; 0.375: 1 adder of 3 + 2 bits; -0.25 free; accumulator max 0.375 x 0.875
  // = 0.328 -> -1 integer bits + sign + 3 + 3 = 6 bits; 1 adder.
  const auto& fc2 = e.layers[2];
  EXPECT_EQ(fc2.lut_multipliers, 5);
  EXPECT_EQ(fc2.accumulator_bits, 6);
  EXPECT_EQ(fc2.lut_adders, 6);
  EXPECT_EQ(fc2.latency_cycles, 2);
  EXPECT_EQ(fc2.ff, 2 * 1 * 6);
  EXPECT_EQ(e.lut, 31 + 39 + 6 + 5 + 6);
  EXPECT_EQ(e.dsp, 0);
  EXPECT_EQ(e.ff, 52 + 6 + 12);
  EXPECT_EQ(e.latency_cycles, 5);
  EXPECT_DOUBLE_EQ(e.latency_ns, 25.0);
  // At 500 MHz: the same cycles, 10 ns.
  FpgaOptions fast;
  fast.clock_period_ns = 2.0;
  EXPECT_DOUBLE_EQ(heteroq::cost::fpga_estimate(two_layer_mlp(), {1, 3}, fast).latency_ns, 10.0);
}

TEST(HardwareFpga, DspRule) {
  // A 16-bit input (ap_fixed<16,6>) times 0.78125 (span 5 >= 4): one DSP; times 0.625 (span 3):
  // a LUT multiplier of 1 adder of 16 + 3 bits; times 0.5: free.
  for (const auto& [w, dsp, lut, free] : std::vector<std::tuple<float, int64_t, int64_t, int64_t>>{
           {0.78125f, 1, 0, 0}, {0.625f, 0, 19, 0}, {0.5f, 0, 0, 1}, {0.0f, 0, 0, 0}}) {
    QDense fc(QLinearOptions(1, 1).bias(false).kernel_quantizer("quantized_bits(8,0,alpha=1)"));
    set(fc->weight, {w});
    FpgaOptions o;
    o.input_quantizer = "quantized_bits(16,5)";
    const FpgaEstimate e = heteroq::cost::fpga_estimate(torch::nn::Sequential(fc), {1, 1}, o);
    EXPECT_EQ(e.dsp, dsp) << w;
    EXPECT_EQ(e.layers[0].lut_multipliers, lut) << w;
    EXPECT_EQ(e.layers[0].products_free, free) << w;
    // Ports of 12 x 5 bits: a 16 x 6 product (span 5 and a sign) takes min(ceil(16 / 12)
    // ceil(6 / 5), ceil(16 / 5) ceil(6 / 12)) = min(4, 4) = 4 DSPs.
    o.dsp_port_a_bits = 12;
    o.dsp_port_b_bits = 5;
    if (dsp) EXPECT_EQ(heteroq::cost::fpga_estimate(torch::nn::Sequential(fc), {1, 1}, o).dsp, 4);
  }
}

// ---- invariants ----

// The jet MLP with `kernel` bits for kernels and biases and `act` bits for the activations, the
// same float weights.
torch::nn::Sequential jet_bits(int64_t kernel, int64_t act) {
  const std::string k = "quantized_bits(" + std::to_string(kernel) + ",0,alpha=1)";
  const std::string a = "quantized_relu(" + std::to_string(act) + ",0)";
  torch::nn::Sequential m;
  const std::vector<std::pair<int64_t, int64_t>> sizes = {{16, 64}, {64, 32}, {32, 32}, {32, 5}};
  for (size_t i = 0; i < sizes.size(); ++i) {
    m->push_back(QDense(
        QLinearOptions(sizes[i].first, sizes[i].second).kernel_quantizer(k).bias_quantizer(k)));
    if (i + 1 < sizes.size()) m->push_back(QActivation(a));
  }
  torch::manual_seed(0);
  for (auto& p : m->named_parameters()) {
    torch::NoGradGuard no_grad;
    p.value().uniform_(-1, 1);
  }
  return m;
}

struct Costs {
  int64_t bops;
  double ebops;
  int64_t lut55;
};

Costs costs_of(int64_t kernel, int64_t act, int64_t input) {
  const auto layers = heteroq::cost::describe_model(jet_bits(kernel, act), {1, 16});
  BopsOptions b;
  b.input_quantizer = "quantized_bits(" + std::to_string(input) + ",5)";
  FpgaOptions f;
  f.input_quantizer = b.input_quantizer;
  const auto r = heteroq::cost::bops(layers, b);
  return {r.bops, r.ebops, heteroq::cost::fpga_estimate(layers, f).lut_equivalent()};
}

TEST(HardwareInvariants, LoweringABitWidthNeverRaisesTheCost) {
  const std::vector<std::pair<const char*, std::function<Costs(int64_t)>>> knobs = {
      {"kernel", [](int64_t b) { return costs_of(b, 6, 16); }},
      {"activation", [](int64_t b) { return costs_of(6, b, 16); }},
      {"input", [](int64_t b) { return costs_of(6, 6, b); }}};
  for (const auto& [knob, cost] : knobs) {
    Costs previous = cost(12);
    for (int64_t bits = 11; bits >= 7; --bits) {
      const Costs c = cost(bits);
      EXPECT_LE(c.bops, previous.bops) << knob << " " << bits;
      EXPECT_LE(c.ebops, previous.ebops) << knob << " " << bits;
      EXPECT_LE(c.lut55, previous.lut55) << knob << " " << bits;
      previous = c;
    }
  }
}

TEST(HardwareInvariants, PruningNeverRaisesTheCost) {
  auto model = jet_mlp();
  const auto before = heteroq::cost::describe_model(model, {1, 16});
  {
    torch::NoGradGuard no_grad;
    auto& w = model[0]->as<QLinear>()->weight;
    w.masked_fill_(w.abs() < 0.4, 0);
  }
  const auto after = heteroq::cost::describe_model(model, {1, 16});
  const BopsReport b0 = heteroq::cost::bops(before), b1 = heteroq::cost::bops(after);
  EXPECT_LT(b1.bops, b0.bops);
  EXPECT_LT(b1.ebops, b0.ebops);
  EXPECT_LT(b1.multiplications, b0.multiplications);
  EXPECT_LE(heteroq::cost::fpga_estimate(after).lut_equivalent(),
            heteroq::cost::fpga_estimate(before).lut_equivalent());
}

// ---- every layer of the layers issue ----

TEST(HardwareLayers, EveryModelHasACost) {
  const std::vector<std::tuple<std::string, torch::nn::Sequential, std::vector<int64_t>>> models = {
      {"cnn", small_cnn(), {2, 3, 12, 12}}, {"mix", po2_mix(), {1, 8}},
      {"one_d", one_d(), {1, 2, 10}},       {"lstm", lstm_model(), {5, 2, 8}},
      {"gru", gru_model(), {3, 7, 4}},      {"rnn", rnn_model(), {4, 2, 6}}};
  for (const auto& [name, model, shape] : models) {
    const auto layers = heteroq::cost::describe_model(model, shape);
    const auto stats = heteroq::cost::qstats(layers);
    const BopsReport r = heteroq::cost::bops(layers);
    const FpgaEstimate e = heteroq::cost::fpga_estimate(layers);
    EXPECT_GT(r.bops, 0) << name;
    EXPECT_GT(e.lut, 0) << name;
    EXPECT_GT(e.latency_cycles, 0) << name;
    // Every multiply-accumulate layer's values are known, and no more products than qstats's.
    for (size_t i = 0; i < layers.size(); ++i) {
      int64_t ops = 0;
      for (const auto& op : stats.layers[i].operations) ops += op.count;
      if (ops > 0) {
        EXPECT_TRUE(r.layers[i].exact) << name << " " << layers[i].name;
        EXPECT_LE(r.layers[i].multiplications, ops) << name << " " << layers[i].name;
      }
    }
  }
}

TEST(HardwareLayers, RecurrentCountsByHand) {
  // QSimpleRNN 6 -> 10 without bias on (L = 4, N = 2, 6): per step 10 x 6 kernel products of the
  // input quantized_relu(8,0) (8 bits) and 10 x 10 recurrent products of the state
  // quantized_tanh(6) (6 bits).
  auto model = rnn_model();
  const auto layers = heteroq::cost::describe_model(model, {4, 2, 6});
  const at::Tensor* kernel = nullptr;
  const at::Tensor* recurrent = nullptr;
  for (const auto& [name, t] : layers[0].values) {
    if (name == "kernel") kernel = &t;
    if (name == "recurrent") recurrent = &t;
  }
  ASSERT_TRUE(kernel && recurrent);
  const int64_t nk = kernel->ne(0).sum().item<int64_t>();
  const int64_t nr = recurrent->ne(0).sum().item<int64_t>();
  const BopsReport r = heteroq::cost::bops(layers);
  EXPECT_EQ(r.layers[0].multiplications, 4 * (nk + nr));
  EXPECT_EQ(r.layers[0].bops, 4 * (nk * 8 * 6 + nr * 6 * 4));
  EXPECT_EQ(r.layers[0].bias_ebops, 0.0);
}

// ---- bad input ----

LayerInfo unknown_layer(int64_t parameters) {
  LayerInfo l;
  l.name = "custom";
  l.type = "MyLayer";
  l.input_shape = l.output_shape = {1, 3};
  l.parameters = parameters;
  return l;
}

TEST(HardwareErrors, UnknownLayerIsNamedOrCountsZero) {
  for (int64_t parameters : {0, 5}) {
    std::vector<LayerInfo> layers = heteroq::cost::describe_model(two_layer_mlp(), {1, 3});
    layers.insert(layers.begin() + 2, unknown_layer(parameters));
    for (int fpga = 0; fpga < 2; ++fpga) {
      try {
        if (fpga) {
          heteroq::cost::fpga_estimate(layers);
        } else {
          heteroq::cost::bops(layers);
        }
        ADD_FAILURE() << "no exception";
      } catch (const heteroq::InvalidArgument& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("layer 'custom' (MyLayer)"), std::string::npos) << what;
        EXPECT_NE(what.find("unknown_layers_as_zero"), std::string::npos) << what;
      }
    }
    BopsOptions o;
    o.unknown_layers_as_zero = true;
    const BopsReport r = heteroq::cost::bops(layers, o);
    EXPECT_EQ(r.zero_cost_layers, std::vector<std::string>{"custom"});
    EXPECT_TRUE(r.layers[2].zero_cost);
    EXPECT_EQ(r.layers[2].type, "MyLayer");
    // It passes its input's type on: the same numbers as without it.
    EXPECT_EQ(r.bops, 184);
    EXPECT_DOUBLE_EQ(r.ebops, 85.0);
    EXPECT_NE(r.to_string().find("* unknown layer, counted as zero"), std::string::npos);
    FpgaOptions f;
    f.unknown_layers_as_zero = true;
    const FpgaEstimate e = heteroq::cost::fpga_estimate(layers, f);
    EXPECT_EQ(e.zero_cost_layers, std::vector<std::string>{"custom"});
    EXPECT_EQ(e.lut, 87);
  }
}

TEST(HardwareErrors, WrongInputShape) {
  try {
    heteroq::cost::bops(two_layer_mlp(), {1, 4});
    ADD_FAILURE() << "no exception";
  } catch (const heteroq::InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("layer '0'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(heteroq::cost::fpga_estimate(two_layer_mlp(), {}), heteroq::InvalidArgument);
}

TEST(HardwareErrors, BadValuesAndOptions) {
  std::vector<LayerInfo> layers = heteroq::cost::describe_model(two_layer_mlp(), {1, 3});
  std::vector<LayerInfo> wrong = layers;
  wrong[0].values[0].second = torch::zeros({5});
  try {
    heteroq::cost::bops(wrong);
    ADD_FAILURE() << "no exception";
  } catch (const heteroq::InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("layer '0' (QLinear): values 'weights' has 5 values, "
                                         "expected 6"),
              std::string::npos)
        << e.what();
  }
  wrong = layers;
  wrong[2].values[0].second = torch::tensor({std::nanf(""), 0.0f});
  EXPECT_THROW(heteroq::cost::bops(wrong), heteroq::InvalidArgument);
  for (const auto& [option, set_bad] :
       std::vector<std::pair<std::string, std::function<void(FpgaOptions&)>>>{
           {"clock_period_ns", [](FpgaOptions& o) { o.clock_period_ns = 0; }},
           {"adder_inputs", [](FpgaOptions& o) { o.adder_inputs = 1; }},
           {"adder_level_ns", [](FpgaOptions& o) { o.adder_level_ns = -1; }},
           {"dsp_min_weight_span", [](FpgaOptions& o) { o.dsp_min_weight_span = 1; }},
           {"float_bits", [](FpgaOptions& o) { o.float_bits = 0; }}}) {
    FpgaOptions o;
    set_bad(o);
    try {
      heteroq::cost::fpga_estimate(layers, o);
      ADD_FAILURE() << option;
    } catch (const heteroq::InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find("`" + option + "`"), std::string::npos) << e.what();
    }
  }
}

// ---- the reports for tests/python/test_hardware.py ----

// ---- FixedQuantizer (widths per tensor, channel or element) in the cost models ----

// The jet MLP with `w` for kernels and biases and `a` for the activations, the weights of
// jet_mlp() (so that two such models differ only in their quantizers).
torch::nn::Sequential jet_with(const heteroq::nn::QuantizerArg& w,
                               const heteroq::nn::QuantizerArg& a) {
  torch::nn::Sequential m;
  const std::vector<std::pair<int64_t, int64_t>> sizes = {{16, 64}, {64, 32}, {32, 32}, {32, 5}};
  for (size_t i = 0; i < sizes.size(); ++i) {
    m->push_back(QDense(
        QLinearOptions(sizes[i].first, sizes[i].second).kernel_quantizer(w).bias_quantizer(w)));
    if (i + 1 < sizes.size()) m->push_back(QActivation(a));
  }
  fill_deterministic(*m);
  return m;
}

TEST(FixedQuantizerCost, UniformCostsWhatQuantizedBitsCosts) {
  const std::vector<std::tuple<std::string, std::string, std::string, std::string>> cases = {
      {"fixed(6,0)", "quantized_bits(6,0,alpha=1)", "fixed(6,0,keep_negative=False)",
       "quantized_bits(6,0,keep_negative=False,alpha=1)"},
      {"fixed(4,2)", "quantized_bits(4,2,alpha=1)", "fixed(3,1)", "quantized_bits(3,1,alpha=1)"},
      {"fixed(2,1)", "quantized_bits(2,1,alpha=1)", "fixed(8,3)", "quantized_bits(8,3,alpha=1)"}};
  for (const auto& [fw, qw, fa, qa] : cases) {
    SCOPED_TRACE(fw + " / " + fa);
    EXPECT_EQ(heteroq::cost::cost_quantizer(heteroq::get_quantizer(fw))->to_string(),
              heteroq::get_quantizer(qw)->to_string());
    EXPECT_EQ(heteroq::cost::operand_type(heteroq::get_quantizer(fa)),
              heteroq::cost::operand_type(heteroq::get_quantizer(qa)));
    const auto fixed = heteroq::cost::describe_model(jet_with(fw, fa), {1, 16});
    const auto qbits = heteroq::cost::describe_model(jet_with(qw, qa), {1, 16});
    for (const auto& input :
         {std::string("quantized_relu(8,0)"), std::string("fixed(8,0,keep_negative=False)")}) {
      const auto a = heteroq::cost::qstats(fixed, input);
      const auto b = heteroq::cost::qstats(qbits, "quantized_relu(8,0)");
      EXPECT_EQ(a.operation_totals, b.operation_totals);
      EXPECT_EQ(a.total_bits, b.total_bits);
      for (size_t i = 0; i < a.layers.size(); ++i) {
        ASSERT_EQ(a.layers[i].accumulator.has_value(), b.layers[i].accumulator.has_value());
        if (a.layers[i].accumulator) {
          EXPECT_EQ(a.layers[i].accumulator->bits, b.layers[i].accumulator->bits);
        }
      }
      BopsOptions bo;
      bo.input_quantizer = input;
      const BopsReport ra = heteroq::cost::bops(fixed, bo), rb = heteroq::cost::bops(qbits);
      EXPECT_EQ(ra.bops, rb.bops);
      EXPECT_DOUBLE_EQ(ra.ebops, rb.ebops);
      FpgaOptions fo;
      fo.input_quantizer = input;
      const FpgaEstimate ea = heteroq::cost::fpga_estimate(fixed, fo);
      const FpgaEstimate eb = heteroq::cost::fpga_estimate(qbits);
      EXPECT_EQ(ea.lut, eb.lut);
      EXPECT_EQ(ea.dsp, eb.dsp);
      EXPECT_EQ(ea.ff, eb.ff);
      EXPECT_EQ(ea.latency_cycles, eb.latency_cycles);
    }
    heteroq::cost::QToolsOptions o;
    o.weights_on_memory = "sram";
    EXPECT_DOUBLE_EQ(heteroq::cost::energy(fixed, o).total, heteroq::cost::energy(qbits, o).total);
    EXPECT_EQ(heteroq::cost::model_size(fixed, o).total_bits,
              heteroq::cost::model_size(qbits, o).total_bits);
    o.source_quantizer = "fixed(8,0)";
    heteroq::cost::QToolsOptions ob = o;
    ob.source_quantizer = "quantized_bits(8,0,alpha=1)";
    EXPECT_DOUBLE_EQ(heteroq::cost::energy(fixed, o).total, heteroq::cost::energy(qbits, ob).total);
  }
}

// A dense layer 4 -> 3 whose kernel has one width per output channel (3, 5 and 7 bits: k = 1,
// i = 0 0 1, f = 2 4 5): BOPs price each weight at its own width, the other models at the
// widest type quantized_bits(7,1) (k 1, i 1, f 5).
TEST(FixedQuantizerCost, PerChannelWidths) {
  const auto k = torch::ones({});
  const auto i = torch::tensor({0.0f, 0.0f, 1.0f}).reshape({3, 1});
  const auto f = torch::tensor({2.0f, 4.0f, 5.0f}).reshape({3, 1});
  const heteroq::QuantizerPtr q = std::make_shared<heteroq::FixedQuantizer>(k, i, f);
  EXPECT_EQ(heteroq::cost::cost_quantizer(q)->to_string(),
            heteroq::get_quantizer("quantized_bits(7,1,alpha=1)")->to_string());
  torch::nn::Sequential m(QDense(QLinearOptions(4, 3).bias(false).kernel_quantizer(q)));
  {
    torch::NoGradGuard g;
    m[0]->as<QDenseImpl>()->weight.copy_(torch::tensor(
        {{0.25f, -0.5f, 0.0f, 0.75f}, {0.3f, 0.0f, -0.2f, 0.1f}, {1.3f, -0.7f, 0.05f, 0.0f}}));
  }
  const auto layers = heteroq::cost::describe_model(m, {1, 4});
  const BopsReport r = heteroq::cost::bops(layers);
  const auto w = q->forward(m[0]->as<QDenseImpl>()->weight.detach());
  const std::vector<int64_t> widths = {3, 5, 7};
  int64_t bops = 0, nonzero = 0;
  double ebops = 0;
  for (int64_t row = 0; row < 3; ++row) {
    for (int64_t col = 0; col < 4; ++col) {
      const double v = w[row][col].item<double>();
      if (v != 0) {
        bops += 8 * widths[static_cast<size_t>(row)];
        ++nonzero;
      }
      ebops += 8.0 * static_cast<double>(heteroq::cost::bit_span(v));
    }
  }
  EXPECT_EQ(r.multiplications, nonzero);
  EXPECT_EQ(r.bops, bops);
  EXPECT_DOUBLE_EQ(r.ebops, ebops);
  // the types: the widest one
  const auto stats = heteroq::cost::qstats(layers);
  EXPECT_EQ(stats.layers[0].operations[0].name, "smult_7_8");
  const auto types = heteroq::cost::data_types(layers, heteroq::cost::QToolsOptions());
  EXPECT_EQ(types.layers[0].stages[0].weight.bits, 7);
  EXPECT_EQ(types.layers[0].stages[0].weight.int_bits, 1);
  // an element of width 0 is left out of the widest type; zero-width weights are 0 and free
  const auto f0 = torch::tensor({2.0f, 4.0f, -1.0f}).reshape({3, 1});
  const heteroq::QuantizerPtr q0 =
      std::make_shared<heteroq::FixedQuantizer>(k, torch::zeros({3, 1}), f0);
  EXPECT_EQ(heteroq::cost::cost_quantizer(q0)->to_string(),
            heteroq::get_quantizer("quantized_bits(5,0,alpha=1)")->to_string());
  torch::nn::Sequential m0(QDense(QLinearOptions(4, 3).bias(false).kernel_quantizer(q0)));
  const BopsReport r0 = heteroq::cost::bops(m0, {1, 4});
  const auto w0 = q0->forward(m0[0]->as<QDenseImpl>()->weight.detach());
  EXPECT_TRUE(torch::all(w0[2] == 0).item<bool>());
  EXPECT_EQ(r0.multiplications, (w0 != 0).sum().item<int64_t>());
  EXPECT_EQ(r0.bops, 8 * (3 * (w0[0] != 0).sum().item<int64_t>() +
                          5 * (w0[1] != 0).sum().item<int64_t>()));
}

// Writes the reports of the models when HETEROQ_HARDWARE_JSON names a file; always checks that
// the JSON holds the totals.
TEST(HardwareCrossLanguage, WritesReportsForPython) {
  nlohmann::json out;
  const std::vector<std::tuple<std::string, torch::nn::Sequential, std::vector<int64_t>>> models = {
      {"jet", jet_mlp(), {1, 16}},          {"cnn", small_cnn(), {2, 3, 12, 12}},
      {"mix", po2_mix(), {1, 8}},           {"one_d", one_d(), {1, 2, 10}},
      {"lstm", lstm_model(), {5, 2, 8}},    {"gru", gru_model(), {3, 7, 4}},
      {"rnn", rnn_model(), {4, 2, 6}},      {"two_layer", two_layer_mlp(), {1, 3}},
      {"conv", conv_layer(), {1, 1, 3, 3}}, {"bn", batch_norm_layer(), {1, 2}}};
  for (const auto& [name, model, shape] : models) {
    const auto layers = heteroq::cost::describe_model(model, shape);
    const BopsReport r = heteroq::cost::bops(layers);
    const FpgaEstimate e = heteroq::cost::fpga_estimate(layers);
    const auto jb = nlohmann::json::parse(r.to_json());
    const auto je = nlohmann::json::parse(e.to_json());
    EXPECT_EQ(jb["bops"].get<int64_t>(), r.bops);
    EXPECT_EQ(je["lut"].get<int64_t>(), e.lut);
    out[name] = {{"bops", r.to_json()},
                 {"bops_table", r.to_string()},
                 {"fpga", e.to_json()},
                 {"fpga_table", e.to_string()}};
  }
  if (const char* path = std::getenv("HETEROQ_HARDWARE_JSON")) {
    std::ofstream(path) << out.dump();
  }
}

}  // namespace
