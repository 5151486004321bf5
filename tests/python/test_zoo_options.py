# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""QKeras's remaining quantizer options: stochastic rounding of po2, tanh/sigmoid, binary and
ternary; use_ste=False; relu_upper_bound with is_quantized_clip=False; enable_fast_inference;
per-channel alpha; elements_per_scale and min/max_po2_exponent. Values against NumPy
transcriptions of QKeras's formulas (the noise is an operator input, so the draws are known)."""
import math

import numpy as np
import pytest
import torch

import heteroq
from heteroq import (binary, get_quantizer, quantized_bits, quantized_po2, quantized_relu,
                     quantized_relu_po2, quantized_sigmoid, quantized_tanh, ternary)

ops = torch.ops.heteroq


def grad_of(q, x):
    x = x.clone().requires_grad_(True)
    q(x).sum().backward()
    return x.grad


# ------------------------------------------------------------------------------------------------
# stochastic rounding


def np_stochastic_po2_exponent(f, u):
    # QKeras stochastic_round_po2: the bracketing exponents lo, lo + 1; lo when f < 2^lo (1 + u).
    lo = np.floor(np.log2(f))
    return np.where(f < np.exp2(lo) * (1 + u), lo, lo + 1)


def test_po2_stochastic_matches_qkeras_transcription():
    torch.manual_seed(1)
    x = (torch.rand(4000, dtype=torch.float64) * 8 - 4)
    u = torch.rand_like(x)
    out = ops.quantized_po2_stochastic(x, u, 5, None, False, 1.0)
    e = np_stochastic_po2_exponent(np.maximum(np.abs(x.numpy()), 1e-7), u.numpy())
    e = np.clip(e, -8, 7)
    ref = np.where(x.numpy() < 0, -1.0, 1.0) * np.exp2(e)
    np.testing.assert_array_equal(out.numpy(), ref)


def test_po2_stochastic_is_mean_preserving_and_on_the_bracket():
    x = torch.tensor([0.3, -0.7, 1.5, 2.9, 0.125])
    q = quantized_po2(6, use_stochastic_rounding=True).train()
    torch.manual_seed(0)
    draws = torch.stack([q(x) for _ in range(20000)])
    # Every draw is one of the two powers of two around |x| (exact powers of two stay put).
    lo = torch.exp2(torch.floor(torch.log2(x.abs())))
    ok = (draws.abs() == lo) | (draws.abs() == 2 * lo)
    assert bool(ok.all()) and bool((torch.sign(draws) == torch.sign(x)).all())
    assert bool((draws[:, 4] == 0.125).all())
    # E[q(x)] = x: mean of 20000 draws within 4 standard errors (sd <= 2^lo / 2).
    se = (lo / 2) / math.sqrt(draws.shape[0])
    assert bool(((draws.mean(0) - x).abs() <= 4 * se).all()), draws.mean(0)
    # Eval mode rounds deterministically, as QKeras outside its learning phase.
    assert torch.equal(q.eval()(x), quantized_po2(6)(x))


def test_po2_stochastic_reproducible_gradient_and_floor_mode():
    x = torch.linspace(-3, 3, 101)
    q = quantized_relu_po2(4, None, 0.5, True).train()
    torch.manual_seed(3)
    a = q(x)
    torch.manual_seed(3)
    assert torch.equal(a, q(x))
    # The gradient is the deterministic quantizer's STE.
    assert torch.equal(grad_of(q, x), grad_of(quantized_relu_po2(4, None, 0.5), x))
    assert torch.equal(grad_of(quantized_po2(4, use_stochastic_rounding=True).train(), x),
                       torch.ones_like(x))
    # QKeras: log2_rounding="floor" takes precedence over stochastic rounding.
    qf = quantized_po2(4, None, True, log2_rounding="floor").train()
    assert torch.equal(qf(x), quantized_po2(4, log2_rounding="floor")(x))
    # Quadratic mode: even exponents only.
    qq = quantized_po2(6, None, True, True).train()
    e = torch.log2(qq(torch.rand(1000) * 4 + 0.01).abs())
    assert bool((torch.remainder(e, 2) == 0).all())


