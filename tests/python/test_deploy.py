# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""heteroq.deploy: the integer engine equals the QAT model's eval forward bit for bit."""
import os
import pathlib
import shutil
import struct
import subprocess

import numpy as np
import pytest
import torch

import heteroq
from heteroq import deploy
from heteroq import nn as hnn

Q6 = "quantized_bits(6,0,alpha=1)"


def jet_model(kernel=Q6, bias=Q6, act="quantized_relu(6,0)", inp="quantized_bits(8,3,alpha=1)"):
    """The hls4ml jet-tagging MLP: Dense 16-64-32-32-5."""
    layers = [hnn.QActivation(inp)]
    sizes = [16, 64, 32, 32, 5]
    for i in range(4):
        layers.append(hnn.QDense(sizes[i], sizes[i + 1], kernel_quantizer=kernel,
                                 bias_quantizer=bias))
        if i < 3:
            layers.append(hnn.QActivation(act))
    return torch.nn.Sequential(*layers).eval()


def jets(n=2000, seed=0):
    x, y = heteroq.datasets.make_surrogate_jets(n, seed=seed)
    x = (x - x.mean(0)) / x.std(0)
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y)


def train(model, x, y, steps=60):
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


def forward(model, x):
    with torch.no_grad():
        return model(x)


def assert_exact(engine, model, x):
    ref = forward(model, x)
    out = engine(x)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    bad = (out != ref).nonzero()
    assert bad.numel() == 0, f"{len(bad)} differences, first at {bad[0].tolist()}: " \
        f"{out[tuple(bad[0])].item()} vs {ref[tuple(bad[0])].item()}"


