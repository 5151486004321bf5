# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""print_qstats: QKeras's operand modes, operation table and names; operation counts, weight bits,
totals and accumulator ranges of small models against values computed here from the formulas;
errors; the same numbers as C++ (tests/cpp/test_qstats.cpp builds the same models)."""
import dataclasses
import io
import json
import math
import os
import pathlib
import re
import subprocess

import pytest
import torch

import heteroq
from heteroq import cost
from heteroq.nn import (QGRU, QLSTM, QActivation, QAvgPool2d, QBatchNorm1d, QBatchNorm2d, QConv1d,
                        QConv2d, QConv2dBatchNorm, QConvTranspose2d, QDense, QDepthwiseConv2d,
                        QGlobalAvgPool2d, QLinearBatchNorm, QSeparableConv1d, QSeparableConv2d,
                        QSimpleRNN)

W6 = "quantized_bits(6,0,alpha=1)"
W4 = "quantized_bits(4,0,alpha=1)"
B8 = "quantized_bits(8,3,alpha=1)"


# ---- deterministic parameters, the same formula in tests/cpp/test_qstats.cpp ----

def pattern(n, a, b, m, offset, scale, shift=0.0):
    f = torch.arange(n, dtype=torch.long)
    return ((f * a + b).remainder(m) - offset).float() / scale + shift


def fill_deterministic(model):
    """By the last component of the tensor's name: weights in {-6..6}/8, biases in {-3..3}/16,
    batch-norm statistics positive where they must be; a recurrent layer's weight_ih_l0,
    bias_hh_l1, ... shifted by the parameter's index k, so that no two are equal."""
    roles = {"weight": (7, 3, 13, 6, 8, 0.0), "bias": (5, 1, 7, 3, 16, 0.0),
             "beta": (5, 1, 7, 3, 16, 0.0), "gamma": (3, 0, 5, 0, 4, 0.5),
             "running_mean": (1, 0, 5, 2, 4, 0.0), "running_var": (1, 0, 3, 0, 4, 0.5)}
    with torch.no_grad():
        for k, (name, t) in enumerate(model.named_parameters()):
            role = name.rsplit(".", 1)[-1]
            if role.startswith("weight_"):
                t.copy_(pattern(t.numel(), 7, 3 + k, 13, 6, 8).reshape(t.shape))
            elif role.startswith("bias_"):
                t.copy_(pattern(t.numel(), 5, 1 + k, 7, 3, 16).reshape(t.shape))
        for name, t in list(model.named_parameters()) + list(model.named_buffers()):
            role = name.rsplit(".", 1)[-1]
            if role in roles:
                t.copy_(pattern(t.numel(), *roles[role]).reshape(t.shape))
    return model


# ---- the three models, built identically in tests/cpp/test_qstats.cpp ----

def jet_mlp():
    """QKeras's jet-tagging MLP 16-64-32-32-5."""
    layers = []
    sizes = [(16, 64), (64, 32), (32, 32), (32, 5)]
    for i, (n_in, n_out) in enumerate(sizes):
        layers.append(QDense(n_in, n_out, kernel_quantizer=W6, bias_quantizer=W6))
        if i + 1 < len(sizes):
            layers.append(QActivation("quantized_relu(6)"))
    return fill_deterministic(torch.nn.Sequential(*layers))


def small_cnn():
    return fill_deterministic(torch.nn.Sequential(
        QConv2d(3, 8, 3, padding=1, kernel_quantizer=W4, bias_quantizer=B8),
        QBatchNorm2d(8, gamma_quantizer="quantized_relu_po2(6,2048)",
                     beta_quantizer="quantized_po2(5)"),
        QActivation("quantized_relu(4,2)"),
        QDepthwiseConv2d(8, 3, depth_multiplier=2, depthwise_quantizer=W4, bias_quantizer=B8),
        QActivation(W4),
        QSeparableConv2d(16, 12, 3, depthwise_quantizer=W4, pointwise_quantizer=W6,
                         bias_quantizer=B8),
        QActivation("quantized_relu(6,0)"),
        QAvgPool2d(2, average_quantizer="quantized_bits(8,0,alpha=1)",
                   activation="quantized_relu(4,0)"),
        torch.nn.MaxPool2d(2),
        QConv2dBatchNorm(12, 6, 1, kernel_quantizer=W6,
                         bias_quantizer="quantized_bits(10,4,alpha=1)"),
        QGlobalAvgPool2d(), torch.nn.Linear(6, 3)))


def po2_mix():
    """Powers of two, ternary and binary operands (QKeras's wx_table off the diagonal)."""
    return fill_deterministic(torch.nn.Sequential(
        QDense(8, 16, kernel_quantizer="quantized_po2(4,1)", bias_quantizer="quantized_po2(4,8)"),
        QActivation("quantized_relu_po2(4,4)"),
        QDense(16, 16, kernel_quantizer="ternary(alpha=1)"),
        QActivation("binary(alpha=1)"),
        QDense(16, 8, kernel_quantizer="binary(alpha=1)"),
        QActivation("quantized_po2(4)"),
        QDense(8, 4, kernel_quantizer="quantized_po2(4,1)"),
        QActivation("quantized_relu(1,1)"),
        QDense(4, 4, kernel_quantizer="quantized_bits(2,1,alpha=1)"),
        QActivation("quantized_bits(4,2,alpha=1)"),
        QDense(4, 2)))  # float weights


def one_d():
    """The 1-D and dense variants: QConv1d, QBatchNorm1d, QSeparableConv1d, QLinearBatchNorm."""
    return fill_deterministic(torch.nn.Sequential(
        QConv1d(2, 4, 3, kernel_quantizer=W4, bias_quantizer=B8),
        QBatchNorm1d(4, inverse_quantizer="quantized_bits(8,3,alpha=1)"),
        QActivation("quantized_relu(4,1)"),
        QSeparableConv1d(4, 6, 3, depth_multiplier=2, depthwise_quantizer="quantized_po2(4,1)",
                         pointwise_quantizer=W4),
        QActivation("ternary(alpha=1)"), torch.nn.Flatten(),
        QLinearBatchNorm(36, 3, kernel_quantizer=W6, bias_quantizer=B8)))


# ---- recurrent models, built identically in tests/cpp/test_qstats.cpp ----

STATE = "quantized_bits(8,2,alpha=1)"


class FirstOutput(torch.nn.Sequential):
    """A Sequential that passes a recurrent layer's output sequence on, as the C++ walk does."""

    def forward(self, x):
        for m in self:
            x = m(x)
            if isinstance(x, tuple):
                x = x[0]
        return x


