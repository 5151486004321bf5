// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Quantizer classes, their QKeras argument tables, make_quantizer() and get_quantizer().
#include "heteroq/quantizers/quantizer.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "core/fixed_point.h"
#include "heteroq/ops/quantize.h"
#include "heteroq/quantizers/fixed.h"

namespace heteroq {
namespace {

void throw_if(const std::string& err) {
  if (!err.empty()) throw InvalidArgument(err);
}

// ------------------------------------------------------------------------------------------------
// Argument tables: QKeras's constructor arguments in QKeras's order.

enum class Kind {
  Int,
  Bool,
  Real,
  OptionalReal,
  String,
  Alpha,     // None, a number, a list (per-channel alpha), or "auto" / "auto_po2"
  AxisList,  // None, an integer, or a list of integers
  OptionalInt,
  Any,
};
enum class Support {
  Yes,          // implemented
  Ignored,      // TensorFlow-only (var_name, use_variables): accepted, no effect
  DefaultOnly,  // a QKeras feature heteroq does not implement yet: only the default is accepted
};

struct Param {
  const char* name;
  Kind kind;
  SpecValue default_value;
  Support support;
};

using Values = std::map<std::string, SpecValue>;

struct Entry {
  std::vector<Param> params;
  std::function<QuantizerPtr(const Values&)> build;
};

SpecValue coerce(const std::string& q, const Param& p, const SpecValue& v) {
  auto bad = [&](const char* expected) -> InvalidArgument {
    return InvalidArgument(q + ": `" + p.name + "` must be " + expected + ", got " +
                           describe_spec_value(v));
  };
  switch (p.kind) {
    case Kind::Int:
      if (auto i = std::get_if<int64_t>(&v)) return *i;
      if (auto d = std::get_if<double>(&v)) {
        if (std::isfinite(*d) && std::floor(*d) == *d && std::fabs(*d) < 9.0e15) {
          return static_cast<int64_t>(*d);
        }
      }
      throw bad("an integer");
    case Kind::Bool:
      if (auto b = std::get_if<bool>(&v)) return *b;
      if (auto i = std::get_if<int64_t>(&v)) {
        if (*i == 0 || *i == 1) return *i == 1;
      }
      throw bad("a bool (True/False or 0/1)");
    case Kind::Real:
      if (auto i = std::get_if<int64_t>(&v)) return static_cast<double>(*i);
      if (auto d = std::get_if<double>(&v)) return *d;
      throw bad("a number");
    case Kind::OptionalReal:
      if (std::holds_alternative<std::monostate>(v)) return v;
      if (auto i = std::get_if<int64_t>(&v)) return static_cast<double>(*i);
      if (auto d = std::get_if<double>(&v)) return *d;
      if (std::holds_alternative<std::string>(v)) {
        throw InvalidArgument(q + ": `" + p.name + "`=" + format_spec_value(v) +
                              " is not supported yet; use None or a number");
      }
      throw bad("None or a number");
    case Kind::String:
      if (std::holds_alternative<std::string>(v)) return v;
      throw bad("a string");
    case Kind::Alpha:
      if (auto str = std::get_if<std::string>(&v)) {
        if (*str == "auto" || *str == "auto_po2") return v;
        throw InvalidArgument(q + ": `" + p.name + "` must be None, a number, 'auto' or " +
                              "'auto_po2', got " + describe_spec_value(v));
      }
      if (std::holds_alternative<std::monostate>(v)) return v;
      if (auto i = std::get_if<int64_t>(&v)) return static_cast<double>(*i);
      if (auto d = std::get_if<double>(&v)) return *d;
      if (auto l = std::get_if<std::vector<double>>(&v)) {
        if (l->empty()) throw bad("None, a number, a non-empty list of numbers, 'auto' or 'auto_po2'");
        return v;
      }
      throw bad("None, a number, a list of numbers (one per channel), 'auto' or 'auto_po2'");
    case Kind::AxisList: {
      if (std::holds_alternative<std::monostate>(v)) return v;
      std::vector<double> axes;
      if (auto i = std::get_if<int64_t>(&v)) axes.push_back(static_cast<double>(*i));
      else if (auto l = std::get_if<std::vector<double>>(&v)) axes = *l;
      else throw bad("None, an integer or a list of integers");
      for (double a : axes) {
        if (std::floor(a) != a || std::fabs(a) > 64) throw bad("None, an integer or a list of integers");
      }
      if (axes.empty()) throw bad("None, an integer or a non-empty list of integers");
      return axes;
    }
    case Kind::OptionalInt:
      if (std::holds_alternative<std::monostate>(v)) return v;
      if (auto i = std::get_if<int64_t>(&v)) return *i;
      if (auto d = std::get_if<double>(&v)) {
        if (std::isfinite(*d) && std::floor(*d) == *d && std::fabs(*d) < 9.0e15) {
          return static_cast<int64_t>(*d);
        }
      }
      throw bad("None or an integer");
    case Kind::Any:
      return v;
  }
  return v;
}

Values bind(const std::string& q, const std::vector<Param>& params,
            const std::vector<SpecValue>& positional, const SpecKeywords& keywords) {
  if (positional.size() > params.size()) {
    throw SpecError(q + " takes at most " + std::to_string(params.size()) +
                    " positional arguments, got " + std::to_string(positional.size()));
  }
  Values raw;
  for (size_t i = 0; i < positional.size(); ++i) raw[params[i].name] = positional[i];
  for (const auto& [key, v] : keywords) {
    bool known = false;
    for (const auto& p : params) known = known || key == p.name;
    if (!known) {
      std::string names;
      for (const auto& p : params) names += std::string(names.empty() ? "" : ", ") + p.name;
      throw SpecError(q + " has no argument `" + key + "`; its arguments are: " + names);
    }
    if (raw.count(key)) {
      throw SpecError(q + ": argument `" + key + "` is given both by position and by keyword");
    }
    raw[key] = v;
  }
  Values out;
  for (const auto& p : params) {
    auto it = raw.find(p.name);
    SpecValue v = it == raw.end() ? p.default_value : coerce(q, p, it->second);
    if (p.support == Support::DefaultOnly && v != p.default_value) {
      throw InvalidArgument(q + ": `" + p.name + "`=" + format_spec_value(v) +
                            " is not supported yet (only the default " +
                            format_spec_value(p.default_value) + ")");
    }
    out[p.name] = v;
  }
  return out;
}

int64_t as_int(const Values& v, const char* k) { return std::get<int64_t>(v.at(k)); }
bool as_bool(const Values& v, const char* k) { return std::get<bool>(v.at(k)); }
double as_real(const Values& v, const char* k) { return std::get<double>(v.at(k)); }
std::optional<double> as_optional_real(const Values& v, const char* k) {
  const auto& x = v.at(k);
  if (std::holds_alternative<std::monostate>(x)) return std::nullopt;
  return std::get<double>(x);
}

std::string as_string(const Values& v, const char* k) { return std::get<std::string>(v.at(k)); }
std::optional<std::vector<int64_t>> axis_list(const Values& v, const char* k = "scale_axis") {
  if (auto l = std::get_if<std::vector<double>>(&v.at(k))) {
    return std::vector<int64_t>(l->begin(), l->end());
  }
  return std::nullopt;
}
std::optional<int64_t> as_optional_int(const Values& v, const char* k) {
  if (auto i = std::get_if<int64_t>(&v.at(k))) return *i;
  return std::nullopt;
}
// QKeras asserts that elements_per_scale and the po2 exponents come with alpha "auto_po2".
void check_po2_only_args(const std::string& q, const Values& v, bool allowed,
                         const std::string& needs = "alpha 'auto_po2'") {
  if (allowed) return;
  for (const char* k : {"elements_per_scale", "min_po2_exponent", "max_po2_exponent"}) {
    if (!std::holds_alternative<std::monostate>(v.at(k))) {
      throw InvalidArgument(q + ": `" + k + "` applies to " + needs + " only (as in QKeras)");
    }
  }
}

QuantizerPtr make_stochastic_binary(bool bernoulli, const Values& v) {
  const auto& alpha = v.at("alpha");
  std::string mode;
  if (auto s = std::get_if<std::string>(&alpha)) mode = *s;
  return std::make_shared<StochasticBinary>(
      bernoulli, mode.empty() ? as_optional_real(v, "alpha") : std::nullopt, mode,
      as_real(v, "temperature"), as_bool(v, "use_real_sigmoid"));
}

const std::map<std::string, Entry>& registry() {
  static const std::map<std::string, Entry> table = {
      {"quantized_bits",
       {{{"bits", Kind::Int, int64_t{8}, Support::Yes},
         {"integer", Kind::Int, int64_t{0}, Support::Yes},
         {"symmetric", Kind::Bool, false, Support::Yes},
         {"keep_negative", Kind::Bool, true, Support::Yes},
         {"alpha", Kind::Alpha, std::monostate{}, Support::Yes},
         {"use_stochastic_rounding", Kind::Bool, false, Support::Yes},
         {"scale_axis", Kind::AxisList, std::monostate{}, Support::Yes},
         {"qnoise_factor", Kind::Real, 1.0, Support::Yes},
         {"var_name", Kind::Any, std::monostate{}, Support::Ignored},
         {"use_ste", Kind::Bool, true, Support::Yes},
         {"use_variables", Kind::Bool, false, Support::Ignored},
         {"elements_per_scale", Kind::AxisList, std::monostate{}, Support::Yes},
         {"min_po2_exponent", Kind::OptionalInt, std::monostate{}, Support::Yes},
         {"max_po2_exponent", Kind::OptionalInt, std::monostate{}, Support::Yes},
         {"post_training_scale", Kind::Any, std::monostate{}, Support::DefaultOnly}},
        [](const Values& v) -> QuantizerPtr {
          const auto& alpha = v.at("alpha");
          const auto& axes = v.at("scale_axis");
          const auto mode = std::get_if<std::string>(&alpha);
          check_po2_only_args("quantized_bits", v, mode && *mode == "auto_po2");
          if (mode) {
            return std::make_shared<QuantizedBits>(
                as_int(v, "bits"), as_int(v, "integer"), as_bool(v, "symmetric"),
                as_bool(v, "keep_negative"), *mode, as_real(v, "qnoise_factor"), axis_list(v),
                as_bool(v, "use_ste"), axis_list(v, "elements_per_scale"),
                as_optional_int(v, "min_po2_exponent"), as_optional_int(v, "max_po2_exponent"));
          }
          if (auto list = std::get_if<std::vector<double>>(&alpha)) {
            std::optional<int64_t> axis;
            if (auto l = std::get_if<std::vector<double>>(&axes)) {
              if (l->size() != 1) {
                throw InvalidArgument("quantized_bits: a per-channel `alpha` needs one "
                                      "`scale_axis` (the channel axis), got " +
                                      format_spec_value(axes));
              }
              axis = static_cast<int64_t>((*l)[0]);
            }
            return std::make_shared<QuantizedBits>(
                as_int(v, "bits"), as_int(v, "integer"), as_bool(v, "symmetric"),
                as_bool(v, "keep_negative"), *list, as_real(v, "qnoise_factor"),
                as_bool(v, "use_stochastic_rounding"), axis, as_bool(v, "use_ste"));
          }
          if (!std::holds_alternative<std::monostate>(axes)) {
            throw InvalidArgument("quantized_bits: `scale_axis` applies to a per-channel alpha "
                                  "or alpha 'auto'/'auto_po2' only");
          }
          return std::make_shared<QuantizedBits>(as_int(v, "bits"), as_int(v, "integer"),
                                                 as_bool(v, "symmetric"),
                                                 as_bool(v, "keep_negative"),
                                                 as_optional_real(v, "alpha"),
                                                 as_real(v, "qnoise_factor"),
                                                 as_bool(v, "use_stochastic_rounding"),
                                                 as_bool(v, "use_ste"));
        }}},
      {"quantized_relu",
       {{{"bits", Kind::Int, int64_t{8}, Support::Yes},
         {"integer", Kind::Int, int64_t{0}, Support::Yes},
         {"use_sigmoid", Kind::Bool, false, Support::Yes},
         {"negative_slope", Kind::Real, 0.0, Support::Yes},
         {"use_stochastic_rounding", Kind::Bool, false, Support::Yes},
         {"relu_upper_bound", Kind::OptionalReal, std::monostate{}, Support::Yes},
         {"is_quantized_clip", Kind::Bool, true, Support::Yes},
         {"qnoise_factor", Kind::Real, 1.0, Support::Yes},
         {"var_name", Kind::Any, std::monostate{}, Support::Ignored},
         {"use_ste", Kind::Bool, true, Support::Yes},
         {"use_variables", Kind::Bool, false, Support::Ignored},
         {"enable_fast_inference", Kind::Bool, false, Support::Yes}},
        [](const Values& v) -> QuantizerPtr {
          return std::make_shared<QuantizedRelu>(
              as_int(v, "bits"), as_int(v, "integer"), as_bool(v, "use_sigmoid"),
              as_real(v, "negative_slope"), as_real(v, "qnoise_factor"),
              as_bool(v, "use_stochastic_rounding"), as_optional_real(v, "relu_upper_bound"),
              as_bool(v, "is_quantized_clip"), as_bool(v, "use_ste"),
              as_bool(v, "enable_fast_inference"));
        }}},
      {"quantized_po2",
       {{{"bits", Kind::Int, int64_t{8}, Support::Yes},
         {"max_value", Kind::OptionalReal, std::monostate{}, Support::Yes},
         {"use_stochastic_rounding", Kind::Bool, false, Support::Yes},
         {"quadratic_approximation", Kind::Bool, false, Support::Yes},
         {"log2_rounding", Kind::String, std::string("rnd"), Support::Yes},
         {"qnoise_factor", Kind::Real, 1.0, Support::Yes},
         {"var_name", Kind::Any, std::monostate{}, Support::Ignored},
         {"use_ste", Kind::Bool, true, Support::Yes},
         {"use_variables", Kind::Bool, false, Support::Ignored}},
        [](const Values& v) -> QuantizerPtr {
          return std::make_shared<QuantizedPo2>(
              as_int(v, "bits"), as_optional_real(v, "max_value"),
              as_bool(v, "quadratic_approximation"), as_string(v, "log2_rounding"),
              as_real(v, "qnoise_factor"), as_bool(v, "use_stochastic_rounding"),
              as_bool(v, "use_ste"));
        }}},
      {"quantized_relu_po2",
       {{{"bits", Kind::Int, int64_t{8}, Support::Yes},
         {"max_value", Kind::OptionalReal, std::monostate{}, Support::Yes},
         {"negative_slope", Kind::Real, 0.0, Support::Yes},
         {"use_stochastic_rounding", Kind::Bool, false, Support::Yes},
         {"quadratic_approximation", Kind::Bool, false, Support::Yes},
         {"log2_rounding", Kind::String, std::string("rnd"), Support::Yes},
         {"qnoise_factor", Kind::Real, 1.0, Support::Yes},
         {"var_name", Kind::Any, std::monostate{}, Support::Ignored},
         {"use_ste", Kind::Bool, true, Support::Yes},
         {"use_variables", Kind::Bool, false, Support::Ignored}},
        [](const Values& v) -> QuantizerPtr {
          return std::make_shared<QuantizedReluPo2>(
              as_int(v, "bits"), as_optional_real(v, "max_value"), as_real(v, "negative_slope"),
              as_bool(v, "quadratic_approximation"), as_string(v, "log2_rounding"),
              as_real(v, "qnoise_factor"), as_bool(v, "use_stochastic_rounding"),
              as_bool(v, "use_ste"));
        }}},
      {"binary",
       {{{"use_01", Kind::Bool, false, Support::Yes},
         {"alpha", Kind::Alpha, std::monostate{}, Support::Yes},
         {"use_stochastic_rounding", Kind::Bool, false, Support::Yes},
         {"scale_axis", Kind::AxisList, std::monostate{}, Support::Yes},
         {"elements_per_scale", Kind::AxisList, std::monostate{}, Support::Yes},
         {"min_po2_exponent", Kind::OptionalInt, std::monostate{}, Support::Yes},
         {"max_po2_exponent", Kind::OptionalInt, std::monostate{}, Support::Yes}},
        [](const Values& v) -> QuantizerPtr {
          const auto& alpha = v.at("alpha");
          const bool stochastic = as_bool(v, "use_stochastic_rounding");
          if (std::holds_alternative<std::vector<double>>(alpha)) {
            throw InvalidArgument("binary: a per-channel `alpha` is not supported; use a number, "
                                  "'auto' or 'auto_po2'");
          }
          if (auto mode = std::get_if<std::string>(&alpha)) {
            return std::make_shared<Binary>(as_bool(v, "use_01"), *mode, axis_list(v), stochastic,
                                            axis_list(v, "elements_per_scale"),
                                            as_optional_int(v, "min_po2_exponent"),
                                            as_optional_int(v, "max_po2_exponent"));
          }
          check_po2_only_args("binary", v, false, "alpha 'auto' or 'auto_po2'");
          if (axis_list(v)) throw InvalidArgument("binary: `scale_axis` applies to alpha 'auto' or 'auto_po2' only");
          return std::make_shared<Binary>(as_bool(v, "use_01"), as_optional_real(v, "alpha"),
                                          stochastic);
        }}},
      {"ternary",
       {{{"alpha", Kind::Alpha, std::monostate{}, Support::Yes},
         {"threshold", Kind::OptionalReal, std::monostate{}, Support::Yes},
         {"use_stochastic_rounding", Kind::Bool, false, Support::Yes},
         {"number_of_unrolls", Kind::Int, int64_t{5}, Support::Yes},
         {"scale_axis", Kind::AxisList, std::monostate{}, Support::Yes}},
        [](const Values& v) -> QuantizerPtr {
          const auto& alpha = v.at("alpha");
          if (std::holds_alternative<std::vector<double>>(alpha)) {
            throw InvalidArgument("ternary: a per-channel `alpha` is not supported; use None, a "
                                  "number, 'auto' or 'auto_po2'");
          }
          if (auto mode = std::get_if<std::string>(&alpha)) {
            if (as_optional_real(v, "threshold")) {
              throw InvalidArgument("ternary: `threshold` must be None with alpha '" + *mode +
                                    "' (the threshold is half the scale)");
            }
            return std::make_shared<Ternary>(*mode, as_int(v, "number_of_unrolls"), axis_list(v),
                                             as_bool(v, "use_stochastic_rounding"));
          }
          if (as_bool(v, "use_stochastic_rounding")) {
            throw InvalidArgument("ternary: `use_stochastic_rounding` needs alpha 'auto' or "
                                  "'auto_po2' (QKeras asserts it for a fixed alpha)");
          }
          if (axis_list(v)) throw InvalidArgument("ternary: `scale_axis` applies to alpha 'auto' or 'auto_po2' only");
          return std::make_shared<Ternary>(as_optional_real(v, "alpha"),
                                           as_optional_real(v, "threshold"),
                                           as_int(v, "number_of_unrolls"));
        }}},
      {"quantized_ulaw",
       {{{"bits", Kind::Int, int64_t{8}, Support::Yes},
         {"integer", Kind::Int, int64_t{0}, Support::Yes},
         {"symmetric", Kind::Bool, false, Support::Yes},
         {"u", Kind::Real, 255.0, Support::Yes}},
        [](const Values& v) -> QuantizerPtr {
          return std::make_shared<QuantizedUlaw>(as_int(v, "bits"), as_int(v, "integer"),
                                                 as_bool(v, "symmetric"), as_real(v, "u"));
        }}},
      {"quantized_hswish",
       {{{"bits", Kind::Int, int64_t{8}, Support::Yes},
         {"integer", Kind::Int, int64_t{0}, Support::Yes},
         {"symmetric", Kind::Bool, false, Support::Yes},
         {"alpha", Kind::OptionalReal, std::monostate{}, Support::Yes},
         {"use_stochastic_rounding", Kind::Bool, false, Support::Yes},
         {"scale_axis", Kind::Any, std::monostate{}, Support::DefaultOnly},
         {"qnoise_factor", Kind::Real, 1.0, Support::Yes},
         {"var_name", Kind::Any, std::monostate{}, Support::Ignored},
         {"use_ste", Kind::Bool, true, Support::DefaultOnly},
         {"use_variables", Kind::Bool, false, Support::Ignored},
         {"relu_shift", Kind::Real, 3.0, Support::Yes},
         {"relu_upper_bound", Kind::Real, 6.0, Support::Yes}},
        [](const Values& v) -> QuantizerPtr {
          return std::make_shared<QuantizedHswish>(
              as_int(v, "bits"), as_int(v, "integer"), as_bool(v, "symmetric"),
              as_optional_real(v, "alpha"), as_real(v, "qnoise_factor"), as_real(v, "relu_shift"),
              as_real(v, "relu_upper_bound"), as_bool(v, "use_stochastic_rounding"));
        }}},
      {"stochastic_binary",
       {{{"alpha", Kind::Alpha, std::monostate{}, Support::Yes},
         {"temperature", Kind::Real, 6.0, Support::Yes},
         {"use_real_sigmoid", Kind::Bool, true, Support::Yes}},
        [](const Values& v) -> QuantizerPtr { return make_stochastic_binary(false, v); }}},
      {"bernoulli",
       {{{"alpha", Kind::Alpha, std::monostate{}, Support::Yes},
         {"temperature", Kind::Real, 6.0, Support::Yes},
         {"use_real_sigmoid", Kind::Bool, true, Support::Yes}},
        [](const Values& v) -> QuantizerPtr { return make_stochastic_binary(true, v); }}},
      {"stochastic_ternary",
       {{{"alpha", Kind::Alpha, std::monostate{}, Support::Yes},
         {"threshold", Kind::OptionalReal, std::monostate{}, Support::Yes},
         {"temperature", Kind::Real, 8.0, Support::Yes},
         {"use_real_sigmoid", Kind::Bool, true, Support::Yes},
         {"number_of_unrolls", Kind::Int, int64_t{5}, Support::Yes}},
        [](const Values& v) -> QuantizerPtr {
          const auto& alpha = v.at("alpha");
          std::string mode;
          if (auto s = std::get_if<std::string>(&alpha)) mode = *s;
          return std::make_shared<StochasticTernary>(
              mode.empty() ? as_optional_real(v, "alpha") : std::nullopt, mode,
              as_optional_real(v, "threshold"), as_real(v, "temperature"),
              as_bool(v, "use_real_sigmoid"), as_int(v, "number_of_unrolls"));
        }}},
      {"fixed",  // heteroq's fixed point with explicit modes (heteroq/quantizers/fixed.h)
       {{{"bits", Kind::Int, int64_t{8}, Support::Yes},
         {"integer", Kind::Int, int64_t{0}, Support::Yes},
         {"keep_negative", Kind::Bool, true, Support::Yes},
         {"round_mode", Kind::String, std::string("RND_CONV"), Support::Yes},
         {"overflow_mode", Kind::String, std::string("SAT"), Support::Yes}},
        [](const Values& v) -> QuantizerPtr {
          return std::make_shared<FixedQuantizer>(as_int(v, "bits"), as_int(v, "integer"),
                                                  as_bool(v, "keep_negative"),
                                                  as_string(v, "round_mode"),
                                                  as_string(v, "overflow_mode"));
        }}},
      {"quantized_tanh",
       {{{"bits", Kind::Int, int64_t{8}, Support::Yes},
         {"use_stochastic_rounding", Kind::Bool, false, Support::Yes},
         {"symmetric", Kind::Bool, false, Support::Yes},
         {"use_real_tanh", Kind::Bool, false, Support::Yes}},
        [](const Values& v) -> QuantizerPtr {
          return std::make_shared<QuantizedTanh>(as_int(v, "bits"), as_bool(v, "symmetric"),
                                                 as_bool(v, "use_real_tanh"),
                                                 as_bool(v, "use_stochastic_rounding"));
        }}},
      {"quantized_sigmoid",
       {{{"bits", Kind::Int, int64_t{8}, Support::Yes},
         {"symmetric", Kind::Bool, false, Support::Yes},
         {"use_real_sigmoid", Kind::Bool, false, Support::Yes},
         {"use_stochastic_rounding", Kind::Bool, false, Support::Yes}},
        [](const Values& v) -> QuantizerPtr {
          return std::make_shared<QuantizedSigmoid>(as_int(v, "bits"), as_bool(v, "symmetric"),
                                                    as_bool(v, "use_real_sigmoid"),
                                                    as_bool(v, "use_stochastic_rounding"));
        }}},
  };
  return table;
}

std::string join_args(const std::string& name, const std::vector<std::string>& args) {
  std::string s = name + "(";
  for (size_t i = 0; i < args.size(); ++i) s += (i ? "," : "") + args[i];
  return s + ")";
}

}  // namespace

Quantizer::~Quantizer() = default;

namespace {
SpecValue optional_value(std::optional<double> v) {
  return v ? SpecValue(*v) : SpecValue(std::monostate{});
}
}  // namespace

namespace {

constexpr double kMaxRangeValues = 65536;

// Codes lo..hi (integers) times step, in two's-complement order: 0..hi, then lo..-1.
std::vector<double> code_range(const std::string& who, double lo, double hi, double step) {
  if (hi - lo + 1 > kMaxRangeValues) {
    throw InvalidArgument(who + ": range() lists at most 65536 values, this grid has " +
                          format_spec_value(hi - lo + 1));
  }
  std::vector<double> out;
  for (double c = std::max(lo, 0.0); c <= hi; c += 1) out.push_back(c * step + 0.0);
  for (double c = lo; c < std::min(0.0, hi + 1); c += 1) out.push_back(c * step + 0.0);
  return out;
}

[[noreturn]] void no_range(const std::string& who, const std::string& why) {
  throw InvalidArgument(who + ": range() is not defined " + why);
}

nlohmann::json to_json_value(const SpecValue& v) {
  struct Visitor {
    nlohmann::json operator()(std::monostate) const { return nullptr; }
    nlohmann::json operator()(bool b) const { return b; }
    nlohmann::json operator()(int64_t i) const { return i; }
    nlohmann::json operator()(double d) const { return d; }
    nlohmann::json operator()(const std::string& s) const { return s; }
    nlohmann::json operator()(const std::vector<double>& l) const {
      // Integral lists (axes) as integers.
      bool integral = true;
      for (double d : l) integral = integral && std::floor(d) == d && std::fabs(d) < 9.0e15;
      if (!integral) return l;
      std::vector<int64_t> ints(l.begin(), l.end());
      return ints;
    }
  };
  return std::visit(Visitor{}, v);
}

SpecValue from_json_value(const nlohmann::json& j, const std::string& where) {
  if (j.is_null()) return std::monostate{};
  if (j.is_boolean()) return j.get<bool>();
  if (j.is_number_integer()) return j.get<int64_t>();
  if (j.is_number()) return j.get<double>();
  if (j.is_string()) return j.get<std::string>();
  if (j.is_array()) {
    std::vector<double> out;
    for (const auto& item : j) {
      if (!item.is_number()) throw SpecError(where + ": list items must be numbers");
      out.push_back(item.get<double>());
    }
    return out;
  }
  throw SpecError(where + ": expected null, a bool, a number, a string or a list of numbers");
}

}  // namespace

std::string Quantizer::to_json() const {
  nlohmann::json config = nlohmann::json::object();
  for (const auto& [k, v] : this->config()) config[k] = to_json_value(v);
  nlohmann::json j = {{"class_name", name()}, {"config", config}};
  return j.dump();
}

QuantizerPtr quantizer_from_json(const std::string& text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw SpecError(std::string("quantizer JSON: ") + e.what());
  }
  if (!j.is_object() || !j.contains("class_name") || !j["class_name"].is_string()) {
    throw SpecError("quantizer JSON: expected an object with a string \"class_name\"");
  }
  const std::string name = j["class_name"].get<std::string>();
  SpecKeywords keywords;
  if (j.contains("config")) {
    if (!j["config"].is_object()) throw SpecError("quantizer JSON: \"config\" must be an object");
    for (const auto& [k, v] : j["config"].items()) {
      keywords.emplace_back(k, from_json_value(v, "quantizer JSON: " + name + "." + k));
    }
  }
  return make_quantizer(name, {}, keywords);
}

