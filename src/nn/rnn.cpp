// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Quantized recurrent layers (QKeras QSimpleRNN, QLSTM, QGRU) and their arithmetic. The cell
// arithmetic is registered once as operators (CompositeImplicitAutograd: compositions of
// differentiable ATen ops) that the C++ modules below and the Python modules
// (python/heteroq/_rnn.py) both call, so the two languages compute the same thing bit for bit.
#include "heteroq/nn/rnn.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "heteroq/errors.h"

namespace heteroq::ops {

namespace detail {
namespace {

c10::optional<at::Tensor> to_c10(const std::optional<at::Tensor>& t) {
  return t ? c10::optional<at::Tensor>(*t) : c10::nullopt;
}

bool has(const c10::optional<at::Tensor>& t) { return t.has_value() && t->defined(); }

// QKeras's hard_sigmoid: clip(0.5 x + 0.5, 0, 1) (clip's gradient: 1 on the closed interval).
at::Tensor hard_sigmoid_composite(const at::Tensor& x) {
  return at::clamp(x * 0.5 + 0.5, 0.0, 1.0);
}

at::Tensor rnn_activation_composite(const at::Tensor& x, c10::string_view function) {
  if (function == "tanh") return at::tanh(x);
  if (function == "sigmoid") return at::sigmoid(x);
  if (function == "hard_sigmoid") return hard_sigmoid_composite(x);
  if (function == "relu") return at::relu(x);
  TORCH_CHECK_VALUE(function == "linear", "recurrent layer: unknown float activation '",
                    function, "' (expected tanh, sigmoid, hard_sigmoid, relu or linear)");
  return x.clone();
}

at::Tensor rnn_input_composite(const at::Tensor& input, const at::Tensor& weight_ih,
                               bool batch_first, c10::string_view layer) {
  TORCH_CHECK_VALUE(input.defined(), layer, ": the input is undefined");
  TORCH_CHECK_TYPE(input.is_floating_point(), layer, ": expected a floating-point input, got ",
                   input.scalar_type());
  const int64_t input_size = weight_ih.size(1);
  TORCH_CHECK_VALUE((input.dim() == 2 || input.dim() == 3) && input.size(-1) == input_size,
                    layer, ": expected input of shape (L, ", input_size, ") or ",
                    batch_first ? "(N, L, " : "(L, N, ", input_size, "), got shape ",
                    input.sizes());
  TORCH_CHECK_VALUE(input.size(input.dim() == 3 && batch_first ? 1 : 0) > 0, layer,
                    ": the sequence is empty (input shape ", input.sizes(), ")");
  TORCH_CHECK_TYPE(input.scalar_type() == weight_ih.scalar_type(), layer, ": the input has dtype ",
                   input.scalar_type(), " but the layer's parameters have ",
                   weight_ih.scalar_type());
  TORCH_CHECK_VALUE(input.device() == weight_ih.device(), layer, ": the input is on ",
                    input.device(), " but the layer's parameters are on ", weight_ih.device());
  if (input.dim() == 2) return input.unsqueeze(1);
  return batch_first ? input.transpose(0, 1) : input;
}

at::Tensor rnn_state_composite(const c10::optional<at::Tensor>& state, const at::Tensor& input,
                               int64_t num_states, int64_t hidden_size, bool batch_first,
                               c10::string_view layer, c10::string_view name) {
  TORCH_CHECK_VALUE(input.defined() && (input.dim() == 2 || input.dim() == 3), layer,
                    ": expected a 2-D or 3-D input");
  const bool batched = input.dim() == 3;
  const int64_t n = batched ? input.size(batch_first ? 0 : 1) : 1;
  if (!has(state)) return at::zeros({num_states, n, hidden_size}, input.options());
  const at::Tensor& s = *state;
  TORCH_CHECK_TYPE(s.scalar_type() == input.scalar_type(), layer, ": `", name, "` has dtype ",
                   s.scalar_type(), " but the input has ", input.scalar_type());
  TORCH_CHECK_VALUE(s.device() == input.device(), layer, ": `", name, "` is on ", s.device(),
                    " but the input is on ", input.device());
  if (batched) {
    TORCH_CHECK_VALUE(s.dim() == 3 && s.size(0) == num_states && s.size(1) == n &&
                          s.size(2) == hidden_size,
                      layer, ": for batched 3-D input, expected `", name,
                      "` of shape (num_layers * num_directions, N, hidden_size) = (", num_states,
                      ", ", n, ", ", hidden_size, "), got ", s.sizes());
    return s;
  }
  TORCH_CHECK_VALUE(s.dim() == 2 && s.size(0) == num_states && s.size(1) == hidden_size, layer,
                    ": for unbatched 2-D input, expected `", name,
                    "` of shape (num_layers * num_directions, hidden_size) = (", num_states, ", ",
                    hidden_size, "), got ", s.sizes());
  return s.unsqueeze(1);
}

std::vector<at::Tensor> rnn_gates_composite(const at::Tensor& x_gates, const at::Tensor& h,
                                            const at::Tensor& w_hh,
                                            const c10::optional<at::Tensor>& b_hh,
                                            int64_t num_gates) {
  TORCH_CHECK_VALUE(num_gates >= 1 && x_gates.size(-1) == w_hh.size(0) &&
                        w_hh.size(0) % num_gates == 0,
                    "_rnn_gates: ", w_hh.size(0), " recurrent rows, ", x_gates.size(-1),
                    " input-gate columns and ", num_gates, " gates do not match");
  return (x_gates + at::linear(h, w_hh, b_hh)).chunk(num_gates, -1);
}

at::Tensor lstm_carry_composite(const at::Tensor& i, const at::Tensor& f, const at::Tensor& g,
                                const at::Tensor& c) {
  return f * c + i * g;
}

int64_t gru_hidden(const at::Tensor& x_gates, const at::Tensor& w_hh) {
  TORCH_CHECK_VALUE(w_hh.dim() == 2 && w_hh.size(0) % 3 == 0 && x_gates.size(-1) == w_hh.size(0),
                    "GRU: the recurrent kernel has shape ", w_hh.sizes(),
                    ", expected (3 hidden_size, hidden_size) matching the input gates' ",
                    x_gates.size(-1), " columns");
  return w_hh.size(0) / 3;
}

c10::optional<at::Tensor> rows(const c10::optional<at::Tensor>& b, int64_t start, int64_t n) {
  return has(b) ? c10::optional<at::Tensor>(b->narrow(0, start, n)) : c10::nullopt;
}

std::vector<at::Tensor> gru_gates_composite(const at::Tensor& x_gates, const at::Tensor& h,
                                            const at::Tensor& w_hh,
                                            const c10::optional<at::Tensor>& b_hh) {
  const int64_t hs = gru_hidden(x_gates, w_hh);
  return (x_gates.narrow(-1, 0, 2 * hs) +
          at::linear(h, w_hh.narrow(0, 0, 2 * hs), rows(b_hh, 0, 2 * hs)))
      .chunk(2, -1);
}

at::Tensor gru_candidate_composite(const at::Tensor& x_gates, const at::Tensor& r,
                                   const at::Tensor& h, const at::Tensor& w_hh,
                                   const c10::optional<at::Tensor>& b_hh, bool reset_after) {
  const int64_t hs = gru_hidden(x_gates, w_hh);
  const at::Tensor x_n = x_gates.narrow(-1, 2 * hs, hs);
  const at::Tensor w_hn = w_hh.narrow(0, 2 * hs, hs);
  if (reset_after) return x_n + r * at::linear(h, w_hn, rows(b_hh, 2 * hs, hs));
  return x_n + at::linear(r * h, w_hn, rows(b_hh, 2 * hs, hs));
}

at::Tensor gru_update_composite(const at::Tensor& z, const at::Tensor& n, const at::Tensor& h) {
  return (1 - z) * n + z * h;
}

at::Tensor rnn_output_composite(const at::Tensor& output, const at::Tensor& h_n, bool return_sequences) {
  TORCH_CHECK_VALUE(output.defined() && h_n.defined(), "RecurrentOutput: undefined output or h_n");
  if (return_sequences) return output;
  TORCH_CHECK_VALUE((h_n.dim() == 3 || h_n.dim() == 2) && h_n.size(-1) > 0 &&
                        output.size(-1) % h_n.size(-1) == 0,
                    "RecurrentOutput: expected a recurrent layer's (output, h_n), got shapes ",
                    output.sizes(), " and ", h_n.sizes());
  const int64_t d = output.size(-1) / h_n.size(-1);  // the directions
  TORCH_CHECK_VALUE((d == 1 || d == 2) && h_n.size(0) >= d, "RecurrentOutput: output's ",
                    output.size(-1), " features are not 1 or 2 directions of h_n's ",
                    h_n.size(-1), " (shapes ", output.sizes(), " and ", h_n.sizes(), ")");
  // the last layer's final states, the directions side by side (Keras's return_sequences=False)
  const at::Tensor last = h_n.narrow(0, h_n.size(0) - d, d);
  if (h_n.dim() == 2) return last.reshape({d * h_n.size(-1)});
  return last.permute({1, 0, 2}).reshape({h_n.size(1), d * h_n.size(-1)});
}

}  // namespace
}  // namespace detail

at::Tensor hard_sigmoid(const at::Tensor& x) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::hard_sigmoid", "")
                       .typed<at::Tensor(const at::Tensor&)>();
  return op.call(x);
}

