// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// The integer inference engine: validation and bound analysis of a Program, and the kernels.
// Torch-free (the standard library, Eigen, and the element functions of core/fixed_point.h for
// the one float operation, the input quantizer).
#include "heteroq/deploy/engine.h"

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define HETEROQ_DEPLOY_AVX2 1  // the GEMM's AVX2 kernel, chosen at run time
#endif

#include "core/fixed_point.h"
#include "deploy/engine_internal.h"

namespace heteroq::deploy {
namespace {

namespace hd = heteroq::detail;

constexpr int64_t kMaxBound = int64_t(1) << 62;

std::string where(const Stage& s, size_t i) {
  return "stage " + std::to_string(i) + " (" + s.kind + (s.name.empty() ? "" : " of " + s.name) +
         ")";
}

int64_t abs_max(int64_t lo, int64_t hi) { return std::max(lo < 0 ? -lo : lo, hi < 0 ? -hi : hi); }

int storage_for(int64_t lo, int64_t hi) {
  if (lo >= std::numeric_limits<int16_t>::min() && hi <= std::numeric_limits<int16_t>::max()) {
    return 16;
  }
  if (lo >= std::numeric_limits<int32_t>::min() && hi <= std::numeric_limits<int32_t>::max()) {
    return 32;
  }
  return 64;
}

std::string storage_name(int t) { return "int" + std::to_string(t); }

// The kinds as integers for the run-time dispatch.
enum Op { kDense = 0, kFixed = 1, kSign = 2, kBinary = 3, kTernary = 4, kTable = 5, kFixedElem = 6 };
int op_code(const std::string& kind) {
  if (kind == "fixed") return kFixed;
  if (kind == "fixed_elem") return kFixedElem;
  if (kind == "sign") return kSign;
  if (kind == "binary") return kBinary;
  if (kind == "table") return kTable;
  return kTernary;
}

// The round mode of a "fixed_elem" quantizer as an integer: 0 RND_CONV, 1 RND, 2 TRN (-1: unknown).
int round_code(const std::string& m) {
  if (m == "RND_CONV") return 0;
  if (m == "RND") return 1;
  if (m == "TRN") return 2;
  return -1;
}

// Checks the per-value code ranges of a "fixed_elem" quantizer over n values (a wrapping range
// holds a power of two of codes; lo = hi = 0 is a constant 0) and returns its overall [lo, hi].
void check_fixed_elem(const std::vector<int64_t>& lo, const std::vector<int64_t>& hi, size_t n,
                      const std::string& round_mode, bool wrap, const std::string& at,
                      int64_t* rlo, int64_t* rhi) {
  auto fail = [&](const std::string& what) { throw InvalidArgument("heteroq::deploy::Engine: " + at + ": " + what); };
  if (lo.size() != n || hi.size() != n) {
    fail("lo_elem and hi_elem must have one value per element (" + std::to_string(n) + "), got " +
         std::to_string(lo.size()) + " and " + std::to_string(hi.size()));
  }
  if (round_code(round_mode) < 0) fail("round_mode must be RND_CONV, RND or TRN, got `" + round_mode + "`");
  *rlo = 0;
  *rhi = 0;
  for (size_t j = 0; j < n; ++j) {
    if (lo[j] > hi[j]) fail("lo_elem > hi_elem at element " + std::to_string(j));
    if (abs_max(lo[j], hi[j]) >= kMaxBound) fail("the code range of element " + std::to_string(j) + " exceeds 2^62");
    if (wrap) {
      const auto span = static_cast<uint64_t>(hi[j] - lo[j]) + 1;
      if ((span & (span - 1)) != 0) {
        fail("a wrapping range holds a power of two of codes; element " + std::to_string(j) +
             " has " + std::to_string(span));
      }
    }
    *rlo = std::min(*rlo, lo[j]);
    *rhi = std::max(*rhi, hi[j]);
  }
}

// Validates a requantizer over n values whose inputs are bounded by in_bound (one per value) and
// returns its code range [rlo, rhi].
void check_requantizer(const Requantizer& r, size_t n, const std::vector<int64_t>& in_bound,
                       const std::string& at, int64_t* rlo, int64_t* rhi) {
  auto fail = [](const std::string& what) { throw InvalidArgument("heteroq::deploy::Engine: " + what); };
  const int64_t prev_max = in_bound.empty() ? 0 : *std::max_element(in_bound.begin(), in_bound.end());
  const std::vector<int64_t>& prev_bound = in_bound;
  *rlo = 0;
  *rhi = 0;
  if (r.kind == "fixed") {
    if (r.shift.size() != n) fail(at + ": shift must have one value per channel");
    if (r.lo > r.hi) fail(at + ": lo > hi");
    if (r.has_slope && (r.slope_shift.size() != n || r.neg_lo > 0)) {
      fail(at + ": slope_shift must have one value per channel and neg_lo <= 0");
    }
    auto check_shift = [&](int64_t sh) {
      if (sh < -62 || sh > 62) fail(at + ": shift " + std::to_string(sh) + " is out of [-62, 62]");
      if (sh < 0 && static_cast<__int128>(prev_max) << (-sh) >= kMaxBound) {
        fail(at + ": shifting the input left by " + std::to_string(-sh) + " can exceed 2^62");
      }
    };
    for (int64_t sh : r.shift) check_shift(sh);
    if (r.has_slope) {
      for (int64_t sh : r.slope_shift) check_shift(sh);
    }
    // (the slope's term is added to the clamped code: the minimum is lo + neg_lo)
    *rlo = r.has_slope ? r.lo + r.neg_lo : r.lo;
    *rhi = r.hi;
    if (abs_max(*rlo, *rhi) >= kMaxBound) fail(at + ": the code range exceeds 2^62");
  } else if (r.kind == "fixed_elem") {
    if (r.shift.size() != n) fail(at + ": shift must have one value per element");
    for (size_t j = 0; j < n; ++j) {
      const int64_t sh = r.shift[j];
      if (sh < -62 || sh > 62) fail(at + ": shift " + std::to_string(sh) + " is out of [-62, 62]");
      if (sh < 0 && static_cast<__int128>(prev_bound[j]) << (-sh) >= kMaxBound) {
        fail(at + ": shifting input " + std::to_string(j) + " left by " + std::to_string(-sh) +
             " can exceed 2^62");
      }
    }
    check_fixed_elem(r.lo_elem, r.hi_elem, n, r.round_mode, r.wrap, at, rlo, rhi);
  } else if (r.kind == "sign") {
    *rlo = -1;
    *rhi = 1;
  } else if (r.kind == "binary") {
    if (r.low != -1 && r.low != 0) fail(at + ": binary low must be -1 or 0");
    *rlo = r.low;
    *rhi = 1;
  } else if (r.kind == "ternary") {
    if (r.threshold.size() != n) fail(at + ": threshold must have one value per channel");
    if (std::any_of(r.threshold.begin(), r.threshold.end(), [](int64_t t) { return t < 0; })) {
      fail(at + ": thresholds must be >= 0");
    }
    *rlo = -1;
    *rhi = 1;
  } else if (r.kind == "table") {
    if (r.table.size() != n) fail(at + ": table must have one value per channel");
    if (r.breaks.empty() || r.breaks.size() != r.codes.size()) {
      fail(at + ": breaks and codes must hold the same number (>= 1) of tables");
    }
    for (int64_t t : r.table) {
      if (t < 0 || t >= static_cast<int64_t>(r.breaks.size())) fail(at + ": table index " + std::to_string(t) + " out of range");
    }
    *rlo = std::numeric_limits<int64_t>::max();
    *rhi = std::numeric_limits<int64_t>::min();
    for (size_t t = 0; t < r.breaks.size(); ++t) {
      const auto& br = r.breaks[t];
      if (r.codes[t].size() != br.size() + 1) {
        fail(at + ": table " + std::to_string(t) + " needs one code more than breaks");
      }
      for (size_t k = 1; k < br.size(); ++k) {
        if (br[k] <= br[k - 1]) fail(at + ": the breaks of table " + std::to_string(t) + " must increase strictly");
      }
      for (int64_t c : r.codes[t]) {
        *rlo = std::min(*rlo, c);
        *rhi = std::max(*rhi, c);
      }
    }
    if (*rlo <= -kMaxBound || *rhi >= kMaxBound) fail(at + ": the code range exceeds 2^62");
  } else {
    fail(at + ": unknown requantizer kind `" + r.kind + "`");
  }
}


// ------------------------------------------------------------------------------------------------
// Recurrent stages.

int gates_of(const std::string& cell) { return cell == "lstm" ? 4 : cell == "gru" ? 3 : cell == "rnn" ? 1 : 0; }

// v * 2^k for a shift k in [0, 62] the bound analysis allowed.
inline int64_t up(int64_t v, int64_t k) { return v * (int64_t(1) << k); }

// Bounds in 128 bits, saturated at 2^62 (the analysis refuses anything that reaches it).
using Wide = __int128;
Wide sat(Wide v) { return v > Wide(kMaxBound) ? Wide(kMaxBound) : v; }
Wide up_wide(Wide v, int64_t k) { return sat(v << k); }

// The analysis of one activation slot: validates it on n values bounded by in_bound and returns
// the bound of its output.
Wide check_rnn_activation(const RecurrentActivation& a, size_t n, Wide in_bound, const std::string& at) {
  auto fail = [&](const std::string& what) {
    throw InvalidArgument("heteroq::deploy::Engine: " + at + ": " + what);
  };
  if (a.in_frac < -1074 || a.in_frac > 1074 || a.out_frac < -1074 || a.out_frac > 1074) fail("frac out of range");
  if (a.kind == "requantize") {
    int64_t lo = 0, hi = 0;
    check_requantizer(a.requantizer, n, std::vector<int64_t>(n, static_cast<int64_t>(sat(in_bound))), at, &lo, &hi);
    return abs_max(lo, hi);
  }
  if (a.kind == "hard_sigmoid") {
    if (a.in_frac < 0 || a.in_frac > 60 || a.out_frac != a.in_frac + 1) {
      fail("hard_sigmoid needs in_frac in [0, 60] and out_frac = in_frac + 1");
    }
    return Wide(2) << a.in_frac;
  }
  if (a.kind == "relu" || a.kind == "linear") {
    if (a.out_frac != a.in_frac) fail(a.kind + " keeps the frac (out_frac = in_frac)");
    return in_bound;
  }
  fail("unknown activation kind `" + a.kind + "` (expected requantize, hard_sigmoid, relu or linear)");
  return 0;
}

// Whether an activation's output range does not depend on its input (a quantizer, hard_sigmoid).
bool bounded_kind(const RecurrentActivation& a) { return a.kind == "requantize" || a.kind == "hard_sigmoid"; }

// The range of a bounded activation (before its input bound is known: the code range).
Wide range_of(const RecurrentActivation& a, size_t n, const std::string& at) {
  return check_rnn_activation(a, n, 0, at);
}

// sum_k |w[row k]| b[k] + |bias[row]| per row, the maximum over the rows.
Wide matvec_bound(const std::vector<int64_t>& w, const std::vector<int64_t>& bias, size_t rows, size_t cols,
                  const std::vector<Wide>& b) {
  Wide best = 0;
  for (size_t o = 0; o < rows; ++o) {
    Wide acc = bias.empty() ? 0 : (bias[o] < 0 ? -Wide(bias[o]) : Wide(bias[o]));
    for (size_t k = 0; k < cols; ++k) {
      const int64_t v = w[o * cols + k];
      acc = sat(acc + sat((v < 0 ? -Wide(v) : Wide(v)) * b[k]));
    }
    best = std::max(best, acc);
  }
  return best;
}

// Validates a "recurrent" stage and returns the bound of each of its outputs; *exact: whether
// every intermediate value of the float32 layer stays below 2^24 units of its frac.
std::vector<int64_t> analyse_recurrent(const Stage& s, const std::vector<int64_t>& in_bound,
                                       const std::string& at, bool* exact) {
  auto fail = [&](const std::string& what) {
    throw InvalidArgument("heteroq::deploy::Engine: " + at + ": " + what);
  };
  const Recurrent& R = s.recurrent;
  const int64_t G = gates_of(R.cell);
  if (G == 0) fail("unknown cell `" + R.cell + "` (expected rnn, lstm or gru)");
  const int64_t L = R.steps, F = R.features, H = R.hidden;
  const auto D = static_cast<int64_t>(R.directions.size());
  auto dim_ok = [](int64_t v) { return v > 0 && v <= (int64_t(1) << 24); };
  if (!dim_ok(L) || !dim_ok(F) || !dim_ok(H)) fail("steps, features and hidden must be in [1, 2^24]");
  if (D != 1 && D != 2) fail("a recurrent layer has 1 or 2 directions, got " + std::to_string(D));
  if (s.in_features != L * F || static_cast<int64_t>(in_bound.size()) != L * F) {
    fail("in_features (" + std::to_string(s.in_features) + ") must be steps * features = " +
         std::to_string(L * F) + " and match the " + std::to_string(in_bound.size()) +
         " values the previous stage produces");
  }
  const int64_t out_n = R.return_sequences ? L * D * H : D * H;
  if (s.out_features != out_n) fail("out_features must be " + std::to_string(out_n));
  if (static_cast<int64_t>(s.frac.size()) != out_n) fail("frac must have one value per output");
  const auto h = static_cast<size_t>(H), f = static_cast<size_t>(F);
  std::vector<Wide> xb(f, 0);
  for (size_t t = 0; t < static_cast<size_t>(L); ++t) {
    for (size_t k = 0; k < f; ++k) xb[k] = std::max(xb[k], Wide(in_bound[t * f + k]));
  }
  const Wide k24 = Wide(1) << 24;
  *exact = true;
  auto note = [&](Wide v) {
    if (v >= k24) *exact = false;
  };
  auto shift_of = [&](int64_t to, int64_t from, const char* what) {
    const int64_t k = to - from;
    if (k < 0 || k > 62) {
      fail(std::string(what) + ": the frac " + std::to_string(to) + " must be 0 to 62 above " + std::to_string(from));
    }
    return k;
  };
  auto check = [&](Wide v, const char* what) {
    if (v >= Wide(kMaxBound)) fail(std::string(what) + " can exceed 2^62");
    return v;
  };
  std::vector<int64_t> out_bound(static_cast<size_t>(out_n), 0);
  for (int64_t d = 0; d < D; ++d) {
    const RecurrentDirection& r = R.directions[static_cast<size_t>(d)];
    const std::string dn = "direction " + std::to_string(d);
    for (int64_t fr : {r.x_frac, r.hh_frac, r.a_frac, r.n_frac, r.hn_frac, r.c_frac, r.h_frac}) {
      if (fr < -1074 || fr > 1074) fail(dn + ": frac out of range");
    }
    const bool gru_split = R.cell == "gru" && !R.reset_after;
    const int64_t rows_hh = gru_split ? 2 * H : G * H;
    auto sized = [&](const std::vector<int64_t>& v, int64_t want, bool optional, const char* what) {
      if (static_cast<int64_t>(v.size()) != want && !(optional && v.empty())) {
        fail(dn + ": " + what + " has " + std::to_string(v.size()) + " values, expected " + std::to_string(want));
      }
      for (int64_t x : v) {
        if (x <= -kMaxBound || x >= kMaxBound) fail(dn + ": " + what + ": code out of range");
      }
    };
    // the slots a cell does not use are "linear" (nothing else is validated or run for them)
    auto unused = [&](const RecurrentActivation& a, const char* what) {
      if (a.kind != "linear" || a.in_frac != 0 || a.out_frac != 0) {
        fail(dn + ": `" + what + "` is not used by a " + R.cell + " cell: it must be linear with fracs 0");
      }
    };
    if (R.cell == "rnn") unused(r.ract, "ract");
    if (R.cell != "lstm") {
      unused(r.act_c, "act_c");
      unused(r.state_c, "state_c");
    }
    sized(r.w_ih, G * H * F, false, "w_ih");
    sized(r.b_ih, G * H, true, "b_ih");
    sized(r.w_hh, rows_hh * H, false, "w_hh");
    sized(r.b_hh, rows_hh, true, "b_hh");
    sized(r.w_hn, gru_split ? H * H : 0, false, "w_hn");
    sized(r.b_hn, gru_split ? H : 0, true, "b_hn");
    // the state's bound, which must not depend on the previous step's (a quantized state)
    Wide sb = 0, csb = 0;
    const std::string sh = at + ", " + dn + ", state_h", sc = at + ", " + dn + ", state_c";
    if (bounded_kind(r.state_h)) {
      sb = range_of(r.state_h, h, sh);
    } else if (R.cell == "rnn" && bounded_kind(r.act)) {
      sb = range_of(r.act, h, at + ", " + dn + ", act");
    } else if (R.cell == "lstm" && bounded_kind(r.ract) && bounded_kind(r.act_c)) {
      sb = sat(range_of(r.ract, h, at + ", " + dn + ", ract") * range_of(r.act_c, h, at + ", " + dn + ", act_c"));
    } else {
      fail(dn + ": the state fed back is not quantized (its range and frac would grow with the steps): "
                "give the layer a state_quantizer");
    }
    if (R.cell == "lstm") {
      if (!bounded_kind(r.state_c)) fail(dn + ": an LSTM's carry needs a state quantizer (state_c)");
      csb = range_of(r.state_c, h, sc);
    }
    const Wide xa = check(matvec_bound(r.w_ih, r.b_ih, static_cast<size_t>(G * H), f, xb), "w_ih x + b_ih");
    note(xa);
    const Wide ra = check(matvec_bound(r.w_hh, r.b_hh, static_cast<size_t>(rows_hh), h, std::vector<Wide>(h, sb)),
                          "w_hh s + b_hh");
    note(ra);
    const Wide ab = check(sat(up_wide(xa, shift_of(r.a_frac, r.x_frac, "a_frac")) +
                              up_wide(ra, shift_of(r.a_frac, r.hh_frac, "a_frac"))), "the gates' pre-activation");
    note(ab);
    Wide hb = 0;
    const std::string an = at + ", " + dn + ", act", rn = at + ", " + dn + ", ract";
    // an activation slot on inputs bounded by `in`: its output bound; float32's 0.5 x + 0.5 of a
    // hard_sigmoid is exact while |A| + 2^in_frac stays below 2^24 units of 2^-(in_frac + 1)
    auto slot = [&](const RecurrentActivation& a, Wide in, const std::string& where_) {
      const Wide out = check_rnn_activation(a, h, in, where_);
      if (a.kind == "hard_sigmoid") note(sat(in + (Wide(1) << a.in_frac)));
      return out;
    };
    if (R.cell == "rnn") {
      if (r.act.in_frac != r.a_frac) fail(dn + ": act.in_frac must be a_frac");
      hb = slot(r.act, ab, an);
      if (r.h_frac != r.act.out_frac) fail(dn + ": h_frac must be act.out_frac");
    } else if (R.cell == "lstm") {
      if (r.act.in_frac != r.a_frac || r.ract.in_frac != r.a_frac) fail(dn + ": act.in_frac and ract.in_frac must be a_frac");
      const Wide gb = slot(r.act, ab, an), rb = slot(r.ract, ab, rn);
      const Wide fc = check(rb * csb, "f cs"), ig = check(rb * gb, "i g");
      note(fc);
      note(ig);
      const Wide cb = check(sat(up_wide(fc, shift_of(r.c_frac, r.ract.out_frac + r.state_c.out_frac, "c_frac")) +
                                up_wide(ig, shift_of(r.c_frac, r.ract.out_frac + r.act.out_frac, "c_frac"))), "the carry");
      note(cb);
      if (r.act_c.in_frac != r.c_frac || r.state_c.in_frac != r.c_frac) {
        fail(dn + ": act_c.in_frac and state_c.in_frac must be c_frac");
      }
      const Wide acb = slot(r.act_c, cb, at + ", " + dn + ", act_c");
      check_rnn_activation(r.state_c, h, cb, sc);
      hb = check(rb * acb, "o act_c(c)");
      if (r.h_frac != r.ract.out_frac + r.act_c.out_frac) fail(dn + ": h_frac must be ract.out_frac + act_c.out_frac");
    } else {
      if (r.ract.in_frac != r.a_frac) fail(dn + ": ract.in_frac must be a_frac");
      if (r.act.in_frac != r.n_frac) fail(dn + ": act.in_frac must be n_frac");
      const Wide rb = slot(r.ract, ab, rn);
      Wide nb = 0;
      if (R.reset_after) {
        const Wide rr = check(rb * ra, "r (w_hn s + b_hn)");
        note(rr);
        nb = sat(up_wide(xa, shift_of(r.n_frac, r.x_frac, "n_frac")) +
                 up_wide(rr, shift_of(r.n_frac, r.ract.out_frac + r.hh_frac, "n_frac")));
      } else {
        const Wide rs = check(rb * sb, "r s");
        note(rs);
        const Wide hn = check(matvec_bound(r.w_hn, r.b_hn, h, h, std::vector<Wide>(h, rs)), "w_hn (r s) + b_hn");
        note(hn);
        nb = sat(up_wide(xa, shift_of(r.n_frac, r.x_frac, "n_frac")) + up_wide(hn, shift_of(r.n_frac, r.hn_frac, "n_frac")));
      }
      check(nb, "the candidate's pre-activation");
      note(nb);
      const Wide cand = slot(r.act, nb, an);
      const Wide one = Wide(1) << std::clamp<int64_t>(r.ract.out_frac, 0, 62);
      if (r.ract.out_frac < 0 || r.ract.out_frac > 60) fail(dn + ": ract.out_frac must be in [0, 60]");
      const Wide zn = check((one + rb) * cand, "(1 - z) n"), zs = check(rb * sb, "z s");
      note(zn);
      note(zs);
      hb = sat(up_wide(zn, shift_of(r.h_frac, r.ract.out_frac + r.act.out_frac, "h_frac")) +
               up_wide(zs, shift_of(r.h_frac, r.ract.out_frac + r.state_h.out_frac, "h_frac")));
    }
    check(hb, "h");
    note(hb);
    if (r.state_h.in_frac != r.h_frac) fail(dn + ": state_h.in_frac must be h_frac");
    check_rnn_activation(r.state_h, h, hb, sh);
    for (int64_t t = 0; t < (R.return_sequences ? L : 1); ++t) {
      for (int64_t j = 0; j < H; ++j) {
        const auto k = static_cast<size_t>((t * D + d) * H + j);
        out_bound[k] = static_cast<int64_t>(hb);
        if (s.frac[k] != r.h_frac) fail("frac of output " + std::to_string(k) + " must be its direction's h_frac");
      }
    }
  }
  return out_bound;
}
}  // namespace

int64_t bits_for(int64_t max_abs) {
  int64_t b = 1;  // the sign
  while (b < 64 && (max_abs >> (b - 1)) != 0) ++b;
  return b;
}

bool Engine::float32_exact() const {
  return std::all_of(info_.begin(), info_.end(), [](const StageInfo& s) { return s.float32_exact; });
}

Engine::Engine(Program program, EngineOptions options)
    : program_(std::move(program)), options_(options) {
  analyse();
}

void Engine::analyse() {
  const Program& p = program_;
  auto fail = [](const std::string& what) { throw InvalidArgument("heteroq::deploy::Engine: " + what); };
  if (p.input_size <= 0) fail("the input size must be positive, got " + std::to_string(p.input_size));
  if (!(options_.sparse_min_zero_fraction >= 0.0)) fail("sparse_min_zero_fraction must be >= 0");
  if (options_.gemm_min_batch < 0) fail("gemm_min_batch must be >= 0");
  const InputQuantizer& q = p.input;
  int64_t lo = 0, hi = 0;
  if (q.kind == "fixed") {
    int e = 0;
    if (!(q.in_scale > 0) || std::frexp(q.in_scale, &e) != 0.5) {
      fail("input quantizer: in_scale must be a power of two, got " + std::to_string(q.in_scale));
    }
    if (q.lo > q.hi) fail("input quantizer: lo > hi");
    if (q.slope != 0.0 && (!(q.slope > 0) || std::frexp(q.slope, &e) != 0.5 || q.neg_lo > 0)) {
      fail("input quantizer: the slope must be 0 or a power of two with neg_lo <= 0");
    }
    lo = q.slope != 0.0 ? q.lo + q.neg_lo : q.lo;  // the slope's term adds to the clamped code
    hi = q.hi;
    if (abs_max(lo, hi) >= kMaxBound) fail("input quantizer: the code range exceeds 2^62");
  } else if (q.kind == "fixed_elem") {
    const auto n = static_cast<size_t>(p.input_size);
    if (q.frac_elem.size() != n) {
      fail("input quantizer: frac_elem must have one value per input element (" + std::to_string(n) +
           "), got " + std::to_string(q.frac_elem.size()));
    }
    for (int64_t f : q.frac_elem) {
      if (f < -126 || f > 126) fail("input quantizer: frac_elem " + std::to_string(f) + " is out of [-126, 126]");
    }
    check_fixed_elem(q.lo_elem, q.hi_elem, n, q.round_mode, q.wrap, "input quantizer", &lo, &hi);
  } else if (q.kind == "sign" || q.kind == "ternary") {
    lo = -1;
    hi = 1;
    if (q.kind == "ternary" && !(q.threshold >= 0.0f)) fail("input quantizer: threshold must be >= 0");
  } else if (q.kind == "binary") {
    if (q.low != -1 && q.low != 0) fail("input quantizer: binary low must be -1 or 0");
    lo = q.low;
    hi = 1;
  } else {
    fail("input quantizer: unknown kind `" + q.kind + "`");
  }
  if (q.frac < -1074 || q.frac > 1074) fail("input quantizer: frac out of range");
  in_type_ = storage_for(lo, hi);
  in_op_ = op_code(q.kind);
  const size_t ns = p.stages.size();
  op_.assign(ns, kDense);
  uniform_shift_.assign(ns, 0);

  int64_t size = p.input_size;
  // The bound of every value of the previous stage's output (per element: a dense or convolution
  // stage may follow another directly, with a bound per channel).
  std::vector<int64_t> prev_bound(static_cast<size_t>(size), abs_max(lo, hi));
  int prev_type = in_type_;
  std::vector<int64_t> prev_frac(static_cast<size_t>(size), q.frac);
  if (q.kind == "fixed_elem") prev_frac = q.frac_elem;
  in_scale_f_.clear();
  if (q.kind == "fixed_elem") {
    for (int64_t f : q.frac_elem) in_scale_f_.push_back(std::ldexp(1.0f, static_cast<int>(f)));
  }
  info_.clear();
  std::vector<int64_t> sizes;
  w16_.assign(ns, {});
  b32_.assign(ns, {});
  dense_kind_.assign(ns, 0);
  out_type_.assign(ns, 64);
  sparse_.assign(ns, false);
  row_ptr_.assign(ns, {});
  col_.assign(ns, {});
  wsp_.assign(ns, {});
  wpack_.assign(ns, {});
#ifdef HETEROQ_DEPLOY_AVX2
  avx2_ = __builtin_cpu_supports("avx2");
#endif
  auto check_frac = [&](const std::vector<int64_t>& f, const std::string& at) {
    for (int64_t v : f) {
      if (v < -1074 || v > 1074) fail(at + ": frac out of range");
    }
  };
  for (size_t i = 0; i < ns; ++i) {
    const Stage& s = p.stages[i];
    const std::string at = where(s, i);
    StageInfo info;
    info.kind = s.kind;
    info.name = s.name;
    info.cost_bits = s.cost_bits;
    info.cost_frac = s.cost_frac;
    if (s.cost_bits < 0 || s.cost_bits > 1024) fail(at + ": cost_bits must be in [0, 1024]");
    if (s.cost_frac < -1074 || s.cost_frac > 1074) fail(at + ": cost_frac out of range");
    std::vector<int64_t> bound;  // this stage's output bounds
    if (s.kind == "dense") {
      if (s.in_features != size) {
        fail(at + ": in_features " + std::to_string(s.in_features) + " does not match the " +
             std::to_string(size) + " values the previous stage produces");
      }
      if (s.out_features <= 0) fail(at + ": out_features must be positive");
      const auto n = static_cast<size_t>(s.in_features), m = static_cast<size_t>(s.out_features);
      if (s.weight.size() != n * m) {
        fail(at + ": the weight has " + std::to_string(s.weight.size()) + " values, expected " +
             std::to_string(n * m));
      }
      if (!s.bias.empty() && s.bias.size() != m) fail(at + ": the bias must have out_features values");
      if (s.frac.size() != m) fail(at + ": frac must have out_features values");
      check_frac(s.frac, at);
      int64_t max_b = 0, nonzero = 0;
      bool w16 = prev_type == 16, exact = true;
      bound.assign(m, 0);
      for (size_t o = 0; o < m; ++o) {
        // sum |w| max|x| + |b| in 128 bits (no overflow for any int64 input).
        __int128 b = 0;
        for (size_t k = 0; k < n; ++k) {
          const int64_t w = s.weight[o * n + k];
          if (w < -kMaxBound || w > kMaxBound) fail(at + ": weight code out of range");
          if (w < std::numeric_limits<int16_t>::min() || w > std::numeric_limits<int16_t>::max()) w16 = false;
          nonzero += w != 0;
          if (b < kMaxBound) b += static_cast<__int128>(w < 0 ? -w : w) * prev_bound[k];
        }
        if (!s.bias.empty()) {
          const int64_t bb = s.bias[o];
          if (bb < -kMaxBound || bb > kMaxBound) fail(at + ": bias code out of range");
          b += bb < 0 ? -bb : bb;
        }
        if (b >= kMaxBound) {
          fail(at + ": the accumulator of output " + std::to_string(o) +
               " can exceed 2^62 (weights and inputs too wide for 64-bit integers)");
        }
        bound[o] = static_cast<int64_t>(b);
        max_b = std::max(max_b, bound[o]);
        if (b >= (int64_t(1) << 24)) exact = false;
      }
      const bool narrow = w16 && max_b <= std::numeric_limits<int32_t>::max();
      dense_kind_[i] = narrow ? 0 : 1;
      out_type_[i] = max_b <= std::numeric_limits<int32_t>::max() ? 32 : 64;
      const double zeros = 1.0 - static_cast<double>(nonzero) / static_cast<double>(n * m);
      sparse_[i] = zeros >= options_.sparse_min_zero_fraction && n <= size_t(std::numeric_limits<int32_t>::max());
      if (narrow) {
        w16_[i].assign(s.weight.begin(), s.weight.end());
        b32_[i].assign(m, 0);
        for (size_t o = 0; o < s.bias.size(); ++o) b32_[i][o] = static_cast<int32_t>(s.bias[o]);
        // the GEMM's packing: blocks of 8 outputs by pairs of inputs
        const size_t np = (n + 1) / 2, nb = (m + 7) / 8;
        wpack_[i].assign(nb * np * 16, 0);
        for (size_t o = 0; o < m; ++o) {
          for (size_t k = 0; k < n; ++k) {
            wpack_[i][((o / 8) * np + k / 2) * 16 + 2 * (o % 8) + k % 2] = static_cast<int16_t>(s.weight[o * n + k]);
          }
        }
      }
      if (sparse_[i]) {
        // CSR: per row the nonzero weights and their columns.
        row_ptr_[i].assign(1, 0);
        std::vector<int16_t> v16;
        for (size_t o = 0; o < m; ++o) {
          for (size_t k = 0; k < n; ++k) {
            const int64_t w = s.weight[o * n + k];
            if (w == 0) continue;
            col_[i].push_back(static_cast<int32_t>(k));
            if (narrow) {
              v16.push_back(static_cast<int16_t>(w));
            } else {
              wsp_[i].push_back(w);
            }
          }
          row_ptr_[i].push_back(static_cast<int32_t>(col_[i].size()));
        }
        if (narrow) w16_[i] = std::move(v16);
      }
      info.max_abs = max_b;
      info.float32_exact = exact;
      info.storage = storage_name(out_type_[i]);
      info.kernel = sparse_[i] ? "sparse" : "dense";
      info.nonzero_weights = nonzero;
      size = s.out_features;
    } else if (s.kind == "conv2d") {
      const ConvGeometry& g = s.conv;
      auto positive = [&](int64_t v, const char* what) {
        if (v <= 0 || v > (int64_t(1) << 24)) fail(at + ": " + what + " must be in [1, 2^24], got " + std::to_string(v));
      };
      positive(g.in_channels, "in_channels");
      positive(g.in_h, "in_h");
      positive(g.in_w, "in_w");
      positive(g.out_channels, "out_channels");
      positive(g.kernel_h, "kernel_h");
      positive(g.kernel_w, "kernel_w");
      positive(g.stride_h, "stride_h");
      positive(g.stride_w, "stride_w");
      positive(g.dilation_h, "dilation_h");
      positive(g.dilation_w, "dilation_w");
      positive(g.groups, "groups");
      auto pad_ok = [](int64_t v) { return v >= 0 && v <= (int64_t(1) << 24); };
      if (!pad_ok(g.pad_h) || !pad_ok(g.pad_w) || !(g.pad_h_end == -1 || pad_ok(g.pad_h_end)) ||
          !(g.pad_w_end == -1 || pad_ok(g.pad_w_end))) {
        fail(at + ": padding must be >= 0 (pad_h_end/pad_w_end: -1, or >= 0)");
      }
      if (g.in_channels % g.groups != 0 || g.out_channels % g.groups != 0) {
        fail(at + ": groups must divide in_channels and out_channels");
      }
      if (g.out_h() <= 0 || g.out_w() <= 0) fail(at + ": the kernel is larger than the padded input");
      if (g.in_channels * g.in_h * g.in_w != size || s.in_features != size) {
        fail(at + ": the input (" + std::to_string(g.in_channels) + ", " + std::to_string(g.in_h) + ", " +
             std::to_string(g.in_w) + ") does not match the " + std::to_string(size) +
             " values the previous stage produces");
      }
      const int64_t oc = g.out_channels, icg = g.in_channels / g.groups, ocg = oc / g.groups;
      const int64_t taps = g.kernel_h * g.kernel_w, per = icg * taps, hw = g.in_h * g.in_w;
      const int64_t ohw = g.out_h() * g.out_w(), out_n = oc * ohw;
      if (s.out_features != out_n) fail(at + ": out_features must be out_channels * out_h * out_w");
      if (static_cast<int64_t>(s.weight.size()) != oc * per) {
        fail(at + ": the weight has " + std::to_string(s.weight.size()) + " values, expected " +
             std::to_string(oc * per));
      }
      if (!s.bias.empty() && static_cast<int64_t>(s.bias.size()) != oc) {
        fail(at + ": the bias must have out_channels values");
      }
      if (static_cast<int64_t>(s.frac.size()) != out_n) fail(at + ": frac must have one value per output");
      check_frac(s.frac, at);
      // the input's bound per channel
      std::vector<int64_t> cb(static_cast<size_t>(g.in_channels), 0);
      for (int64_t c = 0; c < g.in_channels; ++c) {
        for (int64_t k = 0; k < hw; ++k) cb[c] = std::max(cb[c], prev_bound[static_cast<size_t>(c * hw + k)]);
      }
      int64_t max_b = 0;
      bool exact = true;
      bound.assign(static_cast<size_t>(out_n), 0);
      for (int64_t o = 0; o < oc; ++o) {
        const int64_t c0 = (o / ocg) * icg;
        __int128 b = 0;
        for (int64_t k = 0; k < per; ++k) {
          const int64_t w = s.weight[static_cast<size_t>(o * per + k)];
          if (w < -kMaxBound || w > kMaxBound) fail(at + ": weight code out of range");
          if (b < kMaxBound) b += static_cast<__int128>(w < 0 ? -w : w) * cb[static_cast<size_t>(c0 + k / taps)];
        }
        if (!s.bias.empty()) {
          const int64_t bb = s.bias[static_cast<size_t>(o)];
          if (bb < -kMaxBound || bb > kMaxBound) fail(at + ": bias code out of range");
          b += bb < 0 ? -bb : bb;
        }
        if (b >= kMaxBound) {
          fail(at + ": the accumulator of output channel " + std::to_string(o) + " can exceed 2^62");
        }
        std::fill(bound.begin() + o * ohw, bound.begin() + (o + 1) * ohw, static_cast<int64_t>(b));
        max_b = std::max(max_b, static_cast<int64_t>(b));
        if (b >= (int64_t(1) << 24)) exact = false;
      }
      dense_kind_[i] = 2;
      out_type_[i] = max_b <= std::numeric_limits<int32_t>::max() ? 32 : 64;
      info.max_abs = max_b;
      info.float32_exact = exact;
      info.storage = storage_name(out_type_[i]);
      info.kernel = "dense";
      info.nonzero_weights = static_cast<int64_t>(std::count_if(s.weight.begin(), s.weight.end(), [](int64_t w) { return w != 0; }));
      size = out_n;
    } else if (s.kind == "affine") {
      const int64_t c = s.channels;
      if (c <= 0 || size % c != 0) {
        fail(at + ": channels (" + std::to_string(c) + ") must divide the " + std::to_string(size) +
             " values the previous stage produces");
      }
      if (s.in_features != size || s.out_features != size) fail(at + ": in_features and out_features must be the input size");
      if (static_cast<int64_t>(s.weight.size()) != c) fail(at + ": the weight must have one value per channel");
      if (!s.bias.empty() && static_cast<int64_t>(s.bias.size()) != c) fail(at + ": the bias must have one value per channel");
      if (static_cast<int64_t>(s.frac.size()) != size) fail(at + ": frac must have one value per output");
      check_frac(s.frac, at);
      int64_t max_b = 0;
      bool exact = true;
      const int64_t per = size / c;
      bound.assign(static_cast<size_t>(size), 0);
      for (int64_t o = 0; o < c; ++o) {
        const int64_t w = s.weight[static_cast<size_t>(o)], b = s.bias.empty() ? 0 : s.bias[static_cast<size_t>(o)];
        if (w < -kMaxBound || w > kMaxBound || b < -kMaxBound || b > kMaxBound) fail(at + ": code out of range");
        for (int64_t k = o * per; k < (o + 1) * per; ++k) {
          const __int128 bb = static_cast<__int128>(w < 0 ? -w : w) * prev_bound[static_cast<size_t>(k)] + (b < 0 ? -b : b);
          if (bb >= kMaxBound) fail(at + ": the output of channel " + std::to_string(o) + " can exceed 2^62");
          bound[static_cast<size_t>(k)] = static_cast<int64_t>(bb);
          max_b = std::max(max_b, static_cast<int64_t>(bb));
          if (bb >= (int64_t(1) << 24)) exact = false;
        }
      }
      dense_kind_[i] = 3;
      out_type_[i] = max_b <= std::numeric_limits<int32_t>::max() ? 32 : 64;
      info.max_abs = max_b;
      info.float32_exact = exact;
      info.storage = storage_name(out_type_[i]);
    } else if (s.kind == "gather") {
      if (s.in_features != size) fail(at + ": in_features must be the input size");
      if (s.out_features <= 0 || static_cast<int64_t>(s.index.size()) != s.out_features) {
        fail(at + ": index must have out_features (> 0) values");
      }
      if (static_cast<int64_t>(s.frac.size()) != s.out_features) fail(at + ": frac must have one value per output");
      check_frac(s.frac, at);
      bound.assign(static_cast<size_t>(s.out_features), 0);
      for (size_t k = 0; k < s.index.size(); ++k) {
        const int64_t j = s.index[k];
        if (j < -1 || j >= size) fail(at + ": index " + std::to_string(j) + " at " + std::to_string(k) + " is out of [-1, " + std::to_string(size) + ")");
        if (j >= 0) {
          if (s.frac[k] != prev_frac[static_cast<size_t>(j)]) fail(at + ": frac of output " + std::to_string(k) + " differs from its source's");
          bound[k] = prev_bound[static_cast<size_t>(j)];
        }
      }
      dense_kind_[i] = 4;
      out_type_[i] = prev_type;
      info.max_abs = *std::max_element(bound.begin(), bound.end());
      info.storage = storage_name(out_type_[i]);
      size = s.out_features;
    } else if (s.kind == "recurrent") {
      bool exact = true;
      bound = analyse_recurrent(s, prev_bound, at, &exact);
      dense_kind_[i] = 5;
      out_type_[i] = 64;
      info.max_abs = *std::max_element(bound.begin(), bound.end());
      info.float32_exact = exact;
      info.storage = storage_name(64);
      info.nonzero_weights = 0;
      for (const RecurrentDirection& r : s.recurrent.directions) {
        for (const auto* w : {&r.w_ih, &r.w_hh, &r.w_hn}) {
          info.nonzero_weights += std::count_if(w->begin(), w->end(), [](int64_t v) { return v != 0; });
        }
      }
      size = s.out_features;
    } else if (s.kind == "requantize") {
      const Requantizer& r = s.requantizer;
      const auto n = static_cast<size_t>(size);
      if (s.frac.size() != n) fail(at + ": frac must have one value per channel");
      if (r.kind != "fixed_elem" &&
          std::any_of(s.frac.begin(), s.frac.end(), [&](int64_t f) { return f != s.frac[0]; })) {
        fail(at + ": a requantization has one frac for every channel");
      }
      check_frac(s.frac, at);
      int64_t rlo = 0, rhi = 0;
      check_requantizer(r, n, prev_bound, at, &rlo, &rhi);
      out_type_[i] = storage_for(rlo, rhi);
      op_[i] = op_code(r.kind);
      if (op_[i] == kFixed && !r.has_slope && prev_type == 32 && out_type_[i] == 16 && n > 0 &&
          r.shift[0] >= 1 && r.shift[0] <= 30 &&
          std::all_of(r.shift.begin(), r.shift.end(), [&](int64_t v) { return v == r.shift[0]; })) {
        uniform_shift_[i] = static_cast<int>(r.shift[0]);
      }
      info.max_abs = abs_max(rlo, rhi);
      info.storage = storage_name(out_type_[i]);
      bound.assign(n, info.max_abs);
    } else {
      fail(at + ": unknown stage kind (expected \"dense\", \"conv2d\", \"affine\", \"gather\", \"recurrent\" or \"requantize\")");
    }
    info.bits = bits_for(info.max_abs);
    if (s.cost_bits > 0 && (s.kind == "dense" || s.kind == "conv2d")) {
      // the engine's bound per output at the cost model's binary point
      // (-1: a value has fraction bits below the cost model's binary point, which its type lacks)
      int64_t need = 1;
      for (size_t o = 0; o < bound.size(); ++o) {
        if (bound[o] == 0) continue;
        if (s.frac[o] > s.cost_frac) {
          need = -1;
          break;
        }
        need = std::max(need, bits_for(bound[o]) + s.cost_frac - s.frac[o]);
      }
      info.bits_at_cost_frac = need;
    }
    sizes.push_back(size);
    prev_type = out_type_[i];
    prev_bound = std::move(bound);
    prev_frac = s.frac;
    info_.push_back(info);
  }
  output_size_ = size;
  if (!p.output_shape.empty()) {
    int64_t n = 1;
    for (int64_t d : p.output_shape) {
      if (d <= 0) fail("output_shape: dimensions must be positive");
      n *= d;
    }
    if (n != size) fail("output_shape does not hold the " + std::to_string(size) + " outputs");
  }
  output_frac_ = prev_frac;
  out_scale_.clear();
  for (int64_t f : output_frac_) out_scale_.push_back(std::ldexp(1.0, static_cast<int>(-f)));
  // Scratch layout: the input codes, then every stage's output, each 64-byte aligned.
  auto align = [](size_t b) { return (b + 63) / 64 * 64; };
  in_offset_ = 0;
  size_t off = align(static_cast<size_t>(p.input_size) * (in_type_ / 8));
  offset_.assign(p.stages.size(), 0);
  for (size_t i = 0; i < p.stages.size(); ++i) {
    offset_[i] = off;
    off += align(static_cast<size_t>(sizes[i]) * (out_type_[i] / 8));
  }
  scratch_bytes_ = off + 64;
}

// ------------------------------------------------------------------------------------------------
// Kernels.

namespace {

template <typename T>
T* at_offset(unsigned char* base, size_t off) {
  return reinterpret_cast<T*>(base + off);
}

// int16 x int16 -> int32 dot products: GCC turns the inner loop into pmaddwd (SSE2) / vpmaddwd
// (AVX2, chosen at load time where the CPU has it).
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
__attribute__((target_clones("avx2", "default")))
#endif
void dense_narrow(const int16_t* __restrict x, const int16_t* __restrict w,
                  const int32_t* __restrict b, int32_t* __restrict y, int64_t n, int64_t m) {
  for (int64_t o = 0; o < m; ++o) {
    const int16_t* __restrict wr = w + o * n;
    int32_t acc = 0;
    for (int64_t k = 0; k < n; ++k) acc += static_cast<int32_t>(wr[k]) * static_cast<int32_t>(x[k]);
    y[o] = acc + b[o];
  }
}

// Four samples at once: each weight row is loaded once for the four dot products.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
__attribute__((target_clones("avx2", "default")))
#endif
void dense_narrow4(const int16_t* __restrict x0, const int16_t* __restrict x1,
                   const int16_t* __restrict x2, const int16_t* __restrict x3,
                   const int16_t* __restrict w, const int32_t* __restrict b, int32_t* __restrict y0,
                   int32_t* __restrict y1, int32_t* __restrict y2, int32_t* __restrict y3, int64_t n,
                   int64_t m) {
  for (int64_t o = 0; o < m; ++o) {
    const int16_t* __restrict wr = w + o * n;
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (int64_t k = 0; k < n; ++k) {
      const int32_t wk = wr[k];
      a0 += wk * static_cast<int32_t>(x0[k]);
      a1 += wk * static_cast<int32_t>(x1[k]);
      a2 += wk * static_cast<int32_t>(x2[k]);
      a3 += wk * static_cast<int32_t>(x3[k]);
    }
    y0[o] = a0 + b[o];
    y1[o] = a1 + b[o];
    y2[o] = a2 + b[o];
    y3[o] = a3 + b[o];
  }
}

// The batched kernel: `count` (<= kGemmBlock) samples through an int16 dense layer whose weights
// are packed per block of 8 outputs and pair of inputs (pack[(ob np + p) 16 + 2 j + t] =
// w[8 ob + j][2 p + t], zero beyond the matrix), so that one multiply-add of the pair (x[2p],
// x[2p+1]), broadcast, with the block's 16 weights gives 8 outputs' partial sums (pmaddwd), each
// weight block loaded once for every sample. A padded input's extra value meets a zero weight.
constexpr int64_t kGemmBlock = 8;

template <int kCount>
void gemm_narrow_generic(const int16_t* const* x, const int16_t* pack, const int32_t* bias,
                         int32_t* const* y, int64_t n, int64_t m) {
  const int64_t np = (n + 1) / 2, nb = (m + 7) / 8;
  for (int64_t ob = 0; ob < nb; ++ob) {
    int32_t acc[kCount][8] = {};
    const int16_t* wp = pack + ob * np * 16;
    for (int64_t p = 0; p < np; ++p, wp += 16) {
      for (int b = 0; b < kCount; ++b) {
        const int32_t x0 = x[b][2 * p], x1 = 2 * p + 1 < n ? x[b][2 * p + 1] : 0;
        for (int j = 0; j < 8; ++j) acc[b][j] += wp[2 * j] * x0 + wp[2 * j + 1] * x1;
      }
    }
    const int64_t width = std::min<int64_t>(8, m - ob * 8);
    for (int b = 0; b < kCount; ++b) {
      for (int64_t j = 0; j < width; ++j) y[b][ob * 8 + j] = acc[b][j] + bias[ob * 8 + j];
    }
  }
}

#ifdef HETEROQ_DEPLOY_AVX2
template <int kCount>
__attribute__((target("avx2"))) void gemm_narrow_avx2(const int16_t* const* x, const int16_t* pack,
                                                      const int32_t* bias, int32_t* const* y, int64_t n,
                                                      int64_t m) {
  const int64_t np = (n + 1) / 2, nb = (m + 7) / 8;
  for (int64_t ob = 0; ob < nb; ++ob) {
    __m256i acc[kCount];
    for (int b = 0; b < kCount; ++b) acc[b] = _mm256_setzero_si256();
    const int16_t* wp = pack + ob * np * 16;
    for (int64_t p = 0; p < np; ++p, wp += 16) {
      const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp));
      for (int b = 0; b < kCount; ++b) {
        int32_t pair;
        std::memcpy(&pair, x[b] + 2 * p, sizeof pair);  // x[2p+1] past n meets a zero weight
        acc[b] = _mm256_add_epi32(acc[b], _mm256_madd_epi16(_mm256_set1_epi32(pair), w));
      }
    }
    const int64_t width = std::min<int64_t>(8, m - ob * 8);
    alignas(32) int32_t out[8];
    for (int b = 0; b < kCount; ++b) {
      _mm256_store_si256(reinterpret_cast<__m256i*>(out), acc[b]);
      for (int64_t j = 0; j < width; ++j) y[b][ob * 8 + j] = out[j] + bias[ob * 8 + j];
    }
  }
}
#endif

