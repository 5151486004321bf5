// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// AutoQ search space: AutoQKeras's hyperparameters (quantizer per layer slot or per limit pattern,
// filter factors) built from a QKeras-format quantization_config and limit, and their decoding into
// a model_quantize config. Torch-free; shared by the C++ and Python APIs.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "heteroq/export.h"

namespace heteroq::autoq {

/// A layer of the float model as the search sees it: its name, its Keras kind ("Dense", "Conv1D",
/// "Conv2D", "DepthwiseConv2D", "Conv2DTranspose", "Activation", "BatchNormalization", ...: the
/// kinds of heteroq::nn::FloatLayer), its activation name for "Activation" layers ("relu",
/// "softmax", "linear", ...), whether it has a bias, and its width (units or filters; 0 if none).
struct HETEROQ_API LayerDesc {
  std::string name;
  std::string kind;
  std::string activation;
  bool has_bias = true;
  int64_t width = 0;
};

/// One categorical hyperparameter. `choices` are quantizer spec strings (kind "quantizer") or
/// filter factors as text (kind "filters"); `bits` gives each choice's bit cost (the factor for
/// filters). `layers` are the layers it applies to (several when it comes from a limit regex),
/// `field` the quantization_config field ("kernel", "bias", "activation", "linear", "filters").
struct HETEROQ_API Param {
  std::string name;
  std::string kind;
  std::string field;
  std::vector<std::string> choices;
  std::vector<double> bits;
  std::vector<std::string> layers;
};

/// Options of SearchSpace::build (AutoQKeras's constructor arguments; JSON values as text).
struct HETEROQ_API SpaceOptions {
  /// QKeras quantization_config: {"kernel": {spec: bits}, "bias": {...}, "activation": {...},
  /// "linear": {...}}; empty: AutoQKeras's default_quantization_config.
  std::string quantization_config;
  /// AutoQKeras limit: {"Dense": [kernel, bias, activation], "Activation": [act], "<regex on layer
  /// name>": [...], "default": n or [k, b, a]}; each value a maximum bit count or a list of spec
  /// strings. Empty: every searchable layer is searched with every quantizer of the config
  /// (QKeras would quantize nothing).
  std::string limit;
  /// model_quantize's activation_bits (for activation layers the config leaves unquantized).
  int64_t activation_bits = 4;
  /// "none", "layer" (one filter factor per layer) or "block" (one for the network).
  std::string tune_filters = "none";
  /// Regex (searched in the layer name) of layers whose filters are not tuned; empty: none.
  std::string tune_filters_exceptions;
  /// Layers left out of the search: they keep `fixed_config`'s entry (if any) or stay float.
  std::vector<std::string> frozen_layers;
  /// Only layers at these indexes (in the LayerDesc list) are searched; nullopt: all.
  std::optional<std::vector<int64_t>> layer_indexes;
  /// model_quantize entries (a JSON object keyed by layer name) added to every trial's config: the
  /// quantizers of frozen layers (the scheduler fixes earlier blocks this way).
  std::string fixed_config;
};

/// Bit-width ranges for SearchSpace::from_bit_ranges; a template's "{bits}" is replaced by each
/// bit width of its inclusive range (an empty range, {0, 0}, leaves the field out).
struct HETEROQ_API BitRanges {
  int64_t kernel_min = 2, kernel_max = 8;
  int64_t bias_min = 4, bias_max = 8;
  int64_t activation_min = 2, activation_max = 8;
  std::string kernel_template = "quantized_bits({bits},0,1,alpha=1)";
  std::string bias_template = "quantized_bits({bits},0,1,alpha=1)";
  std::string activation_template = "quantized_relu({bits},0)";
};

/// A decoded trial: the model_quantize config (JSON text keyed by layer name), the filter factor
/// of each tuned layer, and the bits of each quantized slot ("<layer>/<field>" -> bits).
struct HETEROQ_API TrialConfig {
  std::string quantizer_config;
  std::map<std::string, double> filters;
  std::map<std::string, double> bits;
};

/**
 * The search space of AutoQKeras's AutoQKHyperModel.quantize_model, built once from the layers:
 *  - Dense/Conv1D/Conv2D/DepthwiseConv2D/Conv2DTranspose: a kernel quantizer ("kernel" field,
 *    limit index 0; the slot is depthwise_quantizer for DepthwiseConv2D) and, with a bias, a bias
 *    quantizer (index 1); a layer with no limit entry is not quantized;
 *  - Activation: an activation quantizer (the "linear" field for linear; softmax never);
 *  - other layers with a limit entry (class or regex) convert with {} (e.g. BatchNormalization).
 * Limit keys are tried as regexes (std::regex, matched at the start of the name) in order, then
 * the layer's class; all layers matching one regex share its hyperparameters. Class entries
 * shorter than 3 are padded from "default" (8 if absent). Parameter names are AutoQKeras's:
 * "<layer>_kernel_quantizer", "<pattern>_bias_quantizer", "network_filters",
 * "network_filters_<layer>".
 */
class HETEROQ_API SearchSpace {
 public:
  SearchSpace() = default;

