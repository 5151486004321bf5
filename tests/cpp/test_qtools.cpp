// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// QTools: the data types, energy and size of small models against values computed here from
// QTools's formulas (written out term by term), QKeras's own QTools energy test (the 784-300-100-10
// MLP of qkeras/tests/qtools_model_test.py::test_qenergy), the reference mode, monotonicity in
// the bit widths, errors. tests/python/test_qtools.py checks the same models in Python and
// compares the numbers with the ones this binary writes (QToolsCrossLanguage).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>
#include <vector>

#include "heteroq/cost/qtools.h"
#include "heteroq/heteroq.h"

namespace {

using heteroq::cost::DataTypeMap;
using heteroq::cost::EnergyReport;
using heteroq::cost::LayerInfo;
using heteroq::cost::LayerKind;
using heteroq::cost::QToolsOptions;
using heteroq::cost::QType;
using heteroq::cost::SizeReport;
using namespace heteroq::nn;  // NOLINT

const char* kW6 = "quantized_bits(6,0,alpha=1)";
const char* kW4 = "quantized_bits(4,0,alpha=1)";
const char* kB8 = "quantized_bits(8,3,alpha=1)";

// ---- QTools's tables (config_public.py "horowitz"), written out independently ----

double sram_rd(double l) {  // 9.02427321e-04 L^3 - 2.68847858e-02 L^2 + 2.08900804e-01 L
  return std::max(9.02427321e-04 * l * l * l - 2.68847858e-02 * l * l + 2.08900804e-01 * l, 0.0);
}
double dram_rd(double bits) { return 20.3125 * bits; }
double fpm_add(double b) { return 0.003125 * b; }
double fpm_mul(double b) { return 0.002994791667 * b * b + 0.001041666667 * b; }
// A read or write of `bits` bits: "dram" (through SRAM when rd_wr_on_io), "sram" or "fixed".
double mem(double bits, const std::string& mode, bool rd_wr_on_io = true, double min_sram = 0) {
  const double sram = std::ceil(bits / 64.0) * sram_rd(std::log2(std::max(bits, min_sram)));
  if (mode == "dram") return dram_rd(bits) + (rd_wr_on_io ? sram : 0.0);
  if (mode == "sram") return sram;
  return 0.0;
}

const heteroq::cost::LayerDataType& layer(const DataTypeMap& m, const std::string& name) {
  for (const auto& l : m.layers) {
    if (l.name == name) return l;
  }
  throw std::runtime_error("no layer " + name);
}
const heteroq::cost::LayerEnergy& layer(const EnergyReport& r, const std::string& name) {
  for (const auto& l : r.layers) {
    if (l.name == name) return l;
  }
  throw std::runtime_error("no layer " + name);
}

void expect_type(const QType& t, int64_t bits, int64_t int_bits, bool is_signed) {
  EXPECT_EQ(t.bits, bits) << t.to_string();
  EXPECT_EQ(t.int_bits, int_bits) << t.to_string();
  EXPECT_EQ(t.is_signed, is_signed) << t.to_string();
  EXPECT_FALSE(t.is_floating_point) << t.to_string();
}

// ---- models (built identically in tests/python/test_qtools.py) ----

torch::nn::Sequential small_mlp() {
  return torch::nn::Sequential(
      QDense(QLinearOptions(4, 3).kernel_quantizer(kW6).bias_quantizer(kW6)),
      QActivation("quantized_relu(4,0)"),
      QDense(QLinearOptions(3, 2).kernel_quantizer(kW6).bias_quantizer(kW6)));
}

// The jet-tagging MLP 16-64-32-32-5; `w`, `a`: the weight and activation quantizers ("" float).
torch::nn::Sequential jet_mlp(const std::string& w = kW6,
                              const std::string& a = "quantized_relu(6,0)") {
  torch::nn::Sequential m;
  const std::vector<std::pair<int64_t, int64_t>> sizes = {{16, 64}, {64, 32}, {32, 32}, {32, 5}};
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (w.empty()) {
      m->push_back(torch::nn::Linear(sizes[i].first, sizes[i].second));
    } else {
      m->push_back(QDense(
          QLinearOptions(sizes[i].first, sizes[i].second).kernel_quantizer(w).bias_quantizer(w)));
    }
    if (i + 1 < sizes.size()) {
      if (a.empty()) {
        m->push_back(torch::nn::ReLU());
      } else {
        m->push_back(QActivation(a));
      }
    }
  }
  m->push_back(torch::nn::Softmax(-1));
  return m;
}

