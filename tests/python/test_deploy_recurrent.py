# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""The integer engine on recurrent layers (QSimpleRNN, QLSTM, QGRU with RecurrentOutput): bit for
bit against the eval forward for every cell and option, the file round trip, the standalone
header, and the refusals that name the layer."""
import subprocess

import numpy as np
import pytest
import torch

from heteroq import deploy
from heteroq import nn as hnn

Q4 = "quantized_bits(4,0,alpha=1)"
Q6 = "quantized_bits(6,0,alpha=1)"
Q8 = "quantized_bits(8,2,alpha=1)"
STATE = "quantized_bits(8,0,alpha=1)"
CELLS = {"rnn": hnn.QSimpleRNN, "lstm": hnn.QLSTM, "gru": hnn.QGRU}
L, F, H = 7, 5, 6


def recurrent_model(cell, ret=False, head=True, seed=0, **kw):
    torch.manual_seed(seed)
    args = dict(batch_first=True, kernel_quantizer=Q6, recurrent_quantizer=Q6, bias_quantizer=Q8,
                state_quantizer=STATE)
    if cell == "gru":
        # r (R_n) with hard_sigmoid's fraction bits: narrower weights and state keep it in float32
        # (test_wide_gru_reports_float32_rounding)
        args.update(kernel_quantizer=Q4, recurrent_quantizer=Q4, state_quantizer="quantized_bits(5,0,alpha=1)")
    args.update(kw)
    layer = CELLS[cell](F, H, **args)
    with torch.no_grad():
        for p in layer.parameters():
            p.uniform_(-0.9, 0.9)
    d = 2 if args.get("bidirectional") else 1
    mods = [hnn.QActivation("quantized_bits(8,2,alpha=1)"), layer, hnn.RecurrentOutput(ret)]
    if head:
        # (an LSTM's h = o act(c) has the fraction bits of both: requantize before the dense head)
        mods.append(hnn.QActivation("quantized_bits(8,2,alpha=1)"))
        if ret:
            mods.append(torch.nn.Flatten())
        mods.append(hnn.QDense((L if ret else 1) * d * H, 3, kernel_quantizer=Q6, bias_quantizer=Q8))
    return torch.nn.Sequential(*mods).eval()


def sequences(n, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, L, F, generator=g) * 2


def assert_exact(engine, model, x):
    with torch.no_grad():
        ref = model(x)
    out = engine(x)
    assert out.shape == ref.shape
    bad = (out != ref).nonzero()
    assert bad.numel() == 0, f"{len(bad)} differences, first at {bad[0].tolist()}: " \
        f"{out[tuple(bad[0])].item()} vs {ref[tuple(bad[0])].item()}"


VARIANTS = [
    ("rnn", {}),
    ("rnn", {"state_quantizer": None}),                    # the quantized activation bounds the state
    ("rnn", {"activation": "relu", "state_quantizer": STATE}),
    ("rnn", {"activation": "quantized_relu(6,2)", "state_quantizer": None}),
    ("lstm", {}),
    ("lstm", {"recurrent_activation": "quantized_sigmoid(6)"}),
    ("lstm", {"activation": "quantized_bits(6,1,alpha=1)", "state_quantizer": "quantized_bits(6,1,alpha=1)"}),
    ("gru", {}),
    ("gru", {"reset_after": False}),
    ("gru", {"recurrent_activation": "quantized_sigmoid(6)", "activation": "quantized_tanh(6)"}),
]


@pytest.mark.parametrize("cell,kw", VARIANTS)
@pytest.mark.parametrize("ret", [False, True])
def test_every_cell_is_exact(cell, kw, ret):
    model = recurrent_model(cell, ret=ret, **kw)
    engine = deploy.compile(model, input_shape=(L, F))
    assert engine.float32_exact
    assert [s["kind"] for s in engine.stage_info()][:1] == ["recurrent"]
    assert_exact(engine, model, sequences(64))


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_bidirectional_and_stacked_layers_are_exact(cell):
    for kw in ({"bidirectional": True}, {"num_layers": 2}, {"num_layers": 2, "bidirectional": True}):
        if cell != "rnn" and "num_layers" in kw:
            # the second layer's input is the first's h, whose fraction bits with hard_sigmoid gates
            # would exceed float32's 24 in its products: quantized gates
            kw = dict(kw, recurrent_activation="quantized_sigmoid(6)")
        for ret in (False, True):
            model = recurrent_model(cell, ret=ret, **kw)
            engine = deploy.compile(model, input_shape=(L, F))
            assert engine.float32_exact
            assert sum(s["kind"] == "recurrent" for s in engine.stage_info()) == kw.get("num_layers", 1)
            assert_exact(engine, model, sequences(32, seed=2))


def test_wide_gru_reports_float32_rounding():
    """With hard_sigmoid's gates (13 fraction bits here) times an 8-bit state's products, r (w_hn s
    + b_hn) can need more than float32's 24 bits: the engine computes the exact value and says
    that the float32 model may round it."""
    model = recurrent_model("gru", kernel_quantizer=Q6, recurrent_quantizer=Q6, state_quantizer=STATE)
    engine = deploy.compile(model, input_shape=(L, F))
    info = engine.stage_info()
    assert info[0]["kind"] == "recurrent" and not info[0]["float32_exact"]
    assert all(s["float32_exact"] for s in info[1:]) and not engine.float32_exact


def test_recurrent_output_selects_the_final_states():
    torch.manual_seed(0)
    gru = hnn.QGRU(F, H, batch_first=True, bidirectional=True, num_layers=2).eval()
    x = sequences(4)
    with torch.no_grad():
        out, h_n = gru(x)
        last = hnn.RecurrentOutput()((out, h_n))
        seq = hnn.RecurrentOutput(True)((out, h_n))
    assert torch.equal(seq, out)
    # forward: the last step of the first half; backward: the first step of the second half
    assert torch.equal(last, torch.cat([out[:, -1, :H], out[:, 0, H:]], 1))
    lstm = hnn.QLSTM(F, H).eval()
    with torch.no_grad():
        o, (h, c) = lstm(x[0])                               # unbatched (L, F)
        assert torch.equal(hnn.RecurrentOutput()((o, (h, c))), h[-1])
    with pytest.raises(TypeError, match="RecurrentOutput"):
        hnn.RecurrentOutput()(x)
    with pytest.raises(TypeError, match="return_sequences"):
        hnn.RecurrentOutput(1)


def test_trained_lstm_is_exact(tmp_path):
    """A QLSTM trained a few steps (QAT) on a toy sequence task, then compiled, saved and loaded."""
    model = recurrent_model("lstm").train()
    x = sequences(256, seed=3)
    y = (x[:, :, 0].sum(1) > 0).long() + (x[:, -1, 1] > 0).long()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(30):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    engine = deploy.compile(model, input_shape=(L, F))
    assert_exact(engine, model, x)
    engine.save(tmp_path / "lstm.engine")
    loaded = deploy.load(tmp_path / "lstm.engine")
    assert np.array_equal(loaded.run_codes(x), engine.run_codes(x))


@pytest.mark.parametrize("cell,kw", [("rnn", {"bidirectional": True}), ("lstm", {"num_layers": 2}),
                                     ("gru", {"reset_after": False, "bidirectional": True})])
def test_header_matches_the_engine(header_codes, cell, kw):
    model = recurrent_model(cell, ret=True, **kw)
    engine = deploy.compile(model, input_shape=(L, F))
    x = sequences(16, seed=4)
    assert np.array_equal(header_codes(engine, x.numpy(), "rnn_model"), engine.run_codes(x))


@pytest.mark.parametrize("make,match", [
    (lambda: recurrent_model("lstm", state_quantizer=None), r"layer `1` \(QLSTM\): has no state_quantizer"),
    (lambda: recurrent_model("gru", state_quantizer=None), r"layer `1` \(QGRU\): has no state_quantizer"),
    (lambda: recurrent_model("rnn", state_quantizer=None, activation="relu"),
     r"layer `1` \(QSimpleRNN\): has neither a state_quantizer nor a quantized activation"),
    (lambda: recurrent_model("gru", batch_first=False), r"layer `1` \(QGRU\): has batch_first=False"),
    (lambda: recurrent_model("rnn", recurrent_quantizer=None), r"layer `1` \(QSimpleRNN\): has float weights"),
    (lambda: recurrent_model("lstm", activation="tanh"), r"QLSTM\) activation: is the float function `tanh`"),
    (lambda: recurrent_model("gru", recurrent_activation="sigmoid"),
     r"QGRU\) recurrent_activation: is the float function `sigmoid`"),
    (lambda: torch.nn.Sequential(hnn.QActivation(Q8), hnn.QGRU(F, H, batch_first=True, kernel_quantizer=Q6,
                                                                recurrent_quantizer=Q6, state_quantizer=STATE)).eval(),
     r"layer `1` \(QGRU\): must be followed by a RecurrentOutput"),
    (lambda: torch.nn.Sequential(hnn.QActivation(Q8), hnn.RecurrentOutput()).eval(),
     r"layer `1` \(RecurrentOutput\): does not follow a recurrent layer"),
    (lambda: torch.nn.Sequential(hnn.QActivation(Q8), torch.nn.GRU(F, H, batch_first=True)).eval(),
     r"layer `1` \(GRU\): is a float recurrent layer"),
])
def test_refusals_name_the_layer(make, match):
    with pytest.raises(ValueError, match=match):
        deploy.compile(make(), input_shape=(L, F))


def test_recurrent_model_needs_the_sequence_shape():
    with pytest.raises(ValueError, match=r"QLSTM\): a recurrent model needs its per-sample input shape"):
        deploy.compile(recurrent_model("lstm"))
    with pytest.raises(ValueError, match=r"expects a \(steps, features\) sequence"):
        deploy.compile(recurrent_model("lstm"), input_shape=(L * F,))


def _rewrite_program(src, dst, edit):
    """Copies an engine file with its `program` JSON edited by `edit` (the data section kept)."""
    import json
    import struct
    raw = src.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    program = json.loads(header["__metadata__"]["program"])
    edit(program)
    header["__metadata__"]["program"] = json.dumps(program)
    text = json.dumps(header).encode()
    dst.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n:])


def test_file_runs_without_libtorch_and_bad_programs_are_refused(tmp_path, build_dir):
    model = recurrent_model("lstm", ret=True, bidirectional=True)
    engine = deploy.compile(model, input_shape=(L, F))
    path = tmp_path / "lstm.engine"
    engine.save(path)
    x = sequences(8, seed=5)
    runner = build_dir / "heteroq_deploy_run"
    if runner.exists():
        out = subprocess.run([str(runner), str(path)], input=x.numpy().tobytes(), capture_output=True,
                             check=True).stdout
        assert np.array_equal(np.frombuffer(out, dtype=np.int64).reshape(8, -1), engine.run_codes(x))

    def stage(p):
        return p["stages"][0]["recurrent"]

    cases = {
        "cell": (lambda p: stage(p).update(cell="conv"), r"unknown cell `conv`"),
        "hidden": (lambda p: stage(p).update(hidden=7), r"out_features must be 98"),
        "directions": (lambda p: stage(p)["directions"].append(stage(p)["directions"][0]),
                       r"`directions` must be a list of 1 or 2"),
        "frac": (lambda p: stage(p)["directions"][0].update(h_frac=3), r"h_frac must be"),
        "state": (lambda p: stage(p)["directions"][0]["state_c"].update(kind="linear"),
                  r"an LSTM's carry needs a state quantizer"),
        "missing": (lambda p: stage(p)["directions"][1].pop("act_c"), r"missing `act_c`"),
        "shift": (lambda p: stage(p)["directions"][0].update(a_frac=-100), r"a_frac: the frac"),
    }
    for name, (edit, match) in cases.items():
        bad = tmp_path / f"{name}.engine"
        _rewrite_program(path, bad, edit)
        with pytest.raises(ValueError, match=match):
            deploy.load(bad)
    # the slots a cell does not use must stay linear (the header would emit them)
    gru = tmp_path / "gru.engine"
    deploy.compile(recurrent_model("gru"), input_shape=(L, F)).save(gru)
    _rewrite_program(gru, tmp_path / "slot.engine", lambda p: stage(p)["directions"][0]["act_c"].update(
        kind="hard_sigmoid", in_frac=100, out_frac=101))
    with pytest.raises(ValueError, match=r"`act_c` is not used by a gru cell"):
        deploy.load(tmp_path / "slot.engine")
