// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Resource regularizers: the loss term beta(step) x EBOPs that trades a model's accuracy against
// its hardware cost while the bit widths train (HGQ), with the coefficient's schedules (constant,
// linear or logarithmic ramps, piecewise, and a controller that steers EBOPs to a budget).
// docs/pruning.md gives the formulas.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "heteroq/export.h"

namespace heteroq::nn {

/**
 * The resource regularizer `penalty = beta(step) x EBOPs`, with EBOPs the sum of the model's
 * EBOPsLayer::ebops() (total_ebops()) or any differentiable cost tensor.
 *
 * The schedules (built by the static functions below):
 *
 * - constant: `beta(step) = beta`.
 * - piecewise (and ramp, its two-knot case): knots `(s_0, b_0) < (s_1, b_1) < ...` in step;
 *   `beta = b_0` before s_0, `b_last` after the last knot, and between knots s_k <= step <=
 *   s_{k+1}, with `t = (step - s_k) / (s_{k+1} - s_k)`, linearly `b_k + t (b_{k+1} - b_k)` or
 *   logarithmically `exp(log b_k + t (log b_{k+1} - log b_k))` (HGQ's log ramp; every b > 0).
 * - controller: a multiplicative feedback loop towards a budget `target` of EBOPs. Each
 *   penalty() call of a new step (step > the last updated step, and at least `interval` steps
 *   after it) first returns `beta x EBOPs` with the current beta, then updates
 *
 *       beta <- clamp(beta exp(gain (EBOPs / target - 1)), beta_min, beta_max)
 *
 *   so beta grows while the model costs more than the budget and shrinks while it costs less;
 *   the exponent is clipped to [-max_log_step, max_log_step] so one outlier cannot move beta by
 *   more than a factor e^max_log_step. beta(step) returns the current value (the step is not
 *   read). Other calls of the same step (gradient accumulation) use the same beta.
 *
 * The penalty is differentiable in the EBOPs (beta is a constant factor); the controller reads
 * the EBOPs' value, detached.
 *
 * Example:
 *   auto reg = heteroq::nn::EBOPsRegularizer::ramp(1e-6, 2e-3, 5000, 20000, true);
 *   auto loss = criterion(model->forward(x), y) + reg.penalty(*model, step);
 */
class HETEROQ_API EBOPsRegularizer {
 public:
  /// The schedule kinds.
  enum class Kind { kConstant, kPiecewise, kController };

  /// beta(step) = beta. @throws heteroq::InvalidArgument for a beta < 0 or not finite.
  static EBOPsRegularizer constant(double beta);

  /**
   * From `beta0` at `start_step` to `beta1` at `end_step` (`beta0` before, `beta1` after),
   * linearly or (`log`) logarithmically: piecewise({{start_step, beta0}, {end_step, beta1}}).
   * @throws heteroq::InvalidArgument for end_step <= start_step, betas < 0 or not finite, or
   *         `log` with a beta of 0.
   */
  static EBOPsRegularizer ramp(double beta0, double beta1, int64_t start_step, int64_t end_step,
                               bool log = true);

  /**
   * Piecewise linear or (`log`) logarithmic interpolation between knots (step, beta).
   * @throws heteroq::InvalidArgument for no knot, steps not strictly increasing, betas < 0 or not
   *         finite, or `log` with a beta of 0.
   */
  static EBOPsRegularizer piecewise(std::vector<std::pair<int64_t, double>> knots,
                                    bool log = false);

  /**
   * The controller towards `target` EBOPs, starting at `beta0`.
   * @throws heteroq::InvalidArgument for target <= 0, gain <= 0, interval < 1, max_log_step <= 0,
   *         beta_min <= 0 or beta_max < beta_min, or beta0 outside [beta_min, beta_max] (each
   *         message names the argument).
   */
  static EBOPsRegularizer controller(double target, double beta0, double gain = 0.1,
                                     double beta_min = 1e-12, double beta_max = 1.0,
                                     int64_t interval = 1, double max_log_step = 1.0);

  Kind kind() const { return kind_; }

  /// The coefficient at `step` (the controller: its current value, whatever the step).
  double beta(int64_t step) const;

