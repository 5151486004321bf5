// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// AutoQ goals: the forgiving factor, goal parsing, Pareto fronts.
#include "heteroq/autoq/goal.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>
#include <sstream>

#include "heteroq/errors.h"

namespace heteroq::autoq {

namespace {
std::string num(double v) {
  std::ostringstream o;
  o.precision(17);
  o << v;
  return o.str();
}
}  // namespace

void ForgivingFactor::validate() const {
  if (!std::isfinite(delta_p))
    throw InvalidArgument("autoq goal: delta_p must be finite, got " + num(delta_p));
  if (!std::isfinite(delta_n))
    throw InvalidArgument("autoq goal: delta_n must be finite, got " + num(delta_n));
  if (!(std::isfinite(rate) && rate > 0.0 && rate != 1.0))
    throw InvalidArgument("autoq goal: rate must be > 0 and != 1, got " + num(rate));
  if (!(std::isfinite(stress) && stress > 0.0))
    throw InvalidArgument("autoq goal: stress must be > 0, got " + num(stress));
}

double ForgivingFactor::delta(double reference_cost, double trial_cost) const {
  if (!(std::isfinite(reference_cost) && reference_cost > 0.0))
    throw InvalidArgument("autoq goal: the reference cost must be finite and > 0, got " +
                          num(reference_cost));
  if (!(std::isfinite(trial_cost) && trial_cost > 0.0))
    throw InvalidArgument("autoq goal: a trial's cost must be finite and > 0, got " +
                          num(trial_cost));
  const double ref = stress * reference_cost;
  const double d = (trial_cost < ref ? delta_p : delta_n) / 100.0;
  return d * (std::log(ref / trial_cost) / std::log(rate));
}

double ForgivingFactor::score(double metric, double reference_cost, double trial_cost) const {
  return metric * (1.0 + delta(reference_cost, trial_cost));
}

Goal parse_goal(const std::string& goal_json) {
  Goal g;
  if (goal_json.empty()) {
    g.options = R"({"input_bits":8,"output_bits":8,"ref_bits":8})";
    return g;
  }
  nlohmann::ordered_json j;
  try {
    j = nlohmann::ordered_json::parse(goal_json);
  } catch (const std::exception& e) {
    throw InvalidArgument(std::string("autoq goal: not valid JSON: ") + e.what());
  }
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string())
    throw InvalidArgument("autoq goal: expected {\"type\": name, \"params\": {...}}, got " +
                          j.dump());
  for (const auto& [k, v] : j.items())
    if (k != "type" && k != "params")
      throw InvalidArgument("autoq goal: unknown key \"" + k + "\" (expected type and params)");
  g.type = j["type"].get<std::string>();
  if (g.type.empty()) throw InvalidArgument("autoq goal: the type is empty");
  nlohmann::ordered_json options = nlohmann::ordered_json::object();
  if (j.contains("params")) {
    if (!j["params"].is_object()) throw InvalidArgument("autoq goal: params must be an object");
    for (const auto& [k, v] : j["params"].items()) {
      double* field = k == "delta_p"   ? &g.factor.delta_p
                      : k == "delta_n" ? &g.factor.delta_n
                      : k == "rate"    ? &g.factor.rate
                      : k == "stress"  ? &g.factor.stress
                                       : nullptr;
      if (field) {
        if (!v.is_number())
          throw InvalidArgument("autoq goal: params." + k + " must be a number, got " + v.dump());
        *field = v.get<double>();
      } else {
        options[k] = v;
      }
    }
  }
  g.factor.validate();
  g.options = options.dump();
  return g;
}

std::vector<int64_t> pareto_ranks(const std::vector<double>& metric,
                                  const std::vector<double>& cost) {
  if (metric.size() != cost.size())
    throw InvalidArgument("autoq: pareto needs as many metrics as costs (" +
                          std::to_string(metric.size()) + " vs " + std::to_string(cost.size()) +
                          ")");
  const size_t n = metric.size();
  std::vector<int64_t> rank(n, -1);
  auto valid = [&](size_t i) { return !std::isnan(metric[i]) && !std::isnan(cost[i]); };
  auto dominates = [&](size_t a, size_t b) {
    return metric[a] >= metric[b] && cost[a] <= cost[b] &&
           (metric[a] > metric[b] || cost[a] < cost[b]);
  };
  size_t left = 0;
  for (size_t i = 0; i < n; ++i) left += valid(i);
  int64_t r = 0;
  while (left > 0) {
    std::vector<size_t> front;
    for (size_t i = 0; i < n; ++i) {
      if (!valid(i) || rank[i] >= 0) continue;
      bool dominated = false;
      for (size_t k = 0; k < n && !dominated; ++k)
        if (k != i && valid(k) && rank[k] < 0 && dominates(k, i)) dominated = true;
      if (!dominated) front.push_back(i);
    }
    for (size_t i : front) rank[i] = r;
    left -= front.size();
    ++r;
  }
  for (size_t i = 0; i < n; ++i)
    if (rank[i] < 0) rank[i] = r;
  return rank;
}

std::vector<int64_t> pareto_front(const std::vector<double>& metric,
                                  const std::vector<double>& cost) {
  const auto rank = pareto_ranks(metric, cost);
  std::vector<int64_t> out;
  for (size_t i = 0; i < rank.size(); ++i)
    if (rank[i] == 0 && !std::isnan(metric[i]) && !std::isnan(cost[i]))
      out.push_back(static_cast<int64_t>(i));
  std::stable_sort(out.begin(), out.end(), [&](int64_t a, int64_t b) { return cost[a] < cost[b]; });
  return out;
}

