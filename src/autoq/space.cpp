// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// AutoQ search space: AutoQKeras's AutoQKHyperModel._get_quantizer / quantize_model rules.
#include "heteroq/autoq/space.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "heteroq/errors.h"

namespace heteroq::autoq {

using ojson = nlohmann::ordered_json;

namespace {

const std::vector<double> kFilterRange = {0.5, 0.75, 1.0, 1.5, 2.0};

bool is_kernel_kind(const std::string& k) {
  return k == "Dense" || k == "Conv1D" || k == "Conv2D" || k == "DepthwiseConv2D" ||
         k == "Conv2DTranspose";
}

bool is_filter_kind(const std::string& k) { return k == "Dense" || k == "Conv1D" || k == "Conv2D"; }

ojson parse(const std::string& text, const std::string& what) {
  try {
    return ojson::parse(text);
  } catch (const std::exception& e) {
    throw InvalidArgument("autoq: " + what + " is not valid JSON: " + e.what());
  }
}

std::string factor_text(double f) {
  std::string s = ojson(f).dump();
  return s;
}

}  // namespace

std::string default_quantization_config() {
  return R"JSON({
  "kernel": {"binary": 1, "stochastic_binary": 1, "ternary": 2,
             "stochastic_ternary(alpha='auto_po2')": 2,
             "quantized_bits(2,1,1,alpha=1.0)": 2, "quantized_bits(4,0,1)": 4,
             "quantized_bits(8,0,1)": 8, "quantized_po2(4,1)": 4},
  "bias": {"quantized_bits(4,0,1)": 4, "quantized_bits(8,3,1)": 8, "quantized_po2(4,8)": 4},
  "activation": {"binary": 1, "binary(alpha='auto_po2')": 1, "ternary": 2,
                 "quantized_relu(3,1)": 3, "quantized_relu(4,2)": 4, "quantized_relu(8,2)": 8,
                 "quantized_relu(8,4)": 8, "quantized_relu(16,8)": 16,
                 "quantized_relu_po2(4,4)": 4},
  "linear": {"binary": 1, "ternary": 2, "quantized_bits(4,1)": 4, "quantized_bits(8,2)": 8,
             "quantized_bits(16,10)": 16, "quantized_po2(6,4)": 6}
})JSON";
}

