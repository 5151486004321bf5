// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Learned precision: the HGQ helper operators (group statistics, integer bits from ranges,
// differentiable bit widths, EBOPs of dense and convolution layers; registered as
// torch.ops.heteroq.* so that the Python classes call the same code), HQuantizer, the H layers,
// and the conversions to and from heteroq's Q layers.
#include "heteroq/nn/hgq.h"

#include <torch/library.h>
#include <torch/torch.h>

#include <cmath>
#include <set>
#include <string>
#include <type_traits>
#include <utility>

#include "heteroq/nn/conv.h"
#include "heteroq/nn/folded.h"
#include "heteroq/nn/layers.h"
#include "heteroq/ops/fixed.h"

namespace heteroq::nn {
namespace {

// ------------------------------------------------------------------------------------------------
// Operators.

// The axes of x that a widths tensor of shape `ws` (aligned to x's trailing axes) reduces over:
// every leading axis and every axis where the widths have size 1.
std::vector<int64_t> group_axes(const at::Tensor& x, at::IntArrayRef ws, const char* who) {
  const int64_t off = x.dim() - static_cast<int64_t>(ws.size());
  TORCH_CHECK_VALUE(off >= 0, who, ": an input of shape ", x.sizes(),
                    " has fewer axes than the widths ", ws);
  std::vector<int64_t> axes;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (d < off) {
      axes.push_back(d);
      continue;
    }
    const int64_t w = ws[d - off];
    if (w == 1) {
      axes.push_back(d);
    } else {
      TORCH_CHECK_VALUE(w == x.size(d), who, ": an input of shape ", x.sizes(),
                        " does not match the widths' shape ", ws);
    }
  }
  return axes;
}

// (max |x|, min x) over each group of elements sharing a width, shaped `widths_shape`.
std::tuple<at::Tensor, at::Tensor> hgq_group_stats(const at::Tensor& x_in,
                                                   at::IntArrayRef widths_shape) {
  TORCH_CHECK_TYPE(at::isFloatingType(x_in.scalar_type()),
                   "heteroq::_hgq_group_stats: expected a floating-point tensor, got ",
                   x_in.scalar_type());
  const at::Tensor x = x_in.detach();
  const auto axes = group_axes(x, widths_shape, "heteroq::_hgq_group_stats");
  at::Tensor m = x.abs(), mn = x;
  if (!axes.empty()) {
    m = at::amax(m, axes, /*keepdim=*/true);
    mn = at::amin(mn, axes, /*keepdim=*/true);
  }
  return {m.reshape(widths_shape).clone(), mn.reshape(widths_shape).clone()};
}

// Integer bits from the groups' largest magnitudes m, rounded to the grid first (half up, so a
// value that rounds up to a power of two is not clipped): m_q = floor(m 2^f + 1/2) 2^-f and
// i = floor(log2 m_q) + 1, the smallest i with m_q < 2^i; where m_q = 0 (every value rounds to
// 0), -(f + k), a width of 0. f = round(frac_bits). Clamped to [-64, 64].
at::Tensor hgq_int_bits(const at::Tensor& max_abs, const at::Tensor& frac_bits,
                        const at::Tensor& keep_negative) {
  const at::Tensor f = at::round(frac_bits.detach());
  const at::Tensor mq = at::floor(max_abs.detach() * at::exp2(f) + 0.5) * at::exp2(-f);
  const at::Tensor from_range = at::floor(at::log2(mq)) + 1;
  const at::Tensor empty = -(f + keep_negative.detach());
  return at::where(mq > 0, from_range, empty).clamp(-64, 64);
}

at::Tensor ste_round(const at::Tensor& t) { return t + (at::round(t) - t).detach(); }

// relu(k + i + f), f (and a trainable i) through a straight-through round.
at::Tensor hgq_bit_widths(const at::Tensor& keep_negative, const at::Tensor& int_bits,
                          const at::Tensor& frac_bits) {
  return at::relu(keep_negative.detach() + ste_round(int_bits) + ste_round(frac_bits));
}

// The exact bit span of each value of q (sign excluded; 0 for 0): with |q| = M 2^(e - 53) for the
// 53-bit integer mantissa M of frexp, the span is floor(log2 |q|) - (e - 53 + ctz(M)) + 1. The
// gradient w.r.t. f is 1 where q != 0.
at::Tensor hgq_value_widths(const at::Tensor& q_in, const at::Tensor& frac_bits) {
  TORCH_CHECK_TYPE(at::isFloatingType(q_in.scalar_type()),
                   "heteroq::hgq_value_widths: expected a floating-point tensor, got ",
                   q_in.scalar_type());
  const at::Tensor q = q_in.detach().to(at::kDouble).abs();
  const auto fr = at::frexp(q);
  const at::Tensor mant = (std::get<0>(fr) * 9007199254740992.0).to(at::kLong);  // 2^53
  const at::Tensor low = at::bitwise_and(mant, -mant).to(at::kDouble);
  const at::Tensor e = std::get<1>(fr).to(at::kDouble);
  const at::Tensor nz = (q > 0) & at::isfinite(q);
  const at::Tensor hi = at::floor(at::log2(at::where(nz, q, at::ones_like(q))));
  const at::Tensor lo = e - 53 + at::log2(at::where(nz, low, at::ones_like(low)));
  at::Tensor span = at::where(nz, hi - lo + 1, at::zeros_like(q)).to(frac_bits.scalar_type());
  const at::Tensor f = frac_bits.expand(q.sizes());
  return span + (f - f.detach()) * nz.to(frac_bits.scalar_type());
}

at::Tensor bias_term(const c10::optional<at::Tensor>& bw_b, int64_t additions) {
  if (!bw_b.has_value() || !bw_b->defined() || bw_b->numel() == 0) return at::Tensor();
  return bw_b->mean() * static_cast<double>(additions);
}

// Σ_ij bw_in[j] bw_w[i, j] times the positions, plus mean(bw_b) times the outputs per sample.
at::Tensor hgq_ebops_linear(const at::Tensor& bw_in, const at::Tensor& bw_w,
                            const c10::optional<at::Tensor>& bw_b, int64_t positions) {
  TORCH_CHECK_VALUE(bw_w.dim() == 2,
                    "heteroq::hgq_ebops_linear: expected kernel widths of shape "
                    "(out, in), got ",
                    bw_w.sizes());
  TORCH_CHECK_VALUE(bw_in.dim() == 0 ||
                        (bw_in.dim() == 1 && (bw_in.size(0) == bw_w.size(1) || bw_in.size(0) == 1)),
                    "heteroq::hgq_ebops_linear: input widths of shape ", bw_in.sizes(),
                    " do not match ", bw_w.size(1), " input features");
  at::Tensor e = (bw_w * bw_in).sum() * static_cast<double>(positions);
  const at::Tensor b = bias_term(bw_b, bw_w.size(0) * positions);
  return b.defined() ? e + b : e;
}

// The sum over every multiplication of a convolution of bw_in (broadcast to (C, *input_size))
// times the kernel's widths: the convolution of the width map with them, summed.
at::Tensor hgq_ebops_conv(const at::Tensor& bw_in, const at::Tensor& bw_w,
                          const c10::optional<at::Tensor>& bw_b, at::IntArrayRef input_size,
                          at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
                          int64_t groups) {
  const int64_t d = static_cast<int64_t>(input_size.size());
  TORCH_CHECK_VALUE(d == 1 || d == 2, "heteroq::hgq_ebops_conv: 1-D or 2-D convolutions, got ", d,
                    " spatial axes");
  TORCH_CHECK_VALUE(bw_w.dim() == d + 2, "heteroq::hgq_ebops_conv: kernel widths of shape ",
                    bw_w.sizes(), " for ", d, " spatial axes");
  std::vector<int64_t> shape = {bw_w.size(1) * groups};
  shape.insert(shape.end(), input_size.begin(), input_size.end());
  at::Tensor map;
  try {
    map = bw_in.expand(shape).unsqueeze(0);
  } catch (const c10::Error&) {
    TORCH_CHECK_VALUE(false, "heteroq::hgq_ebops_conv: input widths of shape ", bw_in.sizes(),
                      " do not broadcast to the input ", at::IntArrayRef(shape));
  }
  map = map.to(bw_w.scalar_type());
  const at::Tensor out = d == 1 ? at::conv1d(map, bw_w, {}, stride, padding, dilation, groups)
                                : at::conv2d(map, bw_w, {}, stride, padding, dilation, groups);
  at::Tensor e = out.sum();
  const at::Tensor b = bias_term(bw_b, out.numel());
  return b.defined() ? e + b : e;
}

// A transposed convolution's EBOPs: every input value (bw_in broadcast to (C_in, *input_size))
// meets every kernel value of its input channel (bw_w (C_in, out / groups, k...)), as QTools
// counts it: Σ_c (Σ_positions bw_in[c]) (Σ bw_w[c]); plus mean(bw_b) times `outputs`.
at::Tensor hgq_ebops_conv_transpose(const at::Tensor& bw_in, const at::Tensor& bw_w,
                                    const c10::optional<at::Tensor>& bw_b, at::IntArrayRef input_size,
                                    int64_t outputs) {
  TORCH_CHECK_VALUE(bw_w.dim() == static_cast<int64_t>(input_size.size()) + 2 && bw_w.dim() >= 3,
                    "heteroq::hgq_ebops_conv_transpose: kernel widths of shape ", bw_w.sizes(),
                    " for ", input_size.size(), " spatial axes");
  TORCH_CHECK_VALUE(outputs >= 0, "heteroq::hgq_ebops_conv_transpose: `outputs` must be >= 0");
  std::vector<int64_t> shape = {bw_w.size(0)};
  shape.insert(shape.end(), input_size.begin(), input_size.end());
  at::Tensor map;
  try {
    map = bw_in.expand(shape);
  } catch (const c10::Error&) {
    TORCH_CHECK_VALUE(false, "heteroq::hgq_ebops_conv_transpose: input widths of shape ", bw_in.sizes(),
                      " do not broadcast to the input ", at::IntArrayRef(shape));
  }
  const at::Tensor per_channel = map.to(bw_w.scalar_type()).reshape({bw_w.size(0), -1}).sum(1);
  at::Tensor e = (per_channel * bw_w.reshape({bw_w.size(0), -1}).sum(1)).sum();
  const at::Tensor b = bias_term(bw_b, outputs);
  return b.defined() ? e + b : e;
}

// ------------------------------------------------------------------------------------------------
// Entry points (typed dispatcher calls, so C++ and Python run the same registered kernels).

std::tuple<at::Tensor, at::Tensor> group_stats(const at::Tensor& x, at::IntArrayRef ws) {
  static auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("heteroq::_hgq_group_stats", "")
          .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, at::IntArrayRef)>();
  return op.call(x, ws);
}
at::Tensor int_bits_op(const at::Tensor& m, const at::Tensor& f, const at::Tensor& k) {
  static auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("heteroq::_hgq_int_bits", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&)>();
  return op.call(m, f, k);
}
at::Tensor bit_widths_op(const at::Tensor& k, const at::Tensor& i, const at::Tensor& f) {
  static auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("heteroq::hgq_bit_widths", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&)>();
  return op.call(k, i, f);
}
at::Tensor value_widths_op(const at::Tensor& q, const at::Tensor& f) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::hgq_value_widths", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&)>();
  return op.call(q, f);
}
at::Tensor ebops_linear_op(const at::Tensor& bw_in, const at::Tensor& bw_w,
                           const c10::optional<at::Tensor>& bw_b, int64_t positions) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::hgq_ebops_linear", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&,
                                         const c10::optional<at::Tensor>&, int64_t)>();
  return op.call(bw_in, bw_w, bw_b, positions);
}
at::Tensor ebops_conv_op(const at::Tensor& bw_in, const at::Tensor& bw_w,
                         const c10::optional<at::Tensor>& bw_b, at::IntArrayRef input_size,
                         at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
                         int64_t groups) {
  static auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("heteroq::hgq_ebops_conv", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const c10::optional<at::Tensor>&,
                            at::IntArrayRef, at::IntArrayRef, at::IntArrayRef, at::IntArrayRef,
                            int64_t)>();
  return op.call(bw_in, bw_w, bw_b, input_size, stride, padding, dilation, groups);
}

