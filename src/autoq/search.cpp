// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// AutoQ search: the strategies and the engine.
#include "heteroq/autoq/search.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "heteroq/errors.h"

namespace heteroq::autoq {

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

uint64_t splitmix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// The generator of trial `number` (independent of what other trials did).
std::mt19937_64 trial_rng(uint64_t seed, int64_t number, uint64_t stream) {
  return std::mt19937_64(
      splitmix(splitmix(seed) ^ splitmix(static_cast<uint64_t>(number) * 31 + stream)));
}

std::vector<int64_t> random_choice(const SearchSpace& space, std::mt19937_64& rng) {
  std::vector<int64_t> c;
  for (const auto& p : space.params()) {
    std::uniform_int_distribution<int64_t> d(0, static_cast<int64_t>(p.choices.size()) - 1);
    c.push_back(d(rng));
  }
  return c;
}

std::set<std::string> seen_params(const std::vector<Trial>& trials) {
  std::set<std::string> s;
  for (const auto& t : trials) s.insert(t.params);
  return s;
}

// A random configuration not yet in the study (AutoQKeras/keras-tuner retry up to 100 times);
// nullopt when none is found (the space is exhausted).
std::optional<std::vector<int64_t>> unique_random(const SearchSpace& space,
                                                  const std::set<std::string>& seen,
                                                  std::mt19937_64& rng) {
  for (int i = 0; i < 100; ++i) {
    auto c = random_choice(space, rng);
    if (!seen.count(space.params_json(c))) return c;
  }
  return std::nullopt;
}

Decision run_new(const SearchSpace& space, const std::vector<int64_t>& c, int64_t epochs) {
  Decision d;
  d.kind = Decision::kRun;
  d.trial.params = space.params_json(c);
  d.trial.epochs = epochs;
  return d;
}

using RankFn = std::function<std::vector<double>(const std::vector<Trial>&)>;

class RandomStrategy : public Strategy {
 public:
  explicit RandomStrategy(const SearchOptions& o) : o_(o) {}
  Decision suggest(const SearchSpace& space, const std::vector<Trial>& trials) const override {
    auto rng = trial_rng(o_.seed, static_cast<int64_t>(trials.size()), 0);
    auto c = unique_random(space, seen_params(trials), rng);
    if (!c) return Decision{};
    return run_new(space, *c, o_.epochs);
  }

 private:
  SearchOptions o_;
};

// Univariate TPE for categorical parameters (Bergstra et al. 2011): the complete trials split
// into the best gamma fraction (l) and the rest (g); each parameter's densities are the choice
// counts plus a uniform prior of weight prior_weight; candidates drawn from l maximize l/g.
class TpeStrategy : public Strategy {
 public:
  TpeStrategy(const SearchOptions& o, RankFn rank) : o_(o), rank_(std::move(rank)) {}
  Decision suggest(const SearchSpace& space, const std::vector<Trial>& trials) const override {
    const int64_t number = static_cast<int64_t>(trials.size());
    auto rng = trial_rng(o_.seed, number, 1);
    const auto seen = seen_params(trials);
    std::vector<Trial> done;
    for (const auto& t : trials)
      if (t.status == "complete") done.push_back(t);
    if (static_cast<int64_t>(done.size()) < o_.tpe_startup_trials) {
      auto c = unique_random(space, seen, rng);
      if (!c) return Decision{};
      return run_new(space, *c, o_.epochs);
    }
    const auto value = rank_(done);
    std::vector<size_t> order(done.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return value[a] > value[b]; });
    const size_t n_good = std::max<size_t>(
        1, static_cast<size_t>(std::ceil(o_.tpe_gamma * static_cast<double>(done.size()))));
    std::vector<std::vector<int64_t>> choices;
    for (const auto& t : done) choices.push_back(space.choice_from_json(t.params));
    const auto& params = space.params();
    for (int attempt = 0; attempt < 10; ++attempt) {
      std::vector<int64_t> c;
      for (size_t p = 0; p < params.size(); ++p) {
        const size_t k = params[p].choices.size();
        std::vector<double> l(k, o_.tpe_prior_weight / static_cast<double>(k));
        std::vector<double> g(k, o_.tpe_prior_weight / static_cast<double>(k));
        for (size_t r = 0; r < order.size(); ++r) (r < n_good ? l : g)[choices[order[r]][p]] += 1.0;
        std::discrete_distribution<int64_t> dl(l.begin(), l.end());
        double best = -1.0;
        int64_t pick = 0;
        const double nl = static_cast<double>(n_good) + o_.tpe_prior_weight;
        const double ng = static_cast<double>(order.size() - n_good) + o_.tpe_prior_weight;
        for (int64_t s = 0; s < o_.tpe_candidates; ++s) {
          const int64_t x = dl(rng);
          const double ratio = (l[x] / nl) / (g[x] / ng);
          if (ratio > best) {
            best = ratio;
            pick = x;
          }
        }
        c.push_back(pick);
      }
      if (!seen.count(space.params_json(c))) return run_new(space, c, o_.epochs);
    }
    auto c = unique_random(space, seen, rng);
    if (!c) return Decision{};
    return run_new(space, *c, o_.epochs);
  }

