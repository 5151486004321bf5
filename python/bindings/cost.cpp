// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Python bindings of heteroq/cost: plain data only. heteroq.cost describes each layer as a dict
// of numbers, strings and quantizer objects (the accumulator sums come from the operator
// torch.ops.heteroq._qstats_channel_sums, as lists of floats); the statistics come back as JSON
// and as the printed table.
#include <ATen/ops/empty.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "heteroq/cost/qstats.h"
#include "heteroq/errors.h"
#include "heteroq/quantizers/quantizer.h"

namespace py = pybind11;

namespace {

using heteroq::InvalidArgument;
using heteroq::QuantizerPtr;
using heteroq::cost::LayerInfo;

std::string where_of(const LayerInfo& info, size_t index) {
  return "qstats: layer " + (info.name.empty() ? std::to_string(index) : "'" + info.name + "'");
}

template <typename T>
T field(const py::dict& d, const char* key, const std::string& where, T fallback) {
  py::object value;
  if (PyDict_CheckExact(d.ptr())) {  // one lookup (a dict subclass: its own __getitem__)
    PyObject* v = PyDict_GetItemString(d.ptr(), key);
    if (!v) return fallback;
    value = py::reinterpret_borrow<py::object>(v);
  } else {
    if (!d.contains(key)) return fallback;
    value = d[key];
  }
  try {
    return value.cast<T>();
  } catch (const py::cast_error&) {
    throw InvalidArgument(where + ": `" + key +
                          "` has the wrong type: " + std::string(py::str(py::repr(value))));
  }
}

QuantizerPtr to_quantizer(const py::handle& h, const std::string& where) {
  if (h.is_none()) return nullptr;
  try {
    return h.cast<QuantizerPtr>();
  } catch (const py::cast_error&) {
    throw InvalidArgument(where + ": expected a heteroq quantizer (the C++ object) or None, got " +
                          std::string(py::str(py::repr(h))));
  }
}

// A float64 numpy array (or anything numpy converts to one) as a float64 tensor of its shape.
at::Tensor to_tensor(const py::handle& h, const std::string& where) {
  using Array = py::array_t<double, py::array::c_style | py::array::forcecast>;
  Array a;
  try {
    a = h.cast<Array>();
  } catch (const py::cast_error&) {
    throw InvalidArgument(where + ": expected an array of numbers, got " +
                          std::string(py::str(py::repr(h))));
  } catch (py::error_already_set& e) {  // numpy's conversion failed, e.g. on a string
    throw InvalidArgument(where + ": expected an array of numbers, got " +
                          std::string(py::str(py::repr(h))) + " (" + e.what() + ")");
  }
  if (!a) throw InvalidArgument(where + ": expected an array of numbers");
  std::vector<int64_t> shape(a.shape(), a.shape() + a.ndim());
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(at::kDouble));
  if (a.size() > 0) std::memcpy(t.data_ptr<double>(), a.data(), sizeof(double) * a.size());
  return t;
}

// `channel_sums`: a list of [P, N, c] lists of floats (heteroq.cost.describe's) read directly;
// anything else through pybind11's conversion (the same values, or the same error).
std::vector<std::array<double, 3>> channel_sums(const py::dict& d, const std::string& where) {
  PyObject* rows =
      PyDict_CheckExact(d.ptr()) ? PyDict_GetItemString(d.ptr(), "channel_sums") : nullptr;
  if (rows && PyList_CheckExact(rows)) {
    const Py_ssize_t n = PyList_GET_SIZE(rows);
    std::vector<std::array<double, 3>> out(static_cast<size_t>(n));
    bool plain = true;
    for (Py_ssize_t i = 0; i < n && plain; ++i) {
      PyObject* row = PyList_GET_ITEM(rows, i);
      if (!PyList_CheckExact(row) || PyList_GET_SIZE(row) != 3) {
        plain = false;
        break;
      }
      for (Py_ssize_t j = 0; j < 3; ++j) {
        PyObject* v = PyList_GET_ITEM(row, j);
        if (!PyFloat_CheckExact(v)) {
          plain = false;
          break;
        }
        out[static_cast<size_t>(i)][static_cast<size_t>(j)] = PyFloat_AS_DOUBLE(v);
      }
    }
    if (plain) return out;
  }
  return field<std::vector<std::array<double, 3>>>(d, "channel_sums", where, {});
}