SearchSpace SearchSpace::build(const std::vector<LayerDesc>& layers, const SpaceOptions& options) {
  SearchSpace s;
  s.layers_ = layers;
  s.activation_bits_ = options.activation_bits;
  if (options.activation_bits < 1)
    throw InvalidArgument("autoq: activation_bits must be >= 1, got " +
                          std::to_string(options.activation_bits));

  // quantization_config: field -> ordered {spec: bits}.
  const ojson qconfig = parse(options.quantization_config.empty() ? default_quantization_config()
                                                                  : options.quantization_config,
                              "quantization_config");
  if (!qconfig.is_object())
    throw InvalidArgument("autoq: quantization_config must be a JSON object of fields");
  static const std::set<std::string> kFields = {"kernel",
                                                "bias",
                                                "activation",
                                                "linear",
                                                "pointwise_kernel",
                                                "recurrent_kernel",
                                                "recurrent_activation"};
  for (const auto& [field, entries] : qconfig.items()) {
    if (!kFields.count(field))
      throw InvalidArgument("autoq: quantization_config has an unknown field \"" + field +
                            "\" (expected kernel, bias, activation, linear, pointwise_kernel, "
                            "recurrent_kernel or recurrent_activation)");
    if (!entries.is_object())
      throw InvalidArgument("autoq: quantization_config[\"" + field +
                            "\"] must be an object {quantizer: bits}");
    for (const auto& [spec, bits] : entries.items()) {
      if (!bits.is_number() || !std::isfinite(bits.get<double>()) || bits.get<double>() <= 0)
        throw InvalidArgument("autoq: quantization_config[\"" + field + "\"][\"" + spec +
                              "\"] must be a positive number of bits, got " + bits.dump());
    }
  }

  // limit, padded as _adjust_limit.
  ojson limit = options.limit.empty() ? ojson::object() : parse(options.limit, "limit");
  if (!limit.is_object()) throw InvalidArgument("autoq: limit must be a JSON object");
  const bool no_limit = limit.empty();
  ojson def = limit.contains("default") ? limit["default"] : ojson(8);
  if (def.is_number()) def = ojson::array({def, def, def});
  if (!def.is_array() || def.size() != 3)
    throw InvalidArgument("autoq: limit[\"default\"] must be a number or a list of 3 values, got " +
                          def.dump());
  for (auto& [key, entry] : limit.items()) {
    if (key == "default") continue;
    if (entry.is_number()) entry = ojson::array({entry, entry, entry});
    if (!entry.is_array())
      throw InvalidArgument("autoq: limit[\"" + key + "\"] must be a list, got " + entry.dump());
    if (is_kernel_kind(key) && entry.size() < 3)
      for (size_t i = entry.size(); i < 3; ++i) entry.push_back(def[i]);
    for (const auto& v : entry)
      if (!(v.is_number() || (v.is_array() && std::all_of(v.begin(), v.end(), [](const ojson& x) {
                                return x.is_string();
                              }))))
        throw InvalidArgument("autoq: limit[\"" + key +
                              "\"] values must be bit counts or lists of quantizer strings, got " +
                              v.dump());
  }
  std::vector<std::pair<std::string, std::regex>> patterns;
  for (const auto& [key, entry] : limit.items()) {
    if (key == "default") continue;
    try {
      patterns.emplace_back(key, std::regex(key, std::regex::ECMAScript));
    } catch (const std::regex_error& e) {
      throw InvalidArgument("autoq: limit key \"" + key + "\" is not a valid regex: " + e.what());
    }
  }

  if (options.tune_filters != "none" && options.tune_filters != "layer" &&
      options.tune_filters != "block")
    throw InvalidArgument("autoq: tune_filters must be \"none\", \"layer\" or \"block\", got \"" +
                          options.tune_filters + "\"");
  std::optional<std::regex> exceptions;
  if (!options.tune_filters_exceptions.empty()) {
    try {
      exceptions.emplace(options.tune_filters_exceptions, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      throw InvalidArgument("autoq: tune_filters_exceptions \"" + options.tune_filters_exceptions +
                            "\" is not a valid regex: " + e.what());
    }
  }

  std::set<std::string> names;
  for (const auto& l : layers) names.insert(l.name);
  std::set<std::string> frozen;
  for (const auto& f : options.frozen_layers) {
    if (!names.count(f))
      throw InvalidArgument("autoq: frozen layer \"" + f + "\" is not a layer of the model");
    frozen.insert(f);
  }
  std::set<int64_t> indexes;
  if (options.layer_indexes) {
    for (int64_t i : *options.layer_indexes) {
      if (i < 0 || i >= static_cast<int64_t>(layers.size()))
        throw InvalidArgument("autoq: layer_indexes entry " + std::to_string(i) +
                              " is out of range [0, " + std::to_string(layers.size()) + ")");
      indexes.insert(i);
    }
  }
  ojson fixed =
      options.fixed_config.empty() ? ojson::object() : parse(options.fixed_config, "fixed_config");
  if (!fixed.is_object()) throw InvalidArgument("autoq: fixed_config must be a JSON object");
  for (const auto& [key, v] : fixed.items())
    if (!names.count(key))
      throw InvalidArgument("autoq: fixed_config key \"" + key + "\" is not a layer of the model");
  s.fixed_config_ = fixed.dump();

  // Pattern groups: pattern -> limit index -> param.
  std::map<std::string, std::map<int, int64_t>> groups;
  std::map<std::string, int64_t> by_name;

  auto add_param = [&](Param p) -> int64_t {
    if (by_name.count(p.name))
      throw InvalidArgument("autoq: two hyperparameters are named \"" + p.name +
                            "\" (a limit regex and a layer name collide)");
    by_name[p.name] = static_cast<int64_t>(s.params_.size());
    s.params_.push_back(std::move(p));
    return static_cast<int64_t>(s.params_.size()) - 1;
  };

  // AutoQKeras's _get_quantizer: -1 when the layer is not covered by the limit.
  auto get_quantizer = [&](const LayerDesc& layer, const std::string& field, int index,
                           const std::string& head) -> int64_t {
    std::string name = layer.kind;
    bool found = false;
    for (const auto& [key, re] : patterns) {
      if (std::regex_search(layer.name, re, std::regex_constants::match_continuous)) {
        name = key;
        found = true;
        break;
      }
    }
    if (!found && !no_limit && !limit.contains(name)) return -1;
    if (found && groups.count(name) && groups[name].count(index)) {
      const int64_t p = groups[name][index];
      s.params_[p].layers.push_back(layer.name);
      return p;
    }
    if (!qconfig.contains(field)) return -1;  // the slot stays float
    if (qconfig[field].empty())
      throw InvalidArgument("autoq: layer \"" + layer.name + "\" needs quantizers of field \"" +
                            field + "\", which quantization_config leaves empty");
    const ojson& q = qconfig[field];
    Param p;
    p.kind = "quantizer";
    p.field = field;
    p.layers = {layer.name};
    p.name = (found ? name + "_" + field : head) + "_quantizer";
    if (no_limit) {
      for (const auto& [spec, bits] : q.items()) {
        p.choices.push_back(spec);
        p.bits.push_back(bits.get<double>());
      }
    } else {
      const ojson& entry = limit[name];
      const int64_t n = static_cast<int64_t>(entry.size());
      const int64_t at = index < 0 ? n + index : index;
      if (at < 0 || at >= n)
        throw InvalidArgument("autoq: limit[\"" + name + "\"] has no entry for the " + field +
                              " of layer \"" + layer.name + "\" (index " + std::to_string(index) +
                              " of " + entry.dump() + ")");
      const ojson& v = entry[at];
      if (v.is_array()) {
        for (const auto& spec : v) {
          const std::string sp = spec.get<std::string>();
          if (!q.contains(sp))
            throw InvalidArgument("autoq: limit[\"" + name + "\"] names quantizer \"" + sp +
                                  "\", which is not in quantization_config[\"" + field + "\"]");
          p.choices.push_back(sp);
          p.bits.push_back(q[sp].get<double>());
        }
      } else {
        for (const auto& [spec, bits] : q.items()) {
          if (bits.get<double>() <= v.get<double>()) {
            p.choices.push_back(spec);
            p.bits.push_back(bits.get<double>());
          }
        }
      }
      if (p.choices.empty())
        throw InvalidArgument(
            "autoq: limit[\"" + name + "\"] = " + v.dump() + " for the " + field + " of layer \"" +
            layer.name + "\" is below every quantizer of quantization_config[\"" + field + "\"]");
    }
    const int64_t idx = add_param(std::move(p));
    if (found) groups[name][index] = idx;
    return idx;
  };

  int64_t network_filters = -1;
  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerDesc& layer = layers[i];
    if (options.layer_indexes && !indexes.count(static_cast<int64_t>(i))) continue;
    if (frozen.count(layer.name)) continue;
    LayerSlots ls;
    ls.name = layer.name;
    if (is_kernel_kind(layer.kind)) {
      const int64_t kq = get_quantizer(layer, "kernel", 0, layer.name + "_kernel");
      if (kq < 0) continue;
      ls.slots.emplace_back(
          layer.kind == "DepthwiseConv2D" ? "depthwise_quantizer" : "kernel_quantizer", kq);
      if (options.tune_filters != "none" && is_filter_kind(layer.kind) &&
          !(exceptions && std::regex_search(layer.name, *exceptions))) {
        if (layer.width <= 0)
          throw InvalidArgument("autoq: layer \"" + layer.name +
                                "\" has no width (units/filters) to tune");
        Param p;
        p.kind = "filters";
        p.field = "filters";
        for (double f : kFilterRange) {
          p.choices.push_back(factor_text(f));
          p.bits.push_back(f);
        }
        if (options.tune_filters == "layer") {
          p.name = "network_filters_" + layer.name;
          p.layers = {layer.name};
          ls.filters_param = add_param(std::move(p));
        } else {
          if (network_filters < 0) {
            p.name = "network_filters";
            p.layers = {layer.name};
            network_filters = add_param(std::move(p));
          } else {
            s.params_[network_filters].layers.push_back(layer.name);
          }
          ls.filters_param = network_filters;
        }
      }
      if (layer.has_bias) {
        const int64_t bq = get_quantizer(layer, "bias", 1, layer.name + "_bias");
        if (bq >= 0) ls.slots.emplace_back("bias_quantizer", bq);
      }
      const std::string& a = layer.activation;
      if (!a.empty() && a != "linear" && a != "softmax") {
        const int64_t aq = get_quantizer(layer, "activation", -1, layer.name + "_activation");
        if (aq >= 0) ls.slots.emplace_back("activation", aq);
      }
    } else if (layer.kind == "Activation") {
      if (layer.activation == "softmax") continue;
      const bool linear = layer.activation == "linear";
      const int64_t aq = get_quantizer(layer, linear ? "linear" : "activation", linear ? 0 : -1,
                                       layer.name + "_activation");
      if (aq < 0) continue;
      ls.slots.emplace_back("activation", aq);
      ls.activation_layer = true;
    } else if (!no_limit) {
      bool covered = limit.contains(layer.kind);
      for (const auto& [key, re] : patterns)
        if (std::regex_search(layer.name, re, std::regex_constants::match_continuous))
          covered = true;
      if (!covered) continue;
      ls.empty_entry = true;
    } else {
      continue;
    }
    if (fixed.contains(layer.name))
      throw InvalidArgument("autoq: layer \"" + layer.name +
                            "\" is both searched and fixed by fixed_config (freeze it, or drop "
                            "its fixed entry)");
    s.slots_.push_back(std::move(ls));
  }
  if (s.params_.empty())
    throw InvalidArgument(
        "autoq: empty search space: no layer of the model is searched (check limit, "
        "layer_indexes and frozen_layers against the layer kinds and names)");
  return s;
}

