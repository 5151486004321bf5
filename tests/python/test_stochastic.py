# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""Stochastic rounding (use_stochastic_rounding): training only, unbiased, reproducible, exact."""
import pytest
import torch

import heteroq
from heteroq import get_quantizer, quantized_bits, quantized_relu


def test_eval_mode_rounds_to_nearest():
    for q in [quantized_bits(4, 0, use_stochastic_rounding=True), quantized_relu(4, 1, use_stochastic_rounding=True)]:
        q.eval()
        x = torch.randn(1000)
        plain = type(q)(**{**q.get_config(), "use_stochastic_rounding": False})
        assert torch.equal(q(x), plain(x))


@pytest.mark.parametrize("spec,step", [("quantized_bits(4,0,use_stochastic_rounding=1)", 1 / 8),
                                       ("quantized_relu(4,1,use_stochastic_rounding=1)", 1 / 8),
                                       ("quantized_relu(5,0,0,0.25,use_stochastic_rounding=1)", 1 / 16)])
def test_training_rounds_to_a_neighbour_without_bias(spec, step):
    q = get_quantizer(spec).train()
    x = torch.tensor([0.3, 0.51, 0.02, 0.7])
    xs = x.repeat(40000)
    out = q(xs).view(-1, 4)
    # Every output is the grid point below or above x (never further) ...
    lo, hi = torch.floor(x / step) * step, torch.ceil(x / step) * step
    assert ((out == lo) | (out == hi)).all()
    # ... and the mean is x: 160000 draws, standard error <= step/2/sqrt(40000) = step/400.
    assert torch.allclose(out.mean(0), x, atol=step / 40, rtol=0)
    assert (out == lo).any() and (out == hi).any()


def test_reproducible_under_manual_seed_and_gradients():
    q = quantized_bits(4, 0, use_stochastic_rounding=True)
    x = torch.randn(1000, requires_grad=True)
    torch.manual_seed(7)
    a = q(x)
    torch.manual_seed(7)
    b = q(x)
    assert torch.equal(a, b)
    a.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))  # identity STE
    r = quantized_relu(4, 0, use_stochastic_rounding=True)
    y = torch.tensor([-1.0, 0.5, 2.0], requires_grad=True)
    r(y).sum().backward()
    assert y.grad.tolist() == [0.0, 1.0, 0.0]


def bits_view(t):
    return t.contiguous().view(torch.int32 if t.dtype == torch.float32 else torch.int64)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("op,args", [
    ("quantized_bits_stochastic", (6, 1, False, True, 0.5, 1.0)),
    ("quantized_bits_stochastic", (5, 0, True, True, None, 0.25)),
    ("quantized_relu_stochastic", (4, 0, False, 0.25, 1.0)),
    ("quantized_relu_stochastic", (6, 1, True, 0.5, 0.5)),
])
def test_fused_equals_generic(dtype, op, args):
    x = torch.cat([torch.randn(100001, dtype=dtype) * 3,
                   torch.tensor([float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 0.5], dtype=dtype)])
    noise = torch.rand_like(x)
    fused = getattr(torch.ops.heteroq, op)(x, noise, *args)
    with heteroq.ops.fused_kernels(False):
        generic = getattr(torch.ops.heteroq, op)(x, noise, *args)
    nan = torch.isnan(fused)
    assert torch.equal(nan, torch.isnan(generic))
    assert torch.equal(bits_view(fused)[~nan], bits_view(generic)[~nan])


def test_layers_spec_and_errors():
    fc = heteroq.nn.QDense(8, 4, kernel_quantizer="quantized_bits(2,0,use_stochastic_rounding=1)")
    x = torch.randn(3, 8)
    torch.manual_seed(1)
    a = fc(x)
    torch.manual_seed(2)
    b = fc(x)
    assert not torch.equal(a, b)  # training: two draws differ
    fc.eval()
    assert torch.equal(fc(x), fc(x))
    assert torch.jit.script(fc)(x).shape == (3, 4)
    q = get_quantizer("quantized_relu(4,0,use_stochastic_rounding=1)")
    assert q.to_string() == "quantized_relu(4,0,use_stochastic_rounding=1)"
    assert get_quantizer(q.to_string()).use_stochastic_rounding is True
    with pytest.raises(ValueError, match="`noise` has shape"):
        torch.ops.heteroq.quantized_bits_stochastic(torch.ones(3), torch.ones(2), 4)
    with pytest.raises(TypeError, match="`noise` must have the input's dtype"):
        torch.ops.heteroq.quantized_bits_stochastic(torch.ones(3), torch.ones(3, dtype=torch.float64), 4)