LayerInfo to_layer(const py::handle& h, size_t index) {
  if (!py::isinstance<py::dict>(h)) {
    throw InvalidArgument("qstats: layer " + std::to_string(index) + " must be a dict, got " +
                          std::string(py::str(py::repr(h))));
  }
  const auto d = py::reinterpret_borrow<py::dict>(h);
  LayerInfo info;
  std::string where = "qstats: layer " + std::to_string(index);
  info.name = field<std::string>(d, "name", where, "");
  where = where_of(info, index);
  info.type = field<std::string>(d, "type", where, "");
  info.kind = heteroq::cost::layer_kind_from_name(field<std::string>(d, "kind", where, "other"));
  info.input_shape = field<std::vector<int64_t>>(d, "input_shape", where, {});
  info.output_shape = field<std::vector<int64_t>>(d, "output_shape", where, {});
  info.parameters = field<int64_t>(d, "parameters", where, 0);
  info.in_channels = field<int64_t>(d, "in_channels", where, 0);
  info.out_channels = field<int64_t>(d, "out_channels", where, 0);
  info.groups = field<int64_t>(d, "groups", where, 1);
  info.depth_multiplier = field<int64_t>(d, "depth_multiplier", where, 1);
  info.kernel_size = field<std::vector<int64_t>>(d, "kernel_size", where, {});
  info.stride = field<std::vector<int64_t>>(d, "stride", where, {});
  info.padding = field<std::vector<int64_t>>(d, "padding", where, {});
  info.dilation = field<std::vector<int64_t>>(d, "dilation", where, {});
  info.bias = field<bool>(d, "bias", where, false);
  info.gates = field<int64_t>(d, "gates", where, 1);
  info.num_layers = field<int64_t>(d, "num_layers", where, 1);
  info.bidirectional = field<bool>(d, "bidirectional", where, false);
  info.batch_first = field<bool>(d, "batch_first", where, false);
  info.reset_after = field<bool>(d, "reset_after", where, true);
  info.channel_sums = channel_sums(d, where);
  if (d.contains("quantizers")) {
    for (const auto& item : py::reinterpret_borrow<py::iterable>(d["quantizers"])) {
      const auto pair = py::reinterpret_borrow<py::sequence>(item);
      if (py::len(pair) != 2) {
        throw InvalidArgument(where + ": `quantizers` items must be (slot, quantizer) pairs");
      }
      const auto slot = pair[0].cast<std::string>();
      info.quantizers.emplace_back(slot, to_quantizer(pair[1], where + " slot " + slot));
    }
  }
  if (d.contains("values")) {
    for (const auto& item : py::reinterpret_borrow<py::iterable>(d["values"])) {
      const auto pair = py::reinterpret_borrow<py::sequence>(item);
      if (py::len(pair) != 2) {
        throw InvalidArgument(where + ": `values` items must be (group, array) pairs");
      }
      const auto group = pair[0].cast<std::string>();
      info.values.emplace_back(group, to_tensor(pair[1], where + " values '" + group + "'"));
    }
  }
  return info;
}

py::tuple operand_tuple(const heteroq::cost::OperandType& t) {
  return py::make_tuple(static_cast<int>(t.mode), t.bits, t.is_signed);
}

heteroq::cost::OperandMode to_mode(int mode) {
  if (mode < 0 || mode > 5) {
    throw InvalidArgument("qstats: an operand mode must be in [0, 5], got " + std::to_string(mode));
  }
  return static_cast<heteroq::cost::OperandMode>(mode);
}

}  // namespace

/// The layer descriptions of heteroq.cost.describe as LayerInfo (the other cost models' bindings
/// use it too).
std::vector<LayerInfo> cost_layers_from_python(const py::list& layers) {
  std::vector<LayerInfo> infos;
  infos.reserve(layers.size());
  size_t i = 0;
  for (const auto& item : layers) infos.push_back(to_layer(item, i++));
  return infos;
}