 private:
  SearchOptions o_;
  RankFn rank_;
};

// Hyperband (Li et al. 2018): brackets s = s_max..0 of successive halving; bracket s starts
// ceil((s_max+1)/(s+1) * eta^s) random configurations at max_epochs * eta^-s epochs and promotes
// the best 1/eta of each rung, once the rung is finished, to eta times more epochs.
class HyperbandStrategy : public Strategy {
 public:
  HyperbandStrategy(const SearchOptions& o, RankFn rank) : o_(o), rank_(std::move(rank)) {
    s_max_ = static_cast<int64_t>(std::floor(std::log(static_cast<double>(o.hyperband_max_epochs) /
                                                      static_cast<double>(o.hyperband_min_epochs)) /
                                                 std::log(static_cast<double>(o.hyperband_eta)) +
                                             1e-9));
  }
  Decision suggest(const SearchSpace& space, const std::vector<Trial>& trials) const override {
    const double eta = static_cast<double>(o_.hyperband_eta);
    bool blocked = false;
    const auto seen = seen_params(trials);
    for (int64_t b = 0; b < o_.hyperband_iterations * (s_max_ + 1); ++b) {
      const int64_t s = s_max_ - b % (s_max_ + 1);
      const int64_t n = static_cast<int64_t>(std::ceil(
          static_cast<double>(s_max_ + 1) / static_cast<double>(s + 1) * std::pow(eta, s)));
      for (int64_t i = 0; i <= s; ++i) {
        const int64_t n_i =
            std::max<int64_t>(1, static_cast<int64_t>(std::floor(n * std::pow(eta, -i))));
        const int64_t epochs = std::max<int64_t>(
            1, static_cast<int64_t>(std::llround(o_.hyperband_max_epochs * std::pow(eta, i - s))));
        std::vector<Trial> rung, prev;
        for (const auto& t : trials) {
          if (t.bracket != b) continue;
          if (t.rung == i) rung.push_back(t);
          if (t.rung == i - 1) prev.push_back(t);
        }
        if (i == 0) {
          if (static_cast<int64_t>(rung.size()) < n_i) {
            auto rng = trial_rng(o_.seed, static_cast<int64_t>(trials.size()), 2);
            auto c = unique_random(space, seen, rng);
            if (!c) return blocked ? Decision{Decision::kWait, {}} : Decision{};
            Decision d = run_new(space, *c, epochs);
            d.trial.bracket = b;
            d.trial.rung = 0;
            return d;
          }
          continue;
        }
        bool finished = true;
        std::vector<Trial> done;
        for (const auto& t : prev) {
          if (t.status == "running" || t.status == "pending") finished = false;
          if (t.status == "complete") done.push_back(t);
        }
        if (!finished) {
          blocked = true;
          break;
        }
        const auto value = rank_(done);
        std::vector<size_t> order(done.size());
        for (size_t k = 0; k < order.size(); ++k) order[k] = k;
        std::stable_sort(order.begin(), order.end(),
                         [&](size_t a, size_t c) { return value[a] > value[c]; });
        std::set<int64_t> promoted;
        for (const auto& t : rung) promoted.insert(t.parent);
        for (size_t k = 0; k < order.size() && static_cast<int64_t>(k) < n_i; ++k) {
          const Trial& p = done[order[k]];
          if (promoted.count(p.number)) continue;
          Decision d;
          d.kind = Decision::kRun;
          d.trial.params = p.params;
          d.trial.epochs = epochs;
          d.trial.bracket = b;
          d.trial.rung = i;
          d.trial.parent = p.number;
          return d;
        }
      }
    }
    return blocked ? Decision{Decision::kWait, {}} : Decision{};
  }

