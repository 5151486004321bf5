// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Engine::generate_header: a standalone C++ header for one compiled model. It repeats the
// engine's arithmetic operation for operation (same input quantizer, same integer types, same
// rounding), with the weights as constant arrays and every buffer on the stack.
#include <algorithm>
#include <cctype>
#include <limits>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "heteroq/deploy/engine.h"
#include "heteroq/version.h"

namespace heteroq::deploy {
namespace {

std::string hex_float(float v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%af", static_cast<double>(v));
  return buf;
}

std::string hex_double(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%a", v);
  return buf;
}

std::string int_literal(int64_t v) {
  if (v == std::numeric_limits<int64_t>::min()) return "INT64_MIN";
  return "INT64_C(" + std::to_string(v) + ")";
}

std::string ctype(int bits) { return "int" + std::to_string(bits) + "_t"; }

template <typename V>
void emit_array(std::ostringstream& o, const std::string& type, const std::string& name, const V& v) {
  o << "static const " << type << " " << name << "[" << v.size() << "] = {";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i % 16 == 0) o << "\n    ";
    o << v[i] << (i + 1 < v.size() ? "," : "");
    if (i + 1 < v.size() && i % 16 != 15) o << " ";
  }
  o << "};\n";
}

// The constant arrays of a requantizer (suffix `id`).
void emit_requant_arrays(std::ostringstream& o, const Requantizer& r, const std::string& id) {
  if (r.kind == "fixed") {
    emit_array(o, "int", "shift" + id, r.shift);
    if (r.has_slope) emit_array(o, "int", "slope_shift" + id, r.slope_shift);
  } else if (r.kind == "fixed_elem") {
    std::vector<std::string> lo, hi;
    for (int64_t v : r.lo_elem) lo.push_back(int_literal(v));
    for (int64_t v : r.hi_elem) hi.push_back(int_literal(v));
    emit_array(o, "int", "shift" + id, r.shift);
    emit_array(o, "int64_t", "lo" + id, lo);
    emit_array(o, "int64_t", "hi" + id, hi);
  } else if (r.kind == "ternary") {
    std::vector<std::string> t;
    for (int64_t v : r.threshold) t.push_back(int_literal(v));
    emit_array(o, "int64_t", "threshold" + id, t);
  } else if (r.kind == "table") {
    // every table's breaks and codes concatenated; per channel where its table starts
    std::vector<std::string> br, cd;
    std::vector<int64_t> bstart, blen, cstart;
    for (size_t t = 0; t < r.breaks.size(); ++t) {
      bstart.push_back(static_cast<int64_t>(br.size()));
      blen.push_back(static_cast<int64_t>(r.breaks[t].size()));
      cstart.push_back(static_cast<int64_t>(cd.size()));
      for (int64_t v : r.breaks[t]) br.push_back(int_literal(v));
      for (int64_t v : r.codes[t]) cd.push_back(int_literal(v));
    }
    if (br.empty()) br.push_back(int_literal(0));  // no zero-length arrays
    std::vector<int64_t> tb, tl, tc;
    for (int64_t t : r.table) {
      tb.push_back(bstart[static_cast<size_t>(t)]);
      tl.push_back(blen[static_cast<size_t>(t)]);
      tc.push_back(cstart[static_cast<size_t>(t)]);
    }
    emit_array(o, "int64_t", "breaks" + id, br);
    emit_array(o, "int64_t", "codes" + id, cd);
    emit_array(o, "int", "tbreak" + id, tb);
    emit_array(o, "int", "tlen" + id, tl);
    emit_array(o, "int", "tcode" + id, tc);
  }
}

