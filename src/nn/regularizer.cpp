// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// EBOPsRegularizer: the coefficient schedules (constant, piecewise linear/log ramps, the budget
// controller) and the penalty beta x EBOPs.
#include "heteroq/nn/regularizer.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "heteroq/errors.h"
#include "heteroq/nn/ebops.h"

namespace heteroq::nn {

namespace {

std::string num(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

void check_beta(double beta, const std::string& where) {
  if (!std::isfinite(beta) || beta < 0) {
    throw InvalidArgument(where + " must be finite and >= 0, got " + num(beta));
  }
}

void check_positive(double v, const std::string& where) {
  if (!std::isfinite(v) || v <= 0) {
    throw InvalidArgument(where + " must be finite and > 0, got " + num(v));
  }
}

}  // namespace

EBOPsRegularizer EBOPsRegularizer::constant(double beta) {
  check_beta(beta, "EBOPsRegularizer::constant: `beta`");
  EBOPsRegularizer r;
  r.kind_ = Kind::kConstant;
  r.knots_ = {{0, beta}};
  return r;
}

EBOPsRegularizer EBOPsRegularizer::ramp(double beta0, double beta1, int64_t start_step,
                                        int64_t end_step, bool log) {
  if (end_step <= start_step) {
    throw InvalidArgument("EBOPsRegularizer::ramp: `end_step` (" + std::to_string(end_step) +
                          ") must be > `start_step` (" + std::to_string(start_step) + ")");
  }
  check_beta(beta0, "EBOPsRegularizer::ramp: `beta0`");
  check_beta(beta1, "EBOPsRegularizer::ramp: `beta1`");
  return piecewise({{start_step, beta0}, {end_step, beta1}}, log);
}

EBOPsRegularizer EBOPsRegularizer::piecewise(std::vector<std::pair<int64_t, double>> knots,
                                             bool log) {
  if (knots.empty()) throw InvalidArgument("EBOPsRegularizer::piecewise: no knot given");
  for (size_t i = 0; i < knots.size(); ++i) {
    const std::string where = "EBOPsRegularizer: knot " + std::to_string(i) + "'s beta";
    check_beta(knots[i].second, where);
    if (log && knots[i].second == 0) {
      throw InvalidArgument(where + " must be > 0 for a logarithmic ramp, got 0");
    }
    if (i > 0 && knots[i].first <= knots[i - 1].first) {
      throw InvalidArgument("EBOPsRegularizer: the knots' steps must increase strictly, got " +
                            std::to_string(knots[i - 1].first) + " then " +
                            std::to_string(knots[i].first) + " (knot " + std::to_string(i) + ")");
    }
  }
  EBOPsRegularizer r;
  r.kind_ = Kind::kPiecewise;
  r.knots_ = std::move(knots);
  r.log_ = log;
  return r;
}

EBOPsRegularizer EBOPsRegularizer::controller(double target, double beta0, double gain,
                                              double beta_min, double beta_max, int64_t interval,
                                              double max_log_step) {
  const std::string w = "EBOPsRegularizer::controller: ";
  check_positive(target, w + "`target`");
  check_positive(gain, w + "`gain`");
  check_positive(beta_min, w + "`beta_min`");
  check_positive(max_log_step, w + "`max_log_step`");
  if (!std::isfinite(beta_max) || beta_max < beta_min) {
    throw InvalidArgument(w + "`beta_max` must be finite and >= `beta_min` (" + num(beta_min) +
                          "), got " + num(beta_max));
  }
  if (!std::isfinite(beta0) || beta0 < beta_min || beta0 > beta_max) {
    throw InvalidArgument(w + "`beta0` must be in [beta_min, beta_max] = [" + num(beta_min) +
                          ", " + num(beta_max) + "], got " + num(beta0));
  }
  if (interval < 1) {
    throw InvalidArgument(w + "`interval` must be >= 1, got " + std::to_string(interval));
  }
  EBOPsRegularizer r;
  r.kind_ = Kind::kController;
  r.target_ = target;
  r.gain_ = gain;
  r.beta_min_ = beta_min;
  r.beta_max_ = beta_max;
  r.interval_ = interval;
  r.max_log_step_ = max_log_step;
  r.current_ = beta0;
  r.knots_ = {{0, beta0}};
  return r;
}

double EBOPsRegularizer::beta(int64_t step) const {
  switch (kind_) {
    case Kind::kConstant:
      return knots_.front().second;
    case Kind::kController:
      return current_;
    case Kind::kPiecewise:
      break;
  }
  if (step <= knots_.front().first) return knots_.front().second;
  if (step >= knots_.back().first) return knots_.back().second;
  // The knot interval [s_k, s_{k+1}] holding step.
  const auto next = std::upper_bound(
      knots_.begin(), knots_.end(), step,
      [](int64_t s, const std::pair<int64_t, double>& k) { return s < k.first; });
  const auto& [s1, b1] = *next;
  const auto& [s0, b0] = *(next - 1);
  const double t = static_cast<double>(step - s0) / static_cast<double>(s1 - s0);
  if (log_) return std::exp(std::log(b0) + t * (std::log(b1) - std::log(b0)));
  return b0 + t * (b1 - b0);
}

double EBOPsRegularizer::observe(double ebops, int64_t step) {
  if (step < 0) {
    throw InvalidArgument("EBOPsRegularizer: `step` must be >= 0, got " + std::to_string(step));
  }
  if (kind_ != Kind::kController) return beta(step);
  if (!std::isfinite(ebops) || ebops < 0) {
    throw InvalidArgument("EBOPsRegularizer (controller): the EBOPs must be finite and >= 0, got " +
                          num(ebops) + " at step " + std::to_string(step));
  }
  const double used = current_;
  if (last_step_ < 0 || step >= last_step_ + interval_) {
    const double log_step =
        std::clamp(gain_ * (ebops / target_ - 1.0), -max_log_step_, max_log_step_);
    current_ = std::clamp(current_ * std::exp(log_step), beta_min_, beta_max_);
    last_step_ = step;
    last_ebops_ = ebops;
  }
  return used;
}

at::Tensor EBOPsRegularizer::penalty(const at::Tensor& ebops, int64_t step) {
  if (!ebops.defined()) throw InvalidArgument("EBOPsRegularizer::penalty: undefined `ebops`");
  if (!ebops.is_floating_point()) {
    throw InvalidArgument(
        "EBOPsRegularizer::penalty: `ebops` must be a floating-point tensor, got " +
        std::string(at::toString(ebops.scalar_type())));
  }
  double value = 0;
  if (kind_ == Kind::kController) {
    if (ebops.numel() != 1) {
      throw InvalidArgument(
          "EBOPsRegularizer::penalty: the controller needs one EBOPs value (a 0-dim tensor), got " +
          std::to_string(ebops.numel()) + " values");
    }
    value = ebops.detach().to(at::kDouble).item<double>();
  }
  return ebops * observe(value, step);
}

at::Tensor EBOPsRegularizer::penalty(const torch::nn::Module& model, int64_t step) {
  return penalty(total_ebops(model), step);
}

std::map<std::string, double> EBOPsRegularizer::state_dict() const {
  return {{"beta", kind_ == Kind::kController ? current_ : beta(0)},
          {"last_step", static_cast<double>(last_step_)},
          {"last_ebops", last_ebops_}};
}

void EBOPsRegularizer::load_state_dict(const std::map<std::string, double>& state) {
  for (const char* key : {"beta", "last_step", "last_ebops"}) {
    if (!state.count(key)) {
      throw InvalidArgument(std::string("EBOPsRegularizer::load_state_dict: missing key '") + key +
                            "'");
    }
  }
  for (const auto& [key, value] : state) {
    if (key != "beta" && key != "last_step" && key != "last_ebops") {
      throw InvalidArgument("EBOPsRegularizer::load_state_dict: unknown key '" + key + "'");
    }
    if (!std::isfinite(value)) {
      throw InvalidArgument("EBOPsRegularizer::load_state_dict: '" + key +
                            "' must be finite, got " + num(value));
    }
  }
  const double b = state.at("beta");
  const double last = state.at("last_step");
  if (last < -1 || last != std::floor(last)) {
    throw InvalidArgument(
        "EBOPsRegularizer::load_state_dict: 'last_step' must be an integer >= -1, got " +
        num(last));
  }
  if (kind_ == Kind::kController) {
    if (b < beta_min_ || b > beta_max_) {
      throw InvalidArgument("EBOPsRegularizer::load_state_dict: 'beta' must be in [beta_min, "
                            "beta_max] = [" + num(beta_min_) + ", " + num(beta_max_) + "], got " +
                            num(b));
    }
    current_ = b;
  }
  last_step_ = static_cast<int64_t>(last);
  last_ebops_ = state.at("last_ebops");
}

std::string EBOPsRegularizer::to_string() const {
  std::ostringstream s;
  switch (kind_) {
    case Kind::kConstant:
      s << "constant(" << knots_.front().second << ")";
      break;
    case Kind::kPiecewise:
      s << (knots_.size() == 2 ? "ramp(" : "piecewise(") << (log_ ? "log" : "linear");
      for (size_t i = 0; i < knots_.size(); ++i) {
        s << (i == 0 ? ", " : " -> ") << knots_[i].second << "@" << knots_[i].first;
      }
      s << ")";
      break;
    case Kind::kController:
      s << "controller(target=" << target_ << ", beta=" << current_ << ", gain=" << gain_
        << ", beta in [" << beta_min_ << ", " << beta_max_ << "], interval=" << interval_ << ")";
      break;
  }
  return s.str();
}

// ---------------------------------------------------------------------------------------------
// Magnitude pruning

namespace {

bool is_prunable(const std::string& path, const at::Tensor& p) {
  const auto dot = path.rfind('.');
  const std::string name = dot == std::string::npos ? path : path.substr(dot + 1);
  if (name == "weight") return p.dim() >= 2;
  return name.rfind("weight_ih_l", 0) == 0 || name.rfind("weight_hh_l", 0) == 0;
}

}  // namespace

PruningMasks prune_magnitude(torch::nn::Module& module, double amount, bool structured) {
  if (!(amount >= 0.0 && amount <= 1.0)) {
    throw InvalidArgument("prune_magnitude: `amount` must be in [0, 1], got " + num(amount));
  }
  PruningMasks masks;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    const at::Tensor& p = item.value();
    if (!p.defined() || p.numel() == 0 || !is_prunable(item.key(), p)) continue;
    at::Tensor mask = at::ones_like(p);
    const at::Tensor w = p.detach();
    if (structured) {
      const int64_t channels = p.size(0);
      const auto k = static_cast<int64_t>(std::llround(amount * static_cast<double>(channels)));
      if (k > 0) {
        const at::Tensor norms = w.reshape({channels, -1}).norm(2, 1);
        const at::Tensor drop = std::get<1>(norms.topk(k, 0, /*largest=*/false));
        mask.index_fill_(0, drop, 0);
      }
    } else {
      const auto k = static_cast<int64_t>(std::llround(amount * static_cast<double>(p.numel())));
      if (k > 0) {
        const at::Tensor drop = std::get<1>(w.abs().reshape({-1}).topk(k, 0, /*largest=*/false));
        mask.view({-1}).index_fill_(0, drop, 0);
      }
    }
    masks.emplace(item.key(), mask);
  }
  apply_masks(module, masks);
  return masks;
}

void apply_masks(torch::nn::Module& module, const PruningMasks& masks) {
  const auto params = module.named_parameters(/*recurse=*/true);
  std::vector<std::pair<at::Tensor, at::Tensor>> todo;
  for (const auto& [name, mask] : masks) {
    const at::Tensor* p = params.find(name);
    if (!p) throw InvalidArgument("apply_masks: the module has no parameter '" + name + "'");
    if (!mask.defined() || mask.sizes() != p->sizes()) {
      throw InvalidArgument("apply_masks: the mask of '" + name +
                            "' must have the parameter's shape " + c10::str(p->sizes()) + ", got " +
                            (mask.defined() ? c10::str(mask.sizes()) : std::string("none")));
    }
    todo.emplace_back(*p, mask);
  }
  c10::NoGradGuard no_grad;
  for (auto& [p, mask] : todo) p.mul_(mask.to(p.dtype()));
}

}  // namespace heteroq::nn
