# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""model_quantize: QKeras's conversion rules on PyTorch models."""
import pytest
import torch
import torch.nn.functional as F

import heteroq
from heteroq import model_quantize
from heteroq import nn as qnn

K4 = "quantized_bits(4,0,alpha=1)"


def float_cnn():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
        torch.nn.AvgPool2d(2), torch.nn.Conv2d(4, 8, 3, groups=4), torch.nn.Tanh(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 3),
        torch.nn.Softmax(-1))


def test_class_name_and_default_keys():
    cfg = {"QConv2D": {"kernel_quantizer": K4, "bias_quantizer": "quantized_bits(8,3,alpha=1)"},
           "QDepthwiseConv2D": {"depthwise_quantizer": heteroq.quantized_bits(3, 0, alpha=1)},
           "QBatchNormalization": {"gamma_quantizer": "quantized_relu_po2(6,2048)"},
           "8": {"kernel_quantizer": {"class_name": "quantized_bits",
                                      "config": {"bits": 6, "integer": 0, "alpha": 1}}},
           "QAveragePooling2D": {"average_quantizer": "quantized_bits(8,0,alpha=1)"},
           "QActivation": {"relu": "quantized_relu(4,1)"}}
    q = model_quantize(float_cnn(), cfg, activation_bits=5)
    types = [type(m).__name__ for m in q]
    assert types == ["QConv2d", "QBatchNorm2d", "QActivation", "QAvgPool2d", "QDepthwiseConv2d",
                     "QActivation", "AdaptiveAvgPool2d", "Flatten", "QLinear", "Softmax"]
    assert q[0].kernel_quantizer.to_string() == "quantized_bits(4,0,0,alpha=1.0)"
    assert q[4].depth_multiplier == 2 and q[4].kernel_quantizer.bits == 3
    assert q[8].kernel_quantizer.bits == 6 and q[8].bias_quantizer is None
    assert q[2].quantizer.to_string() == "quantized_relu(4,1)"      # the {"relu": ...} entry
    assert q[5].quantizer.to_string() == "quantized_tanh(5)"        # activation_bits default
    # "default" applies to every layer without a name or class entry.
    q2 = model_quantize(float_cnn(), {"default": {"kernel_quantizer": K4,
                                                 "depthwise_quantizer": K4,
                                                 "activation_quantizer": "quantized_relu(3,0)",
                                                 "average_quantizer": "quantized_bits(8,0,alpha=1)"}})
    assert [type(m).__name__ for m in q2][:7] == [
        "QConv2d", "BatchNorm2d", "QActivation", "QAvgPool2d", "QDepthwiseConv2d", "QActivation",
        "QGlobalAvgPool2d"]
    # A layer-name key wins over the class key; without a kernel quantizer the layer stays float.
    q3 = model_quantize(float_cnn(), {"QConv2D": {"kernel_quantizer": K4}, "0": {}})
    assert type(q3[0]) is torch.nn.Conv2d and isinstance(q3[4], torch.nn.Conv2d)


def test_transfer_weights_and_outputs():
    f = float_cnn().eval()
    cfg = {"QConv2D": {"kernel_quantizer": K4}, "QDense": {"kernel_quantizer": K4},
           "QDepthwiseConv2D": {"depthwise_quantizer": K4}}
    q = model_quantize(f, cfg, transfer_weights=True).eval()
    assert torch.equal(q[0].weight, f[0].weight) and torch.equal(q[0].bias, f[0].bias)
    x = torch.randn(2, 1, 8, 8)
    h = torch.nn.Sequential(q[0], f[1], f[2], f[3])(x)  # BN and pooling are not quantized here
    ref = F.conv2d(h, heteroq.get_quantizer(K4)(f[4].weight), f[4].bias, groups=4)
    assert torch.equal(q[4](h), ref)
    y0 = F.conv2d(x, heteroq.get_quantizer(K4)(f[0].weight), f[0].bias, padding=1)
    assert torch.equal(q[0](x), y0)
    assert q(x).shape == (2, 3)
    # Without transfer the new layers are freshly initialised; the float model is unchanged.
    fresh = model_quantize(f, cfg)
    assert not torch.equal(fresh[0].weight, f[0].weight)
    assert type(f[0]) is torch.nn.Conv2d
    # inplace converts the model itself.
    g = float_cnn()
    assert model_quantize(g, cfg, inplace=True) is g and isinstance(g[0], qnn.QConv2d)


