// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// The recurrent layers: equal to torch::nn::RNN/LSTM/GRU without quantizers, equal to a plain
// LibTorch reference with them, gradients, training, shapes, errors.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "heteroq/heteroq.h"

namespace {

using heteroq::nn::QGRU;
using heteroq::nn::QGRUOptions;
using heteroq::nn::QLSTM;
using heteroq::nn::QLSTMOptions;
using heteroq::nn::QSimpleRNN;
using heteroq::nn::QSimpleRNNOptions;
using Fn = std::function<torch::Tensor(const torch::Tensor&)>;

// Copies every parameter of `from` into the parameter of `to` with the same name.
void copy_parameters(torch::nn::Module& from, torch::nn::Module& to) {
  torch::NoGradGuard no_grad;
  auto dst = to.named_parameters();
  auto src = from.named_parameters();
  ASSERT_EQ(src.size(), dst.size());
  for (const auto& p : src) {
    ASSERT_TRUE(dst.contains(p.key())) << p.key();
    ASSERT_EQ(dst[p.key()].sizes(), p.value().sizes()) << p.key();
    dst[p.key()].copy_(p.value());
  }
}

void expect_close(const torch::Tensor& a, const torch::Tensor& b, double tol = 1e-6) {
  ASSERT_EQ(a.sizes(), b.sizes());
  EXPECT_TRUE(torch::allclose(a, b, tol, tol)) << (a - b).abs().max().item<double>();
}

Fn quantizer(const std::string& spec) {
  auto q = heteroq::get_quantizer(spec);
  return [q](const torch::Tensor& x) { return q->forward(x); };
}
Fn identity() {
  return [](const torch::Tensor& x) { return x; };
}
Fn hard_sigmoid() {  // QKeras's
  return [](const torch::Tensor& x) { return torch::clamp(x * 0.5 + 0.5, 0.0, 1.0); };
}

// A plain-LibTorch reference of one layer, one direction, written out (QKeras's cell equations
// in PyTorch's layout): x (L, N, in), h0 / c0 (N, H). Returns the outputs (L, N, H).
struct Quantizers {
  Fn k = identity(), r = identity(), b = identity(), s = identity();
  Fn act = [](const torch::Tensor& x) { return torch::tanh(x); };
  Fn ract = [](const torch::Tensor& x) { return torch::sigmoid(x); };
};

torch::Tensor reference(const std::string& cell, const torch::Tensor& x, torch::nn::Module& m,
                        const std::string& suffix, torch::Tensor h, torch::Tensor c,
                        const Quantizers& q, bool reset_after = true) {
  auto p = m.named_parameters();
  const torch::Tensor wi = q.k(p["weight_ih" + suffix]), wh = q.r(p["weight_hh" + suffix]);
  const torch::Tensor bi = q.b(p["bias_ih" + suffix]), bh = q.b(p["bias_hh" + suffix]);
  const int64_t hs = wh.size(1);
  const torch::Tensor xg = torch::linear(x, wi, bi);
  std::vector<torch::Tensor> out;
  for (int64_t t = 0; t < x.size(0); ++t) {
    const torch::Tensor xt = xg[t];
    if (cell == "lstm") {
      const torch::Tensor cq = q.s(c), hq = q.s(h);
      const auto g = (xt + torch::linear(hq, wh, bh)).chunk(4, 1);
      const torch::Tensor i = q.ract(g[0]), f = q.ract(g[1]), gg = q.act(g[2]), o = q.ract(g[3]);
      c = f * cq + i * gg;
      h = o * q.act(c);
    } else if (cell == "gru") {
      const torch::Tensor hq = q.s(h);
      const torch::Tensor r = q.ract(xt.narrow(1, 0, hs) +
                                     torch::linear(hq, wh.narrow(0, 0, hs), bh.narrow(0, 0, hs)));
      const torch::Tensor z = q.ract(xt.narrow(1, hs, hs) +
                                     torch::linear(hq, wh.narrow(0, hs, hs), bh.narrow(0, hs, hs)));
      const torch::Tensor w_n = wh.narrow(0, 2 * hs, hs), b_n = bh.narrow(0, 2 * hs, hs);
      const torch::Tensor x_n = xt.narrow(1, 2 * hs, hs);
      const torch::Tensor n = reset_after ? q.act(x_n + r * torch::linear(hq, w_n, b_n))
                                          : q.act(x_n + torch::linear(r * hq, w_n, b_n));
      h = (1 - z) * n + z * hq;
    } else {
      h = q.act(xt + torch::linear(q.s(h), wh, bh));
    }
    out.push_back(h);
  }
  return torch::stack(out, 0);
}

TEST(QRNN, FloatLayersEqualTorchRnnLstmGru) {
  torch::manual_seed(0);
  for (const bool batch_first : {false, true}) {
    const torch::Tensor x = batch_first ? torch::randn({3, 7, 4}) : torch::randn({7, 3, 4});
    const torch::Tensor h0 = torch::randn({4, 3, 5}), c0 = torch::randn({4, 3, 5});
    {
      torch::nn::LSTM ref(torch::nn::LSTMOptions(4, 5).num_layers(2).bidirectional(true)
                              .batch_first(batch_first));
      QLSTM q(QLSTMOptions(4, 5).num_layers(2).bidirectional(true).batch_first(batch_first)
                  .activation(nullptr).recurrent_activation(nullptr));
      copy_parameters(*ref, *q);
      auto [y, s] = ref(x, std::make_tuple(h0, c0));
      auto [qy, qs] = q(x, std::make_tuple(h0, c0));
      expect_close(qy, y);
      expect_close(std::get<0>(qs), std::get<0>(s));
      expect_close(std::get<1>(qs), std::get<1>(s));
    }
    {
      torch::nn::GRU ref(torch::nn::GRUOptions(4, 5).num_layers(2).bidirectional(true)
                             .batch_first(batch_first));
      QGRU q(QGRUOptions(4, 5).num_layers(2).bidirectional(true).batch_first(batch_first)
                 .activation("tanh").recurrent_activation("sigmoid"));
      copy_parameters(*ref, *q);
      auto [y, h] = ref(x, h0);
      auto [qy, qh] = q(x, h0);
      expect_close(qy, y);
      expect_close(qh, h);
    }
    for (const bool relu : {false, true}) {
      torch::nn::RNN ref(torch::nn::RNNOptions(4, 5).num_layers(2).bidirectional(true)
                             .batch_first(batch_first)
                             .nonlinearity(relu ? torch::nn::RNNOptions::nonlinearity_t(torch::kReLU)
                                                : torch::nn::RNNOptions::nonlinearity_t(torch::kTanh)));
      QSimpleRNN q(QSimpleRNNOptions(4, 5).num_layers(2).bidirectional(true)
                       .batch_first(batch_first).activation(relu ? "relu" : "tanh"));
      copy_parameters(*ref, *q);
      auto [y, h] = ref(x);
      auto [qy, qh] = q(x);
      expect_close(qy, y);
      expect_close(qh, h);
    }
  }
}

TEST(QRNN, InitialisationIsTorchs) {
  torch::manual_seed(3);
  torch::nn::LSTM ref(torch::nn::LSTMOptions(4, 6).num_layers(2));
  torch::manual_seed(3);
  QLSTM q(QLSTMOptions(4, 6).num_layers(2).unit_forget_bias(false));
  for (const auto& p : ref->named_parameters()) {
    EXPECT_TRUE(torch::equal(q->named_parameters()[p.key()], p.value())) << p.key();
  }
  // unit_forget_bias (the default, as QKeras): forget gate bias 1 in total.
  QLSTM f(QLSTMOptions(4, 6).num_layers(2).bidirectional(true));
  for (const std::string& s : {"_l0", "_l1", "_l0_reverse", "_l1_reverse"}) {
    auto p = f->named_parameters();
    EXPECT_TRUE(torch::equal(p["bias_ih" + s].narrow(0, 6, 6), torch::ones({6}))) << s;
    EXPECT_TRUE(torch::equal(p["bias_hh" + s].narrow(0, 6, 6), torch::zeros({6}))) << s;
    EXPECT_GT(p["bias_ih" + s].narrow(0, 0, 6).abs().sum().item<double>(), 0);
  }
  EXPECT_EQ(f->all_weights().size(), 16u);
}

TEST(QRNN, QuantizedForwardEqualsPlainReference) {
  torch::manual_seed(1);
  const torch::Tensor x = torch::randn({6, 3, 4});
  const torch::Tensor h0 = torch::randn({1, 3, 5}) * 0.5, c0 = torch::randn({1, 3, 5});
  Quantizers q;
  q.k = quantizer("quantized_bits(6,0,alpha=1)");
  q.r = quantizer("quantized_bits(5,0,alpha=1)");
  q.b = quantizer("quantized_bits(8,2,alpha=1)");
  q.s = quantizer("quantized_bits(8,1,alpha=1)");
  q.act = quantizer("quantized_tanh(6)");
  q.ract = hard_sigmoid();
  {
    QLSTM m(QLSTMOptions(4, 5)
                .kernel_quantizer("quantized_bits(6,0,alpha=1)")
                .recurrent_quantizer("quantized_bits(5,0,alpha=1)")
                .bias_quantizer("quantized_bits(8,2,alpha=1)")
                .state_quantizer("quantized_bits(8,1,alpha=1)")
                .activation("quantized_tanh(6)"));  // recurrent: hard_sigmoid (default)
    m->eval();
    auto [y, s] = m(x, std::make_tuple(h0, c0));
    const torch::Tensor ref = reference("lstm", x, *m, "_l0", h0[0], c0[0], q);
    EXPECT_TRUE(torch::equal(y, ref));
    EXPECT_TRUE(torch::equal(std::get<0>(s)[0], ref[-1]));
    // The outputs of quantized_tanh(6) times hard-sigmoid gates: o * act(c) with act on a grid.
    auto qp = m->quantized_parameters();
    EXPECT_TRUE(torch::equal(qp["weight_ih_l0"], q.k(m->named_parameters()["weight_ih_l0"])));
    EXPECT_TRUE(torch::equal(qp["weight_hh_l0"], q.r(m->named_parameters()["weight_hh_l0"])));
  }
  Quantizers g = q;
  g.ract = quantizer("quantized_sigmoid(6)");
  for (const bool reset_after : {true, false}) {
    QGRU m(QGRUOptions(4, 5)
               .kernel_quantizer("quantized_bits(6,0,alpha=1)")
               .recurrent_quantizer("quantized_bits(5,0,alpha=1)")
               .bias_quantizer("quantized_bits(8,2,alpha=1)")
               .state_quantizer("quantized_bits(8,1,alpha=1)")
               .activation("quantized_tanh(6)")
               .recurrent_activation("quantized_sigmoid(6)")
               .reset_after(reset_after));
    auto [y, h] = m(x, h0);
    EXPECT_TRUE(torch::equal(y, reference("gru", x, *m, "_l0", h0[0], {}, g, reset_after)))
        << reset_after;
  }
  {
    QSimpleRNN m(QSimpleRNNOptions(4, 5)
                     .kernel_quantizer("quantized_bits(6,0,alpha=1)")
                     .recurrent_quantizer("quantized_bits(5,0,alpha=1)")
                     .bias_quantizer("quantized_bits(8,2,alpha=1)")
                     .state_quantizer("quantized_bits(8,1,alpha=1)")
                     .activation("quantized_tanh(6)"));
    auto [y, h] = m(x, h0);
    EXPECT_TRUE(torch::equal(y, reference("rnn", x, *m, "_l0", h0[0], {}, q)));
    // quantized_tanh(6): every output on the grid of step 1/32.
    EXPECT_TRUE(torch::equal(y * 32, torch::round(y * 32)));
  }
}

TEST(QRNN, DefaultActivationsAreQKeras) {
  // quantized_tanh (8 bits) and hard_sigmoid, with the reversed direction checked too.
  torch::manual_seed(2);
  const torch::Tensor x = torch::randn({5, 2, 3});
  QLSTM m(QLSTMOptions(3, 4).bidirectional(true));
  auto [y, s] = m(x);
  Quantizers q;
  q.act = quantizer("quantized_tanh(8)");
  q.ract = hard_sigmoid();
  const torch::Tensor z = torch::zeros({2, 4});
  const torch::Tensor fwd = reference("lstm", x, *m, "_l0", z, z, q);
  const torch::Tensor bwd = reference("lstm", x.flip(0), *m, "_l0_reverse", z, z, q).flip(0);
  EXPECT_TRUE(torch::equal(y, torch::cat({fwd, bwd}, 2)));
  EXPECT_TRUE(torch::equal(std::get<0>(s)[1], bwd[0]));
}

TEST(QGRU, RecurrentKernelUsesOnlyTheRecurrentQuantizer) {
  // QKeras's QGRU quantizes the recurrent kernel with the kernel quantizer when no
  // recurrent_quantizer is given (google/qkeras PR #89); heteroq leaves it float.
  torch::manual_seed(4);
  const torch::Tensor x = torch::randn({4, 2, 3});
  QGRU m(QGRUOptions(3, 4).kernel_quantizer("quantized_bits(3,0,alpha=1)").activation(nullptr)
             .recurrent_activation(nullptr).reset_after(false));
  Quantizers q;
  q.k = quantizer("quantized_bits(3,0,alpha=1)");
  auto [y, h] = m(x);
  EXPECT_TRUE(torch::equal(y, reference("gru", x, *m, "_l0", torch::zeros({2, 4}), {}, q, false)));
}

TEST(QRNN, GradientsReachEveryParameter) {
  torch::manual_seed(5);
  QLSTM m(QLSTMOptions(3, 4).num_layers(2).bidirectional(true).batch_first(true)
              .kernel_quantizer("quantized_bits(6,0,alpha=1)")
              .recurrent_quantizer("quantized_bits(6,0,alpha=1)")
              .bias_quantizer("quantized_bits(6,2,alpha=1)")
              .state_quantizer("quantized_bits(8,2,alpha=1)"));
  const torch::Tensor h0 = torch::randn({4, 2, 4}, torch::requires_grad());
  auto [y, s] = m(torch::randn({2, 5, 3}), std::make_tuple(h0, torch::zeros({4, 2, 4})));
  (y.sum() + std::get<1>(s).sum()).backward();
  for (const auto& p : m->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0) << p.key();
  }
  EXPECT_GT(h0.grad().abs().sum().item<double>(), 0);
  QGRU gru(QGRUOptions(3, 4).num_layers(2).kernel_quantizer("quantized_bits(6,0,alpha=1)")
               .recurrent_quantizer("quantized_bits(6,0,alpha=1)").reset_after(false));
  std::get<0>(gru(torch::randn({5, 2, 3}))).sum().backward();
  QSimpleRNN rnn(QSimpleRNNOptions(3, 4).num_layers(2).bidirectional(true)
                     .kernel_quantizer("quantized_bits(6,0,alpha=1)"));
  std::get<0>(rnn(torch::randn({5, 2, 3}))).sum().backward();
  for (torch::nn::Module* mod : {static_cast<torch::nn::Module*>(gru.get()),
                                 static_cast<torch::nn::Module*>(rnn.get())}) {
    for (const auto& p : mod->named_parameters()) {
      ASSERT_TRUE(p.value().grad().defined()) << p.key();
      EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0) << p.key();
    }
  }
}