@pytest.mark.parametrize("cls,kw", [(quantized_tanh, dict(use_real_tanh=False)),
                                    (quantized_tanh, dict(use_real_tanh=True)),
                                    (quantized_sigmoid, dict(use_real_sigmoid=True))])
def test_tanh_sigmoid_stochastic(cls, kw):
    bits = 4
    q = cls(bits, use_stochastic_rounding=True, **kw).train()
    det = cls(bits, **kw)
    x = torch.linspace(-1.5, 1.5, 61, dtype=torch.float64)
    torch.manual_seed(0)
    draws = torch.stack([q(x) for _ in range(4000)])
    grid = det.range().to(torch.float64)
    assert bool(torch.isin(draws, grid).all())  # on the grid (QKeras: half steps)
    # Inside the grid the mean is the unquantized activation (stochastic rounding is unbiased).
    is_tanh = cls is quantized_tanh
    p = (torch.tanh(x) if kw.get("use_real_tanh") else torch.clamp(x / 2 + 0.5, 0, 1) * 2 - 1) \
        if is_tanh else torch.sigmoid(x)
    inside = (p >= min(grid)) & (p <= max(grid))
    step = 2.0 ** -(bits - 1) if is_tanh else 2.0 ** -bits
    se = step / 2 / math.sqrt(draws.shape[0])
    assert bool(((draws.mean(0) - p).abs()[inside] <= 4 * se).all())
    assert torch.equal(grad_of(q, x), grad_of(det, x))
    assert torch.equal(q.eval()(x), det(x))


def test_tanh_sigmoid_stochastic_transcription():
    x = torch.linspace(-2, 2, 81)
    u = torch.rand_like(x)
    m = 8.0
    p = (torch.clamp(x / 2 + 0.5, 0, 1) * 2 - 1) * m
    f = torch.floor(p)
    code = torch.where(p - f < u, f, torch.ceil(p)).clamp(-m, m - 1)
    assert torch.equal(ops.quantized_tanh_stochastic(x, u, 4, False, False), code / m)


def np_binary_stochastic(x, u0, u1, alpha):
    # QKeras binary.__call__ with use_stochastic_rounding in its learning phase (channels: axis 0).
    red = tuple(range(1, x.ndim))
    m = np.minimum(np.abs(x).max(axis=red, keepdims=True), 1.0)
    f = 2 * m
    y = x / f * 8
    xs = f * np.where(y - np.floor(y) < u0, np.floor(y), np.ceil(y)) / 8
    k = np.sign(xs)
    k = np.where(k == 0, np.where(u1 > 0.5, 1.0, -1.0), k)
    if alpha in ("auto", "auto_po2"):
        s = (xs * k).mean(axis=red, keepdims=True) / ((k * k).mean(axis=red, keepdims=True) + 1e-7)
        if alpha == "auto_po2":
            s = np.exp2(np.round(np.log(s + 1e-7) / np.log(2.0)))
    else:
        s = 1.0 if alpha is None else alpha
    return s * k


@pytest.mark.parametrize("alpha,mode", [(None, 0), (0.5, 0), ("auto", 1), ("auto_po2", 2)])
def test_binary_stochastic_matches_qkeras_transcription(alpha, mode):
    torch.manual_seed(2)
    x = torch.randn(6, 40, dtype=torch.float64) * 0.3
    x[0, :5] = 0.0
    noise = torch.rand(2, 6, 40, dtype=torch.float64)
    out, _ = ops.binary_stochastic(x, noise, False, alpha if mode == 0 else None, mode, None)
    ref = np_binary_stochastic(x.numpy(), noise[0].numpy(), noise[1].numpy(), alpha)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-12, atol=0)


