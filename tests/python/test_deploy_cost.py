# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""heteroq.deploy against the cost model: every dense/convolution stage's integer bound (from
the actual weights) fits the accumulator type QTools's data types assign to the layer (the worst
case over all weights of the format), and stage_info reports both."""
import pytest
import torch

from heteroq import cost, deploy
from heteroq import nn as hnn

WEIGHTS = ["quantized_bits(6,0,alpha=1)", "quantized_bits(4,1,alpha=1)",
           "quantized_bits(8,2,symmetric=1,alpha=1)", "quantized_po2(4)",
           "binary(alpha=1)", "ternary(alpha=1)", "quantized_bits(1,0,alpha=1)"]
ACTS = ["quantized_relu(6,0)", "quantized_bits(6,2,alpha=1)", "quantized_relu(4,2)",
        "quantized_tanh(5)", "binary()"]


def check(engine, minimum_stages):
    checked = 0
    for s in engine.stage_info():
        if s["kind"] not in ("dense", "conv2d") or "padding" in s["name"] or "upsampling" in s["name"]:
            continue
        assert s["cost_bits"] > 0, s
        assert 0 < s["bits_at_cost_frac"] <= s["cost_bits"], s
        checked += 1
    assert checked >= minimum_stages


@pytest.mark.parametrize("wq", WEIGHTS)
@pytest.mark.parametrize("act", ACTS)
def test_jet_model_bounds_fit_the_cost_model(wq, act):
    torch.manual_seed(0)
    layers = [hnn.QActivation("quantized_bits(8,3,alpha=1)")]
    sizes = [16, 64, 32, 32, 5]
    for i in range(4):
        layers.append(hnn.QDense(sizes[i], sizes[i + 1], kernel_quantizer=wq,
                                 bias_quantizer="quantized_bits(8,3,alpha=1)"))
        if i < 3:
            layers.append(hnn.QActivation(act))
    model = torch.nn.Sequential(*layers).eval()
    engine = deploy.compile(model)
    check(engine, 4)
    # the same accumulator types as heteroq.cost.data_types prints
    dt = cost.data_types(model, (1, 16))
    accs = [t.stages[-1].accumulator for t in dt.layers if t.stages]
    info = [s for s in engine.stage_info() if s["kind"] == "dense"]
    assert [s["cost_bits"] for s in info] == [a.bits for a in accs]


def test_convolutional_and_chained_layers_fit():
    torch.manual_seed(1)
    q = "quantized_bits(6,0,alpha=1)"
    model = torch.nn.Sequential(
        hnn.QActivation("quantized_bits(8,2,alpha=1)"),
        hnn.QConv2d(2, 4, 3, padding=1, kernel_quantizer=q, bias_quantizer=q),
        hnn.QActivation("quantized_relu(6,2)"),
        hnn.QSeparableConv2d(4, 6, 3, depthwise_quantizer=q, pointwise_quantizer="ternary(alpha=1)",
                             bias_quantizer=q),
        hnn.QActivation("quantized_relu(6,2)"),
        hnn.QDepthwiseConv2d(6, 3, depthwise_quantizer="ternary(alpha=1)", bias_quantizer=q),
        torch.nn.Flatten(),
        hnn.QDense(6 * 4 * 4, 8, kernel_quantizer=q, bias_quantizer=q),
        hnn.QDense(8, 3, kernel_quantizer=q, bias=False)).eval()
    engine = deploy.compile(model, input_shape=(2, 8, 8))
    check(engine, 6)


def test_input_quantizer_option_is_the_cost_models_source_type():
    """A model without a leading QActivation: the cost model's source type is the
    input_quantizer, so the first layer's accumulator is priced on the same input."""
    q = "quantized_bits(6,0,alpha=1)"
    model = torch.nn.Sequential(hnn.QDense(4, 3, kernel_quantizer=q)).eval()
    engine = deploy.compile(model, input_quantizer="quantized_bits(8,3,alpha=1)")
    s = engine.stage_info()[0]
    assert s["cost_bits"] > 0 and s["bits_at_cost_frac"] <= s["cost_bits"]


def test_po2_weights_below_the_cost_models_exponent_range():
    """A finding of this cross-check: for quantized_po2(5, max_value=1) weights the cost model's
    shifter type has 8 fraction bits more than the input (exponents down to 2^-8), while the
    quantizer gives 2^-9 and below, so the engine's accumulator needs fraction bits the cost
    model's type lacks: stage_info says so with bits_at_cost_frac = -1."""
    torch.manual_seed(0)
    m = torch.nn.Sequential(hnn.QActivation("quantized_bits(8,3,alpha=1)"),
                            hnn.QDense(16, 4, kernel_quantizer="quantized_po2(5,1)",
                                       bias_quantizer="quantized_bits(8,3,alpha=1)")).eval()
    w = m[1].kernel_quantizer(m[1].weight).detach()
    s = deploy.compile(m).stage_info()[0]
    acc = cost.data_types(m, (1, 16)).layers[1].stages[0].accumulator
    cost_frac = acc.bits - acc.int_bits - 1
    assert s["cost_frac"] == cost_frac
    smallest = w.abs()[w != 0].min().item()
    assert smallest < 2.0 ** -(cost_frac - 4)  # 4: the input's frac
    assert s["bits_at_cost_frac"] == -1
