// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
// Python bindings of qtools-equivalent data types, energy and size (filled in by its issue).
#include <pybind11/pybind11.h>

namespace py = pybind11;

void bind_qtools(py::module_& m) { (void)m; }
