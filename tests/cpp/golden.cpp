// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// heteroq_golden: prints, as JSON, the bit patterns of C++ outputs on deterministic inputs, so the
// Python tests (tests/python/test_cross_language.py) can check that both languages give identical
// results. Usage: heteroq_golden SPEC...
//   {"quantizers": {SPEC: [uint32 bits of q(linspace(-5, 5, 2001))], ...},
//    "qlinear": {SPEC: [uint32 bits of QLinear(6, 4) with deterministic parameters], ...},
//    "layers": {NAME: [uint32 bits of a conv/BN/pooling layer with deterministic parameters]},
//    "train": {SPEC: [uint32 bits of forward_train(linspace(-5, 5, 2001)) after manual_seed(0)]},
//    "rnn": {NAME: [uint32 bits of a recurrent layer's outputs (and gradients) with deterministic
//                   parameters and input; see rnn_golden()]}}
#include <torch/torch.h>

#include <cstdint>
#include <cstring>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "heteroq/heteroq.h"

namespace {

void print_bits(const torch::Tensor& t) {
  const torch::Tensor c = t.contiguous().to(torch::kFloat);
  const float* p = c.data_ptr<float>();
  std::cout << "[";
  for (int64_t i = 0; i < c.numel(); ++i) {
    uint32_t u;
    std::memcpy(&u, p + i, sizeof(u));
    std::cout << (i ? "," : "") << u;
  }
  std::cout << "]";
}

// Deterministic values: sin(0.37 k) * scale, k = 0, 1, ...
torch::Tensor wave(torch::IntArrayRef shape, double scale) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return (torch::sin(torch::arange(n, torch::kFloat) * 0.37) * scale).view(shape);
}

void fill_wave(torch::nn::Module& m) {
  torch::NoGradGuard no_grad;
  for (auto& p : m.named_parameters()) p.value().copy_(wave(p.value().sizes(), 0.6));
}

