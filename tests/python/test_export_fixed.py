# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""Export of FixedQuantizer (heteroq.hgq, issue 9): per-element weight widths as QONNX Quant nodes
with per-element scales 2^-f and the largest bit width (the graph computes the model exactly),
activations with uniform widths or per-channel fractional bits, refusals of what Quant cannot
express, and hls4ml precisions from the largest widths (HGQ's proxy-model rule)."""
import math
import re

import numpy as np
import onnx
import pytest
import torch

import heteroq
from heteroq import export as E
from heteroq import nn as qnn

import qonnx_reference as R

hgq = heteroq.hgq
if not hasattr(hgq, "FixedQuantizer"):  # pragma: no cover  (issue 9's quantizer not built in)
    pytest.skip("heteroq.hgq.FixedQuantizer is not available", allow_module_level=True)
Fixed = hgq.FixedQuantizer

IN_Q = "quantized_bits(8,3,alpha=1)"


def _inits(proto):
    return {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}


def _attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _per_element_dense(seed=0):
    g = torch.Generator().manual_seed(seed)
    k = torch.randint(0, 2, (6, 10), generator=g).float()
    i = torch.randint(-1, 3, (6, 10), generator=g).float()
    f = torch.randint(0, 6, (6, 10), generator=g).float()
    f[0, 0], i[0, 0], k[0, 0] = -3.0, 0.0, 1.0  # one element of width <= 0: always 0
    layer = qnn.QDense(10, 6, kernel_quantizer=Fixed.from_widths(k, i, f),
                       bias_quantizer=Fixed.from_widths(torch.ones(6), torch.full((6,), 2.0),
                                                        torch.arange(6).float()))
    with torch.no_grad():
        layer.weight.mul_(3)
        layer.bias.uniform_(-3, 3)
    return layer, (k, i, f)


def test_per_element_weight_widths_exact(tmp_path):
    layer, (k, i, f) = _per_element_dense()
    model = torch.nn.Sequential(layer, qnn.QActivation("quantized_bits(12,4,alpha=1)")).eval()
    x = torch.randn(64, 10) * 4
    E.to_qonnx(model, x, tmp_path / "f.onnx", input_quantizer=IN_Q)
    proto = E.load_qonnx(tmp_path / "f.onnx")
    with torch.no_grad():
        y = model(heteroq.get_quantizer(IN_Q)(x)).numpy()
    assert np.array_equal(R.run_model(proto, x.numpy()), y)
    inits = _inits(proto)
    node = next(n for n in proto.graph.node if n.name == "0_weight_quant")
    w, scale, zero, bits = (inits[name] for name in node.input)
    # Per-element scales 2^-f in MatMul's (in, out) layout; one bit width: the largest magnitude
    # i + f plus the sign bit.
    assert scale.shape == (10, 6) and np.array_equal(scale, (2.0 ** -f).numpy().T)
    live = (k + i + f) > 0
    assert int(bits) == int((i + f)[live].max()) + 1
    assert _attrs(node)["signed"] == 1 and _attrs(node)["narrow"] == 0
    assert w[0, 0] == 0.0  # the element of width <= 0
    # The Quant node leaves the stored values unchanged (QONNX semantics).
    out = R.ReferenceInterpreter(proto).execute(node, [inits[n] for n in node.input])
    assert np.array_equal(out.astype(np.float32), w)
    assert np.array_equal(w, layer.quantized_weight().detach().numpy().T)


def test_uniform_fixed_exports_as_quantized_bits(tmp_path):
    """fixed(bits, integer) equals quantized_bits(bits, integer, alpha=1): the same Quant node."""
    nodes = {}
    for spec in ("fixed(6,2)", "quantized_bits(6,2,alpha=1)"):
        model = torch.nn.Sequential(qnn.QActivation(spec))
        proto = E.to_qonnx(model, torch.randn(2, 4), tmp_path / "u.onnx")
        inits = _inits(proto)
        node = proto.graph.node[0]
        nodes[spec] = (node.op_type, _attrs(node), float(inits[node.input[1]]),
                       int(inits[node.input[3]]))
    assert nodes["fixed(6,2)"] == nodes["quantized_bits(6,2,alpha=1)"]


def _activation_inputs():
    codes = torch.randint(-3000, 3000, (3000,)).float()
    ties = (torch.arange(-600, 600) + 0.5) / 64
    near = torch.cat([torch.nextafter(ties, torch.tensor(math.inf)),
                      torch.nextafter(ties, torch.tensor(-math.inf))])
    return torch.cat([codes / 256, ties, near, torch.randn(2000) * 6,
                      torch.tensor([0.0, -0.0, 100.0, -100.0])]).reshape(-1, 4)


@pytest.mark.parametrize("make", [
    lambda: Fixed(6, 2),
    lambda: Fixed(7, 3, round_mode="TRN"),
    lambda: Fixed(6, 2, overflow_mode="SAT_SYM"),
    lambda: Fixed(6, 2, keep_negative=False, round_mode="RND"),
    lambda: Fixed(5, 1, keep_negative=False),
    lambda: Fixed.from_widths(torch.ones(4), torch.tensor([0.0, 1.0, 2.0, 3.0]),
                              torch.tensor([5.0, 4.0, 3.0, 2.0])),  # per channel: one width
])
def test_fixed_activations_exact(make, tmp_path):
    q = make()
    model = torch.nn.Sequential(qnn.QActivation(q)).eval()
    x = _activation_inputs()
    E.to_qonnx(model, x, tmp_path / "a.onnx")
    proto = E.load_qonnx(tmp_path / "a.onnx")
    with torch.no_grad():
        y = model(x).numpy()
    got = R.run_model(proto, x.numpy())
    assert np.array_equal(got, y), (x[torch.from_numpy(got != y)][:5], got[got != y][:5])
    assert len(np.unique(y)) > 8


def _per_element_activation(round_mode="RND_CONV", overflow_mode="SAT", signed=True):
    k = torch.tensor([1.0, 0.0, 1.0, 1.0]) if signed else torch.zeros(4)
    return Fixed.from_widths(k, torch.tensor([0.0, 1.0, 2.0, -2.0]),
                             torch.tensor([3.0, 5.0, 2.0, 1.0]), round_mode, overflow_mode)


@pytest.mark.parametrize("make", [
    lambda: _per_element_activation(),
    lambda: _per_element_activation(round_mode="TRN", overflow_mode="SAT_SYM"),
    lambda: _per_element_activation(round_mode="RND", signed=False),
])
def test_per_element_activation_widths_exact(make, tmp_path):
    """Widths and signs differing per element (HGQ's input quantizers; the last element has width
    0): Max/Min with each element's range, then one Quant with per-element scales."""
    model = torch.nn.Sequential(qnn.QActivation(make())).eval()
    x = _activation_inputs()
    proto = E.to_qonnx(model, x, tmp_path / "pe.onnx")
    assert [n.op_type for n in proto.graph.node] == ["Max", "Min", "Quant"]
    with torch.no_grad():
        y = model(x).numpy()
    got = R.run_model(E.load_qonnx(tmp_path / "pe.onnx"), x.numpy())
    assert np.array_equal(got, y)
    assert not np.any(y[:, 3])  # width k + i + f = 0: always 0


def test_hgq_model_converted_and_exported_exactly(tmp_path):
    """HGQ's flow: H layers trained (ranges tracked), converted to Q layers with FixedQuantizers
    (per-element input widths), exported; the graph computes the converted model exactly."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(hgq.HDense(16, 8), hgq.HActivation((8,), relu=True),
                                hgq.HDense(8, 5))
    with torch.no_grad():
        for m in model.modules():
            for name, p in m.named_parameters(recurse=False):
                if "frac" in name:  # vary the learned widths per element
                    p.add_(torch.randint(-1, 3, p.shape).float())
    model(torch.randn(256, 16) * 2)
    converted = hgq.convert(model.eval()).eval()
    x = torch.randn(128, 16) * 2
    proto = E.to_qonnx(converted, x, tmp_path / "hgq.onnx")
    with torch.no_grad():
        y = converted(x).numpy()
    assert np.array_equal(R.run_model(E.load_qonnx(tmp_path / "hgq.onnx"), x.numpy()), y)
    assert len(np.unique(y)) > 8
    assert sum(n.op_type == "Quant" for n in proto.graph.node) >= 5


@pytest.mark.parametrize("make, match", [
    (lambda: Fixed(6, 2, overflow_mode="WRAP"), "WRAP"),
    (lambda: Fixed(6, 2, round_mode="RND"), "RND"),
    (lambda: _per_element_activation(round_mode="RND"), "RND"),
    (lambda: _per_element_activation(overflow_mode="WRAP"), "WRAP"),
])
def test_fixed_activations_refused_by_name(make, match, tmp_path):
    model = torch.nn.Sequential(qnn.QDense(4, 4, kernel_quantizer="quantized_bits(6,0,alpha=1)"),
                                qnn.QActivation(make()))
    with pytest.raises(ValueError, match=rf"layer '1' \(QActivation\).*{match}"):
        E.to_qonnx(model, torch.randn(2, 4), tmp_path / "r.onnx")
    assert not (tmp_path / "r.onnx").exists()


def _parse(t):
    m = re.fullmatch(r"(u?)fixed<(\d+),(-?\d+)(?:,[A-Z_]+)*>", t)
    assert m, t
    return m.group(1) == "", int(m.group(2)), int(m.group(3))


def test_hls4ml_precisions_from_the_largest_widths():
    layer, (k, i, f) = _per_element_dense(1)
    model = torch.nn.Sequential(qnn.QActivation(IN_Q), layer,
                                qnn.QActivation(Fixed(8, 3, round_mode="RND",
                                                      overflow_mode="SAT_SYM"))).eval()
    config = E.hls4ml_config(model, (1, 10), IN_Q)
    p = config["LayerName"]["1"]["Precision"]
    live = (k + i + f) > 0
    kk, ii, ff = (int(t[live].max()) for t in (k, i, f))
    assert p["weight"] == f"fixed<{kk + ii + ff},{kk + ii}>"
    assert p["bias"] == "fixed<8,3>"  # k=1, i=2, f up to 5
    signed, width, integer = _parse(p["accum"])
    assert width - integer == max(4 + ff, 5)  # the input's 4 fractional bits + the weights'
    x = heteroq.get_quantizer(IN_Q)(torch.randn(4096, 10) * 8)
    with torch.no_grad():
        h = layer(x).double() * 2.0 ** (width - integer)
    assert torch.equal(h, torch.round(h))
    assert h.abs().max() <= 2.0 ** (width - 1)
    assert config["LayerName"]["2"]["Precision"] == {"result": "fixed<8,4,RND,SAT_SYM>"}
    assert E.hls4ml_type("fixed(6,2)") == E.hls4ml_type("quantized_bits(6,2,alpha=1)")
    assert E.hls4ml_type("fixed(6,2,keep_negative=0,round_mode=\"TRN\")", style="ap") == \
        "ap_ufixed<6,2,AP_TRN,AP_SAT>"
    per_element = Fixed.from_widths(torch.ones(10), torch.arange(10).float() % 3,
                                    torch.full((10,), 2.0))
    bad = torch.nn.Sequential(qnn.QActivation(per_element))
    with pytest.raises(ValueError, match=r"layer '0'.*one type"):
        E.hls4ml_config(bad, (1, 10), IN_Q)