 private:
  SearchOptions o_;
  RankFn rank_;
  int64_t s_max_ = 0;
};

std::string num(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}

}  // namespace

void SearchOptions::validate() const {
  if (strategy != "random" && strategy != "bayesian" && strategy != "hyperband")
    throw InvalidArgument(
        "autoq: strategy must be \"random\", \"bayesian\" or \"hyperband\", got \"" + strategy +
        "\"");
  if (objective != "score" && objective != "pareto")
    throw InvalidArgument("autoq: objective must be \"score\" or \"pareto\", got \"" + objective +
                          "\"");
  if (max_trials < 1)
    throw InvalidArgument("autoq: max_trials must be >= 1, got " + std::to_string(max_trials));
  if (epochs < 1)
    throw InvalidArgument("autoq: epochs must be >= 1, got " + std::to_string(epochs));
  if (tpe_startup_trials < 0 || tpe_candidates < 1 || !(tpe_gamma > 0.0 && tpe_gamma < 1.0) ||
      !(tpe_prior_weight > 0.0))
    throw InvalidArgument(
        "autoq: TPE options need startup_trials >= 0, candidates >= 1, 0 < gamma < 1, prior_weight "
        "> 0");
  if (hyperband_min_epochs < 1 || hyperband_max_epochs < hyperband_min_epochs ||
      hyperband_eta < 2 || hyperband_iterations < 1)
    throw InvalidArgument(
        "autoq: Hyperband needs 1 <= min_epochs <= max_epochs, eta >= 2, iterations >= 1 (got " +
        std::to_string(hyperband_min_epochs) + ", " + std::to_string(hyperband_max_epochs) + ", " +
        std::to_string(hyperband_eta) + ", " + std::to_string(hyperband_iterations) + ")");
  if (study_name.empty()) throw InvalidArgument("autoq: study_name is empty");
  if (!(poll_seconds > 0.0)) throw InvalidArgument("autoq: poll_seconds must be > 0");
}

std::unique_ptr<Strategy> make_strategy(const SearchOptions& o, RankFn rank) {
  o.validate();
  if (o.strategy == "random") return std::make_unique<RandomStrategy>(o);
  if (o.strategy == "bayesian") return std::make_unique<TpeStrategy>(o, std::move(rank));
  return std::make_unique<HyperbandStrategy>(o, std::move(rank));
}