// A requantizer's loop over n values: out[c] = requantize(in[c]) (arrays of suffix `id`).
void emit_requant_loop(std::ostringstream& o, const Requantizer& r, const std::string& id, const std::string& in,
                       const std::string& y, int64_t n, const std::string& ty, const std::string& ind) {
  o << ind << "for (int c = 0; c < " << n << "; ++c) {\n"
    << ind << "  const int64_t a = " << in << "[c];\n";
  if (r.kind == "fixed") {
    o << ind << "  int64_t v = clampi(rne_shift(a, shift" << id << "[c]), " << int_literal(r.lo) << ", "
      << int_literal(r.hi) << ");\n";
    if (r.has_slope) {
      o << ind << "  v += clampi(rne_shift(a, slope_shift" << id << "[c]), " << int_literal(r.neg_lo)
        << ", 0);\n";
    }
    o << ind << "  " << y << "[c] = (" << ty << ")v;\n";
  } else if (r.kind == "fixed_elem") {
    o << ind << "  int64_t v = 0;\n"
      << ind << "  if (lo" << id << "[c] != 0 || hi" << id << "[c] != 0) {\n"
      << ind << "    const int s = shift" << id << "[c];\n";
    if (r.round_mode == "RND_CONV") {
      o << ind << "    v = rne_shift(a, s);\n";
    } else {
      o << ind << "    if (s <= 0) {\n" << ind << "      v = rne_shift(a, s);\n" << ind << "    } else {\n";
      if (r.round_mode == "TRN") {
        o << ind << "      v = a >> s;\n";
      } else {
        o << ind << "      v = (a >> s) + ((a & ((INT64_C(1) << s) - 1)) >= (INT64_C(1) << (s - 1)) ? 1 : 0);\n";
      }
      o << ind << "    }\n";
    }
    if (r.wrap) {
      o << ind << "    const uint64_t span = (uint64_t)(hi" << id << "[c] - lo" << id << "[c]) + 1u;\n"
        << ind << "    v = lo" << id << "[c] + (int64_t)((uint64_t)(v - lo" << id << "[c]) & (span - 1u));\n";
    } else {
      o << ind << "    v = clampi(v, lo" << id << "[c], hi" << id << "[c]);\n";
    }
    o << ind << "  }\n" << ind << "  " << y << "[c] = (" << ty << ")v;\n";
  } else if (r.kind == "sign") {
    o << ind << "  " << y << "[c] = a < 0 ? -1 : 1;\n";
  } else if (r.kind == "binary") {
    o << ind << "  " << y << "[c] = a < 0 ? " << r.low << " : 1;\n";
  } else if (r.kind == "table") {
    o << ind << "  " << y << "[c] = (" << ty << ")codes" << id << "[tcode" << id << "[c] + upper(breaks" << id
      << " + tbreak" << id << "[c], tlen" << id << "[c], a)];\n";
  } else {
    o << ind << "  " << y << "[c] = (a < 0 ? -a : a) >= threshold" << id
      << "[c] ? (a > 0 ? 1 : (a < 0 ? -1 : 0)) : 0;\n";
  }
  o << ind << "}\n";
}

