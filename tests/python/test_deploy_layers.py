# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""heteroq.deploy: layers chained without an activation, separable and transposed convolutions,
padding="same", padding modes and padded pooling, bit-exact against the QAT model's eval forward."""
import json
import subprocess

import numpy as np
import pytest
import torch

from heteroq import deploy
from heteroq import nn as hnn

Q6 = "quantized_bits(6,0,alpha=1)"
AUTO = "quantized_bits(6,0,alpha='auto_po2')"
INP = "quantized_bits(8,2,alpha=1)"


def forward(model, x):
    with torch.no_grad():
        return model(x)


def grid_inputs(shape, scale=3.0, seed=0):
    """Random values plus exact ties (k + 1/2) 2^-f of the input grids, where rounding matters."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * scale
    n = shape[0] // 2
    f = torch.randint(0, 7, (n,) + tuple(shape[1:]), generator=g).float()
    k = torch.randint(-40, 40, (n,) + tuple(shape[1:]), generator=g).float()
    x[:n] = (k + 0.5) * torch.pow(2.0, -f)
    return x


def assert_exact(engine, model, x):
    ref = forward(model, x)
    out = engine(x)
    assert out.shape == ref.shape
    bad = (out != ref).nonzero()
    assert bad.numel() == 0, f"{len(bad)} differences, first at {bad[0].tolist()}: " \
        f"{out[tuple(bad[0])].item()} vs {ref[tuple(bad[0])].item()}"


def roundtrip(engine, tmp_path, x):
    """The saved file runs the same."""
    path = tmp_path / "m.engine"
    engine.save(path)
    back = deploy.load(path)
    assert np.array_equal(back.run_codes(x), engine.run_codes(x))
    return back


def test_dense_after_dense_without_activation(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        hnn.QActivation(INP),
        hnn.QDense(16, 24, kernel_quantizer=AUTO, bias_quantizer=Q6),
        hnn.QDense(24, 12, kernel_quantizer="quantized_bits(4,0,alpha=1)",
                   bias_quantizer="quantized_bits(8,3,alpha=1)"),
        hnn.QDense(12, 8, kernel_quantizer="ternary(alpha=1)", bias=False),
        hnn.QActivation("quantized_relu(6,2)"),
        hnn.QDense(8, 3, kernel_quantizer=Q6, bias=False)).eval()
    engine = deploy.compile(model)
    kinds = [s["kind"] for s in engine.stage_info()]
    assert kinds == ["dense", "dense", "dense", "requantize", "dense"]
    assert engine.float32_exact
    # the chained accumulators keep a frac per channel (auto_po2: per-channel scales)
    x = grid_inputs((500, 16))
    assert_exact(engine, model, x)
    roundtrip(engine, tmp_path, x)


def test_chained_bound_is_per_channel():
    """The bound of a layer after another is computed per input channel: a channel at a coarse
    frac whose weights are lifted does not inflate the others."""
    fc1 = hnn.QDense(2, 2, bias=False, kernel_quantizer="quantized_bits(8,0,alpha='auto_po2')")
    fc2 = hnn.QDense(2, 1, bias=False, kernel_quantizer="quantized_bits(4,0,alpha=1)")
    with torch.no_grad():
        fc1.weight.copy_(torch.tensor([[0.5, 0.0], [0.0, 0.002]]))
        fc2.weight.copy_(torch.tensor([[0.5, 0.5]]))
    model = torch.nn.Sequential(hnn.QActivation("quantized_bits(4,3,alpha=1)"), fc1, fc2).eval()
    engine = deploy.compile(model)
    info = engine.stage_info()
    x = grid_inputs((200, 2), scale=8)
    assert_exact(engine, model, x)
    # the exact bound: max over inputs of |fc2(fc1(x))| at the output frac
    codes = torch.tensor([[-8.0, -8.0], [-8.0, 7.0], [7.0, -8.0], [7.0, 7.0]])
    top = np.abs(engine.run_codes(codes)).max()
    assert top <= info[1]["max_abs"] < 4 * top


@pytest.mark.parametrize("conv", ["2d", "1d"])
def test_separable_convolutions(conv, tmp_path):
    torch.manual_seed(1)
    if conv == "2d":
        sep = hnn.QSeparableConv2d(3, 8, 3, depth_multiplier=2, padding=1,
                                   depthwise_quantizer=AUTO, pointwise_quantizer=AUTO,
                                   bias_quantizer="quantized_bits(8,3,alpha=1)")
        shape, flat = (3, 9, 9), 8 * 9 * 9
    else:
        sep = hnn.QSeparableConv1d(3, 8, 5, stride=2, depthwise_quantizer="quantized_bits(4,0,alpha=1)",
                                   pointwise_quantizer="quantized_po2(4)",
                                   bias_quantizer="quantized_bits(8,3,alpha=1)")
        shape, flat = (3, 21), 8 * 9
    model = torch.nn.Sequential(hnn.QActivation(INP), sep, hnn.QActivation("quantized_relu(6,2)"),
                                torch.nn.Flatten(), hnn.QDense(flat, 4, kernel_quantizer=Q6, bias=False)).eval()
    engine = deploy.compile(model, input_shape=shape)
    names = [s["name"] for s in engine.stage_info()]
    assert names[0].startswith("layer `1.depthwise`") and names[1].startswith("layer `1.pointwise`")
    assert engine.float32_exact
    x = grid_inputs((64,) + shape)
    assert_exact(engine, model, x)
    roundtrip(engine, tmp_path, x)


@pytest.mark.parametrize("kernel,dilation", [(3, 1), (4, 1), (2, 3), ((2, 5), (1, 2))])
def test_padding_same(kernel, dilation):
    torch.manual_seed(2)
    model = torch.nn.Sequential(
        hnn.QActivation(INP),
        hnn.QConv2d(2, 4, kernel, padding="same", dilation=dilation, kernel_quantizer=AUTO,
                    bias_quantizer=Q6),
        hnn.QActivation("quantized_relu(6,2)"),
        hnn.QConv2d(4, 3, 2, padding="valid", kernel_quantizer=Q6, bias=False)).eval()
    engine = deploy.compile(model, input_shape=(2, 7, 7))
    assert engine.output_shape == [3, 6, 6]
    assert_exact(engine, model, grid_inputs((40, 2, 7, 7)))


def test_padding_same_1d():
    torch.manual_seed(3)
    model = torch.nn.Sequential(
        hnn.QActivation(INP),
        hnn.QConv1d(2, 4, 4, padding="same", kernel_quantizer=Q6, bias_quantizer=Q6)).eval()
    engine = deploy.compile(model, input_shape=(2, 11))
    assert engine.output_shape == [4, 11]
    assert_exact(engine, model, grid_inputs((50, 2, 11)))


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_padding_modes(mode, tmp_path):
    torch.manual_seed(4)
    model = torch.nn.Sequential(
        hnn.QActivation(INP),
        hnn.QConv2d(2, 3, 3, padding=(1, 2), padding_mode=mode, kernel_quantizer=AUTO,
                    bias_quantizer=Q6),
        hnn.QConv2d(3, 2, 4, padding="same", padding_mode=mode, kernel_quantizer=Q6, bias=False)).eval()
    engine = deploy.compile(model, input_shape=(2, 6, 5))
    kinds = [s["kind"] for s in engine.stage_info()]
    assert kinds == ["gather", "conv2d", "gather", "conv2d"]
    x = grid_inputs((40, 2, 6, 5))
    assert_exact(engine, model, x)
    roundtrip(engine, tmp_path, x)
    conv1d = torch.nn.Sequential(hnn.QActivation(INP), hnn.QConv1d(
        2, 3, 3, padding=2, padding_mode=mode, kernel_quantizer=Q6, bias=False)).eval()
    assert_exact(deploy.compile(conv1d, input_shape=(2, 9)), conv1d, grid_inputs((40, 2, 9)))


@pytest.mark.parametrize("stride,padding,output_padding,groups,dilation", [
    (1, 0, 0, 1, 1), (2, 1, 1, 1, 1), (2, 0, 0, 2, 1), (3, 2, 1, 1, 2), ((2, 1), (0, 1), (1, 0), 2, 1)])
def test_transposed_convolution(stride, padding, output_padding, groups, dilation, tmp_path):
    torch.manual_seed(5)
    model = torch.nn.Sequential(
        hnn.QActivation(INP),
        hnn.QConvTranspose2d(4, 6, 3, stride=stride, padding=padding, output_padding=output_padding,
                             groups=groups, dilation=dilation, kernel_quantizer=AUTO,
                             bias_quantizer=Q6),
        hnn.QActivation("quantized_bits(6,2,alpha=1)")).eval()
    engine = deploy.compile(model, input_shape=(4, 5, 4))
    x = grid_inputs((30, 4, 5, 4))
    assert engine.output_shape == list(forward(model, x).shape[1:])
    assert_exact(engine, model, x)
    roundtrip(engine, tmp_path, x)


def test_transposed_convolution_quantizers():
    torch.manual_seed(6)
    for wq in ["quantized_bits(4,0,alpha=1)", "quantized_po2(4)", "ternary(alpha=1)", "binary(alpha=0.5)"]:
        model = torch.nn.Sequential(
            hnn.QActivation(INP),
            hnn.QConvTranspose2d(3, 2, 4, stride=2, padding=1, kernel_quantizer=wq,
                                 bias_quantizer=Q6)).eval()
        engine = deploy.compile(model, input_shape=(3, 4, 4))
        assert engine.float32_exact, wq
        assert_exact(engine, model, grid_inputs((30, 3, 4, 4)))


def test_pooling_with_padding_and_after_a_convolution():
    torch.manual_seed(7)
    model = torch.nn.Sequential(
        hnn.QActivation(INP),
        hnn.QConv2d(2, 4, 3, kernel_quantizer=AUTO, bias_quantizer=Q6),
        hnn.QAvgPool2d(3, stride=2, padding=1, average_quantizer="quantized_bits(6,0,alpha=1)"),
        hnn.QAvgPool2d(2, padding=1),
        hnn.QActivation("quantized_relu(6,2)"),
        hnn.QAvgPool2d(3, stride=1, padding=1, ceil_mode=True,
                       average_quantizer="quantized_bits(8,0,alpha=1)",
                       activation="quantized_bits(6,2,alpha=1)"),
        torch.nn.Flatten(),
        hnn.QDense(4 * 3 * 3, 2, kernel_quantizer=Q6, bias=False)).eval()
    engine = deploy.compile(model, input_shape=(2, 9, 9))
    assert engine.float32_exact
    assert_exact(engine, model, grid_inputs((64, 2, 9, 9)))


def test_pooling_refusals():
    for pool, why in [
            (hnn.QAvgPool2d(3, padding=1, count_include_pad=False,
                            average_quantizer="quantized_bits(8,0,alpha=1)"), "count_include_pad"),
            (hnn.QAvgPool2d(2, stride=2, ceil_mode=True), "ceil_mode")]:
        model = torch.nn.Sequential(hnn.QActivation(INP), pool).eval()
        with pytest.raises(ValueError, match=r"layer `1` \(QAvgPool2d\).*" + why):
            deploy.compile(model, input_shape=(1, 5, 5))


def test_recurrent_layer_without_recurrent_output_is_refused_by_name():
    # (recurrent layers compile with a RecurrentOutput after them: test_deploy_recurrent.py)
    model = torch.nn.Sequential(hnn.QActivation(INP),
                                hnn.QLSTM(4, 4, kernel_quantizer=Q6, recurrent_quantizer=Q6)).eval()
    with pytest.raises(ValueError, match=r"layer `1` \(QLSTM\): must be followed by a RecurrentOutput"):
        deploy.compile(model, input_shape=(3, 4))


def test_header_runs_gather_and_conv_stages(tmp_path):
    torch.manual_seed(8)
    model = torch.nn.Sequential(
        hnn.QActivation(INP),
        hnn.QConvTranspose2d(2, 3, 3, stride=2, padding=1, kernel_quantizer=AUTO, bias_quantizer=Q6),
        hnn.QConv2d(3, 2, 2, padding="same", padding_mode="reflect", kernel_quantizer=Q6, bias=False),
        hnn.QActivation("quantized_tanh(5)")).eval()
    engine = deploy.compile(model, input_shape=(2, 4, 4))
    x = grid_inputs((20, 2, 4, 4)).contiguous()
    (tmp_path / "m.h").write_text(engine.generate_header("m"))
    (tmp_path / "main.cpp").write_text(
        '#include <cstdio>\n#include "m.h"\nint main() {\n'
        '  float in[m::kInputSize]; float out[m::kOutputSize];\n'
        '  while (std::fread(in, 4, m::kInputSize, stdin) == (size_t)m::kInputSize) {\n'
        '    if (m::infer_float(in, out) != 0) return 3;\n'
        '    std::fwrite(out, 4, m::kOutputSize, stdout);\n  }\n  return 0;\n}\n')
    exe = tmp_path / "main"
    subprocess.run(["g++", "-std=c++17", "-O1", "-Wall", "-Werror", "-o", str(exe),
                    str(tmp_path / "main.cpp")], check=True)
    out = subprocess.run([str(exe)], input=x.numpy().tobytes(), capture_output=True, check=True).stdout
    got = torch.from_numpy(np.frombuffer(out, dtype=np.float32).copy()).reshape(forward(model, x).shape)
    assert torch.equal(got, forward(model, x))
    assert torch.equal(got, engine(x))


def test_loader_validates_new_fields(tmp_path):
    model = torch.nn.Sequential(hnn.QActivation(INP), hnn.QConv2d(
        1, 1, 3, padding=1, padding_mode="circular", kernel_quantizer=Q6, bias=False)).eval()
    engine = deploy.compile(model, input_shape=(1, 4, 4))
    path = tmp_path / "g.engine"
    engine.save(path)
    raw = path.read_bytes()
    # an index out of range in the gather stage: I8 tensor `stages.0.index` holds 36 codes
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    begin, _ = header["stages.0.index"]["data_offsets"]
    bad = bytearray(raw)
    bad[8 + n + begin] = 99
    path.write_bytes(bytes(bad))
    # the data section's SHA-256 catches the flipped byte
    with pytest.raises(ValueError, match=r"g.engine: corrupted data section: its SHA-256 is "
                                         r"[0-9a-f]{64}, __metadata__.data_sha256 says"):
        deploy.load(path)
    # without the checksum (a file from before it), the index is validated
    nock = json.loads(raw[8:8 + n])
    del nock["__metadata__"]["data_sha256"]
    text = json.dumps(nock).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + bytes(bad[8 + n:]))
    with pytest.raises(ValueError, match=r"g.engine.*stage 0 \(gather.*index 99 at 0 is out of"):
        deploy.load(path)
    # a v2 conv stage without pad_h_end
    meta = header["__metadata__"]
    prog = json.loads(meta["program"])
    del prog["stages"][1]["conv"]["pad_h_end"]
    meta["program"] = json.dumps(prog)
    text = json.dumps(header).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + n:])
    with pytest.raises(ValueError, match=r"program.stages\[1\].conv: missing `pad_h_end`"):
        deploy.load(path)


def test_old_format_version_1_still_loads(tmp_path):
    """Files from before the gather/table stages (format_version 1) load unchanged."""
    torch.manual_seed(9)
    model = torch.nn.Sequential(hnn.QActivation(INP), hnn.QDense(4, 3, kernel_quantizer=Q6, bias=False)).eval()
    engine = deploy.compile(model)
    path = tmp_path / "v.engine"
    engine.save(path)
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    header["__metadata__"]["format_version"] = "1"
    prog = json.loads(header["__metadata__"]["program"])
    del prog["stages"][0]["cost_bits"]
    header["__metadata__"]["program"] = json.dumps(prog)
    text = json.dumps(header).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + n:])
    x = grid_inputs((20, 4))
    assert np.array_equal(deploy.load(path).run_codes(x), engine.run_codes(x))
    header["__metadata__"]["format_version"] = "7"
    text = json.dumps(header).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + n:])
    with pytest.raises(ValueError, match="unsupported format_version `7`"):
        deploy.load(path)


def test_random_chained_convolutional_models():
    checked = 0
    for seed in range(6):
        rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        c = int(rng.integers(1, 4))
        layers = [hnn.QActivation(INP)]
        chans = c
        for _ in range(int(rng.integers(1, 4))):
            out = int(rng.integers(1, 5))
            k = int(rng.integers(1, 4))
            layers.append(hnn.QConv2d(chans, out, k, padding=str(rng.choice(["same", "valid"])),
                                      kernel_quantizer=str(rng.choice([Q6, AUTO, "quantized_po2(4)"])),
                                      bias_quantizer=Q6))
            chans = out
            if rng.integers(0, 2):
                layers.append(hnn.QActivation("quantized_bits(8,3,alpha=1)"))
        model = torch.nn.Sequential(*layers).eval()
        engine = deploy.compile(model, input_shape=(c, 6, 6))
        if engine.float32_exact:
            assert_exact(engine, model, grid_inputs((20, c, 6, 6)))
            checked += 1
    assert checked >= 4
