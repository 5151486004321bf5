# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""The integer engine on models converted from learned precision (heteroq.hgq.convert): fixed
activations with widths per element (dense) and per channel (conv), as the input quantizer and
between layers, bit-exact against the converted model's eval forward."""

import numpy as np
import pytest
import torch

import heteroq
from heteroq import deploy, hgq

MODES = [("RND_CONV", "SAT"), ("RND", "WRAP"), ("TRN", "SAT_SYM")]


def _train(model, x, steps=5):
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    target = torch.randn(x.shape[0], 5)
    for _ in range(steps):
        opt.zero_grad()
        out = model(x).reshape(x.shape[0], -1)[:, :5]
        loss = (out - target).square().mean()
        loss.backward()
        opt.step()
    model(x)  # ranges of the final weights
    return model.eval()


def _kill_some(quantizer, n):
    # a few elements with width <= 0: they are constant 0
    with torch.no_grad():
        quantizer.frac_bits.view(-1)[:n] = -40.0


def dense_model(round_mode, overflow_mode):
    torch.manual_seed(11)
    model = torch.nn.Sequential(
        hgq.HDense(16, 32, input_init_bits=5, kernel_init_bits=4, round_mode=round_mode,
                   overflow_mode=overflow_mode),
        hgq.HActivation((32,), relu=overflow_mode != "WRAP", init_bits=4, round_mode=round_mode,
                        overflow_mode=overflow_mode),
        hgq.HDense(32, 5, input_init_bits=3, kernel_init_bits=3, round_mode=round_mode,
                   overflow_mode=overflow_mode))
    model = _train(model, torch.randn(64, 16) * 2)
    _kill_some(model[0].input_quantizer, 2)
    _kill_some(model[1].quantizer, 3)
    return hgq.convert(model).eval()


def conv_model(round_mode, overflow_mode):
    torch.manual_seed(12)
    model = torch.nn.Sequential(
        hgq.HConv2d(2, 4, 3, padding=1, input_init_bits=5, kernel_init_bits=3,
                    round_mode=round_mode, overflow_mode=overflow_mode),
        hgq.HActivation((4, 1, 1), granularity="channel", relu=overflow_mode != "WRAP",
                        init_bits=3, round_mode=round_mode, overflow_mode=overflow_mode),
        torch.nn.Flatten(),
        hgq.HDense(4 * 36, 5, input_granularity="element", kernel_init_bits=3,
                   round_mode=round_mode, overflow_mode=overflow_mode))
    model = _train(model, torch.randn(64, 2, 6, 6) * 2)
    _kill_some(model[1].quantizer, 1)
    return hgq.convert(model).eval()


def _inputs(shape, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((256,) + shape, generator=g)
    # mostly in range, some far beyond it (saturation, wrapping), some on half steps (rounding)
    scale = torch.tensor([0.5, 2.0, 40.0, 1e4])[torch.randint(0, 4, (256,) + shape, generator=g)]
    return (x * scale).float()


def _check(engine, model, x):
    with torch.no_grad():
        want = model(x).reshape(x.shape[0], -1)
    assert engine.float32_exact
    got = engine(x)
    assert got.shape == want.shape
    assert torch.equal(got, want), (got - want).abs().max()


def _fixed_layers(model):
    return [m for m in model if isinstance(m, heteroq.nn.QActivation)
            and isinstance(m.quantizer, hgq.FixedQuantizer)]


@pytest.mark.parametrize("round_mode,overflow_mode", MODES)
def test_converted_dense_model_is_bit_exact(round_mode, overflow_mode):
    model = dense_model(round_mode, overflow_mode)
    acts = _fixed_layers(model)
    assert len(acts) == 3 and not any(a.quantizer.is_uniform for a in acts)
    assert model[0] is acts[0]  # the input quantizer has per-element widths
    assert (acts[1].quantizer.bit_widths() <= 0).any()
    engine = deploy.compile(model)
    x = _inputs((16,), 1)
    _check(engine, model, x)
    # half steps of the input grid: every rounding mode's tie
    f = acts[0].quantizer.frac_bits.reshape(-1)
    ties = (torch.arange(-40, 41).float()[:, None] + 0.5) * torch.exp2(-f)[None, :]
    _check(engine, model, ties)


@pytest.mark.parametrize("round_mode,overflow_mode", MODES)
def test_converted_conv_model_is_bit_exact(round_mode, overflow_mode):
    model = conv_model(round_mode, overflow_mode)
    acts = _fixed_layers(model)
    assert len(acts) == 3
    engine = deploy.compile(model, input_shape=(2, 6, 6))
    _check(engine, model, _inputs((2, 6, 6), 2))


def test_converted_models_save_load_and_header(tmp_path, header_codes):
    model = dense_model("RND", "WRAP")
    engine = deploy.compile(model)
    x = _inputs((16,), 3)
    engine.save(tmp_path / "h.engine")
    loaded = deploy.load(tmp_path / "h.engine")
    assert np.array_equal(loaded.run_codes(x), engine.run_codes(x))
    _check(loaded, model, x)
    for name, (m, shape) in {"hd": (model, (16,)),
                             "hc": (conv_model("TRN", "SAT"), (2, 6, 6))}.items():
        eng = deploy.compile(m, input_shape=shape)
        xs = _inputs(shape, 4)
        assert np.array_equal(header_codes(eng, xs.numpy(), name), eng.run_codes(xs))


def test_bad_fixed_elem_fields_in_a_file_are_named(tmp_path):
    import json
    import struct
    engine = deploy.compile(dense_model("RND_CONV", "SAT"))
    path = tmp_path / "h.engine"
    engine.save(path)
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    prog = json.loads(header["__metadata__"]["program"])

    def write(p):
        header["__metadata__"]["program"] = json.dumps(p)
        h = json.dumps(header).encode()
        h += b" " * ((8 - len(h) % 8) % 8)
        bad = tmp_path / "bad.engine"
        bad.write_bytes(struct.pack("<Q", len(h)) + h + raw[8 + n:])
        return bad

    p = json.loads(json.dumps(prog))
    p["input"]["lo_elem"] = p["input"]["lo_elem"][:-1]
    with pytest.raises(ValueError, match=r"bad\.engine.*input quantizer: lo_elem and hi_elem "
                                         r"must have one value per element"):
        deploy.load(write(p))
    p = json.loads(json.dumps(prog))
    p["input"]["round_mode"] = "UP"
    with pytest.raises(ValueError, match=r"round_mode must be RND_CONV, RND or TRN, got `UP`"):
        deploy.load(write(p))
    p = json.loads(json.dumps(prog))
    st = next(s for s in p["stages"] if s["kind"] == "requantize")
    del st["requantizer"]["hi_elem"]
    with pytest.raises(ValueError, match=r"missing `hi_elem`"):
        deploy.load(write(p))
    p = json.loads(json.dumps(prog))
    st = next(s for s in p["stages"] if s["kind"] == "requantize")
    st["requantizer"]["wrap"] = True
    live = [j for j, (lo, hi) in enumerate(zip(st["requantizer"]["lo_elem"],
                                                st["requantizer"]["hi_elem"])) if hi != lo]
    st["requantizer"]["hi_elem"][live[0]] += 1
    with pytest.raises(ValueError, match=r"power of two of codes"):
        deploy.load(write(p))