template <int kCount>
void gemm_narrow_n(bool avx2, const int16_t* const* x, const int16_t* pack, const int32_t* bias,
                   int32_t* const* y, int64_t n, int64_t m) {
#ifdef HETEROQ_DEPLOY_AVX2
  if (avx2) return gemm_narrow_avx2<kCount>(x, pack, bias, y, n, m);
#endif
  gemm_narrow_generic<kCount>(x, pack, bias, y, n, m);
}

void gemm_narrow(bool avx2, int64_t count, const int16_t* const* x, const int16_t* pack,
                 const int32_t* bias, int32_t* const* y, int64_t n, int64_t m) {
  switch (count) {
    case 1: return gemm_narrow_n<1>(avx2, x, pack, bias, y, n, m);
    case 2: return gemm_narrow_n<2>(avx2, x, pack, bias, y, n, m);
    case 3: return gemm_narrow_n<3>(avx2, x, pack, bias, y, n, m);
    case 4: return gemm_narrow_n<4>(avx2, x, pack, bias, y, n, m);
    case 5: return gemm_narrow_n<5>(avx2, x, pack, bias, y, n, m);
    case 6: return gemm_narrow_n<6>(avx2, x, pack, bias, y, n, m);
    case 7: return gemm_narrow_n<7>(avx2, x, pack, bias, y, n, m);
    default: return gemm_narrow_n<8>(avx2, x, pack, bias, y, n, m);
  }
}