// QKeras's qtools_model_test.py::test_qenergy model (QAdaptiveActivation -> QActivation).
torch::nn::Sequential qkeras_mlp() {
  return torch::nn::Sequential(
      QDense(QLinearOptions(784, 300).kernel_quantizer("binary()").bias_quantizer("binary()")),
      QActivation("quantized_relu(4,0)"),
      QDense(QLinearOptions(300, 100)
                 .kernel_quantizer("quantized_bits(4,0,1)")
                 .bias_quantizer("quantized_bits(4,0,1)")),
      QActivation("quantized_relu(4,0)"),
      QDense(QLinearOptions(100, 10)
                 .kernel_quantizer("quantized_bits(4,0,1)")
                 .bias_quantizer("quantized_bits(4,0,1)")),
      torch::nn::Softmax(-1));
}

torch::nn::Sequential small_cnn() {
  return torch::nn::Sequential(
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
      torch::nn::BatchNorm2d(6), QGlobalAvgPool2d(), torch::nn::Flatten(), torch::nn::Linear(6, 3));
}

torch::nn::Sequential po2_mix() {
  return torch::nn::Sequential(
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
      QActivation("quantized_bits(4,2,alpha=1)"), QDense(QLinearOptions(4, 2)));
}

torch::nn::Sequential lstm_model() {
  return torch::nn::Sequential(
      QLSTM(QLSTMOptions(8, 16).kernel_quantizer(kW6).recurrent_quantizer(kW4).bias_quantizer(kB8)),
      QActivation("quantized_relu(4)"));
}

torch::nn::Sequential one_d() {
  return torch::nn::Sequential(
      QConv1d(QConv1dOptions(2, 4, 3).kernel_quantizer(kW4).bias_quantizer(kB8)),
      QBatchNorm1d(QBatchNormOptions(4).inverse_quantizer("quantized_bits(8,3,alpha=1)")),
      QActivation("quantized_relu(4,1)"),
      QSeparableConv1d(QSeparableConv1dOptions(4, 6, 3)
                           .depth_multiplier(2)
                           .depthwise_quantizer("quantized_po2(4,1)")
                           .pointwise_quantizer(kW4)),
      QActivation("ternary(alpha=1)"), torch::nn::Flatten(),
      QLinearBatchNorm(QLinearBatchNormOptions(36, 3).kernel_quantizer(kW6).bias_quantizer(kB8)));
}

torch::nn::Sequential gru_model() {
  return torch::nn::Sequential(QGRU(QGRUOptions(4, 6)
                                        .num_layers(2)
                                        .bidirectional(true)
                                        .batch_first(true)
                                        .kernel_quantizer(kW6)
                                        .recurrent_quantizer(kW4)
                                        .bias_quantizer(kB8)
                                        .state_quantizer("quantized_bits(8,2,alpha=1)")),
                               QActivation("quantized_relu(4)"),
                               QDense(QLinearOptions(12, 3).kernel_quantizer(kW6)));
}

torch::nn::Sequential rnn_model() {
  return torch::nn::Sequential(QSimpleRNN(QSimpleRNNOptions(6, 10)
                                              .bias(false)
                                              .kernel_quantizer(kW6)
                                              .recurrent_quantizer(kW4)
                                              .activation("quantized_tanh(6)")),
                               QActivation("quantized_relu(4)"));
}

// Transposed convolutions, adaptive activations, torch convolutions, dropout, upsampling.
torch::nn::Sequential misc_model() {
  return torch::nn::Sequential(
      QConv2d(QConv2dOptions(2, 4, 3).padding(1).kernel_quantizer(kW4).bias_quantizer(kB8)),
      QAdaptiveActivation(QAdaptiveActivationOptions("quantized_relu", 4)),
      QConvTranspose2d(QConv2dOptions(4, 2, 2).stride(2).kernel_quantizer(kW6)),
      torch::nn::Dropout(0.5), torch::nn::Conv2d(torch::nn::Conv2dOptions(2, 3, 3)),
      torch::nn::Upsample(torch::nn::UpsampleOptions().scale_factor(std::vector<double>{2.0, 2.0})),
      torch::nn::AdaptiveAvgPool2d(1), torch::nn::Flatten(), QActivation("quantized_bits(8,2)"));
}

// ---- tests ----

