// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// print_qstats (QKeras estimate.py): per layer the quantizers, the parameter count, the weight
// bits, the multiply-accumulate operations by kind and operand widths (smult_6_8, ...) and the
// accumulator width; plus the totals. The operand modes and the operation-type table below are
// the shared basis of the cost models (QTools energy, to come in this namespace).
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>

#include <array>
#include <cstdint>
#include <iostream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "heteroq/export.h"
#include "heteroq/nn/layers.h"
#include "heteroq/quantizers/quantizer.h"

namespace heteroq::cost {

// ---------------------------------------------------------------------------------------------
// Operand modes (QKeras get_quant_mode)

/// QKeras's operand modes, numbered as QKeras numbers them (the rows and columns of the
/// operation-type table).
enum class OperandMode : int {
  kFixed = 0,     ///< fixed point: quantized_bits, quantized_relu, quantized_tanh, ... ("qb(n)")
  kPo2 = 1,       ///< signed powers of two: quantized_po2, quantized_relu_po2 ("+/-,exp")
  kTernary = 2,   ///< {-1, 0, +1}: ternary, stochastic_ternary, quantized_bits(2,1)
  kBinary = 3,    ///< {-1, +1}: binary, stochastic_binary
  kBinary01 = 4,  ///< {0, 1}: bernoulli, binary(use_01), quantized_relu(1,1)
  kFloat = 5,     ///< not quantized (no quantizer): 32-bit float
};

/// The type of one multiplication operand: QKeras's `(mode, bits, signed)` triple.
struct HETEROQ_API OperandType {
  OperandMode mode = OperandMode::kFloat;
  int64_t bits = 32;
  bool is_signed = true;
  bool operator==(const OperandType& o) const {
    return mode == o.mode && bits == o.bits && is_signed == o.is_signed;
  }
  bool operator!=(const OperandType& o) const { return !(*this == o); }
};

/**
 * QKeras's `get_quant_mode`: the operand type of values produced by quantizer `q` (nullptr: no
 * quantizer, float, `(5, 32, signed)`).
 *
 * As QKeras: quantized_bits, quantized_tanh, quantized_ulaw are `(0, bits, signed)` (mode 2 for
 * `bits = 2, integer = 1`); quantized_relu `(0, bits, unsigned)` (mode 4 for `bits = 1,
 * integer = 1`); quantized_po2 `(1, bits, signed)`, quantized_relu_po2 `(1, bits, unsigned)`;
 * ternary and stochastic_ternary `(2, 2, signed)`; binary and stochastic_binary `(3, 1, signed)`;
 * bernoulli `(4, 1, unsigned)`. Where QKeras's label contradicts the values the quantizer
 * produces, heteroq follows the values: quantized_bits with `keep_negative = False` is unsigned
 * (and never mode 2), quantized_relu and quantized_relu_po2 with a `negative_slope` are signed,
 * `binary(use_01=True)` is `(4, 1, unsigned)`. QKeras has no entry for quantized_sigmoid
 * (heteroq: `(0, bits, unsigned)`) or quantized_hswish (`(0, bits, signed)`).
 */
HETEROQ_API OperandType operand_type(const QuantizerPtr& q);

/// "fixed", "po2", "ternary", "binary", "binary01", "float".
HETEROQ_API const char* operand_mode_name(OperandMode mode);

// ---------------------------------------------------------------------------------------------
// Operation types (QKeras get_operation_type's wx_table)

/// The hardware operation a weight x input product needs (QKeras's names).
enum class OpType {
  kMult,    ///< "mult": a fixed-point multiplier
  kBarrel,  ///< "barrel": a barrel shifter (a power of two times a fixed-point value)
  kMux,     ///< "mux": a multiplexer (selects +-x or 0)
  kXor,     ///< "xor": an xor gate (sign products)
  kAdder,   ///< "adder": an adder of exponents (power of two times power of two)
  kFmult,   ///< "fmult": a floating-point multiplier (an operand is not quantized)
};

/**
 * QKeras's table `wx_table[weight][input]`:
 *
 *     w \ x     fixed   po2     tern   bin    bin01  float
 *     fixed     mult    barrel  mux    mux    mux    fmult
 *     po2       barrel  adder   mux    xor    mux    fmult
 *     tern      mux     mux     mux    mux    xor    fmult
 *     bin       mux     xor     mux    xor    xor    fmult
 *     bin01     mux     mux     xor    xor    xor    fmult
 *     float     fmult   fmult   fmult  fmult  fmult  fmult
 */
HETEROQ_API OpType op_type(OperandMode weight, OperandMode input);

/// "mult", "barrel", "mux", "xor", "adder", "fmult".
HETEROQ_API const char* op_type_name(OpType type);

/**
 * QKeras's operation name: `(s|u) + type + "_" + weight bits + "_" + input bits`, "s" when either
 * operand is signed, e.g. `smult_6_8`. An unknown input (nullopt) gives QKeras's `null` name with
 * input bits -1 and the prefix QKeras computes for it (the unknown sign counts as -1, so the
 * prefix is "u"), e.g. `unull_6_-1`.
 */
HETEROQ_API std::string operation_name(const OperandType& weight,
                                       const std::optional<OperandType>& input);

// ---------------------------------------------------------------------------------------------
// What qstats needs to know of a layer

/**
 * How qstats treats a layer.
 *
 * Adding a layer family: a kind here, its name in layer_kind_name()/layer_kind_from_name(), its
 * operations and weights in qstats.cpp (`layer_stages`), its description in describe_layer()
 * (C++) and in `heteroq/cost.py` (`_describe`, Python). A layer without multiply-accumulates
 * only needs its type name in qstats.cpp's `pass_through_types`.
 */
enum class LayerKind {
  /// `y = x W^T + b` per position (QLinear, torch Linear, QLinearBatchNorm with its folded
  /// weights): in_channels = in_features, out_channels = out_features.
  kDense,
  /// A convolution with a kernel `(out, in/groups, k...)` (QConv1d/2d, QDepthwiseConv2d,
  /// QConv2dBatchNorm with its folded weights, torch Conv1d/2d/3d).
  kConv,
  /// A transposed convolution with a kernel `(in, out/groups, k...)` (QConvTranspose2d, torch
  /// ConvTranspose1d/2d/3d).
  kConvTranspose,
  /// QSeparableConv1d/2d: a depthwise convolution (in -> in * depth_multiplier, no bias), then a
  /// 1x1 pointwise one.
  kSeparableConv,
  /// QActivation, QAdaptiveActivation: the output takes the type of the quantizer in slot
  /// "activation".
  kActivation,
  /**
   * A recurrent layer, every layer and direction of it (QSimpleRNN, QLSTM, QGRU, torch's RNN,
   * LSTM, GRU): in_channels = input_size, out_channels = hidden_size H, `gates` G (1, 4, 3),
   * `num_layers`, `bidirectional`, `batch_first`, `reset_after`; the sequence length T comes
   * from the input shape. Per layer l and direction: a stage "kernel" (T·G·H·I_l products of the
   * input kernel, I_0 = in_channels, I_l = D·H) and a stage "recurrent" (T·G·H·H products of the
   * recurrent kernel); see qstats() for their operand types.
   */
  kRecurrent,
  /// No multiply-accumulate operations: batch norms, pooling, reshapes, dropout, float
  /// activations (their type name is looked up in a table: the output keeps the input's type, or
  /// takes the quantizer in slot "activation" if the layer has one, as QAvgPool2d); a type
  /// heteroq does not know makes the output's type unknown, and is an error if it has parameters.
  kOther,
};

/// "dense", "conv", "conv_transpose", "separable_conv", "activation", "recurrent", "other".
HETEROQ_API const char* layer_kind_name(LayerKind kind);
/// The inverse of layer_kind_name(). @throws heteroq::InvalidArgument for another name.
HETEROQ_API LayerKind layer_kind_from_name(const std::string& name);

/**
 * One layer as qstats sees it: plain data, built from a module by describe_layer() (C++) or by
 * `heteroq.cost` (Python), or by hand for a model qstats cannot walk.
 */
struct HETEROQ_API LayerInfo {
  std::string name;  ///< the module's path in the model, e.g. "0" or "features.3"
  std::string type;  ///< the module's class, e.g. "QLinear", "Conv2d", "ReLU"
  LayerKind kind = LayerKind::kOther;
  std::vector<int64_t> input_shape;   ///< with the batch dimension
  std::vector<int64_t> output_shape;  ///< with the batch dimension
  /// The layer's quantizer slots in its order, by QKeras's slot name ("kernel_quantizer",
  /// "depthwise_quantizer", "pointwise_quantizer", "bias_quantizer", "activation",
  /// "average_quantizer", "gamma_quantizer", "recurrent_quantizer", "state_quantizer",
  /// "recurrent_activation", ...); nullptr for an empty slot (a float function in an activation
  /// slot of a recurrent layer is an empty slot).
  std::vector<std::pair<std::string, QuantizerPtr>> quantizers;
  int64_t parameters = 0;  ///< the number of values in the module's parameters (PyTorch's count)

