// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// AutoQ over a torch::nn::Sequential: layer description, width scaling (tune_filters), the named
// cost registry and ModelSearch.
#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/adam.h>
#include <torch/utils.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

#include "heteroq/autoq/model.h"
#include "heteroq/autoq/refine.h"
#include "heteroq/cost/hardware.h"
#include "heteroq/cost/qtools.h"
#include "heteroq/errors.h"
#include "heteroq/nn/convert.h"
#include "heteroq/nn/hgq.h"
#include "heteroq/nn/serialize.h"

namespace heteroq::autoq {

std::vector<LayerDesc> describe_sequential(const torch::nn::Sequential& model) {
  std::vector<LayerDesc> out;
  for (const auto& item : model->named_children()) {
    const auto& m = item.value();
    LayerDesc d;
    d.name = item.key();
    d.kind = m->name();
    d.has_bias = false;
    if (auto l = m->as<torch::nn::Linear>()) {
      d.kind = "Dense";
      d.width = l->options.out_features();
      d.has_bias = l->options.bias();
    } else if (auto c = m->as<torch::nn::Conv1d>()) {
      d.kind = "Conv1D";
      d.width = c->options.out_channels();
      d.has_bias = c->options.bias();
    } else if (auto c2 = m->as<torch::nn::Conv2d>()) {
      const auto& o = c2->options;
      const bool depthwise = o.groups() > 1 && o.groups() == o.in_channels() &&
                             o.out_channels() % o.in_channels() == 0;
      d.kind = depthwise ? "DepthwiseConv2D" : "Conv2D";
      d.width = o.out_channels();
      d.has_bias = o.bias();
    } else if (auto t = m->as<torch::nn::ConvTranspose2d>()) {
      d.kind = "Conv2DTranspose";
      d.width = t->options.out_channels();
      d.has_bias = t->options.bias();
    } else if (m->as<torch::nn::BatchNorm1d>() || m->as<torch::nn::BatchNorm2d>()) {
      d.kind = "BatchNormalization";
    } else if (m->as<torch::nn::ReLU>()) {
      d.kind = "Activation";
      d.activation = "relu";
    } else if (m->as<torch::nn::Tanh>()) {
      d.kind = "Activation";
      d.activation = "tanh";
    } else if (m->as<torch::nn::Sigmoid>()) {
      d.kind = "Activation";
      d.activation = "sigmoid";
    } else if (m->as<torch::nn::LeakyReLU>()) {
      d.kind = "Activation";
      d.activation = "leakyrelu";
    } else if (m->as<torch::nn::Softmax>()) {
      d.kind = "Activation";
      d.activation = "softmax";
    } else if (m->as<torch::nn::Identity>()) {
      d.kind = "Activation";
      d.activation = "linear";
    }
    out.push_back(std::move(d));
  }
  return out;
}

namespace {

// AnyModule::clone() runs reset(), which draws new initial weights from the default generator
// before copying the real values back, where Python's copy.deepcopy draws nothing: the generator
// is restored, so that both languages' searches consume the same random numbers.
torch::nn::AnyModule clone_without_draws(const torch::nn::AnyModule& any) {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  at::Tensor state;
  {
    std::lock_guard<std::mutex> lock(gen.mutex());
    state = gen.get_state();
  }
  torch::nn::AnyModule copy = any.clone();
  {
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(state);
  }
  return copy;
}

}  // namespace

torch::nn::Sequential scale_widths(const torch::nn::Sequential& model,
                                   const std::map<std::string, double>& factors) {
  std::set<std::string> names;
  for (const auto& item : model->named_children()) names.insert(item.key());
  for (const auto& [n, f] : factors) {
    if (!names.count(n))
      throw InvalidArgument("autoq scale_widths: \"" + n + "\" is not a layer of the model");
    if (!(f > 0.0))
      throw InvalidArgument("autoq scale_widths: the factor of \"" + n + "\" must be > 0");
  }
  torch::nn::Sequential out;
  std::optional<std::pair<int64_t, int64_t>> carried;  // (old channels, new channels)
  auto changed = [&]() { return carried && carried->first != carried->second; };
  const auto children = model->named_children();
  size_t index = 0;
  for (const auto& any : *model) {
    const std::string& name = children[index].key();
    const auto& m = children[index].value();
    ++index;
    torch::nn::AnyModule keep = clone_without_draws(any);
    if (auto l = m->as<torch::nn::Linear>()) {
      int64_t fin = l->options.in_features(), fout = l->options.out_features();
      if (changed()) {
        if (fin % carried->first != 0)
          throw InvalidArgument("autoq scale_widths: cannot resize the inputs of \"" + name + "\"");
        fin = fin / carried->first * carried->second;
      }
      if (factors.count(name))
        fout = std::max<int64_t>(static_cast<int64_t>(fout * factors.at(name)), 1);
      if (fin != l->options.in_features() || fout != l->options.out_features())
        keep = torch::nn::AnyModule(
            torch::nn::Linear(torch::nn::LinearOptions(fin, fout).bias(l->options.bias())));
      carried = std::make_pair(l->options.out_features(), fout);
    } else if (auto c = m->as<torch::nn::Conv2d>()) {
      auto o = c->options;
      const bool depthwise = o.groups() > 1 && o.groups() == o.in_channels();
      int64_t cin = o.in_channels(), cout = o.out_channels(), groups = o.groups();
      if (changed()) {
        cin = carried->second;
        if (depthwise) {
          cout = cout / o.in_channels() * cin;
          groups = cin;
        } else if (groups != 1) {
          throw InvalidArgument("autoq scale_widths: cannot resize grouped conv \"" + name + "\"");
        }
      }
      if (factors.count(name)) {
        if (depthwise)
          throw InvalidArgument("autoq scale_widths: depthwise \"" + name +
                                "\" has no filters to tune");
        cout = std::max<int64_t>(static_cast<int64_t>(cout * factors.at(name)), 1);
      }
      if (cin != o.in_channels() || cout != o.out_channels()) {
        torch::nn::Conv2dOptions n(cin, cout, o.kernel_size());
        n.stride(o.stride())
            .padding(o.padding())
            .dilation(o.dilation())
            .groups(groups)
            .bias(o.bias())
            .padding_mode(o.padding_mode());
        keep = torch::nn::AnyModule(torch::nn::Conv2d(n));
      }
      carried = std::make_pair(o.out_channels(), cout);
    } else if (auto c1 = m->as<torch::nn::Conv1d>()) {
      auto o = c1->options;
      if (o.groups() != 1)
        throw InvalidArgument("autoq scale_widths: cannot resize grouped conv \"" + name + "\"");
      int64_t cin = changed() ? carried->second : o.in_channels(), cout = o.out_channels();
      if (factors.count(name))
        cout = std::max<int64_t>(static_cast<int64_t>(cout * factors.at(name)), 1);
      if (cin != o.in_channels() || cout != o.out_channels()) {
        torch::nn::Conv1dOptions n(cin, cout, o.kernel_size());
        n.stride(o.stride())
            .padding(o.padding())
            .dilation(o.dilation())
            .bias(o.bias())
            .padding_mode(o.padding_mode());
        keep = torch::nn::AnyModule(torch::nn::Conv1d(n));
      }
      carried = std::make_pair(o.out_channels(), cout);
    } else if (auto b1 = m->as<torch::nn::BatchNorm1d>()) {
      if (changed()) {
        auto o = b1->options;
        keep = torch::nn::AnyModule(torch::nn::BatchNorm1d(o.num_features(carried->second)));
      }
    } else if (auto b2 = m->as<torch::nn::BatchNorm2d>()) {
      if (changed()) {
        auto o = b2->options;
        keep = torch::nn::AnyModule(torch::nn::BatchNorm2d(o.num_features(carried->second)));
      }
    }
    out->push_back(name, std::move(keep));
  }
  return out;
}

namespace {

std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}
using json = nlohmann::json;

json options_object(const std::string& text, const std::string& goal) {
  json j;
  try {
    j = json::parse(text.empty() ? "{}" : text);
  } catch (const std::exception& e) {
    throw InvalidArgument("autoq " + goal + " goal: options are not valid JSON: " + e.what());
  }
  if (!j.is_object()) throw InvalidArgument("autoq " + goal + " goal: options must be an object");
  return j;
}

template <typename T>
T field(const json& v, const std::string& goal, const std::string& key) {
  try {
    return v.get<T>();
  } catch (const std::exception&) {
    throw InvalidArgument("autoq " + goal + " goal: option " + key +
                          " has the wrong type: " + v.dump());
  }
}

cost::QToolsOptions qtools_options(const std::string& text, const std::string& goal) {
  cost::QToolsOptions o;
  const json options = options_object(text, goal);
  for (const auto& [k, v] : options.items()) {
    if (k == "process")
      o.process = field<std::string>(v, goal, k);
    else if (k == "weights_on_memory")
      o.weights_on_memory = field<std::string>(v, goal, k);
    else if (k == "activations_on_memory")
      o.activations_on_memory = field<std::string>(v, goal, k);
    else if (k == "min_sram_size")
      o.min_sram_size = field<int64_t>(v, goal, k);
    else if (k == "rd_wr_on_io")
      o.rd_wr_on_io = field<bool>(v, goal, k);
    else if (k == "source_quantizer")
      o.source_quantizer = field<std::string>(v, goal, k);
    else if (k == "default_quantizer")
      o.default_quantizer = field<std::string>(v, goal, k);
    else if (k == "keras_quantizer")
      o.keras_quantizer = field<std::string>(v, goal, k);
    else if (k == "keras_accumulator")
      o.keras_accumulator = field<std::string>(v, goal, k);
    else if (k == "for_reference")
      o.for_reference = field<bool>(v, goal, k);
    else if (k == "reference_internal")
      o.reference_internal = field<std::string>(v, goal, k);
    else if (k == "reference_accumulator")
      o.reference_accumulator = field<std::string>(v, goal, k);
    else if (k == "unknown_layers_as_zero")
      o.unknown_layers_as_zero = field<bool>(v, goal, k);
    else if (k == "ref_bits")
      o.ref_bits = field<int64_t>(v, goal, k);
    else if (k == "input_bits")
      o.input_bits = field<int64_t>(v, goal, k);
    else if (k == "output_bits")
      o.output_bits = field<int64_t>(v, goal, k);
    else
      throw InvalidArgument("autoq " + goal + " goal: unknown QTools option \"" + k + "\"");
  }
  o.validate();
  return o;
}

// ebops / fpga: input_quantizer and unknown_layers_as_zero (the other FpgaOptions keep their
// defaults in C++; Python passes every option through).
template <typename Options>
Options hardware_options(const std::string& text, const std::string& goal) {
  Options o;
  const json options = options_object(text, goal);
  for (const auto& [k, v] : options.items()) {
    if (k == "input_quantizer")
      o.input_quantizer =
          v.is_null() ? nn::QuantizerArg() : nn::QuantizerArg(field<std::string>(v, goal, k));
    else if (k == "unknown_layers_as_zero")
      o.unknown_layers_as_zero = field<bool>(v, goal, k);
    else
      throw InvalidArgument("autoq " + goal + " goal: option \"" + k +
                            "\" is not supported by the C++ goal "
                            "(input_quantizer, unknown_layers_as_zero)");
  }
  return o;
}

std::map<std::string, CostFactory>& registry() {
  static std::map<std::string, CostFactory> r = [] {
    std::map<std::string, CostFactory> b;
    b["energy"] = [](const std::vector<int64_t>& shape, const std::string& params) -> CostFn {
      const auto [ref_text, trial_text] = energy_goal_options(params);
      const auto ref = qtools_options(ref_text, "energy");
      const auto trial = qtools_options(trial_text, "energy");
      return [shape, ref, trial](const torch::nn::Sequential& m, bool for_reference) {
        return cost::energy(m, shape, for_reference ? ref : trial).total;
      };
    };
    b["bits"] = [](const std::vector<int64_t>& shape, const std::string& params) -> CostFn {
      const auto [text, measure] = bits_goal_options(params);
      const auto o = qtools_options(text, "bits");
      return [shape, o, measure = measure](const torch::nn::Sequential& m, bool for_reference) {
        const auto r = cost::model_size(m, shape, o);
        if (measure == "parameters")
          return static_cast<double>(for_reference ? r.reference_parameter_bits : r.parameter_bits);
        if (measure == "activations")
          return static_cast<double>(for_reference ? r.reference_activation_bits
                                                   : r.activation_bits);
        return static_cast<double>(for_reference ? r.reference_total_bits : r.total_bits);
      };
    };
    b["ebops"] = [](const std::vector<int64_t>& shape, const std::string& params) -> CostFn {
      const auto o = hardware_options<cost::BopsOptions>(params, "ebops");
      return [shape, o](const torch::nn::Sequential& m, bool) {
        return cost::bops(m, shape, o).ebops;
      };
    };
    b["fpga"] = [](const std::vector<int64_t>& shape, const std::string& params) -> CostFn {
      const auto o = hardware_options<cost::FpgaOptions>(params, "fpga");
      return [shape, o](const torch::nn::Sequential& m, bool) {
        const auto e = cost::fpga_estimate(m, shape, o);
        return static_cast<double>(e.lut + e.dsp);
      };
    };
    return b;
  }();
  return r;
}

SearchSpace space_for(const torch::nn::Sequential& model, const ModelSearchOptions& o) {
  const auto layers = describe_sequential(model);
  if (o.bit_ranges) return SearchSpace::from_bit_ranges(layers, *o.bit_ranges, o.space);
  return SearchSpace::build(layers, o.space);
}

double reference_of(const CostFn& cost, const torch::nn::Sequential& model) {
  if (!cost) throw InvalidArgument("autoq: the cost function is empty");
  return cost(model, true);
}

}  // namespace

