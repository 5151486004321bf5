// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// model_quantize: QKeras's conversion rules (plan_model_quantize, shared with Python) and the
// converter for torch::nn::Sequential.
#include "heteroq/nn/convert.h"

#include <torch/torch.h>

#include <algorithm>
#include <set>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "heteroq/errors.h"
#include "heteroq/nn/conv.h"
#include "heteroq/nn/folded.h"
#include "heteroq/nn/layers.h"
#include "heteroq/nn/norm_pool.h"
#include "heteroq/nn/rnn.h"
#include "heteroq/quantizers/quantizer.h"

namespace heteroq::nn {

namespace {

using json = nlohmann::json;

struct KindRule {
  std::vector<std::string> keys;   // QKeras class first, then PyTorch spellings
  std::vector<std::string> slots;  // quantizer slots the entry may set
  std::string required;            // slot without which the layer stays float ("" = entry)
  std::string qclass = "";         // the class it becomes ("" = keys[0])
};

// The recurrent layers' slots (QKeras's quantize_rnn), SimpleRNN without the gates' activation.
const std::vector<std::string> kRnnSlots = {"kernel_quantizer", "recurrent_quantizer",
                                            "bias_quantizer", "state_quantizer",
                                            "activation_quantizer"};
std::vector<std::string> gated_rnn_slots() {
  auto s = kRnnSlots;
  s.push_back("recurrent_activation_quantizer");
  return s;
}

bool is_rnn_kind(const std::string& kind) {
  return kind == "SimpleRNN" || kind == "LSTM" || kind == "GRU" ||
         kind == "BidirectionalSimpleRNN" || kind == "BidirectionalLSTM" ||
         kind == "BidirectionalGRU";
}

const std::map<std::string, KindRule>& rules() {
  static const std::map<std::string, KindRule> r = {
      {"Dense", {{"QDense", "QLinear"}, {"kernel_quantizer", "bias_quantizer"}, "kernel_quantizer"}},
      {"Conv1D", {{"QConv1D", "QConv1d"}, {"kernel_quantizer", "bias_quantizer"}, "kernel_quantizer"}},
      {"Conv2D", {{"QConv2D", "QConv2d"}, {"kernel_quantizer", "bias_quantizer"}, "kernel_quantizer"}},
      {"Conv2DTranspose",
       {{"QConv2DTranspose", "QConvTranspose2d"}, {"kernel_quantizer", "bias_quantizer"},
        "kernel_quantizer"}},
      {"DepthwiseConv2D",
       {{"QDepthwiseConv2D", "QDepthwiseConv2d"}, {"depthwise_quantizer", "bias_quantizer"},
        "depthwise_quantizer"}},
      {"BatchNormalization",
       {{"QBatchNormalization", "QBatchNorm2d", "QBatchNorm1d"},
        {"gamma_quantizer", "beta_quantizer", "mean_quantizer", "variance_quantizer",
         "inverse_quantizer"},
        ""}},
      {"Activation", {{"QActivation"}, {"activation_quantizer"}, ""}},
      // With enable_bn_folding: a Conv2d / Linear followed by a batch norm (QKeras falls back to
      // the plain layer's key).
      {"Conv2DBatchnorm",
       {{"QConv2DBatchnorm", "QConv2dBatchNorm", "QConv2D", "QConv2d"},
        {"kernel_quantizer", "bias_quantizer", "folding_mode", "ema_freeze_delay"},
        "kernel_quantizer"}},
      {"DenseBatchnorm",
       {{"QDenseBatchnorm", "QLinearBatchNorm", "QDense", "QLinear"},
        {"kernel_quantizer", "bias_quantizer", "folding_mode", "ema_freeze_delay"},
        "kernel_quantizer"}},
      {"AveragePooling2D",
       {{"QAveragePooling2D", "QAvgPool2d"}, {"average_quantizer", "activation_quantizer"},
        "average_quantizer"}},
      {"GlobalAveragePooling2D",
       {{"QGlobalAveragePooling2D", "QGlobalAvgPool2d"}, {"average_quantizer", "activation_quantizer"},
        "average_quantizer"}},
      // Recurrent layers (QKeras: skipped without a kernel quantizer). A bidirectional layer
      // takes QKeras's QBidirectional entry first, then its class's.
      {"SimpleRNN", {{"QSimpleRNN", "QRNN"}, kRnnSlots, "kernel_quantizer"}},
      {"LSTM", {{"QLSTM"}, gated_rnn_slots(), "kernel_quantizer"}},
      {"GRU", {{"QGRU"}, gated_rnn_slots(), "kernel_quantizer"}},
      {"BidirectionalSimpleRNN",
       {{"QBidirectional", "QSimpleRNN", "QRNN"}, kRnnSlots, "kernel_quantizer", "QSimpleRNN"}},
      {"BidirectionalLSTM",
       {{"QBidirectional", "QLSTM"}, gated_rnn_slots(), "kernel_quantizer", "QLSTM"}},
      {"BidirectionalGRU",
       {{"QBidirectional", "QGRU"}, gated_rnn_slots(), "kernel_quantizer", "QGRU"}},
  };
  return r;
}

// Quantizers whose outputs are never negative: they cannot hold signed weights.
bool unsigned_only(const std::string& name) {
  return name == "quantized_relu" || name == "quantized_relu_po2" ||
         name == "quantized_sigmoid" || name == "bernoulli";
}

std::string spec_of(const json& v, const std::string& where) {
  try {
    if (v.is_string()) return get_quantizer(v.get<std::string>())->to_string();
    if (v.is_object()) return quantizer_from_json(v.dump())->to_string();
  } catch (const std::invalid_argument& e) {
    throw InvalidArgument("model_quantize: " + where + ": " + e.what());
  }
  throw InvalidArgument("model_quantize: " + where +
                        ": expected a quantizer spec string or a {\"class_name\", \"config\"} dict, "
                        "got " + v.dump());
}

}  // namespace

std::vector<std::optional<LayerPlan>> plan_model_quantize(const std::string& config_json,
                                                          const std::vector<FloatLayer>& layers,
                                                          std::optional<int64_t> activation_bits,
                                                          bool qkeras_compatible) {
  json config;
  try {
    config = json::parse(config_json);
  } catch (const json::exception& e) {
    throw InvalidArgument(std::string("model_quantize: the config is not valid JSON: ") + e.what());
  }
  if (!config.is_object()) throw InvalidArgument("model_quantize: the config must be a dict");
  if (activation_bits && (*activation_bits < 1 || *activation_bits > 32)) {
    throw InvalidArgument("model_quantize: `activation_bits` must be in [1, 32], got " +
                          std::to_string(*activation_bits));
  }
  // Every key must name a layer, a known class, or "default".
  std::set<std::string> names, classes{"default"};
  for (const auto& l : layers) names.insert(l.name);
  for (const auto& [kind, rule] : rules()) classes.insert(rule.keys.begin(), rule.keys.end());
  for (const auto& [key, value] : config.items()) {
    if (names.count(key) || classes.count(key)) continue;
    std::string known;
    for (const auto& c : classes) known += (known.empty() ? "" : ", ") + c;
    throw InvalidArgument("model_quantize: config key '" + key +
                          "' names no layer of the model and no known class (" + known + ")");
  }
  std::vector<std::optional<LayerPlan>> plans;
  for (const auto& layer : layers) {
    auto rit = rules().find(layer.kind);
    if (rit == rules().end()) {
      if (config.contains(layer.name)) {
        throw InvalidArgument("model_quantize: layer '" + layer.name + "' (" + layer.kind +
                              ") is in the config but heteroq cannot convert this kind of layer");
      }
      plans.emplace_back(std::nullopt);
      continue;
    }
    const KindRule& rule = rit->second;
    std::string key;
    if (config.contains(layer.name)) {
      key = layer.name;
    } else {
      for (const auto& k : rule.keys) {
        if (config.contains(k)) {
          key = k;
          break;
        }
      }
      if (key.empty() && config.contains("default")) key = "default";
    }
    // Folded kinds stay folded under a fallback key.
    LayerPlan plan{rule.qclass.empty() ? rule.keys[0] : rule.qclass, {}};
    const json* entry = key.empty() ? nullptr : &config[key];
    if (entry && entry->is_null()) entry = nullptr;  // a null entry: as if absent
    if (layer.kind == "Activation") {
      std::optional<std::string> spec;
      if (entry) {
        const std::string where = "'" + key + "'";
        if (entry->is_string()) {
          spec = spec_of(*entry, where);
        } else if (entry->is_object() && entry->contains("class_name")) {
          spec = spec_of(*entry, where);
        } else if (entry->is_object()) {
          // {activation_name: quantizer}; "default" entries may give "activation_quantizer".
          if (entry->contains(layer.activation) && !(*entry)[layer.activation].is_null()) {
            spec = spec_of((*entry)[layer.activation], where + "." + layer.activation);
          } else if (entry->contains("activation_quantizer")) {
            spec = spec_of((*entry)["activation_quantizer"], where + ".activation_quantizer");
          }
        } else {
          throw InvalidArgument("model_quantize: '" + key + "' must be a quantizer or a dict");
        }
      }
      if (!spec && activation_bits) {
        const std::string b = std::to_string(*activation_bits);
        if (layer.activation == "relu") spec = "quantized_relu(" + b + ",0)";
        if (layer.activation == "tanh") spec = "quantized_tanh(" + b + ")";
        if (layer.activation == "sigmoid") spec = "quantized_sigmoid(" + b + ")";
        if (spec) spec = get_quantizer(*spec)->to_string();
      }
      if (!spec) {
        plans.emplace_back(std::nullopt);
        continue;
      }
      plan.quantizers["activation"] = *spec;
      plans.emplace_back(plan);
      continue;
    }
    if (!entry) {
      plans.emplace_back(std::nullopt);
      continue;
    }
    if (!entry->is_object()) {
      throw InvalidArgument("model_quantize: '" + key + "' must be a dict of quantizers for " +
                            layer.kind + " layers, got " + entry->dump());
    }
    for (const auto& [slot, value] : entry->items()) {
      const bool known = std::find(rule.slots.begin(), rule.slots.end(), slot) != rule.slots.end();
      if (!known) {
        // "default" serves every kind: it may hold slots of other kinds; so does QKeras's
        // QBidirectional for the gates' activation, which a SimpleRNN does not have.
        if (key == "default") continue;
        if (key == "QBidirectional" && slot == "recurrent_activation_quantizer") continue;
        std::string allowed;
        for (const auto& s : rule.slots) allowed += (allowed.empty() ? "" : ", ") + s;
        throw InvalidArgument("model_quantize: '" + key + "' has no slot '" + slot + "' for " +
                              layer.kind + " layers (slots: " + allowed + ")");
      }
      if (value.is_null()) continue;
      if (slot == "folding_mode") {
        if (!value.is_string() || (value != "ema_stats_folding" && value != "batch_stats_folding")) {
          throw InvalidArgument("model_quantize: '" + key + "'.folding_mode must be "
                                "'ema_stats_folding' or 'batch_stats_folding', got " + value.dump());
        }
        plan.quantizers[slot] = value.get<std::string>();
        continue;
      }
      if (slot == "ema_freeze_delay") {
        if (!value.is_number_integer()) {
          throw InvalidArgument("model_quantize: '" + key + "'.ema_freeze_delay must be an integer "
                                "or null, got " + value.dump());
        }
        plan.quantizers[slot] = std::to_string(value.get<int64_t>());
        continue;
      }
      const bool rnn_activation_slot =
          is_rnn_kind(layer.kind) &&
          (slot == "activation_quantizer" || slot == "recurrent_activation_quantizer");
      if (rnn_activation_slot && value.is_string()) {
        // The recurrent layers' activations may also be float functions ("hard_sigmoid", ...).
        const auto& names = rnn_float_activations();
        const std::string name = value.get<std::string>();
        if (std::find(names.begin(), names.end(), name) != names.end()) {
          plan.quantizers[slot == "activation_quantizer" ? "activation" : "recurrent_activation"] =
              name;
          continue;
        }
      }
      std::string spec = spec_of(value, "'" + key + "'." + slot);
      const bool trainable_slot = slot == "kernel_quantizer" || slot == "recurrent_quantizer" ||
                                  slot == "depthwise_quantizer" ||
                                  slot == "pointwise_quantizer" || slot == "gamma_quantizer" ||
                                  slot == "variance_quantizer";
      if (qkeras_compatible && trainable_slot) {
        spec = qkeras_weight_quantizer(get_quantizer(spec))->to_string();
      }
      const bool weight_slot = slot == "kernel_quantizer" || slot == "depthwise_quantizer" ||
                               slot == "recurrent_quantizer" || slot == "bias_quantizer";
      const std::string qname = spec.substr(0, spec.find('('));
      if (weight_slot && unsigned_only(qname)) {
        throw InvalidArgument("model_quantize: '" + key + "'." + slot + " = " + spec +
                              " cannot quantize weights: " + qname +
                              " has no negative values (use quantized_bits, quantized_po2, "
                              "binary or ternary)");
      }
      const std::string target = slot == "activation_quantizer"             ? "activation"
                                 : slot == "recurrent_activation_quantizer" ? "recurrent_activation"
                                                                            : slot;
      plan.quantizers[target] = spec;
    }
    if (!rule.required.empty() && !plan.quantizers.count(rule.required)) {
      plans.emplace_back(std::nullopt);  // QKeras: no kernel quantizer, no conversion
      continue;
    }
    if (is_rnn_kind(layer.kind)) {
      // QKeras: a SimpleRNN ignores the gates' activation (its QBidirectional entry may give one).
      if (layer.kind.find("SimpleRNN") != std::string::npos) {
        plan.quantizers.erase("recurrent_activation");
      }
      // QKeras's quantize_activation: without an activation quantizer, the float layer's
      // activation ("tanh", "relu") becomes quantized_tanh/quantized_relu(activation_bits).
      if (!plan.quantizers.count("activation") && activation_bits) {
        const std::string b = std::to_string(*activation_bits);
        if (layer.activation == "tanh") {
          plan.quantizers["activation"] = get_quantizer("quantized_tanh(" + b + ")")->to_string();
        } else if (layer.activation == "relu") {
          plan.quantizers["activation"] = get_quantizer("quantized_relu(" + b + ",0)")->to_string();
        }
      }
    }
    if (layer.kind == "BatchNormalization" && key == "default" && plan.quantizers.empty()) {
      plans.emplace_back(std::nullopt);
      continue;
    }
    plans.emplace_back(plan);
  }
  return plans;
}

// ------------------------------------------------------------------------------------------------
namespace {

FloatLayer describe(const std::string& name, const std::shared_ptr<torch::nn::Module>& m) {
  if (m->as<torch::nn::Linear>()) return {name, "Dense", ""};
  if (m->as<torch::nn::Conv1d>()) return {name, "Conv1D", ""};
  if (auto c = m->as<torch::nn::Conv2d>()) {
    const auto& o = c->options;
    const bool depthwise = o.groups() > 1 && o.groups() == o.in_channels() &&
                           o.out_channels() % o.in_channels() == 0;
    return {name, depthwise ? "DepthwiseConv2D" : "Conv2D", ""};
  }
  if (m->as<torch::nn::ConvTranspose2d>()) return {name, "Conv2DTranspose", ""};
  if (m->as<torch::nn::BatchNorm1d>() || m->as<torch::nn::BatchNorm2d>()) {
    return {name, "BatchNormalization", ""};
  }
  if (m->as<torch::nn::ReLU>()) return {name, "Activation", "relu"};
  if (m->as<torch::nn::Tanh>()) return {name, "Activation", "tanh"};
  if (m->as<torch::nn::Sigmoid>()) return {name, "Activation", "sigmoid"};
  if (m->as<torch::nn::LeakyReLU>()) return {name, "Activation", "leakyrelu"};
  if (m->as<torch::nn::AvgPool2d>()) return {name, "AveragePooling2D", ""};
  if (auto r = m->as<torch::nn::RNN>()) {
    using std::get_if;
    const bool relu = get_if<torch::enumtype::kReLU>(&r->options.nonlinearity()) != nullptr;
    return {name, std::string(r->options.bidirectional() ? "Bidirectional" : "") + "SimpleRNN",
            relu ? "relu" : "tanh"};
  }
  if (auto l = m->as<torch::nn::LSTM>()) {
    return {name, std::string(l->options.bidirectional() ? "Bidirectional" : "") + "LSTM", "tanh"};
  }
  if (auto g = m->as<torch::nn::GRU>()) {
    return {name, std::string(g->options.bidirectional() ? "Bidirectional" : "") + "GRU", "tanh"};
  }
  if (auto a = m->as<torch::nn::AdaptiveAvgPool2d>()) {
    const auto& size = a->options.output_size();
    const bool global = size->at(0) == 1 && size->at(1) == 1;
    return {name, global ? "GlobalAveragePooling2D" : "AdaptiveAvgPool2d", ""};
  }
  return {name, m->name(), ""};
}

// The integer padding of a conv's options (a c10::variant in LibTorch 1.x, a std::variant in
// 2.x: `get_if` is found by argument-dependent lookup in both).
template <size_t D, typename Variant>
torch::ExpandingArray<D> int_padding(const Variant& padding, const std::string& name) {
  using std::get_if;
  if (const auto* p = get_if<torch::ExpandingArray<D>>(&padding)) return *p;
  throw InvalidArgument("model_quantize: layer '" + name +
                        "': padding='same'/'valid' is not supported; give integer padding");
}

template <typename M>
void add(torch::nn::Sequential& seq, const std::string& name, M module) {
  seq->push_back(std::string(name), torch::nn::AnyModule(std::move(module)));
}

QuantizerArg slot(const LayerPlan& p, const std::string& s) {
  auto it = p.quantizers.find(s);
  return it == p.quantizers.end() ? QuantizerArg() : QuantizerArg(it->second);
}

// Whether a convolution pads with zeros (the quantized layers do; the option is a c10::variant in
// LibTorch 1.x and a std::variant in 2.x, found by argument-dependent lookup).
template <typename TorchOptions>
bool zero_padding_mode(const TorchOptions& o) {
  using std::get_if;
  return get_if<torch::enumtype::kZeros>(&o.padding_mode()) != nullptr;
}

template <typename TorchOptions>
void require_zero_padding_mode(const TorchOptions& o, const std::string& name) {
  if (!zero_padding_mode(o)) {
    throw InvalidArgument("model_quantize: layer '" + name +
                          "': only padding_mode zeros is supported by the quantized layers");
  }
}

// The module's parameters' (or buffers') device and dtype: the converted layer moves there.
void match_device_and_dtype(torch::nn::Module& from, torch::nn::Module& to) {
  auto params = from.parameters();
  auto buffers = from.buffers();
  const torch::Tensor* ref = !params.empty() ? &params[0] : (!buffers.empty() ? &buffers[0] : nullptr);
  if (!ref) return;
  if (ref->is_floating_point()) {
    to.to(ref->device(), ref->scalar_type());
  } else {
    to.to(ref->device());
  }
}

// The quantized convolution's options from a torch::nn::Conv{1,2}d's.
template <size_t D, typename TorchOptions>
QConvOptions<D> conv_options(const TorchOptions& o, const LayerPlan& p, const std::string& name) {
  require_zero_padding_mode(o, name);
  return QConvOptions<D>(o.in_channels(), o.out_channels(), o.kernel_size())
      .stride(o.stride())
      .padding(int_padding<D>(o.padding(), name))
      .dilation(o.dilation())
      .groups(o.groups())
      .bias(o.bias())
      .kernel_quantizer(slot(p, "kernel_quantizer"))
      .bias_quantizer(slot(p, "bias_quantizer"));
}

// The recurrent layer's options from a torch::nn::RNN/LSTM/GRU's: the activations the plan gives,
// else the float layer's (tanh or relu; sigmoid for the gates).
template <typename QOptions, typename TorchOptions>
QOptions rnn_options(const TorchOptions& o, const LayerPlan& p, const std::string& activation) {
  QOptions q(o.input_size(), o.hidden_size());
  q.num_layers(o.num_layers())
      .bias(o.bias())
      .batch_first(o.batch_first())
      .dropout(o.dropout())
      .bidirectional(o.bidirectional())
      .kernel_quantizer(slot(p, "kernel_quantizer"))
      .recurrent_quantizer(slot(p, "recurrent_quantizer"))
      .bias_quantizer(slot(p, "bias_quantizer"))
      .state_quantizer(slot(p, "state_quantizer"));
  auto it = p.quantizers.find("activation");
  q.activation(RNNActivation(it == p.quantizers.end() ? activation : it->second));
  if constexpr (!std::is_same_v<QOptions, QSimpleRNNOptions>) {
    auto r = p.quantizers.find("recurrent_activation");
    q.recurrent_activation(RNNActivation(r == p.quantizers.end() ? "sigmoid" : r->second));
  }
  return q;
}

void copy_state(torch::nn::Module& from, torch::nn::Module& to, const std::string& name) {
  torch::NoGradGuard no_grad;
  auto src = from.named_parameters(true);
  auto dst = to.named_parameters(true);
  auto src_b = from.named_buffers(true);
  auto dst_b = to.named_buffers(true);
  for (auto& item : src) {
    std::string key = item.key();
    const torch::Tensor* target = dst.find(key);
    if (!target) target = dst.find("conv." + key);  // QDepthwiseConv2d wraps a QConv2d
    if (!target || !target->defined() || !item.value().defined()) continue;
    if (!target->sizes().equals(item.value().sizes())) {
      throw InvalidArgument("model_quantize: layer '" + name + "': parameter '" + key +
                            "' has shape " + c10::str(item.value().sizes()) + ", the quantized " +
                            "layer expects " + c10::str(target->sizes()));
    }
    const_cast<torch::Tensor&>(*target).copy_(item.value());
  }
  for (auto& item : src_b) {
    const torch::Tensor* target = dst_b.find(item.key());
    if (target && target->defined() && item.value().defined()) {
      const_cast<torch::Tensor&>(*target).copy_(item.value());
    }
  }
}

}  // namespace

torch::nn::Sequential model_quantize(const torch::nn::Sequential& model,
                                     const std::string& config_json,
                                     std::optional<int64_t> activation_bits,
                                     bool transfer_weights, bool enable_bn_folding,
                                     bool qkeras_compatible) {
  std::vector<FloatLayer> layers;
  const auto children = model->named_children();
  for (const auto& item : children) layers.push_back(describe(item.key(), item.value()));
  // Batch-norm folding: a Conv2d / Linear directly followed by a matching batch norm.
  std::map<size_t, size_t> pairs;
  if (enable_bn_folding) {
    for (size_t i = 0; i + 1 < children.size(); ++i) {
      const auto& a = children[i].value();
      const auto& b = children[i + 1].value();
      if (layers[i].kind == "Conv2D" && b->as<torch::nn::BatchNorm2d>() &&
          zero_padding_mode(a->as<torch::nn::Conv2d>()->options)) {
        const auto& bo = b->as<torch::nn::BatchNorm2d>()->options;
        if (bo.affine() && bo.track_running_stats() &&
            bo.num_features() == a->as<torch::nn::Conv2d>()->options.out_channels()) {
          pairs[i] = i + 1;
        }
      } else if (layers[i].kind == "Dense" && b->as<torch::nn::BatchNorm1d>()) {
        const auto& bo = b->as<torch::nn::BatchNorm1d>()->options;
        if (bo.affine() && bo.track_running_stats() &&
            bo.num_features() == a->as<torch::nn::Linear>()->options.out_features()) {
          pairs[i] = i + 1;
        }
      }
    }
    for (const auto& [i, j] : pairs) {
      layers[i].kind = layers[i].kind == "Conv2D" ? "Conv2DBatchnorm" : "DenseBatchnorm";
      layers[j].kind = "FoldedBatchNormalization";
    }
  }
  const auto plans = plan_model_quantize(config_json, layers, activation_bits, qkeras_compatible);
  std::set<size_t> folded_away;
  for (const auto& [i, j] : pairs) {
    if (plans[i]) folded_away.insert(j);
  }
  torch::nn::Sequential out;
  for (size_t i = 0; i < children.size(); ++i) {
    const std::string& name = children[i].key();
    const auto& m = children[i].value();
    if (folded_away.count(i)) {
      add(out, name, torch::nn::Identity());
      continue;
    }
    if (plans[i]) {
      const LayerPlan& p = *plans[i];
      if (p.qclass == "QConv2DBatchnorm" || p.qclass == "QDenseBatchnorm") {
        const auto& bnm = children[pairs.at(i)].value();
        const auto& bo = p.qclass == "QConv2DBatchnorm" ? bnm->as<torch::nn::BatchNorm2d>()->options
                                                        : bnm->as<torch::nn::BatchNorm1d>()->options;
        FoldingOptions fo;
        fo.eps(bo.eps()).momentum(bo.momentum() ? std::optional<double>(*bo.momentum())
                                                : std::nullopt);
        if (p.quantizers.count("folding_mode")) fo.folding_mode(p.quantizers.at("folding_mode"));
        if (p.quantizers.count("ema_freeze_delay")) {
          fo.ema_freeze_delay(std::stoll(p.quantizers.at("ema_freeze_delay")));
        }
        std::shared_ptr<torch::nn::Module> q;
        if (p.qclass == "QConv2DBatchnorm") {
          const auto& o = m->as<torch::nn::Conv2d>()->options;
          require_zero_padding_mode(o, name);
          auto l = QConv2dBatchNorm(
              QConv2dBatchNormOptions(o.in_channels(), o.out_channels(), o.kernel_size())
                  .stride(o.stride())
                  .padding(int_padding<2>(o.padding(), name))
                  .dilation(o.dilation())
                  .groups(o.groups())
                  .bias(o.bias())
                  .kernel_quantizer(slot(p, "kernel_quantizer"))
                  .bias_quantizer(slot(p, "bias_quantizer"))
                  .folding(fo));
          add(out, name, l);
          q = l.ptr();
        } else {
          const auto& o = m->as<torch::nn::Linear>()->options;
          auto l = QLinearBatchNorm(QLinearBatchNormOptions(o.in_features(), o.out_features())
                                        .bias(o.bias())
                                        .kernel_quantizer(slot(p, "kernel_quantizer"))
                                        .bias_quantizer(slot(p, "bias_quantizer"))
                                        .folding(fo));
          add(out, name, l);
          q = l.ptr();
        }
        match_device_and_dtype(*m, *q);
        if (transfer_weights) {
          torch::NoGradGuard no_grad;
          auto qp = q->named_parameters();
          auto qb = q->named_buffers();
          auto mp = m->named_parameters();
          auto bp = bnm->named_parameters();
          auto bb = bnm->named_buffers();
          qp["weight"].copy_(mp["weight"]);
          if (mp.contains("bias") && mp["bias"].defined()) qp["bias"].copy_(mp["bias"]);
          qp["gamma"].copy_(bp["weight"]);
          qp["beta"].copy_(bp["bias"]);
          qb["running_mean"].copy_(bb["running_mean"]);
          qb["running_var"].copy_(bb["running_var"]);
          qb["num_batches_tracked"].copy_(bb["num_batches_tracked"]);
        }
        continue;
      }
    }
    if (!plans[i]) {
      // An independent copy, as the converted layers are: training the result leaves the
      // original model (e.g. its batch-norm statistics) untouched.
      out->push_back(std::string(name),
                     (model->begin() + static_cast<std::ptrdiff_t>(i))->clone());
      continue;
    }
    const LayerPlan& p = *plans[i];
    const std::string& kind = layers[i].kind;
    std::shared_ptr<torch::nn::Module> q;
    if (kind == "Dense") {
      const auto& o = m->as<torch::nn::Linear>()->options;
      auto l = QLinear(QLinearOptions(o.in_features(), o.out_features())
                           .bias(o.bias())
                           .kernel_quantizer(slot(p, "kernel_quantizer"))
                           .bias_quantizer(slot(p, "bias_quantizer")));
      add(out, name, l);
      q = l.ptr();
    } else if (kind == "Conv1D") {
      auto l = QConv1d(conv_options<1>(m->as<torch::nn::Conv1d>()->options, p, name));
      add(out, name, l);
      q = l.ptr();
    } else if (kind == "Conv2D" || kind == "DepthwiseConv2D") {
      const auto& o = m->as<torch::nn::Conv2d>()->options;
      const auto pad = int_padding<2>(o.padding(), name);
      if (kind == "Conv2D") {
        auto l = QConv2d(conv_options<2>(o, p, name));
        add(out, name, l);
        q = l.ptr();
      } else {
        require_zero_padding_mode(o, name);
        auto l = QDepthwiseConv2d(QDepthwiseConv2dOptions(o.in_channels(), o.kernel_size())
                                      .depth_multiplier(o.out_channels() / o.in_channels())
                                      .stride(o.stride())
                                      .padding(pad)
                                      .dilation(o.dilation())
                                      .bias(o.bias())
                                      .depthwise_quantizer(slot(p, "depthwise_quantizer"))
                                      .bias_quantizer(slot(p, "bias_quantizer")));
        add(out, name, l);
        q = l.ptr();
      }
    } else if (kind == "Conv2DTranspose") {
      const auto& o = m->as<torch::nn::ConvTranspose2d>()->options;
      auto l = QConvTranspose2d(
          QConv2dOptions(o.in_channels(), o.out_channels(), o.kernel_size())
              .stride(o.stride())
              .padding(int_padding<2>(o.padding(), name))
              .output_padding(o.output_padding())
              .dilation(o.dilation())
              .groups(o.groups())
              .bias(o.bias())
              .kernel_quantizer(slot(p, "kernel_quantizer"))
              .bias_quantizer(slot(p, "bias_quantizer")));
      add(out, name, l);
      q = l.ptr();
    } else if (kind == "BatchNormalization") {
      const bool one_d = static_cast<bool>(m->as<torch::nn::BatchNorm1d>());
      const auto& o = one_d ? m->as<torch::nn::BatchNorm1d>()->options
                            : m->as<torch::nn::BatchNorm2d>()->options;
      QBatchNormOptions bo(o.num_features());
      bo.eps(o.eps())
          .affine(o.affine())
          .track_running_stats(o.track_running_stats())
          .gamma_quantizer(slot(p, "gamma_quantizer"))
          .beta_quantizer(slot(p, "beta_quantizer"))
          .mean_quantizer(slot(p, "mean_quantizer"))
          .variance_quantizer(slot(p, "variance_quantizer"))
          .inverse_quantizer(slot(p, "inverse_quantizer"));
      if (o.momentum()) {
        bo.momentum(*o.momentum());
      } else {
        bo.momentum(std::nullopt);
      }
      if (one_d) {
        auto l = QBatchNorm1d(bo);
        add(out, name, l);
        q = l.ptr();
      } else {
        auto l = QBatchNorm2d(bo);
        add(out, name, l);
        q = l.ptr();
      }
    } else if (is_rnn_kind(kind)) {
      if (auto r = m->as<torch::nn::RNN>()) {
        auto l = QSimpleRNN(rnn_options<QSimpleRNNOptions>(r->options, p, layers[i].activation));
        add(out, name, l);
        q = l.ptr();
      } else if (auto lstm = m->as<torch::nn::LSTM>()) {
        if (lstm->options.proj_size() > 0) {
          throw InvalidArgument("model_quantize: layer '" + name +
                                "': LSTM with proj_size is not supported by QLSTM");
        }
        auto l = QLSTM(rnn_options<QLSTMOptions>(lstm->options, p, "tanh"));
        add(out, name, l);
        q = l.ptr();
      } else {
        auto l = QGRU(rnn_options<QGRUOptions>(m->as<torch::nn::GRU>()->options, p, "tanh"));
        add(out, name, l);
        q = l.ptr();
      }
    } else if (kind == "Activation") {
      add(out, name, QActivation(slot(p, "activation")));
      continue;
    } else if (kind == "AveragePooling2D") {
      const auto& o = m->as<torch::nn::AvgPool2d>()->options;
      if (o.divisor_override()) {
        throw InvalidArgument("model_quantize: layer '" + name + "': divisor_override is not supported");
      }
      add(out, name, QAvgPool2d(QAvgPool2dOptions(o.kernel_size())
                                          .stride(o.stride())
                                          .padding(o.padding())
                                          .ceil_mode(o.ceil_mode())
                                          .count_include_pad(o.count_include_pad())
                                          .average_quantizer(slot(p, "average_quantizer"))
                                          .activation(slot(p, "activation"))));
      continue;
    } else if (kind == "GlobalAveragePooling2D") {
      add(out, name, QGlobalAvgPool2d(QGlobalAvgPool2dOptions()
                                                .average_quantizer(slot(p, "average_quantizer"))
                                                .activation(slot(p, "activation"))
                                                .keepdim(true)));
      continue;
    }
    if (q) match_device_and_dtype(*m, *q);
    if (transfer_weights && q) copy_state(*m, *q, name);
  }
  out->train(model->is_training());
  return out;
}

}  // namespace heteroq::nn
