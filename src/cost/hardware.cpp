// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// BOPs/EBOPs and the FPGA resource and latency estimate (heteroq/cost/hardware.h): both walk the
// multiplication stages of qstats() with the weight values of LayerInfo::values.
#include "heteroq/cost/hardware.h"

#include <ATen/core/Tensor.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iomanip>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>
#include <utility>
#include <variant>

#include "heteroq/errors.h"
#include "heteroq/quantizers/fixed.h"
#include "heteroq/quantizers/quantizer.h"

namespace heteroq::cost {

namespace {

using json = nlohmann::ordered_json;

[[noreturn]] void bad_layer(const char* who, const LayerInfo& l, const std::string& what) {
  throw InvalidArgument(std::string(who) + ": layer '" + l.name + "' (" + l.type + "): " + what);
}

// |v| = m 2^e with m odd: {bit length of m, e} (v finite, non-zero). Read from the IEEE-754
// fields (the same integers as frexp's exact decomposition, without its library calls).
std::pair<int64_t, int64_t> odd_mantissa(double v) {
  uint64_t u = 0;
  std::memcpy(&u, &v, sizeof u);
  const auto biased = static_cast<int64_t>((u >> 52) & 0x7ff);
  uint64_t m = u & ((uint64_t{1} << 52) - 1);
  int64_t exponent = -1074;  // subnormal: m 2^-1074
  if (biased != 0) {
    m |= uint64_t{1} << 52;
    exponent = biased - 1075;
  }
#if defined(__GNUC__) || defined(__clang__)
  const int trailing = __builtin_ctzll(m);
  m >>= trailing;
  const int64_t length = 64 - __builtin_clzll(m);
#else
  int trailing = 0;
  for (; (m & 1u) == 0; m >>= 1) ++trailing;
  int64_t length = 0;
  for (uint64_t r = m; r; r >>= 1) ++length;
#endif
  return {length, exponent + trailing};
}

// The number of fractional bits of v (0 for integers and zero).
int64_t fraction_bits(double v) {
  if (v == 0 || !std::isfinite(v)) return 0;
  return std::max<int64_t>(0, -odd_mantissa(v).second);
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// ceil(log_k(x)) for x >= 1, by repeated multiplication (exact at powers of k).
int64_t ceil_log(double x, int64_t k) {
  int64_t levels = 0;
  for (double reach = 1; reach < x; reach *= static_cast<double>(k)) ++levels;
  return levels;
}

const at::Tensor* find_values(const LayerInfo& l, const std::string& group) {
  for (const auto& [name, t] : l.values) {
    if (name == group) return &t;
  }
  return nullptr;
}

std::vector<double> to_doubles(const char* who, const LayerInfo& l, const std::string& group,
                               const at::Tensor& t) {
  if (!t.defined()) bad_layer(who, l, "values '" + group + "' is an undefined tensor");
  if (!t.is_floating_point()) {
    bad_layer(who, l, "values '" + group + "' must be a floating-point tensor");
  }
  std::vector<double> out;
  if (t.device().is_cpu() && t.is_contiguous() &&
      (t.scalar_type() == at::kDouble || t.scalar_type() == at::kFloat)) {
    // The common cases without tensor operations (float -> double is exact, as .to(kDouble)).
    const auto n = static_cast<size_t>(t.numel());
    if (t.scalar_type() == at::kDouble) {
      const double* p = t.data_ptr<double>();
      out.assign(p, p + n);
    } else {
      const float* p = t.data_ptr<float>();
      out.assign(p, p + n);
    }
  } else {
    const at::Tensor d = t.detach().to(at::kDouble).cpu().contiguous();
    const double* p = d.data_ptr<double>();
    out.assign(p, p + d.numel());
  }
  for (double v : out) {
    if (!std::isfinite(v)) bad_layer(who, l, "values '" + group + "' has a non-finite value");
  }
  return out;
}

int64_t spec_integer(const QuantizerPtr& q, const char* key, int64_t fallback) {
  for (const auto& [k, v] : q->config()) {
    if (k != key) continue;
    if (const auto* i = std::get_if<int64_t>(&v)) return *i;
    if (const auto* d = std::get_if<double>(&v)) return static_cast<int64_t>(*d);
    if (const auto* b = std::get_if<bool>(&v)) return *b ? 1 : 0;
  }
  return fallback;
}

// ---- the layers as the cost models see them ----

// Whether qstats() gives a type to the output of `l` (a kOther layer): a probe dense layer
// after it gets a known input type.
bool known_type(const LayerInfo& l) {
  LayerInfo probe = l;
  probe.parameters = 0;
  probe.values.clear();
  LayerInfo dense;
  dense.name = "probe";
  dense.type = "Linear";
  dense.kind = LayerKind::kDense;
  dense.input_shape = dense.output_shape = {1, 1};
  dense.in_channels = dense.out_channels = 1;
  const QStats s = qstats({probe, dense}, nn::QuantizerArg());
  return s.layers[1].input.has_value();
}

struct Prepared {
  /// The layers: `original`'s, or `replaced` when a layer was counted as zero.
  const std::vector<LayerInfo>& layers() const { return copied ? replaced : *original; }
  const std::vector<LayerInfo>* original = nullptr;
  std::vector<LayerInfo> replaced;
  bool copied = false;
  std::vector<bool> zero_cost;
  QStats stats;
  /// Per layer, the quantizer its input comes from as given (a FixedQuantizer before
  /// cost_quantizer()), when heteroq can tell: the model's input quantizer, or an activation's
  /// quantizer through layers that keep the values (pass-through types); else nullptr.
  std::vector<QuantizerPtr> input_sources;
};

// The layers with the unknown ones replaced by parameter-free pass-through layers (opt-in), and
// their qstats.
Prepared prepare(const char* who, const std::vector<LayerInfo>& layers,
                 const nn::QuantizerArg& input_quantizer, bool unknown_as_zero) {
  Prepared p;
  p.original = &layers;
  p.zero_cost.assign(layers.size(), false);
  if (has_cost_replacements(layers)) {  // FixedQuantizer slots: priced as their widest type
    p.replaced = with_cost_quantizers(layers);
    p.copied = true;
  }
  for (size_t i = 0; i < layers.size(); ++i) {
    if (layers[i].kind != LayerKind::kOther || known_type(p.layers()[i])) continue;
    if (!p.copied) {  // copy the layers only when one is replaced
      p.replaced = layers;
      p.copied = true;
    }
    LayerInfo& l = p.replaced[i];
    if (!unknown_as_zero) {
      bad_layer(who, l,
                "the cost models do not know layers of this type (its operations and output type "
                "are unknown); pass unknown_layers_as_zero=true to count it as zero (it then "
                "passes its input's type on)");
    }
    p.zero_cost[i] = true;
    l.type = "Identity";
    l.parameters = 0;
    l.quantizers.clear();
    l.values.clear();
  }
  p.stats = qstats(p.layers(), nn::QuantizerArg(cost_quantizer(input_quantizer.get())));
  // The input sources: an activation's quantizer (or the model input's) passes through the
  // layers that keep the values (no multiply-accumulates, no quantizer of their own).
  QuantizerPtr source = input_quantizer.get();
  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerInfo& l = layers[i];
    p.input_sources.push_back(source);
    if (p.zero_cost[i]) continue;
    if (l.kind == LayerKind::kActivation) {
      source = l.quantizer("activation");
    } else if (l.kind != LayerKind::kOther) {
      source = nullptr;  // a multiply-accumulate layer's output is not quantized
    } else if (const QuantizerPtr act = l.quantizer("activation")) {
      source = act;  // QAvgPool2d with an activation
    } else if (!l.quantizers.empty() || l.parameters > 0) {
      source = nullptr;  // batch norms, quantized averages: other values
    }
  }
  return p;
}

bool is_mac(LayerKind kind) {
  return kind == LayerKind::kDense || kind == LayerKind::kConv ||
         kind == LayerKind::kConvTranspose || kind == LayerKind::kSeparableConv ||
         kind == LayerKind::kRecurrent;
}

int64_t numel_per_sample(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (size_t i = 1; i < shape.size(); ++i) n *= shape[i];
  return n;
}

// One multiplication stage: `count` products per sample of the weights in `weights` (exact) by
// inputs of type `input`, each weight used `uses` times.
struct Stage {
  std::string part;
  QuantizerPtr weight_quantizer;
  OperandType weight, input;
  int64_t count = 0;
  bool exact = false;
  std::vector<double> weights;  // exact: the stage's weight values
  int64_t uses = 0;             // exact: count / weights.size()
  /// exact, for a FixedQuantizer with widths per channel or element: each weight's width (its
  /// quantizer's bit_widths() at that weight); empty: every weight has the type's width.
  std::vector<double> widths;
  /// exact, for an input from a FixedQuantizer with widths per channel or element (dense and
  /// convolution layers): per weight, the sum of the input widths over its uses (dense: Σ over
  /// the positions of its input feature's width; convolution: uses x its input channel's mean
  /// width); empty: every use has the input type's width b_x.
  std::vector<double> input_widths;
};

struct Bias {
  bool exact = false;
  std::vector<double> values;  // exact
  int64_t count = 0;           // not exact: the number of bias values
  int64_t bits = 32;           // not exact: the bias quantizer's width
  int64_t additions = 0;       // per sample
};

struct LayerStages {
  std::vector<Stage> stages;
  Bias bias;
  bool exact = true;
};

int64_t weight_count(const LayerStats& s, const std::string& group) {
  for (const WeightStats& w : s.weights) {
    if (w.name == group) return w.count;
  }
  return -1;
}

// The group of LayerInfo::values an operation's weights come from, and for a GRU with
// reset_after = false which rows of "recurrent" it uses: 2 the candidate n's, else r's and z's.
std::pair<std::string, int> operation_group(const Operation& op) {
  if (op.part.empty()) return {"weights", 0};
  if (op.part == "depthwise") return {"weights_0", 0};
  if (op.part == "pointwise") return {"weights_1", 0};
  if (op.part.rfind("recurrent_n", 0) == 0) return {"recurrent" + op.part.substr(11), 2};
  return {op.part, 0};
}

QuantizerPtr stage_quantizer(const LayerInfo& l, const Operation& op) {
  if (op.part == "depthwise") return l.quantizer("depthwise_quantizer");
  if (op.part == "pointwise") return l.quantizer("pointwise_quantizer");
  if (op.part.rfind("recurrent", 0) == 0) return l.quantizer("recurrent_quantizer");
  const QuantizerPtr q = l.quantizer("kernel_quantizer");
  return q ? q : l.quantizer("depthwise_quantizer");
}

// The widths of a FixedQuantizer's elements at each value of `values` (its bit_widths()
// broadcast to the values' shape; a recurrent layer's directions, stacked along dim 0, each
// take the quantizer's widths), flattened; empty for other quantizers and uniform widths.
std::vector<double> element_widths(const char* who, const LayerInfo& l, const std::string& group,
                                   const QuantizerPtr& q, const at::Tensor& values) {
  const auto* fixed = dynamic_cast<const FixedQuantizer*>(q.get());
  if (!fixed || fixed->is_uniform()) return {};
  at::Tensor w = fixed->bit_widths().to(at::kDouble);
  const auto shape = values.sizes();
  try {
    if (w.dim() <= values.dim()) {
      w = w.expand(shape);
    } else {
      throw InvalidArgument("");
    }
  } catch (const std::exception&) {
    // Stacked blocks along dim 0 (a recurrent layer's directions): repeat the widths.
    const bool blocks = w.dim() == values.dim() && w.dim() > 0 && w.size(0) > 0 &&
                        values.size(0) % w.size(0) == 0;
    if (!blocks) {
      bad_layer(who, l,
                "the widths of its FixedQuantizer (shape " + c10::str(w.sizes()) +
                    ") do not broadcast to its values '" + group + "' (shape " +
                    c10::str(shape) + ")");
    }
    std::vector<int64_t> repeat(static_cast<size_t>(w.dim()), 1);
    repeat[0] = values.size(0) / w.size(0);
    try {
      std::vector<int64_t> block(shape.begin(), shape.end());
      block[0] = w.size(0);
      w = w.expand(block).repeat(repeat);
    } catch (const std::exception&) {
      bad_layer(who, l,
                "the widths of its FixedQuantizer (shape " + c10::str(w.sizes()) +
                    ") do not broadcast to its values '" + group + "' (shape " +
                    c10::str(shape) + ")");
    }
  }
  const at::Tensor flat = w.contiguous().reshape({-1});
  return std::vector<double>(flat.data_ptr<double>(), flat.data_ptr<double>() + flat.numel());
}

// Stage::input_widths of a dense or convolution layer whose input comes from `source`, for its
// weight values `values` (the module's layout) used `uses` times each; empty when `source` is
// not a FixedQuantizer with varying widths or its widths do not fit the layer's input.
std::vector<double> input_widths(const LayerInfo& l, const QuantizerPtr& source,
                                 const at::Tensor& values, int64_t uses) {
  const auto* fixed = dynamic_cast<const FixedQuantizer*>(source.get());
  // (uniform widths: every use has the type's width, except zero padding in a convolution of
  // known geometry, which costs nothing)
  const bool padded_conv =
      l.kind == LayerKind::kConv && !l.padding.empty() &&
      std::any_of(l.padding.begin(), l.padding.end(), [](int64_t p) { return p != 0; });
  if (!fixed || (fixed->is_uniform() && !padded_conv) || l.input_shape.size() < 2) return {};
  const std::vector<int64_t> sample(l.input_shape.begin() + 1, l.input_shape.end());
  at::Tensor w = fixed->bit_widths().to(at::kDouble);
  int64_t numel = 1;
  for (int64_t d : sample) numel *= d;
  try {
    w = w.numel() == numel ? w.reshape(sample) : w.expand(sample);
  } catch (const std::exception&) {
    return {};  // widths of another shape (e.g. before a pooling layer): the widest type
  }
  at::Tensor per_weight;
  if (l.kind == LayerKind::kDense && values.dim() == 2 && w.size(-1) == values.size(1)) {
    // Σ over the positions of each input feature's width, for every weight (o, j).
    const at::Tensor feature = w.reshape({-1, w.size(-1)}).sum(0);
    per_weight = feature.unsqueeze(0).expand(values.sizes());
  } else if (l.kind == LayerKind::kConv && values.dim() >= 2 && w.dim() >= 1 &&
             w.size(0) == l.in_channels && l.groups > 0) {
    // Per input channel c and kernel tap k, the sum of the input widths the tap multiplies over
    // the output positions: (C, taps).
    const int64_t taps = values[0][0].numel();
    at::Tensor per_tap;
    const size_t d = l.kernel_size.size();
    if (values.dim() >= 3 && values.dim() <= 4 && w.dim() == values.dim() - 1 &&
        static_cast<int64_t>(d) == values.dim() - 2 && l.stride.size() == d &&
        l.padding.size() == d && l.dilation.size() == d) {
      // The geometry is known (zero padding): the unfolded (im2col) width map summed over the
      // positions, a padded zero costing nothing (as hgq_ebops_conv).
      const bool one_d = d == 1;
      auto two = [one_d](const std::vector<int64_t>& v, int64_t pad_1d) {
        return one_d ? std::vector<int64_t>{pad_1d, v[0]} : v;
      };
      const at::Tensor map = (one_d ? w.unsqueeze(1) : w).unsqueeze(0);  // (1, C, H, W)
      const at::Tensor cols = at::im2col(map, two(l.kernel_size, 1), two(l.dilation, 1),
                                         two(l.padding, 0), two(l.stride, 1));  // (1, C taps, L)
      per_tap = cols.sum(-1).reshape({l.in_channels, taps});
    } else {
      // uses x the mean width of the channel, every tap alike (QTools's count).
      per_tap = (w.reshape({w.size(0), -1}).mean(1) * static_cast<double>(uses))
                    .unsqueeze(1)
                    .expand({l.in_channels, taps});
    }
    // each weight (o, ci, k) reads channel c = (o / (out / g)) (in / g) + ci (integer division:
    // Tensor / Tensor is true division, which gives float indices)
    const int64_t out = values.size(0), per_group_in = values.size(1);
    const at::Tensor o = at::arange(out, at::kLong).unsqueeze(1);
    const at::Tensor ci = at::arange(per_group_in, at::kLong).unsqueeze(0);
    const at::Tensor c = o.div(out / l.groups, "floor") * per_group_in + ci;  // (out, in / g)
    per_weight = per_tap.index({c}).reshape(values.sizes());
  } else if (l.kind == LayerKind::kConvTranspose && values.dim() >= 3 &&
             values.size(0) == l.in_channels && w.dim() >= 1 && w.size(0) == l.in_channels) {
    // Every input value meets every kernel value of its channel (QTools's count, the border that
    // the padding crops included): per weight (c, o, k) the sum of channel c's input widths.
    const at::Tensor channel = w.reshape({l.in_channels, -1}).sum(1);
    std::vector<int64_t> view(static_cast<size_t>(values.dim()), 1);
    view[0] = l.in_channels;
    per_weight = channel.reshape(view).expand(values.sizes());
  } else {
    return {};
  }
  const at::Tensor flat = per_weight.contiguous().reshape({-1});
  return std::vector<double>(flat.data_ptr<double>(), flat.data_ptr<double>() + flat.numel());
}

LayerStages layer_stages(const char* who, const LayerInfo& l, const LayerStats& s,
                         const LayerInfo& original, const QuantizerPtr& source) {
  LayerStages out;
  const bool recurrent = l.kind == LayerKind::kRecurrent;
  const bool reset_before = recurrent && l.gates == 3 && !l.reset_after;
  const int64_t steps = recurrent ? l.input_shape[l.batch_first ? 1 : 0] : 1;
  for (const Operation& op : s.operations) {
    if (!op.input) {
      bad_layer(who, l,
                "the type of its input is unknown (it follows a layer the cost models do not "
                "know)");
    }
    Stage st;
    st.part = op.part;
    st.weight_quantizer = stage_quantizer(l, op);
    st.weight = op.weight;
    st.input = *op.input;
    st.count = op.count;
    const auto [group, rows] = operation_group(op);
    const at::Tensor* t = find_values(l, group);
    if (t && st.count > 0) {
      std::vector<double> v = to_doubles(who, l, group, *t);
      std::vector<double> widths =
          element_widths(who, l, group, stage_quantizer(original, op), *t);
      const int64_t expected = weight_count(s, group);
      if (static_cast<int64_t>(v.size()) != expected) {
        bad_layer(who, l,
                  "values '" + group + "' has " + std::to_string(v.size()) + " values, expected " +
                      std::to_string(expected));
      }
      if (reset_before && op.part.rfind("recurrent", 0) == 0) {
        // The recurrent kernel's rows (D G H, H): gates r, z, n per direction; "recurrent" takes
        // r and z, "recurrent_n" n.
        const int64_t h = l.out_channels, block = 3 * h;
        std::vector<double> slice, width_slice;
        for (size_t i = 0; i < v.size(); ++i) {
          const int64_t row = static_cast<int64_t>(i) / h;
          const bool candidate = row % block >= 2 * h;
          if ((rows == 2) == candidate) {
            slice.push_back(v[i]);
            if (!widths.empty()) width_slice.push_back(widths[i]);
          }
        }
        v = std::move(slice);
        widths = std::move(width_slice);
      }
      if (v.empty() || st.count % static_cast<int64_t>(v.size()) != 0) {
        bad_layer(who, l,
                  "values '" + group + "': " + std::to_string(v.size()) +
                      " weights do not divide the " + std::to_string(st.count) + " products");
      }
      st.uses = st.count / static_cast<int64_t>(v.size());
      if (op.part.empty() && (l.kind == LayerKind::kDense || l.kind == LayerKind::kConv ||
                              l.kind == LayerKind::kConvTranspose)) {
        st.input_widths = input_widths(l, source, *t, st.uses);
        if (st.input_widths.size() != v.size()) st.input_widths.clear();
      }
      st.weights = std::move(v);
      st.widths = std::move(widths);
      st.exact = true;
    }
    out.exact = out.exact && (st.exact || st.count == 0);
    out.stages.push_back(std::move(st));
  }
  // The bias.
  const QuantizerPtr bq = l.quantizer("bias_quantizer");
  if (const at::Tensor* t = find_values(l, "bias")) {
    out.bias.exact = true;
    out.bias.values = to_doubles(who, l, "bias", *t);
  } else {
    out.bias.count = 0;
    for (const WeightStats& w : s.weights) {
      if (w.name == "bias") out.bias.count = w.count;
    }
    out.bias.bits = operand_type(bq).bits;
    if (out.bias.count > 0) out.exact = false;
  }
  const int64_t values =
      out.bias.exact ? static_cast<int64_t>(out.bias.values.size()) : out.bias.count;
  out.bias.additions =
      recurrent ? steps * values : (values > 0 ? numel_per_sample(l.output_shape) : 0);
  return out;
}

// A batch norm (a kOther layer with values "scale"): y = x scale + shift per channel.
LayerStages batch_norm_stages(const char* who, const LayerInfo& l, const LayerStats& s) {
  LayerStages out;
  const at::Tensor* scale = find_values(l, "scale");
  if (!scale) return out;
  if (!s.input) {
    bad_layer(who, l,
              "the type of its input is unknown (it follows a layer the cost models do not know)");
  }
  Stage st;
  st.part = "scale";
  st.weight_quantizer = l.quantizer("inverse_quantizer");
  st.weight = operand_type(st.weight_quantizer);
  st.input = *s.input;
  st.count = numel_per_sample(l.output_shape);
  st.weights = to_doubles(who, l, "scale", *scale);
  if (st.weights.empty() || st.count % static_cast<int64_t>(st.weights.size()) != 0) {
    bad_layer(who, l,
              "values 'scale' has " + std::to_string(st.weights.size()) +
                  " values, which do not divide the " + std::to_string(st.count) +
                  " output values");
  }
  st.uses = st.count / static_cast<int64_t>(st.weights.size());
  st.exact = true;
  out.stages.push_back(std::move(st));
  if (const at::Tensor* shift = find_values(l, "shift")) {
    out.bias.exact = true;
    out.bias.values = to_doubles(who, l, "shift", *shift);
    out.bias.additions = numel_per_sample(l.output_shape);
  }
  return out;
}

std::vector<LayerStages> all_stages(const char* who, const Prepared& p) {
  std::vector<LayerStages> out;
  out.reserve(p.layers().size());
  for (size_t i = 0; i < p.layers().size(); ++i) {
    const LayerInfo& l = p.layers()[i];
    const LayerStats& s = p.stats.layers[i];
    if (p.zero_cost[i]) {
      out.emplace_back();
    } else if (is_mac(l.kind)) {
      out.push_back(layer_stages(who, l, s, (*p.original)[i], p.input_sources[i]));
    } else if (l.kind == LayerKind::kOther) {
      out.push_back(batch_norm_stages(who, l, s));
    } else {
      out.emplace_back();
    }
  }
  return out;
}

// ---- printing ----

std::string pad(const std::string& s, size_t n) {
  return s.size() >= n ? s : s + std::string(n - s.size(), ' ');
}

std::string rpad(const std::string& s, size_t n) {
  return s.size() >= n ? s : std::string(n - s.size(), ' ') + s;
}

std::string number(double v) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(1) << v;
  return os.str();
}

std::string nanoseconds(double v) {
  std::ostringstream os;
  os << std::setprecision(6) << v;
  return os.str();
}

}  // namespace

