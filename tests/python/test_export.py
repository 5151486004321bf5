# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""QONNX export and hls4ml configuration (issue 8, items 2 and 3): exported graphs run by the
reference interpreter (tests/python/qonnx_reference.py) reproduce the models, the QONNX node
attributes, bad input, corrupted files, and hls4ml's precisions for the tutorial's jet model."""
import json
import math
import os
import pathlib

import numpy as np
import onnx
import pytest
import torch

import heteroq
from heteroq import export as E
from heteroq import nn as qnn

import qonnx_reference as R

Q6 = "quantized_bits(6,0,alpha=1)"
INPUT_Q = "quantized_bits(8,3,alpha=1)"
U = 2.0 ** -24  # float32's unit roundoff


def _set_bn(bn, channels):
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        gamma = bn.gamma if hasattr(bn, "gamma") else bn.weight
        beta = bn.beta if hasattr(bn, "beta") else bn.bias
        gamma.uniform_(0.5, 2)
        beta.uniform_(-1, 1)


def jet_model(output_quantizer="quantized_bits(8,3,alpha=1)"):
    """hls4ml-tutorial part 4's 6-bit model (benchmarks.md §2.1), logits quantized."""
    layers = [
        ("fc1", qnn.QDense(16, 64, kernel_quantizer=Q6, bias_quantizer=Q6)),
        ("relu1", qnn.QActivation("quantized_relu(6)")),
        ("fc2", qnn.QDense(64, 32, kernel_quantizer=Q6, bias_quantizer=Q6)),
        ("relu2", qnn.QActivation("quantized_relu(6)")),
        ("fc3", qnn.QDense(32, 32, kernel_quantizer=Q6, bias_quantizer=Q6)),
        ("relu3", qnn.QActivation("quantized_relu(6)")),
        ("output", qnn.QDense(32, 5, kernel_quantizer=Q6, bias_quantizer=Q6)),
    ]
    if output_quantizer is not None:
        layers.append(("output_quant", qnn.QActivation(output_quantizer)))
    from collections import OrderedDict
    return torch.nn.Sequential(OrderedDict(layers))


def cnn_model():
    bn = qnn.QBatchNorm2d(8, gamma_quantizer="quantized_relu_po2(6,2048)",
                          beta_quantizer="quantized_po2(5)", mean_quantizer="quantized_po2(5)",
                          variance_quantizer="quantized_relu_po2(6,quadratic_approximation=True)")
    _set_bn(bn, 8)
    fold = qnn.QConv2dBatchNorm(16, 16, 3, padding=1,
                                kernel_quantizer="quantized_bits(6,2,1,alpha='auto_po2')",
                                bias_quantizer="quantized_bits(8,3,alpha=1)")
    _set_bn(fold, 16)
    return torch.nn.Sequential(
        qnn.QConv2d(3, 8, 3, padding=1, kernel_quantizer=Q6, bias_quantizer=Q6),
        bn,
        qnn.QActivation("quantized_relu(6,2)"),
        qnn.QDepthwiseConv2d(8, 3, depth_multiplier=2, padding="same",
                             depthwise_quantizer="quantized_bits(4,0,1,alpha='auto_po2')",
                             bias_quantizer=Q6),
        qnn.QActivation("quantized_bits(8,3,alpha=1)"),
        torch.nn.MaxPool2d(2),
        fold,
        qnn.QActivation("quantized_relu(8,3)"),
        qnn.QAvgPool2d(2, average_quantizer="quantized_bits(8,0,alpha=1)",
                       activation="quantized_relu(8,3)"),
        qnn.QSeparableConv2d(16, 8, 3, padding=1, depthwise_quantizer=Q6,
                             pointwise_quantizer=Q6, bias_quantizer=Q6),
        qnn.QGlobalAvgPool2d(average_quantizer="quantized_bits(10,0,alpha=1)",
                             activation="quantized_bits(10,4,alpha=1)"),
        torch.nn.Flatten(),
        torch.nn.Dropout(0.3),
        qnn.QDense(8, 5, kernel_quantizer="ternary(alpha='auto_po2')", bias_quantizer=Q6),
        qnn.QActivation("quantized_bits(10,4,alpha=1)"),
    )


def model_output(model, x, input_quantizer=None):
    model.eval()
    with torch.no_grad():
        if input_quantizer is not None:
            x = heteroq.get_quantizer(input_quantizer).eval()(x)
        return model(x).numpy()


def export_and_run(model, x, path, input_quantizer=None):
    E.to_qonnx(model, x, path, input_quantizer=input_quantizer)
    loaded = E.load_qonnx(path)
    return loaded, R.run_model(loaded, x.numpy())


# ---------------------------------------------------------------------------------------------
# The reference interpreter itself (its Quant against the QONNX definition's examples)

def test_reference_quant_semantics():
    x = np.array([-3.0, -1.25, -0.75, -0.25, 0.25, 0.75, 1.25, 5.0])
    # signed 3-bit, scale 0.5: codes clamp to [-4, 3], ties to even
    assert R.quant(x, 0.5, 0.0, 3, 1, 0, "ROUND").tolist() == \
        [-2.0, -1.0, -1.0, -0.0, 0.0, 1.0, 1.0, 1.5]
    assert R.quant(x, 0.5, 0.0, 3, 1, 1, "ROUND").tolist()[0] == -1.5  # narrow: [-3, 3]
    assert R.quant(x, 0.5, 0.0, 3, 0, 0, "ROUND").tolist()[-1] == 3.5  # unsigned [0, 7]
    assert R.quant(x, 0.5, 0.0, 3, 0, 1, "ROUND").tolist()[-1] == 3.0  # unsigned narrow [0, 6]
    assert R.quant(x, 1.0, 0.0, 1, 1, 0, "ROUND").tolist() == [-1, -1, -1, -1, 1, 1, 1, 1]
    assert R.quant([2.5, -2.5], 1.0, 0.0, 8, 1, 0, "HALF_UP").tolist() == [3.0, -3.0]
    assert R.bipolar_quant([0.0, -0.1, 3.0], 0.25).tolist() == [0.25, -0.25, 0.25]


