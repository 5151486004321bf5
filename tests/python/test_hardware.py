# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""BOPs/EBOPs and the FPGA estimate: hand-computed numbers for small models (a 2-layer MLP, a
convolution, a po2 and a ternary layer, a batch norm) written out from the formulas of
docs/hardware.md; invariants; bad input; the same numbers as C++ (tests/cpp/test_hardware.cpp
builds the same models)."""
import dataclasses
import json
import os
import subprocess

import pytest
import torch

from heteroq import cost
from heteroq.nn import QActivation, QConv2d, QDense
from test_qstats import (W4, gru_model, jet_mlp, lstm_model, one_d, po2_mix, rnn_model,
                         small_cnn)


# ---- the hand-computed models, built identically in tests/cpp/test_hardware.cpp ----

def _set(t, values):
    with torch.no_grad():
        t.copy_(torch.tensor(values, dtype=t.dtype).reshape(t.shape))


def two_layer_mlp():
    fc1 = QDense(3, 2, kernel_quantizer=W4, bias_quantizer=W4)
    fc2 = QDense(2, 1, bias=False, kernel_quantizer=W4)
    _set(fc1.weight, [0.5, -0.375, 0.0, 0.125, 0.75, -0.625])
    _set(fc1.bias, [0.25, -0.875])
    _set(fc2.weight, [0.375, -0.25])
    return torch.nn.Sequential(fc1, QActivation("quantized_relu(3,0)"), fc2)


def conv_layer():
    conv = QConv2d(1, 2, 2, kernel_quantizer=W4, bias_quantizer=W4)
    _set(conv.weight, [0.5, 0.0, 0.75, -0.125, 0.0, 0.0, 0.0, 0.625])
    _set(conv.bias, [0.5, 0.0])
    return torch.nn.Sequential(conv)


def po2_layer():
    fc = QDense(2, 2, bias=False, kernel_quantizer="quantized_po2(4)")
    _set(fc.weight, [0.5, -0.25, 0.125, -0.0625])
    return torch.nn.Sequential(fc)


def ternary_layer():
    fc = QDense(3, 2, bias=False, kernel_quantizer="ternary(alpha=1)")
    _set(fc.weight, [1.0, 0.0, -1.0, 0.0, 0.0, 1.0])
    return torch.nn.Sequential(fc)


def batch_norm_layer():
    """torch BatchNorm1d(2), eps 0: scale {0.75, 1}, shift {-0.125, 0.125}."""
    bn = torch.nn.BatchNorm1d(2, eps=0.0)
    _set(bn.weight, [0.375, 0.5])
    _set(bn.bias, [0.25, 0.125])
    _set(bn.running_mean, [0.5, 0.0])
    _set(bn.running_var, [0.25, 0.25])
    return torch.nn.Sequential(bn).eval()


# ---- hand-computed BOPs and EBOPs ----

def test_bit_span():
    assert [cost.bit_span(v) for v in (0.0, 0.5, -4.0, 0.75, 0.625, -0.875, 0.78125, 5.5)] == \
        [0, 1, 1, 2, 3, 3, 5, 4]
    with pytest.raises(ValueError, match="finite"):
        cost.bit_span(float("inf"))


def test_two_layer_mlp_by_hand():
    r = cost.bops(two_layer_mlp(), (1, 3))
    fc1, act, fc2 = r.layers
    # fc1: input quantized_relu(8,0) (8 bits), 4-bit kernel; weight spans 1 2 0 1 2 3; biases
    # 0.25 -0.875 (spans 1 3) added to 2 outputs.
    assert (fc1.multiplications, fc1.bops) == (5, 5 * 8 * 4)
    assert fc1.bias_ebops == (1 + 3) / 2 * 2
    assert fc1.ebops == 8 * (1 + 2 + 0 + 1 + 2 + 3) + 4
    assert (act.bops, act.ebops) == (0, 0.0)
    # fc2: input quantized_relu(3,0) (3 bits); spans 2 1, no bias.
    assert (fc2.bops, fc2.ebops) == (2 * 3 * 4, 3 * (2 + 1))
    assert (r.bops, r.ebops, r.multiplications) == (184, 85.0, 7)
    assert r.zero_cost_layers == [] and fc1.exact
    assert "Total" in str(r) and "EBOPs" in str(r)


def test_conv_by_hand():
    r = cost.bops(conv_layer(), (1, 1, 3, 3))
    # 4 positions x (3 + 1) non-zero weights; spans 1 2 1 | 3; biases spans 1 0 over 8 outputs.
    assert r.multiplications == 16
    assert r.bops == 4 * 4 * 8 * 4
    assert r.layers[0].bias_ebops == 0.5 * 8
    assert r.ebops == 4 * 8 * (1 + 2 + 1 + 3) + 4


def test_po2_and_ternary_by_hand():
    p = cost.bops(po2_layer(), (1, 2), input_quantizer="quantized_po2(5)")
    assert (p.bops, p.ebops) == (4 * 5 * 4, 4 * 5 * 1)
    t = cost.bops(ternary_layer(), (1, 3), input_quantizer="quantized_relu(4,0)")
    assert (t.multiplications, t.bops, t.ebops) == (3, 3 * 4 * 2, 3 * 4 * 1)
    assert cost.bops(ternary_layer(), (1, 3), input_quantizer="ternary(alpha=1)").bops == 3 * 2 * 2
    assert cost.bops(po2_layer(), (1, 2), input_quantizer="binary(alpha=1)").bops == 4 * 1 * 4
    assert cost.bops(po2_layer(), (1, 2), input_quantizer=None).bops == 4 * 32 * 4


def test_batch_norm_by_hand():
    r = cost.bops(batch_norm_layer(), (1, 2), input_quantizer="quantized_relu(4,0)")
    # scale spans 2 1 (a float scale: 32 bits), shift spans 1 1 over 2 outputs, input 4 bits.
    assert (r.multiplications, r.bops) == (2, 2 * 4 * 32)
    assert r.layers[0].bias_ebops == 2.0
    assert r.ebops == 4 * (2 + 1) + 2


# ---- the FPGA estimate ----

def test_fpga_two_layer_mlp_by_hand():
    e = cost.fpga_estimate(two_layer_mlp(), (1, 3))
    fc1, act, fc2 = e.layers
    # fc1: 0.5, 0.125 free; 0.375, 0.75: 1 adder of 8 + 2 bits; -0.625: 1 adder of 8 + 3 bits.
    assert (fc1.products_free, fc1.products_lut, fc1.lut_multipliers) == (2, 3, 31)
    # accumulator 1 + 1 + (8 + 3) bits; 7 terms into 2 sums: 3 ternary adders; 2 cycles.
    assert (fc1.accumulator_bits, fc1.lut_adders, fc1.latency_cycles, fc1.ff) == (13, 39, 2, 52)
    assert (act.lut_activations, act.ff, act.latency_cycles) == (6, 6, 1)
    assert (fc2.lut_multipliers, fc2.accumulator_bits, fc2.lut_adders, fc2.ff) == (5, 6, 6, 12)
    assert (e.lut, e.dsp, e.ff, e.latency_cycles, e.latency_ns) == (87, 0, 70, 5, 25.0)
    assert e.lut_equivalent == 87
    assert cost.fpga_estimate(two_layer_mlp(), (1, 3), clock_period_ns=2.0).latency_ns == 10.0
    assert "LUT + 55 DSP = 87" in str(e)


@pytest.mark.parametrize("w,dsp,lut,free", [(0.78125, 1, 0, 0), (0.625, 0, 19, 0),
                                            (0.5, 0, 0, 1), (0.0, 0, 0, 0)])
def test_fpga_dsp_rule(w, dsp, lut, free):
    fc = QDense(1, 1, bias=False, kernel_quantizer="quantized_bits(8,0,alpha=1)")
    _set(fc.weight, [w])
    e = cost.fpga_estimate(torch.nn.Sequential(fc), (1, 1), input_quantizer="quantized_bits(16,5)")
    assert (e.dsp, e.layers[0].lut_multipliers, e.layers[0].products_free) == (dsp, lut, free)
    small_ports = cost.fpga_estimate(torch.nn.Sequential(fc), (1, 1),
                                     input_quantizer="quantized_bits(16,5)",
                                     dsp_port_a_bits=12, dsp_port_b_bits=5)
    assert small_ports.dsp == 4 * dsp


# ---- invariants ----

def jet_bits(kernel, act):
    k, a = f"quantized_bits({kernel},0,alpha=1)", f"quantized_relu({act},0)"
    layers = []
    sizes = [(16, 64), (64, 32), (32, 32), (32, 5)]
    for i, (n_in, n_out) in enumerate(sizes):
        layers.append(QDense(n_in, n_out, kernel_quantizer=k, bias_quantizer=k))
        if i + 1 < len(sizes):
            layers.append(QActivation(a))
    model = torch.nn.Sequential(*layers)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.rand(p.shape, generator=g) * 2 - 1)
    return model


def costs_of(kernel, act, inp):
    layers = cost.describe(jet_bits(kernel, act), (1, 16))
    q = f"quantized_bits({inp},5)"
    r = cost.bops(layers, input_quantizer=q)
    return r.bops, r.ebops, cost.fpga_estimate(layers, input_quantizer=q).lut_equivalent


@pytest.mark.parametrize("knob", ["kernel", "activation", "input"])
def test_lowering_a_bit_width_never_raises_the_cost(knob):
    def at(bits):
        return {"kernel": lambda: costs_of(bits, 6, 16), "activation": lambda: costs_of(6, bits, 16),
                "input": lambda: costs_of(6, 6, bits)}[knob]()
    previous = at(12)
    for bits in range(11, 6, -1):
        now = at(bits)
        assert all(n <= p for n, p in zip(now, previous)), (knob, bits, now, previous)
        previous = now


def test_pruning_never_raises_the_cost():
    model = jet_mlp()
    before = cost.describe(model, (1, 16))
    with torch.no_grad():
        w = model[0].weight
        w.masked_fill_(w.abs() < 0.4, 0)
    after = cost.describe(model, (1, 16))
    b0, b1 = cost.bops(before), cost.bops(after)
    assert b1.bops < b0.bops and b1.ebops < b0.ebops and b1.multiplications < b0.multiplications
    assert cost.fpga_estimate(after).lut_equivalent <= cost.fpga_estimate(before).lut_equivalent


# ---- every layer of the layers issue ----

def test_every_layer_has_a_cost():
    from heteroq.nn import QAdaptiveActivation, QConv2dBatchNorm, QConvTranspose2d, QGRU
    from test_qstats import FirstOutput, fill_deterministic
    models = [
        (torch.nn.Sequential(
            QConvTranspose2d(4, 6, 3, stride=2, groups=2, kernel_quantizer=W4),
            QAdaptiveActivation("quantized_relu", 6, per_channel=True, num_channels=6),
            QConv2dBatchNorm(6, 5, 3, kernel_quantizer=W4, bias_quantizer=W4),
            QActivation("quantized_relu(3)"), torch.nn.Conv2d(5, 4, 1), torch.nn.BatchNorm2d(4),
            torch.nn.MaxPool2d(3), torch.nn.Flatten(), torch.nn.Linear(4 * 3 * 3, 3)),
         (1, 4, 5, 5)),
        (FirstOutput(torch.nn.GRU(3, 5, num_layers=2), torch.nn.RNN(5, 4),
                     torch.nn.LSTM(4, 2, bias=False)), (6, 2, 3)),
        (torch.nn.Sequential(QGRU(3, 4, reset_after=False, kernel_quantizer=W4,
                                  recurrent_quantizer=W4, bias_quantizer=W4)), (5, 2, 3)),
    ]
    for model, shape in models:
        model = fill_deterministic(model).eval()
        layers = cost.describe(model, shape)
        stats = cost.qstats(model, shape)
        r, e = cost.bops(layers), cost.fpga_estimate(layers)
        assert r.bops > 0 and e.lut > 0 and e.latency_cycles > 0
        for mine, theirs in zip(r.layers, stats.layers):
            operations = sum(op.count for op in theirs.operations)
            assert mine.exact, mine.name
            assert mine.multiplications <= operations or theirs.type.startswith("BatchNorm")
    # The batch norm after the 1x1 conv on (1, 4, 9, 9): one product per value; its shift is
    # added to every value.
    bn = cost.bops(models[0][0], (1, 4, 5, 5)).layer("5")
    assert bn.multiplications == 4 * 9 * 9 and bn.bias_ebops > 0
    # A Keras-style GRU (reset_after=False): the candidate's recurrent products multiply r h
    # (float, 32 bits); per step 3 x 4 x 3 kernel products of 8 bits, 2 x 4 x 4 recurrent of
    # 32 bits (the state is float), 4 x 4 candidate ones of 32 bits, all 4-bit weights.
    gru = cost.bops(models[2][0], (5, 2, 3)).layer("0")
    w = dict(cost.describe(models[2][0], (5, 2, 3))[0]["values"])
    nk, nr = int((w["kernel"] != 0).sum()), int((w["recurrent"] != 0).sum())
    assert gru.multiplications == 5 * (nk + nr)
    assert gru.bops == 5 * (nk * 8 * 4 + nr * 32 * 4)


# ---- bad input ----

class Square(torch.nn.Module):
    def forward(self, x):
        return x * x


class Scale(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(2))

    def forward(self, x):
        return x * self.weight


@pytest.mark.parametrize("unknown", [Square, Scale])
@pytest.mark.parametrize("estimate", [cost.bops, cost.fpga_estimate])
def test_unknown_layer_is_named_or_counts_zero(unknown, estimate):
    fc1, act, fc2 = two_layer_mlp()
    model = torch.nn.Sequential(fc1, act, unknown(), fc2)
    name = type(unknown()).__name__
    with pytest.raises(ValueError, match=rf"layer '2' \({name}\).*unknown_layers_as_zero"):
        estimate(model, (1, 3))
    r = estimate(model, (1, 3), unknown_layers_as_zero=True)
    assert r.zero_cost_layers == ["2"] and r.layer("2").zero_cost and r.layer("2").type == name
    assert "* unknown layer, counted as zero" in str(r)
    if estimate is cost.bops:
        assert (r.bops, r.ebops) == (184, 85.0)  # it passes its input's type on
    else:
        assert r.lut == 87


def test_wrong_input_shape_and_options():
    with pytest.raises(ValueError, match=r"layer '0'.*input_shape"):
        cost.bops(two_layer_mlp(), (1, 4))
    with pytest.raises(ValueError, match="input_shape"):
        cost.fpga_estimate(two_layer_mlp(), ())
    with pytest.raises(TypeError, match="input_shape"):
        cost.bops(two_layer_mlp())
    with pytest.raises(TypeError, match="unknown option"):
        cost.fpga_estimate(two_layer_mlp(), (1, 3), clock_mhz=200)
    with pytest.raises(ValueError, match="`clock_period_ns`"):
        cost.fpga_estimate(two_layer_mlp(), (1, 3), clock_period_ns=0)
    with pytest.raises(ValueError, match="`adder_inputs`"):
        cost.fpga_estimate(two_layer_mlp(), (1, 3), adder_inputs=1)


def test_bad_values_are_named():
    layers = cost.describe(two_layer_mlp(), (1, 3))
    layers[0]["values"] = [("weights", layers[0]["values"][0][1][:1])]
    with pytest.raises(ValueError, match=r"layer '0' \(QLinear\): values 'weights' has 3 values, "
                                         r"expected 6"):
        cost.bops(layers)
    layers = cost.describe(two_layer_mlp(), (1, 3))
    layers[2]["values"] = [("weights", "abc")]
    with pytest.raises(ValueError, match="layer '2'.*values 'weights'"):
        cost.bops(layers)
    with pytest.raises(ValueError, match="input_shape"):
        cost.bops(layers, (1, 3))


def test_descriptions_carry_the_forward_values():
    model = two_layer_mlp()
    layers = cost.describe(model, (1, 3))
    groups = dict(layers[0]["values"])
    assert groups["weights"].dtype.name == "float64"
    assert groups["weights"].tolist() == model[0].quantized_weight().tolist()
    assert groups["bias"].tolist() == [0.25, -0.875]
    assert "values" not in layers[1] or layers[1]["values"] == []


# ---- the same numbers as C++ ----

@pytest.fixture(scope="module")
def cpp_reports(build_dir, tmp_path_factory):
    exe = build_dir / "tests" / "cpp" / "heteroq_tests"
    if not exe.exists():
        pytest.fail(f"{exe} is missing: build the target heteroq_tests")
    path = tmp_path_factory.mktemp("hardware") / "reports.json"
    subprocess.run([str(exe), "--gtest_filter=HardwareCrossLanguage.*"], check=True,
                   capture_output=True, env={**os.environ, "HETEROQ_HARDWARE_JSON": str(path)})
    return json.loads(path.read_text())


@pytest.mark.parametrize("name,make,shape", [("jet", jet_mlp, (1, 16)),
                                             ("cnn", small_cnn, (2, 3, 12, 12)),
                                             ("mix", po2_mix, (1, 8)),
                                             ("one_d", one_d, (1, 2, 10)),
                                             ("lstm", lstm_model, (5, 2, 8)),
                                             ("gru", gru_model, (3, 7, 4)),
                                             ("rnn", rnn_model, (4, 2, 6)),
                                             ("two_layer", two_layer_mlp, (1, 3)),
                                             ("conv", conv_layer, (1, 1, 3, 3)),
                                             ("bn", batch_norm_layer, (1, 2))])
def test_identical_to_cpp(cpp_reports, name, make, shape):
    from heteroq._hardware import _bops_from_json, _fpga_from_json
    layers = cost.describe(make(), shape)
    mine_b, mine_f = cost.bops(layers), cost.fpga_estimate(layers)
    theirs = cpp_reports[name]
    theirs_b = _bops_from_json(theirs["bops"], theirs["bops_table"])
    theirs_f = _fpga_from_json(theirs["fpga"], theirs["fpga_table"])
    assert dataclasses.asdict(mine_b) == dataclasses.asdict(theirs_b)
    assert dataclasses.asdict(mine_f) == dataclasses.asdict(theirs_f)
    assert mine_b.bops > 0 and mine_f.lut > 0


def test_docs_example_prints_what_the_page_shows(capsys):
    import pathlib
    import re
    text = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "hardware.md").read_text()
    code = re.findall(r"```python\n(.*?)```", text, flags=re.S)[0]
    namespace = {}
    exec(compile(code, "docs/hardware.md", "exec"), namespace)  # noqa: S102  (our own docs)
    printed = capsys.readouterr().out.splitlines()
    shown = re.findall(r"```\n(BOPs and EBOPs per sample.*?)```", text, flags=re.S)[0]
    for line in shown.splitlines():
        assert line in printed, line
    r, e = namespace["r"], namespace["e"]
    assert (r.bops, r.ebops, r.multiplications) == (149064, 38199.0, 3819)
    assert (e.lut, e.dsp, e.ff, e.latency_cycles, e.latency_ns) == (49050, 0, 5634, 11, 55.0)


@pytest.mark.parametrize("make,shape", [(jet_mlp, (1, 16)), (small_cnn, (2, 3, 12, 12)),
                                        (po2_mix, (1, 8)), (lstm_model, (5, 2, 8)),
                                        (two_layer_mlp, (1, 3)), (batch_norm_layer, (1, 2))])
def test_layer_infos_and_estimate_give_the_same_numbers(make, shape):
    torch.manual_seed(0)
    model = make()
    layers = cost.describe(model, shape)
    infos = cost.LayerInfos(layers)
    assert len(infos) == len(layers) and infos.names == [l["name"] for l in layers]
    reports = {}
    for f in (cost.bops, cost.fpga_estimate, cost.energy, cost.model_size, cost.data_types):
        mine, theirs = f(infos), f(layers)  # converted once / per call
        assert dataclasses.asdict(mine) == dataclasses.asdict(theirs)
        assert str(mine) == str(theirs) == theirs.table != ""
        reports[f.__name__] = theirs
    b, e = reports["bops"], reports["fpga_estimate"]
    expected = cost.CostEstimate(reports["energy"].total, reports["model_size"].total_bits, b.bops,
                                 b.ebops, e.lut, e.dsp, e.ff, e.latency_cycles, e.latency_ns)
    assert cost.estimate(model, shape) == cost.estimate(layers) == cost.estimate(infos) == expected
    # The options reach their models.
    options = {"input_quantizer": "quantized_bits(16,5)", "fpga_options": {"clock_period_ns": 2.5},
               "qtools_options": {"process": "horowitz", "for_reference": True}}
    c = cost.estimate(infos, **options)
    assert c.latency_ns == cost.fpga_estimate(layers, input_quantizer="quantized_bits(16,5)",
                                              clock_period_ns=2.5).latency_ns
    assert c.energy == cost.energy(layers, process="horowitz", for_reference=True).total
    with pytest.raises(ValueError, match="input_shape"):
        cost.estimate(layers, shape)
    with pytest.raises(TypeError, match="LayerInfos"):
        cost.LayerInfos(tuple(layers))


def test_reports_print_their_table_on_first_use():
    layers = cost.describe(jet_mlp(), (1, 16))
    r = cost.energy(layers)
    assert "_table" in vars(r) and callable(vars(r)["_table"])  # not printed yet
    assert r.table == str(r) and isinstance(vars(r)["_table"], str)
    given = cost.BopsReport(1, 1.0, 1, [], [], "the table")
    assert given.table == str(given) == "the table"
    assert cost.BopsReport(1, 1.0, 1, [], []).table == ""
    import copy
    import pickle
    for report in (cost.energy(layers), cost.bops(layers), cost.fpga_estimate(layers)):
        again = pickle.loads(pickle.dumps(report))  # the table printed
        assert again == report and again.table == report.table == copy.deepcopy(report).table


# ---- FixedQuantizer (widths per tensor, channel or element) in the cost models ----

def _jet_with(w, a):
    layers = []
    sizes = [(16, 64), (64, 32), (32, 32), (32, 5)]
    for i, (n_in, n_out) in enumerate(sizes):
        layers.append(QDense(n_in, n_out, kernel_quantizer=w, bias_quantizer=w))
        if i + 1 < len(sizes):
            layers.append(QActivation(a))
    model = torch.nn.Sequential(*layers)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.rand(p.shape, generator=g) * 2 - 1)
    return model


@pytest.mark.parametrize("fw,qw,fa,qa", [
    ("fixed(6,0)", "quantized_bits(6,0,alpha=1)", "fixed(6,0,keep_negative=False)",
     "quantized_bits(6,0,keep_negative=False,alpha=1)"),
    ("fixed(4,2)", "quantized_bits(4,2,alpha=1)", "fixed(3,1)", "quantized_bits(3,1,alpha=1)"),
    ("fixed(2,1)", "quantized_bits(2,1,alpha=1)", "fixed(8,3)", "quantized_bits(8,3,alpha=1)"),
])
def test_uniform_fixed_costs_what_quantized_bits_costs(fw, qw, fa, qa):
    """A uniform fixed(bits, integer) costs exactly what the quantized_bits(bits, integer,
    alpha=1) it equals costs, in every model (FixedQuantizerCost.UniformCostsWhatQuantizedBitsCosts
    in C++)."""
    fixed_model, qbits_model = _jet_with(fw, fa), _jet_with(qw, qa)
    fixed = cost.describe(fixed_model, (1, 16))
    qbits = cost.describe(qbits_model, (1, 16))
    for inp in ("quantized_relu(8,0)", "fixed(8,0,keep_negative=False)"):
        sa = cost.qstats(fixed_model, (1, 16), input_quantizer=inp)
        sb = cost.qstats(qbits_model, (1, 16))
        assert sa.operation_totals == sb.operation_totals
        assert sa.total_bits == sb.total_bits
        assert [l.accumulator for l in sa.layers] == [l.accumulator for l in sb.layers]
        ra, rb = cost.bops(fixed, input_quantizer=inp), cost.bops(qbits)
        assert (ra.bops, ra.ebops) == (rb.bops, rb.ebops)
        ea, eb = cost.fpga_estimate(fixed, input_quantizer=inp), cost.fpga_estimate(qbits)
        assert (ea.lut, ea.dsp, ea.ff, ea.latency_cycles) == (eb.lut, eb.dsp, eb.ff,
                                                              eb.latency_cycles)
    assert cost.energy(fixed, weights_on_memory="sram").total == \
        cost.energy(qbits, weights_on_memory="sram").total
    assert cost.energy(fixed, source_quantizer="fixed(8,0)").total == \
        cost.energy(qbits, source_quantizer="quantized_bits(8,0,alpha=1)").total
    assert cost.model_size(fixed).total_bits == cost.model_size(qbits).total_bits


def test_per_channel_fixed_widths():
    """Widths 3, 5, 7 per output channel (k 1, i 0 0 1, f 2 4 5): BOPs price each weight at its
    own width; the other models the widest type quantized_bits(7,1) (FixedQuantizerCost.
    PerChannelWidths in C++)."""
    from heteroq.hgq import FixedQuantizer
    q = FixedQuantizer.from_widths(1.0, torch.tensor([[0.0], [0.0], [1.0]]),
                                   torch.tensor([[2.0], [4.0], [5.0]]))
    m = torch.nn.Sequential(QDense(4, 3, bias=False, kernel_quantizer=q))
    _set(m[0].weight, [0.25, -0.5, 0.0, 0.75, 0.3, 0.0, -0.2, 0.1, 1.3, -0.7, 0.05, 0.0])
    layers = cost.describe(m, (1, 4))
    r = cost.bops(layers)
    w = q(m[0].weight.detach())
    widths = [3, 5, 7]
    assert r.multiplications == int((w != 0).sum())
    assert r.bops == sum(8 * widths[row] for row in range(3) for v in w[row] if v != 0)
    assert r.ebops == sum(8 * cost.bit_span(float(v)) for v in w.flatten())
    assert cost.qstats(m, (1, 4)).layers[0].operations[0].name == "smult_7_8"
    t = cost.data_types(layers).layers[0].stages[0].weight
    assert (t.bits, t.int_bits) == (7, 1)
    # zero-bit channels (k + i + f = 0) quantize to 0 and cost nothing
    q0 = FixedQuantizer.from_widths(1.0, 0.0, torch.tensor([[2.0], [4.0], [-1.0]]))
    m0 = torch.nn.Sequential(QDense(4, 3, bias=False, kernel_quantizer=q0))
    w0 = q0(m0[0].weight.detach())
    assert torch.all(w0[2] == 0)
    r0 = cost.bops(m0, (1, 4))
    assert r0.bops == 8 * (3 * int((w0[0] != 0).sum()) + 5 * int((w0[1] != 0).sum()))
    assert cost.qstats(m0, (1, 4)).layers[0].operations[0].name == "smult_5_8"


def _hgq_model():
    from heteroq import hgq
    torch.manual_seed(0)
    model = torch.nn.Sequential(hgq.HDense(16, 8), hgq.HActivation((8,), relu=True),
                                hgq.HDense(8, 5))
    model.train()
    model(torch.randn(256, 16))  # the ranges the widths follow
    model.eval()
    model(torch.zeros(1, 16))    # per sample
    return model


def test_hgq_models_are_priced_after_conversion():
    """An HGQ model converted to Q layers with FixedQuantizers (heteroq.hgq.convert) is priced by
    every cost model; describe converts an H model itself."""
    from heteroq import hgq
    model = _hgq_model()
    c = cost.estimate(hgq.convert(model), (1, 16))
    assert c.bops > 0 and c.ebops > 0 and c.energy > 0 and c.lut > 0
    assert cost.estimate(model, (1, 16)) == c


def test_hgq_ebops_equal_the_cost_model():
    """The H layers' differentiable ebops() and cost.bops of the converted model agree: inputs
    with widths per element (the H layers' input quantizers) weigh each weight's span by its
    input feature's width."""
    from heteroq import hgq
    model = _hgq_model()
    r = cost.bops(model, (1, 16))
    dense = [l for l in r.layers if l.kind == "dense"]
    assert [l.ebops for l in dense] == pytest.approx(
        [float(model[0].ebops()), float(model[2].ebops())], rel=1e-9)
    # per element by hand for the first layer: Σ_ij bw_in[j] span(w[i, j]) + the bias term
    conv = hgq.convert(model)
    act, fc = conv[0], conv[1]
    bw_in = act.quantizer.bit_widths().expand(16)
    w = fc.kernel_quantizer(fc.weight.detach())
    b = fc.bias_quantizer(fc.bias.detach())
    by_hand = sum(float(bw_in[j]) * cost.bit_span(float(w[i, j]))
                  for i in range(8) for j in range(16))
    by_hand += sum(cost.bit_span(float(v)) for v in b) / 8 * 8
    assert dense[0].ebops == pytest.approx(by_hand)
    widths = fc.kernel_quantizer.bit_widths().expand(8, 16)
    assert dense[0].bops == round(sum(float(bw_in[j]) * float(widths[i, j])
                                      for i in range(8) for j in range(16) if w[i, j] != 0))
