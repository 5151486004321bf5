// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// The compile step: a quantized model -> heteroq::deploy::Program. Weight and bias codes come from
// heteroq::quantize_to_integer (the quantized-weights format's integer form), activation grids
// from the quantizers' parameters (the same numbers core/fixed_point.h's grids hold).
#include "heteroq/deploy/compile.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <type_traits>

#include "heteroq/cost/qtools.h"
#include "heteroq/nn/conv.h"
#include "heteroq/nn/folded.h"
#include "heteroq/nn/layers.h"
#include "heteroq/nn/norm_pool.h"
#include "heteroq/nn/rnn.h"
#include "heteroq/nn/serialize.h"
#include "heteroq/ops/quantize.h"
#include "heteroq/quantizers/fixed.h"

namespace heteroq::deploy {
namespace {

constexpr int64_t kLimit = int64_t(1) << 62;

[[noreturn]] void fail(const std::string& who, const std::string& why) {
  throw InvalidArgument("heteroq::deploy::compile: " + who + ": " + why);
}

std::string who_of(const LayerDesc& l) {
  return "layer `" + l.name + "` (" + l.class_name + ")";
}

// v = 2^e exactly (v > 0).
bool po2_exponent(double v, int64_t* e) {
  if (!(v > 0) || !std::isfinite(v)) return false;
  int ex = 0;
  if (std::frexp(v, &ex) != 0.5) return false;
  *e = ex - 1;
  return true;
}

SpecValue config_value(const Quantizer& q, const char* key) {
  for (const auto& [k, v] : q.config()) {
    if (k == key) return v;
  }
  return std::monostate{};
}

void reject_stochastic(const Quantizer& q, const std::string& who) {
  const std::string n = q.name();
  if (n == "stochastic_binary" || n == "stochastic_ternary" || n == "bernoulli") {
    fail(who, q.to_string() + " is a stochastic quantizer (random in training, so the model has no "
              "single integer form to reproduce); use its deterministic counterpart (binary, ternary)");
  }
  const SpecValue sr = config_value(q, "use_stochastic_rounding");
  if (auto b = std::get_if<bool>(&sr); b && *b) {
    fail(who, q.to_string() + " rounds stochastically (use_stochastic_rounding=True); the engine "
              "reproduces deterministic quantizers only");
  }
  const SpecValue qn = config_value(q, "qnoise_factor");
  if (auto d = std::get_if<double>(&qn); d && *d != 1.0) {
    fail(who, q.to_string() + " has qnoise_factor < 1: its outputs lie between grid points");
  }
}

// A fixed (per-tensor, power-of-two) alpha: its exponent. alpha=None gives 0.
int64_t alpha_exponent(const Quantizer& q, const std::string& who) {
  const SpecValue a = config_value(q, "alpha");
  if (std::holds_alternative<std::monostate>(a)) return 0;
  if (auto s = std::get_if<std::string>(&a)) {
    fail(who, q.to_string() + " has alpha='" + *s + "': an activation's scale would depend on the "
              "data of every call; the engine needs a fixed power-of-two alpha");
  }
  double v = 0;
  if (auto d = std::get_if<double>(&a)) v = *d;
  if (auto i = std::get_if<int64_t>(&a)) v = static_cast<double>(*i);
  if (std::holds_alternative<std::vector<double>>(a)) {
    fail(who, q.to_string() + " has a per-channel alpha, which the engine does not support on "
              "activations");
  }
  int64_t e = 0;
  if (!po2_exponent(v, &e)) {
    fail(who, q.to_string() + " has alpha=" + format_spec_value(v) + ", not a power of two: "
              "its outputs are not integers times a power of two");
  }
  return e;
}

// An activation quantizer as integer arithmetic: the rounding position f (code = clamp(rne(x 2^f),
// lo, hi)), the output's frac, and the special kinds.
struct Grid {
  std::string kind = "fixed";
  int64_t f = 0, lo = 0, hi = 0;
  bool has_slope = false;
  int64_t k = 0;  // slope = 2^-k
  int64_t neg_lo = 0;
  int64_t low = -1;
  float threshold = 0;
  int64_t out_frac = 0;
};

int64_t pow2i(int64_t e) { return int64_t(1) << e; }

Grid grid_of(const Quantizer& q, const std::string& who) {
  reject_stochastic(q, who);
  Grid g;
  if (auto b = dynamic_cast<const QuantizedBits*>(&q)) {
    if (!b->auto_alpha().empty()) {
      fail(who, q.to_string() + " has alpha='" + b->auto_alpha() + "': an activation's scale would "
                "depend on the data of every call; the engine needs a fixed power-of-two alpha");
    }
    const int64_t a = alpha_exponent(q, who);
    const int64_t ub = b->bits() - (b->keep_negative() ? 1 : 0);
    if (ub <= 0) {
      g.kind = "sign";
      g.out_frac = -a;
      return g;
    }
    if (ub > 62) fail(who, q.to_string() + ": more than 62 bits");
    g.f = ub - b->integer();
    g.lo = b->keep_negative() ? -pow2i(ub) + (b->symmetric() ? 1 : 0) : 0;
    g.hi = pow2i(ub) - 1;
    g.out_frac = g.f - a;
    return g;
  }
  if (auto r = dynamic_cast<const QuantizedRelu*>(&q)) {
    if (r->use_sigmoid()) {
      fail(who, q.to_string() + " has use_sigmoid=True (a hard-sigmoid grid computed in float), "
                "which the engine does not support");
    }
    if (r->relu_upper_bound()) {
      fail(who, q.to_string() + " has a relu_upper_bound, which the engine does not support");
    }
    if (r->enable_fast_inference()) {
      g.f = r->bits() - r->integer();
      g.hi = pow2i(r->bits()) - 1;
      g.out_frac = g.f;
      return g;
    }
    const double slope = r->negative_slope();
    const int64_t nsb = r->bits() - (slope != 0 ? 1 : 0);
    g.f = nsb - r->integer();
    g.hi = pow2i(nsb) - 1;
    g.out_frac = g.f;
    if (slope != 0) {
      int64_t e = 0;
      if (!po2_exponent(slope, &e)) fail(who, q.to_string() + ": negative_slope is not a power of two");
      const double neg_lo = -slope * static_cast<double>(pow2i(nsb));
      if (neg_lo != std::floor(neg_lo)) {
        fail(who, q.to_string() + ": negative_slope * 2^" + std::to_string(nsb) +
                  " is not an integer, so its negative outputs are not on the grid");
      }
      g.has_slope = true;
      g.k = -e;
      g.neg_lo = static_cast<int64_t>(neg_lo);
    }
    return g;
  }
  if (q.name() == "binary") {
    g.kind = "binary";
    const SpecValue u = config_value(q, "use_01");
    g.low = (std::holds_alternative<bool>(u) && std::get<bool>(u)) ? 0 : -1;
    g.out_frac = -alpha_exponent(q, who);
    return g;
  }
  if (q.name() == "ternary") {
    g.kind = "ternary";
    g.out_frac = -alpha_exponent(q, who);
    const SpecValue t = config_value(q, "threshold");
    double th = 0.33;
    if (auto d = std::get_if<double>(&t)) th = *d;
    if (auto i = std::get_if<int64_t>(&t)) th = static_cast<double>(*i);
    g.threshold = static_cast<float>(th);  // the kernel compares in float32
    return g;
  }
  fail(who, q.to_string() + " is not supported by the engine (supported activation quantizers: "
            "quantized_bits and quantized_relu with power-of-two alpha, binary, ternary)");
}

InputQuantizer input_of(const Quantizer& q, const std::string& who) {
  const Grid g = grid_of(q, who);
  InputQuantizer in;
  in.kind = g.kind;
  in.in_scale = std::ldexp(1.0, static_cast<int>(g.f));
  in.lo = g.lo;
  in.hi = g.hi;
  if (g.has_slope) {
    in.slope = std::ldexp(1.0, static_cast<int>(-g.k));
    in.neg_lo = g.neg_lo;
  }
  in.low = g.low;
  in.threshold = g.threshold;
  in.frac = g.out_frac;
  return in;
}

Stage requant_of(const Quantizer& q, const std::string& who, const std::vector<int64_t>& in_frac) {
  const Grid g = grid_of(q, who);
  Stage s;
  s.kind = "requantize";
  s.name = who;
  Requantizer& r = s.requantizer;
  r.kind = g.kind;
  r.lo = g.lo;
  r.hi = g.hi;
  r.low = g.low;
  for (int64_t F : in_frac) {
    if (g.kind == "fixed") {
      r.shift.push_back(F - g.f);
      if (g.has_slope) r.slope_shift.push_back(F - g.f + g.k);
    } else if (g.kind == "ternary") {
      // |A| 2^-F >= t  <=>  |A| >= ceil(t 2^F) (t is a float32, t 2^F exact in double).
      const double t = std::ceil(std::ldexp(static_cast<double>(g.threshold), static_cast<int>(F)));
      r.threshold.push_back(t >= static_cast<double>(kLimit) ? kLimit : static_cast<int64_t>(t));
    }
  }
  r.has_slope = g.has_slope;
  r.neg_lo = g.neg_lo;
  s.frac.assign(in_frac.size(), g.out_frac);
  return s;
}

// A fixed quantizer with widths per element or channel, broadcast to the per-sample shape: per
// element its code range (as the quantizer computes it in float32: SAT/SAT_SYM's upper end
// 2^(i+f) - 1 rounded to float32; WRAP's 2^b codes exactly), its frac f, and constant 0 (lo = hi
// = 0) where the width k + i + f is <= 0.
struct FixedElem {
  std::vector<int64_t> lo, hi, frac;
  std::vector<bool> live;
};

FixedElem fixed_elem_of(const FixedQuantizer& q, const std::vector<int64_t>& shape, const std::string& who) {
  std::vector<int64_t> full = {1};
  full.insert(full.end(), shape.begin(), shape.end());
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  at::Tensor k, i, f;
  std::string dims;
  for (int64_t d : shape) dims += (dims.empty() ? "" : ", ") + std::to_string(d);
  try {
    const at::Tensor z = at::zeros(full, at::kDouble);
    k = q.keep_negative().to(at::kDouble) + z;
    i = q.int_bits().to(at::kDouble) + z;
    f = q.frac_bits().to(at::kDouble) + z;
  } catch (const std::exception&) {
    fail(who, "the fixed quantizer's widths do not broadcast to its per-sample input (" + dims + ")");
  }
  if (k.sizes().vec() != full || i.sizes().vec() != full || f.sizes().vec() != full) {
    fail(who, "the fixed quantizer's widths have more values than its per-sample input (" + dims +
              ") holds: one width per sample is not supported");
  }
  k = k.reshape({n}).contiguous();
  i = i.reshape({n}).contiguous();
  f = f.reshape({n}).contiguous();
  const double* pk = k.data_ptr<double>();
  const double* pi = i.data_ptr<double>();
  const double* pf = f.data_ptr<double>();
  FixedElem e;
  const std::string& ov = q.overflow_mode();
  int64_t min_live = std::numeric_limits<int64_t>::max();
  for (int64_t j = 0; j < n; ++j) {
    const auto kj = static_cast<int64_t>(pk[j]), ij = static_cast<int64_t>(pi[j]),
               fj = static_cast<int64_t>(pf[j]);
    const int64_t b = kj + ij + fj;
    e.live.push_back(b > 0);
    e.frac.push_back(fj);
    if (b <= 0) {
      e.lo.push_back(0);
      e.hi.push_back(0);
      continue;
    }
    min_live = std::min(min_live, fj);
    if (ij + fj > 61 || fj > 126 || fj < -126) {
      fail(who, "the fixed quantizer's element " + std::to_string(j) + " has " + std::to_string(ij) +
                " integer and " + std::to_string(fj) + " fractional bits: the engine's codes hold at most "
                "61 magnitude bits");
    }
    if (ov == "WRAP") {
      const int64_t lo = -kj * (int64_t(1) << (b - 1));
      e.lo.push_back(lo);
      e.hi.push_back(lo + (int64_t(1) << b) - 1);
    } else {
      const auto top = static_cast<float>(std::ldexp(1.0, static_cast<int>(ij + fj)));
      const float hi = top - 1.0f;  // float32, as the quantizer's kernel
      const float lo = ov == "SAT" ? -(static_cast<float>(kj) * top) : -(static_cast<float>(kj) * hi);
      e.hi.push_back(static_cast<int64_t>(hi));
      e.lo.push_back(static_cast<int64_t>(lo));
    }
  }
  if (min_live == std::numeric_limits<int64_t>::max()) min_live = 0;
  for (int64_t j = 0; j < n; ++j) {
    if (!e.live[static_cast<size_t>(j)]) e.frac[static_cast<size_t>(j)] = min_live;
  }
  return e;
}

InputQuantizer fixed_elem_input(const FixedQuantizer& q, const std::vector<int64_t>& shape, const std::string& who) {
  const FixedElem e = fixed_elem_of(q, shape, who);
  InputQuantizer in;
  in.kind = "fixed_elem";
  in.frac_elem = e.frac;
  in.lo_elem = e.lo;
  in.hi_elem = e.hi;
  in.round_mode = q.round_mode();
  in.wrap = q.overflow_mode() == "WRAP";
  return in;
}

Stage fixed_elem_requant(const FixedQuantizer& q, const std::vector<int64_t>& shape, const std::string& who,
                         const std::vector<int64_t>& in_frac) {
  const FixedElem e = fixed_elem_of(q, shape, who);
  if (e.frac.size() != in_frac.size()) {
    fail(who, "the fixed quantizer covers " + std::to_string(e.frac.size()) + " values, its input has " +
              std::to_string(in_frac.size()));
  }
  Stage s;
  s.kind = "requantize";
  s.name = who;
  Requantizer& r = s.requantizer;
  r.kind = "fixed_elem";
  r.lo_elem = e.lo;
  r.hi_elem = e.hi;
  r.round_mode = q.round_mode();
  r.wrap = q.overflow_mode() == "WRAP";
  for (size_t j = 0; j < in_frac.size(); ++j) {
    const int64_t sh = e.live[j] ? in_frac[j] - e.frac[j] : 0;
    if (sh < -62 || sh > 62) {
      fail(who, "value " + std::to_string(j) + " has frac " + std::to_string(in_frac[j]) +
                " and the fixed quantizer's " + std::to_string(e.frac[j]) + " fractional bits: a shift of " +
                std::to_string(sh) + " is beyond the engine's 62");
    }
    r.shift.push_back(sh);
  }
  s.frac = e.frac;
  return s;
}

// The activation quantizers the engine runs as step-function tables (their outputs are not a
// rounding of the input on a fixed grid), and whether their element function is monotonic.
bool table_quantizer(const Quantizer& q, bool* monotonic) {
  const std::string n = q.name();
  *monotonic = n != "quantized_hswish";
  if (auto f = dynamic_cast<const FixedQuantizer*>(&q)) {
    // (a wrapping overflow is not monotonic)
    *monotonic = f->overflow_mode() != "WRAP";
    return true;
  }
  if (n == "quantized_tanh" || n == "quantized_sigmoid" || n == "quantized_hswish" ||
      n == "quantized_ulaw" || n == "quantized_po2" || n == "quantized_relu_po2") {
    return true;
  }
  if (auto r = dynamic_cast<const QuantizedRelu*>(&q)) return r->use_sigmoid() || r->relu_upper_bound();
  return false;
}

// At most this many integers are evaluated one by one (a full table); larger input domains are
// searched by bisection, which needs a monotonic element function.
constexpr int64_t kFullTableDomain = int64_t(1) << 22;
constexpr size_t kMaxBreaks = size_t(1) << 20;

// The quantizer's own float32 forward (the QAT kernels) at the values A 2^-F of integers A.
std::vector<double> eval_at(const Quantizer& q, const std::vector<int64_t>& a, int64_t F, const std::string& who) {
  torch::NoGradGuard guard;
  at::Tensor x = at::empty({static_cast<int64_t>(a.size())}, at::kFloat);
  float* px = x.data_ptr<float>();
  for (size_t i = 0; i < a.size(); ++i) {
    px[i] = static_cast<float>(std::ldexp(static_cast<double>(a[i]), static_cast<int>(-F)));
  }
  const at::Tensor y = q.forward(x).to(at::kDouble).contiguous();
  const double* py = y.data_ptr<double>();
  std::vector<double> out(py, py + a.size());
  for (double v : out) {
    if (!std::isfinite(v)) fail(who, q.to_string() + " gives a non-finite output on its input domain");
  }
  return out;
}

// The step function code(A) of q on the integers A in [-M, M] at frac F: the breaks (the first A
// of each new output value) and the values, by a scan of every integer when the domain is small,
// else by a 64-way bisection for each break (monotonic functions).
void build_table(const Quantizer& q, const std::string& who, int64_t F, int64_t M, bool monotonic,
                 std::vector<int64_t>& breaks, std::vector<double>& values) {
  if (M < kFullTableDomain / 2) {
    std::vector<int64_t> a;
    for (int64_t v = -M; v <= M; ++v) a.push_back(v);
    const std::vector<double> y = eval_at(q, a, F, who);
    values.push_back(y[0]);
    for (size_t i = 1; i < y.size(); ++i) {
      if (y[i] != y[i - 1]) {
        breaks.push_back(a[i]);
        values.push_back(y[i]);
      }
    }
    return;
  }
  if (!monotonic) {
    fail(who, q.to_string() + " is not monotonic and its input can take " + std::to_string(2 * M + 1) +
              " integer values (more than the " + std::to_string(kFullTableDomain) + " a full table "
              "evaluates); narrow the input of this activation (fewer bits before it)");
  }
  auto one = [&](int64_t v) { return eval_at(q, {v}, F, who)[0]; };
  int64_t cur = -M;
  double vcur = one(cur);
  const double vend = one(M);
  values.push_back(vcur);
  while (vcur != vend) {
    int64_t lo = cur, hi = M;  // q(lo) == vcur != q(hi)
    while (hi - lo > 1) {
      const __int128 span = static_cast<__int128>(hi) - lo;
      const int64_t k = static_cast<int64_t>(std::min<__int128>(63, span - 1));
      std::vector<int64_t> pts;
      for (int64_t j = 1; j <= k; ++j) {
        const auto p = static_cast<int64_t>(lo + span * j / (k + 1));
        if (p > lo && p < hi && (pts.empty() || p > pts.back())) pts.push_back(p);
      }
      const std::vector<double> y = eval_at(q, pts, F, who);
      size_t j = 0;
      while (j < pts.size() && y[j] == vcur) ++j;
      if (j < pts.size()) hi = pts[j];
      if (j > 0) lo = pts[j - 1];
    }
    cur = hi;
    vcur = one(cur);
    breaks.push_back(cur);
    values.push_back(vcur);
    if (breaks.size() > kMaxBreaks) fail(who, q.to_string() + ": more than 2^20 output steps");
  }
}

// The smallest f with v 2^f an integer.
int64_t frac_of_value(double v) {
  if (v == 0) return std::numeric_limits<int32_t>::min();
  int e = 0;
  const double m = std::frexp(v, &e);
  auto mant = static_cast<int64_t>(std::ldexp(m, 53));
  int64_t f = 53 - e;
  while ((mant & 1) == 0) {
    mant /= 2;
    --f;
  }
  return f;
}

// A "table" requantization of an element function q on inputs with the given fracs and bound.
Stage table_requant_of(const Quantizer& q, const std::string& who, const std::vector<int64_t>& in_frac,
                       int64_t bound, bool monotonic) {
  reject_stochastic(q, who);
  const SpecValue alpha = config_value(q, "alpha");
  const auto* bits = dynamic_cast<const QuantizedBits*>(&q);
  if (std::holds_alternative<std::string>(alpha) || (bits && !bits->auto_alpha().empty())) {
    fail(who, q.to_string() + " has a data-dependent scale (alpha='auto'/'auto_po2'): an "
              "activation's scale would depend on the data of every call");
  }
  Stage s;
  s.kind = "requantize";
  s.name = who;
  Requantizer& r = s.requantizer;
  r.kind = "table";
  std::map<int64_t, size_t> by_frac;
  std::vector<std::vector<double>> values;
  for (int64_t F : in_frac) {
    auto it = by_frac.find(F);
    if (it == by_frac.end()) {
      it = by_frac.emplace(F, r.breaks.size()).first;
      r.breaks.emplace_back();
      values.emplace_back();
      build_table(q, who, F, std::max<int64_t>(bound, 1), monotonic, r.breaks.back(), values.back());
    }
    r.table.push_back(static_cast<int64_t>(it->second));
  }
  // one output frac: the finest any output value needs
  int64_t out_frac = std::numeric_limits<int32_t>::min(), fmin = std::numeric_limits<int32_t>::max();
  for (const auto& vs : values) {
    for (double v : vs) {
      if (v == 0) continue;
      out_frac = std::max(out_frac, frac_of_value(v));
      int e = 0;
      std::frexp(v, &e);
      fmin = std::min<int64_t>(fmin, -e);
    }
  }
  if (out_frac == std::numeric_limits<int32_t>::min()) out_frac = 0;  // every output is 0
  if (fmin != std::numeric_limits<int32_t>::max() && out_frac - fmin > 61) {
    fail(who, q.to_string() + ": its outputs on this input range span more than 61 bits of integer "
              "codes (from 2^" + std::to_string(-out_frac) + " to 2^" + std::to_string(-fmin) + ")");
  }
  for (const auto& vs : values) {
    r.codes.emplace_back();
    for (double v : vs) r.codes.back().push_back(static_cast<int64_t>(std::ldexp(v, static_cast<int>(out_frac))));
  }
  s.frac.assign(in_frac.size(), out_frac);
  return s;
}

// Integer codes of a quantized tensor and the frac of each row (axis 0) or element.
struct Codes {
  std::vector<int64_t> values;
  std::vector<int64_t> frac;   // per row (weights) or per element (bias)
  std::vector<int64_t> efrac;  // per element (value = values[i] 2^-efrac[i])
};

// code * 2^up for the fixed quantizer's rows (checked against 2^62).
int64_t lift_checked(int64_t code, int64_t up, const std::string& who, const char* what) {
  if (up > 62 || std::abs(code) >= (int64_t(1) << (62 - up))) {
    fail(who, std::string(what) + ": the widths of one row span more than 62 bits");
  }
  return code * (int64_t(1) << up);
}

// The quantizer's integer form (quantize_to_integer), with power-of-two scales folded into fracs.
Codes codes_of(const Quantizer& q, const at::Tensor& x, const std::string& who, const char* what) {
  if (auto fq = dynamic_cast<const FixedQuantizer*>(&q)) {
    // fixed point with widths per tensor, channel or element: each value's own frac
    torch::NoGradGuard guard;
    const at::Tensor v = fq->forward(x.to(at::kFloat)).to(at::kDouble).contiguous();
    at::Tensor f;
    try {
      f = at::broadcast_to(fq->frac_bits().to(at::kDouble), x.sizes()).contiguous();
    } catch (const std::exception&) {
      fail(who, std::string(what) + ": the widths of " + q.name() + " do not broadcast to the tensor");
    }
    const double* pv = v.data_ptr<double>();
    const double* pf = f.data_ptr<double>();
    const int64_t rows = x.dim() == 0 ? 1 : x.size(0);
    const int64_t per_row = rows == 0 ? 0 : x.numel() / rows;
    const bool is_bias = x.dim() == 1;
    Codes c;
    c.values.resize(static_cast<size_t>(x.numel()));
    c.efrac.resize(static_cast<size_t>(x.numel()));
    c.frac.assign(static_cast<size_t>(is_bias ? x.numel() : rows), std::numeric_limits<int32_t>::min());
    for (int64_t i = 0; i < x.numel(); ++i) {
      const auto fe = static_cast<int64_t>(pf[i]);
      const double code = std::ldexp(pv[i], static_cast<int>(fe));
      if (code != std::floor(code) || std::abs(code) >= 4.6e18) {
        fail(who, std::string(what) + ": internal error: value " + std::to_string(i) + " is not on its grid");
      }
      c.values[i] = static_cast<int64_t>(code);
      c.efrac[i] = fe;
      const int64_t g = is_bias ? i : i / std::max<int64_t>(per_row, 1);
      c.frac[g] = std::max(c.frac[g], fe);
    }
    // the per-row frac (bias: per element) is the finest of the row; the values lifted to it
    if (!is_bias) {
      for (int64_t i = 0; i < x.numel(); ++i) {
        const int64_t g = i / std::max<int64_t>(per_row, 1);
        if (c.values[i] != 0 && c.frac[g] - c.efrac[i] > 0) {
          c.values[i] = lift_checked(c.values[i], c.frac[g] - c.efrac[i], who, what);
        }
        c.efrac[i] = c.frac[g];
      }
    }
    return c;
  }
  reject_stochastic(q, who + " " + what);
  IntegerTensor it;
  try {
    it = quantize_to_integer(q, x.to(at::kFloat));
  } catch (const InvalidArgument& e) {
    fail(who, std::string(what) + ": " + e.what());
  }
  const at::Tensor v = it.dequantize(at::kFloat).to(at::kDouble).contiguous();
  const int64_t rows = x.dim() == 0 ? 1 : x.size(0);
  const int64_t per_row = rows == 0 ? 0 : x.numel() / rows;
  const bool is_bias = x.dim() == 1;
  Codes c;
  c.values.resize(static_cast<size_t>(x.numel()));
  const int64_t groups = is_bias ? x.numel() : rows;
  const int64_t group_size = is_bias ? 1 : per_row;
  c.frac.assign(static_cast<size_t>(groups), 0);
  const at::Tensor values = it.values.to(at::kLong).contiguous();
  const int64_t* pv = values.data_ptr<int64_t>();
  const double* pd = v.data_ptr<double>();
  if (it.encoding == "po2") {
    // sign 2^e: codes sign 2^(e - emin), frac -emin (emin over the nonzero values).
    const at::Tensor sign = it.sign.to(at::kLong).contiguous();
    const int64_t* ps = sign.data_ptr<int64_t>();
    int64_t emin = std::numeric_limits<int64_t>::max(), emax = std::numeric_limits<int64_t>::min();
    for (int64_t i = 0; i < x.numel(); ++i) {
      if (pd[i] != 0) {
        emin = std::min(emin, pv[i]);
        emax = std::max(emax, pv[i]);
      }
    }
    if (emin == std::numeric_limits<int64_t>::max()) emin = emax = 0;
    if (emax - emin > 30) {
      fail(who, std::string(what) + ": its power-of-two values span 2^" + std::to_string(emin) +
                " to 2^" + std::to_string(emax) + ", more than 30 bits of integer codes");
    }
    for (int64_t i = 0; i < x.numel(); ++i) {
      c.values[i] = pd[i] == 0 ? 0 : ps[i] * pow2i(pv[i] - emin);
    }
    c.frac.assign(static_cast<size_t>(groups), -emin);
  } else {
    // fixed_point: value = code scale 2^-frac; binary/ternary: frac 0. The scale must be 2^e.
    const at::Tensor scale = it.scale.to(at::kDouble).expand(x.sizes()).contiguous();
    const double* sc = scale.data_ptr<double>();
    const int64_t base = it.encoding == "fixed_point" ? it.frac : 0;
    for (int64_t g = 0; g < groups; ++g) {
      const double s = sc[g * group_size];
      for (int64_t k = 0; k < group_size; ++k) {
        if (sc[g * group_size + k] != s) {
          fail(who, std::string(what) + ": the scale of " + q.to_string() +
                    " varies along the input axis; the engine needs one scale per output channel");
        }
      }
      int64_t e = 0;
      if (s == 0) {
        e = 0;
      } else if (!po2_exponent(s, &e)) {
        fail(who, std::string(what) + ": " + q.to_string() + " has scale " + format_spec_value(s) +
                  (is_bias ? " at element " : " for output channel ") + std::to_string(g) +
                  ", not a power of two: no exact integer arithmetic (use alpha='auto_po2' or a "
                  "power-of-two alpha)");
      }
      c.frac[g] = base - e;
      for (int64_t k = 0; k < group_size; ++k) c.values[g * group_size + k] = pv[g * group_size + k];
    }
  }
  // The codes reproduce the quantized values exactly.
  c.efrac.resize(c.values.size());
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int64_t g = is_bias ? i : i / std::max<int64_t>(per_row, 1);
    c.efrac[i] = c.frac[g];
    if (std::ldexp(static_cast<double>(c.values[i]), static_cast<int>(-c.frac[g])) != pd[i]) {
      fail(who, std::string(what) + ": internal error: integer codes do not reproduce value " +
                std::to_string(i));
    }
  }
  return c;
}

// A float tensor (no quantizer) as integers: each element's own minimal frac.
Codes float_codes(const at::Tensor& x, const std::string& who, const char* what) {
  const at::Tensor v = x.to(at::kDouble).contiguous();
  const double* pd = v.data_ptr<double>();
  Codes c;
  for (int64_t i = 0; i < v.numel(); ++i) {
    const double d = pd[i];
    if (!std::isfinite(d)) fail(who, std::string(what) + " has a non-finite value");
    if (d == 0) {
      c.values.push_back(0);
      c.frac.push_back(std::numeric_limits<int32_t>::min());
      continue;
    }
    int e = 0;
    const double m = std::frexp(d, &e);  // d = m 2^e, |m| in [0.5, 1)
    auto mant = static_cast<int64_t>(std::ldexp(m, 53));
    int64_t f = 53 - e;
    while ((mant & 1) == 0) {
      mant /= 2;
      --f;
    }
    c.values.push_back(mant);
    c.frac.push_back(f);
  }
  return c;
}

// code * 2^up, checked.
int64_t lift(int64_t code, int64_t up, const std::string& who, const std::string& what) {
  if (up < 0) fail(who, "internal error: negative alignment");
  if (up > 62 || (code != 0 && (code > 0 ? code : -code) >= (kLimit >> up))) {
    fail(who, what + " needs " + std::to_string(up) + " more fraction bits than the accumulator: "
              "the aligned integers exceed 2^62 (quantize the bias with bias_quantizer)");
  }
  return code * pow2i(up);
}

// Weight and bias codes of a dense or convolution layer, aligned: per output channel o the
// accumulator's frac F_o = max(max_k (in_frac(o, k) + weight frac), bias frac), each weight lifted
// to it from the frac of the input value it multiplies (in_frac(o, k): the frac of the k-th input
// of output channel o, one per value when the layer follows another without an activation).
Codes kernel_codes(const LayerDesc& l, const std::string& who) {
  if (!l.kernel_quantizer) {
    fail(who, "has no kernel_quantizer: float weights have no fixed-point form (give it a "
              "quantized_bits/quantized_po2/binary/ternary kernel_quantizer)");
  }
  return codes_of(*l.kernel_quantizer, l.weight.detach().cpu(), who, "kernel_quantizer");
}

// (w: the kernel's codes with a frac per element, `out` rows of the layout the stage uses.)
template <typename InFrac>
void weights_of(const LayerDesc& l, const std::string& who, InFrac in_frac, const Codes& w, int64_t out,
                Stage& s) {
  const int64_t per = static_cast<int64_t>(w.values.size()) / std::max<int64_t>(out, 1);
  Codes b;
  const bool has_bias = l.bias.defined();
  if (has_bias) {
    if (l.bias.dim() != 1 || l.bias.size(0) != out) fail(who, "the bias must have one value per output channel");
    b = l.bias_quantizer ? codes_of(*l.bias_quantizer, l.bias.detach().cpu(), who, "bias_quantizer")
                         : float_codes(l.bias.detach().cpu(), who, "the float bias");
  }
  s.weight.resize(static_cast<size_t>(per * out));
  s.frac.resize(static_cast<size_t>(out));
  if (has_bias) s.bias.resize(static_cast<size_t>(out));
  for (int64_t o = 0; o < out; ++o) {
    const int64_t fb = has_bias ? b.frac[o] : std::numeric_limits<int32_t>::min();
    int64_t F = fb;
    for (int64_t k = 0; k < per; ++k) F = std::max(F, in_frac(o, k) + w.efrac[o * per + k]);
    s.frac[o] = F;
    for (int64_t k = 0; k < per; ++k) {
      const int64_t v = w.values[o * per + k];
      s.weight[o * per + k] = v == 0 ? 0 : lift(v, F - in_frac(o, k) - w.efrac[o * per + k], who,
                                                "the weights of channel " + std::to_string(o));
    }
    if (has_bias) s.bias[o] = b.values[o] == 0 ? 0 : lift(b.values[o], F - fb, who, "the bias");
    if (F > 1074 || F < -1074) fail(who, "output channel " + std::to_string(o) + ": frac out of range");
  }
}

Stage dense_of(const LayerDesc& l, const std::string& who, const std::vector<int64_t>& in_frac) {
  if (!l.weight.defined() || l.weight.dim() != 2) fail(who, "expected a 2-D weight");
  Stage s;
  s.kind = "dense";
  s.name = who;
  s.in_features = l.weight.size(1);
  s.out_features = l.weight.size(0);
  weights_of(l, who, [&](int64_t, int64_t k) { return in_frac[static_cast<size_t>(k)]; },
             kernel_codes(l, who), s.out_features, s);
  return s;
}

// The frac of each channel of a (C, ...) input (one per channel by construction).
std::vector<int64_t> channel_fracs(const std::vector<int64_t>& frac, int64_t channels, const std::string& who) {
  const auto per = static_cast<int64_t>(frac.size()) / std::max<int64_t>(channels, 1);
  std::vector<int64_t> out(static_cast<size_t>(channels));
  for (int64_t c = 0; c < channels; ++c) {
    out[c] = frac[static_cast<size_t>(c * per)];
    for (int64_t k = 1; k < per; ++k) {
      if (frac[static_cast<size_t>(c * per + k)] != out[c]) fail(who, "internal error: one channel has several fracs");
    }
  }
  return out;
}

// PyTorch's padding modes other than zeros, as the source index of padded position i of an axis
// of length n with `before` values padded before it.
int64_t pad_source(int64_t i, int64_t n, int64_t before, const std::string& mode) {
  int64_t j = i - before;
  if (j >= 0 && j < n) return j;
  if (mode == "replicate") return j < 0 ? 0 : n - 1;
  if (mode == "circular") return ((j % n) + n) % n;
  // reflect (the edge value is not repeated)
  if (n == 1) return 0;
  const int64_t period = 2 * (n - 1);
  j = ((j % period) + period) % period;
  return j < n ? j : period - j;
}

// A convolution on a (C, H, W) or (C, L) input: a conv2d stage (1-D: H = 1), after a gather
// stage that pads the input for a padding_mode other than zeros.
std::vector<Stage> conv_of(const LayerDesc& l, const std::string& who, const std::vector<int64_t>& in_frac,
                           const std::vector<int64_t>& shape, std::vector<int64_t>& out_shape) {
  const bool one_d = l.weight.defined() && l.weight.dim() == 3;
  if (!l.weight.defined() || (l.weight.dim() != 4 && !one_d)) fail(who, "expected a 3-D or 4-D weight");
  const size_t axes = one_d ? 1 : 2;
  if (shape.size() != axes + 1) {
    fail(who, "expects a (C, " + std::string(one_d ? "L" : "H, W") + ") input per sample, the previous "
              "layers give " + std::to_string(shape.size()) + " dimensions" +
              (shape.size() == 1 ? " (pass input_shape for a convolutional model)" : ""));
  }
  auto param = [&](const std::vector<int64_t>& v, const char* what, size_t i) -> int64_t {
    if (v.size() != axes) fail(who, std::string(what) + " must have one value per spatial axis");
    if (v[i] < 0) fail(who, std::string(what) + " must be >= 0");
    return v[i];
  };
  const std::vector<int64_t>& pad_end = l.padding_end.empty() ? l.padding : l.padding_end;
  std::vector<Stage> stages;
  Stage s;
  s.kind = "conv2d";
  s.name = who;
  ConvGeometry& g = s.conv;
  g.in_channels = shape[0];
  g.in_h = one_d ? 1 : shape[1];
  g.in_w = shape[axes];
  g.groups = l.groups;
  g.kernel_h = one_d ? 1 : l.weight.size(2);
  g.kernel_w = l.weight.size(one_d ? 2 : 3);
  g.dilation_h = one_d ? 1 : param(l.dilation, "dilation", 0);
  g.dilation_w = param(l.dilation, "dilation", axes - 1);
  if (g.dilation_h <= 0 || g.dilation_w <= 0) fail(who, "dilation must be positive");
  const std::vector<int64_t> cf = channel_fracs(in_frac, g.in_channels, who);
  if (l.transposed) {
    // y = conv_transpose2d(x): zeros between the input's values (stride), padding
    // dilation (k - 1) - padding before and that plus output_padding after (negative: cropped), as
    // a gather stage, then a stride-1 convolution with the flipped kernel.
    if (one_d) fail(who, "transposed 1-D convolutions are not supported");
    if (g.groups <= 0 || l.weight.size(0) != g.in_channels || g.in_channels % g.groups != 0) {
      fail(who, "its weight expects " + std::to_string(l.weight.size(0)) + " input channels (groups " +
                std::to_string(g.groups) + "), the input has " + std::to_string(g.in_channels));
    }
    g.out_channels = l.weight.size(1) * g.groups;
    const int64_t sh = param(l.stride, "stride", 0), sw = param(l.stride, "stride", 1);
    if (sh <= 0 || sw <= 0) fail(who, "stride must be positive");
    const std::vector<int64_t> op = l.output_padding.empty() ? std::vector<int64_t>{0, 0} : l.output_padding;
    const int64_t bh = g.dilation_h * (g.kernel_h - 1) - param(l.padding, "padding", 0);
    const int64_t bw = g.dilation_w * (g.kernel_w - 1) - param(l.padding, "padding", 1);
    const int64_t eh = bh + param(op, "output_padding", 0), ew = bw + param(op, "output_padding", 1);
    const int64_t ph = (g.in_h - 1) * sh + 1 + bh + eh, pw = (g.in_w - 1) * sw + 1 + bw + ew;
    if (ph < g.dilation_h * (g.kernel_h - 1) + 1 || pw < g.dilation_w * (g.kernel_w - 1) + 1) {
      fail(who, "the padding leaves no output");
    }
    Stage up;
    up.kind = "gather";
    up.name = who + " upsampling";
    up.in_features = g.in_channels * g.in_h * g.in_w;
    up.out_features = g.in_channels * ph * pw;
    auto source = [](int64_t i, int64_t before, int64_t stride, int64_t n) -> int64_t {
      const int64_t u = i - before;
      if (u < 0 || u % stride != 0 || u / stride >= n) return -1;
      return u / stride;
    };
    for (int64_t c = 0; c < g.in_channels; ++c) {
      for (int64_t y = 0; y < ph; ++y) {
        const int64_t sy = source(y, bh, sh, g.in_h);
        for (int64_t x = 0; x < pw; ++x) {
          const int64_t sx = source(x, bw, sw, g.in_w);
          up.index.push_back(sy < 0 || sx < 0 ? -1 : (c * g.in_h + sy) * g.in_w + sx);
          up.frac.push_back(cf[c]);
        }
      }
    }
    stages.push_back(std::move(up));
    g.in_h = ph;
    g.in_w = pw;
    g.stride_h = g.stride_w = 1;
    g.pad_h = g.pad_w = g.pad_h_end = g.pad_w_end = 0;
    if (!l.padding_mode.empty() && l.padding_mode != "zeros") {
      fail(who, "padding_mode `" + l.padding_mode + "`: transposed convolutions pad with zeros only");
    }
  } else {
    g.out_channels = l.weight.size(0);
    if (g.groups <= 0 || g.in_channels % g.groups != 0 || l.weight.size(1) * g.groups != g.in_channels) {
      fail(who, "its weight expects " + std::to_string(l.weight.size(1) * g.groups) +
                " input channels (groups " + std::to_string(g.groups) + "), the input has " +
                std::to_string(g.in_channels));
    }
    g.stride_h = one_d ? 1 : param(l.stride, "stride", 0);
    g.stride_w = param(l.stride, "stride", axes - 1);
    if (g.stride_h <= 0 || g.stride_w <= 0) fail(who, "stride must be positive");
    g.pad_h = one_d ? 0 : param(l.padding, "padding", 0);
    g.pad_w = param(l.padding, "padding", axes - 1);
    g.pad_h_end = one_d ? 0 : param(pad_end, "padding", 0);
    g.pad_w_end = param(pad_end, "padding", axes - 1);
  }
  if (g.out_h() <= 0 || g.out_w() <= 0) fail(who, "the kernel is larger than the padded input");
  const std::string& mode = l.padding_mode;
  if (!l.transposed && !mode.empty() && mode != "zeros") {
    if (mode != "reflect" && mode != "replicate" && mode != "circular") {
      fail(who, "padding_mode `" + mode + "` is not supported (zeros, reflect, replicate, circular)");
    }
    if (mode != "replicate" && (g.pad_h > g.in_h || g.pad_h_end > g.in_h || g.pad_w > g.in_w ||
                                g.pad_w_end > g.in_w)) {
      fail(who, "padding_mode `" + mode + "` needs padding no larger than the input");
    }
    // a gather stage builds the padded input; the convolution then pads nothing
    Stage pad;
    pad.kind = "gather";
    pad.name = who + " padding";
    const int64_t ph = g.in_h + g.pad_h + g.pad_bottom(), pw = g.in_w + g.pad_w + g.pad_right();
    pad.in_features = g.in_channels * g.in_h * g.in_w;
    pad.out_features = g.in_channels * ph * pw;
    for (int64_t c = 0; c < g.in_channels; ++c) {
      for (int64_t y = 0; y < ph; ++y) {
        const int64_t sy = pad_source(y, g.in_h, g.pad_h, mode);
        for (int64_t x = 0; x < pw; ++x) {
          pad.index.push_back((c * g.in_h + sy) * g.in_w + pad_source(x, g.in_w, g.pad_w, mode));
          pad.frac.push_back(cf[c]);
        }
      }
    }
    stages.push_back(std::move(pad));
    g.in_h = ph;
    g.in_w = pw;
    g.pad_h = g.pad_w = g.pad_h_end = g.pad_w_end = 0;
  }
  s.in_features = g.in_channels * g.in_h * g.in_w;
  s.out_features = g.out_channels * g.out_h() * g.out_w();
  const int64_t icg = g.in_channels / g.groups, ocg = g.out_channels / g.groups, taps = g.kernel_h * g.kernel_w;
  Codes w = kernel_codes(l, who);
  if (l.transposed) {
    // ConvTranspose2d's kernel (in, out/groups, kh, kw) as the equivalent convolution's
    // (out, in/groups, kh, kw), flipped in space
    const int64_t in_c = l.weight.size(0), og = l.weight.size(1);
    Codes t;
    t.values.resize(w.values.size());
    t.efrac.resize(w.values.size());
    for (int64_t o = 0; o < g.out_channels; ++o) {
      const int64_t grp = o / og;
      for (int64_t c = 0; c < in_c / g.groups; ++c) {
        for (int64_t y = 0; y < g.kernel_h; ++y) {
          for (int64_t x = 0; x < g.kernel_w; ++x) {
            const int64_t src = (((grp * (in_c / g.groups) + c) * og + o % og) * g.kernel_h +
                                 (g.kernel_h - 1 - y)) * g.kernel_w + (g.kernel_w - 1 - x);
            const int64_t dst = ((o * (in_c / g.groups) + c) * g.kernel_h + y) * g.kernel_w + x;
            t.values[dst] = w.values[src];
            t.efrac[dst] = w.efrac[src];
          }
        }
      }
    }
    w = std::move(t);
  }
  weights_of(l, who, [&](int64_t o, int64_t k) { return cf[static_cast<size_t>((o / ocg) * icg + k / taps)]; },
             w, g.out_channels, s);
  // one frac per output value: the channel's
  std::vector<int64_t> per_channel = s.frac;
  s.frac.clear();
  for (int64_t o = 0; o < g.out_channels; ++o) {
    s.frac.insert(s.frac.end(), static_cast<size_t>(g.out_h() * g.out_w()), per_channel[o]);
  }
  out_shape = one_d ? std::vector<int64_t>{g.out_channels, g.out_w()}
                    : std::vector<int64_t>{g.out_channels, g.out_h(), g.out_w()};
  stages.push_back(std::move(s));
  return stages;
}

// QAvgPool2d / QGlobalAvgPool2d: sum over the window times average_quantizer(1/area) (QKeras's
// QAveragePooling2D), a depthwise conv2d stage whose taps are all that factor's code; without an
// average quantizer, the float average (a division by the area) is exact only for power-of-two
// areas, where the factor is 2^-k.
Stage pool_of(const LayerDesc& l, const std::string& who, const std::vector<int64_t>& in_frac,
              const std::vector<int64_t>& shape, std::vector<int64_t>& out_shape) {
  const bool global = l.class_name == "QGlobalAvgPool2d";
  if (shape.size() != 3) {
    fail(who, "expects a (C, H, W) input per sample, the previous layers give " +
              std::to_string(shape.size()) + " dimensions");
  }
  Stage s;
  s.kind = "conv2d";
  s.name = who;
  ConvGeometry& g = s.conv;
  g.in_channels = g.out_channels = g.groups = shape[0];
  g.in_h = shape[1];
  g.in_w = shape[2];
  if (global) {
    g.kernel_h = g.in_h;
    g.kernel_w = g.in_w;
  } else {
    if (l.kernel_size.size() != 2 || l.stride.size() != 2 || l.padding.size() != 2) {
      fail(who, "kernel_size, stride and padding must have two values");
    }
    g.kernel_h = l.kernel_size[0];
    g.kernel_w = l.kernel_size[1];
    g.stride_h = l.stride[0];
    g.stride_w = l.stride[1];
    g.pad_h = l.padding[0];
    g.pad_w = l.padding[1];
    if (g.pad_h < 0 || g.pad_w < 0 || g.stride_h <= 0 || g.stride_w <= 0) {
      fail(who, "stride must be positive and padding >= 0");
    }
    if ((g.pad_h > 0 || g.pad_w > 0) && !l.count_include_pad) {
      fail(who, "count_include_pad=False with padding: a window crossing the border averages "
                "fewer values (a divisor that is not the area), which has no exact integer form");
    }
    if (l.ceil_mode && g.kernel_h <= g.in_h + 2 * g.pad_h && g.kernel_w <= g.in_w + 2 * g.pad_w) {
      // PyTorch's ceil_mode output size: an extra window only where it starts inside the input
      auto ceil_size = [](int64_t n, int64_t k, int64_t st, int64_t pad) {
        int64_t o = (n + 2 * pad - k + st - 1) / st + 1;
        if ((o - 1) * st >= n + pad) --o;
        return o;
      };
      if (ceil_size(g.in_h, g.kernel_h, g.stride_h, g.pad_h) != g.out_h() ||
          ceil_size(g.in_w, g.kernel_w, g.stride_w, g.pad_w) != g.out_w()) {
        fail(who, "ceil_mode=True adds windows that cross the padded border, which average fewer "
                  "values (a divisor that is not the area): no exact integer form");
      }
    }
    if (g.pad_h * 2 > g.kernel_h || g.pad_w * 2 > g.kernel_w) {
      fail(who, "padding must be at most half the kernel size (PyTorch's rule)");
    }
  }
  if (g.kernel_h <= 0 || g.kernel_w <= 0 || g.out_h() <= 0 || g.out_w() <= 0) {
    fail(who, "the window is larger than the input");
  }
  const int64_t area = g.kernel_h * g.kernel_w;
  int64_t code = 1, ffrac = 0;
  if (l.kernel_quantizer) {
    const at::Tensor factor = at::full({}, 1.0 / static_cast<double>(area), at::kFloat);
    const Codes c = codes_of(*l.kernel_quantizer, factor, who, "average_quantizer");
    code = c.values[0];
    ffrac = c.frac[0];
  } else if (!po2_exponent(static_cast<double>(area), &ffrac)) {
    fail(who, "has no average_quantizer: the float average divides by the window area " +
              std::to_string(area) + ", which is not a power of two, so it is not exact in "
              "integers (give it an average_quantizer)");
  }
  s.in_features = g.in_channels * g.in_h * g.in_w;
  s.out_features = g.out_channels * g.out_h() * g.out_w();
  s.weight.assign(static_cast<size_t>(g.out_channels * area), code);
  const std::vector<int64_t> cf = channel_fracs(in_frac, g.in_channels, who);
  s.frac.clear();
  for (int64_t c = 0; c < g.out_channels; ++c) {
    s.frac.insert(s.frac.end(), static_cast<size_t>(g.out_h() * g.out_w()), cf[c] + ffrac);
  }
  out_shape = global ? (l.keepdim ? std::vector<int64_t>{g.out_channels, 1, 1}
                                  : std::vector<int64_t>{g.out_channels})
                     : std::vector<int64_t>{g.out_channels, g.out_h(), g.out_w()};
  return s;
}

int64_t lift0(int64_t code, int64_t up, const std::string& who, const std::string& what) {
  return code == 0 ? 0 : lift(code, up, who, what);
}

// An unfolded QBatchNorm in eval mode: y = x inv + (beta - mean inv) per channel, an "affine"
// stage; exact in float32 only if mean inv and beta are (checked here; x inv + shift by the engine).
Stage affine_of(const LayerDesc& l, const std::string& who, const std::vector<int64_t>& in_fracs,
                const std::vector<int64_t>& shape) {
  if (shape.empty()) fail(who, "needs a channel axis");
  const int64_t c = shape[0];
  int64_t size = 1;
  for (int64_t d : shape) size *= d;
  if (!l.weight.defined() || l.weight.numel() != c || !l.mean.defined() || l.mean.numel() != c) {
    fail(who, "the statistics have " + std::to_string(l.mean.defined() ? l.mean.numel() : 0) +
              " channels, the input " + std::to_string(c));
  }
  const Codes inv = l.kernel_quantizer ? codes_of(*l.kernel_quantizer, l.weight.reshape({c}), who, "inverse_quantizer")
                                       : float_codes(l.weight.reshape({c}), who, "the inverse");
  const Codes mean = l.mean_quantizer ? codes_of(*l.mean_quantizer, l.mean.reshape({c}), who, "mean_quantizer")
                                      : float_codes(l.mean.reshape({c}), who, "the running mean");
  Codes beta;
  if (l.bias.defined()) {
    beta = l.bias_quantizer ? codes_of(*l.bias_quantizer, l.bias.reshape({c}), who, "beta_quantizer")
                            : float_codes(l.bias.reshape({c}), who, "beta");
  }
  Stage s;
  s.kind = "affine";
  s.name = who;
  s.channels = c;
  s.in_features = s.out_features = size;
  s.weight.resize(static_cast<size_t>(c));
  s.bias.resize(static_cast<size_t>(c));
  const int64_t none = std::numeric_limits<int32_t>::min();
  const std::string hint = " (quantize it: inverse_quantizer=\"quantized_po2(...)\" or a fixed-point "
                           "one, mean_quantizer, beta_quantizer)";
  const std::vector<int64_t> cf = channel_fracs(in_fracs, c, who);
  for (int64_t o = 0; o < c; ++o) {
    const int64_t in_frac = cf[o];
    const int64_t fi = inv.frac[o] == none ? 0 : inv.frac[o];
    const int64_t fm = mean.frac[o] == none || inv.values[o] == 0 ? none : mean.frac[o] + fi;
    const int64_t fb = beta.values.empty() || beta.frac[o] == none ? none : beta.frac[o];
    const int64_t F = std::max({in_frac + fi, fm, fb});
    s.weight[o] = lift0(inv.values[o], F - in_frac - fi, who, "the inverse of channel " + std::to_string(o) + hint);
    const __int128 mi = static_cast<__int128>(mean.values[o]) * inv.values[o];
    if (mi >= (static_cast<__int128>(1) << 62) || -mi >= (static_cast<__int128>(1) << 62)) {
      fail(who, "channel " + std::to_string(o) + ": mean * inverse exceeds 2^62" + hint);
    }
    const int64_t m = lift0(static_cast<int64_t>(mi), mi == 0 ? 0 : F - fm, who, "mean * inverse of channel " + std::to_string(o) + hint);
    const int64_t b = beta.values.empty() ? 0 : lift0(beta.values[o], beta.values[o] == 0 ? 0 : F - fb, who, "beta of channel " + std::to_string(o) + hint);
    const int64_t limit = int64_t(1) << 24;
    if (m >= limit || -m >= limit || b >= limit || -b >= limit) {
      fail(who, "channel " + std::to_string(o) + ": beta or mean * inverse needs more than 24 bits at "
                "the output's frac, so the float32 layer rounds it" + hint);
    }
    s.bias[o] = b - m;
    s.frac.insert(s.frac.end(), static_cast<size_t>(size / c), F);
  }
  return s;
}


// ------------------------------------------------------------------------------------------------
// Recurrent layers (QSimpleRNN, QLSTM, QGRU): "recurrent" stages (engine.h, Recurrent).

bool is_recurrent(const std::string& c) { return c == "QSimpleRNN" || c == "QLSTM" || c == "QGRU"; }

using Wide = __int128;
Wide wsat(Wide v) { return v > Wide(kLimit) ? Wide(kLimit) : v; }
Wide wup(Wide v, int64_t k) { return k >= 62 ? (v == 0 ? 0 : Wide(kLimit)) : wsat(v << k); }
int64_t narrow(Wide v) { return static_cast<int64_t>(wsat(v)); }

// The largest |code| a requantizer gives.
int64_t code_bound(const Requantizer& r) {
  int64_t b = 1;
  auto see = [&](int64_t v) { b = std::max(b, v < 0 ? -v : v); };
  if (r.kind == "fixed") {
    see(r.lo);
    see(r.hi);
    if (r.has_slope) see(r.lo + r.neg_lo);  // the slope's term adds to the clamped code
  } else if (r.kind == "fixed_elem") {
    for (int64_t v : r.lo_elem) see(v);
    for (int64_t v : r.hi_elem) see(v);
  } else if (r.kind == "table") {
    for (const auto& cs : r.codes) {
      for (int64_t v : cs) see(v);
    }
  }
  return b;
}

// The bound of an activation slot's output for inputs bounded by in_bound.
Wide slot_range(const RecurrentActivation& a, Wide in_bound) {
  if (a.kind == "requantize") return code_bound(a.requantizer);
  if (a.kind == "hard_sigmoid") return a.in_frac > 61 ? Wide(kLimit) : Wide(2) << std::max<int64_t>(a.in_frac, 0);
  return in_bound;
}

// One activation slot on H values at in_frac (bounded by `bound`): the quantizer's requantization,
// or a float function the engine computes exactly (hard_sigmoid, relu, linear).
RecurrentActivation rnn_slot(const QuantizerPtr& q, const std::string& function, int64_t H, int64_t in_frac,
                             Wide bound, const std::string& who) {
  RecurrentActivation a;
  a.in_frac = in_frac;
  const std::vector<int64_t> fr(static_cast<size_t>(H), in_frac);
  if (q) {
    Stage st;
    bool monotonic = true;
    if (auto f = dynamic_cast<const FixedQuantizer*>(q.get()); f && (!f->is_uniform() || f->frac_bits().dim() > 0)) {
      st = fixed_elem_requant(*f, {H}, who, fr);
    } else if (table_quantizer(*q, &monotonic)) {
      st = table_requant_of(*q, who, fr, std::max<int64_t>(narrow(bound), 1), monotonic);
    } else {
      st = requant_of(*q, who, fr);
    }
    for (int64_t f : st.frac) {
      if (f != st.frac[0]) {
        fail(who, q->to_string() + ": widths per unit with different fractional bits are not supported "
                  "in a recurrent layer's slot");
      }
    }
    a.kind = "requantize";
    a.requantizer = std::move(st.requantizer);
    a.out_frac = st.frac.empty() ? 0 : st.frac[0];
    return a;
  }
  if (function == "hard_sigmoid") {
    a.kind = "hard_sigmoid";
    a.out_frac = in_frac + 1;
    return a;
  }
  if (function == "relu" || function == "linear") {
    a.kind = function;
    a.out_frac = in_frac;
    return a;
  }
  fail(who, "is the float function `" + function + "`, which float32 rounds: the engine needs a quantizer "
            "there (e.g. \"quantized_tanh(8)\", \"quantized_sigmoid(8)\") or hard_sigmoid, relu or linear");
}

// Weight codes of a recurrent kernel's rows [r0, r1), each lifted to one frac for the whole block:
// F = max(in_frac(k) + weight frac, bias frac); out: the lifted weights, biases (empty: none) and F.
struct Block {
  std::vector<int64_t> w, b;
  int64_t frac = 0;
  Wide bound = 0;  // max over rows of sum |w| in_bound + |b|
};

Block rnn_block(const Codes& w, const Codes* b, int64_t cols, int64_t r0, int64_t r1,
                const std::vector<int64_t>& in_frac, const std::vector<Wide>& in_bound, const std::string& who,
                const std::string& what) {
  Block out;
  int64_t F = std::numeric_limits<int32_t>::min();
  for (int64_t o = r0; o < r1; ++o) {
    if (b) F = std::max(F, b->frac[static_cast<size_t>(o)]);
    for (int64_t k = 0; k < cols; ++k) F = std::max(F, in_frac[static_cast<size_t>(k)] + w.efrac[static_cast<size_t>(o * cols + k)]);
  }
  if (F > 1074 || F < -1074) fail(who, what + ": frac out of range");
  out.frac = F;
  for (int64_t o = r0; o < r1; ++o) {
    Wide acc = 0;
    for (int64_t k = 0; k < cols; ++k) {
      const int64_t v = w.values[static_cast<size_t>(o * cols + k)];
      const int64_t lifted = v == 0 ? 0 : lift(v, F - in_frac[static_cast<size_t>(k)] - w.efrac[static_cast<size_t>(o * cols + k)], who, what);
      out.w.push_back(lifted);
      acc = wsat(acc + wsat(Wide(lifted < 0 ? -lifted : lifted) * in_bound[static_cast<size_t>(k)]));
    }
    if (b) {
      const int64_t v = b->values[static_cast<size_t>(o)];
      const int64_t lifted = v == 0 ? 0 : lift(v, F - b->frac[static_cast<size_t>(o)], who, what + " bias");
      out.b.push_back(lifted);
      acc = wsat(acc + Wide(lifted < 0 ? -lifted : lifted));
    }
    out.bound = std::max(out.bound, acc);
  }
  return out;
}

// What a direction's state slots give: the frac and bound of s = state_h(h) and cs = state_c(c).
struct StateGuess {
  int64_t s_frac = 0, cs_frac = 0;
  Wide sb = 1, csb = 1;
};

// One direction (index idx = layer * directions + d) of a recurrent layer, given the state's frac
// and bound (which the state slot built at the end must reproduce).
RecurrentDirection rnn_direction(const LayerDesc& l, const std::string& who, const std::string& cell, size_t idx,
                                 const std::vector<int64_t>& ff, const std::vector<Wide>& xb, const StateGuess& g) {
  const int64_t H = l.hidden_size, F = static_cast<int64_t>(ff.size());
  const int64_t G = cell == "lstm" ? 4 : cell == "gru" ? 3 : 1;
  const bool lstm = cell == "lstm", gru = cell == "gru";
  const std::string act_fn = l.activation_name.empty() ? "tanh" : l.activation_name;
  const std::string ract_fn = l.recurrent_activation_name.empty() ? "sigmoid" : l.recurrent_activation_name;
  const at::Tensor& wi = l.weights_ih[idx];
  const at::Tensor& wh = l.weights_hh[idx];
  if (!wi.defined() || wi.dim() != 2 || wi.size(0) != G * H || wi.size(1) != F) {
    fail(who, "weight_ih must have shape (" + std::to_string(G * H) + ", " + std::to_string(F) + ")");
  }
  if (!wh.defined() || wh.dim() != 2 || wh.size(0) != G * H || wh.size(1) != H) {
    fail(who, "weight_hh must have shape (" + std::to_string(G * H) + ", " + std::to_string(H) + ")");
  }
  const Codes cwi = codes_of(*l.kernel_quantizer, wi.detach().cpu(), who, "kernel_quantizer");
  const Codes cwh = codes_of(*l.recurrent_quantizer, wh.detach().cpu(), who, "recurrent_quantizer");
  auto bias_codes = [&](const std::vector<at::Tensor>& v, const char* what) -> std::optional<Codes> {
    if (idx >= v.size() || !v[idx].defined()) return std::nullopt;
    if (v[idx].dim() != 1 || v[idx].size(0) != G * H) fail(who, std::string(what) + " must have " + std::to_string(G * H) + " values");
    return l.bias_quantizer ? codes_of(*l.bias_quantizer, v[idx].detach().cpu(), who, "bias_quantizer")
                            : float_codes(v[idx].detach().cpu(), who, (std::string("the float ") + what).c_str());
  };
  const std::optional<Codes> cbi = bias_codes(l.biases_ih, "bias_ih"), cbh = bias_codes(l.biases_hh, "bias_hh");
  RecurrentDirection r;
  const Block X = rnn_block(cwi, cbi ? &*cbi : nullptr, F, 0, G * H, ff, xb, who, "weight_ih");
  r.w_ih = X.w;
  r.b_ih = X.b;
  r.x_frac = X.frac;
  const std::vector<int64_t> sf(static_cast<size_t>(H), g.s_frac);
  const std::vector<Wide> sbv(static_cast<size_t>(H), g.sb);
  const int64_t rows_hh = gru && !l.reset_after ? 2 * H : G * H;
  const Block R = rnn_block(cwh, cbh ? &*cbh : nullptr, H, 0, rows_hh, sf, sbv, who, "weight_hh");
  r.w_hh = R.w;
  r.b_hh = R.b;
  r.hh_frac = R.frac;
  r.a_frac = std::max({r.x_frac, r.hh_frac, int64_t(0)});
  const Wide ab = wsat(wup(X.bound, r.a_frac - r.x_frac) + wup(R.bound, r.a_frac - r.hh_frac));
  Wide hb = 0;
  if (cell == "rnn") {
    r.act = rnn_slot(l.activation, act_fn, H, r.a_frac, ab, who + " activation");
    r.h_frac = r.act.out_frac;
    hb = slot_range(r.act, ab);
  } else if (lstm) {
    r.ract = rnn_slot(l.recurrent_activation, ract_fn, H, r.a_frac, ab, who + " recurrent_activation");
    r.act = rnn_slot(l.activation, act_fn, H, r.a_frac, ab, who + " activation");
    const Wide rb = slot_range(r.ract, ab), gb = slot_range(r.act, ab);
    r.c_frac = std::max({r.ract.out_frac + g.cs_frac, r.ract.out_frac + r.act.out_frac, int64_t(0)});
    const Wide cb = wsat(wup(wsat(rb * g.csb), r.c_frac - r.ract.out_frac - g.cs_frac) +
                         wup(wsat(rb * gb), r.c_frac - r.ract.out_frac - r.act.out_frac));
    r.act_c = rnn_slot(l.activation, act_fn, H, r.c_frac, cb, who + " activation (of the carry)");
    r.h_frac = r.ract.out_frac + r.act_c.out_frac;
    hb = wsat(rb * slot_range(r.act_c, cb));
    r.state_c = rnn_slot(l.state_quantizer, "", H, r.c_frac, cb, who + " state_quantizer (of the carry)");
  } else {
    r.ract = rnn_slot(l.recurrent_activation, ract_fn, H, r.a_frac, ab, who + " recurrent_activation");
    const Wide rb = slot_range(r.ract, ab);
    Wide nb = 0;
    if (l.reset_after) {
      // R's n rows: r * (w_hn s + b_hn)
      Wide rn = 0;
      for (int64_t o = 2 * H; o < 3 * H; ++o) {
        Wide acc = r.b_hh.empty() ? 0 : Wide(std::abs(r.b_hh[static_cast<size_t>(o)]));
        for (int64_t k = 0; k < H; ++k) acc = wsat(acc + wsat(Wide(std::abs(r.w_hh[static_cast<size_t>(o * H + k)])) * g.sb));
        rn = std::max(rn, acc);
      }
      r.n_frac = std::max({r.x_frac, r.ract.out_frac + r.hh_frac, int64_t(0)});
      nb = wsat(wup(X.bound, r.n_frac - r.x_frac) + wup(wsat(rb * rn), r.n_frac - r.ract.out_frac - r.hh_frac));
    } else {
      const std::vector<int64_t> rsf(static_cast<size_t>(H), r.ract.out_frac + g.s_frac);
      const std::vector<Wide> rsb(static_cast<size_t>(H), wsat(rb * g.sb));
      // the candidate's rows of weight_hh and bias_hh, on r * s
      Codes nbias;
      if (cbh) {
        nbias.values.assign(cbh->values.begin() + 2 * H, cbh->values.end());
        nbias.frac.assign(cbh->frac.begin() + 2 * H, cbh->frac.end());
      }
      Codes nw;
      nw.values.assign(cwh.values.begin() + 2 * H * H, cwh.values.end());
      nw.efrac.assign(cwh.efrac.begin() + 2 * H * H, cwh.efrac.end());
      const Block N = rnn_block(nw, cbh ? &nbias : nullptr, H, 0, H, rsf, rsb, who, "weight_hh (candidate)");
      r.w_hn = N.w;
      r.b_hn = N.b;
      r.hn_frac = N.frac;
      r.n_frac = std::max({r.x_frac, r.hn_frac, int64_t(0)});
      nb = wsat(wup(X.bound, r.n_frac - r.x_frac) + wup(N.bound, r.n_frac - r.hn_frac));
    }
    r.act = rnn_slot(l.activation, act_fn, H, r.n_frac, nb, who + " activation");
    r.h_frac = r.ract.out_frac + std::max(r.act.out_frac, g.s_frac);
    hb = wsat(wup(wsat((Wide(1) << std::clamp<int64_t>(r.ract.out_frac, 0, 61)) + rb) * slot_range(r.act, nb),
                  r.h_frac - r.ract.out_frac - r.act.out_frac) +
              wup(wsat(rb * g.sb), r.h_frac - r.ract.out_frac - g.s_frac));
  }
  if (l.state_quantizer) {
    r.state_h = rnn_slot(l.state_quantizer, "", H, r.h_frac, hb, who + " state_quantizer");
  } else {
    r.state_h.kind = "linear";
    r.state_h.in_frac = r.state_h.out_frac = r.h_frac;
  }
  return r;
}

// One layer (index `layer`) of a recurrent layer on (L, F) inputs (fracs per value, bound per
// value): a "recurrent" stage.
Stage recurrent_of(const LayerDesc& l, const std::string& who, int64_t layer, const std::vector<int64_t>& in_frac,
                   const std::vector<int64_t>& in_bound, int64_t L, int64_t F, bool return_sequences) {
  const std::string& c = l.class_name;
  Stage s;
  s.kind = "recurrent";
  s.name = l.num_layers > 1 ? who + " layer " + std::to_string(layer) : who;
  Recurrent& R = s.recurrent;
  R.cell = c == "QLSTM" ? "lstm" : c == "QGRU" ? "gru" : "rnn";
  const int64_t H = l.hidden_size, D = l.bidirectional ? 2 : 1;
  R.steps = L;
  R.features = F;
  R.hidden = H;
  R.reset_after = l.reset_after;
  R.return_sequences = return_sequences;
  s.in_features = L * F;
  s.out_features = return_sequences ? L * D * H : D * H;
  std::vector<int64_t> ff(static_cast<size_t>(F));
  std::vector<Wide> xb(static_cast<size_t>(F), 0);
  for (int64_t j = 0; j < F; ++j) {
    ff[j] = in_frac[static_cast<size_t>(j)];
    for (int64_t t = 0; t < L; ++t) {
      const auto k = static_cast<size_t>(t * F + j);
      if (in_frac[k] != ff[j]) fail(who, "its input's frac varies along the sequence (feature " + std::to_string(j) + ")");
      xb[j] = std::max(xb[j], Wide(in_bound[k]));
    }
  }
  for (int64_t d = 0; d < D; ++d) {
    const auto idx = static_cast<size_t>(layer * D + d);
    if (idx >= l.weights_ih.size() || idx >= l.weights_hh.size()) fail(who, "is missing the weights of layer " + std::to_string(layer));
    // The state's frac and bound come from the state slot, which is built last: start from the
    // slot on a unit input and repeat until the direction reproduces what it assumed.
    StateGuess g;
    const QuantizerPtr& sq = l.state_quantizer ? l.state_quantizer : l.activation;
    const RecurrentActivation first = rnn_slot(sq, "", H, 0, 1, who + (l.state_quantizer ? " state_quantizer" : " activation"));
    g.s_frac = g.cs_frac = first.out_frac;
    g.sb = g.csb = slot_range(first, 1);
    RecurrentDirection r;
    for (int iter = 0;; ++iter) {
      r = rnn_direction(l, who, R.cell, idx, ff, xb, g);
      StateGuess got = g;
      got.s_frac = r.state_h.out_frac;
      got.sb = r.state_h.kind == "linear" ? slot_range(r.act, 0) : slot_range(r.state_h, 0);
      if (R.cell == "lstm") {
        got.cs_frac = r.state_c.out_frac;
        got.csb = slot_range(r.state_c, 0);
      }
      if (got.s_frac == g.s_frac && got.cs_frac == g.cs_frac && got.sb <= g.sb && got.csb <= g.csb) break;
      if (iter == 4) fail(who, "the state's fraction bits do not settle (its quantizer's output grid depends on its input range)");
      got.sb = std::max(got.sb, g.sb);
      got.csb = std::max(got.csb, g.csb);
      g = got;
    }
    R.directions.push_back(std::move(r));
  }
  for (int64_t t = 0; t < (return_sequences ? L : 1); ++t) {
    for (int64_t d = 0; d < D; ++d) s.frac.insert(s.frac.end(), static_cast<size_t>(H), R.directions[static_cast<size_t>(d)].h_frac);
  }
  return s;
}

bool is_passthrough(const std::string& c) {
  return c == "Dropout" || c == "Identity" || c == "Flatten" || c == "Dropout1d" || c == "AlphaDropout";
}

bool is_dense(const std::string& c) { return c == "QLinear" || c == "QDense" || c == "QLinearBatchNorm"; }
bool is_bn(const std::string& c) { return c == "QBatchNorm1d" || c == "QBatchNorm2d"; }
bool is_pool(const std::string& c) { return c == "QAvgPool2d" || c == "QGlobalAvgPool2d"; }
bool is_conv(const std::string& c) {
  return c == "QConv1d" || c == "QConv2d" || c == "QDepthwiseConv2d" || c == "QConv2dBatchNorm" ||
         c == "QConvTranspose2d";
}

[[noreturn]] void refuse(const LayerDesc& l, const std::string& who) {
  const std::string& c = l.class_name;
  if (c == "ReLU" || c == "Tanh" || c == "Sigmoid" || c == "Softmax" || c == "LeakyReLU" ||
      c == "ReLU6" || c == "Hardtanh" || c == "GELU" || c == "ELU" || c == "SiLU") {
    fail(who, "is a float activation: the engine needs every activation quantized (e.g. "
              "QActivation(\"quantized_relu(6,0)\")); leave a final softmax outside the model");
  }
  if (c == "Linear" || c == "Conv2d" || c == "Conv1d" || c == "BatchNorm1d" || c == "BatchNorm2d") {
    fail(who, "is a float layer: the engine needs quantized layers (QLinear, QLinearBatchNorm, "
              "QActivation)");
  }
  const char* supported = "supported: QLinear/QDense, QLinearBatchNorm, QConv1d, QConv2d, "
                          "QDepthwiseConv2d, QSeparableConv1d/2d, QConvTranspose2d, QConv2dBatchNorm, "
                          "QAvgPool2d, QGlobalAvgPool2d, QBatchNorm1d, QBatchNorm2d, QSimpleRNN, QLSTM, "
                          "QGRU (each followed by RecurrentOutput), QActivation, Flatten, Dropout, Identity";
  if (c == "RNN" || c == "LSTM" || c == "GRU") {
    fail(who, std::string("is a float recurrent layer: the engine needs quantized ones (QSimpleRNN, "
                          "QLSTM, QGRU; ") + supported + ")");
  }
  fail(who, std::string("is not supported by the engine (") + supported + ")");
}

}  // namespace

