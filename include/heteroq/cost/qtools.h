// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// QTools (QKeras qkeras/qtools): the data-type map of a model (per layer the input, weight, bias
// and output types, the multiplier that implements each product, the accumulator and bias-adder
// widths, the operation count), its energy estimate in pJ (Horowitz, ISSCC 2014, 45 nm) and its
// size in bits (AutoQKeras's "bits" goal). Plain data in, plain data out: the layers come from
// describe_model() (C++) or heteroq.cost.describe (Python), as for qstats(). docs/qtools.md gives
// the formulas and the deviations from QTools.
#pragma once

#include <torch/nn/modules/container/sequential.h>

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "heteroq/cost/qstats.h"
#include "heteroq/export.h"

namespace heteroq::cost {

// ---------------------------------------------------------------------------------------------
// Options

/**
 * The options of QTools(...) and QTools.pe(...), with QTools's defaults (its config_public.py).
 *
 * Types are given as QTools names them: "int8" (quantized_bits(8,0,1)), "int16"
 * (quantized_bits(16,7,1)), "int32" (quantized_bits(32,10,1)), "fp16", "fp32" (float), or any
 * heteroq quantizer spec, e.g. "quantized_relu(8,0)".
 */
struct HETEROQ_API QToolsOptions {
  /// The energy tables: "horowitz" (the only process QTools ships).
  std::string process = "horowitz";
  /// Where the weights live: "dram", "sram" or "fixed" (free: hard-wired). QTools pe()'s default.
  std::string weights_on_memory = "dram";
  /// Where the intermediate activations live: "dram", "sram" or "fixed".
  std::string activations_on_memory = "dram";
  /// The smallest SRAM (bits) an access is priced at: `log2(max(bits, min_sram_size))`.
  int64_t min_sram_size = 0;
  /// The model's input is read from and its output written to DRAM (through SRAM); false: SRAM.
  bool rd_wr_on_io = true;
  /**
   * The type of the model's input. QTools's default, quantized_bits(8,0,1): signed 8-bit values,
   * where print_qstats/qstats() assume quantized_relu(8,0) (unsigned); pass
   * "quantized_relu(8,0)" to price the input as qstats() counts it.
   */
  std::string source_quantizer = "quantized_bits(8,0,1)";
  /// QTools's default_interm_quantizer: the type of a value no quantizer defines (an empty slot
  /// of a quantized layer, the weights and outputs of float layers without keras_*).
  std::string default_quantizer = "quantized_bits(8,0,1)";
  /// QTools's keras_quantizer: the weights and biases of float layers ("": default_quantizer).
  std::string keras_quantizer;
  /// QTools's keras_accumulator: the products, accumulators and outputs of float layers and the
  /// outputs of float activations ("": default_quantizer).
  std::string keras_accumulator;
  /**
   * The reference model of AutoQKeras's energy goal (QTools with for_reference=True, as
   * ForgivingFactorPower builds it): every weight and bias and the input at reference_internal,
   * every product, accumulator and activation at reference_accumulator, whatever the layers'
   * quantizers.
   */
  bool for_reference = false;
  std::string reference_internal = "int8";      ///< "int8", "fp16" or "fp32" (AutoQKeras)
  std::string reference_accumulator = "int32";  ///< "int16", "int32", "fp16" or "fp32"
  /// A layer of a type the cost model does not know: false, an error naming it; true, it costs 0,
  /// passes its input's type on and is listed in the reports' `counted_as_zero`.
  bool unknown_layers_as_zero = false;
  /**
   * Zero weights cost nothing (pruned weights, or weights quantized to 0): a multiply-accumulate
   * stage counts only the products of its non-zero weights (multipliers and accumulator
   * additions), and only its non-zero weights and biases are read and stored (energy and
   * model_size). It needs the layers' values (LayerInfo::values, which describe_layer and
   * heteroq.cost.describe give in eval mode); a stage without values counts every weight. False
   * (QTools, AutoQKeras): every weight counts, whatever its value.
   */
  bool skip_zero_weights = false;
  /// model_size(): the bits of a float value (AutoQKeras's ref_bits), of the model's input
  /// (input_bits) and of softmax/sigmoid outputs (output_bits).
  int64_t ref_bits = 8;
  int64_t input_bits = 8;
  int64_t output_bits = 8;

