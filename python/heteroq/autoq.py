# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""AutoQ: AutoQKeras's search for heterogeneous quantization, over PyTorch models.

The engine is C++ (``heteroq::autoq``): the search space from a QKeras ``quantization_config`` and
``limit``, the forgiving-factor goal, the strategies (random, Bayesian/TPE, Hyperband), the study
storage (memory or an SQLite file that survives kills and is shared by worker processes) and the
Pareto front. This module wraps your training code (a Python callable) and builds each trial's
model with :func:`heteroq.model_quantize` from the float model.

Example usage::

    import heteroq
    from heteroq import autoq

    def train(model, epochs, trial):            # your training loop; returns the metric
        ...
        return val_accuracy

    search = autoq.AutoQ(float_model, input_shape=(16,),
                         goal=autoq.custom_goal(lambda m: autoq.model_bits(m, (16,))),
                         limit={"Dense": [8, 8, 8], "Activation": [8]},
                         strategy="bayesian", max_trials=20, storage="study.db")
    search.fit(train)
    search.best_config, search.best_trial.score
    search.save_best("best.safetensors")        # the trained best model, quantized weights
    search.plot_history("history.png"); search.plot_pareto("pareto.png")

Details, the forgiving factor and a worked example: docs/autoq.md.
"""
from __future__ import annotations

import copy
import csv
import dataclasses
import io
import json
import math
import os
import time
import traceback
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import torch

from . import _C
from . import nn as _qnn  # noqa: F401  (heteroq.nn before convert: it imports _rnn, which needs nn)
from .convert import _describe, _leaves, model_quantize

__all__ = ["AutoQ", "AutoQScheduler", "Goal", "Trial", "SearchSpace", "forgiving_factor", "custom_goal", "named_goal",
           "register_goal", "available_goals", "pareto_front", "make_trainer", "describe_layers",
           "default_quantization_config", "model_bits", "scale_widths", "FrontPoint", "Refinement",
           "make_refiner", "refine"]

PathLike = Union[str, "os.PathLike[str]"]


# ---------------------------------------------------------------------------------------------
# Goals


def forgiving_factor(metric: float, reference_cost: float, trial_cost: float, *, delta_p: float = 8.0,
                     delta_n: float = 8.0, rate: float = 2.0, stress: float = 1.0) -> float:
    """AutoQKeras's boosted score, ``metric * (1 + delta)`` with ``delta = (trial < ref ? delta_p :
    delta_n) / 100 * ln(ref / trial) / ln(rate)`` and ``ref = stress * reference_cost`` (the C++
    ``heteroq::autoq::ForgivingFactor``). Raises ValueError for non-positive costs or a bad rate."""
    return _C._autoq_score(float(delta_p), float(delta_n), float(rate), float(stress), float(metric),
                           float(reference_cost), float(trial_cost))


@dataclasses.dataclass
class Goal:
    """A search goal: the cost of a model (``cost(model) -> float``, in any positive unit), the
    reference cost the forgiving factor compares with (``reference(float_model) -> float``), and the
    factor's parameters. Build one with :func:`named_goal` or :func:`custom_goal`."""

    type: str
    cost: Callable[[torch.nn.Module], float]
    reference: Callable[[torch.nn.Module], float]
    delta_p: float = 8.0
    delta_n: float = 8.0
    rate: float = 2.0
    stress: float = 1.0
    options: Dict[str, Any] = dataclasses.field(default_factory=dict)


# name -> fn(model, input_shape, for_reference: bool, **options) -> float
_GOALS: Dict[str, Callable[..., float]] = {}


def register_goal(name: str, fn: Callable[..., float]) -> None:
    """Registers a named cost: ``fn(model, input_shape, for_reference, **options) -> float``
    (``for_reference``: price the float model as the goal's reference, e.g. all int8)."""
    if not isinstance(name, str) or not name:
        raise ValueError("autoq.register_goal: the name must be a non-empty string")
    if not callable(fn):
        raise ValueError(f"autoq.register_goal: {name!r} needs a callable, got {fn!r}")
    _GOALS[name] = fn


def _cost_module():
    from . import cost
    return cost


def _builtin(name: str) -> Optional[Callable[..., float]]:
    """The cost models of heteroq.cost behind "energy", "bits", "ebops" and "fpga" (None while
    heteroq.cost lacks them). The goal params are translated by the C++ core (AutoQKeras's energy
    params to QTools options for the reference and the trials; the bits goal's config)."""
    cost = _cost_module()
    if name == "energy" and hasattr(cost, "energy"):
        def energy(m, shape, for_reference, **params):
            ref, trial = _C._autoq_energy_options(json.dumps(params))
            return float(cost.energy(m, shape, **json.loads(ref if for_reference else trial)).total)
        return energy
    if name == "bits" and hasattr(cost, "model_size"):
        def bits(m, shape, for_reference, **params):
            options, measure = _C._autoq_bits_options(json.dumps(params))
            r = cost.model_size(m, shape, **json.loads(options))
            field = {"total": "total_bits", "parameters": "parameter_bits", "activations": "activation_bits"}[measure]
            return float(getattr(r, ("reference_" if for_reference else "") + field))
        return bits
    if name == "ebops" and hasattr(cost, "bops"):
        return lambda m, shape, for_reference, **o: float(cost.bops(m, shape, **o).ebops)
    if name == "fpga" and hasattr(cost, "fpga_estimate"):
        def fpga(m, shape, for_reference, **o):
            r = cost.fpga_estimate(m, shape, **o)
            return float(r.lut + r.dsp)
        return fpga
    return None


def available_goals() -> List[str]:
    """The goal names :func:`named_goal` resolves now."""
    names = set(_GOALS)
    for n in ("energy", "bits", "ebops", "fpga"):
        if _builtin(n) is not None:
            names.add(n)
    return sorted(names)