Program compile_program(const std::vector<LayerDesc>& layers, const CompileOptions& options) {
  Program p;
  for (const auto& l : layers) {
    if (!is_passthrough(l.class_name) && !is_dense(l.class_name) && !is_conv(l.class_name) &&
        !is_pool(l.class_name) && !is_bn(l.class_name) && !is_recurrent(l.class_name) &&
        l.class_name != "RecurrentOutput" && l.class_name != "QActivation") {
      refuse(l, who_of(l));
    }
  }
  // The input size: input_shape, else the first dense layer's in_features.
  std::vector<int64_t> shape = options.input_shape;
  if (!shape.empty()) {
    p.input_size = 1;
    for (int64_t d : shape) {
      if (d <= 0 || d > (int64_t(1) << 24)) {
        throw InvalidArgument("heteroq::deploy::compile: input_shape dimensions must be in [1, 2^24]");
      }
      p.input_size *= d;
    }
  } else {
    for (const auto& l : layers) {
      if (is_conv(l.class_name) || is_pool(l.class_name)) {
        fail(who_of(l), "a convolutional model needs its per-sample input shape: pass input_shape "
                        "((C, H, W) or (C, L))");
      }
      if (is_recurrent(l.class_name)) {
        fail(who_of(l), "a recurrent model needs its per-sample input shape: pass input_shape "
                        "(steps, features)");
      }
      if (is_dense(l.class_name) && l.weight.defined() && l.weight.dim() == 2) {
        p.input_size = l.weight.size(1);
        break;
      }
    }
    shape = {p.input_size};
  }
  if (p.input_size == 0) {
    throw InvalidArgument("heteroq::deploy::compile: the model has no QLinear/QDense or convolution "
                          "layer: nothing to compile");
  }
  bool have_input = false, seen_dense = false;
  std::vector<int64_t> frac;
  auto make_input = [&](const Quantizer& q, const std::string& who) {
    bool monotonic = true;
    if (auto fq = dynamic_cast<const FixedQuantizer*>(&q)) {
      p.input = fixed_elem_input(*fq, shape, who);
      p.input_name = who;
      have_input = true;
      frac = p.input.frac_elem;
      return;
    }
    if (table_quantizer(q, &monotonic)) {
      fail(who, q.to_string() + " as the model's input quantizer: the engine converts the float "
                "input with quantized_bits, quantized_relu, binary or ternary; put such a "
                "QActivation first (e.g. QActivation(\"quantized_bits(8,3,alpha=1)\")) and this one "
                "after it");
    }
    p.input = input_of(q, who);
    p.input_name = who;
    have_input = true;
    frac.assign(static_cast<size_t>(p.input_size), p.input.frac);
  };
  // The bound of the current values (max |integer|): the input quantizer's range, else the bound
  // analysis of the program so far.
  auto current_bound = [&]() {
    int64_t bound = std::max(std::abs(p.input.lo), std::abs(p.input.hi));
    if (p.input.kind != "fixed") bound = 1;
    if (p.input.kind == "fixed_elem") {
      bound = 0;
      for (size_t j = 0; j < p.input.lo_elem.size(); ++j) {
        bound = std::max({bound, std::abs(p.input.lo_elem[j]), std::abs(p.input.hi_elem[j])});
      }
    }
    if (p.input.slope != 0.0) bound = std::max(bound, std::abs(p.input.lo + p.input.neg_lo));
    if (!p.stages.empty()) {
      Program prefix = p;
      prefix.output_shape.clear();
      EngineOptions o;
      o.sparse_min_zero_fraction = 2.0;
      bound = Engine(prefix, o).stage_info().back().max_abs;
    }
    return bound;
  };
  // An activation on the current values: a requantization, or a table for the element functions
  // that are not a rounding on a grid (the integer domain: the bound of the values so far).
  auto activation = [&](const Quantizer& q, const std::string& who) {
    bool monotonic = true;
    // (widths of any shape but a scalar, uniform ones too: the table evaluates the quantizer on
    // a flat range of integers, which a per-channel shape does not broadcast to)
    if (auto f = dynamic_cast<const FixedQuantizer*>(&q);
        f && (!f->is_uniform() || f->frac_bits().dim() > 0)) {
      p.stages.push_back(fixed_elem_requant(*f, shape, who, frac));
      frac = p.stages.back().frac;
      return;
    }
    if (table_quantizer(q, &monotonic)) {
      p.stages.push_back(table_requant_of(q, who, frac, current_bound(), monotonic));
    } else {
      p.stages.push_back(requant_of(q, who, frac));
    }
    frac = p.stages.back().frac;
  };
  auto need_input = [&](const std::string& who) {
    if (!have_input) {
      fail(who, "the model's input is float: the engine needs its first layer to be a "
                "QActivation (the input quantizer) or an explicit input_quantizer option");
    }
  };
  if (options.input_quantizer) make_input(*options.input_quantizer, "CompileOptions::input_quantizer");
  for (size_t li = 0; li < layers.size(); ++li) {
    const LayerDesc& l = layers[li];
    const std::string who = who_of(l);
    if (l.training) fail(who, "is in training mode; call eval() first (the engine reproduces eval mode)");
    const std::string& c = l.class_name;
    if (c == "RecurrentOutput") {
      fail(who, "does not follow a recurrent layer (QSimpleRNN, QLSTM, QGRU)");
    }
    if (is_recurrent(c)) {
      need_input(who);
      if (li + 1 >= layers.size() || layers[li + 1].class_name != "RecurrentOutput") {
        fail(who, "must be followed by a RecurrentOutput layer (heteroq.nn.RecurrentOutput), which says "
                  "whether the whole sequence or the last state goes on (a recurrent layer returns a tuple)");
      }
      const bool ret = layers[li + 1].return_sequences;
      ++li;
      if (!l.batch_first) {
        fail(who, "has batch_first=False: the engine's samples are the input's first axis; build the layer "
                  "with batch_first=True (the weights are the same)");
      }
      if (shape.size() != 2) {
        fail(who, "expects a (steps, features) sequence per sample, the previous layer gives " +
                  std::to_string(shape.size()) + "-D values (compile with input_shape=(steps, features))");
      }
      if (l.hidden_size <= 0 || l.num_layers < 1 || l.weights_ih.empty()) fail(who, "has no weights");
      if (!l.kernel_quantizer || !l.recurrent_quantizer) {
        fail(who, "has float weights: the engine needs a kernel_quantizer and a recurrent_quantizer");
      }
      if (!l.state_quantizer && (c != "QSimpleRNN" || !l.activation)) {
        fail(who, c == "QSimpleRNN"
                      ? "has neither a state_quantizer nor a quantized activation: the fraction bits of its "
                        "state would grow every step (float32 rounds them); give it a state_quantizer"
                      : "has no state_quantizer: the fraction bits of its " +
                            std::string(c == "QLSTM" ? "carry" : "state") + " would grow every step "
                            "(float32 rounds them); give it a state_quantizer (e.g. \"quantized_bits(8,0,alpha=1)\")");
      }
      const int64_t D = l.bidirectional ? 2 : 1;
      for (int64_t k = 0; k < l.num_layers; ++k) {
        const bool last = k + 1 == l.num_layers;
        const int64_t F = shape[1];
        const int64_t bound = current_bound();
        const std::vector<int64_t> in_bound(frac.size(), bound);
        p.stages.push_back(recurrent_of(l, who, k, frac, in_bound, shape[0], F, last ? ret : true));
        frac = p.stages.back().frac;
        shape = {shape[0], D * l.hidden_size};
      }
      if (!ret) shape = {D * l.hidden_size};
      seen_dense = true;
      continue;
    }
    if (is_passthrough(c)) {
      if (c == "Flatten") {
        if (!seen_dense && options.input_shape.empty()) p.flatten_input = true;
        int64_t n = 1;
        for (int64_t d : shape) n *= d;
        shape = {n};
      }
      continue;
    }
    if (c == "QActivation") {
      if (!l.activation) fail(who, "has no quantizer");
      if (!have_input) {
        make_input(*l.activation, who);
      } else {
        activation(*l.activation, who);
      }
      continue;
    }
    need_input(who);
    if (is_dense(c)) {
      if (shape.size() != 1) {
        fail(who, "gets a " + std::to_string(shape.size()) + "-D input per sample: put a Flatten "
                  "before it (the engine's dense layers take flat inputs)");
      }
      if (l.weight.size(1) != static_cast<int64_t>(frac.size())) {
        fail(who, "expects " + std::to_string(l.weight.size(1)) + " input features, the previous "
                  "layer gives " + std::to_string(frac.size()));
      }
      p.stages.push_back(dense_of(l, who, frac));
      p.stages.back().cost_bits = l.cost_bits;
      p.stages.back().cost_frac = l.cost_frac;
      frac = p.stages.back().frac;
      shape = {l.weight.size(0)};
      seen_dense = true;
      continue;
    }
    if (is_bn(c)) {
      p.stages.push_back(affine_of(l, who, frac, shape));
      frac = p.stages.back().frac;
      continue;
    }
    if (is_pool(c)) {
      std::vector<int64_t> out_shape;
      p.stages.push_back(pool_of(l, who, frac, shape, out_shape));
      frac = p.stages.back().frac;
      shape = out_shape;
      if (l.activation) activation(*l.activation, who + " activation");
      continue;
    }
    if (is_conv(c)) {
      std::vector<int64_t> out_shape;
      for (Stage& s : conv_of(l, who, frac, shape, out_shape)) p.stages.push_back(std::move(s));
      p.stages.back().cost_bits = l.cost_bits;
      p.stages.back().cost_frac = l.cost_frac;
      frac = p.stages.back().frac;
      shape = out_shape;
      seen_dense = true;
      continue;
    }
    refuse(l, who);
  }
  if (!have_input) {
    throw InvalidArgument("heteroq::deploy::compile: the model's input is float: the engine needs "
                          "its first layer to be a QActivation or an input_quantizer option");
  }
  p.output_shape = shape;
  // An unfolded batch norm is accepted only where the float32 layer is exact (its parameters are
  // float32 values whose products the float layer would round otherwise).
  const Engine check(p);
  for (size_t i = 0; i < p.stages.size(); ++i) {
    if (p.stages[i].kind == "affine" && !check.stage_info()[i].float32_exact) {
      throw InvalidArgument("heteroq::deploy::compile: " + p.stages[i].name + ": x * inverse + "
                            "(beta - mean * inverse) can exceed 2^24 at the output's frac, so the "
                            "float32 layer rounds it (quantize it: inverse_quantizer=\"quantized_po2(...)\" "
                            "or a fixed-point one, mean_quantizer, beta_quantizer)");
    }
  }
  return p;
}

