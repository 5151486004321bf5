# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""QONNX export and hls4ml configuration (guide: ``docs/deployment.md``).

:func:`to_qonnx` writes a model as an ONNX graph of standard operators with QONNX's ``Quant`` /
``BipolarQuant`` nodes (domain ``qonnx.custom_op.general``), the format hls4ml and FINN read.
The graph computes exactly what the model computes in eval mode: weights are stored as their
quantized values (the values the forward pass uses) followed by a ``Quant`` node that states
their type; activation quantizers become ``Quant`` nodes with explicit ``signed`` / ``narrow`` /
``rounding_mode`` attributes and power-of-two scales. Whatever has no exact form (float
activations, stochastic or data-dependent quantizers, ...) is refused with a ValueError naming
the layer and the reason. :func:`load_qonnx` reads a file back and checks it.

:func:`hls4ml_config` gives the ``ap_fixed`` precisions of each layer in hls4ml's configuration
format, following hls4ml's own QKeras rules, with accumulators from :func:`heteroq.cost.qstats`.

Only Python and the ``onnx`` package are used; the numbers come from the model's own quantizers
(:func:`heteroq.serialize.quantize_to_integer`) and layers.

Example usage::

    model = torch.nn.Sequential(
        heteroq.nn.QDense(16, 64, kernel_quantizer="quantized_bits(6,0,alpha=1)",
                          bias_quantizer="quantized_bits(6,0,alpha=1)"),
        heteroq.nn.QActivation("quantized_relu(6,0)"),
        heteroq.nn.QDense(64, 5, kernel_quantizer="quantized_bits(6,0,alpha=1)"))
    heteroq.export.to_qonnx(model, torch.randn(1, 16), "jet.onnx",
                            input_quantizer="quantized_bits(16,6,alpha=1)")
    onnx_model = heteroq.export.load_qonnx("jet.onnx")
    config = heteroq.export.hls4ml_config(model, (1, 16))
    config["LayerName"]["0"]["Precision"]["weight"]     # 'fixed<6,1>'
"""
import hashlib
import math
import os
import tempfile
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from . import _C
from . import cost as _cost
from . import nn as qnn
from .quantizers import Quantizer, get_quantizer
from .serialize import IntegerTensor, quantize_to_integer

__all__ = ["QONNX_DOMAIN", "ONNX_OPSET", "CHECKSUM_KEY", "to_qonnx", "load_qonnx",
           "hls4ml_config", "hls4ml_type"]

QONNX_DOMAIN = "qonnx.custom_op.general"
"""The domain of the ``Quant`` / ``BipolarQuant`` nodes (version 1)."""
ONNX_OPSET = 13
"""The version of the standard ONNX operator set the graphs use."""
CHECKSUM_KEY = "heteroq.graph_sha256"
"""The ``metadata_props`` entry holding the SHA-256 of the serialized graph (:func:`load_qonnx`)."""

QuantizerLike = Union[Quantizer, str, None]
PathLike = Union[str, "os.PathLike[str]"]


def _onnx():
    try:
        import onnx  # noqa: F401
        from onnx import helper, numpy_helper  # noqa: F401
    except ImportError as e:  # pragma: no cover  (setup.sh installs python3-onnx)
        raise ImportError("heteroq.export needs the `onnx` package (Debian: python3-onnx; "
                          "pip: onnx)") from e
    return onnx


# ---------------------------------------------------------------------------------------------
# Tracing: the layers of a chain model, in call order

# Layers exported as one unit (their quantizer children are part of them).
_ATOMIC = (qnn.QLinear, qnn.QLinearBatchNorm, qnn.QConv2dBatchNorm, qnn.QConv1d, qnn.QConv2d,
           qnn.QConvTranspose2d, qnn.QActivation, qnn.QAdaptiveActivation, qnn.QBatchNorm1d,
           qnn.QBatchNorm2d, qnn.QAvgPool2d, qnn.QGlobalAvgPool2d, Quantizer, torch.nn.RNNBase,
           torch.nn.Linear, torch.nn.modules.conv._ConvNd, torch.nn.modules.batchnorm._BatchNorm)


def _leaves(m: torch.nn.Module, prefix: str, who: str):
    if isinstance(m, _ATOMIC) or next(m.children(), None) is None:
        yield (prefix or type(m).__name__), m
        return
    own = [n for n, _ in m.named_parameters(recurse=False)]
    if own:
        raise ValueError(f"{who}: module {prefix or type(m).__name__!r} ({type(m).__name__}) "
                         f"uses parameters of its own ({', '.join(own)}) outside its submodules; "
                         f"the exporter sees only layers")
    for name, child in m.named_children():
        yield from _leaves(child, f"{prefix}.{name}" if prefix else name, who)


class _ExportError(ValueError):
    """An exporter error raised inside the traced forward pass (passed through as is)."""


@dataclass
class _Call:
    name: str
    module: torch.nn.Module
    input: Tensor
    output: Tensor


def _trace(model: torch.nn.Module, x: Tensor, who: str) -> Tuple[List[_Call], Tensor]:
    """Runs ``model(x)`` (the caller sets eval mode and no_grad) and returns the leaf layers'
    calls, checking that they form a chain: each layer takes the previous one's output, the first
    the input, and the model returns the last one's output."""
    leaves = list(_leaves(model, "", who))
    for name, m in leaves:
        if isinstance(m, torch.nn.RNNBase):
            raise _layer_error(who, name, m, "recurrent layers are not exported (hls4ml's QONNX "
                                             "path is MLP/CNN only)")
    calls: List[_Call] = []
    running: List[Tuple[str, Tensor]] = []
    handles = []

    def pre(name):
        def hook(module, inputs):
            if len(inputs) != 1 or not isinstance(inputs[0], Tensor):
                raise _ExportError(f"{who}: layer {name!r} ({type(module).__name__}) is called "
                                   f"with {len(inputs)} arguments; the exporter handles layers "
                                   f"with one tensor input")
            running.append((name, inputs[0]))
        return hook

    def post(module, inputs, output):
        name, inp = running.pop()
        if not isinstance(output, Tensor):
            raise _ExportError(f"{who}: layer {name!r} ({type(module).__name__}) returns "
                             f"{type(output).__name__}, not a tensor")
        calls.append(_Call(name, module, inp, output))

    try:
        for name, m in leaves:
            handles.append(m.register_forward_pre_hook(pre(name)))
            handles.append(m.register_forward_hook(post))
        try:
            out = model(x)
        except _ExportError:
            raise
        except Exception as e:  # noqa: BLE001  (re-raised with the layer's name)
            where = f" in layer {running[-1][0]!r}" if running else ""
            raise ValueError(f"{who}: the forward pass on `example_input` of shape "
                             f"{list(x.shape)} failed{where}: {e}") from e
    finally:
        for h in handles:
            h.remove()
    if not isinstance(out, Tensor):
        raise ValueError(f"{who}: the model returns {type(out).__name__}; the exporter handles "
                         f"models with one tensor output")
    previous, prev_name = x, "the model input"
    for c in calls:
        if c.input is not previous:
            raise ValueError(
                f"{who}: layer {c.name!r} ({type(c.module).__name__}) does not take the output of "
                f"{prev_name} as its input: the model computes something between its layers (e.g. "
                f"in its own forward()), which the exporter cannot see. Export chains of layers "
                f"(torch.nn.Sequential; use torch.nn.Flatten rather than x.view in forward())")
        previous, prev_name = c.output, f"layer {c.name!r}"
    if out is not previous:
        raise ValueError(f"{who}: the model's output is not the output of {prev_name}: the model "
                         f"computes something after its last layer, which the exporter cannot "
                         f"see")
    return calls, out


# ---------------------------------------------------------------------------------------------
# The graph under construction

class _Graph:
    def __init__(self):
        self.nodes: List[Any] = []
        self.initializers: List[Any] = []
        self._names: Dict[str, int] = {}

    def unique(self, base: str) -> str:
        base = base.replace(".", "_") or "t"
        n = self._names.get(base, 0)
        self._names[base] = n + 1
        return base if n == 0 else f"{base}_{n}"

    def const(self, base: str, value: Union[Tensor, np.ndarray, float, int],
              dtype=np.float32) -> str:
        from onnx import numpy_helper
        if isinstance(value, Tensor):
            value = value.detach().cpu().numpy()
        array = np.asarray(value, dtype=dtype)
        name = self.unique(base)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, inputs: List[str], base: str, domain: Optional[str] = None,
             **attrs) -> str:
        from onnx import helper
        out = self.unique(base)
        kwargs = {"domain": domain} if domain else {}
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **kwargs, **attrs))
        return out


def _quant(g: _Graph, x: str, base: str, scale, bits: int, signed: bool, narrow: bool,
           rounding: str = "ROUND") -> str:
    s = g.const(base + "_scale", scale)
    z = g.const(base + "_zeropt", np.zeros(np.shape(np.asarray(scale)), np.float32))
    b = g.const(base + "_bitwidth", float(bits))
    return g.node("Quant", [x, s, z, b], base, QONNX_DOMAIN, signed=int(signed),
                  narrow=int(narrow), rounding_mode=rounding)


def _bipolar(g: _Graph, x: str, base: str, scale) -> str:
    return g.node("BipolarQuant", [x, g.const(base + "_scale", scale)], base, QONNX_DOMAIN)


def _layer_error(who: str, name: str, module: Any, reason: str) -> ValueError:
    return ValueError(f"{who}: layer {name!r} ({type(module).__name__}): {reason}")


# ---------------------------------------------------------------------------------------------
# Activation quantizers: Quant / BipolarQuant (+ standard ops) with the quantizer's exact values

