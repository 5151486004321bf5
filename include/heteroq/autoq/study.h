// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// AutoQ study storage: every trial's config, metric, cost, score, status and timing, in memory or
// in an SQLite file shared by worker processes. Torch-free.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "heteroq/export.h"

namespace heteroq::autoq {

/// One trial (one evaluation; a Hyperband promotion is a trial of its own with `parent` set).
/// status: "pending" (claimed by nobody: a trial whose worker died, to be rerun under the same
/// number), "running", "complete" or "failed". Unset numbers are NaN.
struct HETEROQ_API Trial {
  int64_t number = -1;
  std::string params;  // {hyperparameter: choice} JSON text
  std::string status = "pending";
  double metric = 0.0 / 0.0;
  double cost = 0.0 / 0.0;
  double score = 0.0 / 0.0;
  int64_t epochs = 0;
  int64_t bracket = -1;  // Hyperband bracket (-1: none)
  int64_t rung = 0;
  int64_t parent = -1;  // the trial this one continues (Hyperband)
  std::string worker;   // host:pid:token of the worker that ran it last
  int64_t pid = 0;
  int64_t attempts = 0;           // claims (> 1 when a dead worker's trial was rerun)
  double started = 0.0 / 0.0;     // Unix time
  double finished = 0.0 / 0.0;    // Unix time
  double duration = 0.0 / 0.0;    // seconds in the trial function
  double overhead = 0.0 / 0.0;    // seconds the engine spent on the trial (claim, score, record)
  std::string error;              // why it failed
  std::string user_attrs = "{}";  // what the trial function attached (JSON object text)
};

/// What a worker does next (StudyStorage::claim's decision).
struct HETEROQ_API Decision {
  enum Kind { kRun, kWait, kDone } kind = kDone;
  Trial trial;  // for kRun: params, epochs, bracket, rung, parent of the new trial
};

/**
 * A study's trials. claim() is atomic across the processes sharing a file: it first requeues the
 * running trials of dead workers (same machine: their pid is gone), then hands out the
 * lowest-numbered pending trial, or else asks `decide` (given every trial) for a new one and
 * inserts it as running. So no trial is lost or run twice, whatever kills a worker.
 */
class HETEROQ_API StudyStorage {
 public:
  virtual ~StudyStorage() = default;
  /// Creates the study, or checks an existing one's `meta` (JSON text: space, goal, strategy,
  /// seed) equals this one; with overwrite its trials are deleted first.
  /// @throws heteroq::InvalidArgument when an existing study differs and overwrite is false.
  virtual void open(const std::string& study, const std::string& meta, bool overwrite) = 0;
  virtual std::optional<Trial> claim(
      const std::string& worker, const std::function<Decision(const std::vector<Trial>&)>& decide,
      bool* wait) = 0;
  /// Records a finished trial (status, metric, cost, score, timings, error, user_attrs).
  virtual void finish(const Trial& trial) = 0;
  /// Puts a running trial back to pending (its worker stopped without a result).
  virtual void release(int64_t number) = 0;
  virtual std::vector<Trial> trials() = 0;
  /// Study attributes (e.g. the scheduler's state), JSON text values.
  virtual void set_attr(const std::string& key, const std::string& value) = 0;
  virtual std::optional<std::string> get_attr(const std::string& key) = 0;
  /// The studies stored here.
  virtual std::vector<std::string> studies() = 0;
};

/// In-memory storage (thread-safe; lost with the process).
HETEROQ_API std::unique_ptr<StudyStorage> memory_storage();

/**
 * SQLite storage in `path` (created if absent; WAL journal, busy timeout, BEGIN IMMEDIATE claims).
 * @throws heteroq::InvalidArgument when the file cannot be opened or is not an AutoQ study
 *         (a corrupted or foreign file), naming the path.
 */
HETEROQ_API std::unique_ptr<StudyStorage> sqlite_storage(const std::string& path);

/// The trials as CSV (a header row; params as JSON text, quoted) or as a JSON array.
HETEROQ_API std::string trials_to_csv(const std::vector<Trial>& trials);
HETEROQ_API std::string trials_to_json(const std::vector<Trial>& trials);

/// "host:pid:token" for this process (token random per call).
HETEROQ_API std::string make_worker_id();

}  // namespace heteroq::autoq