// A pruned layer: only the nonzero weights of each row (CSR: row_ptr, col, values).
template <typename TX, typename TW, typename TA, typename TY>
void dense_sparse(const TX* __restrict x, const int32_t* __restrict row_ptr, const int32_t* __restrict col,
                  const TW* __restrict w, const Stage& s, TY* __restrict y) {
  for (int64_t o = 0; o < s.out_features; ++o) {
    TA acc = s.bias.empty() ? 0 : static_cast<TA>(s.bias[static_cast<size_t>(o)]);
    for (int32_t k = row_ptr[o]; k < row_ptr[o + 1]; ++k) acc += static_cast<TA>(w[k]) * static_cast<TA>(x[col[k]]);
    y[o] = static_cast<TY>(acc);
  }
}

// Four samples: each nonzero weight and its column are loaded once for the four.
void dense_sparse4(const int16_t* __restrict x0, const int16_t* __restrict x1, const int16_t* __restrict x2,
                   const int16_t* __restrict x3, const int32_t* __restrict row_ptr,
                   const int32_t* __restrict col, const int16_t* __restrict w, const int32_t* __restrict b,
                   int32_t* __restrict y0, int32_t* __restrict y1, int32_t* __restrict y2,
                   int32_t* __restrict y3, int64_t m) {
  for (int64_t o = 0; o < m; ++o) {
    int32_t a0 = b[o], a1 = b[o], a2 = b[o], a3 = b[o];
    for (int32_t k = row_ptr[o]; k < row_ptr[o + 1]; ++k) {
      const int32_t wk = w[k], c = col[k];
      a0 += wk * x0[c];
      a1 += wk * x1[c];
      a2 += wk * x2[c];
      a3 += wk * x3[c];
    }
    y0[o] = a0;
    y1[o] = a1;
    y2[o] = a2;
    y3[o] = a3;
  }
}