# ---------------------------------------------------------------------------------------------
# Exactness: the graph computes the model

def test_jet_model_exact(tmp_path):
    model = jet_model()
    x = torch.randn(256, 16) * 4
    loaded, y_graph = export_and_run(model, x, tmp_path / "jet.onnx", INPUT_Q)
    y = model_output(model, x, INPUT_Q)
    assert y_graph.dtype == np.float32 and y_graph.shape == (256, 5)
    assert (y_graph == y).all()  # equal after the output quantizer
    assert len(np.unique(y)) >= 5  # not a degenerate (constant) output


def test_cnn_model_exact(tmp_path):
    model = cnn_model()
    x = torch.randn(4, 3, 16, 16) * 2
    loaded, y_graph = export_and_run(model, x, tmp_path / "cnn.onnx", INPUT_Q)
    y = model_output(model, x, INPUT_Q)
    assert (y_graph == y).all()
    ops = [n.op_type for n in loaded.graph.node]
    for op in ("Conv", "MaxPool", "AveragePool", "ReduceSum", "Flatten", "MatMul", "Quant"):
        assert op in ops
    # The batch size is symbolic: another batch size runs too.
    x2 = torch.randn(7, 3, 16, 16) * 2
    assert (R.run_model(loaded, x2.numpy()) == model_output(model, x2, INPUT_Q)).all()


def test_conv1d_and_torch_layers_exact(tmp_path):
    model = torch.nn.Sequential(
        qnn.QConv1d(2, 6, 5, stride=2, padding=2, dilation=1, kernel_quantizer=Q6,
                    bias_quantizer=Q6),
        qnn.QBatchNorm1d(6),
        torch.nn.ReLU(),
        torch.nn.MaxPool1d(2),
        qnn.QActivation("quantized_bits(8,2,alpha=1)"),
        qnn.QSeparableConv1d(6, 6, 3, depth_multiplier=2, padding=1,
                             depthwise_quantizer="quantized_bits(4,0,1,alpha='auto_po2')",
                             pointwise_quantizer=Q6, bias_quantizer=Q6),
        qnn.QActivation("quantized_bits(8,3,alpha=1)"),
        torch.nn.Conv1d(6, 4, 3),  # float weights: exported as float constants
        torch.nn.Flatten(),
        torch.nn.Identity(),
        qnn.QLinearBatchNorm(4 * 3, 3, kernel_quantizer="quantized_bits(6,2,alpha=1)",
                             bias_quantizer="quantized_bits(8,3,alpha=1)"),
        qnn.QActivation("quantized_bits(8,3,alpha=1)"),
    )
    _set_bn(model[1], 6)
    _set_bn(model[10], 3)
    with torch.no_grad():  # float weights on a coarse grid keep the float32 sums exact
        model[7].weight.copy_(torch.round(model[7].weight * 16) / 16)
        model[7].bias.copy_(torch.round(model[7].bias * 16) / 16)
    x = torch.randn(16, 2, 20) * 2
    loaded, y_graph = export_and_run(model, x, tmp_path / "c1.onnx", INPUT_Q)
    assert (y_graph == model_output(model, x, INPUT_Q)).all()
    names = [n.name for n in loaded.graph.node]
    assert "5_depthwise" in names and "5_pointwise" in names


def test_torch_activations_and_pools_exact(tmp_path):
    model = torch.nn.Sequential(
        qnn.QConv2d(2, 4, 3, padding=1, kernel_quantizer=Q6, bias_quantizer=Q6),
        torch.nn.LeakyReLU(0.125),
        torch.nn.AvgPool2d(2),
        torch.nn.ReLU6(),
        torch.nn.Hardtanh(-0.5, 0.75),
        torch.nn.Identity(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        qnn.QActivation("quantized_bits(12,2,alpha=1)"),
    )
    x = torch.randn(8, 2, 8, 8) * 3
    loaded, y_graph = export_and_run(model, x, tmp_path / "p.onnx", INPUT_Q)
    assert (y_graph == model_output(model, x, INPUT_Q)).all()
    assert {"LeakyRelu", "AveragePool", "Clip", "GlobalAveragePool"} <= \
        {n.op_type for n in loaded.graph.node}
    with pytest.raises(ValueError, match=r"layer '0'.*output_size 1"):
        E.to_qonnx(torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(2)), x, tmp_path / "a.onnx")


@pytest.mark.parametrize("kwargs", [dict(stride=2, padding=1, output_padding=1),
                                    dict(stride=1, padding=0),
                                    dict(stride=3, padding=2, dilation=2, groups=2)])
def test_conv_transpose_exact(kwargs, tmp_path):
    model = torch.nn.Sequential(
        qnn.QConvTranspose2d(4, 6, 3, kernel_quantizer="quantized_bits(6,0,1,alpha='auto_po2')",
                             bias_quantizer=Q6, **kwargs),
        qnn.QActivation("quantized_bits(10,3,alpha=1)"),
        torch.nn.ConvTranspose2d(6, 2, 2, stride=2, bias=False),  # float weights
    )
    with torch.no_grad():  # float weights on a coarse grid keep the float32 sums exact
        model[2].weight.copy_(torch.round(model[2].weight * 16) / 16)
    x = torch.randn(3, 4, 5, 5) * 2
    loaded, y_graph = export_and_run(model, x, tmp_path / "ct.onnx", INPUT_Q)
    y = model_output(model, x, INPUT_Q)
    assert y_graph.shape == y.shape and (y_graph == y).all()


