// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// heteroq demo: trains a float MLP and a quantized MLP (784-64-32-10) on Fashion-MNIST with Adam and
// compares their test accuracy.
//
//   heteroq_demo [--epochs N] [--train-limit N] [--threads N] [--data-dir PATH]
//
// The data are Debian's dataset-fashion-mnist package (gzip-compressed IDX files in
// /usr/share/datasets/fashion-mnist).

#include <torch/torch.h>
#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <limits>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "heteroq/heteroq.h"

namespace {

constexpr const char* kProgram = "heteroq_demo";
constexpr const char* kDefaultDataDir = "/usr/share/datasets/fashion-mnist";
constexpr const char* kDebianPackage = "dataset-fashion-mnist";
constexpr int64_t kBatchSize = 128;
constexpr double kLearningRate = 1e-3;
constexpr int64_t kImageSize = 28 * 28;
constexpr int64_t kClasses = 10;

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// ---------------------------------------------------------------------------------------------
// Command line.

/// A bad command line: reported with the usage hint, exit status 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Options {
  int64_t epochs = 2;
  std::optional<int64_t> train_limit;  // default: all training images
  int64_t threads = 2;
  std::string data_dir = kDefaultDataDir;
};

void print_usage(std::ostream& os) {
  os << "usage: " << kProgram
     << " [--epochs N] [--train-limit N] [--threads N] [--data-dir PATH]\n"
        "  --epochs N        training epochs (default 2)\n"
        "  --train-limit N   train on the first N training images (default: all 60000)\n"
        "  --threads N       intra-op threads, at::set_num_threads (default 2)\n"
        "  --data-dir PATH   directory of the Fashion-MNIST *-ubyte.gz files\n"
        "                    (default "
     << kDefaultDataDir << ", Debian package " << kDebianPackage << ")\n";
}

int64_t parse_positive(const std::string& option, const std::string& text, int64_t max_value) {
  int64_t value = 0;
  const char* first = text.data();
  const char* last = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(first, last, value);
  if (text.empty() || ec != std::errc() || ptr != last || value < 1 || value > max_value) {
    std::ostringstream msg;
    msg << option << " expects an integer in [1, " << max_value << "], got '" << text << "'";
    throw UsageError(msg.str());
  }
  return value;
}

Options parse_args(int argc, char** argv) {
  Options opts;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      print_usage(std::cout);
      std::exit(0);
    }
    // Accept both "--name value" and "--name=value".
    std::string name = arg;
    std::optional<std::string> value;
    if (auto eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    }
    if (name != "--epochs" && name != "--train-limit" && name != "--threads" &&
        name != "--data-dir") {
      throw UsageError("unknown argument '" + arg + "'");
    }
    if (!value) {
      if (i + 1 >= argc) throw UsageError(name + " needs a value");
      value = argv[++i];
    }
    if (name == "--epochs") {
      opts.epochs = parse_positive(name, *value, 10000);
    } else if (name == "--train-limit") {
      opts.train_limit = parse_positive(name, *value, std::numeric_limits<int32_t>::max());
    } else if (name == "--threads") {
      opts.threads = parse_positive(name, *value, 1024);
    } else {
      if (value->empty()) throw UsageError("--data-dir needs a non-empty path");
      opts.data_dir = *value;
    }
  }
  return opts;
}

// ---------------------------------------------------------------------------------------------
// Fashion-MNIST: gzip-compressed IDX files.

/// A data problem (missing file, bad format): reported as is, exit status 1.
struct DataError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::vector<uint8_t> read_gzip_file(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    throw DataError("cannot find " + path +
                    "\n  Fashion-MNIST is in Debian's " + kDebianPackage +
                    " package: apt-get install " + kDebianPackage +
                    "\n  (or pass --data-dir with a directory holding the *-ubyte.gz files)");
  }
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) throw DataError("cannot open " + path);
  std::vector<uint8_t> bytes;
  std::vector<uint8_t> chunk(1 << 20);
  for (;;) {
    int n = gzread(file, chunk.data(), static_cast<unsigned>(chunk.size()));
    if (n < 0) {
      int errnum = 0;
      std::string err = gzerror(file, &errnum);
      gzclose(file);
      throw DataError("cannot read " + path + ": " + err + " (corrupt gzip file?)");
    }
    if (n == 0) break;
    bytes.insert(bytes.end(), chunk.begin(), chunk.begin() + n);
  }
  gzclose(file);
  return bytes;
}

uint32_t read_be32(const std::vector<uint8_t>& b, size_t offset) {
  return (uint32_t{b[offset]} << 24) | (uint32_t{b[offset + 1]} << 16) |
         (uint32_t{b[offset + 2]} << 8) | uint32_t{b[offset + 3]};
}