TEST(QRNN, ShapesLikeTorch) {
  torch::manual_seed(6);
  QLSTM lstm(QLSTMOptions(3, 4).num_layers(2).bidirectional(true).batch_first(true));
  auto [y, s] = lstm(torch::randn({2, 5, 3}));
  EXPECT_EQ(y.sizes(), torch::IntArrayRef({2, 5, 8}));
  EXPECT_EQ(std::get<0>(s).sizes(), torch::IntArrayRef({4, 2, 4}));
  EXPECT_EQ(std::get<1>(s).sizes(), torch::IntArrayRef({4, 2, 4}));
  // Unbatched input (L, in): output (L, D H), states (layers * D, H); the same as a batch of 1.
  const torch::Tensor x = torch::randn({5, 3});
  auto [y1, s1] = lstm(x);
  EXPECT_EQ(y1.sizes(), torch::IntArrayRef({5, 8}));
  EXPECT_EQ(std::get<1>(s1).sizes(), torch::IntArrayRef({4, 4}));
  auto [yb, sb] = lstm(x.unsqueeze(0));
  EXPECT_TRUE(torch::equal(y1, yb[0]));
  auto [yh, sh] = lstm(x, std::make_tuple(torch::zeros({4, 4}), torch::zeros({4, 4})));
  EXPECT_TRUE(torch::equal(yh, y1));
  QGRU gru(QGRUOptions(3, 4).num_layers(2));
  auto [gy, gh] = gru(torch::randn({5, 2, 3}));
  EXPECT_EQ(gy.sizes(), torch::IntArrayRef({5, 2, 4}));
  EXPECT_EQ(gh.sizes(), torch::IntArrayRef({2, 2, 4}));
  QSimpleRNN rnn(QSimpleRNNOptions(3, 4).bidirectional(true).bias(false));
  auto [ry, rh] = rnn(torch::randn({5, 3}));
  EXPECT_EQ(ry.sizes(), torch::IntArrayRef({5, 8}));
  EXPECT_EQ(rh.sizes(), torch::IntArrayRef({2, 4}));
  EXPECT_EQ(rnn->named_parameters().size(), 4u);  // no biases
}

