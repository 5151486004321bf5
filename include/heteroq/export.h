// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
#pragma once

/// HETEROQ_API marks the symbols that libheteroq exports; everything else is hidden.
#if defined(_WIN32)
#if defined(HETEROQ_BUILDING_LIBRARY)
#define HETEROQ_API __declspec(dllexport)
#else
#define HETEROQ_API __declspec(dllimport)
#endif
#else
#define HETEROQ_API __attribute__((visibility("default")))
#endif