at::Tensor ebops_conv_transpose_op(const at::Tensor& bw_in, const at::Tensor& bw_w,
                                   const c10::optional<at::Tensor>& bw_b, at::IntArrayRef input_size,
                                   int64_t outputs) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("heteroq::hgq_ebops_conv_transpose", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&,
                                         const c10::optional<at::Tensor>&, at::IntArrayRef, int64_t)>();
  return op.call(bw_in, bw_w, bw_b, input_size, outputs);
}

void check_mode_args(const std::string& who, const std::string& rm, const std::string& om) {
  if (!ops::is_fixed_round_mode(rm)) {
    throw InvalidArgument(who + ": `round_mode` must be 'RND', 'RND_CONV' or 'TRN', got '" + rm +
                          "'");
  }
  if (!ops::is_fixed_overflow_mode(om)) {
    throw InvalidArgument(who + ": `overflow_mode` must be 'SAT', 'SAT_SYM' or 'WRAP', got '" + om +
                          "'");
  }
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// HQuantizer

HQuantizerOptions::HQuantizerOptions(std::vector<int64_t> shape) : shape_(std::move(shape)) {}

HQuantizerImpl::HQuantizerImpl(const HQuantizerOptions& options_) : options(options_) { reset(); }

void HQuantizerImpl::reset() {
  const std::string who = "HQuantizer";
  const auto& shape = options.shape();
  for (int64_t s : shape) {
    if (s < 1) throw InvalidArgument(who + ": `shape` sizes must be >= 1, got " + c10::str(shape));
  }
  const std::string& g = options.granularity();
  const auto rank = static_cast<int64_t>(shape.size());
  if (g == "tensor") {
    widths_shape_ = {};
  } else if (g == "element") {
    widths_shape_ = shape;
  } else if (g == "channel") {
    int64_t axis = options.channel_axis();
    if (axis < 0) axis += rank;
    if (axis < 0 || axis >= rank) {
      throw InvalidArgument(who + ": `channel_axis` " + std::to_string(options.channel_axis()) +
                            " is out of range for a shape of rank " + std::to_string(rank));
    }
    widths_shape_.assign(shape.size(), 1);
    widths_shape_[axis] = shape[axis];
  } else {
    throw InvalidArgument(who + ": `granularity` must be 'tensor', 'channel' or 'element', got '" +
                          g + "'");
  }
  check_mode_args(who, options.round_mode(), options.overflow_mode());
  if (options.keep_negative() < -1 || options.keep_negative() > 1) {
    throw InvalidArgument(who + ": `keep_negative` must be -1 (from the data), 0 or 1, got " +
                          std::to_string(options.keep_negative()));
  }
  if (!(options.min_frac_bits() <= options.max_frac_bits()) ||
      std::fabs(options.min_frac_bits()) > 64 || std::fabs(options.max_frac_bits()) > 64) {
    throw InvalidArgument(who + ": need -64 <= min_frac_bits <= max_frac_bits <= 64");
  }
  if (!std::isfinite(options.init_bits()) || std::fabs(options.init_bits()) > 64 ||
      !std::isfinite(options.init_integer()) || std::fabs(options.init_integer()) > 64) {
    throw InvalidArgument(who + ": `init_bits` and `init_integer` must be finite, in [-64, 64]");
  }
  frac_bits = register_parameter("frac_bits", torch::full(widths_shape_, options.init_bits()));
  const auto i0 = torch::full(widths_shape_, options.init_integer());
  if (options.trainable_integer()) {
    int_bits = register_parameter("int_bits", i0);
  } else {
    int_bits = register_buffer("int_bits", i0);
  }
  keep_negative = register_buffer(
      "keep_negative", torch::full(widths_shape_, options.keep_negative() == 0 ? 0.0 : 1.0));
  max_abs = register_buffer("max_abs", torch::zeros(widths_shape_));
  min_value = register_buffer("min_value", torch::zeros(widths_shape_));
}

void HQuantizerImpl::reset_ranges() {
  torch::NoGradGuard no_grad;
  max_abs.zero_();
  min_value.zero_();
}

torch::Tensor HQuantizerImpl::used_frac_bits() const {
  return torch::clamp(frac_bits, options.min_frac_bits(), options.max_frac_bits());
}

std::pair<torch::Tensor, torch::Tensor> HQuantizerImpl::widths_for(const torch::Tensor& x) const {
  if (!options.is_weight() || !x.defined()) return {keep_negative, int_bits};
  torch::NoGradGuard no_grad;
  auto [m, mn] = group_stats(x, widths_shape_);
  m = m.to(frac_bits.scalar_type());
  mn = mn.to(frac_bits.scalar_type());
  torch::Tensor k =
      options.keep_negative() == -1 ? (mn < 0).to(frac_bits.scalar_type()) : keep_negative;
  torch::Tensor i =
      options.trainable_integer() ? int_bits : int_bits_op(m, used_frac_bits().detach(), k);
  return {k, i};
}

torch::Tensor HQuantizerImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK_TYPE(x.defined() && at::isFloatingType(x.scalar_type()),
                   "HQuantizer: expected a floating-point tensor");
  if (options.is_weight()) {
    auto [k, i] = widths_for(x);
    torch::NoGradGuard no_grad;
    keep_negative.copy_(k);
    if (!options.trainable_integer()) int_bits.copy_(i);
    auto [m, mn] = group_stats(x, widths_shape_);
    max_abs.copy_(m);
    min_value.copy_(mn);
  } else if (is_training()) {
    torch::NoGradGuard no_grad;
    auto [m, mn] = group_stats(x, widths_shape_);
    max_abs.copy_(torch::maximum(max_abs, m.to(max_abs.scalar_type())));
    min_value.copy_(torch::minimum(min_value, mn.to(min_value.scalar_type())));
    if (options.keep_negative() == -1)
      keep_negative.copy_((min_value < 0).to(max_abs.scalar_type()));
    if (!options.trainable_integer()) {
      int_bits.copy_(int_bits_op(max_abs, used_frac_bits().detach(), keep_negative));
    }
  }
  return ops::fixed_quantize(x, keep_negative, int_bits, used_frac_bits(), options.round_mode(),
                             options.overflow_mode());
}