  // The multiply-accumulate kinds (kDense, kConv, kConvTranspose, kSeparableConv, kRecurrent):
  int64_t in_channels = 0;   ///< in_features for kDense, input_size for kRecurrent
  int64_t out_channels = 0;  ///< out_features for kDense, hidden_size for kRecurrent
  int64_t groups = 1;
  int64_t depth_multiplier = 1;      ///< kSeparableConv
  std::vector<int64_t> kernel_size;  ///< empty for kDense and kRecurrent
  /// kConv with zero padding (heteroq's convolutions and folded convolutions): one value per
  /// spatial axis; empty: unknown (other padding modes, "same" with an even kernel, ...). With
  /// them the per-element input widths of a FixedQuantizer are summed exactly over the taps of
  /// each weight, zero padding costing nothing (as the H layers' EBOPs).
  std::vector<int64_t> stride, padding, dilation;
  /// Whether the layer adds a bias (folded layers always do; recurrent layers: bias_ih and
  /// bias_hh, both quantized by "bias_quantizer").
  bool bias = false;
  // kRecurrent:
  int64_t gates = 1;           ///< G: 1 (simple RNN), 4 (LSTM: i, f, g, o), 3 (GRU: r, z, n)
  int64_t num_layers = 1;      ///< stacked layers
  bool bidirectional = false;  ///< a reversed pass per layer (D = 2 directions)
  bool batch_first = false;    ///< the input is (N, L, in) rather than (L, N, in)
  /// A GRU's formulation (gates 3): true (PyTorch's), the candidate's recurrent products take
  /// the state h; false (Keras's), they take `r h`, a product of gate and state values.
  bool reset_after = true;
  /**
   * Per output channel `{P, N, c}`: the sums of the positive (P) and of the negative (N) weight
   * values the forward pass uses (quantized, folded), and the bias (c). For inputs in [lo, hi]
   * (containing 0) the channel's accumulator lies in `[P lo + N hi + c, P hi + N lo + c]`.
   * accumulator_channel_sums() computes them; empty: no accumulator analysis. kRecurrent: the
   * first layer's input projection `x W_ih^T + b_ih`, D·G·H rows (the forward direction's G·H
   * rows, then the reverse one's).
   */
  std::vector<std::array<double, 3>> channel_sums;
  /**
   * The values the forward pass multiplies its input by and adds to it, by group (qstats does not
   * read them; the BOPs/EBOPs and FPGA estimates of heteroq/cost/hardware.h do): "weights" (dense
   * and convolutions: the quantized kernel, folded and quantized for QLinearBatchNorm and
   * QConv2dBatchNorm, in the module's layout), "weights_0" and "weights_1" (separable: depthwise
   * and pointwise kernels), for recurrent layers "kernel" and "recurrent" ("kernel_l1",
   * "recurrent_l1", ... with num_layers > 1: per layer, the directions' (G·H, I_l) and (G·H, H)
   * matrices concatenated along dim 0, gates in PyTorch's order), "bias" (every bias value the
   * layer adds; recurrent: bias_ih then bias_hh per layer and direction, flattened), and for batch
   * norms "scale" and "shift" (per channel, `y = x scale + shift`, in eval mode). Empty: unknown
   * (the cost models then assume every weight non-zero and as wide as its quantizer).
   */
  std::vector<std::pair<std::string, at::Tensor>> values;

