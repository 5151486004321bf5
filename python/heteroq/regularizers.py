# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""Resource regularizers (differentiable EBOPs) and their coefficient schedules.

The loss term ``beta(step) * EBOPs`` trades accuracy against hardware cost while bit widths train
(HGQ). :func:`total_ebops` sums the ``ebops()`` of every module that has one (the layers with
trainable bit widths); :class:`EBOPsRegularizer` holds the schedule of ``beta``: constant, a linear
or logarithmic ramp, piecewise, or a controller that steers the EBOPs to a budget. The schedules
and the controller are ``heteroq::nn::EBOPsRegularizer`` (C++); docs/pruning.md gives the formulas.

Example usage::

    reg = heteroq.regularizers.EBOPsRegularizer.ramp(1e-6, 2e-3, 5000, 20000)   # log ramp
    for step, (x, y) in enumerate(loader):
        loss = criterion(model(x), y) + reg(model, step)
        ...
    reg = heteroq.regularizers.EBOPsRegularizer.controller(target=4000, beta0=1e-5)
"""
import numbers
from typing import Dict, List, Sequence, Tuple, Union

import torch
from torch import Tensor

from . import _C

__all__ = ["total_ebops", "EBOPsRegularizer"]


def total_ebops(model: torch.nn.Module) -> Tensor:
    """The sum of ``m.ebops()`` over ``model`` and its submodules that have an ``ebops()`` method
    (each counted once), a differentiable 0-dim tensor; ``tensor(0.)`` when none has one.

    Each ``ebops()`` must return one floating-point value and count the module's own operations
    only (a container's children are counted on their own).

    Raises:
        TypeError: ``model`` is not a ``torch.nn.Module``.
        ValueError: an ``ebops()`` returns something other than one floating-point value (the
            message names the module).
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"total_ebops: `model` must be a torch.nn.Module, got "
                        f"{type(model).__name__}")
    total = None
    for name, m in model.named_modules():
        ebops = getattr(m, "ebops", None)
        if not callable(ebops):
            continue
        e = ebops()
        if not isinstance(e, Tensor) or e.numel() != 1 or not e.is_floating_point():
            what = (f"a tensor of {e.numel()} values of type {e.dtype}" if isinstance(e, Tensor)
                    else type(e).__name__)
            raise ValueError(f"total_ebops: the ebops() of module {name or type(m).__name__!r} "
                             f"must be one floating-point value (a 0-dim tensor), got {what}")
        e = e.reshape(())
        total = e if total is None else total + e
    return total if total is not None else torch.zeros(())


def _step(step: object, who: str) -> int:
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise TypeError(f"{who}: `step` must be an int, got {type(step).__name__}")
    return int(step)


def _mode(mode: str, who: str) -> bool:
    if mode not in ("linear", "log"):
        raise ValueError(f"{who}: `mode` must be \"linear\" or \"log\", got {mode!r}")
    return mode == "log"