int64_t bit_span(double value) {
  if (!std::isfinite(value)) {
    throw InvalidArgument("bit_span: the value must be finite, got " + std::to_string(value));
  }
  if (value == 0) return 0;
  return odd_mantissa(value).first;
}

// ---------------------------------------------------------------------------------------------
// BOPs and EBOPs

BopsReport bops(const std::vector<LayerInfo>& layers, const BopsOptions& options) {
  const char* who = "bops";
  const Prepared p = prepare(who, layers, options.input_quantizer, options.unknown_layers_as_zero);
  const std::vector<LayerStages> stages = all_stages(who, p);
  BopsReport r;
  for (size_t i = 0; i < p.layers().size(); ++i) {
    const LayerInfo& l = p.layers()[i];
    LayerBops b;
    b.name = l.name;
    b.type = layers[i].type;
    b.kind = l.kind;
    b.zero_cost = p.zero_cost[i];
    b.exact = stages[i].exact;
    for (const Stage& st : stages[i].stages) {
      const int64_t bx = st.input.bits, bw = st.weight.bits;
      if (st.exact) {
        int64_t nonzero = 0;
        double bops = 0, ebops = 0;
        for (size_t e = 0; e < st.weights.size(); ++e) {
          const int64_t s = bit_span(st.weights[e]);
          if (s == 0) continue;
          ++nonzero;
          // the input widths over the weight's uses (a FixedQuantizer input's), else u b_x;
          // the weight's own width (a FixedQuantizer's), else the type's
          const double x = st.input_widths.empty() ? static_cast<double>(st.uses * bx)
                                                   : st.input_widths[e];
          bops += x * (st.widths.empty() ? static_cast<double>(bw) : st.widths[e]);
          ebops += x * static_cast<double>(s);
        }
        b.multiplications += nonzero * st.uses;
        b.bops += static_cast<int64_t>(std::llround(bops));
        b.ebops += ebops;
      } else {
        b.multiplications += st.count;
        b.bops += st.count * bx * bw;
        b.ebops += static_cast<double>(st.count * bx * bw);
      }
    }
    const Bias& bias = stages[i].bias;
    if (bias.additions > 0) {
      double mean = 0;
      if (bias.exact) {
        int64_t spans = 0;
        for (double v : bias.values) spans += bit_span(v);
        mean = bias.values.empty() ? 0.0 : static_cast<double>(spans) / bias.values.size();
      } else {
        mean = static_cast<double>(bias.bits);
      }
      b.bias_ebops = mean * static_cast<double>(bias.additions);
      b.ebops += b.bias_ebops;
    }
    r.bops += b.bops;
    r.ebops += b.ebops;
    r.multiplications += b.multiplications;
    if (b.zero_cost) r.zero_cost_layers.push_back(b.name);
    r.layers.push_back(std::move(b));
  }
  return r;
}

