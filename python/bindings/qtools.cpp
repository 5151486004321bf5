// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Python bindings of heteroq/cost/qtools.h: plain data only. heteroq.cost (python/heteroq/
// _qtools.py) passes the layer dicts of heteroq.cost.describe and the options as a dict; the
// data-type map, energy and size come back as JSON and as the printed table.
#include "heteroq/cost/qtools.h"

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <array>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "heteroq/errors.h"
#include "heteroq/quantizers/quantizer.h"

namespace py = pybind11;

// python/bindings/cost.cpp: heteroq.cost.describe's list as LayerInfo (one converter for every
// cost model), and a LayerInfos' layers or the list converted by `convert`.
std::vector<heteroq::cost::LayerInfo> cost_layers_from_python(const py::list& layers);
const std::vector<heteroq::cost::LayerInfo>& cost_layers_of(
    const py::handle& layers, std::vector<heteroq::cost::LayerInfo>& storage,
    const std::function<std::vector<heteroq::cost::LayerInfo>(const py::list&)>& convert);

namespace {

using heteroq::InvalidArgument;
using heteroq::cost::LayerInfo;
using heteroq::cost::QToolsOptions;

// The options dict: QToolsOptions's field names; an unknown name or a wrong type is an error
// naming the option (the values are checked by QToolsOptions::validate()).
QToolsOptions to_options(const py::dict& d) {
  QToolsOptions o;
  const auto get = [&](const char* key, auto& target) {
    using T = std::decay_t<decltype(target)>;
    if (!d.contains(key)) return;
    const py::handle v = d[key];
    const bool ok = std::is_same_v<T, bool> ? py::isinstance<py::bool_>(v)
                    : std::is_same_v<T, int64_t>
                        ? (py::isinstance<py::int_>(v) && !py::isinstance<py::bool_>(v))
                        : py::isinstance<py::str>(v);
    if (!ok) {
      throw InvalidArgument(std::string("qtools: option `") + key +
                            "` has the wrong type: " + std::string(py::str(py::repr(v))));
    }
    target = v.cast<T>();
  };
  static const std::array<const char*, 17> known = {"process",
                                                    "weights_on_memory",
                                                    "activations_on_memory",
                                                    "min_sram_size",
                                                    "rd_wr_on_io",
                                                    "source_quantizer",
                                                    "default_quantizer",
                                                    "keras_quantizer",
                                                    "keras_accumulator",
                                                    "for_reference",
                                                    "reference_internal",
                                                    "reference_accumulator",
                                                    "unknown_layers_as_zero",
                                                    "skip_zero_weights",
                                                    "ref_bits",
                                                    "input_bits",
                                                    "output_bits"};
  for (const auto& item : d) {
    const auto key = item.first.cast<std::string>();
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      std::string list;
      for (const char* k : known) list += (list.empty() ? "" : ", ") + std::string(k);
      throw InvalidArgument("qtools: unknown option `" + key + "` (options: " + list + ")");
    }
  }
  get("process", o.process);
  get("weights_on_memory", o.weights_on_memory);
  get("activations_on_memory", o.activations_on_memory);
  get("min_sram_size", o.min_sram_size);
  get("rd_wr_on_io", o.rd_wr_on_io);
  get("source_quantizer", o.source_quantizer);
  get("default_quantizer", o.default_quantizer);
  get("keras_quantizer", o.keras_quantizer);
  get("keras_accumulator", o.keras_accumulator);
  get("for_reference", o.for_reference);
  get("reference_internal", o.reference_internal);
  get("reference_accumulator", o.reference_accumulator);
  get("unknown_layers_as_zero", o.unknown_layers_as_zero);
  get("skip_zero_weights", o.skip_zero_weights);
  get("ref_bits", o.ref_bits);
  get("input_bits", o.input_bits);
  get("output_bits", o.output_bits);
  o.validate();
  return o;
}

}  // namespace

void bind_qtools(py::module_& m) {
  m.def(
      "qtools_data_types",
      [](const py::object& layers, const py::dict& options) {
        std::vector<LayerInfo> storage;
        const auto map =
            std::make_shared<const heteroq::cost::DataTypeMap>(heteroq::cost::data_types(
                cost_layers_of(layers, storage, cost_layers_from_python), to_options(options)));
        return py::make_tuple(map->to_json(), py::cpp_function([map] { return map->to_string(); }));
      },
      py::arg("layers"), py::arg("options"),
      "heteroq::cost::data_types over layer descriptions (dicts); returns (JSON, a function "
      "returning the table).");
  m.def(
      "qtools_energy",
      [](const py::object& layers, const py::dict& options) {
        std::vector<LayerInfo> storage;
        const auto report = std::make_shared<const heteroq::cost::EnergyReport>(
            heteroq::cost::energy(cost_layers_of(layers, storage, cost_layers_from_python), to_options(options)));
        return py::make_tuple(report->to_json(),
                              py::cpp_function([report] { return report->to_string(); }));
      },
      py::arg("layers"), py::arg("options"),
      "heteroq::cost::energy over layer descriptions (dicts); returns (JSON, a function returning "
      "the table).");
  m.def(
      "qtools_model_size",
      [](const py::object& layers, const py::dict& options) {
        std::vector<LayerInfo> storage;
        const auto report =
            std::make_shared<const heteroq::cost::SizeReport>(heteroq::cost::model_size(
                cost_layers_of(layers, storage, cost_layers_from_python), to_options(options)));
        return py::make_tuple(report->to_json(),
                              py::cpp_function([report] { return report->to_string(); }));
      },
      py::arg("layers"), py::arg("options"),
      "heteroq::cost::model_size over layer descriptions (dicts); returns (JSON, a function "
      "returning the table).");
  m.def(
      "qtools_defaults",
      []() {
        const QToolsOptions o;
        py::dict d;
        d["process"] = o.process;
        d["weights_on_memory"] = o.weights_on_memory;
        d["activations_on_memory"] = o.activations_on_memory;
        d["min_sram_size"] = o.min_sram_size;
        d["rd_wr_on_io"] = o.rd_wr_on_io;
        d["source_quantizer"] = o.source_quantizer;
        d["default_quantizer"] = o.default_quantizer;
        d["keras_quantizer"] = o.keras_quantizer;
        d["keras_accumulator"] = o.keras_accumulator;
        d["for_reference"] = o.for_reference;
        d["reference_internal"] = o.reference_internal;
        d["reference_accumulator"] = o.reference_accumulator;
        d["unknown_layers_as_zero"] = o.unknown_layers_as_zero;
        d["skip_zero_weights"] = o.skip_zero_weights;
        d["ref_bits"] = o.ref_bits;
        d["input_bits"] = o.input_bits;
        d["output_bits"] = o.output_bits;
        return d;
      },
      "The defaults of heteroq::cost::QToolsOptions.");
}
