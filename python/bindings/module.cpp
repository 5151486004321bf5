// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// heteroq._C: loading it registers the operators (torch.ops.heteroq.*). The pybind11 surface is
// narrow: the spec parser and quantizer objects (their checks, bounds and spec strings), so the
// Python classes hold no math of their own. Tensors never cross pybind11: the Python layers call
// the operators through torch.ops, so no pybind11 type is shared with torch's bindings.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>

#include "heteroq/errors.h"
#include "heteroq/nn/plan.h"
#include "heteroq/ops/quantize.h"
#include "heteroq/quantizers/quantizer.h"
#include "heteroq/quantizers/spec.h"
#include "heteroq/version.h"

namespace py = pybind11;

// Defined in serialize.cpp and cost.cpp (one file per part of the API).
void bind_serialize(py::module_& m);
void bind_cost(py::module_& m);
void bind_qtools(py::module_& m);
void bind_hardware(py::module_& m);
void bind_autoq(py::module_& m);
void bind_deploy(py::module_& m);
void bind_hgq(py::module_& m);
void bind_ebops(py::module_& m);

namespace {

std::string repr_of(const py::handle& h) { return py::str(py::repr(h)); }

// An integer (Python int, or anything with __index__: numpy integers, integer tensors), without
// truncation; nullopt if `h` is not one.
std::optional<int64_t> as_index(const py::handle& h, const std::string& where) {
  PyObject* index = PyNumber_Index(h.ptr());
  if (!index) {
    PyErr_Clear();
    return std::nullopt;
  }
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(index, &overflow);
  Py_DECREF(index);
  if (overflow != 0 || (v == -1 && PyErr_Occurred())) {
    PyErr_Clear();
    throw heteroq::InvalidArgument(where + ": " + repr_of(h) + " is out of the 64-bit integer range");
  }
  return static_cast<int64_t>(v);
}

// A real number (float, or anything with __float__: numpy floats, 0-d float tensors).
std::optional<double> as_real(const py::handle& h) {
  PyObject* f = PyNumber_Float(h.ptr());
  if (!f) {
    PyErr_Clear();
    return std::nullopt;
  }
  const double v = PyFloat_AsDouble(f);
  Py_DECREF(f);
  return v;
}

heteroq::SpecValue to_value(const py::handle& h, const std::string& where) {
  if (h.is_none()) return std::monostate{};
  if (py::isinstance<py::bool_>(h)) return h.cast<bool>();
  if (py::isinstance<py::str>(h)) {
    PyObject* utf8 = PyUnicode_AsUTF8String(h.ptr());
    if (!utf8) {
      PyErr_Clear();
      throw heteroq::InvalidArgument(where + ": " + repr_of(h) + " is not valid text");
    }
    std::string s(PyBytes_AsString(utf8), static_cast<size_t>(PyBytes_Size(utf8)));
    Py_DECREF(utf8);
    return s;
  }
  if (py::isinstance<py::list>(h) || py::isinstance<py::tuple>(h)) {
    std::vector<double> out;
    for (auto item : h) {
      std::optional<double> v;
      if (!py::isinstance<py::bool_>(item) && !py::isinstance<py::str>(item)) v = as_real(item);
      if (!v) throw heteroq::InvalidArgument(where + ": list items must be numbers, got " + repr_of(item));
      out.push_back(*v);
    }
    return out;
  }
  if (py::isinstance<py::float_>(h)) return h.cast<double>();
  // Integers first (exactly, via __index__), then other numbers (via __float__): a float tensor or
  // array is never truncated to an integer.
  if (auto i = as_index(h, where)) return *i;
  if (auto d = as_real(h)) return *d;
  throw heteroq::InvalidArgument(where + " must be None, a bool, a number, a string or a list, got " +
                                 repr_of(h));
}

py::object to_python(const heteroq::SpecValue& v) {
  struct Visitor {
    py::object operator()(std::monostate) const { return py::none(); }
    py::object operator()(bool b) const { return py::bool_(b); }
    py::object operator()(int64_t i) const { return py::int_(i); }
    py::object operator()(double d) const { return py::float_(d); }
    py::object operator()(const std::string& s) const { return py::str(s); }
    py::object operator()(const std::vector<double>& l) const { return py::cast(l); }
  };
  return std::visit(Visitor{}, v);
}

py::dict config_dict(const heteroq::Quantizer& q) {
  py::dict d;  // insertion-ordered: QKeras's argument order
  for (const auto& [k, v] : q.config()) d[py::str(k)] = to_python(v);
  return d;
}

heteroq::QuantizerPtr make(const std::string& name, const py::sequence& args,
                           const py::dict& kwargs) {
  std::vector<heteroq::SpecValue> positional;
  size_t i = 0;
  for (auto a : args) positional.push_back(to_value(a, name + ": argument " + std::to_string(i++)));
  heteroq::SpecKeywords keywords;
  for (auto item : kwargs) {
    const std::string key = py::str(item.first);
    keywords.emplace_back(key, to_value(item.second, name + ": `" + key + "`"));
  }
  return heteroq::make_quantizer(name, positional, keywords);
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "heteroq's compiled core: registers torch.ops.heteroq.* and exposes the quantizer specs.";
  m.attr("__version__") = HETEROQ_VERSION_STRING;

  // heteroq::InvalidArgument derives from std::invalid_argument, which pybind11 maps to ValueError.

  py::class_<heteroq::Quantizer, heteroq::QuantizerPtr>(m, "Quantizer")
      .def_property_readonly("name", &heteroq::Quantizer::name)
      .def_property_readonly("bits", &heteroq::Quantizer::bits)
      .def("min", &heteroq::Quantizer::min)
      .def("max", &heteroq::Quantizer::max)
      .def("to_string", &heteroq::Quantizer::to_string)
      .def("config", &config_dict)
      .def_property_readonly("is_po2", &heteroq::Quantizer::is_po2)
      .def("range", &heteroq::Quantizer::range)
      .def("to_json", &heteroq::Quantizer::to_json)
      .def("__str__", &heteroq::Quantizer::to_string)
      .def("__repr__", &heteroq::Quantizer::to_string)
      .def(py::pickle([](const heteroq::Quantizer& q) { return py::make_tuple(q.to_string()); },
                      [](const py::tuple& t) {
                        return heteroq::get_quantizer(t[0].cast<std::string>());
                      }));

  m.def("make_quantizer", &make, py::arg("name"), py::arg("args") = py::tuple(),
        py::arg("kwargs") = py::dict(),
        "Builds and checks a quantizer from its QKeras name and arguments (ValueError if bad).");
  m.def("get_quantizer", &heteroq::get_quantizer, py::arg("spec"),
        "Parses a QKeras spec string such as \"quantized_bits(6,0,alpha=1)\".");
  m.def(
      "parse_spec",
      [](const std::string& spec) {
        const auto p = heteroq::parse_spec(spec);
        py::list args;
        for (const auto& v : p.positional) args.append(to_python(v));
        py::dict kwargs;
        for (const auto& [k, v] : p.keywords) kwargs[py::str(k)] = to_python(v);
        return py::make_tuple(p.name, args, kwargs);
      },
      py::arg("spec"), "Splits a spec string into (name, args, kwargs) without checking them.");
  m.def("quantizer_names", &heteroq::quantizer_names);
  m.def("quantizer_from_json", &heteroq::quantizer_from_json, py::arg("json"),
        "Reads Quantizer.to_json()'s format: {\"class_name\": ..., \"config\": {...}}.");
  m.def(
      "plan_model_quantize",
      [](const std::string& config_json, const std::vector<std::tuple<std::string, std::string,
                                                                        std::string>>& layers,
         std::optional<int64_t> activation_bits, bool qkeras_compatible) {
        std::vector<heteroq::nn::FloatLayer> in;
        for (const auto& [name, kind, activation] : layers) in.push_back({name, kind, activation});
        py::list out;
        for (const auto& plan :
             heteroq::nn::plan_model_quantize(config_json, in, activation_bits, qkeras_compatible)) {
          if (!plan) {
            out.append(py::none());
          } else {
            out.append(py::make_tuple(plan->qclass, plan->quantizers));
          }
        }
        return out;
      },
      py::arg("config_json"), py::arg("layers"), py::arg("activation_bits") = py::none(),
      py::arg("qkeras_compatible") = false,
      "QKeras's model_quantize rules: for (name, kind, activation) layers, (QClass, {slot: spec}) "
      "or None (keep the float layer).");
  m.def(
      "qkeras_weight_spec",
      [](const std::string& spec) {
        return heteroq::qkeras_weight_quantizer(heteroq::get_quantizer(spec))->to_string();
      },
      py::arg("spec"), "QKeras's implicit alpha='auto_po2' rule for a weight quantizer's spec.");
  m.def("fused_kernels_enabled", &heteroq::ops::fused_kernels_enabled);
  m.def("set_fused_kernels_enabled", &heteroq::ops::set_fused_kernels_enabled, py::arg("enabled"));
  bind_serialize(m);
  bind_cost(m);
  bind_qtools(m);
  bind_hardware(m);
  bind_autoq(m);
  bind_deploy(m);
  bind_hgq(m);
  bind_ebops(m);
}
