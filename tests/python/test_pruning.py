# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""heteroq's layers under torch.nn.utils.prune (l1/random unstructured, ln_structured,
global_unstructured, remove): training steps keep pruned weights at zero, state_dict round trips
with masks, prune.remove, save_quantized_weights / to_config on pruned models; and the cost
models on a pruned model (zero weights cost nothing: BOPs/EBOPs, the FPGA estimate, QTools's
energy and size with skip_zero_weights). tests/cpp/test_pruning.cpp checks the cost models in
C++."""
import copy
import io

import pytest
import torch
import torch.nn.utils.prune as prune

import heteroq
from heteroq import cost
from heteroq import nn as qnn
from heteroq.serialize import load_quantized_weights, save_quantized_weights

Q = "quantized_bits(6,0,alpha=1)"
QB = "quantized_bits(8,3,alpha=1)"


def _layers():
    """(name, module factory, input shape, [(submodule path, tensor name)] to prune)."""
    return [
        ("QDense", lambda: qnn.QDense(8, 6, kernel_quantizer=Q, bias_quantizer=QB), (4, 8),
         [("", "weight")]),
        ("QConv1d", lambda: qnn.QConv1d(3, 4, 3, kernel_quantizer=Q, bias_quantizer=QB),
         (2, 3, 9), [("", "weight")]),
        ("QConv2d", lambda: qnn.QConv2d(3, 4, 3, padding=1, kernel_quantizer=Q, bias_quantizer=QB),
         (2, 3, 6, 6), [("", "weight")]),
        ("QDepthwiseConv2d", lambda: qnn.QDepthwiseConv2d(3, 3, depth_multiplier=2,
                                                          depthwise_quantizer=Q), (2, 3, 6, 6),
         [("", "weight")]),
        ("QSeparableConv1d", lambda: qnn.QSeparableConv1d(3, 4, 3, depthwise_quantizer=Q,
                                                          pointwise_quantizer=Q), (2, 3, 9),
         [("depthwise", "weight"), ("pointwise", "weight")]),
        ("QSeparableConv2d", lambda: qnn.QSeparableConv2d(3, 4, 3, depthwise_quantizer=Q,
                                                          pointwise_quantizer=Q), (2, 3, 6, 6),
         [("depthwise", "weight"), ("pointwise", "weight")]),
        ("QConvTranspose2d", lambda: qnn.QConvTranspose2d(3, 4, 3, stride=2,
                                                          kernel_quantizer=Q), (2, 3, 4, 4),
         [("", "weight")]),
        ("QLinearBatchNorm", lambda: qnn.QLinearBatchNorm(8, 6, kernel_quantizer=Q,
                                                          bias_quantizer=QB), (4, 8),
         [("", "weight")]),
        ("QConv2dBatchNorm", lambda: qnn.QConv2dBatchNorm(3, 4, 3, kernel_quantizer=Q,
                                                          bias_quantizer=QB), (2, 3, 6, 6),
         [("", "weight")]),
        ("QSimpleRNN", lambda: qnn.QSimpleRNN(4, 5, batch_first=True, kernel_quantizer=Q,
                                              recurrent_quantizer=Q), (2, 3, 4),
         [("", "weight_ih_l0"), ("", "weight_hh_l0")]),
        ("QLSTM", lambda: qnn.QLSTM(4, 5, num_layers=2, kernel_quantizer=Q,
                                    recurrent_quantizer=Q, bias_quantizer=QB), (3, 2, 4),
         [("", "weight_ih_l0"), ("", "weight_hh_l1")]),
        ("QGRU", lambda: qnn.QGRU(4, 5, bidirectional=True, batch_first=True,
                                  kernel_quantizer=Q, recurrent_quantizer=Q), (2, 3, 4),
         [("", "weight_ih_l0"), ("", "weight_hh_l0_reverse")]),
    ]


LAYERS = _layers()
IDS = [name for name, *_ in LAYERS]


def _out(m, x):
    y = m(x)
    return y[0] if isinstance(y, tuple) else y


def _targets(m, paths):
    return [(m.get_submodule(p) if p else m, n) for p, n in paths]


def _reference(m, x):
    """The output of a copy of ``m`` whose pruned tensors are plain parameters ``orig * mask``.
    (torch cannot deepcopy a pruned module whose ``weight`` attribute came from a forward pass
    with gradients, a non-leaf tensor: one forward pass without gradients makes it a leaf.)"""
    with torch.no_grad():
        m(x)
    ref = copy.deepcopy(m)
    for module in ref.modules():
        for hook in list(module._forward_pre_hooks.values()):
            if isinstance(hook, prune.BasePruningMethod):
                prune.remove(module, hook._tensor_name)
    return _out(ref, x)


@pytest.mark.parametrize("name,factory,shape,paths", LAYERS, ids=IDS)
@pytest.mark.parametrize("method", ["l1", "random", "ln_structured"])
def test_training_keeps_pruned_weights_at_zero(name, factory, shape, paths, method):
    m = factory()
    x = torch.randn(shape)
    for module, tensor in _targets(m, paths):
        if method == "l1":
            prune.l1_unstructured(module, tensor, amount=0.5)
        elif method == "random":
            prune.random_unstructured(module, tensor, amount=0.3)
        else:
            prune.ln_structured(module, tensor, amount=0.5, n=2, dim=0)
    masks = {(id(mod), t): getattr(mod, t + "_mask").clone() for mod, t in _targets(m, paths)}
    for mask in masks.values():
        assert 0 < int(mask.sum()) < mask.numel()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    m.train()
    for _ in range(3):
        opt.zero_grad()
        _out(m, x).square().mean().backward()
        for mod, t in _targets(m, paths):
            orig = getattr(mod, t + "_orig")
            assert orig.grad is not None
            # no gradient reaches the pruned entries
            assert torch.all(orig.grad[masks[(id(mod), t)] == 0] == 0)
        opt.step()
    m.eval()
    y = _out(m, x)
    for mod, t in _targets(m, paths):
        assert torch.all(getattr(mod, t)[masks[(id(mod), t)] == 0] == 0)
    torch.testing.assert_close(y, _reference(m, x), rtol=0, atol=0)

    # state_dict with masks into a fresh model pruned the same way (prune.identity adds the
    # reparametrization; the masks come from the state_dict)
    state = m.state_dict()
    assert any(k.endswith("_mask") for k in state) and any(k.endswith("_orig") for k in state)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    fresh = factory()
    for module, tensor in _targets(fresh, paths):
        prune.identity(module, tensor)
    fresh.load_state_dict(torch.load(buffer))
    fresh.eval()
    torch.testing.assert_close(_out(fresh, x), y, rtol=0, atol=0)

    # prune.remove makes the pruning permanent: plain parameters with the zeros, same output
    for module, tensor in _targets(m, paths):
        prune.remove(module, tensor)
        assert isinstance(getattr(module, tensor), torch.nn.Parameter)
        assert not hasattr(module, tensor + "_mask")
    torch.testing.assert_close(_out(m, x), y, rtol=0, atol=0)
    for mod, t in _targets(m, paths):
        assert torch.all(getattr(mod, t)[masks[(id(mod), t)] == 0] == 0)


@pytest.mark.parametrize("name,factory,shape,paths", LAYERS, ids=IDS)
def test_save_quantized_weights_of_pruned_layers(tmp_path, name, factory, shape, paths):
    m = factory()
    for module, tensor in _targets(m, paths):
        prune.l1_unstructured(module, tensor, amount=0.5)
    m.eval()
    x = torch.randn(shape)
    with torch.no_grad():
        y = _out(m, x)
    info = save_quantized_weights(m, tmp_path / "w.safetensors")
    unpruned = save_quantized_weights(factory(), tmp_path / "unpruned.safetensors")
    # the pruned tensor is stored under its own name, encoded as in the unpruned layer (integers
    # where it has a quantizer; the folded layers store their raw weight as floats and the folded
    # one as integers), with its zeros; the mask as a float buffer
    for path, tensor in paths:
        entry = info[path][tensor]
        assert entry["encoding"] == unpruned[path][tensor]["encoding"]
        assert set(info[path]) == set(unpruned[path]) | {t + "_mask" for p, t in paths
                                                         if p == path}
        mask = (m.get_submodule(path) if path else m).get_buffer(tensor + "_mask")
        assert torch.all(entry["values"][mask == 0] == 0)
        assert info[path][tensor + "_mask"]["encoding"] == "float"
        assert tensor + "_orig" not in info[path]
    fresh = factory()
    for module, tensor in _targets(fresh, paths):
        prune.identity(module, tensor)
    fresh.eval()
    load_quantized_weights(fresh, tmp_path / "w.safetensors")
    for (a, t), (b, _) in zip(_targets(m, paths), _targets(fresh, paths)):
        assert torch.equal(getattr(a, t + "_mask"), getattr(b, t + "_mask"))
    torch.testing.assert_close(_out(fresh, x), y, rtol=0, atol=0)
    # the same file after prune.remove: the plain model's file plus the masks
    plain = copy.deepcopy(m)
    for module, tensor in _targets(plain, paths):
        prune.remove(module, tensor)
    plain_info = save_quantized_weights(plain, tmp_path / "plain.safetensors")
    for path, tensor in paths:
        assert torch.equal(plain_info[path][tensor]["values"], info[path][tensor]["values"])


@pytest.mark.parametrize("name,factory,shape,paths", LAYERS, ids=IDS)
def test_to_config_of_pruned_layers(name, factory, shape, paths):
    m = factory()
    plain = heteroq.config.to_config(torch.nn.Sequential(factory()))
    for module, tensor in _targets(m, paths):
        prune.l1_unstructured(module, tensor, amount=0.5)
    assert heteroq.config.to_config(torch.nn.Sequential(m)) == plain


def _jet(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        qnn.QDense(16, 64, kernel_quantizer=Q, bias_quantizer=Q),
        qnn.QActivation("quantized_relu(6,0)"),
        qnn.QDense(64, 32, kernel_quantizer=Q, bias_quantizer=Q),
        qnn.QActivation("quantized_relu(6,0)"),
        qnn.QDense(32, 32, kernel_quantizer=Q, bias_quantizer=Q),
        qnn.QActivation("quantized_relu(6,0)"),
        qnn.QDense(32, 5, kernel_quantizer=Q, bias_quantizer=Q))


def _dense(m):
    return [layer for layer in m if isinstance(layer, qnn.QDense)]


def _pruned_jet(amount=0.5):
    m = _jet()
    prune.global_unstructured([(layer, "weight") for layer in _dense(m)],
                              pruning_method=prune.L1Unstructured, amount=amount)
    return m


def test_cost_models_of_a_pruned_jet_model():
    """50% of the jet model's weights pruned (global L1): the multiplications, BOPs and EBOPs
    count only the surviving weights, layer by layer, as the formulas of docs/hardware.md give
    them from the quantized weights; LUTs shrink; QTools with skip_zero_weights prices only the
    non-zero weights."""
    dense, pruned = _jet(), _pruned_jet(0.5)
    b0, b1 = cost.bops(dense, (1, 16)), cost.bops(pruned, (1, 16))
    q = heteroq.get_quantizer(Q)
    total_w = sum(layer.weight.numel() for layer in _dense(pruned))
    masked = sum(int(layer.weight_mask.sum()) for layer in _dense(pruned))
    assert masked == total_w // 2
    for i, layer in zip((0, 2, 4, 6), _dense(pruned)):
        w = q(layer.weight.detach())
        nonzero = int((w != 0).sum())
        bx = 8 if i == 0 else 6
        assert b1.layer(str(i)).multiplications == nonzero
        assert b1.layer(str(i)).bops == nonzero * bx * 6
        spans = sum(cost.bit_span(float(v)) for v in w.flatten())
        bias = q(layer.bias.detach())
        bias_term = sum(cost.bit_span(float(v)) for v in bias) / bias.numel() * bias.numel()
        assert b1.layer(str(i)).ebops == pytest.approx(bx * spans + bias_term)
    # at most half the weights survive (some of the kept ones quantize to 0 as well)
    assert b1.multiplications <= total_w // 2 < b0.multiplications
    assert b1.bops == sum(l.bops for l in b1.layers) < 0.6 * b0.bops
    # L1 pruning removes the smallest weights, whose spans are the shortest: EBOPs drop less
    assert b1.ebops == pytest.approx(sum(l.ebops for l in b1.layers)) and b1.ebops < b0.ebops
    f0, f1 = cost.fpga_estimate(dense, (1, 16)), cost.fpga_estimate(pruned, (1, 16))
    assert f1.lut < f0.lut
    assert sum(l.products_dsp + l.products_lut + l.products_free for l in f1.layers) == \
        b1.multiplications

    # QTools: by default every weight counts (QTools, AutoQKeras); skip_zero_weights prices the
    # non-zero ones only
    e0 = cost.energy(dense, (1, 16))
    assert cost.energy(pruned, (1, 16)).total == pytest.approx(e0.total)
    types = cost.data_types(pruned, (1, 16), skip_zero_weights=True)
    for i, layer in zip((0, 2, 4, 6), _dense(pruned)):
        nonzero = int((q(layer.weight.detach()) != 0).sum())
        lt = types.layers[i]
        assert lt.operation_count == nonzero
        assert {p.name: p.count for p in lt.parameters}["kernel"] == nonzero
        assert all(op.count == nonzero for op in lt.operators)
    e1 = cost.energy(pruned, (1, 16), skip_zero_weights=True)
    assert e1.total < 0.7 * e0.total
    s0 = cost.model_size(dense, (1, 16))
    s1 = cost.model_size(pruned, (1, 16), skip_zero_weights=True)
    assert s0.parameter_bits == 6 * sum(l.weight.numel() + l.bias.numel() for l in _dense(dense))
    assert s1.parameter_bits == 6 * sum(int((q(l.weight.detach()) != 0).sum()) +
                                        int((q(l.bias.detach()) != 0).sum())
                                        for l in _dense(pruned))
    # estimate() passes the option on
    c = cost.estimate(pruned, (1, 16), qtools_options={"skip_zero_weights": True})
    assert c.energy == pytest.approx(e1.total)
    assert c.ebops == pytest.approx(b1.ebops)
    # describe runs the pruning hooks: the same description after prune.remove
    removed = copy.deepcopy(pruned)
    for layer in _dense(removed):
        prune.remove(layer, "weight")
    assert cost.bops(removed, (1, 16)).ebops == b1.ebops


def test_skip_zero_weights_recurrent_and_separable():
    """skip_zero_weights on the stages of a GRU (reset_after=False: r/z and n rows apart) and a
    separable convolution: each stage's operations are its non-zero weights times their uses."""
    gru = qnn.QGRU(4, 5, kernel_quantizer=Q, recurrent_quantizer=Q, reset_after=False,
                   batch_first=True)
    with torch.no_grad():
        gru.weight_hh_l0[10:15] = 0  # the n rows
        gru.weight_hh_l0[0:2] = 0    # two r rows
        gru.weight_ih_l0[:, 0] = 0
    t = cost.data_types(gru, (1, 7, 4), skip_zero_weights=True)
    ops = {s.part: s.operations for s in t.layers[0].stages}
    q = heteroq.get_quantizer(Q)
    w_ih, w_hh = q(gru.weight_ih_l0.detach()), q(gru.weight_hh_l0.detach())
    assert ops["kernel"] == 7 * int((w_ih != 0).sum())
    assert ops["recurrent"] == 7 * int((w_hh[:10] != 0).sum())
    assert ops["recurrent_n"] == 7 * int((w_hh[10:] != 0).sum()) == 0
    full = cost.data_types(gru, (1, 7, 4))
    assert {s.part: s.operations for s in full.layers[0].stages} == \
        {"kernel": 7 * 15 * 4, "recurrent": 7 * 10 * 5, "recurrent_n": 7 * 5 * 5}

    sep = qnn.QSeparableConv2d(3, 4, 3, depthwise_quantizer=Q, pointwise_quantizer=Q)
    prune.l1_unstructured(sep.depthwise, "weight", amount=0.5)
    prune.l1_unstructured(sep.pointwise, "weight", amount=0.25)
    t = cost.data_types(sep, (1, 3, 6, 6), skip_zero_weights=True)
    ops = {s.part: s.operations for s in t.layers[0].stages}
    dw = int((q(sep.depthwise.weight.detach()) != 0).sum())
    pw = int((q(sep.pointwise.weight.detach()) != 0).sum())
    assert ops == {"depthwise": 16 * dw, "pointwise": 16 * pw}