def _activation(g: _Graph, x: str, q: Quantizer, base: str, fail) -> str:
    """Emits the nodes of activation quantizer ``q`` applied to tensor ``x``; ``fail(reason)``
    builds the error for a quantizer without an exact form."""
    kind = type(q).__name__
    spec = _fixed_describe(q)
    if kind in ("bernoulli",):
        raise fail(f"{spec} is random at inference; the graph could not reproduce it")
    if kind == "stochastic_binary":  # eval mode: binary with the same alpha
        if q._auto:
            raise fail(f"{spec}: alpha {q.alpha!r} computes a scale from each batch of "
                       f"activations, not a constant of the graph")
        return _bipolar(g, x, base, 1.0 if q._alpha_value is None else q._alpha_value)
    if kind in ("quantized_bits", "quantized_relu", "quantized_po2", "quantized_relu_po2",
                "quantized_hswish") and getattr(q, "qnoise_factor", 1.0) != 1.0:
        raise fail(f"{spec}: qnoise_factor {q.qnoise_factor} < 1 blends float values into the "
                   f"output")
    if kind == "quantized_bits":
        if q._auto:
            raise fail(f"{spec}: alpha {q.alpha!r} computes a scale from each batch of "
                       f"activations, not a constant of the graph")
        if q._channel_alpha:
            raise fail(f"{spec}: a per-channel alpha on activations is not supported")
        alpha = q._alpha_value
        if q.bits == 1 and q.keep_negative:
            return _bipolar(g, x, base, 1.0 if alpha is None else alpha)
        m = 2.0 ** (q.bits - int(q.keep_negative))
        y = _quant(g, x, base, 2.0 ** q.integer / m, q.bits, q.keep_negative,
                   bool(q.keep_negative and q.symmetric))
        if alpha is not None and alpha != 1.0:  # QKeras: alpha * quantized(x), x not divided
            y = g.node("Mul", [y, g.const(base + "_alpha", alpha)], base + "_alpha_mul")
        return y
    if kind == "quantized_relu":
        if q.enable_fast_inference:
            return _quant(g, x, base, 2.0 ** (q.integer - q.bits), q.bits, False, False)
        if q.use_sigmoid:
            raise fail(f"{spec}: use_sigmoid has no exact Quant form")
        if q.negative_slope != 0.0:
            raise fail(f"{spec}: a negative_slope has no exact Quant form")
        if not q.is_quantized_clip and q.relu_upper_bound is not None:
            raise fail(f"{spec}: is_quantized_clip=False with a relu_upper_bound (a float bound "
                       f"on the output) has no exact Quant form")
        # codes clamp(round(relu(x) / step), 0, 2^bits - 1), step 2^(integer - bits): an unsigned
        # Quant (its clamp at 0 is the ReLU).
        return _quant(g, x, base, 2.0 ** (q.integer - q.bits), q.bits, False, False)
    if kind in ("quantized_tanh", "quantized_sigmoid"):
        tanh = kind == "quantized_tanh"
        if (q.use_real_tanh if tanh else q.use_real_sigmoid):
            raise fail(f"{spec}: the float {'tanh' if tanh else 'sigmoid'} has no exact form "
                       f"(implementations round differently)")
        if tanh and q.bits < 2:
            raise fail(f"{spec}: 1-bit quantized_tanh has no Quant form")
        if not tanh and q.symmetric:
            raise fail(f"{spec}: symmetric quantized_sigmoid (codes from 1) has no Quant form")
        # QKeras's hard sigmoid clip(x * 0.5 + 0.5, 0, 1) in float32, then (tanh) 2 h - 1: the
        # same float32 operations as heteroq's kernel (no FMA), then the grid.
        h = g.node("Mul", [x, g.const(base + "_half", 0.5)], base + "_hs_mul")
        h = g.node("Add", [h, g.const(base + "_half_b", 0.5)], base + "_hs_add")
        h = g.node("Clip", [h, g.const(base + "_zero", 0.0), g.const(base + "_one", 1.0)],
                   base + "_hs_clip")
        if tanh:
            h = g.node("Mul", [h, g.const(base + "_two", 2.0)], base + "_ht_mul")
            h = g.node("Sub", [h, g.const(base + "_one_b", 1.0)], base + "_ht_sub")
            return _quant(g, h, base, 2.0 ** -(q.bits - 1), q.bits, True, bool(q.symmetric))
        return _quant(g, h, base, 2.0 ** -q.bits, q.bits, False, False)
    if kind == "binary":
        if q._auto:
            raise fail(f"{spec}: alpha {q.alpha!r} computes a scale from each batch of "
                       f"activations, not a constant of the graph")
        if q.use_01:
            raise fail(f"{spec}: use_01 ({{0, alpha}} outputs) has no BipolarQuant form")
        return _bipolar(g, x, base, 1.0 if q._alpha_value is None else q._alpha_value)
    if kind in ("ternary", "stochastic_ternary"):
        return _ternary_activation(g, x, q, base, fail)
    if kind in ("quantized_po2", "quantized_relu_po2"):
        raise fail(f"{spec}: Quant cannot round in the log domain; po2 weights are supported "
                   f"(as fixed point), po2 activations are not")
    if _is_fixed(q):
        return _fixed_activation(g, x, q, base, fail)
    raise fail(f"{spec}: {kind} has no exact QONNX form")


# FixedQuantizer (heteroq.hgq, name "fixed"): fixed point with widths per tensor, channel or
# element: sign flags k, integer bits i, fractional bits f (tensors broadcastable to the input).

_FIXED_ROUNDING = {"RND_CONV": "ROUND", "TRN": "FLOOR", "RND": "HALF_UP"}


def _is_fixed(q: Any) -> bool:
    return isinstance(q, Quantizer) and type(q).__name__ == "FixedQuantizer" and \
        all(hasattr(q, a) for a in ("keep_negative", "int_bits", "frac_bits", "round_mode",
                                    "overflow_mode"))


def _fixed_widths(q: Quantizer, shape: Optional[Sequence[int]] = None
                  ) -> Tuple[Tensor, Tensor, Tensor]:
    """k, i, f of a FixedQuantizer as float64 tensors broadcast together (and to ``shape``)."""
    k, i, f = (t.detach().double().cpu() for t in (q.keep_negative, q.int_bits, q.frac_bits))
    k, i, f = torch.broadcast_tensors(k, i, f)
    if shape is not None:
        k, i, f = (t.expand(*shape) if t.dim() else t.expand(list(shape)) for t in (k, i, f))
    return k, i, f


def _fixed_describe(q: Quantizer) -> str:
    """``q.to_string()``, or its repr for quantizers without a spec string (a FixedQuantizer with
    per-element widths)."""
    try:
        return q.to_string()
    except Exception:  # noqa: BLE001  (non-uniform widths have no spec string)
        return repr(q)


def _fixed_activation(g: _Graph, x: str, q: Quantizer, base: str, fail) -> str:
    """A FixedQuantizer on activations: ``Quant(scale = 2^-f, bitwidth = k + i + f, signed = k,
    narrow = SAT_SYM)`` with ROUND (RND_CONV) / FLOOR (TRN) / HALF_UP (RND, unsigned only: on
    negative ties QONNX's HALF_UP rounds away from zero, RND up). The scale may vary per element
    (per-channel f); ``k`` and the width ``k + i + f`` must not (Quant has one bit width)."""
    spec = _fixed_describe(q)
    k, i, f = _fixed_widths(q)
    width = k + i + f
    if q.overflow_mode == "WRAP":
        raise fail(f"{spec}: overflow_mode WRAP (two's-complement wrap-around) has no Quant form "
                   f"(Quant saturates)")
    if q.round_mode not in _FIXED_ROUNDING:
        raise fail(f"{spec}: round_mode {q.round_mode!r} has no Quant form")
    if k.unique().numel() != 1 or width.unique().numel() != 1:
        return _fixed_activation_per_element(g, x, q, base, fail, k, i, f)
    signed = bool(k.flatten()[0] > 0)
    bits = int(width.flatten()[0])
    if bits < 1 + int(signed):
        raise fail(f"{spec}: width {bits} leaves no magnitude bit")
    if q.round_mode == "RND" and signed:
        raise fail(f"{spec}: round_mode RND rounds negative ties up, QONNX's HALF_UP away from "
                   f"zero (unsigned RND quantizers are exported)")
    scale = (2.0 ** -f).numpy()
    if f.unique().numel() == 1:
        scale = np.float64(2.0 ** -float(f.flatten()[0]))
    narrow = signed and q.overflow_mode == "SAT_SYM"
    return _quant(g, x, base, scale, bits, signed, narrow, rounding=_FIXED_ROUNDING[q.round_mode])


def _fixed_activation_per_element(g: _Graph, x: str, q: Quantizer, base: str, fail, k: Tensor,
                                  i: Tensor, f: Tensor) -> str:
    """A FixedQuantizer on activations whose sign flags or widths differ between elements (HGQ's
    per-element input quantizers): ``Max``/``Min`` with the per-element ends of each element's
    range (exact float32 comparisons), then ``Quant`` with per-element scales ``2^-f`` and the
    largest width. The ends are codes, so clamping before rounding equals fixed's clamping of
    the rounded code; each element's clamped value stays inside the common width."""
    spec = _fixed_describe(q)
    width = k + i + f
    live = width > 0
    if q.round_mode == "RND" and bool((k[live] > 0).any()):
        raise fail(f"{spec}: round_mode RND rounds negative ties up, QONNX's HALF_UP away from "
                   f"zero (unsigned RND quantizers are exported)")
    signed = bool((k[live] > 0).any())
    magnitude = int((i + f)[live].max()) if bool(live.any()) else 0
    bits = max(magnitude + int(signed), 2 if signed else 1)
    hi = torch.where(live, 2.0 ** i - 2.0 ** -f, torch.zeros_like(f))
    lo = -k * (hi if q.overflow_mode == "SAT_SYM" else 2.0 ** i)
    lo = torch.where(live, lo, torch.zeros_like(f))
    for name, t in (("lower", lo), ("upper", hi)):
        if not torch.equal(t.float().double(), t):
            raise fail(f"{spec}: the {name} ends of its elements' ranges are not float32 numbers "
                       f"(widths beyond 24 significant bits)")
    y = g.node("Max", [x, g.const(base + "_lower", lo.numpy())], base + "_max")
    y = g.node("Min", [y, g.const(base + "_upper", hi.numpy())], base + "_min")
    return _quant(g, y, base, (2.0 ** -f).numpy(), bits, signed, False,
                  rounding=_FIXED_ROUNDING[q.round_mode])


