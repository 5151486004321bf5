# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""Cost models: ``print_qstats`` (QKeras ``estimate.py``).

``qstats(model, input_shape)`` runs one forward pass on zeros with hooks, describes each layer
(kind, quantizers, geometry, the per-channel sums of its quantized weights) and hands the
descriptions to the C++ core (``heteroq::cost::qstats``), which computes the operand modes,
operation names and counts, weight bits, accumulator widths and totals, exactly as for C++ models.

Example usage::

    model = torch.nn.Sequential(
        heteroq.nn.QDense(16, 64, kernel_quantizer="quantized_bits(6,0,alpha=1)"),
        heteroq.nn.QActivation("quantized_relu(6,0)"),
        heteroq.nn.QDense(64, 5, kernel_quantizer="quantized_bits(6,0,alpha=1)"))
    stats = heteroq.cost.print_qstats(model, (1, 16))   # prints QKeras's tables
    stats.operation_totals                                # {'smult_6_6': 320, 'smult_6_8': 1024}
"""
import json
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence, TextIO, Tuple, Union

import torch

from . import _C
from . import nn as qnn
from .quantizers import Quantizer, get_quantizer

__all__ = ["DEFAULT_INPUT_QUANTIZER", "describe", "LayerInfos", "Operand", "Operation",
           "WeightStats", "AccumulatorStats",
           "LayerStats", "QStats", "qstats", "print_qstats", "operand_type", "op_type",
           "operation_name"]

#: QKeras's assumption for the model input (``create_activation_cache``): 8-bit unsigned values.
DEFAULT_INPUT_QUANTIZER = "quantized_relu(8,0)"

QuantizerLike = Union[Quantizer, str, None]


class _Table:
    """A report's printed table (the dataclass field ``table``), printed on first use: the C++
    core hands a function that prints it, or a string is given."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._slot = "_" + name

    def __get__(self, obj: Any, owner: Optional[type] = None) -> str:
        if obj is None:
            return ""
        value = obj.__dict__.get(self._slot, "")
        if callable(value):
            value = value()
            obj.__dict__[self._slot] = value
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self._slot] = "" if value is self else value


class _Printed:
    """The base of the reports with a :class:`_Table`: pickled and copied with the table printed
    (the C++ core's function is not picklable)."""

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        if callable(state.get("_table")):
            state["_table"] = self.table
        return state


#: Layer descriptions converted once to the C++ core's ``heteroq::cost::LayerInfo``:
#: ``LayerInfos(describe(model, shape))``. Every cost model (:func:`energy`, :func:`model_size`,
#: :func:`data_types`, :func:`bops`, :func:`fpga_estimate`, :func:`estimate`) takes one in place
#: of the list, without converting it again; a snapshot of the list when it was made.
LayerInfos = _C.LayerInfos


@dataclass(frozen=True)
class Operand:
    """QKeras's operand type ``(mode, bits, signed)``. Modes: 0 fixed point, 1 power of two,
    2 ternary, 3 binary (+-1), 4 binary (0/1), 5 float (not quantized)."""

    mode: int
    bits: int
    signed: bool

    @property
    def mode_name(self) -> str:
        return ("fixed", "po2", "ternary", "binary", "binary01", "float")[self.mode]


@dataclass(frozen=True)
class Operation:
    """One kind of multiply-accumulate operation of a layer (``count`` per sample)."""

    part: str                 # "" or, for separable convolutions, "depthwise" / "pointwise"
    name: str                 # QKeras's name, e.g. "smult_6_8" ("unull_6_-1": unknown input)
    type: Optional[str]       # "mult", "barrel", "mux", "xor", "adder", "fmult"; None: unknown
    weight: Operand
    input: Optional[Operand]  # None: the input's type is unknown
    count: int


@dataclass(frozen=True)
class WeightStats:
    """A group of stored values (QKeras's weight profiling): "weights" ("weights_0"/"weights_1"
    for separable convolutions) or "bias"."""

    name: str
    count: int
    bits: int
    quantizer: Optional[str]


