// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
#include "core/fixed_point.h"

#include <cmath>
#include <sstream>

namespace heteroq::detail {
namespace {

std::string number(double v) {
  std::ostringstream os;
  os.precision(17);
  os << v;
  return os.str();
}

std::string check_bits_integer(const char* who, int64_t bits, int64_t integer) {
  if (bits < 1 || bits > 32) {
    return std::string(who) + ": `bits` must be an integer in [1, 32], got " +
           std::to_string(bits);
  }
  if (integer < -64 || integer > 64) {
    return std::string(who) + ": `integer` must be an integer in [-64, 64], got " +
           std::to_string(integer);
  }
  return {};
}

}  // namespace

std::string check_quantized_bits_args(int64_t bits, int64_t integer, std::optional<double> alpha) {
  std::string err = check_bits_integer("quantized_bits", bits, integer);
  if (!err.empty()) return err;
  if (alpha && !(std::isfinite(*alpha) && *alpha > 0)) {
    return "quantized_bits: `alpha` must be None or a finite number > 0, got " + number(*alpha);
  }
  return {};
}

std::string check_quantized_relu_args(int64_t bits, int64_t integer, double negative_slope) {
  std::string err = check_bits_integer("quantized_relu", bits, integer);
  if (!err.empty()) return err;
  if (!std::isfinite(negative_slope) || negative_slope < 0) {
    return "quantized_relu: `negative_slope` must be a finite number >= 0, got " +
           number(negative_slope);
  }
  if (negative_slope != 0) {
    int exponent = 0;
    if (std::frexp(negative_slope, &exponent) != 0.5) {
      return "quantized_relu: `negative_slope` must be 0 or a power of two (QKeras requires it), "
             "got " + number(negative_slope);
    }
    if (bits < 2) {
      return "quantized_relu: with a `negative_slope`, `bits` must be >= 2 (one bit is the sign), "
             "got " + std::to_string(bits);
    }
  }
  return {};
}

std::string check_po2_scale_args(const char* who,
                                 const std::optional<std::vector<int64_t>>& scale_axis,
                                 const std::optional<std::vector<int64_t>>& elements_per_scale,
                                 std::optional<int64_t> min_po2_exponent,
                                 std::optional<int64_t> max_po2_exponent) {
  const std::string q(who);
  if (elements_per_scale) {
    const size_t axes = scale_axis ? scale_axis->size() : 1;
    if (elements_per_scale->empty() ||
        (elements_per_scale->size() != 1 && elements_per_scale->size() != axes)) {
      return q + ": `elements_per_scale` must be one integer or one per `scale_axis` entry (" +
             std::to_string(axes) + "), got " + std::to_string(elements_per_scale->size()) +
             " values";
    }
    for (int64_t e : *elements_per_scale) {
      if (e < 1) return q + ": `elements_per_scale` values must be >= 1, got " + std::to_string(e);
    }
  }
  for (auto [name, v] : {std::pair<const char*, std::optional<int64_t>>{"min_po2_exponent",
                                                                        min_po2_exponent},
                         {"max_po2_exponent", max_po2_exponent}}) {
    if (v && (*v < -126 || *v > 127)) {
      return q + ": `" + name + "` must be an integer in [-126, 127], got " + std::to_string(*v);
    }
  }
  if (min_po2_exponent && max_po2_exponent && *min_po2_exponent > *max_po2_exponent) {
    return q + ": `min_po2_exponent` (" + std::to_string(*min_po2_exponent) +
           ") must not exceed `max_po2_exponent` (" + std::to_string(*max_po2_exponent) + ")";
  }
  return {};
}

std::string check_quantized_bits_auto_args(int64_t bits, int64_t integer) {
  std::string err = check_bits_integer("quantized_bits", bits, integer);
  if (err.empty() && bits < 2) {
    err = "quantized_bits: with alpha 'auto' or 'auto_po2', `bits` must be >= 2, got " +
          std::to_string(bits);
  }
  return err;
}

std::string check_activation_args(const char* who, int64_t bits) {
  if (bits < 1 || bits > 32) {
    return std::string(who) + ": `bits` must be an integer in [1, 32], got " + std::to_string(bits);
  }
  return {};
}

ActivationGrid make_activation_grid(bool is_tanh, int64_t bits, bool symmetric) {
  ActivationGrid g{};
  g.is_tanh = is_tanh;
  g.m = std::ldexp(1.0, static_cast<int>(is_tanh ? bits - 1 : bits));
  g.inv_m = 1.0 / g.m;
  g.lo = is_tanh ? -g.m + (symmetric ? 1.0 : 0.0) : (symmetric ? 1.0 : 0.0);
  g.hi = g.m - 1.0;
  g.slope = is_tanh ? 1.0 : 0.5;
  return g;
}

std::string check_po2_args(const char* who, int64_t bits, std::optional<double> max_value,
                           const std::string& log2_rounding, double negative_slope) {
  const std::string w(who);
  if (bits < 2 || bits > 12) {
    return w + ": `bits` must be an integer in [2, 12] (exponents beyond +-1024 under- or "
               "overflow every float type), got " + std::to_string(bits);
  }
  if (max_value && !(std::isfinite(*max_value) && *max_value > 0)) {
    return w + ": `max_value` must be None or a finite number > 0, got " + number(*max_value);
  }
  if (log2_rounding != "rnd" && log2_rounding != "floor") {
    return w + ": `log2_rounding` must be 'rnd' or 'floor', got '" + log2_rounding + "'";
  }
  if (!std::isfinite(negative_slope) || negative_slope < 0) {
    return w + ": `negative_slope` must be a finite number >= 0, got " + number(negative_slope);
  }
  if (negative_slope != 0) {
    int exponent = 0;
    if (std::frexp(negative_slope, &exponent) != 0.5) {
      return w + ": `negative_slope` must be 0 or a power of two, got " + number(negative_slope);
    }
  }
  return {};
}

Po2Grid make_po2_grid(bool relu, int64_t bits, std::optional<double> max_value, bool quadratic,
                      bool floor_mode, double negative_slope) {
  Po2Grid g{};
  g.eps = 1e-7;  // K.epsilon()
  g.has_max = max_value.has_value();
  g.max_value = max_value.value_or(std::numeric_limits<double>::infinity());
  const int need = (!max_value || *max_value > 1) ? 1 : 0;
  const int64_t effect = relu ? bits - need : bits - 1 - need;
  g.min_exp = -std::ldexp(1.0, static_cast<int>(effect));
  g.max_exp = std::ldexp(1.0, static_cast<int>(effect)) - 1;
  if (quadratic) g.max_exp = 2 * std::floor(g.max_exp / 2);
  g.quadratic = quadratic;
  g.floor_mode = floor_mode;
  g.relu = relu;
  g.slope = negative_slope;
  return g;
}

std::string check_binary_args(const char* who, std::optional<double> alpha,
                              std::optional<double> threshold) {
  const std::string w(who);
  if (alpha && !(std::isfinite(*alpha) && *alpha > 0)) {
    return w + ": `alpha` must be None, a finite number > 0, 'auto' or 'auto_po2', got " +
           number(*alpha);
  }
  if (threshold && !(std::isfinite(*threshold) && *threshold >= 0)) {
    return w + ": `threshold` must be None or a finite number >= 0, got " + number(*threshold);
  }
  return {};
}

std::string check_qnoise_factor(const char* who, double qnoise_factor) {
  if (!(qnoise_factor >= 0 && qnoise_factor <= 1)) {
    return std::string(who) + ": `qnoise_factor` must be a number in [0, 1], got " +
           number(qnoise_factor);
  }
  return {};
}

BitsGrid make_bits_grid(int64_t bits, int64_t integer, bool symmetric, bool keep_negative,
                        std::optional<double> alpha) {
  const int64_t ub = bits - (keep_negative ? 1 : 0);
  const double a = alpha.value_or(1.0);
  const double m = std::ldexp(1.0, static_cast<int>(ub));
  BitsGrid g{};
  g.sign_mode = ub <= 0;
  g.sign_value = a;
  g.in_scale = std::ldexp(1.0, static_cast<int>(ub - integer));
  g.lo = keep_negative ? -m + (symmetric ? 1.0 : 0.0) : 0.0;
  g.hi = m - 1.0;
  // alpha is applied in the tensor's precision, as QKeras does in float32: step = fl(alpha) * 2^k.
  g.step = a * std::ldexp(1.0, static_cast<int>(integer - ub));
  return g;
}

ReluGrid make_relu_grid(int64_t bits, int64_t integer, bool use_sigmoid, double negative_slope) {
  const int64_t nsb = bits - (negative_slope != 0 ? 1 : 0);
  ReluGrid g{};
  g.m = std::ldexp(1.0, static_cast<int>(nsb));
  g.in_scale = std::ldexp(1.0, static_cast<int>(nsb - integer));
  g.inv_mi = std::ldexp(1.0, static_cast<int>(-integer));
  g.hi = g.m - 1.0;
  g.slope = negative_slope;
  g.neg_lo = -negative_slope * g.m;
  g.step = std::ldexp(1.0, static_cast<int>(integer - nsb));
  g.top = std::ldexp(1.0, static_cast<int>(integer)) - g.step;
  g.use_sigmoid = use_sigmoid;
  return g;
}

}  // namespace heteroq::detail