namespace {

/// heteroq.cost.LayerInfos: layer descriptions converted once to heteroq::cost::LayerInfo, which
/// every cost model's binding takes in place of the list of dicts (no conversion per call).
struct LayerInfos {
  std::vector<LayerInfo> layers;
};

}  // namespace

/// The layers of a cost model's argument: a LayerInfos' (no copy), or the list of dicts converted
/// into `storage`. `convert` converts a list (each binding's own conversion and messages).
const std::vector<LayerInfo>& cost_layers_of(
    const py::handle& layers, std::vector<LayerInfo>& storage,
    const std::function<std::vector<LayerInfo>(const py::list&)>& convert) {
  if (py::isinstance<LayerInfos>(layers)) return layers.cast<const LayerInfos&>().layers;
  if (!py::isinstance<py::list>(layers)) {
    throw py::type_error(
        "expected a list of layer descriptions (heteroq.cost.describe's) or "
        "heteroq.cost.LayerInfos, got " +
        std::string(py::str(py::type::handle_of(layers).attr("__name__"))));
  }
  storage = convert(py::reinterpret_borrow<py::list>(layers));
  return storage;
}

void bind_cost(py::module_& m) {
  py::class_<LayerInfos>(m, "LayerInfos",
                         "Layer descriptions converted once to heteroq::cost::LayerInfo.")
      .def(py::init(
               [](const py::list& layers) { return LayerInfos{cost_layers_from_python(layers)}; }),
           py::arg("layers"))
      .def("__len__", [](const LayerInfos& l) { return l.layers.size(); })
      .def_property_readonly("names", [](const LayerInfos& l) {
        std::vector<std::string> names;
        for (const auto& info : l.layers) names.push_back(info.name);
        return names;
      });
  m.def(
      "qstats",
      [](const py::object& layers, const py::object& input_quantizer) {
        std::vector<LayerInfo> storage;
        const auto& infos = cost_layers_of(layers, storage, cost_layers_from_python);
        const QuantizerPtr q = to_quantizer(input_quantizer, "qstats: `input_quantizer`");
        const auto stats = std::make_shared<const heteroq::cost::QStats>(
            heteroq::cost::qstats(infos, heteroq::nn::QuantizerArg(q)));
        // The table is printed on first use (heteroq.cost's reports call the function).
        return py::make_tuple(stats->to_json(),
                              py::cpp_function([stats] { return stats->to_string(); }));
      },
      py::arg("layers"), py::arg("input_quantizer"),
      "heteroq::cost::qstats over layer descriptions (dicts or LayerInfos); returns (JSON, a "
      "function returning the printed table).");
  m.def(
      "qstats_operand_type",
      [](const py::object& q) {
        return operand_tuple(heteroq::cost::operand_type(to_quantizer(q, "operand_type")));
      },
      py::arg("quantizer"), "QKeras's (mode, bits, signed) of a quantizer (None: float).");
  m.def(
      "qstats_op_type",
      [](int weight_mode, int input_mode) {
        return std::string(heteroq::cost::op_type_name(
            heteroq::cost::op_type(to_mode(weight_mode), to_mode(input_mode))));
      },
      py::arg("weight_mode"), py::arg("input_mode"), "QKeras's wx_table[weight][input].");
  m.def(
      "qstats_operation_name",
      [](std::tuple<int, int64_t, bool> weight,
         std::optional<std::tuple<int, int64_t, bool>> input) {
        const auto to_type = [](const std::tuple<int, int64_t, bool>& t) {
          return heteroq::cost::OperandType{to_mode(std::get<0>(t)), std::get<1>(t),
                                            std::get<2>(t)};
        };
        std::optional<heteroq::cost::OperandType> x;
        if (input) x = to_type(*input);
        return heteroq::cost::operation_name(to_type(weight), x);
      },
      py::arg("weight"), py::arg("input"), "QKeras's operation name, e.g. 'smult_6_8'.");
}
