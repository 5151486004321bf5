// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Consumer test of an installed heteroq (find_package(heteroq) + heteroq::heteroq): a quantizer
// from a spec string and a QLinear forward/backward. Exit status 0 on success, 1 otherwise.
//
// heteroq_find_package_test [OUT_DIR]: with OUT_DIR, also the generator of the deploy-only
// consumer (tests/cmake/deploy-only): compiles a small quantized model with
// heteroq::deploy::compile and writes OUT_DIR/model.engine (Engine::save) and OUT_DIR/samples.bin
// (int64 batch, int64 input size, int64 output size, then the float32 inputs and the float32
// outputs of the LibTorch model's eval forward, model(input_quantizer(x)), little-endian).

#include <torch/torch.h>

#include <cstdint>
#include <exception>
#include <fstream>
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

// Writes the engine file and the samples the deploy-only consumer checks (see the top).
void write_deploy_samples(const std::string& dir) {
  torch::manual_seed(7);
  const char* q6 = "quantized_bits(6,0,alpha=1)";
  torch::nn::Sequential model(
      heteroq::nn::QDense(heteroq::nn::QLinearOptions(16, 12).kernel_quantizer(q6).bias_quantizer(q6)),
      heteroq::nn::QActivation("quantized_relu(6,0)"),
      heteroq::nn::QDense(heteroq::nn::QLinearOptions(12, 5).kernel_quantizer(q6).bias_quantizer(q6)),
      heteroq::nn::QActivation("quantized_bits(8,3,alpha=1)"));
  model->eval();
  heteroq::deploy::CompileOptions options;
  options.input_quantizer = heteroq::get_quantizer("quantized_bits(8,3,alpha=1)");
  const heteroq::deploy::Engine engine = heteroq::deploy::compile(*model, options);
  engine.save(dir + "/model.engine");

  const int64_t batch = 256, in = 16, out = 5;
  torch::Tensor x = torch::randn({batch, in}) * 3;
  torch::Tensor y;
  {
    torch::NoGradGuard no_grad;
    y = model->forward(options.input_quantizer->forward(x)).contiguous();
  }
  check(y.sizes() == torch::IntArrayRef({batch, out}), "the generator's model output is [256, 5]");
  check(std::get<0>(at::_unique(y)).numel() >= 8, "the generator's outputs are not degenerate");
  std::ofstream f(dir + "/samples.bin", std::ios::binary);
  const int64_t header[3] = {batch, in, out};
  f.write(reinterpret_cast<const char*>(header), sizeof(header));
  f.write(reinterpret_cast<const char*>(x.data_ptr<float>()), batch * in * sizeof(float));
  f.write(reinterpret_cast<const char*>(y.data_ptr<float>()), batch * out * sizeof(float));
  check(static_cast<bool>(f), "wrote " + dir + "/model.engine and " + dir + "/samples.bin");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 2) {
    std::cerr << "usage: " << argv[0] << " [OUT_DIR]\n";
    return 2;
  }
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

    if (argc == 2) write_deploy_samples(argv[1]);
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
