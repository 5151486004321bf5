# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""Quantized layers (``torch.nn.Module``), with PyTorch's argument names and QKeras aliases.

Quantizer slots take a quantizer object, a QKeras spec string, or ``None`` (no quantization).
The quantizers are applied exactly as given: QKeras's implicit switch of weight quantizers to
``alpha="auto_po2"`` is not applied.
"""
import math
from typing import List, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from .quantizers import Quantizer, get_quantizer

__all__ = ["QLinear", "QDense", "QActivation", "QAdaptiveActivation", "QConv1d", "QConv1D", "QConv2d", "QConv2D",
           "QConvTranspose2d", "QConv2DTranspose", "QDepthwiseConv2d", "QDepthwiseConv2D",
           "QSeparableConv1d", "QSeparableConv1D", "QSeparableConv2d", "QSeparableConv2D",
           "QBatchNorm1d", "QBatchNorm2d", "QBatchNormalization", "QAvgPool2d", "QAveragePooling2D",
           "QGlobalAvgPool2d", "QGlobalAveragePooling2D", "QConv2dBatchNorm",
           "QConv2DBatchnorm", "QLinearBatchNorm", "QDenseBatchnorm"]

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


class QAdaptiveActivation(torch.nn.Module):
    """QKeras's ``QAdaptiveActivation``: a ``quantized_bits`` or ``quantized_relu`` activation
    with ``total_bits`` bits whose integer bits follow an exponential moving average of the
    unquantized activation's min and max (QKeras's ``_get_integer_bits``).

    Args:
        activation: ``"quantized_bits"`` or ``"quantized_relu"``, without arguments.
        total_bits: the quantizer's bits.
        current_step: the initial step count (default -1: the first training call is step 0).
        symmetric: symmetric range for the integer-bit estimate (and quantized_bits).
        quantization_delay: training calls with ``step < quantization_delay`` return the
            unquantized activation.
        ema_freeze_delay: the moving statistics are updated while ``step <= ema_freeze_delay``
            (None: always).
        ema_decay: the moving-average decay (Keras's ``moving_average_update``).
        per_channel: one integer-bit value per channel (axis 1); needs ``num_channels``
            (PyTorch layers name their size up front, as ``BatchNorm2d(num_features)`` does).
        po2_rounding: integer bits from ``round(log2)`` of the range (True) or ``ceil`` (False).
        relu_neg_slope, relu_upper_bound: quantized_relu's slope and bound.

    Buffers ``ema_min``, ``ema_max``, ``integer_bits`` and ``step`` are in the ``state_dict``.
    Each training call counts a step, quantizes with the current integer bits, then updates the
    statistics and the integer bits. Evaluation calls change nothing (QKeras also updates the
    statistics in inference calls while an ``ema_freeze_delay`` is set: not copied).

    Example usage::

        act = heteroq.nn.QAdaptiveActivation("quantized_relu", 8, quantization_delay=100)
    """

    __constants__ = ["activation", "total_bits", "symmetric", "quantization_delay",
                     "ema_decay", "per_channel", "po2_rounding", "relu_neg_slope"]
    activation: str
    total_bits: int
    symmetric: bool
    quantization_delay: int
    ema_freeze_delay: Optional[int]
    ema_decay: float
    per_channel: bool
    po2_rounding: bool
    relu_neg_slope: float
    relu_upper_bound: Optional[float]

    def __init__(self, activation: str, total_bits: int, current_step: Optional[int] = None,
                 symmetric: bool = True, quantization_delay: int = 0,
                 ema_freeze_delay: Optional[int] = None, ema_decay: float = 0.9999,
                 per_channel: bool = False, po2_rounding: bool = False,
                 relu_neg_slope: float = 0.0, relu_upper_bound: Optional[float] = None,
                 num_channels: Optional[int] = None) -> None:
        super().__init__()
        if activation not in ("quantized_bits", "quantized_relu"):
            raise ValueError("QAdaptiveActivation: `activation` must be \"quantized_bits\" or "
                             "\"quantized_relu\" without arguments (the layer sets them), got "
                             f"{activation!r}")
        if per_channel and (num_channels is None or num_channels <= 0):
            raise ValueError("QAdaptiveActivation: per_channel=True needs `num_channels` > 0, "
                             f"got {num_channels}")
        if not 0.0 <= ema_decay <= 1.0:
            raise ValueError(f"QAdaptiveActivation: `ema_decay` must be in [0, 1], got {ema_decay}")
        if quantization_delay < 0:
            raise ValueError("QAdaptiveActivation: `quantization_delay` must be >= 0, got "
                             f"{quantization_delay}")
        self.activation = activation
        self.total_bits = int(total_bits)
        self.symmetric = bool(symmetric)
        self.quantization_delay = int(quantization_delay)
        self.ema_freeze_delay = None if ema_freeze_delay is None else int(ema_freeze_delay)
        self.ema_decay = float(ema_decay)
        self.per_channel = bool(per_channel)
        self.po2_rounding = bool(po2_rounding)
        self.relu_neg_slope = float(relu_neg_slope)
        self.relu_upper_bound = None if relu_upper_bound is None else float(relu_upper_bound)
        self.quantizer()  # checks total_bits, the slope and the bound now
        n = int(num_channels) if per_channel and num_channels is not None else 1
        self.register_buffer("ema_min", torch.zeros(n))
        self.register_buffer("ema_max", torch.zeros(n))
        self.register_buffer("integer_bits", torch.zeros(n, dtype=torch.int32))
        self.register_buffer("step", torch.tensor(-1 if current_step is None else int(current_step),
                                                  dtype=torch.int64))

    @torch.jit.unused
    def quantizer(self, channel: int = 0) -> Quantizer:
        """The quantizer the next call applies (per channel: channel ``channel``'s)."""
        integer = int(self.integer_bits[channel]) if hasattr(self, "integer_bits") else 0
        if self.activation == "quantized_bits":
            return get_quantizer(f"quantized_bits({self.total_bits},{integer},"
                                 f"symmetric={int(self.symmetric)},keep_negative=1,alpha=1)")
        spec = (f"quantized_relu({self.total_bits},{integer},negative_slope={self.relu_neg_slope!r},"
                "is_quantized_clip=0")
        if self.relu_upper_bound is not None:
            spec += f",relu_upper_bound={self.relu_upper_bound!r}"
        return get_quantizer(spec + ")")

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        training = self.training
        if training:
            self.step.add_(1)
        step = int(self.step.item())
        qnoise = 1.0 if (not training or step >= self.quantization_delay) else 0.0
        out = torch.ops.heteroq.adaptive_activation(
            input, self.integer_bits, self.activation, self.total_bits, self.symmetric,
            self.relu_neg_slope, self.relu_upper_bound, qnoise)
        freeze = self.ema_freeze_delay
        if training and (freeze is None or step <= freeze):
            torch.ops.heteroq._adaptive_ema_update(
                input, self.ema_min, self.ema_max, self.integer_bits, self.activation,
                self.total_bits, self.symmetric, self.relu_neg_slope, self.relu_upper_bound,
                self.ema_decay, self.po2_rounding)
        return out

    def extra_repr(self) -> str:
        s = (f"activation={self.activation!r}, total_bits={self.total_bits}, "
             f"symmetric={self.symmetric}, quantization_delay={self.quantization_delay}")
        if self.ema_freeze_delay is not None:
            s += f", ema_freeze_delay={self.ema_freeze_delay}"
        s += f", ema_decay={self.ema_decay}, per_channel={self.per_channel}"
        if self.per_channel:
            s += f", num_channels={self.integer_bits.numel()}"
        s += f", po2_rounding={self.po2_rounding}"
        if self.relu_neg_slope != 0.0:
            s += f", relu_neg_slope={self.relu_neg_slope}"
        if self.relu_upper_bound is not None:
            s += f", relu_upper_bound={self.relu_upper_bound}"
        return s


class _QuantizedWeights:
    """``quantized_weight()`` / ``quantized_bias()`` of the layers with ``kernel_quantizer`` and
    ``bias_quantizer`` slots (mixed into subclasses of torch's conv layers)."""

    def quantized_weight(self) -> Tensor:
        """The kernel as the forward pass uses it."""
        if self.kernel_quantizer is not None:
            return self.kernel_quantizer(self.weight)
        return self.weight

    def quantized_bias(self) -> Optional[Tensor]:
        """The bias as the forward pass uses it (None without bias)."""
        b = self.bias
        if b is not None and self.bias_quantizer is not None:
            return self.bias_quantizer(b)
        return b


class QConv1d(_QuantizedWeights, torch.nn.Conv1d):
    """``torch.nn.Conv1d`` with a quantized kernel and bias: ``conv1d(x, q_k(W)) + q_b(b)``.

    Args: those of ``torch.nn.Conv1d`` (``padding_mode`` included), then ``kernel_quantizer`` and
    ``bias_quantizer`` (quantizer objects, spec strings or None). Alias: ``QConv1D``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 kernel_quantizer: QuantizerLike = None, bias_quantizer: QuantizerLike = None,
                 device=None, dtype=None) -> None:
        _check_conv_args("QConv1d", in_channels, out_channels, groups)
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                         bias, padding_mode, device, dtype)
        self.kernel_quantizer = _as_quantizer(kernel_quantizer, "QConv1d.kernel_quantizer")
        self.bias_quantizer = _as_quantizer(bias_quantizer, "QConv1d.bias_quantizer")

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return self._conv_forward(input, self.quantized_weight(), self.quantized_bias())


class QConv2d(_QuantizedWeights, torch.nn.Conv2d):
    """``torch.nn.Conv2d`` with a quantized kernel and bias: ``conv2d(x, q_k(W)) + q_b(b)``.

    Args: those of ``torch.nn.Conv2d``, then ``kernel_quantizer`` and ``bias_quantizer``.
    Layout NCHW, kernel ``(out, in/groups, kh, kw)``. Alias: ``QConv2D``.

    Example usage::

        conv = heteroq.nn.QConv2d(3, 16, 3, padding=1,
                                  kernel_quantizer="quantized_bits(6,0,alpha=1)",
                                  bias_quantizer="quantized_bits(8,3,alpha=1)")
        y = conv(torch.randn(2, 3, 32, 32))
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 kernel_quantizer: QuantizerLike = None, bias_quantizer: QuantizerLike = None,
                 device=None, dtype=None) -> None:
        _check_conv_args("QConv2d", in_channels, out_channels, groups)
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                         bias, padding_mode, device, dtype)
        self.kernel_quantizer = _as_quantizer(kernel_quantizer, "QConv2d.kernel_quantizer")
        self.bias_quantizer = _as_quantizer(bias_quantizer, "QConv2d.bias_quantizer")

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return self._conv_forward(input, self.quantized_weight(), self.quantized_bias())


