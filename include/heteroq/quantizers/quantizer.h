// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "heteroq/errors.h"
#include "heteroq/export.h"
#include "heteroq/quantizers/spec.h"

namespace heteroq {

/**
 * A quantizer: maps a floating-point tensor to values on a fixed grid, with QKeras's numerics
 * in the forward pass and a straight-through estimator (STE) in the backward pass.
 *
 * Quantizers are immutable; construct them directly, with make_quantizer(), or from a spec string
 * with get_quantizer(). forward() calls the registered operator (`torch.ops.heteroq.*`), so it
 * works on any device and records gradients when autograd is on.
 */
class HETEROQ_API Quantizer {
 public:
  virtual ~Quantizer();

  /// The QKeras name, e.g. "quantized_bits".
  virtual std::string name() const = 0;
  /// Quantizes `x` (a floating-point tensor of any shape).
  virtual at::Tensor forward(const at::Tensor& x) const = 0;
  at::Tensor operator()(const at::Tensor& x) const { return forward(x); }
  /// The forward pass in training mode: with use_stochastic_rounding, rounds stochastically
  /// (noise from at::rand_like, so reproducible under torch::manual_seed); otherwise forward().
  /// Layers call it while they are training, as QKeras does in its learning phase.
  virtual at::Tensor forward_train(const at::Tensor& x) const { return forward(x); }
  /// The number of bits of the quantized representation.
  virtual int64_t bits() const = 0;
  /// QKeras's lower bound: the weight-constraint bound, not always a representable value.
  virtual double min() const = 0;
  /// QKeras's upper bound: the weight-constraint bound, not always a representable value
  /// (e.g. quantized_bits(8,0).max() is 1.0, the largest output is 127/128).
  virtual double max() const = 0;
  /// The spec string in QKeras's format; get_quantizer(to_string()) gives an equal quantizer.
  virtual std::string to_string() const = 0;
  /// The parameters heteroq implements, by name in QKeras's order.
  virtual SpecKeywords config() const = 0;
  /// Whether every output is a signed power of two (the po2 quantizers): hardware multiplies by
  /// such values with a shift.
  virtual bool is_po2() const { return false; }
  /// Every representable value, in the order of the binary codes (two's complement for signed
  /// grids, as QKeras's range()).
  /// @throws heteroq::InvalidArgument for data-dependent scales (alpha "auto"/"auto_po2"), modes
  ///         whose code set QKeras does not define (quantized_relu with use_sigmoid), or more than
  ///         2^16 values.
  virtual std::vector<double> range() const = 0;
  /// `{"class_name": NAME, "config": {...}}` (Keras's serialization format), read back by
  /// quantizer_from_json().
  std::string to_json() const;
};

using QuantizerPtr = std::shared_ptr<Quantizer>;

namespace detail {
/// The scale the last forward() of an auto-scale quantizer chose (thread-safe).
class LastScale {
 public:
  void set(const at::Tensor& scale) const {
    std::lock_guard<std::mutex> lock(mutex_);
    scale_ = scale;
  }
  at::Tensor get() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return scale_;
  }

 private:
  mutable std::mutex mutex_;
  mutable at::Tensor scale_;
};
}  // namespace detail

/**
 * QKeras `quantized_bits(bits, integer, symmetric, keep_negative, alpha)`: fixed point with
 * `bits` bits of which `integer` are left of the binary point (sign excluded).
 *
 * With `m = 2^(bits - keep_negative)` and `step = alpha * 2^integer / m`:
 * `q(x) = step * clamp(round_half_even(x * m / 2^integer), keep_negative * (-m + symmetric), m - 1)`.
 * `bits = 1` with keep_negative gives `alpha * sign(x)` with sign(0) = +1.
 * The output is exactly the grid value (QKeras computes `x + (q - x)` in float, which differs when
 * |x| is huge); zero is always +0.0; NaN stays NaN; +-inf saturate to the ends of the grid.
 * Backward: identity (QKeras's STE; no clipping mask).
 * qnoise_factor q in [0, 1] (QKeras's quantization-noise blend): for q < 1 the output is
 * `x + q (q(x) - x)`; the gradient does not change.
 *
 *
 * `alpha = "auto"` or `"auto_po2"` chooses a scale per channel from the data at every call, as
 * QKeras does (see heteroq::ops::quantized_bits_auto; symmetric is forced, as in QKeras). The
 * channels are the axes in `scale_axis`, default axis 0 (PyTorch's output channel). scale() returns
 * the scale of the last call (QKeras's `quantizer.scale`). With "auto_po2", `elements_per_scale`
 * groups consecutive channels under one scale and `min_po2_exponent`/`max_po2_exponent` clip the
 * scale's exponent (QKeras).
 *
 * A per-channel alpha (QKeras's ndarray alpha) multiplies channel c of axis `scale_axis` (default
 * 0) by alpha[c] (heteroq::ops::quantized_bits_scaled).
 *
 * `use_ste = false` (QKeras): the same forward value, the gradient times (1 - qnoise_factor)
 * (so none at the default qnoise_factor 1).
 *
 * @throws heteroq::InvalidArgument if bits is not in [1, 32] ([2, 32] for the auto modes), integer
 *         not in [-64, 64], alpha is not a finite number > 0 (or "auto"/"auto_po2"), or
 *         qnoise_factor not in [0, 1].
 */
