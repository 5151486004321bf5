// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// AutoQ over a torch::nn::Sequential (the C++ counterpart of heteroq.autoq.AutoQ): each trial's
// model is built by heteroq::nn::model_quantize from the float model and the trial's config, its
// cost priced by a cost function, and trained by the user's std::function.
#pragma once

#include <torch/nn/modules/container/sequential.h>
#include <torch/optim/optimizer.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "heteroq/autoq/goal.h"
#include "heteroq/autoq/search.h"
#include "heteroq/autoq/space.h"
#include "heteroq/export.h"

namespace heteroq::autoq {

/// The children of a Sequential as the search sees them (names "0", "1", ... as model_quantize;
/// kinds as heteroq::nn::FloatLayer; width = out_features / out_channels).
HETEROQ_API std::vector<LayerDesc> describe_sequential(const torch::nn::Sequential& model);

/// A copy of `model` whose Linear/Conv1d/Conv2d children named in `factors` have
/// max(int(width * factor), 1) outputs (AutoQKeras's tune_filters), the next consumer
/// (Linear/Conv/BatchNorm, a Linear after a flatten per channel) resized; resized layers are
/// freshly initialized, the others keep their weights.
/// @throws heteroq::InvalidArgument for an unknown layer or a shape it cannot follow.
HETEROQ_API torch::nn::Sequential scale_widths(const torch::nn::Sequential& model,
                                               const std::map<std::string, double>& factors);

/// The cost of a model for a goal; for_reference: price the float model as the goal's reference.
using CostFn = std::function<double(const torch::nn::Sequential& model, bool for_reference)>;
/// Makes a goal's CostFn from the input shape (one sample) and the goal's options (JSON text).
using CostFactory =
    std::function<CostFn(const std::vector<int64_t>& input_shape, const std::string& options)>;

/// Registers (or replaces) a named goal's cost; "energy", "bits", "ebops" and "fpga" are
/// registered by heteroq when its cost models are built in.
HETEROQ_API void register_cost(const std::string& name, CostFactory factory);
/// The registered goal names.
HETEROQ_API std::vector<std::string> registered_costs();
/// @throws heteroq::InvalidArgument for an unregistered name ("not available" for the four
///         built-in names when their cost model is missing).
HETEROQ_API CostFn named_cost(const std::string& name, const std::vector<int64_t>& input_shape,
                              const std::string& options);

/// The user's training: trains `model` (already built for the trial) for `epochs` more epochs
/// and returns the metric (higher is better). Throwing fails the trial; StopSearch stops the
/// search.
using TrainFn =
    std::function<double(torch::nn::Sequential& model, int64_t epochs, const TrialContext& trial)>;

/// Batches of (input, integer label) for make_trainer.
using Batches = std::vector<std::pair<torch::Tensor, torch::Tensor>>;
using LossFn =
    std::function<torch::Tensor(const torch::Tensor& output, const torch::Tensor& target)>;
using OptimizerFactory =
    std::function<std::unique_ptr<torch::optim::Optimizer>(std::vector<torch::Tensor> params)>;

/**
 * The built-in training function for the common case (as heteroq.autoq.make_trainer): `epochs`
 * passes over `train` with `loss` and `optimizer(params)` (default Adam, lr 1e-3), then the
 * accuracy (argmax of the output against the integer labels) on `val`; with progress, a TextBar
 * over the epochs.
 * @throws heteroq::InvalidArgument for empty batches or a missing loss.
 */
HETEROQ_API TrainFn make_trainer(Batches train, Batches val, LossFn loss,
                                 OptimizerFactory optimizer = nullptr, bool progress = false);

struct HETEROQ_API ModelSearchOptions {
  SpaceOptions space;
  SearchOptions search;
  /// When set, the space comes from these bit ranges (space.quantization_config must be empty).
  std::optional<BitRanges> bit_ranges;
  /// Start every trial from the float model's weights.
  bool transfer_weights = true;
  bool qkeras_compatible = false;
  /// Which trained trial models run() keeps: "best", "pareto" (the Pareto front's, which refine()
  /// starts from) or "all" (Hyperband keeps all regardless).
  std::string keep_models = "best";
};

/**
 * AutoQ for a Sequential. Example:
 *
 *     heteroq::autoq::ModelSearchOptions o;
 *     o.space.limit = R"({"Dense": [8, 8, 8], "Activation": [8]})";
 *     o.search.strategy = "bayesian";
 *     o.search.storage = "study.db";
 *     heteroq::autoq::ModelSearch s(model, goal, cost, o);
 *     s.run([&](torch::nn::Sequential& m, int64_t epochs, const auto& trial) { ...; return acc; });
 *     auto best = s.best_model();
 */
class HETEROQ_API ModelSearch {
 public:
  /// `cost` prices trial models (and, with for_reference, the float model: the reference).
  ModelSearch(torch::nn::Sequential float_model, Goal goal, CostFn cost,
              ModelSearchOptions options);
  /// A named goal ({"type", "params"} JSON text; empty: bits) resolved by named_cost().
  ModelSearch(torch::nn::Sequential float_model, const std::string& goal_json,
              const std::vector<int64_t>& input_shape, ModelSearchOptions options);