class QConvTranspose2d(_QuantizedWeights, torch.nn.ConvTranspose2d):
    """``torch.nn.ConvTranspose2d`` with a quantized kernel ``(in, out/groups, kh, kw)`` and bias.

    Args: those of ``torch.nn.ConvTranspose2d``, then ``kernel_quantizer`` and
    ``bias_quantizer``. For a per-channel weight scale, note that PyTorch's axis 0 of this kernel
    is the *input* channel (as Keras's Conv2DTranspose keeps it). Alias: ``QConv2DTranspose``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 output_padding=0, groups: int = 1, bias: bool = True, dilation=1,
                 padding_mode: str = "zeros", kernel_quantizer: QuantizerLike = None,
                 bias_quantizer: QuantizerLike = None, device=None, dtype=None) -> None:
        _check_conv_args("QConvTranspose2d", in_channels, out_channels, groups)
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, output_padding,
                         groups, bias, dilation, padding_mode, device, dtype)
        self.kernel_quantizer = _as_quantizer(kernel_quantizer, "QConvTranspose2d.kernel_quantizer")
        self.bias_quantizer = _as_quantizer(bias_quantizer, "QConvTranspose2d.bias_quantizer")

    def forward(self, input: Tensor, output_size: Optional[List[int]] = None) -> Tensor:  # noqa: A002
        if self.padding_mode != "zeros":
            raise ValueError("QConvTranspose2d: only `zeros` padding mode is supported")
        assert isinstance(self.padding, tuple)
        output_padding = self._output_padding(input, output_size, self.stride,  # type: ignore[arg-type]
                                              self.padding, self.kernel_size,  # type: ignore[arg-type]
                                              2, self.dilation)  # type: ignore[arg-type]
        return F.conv_transpose2d(input, self.quantized_weight(), self.quantized_bias(),
                                  self.stride, self.padding, output_padding, self.groups,
                                  self.dilation)


class QDepthwiseConv2d(QConv2d):
    """QKeras ``QDepthwiseConv2D``: a ``QConv2d`` with ``groups = in_channels`` and
    ``in_channels * depth_multiplier`` outputs, its kernel ``(in*dm, 1, kh, kw)`` quantized by
    ``depthwise_quantizer``. Alias: ``QDepthwiseConv2D``.
    """

    __jit_unused_properties__ = ["depthwise_quantizer"]

    def __init__(self, in_channels: int, kernel_size, depth_multiplier: int = 1, stride=1,
                 padding=0, dilation=1, bias: bool = True, padding_mode: str = "zeros",
                 depthwise_quantizer: QuantizerLike = None, bias_quantizer: QuantizerLike = None,
                 device=None, dtype=None) -> None:
        if depth_multiplier <= 0:
            raise ValueError(f"QDepthwiseConv2d: `depth_multiplier` must be > 0, got {depth_multiplier}")
        super().__init__(in_channels, in_channels * depth_multiplier, kernel_size, stride, padding,
                         dilation, in_channels, bias, padding_mode, depthwise_quantizer,
                         bias_quantizer, device, dtype)
        self.depth_multiplier = depth_multiplier

    @property
    def depthwise_quantizer(self) -> Optional[Quantizer]:
        return self.kernel_quantizer


class _QSeparableConv(torch.nn.Module):
    """A depthwise convolution (no bias) followed directly by a 1x1 pointwise one (QKeras)."""

    def __init__(self, conv, who: str, in_channels: int, out_channels: int, kernel_size,
                 depth_multiplier: int, stride, padding, dilation, bias: bool,
                 depthwise_quantizer: QuantizerLike, pointwise_quantizer: QuantizerLike,
                 bias_quantizer: QuantizerLike, device, dtype) -> None:
        super().__init__()
        if depth_multiplier <= 0:
            raise ValueError(f"{who}: `depth_multiplier` must be > 0, got {depth_multiplier}")
        _check_conv_args(who, in_channels, out_channels, 1)
        mid = in_channels * depth_multiplier
        self.depthwise = conv(in_channels, mid, kernel_size, stride, padding, dilation,
                              in_channels, False, kernel_quantizer=depthwise_quantizer,
                              device=device, dtype=dtype)
        self.pointwise = conv(mid, out_channels, 1, bias=bias, kernel_quantizer=pointwise_quantizer,
                              bias_quantizer=bias_quantizer, device=device, dtype=dtype)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return self.pointwise(self.depthwise(input))


class QSeparableConv1d(_QSeparableConv):
    """QKeras ``QSeparableConv1D``: depthwise ``QConv1d`` (``depthwise_quantizer``, no bias), then
    a pointwise 1x1 ``QConv1d`` (``pointwise_quantizer``, ``bias_quantizer``); no activation in
    between. Alias: ``QSeparableConv1D``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, depth_multiplier: int = 1,
                 stride=1, padding=0, dilation=1, bias: bool = True,
                 depthwise_quantizer: QuantizerLike = None, pointwise_quantizer: QuantizerLike = None,
                 bias_quantizer: QuantizerLike = None, device=None, dtype=None) -> None:
        super().__init__(QConv1d, "QSeparableConv1d", in_channels, out_channels, kernel_size,
                         depth_multiplier, stride, padding, dilation, bias, depthwise_quantizer,
                         pointwise_quantizer, bias_quantizer, device, dtype)