def lstm_model():
    """QLSTM 8 -> 16 on (L, N, 8), no state quantizer: its recurrence and output are float."""
    return fill_deterministic(FirstOutput(
        QLSTM(8, 16, kernel_quantizer=W6, recurrent_quantizer=W4, bias_quantizer=B8),
        QActivation("quantized_relu(4)")))


def gru_model():
    """A bidirectional 2-layer QGRU 4 -> 6 (x 2) on (N, L, 4) with a state quantizer, then a head
    on every step."""
    return fill_deterministic(FirstOutput(
        QGRU(4, 6, num_layers=2, bidirectional=True, batch_first=True, kernel_quantizer=W6,
             recurrent_quantizer=W4, bias_quantizer=B8, state_quantizer=STATE),
        QActivation("quantized_relu(4)"), QDense(12, 3, kernel_quantizer=W6)))


def rnn_model():
    """QSimpleRNN 6 -> 10 on (L, N, 6) without bias: its state and output have its activation's
    type."""
    return fill_deterministic(FirstOutput(
        QSimpleRNN(6, 10, bias=False, kernel_quantizer=W6, recurrent_quantizer=W4,
                   activation="quantized_tanh(6)"),
        QActivation("quantized_relu(4)")))


# ---- expectations from the formulas ----

def q(spec, t):
    return heteroq.get_quantizer(spec).eval()(t)


def relu_top(bits):
    """quantized_relu(bits, 0): values k 2^-bits, k = 0 .. 2^bits - 1."""
    return 1.0 - 2.0 ** -bits