@dataclass(frozen=True)
class AccumulatorStats:
    """The accumulator's range over every output channel for inputs in the input quantizer's
    range; ``bits = ceil(log2(max(|min|, |max|)))`` (QKeras's ``analyze_accumulator``)."""

    min: float
    max: float
    bits: int


@dataclass
class LayerStats:
    name: str
    type: str
    kind: str
    input_shape: List[int]
    output_shape: List[int]
    quantizers: Dict[str, Optional[str]]
    input_quantizer: Optional[str]  # None: float (input.mode 5) or unknown (input None)
    input: Optional[Operand]
    parameters: int
    operations: List[Operation]
    weights: List[WeightStats]
    accumulator: Optional[AccumulatorStats]


@dataclass
class QStats(_Printed):
    """What :func:`qstats` returns; ``str(stats)`` is the table :func:`print_qstats` prints."""

    layers: List[LayerStats]
    operation_totals: Dict[str, int]
    total_operations: int
    total_bits: int
    total_parameters: int
    table: str = field(repr=False, default=_Table())

    def layer(self, name: str) -> LayerStats:
        """The layer called ``name`` (its module path, e.g. ``"0"`` or ``"features.3"``)."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"qstats: no layer named {name!r}; layers: {[l.name for l in self.layers]}")

    def __str__(self) -> str:
        return self.table


def _operand(d: Optional[Dict[str, Any]]) -> Optional[Operand]:
    return None if d is None else Operand(d["mode"], d["bits"], d["signed"])


def _from_json(text: str, table: str) -> QStats:
    root = json.loads(text)
    layers = []
    for d in root["layers"]:
        acc = d["accumulator"]
        layers.append(LayerStats(
            name=d["name"], type=d["type"], kind=d["kind"], input_shape=d["input_shape"],
            output_shape=d["output_shape"], quantizers=dict(d["quantizers"]),
            input_quantizer=d["input_quantizer"], input=_operand(d["input"]),
            parameters=d["parameters"],
            operations=[Operation(o["part"], o["name"], o["type"], _operand(o["weight"]),
                                  _operand(o["input"]), o["count"]) for o in d["operations"]],
            weights=[WeightStats(w["name"], w["count"], w["bits"], w["quantizer"])
                     for w in d["weights"]],
            accumulator=None if acc is None else AccumulatorStats(acc["min"], acc["max"],
                                                                  acc["bits"])))
    return QStats(layers, dict(root["operation_totals"]), root["total_operations"],
                  root["total_bits"], root["total_parameters"], table)


# ---------------------------------------------------------------------------------------------
# The shared tables (implemented in C++)

# The C++ quantizers of spec strings (immutable), so that the default input quantizer of every
# cost call is parsed once.
_SPEC_IMPLS: Dict[str, Any] = {}


def _impl(q: QuantizerLike, where: str):
    if q is None:
        return None
    if isinstance(q, str):
        impl = _SPEC_IMPLS.get(q)
        if impl is None:
            impl = get_quantizer(q)._impl
            if len(_SPEC_IMPLS) < 256:
                _SPEC_IMPLS[q] = impl
        return impl
    if not isinstance(q, (Quantizer, dict)):
        raise TypeError(f"{where}: expected a heteroq quantizer, a spec string or None, got "
                        f"{type(q).__name__}")
    return get_quantizer(q)._impl


def operand_type(quantizer: QuantizerLike) -> Operand:
    """QKeras's ``get_quant_mode``: the operand type of a quantizer's values (None: float)."""
    return Operand(*_C.qstats_operand_type(_impl(quantizer, "operand_type")))


def op_type(weight_mode: int, input_mode: int) -> str:
    """QKeras's operation type ``wx_table[weight_mode][input_mode]``, e.g. ``"mult"``."""
    return _C.qstats_op_type(weight_mode, input_mode)


