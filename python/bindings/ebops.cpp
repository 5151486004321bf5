// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Python bindings of heteroq/nn/regularizer.h: EBOPsRegularizer's schedules and controller as
// plain numbers (heteroq.regularizers multiplies the EBOPs tensor by the beta observe() returns,
// as EBOPsRegularizer::penalty does in C++).
#include "heteroq/nn/regularizer.h"

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace py = pybind11;

void bind_ebops(py::module_& m) {
  using heteroq::nn::EBOPsRegularizer;
  py::class_<EBOPsRegularizer>(m, "EBOPsRegularizer",
                               "heteroq::nn::EBOPsRegularizer (heteroq.regularizers wraps it).")
      .def_static("constant", &EBOPsRegularizer::constant, py::arg("beta"))
      .def_static("ramp", &EBOPsRegularizer::ramp, py::arg("beta0"), py::arg("beta1"),
                  py::arg("start_step"), py::arg("end_step"), py::arg("log"))
      .def_static("piecewise", &EBOPsRegularizer::piecewise, py::arg("knots"), py::arg("log"))
      .def_static("controller", &EBOPsRegularizer::controller, py::arg("target"),
                  py::arg("beta0"), py::arg("gain"), py::arg("beta_min"), py::arg("beta_max"),
                  py::arg("interval"), py::arg("max_log_step"))
      .def_property_readonly("kind",
                             [](const EBOPsRegularizer& r) {
                               switch (r.kind()) {
                                 case EBOPsRegularizer::Kind::kConstant:
                                   return "constant";
                                 case EBOPsRegularizer::Kind::kPiecewise:
                                   return "piecewise";
                                 case EBOPsRegularizer::Kind::kController:
                                   break;
                               }
                               return "controller";
                             })
      .def("beta", &EBOPsRegularizer::beta, py::arg("step"))
      .def("observe", &EBOPsRegularizer::observe, py::arg("ebops"), py::arg("step"))
      .def("state_dict", &EBOPsRegularizer::state_dict)
      .def("load_state_dict", &EBOPsRegularizer::load_state_dict, py::arg("state"))
      .def("__str__", &EBOPsRegularizer::to_string)
      .def_property_readonly("knots", &EBOPsRegularizer::knots)
      .def_property_readonly("log", &EBOPsRegularizer::log_interpolation)
      .def_property_readonly("target", &EBOPsRegularizer::target)
      .def_property_readonly("gain", &EBOPsRegularizer::gain)
      .def_property_readonly("beta_min", &EBOPsRegularizer::beta_min)
      .def_property_readonly("beta_max", &EBOPsRegularizer::beta_max)
      .def_property_readonly("interval", &EBOPsRegularizer::interval)
      .def_property_readonly("max_log_step", &EBOPsRegularizer::max_log_step);
}