torch::Tensor HQuantizerImpl::quantize(const torch::Tensor& x) const {
  auto [k, i] = widths_for(x);
  return ops::fixed_quantize(x, k, i, used_frac_bits(), options.round_mode(),
                             options.overflow_mode());
}

torch::Tensor HQuantizerImpl::bit_widths() const {
  return bit_widths_op(keep_negative, int_bits, used_frac_bits());
}

torch::Tensor HQuantizerImpl::value_widths(const torch::Tensor& q) const {
  return value_widths_op(q, used_frac_bits());
}

std::shared_ptr<FixedQuantizer> HQuantizerImpl::to_fixed(const torch::Tensor& values) const {
  auto [k, i] = widths_for(values);
  torch::NoGradGuard no_grad;
  return std::make_shared<FixedQuantizer>(k.detach().cpu(), at::round(i.detach()).cpu(),
                                          at::round(used_frac_bits().detach()).cpu(),
                                          options.round_mode(), options.overflow_mode());
}

void HQuantizerImpl::pretty_print(std::ostream& stream) const {
  stream << "heteroq::nn::HQuantizer(granularity=" << options.granularity()
         << ", widths=" << c10::IntArrayRef(widths_shape_) << ", is_weight=" << std::boolalpha
         << options.is_weight() << ", round_mode=" << options.round_mode()
         << ", overflow_mode=" << options.overflow_mode() << ")";
}