def _fixed_weight_type(q: Quantizer, values: Tensor, fail) -> Tuple[str, Any, int, bool, bool]:
    """The Quant node of a FixedQuantizer weight: the quantized ``values`` as codes of scale
    ``2^-f`` per element, in one bit width (the largest element's, plus a sign bit if any element
    is signed), which leaves every value unchanged (checked)."""
    spec = _fixed_describe(q)
    try:
        k, i, f = _fixed_widths(q, values.shape)
    except RuntimeError as e:
        raise fail(f"{spec}: its widths do not broadcast to the weight of shape "
                   f"{list(values.shape)}: {e}") from e
    v = values.detach().double().cpu()
    live = (k + i + f) > 0
    signed = bool((k[live] > 0).any()) or bool((v < 0).any())
    magnitude = int((i + f)[live].max()) if bool(live.any()) else 0
    bits = max(magnitude + int(signed), 2 if signed else 1)
    codes = v * 2.0 ** f
    lo, hi = _quant_bounds(bits, signed, False)
    if not torch.equal(codes, torch.round(codes)) or codes.min() < lo or codes.max() > hi:
        raise fail(f"{spec}: the weight's values are not codes of its widths (a {bits}-bit "
                   f"Quant would change them)")
    scale = (2.0 ** -f).numpy()
    if f.unique().numel() == 1:
        scale = np.float64(2.0 ** -float(f.flatten()[0]))
    return "Quant", scale, bits, signed, False


def _ternary_activation(g: _Graph, x: str, q: Quantizer, base: str, fail) -> str:
    """QKeras's ternary activation ``alpha * sign(x) * (|x| >= t)`` as
    ``Quant(scale = 2t, bitwidth = 2, signed, narrow, rounding_mode = "HALF_UP")`` (codes
    ``clamp(x / 2t)`` rounded half away from zero: ``|x| >= t`` gives ``±1``), then ``Mul`` by
    ``alpha / 2t``; exact when ``2t`` is a power of two (``x / 2t`` and the product are then
    exact in float32)."""
    spec = q.to_string()
    if type(q).__name__ == "stochastic_ternary" or getattr(q, "_auto", 0):
        raise fail(f"{spec}: its scale and threshold are computed from each batch of "
                   f"activations, not constants of the graph")
    t = float(np.float32(q.threshold if q.threshold is not None else 0.33))
    alpha = float(np.float32(q._alpha_value if q._alpha_value is not None else 1.0))
    m, _ = math.frexp(2.0 * t) if t > 0 else (0.0, 0)
    if not (t > 0 and m == 0.5):
        raise fail(f"{spec}: the threshold {t!r} is not a power of two: Quant divides by its "
                   f"scale 2*threshold, which rounds in float32 and can move inputs next to the "
                   f"threshold (ternary weights are supported; use e.g. threshold=0.5 or 0.25)")
    factor = alpha / (2.0 * t)
    if not (np.isfinite(np.float32(factor)) and float(np.float32(factor)) * 2.0 * t == alpha):
        raise fail(f"{spec}: alpha / (2*threshold) = {factor!r} is not a float32 number")
    y = _quant(g, x, base, 2.0 * t, 2, True, True, rounding="HALF_UP")
    if factor != 1.0:
        y = g.node("Mul", [y, g.const(base + "_alpha", factor)], base + "_alpha_mul")
    return y


# ---------------------------------------------------------------------------------------------
# Weights: the quantized values, then a Quant node stating their type

def _scale_of(it: IntegerTensor) -> np.ndarray:
    scale = it.scale.detach().double().cpu().numpy()
    return scale * 2.0 ** -it.frac


def _quant_bounds(bits: int, signed: bool, narrow: bool) -> Tuple[int, int]:
    if signed:
        return -(2 ** (bits - 1)) + int(narrow), 2 ** (bits - 1) - 1
    return 0, 2 ** bits - 1 - int(narrow)


def _weight_type(it: IntegerTensor, fail) -> Tuple[str, Any, int, bool, bool]:
    """(op, scale, bits, signed, narrow) of the Quant / BipolarQuant node that states the type of
    the quantized values of ``it`` (and leaves them unchanged)."""
    if it.encoding == "fixed_point":
        narrow = bool(it.signed and it.bits > 1 and it.min_code == -(2 ** (it.bits - 1)) + 1)
        lo, hi = _quant_bounds(it.bits, it.signed, narrow)
        if it.min_code < lo or it.max_code > hi or (it.bits == 1 and it.signed):
            raise fail(f"its codes [{it.min_code}, {it.max_code}] do not fit a {it.bits}-bit "
                       f"Quant")
        return "Quant", _scale_of(it), it.bits, it.signed, narrow
    if it.encoding == "binary":
        if it.signed:
            return "BipolarQuant", _scale_of(it), 1, True, False
        return "Quant", _scale_of(it), 1, False, False
    if it.encoding == "ternary":
        return "Quant", _scale_of(it), 2, True, True
    if it.encoding == "po2":
        # QONNX has no power-of-two type: a fixed-point Quant just wide enough for the exponents
        # present (exact for these constants; the hls4ml type comes from hls4ml_config).
        e = it.values.to(torch.int64)
        lo, hi = int(e.min()), int(e.max())
        signed = bool(it.signed or (it.sign is not None and bool((it.sign < 0).any())))
        if lo < -149 or hi > 127:
            raise fail(f"its powers of two 2^{lo}..2^{hi} do not fit float32 scales")
        return "Quant", np.float64(2.0 ** lo), hi - lo + 1 + int(signed), signed, False
    raise fail(f"encoding {it.encoding!r} has no QONNX form")


def _weight(g: _Graph, base: str, raw: Tensor, used: Tensor, q: Optional[Quantizer], fail,
            transpose: bool = False, shape: Optional[List[int]] = None) -> str:
    """Initializer of the values ``used`` by the forward pass (``q(raw)``, or ``raw`` for a
    float parameter), followed by the Quant node of ``q``'s type. ``transpose`` swaps the two
    axes of a matrix (MatMul's layout); ``shape`` reshapes a per-channel vector."""
    values = used.detach()
    if values.dtype != torch.float32:
        raise fail(f"its {base.rsplit('_', 1)[-1]} is {values.dtype}; the exporter writes float32 "
                   f"graphs (convert the model with .float())")
    if q is None:
        v = values.t() if transpose else values
        return g.const(base, v.reshape(shape) if shape is not None else v)
    if type(q).__name__ == "bernoulli":
        raise fail(f"{q.to_string()} is random at inference; the graph could not reproduce it")
    if _is_fixed(q):
        op, scale, bits, signed, narrow = _fixed_weight_type(q, values, fail)
    else:
        try:
            it = quantize_to_integer(q, raw.detach())
        except ValueError as e:
            raise fail(f"{q.to_string()} has no integer form: {e}") from e
        if not torch.equal(it.dequantize(values.dtype), values):
            raise fail(f"the integer form of {q.to_string()} differs from the values the "
                       f"forward pass uses")
        op, scale, bits, signed, narrow = _weight_type(it, fail)
    scale = np.asarray(scale, dtype=np.float64)
    if not np.all(np.isfinite(scale)) or not np.all(scale > 0):
        raise fail(f"{_fixed_describe(q)} gives scales that are not finite and > 0")
    if scale.astype(np.float32).astype(np.float64).tolist() != scale.tolist():
        raise fail(f"{_fixed_describe(q)} gives scales that float32 cannot hold")
    v = values
    if transpose:
        v = v.t()
        scale = scale.T if scale.ndim == 2 else scale
    if shape is not None:
        v = v.reshape(shape)
        if scale.ndim:
            scale = scale.reshape(shape)
    name = g.const(base, v)
    if op == "BipolarQuant":
        return _bipolar(g, name, base + "_quant", scale)
    return _quant(g, name, base + "_quant", scale, bits, signed, narrow)


# ---------------------------------------------------------------------------------------------
# Layers

def _conv_attrs(m: torch.nn.modules.conv._ConvNd, fail) -> Dict[str, Any]:
    if m.padding_mode != "zeros":
        raise fail(f"padding_mode {m.padding_mode!r} is not supported (only 'zeros')")
    if isinstance(m.padding, str):
        # torch's per-side padding, last dimension first: [last_begin, last_end, ...].
        rev = list(m._reversed_padding_repeated_twice)
        nd = len(m.kernel_size)
        begins = [rev[2 * (nd - 1 - i)] for i in range(nd)]
        ends = [rev[2 * (nd - 1 - i) + 1] for i in range(nd)]
        pads = begins + ends
    else:
        pads = list(m.padding) * 2
    return {"kernel_shape": list(m.kernel_size), "strides": list(m.stride), "pads": pads,
            "dilations": list(m.dilation), "group": int(m.groups)}


def _channel_shape(rank: int) -> List[int]:
    return [1, -1] + [1] * (rank - 2)