TEST(QToolsTypes, QuantizersAndNames) {
  expect_type(heteroq::cost::qtools_type("int8"), 8, 0, true);
  expect_type(heteroq::cost::qtools_type("int16"), 16, 7, true);
  expect_type(heteroq::cost::qtools_type("int32"), 32, 10, true);
  EXPECT_TRUE(heteroq::cost::qtools_type("fp16").is_floating_point);
  EXPECT_EQ(heteroq::cost::qtools_type("fp32").bits, 32);
  expect_type(heteroq::cost::qtools_type("quantized_bits(6,2,alpha=1)"), 6, 2, true);
  expect_type(heteroq::cost::qtools_type("quantized_relu(6,1)"), 6, 1, false);
  const QType po2 = heteroq::cost::qtools_type("quantized_po2(4,1)");
  EXPECT_TRUE(po2.is_po2);
  EXPECT_EQ(po2.max_value, 1.0);
  EXPECT_EQ(po2.bits, 4);
  EXPECT_EQ(heteroq::cost::qtools_type("ternary()").mode, heteroq::cost::OperandMode::kTernary);
  EXPECT_EQ(heteroq::cost::qtools_type("bernoulli()").mode, heteroq::cost::OperandMode::kBinary01);
  EXPECT_EQ(heteroq::cost::qtools_type("quantized_relu(1,1)").mode,
            heteroq::cost::OperandMode::kBinary01);
  EXPECT_THROW(heteroq::cost::qtools_type("int7"), heteroq::InvalidArgument);
}

// A 2-layer MLP with QTools's defaults (DRAM, rd_wr_on_io, int8 source), term by term.
TEST(QToolsEnergy, TwoLayerMlpByHand) {
  const DataTypeMap map = heteroq::cost::data_types(small_mlp(), {1, 4});
  ASSERT_EQ(map.layers.size(), 3u);
  // Layer 0: x q<8,0,s> (int8 source) times w q<6,0,s>: int 0, fraction 7 + 5, 13 bits; summed
  // 4 at a time (+2 integer bits), then the bias q<6,0,s> (int max(0, 2) + 1, fraction 12).
  const auto& l0 = layer(map, "0");
  EXPECT_EQ(l0.stages.at(0).multiplier.bits, 13);
  expect_type(l0.stages[0].multiplier, 13, 0, true);
  expect_type(l0.output, 16, 3, true);
  EXPECT_EQ(l0.operators.at(0).kind, "FixedPointMultiplier");
  EXPECT_DOUBLE_EQ(l0.operators[0].gate_bits, std::sqrt(48.0));
  EXPECT_EQ(l0.operation_count, 12);
  // Layer 2: x q<4,0,u> times w q<6,0,s>: int 0, fraction 4 + 5, 10 bits signed; 3 at a time
  // (+2), then the bias (int 3, fraction 9).
  const auto& l2 = layer(map, "2");
  expect_type(l2.input, 4, 0, false);
  expect_type(l2.stages.at(0).multiplier, 10, 0, true);
  expect_type(l2.output, 13, 3, true);

  const EnergyReport e = heteroq::cost::energy(small_mlp(), {1, 4});
  const double in0 = mem(4 * 8, "dram");  // the input layer reads from DRAM (rd_wr_on_io)
  const double par0 = mem(12 * 6, "dram") + mem(3 * 6, "dram");
  const double op0 = 12 * (fpm_mul(std::sqrt(6.0 * 8.0)) + fpm_add(16));
  const double out0 = mem(3 * 16, "dram");
  const double out1 = mem(3 * 4, "dram");
  const double in2 = mem(3 * 4, "dram");
  const double par2 = mem(6 * 6, "dram") + mem(2 * 6, "dram");
  const double op2 = 6 * (fpm_mul(std::sqrt(6.0 * 4.0)) + fpm_add(13));
  const double out2 = mem(2 * 13, "dram");  // the output layer writes to DRAM
  EXPECT_NEAR(layer(e, "0").inputs, in0, 1e-9);
  EXPECT_NEAR(layer(e, "0").parameters, par0, 1e-9);
  EXPECT_NEAR(layer(e, "0").op_cost, op0, 1e-9);
  EXPECT_NEAR(layer(e, "0").outputs, out0, 1e-9);
  EXPECT_NEAR(layer(e, "1").outputs, out1, 1e-9);
  EXPECT_NEAR(layer(e, "2").inputs, in2, 1e-9);
  EXPECT_NEAR(layer(e, "2").parameters, par2, 1e-9);
  EXPECT_NEAR(layer(e, "2").op_cost, op2, 1e-9);
  EXPECT_NEAR(layer(e, "2").outputs, out2, 1e-9);
  // include_energy: dense layers count inputs, parameters, op_cost; activations their outputs.
  EXPECT_NEAR(e.total, in0 + par0 + op0 + out1 + in2 + par2 + op2, 1e-9);
  EXPECT_EQ(e.total_cost, static_cast<int64_t>(in0 + par0 + op0 + out0 + mem(3 * 16, "dram") +
                                               out1 + in2 + par2 + op2 + out2));
  // The energy of the map alone is the same.
  EXPECT_EQ(heteroq::cost::energy(map).total, e.total);
  // SRAM, no I/O special case, a 1 MiB minimum SRAM, weights hard-wired.
  QToolsOptions o;
  o.weights_on_memory = "fixed";
  o.activations_on_memory = "sram";
  o.rd_wr_on_io = false;
  o.min_sram_size = 8 << 20;
  const EnergyReport s = heteroq::cost::energy(small_mlp(), {1, 4}, o);
  EXPECT_EQ(layer(s, "0").parameters, 0.0);
  EXPECT_NEAR(layer(s, "0").inputs, mem(32, "sram", false, 8 << 20), 1e-12);
  EXPECT_NEAR(layer(s, "1").outputs, mem(12, "sram", false, 8 << 20), 1e-12);
}