class EBOPsRegularizer:
    """The resource regularizer ``penalty = beta(step) * EBOPs``; build it with
    :meth:`constant`, :meth:`ramp`, :meth:`piecewise` or :meth:`controller`.

    ``reg(model_or_ebops, step)`` (:meth:`penalty`) returns the penalty, differentiable in the
    EBOPs: a module's :func:`total_ebops`, or any tensor. The controller reads the EBOPs' value
    (detached) at each new step and updates ``beta <- clamp(beta * exp(gain * (ebops / target -
    1)), beta_min, beta_max)`` after using it. :meth:`state_dict` / :meth:`load_state_dict` save
    and restore what changes while training (the controller's beta and last step).
    """

    def __init__(self, impl: "_C.EBOPsRegularizer") -> None:
        if not isinstance(impl, _C.EBOPsRegularizer):
            raise TypeError("EBOPsRegularizer: build it with EBOPsRegularizer.constant, .ramp, "
                            ".piecewise or .controller")
        self._impl = impl

    @classmethod
    def constant(cls, beta: float) -> "EBOPsRegularizer":
        """``beta(step) = beta``."""
        return cls(_C.EBOPsRegularizer.constant(float(beta)))

    @classmethod
    def ramp(cls, beta0: float, beta1: float, start_step: int, end_step: int,
             mode: str = "log") -> "EBOPsRegularizer":
        """From ``beta0`` at ``start_step`` to ``beta1`` at ``end_step`` (constant outside),
        ``mode="log"`` (HGQ's: geometric, both betas > 0) or ``"linear"``."""
        who = "EBOPsRegularizer.ramp"
        return cls(_C.EBOPsRegularizer.ramp(float(beta0), float(beta1), _step(start_step, who),
                                            _step(end_step, who), _mode(mode, who)))

    @classmethod
    def piecewise(cls, knots: Sequence[Tuple[int, float]],
                  mode: str = "linear") -> "EBOPsRegularizer":
        """Interpolates between knots ``[(step, beta), ...]`` (steps increasing), linearly or
        (``mode="log"``) geometrically; constant before the first and after the last."""
        who = "EBOPsRegularizer.piecewise"
        try:
            pairs = [(_step(s, who), float(b)) for s, b in knots]
        except (TypeError, ValueError) as e:
            if isinstance(e, TypeError) and "`step`" in str(e):
                raise
            raise TypeError(f"{who}: `knots` must be a sequence of (step, beta) pairs") from e
        return cls(_C.EBOPsRegularizer.piecewise(pairs, _mode(mode, who)))

    @classmethod
    def controller(cls, target: float, beta0: float, gain: float = 0.1,
                   beta_min: float = 1e-12, beta_max: float = 1.0, interval: int = 1,
                   max_log_step: float = 1.0) -> "EBOPsRegularizer":
        """Steers the EBOPs to the budget ``target``: every ``interval`` steps, ``beta <-
        clamp(beta * exp(clip(gain * (ebops / target - 1), +-max_log_step)), beta_min,
        beta_max)``, starting at ``beta0``."""
        return cls(_C.EBOPsRegularizer.controller(
            float(target), float(beta0), float(gain), float(beta_min), float(beta_max),
            _step(interval, "EBOPsRegularizer.controller: `interval`"), float(max_log_step)))

    @property
    def kind(self) -> str:
        """``"constant"``, ``"piecewise"`` (ramps too) or ``"controller"``."""
        return self._impl.kind

    @property
    def knots(self) -> List[Tuple[int, float]]:
        """The knots ``(step, beta)`` (constant and controller: one, the initial beta)."""
        return list(self._impl.knots)

    def beta(self, step: int) -> float:
        """The coefficient at ``step`` (the controller: its current value)."""
        return self._impl.beta(_step(step, "EBOPsRegularizer.beta"))

    def penalty(self, model_or_ebops: Union[torch.nn.Module, Tensor], step: int) -> Tensor:
        """``beta * EBOPs`` at ``step`` (a module: its :func:`total_ebops`; a tensor: itself,
        one value for the controller), differentiable in the EBOPs.

        Raises:
            TypeError: neither a module nor a tensor; ``step`` not an int.
            ValueError: a negative step; for the controller, EBOPs that are not one finite
                value >= 0.
        """
        step = _step(step, "EBOPsRegularizer.penalty")
        if isinstance(model_or_ebops, torch.nn.Module):
            ebops = total_ebops(model_or_ebops)
        elif isinstance(model_or_ebops, Tensor):
            ebops = model_or_ebops
        else:
            raise TypeError(f"EBOPsRegularizer.penalty: expected a torch.nn.Module or a tensor, "
                            f"got {type(model_or_ebops).__name__}")
        if not ebops.is_floating_point():
            raise ValueError(f"EBOPsRegularizer.penalty: `ebops` must be a floating-point "
                             f"tensor, got {ebops.dtype}")
        value = 0.0
        if self._impl.kind == "controller":
            if ebops.numel() != 1:
                raise ValueError(f"EBOPsRegularizer.penalty: the controller needs one EBOPs value "
                                 f"(a 0-dim tensor), got {ebops.numel()} values")
            value = float(ebops.detach())
        return ebops * self._impl.observe(value, step)

    __call__ = penalty

    def state_dict(self) -> Dict[str, float]:
        """``{"beta", "last_step", "last_ebops"}``: what changes while training."""
        return dict(self._impl.state_dict())

    def load_state_dict(self, state: Dict[str, float]) -> None:
        """Restores :meth:`state_dict`'s values (ValueError for missing or unknown keys, a beta
        outside ``[beta_min, beta_max]``)."""
        if not isinstance(state, dict):
            raise TypeError(f"EBOPsRegularizer.load_state_dict: expected a dict, got "
                            f"{type(state).__name__}")
        self._impl.load_state_dict({str(k): float(v) for k, v in state.items()})

    def __repr__(self) -> str:
        return f"EBOPsRegularizer.{self._impl}"
