// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// BOPs and EBOPs (HGQ's effective bit operations), and an FPGA resource and latency estimate of a
// fully unrolled implementation (hls4ml's "latency" strategy, reuse factor 1), from the layer
// descriptions of heteroq/cost/qstats.h: the operation counts and operand types come from
// qstats(), the weight values from LayerInfo::values. docs/hardware.md derives every formula and
// compares the FPGA estimate with published synthesis results.
#pragma once

#include <torch/nn/modules/container/sequential.h>

#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include "heteroq/cost/qstats.h"
#include "heteroq/export.h"
#include "heteroq/nn/layers.h"

namespace heteroq::cost {

// ---------------------------------------------------------------------------------------------
// Bit widths

/**
 * HGQ's exact bit span of a constant: the number of bits from its highest to its lowest non-zero
 * bit, sign excluded (`|v| = m 2^e` with m odd: the bit length of m). 0 for 0; e.g. 0.75
 * (0.11b) has span 2, 0.625 (0.101b) span 3, 0.5 and -4 span 1.
 * @throws heteroq::InvalidArgument for a value that is not finite.
 */
HETEROQ_API int64_t bit_span(double value);

// ---------------------------------------------------------------------------------------------
// BOPs and EBOPs

/// Options of bops().
struct HETEROQ_API BopsOptions {
  /// The quantizer the model's input comes from (as qstats; empty: a float input, 32 bits).
  nn::QuantizerArg input_quantizer = "quantized_relu(8,0)";
  /// A layer the cost models do not know (a type qstats cannot type, with or without parameters)
  /// is an error naming it; true: it costs zero, passes its input's type on, and is listed in
  /// BopsReport::zero_cost_layers.
  bool unknown_layers_as_zero = false;
};

/// The BOPs and EBOPs of one layer (per sample).
struct HETEROQ_API LayerBops {
  std::string name, type;
  LayerKind kind = LayerKind::kOther;
  /// Multiplications with a non-zero weight (a pruned weight costs nothing).
  int64_t multiplications = 0;
  /// Σ over the multiplications of (weight quantizer width) x (input width).
  int64_t bops = 0;
  /// Σ over the multiplications of (the weight's exact bit span) x (input width), plus bias_ebops.
  double ebops = 0;
  /// HGQ2's bias term: the mean exact bit span of the bias values x the bias additions.
  double bias_ebops = 0;
  /// False when the layer's values were not described (LayerInfo::values empty): every weight
  /// counts as non-zero and as wide as its quantizer.
  bool exact = true;
  /// An unknown layer counted as zero (BopsOptions::unknown_layers_as_zero).
  bool zero_cost = false;
};

/// What bops() returns.
struct HETEROQ_API BopsReport {
  std::vector<LayerBops> layers;              ///< every layer, in execution order
  int64_t bops = 0;                           ///< the sum over the layers
  double ebops = 0;                           ///< the sum over the layers
  int64_t multiplications = 0;                ///< the sum over the layers
  std::vector<std::string> zero_cost_layers;  ///< the unknown layers counted as zero