BopsReport bops(torch::nn::Sequential model, const std::vector<int64_t>& input_shape,
                const BopsOptions& options) {
  return bops(describe_model(std::move(model), input_shape), options);
}

std::string BopsReport::to_string() const {
  std::ostringstream os;
  os << "\nBOPs and EBOPs per sample (EBOPs: exact weight bit spans, HGQ2's bias term):\n";
  os << "    " << pad("layer", 24) << pad("type", 18) << rpad("mults", 10) << rpad("BOPs", 14)
     << rpad("EBOPs", 14) << rpad("(bias)", 12) << "\n";
  for (const LayerBops& l : layers) {
    std::string type = l.type;
    if (l.zero_cost)
      type += " *";
    else if (!l.exact)
      type += " ~";
    os << "    " << pad(l.name, 24) << pad(type, 18) << rpad(std::to_string(l.multiplications), 10)
       << rpad(std::to_string(l.bops), 14) << rpad(number(l.ebops), 14)
       << rpad(number(l.bias_ebops), 12) << "\n";
  }
  os << "    " << std::string(92, '-') << "\n";
  os << "    " << pad("Total", 42) << rpad(std::to_string(multiplications), 10)
     << rpad(std::to_string(bops), 14) << rpad(number(ebops), 14) << "\n";
  bool approx = false;
  for (const LayerBops& l : layers) approx = approx || (!l.exact && !l.zero_cost);
  if (approx) os << "    ~ weight values unknown: every weight counted non-zero, at full width\n";
  if (!zero_cost_layers.empty()) os << "    * unknown layer, counted as zero\n";
  return os.str();
}