class HETEROQ_API QuantizedBits final : public Quantizer {
 public:
  explicit QuantizedBits(int64_t bits = 8, int64_t integer = 0, bool symmetric = false,
                         bool keep_negative = true, std::optional<double> alpha = std::nullopt,
                         double qnoise_factor = 1.0, bool use_stochastic_rounding = false,
                         bool use_ste = true);
  /// The auto-scale modes: `alpha` is "auto" or "auto_po2".
  QuantizedBits(int64_t bits, int64_t integer, bool symmetric, bool keep_negative,
                const std::string& alpha, double qnoise_factor = 1.0,
                std::optional<std::vector<int64_t>> scale_axis = std::nullopt,
                bool use_ste = true, std::optional<std::vector<int64_t>> elements_per_scale = std::nullopt,
                std::optional<int64_t> min_po2_exponent = std::nullopt,
                std::optional<int64_t> max_po2_exponent = std::nullopt);
  /// A per-channel alpha: one value > 0 per index of axis `scale_axis` (default 0).
  QuantizedBits(int64_t bits, int64_t integer, bool symmetric, bool keep_negative,
                std::vector<double> alpha, double qnoise_factor = 1.0,
                bool use_stochastic_rounding = false, std::optional<int64_t> scale_axis = std::nullopt,
                bool use_ste = true);
  std::string name() const override { return "quantized_bits"; }
  at::Tensor forward(const at::Tensor& x) const override;
  at::Tensor forward_train(const at::Tensor& x) const override;
  int64_t bits() const override { return bits_; }
  double min() const override;
  double max() const override;
  std::string to_string() const override;
  SpecKeywords config() const override;
  std::vector<double> range() const override;

  int64_t integer() const { return integer_; }
  bool symmetric() const { return symmetric_; }
  bool keep_negative() const { return keep_negative_; }
  /// The numeric alpha (nullopt for None, a per-channel alpha and the auto modes).
  std::optional<double> alpha() const { return alpha_; }
  /// The per-channel alpha (empty unless one was given).
  const std::vector<double>& channel_alpha() const { return channel_alpha_; }
  bool use_ste() const { return use_ste_; }
  /// "auto", "auto_po2", or "" for a numeric or absent alpha.
  const std::string& auto_alpha() const { return auto_alpha_; }
  const std::optional<std::vector<int64_t>>& scale_axis() const { return scale_axis_; }
  double qnoise_factor() const { return qnoise_factor_; }
  bool use_stochastic_rounding() const { return stochastic_; }
  /// QKeras's `quantizer.scale`: alpha (or 1) for a fixed alpha; in the auto modes, the scale the
  /// last forward() chose (undefined before the first call).
  at::Tensor scale() const;

 private:
  int64_t bits_, integer_;
  bool symmetric_, keep_negative_;
  std::optional<double> alpha_;
  std::vector<double> channel_alpha_;
  at::Tensor channel_alpha_tensor_;
  std::string auto_alpha_;
  std::optional<std::vector<int64_t>> scale_axis_;
  double qnoise_factor_;
  bool stochastic_ = false;
  bool use_ste_ = true;
  std::optional<std::vector<int64_t>> elements_per_scale_;
  std::optional<int64_t> min_po2_exponent_, max_po2_exponent_;
  detail::LastScale last_scale_;
  at::Tensor finish(const at::Tensor& y) const;
};

