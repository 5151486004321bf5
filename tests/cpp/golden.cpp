// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// heteroq_golden: prints, as JSON, the bit patterns of C++ outputs on deterministic inputs, so the
// Python tests (tests/python/test_cross_language.py) can check that both languages give identical
// results. Usage: heteroq_golden SPEC...
//   {"quantizers": {SPEC: [uint32 bits of q(linspace(-5, 5, 2001))], ...},
//    "qlinear": {SPEC: [uint32 bits of QLinear(6, 4) with deterministic parameters], ...},
//    "train": {SPEC: [uint32 bits of forward_train(linspace(-5, 5, 2001)) after manual_seed(0)]}}
#include <torch/torch.h>

#include <cstdint>
#include <cstring>
#include <iostream>

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

}  // namespace

int main(int argc, char** argv) {
  try {
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
    std::cout << "}, \"train\": {";
    for (int i = 1; i < argc; ++i) {
      torch::manual_seed(0);
      std::cout << (i > 1 ? "," : "") << "\"" << argv[i] << "\": ";
      print_bits(heteroq::get_quantizer(argv[i])->forward_train(x));
    }
    std::cout << "}}\n";
  } catch (const std::exception& e) {
    std::cerr << "heteroq_golden: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
