# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""hls4ml_config beyond dense layers (issue 8 §3): unfolded batch norm, separable and transposed
convolutions, pooling, activations hls4ml cannot implement, recurrent layers. Every derived type
must hold every value the layer computes (on its grid, in its range) for inputs of the previous
layer's type, and the accumulators must agree with heteroq.cost.qstats."""
import re
from collections import OrderedDict

import pytest
import torch

import heteroq
from heteroq import export as E
from heteroq import nn as qnn

Q6 = "quantized_bits(6,0,alpha=1)"
IN_Q = "quantized_bits(8,3,alpha=1)"


def parse_type(t):
    """(signed, width, integer bits incl. sign, fractional bits) of an hls4ml type string."""
    m = re.fullmatch(r"(u?)fixed<(\d+),(-?\d+)(?:,[A-Z_]+)*>", t)
    if m:
        width, integer = int(m.group(2)), int(m.group(3))
        return m.group(1) == "", width, integer, width - integer
    m = re.fullmatch(r"(u?)int<(\d+)>", t)
    assert m, f"not an hls4ml type: {t}"
    return m.group(1) == "", int(m.group(2)), int(m.group(2)), 0


def holds(t, values):
    """Whether every value is representable in type ``t`` exactly."""
    signed, width, integer, frac = parse_type(t)
    codes = torch.as_tensor(values).double().flatten() * 2.0 ** frac
    if not torch.equal(codes, torch.round(codes)):
        return False
    lo, hi = (-(2.0 ** (width - 1)), 2.0 ** (width - 1) - 1) if signed else (0.0, 2.0 ** width - 1)
    return bool(codes.min() >= lo and codes.max() <= hi)


def grid_inputs(shape, quantizer=IN_Q, n=256):
    """Inputs on the input quantizer's grid: random ones and the two ends of its range."""
    q = heteroq.get_quantizer(quantizer)
    x = q(torch.randn(n, *shape) * 8)
    ends = torch.stack([torch.full(shape, q.min()), torch.full(shape, q.max())])
    return torch.cat([x, q(ends)])


def accumulator_consistent(t, acc):
    """accum's integer bits (sign included) are qstats's + 1, or one more where an end of the
    range needs it."""
    signed, width, integer, frac = parse_type(t)
    return signed and integer - 1 in (acc.bits, acc.bits + 1)


def _set_bn(bn):
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)


# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["po2", "inverse", "float"])
def test_batch_norm_scale_bias_result(kind):
    torch.manual_seed(0)
    if kind == "po2":
        bn = qnn.QBatchNorm1d(
            8, gamma_quantizer="quantized_relu_po2(6,2048)", beta_quantizer="quantized_po2(5)",
            mean_quantizer="quantized_po2(5)",
            variance_quantizer="quantized_relu_po2(6,quadratic_approximation=True)")
    elif kind == "inverse":
        bn = qnn.QBatchNorm1d(8, inverse_quantizer="quantized_bits(8,2,alpha=1)",
                              mean_quantizer="quantized_bits(8,3,alpha=1)",
                              beta_quantizer="quantized_bits(8,3,alpha=1)")
    else:
        bn = qnn.QBatchNorm1d(8)
    _set_bn(bn)
    model = torch.nn.Sequential(OrderedDict([
        ("fc", qnn.QDense(4, 8, kernel_quantizer=Q6, bias_quantizer=Q6)),
        ("act", qnn.QActivation(IN_Q)),
        ("bn", bn)]))  # (training mode: the eval-mode constants are used)
    config = E.hls4ml_config(model, (1, 4), IN_Q)
    assert all(m.training for m in model.modules())  # the flags are restored
    model.eval()
    p = config["LayerName"]["bn"]["Precision"]
    assert set(p) == {"scale", "bias", "result"}
    values = dict(heteroq.cost._batch_norm_values(bn))
    x = grid_inputs((8,))
    with torch.no_grad():
        y = bn(x)
    if kind == "float":  # a full float32 inverse: still exact constants, but wide
        assert parse_type(p["scale"])[1] > 20
    for key, v in (("scale", values["scale"]), ("bias", values["shift"])):
        assert holds(p[key], v), (key, p[key])
    # The result type holds every output for inputs of the previous layer's type.
    assert holds(p["result"], y), p["result"]
    # ... and is the narrowest: one integer bit fewer does not hold the extremes.
    signed, width, integer, frac = parse_type(p["result"])
    narrower = f"{'' if signed else 'u'}fixed<{width - 1},{integer - 1}>"
    assert not holds(narrower, y) or integer <= 1
    # A float input: the result cannot be derived.
    floating = E.hls4ml_config(torch.nn.Sequential(bn), (1, 8), None)
    assert floating["LayerName"]["0"]["Precision"]["result"] == "fixed<16,6>"
    assert floating["LayerName"]["0"]["Precision"]["scale"] == p["scale"]