TEST(QRNN, DropoutActsBetweenLayersInTraining) {
  torch::manual_seed(7);
  QGRU gru(QGRUOptions(3, 8).num_layers(2).dropout(0.5));
  const torch::Tensor x = torch::randn({5, 2, 3});
  gru->eval();
  const torch::Tensor a = std::get<0>(gru(x)), b = std::get<0>(gru(x));
  EXPECT_TRUE(torch::equal(a, b));
  gru->train();
  torch::manual_seed(1);
  const torch::Tensor c = std::get<0>(gru(x));
  torch::manual_seed(1);
  EXPECT_TRUE(torch::equal(c, std::get<0>(gru(x))));  // the global generator's noise
  EXPECT_FALSE(torch::equal(a, c));
}

TEST(QRNN, TrainsLstmWithQDense) {
  // Sequence classification: is the sum of the first feature over the sequence positive?
  torch::manual_seed(0);
  const torch::Tensor x = torch::randn({128, 12, 3});
  const torch::Tensor y = (x.select(2, 0).sum(1) > 0).to(torch::kLong);
  QLSTM lstm(QLSTMOptions(3, 16).batch_first(true)
                 .kernel_quantizer("quantized_bits(8,0,alpha=1)")
                 .recurrent_quantizer("quantized_bits(8,0,alpha=1)")
                 .bias_quantizer("quantized_bits(8,2,alpha=1)")
                 .state_quantizer("quantized_bits(8,2,alpha=1)"));
  heteroq::nn::QDense head(heteroq::nn::QLinearOptions(16, 2)
                               .kernel_quantizer("quantized_bits(8,1,alpha=1)"));
  std::vector<torch::Tensor> params = lstm->parameters();
  for (const auto& p : head->parameters()) params.push_back(p);
  torch::optim::Adam opt(params, torch::optim::AdamOptions(2e-2));
  auto loss_of = [&] {
    auto [out, state] = lstm(x);
    return torch::nn::functional::cross_entropy(head(std::get<0>(state)[0]), y);
  };
  const double first = loss_of().item<double>();
  for (int i = 0; i < 30; ++i) {
    opt.zero_grad();
    torch::Tensor loss = loss_of();
    loss.backward();
    opt.step();
  }
  const double last = loss_of().item<double>();
  EXPECT_LT(last, 0.7 * first) << first << " -> " << last;
}

