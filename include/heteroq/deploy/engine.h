// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// heteroq::deploy::Engine: bit-exact integer inference of a compiled quantized model. Torch-free:
// this header and the library heteroq_deploy use only the standard library (and Eigen inside).
// heteroq::deploy::compile() (heteroq/deploy/compile.h, in the main library) builds a Program from
// a trained model; an Engine runs it, saves it, loads it and writes a standalone C++ header for it.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "heteroq/errors.h"

#if defined(_WIN32)
#define HETEROQ_DEPLOY_API
#else
#define HETEROQ_DEPLOY_API __attribute__((visibility("default")))
#endif

namespace heteroq::deploy {

/**
 * The boundary: how the model's float input becomes integer codes, with the model's first
 * quantizer's own float32 arithmetic (the only floating-point operation of the engine).
 * `value = code * 2^-frac` for every kind.
 *  - "fixed" (quantized_bits, quantized_relu): p = x * in_scale (float32, in_scale = 2^k);
 *    code = clamp(rne(p), lo, hi) [+ clamp(rne(p * slope), neg_lo, 0) when slope != 0];
 *  - "sign" (quantized_bits with one signed bit): code = x < 0 ? -1 : +1;
 *  - "binary": code = x < 0 ? low : 1 (low = -1, or 0 with use_01);
 *  - "ternary": code = |x| >= threshold ? sign(x) : 0 (threshold: a float32 value);
 *  - "fixed_elem" (the fixed quantizer, widths per element or channel): per element j,
 *    p = x * 2^frac_elem[j] (float32); c = round(p) by round_mode ("RND_CONV": half to even,
 *    "RND": half up, "TRN": floor); code = clamp(c, lo_elem[j], hi_elem[j]), or with wrap
 *    c - n floor((c - lo_elem[j]) / n) (float32, n = hi_elem[j] - lo_elem[j] + 1, a power of
 *    two); an element with lo_elem[j] = hi_elem[j] = 0 (width <= 0) is 0. value = code *
 *    2^-frac_elem[j] (`frac` is unused).
 * rne is round half to even (QKeras's K.round). NaN inputs are rejected.
 */
struct HETEROQ_DEPLOY_API InputQuantizer {
  std::string kind = "fixed";
  double in_scale = 1.0;
  int64_t lo = 0, hi = 0;
  double slope = 0.0;
  int64_t neg_lo = 0;
  int64_t low = -1;
  float threshold = 0.0f;
  int64_t frac = 0;
  /// "fixed_elem": one value per input element.
  std::vector<int64_t> frac_elem, lo_elem, hi_elem;
  /// "fixed_elem": "RND_CONV", "RND" or "TRN", and whether the overflow wraps.
  std::string round_mode = "RND_CONV";
  bool wrap = false;
};

/**
 * A requantization (an activation quantizer applied to integer values A whose frac is known per
 * channel), in integers only; rne_shift(A, s) = A / 2^s rounded half to even (s > 0), A * 2^-s
 * (s <= 0):
 *  - "fixed": code = clamp(rne_shift(A, shift[c]), lo, hi)
 *             [+ clamp(rne_shift(A, slope_shift[c]), neg_lo, 0) with has_slope];
 *  - "sign": code = A < 0 ? -1 : +1;   "binary": code = A < 0 ? low : 1;
 *  - "ternary": code = |A| >= threshold[c] ? sign(A) : 0;
 *  - "table" (any element function, e.g. quantized_tanh, quantized_po2): a step function of the
 *    integer, t = table[c], j = the number of breaks[t] <= A, code = codes[t][j] (breaks strictly
 *    increasing, codes one longer). The compiler finds the breaks on the integer input domain
 *    with the quantizer's own float32 element function;
 *  - "fixed_elem" (the fixed quantizer with widths per element or channel): per value j,
 *    c = round(A, shift[j]) by round_mode ("RND_CONV": rne_shift; "RND": half up; "TRN": floor),
 *    code = clamp(c, lo_elem[j], hi_elem[j]), or with wrap lo + ((c - lo) mod n),
 *    n = hi_elem[j] - lo_elem[j] + 1 (a power of two); lo_elem[j] = hi_elem[j] = 0: code 0.
 * The output has one frac for every channel (`Stage::frac`), except "fixed_elem": one per value.
 */
struct HETEROQ_DEPLOY_API Requantizer {
  std::string kind = "fixed";
  std::vector<int64_t> shift;
  int64_t lo = 0, hi = 0;
  bool has_slope = false;
  std::vector<int64_t> slope_shift;
  int64_t neg_lo = 0;
  int64_t low = -1;
  std::vector<int64_t> threshold;
  std::vector<int64_t> table;
  std::vector<std::vector<int64_t>> breaks, codes;
  /// "fixed_elem": the code range per value, the round mode and whether the overflow wraps.
  std::vector<int64_t> lo_elem, hi_elem;
  std::string round_mode = "RND_CONV";
  bool wrap = false;
};

/// The geometry of a "conv2d" stage: per sample (C, H, W) row-major in, (out_channels, out_h,
/// out_w) out; zero padding, pad_h/pad_w before the input (top, left) and pad_h_end/pad_w_end
/// after it (bottom, right; -1: as pad_h/pad_w; PyTorch's padding="same" with an even kernel pads
/// one more after); weight [out_channels][in_channels / groups][kernel_h][kernel_w].
/// (A 1-D convolution is one with H = 1.)
struct HETEROQ_DEPLOY_API ConvGeometry {
  int64_t in_channels = 0, in_h = 0, in_w = 0, out_channels = 0;
  int64_t kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0;
  int64_t dilation_h = 1, dilation_w = 1, groups = 1;
  int64_t pad_h_end = -1, pad_w_end = -1;
  int64_t pad_bottom() const { return pad_h_end < 0 ? pad_h : pad_h_end; }
  int64_t pad_right() const { return pad_w_end < 0 ? pad_w : pad_w_end; }
  int64_t out_h() const {
    return (in_h + pad_h + pad_bottom() - dilation_h * (kernel_h - 1) - 1) / stride_h + 1;
  }
  int64_t out_w() const {
    return (in_w + pad_w + pad_right() - dilation_w * (kernel_w - 1) - 1) / stride_w + 1;
  }
};

/// An activation inside a "recurrent" stage, on integers at `in_frac` giving integers at
/// `out_frac`: "requantize" (`requantizer`, with one entry per hidden unit: the quantizer of the
/// layer's slot), "hard_sigmoid" (QKeras's clip(0.5 x + 0.5, 0, 1) exactly: clamp(a + 2^in_frac,
/// 0, 2^(in_frac + 1)), out_frac = in_frac + 1), "relu" (max(a, 0)) or "linear" (a; for a state
/// slot without a quantizer).
struct HETEROQ_DEPLOY_API RecurrentActivation {
  std::string kind = "linear";
  Requantizer requantizer;
  int64_t in_frac = 0, out_frac = 0;
};

/// One direction of a recurrent layer: codes aligned to uniform fracs (the compiler lifts each
/// weight to them). G gates (SimpleRNN 1, LSTM 4: i f g o, GRU 3: r z n; PyTorch's order), H hidden
/// units, F input features. Per step t, with s = state_h(h) (the state quantizer on the previous
/// output; h = 0 at the start) and, for an LSTM, cs = state_c(c) (c = 0 at the start):
///   X = w_ih x_t + b_ih                          [G H] at x_frac
///   R = w_hh s + b_hh                            [G H] (GRU, reset_after=false: the r, z rows only) at hh_frac
///   A = X << (a_frac - x_frac) + R << (a_frac - hh_frac)    (the gates' pre-activations)
///   SimpleRNN: h = act(A)
///   LSTM: i, f, o = ract(A_i, A_f, A_o), g = act(A_g); c = f cs << . + i g << . at c_frac;
///         h = o act_c(c) (h_frac = ract.out_frac + act_c.out_frac)
///   GRU: r, z = ract(A_r, A_z); N = X_n << (n_frac - x_frac) + (r R_n) << (n_frac - ract.out_frac -
///         hh_frac)  (reset_after), or + (w_hn (r s) + b_hn) << (n_frac - hn_frac);
///         n = act(N); h = ((2^ract.out_frac - z) n) << . + (z s) << . at h_frac
/// (every "<< k" a left shift by k >= 0 to the frac named).
struct HETEROQ_DEPLOY_API RecurrentDirection {
  std::vector<int64_t> w_ih, b_ih, w_hh, b_hh;
  /// GRU with reset_after=false: the candidate's recurrent kernel [H][H] (on r s) and bias.
  std::vector<int64_t> w_hn, b_hn;
  int64_t x_frac = 0, hh_frac = 0, a_frac = 0, n_frac = 0, hn_frac = 0, c_frac = 0, h_frac = 0;
  /// act: SimpleRNN's activation, LSTM's g and GRU's n; ract: the gates (LSTM i f o, GRU r z);
  /// act_c: LSTM's activation of the carry; state_h/state_c: the state quantizer on h and on c.
  RecurrentActivation act, ract, act_c, state_h, state_c;
};

/// A "recurrent" stage: one layer of a QSimpleRNN/QLSTM/QGRU over a per-sample sequence
/// (steps, features), row-major; one direction, or two (the second runs backwards in time and its
/// outputs follow the first's, as PyTorch's bidirectional layers). Output: the h of every step
/// (steps, directions hidden) with return_sequences, else the final h of each direction
/// (directions hidden: the backward direction's final h is the one at t = 0).
struct HETEROQ_DEPLOY_API Recurrent {
  /// "rnn", "lstm" or "gru".
  std::string cell;
  int64_t steps = 0, features = 0, hidden = 0;
  bool reset_after = true, return_sequences = true;
  std::vector<RecurrentDirection> directions;
};

/// One step of the program: a dense layer (integer matrix-vector product plus bias, giving
/// accumulators), a 2-D convolution (the same, over a sliding window), a per-channel affine map
/// (an unfolded batch norm: y = x * weight[c] + bias[c], channel c = element / (size / channels)),
/// a gather (y[j] = index[j] < 0 ? 0 : x[index[j]]: reflect/replicate/circular padding), a
/// recurrent layer (Recurrent), or a requantization. A dense, conv2d or affine stage may follow another directly: its input then has
/// one frac per value (per channel), and the compiler aligns the weights to it.
struct HETEROQ_DEPLOY_API Stage {
  /// "dense", "conv2d", "affine", "gather", "recurrent" or "requantize".
  std::string kind;
  /// The model layer it comes from ("fc1 (QLinear)"), for messages.
  std::string name;
  /// dense: weight codes, row-major [out_features][in_features]; bias codes at the accumulator's
  /// frac (empty: no bias). conv2d: in_features = C H W, out_features = out_channels out_h out_w,
  /// the weight as ConvGeometry says, one bias per output channel.
  int64_t in_features = 0, out_features = 0;
  std::vector<int64_t> weight, bias;
  ConvGeometry conv;
  /// affine: the number of channels (weight and bias have one value per channel).
  int64_t channels = 0;
  /// requantize.
  Requantizer requantizer;
  /// gather: out_features source indices into the input (-1: zero).
  std::vector<int64_t> index;
  /// recurrent: the layer (in_features = steps features; out_features as Recurrent says).
  Recurrent recurrent;
  /// dense, conv2d: the accumulator type the cost model (QTools's data types, heteroq::cost)
  /// assigns to the layer: its width in bits (sign included; 0: unknown) and its frac;
  /// StageInfo::bits_at_cost_frac says whether the engine's bound fits it.
  int64_t cost_bits = 0, cost_frac = 0;
  /// The frac of each output value (value = integer * 2^-frac): the accumulator's frac (per
  /// channel) of a dense or conv2d stage; one value repeated for a requantization.
  std::vector<int64_t> frac;
};

/// A compiled model: plain data.
struct HETEROQ_DEPLOY_API Program {
  int64_t input_size = 0;
  /// Whether the model flattens its input (a Flatten before the first dense layer): the engine then
  /// accepts any input shape (N, ...) with input_size elements per sample.
  bool flatten_input = false;
  InputQuantizer input;
  /// The per-sample shape of the output (e.g. {5}, or {C, H, W} after a convolution);
  /// empty: {output size}.
  std::vector<int64_t> output_shape;
  /// The model layer the input quantizer comes from.
  std::string input_name;
  std::vector<Stage> stages;
};

/// What the bound analysis found for a stage (computed from the weights when the engine is built).
struct HETEROQ_DEPLOY_API StageInfo {
  std::string kind, name;
  /// max |integer| of the stage's output over every possible input (dense: per channel,
  /// sum |w| max|x| + |b|; requantize: max(|lo|, |hi|)).
  int64_t max_abs = 0;
  /// Bits of the signed integer type the bound needs (sign included).
  int64_t bits = 0;
  /// The storage the engine uses: "int16", "int32" or "int64" (dense: the accumulator's).
  std::string storage;
  /// dense: whether the float32 QAT forward computes this layer exactly: every accumulator's
  /// bound is below 2^24 (then every partial sum is a float32 value). Always true otherwise.
  bool float32_exact = true;
  /// dense, conv2d: the cost model's accumulator width and frac (Stage::cost_bits, cost_frac; 0
  /// bits: unknown), and the bits the engine's bound (from the actual weights, per channel)
  /// needs at the cost model's binary point: max_o bits(bound_o) + cost_frac - frac_o (0 when
  /// unknown; -1 when a value has fraction bits below the cost model's binary point, e.g. an
  /// auto_po2 scale below 1, which QTools's types ignore). The cost model's width is the worst
  /// case over all weights of the format, so bits_at_cost_frac <= cost_bits.
  int64_t cost_bits = 0, cost_frac = 0, bits_at_cost_frac = 0;
  /// dense: the kernel: "dense", or "sparse" (only the nonzero weights, per row) when at least
  /// EngineOptions::sparse_min_zero_fraction of the weights are zero; their count.
  std::string kernel;
  int64_t nonzero_weights = 0;
};

/// How an Engine runs a Program (never what it computes).
struct HETEROQ_DEPLOY_API EngineOptions {
  /// A dense stage whose weights are at least this fraction zero (a pruned layer) runs a sparse
  /// kernel over its nonzero weights only; > 1 disables it. (On the jet model the scalar sparse
  /// kernel is slower than the vectorized dense one even at 90% zeros: bench_deploy.)
  double sparse_min_zero_fraction = 0.97;
  /// Batches of at least this many samples run the dense layers as one integer GEMM (samples in
  /// blocks sharing each weight row); smaller batches sample by sample. 0 disables it.
  int64_t gemm_min_batch = 16;
};

/// Bit-exact integer inference of a Program. Immutable and thread-safe after construction.
class HETEROQ_DEPLOY_API Engine {
 public:
  /**
   * Validates `program` (sizes, code ranges, shifts, frac chain) and analyses it: per stage the
   * integer bound, the narrowest storage (int16 codes and weights with int32 accumulators
   * where the bound allows, else int64) and whether float32 training math is exact.
   * @throws heteroq::InvalidArgument naming the stage and the problem.
   */
  explicit Engine(Program program, EngineOptions options = {});