/**
 * QKeras `quantized_relu(bits, integer, use_sigmoid, negative_slope)`: a ReLU on an unsigned
 * fixed-point grid of step `2^(integer - nsb)`, `nsb = bits - (negative_slope != 0)`, saturating at
 * `2^integer - step`. A negative slope (a power of two) quantizes `slope * x` on the same step down
 * to `-slope * 2^integer`. use_sigmoid builds the grid from QKeras's hard sigmoid
 * `clip(0.5 x / 2^integer + 0.5, 0, 1)` as QKeras does.
 * Backward (QKeras's STE through `x_u = relu(x, slope)` capped at the top of the grid):
 * 1 on (0, top], `negative_slope` for x <= 0, 0 above the top.
 * qnoise_factor q < 1 gives `x_u + q (q(x) - x_u)`, x_u = relu(x, negative_slope) capped at top.
 * is_quantized_clip = false (QKeras): x_u is capped at `relu_upper_bound` instead (not at all when
 * it is None), and the output at min(q(x), relu_upper_bound). use_ste = false: the gradient times
 * (1 - qnoise_factor). enable_fast_inference: QKeras's fast path
 * `2^integer clip(round(x 2^(bits-integer)) 2^-bits, 0, 1 - 2^-bits)` (unsigned quantized_bits),
 * without gradient, slope, sigmoid or bound.
 *
 * @throws heteroq::InvalidArgument if bits is not in [1, 32] (>= 2 with a slope), integer not in
 *         [-64, 64], or negative_slope is negative, not finite or not a power of two.
 */
class HETEROQ_API QuantizedRelu final : public Quantizer {
 public:
  explicit QuantizedRelu(int64_t bits = 8, int64_t integer = 0, bool use_sigmoid = false,
                         double negative_slope = 0.0, double qnoise_factor = 1.0,
                         bool use_stochastic_rounding = false,
                         std::optional<double> relu_upper_bound = std::nullopt,
                         bool is_quantized_clip = true, bool use_ste = true,
                         bool enable_fast_inference = false);
  std::string name() const override { return "quantized_relu"; }
  at::Tensor forward(const at::Tensor& x) const override;
  at::Tensor forward_train(const at::Tensor& x) const override;
  int64_t bits() const override { return bits_; }
  double min() const override;
  double max() const override;
  std::string to_string() const override;
  SpecKeywords config() const override;
  std::vector<double> range() const override;

  int64_t integer() const { return integer_; }
  bool use_sigmoid() const { return use_sigmoid_; }
  double negative_slope() const { return negative_slope_; }
  double qnoise_factor() const { return qnoise_factor_; }
  bool use_stochastic_rounding() const { return stochastic_; }
  std::optional<double> relu_upper_bound() const { return relu_upper_bound_; }
  bool is_quantized_clip() const { return is_quantized_clip_; }
  bool use_ste() const { return use_ste_; }
  bool enable_fast_inference() const { return fast_inference_; }

 private:
  int64_t bits_, integer_;
  bool use_sigmoid_;
  double negative_slope_;
  double qnoise_factor_;
  bool stochastic_;
  std::optional<double> relu_upper_bound_;
  bool is_quantized_clip_, use_ste_, fast_inference_;
  at::Tensor finish(const at::Tensor& xq, const at::Tensor& x) const;
};

/**
 * QKeras `quantized_tanh(bits, use_stochastic_rounding, symmetric, use_real_tanh)`: with
 * m = 2^(bits-1), `q(x) = clamp(round(p m), -m + symmetric, m - 1) / m` where p = 2 hσ(x) - 1 and
 * hσ(v) = clip(v/2 + 1/2, 0, 1) is QKeras's default ("hard") internal sigmoid, or p = tanh(x)
 * with use_real_tanh. Backward (QKeras): the clip mask of the rounded value times dp/dx (1 on
 * [-1, 1] for the hard form, 1 - tanh² for the real one). use_stochastic_rounding: in training
 * (forward_train) the code rounds stochastically onto the grid (heteroq::ops::quantized_tanh_stochastic).
 */