def test_float_input_within_the_float32_bound(tmp_path):
    """Without an input quantizer the first layer's float32 sums round; the graph (exact sums,
    one rounding) differs from the model by at most the bound of a float32 sum of n = 65 terms
    (64 products and the bias): |Δ| <= γ_n (Σ|w_i x_i| + |b|) + u |y|, γ_n = n u / (1 - n u)."""
    layer = qnn.QDense(64, 8, kernel_quantizer=Q6, bias_quantizer=Q6)
    x = torch.randn(128, 64)
    _, y_graph = export_and_run(torch.nn.Sequential(layer), x, tmp_path / "f.onnx")
    y = model_output(torch.nn.Sequential(layer), x)
    with torch.no_grad():
        mags = (x.double().abs() @ layer.quantized_weight().double().abs().t()
                + layer.quantized_bias().double().abs()).numpy()
    n = 65
    gamma = n * U / (1 - n * U)
    bound = gamma * mags + U * np.abs(y.astype(np.float64))
    assert (np.abs(y_graph.astype(np.float64) - y) <= bound).all()


WEIGHT_SPECS_PO2 = [  # power-of-two scales: every product and sum is exact in float32
    Q6,
    "quantized_bits(4,2,1,alpha=1)",
    "quantized_bits(4,0,1,alpha='auto_po2')",
    "quantized_bits(6,0,alpha='auto_po2',elements_per_scale=[2],min_po2_exponent=-4)",
    "quantized_bits(8,0,0,keep_negative=False,alpha=1)",
    "quantized_bits(1,0,alpha=0.5)",
    "quantized_bits(6,1,alpha=[0.5,1.0,2.0,0.25,1.0,4.0])",
    "binary()",
    "binary(alpha='auto_po2')",
    "binary(use_01=1)",
    "ternary()",
    "ternary(alpha='auto_po2')",
    "stochastic_binary(alpha='auto_po2')",
    "quantized_po2(4,1)",
    "quantized_po2(5)",
    "quantized_relu_po2(6,2048)",
]
WEIGHT_SPECS_OTHER = [  # non-power-of-two scales: products round in float32
    "quantized_bits(4,0,alpha='auto')",
    "quantized_bits(5,1,alpha=0.3)",
    "ternary(alpha='auto')",
]


def _weight_model(spec):
    torch.manual_seed(1)
    layer = qnn.QDense(12, 6, kernel_quantizer=spec, bias_quantizer=Q6)
    with torch.no_grad():
        layer.weight.mul_(4)
    return torch.nn.Sequential(layer)


@pytest.mark.parametrize("spec", WEIGHT_SPECS_PO2)
def test_weight_quantizers_exact(spec, tmp_path):
    model = _weight_model(spec)
    x = torch.randn(64, 12) * 4
    loaded, y_graph = export_and_run(model, x, tmp_path / "w.onnx", INPUT_Q)
    y = model_output(model, x, INPUT_Q)
    assert (y_graph == y).all()
    # The weight initializer holds the quantized values and its Quant node leaves them unchanged.
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in loaded.graph.initializer}
    node = next(n for n in loaded.graph.node if n.name == "0_weight_quant")
    w = inits[node.input[0]]
    assert np.array_equal(w, model[0].quantized_weight().detach().numpy().T)
    interp = R.ReferenceInterpreter(loaded)
    assert np.array_equal(interp.execute(node, [inits[i] for i in node.input]).astype(np.float32),
                          w)
    expected_op = "BipolarQuant" if spec in ("binary()", "binary(alpha='auto_po2')",
                                             "stochastic_binary(alpha='auto_po2')",
                                             "quantized_bits(1,0,alpha=0.5)") else "Quant"
    assert node.op_type == expected_op
    if node.op_type == "Quant":
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        bits = int(inits[node.input[3]])
        expected = {"ternary()": (2, 1, 1), "ternary(alpha='auto_po2')": (2, 1, 1),
                    "binary(use_01=1)": (1, 0, 0), Q6: (6, 1, 0),
                    "quantized_bits(4,0,1,alpha='auto_po2')": (4, 1, 1),
                    "quantized_bits(8,0,0,keep_negative=False,alpha=1)": (8, 0, 0)}.get(spec)
        if expected is not None:
            assert (bits, attrs["signed"], attrs["narrow"]) == expected
        assert attrs["rounding_mode"] == b"ROUND"
        assert not np.any(inits[node.input[2]])  # zero point 0


@pytest.mark.parametrize("spec", WEIGHT_SPECS_OTHER)
def test_weight_quantizers_non_po2_within_bound(spec, tmp_path):
    model = _weight_model(spec)
    x = torch.randn(64, 12) * 4
    _, y_graph = export_and_run(model, x, tmp_path / "w.onnx", INPUT_Q)
    y = model_output(model, x, INPUT_Q)
    layer = model[0]
    xq = heteroq.get_quantizer(INPUT_Q)(x)
    with torch.no_grad():
        mags = (xq.double().abs() @ layer.quantized_weight().double().abs().t()
                + layer.quantized_bias().double().abs()).numpy()
    gamma = 13 * U / (1 - 13 * U)
    assert (np.abs(y_graph.astype(np.float64) - y) <= gamma * mags + U * np.abs(y)).all()