// QKeras's own QTools energy test: the same per-layer numbers (2 decimals) and totals.
TEST(QToolsEnergy, QKerasQEnergyTest) {
  QToolsOptions o;
  o.weights_on_memory = "sram";
  o.activations_on_memory = "sram";
  o.min_sram_size = 8 * 16 * 1024 * 1024;
  o.rd_wr_on_io = false;
  o.source_quantizer = "int8";
  o.keras_quantizer = "int8";
  o.keras_accumulator = "int32";
  const auto layers = heteroq::cost::describe_model(qkeras_mlp(), {1, 784});
  const EnergyReport trial = heteroq::cost::energy(layers, o);
  o.for_reference = true;
  const EnergyReport ref = heteroq::cost::energy(layers, o);
  const auto expect = [](const heteroq::cost::LayerEnergy& l, double in, double out, double par,
                         double op) {
    EXPECT_NEAR(l.inputs, in, 0.005) << l.name;
    EXPECT_NEAR(l.outputs, out, 0.005) << l.name;
    EXPECT_NEAR(l.parameters, par, 0.005) << l.name;
    EXPECT_NEAR(l.op_cost, op, 0.005) << l.name;
  };
  // qtools_model_test.py's ref_energy_dict and trial_energy_dict for d0, d1, d2.
  expect(layer(ref, "0"), 372.77, 570.57, 111975.96, 70560.0);
  expect(layer(ref, "2"), 570.57, 190.19, 14313.66, 26500.0);
  expect(layer(ref, "4"), 190.19, 19.02, 483.08, 883.33);
  expect(layer(trial, "0"), 372.77, 342.34, 13997.95, 15729.0);
  expect(layer(trial, "2"), 72.27, 110.31, 7158.73, 3250.0);
  expect(layer(trial, "4"), 26.63, 11.41, 243.44, 102.08);
  EXPECT_EQ(ref.qtools_total, 226629);
  EXPECT_EQ(trial.qtools_total, 41070);
}

// QKeras's qtools_model_test.py::test_qdepthwiseconv2d (its JSON adds the sign bit to int_bits:
// 1, 8, 8 and 11 there).
TEST(QToolsDataTypes, QKerasDepthwiseTest) {
  torch::nn::Sequential m(QDepthwiseConv2d(QDepthwiseConv2dOptions(3, {1, 7})
                                               .depthwise_quantizer("quantized_bits(8,0,1,alpha=1)")
                                               .bias_quantizer("quantized_bits(12,6,1,alpha=1)")),
                          QConv2d(QConv2dOptions(3, 16, 1)
                                      .kernel_quantizer("quantized_bits(4,0,1,alpha=1)")
                                      .bias_quantizer("quantized_bits(12,4,1,alpha=1)")));
  const DataTypeMap map = heteroq::cost::data_types(m, {1, 3, 64, 64});
  expect_type(layer(map, "0").stages.at(0).multiplier, 15, 0, true);
  expect_type(layer(map, "0").stages.at(0).accumulator, 22, 7, true);
  expect_type(layer(map, "1").stages.at(0).multiplier, 25, 7, true);
  expect_type(layer(map, "1").stages.at(0).accumulator, 28, 10, true);
}

