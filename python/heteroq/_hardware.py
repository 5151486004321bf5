# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""BOPs/EBOPs and the FPGA resource and latency estimate, re-exported by :mod:`heteroq.cost`.

The model is described by :func:`heteroq.cost.describe` (one forward pass on zeros; the
quantized, folded weight values the forward pass uses) and the descriptions go to the C++ core
(``heteroq::cost::bops``, ``heteroq::cost::fpga_estimate``), which computes every number, exactly
as for C++ models. docs/hardware.md gives the formulas, the FPGA model and its error against
published synthesis results.

Example usage::

    r = heteroq.cost.bops(model, (1, 16))
    r.bops, r.ebops                    # per sample
    print(r)                           # the per-layer table
    e = heteroq.cost.fpga_estimate(model, (1, 16), input_quantizer="quantized_bits(16,5)")
    e.lut, e.dsp, e.ff, e.latency_cycles, e.latency_ns
"""
import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Union

import torch

from . import _C
from .cost import (DEFAULT_INPUT_QUANTIZER, LayerInfos, QuantizerLike, _impl, _Printed, _Table,
                   describe)

__all__ = ["LayerBops", "BopsReport", "FpgaLayer", "FpgaEstimate", "FPGA_DEFAULTS", "bops",
           "fpga_estimate", "bit_span", "CostEstimate", "estimate"]

#: The FPGA model's numeric options and their defaults (``heteroq::cost::FpgaOptions``).
FPGA_DEFAULTS: Dict[str, Any] = dict(_C.hardware_fpga_defaults())

ModelLike = Union[torch.nn.Module, List[Dict[str, Any]], LayerInfos]


@dataclass(frozen=True)
class LayerBops:
    """The BOPs and EBOPs of one layer, per sample (``heteroq::cost::LayerBops``)."""

    name: str
    type: str
    kind: str
    multiplications: int  # with a non-zero weight
    bops: int
    ebops: float
    bias_ebops: float     # HGQ2's bias term, included in ebops
    exact: bool           # False: the weight values were unknown (full width, all non-zero)
    zero_cost: bool       # an unknown layer counted as zero


@dataclass
class BopsReport(_Printed):
    """What :func:`bops` returns; ``str(report)`` is the per-layer table."""

    bops: int
    ebops: float
    multiplications: int
    layers: List[LayerBops]
    zero_cost_layers: List[str]
    table: str = field(repr=False, default=_Table())

    def layer(self, name: str) -> LayerBops:
        """The layer called ``name`` (its module path)."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"bops: no layer named {name!r}; layers: {[l.name for l in self.layers]}")

    def __str__(self) -> str:
        return self.table


@dataclass(frozen=True)
class FpgaLayer:
    """The FPGA estimate of one layer (``heteroq::cost::FpgaLayer``)."""

    name: str
    type: str
    kind: str
    lut: int
    lut_multipliers: int
    lut_adders: int
    lut_activations: int
    dsp: int
    ff: int
    latency_cycles: int
    products_dsp: int
    products_lut: int
    products_free: int
    accumulator_bits: int
    exact: bool
    zero_cost: bool