std::string BopsReport::to_json() const {
  json jl = json::array();
  for (const LayerBops& l : layers) {
    json o = json::object();
    o["name"] = l.name;
    o["type"] = l.type;
    o["kind"] = layer_kind_name(l.kind);
    o["multiplications"] = l.multiplications;
    o["bops"] = l.bops;
    o["ebops"] = l.ebops;
    o["bias_ebops"] = l.bias_ebops;
    o["exact"] = l.exact;
    o["zero_cost"] = l.zero_cost;
    jl.push_back(std::move(o));
  }
  json root;
  root["layers"] = std::move(jl);
  root["bops"] = bops;
  root["ebops"] = ebops;
  root["multiplications"] = multiplications;
  root["zero_cost_layers"] = zero_cost_layers;
  return root.dump();
}

std::ostream& operator<<(std::ostream& os, const BopsReport& report) {
  return os << report.to_string();
}

// ---------------------------------------------------------------------------------------------
// FPGA estimate

namespace {

void check_options(const FpgaOptions& o) {
  const auto bad = [](const std::string& what) { throw InvalidArgument("fpga_estimate: " + what); };
  if (!(o.clock_period_ns > 0) || !std::isfinite(o.clock_period_ns)) {
    bad("`clock_period_ns` must be > 0, got " + std::to_string(o.clock_period_ns));
  }
  if (!(o.adder_level_ns >= 0) || !std::isfinite(o.adder_level_ns)) {
    bad("`adder_level_ns` must be >= 0, got " + std::to_string(o.adder_level_ns));
  }
  if (o.float_bits < 1 || o.float_bits > 64 || o.float_integer_bits > o.float_bits) {
    bad("`float_bits` must be in [1, 64] and >= `float_integer_bits`, got " +
        std::to_string(o.float_bits) + " and " + std::to_string(o.float_integer_bits));
  }
  if (o.dsp_port_a_bits < 1 || o.dsp_port_b_bits < 1) {
    bad("`dsp_port_a_bits` and `dsp_port_b_bits` must be >= 1");
  }
  if (o.adder_inputs < 2) {
    bad("`adder_inputs` must be >= 2, got " + std::to_string(o.adder_inputs));
  }
  if (o.dsp_min_input_bits < 1 || o.dsp_min_weight_span < 2) {
    bad("`dsp_min_input_bits` must be >= 1 and `dsp_min_weight_span` >= 2, got " +
        std::to_string(o.dsp_min_input_bits) + " and " + std::to_string(o.dsp_min_weight_span));
  }
}

// An operand's width in hardware: a float operand is ap_fixed<float_bits, float_integer_bits>.
int64_t hw_bits(const OperandType& t, const FpgaOptions& o) {
  return t.mode == OperandMode::kFloat ? o.float_bits : t.bits;
}

// The fractional bits of the values a quantizer produces (nullptr: the float type's).
int64_t quantizer_fraction_bits(const QuantizerPtr& q, const FpgaOptions& o) {
  if (!q) return o.float_bits - o.float_integer_bits;
  const std::string name = q->name();
  const int64_t bits = q->bits();
  if (name == "quantized_bits") {
    return std::max<int64_t>(
        0, bits - spec_integer(q, "integer", 0) - spec_integer(q, "keep_negative", 1));
  }
  if (name == "quantized_relu") return std::max<int64_t>(0, bits - spec_integer(q, "integer", 0));
  if (bits <= 12) {
    try {
      int64_t frac = 0;
      for (double v : q->range()) frac = std::max(frac, fraction_bits(v));
      return frac;
    } catch (const InvalidArgument&) {
    }
  }
  return std::max<int64_t>(0, bits - 1);
}

// A float weight as ap_fixed<float_bits, float_integer_bits> (round to nearest, saturate).
double to_float_fixed(double w, const FpgaOptions& o) {
  const double scale = std::ldexp(1.0, static_cast<int>(o.float_bits - o.float_integer_bits));
  const double top = std::ldexp(1.0, static_cast<int>(o.float_bits - 1));
  return std::clamp(std::nearbyint(w * scale), -top, top - 1) / scale;
}

// The number of DSPs of one a x b product.
int64_t dsps_of(int64_t a, int64_t b, const FpgaOptions& o) {
  const int64_t pa = o.dsp_port_a_bits, pb = o.dsp_port_b_bits;
  return std::min(ceil_div(a, pa) * ceil_div(b, pb), ceil_div(a, pb) * ceil_div(b, pa));
}

struct Products {
  int64_t dsp = 0, lut = 0;
  int64_t n_dsp = 0, n_lut = 0, n_free = 0;
  int64_t terms = 0;        // non-zero products (adder-tree terms)
  int64_t weight_frac = 0;  // the most fractional bits of a weight
  int64_t max_span = 0;
};

// The products a stage instantiates `instances` times per weight (by a constant weight).
Products constant_products(const Stage& st, int64_t instances, const FpgaOptions& o) {
  Products p;
  const int64_t bx = hw_bits(st.input, o);
  const bool select = st.input.mode == OperandMode::kBinary ||
                      st.input.mode == OperandMode::kBinary01 ||
                      st.input.mode == OperandMode::kTernary;
  const bool float_weights = st.weight.mode == OperandMode::kFloat;
  const auto add = [&](int64_t span, int64_t n) {
    if (span == 0 || n == 0) return;
    p.terms += n;
    p.max_span = std::max(p.max_span, span);
    if (span == 1 || select) {
      p.n_free += n;
    } else if (bx >= o.dsp_min_input_bits && span >= o.dsp_min_weight_span) {
      p.n_dsp += n;
      p.dsp += n * dsps_of(bx, span + 1, o);
    } else {
      p.n_lut += n;
      p.lut += n * (span / 2) * (bx + span);
    }
  };
  if (st.exact) {
    for (double w : st.weights) {
      const double v = float_weights ? to_float_fixed(w, o) : w;
      if (v == 0) continue;
      const auto [span, lsb] = odd_mantissa(v);
      add(span, instances);
      p.weight_frac = std::max(p.weight_frac, -lsb);
    }
  } else {
    // Unknown values: every weight non-zero, spanning its type's width (sign excluded).
    const int64_t bw = hw_bits(st.weight, o);
    const int64_t span = st.weight.is_signed && bw > 1 ? bw - 1 : bw;
    add(span, st.count);  // every product instantiated (a recurrent cell: per step)
    p.weight_frac = float_weights ? o.float_bits - o.float_integer_bits
                                  : quantizer_fraction_bits(st.weight_quantizer, o);
  }
  return p;
}

// A product of two variables of widths a and b (a recurrent cell's gate products).
void variable_products(int64_t n, int64_t a, int64_t b, const FpgaOptions& o, FpgaLayer& f) {
  if (n == 0) return;
  if (std::max(a, b) >= o.dsp_min_input_bits && std::min(a, b) >= o.dsp_min_weight_span) {
    f.products_dsp += n;
    f.dsp += n * dsps_of(a, b, o);
  } else {
    f.products_lut += n;
    f.lut_multipliers += n * a * b;
  }
}

int64_t adder_cycles(int64_t terms, int64_t outputs, const FpgaOptions& o) {
  if (terms <= outputs || outputs <= 0) return 0;
  const int64_t depth =
      ceil_log(static_cast<double>(terms) / static_cast<double>(outputs), o.adder_inputs);
  return static_cast<int64_t>(
      std::ceil(static_cast<double>(depth) * o.adder_level_ns / o.clock_period_ns - 1e-9));
}

// The adders of a tree of `terms` inputs into `outputs` sums.
int64_t adders_of(int64_t terms, int64_t outputs, const FpgaOptions& o) {
  return terms <= outputs ? 0 : ceil_div(terms - outputs, o.adder_inputs - 1);
}

int64_t nonzero_count(const std::vector<double>& v) {
  return std::count_if(v.begin(), v.end(), [](double x) { return x != 0; });
}

// The input quantizer of a layer, from qstats's spec of it (nullptr: float).
QuantizerPtr input_quantizer_of(const LayerStats& s) {
  if (!s.input_quantizer || s.input_quantizer->empty()) return nullptr;
  return get_quantizer(*s.input_quantizer);
}

int64_t accumulator_width(const LayerStats& s, int64_t frac, const FpgaOptions& o) {
  if (!s.accumulator) return o.float_bits;
  // ceil(log2 max|sum|) integer bits (negative when every sum is below 1/2), a sign, `frac`.
  return std::max<int64_t>(1, s.accumulator->bits + 1 + frac);
}

void estimate_mac(const LayerInfo& l, const LayerStats& s, const LayerStages& ls,
                  int64_t input_frac, const FpgaOptions& o, FpgaLayer& f) {
  const int64_t outputs = numel_per_sample(l.output_shape);
  std::vector<Products> products;
  int64_t weight_frac = 0;
  for (const Stage& st : ls.stages) {
    products.push_back(constant_products(st, st.exact ? st.uses : 1, o));
    weight_frac = std::max(weight_frac, products.back().weight_frac);
  }
  int64_t bias_terms = 0, bias_frac = 0;
  if (ls.bias.exact) {
    bias_terms = ls.bias.values.empty() ? 0
                                        : outputs * nonzero_count(ls.bias.values) /
                                              static_cast<int64_t>(ls.bias.values.size());
    for (double v : ls.bias.values) bias_frac = std::max(bias_frac, fraction_bits(v));
  } else if (ls.bias.count > 0) {
    bias_terms = outputs;
  }
  const int64_t width = accumulator_width(s, std::max(input_frac + weight_frac, bias_frac), o);
  f.accumulator_bits = width;
  int64_t cycles = 0;
  for (size_t k = 0; k < ls.stages.size(); ++k) {
    const Products& p = products[k];
    const bool last = k + 1 == ls.stages.size();
    // A separable convolution's depthwise part sums k products into each of positions x mid
    // values; the last stage sums into the layer's outputs.
    int64_t stage_outputs = outputs;
    if (!last) {
      int64_t taps = 1;
      for (int64_t kk : l.kernel_size) taps *= kk;
      stage_outputs = ls.stages[k].count / std::max<int64_t>(1, taps);
    }
    const int64_t terms = p.terms + (last ? bias_terms : 0);
    const int64_t adders = adders_of(terms, stage_outputs, o);
    f.dsp += p.dsp;
    f.lut_multipliers += p.lut;
    f.products_dsp += p.n_dsp;
    f.products_lut += p.n_lut;
    f.products_free += p.n_free;
    f.lut_adders += adders * width;
    const int64_t c = std::max<int64_t>(
        1, (p.n_dsp + p.n_lut > 0 ? 1 : 0) + adder_cycles(terms, stage_outputs, o));
    cycles += c;
    f.ff += c * stage_outputs * width;
  }
  f.latency_cycles = ls.stages.empty() ? 0 : cycles;
}

void estimate_recurrent(const LayerInfo& l, const LayerStats& s, const LayerStages& ls,
                        int64_t input_frac, const FpgaOptions& o, FpgaLayer& f) {
  const int64_t steps = l.input_shape[l.batch_first ? 1 : 0];
  const int64_t directions = l.bidirectional ? 2 : 1, h = l.out_channels;
  const int64_t rows = directions * l.gates * h;  // the gate pre-activations per layer and step
  int64_t weight_frac = 0;
  std::vector<Products> products;
  for (const Stage& st : ls.stages) {
    // One cell, reused over the time steps: each weight is instantiated once.
    Stage one = st;
    if (!one.exact) one.count = st.count / std::max<int64_t>(1, steps);
    products.push_back(constant_products(one, 1, o));
    weight_frac = std::max(weight_frac, products.back().weight_frac);
  }
  const int64_t width = accumulator_width(s, input_frac + weight_frac, o);
  f.accumulator_bits = width;
  // The biases per layer: the bias values are per layer (bias_ih, bias_hh per direction).
  const int64_t bias_values =
      ls.bias.exact ? static_cast<int64_t>(ls.bias.values.size()) : ls.bias.count;
  const int64_t bias_nonzero = ls.bias.exact ? nonzero_count(ls.bias.values) : ls.bias.count;
  const int64_t bias_terms_per_layer = bias_values > 0 ? bias_nonzero / l.num_layers : 0;
  const QuantizerPtr activation = l.quantizer("activation");
  const QuantizerPtr recurrent_activation = l.quantizer("recurrent_activation");
  const QuantizerPtr state = l.quantizer("state_quantizer");
  const int64_t act_bits = activation ? activation->bits() : o.float_bits;
  const int64_t gate_bits = recurrent_activation ? recurrent_activation->bits() : o.float_bits;
  const int64_t state_bits = state ? state->bits() : (l.gates == 1 ? act_bits : o.float_bits);
  int64_t cell_cycles = 0;
  for (int64_t layer = 0; layer < l.num_layers; ++layer) {
    const std::string suffix = l.num_layers == 1 ? "" : "_l" + std::to_string(layer);
    int64_t terms = bias_terms_per_layer, with_multiplier = 0;
    for (size_t k = 0; k < ls.stages.size(); ++k) {
      const std::string& part = ls.stages[k].part;
      const bool mine = part == "kernel" + suffix || part == "recurrent" + suffix ||
                        part == "recurrent_n" + suffix;
      if (!mine) continue;
      const Products& p = products[k];
      terms += p.terms;
      with_multiplier += p.n_dsp + p.n_lut;
      f.dsp += p.dsp;
      f.lut_multipliers += p.lut;
      f.products_dsp += p.n_dsp;
      f.products_lut += p.n_lut;
      f.products_free += p.n_free;
    }
    f.lut_adders += adders_of(terms, rows, o) * width;
    // The gate products: LSTM f c, i g, o act(c); GRU r (W h + b) or r h, z h, (1 - z) n.
    const int64_t gate_products = l.gates == 1 ? 0 : 3 * directions * h;
    variable_products(gate_products, gate_bits, std::max(state_bits, act_bits), o, f);
    // The activations: the gates, and an LSTM's act(c).
    const int64_t activations = rows + (l.gates == 4 ? directions * h : 0);
    f.lut_activations += activations * std::max(act_bits, gate_bits);
    const int64_t c = (with_multiplier > 0 ? 1 : 0) + adder_cycles(terms, rows, o) + 1 +
                      (gate_products > 0 ? 1 : 0);
    cell_cycles += c;
    f.ff += c * rows * width;
  }
  f.latency_cycles = steps * cell_cycles;
}

void estimate_batch_norm(const LayerInfo& l, const LayerStages& ls, const FpgaOptions& o,
                         FpgaLayer& f) {
  if (ls.stages.empty()) return;
  const Stage& st = ls.stages[0];
  const Products p = constant_products(st, st.uses, o);
  const int64_t outputs = numel_per_sample(l.output_shape);
  const int64_t shift_terms =
      ls.bias.values.empty()
          ? 0
          : outputs * nonzero_count(ls.bias.values) / static_cast<int64_t>(ls.bias.values.size());
  const int64_t width = hw_bits(st.input, o) + p.max_span + 1;
  f.accumulator_bits = width;
  f.dsp += p.dsp;
  f.lut_multipliers += p.lut;
  f.products_dsp += p.n_dsp;
  f.products_lut += p.n_lut;
  f.products_free += p.n_free;
  const int64_t terms = p.terms + shift_terms;
  f.lut_adders += adders_of(terms, outputs, o) * width;
  f.latency_cycles =
      std::max<int64_t>(1, (p.n_dsp + p.n_lut > 0 ? 1 : 0) + adder_cycles(terms, outputs, o));
  f.ff += f.latency_cycles * outputs * width;
}

}  // namespace