class QSeparableConv2d(_QSeparableConv):
    """QKeras ``QSeparableConv2D``: depthwise ``QConv2d`` then pointwise 1x1 ``QConv2d``, as
    :class:`QSeparableConv1d`. Alias: ``QSeparableConv2D``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, depth_multiplier: int = 1,
                 stride=1, padding=0, dilation=1, bias: bool = True,
                 depthwise_quantizer: QuantizerLike = None, pointwise_quantizer: QuantizerLike = None,
                 bias_quantizer: QuantizerLike = None, device=None, dtype=None) -> None:
        super().__init__(QConv2d, "QSeparableConv2d", in_channels, out_channels, kernel_size,
                         depth_multiplier, stride, padding, dilation, bias, depthwise_quantizer,
                         pointwise_quantizer, bias_quantizer, device, dtype)


def _check_conv_args(who: str, in_channels: int, out_channels: int, groups: int) -> None:
    if in_channels <= 0 or out_channels <= 0:
        raise ValueError(f"{who}: `in_channels` and `out_channels` must be > 0, got "
                         f"{in_channels} and {out_channels}")
    if groups <= 0 or in_channels % groups or out_channels % groups:
        raise ValueError(f"{who}: `groups` ({groups}) must be > 0 and divide in_channels "
                         f"({in_channels}) and out_channels ({out_channels})")


QConv1D = QConv1d
QConv2D = QConv2d
QConv2DTranspose = QConvTranspose2d
QDepthwiseConv2D = QDepthwiseConv2d
QSeparableConv1D = QSeparableConv1d
QSeparableConv2D = QSeparableConv2d


class _QBatchNorm(torch.nn.modules.batchnorm._BatchNorm):
    """QKeras ``QBatchNormalization`` in PyTorch's layout and conventions (see QBatchNorm2d)."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: Optional[float] = 0.1,
                 affine: bool = True, track_running_stats: bool = True,
                 gamma_quantizer: QuantizerLike = None, beta_quantizer: QuantizerLike = None,
                 mean_quantizer: QuantizerLike = None, variance_quantizer: QuantizerLike = None,
                 inverse_quantizer: QuantizerLike = None, device=None, dtype=None) -> None:
        who = type(self).__name__
        if num_features <= 0:
            raise ValueError(f"{who}: `num_features` must be > 0, got {num_features}")
        if not eps >= 0:
            raise ValueError(f"{who}: `eps` must be >= 0, got {eps}")
        if momentum is not None and not 0 <= momentum <= 1:
            raise ValueError(f"{who}: `momentum` must be in [0, 1] or None, got {momentum}")
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)
        self.gamma_quantizer = _as_quantizer(gamma_quantizer, f"{who}.gamma_quantizer")
        self.beta_quantizer = _as_quantizer(beta_quantizer, f"{who}.beta_quantizer")
        self.mean_quantizer = _as_quantizer(mean_quantizer, f"{who}.mean_quantizer")
        self.variance_quantizer = _as_quantizer(variance_quantizer, f"{who}.variance_quantizer")
        self.inverse_quantizer = _as_quantizer(inverse_quantizer, f"{who}.inverse_quantizer")

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        self._check_input_dim(input)
        running_mean = self.running_mean
        running_var = self.running_var
        if self.training or running_mean is None or running_var is None:
            dims = [0] + list(range(2, input.dim()))
            mean = input.mean(dims)
            var = input.var(dims, unbiased=False)
            if self.training and running_mean is not None and running_var is not None:
                with torch.no_grad():
                    tracked = self.num_batches_tracked
                    assert tracked is not None
                    tracked.add_(1)
                    momentum = self.momentum
                    m = 1.0 / float(tracked.item()) if momentum is None else momentum
                    n = input.numel() / input.size(1)
                    running_mean.mul_(1 - m).add_(mean.detach() * m)
                    running_var.mul_(1 - m).add_(var.detach() * (n / max(n - 1.0, 1.0) * m))
        else:
            mean = running_mean
            var = running_var
        gamma = self.weight
        beta = self.bias
        if self.inverse_quantizer is not None:
            inv = self.inverse_quantizer(torch.ops.heteroq._bn_inverse(var, gamma, self.eps))
        else:
            if self.variance_quantizer is not None:
                var = self.variance_quantizer(var)
            if gamma is not None and self.gamma_quantizer is not None:
                gamma = self.gamma_quantizer(gamma)
            inv = torch.ops.heteroq._bn_inverse(var, gamma, self.eps)
        if self.mean_quantizer is not None:
            mean = self.mean_quantizer(mean)
        if beta is not None and self.beta_quantizer is not None:
            beta = self.beta_quantizer(beta)
        return torch.ops.heteroq._bn_apply(input, inv, mean, beta)


