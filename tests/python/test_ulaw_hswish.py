# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""quantized_ulaw and quantized_hswish against transcriptions of QKeras's code."""
import numpy as np
import pytest
import torch

from heteroq import get_quantizer, quantized_bits, quantized_hswish, quantized_ulaw

f32 = np.float32


def qkeras_ulaw(x, bits, integer, symmetric, u):
    m = f32(2.0 ** (bits - 1))
    m_i = f32(2.0 ** integer)
    p = np.clip(f32(0.5) * (x / m_i) + f32(0.5), 0, 1).astype(f32) * m
    rp = f32(2) * (np.round(p) / m) - f32(1)
    law = np.sign(rp) * np.log(f32(1) + f32(u) * np.abs(rp)) / np.log(f32(1) + f32(u))
    return m_i * np.clip(law, -1 + symmetric / m, 1 - 1 / m)


@pytest.mark.parametrize("bits,integer,symmetric,u", [(8, 0, 0, 255.0), (4, 1, 1, 100.0), (6, -1, 0, 8.0)])
def test_ulaw_matches_qkeras(bits, integer, symmetric, u):
    x = np.linspace(-5, 5, 4001, dtype=f32)
    q = quantized_ulaw(bits, integer, symmetric, u)
    # log differs between libraries in the last bits: compare to 2 ulp of float32.
    np.testing.assert_allclose(q(torch.from_numpy(x)).numpy(), qkeras_ulaw(x, bits, integer, symmetric, u),
                               rtol=3e-7, atol=1e-7)


def test_ulaw_gradient_uses_round_ste():
    x = torch.tensor([0.1, 0.5], dtype=torch.float64, requires_grad=True)
    quantized_ulaw(8, 0, 0, 255.0)(x).sum().backward()
    # d/dx: 2 hσ'(x)=0.5·2 -> drp/dx = 1 (round STE); d law/d rp = u / ((1 + u |rp|) log(1 + u)).
    rp = 2 * torch.round((0.5 * x.detach() + 0.5) * 128) / 128 - 1
    want = 255.0 / ((1 + 255.0 * rp.abs()) * np.log1p(255.0))
    assert torch.allclose(x.grad, want, rtol=1e-12, atol=0)


@pytest.mark.parametrize("spec", ["quantized_hswish(6,2)", "quantized_hswish(8,3,1,alpha=0.5)",
                                  "quantized_hswish(4,1,relu_shift=2,relu_upper_bound=4,qnoise_factor=0.5)"])
def test_hswish_is_quantized_bits_of_the_hard_swish(spec):
    q = get_quantizer(spec)
    x = torch.linspace(-8, 8, 2001)
    s = x + q.relu_shift
    h = x * torch.where(s <= q.relu_upper_bound, torch.relu(s), torch.tensor(q.relu_upper_bound)) / q.relu_upper_bound
    inner = quantized_bits(q.bits, q.integer, q.symmetric, True, q.alpha, qnoise_factor=q.qnoise_factor)
    assert torch.equal(q(x), inner(h))
    assert get_quantizer(q.to_string()).to_string() == q.to_string()
    xg = x.clone().requires_grad_()
    q(xg).sum().backward()
    hg = x.clone().requires_grad_()
    sg = hg + q.relu_shift
    (hg * torch.where(sg <= q.relu_upper_bound, torch.relu(sg), torch.tensor(q.relu_upper_bound))
     / q.relu_upper_bound).sum().backward()
    assert torch.equal(xg.grad, hg.grad)


def test_hswish_min_and_errors():
    # QKeras: min is the quantized -shift²/(4 ub) = -0.375 when the grid goes lower.
    assert quantized_hswish(6, 2).min() == -0.375
    # -shift²/(4 ub) = -1.5 is below the grid's bound -1: QKeras returns the bound.
    assert quantized_hswish(6, 0, relu_shift=6, relu_upper_bound=6).min() == -1.0
    for spec, needle in [("quantized_hswish(6,2,relu_shift=0)", "`relu_shift` must be a finite number > 0"),
                         ("quantized_ulaw(4,0,0,-1)", "`u` must be a finite number > 0"),
                         ("quantized_ulaw(0)", r"`bits` must be an integer in \[1, 32\]")]:
        with pytest.raises(ValueError, match=needle):
            get_quantizer(spec)
    with pytest.raises(ValueError, match="range\\(\\) is not defined"):
        quantized_ulaw(4).range()
