// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// Saving and loading quantized weights (QKeras's model_save_quantized_weights): integer values
// plus scales in a safetensors file whose header documents every tensor (docs/saving.md).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "heteroq/errors.h"
#include "heteroq/export.h"
#include "heteroq/quantizers/quantizer.h"

namespace torch::nn {
class Module;
}  // namespace torch::nn

namespace heteroq {

/**
 * A quantized tensor as integers: what a quantizer's output is on its grid.
 *
 * Encodings (`encoding`):
 *  - "fixed_point" (quantized_bits, quantized_relu, quantized_tanh, quantized_sigmoid,
 *    quantized_hswish): `value = values * scale * 2^-frac`, `values` in [min_code, max_code];
 *  - "binary" (binary, stochastic_binary, quantized_bits with 1 signed bit): `values` in {-1, +1}
 *    ({0, 1} with use_01), `value = values * scale` (frac = 0);
 *  - "ternary" (ternary, stochastic_ternary): `values` in {-1, 0, +1}, `value = values * scale`;
 *  - "po2" (quantized_po2, quantized_relu_po2): `values` are exponents, `value = sign * 2^values`
 *    (no scale).
 *
 * `scale` has the input's dtype and shape () (per tensor) or the input's rank with size 1 on the
 * axes it does not vary along (per channel: alpha "auto"/"auto_po2" or a per-channel alpha).
 * The reconstruction is exact: dequantize() computes `values * scale * 2^-frac` in float64 and
 * rounds once to the scale's dtype, which reproduces the quantizer's output bit for bit.
 */
struct HETEROQ_API IntegerTensor {
  /// "fixed_point", "binary", "ternary" or "po2".
  std::string encoding;
  /// The integer codes (int8/int16/int32/int64: the narrowest holding [min_code, max_code]), or
  /// the exponents for "po2"; the input's shape.
  at::Tensor values;
  /// "po2" only: +1 or -1 per element (int8); undefined otherwise.
  at::Tensor sign;
  /// The scale (input dtype; () or broadcastable to `values`); undefined for "po2".
  at::Tensor scale;
  /// The quantizer's bit width, integer bits (sign excluded) and fraction bits.
  int64_t bits = 0;
  int64_t integer = 0;
  int64_t frac = 0;
  /// Whether the codes (po2: the values) can be negative.
  bool is_signed = true;
  /// The range of `values` the format allows (po2: the exponent range).
  int64_t min_code = 0;
  int64_t max_code = 0;