def test_nested_modules_script_and_training():
    torch.manual_seed(1)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.features = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU())
            self.head = torch.nn.Linear(4 * 6 * 6, 2)

        def forward(self, x):
            return self.head(self.features(x).flatten(1))

    q = model_quantize(Net(), {"features.0": {"kernel_quantizer": K4},
                               "QDense": {"kernel_quantizer": K4, "bias_quantizer": K4}},
                       activation_bits=4)
    assert isinstance(q.features[0], qnn.QConv2d) and isinstance(q.features[1], qnn.QActivation)
    assert isinstance(q.head, qnn.QLinear)
    x = torch.randn(32, 1, 8, 8)
    scripted = torch.jit.script(q.eval())
    assert torch.equal(scripted(x), q(x))
    q.train()
    target = (x.mean([1, 2, 3]) > 0).long()
    opt = torch.optim.Adam(q.parameters(), lr=0.02)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = F.cross_entropy(q(x), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_bad_configs():
    m = float_cnn()
    with pytest.raises(ValueError, match="config key 'QConv3D' names no layer of the model and no known class"):
        model_quantize(m, {"QConv3D": {"kernel_quantizer": K4}})
    with pytest.raises(ValueError, match="config key 'conv1' names no layer"):
        model_quantize(m, {"conv1": {"kernel_quantizer": K4}})
    with pytest.raises(ValueError, match=r"'QConv2D'.kernel_quantizer: unknown quantizer `quantized_bitz`"):
        model_quantize(m, {"QConv2D": {"kernel_quantizer": "quantized_bitz(4)"}})
    with pytest.raises(ValueError, match="cannot quantize weights: quantized_relu has no negative values"):
        model_quantize(m, {"QDense": {"kernel_quantizer": "quantized_relu(4,0)"}})
    with pytest.raises(ValueError, match="has no slot 'kernel_quantiser'"):
        model_quantize(m, {"QDense": {"kernel_quantiser": K4}})
    with pytest.raises(ValueError, match="heteroq cannot convert this kind of layer"):
        model_quantize(m, {"7": {"kernel_quantizer": K4}})  # Flatten
    with pytest.raises(ValueError, match="padding='same' is not supported"):
        model_quantize(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding="same")),
                       {"QConv2D": {"kernel_quantizer": K4}})
    with pytest.raises(ValueError, match="`activation_bits` must be in"):
        model_quantize(m, {}, activation_bits=0)
    with pytest.raises(TypeError, match="must be a dict"):
        model_quantize(m, "QDense")
    # Nothing was modified by the failed calls.
    assert type(m[0]) is torch.nn.Conv2d


def test_bn_folding_conversion():
    torch.manual_seed(6)
    m = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                            torch.nn.Flatten(), torch.nn.Linear(144, 5), torch.nn.BatchNorm1d(5))
    x = torch.randn(16, 1, 8, 8)
    m(x)  # running statistics
    m.eval()
    fine = "quantized_bits(24,4,alpha=1)"
    cfg = {"QConv2D": {"kernel_quantizer": fine},  # QKeras: the plain key serves the folded layer
           "QDenseBatchnorm": {"kernel_quantizer": fine, "folding_mode": "batch_stats_folding",
                               "ema_freeze_delay": 10}}
    q = model_quantize(m, cfg, transfer_weights=True, enable_bn_folding=True)
    assert [type(l).__name__ for l in q] == ["QConv2dBatchNorm", "Identity", "ReLU", "Flatten",
                                             "QLinearBatchNorm", "Identity"]
    assert q[4].folding_mode == "batch_stats_folding" and q[4].ema_freeze_delay == 10
    assert torch.equal(q[0].running_var, m[1].running_var) and torch.equal(q[0].gamma, m[1].weight)
    assert torch.allclose(q.eval()(x), m(x), atol=1e-4)
    # Without a kernel quantizer nothing is folded.
    q2 = model_quantize(m, {}, enable_bn_folding=True)
    assert type(q2[0]) is torch.nn.Conv2d and type(q2[1]) is torch.nn.BatchNorm2d
    with pytest.raises(ValueError, match="folding_mode must be"):
        model_quantize(m, {"QConv2D": {"kernel_quantizer": fine, "folding_mode": "x"}},
                       enable_bn_folding=True)


