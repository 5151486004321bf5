// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// AutoQ search: strategies (random, TPE, Hyperband) and the engine that runs the user's trial
// function over a study. Torch-free: the trial function builds and trains the model.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "heteroq/autoq/goal.h"
#include "heteroq/autoq/space.h"
#include "heteroq/autoq/study.h"
#include "heteroq/export.h"

namespace heteroq::autoq {

/// Options of the strategies and the engine.
struct HETEROQ_API SearchOptions {
  /// "random", "bayesian" (a categorical TPE sampler) or "hyperband" (successive halving on
  /// epochs).
  std::string strategy = "random";
  uint64_t seed = 0;
  /// Trials in the study at most (Hyperband: also bounded by its brackets).
  int64_t max_trials = 20;
  /// Epochs per trial (random, bayesian).
  int64_t epochs = 1;
  /// "score" (maximize the forgiving-factor score) or "pareto" (the strategies rank trials by
  /// their Pareto rank over (metric, cost), then by score).
  std::string objective = "score";
  // TPE
  int64_t tpe_startup_trials = 8;  // random trials before the model is used
  int64_t tpe_candidates = 24;     // samples from the good density per parameter
  double tpe_gamma = 0.25;         // fraction of complete trials that are "good"
  double tpe_prior_weight = 1.0;
  // Hyperband
  int64_t hyperband_min_epochs = 1;
  int64_t hyperband_max_epochs = 9;
  int64_t hyperband_eta = 3;
  int64_t hyperband_iterations = 1;
  // Storage: "" keeps the study in memory, else an SQLite file path.
  std::string storage;
  std::string study_name = "autoq";
  /// Replace an existing study of the same name with a different meta (else: error). A study
  /// with the same meta always resumes.
  bool overwrite = false;
  /// Print a text progress bar with ETA to stderr.
  bool progress = false;
  /// Seconds between polls while a Hyperband rung waits for other workers' trials.
  double poll_seconds = 0.2;

  /// @throws heteroq::InvalidArgument for an unknown strategy or objective, or a bad number.
  void validate() const;
};

/// What a trial function gets: the trial's number, hyperparameters (JSON text), decoded config,
/// the epochs to reach, and for a Hyperband promotion the trial it continues and its epochs.
struct HETEROQ_API TrialContext {
  int64_t number = -1;
  std::string params;
  TrialConfig config;
  int64_t epochs = 1;
  int64_t parent = -1;
  int64_t parent_epochs = 0;
  int64_t rung = 0;
};

/// What a trial function returns: the metric (higher is better, e.g. validation accuracy), the
/// trial model's cost in the goal's unit, and optional attributes (JSON object text).
struct HETEROQ_API TrialOutcome {
  double metric = 0.0;
  double cost = 0.0;
  std::string user_attrs = "{}";
};

/// The user's trial function. An exception or a NaN metric/cost records the trial as failed and
/// the search goes on; a heteroq::autoq::StopSearch stops the search and requeues the trial.
using TrialFn = std::function<TrialOutcome(const TrialContext&)>;
/// Called after each trial with the trial and the study's trials so far.
using TrialCallback = std::function<void(const Trial&, const std::vector<Trial>&)>;

/// Thrown by a trial function to stop the search (e.g. on Ctrl-C); the trial is requeued.
class HETEROQ_API StopSearch : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A suggestion strategy. suggest() is a function of the study's trials and the trial number
/// (with the seed), so a resumed or shared study continues exactly.
class HETEROQ_API Strategy {
 public:
  virtual ~Strategy() = default;
  virtual Decision suggest(const SearchSpace& space, const std::vector<Trial>& trials) const = 0;
};

/// "random", "bayesian" or "hyperband" with `options`. `rank` orders complete trials (higher is
/// better); the engine passes the objective's.
HETEROQ_API std::unique_ptr<Strategy> make_strategy(
    const SearchOptions& options,
    std::function<std::vector<double>(const std::vector<Trial>&)> rank);

/**
 * The engine. It keeps the study (memory or SQLite), asks the strategy for trials, runs the
 * trial function, scores the outcome with the goal's forgiving factor against `reference_cost`,
 * and records it. Several processes may run() on one SQLite study; a killed one's running trial
 * is rerun by the next claim.
 */
class HETEROQ_API Search {
 public:
  /// @throws heteroq::InvalidArgument for bad options or reference cost, or an existing study
  ///         (same name, other space/goal/strategy) without overwrite.
  Search(SearchSpace space, Goal goal, double reference_cost, SearchOptions options);
  ~Search();

  /// Runs trials until the budget is spent (or `max_new_trials` more have run in this call).
  /// @returns the study's trials.
  std::vector<Trial> run(const TrialFn& fn, std::optional<int64_t> max_new_trials = std::nullopt,
                         const TrialCallback& on_trial = nullptr);

  const SearchSpace& space() const { return space_; }
  const Goal& goal() const { return goal_; }
  const SearchOptions& options() const { return options_; }
  double reference_cost() const { return reference_cost_; }
  std::vector<Trial> trials() const;
  /// The complete trial of highest score (nullopt: none).
  std::optional<Trial> best() const;
  /// The complete trials on the Pareto front of (metric, cost), in increasing cost.
  std::vector<Trial> pareto() const;
  /// The decoded config of a trial.
  TrialConfig config_of(const Trial& trial) const;
  StudyStorage& storage() { return *storage_; }

 private:
  SearchSpace space_;
  Goal goal_;
  double reference_cost_;
  SearchOptions options_;
  std::unique_ptr<StudyStorage> storage_;
  std::unique_ptr<Strategy> strategy_;
  std::string worker_;
};

/// A text progress bar line ("trials 3/20 [=====     ] best 0.8123 elapsed 0:00:30 ETA 0:01:05"):
/// done of total, the best score (NaN: none), seconds elapsed.
HETEROQ_API std::string progress_line(int64_t done, int64_t total, double best, double elapsed_s);

/**
 * A text progress bar with ETA on a stream (stderr by default), redrawn in place: the engine's
 * trial bar (SearchOptions::progress), and one for a C++ training function's epochs:
 *
 *     heteroq::autoq::TextBar bar("epochs", epochs);
 *     for (int64_t e = 0; e < epochs; ++e) { train_one_epoch(); bar.update(1, "loss 0.41"); }
 */
class HETEROQ_API TextBar {
 public:
  TextBar(std::string label, int64_t total, std::ostream* out = nullptr);
  ~TextBar();
  /// Advances by n and redraws, with an optional note after the bar.
  void update(int64_t n = 1, const std::string& note = "");
  /// Ends the line (also done by the destructor).
  void close();
  /// The current line (what update() drew).
  std::string line() const;

 private:
  std::string label_;
  int64_t total_;
  int64_t done_ = 0;
  std::ostream* out_;
  double start_;
  std::string note_;
  bool closed_ = false;
};

}  // namespace heteroq::autoq
