# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""Saving and loading quantized weights (QKeras's ``model_save_quantized_weights``).

The file is a safetensors file: integer codes plus scales for every quantized parameter, floats
for everything else, and a ``__metadata__`` header that documents each entry (format in
``docs/saving.md``). Everything is computed by the C++ core (``heteroq::nn``) through the
operators ``torch.ops.heteroq._save_quantized_weights`` / ``_load_quantized_weights``; this module
only walks the module tree.

Example usage::

    info = heteroq.serialize.save_quantized_weights(model, "model.safetensors")
    info["fc1"]["weight"]["values"]          # int8 codes
    info["fc1"]["weight"]["scale"]           # the scale; value = values * scale * 2**-frac
    heteroq.serialize.load_quantized_weights(model2, "model.safetensors")   # model2(x) == model(x)
"""
import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import torch
from torch import Tensor

from . import _C
from .quantizers import Quantizer, get_quantizer

__all__ = ["FORMAT", "FORMAT_VERSION", "IntegerTensor", "quantize_to_integer",
           "save_quantized_weights", "load_quantized_weights", "read_tensor_file",
           "write_tensor_file"]

FORMAT: str = _C.QUANTIZED_WEIGHTS_FORMAT
"""The ``__metadata__["format"]`` of the files :func:`save_quantized_weights` writes."""
FORMAT_VERSION: int = _C.QUANTIZED_WEIGHTS_VERSION

PathLike = Union[str, "os.PathLike[str]"]


@dataclass
class IntegerTensor:
    """A quantized tensor as integers (C++ ``heteroq::IntegerTensor``).

    ``encoding`` is ``"fixed_point"`` (``value = values * scale * 2**-frac``), ``"binary"``
    (values in {-1, +1}, or {0, 1} with ``use_01``; ``value = values * scale``), ``"ternary"``
    (values in {-1, 0, +1}) or ``"po2"`` (``values`` are exponents: ``value = sign * 2**values``,
    no scale). ``scale`` has the input's dtype and shape ``()`` or the input's rank with size 1 on
    the axes it does not vary along (``scale_axes`` lists the others).
    """

    encoding: str
    values: Tensor
    scale: Optional[Tensor]
    sign: Optional[Tensor]
    bits: int
    integer: int
    frac: int
    signed: bool
    min_code: int
    max_code: int
    scale_axes: List[int] = field(default_factory=list)

    def dequantize(self, dtype: torch.dtype = torch.float32) -> Tensor:
        """The real values, exactly as the quantizer outputs them (the scale's dtype; ``dtype``
        for po2)."""
        return torch.ops.heteroq._integer_dequantize(self.values, self.scale, self.sign,
                                                     self.encoding, self.frac, dtype)


def _spec(q: Union[Quantizer, str]) -> str:
    if isinstance(q, str):
        q = get_quantizer(q)
    if not isinstance(q, Quantizer):
        raise TypeError(f"expected a heteroq quantizer or a spec string, got {type(q).__name__}")
    return q.to_string()


def quantize_to_integer(quantizer: Union[Quantizer, str], x: Tensor) -> IntegerTensor:
    """The integer form of ``quantizer(x)`` (evaluated in inference mode): codes, scale and format,
    with ``result.dequantize()`` equal to ``quantizer(x)`` bit for bit.

    Args:
        quantizer: a heteroq quantizer or a QKeras spec string.
        x: a float32 or float64 tensor.

    Raises:
        ValueError: for quantizers without an integer form (``quantized_ulaw``, ``bernoulli``,
            ``qnoise_factor < 1``), NaN inputs, or outputs off the grid.

    Example usage::

        it = heteroq.serialize.quantize_to_integer("quantized_bits(4,0,alpha=1)",
                                                   torch.tensor([0.3, -1.2]))
        it.values, it.frac     # tensor([ 2, -8], dtype=torch.int8), 3
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"quantize_to_integer: `x` must be a tensor, got {type(x).__name__}")
    info_json, values, scale, sign = torch.ops.heteroq._quantize_to_integer(x, _spec(quantizer))
    info = json.loads(info_json)
    po2 = info["encoding"] == "po2"
    return IntegerTensor(info["encoding"], values, None if po2 else scale, sign if po2 else None,
                         info["bits"], info["integer"], info["frac"], info["signed"],
                         info["min_code"], info["max_code"], info["scale_axes"])


def _path(path: PathLike, who: str) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{who}: `path` must be a str or os.PathLike, got {type(path).__name__}")
    return os.fspath(path)


def _pruned(module: torch.nn.Module) -> Dict[str, Any]:
    """The tensors of ``module`` that ``torch.nn.utils.prune`` reparametrizes (``name_orig``
    parameter, ``name_mask`` buffer, a pruning forward pre-hook): {name: hook}."""
    out: Dict[str, Any] = {}
    for hook in module._forward_pre_hooks.values():
        name = getattr(hook, "_tensor_name", None)
        if (isinstance(hook, torch.nn.utils.prune.BasePruningMethod) and name is not None
                and name + "_orig" in module._parameters and name + "_mask" in module._buffers):
            out[name] = hook
    return out


