// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// heteroq_deploy_only_test DIR: the deploy-only consumer (linked with heteroq_deploy alone, no
// LibTorch). Loads DIR/model.engine, which the find-package consumer wrote with
// heteroq::deploy::compile, runs it on the inputs of DIR/samples.bin and checks that its outputs
// equal the LibTorch model's (bit for bit); then checks that truncated and corrupted copies of
// the engine file are refused with heteroq::InvalidArgument naming the file. Exit status 0 on
// success, 1 on a failed check, 2 on bad usage.
#include <cstdint>
#include <cstring>
#include <exception>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "heteroq/deploy/engine.h"

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
  std::cout << (ok ? "ok:   " : "FAIL: ") << what << "\n";
  if (!ok) ++failures;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

void write_file(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

// Loading `path` must throw heteroq::InvalidArgument whose message names the file.
void expect_refused(const std::string& path, const std::string& what) {
  try {
    heteroq::deploy::Engine::load(path);
    check(false, what + ": loaded without an error");
  } catch (const heteroq::InvalidArgument& e) {
    const std::string msg = e.what();
    check(msg.find(path) != std::string::npos, what + ": refused (" + msg + ")");
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: " << argv[0] << " DIR (with model.engine and samples.bin)\n";
    return 2;
  }
  const std::string dir = argv[1];
  try {
    const heteroq::deploy::Engine engine = heteroq::deploy::Engine::load(dir + "/model.engine");
    const std::string samples = read_file(dir + "/samples.bin");
    int64_t header[3] = {0, 0, 0};
    if (samples.size() < sizeof(header)) throw std::runtime_error("samples.bin is truncated");
    std::memcpy(header, samples.data(), sizeof(header));
    const int64_t batch = header[0], in = header[1], out = header[2];
    const size_t expected_size = sizeof(header) + static_cast<size_t>(batch * (in + out)) * sizeof(float);
    check(batch > 0 && samples.size() == expected_size, "samples.bin holds " +
          std::to_string(batch) + " samples");
    check(engine.input_size() == in && engine.output_size() == out,
          "the engine maps " + std::to_string(engine.input_size()) + " inputs to " +
              std::to_string(engine.output_size()) + " outputs (samples: " + std::to_string(in) +
              " -> " + std::to_string(out) + ")");
    if (failures != 0) return 1;
    std::vector<float> x(static_cast<size_t>(batch * in)), expected(static_cast<size_t>(batch * out));
    std::memcpy(x.data(), samples.data() + sizeof(header), x.size() * sizeof(float));
    std::memcpy(expected.data(), samples.data() + sizeof(header) + x.size() * sizeof(float),
                expected.size() * sizeof(float));

    std::vector<float> y(expected.size());
    engine.run(x.data(), batch, y.data());
    int64_t differ = 0;
    for (size_t i = 0; i < y.size(); ++i) differ += y[i] != expected[i];
    check(differ == 0, "the engine's " + std::to_string(y.size()) +
                           " outputs equal the LibTorch model's bit for bit (" +
                           std::to_string(differ) + " differ)");
    check(engine(std::vector<float>(x.begin(), x.begin() + in)) ==
              std::vector<float>(expected.begin(), expected.begin() + out),
          "Engine::operator() on one sample equals it too");

    // Damaged files: truncated at several points (empty included), a header byte flipped, missing.
    // (The file has no checksum of its data section: a flipped weight byte may still load.)
    const std::string data = read_file(dir + "/model.engine");
    const std::string bad = dir + "/damaged.engine";
    for (size_t cut : {size_t{0}, size_t{5}, data.size() / 3, data.size() / 2, data.size() - 1}) {
      write_file(bad, data.substr(0, cut));
      expect_refused(bad, "the engine file truncated to " + std::to_string(cut) + " of " +
                              std::to_string(data.size()) + " bytes");
    }
    std::string flipped = data;
    flipped[8] ^= 0x20;  // the header's opening '{' becomes '['
    write_file(bad, flipped);
    expect_refused(bad, "the engine file with a byte of its header flipped");
    expect_refused(dir + "/missing.engine", "a missing engine file");
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
