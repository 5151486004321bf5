# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""Bit-exact integer inference of a trained quantized model (docs/deploy_engine.md).

:func:`compile` turns an ``nn.Sequential`` of heteroq layers into an :class:`Engine` that computes
with integers only (the input's conversion by the model's first quantizer is the one float
operation) and whose output equals the model's eval-mode forward bit for bit wherever
``engine.float32_exact``. The arithmetic lives in C++ (``heteroq::deploy``); this module only walks
the model and converts arrays.

Example usage::

    model.eval()
    engine = heteroq.deploy.compile(model)        # model: QActivation, QDense, QActivation, ...
    y = engine(x)                                 # numpy in, numpy out; torch in, torch out
    engine.save("jet.engine")                     # loadable without LibTorch (heteroq_deploy)
    engine.write_header("jet_model.h", "jet")     # standalone C++ header
"""
import os
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch

from . import _C
from .quantizers import Quantizer, get_quantizer

__all__ = ["Engine", "compile", "load"]

PathLike = Union[str, "os.PathLike[str]"]


def _impl_of(q: Optional[Any], where: str):
    if q is None:
        return None
    if isinstance(q, str):
        q = get_quantizer(q)
    if not isinstance(q, Quantizer):
        raise TypeError(f"{where}: expected a heteroq quantizer or a spec string, got "
                        f"{type(q).__name__}")
    return q._impl


def _array(t: Optional[torch.Tensor]) -> Optional[np.ndarray]:
    if t is None:
        return None
    return t.detach().to("cpu", torch.float32).contiguous().numpy()


def _conv_padding(child: torch.nn.Module) -> Dict[str, Any]:
    """padding (before), padding_end (after) and padding_mode of a convolution; "same" pads
    dilation * (k - 1) in total, one more after than before when odd (PyTorch's rule)."""
    pad = child.padding
    if isinstance(pad, str):
        if pad == "valid":
            begin = end = [0] * len(child.kernel_size)
        else:  # "same"
            total = [int(d) * (int(k) - 1) for d, k in zip(child.dilation, child.kernel_size)]
            begin = [t // 2 for t in total]
            end = [t - b for t, b in zip(total, begin)]
    else:
        begin = end = [int(v) for v in pad]
    return {"padding": list(begin), "padding_end": list(end),
            "padding_mode": str(getattr(child, "padding_mode", "zeros"))}


def _gather(module: torch.nn.Module, prefix: str, out: List[Dict[str, Any]]) -> None:
    for name, child in module.named_children():
        path = f"{prefix}.{name}" if prefix else name
        cls = type(child).__name__
        if isinstance(child, torch.nn.Sequential) or cls in ("QSeparableConv1d", "QSeparableConv2d"):
            # a separable convolution: its depthwise then its pointwise convolution, chained
            _gather(child, path, out)
            continue
        d: Dict[str, Any] = {"name": path, "class_name": cls, "training": bool(child.training)}
        who = f"layer `{path}` ({cls})"
        if cls in ("QLinear", "QDense"):
            d["weight"] = _array(child.weight)
            d["bias"] = _array(child.bias)
            d["kernel_quantizer"] = _impl_of(child.kernel_quantizer, who)
            d["bias_quantizer"] = _impl_of(child.bias_quantizer, who)
        elif cls == "QLinearBatchNorm":
            with torch.no_grad():
                w, b = child.get_folded_weights()
            d["weight"] = _array(w)
            d["bias"] = _array(b)
            d["kernel_quantizer"] = _impl_of(child.kernel_quantizer, who)
            d["bias_quantizer"] = _impl_of(child.bias_quantizer, who)
        elif cls in ("QConv1d", "QConv2d", "QDepthwiseConv2d", "QConv2dBatchNorm",
                     "QConvTranspose2d"):
            if cls == "QConv2dBatchNorm":
                with torch.no_grad():
                    w, b = child.get_folded_weights()
            else:
                w, b = child.weight, child.bias
            d["weight"] = _array(w)
            d["bias"] = _array(b)
            d["kernel_quantizer"] = _impl_of(child.kernel_quantizer, who)
            d["bias_quantizer"] = _impl_of(child.bias_quantizer, who)
            d["stride"] = [int(v) for v in child.stride]
            d.update(_conv_padding(child))
            d["dilation"] = [int(v) for v in child.dilation]
            d["groups"] = int(child.groups)
            if cls == "QConvTranspose2d":
                d["transposed"] = True
                d["output_padding"] = [int(v) for v in child.output_padding]
        elif cls in ("QBatchNorm1d", "QBatchNorm2d"):
            # as _QBatchNorm.forward in eval mode
            if child.running_mean is None or child.running_var is None:
                raise ValueError(f"heteroq.deploy.compile: {who}: has no running statistics (eval "
                                 f"mode would normalise with batch statistics)")
            with torch.no_grad():
                gamma = child.weight
                if child.inverse_quantizer is not None:
                    inv = torch.ops.heteroq._bn_inverse(child.running_var, gamma, child.eps)
                    d["kernel_quantizer"] = _impl_of(child.inverse_quantizer, who)
                else:
                    var = child.running_var
                    if child.variance_quantizer is not None:
                        var = child.variance_quantizer(var)
                    if gamma is not None and child.gamma_quantizer is not None:
                        gamma = child.gamma_quantizer(gamma)
                    inv = torch.ops.heteroq._bn_inverse(var, gamma, child.eps)
            d["weight"] = _array(inv)
            d["mean"] = _array(child.running_mean)
            d["mean_quantizer"] = _impl_of(child.mean_quantizer, who)
            d["bias"] = _array(child.bias)
            d["bias_quantizer"] = _impl_of(child.beta_quantizer, who)
        elif cls == "QAvgPool2d":
            d["kernel_size"] = [int(v) for v in child.kernel_size]
            d["stride"] = [int(v) for v in child.stride]
            d["padding"] = [int(v) for v in child.padding]
            d["ceil_mode"] = bool(child.ceil_mode)
            d["count_include_pad"] = bool(child.count_include_pad)
            d["kernel_quantizer"] = _impl_of(child.average_quantizer, who)
            d["activation"] = _impl_of(child.activation, who)
        elif cls == "QGlobalAvgPool2d":
            d["keepdim"] = bool(child.keepdim)
            d["kernel_quantizer"] = _impl_of(child.average_quantizer, who)
            d["activation"] = _impl_of(child.activation, who)
        elif cls == "QActivation":
            d["activation"] = _impl_of(child.quantizer, who)
        elif cls in ("QSimpleRNN", "QLSTM", "QGRU"):
            params = dict(zip(child._flat_weights_names, child._flat_weights))
            directions = 2 if child.bidirectional else 1
            for key, pname in (("weights_ih", "weight_ih_l"), ("weights_hh", "weight_hh_l"),
                               ("biases_ih", "bias_ih_l"), ("biases_hh", "bias_hh_l")):
                d[key] = [_array(params.get(f"{pname}{k}{'_reverse' if r else ''}"))
                          for k in range(child.num_layers) for r in range(directions)]
            d["hidden_size"] = int(child.hidden_size)
            d["num_layers"] = int(child.num_layers)
            d["bidirectional"] = bool(child.bidirectional)
            d["batch_first"] = bool(child.batch_first)
            d["reset_after"] = bool(getattr(child, "reset_after", True))
            d["kernel_quantizer"] = _impl_of(child.kernel_quantizer, who)
            d["recurrent_quantizer"] = _impl_of(child.recurrent_quantizer, who)
            d["bias_quantizer"] = _impl_of(child.bias_quantizer, who)
            d["state_quantizer"] = _impl_of(child.state_quantizer, who)
            d["activation"] = _impl_of(child.activation, who)
            d["activation_name"] = child._activation_fn
            if cls != "QSimpleRNN":
                d["recurrent_activation"] = _impl_of(child.recurrent_activation, who)
                d["recurrent_activation_name"] = child._recurrent_activation_fn
        elif cls == "RecurrentOutput":
            d["return_sequences"] = bool(child.return_sequences)
        out.append(d)


class Engine:
    """A compiled model (C++ ``heteroq::deploy::Engine``): integer arithmetic, thread-safe.

    ``engine(x)`` takes a numpy array or a torch tensor of shape ``(N, input_size)`` or
    ``(input_size,)`` (any ``(N, ...)`` holding ``input_size`` values per sample when the model
    flattens its input or was compiled with ``input_shape``) and returns the output of the same
    kind (float32), shaped ``(N, *output_shape)``. Inputs are converted to float32 first (the
    model's dtype). :meth:`run_codes` gives the integers, flat per sample.
    """

    def __init__(self, impl: "_C.DeployEngine") -> None:
        self._impl = impl
        # models compiled with an input shape take (N, *input_shape)
        self._conv = any(s["kind"] in ("conv2d", "recurrent") for s in impl.stage_info())

    @property
    def input_size(self) -> int:
        return self._impl.input_size

    @property
    def output_size(self) -> int:
        return self._impl.output_size

    @property
    def output_shape(self) -> List[int]:
        """The per-sample shape of the output ((5,), or (C, H, W) after a convolution)."""
        return list(self._impl.output_shape)

    @property
    def output_frac(self) -> List[int]:
        """The frac of each output: ``value = code * 2**-frac``."""
        return list(self._impl.output_frac)

    @property
    def float32_exact(self) -> bool:
        """Whether every accumulator's bound is below 2^24, so the float32 model computes exactly
        what the engine computes (bit-for-bit agreement)."""
        return self._impl.float32_exact

    def stage_info(self) -> List[Dict[str, Any]]:
        """Per stage: kind, name, max_abs (the integer bound), bits, storage, float32_exact,
        cost_bits (the cost model's accumulator width, 0: unknown), kernel ("dense"/"sparse" for
        dense stages) and nonzero_weights."""
        return self._impl.stage_info()

    def with_options(self, sparse_min_zero_fraction: Optional[float] = None,
                     gemm_min_batch: Optional[int] = None) -> "Engine":
        """The same program run with other kernels (never other results):
        ``sparse_min_zero_fraction`` (a dense layer at least this fraction zero runs a sparse
        kernel; > 1 disables it; default 0.97) and ``gemm_min_batch`` (batches from this size run
        the dense layers as a blocked integer GEMM; 0 disables it)."""
        s = (self._impl.sparse_min_zero_fraction if sparse_min_zero_fraction is None
             else float(sparse_min_zero_fraction))
        g = self._impl.gemm_min_batch if gemm_min_batch is None else int(gemm_min_batch)
        return Engine(self._impl.with_options(s, g))

    def _rows(self, x: Any):
        is_torch = isinstance(x, torch.Tensor)
        a = x.detach().to("cpu").numpy() if is_torch else np.asarray(x)
        if a.dtype.kind not in "fiub":
            raise ValueError(f"heteroq.deploy.Engine: expected a numeric array, got dtype {a.dtype}")
        n = self.input_size
        if a.ndim == 1 and a.shape[0] == n:
            return np.ascontiguousarray(a.reshape(1, n), dtype=np.float32), is_torch, True
        if a.ndim == 2 and a.shape[1] == n:
            return np.ascontiguousarray(a, dtype=np.float32), is_torch, False
        if ((self._impl.flatten_input or self._conv) and a.ndim >= 2
                and int(np.prod(a.shape[1:])) == n):
            return np.ascontiguousarray(a.reshape(a.shape[0], n), dtype=np.float32), is_torch, False
        raise ValueError(f"heteroq.deploy.Engine: expected an input of shape (N, {n}) or ({n},), "
                         f"got {tuple(a.shape)}")

    def __call__(self, x: Any) -> Any:
        rows, is_torch, single = self._rows(x)
        y = self._impl.run(rows).reshape([rows.shape[0]] + self.output_shape)
        if single:
            y = y[0]
        return torch.from_numpy(y) if is_torch else y

    def run_codes(self, x: Any) -> np.ndarray:
        """The output integers (int64, ``(N, output_size)``): ``value = code * 2**-output_frac``."""
        rows, _, single = self._rows(x)
        y = self._impl.run_codes(rows)
        return y[0] if single else y

    def save(self, path: PathLike) -> None:
        """Writes the engine to a safetensors file (the quantized-weights container)."""
        self._impl.save(os.fspath(path))

    def generate_header(self, name: str) -> str:
        """A standalone C++ header (``<stdint.h>`` only, no allocation) computing the same
        outputs: ``name::infer(const float*, int64_t*)`` and ``name::infer_float``."""
        return self._impl.generate_header(name)

    def write_header(self, path: PathLike, name: str) -> None:
        text = self.generate_header(name)
        with open(os.fspath(path), "w", encoding="utf-8") as f:
            f.write(text)

    def __repr__(self) -> str:
        return (f"heteroq.deploy.Engine(input_size={self.input_size}, "
                f"output_size={self.output_size}, stages={len(self.stage_info())}, "
                f"float32_exact={self.float32_exact})")


def compile(model: torch.nn.Module, input_quantizer: Union[Quantizer, str, None] = None,  # noqa: A001
            input_shape: Optional[Sequence[int]] = None) -> Engine:
    """Compiles an ``nn.Sequential`` of heteroq layers (QLinear/QDense, QLinearBatchNorm,
    QConv1d, QConv2d (any padding, padding="same", every padding_mode), QDepthwiseConv2d,
    QSeparableConv1d/2d, QConvTranspose2d, QConv2dBatchNorm, QAvgPool2d, QGlobalAvgPool2d,
    QBatchNorm1d/2d, QSimpleRNN/QLSTM/QGRU (``batch_first=True``, with a state quantizer) each
    followed by :class:`heteroq.nn.RecurrentOutput`, QActivation with any deterministic
    quantizer; Flatten, Dropout, Identity pass through; nested Sequentials are walked; layers may
    follow each other without an activation) into an :class:`Engine`. The model must be in
    eval mode and start with a QActivation (the input quantizer), unless ``input_quantizer`` is
    given: the engine then computes ``model(input_quantizer(x))``. Models with convolutions or
    recurrent layers need ``input_shape``, the per-sample shape: ``(C, H, W)``, ``(C, L)`` or
    ``(steps, features)``.

    Raises ValueError naming the layer when the engine cannot reproduce it exactly (float layers
    or activations, non-power-of-two scales such as ``alpha="auto"``, stochastic quantizers, ...).
    """
    if not isinstance(model, torch.nn.Sequential):
        raise TypeError(f"heteroq.deploy.compile: expected a torch.nn.Sequential, got "
                        f"{type(model).__name__}")
    layers: List[Dict[str, Any]] = []
    _gather(model, "", layers)
    shape = [] if input_shape is None else [int(d) for d in input_shape]
    iq = _impl_of(input_quantizer, "input_quantizer")
    _attach_cost_types(model, layers, shape, iq)
    return Engine(_C.deploy_compile(layers, iq, shape))


_MAC_LAYERS = ("QLinear", "QDense", "QLinearBatchNorm", "QConv1d", "QConv2d", "QDepthwiseConv2d",
               "QConv2dBatchNorm", "QConvTranspose2d")


def _attach_cost_types(model: torch.nn.Module, layers: List[Dict[str, Any]], shape: List[int],
                       input_quantizer: Any) -> None:
    """Each dense/convolution layer's accumulator type from the cost model (QTools's data types,
    :func:`heteroq.cost.data_types`), as ``cost_bits``/``cost_frac`` (the engine reports them
    beside its own bound in ``stage_info``). A model the cost model cannot describe compiles
    without them (cost_bits 0), as in C++."""
    from .cost import data_types  # noqa: PLC0415  (cost imports much; only compile needs it)
    if not shape:
        first = next((d for d in layers if d["class_name"] in _MAC_LAYERS[:3]), None)
        if first is None or first.get("weight") is None:
            return
        shape = [int(first["weight"].shape[1])]
    options = {}
    if input_quantizer is not None:
        options["source_quantizer"] = input_quantizer.to_string()
    try:
        with torch.no_grad():
            dt = data_types(model, [1] + shape, **options)
    except (ValueError, TypeError, RuntimeError):
        return
    by_name = {t.name: t for t in dt.layers}
    for d in layers:
        if d["class_name"] not in _MAC_LAYERS:
            continue
        name, part = d["name"], None
        for suffix in (".depthwise", ".pointwise"):
            base = name[: -len(suffix)]
            if name.endswith(suffix) and base in by_name and len(by_name[base].stages) == 2:
                name, part = base, suffix[1:]
        t = by_name.get(name)
        if t is None or not t.stages:
            continue
        stage = next((s for s in t.stages if part is not None and s.part == part), t.stages[-1])
        acc = stage.accumulator
        if acc.floating_point or acc.po2:
            continue
        d["cost_bits"] = int(acc.bits)
        d["cost_frac"] = int(acc.bits - acc.int_bits - (1 if acc.signed else 0))


def load(path: PathLike) -> Engine:
    """Reads a file :meth:`Engine.save` wrote (ValueError if it is truncated or corrupted)."""
    return Engine(_C.DeployEngine.load(os.fspath(path)))
