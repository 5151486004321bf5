// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// The jet-tagging study of examples/jet_tagging.py in C++ (heteroq::heteroq only): the LHC
// jet-tagging MLP 16-64-32-32-5 trained as BF (float), Q6 (uniform 6 bits), and AutoQ's QE
// (energy goal) and QB (bits goal) searches, then the cost table (QTools energy, model bits,
// BOPs/EBOPs, the FPGA estimate). Every step mirrors the Python script's, in the same order and
// with the same random streams, so that the same seed on the same data gives the same numbers
// (tests/python/test_jet_cpp.py states and checks the tolerances).
//
// The data: the split the Python script writes with --export-data (a tensor file: x_train,
// y_train, x_test, y_test and metadata; docs/jet_tagging.md):
//
//   /usr/bin/python3 examples/jet_tagging.py --export-data jets.safetensors
//   heteroq_jet_tagging --data jets.safetensors --out jet_tagging_cpp_out
//
// Writes <out>/results.json (accuracies, per-class AUC, costs, the searches' trials),
// q6/qe/qb.safetensors (heteroq::nn::save_quantized_weights) and the AutoQ study
// (<out>/studies.db).
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <numeric>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "heteroq/heteroq.h"

namespace {

// --- the study's constants (examples/jet_tagging.py) --------------------------------------------

const char* kQ6Config =
    R"J({"QDense": {"kernel_quantizer": "quantized_bits(6,0,alpha=1)", )J"
    R"J("bias_quantizer": "quantized_bits(6,0,alpha=1)"}, )J"
    R"J("QActivation": {"relu": "quantized_relu(6,0)"}})J";

// ENERGY_GOAL and BITS_GOAL, as json.dumps writes them (the same key order).
const char* kEnergyGoal =
    R"J({"type": "energy", "params": {"delta_p": 8.0, "delta_n": 8.0, "rate": 2.0, )J"
    R"J("stress": 1.0, "process": "horowitz", "parameters_on_memory": ["sram", "sram"], )J"
    R"J("activations_on_memory": ["sram", "sram"], "rd_wr_on_io": [false, false], )J"
    R"J("min_sram_size": [0, 0], "source_quantizers": ["int8"], "reference_internal": "int8", )J"
    R"J("reference_accumulator": "int32"}})J";
const char* kBitsGoal =
    R"J({"type": "bits", "params": {"delta_p": 8.0, "delta_n": 8.0, "rate": 2.0, "stress": 1.0}})J";

// SEARCH_CONFIG and SEARCH_LIMIT.
std::string search_config() {
  std::ostringstream s;
  s << R"J({"kernel": {)J";
  const int kernel[] = {2, 3, 4, 5, 6, 8};
  for (size_t i = 0; i < 6; ++i)
    s << (i ? ", " : "") << "\"quantized_bits(" << kernel[i] << ",0,1,alpha=1)\": " << kernel[i];
  s << R"J(}, "bias": {)J";
  const int bias[] = {4, 6, 8};
  for (size_t i = 0; i < 3; ++i)
    s << (i ? ", " : "") << "\"quantized_bits(" << bias[i] << ",0,1,alpha=1)\": " << bias[i];
  s << R"J(}, "activation": {)J";
  const int act[] = {3, 4, 6, 8};
  for (size_t i = 0; i < 4; ++i)
    s << (i ? ", " : "") << "\"quantized_relu(" << act[i] << "," << std::min(3, act[i] - 1)
      << ")\": " << act[i];
  s << "}}";
  return s.str();
}
const char* kSearchLimit = R"J({"Dense": [8, 8, 8], "Activation": [8]})J";

const std::vector<int64_t> kInputShape = {1, 16};

struct Args {
  std::string data;
  std::string out = "jet_tagging_cpp_out";
  int64_t epochs = 5, trials = 8, trial_epochs = 2;
  uint64_t seed = 0;
  int threads = 2;
  bool autoq = true;
};

[[noreturn]] void usage(const std::string& error) {
  std::cerr << "error: " << error << "\n"
            << "usage: heteroq_jet_tagging --data SPLIT [--epochs N (5)] [--trials N (8)]\n"
               "         [--trial-epochs N (2)] [--seed N (0)] [--threads N (2)]\n"
               "         [--out DIR (jet_tagging_cpp_out)] [--no-autoq]\n"
               "SPLIT: the file `examples/jet_tagging.py --export-data SPLIT` writes.\n";
  std::exit(2);
}

Args parse_args(int argc, char** argv) {
  Args a;
  auto number = [&](int& i, const std::string& flag) -> int64_t {
    if (i + 1 >= argc) usage(flag + " needs a value");
    std::string v = argv[++i];
    try {
      size_t used = 0;
      long long n = std::stoll(v, &used);
      if (used != v.size() || n < 0) throw std::invalid_argument(v);
      return n;
    } catch (const std::exception&) {
      usage(flag + ": not a non-negative integer: '" + v + "'");
    }
  };
  for (int i = 1; i < argc; ++i) {
    std::string f = argv[i];
    if (f == "--data") {
      if (i + 1 >= argc) usage("--data needs a value");
      a.data = argv[++i];
    } else if (f == "--out") {
      if (i + 1 >= argc) usage("--out needs a value");
      a.out = argv[++i];
    } else if (f == "--epochs") {
      a.epochs = number(i, f);
    } else if (f == "--trials") {
      a.trials = number(i, f);
    } else if (f == "--trial-epochs") {
      a.trial_epochs = number(i, f);
    } else if (f == "--seed") {
      a.seed = static_cast<uint64_t>(number(i, f));
    } else if (f == "--threads") {
      a.threads = static_cast<int>(number(i, f));
    } else if (f == "--no-autoq") {
      a.autoq = false;
    } else if (f == "--help" || f == "-h") {
      usage("help");
    } else {
      usage("unknown argument '" + f + "'");
    }
  }
  if (a.data.empty()) usage("--data is required");
  if (a.epochs < 1 || a.trials < 1 || a.trial_epochs < 1 || a.threads < 1)
    usage("--epochs, --trials, --trial-epochs and --threads must be >= 1");
  return a;
}

// --- the data ---------------------------------------------------------------------------------

struct Split {
  torch::Tensor x_train, y_train, x_test, y_test;
  std::string description;
  bool surrogate = false;
  std::vector<std::string> class_names;
};

// The class names from the metadata's JSON list of strings (plain names, no escapes).
std::vector<std::string> parse_names(const std::string& text) {
  std::vector<std::string> names;
  size_t i = 0;
  while ((i = text.find('"', i)) != std::string::npos) {
    size_t j = text.find('"', i + 1);
    if (j == std::string::npos) break;
    names.push_back(text.substr(i + 1, j - i - 1));
    i = j + 1;
  }
  return names;
}

Split read_split(const std::string& path) {
  auto file = heteroq::read_tensor_file(path);
  if (file.meta("format").value_or("") != "heteroq.jet_split")
    throw std::runtime_error(path + ": not a jet split (write one with examples/jet_tagging.py "
                                    "--export-data FILE)");
  Split s;
  auto get = [&](const char* name, torch::Dtype dtype, int64_t dim) {
    const at::Tensor* t = file.find(name);
    if (!t || t->scalar_type() != dtype || t->dim() != dim)
      throw std::runtime_error(path + ": missing or malformed tensor '" + name + "'");
    return *t;
  };
  s.x_train = get("x_train", torch::kFloat32, 2);
  s.y_train = get("y_train", torch::kInt64, 1);
  s.x_test = get("x_test", torch::kFloat32, 2);
  s.y_test = get("y_test", torch::kInt64, 1);
  if (s.x_train.size(1) != 16 || s.x_test.size(1) != 16 || s.x_train.size(0) != s.y_train.size(0) ||
      s.x_test.size(0) != s.y_test.size(0) || s.x_train.size(0) < 10)
    throw std::runtime_error(path + ": inconsistent shapes (16 features, >= 10 training jets)");
  s.description = file.meta("description").value_or("?");
  s.surrogate = file.meta("surrogate").value_or("true") == "true";
  s.class_names = parse_names(file.meta("class_names").value_or("[]"));
  if (s.class_names.size() != 5) throw std::runtime_error(path + ": expected 5 class names");
  return s;
}

// --- models, training, evaluation (as the Python functions of the same names) ----------------------

torch::nn::Sequential float_mlp() {
  torch::nn::Sequential m;
  int64_t width = 16;
  for (int64_t h : {64, 32, 32}) {
    m->push_back(torch::nn::Linear(width, h));
    m->push_back(torch::nn::ReLU());
    width = h;
  }
  m->push_back(torch::nn::Linear(width, 5));
  return m;
}

// Adam and cross-entropy on shuffled mini-batches (a generator seeded with `seed` per call, as
// torch.Generator().manual_seed(seed) in the script).
void train(torch::nn::Sequential& model, const torch::Tensor& x, const torch::Tensor& y,
           int64_t epochs, uint64_t seed, const std::string& name, bool verbose,
           int64_t batch_size = 1024, double lr = 3e-3) {
  torch::optim::Adam opt(model->parameters(), torch::optim::AdamOptions(lr));
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const int64_t n = x.size(0);
  for (int64_t epoch = 0; epoch < epochs; ++epoch) {
    model->train();
    auto perm = torch::randperm(n, gen, torch::TensorOptions().dtype(torch::kLong));
    double total = 0.0;
    for (int64_t i = 0; i < n; i += batch_size) {
      auto idx = perm.slice(0, i, std::min(i + batch_size, n));
      opt.zero_grad();
      auto loss = torch::nn::functional::cross_entropy(model->forward(x.index_select(0, idx)),
                                                       y.index_select(0, idx));
      loss.backward();
      opt.step();
      total += loss.item<double>() * static_cast<double>(idx.size(0));
    }
    if (verbose)
      std::printf("  %s epoch %lld/%lld: loss %.4f\n", name.c_str(),
                  static_cast<long long>(epoch + 1), static_cast<long long>(epochs),
                  total / static_cast<double>(n));
    std::fflush(stdout);
  }
}

double accuracy(torch::nn::Sequential& model, const torch::Tensor& x, const torch::Tensor& y) {
  model->eval();
  torch::NoGradGuard no_grad;
  return model->forward(x).argmax(1).eq(y).to(torch::kFloat32).mean().item<double>();
}

// The Mann-Whitney AUC with ties counted half (roc_auc in the script).
double roc_auc(const std::vector<double>& scores, const std::vector<bool>& positive) {
  const size_t n = scores.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  std::vector<double> rank(n);
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j + 1 < n && scores[order[j + 1]] == scores[order[i]]) ++j;
    for (size_t k = i; k <= j; ++k) rank[order[k]] = (static_cast<double>(i + j)) / 2.0 + 1.0;
    i = j + 1;
  }
  double n_pos = 0, sum = 0;
  for (size_t i = 0; i < n; ++i)
    if (positive[i]) {
      n_pos += 1;
      sum += rank[i];
    }
  const double n_neg = static_cast<double>(n) - n_pos;
  if (n_pos == 0 || n_neg == 0) return std::nan("");
  return (sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg);
}

