// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Model configs: to_config / from_config. One table (layers()) describes every class the format
// knows: its arguments (name, type, default), how to read them from a C++ module and how to build
// the module. Python's heteroq/config.py holds the same table for its classes; the checks and
// their messages are the same in both languages (docs/config.md).
#include "heteroq/nn/config.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <type_traits>
#include <typeindex>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "heteroq/errors.h"
#include "heteroq/nn/conv.h"
#include "heteroq/nn/folded.h"
#include "heteroq/nn/layers.h"
#include "heteroq/nn/norm_pool.h"
#include "heteroq/nn/rnn.h"
#include "heteroq/quantizers/quantizer.h"

namespace heteroq::nn {

// ---------------------------------------------------------------------------------------------
// The two helper modules.

torch::nn::AnyValue NestedSequentialImpl::forward_any(torch::nn::AnyValue value) {
  using torch::Tensor;
  const auto names = named_children();
  size_t index = 0;
  for (auto& child : *this) {
    const std::string& key = names[index++].key();
    auto* select = child.ptr()->as<RecurrentOutputImpl>();
    if (!select) {
      value = child.any_forward(std::move(value));
      continue;
    }
    if (const auto* t = value.try_get<std::tuple<Tensor, Tensor>>()) {
      value = torch::nn::AnyValue(select->forward(std::get<0>(*t), std::get<1>(*t)));
    } else if (const auto* t = value.try_get<std::tuple<Tensor, std::tuple<Tensor, Tensor>>>()) {
      value = torch::nn::AnyValue(select->forward(std::get<0>(*t), std::get<0>(std::get<1>(*t))));
    } else {
      throw InvalidArgument("NestedSequential: child `" + key + "` (RecurrentOutput) expects a "
                            "recurrent layer's (output, state), the previous child returns something else");
    }
  }
  return value;
}

torch::Tensor NestedSequentialImpl::forward(const torch::Tensor& input) {
  torch::nn::AnyValue out = forward_any(torch::nn::AnyValue(input));
  if (const auto* t = out.try_get<torch::Tensor>()) return *t;
  throw InvalidArgument("NestedSequential: the last child returns a tuple, not a tensor (follow a "
                        "recurrent layer with RecurrentOutput)");
}

std::shared_ptr<torch::nn::Module> NestedSequentialImpl::clone(
    const c10::optional<torch::Device>& device) const {
  auto copy = std::make_shared<NestedSequentialImpl>();
  const auto children = named_children();
  size_t i = 0;
  for (auto it = begin(); it != end(); ++it, ++i) {
    copy->push_back(children[i].key(), it->clone(device));
  }
  copy->train(is_training());
  return copy;
}

void HardswishImpl::pretty_print(std::ostream& stream) const {
  stream << "heteroq::nn::Hardswish(";
  if (inplace) stream << "inplace=true";
  stream << ")";
}

torch::Tensor HardswishImpl::forward(torch::Tensor input) {
  return inplace ? torch::hardswish_(input) : torch::hardswish(input);
}

namespace {

using json = nlohmann::ordered_json;
using torch::nn::Module;

constexpr int64_t kNoMin = std::numeric_limits<int64_t>::min();

// A problem at a JSON path ("layers[3].config.kernel_size"); the callers prefix it with
// "from_config: " or the module's name for to_config.
struct ConfigError {
  std::string path;
  std::string detail;
};

std::string join(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

std::string dump(const json& v) { return v.dump(-1, ' ', false, json::error_handler_t::replace); }

// ---------------------------------------------------------------------------------------------
// Argument types.

// Activation: an activation slot of the recurrent layers, a float function's name
// (rnn_float_activations()) or a quantizer spec.
enum class Kind { Int, Ints, ConvPadding, Bool, Number, Choice, Quantizer, Activation };

struct ArgSpec {
  ArgSpec(std::string name_, Kind kind_) : name(std::move(name_)), kind(kind_) {}
  std::string name;
  Kind kind;
  bool required = false;
  bool nullable = false;
  json default_value;           // used when absent and not required
  int64_t min = kNoMin;         // Int, Ints
  size_t dims = 0;              // Ints, ConvPadding
  double lo = -INFINITY, hi = INFINITY;  // Number
  std::string range;            // Number: " >= 0", " in [0, 1]"
  std::vector<std::string> choices;  // Choice
};

// The argument constructors of the table.
ArgSpec count(const std::string& name) {  // a required integer >= 1
  ArgSpec a{name, Kind::Int};
  a.required = true;
  a.min = 1;
  return a;
}
ArgSpec integer(const std::string& name, json dflt, int64_t min = kNoMin, bool nullable = false) {
  ArgSpec a{name, Kind::Int};
  a.default_value = std::move(dflt);
  a.min = min;
  a.nullable = nullable;
  return a;
}
ArgSpec sizes(const std::string& name, size_t dims, std::optional<json> dflt = std::nullopt,
              int64_t min = 1, bool nullable = false) {
  ArgSpec a{name, Kind::Ints};
  a.dims = dims;
  a.min = min;
  a.nullable = nullable;
  if (dflt) {
    a.default_value = *dflt;
  } else if (!nullable) {
    a.required = true;
  }
  return a;
}
ArgSpec paddings(const std::string& name, size_t dims) { return sizes(name, dims, json(0), 0); }
ArgSpec conv_padding(size_t dims) {
  ArgSpec a{"padding", Kind::ConvPadding};
  a.dims = dims;
  a.default_value = 0;
  return a;
}
ArgSpec flag(const std::string& name, bool dflt) {
  ArgSpec a{name, Kind::Bool};
  a.default_value = dflt;
  return a;
}
ArgSpec number(const std::string& name, json dflt, double lo, double hi, const std::string& range,
               bool nullable = false) {
  ArgSpec a{name, Kind::Number};
  a.default_value = std::move(dflt);
  a.lo = lo;
  a.hi = hi;
  a.range = range;
  a.nullable = nullable;
  return a;
}
ArgSpec eps() { return number("eps", 1e-5, 0, INFINITY, " >= 0"); }
ArgSpec momentum() { return number("momentum", 0.1, 0, 1, " in [0, 1]", /*nullable=*/true); }
ArgSpec choice(const std::string& name, const std::string& dflt, std::vector<std::string> choices) {
  ArgSpec a{name, Kind::Choice};
  a.default_value = dflt;
  a.choices = std::move(choices);
  return a;
}
ArgSpec required_choice(const std::string& name, std::vector<std::string> choices) {
  ArgSpec a{name, Kind::Choice};
  a.required = true;
  a.choices = std::move(choices);
  return a;
}
ArgSpec padding_mode() {
  return choice("padding_mode", "zeros", {"zeros", "reflect", "replicate", "circular"});
}
ArgSpec folding_mode() {
  return choice("folding_mode", "ema_stats_folding", {"ema_stats_folding", "batch_stats_folding"});
}
ArgSpec quantizer(const std::string& name, bool required = false) {
  ArgSpec a{name, Kind::Quantizer};
  a.required = required;
  a.nullable = !required;
  return a;
}

// An activation slot of the recurrent layers: a float function's name or a quantizer spec; null is
// the layer's float default (tanh, sigmoid). `dflt` is the constructor's default.
ArgSpec activation(const std::string& name, const std::string& dflt) {
  ArgSpec a{name, Kind::Activation};
  a.default_value = dflt;
  a.nullable = true;
  return a;
}

// The float activations by name, for messages: "tanh", "sigmoid", ...
std::string float_activations_text() {
  std::string s;
  for (const auto& n : rnn_float_activations()) s += (s.empty() ? "\"" : ", \"") + n + "\"";
  return s;
}

// What an argument accepts, for messages (the same words as heteroq/config.py).
std::string describe(const ArgSpec& a) {
  const auto int_text = [](int64_t min) {
    return min == kNoMin ? std::string("an integer") : "an integer >= " + std::to_string(min);
  };
  const auto list_text = [&](int64_t min) {
    const std::string m = min == kNoMin ? "" : " >= " + std::to_string(min);
    return a.dims == 1 ? "a list of one integer" + m
                       : "a list of " + std::to_string(a.dims) + " integers" + m;
  };
  std::string s;
  switch (a.kind) {
    case Kind::Int: s = int_text(a.min); break;
    case Kind::Ints: s = int_text(a.min) + " or " + list_text(a.min); break;
    case Kind::ConvPadding: s = int_text(0) + ", " + list_text(0) + ", \"same\" or \"valid\""; break;
    case Kind::Bool: s = "true or false"; break;
    case Kind::Number: s = "a number" + a.range; break;
    case Kind::Choice:
      s = "one of";
      for (size_t i = 0; i < a.choices.size(); ++i) s += (i ? ", \"" : " \"") + a.choices[i] + "\"";
      break;
    case Kind::Quantizer: s = "a quantizer spec string"; break;
    case Kind::Activation:
      return "a float activation (" + float_activations_text() + "), a quantizer spec string" +
             (a.nullable ? " or null" : "");
  }
  return a.nullable ? s + " or null" : s;
}

bool is_int64(const json& v) {
  if (v.is_number_unsigned()) {
    return v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  }
  return v.is_number_integer();
}

// Checks one value and returns its normal form (integer lists expanded to `dims` entries, numbers
// as reals, quantizers as their to_string()); the quantizer itself goes to `*q`.
json check_value(const json& v, const ArgSpec& a, const std::string& path, QuantizerPtr* q) {
  if (v.is_null() && a.nullable) return nullptr;
  const int64_t min = a.kind == Kind::ConvPadding ? 0 : a.min;
  const auto int_ok = [min](const json& x) { return is_int64(x) && x.get<int64_t>() >= min; };
  switch (a.kind) {
    case Kind::Int:
      if (int_ok(v)) return v.get<int64_t>();
      break;
    case Kind::ConvPadding:
      if (v.is_string() && (v == "same" || v == "valid")) return v;
      [[fallthrough]];
    case Kind::Ints:
      if (int_ok(v)) return json(std::vector<int64_t>(a.dims, v.get<int64_t>()));
      if (v.is_array() && v.size() == a.dims && std::all_of(v.begin(), v.end(), int_ok)) {
        json out = json::array();
        for (const auto& x : v) out.push_back(x.get<int64_t>());
        return out;
      }
      break;
    case Kind::Bool:
      if (v.is_boolean()) return v;
      break;
    case Kind::Number:
      if (v.is_number()) {
        const double d = v.get<double>();
        if (std::isfinite(d) && d >= a.lo && d <= a.hi) return d;
      }
      break;
    case Kind::Choice:
      if (v.is_string() &&
          std::find(a.choices.begin(), a.choices.end(), v.get<std::string>()) != a.choices.end()) {
        return v;
      }
      break;
    case Kind::Quantizer:
      if (v.is_string()) {
        try {
          *q = get_quantizer(v.get<std::string>());
        } catch (const std::invalid_argument& e) {
          throw ConfigError{path, e.what()};
        }
        return (*q)->to_string();
      }
      break;
    case Kind::Activation:
      if (v.is_string()) {
        const auto& names = rnn_float_activations();
        if (std::find(names.begin(), names.end(), v.get<std::string>()) != names.end()) return v;
        try {
          *q = get_quantizer(v.get<std::string>());
        } catch (const std::invalid_argument& e) {
          throw ConfigError{path, dump(v) + " is neither a float activation (" +
                                      float_activations_text() + ") nor a quantizer spec: " +
                                      e.what()};
        }
        return (*q)->to_string();
      }
      break;
  }
  throw ConfigError{path, "expected " + describe(a) + ", got " + dump(v)};
}

// ---------------------------------------------------------------------------------------------
// Checked arguments, as the builders read them.

class Args {
 public:
  Args(std::string cls, std::string path) : cls_(std::move(cls)), path_(std::move(path)) {}

  int64_t i(const std::string& k) const { return at(k).get<int64_t>(); }
  bool b(const std::string& k) const { return at(k).get<bool>(); }
  double f(const std::string& k) const { return at(k).get<double>(); }
  std::string s(const std::string& k) const { return at(k).get<std::string>(); }
  bool is_null(const std::string& k) const { return at(k).is_null(); }
  bool is_string(const std::string& k) const { return at(k).is_string(); }
  std::optional<double> opt_f(const std::string& k) const {
    return is_null(k) ? std::nullopt : std::optional<double>(f(k));
  }
  std::optional<int64_t> opt_i(const std::string& k) const {
    return is_null(k) ? std::nullopt : std::optional<int64_t>(i(k));
  }
  template <size_t D>
  torch::ExpandingArray<D> a(const std::string& k) const {
    torch::ExpandingArray<D> out(0);
    const json& v = at(k);
    for (size_t d = 0; d < D; ++d) (*out)[d] = v[d].get<int64_t>();
    return out;
  }
  QuantizerArg q(const std::string& k) const {
    auto it = quantizers.find(k);
    return it == quantizers.end() ? QuantizerArg() : QuantizerArg(it->second);
  }
  /// An activation slot of the recurrent layers: the quantizer, the float function's name, or
  /// empty (null: the layer's float default).
  RNNActivation act(const std::string& k) const {
    auto it = quantizers.find(k);
    if (it != quantizers.end()) return RNNActivation(it->second);
    if (is_null(k)) return RNNActivation();
    return RNNActivation(s(k));
  }
  /// Integer padding for heteroq's C++ convolutions (which take no "same"/"valid").
  template <size_t D>
  torch::ExpandingArray<D> int_padding() const {
    if (is_string("padding")) {
      throw ConfigError{join(path_, "padding"),
                        dump(at("padding")) + " padding is not supported by the C++ " + cls_ +
                            " (use integers)"};
    }
    return a<D>("padding");
  }
  /// heteroq's C++ convolutions pad with zeros only.
  void require_zero_padding_mode() const {
    if (s("padding_mode") != "zeros") {
      throw ConfigError{join(path_, "padding_mode"),
                        dump(at("padding_mode")) + " is not supported by the C++ " + cls_ +
                            " (only \"zeros\")"};
    }
  }

  json values = json::object();
  std::map<std::string, QuantizerPtr> quantizers;

 private:
  const json& at(const std::string& k) const { return values.at(k); }
  std::string cls_, path_;
};

// ---------------------------------------------------------------------------------------------
// The layer table.

struct LayerEntry {
  std::string cls;
  std::vector<std::type_index> types;  // the C++ classes written as `cls`
  std::vector<ArgSpec> args;
  std::function<json(const Module&)> write;  // the arguments' values, in `args` order
  std::function<torch::nn::AnyModule(const Args&)> build;
};

json spec(const QuantizerArg& q) { return q ? json(q.get()->to_string()) : json(nullptr); }
json spec(const QuantizerPtr& q) { return q ? json(q->to_string()) : json(nullptr); }
template <size_t D>
json list(const torch::ExpandingArray<D>& a) {
  return json(std::vector<int64_t>(a->begin(), a->end()));
}
template <typename T>
json opt(const T& v) {  // std::optional / c10::optional
  return v.has_value() ? json(*v) : json(nullptr);
}

template <size_t D, typename Padding>
json conv_padding_value(const Padding& p) {
  using std::get_if;
  if (get_if<torch::enumtype::kSame>(&p)) return "same";
  if (get_if<torch::enumtype::kValid>(&p)) return "valid";
  return list<D>(*get_if<torch::ExpandingArray<D>>(&p));
}
template <typename Mode>
json padding_mode_value(const Mode& m) {
  using std::get_if;
  if (get_if<torch::enumtype::kReflect>(&m)) return "reflect";
  if (get_if<torch::enumtype::kReplicate>(&m)) return "replicate";
  if (get_if<torch::enumtype::kCircular>(&m)) return "circular";
  return "zeros";
}

template <typename T>
const T& as(const Module& m) {
  return dynamic_cast<const T&>(m);  // Module is a virtual base
}

// LibTorch's Conv1d/Conv2d.
template <size_t D, typename Impl, typename Holder>
LayerEntry torch_conv(const std::string& cls) {
  return {cls,
          {typeid(Impl)},
          {count("in_channels"), count("out_channels"), sizes("kernel_size", D),
           sizes("stride", D, json(1)), conv_padding(D), sizes("dilation", D, json(1)),
           integer("groups", 1, 1), flag("bias", true), padding_mode()},
          [](const Module& m) {
            const auto& o = as<Impl>(m).options;
            return json{{"in_channels", o.in_channels()}, {"out_channels", o.out_channels()},
                        {"kernel_size", list<D>(o.kernel_size())}, {"stride", list<D>(o.stride())},
                        {"padding", conv_padding_value<D>(o.padding())},
                        {"dilation", list<D>(o.dilation())}, {"groups", o.groups()},
                        {"bias", o.bias()}, {"padding_mode", padding_mode_value(o.padding_mode())}};
          },
          [](const Args& a) {
            torch::nn::ConvOptions<D> o(a.i("in_channels"), a.i("out_channels"),
                                        a.a<D>("kernel_size"));
            o.stride(a.a<D>("stride")).dilation(a.a<D>("dilation")).groups(a.i("groups"))
                .bias(a.b("bias"));
            if (a.is_string("padding")) {
              if (a.s("padding") == "same") {
                o.padding(torch::kSame);
              } else {
                o.padding(torch::kValid);
              }
            } else {
              o.padding(a.a<D>("padding"));
            }
            const std::string mode = a.s("padding_mode");
            if (mode == "reflect") {
              o.padding_mode(torch::kReflect);
            } else if (mode == "replicate") {
              o.padding_mode(torch::kReplicate);
            } else if (mode == "circular") {
              o.padding_mode(torch::kCircular);
            }
            return torch::nn::AnyModule(Holder(o));
          }};
}

// heteroq's QConv1d/QConv2d.
template <size_t D, typename Impl, typename Holder>
LayerEntry qconv(const std::string& cls) {
  return {cls,
          {typeid(Impl)},
          {count("in_channels"), count("out_channels"), sizes("kernel_size", D),
           sizes("stride", D, json(1)), conv_padding(D), sizes("dilation", D, json(1)),
           integer("groups", 1, 1), flag("bias", true), padding_mode(),
           quantizer("kernel_quantizer"), quantizer("bias_quantizer")},
          [](const Module& m) {
            const auto& o = as<Impl>(m).options;
            return json{{"in_channels", o.in_channels()}, {"out_channels", o.out_channels()},
                        {"kernel_size", list<D>(o.kernel_size())}, {"stride", list<D>(o.stride())},
                        {"padding", list<D>(o.padding())}, {"dilation", list<D>(o.dilation())},
                        {"groups", o.groups()}, {"bias", o.bias()}, {"padding_mode", "zeros"},
                        {"kernel_quantizer", spec(o.kernel_quantizer())},
                        {"bias_quantizer", spec(o.bias_quantizer())}};
          },
          [](const Args& a) {
            a.require_zero_padding_mode();
            QConvOptions<D> o(a.i("in_channels"), a.i("out_channels"), a.a<D>("kernel_size"));
            o.stride(a.a<D>("stride")).padding(a.int_padding<D>()).dilation(a.a<D>("dilation"))
                .groups(a.i("groups")).bias(a.b("bias"))
                .kernel_quantizer(a.q("kernel_quantizer")).bias_quantizer(a.q("bias_quantizer"));
            return torch::nn::AnyModule(Holder(o));
          }};
}

template <size_t D, typename Impl, typename Holder>
LayerEntry qseparable(const std::string& cls) {
  return {cls,
          {typeid(Impl)},
          {count("in_channels"), count("out_channels"), sizes("kernel_size", D),
           integer("depth_multiplier", 1, 1), sizes("stride", D, json(1)), conv_padding(D),
           sizes("dilation", D, json(1)), flag("bias", true), quantizer("depthwise_quantizer"),
           quantizer("pointwise_quantizer"), quantizer("bias_quantizer")},
          [](const Module& m) {
            const auto& o = as<Impl>(m).options;
            return json{{"in_channels", o.in_channels()}, {"out_channels", o.out_channels()},
                        {"kernel_size", list<D>(o.kernel_size())},
                        {"depth_multiplier", o.depth_multiplier()},
                        {"stride", list<D>(o.stride())}, {"padding", list<D>(o.padding())},
                        {"dilation", list<D>(o.dilation())}, {"bias", o.bias()},
                        {"depthwise_quantizer", spec(o.depthwise_quantizer())},
                        {"pointwise_quantizer", spec(o.pointwise_quantizer())},
                        {"bias_quantizer", spec(o.bias_quantizer())}};
          },
          [](const Args& a) {
            QSeparableConvOptions<D> o(a.i("in_channels"), a.i("out_channels"),
                                       a.a<D>("kernel_size"));
            o.depth_multiplier(a.i("depth_multiplier")).stride(a.a<D>("stride"))
                .padding(a.int_padding<D>()).dilation(a.a<D>("dilation")).bias(a.b("bias"))
                .depthwise_quantizer(a.q("depthwise_quantizer"))
                .pointwise_quantizer(a.q("pointwise_quantizer"))
                .bias_quantizer(a.q("bias_quantizer"));
            return torch::nn::AnyModule(Holder(o));
          }};
}

template <typename Impl, typename Holder>
LayerEntry qbatchnorm(const std::string& cls) {
  return {cls,
          {typeid(Impl)},
          {count("num_features"), eps(), momentum(), flag("affine", true),
           flag("track_running_stats", true), quantizer("gamma_quantizer"),
           quantizer("beta_quantizer"), quantizer("mean_quantizer"),
           quantizer("variance_quantizer"), quantizer("inverse_quantizer")},
          [](const Module& m) {
            const auto& o = as<Impl>(m).options;
            return json{{"num_features", o.num_features()}, {"eps", o.eps()},
                        {"momentum", opt(o.momentum())}, {"affine", o.affine()},
                        {"track_running_stats", o.track_running_stats()},
                        {"gamma_quantizer", spec(o.gamma_quantizer())},
                        {"beta_quantizer", spec(o.beta_quantizer())},
                        {"mean_quantizer", spec(o.mean_quantizer())},
                        {"variance_quantizer", spec(o.variance_quantizer())},
                        {"inverse_quantizer", spec(o.inverse_quantizer())}};
          },
          [](const Args& a) {
            QBatchNormOptions o(a.i("num_features"));
            o.eps(a.f("eps")).momentum(a.opt_f("momentum")).affine(a.b("affine"))
                .track_running_stats(a.b("track_running_stats"))
                .gamma_quantizer(a.q("gamma_quantizer")).beta_quantizer(a.q("beta_quantizer"))
                .mean_quantizer(a.q("mean_quantizer"))
                .variance_quantizer(a.q("variance_quantizer"))
                .inverse_quantizer(a.q("inverse_quantizer"));
            return torch::nn::AnyModule(Holder(o));
          }};
}

template <typename Impl, typename Holder>
LayerEntry torch_batchnorm(const std::string& cls) {
  return {cls,
          {typeid(Impl)},
          {count("num_features"), eps(), momentum(), flag("affine", true),
           flag("track_running_stats", true)},
          [](const Module& m) {
            const auto& o = as<Impl>(m).options;
            return json{{"num_features", o.num_features()}, {"eps", o.eps()},
                        {"momentum", opt(o.momentum())}, {"affine", o.affine()},
                        {"track_running_stats", o.track_running_stats()}};
          },
          [](const Args& a) {
            torch::nn::BatchNormOptions o(a.i("num_features"));
            o.eps(a.f("eps")).affine(a.b("affine")).track_running_stats(a.b("track_running_stats"));
            if (a.is_null("momentum")) {
              o.momentum(c10::nullopt);
            } else {
              o.momentum(a.f("momentum"));
            }
            return torch::nn::AnyModule(Holder(o));
          }};
}

// A layer without arguments.
template <typename Impl, typename Holder>
LayerEntry no_args(const std::string& cls) {
  return {cls, {typeid(Impl)}, {}, [](const Module&) { return json::object(); },
          [](const Args&) { return torch::nn::AnyModule(Holder()); }};
}

// The value an activation slot writes: the quantizer's spec, the float function's name, or for an
// empty slot the float function it stands for (`float_default`).
json activation_value(const RNNActivation& a, const char* float_default) {
  if (a.quantizer()) return a.quantizer()->to_string();
  return a.function().empty() ? json(float_default) : json(a.function());
}

// heteroq's recurrent layers: torch::nn::RNN/LSTM/GRU's arguments, the quantizer slots, the
// activations and the options of each layer (QLSTM: recurrent_activation, unit_forget_bias; QGRU:
// recurrent_activation, reset_after).
template <typename Impl, typename Holder, typename Options>
LayerEntry qrnn(const std::string& cls) {
  constexpr bool kLSTM = std::is_same_v<Options, QLSTMOptions>;
  constexpr bool kGRU = std::is_same_v<Options, QGRUOptions>;
  std::vector<ArgSpec> args = {
      count("input_size"), count("hidden_size"), integer("num_layers", 1, 1), flag("bias", true),
      flag("batch_first", false), number("dropout", 0.0, 0, 1, " in [0, 1]"),
      flag("bidirectional", false), quantizer("kernel_quantizer"),
      quantizer("recurrent_quantizer"), quantizer("bias_quantizer"),
      quantizer("state_quantizer"), activation("activation", "quantized_tanh")};
  if constexpr (kLSTM || kGRU) args.push_back(activation("recurrent_activation", "hard_sigmoid"));
  if constexpr (kLSTM) args.push_back(flag("unit_forget_bias", true));
  if constexpr (kGRU) args.push_back(flag("reset_after", true));
  return {cls,
          {typeid(Impl)},
          std::move(args),
          [](const Module& m) {
            const auto& o = as<Impl>(m).options;
            json out{{"input_size", o.input_size()}, {"hidden_size", o.hidden_size()},
                     {"num_layers", o.num_layers()}, {"bias", o.bias()},
                     {"batch_first", o.batch_first()}, {"dropout", o.dropout()},
                     {"bidirectional", o.bidirectional()},
                     {"kernel_quantizer", spec(o.kernel_quantizer())},
                     {"recurrent_quantizer", spec(o.recurrent_quantizer())},
                     {"bias_quantizer", spec(o.bias_quantizer())},
                     {"state_quantizer", spec(o.state_quantizer())},
                     {"activation", activation_value(o.activation(), "tanh")}};
            if constexpr (kLSTM || kGRU) {
              out["recurrent_activation"] = activation_value(o.recurrent_activation(), "sigmoid");
            }
            if constexpr (kLSTM) out["unit_forget_bias"] = o.unit_forget_bias();
            if constexpr (kGRU) out["reset_after"] = o.reset_after();
            return out;
          },
          [](const Args& a) {
            Options o(a.i("input_size"), a.i("hidden_size"));
            o.num_layers(a.i("num_layers")).bias(a.b("bias")).batch_first(a.b("batch_first"))
                .dropout(a.f("dropout")).bidirectional(a.b("bidirectional"))
                .kernel_quantizer(a.q("kernel_quantizer"))
                .recurrent_quantizer(a.q("recurrent_quantizer"))
                .bias_quantizer(a.q("bias_quantizer")).state_quantizer(a.q("state_quantizer"))
                .activation(a.act("activation"));
            if constexpr (kLSTM || kGRU) o.recurrent_activation(a.act("recurrent_activation"));
            if constexpr (kLSTM) o.unit_forget_bias(a.b("unit_forget_bias"));
            if constexpr (kGRU) o.reset_after(a.b("reset_after"));
            return torch::nn::AnyModule(Holder(o));
          }};
}

std::vector<LayerEntry> make_layers() {
  std::vector<LayerEntry> t;
  // ---- heteroq's layers
  t.push_back({"QLinear",
               {typeid(QLinearImpl)},
               {count("in_features"), count("out_features"), flag("bias", true),
                quantizer("kernel_quantizer"), quantizer("bias_quantizer")},
               [](const Module& m) {
                 const auto& o = as<QLinearImpl>(m).options;
                 return json{{"in_features", o.in_features()}, {"out_features", o.out_features()},
                             {"bias", o.bias()}, {"kernel_quantizer", spec(o.kernel_quantizer())},
                             {"bias_quantizer", spec(o.bias_quantizer())}};
               },
               [](const Args& a) {
                 return torch::nn::AnyModule(QLinear(
                     QLinearOptions(a.i("in_features"), a.i("out_features"))
                         .bias(a.b("bias"))
                         .kernel_quantizer(a.q("kernel_quantizer"))
                         .bias_quantizer(a.q("bias_quantizer"))));
               }});
  t.push_back(qconv<1, QConv1dImpl, QConv1d>("QConv1d"));
  t.push_back(qconv<2, QConv2dImpl, QConv2d>("QConv2d"));
  t.push_back({"QConvTranspose2d",
               {typeid(QConvTranspose2dImpl)},
               {count("in_channels"), count("out_channels"), sizes("kernel_size", 2),
                sizes("stride", 2, json(1)), paddings("padding", 2),
                paddings("output_padding", 2), integer("groups", 1, 1), flag("bias", true),
                sizes("dilation", 2, json(1)), quantizer("kernel_quantizer"),
                quantizer("bias_quantizer")},
               [](const Module& m) {
                 const auto& o = as<QConvTranspose2dImpl>(m).options;
                 return json{{"in_channels", o.in_channels()}, {"out_channels", o.out_channels()},
                             {"kernel_size", list<2>(o.kernel_size())},
                             {"stride", list<2>(o.stride())}, {"padding", list<2>(o.padding())},
                             {"output_padding", list<2>(o.output_padding())},
                             {"groups", o.groups()}, {"bias", o.bias()},
                             {"dilation", list<2>(o.dilation())},
                             {"kernel_quantizer", spec(o.kernel_quantizer())},
                             {"bias_quantizer", spec(o.bias_quantizer())}};
               },
               [](const Args& a) {
                 QConv2dOptions o(a.i("in_channels"), a.i("out_channels"), a.a<2>("kernel_size"));
                 o.stride(a.a<2>("stride")).padding(a.a<2>("padding"))
                     .output_padding(a.a<2>("output_padding")).groups(a.i("groups"))
                     .bias(a.b("bias")).dilation(a.a<2>("dilation"))
                     .kernel_quantizer(a.q("kernel_quantizer"))
                     .bias_quantizer(a.q("bias_quantizer"));
                 return torch::nn::AnyModule(QConvTranspose2d(o));
               }});
  t.push_back({"QDepthwiseConv2d",
               {typeid(QDepthwiseConv2dImpl)},
               {count("in_channels"), sizes("kernel_size", 2), integer("depth_multiplier", 1, 1),
                sizes("stride", 2, json(1)), conv_padding(2), sizes("dilation", 2, json(1)),
                flag("bias", true), padding_mode(), quantizer("depthwise_quantizer"),
                quantizer("bias_quantizer")},
               [](const Module& m) {
                 const auto& o = as<QDepthwiseConv2dImpl>(m).options;
                 return json{{"in_channels", o.in_channels()},
                             {"kernel_size", list<2>(o.kernel_size())},
                             {"depth_multiplier", o.depth_multiplier()},
                             {"stride", list<2>(o.stride())}, {"padding", list<2>(o.padding())},
                             {"dilation", list<2>(o.dilation())}, {"bias", o.bias()},
                             {"padding_mode", "zeros"},
                             {"depthwise_quantizer", spec(o.depthwise_quantizer())},
                             {"bias_quantizer", spec(o.bias_quantizer())}};
               },
               [](const Args& a) {
                 a.require_zero_padding_mode();
                 QDepthwiseConv2dOptions o(a.i("in_channels"), a.a<2>("kernel_size"));
                 o.depth_multiplier(a.i("depth_multiplier")).stride(a.a<2>("stride"))
                     .padding(a.int_padding<2>()).dilation(a.a<2>("dilation")).bias(a.b("bias"))
                     .depthwise_quantizer(a.q("depthwise_quantizer"))
                     .bias_quantizer(a.q("bias_quantizer"));
                 return torch::nn::AnyModule(QDepthwiseConv2d(o));
               }});
  t.push_back(qseparable<1, QSeparableConv1dImpl, QSeparableConv1d>("QSeparableConv1d"));
  t.push_back(qseparable<2, QSeparableConv2dImpl, QSeparableConv2d>("QSeparableConv2d"));
  t.push_back({"QActivation",
               {typeid(QActivationImpl)},
               {quantizer("activation", /*required=*/true)},
               [](const Module& m) {
                 return json{{"activation", spec(as<QActivationImpl>(m).quantizer())}};
               },
               [](const Args& a) { return torch::nn::AnyModule(QActivation(a.q("activation"))); }});
  t.push_back({"QAdaptiveActivation",
               {typeid(QAdaptiveActivationImpl)},
               {required_choice("activation", {"quantized_bits", "quantized_relu"}),
                count("total_bits"), integer("current_step", nullptr, kNoMin, /*nullable=*/true),
                flag("symmetric", true), integer("quantization_delay", 0, 0),
                integer("ema_freeze_delay", nullptr, kNoMin, /*nullable=*/true),
                number("ema_decay", 0.9999, 0, 1, " in [0, 1]"), flag("per_channel", false),
                integer("num_channels", nullptr, 1, /*nullable=*/true), flag("po2_rounding", false),
                number("relu_neg_slope", 0.0, -INFINITY, INFINITY, ""),
                number("relu_upper_bound", nullptr, -INFINITY, INFINITY, "", /*nullable=*/true)},
               [](const Module& m) {
                 const auto& layer = as<QAdaptiveActivationImpl>(m);
                 const auto& o = layer.options;
                 // current_step: the step count now (the `step` buffer), so that the rebuilt
                 // layer goes on from there; num_channels only means something per channel.
                 return json{{"activation", o.activation()}, {"total_bits", o.total_bits()},
                             {"current_step", layer.step.item<int64_t>()},
                             {"symmetric", o.symmetric()},
                             {"quantization_delay", o.quantization_delay()},
                             {"ema_freeze_delay", opt(o.ema_freeze_delay())},
                             {"ema_decay", o.ema_decay()}, {"per_channel", o.per_channel()},
                             {"num_channels",
                              o.per_channel() ? json(o.num_channels()) : json(nullptr)},
                             {"po2_rounding", o.po2_rounding()},
                             {"relu_neg_slope", o.relu_neg_slope()},
                             {"relu_upper_bound", opt(o.relu_upper_bound())}};
               },
               [](const Args& a) {
                 QAdaptiveActivationOptions o(a.s("activation"), a.i("total_bits"));
                 o.current_step(a.opt_i("current_step")).symmetric(a.b("symmetric"))
                     .quantization_delay(a.i("quantization_delay"))
                     .ema_freeze_delay(a.opt_i("ema_freeze_delay")).ema_decay(a.f("ema_decay"))
                     .per_channel(a.b("per_channel"))
                     .num_channels(a.opt_i("num_channels").value_or(0))
                     .po2_rounding(a.b("po2_rounding")).relu_neg_slope(a.f("relu_neg_slope"))
                     .relu_upper_bound(a.opt_f("relu_upper_bound"));
                 return torch::nn::AnyModule(QAdaptiveActivation(o));
               }});
  t.push_back(qbatchnorm<QBatchNorm1dImpl, QBatchNorm1d>("QBatchNorm1d"));
  t.push_back(qbatchnorm<QBatchNorm2dImpl, QBatchNorm2d>("QBatchNorm2d"));
  t.push_back({"QAvgPool2d",
               {typeid(QAvgPool2dImpl)},
               {sizes("kernel_size", 2), sizes("stride", 2, json(nullptr), 1, /*nullable=*/true),
                paddings("padding", 2), flag("ceil_mode", false), flag("count_include_pad", true),
                quantizer("average_quantizer"), quantizer("activation")},
               [](const Module& m) {
                 const auto& o = as<QAvgPool2dImpl>(m).options;
                 return json{{"kernel_size", list<2>(o.kernel_size())},
                             {"stride", list<2>(o.stride())}, {"padding", list<2>(o.padding())},
                             {"ceil_mode", o.ceil_mode()},
                             {"count_include_pad", o.count_include_pad()},
                             {"average_quantizer", spec(o.average_quantizer())},
                             {"activation", spec(o.activation())}};
               },
               [](const Args& a) {
                 QAvgPool2dOptions o(a.a<2>("kernel_size"));
                 if (!a.is_null("stride")) o.stride(a.a<2>("stride"));
                 o.padding(a.a<2>("padding")).ceil_mode(a.b("ceil_mode"))
                     .count_include_pad(a.b("count_include_pad"))
                     .average_quantizer(a.q("average_quantizer")).activation(a.q("activation"));
                 return torch::nn::AnyModule(QAvgPool2d(o));
               }});
  t.push_back({"QGlobalAvgPool2d",
               {typeid(QGlobalAvgPool2dImpl)},
               {quantizer("average_quantizer"), quantizer("activation"), flag("keepdim", false)},
               [](const Module& m) {
                 const auto& o = as<QGlobalAvgPool2dImpl>(m).options;
                 return json{{"average_quantizer", spec(o.average_quantizer())},
                             {"activation", spec(o.activation())}, {"keepdim", o.keepdim()}};
               },
               [](const Args& a) {
                 return torch::nn::AnyModule(QGlobalAvgPool2d(
                     QGlobalAvgPool2dOptions()
                         .average_quantizer(a.q("average_quantizer"))
                         .activation(a.q("activation"))
                         .keepdim(a.b("keepdim"))));
               }});
  t.push_back({"QConv2dBatchNorm",
               {typeid(QConv2dBatchNormImpl)},
               {count("in_channels"), count("out_channels"), sizes("kernel_size", 2),
                sizes("stride", 2, json(1)), paddings("padding", 2), sizes("dilation", 2, json(1)),
                integer("groups", 1, 1), flag("bias", true), eps(), momentum(),
                quantizer("kernel_quantizer"), quantizer("bias_quantizer"), folding_mode(),
                integer("ema_freeze_delay", nullptr, kNoMin, /*nullable=*/true)},
               [](const Module& m) {
                 const auto& o = as<QConv2dBatchNormImpl>(m).options;
                 const auto& f = o.folding();
                 return json{{"in_channels", o.in_channels()}, {"out_channels", o.out_channels()},
                             {"kernel_size", list<2>(o.kernel_size())},
                             {"stride", list<2>(o.stride())}, {"padding", list<2>(o.padding())},
                             {"dilation", list<2>(o.dilation())}, {"groups", o.groups()},
                             {"bias", o.bias()}, {"eps", f.eps()}, {"momentum", opt(f.momentum())},
                             {"kernel_quantizer", spec(o.kernel_quantizer())},
                             {"bias_quantizer", spec(o.bias_quantizer())},
                             {"folding_mode", f.folding_mode()},
                             {"ema_freeze_delay", opt(f.ema_freeze_delay())}};
               },
               [](const Args& a) {
                 QConv2dBatchNormOptions o(a.i("in_channels"), a.i("out_channels"),
                                           a.a<2>("kernel_size"));
                 o.stride(a.a<2>("stride")).padding(a.a<2>("padding")).dilation(a.a<2>("dilation"))
                     .groups(a.i("groups")).bias(a.b("bias"))
                     .kernel_quantizer(a.q("kernel_quantizer"))
                     .bias_quantizer(a.q("bias_quantizer"))
                     .folding(FoldingOptions()
                                  .eps(a.f("eps"))
                                  .momentum(a.opt_f("momentum"))
                                  .folding_mode(a.s("folding_mode"))
                                  .ema_freeze_delay(a.opt_i("ema_freeze_delay")));
                 return torch::nn::AnyModule(QConv2dBatchNorm(o));
               }});
  t.push_back({"QLinearBatchNorm",
               {typeid(QLinearBatchNormImpl)},
               {count("in_features"), count("out_features"), flag("bias", true), eps(), momentum(),
                quantizer("kernel_quantizer"), quantizer("bias_quantizer"), folding_mode(),
                integer("ema_freeze_delay", nullptr, kNoMin, /*nullable=*/true)},
               [](const Module& m) {
                 const auto& o = as<QLinearBatchNormImpl>(m).options;
                 const auto& f = o.folding();
                 return json{{"in_features", o.in_features()}, {"out_features", o.out_features()},
                             {"bias", o.bias()}, {"eps", f.eps()}, {"momentum", opt(f.momentum())},
                             {"kernel_quantizer", spec(o.kernel_quantizer())},
                             {"bias_quantizer", spec(o.bias_quantizer())},
                             {"folding_mode", f.folding_mode()},
                             {"ema_freeze_delay", opt(f.ema_freeze_delay())}};
               },
               [](const Args& a) {
                 QLinearBatchNormOptions o(a.i("in_features"), a.i("out_features"));
                 o.bias(a.b("bias")).kernel_quantizer(a.q("kernel_quantizer"))
                     .bias_quantizer(a.q("bias_quantizer"))
                     .folding(FoldingOptions()
                                  .eps(a.f("eps"))
                                  .momentum(a.opt_f("momentum"))
                                  .folding_mode(a.s("folding_mode"))
                                  .ema_freeze_delay(a.opt_i("ema_freeze_delay")));
                 return torch::nn::AnyModule(QLinearBatchNorm(o));
               }});
  t.push_back(qrnn<QSimpleRNNImpl, QSimpleRNN, QSimpleRNNOptions>("QSimpleRNN"));
  t.push_back(qrnn<QLSTMImpl, QLSTM, QLSTMOptions>("QLSTM"));
  t.push_back(qrnn<QGRUImpl, QGRU, QGRUOptions>("QGRU"));
  // ---- LibTorch's layers (PyTorch's names and arguments)
  t.push_back({"Linear",
               {typeid(torch::nn::LinearImpl)},
               {count("in_features"), count("out_features"), flag("bias", true)},
               [](const Module& m) {
                 const auto& o = as<torch::nn::LinearImpl>(m).options;
                 return json{{"in_features", o.in_features()}, {"out_features", o.out_features()},
                             {"bias", o.bias()}};
               },
               [](const Args& a) {
                 return torch::nn::AnyModule(torch::nn::Linear(
                     torch::nn::LinearOptions(a.i("in_features"), a.i("out_features"))
                         .bias(a.b("bias"))));
               }});
  t.push_back(torch_conv<1, torch::nn::Conv1dImpl, torch::nn::Conv1d>("Conv1d"));
  t.push_back(torch_conv<2, torch::nn::Conv2dImpl, torch::nn::Conv2d>("Conv2d"));
  t.push_back(torch_batchnorm<torch::nn::BatchNorm1dImpl, torch::nn::BatchNorm1d>("BatchNorm1d"));
  t.push_back(torch_batchnorm<torch::nn::BatchNorm2dImpl, torch::nn::BatchNorm2d>("BatchNorm2d"));
  t.push_back({"ReLU",
               {typeid(torch::nn::ReLUImpl)},
               {flag("inplace", false)},
               [](const Module& m) {
                 return json{{"inplace", as<torch::nn::ReLUImpl>(m).options.inplace()}};
               },
               [](const Args& a) {
                 return torch::nn::AnyModule(
                     torch::nn::ReLU(torch::nn::ReLUOptions().inplace(a.b("inplace"))));
               }});
  t.push_back(no_args<torch::nn::TanhImpl, torch::nn::Tanh>("Tanh"));
  t.push_back(no_args<torch::nn::SigmoidImpl, torch::nn::Sigmoid>("Sigmoid"));
  t.push_back({"Hardswish",
               {typeid(HardswishImpl)},
               {flag("inplace", false)},
               [](const Module& m) { return json{{"inplace", as<HardswishImpl>(m).inplace}}; },
               [](const Args& a) { return torch::nn::AnyModule(Hardswish(a.b("inplace"))); }});
  t.push_back({"Flatten",
               {typeid(torch::nn::FlattenImpl)},
               {integer("start_dim", 1), integer("end_dim", -1)},
               [](const Module& m) {
                 const auto& o = as<torch::nn::FlattenImpl>(m).options;
                 return json{{"start_dim", o.start_dim()}, {"end_dim", o.end_dim()}};
               },
               [](const Args& a) {
                 return torch::nn::AnyModule(torch::nn::Flatten(
                     torch::nn::FlattenOptions().start_dim(a.i("start_dim")).end_dim(a.i("end_dim"))));
               }});
  t.push_back({"Dropout",
               {typeid(torch::nn::DropoutImpl)},
               {number("p", 0.5, 0, 1, " in [0, 1]"), flag("inplace", false)},
               [](const Module& m) {
                 const auto& o = as<torch::nn::DropoutImpl>(m).options;
                 return json{{"p", o.p()}, {"inplace", o.inplace()}};
               },
               [](const Args& a) {
                 return torch::nn::AnyModule(torch::nn::Dropout(
                     torch::nn::DropoutOptions(a.f("p")).inplace(a.b("inplace"))));
               }});
  t.push_back({"AvgPool2d",
               {typeid(torch::nn::AvgPool2dImpl)},
               {sizes("kernel_size", 2), sizes("stride", 2, json(nullptr), 1, /*nullable=*/true),
                paddings("padding", 2), flag("ceil_mode", false), flag("count_include_pad", true),
                integer("divisor_override", nullptr, 1, /*nullable=*/true)},
               [](const Module& m) {
                 const auto& o = as<torch::nn::AvgPool2dImpl>(m).options;
                 return json{{"kernel_size", list<2>(o.kernel_size())},
                             {"stride", list<2>(o.stride())}, {"padding", list<2>(o.padding())},
                             {"ceil_mode", o.ceil_mode()},
                             {"count_include_pad", o.count_include_pad()},
                             {"divisor_override", opt(o.divisor_override())}};
               },
               [](const Args& a) {
                 torch::nn::AvgPool2dOptions o(a.a<2>("kernel_size"));
                 if (!a.is_null("stride")) o.stride(a.a<2>("stride"));
                 o.padding(a.a<2>("padding")).ceil_mode(a.b("ceil_mode"))
                     .count_include_pad(a.b("count_include_pad"));
                 if (!a.is_null("divisor_override")) o.divisor_override(a.i("divisor_override"));
                 return torch::nn::AnyModule(torch::nn::AvgPool2d(o));
               }});
  t.push_back({"MaxPool2d",
               {typeid(torch::nn::MaxPool2dImpl)},
               {sizes("kernel_size", 2), sizes("stride", 2, json(nullptr), 1, /*nullable=*/true),
                paddings("padding", 2), sizes("dilation", 2, json(1)), flag("ceil_mode", false)},
               [](const Module& m) {
                 const auto& o = as<torch::nn::MaxPool2dImpl>(m).options;
                 return json{{"kernel_size", list<2>(o.kernel_size())},
                             {"stride", list<2>(o.stride())}, {"padding", list<2>(o.padding())},
                             {"dilation", list<2>(o.dilation())}, {"ceil_mode", o.ceil_mode()}};
               },
               [](const Args& a) {
                 torch::nn::MaxPool2dOptions o(a.a<2>("kernel_size"));
                 if (!a.is_null("stride")) o.stride(a.a<2>("stride"));
                 o.padding(a.a<2>("padding")).dilation(a.a<2>("dilation"))
                     .ceil_mode(a.b("ceil_mode"));
                 return torch::nn::AnyModule(torch::nn::MaxPool2d(o));
               }});
  t.push_back(no_args<torch::nn::IdentityImpl, torch::nn::Identity>("Identity"));
  t.push_back({"RecurrentOutput",
               {typeid(RecurrentOutputImpl)},
               {flag("return_sequences", false)},
               [](const Module& m) {
                 return json{{"return_sequences", as<RecurrentOutputImpl>(m).return_sequences}};
               },
               [](const Args& a) { return torch::nn::AnyModule(RecurrentOutput(a.b("return_sequences"))); }});
  return t;
}

const std::vector<LayerEntry>& layers() {
  static const std::vector<LayerEntry> table = make_layers();
  return table;
}

const LayerEntry* find_class(const std::string& cls) {
  for (const auto& e : layers()) {
    if (e.cls == cls) return &e;
  }
  return nullptr;
}

const LayerEntry* find_type(const Module& m) {
  const std::type_index t(typeid(m));
  for (const auto& e : layers()) {
    if (std::find(e.types.begin(), e.types.end(), t) != e.types.end()) return &e;
  }
  return nullptr;
}

bool is_sequential(const Module& m) {
  return typeid(m) == typeid(torch::nn::SequentialImpl) || typeid(m) == typeid(NestedSequentialImpl);
}

const char* const kSequential = "Sequential";

// ---------------------------------------------------------------------------------------------
// Reading: the whole tree is checked (into Nodes) before anything is built.

struct Node {
  const LayerEntry* entry = nullptr;  // nullptr: a Sequential
  std::string cls, name, path;
  Args args{"", ""};
  std::vector<Node> children;
};

// A layer's "config": unexpected keys first (in document order), then every argument in the
// table's order.
Args read_args(const json& config, const LayerEntry& e, const std::string& path) {
  for (const auto& [key, value] : config.items()) {
    const bool known = std::any_of(e.args.begin(), e.args.end(),
                                   [&](const ArgSpec& a) { return a.name == key; });
    if (!known) {
      std::string takes;
      for (const auto& a : e.args) takes += (takes.empty() ? "" : ", ") + a.name;
      throw ConfigError{join(path, key), "unexpected argument (" + e.cls +
                                             (takes.empty() ? " takes no arguments)"
                                                            : " takes " + takes + ")")};
    }
  }
  Args args(e.cls, path);
  for (const auto& a : e.args) {
    const std::string p = join(path, a.name);
    auto it = config.find(a.name);
    if (it == config.end()) {
      if (a.required) throw ConfigError{p, "missing (" + e.cls + " requires it)"};
    }
    QuantizerPtr q;
    args.values[a.name] = check_value(it == config.end() ? a.default_value : *it, a, p, &q);
    if (q) args.quantizers[a.name] = q;
  }
  return args;
}

std::string known_classes() {
  std::string s;
  for (const auto& c : config_classes()) s += (s.empty() ? "" : ", ") + c;
  return s;
}

Node read_node(const json& v, const std::string& path, bool root,
               std::map<std::string, std::string>* siblings) {
  if (!v.is_object()) {
    throw ConfigError{path, "expected a layer (a JSON object), got " + dump(v)};
  }
  Node node;
  node.path = path;
  const std::string class_path = join(path, "class");
  auto cit = v.find("class");
  if (cit == v.end()) throw ConfigError{class_path, "missing"};
  if (!cit->is_string()) throw ConfigError{class_path, "expected a string, got " + dump(*cit)};
  node.cls = cit->get<std::string>();
  if (node.cls != kSequential) {
    node.entry = find_class(node.cls);
    if (!node.entry) {
      throw ConfigError{class_path,
                        "unknown class " + dump(*cit) + " (known: " + known_classes() + ")"};
    }
  }
  const std::string body = node.entry ? "config" : "layers";
  std::vector<std::string> allowed;
  if (root) allowed = {"format", "version"};
  allowed.push_back("class");
  if (!root) allowed.push_back("name");
  allowed.push_back(body);
  for (const auto& [key, value] : v.items()) {
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      std::string expected;
      for (const auto& k : allowed) expected += (expected.empty() ? "" : ", ") + k;
      throw ConfigError{join(path, key), "unexpected key (expected " + expected + ")"};
    }
  }
  if (!root) {
    const std::string name_path = join(path, "name");
    auto nit = v.find("name");
    if (nit == v.end()) throw ConfigError{name_path, "missing"};
    if (!nit->is_string()) throw ConfigError{name_path, "expected a string, got " + dump(*nit)};
    node.name = nit->get<std::string>();
    if (node.name.empty() || node.name.find('.') != std::string::npos) {
      throw ConfigError{name_path, dump(*nit) +
                                       " is not a valid module name (it must be non-empty and "
                                       "contain no \".\")"};
    }
    auto [it, inserted] = siblings->emplace(node.name, path);
    if (!inserted) {
      throw ConfigError{name_path, dump(*nit) + " is also the name of " + it->second};
    }
  }
  const std::string body_path = join(path, body);
  auto bit = v.find(body);
  if (bit == v.end()) throw ConfigError{body_path, "missing"};
  if (node.entry) {
    if (!bit->is_object()) throw ConfigError{body_path, "expected an object, got " + dump(*bit)};
    node.args = read_args(*bit, *node.entry, body_path);
  } else {
    if (!bit->is_array()) {
      throw ConfigError{body_path, "expected a list of layers, got " + dump(*bit)};
    }
    std::map<std::string, std::string> names;
    for (size_t i = 0; i < bit->size(); ++i) {
      node.children.push_back(
          read_node((*bit)[i], body_path + "[" + std::to_string(i) + "]", false, &names));
    }
  }
  return node;
}

json parse(const std::string& text) {
  // Duplicate keys are an error (the parser would keep one of them silently).
  std::vector<std::set<std::string>> keys;
  const json::parser_callback_t reject_duplicates = [&keys](int, json::parse_event_t event,
                                                            json& parsed) {
    if (event == json::parse_event_t::object_start) {
      keys.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      keys.pop_back();
    } else if (event == json::parse_event_t::key) {
      const auto key = parsed.get<std::string>();
      if (!keys.back().insert(key).second) {
        throw ConfigError{"", "malformed JSON: duplicate key " + dump(json(key))};
      }
    }
    return true;
  };
  try {
    return json::parse(text, reject_duplicates);
  } catch (const json::exception& e) {
    throw ConfigError{"", std::string("malformed JSON: ") + e.what()};
  }
}

Node read(const std::string& text) {
  const json doc = parse(text);
  if (!doc.is_object()) {
    throw ConfigError{"", "the config must be a JSON object, got " + dump(doc)};
  }
  const json format = kConfigFormat;
  auto fit = doc.find("format");
  if (fit == doc.end()) throw ConfigError{"format", "missing (expected " + dump(format) + ")"};
  if (*fit != format) {
    throw ConfigError{"format", "expected " + dump(format) + ", got " + dump(*fit)};
  }
  auto vit = doc.find("version");
  if (vit == doc.end()) {
    throw ConfigError{"version", "missing (expected " + std::to_string(kConfigVersion) + ")"};
  }
  if (!is_int64(*vit)) throw ConfigError{"version", "expected an integer, got " + dump(*vit)};
  if (vit->get<int64_t>() != kConfigVersion) {
    throw ConfigError{"version", "unsupported version " + dump(*vit) + " (this heteroq reads version " +
                                     std::to_string(kConfigVersion) + ")"};
  }
  return read_node(doc, "", true, nullptr);
}

std::string error_text(const ConfigError& e) {
  return "from_config: " + (e.path.empty() ? "" : e.path + ": ") + e.detail;
}

// ---------------------------------------------------------------------------------------------
// Building.

std::string what_of(const std::exception& e) {
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) {
    return c10_error->what_without_backtrace();
  }
  return e.what();
}

void build_children(const Node& node, torch::nn::SequentialImpl& seq);

torch::nn::AnyModule build(const Node& node) {
  if (!node.entry) {
    NestedSequential seq;
    build_children(node, *seq);
    return torch::nn::AnyModule(seq);
  }
  try {
    return node.entry->build(node.args);
  } catch (const ConfigError&) {
    throw;
  } catch (const std::exception& e) {
    throw ConfigError{"", (node.path.empty() ? node.cls : node.path + " (" + node.cls + ")") +
                              ": " + what_of(e)};
  }
}

void build_children(const Node& node, torch::nn::SequentialImpl& seq) {
  for (const auto& child : node.children) seq.push_back(child.name, build(child));
}

// ---------------------------------------------------------------------------------------------
// Writing.

json write_node(const Module& m, const std::string& name, bool root,
                std::map<const Module*, std::string>* seen) {
  const std::string where = root ? "the model" : "module '" + name + "'";
  json node = json::object();
  if (root) {
    node["format"] = kConfigFormat;
    node["version"] = kConfigVersion;
  }
  if (is_sequential(m)) {
    node["class"] = kSequential;
    if (!root) node["name"] = name.substr(name.rfind('.') + 1);
    json children = json::array();
    for (const auto& item : m.named_children()) {
      const std::string child = root ? item.key() : name + "." + item.key();
      auto [it, inserted] = seen->emplace(item.value().get(), child);
      if (!inserted) {
        throw InvalidArgument("to_config: module '" + child + "' is the same module as '" +
                              it->second + "': a config cannot express shared modules");
      }
      children.push_back(write_node(*item.value(), child, false, seen));
    }
    node["layers"] = std::move(children);
    return node;
  }
  const LayerEntry* e = find_type(m);
  if (!e) {
    throw InvalidArgument("to_config: " + where + " has class " + m.name() +
                          ", which heteroq's model config does not describe (supported: "
                          "heteroq::nn::config_classes())");
  }
  node["class"] = e->cls;
  if (!root) node["name"] = name.substr(name.rfind('.') + 1);
  try {
    node["config"] = read_args(e->write(m), *e, "").values;
  } catch (const ConfigError& err) {
    throw InvalidArgument("to_config: " + where + " (" + e->cls + "): " + err.path + ": " +
                          err.detail);
  }
  return node;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

std::string to_config(const torch::nn::Module& model, int indent) {
  std::map<const Module*, std::string> seen;
  return write_node(model, "", true, &seen).dump(indent);
}

torch::nn::AnyModule module_from_config(const std::string& config_json) {
  try {
    return build(read(config_json));
  } catch (const ConfigError& e) {
    throw InvalidArgument(error_text(e));
  }
}

torch::nn::Sequential from_config(const std::string& config_json) {
  try {
    const Node root = read(config_json);
    if (root.entry) {
      throw ConfigError{"class", "the root is a " + root.cls +
                                     ", not a Sequential (heteroq::nn::module_from_config builds a "
                                     "single layer)"};
    }
    torch::nn::Sequential seq;
    build_children(root, *seq);
    return seq;
  } catch (const ConfigError& e) {
    throw InvalidArgument(error_text(e));
  }
}

std::vector<std::string> config_classes() {
  std::vector<std::string> out{kSequential};
  for (const auto& e : layers()) out.push_back(e.cls);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace heteroq::nn