  /// The axes `scale` varies along (empty: one scale for the tensor).
  std::vector<int64_t> scale_axes() const;
  /// The real values: `values * scale * 2^-frac` (po2: `sign * 2^values`), in the scale's dtype
  /// (po2: `dtype`), computed exactly (float64, one rounding).
  at::Tensor dequantize(at::ScalarType dtype = at::kFloat) const;
};

/**
 * The integer representation of `q(x)`: evaluates a private copy of `q` in inference mode (the
 * caller's quantizer, including its last auto scale, is left alone) and expresses its output
 * exactly as integers and scales; checks that dequantize() reproduces `q(x)` bit for bit.
 *
 * Example:
 *   auto it = heteroq::quantize_to_integer(*heteroq::get_quantizer("quantized_bits(4,0,alpha=1)"),
 *                                          torch::tensor({0.3f, -1.2f}));
 *   // it.values = {2, -8} (int8), it.scale = 1, it.frac = 3: 2 * 2^-3 = 0.25, -8 * 2^-3 = -1
 *
 * @throws heteroq::InvalidArgument if x is not a float32/float64 tensor or has NaN, if the
 *         quantizer has no integer form (quantized_ulaw: a non-uniform grid; bernoulli: random
 *         at inference; qnoise_factor < 1: values between grid points), or if its output is not
 *         on its grid (e.g. quantized_relu with a relu_upper_bound between grid points).
 */
HETEROQ_API IntegerTensor quantize_to_integer(const Quantizer& q, const at::Tensor& x);

/// A tensor file: safetensors layout (docs/saving.md), tensors in file order.
struct HETEROQ_API TensorFile {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  /// The header's "__metadata__" (string to string).
  std::vector<std::pair<std::string, std::string>> metadata;
  /// The tensor called `name`, or nullptr.
  const at::Tensor* find(const std::string& name) const;
  /// The metadata value of `key`, or nullopt.
  std::optional<std::string> meta(const std::string& key) const;
};

/**
 * Writes a safetensors file: an 8-byte little-endian header length, a JSON header (per tensor
 * dtype, shape and data_offsets, plus "__metadata__"), then the tensors' little-endian bytes.
 * Writes a temporary file in the same directory, fsyncs it and renames it over `path`: on error
 * (unwritable directory, full disk, a bad tensor) no file is left and an existing `path` is
 * untouched. Tensors: float64/32/16, bfloat16, int64/32/16/8, uint8, bool (CPU or not).
 * @throws heteroq::InvalidArgument naming the path (and the tensor) on any error.
 */
HETEROQ_API void write_tensor_file(const std::string& path,
                                   const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                                   const std::vector<std::pair<std::string, std::string>>& metadata);

/**
 * Reads and validates a file write_tensor_file() (or any safetensors writer) wrote: header
 * length against the file size, JSON syntax, dtypes, shapes against byte counts, offsets in
 * range, without overlaps or holes, metadata strings.
 * @throws heteroq::InvalidArgument naming the file and the entry.
 */
HETEROQ_API TensorFile read_tensor_file(const std::string& path);

namespace nn {

/// The format name and version save_quantized_weights() writes ("__metadata__" "format" and
/// "format_version").
inline constexpr const char* kQuantizedWeightsFormat = "heteroq.quantized_weights";
inline constexpr int kQuantizedWeightsVersion = 1;

/// One saved tensor of a model (an entry of the file).
struct HETEROQ_API SavedTensor {
  /// The file's name of the entry ("fc1.weight", "bn.quantized_running_mean").
  std::string entry;
  /// The module path (as named_modules(); "" for the root module), its class ("QLinear",
  /// "Linear"), and the tensor's name in it ("weight", or a derived name such as "folded_weight").
  std::string layer, layer_class, tensor;
  /// "parameter", "buffer" (both restored by loading) or "derived" (computed from the layer for
  /// deployment: folded weights, quantized batch-norm statistics; not restored).
  std::string role;
  /// The quantizer's spec ("" for a float entry).
  std::string quantizer;
  /// The integer form (quantized entries).
  std::optional<IntegerTensor> integer;
  /// The float value: q(tensor) for a quantized entry, the tensor itself for a float one.
  at::Tensor value;
  /// How loading sets the tensor: "values" (the quantized value), "unscaled" (values * 2^-frac:
  /// the quantizer multiplies by its scale), "float" (the float tensor, stored as
  /// `<entry>:float` because the quantizer is not idempotent on its output), "" for derived.
  std::string restore;
};

/**
 * QKeras's model_save_quantized_weights: walks `model.named_modules()` and writes every
 * parameter and buffer to `path` (see docs/saving.md). Parameters that a layer quantizes directly
 * (QLinear/QConv* weight and bias, QBatchNorm gamma and beta) are stored as integers and scales
 * (quantize_to_integer); the other parameters and all buffers as floats; the folded layers
 * (QConv2dBatchNorm, QLinearBatchNorm) also get their folded, quantized weight and bias, and
 * QBatchNorm its quantized running statistics (or inverse), as derived entries. Quantizers are
 * evaluated in inference mode. The model is not modified (QKeras overwrites its weights with the
 * quantized values; load_quantized_weights() does that).
 *
 * Example:
 *   auto saved = heteroq::nn::save_quantized_weights(*model, "model.safetensors");
 *
 * @return the saved entries, in file order.
 * @throws heteroq::InvalidArgument (naming the layer and tensor) if a quantizer has no integer
 *         form (see quantize_to_integer), a heteroq layer with quantizers is not known to the
 *         saver, names collide, or the file cannot be written (then no file is left and an
 *         existing file is untouched).
 */
HETEROQ_API std::vector<SavedTensor> save_quantized_weights(const torch::nn::Module& model,
                                                            const std::string& path);

/**
 * Loads a file save_quantized_weights() wrote into `model` (the same architecture and
 * quantizers): each quantized parameter becomes its quantized value (or the quantizer's input
 * grid value, see SavedTensor::restore), float parameters and buffers their stored values, so
 * the model's outputs equal those of the saved model bit for bit. Checks everything first (file
 * format, every entry present and no extra one, classes, shapes, dtypes, quantizer specs, code
 * ranges, and that each quantizer reproduces the stored integers from the restored value) and
 * changes nothing unless all of it matched.
 * @throws heteroq::InvalidArgument naming the file and the entry.
 */
HETEROQ_API void load_quantized_weights(torch::nn::Module& model, const std::string& path);

namespace detail {

/// A module's state as both languages' walkers gather it: what the saver needs, language-neutral.
struct HETEROQ_API LayerState {
  std::string path;        // module path ("" for the root)
  std::string class_name;  // "QLinear", "Linear", ...
  std::vector<std::pair<std::string, at::Tensor>> parameters;  // own (not recursive), defined
  std::vector<std::pair<std::string, at::Tensor>> buffers;     // own persistent buffers
  std::vector<std::pair<std::string, QuantizerPtr>> quantizers;  // slot name -> quantizer
  std::optional<double> eps;  // batch-norm epsilon (QBatchNorm*, folded layers)
};

/// The core of save_quantized_weights() for a gathered model (used by the Python binding).
HETEROQ_API std::vector<SavedTensor> save_layers(const std::vector<LayerState>& layers,
                                                 const std::string& path);

/// The core of load_quantized_weights(): the values to copy into each layer's parameters and
/// buffers (in LayerState order: every layer's parameters, then its buffers), after checking
/// the whole file against `layers`.
HETEROQ_API std::vector<at::Tensor> load_layers(const std::vector<LayerState>& layers,
                                                const std::string& path);

/// The layer classes whose parameters are quantized directly: {class, {{tensor, quantizer
/// slot}}} (for documentation and tests).
HETEROQ_API std::vector<std::pair<std::string, std::vector<std::pair<std::string, std::string>>>>
quantized_layer_table();

}  // namespace detail
}  // namespace nn
}  // namespace heteroq
