// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// FixedQuantizer: fixed point with widths as tensors (heteroq::ops::fixed_quantize).
#include "heteroq/quantizers/fixed.h"

#include <ATen/ATen.h>

#include <cmath>
#include <utility>

#include "heteroq/ops/fixed.h"

namespace heteroq {
namespace {

at::Tensor width_tensor(const at::Tensor& w, const char* name) {
  if (!w.defined()) throw InvalidArgument(std::string("fixed: `") + name + "` is undefined");
  if (!at::isFloatingType(w.scalar_type())) {
    throw InvalidArgument(std::string("fixed: `") + name +
                          "` must be a floating-point tensor of integer values");
  }
  return at::round(w.detach().to(at::kCPU, at::kFloat)).contiguous();
}

bool all_equal(const at::Tensor& t) {
  if (t.numel() <= 1) return true;
  return (t == t.reshape(-1)[0]).all().item<bool>();
}

double first(const at::Tensor& t) { return t.numel() ? t.reshape(-1)[0].item<double>() : 0.0; }

}  // namespace

FixedQuantizer::FixedQuantizer(int64_t bits, int64_t integer, bool keep_negative,
                               std::string round_mode, std::string overflow_mode)
    : round_mode_(std::move(round_mode)), overflow_mode_(std::move(overflow_mode)) {
  if (bits < 0 || bits > 64) {
    throw InvalidArgument("fixed: `bits` must be in [0, 64], got " + std::to_string(bits));
  }
  if (integer < -64 || integer > 64) {
    throw InvalidArgument("fixed: `integer` must be in [-64, 64], got " + std::to_string(integer));
  }
  const int64_t f = bits - integer - (keep_negative ? 1 : 0);
  if (f < -64 || f > 64) {
    throw InvalidArgument("fixed: the fractional bits bits - integer - keep_negative = " +
                          std::to_string(f) + " must be in [-64, 64]");
  }
  check_modes();
  k_ = at::full({}, keep_negative ? 1.0 : 0.0, at::kFloat);
  i_ = at::full({}, static_cast<double>(integer), at::kFloat);
  f_ = at::full({}, static_cast<double>(f), at::kFloat);
}

FixedQuantizer::FixedQuantizer(const at::Tensor& keep_negative, const at::Tensor& int_bits,
                               const at::Tensor& frac_bits, std::string round_mode,
                               std::string overflow_mode)
    : round_mode_(std::move(round_mode)), overflow_mode_(std::move(overflow_mode)) {
  check_modes();
  k_ = width_tensor(keep_negative, "keep_negative");
  i_ = width_tensor(int_bits, "int_bits");
  f_ = width_tensor(frac_bits, "frac_bits");
  try {
    (void)at::infer_size(at::infer_size(k_.sizes(), i_.sizes()), f_.sizes());
  } catch (const c10::Error&) {
    throw InvalidArgument("fixed: the shapes of keep_negative " + c10::str(k_.sizes()) +
                          ", int_bits " + c10::str(i_.sizes()) + " and frac_bits " +
                          c10::str(f_.sizes()) + " do not broadcast together");
  }
  if (k_.numel() && !at::logical_or(k_ == 0, k_ == 1).all().item<bool>()) {
    throw InvalidArgument("fixed: `keep_negative` must hold 0 or 1");
  }
  for (const auto& [w, name] :
       {std::pair<const at::Tensor&, const char*>{i_, "int_bits"}, {f_, "frac_bits"}}) {
    if (w.numel() && !(w.abs() <= 64).all().item<bool>()) {
      throw InvalidArgument(std::string("fixed: `") + name +
                            "` must hold finite values in [-64, 64]");
    }
  }
  uniform_ = all_equal(k_) && all_equal(i_) && all_equal(f_);
}

void FixedQuantizer::check_modes() const {
  if (!ops::is_fixed_round_mode(round_mode_)) {
    throw InvalidArgument("fixed: `round_mode` must be 'RND', 'RND_CONV' or 'TRN', got '" +
                          round_mode_ + "'");
  }
  if (!ops::is_fixed_overflow_mode(overflow_mode_)) {
    throw InvalidArgument("fixed: `overflow_mode` must be 'SAT', 'SAT_SYM' or 'WRAP', got '" +
                          overflow_mode_ + "'");
  }
}

void FixedQuantizer::require_uniform(const char* what) const {
  if (!uniform_) {
    throw InvalidArgument(std::string("fixed: ") + what +
                          " needs uniform widths; this quantizer has per-channel or per-element "
                          "widths (shape " +
                          c10::str(bit_widths().sizes()) +
                          "), which are saved with the weights (state_dict / "
                          "save_quantized_weights), not in a spec");
  }
}

at::Tensor FixedQuantizer::forward(const at::Tensor& x) const {
  const auto dev = x.device();
  return ops::fixed_quantize(x, k_.to(dev), i_.to(dev), f_.to(dev), round_mode_, overflow_mode_);
}

at::Tensor FixedQuantizer::bit_widths() const { return at::clamp_min(k_ + i_ + f_, 0.0); }

int64_t FixedQuantizer::bits() const {
  const at::Tensor b = bit_widths();
  return b.numel() ? static_cast<int64_t>(b.max().item<double>()) : 0;
}

double FixedQuantizer::max() const {
  const at::Tensor k = k_.to(at::kDouble), i = i_.to(at::kDouble), f = f_.to(at::kDouble);
  const at::Tensor upper =
      at::where(k + i + f > 0, at::exp2(i) - at::exp2(-f), at::zeros({}, at::kDouble));
  return upper.numel() ? upper.max().item<double>() : 0.0;
}

double FixedQuantizer::min() const {
  const at::Tensor k = k_.to(at::kDouble), i = i_.to(at::kDouble), f = f_.to(at::kDouble);
  const at::Tensor mag = overflow_mode_ == "SAT_SYM" ? at::exp2(i) - at::exp2(-f) : at::exp2(i);
  const at::Tensor lower = at::where(k + i + f > 0, -(k * mag), at::zeros({}, at::kDouble));
  return lower.numel() ? lower.min().item<double>() + 0.0 : 0.0;
}

std::string FixedQuantizer::to_string() const {
  require_uniform("to_string()");
  const auto k = static_cast<int64_t>(first(k_));
  const auto i = static_cast<int64_t>(first(i_));
  const auto f = static_cast<int64_t>(first(f_));
  std::string s = "fixed(" + std::to_string(k + i + f) + "," + std::to_string(i);
  if (k == 0) s += ",keep_negative=0";
  if (round_mode_ != "RND_CONV") s += ",round_mode='" + round_mode_ + "'";
  if (overflow_mode_ != "SAT") s += ",overflow_mode='" + overflow_mode_ + "'";
  return s + ")";
}

SpecKeywords FixedQuantizer::config() const {
  require_uniform("config()");
  const auto k = static_cast<int64_t>(first(k_));
  const auto i = static_cast<int64_t>(first(i_));
  const auto f = static_cast<int64_t>(first(f_));
  return {{"bits", k + i + f},
          {"integer", i},
          {"keep_negative", k == 1},
          {"round_mode", round_mode_},
          {"overflow_mode", overflow_mode_}};
}

std::vector<double> FixedQuantizer::range() const {
  require_uniform("range()");
  const double k = first(k_), i = first(i_), f = first(f_);
  if (k + i + f <= 0) return {0.0};
  const double p = std::ldexp(1.0, static_cast<int>(i + f));
  const double hi = p - 1;
  const double lo = overflow_mode_ == "SAT_SYM" ? -k * hi : -k * p;
  if (hi - lo + 1 > 65536) {
    throw InvalidArgument("fixed: range() lists at most 65536 values, this grid has " +
                          std::to_string(static_cast<int64_t>(hi - lo + 1)));
  }
  const double step = std::ldexp(1.0, static_cast<int>(-f));
  std::vector<double> out;
  for (double c = 0; c <= hi; c += 1) out.push_back(c * step);
  for (double c = lo; c < 0; c += 1) out.push_back(c * step);
  return out;
}

}  // namespace heteroq