def _export_layer(g: _Graph, c: _Call, x: str, who: str) -> str:
    m, name = c.module, c.name
    base = name.replace(".", "_")

    def fail(reason: str) -> ValueError:
        return _layer_error(who, name, m, reason)

    rank = c.input.dim()
    if isinstance(m, (qnn.QLinearBatchNorm, qnn.QConv2dBatchNorm)):
        w, b = m.get_folded_weights()
        wq = m.kernel_quantizer(w) if m.kernel_quantizer is not None else w
        bq = m.bias_quantizer(b) if m.bias_quantizer is not None else b
        if isinstance(m, qnn.QLinearBatchNorm):
            wn = _weight(g, base + "_weight", w, wq, m.kernel_quantizer, fail, transpose=True)
            y = g.node("MatMul", [x, wn], base)
            bn = _weight(g, base + "_bias", b, bq, m.bias_quantizer, fail)
        else:
            wn = _weight(g, base + "_weight", w, wq, m.kernel_quantizer, fail)
            y = g.node("Conv", [x, wn], base, **_conv_attrs(m, fail))
            bn = _weight(g, base + "_bias", b, bq, m.bias_quantizer, fail,
                         shape=_channel_shape(c.output.dim())[1:])
        return g.node("Add", [y, bn], base + "_bias_add")
    if isinstance(m, (qnn.QLinear, torch.nn.Linear)):
        quantized = isinstance(m, qnn.QLinear)
        kq = m.kernel_quantizer if quantized else None
        bq = m.bias_quantizer if quantized else None
        wn = _weight(g, base + "_weight", m.weight, m.quantized_weight() if quantized else m.weight,
                     kq, fail, transpose=True)
        y = g.node("MatMul", [x, wn], base)
        if m.bias is not None:
            bn = _weight(g, base + "_bias", m.bias, m.quantized_bias() if quantized else m.bias,
                         bq, fail)
            y = g.node("Add", [y, bn], base + "_bias_add")
        return y
    if isinstance(m, torch.nn.modules.conv._ConvNd) and m.transposed:
        if len(m.kernel_size) not in (1, 2):
            raise fail("only 1-D and 2-D transposed convolutions are exported")
        if m.padding_mode != "zeros":
            raise fail(f"padding_mode {m.padding_mode!r} is not supported (only 'zeros')")
        quantized = isinstance(m, qnn.QConvTranspose2d)
        kq = m.kernel_quantizer if quantized else None
        bq = m.bias_quantizer if quantized else None
        # The kernel (in, out/groups, k...) is ONNX ConvTranspose's layout; torch's padding p
        # crops p on both sides, as ONNX's pads; output_padding as the model was called.
        inputs = [x, _weight(g, base + "_weight", m.weight,
                             m.quantized_weight() if quantized else m.weight, kq, fail)]
        if m.bias is not None:
            inputs.append(_weight(g, base + "_bias", m.bias,
                                  m.quantized_bias() if quantized else m.bias, bq, fail))
        nd = len(m.kernel_size)
        expected = [(c.input.size(2 + i) - 1) * m.stride[i] - 2 * m.padding[i]
                    + m.dilation[i] * (m.kernel_size[i] - 1) + 1 for i in range(nd)]
        out_pad = [c.output.size(2 + i) - expected[i] for i in range(nd)]
        return g.node("ConvTranspose", inputs, base, kernel_shape=list(m.kernel_size),
                      strides=list(m.stride), pads=list(m.padding) * 2,
                      dilations=list(m.dilation), group=int(m.groups), output_padding=out_pad)
    if isinstance(m, torch.nn.modules.conv._ConvNd):
        if len(m.kernel_size) not in (1, 2):
            raise fail("only 1-D and 2-D convolutions are exported")
        quantized = isinstance(m, (qnn.QConv1d, qnn.QConv2d))
        kq = m.kernel_quantizer if quantized else None
        bq = m.bias_quantizer if quantized else None
        inputs = [x, _weight(g, base + "_weight", m.weight,
                             m.quantized_weight() if quantized else m.weight, kq, fail)]
        if m.bias is not None:
            inputs.append(_weight(g, base + "_bias", m.bias,
                                  m.quantized_bias() if quantized else m.bias, bq, fail))
        return g.node("Conv", inputs, base, **_conv_attrs(m, fail))
    if isinstance(m, qnn.QActivation):
        return _activation(g, x, m.quantizer, base, fail)
    if isinstance(m, Quantizer):
        return _activation(g, x, m, base, fail)
    if isinstance(m, qnn.QAdaptiveActivation):
        if m.per_channel:
            return _per_channel_activation(g, x, m, c.input.dim(), base, fail)
        # In eval mode it applies its current quantizer (integer bits frozen in the buffer).
        return _activation(g, x, m.quantizer(), base, fail)
    if isinstance(m, (qnn.QBatchNorm1d, qnn.QBatchNorm2d)):
        return _batch_norm(g, c, x, base, fail)
    if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
        raise fail("torch's BatchNorm computes (x - mean) / sqrt(var + eps) in an order of its "
                   "own; use heteroq.nn.QBatchNorm*d (exported exactly) or fold it")
    if isinstance(m, qnn.QAvgPool2d):
        attrs = {"kernel_shape": list(m.kernel_size), "strides": list(m.stride),
                 "pads": list(m.padding) * 2, "ceil_mode": int(m.ceil_mode),
                 "count_include_pad": int(m.count_include_pad)}
        if m.average_quantizer is not None:
            area = m.kernel_size[0] * m.kernel_size[1]
            factor = m.average_quantizer(torch.full([], 1.0 / area, dtype=c.input.dtype))
            # heteroq: avg_pool2d(x * area) * Q(1 / area)
            y = g.node("Mul", [x, g.const(base + "_area", float(area))], base + "_area_mul")
            y = g.node("AveragePool", [y], base, **attrs)
            y = g.node("Mul", [y, g.const(base + "_factor", factor)], base + "_factor_mul")
        else:
            y = g.node("AveragePool", [x], base, **attrs)
        if m.activation is not None:
            y = _activation(g, y, m.activation, base + "_activation", fail)
        return y
    if isinstance(m, qnn.QGlobalAvgPool2d):
        axes = g.const(base + "_axes", np.array([2, 3]), np.int64)
        keep = int(m.keepdim)
        if m.average_quantizer is not None:
            area = c.input.size(2) * c.input.size(3)
            factor = m.average_quantizer(torch.full([], 1.0 / area, dtype=c.input.dtype))
            y = g.node("ReduceSum", [x, axes], base, keepdims=keep)
            y = g.node("Mul", [y, g.const(base + "_factor", factor)], base + "_factor_mul")
        else:
            y = g.node("ReduceMean", [x], base, axes=[2, 3], keepdims=keep)
        if m.activation is not None:
            y = _activation(g, y, m.activation, base + "_activation", fail)
        return y
    if isinstance(m, torch.nn.Flatten):
        start = m.start_dim % rank
        end = m.end_dim % rank
        if start == 1 and end == rank - 1:
            return g.node("Flatten", [x], base, axis=1)
        shape = list(c.output.shape)
        shape[0] = 0  # Reshape: copy the batch size
        return g.node("Reshape", [x, g.const(base + "_shape", np.array(shape), np.int64)], base)
    if isinstance(m, torch.nn.ReLU):
        return g.node("Relu", [x], base)
    if isinstance(m, torch.nn.LeakyReLU):  # one float32 product, as torch
        return g.node("LeakyRelu", [x], base, alpha=float(m.negative_slope))
    if isinstance(m, torch.nn.Hardtanh):  # ReLU6 included: a clamp
        return g.node("Clip", [x, g.const(base + "_min", m.min_val),
                               g.const(base + "_max", m.max_val)], base)
    if isinstance(m, (torch.nn.AvgPool1d, torch.nn.AvgPool2d)):
        nd = 1 if isinstance(m, torch.nn.AvgPool1d) else 2
        if getattr(m, "divisor_override", None) is not None:
            raise fail("divisor_override is not supported")
        tup = lambda v: [v] * nd if isinstance(v, int) else list(v)  # noqa: E731
        return g.node("AveragePool", [x], base, kernel_shape=tup(m.kernel_size),
                      strides=tup(m.stride if m.stride is not None else m.kernel_size),
                      pads=tup(m.padding) * 2, ceil_mode=int(m.ceil_mode),
                      count_include_pad=int(m.count_include_pad))
    if isinstance(m, (torch.nn.AdaptiveAvgPool1d, torch.nn.AdaptiveAvgPool2d)):
        size = m.output_size if isinstance(m.output_size, (tuple, list)) else [m.output_size]
        if any(s != 1 for s in size):
            raise fail(f"only output_size 1 (a global average) is exported, got {m.output_size}")
        return g.node("GlobalAveragePool", [x], base)
    if isinstance(m, (torch.nn.Dropout, torch.nn.Dropout1d, torch.nn.Dropout2d,
                      torch.nn.Dropout3d, torch.nn.AlphaDropout, torch.nn.Identity)):
        return x  # the identity in eval mode
    if isinstance(m, (torch.nn.MaxPool1d, torch.nn.MaxPool2d)):
        if m.return_indices:
            raise fail("return_indices=True is not supported")
        nd = 1 if isinstance(m, torch.nn.MaxPool1d) else 2
        tup = lambda v: [v] * nd if isinstance(v, int) else list(v)  # noqa: E731
        return g.node("MaxPool", [x], base, kernel_shape=tup(m.kernel_size),
                      strides=tup(m.stride if m.stride is not None else m.kernel_size),
                      pads=tup(m.padding) * 2, dilations=tup(m.dilation),
                      ceil_mode=int(m.ceil_mode))
    if isinstance(m, torch.nn.RNNBase):
        raise fail("recurrent layers are not exported (hls4ml's QONNX path is MLP/CNN only)")
    raise fail("no exact QONNX form (float activations such as Tanh, Sigmoid or Softmax round "
               "differently in every implementation; supported: heteroq's dense, convolution, "
               "activation, batch-norm and pooling layers, torch Linear/Conv/ReLU/LeakyReLU/"
               "ReLU6/Hardtanh/Flatten/Dropout/Identity/MaxPool/AvgPool/AdaptiveAvgPool(1))")


def _per_channel_activation(g: _Graph, x: str, m: qnn.QAdaptiveActivation, rank: int,
                            base: str, fail) -> str:
    """A per-channel QAdaptiveActivation (one quantizer per channel, axis 1, differing only in
    their integer bits): one Quant node whose scale holds each channel's power-of-two step, when
    every channel's quantizer is a single Quant node of the same width, signedness, narrowness
    and rounding."""
    from onnx import helper, numpy_helper
    if rank < 2:
        raise fail("per-channel integer bits need an input with a channel axis (axis 1)")
    scales: List[float] = []
    common: Optional[Tuple[Dict[str, Any], float]] = None
    for ch in range(m.integer_bits.numel()):
        q = m.quantizer(ch)
        probe = _Graph()
        _activation(probe, "x", q, "q", fail)
        if len(probe.nodes) != 1 or probe.nodes[0].op_type != "Quant":
            raise fail(f"{q.to_string()}: per-channel integer bits are exported only for "
                       f"quantizers that are one Quant node")
        node = probe.nodes[0]
        consts = {t.name: numpy_helper.to_array(t) for t in probe.initializers}
        scale, bits = consts[node.input[1]], consts[node.input[3]]
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        key = (attrs, float(bits))
        if common is not None and key != common:
            raise fail("the channels' quantizers differ in more than their scales")
        common = key
        scales.append(float(scale))
    assert common is not None
    attrs, bits = common
    rounding = attrs["rounding_mode"]
    shape = [len(scales)] + [1] * (rank - 2)
    return _quant(g, x, base, np.asarray(scales, np.float64).reshape(shape), int(bits),
                  bool(attrs["signed"]), bool(attrs["narrow"]),
                  rounding=rounding.decode() if isinstance(rounding, bytes) else str(rounding))