// ------------------------------------------------------------------------------------------------
// Layers

namespace {

HQuantizer make_input_quantizer(const HLayerQuantizers& q, std::vector<int64_t> shape,
                                const std::string& default_granularity) {
  return HQuantizer(
      HQuantizerOptions(std::move(shape))
          .granularity(q.input_granularity().empty() ? default_granularity : q.input_granularity())
          .channel_axis(0)
          .init_bits(q.input_init_bits())
          .keep_negative(q.input_keep_negative())
          .round_mode(q.round_mode())
          .overflow_mode(q.overflow_mode()));
}

HQuantizer make_weight_quantizer(const HLayerQuantizers& q, std::vector<int64_t> shape,
                                 const std::string& granularity, double init_bits) {
  return HQuantizer(HQuantizerOptions(std::move(shape))
                        .granularity(granularity)
                        .channel_axis(0)
                        .is_weight(true)
                        .init_bits(init_bits)
                        .keep_negative(-1)
                        .round_mode(q.round_mode())
                        .overflow_mode(q.overflow_mode()));
}

at::Tensor input_widths(const HQuantizer& iq, const at::Tensor& like) {
  return iq ? iq->bit_widths() : torch::full({}, 32.0, like.options());
}

// As torch::nn's convolutions (fan_in from the kernel's dimension 1 on).
void init_conv(torch::Tensor& weight, torch::Tensor& bias) {
  torch::NoGradGuard no_grad;
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5));
  if (bias.defined()) {
    const int64_t fan_in = weight.numel() / weight.size(0);
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    torch::nn::init::uniform_(bias, -bound, bound);
  }
}

// A convolution's (direct or transposed, `dims` spatial axes) parameters and quantizers: weight
// of `wshape`, bias, the input's widths per channel (or per element of input_shape (C, ...)).
template <typename Layer>
void conv_parameters(Layer& m, const HLayerQuantizers& q, std::vector<int64_t> wshape, size_t dims,
                     int64_t in_channels, int64_t out_channels, bool with_bias, const std::string& who) {
  m.weight = m.register_parameter("weight", torch::empty(wshape));
  m.bias = with_bias ? m.register_parameter("bias", torch::empty(out_channels))
                     : m.register_parameter("bias", {}, /*requires_grad=*/false);
  init_conv(m.weight, m.bias);
  m.input_quantizer = nullptr;
  if (q.quantize_input()) {
    std::vector<int64_t> ishape(dims + 1, 1);
    ishape[0] = in_channels;
    if (q.input_granularity() == "element") {
      if (q.input_shape().size() != dims + 1 || q.input_shape()[0] != in_channels) {
        throw InvalidArgument(who + ": per-element input widths need `input_shape` (C, " +
                              (dims == 1 ? std::string("L") : std::string("H, W")) +
                              ") with C = in_channels");
      }
      ishape = q.input_shape();
    }
    m.input_quantizer = m.register_module("input_quantizer", make_input_quantizer(q, ishape, "channel"));
  }
  m.kernel_quantizer = m.register_module(
      "kernel_quantizer", make_weight_quantizer(q, wshape, q.kernel_granularity(), q.kernel_init_bits()));
  m.bias_quantizer = nullptr;
  if (with_bias) {
    m.bias_quantizer = m.register_module(
        "bias_quantizer", make_weight_quantizer(q, {out_channels}, q.bias_granularity(), q.bias_init_bits()));
  }
}

}  // namespace

HDenseOptions::HDenseOptions(int64_t in_features, int64_t out_features)
    : in_features_(in_features), out_features_(out_features) {}

HDenseImpl::HDenseImpl(const HDenseOptions& options_) : options(options_) {
  if (options.in_features() <= 0 || options.out_features() <= 0) {
    throw InvalidArgument("HDense: `in_features` and `out_features` must be > 0, got " +
                          std::to_string(options.in_features()) + " and " +
                          std::to_string(options.out_features()));
  }
  reset();
}

void HDenseImpl::reset() {
  const auto& q = options.quantizers();
  const int64_t in = options.in_features(), out = options.out_features();
  weight = register_parameter("weight", torch::empty({out, in}));
  bias = options.bias() ? register_parameter("bias", torch::empty(out))
                        : register_parameter("bias", {}, /*requires_grad=*/false);
  reset_parameters();
  input_quantizer = nullptr;
  if (q.quantize_input()) {
    input_quantizer = register_module("input_quantizer", make_input_quantizer(q, {in}, "element"));
  }
  kernel_quantizer = register_module(
      "kernel_quantizer",
      make_weight_quantizer(q, {out, in}, q.kernel_granularity(), q.kernel_init_bits()));
  bias_quantizer = nullptr;
  if (options.bias()) {
    bias_quantizer =
        register_module("bias_quantizer",
                        make_weight_quantizer(q, {out}, q.bias_granularity(), q.bias_init_bits()));
  }
}

void HDenseImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5));
  if (bias.defined()) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(options.in_features()));
    torch::nn::init::uniform_(bias, -bound, bound);
  }
}

torch::Tensor HDenseImpl::forward(const torch::Tensor& input) {
  TORCH_CHECK_VALUE(input.dim() >= 1 && input.size(-1) == options.in_features(),
                    "HDense: expected input with last dimension ", options.in_features(),
                    ", got shape ", input.sizes());
  last_positions = 1;
  for (int64_t d = 1; d + 1 < input.dim(); ++d) last_positions *= input.size(d);
  const torch::Tensor x = input_quantizer ? input_quantizer->forward(input) : input;
  const torch::Tensor b = bias.defined() ? bias_quantizer->forward(bias) : torch::Tensor();
  return torch::nn::functional::linear(x, kernel_quantizer->forward(weight), b);
}

at::Tensor HDenseImpl::ebops() const {
  const at::Tensor bw_w = kernel_quantizer->value_widths(kernel_quantizer->quantize(weight));
  c10::optional<at::Tensor> bw_b;
  if (bias.defined()) bw_b = bias_quantizer->value_widths(bias_quantizer->quantize(bias));
  return ebops_linear_op(input_widths(input_quantizer, bw_w).reshape({-1}).squeeze(), bw_w, bw_b,
                         last_positions);
}

void HDenseImpl::pretty_print(std::ostream& stream) const {
  stream << "heteroq::nn::HDense(in_features=" << options.in_features()
         << ", out_features=" << options.out_features() << ", bias=" << std::boolalpha
         << options.bias() << ", quantize_input=" << options.quantizers().quantize_input() << ")";
}

template <size_t D, typename Derived>
HConvImplBase<D, Derived>::HConvImplBase(HConvOptions<D> options_) : options(std::move(options_)) {
  const std::string who = D == 1 ? "HConv1d" : "HConv2d";
  if (options.in_channels() <= 0 || options.out_channels() <= 0 || options.groups() <= 0 ||
      options.in_channels() % options.groups() != 0 ||
      options.out_channels() % options.groups() != 0) {
    throw InvalidArgument(who +
                          ": `in_channels` and `out_channels` must be > 0 and divisible by "
                          "`groups` (" +
                          std::to_string(options.groups()) + ")");
  }
  this->reset();
}

template <size_t D, typename Derived>
void HConvImplBase<D, Derived>::reset() {
  std::vector<int64_t> wshape = {options.out_channels(), options.in_channels() / options.groups()};
  for (int64_t k : *options.kernel_size()) wshape.push_back(k);
  conv_parameters(*this, options.quantizers(), wshape, D, options.in_channels(), options.out_channels(),
                  options.bias(), D == 1 ? "HConv1d" : "HConv2d");
}

template <size_t D, typename Derived>
void HConvImplBase<D, Derived>::reset_parameters() {
  init_conv(weight, bias);
}

template <size_t D, typename Derived>
torch::Tensor HConvImplBase<D, Derived>::forward(const torch::Tensor& input) {
  const char* who = D == 1 ? "HConv1d" : "HConv2d";
  TORCH_CHECK_VALUE(
      input.dim() == static_cast<int64_t>(D) + 2 && input.size(1) == options.in_channels(), who,
      ": expected input of shape (N, ", options.in_channels(), D == 1 ? ", L)" : ", H, W)",
      ", got ", input.sizes());
  last_input_size.assign(input.sizes().begin() + 2, input.sizes().end());
  const torch::Tensor x = input_quantizer ? input_quantizer->forward(input) : input;
  const torch::Tensor w = kernel_quantizer->forward(weight);
  const torch::Tensor b = bias.defined() ? bias_quantizer->forward(bias) : torch::Tensor();
  if constexpr (D == 1) {
    return torch::conv1d(x, w, b, *options.stride(), *options.padding(), *options.dilation(),
                         options.groups());
  } else {
    return torch::conv2d(x, w, b, *options.stride(), *options.padding(), *options.dilation(),
                         options.groups());
  }
}

template <size_t D, typename Derived>
at::Tensor HConvImplBase<D, Derived>::ebops() const {
  if (last_input_size.empty()) {
    throw InvalidArgument(std::string(D == 1 ? "HConv1d" : "HConv2d") +
                          ".ebops(): the input size is unknown until the first forward()");
  }
  const at::Tensor bw_w = kernel_quantizer->value_widths(kernel_quantizer->quantize(weight));
  c10::optional<at::Tensor> bw_b;
  if (bias.defined()) bw_b = bias_quantizer->value_widths(bias_quantizer->quantize(bias));
  return ebops_conv_op(input_widths(input_quantizer, bw_w), bw_w, bw_b, last_input_size,
                       *options.stride(), *options.padding(), *options.dilation(),
                       options.groups());
}

template <size_t D, typename Derived>
void HConvImplBase<D, Derived>::pretty_print(std::ostream& stream) const {
  stream << "heteroq::nn::" << (D == 1 ? "HConv1d" : "HConv2d") << "(" << options.in_channels()
         << ", " << options.out_channels() << ", kernel_size=" << options.kernel_size()
         << ", stride=" << options.stride() << ", padding=" << options.padding()
         << ", groups=" << options.groups() << ", bias=" << std::boolalpha << options.bias() << ")";
}

template class HConvImplBase<1, HConv1dImpl>;
template class HConvImplBase<2, HConv2dImpl>;

