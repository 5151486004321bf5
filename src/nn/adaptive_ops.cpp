// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// QKeras's QAdaptiveActivation, registered once as operators so that the C++ module (layers.cpp) and
// the Python module (python/heteroq/nn.py) compute the same thing (in nn/ because the operators build
// quantizer objects, which ops/ may not use):
//   heteroq::adaptive_activation: the quantized activation for given integer bits (one value, or
//     one per channel of axis 1), built from quantized_bits / quantized_relu;
//   heteroq::_adaptive_integer_bits: QKeras's _get_integer_bits(min, max, bits, symmetric,
//     keep_negative, is_clipping);
//   heteroq::_adaptive_ema_update: the moving min/max of the unquantized activation and the
//     integer bits they imply (in place on the layer's buffers).
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/InferenceMode.h>
#include <torch/library.h>

#include <string>
#include <vector>

#include "heteroq/errors.h"
#include "heteroq/ops/quantize.h"
#include "heteroq/quantizers/quantizer.h"

namespace heteroq::ops {

at::Tensor adaptive_activation(const at::Tensor& x, const at::Tensor& integer_bits,
                               const std::string& activation, int64_t total_bits, bool symmetric,
                               double relu_neg_slope, std::optional<double> relu_upper_bound,
                               double qnoise_factor) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::adaptive_activation", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, c10::string_view,
                                         int64_t, bool, double, c10::optional<double>, double)>();
  c10::optional<double> bound;
  if (relu_upper_bound) bound = *relu_upper_bound;
  return op.call(x, integer_bits, activation, total_bits, symmetric, relu_neg_slope, bound,
                 qnoise_factor);
}

at::Tensor _adaptive_integer_bits(const at::Tensor& min_value, const at::Tensor& max_value,
                                  int64_t bits, bool symmetric, bool keep_negative,
                                  bool is_clipping) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::_adaptive_integer_bits", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, int64_t, bool, bool,
                                         bool)>();
  return op.call(min_value, max_value, bits, symmetric, keep_negative, is_clipping);
}

void _adaptive_ema_update(const at::Tensor& x, at::Tensor& ema_min, at::Tensor& ema_max,
                          at::Tensor& integer_bits, const std::string& activation,
                          int64_t total_bits, bool symmetric, double relu_neg_slope,
                          std::optional<double> relu_upper_bound, double ema_decay,
                          bool po2_rounding) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::_adaptive_ema_update", "")
                       .typed<void(const at::Tensor&, at::Tensor&, at::Tensor&, at::Tensor&,
                                   c10::string_view, int64_t, bool, double, c10::optional<double>,
                                   double, bool)>();
  c10::optional<double> bound;
  if (relu_upper_bound) bound = *relu_upper_bound;
  op.call(x, ema_min, ema_max, integer_bits, activation, total_bits, symmetric, relu_neg_slope,
          bound, ema_decay, po2_rounding);
}