  /// The quantizer in slot `slot` (nullptr if the slot is empty or absent).
  QuantizerPtr quantizer(const std::string& slot) const;
};

// ---------------------------------------------------------------------------------------------
// Quantizers with widths per channel or element

/**
 * The quantizer the cost models price `q` as: `q` itself, except a heteroq::FixedQuantizer
 * ("fixed", integer widths per tensor, channel or element, e.g. from HGQ-style training):
 * `quantized_bits(k + i + f, i, keep_negative=k, alpha=1)` with k, i and f the largest sign flag,
 * integer bits and fractional bits over its elements of width k + i + f > 0 (f at least 0): the
 * narrowest fixed-point type that holds every element's values. For uniform widths it is the
 * quantized_bits the fixed quantizer equals (`fixed(6,2)` -> `quantized_bits(6,2,alpha=1)`), so a
 * uniform FixedQuantizer costs what that quantized_bits costs in every model. A quantizer whose
 * every element has width 0 (always 0) is priced as `quantized_bits(1,0,keep_negative=False)`.
 * bops() prices each weight of a FixedQuantizer at its own width (bit_widths()); the other
 * models (qstats's operation names, QTools's types, the FPGA estimate's accumulator widths) use
 * this type. nullptr stays nullptr.
 */
HETEROQ_API QuantizerPtr cost_quantizer(const QuantizerPtr& q);

/// `layers` with every quantizer slot replaced by cost_quantizer() of it.
HETEROQ_API std::vector<LayerInfo> with_cost_quantizers(const std::vector<LayerInfo>& layers);

/// Whether a slot of `layers` (or `extra`) holds a quantizer cost_quantizer() replaces.
HETEROQ_API bool has_cost_replacements(const std::vector<LayerInfo>& layers,
                                       const QuantizerPtr& extra = nullptr);

// ---------------------------------------------------------------------------------------------
// Results

/// One kind of multiply-accumulate operation of a layer.
struct HETEROQ_API Operation {
  /// "" for single-stage layers; "depthwise" and "pointwise" for separable convolutions;
  /// "kernel" and "recurrent" for recurrent layers ("kernel_l0", "recurrent_l0", "kernel_l1", ...
  /// with num_layers > 1), and "recurrent_n" for the candidate's rows of a GRU with
  /// reset_after = false.
  std::string part;
  OperandType weight;
  std::optional<OperandType> input;  ///< nullopt: the input's type is unknown
  std::optional<OpType> type;        ///< nullopt when the input is unknown ("null")
  int64_t count = 0;                 ///< multiply-accumulates per sample
  std::string name;                  ///< operation_name(weight, input), e.g. "smult_6_8"
};

/// A group of stored values of a layer (QKeras's "weight profiling").
struct HETEROQ_API WeightStats {
  /// "weights", or "weights_0"/"weights_1" (separable), or the stage's part (recurrent:
  /// "kernel", "recurrent", ...), "bias"
  std::string name;
  int64_t count = 0;
  int64_t bits = 32;      ///< the operand width of its quantizer (32: not quantized)
  std::string quantizer;  ///< its quantizer's spec, "" if not quantized
};

/// The range of a layer's accumulator (the sum before any activation, bias included) over every
/// output channel, for inputs in the range of the layer's input quantizer. Recurrent layers: the
/// first layer's input projection `x W_ih^T + b_ih` (its first operation, the stage "kernel").
struct HETEROQ_API AccumulatorStats {
  double min = 0, max = 0;
  /// `ceil(log2(max(|min|, |max|)))`, the integer bits QKeras's analyze_accumulator reports
  /// (sign excluded; 0 when the accumulator is always 0).
  int64_t bits = 0;
};

struct HETEROQ_API LayerStats {
  std::string name, type;
  LayerKind kind = LayerKind::kOther;
  std::vector<int64_t> input_shape, output_shape;
  std::vector<std::pair<std::string, std::string>> quantizers;  ///< slot -> spec ("" if empty)
  /// The quantizer the layer's input comes from (its spec): "" when the input is not quantized,
  /// nullopt when heteroq cannot tell (it follows a layer of unknown type).
  std::optional<std::string> input_quantizer;
  std::optional<OperandType> input;  ///< the input's operand type; nullopt: unknown
  int64_t parameters = 0;
  std::vector<Operation> operations;
  std::vector<WeightStats> weights;
  /// Set for multiply-accumulate layers whose input is quantized and weights are known.
  std::optional<AccumulatorStats> accumulator;
};

struct HETEROQ_API QStats {
  std::vector<LayerStats> layers;  ///< in execution order
  /// Multiply-accumulates per sample by operation name, sorted by name (QKeras's "Number of
  /// operation types in model").
  std::vector<std::pair<std::string, int64_t>> operation_totals;
  int64_t total_operations = 0;
  /// QKeras's "Total Bits": the sum over the weight groups of count x bits.
  int64_t total_bits = 0;
  int64_t total_parameters = 0;

