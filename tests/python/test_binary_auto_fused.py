# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""binary and ternary with alpha "auto" / "auto_po2": the fused CPU kernels equal the generic
kernels bit for bit (output and scale), whatever the layout, the axes, the dtype and the thread
count; the least-squares sums follow the documented 16-lane order in both."""
import math

import numpy as np
import pytest
import torch

import heteroq
from test_auto_scale_fused import (assert_bitwise_equal, set_special_channels, spread_channels,
                                   values_near)

OPS = torch.ops.heteroq


def call(op, x, *args):
    if op == "binary":
        return OPS.binary_auto(x, *args)
    return OPS.ternary_auto(x, *args)


def check(op, x, *args):
    """op: "binary" (args: use_01, po2[, scale_axis]) or "ternary" (po2, unrolls[, scale_axis])."""
    if len(args) == 2:
        args = args + (None,)
    out_f, scale_f = call(op, x, *args)
    with heteroq.ops.fused_kernels(False):
        out_g, scale_g = call(op, x, *args)
    assert heteroq.ops.fused_kernels_enabled()
    what = f"{op} shape {tuple(x.shape)} strides {x.stride()} {x.dtype} args {args}"
    assert_bitwise_equal(out_f, out_g, "output, " + what)
    assert_bitwise_equal(scale_f, scale_g, "scale, " + what)
    return out_f, scale_f


def check_all(x, po2, axes=None, unrolls=(0, 1, 2, 5)):
    check("binary", x, False, po2, axes)
    check("binary", x, True, po2, axes)
    for u in unrolls:
        check("ternary", x, po2, u, axes)


def channels(shape, dtype, seed):
    """Rows of magnitudes 1e-4..1e3, with an all-zero row, NaN, +-inf, -inf alone, huge values
    (2 max|x| overflows), exact multiples of 1/16 and signed zeros."""
    x = spread_channels(shape, dtype, seed)
    if shape[0] >= 8 and x[0].numel() >= 4:
        big = torch.finfo(dtype).max / 1.5
        set_special_channels(x)
        x[6].view(-1)[1] = -math.inf  # binary use_01: -inf * 0 = NaN in the sum
        x[7].view(-1)[2] = big
        x[7].view(-1)[0] = -big
    return x


def test_has_cpu_kernels():
    # Without them, fused and generic would be the same code and agree trivially.
    for op in ("heteroq::binary_auto", "heteroq::ternary_auto"):
        assert torch._C._dispatch_has_kernel_for_dispatch_key(op, "CPU")


SHAPES = [(64, 300), (33, 17), (9, 1), (7, 3, 5, 5), (8, 4, 2, 3), (8, 4099), (10, 16), (12, 15)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("po2", [True, False])
def test_fused_equals_generic(dtype, shape, po2):
    x = channels(shape, dtype, seed=len(shape) * 1000 + shape[-1])
    check_all(x, po2, unrolls=(0, 1, 2, 5, 13))
    check_all(x, po2, [1], unrolls=(5,))
    check_all(x, po2, [-1], unrolls=(5,))
    if x.dim() == 4:
        check_all(x, po2, [0, 2], unrolls=(3,))
        check_all(x, po2, [3, 1], unrolls=(3,))
        check_all(x, po2, [2, 2], unrolls=(3,))
    # Non-contiguous: transposed (its permuted view is contiguous for axis 1), strided, sliced,
    # zero strides.
    check_all(x.transpose(0, 1), po2, unrolls=(5,))
    check_all(x.transpose(0, 1), po2, [1], unrolls=(5,))
    if x.shape[0] > 2:
        check_all(x[::2], po2, unrolls=(5,))
    if x.shape[-1] > 2:
        check_all(x[..., 1:], po2, unrolls=(5,))
    check_all(x[:1].expand_as(x), po2, unrolls=(5,))


def lane_ordered_sum(p: np.ndarray) -> np.ndarray:
    """The documented order of the least-squares sums (binary_ops.cpp, auto_lsq_scale): 16 lanes,
    lane j adding the products j, j + 16, ... sequentially from +0.0, then a fixed tree."""
    rows, n = p.shape
    m = -(-n // 16)
    lanes = np.zeros((rows, 16))
    padded = np.zeros((rows, m * 16))
    padded[:, :n] = p
    for i in range(m):  # one sequential step of every lane of every row
        lanes = lanes + padded[:, 16 * i:16 * i + 16]
    c = (lanes[:, 0:4] + lanes[:, 4:8]) + (lanes[:, 8:12] + lanes[:, 12:16])
    return ((c[:, 0] + c[:, 1]) + (c[:, 2] + c[:, 3])) + 0.0


@pytest.mark.parametrize("use_01", [False, True])
def test_auto_scale_follows_the_documented_summation_order(use_01):
    # float64 "auto" scales show any change of summation order in their last bits: values of
    # very different magnitudes make the order matter for many rows.
    rng = np.random.default_rng(7)
    x = rng.standard_normal((200, 1003)) * 10.0 ** rng.integers(-8, 8, (200, 1003))
    k = np.where(x < 0, 0.0 if use_01 else -1.0, 1.0)
    n = x.shape[1]
    want = (lane_ordered_sum(x * k) / n) / ((k * k).sum(axis=1) / n + 1e-7)
    naive = (np.sum(x * k, axis=1) / n) / ((k * k).sum(axis=1) / n + 1e-7)
    assert (want != naive).mean() > 0.2  # the order matters on this data
    t = torch.from_numpy(x)
    for enabled in (True, False):
        with heteroq.ops.fused_kernels(enabled):
            _, scale = OPS.binary_auto(t, use_01, False, None)
        np.testing.assert_array_equal(scale.flatten().numpy(), want)


def test_ternary_iterations_follow_the_documented_order():
    # One iteration of ternary "auto" (float64), transcribed: s = 2 max|x| / 3, keep |s round(x/s)|
    # >= s/2, s = lsq in the documented order.
    rng = np.random.default_rng(8)
    x = rng.standard_normal((100, 517)) * 10.0 ** rng.integers(-6, 6, (100, 517))
    s = np.abs(x).max(axis=1, keepdims=True) * 2 / 3
    with np.errstate(divide="ignore", invalid="ignore"):
        q = (np.abs(s * np.round(x / s)) >= s / 2) * np.sign(x)
    n = x.shape[1]
    want = (lane_ordered_sum(x * q) / n) / ((q * q).sum(axis=1) / n + 1e-7)
    t = torch.from_numpy(x)
    for enabled in (True, False):
        with heteroq.ops.fused_kernels(enabled):
            out, scale = OPS.ternary_auto(t, False, 1, None)
        np.testing.assert_array_equal(scale.flatten().numpy(), want)
        np.testing.assert_array_equal(out.numpy(), want[:, None] * q + 0.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ternary_thresholds_at_the_boundaries(dtype):
    # Elements within a few ulps of the code boundary s / 2 (including exact ties, which round to
    # 0): the fused kernel's threshold must keep exactly what |s round(x / s)| >= s / 2 keeps.
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    rows = []
    rng = np.random.default_rng(3)
    for m in rng.uniform(0.5, 4.0, 40).astype(np_dtype).tolist() + [1.0, 1.5, 3.0, 0.75]:
        m = np_dtype(m)
        s0 = np_dtype(np_dtype(2) * m) / np_dtype(3)  # the first scale of a row with max m
        row = [m, -m]
        for base in (s0 / np_dtype(2), np_dtype(2.0) ** np.round(np.log2(s0)) / np_dtype(2)):
            v = np_dtype(base)
            for _ in range(6):
                v = np.nextafter(v, np_dtype(0))
            for _ in range(12):
                row += [v, -v]
                v = np.nextafter(v, np_dtype(np.inf))
        rows.append(np.array(row, dtype=np_dtype))
    x = torch.from_numpy(np.stack(rows))
    for po2 in (True, False):
        for u in (1, 2, 5):
            check("ternary", x, po2, u)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_subnormal_and_extreme_scales(dtype):
    tiny = torch.finfo(dtype).tiny * torch.finfo(dtype).eps  # the smallest subnormal
    big = torch.finfo(dtype).max
    rows = [
        [tiny, 0.0, -tiny, tiny],           # s = 2 tiny / 3 rounds to tiny: s / 2 == 0, keeps all
        [3 * tiny, tiny, -2 * tiny, 0.0],
        [7 * tiny, -5 * tiny, tiny, 3 * tiny],
        [4 * tiny, 2 * tiny, -2 * tiny, tiny],  # s = 3 tiny: s / 2 rounds up, 2 tiny is kept
        [5 * tiny, -2 * tiny, 3 * tiny, tiny],
        [1e-3 * 2 ** -120, 2 ** -126, -2 ** -127, 0.0],
        [big, -big, big / 3, 0.0],          # 2 max overflows: s = inf, nothing kept, then 0
        [big / 2, big / 5, -big / 7, 1.0],
        [0.0, -0.0, 0.0, -0.0],
        [math.inf, 1.0, 2.0, 3.0],
        [-math.inf, -1.0, 0.0, 2.0],
        [math.nan, 1.0, -1.0, 0.0],
    ]
    x = torch.tensor(rows, dtype=dtype)
    for po2 in (True, False):
        check_all(x, po2, unrolls=(0, 1, 2, 5, 30))
        check_all(x.repeat(1, 9), po2, unrolls=(5,))  # rows of 36: vector loops and tails


def test_rows_that_iterate_longer():
    # Rows of 64 values reach ternary's fixed point after different numbers of iterations (or
    # none within the unrolls, for "auto"): rows leave the iteration at different times in a block.
    g = torch.Generator().manual_seed(2)
    for dtype in (torch.float32, torch.float64):
        x = torch.randn(3000, 64, generator=g, dtype=dtype)
        x[::3] = x[::3] ** 3
        for po2 in (True, False):
            for u in (3, 5, 40):
                check("ternary", x, po2, u)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_random_arguments(dtype):
    rng = np.random.default_rng(5)
    for trial in range(60):
        rank = int(rng.integers(2, 5))
        shape = tuple(int(rng.integers(1, 12)) for _ in range(rank))
        x = torch.from_numpy(rng.standard_normal(shape) * rng.choice([1e-3, 0.3, 1.0, 50.0])).to(dtype)
        keep = sorted(set(int(a) for a in rng.integers(0, rank, int(rng.integers(1, rank)))))
        po2 = bool(rng.integers(0, 2))
        check("binary", x, bool(rng.integers(0, 2)), po2, keep)
        check("ternary", x, po2, int(rng.integers(0, 8)), keep)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_po2_rounding_boundaries(dtype):
    # Scales near sqrt(2) 2^k: whether log(s + eps) / ln 2 rounds up depends on the last bit of the
    # logarithm (ATen's vectorized log vs libm), so the fused kernels must round where at::log does.
    # binary: a one-element row's scale is |x| / (1 + 1e-7); ternary: its first scale is 2 |x| / 3.
    bases = [f * math.sqrt(2.0) * 2.0 ** k for k in range(-20, 41) for f in (1.0, 1.5)]
    x = values_near(bases, dtype).view(-1, 1)
    for u in (0, 1, 5):
        check("ternary", x, True, u)
    check("binary", x, False, True)
    check("binary", x, True, True)
    check("binary", x.view(-1, 2), False, True)


def test_thread_count_does_not_change_the_result():
    x = channels((512, 1000), torch.float32, seed=3)
    before = torch.get_num_threads()
    try:
        for op, args in (("binary", (False, False, None)), ("ternary", (False, 5, None)),
                         ("ternary", (True, 5, None))):
            torch.set_num_threads(1)
            o1, s1 = call(op, x, *args)
            torch.set_num_threads(2)
            o2, s2 = call(op, x, *args)
            with heteroq.ops.fused_kernels(False):
                og, sg = call(op, x, *args)
            assert_bitwise_equal(o1, o2, op)
            assert_bitwise_equal(s1, s2, op)
            assert_bitwise_equal(o2, og, op)
            assert_bitwise_equal(s2, sg, op)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("po2", [True, False])
def test_fallback_cases(po2):
    # Rank 1 (one least-squares scale per element), rank 0, empty, every axis kept.
    for x, axes in [(torch.randn(37), None), (torch.randn(()), None), (torch.randn(0, 4), None),
                    (torch.randn(3, 0), None), (torch.randn(3, 4), [0, 1])]:
        check_all(x, po2, axes)
    for dtype in (torch.float16, torch.bfloat16):  # both compute in float32
        x = torch.randn(12, 40).to(dtype)
        for out, scale in (check("binary", x, True, po2), check("ternary", x, po2, 5)):
            assert out.dtype == dtype and scale.dtype == torch.float32


def test_every_axis_kept_gives_per_element_scales():
    # QKeras's K.max / K.mean over axis=[] reduce nothing: each element is its own channel, as in a
    # column of one-element rows (whose po2 scales are the same; "auto" scales of one-element rows
    # are ratios taken in double, per-element ones in the dtype as QKeras).
    x = torch.tensor([[0.3, -0.9], [2.0, 0.1]])
    for enabled in (True, False):
        with heteroq.ops.fused_kernels(enabled):
            for op, args in (("binary", (False, True)), ("binary", (True, True)),
                             ("ternary", (True, 5)), ("ternary", (True, 1))):
                out, scale = call(op, x, *args, [0, 1])
                out1, scale1 = call(op, x.reshape(4, 1), *args, None)
                assert scale.shape == (2, 2)
                assert torch.equal(out.flatten(), out1.flatten())
                assert torch.equal(scale.flatten(), scale1.flatten())
            out, scale = call("binary", x, False, False, [0, 1])
            assert torch.equal(scale, x.abs() / (1 + torch.tensor(1e-7)))
            assert torch.equal(out, scale * x.sign())


def test_autograd_and_quantizer_classes_use_the_fused_kernels():
    w = channels((16, 50), torch.float32, seed=9)[8:]  # finite rows
    for q in (heteroq.binary(alpha="auto_po2"), heteroq.binary(use_01=True, alpha="auto"),
              heteroq.ternary(alpha="auto_po2"), heteroq.ternary(alpha="auto")):
        x = w.clone().requires_grad_()
        y = q(x)
        y.sum().backward()
        assert torch.equal(x.grad, torch.ones_like(w))
        assert not q.scale.requires_grad
        with heteroq.ops.fused_kernels(False):
            y_generic = q(w)
        assert_bitwise_equal(y.detach(), y_generic)
    # The op itself under autograd: identity for the output, no gradient for the scale.
    x = w.clone().requires_grad_()
    out, scale = OPS.ternary_auto(x, True, 5, None)
    assert out.requires_grad and not scale.requires_grad
    (out * 3).sum().backward()
    assert torch.equal(x.grad, torch.full_like(w, 3.0))


def test_same_errors():
    x = torch.randn(4, 5)
    for enabled in (True, False):
        with heteroq.ops.fused_kernels(enabled):
            with pytest.raises(ValueError, match="`scale_axis` 2 is out of range"):
                OPS.binary_auto(x, False, True, [2])
            with pytest.raises(ValueError, match="`scale_axis` -3 is out of range"):
                OPS.ternary_auto(x, True, 5, [-3])
            with pytest.raises(ValueError, match="number_of_unrolls"):
                OPS.ternary_auto(x, True, 101, None)
            with pytest.raises(ValueError, match="number_of_unrolls"):
                OPS.ternary_auto(x, True, -1, None)
            with pytest.raises(TypeError):
                OPS.binary_auto(torch.ones(4, 5, dtype=torch.int32), False, True, None)
            with pytest.raises(TypeError):
                OPS.ternary_auto(torch.ones(4, 5, dtype=torch.int32), True, 5, None)