def test_batch_norm_without_running_stats_is_named():
    bn = qnn.QBatchNorm1d(4, track_running_stats=False)
    with pytest.raises(ValueError, match=r"layer '1' \(QBatchNorm1d\).*running statistics"):
        E.hls4ml_config(torch.nn.Sequential(qnn.QActivation(IN_Q), bn), (1, 4), IN_Q)


@pytest.mark.parametrize("cls, shape", [(qnn.QSeparableConv2d, (3, 6, 6)),
                                        (qnn.QSeparableConv1d, (3, 10))])
def test_separable_conv_precisions(cls, shape):
    torch.manual_seed(1)
    sep = cls(3, 5, 3, depth_multiplier=2, padding=1,
              depthwise_quantizer="quantized_bits(4,0,1,alpha='auto_po2')",
              pointwise_quantizer=Q6, bias_quantizer="quantized_bits(8,3,alpha=1)")
    model = torch.nn.Sequential(OrderedDict([("act", qnn.QActivation(IN_Q)),
                                             ("sep", sep)])).eval()
    config = E.hls4ml_config(model, (1,) + shape, IN_Q)
    entry = config["LayerName"]["sep"]
    p = entry["Precision"]
    assert set(p) == {"depthwise", "pointwise", "bias", "dw_output", "accum", "result"}
    assert p["depthwise"] == "fixed<4,1>" and p["pointwise"] == "fixed<6,1>"
    assert p["bias"] == "fixed<8,4>" and p["result"] == p["accum"]
    assert entry["ReuseFactor"] == 1
    x = grid_inputs(shape, n=64)
    with torch.no_grad():
        d = sep.depthwise(x)
        y = sep(x)
    assert holds(p["dw_output"], d), p["dw_output"]
    assert holds(p["accum"], y), p["accum"]
    stats = heteroq.cost.qstats(model, (1,) + shape, IN_Q)
    assert accumulator_consistent(p["accum"], stats.layer("sep").accumulator)


@pytest.mark.parametrize("kwargs", [dict(stride=2, padding=1, output_padding=1),
                                    dict(stride=1, padding=0)])
def test_conv_transpose_precisions(kwargs):
    torch.manual_seed(2)
    ct = qnn.QConvTranspose2d(3, 4, 3, kernel_quantizer=Q6, bias_quantizer=Q6, **kwargs)
    model = torch.nn.Sequential(OrderedDict([("act", qnn.QActivation(IN_Q)),
                                             ("ct", ct)])).eval()
    config = E.hls4ml_config(model, (1, 3, 5, 5), IN_Q)
    p = config["LayerName"]["ct"]["Precision"]
    assert p["weight"] == "fixed<6,1>" and p["bias"] == "fixed<6,1>"
    assert p["result"] == p["accum"]
    assert parse_type(p["accum"])[3] == 4 + 5  # the input's 4 fractional bits + the weight's 5
    x = grid_inputs((3, 5, 5), n=64)
    with torch.no_grad():
        assert holds(p["accum"], ct(x))
    stats = heteroq.cost.qstats(model, (1, 3, 5, 5), IN_Q)
    assert accumulator_consistent(p["accum"], stats.layer("ct").accumulator)


def test_pooling_precisions():
    model = torch.nn.Sequential(OrderedDict([
        ("act", qnn.QActivation("quantized_relu(6,2)")),
        ("avg", qnn.QAvgPool2d(2, average_quantizer="quantized_bits(8,0,alpha=1)")),
        ("avg_act", qnn.QAvgPool2d(2, activation="quantized_relu(8,3)")),
        ("max", torch.nn.MaxPool2d(2)),
        ("gap", qnn.QGlobalAvgPool2d(average_quantizer="quantized_bits(10,0,alpha=1)")),
    ])).eval()
    config = E.hls4ml_config(model, (1, 2, 8, 8), "quantized_relu(6,2)")
    layers = config["LayerName"]
    p = layers["avg"]["Precision"]
    x = grid_inputs((2, 8, 8), "quantized_relu(6,2)", n=32)
    with torch.no_grad():
        sums = torch.nn.functional.avg_pool2d(x, 2) * 4
        y = model.avg(x)
    assert holds(p["accum"], sums) and p["accum"] == "ufixed<8,4>"  # 4 values < 4 each: < 16
    assert holds(p["result"], y)
    assert layers["avg_act"]["Precision"]["result"] == "ufixed<8,3,RND_CONV,SAT>"
    # The maximum of quantized_relu(8,3) values is one of them.
    assert layers["max"]["Precision"] == {"result": "ufixed<8,3,RND_CONV,SAT>"}
    with torch.no_grad():
        h = model.max(model.avg_act(model.avg(x)))
        g = model.gap(h)
    gp = layers["gap"]["Precision"]
    assert holds(gp["accum"], h.sum(dim=(2, 3))) and holds(gp["result"], g)
    # Without an average quantizer the average is a float division: not derived.
    plain = E.hls4ml_config(torch.nn.Sequential(qnn.QActivation(IN_Q), qnn.QAvgPool2d(3)),
                            (1, 1, 6, 6), IN_Q)
    assert plain["LayerName"]["1"]["Precision"]["result"] == "fixed<16,6>"


