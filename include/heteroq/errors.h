// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
#pragma once

#include <stdexcept>
#include <string>

#include "heteroq/export.h"

namespace heteroq {

/**
 * Base of the exceptions heteroq throws for bad arguments (a bad quantizer parameter, a
 * malformed spec string, ...). The message names the argument and the value.
 * Python sees it as ValueError.
 */
class HETEROQ_API InvalidArgument : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/**
 * A quantizer spec string that cannot be parsed or names something unknown, e.g.
 * `"quantized_bits(4,0"` or `"quantized_bits(4, bitz=2)"`.
 */
class HETEROQ_API SpecError : public InvalidArgument {
 public:
  using InvalidArgument::InvalidArgument;
};

}  // namespace heteroq