// The recurrent layers (tests/python/test_cross_language.py::test_rnn_identical_to_cpp builds
// the same ones).
void rnn_golden() {
  using namespace heteroq::nn;
  const std::string kq = "quantized_bits(6,0,alpha=1)", rq = "quantized_bits(5,0,alpha=1)",
                    bq = "quantized_bits(8,2,alpha=1)", sq = "quantized_bits(8,1,alpha=1)";
  std::vector<std::pair<std::string, torch::Tensor>> outs;
  {
    QLSTM m(QLSTMOptions(4, 5).num_layers(2).bidirectional(true).batch_first(true)
                .kernel_quantizer(kq).recurrent_quantizer(rq).bias_quantizer(bq)
                .state_quantizer(sq));
    fill_wave(*m);
    m->eval();
    auto [y, s] = m(wave({2, 6, 4}, 1.5), std::make_tuple(wave({4, 2, 5}, 0.5),
                                                          wave({4, 2, 5}, 0.8)));
    outs.emplace_back("lstm", torch::cat({y.flatten(), std::get<0>(s).flatten(),
                                          std::get<1>(s).flatten()}));
    (y.square().sum() + std::get<1>(s).sum()).backward();
    std::vector<torch::Tensor> grads;
    for (const auto& p : m->parameters()) grads.push_back(p.grad().flatten());
    outs.emplace_back("lstm_grad", torch::cat(grads));
  }
  for (const bool reset_after : {true, false}) {
    QGRU m(QGRUOptions(4, 5).num_layers(2).kernel_quantizer(kq).recurrent_quantizer(rq)
               .bias_quantizer(bq).state_quantizer(sq).recurrent_activation("quantized_sigmoid(6)")
               .reset_after(reset_after));
    fill_wave(*m);
    m->eval();
    auto [y, h] = m(wave({6, 2, 4}, 1.5));
    outs.emplace_back(reset_after ? "gru" : "gru_reset_before",
                      torch::cat({y.flatten(), h.flatten()}));
  }
  {
    QSimpleRNN m(QSimpleRNNOptions(4, 5).bidirectional(true).kernel_quantizer(kq)
                     .recurrent_quantizer(rq).activation("quantized_relu(6,2)"));
    fill_wave(*m);
    m->eval();
    auto [y, h] = m(wave({6, 4}, 1.5));  // unbatched
    outs.emplace_back("simple_rnn", torch::cat({y.flatten(), h.flatten()}));
  }
  {
    // Training mode: stochastic rounding and dropout draw from the global generator in the same
    // order in both languages.
    QLSTM m(QLSTMOptions(4, 5).num_layers(2).dropout(0.4)
                .kernel_quantizer("quantized_bits(6,0,alpha=1,use_stochastic_rounding=1)")
                .state_quantizer("quantized_bits(8,1,alpha=1,use_stochastic_rounding=1)")
                .activation("quantized_tanh(6,use_stochastic_rounding=1)")
                .recurrent_activation("sigmoid"));
    fill_wave(*m);
    m->train();
    torch::manual_seed(0);
    auto [y, s] = m(wave({6, 2, 4}, 1.5));
    outs.emplace_back("lstm_train", y.flatten());
  }
  bool first = true;
  for (const auto& [name, y] : outs) {
    std::cout << (first ? "" : ",") << "\"" << name << "\": ";
    print_bits(y.detach());
    first = false;
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    // One thread, as the Python tests run (torch's default here): ATen's convolutions may split
    // their sums differently across threads, which would differ by an ulp from the Python side
    // for reasons that are not heteroq's.
    at::set_num_threads(1);
    const torch::Tensor x = torch::linspace(-5, 5, 2001);
    std::cout << "{\"quantizers\": {";
    for (int i = 1; i < argc; ++i) {
      std::cout << (i > 1 ? "," : "") << "\"" << argv[i] << "\": ";
      print_bits(heteroq::get_quantizer(argv[i])->forward(x));
    }
    std::cout << "}, \"qlinear\": {";
    for (int i = 1; i < argc; ++i) {
      heteroq::nn::QLinear fc(
          heteroq::nn::QLinearOptions(6, 4).kernel_quantizer(argv[i]).bias_quantizer(argv[i]));
      fc->eval();
      torch::NoGradGuard no_grad;
      fc->weight.copy_(torch::linspace(-1.3, 1.1, 24).view({4, 6}));
      fc->bias.copy_(torch::linspace(-0.7, 0.4, 4));
      std::cout << (i > 1 ? "," : "") << "\"" << argv[i] << "\": ";
      print_bits(fc(torch::linspace(-2, 2, 30).view({5, 6})));
    }
    std::cout << "}, \"layers\": {";
    {
      // Deterministic parameters: every parameter and buffer gets linspace values.
      auto fill = [](torch::nn::Module& m) {
        torch::NoGradGuard no_grad;
        m.eval();
        for (auto& p : m.named_parameters()) {
          p.value().copy_(torch::linspace(-0.9, 1.1, p.value().numel()).view_as(p.value()));
        }
      };
      const std::string q = "quantized_bits(6,2,alpha=1)";
      const torch::Tensor x4 = torch::linspace(-3, 3, 2 * 4 * 6 * 6).view({2, 4, 6, 6});
      const torch::Tensor x3 = torch::linspace(-3, 3, 2 * 4 * 9).view({2, 4, 9});
      using namespace heteroq::nn;
      QConv2d c2(QConv2dOptions(4, 6, 3).padding(1).stride(2).kernel_quantizer(q).bias_quantizer(q));
      QConv1d c1(QConv1dOptions(4, 5, 3).kernel_quantizer(q).bias_quantizer(q));
      QConvTranspose2d ct(QConv2dOptions(4, 3, 3).stride(2).kernel_quantizer(q).bias_quantizer(q));
      QDepthwiseConv2d dw(QDepthwiseConv2dOptions(4, 3).depth_multiplier(2).depthwise_quantizer(q)
                              .bias_quantizer(q));
      QSeparableConv2d sc(QSeparableConv2dOptions(4, 5, 3).depthwise_quantizer(q)
                              .pointwise_quantizer(q).bias_quantizer(q));
      QBatchNorm2d bn(QBatchNormOptions(4).gamma_quantizer("quantized_relu_po2(6,2048)")
                          .beta_quantizer("quantized_po2(5)").mean_quantizer("quantized_po2(5)")
                          .variance_quantizer("quantized_relu_po2(6,quadratic_approximation=1)"));
      QAvgPool2d ap(QAvgPool2dOptions(2).average_quantizer("quantized_bits(8,0,alpha=1)")
                        .activation("quantized_relu(6,2)"));
      QGlobalAvgPool2d gp(QGlobalAvgPool2dOptions().average_quantizer("quantized_bits(8,0,alpha=1)"));
      QConv2dBatchNorm fold(QConv2dBatchNormOptions(4, 3, 3).kernel_quantizer(q).bias_quantizer(q));
      fill(*fold);
      fold->train();  // batch statistics, ema_stats_folding
      fill(*c2); fill(*c1); fill(*ct); fill(*dw); fill(*sc); fill(*bn); fill(*ap); fill(*gp);
      {
        torch::NoGradGuard no_grad;
        bn->running_mean.copy_(torch::linspace(-0.5, 0.5, 4));
        bn->running_var.copy_(torch::linspace(0.5, 2.0, 4));
      }
      const std::pair<const char*, torch::Tensor> outs[] = {
          {"conv2d", c2(x4)}, {"conv1d", c1(x3)}, {"convtranspose2d", ct(x4)},
          {"depthwise", dw(x4)}, {"separable", sc(x4)}, {"batchnorm", bn(x4)},
          {"avgpool", ap(x4)}, {"globalavgpool", gp(x4)}, {"folded_train", fold(x4)}};
      bool first = true;
      for (const auto& [name, y] : outs) {
        std::cout << (first ? "" : ",") << "\"" << name << "\": ";
        print_bits(y.detach());
        first = false;
      }
    }
    std::cout << "}, \"train\": {";
    for (int i = 1; i < argc; ++i) {
      torch::manual_seed(0);
      std::cout << (i > 1 ? "," : "") << "\"" << argv[i] << "\": ";
      print_bits(heteroq::get_quantizer(argv[i])->forward_train(x));
    }
    std::cout << "}, \"rnn\": {";
    rnn_golden();
    std::cout << "}}\n";
  } catch (const std::exception& e) {
    std::cerr << "heteroq_golden: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