TEST(QToolsDataTypes, Conv) {
  // QConv2d 2 -> 3, 3x3, on 5x5: 3x3 outputs; input quantized_relu(8,0) (unsigned).
  torch::nn::Sequential m(
      QConv2d(QConv2dOptions(2, 3, 3).kernel_quantizer(kW4).bias_quantizer(kB8)));
  QToolsOptions o;
  o.source_quantizer = "quantized_relu(8,0)";
  const DataTypeMap map = heteroq::cost::data_types(m, {1, 2, 5, 5}, o);
  const auto& l = layer(map, "0");
  EXPECT_EQ(l.operation_count, 3 * 3 * 3 * 2 * 9);
  const auto& s = l.stages.at(0);
  EXPECT_EQ(s.fan_in, 18);
  // x q<8,0,u> times w q<4,0,s>: int 0, fraction 8 + 3, 12 bits signed.
  expect_type(s.multiplier, 12, 0, true);
  // 18 products: ceil(log2 18) = 5 bits more (17 bits, int 5); bias q<8,3,s> (fraction 4):
  // int max(3, 5) + 1 = 6, fraction max(4, 11) = 11, 18 bits.
  expect_type(s.accumulator, 18, 6, true);
  ASSERT_EQ(l.parameters.size(), 2u);
  EXPECT_EQ(l.parameters[0].count, 3 * 2 * 9);
  EXPECT_EQ(l.parameters[1].count, 3);
  const EnergyReport e = heteroq::cost::energy(m, {1, 2, 5, 5}, o);
  EXPECT_NEAR(layer(e, "0").op_cost, 486 * (fpm_mul(std::sqrt(32.0)) + fpm_add(18)), 1e-9);
}

TEST(QToolsDataTypes, Po2AndTernaryMultipliers) {
  // po2 weights (4 bits, max_value 1) times int8: a shifter. Exponents in [-4, 0]:
  // bits 8 + 4 + 0 = 12, int 0 + 0; gate 1 x b log10(b), b = sqrt(2^4 x 8).
  torch::nn::Sequential po2(
      QDense(QLinearOptions(4, 2).bias(false).kernel_quantizer("quantized_po2(4,1)")));
  const auto& p = layer(heteroq::cost::data_types(po2, {1, 4}), "0");
  EXPECT_EQ(p.operators.at(0).kind, "Shifter");
  expect_type(p.stages.at(0).multiplier, 12, 0, true);
  const double b = std::sqrt(16.0 * 8.0);
  EXPECT_DOUBLE_EQ(p.operators[0].gate_bits, b * std::log10(b));
  EXPECT_EQ(p.operators[0].gate_factor, 1.0);
  expect_type(p.output, 14, 2, true);  // 4 products: +2 bits; no bias
  // Ternary weights times an unsigned 8-bit input: a mux of 8 + 1 bits, gate 0.6 x 8 bits.
  torch::nn::Sequential tern(
      QDense(QLinearOptions(4, 2).bias(false).kernel_quantizer("ternary()")));
  QToolsOptions o;
  o.source_quantizer = "quantized_relu(8,0)";
  const auto& t = layer(heteroq::cost::data_types(tern, {1, 4}, o), "0");
  EXPECT_EQ(t.operators.at(0).kind, "Mux");
  expect_type(t.stages.at(0).multiplier, 9, 0, true);
  EXPECT_DOUBLE_EQ(t.operators[0].gate_factor, 0.6);
  EXPECT_DOUBLE_EQ(t.operators[0].gate_bits, 8.0);
  const EnergyReport e = heteroq::cost::energy(tern, {1, 4}, o);
  EXPECT_NEAR(layer(e, "0").op_cost, 8 * (0.6 * fpm_add(8) + fpm_add(11)), 1e-12);
  // Binary weights times binary inputs: an xor gate, 0.3 x 1 bit.
  torch::nn::Sequential bin(QActivation("binary()"),
                            QDense(QLinearOptions(4, 2).kernel_quantizer("binary()")));
  const auto& x = layer(heteroq::cost::data_types(bin, {1, 4}), "1");
  EXPECT_EQ(x.operators.at(0).kind, "XorGate");
  EXPECT_DOUBLE_EQ(x.operators[0].gate_bits, 1.0);
}

TEST(QToolsDataTypes, BatchNorm) {
  // QBatchNorm1d without quantizers after an int8 input: gamma and variance at the default type,
  // beta and mean at the input's; gamma / stddev in float (a fixed-point divisor), then a float
  // multiply and add: the output is fp32. Only the parameters count in the total.
  torch::nn::Sequential q(QBatchNorm1d(QBatchNormOptions(3)));
  const EnergyReport e = heteroq::cost::energy(q, {1, 3});
  const DataTypeMap map = heteroq::cost::data_types(q, {1, 3});
  const auto& l = layer(map, "0");
  EXPECT_EQ(l.role, "batchnorm");
  EXPECT_TRUE(l.output.is_floating_point);
  EXPECT_EQ(l.operators.at(0).kind, "FloatingPointDivider");
  EXPECT_EQ(l.operators.at(1).kind, "FloatingPointMultiplier");
  EXPECT_NEAR(layer(e, "0").op_cost, 3 * (3.7 + 3.7), 1e-12);
  EXPECT_NEAR(layer(e, "0").parameters, 4 * mem(3 * 8, "dram"), 1e-9);
  EXPECT_EQ(layer(e, "0").included, std::vector<std::string>{"parameters"});
  EXPECT_DOUBLE_EQ(layer(e, "0").total, layer(e, "0").parameters);
  // torch's BatchNorm1d (a Keras BatchNormalization): everything at the default int8; the float
  // divider and multiplier priced as 32-bit fixed-point multipliers.
  torch::nn::Sequential f(torch::nn::BatchNorm1d(3));
  const EnergyReport ef = heteroq::cost::energy(f, {1, 3});
  EXPECT_NEAR(layer(ef, "0").op_cost, 3 * 2 * fpm_mul(32), 1e-9);
  expect_type(layer(heteroq::cost::data_types(f, {1, 3}), "0").output, 8, 0, true);
}