def named_goal(goal: Union[str, Mapping[str, Any], None], input_shape: Sequence[int]) -> Goal:
    """A goal from AutoQKeras's format, ``{"type": "energy", "params": {"delta_p": 8.0, ...}}`` (or
    just the type): delta_p/delta_n/rate/stress go to the forgiving factor (parsed by the C++ core),
    the other params to the cost model. The default is AutoQKeras's bits goal."""
    if goal is None:
        text = ""
    elif isinstance(goal, str):
        text = json.dumps({"type": goal})
    elif isinstance(goal, Mapping):
        text = json.dumps(goal)
    else:
        raise ValueError(f"autoq: goal must be a name, a dict {{'type', 'params'}}, a Goal or None, got {goal!r}")
    gtype, dp, dn, rate, stress, options = _C._autoq_parse_goal(text)
    options = json.loads(options)
    fn = _GOALS.get(gtype) or _builtin(gtype)
    if fn is None:
        known = ", ".join(available_goals()) or "none"
        if gtype in ("energy", "bits", "ebops", "fpga"):
            raise ValueError(f"autoq: goal {gtype!r} is not available: heteroq.cost does not provide its cost model "
                             f"in this build (available: {known}); pass custom_goal(cost_fn) instead")
        raise ValueError(f"autoq: unknown goal {gtype!r} (available: {known}; register_goal adds one)")
    shape = list(input_shape)
    if not shape:
        raise ValueError(f"autoq: goal {gtype!r} needs the model's input_shape (batch dimension first, e.g. (1, 16))")
    if gtype == "bits" and not goal:
        options = {}
    return Goal(gtype, lambda m: fn(m, shape, False, **options), lambda m: fn(m, shape, True, **options),
                dp, dn, rate, stress, options)


def custom_goal(cost: Callable[[torch.nn.Module], float],
                reference: Union[float, Callable[[torch.nn.Module], float], None] = None, *,
                delta_p: float = 8.0, delta_n: float = 8.0, rate: float = 2.0, stress: float = 1.0,
                name: str = "custom") -> Goal:
    """A goal from your cost function (``cost(model) -> float > 0``). The reference is a number, a
    function of the float model, or (None) ``cost`` of the float model."""
    if not callable(cost):
        raise ValueError(f"autoq.custom_goal: cost must be callable, got {cost!r}")
    if reference is None:
        ref = cost
    elif callable(reference):
        ref = reference
    else:
        value = float(reference)
        ref = lambda m: value  # noqa: E731
    _C._autoq_delta(float(delta_p), float(delta_n), float(rate), float(stress), 1.0, 1.0)  # validates
    return Goal(name, cost, ref, float(delta_p), float(delta_n), float(rate), float(stress))


def model_bits(model: torch.nn.Module, input_shape: Sequence[int] = (), *, ref_bits: int = 8) -> float:
    """A simple size cost: the bits of the model's weights (each quantized parameter at its
    quantizer's bits, float ones at ``ref_bits``). For custom goals and tests."""
    total = 0.0
    for name, m in _leaves(model):
        quantizers = {}
        for slot in ("kernel_quantizer", "bias_quantizer", "depthwise_quantizer"):
            q = getattr(m, slot, None)
            if q is not None:
                quantizers[slot] = getattr(q, "bits", ref_bits)
        for pname, p in m.named_parameters(recurse=False):
            slot = {"weight": "kernel_quantizer", "bias": "bias_quantizer"}.get(pname, "")
            if pname == "weight" and "depthwise_quantizer" in quantizers:
                slot = "depthwise_quantizer"
            total += float(quantizers.get(slot, ref_bits)) * p.numel()
    return total


# ---------------------------------------------------------------------------------------------
# Search space


def default_quantization_config() -> Dict[str, Dict[str, float]]:
    """AutoQKeras's ``default_quantization_config``."""
    return json.loads(_C._autoq_default_quantization_config())


def describe_layers(model: torch.nn.Module) -> List[Tuple[str, str, str, bool, int]]:
    """The layers the search sees: ``(name, Keras kind, activation, has_bias, width)`` per leaf
    module, in module order (the names model_quantize uses)."""
    out = []
    for name, m in _leaves(model):
        kind, act = _describe(m)
        if isinstance(m, torch.nn.Softmax):
            kind, act = "Activation", "softmax"
        elif isinstance(m, torch.nn.Identity):
            kind, act = "Activation", "linear"
        width = int(getattr(m, "out_features", 0) or getattr(m, "out_channels", 0) or 0)
        has_bias = getattr(m, "bias", None) is not None
        out.append((name, kind, act, bool(has_bias), width))
    return out


def _json_text(value: Any, what: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value)
    except TypeError as e:
        raise ValueError(f"autoq: {what} must be JSON-serializable: {e}") from None


class SearchSpace:
    """The search space (C++ ``heteroq::autoq::SearchSpace``): AutoQKeras's hyperparameters for a
    model. ``params`` lists them (name, kind, field, choices, bits, layers)."""

    def __init__(self, model: torch.nn.Module, *, quantization_config: Optional[Mapping] = None,
                 limit: Optional[Mapping] = None, activation_bits: int = 4, tune_filters: str = "none",
                 tune_filters_exceptions: Optional[str] = None, frozen_layers: Optional[Iterable[str]] = None,
                 layer_indexes: Optional[Iterable[int]] = None, fixed_config: Optional[Mapping] = None,
                 bit_ranges: Optional[Mapping[str, Tuple[int, int]]] = None,
                 templates: Optional[Mapping[str, str]] = None):
        self.layers = describe_layers(model)
        ranges = None
        tmpl = None
        if bit_ranges is not None:
            if quantization_config is not None:
                raise ValueError("autoq: pass either quantization_config or bit_ranges, not both")
            unknown = set(bit_ranges) - {"kernel", "bias", "activation"}
            if unknown:
                raise ValueError(f"autoq: bit_ranges keys must be kernel, bias, activation; got {sorted(unknown)}")
            ranges = []
            for k in ("kernel", "bias", "activation"):
                lo, hi = bit_ranges.get(k, (0, 0))
                ranges += [int(lo), int(hi)]
            t = {"kernel": "quantized_bits({bits},0,1,alpha=1)", "bias": "quantized_bits({bits},0,1,alpha=1)",
                 "activation": "quantized_relu({bits},0)"}
            t.update(templates or {})
            tmpl = [t["kernel"], t["bias"], t["activation"]]
        self._space = _C._AutoQSpace.build(
            self.layers, _json_text(quantization_config, "quantization_config"), _json_text(limit, "limit"),
            int(activation_bits), str(tune_filters), tune_filters_exceptions or "", list(frozen_layers or []),
            None if layer_indexes is None else [int(i) for i in layer_indexes],
            _json_text(fixed_config, "fixed_config"), ranges, tmpl)
        self.activation_bits = int(activation_bits)

    @property
    def params(self) -> List[Dict[str, Any]]:
        return self._space.params

    @property
    def cardinality(self) -> float:
        return self._space.cardinality

    def decode(self, params: Union[Mapping[str, str], str]) -> Dict[str, Any]:
        """``{"quantizer_config": dict, "filters": {layer: factor}, "bits": {"layer/field": bits}}``."""
        text = params if isinstance(params, str) else json.dumps(dict(params))
        d = self._space.decode_params(text)
        d["quantizer_config"] = json.loads(d["quantizer_config"])
        return d