TEST(QRNN, CloneAndSequential) {
  torch::manual_seed(8);
  QLSTM m(QLSTMOptions(3, 4).kernel_quantizer("quantized_bits(6,0,alpha=1)"));
  auto copy = std::dynamic_pointer_cast<heteroq::nn::QLSTMImpl>(m->clone());
  ASSERT_TRUE(copy);
  const torch::Tensor x = torch::randn({5, 2, 3});
  EXPECT_TRUE(torch::equal(std::get<0>(m(x)), std::get<0>(copy->forward(x))));
  {
    torch::NoGradGuard no_grad;
    copy->named_parameters()["weight_hh_l0"].add_(1.0);
  }
  EXPECT_FALSE(torch::equal(std::get<0>(m(x)), std::get<0>(copy->forward(x))));
  // Save and load (by parameter name), and dtype conversion (the weights are converted in place).
  std::stringstream buffer;
  torch::save(m, buffer);
  QLSTM loaded(QLSTMOptions(3, 4).kernel_quantizer("quantized_bits(6,0,alpha=1)"));
  torch::load(loaded, buffer);
  EXPECT_TRUE(torch::equal(std::get<0>(loaded(x)), std::get<0>(m(x))));
  loaded->to(torch::kDouble);
  EXPECT_EQ(std::get<0>(loaded(x.to(torch::kDouble))).scalar_type(), torch::kDouble);
  // In an AnyModule (Sequential) the state argument is optional.
  torch::nn::Sequential seq(QGRU(QGRUOptions(3, 4)));
  auto out = seq->forward<std::tuple<torch::Tensor, torch::Tensor>>(x);
  EXPECT_EQ(std::get<0>(out).sizes(), torch::IntArrayRef({5, 2, 4}));
}