  /// A table: per layer multiplications, BOPs, EBOPs (bias term); the totals.
  std::string to_string() const;
  /// Everything above as JSON (the format heteroq.cost reads).
  std::string to_json() const;
};

HETEROQ_API std::ostream& operator<<(std::ostream& os, const BopsReport& report);

/**
 * BOPs and EBOPs per layer and in total, per sample.
 *
 * Every multiply-accumulate stage of qstats() (a kernel, a separable convolution's depthwise and
 * pointwise parts, a recurrent layer's input and recurrent kernels per layer; plus a batch norm's
 * per-channel scale, `y = x scale + shift`) multiplies each weight value w by `u` inputs (u =
 * operations / weights: the output positions of a convolution, the time steps of a recurrent
 * layer). With b_x the input's width, its operand type's bits (fixed point: `bits`, the sign
 * included when signed, HGQ's k + i + f; po2: `bits`, sign and exponent code; ternary 2; binary
 * and 0/1 binary 1; not quantized 32):
 *
 *     BOPs  = Σ_{w != 0} u b_x b_w            b_w: the weight quantizer's width (32: float)
 *     EBOPs = Σ_w u b_x span(w) + mean_b span(b) A
 *
 * span() is bit_span(), the HGQ paper's exact width of a constant (0 for a zero weight: pruned
 * weights cost nothing); the last term is HGQ2's bias term, the bias values' mean span times A,
 * the number of bias additions per sample (a dense or convolution layer: its output values; a
 * recurrent layer: the time steps times its bias values; a batch norm: its output values, with
 * its shift as the bias). A layer without values (LayerInfo::values empty) counts every weight as
 * non-zero with span b_w, every bias with the bias quantizer's width.
 *
 * @throws heteroq::InvalidArgument naming the layer: an unknown layer (unless
 *         `unknown_layers_as_zero`), a multiplication whose input type is unknown, values of the
 *         wrong size, non-finite values; and whatever qstats() throws.
 */
HETEROQ_API BopsReport bops(const std::vector<LayerInfo>& layers,
                            const BopsOptions& options = BopsOptions());

/// bops(describe_model(model, input_shape), options).
HETEROQ_API BopsReport bops(torch::nn::Sequential model, const std::vector<int64_t>& input_shape,
                            const BopsOptions& options = BopsOptions());

// ---------------------------------------------------------------------------------------------
// FPGA resources and latency

/**
 * Options of fpga_estimate(). The defaults of the constants marked "calibrated" were fitted to
 * the published synthesis of the uniform 6-bit jet-tagging MLP (Coelho et al. 2021: VU9P, 200
 * MHz; docs/hardware.md gives the fit and the error); the others are properties of the hardware.
 */
struct HETEROQ_API FpgaOptions {
  /// The quantizer the model's input comes from (empty: not quantized, see `float_bits`).
  nn::QuantizerArg input_quantizer = "quantized_relu(8,0)";
  /// As BopsOptions::unknown_layers_as_zero.
  bool unknown_layers_as_zero = false;
  /// The clock period (ns): 5.0 is 200 MHz.
  double clock_period_ns = 5.0;
  /// Operands that are not quantized (float weights, inputs and outputs of layers without a
  /// quantizer) are hls4ml's default type ap_fixed<float_bits, float_integer_bits> (16, 6); float
  /// weights are rounded to it.
  int64_t float_bits = 16;
  int64_t float_integer_bits = 6;
  /// The DSP rule: a product of a constant weight of bit span s >= 2 and an input of width b_x
  /// goes to DSPs when b_x >= dsp_min_input_bits and s >= dsp_min_weight_span (calibrated), else
  /// to LUTs. A weight of span 1 (a power of two, ±1: every po2, binary and ternary weight) and an
  /// input of 1 or 2 bits (binary, ternary) need no multiplier.
  int64_t dsp_min_input_bits = 10;
  int64_t dsp_min_weight_span = 4;
  /// The DSP multiplier's port widths (DSP48E2: 27 x 18 signed): a product of wider operands takes
  /// ceil(a / 27) ceil(b / 18) DSPs (the better orientation).
  int64_t dsp_port_a_bits = 27;
  int64_t dsp_port_b_bits = 18;
  /// The inputs of one adder: 3 for UltraScale's ternary adders (a LUT6 and the carry chain add
  /// three numbers at one LUT per bit, which Vivado infers for adder trees), 2 for ripple-carry
  /// adders of two inputs. An adder tree of T terms into O sums takes ceil((T - O) /
  /// (adder_inputs - 1)) adders, ceil(log_adder_inputs(T / O)) levels deep.
  int64_t adder_inputs = 3;
  /// The delay of one adder-tree level (ns, calibrated): a layer's adder tree of depth d takes
  /// ceil(d adder_level_ns / clock_period_ns) cycles.
  double adder_level_ns = 1.0;
};

/// The FPGA estimate of one layer.
struct HETEROQ_API FpgaLayer {
  std::string name, type;
  LayerKind kind = LayerKind::kOther;
  int64_t lut = 0;              ///< lut_multipliers + lut_adders + lut_activations
  int64_t lut_multipliers = 0;  ///< the products mapped to LUTs
  int64_t lut_adders = 0;       ///< the adder trees
  int64_t lut_activations = 0;  ///< the activations' rounding, clipping (and lookup) logic
  int64_t dsp = 0;
  int64_t ff = 0;
  int64_t latency_cycles = 0;
  int64_t products_dsp = 0;   ///< products instantiated in DSPs
  int64_t products_lut = 0;   ///< products instantiated in LUTs
  int64_t products_free = 0;  ///< products that need no multiplier (shifts, signs, selects)
  /// The adders' width: the accumulator's integer bits (qstats's exact range), a sign bit and the
  /// fractional bits of the input and weights; 0 for layers without an adder tree.
  int64_t accumulator_bits = 0;
  bool exact = true;       ///< as LayerBops::exact
  bool zero_cost = false;  ///< as LayerBops::zero_cost
};

/// What fpga_estimate() returns.
struct HETEROQ_API FpgaEstimate {
  std::vector<FpgaLayer> layers;  ///< every layer, in execution order
  int64_t lut = 0, dsp = 0, ff = 0;
  int64_t latency_cycles = 0;  ///< the sum of the layers' pipeline depths
  double latency_ns = 0;       ///< latency_cycles x clock_period_ns
  double clock_period_ns = 5.0;
  std::vector<std::string> zero_cost_layers;

