# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""Model configs: the JSON that rebuilds a model's architecture, shared with C++.

:func:`to_config` describes an ``nn.Sequential`` tree (or a single layer) of heteroq's layers and
the common torch layers as a JSON-serialisable dict: each layer's class, its constructor arguments
with PyTorch's names (quantizers as their spec strings) and its name; no weights. :func:`from_config`
builds the model again, and C++'s ``heteroq::nn::from_config`` reads the same JSON (and
``heteroq::nn::to_config`` writes it). The format is in docs/config.md.

Example usage::

    config = heteroq.config.to_config(model)          # a dict
    text = json.dumps(config, indent=2)               # for a file
    copy = heteroq.config.from_config(text)           # same architecture, fresh parameters
    copy.load_state_dict(model.state_dict())          # same outputs

The checks and their messages are those of the C++ implementation (the same table of classes,
arguments and types, in ``src/nn/config.cpp``).
"""
import json
import math
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import torch

from . import _C
from . import nn as qnn
from ._rnn import FLOAT_ACTIVATIONS
from .quantizers import Quantizer, get_quantizer

__all__ = ["FORMAT", "VERSION", "to_config", "from_config", "config_classes"]

#: The ``format`` every model config carries.
FORMAT = "heteroq.model_config"
#: The ``version`` this heteroq writes and reads.
VERSION = 1

_SEQUENTIAL = "Sequential"


class _ConfigError(Exception):
    """A problem at a JSON path; from_config and to_config turn it into ValueError."""

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(path, detail)
        self.path = path
        self.detail = detail


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _dump(v: Any) -> str:
    """Compact JSON of a value, as C++'s nlohmann::json dump()."""
    try:
        return json.dumps(v, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and -2**63 <= v < 2**63


# ------------------------------------------------------------------------------------------------
# Argument types (the same kinds, words and order as src/nn/config.cpp).

_REQUIRED = object()
_NO_MIN = None


class _Arg:
    """One constructor argument: name, type, default (``_REQUIRED`` when there is none)."""

    def __init__(self, name: str, kind: str, default: Any = _REQUIRED, *, minimum: Optional[int] = None,
                 dims: int = 0, lo: float = -math.inf, hi: float = math.inf, range_text: str = "",
                 choices: Tuple[str, ...] = (), nullable: bool = False) -> None:
        self.name = name
        self.kind = kind
        self.default = default
        self.min = minimum
        self.dims = dims
        self.lo, self.hi, self.range_text = lo, hi, range_text
        self.choices = choices
        self.nullable = nullable

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    def describe(self) -> str:
        def int_text(m):
            return "an integer" if m is None else f"an integer >= {m}"

        def list_text(m):
            suffix = "" if m is None else f" >= {m}"
            return (f"a list of one integer{suffix}" if self.dims == 1
                    else f"a list of {self.dims} integers{suffix}")

        if self.kind == "int":
            s = int_text(self.min)
        elif self.kind == "ints":
            s = f"{int_text(self.min)} or {list_text(self.min)}"
        elif self.kind == "conv_padding":
            s = f'{int_text(0)}, {list_text(0)}, "same" or "valid"'
        elif self.kind == "bool":
            s = "true or false"
        elif self.kind == "number":
            s = "a number" + self.range_text
        elif self.kind == "choice":
            s = "one of " + ", ".join(f'"{c}"' for c in self.choices)
        elif self.kind == "activation":
            return (f"a float activation ({_float_activations_text()}), a quantizer spec string"
                    + (" or null" if self.nullable else ""))
        else:
            s = "a quantizer spec string"
        return s + " or null" if self.nullable else s

    def check(self, v: Any, path: str) -> Tuple[Any, Optional[Quantizer]]:
        """(the JSON normal form, the quantizer for a quantizer argument); _ConfigError if bad."""
        if v is None and self.nullable:
            return None, None
        minimum = 0 if self.kind == "conv_padding" else self.min

        def int_ok(x):
            return _is_int(x) and (minimum is None or x >= minimum)

        kind = self.kind
        if kind == "int":
            if int_ok(v):
                return int(v), None
        elif kind in ("ints", "conv_padding"):
            if kind == "conv_padding" and v in ("same", "valid"):
                return v, None
            if int_ok(v):
                return [int(v)] * self.dims, None
            if isinstance(v, (list, tuple)) and len(v) == self.dims and all(int_ok(x) for x in v):
                return [int(x) for x in v], None
        elif kind == "bool":
            if isinstance(v, bool):
                return v, None
        elif kind == "number":
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                d = float(v)
                if math.isfinite(d) and self.lo <= d <= self.hi:
                    return d, None
        elif kind == "choice":
            if isinstance(v, str) and v in self.choices:
                return v, None
        elif kind == "activation":
            if isinstance(v, str):
                if v in FLOAT_ACTIVATIONS:
                    return v, None
                try:
                    impl = _C.get_quantizer(v)
                except ValueError as e:
                    raise _ConfigError(path, f"{_dump(v)} is neither a float activation "
                                             f"({_float_activations_text()}) nor a quantizer spec: "
                                             f"{e}") from None
                spec = impl.to_string()
                return spec, get_quantizer(spec)
        elif isinstance(v, str):  # quantizer
            try:
                impl = _C.get_quantizer(v)  # the C++ parser: the same checks and messages
            except ValueError as e:
                raise _ConfigError(path, str(e)) from None
            spec = impl.to_string()
            return spec, get_quantizer(spec)
        raise _ConfigError(path, f"expected {self.describe()}, got {_dump(v)}")


def _float_activations_text() -> str:
    return ", ".join(f'"{n}"' for n in FLOAT_ACTIVATIONS)


def _count(name):
    return _Arg(name, "int", minimum=1)


def _integer(name, default, minimum=None, nullable=False):
    return _Arg(name, "int", default, minimum=minimum, nullable=nullable)


def _sizes(name, dims, default=_REQUIRED, minimum=1, nullable=False):
    return _Arg(name, "ints", default, minimum=minimum, dims=dims, nullable=nullable)


def _paddings(name, dims):
    return _sizes(name, dims, 0, 0)


def _conv_padding(dims):
    return _Arg("padding", "conv_padding", 0, dims=dims)


def _flag(name, default):
    return _Arg(name, "bool", default)


def _number(name, default, lo, hi, range_text, nullable=False):
    return _Arg(name, "number", default, lo=lo, hi=hi, range_text=range_text, nullable=nullable)


def _eps():
    return _number("eps", 1e-5, 0, math.inf, " >= 0")


def _momentum():
    return _number("momentum", 0.1, 0, 1, " in [0, 1]", nullable=True)


def _padding_mode():
    return _Arg("padding_mode", "choice", "zeros", choices=("zeros", "reflect", "replicate", "circular"))


def _folding_mode():
    return _Arg("folding_mode", "choice", "ema_stats_folding",
                choices=("ema_stats_folding", "batch_stats_folding"))


def _quantizer(name, required=False):
    return _Arg(name, "quantizer", _REQUIRED if required else None, nullable=not required)


def _activation(name, default):
    """An activation slot of the recurrent layers: a float function's name or a quantizer spec;
    None is the layer's float default (tanh, sigmoid)."""
    return _Arg(name, "activation", default, nullable=True)


# ------------------------------------------------------------------------------------------------
# The layer table: class name -> (Python class, arguments, readers that differ from
# getattr(module, argument), builder that differs from cls(**arguments)).

class _Layer:
    def __init__(self, cls: type, args: List[_Arg], get: Optional[Dict[str, Callable]] = None,
                 build: Optional[Callable[..., torch.nn.Module]] = None) -> None:
        self.cls = cls
        self.args = args
        self.get = get or {}
        self.build = build or cls

    def write(self, m: torch.nn.Module) -> Dict[str, Any]:
        return {a.name: self.get[a.name](m) if a.name in self.get else getattr(m, a.name)
                for a in self.args}


def _has_bias(m):
    return m.bias is not None


def _conv_args(dims, quantized):
    args = [_count("in_channels"), _count("out_channels"), _sizes("kernel_size", dims),
            _sizes("stride", dims, 1), _conv_padding(dims), _sizes("dilation", dims, 1),
            _integer("groups", 1, 1), _flag("bias", True), _padding_mode()]
    if quantized:
        args += [_quantizer("kernel_quantizer"), _quantizer("bias_quantizer")]
    return args


def _separable(cls, dims):
    return _Layer(cls, [_count("in_channels"), _count("out_channels"), _sizes("kernel_size", dims),
                        _integer("depth_multiplier", 1, 1), _sizes("stride", dims, 1),
                        _conv_padding(dims), _sizes("dilation", dims, 1), _flag("bias", True),
                        _quantizer("depthwise_quantizer"), _quantizer("pointwise_quantizer"),
                        _quantizer("bias_quantizer")],
                  get={"in_channels": lambda m: m.depthwise.in_channels,
                       "out_channels": lambda m: m.pointwise.out_channels,
                       "kernel_size": lambda m: m.depthwise.kernel_size,
                       "depth_multiplier": lambda m: m.depthwise.out_channels // m.depthwise.in_channels,
                       "stride": lambda m: m.depthwise.stride,
                       "padding": lambda m: m.depthwise.padding,
                       "dilation": lambda m: m.depthwise.dilation,
                       "bias": lambda m: m.pointwise.bias is not None,
                       "depthwise_quantizer": lambda m: m.depthwise.kernel_quantizer,
                       "pointwise_quantizer": lambda m: m.pointwise.kernel_quantizer,
                       "bias_quantizer": lambda m: m.pointwise.bias_quantizer})


def _bn_args(quantized):
    args = [_count("num_features"), _eps(), _momentum(), _flag("affine", True),
            _flag("track_running_stats", True)]
    if quantized:
        args += [_quantizer(n) for n in ("gamma_quantizer", "beta_quantizer", "mean_quantizer",
                                         "variance_quantizer", "inverse_quantizer")]
    return args


def _folding_args():
    return [_eps(), _momentum(), _quantizer("kernel_quantizer"), _quantizer("bias_quantizer"),
            _folding_mode(), _integer("ema_freeze_delay", None, nullable=True)]


def _rnn_args(extra):
    return [_count("input_size"), _count("hidden_size"), _integer("num_layers", 1, 1),
            _flag("bias", True), _flag("batch_first", False),
            _number("dropout", 0.0, 0, 1, " in [0, 1]"), _flag("bidirectional", False),
            _quantizer("kernel_quantizer"), _quantizer("recurrent_quantizer"),
            _quantizer("bias_quantizer"), _quantizer("state_quantizer"),
            _activation("activation", "quantized_tanh")] + extra


def _activation_value(m):
    """An activation slot as written: the quantizer (its spec), or the float function's name (for
    None, the float function it stands for)."""
    return m.activation if m.activation is not None else m._activation_fn


def _recurrent_activation_value(m):
    return (m.recurrent_activation if m.recurrent_activation is not None
            else m._recurrent_activation_fn)


_RNN_GET = {"activation": _activation_value}
_GATED_RNN_GET = {"activation": _activation_value,
                  "recurrent_activation": _recurrent_activation_value}


def _max_pool_get_stride(m):
    if m.return_indices:
        raise _ConfigError("return_indices", "True is not supported (a config describes "
                                             "MaxPool2d without return_indices)")
    return m.stride


_LAYERS: Dict[str, _Layer] = {
    # heteroq's layers
    "QLinear": _Layer(qnn.QLinear, [_count("in_features"), _count("out_features"),
                                    _flag("bias", True), _quantizer("kernel_quantizer"),
                                    _quantizer("bias_quantizer")], get={"bias": _has_bias}),
    "QConv1d": _Layer(qnn.QConv1d, _conv_args(1, True), get={"bias": _has_bias}),
    "QConv2d": _Layer(qnn.QConv2d, _conv_args(2, True), get={"bias": _has_bias}),
    "QConvTranspose2d": _Layer(
        qnn.QConvTranspose2d,
        [_count("in_channels"), _count("out_channels"), _sizes("kernel_size", 2),
         _sizes("stride", 2, 1), _paddings("padding", 2), _paddings("output_padding", 2),
         _integer("groups", 1, 1), _flag("bias", True), _sizes("dilation", 2, 1),
         _quantizer("kernel_quantizer"), _quantizer("bias_quantizer")],
        get={"bias": _has_bias}),
    "QDepthwiseConv2d": _Layer(
        qnn.QDepthwiseConv2d,
        [_count("in_channels"), _sizes("kernel_size", 2), _integer("depth_multiplier", 1, 1),
         _sizes("stride", 2, 1), _conv_padding(2), _sizes("dilation", 2, 1), _flag("bias", True),
         _padding_mode(), _quantizer("depthwise_quantizer"), _quantizer("bias_quantizer")],
        get={"bias": _has_bias, "depthwise_quantizer": lambda m: m.kernel_quantizer}),
    "QSeparableConv1d": _separable(qnn.QSeparableConv1d, 1),
    "QSeparableConv2d": _separable(qnn.QSeparableConv2d, 2),
    "QActivation": _Layer(qnn.QActivation, [_quantizer("activation", required=True)],
                          get={"activation": lambda m: m.quantizer}),
    "QAdaptiveActivation": _Layer(
        qnn.QAdaptiveActivation,
        [_Arg("activation", "choice", choices=("quantized_bits", "quantized_relu")),
         _count("total_bits"), _integer("current_step", None, nullable=True),
         _flag("symmetric", True), _integer("quantization_delay", 0, 0),
         _integer("ema_freeze_delay", None, nullable=True),
         _number("ema_decay", 0.9999, 0, 1, " in [0, 1]"), _flag("per_channel", False),
         _integer("num_channels", None, 1, nullable=True), _flag("po2_rounding", False),
         _number("relu_neg_slope", 0.0, -math.inf, math.inf, ""),
         _number("relu_upper_bound", None, -math.inf, math.inf, "", nullable=True)],
        # current_step: the step count now (the `step` buffer), so that the rebuilt layer goes on
        # from there; num_channels only means something per channel.
        get={"current_step": lambda m: int(m.step),
             "num_channels": lambda m: m.integer_bits.numel() if m.per_channel else None}),
    "QBatchNorm1d": _Layer(qnn.QBatchNorm1d, _bn_args(True)),
    "QBatchNorm2d": _Layer(qnn.QBatchNorm2d, _bn_args(True)),
    "QAvgPool2d": _Layer(
        qnn.QAvgPool2d,
        [_sizes("kernel_size", 2), _sizes("stride", 2, None, nullable=True),
         _paddings("padding", 2), _flag("ceil_mode", False), _flag("count_include_pad", True),
         _quantizer("average_quantizer"), _quantizer("activation")]),
    "QGlobalAvgPool2d": _Layer(qnn.QGlobalAvgPool2d,
                               [_quantizer("average_quantizer"), _quantizer("activation"),
                                _flag("keepdim", False)]),
    "QConv2dBatchNorm": _Layer(
        qnn.QConv2dBatchNorm,
        [_count("in_channels"), _count("out_channels"), _sizes("kernel_size", 2),
         _sizes("stride", 2, 1), _paddings("padding", 2), _sizes("dilation", 2, 1),
         _integer("groups", 1, 1), _flag("bias", True)] + _folding_args(),
        get={"bias": _has_bias}),
    "QLinearBatchNorm": _Layer(
        qnn.QLinearBatchNorm,
        [_count("in_features"), _count("out_features"), _flag("bias", True)] + _folding_args(),
        get={"bias": _has_bias}),
    "QSimpleRNN": _Layer(qnn.QSimpleRNN, _rnn_args([]), get=_RNN_GET),
    "QLSTM": _Layer(qnn.QLSTM, _rnn_args([_activation("recurrent_activation", "hard_sigmoid"),
                                          _flag("unit_forget_bias", True)]), get=_GATED_RNN_GET),
    "QGRU": _Layer(qnn.QGRU, _rnn_args([_activation("recurrent_activation", "hard_sigmoid"),
                                        _flag("reset_after", True)]), get=_GATED_RNN_GET),
    # torch's layers
    "Linear": _Layer(torch.nn.Linear, [_count("in_features"), _count("out_features"),
                                       _flag("bias", True)], get={"bias": _has_bias}),
    "Conv1d": _Layer(torch.nn.Conv1d, _conv_args(1, False), get={"bias": _has_bias}),
    "Conv2d": _Layer(torch.nn.Conv2d, _conv_args(2, False), get={"bias": _has_bias}),
    "BatchNorm1d": _Layer(torch.nn.BatchNorm1d, _bn_args(False)),
    "BatchNorm2d": _Layer(torch.nn.BatchNorm2d, _bn_args(False)),
    "ReLU": _Layer(torch.nn.ReLU, [_flag("inplace", False)]),
    "Tanh": _Layer(torch.nn.Tanh, []),
    "Sigmoid": _Layer(torch.nn.Sigmoid, []),
    "Hardswish": _Layer(torch.nn.Hardswish, [_flag("inplace", False)]),
    "Flatten": _Layer(torch.nn.Flatten, [_integer("start_dim", 1), _integer("end_dim", -1)]),
    "Dropout": _Layer(torch.nn.Dropout, [_number("p", 0.5, 0, 1, " in [0, 1]"),
                                         _flag("inplace", False)]),
    "AvgPool2d": _Layer(
        torch.nn.AvgPool2d,
        [_sizes("kernel_size", 2), _sizes("stride", 2, None, nullable=True),
         _paddings("padding", 2), _flag("ceil_mode", False), _flag("count_include_pad", True),
         _integer("divisor_override", None, 1, nullable=True)]),
    "MaxPool2d": _Layer(
        torch.nn.MaxPool2d,
        [_sizes("kernel_size", 2), _sizes("stride", 2, None, nullable=True),
         _paddings("padding", 2), _sizes("dilation", 2, 1), _flag("ceil_mode", False)],
        get={"stride": _max_pool_get_stride}),
    "Identity": _Layer(torch.nn.Identity, []),
    "RecurrentOutput": _Layer(qnn.RecurrentOutput, [_flag("return_sequences", False)]),
}

_BY_TYPE: Dict[type, str] = {layer.cls: name for name, layer in _LAYERS.items()}


def config_classes() -> List[str]:
    """The classes a config may name (``"Sequential"`` and every layer class), sorted."""
    return sorted([_SEQUENTIAL, *_LAYERS])


# ------------------------------------------------------------------------------------------------
# Reading: the whole tree is checked before anything is built.

class _Node:
    def __init__(self, cls: str, name: str, path: str) -> None:
        self.cls, self.name, self.path = cls, name, path
        self.args: Dict[str, Any] = {}
        self.quantizers: Dict[str, Quantizer] = {}
        self.children: List["_Node"] = []


def _read_args(config: Dict[str, Any], cls: str, layer: _Layer, path: str,
               node: Optional[_Node] = None) -> Dict[str, Any]:
    names = [a.name for a in layer.args]
    for key in config:
        if key not in names:
            takes = f"{cls} takes {', '.join(names)}" if names else f"{cls} takes no arguments"
            raise _ConfigError(_join(path, key), f"unexpected argument ({takes})")
    out = {}
    for a in layer.args:
        p = _join(path, a.name)
        if a.name not in config and a.required:
            raise _ConfigError(p, f"missing ({cls} requires it)")
        value, q = a.check(config[a.name] if a.name in config else a.default, p)
        out[a.name] = value
        if q is not None and node is not None:
            node.quantizers[a.name] = q
    return out


def _read_node(v: Any, path: str, root: bool, siblings: Optional[Dict[str, str]]) -> _Node:
    if not isinstance(v, dict):
        raise _ConfigError(path, f"expected a layer (a JSON object), got {_dump(v)}")
    class_path = _join(path, "class")
    if "class" not in v:
        raise _ConfigError(class_path, "missing")
    cls = v["class"]
    if not isinstance(cls, str):
        raise _ConfigError(class_path, f"expected a string, got {_dump(cls)}")
    if cls != _SEQUENTIAL and cls not in _LAYERS:
        raise _ConfigError(class_path, f"unknown class {_dump(cls)} (known: "
                                       f"{', '.join(config_classes())})")
    body = "layers" if cls == _SEQUENTIAL else "config"
    allowed = (["format", "version"] if root else []) + ["class"] + ([] if root else ["name"]) + [body]
    for key in v:
        if key not in allowed:
            raise _ConfigError(_join(path, str(key)), f"unexpected key (expected {', '.join(allowed)})")
    name = ""
    if not root:
        name_path = _join(path, "name")
        if "name" not in v:
            raise _ConfigError(name_path, "missing")
        name = v["name"]
        if not isinstance(name, str):
            raise _ConfigError(name_path, f"expected a string, got {_dump(name)}")
        if not name or "." in name:
            raise _ConfigError(name_path, f'{_dump(name)} is not a valid module name (it must be '
                                          f'non-empty and contain no ".")')
        if name in siblings:
            raise _ConfigError(name_path, f"{_dump(name)} is also the name of {siblings[name]}")
        siblings[name] = path
    node = _Node(cls, name, path)
    body_path = _join(path, body)
    if body not in v:
        raise _ConfigError(body_path, "missing")
    content = v[body]
    if cls == _SEQUENTIAL:
        if not isinstance(content, (list, tuple)):
            raise _ConfigError(body_path, f"expected a list of layers, got {_dump(content)}")
        names: Dict[str, str] = {}
        node.children = [_read_node(c, f"{body_path}[{i}]", False, names)
                         for i, c in enumerate(content)]
    else:
        if not isinstance(content, dict):
            raise _ConfigError(body_path, f"expected an object, got {_dump(content)}")
        node.args = _read_args(content, cls, _LAYERS[cls], body_path, node)
    return node


def _reject_duplicates(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _ConfigError("", f"malformed JSON: duplicate key {_dump(k)}")
        out[k] = v
    return out


def _reject_constant(name: str) -> Any:
    raise _ConfigError("", f"malformed JSON: {name} is not a JSON value")


def _read(config: Union[Dict[str, Any], str, bytes]) -> _Node:
    if isinstance(config, (str, bytes, bytearray)):
        try:
            doc = json.loads(config, object_pairs_hook=_reject_duplicates,
                             parse_constant=_reject_constant)
        except json.JSONDecodeError as e:
            raise _ConfigError("", f"malformed JSON: {e}") from None
    elif isinstance(config, dict):
        doc = config
    else:
        raise TypeError(f"from_config: expected a dict or a JSON string, got {type(config).__name__}")
    if not isinstance(doc, dict):
        raise _ConfigError("", f"the config must be a JSON object, got {_dump(doc)}")
    if "format" not in doc:
        raise _ConfigError("format", f"missing (expected {_dump(FORMAT)})")
    if doc["format"] != FORMAT or not isinstance(doc["format"], str):
        raise _ConfigError("format", f"expected {_dump(FORMAT)}, got {_dump(doc['format'])}")
    if "version" not in doc:
        raise _ConfigError("version", f"missing (expected {VERSION})")
    version = doc["version"]
    if not _is_int(version):
        raise _ConfigError("version", f"expected an integer, got {_dump(version)}")
    if version != VERSION:
        raise _ConfigError("version", f"unsupported version {_dump(version)} (this heteroq reads "
                                      f"version {VERSION})")
    return _read_node(doc, "", True, None)


def _build(node: _Node) -> torch.nn.Module:
    if node.cls == _SEQUENTIAL:
        seq = torch.nn.Sequential()
        for child in node.children:
            module = _build(child)
            try:
                seq.add_module(child.name, module)
            except KeyError as e:  # a name Python reserves (an attribute of nn.Sequential)
                raise _ConfigError(_join(child.path, "name"),
                                   f"{_dump(child.name)} cannot be a module name in Python "
                                   f"({e.args[0] if e.args else e})") from None
        return seq
    layer = _LAYERS[node.cls]
    kwargs = {}
    for a in layer.args:
        v = node.args[a.name]
        if a.name in node.quantizers:  # a quantizer (or an activation slot holding one)
            v = node.quantizers[a.name]
        elif isinstance(v, list):
            v = tuple(v)
        kwargs[a.name] = v
    try:
        return layer.build(**kwargs)
    except (ValueError, TypeError, RuntimeError) as e:
        where = f"{node.path} ({node.cls})" if node.path else node.cls
        raise _ConfigError("", f"{where}: {e}") from None


def _error_text(e: _ConfigError) -> str:
    return f"from_config: {e.path + ': ' if e.path else ''}{e.detail}"


def from_config(config: Union[Dict[str, Any], str, bytes]) -> torch.nn.Module:
    """Builds the model a config describes, with freshly initialised parameters.

    Args:
        config: the config as a dict (as :func:`to_config` returns it) or as JSON text.

    Returns:
        The model, in training mode, float32 on the CPU: an ``nn.Sequential`` (nested ones with
        their children's names) or a single layer. Load the original's ``state_dict`` to get its
        outputs.

    Raises:
        ValueError: malformed JSON, a wrong ``format`` or ``version``, an unknown class, a
            missing, unexpected or ill-typed argument, a bad quantizer spec, or a value the layer
            rejects; the message names the JSON path, e.g. ``from_config:
            layers[3].config.kernel_size: expected an integer >= 1 or a list of 2 integers >= 1,
            got "3"``. Nothing is built unless the whole config is valid.
        TypeError: ``config`` is neither a dict nor a string.

    Example usage::

        model = heteroq.config.from_config(open("model.json").read())
    """
    try:
        return _build(_read(config))
    except _ConfigError as e:
        raise ValueError(_error_text(e)) from None


# ------------------------------------------------------------------------------------------------
# Writing.

def _jsonable(v: Any, where: str, arg: str) -> Any:
    if isinstance(v, Quantizer):
        return v.to_string()
    if isinstance(v, torch.nn.Module):
        raise _ConfigError(arg, f"a {type(v).__name__} is not a heteroq quantizer")
    if isinstance(v, tuple):
        return list(v)
    return v


def _write_node(m: Any, name: str, root: bool, seen: Dict[int, str]) -> Dict[str, Any]:
    where = "the model" if root else f"module '{name}'"
    node: Dict[str, Any] = {"format": FORMAT, "version": VERSION} if root else {}
    if m is None:
        raise ValueError(f"to_config: {where} is None")
    if type(m) is torch.nn.Sequential:
        node["class"] = _SEQUENTIAL
        if not root:
            node["name"] = name.rsplit(".", 1)[-1]
        layers = []
        # _modules rather than named_children(): a module registered twice must be seen twice.
        for key, child in m._modules.items():
            full = key if root else f"{name}.{key}"
            if child is not None and id(child) in seen:
                raise ValueError(f"to_config: module '{full}' is the same module as "
                                 f"'{seen[id(child)]}': a config cannot express shared modules")
            if child is not None:
                seen[id(child)] = full
            layers.append(_write_node(child, full, False, seen))
        node["layers"] = layers
        return node
    cls = _BY_TYPE.get(type(m))
    if cls is None:
        t = type(m)
        raise ValueError(f"to_config: {where} has class {t.__name__} ({t.__module__}."
                         f"{t.__qualname__}), which heteroq's model config does not describe "
                         f"(supported: heteroq.config.config_classes())")
    layer = _LAYERS[cls]
    node["class"] = cls
    if not root:
        node["name"] = name.rsplit(".", 1)[-1]
    try:
        raw = {k: _jsonable(v, where, k) for k, v in layer.write(m).items()}
        node["config"] = _read_args(raw, cls, layer, "")
    except _ConfigError as e:
        raise ValueError(f"to_config: {where} ({cls}): {e.path}: {e.detail}") from None
    return node


def to_config(model: torch.nn.Module) -> Dict[str, Any]:
    """The model config of ``model``: a JSON-serialisable dict.

    ``{"format": "heteroq.model_config", "version": 1, "class": ..., ...}`` with, for an
    ``nn.Sequential``, its children under ``"layers"`` (each with its ``"name"``) and, for a layer,
    its constructor arguments under ``"config"`` with PyTorch's names (quantizers as their spec
    strings, empty slots ``None``). No weights, dtype or device: :func:`from_config` builds a new
    model with fresh float32 parameters.

    Supported: ``nn.Sequential`` trees (nested, with named children) and single layers of
    heteroq's layers (``QLinear``, ``QConv1d``, ``QConv2d``, ``QConvTranspose2d``,
    ``QDepthwiseConv2d``, ``QSeparableConv1d/2d``, ``QActivation``, ``QAdaptiveActivation``,
    ``QBatchNorm1d/2d``, ``QAvgPool2d``, ``QGlobalAvgPool2d``, ``QConv2dBatchNorm``,
    ``QLinearBatchNorm``, ``QSimpleRNN``, ``QLSTM``, ``QGRU``) and of
    ``torch.nn``'s ``Linear``, ``Conv1d/2d``, ``BatchNorm1d/2d``, ``ReLU``, ``Tanh``, ``Sigmoid``,
    ``Hardswish``, ``Flatten``, ``Dropout``, ``AvgPool2d``, ``MaxPool2d``, ``Identity``
    (:func:`config_classes`). Classes match exactly: a subclass (which may change ``forward``) is
    not one of them. The recurrent layers' activation slots are written as their quantizer's spec
    or their float function's name (``"tanh"``, ``"hard_sigmoid"``, ...);
    ``QAdaptiveActivation``'s ``current_step`` as its step count at the time (its ``step``
    buffer).

    Raises:
        ValueError: any other module (the message names its path in the model and its class), a
            module registered twice (configs cannot express sharing), or a value the format cannot
            hold (e.g. ``MaxPool2d(return_indices=True)``).

    Example usage::

        text = json.dumps(heteroq.config.to_config(model), indent=2)
    """
    return _write_node(model, "", True, {})