def test_qkeras_compatible_weight_quantizers():
    # QKeras's _set_trainable_parameter: alpha None -> "auto_po2" (quantized_bits: symmetric).
    assert heteroq.qkeras_weight_quantizer("quantized_bits(4,0)").to_string() == \
        "quantized_bits(4,0,1,alpha='auto_po2')"
    assert heteroq.qkeras_weight_quantizer("binary()").to_string() == "binary(alpha='auto_po2')"
    assert heteroq.qkeras_weight_quantizer("ternary()").to_string() == "ternary(alpha='auto_po2')"
    kept = heteroq.quantized_bits(4, 0, alpha=1)
    assert heteroq.qkeras_weight_quantizer(kept) is kept            # an alpha is kept
    assert heteroq.qkeras_weight_quantizer("quantized_relu(4)").to_string() == "quantized_relu(4,0)"
    assert heteroq.qkeras_weight_quantizer("quantized_bits(1,0)").to_string() == "quantized_bits(1,0,0)"
    with pytest.raises(ValueError, match="`threshold` must be None"):
        heteroq.qkeras_weight_quantizer("ternary(threshold=0.3)")
    m = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    cfg = {"QDense": {"kernel_quantizer": "quantized_bits(4,0)", "bias_quantizer": "quantized_bits(4,0)"},
           "QBatchNormalization": {"gamma_quantizer": "quantized_bits(6,2)",
                                   "beta_quantizer": "quantized_bits(6,2)"}}
    q = model_quantize(m, cfg, qkeras_compatible=True)
    assert q[0].kernel_quantizer.alpha == "auto_po2" and q[0].bias_quantizer.alpha is None
    assert q[1].gamma_quantizer.alpha == "auto_po2" and q[1].beta_quantizer.alpha is None
    plain = model_quantize(m, cfg)  # the default applies quantizers as given
    assert plain[0].kernel_quantizer.alpha is None
    # The auto_po2 kernel trains with per-output-channel power-of-two scales.
    w = q[0].quantized_weight()
    assert q[0].kernel_quantizer.scale.shape == (3, 1)
    assert torch.equal(torch.log2(q[0].kernel_quantizer.scale), torch.round(torch.log2(q[0].kernel_quantizer.scale)))
    assert w.shape == (3, 4)


def test_shared_modules_padding_modes_and_null_entries():
    # A module registered under two names becomes one shared quantized module.
    lin, relu = torch.nn.Linear(4, 4), torch.nn.ReLU()
    q = model_quantize(torch.nn.Sequential(lin, relu, lin, relu),
                       {"QDense": {"kernel_quantizer": K4}}, activation_bits=4)
    assert type(q[2]) is qnn.QLinear and q[0] is q[2] and type(q[3]) is qnn.QActivation
    with pytest.raises(ValueError, match="are the same module but the config converts them differently"):
        model_quantize(torch.nn.Sequential(lin, lin), {"0": {"kernel_quantizer": K4}})
    # Folding needs a zero-padded conv followed by its batch norm in a Sequential.
    fine = "quantized_bits(24,4,alpha=1)"
    m = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect"),
                            torch.nn.BatchNorm2d(3)).eval()
    q = model_quantize(m, {"QConv2D": {"kernel_quantizer": fine}}, transfer_weights=True,
                       enable_bn_folding=True).eval()
    assert type(q[0]) is qnn.QConv2d and q[0].padding_mode == "reflect"
    x = torch.randn(2, 2, 6, 6)
    assert torch.allclose(q(x), m(x), atol=1e-4)

    class TwoUses(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(2, 3, 3)
            self.bn = torch.nn.BatchNorm2d(3)

        def forward(self, x):
            return self.bn(self.conv(x)) + self.conv(x)

    t = TwoUses().eval()
    qt = model_quantize(t, {"QConv2D": {"kernel_quantizer": fine}}, transfer_weights=True,
                        enable_bn_folding=True).eval()
    assert type(qt.conv) is qnn.QConv2d and type(qt.bn) is torch.nn.BatchNorm2d  # not folded
    assert torch.allclose(qt(x), t(x), atol=1e-4)
    # A null entry or slot is as if absent.
    q = model_quantize(float_cnn(), {"0": None, "QActivation": {"relu": None}}, activation_bits=3)
    assert type(q[0]) is torch.nn.Conv2d and q[2].quantizer.to_string() == "quantized_relu(3,0)"