struct Costs {
  double energy_pj = 0, ebops = 0, latency_ns = 0;
  int64_t bits = 0, bops = 0, lut = 0, dsp = 0, ff = 0, latency_cycles = 0;
};

struct Result {
  double accuracy = 0;
  std::vector<double> auc;
  Costs costs;
};

// heteroq::cost for one input of 16 features (costs() in the script).
Costs costs(torch::nn::Sequential& model) {
  auto layers = heteroq::cost::describe_model(model, kInputShape);
  heteroq::cost::QToolsOptions e;
  e.weights_on_memory = "sram";
  e.activations_on_memory = "sram";
  e.rd_wr_on_io = false;
  e.min_sram_size = 0;
  Costs c;
  c.energy_pj = heteroq::cost::energy(layers, e).total;
  c.bits = heteroq::cost::model_size(layers).total_bits;
  auto b = heteroq::cost::bops(layers);
  c.bops = b.bops;
  c.ebops = b.ebops;
  auto f = heteroq::cost::fpga_estimate(layers);
  c.lut = f.lut;
  c.dsp = f.dsp;
  c.ff = f.ff;
  c.latency_cycles = f.latency_cycles;
  c.latency_ns = f.latency_ns;
  return c;
}

Result evaluate(torch::nn::Sequential& model, const Split& d) {
  model->eval();
  torch::Tensor prob;
  {
    torch::NoGradGuard no_grad;
    prob = torch::softmax(model->forward(d.x_test), 1).to(torch::kFloat64).contiguous();
  }
  const int64_t n = prob.size(0);
  auto labels = d.y_test.contiguous();
  const double* p = prob.data_ptr<double>();
  const int64_t* y = labels.data_ptr<int64_t>();
  Result r;
  int64_t right = 0;
  for (int64_t i = 0; i < n; ++i) {
    int64_t best = 0;
    for (int64_t k = 1; k < 5; ++k)
      if (p[i * 5 + k] > p[i * 5 + best]) best = k;
    right += best == y[i];
  }
  r.accuracy = static_cast<double>(right) / static_cast<double>(n);
  for (int64_t k = 0; k < 5; ++k) {
    std::vector<double> s(n);
    std::vector<bool> pos(n);
    for (int64_t i = 0; i < n; ++i) {
      s[i] = p[i * 5 + k];
      pos[i] = y[i] == k;
    }
    r.auc.push_back(roc_auc(s, pos));
  }
  r.costs = costs(model);
  return r;
}