def test_binary_stochastic_statistics_and_modes():
    q = binary(use_stochastic_rounding=True).train()
    x = torch.zeros(20000)
    torch.manual_seed(0)
    y = q(x)
    assert set(y.unique().tolist()) == {-1.0, 1.0}
    assert abs(y.mean().item()) < 4 / math.sqrt(20000)  # zeros get a fair random sign
    # Values far from zero keep their sign; eval mode is the deterministic binary.
    x = torch.tensor([[-0.9, 0.8, 0.5, -0.6]])
    assert torch.equal(q(x), torch.sign(x))
    assert torch.equal(q.eval()(torch.tensor([0.0, -0.1])), torch.tensor([1.0, -1.0]))
    # Gradient: the tanh STE for alpha None, the identity with an alpha.
    x = torch.linspace(-2, 2, 9)
    assert torch.allclose(grad_of(q.train(), x), 1 - torch.tanh(x) ** 2, atol=0.05)
    assert torch.equal(grad_of(binary(alpha="auto", use_stochastic_rounding=True).train(), x),
                       torch.ones_like(x))


def np_ternary_stochastic(x, noise, po2, unrolls):
    red = tuple(range(1, x.ndim))
    s = np.abs(x).max(axis=red, keepdims=True) * 2 / 3
    if po2:
        s = np.exp2(np.round(np.log(s + 1e-7) / np.log(2.0)))
    q = np.zeros_like(x)
    for i in range(unrolls):
        y = x / s * 3
        r = np.where(y - np.floor(y) < noise[i], np.floor(y), np.ceil(y))
        v = s * r / 3
        q = (np.abs(v) >= s / 2) * np.sign(x)
        s = (x * q).mean(axis=red, keepdims=True) / ((q * q).mean(axis=red, keepdims=True) + 1e-7)
        if po2:
            s = np.exp2(np.round(np.log(s + 1e-7) / np.log(2.0)))
    return s * q, s


@pytest.mark.parametrize("po2", [False, True])
def test_ternary_stochastic_matches_qkeras_transcription(po2):
    torch.manual_seed(5)
    x = torch.randn(5, 64, dtype=torch.float64)
    noise = torch.rand(3, 5, 64, dtype=torch.float64)
    out, scale = ops.ternary_stochastic(x, noise, po2, 3, None)
    ref, s = np_ternary_stochastic(x.numpy(), noise.numpy(), po2, 3)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-12, atol=0)
    np.testing.assert_allclose(scale.numpy(), s, rtol=1e-12)


def test_ternary_stochastic_class():
    q = ternary(alpha="auto", use_stochastic_rounding=True).train()
    torch.manual_seed(0)
    x = (torch.rand(8, 300) * 2 - 1)
    y = q(x)
    assert q.scale.shape == (8, 1)
    assert bool(((y == 0) | (y.abs() == q.scale.expand_as(y))).all())
    # QKeras's uniform check: the mean "auto" scale of U[-m, m] is about (m + m/3)/2.
    assert abs(q.scale.mean().item() - 2 / 3) < 0.1
    assert torch.equal(grad_of(q, x), torch.ones_like(x))
    det = ternary(alpha="auto")
    assert torch.equal(q.eval()(x), det(x))
    with pytest.raises(ValueError, match="needs alpha 'auto' or 'auto_po2'"):
        ternary(alpha=1.0, use_stochastic_rounding=True)


@pytest.mark.parametrize("spec", ["quantized_po2(4,None,1)", "quantized_tanh(4,1)",
                                  "binary(alpha='auto',use_stochastic_rounding=1)",
                                  "ternary(alpha='auto_po2',use_stochastic_rounding=1)"])
def test_stochastic_noise_shape_and_dtype_errors(spec):
    x = torch.randn(3, 4)
    bad = torch.rand(5)
    with pytest.raises(ValueError, match="noise"):
        if spec.startswith("quantized_po2"):
            ops.quantized_po2_stochastic(x, bad, 4, None, False, 1.0)
        elif spec.startswith("quantized_tanh"):
            ops.quantized_tanh_stochastic(x, bad, 4, False, False)
        elif spec.startswith("binary"):
            ops.binary_stochastic(x, bad, False, None, 1, None)
        else:
            ops.ternary_stochastic(x, bad, True, 5, None)
    q = get_quantizer(spec)
    assert get_quantizer(q.to_string()).to_string() == q.to_string()
    assert get_quantizer(q.to_json()).to_string() == q.to_string()