def _batch_norm(g: _Graph, c: _Call, x: str, base: str, fail) -> str:
    m = c.module
    if m.running_mean is None or m.running_var is None:
        raise fail("without running statistics (track_running_stats=False) it normalizes with "
                   "each batch's statistics, not constants of the graph")
    # heteroq's eval-mode batch norm (QBatchNorm.forward): x * inv + (beta - mean * inv), the
    # constants computed by the same operators.
    with torch.no_grad():
        mean, var, gamma, beta = m.running_mean, m.running_var, m.weight, m.bias
        if m.inverse_quantizer is not None:
            inv = m.inverse_quantizer(torch.ops.heteroq._bn_inverse(var, gamma, m.eps))
        else:
            if m.variance_quantizer is not None:
                var = m.variance_quantizer(var)
            if gamma is not None and m.gamma_quantizer is not None:
                gamma = m.gamma_quantizer(gamma)
            inv = torch.ops.heteroq._bn_inverse(var, gamma, m.eps)
        if m.mean_quantizer is not None:
            mean = m.mean_quantizer(mean)
        if beta is not None and m.beta_quantizer is not None:
            beta = m.beta_quantizer(beta)
        shift = -(mean * inv)
        if beta is not None:
            shift = beta + shift
    shape = _channel_shape(c.input.dim())[1:]
    y = g.node("Mul", [x, g.const(base + "_inv", inv.reshape(shape))], base + "_mul")
    return g.node("Add", [y, g.const(base + "_shift", shift.reshape(shape))], base)


# ---------------------------------------------------------------------------------------------
# to_qonnx / load_qonnx

def _graph_digest(model) -> str:
    return hashlib.sha256(model.graph.SerializeToString(deterministic=True)).hexdigest()


def _write_atomic(path: str, data: bytes, who: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tmp_", suffix=".onnx", dir=directory)
    except OSError as e:
        raise ValueError(f"{who}: cannot write {path!r}: {e}") from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise ValueError(f"{who}: cannot write {path!r}: {e}") from e
        raise


def _check_path(path: PathLike, who: str) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{who}: `path` must be a str or os.PathLike, got {type(path).__name__}")
    return os.fspath(path)


def to_qonnx(model: torch.nn.Module, example_input: Tensor, path: PathLike,
             input_quantizer: QuantizerLike = None, graph_name: Optional[str] = None):
    """Writes ``model`` (in eval mode) as a QONNX graph to ``path`` and returns the
    ``onnx.ModelProto``.

    The graph: the input (float32, its first dimension symbolic ``"N"``), then, with
    ``input_quantizer``, its ``Quant`` node; each layer as standard ONNX operators (opset
    :data:`ONNX_OPSET`: MatMul + Add for dense layers, Conv/ConvTranspose, Mul/Add for batch norms,
    AveragePool/ReduceSum, Relu, Flatten, MaxPool); quantized weights and biases as
    initializers holding the quantized values, each followed by the ``Quant`` (``BipolarQuant``
    for binary) node of its quantizer's type; activation quantizers as ``Quant`` /
    ``BipolarQuant`` nodes (``signed``, ``narrow``, ``rounding_mode="ROUND"`` written
    explicitly; power-of-two scales, zero point 0). ``docs/deployment.md`` lists the mapping.

    The graph computes ``model(input_quantizer(x))`` (``model(x)`` without one) in eval mode: every
    node's result equals heteroq's up to the order of the float32 sums in MatMul/Conv/pooling
    (identical whenever those sums are exact in float32, as they are for quantized inputs whose
    products and sums stay within 24 significant bits); outputs of quantizers are then equal.

    Args:
        model: a chain of layers (``torch.nn.Sequential``, nested containers allowed): heteroq's
            QDense/QLinear, QConv1d/QConv2d (depthwise and separable included), QConvTranspose2d,
            QLinearBatchNorm/QConv2dBatchNorm (their folded quantized weights), QActivation,
            QBatchNorm1d/2d, QAvgPool2d, QGlobalAvgPool2d, quantizer modules; torch's Linear,
            Conv1d/2d, ConvTranspose1d/2d, ReLU, LeakyReLU, ReLU6/Hardtanh, Flatten, Dropout,
            Identity, MaxPool1d/2d, AvgPool1d/2d, AdaptiveAvgPool1d/2d to size 1.
        example_input: an input tensor (float32, batch dimension first) to trace the model with.
        path: the file to write (conventionally ``*.onnx``); written atomically.
        input_quantizer: the quantizer of the model's input (a ``Quant`` node on the graph
            input), or None for a float input.
        graph_name: the graph's name (default: the model's class name).

    Raises:
        ValueError: a layer or quantizer without an exact form (named, with the reason), a model
            that is not a chain of layers, a failing forward pass, a file that cannot be written.
        TypeError: bad argument types.
    """
    who = "to_qonnx"
    onnx = _onnx()
    from onnx import TensorProto, helper
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"{who}: `model` must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(model, torch.jit.ScriptModule):
        raise TypeError(f"{who}: `model` is a TorchScript module; export the eager model")
    if not isinstance(example_input, Tensor):
        raise TypeError(f"{who}: `example_input` must be a tensor, got "
                        f"{type(example_input).__name__}")
    if example_input.dtype != torch.float32 or example_input.dim() < 1:
        raise ValueError(f"{who}: `example_input` must be a float32 tensor with a batch "
                         f"dimension, got {example_input.dtype} of shape "
                         f"{list(example_input.shape)}")
    path = _check_path(path, who)
    for pname, t in model.named_parameters():
        if t.dtype != torch.float32:
            raise ValueError(f"{who}: {pname!r} is {t.dtype}; the exporter writes float32 graphs "
                             f"(convert the model with .float())")
    iq = get_quantizer(input_quantizer) if input_quantizer is not None else None
    if input_quantizer is not None and not isinstance(iq, Quantizer):
        raise TypeError(f"{who}: `input_quantizer` must be a quantizer or a spec string")

    g = _Graph()
    x_name = g.unique("global_in")
    current = x_name
    x = example_input.detach()
    flags = [(m, m.training) for m in list(model.modules()) + ([iq] if iq is not None else [])]
    try:  # everything in eval mode (the graph is the eval-mode model), without autograd
        model.eval()
        with torch.no_grad():
            if iq is not None:
                iq.eval()
                current = _activation(g, current, iq, "input_quant",
                                      lambda r: ValueError(f"{who}: `input_quantizer`: {r}"))
                x = iq(x)
            calls, out = _trace(model, x, who)
            for c in calls:
                current = _export_layer(g, c, current, who)
    finally:
        for m, flag in flags:
            m.train(flag)
    if current == x_name:
        current = g.node("Identity", [current], "identity")
    # The last node's output becomes the graph output, named global_out.
    last = g.nodes[-1]
    assert last.output[0] == current, "the last node computes the graph's output"
    last.output[0] = "global_out"

    def value_info(name: str, t: Tensor):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N"] + list(t.shape[1:]))

    graph = helper.make_graph(g.nodes, graph_name or type(model).__name__,
                              [value_info(x_name, example_input)],
                              [value_info("global_out", out)], initializer=g.initializers)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET),
                                                         helper.make_opsetid(QONNX_DOMAIN, 1)],
                                   producer_name="heteroq", producer_version=_C.__version__)
    onnx_model.ir_version = 8  # ONNX 1.10+: readable by every onnx/onnxruntime since 2021
    try:
        onnx.checker.check_model(onnx_model, full_check=True)
    except Exception as e:  # noqa: BLE001  (an exporter bug: say so)
        raise ValueError(f"{who}: the graph fails onnx.checker (a heteroq bug, please report): "
                         f"{e}") from e
    helper.set_model_props(onnx_model, {CHECKSUM_KEY: _graph_digest(onnx_model)})
    _write_atomic(path, onnx_model.SerializeToString(deterministic=True), who)
    return onnx_model


def load_qonnx(path: PathLike, require_checksum: bool = True):
    """Reads and checks a QONNX file (``onnx.ModelProto``): it must parse, carry the graph
    checksum :func:`to_qonnx` writes (unless ``require_checksum=False``, for files of other
    exporters), match it, and pass ``onnx.checker``.

    Raises:
        ValueError: a missing, truncated, corrupted or invalid file (naming it and the problem).
    """
    who = "load_qonnx"
    onnx = _onnx()
    path = _check_path(path, who)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ValueError(f"{who}: cannot read {path!r}: {e}") from e
    if not data:
        raise ValueError(f"{who}: {path!r} is empty (truncated)")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as e:  # noqa: BLE001  (protobuf's DecodeError and friends)
        raise ValueError(f"{who}: {path!r} is not a valid ONNX file (truncated or corrupted): "
                         f"{e}") from e
    props = {p.key: p.value for p in model.metadata_props}
    if CHECKSUM_KEY in props:
        if props[CHECKSUM_KEY] != _graph_digest(model):
            raise ValueError(f"{who}: {path!r} is corrupted: its graph does not match the "
                             f"checksum written with it ({CHECKSUM_KEY})")
    elif require_checksum:
        raise ValueError(f"{who}: {path!r} has no {CHECKSUM_KEY} entry: it is truncated, or was "
                         f"not written by heteroq.export.to_qonnx (pass require_checksum=False "
                         f"for other exporters' files)")
    if not model.graph.node:
        raise ValueError(f"{who}: {path!r} holds no graph (truncated or not an ONNX model)")
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{who}: {path!r} is not a valid ONNX model: {e}") from e
    return model


# ---------------------------------------------------------------------------------------------
# hls4ml configuration