namespace {

std::string class_of(const torch::nn::Module& m) {
  std::string n = m.name();
  const auto colon = n.rfind("::");
  if (colon != std::string::npos) n = n.substr(colon + 2);
  if (n.size() > 4 && n.compare(n.size() - 4, 4, "Impl") == 0) n = n.substr(0, n.size() - 4);
  return n;
}

template <size_t D>
std::vector<int64_t> as_vec(const torch::ExpandingArray<D>& a) {
  return std::vector<int64_t>(a->begin(), a->end());
}

template <size_t D>
void conv_desc(LayerDesc& d, const torch::Tensor& w, const torch::Tensor& b, const nn::QConvOptions<D>& o) {
  d.weight = w.detach();
  if (b.defined()) d.bias = b.detach();
  d.kernel_quantizer = o.kernel_quantizer().get();
  d.bias_quantizer = o.bias_quantizer().get();
  d.stride = as_vec(o.stride());
  d.padding = as_vec(o.padding());
  d.dilation = as_vec(o.dilation());
  d.groups = o.groups();
}

// As QBatchNormImplBase::forward in eval mode.
template <typename B>
void bn_desc(LayerDesc& d, const B& bn) {
  const auto& o = bn.options;
  if (!bn.running_mean.defined() || !bn.running_var.defined()) {
    fail("layer `" + d.name + "` (" + d.class_name + ")", "has no running statistics (eval mode "
         "would normalise with batch statistics)");
  }
  torch::NoGradGuard g;
  auto quantized = [](const nn::QuantizerArg& q, const torch::Tensor& t) {
    return q ? q.get()->forward(t) : t;
  };
  std::optional<torch::Tensor> gamma;
  if (bn.weight.defined()) gamma = bn.weight.detach();
  if (o.inverse_quantizer()) {
    d.weight = ops::_bn_inverse(bn.running_var, gamma, o.eps());
    d.kernel_quantizer = o.inverse_quantizer().get();
  } else {
    std::optional<torch::Tensor> qg;
    if (gamma) qg = quantized(o.gamma_quantizer(), *gamma);
    d.weight = ops::_bn_inverse(quantized(o.variance_quantizer(), bn.running_var), qg, o.eps());
  }
  d.mean = bn.running_mean.detach();
  d.mean_quantizer = o.mean_quantizer().get();
  if (bn.bias.defined()) d.bias = bn.bias.detach();
  d.bias_quantizer = o.beta_quantizer().get();
}

// A QSimpleRNN / QLSTM / QGRU: its flat weights per layer and direction and its slots.
template <typename M>
void rnn_desc(LayerDesc& d, const M& m) {
  const auto& o = m.options;
  const std::vector<torch::Tensor> w = m.all_weights();
  const size_t per = o.bias() ? 4 : 2;
  for (size_t k = 0; k + per <= w.size(); k += per) {
    d.weights_ih.push_back(w[k].detach());
    d.weights_hh.push_back(w[k + 1].detach());
    d.biases_ih.push_back(o.bias() ? w[k + 2].detach() : torch::Tensor());
    d.biases_hh.push_back(o.bias() ? w[k + 3].detach() : torch::Tensor());
  }
  d.hidden_size = o.hidden_size();
  d.num_layers = o.num_layers();
  d.bidirectional = o.bidirectional();
  d.batch_first = o.batch_first();
  d.kernel_quantizer = o.kernel_quantizer().get();
  d.recurrent_quantizer = o.recurrent_quantizer().get();
  d.bias_quantizer = o.bias_quantizer().get();
  d.state_quantizer = o.state_quantizer().get();
  d.activation = o.activation().quantizer();
  d.activation_name = o.activation().function();
  if constexpr (!std::is_same_v<M, nn::QSimpleRNNImpl>) {
    d.recurrent_activation = o.recurrent_activation().quantizer();
    d.recurrent_activation_name = o.recurrent_activation().function();
  }
  if constexpr (std::is_same_v<M, nn::QGRUImpl>) d.reset_after = o.reset_after();
}

void gather(const torch::nn::Module& m, const std::string& prefix, std::vector<LayerDesc>& out) {
  for (const auto& item : m.named_children()) {
    const std::string path = prefix.empty() ? item.key() : prefix + "." + item.key();
    const torch::nn::Module& child = *item.value();
    if (dynamic_cast<const torch::nn::SequentialImpl*>(&child) ||
        dynamic_cast<const nn::QSeparableConv1dImpl*>(&child) ||
        dynamic_cast<const nn::QSeparableConv2dImpl*>(&child)) {
      // a separable convolution: its depthwise then its pointwise convolution, chained
      gather(child, path, out);
      continue;
    }
    LayerDesc d;
    d.name = path;
    d.class_name = class_of(child);
    d.training = child.is_training();
    if (auto q = dynamic_cast<const nn::QLinearImpl*>(&child)) {
      d.class_name = "QLinear";
      d.weight = q->weight.detach();
      if (q->bias.defined()) d.bias = q->bias.detach();
      d.kernel_quantizer = q->options.kernel_quantizer().get();
      d.bias_quantizer = q->options.bias_quantizer().get();
    } else if (auto f = dynamic_cast<const nn::QLinearBatchNormImpl*>(&child)) {
      d.class_name = "QLinearBatchNorm";
      torch::NoGradGuard g;
      auto folded = f->get_folded_weights();
      d.weight = folded[0].detach();
      d.bias = folded[1].detach();
      d.kernel_quantizer = f->options.kernel_quantizer().get();
      d.bias_quantizer = f->options.bias_quantizer().get();
    } else if (auto c2 = dynamic_cast<const nn::QConv2dImpl*>(&child)) {
      d.class_name = "QConv2d";
      conv_desc(d, c2->weight, c2->bias, c2->options);
    } else if (auto ct = dynamic_cast<const nn::QConvTranspose2dImpl*>(&child)) {
      d.class_name = "QConvTranspose2d";
      conv_desc(d, ct->weight, ct->bias, ct->options);
      d.output_padding = as_vec(ct->options.output_padding());
      d.transposed = true;
    } else if (auto c1 = dynamic_cast<const nn::QConv1dImpl*>(&child)) {
      d.class_name = "QConv1d";
      conv_desc(d, c1->weight, c1->bias, c1->options);
    } else if (auto dw = dynamic_cast<const nn::QDepthwiseConv2dImpl*>(&child)) {
      d.class_name = "QDepthwiseConv2d";
      conv_desc(d, dw->conv->weight, dw->conv->bias, dw->conv->options);
    } else if (auto cb = dynamic_cast<const nn::QConv2dBatchNormImpl*>(&child)) {
      d.class_name = "QConv2dBatchNorm";
      torch::NoGradGuard g;
      auto folded = cb->get_folded_weights();
      const auto& o = cb->options;
      d.weight = folded[0].detach();
      d.bias = folded[1].detach();
      d.kernel_quantizer = o.kernel_quantizer().get();
      d.bias_quantizer = o.bias_quantizer().get();
      d.stride = as_vec(o.stride());
      d.padding = as_vec(o.padding());
      d.dilation = as_vec(o.dilation());
      d.groups = o.groups();
    } else if (auto b1 = dynamic_cast<const nn::QBatchNorm1dImpl*>(&child)) {
      d.class_name = "QBatchNorm1d";
      bn_desc(d, *b1);
    } else if (auto b2 = dynamic_cast<const nn::QBatchNorm2dImpl*>(&child)) {
      d.class_name = "QBatchNorm2d";
      bn_desc(d, *b2);
    } else if (auto ap = dynamic_cast<const nn::QAvgPool2dImpl*>(&child)) {
      d.class_name = "QAvgPool2d";
      const auto& o = ap->options;
      d.kernel_size = as_vec(o.kernel_size());
      d.stride = as_vec(o.stride());
      d.padding = as_vec(o.padding());
      d.ceil_mode = o.ceil_mode();
      d.count_include_pad = o.count_include_pad();
      d.kernel_quantizer = o.average_quantizer().get();
      d.activation = o.activation().get();
    } else if (auto gp = dynamic_cast<const nn::QGlobalAvgPool2dImpl*>(&child)) {
      d.class_name = "QGlobalAvgPool2d";
      d.keepdim = gp->options.keepdim();
      d.kernel_quantizer = gp->options.average_quantizer().get();
      d.activation = gp->options.activation().get();
    } else if (auto a = dynamic_cast<const nn::QActivationImpl*>(&child)) {
      d.class_name = "QActivation";
      d.activation = a->quantizer();
    } else if (auto r1 = dynamic_cast<const nn::QSimpleRNNImpl*>(&child)) {
      d.class_name = "QSimpleRNN";
      rnn_desc(d, *r1);
    } else if (auto r2 = dynamic_cast<const nn::QLSTMImpl*>(&child)) {
      d.class_name = "QLSTM";
      rnn_desc(d, *r2);
    } else if (auto r3 = dynamic_cast<const nn::QGRUImpl*>(&child)) {
      d.class_name = "QGRU";
      rnn_desc(d, *r3);
    } else if (auto ro = dynamic_cast<const nn::RecurrentOutputImpl*>(&child)) {
      d.class_name = "RecurrentOutput";
      d.return_sequences = ro->return_sequences;
    }
    out.push_back(std::move(d));
  }
}

// Copies each dense/convolution layer's accumulator type from the cost model's map (by name; a
// separable convolution's two layers from its "depthwise" and "pointwise" stages).
void attach_cost_types(std::vector<LayerDesc>& layers, const cost::DataTypeMap& map) {
  for (LayerDesc& l : layers) {
    if (!is_dense(l.class_name) && !is_conv(l.class_name)) continue;
    std::string name = l.name, part;
    for (const char* p : {".depthwise", ".pointwise"}) {
      const std::string suffix = p;
      if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
        bool parent = false;
        const std::string base = name.substr(0, name.size() - suffix.size());
        for (const auto& t : map.layers) parent = parent || (t.name == base && t.stages.size() == 2);
        if (parent) {
          part = suffix.substr(1);
          name = base;
        }
      }
    }
    for (const auto& t : map.layers) {
      if (t.name != name || t.stages.empty()) continue;
      const cost::QToolsStage* st = &t.stages.back();
      for (const auto& c : t.stages) {
        if (!part.empty() && c.part == part) st = &c;
      }
      const cost::QType& a = st->accumulator;
      if (a.is_floating_point || a.is_po2) break;
      l.cost_bits = a.bits;
      l.cost_frac = a.fractional_bits();
      break;
    }
  }
}

}  // namespace