def expected_accumulator(w, b, lo, hi):
    """Per output channel max = sum_{w>0} w hi + sum_{w<0} w lo + b (min symmetric), the input
    range widened to contain 0."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    k = w.double().reshape(w.shape[0], -1)
    p, n = k.clamp(min=0).sum(1), k.clamp(max=0).sum(1)
    c = b.double() if b is not None else torch.zeros_like(p)
    top = (p * hi + n * lo + c).max().item()
    bottom = (p * lo + n * hi + c).min().item()
    return cost.AccumulatorStats(bottom, top, math.ceil(math.log2(max(abs(bottom), abs(top)))))


def ops(layer):
    return [(o.part, o.name, o.count) for o in layer.operations]


# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec,mode,bits,signed", [
    ("quantized_bits(6,0,alpha=1)", 0, 6, True),
    ("quantized_bits(4,0,alpha='auto_po2')", 0, 4, True),
    ("quantized_bits(2,1)", 2, 2, True),
    ("quantized_bits(2,1,0,0)", 0, 2, False),  # keep_negative=0: unsigned
    ("quantized_bits(4,2,0,0)", 0, 4, False),
    ("quantized_relu(6)", 0, 6, False),
    ("quantized_relu(1,1)", 4, 1, False),
    ("quantized_relu(4,0,0,0.25)", 0, 4, True),  # negative slope: signed
    ("quantized_tanh(4)", 0, 4, True),
    ("quantized_ulaw(2,1)", 2, 2, True),
    ("quantized_ulaw(8)", 0, 8, True),
    ("quantized_sigmoid(4)", 0, 4, False),
    ("quantized_hswish(5)", 0, 5, True),
    ("quantized_po2(4)", 1, 4, True),
    ("quantized_relu_po2(4)", 1, 4, False),
    ("quantized_relu_po2(4,None,0.5)", 1, 4, True),
    ("binary", 3, 1, True),
    ("binary(1)", 4, 1, False),  # use_01
    ("stochastic_binary", 3, 1, True),
    ("bernoulli", 4, 1, False),
    ("ternary", 2, 2, True),
    ("stochastic_ternary(alpha='auto')", 2, 2, True),
    (None, 5, 32, True),
])
def test_operand_types_as_qkeras(spec, mode, bits, signed):
    t = cost.operand_type(spec)
    assert t == cost.Operand(mode, bits, signed)
    assert cost.operand_type(heteroq.get_quantizer(spec)) == t


def test_operation_type_table_is_qkeras():
    # QKeras estimate.py, get_operation_type: wx_table[weight mode][input mode].
    table = [["mult", "barrel", "mux", "mux", "mux", "fmult"],
             ["barrel", "adder", "mux", "xor", "mux", "fmult"],
             ["mux", "mux", "mux", "mux", "xor", "fmult"],
             ["mux", "xor", "mux", "xor", "xor", "fmult"],
             ["mux", "mux", "xor", "xor", "xor", "fmult"],
             ["fmult"] * 6]
    assert [[cost.op_type(w, x) for x in range(6)] for w in range(6)] == table
    with pytest.raises(ValueError, match="mode"):
        cost.op_type(6, 0)


def test_operation_names():
    w6, x8 = cost.Operand(0, 6, True), cost.Operand(0, 8, False)
    assert cost.operation_name(w6, x8) == "smult_6_8"
    assert cost.operation_name(cost.Operand(0, 4, False), cost.Operand(0, 4, False)) == "umult_4_4"
    assert cost.operation_name(cost.Operand(1, 4, True), x8) == "sbarrel_4_8"
    assert cost.operation_name(w6, cost.Operand(5, 32, True)) == "sfmult_6_32"
    # An unknown input: QKeras's "null", bits -1, sign -1 (google/qkeras#39: unull_4_-1).
    assert cost.operation_name(cost.Operand(0, 4, True), None) == "unull_4_-1"
    assert cost.Operand(4, 1, False).mode_name == "binary01"


def test_jet_mlp_counts_bits_and_accumulators():
    model = jet_mlp()
    s = cost.qstats(model, (1, 16))
    assert [l.name for l in s.layers] == [str(i) for i in range(7)]
    dense = [("0", 16, 64, "smult_6_8"), ("2", 64, 32, "smult_6_6"), ("4", 32, 32, "smult_6_6"),
             ("6", 32, 5, "smult_6_6")]
    for name, n_in, n_out, op in dense:
        layer = s.layer(name)
        assert (layer.type, layer.kind) == ("QLinear", "dense")
        assert ops(layer) == [("", op, n_in * n_out)]
        assert layer.operations[0].type == "mult"
        assert layer.weights == [
            cost.WeightStats("weights", n_in * n_out, 6, "quantized_bits(6,0,0,alpha=1.0)"),
            cost.WeightStats("bias", n_out, 6, "quantized_bits(6,0,0,alpha=1.0)")]
        assert layer.parameters == n_in * n_out + n_out
    assert s.total_bits == sum(6 * (i * o + o) for _, i, o, _ in dense) == 6 * 4389
    assert s.total_parameters == sum(p.numel() for p in model.parameters())
    assert s.operation_totals == {"smult_6_6": 64 * 32 + 32 * 32 + 32 * 5, "smult_6_8": 16 * 64}
    assert list(s.operation_totals) == sorted(s.operation_totals)
    assert s.total_operations == sum(s.operation_totals.values())

    # Types propagate: activations follow each QDense, whose output is float.
    assert s.layer("0").input_quantizer == "quantized_relu(8,0)"
    assert s.layer("1").input_quantizer is None and s.layer("1").input == cost.Operand(5, 32, True)
    assert s.layer("2").input_quantizer == "quantized_relu(6,0)"
    assert s.layer("2").input == cost.Operand(0, 6, False)
    assert s.layer("3").quantizers == {"activation": "quantized_relu(6,0)"}

    # Accumulators: inputs in [0, 255/256] (quantized_relu(8,0)), then [0, 63/64].
    for name, n_in, n_out, _ in dense:
        fc = model[int(name)]
        hi = relu_top(8 if name == "0" else 6)
        qw, qb = q(W6, fc.weight), q(W6, fc.bias)
        e = expected_accumulator(qw, qb, 0.0, hi)
        assert s.layer(name).accumulator == e
        # The maximum is reached: x = hi where the kernel is positive.
        x = torch.where(qw > 0, torch.full_like(qw, hi), torch.zeros_like(qw))
        with torch.no_grad():
            assert torch.nn.functional.linear(x, qw, qb).diagonal().max().item() == \
                pytest.approx(e.max, abs=1e-6)

    # Counts are per sample.
    s8 = cost.qstats(model, [8, 16])
    assert (s8.operation_totals, s8.total_bits) == (s.operation_totals, s.total_bits)


def test_print_qstats_prints_qkeras_tables(capsys):
    stats = cost.print_qstats(jet_mlp(), (1, 16))
    out = capsys.readouterr().out
    assert out == str(stats) == stats.table
    # QKeras's layout: "    {:30}: {:5} ({})", the count as a string (left-aligned).
    assert ("Number of operations in model:\n"
            "    0                             : 1024  (smult_6_8)\n") in out
    assert ("Number of operation types in model:\n"
            "    smult_6_6                     : 3232\n") in out
    assert "    0_weights                      : 1024  (6-bit unit)\n" in out
    assert "    Total Bits                     : 26334\n" in out
    assert "    Total Parameters               :  4389\n" in out
    assert "        kernel_quantizer = quantized_bits(6,0,0,alpha=1.0)\n" in out
    buf = io.StringIO()
    cost.print_qstats(jet_mlp(), (1, 16), file=buf)
    assert buf.getvalue() == out


def test_small_cnn_conv_depthwise_separable_pooling_folded():
    model = small_cnn()
    s = cost.qstats(model, (2, 3, 12, 12))
    assert len(s.layers) == 12
    # QConv2d 3->8, 3x3, padding 1 on 12x12: Ho Wo Co Kh Kw Ci.
    assert ops(s.layer("0")) == [("", "smult_4_8", 12 * 12 * 8 * 3 * 3 * 3)]
    # The batch norm and the activation pass on; the depthwise conv sees quantized_relu(4,2).
    bn = s.layer("1")
    assert bn.input_quantizer is None and bn.operations == [] and bn.parameters == 16
    assert list(bn.quantizers) == ["gamma_quantizer", "beta_quantizer", "mean_quantizer",
                                   "variance_quantizer", "inverse_quantizer"]
    assert bn.quantizers["gamma_quantizer"] == "quantized_relu_po2(6,2048.0)"
    assert bn.quantizers["mean_quantizer"] is None
    # QDepthwiseConv2d 8 channels x 2, 3x3 on 12x12 -> 10x10: Kh Kw Ho Wo Ci dm.
    dw = s.layer("3")
    assert dw.type == "QDepthwiseConv2d" and list(dw.quantizers)[0] == "depthwise_quantizer"
    assert ops(dw) == [("", "smult_4_4", 3 * 3 * 10 * 10 * 8 * 2)]
    assert [(w.name, w.count, w.bits) for w in dw.weights] == [("weights", 16 * 9, 4),
                                                                ("bias", 16, 8)]
    # QSeparableConv2d 16 -> 12, 3x3 on 10x10 -> 8x8: depthwise Kh Kw Ho Wo Ci, pointwise
    # Ho Wo Co Ci; both take the layer's input type (QKeras).
    sep = s.layer("5")
    assert ops(sep) == [("depthwise", "smult_4_4", 3 * 3 * 8 * 8 * 16),
                        ("pointwise", "smult_6_4", 8 * 8 * 12 * 16)]
    assert [(w.name, w.count, w.bits) for w in sep.weights] == [
        ("weights_0", 16 * 9, 4), ("weights_1", 12 * 16, 6), ("bias", 12, 8)]
    assert sep.parameters == 16 * 9 + 12 * 16 + 12
    # QAvgPool2d's activation quantizer types its output, MaxPool2d passes it to the folded conv.
    assert s.layer("7").input_quantizer == "quantized_relu(6,0)"
    assert s.layer("8").input_quantizer == "quantized_relu(4,0)"
    assert s.layer("8").type == "MaxPool2d"
    folded = s.layer("9")
    assert ops(folded) == [("", "smult_6_4", 2 * 2 * 6 * 12)]
    assert (folded.weights[1].count, folded.weights[1].bits) == (6, 10)  # the folded bias
    assert folded.parameters == 6 * 12 + 6 + 6 + 6
    assert s.layer("10").output_shape == [2, 6]
    assert ops(s.layer("11")) == [("", "sfmult_32_32", 18)]
    assert s.layer("11").accumulator is None and s.layer("11").weights[0].bits == 32
    assert s.total_bits == sum(w.count * w.bits for l in s.layers for w in l.weights)
    assert s.total_bits == (216 * 4 + 8 * 8 + 144 * 4 + 16 * 8 + 144 * 4 + 192 * 6 + 12 * 8 +
                            72 * 6 + 6 * 10 + 18 * 32 + 3 * 32)
    assert s.total_parameters == sum(p.numel() for p in model.parameters())

    # Accumulators.
    conv = model[0]
    assert s.layer("0").accumulator == expected_accumulator(q(W4, conv.weight), q(B8, conv.bias),
                                                            0.0, relu_top(8))
    # quantized_relu(4,2): step 2^(2-4), top 4 - 1/4.
    assert dw.accumulator == expected_accumulator(q(W4, model[3].weight), q(B8, model[3].bias),
                                                  0.0, 3.75)
    fw, fb = model[9].get_folded_weights()
    assert folded.accumulator == expected_accumulator(
        q(W6, fw), q("quantized_bits(10,4,alpha=1)", fb), 0.0, relu_top(4))
    # Separable: depthwise channel j lies in [lo_j, hi_j] for inputs in [-1, 7/8]
    # (quantized_bits(4,0)); the pointwise sums take each channel's extreme by the weight's sign.
    dk = q(W4, model[5].depthwise.weight).double().reshape(16, 9)
    lo_j = dk.clamp(min=0).sum(1) * -1.0 + dk.clamp(max=0).sum(1) * 0.875
    hi_j = dk.clamp(min=0).sum(1) * 0.875 + dk.clamp(max=0).sum(1) * -1.0
    pk = q(W6, model[5].pointwise.weight).double().reshape(12, 16)
    pb = q(B8, model[5].pointwise.bias).double()
    top = (torch.maximum(pk * hi_j, pk * lo_j).sum(1) + pb).max().item()
    bottom = (torch.minimum(pk * hi_j, pk * lo_j).sum(1) + pb).min().item()
    assert sep.accumulator.max == pytest.approx(top, abs=1e-9)
    assert sep.accumulator.min == pytest.approx(bottom, abs=1e-9)
    assert sep.accumulator.bits == math.ceil(math.log2(max(abs(top), abs(bottom))))


def test_po2_ternary_binary_mix():
    model = po2_mix()
    s = cost.qstats(model, (1, 8))
    assert {name: ops(s.layer(name)) for name in ("0", "2", "4", "6", "8", "10")} == {
        "0": [("", "sbarrel_4_8", 8 * 16)],   # po2 x fixed
        "2": [("", "smux_2_4", 16 * 16)],     # ternary x po2 (relu_po2: unsigned)
        "4": [("", "sxor_1_1", 16 * 8)],      # binary x binary
        "6": [("", "sadder_4_4", 8 * 4)],     # po2 x po2
        "8": [("", "sxor_2_1", 4 * 4)],       # quantized_bits(2,1) (ternary) x relu(1,1) (0/1)
        "10": [("", "sfmult_32_4", 4 * 2)],   # float weights
    }
    assert s.layer("0").weights[1].bits == 4
    assert [w.bits for w in s.layer("2").weights] == [2, 32]  # no bias quantizer
    assert s.layer("4").weights[0].bits == 1 and s.layer("10").weights[0].bits == 32
    assert len(s.operation_totals) == 6
    # quantized_relu_po2(4,4): values 2^e capped at 4 (its grid's codes reach 2^7).
    assert s.layer("2").accumulator == expected_accumulator(
        q("ternary(alpha=1)", model[2].weight), model[2].bias, 0.0, 4.0)
    assert s.layer("4").accumulator == expected_accumulator(
        q("binary(alpha=1)", model[4].weight), model[4].bias, -1.0, 1.0)
    # quantized_po2(4) (max_value None): exponents up to 3.
    assert s.layer("6").accumulator == expected_accumulator(
        q("quantized_po2(4,1)", model[6].weight), model[6].bias, -8.0, 8.0)
    # Float weights still bound the accumulator (inputs quantized_bits(4,2): [-4, 3.5]).
    assert s.layer("10").accumulator == expected_accumulator(model[10].weight, model[10].bias,
                                                             -4.0, 3.5)


def test_one_dimensional_and_folded_dense():
    model = one_d()
    s = cost.qstats(model, (1, 2, 10))
    # QConv1d 2 -> 4, k 3 on 10 -> 8: To Co K Ci.
    assert ops(s.layer("0")) == [("", "smult_4_8", 8 * 4 * 3 * 2)]
    assert s.layer("1").quantizers["inverse_quantizer"] == "quantized_bits(8,3,0,alpha=1.0)"
    # QSeparableConv1d 4 (x 2) -> 6, k 3 on 8 -> 6: depthwise K To Ci dm, pointwise To Co Ci dm;
    # po2 weights on quantized_relu(4,1) inputs: barrel shifts, then multiplies.
    sep = s.layer("3")
    assert ops(sep) == [("depthwise", "sbarrel_4_4", 3 * 6 * 4 * 2),
                        ("pointwise", "smult_4_4", 6 * 6 * 4 * 2)]
    assert [(w.count, w.bits) for w in sep.weights] == [(8 * 3, 4), (6 * 8, 4), (6, 32)]
    # QLinearBatchNorm 36 -> 3 on ternary inputs: the folded kernel and bias.
    fc = s.layer("6")
    assert fc.kind == "dense" and ops(fc) == [("", "smux_6_2", 36 * 3)]
    assert (fc.weights[1].count, fc.weights[1].bits) == (3, 8)
    assert fc.parameters == 36 * 3 + 3 + 3 + 3
    fw, fb = model[6].get_folded_weights()
    assert fc.accumulator == expected_accumulator(q(W6, fw), q(B8, fb), -1.0, 1.0)
    assert s.total_parameters == sum(p.numel() for p in model.parameters())


def test_adaptive_activation_types_its_output():
    act = heteroq.nn.QAdaptiveActivation("quantized_relu", 6, per_channel=True, num_channels=3)
    model = torch.nn.Sequential(QDense(4, 3, kernel_quantizer=W6), act,
                                QDense(3, 2, kernel_quantizer=W4))
    with torch.no_grad():
        act.integer_bits.copy_(torch.tensor([0, 2, 1]))
    s = cost.qstats(model, (1, 4))
    assert s.layer("1").kind == "activation"
    # The widest channel's quantizer: quantized_relu(6,2), values up to 4 - 2^-4.
    assert s.layer("2").input_quantizer == act.quantizer(1).to_string()
    assert ops(s.layer("2")) == [("", "smult_4_6", 6)]
    assert s.layer("2").accumulator == expected_accumulator(q(W4, model[2].weight),
                                                            model[2].bias, 0.0, 4.0 - 1 / 16)


def test_a_quantizer_module_is_an_activation():
    model = torch.nn.Sequential(QDense(4, 3, kernel_quantizer=W6), heteroq.quantized_relu(5),
                                QDense(3, 2, kernel_quantizer=W6))
    s = cost.qstats(model, (1, 4))
    assert (s.layer("1").type, s.layer("1").kind) == ("quantized_relu", "activation")
    assert ops(s.layer("2")) == [("", "smult_6_5", 6)]


class Double(torch.nn.Module):
    def forward(self, x):
        return x * 2


def test_float_and_unknown_inputs():
    model = torch.nn.Sequential(QDense(4, 3, kernel_quantizer=W6), Double(),
                                QDense(3, 2, kernel_quantizer="quantized_bits(4,0)"),
                                QActivation("quantized_relu(3)"), torch.nn.Flatten(),
                                torch.nn.Dropout(0.5), QDense(2, 2, kernel_quantizer=W6))
    # A float input (no quantizer): QKeras's mode 5.
    s = cost.qstats(model, (1, 4), input_quantizer=None)
    assert ops(s.layer("0")) == [("", "sfmult_6_32", 12)]
    assert s.layer("0").operations[0].type == "fmult" and s.layer("0").accumulator is None
    # After a layer heteroq does not know (no parameters), the type is unknown: "null".
    assert s.layer("1").type == "Double"
    assert s.layer("2").input is None and s.layer("2").input_quantizer is None
    assert ops(s.layer("2")) == [("", "unull_4_-1", 6)]
    assert s.layer("2").operations[0].type is None and s.layer("2").accumulator is None
    # Flatten and Dropout pass quantized_relu(3) on.
    assert ops(s.layer("6")) == [("", "smult_6_3", 4)]
    assert "input unknown" in s.table
    # A user-given input quantizer (object or spec).
    for iq in ("quantized_bits(4,2,alpha=1)", heteroq.quantized_bits(4, 2, alpha=1)):
        s2 = cost.qstats(model, (1, 4), input_quantizer=iq)
        assert ops(s2.layer("0")) == [("", "smult_6_4", 12)]
        assert s2.layer("0").accumulator == expected_accumulator(
            q(W6, model[0].weight), model[0].bias, -4.0, 3.5)


class Scale(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, x):
        return x * self.w


class OwnParameters(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = QDense(4, 4)
        self.gain = torch.nn.Parameter(torch.ones(4))

    def forward(self, x):
        return self.fc(x) * self.gain


def test_bad_input_raises_naming_the_layer():
    mlp = torch.nn.Sequential(QDense(16, 4, kernel_quantizer=W6), Scale())
    with pytest.raises(ValueError, match=r"layer '1' \(Scale\).*not supported"):
        cost.qstats(mlp, (1, 16))
    with pytest.raises(ValueError, match=r"layer '0' \(QLinear\).*\[1, 15\]"):
        cost.qstats(mlp, (1, 15))
    for shape in ([], [0, 16], [1, -2], [1, 2.0], [True, 16]):
        with pytest.raises(ValueError, match="`input_shape`"):
            cost.qstats(mlp, shape)
    with pytest.raises(TypeError, match="`input_shape`"):
        cost.qstats(mlp, "1,16")
    with pytest.raises(TypeError, match="`model`"):
        cost.qstats("model", (1, 16))
    with pytest.raises(TypeError, match="`input_quantizer`"):
        cost.qstats(mlp, (1, 16), input_quantizer=3)
    with pytest.raises(ValueError):
        cost.qstats(mlp, (1, 16), input_quantizer="quantized_bits(4,")
    # An unbatched input to a convolution (PyTorch runs it, the counts would be wrong).
    with pytest.raises(ValueError, match=r"layer '0' \(QConv1d\).*batch"):
        cost.qstats(torch.nn.Sequential(QConv1d(4, 2, 3, kernel_quantizer=W6)), (4, 20))
    with pytest.raises(ValueError, match=r"parameters of its own \(gain\)"):
        cost.qstats(OwnParameters(), (1, 4))
    # Nothing half-done: the hooks are gone, the training flags back.
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in mlp.modules())
    assert mlp.training and mlp[0].training


def test_transposed_conv_and_torch_layers():
    # (1, 4, 5, 5) -> transposed 3x3 stride 2 -> (1, 6, 11, 11) -> 3x3 -> (1, 5, 9, 9).
    model = fill_deterministic(torch.nn.Sequential(
        QConvTranspose2d(4, 6, 3, stride=2, groups=2, kernel_quantizer=W4),
        QActivation("quantized_relu(4)"), torch.nn.Conv2d(6, 5, 3),
        QActivation("quantized_relu(3)"), torch.nn.Flatten(), torch.nn.Linear(5 * 9 * 9, 3)))
    s = cost.qstats(model, (1, 4, 5, 5))
    # Transposed: every input value times (out / groups) * Kh * Kw kernel values.
    assert s.layer("0").kind == "conv_transpose" and s.layer("0").output_shape == [1, 6, 11, 11]
    assert ops(s.layer("0")) == [("", "smult_4_8", 5 * 5 * 4 * (6 // 2) * 9)]
    assert s.layer("0").weights[0].count == 4 * 3 * 9
    assert ops(s.layer("2")) == [("", "sfmult_32_4", 9 * 9 * 5 * 6 * 9)]
    assert s.layer("4").type == "Flatten"
    assert ops(s.layer("5")) == [("", "sfmult_32_3", 5 * 9 * 9 * 3)]  # Flatten passes relu(3) on
    # Output channel o of group g sums kernel[i, o % 3] over the group's 2 input channels i (an
    # upper bound: not every output sees every tap).
    k = q(W4, model[0].weight)  # (4, 3, 3, 3)
    per_out = torch.cat([k[0:2].transpose(0, 1), k[2:4].transpose(0, 1)], 0)
    assert s.layer("0").accumulator == expected_accumulator(per_out, model[0].bias, 0.0,
                                                            relu_top(8))


class Net(torch.nn.Module):
    """A module tree whose forward is not a Sequential: functional calls in between."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(QConv2d(1, 4, 3, kernel_quantizer=W4),
                                        QActivation("quantized_relu(4)"))
        self.head = QDense(4 * 4 * 4, 3, kernel_quantizer=W6)

    def forward(self, x):
        return self.head(torch.flatten(self.body(x), 1))


