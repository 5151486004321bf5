# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""quantized_po2 / quantized_relu_po2: hand-computed values, a NumPy reference, gradients, errors."""
import math

import numpy as np
import pytest
import torch

import heteroq
from heteroq import get_quantizer, quantized_po2, quantized_relu_po2

X = [0.0, 1e-9, 0.3, -0.3, 0.7, 1.0, 1.4142, 1.4143, 3.0, -5.0, 100.0, float("inf"), -0.0]


@pytest.mark.parametrize("spec,expected", [
    # bits 4, no max_value: need = 1, exponents [-4, 3]; round(log2 0.3 = -1.74) = -2;
    # 1.4142 < sqrt(2) < 1.4143; 0 and 1e-9 give +2^-4.
    ("quantized_po2(4)", [0.0625, 0.0625, 0.25, -0.25, 0.5, 1, 1, 2, 4, -4, 8, 8, 0.0625]),
    # max_value 2 caps |x| before the log.
    ("quantized_po2(4,2)", [0.0625, 0.0625, 0.25, -0.25, 0.5, 1, 1, 2, 2, -2, 2, 2, 0.0625]),
    # quadratic: round(log2 sqrt|x|) * 2, max_exp made even (2).
    ("quantized_po2(4,quadratic_approximation=1)",
     [0.0625, 0.0625, 0.25, -0.25, 1, 1, 1, 1, 4, -4, 16, 16, 0.0625]),
    ("quantized_po2(4,log2_rounding='floor')",
     [0.0625, 0.0625, 0.25, -0.25, 0.5, 1, 1, 1, 2, -4, 8, 8, 0.0625]),
    # relu_po2 bits 4: no sign bit, exponents [-8, 7]; x <= 0 gives 2^-8 without a slope.
    ("quantized_relu_po2(4)", [2**-8, 2**-8, 0.25, 2**-8, 0.5, 1, 1, 2, 4, 2**-8, 128, 128, 2**-8]),
    # slope 1/2: -0.3 -> -2^round(log2 0.15) = -1/8; -5 -> -2^round(log2 2.5) = -2.
    ("quantized_relu_po2(4,None,0.5)",
     [2**-8, 2**-8, 0.25, -0.125, 0.5, 1, 1, 2, 4, -2, 128, 128, 2**-8]),
])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_hand_computed(spec, expected, dtype):
    out = get_quantizer(spec)(torch.tensor(X, dtype=dtype))
    assert out.tolist() == expected
    assert torch.isnan(get_quantizer(spec)(torch.tensor([float("nan")], dtype=dtype))).all()


def reference_po2(x, bits, max_value=None, quadratic=False, floor=False, relu=False, slope=0.0):
    """QKeras's _clip_power_of_two / quantized_(relu_)po2 in float64 NumPy (log2 in float64)."""
    need = 1 if max_value is None or max_value > 1 else 0
    eff = bits - need if relu else bits - 1 - need
    min_exp, max_exp = -2 ** eff, 2 ** eff - 1
    if quadratic:
        max_exp = 2 * (max_exp // 2)

    def expo(a):
        f = np.where(a < 1e-7, 1e-7, a)
        if max_value is not None:
            f = np.where(f >= max_value, max_value, f)
        if quadratic:
            f = np.sqrt(f)
        lg = np.log2(f)
        e = np.floor(lg) if floor else np.round(lg)
        e = np.clip(e, min_exp, max_exp) * (2 if quadratic else 1)
        return np.where(a < 1e-7, min_exp, e)

    if not relu:
        return np.where(x < 0, -1.0, 1.0) * np.exp2(expo(np.abs(x)))
    pos = np.exp2(expo(np.maximum(x, 0)))
    neg = -np.exp2(expo(np.maximum(-x, 0) * slope))
    return np.where((x >= 0) | (slope == 0), pos, neg)


@pytest.mark.parametrize("kwargs", [dict(bits=4), dict(bits=5, max_value=0.75), dict(bits=6, max_value=8.0),
                                    dict(bits=4, quadratic=True), dict(bits=5, floor=True),
                                    dict(bits=4, relu=True), dict(bits=5, relu=True, slope=0.25),
                                    dict(bits=3, relu=True, max_value=4.0, quadratic=True)])
def test_matches_numpy_reference(kwargs):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(50000) * np.exp(rng.uniform(-6, 6, 50000))).astype(np.float64)
    kw = dict(kwargs)
    relu = kw.pop("relu", False)
    slope = kw.pop("slope", 0.0)
    q = (quantized_relu_po2 if relu else quantized_po2)(
        kw["bits"], kw.get("max_value"), *([slope] if relu else []),
        quadratic_approximation=kw.get("quadratic", False),
        log2_rounding="floor" if kw.get("floor") else "rnd")
    want = reference_po2(x, relu=relu, slope=slope, **kw)
    np.testing.assert_array_equal(q(torch.from_numpy(x)).numpy(), want)