# ---------------------------------------------------------------------------------------------
# Models


def scale_widths(model: torch.nn.Module, factors: Mapping[str, float]) -> torch.nn.Module:
    """A copy of ``model`` whose Linear/Conv1d/Conv2d layers named in ``factors`` have
    ``max(int(width * factor), 1)`` outputs (AutoQKeras's tune_filters), with the layers that
    consume them (the next Linear/Conv/BatchNorm/depthwise conv in module order; a Linear after a
    flatten scales its inputs per channel) resized. The model's modules must be in forward order
    (e.g. a Sequential). Resized layers are re-initialized; the others keep their weights."""
    model = copy.deepcopy(model)
    if not factors:
        return model
    leaves = _leaves(model)
    names = {n for n, _ in leaves}
    for n in factors:
        if n not in names:
            raise ValueError(f"autoq.scale_widths: {n!r} is not a layer of the model")
    carried: Optional[Tuple[int, int]] = None  # (old channels, new channels) flowing forward
    for name, m in leaves:
        parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
        attr = name.rsplit(".", 1)[-1]
        new = None
        if isinstance(m, torch.nn.Linear):
            fin = m.in_features
            if carried is not None and carried[0] != carried[1]:
                if fin % carried[0] != 0:
                    raise ValueError(f"autoq.scale_widths: cannot resize the inputs of {name!r}")
                fin = fin // carried[0] * carried[1]
            fout = m.out_features
            if name in factors:
                fout = max(int(fout * float(factors[name])), 1)
            if (fin, fout) != (m.in_features, m.out_features):
                new = torch.nn.Linear(fin, fout, bias=m.bias is not None)
            carried = (m.out_features, fout)
        elif isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d)):
            cin, cout, groups = m.in_channels, m.out_channels, m.groups
            depthwise = groups > 1 and groups == cin
            if carried is not None and carried[0] != carried[1]:
                cin = carried[1]
                if depthwise:
                    cout = cout // m.in_channels * cin
                    groups = cin
                elif groups != 1:
                    raise ValueError(f"autoq.scale_widths: cannot resize grouped conv {name!r}")
            if name in factors:
                if depthwise:
                    raise ValueError(f"autoq.scale_widths: depthwise {name!r} has no filters to tune")
                cout = max(int(cout * float(factors[name])), 1)
            if (cin, cout) != (m.in_channels, m.out_channels):
                new = type(m)(cin, cout, m.kernel_size, stride=m.stride, padding=m.padding, dilation=m.dilation,
                              groups=groups, bias=m.bias is not None, padding_mode=m.padding_mode)
            carried = (m.out_channels, cout)
        elif isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            if carried is not None and carried[0] != carried[1]:
                new = type(m)(carried[1], eps=m.eps, momentum=m.momentum, affine=m.affine,
                              track_running_stats=m.track_running_stats)
        if new is not None:
            setattr(parent, attr, new)
    return model


def _build(float_model: torch.nn.Module, config: Mapping[str, Any], activation_bits: int,
           transfer_weights: bool, qkeras_compatible: bool) -> torch.nn.Module:
    base = scale_widths(float_model, config["filters"]) if config["filters"] else float_model
    return model_quantize(base, config["quantizer_config"], activation_bits, transfer_weights=transfer_weights,
                          qkeras_compatible=qkeras_compatible)


# ---------------------------------------------------------------------------------------------
# Trials and results


@dataclasses.dataclass
class Trial:
    """One trial of a study (a row of its table)."""

    number: int
    params: Dict[str, str]
    status: str
    metric: float
    cost: float
    score: float
    epochs: int
    bracket: int
    rung: int
    parent: int
    attempts: int
    started: float
    finished: float
    duration: float
    overhead: float
    worker: str
    error: str
    user_attrs: Dict[str, Any]

    @classmethod
    def _from(cls, d: Mapping[str, Any]) -> "Trial":
        return cls(d["number"], json.loads(d["params"]) if d["params"] else {}, d["status"], d["metric"], d["cost"],
                   d["score"], d["epochs"], d["bracket"], d["rung"], d["parent"], d["attempts"], d["started"],
                   d["finished"], d["duration"], d["overhead"], d["worker"], d["error"],
                   json.loads(d["user_attrs"] or "{}"))


@dataclasses.dataclass
class TrialInfo:
    """What the training callable gets about its trial."""

    number: int
    params: Dict[str, str]
    quantizer_config: Dict[str, Any]
    filters: Dict[str, float]
    bits: Dict[str, float]
    epochs: int
    parent: int
    parent_epochs: int
    rung: int
    attrs: Dict[str, Any] = dataclasses.field(default_factory=dict)
    """Anything JSON-serializable the callable stores here is saved with the trial."""


def pareto_front(trials: Sequence[Trial]) -> List[Trial]:
    """The complete trials no other dominates in (metric up, cost down), by increasing cost."""
    done = [t for t in trials if t.status == "complete"]
    idx = _C._autoq_pareto_front([t.metric for t in done], [t.cost for t in done])
    return [done[i] for i in idx]


