# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""QLinear / QDense / QActivation: forward, gradients, optimizers, state_dict, save, script, repr."""
import copy
import io

import pytest
import torch
import torch.nn.functional as F

import heteroq
from heteroq.nn import QActivation, QDense, QLinear


def make_mlp():
    return torch.nn.Sequential(
        QDense(8, 16, kernel_quantizer="quantized_bits(6,0,alpha=1)",
               bias_quantizer=heteroq.quantized_bits(6, 0, alpha=1)),
        QActivation("quantized_relu(6,0)"),
        QDense(16, 3, kernel_quantizer="quantized_bits(6,0,alpha=1)"),
    )


def test_forward_equals_linear_of_quantized_parameters():
    fc = QLinear(5, 3, kernel_quantizer="quantized_bits(4,0,alpha=1)", bias_quantizer="quantized_bits(6,2)")
    x = torch.randn(7, 5)
    w = heteroq.ops.quantized_bits(fc.weight, 4, 0, False, True, 1.0)
    b = heteroq.ops.quantized_bits(fc.bias, 6, 2)
    assert torch.equal(fc(x), F.linear(x, w, b))
    assert torch.equal(fc.quantized_weight(), w)
    assert torch.equal(w * 8, torch.round(w * 8))


def test_parameters_like_nn_linear():
    fc = QLinear(4, 2, bias=False)
    assert [n for n, _ in fc.named_parameters()] == ["weight"]
    assert fc.weight.shape == (2, 4) and fc.bias is None
    assert QDense is QLinear
    fc64 = QLinear(4, 2, dtype=torch.float64)
    assert fc64.weight.dtype == torch.float64
    assert fc64(torch.randn(3, 4, dtype=torch.float64)).dtype == torch.float64


def test_gradients_reach_every_parameter():
    fc = QLinear(4, 2, kernel_quantizer="quantized_bits(4,0,alpha=1)", bias_quantizer="quantized_bits(4,0,alpha=1)")
    fc(torch.randn(3, 4)).sum().backward()
    assert fc.weight.grad is not None
    assert fc.bias.grad.tolist() == [3.0, 3.0]  # STE: the float layer's gradient


@pytest.mark.parametrize("opt,lr", [(torch.optim.SGD, 0.2), (torch.optim.Adam, 1e-2),
                                    (torch.optim.RMSprop, 1e-2)])
def test_training_lowers_the_loss(opt, lr):
    x = torch.randn(256, 8)
    y = torch.argmax(x @ torch.randn(8, 3), 1)
    model = make_mlp()
    optimizer = opt(model.parameters(), lr=lr)
    first = F.cross_entropy(model(x), y).item()
    for _ in range(60):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
    assert F.cross_entropy(model(x), y).item() < 0.8 * first


def test_state_dict_round_trip():
    a, b = make_mlp(), make_mlp()
    x = torch.randn(4, 8)
    assert not torch.equal(a(x), b(x))
    b.load_state_dict(a.state_dict())
    assert torch.equal(a(x), b(x))
    assert set(a.state_dict()) == {"0.weight", "0.bias", "2.weight", "2.bias"}


def test_torch_save_whole_model_and_deepcopy():
    model = make_mlp()
    x = torch.randn(4, 8)
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)  # whole modules need pickle (PyTorch >= 2.6 defaults to True)
    assert torch.equal(loaded(x), model(x))
    assert repr(loaded) == repr(model)
    assert torch.equal(copy.deepcopy(model)(x), model(x))


def test_torch_jit_script_and_save():
    model = make_mlp()
    scripted = torch.jit.script(model)
    x = torch.randn(4, 8)
    assert torch.equal(scripted(x), model(x))
    buf = io.BytesIO()
    torch.jit.save(scripted, buf)
    buf.seek(0)
    assert torch.equal(torch.jit.load(buf)(x), model(x))
    # Unquantized slots script too.
    plain = QLinear(8, 2, bias=False)
    assert torch.equal(torch.jit.script(plain)(x), plain(x))


def test_repr_shows_quantizers():
    fc = QLinear(16, 64, kernel_quantizer="quantized_bits(6,0,alpha=1)")
    assert repr(fc) == ("QLinear(\n  in_features=16, out_features=64, bias=True\n"
                        "  (kernel_quantizer): quantized_bits(6,0,0,alpha=1.0)\n)")
    assert repr(QActivation("quantized_relu(4,2)")) == (
        "QActivation(\n  (quantizer): quantized_relu(4,2)\n)")


def test_qactivation():
    act = QActivation(heteroq.quantized_relu(4, 2))
    assert act(torch.tensor([-1.0, 0.6, 9.0])).tolist() == [0.0, 0.5, 3.75]


def test_bad_arguments():
    with pytest.raises(ValueError, match="unbalanced parentheses"):
        QLinear(4, 2, kernel_quantizer="quantized_bits(4,0")
    with pytest.raises(TypeError, match="QLinear.kernel_quantizer: expected a heteroq quantizer"):
        QLinear(4, 2, kernel_quantizer=3)
    with pytest.raises(ValueError, match="must be > 0"):
        QLinear(0, 2)
    with pytest.raises(ValueError, match="`activation` must be"):
        QActivation(None)
    with pytest.raises(RuntimeError):
        QLinear(4, 2)(torch.randn(3, 5))
