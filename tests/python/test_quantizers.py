# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""Quantizer values (hand-computed from QKeras's formulas), bounds, specs, errors, gradients."""
import math
import pickle
import copy

import pytest
import torch

import heteroq
from heteroq import get_quantizer, quantized_bits, quantized_relu, quantized_sigmoid, quantized_tanh

INF = float("inf")
NAN = float("nan")

# (spec, inputs, expected): see qkeras-semantics.md 1.1 / 1.3; the same table is in
# tests/cpp/test_quantizers.cpp.
HAND_COMPUTED = [
    # step 1/8, codes [-8, 7]; 0.0625*8 = 0.5 ties to 0, 0.1875*8 = 1.5 ties to 2.
    ("quantized_bits(4,0)", [0.3, -1.2, 0.99, 0.0625, 0.1875, -1.0, 2.0],
     [0.25, -1.0, 0.875, 0.0, 0.25, -1.0, 0.875]),
    ("quantized_bits(4,0,1)", [-1.2, -0.9, 1.2], [-0.875, -0.875, 0.875]),
    ("quantized_bits(4,0,0,keep_negative=False)", [-0.5, 0.5, 0.97, 2.0], [0.0, 0.5, 0.9375, 0.9375]),
    ("quantized_bits(6,2)", [1.3, 5.0, -5.0, 0.0625, 1e7], [1.25, 3.875, -4.0, 0.0, 3.875]),
    ("quantized_bits(4,0,alpha=0.5)", [0.3, -2.0], [0.125, -0.5]),
    ("quantized_bits(2,0)", [0.3, 0.8, -0.3, -2.0], [0.5, 0.5, -0.5, -1.0]),
    ("quantized_bits(1,0)", [-0.2, 0.0, 0.7], [-1.0, 1.0, 1.0]),
    ("quantized_bits(1,0,alpha=0.5)", [-0.2, 0.0, 0.7], [-0.5, 0.5, 0.5]),
    ("quantized_bits(4,-2)", [0.05, 1.0, -1.0], [0.0625, 0.21875, -0.25]),
    ("quantized_relu(4,0)", [-1.0, 0.03, 0.5, 0.97, 2.0], [0.0, 0.0, 0.5, 0.9375, 0.9375]),
    ("quantized_relu(4,2)", [-1.0, 0.6, 9.0], [0.0, 0.5, 3.75]),
    ("quantized_relu(4,0,0,0.25)", [-1.0, -0.5, -0.3, 0.5, 2.0, -4.0],
     [-0.25, -0.125, -0.125, 0.5, 0.875, -0.25]),
    ("quantized_relu(4,0,1)", [0.5, 0.3, -0.5, 1.0, 0.1], [0.5, 0.25, 0.0, 0.9375, 0.125]),
    ("quantized_relu(4,0,1,0.5)", [-0.5, 0.5, -3.0], [-0.25, 0.5, -0.5]),
    # tanh: m = 4, codes [-4, 3], p = 2 clip(x/2 + 1/2, 0, 1) - 1; 0.9 -> 3.6 -> 4 -> 3.
    ("quantized_tanh(3)", [-2.0, -1.0, -0.3, 0.0, 0.2, 0.9, 1.0, 3.0],
     [-1.0, -1.0, -0.25, 0.0, 0.25, 0.75, 0.75, 0.75]),
    ("quantized_tanh(3,0,1)", [-2.0, 0.9], [-0.75, 0.75]),
    # sigmoid: m = 8, codes [0, 7], p = clip(x/2 + 1/2, 0, 1); -0.3 -> 2.8 -> 3.
    ("quantized_sigmoid(3)", [-2.0, -1.0, -0.3, 0.0, 0.2, 0.9, 1.0, 3.0],
     [0.0, 0.0, 0.375, 0.5, 0.625, 0.875, 0.875, 0.875]),
    ("quantized_sigmoid(3,1)", [-2.0], [0.125]),
]


