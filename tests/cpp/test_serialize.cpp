// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Saving and loading quantized weights: the integer form of every quantizer family, the file
// format, model round trips, and every kind of bad input.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "heteroq/heteroq.h"

namespace {

using namespace heteroq::nn;  // NOLINT
using heteroq::IntegerTensor;
using heteroq::InvalidArgument;

// A fresh directory under /tmp, removed with its files at the end (RAII).
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/heteroq_serialize_XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    for (const auto& f : files()) std::remove((path_ + "/" + f).c_str());
    ::rmdir(path_.c_str());
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  std::vector<std::string> files() const {
    std::vector<std::string> out;
    if (DIR* d = ::opendir(path_.c_str())) {
      while (dirent* e = ::readdir(d)) {
        const std::string n = e->d_name;
        if (n != "." && n != "..") out.push_back(n);
      }
      ::closedir(d);
    }
    return out;
  }

 private:
  std::string path_;
};

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}
uint64_t header_length(const std::string& bytes) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  return n;
}
// The file with its header replaced by `header` (the length rewritten to match).
std::string with_header(const std::string& bytes, const std::string& header) {
  const uint64_t n = header_length(bytes);
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  return out + header + bytes.substr(8 + n);
}
std::string with_length(const std::string& bytes, uint64_t n) {
  std::string out = bytes;
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out;
}
std::string header_of(const std::string& bytes) { return bytes.substr(8, header_length(bytes)); }

// Expects `f` to throw heteroq::InvalidArgument whose message contains every part.
template <typename F>
void expect_error(F&& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no exception; expected one mentioning " << parts.front();
  } catch (const InvalidArgument& e) {
    const std::string msg = e.what();
    for (const auto& p : parts) {
      EXPECT_NE(msg.find(p), std::string::npos) << "message: " << msg << "\nmissing: " << p;
    }
  }
}

// ------------------------------------------------------------------------------------------------
// The integer form.

const std::vector<std::string>& family_specs() {
  static const std::vector<std::string> specs = {
      "quantized_bits(6,0,alpha=1)",
      "quantized_bits(4,2,1)",
      "quantized_bits(8,0,0,keep_negative=False,alpha=1)",
      "quantized_bits(5,1,alpha=0.3)",
      "quantized_bits(4,0,alpha=[0.5,1.5,0.25,3.0,1.0,0.75])",
      "quantized_bits(4,0,alpha='auto')",
      "quantized_bits(4,1,alpha='auto_po2')",
      "quantized_bits(6,0,alpha='auto_po2',elements_per_scale=[2],min_po2_exponent=-4)",
      "quantized_bits(1,0,alpha=0.5)",
      "quantized_relu(6,2)",
      "quantized_relu(6,2,0,0.25)",
      "quantized_relu(4,1,1)",
      "quantized_relu(4,0,enable_fast_inference=1)",
      "quantized_tanh(5)",
      "quantized_tanh(4,symmetric=1)",
      "quantized_sigmoid(5)",
      "quantized_po2(5)",
      "quantized_po2(4,1,quadratic_approximation=1)",
      "quantized_relu_po2(6,2048)",
      "quantized_relu_po2(8)",
      "quantized_relu_po2(5,negative_slope=0.5)",
      "binary()",
      "binary(alpha=0.5)",
      "binary(use_01=1)",
      "binary(alpha='auto_po2')",
      "binary(alpha='auto')",
      "ternary()",
      "ternary(alpha=0.7,threshold=0.2)",
      "ternary(alpha='auto')",
      "ternary(alpha='auto_po2')",
      "stochastic_binary(alpha='auto_po2')",
      "stochastic_ternary(alpha='auto')",
      "quantized_hswish(6,2)",
  };
  return specs;
}

