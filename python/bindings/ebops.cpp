// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
#include <pybind11/pybind11.h>

namespace py = pybind11;

void bind_ebops(py::module_& m) { (void)m; }