// QTools's average pooling: C_out x pool additions at the accumulator's width (QTools's energy
// crashes on Keras average pooling, google/qkeras#100; heteroq prices the intended sum).
TEST(QToolsEnergy, AveragePooling) {
  torch::nn::Sequential m(QActivation("quantized_relu(4,0)"),
                          torch::nn::AvgPool2d(torch::nn::AvgPool2dOptions(2)));
  const DataTypeMap map = heteroq::cost::data_types(m, {1, 2, 4, 4});
  const auto& p = layer(map, "1");
  EXPECT_EQ(p.operation_count, 2 * 4);
  expect_type(p.output, 6, 2, false);  // 4 values: 2 more bits
  const EnergyReport e = heteroq::cost::energy(m, {1, 2, 4, 4});
  EXPECT_NEAR(layer(e, "1").op_cost, 8 * fpm_add(6), 1e-12);
}

TEST(QToolsReference, QuantizedAndFloatModelsHaveTheSameReference) {
  QToolsOptions o;
  o.for_reference = true;
  const EnergyReport q = heteroq::cost::energy(jet_mlp(), {1, 16}, o);
  const EnergyReport f = heteroq::cost::energy(jet_mlp("", ""), {1, 16}, o);
  EXPECT_DOUBLE_EQ(q.total, f.total);
  // The float model priced with int8 weights and int32 accumulators is its own reference.
  QToolsOptions k;
  k.source_quantizer = "int8";
  k.keras_quantizer = "int8";
  k.keras_accumulator = "int32";
  EXPECT_DOUBLE_EQ(heteroq::cost::energy(jet_mlp("", ""), {1, 16}, k).total, f.total);
  // Every layer at int8 x int8 products summed in int32: 16 x 64 products of the first layer.
  const DataTypeMap map = heteroq::cost::data_types(jet_mlp(), {1, 16}, o);
  const auto& l0 = layer(map, "0");
  expect_type(l0.stages.at(0).weight, 8, 0, true);
  expect_type(l0.output, 32, 10, true);
  EXPECT_NEAR(layer(q, "0").op_cost, 1024 * (fpm_mul(8) + fpm_add(32)), 1e-9);
  // The size reference: every value at 8 bits.
  const SizeReport s = heteroq::cost::model_size(jet_mlp(), {1, 16});
  const int64_t params = 16 * 64 + 64 + 64 * 32 + 32 + 32 * 32 + 32 + 32 * 5 + 5;
  EXPECT_EQ(s.parameter_bits, 6 * params);
  EXPECT_EQ(s.reference_parameter_bits, 8 * params);
  EXPECT_EQ(s.activation_bits, 8 * 16 + 6 * (64 + 32 + 32) + 8 * 5);  // softmax: output_bits
  EXPECT_EQ(s.reference_activation_bits, 8 * 16 + 8 * (64 + 32 + 32) + 8 * 5);
  EXPECT_EQ(s.total_bits, s.parameter_bits + s.activation_bits);
  const SizeReport r = heteroq::cost::model_size(jet_mlp(), {1, 16}, o);
  EXPECT_EQ(r.total_bits, s.reference_total_bits);
}

