// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
// Python bindings of the AutoQ search engine (heteroq::autoq): the search space, the goals, the
// Pareto front and the engine with its storage. heteroq/autoq.py is the idiomatic layer over them;
// JSON crosses as text.
#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>

#include "heteroq/autoq/goal.h"
#include "heteroq/autoq/search.h"
#include "heteroq/autoq/space.h"
#include "heteroq/autoq/study.h"
#include "heteroq/errors.h"

namespace py = pybind11;
namespace aq = heteroq::autoq;

namespace {

py::dict trial_dict(const aq::Trial& t) {
  py::dict d;
  d["number"] = t.number;
  d["params"] = t.params;
  d["status"] = t.status;
  d["metric"] = t.metric;
  d["cost"] = t.cost;
  d["score"] = t.score;
  d["epochs"] = t.epochs;
  d["bracket"] = t.bracket;
  d["rung"] = t.rung;
  d["parent"] = t.parent;
  d["worker"] = t.worker;
  d["pid"] = t.pid;
  d["attempts"] = t.attempts;
  d["started"] = t.started;
  d["finished"] = t.finished;
  d["duration"] = t.duration;
  d["overhead"] = t.overhead;
  d["error"] = t.error;
  d["user_attrs"] = t.user_attrs;
  return d;
}

py::list trial_list(const std::vector<aq::Trial>& ts) {
  py::list l;
  for (const auto& t : ts) l.append(trial_dict(t));
  return l;
}

py::dict config_dict(const aq::TrialConfig& c) {
  py::dict d;
  d["quantizer_config"] = c.quantizer_config;
  d["filters"] = c.filters;
  d["bits"] = c.bits;
  return d;
}

aq::Trial trial_from(const py::dict& d) {
  aq::Trial t;
  t.number = d["number"].cast<int64_t>();
  t.params = d["params"].cast<std::string>();
  t.status = d["status"].cast<std::string>();
  return t;
}

}  // namespace