FpgaEstimate fpga_estimate(const std::vector<LayerInfo>& layers, const FpgaOptions& options) {
  const char* who = "fpga_estimate";
  check_options(options);
  const Prepared p = prepare(who, layers, options.input_quantizer, options.unknown_layers_as_zero);
  const std::vector<LayerStages> stages = all_stages(who, p);
  // The fractional bits of each layer's input: a function of its quantizer's spec alone, parsed
  // once per spec for the process.
  const auto input_frac = [&](const LayerStats& s) {
    if (!s.input_quantizer || s.input_quantizer->empty()) {
      return quantizer_fraction_bits(nullptr, options);
    }
    static std::mutex mutex;
    static auto* fractions = new std::unordered_map<std::string, int64_t>();  // never destroyed
    {
      std::lock_guard<std::mutex> lock(mutex);
      const auto it = fractions->find(*s.input_quantizer);
      if (it != fractions->end()) return it->second;
    }
    const int64_t frac = quantizer_fraction_bits(input_quantizer_of(s), options);
    std::lock_guard<std::mutex> lock(mutex);
    if (fractions->size() >= 1024) fractions->clear();  // bounded
    fractions->emplace(*s.input_quantizer, frac);
    return frac;
  };
  FpgaEstimate e;
  e.clock_period_ns = options.clock_period_ns;
  for (size_t i = 0; i < p.layers().size(); ++i) {
    const LayerInfo& l = p.layers()[i];
    const LayerStats& s = p.stats.layers[i];
    FpgaLayer f;
    f.name = l.name;
    f.type = layers[i].type;
    f.kind = l.kind;
    f.zero_cost = p.zero_cost[i];
    f.exact = stages[i].exact;
    if (f.zero_cost) {
      // nothing
    } else if (l.kind == LayerKind::kRecurrent) {
      estimate_recurrent(l, s, stages[i], input_frac(s), options, f);
    } else if (is_mac(l.kind)) {
      estimate_mac(l, s, stages[i], input_frac(s), options, f);
    } else if (l.kind == LayerKind::kActivation) {
      const int64_t outputs = numel_per_sample(l.output_shape);
      const int64_t bits = operand_type(l.quantizer("activation")).bits;
      f.lut_activations = outputs * bits;
      f.ff = outputs * bits;
      f.latency_cycles = 1;
    } else {
      estimate_batch_norm(l, stages[i], options, f);
    }
    f.lut = f.lut_multipliers + f.lut_adders + f.lut_activations;
    e.lut += f.lut;
    e.dsp += f.dsp;
    e.ff += f.ff;
    e.latency_cycles += f.latency_cycles;
    if (f.zero_cost) e.zero_cost_layers.push_back(f.name);
    e.layers.push_back(std::move(f));
  }
  e.latency_ns = static_cast<double>(e.latency_cycles) * options.clock_period_ns;
  return e;
}