at::Tensor _rnn_activation(const at::Tensor& x, const std::string& function) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::_rnn_activation", "")
                       .typed<at::Tensor(const at::Tensor&, c10::string_view)>();
  return op.call(x, function);
}

at::Tensor _rnn_input(const at::Tensor& input, const at::Tensor& weight_ih, bool batch_first,
                      const std::string& layer) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::_rnn_input", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, bool,
                                         c10::string_view)>();
  return op.call(input, weight_ih, batch_first, layer);
}

at::Tensor _rnn_state(const std::optional<at::Tensor>& state, const at::Tensor& input,
                      int64_t num_states, int64_t hidden_size, bool batch_first,
                      const std::string& layer, const std::string& name) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::_rnn_state", "")
                       .typed<at::Tensor(const c10::optional<at::Tensor>&, const at::Tensor&,
                                         int64_t, int64_t, bool, c10::string_view,
                                         c10::string_view)>();
  return op.call(detail::to_c10(state), input, num_states, hidden_size, batch_first, layer, name);
}

std::vector<at::Tensor> _rnn_gates(const at::Tensor& x_gates, const at::Tensor& h,
                                   const at::Tensor& w_hh, const std::optional<at::Tensor>& b_hh,
                                   int64_t num_gates) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::_rnn_gates", "")
                       .typed<std::vector<at::Tensor>(const at::Tensor&, const at::Tensor&,
                                                      const at::Tensor&,
                                                      const c10::optional<at::Tensor>&,
                                                      int64_t)>();
  return op.call(x_gates, h, w_hh, detail::to_c10(b_hh), num_gates);
}

