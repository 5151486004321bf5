# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""QTools: data types, energy and size of small models against values computed here from QTools's
formulas (term by term), QKeras's own QTools energy test, the reference mode, monotonicity in the
bit widths, errors; the same numbers as C++ (tests/cpp/test_qtools.cpp builds the same models
and writes its reports when HETEROQ_QTOOLS_JSON names a file)."""
import io
import json
import math
import os
import pathlib
import re
import subprocess

import pytest
import torch

from heteroq import cost
from heteroq.nn import (QGRU, QLSTM, QActivation, QAdaptiveActivation, QAvgPool2d, QBatchNorm1d,
                        QBatchNorm2d, QConv1d, QConv2d, QConv2dBatchNorm, QConvTranspose2d, QDense,
                        QDepthwiseConv2d, QGlobalAvgPool2d, QLinearBatchNorm, QSeparableConv1d,
                        QSeparableConv2d, QSimpleRNN)

W6 = "quantized_bits(6,0,alpha=1)"
W4 = "quantized_bits(4,0,alpha=1)"
B8 = "quantized_bits(8,3,alpha=1)"


# ---- QTools's tables (config_public.py "horowitz"), written out independently ----

def sram_rd(l):
    return max(9.02427321e-04 * l ** 3 - 2.68847858e-02 * l ** 2 + 2.08900804e-01 * l, 0.0)


def fpm_add(b):
    return 0.003125 * b


def fpm_mul(b):
    return 0.002994791667 * b * b + 0.001041666667 * b


def mem(bits, mode, rd_wr_on_io=True, min_sram=0):
    """A read or write of ``bits`` bits: "dram" (through SRAM when rd_wr_on_io), "sram", "fixed"."""
    sram = math.ceil(bits / 64) * sram_rd(math.log2(max(bits, min_sram)))
    if mode == "dram":
        return 20.3125 * bits + (sram if rd_wr_on_io else 0.0)
    return sram if mode == "sram" else 0.0


def fixed(t, bits, int_bits, signed):
    assert (t.bits, t.int_bits, t.signed, t.floating_point) == (bits, int_bits, signed, False), t


# ---- models (built identically in tests/cpp/test_qtools.cpp) ----

class FirstOutput(torch.nn.Sequential):
    """A Sequential that passes a recurrent layer's output sequence on, as the C++ walk does."""

    def forward(self, x):
        for m in self:
            x = m(x)
            if isinstance(x, tuple):
                x = x[0]
        return x


def small_mlp():
    return torch.nn.Sequential(QDense(4, 3, kernel_quantizer=W6, bias_quantizer=W6),
                               QActivation("quantized_relu(4,0)"),
                               QDense(3, 2, kernel_quantizer=W6, bias_quantizer=W6))


def jet_mlp(w=W6, a="quantized_relu(6,0)"):
    """The jet-tagging MLP 16-64-32-32-5 (w, a: the weight and activation quantizers; None:
    float)."""
    layers = []
    sizes = [(16, 64), (64, 32), (32, 32), (32, 5)]
    for i, (n_in, n_out) in enumerate(sizes):
        layers.append(torch.nn.Linear(n_in, n_out) if w is None else
                      QDense(n_in, n_out, kernel_quantizer=w, bias_quantizer=w))
        if i + 1 < len(sizes):
            layers.append(torch.nn.ReLU() if a is None else QActivation(a))
    layers.append(torch.nn.Softmax(dim=-1))
    return torch.nn.Sequential(*layers)


def qkeras_mlp():
    """QKeras's qtools_model_test.py::test_qenergy model (its QAdaptiveActivation: QActivation)."""
    q4 = "quantized_bits(4,0,1)"
    return torch.nn.Sequential(
        QDense(784, 300, kernel_quantizer="binary()", bias_quantizer="binary()"),
        QActivation("quantized_relu(4,0)"),
        QDense(300, 100, kernel_quantizer=q4, bias_quantizer=q4),
        QActivation("quantized_relu(4,0)"),
        QDense(100, 10, kernel_quantizer=q4, bias_quantizer=q4),
        torch.nn.Softmax(dim=-1))


def small_cnn():
    return torch.nn.Sequential(
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
        torch.nn.BatchNorm2d(6), QGlobalAvgPool2d(), torch.nn.Flatten(), torch.nn.Linear(6, 3))


