# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""Quantizers with QKeras's names, argument names, argument order and numerics.

Each quantizer is a ``torch.nn.Module`` (so it scripts, pickles and prints inside models) whose
``forward`` calls a C++ operator. Arguments are checked by the C++ core, which raises ValueError
naming the argument and the value.
"""
from typing import Any, Dict, List, Optional, Sequence, Union

import torch
from torch import Tensor

from . import _C

__all__ = ["Quantizer", "quantized_bits", "quantized_relu", "quantized_tanh", "quantized_sigmoid",
           "quantized_po2", "quantized_relu_po2", "quantized_ulaw", "quantized_hswish", "binary",
           "ternary", "stochastic_binary", "stochastic_ternary", "bernoulli", "get_quantizer",
           "qkeras_weight_quantizer", "FixedQuantizer", "fixed"]


class Quantizer(torch.nn.Module):
    """Base class of heteroq's quantizers.

    Attributes set by subclasses mirror the C++ quantizer's parameters (``bits`` and the rest).
    ``min()``/``max()`` are QKeras's bounds (constraint bounds, not always representable values);
    ``to_string()`` gives the QKeras spec, which :func:`get_quantizer` reads back.
    """

    # Python-side description only: TorchScript compiles forward(), not this property.
    __jit_unused_properties__ = ["is_po2"]

    def _set_impl(self, impl: "_C.Quantizer") -> None:
        self.__dict__["_unlocked"] = True
        try:
            self._impl = impl
            config = impl.config()
            if "bits" not in config:  # binary, ternary: fixed widths
                config["bits"] = impl.bits
            self._param_names = tuple(config)
            for key, value in config.items():
                setattr(self, key, value)
        finally:
            self.__dict__["_unlocked"] = False

    def __setattr__(self, name: str, value: Any) -> None:
        # The parameters mirror the C++ object (which checked them): changing one alone would let
        # forward() and to_string()/min()/max() disagree.
        if not self.__dict__.get("_unlocked", True) and name in self.__dict__.get("_param_names", ()):
            raise AttributeError(f"{type(self).__name__}.{name} is read-only: build a new quantizer "
                                 f"(qnoise_factor: use update_qnoise_factor)")
        super().__setattr__(name, value)

    def min(self) -> float:
        return self._impl.min()

    def max(self) -> float:
        return self._impl.max()

    def to_string(self) -> str:
        return self._impl.to_string()

    def range(self) -> torch.Tensor:
        """Every representable value, in the order of the binary codes (QKeras's ``range()``).

        Raises ValueError for data-dependent scales (alpha "auto"/"auto_po2")."""
        return torch.tensor(self._impl.range(), dtype=torch.float64)

    @property
    def is_po2(self) -> bool:
        """Whether every output is a signed power of two (a shift in hardware)."""
        return self._impl.is_po2

    def to_json(self) -> str:
        """``{"class_name": ..., "config": {...}}`` (Keras's format); :func:`get_quantizer`
        reads it back, as JSON text or as the decoded dict."""
        return self._impl.to_json()

    def get_config(self) -> Dict[str, Any]:
        """The parameters, by QKeras name; ``type(q)(**q.get_config())`` is an equal quantizer."""
        return dict(self._impl.config())

    def update_qnoise_factor(self, qnoise_factor: float) -> None:
        """Sets QKeras's quantization-noise factor (0: float pass-through, 1: fully quantized),
        e.g. from a schedule during training (QKeras's ``QNoiseScheduler``)."""
        config = self.get_config()
        config["qnoise_factor"] = qnoise_factor
        self._set_impl(_C.make_quantizer(self._impl.name, (), config))

    def __repr__(self) -> str:
        return self._impl.to_string()

    __str__ = __repr__


class _AutoScaleQuantizer(Quantizer):
    """Shared by quantized_bits, binary and ternary: alpha None, a number, or "auto"/"auto_po2"
    (a per-channel scale chosen from the data at every call, readable as ``scale``)."""

    _auto: int  # 0: fixed alpha, 1: "auto", 2: "auto_po2"
    _alpha_value: Optional[float]
    _scale_axis: Optional[List[int]]
    _channel_alpha: bool

    def _set_impl(self, impl: "_C.Quantizer") -> None:
        super()._set_impl(impl)
        self.__dict__["_unlocked"] = True
        try:
            if self.scale_axis is not None:
                self.scale_axis = [int(a) for a in self.scale_axis]
            self._auto = ({"auto": 1, "auto_po2": 2}.get(self.alpha, 0)
                          if isinstance(self.alpha, str) else 0)
            self._channel_alpha = isinstance(self.alpha, list)
            self._alpha_value = None if self._auto or self._channel_alpha else self.alpha
            self._scale_axis = self.scale_axis
        finally:
            self.__dict__["_unlocked"] = False

    def _init_scale(self) -> None:
        # QKeras's `scale`: alpha (or 1) for a fixed alpha, else the last call's per-channel scale.
        if self._channel_alpha:
            self.register_buffer("scale", torch.tensor(self.alpha, dtype=torch.float32),
                                 persistent=False)
        else:
            self.register_buffer("scale", torch.tensor(self._alpha_value or 1.0), persistent=False)
        # The per-channel alpha (empty without one), moved with the module by .to().
        self.register_buffer("_alpha_tensor",
                             torch.tensor(self.alpha if self._channel_alpha else [],
                                          dtype=torch.float64), persistent=False)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        if config.get("scale_axis") is not None:
            config["scale_axis"] = [int(a) for a in config["scale_axis"]]
        return config


class quantized_bits(_AutoScaleQuantizer):  # noqa: N801  (QKeras's name)
    """QKeras ``quantized_bits``: signed or unsigned fixed point.

    With ``m = 2**(bits - keep_negative)`` and ``step = alpha * 2**integer / m``::

        q(x) = step * clamp(round_half_even(x * m / 2**integer), keep_negative*(-m + symmetric), m - 1)

    ``bits=1`` with ``keep_negative`` gives ``alpha * sign(x)`` with sign(0) = +1. ``alpha`` may also
    be per channel (a list, array or tensor with one value per index of ``scale_axis``, default 0:
    QKeras's ndarray alpha). The output is
    exactly the grid value; zero is +0.0; NaN stays NaN; +-inf saturate. The gradient is the
    identity everywhere (QKeras's straight-through estimator, no clipping mask).

    Args (QKeras's order): bits (1..32), integer (-64..64, sign bit excluded), symmetric,
    keep_negative, alpha (None, a number > 0, or ``"auto"`` / ``"auto_po2"``: a scale per channel
    chosen from the data at every call, exactly as QKeras computes it; ``symmetric`` is then
    forced, as in QKeras, and :attr:`scale` holds the last scale), scale_axis (the channel axes
    of the auto modes; default 0, PyTorch's output-channel axis, where QKeras keeps the last
    axis), qnoise_factor (in [0, 1]: the output is ``x + qnoise_factor * (q(x) - x)``; 1 gives
    q(x) exactly; change it during training with :meth:`update_qnoise_factor`).
    use_stochastic_rounding rounds stochastically (to floor or ceil, E = x) in training mode
    (``q.train()``, as QKeras's learning phase), with noise from ``torch.rand_like`` (reproducible
    under ``torch.manual_seed``); eval mode rounds to nearest. ``use_ste=False`` keeps the forward
    value and scales the gradient by ``1 - qnoise_factor`` (QKeras). With ``"auto_po2"``,
    ``elements_per_scale`` shares one scale among that many consecutive channels and
    ``min_po2_exponent``/``max_po2_exponent`` clip the scale (QKeras). ``var_name`` and
    ``use_variables`` are TensorFlow details, accepted and ignored; ``post_training_scale`` only at
    its default.

    Unlike QKeras layers, heteroq layers do not switch ``alpha=None`` to ``"auto_po2"``.

    Example usage::

        q = heteroq.quantized_bits(4, 0, alpha=1)
        q(torch.tensor([0.3, -1.2, 0.99]))   # tensor([0.2500, -1.0000, 0.8750])
    """

    bits: int
    integer: int
    symmetric: bool
    keep_negative: bool
    qnoise_factor: float
    use_stochastic_rounding: bool

    use_ste: bool
    _grouped: bool
    _elements_per_scale: Optional[List[int]]
    _min_po2_exponent: Optional[int]
    _max_po2_exponent: Optional[int]

    def __init__(self, bits=8, integer=0, symmetric=0, keep_negative=True, alpha=None,
                 use_stochastic_rounding=False, scale_axis=None, qnoise_factor=1.0,
                 var_name=None, use_ste=True, use_variables=False, elements_per_scale=None,
                 min_po2_exponent=None, max_po2_exponent=None, post_training_scale=None):
        super().__init__()
        self._set_impl(_C.make_quantizer("quantized_bits", (), dict(
            bits=bits, integer=integer, symmetric=symmetric, keep_negative=keep_negative,
            alpha=_alpha_argument(alpha), use_stochastic_rounding=use_stochastic_rounding,
            scale_axis=scale_axis, qnoise_factor=qnoise_factor, var_name=var_name,
            use_ste=use_ste, use_variables=use_variables, elements_per_scale=elements_per_scale,
            min_po2_exponent=min_po2_exponent, max_po2_exponent=max_po2_exponent,
            post_training_scale=post_training_scale)))
        _set_group_options(self)
        self._init_scale()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._auto != 0:
            if self._grouped:
                out, scale = torch.ops.heteroq.quantized_bits_auto_po2_grouped(
                    x, self.bits, self.integer, self.keep_negative, self._scale_axis,
                    self.qnoise_factor, self._elements_per_scale, self._min_po2_exponent,
                    self._max_po2_exponent)
            else:
                out, scale = torch.ops.heteroq.quantized_bits_auto(
                    x, self.bits, self.integer, self.keep_negative, self._auto == 2,
                    self._scale_axis, self.qnoise_factor)
            self.scale = scale
        elif self._channel_alpha:
            axis = 0 if self._scale_axis is None else self._scale_axis[0]
            noise: Optional[torch.Tensor] = None
            if self.use_stochastic_rounding and self.training:
                noise = torch.rand_like(x)
            out = torch.ops.heteroq.quantized_bits_scaled(
                x, self._alpha_tensor, self.bits, self.integer, self.symmetric,
                self.keep_negative, axis, self.qnoise_factor, noise)
        elif self.use_stochastic_rounding and self.training:
            # QKeras rounds stochastically in its learning phase only (the auto path never).
            out = torch.ops.heteroq.quantized_bits_stochastic(
                x, torch.rand_like(x), self.bits, self.integer, self.symmetric, self.keep_negative,
                self._alpha_value, self.qnoise_factor)
        else:
            out = torch.ops.heteroq.quantized_bits(x, self.bits, self.integer, self.symmetric,
                                                   self.keep_negative, self._alpha_value,
                                                   self.qnoise_factor)
        if not self.use_ste:
            out = torch.ops.heteroq._scale_gradient(out, 1.0 - self.qnoise_factor)
        return out


class quantized_relu(Quantizer):  # noqa: N801  (QKeras's name)
    """QKeras ``quantized_relu``: a ReLU on an unsigned fixed-point grid.

    With ``nsb = bits - (negative_slope != 0)`` the grid step is ``2**(integer - nsb)`` and the
    top ``2**integer - step``. A ``negative_slope`` (a power of two) quantizes ``slope * x`` for
    x < 0 on the same step, down to ``-slope * 2**integer``. ``use_sigmoid`` derives the grid from
    QKeras's hard sigmoid ``clip(0.5 * x / 2**integer + 0.5, 0, 1)``.
    The gradient (QKeras's STE) is 1 on (0, top], ``negative_slope`` for x <= 0, 0 above top.

    Args (QKeras's order): bits (1..32), integer (-64..64), use_sigmoid, negative_slope,
    qnoise_factor (in [0, 1]: the output is ``x_u + qnoise_factor * (q(x) - x_u)`` with ``x_u``
    the ReLU capped at the top of the grid; 1 gives q(x) exactly).
    ``use_stochastic_rounding`` rounds stochastically to the grid in training mode (QKeras rounds
    relu's codes with precision 1/2, between grid points; heteroq stays on the grid).
    ``is_quantized_clip=False`` caps the STE reference at ``relu_upper_bound`` instead of the top
    of the grid (not at all when it is None) and the output at ``relu_upper_bound`` (QKeras).
    ``use_ste=False`` scales the gradient by ``1 - qnoise_factor``. ``enable_fast_inference`` is
    QKeras's inference shortcut: unsigned fixed point without gradient, slope, sigmoid or bound.

    Example usage::

        q = heteroq.quantized_relu(4, 2)
        q(torch.tensor([-1.0, 0.6, 9.0]))    # tensor([0.0000, 0.5000, 3.7500])
    """

    bits: int
    integer: int
    use_sigmoid: bool
    negative_slope: float
    qnoise_factor: float
    use_stochastic_rounding: bool
    relu_upper_bound: Optional[float]
    is_quantized_clip: bool
    use_ste: bool
    enable_fast_inference: bool

    def __init__(self, bits=8, integer=0, use_sigmoid=0, negative_slope=0.0,
                 use_stochastic_rounding=False, relu_upper_bound=None, is_quantized_clip=True,
                 qnoise_factor=1.0, var_name=None, use_ste=True, use_variables=False,
                 enable_fast_inference=False):
        super().__init__()
        self._set_impl(_C.make_quantizer("quantized_relu", (), dict(
            bits=bits, integer=integer, use_sigmoid=use_sigmoid, negative_slope=negative_slope,
            use_stochastic_rounding=use_stochastic_rounding, relu_upper_bound=relu_upper_bound,
            is_quantized_clip=is_quantized_clip, qnoise_factor=qnoise_factor, var_name=var_name,
            use_ste=use_ste, use_variables=use_variables,
            enable_fast_inference=enable_fast_inference)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.enable_fast_inference:
            return torch.ops.heteroq.quantized_bits(x.detach(), self.bits, self.integer, False,
                                                    False, None, 1.0)
        q = self.qnoise_factor if self.is_quantized_clip else 1.0
        if self.use_stochastic_rounding and self.training:
            out = torch.ops.heteroq.quantized_relu_stochastic(
                x, torch.rand_like(x), self.bits, self.integer, self.use_sigmoid,
                self.negative_slope, q)
        else:
            out = torch.ops.heteroq.quantized_relu(x, self.bits, self.integer, self.use_sigmoid,
                                                   self.negative_slope, q)
        if not self.is_quantized_clip:
            out = torch.ops.heteroq._relu_upper_bound(out, x, self.negative_slope,
                                                      self.relu_upper_bound, self.qnoise_factor)
        if not self.use_ste:
            out = torch.ops.heteroq._scale_gradient(out, 1.0 - self.qnoise_factor)
        return out


class quantized_tanh(Quantizer):  # noqa: N801  (QKeras's name)
    """QKeras ``quantized_tanh``: ``clamp(round(p m), -m + symmetric, m - 1) / m``, m = 2**(bits-1).

    p is ``2 hσ(x) - 1`` with QKeras's default ("hard") internal sigmoid
    ``hσ(v) = clip(v/2 + 1/2, 0, 1)``, or ``tanh(x)`` with ``use_real_tanh``. The gradient (QKeras's
    STE) is the clip mask of the rounded value times dp/dx (1 on [-1, 1] for the hard form,
    ``1 - tanh²`` for the real one).

    Args (QKeras's order): bits (1..32), use_stochastic_rounding (training mode: the code rounds
    stochastically onto the grid; QKeras rounds at half steps, between grid points), symmetric,
    use_real_tanh.

    Example usage::

        heteroq.quantized_tanh(3)(torch.tensor([-2.0, 0.2, 0.9]))   # tensor([-1.0, 0.25, 0.75])
    """

    bits: int
    symmetric: bool
    use_real_tanh: bool
    use_stochastic_rounding: bool

    def __init__(self, bits=8, use_stochastic_rounding=False, symmetric=False, use_real_tanh=False):
        super().__init__()
        self._set_impl(_C.make_quantizer("quantized_tanh", (), dict(
            bits=bits, use_stochastic_rounding=use_stochastic_rounding, symmetric=symmetric,
            use_real_tanh=use_real_tanh)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_stochastic_rounding and self.training:
            return torch.ops.heteroq.quantized_tanh_stochastic(x, torch.rand_like(x), self.bits,
                                                               self.symmetric, self.use_real_tanh)
        return torch.ops.heteroq.quantized_tanh(x, self.bits, self.symmetric, self.use_real_tanh)


class quantized_sigmoid(Quantizer):  # noqa: N801  (QKeras's name)
    """QKeras ``quantized_sigmoid``: ``clamp(round(p m), symmetric, m - 1) / m``, m = 2**bits.

    p is QKeras's hard internal sigmoid ``clip(x/2 + 1/2, 0, 1)``, or ``sigmoid(x)`` with
    ``use_real_sigmoid``. The gradient is the clip mask of the rounded value times dp/dx (1/2 on
    [-1, 1], or ``σ (1 - σ)``).

    Args (QKeras's order): bits (1..32), symmetric, use_real_sigmoid, use_stochastic_rounding
    (as :class:`quantized_tanh`).
    """

    bits: int
    symmetric: bool
    use_real_sigmoid: bool
    use_stochastic_rounding: bool

    def __init__(self, bits=8, symmetric=False, use_real_sigmoid=False, use_stochastic_rounding=False):
        super().__init__()
        self._set_impl(_C.make_quantizer("quantized_sigmoid", (), dict(
            bits=bits, symmetric=symmetric, use_real_sigmoid=use_real_sigmoid,
            use_stochastic_rounding=use_stochastic_rounding)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_stochastic_rounding and self.training:
            return torch.ops.heteroq.quantized_sigmoid_stochastic(
                x, torch.rand_like(x), self.bits, self.symmetric, self.use_real_sigmoid)
        return torch.ops.heteroq.quantized_sigmoid(x, self.bits, self.symmetric,
                                                   self.use_real_sigmoid)


class quantized_po2(Quantizer):  # noqa: N801  (QKeras's name)
    """QKeras ``quantized_po2``: ``sign(x) * 2**e`` (a sign and an exponent, no zero).

    e is ``round(log2 |x|)`` (``log2_rounding="rnd"``) or its floor (``"floor"``), from
    ``max(|x|, 1e-7)`` capped at ``max_value``, clipped to ``[-2**(bits-1-need), 2**(bits-1-need) - 1]``
    with ``need = max_value is None or max_value > 1``; ``quadratic_approximation`` rounds the
    exponent of ``sqrt`` and doubles it (even exponents). 0 (and |x| < 1e-7) give ``+2**min_exp``.
    log2 is rounded exactly (QKeras's float32 log can be an ulp off next to the boundaries).
    The gradient is the identity; ``qnoise_factor`` blends as in :class:`quantized_bits`.

    Args (QKeras's order): bits (2..12), max_value, use_stochastic_rounding (training mode with
    ``"rnd"``: QKeras's mean-preserving ``stochastic_round_po2``, the exponent of the power of two
    below or above |x|), quadratic_approximation, log2_rounding, qnoise_factor, var_name, use_ste
    (False: the gradient times ``1 - qnoise_factor``), use_variables.

    Example usage::

        heteroq.quantized_po2(4)(torch.tensor([0.3, -3.0, 0.0]))   # tensor([0.25, -4.0, 0.0625])
    """

    bits: int
    max_value: Optional[float]
    quadratic_approximation: bool
    log2_rounding: str
    qnoise_factor: float
    use_stochastic_rounding: bool
    use_ste: bool

    def __init__(self, bits=8, max_value=None, use_stochastic_rounding=False,
                 quadratic_approximation=False, log2_rounding="rnd", qnoise_factor=1.0,
                 var_name=None, use_ste=True, use_variables=False):
        super().__init__()
        self._set_impl(_C.make_quantizer("quantized_po2", (), dict(
            bits=bits, max_value=max_value, use_stochastic_rounding=use_stochastic_rounding,
            quadratic_approximation=quadratic_approximation, log2_rounding=log2_rounding,
            qnoise_factor=qnoise_factor, var_name=var_name, use_ste=use_ste,
            use_variables=use_variables)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_stochastic_rounding and self.training and self.log2_rounding == "rnd":
            out = torch.ops.heteroq.quantized_po2_stochastic(
                x, torch.rand_like(x), self.bits, self.max_value, self.quadratic_approximation,
                self.qnoise_factor)
        else:
            out = torch.ops.heteroq.quantized_po2(x, self.bits, self.max_value,
                                                  self.quadratic_approximation, self.log2_rounding,
                                                  self.qnoise_factor)
        if not self.use_ste:
            out = torch.ops.heteroq._scale_gradient(out, 1.0 - self.qnoise_factor)
        return out


class quantized_relu_po2(Quantizer):  # noqa: N801  (QKeras's name)
    """QKeras ``quantized_relu_po2``: ``2**e(relu(x))``, no sign bit.

    Exponents in ``[-2**(bits-need), 2**(bits-need) - 1]``; x <= 0 gives ``+2**min_exp`` without a
    ``negative_slope``, and ``-2**e(-slope * x)`` with one (a power of two). The gradient is 1 for
    x > 0, the slope for x <= 0 and 0 above ``max_value``.

    Args (QKeras's order): bits (2..12), max_value, negative_slope, use_stochastic_rounding
    (as :class:`quantized_po2`), quadratic_approximation, log2_rounding, qnoise_factor, var_name,
    use_ste, use_variables.
    """

    bits: int
    max_value: Optional[float]
    negative_slope: float
    quadratic_approximation: bool
    log2_rounding: str
    qnoise_factor: float
    use_stochastic_rounding: bool
    use_ste: bool

    def __init__(self, bits=8, max_value=None, negative_slope=0, use_stochastic_rounding=False,
                 quadratic_approximation=False, log2_rounding="rnd", qnoise_factor=1.0,
                 var_name=None, use_ste=True, use_variables=False):
        super().__init__()
        self._set_impl(_C.make_quantizer("quantized_relu_po2", (), dict(
            bits=bits, max_value=max_value, negative_slope=negative_slope,
            use_stochastic_rounding=use_stochastic_rounding,
            quadratic_approximation=quadratic_approximation, log2_rounding=log2_rounding,
            qnoise_factor=qnoise_factor, var_name=var_name, use_ste=use_ste,
            use_variables=use_variables)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_stochastic_rounding and self.training and self.log2_rounding == "rnd":
            out = torch.ops.heteroq.quantized_relu_po2_stochastic(
                x, torch.rand_like(x), self.bits, self.max_value, self.negative_slope,
                self.quadratic_approximation, self.qnoise_factor)
        else:
            out = torch.ops.heteroq.quantized_relu_po2(x, self.bits, self.max_value,
                                                       self.negative_slope,
                                                       self.quadratic_approximation,
                                                       self.log2_rounding, self.qnoise_factor)
        if not self.use_ste:
            out = torch.ops.heteroq._scale_gradient(out, 1.0 - self.qnoise_factor)
        return out


class quantized_ulaw(Quantizer):  # noqa: N801  (QKeras's name)
    """QKeras ``quantized_ulaw``: a u-law compander of a hard-sigmoid code.

    With ``m = 2**(bits-1)``: ``rp = 2 round(hσ(x / 2**integer) m) / m - 1`` and
    ``q = 2**integer clip(sign(rp) log(1 + u|rp|) / log(1 + u), -1 + symmetric/m, 1 - 1/m)``.
    The gradient flows through the compander, with round's straight-through estimator.
    """

    bits: int
    integer: int
    symmetric: bool
    u: float

    def __init__(self, bits=8, integer=0, symmetric=0, u=255.0):
        super().__init__()
        self._set_impl(_C.make_quantizer("quantized_ulaw", (), dict(
            bits=bits, integer=integer, symmetric=symmetric, u=u)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.heteroq.quantized_ulaw(x, self.bits, self.integer, self.symmetric, self.u)


class quantized_hswish(Quantizer):  # noqa: N801  (QKeras's name)
    """QKeras ``quantized_hswish``: signed :class:`quantized_bits` of the hard swish
    ``x * min(relu(x + relu_shift), relu_upper_bound) / relu_upper_bound``.

    Args (QKeras's order): bits, integer, symmetric, alpha (None or a number),
    use_stochastic_rounding (training mode, as :class:`quantized_bits`), scale_axis (default only),
    qnoise_factor, var_name, use_ste (default only), use_variables, relu_shift (> 0),
    relu_upper_bound (> 0).
    """

    bits: int
    integer: int
    symmetric: bool
    alpha: Optional[float]
    qnoise_factor: float
    relu_shift: float
    relu_upper_bound: float
    use_stochastic_rounding: bool

    def __init__(self, bits=8, integer=0, symmetric=0, alpha=None, use_stochastic_rounding=False,
                 scale_axis=None, qnoise_factor=1.0, var_name=None, use_ste=True,
                 use_variables=False, relu_shift=3, relu_upper_bound=6):
        super().__init__()
        self._set_impl(_C.make_quantizer("quantized_hswish", (), dict(
            bits=bits, integer=integer, symmetric=symmetric, alpha=alpha,
            use_stochastic_rounding=use_stochastic_rounding, scale_axis=scale_axis,
            qnoise_factor=qnoise_factor, var_name=var_name, use_ste=use_ste,
            use_variables=use_variables, relu_shift=relu_shift, relu_upper_bound=relu_upper_bound)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        noise: Optional[torch.Tensor] = None
        if self.use_stochastic_rounding and self.training:
            noise = torch.rand_like(x)
        return torch.ops.heteroq.quantized_hswish(x, self.bits, self.integer, self.symmetric,
                                                  self.alpha, self.qnoise_factor, self.relu_shift,
                                                  self.relu_upper_bound, noise)


class binary(_AutoScaleQuantizer):  # noqa: N801  (QKeras's name)
    """QKeras ``binary``: ``alpha * sign(x)`` with sign(0) = +1 (``{0, alpha}`` with ``use_01``).

    alpha None gives ±1 with QKeras's tanh STE (gradient ``1 - tanh²(x)``); a number scales the
    output (gradient 1); ``"auto"`` / ``"auto_po2"`` choose a least-squares scale of sign(x) per
    channel (``scale_axis``, default 0) at every call, readable as :attr:`scale` (gradient 1).

    Args (QKeras's order): use_01, alpha, use_stochastic_rounding (training mode: QKeras's
    stochastic pre-rounding of x at 1/8 of the channel range and a random sign for zeros),
    scale_axis, elements_per_scale (one scale per group of that many consecutive channels),
    min_po2_exponent/max_po2_exponent (clip an ``"auto_po2"`` scale), as QKeras.
    """

    use_01: bool
    use_stochastic_rounding: bool
    _grouped: bool
    _elements_per_scale: Optional[List[int]]
    _min_po2_exponent: Optional[int]
    _max_po2_exponent: Optional[int]

    def __init__(self, use_01=False, alpha=None, use_stochastic_rounding=False, scale_axis=None,
                 elements_per_scale=None, min_po2_exponent=None, max_po2_exponent=None):
        super().__init__()
        self._set_impl(_C.make_quantizer("binary", (), dict(
            use_01=use_01, alpha=alpha, use_stochastic_rounding=use_stochastic_rounding,
            scale_axis=scale_axis, elements_per_scale=elements_per_scale,
            min_po2_exponent=min_po2_exponent, max_po2_exponent=max_po2_exponent)))
        _set_group_options(self)
        self._init_scale()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_stochastic_rounding and self.training:
            noise = torch.rand([2] + list(x.shape), dtype=x.dtype, device=x.device)
            out, scale = torch.ops.heteroq.binary_stochastic(
                x, noise, self.use_01, self._alpha_value, self._auto, self._scale_axis,
                self._elements_per_scale, self._min_po2_exponent, self._max_po2_exponent)
            if self._auto != 0:
                self.scale = scale
            return out
        if self._auto != 0:
            if self._grouped:
                out, scale = torch.ops.heteroq.binary_auto_grouped(
                    x, self.use_01, self._auto == 2, self._scale_axis, self._elements_per_scale,
                    self._min_po2_exponent, self._max_po2_exponent)
            else:
                out, scale = torch.ops.heteroq.binary_auto(x, self.use_01, self._auto == 2,
                                                           self._scale_axis)
            self.scale = scale
            return out
        return torch.ops.heteroq.binary(x, self.use_01, self._alpha_value)


class ternary(_AutoScaleQuantizer):  # noqa: N801  (QKeras's name)
    """QKeras ``ternary``: ``alpha * sign(x)`` where ``|x| >= threshold`` (default 0.33), else 0.

    With ``"auto"`` / ``"auto_po2"`` the scale and the threshold (half the scale) come from
    QKeras's iteration (``number_of_unrolls`` times, per channel); ``threshold`` must then be
    None. Gradient: ``1 - tanh²(x)`` when alpha is None, else 1.

    Args (QKeras's order): alpha, threshold, use_stochastic_rounding (auto modes only, as
    QKeras: in training mode the loop rounds x / scale stochastically at precision 1/3),
    number_of_unrolls; heteroq adds scale_axis (default 0) for the auto modes.
    """

    number_of_unrolls: int
    use_stochastic_rounding: bool

    def __init__(self, alpha=None, threshold=None, use_stochastic_rounding=False,
                 number_of_unrolls=5, scale_axis=None):
        super().__init__()
        self._set_impl(_C.make_quantizer("ternary", (), dict(
            alpha=alpha, threshold=threshold, use_stochastic_rounding=use_stochastic_rounding,
            number_of_unrolls=number_of_unrolls, scale_axis=scale_axis)))
        self._init_scale()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._auto != 0 and self.use_stochastic_rounding and self.training:
            noise = torch.rand([self.number_of_unrolls] + list(x.shape), dtype=x.dtype,
                               device=x.device)
            out, scale = torch.ops.heteroq.ternary_stochastic(x, noise, self._auto == 2,
                                                              self.number_of_unrolls,
                                                              self._scale_axis)
            self.scale = scale
            return out
        if self._auto != 0:
            out, scale = torch.ops.heteroq.ternary_auto(x, self._auto == 2, self.number_of_unrolls,
                                                        self._scale_axis)
            self.scale = scale
            return out
        return torch.ops.heteroq.ternary(x, self._alpha_value, self.threshold)


class _StochasticBinaryBase(Quantizer):
    """Shared by stochastic_binary and bernoulli."""

    temperature: float
    use_real_sigmoid: bool
    _auto: int
    _alpha_value: Optional[float]
    _zero_one: bool

    def _setup(self, name: str, alpha, temperature, use_real_sigmoid) -> None:
        self._set_impl(_C.make_quantizer(name, (), dict(
            alpha=alpha, temperature=temperature, use_real_sigmoid=use_real_sigmoid)))
        self.__dict__["_unlocked"] = True
        try:
            self._auto = ({"auto": 1, "auto_po2": 2}.get(self.alpha, 0)
                          if isinstance(self.alpha, str) else 0)
            self._alpha_value = None if self._auto else self.alpha
            self._zero_one = name == "bernoulli"
        finally:
            self.__dict__["_unlocked"] = False
        self.register_buffer("scale", torch.tensor(self._alpha_value or 1.0), persistent=False)

    def _stochastic(self, x: torch.Tensor) -> torch.Tensor:
        out, scale = torch.ops.heteroq.stochastic_binary(
            x, torch.rand_like(x), self.temperature, self.use_real_sigmoid, self._zero_one,
            self._alpha_value, self._auto != 0, self._auto == 2, None)
        self.scale = scale
        return out


class stochastic_binary(_StochasticBinaryBase):  # noqa: N801  (QKeras's name)
    """QKeras ``stochastic_binary``: in training, ``sign(sigmoid(temperature x / s) - u)``
    (u ~ U[0, 1) from ``torch.rand_like``; s the per-channel std of x for alpha "auto"/"auto_po2",
    else 1), scaled by alpha, 1, or the least-squares scale of sign(x); in eval mode,
    :class:`binary` with the same alpha. The training gradient is the identity.

    Args (QKeras's order): alpha, temperature, use_real_sigmoid (False: the hard sigmoid).
    """

    def __init__(self, alpha=None, temperature=6.0, use_real_sigmoid=True):
        super().__init__()
        self._setup("stochastic_binary", alpha, temperature, use_real_sigmoid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return self._stochastic(x)
        if self._auto != 0:
            out, scale = torch.ops.heteroq.binary_auto(x, False, self._auto == 2, None)
            self.scale = scale
            return out
        return torch.ops.heteroq.binary(x, False, self._alpha_value)


class bernoulli(_StochasticBinaryBase):  # noqa: N801  (QKeras's name)
    """QKeras ``bernoulli``: ``{0, scale}`` with P(scale) = sigmoid(temperature x / s), in training
    and inference alike (as QKeras). The gradient is the identity.

    Args (QKeras's order): alpha, temperature, use_real_sigmoid.
    """

    def __init__(self, alpha=None, temperature=6.0, use_real_sigmoid=True):
        super().__init__()
        self._setup("bernoulli", alpha, temperature, use_real_sigmoid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._stochastic(x)


class stochastic_ternary(Quantizer):  # noqa: N801  (QKeras's name)
    """QKeras ``stochastic_ternary``: in training (alpha "auto"/"auto_po2" only, as QKeras), the
    average of two stochastic signs around the per-channel threshold, ``scale * q`` with q in
    {-1, 0, 1} (noises from ``torch.rand_like``); in eval mode, :class:`ternary` with the same
    arguments. The training gradient is the identity.

    Args (QKeras's order): alpha, threshold, temperature, use_real_sigmoid, number_of_unrolls.
    """

    temperature: float
    use_real_sigmoid: bool
    number_of_unrolls: int
    _auto: int

    def __init__(self, alpha=None, threshold=None, temperature=8.0, use_real_sigmoid=True,
                 number_of_unrolls=5):
        super().__init__()
        self._set_impl(_C.make_quantizer("stochastic_ternary", (), dict(
            alpha=alpha, threshold=threshold, temperature=temperature,
            use_real_sigmoid=use_real_sigmoid, number_of_unrolls=number_of_unrolls)))
        self.__dict__["_unlocked"] = True
        try:
            self._auto = ({"auto": 1, "auto_po2": 2}.get(self.alpha, 0)
                          if isinstance(self.alpha, str) else 0)
        finally:
            self.__dict__["_unlocked"] = False
        self.eval_quantizer = ternary(alpha, threshold, number_of_unrolls=number_of_unrolls)
        self.register_buffer("scale", torch.tensor(1.0), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self.eval_quantizer(x)
        if self._auto == 0:
            raise ValueError("stochastic_ternary: training needs alpha 'auto' or 'auto_po2' "
                             "(as in QKeras)")
        out, scale = torch.ops.heteroq.stochastic_ternary(
            x, torch.rand_like(x), torch.rand_like(x), self.temperature, self.use_real_sigmoid,
            self._auto == 2, self.number_of_unrolls, None)
        self.scale = scale
        return out


def _width_tensor(v: Union[Tensor, float, int, bool, Sequence[float]], name: str) -> Tensor:
    if isinstance(v, Tensor):
        if not v.is_floating_point():
            raise TypeError(f"fixed: `{name}` must be a floating-point tensor, got {v.dtype}")
        return v.detach().to("cpu", torch.float32).round().contiguous()
    return torch.as_tensor(v, dtype=torch.float32).round()


class FixedQuantizer(Quantizer):
    """Fixed point with integer widths per tensor, channel or element (C++
    ``heteroq::FixedQuantizer``).

    ``FixedQuantizer(bits, integer, keep_negative=True, round_mode="RND_CONV",
    overflow_mode="SAT")`` is the spec form ``fixed(...)`` (QKeras's convention: ``bits`` counts
    the sign bit, ``integer`` does not, f = bits - integer - keep_negative).
    :meth:`from_widths` takes the widths as tensors broadcastable to the inputs. The widths are
    buffers (``keep_negative``, ``int_bits``, ``frac_bits``), saved in ``state_dict`` when built
    by :meth:`from_widths` (the spec form describes them); a quantizer with non-uniform widths
    has no spec string (``to_string`` raises ValueError).
    """

    keep_negative: Tensor
    int_bits: Tensor
    frac_bits: Tensor

    def __init__(self, bits: int = 8, integer: int = 0, keep_negative: bool = True,
                 round_mode: str = "RND_CONV", overflow_mode: str = "SAT") -> None:
        super().__init__()
        _C.make_quantizer("fixed", (), dict(bits=bits, integer=integer,
                                                   keep_negative=keep_negative,
                                                   round_mode=round_mode,
                                                   overflow_mode=overflow_mode))
        k = 1.0 if keep_negative else 0.0
        # The spec says everything: the widths stay out of state_dict, as other quantizers'.
        self._init_widths(torch.tensor(k), torch.tensor(float(integer)),
                          torch.tensor(float(bits - integer - k)), round_mode, overflow_mode,
                          persistent=False)

    @classmethod
    def from_widths(cls, keep_negative, int_bits, frac_bits, round_mode: str = "RND_CONV",
                    overflow_mode: str = "SAT") -> "FixedQuantizer":
        """Widths as tensors (or numbers) of integer values broadcastable to each other."""
        q = cls.__new__(cls)
        Quantizer.__init__(q)
        q._init_widths(_width_tensor(keep_negative, "keep_negative"),
                       _width_tensor(int_bits, "int_bits"), _width_tensor(frac_bits, "frac_bits"),
                       round_mode, overflow_mode)
        return q

    def _init_widths(self, k: Tensor, i: Tensor, f: Tensor, round_mode: str,
                     overflow_mode: str, persistent: bool = True) -> None:
        self.__dict__["_unlocked"] = True
        self._param_names = ()
        self.round_mode = round_mode
        self.overflow_mode = overflow_mode
        self.register_buffer("keep_negative", k, persistent=persistent)
        self.register_buffer("int_bits", i, persistent=persistent)
        self.register_buffer("frac_bits", f, persistent=persistent)
        self._refresh()

    def _refresh(self) -> None:
        # The C++ object checks the widths and modes (ValueError) and answers min/max/to_string.
        self.__dict__["_impl"] = _C.FixedQuantizer(
            self.keep_negative.detach().cpu().double().numpy(),
            self.int_bits.detach().cpu().double().numpy(),
            self.frac_bits.detach().cpu().double().numpy(), self.round_mode, self.overflow_mode)

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._refresh()

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_impl", None)
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._refresh()

    def forward(self, x: Tensor) -> Tensor:
        return torch.ops.heteroq.fixed_quantize(x, self.keep_negative, self.int_bits,
                                                self.frac_bits, self.round_mode,
                                                self.overflow_mode)

    def bit_widths(self) -> Tensor:
        """The total widths k + i + f (0 where negative)."""
        return (self.keep_negative + self.int_bits + self.frac_bits).clamp_min(0)

    @property
    def is_uniform(self) -> bool:
        return self._impl.is_uniform

    @property
    def bits(self) -> int:  # type: ignore[override]
        """The largest width k + i + f over the elements."""
        return self._impl.bits

    def __repr__(self) -> str:
        if self._impl.is_uniform:
            return self._impl.to_string()
        return (f"FixedQuantizer(widths of shape {tuple(self.bit_widths().shape)}, "
                f"round_mode='{self.round_mode}', overflow_mode='{self.overflow_mode}')")

    __str__ = __repr__


# The fixed quantizer of learned precision (heteroq.hgq), also the spec "fixed(bits, integer, ...)".
fixed = FixedQuantizer


_CLASSES = {"quantized_bits": quantized_bits, "quantized_relu": quantized_relu,
            "binary": binary, "ternary": ternary, "quantized_ulaw": quantized_ulaw,
            "quantized_hswish": quantized_hswish, "stochastic_binary": stochastic_binary,
            "bernoulli": bernoulli, "stochastic_ternary": stochastic_ternary,
            "quantized_po2": quantized_po2, "quantized_relu_po2": quantized_relu_po2,
            "quantized_tanh": quantized_tanh, "quantized_sigmoid": quantized_sigmoid,
            "fixed": FixedQuantizer}


def get_quantizer(spec: Union[str, Dict[str, Any], Quantizer, None]) -> Optional[Quantizer]:
    """Returns the quantizer a QKeras spec string names, e.g. ``"quantized_bits(6,0,alpha=1)"``.

    Also reads :meth:`Quantizer.to_json`'s format, as JSON text (starting with ``{``) or as a dict
    ``{"class_name": ..., "config": {...}}`` (Keras's serialization). A :class:`Quantizer` is
    returned as is and ``None`` stays ``None``.

    Raises:
        ValueError: unknown name or keyword, bad literal, unbalanced parentheses, bad value.
        TypeError: ``spec`` is neither a string nor a quantizer.
    """
    if spec is None or isinstance(spec, Quantizer):
        return spec
    if isinstance(spec, dict):
        import json
        spec = json.dumps(spec)
    if isinstance(spec, str) and spec.lstrip().startswith("{"):
        impl = _C.quantizer_from_json(spec)
        return _CLASSES[impl.name](**_python_config(impl))
    if not isinstance(spec, str):
        raise TypeError(f"get_quantizer: expected a spec string or a heteroq quantizer, "
                        f"got {type(spec).__name__}")
    name, args, kwargs = _C.parse_spec(spec)
    if name not in _CLASSES:
        _C.make_quantizer(name, args, kwargs)  # raises ValueError naming the known quantizers
        raise AssertionError(f"quantizer {name!r} has no Python class")  # pragma: no cover
    # Positional arguments are checked against QKeras's signature in C++, then passed by name.
    impl = _C.make_quantizer(name, args, kwargs)
    return _CLASSES[name](**_python_config(impl))


def qkeras_weight_quantizer(q: Union[str, Quantizer]) -> Quantizer:
    """QKeras's implicit rule for weight quantizers (its layers' ``_set_trainable_parameter``): a
    ``quantized_bits`` (2 bits or more), ``binary``, ``ternary``, ``stochastic_binary``,
    ``stochastic_ternary`` or ``bernoulli`` without alpha gets ``alpha="auto_po2"``
    (``quantized_bits`` also ``symmetric``): per-channel power-of-two scales. Other quantizers are
    returned as they are. heteroq's layers apply quantizers exactly as given; call this (or
    ``model_quantize(..., qkeras_compatible=True)``) to train as QKeras does.

    Example usage::

        heteroq.qkeras_weight_quantizer("quantized_bits(4,0,1)").to_string()
        # "quantized_bits(4,0,1,alpha='auto_po2')"
    """
    q = get_quantizer(q)
    if q is None:
        raise ValueError("qkeras_weight_quantizer: expected a quantizer or a spec string, got None")
    spec = _C.qkeras_weight_spec(q.to_string())
    return q if spec == q.to_string() else get_quantizer(spec)


def _python_config(impl: "_C.Quantizer") -> Dict[str, Any]:
    config = dict(impl.config())
    for key in ("scale_axis", "elements_per_scale"):
        if config.get(key) is not None:
            config[key] = [int(a) for a in config[key]]
    return config


def _set_group_options(q: Quantizer) -> None:
    """Script-friendly copies of QKeras's auto_po2 scale options (quantized_bits, binary)."""
    q.__dict__["_unlocked"] = True
    try:
        if q.elements_per_scale is not None:
            q.elements_per_scale = [int(e) for e in q.elements_per_scale]
        q._elements_per_scale = q.elements_per_scale
        q._min_po2_exponent = q.min_po2_exponent
        q._max_po2_exponent = q.max_po2_exponent
        q._grouped = (q.elements_per_scale is not None or q.min_po2_exponent is not None or
                      q.max_po2_exponent is not None)
    finally:
        q.__dict__["_unlocked"] = False


def _alpha_argument(alpha: Any) -> Any:
    """A per-channel alpha (tensor, array, tuple) as the list of floats the C++ core takes."""
    if isinstance(alpha, torch.Tensor):
        if alpha.dim() > 1:
            raise ValueError(f"quantized_bits: a per-channel `alpha` must be 1-D (one value per "
                             f"channel), got shape {tuple(alpha.shape)}")
        return [float(a) for a in alpha.detach().reshape(-1).tolist()] if alpha.dim() == 1 \
            else float(alpha)
    if hasattr(alpha, "tolist") and not isinstance(alpha, (str, bytes)):  # numpy arrays
        return _alpha_argument(torch.as_tensor(alpha))
    if isinstance(alpha, tuple):
        return [float(a) for a in alpha]
    return alpha