def test_any_module_tree_in_execution_order():
    net = fill_deterministic(Net())
    s = cost.qstats(net, (1, 1, 6, 6))
    assert [l.name for l in s.layers] == ["body.0", "body.1", "head"]
    assert ops(s.layer("head")) == [("", "smult_6_4", 64 * 3)]
    seq = torch.nn.Sequential(net.body[0], net.body[1], torch.nn.Flatten(), net.head)
    s2 = cost.qstats(seq, (1, 1, 6, 6))
    assert s2.operation_totals == s.operation_totals and s2.total_bits == s.total_bits
    assert s2.layer("3").accumulator == s.layer("head").accumulator
    # A single layer is a model too.
    one = cost.qstats(QDense(4, 2, kernel_quantizer=W6), (3, 4))
    assert [l.name for l in one.layers] == ["QLinear"]


def test_model_left_unchanged():
    model = small_cnn()
    model.train()
    model[1].eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    cost.qstats(model, (2, 3, 12, 12))
    assert model.training and not model[1].training and model[9].training
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_channel_sums_operator_composes_stages():
    torch.manual_seed(1)
    op = torch.ops.heteroq._qstats_channel_sums
    assert "bool transposed" in str(op.default._schema)
    dw, pw, pb = torch.randn(6, 1, 3, 3), torch.randn(4, 6, 1, 1), torch.randn(4)
    first = op(dw, None, 3, False)
    assert first.shape == (6, 3) and first.dtype == torch.float64
    sums = op(pw, pb, 1, False, first)
    lo, hi = -0.5, 1.5
    x = torch.rand(200, 3, 5, 5) * (hi - lo) + lo
    y = torch.nn.functional.conv2d(torch.nn.functional.conv2d(x, dw, groups=3), pw, pb).double()
    p, n, c = sums.unbind(1)
    assert (y <= (p * hi + n * lo + c).view(1, 4, 1, 1) + 1e-5).all()
    assert (y >= (p * lo + n * hi + c).view(1, 4, 1, 1) - 1e-5).all()
    assert torch.allclose(c, pb.double())
    with pytest.raises(ValueError, match="`weight`"):
        op(torch.randn(4), None, 1, False)
    with pytest.raises(ValueError, match="`bias`"):
        op(dw, torch.randn(5), 3, False)
    with pytest.raises(ValueError, match="`input_sums`"):
        op(pw, None, 1, False, torch.zeros(5, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="`groups`"):
        op(dw, None, 4, False)


# ---- recurrent layers ----

def weights(layer):
    return [(w.name, w.count, w.bits) for w in layer.weights]


def test_lstm_counts_bits_types_and_accumulator():
    model = lstm_model()
    s = cost.qstats(model, (5, 2, 8))  # L = 5, N = 2
    assert len(s.layers) == 2
    layer = s.layer("0")
    assert (layer.type, layer.kind, layer.output_shape) == ("QLSTM", "recurrent", [5, 2, 16])
    # T = 5, G = 4, H = 16, I = 8: the input kernel T G H I on quantized_relu(8,0); the recurrent
    # kernel T G H H on the previous h = o act(c), not quantized (no state quantizer).
    t, g, h, i = 5, 4, 16, 8
    assert ops(layer) == [("kernel", "smult_6_8", t * g * h * i),
                          ("recurrent", "sfmult_4_32", t * g * h * h)]
    assert layer.operations[1].type == "fmult"
    # Weights G H I at 6 bits, G H H at 4, bias_ih and bias_hh G H each at 8.
    assert weights(layer) == [("kernel", g * h * i, 6), ("recurrent", g * h * h, 4),
                              ("bias", 2 * g * h, 8)]
    assert layer.weights[0].quantizer == "quantized_bits(6,0,0,alpha=1.0)"
    assert layer.parameters == g * h * i + g * h * h + 2 * g * h
    assert s.total_bits == 6 * g * h * i + 4 * g * h * h + 8 * 2 * g * h == 8192
    assert s.total_parameters == sum(p.numel() for p in model.parameters())
    # Slots in QKeras's order; the float hard_sigmoid is an empty slot.
    assert layer.quantizers == {
        "kernel_quantizer": "quantized_bits(6,0,0,alpha=1.0)",
        "recurrent_quantizer": "quantized_bits(4,0,0,alpha=1.0)",
        "bias_quantizer": "quantized_bits(8,3,0,alpha=1.0)", "state_quantizer": None,
        "activation": heteroq.get_quantizer("quantized_tanh").to_string(),
        "recurrent_activation": None}
    # The output is float.
    assert s.layer("1").input_quantizer is None and s.layer("1").input == cost.Operand(5, 32, True)
    # The accumulator of the input projection x W_ih^T + b_ih, inputs in [0, 255/256] ...
    lstm = model[0]
    w, b = q(W6, lstm.weight_ih_l0), q(B8, lstm.bias_ih_l0)
    e = expected_accumulator(w, b, 0.0, relu_top(8))
    assert layer.accumulator == e
    # ... reached: x = hi where row o of the kernel is positive.
    x = torch.where(w > 0, torch.full_like(w, relu_top(8)), torch.zeros_like(w))
    with torch.no_grad():
        assert torch.nn.functional.linear(x, w, b).diagonal().max().item() == \
            pytest.approx(e.max, abs=1e-6)
    assert f"    0.kernel                       : {e.bits} bits" in s.table
    assert "    0_recurrent                    : 1024  (4-bit unit)\n" in s.table
    # The counts are per sequence, whatever the batch.
    assert cost.qstats(model, (5, 9, 8)).operation_totals == s.operation_totals


def test_bidirectional_two_layer_gru_with_state_quantizer():
    model = gru_model()
    s = cost.qstats(model, (3, 7, 4))  # batch_first: N = 3, L = 7
    layer = s.layer("0")
    assert (layer.type, layer.output_shape) == ("QGRU", [3, 7, 12])
    # D = 2, T = 7, G = 3, H = 6, I = 4; layer 1 reads both directions of layer 0 (D H = 12
    # features, float: the GRU's output); every recurrence reads Qs(h), quantized_bits(8,2).
    d, t, g, h, i = 2, 7, 3, 6, 4
    assert ops(layer) == [("kernel_l0", "smult_6_8", d * t * g * h * i),
                          ("recurrent_l0", "smult_4_8", d * t * g * h * h),
                          ("kernel_l1", "sfmult_6_32", d * t * g * h * d * h),
                          ("recurrent_l1", "smult_4_8", d * t * g * h * h)]
    assert weights(layer) == [("kernel_l0", d * g * h * i, 6), ("recurrent_l0", d * g * h * h, 4),
                              ("kernel_l1", d * g * h * d * h, 6),
                              ("recurrent_l1", d * g * h * h, 4), ("bias", 2 * d * 2 * g * h, 8)]
    assert layer.parameters == sum(p.numel() for p in model[0].parameters()) == \
        144 + 216 + 432 + 216 + 144
    # The head: 7 steps x 12 x 3 on quantized_relu(4,0).
    assert ops(s.layer("2")) == [("", "smult_6_4", 7 * 12 * 3)]
    assert s.layer("1").input == cost.Operand(5, 32, True)
    assert s.total_bits == 6 * (144 + 432) + 4 * (216 + 216) + 8 * 144 + 6 * 36 + 32 * 3
    assert s.total_operations == 1008 + 1512 + 3024 + 1512 + 252
    # The accumulator: both directions' input projections, forward then reverse rows.
    gru = model[0]
    w = torch.cat([q(W6, gru.weight_ih_l0), q(W6, gru.weight_ih_l0_reverse)])
    b = torch.cat([q(B8, gru.bias_ih_l0), q(B8, gru.bias_ih_l0_reverse)])
    assert w.shape[0] == d * g * h
    assert layer.accumulator == expected_accumulator(w, b, 0.0, relu_top(8))
    assert "    0.kernel_l0                    : " in s.table
    assert cost.qstats(model, (1, 7, 4)).operation_totals == s.operation_totals
    # The sequence length is the input's: 2 steps.
    assert cost.qstats(model, (3, 2, 4)).layer("0").operations[1].count == d * 2 * g * h * h

    # Keras's reset_after=False: the candidate's H rows multiply r h (float); the recurrent
    # kernel's G H H values stay one group.
    keras = QGRU(4, 6, reset_after=False, kernel_quantizer=W6, recurrent_quantizer=W4,
                 state_quantizer=STATE)
    k = cost.qstats(keras, (7, 1, 4)).layers[0]
    assert ops(k) == [("kernel", "smult_6_8", 7 * 18 * 4), ("recurrent", "smult_4_8", 7 * 12 * 6),
                      ("recurrent_n", "sfmult_4_32", 7 * 6 * 6)]
    assert weights(k) == [("kernel", 72, 6), ("recurrent", 108, 4), ("bias", 36, 32)]


def test_simple_rnn_state_and_output_have_its_activation_type():
    model = rnn_model()
    s = cost.qstats(model, (4, 2, 6))  # L = 4, N = 2
    layer = s.layer("0")
    assert layer.type == "QSimpleRNN"
    # h = act(.) on the grid of quantized_tanh(6): the recurrence multiplies 6-bit signed values.
    assert ops(layer) == [("kernel", "smult_6_8", 4 * 10 * 6),
                          ("recurrent", "smult_4_6", 4 * 10 * 10)]
    assert weights(layer) == [("kernel", 60, 6), ("recurrent", 100, 4), ("bias", 0, 32)]
    assert "recurrent_activation" not in layer.quantizers
    assert s.layer("1").input_quantizer == heteroq.get_quantizer("quantized_tanh(6)").to_string()
    assert s.layer("1").input == cost.Operand(0, 6, True)
    assert layer.accumulator == expected_accumulator(q(W6, model[0].weight_ih_l0), None, 0.0,
                                                     relu_top(8))

    # A float activation: float state and output.
    relu = FirstOutput(QSimpleRNN(6, 10, batch_first=True, kernel_quantizer=W6,
                                  recurrent_quantizer=W4, activation="relu"),
                       QDense(10, 2, kernel_quantizer=W4))
    r = cost.qstats(relu, (1, 3, 6), input_quantizer="quantized_bits(4,2,alpha=1)")
    assert ops(r.layer("0")) == [("kernel", "smult_6_4", 3 * 10 * 6),
                                 ("recurrent", "sfmult_4_32", 3 * 10 * 10)]
    assert weights(r.layer("0"))[2] == ("bias", 20, 32)
    assert r.layer("0").quantizers["activation"] is None  # "relu": an empty slot
    assert ops(r.layer("1")) == [("", "sfmult_4_32", 3 * 10 * 2)]
    # A state quantizer types the recurrence (not the output).
    sq = QSimpleRNN(6, 10, kernel_quantizer=W6, recurrent_quantizer=W4,
                    state_quantizer="quantized_bits(3,0,alpha=1)")
    assert cost.qstats(sq, (2, 1, 6)).layers[0].operations[1].name == "smult_4_3"


class Tagger(torch.nn.Module):
    """A QLSTM whose last state feeds a head: the usual recurrent model."""

    def __init__(self):
        super().__init__()
        self.lstm = QLSTM(8, 16, batch_first=True, kernel_quantizer=W6, recurrent_quantizer=W4,
                          state_quantizer=STATE)
        self.act = QActivation("quantized_relu(6)")
        self.head = QDense(16, 5, kernel_quantizer=W6)

    def forward(self, x):
        _, (h_n, _) = self.lstm(x)
        return self.head(self.act(h_n[-1]))


def test_recurrent_layer_in_a_module_tree():
    s = cost.qstats(fill_deterministic(Tagger()), (2, 10, 8))
    assert [l.name for l in s.layers] == ["lstm", "act", "head"]
    assert ops(s.layer("lstm")) == [("kernel", "smult_6_8", 10 * 64 * 8),
                                    ("recurrent", "smult_4_8", 10 * 64 * 16)]
    assert s.layer("act").input_shape == [2, 16]
    assert ops(s.layer("head")) == [("", "smult_6_6", 16 * 5)]


def test_torch_recurrent_layers_are_float():
    model = fill_deterministic(FirstOutput(torch.nn.GRU(3, 5, num_layers=2), torch.nn.RNN(5, 4),
                                           torch.nn.LSTM(4, 2, bias=False)))
    s = cost.qstats(model, (6, 2, 3))
    assert ops(s.layer("0")) == [("kernel_l0", "sfmult_32_8", 6 * 15 * 3),
                                 ("recurrent_l0", "sfmult_32_32", 6 * 15 * 5),
                                 ("kernel_l1", "sfmult_32_32", 6 * 15 * 5),
                                 ("recurrent_l1", "sfmult_32_32", 6 * 15 * 5)]
    assert ops(s.layer("1")) == [("kernel", "sfmult_32_32", 6 * 4 * 5),
                                 ("recurrent", "sfmult_32_32", 6 * 4 * 4)]
    assert ops(s.layer("2")) == [("kernel", "sfmult_32_32", 6 * 8 * 4),
                                 ("recurrent", "sfmult_32_32", 6 * 8 * 2)]
    assert s.layer("2").weights[2].count == 0
    assert s.total_parameters == sum(p.numel() for p in model.parameters())
    assert s.total_bits == 32 * s.total_parameters
    gru = model[0]
    assert s.layer("0").accumulator == expected_accumulator(gru.weight_ih_l0, gru.bias_ih_l0, 0.0,
                                                            relu_top(8))
    assert s.layer("1").accumulator is None  # a float input
    with pytest.raises(ValueError, match=r"layer '0' \(LSTM\): `proj_size`"):
        cost.qstats(FirstOutput(torch.nn.LSTM(4, 3, proj_size=2)), (2, 1, 4))


def test_recurrent_descriptions_are_checked():
    # By hand (the dicts heteroq.cost hands to C++): a GRU layer of 2 x 3 x 5 rows.
    gru = {"name": "enc", "type": "MyGRU", "kind": "recurrent", "in_channels": 3,
           "out_channels": 5, "gates": 3, "bidirectional": True, "batch_first": True,
           "input_shape": [1, 4, 3], "output_shape": [1, 4, 10],
           "quantizers": [("kernel_quantizer", heteroq.get_quantizer(W4)._impl)]}
    relu8 = heteroq.get_quantizer(cost.DEFAULT_INPUT_QUANTIZER)._impl
    g = cost._from_json(*heteroq._C.qstats([gru], relu8))
    assert ops(g.layers[0]) == [("kernel", "smult_4_8", 2 * 4 * 15 * 3),
                                ("recurrent", "sfmult_32_32", 2 * 4 * 15 * 5)]
    assert g.layers[0].accumulator is None  # no channel sums
    for change, message in [({"gates": 2}, r"layer 'enc' \(MyGRU\): `gates`"),
                            ({"output_shape": [1, 4, 5]}, "hidden_size 5, bidirectional"),
                            ({"input_shape": [4, 3], "output_shape": [4, 10]},
                             "batched input of rank 3"),
                            ({"num_layers": 0}, "`num_layers`"),
                            ({"channel_sums": [[1.0, -1.0, 0.0]] * 15},
                             r"expected one per output channel \(30"),
                            ({"kind": "lstm"}, "unknown layer kind 'lstm'")]:
        with pytest.raises(ValueError, match=message):
            heteroq._C.qstats([{**gru, **change}], relu8)
    # An unbatched input, which the layer accepts, is refused (the counts would be wrong).
    with pytest.raises(ValueError, match=r"layer 'QLSTM' \(QLSTM\).*batched input of rank 3"):
        cost.qstats(QLSTM(8, 16), (5, 8))


@pytest.fixture(scope="module")
def cpp_stats(build_dir, tmp_path_factory):
    exe = build_dir / "tests" / "cpp" / "heteroq_tests"
    if not exe.exists():
        pytest.fail(f"{exe} is missing: build the target heteroq_tests")
    path = tmp_path_factory.mktemp("qstats") / "stats.json"
    subprocess.run([str(exe), "--gtest_filter=QStatsCrossLanguage.*"], check=True,
                   capture_output=True, env={**os.environ, "HETEROQ_QSTATS_JSON": str(path)})
    return json.loads(path.read_text())


@pytest.mark.parametrize("name,make,shape", [("jet", jet_mlp, (1, 16)),
                                             ("cnn", small_cnn, (2, 3, 12, 12)),
                                             ("mix", po2_mix, (1, 8)),
                                             ("one_d", one_d, (1, 2, 10)),
                                             ("lstm", lstm_model, (5, 2, 8)),
                                             ("gru", gru_model, (3, 7, 4)),
                                             ("rnn", rnn_model, (4, 2, 6))])
def test_identical_to_cpp(cpp_stats, name, make, shape):
    mine = cost.qstats(make(), shape)
    theirs = cost._from_json(cpp_stats[name]["json"], cpp_stats[name]["table"])
    assert mine.table == theirs.table
    assert dataclasses.asdict(mine) == dataclasses.asdict(theirs)


def test_a_module_called_twice_counts_twice():
    fc = QDense(4, 4, kernel_quantizer=W6)
    model = torch.nn.Sequential(fc, QActivation("quantized_relu(4)"), fc)
    s = cost.qstats(model, (1, 4))
    assert [l.name for l in s.layers] == ["0", "1", "0#2"]
    assert s.operation_totals == {"smult_6_8": 16, "smult_6_4": 16}


def test_docs_example_prints_what_the_page_shows(capsys):
    text = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "cost.md").read_text()
    code = re.findall(r"```python\n(.*?)```", text, flags=re.S)[0]
    namespace = {}
    exec(compile(code, "docs/cost.md", "exec"), namespace)  # noqa: S102  (our own docs)
    printed = capsys.readouterr().out.splitlines()
    shown = re.findall(r"```\n(Number of operations in model:.*?)```", text, flags=re.S)[0]
    for line in shown.splitlines():
        if line.strip() != "...":
            assert line in printed
    stats = namespace["stats"]
    assert stats.operation_totals == {"smult_6_6": 3232, "smult_6_8": 1024}
    assert stats.total_bits == 26334 and stats.layer("2").accumulator.bits == 2