def po2_mix():
    return torch.nn.Sequential(
        QDense(8, 16, kernel_quantizer="quantized_po2(4,1)", bias_quantizer="quantized_po2(4,8)"),
        QActivation("quantized_relu_po2(4,4)"),
        QDense(16, 16, kernel_quantizer="ternary(alpha=1)"),
        QActivation("binary(alpha=1)"),
        QDense(16, 8, kernel_quantizer="binary(alpha=1)"),
        QActivation("quantized_po2(4)"),
        QDense(8, 4, kernel_quantizer="quantized_po2(4,1)"),
        QActivation("quantized_relu(1,1)"),
        QDense(4, 4, kernel_quantizer="quantized_bits(2,1,alpha=1)"),
        QActivation("quantized_bits(4,2,alpha=1)"), QDense(4, 2))


def lstm_model():
    return FirstOutput(QLSTM(8, 16, kernel_quantizer=W6, recurrent_quantizer=W4, bias_quantizer=B8),
                       QActivation("quantized_relu(4)"))


def one_d():
    return torch.nn.Sequential(
        QConv1d(2, 4, 3, kernel_quantizer=W4, bias_quantizer=B8),
        QBatchNorm1d(4, inverse_quantizer="quantized_bits(8,3,alpha=1)"),
        QActivation("quantized_relu(4,1)"),
        QSeparableConv1d(4, 6, 3, depth_multiplier=2, depthwise_quantizer="quantized_po2(4,1)",
                         pointwise_quantizer=W4),
        QActivation("ternary(alpha=1)"), torch.nn.Flatten(),
        QLinearBatchNorm(36, 3, kernel_quantizer=W6, bias_quantizer=B8))


def gru_model():
    return FirstOutput(
        QGRU(4, 6, num_layers=2, bidirectional=True, batch_first=True, kernel_quantizer=W6,
             recurrent_quantizer=W4, bias_quantizer=B8,
             state_quantizer="quantized_bits(8,2,alpha=1)"),
        QActivation("quantized_relu(4)"), QDense(12, 3, kernel_quantizer=W6))


def rnn_model():
    return FirstOutput(QSimpleRNN(6, 10, bias=False, kernel_quantizer=W6, recurrent_quantizer=W4,
                                  activation="quantized_tanh(6)"),
                       QActivation("quantized_relu(4)"))


def misc_model():
    """Transposed convolutions, adaptive activations, torch convolutions, dropout, upsampling."""
    return torch.nn.Sequential(
        QConv2d(2, 4, 3, padding=1, kernel_quantizer=W4, bias_quantizer=B8),
        QAdaptiveActivation("quantized_relu", 4),
        QConvTranspose2d(4, 2, 2, stride=2, kernel_quantizer=W6),
        torch.nn.Dropout(0.5), torch.nn.Conv2d(2, 3, 3), torch.nn.Upsample(scale_factor=2.0),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), QActivation("quantized_bits(8,2)"))


# ---- tests ----

