// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Quantized recurrent layers (QKeras QSimpleRNN, QLSTM, QGRU, and QBidirectional through
// `bidirectional`) with PyTorch's arguments, parameter names, shapes and forward signature.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/common.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/pimpl.h>
#include <torch/ordered_dict.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <tuple>
#include <vector>

#include "heteroq/export.h"
#include "heteroq/nn/layers.h"

namespace heteroq::ops {

/// The recurrent layers' arithmetic, registered once as operators (src/nn/rnn.cpp) so that the
/// C++ modules and the Python modules compute the same thing; each entry point calls its operator
/// through the dispatcher.
///
/// `heteroq::hard_sigmoid(Tensor x)`: QKeras's hard_sigmoid `clip(0.5 x + 0.5, 0, 1)` (QKeras's
/// default recurrent activation); gradient 0.5 on [-1, 1], 0 outside.
HETEROQ_API at::Tensor hard_sigmoid(const at::Tensor& x);

/// `heteroq::_rnn_activation(Tensor x, str function)`: a float activation of the recurrent layers
/// by name: "tanh", "sigmoid", "hard_sigmoid", "relu" or "linear" (identity).
HETEROQ_API at::Tensor _rnn_activation(const at::Tensor& x, const std::string& function);

/// `heteroq::_rnn_input(Tensor input, Tensor weight_ih, bool batch_first, str layer)`: checks a
/// recurrent layer's input against its first input kernel (H_in = weight_ih.size(1), same dtype
/// and device): (L, H_in), or (L, N, H_in), (N, L, H_in) with batch_first, L > 0; returns it as
/// (L, N, H_in) (N = 1 for unbatched input). `layer` names the layer in errors.
HETEROQ_API at::Tensor _rnn_input(const at::Tensor& input, const at::Tensor& weight_ih,
                                  bool batch_first, const std::string& layer);

/// `heteroq::_rnn_state(Tensor? state, Tensor input, int num_states, int hidden_size,
/// bool batch_first, str layer, str name)`: checks an initial state against the (raw) input,
/// (num_states, N, hidden_size) for batched input, (num_states, hidden_size) for unbatched input,
/// and returns it as (num_states, N, hidden_size); zeros when absent. `name` ("hx", "c_0") names
/// it in errors.
HETEROQ_API at::Tensor _rnn_state(const std::optional<at::Tensor>& state, const at::Tensor& input,
                                  int64_t num_states, int64_t hidden_size, bool batch_first,
                                  const std::string& layer, const std::string& name);

/// `heteroq::_rnn_gates(Tensor x_gates, Tensor h, Tensor w_hh, Tensor? b_hh, int num_gates)`: the
/// gates' pre-activations of one time step, `x_gates + h w_hh^T + b_hh` (x_gates: the input's
/// projection with its bias), split into `num_gates` chunks along the last axis.
HETEROQ_API std::vector<at::Tensor> _rnn_gates(const at::Tensor& x_gates, const at::Tensor& h,
                                               const at::Tensor& w_hh,
                                               const std::optional<at::Tensor>& b_hh,
                                               int64_t num_gates);

/// `heteroq::_lstm_carry(Tensor i, Tensor f, Tensor g, Tensor c)`: the LSTM's new carry
/// `f c + i g`.
HETEROQ_API at::Tensor _lstm_carry(const at::Tensor& i, const at::Tensor& f, const at::Tensor& g,
                                   const at::Tensor& c);

/// `heteroq::_gru_gates(Tensor x_gates, Tensor h, Tensor w_hh, Tensor? b_hh)`: the GRU's reset
/// and update pre-activations [r, z] (PyTorch's gate order r, z, n) from the first 2 hidden_size
/// rows of the recurrent kernel and bias.
HETEROQ_API std::vector<at::Tensor> _gru_gates(const at::Tensor& x_gates, const at::Tensor& h,
                                               const at::Tensor& w_hh,
                                               const std::optional<at::Tensor>& b_hh);

/// `heteroq::_gru_candidate(Tensor x_gates, Tensor r, Tensor h, Tensor w_hh, Tensor? b_hh,
/// bool reset_after)`: the GRU candidate's pre-activation, with x_n, W_hn, b_hn the last
/// hidden_size rows: `x_n + r (h W_hn^T + b_hn)` (reset_after, PyTorch's formulation), else
/// `x_n + (r h) W_hn^T + b_hn` (Keras's reset_after=False).
HETEROQ_API at::Tensor _gru_candidate(const at::Tensor& x_gates, const at::Tensor& r,
                                      const at::Tensor& h, const at::Tensor& w_hh,
                                      const std::optional<at::Tensor>& b_hh, bool reset_after);

/// `heteroq::_gru_update(Tensor z, Tensor n, Tensor h)`: the GRU's new state `(1 - z) n + z h`.
HETEROQ_API at::Tensor _gru_update(const at::Tensor& z, const at::Tensor& n, const at::Tensor& h);

/// `heteroq::_rnn_output(Tensor output, Tensor h_n, bool return_sequences)`: what a recurrent
/// layer passes on: its output sequence (return_sequences), or its last layer's final states with
/// the directions side by side, (N, D H) or (D H) unbatched (Keras's return_sequences=False).
HETEROQ_API at::Tensor _rnn_output(const at::Tensor& output, const at::Tensor& h_n, bool return_sequences);

}  // namespace heteroq::ops