ACTIVATION_SPECS = [
    "quantized_bits(6,2,alpha=1)",
    "quantized_bits(6,2)",
    "quantized_bits(4,0,1,alpha=1)",
    "quantized_bits(8,1,0,keep_negative=False,alpha=1)",
    "quantized_bits(5,1,alpha=0.3)",
    "quantized_bits(5,1,alpha=4)",
    "quantized_bits(1,0,alpha=0.5)",
    "quantized_bits(6,2,alpha=1,use_stochastic_rounding=1)",
    "quantized_relu(6,2)",
    "quantized_relu(4,0)",
    "quantized_relu(6)",
    "quantized_relu(4,1,enable_fast_inference=1)",
    "quantized_relu(6,2,is_quantized_clip=0)",
    "quantized_tanh(4)",
    "quantized_tanh(5,symmetric=1)",
    "quantized_sigmoid(4)",
    "binary()",
    "binary(alpha=0.5)",
    "stochastic_binary()",
    "ternary(threshold=0.5)",
    "ternary(alpha=0.75,threshold=0.25)",
    "ternary(alpha=2,threshold=1)",
]


@pytest.mark.parametrize("spec", ACTIVATION_SPECS)
def test_activation_quantizers_exact(spec, tmp_path):
    """Inputs on fine grids, at ties and one ulp either side of them, full-mantissa floats, bounds
    and zeros."""
    model = torch.nn.Sequential(qnn.QActivation(spec))
    codes = torch.randint(-3000, 3000, (4000,)).float()
    special = torch.tensor([0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 1.5, -1.5, 2.0, -2.0, 2.5, 3.875,
                            -4.0, 8.0, -8.0, 100.0, -100.0, 1e-30, -1e-30, 0.125, 0.0625])
    ties = (torch.arange(-600, 600) + 0.5) / 64  # half steps of every grid down to 2^-6
    near = torch.cat([torch.nextafter(ties, torch.tensor(math.inf)),
                      torch.nextafter(ties, torch.tensor(-math.inf))])
    x = torch.cat([codes / 256, codes / 2048, special, ties, near,
                   torch.randn(2000) * 3]).reshape(-1, 1)  # full float32 mantissas too
    _, y_graph = export_and_run(model, x, tmp_path / "a.onnx")
    y = model_output(model, x)
    assert (y_graph == y).all(), (spec, x[y_graph != y][:5], y_graph[y_graph != y][:5],
                                  y[y_graph != y][:5])


@pytest.mark.parametrize("activation", ["quantized_bits", "quantized_relu"])
def test_adaptive_activation_exact(activation, tmp_path):
    """QAdaptiveActivation exports the quantizer its moving statistics have chosen."""
    act = qnn.QAdaptiveActivation(activation, 8, ema_decay=0.5)
    act.train()
    for _ in range(5):
        act(torch.randn(64, 8) * 6)
    assert int(act.integer_bits) > 0  # the statistics moved the integer bits
    model = torch.nn.Sequential(qnn.QDense(8, 8, kernel_quantizer="quantized_bits(8,3,alpha=1)",
                                           bias_quantizer=Q6), act)
    x = torch.randn(256, 8) * 3
    loaded, y_graph = export_and_run(model, x, tmp_path / "ad.onnx", INPUT_Q)
    assert (y_graph == model_output(model, x, INPUT_Q)).all()
    assert E.hls4ml_config(model, input_quantizer=INPUT_Q)["LayerName"]["1"]["Precision"] == \
        {"result": E.hls4ml_type(act.quantizer())}


@pytest.mark.parametrize("activation", ["quantized_bits", "quantized_relu"])
@pytest.mark.parametrize("conv", [False, True])
def test_adaptive_activation_per_channel_exact(activation, conv, tmp_path):
    """Per-channel integer bits (axis 1): one Quant node with a scale per channel."""
    torch.manual_seed(7)
    act = qnn.QAdaptiveActivation(activation, 8, ema_decay=0.5, per_channel=True, num_channels=4)
    act.train()
    spread = torch.tensor([0.3, 2.0, 9.0, 40.0]).reshape([1, 4] + [1, 1] * conv)
    for _ in range(5):
        act(torch.randn([64, 4] + [3, 3] * conv) * spread)
    assert len(set(act.integer_bits.tolist())) >= 3  # the channels chose different widths
    first = qnn.QConv2d(4, 4, 1, kernel_quantizer="quantized_bits(8,3,alpha=1)") if conv else \
        qnn.QDense(4, 4, kernel_quantizer="quantized_bits(8,3,alpha=1)")
    with torch.no_grad():
        first.weight.copy_(torch.eye(4).reshape(first.weight.shape) * 4)
    model = torch.nn.Sequential(first, act)
    x = torch.randn([256, 4] + [3, 3] * conv) * spread
    loaded, y_graph = export_and_run(model, x, tmp_path / "pc.onnx", INPUT_Q)
    assert (y_graph == model_output(model, x, INPUT_Q)).all()
    node = next(n for n in loaded.graph.node if n.name == "1")
    scale = next(onnx.numpy_helper.to_array(t) for t in loaded.graph.initializer
                 if t.name == node.input[1])
    assert scale.shape == ((4, 1, 1) if conv else (4,))
    assert len(set(scale.ravel().tolist())) >= 3
    # hls4ml casts a layer's result to one type: refused, naming the layer.
    with pytest.raises(ValueError, match=r"layer '1' \(QAdaptiveActivation\).*integer bits"):
        E.hls4ml_config(model, [1] + list(x.shape[1:]), INPUT_Q)


def test_activation_after_dense_exact(tmp_path):
    model = torch.nn.Sequential(qnn.QDense(16, 32, kernel_quantizer=Q6, bias_quantizer=Q6),
                                qnn.QActivation("quantized_tanh(6)"),
                                qnn.QDense(32, 8, kernel_quantizer=Q6),
                                heteroq.quantized_sigmoid(6))  # a quantizer used as a layer
    x = torch.randn(128, 16) * 3
    _, y_graph = export_and_run(model, x, tmp_path / "t.onnx", INPUT_Q)
    assert (y_graph == model_output(model, x, INPUT_Q)).all()