namespace {

nlohmann::json params_object(const std::string& text, const std::string& goal) {
  if (text.empty()) return nlohmann::json::object();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    throw InvalidArgument("autoq " + goal + " goal: params are not valid JSON: " + e.what());
  }
  if (!j.is_object()) throw InvalidArgument("autoq " + goal + " goal: params must be an object");
  return j;
}

// A [reference, trial] pair (a scalar applies to both).
std::pair<nlohmann::json, nlohmann::json> pair_of(const nlohmann::json& v, const std::string& key) {
  if (v.is_array()) {
    if (v.size() != 2)
      throw InvalidArgument("autoq energy goal: " + key +
                            " must be a [reference, trial] pair, got " + v.dump());
    return {v[0], v[1]};
  }
  return {v, v};
}

}  // namespace

std::pair<std::string, std::string> energy_goal_options(const std::string& params_json) {
  const nlohmann::json p = params_object(params_json, "energy");
  nlohmann::json ref = {{"process", "horowitz"},
                        {"weights_on_memory", "fixed"},
                        {"activations_on_memory", "dram"},
                        {"min_sram_size", 0},
                        {"rd_wr_on_io", true},
                        {"reference_internal", "fp32"},
                        {"reference_accumulator", "fp32"}};
  nlohmann::json trial = ref;
  nlohmann::json source = nullptr;
  for (const auto& [k, v] : p.items()) {
    if (k == "delta_p" || k == "delta_n" || k == "rate" || k == "stress") continue;
    if (k == "process" || k == "reference_internal" || k == "reference_accumulator") {
      if (!v.is_string())
        throw InvalidArgument("autoq energy goal: " + k + " must be a string, got " + v.dump());
      ref[k] = v;
      trial[k] = v;
    } else if (k == "parameters_on_memory" || k == "activations_on_memory" ||
               k == "min_sram_size" || k == "rd_wr_on_io") {
      const auto [r, t] = pair_of(v, k);
      const std::string field = k == "parameters_on_memory" ? "weights_on_memory" : k;
      ref[field] = r;
      trial[field] = t;
    } else if (k == "source_quantizers") {
      if (v.is_array()) {
        if (v.size() > 1)
          throw InvalidArgument(
              "autoq energy goal: source_quantizers: heteroq prices one input, got " + v.dump());
        source = v.empty() ? nlohmann::json(nullptr) : v[0];
      } else {
        source = v;
      }
      if (!source.is_null() && !source.is_string())
        throw InvalidArgument("autoq energy goal: source_quantizers must name quantizers, got " +
                              v.dump());
    } else if (k == "trained_model") {
      if (!v.is_boolean()) throw InvalidArgument("autoq energy goal: trained_model must be a bool");
    } else {
      throw InvalidArgument(
          "autoq energy goal: unknown param \"" + k +
          "\" (expected process, parameters_on_memory, activations_on_memory, min_sram_size, "
          "rd_wr_on_io, source_quantizers, trained_model, reference_internal, "
          "reference_accumulator)");
    }
  }
  // ForgivingFactorPower: the reference reads its input and prices Keras layers at
  // reference_internal with reference_accumulator; the trial reads source_quantizers.
  ref["for_reference"] = true;
  ref["source_quantizer"] = ref["reference_internal"];
  ref["keras_quantizer"] = ref["reference_internal"];
  ref["keras_accumulator"] = ref["reference_accumulator"];
  trial["for_reference"] = false;
  if (!source.is_null()) trial["source_quantizer"] = source;
  trial["keras_quantizer"] = trial["reference_internal"];
  trial["keras_accumulator"] = trial["reference_accumulator"];
  return {ref.dump(), trial.dump()};
}

std::pair<std::string, std::string> bits_goal_options(const std::string& params_json) {
  const nlohmann::json p = params_object(params_json, "bits");
  nlohmann::json o = nlohmann::json::object();
  std::string measure = "total";
  for (const auto& [k, v] : p.items()) {
    if (k == "delta_p" || k == "delta_n" || k == "rate" || k == "stress") continue;
    if (k == "input_bits" || k == "output_bits" || k == "ref_bits") {
      if (!v.is_number_integer() || v.get<int64_t>() < 1)
        throw InvalidArgument("autoq bits goal: " + k + " must be a positive integer, got " +
                              v.dump());
      o[k] = v;
    } else if (k == "config") {
      if (v.is_null()) continue;
      if (!v.is_object() || v.size() != 1 || !v.contains("default") || !v["default"].is_array())
        throw InvalidArgument(
            "autoq bits goal: config must be {\"default\": [\"parameters\", \"activations\"]} or a "
            "subset; "
            "per-class configs are not supported, got " +
            v.dump());
      std::set<std::string> what;
      for (const auto& x : v["default"]) {
        if (!x.is_string() || (x != "parameters" && x != "activations"))
          throw InvalidArgument(
              "autoq bits goal: config entries must be \"parameters\" or \"activations\", got " +
              x.dump());
        what.insert(x.get<std::string>());
      }
      if (what.empty()) throw InvalidArgument("autoq bits goal: config counts nothing");
      measure = what.size() == 2 ? "total" : *what.begin();
    } else {
      throw InvalidArgument("autoq bits goal: unknown param \"" + k +
                            "\" (expected input_bits, output_bits, ref_bits, config)");
    }
  }
  return {o.dump(), measure};
}

}  // namespace heteroq::autoq