class QBatchNorm1d(_QBatchNorm):
    """QKeras ``QBatchNormalization`` for ``(N, C)`` or ``(N, C, L)`` inputs; see
    :class:`QBatchNorm2d`."""

    def _check_input_dim(self, input: Tensor) -> None:  # noqa: A002
        if input.dim() != 2 and input.dim() != 3:
            raise ValueError(f"QBatchNorm1d: expected input of shape (N, C) or (N, C, L), got "
                             f"{list(input.shape)}")


class QBatchNorm2d(_QBatchNorm):
    """QKeras ``QBatchNormalization`` for NCHW inputs, with ``torch.nn.BatchNorm2d``'s arguments
    and state (``weight`` = gamma, ``bias`` = beta, ``running_mean``, ``running_var``).

    With m, v the batch statistics in training (the running ones in eval mode)::

        inv = rsqrt(Qv(v) + eps) * Qg(gamma)      # or Qinv(rsqrt(v + eps) * gamma)
        y   = x * inv + (Qb(beta) - Qm(m) * inv)  # per channel

    Training normalizes with the quantized batch moments and updates the running statistics with
    the unquantized ones (as QKeras), with PyTorch's momentum (Keras's 0.99 is PyTorch's 0.01)
    and eps (1e-5; Keras: 1e-3). Quantizers default to None; QKeras's defaults are
    ``gamma_quantizer="quantized_relu_po2(6,2048)"``, ``beta_quantizer="quantized_po2(5)"``,
    ``mean_quantizer="quantized_po2(5)"``,
    ``variance_quantizer="quantized_relu_po2(6,quadratic_approximation=True)"``. Aliases:
    ``QBatchNormalization``.
    """

    def _check_input_dim(self, input: Tensor) -> None:  # noqa: A002
        if input.dim() != 4:
            raise ValueError(f"QBatchNorm2d: expected input of shape (N, C, H, W), got "
                             f"{list(input.shape)}")


