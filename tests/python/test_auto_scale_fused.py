# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""quantized_bits with alpha "auto" / "auto_po2": the fused CPU kernel equals the generic kernel
bit for bit (output and scale), whatever the layout, the axes, the dtype and the thread count."""
import math

import numpy as np
import pytest
import torch

import heteroq

OP = "heteroq::quantized_bits_auto"

# test_binary_auto_fused.py imports assert_bitwise_equal, values_near, spread_channels and
# set_special_channels from here (pytest puts tests/python on sys.path).


def bits_view(t: torch.Tensor) -> torch.Tensor:
    t = t.contiguous()
    return t.view({torch.float64: torch.int64, torch.float32: torch.int32}.get(t.dtype, torch.int16))


def assert_bitwise_equal(a: torch.Tensor, b: torch.Tensor, what: str = ""):
    assert a.shape == b.shape and a.dtype == b.dtype, f"{what}: {a.shape} {a.dtype} vs {b.shape} {b.dtype}"
    nan = torch.isnan(a)
    assert torch.equal(nan, torch.isnan(b)), f"NaN positions differ: {what}"
    ba, bb = bits_view(a)[~nan], bits_view(b)[~nan]
    diff = (ba != bb).nonzero().flatten()
    assert diff.numel() == 0, (f"{what}: {diff.numel()} of {ba.numel()} values differ, first "
                               f"{a[~nan][diff[0]].item()!r} vs {b[~nan][diff[0]].item()!r}")


def values_near(bases, dtype: torch.dtype) -> torch.Tensor:
    """The 128 consecutive values of dtype (float32/float64) from 64 below each base (rounded to
    dtype), concatenated."""
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    int_dtype = np.int32 if dtype == torch.float32 else np.int64
    vals = []
    for base in bases:
        b = np.array([base], dtype=np_dtype).view(int_dtype)[0]
        vals.append(np.arange(b - 64, b + 64, dtype=int_dtype).view(np_dtype))
    return torch.from_numpy(np.concatenate(vals))


def fused_and_generic(x, *args):
    fused = heteroq.ops.quantized_bits_auto(x, *args)
    with heteroq.ops.fused_kernels(False):
        generic = heteroq.ops.quantized_bits_auto(x, *args)
    assert heteroq.ops.fused_kernels_enabled()
    return fused, generic


def check(x, *args):
    (out_f, scale_f), (out_g, scale_g) = fused_and_generic(x, *args)
    what = f"shape {tuple(x.shape)} strides {x.stride()} {x.dtype} args {args}"
    assert_bitwise_equal(out_f, out_g, "output, " + what)
    assert_bitwise_equal(scale_f, scale_g, "scale, " + what)
    return out_f, scale_f


def spread_channels(shape, dtype, seed):
    """N(0, 1) values, each channel (axis 0) scaled by its own 10^k, k in [-4, 4)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=dtype)
    c = shape[0]
    mag = 10.0 ** torch.randint(-4, 4, (c,), generator=g).to(dtype)
    return x * mag.view((c,) + (1,) * (len(shape) - 1))


def set_special_channels(x):
    """Channels 0..5 (at least 6, of at least 4 elements): all zero, a NaN, +-inf, huge values,
    exact multiples of 1/16 (ties of the code rounding) and signed zeros."""
    x[0] = 0
    x[1].view(-1)[3] = math.nan
    x[2].view(-1)[0] = math.inf
    x[2].view(-1)[1] = -math.inf
    x[3] *= 1e30
    x[4] = torch.round(x[4] * 16) / 16
    x[5].view(-1)[0] = -0.0
    x[5].view(-1)[1] = 0.0


def channels(shape, dtype, seed):
    """Rows of magnitudes 1e-4..1e3, with an all-zero row, NaN, +-inf, huge values, exact ties
    of the code rounding and signed zeros."""
    x = spread_channels(shape, dtype, seed)
    if shape[0] >= 6 and x[0].numel() >= 4:
        set_special_channels(x)
    return x


def test_has_cpu_kernel():
    # Without it, fused and generic would be the same code and agree trivially.
    assert torch._C._dispatch_has_kernel_for_dispatch_key(OP, "CPU")