class HETEROQ_API QuantizedTanh final : public Quantizer {
 public:
  explicit QuantizedTanh(int64_t bits = 8, bool symmetric = false, bool use_real_tanh = false,
                         bool use_stochastic_rounding = false);
  std::string name() const override { return "quantized_tanh"; }
  at::Tensor forward(const at::Tensor& x) const override;
  at::Tensor forward_train(const at::Tensor& x) const override;
  int64_t bits() const override { return bits_; }
  double min() const override;
  double max() const override;
  std::string to_string() const override;
  SpecKeywords config() const override;
  std::vector<double> range() const override;
  bool symmetric() const { return symmetric_; }
  bool use_real_tanh() const { return use_real_; }
  bool use_stochastic_rounding() const { return stochastic_; }

 private:
  int64_t bits_;
  bool symmetric_, use_real_, stochastic_;
};

/**
 * QKeras `quantized_sigmoid(bits, symmetric, use_real_sigmoid, use_stochastic_rounding)`: with
 * m = 2^bits, `q(x) = clamp(round(p m), symmetric, m - 1) / m` where p = hσ(x) (QKeras's hard
 * internal sigmoid) or sigmoid(x) with use_real_sigmoid. Backward: the clip mask of the rounded
 * value times dp/dx (1/2 on [-1, 1], or σ(1 - σ)). use_stochastic_rounding: as quantized_tanh.
 */
class HETEROQ_API QuantizedSigmoid final : public Quantizer {
 public:
  explicit QuantizedSigmoid(int64_t bits = 8, bool symmetric = false,
                            bool use_real_sigmoid = false, bool use_stochastic_rounding = false);
  std::string name() const override { return "quantized_sigmoid"; }
  at::Tensor forward(const at::Tensor& x) const override;
  at::Tensor forward_train(const at::Tensor& x) const override;
  int64_t bits() const override { return bits_; }
  double min() const override;
  double max() const override;
  std::string to_string() const override;
  SpecKeywords config() const override;
  std::vector<double> range() const override;
  bool symmetric() const { return symmetric_; }
  bool use_real_sigmoid() const { return use_real_; }
  bool use_stochastic_rounding() const { return stochastic_; }

 private:
  int64_t bits_;
  bool symmetric_, use_real_, stochastic_;
};

/**
 * QKeras `quantized_po2(bits, max_value, use_stochastic_rounding, quadratic_approximation,
 * log2_rounding, qnoise_factor)`: sign(x) 2^e, e = round (or floor) of log2|x| clipped to
 * [-2^(bits-1-need), 2^(bits-1-need) - 1], need = (max_value is None or > 1); |x| < 1e-7 and 0
 * give +2^min_exp (a sign-and-exponent code has no zero). Gradient: identity. See
 * heteroq::ops::quantized_po2. use_stochastic_rounding (with "rnd"): in training, QKeras's
 * mean-preserving stochastic_round_po2 (heteroq::ops::quantized_po2_stochastic). use_ste = false:
 * the gradient times (1 - qnoise_factor).
 */
class HETEROQ_API QuantizedPo2 final : public Quantizer {
 public:
  explicit QuantizedPo2(int64_t bits = 8, std::optional<double> max_value = std::nullopt,
                        bool quadratic_approximation = false, std::string log2_rounding = "rnd",
                        double qnoise_factor = 1.0, bool use_stochastic_rounding = false,
                        bool use_ste = true);
  std::string name() const override { return "quantized_po2"; }
  bool is_po2() const override { return true; }
  at::Tensor forward(const at::Tensor& x) const override;
  at::Tensor forward_train(const at::Tensor& x) const override;
  int64_t bits() const override { return bits_; }
  double min() const override { return -max(); }
  double max() const override;
  std::string to_string() const override;
  SpecKeywords config() const override;
  std::vector<double> range() const override;
  /// The exponent range.
  double min_exp() const;
  double max_exp() const;

 private:
  int64_t bits_;
  std::optional<double> max_value_;
  bool quadratic_;
  std::string log2_rounding_;
  double qnoise_factor_;
  bool stochastic_, use_ste_;
};

/**
 * QKeras `quantized_relu_po2(bits, max_value, negative_slope, use_stochastic_rounding,
 * quadratic_approximation, log2_rounding, qnoise_factor)`: 2^e(relu(x)) (no sign bit: exponents
 * in [-2^(bits-need), 2^(bits-need) - 1]); x <= 0 gives +2^min_exp without a slope, and
 * -2^e(-slope x) with one. Gradient: 1 for x > 0, the slope for x <= 0, 0 above max_value.
 * use_stochastic_rounding and use_ste: as quantized_po2.
 */