// ------------------------------------------------------------------------------------------------
QuantizedBits::QuantizedBits(int64_t bits, int64_t integer, bool symmetric, bool keep_negative,
                             std::optional<double> alpha, double qnoise_factor,
                             bool use_stochastic_rounding, bool use_ste)
    : bits_(bits), integer_(integer), symmetric_(symmetric), keep_negative_(keep_negative),
      alpha_(alpha), qnoise_factor_(qnoise_factor), stochastic_(use_stochastic_rounding),
      use_ste_(use_ste) {
  throw_if(detail::check_quantized_bits_args(bits, integer, alpha));
  throw_if(detail::check_qnoise_factor("quantized_bits", qnoise_factor));
}

QuantizedBits::QuantizedBits(int64_t bits, int64_t integer, bool symmetric, bool keep_negative,
                             const std::string& alpha, double qnoise_factor,
                             std::optional<std::vector<int64_t>> scale_axis, bool use_ste,
                             std::optional<std::vector<int64_t>> elements_per_scale,
                             std::optional<int64_t> min_po2_exponent,
                             std::optional<int64_t> max_po2_exponent)
    : bits_(bits), integer_(integer), symmetric_(true), keep_negative_(keep_negative),
      auto_alpha_(alpha), scale_axis_(std::move(scale_axis)), qnoise_factor_(qnoise_factor),
      use_ste_(use_ste), elements_per_scale_(std::move(elements_per_scale)),
      min_po2_exponent_(min_po2_exponent), max_po2_exponent_(max_po2_exponent) {
  (void)symmetric;  // QKeras forces symmetric with a string alpha
  if (alpha != "auto" && alpha != "auto_po2") {
    throw InvalidArgument("quantized_bits: `alpha` must be None, a number, 'auto' or 'auto_po2', "
                          "got '" + alpha + "'");
  }
  throw_if(detail::check_quantized_bits_auto_args(bits, integer));
  throw_if(detail::check_qnoise_factor("quantized_bits", qnoise_factor));
  if (scale_axis_ && scale_axis_->empty()) {
    throw InvalidArgument("quantized_bits: `scale_axis` must not be an empty list");
  }
  const bool grouped = elements_per_scale_ || min_po2_exponent_ || max_po2_exponent_;
  if (grouped && alpha != "auto_po2") {
    throw InvalidArgument("quantized_bits: `elements_per_scale`, `min_po2_exponent` and "
                          "`max_po2_exponent` apply to alpha 'auto_po2' only (as in QKeras)");
  }
  throw_if(detail::check_po2_scale_args("quantized_bits", scale_axis_, elements_per_scale_,
                                        min_po2_exponent_, max_po2_exponent_));
}