/// Reads an IDX file of unsigned bytes with `ndim` dimensions; returns a uint8 tensor.
torch::Tensor read_idx_ubyte(const std::string& path, int ndim) {
  std::vector<uint8_t> bytes = read_gzip_file(path);
  const uint32_t expected_magic = 0x0800u | static_cast<uint32_t>(ndim);
  if (bytes.size() < 4 || read_be32(bytes, 0) != expected_magic) {
    std::ostringstream msg;
    msg << path << " is not an IDX file of unsigned bytes with " << ndim
        << " dimension(s): bad magic number";
    if (bytes.size() >= 4) {
      msg << " 0x" << std::hex << std::setw(8) << std::setfill('0') << read_be32(bytes, 0);
    }
    msg << " (expected 0x" << std::hex << std::setw(8) << std::setfill('0') << expected_magic
        << ")";
    throw DataError(msg.str());
  }
  const size_t header = 4 + 4 * static_cast<size_t>(ndim);
  if (bytes.size() < header) throw DataError(path + ": truncated IDX header");
  std::vector<int64_t> dims;
  size_t count = 1;
  for (int d = 0; d < ndim; ++d) {
    dims.push_back(read_be32(bytes, 4 + 4 * d));
    count *= static_cast<size_t>(dims.back());
  }
  if (bytes.size() - header != count) {
    std::ostringstream msg;
    msg << path << ": the header announces " << count << " bytes of data, the file holds "
        << bytes.size() - header;
    throw DataError(msg.str());
  }
  return torch::from_blob(bytes.data() + header, dims, torch::kUInt8).clone();
}

struct Split {
  torch::Tensor images;  // float [N, 784] in [0, 1]
  torch::Tensor labels;  // int64 [N]
};

Split load_split(const std::string& dir, const std::string& prefix) {
  const std::string images_path = dir + "/" + prefix + "-images-idx3-ubyte.gz";
  const std::string labels_path = dir + "/" + prefix + "-labels-idx1-ubyte.gz";
  torch::Tensor images = read_idx_ubyte(images_path, 3);
  torch::Tensor labels = read_idx_ubyte(labels_path, 1);
  if (images.size(1) * images.size(2) != kImageSize) {
    throw DataError(images_path + ": expected 28x28 images, got " +
                    std::to_string(images.size(1)) + "x" + std::to_string(images.size(2)));
  }
  if (images.size(0) != labels.size(0)) {
    throw DataError(images_path + " holds " + std::to_string(images.size(0)) + " images but " +
                    labels_path + " holds " + std::to_string(labels.size(0)) + " labels");
  }
  if (labels.numel() > 0 && labels.max().item<int64_t>() >= kClasses) {
    throw DataError(labels_path + ": a label is outside [0, 9]");
  }
  return {images.reshape({-1, kImageSize}).to(torch::kFloat32).div_(255.0),
          labels.to(torch::kInt64)};
}

// ---------------------------------------------------------------------------------------------
// Models.

torch::nn::Sequential make_float_mlp() {
  return torch::nn::Sequential(torch::nn::Linear(kImageSize, 64), torch::nn::ReLU(),
                               torch::nn::Linear(64, 32), torch::nn::ReLU(),
                               torch::nn::Linear(32, kClasses));
}

torch::nn::Sequential make_quantized_mlp() {
  const char* kWeights = "quantized_bits(6,0,alpha=1)";
  const char* kActivation = "quantized_relu(6,0)";
  auto qlinear = [&](int64_t in, int64_t out) {
    return heteroq::nn::QLinear(
        heteroq::nn::QLinearOptions(in, out).kernel_quantizer(kWeights).bias_quantizer(kWeights));
  };
  return torch::nn::Sequential(qlinear(kImageSize, 64), heteroq::nn::QActivation(kActivation),
                               qlinear(64, 32), heteroq::nn::QActivation(kActivation),
                               qlinear(32, kClasses));
}

void print_layers(const std::string& title, const torch::nn::Sequential& model) {
  std::cout << title << ":\n";
  size_t index = 0;
  for (const auto& layer : model->children()) {
    std::cout << "  [" << index++ << "] ";
    if (const auto* q = layer->as<heteroq::nn::QLinearImpl>()) {
      const auto& o = q->options;
      std::cout << "QLinear(" << o.in_features() << " -> " << o.out_features() << ")  kernel "
                << (o.kernel_quantizer() ? o.kernel_quantizer().get()->to_string() : "float")
                << ", bias "
                << (o.bias_quantizer() ? o.bias_quantizer().get()->to_string() : "float");
    } else if (const auto* a = layer->as<heteroq::nn::QActivationImpl>()) {
      std::cout << "QActivation  " << a->quantizer()->to_string() << " ("
                << a->quantizer()->bits() << " bits)";
    } else if (const auto* l = layer->as<torch::nn::LinearImpl>()) {
      std::cout << "Linear(" << l->options.in_features() << " -> " << l->options.out_features()
                << ")  float";
    } else {
      std::cout << layer->name() << "  float";
    }
    std::cout << "\n";
  }
}