SearchSpace SearchSpace::from_bit_ranges(const std::vector<LayerDesc>& layers, const BitRanges& r,
                                         SpaceOptions options) {
  if (!options.quantization_config.empty())
    throw InvalidArgument(
        "autoq: from_bit_ranges builds the quantization_config; options.quantization_config must "
        "be empty");
  ojson config = ojson::object();
  auto field = [&](const std::string& name, int64_t lo, int64_t hi, const std::string& tmpl) {
    if (lo == 0 && hi == 0) return;
    if (lo < 1 || hi < lo)
      throw InvalidArgument("autoq: bit range for " + name +
                            " must satisfy 1 <= min <= max, got [" + std::to_string(lo) + ", " +
                            std::to_string(hi) + "]");
    if (tmpl.find("{bits}") == std::string::npos)
      throw InvalidArgument("autoq: the " + name + " template \"" + tmpl + "\" has no {bits}");
    ojson f = ojson::object();
    for (int64_t b = lo; b <= hi; ++b) {
      std::string spec = tmpl;
      for (size_t at; (at = spec.find("{bits}")) != std::string::npos;)
        spec.replace(at, 6, std::to_string(b));
      f[spec] = b;
    }
    config[name] = f;
  };
  field("kernel", r.kernel_min, r.kernel_max, r.kernel_template);
  field("bias", r.bias_min, r.bias_max, r.bias_template);
  field("activation", r.activation_min, r.activation_max, r.activation_template);
  if (config.empty()) throw InvalidArgument("autoq: every bit range is empty");
  options.quantization_config = config.dump();
  return build(layers, options);
}