def test_two_layer_mlp_by_hand():
    m = cost.data_types(small_mlp(), (1, 4))
    # x q<8,0,s> (int8 source) times w q<6,0,s>: int 0, fraction 7 + 5, 13 bits; 4 products
    # (+2 integer bits); the bias q<6,0,s>: int max(0, 2) + 1, fraction 12.
    fixed(m.layer("0").stages[0].multiplier, 13, 0, True)
    fixed(m.layer("0").output, 16, 3, True)
    fixed(m.layer("2").input, 4, 0, False)
    fixed(m.layer("2").stages[0].multiplier, 10, 0, True)
    fixed(m.layer("2").output, 13, 3, True)
    assert m.layer("0").operators[0].kind == "FixedPointMultiplier"
    assert m.layer("0").operators[0].gate_bits == math.sqrt(48)

    e = cost.energy(small_mlp(), (1, 4))
    in0 = mem(4 * 8, "dram")
    par0 = mem(12 * 6, "dram") + mem(3 * 6, "dram")
    op0 = 12 * (fpm_mul(math.sqrt(6 * 8)) + fpm_add(16))
    out1 = mem(3 * 4, "dram")
    in2 = mem(3 * 4, "dram")
    par2 = mem(6 * 6, "dram") + mem(2 * 6, "dram")
    op2 = 6 * (fpm_mul(math.sqrt(6 * 4)) + fpm_add(13))
    l0, l1, l2 = e.layers
    assert (l0.inputs, l0.parameters, l0.op_cost) == pytest.approx((in0, par0, op0), abs=1e-9)
    assert l0.outputs == pytest.approx(mem(3 * 16, "dram"), abs=1e-9)
    assert l1.outputs == pytest.approx(out1, abs=1e-9) and l1.included == ["outputs"]
    assert (l2.inputs, l2.parameters, l2.op_cost) == pytest.approx((in2, par2, op2), abs=1e-9)
    assert l2.outputs == pytest.approx(mem(2 * 13, "dram"), abs=1e-9)
    assert e.total == pytest.approx(in0 + par0 + op0 + out1 + in2 + par2 + op2, abs=1e-9)
    assert e.qtools_total == int(sum(round(v, 2) for v in (in0, par0, op0, out1, in2, par2, op2)))
    s = cost.energy(small_mlp(), (1, 4), weights_on_memory="fixed", activations_on_memory="sram",
                    rd_wr_on_io=False, min_sram_size=8 << 20)
    assert s.layers[0].parameters == 0.0
    assert s.layers[0].inputs == pytest.approx(mem(32, "sram", False, 8 << 20), abs=1e-12)


def test_qkeras_qenergy_test():
    """qkeras/tests/qtools_model_test.py::test_qenergy: the same per-layer numbers and totals."""
    opts = dict(weights_on_memory="sram", activations_on_memory="sram",
                min_sram_size=8 * 16 * 1024 * 1024, rd_wr_on_io=False, source_quantizer="int8",
                keras_quantizer="int8", keras_accumulator="int32")
    layers = cost.describe(qkeras_mlp(), (1, 784))
    ref = cost.energy(layers, for_reference=True, **opts)
    trial = cost.energy(layers, **opts)

    def check(layer, inputs, outputs, parameters, op_cost):
        got = (layer.inputs, layer.outputs, layer.parameters, layer.op_cost)
        assert got == pytest.approx((inputs, outputs, parameters, op_cost), abs=0.005)

    check(ref.layer("0"), 372.77, 570.57, 111975.96, 70560.0)
    check(ref.layer("2"), 570.57, 190.19, 14313.66, 26500.0)
    check(ref.layer("4"), 190.19, 19.02, 483.08, 883.33)
    check(trial.layer("0"), 372.77, 342.34, 13997.95, 15729.0)
    check(trial.layer("2"), 72.27, 110.31, 7158.73, 3250.0)
    check(trial.layer("4"), 26.63, 11.41, 243.44, 102.08)
    assert (ref.qtools_total, trial.qtools_total) == (226629, 41070)


def test_conv_po2_ternary_and_batch_norm_types():
    m = cost.data_types(torch.nn.Sequential(QConv2d(2, 3, 3, kernel_quantizer=W4,
                                                    bias_quantizer=B8)),
                        (1, 2, 5, 5), source_quantizer="quantized_relu(8,0)")
    s = m.layer("0").stages[0]
    assert (m.layer("0").operation_count, s.fan_in) == (3 * 3 * 3 * 2 * 9, 18)
    fixed(s.multiplier, 12, 0, True)   # int 0, fraction 8 + 3, signed
    fixed(s.accumulator, 18, 6, True)  # +5 bits for 18 products, then the bias q<8,3,s>
    po2 = cost.data_types(torch.nn.Sequential(
        QDense(4, 2, bias=False, kernel_quantizer="quantized_po2(4,1)")), (1, 4)).layer("0")
    assert po2.operators[0].kind == "Shifter"
    fixed(po2.stages[0].multiplier, 12, 0, True)  # 8 + 4 fraction bits + 0 integer bits
    b = math.sqrt(2 ** 4 * 8)
    assert po2.operators[0].gate_bits == pytest.approx(b * math.log10(b), rel=1e-15)
    tern_model = torch.nn.Sequential(QDense(4, 2, bias=False, kernel_quantizer="ternary()"))
    tern = cost.data_types(tern_model, (1, 4), source_quantizer="quantized_relu(8,0)").layer("0")
    assert (tern.operators[0].kind, tern.operators[0].gate_factor) == ("Mux", 0.6)
    fixed(tern.stages[0].multiplier, 9, 0, True)
    bn = cost.energy(torch.nn.Sequential(QBatchNorm1d(3)), (1, 3))
    assert bn.layers[0].op_cost == pytest.approx(3 * (3.7 + 3.7), abs=1e-12)
    assert bn.layers[0].parameters == pytest.approx(4 * mem(3 * 8, "dram"), abs=1e-9)
    assert bn.layers[0].included == ["parameters"] and bn.total == bn.layers[0].parameters
    pool = cost.energy(torch.nn.Sequential(QActivation("quantized_relu(4,0)"),
                                           torch.nn.AvgPool2d(2)), (1, 2, 4, 4))
    assert pool.layers[1].op_cost == pytest.approx(8 * fpm_add(6), abs=1e-12)