@pytest.mark.parametrize("spec,inputs,expected", HAND_COMPUTED)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_hand_computed_values(spec, inputs, expected, dtype):
    q = get_quantizer(spec)
    out = q(torch.tensor(inputs, dtype=dtype))
    assert out.dtype == dtype
    assert out.tolist() == expected


def test_classes_take_qkeras_argument_order():
    assert quantized_bits(4, 0, 1).to_string() == "quantized_bits(4,0,1)"
    assert quantized_bits(8, 0, 0, False).keep_negative is False
    assert quantized_bits(6, 0, alpha=1).alpha == 1.0
    assert quantized_bits(6, 0, 0, True, 0.5).to_string() == "quantized_bits(6,0,0,alpha=0.5)"
    assert quantized_relu(4, 2, 0, 0.25).negative_slope == 0.25
    assert quantized_relu(4, 2, 1).use_sigmoid is True
    assert quantized_bits().to_string() == "quantized_bits(8,0,0)"
    # TensorFlow-only arguments are accepted and ignored.
    assert quantized_bits(4, var_name="w", use_variables=True).bits == 4


@pytest.mark.parametrize("spec", [
    "quantized_bits(6,0,alpha=1)", "quantized_bits(4,2,1)", "quantized_bits(8,0,0,keep_negative=False)",
    "quantized_bits(1,0,0,alpha=0.25)", "quantized_bits(5, 1, alpha=0.1)", "quantized_relu(4,2)",
    "quantized_relu(6,0,1)", "quantized_relu(4,0,0,0.25)", "quantized_relu",
    "quantized_relu(8, 3, use_sigmoid=True, negative_slope=0.5)",
    "quantized_bits(6,0,alpha=1,qnoise_factor=0.5)", "quantized_relu(4,2,qnoise_factor=0.25)",
    "quantized_bits(4,0,alpha='auto_po2')", "quantized_bits(6,1,0,alpha='auto',scale_axis=[0 1])",
    "quantized_tanh(4)", "quantized_tanh(4,0,1)", "quantized_tanh(5,0,0,1)", "quantized_tanh(6, symmetric=1)",
    "quantized_sigmoid(4)", "quantized_sigmoid(4,1)", "quantized_sigmoid(6,0,1)",
])
def test_spec_round_trip(spec):
    q = get_quantizer(spec)
    q2 = get_quantizer(q.to_string())
    assert type(q2) is type(q)
    assert q2.to_string() == q.to_string() == str(q) == repr(q)
    assert q2.get_config() == q.get_config()
    assert type(q)(**q.get_config()).to_string() == q.to_string()


def test_get_quantizer_passes_objects_and_none():
    q = quantized_bits(4)
    assert get_quantizer(q) is q
    assert get_quantizer(None) is None
    with pytest.raises(TypeError, match="expected a spec string"):
        get_quantizer(4)


def test_bounds_are_qkeras_constraint_bounds():
    assert quantized_bits(8, 0, 0, False).max() == 1.0  # google/qkeras#71: largest output 255/256
    assert quantized_bits(8, 0, 0, False).min() == 0.0
    assert quantized_bits(6, 2).max() == 4.0 and quantized_bits(6, 2).min() == -4.0
    assert quantized_bits(6, -2).max() == 1.0
    assert quantized_relu(4, 2).max() == 4.0 and quantized_relu(4, 2).min() == 0.0
    assert quantized_relu(4, 0, 0, 0.25).min() == -0.25
    assert quantized_bits(6, 2).bits == 6


def test_nan_inf_and_signed_zero():
    out = quantized_bits(6, 2)(torch.tensor([NAN, INF, -INF, -0.01]))
    assert math.isnan(out[0])
    assert out[1:3].tolist() == [3.875, -4.0]
    assert out[3] == 0 and math.copysign(1.0, out[3].item()) == 1.0  # +0.0
    out = quantized_relu(4, 2)(torch.tensor([NAN, INF, -INF]))
    assert math.isnan(out[0]) and out[1:].tolist() == [3.75, 0.0]