double SearchSpace::cardinality() const {
  double n = 1.0;
  for (const auto& p : params_) n *= static_cast<double>(p.choices.size());
  return n;
}

TrialConfig SearchSpace::decode(const std::vector<int64_t>& choice) const {
  if (choice.size() != params_.size())
    throw InvalidArgument("autoq: a trial needs " + std::to_string(params_.size()) +
                          " choices, got " + std::to_string(choice.size()));
  for (size_t i = 0; i < choice.size(); ++i)
    if (choice[i] < 0 || choice[i] >= static_cast<int64_t>(params_[i].choices.size()))
      throw InvalidArgument("autoq: choice " + std::to_string(choice[i]) + " of \"" +
                            params_[i].name + "\" is out of range");
  TrialConfig t;
  ojson q = ojson::object();
  for (const auto& ls : slots_) {
    if (ls.empty_entry) {
      q[ls.name] = ojson::object();
      continue;
    }
    if (ls.activation_layer) {
      const auto& p = params_[ls.slots[0].second];
      const int64_t c = choice[ls.slots[0].second];
      q[ls.name] = p.choices[c];
      t.bits[ls.name + "/" + p.field] = p.bits[c];
      continue;
    }
    ojson e = ojson::object();
    for (const auto& [slot, pi] : ls.slots) {
      const auto& p = params_[pi];
      e[slot] = p.choices[choice[pi]];
      t.bits[ls.name + "/" + p.field] = p.bits[choice[pi]];
    }
    q[ls.name] = e;
    if (ls.filters_param >= 0)
      t.filters[ls.name] = params_[ls.filters_param].bits[choice[ls.filters_param]];
  }
  const ojson fixed = ojson::parse(fixed_config_);
  for (const auto& [k, v] : fixed.items()) q[k] = v;
  t.quantizer_config = q.dump();
  return t;
}