TEST(QRNN, HardSigmoidOperator) {
  const torch::Tensor x = torch::tensor({-3.0f, -1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 3.0f},
                                        torch::requires_grad());
  const torch::Tensor y = heteroq::ops::hard_sigmoid(x);
  EXPECT_TRUE(torch::equal(y, torch::tensor({0.0f, 0.0f, 0.25f, 0.5f, 0.75f, 1.0f, 1.0f})));
  y.sum().backward();
  // clip's gradient: 0.5 on the closed interval [-1, 1].
  EXPECT_TRUE(torch::equal(x.grad(), torch::tensor({0.0f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.0f})));
  EXPECT_THROW(heteroq::ops::_rnn_activation(x, "softsign"), c10::ValueError);
}

TEST(QRNN, PrettyPrint) {
  QLSTM m(QLSTMOptions(8, 16).kernel_quantizer("quantized_bits(6,0,alpha=1)"));
  std::ostringstream os;
  os << *m;
  EXPECT_EQ(os.str(),
            "heteroq::nn::QLSTM(input_size=8, hidden_size=16, num_layers=1, bias=true, "
            "batch_first=false, dropout=0, bidirectional=false, "
            "kernel_quantizer=quantized_bits(6,0,0,alpha=1.0), activation=quantized_tanh(8), "
            "recurrent_activation=hard_sigmoid, unit_forget_bias=true)");
  QGRU g(QGRUOptions(2, 3).activation(nullptr).recurrent_activation("sigmoid"));
  std::ostringstream gs;
  gs << *g;
  EXPECT_NE(gs.str().find("activation=tanh, recurrent_activation=sigmoid, reset_after=true"),
            std::string::npos)
      << gs.str();
}