  /// @throws heteroq::InvalidArgument naming the first bad option.
  void validate() const;
};

// ---------------------------------------------------------------------------------------------
// Types and operators

/// A value type as QTools represents it (its IQuantizer).
struct HETEROQ_API QType {
  /// QTools's quantizer class name: "quantized_bits", "quantized_relu", "quantized_po2",
  /// "quantized_relu_po2", "binary", "ternary", "floating_point", ...
  std::string name = "quantized_bits";
  OperandMode mode = OperandMode::kFixed;
  int64_t bits = 8;
  /// Integer bits, the sign excluded (QTools's int_bits; its JSON adds the sign bit for
  /// quantized_bits); -1 for floats.
  int64_t int_bits = 0;
  bool is_signed = true;
  bool is_floating_point = false;
  bool is_po2 = false;
  double max_value = -1;  ///< a power-of-two type's max_value (-1: none)

  /// `bits - int_bits - is_signed`.
  int64_t fractional_bits() const { return bits - int_bits - (is_signed ? 1 : 0); }
  /// Compact: "fp32", "q<19,10,s>" (bits, integer bits, signed), "po2<4,s>", "ternary",
  /// "binary", "binary01".
  std::string to_string() const;
  bool operator==(const QType& o) const;
  bool operator!=(const QType& o) const { return !(*this == o); }
};

/**
 * The QTools type of a quantizer (QTools's QuantizerFactory): quantized_bits `(bits, integer,
 * keep_negative)` (mode 0, as QTools, even for quantized_bits(2,1)), quantized_relu (mode 4 for
 * `(1,1)`), quantized_tanh and quantized_ulaw, quantized_po2 and quantized_relu_po2 (their
 * max_value), binary, stochastic_binary, bernoulli, ternary, stochastic_ternary. Quantizers QTools
 * does not know (quantized_sigmoid, quantized_hswish, ...) take their operand_type() and their
 * `integer`. @throws heteroq::InvalidArgument for a null quantizer.
 */
HETEROQ_API QType qtools_type(const QuantizerPtr& q);
/// "int8", "int16", "int32", "fp16", "fp32" or a quantizer spec. @throws heteroq::InvalidArgument.
HETEROQ_API QType qtools_type(const std::string& spec);

/// One arithmetic unit of a layer and its cost parameters.
struct HETEROQ_API QToolsOperator {
  std::string part;  ///< the stage ("", "depthwise", "pointwise", "kernel", "recurrent", ...)
  /// "multiplier", "accumulator", "divider", "adder"
  std::string role;
  /// QTools's class: FixedPointMultiplier, Shifter, Mux, XorGate, AndGate, Adder,
  /// FloatingPointMultiplier, FixedPointAccumulator, Po2Accumulator, FloatingPointAccumulator,
  /// FloatingPointDivider, Subtractor, FixedPointAdder, FloatingPointAdder, ...
  std::string kind;
  std::string
      implemented_as;  ///< the energy table entry: "mul", "shifter", "mux", "xor", "and", "add"
  QType output;
  double gate_factor = 1;  ///< relative to an adder
  double gate_bits = 0;
  int64_t count = 0;   ///< operations per sample
  bool priced = true;  ///< false: reported, not in op_cost (QTools prices no batch-norm adder)
};

/// A group of stored values (weights, bias, batch-norm statistics) and its type.
struct HETEROQ_API QToolsParameters {
  std::string name;  ///< "kernel", "depthwise", "pointwise", "recurrent", "bias", "gamma", ...
  int64_t count = 0;
  QType type;
};

/// One multiply-accumulate stage (one per kernel: two for separable convolutions, two per layer
/// and direction... for recurrent layers).
struct HETEROQ_API QToolsStage {
  std::string part;
  QType weight, input;
  int64_t operations = 0;  ///< multiply-accumulates per sample
  int64_t fan_in = 0;      ///< products summed into one accumulator
  QType multiplier;        ///< the product's type
  /// The accumulator: `ceil(log2(fan_in))` bits wider than the product, then the bias added
  /// (QTools's FixedPointAdder: one more integer bit) if the stage has one.
  QType accumulator;
};

/// One layer of the data-type map.
struct HETEROQ_API LayerDataType {
  std::string name, type;
  LayerKind kind = LayerKind::kOther;
  /// How QTools treats it: "mac", "activation", "float_activation", "batchnorm", "avg_pool",
  /// "max_pool", "reshape", "upsample", "pass", "unknown" (counted as zero).
  std::string role;
  std::vector<int64_t> input_shape, output_shape;
  QType input, output;
  int64_t operation_count = 0;  ///< QTools's get_operation_count (per sample)
  std::vector<QToolsStage> stages;
  std::vector<QToolsParameters> parameters;
  std::vector<QToolsOperator> operators;
  bool counted_as_zero = false;
};

struct HETEROQ_API DataTypeMap {
  std::vector<LayerDataType> layers;
  QType source;                              ///< the model input's type
  std::vector<std::string> counted_as_zero;  ///< the layers of unknown type priced at 0
  std::string to_string() const;             ///< a table
  std::string to_json() const;
};

// ---------------------------------------------------------------------------------------------
// Reports

struct HETEROQ_API LayerEnergy {
  std::string name, type, role;
  /// pJ per sample: reading the input, reading the parameters, the arithmetic, writing the output.
  double inputs = 0, parameters = 0, op_cost = 0, outputs = 0;
  /// The components QTools's include_energy sums for this layer ("outputs" for activations,
  /// "parameters" for batch norms, "op_cost" for max pooling, else inputs, parameters, op_cost).
  std::vector<std::string> included;
  double total = 0;  ///< the sum of the included components
  bool counted_as_zero = false;
};

struct HETEROQ_API EnergyReport {
  std::vector<LayerEnergy> layers;
  double total = 0;  ///< pJ: the sum of the layers' totals
  /// QTools's extract_energy_sum (what AutoQKeras's energy goal compares): the included
  /// components rounded to 2 decimals (as pe() reports them), summed, truncated to an integer.
  int64_t qtools_total = 0;
  /// pe()'s "total_cost": every component of every layer, summed, truncated.
  int64_t total_cost = 0;
  std::vector<std::string> counted_as_zero;
  std::string to_string() const;
  std::string to_json() const;
};

struct HETEROQ_API LayerSize {
  std::string name, type;
  int64_t parameter_bits = 0, activation_bits = 0;
  int64_t reference_parameter_bits = 0, reference_activation_bits = 0;
};

/// AutoQKeras's "bits" goal (ForgivingFactorBits.compute_model_size with both "parameters" and
/// "activations").
struct HETEROQ_API SizeReport {
  std::vector<LayerSize> layers;
  int64_t input_bits = 0;  ///< the model input: input_bits per value
  int64_t parameter_bits = 0, activation_bits = 0, total_bits = 0;
  /// The same model with every weight and activation at ref_bits (AutoQKeras's reference).
  int64_t reference_parameter_bits = 0, reference_activation_bits = 0, reference_total_bits = 0;
  std::vector<std::string> counted_as_zero;
  std::string to_string() const;
  std::string to_json() const;
};

HETEROQ_API std::ostream& operator<<(std::ostream& os, const DataTypeMap& map);
HETEROQ_API std::ostream& operator<<(std::ostream& os, const EnergyReport& report);
HETEROQ_API std::ostream& operator<<(std::ostream& os, const SizeReport& report);

// ---------------------------------------------------------------------------------------------
// Entry points

/**
 * QTools's data-type map of a chain of layers (each layer's input is the previous one's output;
 * the first one's has the type `options.source_quantizer`).
 *
 * @throws heteroq::InvalidArgument for a bad option (named), a layer of unknown type (named;
 *         unless `options.unknown_layers_as_zero`), inconsistent shapes or geometry (named).
 */
HETEROQ_API DataTypeMap data_types(const std::vector<LayerInfo>& layers,
                                   const QToolsOptions& options = {});
/// QTools's energy estimate (QTools.pe() and extract_energy_sum()). Throws as data_types().
HETEROQ_API EnergyReport energy(const std::vector<LayerInfo>& layers,
                                const QToolsOptions& options = {});
/// The energy of a data-type map computed before; `options` gives the memory model (the same
/// numbers as energy(layers, options) when the map was made with `options`).
HETEROQ_API EnergyReport energy(const DataTypeMap& map, const QToolsOptions& options = {});
/// AutoQKeras's "bits" goal: parameter and activation bits, and the reference at ref_bits.
/// Throws as data_types().
HETEROQ_API SizeReport model_size(const std::vector<LayerInfo>& layers,
                                  const QToolsOptions& options = {});

/// The same for `model` on an input of `input_shape` (batch dimension included): describe_model()
/// then the function above. Example:
///   auto e = heteroq::cost::energy(model, {1, 16});
///   e.total;   // pJ per sample
HETEROQ_API DataTypeMap data_types(torch::nn::Sequential model,
                                   const std::vector<int64_t>& input_shape,
                                   const QToolsOptions& options = {});
HETEROQ_API EnergyReport energy(torch::nn::Sequential model,
                                const std::vector<int64_t>& input_shape,
                                const QToolsOptions& options = {});
HETEROQ_API SizeReport model_size(torch::nn::Sequential model,
                                  const std::vector<int64_t>& input_shape,
                                  const QToolsOptions& options = {});

}  // namespace heteroq::cost