void register_cost(const std::string& name, CostFactory factory) {
  if (name.empty()) throw InvalidArgument("autoq register_cost: the name is empty");
  if (!factory)
    throw InvalidArgument("autoq register_cost: the factory of \"" + name + "\" is empty");
  std::lock_guard<std::mutex> g(registry_mutex());
  registry()[name] = std::move(factory);
}

std::vector<std::string> registered_costs() {
  std::lock_guard<std::mutex> g(registry_mutex());
  std::vector<std::string> out;
  for (const auto& [k, v] : registry()) out.push_back(k);
  return out;
}

CostFn named_cost(const std::string& name, const std::vector<int64_t>& input_shape,
                  const std::string& options) {
  CostFactory f;
  {
    std::lock_guard<std::mutex> g(registry_mutex());
    auto it = registry().find(name);
    if (it != registry().end()) f = it->second;
  }
  if (!f) {
    std::string known;
    for (const auto& n : registered_costs()) known += (known.empty() ? "" : ", ") + n;
    if (name == "energy" || name == "bits" || name == "ebops" || name == "fpga")
      throw InvalidArgument("autoq: goal \"" + name +
                            "\" is not available: its cost model is not registered in " +
                            "this build (registered: " + (known.empty() ? "none" : known) +
                            "); pass a CostFn or register_cost() one");
    throw InvalidArgument("autoq: unknown goal \"" + name +
                          "\" (registered: " + (known.empty() ? "none" : known) + ")");
  }
  return f(input_shape, options);
}