TEST(QuantizeToInteger, ReconstructsEveryFamilyBitExactly) {
  torch::manual_seed(0);
  for (const auto& spec : family_specs()) {
    SCOPED_TRACE(spec);
    const auto q = heteroq::get_quantizer(spec);
    for (auto dtype : {torch::kFloat, torch::kDouble}) {
      // A conv kernel (per-channel scales on axis 0) and a bias (rank 1), with zeros, large and
      // tiny values.
      torch::Tensor w = torch::randn({6, 5, 3, 3}, dtype) * 1.5;
      w.index_put_({0, 0}, 0.0);
      w.index_put_({1, 1, 1, 1}, 40.0);
      w.index_put_({2, 2, 2, 2}, 1e-9);
      const torch::Tensor b = torch::randn({6}, dtype);
      for (const auto& x : {w, b}) {
        if (spec.find("[0.5") != std::string::npos && x.dim() == 1) continue;  // 6 alphas: any
        const torch::Tensor v = q->forward(x);
        const IntegerTensor it = heteroq::quantize_to_integer(*q, x);
        EXPECT_TRUE(at::isIntegralType(it.values.scalar_type(), false));
        EXPECT_EQ(it.values.sizes(), x.sizes());
        EXPECT_TRUE(torch::equal(it.dequantize(dtype), v));
        EXPECT_GE(it.values.min().item<int64_t>(), it.min_code);
        EXPECT_LE(it.values.max().item<int64_t>(), it.max_code);
        if (it.encoding == "po2") {
          EXPECT_FALSE(it.scale.defined());
          EXPECT_TRUE((it.sign.abs() == 1).all().item<bool>());
        } else {
          EXPECT_EQ(it.scale.scalar_type(), dtype);
          EXPECT_TRUE(it.scale.dim() == 0 || it.scale.dim() == x.dim());
        }
      }
    }
  }
}

TEST(QuantizeToInteger, FormatsAndScaleLayouts) {
  torch::manual_seed(1);
  const torch::Tensor w = torch::randn({4, 3, 2, 2});
  auto it = heteroq::quantize_to_integer(*heteroq::get_quantizer("quantized_bits(4,0,alpha=1)"),
                                         torch::tensor({0.3f, -1.2f}));
  EXPECT_EQ(it.encoding, "fixed_point");
  EXPECT_TRUE(torch::equal(it.values, torch::tensor({2, -8}, torch::kChar)));
  EXPECT_EQ(it.frac, 3);
  EXPECT_TRUE(it.scale_axes().empty());
  // Per channel: auto_po2 and a per-channel alpha give one scale per output channel (axis 0).
  it = heteroq::quantize_to_integer(*heteroq::get_quantizer("quantized_bits(4,0,alpha='auto_po2')"), w);
  EXPECT_EQ(it.scale.sizes(), torch::IntArrayRef({4, 1, 1, 1}));
  EXPECT_EQ(it.scale_axes(), std::vector<int64_t>{0});
  EXPECT_TRUE(torch::equal(torch::exp2(torch::log2(it.scale).round()), it.scale));  // po2 scales
  EXPECT_EQ(it.max_code, 7);
  it = heteroq::quantize_to_integer(
      *heteroq::get_quantizer("quantized_bits(4,0,alpha=[1,2,3],scale_axis=1)"), w);
  EXPECT_EQ(it.scale.sizes(), torch::IntArrayRef({1, 3, 1, 1}));
  EXPECT_TRUE(torch::equal(it.scale.flatten(), torch::tensor({1.f, 2.f, 3.f})));
  // Unsigned formats, wider codes.
  it = heteroq::quantize_to_integer(*heteroq::get_quantizer("quantized_relu(8,2)"), w);
  EXPECT_FALSE(it.is_signed);
  EXPECT_EQ(it.values.scalar_type(), torch::kShort);  // [0, 255] does not fit int8
  EXPECT_EQ(it.frac, 6);
  it = heteroq::quantize_to_integer(*heteroq::get_quantizer("quantized_bits(12,3,alpha=1)"), w);
  EXPECT_EQ(it.values.scalar_type(), torch::kShort);
  it = heteroq::quantize_to_integer(*heteroq::get_quantizer("ternary(alpha='auto')"), w);
  EXPECT_EQ(it.encoding, "ternary");
  EXPECT_TRUE(((it.values == 0) | (it.values.abs() == 1)).all().item<bool>());
  it = heteroq::quantize_to_integer(*heteroq::get_quantizer("quantized_po2(4)"), w);
  EXPECT_EQ(it.encoding, "po2");
  EXPECT_EQ(it.min_code, -4);
  EXPECT_EQ(it.max_code, 3);
  // The caller's auto quantizer keeps its own last scale (a private copy is evaluated).
  auto qb = std::make_shared<heteroq::QuantizedBits>(4, 0, true, true, std::string("auto_po2"));
  heteroq::quantize_to_integer(*qb, w);
  EXPECT_FALSE(qb->scale().defined());
}