// The general case in 64-bit integers (Eigen's matrix-vector product); the bound analysis
// guarantees that no partial sum exceeds 2^62.
template <typename TX, typename TY>
void dense_wide(const TX* x, const Stage& s, TY* y) {
  using Mat = Eigen::Matrix<int64_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Vec = Eigen::Matrix<int64_t, Eigen::Dynamic, 1>;
  Eigen::Map<const Mat> w(s.weight.data(), s.out_features, s.in_features);
  Eigen::Map<const Eigen::Matrix<TX, Eigen::Dynamic, 1>> xv(x, s.in_features);
  Vec acc = w * xv.template cast<int64_t>();
  for (int64_t o = 0; o < s.out_features; ++o) {
    y[o] = static_cast<TY>(acc[o] + (s.bias.empty() ? 0 : s.bias[static_cast<size_t>(o)]));
  }
}

// A 2-D convolution in 64-bit accumulators (zero padding: taps outside the input are skipped).
template <typename TX, typename TY>
void conv2d(const TX* x, const Stage& s, TY* y) {
  const ConvGeometry& g = s.conv;
  const int64_t oh = g.out_h(), ow = g.out_w(), icg = g.in_channels / g.groups,
                ocg = g.out_channels / g.groups, hw = g.in_h * g.in_w;
  const int64_t* w = s.weight.data();
  for (int64_t o = 0; o < g.out_channels; ++o) {
    const int64_t c0 = (o / ocg) * icg;
    const int64_t b = s.bias.empty() ? 0 : s.bias[static_cast<size_t>(o)];
    const int64_t* wo = w + o * icg * g.kernel_h * g.kernel_w;
    for (int64_t i = 0; i < oh; ++i) {
      for (int64_t j = 0; j < ow; ++j) {
        int64_t acc = b;
        for (int64_t c = 0; c < icg; ++c) {
          const TX* xc = x + (c0 + c) * hw;
          const int64_t* wc = wo + c * g.kernel_h * g.kernel_w;
          for (int64_t ky = 0; ky < g.kernel_h; ++ky) {
            const int64_t iy = i * g.stride_h - g.pad_h + ky * g.dilation_h;
            if (iy < 0 || iy >= g.in_h) continue;
            for (int64_t kx = 0; kx < g.kernel_w; ++kx) {
              const int64_t ix = j * g.stride_w - g.pad_w + kx * g.dilation_w;
              if (ix < 0 || ix >= g.in_w) continue;
              acc += wc[ky * g.kernel_w + kx] * static_cast<int64_t>(xc[iy * g.in_w + ix]);
            }
          }
        }
        y[(o * oh + i) * ow + j] = static_cast<TY>(acc);
      }
    }
  }
}