ModelSearch::ModelSearch(torch::nn::Sequential float_model, Goal goal, CostFn cost,
                         ModelSearchOptions options)
    : model_(std::move(float_model)),
      cost_(std::move(cost)),
      options_(std::move(options)),
      search_(space_for(model_, options_), std::move(goal), reference_of(cost_, model_),
              options_.search) {}

ModelSearch::ModelSearch(torch::nn::Sequential float_model, const std::string& goal_json,
                         const std::vector<int64_t>& input_shape, ModelSearchOptions options)
    : ModelSearch(
          float_model, parse_goal(goal_json),
          [&]() {
            const Goal g = parse_goal(goal_json);
            return named_cost(g.type, input_shape, goal_json.empty() ? "{}" : g.options);
          }(),
          std::move(options)) {}

torch::nn::Sequential ModelSearch::build(const Trial& trial) const {
  const TrialConfig c = search_.config_of(trial);
  const torch::nn::Sequential base = c.filters.empty() ? model_ : scale_widths(model_, c.filters);
  return nn::model_quantize(base, c.quantizer_config, search_.space().activation_bits(),
                            options_.transfer_weights, false, options_.qkeras_compatible);
}

std::vector<Trial> ModelSearch::run(const TrainFn& train, std::optional<int64_t> max_new_trials,
                                    const TrialCallback& on_trial) {
  if (!train) throw InvalidArgument("autoq: the training function is empty");
  if (options_.keep_models != "best" && options_.keep_models != "pareto" &&
      options_.keep_models != "all")
    throw InvalidArgument("autoq: keep_models must be \"best\", \"pareto\" or \"all\", got \"" +
                          options_.keep_models + "\"");
  TrialFn fn = [&](const TrialContext& ctx) {
    torch::nn::Sequential model{nullptr};
    int64_t epochs = ctx.epochs;
    auto parent = trained_.find(ctx.parent);
    if (ctx.parent >= 0 && parent != trained_.end()) {
      model = std::dynamic_pointer_cast<torch::nn::SequentialImpl>(parent->second->clone());
      epochs = std::max<int64_t>(ctx.epochs - ctx.parent_epochs, 0);
    }
    if (!model) {
      Trial t;
      t.number = ctx.number;
      t.params = ctx.params;
      model = build(t);
    }
    TrialOutcome out;
    out.metric = train(model, epochs, ctx);
    out.cost = cost_(model, false);  // after training: EBOPs and the FPGA estimate read the weights
    trained_[ctx.number] = model;
    return out;
  };
  auto trials = search_.run(fn, max_new_trials, on_trial);
  // keep the best trial's model (and, for Hyperband, the models later rungs may continue)
  const auto best = search_.best();
  if (options_.search.strategy != "hyperband" && options_.keep_models != "all") {
    std::set<int64_t> keep;
    if (best) keep.insert(best->number);
    if (options_.keep_models == "pareto")
      for (const Trial& t : search_.pareto()) keep.insert(t.number);
    for (auto it = trained_.begin(); it != trained_.end();)
      it = keep.count(it->first) ? std::next(it) : trained_.erase(it);
  }
  return trials;
}