def _gather(model: torch.nn.Module, who: str
            ) -> Tuple[List[Dict[str, Any]], List[Tensor], List[Tensor]]:
    """Every module's own parameters, persistent buffers, quantizer slots (spec strings) and
    batch-norm epsilon, in ``named_modules()`` order (C++: heteroq::nn::detail::LayerState).
    Returns (layers, values, targets): a pruned tensor (torch.nn.utils.prune) is listed under its
    own name with its effective value ``orig * mask`` (the one the forward pass uses), written
    back into ``name_orig``; its mask stays a buffer."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"{who}: `model` must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(model, torch.jit.ScriptModule):
        # A scripted model has lost its quantizer objects (and layer classes).
        raise TypeError(f"{who}: `model` is a TorchScript module; save or load the eager model "
                        f"(then script it)")
    layers: List[Dict[str, Any]] = []
    values: List[Tensor] = []
    targets: List[Tensor] = []
    for path, module in model.named_modules():
        if isinstance(module, Quantizer):
            continue
        pruned = _pruned(module)
        origs = {n + "_orig": n for n in pruned}
        params = []
        for n, p in module._parameters.items():
            if p is None:
                continue
            if n in origs:
                name = origs[n]
                params.append((name, p.detach() * module._buffers[name + "_mask"], p))
            else:
                params.append((n, p, p))
        skip = module._non_persistent_buffers_set
        buffers = [(n, b) for n, b in module._buffers.items() if b is not None and n not in skip]
        eps = getattr(module, "eps", None)
        layers.append({
            "path": path,
            "class": type(module).__name__,
            "parameters": [n for n, _, _ in params],
            "buffers": [n for n, _ in buffers],
            "quantizers": {n: c.to_string() for n, c in module.named_children()
                           if isinstance(c, Quantizer)},
            "eps": float(eps) if isinstance(eps, (int, float)) and not isinstance(eps, bool)
            else None,
        })
        values += [v for _, v, _ in params] + [t for _, t in buffers]
        targets += [t for _, _, t in params] + [t for _, t in buffers]
    return layers, values, targets


def save_quantized_weights(model: torch.nn.Module, path: PathLike) -> Dict[str, Dict[str, Any]]:
    """Writes ``model``'s weights to ``path``: quantized parameters as integers and scales, the
    others and all buffers as floats (QKeras's ``model_save_quantized_weights``; format in
    ``docs/saving.md``). The write is atomic: on error no file is left and an existing one is
    untouched. The model is not modified.

    Args:
        model: any module tree; heteroq layers' quantized parameters are stored as integers.
        path: the file to write (conventionally ``*.safetensors``).

    Returns:
        ``{layer path: {tensor name: info}}`` for every entry of the file, ``info`` holding the
        header's fields (``"encoding"``, ``"quantizer"``, ``"bits"``, ``"integer"``, ``"frac"``,
        ``"signed"``, ``"scale_axes"``, ``"role"``, ...) with ``"values"`` (the integer codes, po2
        exponents, or the float tensor), ``"scale"`` / ``"sign"`` as tensors.

    Raises:
        ValueError: a quantizer without an integer form (naming the layer and tensor), or a file
            that cannot be written.
    """
    path = _path(path, "save_quantized_weights")
    layers, tensors, _ = _gather(model, "save_quantized_weights")
    info_json, stored = torch.ops.heteroq._save_quantized_weights(
        path, json.dumps(layers), [t.detach() for t in tensors])
    info = json.loads(info_json)
    by_name = dict(zip(info["tensors"], stored))
    result: Dict[str, Dict[str, Any]] = {}
    for entry, meta in info["entries"].items():
        d = {k: v for k, v in meta.items() if k not in ("layer", "tensor")}
        if d["encoding"] == "float":
            d["values"] = by_name[entry]
        for key in ("values", "scale", "sign", "float"):
            if isinstance(d.get(key), str):
                d[key] = by_name[d[key]]
        result.setdefault(meta["layer"], {})[meta["tensor"]] = d
    return result


def load_quantized_weights(model: torch.nn.Module, path: PathLike) -> None:
    """Loads a file :func:`save_quantized_weights` wrote into ``model`` (same architecture and
    quantizers), so that its outputs equal the saved model's bit for bit: quantized parameters
    become their quantized values (QKeras's saved weights), the rest their stored values.

    Everything is checked first (format, entries, classes, shapes, dtypes, quantizer specs, code
    ranges); on any mismatch a ValueError names the file and the entry and the model is unchanged.

    Pruned models (``torch.nn.utils.prune``): a pruned tensor is saved under its own name with
    the value the forward pass uses (``orig * mask``, quantized as any other), its mask as the
    buffer ``name_mask``; such a file loads into a model pruned the same way (its masks are
    restored; ``prune.remove`` the model before saving for a file of plain layers).
    """
    path = _path(path, "load_quantized_weights")
    layers, tensors, targets = _gather(model, "load_quantized_weights")
    restored = torch.ops.heteroq._load_quantized_weights(path, json.dumps(layers),
                                                         [t.detach() for t in tensors])
    with torch.no_grad():
        for t, r in zip(targets, restored):
            t.copy_(r)
        # Pruned tensors: recompute `name = name_orig * name_mask` from the loaded values (the
        # pruning hook does it again before each forward pass).
        for module in model.modules():
            for name, hook in _pruned(module).items():
                setattr(module, name, hook.apply_mask(module))


def read_tensor_file(path: PathLike) -> Tuple[Dict[str, Tensor], Dict[str, str]]:
    """Reads and validates any safetensors file: ``({name: tensor}, metadata)`` in file order."""
    info_json, tensors = torch.ops.heteroq._read_tensor_file(_path(path, "read_tensor_file"))
    info = json.loads(info_json)
    return dict(zip(info["tensors"], tensors)), dict(info["metadata"])


def write_tensor_file(path: PathLike, tensors: Mapping[str, Tensor],
                      metadata: Optional[Mapping[str, str]] = None) -> None:
    """Writes ``tensors`` (and string ``metadata``) as a safetensors file, atomically."""
    if not isinstance(tensors, Mapping):
        raise TypeError(f"write_tensor_file: `tensors` must be a mapping, got "
                        f"{type(tensors).__name__}")
    torch.ops.heteroq._write_tensor_file(_path(path, "write_tensor_file"), list(tensors),
                                         list(tensors.values()), json.dumps(dict(metadata or {})))
