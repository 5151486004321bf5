// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "heteroq/export.h"

/// The registered operators, callable from C++ here and from Python as `torch.ops.heteroq.*`.
///
/// Each operator has one schema (`TORCH_LIBRARY(heteroq, ...)`), a fused single-pass CPU kernel
/// (float32/float64, multi-threaded, vectorized), a device-generic kernel composed of ATen ops
/// (every other device and dtype) and a C++ Autograd kernel holding QKeras's straight-through
/// estimator. Integer tensors are rejected with c10::TypeError (Python: TypeError); parameters out
/// of range with c10::ValueError (Python: ValueError). Semantics: see heteroq::QuantizedBits and
/// heteroq::QuantizedRelu.
namespace heteroq::ops {

/// `heteroq::quantized_bits(Tensor x, int bits=8, int integer=0, bool symmetric=False,
/// bool keep_negative=True, float? alpha=None, float qnoise_factor=1.0) -> Tensor`
///
/// qnoise_factor q in [0, 1] is QKeras's quantization-noise blend: the output is
/// `x + q (q(x) - x)` for q < 1 and exactly q(x) for q = 1; the gradient does not depend on q.
HETEROQ_API at::Tensor quantized_bits(const at::Tensor& x, int64_t bits = 8, int64_t integer = 0,
                                      bool symmetric = false, bool keep_negative = true,
                                      std::optional<double> alpha = std::nullopt,
                                      double qnoise_factor = 1.0);

/// `heteroq::quantized_bits_auto(Tensor x, int bits=8, int integer=0, bool keep_negative=True,
/// bool po2=True, int[]? scale_axis=None, float qnoise_factor=1.0) -> (Tensor, Tensor)`:
/// QKeras `quantized_bits` with `alpha="auto_po2"` (po2) or `alpha="auto"`: a scale per channel
/// chosen from the data (the maximum, then for po2 five least-squares refinements rounded to powers
/// of two, exactly as QKeras computes them). Returns (output, scale), scale being QKeras's
/// `quantizer.scale` (keepdims shape, broadcastable to x). The channels are the axes in
/// `scale_axis` (default: axis 0, the output channel of PyTorch Linear/Conv weights; QKeras keeps
/// the last axis because Keras kernels are (..., in, out)); a rank-1 input gets one scale from its
/// maximum, then per-element least-squares scales, as QKeras does. Gradient: identity.
HETEROQ_API std::tuple<at::Tensor, at::Tensor> quantized_bits_auto(
    const at::Tensor& x, int64_t bits = 8, int64_t integer = 0, bool keep_negative = true,
    bool po2 = true, std::optional<std::vector<int64_t>> scale_axis = std::nullopt,
    double qnoise_factor = 1.0);

/// `heteroq::quantized_relu(Tensor x, int bits=8, int integer=0, bool use_sigmoid=False,
/// float negative_slope=0.0, float qnoise_factor=1.0) -> Tensor`; for q < 1 the output is
/// `x_u + q (q(x) - x_u)` with x_u = relu(x, negative_slope) capped at the top of the grid.
HETEROQ_API at::Tensor quantized_relu(const at::Tensor& x, int64_t bits = 8, int64_t integer = 0,
                                      bool use_sigmoid = false, double negative_slope = 0.0,
                                      double qnoise_factor = 1.0);

/// `heteroq::quantized_bits.out(..., *, Tensor(a!) out) -> Tensor(a!)`: writes into `out` (same
/// dtype and device as x; same shape, or empty and then resized). Not differentiable: it raises
/// when x requires grad under grad mode, like ATen's out= functions.
HETEROQ_API at::Tensor& quantized_bits_out(at::Tensor& out, const at::Tensor& x, int64_t bits = 8,
                                           int64_t integer = 0, bool symmetric = false,
                                           bool keep_negative = true,
                                           std::optional<double> alpha = std::nullopt,
                                           double qnoise_factor = 1.0);

/// `heteroq::quantized_relu.out(..., *, Tensor(a!) out) -> Tensor(a!)`; see quantized_bits_out.
HETEROQ_API at::Tensor& quantized_relu_out(at::Tensor& out, const at::Tensor& x, int64_t bits = 8,
                                           int64_t integer = 0, bool use_sigmoid = false,
                                           double negative_slope = 0.0,
                                           double qnoise_factor = 1.0);

/// The gradient of quantized_relu with respect to x, given the output gradient:
/// `grad * (x <= top ? (x > 0 ? 1 : negative_slope) : 0)`.
HETEROQ_API at::Tensor _quantized_relu_backward(const at::Tensor& grad, const at::Tensor& x,
                                                int64_t bits, int64_t integer, bool use_sigmoid,
                                                double negative_slope);

/// `heteroq::quantized_tanh(Tensor x, int bits=8, bool symmetric=False, bool use_real_tanh=False)`:
/// QKeras quantized_tanh, `clamp(round(p m), −m + symmetric, m − 1) / m` with m = 2^(bits−1) and
/// p = 2 hσ(x) − 1 (QKeras's hard internal sigmoid hσ(v) = clip(v/2 + 1/2, 0, 1)) or tanh(x).
HETEROQ_API at::Tensor quantized_tanh(const at::Tensor& x, int64_t bits = 8,
                                      bool symmetric = false, bool use_real_tanh = false);

/// `heteroq::quantized_sigmoid(Tensor x, int bits=8, bool symmetric=False,
/// bool use_real_sigmoid=False)`: QKeras quantized_sigmoid, `clamp(round(p m), symmetric, m − 1) / m`
/// with m = 2^bits and p = hσ(x) or sigmoid(x).
HETEROQ_API at::Tensor quantized_sigmoid(const at::Tensor& x, int64_t bits = 8,
                                         bool symmetric = false, bool use_real_sigmoid = false);

/// The gradients of quantized_tanh / quantized_sigmoid with respect to x (QKeras's STE: the clip
/// mask of the rounded value times the derivative of p).
HETEROQ_API at::Tensor _quantized_tanh_backward(const at::Tensor& grad, const at::Tensor& x,
                                                int64_t bits, bool symmetric, bool use_real_tanh);
HETEROQ_API at::Tensor _quantized_sigmoid_backward(const at::Tensor& grad, const at::Tensor& x,
                                                   int64_t bits, bool symmetric,
                                                   bool use_real_sigmoid);

/// `heteroq::quantized_po2(Tensor x, int bits=8, float? max_value=None,
/// bool quadratic_approximation=False, str log2_rounding="rnd", float qnoise_factor=1.0)`:
/// QKeras quantized_po2, sign(x) 2^e with the exponent rounded (or floored) from log2|x| and
/// clipped to the range `bits` allows; 0 maps to +2^min_exp (never 0). Gradient: identity.
HETEROQ_API at::Tensor quantized_po2(const at::Tensor& x, int64_t bits = 8,
                                     std::optional<double> max_value = std::nullopt,
                                     bool quadratic_approximation = false,
                                     const std::string& log2_rounding = "rnd",
                                     double qnoise_factor = 1.0);

/// `heteroq::quantized_relu_po2(Tensor x, int bits=8, float? max_value=None,
/// float negative_slope=0.0, bool quadratic_approximation=False, str log2_rounding="rnd",
/// float qnoise_factor=1.0)`: QKeras quantized_relu_po2 (x <= 0 maps to +2^min_exp without a
/// slope). Gradient: the leaky relu's (1 for x > 0, the slope below), 0 above max_value.
HETEROQ_API at::Tensor quantized_relu_po2(const at::Tensor& x, int64_t bits = 8,
                                          std::optional<double> max_value = std::nullopt,
                                          double negative_slope = 0.0,
                                          bool quadratic_approximation = false,
                                          const std::string& log2_rounding = "rnd",
                                          double qnoise_factor = 1.0);

HETEROQ_API at::Tensor _quantized_relu_po2_backward(const at::Tensor& grad, const at::Tensor& x,
                                                    std::optional<double> max_value,
                                                    double negative_slope);

/// `heteroq::binary(Tensor x, bool use_01=False, float? alpha=None)`: QKeras binary with a fixed
/// alpha: alpha * sign(x), sign(0) = +1 (use_01: alpha * {0, 1}). Gradient: 1 - tanh²(x) when
/// alpha is None (QKeras's tanh STE), else 1.
HETEROQ_API at::Tensor binary(const at::Tensor& x, bool use_01 = false,
                              std::optional<double> alpha = std::nullopt);
/// `heteroq::ternary(Tensor x, float? alpha=None, float? threshold=None)`: QKeras ternary with a
/// fixed alpha: alpha * sign(x) where |x| >= threshold (default 0.33), else 0. Gradient as binary.
HETEROQ_API at::Tensor ternary(const at::Tensor& x, std::optional<double> alpha = std::nullopt,
                               std::optional<double> threshold = std::nullopt);
/// binary with alpha "auto" (po2 = false) or "auto_po2": per-channel least-squares scale of
/// sign(x). Returns (output, scale). Gradient: identity.
HETEROQ_API std::tuple<at::Tensor, at::Tensor> binary_auto(
    const at::Tensor& x, bool use_01 = false, bool po2 = true,
    std::optional<std::vector<int64_t>> scale_axis = std::nullopt);
/// ternary with alpha "auto"/"auto_po2": QKeras's number_of_unrolls iterations of threshold and
/// least-squares scale. Returns (output, scale). Gradient: identity.
HETEROQ_API std::tuple<at::Tensor, at::Tensor> ternary_auto(
    const at::Tensor& x, bool po2 = true, int64_t number_of_unrolls = 5,
    std::optional<std::vector<int64_t>> scale_axis = std::nullopt);
/// grad * (1 - tanh²(x)): the STE of binary/ternary without alpha.
HETEROQ_API at::Tensor _tanh_ste_backward(const at::Tensor& grad, const at::Tensor& x);

/// `heteroq::quantized_ulaw(Tensor x, int bits=8, int integer=0, bool symmetric=False,
/// float u=255.0)`: QKeras quantized_ulaw, a u-law compander of a hard-sigmoid code (composed of
/// ATen ops; gradient through them with round's STE).
HETEROQ_API at::Tensor quantized_ulaw(const at::Tensor& x, int64_t bits = 8, int64_t integer = 0,
                                      bool symmetric = false, double u = 255.0);

/// `heteroq::quantized_hswish(Tensor x, int bits=8, int integer=0, bool symmetric=False,
/// float? alpha=None, float qnoise_factor=1.0, float relu_shift=3.0, float relu_upper_bound=6.0)`:
/// QKeras quantized_hswish, quantized_bits of x · clip(x + relu_shift, 0, ub) / ub.
HETEROQ_API at::Tensor quantized_hswish(const at::Tensor& x, int64_t bits = 8, int64_t integer = 0,
                                        bool symmetric = false,
                                        std::optional<double> alpha = std::nullopt,
                                        double qnoise_factor = 1.0, double relu_shift = 3.0,
                                        double relu_upper_bound = 6.0,
                                        const std::optional<at::Tensor>& noise = std::nullopt);

/// `heteroq::quantized_bits_stochastic(Tensor x, Tensor noise, ...)`: quantized_bits with QKeras's
/// stochastic rounding (training): round down when frac(x m / 2^integer) < noise, else up, for a
/// noise ~ U[0, 1) of x's shape and dtype (the caller draws it, e.g. at::rand_like(x)). 1-bit sign
/// mode does not round (QKeras). Gradient: identity.
HETEROQ_API at::Tensor quantized_bits_stochastic(const at::Tensor& x, const at::Tensor& noise,
                                                 int64_t bits = 8, int64_t integer = 0,
                                                 bool symmetric = false, bool keep_negative = true,
                                                 std::optional<double> alpha = std::nullopt,
                                                 double qnoise_factor = 1.0);

/// `heteroq::quantized_relu_stochastic(Tensor x, Tensor noise, ...)`: quantized_relu with
/// stochastic rounding to its grid (QKeras rounds with precision 1/2, between grid points: see
/// docs). Gradient: quantized_relu's STE.
HETEROQ_API at::Tensor quantized_relu_stochastic(const at::Tensor& x, const at::Tensor& noise,
                                                 int64_t bits = 8, int64_t integer = 0,
                                                 bool use_sigmoid = false,
                                                 double negative_slope = 0.0,
                                                 double qnoise_factor = 1.0);

/// `heteroq::stochastic_binary(Tensor x, Tensor noise, float temperature=6.0,
/// bool use_real_sigmoid=True, bool zero_one=False, float? alpha=None, bool automatic=False,
/// bool po2=False, int[]? scale_axis=None) -> (Tensor, Tensor)`: QKeras stochastic_binary in
/// training (zero_one: bernoulli): sign(sigmoid(temperature x / s) - noise), s the per-channel
/// std for the auto scales, scaled by alpha or the least-squares scale. Returns (output, scale).
/// Gradient: identity.
HETEROQ_API std::tuple<at::Tensor, at::Tensor> stochastic_binary(
    const at::Tensor& x, const at::Tensor& noise, double temperature = 6.0,
    bool use_real_sigmoid = true, bool zero_one = false,
    std::optional<double> alpha = std::nullopt, bool automatic = false, bool po2 = false);

/// `heteroq::stochastic_ternary(Tensor x, Tensor noise0, Tensor noise1, float temperature=8.0,
/// bool use_real_sigmoid=True, bool po2=True, int number_of_unrolls=5, int[]? scale_axis=None)
/// -> (Tensor, Tensor)`: QKeras stochastic_ternary in training (alpha "auto"/"auto_po2").
HETEROQ_API std::tuple<at::Tensor, at::Tensor> stochastic_ternary(
    const at::Tensor& x, const at::Tensor& noise0, const at::Tensor& noise1,
    double temperature = 8.0, bool use_real_sigmoid = true, bool po2 = true,
    int64_t number_of_unrolls = 5);

/// `heteroq::quantized_tanh_stochastic(Tensor x, Tensor noise, int bits=8, bool symmetric=False,
/// bool use_real_tanh=False)` and `heteroq::quantized_sigmoid_stochastic(...)`: QKeras's
/// use_stochastic_rounding (training): the code p m rounds down when frac(p m) < noise, else up,
/// onto the grid (QKeras rounds at precision 1/2, between grid points: see docs). Gradient: the
/// deterministic quantizer's STE.
HETEROQ_API at::Tensor quantized_tanh_stochastic(const at::Tensor& x, const at::Tensor& noise,
                                                 int64_t bits = 8, bool symmetric = false,
                                                 bool use_real_tanh = false);
HETEROQ_API at::Tensor quantized_sigmoid_stochastic(const at::Tensor& x, const at::Tensor& noise,
                                                    int64_t bits = 8, bool symmetric = false,
                                                    bool use_real_sigmoid = false);

/// `heteroq::quantized_po2_stochastic(Tensor x, Tensor noise, int bits=8, float? max_value=None,
/// bool quadratic_approximation=False, float qnoise_factor=1.0)` and
/// `heteroq::quantized_relu_po2_stochastic(...)`: QKeras's stochastic_round_po2 (training): the
/// exponent is floor(log2|x|) or one more, the larger with probability |x| / 2^floor - 1, so
/// E[q(x)] = x inside the exponent range. Gradient: the deterministic quantizer's STE.
HETEROQ_API at::Tensor quantized_po2_stochastic(const at::Tensor& x, const at::Tensor& noise,
                                                int64_t bits = 8,
                                                std::optional<double> max_value = std::nullopt,
                                                bool quadratic_approximation = false,
                                                double qnoise_factor = 1.0);
HETEROQ_API at::Tensor quantized_relu_po2_stochastic(
    const at::Tensor& x, const at::Tensor& noise, int64_t bits = 8,
    std::optional<double> max_value = std::nullopt, double negative_slope = 0.0,
    bool quadratic_approximation = false, double qnoise_factor = 1.0);

/// `heteroq::binary_stochastic(Tensor x, Tensor noise, bool use_01=False, float? alpha=None,
/// int auto_mode=0, int[]? scale_axis=None) -> (Tensor, Tensor)`: QKeras binary with
/// use_stochastic_rounding in training. `noise` has shape (2, *x.shape): noise[0] rounds x
/// stochastically at 1/8 of the per-channel range, noise[1] gives zeros a random sign.
/// auto_mode: 0 fixed alpha (None or a number), 1 "auto", 2 "auto_po2". Returns (output, scale).
HETEROQ_API std::tuple<at::Tensor, at::Tensor> binary_stochastic(
    const at::Tensor& x, const at::Tensor& noise, bool use_01 = false,
    std::optional<double> alpha = std::nullopt, int64_t auto_mode = 0,
    std::optional<std::vector<int64_t>> scale_axis = std::nullopt,
    std::optional<std::vector<int64_t>> elements_per_scale = std::nullopt,
    std::optional<int64_t> min_po2_exponent = std::nullopt,
    std::optional<int64_t> max_po2_exponent = std::nullopt);

/// `heteroq::binary_auto_grouped(Tensor x, bool use_01=False, bool po2=True,
/// int[]? scale_axis=None, int[]? elements_per_scale=None, int? min_po2_exponent=None,
/// int? max_po2_exponent=None) -> (Tensor, Tensor)`: binary with alpha "auto"/"auto_po2" and
/// QKeras's scale options (one least-squares scale per group of channels; the po2 scale clipped).
HETEROQ_API std::tuple<at::Tensor, at::Tensor> binary_auto_grouped(
    const at::Tensor& x, bool use_01 = false, bool po2 = true,
    std::optional<std::vector<int64_t>> scale_axis = std::nullopt,
    std::optional<std::vector<int64_t>> elements_per_scale = std::nullopt,
    std::optional<int64_t> min_po2_exponent = std::nullopt,
    std::optional<int64_t> max_po2_exponent = std::nullopt);

/// `heteroq::ternary_stochastic(Tensor x, Tensor noise, bool po2=True, int number_of_unrolls=5,
/// int[]? scale_axis=None) -> (Tensor, Tensor)`: QKeras ternary(alpha "auto"/"auto_po2",
/// use_stochastic_rounding=True) in training; `noise` has shape (number_of_unrolls, *x.shape),
/// one draw per iteration of the threshold/scale loop. Returns (output, scale). Gradient: identity.
HETEROQ_API std::tuple<at::Tensor, at::Tensor> ternary_stochastic(
    const at::Tensor& x, const at::Tensor& noise, bool po2 = true, int64_t number_of_unrolls = 5,
    std::optional<std::vector<int64_t>> scale_axis = std::nullopt);

/// `heteroq::quantized_bits_scaled(Tensor x, Tensor alpha, int bits=8, int integer=0,
/// bool symmetric=False, bool keep_negative=True, int axis=0, float qnoise_factor=1.0,
/// Tensor? noise=None)`: quantized_bits with a per-channel alpha (QKeras's ndarray alpha):
/// `alpha[c] * Q(x)` for channel c of `axis` (alpha has one value per channel, or one value).
/// With `noise` (U[0, 1) of x's shape) the codes round stochastically. Gradient: identity.
HETEROQ_API at::Tensor quantized_bits_scaled(const at::Tensor& x, const at::Tensor& alpha,
                                             int64_t bits = 8, int64_t integer = 0,
                                             bool symmetric = false, bool keep_negative = true,
                                             int64_t axis = 0, double qnoise_factor = 1.0,
                                             const std::optional<at::Tensor>& noise = std::nullopt);

/// `heteroq::quantized_bits_auto_po2_grouped(Tensor x, int bits=8, int integer=0,
/// bool keep_negative=True, int[]? scale_axis=None, float qnoise_factor=1.0,
/// int[]? elements_per_scale=None, int? min_po2_exponent=None, int? max_po2_exponent=None)
/// -> (Tensor, Tensor)`: quantized_bits(alpha="auto_po2") with QKeras's scale options: one scale
/// per group of `elements_per_scale` consecutive channels on each scale axis, and the scale
/// clipped to [2^min_po2_exponent, 2^max_po2_exponent]. Returns (output, scale).
HETEROQ_API std::tuple<at::Tensor, at::Tensor> quantized_bits_auto_po2_grouped(
    const at::Tensor& x, int64_t bits = 8, int64_t integer = 0, bool keep_negative = true,
    std::optional<std::vector<int64_t>> scale_axis = std::nullopt, double qnoise_factor = 1.0,
    std::optional<std::vector<int64_t>> elements_per_scale = std::nullopt,
    std::optional<int64_t> min_po2_exponent = std::nullopt,
    std::optional<int64_t> max_po2_exponent = std::nullopt);

/// `heteroq::_scale_gradient(Tensor x, float factor)`: x in the forward pass, the gradient times
/// `factor` in the backward pass (QKeras's use_ste=False: factor 1 - qnoise_factor).
HETEROQ_API at::Tensor _scale_gradient(const at::Tensor& x, double factor);

/// `heteroq::_relu_upper_bound(Tensor xq, Tensor x, float negative_slope=0.0,
/// float? relu_upper_bound=None, float qnoise_factor=1.0)`: QKeras quantized_relu with
/// is_quantized_clip=False, from its quantized value `xq` (qnoise_factor 1): min(xq, bound) with
/// the STE of relu(x, slope) capped at the bound (not capped when it is None).
HETEROQ_API at::Tensor _relu_upper_bound(const at::Tensor& xq, const at::Tensor& x,
                                         double negative_slope = 0.0,
                                         std::optional<double> relu_upper_bound = std::nullopt,
                                         double qnoise_factor = 1.0);

/// Layer arithmetic shared by the C++ and Python modules (src/ops/layer_ops.cpp):
/// `heteroq::_bn_inverse(Tensor var, Tensor? gamma, float eps)`: rsqrt(var + eps) * gamma;
/// `heteroq::_bn_apply(Tensor x, Tensor inv, Tensor mean, Tensor? beta)`: x inv + (beta - mean inv)
/// on channel axis 1 (QKeras QBatchNormalization's order);
/// `heteroq::_sum_pool2d_scaled(...)`: avg_pool2d(x * area) * factor (QKeras QAveragePooling2D).
HETEROQ_API at::Tensor _bn_inverse(const at::Tensor& var, const std::optional<at::Tensor>& gamma,
                                   double eps);
HETEROQ_API at::Tensor _bn_apply(const at::Tensor& x, const at::Tensor& inv,
                                 const at::Tensor& mean, const std::optional<at::Tensor>& beta);
/// Batch-norm folding: `heteroq::_bn_fold_weight(Tensor weight, Tensor var, Tensor? gamma,
/// float eps)` = weight * gamma / sqrt(var + eps) per output channel (axis 0);
/// `heteroq::_bn_fold_bias(Tensor? bias, Tensor mean, Tensor var, Tensor? gamma, Tensor? beta,
/// float eps)` = beta + gamma (bias - mean) / sqrt(var + eps).
HETEROQ_API at::Tensor _bn_fold_weight(const at::Tensor& weight, const at::Tensor& var,
                                       const std::optional<at::Tensor>& gamma, double eps);
HETEROQ_API at::Tensor _bn_fold_bias(const std::optional<at::Tensor>& bias, const at::Tensor& mean,
                                     const at::Tensor& var, const std::optional<at::Tensor>& gamma,
                                     const std::optional<at::Tensor>& beta, double eps);
HETEROQ_API at::Tensor _sum_pool2d_scaled(const at::Tensor& x, at::IntArrayRef kernel_size,
                                          at::IntArrayRef stride, at::IntArrayRef padding,
                                          bool ceil_mode, bool count_include_pad,
                                          const at::Tensor& factor);

/// QKeras QAdaptiveActivation (src/nn/adaptive_ops.cpp), shared by the C++ and Python modules:
/// `heteroq::adaptive_activation(Tensor x, Tensor integer_bits, str activation, int total_bits,
/// bool symmetric=True, float relu_neg_slope=0.0, float? relu_upper_bound=None,
/// float qnoise_factor=1.0)`: `activation` ("quantized_bits" or "quantized_relu") with
/// `total_bits` bits and `integer_bits` integer bits (one value, or one per channel of axis 1):
/// quantized_bits(total_bits, i, symmetric, keep_negative=True, alpha=1) or
/// quantized_relu(total_bits, i, negative_slope=relu_neg_slope, relu_upper_bound,
/// is_quantized_clip=False), at `qnoise_factor`.
HETEROQ_API at::Tensor adaptive_activation(const at::Tensor& x, const at::Tensor& integer_bits,
                                           const std::string& activation, int64_t total_bits,
                                           bool symmetric = true, double relu_neg_slope = 0.0,
                                           std::optional<double> relu_upper_bound = std::nullopt,
                                           double qnoise_factor = 1.0);
/// `heteroq::_adaptive_integer_bits(Tensor min_value, Tensor max_value, int bits, bool symmetric,
/// bool keep_negative, bool is_clipping)`: QKeras's _get_integer_bits (int32, float32 arithmetic).
HETEROQ_API at::Tensor _adaptive_integer_bits(const at::Tensor& min_value,
                                              const at::Tensor& max_value, int64_t bits,
                                              bool symmetric, bool keep_negative, bool is_clipping);
/// `heteroq::_adaptive_ema_update(Tensor x, Tensor(a!) ema_min, Tensor(b!) ema_max,
/// Tensor(c!) integer_bits, ...)`: updates the moving min/max of the unquantized activation of x
/// (per tensor when the buffers hold one value, else per channel of axis 1) as Keras's
/// moving_average_update, then sets integer_bits from them (_adaptive_integer_bits, with
/// is_clipping = po2_rounding).
HETEROQ_API void _adaptive_ema_update(const at::Tensor& x, at::Tensor& ema_min,
                                      at::Tensor& ema_max, at::Tensor& integer_bits,
                                      const std::string& activation, int64_t total_bits,
                                      bool symmetric, double relu_neg_slope,
                                      std::optional<double> relu_upper_bound, double ema_decay,
                                      bool po2_rounding);

/// Whether CPU tensors use the fused kernels (true, the default) or the device-generic ATen
/// composition. Both give identical bits; the switch exists to test and benchmark that.
HETEROQ_API bool fused_kernels_enabled();
HETEROQ_API void set_fused_kernels_enabled(bool enabled);

/// RAII: switches the fused CPU kernels on or off and restores the previous setting.
class FusedKernelsGuard {
 public:
  explicit FusedKernelsGuard(bool enabled) : previous_(fused_kernels_enabled()) {
    set_fused_kernels_enabled(enabled);
  }
  ~FusedKernelsGuard() { set_fused_kernels_enabled(previous_); }
  FusedKernelsGuard(const FusedKernelsGuard&) = delete;
  FusedKernelsGuard& operator=(const FusedKernelsGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace heteroq::ops
