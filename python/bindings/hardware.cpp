// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Python bindings of heteroq/cost/hardware.h: BOPs/EBOPs and the FPGA estimate over the layer
// descriptions of heteroq.cost.describe (converted by python/bindings/cost.cpp); the results come
// back as JSON and as the printed table.
#include "heteroq/cost/hardware.h"

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "heteroq/errors.h"
#include "heteroq/quantizers/quantizer.h"

namespace py = pybind11;

// python/bindings/cost.cpp
std::vector<heteroq::cost::LayerInfo> cost_layers_from_python(const py::list& layers);
const std::vector<heteroq::cost::LayerInfo>& cost_layers_of(
    const py::handle& layers, std::vector<heteroq::cost::LayerInfo>& storage,
    const std::function<std::vector<heteroq::cost::LayerInfo>(const py::list&)>& convert);

namespace {

heteroq::QuantizerPtr input_quantizer(const py::object& q, const char* who) {
  if (q.is_none()) return nullptr;
  try {
    return q.cast<heteroq::QuantizerPtr>();
  } catch (const py::cast_error&) {
    throw heteroq::InvalidArgument(std::string(who) +
                                   ": `input_quantizer` must be a heteroq quantizer or None, got " +
                                   std::string(py::str(py::repr(q))));
  }
}

}  // namespace

void bind_hardware(py::module_& m) {
  m.def(
      "hardware_bops",
      [](const py::object& layers, const py::object& input, bool unknown_layers_as_zero) {
        heteroq::cost::BopsOptions options;
        options.input_quantizer = heteroq::nn::QuantizerArg(input_quantizer(input, "bops"));
        options.unknown_layers_as_zero = unknown_layers_as_zero;
        std::vector<heteroq::cost::LayerInfo> storage;
        const auto r = std::make_shared<const heteroq::cost::BopsReport>(
            heteroq::cost::bops(cost_layers_of(layers, storage, cost_layers_from_python), options));
        return py::make_tuple(r->to_json(), py::cpp_function([r] { return r->to_string(); }));
      },
      py::arg("layers"), py::arg("input_quantizer"), py::arg("unknown_layers_as_zero"),
      "heteroq::cost::bops over layer descriptions (dicts); returns (JSON, a function returning "
      "the table).");
  m.def(
      "hardware_fpga_estimate",
      [](const py::object& layers, const py::object& input, bool unknown_layers_as_zero,
         double clock_period_ns, int64_t float_bits, int64_t float_integer_bits,
         int64_t dsp_min_input_bits, int64_t dsp_min_weight_span, int64_t dsp_port_a_bits,
         int64_t dsp_port_b_bits, int64_t adder_inputs, double adder_level_ns) {
        heteroq::cost::FpgaOptions o;
        o.input_quantizer = heteroq::nn::QuantizerArg(input_quantizer(input, "fpga_estimate"));
        o.unknown_layers_as_zero = unknown_layers_as_zero;
        o.clock_period_ns = clock_period_ns;
        o.float_bits = float_bits;
        o.float_integer_bits = float_integer_bits;
        o.dsp_min_input_bits = dsp_min_input_bits;
        o.dsp_min_weight_span = dsp_min_weight_span;
        o.dsp_port_a_bits = dsp_port_a_bits;
        o.dsp_port_b_bits = dsp_port_b_bits;
        o.adder_inputs = adder_inputs;
        o.adder_level_ns = adder_level_ns;
        std::vector<heteroq::cost::LayerInfo> storage;
        const auto e =
            std::make_shared<const heteroq::cost::FpgaEstimate>(heteroq::cost::fpga_estimate(
                cost_layers_of(layers, storage, cost_layers_from_python), o));
        return py::make_tuple(e->to_json(), py::cpp_function([e] { return e->to_string(); }));
      },
      py::arg("layers"), py::arg("input_quantizer"), py::arg("unknown_layers_as_zero"),
      py::arg("clock_period_ns"), py::arg("float_bits"), py::arg("float_integer_bits"),
      py::arg("dsp_min_input_bits"), py::arg("dsp_min_weight_span"), py::arg("dsp_port_a_bits"),
      py::arg("dsp_port_b_bits"), py::arg("adder_inputs"), py::arg("adder_level_ns"),
      "heteroq::cost::fpga_estimate over layer descriptions (dicts); returns (JSON, a function "
      "returning the table).");
  m.def(
      "hardware_fpga_defaults",
      [] {
        const heteroq::cost::FpgaOptions o;
        py::dict d;
        d["clock_period_ns"] = o.clock_period_ns;
        d["float_bits"] = o.float_bits;
        d["float_integer_bits"] = o.float_integer_bits;
        d["dsp_min_input_bits"] = o.dsp_min_input_bits;
        d["dsp_min_weight_span"] = o.dsp_min_weight_span;
        d["dsp_port_a_bits"] = o.dsp_port_a_bits;
        d["dsp_port_b_bits"] = o.dsp_port_b_bits;
        d["adder_inputs"] = o.adder_inputs;
        d["adder_level_ns"] = o.adder_level_ns;
        return d;
      },
      "The defaults of heteroq::cost::FpgaOptions's numbers (one source for both languages).");
  m.def("bit_span", &heteroq::cost::bit_span, py::arg("value"),
        "HGQ's exact bit span of a constant (heteroq::cost::bit_span).");
}