HConvTranspose2dImpl::HConvTranspose2dImpl(HConvTranspose2dOptions options_)
    : options(std::move(options_)) {
  if (options.in_channels() <= 0 || options.out_channels() <= 0 || options.groups() <= 0 ||
      options.in_channels() % options.groups() != 0 ||
      options.out_channels() % options.groups() != 0) {
    throw InvalidArgument("HConvTranspose2d: `in_channels` and `out_channels` must be > 0 and "
                          "divisible by `groups` (" + std::to_string(options.groups()) + ")");
  }
  for (int a = 0; a < 2; ++a) {
    if ((*options.kernel_size())[a] < 1 || (*options.stride())[a] < 1 || (*options.dilation())[a] < 1 ||
        (*options.padding())[a] < 0) {
      throw InvalidArgument("HConvTranspose2d: `kernel_size`, `stride` and `dilation` must be >= 1 and "
                            "`padding` >= 0");
    }
    const int64_t op = (*options.output_padding())[a];
    if (op < 0 || (op >= (*options.stride())[a] && op >= (*options.dilation())[a])) {
      throw InvalidArgument("HConvTranspose2d: `output_padding` must be >= 0 and smaller than "
                            "`stride` or `dilation` (PyTorch's rule)");
    }
  }
  reset();
}

void HConvTranspose2dImpl::reset() {
  std::vector<int64_t> wshape = {options.in_channels(), options.out_channels() / options.groups()};
  for (int64_t k : *options.kernel_size()) wshape.push_back(k);
  conv_parameters(*this, options.quantizers(), wshape, 2, options.in_channels(), options.out_channels(),
                  options.bias(), "HConvTranspose2d");
}

void HConvTranspose2dImpl::reset_parameters() {
  init_conv(weight, bias);
}

torch::Tensor HConvTranspose2dImpl::forward(const torch::Tensor& input) {
  TORCH_CHECK_VALUE(input.dim() == 4 && input.size(1) == options.in_channels(),
                    "HConvTranspose2d: expected input of shape (N, ", options.in_channels(),
                    ", H, W), got ", input.sizes());
  const torch::Tensor x = input_quantizer ? input_quantizer->forward(input) : input;
  const torch::Tensor w = kernel_quantizer->forward(weight);
  const torch::Tensor b = bias.defined() ? bias_quantizer->forward(bias) : torch::Tensor();
  torch::Tensor y = torch::conv_transpose2d(x, w, b, *options.stride(), *options.padding(),
                                            *options.output_padding(), options.groups(),
                                            *options.dilation());
  last_input_size.assign(input.sizes().begin() + 2, input.sizes().end());
  last_output_size.assign(y.sizes().begin() + 2, y.sizes().end());
  return y;
}

at::Tensor HConvTranspose2dImpl::ebops() const {
  if (last_input_size.empty()) {
    throw InvalidArgument("HConvTranspose2d.ebops(): the input size is unknown until the first forward()");
  }
  const at::Tensor bw_w = kernel_quantizer->value_widths(kernel_quantizer->quantize(weight));
  c10::optional<at::Tensor> bw_b;
  if (bias.defined()) bw_b = bias_quantizer->value_widths(bias_quantizer->quantize(bias));
  const int64_t outputs = options.out_channels() * last_output_size[0] * last_output_size[1];
  return ebops_conv_transpose_op(input_widths(input_quantizer, bw_w), bw_w, bw_b, last_input_size,
                                 outputs);
}

void HConvTranspose2dImpl::pretty_print(std::ostream& stream) const {
  stream << "heteroq::nn::HConvTranspose2d(" << options.in_channels() << ", " << options.out_channels()
         << ", kernel_size=" << options.kernel_size() << ", stride=" << options.stride()
         << ", padding=" << options.padding() << ", output_padding=" << options.output_padding()
         << ", dilation=" << options.dilation() << ", groups=" << options.groups()
         << ", bias=" << std::boolalpha << options.bias() << ")";
}

HActivationOptions::HActivationOptions(std::vector<int64_t> shape) : shape_(std::move(shape)) {}

HActivationImpl::HActivationImpl(const HActivationOptions& options_) : options(options_) {
  if (options.relu()) {
    if (options.overflow_mode() == "WRAP") {
      throw InvalidArgument(
          "HActivation: a ReLU needs overflow_mode 'SAT' or 'SAT_SYM', not 'WRAP' (a "
          "wrapped code of a negative input is not 0)");
    }
    if (options.keep_negative() == 1) {
      throw InvalidArgument(
          "HActivation: a ReLU's output has no sign: keep_negative must be 0 "
          "or -1");
    }
  }
  reset();
}

void HActivationImpl::reset() {
  quantizer = register_module(
      "quantizer", HQuantizer(HQuantizerOptions(options.shape())
                                  .granularity(options.granularity())
                                  .channel_axis(options.channel_axis())
                                  .init_bits(options.init_bits())
                                  .keep_negative(options.relu() ? 0 : options.keep_negative())
                                  .round_mode(options.round_mode())
                                  .overflow_mode(options.overflow_mode())));
}

torch::Tensor HActivationImpl::forward(const torch::Tensor& input) {
  return quantizer->forward(options.relu() ? torch::relu(input) : input);
}

at::Tensor HActivationImpl::ebops() const {
  return torch::zeros({}, quantizer->frac_bits.options());
}

void HActivationImpl::pretty_print(std::ostream& stream) const {
  stream << "heteroq::nn::HActivation(relu=" << std::boolalpha << options.relu()
         << ", granularity=" << options.granularity() << ")";
}

// ------------------------------------------------------------------------------------------------
// Conversions