def test_reference_mode_and_size():
    ref = cost.energy(jet_mlp(), (1, 16), for_reference=True)
    ref_float = cost.energy(jet_mlp(None, None), (1, 16), for_reference=True)
    assert ref.total == ref_float.total
    assert cost.energy(jet_mlp(None, None), (1, 16), source_quantizer="int8",
                       keras_quantizer="int8", keras_accumulator="int32").total == ref.total
    assert ref.layer("0").op_cost == pytest.approx(1024 * (fpm_mul(8) + fpm_add(32)), abs=1e-9)
    s = cost.model_size(jet_mlp(), (1, 16))
    params = 16 * 64 + 64 + 64 * 32 + 32 + 32 * 32 + 32 + 32 * 5 + 5
    assert (s.parameter_bits, s.reference_parameter_bits) == (6 * params, 8 * params)
    assert s.activation_bits == 8 * 16 + 6 * (64 + 32 + 32) + 8 * 5
    assert s.total_bits == s.parameter_bits + s.activation_bits
    assert cost.model_size(jet_mlp(), (1, 16), for_reference=True).total_bits == \
        s.reference_total_bits


@pytest.mark.parametrize("memory", ["dram", "sram", "fixed"])
def test_lowering_bits_never_raises_energy_or_size(memory):
    last = {}
    for bits in range(2, 17):
        w, a = f"quantized_bits({bits},0,alpha=1)", f"quantized_relu({bits},0)"
        for key, model in (("w", jet_mlp(w, "quantized_relu(6,0)")), ("a", jet_mlp(W6, a)),
                           ("both", jet_mlp(w, a))):
            layers = cost.describe(model, (1, 16))
            e = cost.energy(layers, weights_on_memory=memory, activations_on_memory=memory).total
            s = cost.model_size(layers).total_bits
            if key in last:
                assert e >= last[key][0] and s >= last[key][1], (key, bits)
            last[key] = (e, s)


class Mystery(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(3))

    def forward(self, x):
        return x * self.scale


def test_bad_input():
    model = torch.nn.Sequential(QDense(4, 3, kernel_quantizer=W6), Mystery(),
                                QDense(3, 2, kernel_quantizer=W6))
    with pytest.raises(ValueError, match=r"layer '1' \(Mystery\).*unknown_layers_as_zero"):
        cost.energy(model, (1, 4))
    e = cost.energy(model, (1, 4), unknown_layers_as_zero=True)
    assert e.counted_as_zero == ["1"] and e.layer("1").total == 0 and e.layer("1").counted_as_zero
    assert "counted as zero (unknown types): 1" in str(e)
    m = cost.data_types(model, (1, 4), unknown_layers_as_zero=True)
    assert m.layer("2").input == m.layer("0").output
    with pytest.raises(ValueError, match=r"layer '0'.*input of shape \[1, 5\]"):
        cost.energy(small_mlp(), (1, 5))
    with pytest.raises(ValueError, match="input_shape"):
        cost.energy(small_mlp(), [])
    for options, name in [({"weights_on_memory": "flash"}, "weights_on_memory"),
                          ({"process": "tsmc7"}, "process"),
                          ({"min_sram_size": -1}, "min_sram_size"),
                          ({"min_sram_size": 1.5}, "min_sram_size"),
                          ({"rd_wr_on_io": 1}, "rd_wr_on_io"),
                          ({"source_quantizer": "int7"}, "source_quantizer"),
                          ({"reference_internal": "int16"}, "reference_internal"),
                          ({"weight_on_memory": "dram"}, "weight_on_memory")]:
        with pytest.raises(ValueError, match=f"`{name}`"):
            cost.energy(small_mlp(), (1, 4), **options)