SHAPES = [(64, 300), (33, 17), (9, 1), (7, 3, 5, 5), (6, 4, 2, 3), (8, 4099)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("po2", [True, False])
def test_fused_equals_generic(dtype, shape, po2):
    x = channels(shape, dtype, seed=len(shape) * 1000 + shape[-1])
    for bits in [2, 3, 4, 6, 8, 12, 16, 24, 32]:
        check(x, bits, 0, True, po2)
    for integer, keep_negative in [(-3, False), (2, True), (64, True), (-64, False)]:
        check(x, 6, integer, keep_negative, po2)
    check(x, 5, 1, True, po2, None, 0.5)  # qnoise_factor != 1
    check(x, 5, 0, True, po2, None, 0.0)
    check(x, 4, 0, True, po2, [1])
    check(x, 4, 0, True, po2, [-1])
    if x.dim() == 4:
        check(x, 4, 0, True, po2, [0, 2])
        check(x, 7, 1, True, po2, [3, 1], 0.25)
        check(x, 7, 0, True, po2, [2, 2])
    # Non-contiguous: transposed (its permuted view is contiguous for axis 1), strided, sliced.
    check(x.transpose(0, 1), 6, 0, True, po2)
    check(x.transpose(0, 1), 6, 0, True, po2, [1])
    if x.shape[0] > 2:
        check(x[::2], 6, 0, True, po2)
    if x.shape[-1] > 2:
        check(x[..., 1:], 6, 0, True, po2)
    check(x[:1].expand_as(x), 6, 0, True, po2)  # zero strides


def test_rows_that_iterate_longer():
    # With 2 bits, rows of 64 N(0, 1) values reach the fixed point of the auto_po2 iteration after
    # 1, 2 or 3 iterations: rows leave the iteration at different times within a block.
    g = torch.Generator().manual_seed(2)
    for dtype in (torch.float32, torch.float64):
        x = torch.randn(3000, 64, generator=g, dtype=dtype)
        check(x, 2, 0, True, True)
        check(x, 2, 1, False, True, None, 0.5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_random_quantizer_arguments(dtype):
    rng = np.random.default_rng(5)
    for trial in range(60):
        rank = int(rng.integers(2, 5))
        shape = tuple(int(rng.integers(1, 12)) for _ in range(rank))
        x = torch.from_numpy(rng.standard_normal(shape) * rng.choice([1e-3, 0.3, 1.0, 50.0])).to(dtype)
        keep = sorted(set(int(a) for a in rng.integers(0, rank, int(rng.integers(1, rank)))))
        bits, integer = int(rng.integers(2, 12)), int(rng.integers(-2, 4))
        check(x, bits, integer, bool(rng.integers(0, 2)), bool(rng.integers(0, 2)), keep,
              float(rng.choice([1.0, 0.3])))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_po2_rounding_boundaries(dtype):
    # Scales near sqrt(2) 2^k: whether log(s + eps) / ln 2 rounds up depends on the last bit of the
    # logarithm (ATen's vectorized log vs libm), so the fused kernel must round where at::log does.
    # With bits = 2, the first scale of a one-element row is the element itself.
    x = values_near([math.sqrt(2.0) * 2.0 ** k for k in range(-20, 41)], dtype).view(-1, 1)
    check(x, 2, 0, True, True)
    check(x.view(-1, 2), 2, 0, True, True)
    check(x, 3, 0, True, True)


def test_thread_count_does_not_change_the_result():
    x = channels((512, 1000), torch.float32, seed=3)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        o1, s1 = heteroq.ops.quantized_bits_auto(x, 6)
        torch.set_num_threads(2)
        o2, s2 = heteroq.ops.quantized_bits_auto(x, 6)
        with heteroq.ops.fused_kernels(False):
            og, sg = heteroq.ops.quantized_bits_auto(x, 6)
    finally:
        torch.set_num_threads(before)
    assert_bitwise_equal(o1, o2)
    assert_bitwise_equal(s1, s2)
    assert_bitwise_equal(o2, og)
    assert_bitwise_equal(s2, sg)


@pytest.mark.parametrize("po2", [True, False])
def test_fallback_cases(po2):
    # Rank 1 (one least-squares scale per element), rank 0, empty, every axis kept.
    check(torch.randn(37), 4, 0, True, po2)
    check(torch.randn(()), 4, 0, True, po2)
    check(torch.randn(0, 4), 4, 0, True, po2)
    check(torch.randn(3, 0), 4, 0, True, po2)
    check(torch.randn(3, 4), 4, 0, True, po2, [0, 1])
    for dtype in (torch.float16, torch.bfloat16):  # both compute in float32
        out, scale = check(torch.randn(12, 40).to(dtype), 5, 0, True, po2, None, 0.5)
        assert out.dtype == dtype and scale.dtype == torch.float32


def test_every_axis_kept_gives_per_element_scales():
    # QKeras's K.max / K.mean over axis=[] reduce nothing: each element is its own channel.
    x = torch.tensor([[0.3, -0.9], [2.0, 0.1]])
    for enabled in (True, False):
        with heteroq.ops.fused_kernels(enabled):
            out, scale = heteroq.ops.quantized_bits_auto(x, 4, 0, True, True, [0, 1])
            out1, scale1 = heteroq.ops.quantized_bits_auto(x.reshape(4, 1), 4, 0, True, True)
        assert scale.shape == (2, 2)
        assert torch.equal(out.flatten(), out1.flatten())
        assert torch.equal(scale.flatten(), scale1.flatten())


def test_autograd_and_quantizer_class_use_the_fused_kernel():
    w = channels((16, 50), torch.float32, seed=9)
    q = heteroq.quantized_bits(6, 0, alpha="auto_po2")
    x = w.clone().requires_grad_()
    y = q(x)
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(w))
    with heteroq.ops.fused_kernels(False):
        y_generic = q(w)
    assert_bitwise_equal(y.detach(), y_generic)


def test_same_errors():
    x = torch.randn(4, 5)
    for enabled in (True, False):
        with heteroq.ops.fused_kernels(enabled):
            with pytest.raises(ValueError, match="`bits` must be >= 2"):
                heteroq.ops.quantized_bits_auto(x, 1)
            with pytest.raises(ValueError, match="`scale_axis` 2 is out of range"):
                heteroq.ops.quantized_bits_auto(x, 4, 0, True, True, [2])
            with pytest.raises(ValueError, match="qnoise_factor"):
                heteroq.ops.quantized_bits_auto(x, 4, 0, True, True, None, 1.5)
            with pytest.raises(TypeError):
                heteroq.ops.quantized_bits_auto(torch.ones(4, 5, dtype=torch.int32), 4)