std::optional<torch::nn::Sequential> ModelSearch::trained_model(int64_t trial) const {
  auto it = trained_.find(trial);
  if (it == trained_.end()) return std::nullopt;
  return it->second;
}

std::optional<torch::nn::Sequential> ModelSearch::best_model() const {
  const auto best = search_.best();
  if (!best) return std::nullopt;
  auto it = trained_.find(best->number);
  if (it == trained_.end()) return std::nullopt;
  return it->second;
}

void ModelSearch::save_best(const std::string& path) const {
  const auto m = best_model();
  if (!m)
    throw InvalidArgument(
        "autoq save_best: no trained best model in this process (no complete trial, or it ran "
        "in another worker); build(best) and retrain it");
  nn::save_quantized_weights(**m, path);
}

ModelScheduler::ModelScheduler(torch::nn::Sequential float_model, Goal goal, CostFn cost,
                               ModelSearchOptions options, std::vector<std::string> blocks,
                               std::string schedule, std::map<std::string, double> layer_costs)
    : model_(std::move(float_model)),
      goal_(std::move(goal)),
      cost_(std::move(cost)),
      options_(std::move(options)) {
  if (!options_.space.frozen_layers.empty() || !options_.space.fixed_config.empty())
    throw InvalidArgument(
        "autoq scheduler: frozen_layers/fixed_config are set per block by the scheduler");
  if (layer_costs.empty())
    for (const auto& item : model_->named_children()) {
      double n = 0;
      for (const auto& p : item.value()->parameters()) n += static_cast<double>(p.numel());
      layer_costs[item.key()] = 8.0 * n;
    }
  double reference = 0;
  for (const auto& [k, v] : layer_costs) reference += v;
  plan_ = plan_blocks(describe_sequential(model_), blocks, layer_costs, schedule,
                      options_.search.max_trials, reference > 0 ? reference : 1.0,
                      options_.space.limit, options_.space.layer_indexes);
}