TEST(QuantizeToInteger, RejectsWhatHasNoIntegerForm) {
  const torch::Tensor w = torch::randn({4, 3});
  expect_error([&] { heteroq::quantize_to_integer(*heteroq::get_quantizer("quantized_ulaw(6)"), w); },
               {"quantized_ulaw", "not uniform"});
  expect_error([&] { heteroq::quantize_to_integer(*heteroq::get_quantizer("bernoulli()"), w); },
               {"bernoulli", "random"});
  expect_error(
      [&] {
        heteroq::quantize_to_integer(
            *heteroq::get_quantizer("quantized_bits(4,0,alpha=1,qnoise_factor=0.5)"), w);
      },
      {"qnoise_factor", "0.5"});
  expect_error(
      [&] {
        heteroq::quantize_to_integer(
            *heteroq::get_quantizer("quantized_relu(4,2,relu_upper_bound=1.3,is_quantized_clip=0)"),
            w * 5);
      },
      {"not on its integer grid"});
  expect_error([&] {
    heteroq::quantize_to_integer(*heteroq::get_quantizer("quantized_bits(4)"),
                                 torch::tensor({1.f, NAN}));
  }, {"NaN"});
  expect_error([&] {
    heteroq::quantize_to_integer(*heteroq::get_quantizer("quantized_bits(4)"), torch::ones({2}, torch::kInt));
  }, {"float32 or float64"});
}

// ------------------------------------------------------------------------------------------------
// Models.

// Every heteroq layer kind with quantized tensors, with several quantizer families, plus a float
// torch layer and an activation.
struct AllLayersImpl : torch::nn::Module {
  AllLayersImpl() {
    fc = register_module("fc", QLinear(QLinearOptions(8, 6)
                                           .kernel_quantizer("quantized_bits(6,0,alpha=1)")
                                           .bias_quantizer("quantized_bits(8,3,alpha=1)")));
    fc_po2 = register_module("fc_po2", QLinear(QLinearOptions(8, 6)
                                                   .kernel_quantizer("quantized_bits(4,0,alpha='auto_po2')")
                                                   .bias_quantizer("quantized_po2(6)")));
    act = register_module("act", QActivation("quantized_relu(6,2)"));
    c1 = register_module("c1", QConv1d(QConv1dOptions(3, 4, 3)
                                           .kernel_quantizer("ternary(alpha='auto')")
                                           .bias_quantizer("quantized_bits(8,2,alpha=1)")));
    c2 = register_module("c2", QConv2d(QConv2dOptions(3, 4, 3)
                                           .kernel_quantizer("binary(alpha='auto_po2')")));
    ct = register_module("ct", QConvTranspose2d(QConv2dOptions(3, 2, 3)
                                                    .kernel_quantizer("quantized_bits(5,1,alpha=0.5)")));
    dw = register_module("dw", QDepthwiseConv2d(QDepthwiseConv2dOptions(3, 3).depthwise_quantizer(
                                   "quantized_bits(4,0,alpha=[0.5,1,2])")));
    sep = register_module("sep", QSeparableConv2d(QSeparableConv2dOptions(3, 5, 3)
                                                      .depthwise_quantizer("quantized_po2(4)")
                                                      .pointwise_quantizer("quantized_bits(6,0,alpha='auto')")
                                                      .bias_quantizer("quantized_bits(8,3,alpha=1)")));
    bn2 = register_module("bn2", QBatchNorm2d(QBatchNormOptions(3)
                                                  .gamma_quantizer("quantized_relu_po2(6,2048)")
                                                  .beta_quantizer("quantized_po2(5)")
                                                  .mean_quantizer("quantized_po2(5)")
                                                  .variance_quantizer("quantized_relu_po2(6,quadratic_approximation=1)")));
    bn1 = register_module("bn1", QBatchNorm1d(QBatchNormOptions(6)
                                                  .inverse_quantizer("quantized_bits(8,3,alpha=1)")
                                                  .mean_quantizer("quantized_bits(8,3,alpha=1)")));
    fold2 = register_module("fold2", QConv2dBatchNorm(QConv2dBatchNormOptions(3, 4, 3)
                                                          .kernel_quantizer("quantized_bits(6,0,alpha=1)")
                                                          .bias_quantizer("quantized_bits(10,4,alpha=1)")));
    fold1 = register_module("fold1", QLinearBatchNorm(QLinearBatchNormOptions(8, 6)
                                                          .kernel_quantizer("quantized_bits(4,0,alpha='auto_po2')")
                                                          .folding(FoldingOptions().ema_freeze_delay(3))));
    head = register_module("head", torch::nn::Linear(8, 3));
  }
  std::vector<torch::Tensor> forward(const torch::Tensor& x2, const torch::Tensor& x3,
                                     const torch::Tensor& x4) {
    return {act(fc(x2)), fc_po2(x2), c1(x3), c2(x4), ct(x4), dw(x4), sep(x4), bn2(x4),
            bn1(fc(x2)), fold2(x4), fold1(x2), head(x2)};
  }
  QLinear fc{nullptr}, fc_po2{nullptr};
  QActivation act{nullptr};
  QConv1d c1{nullptr};
  QConv2d c2{nullptr};
  QConvTranspose2d ct{nullptr};
  QDepthwiseConv2d dw{nullptr};
  QSeparableConv2d sep{nullptr};
  QBatchNorm2d bn2{nullptr};
  QBatchNorm1d bn1{nullptr};
  QConv2dBatchNorm fold2{nullptr};
  QLinearBatchNorm fold1{nullptr};
  torch::nn::Linear head{nullptr};
};
TORCH_MODULE(AllLayers);