def operation_name(weight: Operand, input: Optional[Operand]) -> str:  # noqa: A002
    """QKeras's operation name, e.g. ``"smult_6_8"`` (``input`` None: ``"unull_6_-1"``)."""
    as_tuple = lambda o: (o.mode, o.bits, o.signed)  # noqa: E731
    return _C.qstats_operation_name(as_tuple(weight), None if input is None else as_tuple(input))


# ---------------------------------------------------------------------------------------------
# Describing the modules

def _sums(weight: torch.Tensor, bias: Optional[torch.Tensor], groups: int, transposed: bool,
          input_sums: Optional[torch.Tensor] = None) -> torch.Tensor:
    return torch.ops.heteroq._qstats_channel_sums(weight, bias, groups, transposed, input_sums)


def _conv_geometry(m: torch.nn.Module) -> Dict[str, Any]:
    d = {"in_channels": m.in_channels, "out_channels": m.out_channels, "groups": m.groups,
         "kernel_size": list(m.kernel_size)}
    # stride, padding and dilation of a convolution with explicit zero padding (LayerInfo: the
    # per-element input widths are then summed exactly over each weight's taps)
    # (heteroq's convolutions only, as the C++ description of a LibTorch model)
    padding = getattr(m, "padding", None)
    if (isinstance(m, (qnn.QConv1d, qnn.QConv2d, qnn.QConv2dBatchNorm))
            and getattr(m, "padding_mode", "zeros") == "zeros"
            and isinstance(padding, (tuple, list)) and all(isinstance(p, int) for p in padding)):
        d.update(stride=list(m.stride), padding=list(padding), dilation=list(m.dilation))
    return d


# The gates G of a recurrent layer by torch.nn.RNNBase's mode.
_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _input_projection_sums(params: Dict[str, torch.Tensor], m: torch.nn.RNNBase) -> torch.Tensor:
    """The channel sums of a recurrent layer's first input projection ``x W_ih^T + b_ih``, both
    directions stacked (``params``: the parameters as the forward pass uses them)."""
    suffixes = ["_l0", "_l0_reverse"] if m.bidirectional else ["_l0"]
    w = torch.cat([params["weight_ih" + s] for s in suffixes], 0)
    b = torch.cat([params["bias_ih" + s] for s in suffixes], 0) if m.bias else None
    return _sums(w, b, 1, False)


def _recurrent_values(params: Dict[str, torch.Tensor],
                      m: torch.nn.RNNBase) -> List[Tuple[str, torch.Tensor]]:
    """heteroq::cost::LayerInfo::values of a recurrent layer: per layer "kernel" and "recurrent"
    (the directions stacked along dim 0), then "bias" (bias_ih, bias_hh per layer and direction,
    flattened)."""
    values: List[Tuple[str, torch.Tensor]] = []
    biases = []
    for layer in range(m.num_layers):
        suffix = "" if m.num_layers == 1 else f"_l{layer}"
        directions = [f"_l{layer}", f"_l{layer}_reverse"] if m.bidirectional else [f"_l{layer}"]
        values.append(("kernel" + suffix, torch.cat([params["weight_ih" + d] for d in directions])))
        values.append(("recurrent" + suffix,
                       torch.cat([params["weight_hh" + d] for d in directions])))
        if m.bias:
            for d in directions:
                biases += [params["bias_ih" + d].reshape(-1), params["bias_hh" + d].reshape(-1)]
    if biases:
        values.append(("bias", torch.cat(biases)))
    return values