  /**
   * `beta x ebops` (a tensor of ebops' shape, differentiable in it), with beta at `step`; the
   * controller then updates beta from ebops' value (see the class comment).
   * @throws heteroq::InvalidArgument for an undefined tensor, a controller given a tensor that
   *         is not one value or a value that is negative or not finite, or a step < 0.
   */
  at::Tensor penalty(const at::Tensor& ebops, int64_t step);

  /// penalty(total_ebops(model), step).
  at::Tensor penalty(const torch::nn::Module& model, int64_t step);

  /**
   * The controller's update alone, from a value: returns the beta for this step (the one the
   * penalty uses) and updates as penalty() does. The other schedules return beta(step).
   * penalty() calls it; the Python binding does the same.
   */
  double observe(double ebops, int64_t step);

  /**
   * The state that changes while training, to save with a checkpoint: "beta" (the controller's
   * current beta), "last_step" (the last step it updated at, -1: none), "last_ebops" (the EBOPs
   * it saw then, -1: none). The schedule's settings are not in it (they are the constructor's).
   */
  std::map<std::string, double> state_dict() const;

  /**
   * Restores state_dict()'s values.
   * @throws heteroq::InvalidArgument for a missing or unknown key, or a beta outside
   *         [beta_min, beta_max] (the controller) or not finite.
   */
  void load_state_dict(const std::map<std::string, double>& state);

  /// A one-line description, e.g. "ramp(log, 1e-06@5000 -> 0.002@20000)".
  std::string to_string() const;

  // The settings, as constructed.
  const std::vector<std::pair<int64_t, double>>& knots() const { return knots_; }
  bool log_interpolation() const { return log_; }
  double target() const { return target_; }
  double gain() const { return gain_; }
  double beta_min() const { return beta_min_; }
  double beta_max() const { return beta_max_; }
  int64_t interval() const { return interval_; }
  double max_log_step() const { return max_log_step_; }

 private:
  EBOPsRegularizer() = default;

  Kind kind_ = Kind::kConstant;
  std::vector<std::pair<int64_t, double>> knots_;  // constant: one knot
  bool log_ = false;
  // controller
  double target_ = 0, gain_ = 0, beta_min_ = 0, beta_max_ = 0, max_log_step_ = 1;
  int64_t interval_ = 1;
  double current_ = 0;
  int64_t last_step_ = -1;
  double last_ebops_ = -1;
};

// ---------------------------------------------------------------------------------------------
// Magnitude pruning for C++ models (Python: torch.nn.utils.prune; docs/pruning.md)

/// Pruning masks by parameter path ("0.weight", "lstm.weight_hh_l0"): 1 keeps a value, 0 prunes
/// it (each of its parameter's shape and dtype).
using PruningMasks = std::map<std::string, at::Tensor>;

/**
 * Magnitude pruning of every weight of `module` and its submodules, in place: the parameters
 * named "weight" with 2 dimensions or more (dense and convolution kernels, not batch-norm
 * scales) and the recurrent kernels "weight_ih_l*" / "weight_hh_l*". Per tensor, as
 * torch.nn.utils.prune:
 *
 * - unstructured (l1_unstructured): the round(amount n) values of smallest |w| are set to 0;
 * - structured (ln_structured with n = 2, dim = 0): the round(amount C) output channels (rows of
 *   dim 0) of smallest L2 norm are set to 0.
 *
 * Values already zero count as candidates (pruning again prunes a fraction of the whole
 * tensor). Returns the masks; the zeros stay only until an optimizer step changes them: call
 * apply_masks() after every step (the C++ API has no reparametrization).
 *
 * @throws heteroq::InvalidArgument for an amount outside [0, 1].
 */
HETEROQ_API PruningMasks prune_magnitude(torch::nn::Module& module, double amount,
                                         bool structured = false);

/**
 * Multiplies each parameter of `module` named in `masks` by its mask (in place, without
 * gradient): keeps pruned weights at zero after an optimizer step.
 * @throws heteroq::InvalidArgument for a name `module` does not have or a mask of another shape
 *         (nothing is changed then).
 */
HETEROQ_API void apply_masks(torch::nn::Module& module, const PruningMasks& masks);

}  // namespace heteroq::nn