@pytest.mark.parametrize("spec", ["quantized_po2(4)", "quantized_relu_po2(4,2)"])
def test_po2_activations_are_refused_by_name(spec):
    model = torch.nn.Sequential(qnn.QDense(4, 4, kernel_quantizer=Q6), qnn.QActivation(spec))
    with pytest.raises(ValueError, match=r"layer '1' \(QActivation\).*log domain"):
        E.hls4ml_config(model)
    # hls4ml_type still gives hls4ml's own rule for the quantizer (_get_precision_from_quantizer).
    assert re.fullmatch(r"u?(fixed|int)<.*>", E.hls4ml_type(spec))


@pytest.mark.parametrize("spec, expected", [
    ("quantized_tanh(6)", "fixed<6,1,RND_CONV,SAT>"),
    ("quantized_tanh(6,symmetric=1)", "fixed<6,1,RND_CONV,SAT_SYM>"),
    ("quantized_sigmoid(6)", "ufixed<6,0,RND_CONV,SAT>"),
    ("binary()", "int<2>"),
    ("ternary()", "int<2>"),
])
def test_activation_layers_follow_hls4ml(spec, expected):
    model = torch.nn.Sequential(qnn.QDense(4, 4, kernel_quantizer=Q6), qnn.QActivation(spec))
    assert E.hls4ml_config(model)["LayerName"]["1"]["Precision"] == {"result": expected}


def _rnn_values(rnn, x, h):
    """The gates' pre-activation sums W x + U h + b_ih + b_hh of every gate unit."""
    p = rnn.quantized_parameters()
    pre = x @ p["weight_ih_l0"].t() + h @ p["weight_hh_l0"].t()
    if rnn.bias:
        pre = pre + p["bias_ih_l0"] + p["bias_hh_l0"]
    return pre


@pytest.mark.parametrize("cls", [qnn.QSimpleRNN, qnn.QLSTM, qnn.QGRU])
def test_recurrent_precisions(cls):
    torch.manual_seed(3)
    kwargs = dict(kernel_quantizer=Q6, recurrent_quantizer="quantized_bits(4,0,alpha=1)",
                  bias_quantizer="quantized_bits(8,2,alpha=1)",
                  state_quantizer="quantized_bits(8,0,alpha=1)",
                  activation="quantized_tanh(6)")
    rnn = cls(6, 5, **kwargs)
    model = torch.nn.Sequential(OrderedDict([("act", qnn.QActivation(IN_Q)),
                                             ("rnn", rnn)])).eval()
    config = E.hls4ml_config(model, (7, 1, 6), IN_Q)
    entry = config["LayerName"]["rnn"]
    p = entry["Precision"]
    assert p["weight"] == "fixed<6,1>" and p["recurrent_weight"] == "fixed<4,1>"
    assert p["bias"] == p["recurrent_bias"] == "fixed<8,3>"
    assert p["state"] == "fixed<8,1,RND_CONV,SAT>"
    assert entry["ReuseFactor"] == 1
    x = grid_inputs((6,), n=512)
    h = grid_inputs((5,), "quantized_bits(8,0,alpha=1)", n=512)[:x.size(0)]
    with torch.no_grad():
        pre = _rnn_values(rnn, x, h)
    assert holds(p["accum"], pre), p["accum"]
    assert parse_type(p["accum"])[3] == max(4 + 5, 7 + 3, 5)  # x·W, h·U, the biases
    if cls is qnn.QSimpleRNN:  # its output is its activation's value
        assert p["result"] == "fixed<6,1,RND_CONV,SAT>"
        with torch.no_grad():
            out, _ = rnn(x.reshape(-1, 1, 6)[:20])
        assert holds(p["result"].split(",RND")[0] + ">", out)
    else:  # the LSTM's h = o * act(c) with a float recurrent activation; the GRU's mix
        assert p["result"] == "fixed<16,6>"