def test_stochastic_binary_and_bernoulli_probabilities():
    from heteroq import bernoulli, stochastic_binary
    x = torch.tensor([-0.3, 0.0, 0.1, 0.5])
    xs = x.repeat(50000)
    p = torch.sigmoid(6.0 * x)  # QKeras: temperature 6, real sigmoid, s = 1 without an auto alpha
    torch.manual_seed(0)
    sb = stochastic_binary().train()
    out = sb(xs).view(-1, 4)
    assert set(out.unique().tolist()) <= {-1.0, 1.0}
    assert torch.allclose(out.mean(0), 2 * p - 1, atol=0.02, rtol=0)
    sb.eval()
    assert sb(x).tolist() == [-1.0, 1.0, 1.0, 1.0]  # binary in eval mode
    b = bernoulli(alpha=0.5).eval()  # always stochastic, even in eval mode
    out = b(xs).view(-1, 4)
    assert set(out.unique().tolist()) <= {0.0, 0.5}
    assert torch.allclose(out.mean(0), 0.5 * p, atol=0.01, rtol=0)
    hard = stochastic_binary(use_real_sigmoid=False).train()(xs).view(-1, 4)
    assert torch.allclose(hard.mean(0), 2 * (3.0 * x + 0.5).clamp(0, 1) - 1, atol=0.02, rtol=0)


def test_stochastic_binary_auto_scale_gradient_and_spec():
    from heteroq import bernoulli, stochastic_binary
    q = stochastic_binary(alpha="auto_po2").train()
    w = torch.randn(4, 64, requires_grad=True)
    out = q(w)
    assert q.scale.shape == (4, 1)
    assert torch.equal(out.detach().abs(), q.scale.expand(4, 64))
    out.sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))
    for spec in ["stochastic_binary", "bernoulli(alpha=0.5,temperature=4.0)",
                 "stochastic_binary(alpha='auto',use_real_sigmoid=0)"]:
        s = get_quantizer(spec)
        assert get_quantizer(s.to_string()).to_string() == s.to_string()
    assert bernoulli().range().tolist() == [0.0, 1.0] and bernoulli().min() == 0.0
    with pytest.raises(ValueError, match="`temperature` must be a finite number > 0"):
        stochastic_binary(temperature=0)


def test_stochastic_ternary_probabilities_and_modes():
    from heteroq import stochastic_ternary, ternary
    torch.manual_seed(0)
    x = torch.randn(3, 40, dtype=torch.float64)
    draws = [torch.ops.heteroq.stochastic_ternary(x, torch.rand_like(x), torch.rand_like(x), 8.0, True,
                                                  True, 5, None) for _ in range(3000)]
    s = draws[0][1]
    qs = torch.stack([d[0] for d in draws]) / s
    assert set(qs.unique().tolist()) <= {-1.0, 0.0, 1.0}
    # E[q] = (σ(t(xn - T)) + σ(t(xn + T))) - 1, xn = x / sd, T = s / (2 sd) (QKeras's formula).
    sd = x.std(dim=1, unbiased=False, keepdim=True) + 1e-7
    xn, big_t = x / sd, s / (2 * sd)
    expected = torch.sigmoid(8 * (xn - big_t)) + torch.sigmoid(8 * (xn + big_t)) - 1
    assert torch.allclose(qs.mean(0), expected, atol=0.05, rtol=0)
    q = stochastic_ternary(alpha="auto")
    w = torch.randn(4, 30, requires_grad=True)
    q.train()(w).sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))
    q.eval()
    assert torch.equal(q(w.detach()), ternary("auto")(w.detach()))
    with pytest.raises(ValueError, match="training needs alpha 'auto' or 'auto_po2'"):
        stochastic_ternary().train()(w)
    for spec in ["stochastic_ternary(alpha='auto_po2',temperature=4.0)", "stochastic_ternary(threshold=0.2)"]:
        assert get_quantizer(get_quantizer(spec).to_string()).to_string() == get_quantizer(spec).to_string()
    with pytest.raises(ValueError, match="`threshold` must be None"):
        get_quantizer("stochastic_ternary(alpha='auto',threshold=0.2)")