// y = x * weight[c] + bias[c] per channel (64-bit).
template <typename TX, typename TY>
void affine(const TX* x, const Stage& s, TY* y, int64_t n) {
  const int64_t per = n / s.channels;
  for (int64_t c = 0; c < s.channels; ++c) {
    const int64_t w = s.weight[static_cast<size_t>(c)], b = s.bias.empty() ? 0 : s.bias[static_cast<size_t>(c)];
    for (int64_t k = c * per; k < (c + 1) * per; ++k) y[k] = static_cast<TY>(static_cast<int64_t>(x[k]) * w + b);
  }
}

template <typename TX>
void affine_to(const TX* x, const Stage& s, unsigned char* out, int type, int64_t n) {
  if (type == 32) {
    affine(x, s, reinterpret_cast<int32_t*>(out), n);
  } else {
    affine(x, s, reinterpret_cast<int64_t*>(out), n);
  }
}

template <typename TX>
void conv2d_to(const TX* x, const Stage& s, unsigned char* out, int type) {
  if (type == 32) {
    conv2d(x, s, reinterpret_cast<int32_t*>(out));
  } else {
    conv2d(x, s, reinterpret_cast<int64_t*>(out));
  }
}

// y[j] = index[j] < 0 ? 0 : x[index[j]] (padding by reflection, replication, wrapping).
template <typename T>
void gather(const T* x, const Stage& s, T* y) {
  const int64_t* idx = s.index.data();
  for (int64_t j = 0; j < s.out_features; ++j) y[j] = idx[j] < 0 ? T(0) : x[idx[j]];
}