@dataclass
class FpgaEstimate(_Printed):
    """What :func:`fpga_estimate` returns; ``str(estimate)`` is the per-layer table."""

    lut: int
    dsp: int
    ff: int
    latency_cycles: int
    latency_ns: float
    clock_period_ns: float
    layers: List[FpgaLayer]
    zero_cost_layers: List[str]
    table: str = field(repr=False, default=_Table())

    @property
    def lut_equivalent(self) -> int:
        """LUT + 55 DSP, HGQ's proxy of EBOPs."""
        return self.lut + 55 * self.dsp

    def layer(self, name: str) -> FpgaLayer:
        """The layer called ``name`` (its module path)."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"fpga_estimate: no layer named {name!r}; layers: "
                       f"{[l.name for l in self.layers]}")

    def __str__(self) -> str:
        return self.table


def _layers(model: ModelLike, input_shape: Optional[Sequence[int]], who: str) -> Any:
    if isinstance(model, (list, LayerInfos)):
        if input_shape is not None:
            raise ValueError(f"{who}: `input_shape` must be None when `model` is a list of layer "
                             f"descriptions (heteroq.cost.describe's)")
        return model
    if input_shape is None:
        raise TypeError(f"{who}: `input_shape` is required (the input's shape, batch dimension "
                        f"first)")
    return describe(model, input_shape)


def _bops_from_json(text: str, table: str) -> BopsReport:
    root = json.loads(text)
    layers = [LayerBops(**d) for d in root["layers"]]
    return BopsReport(root["bops"], root["ebops"], root["multiplications"], layers,
                      list(root["zero_cost_layers"]), table)


def _fpga_from_json(text: str, table: str) -> FpgaEstimate:
    root = json.loads(text)
    layers = [FpgaLayer(**d) for d in root["layers"]]
    return FpgaEstimate(root["lut"], root["dsp"], root["ff"], root["latency_cycles"],
                        root["latency_ns"], root["clock_period_ns"], layers,
                        list(root["zero_cost_layers"]), table)


def bops(model: ModelLike, input_shape: Optional[Sequence[int]] = None, *,
         input_quantizer: QuantizerLike = DEFAULT_INPUT_QUANTIZER,
         unknown_layers_as_zero: bool = False) -> BopsReport:
    """BOPs and EBOPs (HGQ's effective bit operations) per layer and in total, per sample.

    BOPs sum, over the multiplications with a non-zero weight, the weight quantizer's width times
    the input's width; EBOPs sum the weight's exact bit span (HGQ: the bits between its highest
    and lowest non-zero bit) times the input's width, plus HGQ2's bias term (the bias values'
    mean span times the bias additions). docs/hardware.md defines every width.

    Args:
        model: a ``torch.nn.Module`` (see :func:`heteroq.cost.qstats`), or the layer
            descriptions of :func:`heteroq.cost.describe` or their
            :class:`heteroq.cost.LayerInfos` (then ``input_shape`` is None).
        input_shape: the input's shape, batch dimension first.
        input_quantizer: the quantizer the model's input comes from; None: a float input.
        unknown_layers_as_zero: count a layer the cost models do not know as zero (listed in
            ``zero_cost_layers``) instead of raising.

    Raises:
        ValueError: an unknown layer (the message names it), a bad ``input_shape``, bad
            descriptions.
    """
    layers = _layers(model, input_shape, "bops")
    text, table = _C.hardware_bops(layers, _impl(input_quantizer, "bops: `input_quantizer`"),
                                   bool(unknown_layers_as_zero))
    return _bops_from_json(text, table)


def fpga_estimate(model: ModelLike, input_shape: Optional[Sequence[int]] = None, *,
                  input_quantizer: QuantizerLike = DEFAULT_INPUT_QUANTIZER,
                  unknown_layers_as_zero: bool = False, **options: Any) -> FpgaEstimate:
    """The LUT, DSP, FF and latency of a fully unrolled implementation (hls4ml's "latency"
    strategy, reuse factor 1), per layer and in total; docs/hardware.md gives the model, its
    assumptions and its error against published synthesis results.

    Args:
        model, input_shape, input_quantizer, unknown_layers_as_zero: as :func:`bops` (hls4ml's
            default input type ap_fixed<16,6> is ``"quantized_bits(16,5)"``).
        **options: the numbers of :data:`FPGA_DEFAULTS`: ``clock_period_ns`` (5.0: 200 MHz),
            ``float_bits``/``float_integer_bits`` (the type of operands that are not quantized),
            the DSP rule ``dsp_min_input_bits``/``dsp_min_weight_span``, ``dsp_port_a_bits``/
            ``dsp_port_b_bits``, ``adder_inputs`` (3: ternary adders), ``adder_level_ns``.

    Raises:
        ValueError: as :func:`bops`; an option out of range (the message names it).
        TypeError: an unknown option.
    """
    unknown = sorted(set(options) - set(FPGA_DEFAULTS))
    if unknown:
        raise TypeError(f"fpga_estimate: unknown option(s) {unknown}; options: "
                        f"{sorted(FPGA_DEFAULTS)}")
    o = {**FPGA_DEFAULTS, **options}
    layers = _layers(model, input_shape, "fpga_estimate")
    text, table = _C.hardware_fpga_estimate(
        layers, _impl(input_quantizer, "fpga_estimate: `input_quantizer`"),
        bool(unknown_layers_as_zero), float(o["clock_period_ns"]), int(o["float_bits"]),
        int(o["float_integer_bits"]), int(o["dsp_min_input_bits"]),
        int(o["dsp_min_weight_span"]), int(o["dsp_port_a_bits"]), int(o["dsp_port_b_bits"]),
        int(o["adder_inputs"]), float(o["adder_level_ns"]))
    return _fpga_from_json(text, table)


def bit_span(value: float) -> int:
    """HGQ's exact bit span of a constant: the bits from its highest to its lowest non-zero bit,
    sign excluded (0 for 0; 0.75 -> 2, 0.625 -> 3, -4 -> 1)."""
    return _C.bit_span(float(value))


@dataclass(frozen=True)
class CostEstimate:
    """The totals of every cost model for one model (what :func:`estimate` returns): each number
    is the one the model's own function gives (named in brackets)."""

    energy: float          # pJ per sample (energy(...).total)
    size_bits: int         # parameter and activation bits (model_size(...).total_bits)
    bops: int              # per sample (bops(...).bops)
    ebops: float           # per sample (bops(...).ebops)
    lut: int               # fpga_estimate(...).lut
    dsp: int               # fpga_estimate(...).dsp
    ff: int                # fpga_estimate(...).ff
    latency_cycles: int    # fpga_estimate(...).latency_cycles
    latency_ns: float      # fpga_estimate(...).latency_ns


def estimate(model: ModelLike, input_shape: Optional[Sequence[int]] = None, *,
             input_quantizer: QuantizerLike = DEFAULT_INPUT_QUANTIZER,
             unknown_layers_as_zero: bool = False,
             qtools_options: Optional[Dict[str, Any]] = None,
             fpga_options: Optional[Dict[str, Any]] = None) -> CostEstimate:
    """Every cost model's total at once, describing the model once (what a search needs per
    trial): the energy and the size (QTools), BOPs and EBOPs, the FPGA estimate.

    Args:
        model, input_shape, input_quantizer, unknown_layers_as_zero: as :func:`bops` (the input
            quantizer of BOPs and the FPGA estimate; the energy and size take QTools's options).
        qtools_options: the options of :func:`heteroq.cost.energy` and
            :func:`heteroq.cost.model_size` (``unknown_layers_as_zero`` defaults to the argument).
        fpga_options: the numeric options of :func:`fpga_estimate`.

    Example usage::

        c = heteroq.cost.estimate(model, (1, 16))
        c.energy, c.size_bits, c.ebops, c.lut, c.latency_ns
    """
    from ._qtools import energy, model_size  # noqa: PLC0415  (imported after this module)

    layers = _layers(model, input_shape, "estimate")
    if isinstance(layers, list):
        layers = LayerInfos(layers)  # converted once for the four models
    q = {"unknown_layers_as_zero": bool(unknown_layers_as_zero), **(qtools_options or {})}
    e = energy(layers, **q)
    s = model_size(layers, **q)
    b = bops(layers, input_quantizer=input_quantizer,
             unknown_layers_as_zero=unknown_layers_as_zero)
    f = fpga_estimate(layers, input_quantizer=input_quantizer,
                      unknown_layers_as_zero=unknown_layers_as_zero, **(fpga_options or {}))
    return CostEstimate(e.total, s.total_bits, b.bops, b.ebops, f.lut, f.dsp, f.ff,
                        f.latency_cycles, f.latency_ns)