// Lowering any bit width never raises the energy or the size: the weights', the activations',
// both, in every memory model.
TEST(QToolsInvariants, MonotoneInBitWidths) {
  for (const char* memory : {"dram", "sram", "fixed"}) {
    QToolsOptions o;
    o.weights_on_memory = memory;
    o.activations_on_memory = memory;
    std::vector<double> last_energy(3, 0.0);
    std::vector<int64_t> last_size(3, 0);
    for (int bits = 2; bits <= 16; ++bits) {
      const std::string w = "quantized_bits(" + std::to_string(bits) + ",0,alpha=1)";
      const std::string a = "quantized_relu(" + std::to_string(bits) + ",0)";
      const std::vector<torch::nn::Sequential> models = {jet_mlp(w, "quantized_relu(6,0)"),
                                                         jet_mlp(kW6, a), jet_mlp(w, a)};
      for (size_t i = 0; i < models.size(); ++i) {
        const auto layers = heteroq::cost::describe_model(models[i], {1, 16});
        const double e = heteroq::cost::energy(layers, o).total;
        const int64_t s = heteroq::cost::model_size(layers, o).total_bits;
        EXPECT_GE(e, last_energy[i]) << memory << " model " << i << " bits " << bits;
        EXPECT_GE(s, last_size[i]) << "model " << i << " bits " << bits;
        last_energy[i] = e;
        last_size[i] = s;
      }
    }
  }
}

TEST(QToolsErrors, UnknownLayersAndBadInput) {
  LayerInfo mystery;
  mystery.name = "blk.3";
  mystery.type = "Mystery";
  mystery.input_shape = mystery.output_shape = {1, 4};
  mystery.parameters = 10;
  std::vector<LayerInfo> layers = heteroq::cost::describe_model(small_mlp(), {1, 4});
  layers.insert(layers.begin() + 1, mystery);
  try {
    heteroq::cost::energy(layers);
    ADD_FAILURE() << "no exception";
  } catch (const heteroq::InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("layer 'blk.3' (Mystery)"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("unknown_layers_as_zero"), std::string::npos);
  }
  QToolsOptions o;
  o.unknown_layers_as_zero = true;
  const EnergyReport e = heteroq::cost::energy(layers, o);
  EXPECT_EQ(e.counted_as_zero, std::vector<std::string>{"blk.3"});
  EXPECT_EQ(layer(e, "blk.3").total, 0.0);
  EXPECT_TRUE(layer(e, "blk.3").counted_as_zero);
  EXPECT_NE(e.to_string().find("counted as zero (unknown types): blk.3"), std::string::npos);
  // Its input's type passes through: the next layer sees layer 0's output.
  const DataTypeMap map = heteroq::cost::data_types(layers, o);
  EXPECT_EQ(layer(map, "1").input, layer(map, "0").output);
  // A wrong input shape names the layer whose forward pass fails.
  try {
    heteroq::cost::energy(small_mlp(), {1, 5});
    ADD_FAILURE() << "no exception";
  } catch (const heteroq::InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("layer '0'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(heteroq::cost::energy(small_mlp(), {}), heteroq::InvalidArgument);
  // Inconsistent geometry.
  layers = heteroq::cost::describe_model(small_mlp(), {1, 4});
  layers[0].in_channels = 5;
  try {
    heteroq::cost::data_types(layers);
    ADD_FAILURE() << "no exception";
  } catch (const heteroq::InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("layer '0' (QLinear)"), std::string::npos) << e.what();
  }
  // Bad options name the option.
  const auto bad = [&](auto set, const char* option) {
    QToolsOptions b;
    set(b);
    try {
      heteroq::cost::energy(small_mlp(), {1, 4}, b);
      ADD_FAILURE() << "no exception for " << option;
    } catch (const heteroq::InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("`") + option + "`"), std::string::npos)
          << e.what();
    }
  };
  bad([](QToolsOptions& b) { b.weights_on_memory = "flash"; }, "weights_on_memory");
  bad([](QToolsOptions& b) { b.activations_on_memory = ""; }, "activations_on_memory");
  bad([](QToolsOptions& b) { b.process = "tsmc7"; }, "process");
  bad([](QToolsOptions& b) { b.min_sram_size = -1; }, "min_sram_size");
  bad([](QToolsOptions& b) { b.source_quantizer = "int7"; }, "source_quantizer");
  bad([](QToolsOptions& b) { b.reference_accumulator = "int8"; }, "reference_accumulator");
  bad([](QToolsOptions& b) { b.keras_accumulator = "quantized_bits("; }, "keras_accumulator");
}

