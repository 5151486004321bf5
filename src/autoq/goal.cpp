// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// AutoQ goals: the forgiving factor, goal parsing, Pareto fronts.
#include "heteroq/autoq/goal.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
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
  if (!std::isfinite(delta_p)) throw InvalidArgument("autoq goal: delta_p must be finite, got " + num(delta_p));
  if (!std::isfinite(delta_n)) throw InvalidArgument("autoq goal: delta_n must be finite, got " + num(delta_n));
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
    throw InvalidArgument("autoq goal: expected {\"type\": name, \"params\": {...}}, got " + j.dump());
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

std::vector<int64_t> pareto_ranks(const std::vector<double>& metric, const std::vector<double>& cost) {
  if (metric.size() != cost.size())
    throw InvalidArgument("autoq: pareto needs as many metrics as costs (" +
                          std::to_string(metric.size()) + " vs " + std::to_string(cost.size()) + ")");
  const size_t n = metric.size();
  std::vector<int64_t> rank(n, -1);
  auto valid = [&](size_t i) { return !std::isnan(metric[i]) && !std::isnan(cost[i]); };
  auto dominates = [&](size_t a, size_t b) {
    return metric[a] >= metric[b] && cost[a] <= cost[b] && (metric[a] > metric[b] || cost[a] < cost[b]);
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

std::vector<int64_t> pareto_front(const std::vector<double>& metric, const std::vector<double>& cost) {
  const auto rank = pareto_ranks(metric, cost);
  std::vector<int64_t> out;
  for (size_t i = 0; i < rank.size(); ++i)
    if (rank[i] == 0 && !std::isnan(metric[i]) && !std::isnan(cost[i])) out.push_back(static_cast<int64_t>(i));
  std::stable_sort(out.begin(), out.end(), [&](int64_t a, int64_t b) { return cost[a] < cost[b]; });
  return out;
}

}  // namespace heteroq::autoq