def test_lstm_result_is_the_exact_product():
    """With quantizers for both activations, h = o * act(c) has the product's exact type."""
    torch.manual_seed(6)
    lstm = qnn.QLSTM(4, 3, kernel_quantizer=Q6, recurrent_quantizer=Q6, bias_quantizer=Q6,
                     state_quantizer="quantized_bits(8,2,alpha=1)",
                     activation="quantized_tanh(5)", recurrent_activation="quantized_sigmoid(4)")
    model = torch.nn.Sequential(qnn.QActivation(IN_Q), lstm).eval()
    p = E.hls4ml_config(model, (6, 1, 4), IN_Q)["LayerName"]["1"]["Precision"]
    assert p["result"] == "fixed<9,1>"  # [-1, 1] products of 4 + 4 fractional bits
    with torch.no_grad():
        out, _ = lstm(heteroq.get_quantizer(IN_Q)(torch.randn(30, 8, 4) * 6))
    assert holds(p["result"], out)
    assert len(torch.unique(out)) > 10


def test_recurrent_errors_name_the_layer():
    with pytest.raises(ValueError, match=r"layer '0' \(LSTM\).*float recurrent"):
        E.hls4ml_config(torch.nn.Sequential(torch.nn.LSTM(4, 3)), (5, 1, 4))
    stacked = qnn.QLSTM(4, 3, num_layers=2, kernel_quantizer=Q6)
    with pytest.raises(ValueError, match=r"layer '0' \(QLSTM\).*num_layers=2"):
        E.hls4ml_config(torch.nn.Sequential(stacked), (5, 1, 4))
    # Without a state quantizer the recurrent sums have no fixed-point type.
    free = qnn.QSimpleRNN(4, 3, kernel_quantizer=Q6, recurrent_quantizer=Q6)
    p = E.hls4ml_config(torch.nn.Sequential(free), (5, 1, 4), IN_Q)["LayerName"]["0"]["Precision"]
    assert p["accum"] == "fixed<16,6>" and "state" not in p


def test_every_accumulator_agrees_with_qstats():
    """Across a CNN with every convolution kind and dense layers: each layer's accum is
    qstats's accumulator (bits + sign) with the product's fractional bits, and agrees with
    QTools's accumulator types."""
    torch.manual_seed(4)
    model = torch.nn.Sequential(OrderedDict([
        ("act0", qnn.QActivation(IN_Q)),
        ("conv", qnn.QConv2d(2, 4, 3, padding=1, kernel_quantizer=Q6, bias_quantizer=Q6)),
        ("act1", qnn.QActivation("quantized_relu(6,2)")),
        ("sep", qnn.QSeparableConv2d(4, 4, 3, padding=1, depthwise_quantizer=Q6,
                                     pointwise_quantizer=Q6, bias_quantizer=Q6)),
        ("act2", qnn.QActivation("quantized_bits(8,2,alpha=1)")),
        ("ct", qnn.QConvTranspose2d(4, 2, 2, stride=2, kernel_quantizer=Q6, bias_quantizer=Q6)),
        ("act3", qnn.QActivation("quantized_relu(6,2)")),
        ("flat", torch.nn.Flatten()),
        ("fc", qnn.QDense(2 * 12 * 12, 3, kernel_quantizer=Q6, bias_quantizer=Q6)),
    ])).eval()
    shape = (1, 2, 6, 6)
    config = E.hls4ml_config(model, shape, IN_Q)
    stats = heteroq.cost.qstats(model, shape, IN_Q)
    checked = 0
    for name in ("conv", "sep", "ct", "fc"):
        acc = stats.layer(name).accumulator
        assert acc is not None
        assert accumulator_consistent(config["LayerName"][name]["Precision"]["accum"], acc), name
        checked += 1
    assert checked == 4
    # QTools's data types (heteroq.cost.data_types): the same fractional bits; QTools's integer
    # bits (its fan-in bound, sign excluded) are never fewer than the exact range's.
    types = heteroq.cost.data_types(model, shape, source_quantizer=IN_Q)
    stages = 0
    for layer in types.layers:
        for stage in layer.stages:
            p = config["LayerName"][layer.name]["Precision"]
            ours = p["dw_output"] if stage.part == "depthwise" else p["accum"]
            signed, width, integer, frac = parse_type(ours)
            qt = stage.accumulator
            assert frac == qt.bits - qt.int_bits - int(qt.signed), (layer.name, stage.part)
            assert integer - 1 <= qt.int_bits, (layer.name, stage.part)
            stages += 1
    assert stages == 5  # conv, sep (depthwise, pointwise), ct, fc