Search::Search(SearchSpace space, Goal goal, double reference_cost, SearchOptions options)
    : space_(std::move(space)),
      goal_(std::move(goal)),
      reference_cost_(reference_cost),
      options_(std::move(options)) {
  options_.validate();
  goal_.factor.validate();
  if (!(std::isfinite(reference_cost) && reference_cost > 0.0))
    throw InvalidArgument("autoq: the reference cost must be finite and > 0, got " +
                          num(reference_cost));
  const std::string objective = options_.objective;
  const ForgivingFactor factor = goal_.factor;
  const double ref = reference_cost_;
  RankFn rank = [objective](const std::vector<Trial>& ts) {
    std::vector<double> v;
    if (objective == "score") {
      for (const auto& t : ts) v.push_back(t.score);
      return v;
    }
    std::vector<double> m, c;
    for (const auto& t : ts) {
      m.push_back(t.metric);
      c.push_back(t.cost);
    }
    const auto r = pareto_ranks(m, c);
    for (size_t i = 0; i < ts.size(); ++i)
      v.push_back(-static_cast<double>(r[i]) + std::atan(ts[i].score) / 3.2);
    return v;
  };
  strategy_ = make_strategy(options_, rank);
  storage_ = options_.storage.empty() ? memory_storage() : sqlite_storage(options_.storage);
  nlohmann::ordered_json meta;
  meta["space"] = nlohmann::ordered_json::parse(space_.to_json());
  meta["goal"] = {
      {"type", goal_.type},        {"delta_p", factor.delta_p},
      {"delta_n", factor.delta_n}, {"rate", factor.rate},
      {"stress", factor.stress},   {"options", nlohmann::ordered_json::parse(goal_.options)},
      {"reference_cost", ref}};
  meta["strategy"] = {{"name", options_.strategy},
                      {"seed", options_.seed},
                      {"epochs", options_.epochs},
                      {"objective", options_.objective},
                      {"tpe",
                       {options_.tpe_startup_trials, options_.tpe_candidates, options_.tpe_gamma,
                        options_.tpe_prior_weight}},
                      {"hyperband",
                       {options_.hyperband_min_epochs, options_.hyperband_max_epochs,
                        options_.hyperband_eta, options_.hyperband_iterations}}};
  storage_->open(options_.study_name, meta.dump(), options_.overwrite);
  worker_ = make_worker_id();
}

Search::~Search() = default;

std::vector<Trial> Search::trials() const { return storage_->trials(); }

std::optional<Trial> Search::best() const {
  std::optional<Trial> best;
  for (const auto& t : storage_->trials())
    if (t.status == "complete" && (!best || t.score > best->score)) best = t;
  return best;
}

std::vector<Trial> Search::pareto() const {
  std::vector<Trial> done;
  std::vector<double> m, c;
  for (const auto& t : storage_->trials())
    if (t.status == "complete") {
      done.push_back(t);
      m.push_back(t.metric);
      c.push_back(t.cost);
    }
  std::vector<Trial> out;
  for (int64_t i : pareto_front(m, c)) out.push_back(done[i]);
  return out;
}

TrialConfig Search::config_of(const Trial& trial) const {
  return space_.decode(space_.choice_from_json(trial.params));
}