std::vector<int64_t> SearchSpace::choice_from_json(const std::string& params_json) const {
  const ojson j = parse(params_json, "trial params");
  if (!j.is_object()) throw InvalidArgument("autoq: trial params must be a JSON object");
  std::vector<int64_t> c;
  for (const auto& p : params_) {
    if (!j.contains(p.name)) throw InvalidArgument("autoq: trial params lack \"" + p.name + "\"");
    const ojson& v = j[p.name];
    const std::string text = v.is_string() ? v.get<std::string>() : v.dump();
    const auto it = std::find(p.choices.begin(), p.choices.end(), text);
    if (it == p.choices.end())
      throw InvalidArgument("autoq: \"" + text + "\" is not a choice of \"" + p.name + "\"");
    c.push_back(it - p.choices.begin());
  }
  if (j.size() != params_.size())
    throw InvalidArgument("autoq: trial params name hyperparameters absent from the space");
  return c;
}

std::string SearchSpace::params_json(const std::vector<int64_t>& choice) const {
  if (choice.size() != params_.size())
    throw InvalidArgument("autoq: a trial needs " + std::to_string(params_.size()) + " choices");
  ojson j = ojson::object();
  for (size_t i = 0; i < params_.size(); ++i) j[params_[i].name] = params_[i].choices.at(choice[i]);
  return j.dump();
}

std::string SearchSpace::to_json() const {
  ojson j = ojson::object();
  ojson ps = ojson::array();
  for (const auto& p : params_)
    ps.push_back({{"name", p.name},
                  {"kind", p.kind},
                  {"field", p.field},
                  {"choices", p.choices},
                  {"bits", p.bits},
                  {"layers", p.layers}});
  j["params"] = ps;
  j["activation_bits"] = activation_bits_;
  j["fixed"] = ojson::parse(fixed_config_);
  return j.dump();
}

