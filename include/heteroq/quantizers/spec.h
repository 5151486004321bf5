// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "heteroq/export.h"

namespace heteroq {

/// A literal in a quantizer spec or config: None, a bool, an integer, a real number, a string,
/// or a list of numbers (QKeras writes lists as `[1 2]`; commas are accepted too).
using SpecValue =
    std::variant<std::monostate, bool, int64_t, double, std::string, std::vector<double>>;

/// Keyword arguments in the order they were given (or, for a config, the quantizer's order).
using SpecKeywords = std::vector<std::pair<std::string, SpecValue>>;

/// A spec string split into its parts, before any quantizer checks its arguments.
struct ParsedSpec {
  std::string name;                    ///< e.g. "quantized_bits"
  std::vector<SpecValue> positional;   ///< positional arguments, in order
  SpecKeywords keywords;               ///< keyword arguments, in order
};

/**
 * Parses a QKeras-style quantizer spec such as `"quantized_bits(6,0,alpha=1)"`,
 * `"quantized_relu(4, 2)"` or a bare `"quantized_relu"`.
 *
 * Accepted literals: integers, reals (`0.5`, `1e-3`), `True`/`False`, `None`, quoted strings
 * (`'auto_po2'` or `"auto_po2"`) and lists of numbers (`[1 2]`, `[1, 2]`).
 *
 * @throws heteroq::SpecError for unbalanced parentheses, a bad literal, a positional argument after
 *         a keyword, a repeated keyword or trailing characters; the message quotes the spec and
 *         names the position.
 */
HETEROQ_API ParsedSpec parse_spec(const std::string& spec);

/// Writes a value as a spec literal that parse_spec reads back to the same value.
HETEROQ_API std::string format_spec_value(const SpecValue& value);

/// A short description of a value for error messages, e.g. `'abc' (a string)`.
HETEROQ_API std::string describe_spec_value(const SpecValue& value);

}  // namespace heteroq