def test_quantizer_objects_as_options():
    from heteroq import get_quantizer
    a = cost.energy(small_mlp(), (1, 4), source_quantizer=get_quantizer("quantized_relu(8,0)"))
    b = cost.energy(small_mlp(), (1, 4), source_quantizer="quantized_relu(8,0)")
    assert a.total == b.total != cost.energy(small_mlp(), (1, 4)).total
    assert cost.data_types(small_mlp(), (1, 4), source_quantizer=None).source.floating_point
    assert cost.QTOOLS_DEFAULTS["source_quantizer"] == "quantized_bits(8,0,1)"


def test_print_energy():
    buf = io.StringIO()
    e = cost.print_energy(small_mlp(), (1, 4), file=buf)
    assert buf.getvalue() == str(e) and "QTools extract_energy_sum" in buf.getvalue()


# ---- the same numbers as C++ ----

@pytest.fixture(scope="module")
def cpp_reports(build_dir, tmp_path_factory):
    exe = build_dir / "tests" / "cpp" / "heteroq_tests"
    if not exe.exists():
        pytest.fail(f"{exe} is missing: build the target heteroq_tests")
    path = tmp_path_factory.mktemp("qtools") / "reports.json"
    subprocess.run([str(exe), "--gtest_filter=QToolsCrossLanguage.*"], check=True,
                   capture_output=True, env={**os.environ, "HETEROQ_QTOOLS_JSON": str(path)})
    return json.loads(path.read_text())


VARIANTS = {"default": {}, "reference": {"for_reference": True},
            "sram": {"weights_on_memory": "sram", "activations_on_memory": "sram",
                     "rd_wr_on_io": False, "min_sram_size": 1 << 20}}


@pytest.mark.parametrize("name,make,shape", [("mlp", small_mlp, (1, 4)), ("jet", jet_mlp, (1, 16)),
                                             ("jet_float", lambda: jet_mlp(None, None), (1, 16)),
                                             ("cnn", small_cnn, (2, 3, 12, 12)),
                                             ("mix", po2_mix, (1, 8)),
                                             ("lstm", lstm_model, (5, 2, 8)),
                                             ("one_d", one_d, (1, 2, 10)),
                                             ("gru", gru_model, (3, 7, 4)),
                                             ("rnn", rnn_model, (4, 2, 6)),
                                             ("misc", misc_model, (1, 2, 6, 6))])
def test_identical_to_cpp(cpp_reports, name, make, shape):
    layers = cost.describe(make(), shape)
    for variant, options in VARIANTS.items():
        theirs = cpp_reports[name][variant]
        m, e, s = (cost.data_types(layers, **options), cost.energy(layers, **options),
                   cost.model_size(layers, **options))
        assert m.table == theirs["data_types_table"]
        assert e.table == theirs["energy_table"]
        assert s.table == theirs["size_table"]
        mine = json.loads(heteroq_json("qtools_energy", layers, options))
        assert mine == json.loads(theirs["energy"])
        assert json.loads(heteroq_json("qtools_data_types", layers, options)) == \
            json.loads(theirs["data_types"])
        assert json.loads(heteroq_json("qtools_model_size", layers, options)) == \
            json.loads(theirs["size"])
        assert e.total == json.loads(theirs["energy"])["total"]


def heteroq_json(function, layers, options):
    from heteroq import _C
    return getattr(_C, function)(layers, options)[0]


def test_docs_example_prints_what_the_page_shows(capsys):
    text = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "qtools.md").read_text()
    code = re.findall(r"```python\n(.*?)```", text, flags=re.S)[0]
    namespace = {}
    exec(compile(code, "docs/qtools.md", "exec"), namespace)  # noqa: S102  (our own docs)
    printed = capsys.readouterr().out
    shown = re.findall(r"```text\n(.*?)```", text, flags=re.S)[0]
    assert shown == printed