@dataclass(frozen=True)
class _FixedType:
    width: int
    integer: int   # hls4ml's I: integer bits including the sign bit
    signed: bool
    rounding: Optional[str] = None    # None: hls4ml's default (TRN); else "RND_CONV", ...
    saturation: Optional[str] = None  # None: hls4ml's default (WRAP); else "SAT", "SAT_SYM"
    is_int: bool = False              # ap_int<width> / ap_uint<width>

    def render(self, style: str) -> str:
        u = "" if self.signed else "u"
        if style == "ap":
            if self.is_int:
                return f"ap_{u}int<{self.width}>"
            modes = [f"AP_{m}" for m in (self.rounding, self.saturation) if m]
            if self.saturation and not self.rounding:
                modes.insert(0, "AP_TRN")
            return f"ap_{u}fixed<{','.join([str(self.width), str(self.integer)] + modes)}>"
        if self.is_int:
            return f"{u}int<{self.width}>"
        modes = [m for m in (self.rounding, self.saturation) if m]
        if self.saturation and not self.rounding:
            modes.insert(0, "TRN")
        return f"{u}fixed<{','.join([str(self.width), str(self.integer)] + modes)}>"


def _int_or_fixed(width: int, integer: int, signed: bool, rnd: Optional[str],
                  sat: Optional[str]) -> _FixedType:
    if width - integer <= 0:  # hls4ml: IntegerPrecisionType(width=integer)
        return _FixedType(integer, integer, signed, is_int=True)
    return _FixedType(width, integer, signed, rnd, sat)


def _activation_type(q: Quantizer, fail) -> _FixedType:
    """hls4ml's ``_get_precision_from_quantizer`` (hls4ml/utils/config.py) for ``q``; exact types
    where hls4ml's rule would lose values (unsigned quantized_bits) or ignore a scale (error)."""
    kind = type(q).__name__
    if _is_fixed(q):
        return _fixed_activation_type(q, fail)
    cfg = q.get_config()
    if kind in ("binary", "stochastic_binary", "ternary", "stochastic_ternary"):
        if cfg.get("alpha") not in (None, 1, 1.0):
            raise fail(f"{q.to_string()}: hls4ml's activation type int<2> ignores alpha")
        return _int_or_fixed(2, 2, True, None, None)
    if kind not in ("quantized_bits", "quantized_relu", "quantized_tanh", "quantized_sigmoid",
                    "quantized_po2", "quantized_relu_po2"):
        raise fail(f"{q.to_string()}: hls4ml has no type for {kind} activations")
    bits = int(cfg["bits"])
    integer = int(cfg.get("integer", bits - 1)) + 1
    signed, rnd, sat = True, "RND_CONV", "SAT"
    if kind == "quantized_bits":
        if cfg.get("alpha") not in (None, 1, 1.0):
            raise fail(f"{q.to_string()}: hls4ml's activation type ignores alpha "
                       f"{cfg.get('alpha')!r}")
        if not cfg.get("keep_negative", True):  # m = 2^bits: bits unsigned magnitude bits
            signed, integer = False, integer - 1
        elif cfg.get("symmetric"):
            sat = "SAT_SYM"
    elif kind in ("quantized_relu", "quantized_relu_po2"):
        if cfg["negative_slope"] == 0.0:
            signed, integer = False, integer - 1
    elif kind == "quantized_tanh":
        sat = "SAT_SYM" if cfg["symmetric"] else "SAT"
        integer = 1
    elif kind == "quantized_sigmoid":
        integer, signed = 0, False
    return _int_or_fixed(bits, integer, signed, rnd, sat)


def _weight_type_hls(q: Quantizer, fail) -> _FixedType:
    """hls4ml's ``QKerasQuantizer._get_type`` (hls4ml/model/quantizers.py) for weights and biases:
    ``fixed<bits, integer + 1>`` with the default TRN/WRAP modes (the values are already on the
    grid; a non-unit alpha is factored out by hls4ml's ApplyAlpha)."""
    kind = type(q).__name__
    if _is_fixed(q):
        return _fixed_weight_type_hls(q)
    cfg = q.get_config()
    if kind in ("ternary", "stochastic_ternary"):
        return _FixedType(2, 2, True, is_int=True)
    if kind in ("binary", "stochastic_binary"):
        return _FixedType(1, 1, False, is_int=True)  # hls4ml's XnorPrecisionType: uint<1>
    if kind in ("quantized_po2", "quantized_relu_po2"):
        return _FixedType(int(cfg["bits"]), int(cfg["bits"]), True, is_int=True)  # exponent
    if kind == "quantized_bits":
        width, integer = int(cfg["bits"]), int(cfg["integer"])
        if not cfg["keep_negative"]:  # exact: unsigned, bits magnitude bits
            return _int_or_fixed(width, integer, False, None, None)
        if width == integer:
            return _FixedType(width, width, True, is_int=True)
        return _FixedType(width, integer + 1, True)
    raise fail(f"{q.to_string()}: hls4ml has no weight type for {kind}")


def _fixed_weight_type_hls(q: Quantizer) -> _FixedType:
    """HGQ's proxy-model rule for a FixedQuantizer's weights: one type from the largest widths
    over the elements that have any (max k + max i + max f bits, max k + max i integer bits),
    which holds every element's values."""
    k, i, f = _fixed_widths(q)
    live = (k + i + f) > 0
    if not bool(live.any()):
        return _FixedType(1, 1, False, is_int=True)
    kk, ii, ff = (int(t[live].max()) for t in (k, i, f))
    return _int_or_fixed(kk + ii + ff, kk + ii, kk > 0, None, None)


def _fixed_activation_type(q: Quantizer, fail) -> _FixedType:
    """A FixedQuantizer on activations: hls4ml casts to one result type per layer, with the
    quantizer's own rounding (RND_CONV, RND, TRN) and overflow (SAT, SAT_SYM, WRAP) modes; exact
    only for uniform widths."""
    k, i, f = _fixed_widths(q)
    if k.unique().numel() != 1 or i.unique().numel() != 1 or f.unique().numel() != 1:
        raise fail(f"{_fixed_describe(q)}: its widths differ between elements; hls4ml casts a "
                   f"layer's result to one type (per-element activation widths need HGQ's proxy "
                   f"model)")
    kk, ii, ff = (int(t.flatten()[0]) for t in (k, i, f))
    if kk + ii + ff <= 0:
        raise fail(f"{_fixed_describe(q)}: width {kk + ii + ff} has no hls4ml type")
    rnd = None if q.round_mode == "TRN" else q.round_mode
    sat = None if q.overflow_mode == "WRAP" else q.overflow_mode
    return _int_or_fixed(kk + ii + ff, kk + ii, kk > 0, rnd, sat)


def _fixed_frac(q: Quantizer) -> int:
    """The fractional bits of a FixedQuantizer's values (the largest f among elements of positive
    width; at least 0)."""
    k, i, f = _fixed_widths(q)
    live = (k + i + f) > 0
    return max(0, int(f[live].max())) if bool(live.any()) else 0


def _frac_bits(it: IntegerTensor) -> Optional[int]:
    """The fractional bits of the values of an integer form with power-of-two scales (None:
    non-po2 scales)."""
    if it.encoding == "po2":
        return max(0, -int(it.values.min()))
    scale = it.scale.detach().double().flatten()
    mant_exp = [math.frexp(s) for s in scale.tolist()]
    if any(m != 0.5 for m, _ in mant_exp):
        return None
    frac = it.frac if it.encoding == "fixed_point" else 0
    return max(frac - (e - 1) for _, e in mant_exp)


def _accumulator_type(acc, frac: int) -> _FixedType:
    integer = acc.bits + 1  # qstats's integer bits + the sign bit
    step = 2.0 ** -frac
    while not (-(2.0 ** (integer - 1)) <= acc.min and acc.max <= 2.0 ** (integer - 1) - step):
        integer += 1
    return _FixedType(integer + frac, integer, True)


def hls4ml_type(quantizer: QuantizerLike, role: str = "result", style: str = "hls4ml") -> str:
    """The hls4ml precision string of one quantizer: ``role="result"`` for activations (hls4ml's
    ``_get_precision_from_quantizer``: RND_CONV/SAT), ``"weight"`` for weights and biases
    (``QKerasQuantizer._get_type``). ``style="hls4ml"`` gives hls4ml's spelling
    (``fixed<6,1>``, ``ufixed<6,0,RND_CONV,SAT>``), ``"ap"`` the HLS one (``ap_fixed<6,1>``,
    ``ap_ufixed<6,0,AP_RND_CONV,AP_SAT>``).

    Example usage::

        heteroq.export.hls4ml_type("quantized_relu(6,0)")            # 'ufixed<6,0,RND_CONV,SAT>'
        heteroq.export.hls4ml_type("quantized_bits(6,0,alpha=1)", "weight", "ap")  # 'ap_fixed<6,1>'
    """
    q = get_quantizer(quantizer)
    if not isinstance(q, Quantizer):
        raise TypeError("hls4ml_type: `quantizer` must be a quantizer or a spec string")
    if style not in ("hls4ml", "ap"):
        raise ValueError(f"hls4ml_type: `style` must be 'hls4ml' or 'ap', got {style!r}")
    fail = lambda r: ValueError(f"hls4ml_type: {r}")  # noqa: E731
    if role == "result":
        return _activation_type(q, fail).render(style)
    if role == "weight":
        return _weight_type_hls(q, fail).render(style)
    raise ValueError(f"hls4ml_type: `role` must be 'result' or 'weight', got {role!r}")


def _first_layer_shape(model: torch.nn.Module) -> List[int]:
    for name, m in _leaves(model, "", "hls4ml_config"):
        if isinstance(m, (torch.nn.Linear, qnn.QLinear)):
            return [1, m.in_features]
        break
    raise ValueError("hls4ml_config: `input_shape` is needed (batch dimension first) unless the "
                     "model starts with a dense layer")


