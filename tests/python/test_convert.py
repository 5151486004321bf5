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


# -- recurrent layers --------------------------------------------------------------------------

class _Recurrent(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lstm = torch.nn.LSTM(3, 4, 2, batch_first=True, bidirectional=True)
        self.gru = torch.nn.GRU(8, 4)
        self.rnn = torch.nn.RNN(4, 4, nonlinearity="relu")
        self.fc = torch.nn.Linear(4, 2)


def test_rnn_conversion_keys_slots_and_activations():
    cfg = {"QBidirectional": {"kernel_quantizer": K4, "recurrent_quantizer": K4,
                              "state_quantizer": "quantized_bits(8,1,alpha=1)",
                              "recurrent_activation_quantizer": "hard_sigmoid"},
           "QLSTM": {"kernel_quantizer": "quantized_bits(8,0,alpha=1)"},  # QBidirectional first
           "QGRU": {"kernel_quantizer": K4, "bias_quantizer": "quantized_bits(8,2,alpha=1)",
                    "activation_quantizer": "quantized_tanh(4)",
                    "recurrent_activation_quantizer": "quantized_sigmoid(6)"},
           "rnn": {"kernel_quantizer": K4}}
    f = _Recurrent()
    q = model_quantize(f, cfg, activation_bits=6)
    lstm, gru, rnn = q.lstm, q.gru, q.rnn
    assert type(lstm) is qnn.QLSTM and type(gru) is qnn.QGRU and type(rnn) is qnn.QSimpleRNN
    assert type(q.fc) is torch.nn.Linear and type(f.lstm) is torch.nn.LSTM  # f untouched
    assert (lstm.num_layers, lstm.batch_first, lstm.bidirectional) == (2, True, True)
    assert lstm.kernel_quantizer.to_string() == K4.replace("4,0", "4,0,0").replace("=1", "=1.0")
    assert lstm.recurrent_quantizer.bits == 4 and lstm.state_quantizer.bits == 8
    assert lstm.activation.to_string() == "quantized_tanh(6)"          # activation_bits
    assert lstm.recurrent_activation is None and lstm._recurrent_activation_fn == "hard_sigmoid"
    assert gru.activation.to_string() == "quantized_tanh(4)"
    assert gru.recurrent_activation.to_string() == "quantized_sigmoid(6)"
    assert gru.recurrent_quantizer is None and gru.bias_quantizer.bits == 8 and gru.reset_after
    assert rnn.activation.to_string() == "quantized_relu(6,0)"         # nn.RNN's relu
    # Without activation_bits the float layer's activations stay (tanh/relu, sigmoid gates).
    q2 = model_quantize(_Recurrent(), {"QGRU": {"kernel_quantizer": K4},
                                       "QSimpleRNN": {"kernel_quantizer": K4}})
    assert q2.gru.activation is None and q2.gru._activation_fn == "tanh"
    assert q2.gru.recurrent_activation is None and q2.gru._recurrent_activation_fn == "sigmoid"
    assert q2.rnn._activation_fn == "relu" and type(q2.lstm) is torch.nn.LSTM
    # A SimpleRNN has no gates' activation: QBidirectional's is ignored, its own key's an error.
    f3 = torch.nn.Sequential(torch.nn.RNN(3, 4, bidirectional=True))
    q3 = model_quantize(f3, {"QBidirectional": {"kernel_quantizer": K4,
                                                "recurrent_activation_quantizer": "hard_sigmoid"}})
    assert type(q3[0]) is qnn.QSimpleRNN and q3[0].bidirectional
    with pytest.raises(ValueError, match="has no slot 'recurrent_activation_quantizer'"):
        model_quantize(f3, {"QSimpleRNN": {"kernel_quantizer": K4,
                                           "recurrent_activation_quantizer": "hard_sigmoid"}})


def test_rnn_conversion_transfers_weights():
    f = _Recurrent().eval()
    fine = "quantized_bits(24,0,alpha=1)"  # a step of 2^-23: the weights move by < 6e-8
    q = model_quantize(f, {"QLSTM": {"kernel_quantizer": fine}, "QBidirectional": {
        "kernel_quantizer": fine}, "QGRU": {"kernel_quantizer": fine},
        "QSimpleRNN": {"kernel_quantizer": fine}}, transfer_weights=True).eval()
    for name in ("lstm", "gru", "rnn"):
        for key, value in getattr(f, name).state_dict().items():
            assert torch.equal(getattr(q, name).state_dict()[key], value), (name, key)
    x = torch.randn(2, 5, 3)
    y, (h, c) = f.lstm(x)
    qy, (qh, qc) = q.lstm(x)
    torch.testing.assert_close(qy, y, atol=1e-5, rtol=0)
    torch.testing.assert_close(qc, c, atol=1e-5, rtol=0)
    xs = torch.randn(5, 2, 8)
    torch.testing.assert_close(q.gru(xs)[0], f.gru(xs)[0], atol=1e-5, rtol=0)
    xr = torch.randn(5, 2, 4)
    torch.testing.assert_close(q.rnn(xr)[0], f.rnn(xr)[0], atol=1e-5, rtol=0)
    # Quantized: the same as building the layer by hand with the float layer's weights.
    q2 = model_quantize(f, {"QLSTM": {"kernel_quantizer": K4, "bias_quantizer": K4}},
                        transfer_weights=True)
    by_hand = qnn.QLSTM(3, 4, 2, batch_first=True, bidirectional=True, kernel_quantizer=K4,
                        bias_quantizer=K4, activation="tanh", recurrent_activation="sigmoid")
    by_hand.load_state_dict(f.lstm.state_dict())
    q2.lstm.eval()
    assert torch.equal(q2.lstm(x)[0], by_hand.eval()(x)[0])
    torch.jit.script(q2.lstm)


def test_rnn_conversion_checks():
    f = _Recurrent()
    with pytest.raises(ValueError, match="'QGRU'.recurrent_quantizer = quantized_relu"):
        model_quantize(f, {"QGRU": {"kernel_quantizer": K4,
                                    "recurrent_quantizer": "quantized_relu(4,0)"}})
    with pytest.raises(ValueError, match="'QLSTM'.state_quantizer"):
        model_quantize(f, {"QLSTM": {"kernel_quantizer": K4, "state_quantizer": "quantized_bits(4"}})
    with pytest.raises(ValueError, match="proj_size"):
        model_quantize(torch.nn.Sequential(torch.nn.LSTM(3, 4, proj_size=2)),
                       {"QLSTM": {"kernel_quantizer": K4}})
    # No kernel quantizer: stays float (QKeras).
    q = model_quantize(f, {"QGRU": {"recurrent_quantizer": K4}})
    assert type(q.gru) is torch.nn.GRU
    # qkeras_compatible: kernel and recurrent quantizers get QKeras's alpha="auto_po2".
    q = model_quantize(f, {"QGRU": {"kernel_quantizer": "quantized_bits(4,0)",
                                    "recurrent_quantizer": "quantized_bits(4,0)",
                                    "bias_quantizer": "quantized_bits(4,0)"}},
                       qkeras_compatible=True)
    assert q.gru.kernel_quantizer.alpha == "auto_po2"
    assert q.gru.recurrent_quantizer.alpha == "auto_po2" and q.gru.bias_quantizer.alpha is None
    # A model already holding a QLSTM is left alone.
    q2 = model_quantize(q, {"QGRU": {"kernel_quantizer": K4}})
    assert q2.gru.kernel_quantizer.alpha == "auto_po2"