// A step function per channel: the code after the last break <= a.
template <typename TA, typename TC>
void requantize_table(const TA* a, const Requantizer& r, TC* c, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const auto t = static_cast<size_t>(r.table[static_cast<size_t>(i)]);
    const std::vector<int64_t>& br = r.breaks[t];
    const auto j = std::upper_bound(br.begin(), br.end(), static_cast<int64_t>(a[i])) - br.begin();
    c[i] = static_cast<TC>(r.codes[t][static_cast<size_t>(j)]);
  }
}

// A fixed quantizer per value on integers: round by the mode (0 RND_CONV, 1 RND, 2 TRN) at the
// value's shift, then saturate or wrap into [lo, hi] (lo = hi = 0: 0).
inline int64_t fixed_elem_code(int64_t a, int64_t s, int mode, bool wrap, int64_t lo, int64_t hi) {
  if (lo == 0 && hi == 0) return 0;
  int64_t c = 0;
  if (s <= 0 || mode == 0) {
    c = rne_shift(a, s);
  } else if (mode == 2) {
    c = a >> s;
  } else {
    c = (a >> s) + ((a & ((int64_t(1) << s) - 1)) >= (int64_t(1) << (s - 1)) ? 1 : 0);
  }
  if (!wrap) return std::clamp(c, lo, hi);
  const auto span = static_cast<uint64_t>(hi - lo) + 1;  // a power of two
  return lo + static_cast<int64_t>(static_cast<uint64_t>(c - lo) & (span - 1));
}

template <typename TA, typename TC>
void requantize(const TA* a, const Requantizer& r, int op, TC* c, int64_t n) {
  if (op == kFixedElem) {
    const int mode = round_code(r.round_mode);
    for (int64_t i = 0; i < n; ++i) {
      const auto j = static_cast<size_t>(i);
      c[i] = static_cast<TC>(fixed_elem_code(a[i], r.shift[j], mode, r.wrap, r.lo_elem[j], r.hi_elem[j]));
    }
  } else if (op == kFixed) {
    const int64_t* sh = r.shift.data();
    for (int64_t i = 0; i < n; ++i) {
      int64_t v = std::clamp(rne_shift(a[i], sh[i]), r.lo, r.hi);
      if (r.has_slope) v += std::clamp(rne_shift(a[i], r.slope_shift[static_cast<size_t>(i)]), r.neg_lo, int64_t(0));
      c[i] = static_cast<TC>(v);
    }
  } else if (op == kSign) {
    for (int64_t i = 0; i < n; ++i) c[i] = static_cast<TC>(a[i] < 0 ? -1 : 1);
  } else if (op == kBinary) {
    for (int64_t i = 0; i < n; ++i) c[i] = static_cast<TC>(a[i] < 0 ? r.low : 1);
  } else if (op == kTable) {
    requantize_table(a, r, c, n);
  } else {  // ternary
    for (int64_t i = 0; i < n; ++i) {
      const int64_t v = a[i], t = r.threshold[static_cast<size_t>(i)];
      c[i] = static_cast<TC>((v < 0 ? -v : v) >= t ? (v > 0) - (v < 0) : 0);
    }
  }
}

// The common case in 32-bit lanes (vectorizes): int32 accumulators, one shift s in [1, 30] for
// every channel, int16 codes, no slope. r = a mod 2^s; round half to even as rne_shift.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
__attribute__((target_clones("avx2", "default")))
#endif
void requantize_uniform(const int32_t* __restrict a, int32_t s, int32_t lo, int32_t hi,
                        int16_t* __restrict c, int64_t n) {
  const int32_t half = int32_t(1) << (s - 1), mask = (int32_t(1) << s) - 1;
  for (int64_t i = 0; i < n; ++i) {
    const int32_t v = a[i];
    int32_t q = v >> s;
    const int32_t r = v & mask;
    q += (r + (q & 1)) > half ? 1 : 0;
    q = q < lo ? lo : q;
    q = q > hi ? hi : q;
    c[i] = static_cast<int16_t>(q);
  }
}

template <typename TA>
void requantize_to(const TA* a, const Requantizer& r, int op, unsigned char* out, int type, int64_t n) {
  if (type == 16) {
    requantize(a, r, op, reinterpret_cast<int16_t*>(out), n);
  } else if (type == 32) {
    requantize(a, r, op, reinterpret_cast<int32_t*>(out), n);
  } else {
    requantize(a, r, op, reinterpret_cast<int64_t*>(out), n);
  }
}

void requantize_any(const unsigned char* in, int in_type, const Requantizer& r, int op,
                    unsigned char* out, int type, int64_t n) {
  if (in_type == 16) {
    requantize_to(reinterpret_cast<const int16_t*>(in), r, op, out, type, n);
  } else if (in_type == 32) {
    requantize_to(reinterpret_cast<const int32_t*>(in), r, op, out, type, n);
  } else {
    requantize_to(reinterpret_cast<const int64_t*>(in), r, op, out, type, n);
  }
}

template <typename TX>
void dense_wide_to(const TX* x, const Stage& s, unsigned char* out, int type) {
  if (type == 32) {
    dense_wide(x, s, reinterpret_cast<int32_t*>(out));
  } else {
    dense_wide(x, s, reinterpret_cast<int64_t*>(out));
  }
}