QuantizedBits::QuantizedBits(int64_t bits, int64_t integer, bool symmetric, bool keep_negative,
                             std::vector<double> alpha, double qnoise_factor,
                             bool use_stochastic_rounding, std::optional<int64_t> scale_axis,
                             bool use_ste)
    : bits_(bits), integer_(integer), symmetric_(symmetric), keep_negative_(keep_negative),
      channel_alpha_(std::move(alpha)), qnoise_factor_(qnoise_factor),
      stochastic_(use_stochastic_rounding), use_ste_(use_ste) {
  throw_if(detail::check_quantized_bits_args(bits, integer, std::nullopt));
  throw_if(detail::check_qnoise_factor("quantized_bits", qnoise_factor));
  if (channel_alpha_.empty()) {
    throw InvalidArgument("quantized_bits: a per-channel `alpha` must not be empty");
  }
  for (size_t i = 0; i < channel_alpha_.size(); ++i) {
    if (!(std::isfinite(channel_alpha_[i]) && channel_alpha_[i] > 0)) {
      throw InvalidArgument("quantized_bits: `alpha`[" + std::to_string(i) +
                            "] must be a finite number > 0, got " +
                            format_spec_value(channel_alpha_[i]));
    }
  }
  if (scale_axis) scale_axis_ = std::vector<int64_t>{*scale_axis};
  channel_alpha_tensor_ =
      at::tensor(at::ArrayRef<double>(channel_alpha_), at::TensorOptions().dtype(at::kDouble));
}