namespace {

void copy_param(torch::Tensor& dst, const torch::Tensor& src) {
  if (!src.defined()) return;
  torch::NoGradGuard no_grad;
  dst.set_data(src.detach().clone());
}

// Appends QActivation(input) and the Q convolution of an HConv1d/2d or HConvTranspose2d to `out`.
template <typename QOptions, typename QModule, typename HImpl>
void push_converted_conv(HImpl& c, torch::nn::Sequential& out) {
  if (c.input_quantizer) out->push_back(QActivation(QuantizerPtr(c.input_quantizer->to_fixed())));
  QOptions o(c.options.in_channels(), c.options.out_channels(), c.options.kernel_size());
  o.stride(c.options.stride())
      .padding(c.options.padding())
      .dilation(c.options.dilation())
      .groups(c.options.groups())
      .bias(c.options.bias())
      .kernel_quantizer(QuantizerPtr(c.kernel_quantizer->to_fixed(c.weight)));
  if constexpr (std::is_same_v<HImpl, HConvTranspose2dImpl>) o.output_padding(c.options.output_padding());
  if (c.bias.defined()) o.bias_quantizer(QuantizerPtr(c.bias_quantizer->to_fixed(c.bias)));
  QModule q(o);
  copy_param(q->weight, c.weight);
  copy_param(q->bias, c.bias);
  out->push_back(q);
}

void convert_into(const torch::nn::Sequential& model, torch::nn::Sequential& out) {
  for (auto it = model->begin(); it != model->end(); ++it) {
    const std::shared_ptr<torch::nn::Module> child = it->ptr();
    if (auto d = std::dynamic_pointer_cast<HDenseImpl>(child)) {
      if (d->input_quantizer)
        out->push_back(QActivation(QuantizerPtr(d->input_quantizer->to_fixed())));
      QLinearOptions o(d->options.in_features(), d->options.out_features());
      o.bias(d->options.bias())
          .kernel_quantizer(QuantizerPtr(d->kernel_quantizer->to_fixed(d->weight)));
      if (d->bias.defined()) o.bias_quantizer(QuantizerPtr(d->bias_quantizer->to_fixed(d->bias)));
      QLinear q(o);
      copy_param(q->weight, d->weight);
      copy_param(q->bias, d->bias);
      out->push_back(q);
    } else if (auto c1 = std::dynamic_pointer_cast<HConv1dImpl>(child)) {
      push_converted_conv<QConv1dOptions, QConv1d>(*c1, out);
    } else if (auto c2 = std::dynamic_pointer_cast<HConv2dImpl>(child)) {
      push_converted_conv<QConv2dOptions, QConv2d>(*c2, out);
    } else if (auto ct = std::dynamic_pointer_cast<HConvTranspose2dImpl>(child)) {
      push_converted_conv<QConv2dOptions, QConvTranspose2d>(*ct, out);
    } else if (auto a = std::dynamic_pointer_cast<HActivationImpl>(child)) {
      out->push_back(QActivation(QuantizerPtr(a->quantizer->to_fixed())));
    } else {
      out->push_back(it->clone());
    }
  }
}

// f = bits - integer - keep_negative of a quantized_bits with a fixed alpha of 1 (or none), or
// bits - integer of a quantized_relu without slope or sigmoid; throws otherwise.
struct StartWidths {
  double frac;
  bool relu;
  bool keep_negative;
};

StartWidths start_widths(const QuantizerPtr& q, const std::string& where) {
  if (auto b = std::dynamic_pointer_cast<QuantizedBits>(q)) {
    if (b->auto_alpha().empty() && b->channel_alpha().empty() &&
        (!b->alpha() || *b->alpha() == 1.0) && b->qnoise_factor() == 1.0) {
      return {static_cast<double>(b->bits() - b->integer() - (b->keep_negative() ? 1 : 0)), false,
              b->keep_negative()};
    }
  }
  if (auto r = std::dynamic_pointer_cast<QuantizedRelu>(q)) {
    if (!r->use_sigmoid() && r->negative_slope() == 0.0 && r->qnoise_factor() == 1.0) {
      return {static_cast<double>(r->bits() - r->integer()), true, false};
    }
  }
  if (auto f = std::dynamic_pointer_cast<FixedQuantizer>(q)) {
    if (f->is_uniform()) {
      return {f->frac_bits().reshape(-1)[0].item<double>(), false,
              f->keep_negative().reshape(-1)[0].item<double>() != 0};
    }
  }
  throw InvalidArgument("hgq_from_quantized: " + where + " has quantizer " +
                        (q ? q->to_string() : std::string("None")) +
                        "; only quantized_bits with alpha None or 1, quantized_relu without "
                        "slope or sigmoid, and uniform fixed start H layers");
}


HLayerQuantizers layer_quantizers(const QuantizerPtr& kq, const QuantizerPtr& bq, double input_bits,
                                  double default_input_bits, const std::string& where,
                                  const std::string& input_granularity) {
  HLayerQuantizers hq;
  hq.input_granularity(input_granularity).input_init_bits(input_bits);
  hq.kernel_init_bits(start_widths(kq, where + " kernel").frac);
  hq.bias_init_bits(bq ? start_widths(bq, where + " bias").frac : default_input_bits);
  return hq;
}

// An HConv1d/2d or HConvTranspose2d with the geometry of `o` (QConvOptions or
// QConv2dBatchNormOptions), starting
// from `weight` and `bias` (undefined: none) and the widths of `o`'s quantizers.
template <typename HConv, typename HOptions, typename QOptions>
HConv h_conv(const QOptions& o, const torch::Tensor& weight, const torch::Tensor& bias,
             double input_bits, double default_input_bits, const std::string& where) {
  HOptions h(o.in_channels(), o.out_channels(), o.kernel_size());
  h.stride(o.stride())
      .padding(o.padding())
      .dilation(o.dilation())
      .groups(o.groups())
      .bias(bias.defined())
      .quantizers(layer_quantizers(o.kernel_quantizer().get(), o.bias_quantizer().get(), input_bits,
                                   default_input_bits, where, "channel"));
  if constexpr (std::is_same_v<HOptions, HConvTranspose2dOptions>) h.output_padding(o.output_padding());
  HConv c(h);
  copy_param(c->weight, weight);
  copy_param(c->bias, bias);
  return c;
}

template <typename QConvImpl>
torch::nn::AnyModule h_conv_of(const QConvImpl& q, double input_bits, double default_input_bits,
                               const std::string& where) {
  const torch::Tensor bias = q.options.bias() ? q.bias : torch::Tensor();
  if constexpr (std::is_same_v<QConvImpl, QConv1dImpl>) {
    return torch::nn::AnyModule(h_conv<HConv1d, HConv1dOptions>(q.options, q.weight, bias, input_bits,
                                                               default_input_bits, where));
  } else {
    return torch::nn::AnyModule(h_conv<HConv2d, HConv2dOptions>(q.options, q.weight, bias, input_bits,
                                                               default_input_bits, where));
  }
}

}  // namespace

torch::nn::Sequential hgq_convert(const torch::nn::Sequential& model) {
  torch::nn::Sequential out;
  convert_into(model, out);
  return out;
}

