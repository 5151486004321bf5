// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Consumer test of an installed heteroq (find_package(heteroq) + heteroq::heteroq): a quantizer
// from a spec string and a QLinear forward/backward. Exit status 0 on success, 1 otherwise.

#include <torch/torch.h>

#include <exception>
#include <iostream>
#include <sstream>
#include <string>

#include "heteroq/heteroq.h"

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
  std::cout << (ok ? "ok:   " : "FAIL: ") << what << "\n";
  if (!ok) ++failures;
}

}  // namespace

int main() {
  try {
    std::cout << "heteroq " << HETEROQ_VERSION_STRING << "\n";

    // quantized_bits(4,0,alpha=1): step 1/8 on [-1, 7/8].
    heteroq::QuantizerPtr q = heteroq::get_quantizer("quantized_bits(4,0,alpha=1)");
    check(q != nullptr, "get_quantizer(\"quantized_bits(4,0,alpha=1)\") returns a quantizer");
    if (q) {
      check(q->bits() == 4, "bits() == 4 (got " + std::to_string(q->bits()) + ")");
      torch::Tensor x = torch::tensor({0.3, -1.2, 0.99});
      torch::Tensor y = q->forward(x);
      torch::Tensor expected = torch::tensor({0.25, -1.0, 0.875}, x.options());
      const bool equal = y.scalar_type() == expected.scalar_type() && torch::equal(y, expected);
      std::ostringstream got;
      got << y;
      check(equal, q->to_string() + "({0.3, -1.2, 0.99}) == {0.25, -1.0, 0.875} exactly" +
                       (equal ? "" : "; got\n" + got.str()));
    }

    // QLinear: forward and backward reach the float weight through the straight-through estimator.
    torch::manual_seed(0);
    heteroq::nn::QLinear fc(heteroq::nn::QLinearOptions(4, 3)
                                .kernel_quantizer("quantized_bits(6,0,alpha=1)")
                                .bias_quantizer("quantized_bits(6,0,alpha=1)"));
    torch::Tensor out = fc(torch::randn({2, 4}));
    check(out.sizes() == torch::IntArrayRef({2, 3}), "QLinear(4, 3) output has shape [2, 3]");
    out.sum().backward();
    const torch::Tensor& grad = fc->weight.grad();
    check(grad.defined() && grad.sizes() == fc->weight.sizes(),
          "QLinear weight has a gradient of the weight's shape");
    if (grad.defined()) {
      check(torch::isfinite(grad).all().item<bool>() && grad.abs().sum().item<double>() > 0.0,
            "the weight gradient is finite and non-zero");
    }
    check(fc->bias.grad().defined(), "QLinear bias has a gradient");
  } catch (const std::exception& e) {
    std::cout << "FAIL: exception: " << e.what() << "\n";
    ++failures;
  }
  if (failures != 0) {
    std::cout << failures << " check(s) failed\n";
    return 1;
  }
  std::cout << "all checks passed\n";
  return 0;
}
