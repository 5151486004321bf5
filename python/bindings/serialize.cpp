// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
// Python bindings of heteroq/serialize: in progress.
#include <pybind11/pybind11.h>

namespace py = pybind11;

void bind_serialize(py::module_& m) {}