namespace heteroq::nn {

/**
 * An activation slot of the recurrent layers: a quantizer (object or QKeras spec string, e.g.
 * "quantized_tanh(8)"), a float function by name ("tanh", "sigmoid", "hard_sigmoid", "relu",
 * "linear"), or empty (nullptr / default-constructed): the float function PyTorch uses there, tanh
 * for `activation` and sigmoid for `recurrent_activation`.
 */
class HETEROQ_API RNNActivation {
 public:
  RNNActivation() = default;
  RNNActivation(std::nullptr_t) {}                    // NOLINT(runtime/explicit)
  RNNActivation(QuantizerPtr q) : q_(std::move(q)) {}  // NOLINT(runtime/explicit)
  RNNActivation(const QuantizerArg& q) : q_(q.get()) {}  // NOLINT(runtime/explicit)
  /// A float function's name, or a quantizer spec.
  /// @throws heteroq::SpecError / heteroq::InvalidArgument for a bad spec.
  RNNActivation(const std::string& spec);  // NOLINT(runtime/explicit)
  RNNActivation(const char* spec);         // NOLINT(runtime/explicit)

  /// The quantizer (null for a float function or an empty slot).
  const QuantizerPtr& quantizer() const { return q_; }
  /// The float function's name ("" for a quantizer or an empty slot).
  const std::string& function() const { return function_; }
  bool empty() const { return !q_ && function_.empty(); }