TEST(QToolsDataTypes, EveryLayerFamily) {
  // Convolutions, batch norms, pooling, separable and folded layers, float layers, recurrent.
  for (const auto& [m, shape] : std::vector<std::pair<torch::nn::Sequential, std::vector<int64_t>>>{
           {small_cnn(), {2, 3, 12, 12}},
           {po2_mix(), {1, 8}},
           {lstm_model(), {5, 2, 8}},
           {one_d(), {1, 2, 10}},
           {gru_model(), {3, 7, 4}},
           {rnn_model(), {4, 2, 6}},
           {misc_model(), {1, 2, 6, 6}}}) {
    const EnergyReport e = heteroq::cost::energy(m, shape);
    EXPECT_GT(e.total, 0);
    EXPECT_TRUE(e.counted_as_zero.empty());
    for (const auto& l : e.layers) EXPECT_GE(l.total, 0) << l.name;
    const auto j = nlohmann::json::parse(heteroq::cost::data_types(m, shape).to_json());
    EXPECT_EQ(j["layers"].size(), e.layers.size());
  }
  const DataTypeMap cnn = heteroq::cost::data_types(small_cnn(), {2, 3, 12, 12});
  // The separable convolution: the pointwise stage multiplies the depthwise accumulator.
  const auto& sep = layer(cnn, "5");
  ASSERT_EQ(sep.stages.size(), 2u);
  EXPECT_EQ(sep.stages[1].input, sep.stages[0].accumulator);
  EXPECT_EQ(sep.stages[0].fan_in, 9);
  EXPECT_EQ(sep.stages[1].fan_in, 16);
  // The depthwise convolution sums Kh x Kw products per output.
  EXPECT_EQ(layer(cnn, "3").stages.at(0).fan_in, 9);
  EXPECT_EQ(layer(cnn, "8").role, "max_pool");
  EXPECT_EQ(layer(cnn, "7").role, "avg_pool");
  // Dropout is not in an inference graph: 0, and its input's type passes on.
  const DataTypeMap misc = heteroq::cost::data_types(misc_model(), {1, 2, 6, 6});
  EXPECT_EQ(layer(misc, "3").role, "identity");
  EXPECT_EQ(layer(misc, "3").output, layer(misc, "2").output);
  EXPECT_EQ(layer(heteroq::cost::energy(misc_model(), {1, 2, 6, 6}), "3").total, 0.0);
  // The transposed convolution: (in / groups) x k x k products per accumulator at most.
  EXPECT_EQ(layer(misc, "2").stages.at(0).fan_in, 4 * 2 * 2);
  EXPECT_EQ(layer(misc, "2").operation_count, 6 * 6 * 4 * 2 * 2 * 2);
  // The LSTM: its output (no state quantizer) has the default type; 2 stages.
  const DataTypeMap lstm = heteroq::cost::data_types(lstm_model(), {5, 2, 8});
  EXPECT_EQ(layer(lstm, "0").stages.size(), 2u);
  EXPECT_EQ(layer(lstm, "0").operation_count, 5 * 4 * 16 * 8 + 5 * 4 * 16 * 16);
}

// Writes the reports of the models for tests/python/test_qtools.py when HETEROQ_QTOOLS_JSON
// names a file.
TEST(QToolsCrossLanguage, WritesReportsForPython) {
  nlohmann::json out;
  const std::vector<std::tuple<std::string, torch::nn::Sequential, std::vector<int64_t>>> models = {
      {"mlp", small_mlp(), {1, 4}},
      {"jet", jet_mlp(), {1, 16}},
      {"jet_float", jet_mlp("", ""), {1, 16}},
      {"cnn", small_cnn(), {2, 3, 12, 12}},
      {"mix", po2_mix(), {1, 8}},
      {"lstm", lstm_model(), {5, 2, 8}},
      {"one_d", one_d(), {1, 2, 10}},
      {"gru", gru_model(), {3, 7, 4}},
      {"rnn", rnn_model(), {4, 2, 6}},
      {"misc", misc_model(), {1, 2, 6, 6}}};
  QToolsOptions sram;
  sram.weights_on_memory = "sram";
  sram.activations_on_memory = "sram";
  sram.rd_wr_on_io = false;
  sram.min_sram_size = 1 << 20;
  QToolsOptions reference;
  reference.for_reference = true;
  for (const auto& [name, model, shape] : models) {
    const auto layers = heteroq::cost::describe_model(model, shape);
    for (const auto& [variant, o] : {std::pair{"default", QToolsOptions{}}, std::pair{"sram", sram},
                                     std::pair{"reference", reference}}) {
      const auto map = heteroq::cost::data_types(layers, o);
      const auto e = heteroq::cost::energy(layers, o);
      const auto s = heteroq::cost::model_size(layers, o);
      EXPECT_EQ(nlohmann::json::parse(e.to_json())["total"].get<double>(), e.total);
      out[name][variant] = {{"data_types", map.to_json()}, {"data_types_table", map.to_string()},
                            {"energy", e.to_json()},       {"energy_table", e.to_string()},
                            {"size", s.to_json()},         {"size_table", s.to_string()}};
    }
  }
  if (const char* path = std::getenv("HETEROQ_QTOOLS_JSON")) {
    std::ofstream(path) << out.dump();
  }
}

}  // namespace