// One activation slot of a recurrent stage on n int64 values.
void rnn_activation(const RecurrentActivation& a, const int64_t* in, int64_t* out, int64_t n) {
  if (a.kind == "requantize") {
    requantize(in, a.requantizer, op_code(a.requantizer.kind), out, n);
  } else if (a.kind == "hard_sigmoid") {
    const int64_t one = int64_t(1) << a.in_frac;
    for (int64_t j = 0; j < n; ++j) out[j] = std::clamp(in[j] + one, int64_t(0), 2 * one);
  } else if (a.kind == "relu") {
    for (int64_t j = 0; j < n; ++j) out[j] = std::max(in[j], int64_t(0));
  } else {
    std::copy(in, in + n, out);
  }
}

// y[o] = bias[o] + sum_k w[o][k] x[k] for `rows` rows of `cols` (64-bit; the analysis bounds it).
void matvec(const std::vector<int64_t>& w, const std::vector<int64_t>& bias, const int64_t* x, int64_t rows,
            int64_t cols, int64_t* y) {
  for (int64_t o = 0; o < rows; ++o) {
    int64_t acc = bias.empty() ? 0 : bias[static_cast<size_t>(o)];
    const int64_t* wr = w.data() + o * cols;
    for (int64_t k = 0; k < cols; ++k) acc += wr[k] * x[k];
    y[o] = acc;
  }
}

// A "recurrent" stage on one sample: x (steps, features) -> y (see Recurrent).
template <typename TX>
void recurrent(const TX* xin, const Stage& st, int64_t* y) {
  const Recurrent& R = st.recurrent;
  const int64_t L = R.steps, F = R.features, H = R.hidden, G = gates_of(R.cell);
  const auto D = static_cast<int64_t>(R.directions.size());
  const bool lstm = R.cell == "lstm", gru = R.cell == "gru";
  thread_local std::vector<int64_t> buf;
  const auto need = static_cast<size_t>(L * F + 3 * G * H + 10 * H);
  if (buf.size() < need) buf.resize(need);
  int64_t* x = buf.data();
  int64_t* X = x + L * F;  // the step's input projection (as the generated header: per step)
  int64_t* Rv = X + G * H;
  int64_t* A = Rv + G * H;
  int64_t* h = A + G * H;
  int64_t* c = h + H;
  int64_t* sv = c + H;
  int64_t* cs = sv + H;
  int64_t* t1 = cs + H;
  int64_t* t2 = t1 + H;
  int64_t* t3 = t2 + H;
  int64_t* t4 = t3 + H;
  int64_t* rs = t4 + H;
  int64_t* hn = rs + H;
  for (int64_t k = 0; k < L * F; ++k) x[k] = static_cast<int64_t>(xin[k]);
  for (int64_t d = 0; d < D; ++d) {
    const RecurrentDirection& r = R.directions[static_cast<size_t>(d)];
    std::fill(h, h + H, 0);
    std::fill(c, c + H, 0);
    const int64_t rows_hh = gru && !R.reset_after ? 2 * H : G * H;
    const int64_t ax = r.a_frac - r.x_frac, ah = r.a_frac - r.hh_frac;
    for (int64_t step = 0; step < L; ++step) {
      const int64_t t = d == 1 ? L - 1 - step : step;
      matvec(r.w_ih, r.b_ih, x + t * F, G * H, F, X);
      const int64_t* Xt = X;
      rnn_activation(r.state_h, h, sv, H);
      if (lstm) rnn_activation(r.state_c, c, cs, H);
      matvec(r.w_hh, r.b_hh, sv, rows_hh, H, Rv);
      const int64_t gate_rows = gru ? 2 * H : G * H;
      for (int64_t j = 0; j < gate_rows; ++j) A[j] = up(Xt[j], ax) + up(Rv[j], ah);
      if (R.cell == "rnn") {
        rnn_activation(r.act, A, h, H);
      } else if (lstm) {
        rnn_activation(r.ract, A, t1, H);          // i
        rnn_activation(r.ract, A + H, t2, H);      // f
        rnn_activation(r.act, A + 2 * H, t3, H);   // g
        rnn_activation(r.ract, A + 3 * H, t4, H);  // o
        const int64_t sf = r.c_frac - r.ract.out_frac - r.state_c.out_frac;
        const int64_t sg = r.c_frac - r.ract.out_frac - r.act.out_frac;
        for (int64_t j = 0; j < H; ++j) c[j] = up(t2[j] * cs[j], sf) + up(t1[j] * t3[j], sg);
        rnn_activation(r.act_c, c, rs, H);
        for (int64_t j = 0; j < H; ++j) h[j] = t4[j] * rs[j];
      } else {
        rnn_activation(r.ract, A, t1, H);      // r
        rnn_activation(r.ract, A + H, t2, H);  // z
        const int64_t xn = r.n_frac - r.x_frac;
        if (R.reset_after) {
          const int64_t k = r.n_frac - r.ract.out_frac - r.hh_frac;
          for (int64_t j = 0; j < H; ++j) A[j] = up(Xt[2 * H + j], xn) + up(t1[j] * Rv[2 * H + j], k);
        } else {
          for (int64_t j = 0; j < H; ++j) rs[j] = t1[j] * sv[j];
          matvec(r.w_hn, r.b_hn, rs, H, H, hn);
          const int64_t k = r.n_frac - r.hn_frac;
          for (int64_t j = 0; j < H; ++j) A[j] = up(Xt[2 * H + j], xn) + up(hn[j], k);
        }
        rnn_activation(r.act, A, t3, H);  // n
        const int64_t one = int64_t(1) << r.ract.out_frac;
        const int64_t kn = r.h_frac - r.ract.out_frac - r.act.out_frac;
        const int64_t ks = r.h_frac - r.ract.out_frac - r.state_h.out_frac;
        for (int64_t j = 0; j < H; ++j) h[j] = up((one - t2[j]) * t3[j], kn) + up(t2[j] * sv[j], ks);
      }
      if (R.return_sequences) std::copy(h, h + H, y + (t * D + d) * H);
    }
    if (!R.return_sequences) std::copy(h, h + H, y + d * H);
  }
}

// The input quantizer: the float32 element functions of the QAT kernels, giving the code.
template <typename TC>
void quantize_input(const InputQuantizer& q, int op, const float* scale_elem, const float* x, TC* c,
                    int64_t n, int64_t sample) {
  for (int64_t i = 0; i < n; ++i) {
    if (std::isnan(x[i])) {
      throw InvalidArgument("heteroq::deploy::Engine: the input is NaN at sample " +
                            std::to_string(sample) + ", element " + std::to_string(i));
    }
  }
  if (op == kFixedElem) {
    // the float32 operations of heteroq::fixed_quantize (ops/fixed_ops.cpp), in its order
    const int mode = round_code(q.round_mode);
    for (int64_t i = 0; i < n; ++i) {
      const auto j = static_cast<size_t>(i);
      const int64_t lo = q.lo_elem[j], hi = q.hi_elem[j];
      if (lo == 0 && hi == 0) {
        c[i] = 0;
        continue;
      }
      const float v = x[i] * scale_elem[i];
      float r = std::floor(v);
      if (mode == 0) {
        r = hd::round_half_even(v);
      } else if (mode == 1) {
        r = r + ((v - r) >= 0.5f ? 1.0f : 0.0f);
      }
      float code = 0;
      if (q.wrap) {
        const auto nn = static_cast<float>(static_cast<double>(hi - lo) + 1.0);
        const float off = -static_cast<float>(lo);
        code = r - nn * std::floor((r + off) / nn);
        if (!std::isfinite(code)) {
          throw InvalidArgument("heteroq::deploy::Engine: the input is infinite at sample " +
                                std::to_string(sample) + ", element " + std::to_string(i) +
                                " (a wrapping fixed quantizer gives NaN there)");
        }
      } else {
        code = std::min(std::max(r, static_cast<float>(lo)), static_cast<float>(hi));
      }
      c[i] = static_cast<TC>(code);
    }
  } else if (op == kFixed) {
    const float s = static_cast<float>(q.in_scale), lo = static_cast<float>(q.lo),
                hi = static_cast<float>(q.hi), slope = static_cast<float>(q.slope),
                neg_lo = static_cast<float>(q.neg_lo);
    const bool with_slope = q.slope != 0.0;
    for (int64_t i = 0; i < n; ++i) {
      const float p = x[i] * s;
      float code = hd::clamp_keep_nan(hd::round_half_even(p), lo, hi);
      if (with_slope) code = code + hd::clamp_keep_nan(hd::round_half_even(p * slope), neg_lo, 0.0f);
      c[i] = static_cast<TC>(code);
    }
  } else if (op == kSign) {
    for (int64_t i = 0; i < n; ++i) c[i] = static_cast<TC>(hd::quantize_sign_element(x[i], 1.0f));
  } else if (op == kBinary) {
    const float low = static_cast<float>(q.low);
    for (int64_t i = 0; i < n; ++i) c[i] = static_cast<TC>(hd::binary_element(x[i], low, 1.0f));
  } else {
    for (int64_t i = 0; i < n; ++i) c[i] = static_cast<TC>(hd::ternary_element(x[i], q.threshold, 1.0f));
  }
}

}  // namespace