namespace detail {
namespace {

void check_activation(c10::string_view activation) {
  if (activation != "quantized_bits" && activation != "quantized_relu") {
    throw InvalidArgument("QAdaptiveActivation: `activation` must be \"quantized_bits\" or "
                          "\"quantized_relu\" (without arguments: the layer sets them), got \"" +
                          std::string(activation) + "\"");
  }
}

// keep_negative as QKeras's QAdaptiveActivation sets it.
bool adaptive_keep_negative(c10::string_view activation, double relu_neg_slope) {
  return activation == "quantized_bits" || relu_neg_slope != 0.0;
}

QuantizerPtr adaptive_quantizer(c10::string_view activation, int64_t total_bits, int64_t integer,
                                bool symmetric, double relu_neg_slope,
                                c10::optional<double> relu_upper_bound, double qnoise_factor) {
  if (activation == "quantized_bits") {
    return std::make_shared<QuantizedBits>(total_bits, integer, symmetric, /*keep_negative=*/true,
                                           /*alpha=*/1.0, qnoise_factor);
  }
  std::optional<double> bound;
  if (relu_upper_bound.has_value()) bound = *relu_upper_bound;
  return std::make_shared<QuantizedRelu>(total_bits, integer, /*use_sigmoid=*/false, relu_neg_slope,
                                         qnoise_factor, /*use_stochastic_rounding=*/false, bound,
                                         /*is_quantized_clip=*/false);
}

at::Tensor adaptive_activation_composite(const at::Tensor& x, const at::Tensor& integer_bits,
                                         c10::string_view activation, int64_t total_bits,
                                         bool symmetric, double relu_neg_slope,
                                         c10::optional<double> relu_upper_bound,
                                         double qnoise_factor) {
  check_activation(activation);
  TORCH_CHECK_VALUE(integer_bits.numel() >= 1,
                    "QAdaptiveActivation: `integer_bits` is empty");
  const at::Tensor bits_cpu = integer_bits.detach().to(at::kCPU, at::kLong).contiguous().view(-1);
  auto make = [&](int64_t integer) {
    return adaptive_quantizer(activation, total_bits, integer, symmetric, relu_neg_slope,
                              relu_upper_bound, qnoise_factor);
  };
  if (bits_cpu.numel() == 1) return make(bits_cpu.item<int64_t>())->forward(x);

  const int64_t channels = bits_cpu.numel();
  TORCH_CHECK_VALUE(x.dim() >= 2 && x.size(1) == channels, "QAdaptiveActivation: per-channel ",
                    "integer bits for ", channels, " channels, but the input has shape ",
                    x.sizes(), " (channels are axis 1)");
  // One quantizer per distinct integer-bit value, each applied to the channels that use it.
  const at::Tensor values = std::get<0>(at::_unique(bits_cpu, /*sorted=*/true));
  std::vector<int64_t> shape(x.dim(), 1);
  shape[1] = channels;
  at::Tensor out;
  for (int64_t i = 0; i < values.numel(); ++i) {
    const int64_t v = values[i].item<int64_t>();
    at::Tensor q = make(v)->forward(x);
    if (!out.defined()) {
      out = q;
      continue;
    }
    const at::Tensor mask = bits_cpu.eq(v).view(shape).to(x.device());
    out = at::where(mask, q, out);
  }
  return out;
}

// QKeras _get_integer_bits, in float32 as TensorFlow computes it.
at::Tensor adaptive_integer_bits_impl(const at::Tensor& min_in, const at::Tensor& max_in,
                                      int64_t bits, bool symmetric, bool keep_negative,
                                      bool is_clipping) {
  TORCH_CHECK_VALUE(min_in.sizes() == max_in.sizes(), "_adaptive_integer_bits: min ",
                    min_in.sizes(), " and max ", max_in.sizes(), " differ in shape");
  TORCH_CHECK_VALUE(bits >= 1 && bits <= 32, "_adaptive_integer_bits: `bits` must be in [1, 32], "
                    "got ", bits);
  at::Tensor min_value = min_in.detach().to(at::kFloat);
  at::Tensor max_value = max_in.detach().to(at::kFloat);
  if (!keep_negative) {
    min_value = at::clamp_min(min_value, 0);
    max_value = at::clamp_min(max_value, 0);
  }
  const double unsigned_bits = static_cast<double>(bits - (keep_negative ? 1 : 0));
  const float ln2 = static_cast<float>(std::log(2.0));
  const at::Tensor min_log2 = at::log(at::abs(min_value)) / ln2;
  const at::Tensor max_log2 = at::log(at::abs(max_value)) / ln2;
  const at::Tensor zero = at::zeros_like(min_log2);
  at::Tensor min_int = at::where(min_log2 > 0, min_log2, zero);
  at::Tensor max_int = at::where(max_log2 > 0, max_log2, zero);
  if (is_clipping) {
    min_int = at::round(min_int);
    max_int = at::round(max_int);
  } else {
    min_int = at::ceil(min_int);
    max_int = at::ceil(max_int);
    // max_value must fit under 2^i - 2^min(i - unsigned_bits, 0), else one more integer bit.
    const at::Tensor max_po2 =
        at::pow(2.0, max_int) - at::pow(2.0, at::clamp_max(max_int - unsigned_bits, 0));
    max_int = at::where(max_value <= max_po2, max_int, max_int + 1);
    if (symmetric) {
      const at::Tensor min_po2 =
          -at::pow(2.0, min_int) + at::pow(2.0, at::clamp_max(min_int - unsigned_bits, 0));
      min_int = at::where(min_po2 <= min_value, min_int, min_int + 1);
    }
  }
  return at::clamp_max(at::maximum(min_int, max_int), unsigned_bits).to(at::kInt);
}

void adaptive_ema_update_impl(const at::Tensor& x, at::Tensor& ema_min, at::Tensor& ema_max,
                              at::Tensor& integer_bits, c10::string_view activation,
                              int64_t total_bits, bool symmetric, double relu_neg_slope,
                              c10::optional<double> relu_upper_bound, double ema_decay,
                              bool po2_rounding) {
  check_activation(activation);
  TORCH_CHECK_VALUE(ema_decay >= 0.0 && ema_decay <= 1.0, "QAdaptiveActivation: `ema_decay` ",
                    "must be in [0, 1], got ", ema_decay);
  TORCH_CHECK_VALUE(ema_min.sizes() == ema_max.sizes() && ema_min.sizes() == integer_bits.sizes(),
                    "QAdaptiveActivation: the buffers ema_min ", ema_min.sizes(), ", ema_max ",
                    ema_max.sizes(), " and integer_bits ", integer_bits.sizes(),
                    " must have the same shape");
  at::NoGradGuard no_grad;
  // The activation before its quantization (QKeras: the quantizer at qnoise_factor 0).
  const at::Tensor act =
      adaptive_quantizer(activation, total_bits, 0, symmetric, relu_neg_slope, relu_upper_bound,
                         /*qnoise_factor=*/0.0)
          ->forward(x.detach())
          .to(ema_min.scalar_type());
  at::Tensor new_min, new_max;
  if (ema_min.numel() == 1) {
    new_min = act.min().reshape(ema_min.sizes());
    new_max = act.max().reshape(ema_min.sizes());
  } else {
    TORCH_CHECK_VALUE(act.dim() >= 2 && act.size(1) == ema_min.numel(), "QAdaptiveActivation: ",
                      "per-channel statistics for ", ema_min.numel(), " channels, but the input ",
                      "has shape ", x.sizes(), " (channels are axis 1)");
    const at::Tensor rows = act.transpose(0, 1).reshape({act.size(1), -1});
    new_min = std::get<0>(rows.min(1)).reshape(ema_min.sizes());
    new_max = std::get<0>(rows.max(1)).reshape(ema_min.sizes());
  }
  // Keras moving_average_update: var -= (var - value) (1 - decay), the factor in float32.
  const double rate = static_cast<double>(1.0f - static_cast<float>(ema_decay));
  ema_min.sub_((ema_min - new_min) * rate);
  ema_max.sub_((ema_max - new_max) * rate);
  integer_bits.copy_(adaptive_integer_bits_impl(ema_min, ema_max, total_bits, symmetric,
                                                adaptive_keep_negative(activation, relu_neg_slope),
                                                po2_rounding));
}

}  // namespace
}  // namespace detail
}  // namespace heteroq::ops