// --- output -------------------------------------------------------------------------------------

std::string json_string(const std::string& s) {
  std::ostringstream o;
  o << '"';
  for (char c : s) {
    if (c == '"' || c == '\\') {
      o << '\\' << c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      o << "\\u" << std::hex << std::setw(4) << std::setfill('0') << static_cast<int>(c)
        << std::dec;
    } else {
      o << c;
    }
  }
  o << '"';
  return o.str();
}

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  std::ostringstream o;
  o << std::setprecision(17) << v;
  return o.str();
}

struct SearchResult {
  std::string goal;
  double reference_cost = 0;
  heteroq::autoq::Trial best;
  std::string best_config;
  std::map<std::string, double> filters;
  std::vector<heteroq::autoq::Trial> trials;
};

std::string fmt(double v, int width, int precision) {
  std::ostringstream o;
  o << std::fixed << std::setprecision(precision) << std::setw(width) << v;
  return o.str();
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse_args(argc, argv);
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  try {
    torch::set_num_threads(args.threads);
    std::filesystem::create_directories(args.out);
    const std::filesystem::path out(args.out);

    const Split d = read_split(args.data);
    std::cout << "data: " << d.description << "\n";
    const int64_t n_train = d.x_train.size(0);
    const int64_t n_val = n_train / 10;  // the searches' validation part
    auto x_val = d.x_train.slice(0, 0, n_val), y_val = d.y_train.slice(0, 0, n_val);
    auto x_fit = d.x_train.slice(0, n_val), y_fit = d.y_train.slice(0, n_val);
    std::cout << n_train << " training jets (" << n_val << " of them validate the searches), "
              << args.epochs << " epochs per model, " << args.trials << " AutoQ trials of "
              << args.trial_epochs << " epochs per search, " << d.x_test.size(0)
              << " test jets, " << args.threads << " threads\n";

    std::vector<std::pair<std::string, torch::nn::Sequential>> models;
    torch::manual_seed(args.seed);
    auto bf = float_mlp();
    std::cout << "BF: float baseline\n";
    train(bf, d.x_train, d.y_train, args.epochs, args.seed, "BF", true);
    models.emplace_back("BF", bf);

    torch::manual_seed(args.seed);
    auto q6 = heteroq::nn::model_quantize(float_mlp(), kQ6Config, 6);
    std::cout << "Q6: uniform 6-bit\n";
    train(q6, d.x_train, d.y_train, args.epochs, args.seed, "Q6", true);
    models.emplace_back("Q6", q6);

    std::vector<SearchResult> searches;
    if (args.autoq) {
      const std::string config = search_config();
      const std::vector<std::pair<std::string, std::string>> goals = {{"QE", kEnergyGoal},
                                                                       {"QB", kBitsGoal}};
      for (const auto& [name, goal] : goals) {
        const std::string type = name == "QE" ? "energy" : "bits";
        std::cout << name << ": AutoQ, " << type << " goal, " << args.trials
                  << " trials (Bayesian/TPE), starting from BF's weights\n";
        const double t0 = elapsed();
        heteroq::autoq::ModelSearchOptions o;
        o.space.quantization_config = config;
        o.space.limit = kSearchLimit;
        o.space.activation_bits = 4;
        o.space.tune_filters = "layer";
        o.space.tune_filters_exceptions = "^6$";
        o.search.strategy = "bayesian";
        o.search.seed = args.seed;
        o.search.max_trials = args.trials;
        o.search.epochs = args.trial_epochs;
        o.search.storage = (out / "studies.db").string();
        o.search.study_name = name;
        o.search.overwrite = true;
        o.search.tpe_startup_trials = std::max<int64_t>(3, args.trials / 4);
        o.transfer_weights = true;
        heteroq::autoq::ModelSearch s(bf, goal, kInputShape, o);
        s.run([&](torch::nn::Sequential& m, int64_t epochs, const heteroq::autoq::TrialContext&) {
          train(m, x_fit, y_fit, epochs, args.seed, name, false);
          return accuracy(m, x_val, y_val);
        });
        auto best = s.search().best();
        if (!best) throw std::runtime_error(name + ": no trial completed");
        SearchResult r;
        r.goal = type;
        r.reference_cost = s.search().reference_cost();
        r.best = *best;
        auto cfg = s.search().config_of(*best);
        r.best_config = cfg.quantizer_config;
        r.filters = cfg.filters;
        r.trials = s.search().trials();
        std::printf("  %s: best trial %lld: validation accuracy %.4f, %s %.1f (reference %.1f), "
                    "score %.4f; %.1f s\n",
                    name.c_str(), static_cast<long long>(best->number), best->metric, type.c_str(),
                    best->cost, r.reference_cost, best->score, elapsed() - t0);
        // The chosen configuration, trained as long as the baselines (from BF's weights).
        auto model = s.build(*best);
        train(model, d.x_train, d.y_train, args.epochs, args.seed, name, true);
        models.emplace_back(name, model);
        searches.push_back(std::move(r));
      }
    }

    std::vector<Result> results;
    for (auto& [name, model] : models) results.push_back(evaluate(model, d));

    std::ostringstream table;
    table << "Jet tagging (C++), 16-64-32-32-5 MLP; data: "
          << (d.surrogate ? "surrogate (synthetic, NOT the real data)" : "real hls4ml jets") << "\n"
          << std::left << std::setw(6) << "model" << std::right << std::setw(8) << "acc"
          << std::setw(10) << "mean AUC" << std::setw(12) << "energy pJ" << std::setw(9) << "bits"
          << std::setw(9) << "EBOPs" << std::setw(8) << "LUT" << std::setw(6) << "DSP"
          << std::setw(8) << "FF" << std::setw(8) << "lat cc" << "\n";
    for (size_t i = 0; i < models.size(); ++i) {
      const auto& r = results[i];
      const auto& c = r.costs;
      double mean_auc = std::accumulate(r.auc.begin(), r.auc.end(), 0.0) / 5.0;
      table << std::left << std::setw(6) << models[i].first << std::right
            << fmt(r.accuracy, 8, 4) << fmt(mean_auc, 10, 4) << fmt(c.energy_pj, 12, 1)
            << std::setw(9) << c.bits << fmt(c.ebops, 9, 0) << std::setw(8) << c.lut
            << std::setw(6) << c.dsp << std::setw(8) << c.ff << std::setw(8) << c.latency_cycles
            << "\n";
    }
    table << "heteroq::cost estimates (no synthesis); examples/jet_tagging.py prints the "
             "published figures beside them.";
    std::cout << "\n" << table.str() << "\n";
    for (const auto& s : searches) {
      std::cout << "\n" << (s.goal == "energy" ? "QE" : "QB")
                << " quantizers (model_quantize config): " << s.best_config << "\n  widths:";
      for (const auto& [layer, f] : s.filters) std::cout << " " << layer << ": " << f;
      std::cout << "\n";
    }

    for (size_t i = 1; i < models.size(); ++i) {
      std::string file = models[i].first == "Q6" ? "q6" : models[i].first == "QE" ? "qe" : "qb";
      heteroq::nn::save_quantized_weights(*models[i].second, (out / (file + ".safetensors")).string());
    }

    // results.json: the numbers examples/jet_tagging.py's results.json holds, as far as C++ has
    // them (the trial lists with their JSON params).
    std::ostringstream js;
    js << "{\n  \"language\": \"c++\",\n  \"data\": " << json_string(d.description)
       << ",\n  \"surrogate\": " << (d.surrogate ? "true" : "false") << ",\n  \"epochs\": "
       << args.epochs << ",\n  \"trials\": " << args.trials << ",\n  \"trial_epochs\": "
       << args.trial_epochs << ",\n  \"seed\": " << args.seed << ",\n  \"train_jets\": " << n_train
       << ",\n  \"models\": {";
    for (size_t i = 0; i < models.size(); ++i) {
      const auto& r = results[i];
      const auto& c = r.costs;
      js << (i ? "," : "") << "\n    " << json_string(models[i].first)
         << ": {\"accuracy\": " << json_number(r.accuracy) << ", \"auc\": {";
      for (size_t k = 0; k < 5; ++k)
        js << (k ? ", " : "") << json_string(d.class_names[k]) << ": " << json_number(r.auc[k]);
      js << "}, \"costs\": {\"energy_pj\": " << json_number(c.energy_pj)
         << ", \"bits\": " << c.bits << ", \"ebops\": " << json_number(c.ebops)
         << ", \"bops\": " << c.bops << ", \"lut\": " << c.lut << ", \"dsp\": " << c.dsp
         << ", \"ff\": " << c.ff << ", \"latency_cycles\": " << c.latency_cycles
         << ", \"latency_ns\": " << json_number(c.latency_ns) << "}}";
    }
    js << "\n  },\n  \"searches\": {";
    for (size_t i = 0; i < searches.size(); ++i) {
      const auto& s = searches[i];
      js << (i ? "," : "") << "\n    " << json_string(s.goal == "energy" ? "QE" : "QB")
         << ": {\"reference_cost\": " << json_number(s.reference_cost)
         << ", \"best_trial\": " << s.best.number << ", \"best_config\": "
         << (s.best_config.empty() ? "{}" : s.best_config) << ", \"filters\": {";
      size_t k = 0;
      for (const auto& [layer, f] : s.filters)
        js << (k++ ? ", " : "") << json_string(layer) << ": " << json_number(f);
      js << "}, \"trials\": [";
      for (size_t t = 0; t < s.trials.size(); ++t) {
        const auto& tr = s.trials[t];
        js << (t ? "," : "") << "\n      {\"number\": " << tr.number << ", \"status\": "
           << json_string(tr.status) << ", \"params\": " << tr.params
           << ", \"metric\": " << json_number(tr.metric) << ", \"cost\": " << json_number(tr.cost)
           << ", \"score\": " << json_number(tr.score) << "}";
      }
      js << "]}";
    }
    js << "\n  },\n  \"wall_time_s\": " << json_number(elapsed()) << "\n}\n";
    const auto tmp = out / "results.json.tmp";
    {
      std::ofstream f(tmp);
      f << js.str();
      if (!f) throw std::runtime_error("cannot write " + tmp.string());
    }
    std::filesystem::rename(tmp, out / "results.json");
    std::printf("\nwrote %s/results.json, q6/qe/qb.safetensors, studies.db; wall time %.1f s\n",
                args.out.c_str(), elapsed());
  } catch (const std::exception& e) {
    std::cerr << "heteroq_jet_tagging: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