class HETEROQ_API QuantizedReluPo2 final : public Quantizer {
 public:
  explicit QuantizedReluPo2(int64_t bits = 8, std::optional<double> max_value = std::nullopt,
                            double negative_slope = 0.0, bool quadratic_approximation = false,
                            std::string log2_rounding = "rnd", double qnoise_factor = 1.0,
                            bool use_stochastic_rounding = false, bool use_ste = true);
  std::string name() const override { return "quantized_relu_po2"; }
  bool is_po2() const override { return true; }
  at::Tensor forward(const at::Tensor& x) const override;
  at::Tensor forward_train(const at::Tensor& x) const override;
  int64_t bits() const override { return bits_; }
  double min() const override;
  double max() const override;
  std::string to_string() const override;
  SpecKeywords config() const override;
  std::vector<double> range() const override;
  double min_exp() const;
  double max_exp() const;

 private:
  int64_t bits_;
  std::optional<double> max_value_;
  double negative_slope_;
  bool quadratic_;
  std::string log2_rounding_;
  double qnoise_factor_;
  bool stochastic_, use_ste_;
};

/**
 * QKeras `binary(use_01, alpha, ...)`: alpha * sign(x) with sign(0) = +1 ({0, alpha} with use_01).
 * alpha None (gradient: 1 - tanh²(x), QKeras's tanh STE), a number, or "auto" / "auto_po2" (a
 * per-channel least-squares scale of sign(x), channels on `scale_axis`, default axis 0).
 * use_stochastic_rounding: in training (forward_train), QKeras's stochastic pre-rounding and
 * random sign of zeros (heteroq::ops::binary_stochastic).
 */
class HETEROQ_API Binary final : public Quantizer {
 public:
  explicit Binary(bool use_01 = false, std::optional<double> alpha = std::nullopt,
                  bool use_stochastic_rounding = false);
  /// `elements_per_scale` (one scale per group of channels) and the po2 exponent limits (for
  /// "auto_po2") as QKeras's binary.
  Binary(bool use_01, const std::string& alpha,
         std::optional<std::vector<int64_t>> scale_axis = std::nullopt,
         bool use_stochastic_rounding = false,
         std::optional<std::vector<int64_t>> elements_per_scale = std::nullopt,
         std::optional<int64_t> min_po2_exponent = std::nullopt,
         std::optional<int64_t> max_po2_exponent = std::nullopt);
  std::string name() const override { return "binary"; }
  at::Tensor forward(const at::Tensor& x) const override;
  at::Tensor forward_train(const at::Tensor& x) const override;
  int64_t bits() const override { return 1; }
  double min() const override { return use_01_ ? 0.0 : -max(); }
  double max() const override { return alpha_ ? std::max(1.0, *alpha_) : 1.0; }
  std::string to_string() const override;
  SpecKeywords config() const override;
  std::vector<double> range() const override;
  /// The scale of the last call in the auto modes (undefined before), else alpha or 1.
  at::Tensor scale() const;

 private:
  bool use_01_;
  std::optional<double> alpha_;
  std::string auto_alpha_;
  std::optional<std::vector<int64_t>> scale_axis_;
  bool stochastic_ = false;
  std::optional<std::vector<int64_t>> elements_per_scale_;
  std::optional<int64_t> min_po2_exponent_, max_po2_exponent_;
  detail::LastScale last_scale_;
};

/**
 * QKeras `ternary(alpha, threshold, use_stochastic_rounding, number_of_unrolls)`: alpha * sign(x)
 * where |x| >= threshold (default 0.33), else 0; or with alpha "auto"/"auto_po2" QKeras's
 * iteration of threshold (scale/2) and per-channel least-squares scale, `number_of_unrolls` times
 * (threshold must then be None, as in QKeras). Gradient: 1 - tanh²(x) when alpha is None, else 1.
 * use_stochastic_rounding (auto modes only, as QKeras): in training the loop's rounding is
 * stochastic (heteroq::ops::ternary_stochastic).
 */