// A recurrent stage: its weights, its activations as functions act<id>_<d>_<slot>(in, out) over
// the hidden units, and rnn<id>(x, y) repeating the engine's step loop (Recurrent) with X
// computed per step (no buffer of the whole sequence).
void emit_recurrent_arrays(std::ostringstream& o, const Recurrent& R, const std::string& id) {
  const int64_t L = R.steps, F = R.features, H = R.hidden;
  const int64_t G = R.cell == "lstm" ? 4 : R.cell == "gru" ? 3 : 1;
  const auto D = static_cast<int64_t>(R.directions.size());
  const bool lstm = R.cell == "lstm", gru = R.cell == "gru";
  const int64_t rows_hh = gru && !R.reset_after ? 2 * H : G * H;
  auto lits = [](const std::vector<int64_t>& v, size_t n) {
    std::vector<std::string> out;
    for (size_t k = 0; k < n; ++k) out.push_back(int_literal(k < v.size() ? v[k] : 0));
    return out;
  };
  for (int64_t d = 0; d < D; ++d) {
    const RecurrentDirection& r = R.directions[static_cast<size_t>(d)];
    const std::string sd = id + "_" + std::to_string(d);
    emit_array(o, "int64_t", "w_ih" + sd, lits(r.w_ih, r.w_ih.size()));
    emit_array(o, "int64_t", "b_ih" + sd, lits(r.b_ih, static_cast<size_t>(G * H)));
    emit_array(o, "int64_t", "w_hh" + sd, lits(r.w_hh, r.w_hh.size()));
    emit_array(o, "int64_t", "b_hh" + sd, lits(r.b_hh, static_cast<size_t>(rows_hh)));
    if (gru && !R.reset_after) {
      emit_array(o, "int64_t", "w_hn" + sd, lits(r.w_hn, r.w_hn.size()));
      emit_array(o, "int64_t", "b_hn" + sd, lits(r.b_hn, static_cast<size_t>(H)));
    }
    const std::pair<const char*, const RecurrentActivation*> acts[] = {
        {"act", &r.act}, {"ract", &r.ract}, {"act_c", &r.act_c}, {"state_h", &r.state_h}, {"state_c", &r.state_c}};
    for (const auto& [slot, a] : acts) {
      const std::string sfx = sd + "_" + slot;
      if (a->kind == "requantize") emit_requant_arrays(o, a->requantizer, sfx);
      o << "static inline void act" << sfx << "(const int64_t* in, int64_t* out) {\n";
      if (a->kind == "requantize") {
        emit_requant_loop(o, a->requantizer, sfx, "in", "out", H, "int64_t", "  ");
      } else if (a->kind == "hard_sigmoid") {
        o << "  for (int c = 0; c < " << H << "; ++c) out[c] = clampi(in[c] + " << int_literal(int64_t(1) << a->in_frac)
          << ", 0, " << int_literal(int64_t(2) << a->in_frac) << ");\n";
      } else if (a->kind == "relu") {
        o << "  for (int c = 0; c < " << H << "; ++c) out[c] = in[c] < 0 ? 0 : in[c];\n";
      } else {
        o << "  for (int c = 0; c < " << H << "; ++c) out[c] = in[c];\n";
      }
      o << "}\n";
    }
  }
  const int64_t GH = G * H;
  o << "static inline void rnn" << id << "(const int64_t* x, int64_t* y) {\n"
    << "  int64_t X[" << GH << "], Rv[" << GH << "], A[" << GH << "], h[" << H << "], c[" << H << "], sv[" << H
    << "], cs[" << H << "], t1[" << H << "], t2[" << H << "], t3[" << H << "], t4[" << H << "], rs[" << H
    << "], hn[" << H << "];\n"
    << "  (void)c; (void)cs; (void)t1; (void)t2; (void)t3; (void)t4; (void)rs; (void)hn;\n";
  for (int64_t d = 0; d < D; ++d) {
    const RecurrentDirection& r = R.directions[static_cast<size_t>(d)];
    const std::string sd = id + "_" + std::to_string(d);
    auto act = [&](const char* slot, const std::string& in, const std::string& out) {
      o << "    act" << sd << "_" << slot << "(" << in << ", " << out << ");\n";
    };
    auto upk = [](int64_t k) { return "INT64_C(" + std::to_string(int64_t(1) << k) + ")"; };
    o << "  for (int j = 0; j < " << H << "; ++j) { h[j] = 0; c[j] = 0; }\n"
      << "  for (int step = 0; step < " << L << "; ++step) {\n"
      << "    const int t = " << (d == 1 ? std::to_string(L - 1) + " - step" : std::string("step")) << ";\n"
      << "    matvec(w_ih" << sd << ", b_ih" << sd << ", x + t * " << F << ", " << GH << ", " << F << ", X);\n";
    act("state_h", "h", "sv");
    if (lstm) act("state_c", "c", "cs");
    o << "    matvec(w_hh" << sd << ", b_hh" << sd << ", sv, " << rows_hh << ", " << H << ", Rv);\n"
      << "    for (int j = 0; j < " << (gru ? 2 * H : GH) << "; ++j) A[j] = X[j] * " << upk(r.a_frac - r.x_frac)
      << " + Rv[j] * " << upk(r.a_frac - r.hh_frac) << ";\n";
    if (R.cell == "rnn") {
      act("act", "A", "h");
    } else if (lstm) {
      act("ract", "A", "t1");
      act("ract", "A + " + std::to_string(H), "t2");
      act("act", "A + " + std::to_string(2 * H), "t3");
      act("ract", "A + " + std::to_string(3 * H), "t4");
      o << "    for (int j = 0; j < " << H << "; ++j) c[j] = t2[j] * cs[j] * "
        << upk(r.c_frac - r.ract.out_frac - r.state_c.out_frac) << " + t1[j] * t3[j] * "
        << upk(r.c_frac - r.ract.out_frac - r.act.out_frac) << ";\n";
      act("act_c", "c", "rs");
      o << "    for (int j = 0; j < " << H << "; ++j) h[j] = t4[j] * rs[j];\n";
    } else {
      act("ract", "A", "t1");
      act("ract", "A + " + std::to_string(H), "t2");
      if (R.reset_after) {
        o << "    for (int j = 0; j < " << H << "; ++j) A[j] = X[" << 2 * H << " + j] * " << upk(r.n_frac - r.x_frac)
          << " + t1[j] * Rv[" << 2 * H << " + j] * " << upk(r.n_frac - r.ract.out_frac - r.hh_frac) << ";\n";
      } else {
        o << "    for (int j = 0; j < " << H << "; ++j) rs[j] = t1[j] * sv[j];\n"
          << "    matvec(w_hn" << sd << ", b_hn" << sd << ", rs, " << H << ", " << H << ", hn);\n"
          << "    for (int j = 0; j < " << H << "; ++j) A[j] = X[" << 2 * H << " + j] * " << upk(r.n_frac - r.x_frac)
          << " + hn[j] * " << upk(r.n_frac - r.hn_frac) << ";\n";
      }
      act("act", "A", "t3");
      o << "    for (int j = 0; j < " << H << "; ++j) h[j] = (" << upk(r.ract.out_frac) << " - t2[j]) * t3[j] * "
        << upk(r.h_frac - r.ract.out_frac - r.act.out_frac) << " + t2[j] * sv[j] * "
        << upk(r.h_frac - r.ract.out_frac - r.state_h.out_frac) << ";\n";
    }
    if (R.return_sequences) {
      o << "    for (int j = 0; j < " << H << "; ++j) y[(t * " << D << " + " << d << ") * " << H << " + j] = h[j];\n";
    }
    o << "  }\n";
    if (!R.return_sequences) {
      o << "  for (int j = 0; j < " << H << "; ++j) y[" << d * H << " + j] = h[j];\n";
    }
  }
  o << "}\n";
}

}  // namespace

