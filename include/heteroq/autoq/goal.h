// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// AutoQ goals: AutoQKeras's forgiving factor, goal specs ({"type", "params"}) and the Pareto front
// of (metric, cost). Torch-free.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "heteroq/export.h"

namespace heteroq::autoq {

/**
 * AutoQKeras's forgiving factor (forgiving_factor.py), in double precision:
 *
 *     ref   = stress * reference_cost
 *     delta = (trial < ref ? delta_p : delta_n) / 100 * ln(ref / trial) / ln(rate)
 *     score = metric * (1 + delta)
 *
 * so each `rate`-fold cost reduction raises the score by delta_p percent and each `rate`-fold
 * increase lowers it by delta_n percent. Deviation: QKeras's energy goal ignores `stress` in its
 * scores (it stresses only get_reference's return value); here stress applies to every goal.
 */
struct HETEROQ_API ForgivingFactor {
  double delta_p = 8.0;
  double delta_n = 8.0;
  double rate = 2.0;
  double stress = 1.0;

  /// @throws heteroq::InvalidArgument unless delta_p, delta_n are finite, rate > 0 and != 1, and
  ///         stress > 0 (each named with its value).
  void validate() const;
  /// delta above. @throws heteroq::InvalidArgument unless both costs are finite and > 0.
  double delta(double reference_cost, double trial_cost) const;
  /// metric * (1 + delta).
  double score(double metric, double reference_cost, double trial_cost) const;
};

/// A goal: its type ("bits", "energy", "ebops", "fpga", or any name a cost function is
/// registered under), its forgiving factor, and the other params (the cost model's options, as
/// a JSON object text).
struct HETEROQ_API Goal {
  std::string type = "bits";
  ForgivingFactor factor;
  std::string options = "{}";
};

/**
 * Parses an AutoQKeras goal, `{"type": "energy", "params": {"delta_p": 8.0, ...}}` (JSON text):
 * delta_p, delta_n, rate and stress go to the factor, the other params to `options`. The default
 * (empty text) is AutoQKeras's bits goal (8, 8, 2, 1; input_bits=output_bits=ref_bits=8).
 * @throws heteroq::InvalidArgument for malformed JSON, a missing or non-text type, non-numeric
 *         factor params, or a bad factor.
 */
HETEROQ_API Goal parse_goal(const std::string& goal_json);

/**
 * AutoQKeras's energy goal params (ForgivingFactorPower: `process`, `[reference, trial]` pairs
 * `parameters_on_memory`, `activations_on_memory`, `min_sram_size`, `rd_wr_on_io`,
 * `source_quantizers` (a list, its first entry, or null), `trained_model`, `reference_internal`,
 * `reference_accumulator`; defaults as QKeras's) as heteroq::cost::QToolsOptions fields (JSON
 * objects): .first prices the reference (for_reference, the input and Keras layers at
 * reference_internal), .second the trials.
 * @throws heteroq::InvalidArgument for an unknown param or a malformed value (named).
 */
HETEROQ_API std::pair<std::string, std::string> energy_goal_options(const std::string& params_json);

/**
 * AutoQKeras's bits goal params (ForgivingFactorBits: `input_bits`, `output_bits`, `ref_bits`,
 * `config`) as heteroq::cost::model_size options (JSON object, .first) and the measure (.second):
 * "total" (config null or {"default": ["parameters", "activations"]}), "parameters" or
 * "activations" (a default of just that). Per-class configs are not supported (an error).
 */
HETEROQ_API std::pair<std::string, std::string> bits_goal_options(const std::string& params_json);

/// Indexes of the points (metric[i], cost[i]) no other point dominates (a metric at least as high
/// and a cost at most as high, one strictly), in increasing cost; NaN points are skipped.
/// @throws heteroq::InvalidArgument when the sizes differ.
HETEROQ_API std::vector<int64_t> pareto_front(const std::vector<double>& metric,
                                              const std::vector<double>& cost);

/// Non-domination rank of each point (0: the Pareto front, 1: the front once 0 is removed, ...);
/// NaN points get the largest rank + 1.
HETEROQ_API std::vector<int64_t> pareto_ranks(const std::vector<double>& metric,
                                              const std::vector<double>& cost);

}  // namespace heteroq::autoq