def hls4ml_config(model: torch.nn.Module, input_shape: Optional[Sequence[int]] = None,
                  input_quantizer: QuantizerLike = _cost.DEFAULT_INPUT_QUANTIZER, *,
                  default_precision: str = "fixed<16,6>", reuse_factor: int = 1,
                  strategy: str = "Latency", style: str = "hls4ml") -> Dict[str, Any]:
    """hls4ml's configuration dictionary for ``model`` (``granularity='name'``): per layer the
    ``Precision`` of weights, biases, accumulators and results, as hls4ml's own QKeras conversion
    derives them (``config_from_keras_model``), the accumulators exact.

    * Weights and biases (quantized): ``fixed<bits, integer + 1>`` (QKeras does not count the sign
      bit), ``int<2>`` ternary, ``uint<1>`` binary, ``int<bits>`` po2 exponents; unsigned
      ``quantized_bits`` as ``ufixed<bits, integer>`` (exact).
    * Activation results: ``quantized_bits(b, i)`` → ``fixed<b, i + 1, RND_CONV, SAT>``,
      ``quantized_relu(b, i)`` → ``ufixed<b, i, RND_CONV, SAT>``, ``quantized_tanh`` →
      ``fixed<b, 1, RND_CONV, SAT[_SYM]>``, ``quantized_sigmoid`` → ``ufixed<b, 0, ...>``;
      ``int``/``uint`` when no fractional bit is left.
    * Accumulators (and the results of dense/convolution layers, which are the accumulated
      values): signed, with the integer bits of :func:`heteroq.cost.qstats`'s exact accumulator
      range (``accumulator.bits`` + the sign bit, widened if the range's ends need it) and the
      fractional bits of the product (input's + weight's, or the bias's if more). Where that is
      not exact (float input or weights, non-power-of-two scales) ``default_precision``.

    Layer names are the module paths (as :func:`heteroq.cost.qstats`); layers without quantizers
    (ReLU, Flatten, ...) have no entry and take ``Model`` defaults.

    Args:
        model: the model (any module tree :func:`heteroq.cost.qstats` reads).
        input_shape: the input's shape, batch dimension first; may be omitted when the model
            starts with a dense layer.
        input_quantizer: the quantizer of the model's input (QKeras assumes
            ``quantized_relu(8,0)``); None: float input (the first accumulator then takes
            ``default_precision``).
        default_precision, reuse_factor, strategy: the ``Model`` entries.
        style: ``"hls4ml"`` (``fixed<6,1>``) or ``"ap"`` (``ap_fixed<6,1>``).

    Raises:
        ValueError: a quantizer hls4ml has no type for (naming the layer), bad arguments.
    """
    who = "hls4ml_config"
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"{who}: `model` must be a torch.nn.Module, got {type(model).__name__}")
    if style not in ("hls4ml", "ap"):
        raise ValueError(f"{who}: `style` must be 'hls4ml' or 'ap', got {style!r}")
    if isinstance(reuse_factor, bool) or not isinstance(reuse_factor, int) or reuse_factor < 1:
        raise ValueError(f"{who}: `reuse_factor` must be an integer >= 1, got {reuse_factor!r}")
    if strategy not in ("Latency", "Resource"):
        raise ValueError(f"{who}: `strategy` must be 'Latency' or 'Resource', got {strategy!r}")
    shape = list(input_shape) if input_shape is not None else _first_layer_shape(model)
    stats = _cost.qstats(model, shape, input_quantizer)
    modules = dict(model.named_modules())
    layers: Dict[str, Any] = {}
    for ls in stats.layers:
        path = ls.name.split("#")[0]
        m = modules.get(path, model if path == type(model).__name__ else None)

        def fail(reason: str, _n=ls.name, _m=m) -> ValueError:
            return _layer_error(who, _n, _m, reason)

        precision: Dict[str, str] = {}
        grid = _input_grid(ls)
        if ls.kind in ("dense", "conv", "conv_transpose") and m is not None:
            precision.update(_dense_precisions(m, ls, fail, default_precision, style))
        elif ls.kind == "separable_conv" and m is not None:
            precision.update(_separable_precisions(m, ls, grid, fail, default_precision, style))
        elif ls.kind == "activation":
            if isinstance(m, qnn.QAdaptiveActivation) and m.per_channel and \
                    len(set(m.integer_bits.tolist())) > 1:
                raise fail("its channels have different integer bits; hls4ml casts a layer's "
                           "result to one type")
            # The module's own quantizer where it has one (qstats's spec string may name an
            # equivalent quantizer without its round and overflow modes).
            q = m.quantizer if isinstance(m, qnn.QActivation) else \
                m if isinstance(m, Quantizer) else get_quantizer(ls.quantizers.get("activation"))
            if q is not None:
                _check_hls4ml_activation(q, fail)
                precision["result"] = _activation_type(q, fail).render(style)
        elif ls.kind == "recurrent" and m is not None:
            precision.update(_recurrent_precisions(m, ls, grid, fail, default_precision, style))
        elif isinstance(m, (qnn.QBatchNorm1d, qnn.QBatchNorm2d)):
            precision.update(_batch_norm_precisions(m, grid, fail, default_precision, style))
        elif isinstance(m, (qnn.QAvgPool2d, qnn.QGlobalAvgPool2d)):
            precision.update(_pooling_precisions(m, ls, grid, fail, default_precision, style))
        elif isinstance(m, (torch.nn.MaxPool1d, torch.nn.MaxPool2d)) and ls.input_quantizer:
            # The maximum of values of the input's type is one of them.
            precision["result"] = _activation_type(get_quantizer(ls.input_quantizer),
                                                   fail).render(style)
        if not precision:
            continue
        entry: Dict[str, Any] = {"Precision": precision}
        if ls.kind in ("dense", "conv", "conv_transpose", "separable_conv", "recurrent"):
            entry["ReuseFactor"] = reuse_factor
        entry["Trace"] = False
        layers[ls.name] = entry
    return {"Model": {"Precision": {"default": default_precision}, "ReuseFactor": reuse_factor,
                      "Strategy": strategy, "BramFactor": 1_000_000_000, "TraceOutput": False},
            "LayerName": layers}


def _dense_precisions(m: torch.nn.Module, ls, fail, default: str, style: str) -> Dict[str, str]:
    """weight / bias / accum / result of a dense or convolution layer."""
    out: Dict[str, str] = {}
    kq = getattr(m, "kernel_quantizer", None)
    bq = getattr(m, "bias_quantizer", None)
    if kq is not None:
        out["weight"] = _weight_type_hls(kq, fail).render(style)
    if bq is not None and getattr(m, "bias", None) is not None:
        out["bias"] = _weight_type_hls(bq, fail).render(style)
    # The accumulator: exact range (qstats) and the product's fractional bits.
    frac: Optional[int] = None
    acc = ls.accumulator
    if acc is not None and ls.input_quantizer is not None and kq is not None:
        with torch.no_grad():
            if isinstance(m, (qnn.QLinearBatchNorm, qnn.QConv2dBatchNorm)):
                w, b = m.get_folded_weights()
            else:
                w, b = m.weight, m.bias
            try:
                wf = _quantized_frac(kq, w)
                xf = _frac_bits(quantize_to_integer(ls.input_quantizer,
                                                    torch.zeros(1, dtype=torch.float32)))
                bf = _quantized_frac(bq, b)
            except ValueError:
                wf = xf = bf = None
        if wf is not None and xf is not None and bf is not None:
            frac = max(wf + xf, bf)
    if frac is not None:
        accum = _accumulator_type(acc, frac).render(style)
    else:
        accum = default
    out["accum"] = accum
    out["result"] = accum
    return out


# The exact fixed-point types of ranges and constants (the layers hls4ml computes in fixed point
# beyond dense/convolution accumulators: batch norm, separable, pooling, recurrent).

_MAX_EXACT_WIDTH = 64


def _range_type(lo: float, hi: float, frac: int) -> _FixedType:
    """The narrowest fixed-point type with ``frac`` fractional bits holding [lo, hi]: unsigned
    when lo >= 0, else signed (hls4ml's I counts the sign bit)."""
    step = 2.0 ** -frac
    if lo >= 0:
        integer = 0
        while hi > 2.0 ** integer - step:
            integer += 1
        if integer + frac <= 0:  # only zeros: one bit
            integer = 1 - frac
        return _FixedType(integer + frac, integer, False)
    integer = 1
    while not (-(2.0 ** (integer - 1)) <= lo and hi <= 2.0 ** (integer - 1) - step):
        integer += 1
    return _FixedType(integer + frac, integer, True)


def _values_frac(values: np.ndarray) -> int:
    """The fractional bits every value of ``values`` (float) needs to be exact (0 for integers;
    values are exact binary fractions)."""
    frac = 0
    for v in np.unique(np.abs(np.asarray(values, np.float64).ravel())):
        if v == 0.0 or not np.isfinite(v):
            continue
        m, e = math.frexp(float(v))
        mant = int(m * 2.0 ** 53)
        low = (mant & -mant).bit_length() - 1  # trailing zero bits of the 53-bit mantissa
        frac = max(frac, 53 - e - low)
    return frac


def _values_type(values: Tensor, fail, default: str, style: str) -> str:
    """The narrowest type holding every value of a constant tensor exactly (``default`` when that
    would be wider than 64 bits, e.g. a full float32 mantissa far below 1)."""
    v = values.detach().double().cpu().numpy()
    if not np.all(np.isfinite(v)):
        raise fail("a constant that is not finite has no fixed-point type")
    t = _range_type(float(v.min()), float(v.max()), _values_frac(v))
    return t.render(style) if t.width <= _MAX_EXACT_WIDTH else default


def _input_grid(ls) -> Optional[Tuple[float, float, int]]:
    """(min, max, fractional bits) of a layer's input, from the previous layer's quantizer (None:
    a float input, or a quantizer whose values are not on a power-of-two grid)."""
    if ls.input_quantizer is None:
        return None
    q = get_quantizer(ls.input_quantizer)
    try:
        frac = _frac_bits(quantize_to_integer(q, torch.zeros(1, dtype=torch.float32)))
    except ValueError:
        return None
    if frac is None:
        return None
    # The grid's ends: the quantizer's bounds (QKeras's, e.g. 2^integer) quantized.
    q.eval()  # (a quantizer of its own, parsed from the spec string)
    with torch.no_grad():
        ends = q(torch.tensor([q.min(), q.max()], dtype=torch.float32)).double()
    return float(ends.min()), float(ends.max()), frac