  const Program& program() const { return program_; }
  const EngineOptions& options() const { return options_; }
  int64_t input_size() const { return program_.input_size; }
  int64_t output_size() const { return output_size_; }
  /// The frac of each output (value = code * 2^-frac).
  const std::vector<int64_t>& output_frac() const { return output_frac_; }
  const std::vector<StageInfo>& stage_info() const { return info_; }
  /// Whether every stage is float32-exact (then the engine equals the float32 model bit for bit).
  bool float32_exact() const;

  /// Runs `batch` samples (row-major [batch][input_size] float32) and writes the output integers
  /// ([batch][output_size]). @throws heteroq::InvalidArgument on NaN input (naming the element).
  void run_codes(const float* input, int64_t batch, int64_t* output) const;
  /// As run_codes, then output = code * 2^-frac as float32 (exact when |code| < 2^24).
  void run(const float* input, int64_t batch, float* output) const;
  std::vector<float> operator()(const std::vector<float>& input) const;

  /// Writes the program to a safetensors file (docs/deploy_engine.md), atomically.
  void save(const std::string& path) const;
  /// Reads a file save() wrote and validates it fully.
  /// @throws heteroq::InvalidArgument naming the file and what is wrong (truncated, corrupted).
  static Engine load(const std::string& path);

  /// A standalone C++ header (only <stdint.h>; fixed-width integers, no allocation) with the
  /// weights as constant arrays and `int <name>_infer(const float* in, int64_t* codes)` /
  /// `int <name>_infer_float(const float* in, float* out)` for one sample (0, or -1 on NaN).
  std::string generate_header(const std::string& name) const;

