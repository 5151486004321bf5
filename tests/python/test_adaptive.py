# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""QAdaptiveActivation: QKeras's _get_integer_bits, the moving statistics, delays, per-channel."""
import math

import numpy as np
import pytest
import torch

import heteroq
from heteroq.nn import QAdaptiveActivation


def np_integer_bits(min_value, max_value, bits, symmetric, keep_negative, is_clipping):
    """A NumPy transcription of QKeras's quantizers._get_integer_bits, in float32."""
    f = np.float32
    min_value = np.asarray(min_value, f)
    max_value = np.asarray(max_value, f)
    if not keep_negative:
        min_value = np.maximum(min_value, f(0))
        max_value = np.maximum(max_value, f(0))
    unsigned_bits = bits - int(keep_negative)
    with np.errstate(divide="ignore"):
        min_log2 = (np.log(np.abs(min_value)) / f(np.log(2.0))).astype(f)
        max_log2 = (np.log(np.abs(max_value)) / f(np.log(2.0))).astype(f)
    min_int = np.where(min_log2 > 0, min_log2, f(0))
    max_int = np.where(max_log2 > 0, max_log2, f(0))
    if is_clipping:
        min_int, max_int = np.round(min_int), np.round(max_int)
    else:
        min_int, max_int = np.ceil(min_int), np.ceil(max_int)
        max_po2 = (f(2) ** max_int - f(2) ** np.minimum(max_int - unsigned_bits, 0)).astype(f)
        max_int = np.where(max_value <= max_po2, max_int, max_int + 1)
        if symmetric:
            min_po2 = (-f(2) ** min_int + f(2) ** np.minimum(min_int - unsigned_bits, 0)).astype(f)
            min_int = np.where(min_po2 <= min_value, min_int, min_int + 1)
    return np.minimum(unsigned_bits, np.maximum(min_int, max_int)).astype(np.int32)


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("keep_negative", [False, True])
@pytest.mark.parametrize("is_clipping", [False, True])
def test_integer_bits_match_qkeras(bits, symmetric, keep_negative, is_clipping):
    g = torch.Generator().manual_seed(bits * 8 + symmetric * 4 + keep_negative * 2 + is_clipping)
    scale = torch.exp2(torch.randint(-4, 9, (400,), generator=g).float())
    lo = -torch.rand(400, generator=g) * scale
    hi = torch.rand(400, generator=g) * scale
    # Exact powers of two and the edges 2^i - 2^(i-ub) test the boundaries.
    edges = torch.tensor([0.0, 1.0, 2.0, 4.0, 0.5, 1 - 2.0 ** -(bits - 1), 2 - 2.0 ** (1 - bits),
                          3.5, 7.75, 1e-30, 1e30])
    lo = torch.cat([lo, -edges])
    hi = torch.cat([hi, edges])
    got = torch.ops.heteroq._adaptive_integer_bits(lo, hi, bits, symmetric, keep_negative,
                                                   is_clipping)
    assert got.dtype == torch.int32
    want = np_integer_bits(lo.numpy(), hi.numpy(), bits, symmetric, keep_negative, is_clipping)
    np.testing.assert_array_equal(got.numpy(), want)


def reference_run(xs, activation, bits, *, delay=0, freeze=None, decay=0.9, slope=0.0,
                  bound=None, symmetric=True, po2_rounding=False):
    """The layer's training calls written out with heteroq quantizers and NumPy statistics."""
    keep_negative = activation == "quantized_bits" or slope != 0.0
    ema_min = ema_max = np.float32(0)
    integer = 0
    step = -1
    outs = []
    rate = np.float32(1) - np.float32(decay)
    for x in xs:
        step += 1
        q = 1.0 if step >= delay else 0.0
        if activation == "quantized_bits":
            spec = f"quantized_bits({bits},{{}},symmetric={int(symmetric)},alpha=1"
        else:
            spec = f"quantized_relu({bits},{{}},negative_slope={slope},is_quantized_clip=0"
            if bound is not None:
                spec += f",relu_upper_bound={bound}"
        outs.append(heteroq.get_quantizer(spec.format(integer) + f",qnoise_factor={q})")(x))
        if freeze is None or step <= freeze:
            act = heteroq.get_quantizer(spec.format(0) + ",qnoise_factor=0)")(x).numpy()
            ema_min = np.float32(ema_min - (ema_min - act.min()) * rate)
            ema_max = np.float32(ema_max - (ema_max - act.max()) * rate)
            integer = int(np_integer_bits(ema_min, ema_max, bits, symmetric, keep_negative,
                                          po2_rounding))
    return outs, integer, ema_min, ema_max


@pytest.mark.parametrize("activation,kwargs", [
    ("quantized_relu", {}),
    ("quantized_relu", {"slope": 0.25}),
    ("quantized_relu", {"bound": 6.0}),
    ("quantized_bits", {}),
    ("quantized_bits", {"symmetric": False, "po2_rounding": True}),
])
def test_training_calls_match_reference(activation, kwargs):
    torch.manual_seed(0)
    xs = [torch.randn(64) * (1 + 2 * i) for i in range(8)]
    outs, integer, ema_min, ema_max = reference_run(xs, activation, 6, delay=2, freeze=5,
                                                    decay=0.7, **kwargs)
    layer = QAdaptiveActivation(activation, 6, quantization_delay=2, ema_freeze_delay=5,
                                ema_decay=0.7, symmetric=kwargs.get("symmetric", True),
                                po2_rounding=kwargs.get("po2_rounding", False),
                                relu_neg_slope=kwargs.get("slope", 0.0),
                                relu_upper_bound=kwargs.get("bound"))
    for x, want in zip(xs, outs):
        assert torch.equal(layer(x), want)
    assert layer.step.item() == len(xs) - 1
    assert layer.integer_bits.item() == integer
    assert layer.ema_min.item() == pytest.approx(float(ema_min), rel=1e-6, abs=1e-7)
    assert layer.ema_max.item() == pytest.approx(float(ema_max), rel=1e-6, abs=1e-7)
    # The integer bits adapted to the growing range.
    assert integer > 0