def make_trainer(train_data: Iterable, val_data: Iterable, loss_fn: Callable[..., torch.Tensor], *,
                 optimizer: Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer] = None,
                 metric: Union[str, Callable[[torch.nn.Module, Iterable], float]] = "accuracy",
                 progress: bool = True) -> Callable[[torch.nn.Module, int, TrialInfo], float]:
    """The built-in training callable for the common case: ``epochs`` passes over ``train_data``
    (an iterable of ``(x, y)`` batches, e.g. a DataLoader) with ``loss_fn`` and ``optimizer(params)``
    (default Adam, lr 1e-3), then the metric on ``val_data``: ``"accuracy"`` (argmax of the output
    against integer labels) or ``metric(model, val_data) -> float``. Continues a Hyperband parent's
    model from its epochs. With progress, a tqdm bar over the epochs."""
    if optimizer is None:
        optimizer = lambda params: torch.optim.Adam(params, lr=1e-3)  # noqa: E731
    evaluate = _evaluator(val_data, metric, "autoq.make_trainer")

    def train(model: torch.nn.Module, epochs: int, trial: TrialInfo) -> float:
        opt = optimizer(model.parameters())
        bar = _tqdm(range(epochs), desc=f"trial {getattr(trial, 'number', '-')} epochs", leave=False,
                    disable=not progress)
        for _ in bar:
            model.train()
            for x, y in train_data:
                opt.zero_grad()
                loss = loss_fn(model(x), y)
                loss.backward()
                opt.step()
            if progress:
                bar.set_postfix(loss=float(loss))
        return evaluate(model)

    return train


def _tqdm(it, **kw):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency of the examples only
        return it
    return tqdm(it, **kw)


