// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// heteroq_config_cli: reads model configs with heteroq::nn::module_from_config, for the
// cross-language tests (tests/python/test_config.py). Usage: heteroq_config_cli FILE SHAPE ...
// (pairs; SHAPE is "2,4,6,6", or "-" for no forward pass). Prints one JSON line per FILE:
//   {"config": <to_config of the rebuilt model>, "parameters": [[NAME, [SHAPE]], ...],
//    "buffers": [[NAME, [SHAPE]], ...], "output": [uint32 bits of the outputs]}
// or {"error": MESSAGE} when the config is rejected. "output" holds every output tensor in order,
// one after the other: the output, or a recurrent layer's (output, h_n) / (output, (h_n, c_n)); a
// Sequential root runs its children in turn (so one that ends in a recurrent layer returns that
// layer's outputs, as Python's nn.Sequential). The forward pass runs in eval mode with
// deterministic parameters: every parameter (in named_parameters() order) holds
// linspace(-0.9, 1.1, numel), every floating-point buffer linspace(0.5, 2.0, numel) if its name
// ends in "running_var", else linspace(-0.5, 0.5, numel); the input is linspace(-3, 3, numel).
#include <torch/torch.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "heteroq/heteroq.h"

namespace {

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string shape_of(const torch::Tensor& t) {
  std::string s = "[";
  for (int64_t d = 0; d < t.dim(); ++d) s += (d ? "," : "") + std::to_string(t.size(d));
  return s + "]";
}

// The output tensors of a layer, in order.
std::vector<torch::Tensor> tensors_of(torch::nn::AnyValue value) {
  using Tensor = torch::Tensor;
  if (const auto* t = value.try_get<Tensor>()) return {*t};
  if (const auto* t = value.try_get<std::tuple<Tensor, Tensor>>()) {
    return {std::get<0>(*t), std::get<1>(*t)};
  }
  if (const auto* t = value.try_get<std::tuple<Tensor, std::tuple<Tensor, Tensor>>>()) {
    return {std::get<0>(*t), std::get<0>(std::get<1>(*t)), std::get<1>(std::get<1>(*t))};
  }
  throw std::runtime_error("unexpected output type " + std::string(value.type_info().name()));
}

// model(input); a Sequential's children in turn, whatever the last one returns.
torch::nn::AnyValue forward(torch::nn::AnyModule& model, const torch::Tensor& input) {
  if (auto* seq = model.ptr()->as<heteroq::nn::NestedSequentialImpl>()) {
    return seq->forward_any(torch::nn::AnyValue(input));
  }
  return model.any_forward(input);
}

std::string bits_of(const std::vector<torch::Tensor>& tensors) {
  std::string s = "[";
  bool first = true;
  for (const auto& t : tensors) {
    const torch::Tensor c = t.detach().contiguous().to(torch::kFloat);
    const float* p = c.data_ptr<float>();
    for (int64_t i = 0; i < c.numel(); ++i) {
      uint32_t u;
      std::memcpy(&u, p + i, sizeof(u));
      s += (first ? "" : ",") + std::to_string(u);
      first = false;
    }
  }
  return s + "]";
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

std::string run(const std::string& file, const std::string& shape) {
  std::ifstream in(file);
  if (!in) throw std::runtime_error("cannot read " + file);
  std::stringstream text;
  text << in.rdbuf();
  torch::nn::AnyModule model;
  try {
    model = heteroq::nn::module_from_config(text.str());
  } catch (const heteroq::InvalidArgument& e) {
    return "{\"error\": " + quote(e.what()) + "}";
  }
  torch::nn::Module& m = *model.ptr();
  std::string out = "{\"config\": " + heteroq::nn::to_config(m, -1) + ", \"parameters\": [";
  torch::NoGradGuard no_grad;
  bool first = true;
  for (auto& p : m.named_parameters()) {
    out += (first ? "" : ",") + std::string("[") + quote(p.key()) + "," + shape_of(p.value()) + "]";
    p.value().copy_(torch::linspace(-0.9, 1.1, p.value().numel()).view_as(p.value()));
    first = false;
  }
  out += "], \"buffers\": [";
  first = true;
  for (auto& b : m.named_buffers()) {
    out += (first ? "" : ",") + std::string("[") + quote(b.key()) + "," + shape_of(b.value()) + "]";
    first = false;
    if (!b.value().is_floating_point()) continue;
    const bool var = ends_with(b.key(), "running_var");
    b.value().copy_(
        torch::linspace(var ? 0.5 : -0.5, var ? 2.0 : 0.5, b.value().numel()).view_as(b.value()));
  }
  out += "]";
  if (shape != "-") {
    std::vector<int64_t> dims;
    std::stringstream ss(shape);
    for (std::string d; std::getline(ss, d, ',');) dims.push_back(std::stoll(d));
    int64_t n = 1;
    for (const auto d : dims) n *= d;
    m.eval();
    out += ", \"output\": " +
           bits_of(tensors_of(forward(model, torch::linspace(-3, 3, n).view(dims))));
  }
  return out + "}";
}

}  // namespace

int main(int argc, char** argv) {
  at::set_num_threads(1);  // as the Python side (tests/python/conftest.py): outputs compared bit for bit
  if (argc < 3 || argc % 2 != 1) {
    std::cerr << "usage: heteroq_config_cli FILE SHAPE [FILE SHAPE ...]\n";
    return 2;
  }
  try {
    for (int i = 1; i + 1 < argc; i += 2) std::cout << run(argv[i], argv[i + 1]) << "\n";
  } catch (const std::exception& e) {
    std::cerr << "heteroq_config_cli: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