def test_delay_freeze_and_eval():
    x = torch.linspace(-1, 5, 13)
    layer = QAdaptiveActivation("quantized_relu", 6, quantization_delay=2, ema_decay=0.5,
                                ema_freeze_delay=3)
    # Steps 0 and 1: unquantized relu (the integer bits are still 0, which would clip at 1).
    assert torch.equal(layer(x), torch.relu(x))
    assert torch.equal(layer(x), torch.relu(x))
    y = layer(x)  # step 2: quantized with the integer bits from steps 0 and 1
    assert layer.integer_bits.item() == 3
    assert not torch.equal(y, torch.relu(x))
    layer(x)  # step 3: last update
    frozen = [t.clone() for t in (layer.ema_min, layer.ema_max, layer.integer_bits)]
    layer(x * 100)  # step 4: frozen
    assert all(torch.equal(a, b) for a, b in zip(frozen, (layer.ema_min, layer.ema_max,
                                                           layer.integer_bits)))
    # Evaluation: full quantization, no step, no statistics (QKeras updates them: not copied).
    layer.eval()
    step = layer.step.clone()
    out = layer(x * 100)
    assert torch.equal(layer.step, step)
    assert torch.equal(out, layer.quantizer()(x * 100))
    assert layer.quantizer().to_string() == "quantized_relu(6,3,is_quantized_clip=0)"


def test_per_channel_matches_per_channel_quantizers():
    torch.manual_seed(1)
    x = torch.randn(8, 3, 4, 4) * torch.tensor([0.1, 3.0, 40.0]).view(1, 3, 1, 1)
    layer = QAdaptiveActivation("quantized_bits", 8, per_channel=True, num_channels=3,
                                ema_decay=0.0)
    layer(x)  # decay 0: the statistics are the batch's
    want_min = x.transpose(0, 1).reshape(3, -1).min(1).values
    want_max = x.transpose(0, 1).reshape(3, -1).max(1).values
    assert torch.equal(layer.ema_min, want_min) and torch.equal(layer.ema_max, want_max)
    want_bits = np_integer_bits(want_min.numpy(), want_max.numpy(), 8, True, True, False)
    np.testing.assert_array_equal(layer.integer_bits.numpy(), want_bits)
    assert len(set(want_bits.tolist())) == 3
    layer.eval()
    y = layer(x)
    for c in range(3):
        assert torch.equal(y[:, c], layer.quantizer(c)(x[:, c]))


def test_gradient_and_script_and_state_dict():
    layer = QAdaptiveActivation("quantized_relu", 4, ema_decay=0.5)
    x = torch.linspace(-2, 2, 9, requires_grad=True)
    layer(x.detach())
    y = layer(x)
    y.sum().backward()
    assert x.grad is not None and torch.equal(x.grad, (x.detach() > 0).float())
    scripted = torch.jit.script(QAdaptiveActivation("quantized_relu", 4, ema_decay=0.5))
    plain = QAdaptiveActivation("quantized_relu", 4, ema_decay=0.5)
    xs = torch.linspace(-3, 9, 50)
    for _ in range(3):
        assert torch.equal(scripted(xs), plain(xs))
    assert torch.equal(scripted.integer_bits, plain.integer_bits)
    fresh = QAdaptiveActivation("quantized_relu", 4, ema_decay=0.5)
    fresh.load_state_dict(plain.state_dict())
    fresh.eval()
    plain.eval()
    assert torch.equal(fresh(xs), plain(xs))
    assert set(plain.state_dict()) == {"ema_min", "ema_max", "integer_bits", "step"}


def test_current_step_and_repr():
    layer = QAdaptiveActivation("quantized_bits", 8, current_step=9, quantization_delay=10)
    x = torch.linspace(-0.3, 0.3, 7)
    y = layer(x)  # step 10: quantized
    assert layer.step.item() == 10
    assert torch.equal(y, heteroq.get_quantizer("quantized_bits(8,0,symmetric=1,alpha=1)")(x))
    assert "total_bits=8" in repr(layer)


@pytest.mark.parametrize("args,kwargs,match", [
    (("quantized_relu(8)", 8), {}, "without arguments"),
    (("quantized_tanh", 8), {}, "quantized_bits"),
    (("quantized_relu", 8), {"per_channel": True}, "num_channels"),
    (("quantized_relu", 8), {"ema_decay": 1.5}, "ema_decay"),
    (("quantized_relu", 8), {"quantization_delay": -1}, "quantization_delay"),
    (("quantized_relu", 0), {}, "bits"),
    (("quantized_relu", 8), {"relu_neg_slope": 0.3}, "power of two"),
])
def test_bad_arguments(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        QAdaptiveActivation(*args, **kwargs)


def test_channel_mismatch():
    layer = QAdaptiveActivation("quantized_bits", 8, per_channel=True, num_channels=3)
    with pytest.raises(ValueError, match="3 channels"):
        layer(torch.randn(2, 4))
    layer.eval()
    with pytest.raises(ValueError, match="3 channels"):
        layer(torch.randn(2, 4))
    assert math.isfinite(layer.ema_max.sum().item())