std::vector<Trial> Search::run(const TrialFn& fn, std::optional<int64_t> max_new_trials,
                               const TrialCallback& on_trial) {
  if (!fn) throw InvalidArgument("autoq: the trial function is empty");
  if (max_new_trials && *max_new_trials < 0)
    throw InvalidArgument("autoq: max_new_trials must be >= 0, got " +
                          std::to_string(*max_new_trials));
  const int64_t budget = options_.max_trials;
  auto decide = [&](const std::vector<Trial>& ts) -> Decision {
    if (static_cast<int64_t>(ts.size()) >= budget) return Decision{};
    return strategy_->suggest(space_, ts);
  };
  const double start = now_s();
  int64_t ran = 0;
  while (!max_new_trials || ran < *max_new_trials) {
    const double t0 = now_s();
    bool wait = false;
    std::optional<Trial> claimed = storage_->claim(worker_, decide, &wait);
    if (!claimed) {
      if (!wait) break;
      std::this_thread::sleep_for(std::chrono::duration<double>(options_.poll_seconds));
      continue;
    }
    Trial t = *claimed;
    TrialContext ctx;
    ctx.number = t.number;
    ctx.params = t.params;
    ctx.epochs = t.epochs;
    ctx.parent = t.parent;
    ctx.rung = t.rung;
    if (t.parent >= 0)
      for (const auto& p : storage_->trials())
        if (p.number == t.parent) ctx.parent_epochs = p.epochs;
    TrialOutcome out;
    bool ok = false;
    double t1 = now_s(), t2 = t1;
    try {
      ctx.config = config_of(t);
      t1 = now_s();
      out = fn(ctx);
      t2 = now_s();
      ok = true;
    } catch (const StopSearch&) {
      storage_->release(t.number);
      throw;
    } catch (const std::exception& e) {
      t2 = now_s();
      t.error = e.what();
      if (t.error.empty()) t.error = "the trial function raised an exception";
    } catch (...) {
      storage_->release(t.number);
      throw;
    }
    t.duration = t2 - t1;
    t.status = "failed";
    if (ok) {
      t.metric = out.metric;
      t.cost = out.cost;
      t.user_attrs = out.user_attrs.empty() ? "{}" : out.user_attrs;
      if (std::isnan(out.metric) || std::isinf(out.metric)) {
        t.error = "the metric is " + num(out.metric);
      } else {
        try {
          t.score = goal_.factor.score(out.metric, reference_cost_, out.cost);
          t.status = "complete";
        } catch (const InvalidArgument& e) {
          t.error = e.what();
        }
      }
    }
    t.finished = now_s();
    t.overhead = (t1 - t0) + (t.finished - t2);
    storage_->finish(t);
    ++ran;
    if (on_trial || options_.progress) {
      const auto all = storage_->trials();
      if (options_.progress) {
        double best = std::nan("");
        for (const auto& x : all)
          if (x.status == "complete" && !(x.score <= best)) best = x.score;
        // the ETA extrapolates this run's pace (ran trials in now - start) to the trials left
        const int64_t done = static_cast<int64_t>(all.size());
        const double pace = (now_s() - start) / static_cast<double>(ran);
        std::cerr << "\r" << progress_line(done, budget, best, pace * static_cast<double>(done))
                  << std::flush;
      }
      if (on_trial) on_trial(t, all);
    }
  }
  if (options_.progress) std::cerr << "\n";
  return storage_->trials();
}

std::string progress_line(int64_t done, int64_t total, double best, double elapsed_s) {
  const int width = 24;
  const double frac =
      total > 0 ? std::min(1.0, static_cast<double>(done) / static_cast<double>(total)) : 0.0;
  const int fill = static_cast<int>(frac * width);
  std::ostringstream o;
  o << "trials " << done << "/" << total << " [" << std::string(fill, '=')
    << std::string(width - fill, ' ') << "]";
  if (!std::isnan(best)) {
    o.setf(std::ios::fixed);
    o.precision(4);
    o << " best " << best;
  }
  auto hms = [](double s) {
    const int64_t x = static_cast<int64_t>(s + 0.5);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(x / 3600),
                  static_cast<long long>(x / 60 % 60), static_cast<long long>(x % 60));
    return std::string(buf);
  };
  o << " elapsed " << hms(elapsed_s);
  if (done > 0 && done < total)
    o << " ETA " << hms(elapsed_s / static_cast<double>(done) * (total - done));
  return o.str();
}

TextBar::TextBar(std::string label, int64_t total, std::ostream* out)
    : label_(std::move(label)), total_(total), out_(out ? out : &std::cerr), start_(now_s()) {
  if (total < 0)
    throw InvalidArgument("autoq TextBar: total must be >= 0, got " + std::to_string(total));
}

TextBar::~TextBar() {
  try {
    close();
  } catch (...) {
  }
}

std::string TextBar::line() const {
  std::string l = progress_line(done_, total_, std::nan(""), now_s() - start_);
  l.replace(0, 6, label_);  // "trials" -> the label
  if (!note_.empty()) l += " " + note_;
  return l;
}

void TextBar::update(int64_t n, const std::string& note) {
  done_ += n;
  note_ = note;
  *out_ << "\r" << line() << std::flush;
}

void TextBar::close() {
  if (closed_) return;
  closed_ = true;
  *out_ << "\n" << std::flush;
}

}  // namespace heteroq::autoq
