# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""heteroq.deploy: activations the engine runs as integer step tables (quantized_tanh,
quantized_sigmoid, quantized_hswish, quantized_ulaw, quantized_po2, quantized_relu_po2,
quantized_relu with use_sigmoid or relu_upper_bound), exhaustively over their integer input
domain, and after dense layers."""
import numpy as np
import pytest
import torch

import heteroq
from heteroq import deploy
from heteroq import nn as hnn

TABLE_ACTIVATIONS = [
    "quantized_tanh(4)",
    "quantized_tanh(6,symmetric=True)",
    "quantized_tanh(5,use_real_tanh=True)",
    "quantized_sigmoid(5)",
    "quantized_sigmoid(6,symmetric=True)",
    "quantized_sigmoid(4,use_real_sigmoid=True)",
    "quantized_hswish(6,2)",
    "quantized_hswish(8,3,symmetric=1)",
    "quantized_ulaw(8,0)",
    "quantized_ulaw(6,1,u=100.0)",
    "quantized_po2(4)",
    "quantized_po2(5,2)",
    "quantized_po2(4,quadratic_approximation=True)",
    "quantized_relu_po2(4)",
    "quantized_relu_po2(5,4,negative_slope=0.25)",
    "quantized_relu(6,2,use_sigmoid=1)",
    "quantized_relu(6,2,relu_upper_bound=2.5)",
]


def forward(model, x):
    with torch.no_grad():
        return model(x)


def assert_exact(engine, model, x):
    ref = forward(model, x)
    out = engine(x)
    assert out.shape == ref.shape
    bad = (out != ref).nonzero()
    assert bad.numel() == 0, f"{len(bad)} differences, first at {bad[0].tolist()}: " \
        f"input {x[bad[0][0]].tolist()}: {out[tuple(bad[0])].item()} vs {ref[tuple(bad[0])].item()}"


def every_code(bits, integer):
    """Every value of quantized_bits(bits, integer): the whole integer input domain."""
    frac = bits - 1 - integer
    return (torch.arange(-2 ** (bits - 1), 2 ** (bits - 1), dtype=torch.float64) * 2.0 ** -frac
            ).float().reshape(-1, 1)


@pytest.mark.parametrize("act", TABLE_ACTIVATIONS)
def test_exhaustive_over_the_integer_domain(act):
    """Every one of the 2^16 input codes (a full table: each integer evaluated)."""
    model = torch.nn.Sequential(hnn.QActivation("quantized_bits(16,7,alpha=1)"),
                                hnn.QActivation(act)).eval()
    engine = deploy.compile(model, input_shape=(1,))
    assert [s["kind"] for s in engine.stage_info()] == ["requantize"]
    assert_exact(engine, model, every_code(16, 7))


@pytest.mark.parametrize("act", ["quantized_tanh(6)", "quantized_sigmoid(8)", "quantized_ulaw(8,1)",
                                 "quantized_po2(6,4)", "quantized_relu_po2(5)"])
def test_exhaustive_over_a_bisected_domain(act):
    """2^23 input codes: the breaks are found by bisection (monotonic functions); every code."""
    model = torch.nn.Sequential(hnn.QActivation("quantized_bits(23,10,alpha=1)"),
                                hnn.QActivation(act)).eval()
    engine = deploy.compile(model, input_shape=(1,))
    assert_exact(engine, model, every_code(23, 10))


def test_non_monotonic_on_a_large_domain_is_refused():
    model = torch.nn.Sequential(hnn.QActivation("quantized_bits(24,10,alpha=1)"),
                                hnn.QActivation("quantized_hswish(6,2)")).eval()
    with pytest.raises(ValueError, match=r"layer `1` \(QActivation\): quantized_hswish.*not "
                                         r"monotonic.*16777217 integer values"):
        deploy.compile(model, input_shape=(1,))


def test_table_activation_as_input_quantizer_is_refused():
    model = torch.nn.Sequential(hnn.QActivation("quantized_tanh(4)"),
                                hnn.QDense(3, 2, kernel_quantizer="quantized_bits(4,0,alpha=1)")).eval()
    with pytest.raises(ValueError, match=r"layer `0` \(QActivation\): quantized_tanh.*input quantizer"):
        deploy.compile(model)


@pytest.mark.parametrize("act", TABLE_ACTIVATIONS)
def test_after_dense_layers(act):
    """After a dense layer with per-channel power-of-two scales (one table per accumulator frac),
    feeding the next layer (po2 codes: shifts). The engine's integers equal the exact (float64)
    value of the next layer on the activation's outputs; where the bounds allow (float32_exact),
    the float32 model too (quantized_ulaw's outputs carry 24 significant bits, and a relu_po2 with
    a negative slope spans 20 bits of exponents, so the float32 model rounds the next layer's sum
    there: the engine does not)."""
    torch.manual_seed(0)
    q6 = "quantized_bits(6,0,alpha=1)"
    head = torch.nn.Sequential(
        hnn.QActivation("quantized_bits(8,3,alpha=1)"),
        hnn.QDense(16, 32, kernel_quantizer="quantized_bits(6,0,alpha='auto_po2')", bias_quantizer=q6),
        hnn.QActivation(act)).eval()
    fc = hnn.QDense(32, 8, kernel_quantizer=q6, bias_quantizer=q6).eval()
    model = torch.nn.Sequential(*head, fc).eval()
    engine = deploy.compile(model)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2000, 16, generator=g) * 3
    a = forward(head, x).double()
    w = fc.kernel_quantizer(fc.weight).detach().double()
    exact = a @ w.t() + fc.bias_quantizer(fc.bias).detach().double()
    codes = engine.run_codes(x)
    np.testing.assert_array_equal(codes * np.exp2(-np.array(engine.output_frac, dtype=np.float64)),
                                  exact.numpy())
    if engine.float32_exact:
        assert_exact(engine, model, x)
    else:
        # only where a sum needs more than float32's 24 bits
        assert act.startswith(("quantized_ulaw", "quantized_relu_po2(5,4,negative")), act
        assert engine.stage_info()[-1]["max_abs"] >= 2 ** 24


def test_jet_model_with_tanh_trained():
    x, y = heteroq.datasets.make_surrogate_jets(1000, seed=0)
    x = torch.tensor((x - x.mean(0)) / x.std(0), dtype=torch.float32)
    y = torch.tensor(y)
    q = "quantized_bits(6,0,alpha=1)"
    layers = [hnn.QActivation("quantized_bits(8,3,alpha=1)")]
    sizes = [16, 64, 32, 32, 5]
    for i in range(4):
        layers.append(hnn.QDense(sizes[i], sizes[i + 1], kernel_quantizer=q, bias_quantizer=q))
        if i < 3:
            layers.append(hnn.QActivation("quantized_tanh(6)" if i % 2 == 0 else "quantized_po2(5,2)"))
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(30):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    engine = deploy.compile(model)
    assert engine.float32_exact
    assert_exact(engine, model, x)


def test_tables_survive_save_and_load(tmp_path):
    torch.manual_seed(2)
    model = torch.nn.Sequential(
        hnn.QActivation("quantized_bits(8,3,alpha=1)"),
        hnn.QDense(6, 5, kernel_quantizer="quantized_bits(6,0,alpha='auto_po2')"),
        hnn.QActivation("quantized_sigmoid(6)")).eval()
    engine = deploy.compile(model)
    engine.save(tmp_path / "t.engine")
    back = deploy.load(tmp_path / "t.engine")
    x = torch.randn(300, 6) * 4
    assert np.array_equal(back.run_codes(x), engine.run_codes(x))
    assert_exact(back, model, x)