def grid_inputs(n, features, scale=4.0, seed=0):
    """Random inputs plus exact ties of the input grids (k + 1/2) * 2^-f, where rounding matters."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g) * scale
    f = torch.randint(0, 7, (n // 2, features), generator=g).float()
    k = torch.randint(-40, 40, (n // 2, features), generator=g).float()
    x[: n // 2] = (k + 0.5) * torch.pow(2.0, -f)
    return x


# ------------------------------------------------------------------------------------------------
# Agreement


def test_jet_model_trained_on_surrogate_jets_is_exact():
    x, y = jets()
    model = train(jet_model(), x, y)
    engine = deploy.compile(model)
    assert engine.float32_exact
    assert engine.input_size == 16 and engine.output_size == 5
    assert_exact(engine, model, x)
    assert_exact(engine, model, grid_inputs(512, 16))
    # numpy in, numpy out; one sample
    out = engine(x.numpy())
    assert isinstance(out, np.ndarray) and np.array_equal(out, forward(model, x).numpy())
    assert np.array_equal(engine(x[3].numpy()), forward(model, x[3:4])[0].numpy())
    # the integer outputs and their fracs give the same values
    codes = engine.run_codes(x)
    assert codes.dtype == np.int64
    np.testing.assert_array_equal(codes * np.exp2(-np.array(engine.output_frac, dtype=np.float64)),
                                  forward(model, x).numpy())


def test_jet_stage_info_narrow_types():
    engine = deploy.compile(jet_model())
    info = engine.stage_info()
    assert [s["kind"] for s in info] == ["dense", "requantize"] * 3 + ["dense"]
    for s in info:
        assert s["float32_exact"]
        assert s["max_abs"] < 2 ** 24
        assert s["storage"] == ("int32" if s["kind"] == "dense" else "int16")
        assert 2 ** (s["bits"] - 1) > s["max_abs"] >= 2 ** (s["bits"] - 2)


WEIGHT_QUANTIZERS = [
    "quantized_bits(6,0,alpha=1)",
    "quantized_bits(4,1,alpha=1)",
    "quantized_bits(8,2,symmetric=1,alpha=1)",
    "quantized_bits(6,0,alpha='auto_po2')",
    "quantized_bits(4,0,alpha=0.5)",
    "quantized_bits(1,0,alpha=1)",
    "quantized_po2(4)",
    "quantized_po2(5,1)",
    "binary(alpha=1)",
    "binary(alpha=0.25)",
    "ternary(alpha=1)",
    "ternary(alpha=2.0)",
]

ACTIVATIONS = [
    "quantized_relu(6,0)",
    "quantized_relu(4,2)",
    "quantized_relu(8,1,negative_slope=0.25)",
    "quantized_relu(5,0,enable_fast_inference=True)",
    "quantized_bits(6,2,alpha=1)",
    "quantized_bits(4,0,symmetric=1,alpha=1)",
    "quantized_bits(8,3,keep_negative=0,alpha=1)",
    "quantized_bits(1,0,alpha=1)",
    "binary()",
    "binary(use_01=True)",
    "ternary()",
    "ternary(threshold=0.5)",
]


@pytest.mark.parametrize("wq", WEIGHT_QUANTIZERS)
def test_every_weight_quantizer_is_exact(wq):
    torch.manual_seed(1)
    model = jet_model(kernel=wq, bias="quantized_bits(8,3,alpha=1)")
    engine = deploy.compile(model)
    assert engine.float32_exact
    assert_exact(engine, model, grid_inputs(400, 16))


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_every_activation_is_exact(act):
    torch.manual_seed(2)
    model = jet_model(act=act, inp=act)
    engine = deploy.compile(model)
    assert_exact(engine, model, grid_inputs(400, 16))


@pytest.mark.parametrize("seed", range(6))
def test_random_models_and_inputs(seed):
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    depth = int(rng.integers(1, 4))
    sizes = [int(s) for s in rng.integers(1, 40, depth + 1)]
    layers = [hnn.QActivation(str(rng.choice(ACTIVATIONS)))]
    for i in range(depth):
        layers.append(hnn.QDense(sizes[i], sizes[i + 1], bias=bool(rng.integers(0, 2)),
                                 kernel_quantizer=str(rng.choice(WEIGHT_QUANTIZERS)),
                                 bias_quantizer=str(rng.choice(WEIGHT_QUANTIZERS[:5]))))
        if i + 1 < depth or rng.integers(0, 2):
            layers.append(hnn.QActivation(str(rng.choice(ACTIVATIONS))))
        if rng.integers(0, 3) == 0:
            layers.append(torch.nn.Dropout(0.5))
    model = torch.nn.Sequential(*layers).eval()
    engine = deploy.compile(model)
    assert engine.float32_exact
    assert_exact(engine, model, grid_inputs(300, sizes[0], scale=float(rng.uniform(0.1, 8))))


def test_folded_batchnorm_and_float_bias():
    torch.manual_seed(3)
    bn = hnn.QLinearBatchNorm(16, 24, kernel_quantizer="quantized_bits(8,2,alpha=1)",
                              bias_quantizer="quantized_bits(8,3,alpha=1)")
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.gamma.uniform_(0.5, 1.5)
        bn.beta.uniform_(-0.5, 0.5)
    fc = hnn.QDense(24, 3, kernel_quantizer="quantized_bits(4,0,alpha=1)")  # float bias
    with torch.no_grad():
        fc.bias.copy_(torch.tensor([0.375, -1.25, 0.0]))
    model = torch.nn.Sequential(hnn.QActivation("quantized_bits(6,2,alpha=1)"), bn,
                                hnn.QActivation("quantized_relu(6,1)"), torch.nn.Identity(),
                                fc).eval()
    engine = deploy.compile(model)
    assert_exact(engine, model, grid_inputs(500, 16))


def test_nested_sequential_flatten_and_input_quantizer():
    torch.manual_seed(4)
    inner = torch.nn.Sequential(hnn.QDense(12, 8, kernel_quantizer=Q6, bias_quantizer=Q6),
                                hnn.QActivation("quantized_relu(4,0)"))
    model = torch.nn.Sequential(torch.nn.Flatten(), inner,
                                hnn.QDense(8, 2, kernel_quantizer=Q6)).eval()
    with pytest.raises(ValueError, match=r"layer `1.0` \(QLinear\).*input is float"):
        deploy.compile(model)
    engine = deploy.compile(model, input_quantizer="quantized_bits(8,3,alpha=1)")
    x = grid_inputs(200, 12).reshape(200, 3, 4)
    q = heteroq.quantized_bits(8, 3, alpha=1)
    assert torch.equal(engine(x), forward(model, q(x)))


def test_fashion_mnist_mlp():
    images, labels = heteroq.datasets.load_fashion_mnist("test", limit=1000, as_tensors=True)
    torch.manual_seed(5)
    model = torch.nn.Sequential(
        torch.nn.Flatten(), hnn.QActivation("quantized_bits(8,0,keep_negative=0,alpha=1)"),
        hnn.QDense(784, 64, kernel_quantizer="quantized_bits(4,0,alpha=1)",
                   bias_quantizer="quantized_bits(8,3,alpha=1)"),
        hnn.QActivation("quantized_relu(6,2)"),
        hnn.QDense(64, 10, kernel_quantizer="quantized_bits(4,0,alpha=1)",
                   bias_quantizer="quantized_bits(8,3,alpha=1)"))
    model = train(model, images.float(), labels, steps=30)
    engine = deploy.compile(model)
    assert engine.float32_exact
    assert_exact(engine, model, images.float().reshape(-1, 1, 28, 28))


# ------------------------------------------------------------------------------------------------
# The float32 bound: exact below 2^24, the engine computes the exact value above it.


def test_float32_bound_both_sides():
    # Below: a model whose accumulator bound is just under 2^24, driven to its extremes.
    fc = hnn.QDense(8, 1, bias=False, kernel_quantizer="quantized_bits(16,0,alpha=1)")
    with torch.no_grad():
        fc.weight.fill_(-1.0)  # code -32768 = -2^15
    inp = "quantized_bits(10,9,alpha=1)"  # codes [-512, 511], frac 0
    model = torch.nn.Sequential(hnn.QActivation(inp), fc).eval()
    engine = deploy.compile(model)
    info = engine.stage_info()[0]
    assert info["max_abs"] == 8 * 512 * 32768 == 2 ** 27 and not info["float32_exact"]
    fc8 = hnn.QDense(8, 1, bias=False, kernel_quantizer="quantized_bits(12,0,alpha=1)")
    with torch.no_grad():
        fc8.weight.fill_(-1.0)  # code -2048
    below = torch.nn.Sequential(hnn.QActivation(inp), fc8).eval()
    eb = deploy.compile(below)
    assert eb.stage_info()[0]["max_abs"] == 8 * 512 * 2048 == 2 ** 23 and eb.float32_exact
    extremes = torch.tensor([[-512.0] * 8, [511.0] * 8, [-512.0, 511.0] * 4])
    assert_exact(eb, below, torch.cat([extremes, grid_inputs(300, 8, scale=300)]))

    # Above: random odd weights make sums that float32 rounds; the engine's integers equal the
    # exact (float64) sum, and the float32 model is within its summation error bound.
    torch.manual_seed(6)
    big = hnn.QDense(64, 4, bias=False, kernel_quantizer="quantized_bits(16,0,alpha=1)")
    model = torch.nn.Sequential(hnn.QActivation("quantized_bits(16,15,alpha=1)"), big).eval()
    e = deploy.compile(model)
    assert not e.float32_exact
    x = torch.randint(-30000, 30000, (200, 64)).float()
    codes = e.run_codes(x)
    w = big.kernel_quantizer(big.weight).detach().double()
    exact = x.double() @ w.t()
    np.testing.assert_array_equal(codes * 2.0 ** -np.array(e.output_frac), exact.numpy())
    f32 = forward(model, x).double()
    assert (f32 != exact).any(), "float32 rounding never showed: the test does not probe the bound"
    bound = 64 * 2.0 ** -24 * (x.double().abs() @ w.abs().t())
    assert ((f32 - exact).abs() <= bound).all()


# ------------------------------------------------------------------------------------------------
# Convolutions


def conv_model():
    torch.manual_seed(7)
    bn = hnn.QConv2dBatchNorm(8, 6, 3, padding=1, kernel_quantizer="quantized_bits(8,2,alpha=1)",
                              bias_quantizer="quantized_bits(8,3,alpha=1)")
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.gamma.uniform_(0.5, 1.5)
    return torch.nn.Sequential(
        hnn.QActivation("quantized_bits(8,2,alpha=1)"),
        hnn.QConv2d(2, 4, 3, padding=1, kernel_quantizer="quantized_bits(6,0,alpha='auto_po2')",
                    bias_quantizer=Q6),
        hnn.QActivation("quantized_relu(6,1)"),
        hnn.QDepthwiseConv2d(4, 3, depth_multiplier=2, stride=2, dilation=1,
                             depthwise_quantizer="ternary(alpha=1)", bias_quantizer=Q6),
        hnn.QActivation("quantized_bits(6,2,alpha=1)"),
        bn,
        hnn.QActivation("quantized_relu(4,1)"),
        torch.nn.Flatten(),
        hnn.QDense(6 * 5 * 5, 10, kernel_quantizer="quantized_po2(4)", bias_quantizer=Q6)).eval()


def test_conv2d_depthwise_folded_models_are_exact():
    model = conv_model()
    engine = deploy.compile(model, input_shape=(2, 12, 12))
    assert [s["kind"] for s in engine.stage_info()][:2] == ["conv2d", "requantize"]
    assert engine.float32_exact
    x = grid_inputs(64 * 288, 1).reshape(64, 2, 12, 12)
    assert_exact(engine, model, x)
    # a convolution as the last layer: the output keeps its (C, H, W) shape
    head = torch.nn.Sequential(*list(model)[:4]).eval()
    e2 = deploy.compile(head, input_shape=(2, 12, 12))
    assert e2.output_shape == [8, 5, 5]
    assert_exact(e2, head, x)


def test_conv1d_is_exact():
    torch.manual_seed(8)
    model = torch.nn.Sequential(
        hnn.QActivation("quantized_bits(6,2,alpha=1)"),
        hnn.QConv1d(3, 5, 4, stride=2, padding=1, dilation=2, kernel_quantizer=Q6,
                    bias_quantizer=Q6),
        hnn.QActivation("quantized_relu(6,0)"),
        hnn.QConv1d(5, 4, 3, groups=1, kernel_quantizer="binary(alpha=1)"),
        hnn.QActivation("ternary()"),
        torch.nn.Flatten(),
        hnn.QDense(4 * 6, 3, kernel_quantizer=Q6, bias_quantizer=Q6)).eval()
    engine = deploy.compile(model, input_shape=(3, 20))
    x = grid_inputs(100 * 60, 1).reshape(100, 3, 20)
    assert_exact(engine, model, x)
    with pytest.raises(ValueError, match=r"layer `1` \(QConv1d\).*\(C, L\) input"):
        deploy.compile(model, input_shape=(3, 4, 5))


@pytest.mark.parametrize("pool", [
    lambda: hnn.QAvgPool2d(3, average_quantizer="quantized_bits(8,0,alpha=1)",
                           activation="quantized_relu(6,2)"),
    lambda: hnn.QAvgPool2d(2, stride=1, average_quantizer="quantized_po2(4)"),
    lambda: hnn.QAvgPool2d((2, 4)),
    lambda: hnn.QGlobalAvgPool2d(average_quantizer="quantized_bits(8,0,alpha=1)",
                                 activation="quantized_bits(6,2,alpha=1)"),
    lambda: hnn.QGlobalAvgPool2d(average_quantizer="quantized_bits(8,0,alpha=1)", keepdim=True),
])
def test_average_pooling_is_exact(pool):
    torch.manual_seed(10)
    p = pool()
    layers = [hnn.QActivation("quantized_bits(6,2,alpha=1)"),
              hnn.QConv2d(2, 3, 3, kernel_quantizer=Q6, bias_quantizer=Q6),
              hnn.QActivation("quantized_relu(6,1)"), p]
    if not (isinstance(p, hnn.QAvgPool2d) and p.activation is not None) and not (
            isinstance(p, hnn.QGlobalAvgPool2d) and p.activation is not None):
        layers.append(hnn.QActivation("quantized_bits(8,3,alpha=1)"))
    model = torch.nn.Sequential(*layers).eval()
    engine = deploy.compile(model, input_shape=(2, 14, 14))
    x = grid_inputs(40 * 392, 1).reshape(40, 2, 14, 14)
    assert_exact(engine, model, x)


@pytest.mark.parametrize("pool,match", [
    (lambda: hnn.QAvgPool2d(3), "window area 9, which is not a power of two"),
    (lambda: hnn.QAvgPool2d(2, padding=1, count_include_pad=False, average_quantizer=Q6),
     "count_include_pad=False with padding"),
])
def test_average_pooling_refusals(pool, match):
    model = torch.nn.Sequential(hnn.QActivation("quantized_bits(6,2,alpha=1)"), pool()).eval()
    with pytest.raises(ValueError, match=r"layer `1` \(QAvgPool2d\).*" + match):
        deploy.compile(model, input_shape=(2, 8, 8))


def quantized_bn(cls, channels, **kw):
    bn = cls(channels, inverse_quantizer="quantized_po2(5)", mean_quantizer="quantized_bits(8,3,alpha=1)",
             beta_quantizer="quantized_bits(8,3,alpha=1)", **kw)
    with torch.no_grad():
        bn.running_mean.uniform_(-2, 2)
        bn.running_var.uniform_(0.2, 4)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
    return bn.eval()


def test_unfolded_batchnorm_is_exact(tmp_path):
    torch.manual_seed(11)
    dense = torch.nn.Sequential(
        hnn.QActivation("quantized_bits(6,2,alpha=1)"),
        hnn.QDense(16, 12, kernel_quantizer=Q6, bias_quantizer=Q6),
        hnn.QActivation("quantized_relu(6,1)"),
        quantized_bn(hnn.QBatchNorm1d, 12),
        hnn.QActivation("quantized_bits(6,2,alpha=1)"),
        hnn.QDense(12, 3, kernel_quantizer=Q6, bias_quantizer=Q6)).eval()
    engine = deploy.compile(dense)
    assert "affine" in [s["kind"] for s in engine.stage_info()] and engine.float32_exact
    assert_exact(engine, dense, grid_inputs(500, 16))
    conv = torch.nn.Sequential(
        hnn.QActivation("quantized_bits(6,2,alpha=1)"),
        hnn.QConv2d(2, 4, 3, kernel_quantizer=Q6, bias_quantizer=Q6),
        hnn.QActivation("quantized_relu(6,1)"),
        quantized_bn(hnn.QBatchNorm2d, 4),
        hnn.QActivation("quantized_relu(6,1)"),
        torch.nn.Flatten(),
        hnn.QDense(4 * 6 * 6, 3, kernel_quantizer=Q6, bias_quantizer=Q6)).eval()
    engine = deploy.compile(conv, input_shape=(2, 8, 8))
    assert engine.float32_exact
    x = grid_inputs(50 * 128, 1).reshape(50, 2, 8, 8)
    assert_exact(engine, conv, x)
    assert "w2[k / 36]" in engine.generate_header("bn")
    engine.save(tmp_path / "bn.engine")
    assert np.array_equal(deploy.load(tmp_path / "bn.engine").run_codes(x), engine.run_codes(x))


def test_unfolded_batchnorm_with_float_statistics_is_refused():
    torch.manual_seed(12)
    bn = hnn.QBatchNorm1d(4).eval()
    with torch.no_grad():
        bn.running_var.uniform_(0.2, 4)
    model = torch.nn.Sequential(hnn.QActivation("quantized_bits(6,2,alpha=1)"), bn).eval()
    with pytest.raises(ValueError, match=r"layer `1` \(QBatchNorm1d\).*quantize it"):
        deploy.compile(model, input_shape=(4,))


def test_fashion_mnist_cnn():
    images, labels = heteroq.datasets.load_fashion_mnist("test", limit=600, flatten=False,
                                                         as_tensors=True)
    x = images.float().reshape(-1, 1, 28, 28)
    torch.manual_seed(9)
    model = torch.nn.Sequential(
        hnn.QActivation("quantized_bits(8,0,keep_negative=0,alpha=1)"),
        hnn.QConv2d(1, 8, 3, stride=2, kernel_quantizer="quantized_bits(4,0,alpha=1)",
                    bias_quantizer="quantized_bits(8,3,alpha=1)"),
        hnn.QActivation("quantized_relu(6,2)"),
        hnn.QConv2d(8, 8, 3, stride=2, kernel_quantizer="quantized_bits(4,0,alpha='auto_po2')",
                    bias_quantizer="quantized_bits(8,3,alpha=1)"),
        hnn.QActivation("quantized_relu(6,2)"),
        torch.nn.Flatten(),
        hnn.QDense(8 * 6 * 6, 10, kernel_quantizer="quantized_bits(4,0,alpha=1)",
                   bias_quantizer="quantized_bits(8,3,alpha=1)"))
    model = train(model, x, labels, steps=15)
    engine = deploy.compile(model, input_shape=(1, 28, 28))
    assert engine.float32_exact
    assert_exact(engine, model, x)


def test_conv_engine_saves_and_generates_a_header(tmp_path, header_codes):
    model = conv_model()
    engine = deploy.compile(model, input_shape=(2, 12, 12))
    engine.save(tmp_path / "c.engine")
    loaded = deploy.load(tmp_path / "c.engine")
    x = grid_inputs(20 * 288, 1).reshape(20, 2, 12, 12)
    assert np.array_equal(loaded.run_codes(x), engine.run_codes(x))
    assert torch.equal(loaded(x), engine(x))
    assert np.array_equal(header_codes(engine, x.numpy(), "cnn"), engine.run_codes(x))


# ------------------------------------------------------------------------------------------------
# Bad models and inputs


@pytest.mark.parametrize("layers,match", [
    (lambda: [hnn.QActivation("quantized_bits(8,3,alpha=1)"), hnn.QDense(4, 4, kernel_quantizer=Q6),
              torch.nn.ReLU()], r"layer `2` \(ReLU\).*float activation"),
    (lambda: [hnn.QActivation("quantized_bits(8,3,alpha=1)"), torch.nn.Linear(4, 4)],
     r"layer `1` \(Linear\).*float layer"),
    (lambda: [hnn.QActivation("quantized_bits(8,3,alpha=1)"),
              hnn.QDense(4, 4, kernel_quantizer="quantized_bits(6,0,alpha='auto')")],
     r"layer `1` \(QLinear\).*not a power of two"),
    (lambda: [hnn.QActivation("quantized_bits(8,3,alpha='auto_po2')"), hnn.QDense(4, 4, kernel_quantizer=Q6)],
     r"layer `0` \(QActivation\).*alpha='auto_po2'"),
    (lambda: [hnn.QActivation("quantized_bits(8,3,alpha=1)"),
              hnn.QDense(4, 4, kernel_quantizer="stochastic_ternary(alpha='auto_po2')")],
     r"layer `1` \(QLinear\).*stochastic"),
    (lambda: [hnn.QActivation("quantized_bits(8,3,alpha=1,use_stochastic_rounding=True)"),
              hnn.QDense(4, 4, kernel_quantizer=Q6)], r"layer `0` \(QActivation\).*stochastic"),
    (lambda: [hnn.QActivation("quantized_bits(8,3,alpha=1)"), hnn.QDense(4, 4)],
     r"layer `1` \(QLinear\).*no kernel_quantizer"),
    (lambda: [hnn.QActivation("quantized_tanh(4)"), hnn.QDense(4, 4, kernel_quantizer=Q6)],
     r"layer `0` \(QActivation\): quantized_tanh.*as the model's input quantizer"),
    (lambda: [hnn.QActivation("quantized_relu_po2(4)"), hnn.QDense(4, 4, kernel_quantizer=Q6)],
     r"layer `0` \(QActivation\): quantized_relu_po2.*as the model's input quantizer"),
    (lambda: [hnn.QActivation("quantized_bits(8,3,alpha=1)"), hnn.QDense(4, 4, kernel_quantizer=Q6),
              hnn.QActivation("quantized_bits(4,0,alpha=0.3)")], r"layer `2`.*not a power of two"),
    (lambda: [hnn.QActivation("quantized_bits(8,3,alpha=1)"), hnn.QDense(4, 4, kernel_quantizer=Q6),
              hnn.QActivation("quantized_relu(4,0,use_sigmoid=1,use_stochastic_rounding=True)")],
     r"layer `2`.*stochastic"),
    (lambda: [hnn.QActivation("quantized_bits(8,3,alpha=1)"),
              hnn.QConv2d(1, 2, 3, kernel_quantizer=Q6)], r"layer `1` \(QConv2d\).*input_shape"),
    (lambda: [hnn.QActivation("quantized_bits(8,3,alpha=1)"), hnn.QDense(4, 4, kernel_quantizer=Q6),
              hnn.QActivation("quantized_relu(4,0)"), hnn.QConvTranspose2d(1, 2, 3, kernel_quantizer=Q6)],
     r"layer `3` \(QConvTranspose2d\).*expects a \(C, H, W\) input"),
    (lambda: [hnn.QActivation("quantized_bits(8,3,alpha=1)"), hnn.QDense(4, 4, kernel_quantizer=Q6),
              hnn.QActivation("quantized_relu(4,0)"), hnn.QSeparableConv2d(1, 2, 3)],
     r"layer `3.depthwise` \(QConv2d\).*expects a \(C, H, W\) input"),
    (lambda: [hnn.QActivation("quantized_bits(8,3,alpha=1)"),
              hnn.QGRU(4, 4, kernel_quantizer=Q6, recurrent_quantizer=Q6)],
     r"layer `1` \(QGRU\): a recurrent model needs its per-sample input shape"),
])
def test_unsupported_models_name_the_layer(layers, match):
    model = torch.nn.Sequential(*layers()).eval()
    with pytest.raises(ValueError, match=match):
        deploy.compile(model)


def test_training_mode_and_non_sequential_are_refused():
    model = jet_model().train()
    with pytest.raises(ValueError, match=r"layer `0` \(QActivation\).*training mode"):
        deploy.compile(model)
    with pytest.raises(TypeError, match="Sequential"):
        deploy.compile(hnn.QDense(4, 4, kernel_quantizer=Q6))


def test_bad_inputs():
    engine = deploy.compile(jet_model())
    x = torch.zeros(3, 16)
    x[2, 7] = float("nan")
    with pytest.raises(ValueError, match="NaN at sample 2, element 7"):
        engine(x)
    with pytest.raises(ValueError, match=r"shape \(N, 16\)"):
        engine(np.zeros((3, 15), dtype=np.float32))
    with pytest.raises(ValueError, match="not a C identifier"):
        engine.generate_header("9lives")
    # float64 and integer inputs are converted to float32, the model's dtype
    x64 = np.random.default_rng(0).normal(size=(10, 16))
    assert np.array_equal(engine(x64), engine(x64.astype(np.float32)))


# ------------------------------------------------------------------------------------------------
# Saving, loading without LibTorch, corrupted files


def test_save_load_roundtrip_and_torch_free_runner(tmp_path, build_dir):
    x, y = jets(500)
    model = train(jet_model(), x, y, steps=20)
    engine = deploy.compile(model)
    path = tmp_path / "jet.engine"
    engine.save(path)
    loaded = deploy.load(path)
    assert np.array_equal(loaded.run_codes(x), engine.run_codes(x))
    assert loaded.stage_info() == engine.stage_info()
    # a safetensors file: the header names the format, the weights are integer tensors
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    import json
    header = json.loads(raw[8:8 + n])
    assert header["__metadata__"]["format"] == "heteroq.deploy_engine"
    assert header["stages.0.weight"]["dtype"] == "I8"
    assert header["stages.0.weight"]["shape"] == [64, 16]

    runner = build_dir / "heteroq_deploy_run"
    if not runner.exists():
        pytest.skip(f"{runner} not built")
    libs = subprocess.run(["ldd", str(runner)], capture_output=True, text=True).stdout
    assert "torch" not in libs and "libheteroq.so" not in libs and "heteroq_deploy" in libs
    out = subprocess.run([str(runner), str(path)], input=x.numpy().tobytes(), capture_output=True,
                         check=True).stdout
    assert np.array_equal(np.frombuffer(out, dtype=np.int64).reshape(-1, 5), engine.run_codes(x))


def test_corrupted_files(tmp_path):
    engine = deploy.compile(jet_model())
    path = tmp_path / "m.engine"
    engine.save(path)
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    cases = {
        "empty": (b"", "truncated"),
        "short": (raw[:5], "truncated"),
        "header": (raw[: 8 + n // 2], "header length"),
        "data": (raw[:-3], "truncated"),
        "extra": (raw + b"\0" * 8, "after the last tensor"),
        "json": (raw[:8] + b"x" + raw[9:], "not JSON"),
    }
    for name, (data, match) in cases.items():
        bad = tmp_path / f"{name}.engine"
        bad.write_bytes(data)
        with pytest.raises(ValueError, match=match):
            deploy.load(bad)
    with pytest.raises(ValueError, match="cannot open"):
        deploy.load(tmp_path / "missing.engine")
    # the data section's SHA-256 (hashlib's) is in __metadata__; a flipped weight byte is refused
    import hashlib
    import json
    meta = json.loads(raw[8:8 + n])["__metadata__"]
    assert meta["data_sha256"] == hashlib.sha256(raw[8 + n:]).hexdigest()
    flipped = bytearray(raw)
    flipped[8 + n + 5] ^= 0x10
    (tmp_path / "flip.engine").write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match=r"flip\.engine: corrupted data section: its SHA-256 is "
                                         + hashlib.sha256(bytes(flipped[8 + n:])).hexdigest()):
        deploy.load(tmp_path / "flip.engine")
    # files from before the checksum (no data_sha256) still load
    old = json.loads(raw[8:8 + n])
    del old["__metadata__"]["data_sha256"]
    h = json.dumps(old).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    (tmp_path / "old.engine").write_bytes(struct.pack("<Q", len(h)) + h + raw[8 + n:])
    x = grid_inputs(50, 16)
    assert np.array_equal(deploy.load(tmp_path / "old.engine").run_codes(x), engine.run_codes(x))
    # a valid container whose program does not match its tensors, or breaks the engine's rules
    text = raw[8:8 + n].decode()
    for old, new, match in [('\\"in_features\\":16', '\\"in_features\\":17', "weight` has the wrong shape"),
                            ('\\"kind\\":\\"requantize\\"', '\\"kind\\":\\"requantise\\"',
                             "unknown stage kind `requantise`"),
                            ('\\"hi\\":63', '\\"hi\\":-1', "invalid program.*lo > hi")]:
        broken = text.replace(old, new, 1)
        assert broken != text, old
        (tmp_path / "prog.engine").write_bytes(raw[:8] + broken.encode() + raw[8 + n:])
        with pytest.raises(ValueError, match=match):
            deploy.load(tmp_path / "prog.engine")
    # the layers' quantized-weights file is a different format
    heteroq.save_quantized_weights(jet_model(), str(tmp_path / "w.safetensors"))
    with pytest.raises(ValueError, match="quantized-weights file"):
        deploy.load(tmp_path / "w.safetensors")


# ------------------------------------------------------------------------------------------------
# The standalone header


def test_generated_header_compiles_and_matches(tmp_path):
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    x, y = jets(300)
    model = train(jet_model(kernel="quantized_bits(6,0,alpha='auto_po2')"), x, y, steps=20)
    engine = deploy.compile(model)
    engine.write_header(tmp_path / "jet_model.h", "jet")
    text = (tmp_path / "jet_model.h").read_text()
    assert "#include <stdint.h>" in text and "malloc" not in text and "new " not in text
    assert text.count("#include") == 1
    main = tmp_path / "main.cpp"
    main.write_text("""
