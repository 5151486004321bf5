# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""The recurrent layers: equal to torch.nn.RNN/LSTM/GRU without quantizers and to a plain-torch
reference with them, gradients, scripting, save/load, training, shapes, errors. (C++ == Python:
tests/python/test_cross_language.py::test_rnn_identical_to_cpp.)"""
import copy
import io

import pytest
import torch
import torch.nn.functional as F

import heteroq
from heteroq.nn import QGRU, QLSTM, QSimpleRNN

KQ, RQ = "quantized_bits(6,0,alpha=1)", "quantized_bits(5,0,alpha=1)"
BQ, SQ = "quantized_bits(8,2,alpha=1)", "quantized_bits(8,1,alpha=1)"


def quantizer(spec):
    return heteroq.get_quantizer(spec).eval()


def identity(t):
    return t


def hard_sigmoid(t):  # QKeras's
    return torch.clamp(0.5 * t + 0.5, 0.0, 1.0)


def reference(cell, x, m, suffix, h, c=None, k=identity, r=identity, b=identity, s=identity,
              act=torch.tanh, ract=torch.sigmoid, reset_after=True):
    """One layer, one direction, written out (QKeras's cell equations in PyTorch's layout):
    x (L, N, in), h, c (N, H); returns the outputs (L, N, H)."""
    p = dict(m.named_parameters())
    wi, wh = k(p["weight_ih" + suffix]), r(p["weight_hh" + suffix])
    bi, bh = b(p["bias_ih" + suffix]), b(p["bias_hh" + suffix])
    hs = wh.shape[1]
    xg = F.linear(x, wi, bi)
    out = []
    for t in range(x.shape[0]):
        xt = xg[t]
        if cell == "lstm":
            cq, hq = s(c), s(h)
            i, f, g, o = (xt + F.linear(hq, wh, bh)).chunk(4, 1)
            i, f, g, o = ract(i), ract(f), act(g), ract(o)
            c = f * cq + i * g
            h = o * act(c)
        elif cell == "gru":
            hq = s(h)
            r_ = ract(xt[:, :hs] + F.linear(hq, wh[:hs], bh[:hs]))
            z = ract(xt[:, hs:2 * hs] + F.linear(hq, wh[hs:2 * hs], bh[hs:2 * hs]))
            w_n, b_n, x_n = wh[2 * hs:], bh[2 * hs:], xt[:, 2 * hs:]
            if reset_after:
                n = act(x_n + r_ * F.linear(hq, w_n, b_n))
            else:
                n = act(x_n + F.linear(r_ * hq, w_n, b_n))
            h = (1 - z) * n + z * hq
        else:
            h = act(xt + F.linear(s(h), wh, bh))
        out.append(h)
    return torch.stack(out, 0)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
def test_float_layers_equal_torch(kind, batch_first):
    torch.manual_seed(0)
    args = dict(input_size=4, hidden_size=5, num_layers=2, bidirectional=True,
                batch_first=batch_first)
    if kind == "lstm":
        ref, q = torch.nn.LSTM(**args), QLSTM(**args, activation=None, recurrent_activation=None)
    elif kind == "gru":
        ref, q = torch.nn.GRU(**args), QGRU(**args, activation="tanh", recurrent_activation="sigmoid")
    else:
        relu = kind == "rnn_relu"
        ref = torch.nn.RNN(**args, nonlinearity="relu" if relu else "tanh")
        q = QSimpleRNN(**args, activation="relu" if relu else None)
    q.load_state_dict(ref.state_dict())  # strict: the same names and shapes
    x = torch.randn(3, 7, 4) if batch_first else torch.randn(7, 3, 4)
    h0 = torch.randn(4, 3, 5)
    state = (h0, torch.randn(4, 3, 5)) if kind == "lstm" else h0
    for args in ((x,), (x, state)):
        y, s = ref(*args)
        qy, qs = q(*args)
        torch.testing.assert_close(qy, y, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(qs, s, atol=1e-6, rtol=1e-6)
    # Unbatched input as PyTorch takes it.
    y, s = ref(x[0] if batch_first else x[:, 0])
    qy, qs = q(x[0] if batch_first else x[:, 0])
    torch.testing.assert_close(qy, y, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(qs, s, atol=1e-6, rtol=1e-6)


def test_initialisation_is_torchs_and_unit_forget_bias():
    torch.manual_seed(3)
    ref = torch.nn.LSTM(4, 6, 2)
    torch.manual_seed(3)
    q = QLSTM(4, 6, 2, unit_forget_bias=False)
    for name, p in ref.state_dict().items():
        assert torch.equal(q.state_dict()[name], p), name
    # QKeras's unit_forget_bias (the default): the forget gate's bias is 1 in total.
    f = QLSTM(4, 6, 2, bidirectional=True)
    for suffix in ("_l0", "_l1", "_l0_reverse", "_l1_reverse"):
        assert torch.equal(getattr(f, "bias_ih" + suffix)[6:12], torch.ones(6))
        assert torch.equal(getattr(f, "bias_hh" + suffix)[6:12], torch.zeros(6))
        assert getattr(f, "bias_ih" + suffix)[:6].abs().sum() > 0
    f.reset_parameters()
    assert torch.equal(f.bias_ih_l0[6:12], torch.ones(6))
    assert QLSTM(4, 6, bias=False).bias is False


def test_quantized_forward_equals_plain_reference():
    torch.manual_seed(1)
    x = torch.randn(6, 3, 4)
    h0, c0 = torch.randn(1, 3, 5) * 0.5, torch.randn(1, 3, 5)
    qs = dict(k=quantizer(KQ), r=quantizer(RQ), b=quantizer(BQ), s=quantizer(SQ),
              act=quantizer("quantized_tanh(6)"))
    lstm = QLSTM(4, 5, kernel_quantizer=KQ, recurrent_quantizer=RQ, bias_quantizer=BQ,
                 state_quantizer=SQ, activation="quantized_tanh(6)").eval()
    y, (h, c) = lstm(x, (h0, c0))
    ref = reference("lstm", x, lstm, "_l0", h0[0], c0[0], ract=hard_sigmoid, **qs)
    assert torch.equal(y, ref) and torch.equal(h[0], ref[-1])
    qp = lstm.quantized_parameters()
    assert list(qp) == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    assert torch.equal(qp["weight_ih_l0"], qs["k"](lstm.weight_ih_l0))
    assert torch.equal(qp["weight_hh_l0"], qs["r"](lstm.weight_hh_l0))
    assert torch.equal(qp["bias_hh_l0"], qs["b"](lstm.bias_hh_l0))
    for reset_after in (True, False):
        gru = QGRU(4, 5, kernel_quantizer=KQ, recurrent_quantizer=RQ, bias_quantizer=BQ,
                   state_quantizer=SQ, activation="quantized_tanh(6)",
                   recurrent_activation="quantized_sigmoid(6)", reset_after=reset_after)
        y, _ = gru(x, h0)
        ref = reference("gru", x, gru, "_l0", h0[0], ract=quantizer("quantized_sigmoid(6)"),
                        reset_after=reset_after, **qs)
        assert torch.equal(y, ref), reset_after
    rnn = QSimpleRNN(4, 5, kernel_quantizer=KQ, recurrent_quantizer=RQ, bias_quantizer=BQ,
                     state_quantizer=SQ, activation="quantized_tanh(6)")
    y, _ = rnn(x, h0)
    assert torch.equal(y, reference("rnn", x, rnn, "_l0", h0[0], **qs))
    assert torch.equal(y * 32, torch.round(y * 32))  # quantized_tanh(6)'s grid


def test_default_activations_are_qkeras():
    # quantized_tanh (8 bits) and hard_sigmoid; the reversed direction runs on the flipped input.
    torch.manual_seed(2)
    x = torch.randn(5, 2, 3)
    m = QLSTM(3, 4, bidirectional=True)
    assert m.activation.to_string() == "quantized_tanh(8)"
    assert m.recurrent_activation is None and m._recurrent_activation_fn == "hard_sigmoid"
    y, (h, c) = m(x)
    z = torch.zeros(2, 4)
    act = quantizer("quantized_tanh(8)")
    fwd = reference("lstm", x, m, "_l0", z, z, act=act, ract=hard_sigmoid)
    bwd = reference("lstm", x.flip(0), m, "_l0_reverse", z, z, act=act, ract=hard_sigmoid).flip(0)
    assert torch.equal(y, torch.cat([fwd, bwd], 2))
    assert torch.equal(h[1], bwd[0])


def test_gru_recurrent_kernel_uses_only_the_recurrent_quantizer():
    # QKeras's QGRU quantizes the recurrent kernel with the kernel quantizer when no
    # recurrent_quantizer is given (google/qkeras PR #89); heteroq leaves it float.
    torch.manual_seed(4)
    x = torch.randn(4, 2, 3)
    gru = QGRU(3, 4, kernel_quantizer="quantized_bits(3,0,alpha=1)", activation=None,
               recurrent_activation=None, reset_after=False)
    ref = reference("gru", x, gru, "_l0", torch.zeros(2, 4),
                    k=quantizer("quantized_bits(3,0,alpha=1)"), reset_after=False)
    assert torch.equal(gru(x)[0], ref)


def make_layers():
    common = dict(kernel_quantizer=KQ, recurrent_quantizer=RQ, bias_quantizer=BQ,
                  state_quantizer="quantized_bits(8,2,alpha=1)")
    return [QLSTM(3, 4, 2, bidirectional=True, batch_first=True, **common),
            QGRU(3, 4, 2, reset_after=False, **common),
            QGRU(3, 4, bidirectional=True, **common),
            QSimpleRNN(3, 4, 2, bidirectional=True, **common)]


@pytest.mark.parametrize("index", range(4))
def test_gradients_reach_every_parameter(index):
    torch.manual_seed(5)
    layer = make_layers()[index]
    x = torch.randn(2, 5, 3)
    y, state = layer(x)
    h = state[1] if isinstance(state, tuple) else state
    (y.square().sum() + h.sum()).backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("index", range(4))
def test_script_save_load_copy(index):
    torch.manual_seed(6)
    layer = make_layers()[index].eval()
    x = torch.randn(2, 5, 3)
    expected = layer(x)
    scripted = torch.jit.script(layer)
    assert str(scripted(x)) == str(expected)
    buf = io.BytesIO()
    torch.jit.save(scripted, buf)
    buf.seek(0)
    loaded = torch.jit.load(buf)
    assert torch.equal(loaded(x)[0], expected[0])
    # Unbatched input through the scripted module.
    assert torch.equal(scripted(x[0])[0], layer(x[0])[0])
    buf = io.BytesIO()
    torch.save(layer, buf)
    buf.seek(0)
    assert torch.equal(torch.load(buf)(x)[0], expected[0])
    assert torch.equal(copy.deepcopy(layer)(x)[0], expected[0])
    other = make_layers()[index].eval()
    other.load_state_dict(layer.state_dict())
    assert torch.equal(other(x)[0], expected[0])
    # .to() refreshes the weights the forward pass reads.
    double = copy.deepcopy(layer).double()
    assert double(x.double())[0].dtype == torch.float64


def test_shapes_like_torch():
    torch.manual_seed(7)
    lstm = QLSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    y, (h, c) = lstm(torch.randn(2, 5, 3))
    assert y.shape == (2, 5, 8) and h.shape == (4, 2, 4) and c.shape == (4, 2, 4)
    x = torch.randn(5, 3)
    y1, (h1, c1) = lstm(x)
    assert y1.shape == (5, 8) and h1.shape == (4, 4) and c1.shape == (4, 4)
    assert torch.equal(y1, lstm(x.unsqueeze(0))[0][0])
    assert torch.equal(lstm(x, (torch.zeros(4, 4), torch.zeros(4, 4)))[0], y1)
    gy, gh = QGRU(3, 4, 2)(torch.randn(5, 2, 3))
    assert gy.shape == (5, 2, 4) and gh.shape == (2, 2, 4)
    rnn = QSimpleRNN(3, 4, bidirectional=True, bias=False)
    ry, rh = rnn(torch.randn(5, 3))
    assert ry.shape == (5, 8) and rh.shape == (2, 4)
    assert [n for n, _ in rnn.named_parameters()] == [
        "weight_ih_l0", "weight_hh_l0", "weight_ih_l0_reverse", "weight_hh_l0_reverse"]


def test_dropout_between_layers_in_training():
    torch.manual_seed(8)
    gru = QGRU(3, 8, num_layers=2, dropout=0.5)
    x = torch.randn(5, 2, 3)
    gru.eval()
    a = gru(x)[0]
    assert torch.equal(a, gru(x)[0])
    gru.train()
    torch.manual_seed(1)
    b = gru(x)[0]
    torch.manual_seed(1)
    assert torch.equal(b, gru(x)[0]) and not torch.equal(a, b)
    with pytest.warns(UserWarning, match="num_layers"):
        QLSTM(3, 4, dropout=0.2)


def test_lstm_with_qdense_trains():
    # Sequence classification: is the sum of the first feature over the sequence positive?
    torch.manual_seed(0)
    x = torch.randn(128, 12, 3)
    y = (x[:, :, 0].sum(1) > 0).long()
    lstm = QLSTM(3, 16, batch_first=True, kernel_quantizer="quantized_bits(8,0,alpha=1)",
                 recurrent_quantizer="quantized_bits(8,0,alpha=1)",
                 bias_quantizer="quantized_bits(8,2,alpha=1)",
                 state_quantizer="quantized_bits(8,2,alpha=1)")
    head = heteroq.nn.QDense(16, 2, kernel_quantizer="quantized_bits(8,1,alpha=1)")
    opt = torch.optim.Adam(list(lstm.parameters()) + list(head.parameters()), lr=2e-2)

    def loss_of():
        _, (h, _) = lstm(x)
        return F.cross_entropy(head(h[0]), y)

    first = loss_of().item()
    for _ in range(30):
        opt.zero_grad()
        loss = loss_of()
        loss.backward()
        opt.step()
    last = loss_of().item()
    assert last < 0.7 * first, (first, last)


def test_hard_sigmoid_operator():
    x = torch.tensor([-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0], requires_grad=True)
    y = torch.ops.heteroq.hard_sigmoid(x)
    assert torch.equal(y, torch.tensor([0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0]))
    y.sum().backward()
    assert torch.equal(x.grad, torch.tensor([0.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.0]))
    with pytest.raises(ValueError, match="softsign"):
        torch.ops.heteroq._rnn_activation(x, "softsign")


def test_repr():
    m = QLSTM(8, 16, kernel_quantizer=KQ)
    text = repr(m)
    assert text.startswith("QLSTM(\n  8, 16, recurrent_activation='hard_sigmoid', unit_forget_bias=True\n")
    assert "(kernel_quantizer): quantized_bits(6,0,0,alpha=1.0)" in text
    assert "(activation): quantized_tanh(8)" in text
    g = QGRU(2, 3, activation=None, recurrent_activation="sigmoid")
    assert "activation='tanh', recurrent_activation='sigmoid', reset_after=True" in repr(g)


def test_bad_arguments():
    with pytest.raises(ValueError, match="hidden_size"):
        QLSTM(4, 0)
    with pytest.raises(ValueError, match="num_layers"):
        QSimpleRNN(3, 4, 0)
    with pytest.raises(TypeError, match="input_size"):
        QGRU(3.0, 4)
    with pytest.raises(ValueError, match="dropout"):
        QLSTM(3, 4, 2, dropout=1.5)
    # Weight slots must hold negative values.
    with pytest.raises(ValueError, match="QLSTM: `kernel_quantizer` = quantized_relu"):
        QLSTM(3, 4, kernel_quantizer="quantized_relu(4,0)")
    with pytest.raises(ValueError, match="recurrent_quantizer"):
        QGRU(3, 4, recurrent_quantizer=heteroq.quantized_bits(4, 0, keep_negative=False))
    with pytest.raises(ValueError, match="bias_quantizer"):
        QSimpleRNN(3, 4, bias_quantizer="quantized_sigmoid(4)")
    with pytest.raises(ValueError, match="QLSTM.activation: 'tanhh' is neither a float activation"):
        QLSTM(3, 4, activation="tanhh")
    with pytest.raises(ValueError, match="QGRU.recurrent_activation"):
        QGRU(3, 4, recurrent_activation="quantized_bits(4")
    with pytest.raises(TypeError, match="QLSTM.recurrent_activation"):
        QLSTM(3, 4, recurrent_activation=torch.sigmoid)
    with pytest.raises(TypeError):
        QSimpleRNN(3, 4, nonlinearity="relu")  # the activation slot: activation="relu"

    m = QLSTM(3, 4, num_layers=2)
    x = torch.randn(5, 2, 3)
    with pytest.raises(ValueError, match=r"QLSTM: expected input of shape \(L, 3\) or \(L, N, 3\)"):
        m(torch.randn(5, 2, 4))
    with pytest.raises(ValueError, match="expected input of shape"):
        m(torch.randn(5, 2, 3, 1))
    with pytest.raises(ValueError, match="the sequence is empty"):
        m(torch.randn(0, 2, 3))
    with pytest.raises(TypeError, match="floating-point"):
        m(torch.ones(5, 2, 3, dtype=torch.long))
    with pytest.raises(TypeError, match="dtype"):
        m(x.double())
    with pytest.raises(ValueError, match=r"expected `h_0` of shape .* = \(2, 2, 4\), got \[2, 3, 4\]"):
        m(x, (torch.zeros(2, 3, 4), torch.zeros(2, 2, 4)))
    with pytest.raises(ValueError, match="`c_0`"):
        m(x, (torch.zeros(2, 2, 4), torch.zeros(1, 2, 4)))
    with pytest.raises(ValueError, match="for unbatched 2-D input"):
        m(x[:, 0], (torch.zeros(2, 1, 4), torch.zeros(2, 1, 4)))
    with pytest.raises(TypeError, match="PackedSequence"):
        m(torch.nn.utils.rnn.pack_sequence([torch.randn(3, 3)]))
    with pytest.raises(ValueError, match=r"QGRU: for batched 3-D input, expected `hx`"):
        QGRU(3, 4)(x, torch.zeros(1, 2, 5))
    # The scripted layer raises too (TorchScript reports the C++ error as a RuntimeError).
    with pytest.raises(RuntimeError, match="expected input of shape"):
        torch.jit.script(m)(torch.randn(5, 2, 4))


def test_docs_examples_run():
    # docs/layers.md, section "Recurrent layers": the Python blocks run as written.
    import pathlib
    import re
    text = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "layers.md").read_text()
    section = text[text.index("## Recurrent layers"):]
    nxt = section.find("\n## ", 1)
    section = section if nxt < 0 else section[:nxt]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 2
    ns = {}
    for block in blocks:
        exec(compile(block, "docs/layers.md", "exec"), ns)  # noqa: S102  (our own docs)
    assert ns["output"].shape == (10, 32) and ns["h_n"].shape == (2, 16)
    assert ns["logits"].shape == (4, 3) and ns["c_n"].shape == (2, 4, 16)
    assert type(ns["qmodel"][0]) is QLSTM and ns["qmodel"][0].activation.bits == 8