at::Tensor QuantizedBits::finish(const at::Tensor& y) const {
  // QKeras's use_ste=False: (1 - q) x + sg(q xq), the same value with the gradient times 1 - q.
  return use_ste_ ? y : ops::_scale_gradient(y, 1.0 - qnoise_factor_);
}

at::Tensor QuantizedBits::forward(const at::Tensor& x) const {
  if (!channel_alpha_.empty()) {
    return finish(ops::quantized_bits_scaled(x, channel_alpha_tensor_, bits_, integer_, symmetric_,
                                             keep_negative_, scale_axis_ ? (*scale_axis_)[0] : 0,
                                             qnoise_factor_));
  }
  if (auto_alpha_.empty()) {
    return finish(ops::quantized_bits(x, bits_, integer_, symmetric_, keep_negative_, alpha_,
                                      qnoise_factor_));
  }
  at::Tensor out, scale;
  if (elements_per_scale_ || min_po2_exponent_ || max_po2_exponent_) {
    std::tie(out, scale) = ops::quantized_bits_auto_po2_grouped(
        x, bits_, integer_, keep_negative_, scale_axis_, qnoise_factor_, elements_per_scale_,
        min_po2_exponent_, max_po2_exponent_);
  } else {
    std::tie(out, scale) = ops::quantized_bits_auto(x, bits_, integer_, keep_negative_,
                                                    auto_alpha_ == "auto_po2", scale_axis_,
                                                    qnoise_factor_);
  }
  last_scale_.set(scale);
  return finish(out);
}

at::Tensor QuantizedBits::forward_train(const at::Tensor& x) const {
  // QKeras's auto-scale path does not round stochastically.
  if (!stochastic_ || !auto_alpha_.empty()) return forward(x);
  if (!channel_alpha_.empty()) {
    return finish(ops::quantized_bits_scaled(x, channel_alpha_tensor_, bits_, integer_, symmetric_,
                                             keep_negative_, scale_axis_ ? (*scale_axis_)[0] : 0,
                                             qnoise_factor_, at::rand_like(x)));
  }
  return finish(ops::quantized_bits_stochastic(x, at::rand_like(x), bits_, integer_, symmetric_,
                                               keep_negative_, alpha_, qnoise_factor_));
}

at::Tensor QuantizedBits::scale() const {
  if (!channel_alpha_.empty()) return channel_alpha_tensor_.to(at::kFloat);
  if (auto_alpha_.empty()) return at::full({}, alpha_.value_or(1.0), at::kFloat);
  return last_scale_.get();
}

double QuantizedBits::max() const {
  if (bits_ - (keep_negative_ ? 1 : 0) <= 0) return 1.0;
  return std::max(1.0, std::ldexp(1.0, static_cast<int>(integer_)));
}

double QuantizedBits::min() const { return keep_negative_ ? -max() : 0.0; }

std::string QuantizedBits::to_string() const {
  std::vector<std::string> args = {std::to_string(bits_), std::to_string(integer_),
                                   symmetric_ ? "1" : "0"};
  if (!keep_negative_) args.push_back("keep_negative=False");
  if (alpha_) args.push_back("alpha=" + format_spec_value(*alpha_));
  if (!channel_alpha_.empty()) args.push_back("alpha=" + format_spec_value(channel_alpha_));
  if (!auto_alpha_.empty()) args.push_back("alpha=" + format_spec_value(auto_alpha_));
  if (scale_axis_) {
    std::string axes;
    for (int64_t a : *scale_axis_) axes += (axes.empty() ? "" : " ") + std::to_string(a);
    args.push_back("scale_axis=[" + axes + "]");
  }
  // QKeras leaves qnoise_factor, use_ste and the po2 scale options out of its string; heteroq
  // keeps them so the spec round-trips.
  if (qnoise_factor_ != 1.0) args.push_back("qnoise_factor=" + format_spec_value(qnoise_factor_));
  if (stochastic_) args.push_back("use_stochastic_rounding=1");
  if (!use_ste_) args.push_back("use_ste=0");
  if (elements_per_scale_) {
    args.push_back("elements_per_scale=" + format_spec_value(std::vector<double>(
                                               elements_per_scale_->begin(),
                                               elements_per_scale_->end())));
  }
  if (min_po2_exponent_) args.push_back("min_po2_exponent=" + std::to_string(*min_po2_exponent_));
  if (max_po2_exponent_) args.push_back("max_po2_exponent=" + std::to_string(*max_po2_exponent_));
  return join_args(name(), args);
}

SpecKeywords QuantizedBits::config() const {
  return {{"bits", bits_},
          {"integer", integer_},
          {"symmetric", symmetric_},
          {"keep_negative", keep_negative_},
          {"alpha", alpha_                    ? SpecValue(*alpha_)
                    : !channel_alpha_.empty() ? SpecValue(channel_alpha_)
                    : !auto_alpha_.empty()    ? SpecValue(auto_alpha_)
                                              : SpecValue(std::monostate{})},
          {"scale_axis", scale_axis_ ? SpecValue(std::vector<double>(scale_axis_->begin(),
                                                                     scale_axis_->end()))
                                     : SpecValue(std::monostate{})},
          {"qnoise_factor", qnoise_factor_},
          {"use_stochastic_rounding", stochastic_},
          {"use_ste", use_ste_},
          {"elements_per_scale",
           elements_per_scale_ ? SpecValue(std::vector<double>(elements_per_scale_->begin(),
                                                               elements_per_scale_->end()))
                               : SpecValue(std::monostate{})},
          {"min_po2_exponent", min_po2_exponent_ ? SpecValue(*min_po2_exponent_)
                                                 : SpecValue(std::monostate{})},
          {"max_po2_exponent", max_po2_exponent_ ? SpecValue(*max_po2_exponent_)
                                                 : SpecValue(std::monostate{})}};
}

