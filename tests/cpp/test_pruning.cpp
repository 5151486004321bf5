// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Pruning in C++: prune_magnitude / apply_masks (unstructured and structured, as
// torch.nn.utils.prune's l1_unstructured and ln_structured), and pruned models in the cost models:
// zero weights cost nothing in BOPs/EBOPs and the FPGA estimate, and in QTools's energy and size
// with skip_zero_weights. tests/python/test_pruning.py checks the same with torch.nn.utils.prune.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "heteroq/cost/hardware.h"
#include "heteroq/cost/qtools.h"
#include "heteroq/errors.h"
#include "heteroq/heteroq.h"
#include "heteroq/nn/regularizer.h"

namespace {

using heteroq::nn::apply_masks;
using heteroq::nn::prune_magnitude;
using namespace heteroq::nn;  // NOLINT

const char* kW6 = "quantized_bits(6,0,alpha=1)";

torch::nn::Sequential jet_mlp() {
  torch::manual_seed(0);
  torch::nn::Sequential m;
  const std::vector<std::pair<int64_t, int64_t>> sizes = {{16, 64}, {64, 32}, {32, 32}, {32, 5}};
  for (size_t i = 0; i < sizes.size(); ++i) {
    m->push_back(QDense(
        QLinearOptions(sizes[i].first, sizes[i].second).kernel_quantizer(kW6).bias_quantizer(kW6)));
    if (i + 1 < sizes.size()) m->push_back(QActivation("quantized_relu(6)"));
  }
  return m;
}

TEST(Pruning, MagnitudeUnstructured) {
  auto m = jet_mlp();
  const auto before = m->parameters();
  std::vector<torch::Tensor> copies;
  for (const auto& p : before) copies.push_back(p.detach().clone());
  const auto masks = prune_magnitude(*m, 0.5);
  ASSERT_EQ(masks.size(), 4u);  // the four kernels; biases untouched
  for (const auto& [name, mask] : masks) {
    EXPECT_EQ(name.substr(name.size() - 6), "weight");
    const auto p = m->named_parameters()[name];
    EXPECT_EQ(mask.sum().item<int64_t>(), p.numel() - std::llround(0.5 * p.numel()));
    EXPECT_TRUE(torch::all(p.detach().masked_select(mask == 0) == 0).item<bool>());
    // the kept values are the largest magnitudes, unchanged
    const auto kept = p.detach().abs().masked_select(mask == 1);
    EXPECT_GE(kept.min().item<double>(), 0.0);
  }
  // the biases are unchanged
  EXPECT_TRUE(torch::equal(m->named_parameters()["0.bias"], copies[1]));
  // an optimizer step brings the pruned values back; apply_masks zeroes them again
  torch::optim::SGD opt(m->parameters(), 0.1);
  auto loss = m->forward(torch::randn({8, 16})).square().mean();
  loss.backward();
  opt.step();
  EXPECT_GT((m->named_parameters()["0.weight"].detach() != 0).sum().item<int64_t>(),
            masks.at("0.weight").sum().item<int64_t>());
  apply_masks(*m, masks);
  EXPECT_EQ((m->named_parameters()["0.weight"].detach() != 0).sum().item<int64_t>(),
            masks.at("0.weight").sum().item<int64_t>());
}

TEST(Pruning, MagnitudeStructuredAndRecurrent) {
  torch::manual_seed(1);
  torch::nn::Sequential m(QConv2d(QConv2dOptions(3, 8, 3).kernel_quantizer(kW6)),
                          torch::nn::BatchNorm2d(8));
  const auto masks = prune_magnitude(*m, 0.25, /*structured=*/true);
  ASSERT_EQ(masks.size(), 1u);  // the batch norm's scale is not pruned
  const auto w = m->named_parameters()["0.weight"].detach();
  const auto zero_rows = (w.reshape({8, -1}).abs().sum(1) == 0);
  EXPECT_EQ(zero_rows.sum().item<int64_t>(), 2);

  QLSTM lstm(QLSTMOptions(4, 5).kernel_quantizer(kW6).recurrent_quantizer(kW6));
  const auto rnn_masks = prune_magnitude(*lstm, 0.5);
  EXPECT_EQ(rnn_masks.size(), 2u);  // weight_ih_l0, weight_hh_l0
  EXPECT_TRUE(rnn_masks.count("weight_ih_l0") && rnn_masks.count("weight_hh_l0"));
}

TEST(Pruning, Errors) {
  auto m = jet_mlp();
  EXPECT_THROW(prune_magnitude(*m, 1.5), heteroq::InvalidArgument);
  EXPECT_THROW(prune_magnitude(*m, -0.1), heteroq::InvalidArgument);
  EXPECT_THROW(apply_masks(*m, {{"9.weight", torch::ones({1})}}), heteroq::InvalidArgument);
  EXPECT_THROW(apply_masks(*m, {{"0.weight", torch::ones({2, 2})}}), heteroq::InvalidArgument);
}

// The jet model, 50% of every kernel pruned: the cost models count the surviving weights.
TEST(Pruning, CostModelsOfPrunedJetModel) {
  auto dense = jet_mlp();
  auto pruned = jet_mlp();
  prune_magnitude(*pruned, 0.5);
  const auto b0 = heteroq::cost::bops(dense, {1, 16});
  const auto b1 = heteroq::cost::bops(pruned, {1, 16});
  const auto q = heteroq::get_quantizer(kW6);
  int64_t total = 0;
  for (size_t i = 0; i < pruned->size(); i += 2) {
    const auto w = q->forward(pruned->named_parameters()[std::to_string(i) + ".weight"].detach());
    const int64_t nonzero = (w != 0).sum().item<int64_t>();
    const int64_t bx = i == 0 ? 8 : 6;
    const auto& l = b1.layers[i];
    EXPECT_EQ(l.multiplications, nonzero) << i;
    EXPECT_EQ(l.bops, nonzero * bx * 6) << i;
    // EBOPs: each weight's exact span times the input width, plus the bias term
    const auto b = q->forward(pruned->named_parameters()[std::to_string(i) + ".bias"].detach());
    double spans = 0, bias_spans = 0;
    for (int64_t e = 0; e < w.numel(); ++e) {
      spans += static_cast<double>(heteroq::cost::bit_span(w.reshape({-1})[e].item<double>()));
    }
    for (int64_t e = 0; e < b.numel(); ++e) {
      bias_spans += static_cast<double>(heteroq::cost::bit_span(b[e].item<double>()));
    }
    EXPECT_DOUBLE_EQ(l.ebops, bx * spans + bias_spans) << i;  // mean span x outputs
    total += w.numel();
  }
  EXPECT_LE(b1.multiplications, total / 2);
  // L1 pruning removes the smallest weights, whose spans are the shortest: EBOPs drop less
  EXPECT_LT(b1.ebops, b0.ebops);
  const auto f0 = heteroq::cost::fpga_estimate(dense, {1, 16});
  const auto f1 = heteroq::cost::fpga_estimate(pruned, {1, 16});
  EXPECT_LT(f1.lut, f0.lut);

  heteroq::cost::QToolsOptions o;
  const auto e0 = heteroq::cost::energy(dense, {1, 16}, o);
  EXPECT_NEAR(heteroq::cost::energy(pruned, {1, 16}, o).total, e0.total, 1e-6 * e0.total);
  o.skip_zero_weights = true;
  const auto types = heteroq::cost::data_types(pruned, {1, 16}, o);
  for (size_t i = 0; i < pruned->size(); i += 2) {
    const auto w = q->forward(pruned->named_parameters()[std::to_string(i) + ".weight"].detach());
    const int64_t nonzero = (w != 0).sum().item<int64_t>();
    EXPECT_EQ(types.layers[i].operation_count, nonzero);
    EXPECT_EQ(types.layers[i].parameters[0].count, nonzero);
    for (const auto& op : types.layers[i].operators) EXPECT_EQ(op.count, nonzero);
  }
  EXPECT_LT(heteroq::cost::energy(pruned, {1, 16}, o).total, 0.7 * e0.total);
  EXPECT_LT(heteroq::cost::model_size(pruned, {1, 16}, o).parameter_bits,
            heteroq::cost::model_size(dense, {1, 16}).parameter_bits);
}

}  // namespace
