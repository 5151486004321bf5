// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// heteroq._C: loading it registers the operators (torch.ops.heteroq.*). The pybind11 surface is
// narrow: the spec parser and quantizer objects (their checks, bounds and spec strings), so the
// Python classes hold no math of their own. Tensors never cross pybind11: the Python layers call
// the operators through torch.ops, so no pybind11 type is shared with torch's bindings.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "heteroq/errors.h"
#include "heteroq/ops/quantize.h"
#include "heteroq/quantizers/quantizer.h"
#include "heteroq/quantizers/spec.h"
#include "heteroq/version.h"

namespace py = pybind11;

namespace {

heteroq::SpecValue to_value(const py::handle& h, const std::string& where) {
  if (h.is_none()) return std::monostate{};
  if (py::isinstance<py::bool_>(h)) return h.cast<bool>();
  if (py::isinstance<py::int_>(h)) return h.cast<int64_t>();
  if (py::isinstance<py::float_>(h)) return h.cast<double>();
  if (py::isinstance<py::str>(h)) return h.cast<std::string>();
  if (py::isinstance<py::list>(h) || py::isinstance<py::tuple>(h)) {
    std::vector<double> out;
    for (auto item : h) {
      if (!py::isinstance<py::int_>(item) && !py::isinstance<py::float_>(item)) {
        throw heteroq::InvalidArgument(where + ": list items must be numbers, got " +
                                       std::string(py::str(py::repr(item))));
      }
      out.push_back(item.cast<double>());
    }
    return out;
  }
  // numpy scalars and other numbers: through __index__ / __float__.
  if (py::hasattr(h, "__index__")) return py::int_(py::reinterpret_borrow<py::object>(h)).cast<int64_t>();
  if (py::hasattr(h, "__float__")) return py::float_(py::reinterpret_borrow<py::object>(h)).cast<double>();
  throw heteroq::InvalidArgument(where + " must be None, a bool, a number, a string or a list, got " +
                                 std::string(py::str(py::repr(h))));
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
  m.def("fused_kernels_enabled", &heteroq::ops::fused_kernels_enabled);
  m.def("set_fused_kernels_enabled", &heteroq::ops::set_fused_kernels_enabled, py::arg("enabled"));
}