  /// @throws heteroq::InvalidArgument for malformed JSON, an unknown field or tune_filters value,
  ///         a limit list naming a quantizer absent from the config, a limit below every quantizer
  ///         of its field (naming the layer and field), a bad regex, an out-of-range layer index,
  ///         an unknown frozen layer, or an empty space (nothing to search).
  static SearchSpace build(const std::vector<LayerDesc>& layers, const SpaceOptions& options);

  /// A space generated from bit-width ranges (the config is built from the templates; the bits
  /// are the widths), then as build(). `options.quantization_config` must be empty.
  static SearchSpace from_bit_ranges(const std::vector<LayerDesc>& layers, const BitRanges& ranges,
                                     SpaceOptions options = {});

  const std::vector<Param>& params() const { return params_; }
  const std::vector<LayerDesc>& layers() const { return layers_; }
  int64_t activation_bits() const { return activation_bits_; }
  /// Number of distinct configurations (product of the choice counts; may be inf).
  double cardinality() const;

  /// The trial for a choice index per parameter (in params() order).
  /// @throws heteroq::InvalidArgument for a wrong length or an index out of range.
  TrialConfig decode(const std::vector<int64_t>& choice) const;
  /// Choice indexes from {param name: choice text} (JSON object text); the inverse of
  /// params_json(). @throws heteroq::InvalidArgument for a missing param or an unknown choice.
  std::vector<int64_t> choice_from_json(const std::string& params_json) const;
  /// {param name: choice text} (JSON object text).
  std::string params_json(const std::vector<int64_t>& choice) const;
  /// The whole space as JSON (params, choices, bits, layers): a study stores it to check that a
  /// resumed search searches the same space.
  std::string to_json() const;

 private:
  std::vector<LayerDesc> layers_;
  std::vector<Param> params_;
  int64_t activation_bits_ = 4;
  // Per layer, in model order: slot -> param index (or the fixed entry text for {} layers).
  struct LayerSlots {
    std::string name;
    std::vector<std::pair<std::string, int64_t>> slots;  // model_quantize slot, param index
    bool activation_layer = false;
    int64_t filters_param = -1;
    bool empty_entry = false;
  };
  std::vector<LayerSlots> slots_;
  std::string fixed_config_;
};

/// One block of AutoQKerasScheduler: the layers its regex groups, their cost, its trial budget
/// and its limit (the search's limit re-keyed to `^(layer1|layer2|...)$` per original key).
struct HETEROQ_API Block {
  std::string pattern;
  std::vector<std::string> layers;
  double cost = 0.0;
  int64_t max_trials = 0;
  std::string limit;
};

/**
 * AutoQKerasScheduler's block plan. Each block regex groups the layers it matches at the start of
 * their name (a layer may join several blocks; layer_indexes filters layers); a block's cost is the
 * sum of its layers' `layer_costs` (0 for absent ones); schedule "cost" orders blocks by decreasing
 * cost (stable), "sequential" keeps their order; each block gets int(max(10, max_trials * cost /
 * reference_cost)) trials. The limit is padded as SearchSpace::build does (class entries from
 * "default"), then re-keyed per block as AutoQKerasScheduler.get_limit.
 * @throws heteroq::InvalidArgument for no blocks, a bad regex, an unknown schedule, a
 *         non-positive reference cost, or a block whose limit is empty (it matches no layer the
 *         limit covers).
 */
HETEROQ_API std::vector<Block> plan_blocks(
    const std::vector<LayerDesc>& layers, const std::vector<std::string>& blocks,
    const std::map<std::string, double>& layer_costs, const std::string& schedule,
    int64_t max_trials, double reference_cost, const std::string& limit,
    const std::optional<std::vector<int64_t>>& layer_indexes = std::nullopt);

/// AutoQKeras's default_quantization_config (quantization_config.py) as JSON text.
HETEROQ_API std::string default_quantization_config();

}  // namespace heteroq::autoq