#include <cstdio>
#include "jet_model.h"
int main() {
  float in[jet::kInputSize];
  int64_t codes[jet::kOutputSize];
  float out[jet::kOutputSize];
  while (std::fread(in, sizeof(float), jet::kInputSize, stdin) == (size_t)jet::kInputSize) {
    if (jet::infer(in, codes) != 0 || jet::infer_float(in, out) != 0) return 3;
    std::fwrite(codes, sizeof(int64_t), jet::kOutputSize, stdout);
    std::fwrite(out, sizeof(float), jet::kOutputSize, stdout);
  }
  float nan_in[jet::kInputSize] = {0};
  nan_in[3] = 0.0f / 0.0f;
  return jet::infer(nan_in, codes) == -1 ? 0 : 4;
}
""")
    exe = tmp_path / "jet_main"
    subprocess.run([cxx, "-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(exe),
                    str(main)], check=True, cwd=tmp_path)
    inputs = torch.cat([x, grid_inputs(300, 16)])
    out = subprocess.run([str(exe)], input=inputs.numpy().tobytes(), capture_output=True,
                         check=True).stdout
    rows = np.frombuffer(out, dtype=np.uint8).reshape(len(inputs), 5 * 12)
    codes = rows[:, :40].copy().view(np.int64)
    values = rows[:, 40:].copy().view(np.float32)
    assert np.array_equal(codes, engine.run_codes(inputs))
    assert np.array_equal(values, forward(model, inputs).numpy())