struct Inputs {
  torch::Tensor x2 = torch::randn({5, 8}), x3 = torch::randn({5, 3, 9}),
                x4 = torch::randn({5, 3, 7, 7});
};

// A trained-looking model: a few training steps move the running statistics and step counters.
AllLayers trained_model(int seed) {
  torch::manual_seed(seed);
  AllLayers m;
  m->train();
  for (int i = 0; i < 4; ++i) {
    Inputs in;
    m->forward(in.x2, in.x3, in.x4);
  }
  m->eval();
  return m;
}

std::vector<torch::Tensor> state(const torch::nn::Module& m) {
  std::vector<torch::Tensor> out;
  for (const auto& p : m.named_parameters()) out.push_back(p.value().detach().clone());
  for (const auto& b : m.named_buffers()) out.push_back(b.value().detach().clone());
  return out;
}
bool same_state(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!torch::equal(a[i], b[i])) return false;
  }
  return true;
}

TEST(QuantizedWeights, RoundTripGivesIdenticalOutputs) {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  AllLayers saved_model = trained_model(0);
  torch::manual_seed(42);
  const Inputs in;
  const auto before = state(*saved_model);
  const auto expected = saved_model->forward(in.x2, in.x3, in.x4);
  const auto saved = save_quantized_weights(*saved_model, path);
  EXPECT_TRUE(same_state(before, state(*saved_model)));  // saving changes nothing

  AllLayers loaded = trained_model(7);  // other weights and statistics
  const auto other = loaded->forward(in.x2, in.x3, in.x4);
  EXPECT_FALSE(torch::equal(other[0], expected[0]));
  load_quantized_weights(*loaded, path);
  const auto got = loaded->forward(in.x2, in.x3, in.x4);
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_TRUE(torch::equal(got[i], expected[i])) << i;
  // Buffers round-trip exactly (running statistics, step counters).
  EXPECT_TRUE(torch::equal(loaded->bn2->running_var, saved_model->bn2->running_var));
  EXPECT_TRUE(torch::equal(loaded->fold1->num_batches_tracked, saved_model->fold1->num_batches_tracked));
  EXPECT_EQ(loaded->fold1->num_batches_tracked.item<int64_t>(), 4);
  // Quantized parameters are now their quantized values (QKeras), or their input grid values.
  EXPECT_TRUE(torch::equal(loaded->fc->weight, loaded->fc->quantized_weight()));
  EXPECT_TRUE(torch::equal(loaded->ct->quantized_weight(), saved_model->ct->quantized_weight()));
  EXPECT_TRUE(torch::equal(loaded->ct->weight * 0.5, loaded->ct->quantized_weight()));
  // A second round trip gives the same file contents.
  const auto again = save_quantized_weights(*loaded, dir.file("again.safetensors"));
  ASSERT_EQ(again.size(), saved.size());
  for (size_t i = 0; i < saved.size(); ++i) {
    EXPECT_EQ(again[i].entry, saved[i].entry);
    EXPECT_TRUE(torch::equal(again[i].value, saved[i].value)) << saved[i].entry;
  }
}