EXACT_ACTIVATIONS = ["quantized_bits(8,2,alpha=1)", "quantized_bits(6,1,1,alpha=1)",
                     "quantized_relu(6,2)", "quantized_relu(8,3)", "quantized_tanh(6)",
                     "quantized_sigmoid(6)", "binary(alpha=0.5)", "quantized_bits(7,2,alpha=2)"]


RANDOM_WEIGHT_SPECS = [spec for spec in WEIGHT_SPECS_PO2 if "[" not in spec]  # any channel count


def _random_chain(rng):
    """A random CNN or MLP of supported layers and power-of-two quantizers."""
    pick = lambda xs: xs[int(rng.integers(len(xs)))]  # noqa: E731
    layers = []
    channels = int(rng.integers(1, 4))
    shape = (16, channels, 8, 8)
    conv = bool(rng.integers(2))
    size = 8
    if conv:
        for _ in range(int(rng.integers(1, 3))):
            out = int(rng.integers(2, 6))
            kind = int(rng.integers(3))
            if kind == 0:
                layers.append(qnn.QConv2d(channels, out, 3, padding=1,
                                          kernel_quantizer=pick(RANDOM_WEIGHT_SPECS),
                                          bias_quantizer=Q6))
            elif kind == 1:
                out = channels * 2
                layers.append(qnn.QDepthwiseConv2d(channels, 3, depth_multiplier=2, padding=1,
                                                   depthwise_quantizer=pick(RANDOM_WEIGHT_SPECS)))
            else:
                bn = qnn.QConv2dBatchNorm(channels, out, 3, padding=1,
                                          kernel_quantizer="quantized_bits(6,2,1,alpha='auto_po2')",
                                          bias_quantizer="quantized_bits(8,3,alpha=1)")
                _set_bn(bn, out)
                layers.append(bn)
            layers.append(qnn.QActivation(pick(EXACT_ACTIVATIONS)))
            if rng.integers(2):
                layers.append(pick([torch.nn.MaxPool2d(2), qnn.QAvgPool2d(
                    2, average_quantizer="quantized_bits(8,0,alpha=1)",
                    activation="quantized_bits(10,4,alpha=1)")]))
                size //= 2
            channels = out
        layers.append(torch.nn.Flatten())
        features = channels * size * size
    else:
        features = channels * 4
        shape = (16, features)
    for _ in range(int(rng.integers(1, 3))):
        out = int(rng.integers(2, 12))
        layers.append(qnn.QDense(features, out, kernel_quantizer=pick(RANDOM_WEIGHT_SPECS),
                                 bias_quantizer=pick([Q6, "quantized_bits(8,3,alpha=1)"])))
        layers.append(qnn.QActivation(pick(EXACT_ACTIVATIONS)))
        features = out
    return torch.nn.Sequential(*layers), shape


@pytest.mark.parametrize("seed", range(12))
def test_random_chains_exact(seed, tmp_path):
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    model, shape = _random_chain(rng)
    x = torch.randn(shape) * 3
    _, y_graph = export_and_run(model, x, tmp_path / "r.onnx", INPUT_Q)
    assert (y_graph == model_output(model, x, INPUT_Q)).all(), model


# ---------------------------------------------------------------------------------------------
# The graph's form: what hls4ml and FINN read