def test_stochastic_reduced_precision():
    x = torch.linspace(-2, 2, 50, dtype=torch.bfloat16)
    for q in [quantized_po2(4, use_stochastic_rounding=True), quantized_tanh(4, True),
              binary(alpha="auto", use_stochastic_rounding=True),
              ternary(alpha="auto", use_stochastic_rounding=True)]:
        y = q.train()(x)
        assert y.dtype == torch.bfloat16 and y.shape == x.shape


# ------------------------------------------------------------------------------------------------
# use_ste=False


@pytest.mark.parametrize("make", [
    lambda **k: quantized_bits(4, 1, alpha=1, **k),
    lambda **k: quantized_relu(4, 1, **k),
    lambda **k: quantized_po2(4, **k),
    lambda **k: quantized_relu_po2(4, 2.0, **k),
])
@pytest.mark.parametrize("q", [1.0, 0.25])
def test_use_ste_false(make, q):
    x = torch.linspace(-3, 3, 61)
    ste, no_ste = make(qnoise_factor=q), make(qnoise_factor=q, use_ste=False)
    # QKeras: (1 - q) x_ref + sg(q xq): the same value, the STE gradient times (1 - q).
    assert torch.equal(no_ste(x), ste(x))
    assert torch.equal(grad_of(no_ste, x), grad_of(ste, x) * (1 - q))
    assert get_quantizer(no_ste.to_string()).use_ste is False
    torch.jit.script(no_ste)


# ------------------------------------------------------------------------------------------------
# quantized_relu: relu_upper_bound, is_quantized_clip, enable_fast_inference


def test_relu_upper_bound_without_quantized_clip():
    x = torch.tensor([-1.0, 0.3, 1.2, 1.9, 2.4, 3.0, 5.0, 9.0])
    plain = quantized_relu(4, 2)  # grid step 0.25, top 3.75
    q = quantized_relu(4, 2, relu_upper_bound=2.0, is_quantized_clip=False)
    # QKeras: xq = min(xq, relu_upper_bound); the STE reference relu(x) is capped at the bound.
    assert torch.equal(q(x), torch.minimum(plain(x), torch.tensor(2.0)))
    assert torch.equal(grad_of(q, x), torch.tensor([0.0, 1, 1, 1, 0, 0, 0, 0]))
    # Without a bound, the reference is not capped at all: gradient 1 for every x > 0.
    unbounded = quantized_relu(4, 2, is_quantized_clip=False)
    assert torch.equal(unbounded(x), plain(x))
    assert torch.equal(grad_of(unbounded, x), (x > 0).float())
    # With is_quantized_clip on (the default) the bound is ignored, as in QKeras.
    assert torch.equal(quantized_relu(4, 2, relu_upper_bound=2.0)(x), plain(x))
    # qnoise blends with the bounded reference.
    qn = quantized_relu(4, 2, relu_upper_bound=2.0, is_quantized_clip=False, qnoise_factor=0.5)
    x_u = torch.clamp(x, 0, 2.0)
    assert torch.allclose(qn(x), x_u + 0.5 * (q(x) - x_u))
    # With a slope, the negative side follows the slope.
    ql = quantized_relu(4, 2, 0, 0.5, relu_upper_bound=2.0, is_quantized_clip=False)
    assert grad_of(ql, torch.tensor([-1.0]))[0] == 0.5
    assert get_quantizer(q.to_string()).to_string() == q.to_string()
    torch.jit.script(q)


def test_relu_fast_inference():
    x = torch.linspace(-2, 6, 81)
    q = quantized_relu(4, 2, 0, 0.5, enable_fast_inference=True)
    m = 2.0 ** (4 - 2)
    ref = 4.0 * torch.clamp(torch.round(x * m) / 16, 0, 1 - 1 / 16)  # QKeras's formula
    assert torch.equal(q(x), ref)
    assert not q(x.requires_grad_()).requires_grad
    assert get_quantizer(q.to_string()).enable_fast_inference


# ------------------------------------------------------------------------------------------------
# per-channel alpha