  /// The QKeras-like table print_qstats() prints.
  std::string to_string() const;
  /// Everything above as JSON (the format heteroq.cost reads).
  std::string to_json() const;
};

HETEROQ_API std::ostream& operator<<(std::ostream& os, const QStats& stats);

// ---------------------------------------------------------------------------------------------
// Entry points

/**
 * The statistics of a chain of layers in execution order (each layer's input is the previous
 * layer's output; the first one's comes from `input_quantizer`, QKeras's default
 * quantized_relu(8,0); an empty QuantizerArg: a float input).
 *
 * Types propagate as in QKeras: a QActivation's output has its quantizer's type (describe_layer
 * gives a QAdaptiveActivation its current quantizer, per channel the widest); a
 * multiply-accumulate layer's output is not quantized (float, QKeras's "linear" activation);
 * batch norms, pooling, reshapes and float activations keep their input's type (QAvgPool2d and
 * QGlobalAvgPool2d take their `activation` quantizer's type if they have one); a parameter-free
 * layer of unknown type makes the type unknown, and multiply-accumulates on an unknown input get
 * QKeras's "null" name.
 *
 * Recurrent layers (QKeras's estimate.py skips them and passes their input's type on): the
 * output of a simple RNN (G = 1) has the type of its "activation" quantizer (float for a float
 * function), that of an LSTM or GRU is float (`o act(c)`, `(1 - z) n + z h`: products and blends
 * of gate values that no quantizer requantizes). The first layer's stage "kernel" multiplies the
 * layer's input; a later layer's, the previous layer's output (the output type); every stage
 * "recurrent" multiplies the previous state h, of the type of "state_quantizer" if there is one,
 * else the output type. A GRU with reset_after = false multiplies the candidate's H rows of the
 * recurrent kernel by `r h` instead (float): a stage "recurrent_n" (whose weights are counted in
 * "recurrent").
 *
 * @throws heteroq::InvalidArgument for a layer of unknown type with parameters, inconsistent
 *         shapes or geometry (the message names the layer).
 */
HETEROQ_API QStats qstats(const std::vector<LayerInfo>& layers,
                          const nn::QuantizerArg& input_quantizer = "quantized_relu(8,0)");

/**
 * The statistics of `model` for an input of `input_shape` (the batch dimension included; the
 * counts are per sample): runs one forward pass on zeros layer by layer (in eval mode without
 * gradients; the training flags are restored), describes each layer with describe_layer()
 * (nested Sequentials are walked; their layers are named "0.1", ...) and calls qstats(layers).
 * A recurrent layer (which returns `(output, state)`, so that Sequential::forward cannot chain
 * it) passes its output sequence on to the next layer.
 *
 * Example:
 *   auto stats = heteroq::cost::qstats(model, {1, 16});
 *   stats.operation_totals;   // {{"smult_6_6", 3232}, {"smult_6_8", 1024}}
 *
 * @throws heteroq::InvalidArgument for a bad `input_shape` (the message names the layer whose
 *         forward pass failed), or as qstats(layers).
 */
HETEROQ_API QStats qstats(torch::nn::Sequential model, const std::vector<int64_t>& input_shape,
                          const nn::QuantizerArg& input_quantizer = "quantized_relu(8,0)");

/**
 * The layers of `model` as the cost models see them, for an input of `input_shape` (the batch
 * dimension included): runs one forward pass on zeros layer by layer (in eval mode without
 * gradients; the training flags are restored) and describes each layer with describe_layer()
 * (nested Sequentials are walked; their layers are named "0.1", ...). qstats(model, ...) and the
 * other cost models of this namespace start from it.
 *
 * @throws heteroq::InvalidArgument for a null model or a bad `input_shape` (the message names
 *         the layer whose forward pass failed).
 */
HETEROQ_API std::vector<LayerInfo> describe_model(torch::nn::Sequential model,
                                                  const std::vector<int64_t>& input_shape);

/// qstats(model, input_shape, input_quantizer), printed to `os` (QKeras's print_qstats).
HETEROQ_API QStats print_qstats(torch::nn::Sequential model,
                                const std::vector<int64_t>& input_shape,
                                const nn::QuantizerArg& input_quantizer = "quantized_relu(8,0)",
                                std::ostream& os = std::cout);

/**
 * Describes one module for qstats(layers): its kind, quantizer slots, parameter count, geometry
 * and accumulator sums (from the weights its forward pass uses: quantized, and folded for
 * QConv2dBatchNorm/QLinearBatchNorm with the running statistics, as QKeras's unfold_model; call
 * it in eval mode). Every heteroq layer and torch's Linear, Conv1d/2d/3d, ConvTranspose1d/2d/3d,
 * RNN, LSTM and GRU are multiply-accumulate layers; any other module is LayerKind::kOther.
 *
 * @throws heteroq::InvalidArgument for a torch::nn::LSTM with `proj_size` (not supported).
 */
HETEROQ_API LayerInfo describe_layer(const torch::nn::Module& module, const std::string& name,
                                     const std::vector<int64_t>& input_shape,
                                     const std::vector<int64_t>& output_shape);

/**
 * The operator `heteroq::_qstats_channel_sums(Tensor weight, Tensor? bias, int groups,
 * bool transposed, Tensor? input_sums=None) -> Tensor`: per output channel `{P, N, c}` (float64,
 * shape (C_out, 3)), P and N the sums of the positive and of the negative kernel values, c the
 * bias. `weight` is `(out, in/groups, k...)` (Linear: (out, in)), or `(in, out/groups, k...)`
 * when transposed. With `input_sums` (C_in, 3), the sums of a previous stage whose output feeds
 * this one (the depthwise part of a separable convolution), the result is the composition: for
 * inputs x in [lo, hi] (containing 0) the output channel lies in
 * `[P lo + N hi + c, P hi + N lo + c]`.
 */
HETEROQ_API at::Tensor accumulator_channel_sums(
    const at::Tensor& weight, const std::optional<at::Tensor>& bias, int64_t groups,
    bool transposed, const std::optional<at::Tensor>& input_sums = std::nullopt);

}  // namespace heteroq::cost