std::vector<Block> plan_blocks(const std::vector<LayerDesc>& layers,
                               const std::vector<std::string>& blocks,
                               const std::map<std::string, double>& layer_costs,
                               const std::string& schedule, int64_t max_trials,
                               double reference_cost, const std::string& limit_text,
                               const std::optional<std::vector<int64_t>>& layer_indexes) {
  if (blocks.empty()) throw InvalidArgument("autoq blocks: no block patterns given");
  if (schedule != "sequential" && schedule != "cost")
    throw InvalidArgument("autoq blocks: schedule must be \"sequential\" or \"cost\", got \"" +
                          schedule + "\"");
  if (!(std::isfinite(reference_cost) && reference_cost > 0.0))
    throw InvalidArgument("autoq blocks: the reference cost must be finite and > 0");
  if (max_trials < 1) throw InvalidArgument("autoq blocks: max_trials must be >= 1");
  ojson limit = limit_text.empty() ? ojson::object() : parse(limit_text, "limit");
  if (!limit.is_object() || limit.empty())
    throw InvalidArgument("autoq blocks: the scheduler needs a limit (a non-empty JSON object)");
  ojson def = limit.contains("default") ? limit["default"] : ojson(8);
  if (def.is_number()) def = ojson::array({def, def, def});
  if (!def.is_array() || def.size() != 3)
    throw InvalidArgument(
        "autoq blocks: limit[\"default\"] must be a number or a list of 3 values");
  for (auto& [key, entry] : limit.items()) {
    if (key == "default") continue;
    if (entry.is_number()) entry = ojson::array({entry, entry, entry});
    if (entry.is_array() && is_kernel_kind(key) && entry.size() < 3)
      for (size_t i = entry.size(); i < 3; ++i) entry.push_back(def[i]);
  }
  auto compile = [](const std::string& re, const std::string& what) {
    try {
      return std::regex(re, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      throw InvalidArgument("autoq blocks: " + what + " \"" + re +
                            "\" is not a valid regex: " + e.what());
    }
  };
  std::set<int64_t> indexes;
  if (layer_indexes) indexes.insert(layer_indexes->begin(), layer_indexes->end());
  std::vector<Block> out;
  for (const auto& pattern : blocks) {
    const std::regex re = compile(pattern, "block pattern");
    Block b;
    b.pattern = pattern;
    for (size_t i = 0; i < layers.size(); ++i) {
      if (layer_indexes && !indexes.count(static_cast<int64_t>(i))) continue;
      if (std::regex_search(layers[i].name, re, std::regex_constants::match_continuous)) {
        b.layers.push_back(layers[i].name);
        auto it = layer_costs.find(layers[i].name);
        if (it != layer_costs.end()) b.cost += it->second;
      }
    }
    // AutoQKerasScheduler.get_limit
    ojson new_limit = ojson::object();
    std::vector<std::pair<std::string, std::vector<std::string>>> grouped;
    for (const auto& name : b.layers) {
      const LayerDesc& layer = *std::find_if(layers.begin(), layers.end(),
                                             [&](const LayerDesc& l) { return l.name == name; });
      std::optional<ojson> target;
      if (limit.contains(layer.kind)) target = limit[layer.kind];
      std::string key = name;
      for (const auto& [lp, value] : limit.items()) {
        if (lp == "default") continue;
        if (std::regex_search(name, compile(lp, "limit key"),
                              std::regex_constants::match_continuous)) {
          target = value;
          auto g = std::find_if(grouped.begin(), grouped.end(),
                                [&](const auto& x) { return x.first == lp; });
          if (g == grouped.end())
            grouped.push_back({lp, {name}});
          else
            g->second.push_back(name);
          key.clear();
          break;
        }
      }
      if (target && !key.empty()) new_limit["^(" + name + ")$"] = *target;
    }
    for (const auto& [lp, names] : grouped) {
      std::string k = "^(";
      for (size_t i = 0; i < names.size(); ++i) k += (i ? "|" : "") + names[i];
      new_limit[k + ")$"] = limit[lp];
    }
    if (new_limit.empty())
      throw InvalidArgument("autoq blocks: block \"" + pattern +
                            "\" matches no layer the limit covers");
    b.limit = new_limit.dump();
    b.max_trials = static_cast<int64_t>(
        std::max(10.0, static_cast<double>(max_trials) * b.cost / reference_cost));
    out.push_back(std::move(b));
  }
  if (schedule == "cost")
    std::stable_sort(out.begin(), out.end(),
                     [](const Block& a, const Block& b) { return a.cost > b.cost; });
  return out;
}

}  // namespace heteroq::autoq
