# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""A small reference interpreter of QONNX graphs (test helper; onnxruntime and qonnx are not
available on the project machines).

Each node is computed in float64 NumPy and its result rounded to the graph's element type
(float32): a correctly rounded float32 result for the elementwise operators, and for
MatMul/Conv/pooling the exact float64 sum rounded once (heteroq's float32 sums equal it whenever
they are exact in float32).

``Quant`` and ``BipolarQuant`` follow the QONNX definitions (qonnx
``src/qonnx/custom_op/general/quant.py``, ``bipolar_quant.py``; export-and-peers.md §1):
``y = X / scale + zeropt``; bipolar when ``bitwidth == 1`` and ``signed``; else clamp to
``[min_int, max_int]`` of (signed, narrow, bitwidth) and round with ``rounding_mode``;
``Y = (y - zeropt) * scale``.
"""
from typing import Dict, List

import numpy as np
import onnx
from onnx import numpy_helper

QONNX_DOMAINS = ("qonnx.custom_op.general", "onnx.brevitas")


def _attrs(node) -> Dict[str, object]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _round(y: np.ndarray, mode: str) -> np.ndarray:
    mode = mode.upper()
    if mode == "ROUND":  # half to even
        return np.round(y)
    if mode == "CEIL":
        return np.ceil(y)
    if mode == "FLOOR":
        return np.floor(y)
    if mode == "UP":  # away from zero
        return np.sign(y) * np.ceil(np.abs(y))
    if mode == "DOWN":  # toward zero
        return np.trunc(y)
    if mode == "HALF_UP":
        return np.sign(y) * np.floor(np.abs(y) + 0.5)
    if mode == "HALF_DOWN":
        return np.sign(y) * np.ceil(np.abs(y) - 0.5)
    raise ValueError(f"unknown rounding_mode {mode!r}")


def quant(x, scale, zeropt, bitwidth, signed: int, narrow: int, rounding_mode: str) -> np.ndarray:
    """QONNX ``Quant`` (``IntQuant``) in float64."""
    x, scale, zeropt = (np.asarray(v, np.float64) for v in (x, scale, zeropt))
    bits = float(np.asarray(bitwidth))
    assert bits > 0 and bits == int(bits), f"bitwidth {bits} must be a positive integer"
    y = x / scale + zeropt
    if bits == 1 and signed:
        y = np.where(y >= 0, 1.0, -1.0)
    else:
        if signed:
            lo, hi = -(2.0 ** (bits - 1)) + narrow, 2.0 ** (bits - 1) - 1
        else:
            lo, hi = 0.0, 2.0 ** bits - 1 - narrow
        y = _round(np.clip(y, lo, hi), rounding_mode)
    return (y - zeropt) * scale


def bipolar_quant(x, scale) -> np.ndarray:
    """QONNX ``BipolarQuant``: ``(X >= 0 ? +1 : -1) * scale``."""
    return np.where(np.asarray(x, np.float64) >= 0, 1.0, -1.0) * np.asarray(scale, np.float64)


def _pad(x: np.ndarray, pads: List[int], value: float = 0.0) -> np.ndarray:
    nd = len(pads) // 2
    width = [(0, 0), (0, 0)] + [(pads[i], pads[i + nd]) for i in range(nd)]
    return np.pad(x, width, constant_values=value)


def _out_size(n: int, k: int, s: int, d: int) -> int:
    return (n - d * (k - 1) - 1) // s + 1


def _windows(x: np.ndarray, kernel, strides, dilations, out):
    """Yields (kernel index, strided view of x) for every kernel offset."""
    for idx in np.ndindex(*kernel):
        sl = [slice(None), slice(None)]
        for i, k in enumerate(idx):
            start = k * dilations[i]
            sl.append(slice(start, start + strides[i] * (out[i] - 1) + 1, strides[i]))
        yield idx, x[tuple(sl)]


def conv(x, w, b, kernel_shape, strides, pads, dilations, group) -> np.ndarray:
    nd = w.ndim - 2
    strides = strides or [1] * nd
    dilations = dilations or [1] * nd
    pads = pads or [0] * (2 * nd)
    xp = _pad(x, pads)
    out = [_out_size(xp.shape[2 + i], w.shape[2 + i], strides[i], dilations[i])
           for i in range(nd)]
    n, c = x.shape[:2]
    m = w.shape[0]
    cg, mg = c // group, m // group
    y = np.zeros([n, m] + out)
    for g in range(group):
        xg = xp[:, g * cg:(g + 1) * cg]
        wg = w[g * mg:(g + 1) * mg]
        for idx, view in _windows(xg, w.shape[2:], strides, dilations, out):
            y[:, g * mg:(g + 1) * mg] += np.einsum("nc...,mc->nm...", view,
                                                   wg[(slice(None), slice(None)) + idx])
    if b is not None:
        y += b.reshape([1, -1] + [1] * nd)
    return y


def conv_transpose(x, w, b, strides, pads, dilations, group, output_padding) -> np.ndarray:
    nd = w.ndim - 2
    strides = strides or [1] * nd
    dilations = dilations or [1] * nd
    pads = pads or [0] * (2 * nd)
    output_padding = output_padding or [0] * nd
    n, c = x.shape[:2]
    cg, mg = c // group, w.shape[1]
    sizes = x.shape[2:]
    full = [(sizes[i] - 1) * strides[i] + dilations[i] * (w.shape[2 + i] - 1) + 1
            + output_padding[i] for i in range(nd)]
    y = np.zeros([n, mg * group] + full)
    for g in range(group):
        xg = x[:, g * cg:(g + 1) * cg]
        wg = w[g * cg:(g + 1) * cg]
        for idx in np.ndindex(*w.shape[2:]):
            sl = [slice(None), slice(g * mg, (g + 1) * mg)]
            for i, k in enumerate(idx):
                start = k * dilations[i]
                sl.append(slice(start, start + strides[i] * (sizes[i] - 1) + 1, strides[i]))
            y[tuple(sl)] += np.einsum("nc...,cm->nm...", xg,
                                      wg[(slice(None), slice(None)) + idx])
    crop = tuple([slice(None), slice(None)] +
                 [slice(pads[i], full[i] - pads[i + nd]) for i in range(nd)])
    y = y[crop]
    if b is not None:
        y = y + b.reshape([1, -1] + [1] * nd)
    return y


def _pool(x, kernel, strides, pads, dilations, ceil_mode, mode, count_include_pad=0):
    nd = len(kernel)
    strides = strides or [1] * nd
    dilations = dilations or [1] * nd
    pads = pads or [0] * (2 * nd)
    sizes = x.shape[2:]
    out = []
    for i in range(nd):
        span = sizes[i] + pads[i] + pads[i + nd] - dilations[i] * (kernel[i] - 1) - 1
        o = (-(-span // strides[i]) if ceil_mode else span // strides[i]) + 1
        if ceil_mode and (o - 1) * strides[i] >= sizes[i] + pads[i]:
            o -= 1  # the last window must start inside the input or its left padding
        out.append(o)
    # Pad enough on the right for ceil_mode windows; track which cells are real / padding.
    extra = [max(0, (out[i] - 1) * strides[i] + dilations[i] * (kernel[i] - 1) + 1
                 - (sizes[i] + pads[i] + pads[i + nd])) for i in range(nd)]
    full_pads = list(pads[:nd]) + [pads[i + nd] + extra[i] for i in range(nd)]
    fill = -np.inf if mode == "max" else 0.0
    xp = _pad(x, full_pads, fill)
    inside = _pad(np.ones((1, 1) + tuple(sizes)), full_pads, 0.0)  # real input cells
    in_pad = _pad(np.ones((1, 1) + tuple(sizes)),
                  list(pads[:nd]) + list(pads[nd:]), 1.0)  # input or declared padding
    in_pad = _pad(in_pad, [0] * nd + extra, 0.0)
    if mode == "max":
        y = np.full(x.shape[:2] + tuple(out), -np.inf)
        for _, view in _windows(xp, kernel, strides, dilations, out):
            y = np.maximum(y, view)
        return y
    total = np.zeros(x.shape[:2] + tuple(out))
    count = np.zeros((1, 1) + tuple(out))
    counter = inside if not count_include_pad else in_pad
    for (_, view), (_, cells) in zip(_windows(xp, kernel, strides, dilations, out),
                                     _windows(counter, kernel, strides, dilations, out)):
        total += view
        count += cells
    return total / count


class ReferenceInterpreter:
    """Runs an ``onnx.ModelProto`` on NumPy inputs: ``run({input name: array}) -> [outputs]``."""

    def __init__(self, model: onnx.ModelProto):
        self.model = model
        self.values: Dict[str, np.ndarray] = {
            t.name: numpy_helper.to_array(t) for t in model.graph.initializer}

    def run(self, feeds: Dict[str, np.ndarray]) -> List[np.ndarray]:
        env = dict(self.values)
        for name, value in feeds.items():
            env[name] = np.asarray(value, np.float32)
        for node in self.model.graph.node:
            inputs = [env[i] if i else None for i in node.input]
            result = self.execute(node, inputs)
            if result.dtype.kind == "f":
                result = result.astype(np.float32)  # the graph's tensors are float32
            env[node.output[0]] = result
        return [env[o.name] for o in self.model.graph.output]

    def execute(self, node, inputs) -> np.ndarray:
        a = _attrs(node)
        op = node.op_type
        f64 = [None if v is None else (np.asarray(v, np.float64)
                                       if np.asarray(v).dtype.kind == "f" else np.asarray(v))
               for v in inputs]
        if node.domain in QONNX_DOMAINS:
            if op in ("Quant", "IntQuant"):
                for key in ("signed", "narrow", "rounding_mode"):
                    assert key in a, f"Quant node {node.name} lacks the attribute {key!r}"
                return quant(*f64, int(a["signed"]), int(a["narrow"]),
                             _text(a["rounding_mode"]))
            if op == "BipolarQuant":
                return bipolar_quant(*f64)
            raise NotImplementedError(f"QONNX op {op}")
        assert node.domain in ("", "ai.onnx"), f"unknown domain {node.domain!r}"
        if op == "MatMul":
            return np.matmul(f64[0], f64[1])
        if op == "Gemm":
            x, w = f64[0], f64[1]
            x = x.T if a.get("transA", 0) else x
            w = w.T if a.get("transB", 0) else w
            y = a.get("alpha", 1.0) * (x @ w)
            return y + a.get("beta", 1.0) * f64[2] if len(f64) > 2 and f64[2] is not None else y
        if op in ("Add", "Sub", "Mul", "Div"):
            fn = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[op]
            return fn(f64[0], f64[1])
        if op in ("Max", "Min"):  # opset 13: variadic, numpy broadcasting
            fn = np.maximum if op == "Max" else np.minimum
            out = f64[0]
            for v in f64[1:]:
                out = fn(out, v)
            return out
        if op == "Relu":
            return np.maximum(f64[0], 0.0)
        if op == "LeakyRelu":
            alpha = np.float64(np.float32(a.get("alpha", 0.01)))
            return np.where(f64[0] >= 0, f64[0], f64[0] * alpha)
        if op == "Clip":
            lo = f64[1] if len(f64) > 1 and f64[1] is not None else -np.inf
            hi = f64[2] if len(f64) > 2 and f64[2] is not None else np.inf
            return np.minimum(np.maximum(f64[0], lo), hi)
        if op == "Identity":
            return f64[0]
        if op == "Flatten":
            axis = a.get("axis", 1)
            shape = f64[0].shape
            return f64[0].reshape(int(np.prod(shape[:axis])), -1)
        if op == "Reshape":
            shape = [f64[0].shape[i] if s == 0 else int(s) for i, s in enumerate(f64[1])]
            return f64[0].reshape(shape)
        if op == "Conv":
            w = f64[1]
            return conv(f64[0], w, f64[2] if len(f64) > 2 else None,
                        a.get("kernel_shape"), a.get("strides"), a.get("pads"),
                        a.get("dilations"), a.get("group", 1))
        if op == "ConvTranspose":
            return conv_transpose(f64[0], f64[1], f64[2] if len(f64) > 2 else None,
                                  a.get("strides"), a.get("pads"), a.get("dilations"),
                                  a.get("group", 1), a.get("output_padding"))
        if op in ("MaxPool", "AveragePool"):
            return _pool(f64[0], a["kernel_shape"], a.get("strides"), a.get("pads"),
                         a.get("dilations"), a.get("ceil_mode", 0),
                         "max" if op == "MaxPool" else "avg", a.get("count_include_pad", 0))
        if op == "ReduceSum":  # opset 13: axes as an input
            axes = tuple(int(i) for i in f64[1])
            return np.sum(f64[0], axis=axes, keepdims=bool(a.get("keepdims", 1)))
        if op == "ReduceMean":  # opset 13: axes as an attribute
            return np.mean(f64[0], axis=tuple(a["axes"]), keepdims=bool(a.get("keepdims", 1)))
        if op == "GlobalAveragePool":
            return np.mean(f64[0], axis=tuple(range(2, f64[0].ndim)), keepdims=True)
        raise NotImplementedError(f"ONNX op {op}")


def run_model(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """The single output of a single-input graph on ``x``."""
    interpreter = ReferenceInterpreter(model)
    return interpreter.run({model.graph.input[0].name: x})[0]