at::Tensor _lstm_carry(const at::Tensor& i, const at::Tensor& f, const at::Tensor& g,
                       const at::Tensor& c) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::_lstm_carry", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                         const at::Tensor&)>();
  return op.call(i, f, g, c);
}

std::vector<at::Tensor> _gru_gates(const at::Tensor& x_gates, const at::Tensor& h,
                                   const at::Tensor& w_hh, const std::optional<at::Tensor>& b_hh) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::_gru_gates", "")
                       .typed<std::vector<at::Tensor>(const at::Tensor&, const at::Tensor&,
                                                      const at::Tensor&,
                                                      const c10::optional<at::Tensor>&)>();
  return op.call(x_gates, h, w_hh, detail::to_c10(b_hh));
}

at::Tensor _gru_candidate(const at::Tensor& x_gates, const at::Tensor& r, const at::Tensor& h,
                          const at::Tensor& w_hh, const std::optional<at::Tensor>& b_hh,
                          bool reset_after) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::_gru_candidate", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                         const at::Tensor&, const c10::optional<at::Tensor>&,
                                         bool)>();
  return op.call(x_gates, r, h, w_hh, detail::to_c10(b_hh), reset_after);
}

at::Tensor _gru_update(const at::Tensor& z, const at::Tensor& n, const at::Tensor& h) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::_gru_update", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&,
                                         const at::Tensor&)>();
  return op.call(z, n, h);
}