def _batch_norm_values(m: torch.nn.Module) -> List[Tuple[str, torch.Tensor]]:
    """heteroq::cost::LayerInfo::values of a batch norm in eval mode with running statistics:
    ``y = x scale + shift`` per channel (QBatchNorm: QKeras's inv and ``Qb(beta) - Qm(mean) inv``,
    as its forward pass); empty otherwise."""
    if m.training or m.running_var is None or m.running_mean is None:
        return []
    quantizers = isinstance(m, (qnn.QBatchNorm1d, qnn.QBatchNorm2d))

    def q(slot: str, t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        quantizer = getattr(m, slot) if quantizers else None
        return quantizer(t) if quantizer is not None and t is not None else t

    inverse = torch.ops.heteroq._bn_inverse
    if quantizers and m.inverse_quantizer is not None:
        inv = m.inverse_quantizer(inverse(m.running_var, m.weight, m.eps))
    else:
        inv = inverse(q("variance_quantizer", m.running_var), q("gamma_quantizer", m.weight),
                      m.eps)
    mean, beta = q("mean_quantizer", m.running_mean), q("beta_quantizer", m.bias)
    shift = beta - mean * inv if beta is not None else -(mean * inv)
    return [("scale", inv), ("shift", shift)]


def _describe_recurrent(m: torch.nn.RNNBase, name: str) -> Dict[str, Any]:
    d: Dict[str, Any] = {"kind": "recurrent", "in_channels": m.input_size,
                         "out_channels": m.hidden_size, "gates": _GATES[m.mode],
                         "num_layers": m.num_layers, "bidirectional": bool(m.bidirectional),
                         "batch_first": bool(m.batch_first), "bias": bool(m.bias)}
    if isinstance(m, (qnn.QSimpleRNN, qnn.QLSTM, qnn.QGRU)):
        d["quantizers"] = [("kernel_quantizer", m.kernel_quantizer),
                           ("recurrent_quantizer", m.recurrent_quantizer),
                           ("bias_quantizer", m.bias_quantizer),
                           ("state_quantizer", m.state_quantizer),
                           ("activation", m.activation)]  # None: a float function
        if not isinstance(m, qnn.QSimpleRNN):
            d["quantizers"].append(("recurrent_activation", m.recurrent_activation))
        if isinstance(m, qnn.QGRU):
            d["reset_after"] = m.reset_after
        params = m.quantized_parameters()
        d["sums"] = _input_projection_sums(params, m)
        d["values"] = _recurrent_values(params, m)
    else:
        if m.proj_size > 0:
            raise ValueError(f"qstats: layer {name!r} ({type(m).__name__}): `proj_size` "
                             f"({m.proj_size}) is not supported")
        params = dict(m.named_parameters())
        d["sums"] = _input_projection_sums(params, m)
        d["values"] = _recurrent_values(params, m)
    return d


def _describe(m: torch.nn.Module, name: str) -> Optional[Dict[str, Any]]:
    """The kind-specific part of the description of layer ``name`` (see
    heteroq::cost::LayerInfo), or None if ``m`` is not a layer heteroq describes (a container, or
    a layer without multiply-accumulates or quantizers, described by its type name alone)."""
    if isinstance(m, (qnn.QLinearBatchNorm, qnn.QConv2dBatchNorm)):
        w, b = m.get_folded_weights()
        if m.kernel_quantizer is not None:
            w = m.kernel_quantizer(w)
        if m.bias_quantizer is not None:
            b = m.bias_quantizer(b)
        d: Dict[str, Any]
        if isinstance(m, qnn.QLinearBatchNorm):
            d = {"kind": "dense", "in_channels": m.in_features, "out_channels": m.out_features}
            groups = 1
        else:
            d = {"kind": "conv", **_conv_geometry(m)}
            groups = m.groups
        d.update(bias=True, quantizers=[("kernel_quantizer", m.kernel_quantizer),
                                        ("bias_quantizer", m.bias_quantizer)],
                 sums=_sums(w, b, groups, False), values=[("weights", w), ("bias", b)])
        return d
    if isinstance(m, qnn.QLinear):
        w, b = m.quantized_weight(), m.quantized_bias()
        return {"kind": "dense", "in_channels": m.in_features, "out_channels": m.out_features,
                "bias": m.bias is not None,
                "quantizers": [("kernel_quantizer", m.kernel_quantizer),
                               ("bias_quantizer", m.bias_quantizer)],
                "sums": _sums(w, b, 1, False), "values": [("weights", w), ("bias", b)]}
    if isinstance(m, (qnn.QConv1d, qnn.QConv2d, qnn.QConvTranspose2d)):
        transposed = isinstance(m, qnn.QConvTranspose2d)
        kernel_slot = "depthwise_quantizer" if isinstance(m, qnn.QDepthwiseConv2d) else \
            "kernel_quantizer"
        w, b = m.quantized_weight(), m.quantized_bias()
        return {"kind": "conv_transpose" if transposed else "conv", **_conv_geometry(m),
                "bias": m.bias is not None,
                "quantizers": [(kernel_slot, m.kernel_quantizer),
                               ("bias_quantizer", m.bias_quantizer)],
                "sums": _sums(w, b, m.groups, transposed), "values": [("weights", w), ("bias", b)]}
    if isinstance(m, (qnn.QSeparableConv1d, qnn.QSeparableConv2d)):
        dw, pw = m.depthwise, m.pointwise
        dw_w, pw_w, pw_b = dw.quantized_weight(), pw.quantized_weight(), pw.quantized_bias()
        depthwise = _sums(dw_w, None, dw.groups, False)
        return {"kind": "separable_conv", "in_channels": dw.in_channels,
                "out_channels": pw.out_channels,
                "depth_multiplier": dw.out_channels // dw.in_channels,
                "kernel_size": list(dw.kernel_size), "bias": pw.bias is not None,
                "quantizers": [("depthwise_quantizer", dw.kernel_quantizer),
                               ("pointwise_quantizer", pw.kernel_quantizer),
                               ("bias_quantizer", pw.bias_quantizer)],
                "sums": _sums(pw_w, pw_b, 1, False, depthwise),
                "values": [("weights_0", dw_w), ("weights_1", pw_w), ("bias", pw_b)]}
    if isinstance(m, qnn.QActivation):
        return {"kind": "activation", "quantizers": [("activation", m.quantizer)]}
    if isinstance(m, Quantizer):  # a quantizer module applied to activations, as QActivation
        return {"kind": "activation", "quantizers": [("activation", m)]}
    if isinstance(m, qnn.QAdaptiveActivation):
        # Its current quantizer (QKeras); per channel, the one with the most integer bits (the
        # widest range; the same mode and width as the others).
        widest = int(m.integer_bits.argmax()) if m.integer_bits.numel() > 1 else 0
        return {"kind": "activation", "quantizers": [("activation", m.quantizer(widest))]}
    if isinstance(m, (qnn.QBatchNorm1d, qnn.QBatchNorm2d)):
        return {"kind": "other", "quantizers": [
            (slot, getattr(m, slot)) for slot in ("gamma_quantizer", "beta_quantizer",
                                                   "mean_quantizer", "variance_quantizer",
                                                   "inverse_quantizer")],
            "values": _batch_norm_values(m)}
    if isinstance(m, (qnn.QAvgPool2d, qnn.QGlobalAvgPool2d)):
        return {"kind": "other", "quantizers": [("average_quantizer", m.average_quantizer),
                                                ("activation", m.activation)]}
    if isinstance(m, torch.nn.Linear):
        return {"kind": "dense", "in_channels": m.in_features, "out_channels": m.out_features,
                "bias": m.bias is not None, "sums": _sums(m.weight, m.bias, 1, False),
                "values": [("weights", m.weight), ("bias", m.bias)]}
    if isinstance(m, torch.nn.modules.conv._ConvNd):
        return {"kind": "conv_transpose" if m.transposed else "conv", **_conv_geometry(m),
                "bias": m.bias is not None, "sums": _sums(m.weight, m.bias, m.groups, m.transposed),
                "values": [("weights", m.weight), ("bias", m.bias)]}
    if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
        return {"kind": "other", "values": _batch_norm_values(m)}
    if isinstance(m, torch.nn.RNNBase):  # QSimpleRNN, QLSTM, QGRU; torch's RNN, LSTM, GRU
        return _describe_recurrent(m, name)
    return None


def _is_layer(m: torch.nn.Module) -> bool:
    """Whether ``m`` is described as one layer (else its children are)."""
    if isinstance(m, (qnn.QLinear, qnn.QLinearBatchNorm, qnn.QConv2dBatchNorm, qnn.QConv1d,
                      qnn.QConv2d, qnn.QConvTranspose2d, qnn.QSeparableConv1d,
                      qnn.QSeparableConv2d, qnn.QActivation, qnn.QBatchNorm1d, qnn.QBatchNorm2d,
                      qnn.QAvgPool2d, qnn.QGlobalAvgPool2d, torch.nn.Linear,
                      torch.nn.modules.conv._ConvNd, torch.nn.RNNBase)):
        return True
    return next(m.children(), None) is None


def _layers(m: torch.nn.Module, prefix: str) -> Iterator[Tuple[str, torch.nn.Module]]:
    if _is_layer(m):
        yield (prefix or type(m).__name__), m
        return
    own = [n for n, _ in m.named_parameters(recurse=False)]
    if own:
        raise ValueError(f"qstats: module {prefix or type(m).__name__!r} "
                         f"({type(m).__name__}) uses parameters of its own ({', '.join(own)}) "
                         f"outside its submodules; heteroq cannot count their operations")
    for name, child in m.named_children():
        yield from _layers(child, f"{prefix}.{name}" if prefix else name)


def _parameter_count(m: torch.nn.Module) -> int:
    """``sum(p.numel() for p in m.parameters())`` (shared parameters and modules counted once),
    without the generators of ``Module.parameters``."""
    count = 0
    modules: set = set()
    params: set = set()
    stack = [m]
    while stack:
        module = stack.pop()
        if id(module) in modules:
            continue
        modules.add(id(module))
        for p in module._parameters.values():
            if p is not None and id(p) not in params:
                params.add(id(p))
                count += p.numel()
        stack.extend(c for c in module._modules.values() if c is not None)
    return count


def _first_tensor(value: Any) -> Optional[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)):
        for v in value:
            t = _first_tensor(v)
            if t is not None:
                return t
    return None


