// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// The EBOPsLayer interface's destructor and total_ebops(), the sum of ebops() over a model.
#include "heteroq/nn/ebops.h"

#include <ATen/ATen.h>

#include <string>
#include <unordered_set>

#include "heteroq/errors.h"

namespace heteroq::nn {

EBOPsLayer::~EBOPsLayer() = default;

namespace {

// Adds `layer`'s ebops() to `total` (undefined: none yet), checking that it is one value.
void add_ebops(const EBOPsLayer& layer, const std::string& name, at::Tensor& total) {
  at::Tensor e = layer.ebops();
  if (!e.defined() || e.numel() != 1 || !e.is_floating_point()) {
    const std::string got =
        e.defined() ? "a tensor of " + std::to_string(e.numel()) + " values of type " +
                          std::string(at::toString(e.scalar_type()))
                    : std::string("an undefined tensor");
    throw InvalidArgument("total_ebops: the ebops() of module '" + name +
                          "' must be one floating-point value (a 0-dim tensor), got " + got);
  }
  e = e.reshape({});
  total = total.defined() ? total + e : e;
}

}  // namespace

at::Tensor total_ebops(const torch::nn::Module& model) {
  at::Tensor total;
  std::unordered_set<const torch::nn::Module*> seen{&model};
  if (const auto* self = dynamic_cast<const EBOPsLayer*>(&model)) {
    add_ebops(*self, model.name(), total);
  }
  // named_modules(include_self = false) lists every submodule once, shared ones included once.
  for (const auto& item : model.named_modules("", /*include_self=*/false)) {
    const torch::nn::Module* m = item.value().get();
    if (!seen.insert(m).second) continue;
    if (const auto* layer = dynamic_cast<const EBOPsLayer*>(m)) {
      add_ebops(*layer, item.key(), total);
    }
  }
  return total.defined() ? total : at::zeros({}, at::kFloat);
}

}  // namespace heteroq::nn