FpgaEstimate fpga_estimate(torch::nn::Sequential model, const std::vector<int64_t>& input_shape,
                           const FpgaOptions& options) {
  check_options(options);
  return fpga_estimate(describe_model(std::move(model), input_shape), options);
}

std::string FpgaEstimate::to_string() const {
  std::ostringstream os;
  os << "\nFPGA estimate (fully unrolled, hls4ml latency strategy, reuse factor 1; clock "
     << nanoseconds(clock_period_ns) << " ns):\n";
  os << "    " << pad("layer", 24) << pad("type", 18) << rpad("LUT", 9) << rpad("(mult", 8)
     << rpad("add", 8) << rpad("act)", 8) << rpad("DSP", 7) << rpad("FF", 9) << rpad("cycles", 8)
     << rpad("acc", 5) << "\n";
  for (const FpgaLayer& l : layers) {
    std::string type = l.type;
    if (l.zero_cost)
      type += " *";
    else if (!l.exact)
      type += " ~";
    os << "    " << pad(l.name, 24) << pad(type, 18) << rpad(std::to_string(l.lut), 9)
       << rpad(std::to_string(l.lut_multipliers), 8) << rpad(std::to_string(l.lut_adders), 8)
       << rpad(std::to_string(l.lut_activations), 8) << rpad(std::to_string(l.dsp), 7)
       << rpad(std::to_string(l.ff), 9) << rpad(std::to_string(l.latency_cycles), 8)
       << rpad(l.accumulator_bits ? std::to_string(l.accumulator_bits) : "-", 5) << "\n";
  }
  os << "    " << std::string(104, '-') << "\n";
  os << "    " << pad("Total", 42) << rpad(std::to_string(lut), 9) << std::string(24, ' ')
     << rpad(std::to_string(dsp), 7) << rpad(std::to_string(ff), 9)
     << rpad(std::to_string(latency_cycles), 8) << "\n";
  os << "    latency " << latency_cycles << " cycles = " << nanoseconds(latency_ns)
     << " ns; LUT + 55 DSP = " << lut_equivalent() << "\n";
  bool approx = false;
  for (const FpgaLayer& l : layers) approx = approx || (!l.exact && !l.zero_cost);
  if (approx) os << "    ~ weight values unknown: every weight counted non-zero, at full width\n";
  if (!zero_cost_layers.empty()) os << "    * unknown layer, counted as zero\n";
  return os.str();
}