TORCH_LIBRARY_FRAGMENT(heteroq, m) {
  m.def("adaptive_activation(Tensor x, Tensor integer_bits, str activation, int total_bits, "
        "bool symmetric=True, float relu_neg_slope=0.0, float? relu_upper_bound=None, "
        "float qnoise_factor=1.0) -> Tensor");
  m.def("_adaptive_integer_bits(Tensor min_value, Tensor max_value, int bits, bool symmetric, "
        "bool keep_negative, bool is_clipping) -> Tensor");
  m.def("_adaptive_ema_update(Tensor x, Tensor(a!) ema_min, Tensor(b!) ema_max, "
        "Tensor(c!) integer_bits, str activation, int total_bits, bool symmetric, "
        "float relu_neg_slope, float? relu_upper_bound, float ema_decay, bool po2_rounding) -> ()");
}

TORCH_LIBRARY_IMPL(heteroq, CompositeImplicitAutograd, m) {
  m.impl("adaptive_activation", &heteroq::ops::detail::adaptive_activation_composite);
}

TORCH_LIBRARY_IMPL(heteroq, CompositeExplicitAutograd, m) {
  m.impl("_adaptive_integer_bits", &heteroq::ops::detail::adaptive_integer_bits_impl);
  m.impl("_adaptive_ema_update", &heteroq::ops::detail::adaptive_ema_update_impl);
}
