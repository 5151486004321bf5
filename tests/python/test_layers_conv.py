# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""Convolution, batch-norm and pooling layers: forward equals the plain torch computation with the
quantizers, gradients reach every parameter, C++ == Python, scripting, save/load, training."""
import io
import json
import subprocess

import pytest
import torch
import torch.nn.functional as F

import heteroq
from heteroq import get_quantizer
from heteroq import nn as qnn
from heteroq.nn import (QAvgPool2d, QBatchNorm1d, QBatchNorm2d, QConv1d, QConv2d,
                        QConvTranspose2d, QDepthwiseConv2d, QGlobalAvgPool2d, QSeparableConv1d,
                        QSeparableConv2d)

Q = "quantized_bits(6,2,alpha=1)"


def q(t, spec=Q):
    return get_quantizer(spec).eval()(t)


def test_conv_layers_equal_torch_ops_with_quantized_parameters():
    torch.manual_seed(0)
    x2, x1 = torch.randn(2, 4, 9, 9), torch.randn(2, 4, 11)
    c2 = QConv2d(4, 6, 3, stride=2, padding=1, groups=2, kernel_quantizer=Q, bias_quantizer=Q)
    assert torch.equal(c2(x2), F.conv2d(x2, q(c2.weight), q(c2.bias), 2, 1, 1, 2))
    c1 = QConv1d(4, 5, 3, dilation=2, kernel_quantizer=Q, bias_quantizer=Q)
    assert torch.equal(c1(x1), F.conv1d(x1, q(c1.weight), q(c1.bias), 1, 0, 2))
    ct = QConvTranspose2d(4, 3, 3, stride=2, output_padding=1, kernel_quantizer=Q, bias_quantizer=Q)
    assert torch.equal(ct(x2), F.conv_transpose2d(x2, q(ct.weight), q(ct.bias), 2, 0, 1))
    dw = QDepthwiseConv2d(4, 3, depth_multiplier=2, depthwise_quantizer=Q, bias_quantizer=Q)
    assert dw.weight.shape == (8, 1, 3, 3) and dw.depthwise_quantizer is dw.kernel_quantizer
    assert torch.equal(dw(x2), F.conv2d(x2, q(dw.weight), q(dw.bias), groups=4))
    sc = QSeparableConv2d(4, 5, 3, depth_multiplier=2, depthwise_quantizer=Q,
                          pointwise_quantizer="quantized_bits(4,0,alpha=1)", bias_quantizer=Q)
    mid = F.conv2d(x2, q(sc.depthwise.weight), None, groups=4)
    ref = F.conv2d(mid, q(sc.pointwise.weight, "quantized_bits(4,0,alpha=1)"), q(sc.pointwise.bias))
    assert sc.depthwise.bias is None and torch.equal(sc(x2), ref)
    s1 = QSeparableConv1d(4, 5, 3, depthwise_quantizer=Q, pointwise_quantizer=Q)
    assert s1(x1).shape == (2, 5, 9)
    # Without quantizers the layers are torch's.
    plain = QConv2d(4, 6, 3)
    assert torch.equal(plain(x2), F.conv2d(x2, plain.weight, plain.bias))


@pytest.mark.parametrize("make,x", [
    (lambda: QConv2d(3, 4, 3, kernel_quantizer=Q, bias_quantizer=Q), torch.randn(2, 3, 6, 6)),
    (lambda: QConv1d(3, 4, 3, kernel_quantizer=Q, bias_quantizer=Q), torch.randn(2, 3, 6)),
    (lambda: QConvTranspose2d(3, 4, 3, kernel_quantizer=Q, bias_quantizer=Q), torch.randn(2, 3, 6, 6)),
    (lambda: QDepthwiseConv2d(3, 3, depthwise_quantizer=Q, bias_quantizer=Q), torch.randn(2, 3, 6, 6)),
    (lambda: QSeparableConv2d(3, 4, 3, depthwise_quantizer=Q, pointwise_quantizer=Q,
                              bias_quantizer=Q), torch.randn(2, 3, 6, 6)),
    (lambda: QBatchNorm2d(3, gamma_quantizer="quantized_relu_po2(6,2048)",
                          beta_quantizer="quantized_po2(5)"), torch.randn(4, 3, 5, 5)),
    (lambda: QBatchNorm1d(3, inverse_quantizer="quantized_bits(8,3,alpha=1)"), torch.randn(6, 3)),
])
def test_gradients_script_and_save_load(make, x):
    torch.manual_seed(1)
    layer = make()
    layer(x).square().sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    layer.eval()
    scripted = torch.jit.script(layer)
    assert torch.equal(scripted(x), layer(x))
    buf = io.BytesIO()
    torch.save(layer.state_dict(), buf)
    torch.manual_seed(2)
    other = make().eval()
    buf.seek(0)
    other.load_state_dict(torch.load(buf))
    assert torch.equal(other(x), layer(x))


def test_batch_norm_matches_qkeras_formula_and_torch_without_quantizers():
    torch.manual_seed(3)
    x = torch.randn(8, 3, 4, 4) * 2 + 1
    specs = dict(gamma_quantizer="quantized_relu_po2(6,2048)", beta_quantizer="quantized_po2(5)",
                 mean_quantizer="quantized_po2(5)",
                 variance_quantizer="quantized_relu_po2(6,quadratic_approximation=True)")
    bn = QBatchNorm2d(3, **specs)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.7, 1.3, 2.2]))
        bn.bias.copy_(torch.tensor([0.1, -0.4, 0.3]))
    y = bn(x)
    m, v = x.mean([0, 2, 3]), x.var([0, 2, 3], unbiased=False)
    inv = torch.rsqrt(q(v, specs["variance_quantizer"]) + 1e-5) * q(bn.weight, specs["gamma_quantizer"])
    shift = q(bn.bias, specs["beta_quantizer"]) - q(m, specs["mean_quantizer"]) * inv
    assert torch.allclose(y, x * inv.view(1, 3, 1, 1) + shift.view(1, 3, 1, 1), rtol=0, atol=1e-6)
    # Running statistics: unquantized, PyTorch's momentum and unbiased variance.
    assert torch.allclose(bn.running_mean, 0.1 * m)
    assert torch.allclose(bn.running_var, 0.9 + 0.1 * x.var([0, 2, 3], unbiased=True))
    # Without quantizers: torch.nn.BatchNorm2d, in training and eval mode.
    ref, plain = torch.nn.BatchNorm2d(3), QBatchNorm2d(3)
    for mode in (True, False):
        ref.train(mode)
        plain.train(mode)
        assert torch.allclose(plain(x), ref(x), atol=1e-5)
    assert torch.allclose(plain.running_var, ref.running_var)
    # The inverse quantizer replaces the gamma and variance quantizers (QKeras).
    bi = QBatchNorm2d(3, inverse_quantizer="quantized_bits(8,3,alpha=1)",
                      gamma_quantizer="quantized_relu_po2(6,2048)").eval()
    inv = q(torch.rsqrt(bi.running_var + 1e-5) * bi.weight, "quantized_bits(8,3,alpha=1)")
    assert torch.allclose(bi(x), x * inv.view(1, 3, 1, 1) + (bi.bias - bi.running_mean * inv).view(1, 3, 1, 1))


def test_pooling_matches_qkeras_formula():
    x = torch.randn(2, 3, 6, 6)
    aq = "quantized_bits(4,0,alpha=1)"  # 1/4 is on the grid, 1/36 is not
    p = QAvgPool2d(2, average_quantizer=aq)
    assert torch.equal(p(x), F.avg_pool2d(x * 4, 2) * q(torch.tensor(0.25), aq))
    p3 = QAvgPool2d(3, average_quantizer=aq, activation="quantized_relu(6,2)")
    assert torch.equal(p3(x), q(F.avg_pool2d(x * 9, 3) * q(torch.tensor(1 / 9), aq), "quantized_relu(6,2)"))
    assert torch.equal(QAvgPool2d(2)(x), F.avg_pool2d(x, 2))
    g = QGlobalAvgPool2d(aq)
    assert torch.equal(g(x), x.sum([2, 3]) * q(torch.tensor(1 / 36), aq))
    assert QGlobalAvgPool2d(keepdim=True)(x).shape == (2, 3, 1, 1)
    assert torch.allclose(QGlobalAvgPool2d()(x), x.mean([2, 3]))


def test_bad_arguments():
    with pytest.raises(ValueError, match="`groups` \\(3\\) must be > 0 and divide"):
        QConv2d(4, 6, 3, groups=3)
    with pytest.raises(ValueError, match="`in_channels` and `out_channels` must be > 0"):
        QConv1d(0, 2, 3)
    with pytest.raises(ValueError, match="depth_multiplier"):
        QDepthwiseConv2d(3, 3, depth_multiplier=0)
    with pytest.raises(ValueError, match="unknown quantizer"):
        QConv2d(3, 4, 3, kernel_quantizer="quantized_bitz(4)")
    with pytest.raises(TypeError, match="expected a heteroq quantizer"):
        QConv2d(3, 4, 3, kernel_quantizer=3)
    with pytest.raises(ValueError, match="expected input of shape \\(N, C, H, W\\)"):
        QBatchNorm2d(3)(torch.randn(2, 3))
    with pytest.raises(ValueError, match="momentum"):
        QBatchNorm2d(3, momentum=2.0)
    with pytest.raises(RuntimeError):  # torch's own shape check
        QConv2d(3, 4, 3)(torch.randn(1, 5, 8, 8))


def test_small_cnn_trains():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        QConv2d(1, 4, 3, padding=1, kernel_quantizer="quantized_bits(4,0,alpha=1)",
                bias_quantizer="quantized_bits(6,2,alpha=1)"),
        QBatchNorm2d(4), heteroq.nn.QActivation("quantized_relu(4,2)"),
        QAvgPool2d(2, average_quantizer="quantized_bits(8,0,alpha=1)"),
        QDepthwiseConv2d(4, 3, padding=1, depthwise_quantizer="quantized_bits(4,0,alpha=1)"),
        QGlobalAvgPool2d(), heteroq.nn.QLinear(4, 2, kernel_quantizer="quantized_bits(4,0,alpha=1)"))
    x = torch.randn(64, 1, 8, 8)
    target = (x.mean([1, 2, 3]) > 0).long()
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


@pytest.fixture(scope="module")
def golden(build_dir):
    exe = build_dir / "tests" / "cpp" / "heteroq_golden"
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    return json.loads(out)["layers"]


def test_layers_identical_to_cpp(golden):
    def fill(m):
        m.eval()
        with torch.no_grad():
            for _, p in m.named_parameters():
                p.copy_(torch.linspace(-0.9, 1.1, p.numel()).view_as(p))
        return m

    x4 = torch.linspace(-3, 3, 2 * 4 * 6 * 6).view(2, 4, 6, 6)
    x3 = torch.linspace(-3, 3, 2 * 4 * 9).view(2, 4, 9)
    bn = fill(QBatchNorm2d(4, gamma_quantizer="quantized_relu_po2(6,2048)",
                           beta_quantizer="quantized_po2(5)", mean_quantizer="quantized_po2(5)",
                           variance_quantizer="quantized_relu_po2(6,quadratic_approximation=1)"))
    bn.running_mean.copy_(torch.linspace(-0.5, 0.5, 4))
    bn.running_var.copy_(torch.linspace(0.5, 2.0, 4))
    fold = fill(qnn.QConv2dBatchNorm(4, 3, 3, kernel_quantizer=Q, bias_quantizer=Q)).train()
    outs = {
        "folded_train": fold(x4),
        "conv2d": fill(QConv2d(4, 6, 3, stride=2, padding=1, kernel_quantizer=Q, bias_quantizer=Q))(x4),
        "conv1d": fill(QConv1d(4, 5, 3, kernel_quantizer=Q, bias_quantizer=Q))(x3),
        "convtranspose2d": fill(QConvTranspose2d(4, 3, 3, stride=2, kernel_quantizer=Q,
                                                 bias_quantizer=Q))(x4),
        "depthwise": fill(QDepthwiseConv2d(4, 3, depth_multiplier=2, depthwise_quantizer=Q,
                                           bias_quantizer=Q))(x4),
        "separable": fill(QSeparableConv2d(4, 5, 3, depthwise_quantizer=Q, pointwise_quantizer=Q,
                                           bias_quantizer=Q))(x4),
        "batchnorm": bn(x4),
        "avgpool": QAvgPool2d(2, average_quantizer="quantized_bits(8,0,alpha=1)",
                              activation="quantized_relu(6,2)")(x4),
        "globalavgpool": QGlobalAvgPool2d("quantized_bits(8,0,alpha=1)")(x4),
    }
    for name, y in outs.items():
        bits = [v & 0xFFFFFFFF for v in y.detach().contiguous().view(torch.int32).flatten().tolist()]
        assert bits == golden[name], name


@pytest.mark.parametrize("mode", ["ema_stats_folding", "batch_stats_folding"])
def test_folded_conv_batch_norm(mode):
    torch.manual_seed(4)
    x = torch.randn(16, 3, 6, 6)
    f = qnn.QConv2dBatchNorm(3, 4, 3, padding=1, folding_mode=mode,
                             kernel_quantizer="quantized_bits(6,2,alpha=1)",
                             bias_quantizer="quantized_bits(8,3,alpha=1)")
    with torch.no_grad():
        f.gamma.copy_(torch.tensor([0.5, 1.5, 2.0, 0.8]))
        f.beta.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
    y = f(x)
    # The QKeras formulas, written out with torch ops.
    z = F.conv2d(x, f.weight, f.bias, padding=1)
    m, v = z.mean([0, 2, 3]), z.var([0, 2, 3], unbiased=False)
    mv = 0.9 + 0.1 * z.var([0, 2, 3], unbiased=True)
    assert torch.allclose(f.running_var, mv) and torch.allclose(f.running_mean, 0.1 * m)
    s = mv if mode == "ema_stats_folding" else v
    w = q(f.weight * (f.gamma / torch.sqrt(s + 1e-5)).view(4, 1, 1, 1))
    b = q(f.beta + f.gamma * (f.bias - m) / torch.sqrt(v + 1e-5), "quantized_bits(8,3,alpha=1)")
    ref = F.conv2d(x, w, None, padding=1)
    if mode == "ema_stats_folding":
        ref = ref * (torch.sqrt(mv + 1e-5) / torch.sqrt(v + 1e-5)).view(1, 4, 1, 1)
    assert torch.allclose(y, ref + b.view(1, 4, 1, 1), atol=1e-5)
    # Eval: folded with the running statistics; get_folded_weights as QKeras.
    f.eval()
    fw, fb = f.get_folded_weights()
    assert torch.allclose(fw, f.weight * (f.gamma / torch.sqrt(f.running_var + 1e-5)).view(4, 1, 1, 1))
    assert torch.equal(f(x), F.conv2d(x, q(fw), None, padding=1)
                       + q(fb, "quantized_bits(8,3,alpha=1)").view(1, 4, 1, 1))


def test_folded_layers_match_float_conv_bn_and_freeze():
    torch.manual_seed(5)
    x = torch.randn(16, 3, 6, 6)
    fine = "quantized_bits(24,4,alpha=1)"  # fine enough to compare with the float pair
    f = qnn.QConv2dBatchNorm(3, 4, 3, kernel_quantizer=fine)
    conv, bn = torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)
    conv.load_state_dict({"weight": f.weight, "bias": f.bias})
    assert torch.allclose(f(x), bn(conv(x)), atol=1e-4)
    f.eval(), bn.eval()
    assert torch.allclose(f(x), bn(conv(x)), atol=1e-4)
    # ema_freeze_delay: the statistics stop moving after that many training steps.
    g = qnn.QConv2dBatchNorm(3, 4, 3, kernel_quantizer=fine, ema_freeze_delay=2)
    for _ in range(2):
        g(x)
    frozen = g.running_mean.clone()
    g(x * 3)
    assert torch.equal(g.running_mean, frozen) and int(g.num_batches_tracked) == 3
    lin = qnn.QLinearBatchNorm(5, 3, kernel_quantizer=fine)
    xl = torch.randn(32, 5)
    ref_l, ref_bn = torch.nn.Linear(5, 3), torch.nn.BatchNorm1d(3)
    ref_l.load_state_dict({"weight": lin.weight, "bias": lin.bias})
    assert torch.allclose(lin(xl), ref_bn(ref_l(xl)), atol=1e-4)
    lin(xl).sum().backward()
    assert all(p.grad is not None for p in lin.parameters())
    with pytest.raises(ValueError, match="folding_mode"):
        qnn.QConv2dBatchNorm(3, 4, 3, folding_mode="fold")