QBatchNormalization = QBatchNorm2d


class QAvgPool2d(torch.nn.Module):
    """QKeras ``QAveragePooling2D``: ``AvgPool(x * kh*kw) * average_quantizer(1/(kh*kw))``, then
    ``activation``; without an average quantizer, ``torch.nn.AvgPool2d``. Arguments: those of
    ``torch.nn.AvgPool2d`` (``divisor_override`` excepted), ``average_quantizer``, ``activation``.
    Alias: ``QAveragePooling2D``."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, average_quantizer: QuantizerLike = None,
                 activation: QuantizerLike = None) -> None:
        super().__init__()
        pair = torch.nn.modules.utils._pair
        self.kernel_size: List[int] = list(pair(kernel_size))
        self.stride: List[int] = list(pair(stride if stride is not None else kernel_size))
        self.padding: List[int] = list(pair(padding))
        if min(self.kernel_size) < 1 or min(self.stride) < 1 or min(self.padding) < 0:
            raise ValueError(f"QAvgPool2d: `kernel_size` and `stride` must be >= 1 and `padding` "
                             f">= 0, got {self.kernel_size}, {self.stride}, {self.padding}")
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.average_quantizer = _as_quantizer(average_quantizer, "QAvgPool2d.average_quantizer")
        self.activation = _as_quantizer(activation, "QAvgPool2d.activation")

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        if self.average_quantizer is not None:
            area = self.kernel_size[0] * self.kernel_size[1]
            factor = self.average_quantizer(torch.full([], 1.0 / area, dtype=input.dtype,
                                                       device=input.device))
            y = torch.ops.heteroq._sum_pool2d_scaled(input, self.kernel_size, self.stride,
                                                     self.padding, self.ceil_mode,
                                                     self.count_include_pad, factor)
        else:
            y = F.avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                             self.count_include_pad)
        if self.activation is not None:
            y = self.activation(y)
        return y

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class QGlobalAvgPool2d(torch.nn.Module):
    """QKeras ``QGlobalAveragePooling2D``: ``sum_{H,W}(x) * average_quantizer(1/(H*W))`` (the
    mean without an average quantizer), then ``activation``. Output ``(N, C)`` as Keras
    (``keepdim=True``: ``(N, C, 1, 1)``). Alias: ``QGlobalAveragePooling2D``."""

    def __init__(self, average_quantizer: QuantizerLike = None, activation: QuantizerLike = None,
                 keepdim: bool = False) -> None:
        super().__init__()
        self.average_quantizer = _as_quantizer(average_quantizer,
                                               "QGlobalAvgPool2d.average_quantizer")
        self.activation = _as_quantizer(activation, "QGlobalAvgPool2d.activation")
        self.keepdim = keepdim

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        if input.dim() != 4:
            raise ValueError("QGlobalAvgPool2d: expected input of shape (N, C, H, W)")
        if self.average_quantizer is not None:
            area = input.size(2) * input.size(3)
            factor = self.average_quantizer(torch.full([], 1.0 / area, dtype=input.dtype,
                                                       device=input.device))
            y = input.sum([2, 3], keepdim=self.keepdim) * factor
        else:
            y = input.mean([2, 3], keepdim=self.keepdim)
        if self.activation is not None:
            y = self.activation(y)
        return y


QAveragePooling2D = QAvgPool2d
QGlobalAveragePooling2D = QGlobalAvgPool2d


class _QFoldedBatchNorm:
    """Batch norm folded into the quantized kernel (QKeras QConv2DBatchnorm). Subclasses are a
    ``torch.nn.Conv2d`` / ``torch.nn.Linear`` (``weight``, ``bias``) plus the batch-norm state
    ``gamma``, ``beta``, ``running_mean``, ``running_var``, ``num_batches_tracked``."""

    def _init_bn(self, channels: int, eps: float, momentum: Optional[float],
                 kernel_quantizer: QuantizerLike, bias_quantizer: QuantizerLike, folding_mode: str,
                 ema_freeze_delay: Optional[int], who: str, factory) -> None:
        if folding_mode not in ("ema_stats_folding", "batch_stats_folding"):
            raise ValueError(f"{who}: `folding_mode` must be 'ema_stats_folding' or "
                             f"'batch_stats_folding', got {folding_mode!r}")
        if not eps >= 0:
            raise ValueError(f"{who}: `eps` must be >= 0, got {eps}")
        if momentum is not None and not 0 <= momentum <= 1:
            raise ValueError(f"{who}: `momentum` must be in [0, 1] or None, got {momentum}")
        self.eps = eps
        self.momentum = momentum
        self.folding_mode = folding_mode
        self.ema_freeze_delay = ema_freeze_delay
        self.gamma = torch.nn.Parameter(torch.ones(channels, **factory))
        self.beta = torch.nn.Parameter(torch.zeros(channels, **factory))
        self.register_buffer("running_mean", torch.zeros(channels, **factory))
        self.register_buffer("running_var", torch.ones(channels, **factory))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        self.kernel_quantizer = _as_quantizer(kernel_quantizer, f"{who}.kernel_quantizer")
        self.bias_quantizer = _as_quantizer(bias_quantizer, f"{who}.bias_quantizer")

    def get_folded_weights(self) -> List[Tensor]:
        """QKeras's ``get_folded_weights``: the kernel and bias folded with the running
        statistics, ``[gamma W / sqrt(var + eps), beta + gamma (b - mean) / sqrt(var + eps)]``
        (unquantized)."""
        return [torch.ops.heteroq._bn_fold_weight(self.weight, self.running_var, self.gamma,
                                                  self.eps),
                torch.ops.heteroq._bn_fold_bias(self.bias, self.running_mean, self.running_var,
                                                self.gamma, self.beta, self.eps)]

    def _folded_forward(self, input: Tensor) -> Tensor:  # noqa: A002
        training = self.training
        delay = self.ema_freeze_delay
        tracked = self.num_batches_tracked
        bn_training = training and (delay is None or delay < 0 or int(tracked.item()) < delay)
        eps = self.eps
        correction: Optional[Tensor] = None
        if bn_training:
            y = self._float_forward(input)
            dims = [0] + list(range(2, y.dim()))
            mean = y.mean(dims)
            var = y.var(dims, unbiased=False)
            with torch.no_grad():
                tracked.add_(1)
                momentum = self.momentum
                m = 1.0 / float(tracked.item()) if momentum is None else momentum
                n = y.numel() / y.size(1)
                self.running_mean.mul_(1 - m).add_(mean.detach() * m)
                self.running_var.mul_(1 - m).add_(var.detach() * (n / max(n - 1.0, 1.0) * m))
            if self.folding_mode == "batch_stats_folding":
                w = torch.ops.heteroq._bn_fold_weight(self.weight, var, self.gamma, eps)
            else:
                w = torch.ops.heteroq._bn_fold_weight(self.weight, self.running_var, self.gamma, eps)
                correction = torch.sqrt(self.running_var + eps) * torch.rsqrt(var + eps)
            b = torch.ops.heteroq._bn_fold_bias(self.bias, mean, var, self.gamma, self.beta, eps)
        else:
            if training:
                with torch.no_grad():
                    tracked.add_(1)
            w = torch.ops.heteroq._bn_fold_weight(self.weight, self.running_var, self.gamma, eps)
            b = torch.ops.heteroq._bn_fold_bias(self.bias, self.running_mean, self.running_var,
                                                self.gamma, self.beta, eps)
        if self.kernel_quantizer is not None:
            w = self.kernel_quantizer(w)
        if self.bias_quantizer is not None:
            b = self.bias_quantizer(b)
        out = self._float_forward_with(input, w)
        shape = [1, -1] + [1] * (out.dim() - 2)
        if correction is not None:
            out = out * correction.view(shape)
        return out + b.view(shape)


class QConv2dBatchNorm(torch.nn.Conv2d, _QFoldedBatchNorm):
    """QKeras ``QConv2DBatchnorm``: a ``Conv2d`` followed by a batch norm, folded into the
    quantized kernel and bias as QKeras trains them.

    With the running statistics (mean ``mm``, variance ``mv``; batch statistics ``m``, ``v`` of the
    float convolution while the batch norm trains)::

        ema_stats_folding (default):  y = conv(x, Qk(W γ/√(mv+ε))) · √(mv+ε)/√(v+ε) + Qb(β + γ(b − m)/√(v+ε))
        batch_stats_folding:          y = conv(x, Qk(W γ/√(v+ε))) + Qb(β + γ(b − m)/√(v+ε))
        eval (or after ema_freeze_delay training steps): y = conv(x, Qk(W γ/√(mv+ε))) + Qb(β + γ(b − mm)/√(mv+ε))

    Arguments: those of ``torch.nn.Conv2d`` (integer padding), then ``eps``, ``momentum``
    (PyTorch's conventions), ``kernel_quantizer``, ``bias_quantizer``, ``folding_mode`` and
    ``ema_freeze_delay`` (the number of training steps after which the statistics freeze; None:
    never). Alias: ``QConv2DBatchnorm``.
    """

    momentum: Optional[float]
    ema_freeze_delay: Optional[int]
    eps: float
    folding_mode: str

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, eps: float = 1e-5,
                 momentum: Optional[float] = 0.1, kernel_quantizer: QuantizerLike = None,
                 bias_quantizer: QuantizerLike = None, folding_mode: str = "ema_stats_folding",
                 ema_freeze_delay: Optional[int] = None, device=None, dtype=None) -> None:
        _check_conv_args("QConv2dBatchNorm", in_channels, out_channels, groups)
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                         bias, "zeros", device, dtype)
        self._init_bn(out_channels, eps, momentum, kernel_quantizer, bias_quantizer, folding_mode,
                      ema_freeze_delay, "QConv2dBatchNorm", {"device": device, "dtype": dtype})

    def _float_forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return self._conv_forward(input, self.weight, self.bias)

    def _float_forward_with(self, input: Tensor, weight: Tensor) -> Tensor:  # noqa: A002
        return self._conv_forward(input, weight, None)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return self._folded_forward(input)


class QLinearBatchNorm(torch.nn.Linear, _QFoldedBatchNorm):
    """A ``Linear`` followed by a batch norm over its features, folded as
    :class:`QConv2dBatchNorm` (QKeras's ``QDenseBatchnorm``, unmerged PR #74). Alias:
    ``QDenseBatchnorm``."""

    momentum: Optional[float]
    ema_freeze_delay: Optional[int]
    eps: float
    folding_mode: str

    def __init__(self, in_features: int, out_features: int, bias: bool = True, eps: float = 1e-5,
                 momentum: Optional[float] = 0.1, kernel_quantizer: QuantizerLike = None,
                 bias_quantizer: QuantizerLike = None, folding_mode: str = "ema_stats_folding",
                 ema_freeze_delay: Optional[int] = None, device=None, dtype=None) -> None:
        if in_features <= 0 or out_features <= 0:
            raise ValueError(f"QLinearBatchNorm: `in_features` and `out_features` must be > 0, "
                             f"got {in_features} and {out_features}")
        super().__init__(in_features, out_features, bias, device, dtype)
        self._init_bn(out_features, eps, momentum, kernel_quantizer, bias_quantizer, folding_mode,
                      ema_freeze_delay, "QLinearBatchNorm", {"device": device, "dtype": dtype})

    def _float_forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.linear(input, self.weight, self.bias)

    def _float_forward_with(self, input: Tensor, weight: Tensor) -> Tensor:  # noqa: A002
        return F.linear(input, weight, None)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        if input.dim() != 2:
            raise ValueError(f"QLinearBatchNorm: expected input of shape (N, in_features), got "
                             f"{list(input.shape)}")
        return self._folded_forward(input)


QConv2DBatchnorm = QConv2dBatchNorm
QDenseBatchnorm = QLinearBatchNorm

# The recurrent layers live in their own module; they are part of heteroq.nn.
from . import _rnn  # noqa: E402
from ._rnn import *  # noqa: E402,F401,F403

__all__ += _rnn.__all__
