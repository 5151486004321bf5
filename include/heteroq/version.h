// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
// The single place that states heteroq's version; CMakeLists.txt and pyproject.toml follow it.
#pragma once

#define HETEROQ_VERSION_MAJOR 0
#define HETEROQ_VERSION_MINOR 1
#define HETEROQ_VERSION_PATCH 0
#define HETEROQ_VERSION_STRING "0.1.0"
