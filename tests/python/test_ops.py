# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""The registered operators: schemas, kernels per dispatch key, fused == generic bit for bit."""
import pytest
import torch

import heteroq
from heteroq import get_quantizer


def has_kernel(op: str, key: str) -> bool:
    # Private API in 1.13 (no opcheck there); kept in one place.
    return torch._C._dispatch_has_kernel_for_dispatch_key(op, key)


def test_out_variants():
    x = torch.randn(3000) * 2
    for op, args in [(heteroq.ops.quantized_bits, (6, 1, False, True, 0.5)),
                     (heteroq.ops.quantized_relu, (4, 0, False, 0.25)),
                     (heteroq.ops.quantized_bits, (6, 1, False, True, 0.5, 0.25)),
                     (heteroq.ops.quantized_relu, (4, 0, False, 0.25, 0.75))]:
        expected = op(x, *args)
        out = torch.empty(3000)
        assert op(x, *args, out=out) is out and torch.equal(out, expected)
        assert out._version > 0
        empty = torch.empty(0)
        op(x.view(30, 100), *args, out=empty)  # an empty out is resized
        assert torch.equal(empty, expected.view(30, 100))
        strided = torch.empty(30, 200)[:, ::2]  # not contiguous: written through a temporary
        op(x.view(30, 100), *args, out=strided)
        assert torch.equal(strided, expected.view(30, 100))
        with heteroq.ops.fused_kernels(False):
            generic = torch.empty(3000)
            op(x, *args, out=generic)
        assert_bitwise_equal(generic, expected)
        with pytest.raises(ValueError, match=r"`out` has shape \[5\], expected the input's shape \[3000\]"):
            op(x, *args, out=torch.empty(5))
        with pytest.raises(TypeError, match="expected `out` of dtype Float"):
            op(x, *args, out=torch.empty(3000, dtype=torch.float64))
        with pytest.raises(RuntimeError, match="out= does not support automatic differentiation"):
            op(x.clone().requires_grad_(), *args, out=out)
        with torch.no_grad():
            op(x.clone().requires_grad_(), *args, out=out)
        with pytest.raises(RuntimeError, match="`out` requires grad"):
            op(x, *args, out=torch.nn.Parameter(torch.empty(3000)))
        same = x.clone()  # in place: out is x
        op(same, *args, out=same)
        assert torch.equal(same, expected)
        with pytest.raises(RuntimeError, match="overlap|unsupported operation"):
            op(x[1:], *args, out=x[:-1])


def test_schemas():
    assert str(torch.ops.heteroq.quantized_bits.default._schema) == (
        "heteroq::quantized_bits(Tensor x, int bits=8, int integer=0, bool symmetric=False, "
        "bool keep_negative=True, float? alpha=None, float qnoise_factor=1.) -> Tensor")
    assert str(torch.ops.heteroq.quantized_relu.default._schema) == (
        "heteroq::quantized_relu(Tensor x, int bits=8, int integer=0, bool use_sigmoid=False, "
        "float negative_slope=0., float qnoise_factor=1.) -> Tensor")
    assert str(torch.ops.heteroq.quantized_bits.out._schema).endswith(
        "float? alpha=None, float qnoise_factor=1., *, Tensor(a!) out) -> Tensor(a!)")


@pytest.mark.parametrize("op", ["heteroq::quantized_bits", "heteroq::quantized_relu",
                                "heteroq::quantized_bits.out", "heteroq::quantized_relu.out"])
def test_kernels_registered(op):
    assert has_kernel(op, "CPU")
    assert has_kernel(op, "Autograd")
    assert has_kernel(op, "CompositeExplicitAutograd")