def _quantized_frac(q: Optional[Quantizer], values: Optional[Tensor]) -> Optional[int]:
    """The fractional bits of a quantized constant (``q(values)``; None: not on a power-of-two
    grid or not quantized). A missing tensor needs none."""
    if values is None:
        return 0
    if q is None:
        return None
    if _is_fixed(q):
        return _fixed_frac(q)
    try:
        return _frac_bits(quantize_to_integer(q, values.detach()))
    except ValueError:
        return None


def _affine_range(w: np.ndarray, lo: float, hi: float, axis: int) -> Tuple[np.ndarray, np.ndarray]:
    """Per output unit, the least and greatest sum of ``w * x`` over inputs x in [lo, hi]
    (summing over ``axis``)."""
    a, b = w * lo, w * hi
    return np.minimum(a, b).sum(axis=axis), np.maximum(a, b).sum(axis=axis)


def _check_hls4ml_activation(q: Quantizer, fail) -> None:
    """Activation quantizers hls4ml cannot implement exactly (its activation layers cast to their
    result type, a fixed-point rounding)."""
    kind = type(q).__name__
    if kind in ("quantized_po2", "quantized_relu_po2"):
        raise fail(f"{q.to_string()}: hls4ml implements an activation quantizer as a cast to a "
                   f"fixed-point result type, which cannot round in the log domain (hls4ml's "
                   f"QActivation converter refuses {kind} too); po2 weights are supported")


def _batch_norm_precisions(m, grid, fail, default: str, style: str) -> Dict[str, str]:
    """hls4ml's BatchNormalization computes ``x * scale + bias`` with precomputed constants: here
    the constants heteroq's eval-mode layer uses (``heteroq.cost``'s ``scale`` = the quantized
    inverse, ``shift`` = beta - mean * inverse), each in the narrowest type that holds it
    exactly, and the result's exact type for inputs of the previous layer's type."""
    if m.running_mean is None or m.running_var is None:
        raise fail("without running statistics (track_running_stats=False) it normalizes with "
                   "each batch's statistics; hls4ml's BatchNormalization needs constants")
    training = m.training
    try:  # the eval-mode constants, whatever the module's mode
        m.eval()
        with torch.no_grad():
            values = dict(_cost._batch_norm_values(m))
    finally:
        m.train(training)
    scale, shift = values["scale"].double(), values["shift"].double()
    out = {"scale": _values_type(scale, fail, default, style),
           "bias": _values_type(shift, fail, default, style)}
    s, b = scale.numpy(), shift.numpy()
    sf, bf = _values_frac(s), _values_frac(b)
    if grid is None:
        out["result"] = default
        return out
    lo, hi, xf = grid
    low = np.minimum(s * lo, s * hi) + b
    high = np.maximum(s * lo, s * hi) + b
    t = _range_type(float(low.min()), float(high.max()), max(xf + sf, bf))
    out["result"] = t.render(style) if t.width <= _MAX_EXACT_WIDTH else default
    return out


def _separable_precisions(m, ls, grid, fail, default: str, style: str) -> Dict[str, str]:
    """depthwise / pointwise / bias weights; ``dw_output`` (the depthwise stage's exact sums),
    ``accum`` and ``result`` (the pointwise sums, :func:`heteroq.cost.qstats`'s accumulator)."""
    dw, pw = m.depthwise, m.pointwise
    out: Dict[str, str] = {}
    for key, q in (("depthwise", dw.kernel_quantizer), ("pointwise", pw.kernel_quantizer),
                   ("bias", pw.bias_quantizer if pw.bias is not None else None)):
        if q is not None:
            out[key] = _weight_type_hls(q, fail).render(style)
    with torch.no_grad():
        dww = dw.quantized_weight()
        dwf = _quantized_frac(dw.kernel_quantizer, dw.weight)
        pwf = _quantized_frac(pw.kernel_quantizer, pw.weight)
        bf = _quantized_frac(pw.bias_quantizer, pw.bias)
    if grid is None or dwf is None or pwf is None or bf is None or ls.accumulator is None:
        out.update(dw_output=default, accum=default, result=default)
        return out
    lo, hi, xf = grid
    # Depthwise: one input channel per output channel, summed over the kernel window.
    w = dww.double().reshape(dww.size(0), -1).numpy()
    dlo, dhi = _affine_range(w, lo, hi, axis=1)
    if dw.bias is not None:  # (heteroq's separable layers put the bias on the pointwise stage)
        db = dw.quantized_bias().double().numpy()
        dlo, dhi = dlo + db, dhi + db
    dt = _range_type(float(dlo.min()), float(dhi.max()), xf + dwf)
    out["dw_output"] = dt.render(style)
    accum = _accumulator_type(ls.accumulator, max(xf + dwf + pwf, bf))
    out["accum"] = out["result"] = accum.render(style)
    return out


def _pooling_precisions(m, ls, grid, fail, default: str, style: str) -> Dict[str, str]:
    """QAvgPool2d / QGlobalAvgPool2d: ``accum`` holds the window's sum exactly; ``result`` is the
    activation quantizer's type, else the exact type of sum · average_quantizer(1/area) (the
    float average without an average_quantizer: ``default``)."""
    out: Dict[str, str] = {}
    if isinstance(m, qnn.QAvgPool2d):
        area = int(m.kernel_size[0] * m.kernel_size[1])
    else:
        area = int(ls.input_shape[-1] * ls.input_shape[-2])
    if grid is not None:  # (0 included: padded windows sum fewer values)
        lo, hi, xf = grid
        out["accum"] = _range_type(min(area * lo, 0.0), max(area * hi, 0.0), xf).render(style)
    else:
        out["accum"] = default
    if m.activation is not None:
        _check_hls4ml_activation(m.activation, fail)
        out["result"] = _activation_type(m.activation, fail).render(style)
    elif m.average_quantizer is not None and grid is not None:
        factor = m.average_quantizer(torch.full([], 1.0 / area, dtype=torch.float32))
        f = float(factor)
        ff = _values_frac(np.array([f]))
        lo, hi, xf = grid
        a, b = min(area * lo, 0.0) * f, max(area * hi, 0.0) * f
        out["result"] = _range_type(min(a, b), max(a, b), xf + ff).render(style)
    else:
        out["result"] = default
    return out


def _recurrent_precisions(m, ls, grid, fail, default: str, style: str) -> Dict[str, str]:
    """hls4ml's SimpleRNN / LSTM / GRU: ``weight`` (kernel), ``recurrent_weight``, ``bias`` and
    ``recurrent_bias`` (PyTorch's two biases, both through the bias quantizer), ``state`` (the
    state quantizer's type), ``accum`` (the gates' pre-activation sums W x + U h + b, exact for
    inputs of the previous layer's type and states of the state quantizer's) and ``result`` (a
    QSimpleRNN's output is its activation quantizer's values, a QLSTM's ``o * act(c)`` the exact
    product of its recurrent activation's and activation's values when both are quantizers; a
    GRU's output mixes the float previous state in: ``default``)."""
    if not isinstance(m, (qnn.QSimpleRNN, qnn.QLSTM, qnn.QGRU)):
        raise fail("float recurrent layers have no quantizers to derive types from")
    if m.num_layers != 1 or m.bidirectional:
        raise fail(f"hls4ml's recurrent layers are single-layer and one-directional (got "
                   f"num_layers={m.num_layers}, bidirectional={m.bidirectional})")
    out: Dict[str, str] = {}
    kq, rq, bq, sq = m.kernel_quantizer, m.recurrent_quantizer, m.bias_quantizer, \
        m.state_quantizer
    for key, q in (("weight", kq), ("recurrent_weight", rq),
                   ("bias", bq if m.bias else None), ("recurrent_bias", bq if m.bias else None)):
        if q is not None:
            out[key] = _weight_type_hls(q, fail).render(style)
    if sq is not None:
        _check_hls4ml_activation(sq, fail)
        out["state"] = _activation_type(sq, fail).render(style)
    act = m.activation
    if act is not None:
        _check_hls4ml_activation(act, fail)
    with torch.no_grad():
        params = {k: v.detach().double() for k, v in m.quantized_parameters().items()}
    w, u = params["weight_ih_l0"], params["weight_hh_l0"]
    b = params.get("bias_ih_l0")
    rb = params.get("bias_hh_l0")
    with torch.no_grad():
        wf = _quantized_frac(kq, m.weight_ih_l0)
        uf = _quantized_frac(rq, m.weight_hh_l0)
        bf: Optional[int] = 0
        if m.bias:
            fracs = [_quantized_frac(bq, m.bias_ih_l0), _quantized_frac(bq, m.bias_hh_l0)]
            bf = None if None in fracs else max(fracs)
        state = _input_grid(_StateSlot(sq.to_string())) if sq is not None else None
    if grid is None or state is None or wf is None or uf is None or bf is None:
        out["accum"] = default
    else:
        lo, hi, xf = grid
        slo, shi, sf = state
        alo, ahi = _affine_range(w.numpy(), lo, hi, axis=1)
        rlo, rhi = _affine_range(u.numpy(), slo, shi, axis=1)
        low, high = alo + rlo, ahi + rhi
        for bias in (b, rb):
            if bias is not None:
                low, high = low + bias.numpy(), high + bias.numpy()
        t = _range_type(float(low.min()), float(high.max()), max(xf + wf, sf + uf, bf))
        out["accum"] = t.render(style) if t.width <= _MAX_EXACT_WIDTH else default
    ract = getattr(m, "recurrent_activation", None)
    if ract is not None:
        _check_hls4ml_activation(ract, fail)
    if isinstance(m, qnn.QSimpleRNN) and act is not None:
        out["result"] = _activation_type(act, fail).render(style)
    elif isinstance(m, qnn.QLSTM) and act is not None and ract is not None:
        # h = o * act(c): the product of a recurrent-activation value and an activation value.
        a = _input_grid(_StateSlot(act.to_string()))
        o = _input_grid(_StateSlot(ract.to_string()))
        if a is None or o is None:
            out["result"] = default
        else:
            ends = [x * y for x in a[:2] for y in o[:2]]
            out["result"] = _range_type(min(ends), max(ends), a[2] + o[2]).render(style)
    else:
        out["result"] = default
    return out


@dataclass
class _StateSlot:
    """A stand-in for a layer's statistics, to read a quantizer's grid with _input_grid."""
    input_quantizer: Optional[str]