at::Tensor _rnn_output(const at::Tensor& output, const at::Tensor& h_n, bool return_sequences) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::_rnn_output", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, bool)>();
  return op.call(output, h_n, return_sequences);
}

}  // namespace heteroq::ops

TORCH_LIBRARY_FRAGMENT(heteroq, m) {
  m.def("_rnn_output(Tensor output, Tensor h_n, bool return_sequences) -> Tensor");
  m.def("hard_sigmoid(Tensor x) -> Tensor");
  m.def("_rnn_activation(Tensor x, str function) -> Tensor");
  m.def("_rnn_input(Tensor input, Tensor weight_ih, bool batch_first, str layer) -> Tensor");
  m.def("_rnn_state(Tensor? state, Tensor input, int num_states, int hidden_size, "
        "bool batch_first, str layer, str name) -> Tensor");
  m.def("_rnn_gates(Tensor x_gates, Tensor h, Tensor w_hh, Tensor? b_hh, int num_gates) "
        "-> Tensor[]");
  m.def("_lstm_carry(Tensor i, Tensor f, Tensor g, Tensor c) -> Tensor");
  m.def("_gru_gates(Tensor x_gates, Tensor h, Tensor w_hh, Tensor? b_hh) -> Tensor[]");
  m.def("_gru_candidate(Tensor x_gates, Tensor r, Tensor h, Tensor w_hh, Tensor? b_hh, "
        "bool reset_after) -> Tensor");
  m.def("_gru_update(Tensor z, Tensor n, Tensor h) -> Tensor");
}

TORCH_LIBRARY_IMPL(heteroq, CompositeImplicitAutograd, m) {
  using namespace heteroq::ops::detail;  // NOLINT(build/namespaces)
  m.impl("hard_sigmoid", &hard_sigmoid_composite);
  m.impl("_rnn_activation", &rnn_activation_composite);
  m.impl("_rnn_input", &rnn_input_composite);
  m.impl("_rnn_state", &rnn_state_composite);
  m.impl("_rnn_gates", &rnn_gates_composite);
  m.impl("_lstm_carry", &lstm_carry_composite);
  m.impl("_gru_gates", &gru_gates_composite);
  m.impl("_gru_candidate", &gru_candidate_composite);
  m.impl("_gru_update", &gru_update_composite);
  m.impl("_rnn_output", &rnn_output_composite);
}