def test_output_is_the_grid_value_not_x_plus_difference():
    # QKeras computes x + (q - x) in float32, which gives 4.0 here (qkeras-semantics.md 0.2).
    assert quantized_bits(6, 2)(torch.tensor([1e7])).item() == 3.875


@pytest.mark.parametrize("kwargs,needle", [
    (dict(bits=0), r"`bits` must be an integer in \[1, 32\], got 0"),
    (dict(bits=33), r"got 33"),
    (dict(bits=4.5), r"`bits` must be an integer, got 4.5"),
    (dict(bits="a"), r"`bits` must be an integer, got 'a' \(a string\)"),
    (dict(bits=4, integer=99), r"`integer` must be an integer in \[-64, 64\], got 99"),
    (dict(bits=4, alpha=-1), r"`alpha` must be None or a finite number > 0, got -1"),
    (dict(bits=4, alpha="auto_p2"), r"`alpha` must be None, a number, 'auto' or 'auto_po2'"),
    (dict(bits=1, alpha="auto"), r"with alpha 'auto' or 'auto_po2', `bits` must be >= 2, got 1"),
    (dict(bits=4, scale_axis=1), r"`scale_axis` applies to a per-channel alpha or alpha 'auto'/'auto_po2' only"),
    (dict(bits=4, alpha="auto", scale_axis="x"), r"`scale_axis` must be None, an integer or a list"),
    (dict(bits=4, symmetric=3), r"`symmetric` must be a bool"),
    (dict(bits=4, alpha="auto", post_training_scale=1), r"`post_training_scale`=1 is not supported yet"),
    (dict(bits=4, qnoise_factor="a"), r"`qnoise_factor` must be a number, got 'a'"),
])
def test_quantized_bits_bad_arguments(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        quantized_bits(**kwargs)


@pytest.mark.parametrize("spec,needle", [
    ("quantized_bits(4,0", "unbalanced parentheses: missing '\\)'"),
    ("quantized_bits(4))", "unexpected '\\)'"),
    ("quantized_bitz(4)", "unknown quantizer `quantized_bitz`"),
    ("quantized_bits(4, bitz=2)", "no argument `bitz`"),
    ("quantized_bits(bits=4, 0)", "positional argument follows a keyword"),
    ("quantized_bits(four)", "`four` is not a value"),
    ("quantized_bits(4x)", "`4x` is not a valid number"),
    ("quantized_bits(4,+-2)", "`\\+-2` is not a valid number"),
    ("quantized_relu(4, 0, 0, 0.3)", "power of two"),
    ("quantized_relu(4, negative_slope=-1)", "must be a finite number >= 0"),
    ("quantized_relu(1, 0, 0, 0.5)", "`bits` must be >= 2"),
    ("quantized_relu(0)", r"`bits` must be an integer in \[1, 32\], got 0"),
])
def test_bad_specs_raise_value_error(spec, needle):
    with pytest.raises(ValueError, match=needle):
        get_quantizer(spec)


def test_python_numbers_convert_exactly():
    import numpy as np
    # Never truncated: a float tensor or array stays a real number; integers come through __index__.
    assert quantized_relu(4, 0, negative_slope=torch.tensor(0.25)).negative_slope == 0.25
    assert quantized_bits(4, 0, alpha=np.array(2.7)).alpha == 2.7
    assert quantized_bits(np.int64(5)).bits == 5 and quantized_bits(torch.tensor(6)).bits == 6
    for kwargs, needle in [(dict(bits=2 ** 64), "out of the 64-bit integer range"),
                           (dict(bits=4, var_name="\ud800"), "is not valid text"),
                           (dict(bits=torch.tensor([1.0, 2.0])), "must be None, a bool, a number"),
                           (dict(bits=object()), "must be None, a bool, a number"),
                           (dict(bits=4, alpha=[1, "a"]), "list items must be numbers")]:
        with pytest.raises(ValueError, match=needle):
            quantized_bits(**kwargs)


def test_parameters_are_read_only():
    q = quantized_bits(4, 0)
    with pytest.raises(AttributeError, match="read-only"):
        q.bits = 8
    assert q.bits == 4 and q.to_string() == "quantized_bits(4,0,0)"
    q.train(False)  # ordinary module attributes still work


def test_integer_tensors_raise_type_error():
    with pytest.raises(TypeError, match="expected a floating-point tensor, got a tensor of dtype Long"):
        quantized_bits(4)(torch.arange(3))
    with pytest.raises(TypeError, match="floating-point"):
        quantized_relu(4)(torch.arange(3, dtype=torch.int32))


def test_operator_checks_parameters_too():
    with pytest.raises(ValueError, match="`bits` must be an integer in"):
        torch.ops.heteroq.quantized_bits(torch.ones(2), 0)
    with pytest.raises(ValueError, match="power of two"):
        torch.ops.heteroq.quantized_relu(torch.ones(2), 4, 0, False, 0.3)


def test_quantized_bits_gradient_is_identity_everywhere():
    x = torch.tensor([-5.0, -0.3, 0.0, 0.4, 7.0], requires_grad=True)
    g = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    quantized_bits(4, 0)(x).backward(g)
    assert x.grad.tolist() == g.tolist()


@pytest.mark.parametrize("spec,inputs,expected", [
    # tanh/sigmoid: 1 (1/2) where -1 <= x <= 1 and the rounded code is inside the grid.
    ("quantized_tanh(3)", [-2.0, -1.0, -0.3, 0.0, 0.2, 0.9, 1.0, 3.0], [0, 1, 1, 1, 1, 0, 0, 0]),
    ("quantized_tanh(3,0,1)", [-1.0, -0.5], [0, 1]),
    ("quantized_sigmoid(3)", [-2.0, -1.0, -0.3, 0.0, 0.2, 0.9, 1.0, 3.0],
     [0, 0.5, 0.5, 0.5, 0.5, 0, 0, 0]),
    ("quantized_relu(4,0)", [-1.0, 0.0, 0.5, 0.9375, 0.95], [0, 0, 1, 1, 0]),
    ("quantized_relu(4,0,0,0.25)", [-1.0, 0.0, 0.5, 0.875, 0.9], [0.25, 0.25, 1, 1, 0]),
    ("quantized_relu(4,0,1)", [-1.0, 0.5, 2.0], [0, 1, 0]),
])
def test_quantized_relu_ste(spec, inputs, expected):
    x = torch.tensor(inputs, requires_grad=True)
    get_quantizer(spec)(x).sum().backward()
    assert x.grad.tolist() == expected


def test_relu_double_backward_is_rejected_clearly():
    x = torch.tensor([0.5], requires_grad=True)
    w = torch.tensor([2.0], requires_grad=True)
    # The gradient arriving at the quantizer depends on w: a second derivative would be needed.
    y = (quantized_relu(4)(x) * w).sum()
    with pytest.raises(RuntimeError, match="double backward is not supported"):
        torch.autograd.grad(y, x, create_graph=True)
    # Without create_graph the same graph differentiates normally.
    y = (quantized_relu(4)(x) * w).sum()
    (g,) = torch.autograd.grad(y, x)
    assert g.tolist() == [2.0]


def test_quantizers_pickle_and_deepcopy():
    for q in [quantized_bits(5, 1, alpha=0.5), quantized_relu(4, 2, 0, 0.5)]:
        for q2 in [pickle.loads(pickle.dumps(q)), copy.deepcopy(q)]:
            assert q2.to_string() == q.to_string()
            x = torch.randn(100)
            assert torch.equal(q2(x), q(x))


def f32(v):
    return torch.tensor(v, dtype=torch.float32)


def test_qnoise_factor_blends_float_and_quantized_values():
    # QKeras: x + q * (quantize(x) - x) (float32), and quantize(x) exactly at q = 1.
    x = torch.tensor([0.3, -1.2, 0.99, 5.0])
    xq = quantized_bits(4, 0)(x)
    for q in [0.0, 0.25, 0.5, 1.0]:
        out = quantized_bits(4, 0, qnoise_factor=q)(x)
        expected = x + (xq - x) * f32(q) if q < 1 else xq
        assert torch.equal(out, expected), q
    assert torch.equal(quantized_bits(4, 0, qnoise_factor=0)(x), x)
    # quantized_relu blends with x_u = relu(x, slope) capped at the top of the grid (0.875 here).
    r = quantized_relu(4, 0, 0, 0.25, qnoise_factor=0.5)
    x = torch.tensor([-1.0, 0.3, 2.0])
    x_u = torch.tensor([-0.25, 0.3, 0.875])
    rq = quantized_relu(4, 0, 0, 0.25)(x)
    assert torch.equal(r(x), x_u + (rq - x_u) * f32(0.5))
    assert torch.equal(quantized_relu(4, 0, 0, 0.25, qnoise_factor=0)(x), x_u)


def test_small_negative_slope_rounds_before_clipping():
    # -slope * 2^nsb = -1/2: QKeras rounds p*slope first, then clips to [-1/2, 0].
    x = torch.tensor([-100.0, -10.0, -0.3])
    out = quantized_relu(4, 0, 0, 2 ** -4)(x)
    assert out.tolist() == [-0.0625, -0.0625, 0.0]


def test_qnoise_relu_keeps_minus_infinity_finite():
    # x_u = relu(-inf) = 0 (QKeras), so the blend is finite.
    out = quantized_relu(4, 0, qnoise_factor=0.5)(torch.tensor([float("-inf"), -1.0]))
    assert out.tolist() == [0.0, 0.0]


def test_subnormal_parameters_round_trip():
    q = quantized_bits(4, 0, alpha=1e-310, qnoise_factor=5e-324)
    q2 = pickle.loads(pickle.dumps(q))
    assert q2.to_string() == q.to_string() and q2.alpha == 1e-310


def test_real_tanh_and_sigmoid():
    x = torch.linspace(-3, 3, 101, dtype=torch.float64, requires_grad=True)
    y = quantized_tanh(4, use_real_tanh=True)(x)
    assert torch.equal(y, torch.clamp(torch.round(torch.tanh(x) * 8), -8, 7) / 8)
    y.sum().backward()
    t = torch.tanh(x.detach())
    mask = (torch.round(t * 8) <= 7).double()
    assert torch.allclose(x.grad, mask * (1 - t * t), rtol=0, atol=1e-15)
    s = quantized_sigmoid(4, 0, True)(x.detach())
    assert torch.equal(s, torch.clamp(torch.round(torch.sigmoid(x.detach()) * 16), 0, 15) / 16)
    assert quantized_tanh(4).max() == 0.875 and quantized_tanh(4, 0, 1).min() == -0.875
    assert quantized_sigmoid(4).max() == 0.9375 and quantized_sigmoid(4, 1).min() == 0.0625


def test_qnoise_factor_keeps_the_gradient():
    for q, expected in [(quantized_bits(4, 0, qnoise_factor=0.3), [1.0, 1.0, 1.0]),
                        (quantized_relu(4, 0, qnoise_factor=0.3), [0.0, 1.0, 0.0])]:
        x = torch.tensor([-1.0, 0.5, 0.95], requires_grad=True)
        q(x).sum().backward()
        assert x.grad.tolist() == expected


def test_qnoise_factor_spec_update_and_errors():
    q = get_quantizer("quantized_bits(4,0,qnoise_factor=0.5)")
    assert q.qnoise_factor == 0.5 and q.to_string() == "quantized_bits(4,0,0,qnoise_factor=0.5)"
    q.update_qnoise_factor(0.25)
    assert q.qnoise_factor == 0.25 and "qnoise_factor=0.25" in q.to_string()
    x = torch.tensor([0.3])
    assert torch.equal(q(x), x + (quantized_bits(4, 0)(x) - x) * f32(0.25))
    q.update_qnoise_factor(1.0)
    assert q.to_string() == "quantized_bits(4,0,0)"
    with pytest.raises(ValueError, match=r"`qnoise_factor` must be a number in \[0, 1\], got 1.5"):
        quantized_relu(4, qnoise_factor=1.5)
    with pytest.raises(ValueError, match="qnoise_factor"):
        q.update_qnoise_factor(-0.1)
    assert q.qnoise_factor == 1.0  # unchanged after a refused update
    with pytest.raises(ValueError, match="qnoise_factor"):
        torch.ops.heteroq.quantized_bits(x, 4, 0, False, True, None, 2.0)


@pytest.mark.parametrize("spec,values", [
    # Two's-complement code order, as QKeras's range().
    ("quantized_bits(3,0)", [0, 0.25, 0.5, 0.75, -1, -0.75, -0.5, -0.25]),
    ("quantized_bits(3,0,1)", [0, 0.25, 0.5, 0.75, -0.75, -0.5, -0.25]),
    ("quantized_bits(1,0,alpha=0.5)", [0.5, -0.5]),
    ("quantized_relu(3,0)", [0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875]),
    ("quantized_relu(3,0,0,0.5)", [0, 0.25, 0.5, 0.75, -0.5, -0.25]),
    ("quantized_tanh(3)", [0, 0.25, 0.5, 0.75, -1, -0.75, -0.5, -0.25]),
    ("quantized_sigmoid(2)", [0, 0.25, 0.5, 0.75]),
    ("quantized_po2(3)", [0.25, 0.5, 1, 2, -0.25, -0.5, -1, -2]),
    ("quantized_relu_po2(2)", [0.25, 0.5, 1, 2]),
    ("binary", [-1, 1]), ("binary(use_01=1,alpha=2)", [0, 2]), ("ternary(alpha=0.5)", [-0.5, 0, 0.5]),
])
def test_range_lists_every_output(spec, values):
    q = get_quantizer(spec)
    r = q.range()
    assert r.tolist() == values
    # Every output of the quantizer is one of range()'s values.
    x = torch.linspace(-4, 4, 20001, dtype=torch.float64)
    assert set(q(x).tolist()) <= set(values)


def test_is_po2_range_errors_and_json():
    assert quantized_bits(4).is_po2 is False and get_quantizer("quantized_po2(4)").is_po2 is True
    with pytest.raises(ValueError, match="range\\(\\) is not defined for alpha 'auto'"):
        quantized_bits(4, alpha="auto").range()
    with pytest.raises(ValueError, match="at most 65536 values"):
        quantized_bits(20).range()
    import json
    for spec in ["quantized_bits(4,0,alpha='auto_po2',scale_axis=1,qnoise_factor=0.5)",
                 "quantized_relu(4,2,0,0.25)", "quantized_po2(5,0.5,log2_rounding='floor')",
                 "ternary(alpha=0.5,threshold=0.2)", "quantized_tanh(4,0,1)"]:
        q = get_quantizer(spec)
        j = q.to_json()
        assert json.loads(j)["class_name"] == q._impl.name
        assert get_quantizer(j).to_string() == q.to_string()
        assert get_quantizer(json.loads(j)).to_string() == q.to_string()
    assert json.loads(get_quantizer("quantized_bits(4,alpha='auto',scale_axis=1)").to_json())["config"]["scale_axis"] == [1]
    for bad, needle in [("{", "quantizer JSON: .*parse error"), ('{"class_name": 3}', 'string "class_name"'),
                        ('{"class_name": "quantized_bits", "config": {"bits": "a"}}', "`bits` must be an integer")]:
        with pytest.raises(ValueError, match=needle):
            get_quantizer(bad)


def test_version():
    assert heteroq.__version__.count(".") == 2