 private:
  QuantizerPtr q_;
  std::string function_;
};

/// The float activation names RNNActivation accepts.
HETEROQ_API const std::vector<std::string>& rnn_float_activations();

/// Options of QSimpleRNN: torch::nn::RNNOptions's names (without nonlinearity: a float relu is
/// `activation("relu")`) and QKeras's quantizer slots.
struct HETEROQ_API QSimpleRNNOptions {
  QSimpleRNNOptions(int64_t input_size, int64_t hidden_size)
      : input_size_(input_size), hidden_size_(hidden_size) {}
  TORCH_ARG(int64_t, input_size);
  TORCH_ARG(int64_t, hidden_size);
  TORCH_ARG(int64_t, num_layers) = 1;
  TORCH_ARG(bool, bias) = true;
  /// Input and output as (N, L, features) instead of (L, N, features) (the states are not).
  TORCH_ARG(bool, batch_first) = false;
  /// Dropout on the outputs of every layer but the last, in training (PyTorch's).
  TORCH_ARG(double, dropout) = 0.0;
  /// QKeras QBidirectional (merge_mode "concat"): a second, reversed pass per layer.
  TORCH_ARG(bool, bidirectional) = false;
  /// Quantizer of the input weights weight_ih (QKeras: kernel).
  TORCH_ARG(QuantizerArg, kernel_quantizer);
  /// Quantizer of the recurrent weights weight_hh (QKeras: recurrent_kernel).
  TORCH_ARG(QuantizerArg, recurrent_quantizer);
  /// Quantizer of bias_ih and bias_hh (each on its own).
  TORCH_ARG(QuantizerArg, bias_quantizer);
  /// Quantizer of the previous state h at every step (QKeras).
  TORCH_ARG(QuantizerArg, state_quantizer);
  /// QKeras's default "quantized_tanh" (8 bits); empty or "tanh": float tanh.
  TORCH_ARG(RNNActivation, activation) = "quantized_tanh";
};

/// Options of QLSTM: torch::nn::LSTMOptions's names (without proj_size) and QKeras's slots.
struct HETEROQ_API QLSTMOptions {
  QLSTMOptions(int64_t input_size, int64_t hidden_size)
      : input_size_(input_size), hidden_size_(hidden_size) {}
  TORCH_ARG(int64_t, input_size);
  TORCH_ARG(int64_t, hidden_size);
  TORCH_ARG(int64_t, num_layers) = 1;
  TORCH_ARG(bool, bias) = true;
  TORCH_ARG(bool, batch_first) = false;
  TORCH_ARG(double, dropout) = 0.0;
  TORCH_ARG(bool, bidirectional) = false;
  TORCH_ARG(QuantizerArg, kernel_quantizer);
  TORCH_ARG(QuantizerArg, recurrent_quantizer);
  TORCH_ARG(QuantizerArg, bias_quantizer);
  /// Quantizer of the previous h and c at every step (QKeras).
  TORCH_ARG(QuantizerArg, state_quantizer);
  /// Of the candidate g and of the carry in h = o act(c): QKeras's default "quantized_tanh".
  TORCH_ARG(RNNActivation, activation) = "quantized_tanh";
  /// Of the gates i, f, o: QKeras's default "hard_sigmoid"; empty or "sigmoid": float sigmoid.
  TORCH_ARG(RNNActivation, recurrent_activation) = "hard_sigmoid";
  /// Keras's unit_forget_bias (QKeras always sets it): reset_parameters() sets the forget gate's
  /// slice of bias_ih to 1 and of bias_hh to 0 (the other parameters keep PyTorch's init).
  TORCH_ARG(bool, unit_forget_bias) = true;
};

/// Options of QGRU: torch::nn::GRUOptions's names, QKeras's slots and Keras's reset_after.
struct HETEROQ_API QGRUOptions {
  QGRUOptions(int64_t input_size, int64_t hidden_size)
      : input_size_(input_size), hidden_size_(hidden_size) {}
  TORCH_ARG(int64_t, input_size);
  TORCH_ARG(int64_t, hidden_size);
  TORCH_ARG(int64_t, num_layers) = 1;
  TORCH_ARG(bool, bias) = true;
  TORCH_ARG(bool, batch_first) = false;
  TORCH_ARG(double, dropout) = 0.0;
  TORCH_ARG(bool, bidirectional) = false;
  TORCH_ARG(QuantizerArg, kernel_quantizer);
  /// Always applied to the recurrent kernel (QKeras quantizes the input kernel there when no
  /// recurrent quantizer is given, a bug; see google/qkeras PR #89).
  TORCH_ARG(QuantizerArg, recurrent_quantizer);
  TORCH_ARG(QuantizerArg, bias_quantizer);
  TORCH_ARG(QuantizerArg, state_quantizer);
  TORCH_ARG(RNNActivation, activation) = "quantized_tanh";
  TORCH_ARG(RNNActivation, recurrent_activation) = "hard_sigmoid";
  /// true (PyTorch's formulation): n = act(x_n + r (h W_hn^T + b_hn)); false (Keras's and QKeras's
  /// default): n = act(x_n + (r h) W_hn^T + b_hn).
  TORCH_ARG(bool, reset_after) = true;
};

/**
 * What QSimpleRNN, QLSTM and QGRU share: PyTorch's parameters (weight_ih_l{k}, weight_hh_l{k},
 * bias_ih_l{k}, bias_hh_l{k}, with the suffix "_reverse" for the reversed direction; shapes
 * (G H, in), (G H, H), (G H) with G = 1, 4 (i, f, g, o), 3 (r, z, n)) and initialisation
 * (uniform(-1/sqrt(H), 1/sqrt(H)), in PyTorch's order, so the same seed gives torch::nn::LSTM's
 * values), the layer loop and the quantizers. The weights are quantized once per forward call.
 */
template <typename Options, typename Derived>
class HETEROQ_API QRNNImplBase : public torch::nn::Cloneable<Derived> {
 public:
  explicit QRNNImplBase(Options options);
  void reset() override;
  void reset_parameters();
  void pretty_print(std::ostream& stream) const override;
  /// The parameters in PyTorch's order (weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, ...).
  std::vector<torch::Tensor> all_weights() const;
  /// The weights and biases as the forward pass uses them (quantized), by parameter name.
  torch::OrderedDict<std::string, torch::Tensor> quantized_parameters() const;

  Options options;

 protected:
  /// Runs every layer and direction: (output (L, N, D H), h_n, c_n (LSTM; else undefined)), in the
  /// layout of the raw input (batch_first, unbatched).
  std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> run(
      const torch::Tensor& input, const std::optional<torch::Tensor>& hx,
      const std::optional<torch::Tensor>& cx);

  std::vector<std::string> flat_weights_names_;
  std::vector<torch::Tensor> flat_weights_;
};

/**
 * QKeras QSimpleRNN (an Elman RNN) in PyTorch's layout:
 * `h_t = act(x_t Qk(W_ih)^T + Qb(b_ih) + Qs(h_{t-1}) Qr(W_hh)^T + Qb(b_hh))`.
 *
 * Example:
 *   heteroq::nn::QSimpleRNN rnn(heteroq::nn::QSimpleRNNOptions(8, 16)
 *                                   .kernel_quantizer("quantized_bits(6,0,alpha=1)")
 *                                   .recurrent_quantizer("quantized_bits(6,0,alpha=1)"));
 *   auto [output, h_n] = rnn(torch::randn({5, 3, 8}));   // (5, 3, 16), (1, 3, 16)
 */
class HETEROQ_API QSimpleRNNImpl : public QRNNImplBase<QSimpleRNNOptions, QSimpleRNNImpl> {
 public:
  QSimpleRNNImpl(int64_t input_size, int64_t hidden_size)
      : QSimpleRNNImpl(QSimpleRNNOptions(input_size, hidden_size)) {}
  explicit QSimpleRNNImpl(const QSimpleRNNOptions& options);
  /// (output, h_n) as torch::nn::RNN; hx (num_layers * num_directions, N, H), zeros if undefined.
  std::tuple<torch::Tensor, torch::Tensor> forward(const torch::Tensor& input,
                                                   torch::Tensor hx = {});

