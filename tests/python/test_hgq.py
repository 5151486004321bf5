# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""Learned precision (heteroq.hgq): torch.ops.heteroq.fixed_quantize against an independent
reference in every mode, fused == ATen path, the width gradients against finite differences of
the surrogate (gradcheck), FixedQuantizer, HQuantizer, the H layers and EBOPs, bits shrinking under
an EBOPs penalty and growing without it, conversion to Q layers (bit for bit), from_quantized,
errors, and C++ == Python (tests/cpp/test_hgq.cpp writes its outputs)."""
import copy
import json
import math
import os
import pickle
import subprocess
from fractions import Fraction

import pytest
import torch

import heteroq
from heteroq import hgq

ROUND = ["RND", "RND_CONV", "TRN"]
OVERFLOW = ["SAT", "SAT_SYM", "WRAP"]
LN2 = math.log(2.0)


# ---- an independent reference: exact rationals and Python integers ----

def ref_element(x, k, i, f, rm, om):
    """(y, dy/dx, dy/df, dy/di) of one element, from the definitions."""
    k, i, f = round(k), round(i), round(f)
    b = k + i + f
    if b <= 0:
        return 0.0, 1.0, LN2 * x, 0.0
    v = Fraction(x) * Fraction(2) ** f
    if rm == "RND":
        c = math.floor(v + Fraction(1, 2))
    elif rm == "TRN":
        c = math.floor(v)
    else:
        c = round(v)  # Python rounds Fractions half to even
    scale = Fraction(2) ** -f
    r = float(c * scale)
    if om == "WRAP":
        n, off = 2 ** b, (2 ** (b - 1) if k else 0)
        w = (c + off) % n - off
        return float(w * scale), 1.0, LN2 * (x - r), 0.0
    p = 2 ** (i + f)
    hi, lo = p - 1, (-k * p if om == "SAT" else -k * (p - 1))
    if v > hi:
        return float(hi * scale), 0.0, LN2 * float(scale), LN2 * 2.0 ** i
    if v < lo:
        df = -k * LN2 * float(scale) if om == "SAT_SYM" else 0.0
        return float(lo * scale) + 0.0, 0.0, df + 0.0, -k * LN2 * 2.0 ** i + 0.0
    return r + 0.0, 1.0, LN2 * (x - r), 0.0


def inputs(n=300):
    g = torch.Generator().manual_seed(7)
    a = torch.randn(n, generator=g, dtype=torch.float64) * torch.exp2(
        torch.randint(-4, 6, (n,), generator=g).double())
    ties = (torch.randint(-400, 400, (n,), generator=g).double() + 0.5) / 256
    return torch.cat([a, ties, torch.tensor([0.0, -0.0, 1.0, -1.0, 31.999, -32.0, 1e9, -1e9],
                                            dtype=torch.float64)])


def widths(n):
    g = torch.Generator().manual_seed(11)
    return (torch.randint(0, 2, (n,), generator=g).double(),
            torch.randint(-3, 6, (n,), generator=g).double(),
            torch.randint(-2, 9, (n,), generator=g).double())


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("om", OVERFLOW)
@pytest.mark.parametrize("rm", ROUND)
def test_forward_matches_reference(rm, om, fused):
    x = inputs()
    k, i, f = widths(x.numel())
    with heteroq.ops.fused_kernels(fused):
        y, dx, df, di = torch.ops.heteroq._fixed_quantize_fwd(x, k, i, f, rm, om)
        assert torch.equal(y, torch.ops.heteroq.fixed_quantize(x, k, i, f, rm, om))
    for e in range(x.numel()):
        ry, rdx, rdf, rdi = ref_element(float(x[e]), float(k[e]), float(i[e]), float(f[e]), rm, om)
        assert float(y[e]) == ry, (e, float(x[e]))
        assert not (float(y[e]) == 0 and math.copysign(1, float(y[e])) < 0)
        assert float(dx[e]) == rdx
        assert float(df[e]) == pytest.approx(rdf, rel=1e-12, abs=1e-12)
        assert float(di[e]) == pytest.approx(rdi, rel=1e-12, abs=1e-12)
    # float32 gives the same grid values (every width here fits its mantissa).
    y32 = torch.ops.heteroq.fixed_quantize(x.float(), k, i, f, rm, om)
    assert torch.equal(y32.double(), torch.ops.heteroq.fixed_quantize(x.float().double(), k, i, f,
                                                                      rm, om))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_equals_aten(dtype):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(7, 33, 5, generator=g).to(dtype) * 8
    x[0, 0, 0], x[1, 0, 0] = math.inf, -math.inf
    shape = (7, 33, 5)
    cases = [(torch.randint(0, 2, shape, generator=g), torch.randint(-2, 5, shape, generator=g),
              torch.randint(-2, 10, shape, generator=g)),
             (torch.ones(1), torch.randint(0, 4, (33, 1), generator=g),
              torch.randint(0, 8, (33, 1), generator=g)),
             (torch.zeros(()), torch.tensor(2.0), torch.tensor(3.4))]
    for k, i, f in cases:
        k, i, f = k.to(dtype), i.to(dtype), f.to(dtype)
        for rm in ROUND:
            for om in OVERFLOW:
                xx = x.nan_to_num(posinf=1.0, neginf=-1.0) if om == "WRAP" else x
                with heteroq.ops.fused_kernels(True):
                    a = torch.ops.heteroq._fixed_quantize_fwd(xx, k, i, f, rm, om)
                with heteroq.ops.fused_kernels(False):
                    b = torch.ops.heteroq._fixed_quantize_fwd(xx, k, i, f, rm, om)
                for u, v in zip(a, b):
                    assert torch.equal(u, v), (rm, om)


def test_half_precision_takes_the_aten_path():
    x = torch.randn(50, dtype=torch.float64) * 3
    k, i, f = torch.tensor(1.0), torch.tensor(2.0), torch.tensor(4.0)
    y16 = torch.ops.heteroq.fixed_quantize(x.bfloat16(), k, i, f)
    assert y16.dtype == torch.bfloat16
    ref = torch.ops.heteroq.fixed_quantize(x.bfloat16().double(), k, i, f)
    assert torch.equal(y16.double(), ref)


class _Surrogate(torch.autograd.Function):
    """Forward: the smooth surrogate the width gradients are derived from, around the integer
    widths (i0, f0): x - (x - q0) 2^-(f - f0) inside the range (the rounding error halves per
    fractional bit), the clip bound where clipped. Backward: fixed_quantize's own gradients, so
    gradcheck compares them with finite differences of the surrogate."""

    @staticmethod
    def forward(ctx, i, f, x, k, i0, f0, om):
        with torch.no_grad():
            q0 = torch.ops.heteroq.fixed_quantize(x, k, i0, f0, "RND_CONV", om)
            hi = torch.exp2(i0) - torch.exp2(-f0)
            lo = -k * hi if om == "SAT_SYM" else -k * torch.exp2(i0)
        ctx.save_for_backward(x, k, i0, f0)
        ctx.om = om
        top = torch.exp2(i) - torch.exp2(-f)
        bottom = -k * top if om == "SAT_SYM" else -k * torch.exp2(i)
        inside = x - (x - q0) * torch.exp2(-(f - f0))
        return torch.where(x > hi, top, torch.where(x < lo, bottom, inside))

    @staticmethod
    def backward(ctx, g):
        x, k, i0, f0 = ctx.saved_tensors
        i = i0.clone().requires_grad_()
        f = f0.clone().requires_grad_()
        with torch.enable_grad():
            y = torch.ops.heteroq.fixed_quantize(x, k, i, f, "RND_CONV", ctx.om)
            gi, gf = torch.autograd.grad(y, (i, f), g)
        return gi, gf, None, None, None, None, None


@pytest.mark.parametrize("om", ["SAT", "SAT_SYM"])
def test_width_gradients_match_the_surrogate(om):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(6, 9, generator=g, dtype=torch.float64) * 6
    k = torch.ones(6, 1, dtype=torch.float64)
    i0 = torch.randint(0, 3, (6, 1), generator=g).double()
    f0 = torch.randint(1, 5, (6, 1), generator=g).double()
    i = i0.clone().requires_grad_()
    f = f0.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: _Surrogate.apply(a, b, x, k, i0, f0, om), (i, f),
                                    eps=1e-6, atol=1e-6)


def test_input_gradient_is_straight_through_with_clip_mask():
    x = torch.tensor([-5.0, -0.3, 0.2, 0.9, 3.0], dtype=torch.float64, requires_grad=True)
    y = torch.ops.heteroq.fixed_quantize(x, torch.tensor(1.0), torch.tensor(0.0), torch.tensor(2.0))
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 0.0, 0.0]  # range [-1, 0.75]
    x.grad = None
    torch.ops.heteroq.fixed_quantize(x, torch.tensor(1.0), torch.tensor(0.0), torch.tensor(2.0),
                                     "RND", "WRAP").sum().backward()
    assert x.grad.tolist() == [1.0] * 5


def test_operator_errors():
    x = torch.randn(3, 4)
    one = torch.tensor(1.0)
    with pytest.raises(ValueError, match="round_mode"):
        torch.ops.heteroq.fixed_quantize(x, one, one, one, "ROUND", "SAT")
    with pytest.raises(ValueError, match="overflow_mode"):
        torch.ops.heteroq.fixed_quantize(x, one, one, one, "RND", "CLIP")
    with pytest.raises(ValueError, match="does not broadcast"):
        torch.ops.heteroq.fixed_quantize(x, one, torch.ones(5), one)
    with pytest.raises(ValueError, match="keep_negative"):
        torch.ops.heteroq.fixed_quantize(x, torch.tensor(2.0), one, one)
    with pytest.raises(ValueError, match="frac_bits"):
        torch.ops.heteroq.fixed_quantize(x, one, one, torch.tensor(math.nan))
    with pytest.raises(TypeError):
        torch.ops.heteroq.fixed_quantize(x, one, torch.tensor(1), one)
    with pytest.raises(TypeError):
        torch.ops.heteroq.fixed_quantize(torch.ones(2, dtype=torch.int32), one, one, one)


# ---- FixedQuantizer ----

@pytest.mark.parametrize("keep_negative", [True, False])
def test_fixed_equals_quantized_bits(keep_negative):
    x = torch.cat([inputs(200), torch.tensor([math.inf, -math.inf, math.nan], dtype=torch.float64)])
    for bits in range(2, 13):
        for integer in range(-2, 5):
            fq = heteroq.get_quantizer(
                f"fixed({bits},{integer},keep_negative={int(keep_negative)})")
            qb = heteroq.quantized_bits(bits, integer, keep_negative=keep_negative, alpha=1)
            for dtype in (torch.float64, torch.float32):
                a, b = fq(x.to(dtype)), qb(x.to(dtype))
                assert torch.equal(a.isnan(), b.isnan())
                assert torch.equal(a.nan_to_num(), b.nan_to_num()), (bits, integer)
                assert torch.equal(a.signbit(), b.signbit())


def test_fixed_spec_json_range_bounds():
    q = heteroq.get_quantizer("fixed(6,2)")
    assert isinstance(q, hgq.FixedQuantizer) and q.to_string() == "fixed(6,2)"
    assert q.bits == 6 and float(q.frac_bits) == 3 and float(q.int_bits) == 2
    assert q.max() == 4 - 0.125 and q.min() == -4
    r = q.range()
    assert r.numel() == 64 and float(r[1]) == 0.125 and float(r[32]) == -4
    u = heteroq.get_quantizer(
        "fixed(4, 1, keep_negative=0, round_mode='TRN', overflow_mode='WRAP')")
    assert u.to_string() == "fixed(4,1,keep_negative=0,round_mode='TRN',overflow_mode='WRAP')"
    assert heteroq.get_quantizer(u.to_json()).to_string() == u.to_string()
    assert u.get_config() == {"bits": 4, "integer": 1, "keep_negative": False,
                              "round_mode": "TRN", "overflow_mode": "WRAP"}
    assert hgq.FixedQuantizer(**u.get_config()).to_string() == u.to_string()
    with pytest.raises(ValueError, match="round_mode"):
        heteroq.get_quantizer("fixed(4,1,round_mode='ROUND')")
    with pytest.raises(ValueError, match="bits"):
        hgq.FixedQuantizer(100, 1)
    with pytest.raises(ValueError):
        heteroq.get_quantizer("fixed(4,1,bogus=1)")


def test_fixed_per_element_widths():
    k = torch.ones(3, 1)
    i = torch.tensor([[0.0], [1.0], [2.0]])
    f = torch.tensor([[2.0, 3.0, 0.0, -1.0], [1.0] * 4, [4.0] * 4])
    q = hgq.FixedQuantizer.from_widths(k, i, f)
    assert not q.is_uniform and q.bits == 7
    assert torch.equal(q.bit_widths(), torch.tensor([[3.0, 4.0, 1.0, 0.0], [3.0] * 4, [7.0] * 4]))
    assert q.max() == 4 - 1 / 16 and q.min() == -4
    with pytest.raises(ValueError, match="saved with the weights"):
        q.to_string()
    with pytest.raises(ValueError, match="saved with the weights"):
        q.to_json()
    x = torch.randn(3, 4) * 3
    assert torch.equal(q(x), torch.ops.heteroq.fixed_quantize(x, k, i, f))
    # Widths travel in state_dict and survive deepcopy/pickle.
    q2 = hgq.FixedQuantizer.from_widths(torch.zeros(3, 1), torch.zeros(3, 1), torch.zeros(3, 4))
    q2.load_state_dict(q.state_dict())
    assert torch.equal(q2(x), q(x)) and q2.bits == 7
    assert torch.equal(copy.deepcopy(q)(x), q(x))
    assert torch.equal(pickle.loads(pickle.dumps(q))(x), q(x))
    assert "widths of shape (3, 4)" in repr(q)
    with pytest.raises(ValueError, match="broadcast"):
        hgq.FixedQuantizer.from_widths(k, torch.ones(2), f)
    with pytest.raises(ValueError, match="keep_negative"):
        hgq.FixedQuantizer.from_widths(torch.tensor(3.0), i, f)
    with pytest.raises(TypeError):
        hgq.FixedQuantizer.from_widths(k, torch.ones(3, 1, dtype=torch.int64), f)


def test_fixed_in_q_layers():
    layer = heteroq.nn.QDense(4, 3, kernel_quantizer="fixed(5,1)", bias_quantizer="fixed(8,3)")
    ref = heteroq.nn.QDense(4, 3, kernel_quantizer="quantized_bits(5,1,alpha=1)",
                            bias_quantizer="quantized_bits(8,3,alpha=1)")
    ref.load_state_dict(layer.state_dict())
    x = torch.randn(6, 4)
    assert torch.equal(layer(x), ref(x))


# ---- HQuantizer and the layers ----

def test_hquantizer_tracks_ranges_and_widths():
    q = hgq.HQuantizer((4,), init_bits=3)
    x = torch.tensor([[0.5, -3.0, 0.0, 9.0], [0.25, 1.0, 0.0, -2.0]])
    q(x)
    assert q.max_abs.tolist() == [0.5, 3.0, 0.0, 9.0]
    # i = floor(log2 m) + 1; m = 0 gives width 0; keep_negative where the minimum is < 0.
    assert q.keep_negative.tolist() == [0.0, 1.0, 0.0, 1.0]
    assert q.int_bits.tolist() == [0.0, 2.0, -3.0, 4.0]
    assert q.bit_widths().tolist() == [3.0, 6.0, 0.0, 8.0]
    q.eval()
    q(x * 100)  # frozen in eval mode
    assert q.max_abs.tolist() == [0.5, 3.0, 0.0, 9.0]
    bw = q.bit_widths().sum()
    bw.backward()
    assert q.frac_bits.grad.tolist() == [1.0, 1.0, 0.0, 1.0]
    fq = q.to_fixed()
    assert torch.equal(fq(x), q(x))
    with pytest.raises(ValueError, match="granularity"):
        hgq.HQuantizer((4,), granularity="row")
    with pytest.raises(ValueError, match="channel_axis"):
        hgq.HQuantizer((4,), granularity="channel", channel_axis=3)


def test_trainable_integer_bits_get_the_clip_gradient():
    q = hgq.HQuantizer((3,), trainable_integer=True, init_integer=0, init_bits=2,
                       keep_negative=True)
    x = torch.tensor([[5.0, 0.3, -7.0]])
    y = q(x)
    assert y.tolist() == [[0.75, 0.25, -1.0]]  # range [-1, 0.75]
    y.sum().backward()
    ln2 = math.log(2.0)
    assert q.int_bits.grad.tolist() == pytest.approx([ln2, 0.0, -ln2])
    assert q.frac_bits.grad.tolist() == pytest.approx([ln2 / 4, ln2 * 0.05, 0.0])
    assert float(q.int_bits.detach().sum()) == 0  # not overwritten by ranges


def test_conv1d_converts_and_starts_from_quantized():
    torch.manual_seed(4)
    model = torch.nn.Sequential(hgq.HConv1d(3, 4, 3, padding=1, stride=2, kernel_init_bits=3),
                                hgq.HActivation((4, 1), granularity="channel", init_bits=4))
    x = torch.randn(5, 3, 11)
    model(x)
    model.eval()
    q = hgq.convert(model)
    assert [type(m).__name__ for m in q] == ["QActivation", "QConv1d", "QActivation"]
    assert torch.equal(q(x), model(x))
    h = hgq.from_quantized(torch.nn.Sequential(heteroq.nn.QConv1d(
        3, 4, 3, kernel_quantizer="quantized_bits(5,1,alpha=1)")))
    assert isinstance(h[0], hgq.HConv1d) and torch.all(h[0].kernel_quantizer.frac_bits == 3)


def test_value_widths_are_exact_spans():
    q = hgq.HQuantizer((6,), is_weight=True, init_bits=4)
    vals = torch.tensor([0.75, 0.625, 0.5, -4.0, 0.0, 3.0])
    bw = q.value_widths(vals)
    assert bw.tolist() == [2.0, 3.0, 1.0, 1.0, 0.0, 2.0]
    bw.sum().backward()
    assert q.frac_bits.grad.tolist() == [1.0, 1.0, 1.0, 1.0, 0.0, 1.0]


def test_dense_ebops_definition():
    torch.manual_seed(1)
    layer = hgq.HDense(5, 3, input_granularity="tensor", input_init_bits=3)
    x = torch.randn(16, 5)
    layer(x)
    e = layer.ebops()
    qw = layer.kernel_quantizer.quantize(layer.weight)
    qb = layer.bias_quantizer.quantize(layer.bias)
    bx = float(layer.input_quantizer.bit_widths())
    span = hgq.HQuantizer((1,), is_weight=True).value_widths
    expect = bx * float(span(qw.reshape(-1, 1)).sum()) + float(span(qb.reshape(-1, 1)).mean()) * 3
    assert float(e) == pytest.approx(expect)
    e.backward()
    assert layer.kernel_quantizer.frac_bits.grad.abs().sum() > 0
    assert layer.input_quantizer.frac_bits.grad.abs().sum() > 0


def test_conv_ebops_is_a_convolution_of_width_maps():
    torch.manual_seed(2)
    conv = hgq.HConv2d(2, 3, 3, input_granularity="tensor", input_init_bits=4)
    conv(torch.randn(1, 2, 6, 6))
    qw = conv.kernel_quantizer.quantize(conv.weight)
    spans = conv.kernel_quantizer.value_widths(qw).detach()
    bx = float(conv.input_quantizer.bit_widths())
    qb = conv.bias_quantizer.quantize(conv.bias)
    bias = float(conv.bias_quantizer.value_widths(qb).mean()) * 3 * 16
    # No padding: every weight is used at each of the 4 x 4 output positions.
    assert float(conv.ebops()) == pytest.approx(bx * float(spans.sum()) * 16 + bias)


def _toy(beta, steps=60):
    torch.manual_seed(0)
    teacher = torch.randn(1, 8)
    model = hgq.HDense(8, 1, bias=False, input_init_bits=2, kernel_init_bits=2)
    with torch.no_grad():
        model.weight.copy_(teacher)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    x = torch.randn(256, 8)
    t = x @ teacher.T
    f0 = model.input_quantizer.frac_bits.detach().mean().item()
    for _ in range(steps):
        opt.zero_grad()
        loss = (model(x) - t).square().mean() + beta * model.ebops()
        loss.backward()
        opt.step()
    return f0, model.input_quantizer.frac_bits.detach().mean().item(), \
        model.kernel_quantizer.frac_bits.detach().mean().item()


def test_bits_grow_without_penalty_and_shrink_with_it():
    f0, fin_free, _ = _toy(0.0)
    _, fin_pen, fk_pen = _toy(1e-2)
    assert fin_free > f0 + 0.5
    assert fin_pen < f0 - 0.5 and fk_pen < 2.0 - 0.5


def _hmodel():
    torch.manual_seed(3)
    return torch.nn.Sequential(
        hgq.HConv2d(2, 4, 3, padding=1, input_init_bits=5),
        hgq.HActivation((4, 6, 6), relu=True, init_bits=3),
        torch.nn.Flatten(),
        hgq.HDense(4 * 36, 5, input_granularity="element", kernel_init_bits=3),
    )


def test_convert_is_bit_exact():
    model = _hmodel()
    x = torch.randn(8, 2, 6, 6) * 2
    model(x)  # track ranges
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)  # weights move after the last forward: conversion uses the current ones
    model.eval()
    q = hgq.convert(model)
    kinds = [type(m).__name__ for m in q]
    assert kinds == ["QActivation", "QConv2d", "QActivation", "Flatten", "QActivation", "QLinear"]
    x2 = torch.randn(8, 2, 6, 6) * 2
    assert torch.equal(model(x2), q.eval()(x2))
    assert isinstance(q[5].kernel_quantizer, hgq.FixedQuantizer)
    assert not q[5].kernel_quantizer.is_uniform
    # The model is unchanged; a non-Sequential parent gets a Sequential in place of the layer.
    wrapper = torch.nn.Module()
    wrapper.layer = hgq.HDense(3, 2)
    wrapper.layer(torch.randn(4, 3))
    w2 = hgq.convert(wrapper.eval())
    assert isinstance(w2.layer, torch.nn.Sequential) and isinstance(wrapper.layer, hgq.HDense)


def test_total_ebops_and_relation_to_cost_model():
    model = _hmodel()
    model(torch.randn(4, 2, 6, 6))
    total = hgq.total_ebops(model)
    assert float(total) == pytest.approx(float(model[0].ebops() + model[3].ebops()))
    assert float(model[1].ebops()) == 0


def test_ebops_agree_with_the_cost_model_after_conversion():
    torch.manual_seed(0)
    # Per-element input widths of dense layers, per-tensor ones of an unpadded convolution.
    dense = torch.nn.Sequential(
        hgq.HDense(6, 4, kernel_init_bits=3), hgq.HActivation((4,), relu=True, init_bits=2),
        hgq.HDense(4, 3, kernel_init_bits=2))
    conv = torch.nn.Sequential(hgq.HConv2d(2, 3, 3, input_granularity="tensor",
                                           input_init_bits=3))
    for model, shape in ((dense, (1, 6)), (conv, (1, 2, 6, 6))):
        model(torch.randn(32, *shape[1:]))
        model.eval()
        report = heteroq.cost.bops(hgq.convert(model), shape)
        assert report.ebops == float(hgq.total_ebops(model)) > 0


def test_from_quantized_starts_from_the_widths():
    qm = torch.nn.Sequential(
        heteroq.nn.QDense(4, 8, kernel_quantizer="quantized_bits(6,0,alpha=1)",
                          bias_quantizer="quantized_bits(8,3,alpha=1)"),
        heteroq.nn.QActivation("quantized_relu(5,2)"),
        heteroq.nn.QDense(8, 2, kernel_quantizer="quantized_bits(4,1,alpha=1)"))
    h = hgq.from_quantized(qm, default_input_bits=7)
    assert [type(m).__name__ for m in h] == ["HDense", "HActivation", "HDense"]
    assert torch.all(h[0].kernel_quantizer.frac_bits == 5)
    assert torch.all(h[0].bias_quantizer.frac_bits == 4)
    assert torch.all(h[0].input_quantizer.frac_bits == 7)
    assert float(h[1].quantizer.frac_bits) == 3 and h[1].relu
    assert torch.all(h[2].input_quantizer.frac_bits == 3)
    assert torch.all(h[2].kernel_quantizer.frac_bits == 2)
    assert torch.equal(h[0].weight, qm[0].weight)
    # Same kernel values at the start (integer bits from the weights cover the same range).
    assert torch.equal(h[0].kernel_quantizer(h[0].weight), qm[0].quantized_weight())
    with pytest.raises(ValueError, match="layer 0 kernel"):
        hgq.from_quantized(torch.nn.Sequential(
            heteroq.nn.QDense(4, 2, kernel_quantizer="quantized_bits(4,0,alpha='auto_po2')")))
    with pytest.raises(TypeError):
        hgq.from_quantized(qm[0])


def test_from_quantized_depthwise_separable_and_folded():
    torch.manual_seed(5)
    qn = heteroq.nn
    qm = torch.nn.Sequential(
        qn.QConv2dBatchNorm(2, 4, 3, padding=1, kernel_quantizer="quantized_bits(6,1,alpha=1)",
                            bias_quantizer="quantized_bits(8,3,alpha=1)"),
        qn.QActivation("quantized_relu(6,2)"),
        qn.QDepthwiseConv2d(4, 3, depth_multiplier=2, stride=2, padding=1,
                            depthwise_quantizer="quantized_bits(5,0,alpha=1)",
                            bias_quantizer="quantized_bits(8,3,alpha=1)"),
        qn.QActivation("quantized_relu(5,2)"),
        qn.QSeparableConv2d(8, 3, 3, depthwise_quantizer="quantized_bits(4,0,alpha=1)",
                            pointwise_quantizer="quantized_bits(6,0,alpha=1)",
                            bias_quantizer="quantized_bits(8,3,alpha=1)"),
        torch.nn.Flatten(),
        qn.QLinearBatchNorm(3 * 4 * 4, 5, kernel_quantizer="quantized_bits(6,0,alpha=1)"))
    x = torch.randn(64, 2, 12, 12)
    for _ in range(3):  # batch statistics away from their initial values
        qm(x)
    qm.eval()
    h = hgq.from_quantized(qm, default_input_bits=7)
    assert [type(m).__name__ for m in h] == ["HConv2d", "HActivation", "HConv2d", "HActivation",
                                             "HConv2d", "HConv2d", "Flatten", "HDense"]
    # folded batch norm: the folded kernel and bias, at the quantizers' widths
    w, b = qm[0].get_folded_weights()
    assert torch.equal(h[0].weight, w) and torch.equal(h[0].bias, b)
    assert torch.equal(h[0].kernel_quantizer(h[0].weight), qm[0].kernel_quantizer(w))
    assert torch.all(h[0].kernel_quantizer.frac_bits == 4)
    assert torch.all(h[0].bias_quantizer.frac_bits == 4)
    assert torch.all(h[0].input_quantizer.frac_bits == 7)
    w7, b7 = qm[6].get_folded_weights()
    assert torch.equal(h[7].weight, w7) and torch.equal(h[7].bias, b7)
    assert torch.all(h[7].bias_quantizer.frac_bits == 7)  # no bias quantizer: the default
    # depthwise: a grouped convolution with the same kernel
    assert (h[2].groups, h[2].in_channels, h[2].out_channels) == (4, 4, 8)
    assert torch.equal(h[2].weight, qm[2].weight)
    assert torch.all(h[2].input_quantizer.frac_bits == 4)
    assert torch.all(h[2].kernel_quantizer.frac_bits == 4)
    # separable: depthwise (input from the activation before) then pointwise (input: the default)
    assert (h[4].groups, h[4].bias) == (8, None) and h[5].kernel_size == (1, 1)
    assert torch.all(h[4].input_quantizer.frac_bits == 3)
    assert torch.all(h[4].kernel_quantizer.frac_bits == 3)
    assert torch.all(h[5].input_quantizer.frac_bits == 7)
    assert torch.all(h[5].kernel_quantizer.frac_bits == 5)
    assert torch.equal(h[5].weight, qm[4].pointwise.weight)
    # the H model converts bit for bit, its EBOPs are the cost model's (zero padding costing
    # nothing in both), and the integer engine computes the converted model exactly
    h.train()
    h(x)
    h.eval()
    q = hgq.convert(h).eval()
    with torch.no_grad():
        assert torch.equal(q(x), h(x))
    assert heteroq.cost.bops(q, [1, 2, 12, 12]).ebops == float(hgq.total_ebops(h))
    engine = heteroq.deploy.compile(q, input_shape=(2, 12, 12))
    with torch.no_grad():
        assert torch.equal(torch.as_tensor(engine(x)), q(x))
    with pytest.raises(ValueError, match="layer 0 has padding='same'"):
        hgq.from_quantized(torch.nn.Sequential(
            qn.QConv2d(2, 2, 3, padding="same", kernel_quantizer="quantized_bits(4,0,alpha=1)")))


def test_layer_errors():
    with pytest.raises(ValueError, match="input_shape"):
        hgq.HConv2d(2, 3, 3, input_granularity="element")
    with pytest.raises(ValueError, match="WRAP"):
        hgq.HActivation((4,), relu=True, overflow_mode="WRAP")
    with pytest.raises(ValueError, match="last dimension"):
        hgq.HDense(4, 2)(torch.randn(3, 5))
    with pytest.raises(ValueError, match="first forward"):
        hgq.HConv1d(2, 2, 3).ebops()
    with pytest.raises(ValueError, match="does not match"):
        hgq.HActivation((4,))(torch.randn(3, 5))


# ---- C++ == Python ----

def _cross_models():
    dense = hgq.HDense(6, 4, input_init_bits=3, kernel_init_bits=4, bias_init_bits=5)
    conv = hgq.HConv2d(2, 3, 3, padding=1, input_init_bits=4, kernel_init_bits=3)
    with torch.no_grad():
        dense.weight.copy_(torch.sin(torch.arange(24.0) * 1.3).reshape(4, 6))
        dense.bias.copy_(torch.cos(torch.arange(4.0)))
        dense.kernel_quantizer.frac_bits.copy_((torch.arange(24.0) % 5).reshape(4, 6))
        conv.weight.copy_(torch.sin(torch.arange(54.0) * 0.9).reshape(3, 2, 3, 3))
        conv.bias.copy_(torch.cos(torch.arange(3.0)) * 0.5)
    xd = torch.sin(torch.arange(30.0) * 0.7).reshape(5, 6) * 3
    xc = torch.sin(torch.arange(100.0) * 0.3).reshape(2, 2, 5, 5) * 2
    return dense, conv, xd, xc


def _cross_transposed():
    ct = hgq.HConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1, groups=2,
                              dilation=2, input_init_bits=3, kernel_init_bits=4)
    with torch.no_grad():
        ct.weight.copy_(torch.sin(torch.arange(36.0) * 0.8).reshape(4, 1, 3, 3))
        ct.bias.copy_(torch.cos(torch.arange(2.0)) * 0.5)
    xt = torch.sin(torch.arange(128.0) * 0.4).reshape(2, 4, 4, 4) * 2
    return ct, xt


def test_cpp_and_python_agree(build_dir, tmp_path):
    exe = build_dir / "tests" / "cpp" / "heteroq_tests"
    if not exe.exists():
        pytest.fail(f"{exe} is missing: build the target heteroq_tests")
    path = tmp_path / "hgq.json"
    subprocess.run([str(exe), "--gtest_filter=HgqCrossLanguage.*"], check=True,
                   capture_output=True, env={**os.environ, "HETEROQ_HGQ_JSON": str(path)})
    cpp = json.loads(path.read_text())
    dense, conv, xd, xc = _cross_models()
    dense(xd)
    conv(xc)
    dense.eval()
    conv.eval()
    yd, yc = dense(xd * 1.1), conv(xc * 1.1)
    assert yd.reshape(-1).tolist() == cpp["dense_y"]
    assert yc.reshape(-1).tolist() == cpp["conv_y"]
    assert float(dense.ebops()) == cpp["dense_ebops"]
    assert float(conv.ebops()) == cpp["conv_ebops"]
    ct, xt = _cross_transposed()
    ct(xt)
    ct.eval()
    assert ct(xt * 1.1).reshape(-1).tolist() == cpp["transposed_y"]
    assert float(ct.ebops()) == cpp["transposed_ebops"]
    # an empty batch runs (the output count comes from the shape)
    assert ct(torch.empty(0, 4, 4, 4)).shape == (0, 2, 10, 10)


def test_cost_model_prices_converted_conv_with_differing_channel_widths():
    """heteroq.cost.bops of a converted HConv2d whose per-channel input widths differ (the channel
    index of each weight is an integer division; it once gave float indices)."""
    torch.manual_seed(1)
    m = torch.nn.Sequential(hgq.HConv2d(2, 3, 3, input_init_bits=3))
    m.train()
    m(torch.randn(32, 2, 6, 6))
    m.eval()
    c = hgq.convert(m)
    widths = c[0].quantizer.bit_widths().flatten()
    assert len(set(widths.tolist())) > 1  # the two channels differ
    ebops = heteroq.cost.bops(c, (1, 2, 6, 6)).ebops
    assert ebops > 0


def test_conv_transpose_ebops_conversion_cost_model_and_engine():
    torch.manual_seed(7)
    ct = hgq.HConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1, groups=1,
                              input_init_bits=4, kernel_init_bits=4, bias_init_bits=5)
    x = torch.randn(16, 3, 5, 5)
    y = ct(x)
    assert y.shape == (16, 4, 10, 10)
    # the forward is PyTorch's transposed convolution of the quantized operands
    ref = torch.nn.functional.conv_transpose2d(
        ct.input_quantizer(x), ct.kernel_quantizer(ct.weight), ct.bias_quantizer(ct.bias), 2, 1, 1)
    assert torch.equal(y, ref)
    # EBOPs: every input value times every kernel value of its channel (25 positions), by a loop
    spans = ct.kernel_quantizer.value_widths(ct.kernel_quantizer.quantize(ct.weight)).detach()
    bx = ct.input_quantizer.bit_widths().detach().reshape(-1)  # per channel
    want = sum(float(bx[c]) * 25 * float(spans[c].sum()) for c in range(3))
    qb = ct.bias_quantizer.quantize(ct.bias)
    want += float(ct.bias_quantizer.value_widths(qb).mean()) * 4 * 100
    e = ct.ebops()
    assert float(e) == pytest.approx(want)
    e.backward()
    assert ct.kernel_quantizer.frac_bits.grad is not None
    assert ct.input_quantizer.frac_bits.grad.abs().sum() > 0
    # from a Q model: the widths start from its quantizers, the weights are copied
    qn = heteroq.nn
    qm = torch.nn.Sequential(
        qn.QActivation("quantized_bits(8,3,alpha=1)"),
        qn.QConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1,
                            kernel_quantizer="quantized_bits(6,1,alpha=1)",
                            bias_quantizer="quantized_bits(8,3,alpha=1)"),
        qn.QActivation("quantized_relu(6,2)"),
        qn.QConvTranspose2d(4, 2, 2, stride=2, groups=2, bias=False,
                            kernel_quantizer="quantized_bits(5,0,alpha=1)")).eval()
    h = hgq.from_quantized(qm)
    assert [type(m).__name__ for m in h] == ["HActivation", "HConvTranspose2d", "HActivation",
                                             "HConvTranspose2d"]
    assert torch.equal(h[1].weight, qm[1].weight) and torch.equal(h[1].bias, qm[1].bias)
    assert torch.all(h[1].kernel_quantizer.frac_bits == 4)
    assert torch.all(h[1].input_quantizer.frac_bits == 4)
    assert torch.all(h[3].input_quantizer.frac_bits == 4) and h[3].bias is None
    assert torch.equal(h[1].kernel_quantizer(h[1].weight), qm[1].kernel_quantizer(qm[1].weight))
    # train the widths a little, convert: bit-exact, EBOPs equal to the cost model's, engine exact
    opt = torch.optim.Adam(h.parameters(), lr=0.05)
    for _ in range(5):
        opt.zero_grad()
        (h(x).square().mean() + 1e-6 * hgq.total_ebops(h)).backward()
        opt.step()
    h(x)
    h.eval()
    q = hgq.convert(h).eval()
    assert [type(m).__name__ for m in q] == ["QActivation", "QActivation", "QConvTranspose2d",
                                             "QActivation", "QActivation", "QConvTranspose2d"]
    with torch.no_grad():
        assert torch.equal(q(x), h(x))
    assert heteroq.cost.bops(q, [1, 3, 5, 5]).ebops == pytest.approx(float(hgq.total_ebops(h)),
                                                                     rel=1e-12)
    engine = heteroq.deploy.compile(q, input_shape=(3, 5, 5))
    with torch.no_grad():
        assert torch.equal(torch.as_tensor(engine(x)), q(x))
    with pytest.raises(ValueError, match="output_padding"):
        hgq.HConvTranspose2d(2, 2, 3, stride=1, output_padding=1)
    with pytest.raises(ValueError, match="stride"):
        hgq.HConvTranspose2d(2, 2, 3, stride=0)