def test_docs_recurrent_example_prints_what_the_page_shows(capsys):
    text = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "cost.md").read_text()
    first, recurrent = re.findall(r"```python\n(.*?)```", text, flags=re.S)[:2]
    namespace = {}
    exec(compile(first, "docs/cost.md", "exec"), namespace)  # noqa: S102  (our own docs)
    capsys.readouterr()
    exec(compile(recurrent, "docs/cost.md", "exec"), namespace)  # noqa: S102
    printed = capsys.readouterr().out.splitlines()
    shown = re.findall(r"```\n(Number of operations in model:.*?)```", text, flags=re.S)[1]
    assert "lstm.recurrent" in shown
    for line in shown.splitlines():
        if line.strip() != "...":
            assert line in printed
    stats = namespace["stats"]
    assert stats.operation_totals == {"smult_6_6": 80, "smult_6_8": 15360}
    assert stats.total_bits == 10880


def test_channel_sums_of_any_number_sequence_give_the_same_stats():
    # describe's lists of floats are read directly; other sequences through pybind11's conversion.
    layers = cost.describe(jet_mlp(), (1, 16))
    relu8 = heteroq.get_quantizer(cost.DEFAULT_INPUT_QUANTIZER)._impl
    expected = heteroq._C.qstats(layers, relu8)[0]
    for convert in (lambda rows: [tuple(r) for r in rows],
                    lambda rows: torch.tensor(rows, dtype=torch.float64).tolist(),
                    lambda rows: [[int(v) if float(v).is_integer() else v for v in r]
                                  for r in rows]):
        changed = [{**l, "channel_sums": convert(l["channel_sums"])} if "channel_sums" in l else l
                   for l in layers]
        assert heteroq._C.qstats(changed, relu8)[0] == expected
    with pytest.raises(ValueError, match="`channel_sums` has the wrong type"):
        heteroq._C.qstats([{**layers[0], "channel_sums": [["a", 1.0, 2.0]]}], relu8)