// ------------------------------------------------------------------------------------------------
QuantizedRelu::QuantizedRelu(int64_t bits, int64_t integer, bool use_sigmoid,
                             double negative_slope, double qnoise_factor,
                             bool use_stochastic_rounding, std::optional<double> relu_upper_bound,
                             bool is_quantized_clip, bool use_ste, bool enable_fast_inference)
    : bits_(bits), integer_(integer), use_sigmoid_(use_sigmoid), negative_slope_(negative_slope),
      qnoise_factor_(qnoise_factor), stochastic_(use_stochastic_rounding),
      relu_upper_bound_(relu_upper_bound), is_quantized_clip_(is_quantized_clip),
      use_ste_(use_ste), fast_inference_(enable_fast_inference) {
  throw_if(detail::check_quantized_relu_args(bits, integer, negative_slope));
  throw_if(detail::check_qnoise_factor("quantized_relu", qnoise_factor));
  if (relu_upper_bound && !(std::isfinite(*relu_upper_bound) && *relu_upper_bound > 0)) {
    throw InvalidArgument("quantized_relu: `relu_upper_bound` must be None or a finite number > 0, "
                          "got " + format_spec_value(*relu_upper_bound));
  }
}

at::Tensor QuantizedRelu::finish(const at::Tensor& xq, const at::Tensor& x) const {
  // is_quantized_clip=False: QKeras caps the STE reference (and the output) at relu_upper_bound
  // instead of the top of the grid. xq was computed at qnoise_factor 1 in that case.
  at::Tensor y = is_quantized_clip_
                     ? xq
                     : ops::_relu_upper_bound(xq, x, negative_slope_, relu_upper_bound_,
                                              qnoise_factor_);
  return use_ste_ ? y : ops::_scale_gradient(y, 1.0 - qnoise_factor_);
}

at::Tensor QuantizedRelu::forward(const at::Tensor& x) const {
  if (fast_inference_) {
    // QKeras's fast inference: unsigned fixed point, no STE (and no slope, sigmoid or bound).
    return ops::quantized_bits(x.detach(), bits_, integer_, false, false);
  }
  const double q = is_quantized_clip_ ? qnoise_factor_ : 1.0;
  return finish(ops::quantized_relu(x, bits_, integer_, use_sigmoid_, negative_slope_, q), x);
}

at::Tensor QuantizedRelu::forward_train(const at::Tensor& x) const {
  if (!stochastic_ || fast_inference_) return forward(x);
  const double q = is_quantized_clip_ ? qnoise_factor_ : 1.0;
  return finish(ops::quantized_relu_stochastic(x, at::rand_like(x), bits_, integer_, use_sigmoid_,
                                               negative_slope_, q),
                x);
}

double QuantizedRelu::max() const { return std::max(1.0, std::ldexp(1.0, static_cast<int>(integer_))); }

double QuantizedRelu::min() const {
  if (negative_slope_ == 0) return 0.0;
  return std::min(-0.0, -negative_slope_ * std::ldexp(1.0, static_cast<int>(integer_)));
}

std::string QuantizedRelu::to_string() const {
  std::vector<std::string> args = {std::to_string(bits_), std::to_string(integer_)};
  // QKeras drops use_sigmoid=0 before a slope, which then reads back as use_sigmoid; keep it.
  if (use_sigmoid_ || negative_slope_ != 0) args.push_back(use_sigmoid_ ? "1" : "0");
  if (negative_slope_ != 0) args.push_back(format_spec_value(negative_slope_));
  if (qnoise_factor_ != 1.0) args.push_back("qnoise_factor=" + format_spec_value(qnoise_factor_));
  if (stochastic_) args.push_back("use_stochastic_rounding=1");
  if (relu_upper_bound_) {
    args.push_back("relu_upper_bound=" + format_spec_value(*relu_upper_bound_));
  }
  if (!is_quantized_clip_) args.push_back("is_quantized_clip=0");
  if (!use_ste_) args.push_back("use_ste=0");
  if (fast_inference_) args.push_back("enable_fast_inference=1");
  return join_args(name(), args);
}

SpecKeywords QuantizedRelu::config() const {
  return {{"bits", bits_},
          {"integer", integer_},
          {"use_sigmoid", use_sigmoid_},
          {"negative_slope", negative_slope_},
          {"qnoise_factor", qnoise_factor_},
          {"use_stochastic_rounding", stochastic_},
          {"relu_upper_bound", optional_value(relu_upper_bound_)},
          {"is_quantized_clip", is_quantized_clip_},
          {"use_ste", use_ste_},
          {"enable_fast_inference", fast_inference_}};
}

// ------------------------------------------------------------------------------------------------
namespace {
// Keyword arguments po2 quantizers print after the positional ones.
void po2_keywords(std::vector<std::string>& args, bool quadratic, const std::string& rounding,
                  double qnoise_factor) {
  if (quadratic) args.push_back("quadratic_approximation=1");
  if (rounding != "rnd") args.push_back("log2_rounding=" + format_spec_value(rounding));
  if (qnoise_factor != 1.0) args.push_back("qnoise_factor=" + format_spec_value(qnoise_factor));
}
}  // namespace

QuantizedPo2::QuantizedPo2(int64_t bits, std::optional<double> max_value, bool quadratic,
                           std::string log2_rounding, double qnoise_factor,
                           bool use_stochastic_rounding, bool use_ste)
    : bits_(bits), max_value_(max_value), quadratic_(quadratic),
      log2_rounding_(std::move(log2_rounding)), qnoise_factor_(qnoise_factor),
      stochastic_(use_stochastic_rounding), use_ste_(use_ste) {
  throw_if(detail::check_po2_args("quantized_po2", bits, max_value, log2_rounding_, 0.0));
  throw_if(detail::check_qnoise_factor("quantized_po2", qnoise_factor));
}

at::Tensor QuantizedPo2::forward(const at::Tensor& x) const {
  const at::Tensor y =
      ops::quantized_po2(x, bits_, max_value_, quadratic_, log2_rounding_, qnoise_factor_);
  return use_ste_ ? y : ops::_scale_gradient(y, 1.0 - qnoise_factor_);
}

at::Tensor QuantizedPo2::forward_train(const at::Tensor& x) const {
  // QKeras: "floor" mode takes precedence over stochastic rounding.
  if (!stochastic_ || log2_rounding_ != "rnd") return forward(x);
  const at::Tensor y = ops::quantized_po2_stochastic(x, at::rand_like(x), bits_, max_value_,
                                                     quadratic_, qnoise_factor_);
  return use_ste_ ? y : ops::_scale_gradient(y, 1.0 - qnoise_factor_);
}

double QuantizedPo2::min_exp() const {
  return detail::make_po2_grid(false, bits_, max_value_, quadratic_, false, 0.0).min_exp;
}
double QuantizedPo2::max_exp() const {
  return detail::make_po2_grid(false, bits_, max_value_, quadratic_, false, 0.0).max_exp;
}
double QuantizedPo2::max() const {
  return max_value_ ? std::max(1.0, *max_value_)
                    : std::max(1.0, std::ldexp(1.0, static_cast<int>(max_exp())));
}

std::string QuantizedPo2::to_string() const {
  // QKeras prints int(max_value), which truncates 0.5 to 0; heteroq prints the value.
  std::vector<std::string> args = {std::to_string(bits_)};
  if (max_value_ || stochastic_) args.push_back(max_value_ ? format_spec_value(*max_value_) : "None");
  if (stochastic_) args.push_back("1");
  po2_keywords(args, quadratic_, log2_rounding_, qnoise_factor_);
  if (!use_ste_) args.push_back("use_ste=0");
  return join_args(name(), args);
}

SpecKeywords QuantizedPo2::config() const {
  return {{"bits", bits_},
          {"max_value", optional_value(max_value_)},
          {"use_stochastic_rounding", stochastic_},
          {"quadratic_approximation", quadratic_},
          {"log2_rounding", log2_rounding_},
          {"qnoise_factor", qnoise_factor_},
          {"use_ste", use_ste_}};
}

QuantizedReluPo2::QuantizedReluPo2(int64_t bits, std::optional<double> max_value,
                                   double negative_slope, bool quadratic,
                                   std::string log2_rounding, double qnoise_factor,
                                   bool use_stochastic_rounding, bool use_ste)
    : bits_(bits), max_value_(max_value), negative_slope_(negative_slope), quadratic_(quadratic),
      log2_rounding_(std::move(log2_rounding)), qnoise_factor_(qnoise_factor),
      stochastic_(use_stochastic_rounding), use_ste_(use_ste) {
  throw_if(detail::check_po2_args("quantized_relu_po2", bits, max_value, log2_rounding_,
                                  negative_slope));
  throw_if(detail::check_qnoise_factor("quantized_relu_po2", qnoise_factor));
}

at::Tensor QuantizedReluPo2::forward(const at::Tensor& x) const {
  const at::Tensor y = ops::quantized_relu_po2(x, bits_, max_value_, negative_slope_, quadratic_,
                                               log2_rounding_, qnoise_factor_);
  return use_ste_ ? y : ops::_scale_gradient(y, 1.0 - qnoise_factor_);
}

at::Tensor QuantizedReluPo2::forward_train(const at::Tensor& x) const {
  if (!stochastic_ || log2_rounding_ != "rnd") return forward(x);
  const at::Tensor y = ops::quantized_relu_po2_stochastic(x, at::rand_like(x), bits_, max_value_,
                                                          negative_slope_, quadratic_,
                                                          qnoise_factor_);
  return use_ste_ ? y : ops::_scale_gradient(y, 1.0 - qnoise_factor_);
}

double QuantizedReluPo2::min_exp() const {
  return detail::make_po2_grid(true, bits_, max_value_, quadratic_, false, 0.0).min_exp;
}
double QuantizedReluPo2::max_exp() const {
  return detail::make_po2_grid(true, bits_, max_value_, quadratic_, false, 0.0).max_exp;
}
double QuantizedReluPo2::max() const {
  return max_value_ ? std::max(1.0, *max_value_)
                    : std::max(1.0, std::ldexp(1.0, static_cast<int>(max_exp())));
}
double QuantizedReluPo2::min() const {
  const double smallest = std::ldexp(1.0, static_cast<int>(min_exp()));
  if (negative_slope_ == 0) return smallest;
  return std::min(smallest, -negative_slope_ * std::ldexp(1.0, static_cast<int>(bits_ - 1)));
}