TEST(QuantizedWeights, SavedEntriesDescribeEachTensor) {
  TempDir dir;
  AllLayers m = trained_model(1);
  const auto saved = save_quantized_weights(*m, dir.file("m.safetensors"));
  std::map<std::string, const SavedTensor*> by;
  for (const auto& s : saved) by[s.entry] = &s;
  auto get = [&](const std::string& e) -> const SavedTensor& {
    EXPECT_TRUE(by.count(e)) << e;
    return *by.at(e);
  };
  const auto& fcw = get("fc.weight");
  ASSERT_TRUE(fcw.integer);
  EXPECT_EQ(fcw.integer->values.scalar_type(), torch::kChar);
  EXPECT_EQ(fcw.quantizer, "quantized_bits(6,0,0,alpha=1.0)");
  EXPECT_EQ(fcw.layer_class, "QLinear");
  EXPECT_TRUE(torch::equal(fcw.value, m->fc->quantized_weight()));
  EXPECT_EQ(get("fc_po2.weight").integer->scale.sizes(), torch::IntArrayRef({6, 1}));
  EXPECT_EQ(get("fc_po2.bias").integer->encoding, "po2");
  EXPECT_EQ(get("c1.weight").integer->encoding, "ternary");
  EXPECT_EQ(get("c2.weight").integer->encoding, "binary");
  EXPECT_EQ(get("c2.bias").restore, "float");
  EXPECT_FALSE(get("c2.bias").integer);
  EXPECT_EQ(get("ct.weight").restore, "unscaled");
  EXPECT_EQ(get("dw.conv.weight").integer->scale.sizes(), torch::IntArrayRef({3, 1, 1, 1}));
  EXPECT_EQ(get("sep.depthwise.weight").integer->encoding, "po2");
  EXPECT_EQ(get("bn2.weight").quantizer, "quantized_relu_po2(6,2048.0)");
  EXPECT_EQ(get("bn2.running_mean").role, "buffer");
  EXPECT_FALSE(get("bn2.running_mean").integer);
  EXPECT_EQ(get("bn2.quantized_running_mean").role, "derived");
  EXPECT_EQ(get("bn2.quantized_running_var").integer->encoding, "po2");
  EXPECT_FALSE(get("bn1.weight").integer);  // the inverse quantizer replaces gamma's
  EXPECT_EQ(get("bn1.inverse").integer->encoding, "fixed_point");
  const auto folded = m->fold2->get_folded_weights();
  const auto& fw = get("fold2.folded_weight");
  EXPECT_TRUE(torch::equal(fw.value, heteroq::get_quantizer("quantized_bits(6,0,alpha=1)")->forward(folded[0])));
  EXPECT_TRUE(torch::equal(get("fold2.folded_bias").value,
                           heteroq::get_quantizer("quantized_bits(10,4,alpha=1)")->forward(folded[1])));
  EXPECT_FALSE(get("fold2.weight").integer);  // the float kernel, for training on
  EXPECT_EQ(get("fold1.num_batches_tracked").value.scalar_type(), torch::kLong);
  EXPECT_EQ(get("head.weight").layer_class, "Linear");
}

TEST(QuantizedWeights, FileLayoutIsSafetensors) {
  TempDir dir;
  const std::string path = dir.file("m.safetensors");
  QLinear fc(QLinearOptions(3, 2).kernel_quantizer("quantized_bits(4,0,alpha=1)"));
  save_quantized_weights(*fc, path);
  const std::string bytes = read_bytes(path);
  const uint64_t n = header_length(bytes);
  EXPECT_EQ(n % 8, 0u);
  const std::string header = header_of(bytes);
  EXPECT_NE(header.find("\"__metadata__\""), std::string::npos);
  EXPECT_NE(header.find("\"weight\":{\"dtype\":\"I8\",\"shape\":[2,3],\"data_offsets\":[0,6]}"),
            std::string::npos) << header;
  EXPECT_NE(header.find("\"weight:scale\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[6,10]}"),
            std::string::npos) << header;
  EXPECT_NE(header.find("\"bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[10,18]}"),
            std::string::npos) << header;
  EXPECT_EQ(bytes.size(), 8 + n + 18);
  const auto file = heteroq::read_tensor_file(path);
  EXPECT_EQ(file.meta("format").value(), "heteroq.quantized_weights");
  EXPECT_EQ(file.meta("format_version").value(), "1");
  const auto it = heteroq::quantize_to_integer(*heteroq::get_quantizer("quantized_bits(4,0,alpha=1)"), fc->weight);
  EXPECT_TRUE(torch::equal(*file.find("weight"), it.values));
  EXPECT_TRUE(torch::equal(*file.find("bias"), fc->bias));
  // Generic files round-trip every supported dtype.
  std::vector<std::pair<std::string, torch::Tensor>> ts = {
      {"f64", torch::randn({2, 3}, torch::kDouble)}, {"f16", torch::randn({4}).to(torch::kHalf)},
      {"bf16", torch::randn({4}).to(torch::kBFloat16)}, {"i64", torch::arange(5)},
      {"i16", torch::arange(3).to(torch::kShort)}, {"u8", torch::arange(3).to(torch::kByte)},
      {"b", torch::tensor({true, false})}, {"empty", torch::zeros({0, 3})}};
  heteroq::write_tensor_file(dir.file("g.safetensors"), ts, {{"k", "v"}});
  const auto g = heteroq::read_tensor_file(dir.file("g.safetensors"));
  ASSERT_EQ(g.tensors.size(), ts.size());
  for (size_t i = 0; i < ts.size(); ++i) {
    EXPECT_EQ(g.tensors[i].first, ts[i].first);
    EXPECT_TRUE(torch::equal(g.tensors[i].second, ts[i].second)) << ts[i].first;
  }
  EXPECT_EQ(g.meta("k").value(), "v");
}

