# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""Saving and loading quantized weights (issue 4): the integer form of every quantizer family,
the documented file layout, model round trips, and bad input. The C++ side is
tests/cpp/test_serialize.cpp."""
import json
import os
import struct

import pytest
import torch

import heteroq
from heteroq import nn as qnn
from heteroq import serialize as S

FAMILY_SPECS = [
    "quantized_bits(6,0,alpha=1)",
    "quantized_bits(4,2,1)",
    "quantized_bits(8,0,0,keep_negative=False,alpha=1)",
    "quantized_bits(5,1,alpha=0.3)",
    "quantized_bits(4,0,alpha=[0.5,1.5,0.25,3.0,1.0,0.75])",
    "quantized_bits(4,0,alpha='auto')",
    "quantized_bits(4,1,alpha='auto_po2')",
    "quantized_bits(6,0,alpha='auto_po2',elements_per_scale=[2],min_po2_exponent=-4)",
    "quantized_bits(1,0,alpha=0.5)",
    "quantized_relu(6,2)",
    "quantized_relu(6,2,0,0.25)",
    "quantized_relu(4,1,1)",
    "quantized_relu(4,0,enable_fast_inference=1)",
    "quantized_tanh(5)",
    "quantized_sigmoid(5)",
    "quantized_po2(5)",
    "quantized_po2(4,1,quadratic_approximation=1)",
    "quantized_relu_po2(6,2048)",
    "quantized_relu_po2(8)",
    "binary()",
    "binary(alpha=0.5)",
    "binary(use_01=1)",
    "binary(alpha='auto_po2')",
    "ternary()",
    "ternary(alpha='auto')",
    "ternary(alpha='auto_po2')",
    "stochastic_binary(alpha='auto_po2')",
    "stochastic_ternary(alpha='auto')",
    "quantized_hswish(6,2)",
]


@pytest.mark.parametrize("spec", FAMILY_SPECS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_integer_form_reconstructs_bit_exactly(spec, dtype):
    q = heteroq.get_quantizer(spec).eval()
    w = torch.randn(6, 5, 3, 3, dtype=dtype) * 1.5
    w[0, 0] = 0.0
    w[1, 1, 1, 1] = 40.0
    inputs = [w] if "[0.5" in spec else [w, torch.randn(6, dtype=dtype)]
    for x in inputs:
        it = S.quantize_to_integer(q, x)
        assert not it.values.is_floating_point() and it.values.dtype != torch.bool
        assert it.values.shape == x.shape
        assert it.min_code <= int(it.values.min()) and int(it.values.max()) <= it.max_code
        assert torch.equal(it.dequantize(dtype), q(x))
        if it.encoding == "po2":
            assert it.scale is None and torch.all(it.sign.abs() == 1)
        else:
            assert it.scale.dtype == dtype and it.scale.dim() in (0, x.dim())


def test_integer_form_layouts():
    it = S.quantize_to_integer("quantized_bits(4,0,alpha=1)", torch.tensor([0.3, -1.2]))
    assert it.encoding == "fixed_point" and it.frac == 3 and it.signed
    assert torch.equal(it.values, torch.tensor([2, -8], dtype=torch.int8))
    w = torch.randn(4, 3, 2, 2)
    it = S.quantize_to_integer(heteroq.quantized_bits(4, 0, alpha="auto_po2"), w)
    assert it.scale.shape == (4, 1, 1, 1) and it.scale_axes == [0]
    assert torch.equal(torch.exp2(torch.log2(it.scale).round()), it.scale)
    it = S.quantize_to_integer("quantized_bits(4,0,alpha=[1,2,3],scale_axis=1)", w)
    assert it.scale.shape == (1, 3, 1, 1) and it.scale_axes == [1]
    it = S.quantize_to_integer("quantized_relu(8,2)", w)
    assert not it.signed and it.values.dtype == torch.int16 and it.frac == 6
    it = S.quantize_to_integer("quantized_po2(4)", w)
    assert (it.encoding, it.min_code, it.max_code) == ("po2", -4, 3)


@pytest.mark.parametrize("spec, message", [
    ("quantized_ulaw(6)", "not uniform"),
    ("bernoulli()", "random"),
    ("quantized_bits(4,0,alpha=1,qnoise_factor=0.5)", "qnoise_factor"),
])
def test_integer_form_rejects_what_has_none(spec, message):
    with pytest.raises(ValueError, match=message):
        S.quantize_to_integer(spec, torch.randn(4, 3))


def test_integer_form_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        S.quantize_to_integer("quantized_bits(4)", torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match="float32 or float64"):
        S.quantize_to_integer("quantized_bits(4)", torch.ones(2, dtype=torch.int32))
    with pytest.raises(TypeError):
        S.quantize_to_integer(3, torch.ones(2))
    with pytest.raises(TypeError):
        S.quantize_to_integer("quantized_bits(4)", [1.0])


class AllLayers(torch.nn.Module):
    """Every heteroq layer kind with quantized tensors, several quantizer families, a float torch
    layer and an activation."""

    def __init__(self):
        super().__init__()
        self.fc = qnn.QDense(8, 6, kernel_quantizer="quantized_bits(6,0,alpha=1)",
                             bias_quantizer="quantized_bits(8,3,alpha=1)")
        self.fc_po2 = qnn.QLinear(8, 6, kernel_quantizer="quantized_bits(4,0,alpha='auto_po2')",
                                  bias_quantizer="quantized_po2(6)")
        self.act = qnn.QActivation("quantized_relu(6,2)")
        self.c1 = qnn.QConv1d(3, 4, 3, kernel_quantizer="ternary(alpha='auto')",
                              bias_quantizer="quantized_bits(8,2,alpha=1)")
        self.c2 = qnn.QConv2d(3, 4, 3, kernel_quantizer="binary(alpha='auto_po2')")
        self.ct = qnn.QConvTranspose2d(3, 2, 3, kernel_quantizer="quantized_bits(5,1,alpha=0.5)")
        self.dw = qnn.QDepthwiseConv2d(3, 3, depthwise_quantizer="quantized_bits(4,0,alpha=[0.5,1,2])")
        self.sep = qnn.QSeparableConv2d(3, 5, 3, depthwise_quantizer="quantized_po2(4)",
                                        pointwise_quantizer="quantized_bits(6,0,alpha='auto')",
                                        bias_quantizer="quantized_bits(8,3,alpha=1)")
        self.bn2 = qnn.QBatchNorm2d(3, gamma_quantizer="quantized_relu_po2(6,2048)",
                                    beta_quantizer="quantized_po2(5)",
                                    mean_quantizer="quantized_po2(5)",
                                    variance_quantizer="quantized_relu_po2(6,quadratic_approximation=1)")
        self.bn1 = qnn.QBatchNorm1d(6, inverse_quantizer="quantized_bits(8,3,alpha=1)",
                                    mean_quantizer="quantized_bits(8,3,alpha=1)")
        self.fold2 = qnn.QConv2dBatchNorm(3, 4, 3, kernel_quantizer="quantized_bits(6,0,alpha=1)",
                                          bias_quantizer="quantized_bits(10,4,alpha=1)")
        self.fold1 = qnn.QLinearBatchNorm(8, 6, kernel_quantizer="quantized_bits(4,0,alpha='auto_po2')",
                                          ema_freeze_delay=3)
        self.head = torch.nn.Linear(8, 3)

    def forward(self, x2, x3, x4):
        return [self.act(self.fc(x2)), self.fc_po2(x2), self.c1(x3), self.c2(x4), self.ct(x4),
                self.dw(x4), self.sep(x4), self.bn2(x4), self.bn1(self.fc(x2)), self.fold2(x4),
                self.fold1(x2), self.head(x2)]


def inputs():
    return torch.randn(5, 8), torch.randn(5, 3, 9), torch.randn(5, 3, 7, 7)


def trained_model(seed):
    torch.manual_seed(seed)
    m = AllLayers().train()
    for _ in range(4):
        m(*inputs())
    return m.eval()


def state(m):
    return [t.detach().clone() for t in list(m.parameters()) + list(m.buffers())]


def same_state(a, b):
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


def test_round_trip_gives_identical_outputs(tmp_path):
    path = tmp_path / "model.safetensors"
    src = trained_model(0)
    torch.manual_seed(42)
    x = inputs()
    before = state(src)
    expected = src(*x)
    info = S.save_quantized_weights(src, path)
    assert same_state(before, state(src))  # saving changes nothing
    dst = trained_model(7)
    assert not torch.equal(dst(*x)[0], expected[0])
    S.load_quantized_weights(dst, str(path))
    got = dst(*x)
    assert all(torch.equal(g, e) for g, e in zip(got, expected))
    assert torch.equal(dst.bn2.running_var, src.bn2.running_var)
    assert int(dst.fold1.num_batches_tracked) == 4
    assert torch.equal(dst.fc.weight, dst.fc.quantized_weight())  # QKeras: the quantized values
    assert torch.equal(dst.ct.weight * 0.5, dst.ct.quantized_weight())  # the input grid (alpha)
    # Saving the loaded model gives the same integers.
    again = S.save_quantized_weights(dst, tmp_path / "again.safetensors")
    for layer, tensors in info.items():
        for name, d in tensors.items():
            assert torch.equal(again[layer][name]["values"], d["values"]), (layer, name)
    # Scripted models have lost their quantizers: load into the eager model, then script.
    with pytest.raises(TypeError, match="TorchScript"):
        S.load_quantized_weights(torch.jit.script(trained_model(3)), path)
    scripted = torch.jit.script(dst)
    assert all(torch.equal(g, e) for g, e in zip(scripted(*x), expected))


def test_returned_dict_describes_each_entry(tmp_path):
    m = trained_model(1)
    info = S.save_quantized_weights(m, tmp_path / "m.safetensors")
    fcw = info["fc"]["weight"]
    assert fcw["encoding"] == "fixed_point" and fcw["values"].dtype == torch.int8
    assert (fcw["bits"], fcw["integer"], fcw["frac"], fcw["signed"]) == (6, 0, 5, True)
    assert fcw["quantizer"] == "quantized_bits(6,0,0,alpha=1.0)" and fcw["class"] == "QLinear"
    assert fcw["quantizer_config"]["class_name"] == "quantized_bits"
    assert torch.equal(fcw["values"] * fcw["scale"] * 2.0 ** -fcw["frac"], m.fc.quantized_weight())
    assert info["fc_po2"]["weight"]["scale"].shape == (6, 1)
    assert info["fc_po2"]["bias"]["encoding"] == "po2"
    assert torch.equal(info["fc_po2"]["bias"]["sign"] * torch.exp2(info["fc_po2"]["bias"]["values"].float()),
                       m.fc_po2.quantized_bias())
    assert info["c1"]["weight"]["encoding"] == "ternary"
    assert info["c2"]["bias"]["encoding"] == "float"
    assert info["ct"]["weight"]["restore"] == "unscaled"
    assert info["dw"]["weight"]["scale"].shape == (3, 1, 1, 1)  # Python's depthwise is a QConv2d
    assert info["sep.depthwise"]["weight"]["encoding"] == "po2"
    assert info["bn2"]["running_mean"]["role"] == "buffer"
    assert info["bn2"]["quantized_running_mean"]["role"] == "derived"
    assert info["bn1"]["weight"]["encoding"] == "float"  # the inverse quantizer replaces gamma's
    assert info["bn1"]["inverse"]["encoding"] == "fixed_point"
    fw, fb = m.fold2.get_folded_weights()
    assert torch.equal(info["fold2"]["folded_weight"]["values"] * info["fold2"]["folded_weight"]["scale"]
                       * 2.0 ** -info["fold2"]["folded_weight"]["frac"],
                       heteroq.quantized_bits(6, 0, alpha=1)(fw))
    assert info["fold2"]["folded_bias"]["encoding"] == "fixed_point"
    assert info["fold1"]["num_batches_tracked"]["values"].dtype == torch.int64
    assert info["head"]["weight"]["class"] == "Linear"


def test_file_layout_is_the_documented_one(tmp_path):
    """Reads the file with nothing but struct and json, as docs/saving.md describes it."""
    path = tmp_path / "m.safetensors"
    fc = qnn.QLinear(3, 2, kernel_quantizer="quantized_bits(4,0,alpha=1)",
                     bias_quantizer="quantized_po2(4)")
    S.save_quantized_weights(fc, path)
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0 and len(raw) > 8 + n
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__")
    assert meta["format"] == S.FORMAT == "heteroq.quantized_weights"
    assert meta["format_version"] == "1" and meta["heteroq_version"] == heteroq.__version__
    assert list(header) == ["weight", "weight:scale", "bias", "bias:sign"]
    assert header["weight"] == {"dtype": "I8", "shape": [2, 3], "data_offsets": [0, 6]}
    assert header["weight:scale"] == {"dtype": "F32", "shape": [], "data_offsets": [6, 10]}
    assert header["bias"] == {"dtype": "I8", "shape": [2], "data_offsets": [10, 12]}
    assert header["bias:sign"] == {"dtype": "I8", "shape": [2], "data_offsets": [12, 14]}
    assert len(raw) == 8 + n + 14
    entries = json.loads(meta["entries"])
    w = entries["weight"]
    assert (w["layer"], w["class"], w["tensor"], w["role"], w["dtype"]) == ("", "QLinear", "weight",
                                                                          "parameter", "F32")
    assert (w["encoding"], w["bits"], w["integer"], w["frac"], w["signed"]) == ("fixed_point", 4, 0, 3, True)
    assert (w["min_code"], w["max_code"], w["scale"], w["scale_axes"]) == (-8, 7, "weight:scale", [])
    data = raw[8 + n:]
    codes = torch.tensor(list(struct.unpack("<6b", data[0:6]))).reshape(2, 3)
    (scale,) = struct.unpack("<f", data[6:10])
    assert torch.equal(codes * scale * 2.0 ** -w["frac"], fc.quantized_weight())
    b = entries["bias"]
    assert (b["encoding"], b["sign"]) == ("po2", "bias:sign")
    exps = struct.unpack("<2b", data[10:12])
    signs = struct.unpack("<2b", data[12:14])
    assert torch.equal(torch.tensor([s * 2.0 ** e for s, e in zip(signs, exps)]), fc.quantized_bias())
    tensors, metadata = S.read_tensor_file(path)
    assert list(tensors) == ["weight", "weight:scale", "bias", "bias:sign"] and metadata == meta


def test_generic_tensor_files(tmp_path):
    ts = {"f64": torch.randn(2, 3, dtype=torch.float64), "f16": torch.randn(4).half(),
          "bf16": torch.randn(4).bfloat16(), "i64": torch.arange(5), "u8": torch.arange(3).byte(),
          "b": torch.tensor([True, False]), "empty": torch.zeros(0, 3)}
    S.write_tensor_file(tmp_path / "g.safetensors", ts, {"k": "v"})
    got, meta = S.read_tensor_file(tmp_path / "g.safetensors")
    assert list(got) == list(ts) and meta == {"k": "v"}
    assert all(torch.equal(got[k], v) for k, v in ts.items())
    with pytest.raises(ValueError, match="`c` has dtype ComplexFloat"):
        S.write_tensor_file(tmp_path / "c.safetensors", {"c": torch.zeros(2, dtype=torch.complex64)})
    assert not (tmp_path / "c.safetensors").exists()


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "m.safetensors"
    S.save_quantized_weights(trained_model(0), path)
    target = trained_model(3)
    return path, path.read_bytes(), target, state(target)


def _header(raw):
    (n,) = struct.unpack("<Q", raw[:8])
    return raw[8:8 + n].decode(), raw[8 + n:]


def _with_header(raw, text):
    _, data = _header(raw)
    return struct.pack("<Q", len(text)) + text.encode() + data


def _expect_load_error(saved, raw, *parts):
    path, _, target, before = saved
    path.write_bytes(raw)
    with pytest.raises(ValueError) as e:
        S.load_quantized_weights(target, path)
    for p in (str(path),) + parts:
        assert p in str(e.value), (p, str(e.value))
    assert same_state(before, state(target))


def test_truncated_file(saved):
    raw = saved[1]
    _expect_load_error(saved, raw[:-100], "out of range", "truncated")
    _expect_load_error(saved, raw[:5], "truncated")
    _expect_load_error(saved, raw[:8 + len(_header(raw)[0]) // 2], "truncated")


def test_wrong_header_length(saved):
    raw = saved[1]
    (n,) = struct.unpack("<Q", raw[:8])
    _expect_load_error(saved, struct.pack("<Q", 1 << 40) + raw[8:], "header length")
    _expect_load_error(saved, struct.pack("<Q", n - 16) + raw[8:], "not valid JSON")
    _expect_load_error(saved, struct.pack("<Q", 0) + raw[8:], "header length 0")


def test_corrupted_header(saved):
    raw = saved[1]
    text, _ = _header(raw)
    _expect_load_error(saved, _with_header(raw, text.replace(":", ";", 1)), "not valid JSON")
    _expect_load_error(saved, _with_header(raw, text.replace('"F32"', '"X32"', 1)),
                       "unsupported dtype")
    _expect_load_error(saved, _with_header(raw, text.replace('"shape":[6,8]', '"shape":[6,9]', 1)),
                       "fc.weight", "needs 54 bytes")
    _expect_load_error(saved, _with_header(raw, text.replace("heteroq.quantized_weights", "other")),
                       "not a heteroq quantized-weights file")
    bad = raw[:8] + b"\xff" + raw[9:]  # not UTF-8
    _expect_load_error(saved, bad, "not valid JSON")


def test_offsets_out_of_range_or_overlapping(saved):
    raw = saved[1]
    text, _ = _header(raw)
    header = json.loads(text)
    header["fc.weight"]["data_offsets"] = [100000000, 100000048]
    _expect_load_error(saved, _with_header(raw, json.dumps(header)), "fc.weight", "out of range")
    header = json.loads(text)
    assert header["fc.weight:scale"]["data_offsets"] == [48, 52]
    header["fc.weight:scale"]["data_offsets"] = [44, 48]
    _expect_load_error(saved, _with_header(raw, json.dumps(header)), "overlap")
    header = json.loads(text)
    del header["fc.weight:scale"]
    _expect_load_error(saved, _with_header(raw, json.dumps(header)), "belong to no tensor")


def test_modified_entries(saved):
    path = saved[0]
    tensors, meta = S.read_tensor_file(path)
    changed = dict(tensors, **{"fc.weight": torch.full_like(tensors["fc.weight"], 100)})
    S.write_tensor_file(path, changed, meta)
    _expect_load_error(saved, path.read_bytes(), "fc.weight", "exceed the format's range")
    changed = dict(tensors, **{"fc_po2.weight:scale": tensors["fc_po2.weight:scale"] * 3})
    S.write_tensor_file(path, changed, meta)
    _expect_load_error(saved, path.read_bytes(), "fc_po2.weight", "does not reproduce")
    entries = json.loads(meta["entries"])
    del entries["head.bias"]
    S.write_tensor_file(path, tensors, dict(meta, entries=json.dumps(entries)))
    _expect_load_error(saved, path.read_bytes(), "has no entry", "head.bias")


def _two_layers(out=2, q="quantized_bits(4,0,alpha=1)", extra=False, last=None):
    layers = [qnn.QLinear(4, 3, kernel_quantizer="quantized_bits(4,0,alpha=1)"),
              last if last is not None else qnn.QLinear(3, out, kernel_quantizer=q)]
    if extra:
        layers.append(qnn.QLinear(2, 2))
    return torch.nn.Sequential(*layers)


@pytest.mark.parametrize("model, parts", [
    (lambda: torch.nn.Sequential(qnn.QLinear(4, 3, kernel_quantizer="quantized_bits(4,0,alpha=1)")),
     ("1.weight", "matches no tensor")),
    (lambda: _two_layers(extra=True), ("has no entry", "2.weight")),
    (lambda: _two_layers(out=5), ("1.weight", "shape [2, 3]", "[5, 3]")),
    (lambda: _two_layers(q="quantized_bits(6,0,alpha=1)"),
     ("1.weight", "quantized_bits(4,0,0,alpha=1.0)", "quantized_bits(6,0,0,alpha=1.0)")),
    (lambda: _two_layers(last=torch.nn.Linear(3, 2)), ("1.weight", "QLinear")),
    (lambda: _two_layers().double(), ("F32", "F64")),
])
def test_mismatching_model_is_rejected_and_unchanged(tmp_path, model, parts):
    path = tmp_path / "m.safetensors"
    S.save_quantized_weights(_two_layers(), path)
    m = model()
    before = state(m)
    with pytest.raises(ValueError) as e:
        S.load_quantized_weights(m, path)
    for p in (str(path),) + parts:
        assert p in str(e.value), (p, str(e.value))
    assert same_state(before, state(m))


def test_failed_write_leaves_no_file_and_keeps_the_old_one(tmp_path):
    path = tmp_path / "m.safetensors"
    good = qnn.QLinear(4, 3, kernel_quantizer="quantized_bits(4,0,alpha=1)")
    S.save_quantized_weights(good, path)
    old = path.read_bytes()
    bad = qnn.QLinear(4, 3, kernel_quantizer="quantized_ulaw(6)")
    with pytest.raises(ValueError, match="weight.*QLinear.*quantized_ulaw"):
        S.save_quantized_weights(bad, path)
    assert path.read_bytes() == old
    (tmp_path / "sub").mkdir()
    with pytest.raises(ValueError, match="rename"):
        S.save_quantized_weights(good, tmp_path / "sub")
    with pytest.raises(ValueError, match="cannot create"):
        S.save_quantized_weights(good, tmp_path / "nowhere" / "m.safetensors")
    if os.geteuid() != 0:  # root writes to read-only directories anyway
        (tmp_path / "sub").chmod(0o500)
        with pytest.raises(ValueError, match="cannot create"):
            S.save_quantized_weights(good, tmp_path / "sub" / "m.safetensors")
        (tmp_path / "sub").chmod(0o700)
    (tmp_path / "sub").rmdir()
    assert sorted(os.listdir(tmp_path)) == ["m.safetensors"]  # no temporary file left
    assert path.read_bytes() == old


def test_other_bad_arguments(tmp_path):
    with pytest.raises(TypeError):
        S.save_quantized_weights(object(), tmp_path / "m")
    with pytest.raises(TypeError):
        S.save_quantized_weights(qnn.QLinear(2, 2), 3)
    with pytest.raises(ValueError, match="cannot read"):
        S.load_quantized_weights(qnn.QLinear(2, 2), tmp_path / "missing")


def test_layer_table_matches_the_python_layers():
    table = heteroq._C.quantized_layer_table()
    for cls in ("QLinear", "QConv1d", "QConv2d", "QConvTranspose2d", "QDepthwiseConv2d",
                "QBatchNorm1d", "QBatchNorm2d", "QConv2dBatchNorm", "QLinearBatchNorm"):
        assert cls in table
        layer_cls = getattr(qnn, cls)
        assert layer_cls.__name__ == cls
    assert ("weight", "kernel_quantizer") in table["QLinear"]
    assert ("folded_weight", "kernel_quantizer") in table["QConv2dBatchNorm"]


def test_recurrent_layers_round_trip(tmp_path):
    """QSimpleRNN/QLSTM/QGRU (bidirectional, 2 layers): weights as integers, identical outputs."""
    def build(seed):
        torch.manual_seed(seed)
        return torch.nn.ModuleDict({
            "rnn": qnn.QSimpleRNN(4, 5, kernel_quantizer="quantized_bits(6,0,alpha=1)",
                                  recurrent_quantizer="quantized_bits(5,0,alpha=1)",
                                  bias_quantizer="quantized_bits(8,2,alpha=1)"),
            "lstm": qnn.QLSTM(4, 3, num_layers=2, bidirectional=True,
                              kernel_quantizer="quantized_po2(4)",
                              recurrent_quantizer="quantized_bits(4,0,alpha='auto_po2')",
                              state_quantizer="quantized_bits(8,1,alpha=1)"),
            "gru": qnn.QGRU(4, 3, recurrent_quantizer="ternary(alpha='auto')",
                            bias_quantizer="quantized_bits(8,2,alpha=1)"),
        }).eval()
    src, dst = build(0), build(1)
    x = torch.randn(7, 2, 4)
    info = S.save_quantized_weights(src, tmp_path / "rnn.safetensors")
    assert info["lstm"]["weight_hh_l1_reverse"]["encoding"] == "fixed_point"
    assert info["lstm"]["weight_ih_l1"]["encoding"] == "po2"
    assert info["gru"]["weight_hh_l0"]["encoding"] == "ternary"
    assert info["gru"]["weight_ih_l0"]["encoding"] == "float"  # no kernel quantizer
    assert info["rnn"]["bias_hh_l0"]["values"].dtype == torch.int8
    S.load_quantized_weights(dst, tmp_path / "rnn.safetensors")
    for name in ("rnn", "lstm", "gru"):
        assert torch.equal(dst[name](x)[0], src[name](x)[0]), name