std::vector<std::vector<Trial>> ModelScheduler::run(const TrainFn& train) {
  std::vector<std::vector<Trial>> out;
  std::vector<std::string> frozen;
  nlohmann::ordered_json fixed = nlohmann::ordered_json::object();
  searches_.clear();
  for (size_t i = 0; i < plan_.size(); ++i) {
    const Block& b = plan_[i];
    ModelSearchOptions o = options_;
    o.space.limit = b.limit;
    o.space.frozen_layers = frozen;
    o.space.fixed_config = fixed.dump();
    o.search.max_trials = b.max_trials;
    o.search.study_name = options_.search.study_name + "_block" + std::to_string(i);
    auto s = std::make_unique<ModelSearch>(model_, goal_, cost_, o);
    out.push_back(s->run(train));
    if (const auto best = s->search().best()) {
      const auto config =
          nlohmann::ordered_json::parse(s->search().config_of(*best).quantizer_config);
      for (const auto& name : b.layers)
        if (config.contains(name)) fixed[name] = config[name];
    }
    for (const auto& name : b.layers)
      if (std::find(frozen.begin(), frozen.end(), name) == frozen.end()) frozen.push_back(name);
    searches_.push_back(std::move(s));
  }
  fixed_ = fixed.dump();
  return out;
}