namespace heteroq::nn {

const std::vector<std::string>& rnn_float_activations() {
  static const std::vector<std::string> names = {"tanh", "sigmoid", "hard_sigmoid", "relu",
                                                 "linear"};
  return names;
}

RNNActivation::RNNActivation(const std::string& spec) {
  const auto& names = rnn_float_activations();
  if (std::find(names.begin(), names.end(), spec) != names.end()) {
    function_ = spec;
    return;
  }
  try {
    q_ = get_quantizer(spec);
  } catch (const SpecError& e) {
    throw SpecError("recurrent activation '" + spec +
                    "' is neither a float activation (tanh, sigmoid, hard_sigmoid, relu, linear) "
                    "nor a quantizer spec: " + e.what());
  }
}

RNNActivation::RNNActivation(const char* spec) : RNNActivation(std::string(spec ? spec : "")) {}

namespace {

// What differs between the three layers.
struct Cell {
  const char* layer;
  int64_t gates;
  const RNNActivation* recurrent_activation;  // null for QSimpleRNN
  bool unit_forget_bias = false;
  bool reset_after = true;
};

Cell cell_of(const QSimpleRNNOptions&) { return {"QSimpleRNN", 1, nullptr}; }
Cell cell_of(const QLSTMOptions& o) {
  return {"QLSTM", 4, &o.recurrent_activation(), o.unit_forget_bias()};
}
Cell cell_of(const QGRUOptions& o) {
  return {"QGRU", 3, &o.recurrent_activation(), false, o.reset_after()};
}

torch::Tensor quantize(const QuantizerArg& q, const torch::Tensor& t, bool training) {
  if (!q || !t.defined()) return t;
  return training ? q.get()->forward_train(t) : q.get()->forward(t);
}

torch::Tensor activate(const RNNActivation& a, const torch::Tensor& x, bool training,
                       const char* fallback) {
  if (const auto& q = a.quantizer()) return training ? q->forward_train(x) : q->forward(x);
  return ops::_rnn_activation(x, a.function().empty() ? std::string(fallback) : a.function());
}

std::string describe(const RNNActivation& a, const char* fallback) {
  if (a.quantizer()) return a.quantizer()->to_string();
  return a.function().empty() ? fallback : a.function();
}

std::optional<torch::Tensor> opt(const torch::Tensor& t) {
  return t.defined() ? std::optional<torch::Tensor>(t) : std::nullopt;
}

void check_weight_quantizer(const char* layer, const char* slot, const QuantizerArg& q) {
  if (q && q.get()->min() >= 0) {
    throw InvalidArgument(std::string(layer) + ": `" + slot + "` = " + q.get()->to_string() +
                          " cannot hold negative weights (its minimum is " +
                          std::to_string(q.get()->min()) +
                          "; use quantized_bits, quantized_po2, binary or ternary)");
  }
}

}  // namespace

template <typename Options, typename Derived>
QRNNImplBase<Options, Derived>::QRNNImplBase(Options options_) : options(std::move(options_)) {}

template <typename Options, typename Derived>
void QRNNImplBase<Options, Derived>::reset() {
  const Cell cell = cell_of(options);
  const std::string who = cell.layer;
  if (options.input_size() <= 0 || options.hidden_size() <= 0) {
    throw InvalidArgument(who + ": `input_size` and `hidden_size` must be > 0, got " +
                          std::to_string(options.input_size()) + " and " +
                          std::to_string(options.hidden_size()));
  }
  if (options.num_layers() < 1) {
    throw InvalidArgument(who + ": `num_layers` must be >= 1, got " +
                          std::to_string(options.num_layers()));
  }
  if (!(options.dropout() >= 0 && options.dropout() <= 1)) {
    throw InvalidArgument(who + ": `dropout` must be in [0, 1], got " +
                          std::to_string(options.dropout()));
  }
  if (options.dropout() > 0 && options.num_layers() == 1) {
    TORCH_WARN(who, ": dropout acts after every recurrent layer but the last, so non-zero dropout "
               "expects num_layers > 1, got dropout=", options.dropout(), " and num_layers=1");
  }
  check_weight_quantizer(cell.layer, "kernel_quantizer", options.kernel_quantizer());
  check_weight_quantizer(cell.layer, "recurrent_quantizer", options.recurrent_quantizer());
  check_weight_quantizer(cell.layer, "bias_quantizer", options.bias_quantizer());

  const int64_t h = options.hidden_size();
  const int64_t gate_size = cell.gates * h;
  const int64_t directions = options.bidirectional() ? 2 : 1;
  flat_weights_names_.clear();
  flat_weights_.clear();
  for (int64_t layer = 0; layer < options.num_layers(); ++layer) {
    for (int64_t d = 0; d < directions; ++d) {
      const int64_t in = layer == 0 ? options.input_size() : h * directions;
      const std::string suffix = std::to_string(layer) + (d == 1 ? "_reverse" : "");
      std::vector<std::pair<std::string, torch::Tensor>> params = {
          {"weight_ih_l" + suffix, torch::empty({gate_size, in})},
          {"weight_hh_l" + suffix, torch::empty({gate_size, h})}};
      if (options.bias()) {
        params.emplace_back("bias_ih_l" + suffix, torch::empty({gate_size}));
        params.emplace_back("bias_hh_l" + suffix, torch::empty({gate_size}));
      }
      for (auto& [name, t] : params) {
        flat_weights_.push_back(this->register_parameter(name, t));
        flat_weights_names_.push_back(name);
      }
    }
  }
  reset_parameters();
}

template <typename Options, typename Derived>
void QRNNImplBase<Options, Derived>::reset_parameters() {
  // As torch::nn::LSTM (and Python's nn.LSTM): every parameter ~ U(-1/sqrt(H), 1/sqrt(H)), in
  // registration order.
  torch::NoGradGuard no_grad;
  const int64_t h = options.hidden_size();
  const double stdv = 1.0 / std::sqrt(static_cast<double>(h));
  for (auto& w : flat_weights_) torch::nn::init::uniform_(w, -stdv, stdv);
  const Cell cell = cell_of(options);
  if (cell.unit_forget_bias && options.bias()) {
    // Keras's unit_forget_bias: the forget gate (the second chunk, i f g o) starts at bias 1.
    for (size_t k = 0; k < flat_weights_.size(); k += 4) {
      flat_weights_[k + 2].narrow(0, h, h).fill_(1.0);
      flat_weights_[k + 3].narrow(0, h, h).fill_(0.0);
    }
  }
}

template <typename Options, typename Derived>
std::vector<torch::Tensor> QRNNImplBase<Options, Derived>::all_weights() const {
  return flat_weights_;
}

template <typename Options, typename Derived>
torch::OrderedDict<std::string, torch::Tensor>
QRNNImplBase<Options, Derived>::quantized_parameters() const {
  const bool training = this->is_training();
  torch::OrderedDict<std::string, torch::Tensor> out;
  for (size_t k = 0; k < flat_weights_.size(); ++k) {
    const std::string& name = flat_weights_names_[k];
    const QuantizerArg& q = name.rfind("weight_ih", 0) == 0   ? options.kernel_quantizer()
                            : name.rfind("weight_hh", 0) == 0 ? options.recurrent_quantizer()
                                                              : options.bias_quantizer();
    out.insert(name, quantize(q, flat_weights_[k], training));
  }
  return out;
}

template <typename Options, typename Derived>
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> QRNNImplBase<Options, Derived>::run(
    const torch::Tensor& input, const std::optional<torch::Tensor>& hx,
    const std::optional<torch::Tensor>& cx) {
  const Cell cell = cell_of(options);
  const bool lstm = cell.gates == 4, gru = cell.gates == 3;
  const bool training = this->is_training();
  const int64_t h_size = options.hidden_size();
  const int64_t directions = options.bidirectional() ? 2 : 1;
  const int64_t num_states = options.num_layers() * directions;
  const int64_t per_direction = options.bias() ? 4 : 2;
  const auto& state_q = options.state_quantizer();
  const RNNActivation& act = options.activation();
  const RNNActivation no_activation;
  const RNNActivation& ract = cell.recurrent_activation ? *cell.recurrent_activation : no_activation;

  const torch::Tensor x = ops::_rnn_input(input, flat_weights_[0], options.batch_first(),
                                          cell.layer);
  const torch::Tensor h0 = ops::_rnn_state(hx, input, num_states, h_size, options.batch_first(),
                                           cell.layer, lstm ? "h_0" : "hx");
  const torch::Tensor c0 = lstm ? ops::_rnn_state(cx, input, num_states, h_size,
                                                  options.batch_first(), cell.layer, "c_0")
                                : torch::Tensor();
  std::vector<torch::Tensor> h_n, c_n;
  torch::Tensor layer_input = x;
  for (int64_t layer = 0; layer < options.num_layers(); ++layer) {
    std::vector<torch::Tensor> outputs;
    for (int64_t d = 0; d < directions; ++d) {
      const int64_t idx = layer * directions + d;
      const size_t base = static_cast<size_t>(idx * per_direction);
      // The weights, quantized once per call (order: kernel, recurrent, biases).
      const torch::Tensor w_ih = quantize(options.kernel_quantizer(), flat_weights_[base], training);
      const torch::Tensor w_hh =
          quantize(options.recurrent_quantizer(), flat_weights_[base + 1], training);
      torch::Tensor b_ih, b_hh;
      if (options.bias()) {
        b_ih = quantize(options.bias_quantizer(), flat_weights_[base + 2], training);
        b_hh = quantize(options.bias_quantizer(), flat_weights_[base + 3], training);
      }
      const torch::Tensor x_gates = torch::linear(layer_input, w_ih, b_ih);
      const int64_t steps = x_gates.size(0);
      torch::Tensor h = h0.select(0, idx);
      torch::Tensor c = lstm ? c0.select(0, idx) : torch::Tensor();
      std::vector<torch::Tensor> out(static_cast<size_t>(steps));
      for (int64_t s = 0; s < steps; ++s) {
        const int64_t t = d == 1 ? steps - 1 - s : s;
        const torch::Tensor xt = x_gates.select(0, t);
        if (lstm) {
          // QKeras quantizes the previous carry, then the previous output.
          const torch::Tensor cq = quantize(state_q, c, training);
          const torch::Tensor hq = quantize(state_q, h, training);
          const auto g = ops::_rnn_gates(xt, hq, w_hh, opt(b_hh), 4);
          const torch::Tensor i = activate(ract, g[0], training, "sigmoid");
          const torch::Tensor f = activate(ract, g[1], training, "sigmoid");
          const torch::Tensor cand = activate(act, g[2], training, "tanh");
          const torch::Tensor o = activate(ract, g[3], training, "sigmoid");
          c = ops::_lstm_carry(i, f, cand, cq);
          h = o * activate(act, c, training, "tanh");
        } else if (gru) {
          const torch::Tensor hq = quantize(state_q, h, training);
          const auto rz = ops::_gru_gates(xt, hq, w_hh, opt(b_hh));
          const torch::Tensor r = activate(ract, rz[0], training, "sigmoid");
          const torch::Tensor z = activate(ract, rz[1], training, "sigmoid");
          const torch::Tensor n = activate(
              act, ops::_gru_candidate(xt, r, hq, w_hh, opt(b_hh), cell.reset_after), training,
              "tanh");
          h = ops::_gru_update(z, n, hq);
        } else {
          const torch::Tensor hq = quantize(state_q, h, training);
          h = activate(act, ops::_rnn_gates(xt, hq, w_hh, opt(b_hh), 1)[0], training, "tanh");
        }
        out[static_cast<size_t>(t)] = h;
      }
      outputs.push_back(torch::stack(out, 0));
      h_n.push_back(h);
      if (lstm) c_n.push_back(c);
    }
    layer_input = directions == 2 ? torch::cat(outputs, 2) : outputs[0];
    if (options.dropout() > 0 && training && layer + 1 < options.num_layers()) {
      layer_input = torch::dropout(layer_input, options.dropout(), true);
    }
  }
  torch::Tensor output = layer_input;
  torch::Tensor hn = torch::stack(h_n, 0);
  torch::Tensor cn = lstm ? torch::stack(c_n, 0) : torch::Tensor();
  if (input.dim() == 2) {
    output = output.squeeze(1);
    hn = hn.squeeze(1);
    if (lstm) cn = cn.squeeze(1);
  } else if (options.batch_first()) {
    output = output.transpose(0, 1);
  }
  return {output, hn, cn};
}

template <typename Options, typename Derived>
void QRNNImplBase<Options, Derived>::pretty_print(std::ostream& stream) const {
  const Cell cell = cell_of(options);
  stream << "heteroq::nn::" << cell.layer << "(input_size=" << options.input_size()
         << ", hidden_size=" << options.hidden_size() << ", num_layers=" << options.num_layers()
         << ", bias=" << std::boolalpha << options.bias()
         << ", batch_first=" << options.batch_first() << ", dropout=" << options.dropout()
         << ", bidirectional=" << options.bidirectional();
  const std::pair<const char*, const QuantizerArg*> slots[] = {
      {"kernel_quantizer", &options.kernel_quantizer()},
      {"recurrent_quantizer", &options.recurrent_quantizer()},
      {"bias_quantizer", &options.bias_quantizer()},
      {"state_quantizer", &options.state_quantizer()}};
  for (const auto& [name, q] : slots) {
    if (*q) stream << ", " << name << "=" << q->get()->to_string();
  }
  stream << ", activation=" << describe(options.activation(), "tanh");
  if (cell.recurrent_activation) {
    stream << ", recurrent_activation=" << describe(*cell.recurrent_activation, "sigmoid");
  }
  if (cell.gates == 4) stream << ", unit_forget_bias=" << cell.unit_forget_bias;
  if (cell.gates == 3) stream << ", reset_after=" << cell.reset_after;
  stream << ")";
}

template class QRNNImplBase<QSimpleRNNOptions, QSimpleRNNImpl>;
template class QRNNImplBase<QLSTMOptions, QLSTMImpl>;
template class QRNNImplBase<QGRUOptions, QGRUImpl>;

QSimpleRNNImpl::QSimpleRNNImpl(const QSimpleRNNOptions& options_) : QRNNImplBase(options_) {
  reset();
}

std::tuple<torch::Tensor, torch::Tensor> QSimpleRNNImpl::forward(const torch::Tensor& input,
                                                                 torch::Tensor hx) {
  auto [output, h_n, unused] = run(input, opt(hx), std::nullopt);
  return {output, h_n};
}

QLSTMImpl::QLSTMImpl(const QLSTMOptions& options_) : QRNNImplBase(options_) { reset(); }

std::tuple<torch::Tensor, std::tuple<torch::Tensor, torch::Tensor>> QLSTMImpl::forward(
    const torch::Tensor& input, torch::optional<std::tuple<torch::Tensor, torch::Tensor>> hx_opt) {
  std::optional<torch::Tensor> h0, c0;
  if (hx_opt) {
    h0 = opt(std::get<0>(*hx_opt));
    c0 = opt(std::get<1>(*hx_opt));
    TORCH_CHECK_VALUE(h0.has_value() == c0.has_value(),
                      "QLSTM: `hx` must hold both h_0 and c_0 (or be omitted)");
  }
  auto [output, h_n, c_n] = run(input, h0, c0);
  return {output, {h_n, c_n}};
}

QGRUImpl::QGRUImpl(const QGRUOptions& options_) : QRNNImplBase(options_) { reset(); }

std::tuple<torch::Tensor, torch::Tensor> QGRUImpl::forward(const torch::Tensor& input,
                                                           torch::Tensor hx) {
  auto [output, h_n, unused] = run(input, opt(hx), std::nullopt);
  return {output, h_n};
}

RecurrentOutputImpl::RecurrentOutputImpl(bool return_sequences) : return_sequences(return_sequences) {}

void RecurrentOutputImpl::reset() {}

torch::Tensor RecurrentOutputImpl::forward(const torch::Tensor& output, const torch::Tensor& h_n) {
  return ops::_rnn_output(output, h_n, return_sequences);
}

void RecurrentOutputImpl::pretty_print(std::ostream& stream) const {
  stream << "heteroq::nn::RecurrentOutput(return_sequences=" << (return_sequences ? "true" : "false") << ")";
}

}  // namespace heteroq::nn
