# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""quantized_bits with alpha "auto" / "auto_po2" against a literal NumPy transcription of QKeras."""
import numpy as np
import pytest
import torch

import heteroq

f32 = np.float32


def qkeras_auto(x, bits, integer, keep_negative, po2, keep_axes=(0,)):
    """QKeras quantized_bits.__call__ with a string alpha (quantizers.py at commit 78ea90f, the
    reference's version: the codes are recomputed with the final scale), in float32.

    keep_axes: the channel axes (QKeras keeps the last axis; heteroq's default is axis 0)."""
    x = x.astype(f32)
    m = f32(2.0 ** (bits - keep_negative))
    m_i = f32(2.0 ** integer)
    eps = f32(1e-7)
    rank = x.ndim
    axis = tuple(d for d in range(rank) if d not in keep_axes) if rank > 1 else (0,)
    x = x / m_i
    levels = f32((2 ** (bits - 1) - 1) * 2)
    scale = (np.max(np.abs(x), axis=axis, keepdims=True) * f32(2)) / levels

    def to_po2(s):
        return np.power(f32(2), np.round(np.log(s + eps) / f32(np.log(2.0)))).astype(f32)

    def codes(s):
        v = np.floor(np.abs(x) / s + f32(0.5))
        return np.sign(x) * np.where(v < levels / 2, v, np.ones_like(v) * levels / 2)

    if po2:
        scale = to_po2(scale)
        for _ in range(5):
            z = codes(scale)
            if rank > 1:
                qx = np.mean(x * z, axis=axis, keepdims=True, dtype=f32)
                qq = np.mean(z * z, axis=axis, keepdims=True, dtype=f32)
            else:  # rank 1: no averaging, one scale per element
                qx, qq = x * z, z * z
            scale = to_po2(qx / (qq + eps))
    z = codes(scale)
    scale = scale * m
    xq = scale * (m_i * z / m)
    return xq.astype(f32) + f32(0), scale.astype(f32)


CASES = [((16,), 0), ((8, 5), 0), ((6, 3, 3, 3), 0), ((4, 7), 1), ((5, 6, 2), (0, 2))]


@pytest.mark.parametrize("po2", [True, False])
@pytest.mark.parametrize("shape,axes", CASES)
def test_matches_qkeras_transcription(po2, shape, axes):
    rng = np.random.default_rng(abs(hash((shape, po2))) % 2**32)
    keep = (axes,) if isinstance(axes, int) else axes
    for trial in range(40):
        x = (rng.standard_normal(shape) * rng.choice([0.01, 0.3, 1.0, 7.0])).astype(f32)
        bits, integer = int(rng.integers(2, 12)), int(rng.integers(-2, 4))
        keep_negative = bool(rng.integers(0, 2))
        want, want_scale = qkeras_auto(x, bits, integer, keep_negative, po2, keep)
        out, scale = heteroq.ops.quantized_bits_auto(torch.from_numpy(x), bits, integer,
                                                     keep_negative, po2, list(keep))
        np.testing.assert_array_equal(out.numpy(), want)
        np.testing.assert_array_equal(scale.numpy(), want_scale)


def test_quantizer_class_auto_modes():
    w = torch.tensor([[0.3, -0.9], [2.0, 0.1]])
    q = heteroq.quantized_bits(4, 0, alpha="auto_po2")
    assert q.symmetric is True and q.to_string() == "quantized_bits(4,0,1,alpha='auto_po2')"
    assert q(w).tolist() == [[0.25, -0.875], [1.75, 0.0]]  # hand-computed: tests/cpp
    assert q.scale.tolist() == [[1.0], [2.0]]
    q1 = heteroq.quantized_bits(4, 0, alpha="auto_po2", scale_axis=1)
    assert q1.get_config()["scale_axis"] == [1]
    assert torch.equal(q1(w), q(w.t()).t()) and q1.scale.shape == (1, 2)
    # Gradient: identity; scale: no gradient.
    x = w.clone().requires_grad_()
    q(x).sum().backward()
    assert x.grad.tolist() == [[1.0, 1.0], [1.0, 1.0]] and not q.scale.requires_grad
    # "auto" on an all-zero channel: codes 0 (QKeras divides 0 by 0 and returns NaN).
    z = heteroq.quantized_bits(4, 0, alpha="auto")(torch.tensor([[0.0, 0.0], [1.0, -0.5]]))
    assert z[0].tolist() == [0.0, 0.0] and not torch.isnan(z).any()


def test_auto_in_layers_script_and_qnoise():
    fc = heteroq.nn.QDense(5, 3, kernel_quantizer="quantized_bits(4,0,alpha='auto_po2')")
    x = torch.randn(2, 5)
    y = fc(x)
    assert fc.kernel_quantizer.scale.shape == (3, 1)
    scripted = torch.jit.script(fc)
    assert torch.equal(scripted(x), y)
    q = heteroq.quantized_bits(4, 0, alpha="auto", qnoise_factor=0.5)
    w = torch.randn(3, 4)
    full = heteroq.quantized_bits(4, 0, alpha="auto")(w)
    assert torch.equal(q(w), w + (full - w) * f32(0.5).item())


def test_fixed_alpha_scale_attribute():
    assert heteroq.quantized_bits(4, 0, alpha=0.5).scale.item() == 0.5
    assert heteroq.quantized_bits(4, 0).scale.item() == 1.0
