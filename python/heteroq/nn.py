# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""Quantized layers (``torch.nn.Module``), with PyTorch's argument names and QKeras aliases.

Quantizer slots take a quantizer object, a QKeras spec string, or ``None`` (no quantization).
The quantizers are applied exactly as given: QKeras's implicit switch of weight quantizers to
``alpha="auto_po2"`` is not applied.
"""
import math
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from .quantizers import Quantizer, get_quantizer

__all__ = ["QLinear", "QDense", "QActivation"]

QuantizerLike = Union[Quantizer, str, None]


def _as_quantizer(q: QuantizerLike, where: str) -> Optional[Quantizer]:
    if q is None or isinstance(q, (Quantizer, str)):
        return get_quantizer(q)
    raise TypeError(f"{where}: expected a heteroq quantizer, a spec string or None, "
                    f"got {type(q).__name__}")


class QLinear(torch.nn.Module):
    """``y = x @ q_k(W).T + q_b(b)``: ``torch.nn.Linear`` with quantized weight and bias.

    Args:
        in_features, out_features, bias, device, dtype: as ``torch.nn.Linear``.
        kernel_quantizer: quantizer of the weight (object, spec string or None).
        bias_quantizer: quantizer of the bias (object, spec string or None).

    Shape: input ``(*, in_features)``, output ``(*, out_features)``.

    Example usage::

        fc = heteroq.nn.QLinear(16, 64, kernel_quantizer="quantized_bits(6,0,alpha=1)",
                                bias_quantizer="quantized_bits(6,0,alpha=1)")
        y = fc(torch.randn(8, 16))
    """

    __constants__ = ["in_features", "out_features"]
    in_features: int
    out_features: int

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 kernel_quantizer: QuantizerLike = None, bias_quantizer: QuantizerLike = None,
                 device=None, dtype=None) -> None:
        super().__init__()
        if in_features <= 0 or out_features <= 0:
            raise ValueError(f"QLinear: `in_features` and `out_features` must be > 0, got "
                             f"{in_features} and {out_features}")
        factory = {"device": device, "dtype": dtype}
        self.in_features = in_features
        self.out_features = out_features
        self.weight = torch.nn.Parameter(torch.empty((out_features, in_features), **factory))
        if bias:
            self.bias = torch.nn.Parameter(torch.empty(out_features, **factory))
        else:
            self.register_parameter("bias", None)
        self.kernel_quantizer = _as_quantizer(kernel_quantizer, "QLinear.kernel_quantizer")
        self.bias_quantizer = _as_quantizer(bias_quantizer, "QLinear.bias_quantizer")
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The initialisation of ``torch.nn.Linear``."""
        torch.nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_features)
            torch.nn.init.uniform_(self.bias, -bound, bound)

    def quantized_weight(self) -> Tensor:
        """The weight as the forward pass uses it."""
        if self.kernel_quantizer is not None:
            return self.kernel_quantizer(self.weight)
        return self.weight

    def quantized_bias(self) -> Optional[Tensor]:
        """The bias as the forward pass uses it (None without bias)."""
        b = self.bias
        if b is not None and self.bias_quantizer is not None:
            return self.bias_quantizer(b)
        return b

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002  (PyTorch's name)
        return F.linear(input, self.quantized_weight(), self.quantized_bias())

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


QDense = QLinear


class QActivation(torch.nn.Module):
    """Applies a quantizer as an activation: ``QActivation("quantized_relu(6,0)")``.

    Args:
        activation: a quantizer object or a spec string (QKeras's argument name).
    """

    def __init__(self, activation: Union[Quantizer, str]) -> None:
        super().__init__()
        if activation is None:
            raise ValueError("QActivation: `activation` must be a quantizer or a spec string")
        self.quantizer = _as_quantizer(activation, "QActivation.activation")

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return self.quantizer(input)