def test_graph_form(tmp_path):
    model = jet_model()
    proto = E.to_qonnx(model, torch.randn(2, 16), tmp_path / "jet.onnx", input_quantizer=INPUT_Q)
    onnx.checker.check_model(proto, full_check=True)
    opsets = {o.domain: o.version for o in proto.opset_import}
    assert opsets == {"": E.ONNX_OPSET, E.QONNX_DOMAIN: 1}
    quants = [n for n in proto.graph.node if n.op_type == "Quant"]
    assert len(quants) == 1 + 4 * 2 + 3 + 1  # input, 4 weights + 4 biases, 3 ReLUs, output
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    for n in quants:
        assert n.domain == E.QONNX_DOMAIN
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        assert set(attrs) == {"signed", "narrow", "rounding_mode"}
        assert attrs["rounding_mode"] == b"ROUND"
        scale, zeropt, bits = (inits[i] for i in n.input[1:])
        assert scale.shape == () and zeropt.shape == () and float(zeropt) == 0.0
        mantissa, _ = math.frexp(float(scale))
        assert mantissa == 0.5  # a power of two (hls4ml's QuantToActivation path)
        assert float(bits) == int(bits) > 0
    by_name = {n.name: {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
               for n in quants}
    # quantized_relu(6) -> unsigned 6 bits, scale 2^-6; quantized_bits(6,0) weights -> signed
    # 6 bits, scale 2^-5; input quantized_bits(8,3) -> signed 8 bits, scale 2^-4.
    assert (by_name["relu1"]["signed"], by_name["relu1"]["narrow"]) == (0, 0)
    assert float(inits[next(n for n in quants if n.name == "relu1").input[1]]) == 2.0 ** -6
    w = next(n for n in quants if n.name == "fc1_weight_quant")
    assert by_name["fc1_weight_quant"]["signed"] == 1
    assert float(inits[w.input[1]]) == 2.0 ** -5 and float(inits[w.input[3]]) == 6
    assert float(inits[next(n for n in quants if n.name == "input_quant").input[1]]) == 2 ** -4
    assert proto.graph.input[0].name == "global_in" and proto.graph.output[0].name == "global_out"
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "N" and dims[1].dim_value == 16
    assert proto.producer_name == "heteroq"


def test_symmetric_and_per_channel_weights_form(tmp_path):
    layer = qnn.QDense(8, 4, kernel_quantizer="quantized_bits(4,0,1,alpha='auto_po2')")
    proto = E.to_qonnx(torch.nn.Sequential(layer), torch.randn(2, 8), tmp_path / "s.onnx")
    n = next(n for n in proto.graph.node if n.name == "0_weight_quant")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
    assert attrs["narrow"] == 1 and attrs["signed"] == 1
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    scale = inits[n.input[1]]
    assert scale.shape == (1, 4)  # per output channel, in MatMul's (in, out) layout
    with torch.no_grad():
        it = heteroq.serialize.quantize_to_integer(layer.kernel_quantizer, layer.weight)
    assert np.array_equal(scale[0], (it.scale.reshape(-1) * 2.0 ** -it.frac).numpy())


def test_model_state_unchanged(tmp_path):
    model = cnn_model().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    E.to_qonnx(model, torch.randn(2, 3, 16, 16), tmp_path / "m.onnx", input_quantizer=INPUT_Q)
    assert all(m.training for m in model.modules())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


# ---------------------------------------------------------------------------------------------
# Bad input

class _ViewModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = qnn.QConv2d(1, 2, 3, kernel_quantizer=Q6)
        self.fc = qnn.QDense(2 * 4 * 4, 3, kernel_quantizer=Q6)

    def forward(self, x):
        return self.fc(self.conv(x).view(x.size(0), -1))


@pytest.mark.parametrize("layer, match", [
    (qnn.QActivation("quantized_bits(4,0,alpha='auto')"), r"layer '1'.*batch"),
    (qnn.QActivation("quantized_bits(4,0,alpha='auto_po2')"), r"layer '1'.*batch"),
    (qnn.QActivation("binary(alpha='auto')"), r"layer '1'.*batch"),
    (qnn.QActivation("bernoulli()"), r"layer '1'.*random"),
    (qnn.QActivation("ternary()"), r"layer '1'.*threshold 0\.33.* not a power of two"),
    (qnn.QActivation("ternary(alpha='auto_po2')"), r"layer '1'.*batch"),
    (qnn.QActivation("quantized_po2(4)"), r"layer '1'.*log domain"),
    (qnn.QActivation("quantized_relu_po2(4)"), r"layer '1'.*log domain"),
    (qnn.QActivation("quantized_ulaw(8)"), r"layer '1'.*quantized_ulaw"),
    (qnn.QActivation("quantized_hswish(8,3)"), r"layer '1'.*quantized_hswish"),
    (qnn.QActivation("quantized_tanh(4,use_real_tanh=1)"), r"layer '1'.*float tanh"),
    (qnn.QActivation("quantized_sigmoid(4,symmetric=1)"), r"layer '1'.*symmetric"),
    (qnn.QActivation("quantized_relu(4,0,negative_slope=0.25)"), r"layer '1'.*negative_slope"),
    (qnn.QActivation("quantized_relu(4,0,use_sigmoid=1)"), r"layer '1'.*use_sigmoid"),
    (qnn.QActivation("quantized_bits(6,0,alpha=1,qnoise_factor=0.5)"), r"layer '1'.*qnoise"),
    (qnn.QActivation("binary(use_01=1)"), r"layer '1'.*use_01"),
    (torch.nn.Tanh(), r"layer '1' \(Tanh\).*no exact"),
    (torch.nn.Softmax(dim=1), r"layer '1' \(Softmax\).*no exact"),
    (torch.nn.BatchNorm1d(8), r"layer '1' \(BatchNorm1d\)"),
    (qnn.QAdaptiveActivation("quantized_relu", 8, per_channel=True, num_channels=8,
                             relu_neg_slope=0.25), r"layer '1'.*negative_slope"),
    (qnn.QActivation("quantized_relu(6,2,is_quantized_clip=0,relu_upper_bound=3.0)"),
     r"layer '1'.*relu_upper_bound"),
    (qnn.QDense(8, 8, kernel_quantizer="bernoulli()"), r"layer '1'.*random"),
])
def test_unexportable_layers_are_named(layer, match, tmp_path):
    model = torch.nn.Sequential(qnn.QDense(4, 8, kernel_quantizer=Q6), layer)
    path = tmp_path / "bad.onnx"
    with pytest.raises(ValueError, match=match):
        E.to_qonnx(model, torch.randn(2, 4), path)
    assert not path.exists() and os.listdir(tmp_path) == []  # nothing half-written


def test_unexportable_structure(tmp_path):
    with pytest.raises(ValueError, match=r"layer 'fc'.*does not take the output of layer "
                                         r"'conv'"):
        E.to_qonnx(_ViewModel(), torch.randn(2, 1, 6, 6), tmp_path / "v.onnx")
    rnn = torch.nn.Sequential(qnn.QLSTM(4, 8, kernel_quantizer=Q6))
    with pytest.raises(ValueError, match=r"layer '0' \(QLSTM\): recurrent"):
        E.to_qonnx(rnn, torch.randn(2, 3, 4), tmp_path / "r.onnx")
    conv3d = torch.nn.Sequential(torch.nn.Conv3d(1, 1, 2))
    with pytest.raises(ValueError, match=r"layer '0' \(Conv3d\).*1-D and 2-D"):
        E.to_qonnx(conv3d, torch.randn(1, 1, 3, 3, 3), tmp_path / "t.onnx")
    refl = torch.nn.Sequential(qnn.QConv2d(1, 1, 3, padding=1, padding_mode="reflect"))
    with pytest.raises(ValueError, match=r"layer '0'.*padding_mode"):
        E.to_qonnx(refl, torch.randn(1, 1, 4, 4), tmp_path / "p.onnx")
    double = torch.nn.Sequential(qnn.QDense(4, 2, kernel_quantizer=Q6)).double()
    with pytest.raises(ValueError, match=r"float32"):
        E.to_qonnx(double, torch.randn(2, 4), tmp_path / "d.onnx")
    with pytest.raises(ValueError, match=r"failed in layer '0'.*QLinearBatchNorm: expected"):
        E.to_qonnx(torch.nn.Sequential(qnn.QLinearBatchNorm(4, 2)), torch.randn(2, 3, 4),
                   tmp_path / "b.onnx")
    with pytest.raises(ValueError, match=r"failed in layer 'fc1'"):
        E.to_qonnx(jet_model(), torch.randn(2, 15), tmp_path / "s.onnx")
    with pytest.raises(ValueError, match=r"input_quantizer.*batch"):
        E.to_qonnx(jet_model(), torch.randn(2, 16), tmp_path / "i.onnx",
                   input_quantizer="quantized_bits(8,0,alpha='auto')")
    with pytest.raises(TypeError, match="model"):
        E.to_qonnx("model", torch.randn(2, 16), tmp_path / "x.onnx")
    with pytest.raises(TypeError, match="example_input"):
        E.to_qonnx(jet_model(), [1.0] * 16, tmp_path / "x.onnx")
    with pytest.raises(TypeError, match="path"):
        E.to_qonnx(jet_model(), torch.randn(2, 16), 3)
    assert os.listdir(tmp_path) == []


def test_failed_export_keeps_existing_file(tmp_path):
    path = tmp_path / "m.onnx"
    E.to_qonnx(jet_model(), torch.randn(2, 16), path)
    before = path.read_bytes()
    bad = torch.nn.Sequential(qnn.QDense(16, 4, kernel_quantizer=Q6), torch.nn.Tanh())
    with pytest.raises(ValueError):
        E.to_qonnx(bad, torch.randn(2, 16), path)
    assert path.read_bytes() == before
    with pytest.raises(ValueError, match="cannot write"):
        E.to_qonnx(jet_model(), torch.randn(2, 16), tmp_path / "missing_dir" / "m.onnx")


# ---------------------------------------------------------------------------------------------
# Truncated and corrupted files

def test_load_rejects_damaged_files(tmp_path):
    path = tmp_path / "jet.onnx"
    E.to_qonnx(jet_model(), torch.randn(2, 16), path, input_quantizer=INPUT_Q)
    data = path.read_bytes()
    E.load_qonnx(path)  # intact
    bad = tmp_path / "bad.onnx"
    for cut in [0, 1, 7, len(data) // 3, len(data) // 2, len(data) - 40, len(data) - 1]:
        bad.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=r"bad\.onnx.*(truncated|corrupted|empty)"):
            E.load_qonnx(bad)
    # One flipped byte inside the weights: parses, fails the checksum.
    proto = onnx.load_from_string(data)
    raw = proto.graph.initializer[-3].raw_data
    offset = data.find(raw) + len(raw) // 2
    flipped = bytearray(data)
    flipped[offset] ^= 0x10
    bad.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match=r"corrupted"):
        E.load_qonnx(bad)
    bad.write_bytes(b"not an onnx file at all" * 10)
    with pytest.raises(ValueError, match=r"bad\.onnx"):
        E.load_qonnx(bad)
    with pytest.raises(ValueError, match=r"cannot read"):
        E.load_qonnx(tmp_path / "missing.onnx")
    # A file without the checksum (another exporter's): refused unless asked.
    del proto.metadata_props[:]
    bad.write_bytes(proto.SerializeToString())
    with pytest.raises(ValueError, match=r"no heteroq.graph_sha256"):
        E.load_qonnx(bad)
    assert len(E.load_qonnx(bad, require_checksum=False).graph.node) == len(proto.graph.node)