std::string QuantizedReluPo2::to_string() const {
  std::vector<std::string> args = {std::to_string(bits_)};
  if (max_value_ || negative_slope_ != 0 || stochastic_) {
    args.push_back(max_value_ ? format_spec_value(*max_value_) : "None");
  }
  if (negative_slope_ != 0 || stochastic_) args.push_back(format_spec_value(negative_slope_));
  if (stochastic_) args.push_back("1");
  po2_keywords(args, quadratic_, log2_rounding_, qnoise_factor_);
  if (!use_ste_) args.push_back("use_ste=0");
  return join_args(name(), args);
}

SpecKeywords QuantizedReluPo2::config() const {
  return {{"bits", bits_},
          {"max_value", optional_value(max_value_)},
          {"negative_slope", negative_slope_},
          {"use_stochastic_rounding", stochastic_},
          {"quadratic_approximation", quadratic_},
          {"log2_rounding", log2_rounding_},
          {"qnoise_factor", qnoise_factor_},
          {"use_ste", use_ste_}};
}

// ------------------------------------------------------------------------------------------------
namespace {
void check_auto_alpha(const char* who, const std::string& alpha,
                      const std::optional<std::vector<int64_t>>& scale_axis) {
  if (alpha != "auto" && alpha != "auto_po2") {
    throw InvalidArgument(std::string(who) + ": `alpha` must be None, a number, 'auto' or " +
                          "'auto_po2', got '" + alpha + "'");
  }
  if (scale_axis && scale_axis->empty()) {
    throw InvalidArgument(std::string(who) + ": `scale_axis` must not be an empty list");
  }
}
std::string axes_string(const std::optional<std::vector<int64_t>>& axes) {
  std::string s;
  for (int64_t a : *axes) s += (s.empty() ? "" : " ") + std::to_string(a);
  return "scale_axis=[" + s + "]";
}
SpecValue alpha_value(const std::optional<double>& alpha, const std::string& auto_alpha) {
  if (alpha) return *alpha;
  if (!auto_alpha.empty()) return auto_alpha;
  return std::monostate{};
}
SpecValue axes_value(const std::optional<std::vector<int64_t>>& axes) {
  if (!axes) return std::monostate{};
  return std::vector<double>(axes->begin(), axes->end());
}
}  // namespace

Binary::Binary(bool use_01, std::optional<double> alpha, bool use_stochastic_rounding)
    : use_01_(use_01), alpha_(alpha), stochastic_(use_stochastic_rounding) {
  throw_if(detail::check_binary_args("binary", alpha, std::nullopt));
}

Binary::Binary(bool use_01, const std::string& alpha,
               std::optional<std::vector<int64_t>> scale_axis, bool use_stochastic_rounding,
               std::optional<std::vector<int64_t>> elements_per_scale,
               std::optional<int64_t> min_po2_exponent, std::optional<int64_t> max_po2_exponent)
    : use_01_(use_01), auto_alpha_(alpha), scale_axis_(std::move(scale_axis)),
      stochastic_(use_stochastic_rounding), elements_per_scale_(std::move(elements_per_scale)),
      min_po2_exponent_(min_po2_exponent), max_po2_exponent_(max_po2_exponent) {
  check_auto_alpha("binary", alpha, scale_axis_);
  throw_if(detail::check_po2_scale_args("binary", scale_axis_, elements_per_scale_,
                                        min_po2_exponent_, max_po2_exponent_));
}

at::Tensor Binary::forward_train(const at::Tensor& x) const {
  if (!stochastic_) return forward(x);
  std::vector<int64_t> shape{2};
  shape.insert(shape.end(), x.sizes().begin(), x.sizes().end());
  const int64_t mode = auto_alpha_.empty() ? 0 : (auto_alpha_ == "auto_po2" ? 2 : 1);
  auto [out, scale] = ops::binary_stochastic(x, at::rand(shape, x.options()), use_01_, alpha_,
                                             mode, scale_axis_, elements_per_scale_,
                                             min_po2_exponent_, max_po2_exponent_);
  if (mode != 0) last_scale_.set(scale);
  return out;
}

at::Tensor Binary::forward(const at::Tensor& x) const {
  if (auto_alpha_.empty()) return ops::binary(x, use_01_, alpha_);
  at::Tensor out, scale;
  if (elements_per_scale_ || min_po2_exponent_ || max_po2_exponent_) {
    std::tie(out, scale) =
        ops::binary_auto_grouped(x, use_01_, auto_alpha_ == "auto_po2", scale_axis_,
                                 elements_per_scale_, min_po2_exponent_, max_po2_exponent_);
  } else {
    std::tie(out, scale) = ops::binary_auto(x, use_01_, auto_alpha_ == "auto_po2", scale_axis_);
  }
  last_scale_.set(scale);
  return out;
}

at::Tensor Binary::scale() const {
  if (auto_alpha_.empty()) return at::full({}, alpha_.value_or(1.0), at::kFloat);
  return last_scale_.get();
}

std::string Binary::to_string() const {
  std::vector<std::string> args;
  if (use_01_) args.push_back("use_01=1");
  const SpecValue a = alpha_value(alpha_, auto_alpha_);
  if (!std::holds_alternative<std::monostate>(a)) args.push_back("alpha=" + format_spec_value(a));
  if (scale_axis_) args.push_back(axes_string(scale_axis_));
  if (stochastic_) args.push_back("use_stochastic_rounding=1");
  if (elements_per_scale_) {
    args.push_back("elements_per_scale=" + format_spec_value(axes_value(elements_per_scale_)));
  }
  if (min_po2_exponent_) args.push_back("min_po2_exponent=" + std::to_string(*min_po2_exponent_));
  if (max_po2_exponent_) args.push_back("max_po2_exponent=" + std::to_string(*max_po2_exponent_));
  return join_args(name(), args);
}

SpecKeywords Binary::config() const {
  return {{"use_01", use_01_},
          {"alpha", alpha_value(alpha_, auto_alpha_)},
          {"use_stochastic_rounding", stochastic_},
          {"scale_axis", axes_value(scale_axis_)},
          {"elements_per_scale", axes_value(elements_per_scale_)},
          {"min_po2_exponent", min_po2_exponent_ ? SpecValue(*min_po2_exponent_)
                                                 : SpecValue(std::monostate{})},
          {"max_po2_exponent", max_po2_exponent_ ? SpecValue(*max_po2_exponent_)
                                                 : SpecValue(std::monostate{})}};
}

Ternary::Ternary(std::optional<double> alpha, std::optional<double> threshold,
                 int64_t number_of_unrolls)
    : alpha_(alpha), threshold_(threshold), unrolls_(number_of_unrolls) {
  throw_if(detail::check_binary_args("ternary", alpha, threshold));
  if (number_of_unrolls < 0 || number_of_unrolls > 100) {
    throw InvalidArgument("ternary: `number_of_unrolls` must be an integer in [0, 100], got " +
                          std::to_string(number_of_unrolls));
  }
}

Ternary::Ternary(const std::string& alpha, int64_t number_of_unrolls,
                 std::optional<std::vector<int64_t>> scale_axis, bool use_stochastic_rounding)
    : unrolls_(number_of_unrolls), auto_alpha_(alpha), scale_axis_(std::move(scale_axis)),
      stochastic_(use_stochastic_rounding) {
  check_auto_alpha("ternary", alpha, scale_axis_);
  if (number_of_unrolls < 0 || number_of_unrolls > 100) {
    throw InvalidArgument("ternary: `number_of_unrolls` must be an integer in [0, 100], got " +
                          std::to_string(number_of_unrolls));
  }
}

at::Tensor Ternary::forward(const at::Tensor& x) const {
  if (auto_alpha_.empty()) return ops::ternary(x, alpha_, threshold_);
  auto [out, scale] =
      ops::ternary_auto(x, auto_alpha_ == "auto_po2", unrolls_, scale_axis_);
  last_scale_.set(scale);
  return out;
}

at::Tensor Ternary::forward_train(const at::Tensor& x) const {
  if (!stochastic_) return forward(x);
  std::vector<int64_t> shape{unrolls_};
  shape.insert(shape.end(), x.sizes().begin(), x.sizes().end());
  auto [out, scale] = ops::ternary_stochastic(x, at::rand(shape, x.options()),
                                              auto_alpha_ == "auto_po2", unrolls_, scale_axis_);
  last_scale_.set(scale);
  return out;
}

at::Tensor Ternary::scale() const {
  if (auto_alpha_.empty()) return at::full({}, alpha_.value_or(1.0), at::kFloat);
  return last_scale_.get();
}

std::string Ternary::to_string() const {
  std::vector<std::string> args;
  const SpecValue a = alpha_value(alpha_, auto_alpha_);
  if (!std::holds_alternative<std::monostate>(a)) args.push_back("alpha=" + format_spec_value(a));
  if (threshold_) args.push_back("threshold=" + format_spec_value(*threshold_));
  if (stochastic_) args.push_back("use_stochastic_rounding=1");
  if (unrolls_ != 5) args.push_back("number_of_unrolls=" + std::to_string(unrolls_));
  if (scale_axis_) args.push_back(axes_string(scale_axis_));
  return join_args(name(), args);
}

SpecKeywords Ternary::config() const {
  return {{"alpha", alpha_value(alpha_, auto_alpha_)},
          {"threshold", threshold_ ? SpecValue(*threshold_) : SpecValue(std::monostate{})},
          {"use_stochastic_rounding", stochastic_},
          {"number_of_unrolls", unrolls_},
          {"scale_axis", axes_value(scale_axis_)}};
}