class HETEROQ_API Ternary final : public Quantizer {
 public:
  explicit Ternary(std::optional<double> alpha = std::nullopt,
                   std::optional<double> threshold = std::nullopt, int64_t number_of_unrolls = 5);
  Ternary(const std::string& alpha, int64_t number_of_unrolls = 5,
          std::optional<std::vector<int64_t>> scale_axis = std::nullopt,
          bool use_stochastic_rounding = false);
  std::string name() const override { return "ternary"; }
  at::Tensor forward(const at::Tensor& x) const override;
  at::Tensor forward_train(const at::Tensor& x) const override;
  int64_t bits() const override { return 2; }
  double min() const override { return -max(); }
  double max() const override { return alpha_ ? std::max(1.0, *alpha_) : 1.0; }
  std::string to_string() const override;
  SpecKeywords config() const override;
  std::vector<double> range() const override;
  at::Tensor scale() const;

 private:
  std::optional<double> alpha_, threshold_;
  int64_t unrolls_;
  std::string auto_alpha_;
  std::optional<std::vector<int64_t>> scale_axis_;
  bool stochastic_ = false;
  detail::LastScale last_scale_;
};

/**
 * QKeras `quantized_ulaw(bits, integer, symmetric, u)`: with m = 2^(bits-1),
 * `2^integer clip(sign(rp) log(1 + u|rp|) / log(1 + u), -1 + symmetric/m, 1 - 1/m)`,
 * rp = 2 round(hσ(x / 2^integer) m) / m - 1. Gradient: through the compander, round's STE.
 */
class HETEROQ_API QuantizedUlaw final : public Quantizer {
 public:
  explicit QuantizedUlaw(int64_t bits = 8, int64_t integer = 0, bool symmetric = false,
                         double u = 255.0);
  std::string name() const override { return "quantized_ulaw"; }
  at::Tensor forward(const at::Tensor& x) const override;
  int64_t bits() const override { return bits_; }
  double min() const override { return -max(); }
  double max() const override;
  std::string to_string() const override;
  SpecKeywords config() const override;
  std::vector<double> range() const override;

 private:
  int64_t bits_, integer_;
  bool symmetric_;
  double u_;
};

/**
 * QKeras `quantized_hswish(bits, integer, symmetric, alpha, ..., relu_shift, relu_upper_bound)`:
 * signed quantized_bits of the hard swish `x · min(relu(x + relu_shift), ub) / ub`
 * (use_stochastic_rounding: rounded stochastically in training, as quantized_bits).
 */
class HETEROQ_API QuantizedHswish final : public Quantizer {
 public:
  explicit QuantizedHswish(int64_t bits = 8, int64_t integer = 0, bool symmetric = false,
                           std::optional<double> alpha = std::nullopt, double qnoise_factor = 1.0,
                           double relu_shift = 3.0, double relu_upper_bound = 6.0,
                           bool use_stochastic_rounding = false);
  std::string name() const override { return "quantized_hswish"; }
  at::Tensor forward(const at::Tensor& x) const override;
  at::Tensor forward_train(const at::Tensor& x) const override;
  int64_t bits() const override { return bits_.bits(); }
  double min() const override;
  double max() const override { return bits_.max(); }
  std::string to_string() const override;
  SpecKeywords config() const override;
  std::vector<double> range() const override { return bits_.range(); }

 private:
  QuantizedBits bits_;
  double relu_shift_, relu_upper_bound_;
  bool stochastic_;
};

/**
 * QKeras `stochastic_binary(alpha, temperature, use_real_sigmoid)` and
 * `bernoulli(alpha, temperature, use_real_sigmoid)`: in training (forward_train),
 * sign(sigmoid(temperature x / s) - u) with u ~ U[0, 1) (bernoulli: in {0, 1}), s the per-channel
 * std of x for alpha "auto"/"auto_po2" (else 1), scaled by alpha, 1, or the least-squares scale of
 * sign(x). Outside training stochastic_binary is binary(alpha); bernoulli is always stochastic.
 * Gradient: identity.
 */