 protected:
  FORWARD_HAS_DEFAULT_ARGS({1, torch::nn::AnyValue(torch::Tensor())})
};
TORCH_MODULE(QSimpleRNN);

/**
 * QKeras QLSTM in PyTorch's layout (gates i, f, g, o; Keras's i, f, c, o):
 *   i, f, o = ract(.), g = act(.) of x_t Qk(W_ih)^T + Qb(b_ih) + Qs(h) Qr(W_hh)^T + Qb(b_hh)
 *   c_t = f Qs(c_{t-1}) + i g,   h_t = o act(c_t)
 *
 * Example:
 *   heteroq::nn::QLSTM lstm(heteroq::nn::QLSTMOptions(8, 16).batch_first(true)
 *                               .kernel_quantizer("quantized_bits(8,0,alpha=1)")
 *                               .recurrent_quantizer("quantized_bits(8,0,alpha=1)"));
 *   auto [output, state] = lstm(torch::randn({3, 5, 8}));   // (3, 5, 16), (h_n, c_n)
 */
class HETEROQ_API QLSTMImpl : public QRNNImplBase<QLSTMOptions, QLSTMImpl> {
 public:
  QLSTMImpl(int64_t input_size, int64_t hidden_size)
      : QLSTMImpl(QLSTMOptions(input_size, hidden_size)) {}
  explicit QLSTMImpl(const QLSTMOptions& options);
  /// (output, (h_n, c_n)) as torch::nn::LSTM.
  std::tuple<torch::Tensor, std::tuple<torch::Tensor, torch::Tensor>> forward(
      const torch::Tensor& input,
      torch::optional<std::tuple<torch::Tensor, torch::Tensor>> hx_opt = {});

 protected:
  FORWARD_HAS_DEFAULT_ARGS(
      {1, torch::nn::AnyValue(torch::optional<std::tuple<torch::Tensor, torch::Tensor>>())})
};
TORCH_MODULE(QLSTM);

/**
 * QKeras QGRU in PyTorch's layout and gate order (r, z, n; Keras's z, r, h):
 *   r, z = ract(.) of x_t Qk(W_ih)^T + Qb(b_ih) + Qs(h) Qr(W_hh)^T + Qb(b_hh)
 *   n = act(x_n + r (Qs(h) W_hn^T + b_hn))      (reset_after, default; PyTorch's formulation)
 *   n = act(x_n + (r Qs(h)) W_hn^T + b_hn)      (reset_after = false; Keras's)
 *   h_t = (1 - z) n + z Qs(h_{t-1})
 */
class HETEROQ_API QGRUImpl : public QRNNImplBase<QGRUOptions, QGRUImpl> {
 public:
  QGRUImpl(int64_t input_size, int64_t hidden_size)
      : QGRUImpl(QGRUOptions(input_size, hidden_size)) {}
  explicit QGRUImpl(const QGRUOptions& options);
  /// (output, h_n) as torch::nn::GRU.
  std::tuple<torch::Tensor, torch::Tensor> forward(const torch::Tensor& input,
                                                   torch::Tensor hx = {});

 protected:
  FORWARD_HAS_DEFAULT_ARGS({1, torch::nn::AnyValue(torch::Tensor())})
};
TORCH_MODULE(QGRU);

/**
 * What a recurrent layer passes on (Keras's return_sequences): forward(output, h_n) gives the
 * output sequence, or the last layer's final states (directions side by side; for an LSTM, h_n is
 * the first of its state tuple). heteroq::deploy::compile reads it after a recurrent layer.
 *
 * Example:
 *   auto [output, h_n] = gru(x);
 *   auto last = heteroq::nn::RecurrentOutput(false)(output, h_n);   // (N, D H)
 */
class HETEROQ_API RecurrentOutputImpl : public torch::nn::Cloneable<RecurrentOutputImpl> {
 public:
  explicit RecurrentOutputImpl(bool return_sequences = false);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& output, const torch::Tensor& h_n);
  void pretty_print(std::ostream& stream) const override;

  bool return_sequences = false;
};
TORCH_MODULE(RecurrentOutput);

}  // namespace heteroq::nn