// ------------------------------------------------------------------------------------------------
QuantizedTanh::QuantizedTanh(int64_t bits, bool symmetric, bool use_real_tanh,
                             bool use_stochastic_rounding)
    : bits_(bits), symmetric_(symmetric), use_real_(use_real_tanh),
      stochastic_(use_stochastic_rounding) {
  throw_if(detail::check_activation_args("quantized_tanh", bits));
}

at::Tensor QuantizedTanh::forward(const at::Tensor& x) const {
  return ops::quantized_tanh(x, bits_, symmetric_, use_real_);
}

at::Tensor QuantizedTanh::forward_train(const at::Tensor& x) const {
  if (!stochastic_) return forward(x);
  return ops::quantized_tanh_stochastic(x, at::rand_like(x), bits_, symmetric_, use_real_);
}

double QuantizedTanh::max() const { return 1.0 - std::ldexp(1.0, static_cast<int>(1 - bits_)); }
double QuantizedTanh::min() const {
  return -1.0 + (symmetric_ ? std::ldexp(1.0, static_cast<int>(1 - bits_)) : 0.0);
}

std::string QuantizedTanh::to_string() const {
  // Positionally in QKeras's order (bits, use_stochastic_rounding, symmetric, use_real_tanh) up
  // to the last non-default value. (QKeras's __str__ skips defaults in the middle, so its
  // "quantized_tanh(8,1)" for symmetric=1 reads back as use_stochastic_rounding=1.)
  std::vector<std::string> args = {std::to_string(bits_)};
  if (stochastic_ || symmetric_ || use_real_) args.push_back(stochastic_ ? "1" : "0");
  if (symmetric_ || use_real_) args.push_back(symmetric_ ? "1" : "0");
  if (use_real_) args.push_back("1");
  return join_args(name(), args);
}

SpecKeywords QuantizedTanh::config() const {
  return {{"bits", bits_},
          {"use_stochastic_rounding", stochastic_},
          {"symmetric", symmetric_},
          {"use_real_tanh", use_real_}};
}

QuantizedSigmoid::QuantizedSigmoid(int64_t bits, bool symmetric, bool use_real_sigmoid,
                                   bool use_stochastic_rounding)
    : bits_(bits), symmetric_(symmetric), use_real_(use_real_sigmoid),
      stochastic_(use_stochastic_rounding) {
  throw_if(detail::check_activation_args("quantized_sigmoid", bits));
}

at::Tensor QuantizedSigmoid::forward(const at::Tensor& x) const {
  return ops::quantized_sigmoid(x, bits_, symmetric_, use_real_);
}

at::Tensor QuantizedSigmoid::forward_train(const at::Tensor& x) const {
  if (!stochastic_) return forward(x);
  return ops::quantized_sigmoid_stochastic(x, at::rand_like(x), bits_, symmetric_, use_real_);
}

double QuantizedSigmoid::max() const { return 1.0 - std::ldexp(1.0, static_cast<int>(-bits_)); }
double QuantizedSigmoid::min() const {
  return symmetric_ ? std::ldexp(1.0, static_cast<int>(-bits_)) : 0.0;
}

std::string QuantizedSigmoid::to_string() const {
  std::vector<std::string> args = {std::to_string(bits_)};
  if (symmetric_ || use_real_ || stochastic_) args.push_back(symmetric_ ? "1" : "0");
  if (use_real_ || stochastic_) args.push_back(use_real_ ? "1" : "0");
  if (stochastic_) args.push_back("1");
  return join_args(name(), args);
}

SpecKeywords QuantizedSigmoid::config() const {
  return {{"bits", bits_},
          {"symmetric", symmetric_},
          {"use_real_sigmoid", use_real_},
          {"use_stochastic_rounding", stochastic_}};
}

// ------------------------------------------------------------------------------------------------
QuantizedUlaw::QuantizedUlaw(int64_t bits, int64_t integer, bool symmetric, double u)
    : bits_(bits), integer_(integer), symmetric_(symmetric), u_(u) {
  throw_if(detail::check_activation_args("quantized_ulaw", bits));
  if (integer < -64 || integer > 64) {
    throw InvalidArgument("quantized_ulaw: `integer` must be an integer in [-64, 64], got " +
                          std::to_string(integer));
  }
  if (!(std::isfinite(u) && u > 0)) {
    throw InvalidArgument("quantized_ulaw: `u` must be a finite number > 0, got " +
                          format_spec_value(u));
  }
}

at::Tensor QuantizedUlaw::forward(const at::Tensor& x) const {
  return ops::quantized_ulaw(x, bits_, integer_, symmetric_, u_);
}

double QuantizedUlaw::max() const {
  return bits_ > 1 ? std::max(1.0, std::ldexp(1.0, static_cast<int>(integer_))) : 1.0;
}

std::string QuantizedUlaw::to_string() const {
  std::vector<std::string> args = {std::to_string(bits_), std::to_string(integer_)};
  if (symmetric_ || u_ != 255.0) args.push_back(symmetric_ ? "1" : "0");
  if (u_ != 255.0) args.push_back(format_spec_value(u_));
  return join_args(name(), args);
}

SpecKeywords QuantizedUlaw::config() const {
  return {{"bits", bits_}, {"integer", integer_}, {"symmetric", symmetric_}, {"u", u_}};
}

std::vector<double> QuantizedUlaw::range() const {
  no_range(name(), "(its outputs are companded, not a fixed-point grid)");
}

QuantizedHswish::QuantizedHswish(int64_t bits, int64_t integer, bool symmetric,
                                 std::optional<double> alpha, double qnoise_factor,
                                 double relu_shift, double relu_upper_bound,
                                 bool use_stochastic_rounding)
    : bits_(bits, integer, symmetric, true, alpha, qnoise_factor), relu_shift_(relu_shift),
      relu_upper_bound_(relu_upper_bound), stochastic_(use_stochastic_rounding) {
  if (!(std::isfinite(relu_shift) && relu_shift > 0)) {
    throw InvalidArgument("quantized_hswish: `relu_shift` must be a finite number > 0, got " +
                          format_spec_value(relu_shift));
  }
  if (!(std::isfinite(relu_upper_bound) && relu_upper_bound > 0)) {
    throw InvalidArgument("quantized_hswish: `relu_upper_bound` must be a finite number > 0, got " +
                          format_spec_value(relu_upper_bound));
  }
}

at::Tensor QuantizedHswish::forward(const at::Tensor& x) const {
  return ops::quantized_hswish(x, bits_.bits(), bits_.integer(), bits_.symmetric(),
                               bits_.alpha(), bits_.qnoise_factor(), relu_shift_,
                               relu_upper_bound_);
}

at::Tensor QuantizedHswish::forward_train(const at::Tensor& x) const {
  if (!stochastic_) return forward(x);
  return ops::quantized_hswish(x, bits_.bits(), bits_.integer(), bits_.symmetric(), bits_.alpha(),
                               bits_.qnoise_factor(), relu_shift_, relu_upper_bound_,
                               at::rand_like(x));
}

double QuantizedHswish::min() const {
  // QKeras: the hard swish's minimum is -shift^2 / (4 ub); quantize it when the grid goes lower.
  const double min_quant = bits_.min();
  const double min_parabolic = -relu_shift_ * relu_shift_ / (4 * relu_upper_bound_);
  if (min_quant >= min_parabolic) return min_quant;
  return bits_.forward(at::full({1}, min_parabolic, at::kDouble)).item<double>();
}

std::string QuantizedHswish::to_string() const {
  std::vector<std::string> args = {std::to_string(bits_.bits()), std::to_string(bits_.integer()),
                                   bits_.symmetric() ? "1" : "0"};
  if (bits_.alpha()) args.push_back("alpha=" + format_spec_value(*bits_.alpha()));
  if (bits_.qnoise_factor() != 1.0) {
    args.push_back("qnoise_factor=" + format_spec_value(bits_.qnoise_factor()));
  }
  if (relu_shift_ != 3.0) args.push_back("relu_shift=" + format_spec_value(relu_shift_));
  if (relu_upper_bound_ != 6.0) {
    args.push_back("relu_upper_bound=" + format_spec_value(relu_upper_bound_));
  }
  if (stochastic_) args.push_back("use_stochastic_rounding=1");
  return join_args(name(), args);
}

SpecKeywords QuantizedHswish::config() const {
  return {{"bits", bits_.bits()},
          {"integer", bits_.integer()},
          {"symmetric", bits_.symmetric()},
          {"alpha", bits_.alpha() ? SpecValue(*bits_.alpha()) : SpecValue(std::monostate{})},
          {"qnoise_factor", bits_.qnoise_factor()},
          {"use_stochastic_rounding", stochastic_},
          {"relu_shift", relu_shift_},
          {"relu_upper_bound", relu_upper_bound_}};
}

// ------------------------------------------------------------------------------------------------
StochasticBinary::StochasticBinary(bool bernoulli, std::optional<double> alpha,
                                   std::string auto_alpha, double temperature,
                                   bool use_real_sigmoid)
    : bernoulli_(bernoulli), alpha_(alpha), auto_alpha_(std::move(auto_alpha)),
      temperature_(temperature), use_real_sigmoid_(use_real_sigmoid) {
  if (!auto_alpha_.empty()) check_auto_alpha(name().c_str(), auto_alpha_, std::nullopt);
  throw_if(detail::check_binary_args(name().c_str(), alpha, std::nullopt));
  if (!(std::isfinite(temperature) && temperature > 0)) {
    throw InvalidArgument(name() + ": `temperature` must be a finite number > 0, got " +
                          format_spec_value(temperature));
  }
}