  std::vector<Trial> run(const TrainFn& train, std::optional<int64_t> max_new_trials = std::nullopt,
                         const TrialCallback& on_trial = nullptr);

  /// The model of a trial, freshly built (weights from the float model with transfer_weights).
  torch::nn::Sequential build(const Trial& trial) const;
  /// The trained model of the best trial when this object trained it; else nullopt.
  std::optional<torch::nn::Sequential> best_model() const;
  /// The trained model of a trial when this object trained it and kept it (keep_models); else
  /// nullopt.
  std::optional<torch::nn::Sequential> trained_model(int64_t trial) const;
  /// Saves the best trained model with heteroq::nn::save_quantized_weights.
  /// @throws heteroq::InvalidArgument when no trial completed here.
  void save_best(const std::string& path) const;

  Search& search() { return search_; }
  const Search& search() const { return search_; }

 private:
  torch::nn::Sequential model_;
  CostFn cost_;
  ModelSearchOptions options_;
  Search search_;
  std::map<int64_t, torch::nn::Sequential> trained_;
};

/**
 * AutoQKerasScheduler over a Sequential (the C++ counterpart of heteroq.autoq.AutoQScheduler):
 * plan_blocks() groups the layers; each block is a ModelSearch of its own study
 * (`<study_name>_block<i>` in the same storage, so a killed schedule resumes block by block) with
 * the limit re-keyed to its layers, the earlier blocks frozen at their best quantizers and the
 * later ones float; every trial starts from the float model's weights. `layer_costs` gives each
 * layer's cost (absent: its parameter count at 8 bits), the reference is their sum.
 */
class HETEROQ_API ModelScheduler {
 public:
  ModelScheduler(torch::nn::Sequential float_model, Goal goal, CostFn cost,
                 ModelSearchOptions options, std::vector<std::string> blocks,
                 std::string schedule = "sequential",
                 std::map<std::string, double> layer_costs = {});

  /// Searches the blocks in turn; returns each block's trials.
  std::vector<std::vector<Trial>> run(const TrainFn& train);
  const std::vector<Block>& plan() const { return plan_; }
  /// The best quantizers of every block (a model_quantize config, JSON text).
  std::string best_config() const;
  /// The last block's best trained model (it carries every block's quantizers).
  std::optional<torch::nn::Sequential> best_model() const;

 private:
  torch::nn::Sequential model_;
  Goal goal_;
  CostFn cost_;
  ModelSearchOptions options_;
  std::vector<Block> plan_;
  std::string fixed_ = "{}";
  std::vector<std::unique_ptr<ModelSearch>> searches_;
};

}  // namespace heteroq::autoq