double train(torch::nn::Sequential& model, const Split& train_set, int64_t epochs,
             const std::string& tag) {
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(kLearningRate));
  const int64_t n = train_set.images.size(0);
  double last_loss = 0.0;
  model->train();
  for (int64_t epoch = 1; epoch <= epochs; ++epoch) {
    const auto start = Clock::now();
    torch::Tensor order = torch::randperm(n, torch::kInt64);
    double loss_sum = 0.0;
    for (int64_t begin = 0; begin < n; begin += kBatchSize) {
      const int64_t end = std::min(begin + kBatchSize, n);
      torch::Tensor idx = order.slice(0, begin, end);
      torch::Tensor x = train_set.images.index_select(0, idx);
      torch::Tensor y = train_set.labels.index_select(0, idx);
      optimizer.zero_grad();
      torch::Tensor loss = torch::nn::functional::cross_entropy(model->forward(x), y);
      loss.backward();
      optimizer.step();
      loss_sum += loss.item<double>() * static_cast<double>(end - begin);
    }
    last_loss = loss_sum / static_cast<double>(n);
    std::cout << "[" << tag << "] epoch " << epoch << "/" << epochs << "  train loss "
              << std::fixed << std::setprecision(4) << last_loss << "  (" << std::setprecision(1)
              << seconds_since(start) << " s)" << std::endl;
  }
  return last_loss;
}

double accuracy(torch::nn::Sequential& model, const Split& test_set) {
  torch::NoGradGuard no_grad;
  model->eval();
  const int64_t n = test_set.images.size(0);
  int64_t correct = 0;
  for (int64_t begin = 0; begin < n; begin += 1000) {
    const int64_t end = std::min<int64_t>(begin + 1000, n);
    torch::Tensor pred = model->forward(test_set.images.slice(0, begin, end)).argmax(1);
    correct += pred.eq(test_set.labels.slice(0, begin, end)).sum().item<int64_t>();
  }
  return n > 0 ? 100.0 * static_cast<double>(correct) / static_cast<double>(n) : 0.0;
}

int run(const Options& opts) {
  const auto start = Clock::now();
  at::set_num_threads(static_cast<int>(opts.threads));

  Split train_set = load_split(opts.data_dir, "train");
  Split test_set = load_split(opts.data_dir, "t10k");
  const int64_t available = train_set.images.size(0);
  if (opts.train_limit && *opts.train_limit > available) {
    throw UsageError("--train-limit " + std::to_string(*opts.train_limit) + " exceeds the " +
                     std::to_string(available) + " training images");
  }
  if (opts.train_limit) {
    train_set.images = train_set.images.slice(0, 0, *opts.train_limit);
    train_set.labels = train_set.labels.slice(0, 0, *opts.train_limit);
  }

  std::cout << "heteroq " << HETEROQ_VERSION_STRING
            << " demo: Fashion-MNIST, MLP 784-64-32-10, float vs quantized\n"
            << "data " << opts.data_dir << ": train " << train_set.images.size(0) << " of "
            << available << " images, test " << test_set.images.size(0) << " images\n"
            << "Adam lr " << kLearningRate << ", batch " << kBatchSize << ", epochs "
            << opts.epochs << ", threads " << at::get_num_threads() << ", seed 0\n"
            << "(data loaded in " << std::fixed << std::setprecision(1) << seconds_since(start)
            << " s)" << std::endl;

  // The same seed for both models: the same initial weights and the same batch order.
  torch::manual_seed(0);
  torch::nn::Sequential float_model = make_float_mlp();
  train(float_model, train_set, opts.epochs, "float");
  const double float_acc = accuracy(float_model, test_set);

  torch::manual_seed(0);
  torch::nn::Sequential quant_model = make_quantized_mlp();
  train(quant_model, train_set, opts.epochs, "quantized");
  const double quant_acc = accuracy(quant_model, test_set);

  std::cout << "\n";
  print_layers("Float model", float_model);
  print_layers("Quantized model", quant_model);
  std::cout << "\nTest accuracy (" << test_set.images.size(0) << " images):\n"
            << std::fixed << std::setprecision(2) << "  float      " << float_acc << " %\n"
            << "  quantized  " << quant_acc << " %\n"
            << "Wall time: " << std::setprecision(1) << seconds_since(start) << " s" << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse_args(argc, argv));
  } catch (const UsageError& e) {
    std::cerr << kProgram << ": error: " << e.what() << "\n";
    print_usage(std::cerr);
    return 2;
  } catch (const DataError& e) {
    std::cerr << kProgram << ": error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << kProgram << ": error: " << e.what() << "\n";
    return 1;
  }
}