at::Tensor StochasticBinary::forward_train(const at::Tensor& x) const {
  return std::get<0>(ops::stochastic_binary(x, at::rand_like(x), temperature_, use_real_sigmoid_,
                                            bernoulli_, alpha_, !auto_alpha_.empty(),
                                            auto_alpha_ == "auto_po2"));
}

at::Tensor StochasticBinary::forward(const at::Tensor& x) const {
  if (bernoulli_) return forward_train(x);  // QKeras's bernoulli is stochastic in inference too
  if (auto_alpha_.empty()) return ops::binary(x, false, alpha_);
  return std::get<0>(ops::binary_auto(x, false, auto_alpha_ == "auto_po2"));
}

std::string StochasticBinary::to_string() const {
  std::vector<std::string> args;
  const SpecValue a = alpha_value(alpha_, auto_alpha_);
  if (!std::holds_alternative<std::monostate>(a)) args.push_back("alpha=" + format_spec_value(a));
  if (temperature_ != 6.0) args.push_back("temperature=" + format_spec_value(temperature_));
  if (!use_real_sigmoid_) args.push_back("use_real_sigmoid=0");
  return join_args(name(), args);
}

SpecKeywords StochasticBinary::config() const {
  return {{"alpha", alpha_value(alpha_, auto_alpha_)},
          {"temperature", temperature_},
          {"use_real_sigmoid", use_real_sigmoid_}};
}

std::vector<double> StochasticBinary::range() const {
  if (!auto_alpha_.empty()) no_range(name(), "for alpha '" + auto_alpha_ + "' (the scale depends on the data)");
  const double a = alpha_.value_or(1.0);
  return bernoulli_ ? std::vector<double>{0.0, a} : std::vector<double>{-a, a};
}

// ------------------------------------------------------------------------------------------------
StochasticTernary::StochasticTernary(std::optional<double> alpha, std::string auto_alpha,
                                     std::optional<double> threshold, double temperature,
                                     bool use_real_sigmoid, int64_t number_of_unrolls)
    : alpha_(alpha), threshold_(threshold), auto_alpha_(std::move(auto_alpha)),
      temperature_(temperature), use_real_sigmoid_(use_real_sigmoid), unrolls_(number_of_unrolls) {
  if (!(std::isfinite(temperature) && temperature > 0)) {
    throw InvalidArgument("stochastic_ternary: `temperature` must be a finite number > 0, got " +
                          format_spec_value(temperature));
  }
  if (auto_alpha_.empty()) {
    eval_ = std::make_shared<Ternary>(alpha, threshold, number_of_unrolls);
  } else {
    if (threshold) {
      throw InvalidArgument("stochastic_ternary: `threshold` must be None with alpha '" +
                            auto_alpha_ + "' (the threshold is half the scale)");
    }
    eval_ = std::make_shared<Ternary>(auto_alpha_, number_of_unrolls);
  }
}

at::Tensor StochasticTernary::forward_train(const at::Tensor& x) const {
  if (auto_alpha_.empty()) {
    throw InvalidArgument("stochastic_ternary: training needs alpha 'auto' or 'auto_po2' (as in "
                          "QKeras); this one has " +
                          (alpha_ ? "alpha=" + format_spec_value(*alpha_) : std::string("alpha=None")));
  }
  return std::get<0>(ops::stochastic_ternary(x, at::rand_like(x), at::rand_like(x), temperature_,
                                             use_real_sigmoid_, auto_alpha_ == "auto_po2",
                                             unrolls_));
}

std::string StochasticTernary::to_string() const {
  std::vector<std::string> args;
  const SpecValue a = alpha_value(alpha_, auto_alpha_);
  if (!std::holds_alternative<std::monostate>(a)) args.push_back("alpha=" + format_spec_value(a));
  if (threshold_) args.push_back("threshold=" + format_spec_value(*threshold_));
  if (temperature_ != 8.0) args.push_back("temperature=" + format_spec_value(temperature_));
  if (!use_real_sigmoid_) args.push_back("use_real_sigmoid=0");
  if (unrolls_ != 5) args.push_back("number_of_unrolls=" + std::to_string(unrolls_));
  return join_args(name(), args);
}

SpecKeywords StochasticTernary::config() const {
  return {{"alpha", alpha_value(alpha_, auto_alpha_)},
          {"threshold", threshold_ ? SpecValue(*threshold_) : SpecValue(std::monostate{})},
          {"temperature", temperature_},
          {"use_real_sigmoid", use_real_sigmoid_},
          {"number_of_unrolls", unrolls_}};
}

// ------------------------------------------------------------------------------------------------
// range()

std::vector<double> QuantizedBits::range() const {
  if (!auto_alpha_.empty()) no_range(name(), "for alpha '" + auto_alpha_ + "' (the scale depends on the data)");
  if (!channel_alpha_.empty()) no_range(name(), "for a per-channel alpha (one grid per channel)");
  const auto g = detail::make_bits_grid(bits_, integer_, symmetric_, keep_negative_, alpha_);
  if (g.sign_mode) return {g.sign_value, -g.sign_value};
  return code_range(name(), g.lo, g.hi, g.step);
}

std::vector<double> QuantizedRelu::range() const {
  if (use_sigmoid_) no_range(name(), "with use_sigmoid (QKeras does not define it either)");
  const auto g = detail::make_relu_grid(bits_, integer_, use_sigmoid_, negative_slope_);
  return code_range(name(), std::ceil(g.neg_lo), g.hi, g.step);
}

std::vector<double> QuantizedTanh::range() const {
  const auto g = detail::make_activation_grid(true, bits_, symmetric_);
  return code_range(name(), g.lo, g.hi, g.inv_m);
}

std::vector<double> QuantizedSigmoid::range() const {
  const auto g = detail::make_activation_grid(false, bits_, symmetric_);
  return code_range(name(), g.lo, g.hi, g.inv_m);
}

namespace {
// The powers of two a po2 quantizer outputs, ascending: 2^e for e in [lo, hi], or in quadratic
// mode 2^(2k) for k in [lo, hi] plus 2^lo (inputs below 1e-7).
std::vector<double> po2_values(double lo, double hi, bool quadratic) {
  std::vector<double> exps;
  for (double e = lo; e <= hi; e += 1) exps.push_back(quadratic ? 2 * e : e);
  if (quadratic) exps.push_back(lo);
  std::sort(exps.begin(), exps.end());
  exps.erase(std::unique(exps.begin(), exps.end()), exps.end());
  std::vector<double> out;
  for (double e : exps) out.push_back(std::ldexp(1.0, static_cast<int>(e)));
  return out;
}
}  // namespace

std::vector<double> QuantizedPo2::range() const {
  // Positive powers of two, then their negatives (a sign bit and an exponent).
  std::vector<double> out = po2_values(min_exp(), max_exp(), quadratic_);
  const size_t n = out.size();
  for (size_t i = 0; i < n; ++i) out.push_back(-out[i]);
  return out;
}

std::vector<double> QuantizedReluPo2::range() const {
  std::vector<double> out = po2_values(min_exp(), max_exp(), quadratic_);
  if (negative_slope_ != 0) {
    const size_t n = out.size();
    for (size_t i = 0; i < n; ++i) out.push_back(-out[i]);
  }
  return out;
}

std::vector<double> Binary::range() const {
  if (!auto_alpha_.empty()) no_range(name(), "for alpha '" + auto_alpha_ + "' (the scale depends on the data)");
  const double a = alpha_.value_or(1.0);
  return use_01_ ? std::vector<double>{0.0, a} : std::vector<double>{-a, a};
}

std::vector<double> Ternary::range() const {
  if (!auto_alpha_.empty()) no_range(name(), "for alpha '" + auto_alpha_ + "' (the scale depends on the data)");
  const double a = alpha_.value_or(1.0);
  return {-a, 0.0, a};
}

// ------------------------------------------------------------------------------------------------
QuantizerPtr make_quantizer(const std::string& name, const std::vector<SpecValue>& positional,
                            const SpecKeywords& keywords) {
  const auto& table = registry();
  auto it = table.find(name);
  if (it == table.end()) {
    std::string names;
    for (const auto& [n, e] : table) names += std::string(names.empty() ? "" : ", ") + n;
    throw SpecError("unknown quantizer `" + name + "`; known quantizers: " + names);
  }
  return it->second.build(bind(name, it->second.params, positional, keywords));
}

QuantizerPtr get_quantizer(const std::string& spec) {
  const ParsedSpec parsed = parse_spec(spec);
  return make_quantizer(parsed.name, parsed.positional, parsed.keywords);
}

QuantizerPtr qkeras_weight_quantizer(const QuantizerPtr& q) {
  if (!q) return q;
  static const std::set<std::string> names = {"quantized_bits", "binary", "ternary",
                                              "stochastic_binary", "stochastic_ternary",
                                              "bernoulli"};
  if (!names.count(q->name())) return q;
  SpecKeywords config = q->config();
  bool has_alpha = false;
  for (auto& [k, v] : config) {
    if (k == "alpha") has_alpha = !std::holds_alternative<std::monostate>(v);
  }
  if (has_alpha || (q->name() == "quantized_bits" && q->bits() < 2)) return q;
  // QKeras's stochastic_ternary keeps its threshold argument; with "auto_po2" it must be None.
  for (auto& [k, v] : config) {
    if (k == "alpha") v = std::string("auto_po2");
    if (k == "symmetric" && q->name() == "quantized_bits") v = true;
  }
  return make_quantizer(q->name(), {}, config);
}

std::vector<std::string> quantizer_names() {
  std::vector<std::string> names;
  for (const auto& [n, e] : registry()) names.push_back(n);
  return names;
}

}  // namespace heteroq