class AutoQ:
    """AutoQKeras's search for a PyTorch model, over the C++ engine.

    Args:
        model: the float model (leaves in forward order for tune_filters).
        input_shape: the input's shape as heteroq.cost takes it, batch dimension first (e.g. (1, 16));
            needed by the named goals.
        goal: AutoQKeras's ``{"type": "energy"|"bits"|"ebops"|"fpga", "params": {...}}``, a name, a
            :class:`Goal` (:func:`custom_goal`), or None (the bits goal).
        strategy: ``"random"``, ``"bayesian"`` (TPE) or ``"hyperband"`` (AutoQKeras's ``mode``).
        quantization_config, limit, activation_bits, tune_filters, tune_filters_exceptions,
        frozen_layers, layer_indexes: as AutoQKeras (see :class:`SearchSpace`); or ``bit_ranges``
            ``{"kernel": (2, 8), ...}`` for a generated space.
        transfer_weights: start each trial from the float model's weights.
        max_trials, epochs, seed: the budget, epochs per trial, and the seed.
        storage: an SQLite file for the study (resumable, shareable), or None (memory).
        study_name, overwrite: the study in the file; an existing study with another space, goal or
            strategy is an error unless overwrite (a matching one resumes).
        objective: ``"score"`` or ``"pareto"`` (strategies rank by Pareto rank of (metric, cost)).
        hyperband: ``{"min_epochs", "max_epochs", "eta", "iterations"}``; tpe: ``{"startup_trials",
            "candidates", "gamma", "prior_weight"}``.
        progress: tqdm bars (trials; epochs in make_trainer's trainer).
        keep_models: which trained trial models stay in memory after :meth:`fit`: ``"best"``
            (default), ``"pareto"`` (the Pareto front's, which :func:`refine` starts from) or
            ``"all"``.
    """

    def __init__(self, model: torch.nn.Module, input_shape: Sequence[int] = (), goal: Any = None, *,
                 strategy: str = "random", quantization_config: Optional[Mapping] = None,
                 limit: Optional[Mapping] = None, activation_bits: int = 4, tune_filters: str = "none",
                 tune_filters_exceptions: Optional[str] = None, frozen_layers: Optional[Iterable[str]] = None,
                 layer_indexes: Optional[Iterable[int]] = None, fixed_config: Optional[Mapping] = None,
                 bit_ranges: Optional[Mapping[str, Tuple[int, int]]] = None, transfer_weights: bool = True,
                 qkeras_compatible: bool = False, max_trials: int = 20, epochs: int = 1, seed: int = 0,
                 storage: Optional[PathLike] = None, study_name: str = "autoq", overwrite: bool = False,
                 objective: str = "score", hyperband: Optional[Mapping[str, int]] = None,
                 tpe: Optional[Mapping[str, float]] = None, progress: bool = True,
                 keep_models: str = "best"):
        if keep_models not in ("best", "pareto", "all"):
            raise ValueError(f"autoq.AutoQ: keep_models must be 'best', 'pareto' or 'all', got {keep_models!r}")
        self.keep_models = keep_models
        if not isinstance(model, torch.nn.Module):
            raise ValueError(f"autoq.AutoQ: model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.input_shape = list(input_shape)
        self.goal = goal if isinstance(goal, Goal) else named_goal(goal, self.input_shape)
        self.space = SearchSpace(model, quantization_config=quantization_config, limit=limit,
                                 activation_bits=activation_bits, tune_filters=tune_filters,
                                 tune_filters_exceptions=tune_filters_exceptions, frozen_layers=frozen_layers,
                                 layer_indexes=layer_indexes, fixed_config=fixed_config, bit_ranges=bit_ranges)
        self.transfer_weights = bool(transfer_weights)
        self.qkeras_compatible = bool(qkeras_compatible)
        self.progress = bool(progress)
        self.max_trials = int(max_trials)
        with torch.no_grad():
            reference = float(self.goal.reference(model))
        options: Dict[str, Any] = {"strategy": strategy, "seed": int(seed), "max_trials": int(max_trials),
                                   "epochs": int(epochs), "objective": objective,
                                   "storage": "" if storage is None else os.fspath(storage),
                                   "study_name": study_name, "overwrite": bool(overwrite)}
        for k, v in (hyperband or {}).items():
            if k not in ("min_epochs", "max_epochs", "eta", "iterations"):
                raise ValueError(f"autoq.AutoQ: unknown hyperband option {k!r}")
            options["hyperband_" + k] = int(v)
        for k, v in (tpe or {}).items():
            if k not in ("startup_trials", "candidates", "gamma", "prior_weight"):
                raise ValueError(f"autoq.AutoQ: unknown tpe option {k!r}")
            options["tpe_" + k] = v
        g = self.goal
        self._search = _C._AutoQSearch(self.space._space, g.type, g.delta_p, g.delta_n, g.rate, g.stress,
                                       json.dumps(g.options), reference, options)
        self._trained: Dict[int, torch.nn.Module] = {}
        self.train_fn: Optional[Callable] = None

    # -- running ------------------------------------------------------------------------------
    def build_model(self, params: Union[Mapping[str, str], Trial]) -> torch.nn.Module:
        """The quantized model of a trial (or of hyperparameters), built from the float model."""
        if isinstance(params, Trial):
            params = params.params
        return _build(self.model, self.space.decode(params), self.space.activation_bits, self.transfer_weights,
                      self.qkeras_compatible)

    def fit(self, train_fn: Callable[[torch.nn.Module, int, TrialInfo], float],
            max_new_trials: Optional[int] = None) -> "AutoQ":
        """Runs the search: for each trial, builds its model and calls ``train_fn(model, epochs,
        trial) -> metric`` (higher is better; the trial's ``epochs`` to reach, counting a Hyperband
        parent's). A raising callable or a NaN metric fails the trial and the search goes on;
        Ctrl-C stops it (the running trial is rerun on resume)."""
        if not callable(train_fn):
            raise ValueError(f"autoq.AutoQ.fit: train_fn must be callable, got {train_fn!r}")
        self.train_fn = train_fn
        bar = _tqdm(range(self.max_trials), desc="autoq trials", disable=not self.progress)
        bar_update = getattr(bar, "update", None)
        done0 = len(self._search.trials())
        if bar_update and done0:
            bar.update(min(done0, self.max_trials))

        def run_trial(ctx: Dict[str, Any]) -> Tuple[float, float, str]:
            config = ctx["config"]
            config = {"quantizer_config": json.loads(config["quantizer_config"]), "filters": config["filters"],
                      "bits": config["bits"]}
            info = TrialInfo(ctx["number"], json.loads(ctx["params"]), config["quantizer_config"],
                             config["filters"], config["bits"], ctx["epochs"], ctx["parent"], ctx["parent_epochs"],
                             ctx["rung"])
            epochs = ctx["epochs"]
            if ctx["parent"] >= 0 and ctx["parent"] in self._trained:
                model = copy.deepcopy(self._trained[ctx["parent"]])
                epochs = max(ctx["epochs"] - ctx["parent_epochs"], 0)
            else:
                model = _build(self.model, config, self.space.activation_bits, self.transfer_weights,
                               self.qkeras_compatible)
            metric = train_fn(model, epochs, info)
            try:
                metric = float(metric)
            except (TypeError, ValueError):
                raise ValueError(f"train_fn must return a number, got {metric!r}") from None
            # priced after training: EBOPs and the FPGA estimate read the trained weights
            with torch.no_grad():
                cost = float(self.goal.cost(model))
            self._trained[ctx["number"]] = model
            return metric, cost, json.dumps(info.attrs)

        def on_trial(t: Dict[str, Any], all_trials: List[Dict[str, Any]]) -> None:
            if bar_update:
                bar.update(1)
                best = max((x["score"] for x in all_trials if x["status"] == "complete"), default=float("nan"))
                bar.set_postfix(best=f"{best:.4f}", last=t["status"])

        try:
            self._search.run(run_trial, max_new_trials, on_trial)
        finally:
            if hasattr(bar, "close"):
                bar.close()
            self._prune_cache()
        return self

    def _prune_cache(self) -> None:
        """Keeps the trained models that can still matter: the best trial's, and (Hyperband) those
        of the latest rungs."""
        best = self.best_trial
        keep = {best.number} if best else set()
        if self.keep_models == "all":
            return
        if self.keep_models == "pareto":
            keep |= {t.number for t in self.pareto_front()}
        if self._search_strategy_is_hyperband():
            keep |= set(self._trained)
        for n in list(self._trained):
            if n not in keep:
                del self._trained[n]

    def _search_strategy_is_hyperband(self) -> bool:
        return any(t.bracket >= 0 for t in self.trials)

    # -- results ------------------------------------------------------------------------------
    @property
    def trials(self) -> List[Trial]:
        """Every trial of the study (all workers), by number."""
        return [Trial._from(d) for d in self._search.trials()]

    @property
    def reference_cost(self) -> float:
        return self._search.reference_cost

    @property
    def best_trial(self) -> Optional[Trial]:
        """The complete trial of highest score (None if none)."""
        d = self._search.best()
        return None if d is None else Trial._from(d)

    @property
    def best_config(self) -> Dict[str, Any]:
        """The best trial's model_quantize config (and ``"filters"`` factors, if tuned)."""
        best = self._need_best()
        d = self.space.decode(best.params)
        return {"quantizer_config": d["quantizer_config"], "filters": d["filters"], "bits": d["bits"]}

    def best_model(self, trained: bool = True) -> torch.nn.Module:
        """The best trial's model: trained (as its trial left it, when this process ran it) or,
        with ``trained=False`` or when another process ran it, freshly built for retraining."""
        best = self._need_best()
        if trained and best.number in self._trained:
            return self._trained[best.number]
        if trained and self.train_fn is None:
            raise ValueError("autoq: the best trial was trained by another process; call best_model(trained=False) "
                             "and retrain it, or fit() first")
        return self.build_model(best)

    def save_best(self, path: PathLike) -> Dict[str, Any]:
        """Saves the trained best model's quantized weights (heteroq.save_quantized_weights) and
        its config next to it (``<path>.json``: config, trial)."""
        from .serialize import save_quantized_weights
        best = self._need_best()
        if best.number not in self._trained:
            raise ValueError("autoq.save_best: the best trial's trained model is not in this process "
                             "(it ran in another worker or a killed run); retrain best_model(trained=False) "
                             "and save it with heteroq.save_quantized_weights")
        info = save_quantized_weights(self._trained[best.number], path)
        with open(os.fspath(path) + ".json", "w") as f:
            json.dump({"config": self.best_config, "trial": dataclasses.asdict(best)}, f, indent=1)
        return info

    def trained_model(self, trial: Union[int, Trial]) -> torch.nn.Module:
        """A trial's trained model, when this process trained it and kept it (``keep_models``)."""
        number = trial.number if isinstance(trial, Trial) else int(trial)
        if number not in self._trained:
            raise ValueError(f"autoq: trial {number}'s trained model is not in this process (kept: "
                             f"{sorted(self._trained)}; keep_models={self.keep_models!r})")
        return self._trained[number]

    def _need_best(self) -> Trial:
        best = self.best_trial
        if best is None:
            raise ValueError("autoq: no trial has completed yet")
        return best

    def pareto_front(self) -> List[Trial]:
        """The complete trials on the Pareto front of (metric, cost)."""
        return [Trial._from(d) for d in self._search.pareto()]

    def history(self) -> List[Dict[str, Any]]:
        """The trial table as rows (dicts with the hyperparameters flattened in)."""
        rows = []
        for t in self.trials:
            row = dataclasses.asdict(t)
            params = row.pop("params")
            row.update({f"hp:{k}": v for k, v in params.items()})
            row["user_attrs"] = json.dumps(row["user_attrs"])
            rows.append(row)
        return rows

    def to_csv(self, path: Optional[PathLike] = None) -> str:
        """The trial table as CSV (one column per hyperparameter); written to path if given."""
        rows = self.history()
        cols: List[str] = []
        for r in rows:
            cols += [c for c in r if c not in cols]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()})
        text = buf.getvalue()
        if path is not None:
            with open(path, "w") as f:
                f.write(text)
        return text

    def to_json(self, path: Optional[PathLike] = None) -> str:
        """The trials as JSON (the C++ engine's table); written to path if given."""
        text = self._search.trials_json()
        if path is not None:
            with open(path, "w") as f:
                f.write(text)
        return text

    # -- plots (matplotlib) -------------------------------------------------------------------
    def plot_history(self, path: Optional[PathLike] = None):
        """Score and cost per trial (failed trials marked). Returns the figure."""
        plt = _pyplot()
        ts = self.trials
        fig, ax = plt.subplots(figsize=(7, 4))
        ok = [t for t in ts if t.status == "complete"]
        ax.plot([t.number for t in ok], [t.score for t in ok], "o-", label="score")
        ax.plot([t.number for t in ok], [t.metric for t in ok], "s", alpha=0.6, label="metric")
        bad = [t for t in ts if t.status == "failed"]
        if bad:
            ax.plot([t.number for t in bad], [0.0] * len(bad), "rx", label="failed")
        ax.set_xlabel("trial")
        ax.set_ylabel("score / metric")
        ax2 = ax.twinx()
        ax2.plot([t.number for t in ok], [t.cost for t in ok], "^", color="tab:green", alpha=0.6, label="cost")
        ax2.axhline(self.reference_cost * self.goal.stress, color="tab:green", ls="--", lw=0.8)
        ax2.set_ylabel(f"cost ({self.goal.type})")
        ax.legend(loc="lower left")
        ax.set_title("AutoQ trials")
        return _finish(fig, path)

    def plot_pareto(self, path: Optional[PathLike] = None, others: Optional[Sequence[Trial]] = None,
                    label: str = "this search", others_label: str = "other"):
        """Metric against cost of every complete trial, the Pareto front as a line; ``others``
        (e.g. a random search's trials) drawn alongside with their front."""
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(6, 4))
        for trials, lab, color in ((self.trials, label, "tab:blue"), (others, others_label, "tab:orange")):
            if trials is None:
                continue
            ok = [t for t in trials if t.status == "complete"]
            ax.scatter([t.cost for t in ok], [t.metric for t in ok], s=12, alpha=0.5, color=color)
            front = pareto_front(ok)
            ax.step([t.cost for t in front], [t.metric for t in front], where="post", color=color,
                    label=f"{lab} Pareto front")
        ax.set_xscale("log")
        ax.set_xlabel(f"cost ({self.goal.type})")
        ax.set_ylabel("metric")
        ax.legend()
        return _finish(fig, path)

    def plot_bits(self, path: Optional[PathLike] = None):
        """Per-layer bit widths of the best model (kernel, bias, activation)."""
        plt = _pyplot()
        bits = self.best_config["bits"]
        layers: List[str] = []
        for key in bits:
            layer = key.rsplit("/", 1)[0]
            if layer not in layers:
                layers.append(layer)
        fields = ["kernel", "bias", "activation", "linear"]
        fig, ax = plt.subplots(figsize=(max(5, len(layers)), 4))
        width = 0.2
        for i, f in enumerate(fields):
            ys = [bits.get(f"{l}/{f}", 0) for l in layers]
            if any(ys):
                ax.bar([j + i * width for j in range(len(layers))], ys, width, label=f)
        ax.set_xticks([j + width for j in range(len(layers))])
        ax.set_xticklabels(layers, rotation=30)
        ax.set_ylabel("bits")
        ax.set_title(f"best trial {self._need_best().number}")
        ax.legend()
        return _finish(fig, path)