void Engine::run_stage(size_t i, const unsigned char* prev, int prev_type, int64_t size,
                       unsigned char* out) const {
  const Program& p = program_;
  const Stage& s = p.stages[i];
  if (op_[i] == kDense && dense_kind_[i] == 5) {
    auto* y = reinterpret_cast<int64_t*>(out);
    if (prev_type == 16) {
      recurrent(reinterpret_cast<const int16_t*>(prev), s, y);
    } else if (prev_type == 32) {
      recurrent(reinterpret_cast<const int32_t*>(prev), s, y);
    } else {
      recurrent(reinterpret_cast<const int64_t*>(prev), s, y);
    }
  } else if (op_[i] == kDense && dense_kind_[i] == 4) {
    if (prev_type == 16) {
      gather(reinterpret_cast<const int16_t*>(prev), s, reinterpret_cast<int16_t*>(out));
    } else if (prev_type == 32) {
      gather(reinterpret_cast<const int32_t*>(prev), s, reinterpret_cast<int32_t*>(out));
    } else {
      gather(reinterpret_cast<const int64_t*>(prev), s, reinterpret_cast<int64_t*>(out));
    }
  } else if (op_[i] == kDense && sparse_[i]) {
    const int32_t* rp = row_ptr_[i].data();
    const int32_t* cl = col_[i].data();
    if (dense_kind_[i] == 0) {
      dense_sparse<int16_t, int16_t, int32_t>(reinterpret_cast<const int16_t*>(prev), rp, cl, w16_[i].data(), s,
                                              reinterpret_cast<int32_t*>(out));
    } else {
      auto wide = [&](auto* x) {
        if (out_type_[i] == 32) {
          dense_sparse<std::remove_const_t<std::remove_pointer_t<decltype(x)>>, int64_t, int64_t>(
              x, rp, cl, wsp_[i].data(), s, reinterpret_cast<int32_t*>(out));
        } else {
          dense_sparse<std::remove_const_t<std::remove_pointer_t<decltype(x)>>, int64_t, int64_t>(
              x, rp, cl, wsp_[i].data(), s, reinterpret_cast<int64_t*>(out));
        }
      };
      if (prev_type == 16) {
        wide(reinterpret_cast<const int16_t*>(prev));
      } else if (prev_type == 32) {
        wide(reinterpret_cast<const int32_t*>(prev));
      } else {
        wide(reinterpret_cast<const int64_t*>(prev));
      }
    }
  } else if (op_[i] == kDense && dense_kind_[i] == 3) {
    if (prev_type == 16) {
      affine_to(reinterpret_cast<const int16_t*>(prev), s, out, out_type_[i], size);
    } else if (prev_type == 32) {
      affine_to(reinterpret_cast<const int32_t*>(prev), s, out, out_type_[i], size);
    } else {
      affine_to(reinterpret_cast<const int64_t*>(prev), s, out, out_type_[i], size);
    }
  } else if (op_[i] == kDense && dense_kind_[i] == 2) {
    if (prev_type == 16) {
      conv2d_to(reinterpret_cast<const int16_t*>(prev), s, out, out_type_[i]);
    } else if (prev_type == 32) {
      conv2d_to(reinterpret_cast<const int32_t*>(prev), s, out, out_type_[i]);
    } else {
      conv2d_to(reinterpret_cast<const int64_t*>(prev), s, out, out_type_[i]);
    }
  } else if (op_[i] == kDense) {
    if (dense_kind_[i] == 0) {
      dense_narrow(reinterpret_cast<const int16_t*>(prev), w16_[i].data(), b32_[i].data(),
                   reinterpret_cast<int32_t*>(out), s.in_features, s.out_features);
    } else if (prev_type == 16) {
      dense_wide_to(reinterpret_cast<const int16_t*>(prev), s, out, out_type_[i]);
    } else if (prev_type == 32) {
      dense_wide_to(reinterpret_cast<const int32_t*>(prev), s, out, out_type_[i]);
    } else {
      dense_wide_to(reinterpret_cast<const int64_t*>(prev), s, out, out_type_[i]);
    }
  } else if (uniform_shift_[i] > 0) {
    requantize_uniform(reinterpret_cast<const int32_t*>(prev), uniform_shift_[i],
                       static_cast<int32_t>(s.requantizer.lo), static_cast<int32_t>(s.requantizer.hi),
                       reinterpret_cast<int16_t*>(out), size);
  } else {
    requantize_any(prev, prev_type, s.requantizer, op_[i], out, out_type_[i], size);
  }
}

void Engine::run_block(const float* x, int64_t first, int64_t count, unsigned char* scratch,
                       bool gemm) const {
  const Program& p = program_;
  for (int64_t k = 0; k < count; ++k) {
    unsigned char* in = scratch + k * scratch_bytes_ + in_offset_;
    const float* xk = x + k * p.input_size;
    if (in_type_ == 16) {
      quantize_input(p.input, in_op_, in_scale_f_.data(), xk, reinterpret_cast<int16_t*>(in), p.input_size, first + k);
    } else if (in_type_ == 32) {
      quantize_input(p.input, in_op_, in_scale_f_.data(), xk, reinterpret_cast<int32_t*>(in), p.input_size, first + k);
    } else {
      quantize_input(p.input, in_op_, in_scale_f_.data(), xk, reinterpret_cast<int64_t*>(in), p.input_size, first + k);
    }
  }
  size_t prev_off = in_offset_;
  int prev_type = in_type_;
  int64_t size = p.input_size;
  for (size_t i = 0; i < p.stages.size(); ++i) {
    const Stage& s = p.stages[i];
    if (gemm && count > 1 && op_[i] == kDense && dense_kind_[i] == 0 && !sparse_[i]) {
      const int16_t* in[kGemmBlock];
      int32_t* out[kGemmBlock];
      for (int64_t k = 0; k < count; ++k) {
        in[k] = reinterpret_cast<const int16_t*>(scratch + k * scratch_bytes_ + prev_off);
        out[k] = reinterpret_cast<int32_t*>(scratch + k * scratch_bytes_ + offset_[i]);
      }
      gemm_narrow(avx2_, count, in, wpack_[i].data(), b32_[i].data(), out, s.in_features, s.out_features);
    } else if (count >= 4 && op_[i] == kDense && dense_kind_[i] == 0 && sparse_[i]) {
      // four samples at a time share each nonzero weight's loads
      const size_t st = scratch_bytes_;
      auto in = [&](int64_t k) { return reinterpret_cast<const int16_t*>(scratch + k * st + prev_off); };
      auto out = [&](int64_t k) { return reinterpret_cast<int32_t*>(scratch + k * st + offset_[i]); };
      int64_t k = 0;
      for (; k + 4 <= count; k += 4) {
        dense_sparse4(in(k), in(k + 1), in(k + 2), in(k + 3), row_ptr_[i].data(), col_[i].data(),
                      w16_[i].data(), b32_[i].data(), out(k), out(k + 1), out(k + 2), out(k + 3),
                      s.out_features);
      }
      for (; k < count; ++k) {
        run_stage(i, scratch + k * st + prev_off, prev_type, size, scratch + k * st + offset_[i]);
      }
    } else if (count == 4 && op_[i] == kDense && dense_kind_[i] == 0) {
      // four samples share each weight row's loads
      const size_t st = scratch_bytes_;
      auto in = [&](int64_t k) { return reinterpret_cast<const int16_t*>(scratch + k * st + prev_off); };
      auto out = [&](int64_t k) { return reinterpret_cast<int32_t*>(scratch + k * st + offset_[i]); };
      dense_narrow4(in(0), in(1), in(2), in(3), w16_[i].data(), b32_[i].data(), out(0), out(1), out(2),
                    out(3), s.in_features, s.out_features);
    } else {
      for (int64_t k = 0; k < count; ++k) {
        run_stage(i, scratch + k * scratch_bytes_ + prev_off, prev_type, size,
                  scratch + k * scratch_bytes_ + offset_[i]);
      }
    }
    if (op_[i] == kDense && dense_kind_[i] != 3) size = s.out_features;
    prev_off = offset_[i];
    prev_type = out_type_[i];
  }
}

namespace {
unsigned char* scratch_for(size_t bytes) {
  thread_local std::vector<int64_t> buffer;
  const size_t words = (bytes + 7) / 8 + 8;
  if (buffer.size() < words) buffer.resize(words);
  auto addr = reinterpret_cast<uintptr_t>(buffer.data());
  return reinterpret_cast<unsigned char*>((addr + 63) / 64 * 64);
}

}  // namespace

void Engine::run_codes(const float* input, int64_t batch, int64_t* output) const {
  run_codes_from(input, batch, output, 0, options_.gemm_min_batch > 0 && batch >= options_.gemm_min_batch);
}

void Engine::run_codes_from(const float* input, int64_t batch, int64_t* output, int64_t first,
                            bool gemm) const {
  if (batch < 0) throw InvalidArgument("heteroq::deploy::Engine: negative batch size");
  if (batch > 0 && (!input || !output)) throw InvalidArgument("heteroq::deploy::Engine: null buffer");
  // samples in blocks: 4 sharing each weight row (small batches), kGemmBlock through the GEMM
  const int64_t kBlock = gemm ? kGemmBlock : 4;
  unsigned char* scratch = scratch_for(scratch_bytes_ * kBlock);
  const int64_t n_in = program_.input_size, n_out = output_size_;
  const bool none = program_.stages.empty();
  const size_t last_off = none ? in_offset_ : offset_.back();
  const int last_type = none ? in_type_ : out_type_.back();
  for (int64_t b0 = 0; b0 < batch; b0 += kBlock) {
   const int64_t count = std::min(kBlock, batch - b0);
   run_block(input + b0 * n_in, first + b0, count, scratch, gemm);
   for (int64_t b = b0; b < b0 + count; ++b) {
    const unsigned char* src = scratch + (b - b0) * scratch_bytes_ + last_off;
    int64_t* dst = output + b * n_out;
    if (last_type == 16) {
      for (int64_t i = 0; i < n_out; ++i) dst[i] = reinterpret_cast<const int16_t*>(src)[i];
    } else if (last_type == 32) {
      for (int64_t i = 0; i < n_out; ++i) dst[i] = reinterpret_cast<const int32_t*>(src)[i];
    } else {
      std::memcpy(dst, src, static_cast<size_t>(n_out) * sizeof(int64_t));
    }
   }
  }
}

void Engine::run(const float* input, int64_t batch, float* output) const {
  if (batch < 0) throw InvalidArgument("heteroq::deploy::Engine: negative batch size");
  const int64_t n_out = output_size_;
  constexpr int64_t kChunk = 64;
  const bool gemm = options_.gemm_min_batch > 0 && batch >= options_.gemm_min_batch;
  thread_local std::vector<int64_t> codes;
  if (codes.size() < static_cast<size_t>(n_out * kChunk)) codes.resize(static_cast<size_t>(n_out * kChunk));
  for (int64_t b0 = 0; b0 < batch; b0 += kChunk) {
    const int64_t count = std::min(kChunk, batch - b0);
    run_codes_from(input + b0 * program_.input_size, count, codes.data(), b0, gemm);
    for (int64_t b = 0; b < count; ++b) {
      for (int64_t i = 0; i < n_out; ++i) {
        output[(b0 + b) * n_out + i] = code_to_float(codes[b * n_out + i], out_scale_[i]);
      }
    }
  }
}

std::vector<float> Engine::operator()(const std::vector<float>& input) const {
  if (input.size() % static_cast<size_t>(program_.input_size) != 0) {
    throw InvalidArgument("heteroq::deploy::Engine: the input has " + std::to_string(input.size()) +
                          " values, not a multiple of the input size " +
                          std::to_string(program_.input_size));
  }
  const auto batch = static_cast<int64_t>(input.size()) / program_.input_size;
  std::vector<float> out(static_cast<size_t>(batch * output_size_));
  run(input.data(), batch, out.data());
  return out;
}

}  // namespace heteroq::deploy
