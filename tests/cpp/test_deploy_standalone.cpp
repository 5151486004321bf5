// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// heteroq_deploy_run ENGINE_FILE: loads an engine file with heteroq_deploy alone (this program
// links neither LibTorch nor libheteroq), reads float32 samples (raw little-endian, input_size
// per sample) from stdin and writes the output codes (raw int64) to stdout. Used by
// tests/python/test_deploy.py; errors go to stderr with exit status 1.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "heteroq/deploy/engine.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s ENGINE_FILE < inputs.f32 > outputs.i64\n", argv[0]);
    return 2;
  }
  try {
    const heteroq::deploy::Engine engine = heteroq::deploy::Engine::load(argv[1]);
    std::string raw((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    const size_t row = static_cast<size_t>(engine.input_size()) * sizeof(float);
    if (raw.size() % row != 0) {
      std::fprintf(stderr, "error: %zu input bytes are not whole samples of %zu bytes\n", raw.size(), row);
      return 1;
    }
    const auto batch = static_cast<int64_t>(raw.size() / row);
    std::vector<float> x(raw.size() / sizeof(float));
    std::copy(raw.begin(), raw.end(), reinterpret_cast<char*>(x.data()));
    std::vector<int64_t> y(static_cast<size_t>(batch * engine.output_size()));
    engine.run_codes(x.data(), batch, y.data());
    std::fwrite(y.data(), sizeof(int64_t), y.size(), stdout);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