class HETEROQ_API StochasticBinary final : public Quantizer {
 public:
  StochasticBinary(bool bernoulli, std::optional<double> alpha, std::string auto_alpha,
                   double temperature = 6.0, bool use_real_sigmoid = true);
  std::string name() const override { return bernoulli_ ? "bernoulli" : "stochastic_binary"; }
  at::Tensor forward(const at::Tensor& x) const override;
  at::Tensor forward_train(const at::Tensor& x) const override;
  int64_t bits() const override { return 1; }
  double min() const override { return bernoulli_ ? 0.0 : -max(); }
  double max() const override { return alpha_ ? std::max(1.0, *alpha_) : 1.0; }
  std::string to_string() const override;
  SpecKeywords config() const override;
  std::vector<double> range() const override;

 private:
  bool bernoulli_;
  std::optional<double> alpha_;
  std::string auto_alpha_;
  double temperature_;
  bool use_real_sigmoid_;
};

/**
 * QKeras `stochastic_ternary(alpha, threshold, temperature, use_real_sigmoid, number_of_unrolls)`:
 * in training (forward_train; alpha must be "auto" or "auto_po2", as QKeras asserts) the sum of two
 * stochastic signs around the per-channel threshold (heteroq::ops::stochastic_ternary); otherwise
 * ternary(alpha, threshold, number_of_unrolls). Gradient: identity in training.
 */
class HETEROQ_API StochasticTernary final : public Quantizer {
 public:
  StochasticTernary(std::optional<double> alpha, std::string auto_alpha,
                    std::optional<double> threshold, double temperature = 8.0,
                    bool use_real_sigmoid = true, int64_t number_of_unrolls = 5);
  std::string name() const override { return "stochastic_ternary"; }
  at::Tensor forward(const at::Tensor& x) const override { return eval_->forward(x); }
  at::Tensor forward_train(const at::Tensor& x) const override;
  int64_t bits() const override { return 2; }
  double min() const override { return -max(); }
  double max() const override { return alpha_ ? std::max(1.0, *alpha_) : 1.0; }
  std::string to_string() const override;
  SpecKeywords config() const override;
  std::vector<double> range() const override { return eval_->range(); }

 private:
  std::optional<double> alpha_, threshold_;
  std::string auto_alpha_;
  double temperature_;
  bool use_real_sigmoid_;
  int64_t unrolls_;
  std::shared_ptr<Ternary> eval_;
};

/**
 * Builds a quantizer from its QKeras name and arguments, checked as QKeras's constructor takes them
 * (positional in QKeras's order, then keywords). QKeras arguments that only concern TensorFlow
 * (`var_name`, `use_variables`) are accepted and ignored; ones heteroq does not implement yet are
 * accepted only at their default value.
 *
 * @throws heteroq::SpecError for an unknown name or keyword, or too many positional arguments;
 *         heteroq::InvalidArgument for a value of the wrong type or out of range.
 */
HETEROQ_API QuantizerPtr make_quantizer(const std::string& name,
                                        const std::vector<SpecValue>& positional,
                                        const SpecKeywords& keywords);

/**
 * Parses a QKeras spec string into a quantizer, e.g. `get_quantizer("quantized_bits(6,0,alpha=1)")`.
 * `get_quantizer(q->to_string())` is equal to `q`.
 * @throws heteroq::SpecError / heteroq::InvalidArgument as parse_spec() and make_quantizer().
 */
HETEROQ_API QuantizerPtr get_quantizer(const std::string& spec);

/**
 * Builds a quantizer from Quantizer::to_json()'s format, `{"class_name": ..., "config": {...}}`.
 * @throws heteroq::SpecError for malformed JSON or a missing/ill-typed field;
 *         heteroq::InvalidArgument as make_quantizer().
 */
HETEROQ_API QuantizerPtr quantizer_from_json(const std::string& json);

/**
 * QKeras's implicit rule for weight quantizers (`_set_trainable_parameter`, applied by QKeras's
 * weight layers): a quantized_bits (2 bits or more), binary, ternary, stochastic_binary,
 * stochastic_ternary or bernoulli without alpha gets alpha "auto_po2" (quantized_bits also
 * symmetric), i.e. per-channel power-of-two scales. Other quantizers, and ones with an alpha, are
 * returned unchanged. heteroq's layers do not apply it unless asked (model_quantize's
 * qkeras_compatible, or this function).
 */
HETEROQ_API QuantizerPtr qkeras_weight_quantizer(const QuantizerPtr& q);

/// The names get_quantizer() knows.
HETEROQ_API std::vector<std::string> quantizer_names();

}  // namespace heteroq