std::string Engine::generate_header(const std::string& name) const {
  if (name.empty() || !(std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_') ||
      !std::all_of(name.begin(), name.end(),
                   [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; })) {
    throw InvalidArgument("heteroq::deploy::Engine::generate_header: the name `" + name +
                          "` is not a C identifier");
  }
  const Program& p = program_;
  std::string guard = name;
  for (char& c : guard) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  std::ostringstream o;
  o << "// Generated by heteroq " << HETEROQ_VERSION_STRING << " (heteroq::deploy::Engine::generate_header).\n"
    << "// Bit-exact integer inference of a compiled quantized model: standalone (only <stdint.h>),\n"
    << "// fixed-width integers, no allocation, no floating point after the input quantizer.\n"
    << "//   int " << name << "::infer(const float in[" << p.input_size << "], int64_t out[" << output_size_ << "]);\n"
    << "//     output integers; value = out[i] * 2^-" << name << "::kOutputFrac[i]; returns 0, or -1 on a NaN input\n"
    << "//   int " << name << "::infer_float(const float in[" << p.input_size << "], float out[" << output_size_ << "]);\n"
    << "// Compile without -ffast-math (the input quantizer rounds with float additions).\n"
    << "#ifndef HETEROQ_GENERATED_" << guard << "_H_\n#define HETEROQ_GENERATED_" << guard << "_H_\n\n"
    << "#include <stdint.h>\n\n"
    << "#if defined(__FAST_MATH__)\n#error \"" << name << ": compile without -ffast-math\"\n#endif\n\n"
    << "namespace " << name << " {\n\n"
    << "static const int kInputSize = " << p.input_size << ";\n"
    << "static const int kOutputSize = " << output_size_ << ";\n";
  emit_array(o, "int", "kOutputFrac", output_frac_);
  o << "\nnamespace detail {\n\n"
    << "// Round half to even in float32 (as the QAT kernels: adding and subtracting 2^23).\n"
    << "static inline float rne(float v) {\n"
    << "  const float a = v < 0.0f ? -v : v;\n"
    << "  const float m = a < 8388608.0f ? 8388608.0f : 0.0f;\n"
    << "  const float r = (a + m) - m;\n"
    << "  return v < 0.0f ? -r : r;\n}\n"
    << "static inline float clampf(float v, float lo, float hi) {\n"
    << "  const float t = v < lo ? lo : v;\n  return t > hi ? hi : t;\n}\n"
    << "// floor in float32 (|v| >= 2^23 is an integer already; NaN and infinities pass through).\n"
    << "static inline float floorf_(float v) {\n"
    << "  if (!(v > -8388608.0f && v < 8388608.0f)) return v;\n"
    << "  const float t = (float)(int32_t)v;\n  return t > v ? t - 1.0f : t;\n}\n"
    << "static inline int64_t clampi(int64_t v, int64_t lo, int64_t hi) {\n"
    << "  return v < lo ? lo : (v > hi ? hi : v);\n}\n"
    << "// a / 2^s rounded half to even (s > 0), a * 2^-s (s <= 0).\n"
    << "static inline int64_t rne_shift(int64_t a, int s) {\n"
    << "  if (s <= 0) return a * (INT64_C(1) << (-s));\n"
    << "  const int64_t q = a >> s;\n"
    << "  const int64_t r = a - q * (INT64_C(1) << s);\n"
    << "  const int64_t half = INT64_C(1) << (s - 1);\n"
    << "  return q + ((r + (q & 1)) > half ? 1 : 0);\n}\n"
    << "// y[o] = b[o] + sum_k w[o][k] x[k] (a recurrent layer's products).\n"
    << "static inline void matvec(const int64_t* w, const int64_t* b, const int64_t* x, int rows, int cols, int64_t* y) {\n"
    << "  for (int o = 0; o < rows; ++o) {\n    int64_t acc = b[o];\n"
    << "    for (int k = 0; k < cols; ++k) acc += w[o * cols + k] * x[k];\n    y[o] = acc;\n  }\n}\n"
    << "// The number of b[0..n) <= a (b increasing).\n"
    << "static inline int upper(const int64_t* b, int n, int64_t a) {\n"
    << "  int lo = 0, hi = n;\n"
    << "  while (lo < hi) {\n    const int mid = lo + (hi - lo) / 2;\n"
    << "    if (b[mid] <= a) lo = mid + 1; else hi = mid;\n  }\n  return lo;\n}\n\n";
  for (size_t i = 0; i < p.stages.size(); ++i) {
    const Stage& s = p.stages[i];
    const std::string id = std::to_string(i);
    if (s.kind == "dense" || s.kind == "conv2d" || s.kind == "affine") {
      if (dense_kind_[i] == 0) {
        emit_array(o, "int16_t", "w" + id, s.weight);
        std::vector<int64_t> b = s.bias;
        b.resize(static_cast<size_t>(s.out_features), 0);
        emit_array(o, "int32_t", "b" + id, b);
      } else {
        std::vector<std::string> w, b;
        for (int64_t v : s.weight) w.push_back(int_literal(v));
        const int64_t nb = s.kind == "affine" ? s.channels : s.kind == "conv2d" ? s.conv.out_channels : s.out_features;
        for (int64_t o2 = 0; o2 < nb; ++o2) {
          b.push_back(int_literal(s.bias.empty() ? 0 : s.bias[static_cast<size_t>(o2)]));
        }
        emit_array(o, "int64_t", "w" + id, w);
        emit_array(o, "int64_t", "b" + id, b);
      }
    } else if (s.kind == "gather") {
      emit_array(o, "int", "index" + id, s.index);
    } else if (s.kind == "recurrent") {
      emit_recurrent_arrays(o, s.recurrent, id);
    } else {
      emit_requant_arrays(o, s.requantizer, id);
    }
  }
  o << "\n}  // namespace detail\n\n"
    << "static inline int infer(const float* in, int64_t* out) {\n"
    << "  using namespace detail;\n"
    << "  for (int i = 0; i < " << p.input_size << "; ++i) {\n    if (in[i] != in[i]) return -1;\n  }\n";
  const InputQuantizer& q = p.input;
  if (q.kind == "fixed_elem") {
    std::vector<std::string> sc, lo, hi;
    for (int64_t f : q.frac_elem) sc.push_back(hex_float(std::ldexp(1.0f, static_cast<int>(f))));
    for (int64_t v : q.lo_elem) lo.push_back(int_literal(v));
    for (int64_t v : q.hi_elem) hi.push_back(int_literal(v));
    emit_array(o, "float", "in_scale", sc);
    emit_array(o, "int64_t", "in_lo", lo);
    emit_array(o, "int64_t", "in_hi", hi);
  }
  o << "  " << ctype(in_type_) << " x[" << p.input_size << "];\n"
    << "  for (int i = 0; i < " << p.input_size << "; ++i) {\n";
  if (q.kind == "fixed_elem") {
    // the float32 operations of heteroq::fixed_quantize, in its order
    o << "    if (in_lo[i] == 0 && in_hi[i] == 0) {\n      x[i] = 0;\n      continue;\n    }\n"
      << "    const float v = in[i] * in_scale[i];\n";
    if (q.round_mode == "RND_CONV") {
      o << "    const float r = rne(v);\n";
    } else if (q.round_mode == "TRN") {
      o << "    const float r = floorf_(v);\n";
    } else {
      o << "    const float f0 = floorf_(v);\n    const float r = f0 + ((v - f0) >= 0.5f ? 1.0f : 0.0f);\n";
    }
    if (q.wrap) {
      o << "    const float n = (float)((double)(in_hi[i] - in_lo[i]) + 1.0);\n"
        << "    const float c = r - n * floorf_((r + -(float)in_lo[i]) / n);\n"
        << "    if (c != c) return -1;\n";
    } else {
      o << "    const float c = clampf(r, (float)in_lo[i], (float)in_hi[i]);\n";
    }
    o << "    x[i] = (" << ctype(in_type_) << ")c;\n";
  } else if (q.kind == "fixed") {
    o << "    const float v = in[i] * " << hex_float(static_cast<float>(q.in_scale)) << ";\n"
      << "    float c = clampf(rne(v), " << hex_float(static_cast<float>(q.lo)) << ", "
      << hex_float(static_cast<float>(q.hi)) << ");\n";
    if (q.slope != 0.0) {
      o << "    c = c + clampf(rne(v * " << hex_float(static_cast<float>(q.slope)) << "), "
        << hex_float(static_cast<float>(q.neg_lo)) << ", 0.0f);\n";
    }
    o << "    x[i] = (" << ctype(in_type_) << ")c;\n";
  } else if (q.kind == "sign") {
    o << "    x[i] = in[i] < 0.0f ? -1 : 1;\n";
  } else if (q.kind == "binary") {
    o << "    x[i] = in[i] < 0.0f ? " << q.low << " : 1;\n";
  } else {
    o << "    const float a = in[i] < 0.0f ? -in[i] : in[i];\n"
      << "    x[i] = a >= " << hex_float(q.threshold) << " ? (in[i] < 0.0f ? -1 : (in[i] > 0.0f ? 1 : 0)) : 0;\n";
  }
  o << "  }\n";
  std::string prev = "x";
  int64_t size = p.input_size;
  for (size_t i = 0; i < p.stages.size(); ++i) {
    const Stage& s = p.stages[i];
    const std::string id = std::to_string(i), y = "y" + id;
    const std::string ty = ctype(out_type_[i]);
    if (s.kind == "recurrent") {
      o << "  int64_t " << y << "[" << s.out_features << "];\n"
        << "  {\n    int64_t xr[" << s.in_features << "];\n"
        << "    for (int k = 0; k < " << s.in_features << "; ++k) xr[k] = " << prev << "[k];\n"
        << "    rnn" << id << "(xr, " << y << ");\n  }\n";
      size = s.out_features;
    } else if (s.kind == "gather") {
      o << "  " << ty << " " << y << "[" << s.out_features << "];\n"
        << "  for (int k = 0; k < " << s.out_features << "; ++k) " << y << "[k] = index" << id
        << "[k] < 0 ? 0 : " << prev << "[index" << id << "[k]];\n";
      size = s.out_features;
    } else if (s.kind == "affine") {
      const int64_t per = s.out_features / s.channels;
      o << "  " << ty << " " << y << "[" << s.out_features << "];\n"
        << "  for (int k = 0; k < " << s.out_features << "; ++k) " << y << "[k] = (" << ty << ")((int64_t)"
        << prev << "[k] * w" << id << "[k / " << per << "] + b" << id << "[k / " << per << "]);\n";
    } else if (s.kind == "conv2d") {
      const ConvGeometry& g = s.conv;
      const int64_t icg = g.in_channels / g.groups, ocg = g.out_channels / g.groups;
      o << "  " << ty << " " << y << "[" << s.out_features << "];\n"
        << "  for (int o = 0; o < " << g.out_channels << "; ++o) {\n"
        << "    const int c0 = (o / " << ocg << ") * " << icg << ";\n"
        << "    for (int i = 0; i < " << g.out_h() << "; ++i) {\n"
        << "      for (int j = 0; j < " << g.out_w() << "; ++j) {\n"
        << "        int64_t acc = b" << id << "[o];\n"
        << "        for (int c = 0; c < " << icg << "; ++c) {\n"
        << "          for (int ky = 0; ky < " << g.kernel_h << "; ++ky) {\n"
        << "            const int iy = i * " << g.stride_h << " - " << g.pad_h << " + ky * " << g.dilation_h << ";\n"
        << "            if (iy < 0 || iy >= " << g.in_h << ") continue;\n"
        << "            for (int kx = 0; kx < " << g.kernel_w << "; ++kx) {\n"
        << "              const int ix = j * " << g.stride_w << " - " << g.pad_w << " + kx * " << g.dilation_w << ";\n"
        << "              if (ix < 0 || ix >= " << g.in_w << ") continue;\n"
        << "              acc += w" << id << "[((o * " << icg << " + c) * " << g.kernel_h << " + ky) * "
        << g.kernel_w << " + kx] * (int64_t)" << prev << "[((c0 + c) * " << g.in_h << " + iy) * "
        << g.in_w << " + ix];\n"
        << "            }\n          }\n        }\n"
        << "        " << y << "[(o * " << g.out_h() << " + i) * " << g.out_w() << " + j] = (" << ty << ")acc;\n"
        << "      }\n    }\n  }\n";
      size = s.out_features;
    } else if (s.kind == "dense") {
      o << "  " << ty << " " << y << "[" << s.out_features << "];\n"
        << "  for (int o = 0; o < " << s.out_features << "; ++o) {\n";
      if (dense_kind_[i] == 0) {
        o << "    int32_t acc = 0;\n"
          << "    for (int k = 0; k < " << s.in_features << "; ++k) acc += (int32_t)w" << id << "[o * "
          << s.in_features << " + k] * (int32_t)" << prev << "[k];\n";
      } else {
        o << "    int64_t acc = 0;\n"
          << "    for (int k = 0; k < " << s.in_features << "; ++k) acc += w" << id << "[o * "
          << s.in_features << " + k] * (int64_t)" << prev << "[k];\n";
      }
      o << "    " << y << "[o] = (" << ty << ")(acc + b" << id << "[o]);\n  }\n";
      size = s.out_features;
    } else {
      o << "  " << ty << " " << y << "[" << size << "];\n";
      emit_requant_loop(o, s.requantizer, id, prev, y, size, ty, "  ");
    }
    prev = y;
  }
  o << "  for (int i = 0; i < " << output_size_ << "; ++i) out[i] = " << prev << "[i];\n"
    << "  return 0;\n}\n\n"
    << "static inline int infer_float(const float* in, float* out) {\n"
    << "  int64_t codes[" << output_size_ << "];\n"
    << "  if (infer(in, codes) != 0) return -1;\n";
  std::vector<std::string> scales;
  for (int64_t f : output_frac_) scales.push_back(hex_double(std::ldexp(1.0, static_cast<int>(-f))));
  emit_array(o, "double", "kScale", scales);
  o << "  for (int i = 0; i < " << output_size_ << "; ++i) out[i] = (float)((double)codes[i] * kScale[i]);\n"
    << "  return 0;\n}\n\n"
    << "}  // namespace " << name << "\n\n#endif\n";
  return o.str();
}

}  // namespace heteroq::deploy