def test_docs_example_prints_what_the_page_shows(capsys):
    """docs/pruning.md's worked example prints the table the page shows."""
    import pathlib
    import re
    page = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "pruning.md").read_text()
    section = page[page.index("### Worked example: the jet MLP pruned"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    shown = re.search(r"```text\n(.*?)```", section, re.S).group(1)
    exec(compile(code, "docs/pruning.md", "exec"), {})
    assert capsys.readouterr().out == shown


def test_model_quantize_after_prune_remove():
    """The documented route for a pruned float model: prune.remove, then model_quantize with
    transfer_weights; the quantized model keeps the zeros (and their zero cost)."""
    float_model = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU(),
                                      torch.nn.Linear(8, 5))
    prune.l1_unstructured(float_model[0], "weight", amount=0.5)
    prune.remove(float_model[0], "weight")
    q = heteroq.model_quantize(float_model, {"QDense": {"kernel_quantizer": Q,
                                                        "bias_quantizer": Q}},
                               transfer_weights=True)
    assert int((q[0].weight == 0).sum()) == 64
    assert cost.bops(q, (1, 16)).layer("0").multiplications <= 64


def test_model_quantize_of_a_pruned_float_model():
    """model_quantize(transfer_weights=True) of a still-pruned float model, right after a training
    forward (whose pruned weight deepcopy refuses): the quantized layer carries the effective
    weight and the same mask."""
    torch.manual_seed(0)
    float_model = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU(),
                                      torch.nn.Linear(8, 5))
    prune.l1_unstructured(float_model[0], "weight", amount=0.5)
    float_model(torch.randn(4, 16)).sum().backward()
    q = heteroq.model_quantize(float_model, {"QDense": {"kernel_quantizer": Q,
                                                        "bias_quantizer": Q}},
                               transfer_weights=True)
    assert torch.equal(q[0].weight_mask, float_model[0].weight_mask)
    assert torch.equal(q[0].weight_orig, float_model[0].weight_orig.detach() * float_model[0].weight_mask)
    assert int((q[0].weight == 0).sum()) == 64
    # it stays pruned while training
    opt = torch.optim.SGD(q.parameters(), lr=0.1)
    q(torch.randn(4, 16)).sum().backward()
    opt.step()
    assert int((q[0].weight == 0).sum()) >= 64
    assert cost.bops(q, (1, 16)).layer("0").multiplications <= 64