// A corrupted file: a clear error naming the file, and the model unchanged.
class CorruptFile : public ::testing::Test {
 protected:
  void SetUp() override {
    path = dir.file("m.safetensors");
    AllLayers src = trained_model(0);
    save_quantized_weights(*src, path);
    good = read_bytes(path);
    target = trained_model(3);
    before = state(*target);
  }
  void expect_load_error(const std::string& bytes, const std::vector<std::string>& parts) {
    write_bytes(path, bytes);
    std::vector<std::string> all = parts;
    all.push_back(path);
    expect_error([&] { load_quantized_weights(*target, path); }, all);
    EXPECT_TRUE(same_state(before, state(*target)));
  }
  TempDir dir;
  std::string path, good;
  AllLayers target{nullptr};
  std::vector<torch::Tensor> before;
};

TEST_F(CorruptFile, Truncated) {
  expect_load_error(good.substr(0, good.size() - 100), {"out of range", "truncated"});
  expect_load_error(good.substr(0, 5), {"truncated"});
  expect_load_error(good.substr(0, 8 + header_length(good) / 2), {"truncated"});
}

TEST_F(CorruptFile, WrongHeaderLength) {
  std::string bytes = good;
  bytes[5] = 1;  // a header length of 2^40
  expect_load_error(bytes, {"header length"});
  // 16 bytes short (more than the <= 7 bytes of padding): the JSON is cut.
  expect_load_error(with_length(good, header_length(good) - 16), {"not valid JSON"});
  // One byte short: the padding shrinks, and a byte of the header counts as data.
  expect_load_error(with_length(good, header_length(good) - 1), {"belong to no tensor"});
  expect_load_error(std::string(8, '\0') + good.substr(8), {"header length 0"});
}

TEST_F(CorruptFile, CorruptedHeader) {
  std::string h = header_of(good);
  std::string bad = h;
  bad[bad.find(':')] = ';';
  expect_load_error(with_header(good, bad), {"not valid JSON"});
  bad = h;
  bad.replace(bad.find("\"F32\""), 5, "\"X32\"");
  expect_load_error(with_header(good, bad), {"unsupported dtype", "X32"});
  bad = h;
  const auto at = bad.find("\"shape\":[6,8]");
  ASSERT_NE(at, std::string::npos);
  bad.replace(at, 13, "\"shape\":[6,9]");
  expect_load_error(with_header(good, bad), {"fc.weight", "needs 54 bytes"});
  bad = h;
  bad.replace(bad.find("heteroq.quantized_weights"), 7, "notmine");
  expect_load_error(with_header(good, bad), {"not a heteroq quantized-weights file"});
  expect_load_error(with_header(good, "[1,2]   "), {"not a JSON object"});
}

TEST_F(CorruptFile, OffsetsOutOfRangeOrOverlapping) {
  const std::string h = header_of(good);
  const std::string key = "\"fc.weight\":{\"dtype\":\"I8\",\"shape\":[6,8],\"data_offsets\":[";
  const auto at = h.find(key);
  ASSERT_NE(at, std::string::npos) << h;
  const auto end = h.find(']', at + key.size());
  std::string bad = h;
  bad.replace(at + key.size(), end - at - key.size(), "100000000,100000048");
  expect_load_error(with_header(good, bad), {"fc.weight", "out of range"});
  bad = h;
  bad.replace(at + key.size(), end - at - key.size(), "1,49");
  expect_load_error(with_header(good, bad), {"bytes [0, 1)", "belong to no tensor"});
  const std::string scale_key = "\"fc.weight:scale\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[48,52]";
  const auto s_at = h.find(scale_key);
  ASSERT_NE(s_at, std::string::npos) << h;
  bad = h;
  bad.replace(s_at, scale_key.size(), "\"fc.weight:scale\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[44,48]");
  expect_load_error(with_header(good, bad), {"fc.weight", "fc.weight:scale", "overlap"});
}

