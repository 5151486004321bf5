# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""Learned precision: HGQ-style fixed-point quantizers with trainable bit widths (docs/learned_precision.md).

The numerics are the registered C++ operators (``torch.ops.heteroq.fixed_quantize`` and the
``hgq_*`` helpers), shared with the C++ classes of ``heteroq/nn/hgq.h``; these classes hold the
parameters and call them.

Example usage::

    import torch
    from heteroq import hgq

    model = torch.nn.Sequential(hgq.HDense(16, 32), hgq.HActivation((32,), relu=True),
                                hgq.HDense(32, 5))
    y = model(torch.randn(64, 16))                     # training mode: ranges are tracked
    loss = y.square().mean() + 1e-6 * hgq.total_ebops(model)
    loss.backward()                                    # gradients reach every frac_bits
    qmodel = hgq.convert(model.eval())                 # QActivation/QDense with FixedQuantizer
"""
import copy
import math
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from . import nn as qnn
from . import regularizers as _regularizers
from .quantizers import FixedQuantizer, Quantizer, fixed  # noqa: F401  (heteroq.hgq.FixedQuantizer)

__all__ = ["FixedQuantizer", "fixed", "HQuantizer", "HDense", "HLinear", "HConv1d", "HConv2d",
           "HConvTranspose2d", "HActivation", "total_ebops", "convert", "from_quantized"]

_ROUND = ("RND", "RND_CONV", "TRN")
_OVERFLOW = ("SAT", "SAT_SYM", "WRAP")




def _keep_negative_code(v: Optional[Union[bool, int]]) -> int:
    if v is None:
        return -1
    if v in (0, 1, True, False):
        return int(v)
    raise ValueError(f"keep_negative must be None (from the data), True/1 or False/0, got {v!r}")


class HQuantizer(torch.nn.Module):
    """A fixed-point quantizer with trainable fractional bits (C++ ``heteroq::nn::HQuantizer``).

    Args:
        shape: one sample's shape (activations: without the batch axis) or the weight's shape;
            for "tensor"/"channel" granularity only the rank (and the channel's size) matter.
        granularity: "tensor", "channel" (one width per index of ``channel_axis``) or "element".
        is_weight: integer bits (and an automatic keep_negative) from the values quantized at each
            call; otherwise from the ranges tracked in training (frozen in eval mode).
        init_bits: the initial fractional bits (HGQ's init_bw).
        trainable_integer / init_integer: integer bits as a parameter instead.
        keep_negative: None (a sign bit where the observed minimum is < 0), True or False.
        round_mode, overflow_mode: as :func:`torch.ops.heteroq.fixed_quantize`.
        min_frac_bits, max_frac_bits: the clamp of the fractional bits (HGQ's bw_clip).
    """

    def __init__(self, shape: Sequence[int], granularity: str = "element", channel_axis: int = 0,
                 is_weight: bool = False, init_bits: float = 2.0, trainable_integer: bool = False,
                 init_integer: float = 0.0, keep_negative: Optional[Union[bool, int]] = None,
                 round_mode: str = "RND_CONV", overflow_mode: str = "SAT",
                 min_frac_bits: float = -16.0, max_frac_bits: float = 24.0) -> None:
        super().__init__()
        shape = [int(s) for s in shape]
        if any(s < 1 for s in shape):
            raise ValueError(f"HQuantizer: `shape` sizes must be >= 1, got {shape}")
        if granularity == "tensor":
            ws: List[int] = []
        elif granularity == "element":
            ws = list(shape)
        elif granularity == "channel":
            axis = channel_axis + len(shape) if channel_axis < 0 else channel_axis
            if not 0 <= axis < len(shape):
                raise ValueError(f"HQuantizer: `channel_axis` {channel_axis} is out of range for "
                                 f"a shape of rank {len(shape)}")
            ws = [1] * len(shape)
            ws[axis] = shape[axis]
        else:
            raise ValueError(f"HQuantizer: `granularity` must be 'tensor', 'channel' or "
                             f"'element', got {granularity!r}")
        if round_mode not in _ROUND:
            raise ValueError(f"HQuantizer: `round_mode` must be 'RND', 'RND_CONV' or 'TRN', got "
                             f"{round_mode!r}")
        if overflow_mode not in _OVERFLOW:
            raise ValueError(f"HQuantizer: `overflow_mode` must be 'SAT', 'SAT_SYM' or 'WRAP', "
                             f"got {overflow_mode!r}")
        if not -64 <= min_frac_bits <= max_frac_bits <= 64:
            raise ValueError("HQuantizer: need -64 <= min_frac_bits <= max_frac_bits <= 64")
        if not (abs(init_bits) <= 64 and abs(init_integer) <= 64):
            raise ValueError("HQuantizer: `init_bits` and `init_integer` must be finite, in "
                             "[-64, 64]")
        self.shape = shape
        self.granularity = granularity
        self.channel_axis = channel_axis
        self.is_weight = is_weight
        self.trainable_integer = trainable_integer
        self._keep_negative = _keep_negative_code(keep_negative)
        self.round_mode = round_mode
        self.overflow_mode = overflow_mode
        self.min_frac_bits = float(min_frac_bits)
        self.max_frac_bits = float(max_frac_bits)
        self.widths_shape = ws
        self.frac_bits = torch.nn.Parameter(torch.full(ws, float(init_bits)))
        i0 = torch.full(ws, float(init_integer))
        if trainable_integer:
            self.int_bits = torch.nn.Parameter(i0)
        else:
            self.register_buffer("int_bits", i0)
        self.register_buffer("keep_negative",
                             torch.full(ws, 0.0 if self._keep_negative == 0 else 1.0))
        self.register_buffer("max_abs", torch.zeros(ws))
        self.register_buffer("min_value", torch.zeros(ws))

    def used_frac_bits(self) -> Tensor:
        """frac_bits clamped to [min_frac_bits, max_frac_bits] (what forward uses)."""
        return self.frac_bits.clamp(self.min_frac_bits, self.max_frac_bits)

    def _widths_for(self, x: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        if not self.is_weight or x is None:
            return self.keep_negative, self.int_bits
        with torch.no_grad():
            m, mn = torch.ops.heteroq._hgq_group_stats(x, self.widths_shape)
            m = m.to(self.frac_bits.dtype)
            mn = mn.to(self.frac_bits.dtype)
            k = (mn < 0).to(self.frac_bits.dtype) if self._keep_negative == -1 \
                else self.keep_negative
            i = self.int_bits if self.trainable_integer else torch.ops.heteroq._hgq_int_bits(
                m, self.used_frac_bits().detach(), k)
        return k, i

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise TypeError("HQuantizer: expected a floating-point tensor")
        if self.is_weight:
            k, i = self._widths_for(x)
            with torch.no_grad():
                self.keep_negative.copy_(k)
                if not self.trainable_integer:
                    self.int_bits.copy_(i)
                m, mn = torch.ops.heteroq._hgq_group_stats(x, self.widths_shape)
                self.max_abs.copy_(m)
                self.min_value.copy_(mn)
        elif self.training:
            with torch.no_grad():
                m, mn = torch.ops.heteroq._hgq_group_stats(x, self.widths_shape)
                self.max_abs.copy_(torch.maximum(self.max_abs, m.to(self.max_abs.dtype)))
                self.min_value.copy_(torch.minimum(self.min_value, mn.to(self.min_value.dtype)))
                if self._keep_negative == -1:
                    self.keep_negative.copy_((self.min_value < 0).to(self.max_abs.dtype))
                if not self.trainable_integer:
                    self.int_bits.copy_(torch.ops.heteroq._hgq_int_bits(
                        self.max_abs, self.used_frac_bits().detach(), self.keep_negative))
        return torch.ops.heteroq.fixed_quantize(x, self.keep_negative, self.int_bits,
                                                self.used_frac_bits(), self.round_mode,
                                                self.overflow_mode)

    def quantize(self, x: Tensor) -> Tensor:
        """forward() without changing any state."""
        k, i = self._widths_for(x)
        return torch.ops.heteroq.fixed_quantize(x, k, i, self.used_frac_bits(), self.round_mode,
                                                self.overflow_mode)

    def bit_widths(self) -> Tensor:
        """relu(k + i + f), differentiable w.r.t. frac_bits through a straight-through round."""
        return torch.ops.heteroq.hgq_bit_widths(self.keep_negative, self.int_bits,
                                                self.used_frac_bits())

    def value_widths(self, q: Tensor) -> Tensor:
        """The exact bit span of each quantized value (sign excluded), gradient 1 w.r.t. f where
        q != 0 (the EBOPs width of constants)."""
        return torch.ops.heteroq.hgq_value_widths(q, self.used_frac_bits())

    def to_fixed(self, values: Optional[Tensor] = None) -> FixedQuantizer:
        """A :class:`FixedQuantizer` with the current widths (for a weight quantizer, those of
        ``values`` when given); equal to this quantizer's eval forward."""
        k, i = self._widths_for(values)
        return FixedQuantizer.from_widths(k.detach(), i.detach().round(),
                                          self.used_frac_bits().detach().round(), self.round_mode,
                                          self.overflow_mode)

    def reset_ranges(self) -> None:
        with torch.no_grad():
            self.max_abs.zero_()
            self.min_value.zero_()

    def extra_repr(self) -> str:
        return (f"granularity={self.granularity}, widths={tuple(self.widths_shape)}, "
                f"is_weight={self.is_weight}, round_mode={self.round_mode}, "
                f"overflow_mode={self.overflow_mode}")


def _input_quantizer(shape, granularity, init_bits, keep_negative, round_mode, overflow_mode):
    return HQuantizer(shape, granularity=granularity, channel_axis=0, init_bits=init_bits,
                      keep_negative=keep_negative, round_mode=round_mode,
                      overflow_mode=overflow_mode)


def _weight_quantizer(shape, granularity, init_bits, round_mode, overflow_mode):
    return HQuantizer(shape, granularity=granularity, channel_axis=0, is_weight=True,
                      init_bits=init_bits, keep_negative=None, round_mode=round_mode,
                      overflow_mode=overflow_mode)


def _conv_quantizers(layer: torch.nn.Module, wshape, dims: int, quantize_input: bool,
                     input_granularity: str, input_shape: Optional[Sequence[int]],
                     input_init_bits: float, input_keep_negative: Optional[bool],
                     kernel_granularity: str, kernel_init_bits: float, bias_granularity: str,
                     bias_init_bits: float, round_mode: str, overflow_mode: str) -> None:
    """A convolution's (direct or transposed) input, kernel and bias quantizers; the input's
    widths per channel, or per element of ``input_shape`` (C, *spatial)."""
    name = type(layer).__name__
    c = layer.in_channels
    layer.input_quantizer = None
    if quantize_input:
        ishape = [c] + [1] * dims
        if input_granularity == "element":
            if input_shape is None or len(input_shape) != dims + 1 or input_shape[0] != c:
                raise ValueError(f"{name}: per-element input widths need `input_shape` (C, "
                                 f"{'L' if dims == 1 else 'H, W'}) with C = in_channels")
            ishape = list(input_shape)
        layer.input_quantizer = _input_quantizer(ishape, input_granularity, input_init_bits,
                                                 input_keep_negative, round_mode, overflow_mode)
    layer.kernel_quantizer = _weight_quantizer(wshape, kernel_granularity, kernel_init_bits,
                                               round_mode, overflow_mode)
    layer.bias_quantizer = (_weight_quantizer((layer.out_channels,), bias_granularity,
                                              bias_init_bits, round_mode, overflow_mode)
                            if layer.bias is not None else None)


def _reset_conv_parameters(layer: torch.nn.Module) -> None:
    """torch.nn's initialisation of a convolution (fan_in from the kernel's dimension 1 on)."""
    torch.nn.init.kaiming_uniform_(layer.weight, a=5 ** 0.5)
    if layer.bias is not None:
        fan_in = layer.weight.numel() // layer.weight.shape[0]
        bound = 1.0 / fan_in ** 0.5
        torch.nn.init.uniform_(layer.bias, -bound, bound)


def _input_widths(iq: Optional[HQuantizer], like: Tensor) -> Tensor:
    return iq.bit_widths() if iq is not None else torch.full((), 32.0, dtype=like.dtype,
                                                             device=like.device)


class HDense(torch.nn.Module):
    """``y = q_k(W) q_in(x) + q_b(b)`` (``torch.nn.Linear``'s layout and initialisation) with
    :class:`HQuantizer` s for input, kernel and bias (C++ ``heteroq::nn::HDense``). Alias:
    ``HLinear``.

    :meth:`ebops` = Σ_ij bw_in[j] span(q_k(W)[i, j]) + mean span(q_b(b)) · out_features (per
    position of the input), differentiable w.r.t. the fractional bits.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 quantize_input: bool = True, input_granularity: str = "element",
                 input_init_bits: float = 2.0, input_keep_negative: Optional[bool] = None,
                 kernel_granularity: str = "element", kernel_init_bits: float = 2.0,
                 bias_granularity: str = "element", bias_init_bits: float = 2.0,
                 round_mode: str = "RND_CONV", overflow_mode: str = "SAT") -> None:
        super().__init__()
        if in_features <= 0 or out_features <= 0:
            raise ValueError(f"HDense: `in_features` and `out_features` must be > 0, got "
                             f"{in_features} and {out_features}")
        self.in_features = in_features
        self.out_features = out_features
        self.weight = torch.nn.Parameter(torch.empty(out_features, in_features))
        self.bias = torch.nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters()
        self.input_quantizer = (_input_quantizer((in_features,), input_granularity,
                                                 input_init_bits, input_keep_negative,
                                                 round_mode, overflow_mode)
                                if quantize_input else None)
        self.kernel_quantizer = _weight_quantizer((out_features, in_features), kernel_granularity,
                                                  kernel_init_bits, round_mode, overflow_mode)
        self.bias_quantizer = (_weight_quantizer((out_features,), bias_granularity,
                                                 bias_init_bits, round_mode, overflow_mode)
                               if bias else None)
        self.last_positions = 1

    def reset_parameters(self) -> None:
        torch.nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)
        if self.bias is not None:
            bound = 1.0 / self.in_features ** 0.5
            torch.nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        if input.dim() < 1 or input.shape[-1] != self.in_features:
            raise ValueError(f"HDense: expected input with last dimension {self.in_features}, "
                             f"got shape {tuple(input.shape)}")
        positions = 1
        for s in input.shape[1:-1]:
            positions *= int(s)
        self.last_positions = positions
        x = self.input_quantizer(input) if self.input_quantizer is not None else input
        b = self.bias_quantizer(self.bias) if self.bias is not None else None
        return F.linear(x, self.kernel_quantizer(self.weight), b)

    def ebops(self) -> Tensor:
        bw_w = self.kernel_quantizer.value_widths(self.kernel_quantizer.quantize(self.weight))
        bw_b = (self.bias_quantizer.value_widths(self.bias_quantizer.quantize(self.bias))
                if self.bias is not None else None)
        bw_in = _input_widths(self.input_quantizer, bw_w).reshape(-1).squeeze()
        return torch.ops.heteroq.hgq_ebops_linear(bw_in, bw_w, bw_b, self.last_positions)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, quantize_input={self.input_quantizer is not None}")


HLinear = HDense


class _HConv(torch.nn.Module):
    _dims = 2
    _conv = staticmethod(F.conv2d)

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, quantize_input: bool = True,
                 input_granularity: str = "channel", input_shape: Optional[Sequence[int]] = None,
                 input_init_bits: float = 2.0, input_keep_negative: Optional[bool] = None,
                 kernel_granularity: str = "element", kernel_init_bits: float = 2.0,
                 bias_granularity: str = "element", bias_init_bits: float = 2.0,
                 round_mode: str = "RND_CONV", overflow_mode: str = "SAT") -> None:
        super().__init__()
        name = type(self).__name__
        d = self._dims
        if (in_channels <= 0 or out_channels <= 0 or groups <= 0 or in_channels % groups
                or out_channels % groups):
            raise ValueError(f"{name}: `in_channels` and `out_channels` must be > 0 and "
                             f"divisible by `groups` ({groups})")

        def tup(v):
            return tuple(int(a) for a in v) if isinstance(v, (tuple, list)) else (int(v),) * d

        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = tup(kernel_size), tup(stride)
        self.padding, self.dilation, self.groups = tup(padding), tup(dilation), groups
        wshape = (out_channels, in_channels // groups) + self.kernel_size
        self.weight = torch.nn.Parameter(torch.empty(wshape))
        self.bias = torch.nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()
        _conv_quantizers(self, wshape, d, quantize_input, input_granularity, input_shape,
                         input_init_bits, input_keep_negative, kernel_granularity,
                         kernel_init_bits, bias_granularity, bias_init_bits, round_mode,
                         overflow_mode)
        self.last_input_size: List[int] = []

    def reset_parameters(self) -> None:
        _reset_conv_parameters(self)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        if input.dim() != self._dims + 2 or input.shape[1] != self.in_channels:
            raise ValueError(f"{type(self).__name__}: expected input of shape (N, "
                             f"{self.in_channels}, {'L' if self._dims == 1 else 'H, W'}), got "
                             f"{tuple(input.shape)}")
        self.last_input_size = [int(s) for s in input.shape[2:]]
        x = self.input_quantizer(input) if self.input_quantizer is not None else input
        b = self.bias_quantizer(self.bias) if self.bias is not None else None
        return self._conv(x, self.kernel_quantizer(self.weight), b, self.stride, self.padding,
                          self.dilation, self.groups)

    def ebops(self) -> Tensor:
        if not self.last_input_size:
            raise ValueError(f"{type(self).__name__}.ebops(): the input size is unknown until "
                             f"the first forward()")
        bw_w = self.kernel_quantizer.value_widths(self.kernel_quantizer.quantize(self.weight))
        bw_b = (self.bias_quantizer.value_widths(self.bias_quantizer.quantize(self.bias))
                if self.bias is not None else None)
        return torch.ops.heteroq.hgq_ebops_conv(
            _input_widths(self.input_quantizer, bw_w), bw_w, bw_b, self.last_input_size,
            list(self.stride), list(self.padding), list(self.dilation), self.groups)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, groups={self.groups}, "
                f"bias={self.bias is not None}")


class HConv1d(_HConv):
    """A 1-D convolution (``torch.nn.Conv1d``'s layout, zero padding) with :class:`HQuantizer` s
    for input (per channel by default; per element with ``input_shape``), kernel and bias (C++
    ``heteroq::nn::HConv1d``). :meth:`ebops` convolves the input's width map with the kernel's
    spans (padding costs nothing)."""

    _dims = 1
    _conv = staticmethod(F.conv1d)


class HConv2d(_HConv):
    """A 2-D convolution (``torch.nn.Conv2d``'s layout) with :class:`HQuantizer` s; see
    :class:`HConv1d` (C++ ``heteroq::nn::HConv2d``)."""

    _dims = 2
    _conv = staticmethod(F.conv2d)


class HConvTranspose2d(torch.nn.Module):
    """A transposed 2-D convolution (``torch.nn.ConvTranspose2d``'s layout: kernel ``(in,
    out/groups, kh, kw)``, zero padding) with :class:`HQuantizer` s for input (per channel by
    default; per element with ``input_shape``), kernel and bias (C++
    ``heteroq::nn::HConvTranspose2d``). :meth:`ebops` counts every product of an input value with
    a kernel value of its group, as QTools counts a transposed convolution (those landing in the
    cropped border included), plus the bias term. ``kernel_granularity="channel"`` gives one
    width per *input* channel (the kernel's axis 0, as PyTorch lays it out)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 output_padding=0, groups: int = 1, bias: bool = True, dilation=1,
                 quantize_input: bool = True, input_granularity: str = "channel",
                 input_shape: Optional[Sequence[int]] = None, input_init_bits: float = 2.0,
                 input_keep_negative: Optional[bool] = None, kernel_granularity: str = "element",
                 kernel_init_bits: float = 2.0, bias_granularity: str = "element",
                 bias_init_bits: float = 2.0, round_mode: str = "RND_CONV",
                 overflow_mode: str = "SAT") -> None:
        super().__init__()
        if (in_channels <= 0 or out_channels <= 0 or groups <= 0 or in_channels % groups
                or out_channels % groups):
            raise ValueError(f"HConvTranspose2d: `in_channels` and `out_channels` must be > 0 and "
                             f"divisible by `groups` ({groups})")

        def tup(v):
            return tuple(int(a) for a in v) if isinstance(v, (tuple, list)) else (int(v),) * 2

        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = tup(kernel_size), tup(stride), tup(padding)
        self.output_padding, self.dilation, self.groups = tup(output_padding), tup(dilation), groups
        if (min(self.stride) < 1 or min(self.dilation) < 1 or min(self.padding) < 0
                or min(self.kernel_size) < 1):
            raise ValueError("HConvTranspose2d: `kernel_size`, `stride` and `dilation` must be "
                             ">= 1 and `padding` >= 0")
        for op, st, dl in zip(self.output_padding, self.stride, self.dilation):
            if op < 0 or (op >= st and op >= dl):
                raise ValueError("HConvTranspose2d: `output_padding` must be >= 0 and smaller than "
                                 "`stride` or `dilation` (PyTorch's rule)")
        wshape = (in_channels, out_channels // groups) + self.kernel_size
        self.weight = torch.nn.Parameter(torch.empty(wshape))
        self.bias = torch.nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()
        _conv_quantizers(self, wshape, 2, quantize_input, input_granularity, input_shape,
                         input_init_bits, input_keep_negative, kernel_granularity,
                         kernel_init_bits, bias_granularity, bias_init_bits, round_mode,
                         overflow_mode)
        self.last_input_size: List[int] = []
        self.last_outputs = 0

    def reset_parameters(self) -> None:
        _reset_conv_parameters(self)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        if input.dim() != 4 or input.shape[1] != self.in_channels:
            raise ValueError(f"HConvTranspose2d: expected input of shape (N, {self.in_channels}, "
                             f"H, W), got {tuple(input.shape)}")
        x = self.input_quantizer(input) if self.input_quantizer is not None else input
        b = self.bias_quantizer(self.bias) if self.bias is not None else None
        y = F.conv_transpose2d(x, self.kernel_quantizer(self.weight), b, self.stride,
                               self.padding, self.output_padding, self.groups, self.dilation)
        self.last_input_size = [int(s) for s in input.shape[2:]]
        self.last_outputs = int(math.prod(y.shape[1:]))
        return y

    def ebops(self) -> Tensor:
        if not self.last_input_size:
            raise ValueError("HConvTranspose2d.ebops(): the input size is unknown until the first "
                             "forward()")
        bw_w = self.kernel_quantizer.value_widths(self.kernel_quantizer.quantize(self.weight))
        bw_b = (self.bias_quantizer.value_widths(self.bias_quantizer.quantize(self.bias))
                if self.bias is not None else None)
        return torch.ops.heteroq.hgq_ebops_conv_transpose(
            _input_widths(self.input_quantizer, bw_w), bw_w, bw_b, self.last_input_size,
            self.last_outputs)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, "
                f"output_padding={self.output_padding}, dilation={self.dilation}, "
                f"groups={self.groups}, bias={self.bias is not None}")


class HActivation(torch.nn.Module):
    """An activation quantizer ``q(relu(x))`` or ``q(x)`` (C++ ``heteroq::nn::HActivation``).

    With ``relu`` the sign bit is 0 and the overflow mode must saturate, so the converted
    ``QActivation`` (no ReLU) computes the same values. :meth:`ebops` is 0 (no multiplications).
    """

    def __init__(self, shape: Sequence[int], relu: bool = False, granularity: str = "element",
                 channel_axis: int = 0, init_bits: float = 2.0,
                 keep_negative: Optional[bool] = None, round_mode: str = "RND_CONV",
                 overflow_mode: str = "SAT") -> None:
        super().__init__()
        if relu and overflow_mode == "WRAP":
            raise ValueError("HActivation: a ReLU needs overflow_mode 'SAT' or 'SAT_SYM', not "
                             "'WRAP' (a wrapped code of a negative input is not 0)")
        if relu and keep_negative:
            raise ValueError("HActivation: a ReLU's output has no sign: keep_negative must be "
                             "False or None")
        self.relu = relu
        self.quantizer = HQuantizer(shape, granularity=granularity, channel_axis=channel_axis,
                                    init_bits=init_bits,
                                    keep_negative=False if relu else keep_negative,
                                    round_mode=round_mode, overflow_mode=overflow_mode)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return self.quantizer(torch.relu(input) if self.relu else input)

    def ebops(self) -> Tensor:
        return torch.zeros((), dtype=self.quantizer.frac_bits.dtype,
                           device=self.quantizer.frac_bits.device)

    def extra_repr(self) -> str:
        return f"relu={self.relu}, granularity={self.quantizer.granularity}"


_H_LAYERS = (HDense, HConv1d, HConv2d, HConvTranspose2d, HActivation)


# The sum of ebops() over a model: one implementation, heteroq.regularizers.total_ebops.
total_ebops = _regularizers.total_ebops


def _copy_params(dst: torch.nn.Module, src: torch.nn.Module) -> None:
    with torch.no_grad():
        dst.weight.data = src.weight.detach().clone()
        if src.bias is not None:
            dst.bias.data = src.bias.detach().clone()


def _convert_layer(m: torch.nn.Module) -> Optional[torch.nn.Module]:
    if isinstance(m, HActivation):
        return qnn.QActivation(m.quantizer.to_fixed())
    if isinstance(m, HDense):
        q = qnn.QDense(m.in_features, m.out_features, bias=m.bias is not None,
                       kernel_quantizer=m.kernel_quantizer.to_fixed(m.weight),
                       bias_quantizer=(m.bias_quantizer.to_fixed(m.bias)
                                       if m.bias is not None else None))
    elif isinstance(m, (HConv1d, HConv2d)):
        cls = qnn.QConv1d if isinstance(m, HConv1d) else qnn.QConv2d
        q = cls(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation,
                m.groups, bias=m.bias is not None,
                kernel_quantizer=m.kernel_quantizer.to_fixed(m.weight),
                bias_quantizer=(m.bias_quantizer.to_fixed(m.bias)
                                if m.bias is not None else None))
    elif isinstance(m, HConvTranspose2d):
        q = qnn.QConvTranspose2d(m.in_channels, m.out_channels, m.kernel_size, m.stride,
                                 m.padding, m.output_padding, m.groups, bias=m.bias is not None,
                                 dilation=m.dilation,
                                 kernel_quantizer=m.kernel_quantizer.to_fixed(m.weight),
                                 bias_quantizer=(m.bias_quantizer.to_fixed(m.bias)
                                                 if m.bias is not None else None))
    else:
        return None
    _copy_params(q, m)
    q = q.to(m.weight.device, m.weight.dtype)
    if m.input_quantizer is None:
        return q
    return torch.nn.Sequential(qnn.QActivation(m.input_quantizer.to_fixed()), q)


def convert(model: torch.nn.Module) -> torch.nn.Module:
    """Converts the H layers of ``model`` into heteroq's Q layers with :class:`FixedQuantizer` s of
    the current widths (C++ ``heteroq::nn::hgq_convert``): HDense -> QActivation(input) + QDense,
    HConv1d/2d -> QActivation(input) + QConv1d/2d, HConvTranspose2d -> QActivation(input) +
    QConvTranspose2d, HActivation -> QActivation. In a
    ``torch.nn.Sequential`` the pair is spliced in; elsewhere it replaces the layer as a
    ``torch.nn.Sequential``. Returns a new model whose eval forward equals ``model``'s bit for bit
    (``model`` is not changed)."""
    direct = _convert_layer(model)
    if direct is not None:
        return direct
    if isinstance(model, torch.nn.Sequential):
        out: List[torch.nn.Module] = []
        for child in model:
            c = convert(child)
            if isinstance(c, torch.nn.Sequential) and isinstance(child, _H_LAYERS):
                out.extend(c)
            else:
                out.append(c)
        return torch.nn.Sequential(*out).train(model.training)
    new = copy.deepcopy(model)
    for name, child in model.named_children():
        setattr(new, name, convert(child))
    return new


def _start_widths(q: Optional[Quantizer], where: str) -> Tuple[float, bool, bool]:
    """(f, relu, keep_negative) of a quantizer H layers can start from."""
    name = getattr(q, "_impl", None).name if isinstance(q, Quantizer) else None
    if name == "quantized_bits":
        c = q.get_config()
        if (c.get("alpha") in (None, 1, 1.0) and c.get("qnoise_factor", 1.0) == 1.0):
            k = 1 if c["keep_negative"] else 0
            return float(c["bits"] - c["integer"] - k), False, bool(k)
    elif name == "quantized_relu":
        c = q.get_config()
        if not c["use_sigmoid"] and c["negative_slope"] == 0 and c.get("qnoise_factor", 1.0) == 1:
            return float(c["bits"] - c["integer"]), True, False
    elif isinstance(q, FixedQuantizer) and q.is_uniform:
        return (float(q.frac_bits.reshape(-1)[0]), False,
                bool(q.keep_negative.reshape(-1)[0] != 0))
    raise ValueError(f"from_quantized: {where} has quantizer {q}; only quantized_bits with alpha "
                     f"None or 1, quantized_relu without slope or sigmoid, and uniform fixed "
                     f"start H layers")


def _h_layer(child: torch.nn.Module, where: str, weight: Tensor, bias: Optional[Tensor],
             kernel_q: Optional[Quantizer], bias_q: Optional[Quantizer], input_bits: float,
             default_input_bits: float) -> torch.nn.Module:
    """One H layer (HDense, HConv1d or HConv2d) with ``child``'s geometry, starting from the
    given float weight and bias and the widths of their quantizers."""
    fk = _start_widths(kernel_q, where + " kernel")[0]
    fb = _start_widths(bias_q, where + " bias")[0] if bias_q is not None else default_input_bits
    common = dict(bias=bias is not None, kernel_init_bits=fk, bias_init_bits=fb,
                  input_init_bits=input_bits)
    if isinstance(child, (qnn.QLinear, torch.nn.Linear)):
        h: torch.nn.Module = HDense(child.in_features, child.out_features,
                                    input_granularity="element", **common)
    elif isinstance(child, torch.nn.ConvTranspose2d):
        if child.padding_mode != "zeros":
            raise ValueError(f"from_quantized: {where} has padding_mode {child.padding_mode!r}; "
                             f"H convolutions pad with zeros")
        h = HConvTranspose2d(child.in_channels, child.out_channels, child.kernel_size,
                             child.stride, child.padding, child.output_padding, child.groups,
                             dilation=child.dilation, input_granularity="channel", **common)
    else:
        if child.padding_mode != "zeros":
            raise ValueError(f"from_quantized: {where} has padding_mode {child.padding_mode!r}; "
                             f"H convolutions pad with zeros")
        if isinstance(child.padding, str):
            raise ValueError(f"from_quantized: {where} has padding={child.padding!r}; H "
                             f"convolutions take explicit padding")
        cls = HConv1d if isinstance(child, torch.nn.Conv1d) else HConv2d
        h = cls(child.in_channels, child.out_channels, child.kernel_size, child.stride,
                child.padding, child.dilation, child.groups, input_granularity="channel",
                **common)
    with torch.no_grad():
        h.weight.data = weight.detach().clone()
        if bias is not None:
            h.bias.data = bias.detach().clone()
    return h.to(weight.device, weight.dtype)


def from_quantized(model: torch.nn.Module, default_input_bits: float = 8.0) -> torch.nn.Module:
    """Turns a model of Q layers (``quantized_bits`` with alpha None or 1, ``quantized_relu``;
    e.g. AutoQ's best model) into H layers starting from its widths (C++
    ``heteroq::nn::hgq_from_quantized``): QDense/QConv1d/QConv2d/QConvTranspose2d and
    QDepthwiseConv2d (a grouped HConv2d) -> HDense/HConv1d/HConv2d/HConvTranspose2d with kernel
    and bias f = bits - integer -
    keep_negative and the input f of the preceding QActivation (else ``default_input_bits``);
    QSeparableConv1d/2d -> its depthwise and pointwise convolutions as two H convolutions (the
    pointwise one learns the precision of the depthwise result, starting at
    ``default_input_bits``); QLinearBatchNorm/QConv2dBatchNorm -> HDense/HConv2d holding the
    folded kernel and bias (``get_folded_weights()``: the running statistics are folded in, the
    refinement trains the deployed kernel and bias); QActivation -> HActivation
    (``quantized_relu``: with ReLU). Weights are copied; other modules are copied as they are.
    Integer bits are then learned from the ranges (activations) or the weights."""
    if not isinstance(model, torch.nn.Sequential):
        raise TypeError(f"from_quantized: expected a torch.nn.Sequential, got "
                        f"{type(model).__name__}")
    out: List[torch.nn.Module] = []
    act_bits: Optional[float] = None
    plain = (qnn.QLinear, qnn.QConv1d, qnn.QConv2d, qnn.QDepthwiseConv2d, qnn.QConvTranspose2d)
    folded = (qnn.QLinearBatchNorm, qnn.QConv2dBatchNorm)
    for index, child in enumerate(model):
        where = f"layer {index}"
        fin = act_bits if act_bits is not None else default_input_bits
        if type(child) in plain:
            out.append(_h_layer(child, where, child.weight, child.bias, child.kernel_quantizer,
                                child.bias_quantizer, fin, default_input_bits))
            act_bits = None
        elif type(child) in folded:
            w, b = child.get_folded_weights()
            out.append(_h_layer(child, where, w, b, child.kernel_quantizer, child.bias_quantizer,
                                fin, default_input_bits))
            act_bits = None
        elif isinstance(child, (qnn.QSeparableConv1d, qnn.QSeparableConv2d)):
            dw, pw = child.depthwise, child.pointwise
            out.append(_h_layer(dw, where + " depthwise", dw.weight, dw.bias, dw.kernel_quantizer,
                                dw.bias_quantizer, fin, default_input_bits))
            out.append(_h_layer(pw, where + " pointwise", pw.weight, pw.bias, pw.kernel_quantizer,
                                pw.bias_quantizer, default_input_bits, default_input_bits))
            act_bits = None
        elif isinstance(child, qnn.QActivation):
            f, relu, k = _start_widths(child.quantizer, where)
            out.append(HActivation((), relu=relu, granularity="tensor", init_bits=f,
                                   keep_negative=False if relu else k))
            act_bits = f
        else:
            out.append(copy.deepcopy(child))
    return torch.nn.Sequential(*out)