# ---------------------------------------------------------------------------------------------
# hls4ml configuration

def test_hls4ml_config_jet_model_published_precisions():
    """hls4ml-tutorial part 4 (benchmarks.md §2.2): weights and biases fixed<6,1>, ReLU outputs
    ufixed<6,0,RND_CONV,SAT>; defaults fixed<16,6>, ReuseFactor 1, Strategy Latency."""
    model = jet_model(output_quantizer=None)
    config = E.hls4ml_config(model)
    assert config["Model"]["Precision"] == {"default": "fixed<16,6>"}
    assert config["Model"]["ReuseFactor"] == 1 and config["Model"]["Strategy"] == "Latency"
    assert set(config["LayerName"]) == {"fc1", "relu1", "fc2", "relu2", "fc3", "relu3", "output"}
    for name in ("fc1", "fc2", "fc3", "output"):
        p = config["LayerName"][name]["Precision"]
        assert p["weight"] == "fixed<6,1>" and p["bias"] == "fixed<6,1>"
        assert p["result"] == p["accum"]
        assert config["LayerName"][name]["ReuseFactor"] == 1
        assert config["LayerName"][name]["Trace"] is False
    for name in ("relu1", "relu2", "relu3"):
        assert config["LayerName"][name] == {"Precision": {"result": "ufixed<6,0,RND_CONV,SAT>"},
                                             "Trace": False}
    json.dumps(config)  # plain data
    ap = E.hls4ml_config(model, style="ap")
    assert ap["LayerName"]["fc1"]["Precision"]["weight"] == "ap_fixed<6,1>"
    assert ap["LayerName"]["relu1"]["Precision"]["result"] == "ap_ufixed<6,0,AP_RND_CONV,AP_SAT>"


def _parse(t):
    import re
    m = re.fullmatch(r"(u?)fixed<(\d+),(-?\d+)(?:,.*)?>", t)
    assert m, t
    return m.group(1) == "", int(m.group(2)), int(m.group(3))