def bits_view(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(torch.int32 if t.dtype == torch.float32 else torch.int64)


def assert_bitwise_equal(a: torch.Tensor, b: torch.Tensor):
    assert a.shape == b.shape and a.dtype == b.dtype
    nan = torch.isnan(a)
    assert torch.equal(nan, torch.isnan(b))
    assert torch.equal(bits_view(a)[~nan], bits_view(b)[~nan])


def sample_inputs(dtype):
    x = torch.randn(200003, dtype=dtype) * 3
    special = torch.tensor([0.5, -0.5, 1.5, -2.5, 0.0625, 0.1875, -0.03125, 1e30, -1e30,
                            float("inf"), float("-inf"), float("nan"), 0.0, -0.0], dtype=dtype)
    x = torch.cat([x, special])
    m = torch.randn(301, 257, dtype=dtype)
    yield "contiguous", x
    yield "strided", x[1::3]
    yield "transposed", m.t()
    yield "empty", x[:0]
    yield "3d", torch.randn(4, 5, 6, dtype=dtype).permute(2, 0, 1)


SPECS = ["quantized_bits(6,0,alpha=1)", "quantized_bits(4,2,1)", "quantized_bits(8,0,0,keep_negative=False)",
         "quantized_bits(1,0)", "quantized_bits(5,1,alpha=0.3)", "quantized_bits(16,3)",
         "quantized_relu(6,0)", "quantized_relu(4,2)", "quantized_relu(4,0,0,0.25)", "quantized_relu(6,1,1)",
         "quantized_relu(5,0,1,0.5)",
         # Grids wider than 2^22 codes take the general rounding path in float32.
         "quantized_bits(24,3)", "quantized_bits(32,0,0,keep_negative=False)", "quantized_bits(23,0,1)",
         "quantized_relu(26,1)", "quantized_relu(24,0,1,0.5)", "quantized_relu(23,2,0,0.5)",
         # QKeras's quantization-noise blend.
         "quantized_bits(6,0,alpha=1,qnoise_factor=0.3)", "quantized_bits(1,0,qnoise_factor=0.5)",
         "quantized_relu(4,0,0,0.25,qnoise_factor=0.7)", "quantized_relu(6,1,1,qnoise_factor=0.5)",
         "quantized_relu(5,0,qnoise_factor=0)",
         # Slopes below 2^-nsb: a fractional lower bound -slope*2^nsb (review finding).
         "quantized_relu(4,0,0,0.0625)", "quantized_relu(2,0,0,0.25)", "quantized_relu(6,1,1,0.0078125)",
         "quantized_relu(4,0,0,0.03125,qnoise_factor=0.5)", "quantized_relu(4,0,qnoise_factor=0.5)",
         "quantized_tanh(4)", "quantized_tanh(8,0,1)", "quantized_tanh(26)", "quantized_sigmoid(4)",
         "quantized_sigmoid(7,1)", "quantized_sigmoid(25)",
         "quantized_po2(4)", "quantized_po2(8,0.5,quadratic_approximation=1)",
         "quantized_po2(12,log2_rounding='floor',qnoise_factor=0.5)", "quantized_relu_po2(4)",
         "quantized_relu_po2(6,4.0,0.25)", "quantized_relu_po2(10,None,0.5,qnoise_factor=0.25)",
         "binary", "binary(use_01=1,alpha=0.75)", "ternary", "ternary(alpha=0.3,threshold=0.5)",
         "ternary(threshold=0)"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("spec", SPECS)
def test_fused_equals_generic_bit_for_bit(spec, dtype):
    q = get_quantizer(spec)
    for name, x in sample_inputs(dtype):
        fused = q(x)
        with heteroq.ops.fused_kernels(False):
            generic = q(x)
        assert heteroq.ops.fused_kernels_enabled()
        assert_bitwise_equal(fused, generic)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("op,args", [("_quantized_tanh_backward", (4, False, False)),
                                     ("_quantized_tanh_backward", (3, True, False)),
                                     ("_quantized_sigmoid_backward", (5, False, False)),
                                     ("_quantized_sigmoid_backward", (4, True, False))])
def test_activation_backward_fused_equals_generic(dtype, op, args):
    x = torch.cat([torch.randn(100001, dtype=dtype) * 2,
                   torch.tensor([-1.0, 1.0, 0.0, float("nan"), float("inf")], dtype=dtype)])
    g = torch.randn_like(x)
    fused = getattr(torch.ops.heteroq, op)(g, x, *args)
    with heteroq.ops.fused_kernels(False):
        generic = getattr(torch.ops.heteroq, op)(g, x, *args)
    assert_bitwise_equal(fused, generic)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("args", [(None, 0.0), (2.0, 0.25), (0.5, 0.0)])
def test_relu_po2_backward_fused_equals_generic(dtype, args):
    x = torch.cat([torch.randn(100001, dtype=dtype) * 2,
                   torch.tensor([0.0, 0.5, 2.0, float("nan"), float("inf")], dtype=dtype)])
    g = torch.randn_like(x)
    fused = torch.ops.heteroq._quantized_relu_po2_backward(g, x, *args)
    with heteroq.ops.fused_kernels(False):
        generic = torch.ops.heteroq._quantized_relu_po2_backward(g, x, *args)
    assert_bitwise_equal(fused, generic)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_relu_backward_fused_equals_generic(dtype):
    x = torch.randn(100001, dtype=dtype) * 2
    g = torch.randn_like(x)
    for spec in ["quantized_relu(4,0)", "quantized_relu(4,0,0,0.25)"]:
        q = get_quantizer(spec)
        args = (q.bits, q.integer, q.use_sigmoid, q.negative_slope)
        fused = torch.ops.heteroq._quantized_relu_backward(g, x, *args)
        with heteroq.ops.fused_kernels(False):
            generic = torch.ops.heteroq._quantized_relu_backward(g, x, *args)
        assert_bitwise_equal(fused, generic)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("spec", SPECS[:12] + ["quantized_tanh(4)", "quantized_sigmoid(5,1)"])
def test_reduced_precision_computes_in_float32(dtype, spec):
    # float16/bfloat16: computed in float32 (QKeras's precision), rounded to the dtype.
    q = get_quantizer(spec)
    x = (torch.randn(5000) * 3).to(dtype)
    y = q(x)
    assert y.dtype == dtype
    assert torch.equal(y, q(x.float()).to(dtype))
    xg = x.clone().requires_grad_()
    q(xg).sum().backward()
    xf = x.float().requires_grad_()
    q(xf).sum().backward()
    assert torch.equal(xg.grad, xf.grad.to(dtype))


def test_fused_switch_is_per_thread():
    import threading
    seen = []
    with heteroq.ops.fused_kernels(False):
        t = threading.Thread(target=lambda: seen.append(heteroq.ops.fused_kernels_enabled()))
        t.start()
        t.join()
        assert not heteroq.ops.fused_kernels_enabled()
    assert seen == [True] and heteroq.ops.fused_kernels_enabled()


def test_functional_wrappers_match_classes():
    x = torch.randn(1000)
    assert torch.equal(heteroq.ops.quantized_bits(x, 5, 1, True, True, 0.5),
                       heteroq.quantized_bits(5, 1, True, True, 0.5)(x))
    assert torch.equal(heteroq.ops.quantized_relu(x, 5, 1, False, 0.5),
                       heteroq.quantized_relu(5, 1, False, 0.5)(x))


def test_outputs_on_grid_bounded_and_idempotent():
    x = torch.randn(50000) * 4
    q = heteroq.quantized_bits(5, 1)
    y = q(x)
    step = 2.0 ** (1 - 5 + 1)
    assert torch.equal(y / step, torch.round(y / step))
    assert y.max() <= 2 - step and y.min() >= -2
    assert torch.equal(q(y), y)
    r = heteroq.quantized_relu(5, 1)
    z = r(x)
    assert torch.equal(r(z), z) and z.min() >= 0


def test_threads_do_not_change_results():
    x = torch.randn(1 << 20)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = heteroq.ops.quantized_bits(x, 6, 1)
        torch.set_num_threads(2)
        two = heteroq.ops.quantized_bits(x, 6, 1)
    finally:
        torch.set_num_threads(before)
    assert_bitwise_equal(one, two)