TEST(QRNN, BadArgumentsThrow) {
  EXPECT_THROW(QLSTM(QLSTMOptions(0, 4)), heteroq::InvalidArgument);
  EXPECT_THROW(QGRU(QGRUOptions(3, 0)), heteroq::InvalidArgument);
  EXPECT_THROW(QSimpleRNN(QSimpleRNNOptions(3, 4).num_layers(0)), heteroq::InvalidArgument);
  EXPECT_THROW(QLSTM(QLSTMOptions(3, 4).dropout(1.5)), heteroq::InvalidArgument);
  // Weight slots must hold negative values.
  EXPECT_THROW(QLSTM(QLSTMOptions(3, 4).kernel_quantizer("quantized_relu(4,0)")),
               heteroq::InvalidArgument);
  EXPECT_THROW(QGRU(QGRUOptions(3, 4).recurrent_quantizer("quantized_bits(4,0,keep_negative=0)")),
               heteroq::InvalidArgument);
  EXPECT_THROW(QSimpleRNN(QSimpleRNNOptions(3, 4).bias_quantizer("quantized_sigmoid(4)")),
               heteroq::InvalidArgument);
  // An unknown activation name.
  EXPECT_THROW(QLSTM(QLSTMOptions(3, 4).activation("tanhh")), heteroq::SpecError);
  try {
    heteroq::nn::RNNActivation a("hard_tanh");
    FAIL();
  } catch (const heteroq::SpecError& e) {
    EXPECT_NE(std::string(e.what()).find("neither a float activation"), std::string::npos);
  }

  QLSTM m(QLSTMOptions(3, 4).num_layers(2));
  EXPECT_THROW(m(torch::randn({5, 2, 4})), c10::ValueError);      // feature size
  EXPECT_THROW(m(torch::randn({5, 2, 3, 1})), c10::ValueError);   // rank
  EXPECT_THROW(m(torch::randn({0, 2, 3})), c10::ValueError);      // empty sequence
  EXPECT_THROW(m(torch::ones({5, 2, 3}, torch::kLong)), c10::TypeError);
  EXPECT_THROW(m(torch::randn({5, 2, 3}, torch::kDouble)), c10::TypeError);
  EXPECT_THROW(m(torch::randn({5, 2, 3}), std::make_tuple(torch::zeros({2, 3, 4}),
                                                           torch::zeros({2, 2, 4}))),
               c10::ValueError);  // h_0 batch
  EXPECT_THROW(m(torch::randn({5, 2, 3}), std::make_tuple(torch::zeros({2, 2, 4}),
                                                           torch::zeros({1, 2, 4}))),
               c10::ValueError);  // c_0 layers
  EXPECT_THROW(m(torch::randn({5, 3}), std::make_tuple(torch::zeros({2, 1, 4}),
                                                        torch::zeros({2, 1, 4}))),
               c10::ValueError);  // unbatched input, batched state
  EXPECT_THROW(m(torch::randn({5, 2, 3}), std::make_tuple(torch::zeros({2, 2, 4}), torch::Tensor())),
               c10::ValueError);
  QGRU g(QGRUOptions(3, 4));
  try {
    g(torch::randn({5, 2, 3}), torch::zeros({1, 2, 5}));
    FAIL();
  } catch (const c10::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("QGRU: for batched 3-D input, expected `hx` of shape "
                                         "(num_layers * num_directions, N, hidden_size) = (1, 2, 4)"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace

namespace {

// docs/layers.md, section "Recurrent layers": the C++ example, verbatim.
TEST(QRNN, DocsExample) {
  using namespace heteroq::nn;
  QLSTM lstm(QLSTMOptions(8, 16).num_layers(2).batch_first(true)
                 .kernel_quantizer("quantized_bits(8,0,alpha=1)")
                 .recurrent_quantizer("quantized_bits(8,0,alpha=1)")
                 .bias_quantizer("quantized_bits(8,2,alpha=1)")
                 .state_quantizer("quantized_bits(8,2,alpha=1)"));
  auto [output, state] = lstm(torch::randn({4, 10, 8}));  // (4, 10, 16), (h_n, c_n)
  QDense head(QLinearOptions(16, 3).kernel_quantizer("quantized_bits(8,1,alpha=1)"));
  torch::Tensor logits = head(std::get<0>(state)[-1]);     // (4, 3)

  QGRU gru(QGRUOptions(8, 16).bidirectional(true).reset_after(false)
               .kernel_quantizer("quantized_bits(6,0,alpha=1)")
               .activation(nullptr).recurrent_activation("hard_sigmoid"));  // float tanh gates
  auto [gru_output, h_n] = gru(torch::randn({10, 8}));    // (10, 32), (2, 16)

  EXPECT_EQ(output.sizes(), torch::IntArrayRef({4, 10, 16}));
  EXPECT_EQ(std::get<1>(state).sizes(), torch::IntArrayRef({2, 4, 16}));
  EXPECT_EQ(logits.sizes(), torch::IntArrayRef({4, 3}));
  EXPECT_EQ(gru_output.sizes(), torch::IntArrayRef({10, 32}));
  EXPECT_EQ(h_n.sizes(), torch::IntArrayRef({2, 16}));
}

}  // namespace
