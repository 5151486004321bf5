# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""QTools (QKeras ``qkeras/qtools``): the data-type map, the energy estimate and the size in bits
of a model, re-exported by :mod:`heteroq.cost`.

The model is described by :func:`heteroq.cost.describe` (one forward pass on zeros) and the
descriptions go to the C++ core (``heteroq::cost::data_types``, ``energy``, ``model_size``),
which computes every number, exactly as for C++ models. docs/qtools.md gives the formulas.

Example usage::

    e = heteroq.cost.energy(model, (1, 16))                     # QTools's defaults
    e.total                                                      # pJ per sample
    print(e)                                                     # the per-layer table
    ref = heteroq.cost.energy(model, (1, 16), for_reference=True)
    heteroq.cost.model_size(model, (1, 16)).total_bits          # AutoQKeras's "bits" goal
"""
import json
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, TextIO, Union

import torch

from . import _C
from .cost import LayerInfos, _Printed, _Table, describe
from .quantizers import Quantizer, get_quantizer

__all__ = ["QType", "QToolsStage", "QToolsParameters", "QToolsOperator", "LayerDataType",
           "DataTypeMap", "LayerEnergy", "EnergyReport", "LayerSize", "SizeReport",
           "QTOOLS_DEFAULTS", "data_types", "energy", "model_size", "print_energy"]

#: The options and their defaults (``heteroq::cost::QToolsOptions``; QTools's config_public.py).
QTOOLS_DEFAULTS: Dict[str, Any] = dict(_C.qtools_defaults())

ModelLike = Union[torch.nn.Module, List[Dict[str, Any]], LayerInfos]


@dataclass(frozen=True)
class QType:
    """A value type as QTools represents it: ``int_bits`` excludes the sign (-1 for floats)."""

    name: str
    mode: int
    mode_name: str
    bits: int
    int_bits: int
    signed: bool
    floating_point: bool
    po2: bool
    max_value: float


@dataclass(frozen=True)
class QToolsStage:
    """One multiply-accumulate stage: its operand types, products per sample, fan-in, and the
    product's and the accumulator's types (the bias added, if any)."""

    part: str
    weight: QType
    input: QType
    operations: int
    fan_in: int
    multiplier: QType
    accumulator: QType


@dataclass(frozen=True)
class QToolsParameters:
    name: str
    count: int
    type: QType


@dataclass(frozen=True)
class QToolsOperator:
    """An arithmetic unit (QTools's multiplier, accumulator, divider or adder class) and its cost
    parameters: ``count * gate_factor * table[implemented_as](gate_bits)`` pJ."""

    part: str
    role: str
    kind: str
    implemented_as: str
    output: QType
    gate_factor: float
    gate_bits: float
    count: int
    priced: bool


@dataclass
class LayerDataType:
    name: str
    type: str
    kind: str
    role: str
    input_shape: List[int]
    output_shape: List[int]
    input: QType
    output: QType
    operation_count: int
    stages: List[QToolsStage]
    parameters: List[QToolsParameters]
    operators: List[QToolsOperator]
    counted_as_zero: bool


def _layer_by_name(layers, name):
    for layer in layers:
        if layer.name == name:
            return layer
    raise KeyError(f"qtools: no layer named {name!r}; layers: {[l.name for l in layers]}")


@dataclass
class DataTypeMap(_Printed):
    """What :func:`data_types` returns; ``str(map)`` is the table."""

    layers: List[LayerDataType]
    source: QType
    counted_as_zero: List[str]
    table: str = field(repr=False, default=_Table())

    def layer(self, name: str) -> LayerDataType:
        return _layer_by_name(self.layers, name)

    def __str__(self) -> str:
        return self.table


@dataclass
class LayerEnergy:
    """pJ per sample; ``total`` sums the components in ``included`` (QTools's include_energy)."""

    name: str
    type: str
    role: str
    inputs: float
    parameters: float
    op_cost: float
    outputs: float
    included: List[str]
    total: float
    counted_as_zero: bool


@dataclass
class EnergyReport(_Printed):
    """What :func:`energy` returns: ``total`` in pJ per sample; ``qtools_total`` is QTools's
    ``extract_energy_sum`` (rounded components, truncated), ``total_cost`` its ``pe()`` total of
    every component. ``str(report)`` is the table."""

    layers: List[LayerEnergy]
    total: float
    qtools_total: int
    total_cost: int
    counted_as_zero: List[str]
    table: str = field(repr=False, default=_Table())

    def layer(self, name: str) -> LayerEnergy:
        return _layer_by_name(self.layers, name)

    def __str__(self) -> str:
        return self.table


@dataclass
class LayerSize:
    name: str
    type: str
    parameter_bits: int
    activation_bits: int
    reference_parameter_bits: int
    reference_activation_bits: int


@dataclass
class SizeReport(_Printed):
    """What :func:`model_size` returns (AutoQKeras's "bits" goal); the reference has every value
    at ``ref_bits``. ``str(report)`` is the table."""

    layers: List[LayerSize]
    input_bits: int
    parameter_bits: int
    activation_bits: int
    total_bits: int
    reference_parameter_bits: int
    reference_activation_bits: int
    reference_total_bits: int
    counted_as_zero: List[str]
    table: str = field(repr=False, default=_Table())

    def layer(self, name: str) -> LayerSize:
        return _layer_by_name(self.layers, name)

    def __str__(self) -> str:
        return self.table


# ---------------------------------------------------------------------------------------------

def _type(d: Dict[str, Any]) -> QType:
    return QType(d["name"], d["mode"], d["mode_name"], d["bits"], d["int_bits"], d["signed"],
                 d["floating_point"], d["po2"], d["max_value"])


_TYPE_OPTIONS = ("source_quantizer", "default_quantizer", "keras_quantizer", "keras_accumulator")


def _options(options: Dict[str, Any]) -> Dict[str, Any]:
    """The keyword options as the C++ core reads them: quantizer objects become their spec
    (None: "fp32", a float value); the core checks every name and value."""
    out = dict(options)
    for key in _TYPE_OPTIONS:
        if key in out:
            v = out[key]
            if v is None:
                out[key] = "" if key.startswith("keras_") else "fp32"
            elif isinstance(v, Quantizer):
                out[key] = v.to_string()
            elif isinstance(v, dict):
                out[key] = get_quantizer(v).to_string()
    return out


def _layers(model: ModelLike, input_shape: Optional[Sequence[int]]) -> Any:
    if isinstance(model, (list, LayerInfos)):  # descriptions from heteroq.cost.describe
        return model
    if input_shape is None:
        raise ValueError("qtools: `input_shape` is required for a model (batch dimension first)")
    return describe(model, input_shape)


def data_types(model: ModelLike, input_shape: Optional[Sequence[int]] = None,
               **options: Any) -> DataTypeMap:
    """QTools's data-type map of ``model`` for an input of ``input_shape``: per layer the input,
    weight, bias and output types, the multiplier of each product (fixed-point multiplier,
    shifter, mux, xor/and gate, adder, float) and its output type, the accumulator and bias-adder
    widths, the operation count.

    Args:
        model: a ``torch.nn.Module`` of heteroq and torch layers (as :func:`heteroq.cost.qstats`
            walks it), or the layer list :func:`heteroq.cost.describe` returned (or its
            :class:`heteroq.cost.LayerInfos`, converted once for many calls).
        input_shape: the input's shape, batch dimension first (the counts are per sample).
        **options: the fields of ``heteroq::cost::QToolsOptions`` (:data:`QTOOLS_DEFAULTS`):
            process, weights_on_memory, activations_on_memory, min_sram_size, rd_wr_on_io,
            source_quantizer, default_quantizer, keras_quantizer, keras_accumulator,
            for_reference, reference_internal, reference_accumulator, unknown_layers_as_zero,
            skip_zero_weights (zero weights, e.g. pruned ones, are neither multiplied nor read
            nor stored; default False, QTools's count of every weight), ref_bits, input_bits,
            output_bits.

    Raises:
        ValueError: a bad option (named), a layer of a type the cost model does not know (named;
            unless ``unknown_layers_as_zero=True``), a bad ``input_shape``.
    """
    text, table = _C.qtools_data_types(_layers(model, input_shape), _options(options))
    root = json.loads(text)
    layers = []
    for d in root["layers"]:
        layers.append(LayerDataType(
            name=d["name"], type=d["type"], kind=d["kind"], role=d["role"],
            input_shape=d["input_shape"], output_shape=d["output_shape"],
            input=_type(d["input"]), output=_type(d["output"]),
            operation_count=d["operation_count"],
            stages=[QToolsStage(s["part"], _type(s["weight"]), _type(s["input"]), s["operations"],
                                s["fan_in"], _type(s["multiplier"]), _type(s["accumulator"]))
                    for s in d["stages"]],
            parameters=[QToolsParameters(p["name"], p["count"], _type(p["type"]))
                        for p in d["parameters"]],
            operators=[QToolsOperator(o["part"], o["role"], o["kind"], o["implemented_as"],
                                      _type(o["output"]), o["gate_factor"], o["gate_bits"],
                                      o["count"], o["priced"]) for o in d["operators"]],
            counted_as_zero=d["counted_as_zero"]))
    return DataTypeMap(layers, _type(root["source"]), root["counted_as_zero"], table)


def energy(model: ModelLike, input_shape: Optional[Sequence[int]] = None,
           **options: Any) -> EnergyReport:
    """QTools's energy estimate of ``model`` in pJ per sample (``QTools(...).pe(...)`` and
    ``extract_energy_sum``): per layer the inputs, parameters, op_cost and outputs, and the
    totals. Arguments and errors as :func:`data_types`; ``for_reference=True`` gives AutoQKeras's
    reference (every weight at ``reference_internal``, every accumulator and activation at
    ``reference_accumulator``).
    """
    text, table = _C.qtools_energy(_layers(model, input_shape), _options(options))
    root = json.loads(text)
    layers = [LayerEnergy(l["name"], l["type"], l["role"], l["inputs"], l["parameters"],
                          l["op_cost"], l["outputs"], l["included"], l["total"],
                          l["counted_as_zero"]) for l in root["layers"]]
    return EnergyReport(layers, root["total"], root["qtools_total"], root["total_cost"],
                        root["counted_as_zero"], table)


def model_size(model: ModelLike, input_shape: Optional[Sequence[int]] = None,
               **options: Any) -> SizeReport:
    """AutoQKeras's "bits" goal of ``model``: parameter bits and activation bits (the input at
    ``input_bits``), and the reference with every value at ``ref_bits`` (8). Arguments and errors
    as :func:`data_types`.
    """
    text, table = _C.qtools_model_size(_layers(model, input_shape), _options(options))
    root = json.loads(text)
    layers = [LayerSize(l["name"], l["type"], l["parameter_bits"], l["activation_bits"],
                        l["reference_parameter_bits"], l["reference_activation_bits"])
              for l in root["layers"]]
    return SizeReport(layers, root["input_bits"], root["parameter_bits"], root["activation_bits"],
                      root["total_bits"], root["reference_parameter_bits"],
                      root["reference_activation_bits"], root["reference_total_bits"],
                      root["counted_as_zero"], table)


def print_energy(model: ModelLike, input_shape: Optional[Sequence[int]] = None,
                 file: Optional[TextIO] = None, **options: Any) -> EnergyReport:
    """Prints the table of :func:`energy` (to ``file``, default stdout) and returns the report."""
    report = energy(model, input_shape, **options)
    print(report.table, file=file if file is not None else sys.stdout, end="")
    return report