 private:
  Program program_;
  EngineOptions options_;
  int64_t output_size_ = 0;
  std::vector<int64_t> output_frac_;
  std::vector<double> out_scale_;  // 2^-output_frac
  std::vector<StageInfo> info_;
  std::vector<std::vector<int16_t>> w16_;
  std::vector<std::vector<int32_t>> b32_;
  std::vector<int> dense_kind_;  // per stage: 0 narrow dense (int16 x int16 -> int32), 1 wide dense (int64), 2 conv2d, 3 affine, 4 gather, 5 recurrent
  std::vector<bool> sparse_;     // per dense stage: the sparse kernel (CSR: row_ptr_, col_, w16_ or the weight)
  std::vector<std::vector<int32_t>> row_ptr_, col_;
  std::vector<std::vector<int64_t>> wsp_;  // sparse wide: the nonzero weights
  std::vector<std::vector<int16_t>> wpack_;  // narrow dense: the weights packed for the batched GEMM
  bool avx2_ = false;
  std::vector<int> out_type_;    // per stage: 16, 32 or 64 (the output storage)
  int in_type_ = 16;             // the input codes' storage
  int in_op_ = 0;                // the input quantizer's kind, as an integer
  std::vector<float> in_scale_f_;  // "fixed_elem" input: 2^frac_elem per element (float32)
  std::vector<int> op_;          // per stage: the kind (dense, or the requantizer's), as an integer
  std::vector<int> uniform_shift_;  // per requantization: its one shift when the fast path applies
  std::vector<size_t> offset_;   // per stage: the output's byte offset in the scratch buffer
  size_t in_offset_ = 0, scratch_bytes_ = 0;
  void analyse();
  void run_stage(size_t i, const unsigned char* prev, int prev_type, int64_t size, unsigned char* out) const;
  void run_block(const float* x, int64_t first, int64_t count, unsigned char* scratch, bool gemm) const;
  void run_codes_from(const float* input, int64_t batch, int64_t* output, int64_t first, bool gemm) const;
  template <typename T>
  const T* output_of(const unsigned char* scratch) const;
};

}  // namespace heteroq::deploy