std::string ModelScheduler::best_config() const { return fixed_; }

std::optional<torch::nn::Sequential> ModelScheduler::best_model() const {
  if (searches_.empty()) return std::nullopt;
  return searches_.back()->best_model();
}

namespace {

OptimizerFactory default_optimizer() {
  return [](std::vector<torch::Tensor> params) -> std::unique_ptr<torch::optim::Optimizer> {
    return std::make_unique<torch::optim::Adam>(std::move(params), torch::optim::AdamOptions(1e-3));
  };
}

// The share of samples whose argmax output equals the integer label (eval mode, no gradients).
double accuracy_on(torch::nn::Sequential& model, const Batches& val) {
  model->eval();
  torch::NoGradGuard no_grad;
  int64_t right = 0, total = 0;
  for (const auto& [x, y] : val) {
    right += model->forward(x).argmax(-1).eq(y).sum().item<int64_t>();
    total += y.numel();
  }
  if (total == 0) throw InvalidArgument("autoq: the validation batches hold no sample");
  return static_cast<double>(right) / static_cast<double>(total);
}

}  // namespace

TrainFn make_trainer(Batches train, Batches val, LossFn loss, OptimizerFactory optimizer,
                     bool progress) {
  if (train.empty()) throw InvalidArgument("autoq make_trainer: no training batches");
  if (val.empty()) throw InvalidArgument("autoq make_trainer: no validation batches");
  if (!loss) throw InvalidArgument("autoq make_trainer: the loss function is empty");
  if (!optimizer) optimizer = default_optimizer();
  return [train = std::move(train), val = std::move(val), loss = std::move(loss),
          optimizer = std::move(optimizer),
          progress](torch::nn::Sequential& model, int64_t epochs, const TrialContext& trial) {
    auto opt = optimizer(model->parameters());
    std::optional<TextBar> bar;
    if (progress) bar.emplace("trial " + std::to_string(trial.number) + " epochs", epochs);
    for (int64_t e = 0; e < epochs; ++e) {
      model->train();
      double last = 0;
      for (const auto& [x, y] : train) {
        opt->zero_grad();
        auto l = loss(model->forward(x), y);
        l.backward();
        opt->step();
        last = l.item<double>();
      }
      if (bar) bar->update(1, "loss " + std::to_string(last));
    }
    return accuracy_on(model, val);
  };
}

// ---------------------------------------------------------------------------------------------
// Search, then refine (heteroq/autoq/refine.h)

Refiner make_refiner(Batches train, Batches val, LossFn loss, nn::EBOPsRegularizer regularizer,
                     int64_t epochs, std::vector<int64_t> input_shape, OptimizerFactory optimizer,
                     int64_t eval_every, double width_lr) {
  // Each model starts from a copy of the regularizer as given (a controller's state included).
  RegularizerFactory same = [regularizer](torch::nn::Sequential&) { return regularizer; };
  return make_refiner(std::move(train), std::move(val), std::move(loss), std::move(same), epochs,
                      std::move(input_shape), std::move(optimizer), eval_every, width_lr);
}

