// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Python bindings of heteroq/nn/serialize.h: the non-tensor parts only (the format's name and
// version, the table of quantized layers). Saving and loading go through the operators
// torch.ops.heteroq._save_quantized_weights / _load_quantized_weights (src/nn/serialize.cpp).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "heteroq/nn/serialize.h"

namespace py = pybind11;

void bind_serialize(py::module_& m) {
  m.attr("QUANTIZED_WEIGHTS_FORMAT") = heteroq::nn::kQuantizedWeightsFormat;
  m.attr("QUANTIZED_WEIGHTS_VERSION") = heteroq::nn::kQuantizedWeightsVersion;
  m.def(
      "quantized_layer_table",
      [] {
        py::dict out;
        for (const auto& [cls, slots] : heteroq::nn::detail::quantized_layer_table()) {
          out[py::str(cls)] = slots;
        }
        return out;
      },
      "The layer classes whose tensors the quantized-weights saver quantizes: "
      "{class: [(tensor, quantizer slot), ...]}.");
}