Engine compile(const torch::nn::SequentialImpl& model, const CompileOptions& options) {
  std::vector<LayerDesc> layers;
  gather(model, "", layers);
  // The cost model's accumulator types (QTools's data types) for stage_info; a model the cost
  // model cannot describe compiles without them (cost_bits 0).
  try {
    auto self = std::dynamic_pointer_cast<torch::nn::SequentialImpl>(
        std::const_pointer_cast<torch::nn::Module>(model.shared_from_this()));
    std::vector<int64_t> shape{1};
    if (options.input_shape.empty()) {
      for (const auto& l : layers) {
        if (is_dense(l.class_name) && l.weight.defined() && l.weight.dim() == 2) {
          shape.push_back(l.weight.size(1));
          break;
        }
      }
    } else {
      shape.insert(shape.end(), options.input_shape.begin(), options.input_shape.end());
    }
    if (self && shape.size() > 1) {
      cost::QToolsOptions qo;
      if (options.input_quantizer) qo.source_quantizer = options.input_quantizer->to_string();
      attach_cost_types(layers, cost::data_types(torch::nn::Sequential(self), shape, qo));
    }
  } catch (const std::exception&) {
    // (bad_weak_ptr for a module not held by a shared_ptr, or a layer the cost model refuses)
  }
  return Engine(compile_program(layers, options));
}

}  // namespace heteroq::deploy
