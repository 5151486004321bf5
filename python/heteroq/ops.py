# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""Functional forms of the registered operators (``torch.ops.heteroq.*``).

The math lives in C++: a fused CPU kernel, a device-generic ATen kernel and a C++ autograd kernel
per operator. These wrappers only document the arguments.
"""
import contextlib
from typing import Iterator, List, Optional, Tuple

import torch

from . import _C

__all__ = ["quantized_bits", "quantized_bits_auto", "quantized_relu", "fused_kernels",
           "fused_kernels_enabled"]


def quantized_bits(x: torch.Tensor, bits: int = 8, integer: int = 0, symmetric: bool = False,
                   keep_negative: bool = True, alpha: Optional[float] = None,
                   qnoise_factor: float = 1.0, *, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """QKeras ``quantized_bits`` applied to ``x`` (any shape, floating point).

    Args:
        x: Tensor[...] of float16/bfloat16/float32/float64.
        bits, integer, symmetric, keep_negative, alpha, qnoise_factor: as QKeras's
            ``quantized_bits``.
        out: optional preallocated result (same dtype and device as ``x``; same shape, or empty
            and then resized). Not differentiable, like PyTorch's ``out=`` arguments.

    Returns:
        Tensor of the shape of ``x``, every value on the grid
        ``alpha * 2**(integer - bits + keep_negative) * k``. The gradient is the identity (STE).
    """
    if out is not None:
        return torch.ops.heteroq.quantized_bits.out(x, bits, integer, symmetric, keep_negative,
                                                    alpha, qnoise_factor, out=out)
    return torch.ops.heteroq.quantized_bits(x, bits, integer, symmetric, keep_negative, alpha,
                                            qnoise_factor)


def quantized_bits_auto(x: torch.Tensor, bits: int = 8, integer: int = 0,
                        keep_negative: bool = True, po2: bool = True,
                        scale_axis: Optional[List[int]] = None,
                        qnoise_factor: float = 1.0) -> Tuple[torch.Tensor, torch.Tensor]:
    """QKeras ``quantized_bits`` with ``alpha="auto_po2"`` (``po2=True``) or ``alpha="auto"``.

    Args:
        x: Tensor[...] (floating point); rank 1 gets QKeras's per-element least-squares scales.
        scale_axis: the channel axes, each with its own scale (default: axis 0, the output
            channel of PyTorch Linear/Conv weights).

    Returns:
        ``(out, scale)``: the quantized tensor and QKeras's ``quantizer.scale`` (keepdims shape,
        broadcastable to ``x``). The gradient of ``out`` is the identity; ``scale`` has none.
    """
    return torch.ops.heteroq.quantized_bits_auto(x, bits, integer, keep_negative, po2, scale_axis,
                                                 qnoise_factor)


def quantized_relu(x: torch.Tensor, bits: int = 8, integer: int = 0, use_sigmoid: bool = False,
                   negative_slope: float = 0.0, qnoise_factor: float = 1.0, *,
                   out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """QKeras ``quantized_relu`` applied to ``x``; see :class:`heteroq.quantized_relu`.

    ``out``: as in :func:`quantized_bits`.
    """
    if out is not None:
        return torch.ops.heteroq.quantized_relu.out(x, bits, integer, use_sigmoid, negative_slope,
                                                    qnoise_factor, out=out)
    return torch.ops.heteroq.quantized_relu(x, bits, integer, use_sigmoid, negative_slope,
                                            qnoise_factor)


def fused_kernels_enabled() -> bool:
    """Whether CPU tensors use the fused kernels (the default) or the device-generic path."""
    return _C.fused_kernels_enabled()


@contextlib.contextmanager
def fused_kernels(enabled: bool) -> Iterator[None]:
    """Context manager that switches the fused CPU kernels on or off (both give identical bits).

    Example usage::

        with heteroq.ops.fused_kernels(False):
            y_generic = heteroq.ops.quantized_bits(x, 6)
    """
    previous = _C.fused_kernels_enabled()
    _C.set_fused_kernels_enabled(bool(enabled))
    try:
        yield
    finally:
        _C.set_fused_kernels_enabled(previous)
