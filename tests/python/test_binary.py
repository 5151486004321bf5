# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""binary / ternary: hand-computed values, gradients, and the auto modes against QKeras's code."""
import numpy as np
import pytest
import torch

from heteroq import binary, get_quantizer, ternary

f32 = np.float32
X = [-2.0, -0.3, 0.0, 0.2, 0.5]


@pytest.mark.parametrize("spec,expected", [
    ("binary", [-1, -1, 1, 1, 1]),                       # sign(0) = +1
    ("binary(use_01=1,alpha=0.5)", [0, 0, 0.5, 0.5, 0.5]),
    ("ternary", [-1, 0, 0, 0, 1]),                       # threshold 0.33
    ("ternary(alpha=0.5,threshold=0.25)", [-0.5, -0.5, 0, 0, 0.5]),
])
def test_hand_computed(spec, expected):
    q = get_quantizer(spec)
    assert q(torch.tensor(X)).tolist() == expected
    assert torch.isnan(q(torch.tensor([float("nan")]))).all()


def test_gradients():
    x = torch.tensor([-2.0, 0.1, 1.0], requires_grad=True)
    binary()(x).sum().backward()  # alpha None: QKeras's tanh STE
    assert torch.allclose(x.grad, 1 - torch.tanh(x.detach()) ** 2, rtol=0, atol=0)
    for q in [binary(alpha=0.5), ternary(alpha=1.0), ternary(alpha="auto_po2")]:
        x.grad = None
        q(x.view(1, 3)).sum().backward()
        assert x.grad.tolist() == [1.0, 1.0, 1.0]


def np_lsq(x, q, axis, po2):
    eps = f32(1e-7)
    if x.ndim > 1:
        qx = np.mean(x * q, axis=axis, keepdims=True, dtype=f32)
        qq = np.mean(q * q, axis=axis, keepdims=True, dtype=f32)
    else:
        qx, qq = x * q, q * q
    s = qx / (qq + eps)
    return np.power(f32(2), np.round(np.log(s + eps) / f32(np.log(2.0)))).astype(f32) if po2 else s


def qkeras_binary_auto(x, use_01, po2):
    """QKeras binary.__call__, string alpha (channels on axis 0 here), float32."""
    axis = tuple(range(1, x.ndim))
    k = np.sign(x)
    k = k + (f32(1) - np.abs(k))
    if use_01:
        k = (k + f32(1)) / f32(2)
    s = np_lsq(x, k, axis, po2)
    return (s * k).astype(f32) + f32(0), s


def qkeras_ternary_auto(x, po2, unrolls=5):
    """QKeras ternary.__call__, string alpha (channels on axis 0 here), float32."""
    eps = f32(1e-7)
    axis = tuple(range(1, x.ndim)) if x.ndim > 1 else None
    m = np.max(np.abs(x), axis=axis, keepdims=True)
    s = f32(2) * m / f32(3)
    if po2:
        s = np.power(f32(2), np.round(np.log(s + eps) / f32(np.log(2.0)))).astype(f32)
    q = np.zeros_like(x)
    for _ in range(unrolls):
        with np.errstate(divide="ignore", invalid="ignore"):
            v = s * np.round(x / s)
        q = (np.abs(v) >= s / f32(2)).astype(f32) * np.sign(x)
        s = np_lsq(x, q, axis if axis is not None else (0,), po2)
    return (s * q).astype(f32) + f32(0), s


@pytest.mark.parametrize("po2", [True, False])
@pytest.mark.parametrize("shape", [(8, 5), (4, 3, 3), (16,)])
def test_auto_modes_match_qkeras(po2, shape):
    # auto_po2: bit for bit. auto: the scale is a float32 mean, whose last bit depends on the
    # summation order (NumPy's pairwise sum here, ATen's reduction there, TF's in QKeras).
    check = (np.testing.assert_array_equal if po2 else
             lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=0))
    rng = np.random.default_rng(3)
    for _ in range(20):
        x = (rng.standard_normal(shape) * rng.choice([0.05, 1.0, 4.0])).astype(f32)
        for use_01 in [False, True]:
            want, want_s = qkeras_binary_auto(x, use_01, po2)
            q = binary(use_01, "auto_po2" if po2 else "auto")
            out = q(torch.from_numpy(x))
            check(out.numpy(), want)
            check(q.scale.numpy(), want_s)
        want, want_s = qkeras_ternary_auto(x, po2)
        q = ternary("auto_po2" if po2 else "auto")
        check(q(torch.from_numpy(x)).numpy(), want)
        check(q.scale.numpy(), want_s)


def test_spec_bounds_and_errors():
    for spec in ["binary", "binary(use_01=1,alpha=0.5)", "binary(alpha='auto',scale_axis=[1])",
                 "ternary(alpha='auto_po2',number_of_unrolls=3)", "ternary(threshold=0.1)"]:
        q = get_quantizer(spec)
        assert get_quantizer(q.to_string()).to_string() == q.to_string()
    assert binary().bits == 1 and ternary().bits == 2
    assert binary(alpha=2.0).max() == 2.0 and binary(use_01=True).min() == 0.0
    assert ternary(alpha="auto").max() == 1.0 and ternary(0.5).min() == -1.0
    for spec, needle in [("ternary(alpha='auto',threshold=0.2)", "`threshold` must be None"),
                         ("ternary(threshold=-1)", "`threshold` must be None or a finite number >= 0"),
                         ("binary(alpha=-1)", "`alpha` must be None, a finite number > 0"),
                         ("binary(scale_axis=1)", "applies to alpha 'auto' or 'auto_po2' only"),
                         ("binary(elements_per_scale=2)", "applies to alpha .auto. or .auto_po2. only"),
                         ("ternary(alpha=1, use_stochastic_rounding=1)", "needs alpha 'auto'")]:
        with pytest.raises(ValueError, match=needle):
            get_quantizer(spec)