def test_gradients_and_qnoise():
    x = torch.tensor([-2.0, -0.5, 0.0, 0.5, 3.0], requires_grad=True)
    quantized_po2(4)(x).sum().backward()
    assert x.grad.tolist() == [1, 1, 1, 1, 1]
    x.grad = None
    quantized_relu_po2(4, 2.0, 0.25)(x).sum().backward()
    assert x.grad.tolist() == [0.25, 0.25, 0.25, 1, 0]  # slope for x <= 0, 0 above max_value
    x.grad = None
    quantized_relu_po2(4)(x).sum().backward()
    assert x.grad.tolist() == [0, 0, 0, 1, 1]
    y = torch.tensor([0.3, -3.0])
    assert torch.equal(quantized_po2(4, qnoise_factor=0.5)(y), y + (quantized_po2(4)(y) - y) * 0.5)


def test_bounds_spec_and_errors():
    assert quantized_po2(4).max() == 8 and quantized_po2(4).min() == -8
    assert quantized_po2(4, 2.5).max() == 2.5
    assert quantized_relu_po2(4).min() == 2 ** -8
    assert quantized_relu_po2(4, None, 0.5).min() == -4.0  # min(2^-8, -slope 2^(bits-1))
    for spec in ["quantized_po2(4)", "quantized_po2(5,0.5,log2_rounding='floor',qnoise_factor=0.5)",
                 "quantized_relu_po2(4,2.0,0.25,quadratic_approximation=1)", "quantized_relu_po2(6,None,0.5)"]:
        q = get_quantizer(spec)
        assert get_quantizer(q.to_string()).to_string() == q.to_string()
    for spec, needle in [("quantized_po2(1)", r"`bits` must be an integer in \[2, 12\]"),
                         ("quantized_po2(4,-1)", "`max_value` must be None or a finite number > 0"),
                         ("quantized_po2(4,log2_rounding='ceil')", "`log2_rounding` must be 'rnd' or 'floor'"),
                         ("quantized_relu_po2(4,None,0.3)", "power of two"),
                         ("quantized_po2(4,max_value=-1)", "max_value")]:
        with pytest.raises(ValueError, match=needle):
            get_quantizer(spec)


def test_exact_log2_boundaries():
    # Around sqrt(2) * 2^k the exponent rounds exactly; at powers of two "floor" is exact.
    s = torch.tensor([math.sqrt(2)], dtype=torch.float64)
    lo = torch.nextafter(s, torch.tensor([0.0], dtype=torch.float64))
    hi = torch.nextafter(s, torch.tensor([2.0], dtype=torch.float64))
    q = quantized_po2(6)
    assert q(lo).item() == 1.0 and q(hi).item() == 2.0
    p = torch.tensor([2.0 ** k for k in range(-6, 7)])
    assert torch.equal(quantized_po2(6, log2_rounding="floor")(p), p.clamp(2.0 ** -8, 2.0 ** 7))