def _check_shape(input_shape: Sequence[int]) -> List[int]:
    if isinstance(input_shape, (str, bytes)) or not hasattr(input_shape, "__iter__"):
        raise TypeError(f"qstats: `input_shape` must be a sequence of sizes, got "
                        f"{type(input_shape).__name__}")
    shape = list(input_shape)
    if not shape or any(isinstance(d, bool) or not isinstance(d, int) or d <= 0 for d in shape):
        raise ValueError(f"qstats: `input_shape` must be a non-empty list of sizes > 0, batch "
                         f"dimension first, got {shape}")
    return shape


_MODULE_TRAIN = torch.nn.Module.train


def _plain_sequential(m: torch.nn.Module) -> bool:
    """Whether calling ``m`` is calling its layers in turn, without hooks around the containers:
    ``m`` and every container in it are ``torch.nn.Sequential`` itself (not a subclass) without
    hooks of their own, and no global module hooks are set."""
    if type(m) is not torch.nn.Sequential or _is_layer(m):
        return False
    if m._forward_hooks or m._forward_pre_hooks or any(
            getattr(m, a, None) for a in ("_forward_hooks_with_kwargs",
                                          "_forward_pre_hooks_with_kwargs")):
        return False
    return all(c is not None and (_is_layer(c) or _plain_sequential(c))
               for c in m._modules.values())