def _pyplot():
    import matplotlib
    if os.environ.get("DISPLAY", "") == "" and matplotlib.get_backend().lower() not in ("agg", "pdf", "svg"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _finish(fig, path):
    fig.tight_layout()
    if path is not None:
        fig.savefig(os.fspath(path))
    return fig


class AutoQScheduler:
    """AutoQKerasScheduler: the search one block of layers at a time.

    Each block regex (``blocks``, matched at the start of layer names) becomes its own study (named
    ``<study_name>_block<i>`` in the same storage), searched with the limit re-keyed to its layers;
    the layers of earlier blocks keep their best quantizers and the later ones stay float; every
    trial starts from the float model's weights (``transfer_weights``). ``schedule_block="cost"``
    orders blocks by decreasing cost, and each block gets ``int(max(10, max_trials * cost /
    reference))`` trials, the costs from ``layer_costs`` (a dict, or a function of the float model
    returning one; default: each layer's parameter count at 8 bits) and the reference their sum.
    A killed scheduler resumes block by block from the storage file (finished blocks are not rerun).
    Other arguments as :class:`AutoQ`.
    """

    def __init__(self, model: torch.nn.Module, input_shape: Sequence[int] = (), goal: Any = None, *,
                 blocks: Sequence[str], schedule_block: str = "sequential",
                 layer_costs: Union[Mapping[str, float], Callable[[torch.nn.Module], Mapping[str, float]], None] = None,
                 limit: Optional[Mapping] = None, max_trials: int = 20, study_name: str = "autoq",
                 layer_indexes: Optional[Iterable[int]] = None, **kwargs: Any):
        if isinstance(blocks, str) or not blocks:
            raise ValueError("autoq.AutoQScheduler: blocks must be a non-empty list of regexes")
        if limit is None:
            raise ValueError("autoq.AutoQScheduler: a limit is required (blocks re-key it)")
        if "frozen_layers" in kwargs or "fixed_config" in kwargs:
            raise ValueError("autoq.AutoQScheduler: frozen_layers/fixed_config are set per block by the scheduler")
        self.model = model
        self.input_shape = list(input_shape)
        self.goal = goal if isinstance(goal, Goal) else named_goal(goal, self.input_shape)
        if layer_costs is None:
            costs = {n: 8.0 * sum(p.numel() for p in m.parameters()) for n, m in _leaves(model)}
        elif callable(layer_costs):
            costs = dict(layer_costs(model))
        else:
            costs = dict(layer_costs)
        costs = {str(k): float(v) for k, v in costs.items()}
        reference = sum(costs.values())
        layers = describe_layers(model)
        self.plan = _C._autoq_plan_blocks(layers, list(blocks), costs, schedule_block, int(max_trials),
                                          reference if reference > 0 else 1.0, _json_text(limit, "limit"),
                                          None if layer_indexes is None else [int(i) for i in layer_indexes])
        self.study_name = study_name
        self.layer_indexes = layer_indexes
        self.kwargs = kwargs
        self.searches: List[AutoQ] = []
        self.fixed: Dict[str, Any] = {}

    def fit(self, train_fn: Callable[[torch.nn.Module, int, TrialInfo], float]) -> "AutoQScheduler":
        """Searches the blocks in turn (see the class)."""
        frozen: List[str] = []
        self.searches, self.fixed = [], {}
        for i, block in enumerate(self.plan):
            search = AutoQ(self.model, self.input_shape, self.goal, limit=json.loads(block["limit"]),
                           max_trials=block["max_trials"], study_name=f"{self.study_name}_block{i}",
                           frozen_layers=list(frozen),
                           fixed_config=dict(self.fixed), layer_indexes=self.layer_indexes, **self.kwargs)
            search.fit(train_fn)
            self.searches.append(search)
            best = search.best_trial
            if best is not None:
                config = search.best_config["quantizer_config"]
                for name in block["layers"]:
                    if name in config:
                        self.fixed[name] = config[name]
            frozen += [n for n in block["layers"] if n not in frozen]
        return self

    @property
    def best_config(self) -> Dict[str, Any]:
        """The quantizer config of all blocks' best trials."""
        if not self.searches:
            raise ValueError("autoq.AutoQScheduler: fit() first")
        return dict(self.fixed)

    def best_model(self, trained: bool = True) -> torch.nn.Module:
        """The last block's best model (it carries every block's quantizers)."""
        if not self.searches:
            raise ValueError("autoq.AutoQScheduler: fit() first")
        return self.searches[-1].best_model(trained)

    def history(self) -> List[List[Trial]]:
        """The trials of each block's study."""
        return [s.trials for s in self.searches]



# ---------------------------------------------------------------------------------------------
# Search, then refine with learned precision (docs/learned_precision.md)

@dataclasses.dataclass
class FrontPoint:
    """A model of the search-then-refine pipeline: an AutoQ trial (``stage="autoq"``, epoch 0) or
    a checkpoint of its learned-precision refinement (``stage="refine"``)."""

    stage: str
    trial: int
    epoch: int
    metric: float
    ebops: float
    beta: float
    model: Optional[torch.nn.Module] = dataclasses.field(default=None, repr=False)


def _ebops_of(model: torch.nn.Module, input_shape: Sequence[int]) -> float:
    from . import cost
    with torch.no_grad():
        return float(cost.bops(model, list(input_shape)).ebops)


def make_refiner(train_data: Iterable, val_data: Iterable, loss_fn: Callable[..., torch.Tensor], *,
                 regularizer: Any, epochs: int, input_shape: Sequence[int],
                 optimizer: Optional[Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]] = None,
                 metric: Union[str, Callable[[torch.nn.Module, Iterable], float]] = "accuracy",
                 eval_every: int = 1, keep_models: bool = True, width_lr: Optional[float] = None,
                 progress: bool = False) -> Callable[[torch.nn.Module], List[FrontPoint]]:
    """The learned-precision training for :func:`refine`: ``refiner(hmodel)`` trains a model of H
    layers (:func:`heteroq.hgq.from_quantized`) for ``epochs`` passes over ``train_data`` with
    ``loss_fn(output, y) + regularizer.penalty(hmodel, step)`` (a
    :class:`heteroq.regularizers.EBOPsRegularizer`; ``step`` counts batches), and every
    ``eval_every`` epochs converts it (:func:`heteroq.hgq.convert`) and records a
    :class:`FrontPoint`: the metric on ``val_data`` (as :func:`make_trainer`) and the converted
    model's EBOPs from the cost model (``heteroq.cost.bops``, per sample, ``input_shape``).

    ``width_lr``: the bit widths (the parameters of the model's
    :class:`heteroq.hgq.HQuantizer` s) get their own Adam at this learning rate, the other
    parameters ``optimizer``; None: ``optimizer`` trains them all. Adam moves a width by about
    its learning rate per step whatever the gradient, so a short refinement at a weight-sized
    learning rate (1e-3) can barely change a width; a larger ``width_lr`` (0.02-0.1) lets it.

    ``regularizer`` is one regularizer, which every model starts from as given (a controller's
    beta does not carry over from one model to the next), or a callable ``regularizer(hmodel)``
    returning the one for that model, e.g. a budget of half its starting EBOPs::

        lambda m: EBOPsRegularizer.controller(0.5 * float(total_ebops(m)), beta0=1e-6)
    """
    from . import hgq
    if optimizer is None:
        optimizer = lambda params: torch.optim.Adam(params, lr=1e-3)  # noqa: E731
    if int(epochs) < 1 or int(eval_every) < 1:
        raise ValueError(f"autoq.make_refiner: epochs and eval_every must be >= 1, got {epochs}, {eval_every}")

    def is_regularizer(r: Any) -> bool:
        return hasattr(r, "penalty") and hasattr(r, "beta")

    if is_regularizer(regularizer):
        given = regularizer
        initial = given.state_dict() if hasattr(given, "state_dict") else None

        def make_regularizer(hmodel: torch.nn.Module) -> Any:
            if initial is not None:
                given.load_state_dict(dict(initial))
            return given
    elif callable(regularizer):
        def make_regularizer(hmodel: torch.nn.Module) -> Any:
            r = regularizer(hmodel)
            if not is_regularizer(r):
                raise ValueError(f"autoq.make_refiner: regularizer(hmodel) must return a regularizer with "
                                 f"penalty(model, step) and beta(step), got {r!r}")
            return r
    else:
        raise ValueError(f"autoq.make_refiner: regularizer must have penalty(model, step) and beta(step) "
                         f"(heteroq.regularizers.EBOPsRegularizer), or be a callable returning one for "
                         f"a model, got {regularizer!r}")
    if width_lr is not None and not float(width_lr) > 0:
        raise ValueError(f"autoq.make_refiner: width_lr must be > 0 (or None), got {width_lr!r}")
    evaluate = _evaluator(val_data, metric, "autoq.make_refiner")

    def refiner(hmodel: torch.nn.Module) -> List[FrontPoint]:
        regularizer = make_regularizer(hmodel)
        if width_lr is None:
            opts = [optimizer(hmodel.parameters())]
        else:
            widths = {id(p): p for m in hmodel.modules() if isinstance(m, hgq.HQuantizer)
                      for p in m.parameters()}
            others = [p for p in hmodel.parameters() if id(p) not in widths]
            opts = [optimizer(others)] if others else []
            if widths:
                opts.append(torch.optim.Adam(list(widths.values()), lr=float(width_lr)))
        points: List[FrontPoint] = []
        step = 0
        for epoch in _tqdm(range(1, int(epochs) + 1), desc="refine epochs", leave=False, disable=not progress):
            hmodel.train()
            for x, y in train_data:
                for opt in opts:
                    opt.zero_grad()
                loss = loss_fn(hmodel(x), y) + regularizer.penalty(hmodel, step)
                loss.backward()
                for opt in opts:
                    opt.step()
                step += 1
            if epoch % int(eval_every) == 0 or epoch == int(epochs):
                hmodel.eval()
                fixed = hgq.convert(hmodel).eval()
                points.append(FrontPoint("refine", -1, epoch, evaluate(fixed), _ebops_of(fixed, input_shape),
                                         float(regularizer.beta(max(step - 1, 0))),
                                         fixed if keep_models else None))
        return points

    return refiner