TEST_F(CorruptFile, ModifiedCodes) {
  // Out-of-range codes are caught by the range check; codes the quantizer would not produce from
  // the restored weights by the reproduction check.
  const auto file = heteroq::read_tensor_file(path);
  std::vector<std::pair<std::string, torch::Tensor>> ts = file.tensors;
  for (auto& [name, t] : ts) {
    if (name == "fc.weight") t = t.clone().fill_(100);
  }
  heteroq::write_tensor_file(path, ts, file.metadata);
  expect_load_error(read_bytes(path), {"fc.weight", "exceed the format's range"});
  ts = file.tensors;
  for (auto& [name, t] : ts) {
    if (name == "fc_po2.weight:scale") t = t.clone() * 3;
  }
  heteroq::write_tensor_file(path, ts, file.metadata);
  expect_load_error(read_bytes(path), {"fc_po2.weight", "does not reproduce"});
}

TEST(QuantizedWeights, MismatchingModelIsRejectedAndUnchanged) {
  TempDir dir;
  const std::string path = dir.file("m.safetensors");
  torch::manual_seed(0);
  torch::nn::Sequential src(QLinear(QLinearOptions(4, 3).kernel_quantizer("quantized_bits(4,0,alpha=1)")),
                            QLinear(QLinearOptions(3, 2).kernel_quantizer("quantized_bits(4,0,alpha=1)")));
  save_quantized_weights(*src, path);
  auto check = [&](torch::nn::Sequential m, const std::vector<std::string>& parts) {
    const auto before = state(*m);
    std::vector<std::string> all = parts;
    all.push_back(path);
    expect_error([&] { load_quantized_weights(*m, path); }, all);
    EXPECT_TRUE(same_state(before, state(*m)));
  };
  // A layer missing from the model: the file has entries for it.
  check(torch::nn::Sequential(QLinear(QLinearOptions(4, 3).kernel_quantizer("quantized_bits(4,0,alpha=1)"))),
        {"1.weight", "matches no tensor"});
  // An extra layer: the file lacks it.
  check(torch::nn::Sequential(QLinear(QLinearOptions(4, 3).kernel_quantizer("quantized_bits(4,0,alpha=1)")),
                              QLinear(QLinearOptions(3, 2).kernel_quantizer("quantized_bits(4,0,alpha=1)")),
                              QLinear(QLinearOptions(2, 2))),
        {"has no entry", "2.weight"});
  // A wrong shape.
  check(torch::nn::Sequential(QLinear(QLinearOptions(4, 3).kernel_quantizer("quantized_bits(4,0,alpha=1)")),
                              QLinear(QLinearOptions(3, 5).kernel_quantizer("quantized_bits(4,0,alpha=1)"))),
        {"1.weight", "shape [2, 3]", "[5, 3]"});
  // Another quantizer.
  check(torch::nn::Sequential(QLinear(QLinearOptions(4, 3).kernel_quantizer("quantized_bits(4,0,alpha=1)")),
                              QLinear(QLinearOptions(3, 2).kernel_quantizer("quantized_bits(6,0,alpha=1)"))),
        {"1.weight", "quantized_bits(4,0,0,alpha=1.0)", "quantized_bits(6,0,0,alpha=1.0)"});
  // Another class.
  check(torch::nn::Sequential(QLinear(QLinearOptions(4, 3).kernel_quantizer("quantized_bits(4,0,alpha=1)")),
                              torch::nn::Linear(3, 2)),
        {"1.weight", "QLinear"});
  // Another dtype.
  torch::nn::Sequential dbl(QLinear(QLinearOptions(4, 3).kernel_quantizer("quantized_bits(4,0,alpha=1)")),
                            QLinear(QLinearOptions(3, 2).kernel_quantizer("quantized_bits(4,0,alpha=1)")));
  dbl->to(torch::kDouble);
  check(dbl, {"F32", "F64"});
  // Not a weights file at all.
  write_bytes(path, "hello");
  check(src, {"truncated"});
  expect_error([&] { load_quantized_weights(*src, dir.file("missing")); }, {"cannot read", "missing"});
}