void bind_autoq(py::module_& m) {
  py::register_exception<aq::StopSearch>(m, "_AutoQStopSearch", PyExc_KeyboardInterrupt);

  py::class_<aq::SearchSpace>(m, "_AutoQSpace")
      .def_static(
          "build",
          [](const std::vector<std::tuple<std::string, std::string, std::string, bool, int64_t>>&
                 layers,
             const std::string& quantization_config, const std::string& limit,
             int64_t activation_bits, const std::string& tune_filters,
             const std::string& tune_filters_exceptions,
             const std::vector<std::string>& frozen_layers,
             std::optional<std::vector<int64_t>> layer_indexes, const std::string& fixed_config,
             std::optional<std::vector<int64_t>> bit_ranges,
             std::optional<std::vector<std::string>> templates) {
            std::vector<aq::LayerDesc> ls;
            for (const auto& [name, kind, act, bias, width] : layers)
              ls.push_back({name, kind, act, bias, width});
            aq::SpaceOptions o;
            o.quantization_config = quantization_config;
            o.limit = limit;
            o.activation_bits = activation_bits;
            o.tune_filters = tune_filters;
            o.tune_filters_exceptions = tune_filters_exceptions;
            o.frozen_layers = frozen_layers;
            o.layer_indexes = layer_indexes;
            o.fixed_config = fixed_config;
            if (!bit_ranges) return aq::SearchSpace::build(ls, o);
            if (bit_ranges->size() != 6)
              throw heteroq::InvalidArgument(
                  "autoq: bit ranges need 6 numbers (kernel, bias, activation min/max)");
            aq::BitRanges r;
            r.kernel_min = (*bit_ranges)[0];
            r.kernel_max = (*bit_ranges)[1];
            r.bias_min = (*bit_ranges)[2];
            r.bias_max = (*bit_ranges)[3];
            r.activation_min = (*bit_ranges)[4];
            r.activation_max = (*bit_ranges)[5];
            if (templates) {
              if (templates->size() != 3)
                throw heteroq::InvalidArgument(
                    "autoq: bit-range templates need 3 strings (kernel, bias, activation)");
              r.kernel_template = (*templates)[0];
              r.bias_template = (*templates)[1];
              r.activation_template = (*templates)[2];
            }
            return aq::SearchSpace::from_bit_ranges(ls, r, o);
          },
          py::arg("layers"), py::arg("quantization_config"), py::arg("limit"),
          py::arg("activation_bits"), py::arg("tune_filters"), py::arg("tune_filters_exceptions"),
          py::arg("frozen_layers"), py::arg("layer_indexes"), py::arg("fixed_config"),
          py::arg("bit_ranges"), py::arg("templates"))
      .def_property_readonly("params",
                             [](const aq::SearchSpace& s) {
                               py::list l;
                               for (const auto& p : s.params()) {
                                 py::dict d;
                                 d["name"] = p.name;
                                 d["kind"] = p.kind;
                                 d["field"] = p.field;
                                 d["choices"] = p.choices;
                                 d["bits"] = p.bits;
                                 d["layers"] = p.layers;
                                 l.append(d);
                               }
                               return l;
                             })
      .def_property_readonly("cardinality", &aq::SearchSpace::cardinality)
      .def("decode", [](const aq::SearchSpace& s,
                        const std::vector<int64_t>& c) { return config_dict(s.decode(c)); })
      .def("decode_params",
           [](const aq::SearchSpace& s, const std::string& p) {
             return config_dict(s.decode(s.choice_from_json(p)));
           })
      .def("choice_from_json", &aq::SearchSpace::choice_from_json)
      .def("params_json", &aq::SearchSpace::params_json)
      .def("to_json", &aq::SearchSpace::to_json);

  m.def("_autoq_default_quantization_config", &aq::default_quantization_config);
  m.def("_autoq_parse_goal", [](const std::string& text) {
    const aq::Goal g = aq::parse_goal(text);
    return py::make_tuple(g.type, g.factor.delta_p, g.factor.delta_n, g.factor.rate,
                          g.factor.stress, g.options);
  });
  m.def("_autoq_delta",
        [](double dp, double dn, double rate, double stress, double ref, double trial) {
          aq::ForgivingFactor f{dp, dn, rate, stress};
          f.validate();
          return f.delta(ref, trial);
        });
  m.def("_autoq_score", [](double dp, double dn, double rate, double stress, double metric,
                           double ref, double trial) {
    aq::ForgivingFactor f{dp, dn, rate, stress};
    f.validate();
    return f.score(metric, ref, trial);
  });
  m.def("_autoq_energy_options", &aq::energy_goal_options);
  m.def("_autoq_bits_options", &aq::bits_goal_options);
  m.def("_autoq_pareto_front", &aq::pareto_front);
  m.def("_autoq_pareto_ranks", &aq::pareto_ranks);
  m.def("_autoq_progress_line", &aq::progress_line);
  m.def("_autoq_plan_blocks",
        [](const std::vector<std::tuple<std::string, std::string, std::string, bool, int64_t>>&
               layers,
           const std::vector<std::string>& blocks, const std::map<std::string, double>& layer_costs,
           const std::string& schedule, int64_t max_trials, double reference_cost,
           const std::string& limit, std::optional<std::vector<int64_t>> layer_indexes) {
          std::vector<aq::LayerDesc> ls;
          for (const auto& [name, kind, act, bias, width] : layers)
            ls.push_back({name, kind, act, bias, width});
          py::list out;
          for (const auto& b : aq::plan_blocks(ls, blocks, layer_costs, schedule, max_trials,
                                               reference_cost, limit, layer_indexes)) {
            py::dict d;
            d["pattern"] = b.pattern;
            d["layers"] = b.layers;
            d["cost"] = b.cost;
            d["max_trials"] = b.max_trials;
            d["limit"] = b.limit;
            out.append(d);
          }
          return out;
        });

  py::class_<aq::Search>(m, "_AutoQSearch")
      .def(py::init([](const aq::SearchSpace& space, const std::string& goal_type, double dp,
                       double dn, double rate, double stress, const std::string& goal_options,
                       double reference_cost, const py::dict& o) {
             aq::Goal g;
             g.type = goal_type;
             g.factor = {dp, dn, rate, stress};
             g.options = goal_options;
             aq::SearchOptions so;
             for (const auto& [k, v] : o) {
               const std::string key = k.cast<std::string>();
               if (key == "strategy")
                 so.strategy = v.cast<std::string>();
               else if (key == "seed")
                 so.seed = v.cast<uint64_t>();
               else if (key == "max_trials")
                 so.max_trials = v.cast<int64_t>();
               else if (key == "epochs")
                 so.epochs = v.cast<int64_t>();
               else if (key == "objective")
                 so.objective = v.cast<std::string>();
               else if (key == "tpe_startup_trials")
                 so.tpe_startup_trials = v.cast<int64_t>();
               else if (key == "tpe_candidates")
                 so.tpe_candidates = v.cast<int64_t>();
               else if (key == "tpe_gamma")
                 so.tpe_gamma = v.cast<double>();
               else if (key == "tpe_prior_weight")
                 so.tpe_prior_weight = v.cast<double>();
               else if (key == "hyperband_min_epochs")
                 so.hyperband_min_epochs = v.cast<int64_t>();
               else if (key == "hyperband_max_epochs")
                 so.hyperband_max_epochs = v.cast<int64_t>();
               else if (key == "hyperband_eta")
                 so.hyperband_eta = v.cast<int64_t>();
               else if (key == "hyperband_iterations")
                 so.hyperband_iterations = v.cast<int64_t>();
               else if (key == "storage")
                 so.storage = v.cast<std::string>();
               else if (key == "study_name")
                 so.study_name = v.cast<std::string>();
               else if (key == "overwrite")
                 so.overwrite = v.cast<bool>();
               else if (key == "progress")
                 so.progress = v.cast<bool>();
               else if (key == "poll_seconds")
                 so.poll_seconds = v.cast<double>();
               else
                 throw heteroq::InvalidArgument("autoq: unknown search option \"" + key + "\"");
             }
             return std::make_unique<aq::Search>(space, g, reference_cost, so);
           }),
           py::arg("space"), py::arg("goal_type"), py::arg("delta_p"), py::arg("delta_n"),
           py::arg("rate"), py::arg("stress"), py::arg("goal_options"), py::arg("reference_cost"),
           py::arg("options"))
      .def(
          "run",
          [](aq::Search& s, const py::function& fn, std::optional<int64_t> max_new,
             const py::object& on_trial) {
            // The Python trial function gets a dict and returns (metric, cost, user_attrs_json).
            // A KeyboardInterrupt/SystemExit stops the search (the trial is requeued); any other
            // exception fails the trial with its text.
            std::optional<py::error_already_set> stop;
            aq::TrialFn tf = [&](const aq::TrialContext& c) {
              py::dict ctx;
              ctx["number"] = c.number;
              ctx["params"] = c.params;
              ctx["config"] = config_dict(c.config);
              ctx["epochs"] = c.epochs;
              ctx["parent"] = c.parent;
              ctx["parent_epochs"] = c.parent_epochs;
              ctx["rung"] = c.rung;
              try {
                const py::tuple r = fn(ctx);
                aq::TrialOutcome out;
                out.metric = r[0].cast<double>();
                out.cost = r[1].cast<double>();
                out.user_attrs = r[2].cast<std::string>();
                return out;
              } catch (py::error_already_set& e) {
                if (e.matches(PyExc_KeyboardInterrupt) || e.matches(PyExc_SystemExit) ||
                    e.matches(PyExc_GeneratorExit)) {
                  stop.emplace(std::move(e));
                  throw aq::StopSearch("stopped");
                }
                throw std::runtime_error(e.what());
              }
            };
            aq::TrialCallback cb;
            if (!on_trial.is_none())
              cb = [&](const aq::Trial& t, const std::vector<aq::Trial>& all) {
                on_trial(trial_dict(t), trial_list(all));
              };
            try {
              return trial_list(s.run(tf, max_new, cb));
            } catch (const aq::StopSearch&) {
              if (stop) throw std::move(*stop);
              throw;
            }
          },
          py::arg("fn"), py::arg("max_new_trials") = py::none(), py::arg("on_trial") = py::none())
      .def("trials", [](const aq::Search& s) { return trial_list(s.trials()); })
      .def("best",
           [](const aq::Search& s) -> py::object {
             const auto b = s.best();
             if (!b) return py::none();
             return trial_dict(*b);
           })
      .def("pareto", [](const aq::Search& s) { return trial_list(s.pareto()); })
      .def("config_of", [](const aq::Search& s,
                           const py::dict& t) { return config_dict(s.config_of(trial_from(t))); })
      .def_property_readonly("reference_cost", &aq::Search::reference_cost)
      .def("trials_csv", [](const aq::Search& s) { return aq::trials_to_csv(s.trials()); })
      .def("trials_json", [](const aq::Search& s) { return aq::trials_to_json(s.trials()); })
      .def("set_attr", [](aq::Search& s, const std::string& k,
                          const std::string& v) { s.storage().set_attr(k, v); })
      .def("get_attr", [](aq::Search& s, const std::string& k) { return s.storage().get_attr(k); });
}