def _evaluator(val_data: Iterable, metric: Union[str, Callable], who: str) -> Callable[[torch.nn.Module], float]:
    if not (metric == "accuracy" or callable(metric)):
        raise ValueError(f"{who}: metric must be 'accuracy' or a callable, got {metric!r}")

    def evaluate(model: torch.nn.Module) -> float:
        if callable(metric):
            return float(metric(model, val_data))
        model.eval()
        right = total = 0
        with torch.no_grad():
            for x, y in val_data:
                right += int((model(x).argmax(dim=-1) == y).sum())
                total += int(y.numel())
        if total == 0:
            raise ValueError(f"{who}: val_data is empty")
        return right / total

    return evaluate


class Refinement:
    """What :func:`refine` returns: every :class:`FrontPoint` of both stages and their fronts."""

    def __init__(self, points: List[FrontPoint]):
        self.points = points

    @staticmethod
    def _front(points: Sequence[FrontPoint]) -> List[FrontPoint]:
        idx = _C._autoq_pareto_front([p.metric for p in points], [p.ebops for p in points])
        return [points[i] for i in idx]

    def pareto_front(self) -> List[FrontPoint]:
        """The points of both stages no other dominates in (metric up, EBOPs down), by EBOPs."""
        return self._front(self.points)

    def stage_front(self, stage: str) -> List[FrontPoint]:
        """The front of one stage's points (``"autoq"`` or ``"refine"``)."""
        if stage not in ("autoq", "refine"):
            raise ValueError(f"Refinement.stage_front: stage must be 'autoq' or 'refine', got {stage!r}")
        return self._front([p for p in self.points if p.stage == stage])

    def to_csv(self, path: Optional[PathLike] = None) -> str:
        """The points as CSV (stage, trial, epoch, metric, ebops, beta, on_front)."""
        front = {id(p) for p in self.pareto_front()}
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["stage", "trial", "epoch", "metric", "ebops", "beta", "on_front"])
        for p in self.points:
            w.writerow([p.stage, p.trial, p.epoch, repr(p.metric), repr(p.ebops), repr(p.beta), int(id(p) in front)])
        text = out.getvalue()
        if path is not None:
            _write_atomic(path, text)
        return text