std::string FpgaEstimate::to_json() const {
  json jl = json::array();
  for (const FpgaLayer& l : layers) {
    json o = json::object();
    o["name"] = l.name;
    o["type"] = l.type;
    o["kind"] = layer_kind_name(l.kind);
    o["lut"] = l.lut;
    o["lut_multipliers"] = l.lut_multipliers;
    o["lut_adders"] = l.lut_adders;
    o["lut_activations"] = l.lut_activations;
    o["dsp"] = l.dsp;
    o["ff"] = l.ff;
    o["latency_cycles"] = l.latency_cycles;
    o["products_dsp"] = l.products_dsp;
    o["products_lut"] = l.products_lut;
    o["products_free"] = l.products_free;
    o["accumulator_bits"] = l.accumulator_bits;
    o["exact"] = l.exact;
    o["zero_cost"] = l.zero_cost;
    jl.push_back(std::move(o));
  }
  json root;
  root["layers"] = std::move(jl);
  root["lut"] = lut;
  root["dsp"] = dsp;
  root["ff"] = ff;
  root["latency_cycles"] = latency_cycles;
  root["latency_ns"] = latency_ns;
  root["clock_period_ns"] = clock_period_ns;
  root["zero_cost_layers"] = zero_cost_layers;
  return root.dump();
}

std::ostream& operator<<(std::ostream& os, const FpgaEstimate& estimate) {
  return os << estimate.to_string();
}

}  // namespace heteroq::cost
