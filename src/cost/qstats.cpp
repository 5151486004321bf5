// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// print_qstats (QKeras estimate.py): operand modes, the operation-type table, operation counts,
// accumulator analysis, the printer; the walk of a torch::nn::Sequential; the operator
// heteroq::_qstats_channel_sums that both languages use for the accumulator analysis.
#include "heteroq/cost/qstats.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/util/Exception.h>
#include <torch/library.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/rnn.h>
#include <torch/utils.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <functional>
#include <iomanip>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <unordered_map>
#include <variant>

#include "heteroq/errors.h"
#include "heteroq/nn/conv.h"
#include "heteroq/nn/folded.h"
#include "heteroq/nn/layers.h"
#include "heteroq/nn/norm_pool.h"
#include "heteroq/nn/rnn.h"
#include "heteroq/ops/quantize.h"
#include "heteroq/quantizers/fixed.h"

namespace heteroq::cost {

namespace {

using json = nlohmann::ordered_json;

std::string shape_string(const std::vector<int64_t>& shape) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << "]";
  return os.str();
}

// ---- quantizer parameters, read from Quantizer::config() (QKeras's names) ----

const SpecValue* config_value(const SpecKeywords& config, const char* key) {
  for (const auto& [k, v] : config) {
    if (k == key) return &v;
  }
  return nullptr;
}

double config_number(const SpecKeywords& config, const char* key, double fallback) {
  const SpecValue* v = config_value(config, key);
  if (!v) return fallback;
  if (const auto* i = std::get_if<int64_t>(v)) return static_cast<double>(*i);
  if (const auto* d = std::get_if<double>(v)) return *d;
  if (const auto* b = std::get_if<bool>(v)) return *b ? 1.0 : 0.0;
  return fallback;
}

bool config_flag(const SpecKeywords& config, const char* key, bool fallback) {
  return config_number(config, key, fallback ? 1.0 : 0.0) != 0.0;
}

bool config_is_string(const SpecKeywords& config, const char* key) {
  const SpecValue* v = config_value(config, key);
  return v && std::holds_alternative<std::string>(*v);
}

// ---- the values an operand takes, for the accumulator analysis ----

// [lo, hi], the smallest and largest value the quantizer outputs.
std::pair<double, double> value_range(const QuantizerPtr& q) {
  const SpecKeywords config = q->config();
  const std::string name = q->name();
  const auto bounds = [&] { return std::make_pair(q->min(), q->max()); };
  // Data-dependent scales (alpha "auto"/"auto_po2"): QKeras's constraint bounds.
  if (config_is_string(config, "alpha")) return bounds();
  // Outputs not monotone in x (hswish), random (bernoulli) or blended with x (qnoise_factor < 1):
  // the ends of the grid (QKeras's range()), else the bounds.
  if (name == "quantized_hswish" || name == "bernoulli" ||
      config_number(config, "qnoise_factor", 1.0) < 1.0) {
    try {
      const std::vector<double> r = q->range();
      if (!r.empty()) {
        const auto [lo, hi] = std::minmax_element(r.begin(), r.end());
        return {*lo, *hi};
      }
    } catch (const InvalidArgument&) {
    }
    return bounds();
  }
  // Monotone quantizers: their outputs at the ends of the real line (tighter than range() where a
  // max_value caps a power-of-two grid).
  const at::Tensor y =
      q->forward(at::tensor({-1e30f, 1e30f}, at::kFloat)).to(at::kDouble).contiguous();
  return {y[0].item<double>(), y[1].item<double>()};
}

// ---- layer types without multiply-accumulates whose output keeps the input's type ----

const std::set<std::string>& pass_through_types() {
  static const std::set<std::string> types = {
      // heteroq
      "QBatchNorm1d", "QBatchNorm2d", "QAvgPool2d", "QGlobalAvgPool2d",
      // normalization
      "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "InstanceNorm1d", "InstanceNorm2d",
      "InstanceNorm3d", "LayerNorm", "GroupNorm", "LocalResponseNorm",
      // pooling
      "MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d",
      "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool1d",
      "AdaptiveMaxPool2d", "AdaptiveMaxPool3d", "LPPool1d", "LPPool2d",
      // shapes, padding, dropout
      "Identity", "Flatten", "Unflatten", "RecurrentOutput", "Dropout", "Dropout1d", "Dropout2d", "Dropout3d",
      "AlphaDropout", "FeatureAlphaDropout", "ZeroPad2d", "ConstantPad1d", "ConstantPad2d",
      "ConstantPad3d", "ReflectionPad1d", "ReflectionPad2d", "ReflectionPad3d", "ReplicationPad1d",
      "ReplicationPad2d", "ReplicationPad3d", "Upsample", "PixelShuffle", "PixelUnshuffle",
      "ChannelShuffle",
      // float activations
      "ReLU", "ReLU6", "LeakyReLU", "PReLU", "RReLU", "ELU", "SELU", "CELU", "GELU", "SiLU", "Mish",
      "Sigmoid", "Tanh", "Hardtanh", "Hardswish", "Hardsigmoid", "Softmax", "Softmin", "LogSoftmax",
      "Softmax2d", "Softplus", "Softsign", "Tanhshrink", "Hardshrink", "Softshrink", "Threshold",
      "LogSigmoid"};
  return types;
}

bool is_mac(LayerKind kind) {
  return kind == LayerKind::kDense || kind == LayerKind::kConv ||
         kind == LayerKind::kConvTranspose || kind == LayerKind::kSeparableConv ||
         kind == LayerKind::kRecurrent;
}

int64_t product(const std::vector<int64_t>& v, size_t from, size_t to) {
  int64_t p = 1;
  for (size_t i = from; i < to && i < v.size(); ++i) p *= v[i];
  return p;
}

// ---- checks of a LayerInfo's geometry ----

[[noreturn]] void bad_layer(const LayerInfo& l, const std::string& what) {
  throw InvalidArgument("qstats: layer '" + l.name + "' (" + l.type + "): " + what);
}

void check_geometry(const LayerInfo& l) {
  const auto rank_in = l.input_shape.size(), rank_out = l.output_shape.size();
  if (l.in_channels <= 0 || l.out_channels <= 0) {
    bad_layer(l, "`in_channels` and `out_channels` must be > 0, got " +
                     std::to_string(l.in_channels) + " and " + std::to_string(l.out_channels));
  }
  for (const auto* shape : {&l.input_shape, &l.output_shape}) {
    for (int64_t d : *shape) {
      if (d < 0) bad_layer(l, "negative size in shape " + shape_string(*shape));
    }
  }
  if (l.kind == LayerKind::kRecurrent) {
    if (l.gates != 1 && l.gates != 3 && l.gates != 4) {
      bad_layer(
          l, "`gates` must be 1 (simple RNN), 4 (LSTM) or 3 (GRU), got " + std::to_string(l.gates));
    }
    if (l.num_layers < 1) {
      bad_layer(l, "`num_layers` must be >= 1, got " + std::to_string(l.num_layers));
    }
    if (rank_in != 3 || rank_out != 3) {
      bad_layer(l,
                std::string("expects a batched input of rank 3 (") +
                    (l.batch_first ? "(N, L, input_size) with batch_first" : "(L, N, input_size)") +
                    "), got input " + shape_string(l.input_shape) + " and output " +
                    shape_string(l.output_shape) +
                    " (the input shape must include the batch dimension)");
    }
    const int64_t features = (l.bidirectional ? 2 : 1) * l.out_channels;
    if (l.input_shape[2] != l.in_channels || l.output_shape[2] != features ||
        l.input_shape[0] != l.output_shape[0] || l.input_shape[1] != l.output_shape[1]) {
      bad_layer(l, "shapes " + shape_string(l.input_shape) + " -> " + shape_string(l.output_shape) +
                       " do not match input_size " + std::to_string(l.in_channels) +
                       " -> output features " + std::to_string(features) + " (hidden_size " +
                       std::to_string(l.out_channels) + (l.bidirectional ? ", bidirectional" : "") +
                       ")");
    }
    return;
  }
  if (l.kind == LayerKind::kDense) {
    if (rank_in < 2 || rank_out < 2) {
      bad_layer(l, "expects a batched input of rank >= 2 (the batch dimension first), got input " +
                       shape_string(l.input_shape) + " and output " + shape_string(l.output_shape));
    }
    if (l.input_shape.back() != l.in_channels || l.output_shape.back() != l.out_channels) {
      bad_layer(l, "shapes " + shape_string(l.input_shape) + " -> " + shape_string(l.output_shape) +
                       " do not match " + std::to_string(l.in_channels) + " -> " +
                       std::to_string(l.out_channels) + " features");
    }
    return;
  }
  if (l.kernel_size.empty()) bad_layer(l, "`kernel_size` is empty");
  for (int64_t k : l.kernel_size) {
    if (k <= 0) bad_layer(l, "`kernel_size` must be > 0, got " + shape_string(l.kernel_size));
  }
  const size_t rank = l.kernel_size.size() + 2;
  if (rank_in != rank || rank_out != rank) {
    bad_layer(l, "expects a batched input of rank " + std::to_string(rank) +
                     " (N, C, ...), got input " + shape_string(l.input_shape) + " and output " +
                     shape_string(l.output_shape) +
                     " (the input shape must include the batch dimension)");
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
  if (l.kind == LayerKind::kSeparableConv && l.depth_multiplier <= 0) {
    bad_layer(l, "`depth_multiplier` must be > 0, got " + std::to_string(l.depth_multiplier));
  }
}

// ---- operations and weights per layer kind ----

// The type flowing between layers: a quantizer's values, float, or unknown.
struct Flow {
  enum State { kQuantized, kFloat, kUnknown } state;
  QuantizerPtr quantizer;
};

Flow quantized_or_float(const QuantizerPtr& q) {
  return q ? Flow{Flow::kQuantized, q} : Flow{Flow::kFloat, nullptr};
}

// A recurrent layer's output: a simple RNN's h = act(.) has its activation's type; an LSTM's
// h = o act(c) and a GRU's h = (1 - z) n + z h are products and blends of gate values, float.
Flow recurrent_output(const LayerInfo& l) {
  return l.gates == 1 ? quantized_or_float(l.quantizer("activation")) : Flow{Flow::kFloat, nullptr};
}

// One multiply-accumulate stage: its part name, weight quantizer, count of products per sample,
// count of kernel values and their group's name ("": counted in another stage's group), and the
// type of the values the kernel multiplies.
struct Stage {
  std::string part;
  QuantizerPtr weight_quantizer;
  int64_t operations;
  int64_t weights;
  std::string weight_name;
  Flow input;
};

QuantizerPtr kernel_quantizer(const LayerInfo& l) {
  for (const auto& [slot, q] : l.quantizers) {
    if (slot == "kernel_quantizer" || slot == "depthwise_quantizer") return q;
  }
  return nullptr;
}

// The stages of layer `l` whose input has the type `input`.
std::vector<Stage> layer_stages(const LayerInfo& l, const Flow& input) {
  const int64_t k = product(l.kernel_size, 0, l.kernel_size.size());
  const int64_t in = l.in_channels, out = l.out_channels, g = l.groups;
  switch (l.kind) {
    case LayerKind::kDense: {
      // Every position of (N, ..., in) is one vector-matrix product (QKeras: size_i * size_o).
      const int64_t positions = product(l.input_shape, 1, l.input_shape.size() - 1);
      return {{"", kernel_quantizer(l), positions * in * out, in * out, "weights", input}};
    }
    case LayerKind::kConv: {
      // Each output value sums (in / groups) * k products (QKeras QConv2D: Ho Wo Co Kh Kw Ci;
      // QDepthwiseConv2D: Kh Kw Ho Wo Ci, the same for depth_multiplier 1).
      const int64_t outputs = product(l.output_shape, 2, l.output_shape.size()) * out;
      return {
          {"", kernel_quantizer(l), outputs * (in / g) * k, out * (in / g) * k, "weights", input}};
    }
    case LayerKind::kConvTranspose: {
      // Each input value is multiplied by (out / groups) * k kernel values.
      const int64_t inputs = product(l.input_shape, 2, l.input_shape.size()) * in;
      return {
          {"", kernel_quantizer(l), inputs * (out / g) * k, in * (out / g) * k, "weights", input}};
    }
    case LayerKind::kSeparableConv: {
      const int64_t mid = in * l.depth_multiplier;
      const int64_t positions = product(l.output_shape, 2, l.output_shape.size());
      return {{"depthwise", l.quantizer("depthwise_quantizer"), positions * mid * k, mid * k,
               "weights_0", input},
              {"pointwise", l.quantizer("pointwise_quantizer"), positions * out * mid, out * mid,
               "weights_1", input}};
    }
    case LayerKind::kRecurrent: {
      // Per layer and direction, at each of the T steps: the gates' G H rows of the input kernel
      // times x_t (layer 0: the layer's input; later layers: the previous layer's output, D H
      // features), and of the recurrent kernel times the previous state h.
      const int64_t directions = l.bidirectional ? 2 : 1, rows = l.gates * out;
      const int64_t steps = l.input_shape[l.batch_first ? 1 : 0];
      const Flow output = recurrent_output(l);
      const QuantizerPtr state_quantizer = l.quantizer("state_quantizer");
      const Flow state = state_quantizer ? Flow{Flow::kQuantized, state_quantizer} : output;
      // Keras's reset_after = false GRU: the candidate's H rows multiply r h, a product of gate and
      // state values that no quantizer requantizes.
      const bool reset_before = l.gates == 3 && !l.reset_after;
      const int64_t state_rows = reset_before ? rows - out : rows;
      const QuantizerPtr recurrent_quantizer = l.quantizer("recurrent_quantizer");
      std::vector<Stage> stages;
      for (int64_t layer = 0; layer < l.num_layers; ++layer) {
        const std::string suffix = l.num_layers == 1 ? "" : "_l" + std::to_string(layer);
        const int64_t width = layer == 0 ? in : directions * out;
        stages.push_back({"kernel" + suffix, l.quantizer("kernel_quantizer"),
                          directions * steps * rows * width, directions * rows * width,
                          "kernel" + suffix, layer == 0 ? input : output});
        stages.push_back({"recurrent" + suffix, recurrent_quantizer,
                          directions * steps * state_rows * out, directions * rows * out,
                          "recurrent" + suffix, state});
        if (reset_before) {  // its weights are in the group "recurrent"
          stages.push_back({"recurrent_n" + suffix, recurrent_quantizer,
                            directions * steps * out * out, 0, "", Flow{Flow::kFloat, nullptr}});
        }
      }
      return stages;
    }
    default:
      return {};
  }
}

// The stored bias values: one per output channel; a recurrent layer's bias_ih and bias_hh, G H
// each per layer and direction.
int64_t bias_count(const LayerInfo& l) {
  if (!l.bias) return 0;
  if (l.kind == LayerKind::kRecurrent) {
    return l.num_layers * (l.bidirectional ? 2 : 1) * 2 * l.gates * l.out_channels;
  }
  return l.out_channels;
}

// What qstats() asks of a quantizer: its spec (once per quantizer object and call), its operand
// type and the range of its values. The last two are functions of the quantizer's spec alone
// (quantizers are immutable and get_quantizer(spec) rebuilds an equal one), so they are kept per
// spec for the process (value_range() runs a forward pass); the range only for the quantizers
// whose forward pass is deterministic.
class QuantizerFacts {
 public:
  OperandType type(const QuantizerPtr& q) {
    if (!q) return operand_type(q);
    Entry& e = entry(q);
    if (!e.type) {
      if (const auto cached = shared_lookup(*e.spec, &Shared::type)) {
        e.type = cached;
      } else {
        e.type = operand_type(q);
        shared_store(*e.spec, &Shared::type, *e.type);
      }
    }
    return *e.type;
  }
  const std::string& spec(const QuantizerPtr& q) {
    if (!q) return empty_;
    return *entry(q).spec;
  }
  std::pair<double, double> range(const QuantizerPtr& q) {
    Entry& e = entry(q);
    if (!e.range) {
      const std::string name = q->name();
      const bool deterministic = name == "quantized_bits" || name == "quantized_relu" ||
                                 name == "quantized_tanh" || name == "quantized_sigmoid" ||
                                 name == "quantized_ulaw" || name == "quantized_po2" ||
                                 name == "quantized_relu_po2";
      if (!deterministic) {
        e.range = value_range(q);
      } else if (const auto cached = shared_lookup(*e.spec, &Shared::range)) {
        e.range = cached;
      } else {
        e.range = value_range(q);
        shared_store(*e.spec, &Shared::range, *e.range);
      }
    }
    return *e.range;
  }
  std::optional<OperandType> operand(const Flow& flow) {
    switch (flow.state) {
      case Flow::kQuantized:
        return type(flow.quantizer);
      case Flow::kFloat:
        return OperandType{};
      case Flow::kUnknown:
        break;
    }
    return std::nullopt;
  }

 private:
  struct Entry {
    const Quantizer* q;
    std::optional<std::string> spec;
    std::optional<OperandType> type;
    std::optional<std::pair<double, double>> range;
  };
  struct Shared {
    std::optional<OperandType> type;
    std::optional<std::pair<double, double>> range;
  };
  static std::mutex& shared_mutex() {
    static std::mutex m;
    return m;
  }
  static std::unordered_map<std::string, Shared>& shared() {
    static auto* map = new std::unordered_map<std::string, Shared>();  // never destroyed
    return *map;
  }
  template <typename T>
  static std::optional<T> shared_lookup(const std::string& spec, std::optional<T> Shared::*field) {
    std::lock_guard<std::mutex> lock(shared_mutex());
    const auto it = shared().find(spec);
    if (it == shared().end()) return std::nullopt;
    return it->second.*field;
  }
  template <typename T>
  static void shared_store(const std::string& spec, std::optional<T> Shared::*field,
                           const T& value) {
    std::lock_guard<std::mutex> lock(shared_mutex());
    auto& map = shared();
    if (map.size() >= 4096 && map.find(spec) == map.end()) map.clear();  // bounded
    map[spec].*field = value;
  }
  Entry& entry(const QuantizerPtr& q) {
    for (Entry& e : entries_) {
      if (e.q == q.get()) return e;
    }
    entries_.push_back(Entry{q.get(), q->to_string(), std::nullopt, std::nullopt});
    return entries_.back();
  }
  std::deque<Entry> entries_;  // stable references
  std::string empty_;
};

// The accumulator range for inputs in [lo, hi] (widened to contain 0: zero padding, and QKeras's
// `(x_max > 0) * x_max`, `(x_min < 0) * x_min`).
AccumulatorStats accumulator(const LayerInfo& l, const QuantizerPtr& input, QuantizerFacts& facts) {
  // A recurrent layer: the first layer's input projection, G H rows per direction.
  const int64_t rows = l.kind == LayerKind::kRecurrent
                           ? (l.bidirectional ? 2 : 1) * l.gates * l.out_channels
                           : l.out_channels;
  if (static_cast<int64_t>(l.channel_sums.size()) != rows) {
    bad_layer(l, "`channel_sums` has " + std::to_string(l.channel_sums.size()) +
                     " rows, expected one per output channel (" + std::to_string(rows) +
                     (l.kind == LayerKind::kRecurrent ? ": directions x gates x hidden_size" : "") +
                     ")");
  }
  auto [lo, hi] = facts.range(input);
  lo = std::min(lo, 0.0);
  hi = std::max(hi, 0.0);
  AccumulatorStats a;
  a.min = std::numeric_limits<double>::infinity();
  a.max = -std::numeric_limits<double>::infinity();
  for (const auto& [p, n, c] : l.channel_sums) {
    if (!(p >= 0) || !(n <= 0) || !std::isfinite(c)) {
      bad_layer(l, "`channel_sums` rows must be {P >= 0, N <= 0, finite bias}");
    }
    a.min = std::min(a.min, p * lo + n * hi + c);
    a.max = std::max(a.max, p * hi + n * lo + c);
  }
  const double magnitude = std::max(std::fabs(a.min), std::fabs(a.max));
  if (!std::isfinite(magnitude)) bad_layer(l, "the accumulator range is not finite");
  a.bits = magnitude > 0 ? static_cast<int64_t>(std::ceil(std::log2(magnitude))) : 0;
  return a;
}

// ---- printing ----

// Python's "{:N}" for a string: left-aligned, padded to N.
std::string pad(const std::string& s, size_t n) {
  return s.size() >= n ? s : s + std::string(n - s.size(), ' ');
}

std::string number(double v) {
  std::ostringstream os;
  os << std::setprecision(6) << v;
  return os.str();
}

std::string operation_label(const LayerStats& layer, const Operation& op) {
  return op.part.empty() ? layer.name : layer.name + "." + op.part;
}

json operand_json(const std::optional<OperandType>& t) {
  if (!t) return nullptr;
  return json{{"mode", static_cast<int>(t->mode)},
              {"mode_name", operand_mode_name(t->mode)},
              {"bits", t->bits},
              {"signed", t->is_signed}};
}

// ---- the channel-sums operator ----

// The values of a CPU tensor of floats or doubles as doubles (exact), row-major; false for other
// tensors.
bool cpu_doubles(const at::Tensor& t, std::vector<double>& out) {
  if (!t.device().is_cpu() || t.is_complex()) return false;
  if (t.scalar_type() != at::kDouble && t.scalar_type() != at::kFloat) return false;
  const at::Tensor c = t.contiguous();
  const auto n = static_cast<size_t>(c.numel());
  if (c.scalar_type() == at::kDouble) {
    const double* p = c.data_ptr<double>();
    out.assign(p, p + n);
  } else {
    const float* p = c.data_ptr<float>();
    out.assign(p, p + n);
  }
  return true;
}

// channel_sums_kernel without tensor operations, for CPU weights without `input_sums`, when every
// sum is exact whatever the order of its additions (then it equals the tensor operations' sums
// bit for bit): the values are multiples of 2^e (e: the lowest set bit among them) and their
// absolute sum is below 2^(52 + e), so every partial sum is a representable multiple of 2^e.
// nullopt: take the general path (which also reports every error).
std::optional<at::Tensor> exact_channel_sums(const at::Tensor& weight,
                                             const c10::optional<at::Tensor>& bias, int64_t groups,
                                             bool transposed) {
  if (weight.numel() == 0) return std::nullopt;
  const int64_t d0 = weight.size(0), d1 = weight.size(1);
  if (d0 % groups != 0) return std::nullopt;
  const int64_t taps = weight.numel() / (d0 * d1);
  const int64_t out = transposed ? d1 * groups : d0;
  const bool has_bias = bias.has_value() && bias->defined();
  if (has_bias && bias->numel() != out) return std::nullopt;
  std::vector<double> w, b;
  if (!cpu_doubles(weight, w)) return std::nullopt;
  if (has_bias && !cpu_doubles(*bias, b)) return std::nullopt;
  int lowest = std::numeric_limits<int>::max();
  double magnitude = 0;
  for (double v : w) {
    if (!std::isfinite(v)) return std::nullopt;
    if (v == 0) {
      if (std::signbit(v)) return std::nullopt;  // -0.0: the sign of a zero sum could differ
      continue;
    }
    int exponent = 0;
    const double f = std::frexp(std::fabs(v), &exponent);
    const auto m = static_cast<uint64_t>(std::ldexp(f, 53));
    lowest = std::min(lowest, exponent - 53 + __builtin_ctzll(m));
    magnitude += std::fabs(v);
  }
  if (lowest != std::numeric_limits<int>::max() &&
      !(magnitude < std::ldexp(1.0, std::min(lowest + 52, 1000)))) {
    return std::nullopt;
  }
  at::Tensor result = at::empty({out, 3}, at::TensorOptions().dtype(at::kDouble));
  double* r = result.data_ptr<double>();
  const auto add = [](double& p, double& n, double v) {
    if (v > 0) p += v;
    if (v < 0) n += v;
  };
  if (transposed) {
    // (in, out/g, k): output channel o = g (out/g) + j reads w[g (in/g) + i, j, t].
    const int64_t in_per_group = d0 / groups;
    for (int64_t o = 0; o < out; ++o) {
      const int64_t g = o / d1, j = o % d1;
      double p = 0, n = 0;
      for (int64_t i = 0; i < in_per_group; ++i) {
        const double* row = w.data() + ((g * in_per_group + i) * d1 + j) * taps;
        for (int64_t t = 0; t < taps; ++t) add(p, n, row[t]);
      }
      r[3 * o] = p;
      r[3 * o + 1] = n;
    }
  } else {
    const int64_t row_size = d1 * taps;
    for (int64_t o = 0; o < out; ++o) {
      const double* row = w.data() + o * row_size;
      double p = 0, n = 0;
      for (int64_t k = 0; k < row_size; ++k) add(p, n, row[k]);
      r[3 * o] = p;
      r[3 * o + 1] = n;
    }
  }
  for (int64_t o = 0; o < out; ++o) r[3 * o + 2] = has_bias ? b[static_cast<size_t>(o)] : 0.0;
  return result;
}

at::Tensor channel_sums_kernel(const at::Tensor& weight, const c10::optional<at::Tensor>& bias,
                               int64_t groups, bool transposed,
                               const c10::optional<at::Tensor>& input_sums) {
  TORCH_CHECK_VALUE(weight.dim() >= 2,
                    "_qstats_channel_sums: `weight` must have rank >= 2 "
                    "((out, in/groups, k...) or, transposed, (in, out/groups, k...)), got shape ",
                    weight.sizes());
  TORCH_CHECK_VALUE(groups >= 1, "_qstats_channel_sums: `groups` must be >= 1, got ", groups);
  TORCH_CHECK_VALUE(weight.is_floating_point(),
                    "_qstats_channel_sums: `weight` must be a "
                    "floating-point tensor, got ",
                    weight.scalar_type());
  if (!(input_sums.has_value() && input_sums->defined())) {
    if (auto sums = exact_channel_sums(weight, bias, groups, transposed)) return *sums;
  }
  at::Tensor w = weight.detach().to(at::kDouble);
  const int64_t taps = w.numel() / (w.size(0) * w.size(1));
  int64_t out = 0, in_per_group = 0;
  if (transposed) {
    TORCH_CHECK_VALUE(w.size(0) % groups == 0, "_qstats_channel_sums: `groups` (", groups,
                      ") must divide the input channels (", w.size(0), ")");
    in_per_group = w.size(0) / groups;
    out = w.size(1) * groups;
    // (in, out/g, k) -> (g, in/g, out/g, k) -> (g, out/g, in/g, k) -> (out, in/g, k)
    w = w.reshape({groups, in_per_group, w.size(1), taps})
            .permute({0, 2, 1, 3})
            .reshape({out, in_per_group, taps});
  } else {
    TORCH_CHECK_VALUE(w.size(0) % groups == 0, "_qstats_channel_sums: `groups` (", groups,
                      ") must divide the output channels (", w.size(0), ")");
    out = w.size(0);
    in_per_group = w.size(1);
    w = w.reshape({out, in_per_group, taps});
  }
  at::Tensor c = at::zeros({out}, w.options());
  if (bias.has_value() && bias->defined()) {
    TORCH_CHECK_VALUE(bias->numel() == out, "_qstats_channel_sums: `bias` has ", bias->numel(),
                      " values, expected one per output channel (", out, ")");
    c = bias->detach().to(at::kDouble).reshape({out}).clone();
  }
  const at::Tensor wp = w.clamp_min(0), wn = w.clamp_max(0);
  at::Tensor p, n;
  if (input_sums.has_value() && input_sums->defined()) {
    const int64_t in = in_per_group * groups;
    TORCH_CHECK_VALUE(
        input_sums->dim() == 2 && input_sums->size(0) == in && input_sums->size(1) == 3,
        "_qstats_channel_sums: `input_sums` must have shape (", in, ", 3), got ",
        input_sums->sizes());
    const at::Tensor s = input_sums->detach().to(at::kDouble);
    // The input channel each (output channel, j) pair reads: group(o) * in/g + j.
    const at::Tensor group =
        at::arange(out, w.options().dtype(at::kLong)).div(out / groups, "floor");
    const at::Tensor index = (group.unsqueeze(1) * in_per_group +
                              at::arange(in_per_group, w.options().dtype(at::kLong)).unsqueeze(0));
    const auto gather = [&](int64_t column) {  // (out, in/g, 1)
      return s.select(1, column).index_select(0, index.flatten()).reshape({out, in_per_group, 1});
    };
    const at::Tensor sp = gather(0), sn = gather(1), sc = gather(2);
    // For inputs of channel j in [P_j lo + N_j hi + c_j, P_j hi + N_j lo + c_j]: see the header.
    p = (wp * sp + wn * sn).sum({1, 2});
    n = (wp * sn + wn * sp).sum({1, 2});
    c = c + (w * sc).sum({1, 2});
  } else {
    p = wp.sum({1, 2});
    n = wn.sum({1, 2});
  }
  return at::stack({p, n, c}, 1);
}

// Runs forward passes without changing the model: eval mode (restored), no gradients.
class EvalGuard {
 public:
  explicit EvalGuard(torch::nn::Module& root) {
    for (const auto& m : root.modules(/*include_self=*/true))
      flags_.emplace_back(m, m->is_training());
    root.eval();
  }
  ~EvalGuard() {
    for (const auto& [m, training] : flags_) m->train(training);
  }
  EvalGuard(const EvalGuard&) = delete;
  EvalGuard& operator=(const EvalGuard&) = delete;

 private:
  std::vector<std::pair<std::shared_ptr<torch::nn::Module>, bool>> flags_;
  torch::NoGradGuard no_grad_;
};

std::string type_name(const torch::nn::Module& module) {
  std::string name = module.name();
  const auto template_start = name.find('<');
  if (template_start != std::string::npos) name = name.substr(0, template_start);
  const auto colon = name.rfind("::");
  if (colon != std::string::npos) name = name.substr(colon + 2);
  if (name.size() > 4 && name.compare(name.size() - 4, 4, "Impl") == 0) {
    name = name.substr(0, name.size() - 4);
  }
  return name;
}

std::vector<std::array<double, 3>> to_rows(const at::Tensor& sums) {
  const at::Tensor s = sums.contiguous();
  std::vector<std::array<double, 3>> rows(static_cast<size_t>(s.size(0)));
  const double* d = s.data_ptr<double>();
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = {d[3 * i], d[3 * i + 1], d[3 * i + 2]};
  return rows;
}

std::optional<at::Tensor> defined_or_null(const at::Tensor& t) {
  if (t.defined()) return t;
  return std::nullopt;
}

// LayerInfo::values: the defined tensors among `groups`, detached copies (a snapshot).
void set_values(LayerInfo& info, std::vector<std::pair<std::string, at::Tensor>> groups) {
  info.values.clear();
  for (auto& [name, t] : groups) {
    if (t.defined()) info.values.emplace_back(name, t.detach().clone());
  }
}

template <size_t D>
std::vector<int64_t> to_vector(const torch::ExpandingArray<D>& a) {
  return std::vector<int64_t>(a->begin(), a->end());
}

// A heteroq convolution (QConv1d/2d, QConvTranspose2d).
template <typename Conv>
void describe_qconv(const Conv& m, LayerInfo& info, LayerKind kind) {
  info.kind = kind;
  info.in_channels = m.options.in_channels();
  info.out_channels = m.options.out_channels();
  info.groups = m.options.groups();
  info.kernel_size = to_vector(m.options.kernel_size());
  if (kind == LayerKind::kConv) {  // heteroq's convolutions pad with zeros
    info.stride = to_vector(m.options.stride());
    info.padding = to_vector(m.options.padding());
    info.dilation = to_vector(m.options.dilation());
  }
  info.bias = m.bias.defined();
  info.quantizers = {{"kernel_quantizer", m.options.kernel_quantizer().get()},
                     {"bias_quantizer", m.options.bias_quantizer().get()}};
  const at::Tensor w = m.quantized_weight(), b = m.quantized_bias();
  info.channel_sums = to_rows(accumulator_channel_sums(w, defined_or_null(b), info.groups,
                                                       kind == LayerKind::kConvTranspose));
  set_values(info, {{"weights", w}, {"bias", b}});
}

// A torch convolution (Conv1d/2d/3d, ConvTranspose1d/2d/3d).
template <typename Conv>
void describe_torch_conv(const Conv& m, LayerInfo& info) {
  const bool transposed = m.options.transposed();
  info.kind = transposed ? LayerKind::kConvTranspose : LayerKind::kConv;
  info.in_channels = m.options.in_channels();
  info.out_channels = m.options.out_channels();
  info.groups = m.options.groups();
  info.kernel_size = to_vector(m.options.kernel_size());
  info.bias = m.bias.defined();
  info.channel_sums =
      to_rows(accumulator_channel_sums(m.weight, defined_or_null(m.bias), info.groups, transposed));
  set_values(info, {{"weights", m.weight}, {"bias", m.bias}});
}

template <typename Separable>
void describe_separable(const Separable& m, LayerInfo& info) {
  info.kind = LayerKind::kSeparableConv;
  info.in_channels = m.options.in_channels();
  info.out_channels = m.options.out_channels();
  info.depth_multiplier = m.options.depth_multiplier();
  info.kernel_size = to_vector(m.options.kernel_size());
  info.bias = m.pointwise->bias.defined();
  info.quantizers = {{"depthwise_quantizer", m.options.depthwise_quantizer().get()},
                     {"pointwise_quantizer", m.options.pointwise_quantizer().get()},
                     {"bias_quantizer", m.options.bias_quantizer().get()}};
  const at::Tensor dw = m.depthwise->quantized_weight(), pw = m.pointwise->quantized_weight(),
                   b = m.pointwise->quantized_bias();
  const at::Tensor depthwise = accumulator_channel_sums(dw, std::nullopt, info.in_channels, false);
  info.channel_sums =
      to_rows(accumulator_channel_sums(pw, defined_or_null(b), 1, false, depthwise));
  set_values(info, {{"weights_0", dw}, {"weights_1", pw}, {"bias", b}});
}

template <typename Folded>
void describe_folded(const Folded& m, LayerInfo& info, LayerKind kind) {
  info.kind = kind;
  const auto folded = m.get_folded_weights();
  const QuantizerPtr& kq = m.options.kernel_quantizer().get();
  const QuantizerPtr& bq = m.options.bias_quantizer().get();
  const at::Tensor w = kq ? kq->forward(folded[0]) : folded[0];
  const at::Tensor b = bq ? bq->forward(folded[1]) : folded[1];
  info.bias = true;  // the folded bias beta + gamma (b - mean) / sqrt(var + eps)
  info.quantizers = {{"kernel_quantizer", kq}, {"bias_quantizer", bq}};
  if constexpr (std::is_same_v<Folded, nn::QConv2dBatchNormImpl>) {
    info.in_channels = m.options.in_channels();
    info.out_channels = m.options.out_channels();
    info.groups = m.options.groups();
    info.kernel_size = to_vector(m.options.kernel_size());
    info.stride = to_vector(m.options.stride());
    info.padding = to_vector(m.options.padding());
    info.dilation = to_vector(m.options.dilation());
  } else {
    info.in_channels = m.options.in_features();
    info.out_channels = m.options.out_features();
  }
  info.channel_sums = to_rows(accumulator_channel_sums(w, b, info.groups, false));
  set_values(info, {{"weights", w}, {"bias", b}});
}

// The channel sums of a recurrent layer's first input projection `x W_ih^T + b_ih`, both
// directions stacked; `param` gives a parameter as the forward pass uses it, by PyTorch's name.
at::Tensor input_projection_sums(const std::function<at::Tensor(const std::string&)>& param,
                                 bool bidirectional, bool bias) {
  std::vector<at::Tensor> w = {param("weight_ih_l0")}, b;
  if (bidirectional) w.push_back(param("weight_ih_l0_reverse"));
  if (bias) {
    b.push_back(param("bias_ih_l0"));
    if (bidirectional) b.push_back(param("bias_ih_l0_reverse"));
  }
  std::optional<at::Tensor> bias_sums;
  if (bias) bias_sums = at::cat(b, 0);
  return accumulator_channel_sums(at::cat(w, 0), bias_sums, 1, false);
}

// LayerInfo::values of a recurrent layer: per layer "kernel" and "recurrent" (the directions
// stacked along dim 0), then "bias" (bias_ih, bias_hh per layer and direction, flattened).
void recurrent_values(const std::function<at::Tensor(const std::string&)>& param, LayerInfo& info) {
  std::vector<std::pair<std::string, at::Tensor>> groups;
  std::vector<at::Tensor> biases;
  for (int64_t l = 0; l < info.num_layers; ++l) {
    const std::string layer = "_l" + std::to_string(l);
    const std::string suffix = info.num_layers == 1 ? "" : layer;
    std::vector<std::string> directions = {layer};
    if (info.bidirectional) directions.push_back(layer + "_reverse");
    std::vector<at::Tensor> ih, hh;
    for (const std::string& d : directions) {
      ih.push_back(param("weight_ih" + d));
      hh.push_back(param("weight_hh" + d));
      if (info.bias) {
        biases.push_back(param("bias_ih" + d).reshape({-1}));
        biases.push_back(param("bias_hh" + d).reshape({-1}));
      }
    }
    groups.emplace_back("kernel" + suffix, at::cat(ih, 0));
    groups.emplace_back("recurrent" + suffix, at::cat(hh, 0));
  }
  if (!biases.empty()) groups.emplace_back("bias", at::cat(biases, 0));
  set_values(info, std::move(groups));
}

// LayerInfo::values of a batch norm in eval mode with running statistics: y = x scale + shift
// per channel (QBatchNorm: QKeras's inv and Qb(beta) - Qm(mean) inv, as its forward pass).
void batch_norm_values(const at::Tensor& inv, const at::Tensor& mean, const at::Tensor& beta,
                       LayerInfo& info) {
  const at::Tensor shift = beta.defined() ? beta - mean * inv : -(mean * inv);
  set_values(info, {{"scale", inv}, {"shift", shift}});
}

template <typename BN>
void describe_qbatch_norm(const BN& m, LayerInfo& info) {
  const auto& o = m.options;
  info.quantizers = {{"gamma_quantizer", o.gamma_quantizer().get()},
                     {"beta_quantizer", o.beta_quantizer().get()},
                     {"mean_quantizer", o.mean_quantizer().get()},
                     {"variance_quantizer", o.variance_quantizer().get()},
                     {"inverse_quantizer", o.inverse_quantizer().get()}};
  if (m.is_training() || !o.track_running_stats()) return;
  const auto q = [](const nn::QuantizerArg& slot, const at::Tensor& t) {
    return slot && t.defined() ? slot.get()->forward(t) : t;
  };
  const std::optional<at::Tensor> gamma = defined_or_null(m.weight);
  at::Tensor inv;
  if (o.inverse_quantizer()) {
    inv = q(o.inverse_quantizer(), ops::_bn_inverse(m.running_var, gamma, o.eps()));
  } else {
    inv = ops::_bn_inverse(q(o.variance_quantizer(), m.running_var),
                           defined_or_null(q(o.gamma_quantizer(), m.weight)), o.eps());
  }
  batch_norm_values(inv, q(o.mean_quantizer(), m.running_mean), q(o.beta_quantizer(), m.bias),
                    info);
}

template <typename BN>
void describe_torch_batch_norm(const BN& m, LayerInfo& info) {
  if (m.is_training() || !m.options.track_running_stats()) return;
  batch_norm_values(ops::_bn_inverse(m.running_var, defined_or_null(m.weight), m.options.eps()),
                    m.running_mean, m.bias, info);
}

// The recurrent geometry of a heteroq or torch RNN's options.
template <typename Options>
void recurrent_geometry(const Options& o, int64_t gates, LayerInfo& info) {
  info.kind = LayerKind::kRecurrent;
  info.in_channels = o.input_size();
  info.out_channels = o.hidden_size();
  info.gates = gates;
  info.num_layers = o.num_layers();
  info.bidirectional = o.bidirectional();
  info.batch_first = o.batch_first();
  info.bias = o.bias();
}

// QSimpleRNN (G = 1), QLSTM (4), QGRU (3).
template <typename RNN>
void describe_qrnn(const RNN& m, int64_t gates, LayerInfo& info) {
  const auto& o = m.options;
  recurrent_geometry(o, gates, info);
  info.quantizers = {{"kernel_quantizer", o.kernel_quantizer().get()},
                     {"recurrent_quantizer", o.recurrent_quantizer().get()},
                     {"bias_quantizer", o.bias_quantizer().get()},
                     {"state_quantizer", o.state_quantizer().get()},
                     {"activation", o.activation().quantizer()}};
  if constexpr (!std::is_same_v<RNN, nn::QSimpleRNNImpl>) {
    info.quantizers.emplace_back("recurrent_activation", o.recurrent_activation().quantizer());
  }
  const auto params = m.quantized_parameters();
  const auto param = [&](const std::string& name) { return params[name]; };
  info.channel_sums = to_rows(input_projection_sums(param, info.bidirectional, info.bias));
  recurrent_values(param, info);
}

// torch's RNN (G = 1), LSTM (4), GRU (3): float weights.
template <typename RNN>
void describe_torch_rnn(const RNN& m, int64_t gates, LayerInfo& info) {
  recurrent_geometry(m.options_base, gates, info);
  const auto params = m.named_parameters(/*recurse=*/false);
  const auto param = [&](const std::string& name) { return params[name]; };
  info.channel_sums = to_rows(input_projection_sums(param, info.bidirectional, info.bias));
  recurrent_values(param, info);
}

// The tensor a layer passes on: a recurrent layer's output sequence (the first element of its
// `(output, state)`), else the layer's output.
torch::Tensor layer_forward(torch::nn::AnyModule& any, const std::shared_ptr<torch::nn::Module>& m,
                            const torch::Tensor& x) {
  if (auto r = std::dynamic_pointer_cast<nn::QSimpleRNNImpl>(m)) return std::get<0>(r->forward(x));
  if (auto r = std::dynamic_pointer_cast<nn::QLSTMImpl>(m)) return std::get<0>(r->forward(x));
  if (auto r = std::dynamic_pointer_cast<nn::QGRUImpl>(m)) return std::get<0>(r->forward(x));
  if (auto r = std::dynamic_pointer_cast<torch::nn::RNNImpl>(m)) return std::get<0>(r->forward(x));
  if (auto r = std::dynamic_pointer_cast<torch::nn::LSTMImpl>(m)) return std::get<0>(r->forward(x));
  if (auto r = std::dynamic_pointer_cast<torch::nn::GRUImpl>(m)) return std::get<0>(r->forward(x));
  return any.forward(x);
}

void walk(torch::nn::SequentialImpl& seq, const std::string& prefix, torch::Tensor& x,
          std::vector<LayerInfo>& layers) {
  const auto names = seq.named_children();
  size_t i = 0;
  for (auto it = seq.begin(); it != seq.end(); ++it, ++i) {
    const std::shared_ptr<torch::nn::Module> module = it->ptr();
    const std::string key =
        (i < names.size() && names[i].value() == module) ? names[i].key() : std::to_string(i);
    const std::string name = prefix.empty() ? key : prefix + "." + key;
    if (auto nested = std::dynamic_pointer_cast<torch::nn::SequentialImpl>(module)) {
      walk(*nested, name, x, layers);
      continue;
    }
    const std::vector<int64_t> input_shape = x.sizes().vec();
    torch::Tensor y;
    try {
      y = layer_forward(*it, module, x);
    } catch (const std::exception& e) {
      std::string what = e.what();
      if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) {
        what = c10_error->what_without_backtrace();
      }
      throw InvalidArgument("qstats: the forward pass of layer '" + name + "' (" +
                            type_name(*module) + ") failed on an input of shape " +
                            shape_string(input_shape) +
                            " (check `input_shape`, batch dimension "
                            "included): " +
                            what);
    }
    layers.push_back(describe_layer(*module, name, input_shape, y.sizes().vec()));
    x = y;
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Operand modes and operation types

// ---------------------------------------------------------------------------------------------
// Quantizers with widths per channel or element

QuantizerPtr cost_quantizer(const QuantizerPtr& q) {
  const auto* fixed = dynamic_cast<const FixedQuantizer*>(q.get());
  if (!fixed) return q;
  // k, i, f broadcast together; the largest of each over the elements of width > 0.
  const at::Tensor k = fixed->keep_negative().to(at::kDouble);
  const at::Tensor i = fixed->int_bits().to(at::kDouble);
  const at::Tensor f = fixed->frac_bits().to(at::kDouble);
  const at::Tensor width = k + i + f;
  const at::Tensor live = width.gt(0);
  if (!live.any().item<bool>()) {
    return get_quantizer("quantized_bits(1,0,keep_negative=False,alpha=1)");
  }
  const auto largest = [&](const at::Tensor& t) {
    return static_cast<int64_t>(t.expand_as(width).masked_select(live).max().item<double>());
  };
  const int64_t kk = largest(k), ii = largest(i), ff = std::max<int64_t>(largest(f), 0);
  return get_quantizer("quantized_bits(" + std::to_string(kk + ii + ff) + "," +
                       std::to_string(ii) + ",keep_negative=" + (kk > 0 ? "True" : "False") +
                       ",alpha=1)");
}

bool has_cost_replacements(const std::vector<LayerInfo>& layers, const QuantizerPtr& extra) {
  if (dynamic_cast<const FixedQuantizer*>(extra.get())) return true;
  for (const LayerInfo& l : layers) {
    for (const auto& [slot, q] : l.quantizers) {
      if (dynamic_cast<const FixedQuantizer*>(q.get())) return true;
    }
  }
  return false;
}

std::vector<LayerInfo> with_cost_quantizers(const std::vector<LayerInfo>& layers) {
  std::vector<LayerInfo> out = layers;
  for (LayerInfo& l : out) {
    for (auto& slot : l.quantizers) slot.second = cost_quantizer(slot.second);
  }
  return out;
}

OperandType operand_type(const QuantizerPtr& quantizer) {
  if (!quantizer) return {OperandMode::kFloat, 32, true};
  const QuantizerPtr q = cost_quantizer(quantizer);
  const std::string name = q->name();
  const SpecKeywords config = q->config();
  const int64_t bits = q->bits();
  const auto integer = static_cast<int64_t>(config_number(config, "integer", 0));
  if (name == "quantized_bits") {
    // The auto-scale path ignores keep_negative (always signed), as QKeras.
    const bool is_signed =
        config_flag(config, "keep_negative", true) || config_is_string(config, "alpha");
    const bool ternary = bits == 2 && integer == 1 && is_signed;
    return {ternary ? OperandMode::kTernary : OperandMode::kFixed, bits, is_signed};
  }
  if (name == "quantized_ulaw") {
    return {bits == 2 && integer == 1 ? OperandMode::kTernary : OperandMode::kFixed, bits, true};
  }
  if (name == "quantized_tanh" || name == "quantized_hswish") {
    return {OperandMode::kFixed, bits, true};
  }
  if (name == "quantized_sigmoid") return {OperandMode::kFixed, bits, false};
  if (name == "quantized_relu") {
    const bool is_signed = config_number(config, "negative_slope", 0.0) != 0.0;
    const bool binary01 = bits == 1 && integer == 1 && !is_signed;
    return {binary01 ? OperandMode::kBinary01 : OperandMode::kFixed, bits, is_signed};
  }
  if (name == "quantized_po2") return {OperandMode::kPo2, bits, true};
  if (name == "quantized_relu_po2") {
    return {OperandMode::kPo2, bits, config_number(config, "negative_slope", 0.0) != 0.0};
  }
  if (name == "binary") {
    if (config_flag(config, "use_01", false)) return {OperandMode::kBinary01, 1, false};
    return {OperandMode::kBinary, 1, true};
  }
  if (name == "stochastic_binary") return {OperandMode::kBinary, 1, true};
  if (name == "bernoulli") return {OperandMode::kBinary01, 1, false};
  if (name == "ternary" || name == "stochastic_ternary") return {OperandMode::kTernary, 2, true};
  throw InvalidArgument("qstats: no operand mode is known for the quantizer " + q->to_string());
}

const char* operand_mode_name(OperandMode mode) {
  switch (mode) {
    case OperandMode::kFixed:
      return "fixed";
    case OperandMode::kPo2:
      return "po2";
    case OperandMode::kTernary:
      return "ternary";
    case OperandMode::kBinary:
      return "binary";
    case OperandMode::kBinary01:
      return "binary01";
    case OperandMode::kFloat:
      return "float";
  }
  throw InvalidArgument("operand_mode_name: unknown mode " +
                        std::to_string(static_cast<int>(mode)));
}

OpType op_type(OperandMode weight, OperandMode input) {
  using T = OpType;
  static constexpr T table[6][6] = {
      {T::kMult, T::kBarrel, T::kMux, T::kMux, T::kMux, T::kFmult},
      {T::kBarrel, T::kAdder, T::kMux, T::kXor, T::kMux, T::kFmult},
      {T::kMux, T::kMux, T::kMux, T::kMux, T::kXor, T::kFmult},
      {T::kMux, T::kXor, T::kMux, T::kXor, T::kXor, T::kFmult},
      {T::kMux, T::kMux, T::kXor, T::kXor, T::kXor, T::kFmult},
      {T::kFmult, T::kFmult, T::kFmult, T::kFmult, T::kFmult, T::kFmult},
  };
  const int w = static_cast<int>(weight), x = static_cast<int>(input);
  if (w < 0 || w > 5 || x < 0 || x > 5) {
    throw InvalidArgument("op_type: modes must be in [0, 5], got " + std::to_string(w) + " and " +
                          std::to_string(x));
  }
  return table[w][x];
}

const char* op_type_name(OpType type) {
  switch (type) {
    case OpType::kMult:
      return "mult";
    case OpType::kBarrel:
      return "barrel";
    case OpType::kMux:
      return "mux";
    case OpType::kXor:
      return "xor";
    case OpType::kAdder:
      return "adder";
    case OpType::kFmult:
      return "fmult";
  }
  throw InvalidArgument("op_type_name: unknown type " + std::to_string(static_cast<int>(type)));
}

std::string operation_name(const OperandType& weight, const std::optional<OperandType>& input) {
  // QKeras: sign = "s" if sum(signs) > 0, the unknown input's sign being -1.
  const int signs = (weight.is_signed ? 1 : 0) + (input ? (input->is_signed ? 1 : 0) : -1);
  const std::string type = input ? op_type_name(op_type(weight.mode, input->mode)) : "null";
  return std::string(signs > 0 ? "s" : "u") + type + "_" + std::to_string(weight.bits) + "_" +
         std::to_string(input ? input->bits : -1);
}

const char* layer_kind_name(LayerKind kind) {
  switch (kind) {
    case LayerKind::kDense:
      return "dense";
    case LayerKind::kConv:
      return "conv";
    case LayerKind::kConvTranspose:
      return "conv_transpose";
    case LayerKind::kSeparableConv:
      return "separable_conv";
    case LayerKind::kActivation:
      return "activation";
    case LayerKind::kRecurrent:
      return "recurrent";
    case LayerKind::kOther:
      return "other";
  }
  throw InvalidArgument("layer_kind_name: unknown kind " + std::to_string(static_cast<int>(kind)));
}

LayerKind layer_kind_from_name(const std::string& name) {
  for (LayerKind k :
       {LayerKind::kDense, LayerKind::kConv, LayerKind::kConvTranspose, LayerKind::kSeparableConv,
        LayerKind::kActivation, LayerKind::kRecurrent, LayerKind::kOther}) {
    if (name == layer_kind_name(k)) return k;
  }
  throw InvalidArgument("qstats: unknown layer kind '" + name +
                        "' (expected dense, conv, conv_transpose, separable_conv, activation, "
                        "recurrent or other)");
}

QuantizerPtr LayerInfo::quantizer(const std::string& slot) const {
  for (const auto& [s, q] : quantizers) {
    if (s == slot) return q;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// The statistics

QStats qstats(const std::vector<LayerInfo>& layers, const nn::QuantizerArg& input_quantizer) {
  if (has_cost_replacements(layers, input_quantizer.get())) {
    return qstats(with_cost_quantizers(layers),
                  nn::QuantizerArg(cost_quantizer(input_quantizer.get())));
  }
  QStats stats;
  Flow flow{input_quantizer ? Flow::kQuantized : Flow::kFloat, input_quantizer.get()};
  std::map<std::string, int64_t> totals;
  QuantizerFacts facts;
  for (const LayerInfo& l : layers) {
    LayerStats s;
    s.name = l.name;
    s.type = l.type;
    s.kind = l.kind;
    s.input_shape = l.input_shape;
    s.output_shape = l.output_shape;
    s.parameters = l.parameters;
    if (l.parameters < 0) bad_layer(l, "`parameters` must be >= 0");
    s.quantizers.reserve(l.quantizers.size());
    for (const auto& [slot, q] : l.quantizers) s.quantizers.emplace_back(slot, facts.spec(q));
    switch (flow.state) {
      case Flow::kQuantized:
        s.input_quantizer = facts.spec(flow.quantizer);
        break;
      case Flow::kFloat:
        s.input_quantizer = "";
        break;
      case Flow::kUnknown:
        break;
    }
    s.input = facts.operand(flow);
    if (is_mac(l.kind)) {
      check_geometry(l);
      const std::vector<Stage> stages = layer_stages(l, flow);
      for (const Stage& stage : stages) {
        Operation op;
        op.part = stage.part;
        op.weight = facts.type(stage.weight_quantizer);
        op.input = facts.operand(stage.input);
        if (op.input) op.type = op_type(op.weight.mode, op.input->mode);
        op.count = stage.operations;
        op.name = operation_name(op.weight, op.input);
        totals[op.name] += op.count;
        stats.total_operations += op.count;
        s.operations.push_back(op);
      }
      for (const Stage& stage : stages) {
        if (stage.weight_name.empty()) continue;
        WeightStats w;
        w.name = stage.weight_name;
        w.count = stage.weights;
        w.bits = facts.type(stage.weight_quantizer).bits;
        w.quantizer = facts.spec(stage.weight_quantizer);
        s.weights.push_back(w);
      }
      const QuantizerPtr bq = l.quantizer("bias_quantizer");
      s.weights.push_back({"bias", bias_count(l), facts.type(bq).bits, facts.spec(bq)});
      for (const WeightStats& w : s.weights) stats.total_bits += w.count * w.bits;
      if (flow.state == Flow::kQuantized && !l.channel_sums.empty()) {
        s.accumulator = accumulator(l, flow.quantizer, facts);
      }
      // The accumulator is not requantized (QKeras's "linear" activation); a recurrent layer's
      // output: see recurrent_output().
      flow = l.kind == LayerKind::kRecurrent ? recurrent_output(l) : Flow{Flow::kFloat, nullptr};
    } else if (l.kind == LayerKind::kActivation) {
      const QuantizerPtr q = l.quantizer("activation");
      if (!q) bad_layer(l, "an activation layer needs a quantizer in slot \"activation\"");
      flow = {Flow::kQuantized, q};
    } else if (pass_through_types().count(l.type)) {
      if (const QuantizerPtr q = l.quantizer("activation")) flow = {Flow::kQuantized, q};
    } else if (l.parameters > 0) {
      bad_layer(l,
                "layers of this type are not supported (heteroq cannot count their "
                "operations); supported: heteroq's layers, torch's Linear, Conv, "
                "ConvTranspose, RNN, LSTM, GRU, and parameter-free layers");
    } else {
      flow = {Flow::kUnknown, nullptr};
    }
    stats.total_parameters += l.parameters;
    stats.layers.push_back(std::move(s));
  }
  for (const auto& [name, count] : totals) {
    if (count > 0) stats.operation_totals.emplace_back(name, count);
  }
  return stats;
}

std::string QStats::to_string() const {
  std::ostringstream os;
  os << "\nNumber of operations in model:\n";
  for (const LayerStats& l : layers) {
    for (const Operation& op : l.operations) {
      os << "    " << pad(operation_label(l, op), 30) << ": " << pad(std::to_string(op.count), 5)
         << " (" << op.name << ")\n";
    }
  }
  os << "\nNumber of operation types in model:\n";
  for (const auto& [name, count] : operation_totals) {
    os << "    " << pad(name, 30) << ": " << count << "\n";
  }
  os << "\nWeight profiling:\n";
  for (const LayerStats& l : layers) {
    for (const WeightStats& w : l.weights) {
      os << "    " << pad(l.name + "_" + w.name, 30) << " : " << pad(std::to_string(w.count), 5)
         << " (" << w.bits << "-bit unit)\n";
    }
  }
  os << "    " << std::string(40, '-') << "\n";
  os << "    " << pad("Total Bits", 30) << " : " << std::setw(5) << total_bits << "\n";

  os << "\nLayers:\n";
  for (const LayerStats& l : layers) {
    std::string input = "unknown";
    if (l.input_quantizer) input = l.input_quantizer->empty() ? "float" : *l.input_quantizer;
    os << "    " << pad(l.name, 30) << " : " << l.type << ", " << l.parameters
       << " parameters, input " << input << ", output " << shape_string(l.output_shape) << "\n";
    for (const auto& [slot, spec] : l.quantizers) {
      if (!spec.empty()) os << "        " << slot << " = " << spec << "\n";
    }
  }
  os << "    " << std::string(40, '-') << "\n";
  os << "    " << pad("Total Parameters", 30) << " : " << std::setw(5) << total_parameters << "\n";

  os << "\nAccumulators (bits = ceil(log2(max |sum|)), for inputs in the input quantizer's "
        "range):\n";
  for (const LayerStats& l : layers) {
    if (l.operations.empty()) continue;
    // A recurrent layer's accumulator is its first stage's (the first layer's input projection).
    const std::string label =
        l.kind == LayerKind::kRecurrent ? operation_label(l, l.operations[0]) : l.name;
    os << "    " << pad(label, 30) << " : ";
    if (l.accumulator) {
      os << l.accumulator->bits << " bits, range [" << number(l.accumulator->min) << ", "
         << number(l.accumulator->max) << "]\n";
    } else {
      os << "- (input " << (l.input ? "not quantized" : "unknown") << ")\n";
    }
  }
  return os.str();
}

std::string QStats::to_json() const {
  json root;
  json jl = json::array();
  for (const LayerStats& l : layers) {
    json j;
    j["name"] = l.name;
    j["type"] = l.type;
    j["kind"] = layer_kind_name(l.kind);
    j["input_shape"] = l.input_shape;
    j["output_shape"] = l.output_shape;
    json q = json::object();
    for (const auto& [slot, spec] : l.quantizers) {
      q[slot] = spec.empty() ? json(nullptr) : json(spec);
    }
    j["quantizers"] = q;
    // null for a float input (then "input" is the float type) and for an unknown one ("input"
    // null).
    j["input_quantizer"] = (l.input_quantizer && !l.input_quantizer->empty())
                               ? json(*l.input_quantizer)
                               : json(nullptr);
    j["input"] = operand_json(l.input);
    j["parameters"] = l.parameters;
    json ops = json::array();
    for (const Operation& op : l.operations) {
      ops.push_back(json{{"part", op.part},
                         {"name", op.name},
                         {"type", op.type ? json(op_type_name(*op.type)) : json(nullptr)},
                         {"weight", operand_json(op.weight)},
                         {"input", operand_json(op.input)},
                         {"count", op.count}});
    }
    j["operations"] = ops;
    json ws = json::array();
    for (const WeightStats& w : l.weights) {
      ws.push_back(json{{"name", w.name},
                        {"count", w.count},
                        {"bits", w.bits},
                        {"quantizer", w.quantizer.empty() ? json(nullptr) : json(w.quantizer)}});
    }
    j["weights"] = ws;
    if (l.accumulator) {
      j["accumulator"] = json{
          {"min", l.accumulator->min}, {"max", l.accumulator->max}, {"bits", l.accumulator->bits}};
    } else {
      j["accumulator"] = nullptr;
    }
    jl.push_back(j);
  }
  root["layers"] = std::move(jl);
  json totals = json::object();
  for (const auto& [name, count] : operation_totals) totals[name] = count;
  root["operation_totals"] = totals;
  root["total_operations"] = total_operations;
  root["total_bits"] = total_bits;
  root["total_parameters"] = total_parameters;
  return root.dump();
}

std::ostream& operator<<(std::ostream& os, const QStats& stats) { return os << stats.to_string(); }

// ---------------------------------------------------------------------------------------------
// Modules

LayerInfo describe_layer(const torch::nn::Module& module, const std::string& name,
                         const std::vector<int64_t>& input_shape,
                         const std::vector<int64_t>& output_shape) {
  LayerInfo info;
  info.name = name;
  info.type = type_name(module);
  info.input_shape = input_shape;
  info.output_shape = output_shape;
  for (const auto& p : module.parameters(/*recurse=*/true)) info.parameters += p.numel();
  if (const auto* m = dynamic_cast<const nn::QLinearImpl*>(&module)) {
    info.kind = LayerKind::kDense;
    info.in_channels = m->options.in_features();
    info.out_channels = m->options.out_features();
    info.bias = m->bias.defined();
    info.quantizers = {{"kernel_quantizer", m->options.kernel_quantizer().get()},
                       {"bias_quantizer", m->options.bias_quantizer().get()}};
    const at::Tensor w = m->quantized_weight(), b = m->quantized_bias();
    info.channel_sums = to_rows(accumulator_channel_sums(w, defined_or_null(b), 1, false));
    set_values(info, {{"weights", w}, {"bias", b}});
  } else if (const auto* m = dynamic_cast<const nn::QConv1dImpl*>(&module)) {
    describe_qconv(*m, info, LayerKind::kConv);
  } else if (const auto* m = dynamic_cast<const nn::QConv2dImpl*>(&module)) {
    describe_qconv(*m, info, LayerKind::kConv);
  } else if (const auto* m = dynamic_cast<const nn::QConvTranspose2dImpl*>(&module)) {
    describe_qconv(*m, info, LayerKind::kConvTranspose);
  } else if (const auto* m = dynamic_cast<const nn::QDepthwiseConv2dImpl*>(&module)) {
    describe_qconv(*m->conv, info, LayerKind::kConv);
    info.quantizers = {{"depthwise_quantizer", m->options.depthwise_quantizer().get()},
                       {"bias_quantizer", m->options.bias_quantizer().get()}};
  } else if (const auto* m = dynamic_cast<const nn::QSeparableConv1dImpl*>(&module)) {
    describe_separable(*m, info);
  } else if (const auto* m = dynamic_cast<const nn::QSeparableConv2dImpl*>(&module)) {
    describe_separable(*m, info);
  } else if (const auto* m = dynamic_cast<const nn::QConv2dBatchNormImpl*>(&module)) {
    describe_folded(*m, info, LayerKind::kConv);
  } else if (const auto* m = dynamic_cast<const nn::QLinearBatchNormImpl*>(&module)) {
    describe_folded(*m, info, LayerKind::kDense);
  } else if (const auto* m = dynamic_cast<const nn::QActivationImpl*>(&module)) {
    info.kind = LayerKind::kActivation;
    info.quantizers = {{"activation", m->quantizer()}};
  } else if (const auto* m = dynamic_cast<const nn::QAdaptiveActivationImpl*>(&module)) {
    // Its current quantizer (QKeras); per channel, the one with the most integer bits (the
    // widest range; the same mode and width as the others).
    info.kind = LayerKind::kActivation;
    const int64_t widest = m->integer_bits.defined() && m->integer_bits.numel() > 1
                               ? m->integer_bits.argmax().item<int64_t>()
                               : 0;
    info.quantizers = {{"activation", m->quantizer(widest)}};
  } else if (const auto* m = dynamic_cast<const nn::QBatchNorm1dImpl*>(&module)) {
    describe_qbatch_norm(*m, info);
  } else if (const auto* m = dynamic_cast<const nn::QBatchNorm2dImpl*>(&module)) {
    describe_qbatch_norm(*m, info);
  } else if (const auto* m = dynamic_cast<const nn::QAvgPool2dImpl*>(&module)) {
    info.quantizers = {{"average_quantizer", m->options.average_quantizer().get()},
                       {"activation", m->options.activation().get()}};
  } else if (const auto* m = dynamic_cast<const nn::QGlobalAvgPool2dImpl*>(&module)) {
    info.quantizers = {{"average_quantizer", m->options.average_quantizer().get()},
                       {"activation", m->options.activation().get()}};
  } else if (const auto* m = dynamic_cast<const torch::nn::LinearImpl*>(&module)) {
    info.kind = LayerKind::kDense;
    info.in_channels = m->options.in_features();
    info.out_channels = m->options.out_features();
    info.bias = m->bias.defined();
    info.channel_sums =
        to_rows(accumulator_channel_sums(m->weight, defined_or_null(m->bias), 1, false));
    set_values(info, {{"weights", m->weight}, {"bias", m->bias}});
  } else if (const auto* m = dynamic_cast<const torch::nn::BatchNorm1dImpl*>(&module)) {
    describe_torch_batch_norm(*m, info);
  } else if (const auto* m = dynamic_cast<const torch::nn::BatchNorm2dImpl*>(&module)) {
    describe_torch_batch_norm(*m, info);
  } else if (const auto* m = dynamic_cast<const torch::nn::BatchNorm3dImpl*>(&module)) {
    describe_torch_batch_norm(*m, info);
  } else if (const auto* m = dynamic_cast<const torch::nn::Conv1dImpl*>(&module)) {
    describe_torch_conv(*m, info);
  } else if (const auto* m = dynamic_cast<const torch::nn::Conv2dImpl*>(&module)) {
    describe_torch_conv(*m, info);
  } else if (const auto* m = dynamic_cast<const torch::nn::Conv3dImpl*>(&module)) {
    describe_torch_conv(*m, info);
  } else if (const auto* m = dynamic_cast<const torch::nn::ConvTranspose1dImpl*>(&module)) {
    describe_torch_conv(*m, info);
  } else if (const auto* m = dynamic_cast<const torch::nn::ConvTranspose2dImpl*>(&module)) {
    describe_torch_conv(*m, info);
  } else if (const auto* m = dynamic_cast<const torch::nn::ConvTranspose3dImpl*>(&module)) {
    describe_torch_conv(*m, info);
  } else if (const auto* m = dynamic_cast<const nn::QSimpleRNNImpl*>(&module)) {
    describe_qrnn(*m, 1, info);
  } else if (const auto* m = dynamic_cast<const nn::QLSTMImpl*>(&module)) {
    describe_qrnn(*m, 4, info);
  } else if (const auto* m = dynamic_cast<const nn::QGRUImpl*>(&module)) {
    describe_qrnn(*m, 3, info);
    info.reset_after = m->options.reset_after();
  } else if (const auto* m = dynamic_cast<const torch::nn::RNNImpl*>(&module)) {
    describe_torch_rnn(*m, 1, info);
  } else if (const auto* m = dynamic_cast<const torch::nn::LSTMImpl*>(&module)) {
    if (m->options_base.proj_size() > 0) {
      throw InvalidArgument("qstats: layer '" + name + "' (LSTM): `proj_size` (" +
                            std::to_string(m->options_base.proj_size()) + ") is not supported");
    }
    describe_torch_rnn(*m, 4, info);
  } else if (const auto* m = dynamic_cast<const torch::nn::GRUImpl*>(&module)) {
    describe_torch_rnn(*m, 3, info);
  }
  return info;
}

std::vector<LayerInfo> describe_model(torch::nn::Sequential model,
                                      const std::vector<int64_t>& input_shape) {
  if (!model) throw InvalidArgument("qstats: `model` is empty (a null Sequential)");
  if (input_shape.empty() ||
      std::any_of(input_shape.begin(), input_shape.end(), [](int64_t d) { return d <= 0; })) {
    throw InvalidArgument(
        "qstats: `input_shape` must be a non-empty list of sizes > 0, batch "
        "dimension first, got " +
        shape_string(input_shape));
  }
  at::TensorOptions options = at::TensorOptions().dtype(at::kFloat);
  const auto parameters = model->parameters();
  if (!parameters.empty())
    options = options.dtype(parameters[0].dtype()).device(parameters[0].device());
  std::vector<LayerInfo> layers;
  {
    EvalGuard guard(*model);
    torch::Tensor x = at::zeros(input_shape, options);
    walk(*model, "", x, layers);
  }
  return layers;
}

QStats qstats(torch::nn::Sequential model, const std::vector<int64_t>& input_shape,
              const nn::QuantizerArg& input_quantizer) {
  return qstats(describe_model(std::move(model), input_shape), input_quantizer);
}

QStats print_qstats(torch::nn::Sequential model, const std::vector<int64_t>& input_shape,
                    const nn::QuantizerArg& input_quantizer, std::ostream& os) {
  QStats stats = qstats(std::move(model), input_shape, input_quantizer);
  os << stats.to_string();
  return stats;
}

at::Tensor accumulator_channel_sums(const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                                    int64_t groups, bool transposed,
                                    const std::optional<at::Tensor>& input_sums) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::_qstats_channel_sums", "")
                       .typed<at::Tensor(const at::Tensor&, const c10::optional<at::Tensor>&,
                                         int64_t, bool, const c10::optional<at::Tensor>&)>();
  c10::optional<at::Tensor> b, s;
  if (bias) b = *bias;
  if (input_sums) s = *input_sums;
  return op.call(weight, b, groups, transposed, s);
}

}  // namespace heteroq::cost

TORCH_LIBRARY_FRAGMENT(heteroq, m) {
  m.def(
      "_qstats_channel_sums(Tensor weight, Tensor? bias, int groups, bool transposed, "
      "Tensor? input_sums=None) -> Tensor");
}

TORCH_LIBRARY_IMPL(heteroq, CompositeExplicitAutograd, m) {
  m.impl("_qstats_channel_sums", &heteroq::cost::channel_sums_kernel);
}