def _write_atomic(path: PathLike, text: str) -> None:
    path = os.fspath(path)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def refine(search: "AutoQ", refiner: Callable[[torch.nn.Module], List[FrontPoint]], *,
           trials: Union[str, Sequence[int]] = "pareto", input_shape: Optional[Sequence[int]] = None,
           default_input_bits: float = 8.0) -> Refinement:
    """The pipeline of issue 9: AutoQ chooses the structure and starting precisions, learned
    precision refines them. For each chosen trial of a fitted ``search`` (``"pareto"``: its Pareto
    front, ``"best"``, or trial numbers; their trained models must be kept, ``AutoQ(...,
    keep_models="pareto")``), the trained model becomes H layers (:func:`heteroq.hgq.
    from_quantized`) and ``refiner`` (:func:`make_refiner`) trains it. Returns a
    :class:`Refinement` with the AutoQ trials (metric as trained, EBOPs from ``heteroq.cost.bops``)
    and every refinement checkpoint, so both stages' Pareto fronts and the combined one."""
    from . import hgq
    if not isinstance(search, AutoQ):
        raise ValueError(f"autoq.refine: search must be an autoq.AutoQ, got {type(search).__name__}")
    shape = list(search.input_shape if input_shape is None else input_shape)
    if not shape:
        raise ValueError("autoq.refine: the input shape is unknown; pass input_shape= (or give AutoQ one)")
    if trials == "pareto":
        chosen = [t.number for t in search.pareto_front()]
    elif trials == "best":
        chosen = [search._need_best().number]
    elif isinstance(trials, str):
        raise ValueError(f"autoq.refine: trials must be 'pareto', 'best' or trial numbers, got {trials!r}")
    else:
        chosen = [int(n) for n in trials]
    if not chosen:
        raise ValueError("autoq.refine: no trial to refine (fit the search first)")
    by_number = {t.number: t for t in search.trials}
    points: List[FrontPoint] = []
    for number in chosen:
        if number not in by_number or by_number[number].status != "complete":
            raise ValueError(f"autoq.refine: trial {number} is not a complete trial of the study")
        model = search.trained_model(number)
        t = by_number[number]
        points.append(FrontPoint("autoq", number, 0, float(t.metric), _ebops_of(model.eval(), shape), 0.0, model))
        start = hgq.from_quantized(copy.deepcopy(model), default_input_bits=default_input_bits)
        for p in refiner(start):
            p.trial = number
            points.append(p)
    return Refinement(points)