def test_per_channel_alpha_values_and_gradient():
    w = torch.randn(3, 5)
    alpha = torch.tensor([0.5, 1.0, 4.0])
    q = quantized_bits(4, 0, alpha=alpha)
    base = quantized_bits(4, 0)(w)
    # QKeras: q(x) = alpha Q(x); per channel of axis 0 (PyTorch's output channel).
    assert torch.equal(q(w), base * alpha.view(3, 1))
    for c in range(3):
        assert torch.equal(q(w)[c], quantized_bits(4, 0, alpha=float(alpha[c]))(w[c]))
    assert torch.equal(grad_of(q, w), torch.ones_like(w))
    assert torch.equal(q.scale, alpha)
    # Other axis, other input types, spec round trip.
    q1 = quantized_bits(4, 0, alpha=np.array([1.0, 2.0, 0.5, 0.25, 8.0]), scale_axis=1)
    assert torch.equal(q1(w), base * torch.tensor([1.0, 2.0, 0.5, 0.25, 8.0]))
    assert q1.to_string() == "quantized_bits(4,0,0,alpha=[1.0 2.0 0.5 0.25 8.0],scale_axis=[1])"
    assert get_quantizer(q1.to_string()).to_string() == q1.to_string()
    assert get_quantizer(q1.to_json()).to_string() == q1.to_string()
    assert quantized_bits(4, 0, alpha=(2.0,))(w).equal(base * 2)
    # qnoise and stochastic rounding.
    qs = quantized_bits(4, 0, alpha=[0.5, 1.0, 4.0], use_stochastic_rounding=True).train()
    torch.manual_seed(0)
    y = qs(w)
    torch.manual_seed(0)
    assert torch.equal(y, ops.quantized_bits_stochastic(w, torch.rand_like(w), 4, 0, False, True,
                                                        None, 1.0) * alpha.view(3, 1))
    qn = quantized_bits(4, 0, alpha=[0.5, 1.0, 4.0], qnoise_factor=0.5)
    assert torch.allclose(qn(w), w + 0.5 * (q(w) - w))
    scripted = torch.jit.script(q)
    assert torch.equal(scripted(w), q(w))


def test_per_channel_alpha_errors():
    with pytest.raises(ValueError, match=r"`alpha` has 2 values .* 3 channels on axis 0"):
        quantized_bits(4, 0, alpha=[1.0, 2.0])(torch.randn(3, 4))
    with pytest.raises(ValueError, match=r"`alpha`\[1\] must be a finite number > 0"):
        quantized_bits(4, 0, alpha=[1.0, 0.0])
    with pytest.raises(ValueError, match="must be 1-D"):
        quantized_bits(4, 0, alpha=torch.ones(2, 2))
    with pytest.raises(ValueError, match="needs one `scale_axis`"):
        quantized_bits(4, 0, alpha=[1.0, 2.0], scale_axis=[0, 1])
    with pytest.raises(ValueError, match="range"):
        quantized_bits(4, 0, alpha=[1.0, 2.0]).range()


# ------------------------------------------------------------------------------------------------
# elements_per_scale, min/max_po2_exponent


def np_auto_po2_grouped(x, bits, integer, group, lo, hi):
    # QKeras quantized_bits.__call__ ("auto_po2") with _get_scale_mean's elements_per_scale on the
    # channel axis 0 (PyTorch layout) and _clip_po2_scale.
    m_i = 2.0 ** integer
    levels = (2 ** (bits - 1) - 1) * 2
    m = 2.0 ** (bits - 1)
    xs = x / m_i
    red = tuple(range(1, x.ndim))
    s = np.abs(xs).max(axis=red, keepdims=True) * 2 / levels
    s = np.exp2(np.round(np.log(s + 1e-7) / np.log(2.0)))

    def codes(s):
        v = np.floor(np.abs(xs) / s + 0.5)
        return np.sign(xs) * np.minimum(v, levels / 2)

    def group_mean(v):
        c = v.shape[0]
        g = v.reshape(c // group, group, -1).mean(axis=(1, 2))
        return np.repeat(g, group).reshape((c,) + (1,) * (x.ndim - 1))

    for _ in range(5):
        z = codes(s)
        s = group_mean(xs * z) / (group_mean(z * z) + 1e-7)
        s = np.exp2(np.round(np.log(s + 1e-7) / np.log(2.0)))
        if lo is not None or hi is not None:
            s = np.clip(s, None if lo is None else 2.0 ** lo, None if hi is None else 2.0 ** hi)
    z = codes(s)
    return s * m * (m_i * z / m), s * m


@pytest.mark.parametrize("group,lo,hi", [(2, None, None), (1, -3, None), (4, None, -1), (2, -2, 0)])
def test_grouped_auto_po2_matches_qkeras_transcription(group, lo, hi):
    torch.manual_seed(7)
    x = torch.randn(8, 3, 5, dtype=torch.float64) * torch.logspace(-2, 1, 8, dtype=torch.float64).view(8, 1, 1)
    q = quantized_bits(5, 1, alpha="auto_po2", elements_per_scale=group, min_po2_exponent=lo,
                       max_po2_exponent=hi)
    y = q(x)
    ref, scale = np_auto_po2_grouped(x.numpy(), 5, 1, group, lo, hi)
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-12, atol=0)
    np.testing.assert_allclose(q.scale.numpy(), scale, rtol=1e-12)
    assert torch.equal(grad_of(q, x), torch.ones_like(x))
    assert get_quantizer(q.to_string()).to_string() == q.to_string()
    torch.jit.script(q)