TEST(QuantizedWeights, FailedWriteLeavesNoFileAndKeepsTheOldOne) {
  TempDir dir;
  const std::string path = dir.file("m.safetensors");
  QLinear good(QLinearOptions(4, 3).kernel_quantizer("quantized_bits(4,0,alpha=1)"));
  save_quantized_weights(*good, path);
  const std::string old = read_bytes(path);
  // A quantizer without an integer form: nothing is written.
  QLinear bad(QLinearOptions(4, 3).kernel_quantizer("quantized_ulaw(6)"));
  expect_error([&] { save_quantized_weights(*bad, path); }, {"weight", "quantized_ulaw", "QLinear"});
  EXPECT_EQ(read_bytes(path), old);
  // An unwritable destination (a directory of that name; a missing directory).
  ASSERT_EQ(::mkdir(dir.file("sub").c_str(), 0755), 0);
  expect_error([&] { save_quantized_weights(*good, dir.file("sub")); }, {"sub", "rename"});
  expect_error([&] { save_quantized_weights(*good, dir.file("nowhere/m.safetensors")); },
               {"nowhere", "cannot create"});
  ::rmdir(dir.file("sub").c_str());
  EXPECT_EQ(dir.files(), std::vector<std::string>{"m.safetensors"});  // no temporary file left
  EXPECT_EQ(read_bytes(path), old);
}

TEST(QuantizedWeights, UnknownQuantizedLayerIsAnError) {
  // A module with quantizers the saver has no table entry for (e.g. a new layer kind).
  struct Custom : torch::nn::Module {
    Custom() { register_parameter("w", torch::ones({2})); }
  };
  auto m = std::make_shared<Custom>();
  TempDir dir;
  // Custom has no quantizers: saved as floats.
  const auto saved = save_quantized_weights(*m, dir.file("c.safetensors"));
  ASSERT_EQ(saved.size(), 1u);
  EXPECT_EQ(saved[0].entry, "w");
  EXPECT_FALSE(saved[0].integer);
  heteroq::nn::detail::LayerState s;
  s.path = "rnn";
  s.class_name = "QFancy";
  s.parameters.emplace_back("w", torch::ones({2}));
  s.quantizers.emplace_back("kernel_quantizer", heteroq::get_quantizer("quantized_bits(4)"));
  expect_error([&] { heteroq::nn::detail::save_layers({s}, dir.file("c.safetensors")); },
               {"rnn", "QFancy", "does not know"});
}

TEST(QuantizedWeights, RecurrentLayersRoundTrip) {
  auto build = [](int seed) {
    torch::manual_seed(seed);
    torch::nn::Sequential m(
        heteroq::nn::QLSTM(heteroq::nn::QLSTMOptions(4, 3)
                               .num_layers(2)
                               .bidirectional(true)
                               .kernel_quantizer("quantized_po2(4)")
                               .recurrent_quantizer("quantized_bits(4,0,alpha='auto_po2')")
                               .state_quantizer("quantized_bits(8,1,alpha=1)")),
        heteroq::nn::QGRU(heteroq::nn::QGRUOptions(4, 3)
                              .recurrent_quantizer("ternary(alpha='auto')")
                              .bias_quantizer("quantized_bits(8,2,alpha=1)")));
    m->eval();
    return m;
  };
  auto src = build(0);
  auto dst = build(1);
  TempDir dir;
  const auto saved = save_quantized_weights(*src, dir.file("rnn.safetensors"));
  int integer_entries = 0;
  for (const auto& e : saved) integer_entries += e.integer ? 1 : 0;
  // LSTM: 4 kernels + 4 recurrent kernels per direction/layer; GRU: recurrent kernel + 2 biases.
  EXPECT_EQ(integer_entries, 8 + 3);
  load_quantized_weights(*dst, dir.file("rnn.safetensors"));
  const torch::Tensor x = torch::randn({7, 2, 4});
  auto* lstm_src = src[0]->as<heteroq::nn::QLSTMImpl>();
  auto* lstm_dst = dst[0]->as<heteroq::nn::QLSTMImpl>();
  EXPECT_TRUE(torch::equal(std::get<0>(lstm_src->forward(x)), std::get<0>(lstm_dst->forward(x))));
  auto* gru_src = src[1]->as<heteroq::nn::QGRUImpl>();
  auto* gru_dst = dst[1]->as<heteroq::nn::QGRUImpl>();
  EXPECT_TRUE(torch::equal(std::get<0>(gru_src->forward(x)), std::get<0>(gru_dst->forward(x))));
}

}  // namespace
