// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// heteroq._C's learned-precision surface: heteroq::FixedQuantizer built from width arrays (numpy
// arrays in and out; no torch type crosses pybind11). heteroq.hgq's classes call the registered
// operators (torch.ops.heteroq.fixed_quantize, hgq_*) directly; this object answers min(), max(),
// to_string(), range() and is what the cost models and exporters read.
#include <ATen/ATen.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <vector>

#include "heteroq/quantizers/fixed.h"

namespace py = pybind11;

namespace {

using DoubleArray = py::array_t<double, py::array::c_style | py::array::forcecast>;

at::Tensor to_tensor(const py::handle& h, const char* name) {
  DoubleArray a = DoubleArray::ensure(h);
  if (!a) {
    throw heteroq::InvalidArgument(std::string("fixed: `") + name +
                                   "` must be a number or an array of numbers");
  }
  std::vector<int64_t> shape(a.shape(), a.shape() + a.ndim());
  return at::from_blob(const_cast<double*>(a.data()), shape, at::kDouble).clone();
}

py::array to_array(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kDouble).contiguous();
  std::vector<py::ssize_t> shape(c.sizes().begin(), c.sizes().end());
  py::array_t<double> out(shape);
  std::copy(c.data_ptr<double>(), c.data_ptr<double>() + c.numel(), out.mutable_data());
  return std::move(out);
}

}  // namespace

void bind_hgq(py::module_& m) {
  using heteroq::FixedQuantizer;
  py::class_<FixedQuantizer, heteroq::Quantizer, std::shared_ptr<FixedQuantizer>>(
      m, "FixedQuantizer",
      "heteroq::FixedQuantizer: fixed point with per-tensor/channel/element widths "
      "(heteroq.hgq.FixedQuantizer wraps it).")
      .def(py::init([](const py::handle& k, const py::handle& i, const py::handle& f,
                       const std::string& round_mode, const std::string& overflow_mode) {
             return std::make_shared<FixedQuantizer>(
                 to_tensor(k, "keep_negative"), to_tensor(i, "int_bits"), to_tensor(f, "frac_bits"),
                 round_mode, overflow_mode);
           }),
           py::arg("keep_negative"), py::arg("int_bits"), py::arg("frac_bits"),
           py::arg("round_mode") = "RND_CONV", py::arg("overflow_mode") = "SAT")
      .def("keep_negative", [](const FixedQuantizer& q) { return to_array(q.keep_negative()); })
      .def("int_bits", [](const FixedQuantizer& q) { return to_array(q.int_bits()); })
      .def("frac_bits", [](const FixedQuantizer& q) { return to_array(q.frac_bits()); })
      .def("bit_widths", [](const FixedQuantizer& q) { return to_array(q.bit_widths()); })
      .def_property_readonly("round_mode", &FixedQuantizer::round_mode)
      .def_property_readonly("overflow_mode", &FixedQuantizer::overflow_mode)
      .def_property_readonly("is_uniform", &FixedQuantizer::is_uniform);
}