def test_grouped_auto_po2_equals_plain_without_options_and_errors():
    x = torch.randn(6, 7)
    plain = quantized_bits(4, 0, alpha="auto_po2")
    grouped = quantized_bits(4, 0, alpha="auto_po2", elements_per_scale=1)
    assert torch.equal(grouped(x), plain(x))
    with pytest.raises(ValueError, match="not divisible by elements_per_scale 4"):
        quantized_bits(4, 0, alpha="auto_po2", elements_per_scale=4)(x)
    with pytest.raises(ValueError, match="apply to alpha 'auto_po2' only|applies to alpha 'auto_po2' only"):
        quantized_bits(4, 0, alpha="auto", min_po2_exponent=-2)
    with pytest.raises(ValueError, match="must not exceed"):
        quantized_bits(4, 0, alpha="auto_po2", min_po2_exponent=1, max_po2_exponent=0)
    # Clipping bounds the scale: with max_po2_exponent=-4 every scale is at most 2^-4 * m.
    q = quantized_bits(4, 0, alpha="auto_po2", max_po2_exponent=-4)
    q(x * 10)
    assert bool((q.scale <= 2.0 ** -4 * 8).all())


@pytest.mark.parametrize("alpha,group,lo,hi", [("auto", 2, None, None), ("auto_po2", 4, -2, None),
                                               ("auto_po2", 1, None, -1)])
def test_binary_grouped_scales_match_qkeras_transcription(alpha, group, lo, hi):
    torch.manual_seed(9)
    x = torch.randn(8, 10, dtype=torch.float64) * torch.logspace(-2, 1, 8, dtype=torch.float64).view(8, 1)
    q = binary(alpha=alpha, elements_per_scale=group, min_po2_exponent=lo, max_po2_exponent=hi)
    y = q(x)
    k = np.where(x.numpy() < 0, -1.0, 1.0)
    g = lambda v: np.repeat(v.reshape(8 // group, -1).mean(axis=1), group).reshape(8, 1)  # noqa: E731
    s = g(x.numpy() * k) / (g(k * k) + 1e-7)
    if alpha == "auto_po2":
        s = np.exp2(np.round(np.log(s + 1e-7) / np.log(2.0)))
        if lo is not None or hi is not None:
            s = np.clip(s, None if lo is None else 2.0 ** lo, None if hi is None else 2.0 ** hi)
    np.testing.assert_allclose(q.scale.numpy(), s, rtol=1e-12)
    np.testing.assert_allclose(y.numpy(), s * k, rtol=1e-12)
    assert get_quantizer(q.to_string()).to_string() == q.to_string()
    qs = binary(alpha=alpha, elements_per_scale=group, use_stochastic_rounding=True).train()
    assert qs(x).shape == x.shape and qs.scale.shape == (8, 1)
    torch.jit.script(q)
    with pytest.raises(ValueError, match="applies to alpha 'auto' or 'auto_po2' only"):
        binary(alpha=1.0, elements_per_scale=2)