  /// LUT + 55 DSP, HGQ's proxy of EBOPs.
  int64_t lut_equivalent() const { return lut + 55 * dsp; }
  /// A table: per layer LUT (multipliers, adders, activations), DSP, FF, cycles; the totals.
  std::string to_string() const;
  /// Everything above as JSON (the format heteroq.cost reads).
  std::string to_json() const;
};

HETEROQ_API std::ostream& operator<<(std::ostream& os, const FpgaEstimate& estimate);

/**
 * The resources and latency of a fully unrolled, pipelined implementation (hls4ml's "latency"
 * strategy, reuse factor 1, io_parallel): every multiplication of a sample is its own product
 * (a recurrent layer: one cell, reused over the time steps), by a constant weight.
 *
 * - Products: a zero weight costs nothing; a weight of bit span 1 or an input of 1 or 2 bits
 *   costs nothing (a shift, a sign, a select, absorbed by the adder tree); the DSP rule of
 *   FpgaOptions sends the others to DSPs, or to LUTs as a shift-and-add constant multiplier of
 *   floor(s / 2) adders (the most a canonical-signed-digit form of span s needs, minus one) of
 *   b_x + s bits each. A recurrent cell's gate products (two variables) cost b_x b_y LUTs or DSPs
 *   by the same rule.
 * - Adder trees: the T terms (non-zero products and biases) of the O output sums take
 *   ceil((T - O) / (k - 1)) adders of k = FpgaOptions::adder_inputs inputs, each of the
 *   accumulator's width (every partial sum has the accumulator's type, as hls4ml's accum_t) at
 *   one LUT per bit; a tree depth of ceil(log_k(T / O)).
 * - Activations (QActivation, a recurrent cell's activations): one LUT per output bit.
 * - Batch norms: a product per value (scale) and an adder (shift).
 * - Latency: a multiply-accumulate layer takes one cycle for its products (if it has any that
 *   need a multiplier) plus its adder tree's cycles (FpgaOptions::adder_level_ns), at least one;
 *   an activation one cycle; a recurrent layer the time steps times its cell's cycles; a layer
 *   without operations (pooling, reshapes, float activations) none.
 * - Flip-flops: every pipeline stage registers its layer's output values: a multiply-accumulate
 *   layer its O sums at the accumulator's width per cycle, an activation its outputs.
 *
 * Not modelled: BRAM, control logic, softmax and other float activations, pooling's comparators,
 * Vivado's cross-layer optimizations; docs/hardware.md gives the error against published results.
 *
 * @throws heteroq::InvalidArgument as bops(), or for options out of range (the message names
 *         the option).
 */
HETEROQ_API FpgaEstimate fpga_estimate(const std::vector<LayerInfo>& layers,
                                       const FpgaOptions& options = FpgaOptions());

/// fpga_estimate(describe_model(model, input_shape), options).
HETEROQ_API FpgaEstimate fpga_estimate(torch::nn::Sequential model,
                                       const std::vector<int64_t>& input_shape,
                                       const FpgaOptions& options = FpgaOptions());

}  // namespace heteroq::cost