Refiner make_refiner(Batches train, Batches val, LossFn loss, RegularizerFactory make_regularizer,
                     int64_t epochs, std::vector<int64_t> input_shape, OptimizerFactory optimizer,
                     int64_t eval_every, double width_lr) {
  if (!(width_lr >= 0))
    throw InvalidArgument("autoq make_refiner: width_lr must be >= 0 (0: one optimizer), got " +
                          std::to_string(width_lr));
  if (!make_regularizer) throw InvalidArgument("autoq make_refiner: the regularizer factory is empty");
  if (train.empty()) throw InvalidArgument("autoq make_refiner: no training batches");
  if (val.empty()) throw InvalidArgument("autoq make_refiner: no validation batches");
  if (!loss) throw InvalidArgument("autoq make_refiner: the loss function is empty");
  if (epochs < 1 || eval_every < 1)
    throw InvalidArgument("autoq make_refiner: epochs and eval_every must be >= 1, got " +
                          std::to_string(epochs) + ", " + std::to_string(eval_every));
  if (input_shape.empty()) throw InvalidArgument("autoq make_refiner: the input shape is empty");
  if (!optimizer) optimizer = default_optimizer();
  return [=](torch::nn::Sequential& hmodel) {
    nn::EBOPsRegularizer regularizer = make_regularizer(hmodel);
    std::vector<std::unique_ptr<torch::optim::Optimizer>> opts;
    if (width_lr > 0) {
      std::vector<torch::Tensor> widths, others;
      std::set<const void*> is_width;
      for (const auto& m : hmodel->modules())
        if (m->as<nn::HQuantizerImpl>())
          for (const auto& t : m->parameters()) {
            if (is_width.insert(t.unsafeGetTensorImpl()).second) widths.push_back(t);
          }
      for (const auto& t : hmodel->parameters())
        if (!is_width.count(t.unsafeGetTensorImpl())) others.push_back(t);
      if (!others.empty()) opts.push_back(optimizer(others));
      if (!widths.empty())
        opts.push_back(std::make_unique<torch::optim::Adam>(widths, torch::optim::AdamOptions(width_lr)));
    } else {
      opts.push_back(optimizer(hmodel->parameters()));
    }
    std::vector<FrontPoint> points;
    int64_t step = 0;
    for (int64_t epoch = 1; epoch <= epochs; ++epoch) {
      hmodel->train();
      for (const auto& [x, y] : train) {
        for (auto& opt : opts) opt->zero_grad();
        auto l = loss(hmodel->forward(x), y) + regularizer.penalty(*hmodel, step);
        l.backward();
        for (auto& opt : opts) opt->step();
        ++step;
      }
      if (epoch % eval_every == 0 || epoch == epochs) {
        hmodel->eval();
        FrontPoint p;
        p.stage = "refine";
        p.epoch = epoch;
        p.model = nn::hgq_convert(hmodel);
        p.model->eval();
        p.metric = accuracy_on(p.model, val);
        torch::NoGradGuard no_grad;
        p.ebops = cost::bops(p.model, input_shape).ebops;
        p.beta = regularizer.beta(std::max<int64_t>(step - 1, 0));
        points.push_back(std::move(p));
      }
    }
    return points;
  };
}

std::vector<FrontPoint> refine(const ModelSearch& search, const Refiner& refiner,
                               const std::vector<int64_t>& input_shape,
                               std::vector<int64_t> trials, double default_input_bits) {
  if (!refiner) throw InvalidArgument("autoq refine: the refiner is empty");
  if (input_shape.empty()) throw InvalidArgument("autoq refine: the input shape is empty");
  if (trials.empty())
    for (const Trial& t : search.search().pareto()) trials.push_back(t.number);
  if (trials.empty()) throw InvalidArgument("autoq refine: no trial to refine (run the search first)");
  std::map<int64_t, Trial> complete;
  for (const Trial& t : search.search().trials())
    if (t.status == "complete") complete[t.number] = t;
  std::vector<FrontPoint> points;
  for (int64_t number : trials) {
    auto t = complete.find(number);
    if (t == complete.end())
      throw InvalidArgument("autoq refine: trial " + std::to_string(number) +
                            " is not a complete trial of the study");
    auto model = search.trained_model(number);
    if (!model)
      throw InvalidArgument("autoq refine: trial " + std::to_string(number) +
                            "'s trained model is not in this process (set keep_models)");
    (*model)->eval();
    FrontPoint a;
    a.stage = "autoq";
    a.trial = number;
    a.metric = t->second.metric;
    {
      torch::NoGradGuard no_grad;
      a.ebops = cost::bops(*model, input_shape).ebops;
    }
    a.model = *model;
    points.push_back(a);
    auto start = nn::hgq_from_quantized(*model, default_input_bits);
    for (FrontPoint& p : refiner(start)) {
      p.trial = number;
      points.push_back(std::move(p));
    }
  }
  return points;
}

std::vector<int64_t> front_of(const std::vector<FrontPoint>& points) {
  std::vector<double> metric, ebops;
  for (const auto& p : points) {
    metric.push_back(p.metric);
    ebops.push_back(p.ebops);
  }
  return pareto_front(metric, ebops);
}

}  // namespace heteroq::autoq