torch::nn::Sequential hgq_from_quantized(const torch::nn::Sequential& model,
                                         double default_input_bits) {
  torch::nn::Sequential out;
  std::optional<double> act_bits;
  // a separable convolution: its depthwise and pointwise convolutions as two H convolutions, the
  // pointwise one learning the precision of the depthwise result
  auto separable = [&](const auto& s, const std::string& where) {
    out->push_back(h_conv_of(*s.depthwise, act_bits.value_or(default_input_bits),
                             default_input_bits, where + " depthwise"));
    out->push_back(
        h_conv_of(*s.pointwise, default_input_bits, default_input_bits, where + " pointwise"));
    act_bits.reset();
  };
  int64_t index = 0;
  for (auto it = model->begin(); it != model->end(); ++it) {
    const std::shared_ptr<torch::nn::Module> child = it->ptr();
    const std::string where = "layer " + std::to_string(index++);
    if (auto d = std::dynamic_pointer_cast<QLinearImpl>(child)) {
      HDenseOptions o(d->options.in_features(), d->options.out_features());
      o.bias(d->options.bias())
          .quantizers(layer_quantizers(d->options.kernel_quantizer().get(),
                                       d->options.bias_quantizer().get(),
                                       act_bits.value_or(default_input_bits), default_input_bits,
                                       where, "element"));
      HDense h(o);
      copy_param(h->weight, d->weight);
      copy_param(h->bias, d->bias);
      out->push_back(h);
      act_bits.reset();
    } else if (auto c1 = std::dynamic_pointer_cast<QConv1dImpl>(child)) {
      out->push_back(h_conv_of(*c1, act_bits.value_or(default_input_bits), default_input_bits, where));
      act_bits.reset();
    } else if (auto c2 = std::dynamic_pointer_cast<QConv2dImpl>(child)) {
      out->push_back(h_conv_of(*c2, act_bits.value_or(default_input_bits), default_input_bits, where));
      act_bits.reset();
    } else if (auto dw = std::dynamic_pointer_cast<QDepthwiseConv2dImpl>(child)) {
      // a grouped convolution (its `conv` holds the kernel and the depthwise quantizer)
      out->push_back(
          h_conv_of(*dw->conv, act_bits.value_or(default_input_bits), default_input_bits, where));
      act_bits.reset();
    } else if (auto s1 = std::dynamic_pointer_cast<QSeparableConv1dImpl>(child)) {
      separable(*s1, where);
    } else if (auto s2 = std::dynamic_pointer_cast<QSeparableConv2dImpl>(child)) {
      separable(*s2, where);
    } else if (auto fc = std::dynamic_pointer_cast<QConv2dBatchNormImpl>(child)) {
      // the folded kernel and bias (the running statistics folded in)
      const auto wb = fc->get_folded_weights();
      out->push_back(h_conv<HConv2d, HConv2dOptions>(fc->options, wb[0], wb[1],
                                                     act_bits.value_or(default_input_bits),
                                                     default_input_bits, where));
      act_bits.reset();
    } else if (auto fd = std::dynamic_pointer_cast<QLinearBatchNormImpl>(child)) {
      const auto wb = fd->get_folded_weights();
      HDenseOptions o(fd->options.in_features(), fd->options.out_features());
      o.bias(true).quantizers(layer_quantizers(
          fd->options.kernel_quantizer().get(), fd->options.bias_quantizer().get(),
          act_bits.value_or(default_input_bits), default_input_bits, where, "element"));
      HDense h(o);
      copy_param(h->weight, wb[0]);
      copy_param(h->bias, wb[1]);
      out->push_back(h);
      act_bits.reset();
    } else if (auto qt = std::dynamic_pointer_cast<QConvTranspose2dImpl>(child)) {
      out->push_back(h_conv<HConvTranspose2d, HConvTranspose2dOptions>(
          qt->options, qt->weight, qt->options.bias() ? qt->bias : torch::Tensor(),
          act_bits.value_or(default_input_bits), default_input_bits, where));
      act_bits.reset();
    } else if (auto a = std::dynamic_pointer_cast<QActivationImpl>(child)) {
      const StartWidths s = start_widths(a->quantizer(), where);
      out->push_back(HActivation(
          HActivationOptions({}).granularity("tensor").relu(s.relu).init_bits(s.frac).keep_negative(
              s.relu ? 0 : (s.keep_negative ? 1 : 0))));
      act_bits = s.frac;
    } else {
      out->push_back(it->clone());
    }
  }
  return out;
}

}  // namespace heteroq::nn

TORCH_LIBRARY_FRAGMENT(heteroq, m) {
  m.def("_hgq_group_stats(Tensor x, int[] widths_shape) -> (Tensor, Tensor)");
  m.def("_hgq_int_bits(Tensor max_abs, Tensor frac_bits, Tensor keep_negative) -> Tensor");
  m.def("hgq_bit_widths(Tensor keep_negative, Tensor int_bits, Tensor frac_bits) -> Tensor");
  m.def("hgq_value_widths(Tensor q, Tensor frac_bits) -> Tensor");
  m.def(
      "hgq_ebops_linear(Tensor bw_in, Tensor bw_w, Tensor? bw_b=None, int positions=1) -> Tensor");
  m.def(
      "hgq_ebops_conv(Tensor bw_in, Tensor bw_w, Tensor? bw_b, int[] input_size, int[] stride, "
      "int[] padding, int[] dilation, int groups=1) -> Tensor");
  m.def(
      "hgq_ebops_conv_transpose(Tensor bw_in, Tensor bw_w, Tensor? bw_b, int[] input_size, "
      "int outputs) -> Tensor");
}

TORCH_LIBRARY_IMPL(heteroq, CompositeImplicitAutograd, m) {
  m.impl("_hgq_group_stats", &heteroq::nn::hgq_group_stats);
  m.impl("_hgq_int_bits", &heteroq::nn::hgq_int_bits);
  m.impl("hgq_bit_widths", &heteroq::nn::hgq_bit_widths);
  m.impl("hgq_value_widths", &heteroq::nn::hgq_value_widths);
  m.impl("hgq_ebops_linear", &heteroq::nn::hgq_ebops_linear);
  m.impl("hgq_ebops_conv", &heteroq::nn::hgq_ebops_conv);
  m.impl("hgq_ebops_conv_transpose", &heteroq::nn::hgq_ebops_conv_transpose);
}