def test_hls4ml_accumulators_hold_every_sum():
    """accum = qstats's integer bits + sign, the product's fractional bits (input 8-bit
    quantized_relu(8,0): 8, weights 5): every pre-activation value of random inputs in the input
    quantizer's range lies on its grid and in its range."""
    torch.manual_seed(3)
    model = jet_model(output_quantizer=None).eval()
    config = E.hls4ml_config(model, (1, 16))
    stats = heteroq.cost.qstats(model, (1, 16))
    signed, width, integer = _parse(config["LayerName"]["fc1"]["Precision"]["accum"])
    assert signed and width - integer == 8 + 5
    assert integer == stats.layer("fc1").accumulator.bits + 1 or \
        stats.layer("fc1").accumulator.max > 2.0 ** stats.layer("fc1").accumulator.bits - 2 ** -13
    for name in ("fc2", "fc3", "output"):
        signed, width, integer = _parse(config["LayerName"][name]["Precision"]["accum"])
        assert width - integer == 6 + 5
    x = heteroq.get_quantizer("quantized_relu(8,0)")(torch.rand(4096, 16) * 1.2)
    extremes = torch.stack([torch.zeros(16), torch.full((16,), 255 / 256)])
    x = torch.cat([x, extremes])
    with torch.no_grad():
        h = x
        for name, module in model.named_children():
            if name.startswith("relu"):
                h = module(h)
                continue
            h = module(h)
            signed, width, integer = _parse(config["LayerName"][name]["Precision"]["accum"])
            frac = width - integer
            codes = h.double() * 2.0 ** frac
            assert torch.equal(codes, torch.round(codes))
            assert codes.min() >= -(2.0 ** (width - 1)) and codes.max() <= 2.0 ** (width - 1) - 1


@pytest.mark.parametrize("spec, role, expected", [
    ("quantized_bits(8,3)", "result", "fixed<8,4,RND_CONV,SAT>"),
    ("quantized_bits(8,3,1,alpha=1)", "result", "fixed<8,4,RND_CONV,SAT_SYM>"),
    ("quantized_bits(8,2,0,keep_negative=False,alpha=1)", "result", "ufixed<8,2,RND_CONV,SAT>"),
    ("quantized_relu(6,2)", "result", "ufixed<6,2,RND_CONV,SAT>"),
    ("quantized_relu(6)", "result", "ufixed<6,0,RND_CONV,SAT>"),
    ("quantized_relu(4,4)", "result", "uint<4>"),
    ("quantized_relu(4,1,negative_slope=0.25)", "result", "fixed<4,2,RND_CONV,SAT>"),
    ("quantized_tanh(8)", "result", "fixed<8,1,RND_CONV,SAT>"),
    ("quantized_tanh(8,symmetric=1)", "result", "fixed<8,1,RND_CONV,SAT_SYM>"),
    ("quantized_sigmoid(8)", "result", "ufixed<8,0,RND_CONV,SAT>"),
    ("quantized_bits(6,5,alpha=1)", "result", "int<6>"),
    ("binary()", "result", "int<2>"),
    ("ternary()", "result", "int<2>"),
    ("quantized_bits(6,0,alpha=1)", "weight", "fixed<6,1>"),
    ("quantized_bits(4,0,1,alpha='auto_po2')", "weight", "fixed<4,1>"),
    ("quantized_bits(8,3,alpha=1)", "weight", "fixed<8,4>"),
    ("quantized_bits(6,6,alpha=1)", "weight", "int<6>"),
    ("ternary(alpha='auto_po2')", "weight", "int<2>"),
    ("binary()", "weight", "uint<1>"),
    ("quantized_po2(5)", "weight", "int<5>"),
])
def test_hls4ml_type_rules(spec, role, expected):
    assert E.hls4ml_type(spec, role) == expected


def test_hls4ml_config_conv_and_errors():
    model = cnn_model()
    config = E.hls4ml_config(model, (1, 3, 16, 16), INPUT_Q)
    layers = config["LayerName"]
    assert layers["0"]["Precision"]["weight"] == "fixed<6,1>"
    signed, width, integer = _parse(layers["0"]["Precision"]["accum"])
    assert width - integer == 4 + 5  # input quantized_bits(8,3): 4 fractional bits
    assert layers["2"]["Precision"]["result"] == "ufixed<6,2,RND_CONV,SAT>"
    assert layers["8"]["Precision"]["result"] == "ufixed<8,3,RND_CONV,SAT>"  # pooling activation
    p9 = layers["9"]["Precision"]
    assert {k: p9[k] for k in ("depthwise", "pointwise", "bias")} == \
        {"depthwise": "fixed<6,1>", "pointwise": "fixed<6,1>", "bias": "fixed<6,1>"}
    assert set(p9) == {"depthwise", "pointwise", "bias", "dw_output", "accum", "result"}
    assert set(layers["1"]["Precision"]) == {"scale", "bias", "result"}  # unfolded batch norm
    assert layers["5"]["Precision"] == {"result": "fixed<8,4,RND_CONV,SAT>"}  # max of its input
    assert "11" not in layers and "12" not in layers  # Flatten, Dropout: no types of their own
    # Float input: the first accumulator is not derived.
    floating = E.hls4ml_config(jet_model(), input_quantizer=None)
    assert floating["LayerName"]["fc1"]["Precision"]["accum"] == "fixed<16,6>"
    bad = torch.nn.Sequential(qnn.QDense(4, 4, kernel_quantizer=Q6),
                              qnn.QActivation("quantized_ulaw(8)"))
    with pytest.raises(ValueError, match=r"layer '1'.*quantized_ulaw"):
        E.hls4ml_config(bad)
    with pytest.raises(ValueError, match="input_shape"):
        E.hls4ml_config(torch.nn.Sequential(qnn.QConv2d(1, 1, 3, kernel_quantizer=Q6)))
    with pytest.raises(ValueError, match="style"):
        E.hls4ml_config(jet_model(), style="vhdl")
    with pytest.raises(ValueError, match="reuse_factor"):
        E.hls4ml_config(jet_model(), reuse_factor=0)


def test_package_exports():
    assert heteroq.export is E
    assert "export" in heteroq.__all__
    assert E.QONNX_DOMAIN == "qonnx.custom_op.general"
    assert pathlib.Path(E.__file__).name == "export.py"
