// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// QTools (QKeras qkeras/qtools): the QTools types of quantizers, the multiplier, accumulator,
// adder and divider implementations (quantized_operators/*_impl.py), the data-type map
// (generate_layer_data_type_map.py), the energy model (qenergy.py, config_public.py) and
// AutoQKeras's size in bits (forgiving_bits.py). docs/qtools.md gives the formulas.
#include "heteroq/cost/qtools.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iomanip>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <set>
#include <sstream>
#include <unordered_map>
#include <utility>
#include <variant>

#include <ATen/ATen.h>

#include "heteroq/errors.h"
#include "heteroq/quantizers/quantizer.h"

namespace heteroq::cost {

namespace {

using json = nlohmann::ordered_json;

// ---- small helpers ----

std::string shape_string(const std::vector<int64_t>& shape) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << "]";
  return os.str();
}

int64_t product(const std::vector<int64_t>& v, size_t from, size_t to) {
  int64_t p = 1;
  for (size_t i = from; i < to && i < v.size(); ++i) p *= v[i];
  return p;
}

int64_t size_without_batch(const std::vector<int64_t>& shape) {
  return product(shape, 1, shape.size());
}

// A number from a quantizer's config (QKeras's names), `fallback` if absent or not a number.
double config_number(const SpecKeywords& config, const char* key, double fallback) {
  for (const auto& [k, v] : config) {
    if (k != key) continue;
    if (const auto* i = std::get_if<int64_t>(&v)) return static_cast<double>(*i);
    if (const auto* d = std::get_if<double>(&v)) return *d;
    if (const auto* b = std::get_if<bool>(&v)) return *b ? 1.0 : 0.0;
    return fallback;
  }
  return fallback;
}

[[noreturn]] void bad_layer(const LayerInfo& l, const std::string& what) {
  throw InvalidArgument("qtools: layer '" + l.name + "' (" + l.type + "): " + what);
}

// ---- types ----

QType fixed_type(int64_t bits, int64_t int_bits, bool is_signed) {
  QType t;
  t.name = "quantized_bits";
  t.mode = OperandMode::kFixed;
  t.bits = bits;
  t.int_bits = int_bits;
  t.is_signed = is_signed;
  return t;
}

QType float_type(int64_t bits) {
  QType t;
  t.name = "floating_point";
  t.mode = OperandMode::kFloat;
  t.bits = bits;
  t.int_bits = -1;
  t.is_signed = true;
  t.is_floating_point = true;
  return t;
}

// QTools's PowerOfTwo() before conversion (quantizer_impl.PowerOfTwo(is_signed=True)).
QType po2_type(bool is_signed) {
  QType t;
  t.name = is_signed ? "quantized_po2" : "quantized_relu_po2";
  t.mode = OperandMode::kPo2;
  t.bits = -1;
  t.int_bits = -1;
  t.is_signed = is_signed;
  t.is_po2 = true;
  return t;
}

QType ternary_type() {
  QType t;
  t.name = "ternary";
  t.mode = OperandMode::kTernary;
  t.bits = 2;
  t.int_bits = 2;
  t.is_signed = true;
  return t;
}

QType binary_type(bool use_01) {
  QType t;
  t.name = "binary";
  t.mode = use_01 ? OperandMode::kBinary01 : OperandMode::kBinary;
  t.bits = 1;
  t.int_bits = 1;
  t.is_signed = !use_01;
  return t;
}

bool has(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

// quantizer_impl.get_exp: (-min_exp, max_exp) of a power-of-two type.
std::pair<int64_t, int64_t> po2_exponents(const QType& q) {
  const int64_t non_sign_bits = q.bits - (q.is_signed ? 1 : 0);
  const int64_t min_exp = -(int64_t{1} << std::max<int64_t>(non_sign_bits - 1, 0));
  const int64_t max_exp_orig = (int64_t{1} << std::max<int64_t>(non_sign_bits - 1, 0)) - 1;
  int64_t max_exp = max_exp_orig;
  if (q.max_value != -1) {
    max_exp = q.max_value <= 0
                  ? 0
                  : std::min(static_cast<int64_t>(std::ceil(std::log2(q.max_value))), max_exp_orig);
  }
  return {-min_exp, std::max<int64_t>(0, max_exp)};
}

// accumulator_impl.po2_to_qbits: (bits, int_bits) of a power-of-two type as fixed point.
std::pair<int64_t, int64_t> po2_to_qbits(const QType& q) {
  const auto [min_exp, max_exp] = po2_exponents(q);
  return {(q.is_signed ? 1 : 0) + min_exp + max_exp, max_exp};
}

// ---- multipliers (multiplier_factory.py, multiplier_impl.py) ----

struct Unit {
  std::string kind, implemented_as;
  QType output;
  double gate_factor = 1, gate_bits = 0;
};

Unit make_multiplier(const QType& w, const QType& x) {
  enum Impl { kFixed, kShift, kMux, kXor, kAnd, kAdd, kFloat };
  // multiplier_impl_table[weight.mode][input.mode]: the class and its output's initial type.
  static constexpr Impl table[6][6] = {
      {kFixed, kShift, kMux, kMux, kAnd, kFloat}, {kShift, kAdd, kMux, kMux, kAnd, kFloat},
      {kMux, kMux, kMux, kMux, kAnd, kFloat},     {kMux, kMux, kMux, kXor, kAnd, kFloat},
      {kAnd, kAnd, kAnd, kAnd, kAnd, kFloat},     {kFloat, kFloat, kFloat, kFloat, kFloat, kFloat}};
  // The output's initial class: 0 QuantizedBits, 1 PowerOfTwo, 2 Ternary, 3 Binary(+-1),
  // 4 Binary(0/1), 5 FloatingPoint.
  static constexpr int out_class[6][6] = {{0, 0, 0, 0, 0, 5}, {0, 1, 1, 1, 1, 5},
                                          {0, 1, 2, 2, 2, 5}, {0, 1, 2, 3, 2, 5},
                                          {0, 1, 2, 2, 4, 5}, {5, 5, 5, 5, 5, 5}};
  const int wm = static_cast<int>(w.mode), xm = static_cast<int>(x.mode);
  QType out;
  switch (out_class[wm][xm]) {
    case 0:
      out = fixed_type(-1, -1, true);
      break;
    case 1:
      out = po2_type(true);
      break;
    case 2:
      out = ternary_type();
      break;
    case 3:
      out = binary_type(false);
      break;
    case 4:
      out = binary_type(true);
      break;
    default:
      out = float_type(-1);
      break;
  }
  Unit u;
  const auto non_float = [&](const char* kind) {
    if (w.is_floating_point || x.is_floating_point) {
      throw InvalidArgument(std::string("qtools: a ") + kind + " needs non-float operands");
    }
  };
  switch (table[wm][xm]) {
    case kFixed:
      non_float("FixedPointMultiplier");
      u.kind = "FixedPointMultiplier";
      u.implemented_as = "mul";
      // The integer and fractional bits add up; one sign bit (QTools's current multiplier).
      out.int_bits = x.int_bits + w.int_bits;
      out.is_signed = x.is_signed || w.is_signed;
      out.bits = out.int_bits + x.fractional_bits() + w.fractional_bits() + (out.is_signed ? 1 : 0);
      u.gate_factor = 1;
      u.gate_bits = std::sqrt(static_cast<double>(x.bits * w.bits));
      break;
    case kShift: {
      non_float("Shifter");
      u.kind = "Shifter";
      u.implemented_as = "shifter";
      const QType& po2 = w.mode == OperandMode::kPo2 ? w : x;
      const QType& qb = w.mode == OperandMode::kPo2 ? x : w;
      const auto [min_exp, max_exp] = po2_exponents(po2);
      out.bits = qb.bits + max_exp + min_exp + (!qb.is_signed && po2.is_signed ? 1 : 0);
      out.int_bits = qb.int_bits + max_exp;
      out.is_signed = qb.is_signed || po2.is_signed;
      // No inference value counts (QTools's is_inference=False): a programmable shifter.
      const double b = std::sqrt(std::pow(2.0, static_cast<double>(po2.bits)) * qb.bits);
      u.gate_factor = 1;
      u.gate_bits = b * std::log10(b);
      break;
    }
    case kMux: {
      u.kind = "Mux";
      u.implemented_as = "mux";
      out.is_signed = x.is_signed || w.is_signed;
      if (has(w.name, "binary") || has(w.name, "ternary")) {
        out.bits = x.bits + (!x.is_signed && w.is_signed ? 1 : 0);
        out.int_bits = x.int_bits;
        u.gate_factor = has(w.name, "binary") ? 0.3 : 0.6;
        u.gate_bits = static_cast<double>(x.bits);
      } else {
        out.bits = w.bits + (!w.is_signed && x.is_signed ? 1 : 0);
        out.int_bits = w.int_bits;
        u.gate_factor = x.name == "binary" ? 0.3 : 0.6;
        u.gate_bits = static_cast<double>(w.bits);
      }
      if (has(out.name, "po2")) {
        out.name = out.is_signed ? "quantized_po2" : "quantized_relu_po2";
        out.max_value = has(w.name, "po2") ? w.max_value : x.max_value;
        out.int_bits = out.bits;
      }
      break;
    }
    case kXor:
      u.kind = "XorGate";
      u.implemented_as = "xor";
      if (out.name != "ternary") {
        non_float("XorGate");
        out.bits = std::max(x.bits, w.bits);
        out.int_bits = std::max(x.int_bits, w.int_bits);
        out.is_signed = x.is_signed || w.is_signed;
        out.is_floating_point = false;
      }
      u.gate_factor = 0.3;
      u.gate_bits = 1;
      break;
    case kAnd:
      u.kind = "AndGate";
      u.implemented_as = "and";
      if (out.name != "ternary") {
        out.bits = std::max(x.bits, w.bits);
        out.is_signed = x.is_signed || w.is_signed;
        out.is_floating_point = x.is_floating_point || w.is_floating_point;
        out.int_bits =
            w.name == "binary" && w.mode == OperandMode::kBinary01 ? x.int_bits : w.int_bits;
        if (has(out.name, "po2")) {
          out.name = out.is_signed ? "quantized_po2" : "quantized_relu_po2";
          out.max_value = has(w.name, "po2") ? w.max_value : x.max_value;
        }
      }
      u.gate_factor = 0.1;
      u.gate_bits = static_cast<double>(out.bits);
      break;
    case kAdd:
      non_float("Adder");
      u.kind = "Adder";
      u.implemented_as = "add";
      out.bits = std::max(x.bits, w.bits) + 1;
      out.int_bits = std::max(x.int_bits, w.int_bits) + 1;
      out.is_signed = x.is_signed || w.is_signed;
      out.is_po2 = true;
      out.max_value = (x.max_value == -1 || w.max_value == -1) ? -1 : x.max_value * w.max_value;
      out.name = out.is_signed ? "quantized_po2" : "quantized_relu_po2";
      u.gate_factor = 1;
      u.gate_bits = static_cast<double>(out.bits);
      break;
    case kFloat:
      u.kind = "FloatingPointMultiplier";
      u.implemented_as = "mul";
      out.bits = std::max(x.is_floating_point ? x.bits : 0, w.is_floating_point ? w.bits : 0);
      out.int_bits = -1;
      out.is_signed = true;
      out.is_floating_point = true;
      u.gate_factor = 1;
      u.gate_bits = static_cast<double>(out.bits);
      break;
  }
  u.output = out;
  return u;
}

// accumulator_factory.make_accumulator: products summed `fan_in` at a time.
Unit make_accumulator(const QType& product_type, int64_t fan_in) {
  Unit u;
  u.implemented_as = "add";
  if (product_type.is_floating_point) {
    u.kind = "FloatingPointAccumulator";
    u.output = float_type(product_type.bits);
    u.output.is_signed = product_type.is_signed;
  } else {
    const auto log_add_ops =
        fan_in > 1 ? static_cast<int64_t>(std::ceil(std::log2(static_cast<double>(fan_in)))) : 0;
    int64_t bits = product_type.bits, int_bits = product_type.int_bits;
    if (product_type.is_po2) {
      u.kind = "Po2Accumulator";
      std::tie(bits, int_bits) = po2_to_qbits(product_type);
    } else {
      u.kind = "FixedPointAccumulator";
    }
    u.output = fixed_type(log_add_ops + bits, log_add_ops + int_bits, product_type.is_signed);
  }
  u.gate_factor = 1;
  u.gate_bits = static_cast<double>(u.output.bits);
  return u;
}

// adder_factory.IAdder (adder_impl.py): a + b.
Unit make_adder(const QType& a, const QType& b) {
  Unit u;
  u.implemented_as = "add";
  if (a.is_floating_point || b.is_floating_point) {
    u.kind = "FloatingPointAdder";
    u.output = float_type(std::max(a.bits, b.bits));
  } else {
    const auto as_fixed = [](const QType& q) {
      if (!q.is_po2) return q;
      const auto [bits, int_bits] = po2_to_qbits(q);
      return fixed_type(bits, int_bits, q.is_signed);
    };
    const QType p = as_fixed(a), q = as_fixed(b);
    u.kind = a.is_po2 && b.is_po2   ? "Po2Adder"
             : a.is_po2 || b.is_po2 ? "Po2FixedPointAdder"
                                    : "FixedPointAdder";
    // One more integer bit than the wider operand, the finer fraction (QTools's bias adder).
    const int64_t int_bits = std::max(p.int_bits, q.int_bits) + 1;
    const int64_t frac = std::max(p.fractional_bits(), q.fractional_bits());
    const bool is_signed = p.is_signed || q.is_signed;
    u.output = fixed_type(int_bits + frac + (is_signed ? 1 : 0), int_bits, is_signed);
  }
  u.gate_factor = 1;
  u.gate_bits = static_cast<double>(u.output.bits);
  return u;
}

// divider_factory.IDivider (divider_impl.py): numerator / denominator.
Unit make_divider(const QType& num, const QType& den, const LayerInfo& l) {
  const int nm = static_cast<int>(num.mode), dm = static_cast<int>(den.mode);
  Unit u;
  if (dm >= 2 && dm <= 4) {
    bad_layer(l, "QTools has no divider by a " + std::string(operand_mode_name(den.mode)) +
                     " value (the batch norm's variance type " + den.to_string() + ")");
  }
  if (dm == 5 || nm == 5 || dm == 0) {
    u.kind = "FloatingPointDivider";
    u.implemented_as = "mul";
    int64_t bits = 32;  // a fixed-point denominator: 32-bit float
    if (dm == 5 || nm == 5) {
      bits = std::max(num.is_floating_point ? num.bits : 0, den.is_floating_point ? den.bits : 0);
    }
    u.output = float_type(bits);
    u.gate_factor = 1;
    u.gate_bits = static_cast<double>(bits);
    return u;
  }
  if (nm == 1) {  // po2 / po2
    u.kind = "Subtractor";
    u.implemented_as = "add";
    QType out = po2_type(true);
    out.bits = std::max(num.bits, den.bits) + 1;
    out.int_bits = std::max(num.int_bits, den.int_bits) + 1;
    out.max_value =
        (num.max_value == -1 || den.max_value == -1) ? -1 : num.max_value / den.max_value;
    u.output = out;
    u.gate_factor = 1;
    u.gate_bits = static_cast<double>(out.bits);
    return u;
  }
  u.kind = "Shifter";  // x / 2^e: the exponents' roles swap
  u.implemented_as = "shifter";
  QType out = (nm == 0 || nm == 2) ? fixed_type(-1, -1, true) : po2_type(true);
  const auto [neg_min_exp, max_exp] = po2_exponents(den);
  out.bits = num.bits + neg_min_exp + max_exp + (!num.is_signed && den.is_signed ? 1 : 0);
  out.int_bits = num.int_bits + neg_min_exp;
  out.is_signed = num.is_signed || den.is_signed;
  out.is_floating_point = false;
  const double b = std::sqrt(std::pow(2.0, static_cast<double>(den.bits)) * num.bits);
  u.output = out;
  u.gate_factor = 1;
  u.gate_bits = b * std::log10(b);
  return u;
}

QToolsOperator as_operator(const Unit& u, std::string part, std::string role, int64_t count,
                           bool priced = true) {
  QToolsOperator op;
  op.part = std::move(part);
  op.role = std::move(role);
  op.kind = u.kind;
  op.implemented_as = u.implemented_as;
  op.output = u.output;
  op.gate_factor = u.gate_factor;
  op.gate_bits = u.gate_bits;
  op.count = count;
  op.priced = priced;
  return op;
}

// ---- layer roles by type name ----

enum class Role {
  kIdentity,
  kMac,
  kActivation,
  kFloatActivation,
  kBatchNorm,
  kAvgPool,
  kMaxPool,
  kReshape,
  kUpsample,
  kPass,
  kUnknown
};

const char* role_name(Role r) {
  switch (r) {
    case Role::kIdentity:
      return "identity";
    case Role::kMac:
      return "mac";
    case Role::kActivation:
      return "activation";
    case Role::kFloatActivation:
      return "float_activation";
    case Role::kBatchNorm:
      return "batchnorm";
    case Role::kAvgPool:
      return "avg_pool";
    case Role::kMaxPool:
      return "max_pool";
    case Role::kReshape:
      return "reshape";
    case Role::kUpsample:
      return "upsample";
    case Role::kPass:
      return "pass";
    case Role::kUnknown:
      break;
  }
  return "unknown";
}

Role role_of(const LayerInfo& l) {
  static const std::set<std::string> batch_norms = {"BatchNorm1d", "BatchNorm2d", "BatchNorm3d",
                                                    "QBatchNorm1d", "QBatchNorm2d"};
  static const std::set<std::string> avg_pools = {
      "AvgPool1d",         "AvgPool2d",         "AvgPool3d",  "AdaptiveAvgPool1d",
      "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "QAvgPool2d", "QGlobalAvgPool2d"};
  static const std::set<std::string> max_pools = {"MaxPool1d",         "MaxPool2d",
                                                  "MaxPool3d",         "AdaptiveMaxPool1d",
                                                  "AdaptiveMaxPool2d", "AdaptiveMaxPool3d"};
  static const std::set<std::string> reshapes = {"Flatten", "Unflatten", "RecurrentOutput"};
  static const std::set<std::string> float_activations = {
      "ReLU",      "ReLU6",       "LeakyReLU",  "PReLU",      "RReLU",      "ELU",       "SELU",
      "CELU",      "GELU",        "SiLU",       "Mish",       "Sigmoid",    "Tanh",      "Hardtanh",
      "Hardswish", "Hardsigmoid", "Softmax",    "Softmin",    "LogSoftmax", "Softmax2d", "Softplus",
      "Softsign",  "Tanhshrink",  "Hardshrink", "Softshrink", "Threshold",  "LogSigmoid"};
  static const std::set<std::string> identities = {
      "Identity",  "Dropout",      "Dropout1d",          "Dropout2d",
      "Dropout3d", "AlphaDropout", "FeatureAlphaDropout"};
  static const std::set<std::string> passes = {
      "ZeroPad2d",        "ConstantPad1d",    "ConstantPad2d",     "ConstantPad3d",
      "ReflectionPad1d",  "ReflectionPad2d",  "ReflectionPad3d",   "ReplicationPad1d",
      "ReplicationPad2d", "ReplicationPad3d", "PixelShuffle",      "PixelUnshuffle",
      "ChannelShuffle",   "InstanceNorm1d",   "InstanceNorm2d",    "InstanceNorm3d",
      "LayerNorm",        "GroupNorm",        "LocalResponseNorm", "LPPool1d",
      "LPPool2d"};
  switch (l.kind) {
    case LayerKind::kDense:
    case LayerKind::kConv:
    case LayerKind::kConvTranspose:
    case LayerKind::kSeparableConv:
    case LayerKind::kRecurrent:
      return Role::kMac;
    case LayerKind::kActivation:
      return Role::kActivation;
    case LayerKind::kOther:
      break;
  }
  if (batch_norms.count(l.type)) return Role::kBatchNorm;
  if (avg_pools.count(l.type)) return Role::kAvgPool;
  if (max_pools.count(l.type)) return Role::kMaxPool;
  if (reshapes.count(l.type)) return Role::kReshape;
  if (l.type == "Upsample") return Role::kUpsample;
  if (float_activations.count(l.type)) return Role::kFloatActivation;
  if (passes.count(l.type)) return Role::kPass;
  if (identities.count(l.type)) return Role::kIdentity;
  return Role::kUnknown;
}

// ---- geometry checks (the multiply-accumulate kinds) ----

void check_shapes(const LayerInfo& l) {
  for (const auto* shape : {&l.input_shape, &l.output_shape}) {
    if (shape->size() < 2) {
      bad_layer(l, "expects batched shapes of rank >= 2 (batch dimension first), got input " +
                       shape_string(l.input_shape) + " and output " + shape_string(l.output_shape));
    }
    for (int64_t d : *shape) {
      if (d < 0) bad_layer(l, "negative size in shape " + shape_string(*shape));
    }
  }
}

void check_mac(const LayerInfo& l) {
  check_shapes(l);
  if (l.in_channels <= 0 || l.out_channels <= 0) {
    bad_layer(l, "`in_channels` and `out_channels` must be > 0, got " +
                     std::to_string(l.in_channels) + " and " + std::to_string(l.out_channels));
  }
  const size_t rank_in = l.input_shape.size(), rank_out = l.output_shape.size();
  if (l.kind == LayerKind::kDense) {
    if (l.input_shape.back() != l.in_channels || l.output_shape.back() != l.out_channels) {
      bad_layer(l, "shapes " + shape_string(l.input_shape) + " -> " + shape_string(l.output_shape) +
                       " do not match " + std::to_string(l.in_channels) + " -> " +
                       std::to_string(l.out_channels) + " features");
    }
    return;
  }
  if (l.kind == LayerKind::kRecurrent) {
    if (l.gates != 1 && l.gates != 3 && l.gates != 4) {
      bad_layer(l, "`gates` must be 1, 3 or 4, got " + std::to_string(l.gates));
    }
    if (l.num_layers < 1) bad_layer(l, "`num_layers` must be >= 1");
    const int64_t features = (l.bidirectional ? 2 : 1) * l.out_channels;
    if (rank_in != 3 || rank_out != 3 || l.input_shape[2] != l.in_channels ||
        l.output_shape[2] != features) {
      bad_layer(l, "shapes " + shape_string(l.input_shape) + " -> " + shape_string(l.output_shape) +
                       " do not match a batched sequence of input_size " +
                       std::to_string(l.in_channels) + " -> " + std::to_string(features) +
                       " features");
    }
    return;
  }
  if (l.kernel_size.empty() || rank_in != l.kernel_size.size() + 2 || rank_out != rank_in) {
    bad_layer(l, "expects a batched input of rank " + std::to_string(l.kernel_size.size() + 2) +
                     " (N, C, ...) for kernel_size " + shape_string(l.kernel_size) +
                     ", got input " + shape_string(l.input_shape) + " and output " +
                     shape_string(l.output_shape));
  }
  for (int64_t k : l.kernel_size) {
    if (k <= 0) bad_layer(l, "`kernel_size` must be > 0, got " + shape_string(l.kernel_size));
  }
  if (l.input_shape[1] != l.in_channels || l.output_shape[1] != l.out_channels) {
    bad_layer(l, "shapes " + shape_string(l.input_shape) + " -> " + shape_string(l.output_shape) +
                     " do not match " + std::to_string(l.in_channels) + " -> " +
                     std::to_string(l.out_channels) + " channels");
  }
  if (l.groups <= 0 || l.in_channels % l.groups || l.out_channels % l.groups) {
    bad_layer(l, "`groups` (" + std::to_string(l.groups) + ") must be > 0 and divide " +
                     std::to_string(l.in_channels) + " and " + std::to_string(l.out_channels));
  }
  if (l.depth_multiplier <= 0) bad_layer(l, "`depth_multiplier` must be > 0");
}

// ---- the map ----

// The resolved type options.
struct Types {
  QType source, interm, keras_weights, keras_acc;
  bool reference = false;
  bool skip_zero_weights = false;
};

QType option_type(const std::string& value, const char* option) {
  try {
    return qtools_type(value);
  } catch (const InvalidArgument& e) {
    throw InvalidArgument(std::string("qtools: option `") + option + "` = \"" + value +
                          "\" is not a type (int8, int16, int32, fp16, fp32 or a quantizer "
                          "spec): " +
                          e.what());
  }
}

Types resolve(const QToolsOptions& o) {
  o.validate();
  Types t;
  t.reference = o.for_reference;
  t.skip_zero_weights = o.skip_zero_weights;
  t.interm = option_type(o.default_quantizer, "default_quantizer");
  if (o.for_reference) {
    t.source = option_type(o.reference_internal, "reference_internal");
    t.keras_weights = t.source;
    t.keras_acc = option_type(o.reference_accumulator, "reference_accumulator");
  } else {
    t.source = option_type(o.source_quantizer, "source_quantizer");
    t.keras_weights =
        o.keras_quantizer.empty() ? t.interm : option_type(o.keras_quantizer, "keras_quantizer");
    t.keras_acc = o.keras_accumulator.empty()
                      ? t.interm
                      : option_type(o.keras_accumulator, "keras_accumulator");
  }
  return t;
}

// One multiply-accumulate stage before typing: its weights' slot, counts and input.
struct StagePlan {
  std::string part, weight_slot;
  int64_t operations, weights, fan_in, bias_count;
  enum Input { kLayerInput, kPrevious, kOutput, kState, kUnquantized } input;
};

std::vector<StagePlan> plan_stages(const LayerInfo& l) {
  const int64_t k = product(l.kernel_size, 0, l.kernel_size.size());
  const int64_t in = l.in_channels, out = l.out_channels, g = l.groups;
  const int64_t bias = l.bias ? out : 0;
  switch (l.kind) {
    case LayerKind::kDense: {
      const int64_t positions = product(l.input_shape, 1, l.input_shape.size() - 1);
      const char* slot = "kernel_quantizer";
      return {{"", slot, positions * in * out, in * out, in, bias, StagePlan::kLayerInput}};
    }
    case LayerKind::kConv: {
      const std::string slot =
          l.quantizer("depthwise_quantizer") ? "depthwise_quantizer" : "kernel_quantizer";
      const int64_t outputs = product(l.output_shape, 2, l.output_shape.size()) * out;
      return {{"", slot, outputs * (in / g) * k, out * (in / g) * k, (in / g) * k, bias,
               StagePlan::kLayerInput}};
    }
    case LayerKind::kConvTranspose: {
      const int64_t inputs = product(l.input_shape, 2, l.input_shape.size()) * in;
      return {{"", "kernel_quantizer", inputs * (out / g) * k, in * (out / g) * k, (in / g) * k,
               bias, StagePlan::kLayerInput}};
    }
    case LayerKind::kSeparableConv: {
      const int64_t mid = in * l.depth_multiplier;
      const int64_t positions = product(l.output_shape, 2, l.output_shape.size());
      return {{"depthwise", "depthwise_quantizer", positions * mid * k, mid * k, k, 0,
               StagePlan::kLayerInput},
              {"pointwise", "pointwise_quantizer", positions * out * mid, out * mid, mid, bias,
               StagePlan::kPrevious}};
    }
    case LayerKind::kRecurrent: {
      const int64_t d = l.bidirectional ? 2 : 1, rows = l.gates * out;
      const int64_t steps = l.input_shape[l.batch_first ? 1 : 0];
      const bool reset_before = l.gates == 3 && !l.reset_after;
      const int64_t state_rows = reset_before ? rows - out : rows;
      const int64_t b = l.bias ? d * rows : 0;
      std::vector<StagePlan> stages;
      for (int64_t layer = 0; layer < l.num_layers; ++layer) {
        const std::string suffix = l.num_layers == 1 ? "" : "_l" + std::to_string(layer);
        const int64_t width = layer == 0 ? in : d * out;
        stages.push_back({"kernel" + suffix, "kernel_quantizer", d * steps * rows * width,
                          d * rows * width, width, b,
                          layer == 0 ? StagePlan::kLayerInput : StagePlan::kOutput});
        stages.push_back({"recurrent" + suffix, "recurrent_quantizer", d * steps * state_rows * out,
                          d * rows * out, out, b, StagePlan::kState});
        if (reset_before) {  // the candidate's rows multiply r h (no quantizer): weights counted
                             // above
          stages.push_back({"recurrent_n" + suffix, "recurrent_quantizer", d * steps * out * out, 0,
                            out, 0, StagePlan::kUnquantized});
        }
      }
      return stages;
    }
    default:
      return {};
  }
}

bool is_folded(const LayerInfo& l) {
  return l.type == "QConv2dBatchNorm" || l.type == "QLinearBatchNorm";
}

QType slot_type(const LayerInfo& l, const char* slot, const QType& missing) {
  const QuantizerPtr q = l.quantizer(slot);
  return q ? qtools_type(q) : missing;
}

// The values of group `group` (LayerInfo::values), or nullptr.
const at::Tensor* group_values(const LayerInfo& l, const std::string& group) {
  for (const auto& [name, t] : l.values) {
    if (name == group && t.defined()) return &t;
  }
  return nullptr;
}

// The group of LayerInfo::values a stage's weights come from ("" -> "weights", depthwise ->
// "weights_0", pointwise -> "weights_1", recurrent parts -> their group), and for a GRU with
// reset_after = false which rows of its recurrent kernel the stage uses: 1 r and z, 2 n, 0 all.
std::pair<std::string, int> stage_group(const LayerInfo& l, const std::string& part) {
  if (part.empty()) return {"weights", 0};
  if (part == "depthwise") return {"weights_0", 0};
  if (part == "pointwise") return {"weights_1", 0};
  const bool reset_before = l.kind == LayerKind::kRecurrent && l.gates == 3 && !l.reset_after;
  if (part.rfind("recurrent_n", 0) == 0) return {"recurrent" + part.substr(11), 2};
  if (part.rfind("recurrent", 0) == 0) return {part, reset_before ? 1 : 0};
  return {part, 0};
}

// (non-zero values, values) of `group`'s values, all rows or (`rows` 1, 2) the r/z or n rows of
// a GRU's recurrent kernel (D 3H rows of H: per direction the r, z, n blocks); nullopt without
// values.
std::optional<std::pair<int64_t, int64_t>> nonzero_values(const LayerInfo& l,
                                                          const std::string& group, int rows) {
  const at::Tensor* t = group_values(l, group);
  if (!t || t->numel() == 0) return std::nullopt;
  at::Tensor v = t->reshape({-1});
  if (rows != 0) {
    const int64_t h = l.out_channels;
    if (h <= 0 || v.numel() % h != 0) return std::nullopt;
    const at::Tensor candidate = at::arange(v.numel() / h, at::kLong).remainder(3 * h).ge(2 * h);
    const at::Tensor keep = rows == 2 ? candidate : candidate.logical_not();
    v = v.reshape({-1, h}).index({keep}).reshape({-1});
    if (v.numel() == 0) return std::nullopt;
  }
  return std::make_pair(v.ne(0).sum().item<int64_t>(), v.numel());
}

// A multiply-accumulate layer (QTools's QDense/QConv branch; Keras layers when unquantized).
void map_mac(const LayerInfo& l, const Types& t, LayerDataType& d) {
  check_mac(l);
  // A quantized (QKeras-like) layer has quantizer slots; a torch layer has none (QTools's Keras
  // layers: keras_quantizer weights, keras_accumulator products and sums).
  const bool float_layer = t.reference || l.quantizers.empty();
  QType output;
  if (l.kind == LayerKind::kRecurrent) {
    const QuantizerPtr act = l.quantizer("activation");
    output = t.reference || l.quantizers.empty() ? t.keras_acc
             : (l.gates == 1 && act)             ? qtools_type(act)
                                                 : t.interm;
  }
  const QuantizerPtr state_q = l.quantizer("state_quantizer");
  const QType state = (!float_layer && state_q) ? qtools_type(state_q) : output;
  QType previous = d.input;
  // skip_zero_weights: the fraction of non-zero bias values (every bias value of the layer).
  std::optional<std::pair<int64_t, int64_t>> bias_nonzero;
  if (t.skip_zero_weights) {
    if (const at::Tensor* b = group_values(l, "bias"); b && b->numel() > 0) {
      bias_nonzero = std::make_pair(b->ne(0).sum().item<int64_t>(), b->numel());
    }
  }
  for (StagePlan p : plan_stages(l)) {
    if (t.skip_zero_weights) {
      const auto [group, rows] = stage_group(l, p.part);
      if (const auto used = nonzero_values(l, group, rows)) {
        // Each of the stage's weights is used operations / values times (per output position).
        if (p.operations % used->second == 0) {
          p.operations = p.operations / used->second * used->first;
        }
      }
      if (p.weights > 0) {  // the weights stored: the whole group (a GRU's n rows included)
        if (const auto stored = nonzero_values(l, group, 0)) p.weights = stored->first;
      }
      if (bias_nonzero && p.bias_count > 0) {
        p.bias_count = p.bias_count * bias_nonzero->first / bias_nonzero->second;
      }
    }
    QToolsStage s;
    s.part = p.part;
    s.operations = p.operations;
    s.fan_in = p.fan_in;
    switch (p.input) {
      case StagePlan::kLayerInput:
        s.input = d.input;
        break;
      case StagePlan::kPrevious:
        s.input = previous;
        break;
      case StagePlan::kOutput:
        s.input = output;
        break;
      case StagePlan::kState:
        s.input = state;
        break;
      case StagePlan::kUnquantized:
        s.input = float_layer ? t.keras_acc : t.interm;
        break;
    }
    s.weight = float_layer ? t.keras_weights : slot_type(l, p.weight_slot.c_str(), t.interm);
    Unit mult = make_multiplier(s.weight, s.input);
    Unit acc = make_accumulator(mult.output, p.fan_in);
    if (p.bias_count > 0) {
      QType bias;
      if (float_layer) {
        bias = t.keras_weights;
      } else if (const QuantizerPtr bq = l.quantizer("bias_quantizer")) {
        bias = qtools_type(bq);
      } else {
        // A folded layer's unquantized bias is kept at the accumulator's type (QTools's
        // QConv2DBatchnorm); another layer's empty slot has the default type.
        bias = is_folded(l) ? acc.output : t.interm;
      }
      const Unit sum = make_adder(acc.output, bias);
      acc.output = sum.output;
      acc.gate_bits = static_cast<double>(sum.output.bits);
      d.parameters.push_back({p.part.empty() ? "kernel" : p.part, p.weights, s.weight});
      d.parameters.push_back({p.part.empty() ? "bias" : "bias_" + p.part, p.bias_count, bias});
    } else if (p.weights > 0) {
      d.parameters.push_back({p.part.empty() ? "kernel" : p.part, p.weights, s.weight});
    }
    if (float_layer) {  // the products and sums at keras_accumulator
      mult.output = t.keras_acc;
      acc.output = t.keras_acc;
      acc.gate_bits = static_cast<double>(t.keras_acc.bits);
    }
    s.multiplier = mult.output;
    s.accumulator = acc.output;
    d.operators.push_back(as_operator(mult, p.part, "multiplier", p.operations));
    d.operators.push_back(as_operator(acc, p.part, "accumulator", p.operations));
    d.operation_count += p.operations;
    previous = acc.output;
    d.stages.push_back(std::move(s));
  }
  d.output = l.kind == LayerKind::kRecurrent ? output : previous;
}

// (Q)BatchNormalization: y = gamma (x - mean) / sqrt(var) + beta (QTools's QBNFactory).
void map_batch_norm(const LayerInfo& l, const Types& t, LayerDataType& d) {
  check_shapes(l);
  const int64_t channels = l.input_shape[1];
  const bool float_layer = t.reference || l.quantizers.empty();
  QType gamma = t.keras_weights, beta = t.keras_weights, mean = t.keras_weights,
        variance = t.keras_weights;
  if (!float_layer) {
    gamma = slot_type(l, "gamma_quantizer", t.interm);
    beta = slot_type(l, "beta_quantizer", d.input);
    mean = slot_type(l, "mean_quantizer", d.input);
    variance = slot_type(l, "variance_quantizer", t.interm);
  }
  const bool affine = l.parameters > 0;  // scale and center
  QType stddev = variance;
  if (stddev.is_po2) {
    stddev.max_value =
        variance.max_value >= 0 ? std::round(std::sqrt(variance.max_value)) : variance.max_value;
    stddev.bits = variance.bits - 1;
    stddev.int_bits = stddev.bits;
  }
  const int64_t count = d.operation_count = size_without_batch(l.input_shape);
  Unit divider = make_divider(affine ? gamma : d.input, stddev, l);
  std::optional<Unit> multiplier, adder;
  if (affine) multiplier = make_multiplier(divider.output, d.input);
  const Unit& scaled = multiplier ? *multiplier : divider;
  if (affine) adder = make_adder(scaled.output, beta);
  QType output = adder ? adder->output : scaled.output;
  if (float_layer) {
    divider.output = t.keras_acc;
    if (multiplier) multiplier->output = t.keras_acc;
    if (adder) adder->output = t.keras_acc;
    output = t.keras_acc;
  }
  d.operators.push_back(as_operator(divider, "", "divider", count));
  if (multiplier) d.operators.push_back(as_operator(*multiplier, "", "multiplier", count));
  if (adder) d.operators.push_back(as_operator(*adder, "", "adder", count, /*priced=*/false));
  d.parameters = {{"gamma", channels, gamma},
                  {"beta", channels, beta},
                  {"mean", channels, mean},
                  {"variance", channels, variance}};
  d.output = output;
}

// Average pooling: sums of pool values (QTools's pooling accumulator); the quantized layers then
// multiply by their average_quantizer's 1/N.
void map_avg_pool(const LayerInfo& l, const Types& t, LayerDataType& d) {
  check_shapes(l);
  const int64_t in_positions = product(l.input_shape, 2, l.input_shape.size());
  const int64_t out_positions =
      std::max<int64_t>(product(l.output_shape, 2, l.output_shape.size()), 1);
  const int64_t pool = std::max<int64_t>(in_positions / out_positions, 1);
  const int64_t channels = l.output_shape[1];
  const int64_t adds = d.operation_count = channels * pool;
  Unit acc = make_accumulator(d.input, pool);
  const bool quantized = !l.quantizers.empty();
  std::optional<Unit> multiplier;
  if (quantized) {
    multiplier = make_multiplier(acc.output, slot_type(l, "average_quantizer", t.interm));
  }
  if (t.reference) {
    acc.output = t.keras_acc;
    if (multiplier) multiplier->output = t.keras_acc;
  }
  d.operators.push_back(as_operator(acc, "", "accumulator", adds));
  QType output = acc.output;
  if (multiplier) {
    d.operators.push_back(
        as_operator(*multiplier, "", "multiplier", size_without_batch(l.output_shape)));
    output = multiplier->output;
    d.operation_count += size_without_batch(l.output_shape);
  }
  const QuantizerPtr act = l.quantizer("activation");
  d.output = (act && !t.reference) ? qtools_type(act) : output;
}

LayerDataType map_layer(const LayerInfo& l, const Types& t, const QType& input, bool is_input,
                        bool unknown_as_zero) {
  LayerDataType d;
  d.name = l.name;
  d.type = l.type;
  d.kind = l.kind;
  d.input_shape = l.input_shape;
  d.output_shape = l.output_shape;
  d.input = input;
  d.output = input;
  if (l.parameters < 0) bad_layer(l, "`parameters` must be >= 0");
  const Role role = role_of(l);
  d.role = role_name(role);
  switch (role) {
    case Role::kMac:
      map_mac(l, t, d);
      break;
    case Role::kActivation: {
      const QuantizerPtr q = l.quantizer("activation");
      if (!q) bad_layer(l, "an activation layer needs a quantizer in slot \"activation\"");
      d.operation_count = size_without_batch(l.input_shape);
      d.output = t.reference ? t.keras_acc : qtools_type(q);
      break;
    }
    case Role::kFloatActivation:
      d.operation_count = size_without_batch(l.input_shape);
      d.output = t.keras_acc;
      break;
    case Role::kBatchNorm:
      map_batch_norm(l, t, d);
      break;
    case Role::kAvgPool:
      map_avg_pool(l, t, d);
      break;
    case Role::kMaxPool:
    case Role::kReshape:
      d.operation_count = size_without_batch(l.input_shape);
      break;
    case Role::kUpsample:
      d.operation_count = size_without_batch(l.output_shape);
      break;
    case Role::kPass:
      if (t.reference && !is_input) d.output = t.keras_acc;
      break;
    case Role::kIdentity:  // not in an inference graph
      break;
    case Role::kUnknown:
      if (!unknown_as_zero) {
        bad_layer(l,
                  "the cost model does not know layers of this type (pass "
                  "unknown_layers_as_zero=true to count it as zero, passing its input's type on)");
      }
      d.counted_as_zero = true;
      break;
  }
  return d;
}

// ---- energy (qenergy.py with config_public.py's "horowitz" tables) ----

// np.poly1d evaluation (Horner).
double poly(std::initializer_list<double> c, double x) {
  double y = 0;
  for (double v : c) y = y * x + v;
  return y;
}

double sram_rd(double log2_bits) {
  return std::max(poly({9.02427321e-04, -2.68847858e-02, 2.08900804e-01, 0.0}, log2_bits), 0.0);
}
double dram_rd(double bits) { return std::max(poly({20.3125, 0}, bits), 0.0); }

double op_energy(const QType& out, const std::string& implemented_as, double gate_bits) {
  if (out.is_floating_point) {
    const bool mul = implemented_as == "mul";
    if (out.bits == 32) return mul ? 3.7 : 0.9;
    if (out.bits == 16) return mul ? 1.1 : 0.4;
    throw InvalidArgument("qtools: no energy table for a " + std::to_string(out.bits) +
                          "-bit float (fp16 and fp32 only)");
  }
  if (implemented_as == "mul") {
    return std::max(poly({0.002994791667, 0.001041666667, 0}, gate_bits), 0.0);
  }
  return std::max(poly({0.003125, 0}, gate_bits), 0.0);  // add, mux, xor, and, shifter
}

// memory_read_energy / memory_write_energy (reads and writes cost the same).
double memory_energy(bool is_io, double count, const std::string& on_memory, const QToolsOptions& o,
                     int64_t bits) {
  const std::string mode = is_io ? (o.rd_wr_on_io ? "dram" : "sram") : on_memory;
  const double total_bits = count * static_cast<double>(bits);
  if (total_bits <= 0) return 0;
  const double log2_bits = std::log2(std::max(total_bits, static_cast<double>(o.min_sram_size)));
  const double sram = std::ceil(total_bits * (1.0 / 64.0)) * sram_rd(log2_bits);
  if (mode == "dram") return dram_rd(total_bits) + (o.rd_wr_on_io ? sram : 0.0);
  if (mode == "sram") return sram;
  return 0;  // fixed
}

// float("{0:.2f}".format(v)): Python's (correctly rounded) formatting.
double round2(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return std::strtod(buf, nullptr);
}

std::vector<std::string> included_components(const std::string& role) {
  if (role == "identity") return {};  // Identity, Dropout: not in an inference graph
  if (role == "activation" || role == "float_activation") return {"outputs"};
  if (role == "batchnorm") return {"parameters"};
  if (role == "max_pool") return {"op_cost"};
  return {"inputs", "parameters", "op_cost"};
}

std::string fixed(double v, int precision = 2) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(precision) << v;
  return os.str();
}

// Left- or right-aligned in a column of `n` characters, with at least one space to the next.
std::string pad(const std::string& s, size_t n) {
  return s.size() >= n ? s + " " : s + std::string(n - s.size(), ' ');
}
std::string rpad(const std::string& s, size_t n) {
  return s.size() >= n ? " " + s : std::string(n - s.size(), ' ') + s;
}

json type_json(const QType& t) {
  return json{{"name", t.name},
              {"mode", static_cast<int>(t.mode)},
              {"mode_name", operand_mode_name(t.mode)},
              {"bits", t.bits},
              {"int_bits", t.int_bits},
              {"signed", t.is_signed},
              {"floating_point", t.is_floating_point},
              {"po2", t.is_po2},
              {"max_value", t.max_value}};
}

// ---- size (forgiving_bits.py) ----

bool is_output_bits_activation(const std::string& type) {
  return type == "Softmax" || type == "Sigmoid" || type == "LogSoftmax" || type == "Softmax2d";
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Options and types

void QToolsOptions::validate() const {
  const auto check = [](const std::string& value, const char* option,
                        std::initializer_list<const char*> allowed) {
    for (const char* a : allowed) {
      if (value == a) return;
    }
    std::string list;
    for (const char* a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
    throw InvalidArgument(std::string("qtools: option `") + option + "` must be one of " + list +
                          ", got \"" + value + "\"");
  };
  check(process, "process", {"horowitz"});
  check(weights_on_memory, "weights_on_memory", {"dram", "sram", "fixed"});
  check(activations_on_memory, "activations_on_memory", {"dram", "sram", "fixed"});
  check(reference_internal, "reference_internal", {"int8", "fp16", "fp32"});
  check(reference_accumulator, "reference_accumulator", {"int16", "int32", "fp16", "fp32"});
  if (min_sram_size < 0) {
    throw InvalidArgument("qtools: option `min_sram_size` must be >= 0, got " +
                          std::to_string(min_sram_size));
  }
  for (const auto& [value, name] : {std::pair<int64_t, const char*>{ref_bits, "ref_bits"},
                                    {input_bits, "input_bits"},
                                    {output_bits, "output_bits"}}) {
    if (value < 0) {
      throw InvalidArgument(std::string("qtools: option `") + name + "` must be >= 0, got " +
                            std::to_string(value));
    }
  }
}

std::string QType::to_string() const {
  if (is_floating_point) return "fp" + std::to_string(bits);
  const std::string sign = is_signed ? "s" : "u";
  if (is_po2) return "po2<" + std::to_string(bits) + "," + sign + ">";
  if (name == "ternary" || name == "stochastic_ternary") return "ternary";
  if (mode == OperandMode::kBinary) return "binary";
  if (mode == OperandMode::kBinary01) return "binary01";
  return "q<" + std::to_string(bits) + "," + std::to_string(int_bits) + "," + sign + ">";
}

bool QType::operator==(const QType& o) const {
  return name == o.name && mode == o.mode && bits == o.bits && int_bits == o.int_bits &&
         is_signed == o.is_signed && is_floating_point == o.is_floating_point &&
         is_po2 == o.is_po2 && max_value == o.max_value;
}

QType qtools_type(const QuantizerPtr& quantizer) {
  if (!quantizer) throw InvalidArgument("qtools_type: a null quantizer");
  const QuantizerPtr q = cost_quantizer(quantizer);  // a FixedQuantizer: its widest type
  const std::string name = q->name();
  const SpecKeywords config = q->config();
  const int64_t bits = q->bits();
  const auto integer = static_cast<int64_t>(config_number(config, "integer", 0));
  if (name == "quantized_bits") {
    QType t = fixed_type(bits, integer, config_number(config, "keep_negative", 1) != 0);
    return t;
  }
  if (name == "quantized_relu") {
    QType t = fixed_type(bits, integer, config_number(config, "negative_slope", 0) != 0);
    t.name = name;
    if (bits == 1 && integer == 1) t.mode = OperandMode::kBinary01;
    return t;
  }
  if (name == "quantized_tanh" || name == "quantized_ulaw") {
    QType t = fixed_type(bits, integer, true);
    t.name = name;
    return t;
  }
  if (name == "quantized_po2" || name == "quantized_relu_po2") {
    QType t = po2_type(name == "quantized_po2");
    t.bits = bits;
    t.int_bits = bits;
    const double max_value = config_number(config, "max_value", -1);
    t.max_value = max_value > 0 ? max_value : -1;
    return t;
  }
  if (name == "binary" || name == "stochastic_binary" || name == "bernoulli") {
    const bool use_01 = name == "bernoulli" || config_number(config, "use_01", 0) != 0;
    QType t = binary_type(use_01);
    t.name = name;
    return t;
  }
  if (name == "ternary" || name == "stochastic_ternary") {
    QType t = ternary_type();
    t.name = name;
    return t;
  }
  // Not in QTools: its print_qstats operand type, fixed point with its `integer`.
  const OperandType o = operand_type(q);
  QType t = fixed_type(o.bits, integer, o.is_signed);
  t.name = name;
  t.mode = o.mode;
  return t;
}

QType qtools_type(const std::string& spec) {
  if (spec == "fp32") return float_type(32);
  if (spec == "fp16") return float_type(16);
  if (spec == "int8") return fixed_type(8, 0, true);
  if (spec == "int16") return fixed_type(16, 7, true);
  if (spec == "int32") return fixed_type(32, 10, true);
  // A function of the spec alone: parsed once per spec for the process (the options' types are
  // resolved at every call); a spec that does not parse throws every time.
  static std::mutex mutex;
  static auto* types = new std::unordered_map<std::string, QType>();  // never destroyed
  {
    std::lock_guard<std::mutex> lock(mutex);
    const auto it = types->find(spec);
    if (it != types->end()) return it->second;
  }
  QType t = qtools_type(get_quantizer(spec));
  std::lock_guard<std::mutex> lock(mutex);
  if (types->size() >= 1024) types->clear();  // bounded
  types->emplace(spec, t);
  return t;
}

// ---------------------------------------------------------------------------------------------
// The data-type map

DataTypeMap data_types(const std::vector<LayerInfo>& layers, const QToolsOptions& options) {
  if (has_cost_replacements(layers)) return data_types(with_cost_quantizers(layers), options);
  const Types t = resolve(options);
  DataTypeMap map;
  map.source = t.source;
  map.layers.reserve(layers.size());
  QType flow = t.source;
  for (size_t i = 0; i < layers.size(); ++i) {
    LayerDataType d = map_layer(layers[i], t, flow, i == 0, options.unknown_layers_as_zero);
    if (d.counted_as_zero) map.counted_as_zero.push_back(d.name);
    flow = d.output;
    map.layers.push_back(std::move(d));
  }
  return map;
}

std::string DataTypeMap::to_string() const {
  std::ostringstream os;
  os << "QTools data types (q<bits,int,s|u>: fixed point, int excluding the sign; source "
     << source.to_string() << ")\n";
  os << "    " << pad("layer", 16) << pad("type", 18) << pad("role", 17) << pad("input", 14)
     << pad("output", 14) << rpad("ops", 10) << "\n";
  for (const LayerDataType& l : layers) {
    os << "    " << pad(l.name, 16) << pad(l.type, 18)
       << pad(l.role + (l.counted_as_zero ? " (0)" : ""), 17) << pad(l.input.to_string(), 14)
       << pad(l.output.to_string(), 14) << rpad(std::to_string(l.operation_count), 10) << "\n";
    for (const QToolsParameters& p : l.parameters) {
      os << "        " << pad(p.name, 14) << pad(p.type.to_string(), 14) << p.count << " values\n";
    }
    for (const QToolsOperator& op : l.operators) {
      os << "        " << pad(op.part.empty() ? op.role : op.part + "." + op.role, 22)
         << pad(op.kind, 26) << pad(op.output.to_string(), 14) << op.implemented_as << " x"
         << fixed(op.gate_factor, 2) << " @" << fixed(op.gate_bits, 2) << " bits, " << op.count
         << (op.priced ? "" : " (not priced)") << "\n";
    }
  }
  return os.str();
}

std::string DataTypeMap::to_json() const {
  json root;
  root["source"] = type_json(source);
  json jl = json::array();
  for (const LayerDataType& l : layers) {
    json j;
    j["name"] = l.name;
    j["type"] = l.type;
    j["kind"] = layer_kind_name(l.kind);
    j["role"] = l.role;
    j["input_shape"] = l.input_shape;
    j["output_shape"] = l.output_shape;
    j["input"] = type_json(l.input);
    j["output"] = type_json(l.output);
    j["operation_count"] = l.operation_count;
    json stages = json::array();
    for (const QToolsStage& s : l.stages) {
      stages.push_back(json{{"part", s.part},
                            {"weight", type_json(s.weight)},
                            {"input", type_json(s.input)},
                            {"operations", s.operations},
                            {"fan_in", s.fan_in},
                            {"multiplier", type_json(s.multiplier)},
                            {"accumulator", type_json(s.accumulator)}});
    }
    j["stages"] = stages;
    json params = json::array();
    for (const QToolsParameters& p : l.parameters) {
      params.push_back(json{{"name", p.name}, {"count", p.count}, {"type", type_json(p.type)}});
    }
    j["parameters"] = params;
    json ops = json::array();
    for (const QToolsOperator& op : l.operators) {
      ops.push_back(json{{"part", op.part},
                         {"role", op.role},
                         {"kind", op.kind},
                         {"implemented_as", op.implemented_as},
                         {"output", type_json(op.output)},
                         {"gate_factor", op.gate_factor},
                         {"gate_bits", op.gate_bits},
                         {"count", op.count},
                         {"priced", op.priced}});
    }
    j["operators"] = ops;
    j["counted_as_zero"] = l.counted_as_zero;
    jl.push_back(j);
  }
  root["layers"] = std::move(jl);
  root["counted_as_zero"] = counted_as_zero;
  return root.dump();
}

// ---------------------------------------------------------------------------------------------
// Energy

EnergyReport energy(const DataTypeMap& map, const QToolsOptions& o) {
  o.validate();
  EnergyReport r;
  r.counted_as_zero = map.counted_as_zero;
  r.layers.reserve(map.layers.size());
  double rounded_sum = 0, all_sum = 0;
  for (size_t i = 0; i < map.layers.size(); ++i) {
    const LayerDataType& d = map.layers[i];
    LayerEnergy e;
    e.name = d.name;
    e.type = d.type;
    e.role = d.role;
    e.counted_as_zero = d.counted_as_zero;
    e.included = included_components(d.role);
    if (!d.counted_as_zero && d.role != "identity") {
      const bool is_input = i == 0, is_output = i + 1 == map.layers.size();
      e.inputs = memory_energy(is_input, static_cast<double>(size_without_batch(d.input_shape)),
                               o.activations_on_memory, o, d.input.bits);
      for (const QToolsParameters& p : d.parameters) {
        e.parameters +=
            memory_energy(false, static_cast<double>(p.count), o.weights_on_memory, o, p.type.bits);
      }
      e.outputs = memory_energy(is_output, static_cast<double>(size_without_batch(d.output_shape)),
                                o.activations_on_memory, o, d.output.bits);
      for (const QToolsOperator& op : d.operators) {
        if (!op.priced) continue;
        e.op_cost += static_cast<double>(op.count) * op.gate_factor *
                     op_energy(op.output, op.implemented_as, op.gate_bits);
      }
    }
    for (const std::string& c : e.included) {
      const double v = c == "inputs"       ? e.inputs
                       : c == "parameters" ? e.parameters
                       : c == "op_cost"    ? e.op_cost
                                           : e.outputs;
      e.total += v;
      rounded_sum += round2(v);
    }
    all_sum += e.inputs + e.parameters + e.op_cost + e.outputs;
    r.total += e.total;
    r.layers.push_back(std::move(e));
  }
  r.qtools_total = static_cast<int64_t>(rounded_sum);
  r.total_cost = static_cast<int64_t>(all_sum);
  return r;
}

EnergyReport energy(const std::vector<LayerInfo>& layers, const QToolsOptions& options) {
  return energy(data_types(layers, options), options);
}

std::string EnergyReport::to_string() const {
  std::ostringstream os;
  os << "QTools energy (pJ per sample; * marks the components in the total)\n";
  os << "    " << pad("layer", 16) << pad("type", 18) << rpad("inputs", 13)
     << rpad("parameters", 13) << rpad("op_cost", 13) << rpad("outputs", 13) << rpad("total", 13)
     << "\n";
  for (const LayerEnergy& l : layers) {
    const auto cell = [&](const char* name, double v) {
      const bool in = std::find(l.included.begin(), l.included.end(), name) != l.included.end();
      return rpad(fixed(v) + (in ? "*" : " "), 13);
    };
    os << "    " << pad(l.name, 16) << pad(l.type + (l.counted_as_zero ? " (0)" : ""), 18)
       << cell("inputs", l.inputs) << cell("parameters", l.parameters) << cell("op_cost", l.op_cost)
       << cell("outputs", l.outputs) << rpad(fixed(l.total), 13) << "\n";
  }
  os << "    " << std::string(40, '-') << "\n";
  os << "    " << pad("Total (pJ)", 30) << " : " << fixed(total) << "\n";
  os << "    " << pad("QTools extract_energy_sum", 30) << " : " << qtools_total << "\n";
  os << "    " << pad("QTools total_cost", 30) << " : " << total_cost << "\n";
  if (!counted_as_zero.empty()) {
    os << "    counted as zero (unknown types):";
    for (const auto& n : counted_as_zero) os << " " << n;
    os << "\n";
  }
  return os.str();
}

std::string EnergyReport::to_json() const {
  json root;
  json jl = json::array();
  for (const LayerEnergy& l : layers) {
    json o = json::object();
    o["name"] = l.name;
    o["type"] = l.type;
    o["role"] = l.role;
    o["inputs"] = l.inputs;
    o["parameters"] = l.parameters;
    o["op_cost"] = l.op_cost;
    o["outputs"] = l.outputs;
    o["included"] = l.included;
    o["total"] = l.total;
    o["counted_as_zero"] = l.counted_as_zero;
    jl.push_back(std::move(o));
  }
  root["layers"] = std::move(jl);
  root["total"] = total;
  root["qtools_total"] = qtools_total;
  root["total_cost"] = total_cost;
  root["counted_as_zero"] = counted_as_zero;
  return root.dump();
}

// ---------------------------------------------------------------------------------------------
// Size

SizeReport model_size(const std::vector<LayerInfo>& layers, const QToolsOptions& options) {
  // The roles, geometry and errors of the data-type map (its types are not needed here).
  const DataTypeMap map = data_types(layers, options);
  SizeReport r;
  r.counted_as_zero = map.counted_as_zero;
  const int64_t ref = options.ref_bits;
  if (!layers.empty())
    r.input_bits = options.input_bits * size_without_batch(layers[0].input_shape);
  r.layers.reserve(layers.size());
  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerInfo& l = layers[i];
    const LayerDataType& d = map.layers[i];
    LayerSize s;
    s.name = l.name;
    s.type = l.type;
    const int64_t outputs = size_without_batch(l.output_shape);
    if (d.role == "mac") {
      const bool quantized = !l.quantizers.empty();
      for (const QToolsParameters& p : d.parameters) {
        // The weights' own bits where a quantizer defines them, else ref_bits.
        int64_t bits = ref;
        if (quantized) {
          const bool is_bias = p.name.rfind("bias", 0) == 0;
          std::string slot = "kernel_quantizer";
          if (is_bias) {
            slot = "bias_quantizer";
          } else if (p.name == "depthwise" || p.name == "pointwise" || p.name == "recurrent" ||
                     p.name.rfind("recurrent_", 0) == 0) {
            slot =
                p.name.rfind("recurrent", 0) == 0 ? "recurrent_quantizer" : p.name + "_quantizer";
          } else if (l.quantizer("depthwise_quantizer")) {
            slot = "depthwise_quantizer";
          }
          if (const QuantizerPtr q = l.quantizer(slot)) bits = q->bits();
        }
        s.parameter_bits += bits * p.count;
        s.reference_parameter_bits += ref * p.count;
      }
    } else if (d.role == "batchnorm" && l.parameters > 0) {
      // The variance (scale) and beta (center) a batch norm folds into one value per channel:
      // QKeras counts ref_bits each for BatchNormalization, 6 and 5 bits for QBatchNormalization.
      const int64_t channels = l.input_shape[1];
      s.parameter_bits = (l.quantizers.empty() ? 2 * ref : 11) * channels;
      s.reference_parameter_bits = 2 * ref * channels;
    }
    if (d.role == "activation") {
      s.activation_bits = l.quantizer("activation")->bits() * outputs;
      s.reference_activation_bits = ref * outputs;
    } else if (d.role == "float_activation") {
      const int64_t bits = is_output_bits_activation(l.type) ? options.output_bits : ref;
      s.activation_bits = s.reference_activation_bits = bits * outputs;
    }
    r.parameter_bits += s.parameter_bits;
    r.activation_bits += s.activation_bits;
    r.reference_parameter_bits += s.reference_parameter_bits;
    r.reference_activation_bits += s.reference_activation_bits;
    r.layers.push_back(std::move(s));
  }
  r.activation_bits += r.input_bits;
  r.reference_activation_bits += r.input_bits;
  if (options.for_reference) {
    r.parameter_bits = r.reference_parameter_bits;
    r.activation_bits = r.reference_activation_bits;
    for (LayerSize& s : r.layers) {
      s.parameter_bits = s.reference_parameter_bits;
      s.activation_bits = s.reference_activation_bits;
    }
  }
  r.total_bits = r.parameter_bits + r.activation_bits;
  r.reference_total_bits = r.reference_parameter_bits + r.reference_activation_bits;
  return r;
}

std::string SizeReport::to_string() const {
  std::ostringstream os;
  os << "Model size in bits (AutoQKeras's \"bits\" goal; reference: every value at ref_bits)\n";
  os << "    " << pad("layer", 16) << pad("type", 18) << rpad("parameters", 12)
     << rpad("activations", 12) << rpad("ref params", 12) << rpad("ref acts", 12) << "\n";
  os << "    " << pad("(input)", 34) << rpad("0", 12) << rpad(std::to_string(input_bits), 12)
     << rpad("0", 12) << rpad(std::to_string(input_bits), 12) << "\n";
  for (const LayerSize& l : layers) {
    os << "    " << pad(l.name, 16) << pad(l.type, 18) << rpad(std::to_string(l.parameter_bits), 12)
       << rpad(std::to_string(l.activation_bits), 12)
       << rpad(std::to_string(l.reference_parameter_bits), 12)
       << rpad(std::to_string(l.reference_activation_bits), 12) << "\n";
  }
  os << "    " << std::string(40, '-') << "\n";
  os << "    " << pad("Parameter bits", 30) << " : " << parameter_bits << " (reference "
     << reference_parameter_bits << ")\n";
  os << "    " << pad("Activation bits", 30) << " : " << activation_bits << " (reference "
     << reference_activation_bits << ")\n";
  os << "    " << pad("Total bits", 30) << " : " << total_bits << " (reference "
     << reference_total_bits << ")\n";
  return os.str();
}

std::string SizeReport::to_json() const {
  json root;
  json jl = json::array();
  for (const LayerSize& l : layers) {
    json o = json::object();
    o["name"] = l.name;
    o["type"] = l.type;
    o["parameter_bits"] = l.parameter_bits;
    o["activation_bits"] = l.activation_bits;
    o["reference_parameter_bits"] = l.reference_parameter_bits;
    o["reference_activation_bits"] = l.reference_activation_bits;
    jl.push_back(std::move(o));
  }
  root["layers"] = std::move(jl);
  root["input_bits"] = input_bits;
  root["parameter_bits"] = parameter_bits;
  root["activation_bits"] = activation_bits;
  root["total_bits"] = total_bits;
  root["reference_parameter_bits"] = reference_parameter_bits;
  root["reference_activation_bits"] = reference_activation_bits;
  root["reference_total_bits"] = reference_total_bits;
  root["counted_as_zero"] = counted_as_zero;
  return root.dump();
}

std::ostream& operator<<(std::ostream& os, const DataTypeMap& map) { return os << map.to_string(); }
std::ostream& operator<<(std::ostream& os, const EnergyReport& r) { return os << r.to_string(); }
std::ostream& operator<<(std::ostream& os, const SizeReport& r) { return os << r.to_string(); }

// ---------------------------------------------------------------------------------------------
// Models

DataTypeMap data_types(torch::nn::Sequential model, const std::vector<int64_t>& input_shape,
                       const QToolsOptions& options) {
  options.validate();
  return data_types(describe_model(std::move(model), input_shape), options);
}

EnergyReport energy(torch::nn::Sequential model, const std::vector<int64_t>& input_shape,
                    const QToolsOptions& options) {
  options.validate();
  return energy(describe_model(std::move(model), input_shape), options);
}

SizeReport model_size(torch::nn::Sequential model, const std::vector<int64_t>& input_shape,
                      const QToolsOptions& options) {
  options.validate();
  return model_size(describe_model(std::move(model), input_shape), options);
}

}  // namespace heteroq::cost