def _global_hooks() -> bool:
    module = torch.nn.modules.module
    return any(getattr(module, a, None) for a in ("_global_forward_hooks",
                                                   "_global_forward_pre_hooks",
                                                   "_global_forward_hooks_always_called"))


def describe(model: torch.nn.Module, input_shape: Sequence[int]) -> List[Dict[str, Any]]:
    """The layers of ``model`` as the cost models see them (``heteroq::cost::LayerInfo`` as
    dicts), for an input of ``input_shape``: runs one forward pass on zeros with hooks (in eval
    mode without gradients; the training flags are restored) and describes each layer (kind,
    quantizers, geometry, the per-channel sums of its quantized weights). :func:`qstats` and the
    other cost models start from it. A model with layers of trainable bit widths (the H layers
    of :mod:`heteroq.hgq`) is described as :func:`heteroq.hgq.convert` converts it: Q layers with
    ``FixedQuantizer`` s of the current widths.

    Raises:
        ValueError: a bad ``input_shape`` (the forward pass fails: the message names the layer).
        TypeError: ``model`` is not a module, ``input_shape`` not a sequence.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"qstats: `model` must be a torch.nn.Module, got {type(model).__name__}")
    shape = _check_shape(input_shape)
    from . import hgq  # (hgq imports this module's package)
    if any(isinstance(m, hgq._H_LAYERS) for m in model.modules()):
        # Layers with trainable widths: priced as the Q layers with FixedQuantizers of their
        # current widths that heteroq.hgq.convert makes (the same eval outputs).
        model = hgq.convert(model)
    layers = list(_layers(model, ""))
    param = next(model.parameters(), None)
    x = torch.zeros(shape, dtype=param.dtype if param is not None else torch.float32,
                    device=param.device if param is not None else None)

    calls: List[Tuple[str, torch.nn.Module, List[int], List[int]]] = []
    running: List[Tuple[str, torch.nn.Module, List[int]]] = []
    seen: Dict[str, int] = {}

    def pre_hook(name: str):
        def hook(module, inputs):
            t = _first_tensor(inputs)
            running.append((name, module, list(t.shape) if t is not None else []))
        return hook

    def post_hook(module, inputs, output):
        name, _, in_shape = running.pop()
        t = _first_tensor(output)
        if t is None:
            raise ValueError(f"qstats: layer {name!r} ({type(module).__name__}) returned no "
                             f"tensor")
        seen[name] = seen.get(name, 0) + 1
        calls.append((name if seen[name] == 1 else f"{name}#{seen[name]}", module, in_shape,
                      list(t.shape)))

    # A plain Sequential is walked as its forward() walks it (each layer called in turn, its own
    # hooks included), the shapes recorded around each call; any other model runs with hooks.
    walk = _plain_sequential(model) and not _global_hooks()
    names = {id(m): name for name, m in layers}

    def run(seq: torch.nn.Module, value: Any) -> Any:
        for m in seq._modules.values():
            if not _is_layer(m):
                value = run(m, value)
                continue
            t = _first_tensor(value)
            running.append((names[id(m)], m, list(t.shape) if t is not None else []))
            value = m(value)
            post_hook(m, None, value)
        return value

    handles = []
    modules = list(model.modules())
    # Eval mode: model.eval() sets every module's flag through Module.train(); where no module
    # overrides train(), setting the flags that differ directly does the same, without the
    # recursion (restored the same way).
    plain = all(type(m).train is _MODULE_TRAIN and "training" in m.__dict__ for m in modules)
    training = [(m, m.training) for m in modules] if not plain else \
        [m for m in modules if m.training]
    try:
        if not walk:
            for name, m in layers:
                handles.append(m.register_forward_pre_hook(pre_hook(name)))
                handles.append(m.register_forward_hook(post_hook))
        if plain:
            for m in training:
                m.__dict__["training"] = False
        else:
            model.eval()
        with torch.no_grad():
            try:
                if walk:
                    run(model, x)
                else:
                    model(x)
            except Exception as e:  # noqa: BLE001  (re-raised with the layer's name)
                if running:
                    name, module, in_shape = running[-1]
                    raise ValueError(
                        f"qstats: the forward pass of layer {name!r} ({type(module).__name__}) "
                        f"failed on an input of shape {in_shape} (check `input_shape`, batch "
                        f"dimension included): {e}") from e
                raise ValueError(f"qstats: the forward pass on an input of shape {shape} failed "
                                 f"(check `input_shape`, batch dimension included): {e}") from e
            infos = []
            for name, m, in_shape, out_shape in calls:
                info: Dict[str, Any] = {
                    "name": name, "type": type(m).__name__, "input_shape": in_shape,
                    "output_shape": out_shape, "parameters": _parameter_count(m)}
                described = _describe(m, name)
                if described is not None:
                    sums = described.pop("sums", None)
                    if sums is not None:
                        info["channel_sums"] = sums.tolist()
                    # float64 numpy arrays: exact copies of the float32 values, cheap to pass
                    described["values"] = [
                        (group, t.detach().to(device="cpu", dtype=torch.float64).numpy())
                        for group, t in described.get("values", []) if t is not None]
                    described["quantizers"] = [(slot, q._impl if q is not None else None)
                                               for slot, q in described.get("quantizers", [])]
                    info.update(described)
                infos.append(info)
    finally:
        for h in handles:
            h.remove()
        if plain:
            for m in training:
                m.__dict__["training"] = True
        else:
            for m, flag in training:
                m.train(flag)
    return infos


def qstats(model: torch.nn.Module, input_shape: Sequence[int],
           input_quantizer: QuantizerLike = DEFAULT_INPUT_QUANTIZER) -> QStats:
    """QKeras's ``print_qstats`` statistics of ``model``, without printing.

    Args:
        model: any ``torch.nn.Module`` tree of heteroq and torch layers. The layers are the heteroq
            layers, torch's ``Linear``/``Conv*``/``ConvTranspose*``/``RNN``/``LSTM``/``GRU`` and
            the leaf modules, in the order the forward pass calls them; each one's input is taken
            to be the previous one's output (exact for ``nn.Sequential``; a recurrent layer's
            output is its output sequence, the first element of ``(output, state)``).
        input_shape: the input's shape, batch dimension first (the counts are per sample).
        input_quantizer: the quantizer the model's input comes from (QKeras assumes
            ``quantized_relu(8,0)``); None: a float input.

    Returns:
        :class:`QStats`: per layer the quantizers, parameter count, weight groups and bits, the
        multiply-accumulate operations by QKeras name (``smult_6_8``) and count, the accumulator
        range and width; the totals.

    Raises:
        ValueError: a bad ``input_shape`` (the forward pass fails: the message names the layer),
            a layer heteroq cannot count (parameters of an unknown type).
        TypeError: ``model`` is not a module, ``input_shape`` not a sequence.
    """
    input_impl = _impl(input_quantizer, "qstats: `input_quantizer`")
    text, table = _C.qstats(describe(model, input_shape), input_impl)
    return _from_json(text, table)


def print_qstats(model: torch.nn.Module, input_shape: Sequence[int],
                 input_quantizer: QuantizerLike = DEFAULT_INPUT_QUANTIZER,
                 file: Optional[TextIO] = None) -> QStats:
    """Prints QKeras's ``print_qstats`` tables for ``model`` (to ``file``, default stdout) and
    returns the statistics (see :func:`qstats` for the arguments).

    Example usage::

        stats = heteroq.cost.print_qstats(model, (1, 16))
        stats.layer("0").operations[0].name      # 'smult_6_8'
    """
    stats = qstats(model, input_shape, input_quantizer)
    print(stats.table, file=file if file is not None else sys.stdout, end="")
    return stats


# ---------------------------------------------------------------------------------------------
# The other cost models (their modules import the helpers above from this one).

from . import _hardware, _qtools  # noqa: E402
from ._hardware import *  # noqa: E402,F401,F403
from ._qtools import *  # noqa: E402,F401,F403

__all__ += _qtools.__all__ + _hardware.__all__
